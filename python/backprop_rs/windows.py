"""The window functions of ``torch``: ``hann_window``, ``hamming_window``, ``blackman_window``,
``bartlett_window`` and ``kaiser_window``, with PyTorch's ``periodic`` convention (a periodic
window of length ``L`` is the symmetric window of length ``L + 1`` without its last sample, the
form spectral analysis wants) and its special cases (length 0 is empty, length 1 is ``[1]``)."""

from __future__ import annotations

import math
from typing import Any, Callable

from . import _core
from ._core import Tensor

__all__ = ["hann_window", "hamming_window", "blackman_window", "bartlett_window", "kaiser_window"]


def _window(name: str, window_length: int, periodic: bool, dtype: Any, device: Any, requires_grad: bool,
            shape: Callable[[Tensor, int], Tensor]) -> Tensor:
    if int(window_length) != window_length or window_length < 0:
        raise RuntimeError(f"{name} requires non-negative window_length, got window_length={window_length}")
    dt = dtype or _core._get_default_dtype()
    if not (dt == _core.float32 or dt == _core.float64 or dt == _core.float16 or dt == _core.bfloat16):
        raise RuntimeError(f"{name} expects floating point dtypes, got: {dt}")
    n = int(window_length)
    if n == 0:
        w = _core.zeros(0, dtype=_core.float64)
    elif n == 1:
        w = _core.ones(1, dtype=_core.float64)
    else:
        m = n + 1 if periodic else n
        w = shape(_core.arange(m, dtype=_core.float64), m)[:n]
    w = w.to(dt)
    if device is not None:
        w = w.to(device)
    return w.requires_grad_() if requires_grad else w


def hann_window(window_length: int, periodic: bool = True, *, dtype: Any = None, layout: Any = None,
                device: Any = None, requires_grad: bool = False) -> Tensor:
    """``0.5 - 0.5 cos(2 pi n / (N - 1))``."""
    return _window("hann_window", window_length, periodic, dtype, device, requires_grad,
                   lambda k, m: 0.5 - 0.5 * (k * (2 * math.pi / (m - 1))).cos())


def hamming_window(window_length: int, periodic: bool = True, alpha: float = 0.54, beta: float = 0.46, *,
                   dtype: Any = None, layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``alpha - beta cos(2 pi n / (N - 1))``."""
    return _window("hamming_window", window_length, periodic, dtype, device, requires_grad,
                   lambda k, m: alpha - beta * (k * (2 * math.pi / (m - 1))).cos())


def blackman_window(window_length: int, periodic: bool = True, *, dtype: Any = None, layout: Any = None,
                    device: Any = None, requires_grad: bool = False) -> Tensor:
    """``0.42 - 0.5 cos(2 pi n / (N - 1)) + 0.08 cos(4 pi n / (N - 1))``."""
    return _window("blackman_window", window_length, periodic, dtype, device, requires_grad,
                   lambda k, m: 0.42 - 0.5 * (k * (2 * math.pi / (m - 1))).cos()
                   + 0.08 * (k * (4 * math.pi / (m - 1))).cos())


def bartlett_window(window_length: int, periodic: bool = True, *, dtype: Any = None, layout: Any = None,
                    device: Any = None, requires_grad: bool = False) -> Tensor:
    """The triangle ``1 - |2n / (N - 1) - 1|``."""
    return _window("bartlett_window", window_length, periodic, dtype, device, requires_grad,
                   lambda k, m: 1 - (k * (2 / (m - 1)) - 1).abs())


def kaiser_window(window_length: int, periodic: bool = True, beta: float = 12.0, *, dtype: Any = None,
                  layout: Any = None, device: Any = None, requires_grad: bool = False) -> Tensor:
    """``I0(beta sqrt(1 - (2n / (N - 1) - 1)^2)) / I0(beta)``, with the host-computed ``i0``."""
    from .special_kernels import i0

    def shape(k: Tensor, m: int) -> Tensor:
        r = (1 - (k * (2 / (m - 1)) - 1) ** 2).clamp(min=0.0).sqrt()
        return i0(r * beta) / i0(_core.tensor(float(beta), dtype=_core.float64))

    return _window("kaiser_window", window_length, periodic, dtype, device, requires_grad, shape)
