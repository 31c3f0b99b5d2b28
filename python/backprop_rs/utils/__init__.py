"""Utilities with ``torch.utils``'s names: :mod:`backprop_rs.utils.data` (datasets, samplers,
``DataLoader``) and :mod:`backprop_rs.utils.hooks` (``RemovableHandle``)."""

from . import data, hooks

__all__ = ["data", "hooks"]
