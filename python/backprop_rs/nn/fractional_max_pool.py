"""Fractional max pooling (Graham, 2014): ``F.fractional_max_pool2d/3d`` and their modules.

Each plane pools fixed ``kernel_size`` windows whose starts follow a pseudo-random sequence, so
the output size is any fraction of the input's. The sequence is PyTorch's, computed exactly as
its kernel does in the input's floating dtype: for ``i < out - 1`` the start is
``int((i + u) a) - int(u a)`` with ``a = (in - k) / (out - 1)`` and ``u`` the plane's sample in
``[0, 1)``, and the last window ends at the input's edge. The samples are ``_random_samples`` of
shape ``(N, C, dims)`` (PyTorch's order: ``(w, h)`` in 2-d, ``(t, h, w)`` in 3-d), drawn from
backprop_rs's generator when not given, so given the same samples the output and indices equal
PyTorch's.

How: the windows' flat indices are built on the host, the winner of each window chosen there
by PyTorch's rule (the first maximum in row-major order, and a NaN wins, the last one), and the
output is one ``gather`` of those positions. The gradient is therefore the gather's (an
index-add of the output gradient at the winners, overlapping windows accumulating), which is
PyTorch's backward, and it differentiates again. A GPU input is read back once to choose the
winners; the gather runs on the device.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .. import _core
from .._core import Tensor

_DIM_NAMES = {2: ("height", "width"), 3: ("time", "height", "width")}
# which column of a plane's samples drives each spatial dimension, as PyTorch's kernels index them
_SAMPLE_COLUMN = {2: (1, 0), 3: (0, 1, 2)}


def _tuple(value: Any, n: int, what: str, name: str) -> tuple:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value,) * n
    out = tuple(value)
    if len(out) != n:
        raise ValueError(f"{name} requires {what} to either be a single Int or tuple of Ints.")
    return out


def _starts(samples: np.ndarray, size: int, out: int, pool: int, dtype: Any) -> np.ndarray:
    """PyTorch's ``generate_intervals`` over every plane at once: ``(N, C, out)`` window starts."""
    seq = np.empty(samples.shape + (out,), dtype=np.int64)
    if out > 1:
        alpha = dtype(size - pool) / dtype(out - 1)
        i = np.arange(out - 1, dtype=dtype)
        u = samples.astype(dtype)[..., None]
        # the products in the input's dtype, truncated toward zero as static_cast<int> does
        seq[..., :-1] = np.trunc((i + u) * alpha).astype(np.int64) - np.trunc(u * alpha).astype(np.int64)
    seq[..., -1] = size - pool
    return seq


def _winners(values: np.ndarray) -> np.ndarray:
    """The position in each window (last axis) that PyTorch's scan keeps: ``val > max or isnan(val)``."""
    nan = np.isnan(values)
    k = values.shape[-1]
    last_nan = k - 1 - np.argmax(nan[..., ::-1], axis=-1)
    first_max = np.argmax(np.where(nan, -np.inf, values), axis=-1)
    return np.where(nan.any(-1), last_nan, first_max)


def fractional_max_pool(input: Tensor, kernel_size: Any, output_size: Any, output_ratio: Any, return_indices: bool,
                        _random_samples: Optional[Tensor], nd: int) -> Any:
    name = f"fractional_max_pool{nd}d"
    if not isinstance(input, Tensor):
        raise TypeError(f"{name}(): argument 'input' must be Tensor, not {type(input).__name__}")
    if input.ndim not in (nd + 1, nd + 2) or input.numel() == 0:
        raise RuntimeError(f"{name}(): non-empty {nd + 1}D or {nd + 2}D (batch mode) tensor expected for input, "
                           f"but got {list(input.shape)}")
    if not input.is_floating_point():
        raise RuntimeError(f"\"{name}_out_frame\" not implemented for '{str(input.dtype).replace('backprop_rs.', '')}'")
    batched = input.ndim == nd + 2
    x = input if batched else input.unsqueeze(0)
    n, c = int(x.shape[0]), int(x.shape[1])
    sizes = [int(s) for s in x.shape[2:]]
    pool = [int(k) for k in _tuple(kernel_size, nd, "kernel_size", name)]
    if output_size is None and output_ratio is None:
        raise ValueError(f"{name} requires specifying either an output_size or an output_ratio")
    if output_size is None:
        ratio = _tuple(output_ratio, nd, "output_ratio", name)
        out = [int(s * r) for s, r in zip(sizes, ratio)]
    else:
        out = [int(o) for o in _tuple(output_size, nd, "output_size", name)]
    for dim, s, o, k in zip(_DIM_NAMES[nd], sizes, out, pool):
        if o < 1 or k < 1:
            raise RuntimeError(f"{name}(): output {dim} {o} and pool {dim} {k} must be positive")
        if o + k - 1 > s:
            raise RuntimeError(f"{name}(): pool {dim} {k} too large relative to input {dim} {s}")
    if _random_samples is None:
        samples = _core.rand(n, c, nd, dtype=input.dtype)
    else:
        samples = _random_samples
        if tuple(samples.shape) != (n, c, nd):
            raise RuntimeError(f"{name}(): expected _random_samples of shape {[n, c, nd]}, but got "
                               f"{list(samples.shape)}")
    kind = np.float64 if input.dtype == _core.float64 else np.float32
    u = samples.detach().cpu().numpy().astype(kind)
    starts = [_starts(u[..., col], s, o, k, kind) for col, s, o, k in zip(_SAMPLE_COLUMN[nd], sizes, out, pool)]
    # flat input index of every window element, (N, C, *out, *kernel), row-major over the window
    strides = np.cumprod([1] + sizes[::-1])[:-1][::-1]
    flat = np.zeros((n, c) + tuple(out) + tuple(pool), dtype=np.int64)
    for d in range(nd):
        pos = starts[d][..., :, None] + np.arange(pool[d])  # (N, C, out_d, k_d)
        shape = [n, c] + [1] * (2 * nd)
        shape[2 + d], shape[2 + nd + d] = out[d], pool[d]
        flat = flat + (pos * strides[d]).reshape(shape)
    window = int(np.prod(pool))
    flat = flat.reshape(n, c, -1, window)
    plane = x.detach().cpu().numpy().reshape(n, c, -1)
    values = np.take_along_axis(plane, flat.reshape(n, c, -1), axis=2).reshape(flat.shape)
    chosen = np.take_along_axis(flat, _winners(values)[..., None], axis=-1)[..., 0]  # (N, C, prod(out))
    index = _core.tensor(chosen, dtype=_core.int64).to(input.device)
    output = x.reshape(n, c, -1).gather(2, index).reshape(n, c, *out)
    index = index.reshape(n, c, *out)
    if not batched:
        output, index = output.squeeze(0), index.squeeze(0)
    return (output, index) if return_indices else output


