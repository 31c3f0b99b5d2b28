"""``bp.nn.parallel``: data parallelism across processes (``DistributedDataParallel``, over
:mod:`backprop_rs.distributed`)."""

from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
