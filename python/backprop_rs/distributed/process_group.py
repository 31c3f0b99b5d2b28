"""The process group: which processes take part, and their MPI communicators.

``init_process_group(backend="mpi")`` takes the rank and the world size from MPI (``mpirun`` or
``srun`` started the processes; a plain ``python`` is a world of one). It duplicates
``MPI.COMM_WORLD`` into private communicators, so that backprop_rs's messages never match a
message of other MPI code in the same program, and installs an ``sys.excepthook`` that aborts
the whole job when any rank dies of an uncaught exception (see :mod:`.abort`).

mpi4py is imported here on the first ``init_process_group``, not when ``backprop_rs`` is
imported: importing ``mpi4py.MPI`` initialises MPI, which a program that never trains in
parallel should not pay for.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from . import abort

__all__ = [
    "ProcessGroup", "GroupMember", "group", "init_process_group", "destroy_process_group", "is_initialized",
    "is_available", "is_mpi_available", "get_rank", "get_world_size", "get_backend",
]

_INSTALL_HINT = ("backprop_rs.distributed runs on MPI through mpi4py: install an MPI library and mpi4py, e.g. "
                 "`apt-get install openmpi-bin libopenmpi-dev && pip install mpi4py`")


# Open MPI 4.1's non-blocking all-reduce (coll/libnbc) picks its binomial tree whenever the
# world has fewer than 4 ranks or the reduction is in place, as DistributedDataParallel's
# bucket all-reduces are; measured on 2 ranks of one machine, a 3.3 MB MPI_Iallreduce then took
# 20-25 ms where the blocking MPI_Allreduce took 0.45-0.6 ms. Rabenseifner's reduce-scatter +
# all-gather (libnbc algorithm 3, ring when the count is below the power of two) brings it to
# 0.5 ms. Read by MPI_Init, so it is set before mpi4py initialises MPI, and only when the user
# (or mpirun -x / --mca) did not choose; other MPI libraries ignore the variable.
_MPI_DEFAULTS = {"OMPI_MCA_coll_libnbc_iallreduce_algorithm": "3"}


def _mpi() -> Any:
    """The ``mpi4py.MPI`` module (importing it initialises MPI once per process)."""
    if "mpi4py.MPI" not in sys.modules:
        for key, value in _MPI_DEFAULTS.items():
            os.environ.setdefault(key, value)
    try:
        from mpi4py import MPI
    except ImportError as e:  # the message says what to install, not just what is missing
        raise RuntimeError(f"{_INSTALL_HINT} ({e})") from e
    return MPI


class ProcessGroup:
    """A set of ranks that run collectives together; here always the whole MPI world.

    ``rank()`` and ``size()`` as in PyTorch. ``comm`` carries the collectives; ``p2p_header``
    and ``p2p_data`` carry ``send``/``recv`` (their small headers and the data itself, on
    separate communicators so the two kinds of message never match each other).
    """

    def __init__(self, world: Any) -> None:
        self.comm = world.Dup()
        self.p2p_header = world.Dup()
        self.p2p_data = world.Dup()
        self._rank = self.comm.Get_rank()
        self._size = self.comm.Get_size()

    def rank(self) -> int:
        """This process's rank in the group."""
        return self._rank

    def size(self) -> int:
        """How many processes the group holds."""
        return self._size

    def name(self) -> str:
        """The backend's name, ``"mpi"``."""
        return "mpi"

    def _free(self) -> None:
        for c in (self.comm, self.p2p_header, self.p2p_data):
            c.Free()

    def __repr__(self) -> str:
        return f"<ProcessGroup backend=mpi rank={self._rank} size={self._size}>"


class _World:
    default: Optional[ProcessGroup] = None


class GroupMember:
    """``GroupMember.WORLD`` is the default group (None before ``init_process_group``)."""

    NON_GROUP_MEMBER = -100

    @classmethod
    def _world(cls) -> Optional[ProcessGroup]:
        return _World.default


class _GroupNamespace:
    """``bp.distributed.group.WORLD``: the default process group, as in PyTorch."""

    @property
    def WORLD(self) -> Optional[ProcessGroup]:  # noqa: N802 (PyTorch's name)
        return _World.default


