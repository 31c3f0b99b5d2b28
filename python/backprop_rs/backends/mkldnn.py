"""``torch.backends.mkldnn``: no oneDNN in backprop_rs (GEMM comes from the ``gemm`` crate)."""

from __future__ import annotations

enabled = False


def is_available() -> bool:
    """``False``: no oneDNN."""
    return False
