"""Tensor methods written in Python because they are glue over the binding's methods
(``new_zeros``, ``type``, ``__format__``, PyTorch's alias names...). :func:`install` attaches them to
``backprop_rs.Tensor`` once, at import; :data:`PYTHON_METHODS` lists them (the stub test leaves
them out, as ``_core.pyi`` describes the Rust binding only). A name the binding already defines is
never replaced, except those in :data:`_WRAPS`, which extend the binding's method.
"""

from __future__ import annotations

import builtins
import numbers
from typing import Any, Callable, Dict, Sequence, Union

from . import _compat, _core, _functions
from ._core import Tensor

_Size = Union[int, Sequence[int]]


def _sizes(size: Sequence[Any]) -> tuple:
    if len(size) == 1 and not isinstance(size[0], numbers.Integral):
        return tuple(size[0])
    return tuple(size)


def new_zeros(self: Tensor, *size: _Size, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A zero tensor of ``size`` with ``self``'s dtype and device unless given: ``x.new_zeros(2, 3)``."""
    return _core.zeros(*_sizes(size), dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad)


def new_ones(self: Tensor, *size: _Size, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones of ``size`` with ``self``'s dtype and device unless given."""
    return _core.ones(*_sizes(size), dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)


def new_empty(self: Tensor, *size: _Size, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """An uninitialised tensor of ``size`` with ``self``'s dtype and device unless given."""
    return _core.empty(*_sizes(size), dtype=dtype or self.dtype, device=device or self.device,
                       requires_grad=requires_grad)


def new_full(self: Tensor, size: _Size, fill_value: Any, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """A tensor of ``size`` filled with ``fill_value``, with ``self``'s dtype and device unless given."""
    shape = (size,) if isinstance(size, numbers.Integral) else tuple(size)
    return _core.full(shape, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                      requires_grad=requires_grad)


def new_tensor(self: Tensor, data: Any, *, dtype: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """A new tensor (a copy, outside any graph) of ``data`` with ``self``'s dtype and device unless given."""
    if isinstance(data, Tensor):
        out = data.detach().to(device or self.device, dtype or self.dtype).clone()
    else:
        out = _core.tensor(data, dtype=dtype or self.dtype, device=device or self.device)
    return out.requires_grad_(requires_grad) if requires_grad else out


def type(self: Tensor, dtype: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
    """``t.type()`` is PyTorch's legacy type string with this package's name
    (``"backprop_rs.FloatTensor"``, ``"backprop_rs.gpu.FloatTensor"`` on the GPU);
    ``t.type(dtype)`` converts: a dtype, a legacy type (``bp.LongTensor``) or a string such as
    ``"torch.DoubleTensor"`` (``"torch.cuda.FloatTensor"`` also moves to the GPU). Returns ``self``
    when nothing changes."""
    if dtype is None:
        return _compat.legacy_type_name(self)
    dt, dev = _compat.parse_type(dtype)
    if dt == self.dtype and (dev is None or dev == self.device.type):
        return self
    return self.to(dev or self.device, dt)


def __format__(self: Tensor, format_spec: str) -> str:
    """``f"{loss:.4f}"``: a one-element tensor formats as its value (PyTorch does this for 0-d
    tensors; a one-element tensor of any rank is accepted here too); an empty spec gives ``str(t)``."""
    if format_spec and self.numel() == 1:
        return builtins.format(self.item(), format_spec)
    return object.__format__(self, format_spec)


def type_as(self: Tensor, other: Tensor) -> Tensor:
    """``self`` converted to ``other``'s dtype (``self`` itself when they match)."""
    return self if self.dtype == other.dtype else self.to(other.dtype)


def ndimension(self: Tensor) -> int:
    """The number of dimensions (``dim()``)."""
    return self.dim()


def get_device(self: Tensor) -> int:
    """-1 for a CPU tensor, 0 for a GPU one (the engine drives one GPU)."""
    return -1 if self.device.type == "cpu" else 0


def pin_memory(self: Tensor, device: Any = None) -> Tensor:
    """Returns ``self``: there is no pinned host memory to copy into (no CUDA)."""
    return self


def share_memory_(self: Tensor) -> Tensor:
    """Returns ``self`` (a no-op: DataLoader workers exchange batches by value)."""
    return self


def is_pinned(self: Tensor, device: Any = None) -> bool:
    """``False``: there is no pinned memory."""
    return False


def is_shared(self: Tensor) -> bool:
    """``False``: tensors live in process memory."""
    return False


def _python_map(self: Tensor, name: str, fn: Callable[..., Any], others: Sequence[Tensor]) -> Tensor:
    """PyTorch's ``apply_``/``map_``: ``fn`` called on Python scalars element by element in
    row-major order, its results stored into ``self`` in ``self``'s dtype."""
    import numpy as np

    if self.device.type != "cpu":
        raise TypeError(f"{name} is only implemented on CPU tensors")
    if self.requires_grad:
        raise RuntimeError(f"Can't call {name}() on Variable that requires grad. Use var.detach().{name}() instead.")

    def flat(t: Tensor) -> list:
        t = t.float() if t.dtype == _core.bfloat16 else t  # NumPy has no bfloat16
        return [t.tolist()] if t.dim() == 0 else t.reshape(-1).tolist()

    columns = [flat(self)]
    for o in others:
        if o.dtype != self.dtype or o.device.type != self.device.type:
            raise TypeError(f"{name}: expected {self.dtype} on {self.device.type} for 'other' "
                            f"(got {o.dtype} on {o.device.type})")
        try:
            wide = o.detach().expand(self.shape)
        except Exception as e:  # noqa: BLE001 - any shape error: PyTorch's in-place broadcasting message
            raise RuntimeError(f"{name}: the shape of 'other' {tuple(o.shape)} cannot be broadcast to "
                               f"the shape of self {tuple(self.shape)}") from e
        columns.append(flat(wide))
    values = [fn(*args) for args in zip(*columns)]
    np_dtype = np.float32 if self.dtype == _core.bfloat16 else self.reshape(-1)[:0].numpy().dtype
    result = _core.tensor(np.asarray(values, dtype=np_dtype).reshape(tuple(self.shape)))
    self.copy_(result)  # casts to a dtype NumPy lacks (bfloat16); writes through a view
    return self


def apply_(self: Tensor, callable: Callable[[Any], Any]) -> Tensor:
    """Replaces each element by ``callable(element)`` (CPU only, slow: a Python call per element).

    >>> import backprop_rs as bp
    >>> bp.tensor([1.0, 2.0]).apply_(lambda v: v * 10).tolist()
    [10.0, 20.0]
    """
    return _python_map(self, "apply_", callable, ())


def map_(self: Tensor, tensor: Tensor, callable: Callable[[Any, Any], Any]) -> Tensor:
    """Replaces each element by ``callable(element, other)``, ``tensor`` broadcast to ``self``'s
    shape and of the same dtype (CPU only, a Python call per element).

    >>> import backprop_rs as bp
    >>> bp.tensor([[1, 2], [3, 4]]).map_(bp.tensor([10, 20]), lambda a, b: a + b).tolist()
    [[11, 22], [13, 24]]
    """
    return _python_map(self, "map_", callable, (tensor,))


def is_complex(self: Tensor) -> bool:
    """``False``: backprop_rs has no complex dtypes."""
    return False


def is_signed(self: Tensor) -> bool:
    """Whether the dtype is signed (every dtype but bool)."""
    return self.dtype != _core.bool_


def true_divide(self: Tensor, other: Any) -> Tensor:
    """``self / other`` (true division)."""
    return self / other


def argwhere(self: Tensor) -> Tensor:
    """The indices of the nonzero elements, one row each (``nonzero()``)."""
    return self.nonzero()


def ravel(self: Tensor) -> Tensor:
    """A 1-D tensor of the elements (a view when possible): ``reshape(-1)``."""
    return self.reshape(-1)


def movedim(self: Tensor, source: Union[int, Sequence[int]], destination: Union[int, Sequence[int]]) -> Tensor:
    """The dims ``source`` moved to ``destination`` (a view, through ``permute``)."""
    src = [source] if isinstance(source, numbers.Integral) else list(source)
    dst = [destination] if isinstance(destination, numbers.Integral) else list(destination)
    n = self.dim()
    if len(src) != len(dst):
        raise ValueError(f"movedim: source {src} and destination {dst} have different lengths")
    src = [s % n if n else 0 for s in src]
    dst = [d % n if n else 0 for d in dst]
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise ValueError(f"movedim: repeated dim in source {src} or destination {dst}")
    order: list = [None] * n
    for s, d in zip(src, dst):
        order[d] = s
    rest = iter(i for i in range(n) if i not in src)
    return self.permute(*[o if o is not None else next(rest) for o in order])


def swapdims(self: Tensor, dim0: int, dim1: int) -> Tensor:
    """``transpose(dim0, dim1)``."""
    return self.transpose(dim0, dim1)


def __deepcopy__(self: Tensor, memo: Dict[int, Any]) -> Tensor:
    """``copy.deepcopy(t)``: a new leaf with a copy of the values (and of ``.grad``), the same
    ``requires_grad``, dtype, device and class (a Parameter stays a Parameter). As in PyTorch, only
    leaves can be deep-copied. Pickling stays refused: checkpoints are safetensors
    (``bp.save``)."""
    if not self.is_leaf:
        raise RuntimeError(
            "Only Tensors created explicitly by the user (graph leaves) support the deepcopy protocol at the "
            "moment; call .detach() first")
    if id(self) in memo:
        return memo[id(self)]
    data = self.detach().clone()
    cls = builtins.type(self)
    if cls is Tensor:
        out = data.requires_grad_(True) if self.requires_grad else data
    else:
        out = cls(data, self.requires_grad)
    memo[id(self)] = out
    if self.grad is not None:
        out.grad = self.grad.detach().clone()
    return out


def _alias(target: str, doc: str) -> Callable[..., Any]:
    def f(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, target)(*args, **kwargs)

    f.__doc__ = doc
    return f


_ALIASES = {
    "multiply": "mul", "subtract": "sub", "absolute": "abs", "negative": "neg",
    "less": "lt", "greater": "gt", "less_equal": "le", "greater_equal": "ge", "not_equal": "ne",
    "moveaxis": "movedim", "arccos": "acos", "arcsin": "asin", "arctan": "atan", "arcsinh": "asinh",
    "arccosh": "acosh", "arctanh": "atanh", "fix": "trunc",
}

def _matrix_transpose(t: Tensor) -> Tensor:
    if t.ndim != 2:
        raise RuntimeError(f"tensor.H is only supported on matrices (2-D tensors). Got {t.ndim}-D tensor.")
    return t.transpose(0, 1)


_PROPERTIES: Dict[str, property] = {
    "is_cpu": property(lambda self: self.device.type == "cpu", doc="Whether the tensor is on the CPU."),
    "is_meta": property(lambda self: False, doc="``False``: there are no meta tensors."),
    "is_sparse": property(lambda self: False, doc="``False``: tensors are dense."),
    "is_quantized": property(lambda self: False, doc="``False``: no quantized tensors."),
    "mH": property(lambda self: self.transpose(-2, -1), doc="The conjugate transpose of the last two dims (``mT``: no complex tensors)."),
    "H": property(lambda self: _matrix_transpose(self),
                  doc="The conjugate transpose of a matrix (its transpose: no complex tensors)."),
}

# binding methods that the Python version extends (and so replaces)
_WRAPS = frozenset({"type", "div", "norm"})

PYTHON_METHODS: Dict[str, Any] = {}


def _sampling_methods() -> Dict[str, Any]:
    """``t.bernoulli()``, ``t.bernoulli_(p)``, ``t.multinomial(n, replacement)``."""
    from . import sampling

    def bernoulli(self: Tensor, p: Any = None, *, generator: Any = None) -> Tensor:
        """Draws 0/1 with probability ``self`` (or ``p``): :func:`backprop_rs.bernoulli`."""
        return sampling.bernoulli(self, p, generator=generator)

    def bernoulli_(self: Tensor, p: Any = 0.5, *, generator: Any = None) -> Tensor:
        """Fills ``self`` in place with 0/1 draws of probability ``p`` (a number or a tensor)."""
        probs = p if isinstance(p, Tensor) else None
        draws = sampling.bernoulli(probs.expand(*self.shape) if probs is not None else self,
                                   None if probs is not None else float(p), generator=generator)
        return self.copy_(draws)

    def multinomial(self: Tensor, num_samples: int, replacement: bool = False, *, generator: Any = None) -> Tensor:
        """Category indices drawn from the rows of ``self``: :func:`backprop_rs.multinomial`."""
        return sampling.multinomial(self, num_samples, replacement, generator=generator)

    return {"bernoulli": bernoulli, "bernoulli_": bernoulli_, "multinomial": multinomial,
            "exponential_": sampling.exponential_, "geometric_": sampling.geometric_,
            "log_normal_": sampling.log_normal_, "cauchy_": sampling.cauchy_, "random_": sampling.random_}


def install() -> None:
    """Attaches the methods to ``Tensor`` (idempotent); a binding method of the same name is kept
    unless the name is in ``_WRAPS``."""
    functions = {
        f.__name__: f
        for f in (new_zeros, new_ones, new_empty, new_full, new_tensor, type, __format__,
                  type_as, ndimension, get_device, pin_memory, share_memory_, is_pinned, is_shared,
                  is_complex, is_signed, true_divide, apply_, map_, argwhere, ravel, movedim, swapdims, __deepcopy__)
    }
    functions.update({name: _alias(target, f"``{name}`` is ``{target}``.") for name, target in _ALIASES.items()})
    functions.update(_functions.tensor_methods())
    functions.update(_sampling_methods())
    from . import scatter_ops as _scatter

    functions.update({"scatter": _scatter.scatter, "scatter_": _scatter.scatter_,
                      "index_put": _scatter.index_put, "index_put_": _scatter.index_put_,
                      "scatter_reduce": _scatter.scatter_reduce, "scatter_reduce_": _scatter.scatter_reduce_})
    from . import counting, math_ops, stacking

    functions.update(counting.tensor_methods())
    functions.update(math_ops.tensor_methods())
    functions.update(stacking.tensor_methods())
    from . import decompositions, special_kernels

    functions.update(decompositions.tensor_methods())
    functions.update(special_kernels.tensor_methods())
    from . import namespace

    functions.update(namespace.tensor_methods())
    from . import inplace_variants

    functions.update(inplace_variants.tensor_methods())
    from .utils import dlpack

    functions.update({"__dlpack__": dlpack.__dlpack__, "__dlpack_device__": dlpack.__dlpack_device__})
    for name, value in [*functions.items(), *_PROPERTIES.items()]:
        if name in PYTHON_METHODS:
            continue
        if name in vars(Tensor) and name not in _WRAPS:
            continue  # the binding has it (perhaps added since): keep the binding's
        if callable(value):
            value.__name__ = name
            value.__qualname__ = f"Tensor.{name}"
        setattr(Tensor, name, value)
        PYTHON_METHODS[name] = value


