"""The process group itself: what init_process_group takes from MPI, what it refuses, and
destroy / init again (on the session's default group, which the conftest fixture destroys at
the end whichever group is current then)."""

import sys

import pytest

import backprop_rs.distributed as dist


def test_rank_and_world_come_from_mpi():
    from mpi4py import MPI

    assert dist.is_available() and dist.is_mpi_available() and dist.is_initialized()
    assert dist.get_rank() == MPI.COMM_WORLD.Get_rank()
    assert dist.get_world_size() == MPI.COMM_WORLD.Get_size()
    assert dist.get_backend() == "mpi"
    assert dist.group.WORLD is dist.GroupMember._world()
    assert dist.group.WORLD.size() == dist.get_world_size()


def test_init_twice_is_an_error():
    with pytest.raises(ValueError, match="twice"):
        dist.init_process_group("mpi")


def test_destroy_then_init_again_and_the_arguments_init_checks():
    dist.destroy_process_group()
    try:
        assert not dist.is_initialized()
        assert sys.excepthook.__name__ != "abort_job"  # destroy restored the previous hook
        with pytest.raises(ValueError, match="Default process group has not been initialized"):
            dist.get_rank()
        with pytest.raises(ValueError, match="only backend is 'mpi'"):
            dist.init_process_group("nccl")
        with pytest.raises(ValueError, match="world_size=99"):
            dist.init_process_group("mpi", world_size=99)
        with pytest.raises(ValueError, match="init_method"):
            dist.init_process_group("mpi", init_method="tcp://10.0.0.1:23456")
        assert not dist.is_initialized()
    finally:
        dist.init_process_group(backend="MPI", world_size=-1, rank=dist_rank())
    assert dist.is_initialized()
    t = __import__("backprop_rs").ones(2)
    dist.all_reduce(t)  # the new group works
    assert t.tolist() == [float(dist.get_world_size())] * 2


def dist_rank():
    from mpi4py import MPI

    return MPI.COMM_WORLD.Get_rank()


def test_the_excepthook_aborts_only_while_a_group_of_several_exists():
    from backprop_rs.distributed import abort

    if dist.get_world_size() > 1:
        assert sys.excepthook.__name__ == "abort_job"
    assert abort._previous is not None or dist.get_world_size() == 1
