"""``torch.cuda``'s everyday names, answered truthfully: backprop_rs has no CUDA backend.

Programs written as ``device = "cuda" if torch.cuda.is_available() else "cpu"`` run and pick the
CPU, because :func:`is_available` is ``False``. The GPU that backprop_rs drives (any adapter wgpu
finds: Vulkan, Metal, DX12 or GL) is the device ``"gpu"``; see :mod:`backprop_rs.gpu` and
:mod:`backprop_rs.accelerator` (``torch.accelerator``'s names, which do report it). The device
string ``"cuda"`` (and ``"cuda:0"``) is accepted as an alias of ``"gpu"`` by ``bp.device``,
``Tensor.to`` and the ``device=`` arguments, and the resulting device reads ``type='gpu'``.

Seeding calls (``manual_seed``, ``manual_seed_all``, ``seed``, ``seed_all``) and ``empty_cache``
do nothing without CUDA, as in PyTorch; the calls that need a CUDA device (``current_device``,
``set_device``, ``get_device_name``, ``synchronize``...) raise RuntimeError saying so.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn

from . import amp as _amp

__all__ = [
    "is_available", "device_count", "is_initialized", "is_bf16_supported", "manual_seed", "manual_seed_all",
    "seed", "seed_all", "empty_cache", "current_device", "set_device", "get_device_name",
    "get_device_properties", "get_device_capability", "synchronize", "memory_allocated", "memory_reserved",
    "max_memory_allocated", "reset_peak_memory_stats",
]


def _no_cuda(what: str) -> NoReturn:
    raise RuntimeError(
        f"torch.cuda.{what}: backprop_rs has no CUDA backend (torch.cuda.is_available() is False). "
        "Its GPU is the wgpu device 'gpu': check backprop_rs.gpu.is_available() or "
        "backprop_rs.accelerator.is_available(), and use .to('gpu')"
    )


def is_available() -> bool:
    """``False``: backprop_rs has no CUDA backend (its GPU is ``"gpu"``, see ``bp.gpu``)."""
    return False


def device_count() -> int:
    """``0``: no CUDA devices (``bp.gpu.device_count()`` counts the wgpu GPU)."""
    return 0


def is_initialized() -> bool:
    """``False``: CUDA is never initialised."""
    return False


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """``False``: no CUDA, and no bfloat16 dtype."""
    return False


def manual_seed(seed: int) -> None:
    """Does nothing (no CUDA generators), as in PyTorch without CUDA; ``bp.manual_seed`` seeds the
    engine's generator, which the GPU uses too."""


def manual_seed_all(seed: int) -> None:
    """Does nothing (no CUDA generators), as in PyTorch without CUDA."""


def seed() -> None:
    """Does nothing (no CUDA generators)."""


def seed_all() -> None:
    """Does nothing (no CUDA generators)."""


def empty_cache() -> None:
    """Does nothing (no CUDA caching allocator); ``bp.gpu.empty_cache()`` frees the wgpu pool."""


def memory_allocated(device: Any = None) -> int:
    """``0``: no CUDA memory (``bp.memory_allocated('gpu')`` reports the wgpu GPU)."""
    return 0


def memory_reserved(device: Any = None) -> int:
    """``0``: no CUDA memory."""
    return 0


def max_memory_allocated(device: Any = None) -> int:
    """``0``: no CUDA memory."""
    return 0


def reset_peak_memory_stats(device: Any = None) -> None:
    """Does nothing (no CUDA memory)."""


def current_device() -> int:
    """Raises RuntimeError: there is no CUDA device."""
    _no_cuda("current_device")


def set_device(device: Any) -> None:
    """Raises RuntimeError: there is no CUDA device."""
    _no_cuda("set_device")


def get_device_name(device: Any = None) -> str:
    """Raises RuntimeError: there is no CUDA device (``bp.gpu.adapter_info()['name']`` names the GPU)."""
    _no_cuda("get_device_name")


def get_device_properties(device: Any = None) -> Any:
    """Raises RuntimeError: there is no CUDA device (see ``bp.gpu.adapter_info()``)."""
    _no_cuda("get_device_properties")


def get_device_capability(device: Any = None) -> Any:
    """Raises RuntimeError: there is no CUDA device."""
    _no_cuda("get_device_capability")


def synchronize(device: Any = None) -> None:
    """Raises RuntimeError: there is no CUDA device (``bp.gpu.synchronize()`` waits for the GPU)."""
    _no_cuda("synchronize")


def _cuda_autocast(enabled: bool = True, dtype: Any = None, cache_enabled: bool = True) -> _amp.autocast:
    """``torch.cuda.amp.autocast(...)``: ``bp.amp.autocast("cuda", ...)``."""
    return _amp.autocast("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


def _cuda_grad_scaler(init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                      growth_interval: int = 2000, enabled: bool = True) -> _amp.GradScaler:
    """``torch.cuda.amp.GradScaler(...)``: ``bp.amp.GradScaler("cuda", ...)``."""
    return _amp.GradScaler("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)


amp = types.ModuleType("backprop_rs.cuda.amp", "torch.cuda.amp: autocast and GradScaler, see backprop_rs.amp")
amp.autocast = _cuda_autocast  # type: ignore[attr-defined]
amp.GradScaler = _cuda_grad_scaler  # type: ignore[attr-defined]


def _cuda_custom_fwd(fwd: Any = None, *, cast_inputs: Any = None) -> Any:
    """``torch.cuda.amp.custom_fwd``: ``bp.amp.custom_fwd(device_type="cuda")``."""
    return _amp.custom_fwd(fwd, device_type="cuda", cast_inputs=cast_inputs)


def _cuda_custom_bwd(bwd: Any = None) -> Any:
    """``torch.cuda.amp.custom_bwd``: ``bp.amp.custom_bwd(device_type="cuda")``."""
    return _amp.custom_bwd(bwd, device_type="cuda")


amp.custom_fwd = _cuda_custom_fwd  # type: ignore[attr-defined]
amp.custom_bwd = _cuda_custom_bwd  # type: ignore[attr-defined]
sys.modules[amp.__name__] = amp  # so that `import torch.cuda.amp` works
