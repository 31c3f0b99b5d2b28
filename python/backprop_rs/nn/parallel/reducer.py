"""The gradient reducer behind ``DistributedDataParallel``: buckets, hooks, and the all-reduces
that overlap backward.

Parameters are grouped into buckets (by dtype and device; a bucket closes once it holds
``bucket_cap`` bytes; the earliest parameters form a small first bucket, as in PyTorch) and the buckets are reduced
in **reverse parameter order**, the order backward produces gradients. Each parameter carries a
``register_post_accumulate_grad_hook``: when its gradient has been accumulated, the hook copies
it (times 1/world_size) into the bucket's flat host buffer; when a bucket's last gradient is in,
its ``MPI_Iallreduce`` starts at once, non-blocking, while backward goes on computing the
earlier layers. Buckets start strictly in order (every rank must issue its collectives in the
same order); each hook also tests the pending requests, because MPI advances a non-blocking
collective only inside MPI calls. When the last bucket has started, the reducer waits for all
of them and writes the averaged gradients into ``.grad`` — still inside ``backward()``, so the
optimiser step that follows sees synchronised gradients.

With ``find_unused_parameters`` the autograd graph is walked from the forward's outputs over
``next_functions`` (the parameters' ``AccumulateGrad`` nodes are recognised by equality: node
objects compare equal when they stand for the same engine node), and the parameters it does not
reach are marked ready (their bucket slots hold their current
gradient, or zeros) at the first hook, so their buckets are not waited for forever; a map of
which parameters were used anywhere is all-reduced at the end, and a parameter unused on every
rank keeps its ``.grad`` untouched.
"""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ... import _core
from ..._core import Tensor
from ...autograd import no_grad
from ...distributed import staging

__all__ = ["Reducer", "compute_bucket_assignment_by_size"]

# PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES: the parameters defined first (whose gradients come
# last) get a small bucket of their own, so little communication is left once backward ends
DEFAULT_FIRST_BUCKET_BYTES = 1024 * 1024


def compute_bucket_assignment_by_size(params: Sequence[Tensor], size_limits: Sequence[int]) -> List[List[int]]:
    """Groups parameter indices into buckets, in parameter order: one open bucket per
    (dtype, device); a bucket closes once it holds at least the current limit's bytes, and each
    (dtype, device) moves through ``size_limits`` (the last one repeats). Buckets are returned
    in order of their smallest index."""
    open_: Dict[Tuple[str, str], Tuple[List[int], int, int]] = {}
    done: List[List[int]] = []
    for i, p in enumerate(params):
        key = (str(p.dtype), str(p.device))
        idx, size, li = open_.get(key, ([], 0, 0))
        idx.append(i)
        size += p.numel() * p.element_size()
        limit = size_limits[min(li, len(size_limits) - 1)]
        if size >= limit:
            done.append(idx)
            open_[key] = ([], 0, li + 1)
        else:
            open_[key] = (idx, size, li)
    done.extend(idx for idx, _, _ in open_.values() if idx)
    return sorted(done, key=min)


class _Bucket:
    """A flat host buffer holding the (pre-divided) gradients of some parameters."""

    def __init__(self, params: List[int], shapes: List[Tuple[int, ...]], dtype: Any) -> None:
        self.params = params
        self.offsets: List[int] = []
        total = 0
        for s in shapes:
            self.offsets.append(total)
            total += int(np.prod(s, dtype=np.int64))
        self.shapes = shapes
        self.flat = np.zeros(total, dtype)
        self.slots = [self.flat[o:o + int(np.prod(s, dtype=np.int64))].reshape(s) for o, s in zip(self.offsets, shapes)]
        self.pending = len(params)
        self.request: Any = None

    @property
    def nbytes(self) -> int:
        return int(self.flat.nbytes)


