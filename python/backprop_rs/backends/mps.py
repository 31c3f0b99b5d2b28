"""``torch.backends.mps``: backprop_rs has no MPS backend; an Apple GPU is reached through wgpu's
Metal backend as the device ``"gpu"`` (``bp.gpu.is_available()``)."""

from __future__ import annotations


def is_available() -> bool:
    """``False``: no MPS backend (see ``bp.gpu.is_available()`` for the wgpu GPU)."""
    return False


def is_built() -> bool:
    """``False``: not built with MPS."""
    return False
