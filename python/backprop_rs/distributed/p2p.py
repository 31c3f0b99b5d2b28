"""Point-to-point messages: ``send``/``recv`` and their non-blocking ``isend``/``irecv``.

Each message is two MPI messages with the same tag: a small pickled header (the tensor's dtype
and shape) on one communicator, then the data on another (zero-copy for contiguous CPU
tensors). The receiver reads the header first: a dtype or shape that differs from its tensor
raises a RuntimeError naming both (the data is still drained, so the sender is never left
blocked), and ``recv(src=None)`` learns the sender from the header and receives the data from
that rank only. An ``irecv`` posts the header receive at once and receives the data when it is
waited on (the header says where the data comes from).

As with MPI, a ``send`` of a large tensor may block until the matching ``recv`` is posted: two
ranks that both ``send`` before they ``recv`` can deadlock; use ``isend``/``irecv``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._core import Tensor
from . import staging
from .process_group import ProcessGroup, _mpi, _resolve
from .staging import HostBuffer, check_tensor
from .work import Work

__all__ = ["send", "recv", "isend", "irecv"]


def _check_peer(pg: ProcessGroup, peer: Any, what: str) -> int:
    if isinstance(peer, bool) or not isinstance(peer, (int, np.integer)):
        raise TypeError(f"{what} must be an int rank, got {type(peer).__name__}")
    if not 0 <= int(peer) < pg.size():
        raise ValueError(f"Invalid {what} rank {peer}: the world has ranks 0..{pg.size() - 1}")
    if int(peer) == pg.rank():
        raise ValueError(f"Invalid {what} rank: should not be the same as the rank of the current process.")
    return int(peer)


def _check_tag(tag: Any) -> int:
    MPI = _mpi()
    ub = MPI.COMM_WORLD.Get_attr(MPI.TAG_UB) or 32767
    if isinstance(tag, bool) or not isinstance(tag, (int, np.integer)) or not 0 <= int(tag) <= ub:
        raise ValueError(f"tag must be an int in 0..{ub}, got {tag!r}")
    return int(tag)


def isend(tensor: Tensor, dst: int, group: Optional[ProcessGroup] = None, tag: int = 0) -> Work:
    """Starts sending ``tensor`` to rank ``dst``; returns a Work (wait before changing the tensor)."""
    pg = _resolve(group)
    check_tensor(tensor, "tensor")
    peer, tag = _check_peer(pg, dst, "dst"), _check_tag(tag)
    buf = HostBuffer(tensor)
    header = pg.p2p_header.isend(staging.signature(tensor), dest=peer, tag=tag)
    if tensor.numel() == 0:  # the header is the whole message (MPI refuses an empty array's null address)
        return Work([header], None, [tensor], buf)
    data = pg.p2p_data.Isend(buf.mpi, dest=peer, tag=tag)
    return Work([header, data], None, [tensor], buf)


def send(tensor: Tensor, dst: int, group: Optional[ProcessGroup] = None, tag: int = 0) -> None:
    """Sends ``tensor`` to rank ``dst`` (returns when ``tensor`` may be changed again)."""
    isend(tensor, dst, group, tag).wait()


def _receive(pg: ProcessGroup, tensor: Tensor, header: Any, source: int, tag: int) -> int:
    """Receives the data announced by ``header`` from ``source`` into ``tensor``; returns the source."""
    mine = staging.signature(tensor)
    if tuple(header) != mine:
        dtype, shape = header
        count = int(np.prod(shape, dtype=np.int64))
        if count:
            scratch = np.empty(count, {"float32": np.float32, "float64": np.float64, "int64": np.int64,
                                       "bool": np.uint8}[dtype])
            pg.p2p_data.Recv(scratch, source=source, tag=tag)  # drained, so the sender completes
        raise RuntimeError(f"bp.distributed.recv: rank {source} sent a {dtype} tensor of shape {tuple(shape)}, but this "
                           f"rank ({pg.rank()}) receives into a {mine[0]} tensor of shape {mine[1]}")
    if tensor.numel():
        buf = HostBuffer(tensor, read=False)
        pg.p2p_data.Recv(buf.mpi, source=source, tag=tag)
        buf.store()
    return source


class _RecvWork(Work):
    """An ``irecv``: the header receive is posted; the data is received once the header is in."""

    def __init__(self, pg: ProcessGroup, tensor: Tensor, peer: int, tag: int) -> None:
        super().__init__(result=[tensor])
        MPI = _mpi()
        self._pg, self._tensor, self._tag = pg, tensor, tag
        self._status = MPI.Status()
        self._header_req = pg.p2p_header.irecv(source=peer, tag=tag)

    def _finish_with(self, header: Any) -> None:
        self._finish = lambda: _receive(self._pg, self._tensor, header, self._status.Get_source(), self._tag)
        self._complete()

    def wait(self, timeout: Optional[Any] = None) -> bool:
        """Blocks until the tensor holds the received data; returns True."""
        if not self._done:
            self._finish_with(self._header_req.wait(self._status))
        elif self._error is not None:
            raise self._error
        return True

    def is_completed(self) -> bool:
        """Whether the message arrived (receives the data once the header is in)."""
        if not self._done:
            arrived, header = self._header_req.test(self._status)
            if not arrived:
                return False
            self._finish_with(header)
        return True


def irecv(tensor: Tensor, src: Optional[int] = None, group: Optional[ProcessGroup] = None, tag: int = 0) -> Work:
    """Starts receiving into ``tensor`` from rank ``src`` (any rank when None); the Work's
    ``wait()`` finishes the receive and ``source_rank()`` says who sent it."""
    pg = _resolve(group)
    check_tensor(tensor, "tensor")
    MPI = _mpi()
    tag = _check_tag(tag)
    peer = MPI.ANY_SOURCE if src is None else _check_peer(pg, src, "src")
    return _RecvWork(pg, tensor, peer, tag)


def recv(tensor: Tensor, src: Optional[int] = None, group: Optional[ProcessGroup] = None, tag: int = 0) -> int:
    """Receives into ``tensor`` from rank ``src`` (any rank when None); returns the sender's rank."""
    work = irecv(tensor, src, group, tag)
    work.wait()
    return work.source_rank()
