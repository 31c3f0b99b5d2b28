"""``torch.accelerator``: the current accelerator is the wgpu GPU (device ``"gpu"``) when an adapter
with compute shaders exists (:func:`backprop_rs.gpu.is_available`), else there is none.

>>> import backprop_rs as bp
>>> device = bp.accelerator.current_accelerator() if bp.accelerator.is_available() else bp.device("cpu")
>>> device.type in ("gpu", "cpu")
True
"""

from __future__ import annotations

from typing import Any, Optional

from . import _core, gpu

__all__ = ["is_available", "current_accelerator", "device_count", "current_device_index", "set_device_index",
           "synchronize"]


def is_available() -> bool:
    """Whether a wgpu GPU adapter is available (opens the device on first call)."""
    return gpu.is_available()


def current_accelerator(check_available: bool = False) -> Optional[_core.device]:
    """``device(type='gpu')`` when a GPU adapter exists, else ``None``. ``check_available`` is
    accepted for PyTorch's signature (the answer is the same either way: the GPU is only named when
    it can be used)."""
    return _core.device("gpu") if gpu.is_available() else None


def device_count() -> int:
    """1 when a GPU adapter is available, else 0 (the engine drives one device)."""
    return gpu.device_count()


def current_device_index() -> int:
    """0 when a GPU is available (the only one), else -1 as in PyTorch without an accelerator."""
    return 0 if gpu.is_available() else -1


def set_device_index(device: Any) -> None:
    """Accepts index 0 (or the GPU device itself); any other index raises ValueError: the engine
    drives one GPU."""
    index = device.index if isinstance(device, _core.device) else device
    if index not in (None, 0):
        raise ValueError(f"accelerator.set_device_index: backprop_rs drives one GPU (index 0), got {device!r}")
    if not gpu.is_available():
        raise RuntimeError("accelerator.set_device_index: no GPU adapter is available")


def synchronize(device: Any = None) -> None:
    """Waits for the GPU's queued work (``bp.gpu.synchronize()``); nothing to wait for without a GPU."""
    if gpu.is_available():
        gpu.synchronize()
