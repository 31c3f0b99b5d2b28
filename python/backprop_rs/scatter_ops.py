"""``scatter`` / ``scatter_`` and ``index_put`` / ``index_put_`` with PyTorch's signatures, as
composites of the engine's advanced-index assignment (``t[key] = v``, which records gradients)
and ``index_add``, so gradients flow to ``self`` (where not overwritten) and to ``src``.

``scatter(dim, index, src)`` writes ``out[..., index[i, j, k], ...] = src[i, j, k]`` with the
index in place of coordinate ``dim``: the key is ``index`` for ``dim`` and an ``arange`` along
every other dim of ``index``, broadcast to its shape. With repeated indices PyTorch leaves which
write wins unspecified; here the last one wins.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

from . import _core
from ._core import Tensor

__all__ = ["scatter", "index_put"]


def _scatter_key(self: Tensor, dim: int, index: Tensor) -> Tuple[Tensor, ...]:
    if not isinstance(index, Tensor) or index.dtype != _core.int64:
        raise RuntimeError("scatter(): Expected dtype int64 for index")
    nd = self.ndim
    if not -max(nd, 1) <= dim < max(nd, 1):
        raise IndexError(f"Dimension out of range (expected to be in range of [{-max(nd, 1)}, {max(nd, 1) - 1}], "
                         f"but got {dim})")
    dim %= max(nd, 1)
    if index.ndim != nd:
        raise RuntimeError("scatter(): Index tensor must have the same number of dimensions as self tensor")
    for d in range(nd):
        if d != dim and index.shape[d] > self.shape[d]:
            raise RuntimeError(f"scatter(): Expected index {tuple(index.shape)} to be smaller than self "
                               f"{tuple(self.shape)} apart from dimension {dim}")
    if index.numel() and (bool((index < 0).any()) or bool((index >= self.shape[dim]).any())):
        raise RuntimeError(f"scatter(): index out of bounds for dimension {dim} with size {self.shape[dim]}")
    key = []
    for d in range(nd):
        if d == dim:
            key.append(index)
        else:
            shape = [1] * nd
            shape[d] = index.shape[d]
            key.append(_core.arange(index.shape[d]).reshape(*shape).expand(*index.shape).to(index.device))
    return tuple(key)


def _src_values(src: Any, index: Tensor, like: Tensor, value: Any) -> Any:
    if src is None and value is None:
        raise TypeError("scatter() missing the src tensor or the value")
    if src is not None and value is not None:
        raise TypeError("scatter(): give src or value, not both")
    if src is None or not isinstance(src, Tensor):
        return src if src is not None else value  # a number broadcasts
    for d in range(index.ndim):
        if index.shape[d] > src.shape[d]:
            raise RuntimeError(f"scatter(): Expected index {tuple(index.shape)} to be smaller than src "
                               f"{tuple(src.shape)} in every dimension")
    return src[tuple(slice(0, n) for n in index.shape)] if tuple(src.shape) != tuple(index.shape) else src


def scatter(self: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
            reduce: Optional[str] = None) -> Tensor:
    """Out of place: a copy of ``self`` with ``src`` (a tensor or a number; or ``value=``)
    written at ``index`` along ``dim``; ``reduce="add"`` adds instead (as ``scatter_add``),
    ``reduce="multiply"`` is refused (PyTorch deprecates it)."""
    if reduce not in (None, "add"):
        raise ValueError(f"scatter(): reduce={reduce!r} is not supported (None or 'add'; use scatter_reduce)")
    vals = _src_values(src, index, self, value)
    if reduce == "add":
        if not isinstance(vals, Tensor):
            vals = _core.full(tuple(index.shape), float(vals), dtype=self.dtype).to(self.device)
        return self.scatter_add(dim, index, vals)
    key = _scatter_key(self, dim, index)
    out = self.clone()
    out[key] = vals
    return out


def scatter_(self: Tensor, dim: int, index: Tensor, src: Any = None, *, value: Any = None,
             reduce: Optional[str] = None) -> Tensor:
    """In place: :func:`scatter` into ``self``."""
    if reduce not in (None, "add"):
        raise ValueError(f"scatter_(): reduce={reduce!r} is not supported (None or 'add')")
    vals = _src_values(src, index, self, value)
    if reduce == "add":
        if not isinstance(vals, Tensor):
            vals = _core.full(tuple(index.shape), float(vals), dtype=self.dtype).to(self.device)
        return self.copy_(self.scatter_add(dim, index, vals))
    self[_scatter_key(self, dim, index)] = vals
    return self


def _index_key(indices: Sequence[Any]) -> Tuple[Any, ...]:
    if not isinstance(indices, (tuple, list)):
        raise TypeError("index_put(): indices must be a tuple of tensors")
    return tuple(slice(None) if i is None else i for i in indices)


def index_put(self: Tensor, indices: Sequence[Any], values: Any, accumulate: bool = False) -> Tensor:
    """Out of place ``self[indices] = values`` (``accumulate=True`` adds, summing repeated
    positions)."""
    return index_put_(self.clone(), indices, values, accumulate)


def index_put_(self: Tensor, indices: Sequence[Any], values: Any, accumulate: bool = False) -> Tensor:
    """``self[indices] = values`` in place; with ``accumulate=True`` every indexed position gets
    its values added, repeated positions once per occurrence (PyTorch's semantics)."""
    key = _index_key(indices)
    if not accumulate:
        self[key] = values
        return self
    # accumulate: the flat positions the key names, then one index_add over the flat tensor
    n = self.numel()
    pos = _core.arange(n).to(self.device).reshape(*self.shape)[key]
    vals = values if isinstance(values, Tensor) else _core.tensor(values, dtype=self.dtype)
    vals = vals.to(self.dtype).to(self.device).expand(*pos.shape) if tuple(vals.shape) != tuple(pos.shape) else vals
    flat = self.reshape(n).index_add(0, pos.reshape(-1), vals.reshape(-1).to(self.dtype))
    return self.copy_(flat.reshape(*self.shape))
