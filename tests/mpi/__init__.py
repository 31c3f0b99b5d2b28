"""Tests that run inside an MPI job (see conftest.py). A package, so that its conftest is
``mpi.conftest`` and does not shadow ``tests/conftest.py``, which other test files import as
``conftest``."""
