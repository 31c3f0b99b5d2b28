"""Counting and set operations with PyTorch's signatures: ``unique``, ``unique_consecutive``,
``mode``, ``bincount``, ``histc``, ``count_nonzero``.

``unique``, ``unique_consecutive`` and ``histc`` have no gradient in PyTorch either: they are
computed on the host with NumPy (a GPU tensor is read back and the results uploaded, as the
core's ``sort`` does) and return tensors outside any graph. ``mode`` finds its indices the same
way and then takes its values with ``gather``, so, like ``median``, the gradient flows to the
picked positions. ``bincount`` is an ``index_add`` (its weights get a gradient) and
``count_nonzero`` a sum of ``!= 0``.
"""

from __future__ import annotations

import builtins
import numbers
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["unique", "unique_consecutive", "mode", "bincount", "histc", "count_nonzero"]


def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _upload(a: np.ndarray, device: Any) -> Tensor:
    out = _core.from_numpy(a if a.flags.c_contiguous else a.copy())
    return out if str(device) == "cpu" else out.to(device)


def _norm_dim(dim: int, nd: int, op: str) -> int:
    n = builtins.max(nd, 1)
    if not -n <= dim < n:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], but got {dim})")
    return dim % n


def _pack(out: Tensor, inverse: Tensor, counts: Tensor, return_inverse: bool,
          return_counts: bool) -> Union[Tensor, Tuple[Tensor, ...]]:
    # PyTorch's shapes of the answer: the tensor alone, or a plain tuple with what was asked
    if return_inverse and return_counts:
        return out, inverse, counts
    if return_inverse:
        return out, inverse
    if return_counts:
        return out, counts
    return out


