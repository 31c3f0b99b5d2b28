"""``torch.backends.cudnn``: there is no cuDNN in backprop_rs. The flags programs set
(``benchmark``, ``deterministic``, ``enabled``, ``allow_tf32``) are plain attributes: accepted,
stored, without effect (CPU reductions are deterministic for a given size anyway)."""

from __future__ import annotations

from typing import Optional

enabled = True
benchmark = False
deterministic = False
allow_tf32 = True
benchmark_limit = 10


def is_available() -> bool:
    """``False``: no cuDNN."""
    return False


def version() -> Optional[int]:
    """``None``: no cuDNN."""
    return None
