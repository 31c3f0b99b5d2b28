"""``DataLoader``: iterates a dataset in batches, in the main process or in worker processes,
with ``torch.utils.data.DataLoader``'s arguments, defaults, validation and order.

How a batch is made: the index sampler (a ``BatchSampler`` over ``sampler``, a user
``batch_sampler``, or ``sampler`` alone when ``batch_size=None``) gives the indices; a fetcher
reads the samples and ``collate_fn`` batches them. With ``num_workers > 0`` the main process
hands index lists round robin to worker processes (``prefetch_factor`` batches ahead per worker)
and yields the results in the order it handed them out, so a map-style dataset gives exactly the
batches of ``num_workers=0``.

The fast path: for a ``TensorDataset`` (or a ``Subset`` of one) with the default collate
function in the main process, each batch is gathered with one ``index_select`` per tensor (one
clone of a slice when the order is sequential) instead of indexing and stacking sample by sample;
the batches equal ``default_collate`` of the samples. The training benchmarks rely on it.
"""

from __future__ import annotations

import atexit
import itertools
import multiprocessing
import multiprocessing.context
import os
import queue
import warnings
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ... import _core
from ..._core import Tensor
from ...generator import Generator, _draw_seed
from ._utils import worker as _worker
from ._utils.collate import default_collate, default_convert
from ._utils.fetch import _DatasetKind
from .dataset import IterableDataset, Subset, TensorDataset
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
    _ArraySampler,
)

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]

get_worker_info = _worker.get_worker_info


class _InfiniteConstantSampler(Sampler[None]):
    """The sampler of an IterableDataset: ``None`` forever (the dataset decides when to stop)."""

    def __iter__(self) -> Iterator[None]:
        while True:
            yield None


_python_exiting = False


@atexit.register
def _note_exit() -> None:
    global _python_exiting
    _python_exiting = True


