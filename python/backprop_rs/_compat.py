"""PyTorch's everyday top-level names that are glue over the engine: dtype information
(``finfo``/``iinfo``), the default dtype and device, the legacy tensor types
(``FloatTensor``...), and the dtypes backprop_rs does not have (``complex64``, the float8
formats...), which raise an error that says so instead of a bare "no attribute".

Re-exported by ``backprop_rs/__init__.py``; nothing here is in the Rust binding.
"""

from __future__ import annotations

import builtins
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._core import Tensor

__all__ = [
    "finfo", "iinfo", "get_default_dtype", "set_default_dtype", "get_default_device", "set_default_device",
    "is_floating_point", "is_nonzero", "use_deterministic_algorithms", "are_deterministic_algorithms_enabled",
    "set_float32_matmul_precision", "get_float32_matmul_precision", "UnsupportedDTypeError", "UnsupportedDType",
    "get_num_threads", "set_num_threads", "get_num_interop_threads", "set_num_interop_threads",
    "FloatTensor", "DoubleTensor", "LongTensor", "BoolTensor", "HalfTensor", "BFloat16Tensor", "IntTensor",
    "ShortTensor", "CharTensor", "ByteTensor", "UNSUPPORTED_DTYPES", "unsupported_dtype",
]

_SUPPORTED = "float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8 and bool"
# the names PyTorch has for dtypes the engine does not store (yet), with what to use instead
UNSUPPORTED_DTYPES = {
    "complex64": None, "complex128": None, "cfloat": None, "cdouble": None, "uint16": "int32",
    "uint32": "int64", "uint64": "int64", "float8_e4m3fn": "float16", "float8_e5m2": "float16",
}


class UnsupportedDTypeError(_core.DTypeError):
    """Raised where a dtype backprop_rs does not have is used: ``bp.zeros(2, dtype=bp.complex64)``,
    ``finfo(bp.float8_e4m3fn)``... (a DTypeError, so a TypeError and a RuntimeError)."""


def unsupported_dtype(name: str, where: Optional[str] = None) -> UnsupportedDTypeError:
    """The error for PyTorch's dtype ``name`` (e.g. ``"float16"``), which backprop_rs lacks."""
    instead = UNSUPPORTED_DTYPES.get(name)
    hint = f"; use {instead} instead" if instead else ""
    what = where or f"backprop_rs.{name}"
    return UnsupportedDTypeError(
        f"{what}: dtype {name} is not supported yet: backprop_rs tensors are {_SUPPORTED}{hint}"
    )


