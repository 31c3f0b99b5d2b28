"""The tests in this folder run inside an MPI job, every rank running the same pytest session:

    mpirun --oversubscribe --allow-run-as-root -np 2 python -m pytest -q -p no:cacheprovider tests/mpi

``tests/test_distributed.py`` starts them that way (at -np 2 and -np 3) from the normal suite;
outside mpirun this folder collects nothing. A failure on any rank aborts the whole job at once
(MPI_Abort), because the other ranks would otherwise wait forever in the next collective; the
failing rank's report is printed first.
"""

import os
import sys

import pytest

_UNDER_MPI = any(k in os.environ for k in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"))

if not _UNDER_MPI:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session", autouse=True)
def process_group():
    """One default process group for the whole session (init and destroy are tested once, in
    test_process_group.py, on a group of their own)."""
    import backprop_rs.distributed as dist

    dist.init_process_group(backend="mpi")
    yield
    dist.destroy_process_group()


def pytest_runtest_logreport(report):
    if report.failed and _UNDER_MPI:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        sys.stderr.write(f"\n[rank {rank}] {report.nodeid} FAILED ({report.when}):\n{report.longreprtext}\n"
                         f"[rank {rank}] aborting the MPI job: the other ranks would wait in a collective forever\n")
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)


@pytest.fixture
def gpu():
    """Skips without a GPU adapter; under BACKPROP_REQUIRE_GPU=1 (CI, on lavapipe) that fails."""
    import backprop_rs as bp

    if not bp.gpu.is_available():
        if os.environ.get("BACKPROP_REQUIRE_GPU") == "1":
            pytest.fail("BACKPROP_REQUIRE_GPU=1 but no GPU adapter")
        pytest.skip("no GPU adapter")
