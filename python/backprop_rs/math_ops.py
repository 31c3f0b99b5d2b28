"""Elementwise and along-a-dim maths with PyTorch's signatures, as composites of the engine's
ops (so gradients come from their rules): ``hypot`` (and ``hypot_``), the in-place
``clamp_min_`` / ``clamp_max_`` / ``frac_``, ``cummax`` / ``cummin``, ``logcumsumexp``,
``diff``, ``cross`` (``linalg.cross``) and ``cdist``.

``cummax`` / ``cummin`` find their indices on the host with NumPy (a GPU tensor is read back),
then take the values with ``gather``, so the gradient flows to the picked positions, as
PyTorch's does. ``logcumsumexp`` is a Hillis–Steele scan of a stable ``logaddexp`` (O(log n)
ops, like the core's ``cumsum``).
"""

from __future__ import annotations

import builtins
import numbers
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._core import Tensor
from .amp import _listed

__all__ = ["hypot", "cummax", "cummin", "logcumsumexp", "diff", "cross", "cdist"]

_FLOATS = (_core.float32, _core.float64)


def _norm_dim(dim: int, nd: int, op: str) -> int:
    n = builtins.max(nd, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _as_tensor(x: Any, like: Tensor) -> Tensor:
    if isinstance(x, Tensor):
        return x
    return _core.tensor(x, dtype=like.dtype if like.dtype in _FLOATS else None, device=like.device)


# ------------------------------------------------------------------ hypot and in-place forms


def hypot(input: Tensor, other: Union[Tensor, numbers.Real]) -> Tensor:
    """``sqrt(input**2 + other**2)`` elementwise (broadcast), without overflow or underflow in
    the squares: both are scaled by the larger magnitude first. Infinite if either is infinite.
    The gradient is ``grad * input / result`` (NaN where both are 0, as in PyTorch)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"hypot(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    other = _as_tensor(other, input)
    if input.dtype not in _FLOATS or other.dtype not in _FLOATS:
        raise RuntimeError(f'"hypot" not implemented for {input.dtype} and {other.dtype} (float tensors only)')
    big = input.abs().maximum(other.abs()).detach()
    # the scale is a constant for autograd, so d/dinput = (input/s) / sqrt(q) = input / result
    scale = _core.where((big == 0) | big.isinf() | big.isnan(), 1.0, big)
    h = scale * ((input / scale).square() + (other / scale).square()).sqrt()
    return _core.where(input.isinf() | other.isinf(), float("inf"), h)


def hypot_(self: Tensor, other: Union[Tensor, numbers.Real]) -> Tensor:
    """In place: :func:`hypot` into ``self``."""
    return self.copy_(hypot(self, other))


def clamp_min_(self: Tensor, min: Any) -> Tensor:
    """In place: ``self`` raised to at least ``min`` (a number or a tensor)."""
    return self.copy_(self.clamp_min(min))


def clamp_max_(self: Tensor, max: Any) -> Tensor:
    """In place: ``self`` lowered to at most ``max`` (a number or a tensor)."""
    return self.copy_(self.clamp_max(max))


def frac_(self: Tensor) -> Tensor:
    """In place: the fractional part, ``self - trunc(self)``."""
    return self.copy_(self.frac())


# ------------------------------------------------------------------ cumulative extrema


def _cum_extremum(input: Tensor, dim: int, largest: bool, op: str) -> Any:
    from .counting import _values_indices

    if not isinstance(input, Tensor):
        raise TypeError(f"{op}(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    d = _norm_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return _values_indices(input.clone(), _core.zeros((), dtype=_core.int64, device=input.device))
    a = np.moveaxis(input.detach().cpu().numpy(), d, -1)
    run = (np.maximum if largest else np.minimum).accumulate(a, axis=-1)  # NaN propagates
    # PyTorch's rule: a later element equal to the running extremum takes over (>=, <=), and a
    # NaN takes over from anything, so the index is the last position that set the value
    setter = (a == run) | np.isnan(a) if a.dtype.kind == "f" else a == run
    pos = np.broadcast_to(np.arange(a.shape[-1]), a.shape)
    idx = np.maximum.accumulate(np.where(setter, pos, 0), axis=-1)
    index = _core.from_numpy(np.moveaxis(idx, -1, d).astype(np.int64, order="C"))
    if input.device.type != "cpu":
        index = index.to(input.device)
    return _values_indices(input.gather(d, index), index)


def cummax(input: Tensor, dim: int) -> Any:
    """The running maximum along ``dim`` and where each was attained, as ``(values, indices)``;
    on ties the later index wins, and a NaN propagates (PyTorch's rule). The gradient flows to
    the attaining positions."""
    return _cum_extremum(input, dim, True, "cummax")


def cummin(input: Tensor, dim: int) -> Any:
    """The running minimum along ``dim`` and where each was attained (see :func:`cummax`)."""
    return _cum_extremum(input, dim, False, "cummin")


# ------------------------------------------------------------------ logcumsumexp


def _logaddexp(a: Tensor, b: Tensor) -> Tensor:
    top = a.maximum(b)
    inf = top.isinf()
    # where the larger is infinite the answer is it; the difference would be inf - inf there, so
    # it is taken of zeros instead (a `where` of the inputs sends no NaN into the gradient)
    zero = _core.zeros((), dtype=a.dtype, device=a.device)
    gap = -(_core.where(inf, zero, a) - _core.where(inf, zero, b)).abs()
    return _core.where(inf, top, top + gap.exp().log1p())


def logcumsumexp(input: Tensor, dim: int) -> Tensor:
    """``log(cumsum(exp(input), dim))`` computed stably (a scan of ``logaddexp``: no overflow,
    and small terms are not lost next to large ones). Float tensors only."""
    if not isinstance(input, Tensor):
        raise TypeError(f"logcumsumexp(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    if input.dtype not in _FLOATS:
        raise RuntimeError(f'"logcumsumexp" not implemented for {input.dtype} (float tensors only)')
    if input.ndim == 0:
        _norm_dim(dim, 0, "logcumsumexp")
        return input.clone()
    d = _norm_dim(dim, input.ndim, "logcumsumexp")
    n = input.shape[d]
    y = input
    k = 1
    while k < n:
        y = _core.cat([y.narrow(d, 0, k), _logaddexp(y.narrow(d, k, n - k), y.narrow(d, 0, n - k))], d)
        k *= 2
    return y if n > 1 else input.clone()


# ------------------------------------------------------------------ diff, cross, cdist


def diff(input: Tensor, n: int = 1, dim: int = -1, prepend: Optional[Any] = None,
         append: Optional[Any] = None) -> Tensor:
    """The ``n``-th forward difference along ``dim`` (``x[i+1] - x[i]``; for bool tensors
    ``x[i+1] != x[i]``), after concatenating ``prepend`` / ``append`` (tensors of ``input``'s
    shape except along ``dim``, or numbers, taken as one slice). ``n=0`` gives ``input``
    unchanged (a copy), without ``prepend`` / ``append``, as NumPy."""
    if not isinstance(input, Tensor):
        raise TypeError(f"diff(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    if input.ndim == 0:
        raise RuntimeError("diff expects input to be at least one-dimensional")
    if n < 0:
        raise RuntimeError(f"order must be non-negative but got {n}")
    d = _norm_dim(dim, input.ndim, "diff")
    if n == 0:
        return input.clone()  # as NumPy: prepend and append are not added either
    parts = []
    for extra, name in ((prepend, "prepend"), (append, "append")):
        if extra is None:
            parts.append(None)
            continue
        if not isinstance(extra, Tensor):
            shape = list(input.shape)
            shape[d] = 1
            extra = _core.full(tuple(shape), extra, dtype=input.dtype, device=input.device)
        if extra.ndim != input.ndim:
            raise RuntimeError(f"diff expects {name} or append to be the same dimension as input")
        parts.append(extra)
    x = _core.cat([t for t in (parts[0], input, parts[1]) if t is not None], d)
    for _ in range(n):
        m = x.shape[d]
        if m == 0:
            break
        hi, lo = x.narrow(d, 1, m - 1), x.narrow(d, 0, m - 1)
        x = (hi != lo) if x.dtype == _core.bool_ else hi - lo
    return x


def cross(input: Tensor, other: Tensor, dim: Optional[int] = None) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (broadcast over the other dims). Without
    ``dim``, the first dim of size 3, as ``torch.cross`` (``linalg.cross`` defaults to -1)."""
    if not isinstance(input, Tensor) or not isinstance(other, Tensor):
        raise TypeError("cross(): input and other must be Tensors")
    if input.ndim != other.ndim:
        raise RuntimeError(f"linalg.cross: inputs must have the same number of dimensions, got {input.ndim} and "
                           f"{other.ndim}")
    shape = tuple(np.broadcast_shapes(tuple(input.shape), tuple(other.shape)))
    a, b = input.expand(*shape), other.expand(*shape)
    if dim is None:
        sizes3 = [k for k, s in enumerate(shape) if s == 3]
        if not sizes3:
            raise RuntimeError(f"no dimension of size 3 in input (shape {shape})")
        d = sizes3[0]
    else:
        d = _norm_dim(dim, len(shape), "cross")
    if input.shape[d] != 3 or other.shape[d] != 3:
        raise RuntimeError(f"linalg.cross: inputs dimension {d} must have length 3. Got {input.shape[d]} and "
                           f"{other.shape[d]}")
    a0, a1, a2 = (a.narrow(d, k, 1) for k in range(3))
    b0, b1, b2 = (b.narrow(d, k, 1) for k in range(3))
    return _core.cat([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0], d)


@_listed("fp32")
def cdist(x1: Tensor, x2: Tensor, p: float = 2.0,
          compute_mode: str = "use_mm_for_euclid_dist_if_necessary") -> Tensor:
    """The ``p``-norm distance between every row of ``x1`` (``(..., P, M)``) and every row of
    ``x2`` (``(..., R, M)``): ``(..., P, R)``, batch dims broadcast. Computed from the
    differences (no matrix-product shortcut for p=2, so it is exact but builds a
    ``P x R x M`` intermediate; ``compute_mode`` is accepted and changes nothing). The 2-norm's
    gradient is 0 where two rows coincide, as in PyTorch."""
    if not isinstance(x1, Tensor) or not isinstance(x2, Tensor):
        raise TypeError("cdist(): x1 and x2 must be Tensors")
    if compute_mode not in ("use_mm_for_euclid_dist_if_necessary", "use_mm_for_euclid_dist",
                            "donot_use_mm_for_euclid_dist"):
        raise ValueError(f"{compute_mode} is not a valid value for compute_mode")
    if x1.ndim < 2 or x2.ndim < 2:
        raise RuntimeError(f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D, X2 got: {x2.ndim}D")
    if x1.shape[-1] != x2.shape[-1]:
        raise RuntimeError(f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: {x2.shape[-1]}")
    if x1.dtype not in _FLOATS or x2.dtype not in _FLOATS:
        raise RuntimeError(f"cdist only supports floating-point dtypes, X1 got: {x1.dtype}, X2 got: {x2.dtype}")
    if p < 0:
        raise RuntimeError("cdist only supports non-negative p values")
    from .linalg import vector_norm

    return vector_norm(x1.unsqueeze(-2) - x2.unsqueeze(-3), p, dim=-1)


def tensor_methods() -> dict:
    """The Tensor methods of this module (attached by ``_tensor_methods.install``)."""

    def hypot_method(self: Tensor, other: Union[Tensor, numbers.Real]) -> Tensor:
        """:func:`backprop_rs.hypot` of ``self`` and ``other``."""
        return hypot(self, other)

    def cummax_method(self: Tensor, dim: int) -> Any:
        """:func:`backprop_rs.cummax` of ``self``."""
        return cummax(self, dim)

    def cummin_method(self: Tensor, dim: int) -> Any:
        """:func:`backprop_rs.cummin` of ``self``."""
        return cummin(self, dim)

    def logcumsumexp_method(self: Tensor, dim: int) -> Tensor:
        """:func:`backprop_rs.logcumsumexp` of ``self``."""
        return logcumsumexp(self, dim)

    def diff_method(self: Tensor, n: int = 1, dim: int = -1, prepend: Optional[Any] = None,
                    append: Optional[Any] = None) -> Tensor:
        """:func:`backprop_rs.diff` of ``self``."""
        return diff(self, n, dim, prepend, append)

    def cross_method(self: Tensor, other: Tensor, dim: Optional[int] = None) -> Tensor:
        """:func:`backprop_rs.cross` of ``self`` and ``other``."""
        return cross(self, other, dim)

    return {"hypot": hypot_method, "hypot_": hypot_, "clamp_min_": clamp_min_, "clamp_max_": clamp_max_,
            "frac_": frac_, "cummax": cummax_method, "cummin": cummin_method, "logcumsumexp": logcumsumexp_method,
            "diff": diff_method, "cross": cross_method}