class UnsupportedDType:
    """A stand-in for a PyTorch dtype backprop_rs does not have yet (``bp.complex64``,
    ``bp.uint16``, ``bp.float8_e4m3fn``...). Naming it is fine, so programs that build
    ``{"float32": torch.float32, "c64": torch.complex64}[choice]`` or compare
    ``x.dtype == torch.complex64`` run; using it to make or convert a tensor raises a TypeError whose
    message names it as not supported (its repr says so)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def is_floating_point(self) -> bool:
        return self.name in ("float8_e4m3fn", "float8_e5m2")

    @property
    def itemsize(self) -> int:
        return {"float8_e4m3fn": 1, "float8_e5m2": 1, "complex128": 16, "cdouble": 16, "uint32": 4, "uint64": 8,
                "complex64": 8, "cfloat": 8}.get(self.name, 2)

    def __repr__(self) -> str:
        return f"backprop_rs.{self.name} (not supported yet: backprop_rs tensors are {_SUPPORTED})"

    def __reduce__(self) -> Any:
        return (UnsupportedDType, (self.name,))


UNSUPPORTED = {name: UnsupportedDType(name) for name in UNSUPPORTED_DTYPES}


# ------------------------------------------------------------------ dtype information


def _dtype(d: Any) -> _core.dtype:
    if isinstance(d, _core.dtype):
        return d
    if isinstance(d, UnsupportedDType):
        raise unsupported_dtype(d.name)
    if d is builtins.float:
        return _core.float64
    if d is builtins.int:
        return _core.int64
    if d is builtins.bool:
        return _core.bool_
    if isinstance(d, str):
        d = d.removeprefix("torch.").removeprefix("backprop_rs.")
        if d in UNSUPPORTED_DTYPES:
            raise unsupported_dtype(d)
    if isinstance(d, type) and isinstance(getattr(d, "dtype", None), _core.dtype):  # bp.FloatTensor
        return d.dtype
    return _core.tensor([], dtype=d).dtype  # the engine's own parsing, and its error for the rest


class finfo:
    """Machine limits of a floating dtype, as ``torch.finfo``: ``bits``, ``eps``, ``max``, ``min``,
    ``tiny`` (= ``smallest_normal``), ``resolution`` and ``dtype`` (its name, e.g. ``"float32"``).
    ``finfo()`` describes the default dtype (float32).

    >>> finfo(_core.float32).eps
    1.1920928955078125e-07
    """

    bits: int
    eps: float
    max: float
    min: float
    tiny: float
    smallest_normal: float
    resolution: float
    dtype: str

    def __init__(self, type: Any = None) -> None:
        d = get_default_dtype() if type is None else _dtype(type)
        if not d.is_floating_point:
            raise TypeError(f"finfo: {d} is not a floating point dtype (use iinfo for integers)")
        if d == _core.bfloat16:
            # NumPy has no bfloat16: float32's exponent with 8 significand bits
            self.bits, self.eps, self.resolution = 16, 2.0**-7, 0.01
            self.max = builtins.float((2 - 2.0**-7) * 2.0**127)
            self.min, self.tiny = -self.max, 2.0**-126
        else:
            info = np.finfo({_core.float32: np.float32, _core.float16: np.float16}.get(d, np.float64))
            self.bits = int(info.bits)
            self.eps = builtins.float(info.eps)
            self.max = builtins.float(info.max)
            self.min = builtins.float(info.min)
            self.tiny = builtins.float(info.tiny)
            self.resolution = builtins.float(info.resolution)
        self.smallest_normal = self.tiny
        self.dtype = d.name if hasattr(d, "name") else str(d).split(".")[-1]

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution:g}, min={self.min:g}, max={self.max:g}, eps={self.eps:g}, "
                f"smallest_normal={self.smallest_normal:g}, tiny={self.tiny:g}, dtype={self.dtype})")


class iinfo:
    """Limits of an integer dtype, as ``torch.iinfo``: ``bits``, ``max``, ``min``, ``dtype``
    (int64, int32, int16, int8, uint8; on the GPU int64 values must fit in int32, see ``bp.gpu``).

    >>> iinfo(_core.int64).max
    9223372036854775807
    """

    bits: int
    max: int
    min: int
    dtype: str

    def __init__(self, type: Any) -> None:
        d = _dtype(type)
        if d.is_floating_point or d == _core.bool_:
            raise TypeError(f"iinfo: {d} is not an integer dtype (use finfo for floating point)")
        info = np.iinfo(d.name)
        self.bits, self.max, self.min = int(info.bits), int(info.max), int(info.min)
        self.dtype = d.name if hasattr(d, "name") else str(d).split(".")[-1]

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


# ------------------------------------------------------------------ defaults


def get_default_dtype() -> _core.dtype:
    """The dtype the factories give floating tensors and Python floats become (``float32``
    unless ``set_default_dtype`` changed it)."""
    return _core._get_default_dtype()


def set_default_dtype(d: Any) -> None:
    """Sets the default floating dtype, process-wide, as ``torch.set_default_dtype``:
    ``float32`` or ``float64`` (float16/bfloat16 are storage dtypes here and are refused as the
    default). Factories without a dtype (``zeros``, ``randn``, ``arange`` with
    float arguments, ``tensor([1.0])``), Python floats in arithmetic with integer tensors,
    integer true division, ``mean`` of integers, and new modules' parameters follow it.
    Non-floating dtypes raise TypeError, as in PyTorch. The GPU has no float64: with a float64
    default, create GPU tensors with ``dtype=float32``."""
    dt = _dtype(d)
    if not dt.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got {dt}")
    _core._set_default_dtype(dt)


def get_default_device() -> _core.device:
    """The device the factories use when none is given (``cpu`` unless ``set_default_device``
    changed it)."""
    return _core._get_default_device()


def set_default_device(device: Any) -> None:
    """Sets the factories' default device, process-wide, as ``torch.set_default_device``
    (``None`` restores the CPU). ``"gpu"`` (or its PyTorch spelling ``"cuda"``) is the wgpu GPU:
    factories without ``device=`` (``zeros``, ``randn``, ``tensor(...)``, ``arange``, ...) and new
    modules' parameters are then made there. ``from_numpy`` and ``as_tensor`` of an array still
    share the array's CPU memory, as in PyTorch."""
    _core._set_default_device(device)


