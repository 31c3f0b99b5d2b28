"""Which tensor an ``AccumulateGrad`` node accumulates into.

``node.variable`` returns a new Python object for the same engine tensor on every access, so
``is`` cannot answer, and ``data_ptr()`` is only an address on the CPU (it is 0 for GPU
tensors). CPU tensors are matched by ``(data_ptr, shape, dtype)``; the others by flipping
``requires_grad`` off and on again on each candidate (the flag lives in the engine tensor that
every wrapper shares) and seeing which node's variable follows. The flip is undone before this
returns; do not run a backward pass on these tensors from another thread meanwhile.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

from .._core import Tensor

__all__ = ["match_variables"]


def _sig(t: Tensor) -> Tuple[Any, ...]:
    return (tuple(int(s) for s in t.shape), str(t.dtype), str(t.device))


def match_variables(nodes: Sequence[Any], tensors: Sequence[Tensor]) -> List[List[int]]:
    """For each ``AccumulateGrad`` node in ``nodes``, the indices of the tensors in
    ``tensors`` that are its variable (empty when none is; several when the same tensor is
    listed more than once)."""
    out: List[List[int]] = [[] for _ in nodes]
    variables = [n.variable for n in nodes]
    by_ptr: Dict[Tuple[Any, ...], List[int]] = {}
    pending: Dict[Tuple[Any, ...], List[int]] = {}  # signature -> node indices without an address
    for i, v in enumerate(variables):
        ptr = v.data_ptr()
        if ptr:
            by_ptr.setdefault((ptr, *_sig(v)), []).append(i)
        else:
            pending.setdefault(_sig(v), []).append(i)
    for j, t in enumerate(tensors):
        ptr = t.data_ptr()
        if ptr:
            for i in by_ptr.get((ptr, *_sig(t)), []):
                out[i].append(j)
            continue
        cands = pending.get(_sig(t))
        if not cands or not t.requires_grad or not t.is_leaf:
            continue
        t.requires_grad_(False)
        try:
            hits = [i for i in cands if not nodes[i].variable.requires_grad]
        finally:
            t.requires_grad_(True)
        for i in hits:
            out[i].append(j)
    return out
