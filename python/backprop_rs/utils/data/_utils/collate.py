"""``default_collate`` and ``default_convert``: PyTorch's rules for turning samples into batches.

``collate(batch, collate_fn_map=...)`` walks the structure of the first sample and dispatches on
the type of each leaf through ``collate_fn_map`` (exact type first, then ``isinstance`` in the
map's order), so a custom collate can extend ``default_collate_fn_map`` for its own leaf types:

=======================  ===============================================================
a leaf of type           collates to
=======================  ===============================================================
Tensor                   ``stack(batch, 0)``
numpy array              the arrays as tensors, stacked (string/object arrays: TypeError)
numpy scalar             a tensor of the scalars' dtype
float                    a ``float64`` tensor
int (bool)               an ``int64`` (``bool``) tensor
str, bytes               the list unchanged
Mapping                  the same mapping type, each key collated
namedtuple               the same namedtuple, each field collated
tuple                    a **list**, each position collated (PyTorch's backward-compatible rule)
other Sequence           the same type where it can be rebuilt, else a list
=======================  ===============================================================

backprop_rs has four dtypes (float32, float64, int64, bool): a NumPy array of another dtype
becomes the nearest of them as ``bp.as_tensor`` converts it (int8..uint64 -> int64,
float16 -> float32), where PyTorch would keep e.g. ``uint8``.
"""

from __future__ import annotations

import collections.abc
import copy
import re
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Type, Union

import numpy as np

from .... import _core
from ...._core import Tensor

__all__ = ["collate", "default_collate", "default_convert", "default_collate_fn_map", "default_collate_err_msg_format"]

np_str_obj_array_pattern = re.compile(r"[SaUO]")

default_collate_err_msg_format = (
    "default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {}"
)

_CollateFn = Callable[..., Any]
_FnMap = Dict[Union[Type[Any], Tuple[Type[Any], ...]], _CollateFn]


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_convert(data: Any) -> Any:
    """Converts NumPy arrays and scalars inside ``data`` to tensors without batching (what the
    ``DataLoader`` applies when ``batch_size=None``). Tuples become lists, as in PyTorch.

    >>> import numpy as np
    >>> default_convert({"x": np.zeros(2), "n": 3})["x"].dtype
    backprop_rs.float64
    """
    elem_type = type(data)
    if isinstance(data, Tensor):
        return data
    if elem_type.__module__ == "numpy" and elem_type.__name__ not in ("str_", "string_", "bytes_"):
        if elem_type.__name__ == "ndarray" and np_str_obj_array_pattern.search(data.dtype.str) is not None:
            return data
        return _core.as_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update({key: default_convert(data[key]) for key in data})
                return clone
            return elem_type({key: default_convert(data[key]) for key in data})
        except TypeError:
            # the mapping type can't be rebuilt from a dict: fall back to a plain dict
            return {key: default_convert(data[key]) for key in data}
    if _is_namedtuple(data):
        return elem_type(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        try:
            if isinstance(data, collections.abc.MutableSequence):
                clone = copy.copy(data)
                for i, d in enumerate(data):
                    clone[i] = default_convert(d)
                return clone
            return elem_type([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


def collate(batch: Sequence[Any], *, collate_fn_map: Optional[_FnMap] = None) -> Any:
    """Collates a list of samples by the structure of the first one, dispatching leaves through
    ``collate_fn_map`` (see the module docstring)."""
    elem = batch[0]
    elem_type = type(elem)
    if collate_fn_map is not None:
        if elem_type in collate_fn_map:
            return collate_fn_map[elem_type](batch, collate_fn_map=collate_fn_map)
        for collate_type in collate_fn_map:
            if isinstance(elem, collate_type):
                return collate_fn_map[collate_type](batch, collate_fn_map=collate_fn_map)
    if isinstance(elem, collections.abc.Mapping):
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)
                clone.update({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem})
                return clone
            return elem_type({key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem})
        except TypeError:
            return {key: collate([d[key] for d in batch], collate_fn_map=collate_fn_map) for key in elem}
    if _is_namedtuple(elem):
        return elem_type(*(collate(samples, collate_fn_map=collate_fn_map) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        it = iter(batch)
        elem_size = len(next(it))
        if not all(len(e) == elem_size for e in it):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = list(zip(*batch))
        if isinstance(elem, tuple):
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
        try:
            if isinstance(elem, collections.abc.MutableSequence):
                clone = copy.copy(elem)
                for i, samples in enumerate(transposed):
                    clone[i] = collate(samples, collate_fn_map=collate_fn_map)
                return clone
            return elem_type([collate(samples, collate_fn_map=collate_fn_map) for samples in transposed])
        except TypeError:
            return [collate(samples, collate_fn_map=collate_fn_map) for samples in transposed]
    raise TypeError(default_collate_err_msg_format.format(elem_type))


def collate_tensor_fn(batch: Sequence[Tensor], *, collate_fn_map: Optional[_FnMap] = None) -> Tensor:
    """Tensors of one shape stack along a new dim 0."""
    return _core.stack(list(batch), 0)


def collate_numpy_array_fn(batch: Sequence[np.ndarray], *, collate_fn_map: Optional[_FnMap] = None) -> Any:
    """Arrays become tensors (see the dtype note above), then stack; string/object arrays are refused."""
    elem = batch[0]
    if np_str_obj_array_pattern.search(elem.dtype.str) is not None:
        raise TypeError(default_collate_err_msg_format.format(elem.dtype))
    return collate([_core.as_tensor(np.asarray(b)) for b in batch], collate_fn_map=collate_fn_map)


def collate_numpy_scalar_fn(batch: Sequence[Any], *, collate_fn_map: Optional[_FnMap] = None) -> Tensor:
    """NumPy scalars keep their dtype (through an array; ``bp.tensor`` would make floats float32)."""
    return _core.as_tensor(np.asarray(batch))


def collate_float_fn(batch: Sequence[float], *, collate_fn_map: Optional[_FnMap] = None) -> Tensor:
    """Python floats are double precision: a ``float64`` tensor, as in PyTorch."""
    return _core.tensor(list(batch), dtype=_core.float64)


def collate_int_fn(batch: Sequence[int], *, collate_fn_map: Optional[_FnMap] = None) -> Tensor:
    """Python ints become an ``int64`` tensor (bools a ``bool`` one)."""
    return _core.tensor(list(batch))


def collate_str_fn(batch: Sequence[Union[str, bytes]], *, collate_fn_map: Optional[_FnMap] = None) -> Sequence[Any]:
    """Strings stay a list."""
    return batch


default_collate_fn_map: _FnMap = {
    Tensor: collate_tensor_fn,
    np.ndarray: collate_numpy_array_fn,
    np.memmap: collate_numpy_array_fn,
    (np.bool_, np.number, np.object_): collate_numpy_scalar_fn,
    float: collate_float_fn,
    int: collate_int_fn,
    str: collate_str_fn,
    bytes: collate_str_fn,
}


def default_collate(batch: Sequence[Any]) -> Any:
    """Stacks a list of samples into a batch with PyTorch's rules (see the module docstring).

    >>> out = default_collate([(1, 0.5), (2, 1.5)])
    >>> out[0].tolist(), out[1].dtype
    ([1, 2], backprop_rs.float64)
    """
    return collate(batch, collate_fn_map=default_collate_fn_map)
