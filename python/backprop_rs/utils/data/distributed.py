"""``DistributedSampler``: each rank's share of a data set, as ``torch.utils.data.distributed``.

Every rank draws the same permutation (seeded with ``seed + epoch``; call ``set_epoch`` at the
start of each epoch for a new one), pads it by repeating its head until it divides evenly
(or, with ``drop_last``, cuts the tail), and keeps every ``num_replicas``-th index starting at
its ``rank``. So the ranks' shares are disjoint (apart from the padding), the same length, and
batch k of all ranks together is batch k of one process reading the permutation with a batch
``num_replicas`` times as large. The permutation comes from :class:`backprop_rs.Generator`
(NumPy's PCG64), so it differs from PyTorch's for the same seed.
"""

from __future__ import annotations

import math
from typing import Optional, Sized

import numpy as np

from ...generator import Generator
from .sampler import _ArraySampler

__all__ = ["DistributedSampler"]


class DistributedSampler(_ArraySampler):
    """Restricts loading to this rank's share of ``dataset``.

    ``num_replicas`` and ``rank`` default to the default process group's world size and rank.

    >>> s = DistributedSampler(range(10), num_replicas=3, rank=1, shuffle=False)
    >>> list(s)
    [1, 4, 7, 0]
    """

    def __init__(self, dataset: Sized, num_replicas: Optional[int] = None, rank: Optional[int] = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        if num_replicas is None or rank is None:
            from ... import distributed as dist

            if not dist.is_available():
                raise RuntimeError("Requires distributed package to be available")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if rank >= num_replicas or rank < 0:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        self.drop_last = drop_last
        n = len(dataset)
        if self.drop_last and n % self.num_replicas != 0:
            # the tail is dropped so every rank gets the same number of samples
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas
        self.shuffle = shuffle
        self.seed = seed

    def _indices(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            g = Generator().manual_seed(self.seed + self.epoch)
            indices = g._rng.permutation(n).astype(np.int64)
        else:
            indices = np.arange(n, dtype=np.int64)
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad > 0:
                indices = np.concatenate([indices, np.resize(indices, pad)]) if len(indices) else indices
        else:
            indices = indices[:self.total_size]
        assert len(indices) == self.total_size
        share = indices[self.rank:self.total_size:self.num_replicas]
        assert len(share) == self.num_samples
        return share

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch, which seeds the shuffle: all ranks must call it with the same value
        at the start of each epoch, or every epoch draws the same order."""
        self.epoch = epoch
