"""``backprop_rs.data.DataLoader``: :class:`backprop_rs.utils.data.DataLoader` plus the
keyword-only ``seed`` that the feeding modes (:func:`backprop_rs.data.loader_for`) and the CLI
use for a reproducible shuffle independent of the global generator."""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import numpy as np

from ..generator import Generator
from ..utils.data import DataLoader as _DataLoader
from ..utils.data import default_collate
from ..utils.data.sampler import _ArraySampler

__all__ = ["DataLoader", "default_collate"]


class _SeededShuffle(_ArraySampler):
    """Pass ``k`` is NumPy's ``default_rng(seed + k).permutation(n)``: the order the CLI's
    checkpoints were trained with, kept so that a given ``--seed`` still means the same run."""

    def __init__(self, data_source: Any, seed: int) -> None:
        self.data_source = data_source
        self.seed = int(seed)
        self.passes = 0

    def _indices(self) -> np.ndarray:
        perm = np.random.default_rng(self.seed + self.passes).permutation(len(self.data_source))
        self.passes += 1
        return perm.astype(np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class DataLoader(_DataLoader):
    """PyTorch's ``DataLoader`` (same arguments, same batches) with one addition: ``seed=s``
    with ``shuffle=True`` draws epoch ``k``'s order from NumPy's ``default_rng(s + k)``, so the
    order depends on ``s`` alone and not on what else used the global generator. Without
    ``seed`` it shuffles exactly like :class:`backprop_rs.utils.data.DataLoader`.

    ``epoch`` counts the passes started."""

    def __init__(self, dataset: Any, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Optional[Any] = None, batch_sampler: Optional[Any] = None, num_workers: int = 0,
                 collate_fn: Optional[Callable[[List[Any]], Any]] = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Optional[Callable[[int], None]] = None,
                 multiprocessing_context: Any = None, generator: Optional[Generator] = None, *,
                 prefetch_factor: Optional[int] = None, persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True, seed: Optional[int] = None) -> None:
        if seed is not None and shuffle:
            if sampler is not None or batch_sampler is not None:
                raise ValueError(
                    "seed chooses the shuffled order: it is mutually exclusive with sampler and batch_sampler")
            if generator is not None:
                raise ValueError("seed and generator both choose the shuffled order; pass one of them")
            sampler, shuffle = _SeededShuffle(dataset, seed), False
        super().__init__(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers, collate_fn, pin_memory,
                         drop_last, timeout, worker_init_fn, multiprocessing_context, generator,
                         prefetch_factor=prefetch_factor, persistent_workers=persistent_workers,
                         pin_memory_device=pin_memory_device, in_order=in_order)
        self.seed = seed
        self.epoch = 0

    def __iter__(self) -> Any:
        it = super().__iter__()
        self.epoch += 1
        return it
