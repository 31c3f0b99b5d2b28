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
import math
import numbers
from collections import namedtuple
from typing import Any, Optional, Union

import numpy as np

from . import _core
from ._core import Tensor
from .amp import _listed

__all__ = ["hypot", "cummax", "cummin", "logcumsumexp", "diff", "cross", "cdist",
           "prod", "nansum", "nanmean", "aminmax", "var_mean", "std_mean", "quantile", "nanquantile", "logaddexp",
           "logaddexp2", "xlogy", "logit", "exp2", "sgn", "signbit", "copysign", "deg2rad", "rad2deg",
           "float_power", "heaviside", "fmax", "fmin", "isin", "isposinf", "isneginf", "isreal", "logical_xor",
           "tensordot", "kron", "inner", "addmv", "addr", "addbmm", "chain_matmul", "cov", "corrcoef",
           "asinh", "acosh", "atanh", "sinc", "positive", "erfinv", "bitwise_and", "bitwise_or",
           "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "gcd", "lcm", "histogram", "histogramdd", "nanmedian", "msort", "polygamma", "mvlgamma"]

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


_METHODS = [
    "nanmedian", "msort", "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_not", "bitwise_left_shift", "bitwise_right_shift", "gcd",
    "lcm", "histogram", "erfinv", "asinh", "acosh", "atanh", "sinc", "positive", "prod", "nansum", "nanmean", "aminmax", "quantile",
    "nanquantile", "logaddexp", "logaddexp2", "xlogy", "logit", "exp2", "sgn", "signbit", "copysign", "deg2rad",
    "rad2deg", "float_power", "heaviside", "fmax", "fmin", "isposinf", "isneginf", "isreal", "logical_xor",
    "kron", "inner", "addmv", "addr", "addbmm", "cov", "corrcoef", "mvlgamma",
]


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

    def polygamma_method(self: Tensor, n: int) -> Tensor:
        """``t.polygamma(n)`` is :func:`backprop_rs.polygamma` ``(n, t)``."""
        return polygamma(n, self)

    def as_method(f: Any) -> Any:
        def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            return f(self, *args, **kwargs)

        method.__doc__ = f":func:`backprop_rs.{f.__name__}` of ``self``."
        return method

    made = {name: as_method(globals()[name]) for name in _METHODS}
    made["not_equal"] = as_method(_core.Tensor.ne)
    made["not_equal"].__doc__ = "``not_equal`` is ``ne``."
    made["__lshift__"] = made["bitwise_left_shift"]
    made["__rshift__"] = made["bitwise_right_shift"]
    return {**made, "erfinv_": erfinv_, "lerp_": lerp_, "logical_xor_": logical_xor_, "hypot": hypot_method, "hypot_": hypot_, "clamp_min_": clamp_min_, "clamp_max_": clamp_max_,
            "frac_": frac_, "cummax": cummax_method, "cummin": cummin_method, "logcumsumexp": logcumsumexp_method,
            "diff": diff_method, "cross": cross_method, "polygamma": polygamma_method, "polygamma_": polygamma_,
            "mvlgamma_": mvlgamma_}


# ------------------------------------------------------------------ reductions


def _default_float_if_int(x: Tensor) -> Tensor:
    return x if x.is_floating_point() else x.to(_core._get_default_dtype())


@_listed("fp32")
def prod(input: Tensor, dim: Optional[int] = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``torch.prod``: the product of all elements, or along ``dim``. Integer and bool inputs give
    int64 (as PyTorch); float16/bfloat16 multiply in float32 and round once. The last element of
    ``cumprod`` (a scan of multiplications), so the gradient is exact where elements are zero."""
    x = input
    if dtype is not None:
        x = x.to(dtype)
    elif not x.is_floating_point():
        x = x.to(_core.int64)
    out_dtype = x.dtype
    if out_dtype in (_core.float16, _core.bfloat16):
        x = x.float()
    if dim is None:
        if keepdim:
            raise TypeError("prod(): keepdim needs dim")
        flat = x.reshape(-1)
        n = flat.shape[0]
        r = _core.ones((), dtype=x.dtype, device=x.device) if n == 0 else flat.cumprod(0)[n - 1]
        return r.to(out_dtype)
    d = _norm_dim(dim, x.ndim, "prod")
    if x.ndim == 0:
        return x.to(out_dtype)
    n = x.shape[d]
    if n == 0:
        shape = list(x.shape)
        shape[d] = 1
        r = _core.ones(shape, dtype=x.dtype, device=x.device)
    else:
        r = x.cumprod(d).narrow(d, n - 1, 1)
    return (r if keepdim else r.squeeze(d)).to(out_dtype)


def nansum(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``torch.nansum``: the sum with NaNs taken as zero."""
    x = _core.where(input.isnan(), 0, input) if input.is_floating_point() else input
    return x.sum(dim, keepdim, dtype=dtype) if dim is not None else x.sum(dtype=dtype)


def nanmean(input: Tensor, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """``torch.nanmean``: the mean of the non-NaN elements (NaN where there are none)."""
    if not input.is_floating_point() and dtype is None:
        raise RuntimeError(f"nanmean(): expected input to have floating point dtype but got {input.dtype}")
    x = input if dtype is None else input.to(dtype)
    keep = x.isnan().logical_not()
    count = keep.sum(dim, keepdim) if dim is not None else keep.sum()
    return nansum(x, dim, keepdim) / count.to(x.dtype)


_MinMax = namedtuple("aminmax", ["min", "max"])


def aminmax(input: Tensor, *, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    """``torch.aminmax``: ``(min, max)``, of everything or along ``dim``."""
    if dim is None:
        lo, hi = input.amin(), input.amax()
        if keepdim:
            shape = [1] * input.ndim
            lo, hi = lo.reshape(shape), hi.reshape(shape)
        return _MinMax(lo, hi)
    return _MinMax(input.amin(dim, keepdim), input.amax(dim, keepdim))


def var_mean(input: Tensor, dim: Any = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
             correction: Optional[float] = None) -> tuple:
    """``torch.var_mean``: ``(var, mean)``; ``var_mean(x, True)`` is the legacy ``unbiased`` form."""
    if isinstance(dim, bool):
        dim, unbiased = None, dim
    v = input.var(dim, unbiased, keepdim, correction=correction)
    m = input.mean(dim, keepdim) if dim is not None else input.mean()
    if dim is None and keepdim:
        m = m.reshape([1] * input.ndim)
    return v, m


def std_mean(input: Tensor, dim: Any = None, unbiased: Optional[bool] = None, keepdim: bool = False, *,
             correction: Optional[float] = None) -> tuple:
    """``torch.std_mean``: ``(std, mean)``, with ``var_mean``'s arguments."""
    v, m = var_mean(input, dim, unbiased, keepdim, correction=correction)
    return v.sqrt(), m


def _quantile(op: str, input: Tensor, q: Any, dim: Optional[int], keepdim: bool, interpolation: str,
              ignore_nan: bool) -> Tensor:
    if not input.is_floating_point():
        raise RuntimeError(f"{op}() input tensor must be either float or double dtype")
    if interpolation not in ("linear", "lower", "higher", "midpoint", "nearest"):
        raise ValueError(f"{op}() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                         f"Got {interpolation}")
    scalar_q = not isinstance(q, Tensor)
    if scalar_q:
        qt = _core.tensor([float(q)], dtype=input.dtype, device=input.device)
    else:
        if q.dtype != input.dtype:
            raise RuntimeError(f"{op}() q tensor must be same dtype as the input tensor")
        if q.ndim > 1:
            raise RuntimeError(f"{op}() q must be a scalar or 1D tensor")
        scalar_q = q.ndim == 0
        qt = q.reshape(-1)
    qv = qt.detach().cpu().double().numpy() if qt.numel() else np.zeros(0)
    if ((qv < 0) | (qv > 1)).any():
        raise RuntimeError(f"{op}() q values must be in the range [0, 1]")
    if input.numel() == 0:
        raise RuntimeError(f"{op}() input tensor must be non-empty")
    if dim is None:
        x, rest = input.reshape(1, -1), []
    else:
        d = _norm_dim(dim, input.ndim, op)
        x = input.unsqueeze(0) if input.ndim == 0 else input.movedim(d, -1)
        rest = list(x.shape[:-1]) if input.ndim else []
        x = x.reshape(-1, x.shape[-1])
    n = x.shape[-1]
    srt = x.sort(-1).values  # NaN sorts last
    nan = x.isnan().any(-1, keepdim=True)
    if ignore_nan:
        k = x.isnan().logical_not().sum(-1, keepdim=True).to(x.dtype)
    else:
        k = _core.full((x.shape[0], 1), float(n), dtype=x.dtype, device=x.device)
    rank = qt.reshape(1, -1) * (k - 1).clamp(min=0)
    if interpolation == "lower":
        rank = rank.floor()
    elif interpolation == "higher":
        rank = rank.ceil()
    elif interpolation == "nearest":
        rank = rank.round()  # half to even, as PyTorch
    below = rank.floor().clamp(0, n - 1).long()
    above = rank.ceil().clamp(0, n - 1).long()
    lo, hi = srt.gather(-1, below), srt.gather(-1, above)
    if interpolation == "midpoint":
        out = lo + (hi - lo) * 0.5
    elif interpolation == "linear":
        out = lo.lerp(hi, rank - below.to(rank.dtype))
    else:
        out = lo
    empty = (k == 0) if ignore_nan else nan
    out = _core.where(empty, float("nan"), out)
    out = out.reshape(rest + [qt.shape[0]]).movedim(-1, 0)  # q's dim first
    if keepdim:
        if dim is None:
            out = out.reshape([qt.shape[0]] + [1] * input.ndim)
        elif input.ndim:
            out = out.unsqueeze(_norm_dim(dim, input.ndim, op) + 1)
    return out.squeeze(0) if scalar_q else out


@_listed("fp32")
def quantile(input: Tensor, q: Any, dim: Optional[int] = None, keepdim: bool = False, *,
             interpolation: str = "linear") -> Tensor:
    """``torch.quantile``: the ``q``-th quantiles (a number or a 1-d tensor; its dim comes first)
    of all elements or along ``dim``; a row holding NaN gives NaN. ``interpolation``: linear,
    lower, higher, midpoint or nearest. Sorted values gathered, so the gradient reaches the
    picked elements."""
    return _quantile("quantile", input, q, dim, keepdim, interpolation, ignore_nan=False)


@_listed("fp32")
def nanquantile(input: Tensor, q: Any, dim: Optional[int] = None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """``torch.nanquantile``: :func:`quantile` over the non-NaN elements of each row."""
    return _quantile("nanquantile", input, q, dim, keepdim, interpolation, ignore_nan=True)


# ------------------------------------------------------------------ elementwise


def logaddexp(input: Tensor, other: Any) -> Tensor:
    """``torch.logaddexp``: ``log(exp(a) + exp(b))`` without overflow."""
    a = _default_float_if_int(input)
    return _logaddexp(a, _as_tensor(other, a).to(a.dtype))


def logaddexp2(input: Tensor, other: Any) -> Tensor:
    """``torch.logaddexp2``: ``log2(2**a + 2**b)`` without overflow."""
    a = _default_float_if_int(input)
    ln2 = math.log(2.0)
    return logaddexp(a * ln2, _as_tensor(other, a).to(a.dtype) * ln2) / ln2


def xlogy(input: Any, other: Any) -> Tensor:
    """``torch.xlogy``: ``x * log(y)``, 0 where ``x == 0`` (unless ``y`` is NaN)."""
    x = input if isinstance(input, Tensor) else _as_tensor(input, other)
    y = _as_tensor(other, x)
    x, y = _default_float_if_int(x), _default_float_if_int(y)
    # log of 1 where x == 0: the gradient of the unused branch stays finite (no 0 * inf)
    safe = _core.where(x == 0, 1.0, y)
    return _core.where(y.isnan(), y, x * safe.log())


def logit(input: Tensor, eps: Optional[float] = None) -> Tensor:
    """``torch.logit``: ``log(p / (1 - p))``, ``p`` clamped to ``[eps, 1 - eps]`` when given."""
    p = _default_float_if_int(input)
    if eps is not None:
        p = p.clamp(eps, 1.0 - eps)
    return (p / (1.0 - p)).log()


def exp2(input: Tensor) -> Tensor:
    """``torch.exp2``: ``2 ** x``."""
    return 2.0 ** _default_float_if_int(input)


def sgn(input: Tensor) -> Tensor:
    """``torch.sgn``: the sign (the same as ``sign`` for real tensors)."""
    return input.sign()


def signbit(input: Tensor) -> Tensor:
    """``torch.signbit``: whether the sign bit is set (true for -0.0)."""
    if input.dtype == _core.bool_:
        return _core.zeros(input.shape, dtype=_core.bool_, device=input.device)
    if not input.is_floating_point():
        return input < 0
    return (input < 0).logical_or((input == 0).logical_and((1.0 / input) < 0))


def copysign(input: Any, other: Any) -> Tensor:
    """``torch.copysign``: ``|input|`` with the sign of ``other`` (-0.0 counts as negative)."""
    a = input if isinstance(input, Tensor) else _as_tensor(input, other)
    a = _default_float_if_int(a)
    b = _as_tensor(other, a)
    return _core.where(signbit(b), -a.abs(), a.abs())


def deg2rad(input: Tensor) -> Tensor:
    """``torch.deg2rad``: ``x * pi / 180``."""
    return _default_float_if_int(input) * (math.pi / 180.0)


def rad2deg(input: Tensor) -> Tensor:
    """``torch.rad2deg``: ``x * 180 / pi``."""
    return _default_float_if_int(input) * (180.0 / math.pi)


def float_power(input: Any, exponent: Any) -> Tensor:
    """``torch.float_power``: ``input ** exponent`` in float64."""
    if isinstance(input, Tensor):
        e = exponent.double() if isinstance(exponent, Tensor) else float(exponent)
        return input.double() ** e
    return float(input) ** exponent.double()


def heaviside(input: Tensor, values: Tensor) -> Tensor:
    """``torch.heaviside``: 0 below zero, 1 above, ``values`` at zero."""
    if isinstance(values, Tensor) and values.dtype != input.dtype:
        raise RuntimeError("heaviside is not yet implemented for tensors with different dtypes")
    return _core.where(input == 0, values, (input > 0).to(input.dtype))


def fmax(input: Tensor, other: Tensor) -> Tensor:
    """``torch.fmax``: the elementwise maximum, ignoring a NaN on either side."""
    m = input.maximum(other)
    return _core.where(input.isnan(), other, _core.where(other.isnan(), input, m))


def fmin(input: Tensor, other: Tensor) -> Tensor:
    """``torch.fmin``: the elementwise minimum, ignoring a NaN on either side."""
    m = input.minimum(other)
    return _core.where(input.isnan(), other, _core.where(other.isnan(), input, m))


def isin(elements: Any, test_elements: Any, *, assume_unique: bool = False, invert: bool = False) -> Tensor:
    """``torch.isin``: whether each element is among ``test_elements`` (sorted once, then a
    binary search per element)."""
    if not isinstance(elements, Tensor):
        elements = _as_tensor(elements, test_elements)
    if not isinstance(test_elements, Tensor):
        test_elements = _core.tensor(test_elements, device=elements.device)
    test = test_elements.reshape(-1)
    if test.numel() == 0:
        hit = _core.zeros(elements.shape, dtype=_core.bool_, device=elements.device)
    else:
        common = (elements.reshape(-1)[:0] + test[:0]).dtype
        srt = test.to(common).sort().values
        e = elements.to(common)
        pos = _core.searchsorted(srt, e.reshape(-1)).clamp(max=srt.shape[0] - 1)
        hit = (srt.index_select(0, pos) == e.reshape(-1)).reshape(elements.shape)
    return hit.logical_not() if invert else hit


def isposinf(input: Tensor) -> Tensor:
    """``torch.isposinf``."""
    return input.isinf().logical_and(input > 0)


def isneginf(input: Tensor) -> Tensor:
    """``torch.isneginf``."""
    return input.isinf().logical_and(input < 0)


def isreal(input: Tensor) -> Tensor:
    """``torch.isreal``: all true (there are no complex tensors here)."""
    return _core.ones(input.shape, dtype=_core.bool_, device=input.device)


def logical_xor(input: Tensor, other: Any) -> Tensor:
    """``torch.logical_xor``."""
    o = other if isinstance(other, Tensor) else _core.tensor(other, device=input.device)
    return (input != 0) != (o != 0)


# ------------------------------------------------------------------ products


def tensordot(a: Tensor, b: Tensor, dims: Any = 2, out: Optional[Tensor] = None) -> Tensor:
    """``torch.tensordot``: contracts the last ``dims`` dims of ``a`` with the first ``dims`` of
    ``b`` (or the listed pairs of dims): one matmul of the two reshaped operands."""
    if isinstance(dims, Tensor):
        dims = dims.tolist()
    if isinstance(dims, int):
        if dims < 0:
            raise RuntimeError(f"tensordot expects dims >= 0, but got dims={dims}")
        da, db = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        da, db = ([dims[0]] if isinstance(dims[0], int) else list(dims[0])), \
                 ([dims[1]] if isinstance(dims[1], int) else list(dims[1]))
    if len(da) != len(db):
        raise RuntimeError("both dimension lists should have same length")
    da = [_norm_dim(d, a.ndim, "tensordot") for d in da]
    db = [_norm_dim(d, b.ndim, "tensordot") for d in db]
    for i, j in zip(da, db):
        if a.shape[i] != b.shape[j]:
            raise RuntimeError(f"contracted dimensions need to match, but first has size {a.shape[i]} in dim {i} "
                               f"and second has size {b.shape[j]} in dim {j}")
    fa = [d for d in range(a.ndim) if d not in da]
    fb = [d for d in range(b.ndim) if d not in db]
    k = 1
    for d in da:
        k *= a.shape[d]
    am = a.permute(fa + da).reshape(-1, k)
    bm = b.permute(db + fb).reshape(k, -1)
    r = (am @ bm).reshape([a.shape[d] for d in fa] + [b.shape[d] for d in fb])
    if out is not None:
        out.copy_(r)
        return out
    return r


def kron(input: Tensor, other: Tensor) -> Tensor:
    """``torch.kron``: the Kronecker product (ranks padded with leading ones)."""
    n = builtins.max(input.ndim, other.ndim)
    a = input.reshape([1] * (n - input.ndim) + list(input.shape))
    b = other.reshape([1] * (n - other.ndim) + list(other.shape))
    ia = [s for d in a.shape for s in (d, 1)]
    ib = [s for d in b.shape for s in (1, d)]
    return (a.reshape(ia) * b.reshape(ib)).reshape([x * y for x, y in zip(a.shape, b.shape)])


def inner(input: Tensor, other: Tensor) -> Tensor:
    """``torch.inner``: sums over the last dims of both (a product with a 0-d tensor)."""
    if input.ndim == 0 or other.ndim == 0:
        return input * other
    return tensordot(input, other, ([-1], [-1]))


def _scaled(op: str, input: Tensor, p: Tensor, beta: Any, alpha: Any) -> Tensor:
    r = p if alpha == 1 else p * alpha
    if beta == 0:
        return r + _core.zeros(input.shape, dtype=input.dtype, device=input.device)  # NaN in input ignored
    return (input if beta == 1 else input * beta) + r


def addmv(input: Tensor, mat: Tensor, vec: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``torch.addmv``: ``beta * input + alpha * (mat @ vec)``."""
    return _scaled("addmv", input, mat @ vec, beta, alpha)


def addr(input: Tensor, vec1: Tensor, vec2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``torch.addr``: ``beta * input + alpha * outer(vec1, vec2)``."""
    return _scaled("addr", input, vec1.outer(vec2), beta, alpha)


@_listed("lower")
def addbmm(input: Tensor, batch1: Tensor, batch2: Tensor, *, beta: Any = 1, alpha: Any = 1) -> Tensor:
    """``torch.addbmm``: ``beta * input + alpha * sum_b(batch1[b] @ batch2[b])``."""
    return _scaled("addbmm", input, batch1.bmm(batch2).sum(0), beta, alpha)


def chain_matmul(*matrices: Tensor, out: Optional[Tensor] = None) -> Tensor:
    """``torch.chain_matmul``: the product of 2-d matrices, left to right."""
    if len(matrices) == 1 and isinstance(matrices[0], (list, tuple)):
        matrices = tuple(matrices[0])
    if not matrices:
        raise RuntimeError("chain_matmul(): Expected one or more matrices")
    r = matrices[0]
    for m in matrices[1:]:
        r = r @ m
    if out is not None:
        out.copy_(r)
        return out
    return r


def cov(input: Tensor, *, correction: int = 1, fweights: Optional[Tensor] = None,
        aweights: Optional[Tensor] = None) -> Tensor:
    """``torch.cov``: the covariance of the rows (variables) over the columns (observations),
    with integer frequency and float observation weights (NumPy's formula)."""
    if input.ndim > 2:
        raise RuntimeError(f"cov(): expected input to have two or fewer dimensions but got an input with {input.ndim} dimensions")
    x = input.reshape(1, -1) if input.ndim < 2 else input
    x = _default_float_if_int(x)
    n = x.shape[1]
    w = None
    if fweights is not None:
        w = fweights.to(x.dtype)
    if aweights is not None:
        w = aweights.to(x.dtype) if w is None else w * aweights.to(x.dtype)
    if w is None:
        wsum = _core.tensor(float(n), dtype=x.dtype, device=x.device)
        avg = x.mean(1)
        norm = wsum - correction
    else:
        wsum = w.sum()
        avg = (x * w).sum(1) / wsum
        if correction == 0:
            norm = wsum
        elif aweights is None:
            norm = wsum - correction
        else:
            norm = wsum - correction * (w * aweights.to(x.dtype)).sum() / wsum
    xm = x - avg.unsqueeze(1)
    xw = xm if w is None else xm * w
    c = (xw @ xm.transpose(0, 1)) / norm.clamp(min=0)
    return c.squeeze() if input.ndim < 2 else c


def corrcoef(input: Tensor) -> Tensor:
    """``torch.corrcoef``: Pearson correlation coefficients of the rows, clipped to [-1, 1]."""
    c = cov(input)
    if c.ndim == 0:
        return c / c
    d = c.diagonal().sqrt()
    return (c / d.unsqueeze(1) / d.unsqueeze(0)).clamp(-1, 1)


# ------------------------------------------------------------------ inverse hyperbolics, sinc


_LN2 = math.log(2.0)
_BIG = 1e8  # above it x**2 would lose the 1 (or overflow in float32): log(2x) is exact enough


def asinh(input: Tensor) -> Tensor:
    """``torch.asinh``: ``sign(x) * log1p(|x| + x^2 / (1 + sqrt(1 + x^2)))`` (no cancellation
    near 0), ``log(2|x|)`` for huge ``|x|``. Each branch sees clamped inputs, so the unused one
    sends no NaN into the gradient."""
    x = _default_float_if_int(input)
    if x.dtype in (_core.float16, _core.bfloat16):  # in float32, rounded once (the threshold overflows float16)
        return asinh(x.float()).to(x.dtype)
    a = x.abs()
    s = a.clamp(max=_BIG)
    small = (s + s * s / ((s * s + 1.0).sqrt() + 1.0)).log1p()
    large = a.clamp(min=_BIG).log() + _LN2
    return _core.where(a > _BIG, large, small) * x.sign()


def acosh(input: Tensor) -> Tensor:
    """``torch.acosh``: ``log1p(t + sqrt(t * (t + 2)))`` with ``t = x - 1`` (accurate near 1),
    ``log(2x)`` for huge ``x``; NaN below 1."""
    x = _default_float_if_int(input)
    if x.dtype in (_core.float16, _core.bfloat16):  # in float32, rounded once (the threshold overflows float16)
        return acosh(x.float()).to(x.dtype)
    t = x.clamp(max=_BIG) - 1.0
    small = (t + (t * (t + 2.0)).sqrt()).log1p()
    large = x.clamp(min=_BIG).log() + _LN2
    return _core.where(x > _BIG, large, small)


def atanh(input: Tensor) -> Tensor:
    """``torch.atanh``: ``0.5 * log1p(2x / (1 - x))``; +-inf at +-1, NaN beyond."""
    x = _default_float_if_int(input)
    return (2.0 * x / (1.0 - x)).log1p() * 0.5


def sinc(input: Tensor) -> Tensor:
    """``torch.sinc``: ``sin(pi x) / (pi x)``, 1 at 0."""
    x = _default_float_if_int(input)
    zero = x == 0
    px = _core.where(zero, 1.0, x) * math.pi
    return _core.where(zero, 1.0, px.sin() / px)


def positive(input: Tensor) -> Tensor:
    """``torch.positive``: ``input`` itself (bool tensors refused, as PyTorch)."""
    if input.dtype == _core.bool_:
        raise TypeError("The `+` operator, on a bool tensor is not supported.")
    return input


# ------------------------------------------------------------------ erfinv


def _erfinv_giles(x: Tensor) -> Tensor:
    """M. Giles' single-precision approximation of erfinv ("Approximating the erfinv function",
    GPU Computing Gems, 2011): two polynomials in ``w = -log(1 - x^2)``."""
    w = -((1.0 - x) * (1.0 + x)).log()
    central = w - 2.5
    p = central * 2.81022636e-08 + 3.43273939e-07
    for c in (-3.5233877e-06, -4.39150654e-06, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727,
              1.50140941):
        p = p * central + c
    tail = w.clamp(min=5.0).sqrt() - 3.0
    q = tail * -0.000200214257 + 0.000100950558
    for c in (0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406,
              2.83297682):
        q = q * tail + c
    return _core.where(w < 5.0, p, q) * x


def erfinv(input: Tensor) -> Tensor:
    """``torch.erfinv``: the inverse error function on (-1, 1) (+-inf at +-1, NaN beyond).

    Giles' approximation, then (on the CPU) two Newton steps on ``erf(y) = x`` in float64, which
    make it exact to the result's rounding; on the GPU (no float64) the approximation itself
    (a few float32 ulps). A composite: its gradient is that of the Newton map, which at the root
    is ``sqrt(pi)/2 * exp(y^2)``, the true derivative. Edge values go through a ``where`` on
    inputs replaced by 0, so they send no NaN into the gradient."""
    x = _default_float_if_int(input)
    dtype = x.dtype
    edge = x.abs() >= 1
    safe = _core.where(edge, 0.0, x)
    if x.device.type == "cpu":
        safe = safe.double()
    y = _erfinv_giles(safe)
    if safe.dtype == _core.float64:
        c = 2.0 / math.sqrt(math.pi)
        for _ in range(2):
            y = y - (y.erf() - safe) / ((-(y * y)).exp() * c)
    y = y.to(dtype)
    inf = _core.where(x.abs() == 1, x.detach() * float("inf"), float("nan"))  # no gradient path
    return _core.where(edge, inf.to(dtype), y)


def lerp_(self: Tensor, end: Tensor, weight: Any) -> Tensor:
    """``Tensor.lerp_``: ``self + weight * (end - self)`` in place."""
    return self.copy_(self.lerp(end, weight))


def erfinv_(self: Tensor) -> Tensor:
    """``Tensor.erfinv_``: :func:`erfinv` in place."""
    return self.copy_(erfinv(self))


# ------------------------------------------------------------------ the gamma family


def polygamma(n: int, input: Tensor) -> Tensor:
    """``torch.polygamma(n, input)``: the ``n``-th derivative of ``digamma``. ``n = 0`` is
    :func:`digamma` and ``n = 1`` trigamma, both engine primitives (``digamma``'s gradient is
    trigamma); ``n >= 2`` is ``(-1)^(n+1) n! zeta(n + 1, x)``, PyTorch's definition, computed on
    the host (``zeta.py``). Each order's gradient is the next order."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"polygamma(): argument 'n' must be int, not {type(n).__name__}")
    if n < 0:
        raise RuntimeError("polygamma(n, x) does not support negative n.")
    x = _default_float_if_int(input)
    if n == 0:
        return x.digamma()
    from .zeta import polygamma_host

    return polygamma_host(int(n), x)


def polygamma_(self: Tensor, n: int) -> Tensor:
    """``Tensor.polygamma_(n)``: :func:`polygamma` in place."""
    return self.copy_(polygamma(n, self))


def mvlgamma(input: Tensor, p: int) -> Tensor:
    """``torch.mvlgamma``: the multivariate log-gamma ``sum_i lgamma(x - i/2) + p(p-1)/4 log(pi)``
    over ``i < p``; every element must exceed ``(p - 1) / 2``, as PyTorch checks."""
    if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    x = _default_float_if_int(input)
    if x.numel() and not bool((x > (p - 1) / 2).all()):
        raise RuntimeError(f"All elements must be greater than (p-1)/2 = {(p - 1) / 2}")
    out = x.lgamma()
    for i in range(1, p):
        out = out + (x - i / 2).lgamma()
    return out + p * (p - 1) / 4 * math.log(math.pi)


def mvlgamma_(self: Tensor, p: int) -> Tensor:
    """``Tensor.mvlgamma_(p)``: :func:`mvlgamma` in place."""
    return self.copy_(mvlgamma(self, p))


# ------------------------------------------------------------------ integer maths


def _int_operand(x: Any, like: Tensor) -> Tensor:
    return x if isinstance(x, Tensor) else _core.tensor(x, dtype=like.dtype, device=like.device)


def bitwise_and(input: Tensor, other: Any) -> Tensor:
    """``torch.bitwise_and`` (``&``)."""
    return input & _int_operand(other, input)


def bitwise_or(input: Tensor, other: Any) -> Tensor:
    """``torch.bitwise_or`` (``|``)."""
    return input | _int_operand(other, input)


def bitwise_xor(input: Tensor, other: Any) -> Tensor:
    """``torch.bitwise_xor`` (``^``)."""
    return input ^ _int_operand(other, input)


def bitwise_not(input: Tensor) -> Tensor:
    """``torch.bitwise_not`` (``~``)."""
    return ~input


def _shift_check(op: str, input: Tensor) -> None:
    if input.is_floating_point() or input.dtype == _core.bool_:
        raise RuntimeError(f"\"{op}\" not implemented for '{str(input.dtype).split('.')[-1]}'")


def bitwise_left_shift(input: Tensor, other: Any) -> Tensor:
    """``torch.bitwise_left_shift`` (``<<``): ``input * 2**other``, wrapping as the dtype does."""
    _shift_check("lshift_cpu", input)
    two = _core.full((), 2, dtype=input.dtype, device=input.device)
    return input * two ** _int_operand(other, input)


def bitwise_right_shift(input: Tensor, other: Any) -> Tensor:
    """``torch.bitwise_right_shift`` (``>>``): arithmetic, ``floor(input / 2**other)``."""
    _shift_check("rshift_cpu", input)
    two = _core.full((), 2, dtype=input.dtype, device=input.device)
    return input.div(two ** _int_operand(other, input), rounding_mode="floor")


def _host_int(op: str, fn: Any, a: Any, b: Any) -> Tensor:
    like = a if isinstance(a, Tensor) else b
    for v in (a, b):
        if isinstance(v, float):
            raise TypeError(f"{op}(): argument 'other' must be an integer tensor or int, not float")
        if isinstance(v, Tensor) and v.is_floating_point():
            # either operand being floating makes the promoted type floating: no integer kernel
            raise RuntimeError(f"\"{op}_cpu\" not implemented for '{str(v.dtype).split('.')[-1]}'")
    x = a.cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    y = b.cpu().numpy() if isinstance(b, Tensor) else np.asarray(b)
    return _core.tensor(np.asarray(fn(x, y)), dtype=like.dtype, device=like.device)


def gcd(input: Tensor, other: Any) -> Tensor:
    """``torch.gcd`` (non-negative; NumPy's on the host: integers have no gradient)."""
    return _host_int("gcd", np.gcd, input, other)


def lcm(input: Tensor, other: Any) -> Tensor:
    """``torch.lcm`` (NumPy's on the host)."""
    return _host_int("lcm", np.lcm, input, other)


def histogram(input: Tensor, bins: Any = 100, *, range: Any = None, weight: Optional[Tensor] = None,
              density: bool = False) -> Any:
    """``torch.histogram``: ``(hist, bin_edges)`` of a float tensor (NumPy's binning on the host:
    the last bin includes its right edge, as both define it)."""
    if not input.is_floating_point():
        raise RuntimeError(f"torch.histogram: input tensor and bins tensors should have the same dtype, but got "
                           f"input {input.dtype} and bins float")
    edges = bins.cpu().numpy() if isinstance(bins, Tensor) else int(bins)
    w = weight.cpu().numpy().reshape(-1) if weight is not None else None
    hist, e = np.histogram(input.detach().cpu().numpy().reshape(-1), bins=edges, range=range, weights=w,
                           density=density)
    pair = namedtuple("histogram", ["hist", "bin_edges"])
    return pair(_core.tensor(hist, dtype=input.dtype, device=input.device),
                _core.tensor(e, dtype=input.dtype, device=input.device))


def histogramdd(input: Tensor, bins: Any, *, range: Any = None, weight: Optional[Tensor] = None,
                density: bool = False) -> Any:
    """``torch.histogramdd``: ``(hist, bin_edges)`` of the points in the last dimension of a float
    tensor (``(..., D)``, the leading dimensions flattened): ``bins`` an int for every dimension, a
    sequence of ints, or a sequence of ``D`` 1-d edge tensors; ``range`` PyTorch's flat
    ``[min0, max0, min1, max1, ...]``. NumPy's binning on the host (each last bin includes its right
    edge, an empty range widened by 1/2 on both sides, as both define them); ``bin_edges`` is a
    tuple of ``D`` tensors.

    >>> import backprop_rs as bp
    >>> h = bp.histogramdd(bp.tensor([[0., 1.], [1., 0.], [2., 0.], [2., 2.]]), bins=[3, 3],
    ...                    weight=bp.tensor([1., 2., 4., 8.]))
    >>> h.hist.tolist()
    [[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [4.0, 0.0, 8.0]]
    """
    if not isinstance(input, Tensor) or not input.is_floating_point():
        got = input.dtype if isinstance(input, Tensor) else type(input).__name__
        raise RuntimeError(f"torch.histogramdd: input tensor and bins tensors should have the same dtype, but got "
                           f"input {got} and bins float")
    if input.ndim < 1:
        raise RuntimeError("torch.histogramdd: input tensor should have at least 1 dimension, but got 0")
    d = int(input.shape[-1])
    points = input.detach().cpu().numpy().reshape(-1, d).astype(np.float64)
    if isinstance(bins, int):
        edges: Any = [int(bins)] * d
    elif isinstance(bins, Tensor):
        raise TypeError("torch.histogramdd: bins must be an int, a sequence of ints or a sequence of 1-d tensors")
    else:
        bins = list(bins)
        if len(bins) != d:
            raise RuntimeError(f"torch.histogramdd: expected {d} sequences of bin edges for each of the {d} "
                               f"dimensions of input, but got {len(bins)}")
        edges = [b.detach().cpu().numpy().astype(np.float64) if isinstance(b, Tensor) else int(b) for b in bins]
    for e in edges:
        if isinstance(e, int) and e <= 0:
            raise RuntimeError(f"torch.histogramdd: bins must be > 0, but got {e}")
    pairs = None
    if range is not None:
        flat = [float(v) for v in range]
        if len(flat) != 2 * d:
            raise RuntimeError(f"torch.histogramdd: for a {d}-dimensional histogram, range should have {2 * d} "
                               f"elements, but got {len(flat)}")
        pairs = [(flat[2 * i], flat[2 * i + 1]) for i in builtins.range(d)]
        for lo, hi in pairs:
            if lo > hi:
                raise RuntimeError(f"torch.histogramdd: min should not exceed max, but got min {lo} max {hi}")
    w = weight.detach().cpu().numpy().reshape(-1).astype(np.float64) if weight is not None else None
    if w is not None and w.shape[0] != points.shape[0]:
        raise RuntimeError(f"torch.histogramdd: if weight tensor is provided it should have the same shape as the "
                           f"input tensor excluding its innermost dimension, but got input with shape "
                           f"{tuple(input.shape)} and weight with shape {tuple(weight.shape)}")
    hist, e = np.histogramdd(points, bins=edges, range=pairs, weights=w, density=density)
    pair = namedtuple("histogramdd", ["hist", "bin_edges"])
    return pair(_core.tensor(hist, dtype=input.dtype, device=input.device),
                tuple(_core.tensor(x, dtype=input.dtype, device=input.device) for x in e))


def nanmedian(input: Tensor, dim: Optional[int] = None, keepdim: bool = False) -> Any:
    """``torch.nanmedian``: the lower median of the non-NaN values (NaN where there are none);
    with ``dim``, ``(values, indices)``. Sorted (NaN last), then the picked value gathered, so the
    gradient reaches that element."""
    from .counting import _values_indices

    if dim is None:
        flat = input.reshape(-1)
        if flat.numel() == 0:
            return _core.full((), float("nan"), dtype=input.dtype, device=input.device)
        return nanmedian(flat, 0).values
    d = _norm_dim(dim, input.ndim, "nanmedian")
    x = input.unsqueeze(0) if input.ndim == 0 else input
    srt = x.sort(d)
    count = x.isnan().logical_not().sum(d, keepdim=True) if x.is_floating_point() else \
        _core.full([s if i != d else 1 for i, s in enumerate(x.shape)], x.shape[d], dtype=_core.int64,
                   device=x.device)
    pos = ((count - 1).clamp(min=0)) // 2
    values = srt.values.gather(d, pos)
    indices = srt.indices.gather(d, pos)
    if x.is_floating_point():
        values = _core.where(count == 0, float("nan"), values)
    if not keepdim or input.ndim == 0:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return _values_indices(values, indices)


def msort(input: Tensor) -> Tensor:
    """``torch.msort``: sorted along dim 0."""
    return input.sort(0).values


def logical_xor_(self: Tensor, other: Any) -> Tensor:
    """``Tensor.logical_xor_``."""
    return self.copy_(logical_xor(self, other).to(self.dtype))
