"""Utilities with ``torch.utils``'s names: :mod:`backprop_rs.utils.data` (datasets, samplers,
``DataLoader``), :mod:`backprop_rs.utils.hooks` (``RemovableHandle``) and
:mod:`backprop_rs.utils.dlpack` (``from_dlpack`` / ``to_dlpack``)."""

from . import data, dlpack, hooks

__all__ = ["data", "dlpack", "hooks"]
