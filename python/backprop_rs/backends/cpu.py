"""``torch.backends.cpu``: the CPU backend's SIMD level."""

from __future__ import annotations

from .. import _core


def get_cpu_capability() -> str:
    """The SIMD level the CPU kernels dispatch to (e.g. ``"AVX2"``), as the engine reports it."""
    info = _core._cpu_info()
    return str(info.get("simd", info)).upper() if isinstance(info, dict) else str(info)
