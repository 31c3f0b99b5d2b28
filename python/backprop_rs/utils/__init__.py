"""Utilities with ``torch.utils``'s names: :mod:`backprop_rs.utils.data` (datasets, samplers,
``DataLoader``), :mod:`backprop_rs.utils.hooks` (``RemovableHandle``) and
:mod:`backprop_rs.utils.dlpack` (``from_dlpack`` / ``to_dlpack``) and
:mod:`backprop_rs.utils.checkpoint` (activation checkpointing)."""

from . import checkpoint, data, dlpack, hooks

__all__ = ["checkpoint", "data", "dlpack", "hooks"]
