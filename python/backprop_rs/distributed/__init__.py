"""``bp.distributed``: processes that train together, over MPI (mpi4py on Open MPI or any MPI).

``torch.distributed``'s names and semantics, with MPI as the one backend and ``mpirun`` (or
``srun``) as the launcher::

    # mpirun -np 2 python script.py
    import backprop_rs as bp
    import backprop_rs.distributed as dist

    dist.init_process_group(backend="mpi")
    t = bp.ones(3) * (dist.get_rank() + 1)
    dist.all_reduce(t)                       # every rank: tensor([3., 3., 3.])
    dist.destroy_process_group()

* the group: :func:`init_process_group`, :func:`destroy_process_group`, :func:`is_initialized`,
  :func:`get_rank`, :func:`get_world_size`, :func:`get_backend`, :func:`barrier`;
* collectives: :func:`all_reduce` (:class:`ReduceOp` ``SUM``, ``AVG``, ``PRODUCT``, ``MIN``,
  ``MAX``, and ``BAND``/``BOR``/``BXOR`` on integers and bools), :func:`reduce`,
  :func:`broadcast`, :func:`all_gather`, :func:`all_gather_into_tensor`,
  :func:`reduce_scatter_tensor`, :func:`gather`, :func:`scatter`, and the pickling
  :func:`all_gather_object` / :func:`broadcast_object_list`;
* point to point: :func:`send`, :func:`recv`, :func:`isend`, :func:`irecv`;
* ``async_op=True`` returns a :class:`Work` with ``wait()``.

CPU tensors go to MPI without a copy (their memory, through the buffer protocol); GPU tensors
are staged through host memory. Before moving data each collective exchanges a small header, so
ranks that disagree about the collective, the dtype or the shape get a RuntimeError rather than
a hang. An uncaught exception on any rank aborts the whole job (``MPI_Abort``). Importing this
package does not import mpi4py or initialise MPI; ``init_process_group`` does.
"""

from __future__ import annotations

from .collectives import (
    all_gather,
    all_gather_into_tensor,
    all_gather_object,
    all_reduce,
    barrier,
    broadcast,
    broadcast_object_list,
    gather,
    reduce,
    reduce_scatter_tensor,
    scatter,
)
from .p2p import irecv, isend, recv, send
from .process_group import (
    GroupMember,
    ProcessGroup,
    destroy_process_group,
    get_backend,
    get_rank,
    get_world_size,
    group,
    init_process_group,
    is_available,
    is_initialized,
    is_mpi_available,
)
from .reduce_op import ReduceOp
from .work import Work

__all__ = [
    "GroupMember", "ProcessGroup", "ReduceOp", "Work", "all_gather", "all_gather_into_tensor", "all_gather_object",
    "all_reduce", "barrier", "broadcast", "broadcast_object_list", "destroy_process_group", "gather", "get_backend",
    "get_rank", "get_world_size", "group", "init_process_group", "irecv", "is_available", "is_initialized",
    "is_mpi_available", "isend", "recv", "reduce", "reduce_scatter_tensor", "scatter", "send",
]
