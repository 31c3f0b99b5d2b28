"""PyTorch's top-level ``torch.*`` names that are another module's function under the name and
argument order PyTorch gives it (``torch.embedding(weight, indices)``, ``torch.batch_norm(input,
weight, bias, running_mean, ...)``, losses with an integer ``reduction``), and the small functions
only that namespace has (``logspace``, ``combinations``, ``trapezoid``, ``gradient``,
``unravel_index``, the ``*_scatter`` family, ``frexp``/``ldexp``/``nextafter``, the real-tensor
forms of ``real``/``conj``/``angle``, control flow ``cond``/``while_loop``...).

Everything here is a composite of engine ops (so it runs on every device and is differentiable
where PyTorch is), except ``frexp`` and ``nextafter``, which read the bits of the floats: they
run in NumPy on the host, the only exact way without a kernel for them.
"""

from __future__ import annotations

import builtins
import itertools
import math
import warnings
from collections import namedtuple
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function

pi = math.pi
e = math.e
inf = math.inf
nan = math.nan
newaxis = None

has_lapack = True  # the linalg decompositions run in NumPy's LAPACK
has_mkl = False
has_openmp = False

_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _reduction(op: str, reduction: Any) -> str:
    """``torch.<loss>``'s integer reduction (ATen's enum: 0 none, 1 mean, 2 sum) as F's string."""
    if isinstance(reduction, str):
        return reduction
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 0 (none), 1 (mean) or 2 (sum), got {reduction!r}")
    return _REDUCTIONS[reduction]


def _F():
    from .nn import functional

    return functional


# ------------------------------------------------------------------ nn.functional under torch.* names


def _same_order(name: str) -> Callable[..., Any]:
    """``torch.<name>`` whose arguments are ``F.<name>``'s in the same order (``conv2d``,
    ``pixel_shuffle``, ``cosine_similarity``...)."""

    def f(*args: Any, **kwargs: Any) -> Any:
        return getattr(_F(), name)(*args, **kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``backprop_rs.{name}`` is :func:`backprop_rs.nn.functional.{name}`."
    return f


_SAME_ORDER = (
    "adaptive_avg_pool1d", "avg_pool1d", "bilinear", "celu", "channel_shuffle", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "cosine_similarity", "hardshrink",
    "pairwise_distance", "pdist", "pixel_shuffle", "pixel_unshuffle", "prelu", "rms_norm", "selu", "threshold",
)


def layer_norm(input: Tensor, normalized_shape: Sequence[int], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, eps: float = 1e-5, cudnn_enable: bool = True) -> Tensor:
    """``torch.layer_norm``: :func:`backprop_rs.nn.functional.layer_norm` (``cudnn_enable`` is
    accepted and has no effect)."""
    return _F().layer_norm(input, normalized_shape, weight, bias, eps)


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5, cudnn_enabled: bool = True) -> Tensor:
    """``torch.group_norm``: :func:`backprop_rs.nn.functional.group_norm`."""
    return _F().group_norm(input, num_groups, weight, bias, eps)


def batch_norm(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], running_mean: Optional[Tensor],
               running_var: Optional[Tensor], training: bool, momentum: float, eps: float,
               cudnn_enabled: bool = True) -> Tensor:
    """``torch.batch_norm``: ATen's argument order (weight and bias before the running stats),
    unlike ``F.batch_norm``'s."""
    return _F().batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def instance_norm(input: Tensor, weight: Optional[Tensor], bias: Optional[Tensor], running_mean: Optional[Tensor],
                  running_var: Optional[Tensor], use_input_stats: bool, momentum: float, eps: float,
                  cudnn_enabled: bool = True) -> Tensor:
    """``torch.instance_norm``: ATen's argument order, unlike ``F.instance_norm``'s."""
    return _F().instance_norm(input, running_mean, running_var, weight, bias, use_input_stats, momentum, eps)


def embedding(weight: Tensor, indices: Tensor, padding_idx: int = -1, scale_grad_by_freq: bool = False,
              sparse: bool = False) -> Tensor:
    """``torch.embedding(weight, indices)``: the table first, as ATen's (``F.embedding`` takes the
    indices first); ``padding_idx=-1`` means none."""
    pad = None if padding_idx is None or padding_idx < 0 else padding_idx
    return _F().embedding(indices, weight, padding_idx=pad, scale_grad_by_freq=scale_grad_by_freq, sparse=sparse)


def _stride(stride: Any) -> Any:
    # ATen's `stride=[]` means "the kernel size", as F's None
    return None if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) else stride


