"""The GPU backend: WGSL compute shaders run through wgpu (Vulkan, Metal, DX12 or GL).

Tensors move with ``t.to("gpu")`` (``"cuda"`` is accepted as an alias) or are created there with
``device="gpu"``. Work is queued and submitted in batches; it is waited for only when a result is
read (``.numpy()``, ``.item()``, ``.to("cpu")``) or here, by :func:`synchronize`.

On the device, int64 tensors are stored as int32 (values outside that range are refused when a
tensor is moved to the GPU) and float64 is not available (WGSL has no f64): moving or creating
a float64 tensor on the GPU raises RuntimeError; convert with ``.float()`` first.

The adapter is chosen once, on first use: ``WGPU_BACKEND`` (e.g. ``vulkan``) restricts the
backends, ``WGPU_POWER_PREF`` (``high``/``low``) the preference, and ``BACKPROP_ADAPTER`` picks
the first adapter whose name contains the given text (``BACKPROP_ADAPTER=llvmpipe`` selects
Mesa's lavapipe, a Vulkan device on the CPU).

On Vulkan, compiled pipelines are kept on disk between runs (``~/.cache/backprop_rs``, or
``$BACKPROP_PIPELINE_CACHE``; ``BACKPROP_PIPELINE_CACHE=off`` turns it off), so a program's
second start skips the driver's compilation; the file is written as pipelines are compiled and
at exit (:func:`save_pipeline_cache`).

>>> import backprop_rs as bp
>>> if bp.gpu.is_available():
...     x = bp.randn(4, 3, device="gpu")
...     y = (x @ x.T).relu().sum()
...     bp.gpu.synchronize()
"""

from __future__ import annotations

import atexit
from typing import Any, Dict, Optional

from . import _core

__all__ = ["is_available", "adapter_info", "synchronize", "empty_cache", "device_count", "counters",
           "save_pipeline_cache", "pipeline_cache_path"]


def save_pipeline_cache() -> None:
    """Writes pipelines compiled since the last write to the on-disk cache (a no-op when the GPU
    was never used, or the backend keeps no pipeline cache)."""
    _core._gpu_save_pipeline_cache()


def pipeline_cache_path() -> Optional[str]:
    """The on-disk pipeline cache file, or ``None`` (no GPU, not Vulkan, or turned off)."""
    return _core._gpu_pipeline_cache_path()


atexit.register(save_pipeline_cache)


def is_available() -> bool:
    """Whether a GPU adapter with compute shaders exists (opens the device on first call)."""
    return _core._gpu_is_available()


def adapter_info() -> Dict[str, Any]:
    """The adapter in use: ``name``, ``backend``, ``device_type``, ``driver``, ``driver_info``,
    ``vendor``, ``device`` and ``limits`` (a dict of the WebGPU limits the device was opened with).

    Raises RuntimeError, saying what was looked for, when no adapter is available.
    """
    return _core._gpu_adapter_info()


def synchronize() -> None:
    """Submits all queued GPU work and waits for it to finish; raises RuntimeError if the device
    reported an error (validation failure, out of memory, device lost)."""
    _core._gpu_synchronize()


def empty_cache() -> None:
    """Releases device buffers kept for reuse (live tensors are untouched)."""
    _core._gpu_empty_cache()


def device_count() -> int:
    """1 when a GPU is available, else 0 (the engine drives one device)."""
    return 1 if is_available() else 0


def counters() -> Dict[str, int]:
    """Counts of the host-side work the GPU backend has done since the process started:
    ``submits``, ``dispatches``, ``compute_passes``, ``bind_groups_created``, ``buffers_created``,
    ``uploads`` and ``readbacks``. Take differences around a training step to see what it costs
    (counts, unlike timings, mean the same on every device, a software one included).

    >>> import backprop_rs as bp
    >>> before = bp.gpu.counters()
    >>> after = bp.gpu.counters()
    >>> after["dispatches"] - before["dispatches"]
    0
    """
    return _core._gpu_counters()
