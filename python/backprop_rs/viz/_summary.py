"""Small numeric summaries of tensors (norm, min/max, NaN/inf counts) shared by the viz tools."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np


def dtype_name(dtype: Any) -> str:
    """``float32`` for ``backprop_rs.float32``: the short name people read in a label."""
    s = str(dtype)
    return s.rsplit(".", 1)[-1]


def to_numpy(t: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor on any device (summaries are computed in float64 so
    that they do not depend on the reduction order of the device)."""
    if str(t.device) != "cpu":
        t = t.to("cpu")
    return np.asarray(t.detach().numpy(), dtype=np.float64)


@dataclass(frozen=True)
class Summary:
    """What a label shows about one tensor: its metadata and the statistics of its values.

    ``norm`` is the Euclidean norm of the finite entries; ``min``/``max`` likewise (NaN when no
    entry is finite); ``nan``/``inf`` count the non-finite entries, which the graph flags in red.
    """

    shape: Tuple[int, ...]
    dtype: str
    device: str
    norm: float
    min: float
    max: float
    mean: float
    nan: int
    inf: int

    @property
    def finite(self) -> bool:
        """True when no entry is NaN or infinite."""
        return self.nan == 0 and self.inf == 0

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (non-finite statistics become None)."""
        d = asdict(self)
        d["shape"] = list(self.shape)
        for k in ("norm", "min", "max", "mean"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d


def summarize(t: Any) -> Summary:
    """The :class:`Summary` of a tensor (detached, copied to the host)."""
    a = to_numpy(t)
    finite = np.isfinite(a)
    nan = int(np.isnan(a).sum())
    inf = int(np.isinf(a).sum())
    f = a[finite]
    if f.size:
        norm, lo, hi, mean = float(np.sqrt(np.sum(f * f))), float(f.min()), float(f.max()), float(f.mean())
    else:
        norm, lo, hi, mean = (0.0 if a.size == 0 else math.nan), math.nan, math.nan, math.nan
    return Summary(tuple(int(s) for s in t.shape), dtype_name(t.dtype), str(t.device), norm, lo, hi, mean, nan, inf)


def fmt(x: Optional[float]) -> str:
    """Three significant digits, compact (``1.23e-05``, ``0.0123``, ``123``)."""
    if x is None:
        return "-"
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.3g}"


def shape_str(shape: Tuple[int, ...]) -> str:
    """``(4, 10)``; ``()`` for a scalar; ``(3,)`` for a vector, as Python writes tuples."""
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
