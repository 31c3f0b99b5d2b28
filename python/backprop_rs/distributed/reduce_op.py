"""``ReduceOp``: how a reduction collective combines the ranks' values, as ``torch.distributed.ReduceOp``.

``SUM``, ``AVG``, ``PRODUCT``, ``MIN``, ``MAX`` for every dtype (``AVG`` not for bool); ``BAND``,
``BOR``, ``BXOR`` for int64 and bool. Bool tensors follow PyTorch: ``SUM`` and ``MAX`` are a
logical or, ``PRODUCT`` and ``MIN`` a logical and. ``AVG`` is MPI's sum divided by the world size
afterwards (MPI has no average): floats divide exactly as ``x / N``; int64 truncates toward
zero, as NCCL's integer average does.
"""

from __future__ import annotations

import enum
from typing import Any, Union

__all__ = ["ReduceOp"]


class ReduceOp(enum.Enum):
    """A reduction: ``bp.distributed.ReduceOp.SUM`` (the default of every reducing collective).

    Strings work too (``"sum"``, ``"avg"``, ...), as in PyTorch's functional collectives.
    """

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    BAND = "band"
    BOR = "bor"
    BXOR = "bxor"

    def __repr__(self) -> str:
        return f"<ReduceOp.{self.name}>"

    @classmethod
    def resolve(cls, op: Union["ReduceOp", str, Any]) -> "ReduceOp":
        """``op`` as a ReduceOp (an enum member or its name in any case); ValueError otherwise."""
        if isinstance(op, ReduceOp):
            return op
        if isinstance(op, str):
            key = op.strip().lower()
            for member in cls:
                if member.value == key or member.name.lower() == key:
                    return member
        names = ", ".join(m.name for m in cls)
        raise ValueError(f"unknown reduce op {op!r}; expected a bp.distributed.ReduceOp ({names})")
