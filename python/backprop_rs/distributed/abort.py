"""One rank's uncaught exception ends the whole MPI job, instead of leaving the others hung.

Without this, a rank that raises exits its interpreter, and at exit mpi4py calls
``MPI_Finalize``, which waits for the other ranks, which wait in a collective for the rank that
died: the job hangs until someone kills it. ``init_process_group`` (world size > 1) replaces
``sys.excepthook`` with one that prints the traceback tagged with the rank, flushes, and calls
``MPI_Abort``, which makes ``mpirun`` kill every rank and exit non-zero within a second or so.
This is what ``python -m mpi4py script.py`` does, built in.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Optional

__all__ = ["install", "uninstall"]

_previous: Optional[Callable[..., Any]] = None


def install(rank: int, size: int) -> None:
    """Replaces ``sys.excepthook`` (once; ``uninstall`` puts the previous hook back)."""
    global _previous
    if _previous is not None:
        return
    _previous = sys.excepthook
    chained = _previous

    def abort_job(exc_type: type, exc: BaseException, tb: Any) -> None:
        try:
            sys.stderr.write(f"[backprop_rs.distributed] rank {rank} of {size} raised an uncaught "
                             f"{exc_type.__name__}; aborting the MPI job so the other ranks do not hang\n")
            chained(exc_type, exc, tb)
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            from mpi4py import MPI

            MPI.COMM_WORLD.Abort(1)

    sys.excepthook = abort_job


def uninstall() -> None:
    """Restores the excepthook that ``install`` replaced."""
    global _previous
    if _previous is not None:
        sys.excepthook = _previous
        _previous = None