_deterministic = False
_matmul_precision = "highest"


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """Accepted and recorded: the CPU kernels are deterministic already (reductions split work by
    size, never by thread count), and GPU scatter is last-wins in index order."""
    global _deterministic
    _deterministic = builtins.bool(mode)


def are_deterministic_algorithms_enabled() -> bool:
    """What :func:`use_deterministic_algorithms` last set (``False`` at start)."""
    return _deterministic


def set_float32_matmul_precision(precision: str) -> None:
    """Accepts ``"highest"``, ``"high"`` or ``"medium"``; matmuls are always full float32 here."""
    global _matmul_precision
    if precision not in ("highest", "high", "medium"):
        raise RuntimeError(f"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', got {precision!r}")
    _matmul_precision = precision


def get_float32_matmul_precision() -> str:
    """What :func:`set_float32_matmul_precision` last set (``"highest"`` at start)."""
    return _matmul_precision


def get_num_threads() -> int:
    """The CPU kernels' thread count (the rayon pool, sized at import; ``RAYON_NUM_THREADS`` sets it)."""
    return int(_core._cpu_info()["threads"])


def set_num_threads(num: int) -> None:
    """Accepted: the thread pool is sized once, at import (set ``RAYON_NUM_THREADS`` before importing
    to change it), so another count only warns. Results never depend on it: reductions split work by
    size, not by thread count."""
    if int(num) < 1:
        raise ValueError(f"set_num_threads: expected a positive number of threads, got {num}")
    if int(num) != get_num_threads():
        import warnings

        warnings.warn(
            f"set_num_threads({num}) is ignored: the CPU thread pool has {get_num_threads()} threads, sized at "
            "import (set RAYON_NUM_THREADS before importing backprop_rs to change it)", UserWarning, stacklevel=2)


def get_num_interop_threads() -> int:
    """1: there is no inter-op thread pool (ops run one after another)."""
    return 1


def set_num_interop_threads(num: int) -> None:
    """Accepted, no effect: there is no inter-op thread pool."""