def unique(input: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
           dim: Optional[int] = None) -> Union[Tensor, Tuple[Tensor, ...]]:
    """The distinct elements of ``input`` (of the flattened tensor, or the distinct slices along
    ``dim``), in ascending order (PyTorch sorts whatever ``sorted`` says; slices compare
    lexicographically). ``return_inverse`` adds, as int64, where each element (each slice) of
    ``input`` went in the output (``input``'s shape, or ``(input.size(dim),)``);
    ``return_counts`` adds how often each one occurs. NaNs are all distinct, as in PyTorch. No
    gradient: the output does not require grad."""
    if not isinstance(input, Tensor):
        raise TypeError(f"unique(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    a = _host(input)
    dev = input.device
    if dim is None:
        flat = a.reshape(-1)
        vals, inv, cnt = np.unique(flat, return_inverse=True, return_counts=True, equal_nan=False)
        inv = inv.reshape(a.shape)
    else:
        if a.ndim == 0:
            raise IndexError("unique(): a 0-d tensor has no dim to take the unique slices of")
        d = _norm_dim(dim, a.ndim, "unique")
        if a.shape[d] == 0:
            vals, inv, cnt = a, np.zeros(0, np.int64), np.zeros(0, np.int64)
        else:
            vals, inv, cnt = np.unique(a, return_inverse=True, return_counts=True, axis=d, equal_nan=False)
            inv = inv.reshape(-1)
    return _pack(_upload(vals.astype(a.dtype, copy=False), dev), _upload(inv.astype(np.int64), dev),
                 _upload(cnt.astype(np.int64), dev), return_inverse, return_counts)


def unique_consecutive(input: Tensor, return_inverse: bool = False, return_counts: bool = False,
                       dim: Optional[int] = None) -> Union[Tensor, Tuple[Tensor, ...]]:
    """``input`` with every run of equal consecutive elements (slices along ``dim``) kept once,
    in the order met; ``return_inverse`` / ``return_counts`` as in :func:`unique` (the inverse
    has ``input``'s shape, or ``(input.size(dim),)``). No gradient."""
    if not isinstance(input, Tensor):
        raise TypeError(f"unique_consecutive(): argument 'input' must be Tensor, not "
                        f"{builtins.type(input).__name__}")
    a = _host(input)
    dev = input.device
    if dim is None:
        rows = a.reshape(-1, 1)
        d = 0
    else:
        if a.ndim == 0:
            raise IndexError("unique_consecutive(): a 0-d tensor has no dim to take the runs of")
        d = _norm_dim(dim, a.ndim, "unique_consecutive")
        rows = np.moveaxis(a, d, 0).reshape(a.shape[d], -1)
    n = rows.shape[0]
    starts = np.ones(n, bool)
    if n > 1:
        starts[1:] = (rows[1:] != rows[:-1]).any(axis=1) if rows.shape[1] else False
    first = np.flatnonzero(starts)
    inv = np.cumsum(starts) - 1
    cnt = np.diff(np.append(first, n))
    if dim is None:
        vals = a.reshape(-1)[first]
        inv = inv.reshape(a.shape)
    else:
        vals = np.take(a, first, axis=d)
    return _pack(_upload(vals, dev), _upload(inv.astype(np.int64), dev), _upload(cnt.astype(np.int64), dev),
                 return_inverse, return_counts)


_VALUES_INDICES: Any = None


def _values_indices(values: Tensor, indices: Tensor) -> Any:
    """The ``(values, indices)`` namedtuple the binding's ``sort`` / ``median`` / ``max`` return
    (PyTorch's ``torch.return_types``), so every such result is of the one class."""
    global _VALUES_INDICES
    if _VALUES_INDICES is None:
        _VALUES_INDICES = builtins.type(_core.zeros(1).sort())
    return _VALUES_INDICES(values, indices)


def mode(input: Tensor, dim: int = -1, keepdim: bool = False) -> Any:
    """The most frequent value of each slice along ``dim`` and where it is, as the
    ``(values, indices)`` namedtuple. Among equally frequent values the smallest is taken; its
    index is that of its last occurrence (what PyTorch's CPU kernel gives). ``values`` is a
    ``gather`` of ``input``, so the gradient flows to the picked positions (as for ``median``)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"mode(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    if input.ndim == 0:
        _norm_dim(dim, 0, "mode")
        return _values_indices(input.clone(), _core.zeros((), dtype=_core.int64, device=input.device))
    d = _norm_dim(dim, input.ndim, "mode")
    n = input.shape[d]
    if n == 0:
        raise IndexError(f"mode(): Expected reduction dim {d} to have non-zero size.")
    a = np.moveaxis(_host(input), d, -1)
    rows = a.reshape(-1, n)
    order = np.argsort(rows, axis=1, kind="stable")
    s = np.take_along_axis(rows, order, axis=1)
    starts = np.ones(rows.shape, bool)
    starts[:, 1:] = s[:, 1:] != s[:, :-1]
    pos = np.arange(n)
    run_start = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    length_so_far = pos - run_start + 1
    # the first position reaching the longest length ends the longest run of the smallest value;
    # the stable sort put that value's original positions in order, so it is the last occurrence
    best = np.argmax(length_so_far, axis=1)
    idx = order[np.arange(rows.shape[0]), best].reshape(a.shape[:-1])
    index = _upload(idx.astype(np.int64), input.device).unsqueeze(d)
    values = input.gather(d, index)
    if not keepdim:
        values, index = values.squeeze(d), index.squeeze(d)
    return _values_indices(values, index)


def bincount(input: Tensor, weights: Optional[Tensor] = None, minlength: int = 0) -> Tensor:
    """How often each value ``0..max(input)`` occurs in the 1-D non-negative int64 ``input``
    (at least ``minlength`` bins); with ``weights`` the sum of the weights at each value instead.
    The dtype is int64 without weights, the weights' for float32 / float64 weights and float64
    otherwise (PyTorch's rule). An ``index_add``, so the weights get a gradient."""
    if not isinstance(input, Tensor) or input.ndim != 1 or input.dtype != _core.int64:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    if minlength < 0:
        raise RuntimeError("minlength should be >= 0")
    if input.numel() and int(input.min().item()) < 0:
        raise RuntimeError("bincount only supports 1-d non-negative integral inputs.")
    size = builtins.max(int(input.max().item()) + 1 if input.numel() else 0, minlength)
    if weights is None:
        vals: Tensor = _core.ones(input.shape[0], dtype=_core.int64, device=input.device)
        dtype = _core.int64
    else:
        if not isinstance(weights, Tensor) or weights.ndim != 1 or weights.shape[0] != input.shape[0]:
            raise RuntimeError("weights should be 1-d and have the same length as input")
        dtype = weights.dtype if weights.dtype in (_core.float32, _core.float64) else _core.float64
        vals = weights.to(dtype)
    return _core.zeros(size, dtype=dtype, device=input.device).index_add(0, input, vals)


def histc(input: Tensor, bins: int = 100, min: numbers.Real = 0, max: numbers.Real = 0) -> Tensor:
    """A histogram of ``input`` in ``bins`` equal bins over ``[min, max]`` (the data's range
    when ``min == max``, widened by 1 each side if the data is constant). Elements outside the
    range (and NaNs) are left out; an element equal to ``max`` counts in the last bin. Float
    tensors only, the result in the input's dtype; no gradient (PyTorch has none)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"histc(): argument 'input' must be Tensor, not {builtins.type(input).__name__}")
    if input.dtype not in (_core.float32, _core.float64):
        raise RuntimeError(f'"histogram_cpu" not implemented for {input.dtype} (histc takes float tensors)')
    if bins <= 0:
        raise RuntimeError("torch.histc: bins must be > 0")
    a = _host(input).reshape(-1)
    ft = a.dtype.type
    lo, hi = ft(min), ft(max)
    if lo > hi:
        raise RuntimeError("torch.histc: max must be larger than min")
    if lo == hi and a.size:
        lo, hi = a.min(), a.max()
    if lo == hi:
        lo, hi = lo - ft(1), hi + ft(1)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise RuntimeError(f"torch.histc: range of [{lo}, {hi}] is not finite")
    keep = (a >= lo) & (a <= hi)
    x = a[keep]
    # the bin of x: floor((x - lo) * bins / (hi - lo)) in the input's dtype, max in the last bin
    pos = ((x - lo) * ft(bins) / (hi - lo)).astype(np.int64)
    pos = np.minimum(pos, bins - 1)
    counts = np.bincount(pos, minlength=bins).astype(a.dtype)
    return _upload(counts, input.device)


def count_nonzero(input: Tensor, dim: Optional[Union[int, Sequence[int]]] = None) -> Tensor:
    """The number of nonzero elements (over ``dim``, an int or a tuple of ints, or all), int64."""
    nz = input != 0
    if dim is None:
        return nz.sum()
    dims = (dim,) if isinstance(dim, numbers.Integral) else tuple(dim)
    if len(set(d % builtins.max(input.ndim, 1) for d in dims)) != len(dims):
        raise RuntimeError(f"count_nonzero(): dim {tuple(dims)} appears multiple times in the list of dims")
    return nz.sum(dims) if dims else nz.sum()


def tensor_methods() -> dict:
    """The Tensor methods of this module (attached by ``_tensor_methods.install``)."""

    def unique_method(self: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,
                      dim: Optional[int] = None) -> Any:
        """:func:`backprop_rs.unique` of ``self``."""
        return unique(self, sorted, return_inverse, return_counts, dim)

    def unique_consecutive_method(self: Tensor, return_inverse: bool = False, return_counts: bool = False,
                                  dim: Optional[int] = None) -> Any:
        """:func:`backprop_rs.unique_consecutive` of ``self``."""
        return unique_consecutive(self, return_inverse, return_counts, dim)

    def mode_method(self: Tensor, dim: int = -1, keepdim: bool = False) -> Any:
        """:func:`backprop_rs.mode` of ``self``."""
        return mode(self, dim, keepdim)

    def bincount_method(self: Tensor, weights: Optional[Tensor] = None, minlength: int = 0) -> Tensor:
        """:func:`backprop_rs.bincount` of ``self``."""
        return bincount(self, weights, minlength)

    def histc_method(self: Tensor, bins: int = 100, min: numbers.Real = 0, max: numbers.Real = 0) -> Tensor:
        """:func:`backprop_rs.histc` of ``self``."""
        return histc(self, bins, min, max)

    def count_nonzero_method(self: Tensor, dim: Optional[Union[int, Sequence[int]]] = None) -> Tensor:
        """:func:`backprop_rs.count_nonzero` of ``self``."""
        return count_nonzero(self, dim)

    return {"unique": unique_method, "unique_consecutive": unique_consecutive_method, "mode": mode_method,
            "bincount": bincount_method, "histc": histc_method, "count_nonzero": count_nonzero_method}
