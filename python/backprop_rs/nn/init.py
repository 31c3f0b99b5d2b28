"""Weight initialisation (PyTorch's names and formulas; the filling happens in Rust)."""

from __future__ import annotations

import math

from .. import _core
from .._core import Tensor

calculate_gain = _core.calculate_gain


def _fans(t: Tensor):
    return _core._fans(t)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    _core._init(tensor, "uniform", a, b)
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    _core._init(tensor, "normal", mean, std)
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    _core._init(tensor, "constant", val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    _core._init(tensor, "kaiming_uniform", a, 0.0, mode, nonlinearity)
    return tensor


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    _core._init(tensor, "kaiming_normal", a, 0.0, mode, nonlinearity)
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    _core._init(tensor, "xavier_uniform", gain)
    return tensor


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    _core._init(tensor, "xavier_normal", gain)
    return tensor


__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
]
_ = math
