"""``Work``: the handle an ``async_op=True`` collective returns, as PyTorch's ``Work``.

It holds the MPI requests of the operation and what to do once they complete (divide for
``AVG``, copy a staged buffer back to the GPU, scatter a gathered buffer into a list of
tensors), and keeps every buffer alive until then. ``wait()`` blocks until the data is in
place and returns True; ``is_completed()`` tests without blocking.

MPI advances a non-blocking operation only inside MPI calls (Open MPI starts no progress thread
by default), so work between the call and ``wait()`` overlaps the transfer only as far as the
transport moves data on its own; ``is_completed()`` is also a progress poke.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, Callable, List, Optional, Sequence

from .._core import Tensor

__all__ = ["Work"]


class Work:
    """A pending (or finished) collective or point-to-point operation."""

    def __init__(self, requests: Sequence[Any] = (), finish: Optional[Callable[[], Any]] = None,
                 result: Sequence[Tensor] = (), keep: Any = None) -> None:
        self._requests = list(requests)
        self._finish = finish
        self._result = list(result)
        self._keep = keep  # buffers MPI reads or writes until the requests complete
        self._done = False
        self._source: Optional[int] = None
        self._error: Optional[BaseException] = None

    def _complete(self) -> None:
        self._done = True
        self._requests = []
        self._keep = None
        finish, self._finish = self._finish, None
        if finish is not None:
            try:
                out = finish()
            except BaseException as e:  # kept so that exception() reports it, then raised
                self._error = e
                raise
            if isinstance(out, int) and not isinstance(out, bool):
                self._source = out

    def wait(self, timeout: Optional[Any] = None) -> bool:
        """Blocks until the operation finished and its outputs hold the result; returns True.
        ``timeout`` (seconds or a ``timedelta``) raises RuntimeError if it passes first (the
        operation itself cannot be cancelled and stays pending)."""
        if self._done:
            if self._error is not None:
                raise self._error
            return True
        from mpi4py import MPI

        if timeout is None:
            MPI.Request.Waitall(self._requests)
        else:
            seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
            deadline = time.monotonic() + seconds
            while not MPI.Request.Testall(self._requests):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bp.distributed Work.wait: timed out after {seconds} s")
                time.sleep(0)
        self._complete()
        return True

    def is_completed(self) -> bool:
        """Whether the operation finished (tests its requests: also a progress poke)."""
        if self._done:
            return True
        from mpi4py import MPI

        if MPI.Request.Testall(self._requests):
            self._complete()
        return self._done

    def is_success(self) -> bool:
        """True once the operation completed without an error."""
        return self._done and self._error is None

    def exception(self) -> Optional[BaseException]:
        """The error finishing the operation raised, if any."""
        return self._error

    def result(self) -> List[Tensor]:
        """The operation's output tensors (PyTorch's ``Work.result()``)."""
        return list(self._result)

    def source_rank(self) -> int:
        """For a finished ``irecv``: the rank the message came from."""
        if self._source is None:
            raise RuntimeError("source_rank() is only defined for a completed recv")
        return self._source

    def synchronize(self) -> None:
        """The same as ``wait()`` (CPU and staged GPU work complete on the host)."""
        self.wait()

    def __repr__(self) -> str:
        return f"<bp.distributed.Work {'completed' if self._done else 'pending'}>"


def done(result: Sequence[Tensor] = (), source: Optional[int] = None) -> Work:
    """A Work that has already completed (what a blocking call would hand back)."""
    w = Work(result=result)
    w._done = True
    w._source = source
    return w
