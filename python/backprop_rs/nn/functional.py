"""Stateless functions of tensors, with ``torch.nn.functional``'s names, argument order and defaults.

The fused ops come from the Rust core (``_core``); everything else is composed here from tensor
ops the engine differentiates, so none of it has a backward of its own.

In-place forms (``inplace=True``) write into ``input`` with the tensor's in-place methods and
return it. Piecewise-linear activations (relu, leaky_relu, hardtanh, relu6, threshold,
hardsigmoid, dropout) use in-place ops whose other operand is a constant (a mask or a scalar);
the smooth ones (elu, selu, celu, silu, mish, hardswish) compute ``f`` on a clone of the input
and ``copy_`` it back, which records ``f``'s history through the input's old node, so every
derivative, second ones included, is exact.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .. import _core
from .._core import Tensor
from ..amp import _listed

__all__ = [
    # activations
    "relu", "relu_", "relu6", "leaky_relu", "leaky_relu_", "gelu", "sigmoid", "tanh", "softplus", "softmax",
    "log_softmax", "softmin", "silu", "elu", "elu_", "selu", "selu_", "celu", "celu_", "mish", "hardtanh",
    "hardtanh_", "hardswish", "hardsigmoid", "prelu", "glu", "softsign", "tanhshrink", "threshold", "threshold_",
    "logsigmoid", "hardshrink", "softshrink",
    # dropout
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    # linear, embedding, distances
    "linear", "bilinear", "embedding", "embedding_bag", "one_hot", "normalize", "cosine_similarity", "pairwise_distance",
    # normalisation
    "layer_norm", "batch_norm", "group_norm", "instance_norm", "rms_norm",
    # convolution, pooling, resampling
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "max_pool2d", "avg_pool1d",
    "avg_pool2d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "fractional_max_pool2d", "fractional_max_pool3d",
    "pad", "unfold", "fold", "interpolate", "grid_sample", "affine_grid", "upsample", "upsample_nearest", "upsample_bilinear", "pixel_shuffle",
    "pixel_unshuffle",
    # losses
    "cross_entropy", "nll_loss", "ctc_loss", "mse_loss", "l1_loss", "binary_cross_entropy_with_logits", "binary_cross_entropy",
    "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss", "gaussian_nll_loss", "margin_ranking_loss",
    "hinge_embedding_loss", "cosine_embedding_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss",
    "multi_margin_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    # attention (composites: nn/_attention.py)
    "scaled_dot_product_attention", "multi_head_attention_forward",
]

gelu = _core.gelu
softplus = _core.softplus
conv2d = _core.conv2d
conv_transpose2d = _core.conv_transpose2d
max_pool2d = _core.max_pool2d
avg_pool2d = _core.avg_pool2d
adaptive_avg_pool2d = _core.adaptive_avg_pool2d
unfold = _core.unfold
fold = _core.fold

_Ints = Union[int, Sequence[int]]

from ._attention import multi_head_attention_forward, scaled_dot_product_attention  # noqa: E402
from .fractional_max_pool import fractional_max_pool2d, fractional_max_pool3d  # noqa: E402


# ---------------------------------------------------------------------------------------------- helpers


def _grad_tracked(t: Tensor) -> bool:
    """Whether an op on ``t`` would be recorded (so an in-place rewrite must keep its history)."""
    return t.requires_grad and _core.is_grad_enabled()


def _like(t: Tensor, values) -> Tensor:
    """A constant tensor (from a NumPy array or a number) with ``t``'s dtype and device."""
    return _core.tensor(values, dtype=t.dtype, device=t.device)


def _mask(cond: Tensor, like: Tensor) -> Tensor:
    """A boolean condition as 0/1 in ``like``'s dtype (a constant: comparisons carry no history)."""
    return cond.to(like.dtype)


def _inplace_smooth(input: Tensor, f: Callable[[Tensor], Tensor], df: Callable[[Tensor], Tensor]) -> Tensor:
    """Writes ``f(input)`` into ``input``: ``copy_`` records the history of ``f`` (so second
    derivatives are exact) and refuses a leaf that requires grad, as every in-place op does.
    ``f`` reads a clone when ``input`` is in a graph: the values ``f``'s backward saved must not
    be the ones ``copy_`` overwrites (the version check would refuse them, as PyTorch's does).
    ``df`` is unused here and kept for the callers' symmetry with the out-of-place forms."""
    del df
    src = input.clone() if _grad_tracked(input) else input
    return input.copy_(f(src))


def _no_grad():
    from ..autograd import no_grad

    return no_grad()


def _single(v: _Ints, name: str = "argument") -> int:
    if isinstance(v, int):
        return v
    v = tuple(v)
    if len(v) != 1:
        raise ValueError(f"{name} must be an int or a 1-tuple, got {v}")
    return int(v[0])


def _ntuple(v, n: int) -> Tuple:
    if isinstance(v, (int, float)) or v is None:
        return (v,) * n
    v = tuple(v)
    if len(v) != n:
        raise ValueError(f"expected {n} values, got {v}")
    return v


def _legacy_reduction(size_average: Optional[bool], reduce: Optional[bool], reduction: str) -> str:
    """PyTorch's deprecated ``size_average``/``reduce`` pair, mapped onto ``reduction``."""
    if size_average is None and reduce is None:
        return reduction
    warnings.warn("size_average and reduce args will be deprecated, please use reduction='"
                  + ("none" if reduce is False else "mean" if size_average is not False else "sum")
                  + "' instead.", stacklevel=3)
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    raise ValueError(f"{reduction} is not a valid value for reduction")


def _check_reduction(reduction: str) -> None:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{reduction} is not a valid value for reduction")


def _vector_norm(x: Tensor, p: float = 2.0, dim=None, keepdim: bool = False) -> Tensor:
    """``||x||_p`` over ``dim`` with PyTorch's subgradient 0 at the zero vector: the power/root
    is taken of a value guarded away from 0 (the double-``where``), so no ``0 * inf`` reaches the
    gradient."""
    p = float(p)
    if p == math.inf:
        return x.abs().amax(dim, keepdim)
    if p == -math.inf:
        return x.abs().amin(dim, keepdim)
    if p == 0:
        return _mask(x != 0, x).sum(dim, keepdim)
    if p == 1:
        return x.abs().sum(dim, keepdim)
    s = (x * x).sum(dim, keepdim) if p == 2 else (x.abs() ** p).sum(dim, keepdim)
    pos = s > 0
    safe = _core.where(pos, s, 1.0)
    root = safe.sqrt() if p == 2 else safe ** (1.0 / p)
    return _core.where(pos, root, 0.0)


# ---------------------------------------------------------------------------------------------- activations


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(0, x)``."""
    return input.relu_() if inplace else input.relu()


def relu_(input: Tensor) -> Tensor:
    """In-place :func:`relu`."""
    return input.relu_()


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, else ``negative_slope * x``."""
    if inplace:
        # one in-place multiply by a constant factor: exact history
        # (the factor is built in input's dtype: where() of two Python scalars would be float32)
        factor = _core.where(input > 0, _core.ones_like(input), _core.full_like(input, float(negative_slope)))
        return input.mul_(factor)
    return _core.leaky_relu(input, negative_slope)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In-place :func:`leaky_relu`."""
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` clamped to ``[min_val, max_val]``; the gradient is 0 at and beyond the bounds, as in
    PyTorch (``clamp``'s own gradient passes at the bounds)."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    if inplace:
        lo, hi = input <= min_val, input >= max_val
        input[lo] = float(min_val)
        input[hi] = float(max_val)
        return input
    return _core.where(input <= min_val, float(min_val), _core.where(input >= max_val, float(max_val), input))


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """In-place :func:`hardtanh`."""
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """``min(max(0, x), 6)`` (PyTorch's ``hardtanh(x, 0, 6)``)."""
    return hardtanh(input, 0.0, 6.0, inplace)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """``x`` where ``x > threshold``, else ``value``."""
    if inplace:
        input[input <= threshold] = float(value)
        return input
    return _core.where(input > threshold, input, float(value))


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    """In-place :func:`threshold`."""
    return globals()["threshold"](input, threshold, value, inplace=True)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """``relu6(x + 3) / 6``; gradient ``1/6`` strictly inside ``(-3, 3)``."""
    if inplace:
        input.add_(3.0)
        hardtanh(input, 0.0, 6.0, inplace=True)
        return input.div_(6.0)
    return _core.where(input <= -3.0, 0.0, _core.where(input >= 3.0, 1.0, (input + 3.0) / 6.0))


def _hardswish(x: Tensor) -> Tensor:
    # the middle branch owns the boundaries, so the gradient at -3 and 3 is PyTorch's (-0.5, 1.5)
    return _core.where(x < -3.0, 0.0, _core.where(x > 3.0, x, x * (x + 3.0) / 6.0))


def _hardswish_grad(x: Tensor) -> Tensor:
    return _core.where(x < -3.0, 0.0, _core.where(x > 3.0, 1.0, x / 3.0 + 0.5))


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * relu6(x + 3) / 6``."""
    if inplace:
        return _inplace_smooth(input, _hardswish, _hardswish_grad)
    return _hardswish(input)


def _elu(x: Tensor, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0) -> Tensor:
    # exp of min(x, 0): the unselected branch stays finite, so its zero gradient stays zero
    neg = alpha * ((x.clamp(max=0.0) * input_scale).exp() - 1.0)
    out = _core.where(x > 0, x, neg)
    return out * scale if scale != 1.0 else out


def _elu_grad(x: Tensor, alpha: float = 1.0, scale: float = 1.0, input_scale: float = 1.0) -> Tensor:
    return _core.where(x > 0, scale, scale * alpha * input_scale * (x.clamp(max=0.0) * input_scale).exp())


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``x`` for ``x > 0``, else ``alpha * (exp(x) - 1)``."""
    if inplace:
        return _inplace_smooth(input, lambda x: _elu(x, alpha), lambda x: _elu_grad(x, alpha))
    return _elu(input, alpha)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place :func:`elu`."""
    return elu(input, alpha, inplace=True)


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """``scale * (max(0, x) + min(0, alpha * (exp(x) - 1)))`` with PyTorch's constants."""
    if inplace:
        return _inplace_smooth(input, lambda x: _elu(x, _SELU_ALPHA, _SELU_SCALE),
                               lambda x: _elu_grad(x, _SELU_ALPHA, _SELU_SCALE))
    return _elu(input, _SELU_ALPHA, _SELU_SCALE)


def selu_(input: Tensor) -> Tensor:
    """In-place :func:`selu`."""
    return selu(input, inplace=True)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """``max(0, x) + min(0, alpha * (exp(x / alpha) - 1))``."""
    if alpha == 0:
        raise RuntimeError("ZeroDivisionError: celu's alpha must not be 0")
    if inplace:
        return _inplace_smooth(input, lambda x: _elu(x, alpha, 1.0, 1.0 / alpha),
                               lambda x: _elu_grad(x, alpha, 1.0, 1.0 / alpha))
    return _elu(input, alpha, 1.0, 1.0 / alpha)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place :func:`celu`."""
    return celu(input, alpha, inplace=True)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * sigmoid(x)`` (swish)."""
    if inplace:
        def d(x: Tensor) -> Tensor:
            s = x.sigmoid()
            return s * (1.0 + x * (1.0 - s))

        return _inplace_smooth(input, lambda x: x * x.sigmoid(), d)
    return input * input.sigmoid()


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """``x * tanh(softplus(x))``."""
    if inplace:
        def d(x: Tensor) -> Tensor:
            t = _core.softplus(x).tanh()
            return t + x * x.sigmoid() * (1.0 - t * t)

        return _inplace_smooth(input, lambda x: x * _core.softplus(x).tanh(), d)
    return input * _core.softplus(input).tanh()


def sigmoid(input: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))``."""
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    """Hyperbolic tangent."""
    return input.tanh()


def logsigmoid(input: Tensor) -> Tensor:
    """``log(sigmoid(x)) = -softplus(-x)`` (stable for large ``|x|``)."""
    return -_core.softplus(-input)


def softsign(input: Tensor) -> Tensor:
    """``x / (1 + |x|)``."""
    return input / (input.abs() + 1.0)


def tanhshrink(input: Tensor) -> Tensor:
    """``x - tanh(x)``."""
    return input - input.tanh()


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x`` where ``|x| > lambd``, else 0."""
    return _core.where((input >= -lambd).logical_and(input <= lambd), 0.0, input)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """``x - lambd`` above ``lambd``, ``x + lambd`` below ``-lambd``, else 0."""
    if lambd < 0:
        raise RuntimeError(f"lambda must be greater or equal to 0, but found to be {lambd}.")
    return _core.where(input > lambd, input - lambd, _core.where(input < -lambd, input + lambd, 0.0))