def fractional_max_pool2d(input: Tensor, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, _random_samples: Optional[Tensor] = None) -> Any:
    """``F.fractional_max_pool2d``: max over ``kernel_size`` windows at pseudo-random starts, to
    ``output_size`` (or ``output_ratio`` times the input's size); with ``return_indices`` also
    the flat ``h * W + w`` index of each maximum.

    >>> import backprop_rs as bp
    >>> x = bp.arange(25.0).reshape(1, 1, 5, 5)
    >>> bp.nn.functional.fractional_max_pool2d(x, 2, output_size=3,
    ...     _random_samples=bp.tensor([[[0.5, 0.5]]])).tolist()
    [[[[6.0, 8.0, 9.0], [16.0, 18.0, 19.0], [21.0, 23.0, 24.0]]]]
    """
    return fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 2)


def fractional_max_pool3d(input: Tensor, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                          return_indices: bool = False, _random_samples: Optional[Tensor] = None) -> Any:
    """``F.fractional_max_pool3d``: :func:`fractional_max_pool2d` over ``(T, H, W)``; indices are
    ``(t * H + h) * W + w``."""
    return fractional_max_pool(input, kernel_size, output_size, output_ratio, return_indices, _random_samples, 3)


def _check_module_args(cls: str, nd: int, output_size: Any, output_ratio: Any) -> tuple:
    if output_size is None and output_ratio is None:
        raise ValueError(f"{cls} requires specifying either an output size, or a pooling ratio")
    if output_size is not None and output_ratio is not None:
        raise ValueError("only one of output_size and output_ratio may be specified")
    ratio = None
    if output_ratio is not None:
        ratio = _tuple(output_ratio, nd, "output_ratio", cls)
        if not all(0 < r < 1 for r in ratio):
            raise ValueError(f"output_ratio must be between 0 and 1 (got {output_ratio})")
    size = None if output_size is None else _tuple(output_size, nd, "output_size", cls)
    return size, ratio


def _module(nd: int) -> type:
    from .module import Module

    functional = fractional_max_pool2d if nd == 2 else fractional_max_pool3d

    class FractionalMaxPool(Module):
        def __init__(self, kernel_size: Any, output_size: Any = None, output_ratio: Any = None,
                     return_indices: bool = False, _random_samples: Optional[Tensor] = None) -> None:
            super().__init__()
            self.kernel_size = _tuple(kernel_size, nd, "kernel_size", type(self).__name__)
            self.return_indices = return_indices
            self.register_buffer("_random_samples", _random_samples)
            self.output_size, self.output_ratio = _check_module_args(type(self).__name__, nd, output_size,
                                                                     output_ratio)

        def forward(self, input: Tensor) -> Any:
            return functional(input, self.kernel_size, self.output_size, self.output_ratio, self.return_indices,
                              _random_samples=self._random_samples)

    name = f"FractionalMaxPool{nd}d"
    FractionalMaxPool.__name__ = FractionalMaxPool.__qualname__ = name
    FractionalMaxPool.__doc__ = (f"Fractional max pooling over ``(N, C, {'T, ' if nd == 3 else ''}H, W)`` "
                                 f"(``F.fractional_max_pool{nd}d``); ``_random_samples`` is a buffer.")
    return FractionalMaxPool


FractionalMaxPool2d = _module(2)
FractionalMaxPool3d = _module(3)

__all__: Sequence[str] = ["fractional_max_pool2d", "fractional_max_pool3d", "FractionalMaxPool2d",
                          "FractionalMaxPool3d"]