group = _GroupNamespace()


def is_available() -> bool:
    """Whether ``bp.distributed`` can run here: mpi4py is installed (it is not imported, so MPI
    is not initialised by asking)."""
    import importlib.util  # on first use: importlib.util is not free at import time

    return importlib.util.find_spec("mpi4py") is not None


def is_mpi_available() -> bool:
    """Whether the MPI backend is available (the only backend backprop_rs has)."""
    return is_available()


def is_initialized() -> bool:
    """Whether ``init_process_group`` has run (and ``destroy_process_group`` has not)."""
    return _World.default is not None


def _default_group() -> ProcessGroup:
    if _World.default is None:
        raise ValueError("Default process group has not been initialized, please make sure to call init_process_group.")
    return _World.default


def _resolve(group: Optional[ProcessGroup]) -> ProcessGroup:
    """The group a collective runs on: ``None`` is the default group."""
    pg = _default_group()
    if group is None or group is pg:
        return pg
    if isinstance(group, ProcessGroup):
        raise ValueError(f"{group!r} is not the current default process group (it was destroyed)")
    raise TypeError(f"group must be a bp.distributed.ProcessGroup or None, got {type(group).__name__}")


def init_process_group(backend: Optional[str] = None, init_method: Optional[str] = None, timeout: Any = None,
                       world_size: int = -1, rank: int = -1, store: Any = None, group_name: str = "",
                       pg_options: Any = None, device_id: Any = None) -> None:
    """Joins the MPI job as the default process group.

    ``backend`` is ``"mpi"`` (or None, which means ``"mpi"``). As with PyTorch's MPI backend, the
    rank and the world size come from MPI; ``world_size`` and ``rank``, when given, must agree
    with it. ``init_method``, ``timeout``, ``store``, ``pg_options`` and ``device_id`` exist for
    signature compatibility: MPI's launcher already did the rendezvous. Run under
    ``mpirun -np N python train.py`` (``srun`` works as well); without a launcher the world is
    this one process.
    """
    if _World.default is not None:
        raise ValueError("trying to initialize the default process group twice!")
    name = "mpi" if backend is None else str(backend).lower()
    if name != "mpi":
        raise ValueError(f"backend '{backend}' is not available in backprop_rs; the only backend is 'mpi' "
                         "(mpi4py over an MPI library such as Open MPI)")
    if store is not None:
        raise ValueError("the MPI backend takes no store: mpirun/srun did the rendezvous")
    if init_method not in (None, "env://"):
        raise ValueError(f"init_method {init_method!r} is not used by the MPI backend: start the processes with mpirun")
    MPI = _mpi()
    world = MPI.COMM_WORLD
    mpi_rank, mpi_size = world.Get_rank(), world.Get_size()
    if world_size not in (-1, None) and int(world_size) != mpi_size:
        raise ValueError(f"world_size={world_size} but MPI started {mpi_size} processes (the MPI backend takes the "
                         "world size from MPI)")
    if rank not in (-1, None) and int(rank) != mpi_rank:
        raise ValueError(f"rank={rank} but MPI says this process is rank {mpi_rank}")
    _World.default = ProcessGroup(world)
    if mpi_size > 1:
        abort.install(mpi_rank, mpi_size)


def destroy_process_group(group: Optional[ProcessGroup] = None) -> None:
    """Leaves the default group: frees its communicators and restores ``sys.excepthook``. MPI
    itself stays initialised (mpi4py finalises it at exit), so ``init_process_group`` may run
    again."""
    pg = _default_group() if group is None else _resolve(group)
    _World.default = None
    abort.uninstall()
    pg._free()


def get_rank(group: Optional[ProcessGroup] = None) -> int:
    """This process's rank, ``0 .. get_world_size() - 1``."""
    return _resolve(group).rank()


def get_world_size(group: Optional[ProcessGroup] = None) -> int:
    """The number of processes in the group."""
    return _resolve(group).size()


def get_backend(group: Optional[ProcessGroup] = None) -> str:
    """The group's backend: ``"mpi"``."""
    return _resolve(group).name()
