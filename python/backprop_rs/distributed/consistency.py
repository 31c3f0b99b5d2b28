"""The header exchange: before a collective moves data, the ranks compare what each is about to
do, so a mismatch is an error on every rank instead of a hang or corrupted memory.

MPI cannot check this itself: ranks that call ``MPI_Allreduce`` with different counts or
datatypes get undefined behaviour (a truncation error at best, a hang or overwritten memory at
worst), and a rank in ``Bcast`` while another is in ``Allreduce`` simply waits forever. So
each collective first all-gathers a small header — the collective's name, its op and root,
each tensor's dtype and shape — plus the message of any argument error the rank found locally
(a wrong list length, a root out of range). Every rank then raises the same RuntimeError if the
headers differ or any rank's arguments were wrong (that rank raises its own error). The cost is
one small all-gather per call (tens of microseconds on one machine); set the environment
variable ``BACKPROP_DIST_CHECKS=0`` to skip it. ``DistributedDataParallel`` checks its
parameters once at construction and its per-step all-reduces skip the header.
"""

from __future__ import annotations

import os
from typing import Any, List, Optional, Sequence, Tuple

__all__ = ["agree", "enabled"]


def enabled() -> bool:
    """Whether collectives exchange headers (``BACKPROP_DIST_CHECKS`` unset or not ``0``)."""
    return os.environ.get("BACKPROP_DIST_CHECKS", "1") != "0"


def _describe(kind: str, fields: Sequence[Tuple[str, Any]]) -> str:
    return f"{kind}(" + ", ".join(f"{k}={v}" for k, v in fields) + ")"


def _ranks(rs: List[int]) -> str:
    return ("rank " if len(rs) == 1 else "ranks ") + ",".join(map(str, rs))


def agree(comm: Any, kind: str, fields: Sequence[Tuple[str, Any]], error: Optional[BaseException] = None,
          force: bool = False) -> None:
    """All-gathers ``(kind, fields, error)`` over ``comm`` and raises unless every rank has the
    same ``kind`` and ``fields`` and no rank has an ``error``. The rank whose ``error`` it is
    re-raises it; the others raise RuntimeError naming it. With checks disabled, only the local
    ``error`` is raised (and then the other ranks may hang, which is the price of skipping)."""
    if not (force or enabled()):
        if error is not None:
            raise error
        return
    mine = (kind, tuple(fields), None if error is None else f"{type(error).__name__}: {error}")
    rows = comm.allgather(mine)
    if error is not None:
        raise error
    failed = [(r, row[2]) for r, row in enumerate(rows) if row[2] is not None]
    if failed:
        r, msg = failed[0]
        raise RuntimeError(f"bp.distributed.{kind}: rank {r} rejected its arguments ({msg}); every rank stops "
                           "at this collective instead of waiting for it")
    if all(row[:2] == rows[0][:2] for row in rows):
        return
    groups: dict = {}
    for r, row in enumerate(rows):
        groups.setdefault(row[:2], []).append(r)
    parts = "; ".join(f"{_ranks(rs)}: {_describe(k, f)}" for (k, f), rs in groups.items())
    raise RuntimeError(f"bp.distributed.{kind}: the ranks called mismatched collectives ({parts}); every rank must "
                       "call the same collective with tensors of the same dtype and shape, in the same order")