def max_pool1d(input: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> Tensor:
    """``torch.max_pool1d``: :func:`backprop_rs.nn.functional.max_pool1d` without indices."""
    return _F().max_pool1d(input, kernel_size, _stride(stride), padding, dilation, ceil_mode)


def max_pool2d(input: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> Tensor:
    """``torch.max_pool2d``: :func:`backprop_rs.nn.functional.max_pool2d` without indices."""
    return _F().max_pool2d(input, kernel_size, _stride(stride), padding, dilation, ceil_mode)


def max_pool3d(input: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0, dilation: Any = 1,
               ceil_mode: bool = False) -> Tensor:
    """``torch.max_pool3d``: :func:`backprop_rs.nn.functional.max_pool3d` without indices."""
    return _F().max_pool3d(input, kernel_size, _stride(stride), padding, dilation, ceil_mode)


def max_pool1d_with_indices(input: Tensor, kernel_size: Any, stride: Any = (), padding: Any = 0,
                            dilation: Any = 1, ceil_mode: bool = False) -> Tuple[Tensor, Tensor]:
    """``torch.max_pool1d_with_indices``: ``(values, indices)``."""
    return _F().max_pool1d(input, kernel_size, _stride(stride), padding, dilation, ceil_mode, return_indices=True)


def adaptive_max_pool1d(input: Tensor, output_size: Any) -> Tuple[Tensor, Tensor]:
    """``torch.adaptive_max_pool1d``: ``(values, indices)``, as ATen returns them."""
    return _F().adaptive_max_pool1d(input, output_size, return_indices=True)


def constant_pad_nd(input: Tensor, pad: Sequence[int], value: float = 0) -> Tensor:
    """``torch.constant_pad_nd``: ``F.pad(input, pad, "constant", value)``."""
    return _F().pad(input, list(pad), "constant", value)


def dropout(input: Tensor, p: float, train: bool) -> Tensor:
    """``torch.dropout(input, p, train)``."""
    return _F().dropout(input, p, train)


def alpha_dropout(input: Tensor, p: float, train: bool) -> Tensor:
    """``torch.alpha_dropout(input, p, train)``."""
    return _F().alpha_dropout(input, p, train)


def feature_alpha_dropout(input: Tensor, p: float, train: bool) -> Tensor:
    """``torch.feature_alpha_dropout(input, p, train)``."""
    return _F().feature_alpha_dropout(input, p, train)


def feature_dropout(input: Tensor, p: float, train: bool) -> Tensor:
    """``torch.feature_dropout``: whole channels (dim 1 of ``(N, C, ...)``) zeroed with probability
    ``p``, the rest scaled by ``1/(1-p)``; any rank from 2 up, unlike ``F.dropout1d/2d/3d``."""
    if not train or p == 0:
        return input
    if input.ndim < 2:
        raise RuntimeError(f"feature_dropout: expected an input with at least 2 dims (N, C, ...), got {input.ndim}")
    mask_shape = list(input.shape[:2]) + [1] * (input.ndim - 2)
    mask = _F().dropout(_core.ones(*mask_shape, dtype=input.dtype).to(input.device), p, True)
    return input * mask


def _inplace(f: Callable[..., Tensor], name: str) -> Callable[..., Tensor]:
    def g(input: Tensor, *args: Any) -> Tensor:
        return input.copy_(f(input, *args))

    g.__name__ = g.__qualname__ = name
    g.__doc__ = f"``backprop_rs.{name}``: the in-place form of ``{name[:-1]}``."
    return g


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          generator: Any = None) -> Tensor:
    """``torch.rrelu``: :func:`backprop_rs.nn.functional.rrelu`."""
    if generator is not None:
        raise NotImplementedError("rrelu: generator= is not supported; seed with backprop_rs.manual_seed")
    return _F().rrelu(input, lower, upper, training)


# ------------------------------------------------------------------ losses with ATen's integer reduction


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     pos_weight: Optional[Tensor] = None, reduction: Any = 1) -> Tensor:
    """``torch.binary_cross_entropy_with_logits``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().binary_cross_entropy_with_logits(input, target, weight, reduction=_reduction(
        "binary_cross_entropy_with_logits", reduction), pos_weight=pos_weight)


def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          reduction: Any = 1) -> Tensor:
    """``torch.cosine_embedding_loss``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().cosine_embedding_loss(input1, input2, target, margin,
                                      reduction=_reduction("cosine_embedding_loss", reduction))


def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, reduction: Any = 1) -> Tensor:
    """``torch.hinge_embedding_loss``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().hinge_embedding_loss(input, target, margin, reduction=_reduction("hinge_embedding_loss", reduction))


def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        reduction: Any = 1) -> Tensor:
    """``torch.margin_ranking_loss``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().margin_ranking_loss(input1, input2, target, margin,
                                    reduction=_reduction("margin_ranking_loss", reduction))


def kl_div(input: Tensor, target: Tensor, reduction: Any = 1, *, log_target: bool = False) -> Tensor:
    """``torch.kl_div``; ``reduction`` 0/1/2 is none/mean/sum (mean over all elements, ATen's)."""
    red = _reduction("kl_div", reduction)
    if red == "mean":
        # ATen's mean is over elements; F.kl_div's "mean" says the same and warns about it
        return _F().kl_div(input, target, reduction="sum", log_target=log_target) / builtins.max(input.numel(), 1)
    return _F().kl_div(input, target, reduction=red, log_target=log_target)


def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool, full: bool, eps: float,
                     reduction: Any) -> Tensor:
    """``torch.poisson_nll_loss`` (every argument positional, as ATen's)."""
    return _F().poisson_nll_loss(input, target, log_input, full, eps=eps,
                                 reduction=_reduction("poisson_nll_loss", reduction))


