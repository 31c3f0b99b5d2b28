"""Stateless functions of tensors, with ``torch.nn.functional``'s names and defaults."""

from __future__ import annotations

from typing import Optional

from .. import _core
from .._core import Tensor

__all__ = [
    "relu",
    "leaky_relu",
    "gelu",
    "sigmoid",
    "tanh",
    "softplus",
    "softmax",
    "log_softmax",
    "dropout",
    "linear",
    "layer_norm",
    "batch_norm",
    "embedding",
    "conv2d",
    "conv_transpose2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "pad",
    "unfold",
    "fold",
    "dropout2d",
    "upsample_nearest",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "l1_loss",
    "binary_cross_entropy_with_logits",
]

cross_entropy = _core.cross_entropy
nll_loss = _core.nll_loss
mse_loss = _core.mse_loss
l1_loss = _core.l1_loss
binary_cross_entropy_with_logits = _core.binary_cross_entropy_with_logits
dropout = _core.dropout
gelu = _core.gelu
leaky_relu = _core.leaky_relu
softplus = _core.softplus
embedding = _core.embedding
conv2d = _core.conv2d
conv_transpose2d = _core.conv_transpose2d
max_pool2d = _core.max_pool2d
avg_pool2d = _core.avg_pool2d
adaptive_avg_pool2d = _core.adaptive_avg_pool2d
unfold = _core.unfold
fold = _core.fold
dropout2d = _core.dropout2d


def pad(input: Tensor, pad, mode: str = "constant", value: Optional[float] = None) -> Tensor:
    """Pads the trailing dims; ``pad`` is ``(left, right, top, bottom, ...)``, last dim first."""
    return _core.pad(input, list(pad), mode, value)


def upsample_nearest(input: Tensor, scale_factor: int) -> Tensor:
    """Nearest-neighbour upsampling of ``[N, C, H, W]`` by an integer factor: each pixel becomes
    an ``s x s`` block (a broadcast view, then one copy)."""
    n, c, h, w = input.shape
    s = int(scale_factor)
    return input.reshape(n, c, h, 1, w, 1).expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)


def layer_norm(input: Tensor, normalized_shape, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None, eps: float = 1e-5) -> Tensor:
    shape = [normalized_shape] if isinstance(normalized_shape, int) else list(normalized_shape)
    return _core.layer_norm(input, shape, weight, bias, eps)


def batch_norm(input: Tensor, running_mean: Optional[Tensor], running_var: Optional[Tensor], weight: Optional[Tensor] = None,
               bias: Optional[Tensor] = None, training: bool = False, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    return _core.batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """``max(input, 0)``; with ``inplace=True`` it overwrites ``input`` and returns it, as in
    PyTorch (code that relies on that would otherwise keep the unactivated values)."""
    return input.relu_() if inplace else input.relu()


def sigmoid(input: Tensor) -> Tensor:
    return input.sigmoid()


def tanh(input: Tensor) -> Tensor:
    return input.tanh()


def softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    return input.softmax(dim, dtype)


def log_softmax(input: Tensor, dim: int, dtype=None) -> Tensor:
    return input.log_softmax(dim, dtype)


def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """``input @ weight.T + bias`` (weight is ``[out_features, in_features]``, as in PyTorch)."""
    return _core.linear(input, weight, bias)
