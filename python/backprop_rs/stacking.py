"""Joining, splitting and building tensors with PyTorch's signatures, as composites of ``cat``,
``narrow``, ``expand``, ``flip``, ``where`` and ``index_select`` (so gradients come from their
rules): ``hstack`` / ``vstack`` / ``dstack`` / ``column_stack``, ``atleast_1d/2d/3d``,
``tensor_split`` / ``hsplit`` / ``vsplit`` / ``dsplit``, ``broadcast_tensors`` /
``broadcast_shapes``, ``block_diag``, ``cartesian_prod``, ``tril_indices`` / ``triu_indices``,
``rot90``, ``diag_embed``, ``diagflat``, ``take``, ``Tensor.unfold`` (sliding windows), the
in-place ``index_add_`` / ``index_copy_`` / ``scatter_add_`` / ``masked_scatter_`` and their
out-of-place forms.
"""

from __future__ import annotations

import builtins
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["atleast_1d", "atleast_2d", "atleast_3d", "hstack", "vstack", "row_stack", "dstack", "column_stack",
           "tensor_split", "hsplit", "vsplit", "dsplit", "broadcast_shapes", "broadcast_tensors", "block_diag",
           "cartesian_prod", "tril_indices", "triu_indices", "rot90", "diag_embed", "diagflat", "take",
           "index_copy", "masked_scatter", "narrow_copy", "select", "swapaxes", "swapdims", "movedim", "moveaxis",
           "ravel", "unflatten", "put", "index_reduce"]


def _many(tensors: Tuple[Any, ...]) -> Tuple[List[Tensor], bool]:
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return list(tensors[0]), True
    return list(tensors), len(tensors) != 1


def _atleast(tensors: Tuple[Any, ...], shape_of: Any) -> Any:
    ts, many = _many(tensors)
    out = [t.reshape(shape_of(list(t.shape))) for t in ts]
    return tuple(out) if many else out[0]


def atleast_1d(*tensors: Any) -> Any:
    """``torch.atleast_1d``: 0-d tensors become ``[1]``."""
    return _atleast(tensors, lambda s: s or [1])


def atleast_2d(*tensors: Any) -> Any:
    """``torch.atleast_2d``: ``[]`` -> ``[1, 1]``, ``[n]`` -> ``[1, n]``."""
    return _atleast(tensors, lambda s: [1] * (2 - len(s)) + s if len(s) < 2 else s)


def atleast_3d(*tensors: Any) -> Any:
    """``torch.atleast_3d``: ``[]`` -> ``[1, 1, 1]``, ``[n]`` -> ``[1, n, 1]``, ``[m, n]`` -> ``[m, n, 1]``."""
    def shape(s: List[int]) -> List[int]:
        if len(s) == 0:
            return [1, 1, 1]
        if len(s) == 1:
            return [1, s[0], 1]
        if len(s) == 2:
            return s + [1]
        return s
    return _atleast(tensors, shape)


def _seq(tensors: Any, op: str) -> List[Tensor]:
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{op}(): argument 'tensors' must be tuple of Tensors, not {type(tensors).__name__}")
    if not tensors:
        raise RuntimeError(f"{op} expects a non-empty TensorList")
    return list(tensors)


