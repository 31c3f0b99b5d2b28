"""``torch.backends.openmp``: backprop_rs threads with rayon, not OpenMP."""

from __future__ import annotations


def is_available() -> bool:
    """``False``: the CPU kernels use rayon threads, not OpenMP."""
    return False