@_listed("lower")
def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """``x`` for ``x > 0``, else ``weight * x``; ``weight`` has one entry or one per channel
    (dim 1; an input of fewer than 2 dims has one channel)."""
    n = weight.numel()
    channels = input.shape[1] if input.ndim >= 2 else 1
    if n != 1 and n != channels:
        raise RuntimeError(f"Mismatch of parameter numbers and input channel size. Found parameter numbers = {n} and "
                           f"channel size = {channels}.")
    w = weight.reshape(-1) if n == 1 or input.ndim < 2 else weight.reshape([n] + [1] * (input.ndim - 2))
    return _core.where(input > 0, input, w * input)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """``a * sigmoid(b)`` where ``a, b`` are the halves of ``input`` along ``dim``."""
    if input.ndim == 0:
        raise RuntimeError("glu does not support scalars because halving size must be even")
    n = input.shape[dim]
    if n % 2:
        raise RuntimeError(f"Halving dimension must be even, but dimension {dim} is size {n}")
    a, b = input.chunk(2, dim)
    return a * b.sigmoid()


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as "
                  "an argument.", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``."""
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return input.softmax(dim, dtype)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1) -> Tensor:
    """``softmax((logits + g) / tau)`` with Gumbel(0, 1) noise ``g = -log(E)``, ``E`` exponential;
    with ``hard``, the one-hot of the argmax in the forward pass and the soft sample's gradient
    (the straight-through estimator), as PyTorch."""
    e = _core.empty(tuple(logits.shape), dtype=logits.dtype, device=logits.device).exponential_()
    y = ((logits - e.log()) / tau).softmax(dim)
    if not hard:
        return y
    index = y.argmax(dim, keepdim=True)
    one_hot = _core.zeros(tuple(logits.shape), dtype=logits.dtype, device=logits.device).scatter(dim, index, 1.0)
    return one_hot - y.detach() + y


def log_softmax(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``log(softmax(x))`` along ``dim``, computed stably."""
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return input.log_softmax(dim, dtype)


def softmin(input: Tensor, dim: Optional[int] = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """``softmax(-x)`` along ``dim``."""
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim)
    if dtype is not None:
        input = input.to(dtype)
    return (-input).softmax(dim)


# ---------------------------------------------------------------------------------------------- dropout


def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(input: Tensor, shape: Sequence[int], p: float) -> Tensor:
    return _mask(_core.rand(*shape, dtype=input.dtype, device=input.device) >= p, input)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes each element with probability ``p`` and scales the rest by ``1/(1-p)`` (training only)."""
    _check_p(p)
    if not inplace:
        return _core.dropout(input, p, training)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input.mul_(0.0)
    return input.mul_(_keep_mask(input, input.shape, p) * (1.0 / (1.0 - p)))


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, batched: bool) -> Tensor:
    _check_p(p)
    if not training or p == 0.0:
        return input
    lead = 2 if batched else 1
    shape = list(input.shape[:lead]) + [1] * (input.ndim - lead)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    m = _keep_mask(input, shape, p) * scale
    return input.mul_(m) if inplace else input * m


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of ``(N, C, L)`` or ``(C, L)`` inputs with probability ``p``."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note that "
                           "dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                           "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).")
    return _feature_dropout(input, p, training, inplace, input.ndim == 3)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of ``(N, C, H, W)`` or ``(C, H, W)`` inputs with probability ``p``."""
    if not inplace:
        _check_p(p)
        return _core.dropout2d(input, p, training)
    if input.ndim not in (3, 4):
        warnings.warn(f"dropout2d: Received a {input.ndim}-D input to dropout2d, which is deprecated and will "
                      "result in an error in a future release.", stacklevel=2)
    # PyTorch treats a 3-D input as (N, C, L) (1-d channel dropout), with a warning; as the core op does
    return _feature_dropout(input, p, training, inplace, input.ndim != 2)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zeroes whole channels of ``(N, C, D, H, W)`` or ``(C, D, H, W)`` inputs with probability ``p``."""
    if input.ndim not in (4, 5):
        warnings.warn(f"dropout3d: Received a {input.ndim}-D input to dropout3d, which is deprecated and will "
                      "result in an error in a future release.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, input.ndim != 4)


# alpha' = -scale * alpha of SELU: the value a dropped unit takes, keeping SELU's mean and variance
_ALPHA_PRIME = -_SELU_ALPHA * _SELU_SCALE


def _alpha_dropout(input: Tensor, p: float, training: bool, inplace: bool, shape: Sequence[int]) -> Tensor:
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input.mul_(0.0) if inplace else input * 0.0
    keep = _keep_mask(input, shape, p)
    a = ((1.0 - p) * (1.0 + p * _ALPHA_PRIME ** 2)) ** -0.5
    b = (1.0 - keep) * (a * _ALPHA_PRIME) + (-a * _ALPHA_PRIME * p)
    if inplace:
        return input.mul_(keep * a).add_(b)
    return input * (keep * a) + b


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout for SELU networks: dropped units take SELU's negative saturation value and the
    result is affinely rescaled to keep zero mean and unit variance."""
    return _alpha_dropout(input, p, training, inplace, input.shape)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """:func:`alpha_dropout` of whole channels (dim 1 of a batched input)."""
    shape = list(input.shape[:2]) + [1] * (input.ndim - 2)
    return _alpha_dropout(input, p, training, inplace, shape)


# ---------------------------------------------------------------------------------------------- linear & co.


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``input @ weight.T + bias`` (weight is ``[out_features, in_features]``, as in PyTorch)."""
    return _core.linear(input, weight, bias)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``y_k = x1 @ weight[k] @ x2 + bias[k]`` with weight ``[out, in1, in2]``: one matmul against
    ``weight`` laid out as ``[in1, out * in2]``, then a product with ``x2`` summed over ``in2``."""
    out, in1, in2 = weight.shape
    if input1.shape[-1] != in1 or input2.shape[-1] != in2:
        raise RuntimeError(f"bilinear: input1 size {input1.shape} and input2 size {input2.shape} do not match the "
                           f"weight {weight.shape} (expected last dims {in1} and {in2})")
    if input1.shape[:-1] != input2.shape[:-1]:
        raise RuntimeError(f"bilinear: input1 and input2 must have the same leading dims, got {input1.shape} and "
                           f"{input2.shape}")
    t = input1 @ weight.permute(1, 0, 2).reshape(in1, out * in2)
    y = (t.reshape(*t.shape[:-1], out, in2) * input2.unsqueeze(-2)).sum(-1)
    return y + bias if bias is not None else y


