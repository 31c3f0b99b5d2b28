"""``parameters_to_vector`` and ``vector_to_parameters``."""

from __future__ import annotations

from typing import Iterable

from ... import _core
from ..._core import Tensor


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All ``parameters`` flattened and concatenated into one 1-d tensor (differentiable)."""
    if isinstance(parameters, Tensor):
        raise TypeError(f"expected an iterable of tensors, but got: {type(parameters).__name__}")
    vec = [p.reshape(-1) for p in parameters]
    if not vec:
        raise RuntimeError("parameters_to_vector: expected a non-empty iterable of tensors")
    return _core.cat(vec)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Slices of ``vec`` become the parameters' data, in order (as PyTorch, via ``param.data =``,
    so the parameters then view ``vec``'s memory)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected torch.Tensor, but got: {type(vec).__name__}")
    pointer = 0
    for param in parameters:
        n = param.numel()
        param.data = vec[pointer:pointer + n].view_as(param).data
        pointer += n