def hstack(tensors: Sequence[Tensor], *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.hstack``: ``cat`` along dim 1 (dim 0 for 1-d tensors)."""
    ts = atleast_1d(_seq(tensors, "hstack"))
    r = _core.cat(list(ts), 0 if ts[0].ndim == 1 else 1)
    return _out(r, out)


def vstack(tensors: Sequence[Tensor], *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.vstack``: ``cat`` along dim 0 of the tensors made at least 2-d."""
    return _out(_core.cat(list(atleast_2d(_seq(tensors, "vstack"))), 0), out)


row_stack = vstack


def dstack(tensors: Sequence[Tensor], *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.dstack``: ``cat`` along dim 2 of the tensors made at least 3-d."""
    return _out(_core.cat(list(atleast_3d(_seq(tensors, "dstack"))), 2), out)


def column_stack(tensors: Sequence[Tensor], *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.column_stack``: 0-d and 1-d tensors become columns, then ``hstack``."""
    ts = [t.reshape(t.numel(), 1) if t.ndim <= 1 else t for t in _seq(tensors, "column_stack")]
    return _out(_core.cat(ts, 1), out)


def _out(r: Tensor, out: Optional[Tensor]) -> Tensor:
    if out is None:
        return r
    out.copy_(r)
    return out


def tensor_split(input: Tensor, indices_or_sections: Any, dim: int = 0) -> Tuple[Tensor, ...]:
    """``torch.tensor_split``: ``n`` nearly equal parts (the first ``size % n`` one longer) or
    the parts between the given indices; views of ``input``."""
    d = dim % builtins.max(input.ndim, 1)
    if input.ndim == 0:
        raise RuntimeError("tensor_split expected at least a 1-dimensional tensor, but got a tensor with 0 dims")
    size = input.shape[d]
    ios = indices_or_sections
    if isinstance(ios, Tensor):
        if ios.dtype != _core.int64 or ios.ndim > 1:
            raise RuntimeError("tensor_split expected tensor_indices_or_sections to be a zero-dimensional or "
                               "one-dimensional tensor with dtype long")
        ios = ios.item() if ios.ndim == 0 else ios.tolist()
    if isinstance(ios, int):
        if ios <= 0:
            raise RuntimeError(f"number of sections must be larger than 0, got {ios}")
        q, r = divmod(size, ios)
        bounds, start = [], 0
        for i in range(ios):
            n = q + (1 if i < r else 0)
            bounds.append((start, n))
            start += n
    else:
        cuts = [builtins.min(builtins.max(int(i) if i >= 0 else size + int(i), 0), size) for i in ios]
        starts = [0] + cuts
        ends = cuts + [size]
        bounds = [(s, builtins.max(e - s, 0)) for s, e in zip(starts, ends)]
    return tuple(input.narrow(d, builtins.min(s, size), n) for s, n in bounds)


def _even_split(op: str, input: Tensor, sections: Any, dim: int, need: int) -> Tuple[Tensor, ...]:
    if input.ndim < need:
        raise RuntimeError(f"torch.{op} requires a tensor with at least {need} dimension, but got a tensor "
                           f"with {input.ndim} dimensions!")
    if isinstance(sections, int):
        size = input.shape[dim]
        if sections == 0 or size % sections != 0:
            raise RuntimeError(f"torch.{op} attempted to split along dimension {dim}, but the size of the dimension "
                               f"{size} is not divisible by the split_size {sections}!")
    return tensor_split(input, sections, dim)


def hsplit(input: Tensor, indices_or_sections: Any) -> Tuple[Tensor, ...]:
    """``torch.hsplit``: split along dim 1 (dim 0 of a 1-d tensor) into equal parts or at indices."""
    return _even_split("hsplit", input, indices_or_sections, 1 if input.ndim > 1 else 0, 1)


def vsplit(input: Tensor, indices_or_sections: Any) -> Tuple[Tensor, ...]:
    """``torch.vsplit``: split along dim 0 (at least 2-d)."""
    return _even_split("vsplit", input, indices_or_sections, 0, 2)


def dsplit(input: Tensor, indices_or_sections: Any) -> Tuple[Tensor, ...]:
    """``torch.dsplit``: split along dim 2 (at least 3-d)."""
    return _even_split("dsplit", input, indices_or_sections, 2, 3)


def broadcast_shapes(*shapes: Any) -> Any:
    """``torch.broadcast_shapes``: the shape the given shapes broadcast to (a ``Size``)."""
    dims: List[int] = []
    for s in shapes:
        s = [s] if isinstance(s, int) else list(s)
        if len(s) > len(dims):
            dims = [1] * (len(s) - len(dims)) + dims
        for i, n in enumerate(reversed(s)):
            j = len(dims) - 1 - i
            if n < 0:
                raise RuntimeError(f"Trying to create tensor with negative dimension {n}: {s}")
            if dims[j] == 1:
                dims[j] = n
            elif n != 1 and n != dims[j]:
                raise RuntimeError(f"shape mismatch: objects cannot be broadcast to a single shape.  Mismatch is "
                                   f"between arg 0 and arg {shapes.index(s) if s in shapes else 1}.")
    from . import Size

    return Size(dims)


def broadcast_tensors(*tensors: Any) -> Tuple[Tensor, ...]:
    """``torch.broadcast_tensors``: views of each tensor expanded to the common shape."""
    ts, _ = _many(tensors)
    shape = list(broadcast_shapes(*[tuple(t.shape) for t in ts]))
    return tuple(t.expand(shape) for t in ts)


def block_diag(*tensors: Tensor) -> Tensor:
    """``torch.block_diag``: the tensors (0-d, 1-d as a row, 2-d) on the diagonal of a zero matrix."""
    if not tensors:
        return _core.zeros((1, 0))
    blocks = []
    for i, t in enumerate(tensors):
        if t.ndim > 2:
            raise RuntimeError(f"torch.block_diag: Input tensors must have 2 or fewer dimensions. Input {i} has "
                               f"{t.ndim} dimensions")
        blocks.append(t.reshape(1, 1) if t.ndim == 0 else t.reshape(1, -1) if t.ndim == 1 else t)
    dtype = blocks[0].dtype
    for b in blocks[1:]:
        dtype = _core.promote_types(dtype, b.dtype)
    width = builtins.sum(b.shape[1] for b in blocks)
    rows, left = [], 0
    for b in blocks:
        r, c = b.shape
        dev = b.device
        parts = [_core.zeros((r, left), dtype=dtype, device=dev), b.to(dtype),
                 _core.zeros((r, width - left - c), dtype=dtype, device=dev)]
        rows.append(_core.cat(parts, 1))
        left += c
    return _core.cat(rows, 0)


def cartesian_prod(*tensors: Tensor) -> Tensor:
    """``torch.cartesian_prod``: every combination of the 1-d tensors' elements, ``[N, k]``
    (one tensor is returned as it is)."""
    if len(tensors) == 1:
        return tensors[0]
    grids = _core.meshgrid(*tensors, indexing="ij")
    return _core.stack([g.reshape(-1) for g in grids], 1)


def _tri_indices(np_fn: Any, row: int, col: int, offset: int, dtype: Any, device: Any) -> Tensor:
    r, c = np_fn(row, offset, col)
    return _core.tensor(np.stack([r, c]).astype(np.int64), dtype=dtype or _core.int64, device=device)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None,
                 layout: Any = None) -> Tensor:
    """``torch.tril_indices``: the ``[2, N]`` coordinates of the lower triangle, row by row."""
    return _tri_indices(np.tril_indices, row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype: Any = None, device: Any = None,
                 layout: Any = None) -> Tensor:
    """``torch.triu_indices``: the ``[2, N]`` coordinates of the upper triangle, row by row."""
    return _tri_indices(np.triu_indices, row, col, offset, dtype, device)


def rot90(input: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
    """``torch.rot90``: rotates by 90 degrees ``k`` times, from the first dim towards the second."""
    if len(dims) != 2:
        raise RuntimeError(f"expected total rotation dims == 2, but got dims = {len(dims)}")
    if input.ndim < 2:
        raise RuntimeError(f"expected total dims >= 2, but got total dims = {input.ndim}")
    d0, d1 = dims[0] % input.ndim, dims[1] % input.ndim
    if d0 == d1:
        raise RuntimeError(f"expected rotation dims to be different, but got dim0 = {d0} and dim1 = {d1}")
    k %= 4
    if k == 1:
        return input.flip([d1]).transpose(d0, d1)
    if k == 2:
        return input.flip([d0, d1])
    if k == 3:
        return input.flip([d0]).transpose(d0, d1)
    return input.clone()


def diag_embed(input: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """``torch.diag_embed``: the last dim of ``input`` on the ``offset`` diagonal of new
    ``(dim1, dim2)`` planes, zeros elsewhere (a ``where``, so inf/NaN stay on the diagonal)."""
    n = input.shape[-1] if input.ndim else 1
    x = input.reshape(1) if input.ndim == 0 else input
    eye = _core.eye(n, dtype=_core.bool_, device=x.device)
    zero = _core.zeros((), dtype=x.dtype, device=x.device)
    m = _core.where(eye, x.unsqueeze(-2), zero)
    if offset:
        from .nn import functional as F

        a = builtins.abs(offset)
        m = F.pad(m, (a, 0, 0, a) if offset > 0 else (0, a, a, 0))
    nd = m.ndim
    d1, d2 = dim1 % nd, dim2 % nd
    if d1 == d2:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return m.movedim([nd - 2, nd - 1], [d1, d2])


def diagflat(input: Tensor, offset: int = 0) -> Tensor:
    """``torch.diagflat``: the flattened input on the ``offset`` diagonal of a square matrix."""
    return input.reshape(-1).diag(offset)


def _flat_index(op: str, index: Tensor, n: int) -> Tensor:
    if index.dtype != _core.int64 and index.dtype != _core.int32:
        raise RuntimeError(f"{op}(): Expected a long tensor for index, but got {index.dtype}")
    flat = index.reshape(-1).long()
    return _core.where(flat < 0, flat + n, flat)


def take(input: Tensor, index: Tensor) -> Tensor:
    """``torch.take``: ``input`` read as 1-d at ``index`` (negative indices count from the end);
    the result has ``index``'s shape."""
    n = input.numel()
    return input.reshape(-1).index_select(0, _flat_index("take", index, n)).reshape(list(index.shape))


def unfold(self: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """``Tensor.unfold``: every window of ``size`` elements along ``dimension``, ``step`` apart,
    as a new last dim (``[..., n_windows, ..., size]``); an ``index_select`` of the windows'
    positions, so the gradient adds up over overlapping windows."""
    d = dimension % builtins.max(self.ndim, 1)
    length = self.shape[d] if self.ndim else 1
    if size > length:
        raise RuntimeError(f"maximum size for tensor at dimension {d} is {length} but size is {size}")
    if step <= 0:
        raise RuntimeError(f"step is {step} but must be > 0")
    x = self.reshape(1) if self.ndim == 0 else self
    starts = np.arange(0, length - size + 1, step)
    idx = (starts[:, None] + np.arange(size)[None, :]).reshape(-1)
    picked = x.index_select(d, _core.tensor(idx.astype(np.int64), device=x.device))
    shape = list(x.shape)
    shape[d:d + 1] = [len(starts), size]
    return picked.reshape(shape).movedim(d + 1, -1) if self.ndim else picked.reshape(len(starts), size).squeeze(0)


def _expanded_index(self: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    d = dim % builtins.max(self.ndim, 1)
    shape = [1] * source.ndim
    if source.ndim:
        shape[d] = index.numel()
    return index.reshape(shape).expand(list(source.shape)) if source.ndim else index.reshape([])


def index_copy(input: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """``torch.index_copy``: ``input`` with the slices ``index`` along ``dim`` replaced by
    ``source``'s (a ``scatter``)."""
    if input.ndim == 0:
        return source.clone().reshape([])
    return input.scatter(dim, _expanded_index(input, dim, index, source), source)


def index_copy_(self: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """``Tensor.index_copy_``: :func:`index_copy` in place."""
    return self.copy_(index_copy(self, dim, index, source))


def index_add_(self: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha: Any = 1) -> Tensor:
    """``Tensor.index_add_``: ``index_add`` in place."""
    return self.copy_(self.index_add(dim, index, source, alpha=alpha))


def scatter_add_(self: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """``Tensor.scatter_add_``: ``scatter_add`` in place."""
    return self.copy_(self.scatter_add(dim, index, src))


def masked_scatter(input: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """``torch.masked_scatter``: ``input`` with the positions where ``mask`` is true filled, in
    order, from ``source``'s leading elements."""
    if mask.dtype != _core.bool_:
        raise RuntimeError(f"masked_scatter_ only supports boolean masks, but got mask with dtype {mask.dtype}")
    m = mask.expand(list(input.shape)) if tuple(mask.shape) != tuple(input.shape) else mask
    need = int(m.sum().item())
    if need > source.numel():
        raise RuntimeError(f"masked_scatter: expected source to have at least {need} elements, "
                           f"got {source.numel()}")
    pos = m.reshape(-1).long().cumsum(0) - 1
    vals = source.reshape(-1).index_select(0, pos.clamp(min=0)) if source.numel() else input.reshape(-1)
    return _core.where(m, vals.reshape(list(input.shape)).to(input.dtype), input)


def masked_scatter_(self: Tensor, mask: Tensor, source: Tensor) -> Tensor:
    """``Tensor.masked_scatter_``: :func:`masked_scatter` in place."""
    return self.copy_(masked_scatter(self, mask, source))


def narrow_copy(input: Tensor, dim: int, start: int, length: int) -> Tensor:
    """``torch.narrow_copy``: a copy of ``narrow``."""
    return input.narrow(dim, start, length).clone()


def select(input: Tensor, dim: int, index: int) -> Tensor:
    """``torch.select``."""
    return input.select(dim, index)


def swapaxes(input: Tensor, axis0: int, axis1: int) -> Tensor:
    """``torch.swapaxes`` (``transpose``)."""
    return input.transpose(axis0, axis1)


def swapdims(input: Tensor, dim0: int, dim1: int) -> Tensor:
    """``torch.swapdims`` (``transpose``)."""
    return input.transpose(dim0, dim1)


def movedim(input: Tensor, source: Any, destination: Any) -> Tensor:
    """``torch.movedim``."""
    return input.movedim(source, destination)


moveaxis = movedim


def ravel(input: Tensor) -> Tensor:
    """``torch.ravel``: the tensor flattened (a view when it can be)."""
    return input.reshape(-1)


def unflatten(input: Tensor, dim: int, sizes: Sequence[int]) -> Tensor:
    """``torch.unflatten``."""
    return input.unflatten(dim, sizes)


def tensor_methods() -> dict:
    """The Tensor methods of this module (attached by ``_tensor_methods.install``)."""

    def tensor_split_method(self: Tensor, indices_or_sections: Any, dim: int = 0) -> Tuple[Tensor, ...]:
        """:func:`backprop_rs.tensor_split` of ``self``."""
        return tensor_split(self, indices_or_sections, dim)

    def hsplit_method(self: Tensor, sections: Any) -> Tuple[Tensor, ...]:
        """:func:`backprop_rs.hsplit` of ``self``."""
        return hsplit(self, sections)

    def vsplit_method(self: Tensor, sections: Any) -> Tuple[Tensor, ...]:
        """:func:`backprop_rs.vsplit` of ``self``."""
        return vsplit(self, sections)

    def dsplit_method(self: Tensor, sections: Any) -> Tuple[Tensor, ...]:
        """:func:`backprop_rs.dsplit` of ``self``."""
        return dsplit(self, sections)

    def rot90_method(self: Tensor, k: int = 1, dims: Sequence[int] = (0, 1)) -> Tensor:
        """:func:`backprop_rs.rot90` of ``self``."""
        return rot90(self, k, dims)

    def diag_embed_method(self: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
        """:func:`backprop_rs.diag_embed` of ``self``."""
        return diag_embed(self, offset, dim1, dim2)

    def diagflat_method(self: Tensor, offset: int = 0) -> Tensor:
        """:func:`backprop_rs.diagflat` of ``self``."""
        return diagflat(self, offset)

    def take_method(self: Tensor, index: Tensor) -> Tensor:
        """:func:`backprop_rs.take` of ``self``."""
        return take(self, index)

    def index_copy_method(self: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
        """:func:`backprop_rs.index_copy` of ``self``."""
        return index_copy(self, dim, index, source)

    def masked_scatter_method(self: Tensor, mask: Tensor, source: Tensor) -> Tensor:
        """:func:`backprop_rs.masked_scatter` of ``self``."""
        return masked_scatter(self, mask, source)

    def swapaxes_method(self: Tensor, axis0: int, axis1: int) -> Tensor:
        """``swapaxes`` is ``transpose``."""
        return self.transpose(axis0, axis1)

    return {"tensor_split": tensor_split_method, "hsplit": hsplit_method, "vsplit": vsplit_method,
            "dsplit": dsplit_method, "rot90": rot90_method, "diag_embed": diag_embed_method,
            "diagflat": diagflat_method, "take": take_method, "unfold": unfold, "index_copy": index_copy_method,
            "index_copy_": index_copy_, "index_add_": index_add_, "scatter_add_": scatter_add_,
            "masked_scatter": masked_scatter_method, "masked_scatter_": masked_scatter_,
            "swapaxes": swapaxes_method, "put_": put_, "put": put, "index_reduce": index_reduce,
            "index_reduce_": index_reduce_, "fill_diagonal_": fill_diagonal_, "sum_to_size": sum_to_size}


# ------------------------------------------------------------------ flat and diagonal writes, reductions by index


def put(input: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """``torch.put``: ``input`` read as 1-d with ``source`` written (or added) at ``index``."""
    flat = input.reshape(-1).clone()
    idx = _flat_index("put", index, input.numel())
    return flat.index_put((idx,), source.reshape(-1), accumulate).reshape(list(input.shape))


def put_(self: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """``Tensor.put_``: :func:`put` in place."""
    return self.copy_(put(self, index, source, accumulate))


def index_reduce(input: Tensor, dim: int, index: Tensor, source: Tensor, reduce: str, *,
                 include_self: bool = True) -> Tensor:
    """``torch.index_reduce``: slices of ``source`` folded into ``input``'s slices ``index``
    along ``dim`` by ``prod``, ``mean``, ``amax`` or ``amin`` (``scatter_reduce`` over the index
    expanded to ``source``'s shape)."""
    if reduce not in ("prod", "mean", "amax", "amin"):
        raise RuntimeError(f"index_reduce(): Expected reduce to be one of prod, mean, amax or amin but got {reduce}.")
    return input.scatter_reduce(dim, _expanded_index(input, dim, index, source), source, reduce,
                                include_self=include_self)


def index_reduce_(self: Tensor, dim: int, index: Tensor, source: Tensor, reduce: str, *,
                  include_self: bool = True) -> Tensor:
    """``Tensor.index_reduce_``: :func:`index_reduce` in place."""
    return self.copy_(index_reduce(self, dim, index, source, reduce, include_self=include_self))


def fill_diagonal_(self: Tensor, fill_value: Any, wrap: bool = False) -> Tensor:
    """``Tensor.fill_diagonal_``: the main diagonal (all dims equal for > 2-d; a tall matrix's
    diagonal restarts every ``cols + 1`` rows with ``wrap``) set to ``fill_value``."""
    if self.ndim < 2:
        raise RuntimeError("dimensions must larger than 1")
    if self.ndim > 2 and len(set(self.shape)) != 1:
        raise RuntimeError("all dimensions of input must be of equal length")
    n = self.numel()
    if self.ndim == 2:
        rows, cols = self.shape
        step = cols + 1
        end = n if wrap else min(rows, cols) * cols
    else:
        step = sum(self.shape[0] ** k for k in range(self.ndim))
        end = n
    pos = np.arange(0, end, step)
    idx = _core.tensor(pos.astype(np.int64), device=self.device)
    vals = _core.full((len(pos),), fill_value, dtype=self.dtype, device=self.device)
    return self.copy_(self.reshape(-1).index_put((idx,), vals).reshape(list(self.shape)))


def sum_to_size(self: Tensor, *size: Any) -> Tensor:
    """``Tensor.sum_to_size``: summed down to ``size``, which ``self`` must broadcast from."""
    shape = list(size[0]) if len(size) == 1 and not isinstance(size[0], int) else list(size)
    lead = self.ndim - len(shape)
    if lead < 0 or any(s != 1 and s != self.shape[lead + i] for i, s in enumerate(shape)):
        raise RuntimeError(f"size {{{', '.join(map(str, shape))}}} is not expandable to size "
                           f"{{{', '.join(map(str, self.shape))}}}.")
    dims = list(range(lead)) + [lead + i for i, s in enumerate(shape) if s == 1 and self.shape[lead + i] != 1]
    r = self.sum(dims, keepdim=True) if dims else self
    return r.reshape(shape)
