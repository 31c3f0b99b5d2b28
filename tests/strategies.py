"""Hypothesis strategies for tests/test_properties.py: tensors with known values in every layout
the Tensor API can make, and argument values (valid and invalid) for the calls under test.

A drawn tensor is a :class:`TP`: the engine tensor, an independent NumPy array of the same
logical values, and ``src``, a Python expression that rebuilds the tensor (reproducers assume
``import numpy as np; import backprop_rs as bp; from numpy import nan, inf``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import backprop_rs as bp
from fuzz_oracle import Invalid, Unspecified

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
INTS = (np.dtype(np.int64),)
BOOLS = (np.dtype(np.bool_),)
ALL_DTYPES = FLOATS + INTS + BOOLS
BP = {
    np.dtype(np.float32): bp.float32,
    np.dtype(np.float64): bp.float64,
    np.dtype(np.int64): bp.int64,
    np.dtype(np.bool_): bp.bool,
}
NP = {v: k for k, v in BP.items()}
DT_SRC = {
    np.dtype(np.float32): "bp.float32",
    np.dtype(np.float64): "bp.float64",
    np.dtype(np.int64): "bp.int64",
    np.dtype(np.bool_): "bp.bool",
}
_NP_SRC = {
    np.dtype(np.float32): "np.float32",
    np.dtype(np.float64): "np.float64",
    np.dtype(np.int64): "np.int64",
    np.dtype(np.bool_): "np.bool_",
}

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
# Sizes and dims that overflow one integer type or another on their way into the core.
HUGE_INTS = (
    2**31 - 1,
    2**31,
    2**32,
    2**32 + 1,
    2**40,
    2**62,
    2**63 - 1,
    2**63,
    2**64,
    -(2**31),
    -(2**62),
    -(2**63),
    -(2**63) - 1,
)


# ---------------------------------------------------------------------------- source text


def scalar_src(v: Any) -> str:
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
    if isinstance(v, np.generic):
        return scalar_src(v.item())
    return repr(v)


def np_src(a: np.ndarray) -> str:
    a = np.asarray(a)
    flat = ", ".join(scalar_src(v) for v in a.ravel().tolist())
    out = f"np.array([{flat}], dtype={_NP_SRC[a.dtype]})"
    return out if a.ndim == 1 else f"{out}.reshape({a.shape})"


def arg_src(v: Any) -> str:
    """Source text of an argument value (tensors carry their own)."""
    if isinstance(v, TP):
        return v.src
    if isinstance(v, bp.Tensor):
        return f"bp.tensor({np_src(v.numpy())})"
    if isinstance(v, np.ndarray):
        return np_src(v)
    if isinstance(v, (list, tuple)):
        inner = ", ".join(arg_src(x) for x in v)
        return f"[{inner}]" if isinstance(v, list) else (f"({inner},)" if len(v) == 1 else f"({inner})")
    if isinstance(v, slice):
        return f"slice({arg_src(v.start)}, {arg_src(v.stop)}, {arg_src(v.step)})"
    if v is Ellipsis:
        return "..."
    if isinstance(v, bp.dtype):
        return DT_SRC[NP[v]]
    return scalar_src(v)


def call_src(obj: str, name: str, *args: Any, **kwargs: Any) -> str:
    parts = [arg_src(a) for a in args] + [f"{k}={arg_src(v)}" for k, v in kwargs.items()]
    return f"{obj}.{name}({', '.join(parts)})"


# ---------------------------------------------------------------------------- elements


def _f(dtype, x: float) -> float:
    return float(np.asarray(x, dtype=dtype))


def elements(dtype, kind: Any = "any") -> st.SearchStrategy:
    """Scalar values of ``dtype``. kind: "any" (NaN, +-inf, -0.0, denormals, the extremes),
    "finite", "moderate" (|x| <= 1e3, with the odd NaN/inf/-0.0/denormal), "small" (|x| <= 3 or
    ints in -8..8), "positive" (> 0, finite, moderate), or a (lo, hi) pair."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return st.booleans()
    if dtype.kind == "i":
        if kind == "any":
            return st.one_of(
                st.integers(-8, 8),
                st.integers(I64_MIN, I64_MAX),
                st.sampled_from([I64_MIN, I64_MAX, I64_MIN + 1, 2**31, -(2**31) - 1, 2**53 + 1]),
            )
        if isinstance(kind, tuple):
            return st.integers(int(kind[0]), int(kind[1]))
        if kind == "positive":
            return st.integers(1, 8)
        return st.integers(-8, 8)
    width = 32 if dtype == np.float32 else 64
    tiny = float(np.finfo(dtype).smallest_subnormal)
    specials = st.sampled_from([math.nan, math.inf, -math.inf, -0.0, tiny, -tiny])
    if kind == "any":
        return st.floats(width=width)
    if kind == "finite":
        return st.floats(width=width, allow_nan=False, allow_infinity=False)
    if kind == "moderate":
        body = st.floats(-1e3, 1e3, width=width)
        return st.one_of(body, body, body, specials)  # one_of draws branches evenly: specials ~1 in 4
    if kind == "small":
        return st.floats(-3.0, 3.0, width=width)
    if kind == "positive":
        return st.floats(_f(dtype, 1e-3), 1e3, width=width)
    lo, hi = kind
    return st.floats(_f(dtype, lo), _f(dtype, hi), width=width)


