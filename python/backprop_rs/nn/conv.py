"""Convolution layers: ``Conv1d``/``Conv2d`` and their transposes, with PyTorch's parameter names,
shapes and default init (so PyTorch state dicts load). The 1-d layers run the 2-d core ops on a
unit height; ``padding_mode`` other than ``'zeros'`` pads explicitly first, as PyTorch does."""

from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple, Union

from .. import _core
from .._core import Tensor
from . import functional as F
from . import init

# Dropout2d, the 2-d pools and Upsample lived in this file before activation.py, pooling.py and
# upsampling.py took them; they stay importable from here
from .activation import Dropout2d
from .module import Module
from .parameter import Parameter
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .upsampling import Upsample

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Dropout2d", "MaxPool2d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Upsample"]

_Pair = Union[int, Tuple[int, int]]


def _pair(v: _Pair) -> Tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _tuple(v, n: int) -> Tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(x) for x in v)
    if len(v) != n:
        raise ValueError(f"expected an int or a {n}-tuple, got {v}")
    return v


_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """Shared construction of ConvNd / ConvTransposeNd (n = 1 or 2): checks, parameters, init."""

    _n = 2
    _transposed = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride, padding, dilation, groups: int,
                 bias: bool, padding_mode: str, output_padding=0, device=None, dtype=None) -> None:
        super().__init__()
        n = self._n
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {list(_PADDING_MODES)}, but got "
                             f"padding_mode='{padding_mode}'")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.dilation = _tuple(kernel_size, n), _tuple(stride, n), _tuple(dilation, n)
        self.output_padding = _tuple(output_padding, n)
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of ['valid', 'same']")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _tuple(padding, n)
        if self._transposed:
            if padding_mode != "zeros":
                raise ValueError(f'Only "zeros" padding mode is supported for {type(self).__name__}')
            shape = (in_channels, out_channels // groups, *self.kernel_size)
        else:
            shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(_core.empty(*shape, device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(_core.empty(out_channels, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: Kaiming-uniform with ``a = sqrt(5)`` (U(-1/sqrt(fan_in), ...)) for
        the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = _core._fans(self.weight)[0]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def _mode_pad(self, x: Tensor) -> Tuple[Tensor, object]:
        """For a non-zeros ``padding_mode``: ``x`` padded by that mode and the conv's padding 0."""
        if self.padding_mode == "zeros":
            return x, self.padding
        n = self._n
        if self.padding == "valid":
            return x, 0
        if self.padding == "same":
            pads: List[int] = []
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
        else:
            pads = [p for p in reversed(self.padding) for _ in range(2)]
        return F.pad(x, pads, self.padding_mode), (0,) * n

    def extra_repr(self) -> str:
        n = self._n
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding!r}" if isinstance(self.padding, str) else f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s

    def _output_padding(self, x: Tensor, output_size: Optional[Sequence[int]]) -> Tuple[int, ...]:
        """PyTorch's ``_output_padding``: the output_padding that makes the output ``output_size``."""
        n = self._n
        if output_size is None:
            return self.output_padding
        out = list(output_size)[-n:]
        if len(out) != n:
            raise ValueError(f"ConvTranspose{n}D: for {x.ndim}D input, output_size must have {n} or {n + 2} "
                             f"elements (got {len(list(output_size))})")
        res = []
        for i in range(n):
            size_in = x.shape[x.ndim - n + i]
            lo = (size_in - 1) * self.stride[i] - 2 * self.padding[i] + self.dilation[i] * (self.kernel_size[i] - 1) + 1
            hi = lo + self.stride[i] - 1
            if not lo <= out[i] <= hi:
                raise ValueError(f"requested an output size of {out}, but valid sizes range from {lo} to {hi} "
                                 f"(for an input of {list(x.shape[x.ndim - n:])})")
            res.append(out[i] - lo)
        return tuple(res)


class Conv1d(_ConvNd):
    """1-d convolution over ``(N, C_in, L)`` or ``(C_in, L)``: weight ``(out, in/groups, k)``."""

    _n = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int]],
                 stride: Union[int, Tuple[int]] = 1, padding: Union[int, Tuple[int], str] = 0,
                 dilation: Union[int, Tuple[int]] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._mode_pad(x)
        pad = padding if isinstance(padding, str) else padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], pad, self.dilation[0], self.groups)


class Conv2d(_ConvNd):
    """2-d convolution over ``[N, C, H, W]``: weight ``[out, in/groups, kh, kw]``, PyTorch's
    default init (Kaiming-uniform with a = sqrt(5); bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    _n = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Pair, stride: _Pair = 1,
                 padding: Union[_Pair, str] = 0, dilation: _Pair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._mode_pad(x)
        return _core.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    """3-d convolution over ``[N, C, D, H, W]``: weight ``[out, in/groups, kd, kh, kw]``
    (``F.conv3d``: 2-d convolutions per kernel depth tap, summed)."""

    _n = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, 0, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        x, padding = self._mode_pad(x)
        return F.conv3d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-d convolution: weight ``(in, out/groups, k)``; ``forward(x, output_size)``
    picks the output_padding that gives ``output_size``."""

    _n = 1
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Union[int, Tuple[int]],
                 stride: Union[int, Tuple[int]] = 1, padding: Union[int, Tuple[int]] = 0,
                 output_padding: Union[int, Tuple[int]] = 0, groups: int = 1, bias: bool = True,
                 dilation: Union[int, Tuple[int]] = 1, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, x: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        op = self._output_padding(x, output_size)
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride[0], self.padding[0], op[0], self.groups,
                                  self.dilation[0])


class ConvTranspose2d(_ConvNd):
    """Transposed 2-d convolution: weight ``[in, out/groups, kh, kw]``."""

    _n = 2
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Pair, stride: _Pair = 1,
                 padding: _Pair = 0, output_padding: _Pair = 0, groups: int = 1, bias: bool = True,
                 dilation: _Pair = 1, padding_mode: str = "zeros", device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, x: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        op = self._output_padding(x, output_size)
        return _core.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                      self.dilation)


class ConvTranspose3d(_ConvNd):
    """Transposed 3-d convolution: weight ``[in, out/groups, kd, kh, kw]`` (``F.conv_transpose3d``)."""

    _n = 3
    _transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, output_padding, device, dtype)

    def forward(self, x: Tensor, output_size: Optional[Sequence[int]] = None) -> Tensor:
        op = self._output_padding(x, output_size)
        return F.conv_transpose3d(x, self.weight, self.bias, self.stride, self.padding, op, self.groups,
                                  self.dilation)