def is_floating_point(input: Tensor) -> bool:
    """Whether ``input``'s dtype is floating point (float32 or float64)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"is_floating_point(): argument 'input' must be Tensor, not {type(input).__name__}")
    return input.is_floating_point()


def is_nonzero(input: Tensor) -> bool:
    """The truth of a one-element tensor; RuntimeError for other sizes, as in PyTorch (the
    Tensor method's check and messages)."""
    return input.is_nonzero()


# ------------------------------------------------------------------ legacy tensor types


class _LegacyTensorMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype and obj.device.type == "cpu"

    def __repr__(cls) -> str:
        return f"<class 'backprop_rs.{cls.__name__}'>"


class _LegacyTensor(metaclass=_LegacyTensorMeta):
    dtype: _core.dtype

    def __new__(cls, *args: Any, device: Any = None) -> Tensor:  # type: ignore[misc]
        if device is not None and _core.device(str(device)).type != "cpu":
            raise RuntimeError(f"{cls.__name__}: legacy constructors create CPU tensors; use .to('gpu') after")
        if len(args) == 0:
            return _core.empty(0, dtype=cls.dtype)
        if len(args) == 1 and not isinstance(args[0], (builtins.int, np.integer)):
            data = args[0]
            if isinstance(data, Tensor):
                if data.dtype != cls.dtype:
                    raise TypeError(f"{cls.__name__}: expected a {cls.dtype} tensor, got {data.dtype}; "
                                    f"use .to({cls.dtype})")
                return data
            if isinstance(data, tuple) and all(isinstance(s, (builtins.int, np.integer)) for s in data):
                data = list(data)  # torch.FloatTensor((1, 2)) is data, as in PyTorch
            return _core.tensor(data, dtype=cls.dtype)
        if all(isinstance(s, (builtins.int, np.integer)) for s in args):
            return _core.zeros(*[builtins.int(s) for s in args], dtype=cls.dtype)
        raise TypeError(f"{cls.__name__}(): expected data (a sequence or array) or sizes (ints), got {args!r}")


def _legacy(name: str, dt: _core.dtype, doc: str) -> type:
    cls = _LegacyTensorMeta(name, (_LegacyTensor,), {"dtype": dt, "__doc__": doc, "__module__": "backprop_rs"})
    return cls


_LEGACY_DOC = (
    "The legacy constructor ``backprop_rs.{name}``: ``{name}(data)`` is ``tensor(data, dtype={dt})``, "
    "``{name}(2, 3)`` a 2x3 tensor of {dt} (zero-filled, where PyTorch leaves it uninitialised), "
    "``{name}()`` an empty one. ``isinstance(t, {name})`` is true for CPU tensors of dtype {dt}."
)

FloatTensor = _legacy("FloatTensor", _core.float32, _LEGACY_DOC.format(name="FloatTensor", dt="float32"))
DoubleTensor = _legacy("DoubleTensor", _core.float64, _LEGACY_DOC.format(name="DoubleTensor", dt="float64"))
LongTensor = _legacy("LongTensor", _core.int64, _LEGACY_DOC.format(name="LongTensor", dt="int64"))
BoolTensor = _legacy("BoolTensor", _core.bool_, _LEGACY_DOC.format(name="BoolTensor", dt="bool"))
HalfTensor = _legacy("HalfTensor", _core.float16, _LEGACY_DOC.format(name="HalfTensor", dt="float16"))
BFloat16Tensor = _legacy("BFloat16Tensor", _core.bfloat16, _LEGACY_DOC.format(name="BFloat16Tensor", dt="bfloat16"))
IntTensor = _legacy("IntTensor", _core.int32, _LEGACY_DOC.format(name="IntTensor", dt="int32"))
ShortTensor = _legacy("ShortTensor", _core.int16, _LEGACY_DOC.format(name="ShortTensor", dt="int16"))
CharTensor = _legacy("CharTensor", _core.int8, _LEGACY_DOC.format(name="CharTensor", dt="int8"))
ByteTensor = _legacy("ByteTensor", _core.uint8, _LEGACY_DOC.format(name="ByteTensor", dt="uint8"))

LEGACY_TYPES = {"FloatTensor": FloatTensor, "DoubleTensor": DoubleTensor, "LongTensor": LongTensor,
                "BoolTensor": BoolTensor, "HalfTensor": HalfTensor, "BFloat16Tensor": BFloat16Tensor,
                "IntTensor": IntTensor, "ShortTensor": ShortTensor, "CharTensor": CharTensor,
                "ByteTensor": ByteTensor}
_LEGACY_BY_DTYPE = {t.dtype: n for n, t in LEGACY_TYPES.items()}


def legacy_type_name(t: Tensor) -> str:
    """PyTorch's ``Tensor.type()`` string with this package's name: ``"backprop_rs.FloatTensor"``,
    ``"backprop_rs.gpu.FloatTensor"`` on the GPU."""
    where = "backprop_rs.gpu." if t.device.type == "gpu" else "backprop_rs."
    return where + _LEGACY_BY_DTYPE[t.dtype]


def parse_type(spec: Union[str, type, _core.dtype]) -> "tuple[_core.dtype, Optional[str]]":
    """``Tensor.type(spec)``'s argument as (dtype, device or None): a dtype, a legacy type
    (``bp.FloatTensor``) or a string such as ``"torch.cuda.LongTensor"`` / ``"backprop_rs.float64"``."""
    if isinstance(spec, type) and spec in LEGACY_TYPES.values():
        return spec.dtype, None  # type: ignore[attr-defined]
    if isinstance(spec, str):
        parts = spec.split(".")
        if parts[-1] in LEGACY_TYPES:
            device = "gpu" if len(parts) > 2 and parts[-2] in ("cuda", "gpu") else "cpu"
            return LEGACY_TYPES[parts[-1]].dtype, device  # type: ignore[attr-defined]
    return _dtype(spec), None