# ---------------------------------------------------------------------------- tensors


@dataclass
class TP:
    """A tensor under test and what it should hold."""

    a: np.ndarray  # the logical values (an independent, writeable, C-contiguous copy)
    t: bp.Tensor
    src: str  # Python source rebuilding ``t``
    layout: str
    base: Optional[bp.Tensor] = None  # the tensor ``t`` is a view of (views share its memory)
    zero_dims: tuple = ()  # the dims expand() broadcast (stride 0 in PyTorch)

    @property
    def dtype(self) -> np.dtype:
        return self.a.dtype

    def __repr__(self) -> str:
        return self.src


LAYOUTS = ("contig", "permuted", "strided", "expanded", "selected", "numpy_view")
# Layouts whose memory the engine may write into (an expanded tensor refuses writes).
WRITABLE = ("contig", "permuted", "strided", "selected", "numpy_view")


def _sentinel(dtype):
    return {"f": 1234.5, "i": 1234567, "b": True}[np.dtype(dtype).kind]


def shapes(min_dims=0, max_dims=4, min_side=0, max_side=4) -> st.SearchStrategy:
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


@st.composite
def tensors(
    draw,
    dtypes: Sequence = ALL_DTYPES,
    shape: Optional[Sequence[int]] = None,
    min_dims: int = 0,
    max_dims: int = 4,
    min_side: int = 0,
    max_side: int = 4,
    kind: Any = "any",
    layouts: Sequence[str] = LAYOUTS,
) -> TP:
    dt = np.dtype(draw(st.sampled_from(list(dtypes))))
    shp = tuple(shape) if shape is not None else draw(shapes(min_dims, max_dims, min_side, max_side))
    layout = draw(st.sampled_from(list(layouts)))
    return build(draw, dt, shp, layout, kind)


def build(draw, dt: np.dtype, shp: tuple, layout: str, kind: Any = "any") -> TP:
    """A tensor of shape shp in the given layout; kind as in elements(), or ("fixed", array)
    for given values (then the expanded layout is not available)."""
    nd = len(shp)
    if isinstance(kind, tuple) and kind and kind[0] == "fixed":
        fixed = np.asarray(kind[1], dtype=dt)
        if layout == "expanded":
            layout = "contig"

        def values(s):
            return fixed.reshape(s).copy()
    else:
        el = elements(dt, kind)

        def values(s):
            return draw(hnp.arrays(dt, s, elements=el))

    if layout == "permuted" and nd >= 2:
        a = values(shp)
        how = draw(st.sampled_from(["permute", "transpose", "t", "mT"] if nd == 2 else ["permute", "transpose", "mT"]))
        if how == "permute":
            perm = draw(st.permutations(range(nd)))
        elif how == "transpose":
            i, j = draw(st.lists(st.integers(0, nd - 1), min_size=2, max_size=2, unique=True))
            perm = list(range(nd))
            perm[i], perm[j] = perm[j], perm[i]
        else:
            perm = list(range(nd - 2)) + [nd - 1, nd - 2]
        base_np = np.ascontiguousarray(a.transpose(np.argsort(perm)))
        base = bp.tensor(base_np)
        op = {
            "permute": f".permute({', '.join(map(str, perm))})",
            "t": ".t()",
            "mT": ".mT",
            "transpose": f".transpose({', '.join(str(d) for d, p in enumerate(perm) if d != p)})",
        }[how]
        t = eval(f"base{op}", {"base": base})  # one code path for the view and its source
        return TP(a.copy(), t, f"bp.tensor({np_src(base_np)}){op}", "permuted", base)
    if layout == "strided" and nd >= 1:
        steps = draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd))
        offs = draw(st.lists(st.integers(0, 1), min_size=nd, max_size=nd))
        if all(s == 1 for s in steps) and all(o == 0 for o in offs):
            steps[0] = 2
        a = values(shp)
        base_shape = tuple(o + n * s for n, s, o in zip(shp, steps, offs))
        base_np = np.full(base_shape, _sentinel(dt), dtype=dt)
        key = tuple(slice(o, o + n * s, s) for n, s, o in zip(shp, steps, offs))
        base_np[key] = a
        base = bp.tensor(base_np)
        t = base[key]
        return TP(
            a.copy(),
            t,
            f"bp.tensor({np_src(base_np)})[{', '.join(f'{k.start}:{k.stop}:{k.step}' for k in key)}]",
            "strided",
            base,
        )
    if layout == "expanded" and nd >= 1:
        lead = draw(st.integers(0, nd))
        mask = draw(st.lists(st.booleans(), min_size=nd - lead, max_size=nd - lead))
        small_shape = tuple(1 if m else n for m, n in zip(mask, shp[lead:]))
        small = values(small_shape)
        a = np.broadcast_to(small, shp).copy()
        spec = [n if (i < lead or mask[i - lead]) else draw(st.sampled_from([n, -1])) for i, n in enumerate(shp)]
        base = bp.tensor(small)
        t = base.expand(*spec)
        zero = tuple(i for i, n in enumerate(shp) if i < lead or (mask[i - lead] and n != 1))
        return TP(a, t, f"bp.tensor({np_src(small)}).expand({', '.join(map(str, spec))})", "expanded", base, zero)
    if layout == "selected":
        d = draw(st.integers(0, nd))
        m = draw(st.integers(1, 3))
        i = draw(st.integers(-m, m - 1))
        a = values(shp)
        base_np = np.full(shp[:d] + (m,) + shp[d:], _sentinel(dt), dtype=dt)
        base_np[(slice(None),) * d + (i,)] = a
        base = bp.tensor(base_np)
        t = base.select(d, i)
        return TP(a.copy(), t, f"bp.tensor({np_src(base_np)}).select({d}, {i})", "selected", base)
    if layout == "numpy_view" and nd >= 1:
        # A strided NumPy view handed to from_numpy: the engine must honour (or copy) its strides.
        steps = draw(st.lists(st.integers(1, 2), min_size=nd, max_size=nd))
        a = values(shp)
        base_np = np.full(tuple(n * s for n, s in zip(shp, steps)), _sentinel(dt), dtype=dt)
        key = tuple(slice(None, None, s) for s in steps)
        base_np[key] = a
        view = base_np[key]
        src_view = f"{np_src(base_np)}[{', '.join(f'::{s}' for s in steps)}]"
        if nd >= 2 and draw(st.booleans()):
            view, a = view.T, a.T
            src_view += ".T"
        t = bp.from_numpy(view)
        return TP(np.ascontiguousarray(a).copy(), t, f"bp.from_numpy({src_view})", "numpy_view", None)
    a = values(shp)
    return TP(a.copy(), bp.tensor(a), f"bp.tensor({np_src(a)})", "contig", None)


