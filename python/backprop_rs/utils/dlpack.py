"""DLPack exchange with ``torch.utils.dlpack``'s names: :func:`from_dlpack` and
:func:`to_dlpack`, and the protocol methods ``Tensor.__dlpack__`` / ``Tensor.__dlpack_device__``
(attached by ``_tensor_methods.install``).

CPU tensors already share their memory with NumPy both ways (``t.numpy()`` is a view that keeps
the storage alive; ``bp.from_numpy(a)`` wraps the array's buffer, strides included), so the
protocol is NumPy's: a tensor exports the capsule of its NumPy view (the capsule holds the view,
the view holds the storage), and an import goes through ``np.from_dlpack`` then
``from_numpy``. Nothing is ever copied silently: what cannot be shared raises.

GPU tensors cannot be exported: their memory is a wgpu buffer, which wgpu does not expose as a
device pointer that another library could address (there is no DLPack device for it to name),
so ``__dlpack__`` raises ``BufferError`` rather than copy to the host; call ``.cpu()`` first.
"""

from __future__ import annotations

import ctypes
from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._core import Tensor

__all__ = ["from_dlpack", "to_dlpack"]

_KDLCPU = 1
_SHARED_DTYPES = {np.dtype(d) for d in (np.float32, np.float64, np.float16, np.int64, np.int32, np.int16, np.int8,
                                         np.uint8, np.bool_)}
_SHARED_NAMES = "float32, float64, float16, int64, int32, int16, int8, uint8 and bool"


def _gpu_error(t: Tensor) -> BufferError:
    return BufferError(
        f"Can't export a tensor on {t.device} through DLPack: backprop_rs GPU memory is a wgpu buffer, which wgpu "
        "does not expose as a device pointer another library could read (DLPack has no device for it), and the "
        "export never copies; move it first with .cpu()")


def __dlpack__(self: Tensor, stream: Optional[Any] = None, *, max_version: Optional[Tuple[int, int]] = None,
               dl_device: Optional[Tuple[int, int]] = None, copy: Optional[bool] = None) -> Any:
    """The DLPack capsule of ``self`` (CPU only), sharing its memory, strides included: the
    consumer's writes are seen by ``self``. A tensor that requires grad is refused, as in PyTorch."""
    if self.requires_grad:
        raise RuntimeError("Can't export tensors that require gradient, use tensor.detach()")
    if self.device.type != "cpu":
        raise _gpu_error(self)
    kwargs: dict = {"stream": stream}
    if max_version is not None:
        kwargs["max_version"] = max_version
    if dl_device is not None:
        kwargs["dl_device"] = dl_device
    if copy is not None:
        kwargs["copy"] = copy
    return self.numpy().__dlpack__(**kwargs)


def __dlpack_device__(self: Tensor) -> Tuple[int, int]:
    """``(1, 0)``: DLPack's ``kDLCPU`` device; a GPU tensor raises (see the module doc)."""
    if self.device.type != "cpu":
        raise _gpu_error(self)
    return (_KDLCPU, 0)


class _Capsule:
    """A legacy DLPack capsule seen through the protocol, for ``np.from_dlpack``."""

    def __init__(self, capsule: Any) -> None:
        self.capsule = capsule

    def __dlpack__(self, stream: Optional[Any] = None, **kwargs: Any) -> Any:
        return self.capsule

    def __dlpack_device__(self) -> Tuple[int, int]:
        return (_KDLCPU, 0)


def from_dlpack(ext_tensor: Any) -> Tensor:
    """A tensor sharing memory with ``ext_tensor``: an object with ``__dlpack__`` (a NumPy array,
    another library's CPU tensor, a backprop_rs tensor) or a legacy DLPack capsule. Memory on a
    device other than the CPU, dtypes NumPy and backprop_rs do not share (float32, float64, float16,
    the ints, uint8 and bool can be shared; bfloat16 cannot pass through NumPy) and read-only exports raise instead of being copied."""
    legacy = not hasattr(ext_tensor, "__dlpack__")
    src = _Capsule(ext_tensor) if legacy else ext_tensor
    if hasattr(src, "__dlpack_device__"):
        dev = tuple(src.__dlpack_device__())
        if int(dev[0]) != _KDLCPU:
            raise BufferError(f"from_dlpack: the memory is on DLPack device {dev}; backprop_rs imports CPU memory only")
    arr = np.from_dlpack(src)
    if arr.dtype not in _SHARED_DTYPES:
        raise TypeError(f"from_dlpack: {arr.dtype} has no backprop_rs dtype ({_SHARED_NAMES} can be "
                        "shared); convert it on the producer's side")
    if legacy and not arr.flags.writeable:
        arr = _writable_view(arr)
    if not arr.flags.writeable:
        raise BufferError("from_dlpack: the producer exported read-only memory; backprop_rs tensors are writable, so "
                          "sharing it is refused (copy it on the producer's side)")
    out = _core.from_numpy(arr)
    if arr.size and out.data_ptr() != arr.ctypes.data:  # from_numpy would copy what it cannot wrap
        raise BufferError("from_dlpack: this memory layout cannot be shared without a copy")
    return out


def _writable_view(arr: np.ndarray) -> np.ndarray:
    """A writable array over the memory of ``arr``, which NumPy marks read-only because a legacy
    (unversioned) capsule cannot say whether it is; PyTorch takes such memory as writable. The
    new array's base holds ``arr``, which holds the capsule."""
    lo = sum(min(0, (n - 1) * s) for n, s in zip(arr.shape, arr.strides))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(arr.shape, arr.strides)) + arr.itemsize
    if arr.size == 0:
        return arr.copy()  # nothing to share
    buf = (ctypes.c_char * (hi - lo)).from_address(arr.ctypes.data + lo)
    buf._owner = arr  # type: ignore[attr-defined]  # keeps the capsule alive as long as the view
    return np.ndarray(arr.shape, arr.dtype, buffer=buf, offset=-lo, strides=arr.strides)


def to_dlpack(tensor: Tensor) -> Any:
    """The DLPack capsule of ``tensor`` (``tensor.__dlpack__()``): a legacy, use-once exchange."""
    return __dlpack__(tensor)