def embedding(input: Tensor, weight: Tensor, padding_idx: Optional[int] = None, max_norm: Optional[float] = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` picked by the integer ``input``. ``padding_idx``'s row gets no gradient;
    ``max_norm`` renormalises (in place, without history) the looked-up rows whose ``norm_type``
    norm exceeds it; ``scale_grad_by_freq`` divides each row's gradient by its count in ``input``."""
    if sparse:
        raise NotImplementedError("embedding(sparse=True): backprop_rs has no sparse tensors; use sparse=False")
    n = weight.shape[0]
    if padding_idx is not None:
        if padding_idx > 0:
            assert padding_idx < n, "Padding_idx must be within num_embeddings"
        elif padding_idx < 0:
            assert padding_idx >= -n, "Padding_idx must be within num_embeddings"
            padding_idx = n + padding_idx
    if max_norm is not None:
        with _no_grad():
            ids = input.reshape(-1)
            rows = weight.detach()[ids]
            norms = _vector_norm(rows, norm_type, dim=1, keepdim=True)
            # PyTorch's embedding_renorm_: scale = max_norm / (norm + 1e-7) where norm > max_norm
            scale = _core.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
            weight[ids] = rows * scale  # repeated ids write the same row, so the order is irrelevant
    out = _core.embedding(input, weight)
    if padding_idx is not None and _grad_tracked(weight):
        # the padding row's value is kept; only its gradient is cut
        out = _core.where((input != padding_idx).unsqueeze(-1), out, out.detach())
    if scale_grad_by_freq and _grad_tracked(weight):
        ids = input.reshape(-1)
        counts = _core.zeros(n, dtype=weight.dtype, device=weight.device).index_add(
            0, ids, _core.ones(ids.shape[0], dtype=weight.dtype, device=weight.device))
        s = (1.0 / counts[ids]).reshape(*input.shape, 1)
        out = out.detach() + (out - out.detach()) * s  # value unchanged, gradient scaled by 1/count
    return out


def _bag_ids(input: Tensor, offsets: Optional[Tensor], include_last_offset: bool):
    """The flat ids, each entry's bag number (-1 for entries past the last offset) and the number
    of bags, from a 2-D ``input`` (one bag per row) or a 1-D ``input`` cut at ``offsets``."""
    if not isinstance(input, Tensor) or input.dtype != _core.int64:
        raise ValueError("embedding_bag: input has to be an int64 tensor of indices")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences.")
        b, n = input.shape
        bag = np.repeat(np.arange(b, dtype=np.int64), n)
        return input.reshape(-1), bag, b
    if input.ndim != 1:
        raise ValueError(f"input has to be 1D or 2D Tensor, but got Tensor of dimension {input.ndim}")
    if offsets is None:
        raise ValueError("offsets has to be a 1D Tensor but got None")
    if not isinstance(offsets, Tensor) or offsets.ndim != 1 or offsets.dtype != _core.int64:
        raise ValueError("offsets has to be a 1D int64 Tensor")
    off = offsets.detach().cpu().numpy()
    length = input.shape[0]
    starts = off[:-1] if include_last_offset else off
    if include_last_offset and off.shape[0] == 0:
        raise RuntimeError("embedding_bag: include_last_offset=True needs at least one offset")
    if starts.shape[0] and starts[0] != 0:
        raise RuntimeError(f"offsets[0] has to be 0, i.e., the first sequence in the mini-batch has to start from "
                           f"position 0. However, got {int(starts[0])}")
    if off.shape[0] and ((np.diff(off) < 0).any() or off[-1] > length or off[0] < 0):
        raise RuntimeError(f"embedding_bag: offsets must be non-decreasing and within [0, {length}], got "
                           f"{off.tolist()}")
    end = int(off[-1]) if include_last_offset else length
    pos = np.arange(length)
    bag = np.searchsorted(starts, pos, side="right") - 1
    bag[pos >= end] = -1
    return input, bag.astype(np.int64), int(starts.shape[0])


def embedding_bag(input: Tensor, weight: Tensor, offsets: Optional[Tensor] = None, max_norm: Optional[float] = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Optional[Tensor] = None, include_last_offset: bool = False,
                  padding_idx: Optional[int] = None) -> Tensor:
    """The sums, means or maxima of bags of ``weight``'s rows, without building the per-entry
    embeddings' batch shape: ``input`` 2-D is one bag per row; 1-D, it is cut into bags at
    ``offsets`` (``offsets[0] == 0``; with ``include_last_offset`` the last offset ends the last
    bag). Entries equal to ``padding_idx`` are left out (of the mean's count too); an empty bag
    gives zeros. ``per_sample_weights`` (``mode="sum"`` only) scale each entry. ``max``'s
    gradient goes to the first entry attaining each maximum. A composite: the rows are an
    embedding lookup (``max_norm`` / ``scale_grad_by_freq`` as in :func:`embedding`), reduced by
    ``index_add`` (sum, mean) or a ``gather`` of the maxima found on the host (max)."""
    if sparse:
        raise NotImplementedError("embedding_bag(sparse=True): backprop_rs has no sparse tensors; use sparse=False")
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    if weight.ndim != 2:
        raise ValueError(f"weight has to be a 2D Tensor, but got Tensor of dimension {weight.ndim}")
    if per_sample_weights is not None:
        if mode != "sum":
            raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                      f"supported for mode='sum' (got mode='{mode}'). Please open a feature request "
                                      f"on GitHub.")
        if tuple(per_sample_weights.shape) != tuple(input.shape):
            raise ValueError(f"embedding_bag: If per_sample_weights ({tuple(per_sample_weights.shape)}) is not None, "
                             f"then it must have the same shape as the input ({tuple(input.shape)})")
    n, dim = weight.shape
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise AssertionError("padding_idx must be within the number of embeddings")
        padding_idx %= n
    ids, bag_np, bags = _bag_ids(input, offsets, include_last_offset)
    keep_np = bag_np >= 0
    if padding_idx is not None:
        keep_np &= ids.detach().cpu().numpy() != padding_idx
    dev = weight.device
    out_zeros = _core.zeros(bags, dim, dtype=weight.dtype, device=dev)
    sel = np.flatnonzero(keep_np)
    take = _core.tensor(sel, dtype=_core.int64, device=dev)
    bag = _core.tensor(bag_np[sel], dtype=_core.int64, device=dev)
    rows = embedding(ids[take], weight, None, max_norm, norm_type, scale_grad_by_freq)  # (kept entries, dim)
    if mode == "max" and sel.size:
        # the first kept entry of each bag attaining the maximum of each column (PyTorch's `>`)
        vals = rows.detach().cpu().numpy()
        b_sel = bag_np[sel]
        first = np.zeros((bags, dim), np.int64)
        present = np.zeros(bags, bool)
        for k in np.unique(b_sel):
            where = np.flatnonzero(b_sel == k)
            first[k] = where[np.argmax(vals[where], axis=0)]
            present[k] = True
        picked = rows.gather(0, _core.tensor(first, dtype=_core.int64, device=dev))
        mask = _core.tensor(present, device=dev).unsqueeze(1)
        return _core.where(mask, picked, out_zeros)
    if per_sample_weights is not None:
        psw = per_sample_weights.reshape(-1)[take].to(weight.dtype)
        rows = rows * psw.unsqueeze(1)
    total = out_zeros.index_add(0, bag, rows)
    if mode == "sum":
        return total
    count = np.bincount(bag_np[sel], minlength=bags).clip(min=1).astype(np.float64)
    return total / _core.tensor(count, dtype=weight.dtype, device=dev).unsqueeze(1)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """``int64`` one-hot encoding with a new last dim of size ``num_classes`` (inferred as
    ``max + 1`` when -1)."""
    if tensor.dtype != _core.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    if tensor.numel() > 0:
        if tensor.min().item() < 0:
            raise RuntimeError("Class values must be non-negative.")
        top = tensor.max().item()
        if num_classes == -1:
            num_classes = top + 1
        elif top >= num_classes:
            raise RuntimeError("Class values must be smaller than num_classes.")
    elif num_classes == -1:
        raise RuntimeError("Can not infer total number of classes from empty tensor.")
    classes = _core.arange(num_classes, device=tensor.device)
    return (tensor.unsqueeze(-1) == classes).long()


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12, out: Optional[Tensor] = None) -> Tensor:
    """``x / max(||x||_p, eps)`` along ``dim``."""
    y = input / _vector_norm(input, p, dim, keepdim=True).clamp(min=eps)
    if out is not None:
        return out.copy_(y)
    return y


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """``x1 . x2 / (max(||x1||, eps) * max(||x2||, eps))`` along ``dim`` (inputs broadcast)."""
    n1 = _vector_norm(x1, 2, dim, keepdim=True).clamp(min=eps)
    n2 = _vector_norm(x2, 2, dim, keepdim=True).clamp(min=eps)
    return ((x1 / n1) * (x2 / n2)).sum(dim)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """``||x1 - x2 + eps||_p`` over the last dim."""
    return _vector_norm(x1 - x2 + eps, p, -1, keepdim)


# ---------------------------------------------------------------------------------------------- normalisation


def layer_norm(input: Tensor, normalized_shape, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """Normalises over the trailing ``normalized_shape`` dims (biased variance), then ``* weight + bias``."""
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    return _core.layer_norm(input, shape, weight, bias, eps)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor],
               weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Per-channel (dim 1) normalisation with batch statistics (training) or the running ones."""
    return _core.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _channel_affine(y: Tensor, weight: Optional[Tensor], bias: Optional[Tensor]) -> Tensor:
    shape = [-1] + [1] * (y.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """``(N, g * k, *)`` -> the channels regrouped as ``(N, k * g, *)`` (ShuffleNet)."""
    n, c = input.shape[0], input.shape[1]
    if groups <= 0 or c % groups:
        raise RuntimeError(f"Number of channels must be divisible by groups. Got {c} channels and {groups} groups.")
    rest = list(input.shape[2:])
    return input.reshape([n, groups, c // groups] + rest).transpose(1, 2).reshape([n, c] + rest)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomised leaky ReLU: negative inputs scaled by a slope drawn from U(lower, upper) per
    element in training, by ``(lower + upper) / 2`` in evaluation."""
    if training:
        slope = _core.rand(*input.shape, dtype=input.dtype).to(input.device) * (upper - lower) + lower
        out = _core.where(input >= 0, input, input * slope)
    else:
        out = leaky_relu(input, (lower + upper) / 2)
    return input.copy_(out) if inplace else out


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    """:func:`rrelu` in place."""
    return rrelu(input, lower, upper, training, inplace=True)


def silu_(input: Tensor) -> Tensor:
    """:func:`silu` in place."""
    return silu(input, inplace=True)


def mish_(input: Tensor) -> Tensor:
    """:func:`mish` in place."""
    return mish(input, inplace=True)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """The p-norm distances between the rows of ``(N, M)`` input, the upper triangle row by row
    (``N (N - 1) / 2`` values)."""
    if input.ndim != 2:
        raise RuntimeError(f"pdist only supports 2D tensors, got: {input.ndim}D")
    n = input.shape[0]
    i, j = np.triu_indices(n, 1)
    a = input.index_select(0, _core.tensor(i.astype(np.int64), device=input.device))
    b = input.index_select(0, _core.tensor(j.astype(np.int64), device=input.device))
    return _vector_norm(a - b, p, -1, keepdim=False)


def lp_pool1d(input: Tensor, norm_type: float, kernel_size: int, stride: Optional[int] = None,
              ceil_mode: bool = False) -> Tensor:
    """``(sum of x^p over each window)^(1/p)`` along the length (PyTorch's: the average pool of
    ``x^p`` times the window size, so the sign of ``x`` is kept as PyTorch keeps it)."""
    k = _single(kernel_size, "kernel_size")
    out = avg_pool1d(input.pow(norm_type), k, stride, 0, ceil_mode)
    return (out.sign() * relu(out.abs())).mul(k).pow(1.0 / norm_type)


def lp_pool2d(input: Tensor, norm_type: float, kernel_size: _Ints, stride: Optional[_Ints] = None,
              ceil_mode: bool = False) -> Tensor:
    """:func:`lp_pool1d` over 2-d windows."""
    kh, kw = _ntuple(kernel_size, 2)
    out = _core.avg_pool2d(input.pow(norm_type), (kh, kw), stride if stride is not None else (kh, kw), (0, 0),
                           ceil_mode, True, None)
    return (out.sign() * relu(out.abs())).mul(kh * kw).pow(1.0 / norm_type)


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None,
                 padding: _Ints = 0, output_size: Optional[Sequence[int]] = None) -> Tensor:
    """The inverse of ``max_pool2d(return_indices=True)``: each value written at its index in a
    zero ``(N, C, H_out, W_out)`` (a scatter, so the gradient reads it back)."""
    x, added = _batched(input, 4)
    idx = indices.unsqueeze(0) if added else indices
    kh, kw = _ntuple(kernel_size, 2)
    sh, sw = _ntuple(stride, 2) if stride is not None else (kh, kw)
    ph, pw = _ntuple(padding, 2)
    n, c, h, w = x.shape
    if output_size is not None:
        oh, ow = list(output_size)[-2:]
    else:
        oh, ow = (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw
    flat = _core.zeros((n, c, oh * ow), dtype=x.dtype, device=x.device)
    out = flat.scatter(2, idx.reshape(n, c, -1), x.reshape(n, c, -1)).reshape(n, c, oh, ow)
    return out.squeeze(0) if added else out


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None,
                 padding: _Ints = 0, output_size: Optional[Sequence[int]] = None) -> Tensor:
    """The inverse of ``max_pool3d(return_indices=True)``: each value written at its flat
    ``D*H*W`` index in a zero ``(N, C, D_out, H_out, W_out)``."""
    x, added = _batched(input, 5)
    idx = indices.unsqueeze(0) if added else indices
    k = _ntuple(kernel_size, 3)
    st = _ntuple(stride, 3) if stride is not None else k
    pd = _ntuple(padding, 3)
    n, c = x.shape[0], x.shape[1]
    if output_size is not None:
        od, oh, ow = list(output_size)[-3:]
    else:
        od, oh, ow = ((x.shape[2 + i] - 1) * st[i] - 2 * pd[i] + k[i] for i in range(3))
    flat = _core.zeros((n, c, od * oh * ow), dtype=x.dtype, device=x.device)
    out = flat.scatter(2, idx.reshape(n, c, -1), x.reshape(n, c, -1)).reshape(n, c, od, oh, ow)
    return out.squeeze(0) if added else out


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None,
                 padding: _Ints = 0, output_size: Optional[Sequence[int]] = None) -> Tensor:
    """The inverse of ``max_pool1d(return_indices=True)``."""
    x, added = _batched(input, 3)
    idx = indices.unsqueeze(0) if added else indices
    k = _single(kernel_size, "kernel_size")
    s = _single(stride, "stride") if stride is not None else k
    p = _single(padding, "padding")
    size = (None if output_size is None else (1, list(output_size)[-1]))
    y = max_unpool2d(x.unsqueeze(2), idx.unsqueeze(2), (1, k), (1, s), (0, p), size).squeeze(2)
    return y.squeeze(0) if added else y


@_listed("fp32")
def multilabel_margin_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None,
                           reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``sum_{j in targets, i not in targets} max(0, 1 - (x[j] - x[i])) / C`` per sample; the
    targets of a row are its leading non-negative entries (up to the first -1)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    x = input.unsqueeze(0) if input.ndim == 1 else input
    t = target.unsqueeze(0) if target.ndim == 1 else target
    c = x.shape[1]
    tn = t.cpu().numpy()
    valid = np.cumprod(tn >= 0, axis=1).astype(bool)  # entries before the first -1
    is_target = np.zeros(tn.shape, bool)
    for r in range(tn.shape[0]):
        is_target[r, tn[r][valid[r]]] = True
    picked = _core.tensor(np.where(valid, tn, 0).astype(np.int64), device=x.device)
    xj = x.gather(1, picked)  # [N, C] values of the target classes (padded)
    margins = (1.0 - (xj.unsqueeze(2) - x.unsqueeze(1))).clamp(min=0)  # [N, j, i]
    mask = valid[:, :, None] & ~is_target[:, None, :]
    loss = (margins * _core.tensor(mask.astype(np.float64), dtype=x.dtype, device=x.device)).sum((1, 2)) / c
    loss = loss if input.ndim > 1 else loss.squeeze(0)
    return _reduce(loss, reduction)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """AlexNet's normalisation across channels: ``x / (k + alpha / size * sum(x^2 over the size
    neighbouring channels))^beta``, the window zero-padded as PyTorch's (``(size - 1) // 2``
    channels after, ``size // 2`` before)."""
    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if input.numel() == 0:
        return input
    sq = (input * input).unsqueeze(1)  # [N, 1, C, ...]
    n, c = input.shape[0], input.shape[1]
    flat = sq.reshape(n, 1, c, -1)
    flat = pad(flat, (0, 0, size // 2, (size - 1) // 2))
    div = avg_pool2d(flat, (size, 1), stride=1).reshape(tuple(input.shape))
    return input / (div * alpha + k) ** beta


def group_norm(input: Tensor, num_groups: int, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None,
               eps: float = 1e-5) -> Tensor:
    """Normalises each group of ``C / num_groups`` channels of ``(N, C, *)`` over its channels and
    spatial dims (one fused layer_norm over ``(N, G, -1)``), then a per-channel affine."""
    if input.ndim < 2:
        raise RuntimeError(f"Expected at least 2 dimensions for input tensor but received {input.ndim}")
    n, c = input.shape[0], input.shape[1]
    if c % num_groups:
        raise RuntimeError(f"Expected number of channels in input to be divisible by num_groups, but got input of "
                           f"shape {list(input.shape)} and num_groups={num_groups}")
    x = input.reshape(n, num_groups, -1)
    y = _core.layer_norm(x, [x.shape[-1]], None, None, eps).reshape(input.shape)
    return _channel_affine(y, weight, bias)


def instance_norm(input: Tensor, running_mean: Optional[Tensor] = None, running_var: Optional[Tensor] = None,
                  weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalises each ``(n, c)`` slice of ``(N, C, *)`` over its spatial dims. With
    ``use_input_stats`` the running statistics (if given) move towards the batch average of the
    per-instance mean and unbiased variance; without it, they are used instead."""
    if input.ndim < 3:
        raise ValueError(f"instance_norm expects an input of shape (N, C, *) with at least one spatial dim, got "
                         f"{list(input.shape)}")
    n, c = input.shape[0], input.shape[1]
    if use_input_stats:
        x = input.reshape(n, c, -1)
        length = x.shape[-1]
        if length <= 1:
            raise ValueError(f"Expected more than 1 spatial element when training, got input size {list(input.shape)}")
        y = _core.layer_norm(x, [length], None, None, eps).reshape(input.shape)
        if running_mean is not None or running_var is not None:
            with _no_grad():
                xd = x.detach()
                if running_mean is not None:
                    running_mean.mul_(1.0 - momentum).add_(xd.mean(-1).mean(0) * momentum)
                if running_var is not None:
                    running_var.mul_(1.0 - momentum).add_(xd.var(-1, unbiased=True).mean(0) * momentum)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("Expected running_mean and running_var to be defined when use_input_stats is false")
        shape = [1, c] + [1] * (input.ndim - 2)
        y = (input - running_mean.reshape(shape)) * (running_var.reshape(shape) + eps).rsqrt()
    return _channel_affine(y, weight, bias)


def rms_norm(input: Tensor, normalized_shape, weight: Optional[Tensor] = None, eps: Optional[float] = None) -> Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight`` over the trailing ``normalized_shape`` dims; ``eps``
    defaults to the dtype's machine epsilon, as in PyTorch."""
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    k = len(shape)
    if list(input.shape[input.ndim - k:]) != shape or k > input.ndim:
        raise RuntimeError(f"Given normalized_shape={shape}, expected input with shape [*, {', '.join(map(str, shape))}"
                           f"], but got input of size{list(input.shape)}")
    if eps is None:
        eps = float(np.finfo(np.float64 if input.dtype == _core.float64 else np.float32).eps)
    dims = list(range(input.ndim - k, input.ndim))
    y = input * ((input * input).mean(dims, keepdim=True) + eps).rsqrt()
    return y * weight if weight is not None else y


# ---------------------------------------------------------------------------------------------- conv & pooling (1-d)


def _batched(input: Tensor, ndim: int) -> Tuple[Tensor, bool]:
    """``input`` with a batch dim (``ndim`` is the batched rank) and whether one was added."""
    if input.ndim == ndim - 1:
        return input.unsqueeze(0), True
    if input.ndim != ndim:
        raise RuntimeError(f"Expected {ndim - 1}D (unbatched) or {ndim}D (batched) input, but got input of size: "
                           f"{list(input.shape)}")
    return input, False


def _unbatch(t: Tensor, added: bool) -> Tensor:
    return t.squeeze(0) if added else t


def conv1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _Ints = 1,
           padding: Union[_Ints, str] = 0, dilation: _Ints = 1, groups: int = 1) -> Tensor:
    """1-d convolution of ``(N, C_in, L)`` (or ``(C_in, L)``) with weight ``(C_out, C_in/groups, k)``:
    the 2-d op on a unit height."""
    x, added = _batched(input, 3)
    pad = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    y = _core.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _single(stride, "stride")), pad,
                     (1, _single(dilation, "dilation")), groups).squeeze(2)
    return y.squeeze(0) if added else y


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _Ints = 1,
                     padding: _Ints = 0, output_padding: _Ints = 0, groups: int = 1, dilation: _Ints = 1) -> Tensor:
    """Transposed 1-d convolution with weight ``(C_in, C_out/groups, k)`` (the 2-d op on a unit height)."""
    x, added = _batched(input, 3)
    y = _core.conv_transpose2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, _single(stride, "stride")),
                               (0, _single(padding, "padding")), (0, _single(output_padding, "output_padding")),
                               groups, (1, _single(dilation, "dilation"))).squeeze(2)
    return y.squeeze(0) if added else y


def max_pool1d(input: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None, padding: _Ints = 0,
               dilation: _Ints = 1, ceil_mode: bool = False, return_indices: bool = False):
    """1-d max pooling of ``(N, C, L)`` or ``(C, L)``; indices index the length dim."""
    x, added = _batched(input, 3)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _single(stride, "stride")
    r = _core.max_pool2d(x.unsqueeze(2), (1, k), (1, s), (0, _single(padding, "padding")),
                         (1, _single(dilation, "dilation")), ceil_mode, return_indices)
    if return_indices:
        return _unbatch(r[0].squeeze(2), added), _unbatch(r[1].squeeze(2), added)
    return _unbatch(r.squeeze(2), added)


def avg_pool1d(input: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None, padding: _Ints = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """1-d average pooling of ``(N, C, L)`` or ``(C, L)``."""
    x, added = _batched(input, 3)
    k = _single(kernel_size, "kernel_size")
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _single(stride, "stride")
    y = _core.avg_pool2d(x.unsqueeze(2), (1, k), (1, s), (0, _single(padding, "padding")), ceil_mode,
                         count_include_pad, None).squeeze(2)
    return y.squeeze(0) if added else y


# ---------------------------------------------------------------------------------------------- 3-d: composites of the 2-d ops


def _fold_depth(x: Tensor) -> Tensor:
    """``[N, C, D, H, W]`` -> ``[N * D, C, H, W]`` (each depth slice a 2-d image)."""
    n, c, d, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(n * d, c, h, w)


def _unfold_depth(y: Tensor, n: int) -> Tensor:
    """``[N * D, C, H, W]`` -> ``[N, C, D, H, W]``."""
    nd, c, h, w = y.shape
    return y.reshape(n, nd // n, c, h, w).permute(0, 2, 1, 3, 4)


@_listed("lower")
def conv3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _Ints = 1,
           padding: Union[_Ints, str] = 0, dilation: _Ints = 1, groups: int = 1) -> Tensor:
    """3-d convolution of ``(N, C_in, D, H, W)`` (or unbatched) with weight ``(C_out, C_in/groups,
    kd, kh, kw)``: for each kernel depth tap, one 2-d convolution of the depth slices it meets
    (folded into the batch), summed; gradients come from the 2-d op's."""
    x, added = _batched(input, 5)
    if weight.ndim != 5:
        raise RuntimeError(f"conv3d: expected a 5-D weight (out, in/groups, kd, kh, kw), got shape {tuple(weight.shape)}")
    st, dl = _ntuple(stride, 3), _ntuple(dilation, 3)
    ks = tuple(weight.shape[2:])
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
        if padding == "same" and any(v != 1 for v in st):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) if padding == "same" else 0 for d, k in zip(dl, ks)]
        pads = [(t // 2, t - t // 2) for t in totals]
    else:
        pads = [(p, p) for p in _ntuple(padding, 3)]
    if any(lo != hi for lo, hi in pads) or pads[0][0]:
        x = pad(x, [v for pr in reversed(pads) for v in pr])
        hw_pad = (0, 0)
    else:
        hw_pad = (pads[1][0], pads[2][0])
    n, depth = x.shape[0], x.shape[2]
    out_d = (depth - dl[0] * (ks[0] - 1) - 1) // st[0] + 1
    if out_d <= 0:
        raise RuntimeError(f"conv3d: the kernel (depth {ks[0]}, dilation {dl[0]}) is larger than the padded input depth "
                           f"{depth}")
    total = None
    for k in range(ks[0]):
        start = k * dl[0]
        xs = x[:, :, start:start + (out_d - 1) * st[0] + 1:st[0]]
        y = _core.conv2d(_fold_depth(xs), weight[:, :, k], None, st[1:], hw_pad, dl[1:], groups)
        total = y if total is None else total + y
    out = _unfold_depth(total, n)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1, 1)
    return out.squeeze(0) if added else out


@_listed("lower")
def conv_transpose3d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: _Ints = 1,
                     padding: _Ints = 0, output_padding: _Ints = 0, groups: int = 1, dilation: _Ints = 1) -> Tensor:
    """Transposed 3-d convolution with weight ``(C_in, C_out/groups, kd, kh, kw)``: for each kernel
    depth tap, the 2-d transposed convolution of every input depth slice, added (``index_add``)
    at the output depths that tap reaches, then the depth padding cropped."""
    x, added = _batched(input, 5)
    if weight.ndim != 5:
        raise RuntimeError("conv_transpose3d: expected a 5-D weight (in, out/groups, kd, kh, kw), got shape "
                           f"{tuple(weight.shape)}")
    st, pd, op, dl = _ntuple(stride, 3), _ntuple(padding, 3), _ntuple(output_padding, 3), _ntuple(dilation, 3)
    n, depth = x.shape[0], x.shape[2]
    kd = weight.shape[2]
    full = (depth - 1) * st[0] + dl[0] * (kd - 1) + 1 + op[0]
    out_d = full - 2 * pd[0]
    if out_d <= 0:
        raise RuntimeError(f"conv_transpose3d: the output depth would be {out_d}")
    folded = _fold_depth(x)
    total = None
    for k in range(kd):
        y = _core.conv_transpose2d(folded, weight[:, :, k], None, st[1:], pd[1:], op[1:], groups, dl[1:])
        y = _unfold_depth(y, n)  # [N, C_out, D, H_out, W_out]
        if total is None:
            shape = list(y.shape)
            shape[2] = full
            total = _core.zeros(tuple(shape), dtype=y.dtype, device=y.device)
        idx = _core.tensor((np.arange(depth) * st[0] + k * dl[0]).astype(np.int64), device=y.device)
        total = total.index_add(2, idx, y)
    out = total.narrow(2, pd[0], out_d)
    if bias is not None:
        out = out + bias.reshape(1, -1, 1, 1, 1)
    return out.squeeze(0) if added else out


@_listed("fp32")
def adaptive_max_pool3d(input: Tensor, output_size: _Ints, return_indices: bool = False) -> Tensor:
    """Max pooling of ``(N, C, D, H, W)`` to ``output_size`` with PyTorch's adaptive windows: the
    2-d op per depth slice, then the max over each adaptive depth window."""
    x, added = _batched(input, 5)
    od, oh, ow = (v if v is not None else x.shape[2 + i] for i, v in enumerate(_ntuple(output_size, 3)))
    n, depth = x.shape[0], x.shape[2]
    pooled = adaptive_max_pool2d(_fold_depth(x), (oh, ow), return_indices)
    y = _unfold_depth(pooled[0] if return_indices else pooled, n)
    idx2d = _unfold_depth(pooled[1], n) if return_indices else None
    parts, index_parts = [], []
    for i in range(od):
        lo, hi = (i * depth) // od, -(-((i + 1) * depth) // od)
        window = y.narrow(2, lo, hi - lo)
        if not return_indices:
            parts.append(window.amax(2, keepdim=True))
            continue
        # the winning depth slice, then that slice's 2-d index: the flat D*H*W index
        tap = window.argmax(2, keepdim=True)
        parts.append(window.gather(2, tap))
        plane = idx2d.narrow(2, lo, hi - lo).gather(2, tap)
        index_parts.append((tap + lo) * (x.shape[3] * x.shape[4]) + plane)
    out = _core.cat(parts, 2)
    if not return_indices:
        return out.squeeze(0) if added else out
    indices = _core.cat(index_parts, 2)
    return (out.squeeze(0), indices.squeeze(0)) if added else (out, indices)


def _depth_windows(x: Tensor, k: int, s: int, d: int) -> Tensor:
    """The depth windows of ``[N, C, D, H, W]`` as a trailing dim: ``[N, C, D_out, H, W, k]``."""
    span = d * (k - 1) + 1
    w = x.unfold(2, span, s)
    return w[..., ::d] if d > 1 else w


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = d * (k - 1) + 1
    num = size + 2 * p - span
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1  # PyTorch: the last window must start inside the input or the left padding
    return out


@_listed("fp32")
def max_pool3d(input: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None, padding: _Ints = 0,
               dilation: _Ints = 1, ceil_mode: bool = False, return_indices: bool = False):
    """3-d max pooling of ``(N, C, D, H, W)`` (or unbatched): the 2-d max pool of each depth
    slice, then the max over depth windows (max is separable over a box window)."""
    x, added = _batched(input, 5)
    k = _ntuple(kernel_size, 3)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _ntuple(stride, 3)
    p, dl = _ntuple(padding, 3), _ntuple(dilation, 3)
    n = x.shape[0]
    pooled = _core.max_pool2d(_fold_depth(x), k[1:], s[1:], p[1:], dl[1:], ceil_mode, return_indices)
    y = _unfold_depth(pooled[0] if return_indices else pooled, n)
    depth = x.shape[2]
    out_d = _pool_out(depth, k[0], s[0], p[0], dl[0], ceil_mode)
    need = (out_d - 1) * s[0] + dl[0] * (k[0] - 1) + 1
    right = max(need - depth - p[0], 0)
    if p[0] or right:
        y = pad(y, (0, 0, 0, 0, p[0], right), value=float("-inf"))
    windows = _depth_windows(y, k[0], s[0], dl[0])[:, :, :out_d]
    if not return_indices:
        out = windows.amax(-1)
        return out.squeeze(0) if added else out
    # the winning depth tap of each window, then its slice's 2-d index: the flat D*H*W index
    tap = windows.argmax(-1, keepdim=True)
    out = windows.gather(-1, tap).squeeze(-1)
    idx2d = _unfold_depth(pooled[1], n)
    if p[0] or right:
        idx2d = pad(idx2d, (0, 0, 0, 0, p[0], right), value=0)
    plane_idx = _depth_windows(idx2d, k[0], s[0], dl[0])[:, :, :out_d].gather(-1, tap).squeeze(-1)
    starts = _core.arange(out_d, device=x.device).reshape(1, 1, out_d, 1, 1) * s[0] - p[0]
    d_idx = starts + tap.squeeze(-1) * dl[0]
    indices = d_idx * (x.shape[3] * x.shape[4]) + plane_idx
    if added:
        return out.squeeze(0), indices.squeeze(0)
    return out, indices


@_listed("fp32")
def avg_pool3d(input: Tensor, kernel_size: _Ints, stride: Optional[_Ints] = None, padding: _Ints = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, divisor_override: Optional[int] = None) -> Tensor:
    """3-d average pooling of ``(N, C, D, H, W)`` (or unbatched): the 2-d average of each depth
    slice, then the average over depth windows (a box average is separable, and so is its count
    of non-padding elements)."""
    if ceil_mode:
        raise NotImplementedError("avg_pool3d(ceil_mode=True) is not implemented in backprop_rs")
    x, added = _batched(input, 5)
    k = _ntuple(kernel_size, 3)
    s = k if stride is None or (not isinstance(stride, int) and len(stride) == 0) else _ntuple(stride, 3)
    p = _ntuple(padding, 3)
    n = x.shape[0]
    include = count_include_pad or divisor_override is not None
    y = _unfold_depth(_core.avg_pool2d(_fold_depth(x), k[1:], s[1:], p[1:], False, include, None), n)
    if p[0]:
        y = pad(y, (0, 0, 0, 0, p[0], p[0]))
    out = _depth_windows(y, k[0], s[0], 1).sum(-1)
    if divisor_override is not None:
        out = out * (k[1] * k[2] / divisor_override)
    elif include:
        out = out / k[0]
    else:
        ones = _core.ones((1, 1, x.shape[2], 1, 1), dtype=out.dtype, device=out.device)
        if p[0]:
            ones = pad(ones, (0, 0, 0, 0, p[0], p[0]))
        out = out / _depth_windows(ones, k[0], s[0], 1).sum(-1)
    return out.squeeze(0) if added else out


@_listed("fp32")
def adaptive_avg_pool3d(input: Tensor, output_size: _Ints) -> Tensor:
    """Average pooling of ``(N, C, D, H, W)`` to ``output_size`` with PyTorch's adaptive windows
    (``floor(i * D / out)`` to ``ceil((i + 1) * D / out)``): the 2-d op per depth slice, then
    the depth windows as one product with an averaging matrix."""
    x, added = _batched(input, 5)
    od, oh, ow = (v if v is not None else x.shape[2 + i] for i, v in enumerate(_ntuple(output_size, 3)))
    n, depth = x.shape[0], x.shape[2]
    y = _unfold_depth(_core.adaptive_avg_pool2d(_fold_depth(x), (oh, ow)), n)
    m = np.zeros((depth, od))
    for i in range(od):
        lo, hi = (i * depth) // od, -(-((i + 1) * depth) // od)
        m[lo:hi, i] = 1.0 / (hi - lo)
    mt = _core.tensor(m, dtype=y.dtype, device=y.device)
    out = (y.movedim(2, -1) @ mt).movedim(-1, 2)
    return out.squeeze(0) if added else out


def adaptive_avg_pool1d(input: Tensor, output_size: _Ints) -> Tensor:
    """Average pooling of ``(N, C, L)`` or ``(C, L)`` to length ``output_size`` (PyTorch's windows)."""
    x, added = _batched(input, 3)
    y = _core.adaptive_avg_pool2d(x.unsqueeze(2), (1, _single(output_size, "output_size"))).squeeze(2)
    return y.squeeze(0) if added else y


def _adaptive_windows(size: int, out: int) -> Tuple[np.ndarray, np.ndarray]:
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)  # floor(i*size/out), ceil((i+1)*size/out)


def _adaptive_max(x: Tensor, out_sizes: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Adaptive max pooling over the last ``len(out_sizes)`` (1 or 2) dims: every window's flat
    input positions are listed (row-major, padded to the longest window), the maxima found with one
    index_select and one max, and the values gathered from the input by those indices — so the
    gradient goes to the first maximum of each window, as PyTorch's kernel does."""
    spatial = list(x.shape[x.ndim - len(out_sizes):])
    lead = list(x.shape[:x.ndim - len(out_sizes)])
    for s, o in zip(spatial, out_sizes):
        if o <= 0 or s <= 0:
            raise RuntimeError(f"adaptive_max_pool: input spatial size {spatial} and output size {list(out_sizes)} "
                               "must be positive")
    wins = [_adaptive_windows(s, o) for s, o in zip(spatial, out_sizes)]
    klen = [int((e - b).max()) for b, e in wins]
    # per dim: positions [out, k] (clipped to the window's last element) and validity
    pos, valid = [], []
    for (b, e), k in zip(wins, klen):
        p = b[:, None] + np.arange(k)[None, :]
        valid.append(p < e[:, None])
        pos.append(np.minimum(p, e[:, None] - 1))
    if len(out_sizes) == 1:
        flat, ok = pos[0], valid[0]
    else:
        w = spatial[1]
        flat = (pos[0][:, None, :, None] * w + pos[1][None, :, None, :]).reshape(out_sizes[0], out_sizes[1], -1)
        ok = (valid[0][:, None, :, None] & valid[1][None, :, None, :]).reshape(out_sizes[0], out_sizes[1], -1)
    xf = x.reshape(*lead, -1)
    with _no_grad():
        table = _core.tensor(flat.reshape(-1), dtype=_core.int64, device=x.device)
        cand = xf.detach().index_select(-1, table).reshape(*lead, *flat.shape)
        if not ok.all():
            cand = _core.where(_core.tensor(ok, device=x.device), cand, -math.inf)
        k = cand.max(-1).indices
        idx = _core.tensor(flat, dtype=_core.int64, device=x.device).expand(*lead, *flat.shape)
        idx = idx.gather(-1, k.unsqueeze(-1)).squeeze(-1)
    values = xf.gather(-1, idx.reshape(*lead, -1)).reshape(idx.shape)
    return values, idx


def adaptive_max_pool1d(input: Tensor, output_size: _Ints, return_indices: bool = False):
    """Max pooling of ``(N, C, L)`` or ``(C, L)`` to length ``output_size``."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"adaptive_max_pool1d(): Expected 2D or 3D tensor, but got {list(input.shape)}")
    v, i = _adaptive_max(input, [_single(output_size, "output_size")])
    return (v, i) if return_indices else v


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False):
    """Max pooling of ``(N, C, H, W)`` or ``(C, H, W)`` to ``output_size`` (an int, a pair, or a
    pair with ``None`` for "keep that size"); indices are flat over ``H * W``."""
    if input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_max_pool2d(): Expected 3D or 4D tensor, but got {list(input.shape)}")
    oh, ow = _ntuple(output_size, 2)
    oh = input.shape[-2] if oh is None else int(oh)
    ow = input.shape[-1] if ow is None else int(ow)
    v, i = _adaptive_max(input, [oh, ow])
    return (v, i) if return_indices else v


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """Pads the trailing dims; ``pad`` is ``(left, right, top, bottom, ...)``, last dim first.
    ``mode='circular'`` wraps around (composed here from slices; the other modes are one core op)."""
    pad = [int(p) for p in pad]
    if any(p < 0 for p in pad):
        if mode != "constant":
            raise ValueError(f"negative padding is only supported with mode='constant' (it crops), got mode={mode!r}")
        if len(pad) % 2 or len(pad) // 2 > input.ndim:
            raise ValueError(f"Padding length must be divisible by 2 and at most 2 * ndim, got {len(pad)}")
        # a negative pad crops that side (PyTorch): narrow first, then pad what is positive
        for i in range(len(pad) // 2):
            dim = input.ndim - 1 - i
            left, right = -min(pad[2 * i], 0), -min(pad[2 * i + 1], 0)
            n = input.shape[dim]
            if left + right > n:
                raise RuntimeError(f"The input size {n}, plus negative padding {-left} and {-right} resulted in a negative output size")
            input = input.narrow(dim, left, n - left - right)
        pad = [max(p, 0) for p in pad]
    if mode != "circular":
        return _core.pad(input, pad, mode, value)
    if len(pad) % 2:
        raise ValueError("Padding length must be divisible by 2")
    out = input
    for i in range(len(pad) // 2):
        dim = input.ndim - 1 - i
        left, right = pad[2 * i], pad[2 * i + 1]
        n = out.shape[dim]
        if left > n or right > n:
            raise RuntimeError("Padding value causes wrapping around more than once.")
        parts = []
        if left > 0:
            parts.append(out.narrow(dim, n - left, left))
        parts.append(out.narrow(dim, max(0, -left), n - max(0, -left) - max(0, -right)))
        if right > 0:
            parts.append(out.narrow(dim, 0, right))
        out = _core.cat(parts, dim)
    return out


# ---------------------------------------------------------------------------------------------- resampling


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """``(*, C * r^2, H, W) -> (*, C, H * r, W * r)``."""
    r = int(upscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_shuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise RuntimeError(f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the square of "
                           f"upscale_factor, but input.size(-3)={c} is not divisible by {r * r}")
    k = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """``(*, C, H * r, W * r) -> (*, C * r^2, H, W)``, the inverse of :func:`pixel_shuffle`."""
    r = int(downscale_factor)
    if input.ndim < 3:
        raise RuntimeError(f"pixel_unshuffle expects input to have at least 3 dimensions, but got input with "
                           f"{input.ndim} dimension(s)")
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise RuntimeError(f"pixel_unshuffle expects height and width to be divisible by downscale_factor, but input "
                           f"has size {list(input.shape)} and downscale_factor={r}")
    k = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)


def _nearest_index(in_size: int, out_size: int, scale: Optional[float], exact: bool) -> np.ndarray:
    # PyTorch computes these in float32 (compute_scales_value<float>, floorf)
    s = np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(in_size) / np.float32(out_size)
    d = np.arange(out_size, dtype=np.float32)
    src = np.floor((d + np.float32(0.5)) * s) if exact else np.floor(d * s)
    return np.minimum(src.astype(np.int64), in_size - 1)


def _source_index(in_size: int, out_size: int, scale: Optional[float], align_corners: bool, dtype,
                  cubic: bool) -> np.ndarray:
    """PyTorch's ``area_pixel_compute_source_index`` for every output position, in the input's
    precision (clamped at 0 except for cubic)."""
    ft = np.float64 if dtype == _core.float64 else np.float32
    if align_corners:
        s = ft((in_size - 1) / (out_size - 1)) if out_size > 1 else ft(0)
        return ft(s) * np.arange(out_size, dtype=ft)
    s = ft(1.0 / scale) if scale is not None and scale > 0 else ft(in_size) / ft(out_size)
    src = s * (np.arange(out_size, dtype=ft) + ft(0.5)) - ft(0.5)
    return src if cubic else np.maximum(src, ft(0))


def _linear_matrix(in_size: int, out_size: int, scale: Optional[float], align_corners: bool, dtype) -> np.ndarray:
    """The ``[out, in]`` matrix of 1-d linear interpolation, with PyTorch's source-index rule."""
    src = _source_index(in_size, out_size, scale, align_corners, dtype, cubic=False)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    lam = np.clip(src - i0, 0, 1).astype(np.float64)
    i1 = i0 + (i0 < in_size - 1)
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - lam)
    np.add.at(m, (rows, i1), lam)
    return m


def _cubic_matrix(in_size: int, out_size: int, scale: Optional[float], align_corners: bool, dtype) -> np.ndarray:
    """The ``[out, in]`` matrix of 1-d bicubic interpolation as PyTorch's upsample_bicubic2d:
    the source index without the clamp at 0 (``cubic=True``), the base index kept at most
    ``in - 1`` and its fraction in [0, 1] (``guard_index_and_lambda``), Keys' weights with
    A = -0.75 on taps -1..2, each tap clamped into the input (border replication)."""
    src = _source_index(in_size, out_size, scale, align_corners, dtype, cubic=True)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    t = np.clip(src - i0, 0, 1).astype(np.float64)
    a = -0.75
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
    weights = [far(t + 1), near(t), near(1 - t), far(2 - t)]
    m = np.zeros((out_size, in_size))
    rows = np.arange(out_size)
    for k, wk in enumerate(weights):
        np.add.at(m, (rows, np.clip(i0 - 1 + k, 0, in_size - 1)), wk)
    return m


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
                align_corners: Optional[bool] = None, recompute_scale_factor: Optional[bool] = None,
                antialias: bool = False) -> Tensor:
    """Resizes the spatial dims of ``(N, C, *spatial)``. Modes: ``nearest`` and ``nearest-exact``
    (an index_select per dim), ``linear``/``bilinear``/``trilinear`` and ``bicubic`` (a matmul per
    dim with a constant interpolation matrix, so the gradient is its transpose; bicubic is
    separable, as PyTorch's), ``area`` (adaptive average pooling, 1-d and 2-d).
    ``antialias=True`` is not implemented and says so."""
    dim = input.ndim - 2
    if dim < 1:
        raise ValueError(f"interpolate expects an input of shape (N, C, d1, ...), got {list(input.shape)}")
    linear_modes = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}
    if mode in ("nearest", "area", "nearest-exact"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif mode in linear_modes:
        if align_corners is None:
            align_corners = False
    else:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) "
                                  "for the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact (got {mode})")
    if antialias:
        raise NotImplementedError("interpolate(antialias=True) is not implemented in backprop_rs")
    if mode in linear_modes and linear_modes[mode] != dim:
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs {linear_modes[mode] + 2}D input")
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    spatial = list(input.shape[2:])
    scales: List[Optional[float]] = [None] * dim
    if size is not None:
        if isinstance(size, (list, tuple)):
            if len(size) != dim:
                raise ValueError("Input and output must have the same number of spatial dimensions, but got input with "
                                 f"spatial dimensions of {spatial} and output size of {list(size)}. Please provide "
                                 "input tensor in (N, C, d1, d2, ...,dK) format and output size in (o1, o2, ...,oK) "
                                 "format.")
            out = [int(s) for s in size]
        else:
            out = [int(size)] * dim
    elif scale_factor is not None:
        if isinstance(scale_factor, (list, tuple)):
            if len(scale_factor) != dim:
                raise ValueError("Input and scale_factor must have the same number of spatial dimensions, but got "
                                 f"input with spatial dimensions of {spatial} and scale_factor of shape "
                                 f"{list(scale_factor)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                                 "and scale_factor in (s1, s2, ...,sK) format.")
            sf = [float(s) for s in scale_factor]
        else:
            sf = [float(scale_factor)] * dim
        out = [math.floor(float(n) * s) for n, s in zip(spatial, sf)]
        if not recompute_scale_factor:
            scales = list(sf)
    else:
        raise ValueError("either size or scale_factor should be defined")
    if mode == "area":
        if dim == 1:
            return adaptive_avg_pool1d(input, out[0])
        if dim == 2:
            return _core.adaptive_avg_pool2d(input, tuple(out))
        raise NotImplementedError("interpolate(mode='area') supports 3-D and 4-D inputs in backprop_rs")
    x = input
    for i in range(dim):
        d = 2 + i
        if mode in ("nearest", "nearest-exact"):
            if out[i] == spatial[i]:
                continue
            idx = _nearest_index(spatial[i], out[i], scales[i], mode == "nearest-exact")
            x = x.index_select(d, _core.tensor(idx, dtype=_core.int64, device=x.device))
        else:
            build = _cubic_matrix if mode == "bicubic" else _linear_matrix
            m = _like(x, build(spatial[i], out[i], scales[i], align_corners, x.dtype))
            x = (x.transpose(d, -1) @ m.t()).transpose(d, -1)
    return x.contiguous()


_ALIGN_CORNERS_WARNING = ("Default grid_sample and affine_grid behavior has changed to align_corners=False since 1.3.0. "
                          "Please specify align_corners=True if the old behavior is desired. See the documentation "
                          "of grid_sample for details.")


def affine_grid(theta: Tensor, size: Sequence[int], align_corners: Optional[bool] = None) -> Tensor:
    """The sampling grid of the affine maps ``theta`` over an output of ``size``, in
    ``grid_sample``'s normalised coordinates: ``(N, H, W, 2)`` (x, y) for 2-D maps ``(N, 2, 3)``
    and sizes ``(N, C, H, W)``, ``(N, D, H, W, 3)`` (x, y, z) for 3-D maps ``(N, 3, 4)`` and sizes
    ``(N, C, D, H, W)``. Differentiable in ``theta``. ``align_corners`` left as None means False,
    with PyTorch's warning."""
    if align_corners is None:
        warnings.warn(_ALIGN_CORNERS_WARNING, stacklevel=2)
        align_corners = False
    size = [int(v) for v in size]
    if len(size) not in (4, 5):
        raise NotImplementedError(f"affine_grid only supports 4D and 5D sizes, for 2D and 3D affine transforms, "
                                  f"respectively. Got size {size}.")
    k = len(size) - 2  # spatial dims
    n, spatial = size[0], size[2:]
    if theta.ndim != 3 or list(theta.shape) != [n, k, k + 1]:
        raise ValueError(f"Expected a batch of {k}D affine matrices of shape Nx{k}x{k + 1} for size {size}. "
                         f"Got {list(theta.shape)}.")
    if not theta.dtype.is_floating_point:
        raise ValueError(f"Expected theta to have floating point type, but got {theta.dtype}")

    def axis(steps: int) -> np.ndarray:
        if steps <= 1:
            return np.zeros(max(steps, 0))
        v = np.linspace(-1.0, 1.0, steps)
        return v if align_corners else v * (steps - 1) / steps

    # meshgrid over (D,) H, W in "ij" order; the grid's last axis is x (W) first
    mesh = np.meshgrid(*[axis(d) for d in spatial], indexing="ij")
    base = np.stack([*mesh[::-1], np.ones_like(mesh[0])], axis=-1).reshape(1, -1, k + 1)
    grid = _like(theta, base) @ theta.transpose(1, 2)  # [N, prod(spatial), k]
    return grid.reshape(n, *spatial, k)


def _fold_coordinate(ix: Tensor, size: int, align_corners: bool, padding_mode: str) -> Tensor:
    """PyTorch's ``compute_coordinates``: a (fractional) pixel index clipped (border) or
    reflected then clipped (reflection); unchanged for zeros padding."""
    if padding_mode == "border":
        ix = ix.clamp(0.0, size - 1)
    elif padding_mode == "reflection":
        # reflect about the edges (pixel centres with align_corners, pixel borders without),
        # then clip, as PyTorch's reflect_coordinates + clip_coordinates
        lo, span = (0.0, 2.0 * (size - 1)) if align_corners else (-0.5, 2.0 * size)
        if span <= 0:
            ix = ix * 0.0
        else:
            t = (ix - lo).abs()
            flips = (t / (span / 2.0)).floor()
            extra = t - flips * (span / 2.0)
            even = _mask(flips.remainder(2.0) == 0, t)
            ix = (extra + lo) * even + (span / 2.0 - extra + lo) * (1.0 - even)
        ix = ix.clamp(0.0, size - 1)
    return ix


def _unnormalise(coord: Tensor, size: int, align_corners: bool) -> Tensor:
    """Normalised grid coordinates in [-1, 1] as fractional pixel indices along one axis."""
    if align_corners:
        return (coord + 1.0) * ((size - 1) / 2.0)
    return ((coord + 1.0) * size - 1.0) / 2.0


def _grid_source(coord: Tensor, size: int, align_corners: bool, padding_mode: str) -> Tensor:
    """The source pixel index of a grid coordinate, with PyTorch's unnormalisation and its
    border / reflection folding."""
    return _fold_coordinate(_unnormalise(coord, size, align_corners), size, align_corners, padding_mode)


def _cubic_weights(t: Tensor) -> List[Tensor]:
    """The 4 weights of taps -1, 0, 1, 2 at fraction ``t`` (Keys' cubic convolution with
    A = -0.75, PyTorch's ``get_cubic_upsample_coefficients``)."""
    a = -0.75

    def near(x: Tensor) -> Tensor:  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x: Tensor) -> Tensor:  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


@_listed("fp32")
def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: Optional[bool] = None) -> Tensor:
    """Samples ``input`` at the normalised locations ``grid``: ``(N, C, H, W)`` with a grid
    ``(N, Ho, Wo, 2)`` gives ``(N, C, Ho, Wo)``; ``(N, C, D, H, W)`` with ``(N, Do, Ho, Wo, 3)``
    gives ``(N, C, Do, Ho, Wo)`` (x in ``grid[..., 0]``, then y, then z; -1 and 1 the extreme
    pixels or their outer borders by ``align_corners``). Modes ``bilinear`` (trilinear on 5-D
    inputs), ``nearest`` (half to even) and ``bicubic`` (4-D only, as in PyTorch: Keys' cubic with
    A = -0.75 over 4x4 taps, each tap folded by the padding), padding ``zeros``, ``border`` or
    ``reflection``. Composed of gathers, so it is differentiable in both the input and (bilinear,
    bicubic) the grid, on every device. ``align_corners`` left as None means False, with
    PyTorch's warning."""
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', 'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError("nn.functional.grid_sample(): expected padding_mode to be 'zeros', 'border', or 'reflection', "
                         f"but got: '{padding_mode}'")
    if align_corners is None:
        warnings.warn(_ALIGN_CORNERS_WARNING, stacklevel=2)
        align_corners = False
    k = input.ndim - 2
    if (k not in (2, 3) or grid.ndim != input.ndim or grid.shape[-1] != k or grid.shape[0] != input.shape[0]):
        raise RuntimeError(f"grid_sample(): expected a 4-D input (N, C, H, W) with a grid (N, H_out, W_out, 2), or a "
                           f"5-D input (N, C, D, H, W) with a grid (N, D_out, H_out, W_out, 3), with the same batch "
                           f"size, but got input of shape {list(input.shape)} and grid of shape {list(grid.shape)}")
    if mode == "bicubic" and k == 3:
        raise RuntimeError("grid_sampler(): bicubic interpolation only supports 4D input")
    if grid.dtype != input.dtype:
        raise RuntimeError(f"grid_sample(): expected input and grid to have the same dtype, but input has {input.dtype} "
                           f"and grid has {grid.dtype}")
    n, c = input.shape[0], input.shape[1]
    sizes = list(input.shape[2:])[::-1]  # W, H(, D): the order of the grid's last axis
    out_spatial = list(grid.shape[1:-1])
    npts = math.prod(out_spatial)
    flat = input.reshape(n, c, math.prod(sizes))
    raw = [grid[..., a].reshape(n, 1, npts) for a in range(k)]

    def tap(idx: List[Tensor]) -> Tensor:
        # the values at integer pixel idx ([N, 1, L] floats each, x first), 0 outside the input
        inside = None
        lin = None
        for a in reversed(range(k)):  # slowest axis (D or H) first
            xi, size = idx[a], sizes[a]
            ok = (xi >= 0) & (xi <= size - 1)
            inside = ok if inside is None else inside & ok
            ci = xi.clamp(0, size - 1)
            lin = ci if lin is None else lin * size + ci
        return flat.gather(2, lin.to(_core.int64).expand(n, c, npts)) * _mask(inside, idx[0])

    if mode == "bicubic":
        # unnormalised without folding; each of the 16 taps is folded on its own
        src = [_unnormalise(raw[a], sizes[a], align_corners) for a in range(k)]
        base = [v.detach().floor() for v in src]
        wx, wy = _cubic_weights(src[0] - base[0]), _cubic_weights(src[1] - base[1])
        out = None
        for j in range(4):
            yj = _fold_coordinate(base[1] + (j - 1.0), sizes[1], align_corners, padding_mode).detach()
            row = None
            for i in range(4):
                xi = _fold_coordinate(base[0] + (i - 1.0), sizes[0], align_corners, padding_mode).detach()
                term = tap([xi, yj]) * wx[i]
                row = term if row is None else row + term
            out = row * wy[j] if out is None else out + row * wy[j]
        return out.reshape(n, c, *out_spatial)
    src = [_grid_source(raw[a], sizes[a], align_corners, padding_mode) for a in range(k)]
    if mode == "nearest":
        out = tap([v.detach().round() for v in src])
        if grid.requires_grad:
            # PyTorch gives the grid a zero gradient in nearest mode (round's gradient is 0);
            # nan_to_num keeps a non-finite coordinate from turning the output into NaN
            out = out + sum(v.round() for v in src).mul(0.0).nan_to_num(0.0, 0.0, 0.0)
        return out.reshape(n, c, *out_spatial)
    # (tri)linear: 2^k corners, each weighted by the product of its per-axis weights
    lo = [v.detach().floor() for v in src]
    frac = [v - f for v, f in zip(src, lo)]
    out = None
    for corner in range(2 ** k):
        bits = [(corner >> a) & 1 for a in range(k)]
        weight = None
        for a, b in enumerate(bits):
            w_a = frac[a] if b else 1.0 - frac[a]
            weight = w_a if weight is None else weight * w_a
        term = tap([lo[a] + float(b) for a, b in enumerate(bits)]) * weight
        out = term if out is None else out + term
    return out.reshape(n, c, *out_spatial)


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
             align_corners: Optional[bool] = None) -> Tensor:
    """Deprecated alias of :func:`interpolate`, kept as PyTorch keeps it."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """``interpolate(mode='nearest')``. An integer factor on ``[N, C, H, W]`` takes a broadcast
    view and one copy (each pixel becomes an ``s x s`` block)."""
    if size is None and isinstance(scale_factor, int) and input.ndim == 4 and scale_factor >= 1:
        n, c, h, w = input.shape
        s = scale_factor
        return input.reshape(n, c, h, 1, w, 1).expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)
    return interpolate(input, size, scale_factor, "nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """``interpolate(mode='bilinear', align_corners=True)`` (PyTorch's deprecated helper)."""
    return interpolate(input, size, scale_factor, "bilinear", align_corners=True)


# ---------------------------------------------------------------------------------------------- losses


def cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
                  ignore_index: int = -100, reduce: Optional[bool] = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Log-softmax over dim 1 then the negative log-likelihood; ``target`` holds class indices
    (``ignore_index`` skipped) or class probabilities. ``weight`` per class, ``label_smoothing``
    mixes the target with the uniform distribution. One fused core op for every option."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _core.cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing)


def _lengths(v, what: str) -> List[int]:
    if isinstance(v, Tensor):
        if v.dtype.is_floating_point or v.dtype == _core.bool_:
            raise RuntimeError(f"ctc_loss: {what} must be integers, got {v.dtype}")
        return [int(i) for i in v.detach().cpu().reshape(-1).tolist()]
    return [int(i) for i in v]


@_listed("fp32")
def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist temporal classification loss, as ``torch.nn.functional.ctc_loss``:
    ``log_probs`` ``(T, N, C)`` (or ``(T, C)`` unbatched) log-probabilities, ``targets`` padded
    ``(N, S)`` or concatenated 1-D, the lengths as tensors or sequences of ints. ``'mean'``
    divides each loss by its target length, then averages over the batch.

    Composed: the forward (alpha) recursion over time in log space, one step of a few
    elementwise ops on ``(N, 2S+1)`` per frame, so autograd gives the gradient (and it runs on
    every device). Unreachable states hold a large negative number instead of -inf so that no
    ``0 * inf`` reaches the gradient; an impossible alignment gives ``inf`` (0 with
    ``zero_infinity``, gradient 0 as well). The gradient is the true derivative in
    ``log_probs``; PyTorch's kernel returns it plus ``exp(log_probs)``, a term that cancels
    through the ``log_softmax`` these inputs come from, so gradients in the network agree and only
    a leaf ``log_probs.grad`` differs."""
    _check_reduction(reduction)
    unbatched = log_probs.ndim == 2
    if unbatched:
        log_probs = log_probs.unsqueeze(1)
        if targets.ndim == 1:
            targets = targets.unsqueeze(0)
    if log_probs.ndim != 3:
        raise RuntimeError(f"ctc_loss: log_probs must be (T, N, C) or (T, C), got shape {list(log_probs.shape)}")
    t_max, n, c = log_probs.shape
    in_len = _lengths(input_lengths, "input_lengths")
    tg_len = _lengths(target_lengths, "target_lengths")
    if len(in_len) != n or len(tg_len) != n:
        raise RuntimeError(f"ctc_loss: expected {n} input and target lengths, got {len(in_len)} and {len(tg_len)}")
    if not 0 <= blank < c:
        raise RuntimeError(f"ctc_loss: blank must be in label range [0, {c}), got {blank}")
    for i, (a, b) in enumerate(zip(in_len, tg_len)):
        if not 0 <= a <= t_max:
            raise RuntimeError(f"ctc_loss: input_lengths[{i}] = {a} must be between 0 and T = {t_max}")
        if b < 0:
            raise RuntimeError(f"ctc_loss: target_lengths[{i}] = {b} must be non-negative")
    tg = targets.detach().cpu().numpy().astype(np.int64)
    s_max = max(tg_len) if tg_len else 0
    padded = np.full((n, max(s_max, 1)), blank, dtype=np.int64)
    if tg.ndim == 1:
        if tg.size < sum(tg_len):
            raise RuntimeError(f"ctc_loss: 1-D targets hold {tg.size} labels but target_lengths sum to {sum(tg_len)}")
        off = 0
        for i, b in enumerate(tg_len):
            padded[i, :b] = tg[off:off + b]
            off += b
    else:
        if tg.shape[0] != n or tg.shape[1] < s_max:
            raise RuntimeError(f"ctc_loss: targets of shape {list(tg.shape)} do not hold the target lengths {tg_len}")
        for i, b in enumerate(tg_len):
            padded[i, :b] = tg[i, :b]
    if ((padded < 0) | (padded >= c)).any():
        raise RuntimeError(f"ctc_loss: target labels must be in [0, {c})")
    width = 2 * s_max + 1
    ext = np.full((n, width), blank, dtype=np.int64)
    ext[:, 1::2] = padded[:, :s_max]
    # the skip from s-2 is allowed onto a label that differs from the label two back
    skip = np.zeros((n, width), dtype=bool)
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    neg = -1e30  # a finite "log 0" (float32 holds it too)
    dev = log_probs.device
    idx = _core.tensor(ext, dtype=_core.int64, device=dev).unsqueeze(0).expand(t_max, n, width)
    lp = log_probs.gather(2, idx)  # [T, N, 2S+1]
    skip_t = _like(log_probs, skip.astype(np.float64))
    first = np.full((n, width), neg)
    first[:, 0] = 0.0
    if width > 1:
        first[:, 1] = 0.0
    if t_max == 0:
        alpha = _like(log_probs, np.full((n, width), neg))
    else:
        alpha = lp[0] + _like(log_probs, first).clamp(min=neg)
    pad1 = _like(log_probs, np.full((n, 1), neg))
    pad2 = _like(log_probs, np.full((n, 2), neg))
    active = np.array(in_len)[None, :] > np.arange(t_max)[:, None]  # [T, N]: frame t is inside sample n
    for t in range(1, t_max):
        a1 = _core.cat([pad1, alpha[:, :-1]], 1)
        a2 = _core.cat([pad2, alpha[:, :-2]], 1) * skip_t + neg * (1.0 - skip_t)
        m = alpha.maximum(a1).maximum(a2)
        step = m + ((alpha - m).exp() + (a1 - m).exp() + (a2 - m).exp()).log() + lp[t]
        if active[t].all():
            alpha = step
        else:
            keep = _like(log_probs, active[t].astype(np.float64)[:, None])
            alpha = step * keep + alpha * (1.0 - keep)
    # the loss reads the last blank and the last label of each sample (the blank alone for S = 0)
    last = _core.tensor([2 * b for b in tg_len], dtype=_core.int64, device=dev).unsqueeze(1)
    prev = _core.tensor([max(2 * b - 1, 0) for b in tg_len], dtype=_core.int64, device=dev).unsqueeze(1)
    has_label = _like(log_probs, np.array([[1.0 if b > 0 else 0.0] for b in tg_len]))
    e_last = alpha.gather(1, last)
    e_prev = alpha.gather(1, prev) * has_label + neg * (1.0 - has_label)
    m = e_last.maximum(e_prev)
    ll = (m + ((e_last - m).exp() + (e_prev - m).exp()).log()).reshape(n)
    # no alignment at all (input shorter than the labels need; or length 0 with labels)
    feasible = _like(log_probs, np.array([1.0 if a > 0 or b == 0 else 0.0 for a, b in zip(in_len, tg_len)]))
    reachable = (ll > neg / 2).to(ll.dtype) * feasible
    if zero_infinity:
        loss = -ll * reachable
    else:
        inf = _like(log_probs, math.inf)
        loss = _core.where(reachable > 0, -ll, inf)
    if unbatched and reduction == "none":
        return loss.reshape(())
    if reduction == "mean":
        return (loss / _like(log_probs, np.maximum(np.array(tg_len, dtype=np.float64), 1.0))).mean()
    return _reduce(loss, reduction)


def nll_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
             ignore_index: int = -100, reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``-input[n, target[n]] * weight[target[n]]``; ``mean`` divides by the summed weights."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _core.nll_loss(input, target, weight, ignore_index, reduction)


@_listed("fp32")
def mse_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
             reduction: str = "mean", weight: Optional[Tensor] = None) -> Tensor:
    """``(input - target)^2`` (optionally ``* weight``), reduced."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is None:
        return _core.mse_loss(input, target, reduction)
    return _reduce((input - target) ** 2 * weight, reduction)


@_listed("fp32")
def l1_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
            reduction: str = "mean", weight: Optional[Tensor] = None) -> Tensor:
    """``|input - target|`` (optionally ``* weight``), reduced."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if weight is None:
        return _core.l1_loss(input, target, reduction)
    return _reduce((input - target).abs() * weight, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                     size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                                     reduction: str = "mean", pos_weight: Optional[Tensor] = None) -> Tensor:
    """``-w * (pos_weight * y * log(sigmoid(x)) + (1 - y) * log(1 - sigmoid(x)))``, computed stably."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return _core.binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight)


@_listed("fp32")
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                         size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                         reduction: str = "mean") -> Tensor:
    """``-w * (y * log(x) + (1 - y) * log(1 - x))`` with each log clamped to ``>= -100``, as PyTorch."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"Using a target size ({tuple(target.shape)}) that is different to the input size "
                         f"({tuple(input.shape)}) is deprecated. Please ensure they have the same size.")
    if input.numel() and (input.detach().amin().item() < 0 or input.detach().amax().item() > 1):
        raise RuntimeError("all elements of input should be between 0 and 1")
    loss = -(target * input.log().clamp(min=-100.0) + (1.0 - target) * (1.0 - input).log().clamp(min=-100.0))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


@_listed("fp32")
def smooth_l1_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta`` (``beta = 0``: L1)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if beta < 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    d = (input - target).abs()
    if beta == 0:
        return _reduce(d, reduction)
    return _reduce(_core.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta), reduction)


@_listed("fp32")
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Optional[Tensor] = None) -> Tensor:
    """``0.5 d^2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``."""
    _check_reduction(reduction)
    if delta <= 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    d = (input - target).abs()
    loss = _core.where(d < delta, 0.5 * d * d, delta * (d - 0.5 * delta))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _xlogy(x: Tensor) -> Tensor:
    # x * log(x) with 0 at x = 0 (PyTorch's xlogy(t, t)); the guard keeps log's gradient finite
    pos = x > 0
    return _core.where(pos, x * _core.where(pos, x, 1.0).log(), 0.0)


@_listed("fp32")
def kl_div(input: Tensor, target: Tensor, size_average: Optional[bool] = None, reduce: Optional[bool] = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """``target * (log(target) - input)`` with ``input`` in log space (and ``target`` too when
    ``log_target``). ``batchmean`` divides the sum by the batch size (the KL divergence);
    ``mean`` divides by the number of elements, as PyTorch (with its warning)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in ("none", "mean", "sum", "batchmean"):
        raise ValueError(f"{reduction} is not a valid value for reduction")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      stacklevel=2)
    if log_target:
        loss = target.exp() * (target - input)
    else:
        loss = _xlogy(target) - target * input
    if reduction == "batchmean":
        return loss.sum() / input.shape[0] if input.ndim != 0 else loss.sum()
    return _reduce(loss, reduction)


@_listed("fp32")
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average: Optional[bool] = None, eps: float = 1e-8, reduce: Optional[bool] = None,
                     reduction: str = "mean") -> Tensor:
    """``exp(input) - target * input`` (``log_input``) or ``input - target * log(input + eps)``;
    ``full`` adds Stirling's ``target * log(target) - target + 0.5 * log(2 pi target)`` where
    ``target > 1``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if log_input:
        loss = input.exp() - target * input
    else:
        loss = input - target * (input + eps).log()
    if full:
        big = target > 1
        t = _core.where(big, target, 1.0)
        stirling = t * t.log() - t + 0.5 * (2 * math.pi * t).log()
        loss = loss + _core.where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input: Tensor, target: Tensor, var: Union[Tensor, float], full: bool = False,
                      eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    """``0.5 * (log(max(var, eps)) + (input - target)^2 / max(var, eps))`` (+ ``0.5 log(2 pi)``
    when ``full``). As in PyTorch the clamp of ``var`` passes its gradient through unchanged;
    ``var`` may have one dim fewer than ``input`` or a last dim of 1 (one variance per sample)."""
    _check_reduction(reduction)
    if not isinstance(var, Tensor):
        var = _core.full_like(input, float(var))  # a float: one variance for every element
    if var.shape != input.shape:
        if input.shape[:-1] == var.shape:
            var = var.unsqueeze(-1)
        elif not (input.shape[:-1] == var.shape[:-1] and var.ndim > 0 and var.shape[-1] == 1):
            raise ValueError("var is of incorrect size")
    if var.numel() and var.detach().amin().item() < 0:
        raise ValueError("var has negative entry/entries")
    var = var + (var.clamp(min=eps) - var).detach()  # the clamp without history, as PyTorch's no_grad clamp_
    loss = 0.5 * (var.log() + (input - target) ** 2 / var)
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


@_listed("fp32")
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                        size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                        reduction: str = "mean") -> Tensor:
    """``max(0, -target * (input1 - input2) + margin)``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input1.ndim != input2.ndim or input1.ndim != target.ndim:
        raise RuntimeError(f"margin_ranking_loss : All input tensors should have same dimension but got sizes: "
                           f"input1: {tuple(input1.shape)}, input2: {tuple(input2.shape)}, "
                           f"target: {tuple(target.shape)} ")
    return _reduce((-target * (input1 - input2) + margin).clamp(min=0.0), reduction)


@_listed("fp32")
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average: Optional[bool] = None,
                         reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``x`` where ``target == 1``, ``max(0, margin - x)`` where ``target == -1`` (PyTorch's
    formula: both terms, each masked by ``target != -1`` / ``target != 1``)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    margin_term = _core.where(target != 1, (margin - input).clamp(min=0.0), 0.0)
    self_term = _core.where(target != -1, input, 0.0)
    return _reduce(margin_term + self_term, reduction)


@_listed("fp32")
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0.0,
                          size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                          reduction: str = "mean") -> Tensor:
    """``1 - cos(x1, x2)`` where ``target == 1``, ``max(0, cos(x1, x2) - margin)`` where
    ``target == -1``; ``cos`` over the last dim with PyTorch's ``1e-12`` in each squared norm."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if input1.ndim not in (1, 2) or input1.shape != input2.shape:
        raise RuntimeError(f"cosine_embedding_loss: expected 1D or 2D inputs of the same shape, got "
                           f"{tuple(input1.shape)} and {tuple(input2.shape)}")
    d = input1.ndim - 1
    eps = 1e-12
    prod = (input1 * input2).sum(d)
    m1 = (input1 * input1).sum(d) + eps
    m2 = (input2 * input2).sum(d) + eps
    cos = prod / (m1 * m2).sqrt()
    pos = 1.0 - cos
    neg = (cos - margin).clamp(min=0.0)
    loss = _core.where(target == 1, pos, 0.0) + _core.where(target == -1, neg, 0.0)
    return _reduce(loss, reduction)


@_listed("fp32")
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average: Optional[bool] = None,
                        reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the :func:`pairwise_distance`; ``swap``
    uses ``min(d(a, n), d(p, n))``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if not (anchor.ndim == positive.ndim == negative.ndim):
        raise RuntimeError(f"The anchor, positive, and negative tensors are expected to have the same number of "
                           f"dimensions, but got: anchor {anchor.ndim}D, positive {positive.ndim}D, and negative "
                           f"{negative.ndim}D inputs")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = d_neg.minimum(pairwise_distance(positive, negative, p, eps))
    return _reduce((margin + d_pos - d_neg).clamp(min=0.0), reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *,
                                      distance_function: Optional[Callable[[Tensor, Tensor], Tensor]] = None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    """:func:`triplet_margin_loss` with any ``distance_function`` (default :func:`pairwise_distance`)."""
    _check_reduction(reduction)
    if margin <= 0:
        raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater than 0, got {margin} instead")
    dist = distance_function if distance_function is not None else pairwise_distance
    d_pos = dist(anchor, positive)
    d_neg = dist(anchor, negative)
    if swap:
        d_neg = d_neg.minimum(dist(positive, negative))
    return _reduce((margin + d_pos - d_neg).clamp(min=0.0), reduction)


@_listed("fp32")
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0,
                      weight: Optional[Tensor] = None, size_average: Optional[bool] = None,
                      reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``sum_{i != y} w[y] * max(0, margin - x[y] + x[i])^p / C`` per sample. The weight
    multiplies after the power, as PyTorch's kernel does (its docs put it inside the power; the two
    agree for ``p = 1``)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    x = input if input.ndim == 2 else input.reshape(1, -1)
    if input.ndim > 2:
        raise RuntimeError(f"multi_margin_loss: expected 1D or 2D input, got {list(input.shape)}")
    t = target.reshape(-1)
    n, c = x.shape
    if t.shape[0] != n:
        raise RuntimeError(f"inconsistent target size, expected {n} but got {list(target.shape)}")
    xy = x.gather(1, t.unsqueeze(1))
    z = (margin - xy + x).clamp(min=0.0)
    if p == 2:
        z = z * z
    z = _core.where(_core.arange(c, device=x.device).unsqueeze(0) == t.unsqueeze(1), 0.0, z)
    if weight is not None:
        z = z * weight[t].unsqueeze(1)
    loss = z.sum(1) / c
    if input.ndim < 2:
        loss = loss.reshape(target.shape) if target.ndim == 1 else loss.reshape(())
    return _reduce(loss, reduction)


@_listed("fp32")
def soft_margin_loss(input: Tensor, target: Tensor, size_average: Optional[bool] = None,
                     reduce: Optional[bool] = None, reduction: str = "mean") -> Tensor:
    """``log(1 + exp(-target * input))``, averaged over all elements for ``mean``."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    return _reduce(_core.softplus(-target * input), reduction)


def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Optional[Tensor] = None,
                                size_average: Optional[bool] = None, reduce: Optional[bool] = None,
                                reduction: str = "mean") -> Tensor:
    """``-mean_c(w_c * (y_c * log sigmoid(x_c) + (1 - y_c) * log sigmoid(-x_c)))`` per sample."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction)
    loss = -(target * logsigmoid(input) + (1.0 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    c = input.shape[-1]
    return _reduce(loss.sum(input.ndim - 1) / c, reduction)