def _cpu_budget() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class DataLoader:
    """Batches of ``dataset``, as ``torch.utils.data.DataLoader``.

    Args (PyTorch's, in its order): ``batch_size`` (``None`` turns batching off: samples pass
    through ``default_convert``), ``shuffle`` (a new random order every epoch, from
    ``generator`` or the global generator), ``sampler`` / ``batch_sampler`` (custom orders;
    mutually exclusive with ``shuffle`` and, for ``batch_sampler``, with ``batch_size``,
    ``drop_last``), ``num_workers`` (worker processes; 0 loads in the main process),
    ``collate_fn``, ``pin_memory`` (accepted; there is no pinned memory here, so it warns and
    does nothing), ``drop_last``, ``timeout`` (seconds to wait for a worker's batch),
    ``worker_init_fn(worker_id)``, ``multiprocessing_context`` (a start method name or context),
    ``generator`` (a :class:`backprop_rs.Generator`); keyword-only ``prefetch_factor`` (batches
    in flight per worker, default 2 with workers), ``persistent_workers`` (keep the workers
    between epochs), ``pin_memory_device`` and ``in_order`` (accepted; batches always come in
    order).

    >>> import backprop_rs as bp
    >>> ds = TensorDataset(bp.arange(10).float(), bp.arange(10))
    >>> [b[1].tolist() for b in DataLoader(ds, batch_size=4)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    dataset: Any
    batch_size: Optional[int]
    num_workers: int
    pin_memory: bool
    drop_last: bool
    timeout: float
    sampler: Any
    prefetch_factor: Optional[int]
    _iterator: Optional["_BaseDataLoaderIter"]
    __initialized = False

    def __init__(self, dataset: Any, batch_size: Optional[int] = 1, shuffle: Optional[bool] = None,
                 sampler: Optional[Any] = None, batch_sampler: Optional[Any] = None, num_workers: int = 0,
                 collate_fn: Optional[Callable[[List[Any]], Any]] = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Optional[Callable[[int], None]] = None,
                 multiprocessing_context: Any = None, generator: Optional[Generator] = None, *,
                 prefetch_factor: Optional[int] = None, persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True) -> None:
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError(
                "prefetch_factor option could only be specified in multiprocessing.let num_workers > 0 to enable "
                "multiprocessing, otherwise set prefetch_factor to None."
            )
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if generator is not None and not isinstance(generator, Generator):
            raise TypeError(f"generator must be a backprop_rs.Generator or None, got {type(generator).__name__}")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.in_order = in_order
        if pin_memory:
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned "
                          "memory won't be used.", stacklevel=2)

        if isinstance(dataset, IterableDataset):
            self._dataset_kind = _DatasetKind.Iterable
            if shuffle not in {False, None}:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(
                    f"DataLoader with IterableDataset: expected unspecified sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError(
                    "DataLoader with IterableDataset: expected unspecified batch_sampler option, "
                    f"but got batch_sampler={batch_sampler}"
                )
        else:
            shuffle = bool(shuffle)
            self._dataset_kind = _DatasetKind.Map

        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")

        if batch_sampler is not None:
            # auto-collation with a user batch_sampler
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None:
            # no auto-collation
            if drop_last:
                raise ValueError(
                    "batch_size=None option disables auto-batching and is mutually exclusive with drop_last")

        if sampler is None:
            if self._dataset_kind == _DatasetKind.Iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)

        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator

        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self.persistent_workers = persistent_workers

        self.__initialized = True
        self._IterableDataset_len_called: Optional[int] = None
        self._iterator = None
        self.check_worker_number_rationality()

    # ------------------------------------------------------------------ PyTorch's attribute rules

    @property
    def multiprocessing_context(self) -> Any:
        return self.__multiprocessing_context

    @multiprocessing_context.setter
    def multiprocessing_context(self, ctx: Any) -> None:
        if ctx is not None:
            if self.num_workers > 0:
                if isinstance(ctx, str):
                    valid = multiprocessing.get_all_start_methods()
                    if ctx not in valid:
                        raise ValueError(
                            f"multiprocessing_context option should specify a valid start method in {valid!r}, "
                            f"but got multiprocessing_context={ctx!r}"
                        )
                    ctx = multiprocessing.get_context(ctx)
                if not isinstance(ctx, multiprocessing.context.BaseContext):
                    raise TypeError(
                        "multiprocessing_context option should be a valid context object or a string specifying the "
                        f"start method, but got multiprocessing_context={ctx}"
                    )
            else:
                raise ValueError(
                    "multiprocessing_context can only be used with multi-process loading (num_workers > 0), but got "
                    f"num_workers={self.num_workers}"
                )
        self.__multiprocessing_context = ctx

    def __setattr__(self, attr: str, val: Any) -> None:
        if self.__initialized and attr in ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
                                           "persistent_workers"):
            raise ValueError(f"{attr} attribute should not be set after {self.__class__.__name__} is initialized")
        super().__setattr__(attr, val)

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self) -> Any:
        # what the iterator draws indices from: batches of indices, or single indices without auto-collation
        return self.batch_sampler if self._auto_collation else self.sampler

    # ------------------------------------------------------------------ iteration

    def _get_iterator(self) -> "_BaseDataLoaderIter":
        if self.num_workers == 0:
            return _SingleProcessDataLoaderIter(self)
        return _MultiProcessingDataLoaderIter(self)

    def __iter__(self) -> "_BaseDataLoaderIter":
        if self.persistent_workers and self.num_workers > 0:
            if self._iterator is None:
                self._iterator = self._get_iterator()
            else:
                self._iterator._reset(self)
            return self._iterator
        return self._get_iterator()

    def __len__(self) -> int:
        if self._dataset_kind == _DatasetKind.Iterable:
            # the dataset's own length (it may be a guess); a warning fires if iteration runs past it
            length = self._IterableDataset_len_called = len(self.dataset)
            if self.batch_size is not None:
                length = length // self.batch_size if self.drop_last else -(-length // self.batch_size)
            return length
        return len(self._index_sampler)

    def check_worker_number_rationality(self) -> None:
        """Warns when more workers are asked for than this process may run on CPUs."""
        if self.num_workers == 0:
            return
        budget = _cpu_budget()
        if self.num_workers > budget:
            warnings.warn(
                f"This DataLoader will create {self.num_workers} worker processes in total. Our suggested max number "
                f"of worker in current system is {budget}, which is smaller than what this DataLoader is going to "
                "create. Please be aware that excessive worker creation might get DataLoader running slow or even "
                "freeze, lower the worker number to avoid potential slowness/freeze if necessary.",
                stacklevel=3,
            )


class _BaseDataLoaderIter:
    def __init__(self, loader: DataLoader) -> None:
        self._dataset = loader.dataset
        self._dataset_kind = loader._dataset_kind
        self._IterableDataset_len_called = loader._IterableDataset_len_called
        self._auto_collation = loader._auto_collation
        self._drop_last = loader.drop_last
        self._index_sampler = loader._index_sampler
        self._num_workers = loader.num_workers
        self._prefetch_factor = loader.prefetch_factor
        self._timeout = loader.timeout
        self._collate_fn = loader.collate_fn
        self._persistent_workers = loader.persistent_workers
        self._generator = loader.generator
        self._sampler_iter: Optional[Iterator[Any]] = None
        self._num_yielded = 0
        # One seed per iterator, drawn from the loader's generator (or the global one) before the
        # sampler draws its order, as PyTorch does: workers are seeded from it, and since the
        # single-process path draws it too, both consume the generator alike and give one order.
        self._base_seed = _draw_seed(loader.generator)
        self._reset(loader, first_iter=True)

    def __iter__(self) -> "_BaseDataLoaderIter":
        return self

    def _reset(self, loader: DataLoader, first_iter: bool = False) -> None:
        self._sampler_iter = iter(self._index_sampler)
        self._num_yielded = 0
        self._IterableDataset_len_called = loader._IterableDataset_len_called

    def _next_index(self) -> Any:
        return next(self._sampler_iter)  # type: ignore[arg-type]

    def _next_data(self) -> Any:
        raise NotImplementedError

    def __next__(self) -> Any:
        data = self._next_data()
        self._num_yielded += 1
        if (self._dataset_kind == _DatasetKind.Iterable and self._IterableDataset_len_called is not None
                and self._num_yielded > self._IterableDataset_len_called):
            warn_msg = (f"Length of IterableDataset {self._dataset} was reported to be "
                        f"{self._IterableDataset_len_called} (when accessing len(dataloader)), but "
                        f"{self._num_yielded} samples have been fetched. ")
            if self._num_workers > 0:
                warn_msg += ("For multiprocessing data-loading, this could be caused by not properly configuring the "
                             "IterableDataset replica at each worker. Please see "
                             "https://pytorch.org/docs/stable/data.html#torch.utils.data.IterableDataset for examples.")
            warnings.warn(warn_msg, stacklevel=2)
        return data

    def __len__(self) -> int:
        return len(self._index_sampler)


# ---------------------------------------------------------------------------- the single-process path

def _tensor_view(dataset: Any) -> Optional[Tuple[TensorDataset, Optional[np.ndarray]]]:
    """``(base, index_map)`` when ``dataset`` is a plain TensorDataset or a chain of plain
    Subsets over one (``index_map[i]`` is the base index of sample ``i``); None otherwise."""
    index_map: Optional[np.ndarray] = None
    while isinstance(dataset, Subset) and _plain_subset(type(dataset)):
        ind = np.asarray(dataset.indices)
        if ind.dtype.kind not in "iu" or ind.ndim != 1:
            return None
        index_map = ind.astype(np.int64) if index_map is None else ind.astype(np.int64)[index_map]
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset):
        return None
    cls = type(dataset)
    if cls.__getitem__ is not TensorDataset.__getitem__ or getattr(cls, "__getitems__", None) is not None:
        return None  # a subclass that changes what a sample is
    if index_map is not None:
        n = len(dataset)
        if index_map.size and (index_map.min() < -n or index_map.max() >= n):
            return None  # let sample-by-sample indexing raise the usual IndexError
        index_map = np.where(index_map < 0, index_map + n, index_map)
    return dataset, index_map


def _plain_subset(cls: type) -> bool:
    return cls.__getitem__ is Subset.__getitem__ and cls.__getitems__ is Subset.__getitems__


# samplers whose pass is exactly their ``_indices()`` array
_ARRAY_ITERS = {SequentialSampler.__iter__, _ArraySampler.__iter__, SubsetRandomSampler.__iter__,
                RandomSampler.__iter__, WeightedRandomSampler.__iter__}


class _SingleProcessDataLoaderIter(_BaseDataLoaderIter):
    def __init__(self, loader: DataLoader) -> None:
        super().__init__(loader)
        self._dataset_fetcher = _DatasetKind.create_fetcher(
            self._dataset_kind, self._dataset, self._auto_collation, self._collate_fn, self._drop_last)
        view = None
        if self._dataset_kind == _DatasetKind.Map and self._auto_collation and self._collate_fn is default_collate:
            view = _tensor_view(self._dataset)
        self._fast = self._fast_batches(*view) if view is not None else None

    def _fast_batches(self, base: TensorDataset, index_map: Optional[np.ndarray]) -> Iterator[List[Tensor]]:
        """Batches of a TensorDataset gathered tensor by tensor (a generator: it draws the order
        when the first batch is asked for, like the sampler it replaces)."""
        tensors = base.tensors
        bs = self._index_sampler
        sampler = getattr(bs, "sampler", None)
        if type(bs) is BatchSampler and isinstance(sampler, _ArraySampler) and type(sampler).__iter__ in _ARRAY_ITERS:
            size = bs.batch_size
            if type(sampler) is SequentialSampler and index_map is None:
                n = len(sampler)
                stop = n - n % size if bs.drop_last else n
                for start in range(0, stop, size):
                    # a clone: a batch never aliases the dataset, as PyTorch's stacked batches don't
                    yield [t[start:start + size].clone() for t in tensors]
                return
            order = sampler._indices()
            stop = len(order) - len(order) % size if bs.drop_last else len(order)
            for start in range(0, stop, size):
                yield self._gather(tensors, order[start:start + size], index_map)
            return
        n = len(self._dataset)
        for ids in self._sampler_iter:  # type: ignore[union-attr]
            yield self._gather(tensors, _as_index_array(ids, n), index_map)

    @staticmethod
    def _gather(tensors: Sequence[Tensor], ids: np.ndarray, index_map: Optional[np.ndarray]) -> List[Tensor]:
        if index_map is not None:
            ids = index_map[ids]
        idx = _core.from_numpy(np.ascontiguousarray(ids, dtype=np.int64))
        # the index lives on the CPU; each tensor gathers with an index on its own device
        return [t.index_select(0, idx if t.device == idx.device else idx.to(t.device)) for t in tensors]

    def _next_data(self) -> Any:
        if self._fast is not None:
            return next(self._fast)
        index = self._next_index()
        return self._dataset_fetcher.fetch(index)


def _as_index_array(ids: Any, n: int) -> np.ndarray:
    """A user batch of indices as int64, negatives wrapped as ``t[i]`` would; bad indices raise
    the IndexError that sample-by-sample indexing would."""
    a = np.asarray(list(ids))
    if a.dtype.kind not in "iu" or a.ndim != 1:
        raise TypeError(f"a batch of indices for a TensorDataset must be integers, got {list(ids)!r}")
    bad = (a < -n) | (a >= n)
    if bad.any():
        raise IndexError(f"index {int(a[bad][0])} is out of bounds for dimension 0 with size {n}")
    return np.where(a < 0, a + n, a).astype(np.int64)


# ---------------------------------------------------------------------------- worker processes

class _MultiProcessingDataLoaderIter(_BaseDataLoaderIter):
    """Hands index lists to worker processes round robin and yields their batches in order."""

    def __init__(self, loader: DataLoader) -> None:
        self._shutdown = True  # nothing to shut down until the workers exist
        self._workers: List[Any] = []
        # a forked child (a worker of another loader) inherits this object; only its creator may
        # shut its workers down
        self._owner_pid = os.getpid()
        super().__init__(loader)  # draws the base seed (used just below) and starts the sampler
        assert self._num_workers > 0 and self._prefetch_factor is not None
        ctx = loader.multiprocessing_context or multiprocessing
        self._worker_init_fn = loader.worker_init_fn
        self._worker_result_queue = ctx.Queue()
        self._workers_done_event = ctx.Event()
        self._index_queues: List[Any] = []
        self._shutdown = False
        for i in range(self._num_workers):
            index_queue = ctx.Queue()
            index_queue.cancel_join_thread()  # never block our exit on undelivered indices
            w = ctx.Process(
                target=_worker._worker_loop,
                args=(self._dataset_kind, self._dataset, index_queue, self._worker_result_queue,
                      self._workers_done_event, self._auto_collation, self._collate_fn, self._drop_last,
                      self._base_seed, self._worker_init_fn, i, self._num_workers),
                daemon=True,
            )
            w.start()
            self._index_queues.append(index_queue)
            self._workers.append(w)
        self._start_epoch(first_iter=True)

    def _reset(self, loader: DataLoader, first_iter: bool = False) -> None:
        super()._reset(loader, first_iter)
        if not first_iter:
            self._start_epoch(first_iter=False)

    def _start_epoch(self, first_iter: bool) -> None:
        self._send_idx = 0  # next batch index to hand out
        self._rcvd_idx = 0  # next batch index to yield
        # batch index -> (worker_id,) while in flight, (worker_id, data) once it arrived early
        self._task_info: Dict[int, Tuple[Any, ...]] = {}
        self._tasks_outstanding = 0
        self._workers_status = [True] * self._num_workers
        self._worker_queue_idx_cycle = itertools.cycle(range(self._num_workers))
        if not first_iter:
            # persistent workers: restart their fetchers, and drain anything left from the last
            # epoch (each worker's ack comes after all its earlier results)
            for q in self._index_queues:
                q.put(_worker._ResumeIteration())
            remaining = self._num_workers
            while remaining > 0:
                idx, data = self._get_data()
                if isinstance(idx, _worker._ResumeIteration):
                    remaining -= 1
        for _ in range(self._prefetch_factor * self._num_workers):  # type: ignore[operator]
            self._try_put_index()

    def _try_put_index(self) -> None:
        try:
            index = self._next_index()
        except StopIteration:
            return
        for _ in range(self._num_workers):  # the next worker still active, if any
            worker_queue_idx = next(self._worker_queue_idx_cycle)
            if self._workers_status[worker_queue_idx]:
                break
        else:
            return
        self._index_queues[worker_queue_idx].put((self._send_idx, index))
        self._task_info[self._send_idx] = (worker_queue_idx,)
        self._tasks_outstanding += 1
        self._send_idx += 1

    def _try_get_data(self, timeout: float) -> Tuple[bool, Any]:
        try:
            return True, _worker._loads(self._worker_result_queue.get(timeout=timeout))
        except queue.Empty:
            failed = [w for i, w in enumerate(self._workers) if self._workers_status[i] and not w.is_alive()]
            if failed:
                pids = ", ".join(str(w.pid) for w in failed)
                self._shutdown_workers()
                raise RuntimeError(f"DataLoader worker (pid(s) {pids}) exited unexpectedly") from None
            return False, None

    def _get_data(self) -> Tuple[Any, Any]:
        if self._timeout > 0:
            ok, data = self._try_get_data(self._timeout)
            if ok:
                return data
            raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds")
        while True:
            ok, data = self._try_get_data(_worker.MP_STATUS_CHECK_INTERVAL)
            if ok:
                return data

    def _next_data(self) -> Any:
        while True:
            # skip the batches handed to workers that ended (iterable datasets) and never came
            while self._rcvd_idx < self._send_idx:
                info = self._task_info.get(self._rcvd_idx)
                if info:
                    if len(info) == 2 or self._workers_status[info[0]]:
                        break
                    del self._task_info[self._rcvd_idx]
                self._rcvd_idx += 1
            else:
                if not self._persistent_workers:
                    self._shutdown_workers()
                raise StopIteration

            if len(self._task_info[self._rcvd_idx]) == 2:  # it arrived earlier, out of order
                data = self._task_info.pop(self._rcvd_idx)[1]
                self._rcvd_idx += 1
                return self._process_data(data)

            if self._shutdown or self._tasks_outstanding <= 0:
                raise RuntimeError("DataLoader iterator is broken: no batch in flight (the workers were shut down)")
            idx, data = self._get_data()
            self._tasks_outstanding -= 1
            if self._dataset_kind == _DatasetKind.Iterable and isinstance(data, _worker._IterableDatasetStopIteration):
                if self._persistent_workers:
                    self._workers_status[data.worker_id] = False
                else:
                    self._mark_worker_as_unavailable(data.worker_id)
                self._try_put_index()
                continue
            if idx != self._rcvd_idx:
                if idx in self._task_info:  # else a stale result of an abandoned epoch
                    self._task_info[idx] += (data,)
                continue
            del self._task_info[idx]
            self._rcvd_idx += 1
            return self._process_data(data)

    def _process_data(self, data: Any) -> Any:
        self._try_put_index()
        if isinstance(data, _worker.ExceptionWrapper):
            data.reraise()
        return data

    def _mark_worker_as_unavailable(self, worker_id: int, shutdown: bool = False) -> None:
        q = self._index_queues[worker_id]
        q.put(None)  # the worker exits when it reads this
        self._workers_status[worker_id] = False

    def _shutdown_workers(self) -> None:
        if self._shutdown or os.getpid() != self._owner_pid or _python_exiting:
            # at interpreter exit multiprocessing terminates the (daemonic) workers itself
            return
        self._shutdown = True
        try:
            self._workers_done_event.set()
            for i in range(len(self._workers)):
                if self._persistent_workers or self._workers_status[i]:
                    self._mark_worker_as_unavailable(i, shutdown=True)
            for w in self._workers:
                w.join(timeout=_worker.MP_STATUS_CHECK_INTERVAL)
            for q in self._index_queues:
                q.cancel_join_thread()
                q.close()
            self._worker_result_queue.cancel_join_thread()
            self._worker_result_queue.close()
        finally:
            for w in self._workers:
                if w.is_alive():
                    w.terminate()

    def __del__(self) -> None:
        self._shutdown_workers()

