"""``scatter`` / ``scatter_``, ``scatter_reduce`` / ``scatter_reduce_`` and ``index_put`` /
``index_put_`` with PyTorch's signatures, as
composites of the engine's advanced-index assignment (``t[key] = v``, which records gradients)
and ``index_add``, so gradients flow to ``self`` (where not overwritten) and to ``src``.

``scatter(dim, index, src)`` writes ``out[..., index[i, j, k], ...] = src[i, j, k]`` with the
index in place of coordinate ``dim``: the key is ``index`` for ``dim`` and an ``arange`` along
every other dim of ``index``, broadcast to its shape. With repeated indices PyTorch leaves which
write wins unspecified; here the last one wins.

``scatter_reduce`` works on flat positions (``self``'s element numbers picked by the same key).
``"sum"`` and ``"mean"`` are ``index_add`` composites (their gradients come from its rule);
``"amax"``, ``"amin"`` and ``"prod"`` are a custom Function whose forward runs NumPy's
``ufunc.at`` on the host (a GPU tensor round-trips, as the core's ``sort`` does) and whose
backward is PyTorch's documented rule: the extremum's gradient split evenly among the
contributors equal to it, the product's ``grad * result / x`` with the zero cases exact.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function, once_differentiable

__all__ = ["scatter", "index_put", "scatter_reduce"]


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


_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _upload(a: np.ndarray, like: Tensor) -> Tensor:
    out = _core.from_numpy(a if a.flags.c_contiguous else a.copy())
    return out if like.device.type == "cpu" else out.to(like.device)


def _identity(reduce: str, dtype: np.dtype) -> Any:
    if reduce == "prod":
        return 1
    if np.issubdtype(dtype, np.floating):
        return -np.inf if reduce == "amax" else np.inf
    if dtype == np.bool_:
        return reduce == "amin"
    info = np.iinfo(dtype)
    return info.min if reduce == "amax" else info.max


class _ScatterReduceHost(Function):
    """amax / amin / prod over flat positions: ``out[pos[i]] = op(out[pos[i]], src[i])``."""

    @staticmethod
    def forward(ctx: Any, flat: Tensor, src: Tensor, pos: Tensor, reduce: str, include_self: bool) -> Tensor:
        a, v, p = _host(flat), _host(src), _host(pos)
        out = a.copy()
        hit = np.zeros(a.shape, bool)
        hit[p] = True
        if not include_self:
            out[hit] = _identity(reduce, a.dtype)
        ufunc = {"amax": np.maximum, "amin": np.minimum, "prod": np.multiply}[reduce]
        ufunc.at(out, p, v)
        result = _upload(out, flat)
        ctx.reduce, ctx.include_self = reduce, include_self
        ctx.save_for_backward(flat, src, pos, result)
        return result

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Any:
        flat, src, pos, result = ctx.saved_tensors
        a, v, p, r, g = _host(flat), _host(src), _host(pos), _host(result), _host(grad)
        hit = np.zeros(a.shape, bool)
        hit[p] = True
        # where self takes part: everywhere with include_self, else only where nothing lands
        self_in = np.ones(a.shape, bool) if ctx.include_self else ~hit
        if ctx.reduce in ("amax", "amin"):
            self_tie = (self_in & (a == r)).astype(g.dtype)
            src_tie = (v == r[p]).astype(g.dtype)
            n = self_tie.copy()
            np.add.at(n, p, src_tie)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = g / n
            gs, gv = self_tie * share, src_tie * share[p]
        else:  # prod: d out / d x = out / x without zeros; exact products of the others with them
            zeros = (self_in & (a == 0)).astype(np.int64)
            np.add.at(zeros, p, (v == 0).astype(np.int64))
            nonzero = np.where(self_in & (a != 0), a, 1).astype(a.dtype)
            np.multiply.at(nonzero, p, np.where(v != 0, v, 1).astype(a.dtype))

            def local(x: np.ndarray, t: Any) -> np.ndarray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    none = r[t] / np.where(x == 0, 1, x)
                one = np.where(x == 0, nonzero[t], 0)
                z = zeros[t]
                return np.where(z == 0, none, np.where(z == 1, one, 0)).astype(g.dtype)

            idx = np.arange(a.shape[0])
            gs = np.where(self_in, g * local(a, idx), 0)
            gv = g[p] * local(v, p)
        return _upload(gs.astype(g.dtype), grad), _upload(gv.astype(g.dtype), grad), None, None, None


def scatter_reduce(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """Out of place: each ``src`` value reduced into ``self`` at ``index`` along ``dim`` with
    ``reduce`` (``"sum"``, ``"prod"``, ``"mean"``, ``"amax"``, ``"amin"``). With
    ``include_self=False`` the old values at the positions written to take no part (positions
    nothing is written to keep ``self``'s value); ``"mean"`` counts ``self`` when it takes part
    and floors for integer dtypes. Gradients flow to ``self`` and ``src``: the extremum's
    gradient is split evenly among the values equal to it, as in PyTorch."""
    if reduce not in _REDUCTIONS:
        raise RuntimeError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    if not isinstance(src, Tensor):
        raise TypeError(f"scatter_reduce(): argument 'src' must be Tensor, not {type(src).__name__}")
    if src.dtype != self.dtype:
        raise RuntimeError(f"scatter_reduce(): Expected self.dtype to be equal to src.dtype, got {self.dtype} "
                           f"and {src.dtype}")
    if src.device != self.device or index.device != self.device:
        raise RuntimeError(f"scatter_reduce(): self, index and src must be on the same device, got {self.device}, "
                           f"{index.device} and {src.device}")
    key = _scatter_key(self, dim, index)
    vals = _src_values(src, index, self, None).reshape(-1)
    n = self.numel()
    pos = _core.arange(n).to(self.device).reshape(*self.shape)[key].reshape(-1)
    flat = self.reshape(n)
    if reduce in ("sum", "mean"):
        hits = _core.zeros(n, dtype=_core.int64, device=self.device).index_add(
            0, pos, _core.ones(pos.shape[0], dtype=_core.int64, device=self.device))
        hit = hits > 0
        base = flat if include_self else _core.where(hit, _core.zeros((), dtype=self.dtype, device=self.device), flat)
        total = base.index_add(0, pos, vals)
        if reduce == "sum":
            out = total
        else:
            count = (hits + 1 if include_self else hits.clamp_min(1)).to(self.dtype)
            if self.dtype in (_core.float32, _core.float64):
                mean = total / count
            else:
                mean = total.div(count, rounding_mode="floor")
            out = _core.where(hit, mean, flat)
    else:
        out = _ScatterReduceHost.apply(flat, vals, pos, reduce, include_self)
    return out.reshape(*self.shape)


def scatter_reduce_(self: Tensor, dim: int, index: Tensor, src: Tensor, reduce: str, *,
                    include_self: bool = True) -> Tensor:
    """In place: :func:`scatter_reduce` into ``self``."""
    return self.copy_(scatter_reduce(self, dim, index, src, reduce, include_self=include_self))
