"""Tensors as the contiguous host buffers MPI reads and writes.

A contiguous CPU tensor is handed to MPI **without a copy**: ``t.detach().numpy()`` shares the
tensor's memory (a storage never moves while it lives), and mpi4py passes that array's buffer
(the buffer protocol) straight to the MPI call. A non-contiguous CPU tensor goes through a
contiguous copy, written back afterwards. A GPU tensor is **staged through host memory**: it is
read back into a host array before the call and, for outputs, copied to the device after it
(MPI moves host memory here; there is no GPU-aware transport for wgpu buffers).

Bool tensors travel as bytes (``uint8`` views of the same memory), because MPI defines no
reductions on ``C_BOOL`` other than the logical ones, and PyTorch maps bool ``SUM`` to a
maximum; see :mod:`.reduce_op`.

Writes go to the tensor's memory directly (CPU) or through ``copy_`` (GPU, and strided CPU
tensors), so for a contiguous CPU tensor the autograd version counter does not move: do not
reduce a tensor that autograd saved for a backward still to come.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .. import _core
from .._core import Tensor
from ..autograd import no_grad

__all__ = ["HostBuffer", "check_tensor", "signature"]


def check_tensor(t: Any, what: str) -> Tensor:
    """``t`` if it is a Tensor; TypeError naming the argument otherwise."""
    if not isinstance(t, Tensor):
        raise TypeError(f"{what} must be a backprop_rs Tensor, got {type(t).__name__}")
    return t


def signature(t: Tensor) -> tuple:
    """What every rank must agree on about a tensor: its dtype and shape (the device may differ:
    GPU tensors are staged through the host)."""
    return (str(t.dtype).replace("backprop_rs.", ""), tuple(t.shape))


def _mpi_array(a: np.ndarray) -> np.ndarray:
    """The array MPI sees: bool as uint8 bytes of the same memory, everything else as is."""
    return a.view(np.uint8) if a.dtype == np.bool_ else a


class HostBuffer:
    """A flat contiguous host array standing for ``tensor`` during one MPI call.

    ``HostBuffer(t, read=True)`` holds ``t``'s values (its own memory when ``t`` is a contiguous
    CPU tensor); ``read=False`` allocates without reading (for pure outputs). ``mpi`` is the
    array to pass to mpi4py; after the call, ``store()`` makes the tensor hold the array's values
    (nothing to do when the array is the tensor's memory).
    """

    __slots__ = ("tensor", "array", "shared")

    def __init__(self, tensor: Tensor, read: bool = True) -> None:
        self.tensor = tensor
        self.shared = False
        if tensor.device.type == "cpu":
            view = tensor.detach().numpy()
            if view.flags.c_contiguous and view.flags.writeable:
                self.array = view.reshape(-1)
                self.shared = True
                return
            self.array = np.ascontiguousarray(view).reshape(-1) if read else np.empty(view.size, view.dtype)
            return
        # a GPU tensor: read it back into host memory (one copy); outputs get a host array only
        if read:
            self.array = np.ascontiguousarray(tensor.detach().cpu().numpy()).reshape(-1)
        else:
            dt = np.dtype(_numpy_dtype(tensor))
            self.array = np.empty(tensor.numel(), dt)

    @property
    def mpi(self) -> np.ndarray:
        """The buffer to hand to MPI."""
        return _mpi_array(self.array)

    def store(self, values: Optional[np.ndarray] = None) -> None:
        """Makes the tensor hold ``values`` (default: this buffer's array, after MPI wrote it)."""
        src = self.array if values is None else values
        if self.shared and values is None:
            return
        write(self.tensor, src)


def _numpy_dtype(t: Tensor) -> Any:
    name = str(t.dtype).replace("backprop_rs.", "")
    return {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}[name]


def write(t: Tensor, values: np.ndarray) -> None:
    """Makes ``t`` (any device, any strides) hold the flat ``values`` (of ``t.numel()`` elements)."""
    values = values.reshape(tuple(t.shape))
    if t.device.type == "cpu":
        view = t.detach().numpy()
        if view.flags.writeable:
            view[...] = values  # in place through the shared memory, strided or not
            return
    with no_grad():
        t.copy_(_core.from_numpy(np.ascontiguousarray(values)))


def read(t: Tensor) -> np.ndarray:
    """``t``'s values as a flat contiguous host array (``t``'s own memory when it can be)."""
    return HostBuffer(t, read=True).array


def empty_like_flat(t: Tensor, count: int) -> np.ndarray:
    """A host array of ``count`` elements of ``t``'s dtype."""
    return np.empty(count, np.dtype(_numpy_dtype(t)))


mpi_array = _mpi_array
numpy_dtype = _numpy_dtype
