"""``Parameter``: a tensor that a Module registers as trainable."""

from __future__ import annotations

from .. import _core
from .._core import Tensor


class Parameter(Tensor):
    """A leaf tensor that requires grad (by default) and is registered by the Module it is
    assigned to. ``Parameter(t)`` shares ``t``'s memory, as in PyTorch."""

    def __new__(cls, data: Tensor = None, requires_grad: bool = True):
        if data is None:
            from .. import empty

            data = empty(0)
        obj = super().__new__(cls, data, requires_grad=requires_grad)
        # so that AccumulateGrad.variable is this very object (``fn.variable is p``)
        _core._register_leaf(obj)
        return obj

    def __init__(self, data: Tensor = None, requires_grad: bool = True) -> None:  # noqa: D401
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, protocol):
        raise TypeError("backprop_rs objects are not picklable; save state with backprop_rs.save (safetensors)")
