"""Collectives on tensors, with ``torch.distributed``'s names, arguments and in-place outputs.

Every call runs on the default group's communicator: the header exchange first
(:mod:`.consistency`: mismatched collectives, dtypes or shapes raise on every rank), then one MPI
call on the tensors' host buffers (:mod:`.staging`: zero-copy for contiguous CPU tensors, staged
through the host for GPU tensors). ``async_op=True`` starts the non-blocking MPI variant
(``MPI_Iallreduce``, ...) and returns a :class:`~.work.Work`; otherwise the call returns None
once the outputs hold the result. The header exchange itself is blocking, also for async calls.

Ranks are ranks in the world (the only group). Supported dtypes: float32, float64, int64, bool.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Sequence, Tuple

import numpy as np

from .._core import Tensor
from . import staging
from .consistency import agree
from .process_group import ProcessGroup, _mpi, _resolve
from .reduce_op import ReduceOp
from .staging import HostBuffer, check_tensor
from .work import Work, done

__all__ = [
    "all_reduce", "reduce", "broadcast", "all_gather", "all_gather_into_tensor", "reduce_scatter_tensor", "gather",
    "scatter", "barrier", "all_gather_object", "broadcast_object_list",
]


def _sig(t: Any) -> str:
    """A tensor as the header describes it: ``float32 of shape (3, 4)``."""
    if isinstance(t, Tensor):
        dtype, shape = staging.signature(t)
        return f"{dtype} of shape {shape}"
    return f"a {type(t).__name__}, not a tensor"


def _mpi_op(op: ReduceOp, t: Tensor) -> Any:
    """The MPI op that computes ``op`` on ``t``'s dtype (bool travels as uint8: SUM is MAX,
    PRODUCT is MIN, as PyTorch defines them for bool)."""
    MPI = _mpi()
    kind = np.dtype(staging.numpy_dtype(t)).kind
    if op in (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR):
        if kind == "f":
            raise RuntimeError(f"Cannot use ReduceOp.{op.name} with a floating-point tensor ({t.dtype}); "
                               "bitwise reductions take int64 or bool")
        return {ReduceOp.BAND: MPI.BAND, ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]
    if kind == "b":
        if op is ReduceOp.AVG:
            raise RuntimeError("Cannot use ReduceOp.AVG with boolean inputs")
        return {ReduceOp.SUM: MPI.MAX, ReduceOp.MAX: MPI.MAX, ReduceOp.PRODUCT: MPI.MIN, ReduceOp.MIN: MPI.MIN}[op]
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD, ReduceOp.MIN: MPI.MIN,
            ReduceOp.MAX: MPI.MAX}[op]


def _average(a: np.ndarray, n: int) -> None:
    """``a /= n`` in place: exact float division; int64 truncates toward zero (NCCL's integer
    average)."""
    if a.dtype.kind == "f":
        np.divide(a, a.dtype.type(n), out=a)
    else:
        q = np.abs(a) // n
        np.copyto(a, np.where(a < 0, -q, q))


def _check_rank(pg: ProcessGroup, r: Any, what: str) -> int:
    if isinstance(r, bool) or not isinstance(r, (int, np.integer)):
        raise TypeError(f"{what} must be an int rank, got {type(r).__name__}")
    if not 0 <= int(r) < pg.size():
        raise ValueError(f"Invalid {what} rank {r}: the world has ranks 0..{pg.size() - 1}")
    return int(r)


def _check_list(tensors: Any, like: Tensor, count: int, what: str) -> List[Tensor]:
    if not isinstance(tensors, (list, tuple)):
        raise TypeError(f"{what} must be a list of tensors, got {type(tensors).__name__}")
    if len(tensors) != count:
        raise ValueError(f"{what} must hold world_size={count} tensors, got {len(tensors)}")
    for i, t in enumerate(tensors):
        check_tensor(t, f"{what}[{i}]")
        if t.dtype != like.dtype or t.numel() != like.numel():
            raise ValueError(f"{what}[{i}] is a {t.dtype} tensor of shape {tuple(t.shape)}; every entry must match "
                             f"the {like.dtype} tensor of shape {tuple(like.shape)} (same dtype, same number of elements)")
    return list(tensors)


def _run(async_op: bool, start: Callable[[], Any], blocking: Callable[[], None], finish: Callable[[], Any],
         result: Sequence[Tensor], keep: Any, empty: bool = False) -> Optional[Work]:
    """Runs an operation blocking (returns None) or non-blocking (returns its Work). ``empty``
    (every rank's tensors have no elements, as the header exchange made sure) skips MPI: Open
    MPI rejects the null buffer address of an empty array even for a count of 0."""
    if empty:
        finish()
        return done(result) if async_op else None
    if async_op:
        return Work([start()], finish, result, keep)
    blocking()
    finish()
    return None


def _validated(pg: ProcessGroup, kind: str, fields: Callable[[], Sequence[Tuple[str, Any]]],
               check: Callable[[], Any]) -> Any:
    """Runs the local checks, then the header exchange (which raises on every rank if any rank's
    checks failed or the ranks disagree); returns what ``check`` returned."""
    err: Optional[BaseException] = None
    out = None
    try:
        out = check()
    except (TypeError, ValueError, RuntimeError) as e:
        err = e
    try:
        described = tuple(fields())
    except Exception:  # noqa: BLE001 - a malformed argument is reported by check(); the header stays sendable
        described = (("arguments", "malformed"),)
    agree(pg.comm, kind, described, err)
    return out


def _opname(op: Any) -> str:
    try:
        return ReduceOp.resolve(op).name
    except ValueError:
        return repr(op)


def all_reduce(tensor: Tensor, op: Any = ReduceOp.SUM, group: Optional[ProcessGroup] = None,
               async_op: bool = False) -> Optional[Work]:
    """Reduces ``tensor`` over all ranks with ``op``, in place: afterwards every rank holds the
    result (``MPI_Allreduce``)."""
    pg = _resolve(group)

    def check() -> Tuple[ReduceOp, Any]:
        check_tensor(tensor, "tensor")
        rop = ReduceOp.resolve(op)
        return rop, _mpi_op(rop, tensor)

    rop, mop = _validated(pg, "all_reduce", lambda: (("op", _opname(op)), ("tensor", _sig(tensor))), check)
    MPI = _mpi()
    buf = HostBuffer(tensor)
    n = pg.size()

    def finish() -> None:
        if rop is ReduceOp.AVG:
            _average(buf.array, n)
        buf.store()

    return _run(async_op, lambda: pg.comm.Iallreduce(MPI.IN_PLACE, buf.mpi, op=mop),
                lambda: pg.comm.Allreduce(MPI.IN_PLACE, buf.mpi, op=mop), finish, [tensor], buf, tensor.numel() == 0)


def reduce(tensor: Tensor, dst: int = 0, op: Any = ReduceOp.SUM, group: Optional[ProcessGroup] = None,
           async_op: bool = False) -> Optional[Work]:
    """Reduces ``tensor`` over all ranks into rank ``dst``'s ``tensor`` (``MPI_Reduce``); the
    other ranks' tensors are left as they were."""
    pg = _resolve(group)

    def check() -> Tuple[ReduceOp, Any, int]:
        check_tensor(tensor, "tensor")
        rop = ReduceOp.resolve(op)
        return rop, _mpi_op(rop, tensor), _check_rank(pg, dst, "dst")

    rop, mop, root = _validated(pg, "reduce", lambda: (("dst", dst), ("op", _opname(op)),
                                                       ("tensor", _sig(tensor))), check)
    MPI = _mpi()
    buf = HostBuffer(tensor)
    mine = pg.rank() == root
    send = MPI.IN_PLACE if mine else buf.mpi
    recv = buf.mpi if mine else None

    def finish() -> None:
        if mine:
            if rop is ReduceOp.AVG:
                _average(buf.array, pg.size())
            buf.store()

    return _run(async_op, lambda: pg.comm.Ireduce(send, recv, op=mop, root=root),
                lambda: pg.comm.Reduce(send, recv, op=mop, root=root), finish, [tensor], buf, tensor.numel() == 0)


def broadcast(tensor: Tensor, src: int = 0, group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """Copies rank ``src``'s ``tensor`` into every rank's ``tensor`` (``MPI_Bcast``)."""
    pg = _resolve(group)

    def check() -> int:
        check_tensor(tensor, "tensor")
        return _check_rank(pg, src, "src")

    root = _validated(pg, "broadcast", lambda: (("src", src), ("tensor", _sig(tensor))), check)
    mine = pg.rank() == root
    buf = HostBuffer(tensor, read=mine)

    def finish() -> None:
        if not mine:
            buf.store()

    return _run(async_op, lambda: pg.comm.Ibcast(buf.mpi, root=root), lambda: pg.comm.Bcast(buf.mpi, root=root),
                finish, [tensor], buf, tensor.numel() == 0)


def all_gather(tensor_list: List[Tensor], tensor: Tensor, group: Optional[ProcessGroup] = None,
               async_op: bool = False) -> Optional[Work]:
    """Every rank's ``tensor`` into ``tensor_list[r]`` on every rank (``MPI_Allgather``);
    ``tensor_list`` holds ``world_size`` tensors of ``tensor``'s dtype and size."""
    pg = _resolve(group)

    def check() -> List[Tensor]:
        check_tensor(tensor, "tensor")
        return _check_list(tensor_list, tensor, pg.size(), "tensor_list")

    outs = _validated(pg, "all_gather", lambda: (("tensor", _sig(tensor)),), check)
    n = tensor.numel()
    send = staging.read(tensor)
    recv = staging.empty_like_flat(tensor, n * pg.size())

    def finish() -> None:
        for r, t in enumerate(outs):
            staging.write(t, recv[r * n:(r + 1) * n])

    s, d = staging.mpi_array(send), staging.mpi_array(recv)
    return _run(async_op, lambda: pg.comm.Iallgather(s, d), lambda: pg.comm.Allgather(s, d), finish, outs, (send, recv),
                n == 0)


def _check_pair(output: Tensor, input: Tensor, out_name: str, in_name: str, out_factor: int, in_factor: int) -> None:
    check_tensor(output, out_name)
    check_tensor(input, in_name)
    if output.dtype != input.dtype:
        raise ValueError(f"{out_name} ({output.dtype}) and {in_name} ({input.dtype}) must have the same dtype")
    if output.numel() * out_factor != input.numel() * in_factor:
        big, small = (output, input) if in_factor > 1 else (input, output)
        raise ValueError(f"{out_name} of shape {tuple(output.shape)} and {in_name} of shape {tuple(input.shape)}: "
                         f"the tensor of shape {tuple(big.shape)} must hold world_size={max(in_factor, out_factor)} "
                         f"times the elements of the one of shape {tuple(small.shape)}")


def all_gather_into_tensor(output_tensor: Tensor, input_tensor: Tensor, group: Optional[ProcessGroup] = None,
                           async_op: bool = False) -> Optional[Work]:
    """Every rank's ``input_tensor``, concatenated in rank order, into ``output_tensor`` on every
    rank (``MPI_Allgather``). ``output_tensor`` is ``world_size`` times as large: shape
    ``(world_size * n, ...)`` (concatenated) or ``(world_size, *input.shape)`` (stacked) — the same
    memory either way."""
    pg = _resolve(group)

    _validated(pg, "all_gather_into_tensor", lambda: (("input_tensor", _sig(input_tensor)),),
               lambda: _check_pair(output_tensor, input_tensor, "output_tensor", "input_tensor", 1, pg.size()))
    send = HostBuffer(input_tensor)
    recv = HostBuffer(output_tensor, read=False)
    return _run(async_op, lambda: pg.comm.Iallgather(send.mpi, recv.mpi), lambda: pg.comm.Allgather(send.mpi, recv.mpi),
                recv.store, [output_tensor], (send, recv), input_tensor.numel() == 0)


def reduce_scatter_tensor(output: Tensor, input: Tensor, op: Any = ReduceOp.SUM, group: Optional[ProcessGroup] = None,
                          async_op: bool = False) -> Optional[Work]:
    """Reduces ``input`` over all ranks with ``op`` and leaves block ``r`` of the result in rank
    ``r``'s ``output`` (``MPI_Reduce_scatter_block``). ``input`` holds ``world_size`` times the
    elements of ``output``, as ``(world_size * n, ...)`` or ``(world_size, *output.shape)``."""
    pg = _resolve(group)

    def check() -> Tuple[ReduceOp, Any]:
        _check_pair(output, input, "output", "input", pg.size(), 1)
        rop = ReduceOp.resolve(op)
        return rop, _mpi_op(rop, input)

    rop, mop = _validated(pg, "reduce_scatter_tensor", lambda: (("op", _opname(op)),
                                                                ("output", _sig(output))), check)
    send = HostBuffer(input)
    recv = HostBuffer(output, read=False)

    def finish() -> None:
        if rop is ReduceOp.AVG:
            _average(recv.array, pg.size())
        recv.store()

    return _run(async_op, lambda: pg.comm.Ireduce_scatter_block(send.mpi, recv.mpi, op=mop),
                lambda: pg.comm.Reduce_scatter_block(send.mpi, recv.mpi, op=mop), finish, [output], (send, recv),
                output.numel() == 0)


def gather(tensor: Tensor, gather_list: Optional[List[Tensor]] = None, dst: int = 0,
           group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """Every rank's ``tensor`` into ``gather_list[r]`` on rank ``dst`` (``MPI_Gather``);
    ``gather_list`` is given on ``dst`` only."""
    pg = _resolve(group)

    def check() -> Tuple[int, List[Tensor]]:
        check_tensor(tensor, "tensor")
        root = _check_rank(pg, dst, "dst")
        if pg.rank() == root:
            if gather_list is None:
                raise ValueError("gather_list must be specified on the destination rank")
            return root, _check_list(gather_list, tensor, pg.size(), "gather_list")
        if gather_list:
            raise ValueError("Argument ``gather_list`` must NOT be specified on non-destination ranks.")
        return root, []

    root, outs = _validated(pg, "gather", lambda: (("dst", dst), ("tensor", _sig(tensor))), check)
    n = tensor.numel()
    send = staging.read(tensor)
    recv = staging.empty_like_flat(tensor, n * pg.size()) if outs else None

    def finish() -> None:
        for r, t in enumerate(outs):
            staging.write(t, recv[r * n:(r + 1) * n])

    s = staging.mpi_array(send)
    d = None if recv is None else staging.mpi_array(recv)
    return _run(async_op, lambda: pg.comm.Igather(s, d, root=root), lambda: pg.comm.Gather(s, d, root=root),
                finish, outs, (send, recv), n == 0)


def scatter(tensor: Tensor, scatter_list: Optional[List[Tensor]] = None, src: int = 0,
            group: Optional[ProcessGroup] = None, async_op: bool = False) -> Optional[Work]:
    """Rank ``src``'s ``scatter_list[r]`` into rank ``r``'s ``tensor`` (``MPI_Scatter``);
    ``scatter_list`` is given on ``src`` only."""
    pg = _resolve(group)

    def check() -> Tuple[int, List[Tensor]]:
        check_tensor(tensor, "tensor")
        root = _check_rank(pg, src, "src")
        if pg.rank() == root:
            if scatter_list is None:
                raise ValueError("scatter_list must be specified on the source rank")
            return root, _check_list(scatter_list, tensor, pg.size(), "scatter_list")
        if scatter_list:
            raise ValueError("Argument ``scatter_list`` must NOT be specified on non-source rank.")
        return root, []

    root, ins = _validated(pg, "scatter", lambda: (("src", src), ("tensor", _sig(tensor))), check)
    send = np.concatenate([staging.read(t) for t in ins]) if ins else None
    recv = HostBuffer(tensor, read=False)
    s = None if send is None else staging.mpi_array(send)
    return _run(async_op, lambda: pg.comm.Iscatter(s, recv.mpi, root=root),
                lambda: pg.comm.Scatter(s, recv.mpi, root=root), recv.store, [tensor], (send, recv), tensor.numel() == 0)


def barrier(group: Optional[ProcessGroup] = None, async_op: bool = False, device_ids: Any = None) -> Optional[Work]:
    """Waits until every rank reached the barrier (``MPI_Barrier``)."""
    pg = _resolve(group)
    agree(pg.comm, "barrier", ())
    return _run(async_op, pg.comm.Ibarrier, pg.comm.Barrier, lambda: None, [], None)


def all_gather_object(object_list: List[Any], obj: Any, group: Optional[ProcessGroup] = None) -> None:
    """Every rank's picklable ``obj`` into ``object_list[r]`` on every rank (``object_list`` has
    ``world_size`` entries)."""
    pg = _resolve(group)

    def check() -> None:
        if not isinstance(object_list, list) or len(object_list) != pg.size():
            raise ValueError(f"object_list must be a list of world_size={pg.size()} entries")

    _validated(pg, "all_gather_object", lambda: (), check)
    object_list[:] = pg.comm.allgather(obj)


def broadcast_object_list(object_list: List[Any], src: int = 0, group: Optional[ProcessGroup] = None,
                          device: Any = None) -> None:
    """Rank ``src``'s picklable ``object_list`` entries into every rank's ``object_list`` (the
    lists have the same length everywhere)."""
    pg = _resolve(group)

    def check() -> int:
        if not isinstance(object_list, list):
            raise TypeError(f"object_list must be a list, got {type(object_list).__name__}")
        return _check_rank(pg, src, "src")

    root = _validated(pg, "broadcast_object_list", lambda: (("src", src), ("len", len(object_list))), check)
    got = pg.comm.bcast(list(object_list) if pg.rank() == root else None, root=root)
    object_list[:] = got
