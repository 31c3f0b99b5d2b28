"""``DataLoader``: batches of a dataset, optionally shuffled (reproducibly) each epoch."""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Sequence

import numpy as np

from .. import _core
from .._core import Tensor
from .dataset import Dataset, TensorDataset


def default_collate(samples: Sequence[Any]) -> Any:
    """Stacks a list of samples: tensors along a new dim 0, numbers into a tensor, tuples
    element-wise."""
    first = samples[0]
    if isinstance(first, Tensor):
        return _core.stack(list(samples), 0)
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    return _core.tensor(list(samples))


class DataLoader:
    """Iterates over ``dataset`` in batches of ``batch_size``.

    ``shuffle=True`` draws a new order every epoch: from NumPy's generator seeded with
    ``seed + epoch`` when ``seed`` is given, else from backprop_rs's global generator (so
    ``manual_seed`` fixes it). ``drop_last`` drops a final short batch. For a ``TensorDataset``
    a batch is gathered with one ``index_select`` per tensor instead of stacking samples.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 seed: Optional[int] = None, collate_fn=None) -> None:
        if batch_size is None or batch_size < 1:
            raise ValueError(f"batch_size should be a positive integer, got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last, self.seed = dataset, int(batch_size), shuffle, drop_last, seed
        self.collate_fn = collate_fn or default_collate
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self) -> Optional[Tensor]:
        n = len(self.dataset)
        if not self.shuffle:
            return None
        if self.seed is not None:
            perm = np.random.default_rng(self.seed + self.epoch).permutation(n)
            return _core.tensor(perm)
        return _core.randperm(n)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = self._order()
        self.epoch += 1
        fast = isinstance(self.dataset, TensorDataset)
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            if self.drop_last and stop - start < self.batch_size:
                break
            if fast:
                if order is None and not self.shuffle:
                    yield tuple(t[start:stop] for t in self.dataset.tensors)
                else:
                    idx = order[start:stop]
                    # the order lives on the CPU; each tensor gathers with an index on its own device
                    yield tuple(t.index_select(0, idx if t.device == idx.device else idx.to(t.device)) for t in self.dataset.tensors)
            else:
                ids: List[int] = list(range(start, stop)) if order is None else order[start:stop].tolist()
                yield self.collate_fn([self.dataset[i] for i in ids])
