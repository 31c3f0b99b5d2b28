"""``torch.cpu``: the CPU as a device module (``torch.cpu.amp.autocast``, ``is_available``...)."""

from __future__ import annotations

import sys
import types
from typing import Any

from . import amp as _amp

__all__ = ["is_available", "device_count", "current_device", "synchronize", "amp"]


def is_available() -> bool:
    """``True``: the CPU is always there."""
    return True


def device_count() -> int:
    """``1``, as PyTorch."""
    return 1


def current_device() -> str:
    """``"cpu"``, as PyTorch."""
    return "cpu"


def synchronize(device: Any = None) -> None:
    """Does nothing: CPU kernels have finished when they return."""


def _cpu_autocast(enabled: bool = True, dtype: Any = None, cache_enabled: bool = True) -> _amp.autocast:
    """``torch.cpu.amp.autocast(enabled=True, dtype=torch.bfloat16, cache_enabled=True)``."""
    from . import _core

    return _amp.autocast("cpu", dtype=_core.bfloat16 if dtype is None else dtype, enabled=enabled,
                         cache_enabled=cache_enabled)


def _cpu_grad_scaler(init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                     growth_interval: int = 2000, enabled: bool = True) -> _amp.GradScaler:
    """``torch.cpu.amp.GradScaler(...)``: ``bp.amp.GradScaler("cpu", ...)``."""
    return _amp.GradScaler("cpu", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


amp = types.ModuleType("backprop_rs.cpu.amp", "torch.cpu.amp: autocast and GradScaler, see backprop_rs.amp")
amp.autocast = _cpu_autocast  # type: ignore[attr-defined]
amp.GradScaler = _cpu_grad_scaler  # type: ignore[attr-defined]
sys.modules[amp.__name__] = amp  # so that `import torch.cpu.amp` works
