"""The DataLoader's internals, laid out as ``torch.utils.data._utils``: ``collate`` (batching
rules), ``fetch`` (samples from indices) and ``worker`` (the worker-process loop)."""

from . import collate, fetch, worker

__all__ = ["collate", "fetch", "worker"]
