"""``backprop_rs.backends.wgpu``: backprop_rs's own GPU backend (WGSL shaders through wgpu)."""

from __future__ import annotations

from .. import gpu


def is_available() -> bool:
    """Whether a wgpu adapter with compute shaders exists (``bp.gpu.is_available()``)."""
    return gpu.is_available()


def is_built() -> bool:
    """``True``: the extension is always built with the GPU backend."""
    return True