# ---------------------------------------------------------------------------- argument values

# Values of the wrong type for an int argument: PyTorch raises TypeError for all of them.
WRONG_INT = (1.5, float("nan"), float("inf"), "1", None, 1j, [1.0], b"1")


def dims(ndim: int, invalid: bool = True) -> st.SearchStrategy:
    """A dim argument: mostly valid ones (-ndim..ndim-1; 0 and -1 for a 0-d tensor), then
    out-of-range, huge and wrongly typed ones."""
    n = max(ndim, 1)
    valid = st.integers(-n, n - 1)
    if not invalid:
        return valid
    # just outside the range (where an off-by-one or a double wrap shows), then far outside / wrong types
    near = st.sampled_from([n, n + 1, -n - 1, -n - 2, -2 * n, 2 * n - 1, -2 * n - 1])
    return st.one_of(valid, valid, valid, near, st.sampled_from(list(HUGE_INTS) + list(WRONG_INT)))


def sizes(valid: st.SearchStrategy = st.integers(0, 4)) -> st.SearchStrategy:
    """A size argument: valid ones, then -1, negative, huge and wrongly typed values."""
    return st.one_of(valid, valid, valid, st.sampled_from([-1, -2, 0] + list(HUGE_INTS) + list(WRONG_INT)))


def int_arg(x: Any, what: str = "argument") -> int:
    """The value of an int argument as PyTorch's argument parser reads it: an int (not a bool,
    which PyTorch's parser handles inconsistently, so that is 'unspecified'), or TypeError."""
    if isinstance(x, bool):
        raise Unspecified(f"{what}: a bool where an int is expected")
    if isinstance(x, (int, np.integer)):
        v = int(x)
        if not I64_MIN <= v <= I64_MAX:
            raise Invalid(f"{what} {v} does not fit in int64")
        return v
    raise Invalid(f"{what} must be an int, got {type(x).__name__}")


def wrap_dim(d: Any, ndim: int, what: str = "dim") -> int:
    """PyTorch's maybe_wrap_dim: a 0-d tensor accepts 0 and -1."""
    d = int_arg(d, what)
    n = max(ndim, 1)
    if not -n <= d < n:
        raise Invalid(f"{what} {d} out of range for {ndim}-d")
    return d % n


def dim_list(ds: Any, ndim: int) -> tuple:
    ds = [ds] if not isinstance(ds, (list, tuple)) else list(ds)
    out = tuple(wrap_dim(d, ndim) for d in ds)
    if len(set(out)) != len(out):
        raise Invalid("dim appears more than once")
    return out
