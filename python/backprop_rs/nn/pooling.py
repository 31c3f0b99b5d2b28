"""Pooling layers (max, average, adaptive; 1-d and 2-d) over the :mod:`functional` ops."""

from __future__ import annotations

from typing import Optional, Tuple, Union

from .. import _core
from .._core import Tensor
from . import functional as F
from .module import Module

_Pair = Union[int, Tuple[int, int]]


class _Pool(Module):
    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(_Pool):
    """Max over sliding windows of ``(N, C, L)`` / ``(C, L)``."""

    def __init__(self, kernel_size: int, stride: Optional[int] = None, padding: int = 0, dilation: int = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, x: Tensor):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class MaxPool2d(_Pool):
    """Max over sliding windows of ``(N, C, H, W)``."""

    def __init__(self, kernel_size: _Pair, stride: Optional[_Pair] = None, padding: _Pair = 0, dilation: _Pair = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, x: Tensor):
        return _core.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                                self.return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool1d(_Pool):
    """Mean over sliding windows of ``(N, C, L)`` / ``(C, L)``."""

    def __init__(self, kernel_size: int, stride: Optional[int] = None, padding: int = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)


class AvgPool2d(_Pool):
    """Mean over sliding windows of ``(N, C, H, W)``."""

    def __init__(self, kernel_size: _Pair, stride: Optional[_Pair] = None, padding: _Pair = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return _core.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                                self.divisor_override)


class MaxPool3d(_Pool):
    """Max over sliding windows of ``(N, C, D, H, W)`` (``F.max_pool3d``)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation, self.return_indices, self.ceil_mode = padding, dilation, return_indices, ceil_mode

    def forward(self, x: Tensor):
        return F.max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool3d(_Pool):
    """Mean over sliding windows of ``(N, C, D, H, W)`` (``F.avg_pool3d``)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: Optional[int] = None) -> None:
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.ceil_mode, self.count_include_pad = padding, ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return F.avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)


class _Adaptive(Module):
    def __init__(self, output_size, return_indices: bool = False) -> None:
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_Adaptive):
    """Average pooling to a fixed length (PyTorch's window rule)."""

    def __init__(self, output_size: int) -> None:
        super().__init__(output_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(x, self.output_size)


class AdaptiveAvgPool2d(_Adaptive):
    """Average pooling to a fixed ``(H, W)``."""

    def __init__(self, output_size: _Pair) -> None:
        super().__init__(output_size)

    def forward(self, x: Tensor) -> Tensor:
        return _core.adaptive_avg_pool2d(x, self.output_size)


class AdaptiveMaxPool1d(_Adaptive):
    """Max pooling to a fixed length."""

    def forward(self, x: Tensor):
        return F.adaptive_max_pool1d(x, self.output_size, self.return_indices)


class AdaptiveMaxPool2d(_Adaptive):
    """Max pooling to a fixed ``(H, W)`` (``None`` keeps that input size)."""

    def forward(self, x: Tensor):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)


class AdaptiveAvgPool3d(_Adaptive):
    """Average pooling of ``(N, C, D, H, W)`` to ``output_size`` (``F.adaptive_avg_pool3d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool3d(x, self.output_size)


class LPPool1d(Module):
    """Power-average pooling ``(sum x^p)^(1/p)`` over length windows (``F.lp_pool1d``)."""

    def __init__(self, norm_type: float, kernel_size: int, stride: Optional[int] = None, ceil_mode: bool = False) -> None:
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return F.lp_pool1d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(LPPool1d):
    """Power-average pooling over 2-d windows (``F.lp_pool2d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class MaxUnpool1d(Module):
    """The inverse of ``MaxPool1d(return_indices=True)`` (``F.max_unpool1d``)."""

    def __init__(self, kernel_size, stride=None, padding=0) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, padding

    def forward(self, x: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return F.max_unpool1d(x, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool2d(MaxUnpool1d):
    """The inverse of ``MaxPool2d(return_indices=True)`` (``F.max_unpool2d``)."""

    def forward(self, x: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding, output_size)


class MaxUnpool3d(MaxUnpool1d):
    """The inverse of ``MaxPool3d(return_indices=True)`` (``F.max_unpool3d``)."""

    def forward(self, x: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return F.max_unpool3d(x, indices, self.kernel_size, self.stride, self.padding, output_size)


class AdaptiveMaxPool3d(_Adaptive):
    """Max pooling of ``(N, C, D, H, W)`` to ``output_size`` (``F.adaptive_max_pool3d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.adaptive_max_pool3d(x, self.output_size, self.return_indices)
