"""``DistributedDataParallel``: one replica of the model per process, gradients averaged by
all-reduce during backward, as ``torch.nn.parallel.DistributedDataParallel``.

Each rank runs the same model on its own shard of the batch; after ``loss.backward()`` every
replica holds the gradient of the mean loss over the whole (global) batch, so identical
optimiser steps keep the replicas identical. N processes on per-rank batch b therefore train
like one process on batch N*b (to float32 reduction-order rounding).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np

from ... import _core
from ..._core import Tensor
from ...distributed import staging
from ...distributed.process_group import ProcessGroup, _resolve
from ..module import Module
from .reducer import DEFAULT_FIRST_BUCKET_BYTES, Reducer, compute_bucket_assignment_by_size

__all__ = ["DistributedDataParallel"]


def _find_tensors(obj: Any) -> Iterator[Tensor]:
    """Every tensor inside a forward's output (tensors, lists, tuples, dicts)."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _find_tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _find_tensors(o)


class DistributedDataParallel(Module):
    """Wraps ``module`` for data-parallel training over the default process group.

    At construction the ranks check that their parameters agree (names, dtypes, shapes) and
    rank 0's parameters and buffers are broadcast to all, so every replica starts the same.
    In ``forward``, buffers (BatchNorm statistics, say) are broadcast from rank 0 when
    ``broadcast_buffers``; in backward, gradients are averaged bucket by bucket as they are
    produced (see :mod:`.reducer`): ``bucket_cap_mb`` caps a bucket (25 MiB by default, with a
    1 MiB first bucket), ``gradient_as_bucket_view`` makes CPU ``.grad`` tensors views of the
    buckets (no copy back), ``find_unused_parameters`` lets some parameters go without gradients
    in an iteration. ``no_sync()`` skips the all-reduce to accumulate gradients locally.
    ``module`` is the wrapped model: save ``ddp.module.state_dict()`` for keys without the
    ``module.`` prefix.

    ``device_ids``, ``output_device`` and ``dim`` exist for PyTorch's signature (the model
    stays on its device; there is no scatter of inputs). Not supported: ``static_graph=True``,
    communication hooks, uneven inputs (``join``).

    >>> # under mpirun, after bp.distributed.init_process_group("mpi"):
    >>> # model = DistributedDataParallel(bp.nn.Linear(4, 2))
    >>> # loss = model(x).sum(); loss.backward()   # .grad averaged over the ranks
    """

    def __init__(self, module: Module, device_ids: Optional[List[Any]] = None, output_device: Any = None, dim: int = 0,
                 broadcast_buffers: bool = True, init_sync: bool = True, process_group: Optional[ProcessGroup] = None,
                 bucket_cap_mb: Optional[float] = None, find_unused_parameters: bool = False,
                 check_reduction: bool = False, gradient_as_bucket_view: bool = False, static_graph: bool = False) -> None:
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel wraps a bp.nn.Module, got {type(module).__name__}")
        if static_graph:
            raise NotImplementedError("static_graph=True is not supported by backprop_rs's DistributedDataParallel")
        if device_ids is not None and len(device_ids) > 1:
            raise ValueError("device_ids can only be None or contain a single element.")
        pg = _resolve(process_group)
        self.process_group = pg
        self.module = module
        self.dim = dim
        self.device_ids = None
        self.output_device = None
        self.broadcast_buffers = broadcast_buffers
        self.find_unused_parameters = find_unused_parameters
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        self.require_forward_param_sync = True
        self.bucket_bytes_cap_default = bucket_cap_mb is None
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 1024 * 1024)

        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise RuntimeError("DistributedDataParallel is not needed when a module doesn't have any parameter that "
                               "requires a gradient.")
        devices = {p.device.type for _, p in named}
        if len(devices) != 1:
            raise ValueError("DistributedDataParallel's input module must be on the same type of devices, but input "
                             f"module parameters locate in {devices}.")
        self.device = named[0][1].device
        names = [n for n, _ in named]
        params = [p for _, p in named]
        # its own communicator: DDP's non-blocking all-reduces never interleave with the user's collectives
        self._comm = pg.comm.Dup()
        if init_sync:
            states = list(module.named_parameters()) + [(n, b) for n, b in module.named_buffers() if b is not None]
            self._verify_across_processes(states)
            self._broadcast([t for _, t in states])
        limits = [DEFAULT_FIRST_BUCKET_BYTES, self.bucket_bytes_cap] if self.bucket_bytes_cap_default \
            else [self.bucket_bytes_cap]
        # buckets in reverse parameter order: the order backward produces gradients
        buckets = list(reversed(compute_bucket_assignment_by_size(params, limits)))
        self.reducer = Reducer(params, names, buckets, self._comm, gradient_as_bucket_view, find_unused_parameters)

    # ------------------------------------------------------------------ construction

    def _verify_across_processes(self, states: List[Tuple[str, Tensor]]) -> None:
        """Raises on every rank unless all ranks hold the same parameters and buffers (names,
        dtypes, shapes, in the same order): broadcasting them otherwise would be undefined."""
        mine = [(n,) + staging.signature(t) for n, t in states]
        everyone = self._comm.allgather(mine)
        for r, theirs in enumerate(everyone):
            if theirs == everyone[0]:
                continue
            if len(theirs) != len(everyone[0]):
                what = f"rank 0 has {len(everyone[0])} parameters and buffers, rank {r} has {len(theirs)}"
            else:
                a, b = next((x, y) for x, y in zip(everyone[0], theirs) if x != y)
                what = f"rank 0 has {a[0]}: {a[1]} {a[2]}, rank {r} has {b[0]}: {b[1]} {b[2]}"
            raise RuntimeError(f"DistributedDataParallel: the ranks' models differ ({what}); every rank must build the "
                               "same model")

    def _broadcast(self, tensors: List[Tensor]) -> None:
        """Rank 0's values of ``tensors`` into every rank's: one ``MPI_Bcast`` per dtype, of the
        tensors packed into one flat buffer (no header: the models were verified to match)."""
        root = self._comm.Get_rank() == 0
        by_dtype: dict = {}
        for t in tensors:
            if t.numel():
                by_dtype.setdefault(str(t.dtype), []).append(t)
        for group in by_dtype.values():
            if root:
                flat = np.concatenate([staging.read(t) for t in group])
            else:
                flat = staging.empty_like_flat(group[0], sum(t.numel() for t in group))
            self._comm.Bcast(staging.mpi_array(flat), root=0)
            if not root:
                at = 0
                for t in group:
                    staging.write(t, flat[at:at + t.numel()])
                    at += t.numel()

    def _module_buffers(self) -> List[Tensor]:
        return [b for _, b in self.module.named_buffers() if b is not None]

    # ------------------------------------------------------------------ training

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        """Runs the wrapped module; arms gradient synchronisation for the backward that follows
        (when grad mode is on and not inside ``no_sync``)."""
        sync = _core.is_grad_enabled() and self.require_backward_grad_sync
        if sync and self.reducer.require_finalize:
            missing = self.reducer.unfinished()
            raise RuntimeError(
                "Expected to have finished reduction in the prior iteration before starting a new one. This error "
                "indicates that your module has parameters that were not used in producing loss. You can enable "
                "unused parameter detection by passing the keyword argument `find_unused_parameters=True` to "
                "`bp.nn.parallel.DistributedDataParallel`, and by making sure all `forward` function outputs "
                "participate in calculating loss. Parameters which did not receive grad for rank "
                f"{self.process_group.rank()}: {', '.join(missing)}")
        if self.require_forward_param_sync and self.broadcast_buffers:
            bufs = self._module_buffers()
            if bufs:
                self._broadcast(bufs)
        out = self.module(*inputs, **kwargs)
        if sync:
            self.require_forward_param_sync = True
            self.reducer.prepare_for_backward(list(_find_tensors(out)) if self.find_unused_parameters else None)
        else:
            self.require_forward_param_sync = False
        return out

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward accumulates gradients locally without all-reducing them; the first
        forward/backward outside synchronises the accumulated sum::

            with ddp.no_sync():
                for x in micro_batches[:-1]:
                    ddp(x).sum().backward()
            ddp(micro_batches[-1]).sum().backward()   # all-reduces the accumulated gradients
        """
        old = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = old

    def comm_stats(self) -> dict:
        """What the reducer did so far: ``bytes`` all-reduced, ``wait_s`` spent waiting for
        all-reduces after the last gradient (the communication backward did not hide),
        ``steps`` synchronised, number of ``buckets``, and ``early_buckets``: how many bucket
        all-reduces started while backward was still computing gradients."""
        return dict(self.reducer.stats)

    def bucket_sizes(self) -> List[int]:
        """Bytes per bucket, in reduction order."""
        return [b.nbytes for b in self.reducer.buckets]