class Reducer:
    """Owns the buckets and the per-iteration state of gradient synchronisation."""

    def __init__(self, params: List[Tensor], names: List[str], bucket_indices: List[List[int]], comm: Any,
                 gradient_as_bucket_view: bool, find_unused_parameters: bool) -> None:
        from mpi4py import MPI

        self._MPI = MPI
        self.params = params
        self.names = names
        self.comm = comm
        self.world = comm.Get_size()
        self.find_unused = find_unused_parameters
        self.overlap = True  # False: start every all-reduce only after backward (the benchmark's baseline)
        self.buckets: List[_Bucket] = []
        self.where: List[Tuple[int, int]] = [(0, 0)] * len(params)
        for b, idx in enumerate(bucket_indices):
            bucket = _Bucket(idx, [tuple(params[i].shape) for i in idx], staging.numpy_dtype(params[idx[0]]))
            self.buckets.append(bucket)
            for k, i in enumerate(idx):
                self.where[i] = (b, k)
        # gradients as views of the buckets: CPU only (a GPU bucket is a host staging buffer)
        self.as_view = gradient_as_bucket_view
        self.views: List[Optional[Tensor]] = [None] * len(params)
        if gradient_as_bucket_view:
            for i, p in enumerate(params):
                if p.device.type == "cpu":
                    b, k = self.where[i]
                    self.views[i] = _core.from_numpy(self.buckets[b].slots[k])
        # the parameters' AccumulateGrad nodes: graph nodes compare and hash by the engine node
        # they stand for (each walk makes new Python objects), so a dict finds them in a walk
        self._acc_index = {p.view_as(p).grad_fn.next_functions[0][0]: i for i, p in enumerate(params)}
        self.handles = [p.register_post_accumulate_grad_hook(self._hook_for(i)) for i, p in enumerate(params)]
        self.expect_hooks = False
        self.require_finalize = False
        self.ready = [False] * len(params)
        self.n_ready = 0
        self.used = np.zeros(len(params), np.uint8)  # used since the last synchronised backward
        self.unused: List[int] = []
        self.marked_unused = False
        self.next_bucket = 0
        self.stats: Dict[str, Any] = {"bytes": 0, "wait_s": 0.0, "steps": 0, "buckets": len(self.buckets),
                                      "early_buckets": 0}

    # ------------------------------------------------------------------ per iteration

    def prepare_for_backward(self, outputs: Optional[Sequence[Tensor]]) -> None:
        """Arms the hooks for the next backward; with ``find_unused_parameters``, finds the
        parameters the graph of ``outputs`` does not reach."""
        self.expect_hooks = True
        self.ready = [False] * len(self.params)
        self.n_ready = 0
        self.next_bucket = 0
        for b in self.buckets:
            b.pending = len(b.params)
            b.request = None
        self.marked_unused = False
        self.unused = []
        if self.find_unused and outputs is not None:
            reached = self._reached(outputs)
            self.unused = [i for i in range(len(self.params)) if i not in reached]

    def _reached(self, outputs: Sequence[Tensor]) -> set:
        """Indices of the parameters whose AccumulateGrad nodes the outputs' graph reaches."""
        found = set()
        seen: set = set()
        stack = []
        for t in outputs:
            if t.grad_fn is not None:
                stack.append(t.grad_fn)
            elif t.requires_grad:  # a parameter returned as it is
                stack.append(t.view_as(t).grad_fn.next_functions[0][0])
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            i = self._acc_index.get(node)
            if i is not None:
                found.add(i)
            stack.extend(n for n, _ in node.next_functions)
        return found

    def _hook_for(self, i: int) -> Any:
        def hook(param: Tensor) -> None:
            self.used[i] = 1
            if self.expect_hooks:
                self._autograd_hook(i)

        return hook

    def _autograd_hook(self, i: int) -> None:
        if not self.marked_unused:
            self.marked_unused = True
            for j in self.unused:
                self._mark_ready(j)
        self._mark_ready(i)

    def _mark_ready(self, i: int) -> None:
        if self.ready[i]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once. Parameter {self.names[i]} (index {i}) got its gradient "
                "twice in one backward pass of DistributedDataParallel: it is used by several backward passes "
                "(retain_graph) or reentrant backward; synchronise once per forward/backward pair")
        self.ready[i] = True
        self.n_ready += 1
        self.require_finalize = True
        b, k = self.where[i]
        bucket = self.buckets[b]
        self._copy_in(i, bucket.slots[k])
        bucket.pending -= 1
        if bucket.pending == 0 and self.overlap:
            self._launch_ready()
        elif self.overlap:
            self._progress()
        if self.n_ready == len(self.params):
            if not self.overlap:
                self._launch_ready()
            self._finalize()

    def _copy_in(self, i: int, slot: np.ndarray) -> None:
        """The gradient of parameter ``i``, divided by the world size, into its bucket slot."""
        g = self.params[i].grad
        scale = slot.dtype.type(1.0 / self.world)
        if g is None:
            slot.fill(0)
        elif self.views[i] is not None and g is self.views[i]:
            np.multiply(slot, scale, out=slot)  # accumulated into the bucket itself
        else:
            src = g.detach().numpy() if g.device.type == "cpu" else g.detach().cpu().numpy()
            np.multiply(src, scale, out=slot)

    def _launch_ready(self) -> None:
        MPI = self._MPI
        while self.next_bucket < len(self.buckets) and self.buckets[self.next_bucket].pending == 0:
            bucket = self.buckets[self.next_bucket]
            bucket.request = self.comm.Iallreduce(MPI.IN_PLACE, staging.mpi_array(bucket.flat), op=MPI.SUM)
            self.stats["bytes"] += bucket.nbytes
            if self.n_ready < len(self.params):
                self.stats["early_buckets"] += 1  # started while backward still had gradients to compute
            self.next_bucket += 1

    def _progress(self) -> None:
        reqs = [b.request for b in self.buckets[:self.next_bucket] if b.request is not None]
        if reqs:
            self._MPI.Request.Testall(reqs)

    def _finalize(self) -> None:
        """Waits for every bucket and writes the averaged gradients into ``.grad``."""
        MPI = self._MPI
        t0 = time.perf_counter()
        MPI.Request.Waitall([b.request for b in self.buckets])
        self.stats["wait_s"] += time.perf_counter() - t0
        self.stats["steps"] += 1
        globally_used = None
        if self.find_unused:
            globally_used = self.used.copy()
            self.comm.Allreduce(MPI.IN_PLACE, globally_used, op=MPI.MAX)
        for i, p in enumerate(self.params):
            if globally_used is not None and not globally_used[i]:
                continue  # unused on every rank: its gradient stays as it was
            b, k = self.where[i]
            self._copy_out(i, p, self.buckets[b].slots[k])
        self.used[:] = 0
        self.expect_hooks = False
        self.require_finalize = False

    def _copy_out(self, i: int, p: Tensor, slot: np.ndarray) -> None:
        view = self.views[i]
        if view is not None:
            if p.grad is not view:
                p.grad = view
            return
        g = p.grad
        if g is None:
            p.grad = _core.from_numpy(slot.copy()).to(p.device)
            return
        if g.device.type == "cpu":
            a = g.detach().numpy()
            if a.flags.writeable and a.flags.c_contiguous:
                a[...] = slot
                return
        with no_grad():
            g.copy_(_core.from_numpy(slot))

    def unfinished(self) -> List[str]:
        """Names of the parameters that have not received a gradient in the pending reduction."""
        return [self.names[i] for i, r in enumerate(self.ready) if not r]

    def remove_hooks(self) -> None:
        """Unregisters the gradient hooks."""
        for h in self.handles:
            h.remove()
        self.handles = []