def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2.0,
                        eps: float = 1e-6, swap: bool = False, reduction: Any = 1) -> Tensor:
    """``torch.triplet_margin_loss``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().triplet_margin_loss(anchor, positive, negative, margin, p, eps, swap,
                                    reduction=_reduction("triplet_margin_loss", reduction))


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths: Any, target_lengths: Any, blank: int = 0,
             reduction: Any = 1, zero_infinity: bool = False) -> Tensor:
    """``torch.ctc_loss``; ``reduction`` 0/1/2 is none/mean/sum."""
    return _F().ctc_loss(log_probs, targets, input_lengths, target_lengths, blank,
                         reduction=_reduction("ctc_loss", reduction), zero_infinity=zero_infinity)


# ------------------------------------------------------------------ creation


def logspace(start: Any, end: Any, steps: int, base: float = 10.0, *, dtype: Any = None, layout: Any = None,
             device: Any = None, requires_grad: bool = False, pin_memory: bool = False,
             out: Optional[Tensor] = None) -> Tensor:
    """``steps`` values ``base ** linspace(start, end, steps)``, as ``torch.logspace``."""
    start = start.item() if isinstance(start, Tensor) else start
    end = end.item() if isinstance(end, Tensor) else end
    # exponents in float64, like NumPy: float32 exponents would lose digits of base**x
    exps = _core.linspace(float(start), float(end), steps, dtype=_core.float64)
    vals = _core.full((steps,), float(base), dtype=_core.float64).pow(exps)
    res = vals.to(dtype if dtype is not None else _default_dtype())
    if device is not None:
        res = res.to(device)
    if out is not None:
        return out.copy_(res)
    return res.requires_grad_(True) if requires_grad else res


def _default_dtype() -> Any:
    from ._compat import get_default_dtype

    return get_default_dtype()


def range(start: float, end: float, step: float = 1, *, dtype: Any = None, layout: Any = None,  # noqa: A001
          device: Any = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """``torch.range``: like ``arange`` but including ``end``, in the default float dtype; deprecated
    in PyTorch (and warns the same way), use :func:`arange`."""
    warnings.warn("torch.range is deprecated and will be removed in a future release because its behavior is "
                  "inconsistent with Python's range builtin. Instead, use torch.arange, which produces values in "
                  "[start, end).", UserWarning, stacklevel=2)
    if step == 0:
        raise RuntimeError("range: step must be nonzero")
    n = int(math.floor((end - start) / step)) + 1
    if n < 0:
        raise RuntimeError("range: upper bound and larger bound inconsistent with step sign")
    dt = dtype if dtype is not None else _default_dtype()
    vals = _core.arange(n, dtype=_core.float64) * float(step) + float(start)
    res = vals.to(dt)
    if device is not None:
        res = res.to(device)
    return res.requires_grad_(True) if requires_grad else res


def scalar_tensor(s: Any, *, dtype: Any = None, layout: Any = None, device: Any = None,
                  requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """A 0-d tensor holding ``s``, in the default float dtype unless ``dtype`` is given."""
    res = _core.tensor(s.item() if isinstance(s, Tensor) else s, dtype=dtype if dtype is not None else
                       _default_dtype())
    if device is not None:
        res = res.to(device)
    return res.requires_grad_(True) if requires_grad else res


def empty_strided(size: Sequence[int], stride: Sequence[int], *, dtype: Any = None, layout: Any = None,
                  device: Any = None, requires_grad: bool = False, pin_memory: bool = False) -> Tensor:
    """An uninitialised tensor of ``size`` with exactly these strides (a view of a storage just
    big enough, as ``torch.empty_strided``)."""
    size, stride = tuple(size), tuple(stride)
    if len(size) != len(stride):
        raise RuntimeError(f"empty_strided: mismatch in length of strides and shape: {len(size)} != {len(stride)}")
    need = 0 if 0 in size else 1 + builtins.sum((n - 1) * s for n, s in zip(size, stride))
    kw = {} if dtype is None else {"dtype": dtype}
    base = _core.empty(need, **kw)
    if device is not None:
        base = base.to(device)
    res = base.as_strided(size, stride)
    return res.requires_grad_(True) if requires_grad else res


def asarray(obj: Any, *, dtype: Any = None, device: Any = None, copy: Optional[bool] = None,
            requires_grad: bool = False) -> Tensor:
    """``torch.asarray``: a tensor sharing ``obj``'s memory where it can (a tensor, or a NumPy array
    of a supported dtype, kept as is unless ``dtype``/``device`` ask for a conversion), else a new
    one; ``copy=True`` always copies and ``copy=False`` raises when it would have to."""
    if isinstance(obj, Tensor):
        res = obj
        if dtype is not None and res.dtype != dtype:
            if copy is False:
                raise ValueError("asarray: can't alias the tensor: a dtype conversion needs a copy (copy=False)")
            res = res.to(dtype)
        if device is not None and res.device != _core.device(device):
            if copy is False:
                raise ValueError("asarray: can't alias the tensor: a device move needs a copy (copy=False)")
            res = res.to(device)
        if copy and res is obj:
            res = obj.clone()
    elif isinstance(obj, np.ndarray) and copy is not True:
        res = _core.as_tensor(obj, dtype=dtype, device=device)
        if copy is False and not np.shares_memory(np.asarray(obj), res.numpy() if res.device.type == "cpu"
                                                  else np.empty(0)):
            raise ValueError("asarray: can't alias the array: its dtype or device needs a copy (copy=False)")
    else:
        if copy is False:
            raise ValueError(f"asarray: can't alias an object of type {type(obj).__name__} (copy=False)")
        res = _core.tensor(np.array(obj, copy=True) if isinstance(obj, np.ndarray) else obj, dtype=dtype)
        if device is not None:
            res = res.to(device)
    return res.requires_grad_(True) if requires_grad else res


def frombuffer(buffer: Any, *, dtype: Any, count: int = -1, offset: int = 0, requires_grad: bool = False) -> Tensor:
    """A 1-D tensor over the bytes of a Python buffer (``bytes``, ``bytearray``, ``array``...)."""
    # the NumPy dtype of ours: the dtype a one-element tensor converts to
    np_dtype = _core.zeros(1, dtype=dtype).numpy().dtype
    arr = np.frombuffer(buffer, dtype=np_dtype, count=count, offset=offset)
    if not arr.flags.writeable:
        warnings.warn("The given buffer is not writable: the tensor made from it is a copy here (PyTorch shares "
                      "it and warns that writing is undefined).", UserWarning, stacklevel=2)
        arr = arr.copy()
    res = _core.from_numpy(arr)
    return res.requires_grad_(True) if requires_grad else res


# ------------------------------------------------------------------ maths


def pow(input: Any, exponent: Any, *, out: Optional[Tensor] = None) -> Tensor:  # noqa: A001
    """``input ** exponent`` (broadcast); ``input`` may be a Python number, as ``torch.pow(2, t)``."""
    res = input.pow(exponent) if isinstance(input, Tensor) else exponent.__rpow__(input)
    return out.copy_(res) if out is not None else res


def dist(input: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """The ``p``-norm of ``input - other`` (broadcast), over all elements."""
    from . import linalg

    return linalg.vector_norm(input - other, ord=p)


def renorm(input: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """Each slice along ``dim`` whose ``p``-norm exceeds ``maxnorm`` scaled to norm ``maxnorm``
    (PyTorch's ``1e-7`` guard in the divisor); differentiable through the norm."""
    from . import linalg

    if p <= 0:
        raise RuntimeError(f"renorm: non-positive-norm not supported, got p={p}")
    if maxnorm < 0:
        raise RuntimeError(f"renorm: expected maxnorm to be >= 0 but got {maxnorm}")
    if input.ndim <= 1:
        raise RuntimeError(f"renorm: input needs at least 2 dimensions, got {input.ndim} dimensions")
    d = dim % input.ndim
    others = [i for i in builtins.range(input.ndim) if i != d]
    norms = linalg.vector_norm(input, ord=p, dim=others, keepdim=True)
    factor = _core.where(norms > maxnorm, maxnorm / (norms + 1e-7), _core.ones_like(norms))
    return input * factor


class _Frexp(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Any:
        m, ex = np.frexp(x.detach().cpu().numpy())
        mant = _core.from_numpy(np.ascontiguousarray(m)).to(x.device)
        exp = _core.from_numpy(np.ascontiguousarray(ex.astype(np.int32))).to(x.device)
        ctx.mark_non_differentiable(exp)
        ctx.save_for_backward(exp)
        return mant, exp

    @staticmethod
    def backward(ctx: Any, g_m: Tensor, g_e: Any) -> Tensor:
        (exp,) = ctx.saved_tensors
        # mantissa = x * 2^-exponent with the exponent piecewise constant
        return g_m / _core.full(tuple(exp.shape), 2.0, dtype=g_m.dtype).to(g_m.device).pow(exp.to(g_m.dtype))


_FrexpResult = namedtuple("frexp", ["mantissa", "exponent"])


def frexp(input: Tensor) -> Any:
    """``(mantissa, exponent)`` with ``input = mantissa * 2**exponent`` and ``|mantissa|`` in
    [0.5, 1) (0, inf and NaN give exponent 0), exponent int32; differentiable in the mantissa."""
    if not input.is_floating_point():
        raise RuntimeError(f"torch.frexp() only supports floating-point dtypes, got {input.dtype}")
    return _FrexpResult(*_Frexp.apply(input))


def ldexp(input: Tensor, other: Any, *, out: Optional[Tensor] = None) -> Tensor:
    """``input * 2**other`` in a floating dtype (integer inputs promote to the default float)."""
    if not isinstance(other, Tensor):
        other = _core.tensor(other)
    two = 2.0 ** other.to(input.dtype if input.is_floating_point() else _default_dtype())
    res = input * two
    return out.copy_(res) if out is not None else res


class _NextAfter(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, y: Tensor) -> Tensor:
        a, b = x.detach().cpu().numpy(), y.detach().cpu().numpy()
        return _core.from_numpy(np.ascontiguousarray(np.nextafter(a, b.astype(a.dtype)))).to(x.device)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        raise RuntimeError("the derivative for 'nextafter' is not implemented.")


def nextafter(input: Tensor, other: Any, *, out: Optional[Tensor] = None) -> Tensor:
    """The next float after ``input`` towards ``other`` (broadcast), in ``input``'s dtype."""
    if not isinstance(other, Tensor):
        other = _core.tensor(other, dtype=input.dtype)
    if not input.is_floating_point() or not other.is_floating_point():
        raise RuntimeError(f"nextafter: expected floating-point tensors, got {input.dtype} and {other.dtype}")
    if input.dtype != other.dtype:
        raise RuntimeError(f"nextafter: expected both inputs to have the same dtype, got {input.dtype} and "
                           f"{other.dtype}")
    shape = tuple(np.broadcast_shapes(tuple(input.shape), tuple(other.shape)))
    res = _NextAfter.apply(input.broadcast_to(shape), other.broadcast_to(shape))
    return out.copy_(res) if out is not None else res


class _Angle(Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        res = _core.where(x < 0, _core.full_like(x, math.pi), _core.zeros_like(x))
        return _core.where(x.isnan(), x, res)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        return g * 0.0


def angle(input: Tensor) -> Tensor:
    """The argument of a real number: pi for negatives (``-0.0`` included: 0, as PyTorch, where
    NumPy says pi), 0 otherwise, NaN for NaN; integers give the default float dtype. Its gradient is
    zero, as PyTorch's for real inputs."""
    x = input if input.is_floating_point() else input.to(_default_dtype())
    return _Angle.apply(x)


def real(input: Tensor) -> Tensor:
    """``input`` itself: the real part of a real tensor (no complex dtypes here)."""
    return input


def imag(input: Tensor) -> Tensor:
    """Raises, as PyTorch does for real tensors."""
    raise RuntimeError("imag is not implemented for tensors with non-complex dtypes.")


def conj(input: Tensor) -> Tensor:
    """``input`` itself: the conjugate of a real tensor."""
    return input


def conj_physical(input: Tensor) -> Tensor:
    """A copy of ``input`` (the materialised conjugate of a real tensor)."""
    return input.clone()


def resolve_conj(input: Tensor) -> Tensor:
    """``input``: a real tensor has no lazy conjugation to resolve."""
    return input


def resolve_neg(input: Tensor) -> Tensor:
    """``input``: there are no lazily negated tensors here."""
    return input


def is_conj(input: Tensor) -> bool:
    """``False``: no lazily conjugated tensors."""
    return False


def is_neg(input: Tensor) -> bool:
    """``False``: no lazily negated tensors."""
    return False


def _no_complex(name: str) -> Callable[..., Any]:
    def f(*args: Any, **kwargs: Any) -> Any:
        from ._compat import unsupported_dtype

        raise unsupported_dtype("complex64", f"backprop_rs.{name}")

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``torch.{name}`` needs complex tensors, which backprop_rs does not have: it raises saying so."
    return f


def vander(x: Tensor, N: Optional[int] = None, increasing: bool = False) -> Tensor:
    """The Vandermonde matrix of 1-D ``x``: columns ``x**(N-1), ..., x**0`` (``increasing``
    reverses them), by a cumulative product as PyTorch (exact for integers, differentiable)."""
    if x.ndim != 1:
        raise RuntimeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise RuntimeError("N must be non-negative.")
    if n == 0:
        return _core.empty(x.shape[0], 0, dtype=x.dtype).to(x.device)
    dt = x.dtype if x.dtype != _core.bool_ else _core.int64
    cols = [_core.ones(x.shape[0], 1, dtype=dt).to(x.device)]
    if n > 1:
        cols.append(x.to(dt).unsqueeze(1).expand(x.shape[0], n - 1))
    res = _core.cat(cols, 1).cumprod(1)
    return res if increasing else res.flip(1)


def combinations(input: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """All length-``r`` combinations of the 1-D ``input``'s elements (``itertools.combinations``
    order; ``with_replacement`` as ``combinations_with_replacement``), shape ``(count, r)``."""
    if input.ndim != 1:
        raise RuntimeError(f"Expect a 1D vector, but got shape {list(input.shape)}")
    if r < 0:
        raise RuntimeError(f"Expect a non-negative number, but got {r}")
    if r == 0:
        return _core.empty(0, dtype=input.dtype).to(input.device)
    gen = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    idx = list(gen(builtins.range(input.shape[0]), r))
    if not idx:
        return _core.empty(0, r, dtype=input.dtype).to(input.device)
    index = _core.tensor(idx, dtype=_core.int64).to(input.device)
    return input[index.reshape(-1)].reshape(len(idx), r)


def _along(y: Tensor, dim: int, start: int, stop: Optional[int]) -> Tensor:
    n = y.shape[dim]
    stop = n if stop is None else stop % (n + 1) if stop >= 0 else n + stop
    return y.narrow(dim, start, builtins.max(stop - start, 0))


def _spacing(y: Tensor, x: Optional[Tensor], dx: Any, dim: int) -> Any:
    if x is None:
        return 1.0 if dx is None else dx
    if x.ndim == 1:
        if x.shape[0] != y.shape[dim]:
            raise RuntimeError(f"trapezoid: There must be one `x` value for each sample point, got {x.shape[0]} "
                               f"and {y.shape[dim]}")
        shape = [1] * y.ndim
        shape[dim] = x.shape[0] - 1
        return (x[1:] - x[:-1]).reshape(*shape)
    d = dim - y.ndim if dim >= 0 else dim
    return _along(x, d, 1, None) - _along(x, d, 0, -1)


def trapezoid(y: Tensor, x: Any = None, *, dx: Any = None, dim: int = -1) -> Tensor:
    """The trapezoid rule along ``dim``: sample points ``x`` (1-D, or broadcastable to ``y``) or a
    constant spacing ``dx`` (default 1)."""
    if x is not None and not isinstance(x, Tensor):
        dx, x = x, None
    d = dim % y.ndim
    if y.shape[d] == 0:
        return y.sum(d)
    h = _spacing(y, x, dx, d)
    return ((_along(y, d, 1, None) + _along(y, d, 0, -1)) * h).sum(d) / 2


def trapz(y: Tensor, x: Any = None, *, dx: Any = None, dim: int = -1) -> Tensor:
    """``trapz`` is :func:`trapezoid`."""
    return trapezoid(y, x, dx=dx, dim=dim)


def cumulative_trapezoid(y: Tensor, x: Any = None, *, dx: Any = None, dim: int = -1) -> Tensor:
    """The running trapezoid integral along ``dim`` (one value fewer than ``y`` has)."""
    if x is not None and not isinstance(x, Tensor):
        dx, x = x, None
    d = dim % y.ndim
    h = _spacing(y, x, dx, d)
    return ((_along(y, d, 1, None) + _along(y, d, 0, -1)) * h / 2).cumsum(d)


def _gradient_1d(f: Tensor, d: int, h: Any, edge_order: int) -> Tensor:
    """NumPy's ``gradient`` along one dim: second-order central differences inside, first- or
    second-order one-sided ones at the edges; ``h`` a number or a 1-D coordinate tensor."""
    n = f.shape[d]
    sl = lambda a, b: _along(f, d, a, b)  # noqa: E731
    if not isinstance(h, Tensor):
        h = float(h)
        inner = (sl(2, None) - sl(0, -2)) / (2 * h)
        if edge_order == 1:
            first = (sl(1, 2) - sl(0, 1)) / h
            last = (sl(n - 1, n) - sl(n - 2, n - 1)) / h
        else:
            first = (-1.5 * sl(0, 1) + 2 * sl(1, 2) - 0.5 * sl(2, 3)) / h
            last = (0.5 * sl(n - 3, n - 2) - 2 * sl(n - 2, n - 1) + 1.5 * sl(n - 1, n)) / h
        return _core.cat([first, inner, last], d)
    if h.ndim != 1 or h.shape[0] != n:
        raise RuntimeError(f"torch.gradient expected each tensor to be on the same device and to have as many "
                           f"coordinates as the dimension has samples ({n}), got shape {list(h.shape)}")
    shape = [1] * f.ndim
    h = h.to(f.dtype)

    def col(v: Tensor) -> Tensor:
        s = list(shape)
        s[d] = v.shape[0]
        return v.reshape(*s)

    dx = h[1:] - h[:-1]
    a, b = dx[:-1], dx[1:]
    # non-uniform second-order central difference (NumPy's weights)
    w0, w1, w2 = -b / (a * (a + b)), (b - a) / (a * b), a / (b * (a + b))
    inner = col(w0) * sl(0, -2) + col(w1) * sl(1, -1) + col(w2) * sl(2, None)
    if edge_order == 1:
        first = (sl(1, 2) - sl(0, 1)) / col(dx[0:1])
        last = (sl(n - 1, n) - sl(n - 2, n - 1)) / col(dx[-1:])
    else:
        a0, b0 = dx[0:1], dx[1:2]
        first = (col(-(2 * a0 + b0) / (a0 * (a0 + b0))) * sl(0, 1) + col((a0 + b0) / (a0 * b0)) * sl(1, 2)
                 + col(-a0 / (b0 * (a0 + b0))) * sl(2, 3))
        a1, b1 = dx[-2:-1], dx[-1:]
        last = (col(b1 / (a1 * (a1 + b1))) * sl(n - 3, n - 2) + col(-(a1 + b1) / (a1 * b1)) * sl(n - 2, n - 1)
                + col((2 * b1 + a1) / (b1 * (a1 + b1))) * sl(n - 1, n))
    return _core.cat([first, inner, last], d)


def gradient(input: Tensor, *, spacing: Any = 1, dim: Any = None, edge_order: int = 1) -> Tuple[Tensor, ...]:
    """``torch.gradient`` (NumPy's ``gradient``): one tensor of estimated derivatives per dim in
    ``dim`` (all by default). ``spacing``: a number (every dim), a list of numbers (one per dim),
    or a list of 1-D coordinate tensors (non-uniform samples)."""
    if edge_order not in (1, 2):
        raise RuntimeError("torch.gradient only supports edge_order=1 and edge_order=2.")
    dims = list(builtins.range(input.ndim)) if dim is None else [dim] if isinstance(dim, int) else list(dim)
    dims = [d % input.ndim for d in dims]
    if isinstance(spacing, (list, tuple)):
        if len(spacing) != len(dims):
            raise RuntimeError(f"torch.gradient expected spacing to be unspecified, a scalar or it's spacing and dim "
                               f"arguments to have the same length, but got a spacing argument of length "
                               f"{len(spacing)} and a dim argument of length {len(dims)}.")
        hs = [s.item() if isinstance(s, Tensor) and s.ndim == 0 else s for s in spacing]
    else:
        hs = [spacing.item() if isinstance(spacing, Tensor) else spacing] * len(dims)
    x = input if input.is_floating_point() else input.to(_default_dtype())
    for d in dims:
        if x.shape[d] < edge_order + 1:
            raise RuntimeError("torch.gradient expected each dimension size to be at least edge_order+1")
    return tuple(_gradient_1d(x, d, h, edge_order) for d, h in zip(dims, hs))


def unravel_index(indices: Any, shape: Any) -> Tuple[Tensor, ...]:
    """The coordinates in ``shape`` of flat ``indices`` (a tuple of int64 tensors of ``indices``'
    shape); negative and too-large indices wrap modulo the element count, as PyTorch's."""
    if not isinstance(indices, Tensor):
        indices = _core.tensor(indices)
    if indices.is_floating_point() or indices.dtype == _core.bool_:
        raise TypeError(f"expected 'indices' to be integer dtype, but got {indices.dtype}")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if builtins.any(s < 0 for s in shape):
        raise ValueError("'shape' cannot have negative values, but got " + str(tuple(shape)))
    total = math.prod(shape)
    idx = indices.to(_core.int64)
    if total > 0:
        idx = idx.remainder(total)
    out = []
    for s in reversed(shape):
        out.append(idx.remainder(s) if s > 0 else idx * 0)
        idx = idx.div(s, rounding_mode="floor") if s > 0 else idx
    return tuple(reversed(out))


# ------------------------------------------------------------------ views written into copies


def _scatter_view(op: str, input: Tensor, src: Tensor, view: Callable[[Tensor], Tensor]) -> Tensor:
    """``input`` with the elements a view of it names replaced by ``src``: the view is taken of the
    flat positions, so one ``index_copy`` writes them (differentiable in both)."""
    from .stacking import index_copy

    pos = view(_core.arange(input.numel()).to(input.device).reshape(*input.shape))
    if tuple(pos.shape) != tuple(src.shape):
        raise RuntimeError(f"{op}: expected src to have a size equal to the slice of self. src size = "
                           f"{list(src.shape)}, slice size = {list(pos.shape)}")
    flat = index_copy(input.reshape(input.numel()), 0, pos.reshape(-1), src.to(input.dtype).reshape(-1))
    return flat.reshape(*input.shape)


def select_scatter(input: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """``input`` with ``input.select(dim, index)`` replaced by ``src``."""
    return _scatter_view("select_scatter", input, src, lambda p: p.select(dim, index))


def slice_scatter(input: Tensor, src: Tensor, dim: int = 0, start: Optional[int] = None, end: Optional[int] = None,
                  step: int = 1) -> Tensor:
    """``input`` with the slice ``start:end:step`` of ``dim`` replaced by ``src``."""
    def view(p: Tensor) -> Tensor:
        key = [slice(None)] * p.ndim
        key[dim] = slice(start, end, step)
        return p[tuple(key)]

    return _scatter_view("slice_scatter", input, src, view)


def diagonal_scatter(input: Tensor, src: Tensor, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
    """``input`` with ``input.diagonal(offset, dim1, dim2)`` replaced by ``src``."""
    return _scatter_view("diagonal_scatter", input, src, lambda p: p.diagonal(offset, dim1, dim2))


def as_strided_scatter(input: Tensor, src: Tensor, size: Sequence[int], stride: Sequence[int],
                       storage_offset: Optional[int] = None) -> Tensor:
    """``input`` with ``input.as_strided(size, stride, storage_offset)`` replaced by ``src``
    (strides over ``input``'s contiguous layout, as PyTorch's)."""
    return _scatter_view("as_strided_scatter", input.contiguous(), src,
                         lambda p: p.as_strided(size, stride, storage_offset or 0))


def split_with_sizes(input: Tensor, split_sizes: Sequence[int], dim: int = 0) -> Tuple[Tensor, ...]:
    """``input`` split along ``dim`` into pieces of exactly these sizes (which must sum to the dim)."""
    n = input.shape[dim]
    if builtins.sum(split_sizes) != n:
        raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's size at "
                           f"dimension {dim}), but got split_sizes={list(split_sizes)}")
    return tuple(input.split(list(split_sizes), dim))


def unsafe_chunk(input: Tensor, chunks: int, dim: int = 0) -> Tuple[Tensor, ...]:
    """:meth:`Tensor.chunk` (PyTorch's unsafe variant only skips a version check)."""
    return tuple(input.chunk(chunks, dim))


def unsafe_split(input: Tensor, split_size: Any, dim: int = 0) -> Tuple[Tensor, ...]:
    """:meth:`Tensor.split` (PyTorch's unsafe variant only skips a version check)."""
    return tuple(input.split(split_size, dim))


def ger(input: Tensor, vec2: Tensor) -> Tensor:
    """``ger`` is :func:`outer` (its old name)."""
    return input.outer(vec2)


# ------------------------------------------------------------------ control flow, misc


def cond(pred: Any, true_fn: Callable[..., Any], false_fn: Callable[..., Any], operands: Any = ()) -> Any:
    """``torch.cond``: ``true_fn(*operands)`` if ``pred`` else ``false_fn(*operands)``; ``pred`` a
    bool or a one-element tensor. Run eagerly (there is no graph capture to keep both branches of)."""
    if isinstance(pred, Tensor):
        if pred.numel() != 1:
            raise RuntimeError(f"cond: expected pred to be a bool or a tensor with a single element, got shape "
                               f"{list(pred.shape)}")
        pred = builtins.bool(pred.item())
    return true_fn(*operands) if pred else false_fn(*operands)


def while_loop(cond_fn: Callable[..., Any], body_fn: Callable[..., Any], carried_inputs: Any) -> Any:
    """``torch.while_loop``: ``carried = body_fn(*carried)`` while ``cond_fn(*carried)``; returns the
    final carried values as a tuple. Run eagerly."""
    carried = tuple(carried_inputs)
    while True:
        c = cond_fn(*carried)
        if isinstance(c, Tensor):
            c = builtins.bool(c.item())
        if not c:
            return carried
        out = body_fn(*carried)
        carried = tuple(out) if isinstance(out, (tuple, list)) else (out,)


def typename(obj: Any) -> str:
    """``torch.typename``: a tensor's type string (``"backprop_rs.FloatTensor"``), else the
    object's (or class's) qualified name."""
    if isinstance(obj, Tensor):
        return obj.type()
    cls = obj if isinstance(obj, type) else type(obj)
    module = cls.__module__
    return cls.__qualname__ if module in (None, "builtins") else f"{module}.{cls.__qualname__}"


def is_storage(obj: Any) -> bool:
    """``False``: backprop_rs has no storage objects."""
    return False


_warn_always = False


def set_warn_always(b: bool) -> None:
    """Records the flag ``torch.set_warn_always`` sets (our warnings use Python's filters, which
    already decide how often each one shows)."""
    global _warn_always
    _warn_always = builtins.bool(b)


def is_warn_always_enabled() -> bool:
    """The flag of :func:`set_warn_always`."""
    return _warn_always


_DEBUG_MODES = {"default": 0, "warn": 1, "error": 2}


def set_deterministic_debug_mode(debug_mode: Any) -> None:
    """``torch.set_deterministic_debug_mode``: 0/"default" off, 1/"warn" and 2/"error" on, as
    :func:`use_deterministic_algorithms` (with ``warn_only`` for 1)."""
    from ._compat import use_deterministic_algorithms

    mode = _DEBUG_MODES.get(debug_mode, debug_mode) if isinstance(debug_mode, str) else debug_mode
    if mode not in (0, 1, 2):
        raise RuntimeError(f"invalid value of debug_mode, expected one of 0, 1, 2, but got {debug_mode}")
    use_deterministic_algorithms(mode != 0, warn_only=mode == 1)
    global _debug_mode
    _debug_mode = mode


_debug_mode = 0


def get_deterministic_debug_mode() -> int:
    """The mode of :func:`set_deterministic_debug_mode` (0, 1 or 2)."""
    from ._compat import are_deterministic_algorithms_enabled

    return _debug_mode if are_deterministic_algorithms_enabled() else 0


def set_default_tensor_type(t: Any) -> None:
    """``torch.set_default_tensor_type`` (deprecated in PyTorch): the default dtype from a legacy
    type (``bp.DoubleTensor`` or ``"torch.DoubleTensor"``); a ``cuda`` type also makes the GPU the
    default device, as ``set_default_device("cuda")``."""
    from . import _compat

    warnings.warn("torch.set_default_tensor_type() is deprecated as of PyTorch 2.1, please use "
                  "torch.set_default_dtype() and torch.set_default_device() as alternatives.", UserWarning,
                  stacklevel=2)
    name = t if isinstance(t, str) else getattr(t, "__name__", str(t))
    base = name.rsplit(".", 1)[-1]
    dtypes = {"FloatTensor": _core.float32, "DoubleTensor": _core.float64}
    if base not in dtypes:
        raise TypeError(f"only floating-point types are supported as the default type, got {name}")
    _compat.set_default_dtype(dtypes[base])
    if ".cuda." in f".{name}":
        _compat.set_default_device("cuda")


_PROFILES = {
    "default": {"precision": 4, "threshold": 1000, "edgeitems": 3, "linewidth": 80},
    "short": {"precision": 2, "threshold": 1000, "edgeitems": 2, "linewidth": 80},
    "full": {"precision": 4, "threshold": math.inf, "edgeitems": 3, "linewidth": 80},
}


def get_printoptions() -> Dict[str, Any]:
    """The print options, as keyword arguments :func:`set_printoptions` takes."""
    precision, threshold, edgeitems, linewidth, sci_mode = _core._get_print_options()
    return {"precision": precision, "threshold": int(threshold) if math.isfinite(threshold) else threshold,
            "edgeitems": edgeitems, "linewidth": linewidth, "sci_mode": sci_mode}


def set_printoptions(precision: Optional[int] = None, threshold: Optional[float] = None,
                     edgeitems: Optional[int] = None, linewidth: Optional[int] = None, profile: Optional[str] = None,
                     sci_mode: Optional[bool] = None) -> None:
    """How tensors print, as ``torch.set_printoptions``: ``precision`` digits (4), summarise above
    ``threshold`` elements (1000) keeping ``edgeitems`` per end of each dim (3), wrap rows at
    ``linewidth`` (80); ``profile`` "default", "short" or "full" first sets all four; ``sci_mode``
    True/False forces scientific notation on/off and None (what every call without it sets, as in
    PyTorch) lets each tensor choose."""
    opts = get_printoptions()
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be one of {sorted(_PROFILES)}, got {profile!r}")
        opts.update(_PROFILES[profile])
    for key, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                       ("linewidth", linewidth)):
        if value is not None:
            if value < 0:
                raise ValueError(f"set_printoptions: {key} must be non-negative, got {value}")
            opts[key] = value
    _core._set_print_options(int(opts["precision"]), float(opts["threshold"]), int(opts["edgeitems"]),
                             int(opts["linewidth"]), None if sci_mode is None else builtins.bool(sci_mode))


class printoptions:
    """``with bp.printoptions(precision=2): ...``: the options of :func:`set_printoptions` for the
    block, the previous ones restored after it."""

    def __init__(self, **kwargs: Any) -> None:
        self._kwargs = kwargs

    def __enter__(self) -> None:
        self._old = get_printoptions()
        set_printoptions(**self._kwargs)

    def __exit__(self, *exc: Any) -> None:
        set_printoptions(**self._old)


def _method(name: str) -> Callable[..., Any]:
    def f(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(input, name)(*args, **kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``backprop_rs.{name}(t, ...)`` is ``t.{name}(...)``."
    return f


def toplevel_functions() -> Dict[str, Any]:
    """The ``torch.*`` names this module provides, for the package's namespace."""
    names = {
        "layer_norm", "group_norm", "batch_norm", "instance_norm", "embedding", "max_pool1d", "max_pool2d",
        "max_pool3d", "max_pool1d_with_indices", "adaptive_max_pool1d", "constant_pad_nd", "dropout",
        "alpha_dropout", "feature_alpha_dropout", "feature_dropout", "rrelu", "binary_cross_entropy_with_logits",
        "cosine_embedding_loss", "hinge_embedding_loss", "margin_ranking_loss", "kl_div", "poisson_nll_loss",
        "triplet_margin_loss", "ctc_loss", "logspace", "range", "scalar_tensor", "empty_strided", "asarray",
        "frombuffer", "pow", "dist", "renorm", "frexp", "ldexp", "nextafter", "angle", "real", "imag", "conj",
        "conj_physical", "resolve_conj", "resolve_neg", "is_conj", "is_neg", "vander", "combinations", "trapezoid",
        "trapz", "cumulative_trapezoid", "gradient", "unravel_index", "select_scatter", "slice_scatter",
        "diagonal_scatter", "as_strided_scatter", "split_with_sizes", "unsafe_chunk", "unsafe_split", "ger", "cond",
        "while_loop", "typename", "set_printoptions", "get_printoptions", "printoptions",
        "is_storage", "set_warn_always", "is_warn_always_enabled",
        "set_deterministic_debug_mode", "get_deterministic_debug_mode", "set_default_tensor_type",
        "pi", "e", "inf", "nan", "newaxis", "layout", "strided", "has_lapack", "has_mkl", "has_openmp",
    }
    g = globals()
    out = {n: g[n] for n in names}
    out.update({n: _same_order(n) for n in _SAME_ORDER})
    out.update({n: _no_complex(n) for n in ("view_as_real", "view_as_complex", "complex", "polar", "stft", "istft")})
    for name, base in (("celu_", "celu"), ("selu_", "selu"), ("rrelu_", "rrelu"), ("threshold_", "threshold"),
                       ("dropout_", "dropout"), ("alpha_dropout_", "alpha_dropout"),
                       ("feature_alpha_dropout_", "feature_alpha_dropout"), ("feature_dropout_", "feature_dropout")):
        out[name] = _inplace(out[base], name)
    out.update({n: _method(n) for n in ("argwhere", "cholesky", "get_device", "is_complex", "is_signed",
                                        "is_inference")})
    from . import amp, func

    out["GradScaler"] = amp.GradScaler
    out["vmap"] = func.vmap
    return out


def _hardshrink(self: Tensor, lambd: float = 0.5) -> Tensor:
    """:func:`backprop_rs.nn.functional.hardshrink` of ``self``."""
    return _F().hardshrink(self, lambd)


def _prelu(self: Tensor, weight: Tensor) -> Tensor:
    """:func:`backprop_rs.nn.functional.prelu` of ``self``."""
    return _F().prelu(self, weight)


def _dim_order(self: Tensor, *, ambiguity_check: bool = False) -> Tuple[int, ...]:
    """The dims from outermost to innermost in memory (by stride, ties in dim order), as
    ``Tensor.dim_order``."""
    st = self.stride()
    return tuple(sorted(builtins.range(self.ndim), key=lambda d: (-st[d], d)))


def _new(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
    """The legacy ``t.new(...)``: ``t.new(2, 3)`` an uninitialised tensor of that size, ``t.new(data)``
    a tensor of the data, ``t.new()`` an empty one; ``self``'s dtype and device."""
    if kwargs.keys() - {"dtype", "device"}:
        raise TypeError(f"new(): unexpected keyword arguments {sorted(kwargs.keys() - {'dtype', 'device'})}")
    dtype, device = kwargs.get("dtype", self.dtype), kwargs.get("device", self.device)
    if len(args) == 1 and not isinstance(args[0], int):
        # one non-int argument is data, as PyTorch reads ``t.new((2, 3))`` (a tuple: values)
        data = args[0]
        if isinstance(data, Tensor):
            return data.to(dtype).to(device)
        return _core.tensor(data, dtype=dtype).to(device)
    return _core.empty(*args, dtype=dtype).to(device) if args else _core.empty(0, dtype=dtype).to(device)


def _new_empty_strided(self: Tensor, size: Sequence[int], stride: Sequence[int], *, dtype: Any = None,
                       device: Any = None, requires_grad: bool = False, **_: Any) -> Tensor:
    """:func:`empty_strided` with ``self``'s dtype and device unless given."""
    return empty_strided(size, stride, dtype=dtype if dtype is not None else self.dtype,
                         device=device if device is not None else self.device, requires_grad=requires_grad)


def tensor_methods() -> Dict[str, Any]:
    """The Tensor method forms of this module's functions."""
    from .stacking import narrow_copy

    methods: Dict[str, Any] = {
        n: globals()[n] for n in (
            "dist", "renorm", "frexp", "ldexp", "nextafter", "angle", "conj", "conj_physical", "resolve_conj",
            "resolve_neg", "is_conj", "is_neg", "select_scatter", "slice_scatter", "diagonal_scatter",
            "as_strided_scatter", "split_with_sizes", "unsafe_chunk", "unsafe_split", "ger",
        )
    }
    methods["hardshrink"] = _hardshrink
    methods["prelu"] = _prelu
    methods["narrow_copy"] = narrow_copy
    methods["dim_order"] = _dim_order
    methods["new"] = _new
    methods["new_empty_strided"] = _new_empty_strided
    methods["real"] = property(real, doc="The tensor itself: the real part of a real tensor.")
    methods["imag"] = property(imag, doc="Raises: real tensors have no imaginary part, as PyTorch says.")
    methods["is_nested"] = property(lambda self: False, doc="``False``: no nested tensors.")
    methods["layout"] = property(lambda self: strided, doc="``backprop_rs.strided``: tensors are dense.")
    return methods


class layout:
    """A tensor layout, as ``torch.layout``: every backprop_rs tensor is ``strided``."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"backprop_rs.{self._name}"


strided = layout("strided")
