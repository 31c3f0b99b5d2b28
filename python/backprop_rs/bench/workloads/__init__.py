"""Every workload of ``backprop-rs bench``, defined once for backprop_rs, NumPy and PyTorch (the
sequence models for backprop_rs and PyTorch only).

``all_workloads(quick)`` lists them in run order. ``quick`` shrinks sizes so CI finishes in
seconds; the names stay the same (so ``--only`` works in both modes) and ``params`` records the
sizes that ran.
"""

from __future__ import annotations

from ..harness import Workload
from .conv import conv_workloads, lenet_workloads
from .kernels import kernel_workloads
from .processes import process_workloads
from .sequence import sequence_workloads
from .training import mlp_workloads


def all_workloads(quick: bool) -> list[Workload]:
    """Every workload, in run order (those with ``default=False`` run only when ``--only`` names them)."""
    return (kernel_workloads(quick) + mlp_workloads(quick) + conv_workloads(quick) + lenet_workloads(quick)
            + sequence_workloads(quick) + process_workloads(quick))


__all__ = ["all_workloads"]
