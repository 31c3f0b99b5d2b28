"""Property-based fuzzing of the public API with Hypothesis.

Random shapes (0-d, empty, size 1, broadcast), every dtype, every layout the Tensor API makes
(contiguous, transposed/permuted, sliced with steps, expanded with stride 0, selected with an
offset, strided NumPy views), and valid and invalid argument values (negative, out-of-range and
huge dims and sizes, NaN/inf, None, wrong types). Each call goes through fuzz_oracle.Oracle: it
must agree with NumPy (PyTorch's documented semantics where they differ; those rules are written
out here, not taken from NumPy) or raise an ordinary Exception; a PanicException, an abort or a
hang always fails.

Profiles:

* CI (the default; bounded and deterministic, well under a minute)::

      python -m pytest tests/test_properties.py

* long (>= 10,000 examples per family; each family in its own subprocess, so an abort or a hang
  is reported with its reproducer and the other families still run; findings are collected
  instead of stopping at the first)::

      python tests/fuzz_long.py                    # every family, prints the figures table
      python tests/fuzz_long.py views getitem      # some families
      BACKPROP_FUZZ_PROFILE=long python -m pytest tests/test_properties.py -k views   # in-process

  BACKPROP_FUZZ_EXAMPLES=N changes the long profile's count (default 10000); tests/fuzz_long.py
  --help lists its options (seed, output folder, memory cap, per-call timeout, --no-exclude).

Defects the fuzzing finds get an id (D01...), a description in DEFECTS and a reproducer in
KNOWN_REPROS. While a defect is open its reproducer is a strict xfail (listed in OPEN) and the
property tests pass ``known=<id>`` for calls inside its region, which counts the mismatch
against that defect instead of failing (a crash is stepped around with ``Oracle.excluded``).
Once fixed, the id leaves OPEN and its reproducer runs as an ordinary regression test.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import backprop_rs as bp  # noqa: E402
import backprop_rs.nn.functional as F  # noqa: E402
import strategies as S  # noqa: E402
from fuzz_oracle import ShapeOnly, EXACT, Either, Invalid, Mismatch, Oracle, Tol, Unspecified, assert_same, budget  # noqa: E402
from strategies import TP, arg_src, np_src  # noqa: E402

F32, F64, I64, BOOL = (np.dtype(t) for t in (np.float32, np.float64, np.int64, np.bool_))
_ORDER = {BOOL: 0, I64: 1, F32: 2, F64: 3}
_CAT = {BOOL: 0, I64: 1, F32: 2, F64: 2}


def _promote(a, b):
    return a if _ORDER[a] >= _ORDER[b] else b


# ---------------------------------------------------------------------------- PyTorch's result_type


def operand_kind(x):
    """'dim' (a tensor with dims), 'zero' (a 0-d tensor) or 'wrapped' (a Python number)."""
    if isinstance(x, TP):
        return "dim" if x.a.ndim > 0 else "zero"
    return "wrapped"


def operand_dtype(x):
    if isinstance(x, TP):
        return x.dtype
    if isinstance(x, bool):
        return BOOL
    if isinstance(x, int):
        return I64
    return F32  # a Python float participates as the default dtype (float32)


def result_type(*xs):
    """torch.result_type: dimensioned tensors > 0-d tensors > Python numbers; a lower class
    takes part only when its category (bool < int < float) is higher."""
    state = {}
    for x in xs:
        k, d = operand_kind(x), operand_dtype(x)
        state[k] = d if k not in state else _promote(state[k], d)

    def combine(higher, lower):
        if higher is None:
            return lower
        if lower is None:
            return higher
        if _CAT[higher] == 2:
            return higher
        if higher == BOOL or _CAT[lower] == 2:
            return _promote(higher, lower)
        return higher

    return combine(state.get("dim"), combine(state.get("zero"), state.get("wrapped")))


def as_np(x, dtype):
    """An operand converted to the computation dtype, as PyTorch's TensorIterator casts it."""
    if isinstance(x, TP):
        return x.a.astype(dtype)
    if dtype == BOOL:
        return np.asarray(bool(x))
    if dtype == I64:
        return np.asarray(int(x), dtype=I64)
    return np.asarray(x, dtype=np.float64).astype(dtype)


def src(x):
    return arg_src(x)


# ---------------------------------------------------------------------------- defects
# Each id has a strict xfail reproducer in test_known_defect at the end of the file; the property
# tests pass ``known=<id>`` for calls inside the defect's region, so its findings are counted
# there instead of failing (a panic is never excused).

DEFECTS = {
    "D01": "sign() of a bool tensor returns int64 (PyTorch: bool); so bool.sign_() raises",
    "D02": "square() and ** int of a bool tensor return bool (PyTorch: int64; square is pow(x, 2))",
    "D03": "subtraction with one bool operand (tensor or Python bool) is accepted (PyTorch raises)",
    "D04": "an integer tensor ** a negative Python int is accepted (PyTorch raises)",
    "D05": "a Python int outside int64 wraps silently in where() (== and != return a Python bool)",
    "D06": "logical_and/or/xor test truthiness before casting to the common dtype",
    "D07": "int64 pow with an exponent >= 2**32 is not the wrapping product",
    "D08": "max/min/argmax/argmin over a non-empty dim of an empty tensor raise (PyTorch: empty result)",
    "D09": "repeated dims are accepted (reductions of a 0-d tensor, squeeze with a tuple)",
    "D10": "sum() of a 0-d bool tensor returns bool (PyTorch: int64)",
    "D11": "repeat() returns an expanded view sharing the input's memory, not a copy",
    "D12": "flatten(start, end) and squeeze(dim) of a 0-d tensor accept out-of-range dims (PyTorch: IndexError)",
    "D13": "slice bounds beyond int64 (t[:2**63]) raise TypeError (PyTorch clamps them)",
    "D14": "a Python bool index (t[True], t[False]) is taken as the int 1/0, and raises on a 0-d tensor",
    "D15": "a Python list assigned with t[k] = [...] goes through float32 (f64 precision lost, tiny values become 0)",
    "D16": "-0.0 written by fill_/full/setitem/where from a Python float becomes +0.0",
    "D17": "in-place writes into an empty tensor raise 'expanded view' (its strides are 0 before a size-0 dim)",
    "D18": "t[int, index] = v checks overlap on the whole tensor, not on t[int]: refused on expanded tensors",
    "D19": "max(None, keepdim) / min(None, keepdim) are accepted as a full reduction (PyTorch: TypeError)",
    "D20": "linspace(start, end, steps=1) gives [end] (PyTorch: [start])",
    "D21": "bp.tensor() turns None into NaN, 1j into 0, '1.5' into 1.5, an int beyond int64 into float32 (or wraps "
    "it with dtype=int64); PyTorch raises",
    "D38": "chunk(n) of a dim of size 0 returns one piece (PyTorch: n empty pieces)",
    "D23": "a bytes object is accepted as a size (bp.ones(b'1') has 49 elements; also expand; PyTorch: TypeError)",
    "D24": "PanicException in F.unfold / F.conv2d with a huge padding (cpu/conv.rs:60); on an empty batch "
    "conv2d returns dims > int64",
    "D26": "F.fold refuses an unbatched 2-d input [C*kh*kw, L] (PyTorch accepts it)",
    "D27": "F.conv2d accepts dilation=0 (with padding='same', 1x1 kernels or an empty batch) and stride=0 on an "
    "empty batch",
    "D28": "F.pad(mode='constant') refuses negative pads with OverflowError (PyTorch crops)",
    "D29": "F.avg_pool2d accepts an empty C, H or W (PyTorch: the non-batch dims must be non-empty)",
    "D30": "bp.save of an empty view with a storage offset raises 'its storage does not hold float32 data'",
    "D22": "SEGFAULT: .numpy()/tolist()/np.asarray of an empty tensor whose other dims multiply past int64 "
    "(bp.zeros(0, 2**33, 2**33))",
    "D31": "bp.eye(n, m) reads n and m as unsigned: 2**63 <= n < 2**64 makes a dim beyond int64 (PyTorch: overflow)",
    "D32": "narrow(dim, start, 0) accepts a start beyond the dim's size (PyTorch: start out of range)",
    "D34": "bp.manual_seed refuses seeds in [2**63, 2**64) with OverflowError (PyTorch takes [-2**63, 2**64))",
    "D35": "uniform_(from, to) with to - from beyond the dtype's max fills inf (PyTorch raises)",
    "D36": "F.max_pool2d of an empty batch raises (argmax of an empty tensor); PyTorch returns the empty result",
    "D37": "max/avg_pool2d with ceil_mode=True refuse a kernel larger than the padded input even where PyTorch's "
    "output size is 1 (a clipped window)",
    "D39": "squeeze(dim) wraps a dim in [-2*ndim, -ndim-1] instead of raising: ones(3, 1).squeeze(-3) squeezes dim 1",
    "D40": "cross_entropy with probability targets accepts a weight that only broadcasts to [C] (PyTorch: shape [C])",
    "D41": "an integer tensor ** a 0-d float tensor holding an integral value (2.0) stays int64: the dtype depends on "
    "the value (PyTorch: float32)",
    "D42": "add/sub(other, alpha=...) computes alpha * other in other's dtype before promoting: float64 + float32 "
    "other loses precision (PyTorch computes in the result dtype)",
    "D43": "repeat() of an empty tensor skips the overflow check: bp.zeros(0, 3).repeat(1, 2**62) has a dim of 3*2**62",
    "D44": "logical_and/or/xor with a Python float test its truthiness before casting it to the tensor's dtype "
    "(1e-300 is 0 in float32, so logical_or with it is False)",
    "D33": "batch_norm / layer_norm statistics lose precision in float32: a constant channel normalises to ~1e-4, "
    "not 0 (batch_norm of 60 equal values; layer_norm of an expanded input, exact when contiguous)",
}


def _huge_int(x):
    return isinstance(x, int) and not isinstance(x, bool) and not S.I64_MIN <= x <= S.I64_MAX


# ---------------------------------------------------------------------------- unary elementwise


def ERR():
    return np.errstate(all="ignore")


def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def _rsqrt(x):
    return 1.0 / np.sqrt(x)


# name -> (engine, NumPy on float64, dtype rule, tolerance kind)
# rule "float": ints and bools become float32 (PyTorch's unary_float_op); "same": keeps the dtype.
UNARY = {
    "neg": (lambda t: -t, np.negative, "same"),
    "abs": (lambda t: t.abs(), np.abs, "same"),
    "sign": (lambda t: t.sign(), np.sign, "same"),
    "square": (lambda t: t.square(), np.square, "same"),
    "relu": (lambda t: t.relu(), lambda x: np.where(np.isnan(x), x, np.maximum(x, 0)), "same"),
    "exp": (lambda t: t.exp(), np.exp, "float"),
    "log": (lambda t: t.log(), np.log, "float"),
    "sqrt": (lambda t: t.sqrt(), np.sqrt, "float"),
    "rsqrt": (lambda t: t.rsqrt(), _rsqrt, "float"),
    "sin": (lambda t: t.sin(), np.sin, "float"),
    "cos": (lambda t: t.cos(), np.cos, "float"),
    "tanh": (lambda t: t.tanh(), np.tanh, "float"),
    "sigmoid": (lambda t: t.sigmoid(), lambda x: 1.0 / (1.0 + np.exp(-x)), "float"),
    "erf": (lambda t: t.erf(), _erf, "float"),
    "reciprocal": (lambda t: t.reciprocal(), lambda x: 1.0 / x, "float"),
    "logical_not": (lambda t: t.logical_not(), np.logical_not, "bool"),
    "bitwise_not": (lambda t: ~t, np.invert, "bitwise"),
    "pos": (lambda t: +t, lambda x: x, "same"),
}
# Outputs bounded by 1 in magnitude: an absolute tolerance as well (range reduction of huge
# arguments and cancellation near the zeros).
_BOUNDED = {"sin", "cos", "tanh", "sigmoid", "erf"}

unary_oracle = Oracle("unary")


def unary_out_dtype(name, dt):
    rule = UNARY[name][2]
    if rule == "bool":
        return BOOL
    if rule == "float":
        return F32 if dt.kind in "ib" else dt
    if name == "square" and dt == BOOL:
        return I64
    return dt


def unary_expected(name, x: TP):
    ref, rule = UNARY[name][1], UNARY[name][2]
    dt, out = x.dtype, unary_out_dtype(name, x.dtype)
    if rule == "bitwise":
        if dt.kind == "f":
            raise Invalid("bitwise_not needs an integer or bool tensor")
        return np.invert(x.a)
    if rule == "bool":
        return np.logical_not(x.a)
    if dt == BOOL and name not in ("sign", "square", "pos"):
        if name == "neg":
            raise Invalid("negation of a bool tensor")  # PyTorch: use ~ or logical_not
        raise Unspecified(f"{name} of a bool tensor (PyTorch's kernel has no Bool case)")
    if dt == BOOL:
        # sign_kernel has a Bool case returning its input; square is pow(x, 2): bool -> int64
        return x.a.astype(out)
    if out == I64:
        return ref(x.a).astype(I64)
    return ref(x.a.astype(out).astype(np.float64)).astype(out)


def unary_tol(name, dt):
    if dt == F32:
        return Tol(atol=(1e-6 if name in _BOUNDED else 1e-37), rtol=4e-6)
    if dt == F64:
        return Tol(atol=(1e-15 if name in _BOUNDED else 1e-307), rtol=1e-13)
    return EXACT


def _sign_compare(x: TP, tol):
    def cmp(got, want):
        if x.dtype.kind == "f" and isinstance(got, np.ndarray) and got.shape == want.shape:
            got = got.copy()
            got[np.isnan(x.a) & (got == 0)] = np.nan  # sign(NaN): 0 in PyTorch, NaN in NumPy
        assert_same(got, want, tol)

    return cmp


@budget(60)
@given(name=st.sampled_from(sorted(UNARY)), x=S.tensors())
def test_unary_elementwise(name, x):
    unary_oracle.example()
    tol = unary_tol(name, unary_out_dtype(name, x.dtype))
    unary_oracle.check(
        f"{name}({x.src})",
        lambda: UNARY[name][0](x.t),
        lambda: unary_expected(name, x),
        tol=tol,
        compare=_sign_compare(x, tol) if name == "sign" else None,
    )
    # an out-of-place op never modifies its input
    unary_oracle.check(f"{x.src} unchanged after {name}", lambda: x.t, lambda: x.a, tol=EXACT)


# ---------------------------------------------------------------------------- binary elementwise


def _int_pow(a, b):
    """PyTorch's integer pow (powi): wraps like repeated multiplication; a negative exponent
    gives 1 for base 1, +-1 for base -1 and 0 otherwise."""
    a, b = np.broadcast_arrays(a.astype(I64), b.astype(I64))
    out = np.empty(a.shape, I64)
    for i in np.ndindex(a.shape):
        base, e = int(a[i]), int(b[i])
        if e < 0:
            out[i] = 1 if base == 1 else ((-1 if e % 2 else 1) if base == -1 else 0)
        else:
            r = pow(base, e, 2**64)
            out[i] = r - 2**64 if r >= 2**63 else r
    return out


def _with_wrap(fn):
    def f(a, b):
        with ERR():
            return fn(a, b)

    return f


# name -> (engine, NumPy, kind)
BINARY = {
    "add": (operator.add, np.add, "arith"),
    "add_m": (lambda a, b: a.add(b), np.add, "arith"),
    "sub": (operator.sub, np.subtract, "sub"),
    "mul": (operator.mul, np.multiply, "arith"),
    "div": (operator.truediv, np.true_divide, "div"),
    "pow": (operator.pow, None, "pow"),
    "maximum": (lambda a, b: bp.maximum(a, b), np.maximum, "minmax"),
    "minimum": (lambda a, b: bp.minimum(a, b), np.minimum, "minmax"),
    "eq": (operator.eq, np.equal, "cmp"),
    "ne": (operator.ne, np.not_equal, "cmp"),
    "lt": (operator.lt, np.less, "cmp"),
    "le": (operator.le, np.less_equal, "cmp"),
    "gt": (operator.gt, np.greater, "cmp"),
    "ge": (operator.ge, np.greater_equal, "cmp"),
    "logical_and": (lambda a, b: a.logical_and(b), np.logical_and, "logical"),
    "logical_or": (lambda a, b: a.logical_or(b), np.logical_or, "logical"),
    "logical_xor": (lambda a, b: a.logical_xor(b), np.logical_xor, "logical"),
    "and": (operator.and_, np.bitwise_and, "bitwise"),
    "or": (operator.or_, np.bitwise_or, "bitwise"),
    "xor": (operator.xor, np.bitwise_xor, "bitwise"),
}
_OPSYM = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "pow": "**",
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "and": "&",
    "or": "|",
    "xor": "^",
}

binary_oracle = Oracle("binary")


def binary_expected(name, a, b):
    kind = BINARY[name][2]
    for x in (a, b):
        if not isinstance(x, TP) and isinstance(x, int) and not isinstance(x, bool) and not S.I64_MIN <= x <= S.I64_MAX:
            raise Invalid("a Python int that does not fit in int64")
    shapes = [x.a.shape for x in (a, b) if isinstance(x, TP)]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise Invalid("shapes do not broadcast") from None
    rt = result_type(a, b)
    if kind == "sub" and BOOL in (operand_dtype(a), operand_dtype(b)):
        raise Invalid("subtraction with a bool operand")  # PyTorch: use ^ / logical_xor or ~
    if kind == "bitwise" and rt.kind == "f":
        raise Invalid("bitwise ops need integer or bool operands")
    if name.startswith(("maximum", "minimum")) and not (isinstance(a, TP) and isinstance(b, TP)):
        raise Unspecified("torch.maximum takes two tensors; a Python number is an extension")
    if kind == "div":
        ct = F32 if rt.kind in "ib" else rt
    else:
        ct = rt
    x, y = as_np(a, ct), as_np(b, ct)
    with ERR():
        if kind == "pow":
            if ct == BOOL:
                raise Unspecified("pow of bools")
            if ct == I64:
                if not isinstance(b, TP) and int(b) < 0:
                    raise Invalid("integers to negative integer powers")
                out = _int_pow(x, y)
            else:
                out = np.power(x.astype(np.float64), y.astype(np.float64)).astype(ct)
        elif kind in ("cmp", "logical"):
            out = BINARY[name][1](x, y)
        elif kind == "div":
            out = (x.astype(np.float64) / y.astype(np.float64)).astype(ct) if ct == F32 else np.true_divide(x, y)
        else:
            out = BINARY[name][1](x, y)
    out = np.asarray(out)
    out = np.broadcast_to(out, shape).astype(out.dtype if kind in ("cmp", "logical") else ct)
    return out


@st.composite
def binary_operands(draw, dtypes=S.ALL_DTYPES, kind="any"):
    """Two operands: tensors of broadcastable (sometimes not) shapes in any layout, 0-d tensors
    and Python numbers, in either order."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)).input_shapes
    if draw(st.integers(0, 9)) == 0:
        shapes = (draw(S.shapes(1, 3, 1, 4)), draw(S.shapes(1, 3, 1, 4)))  # mostly not broadcastable
    out = []
    for shp in shapes:
        form = draw(st.sampled_from(["tensor", "tensor", "tensor", "zero", "scalar"]))
        if form == "scalar":
            out.append(
                draw(
                    st.one_of(
                        st.booleans(),
                        st.integers(-8, 8),
                        st.integers(S.I64_MIN, S.I64_MAX),
                        st.sampled_from([2**63, -(2**63) - 1]),
                        st.floats(width=64),
                    )
                )
            )
        else:
            out.append(draw(S.tensors(dtypes=dtypes, shape=() if form == "zero" else shp, kind=kind)))
    if not any(isinstance(x, TP) for x in out):
        out[draw(st.integers(0, 1))] = draw(S.tensors(dtypes=dtypes, shape=shapes[0], kind=kind))
    return out


def binary_tol(name, dt):
    if dt == F32:
        return Tol(atol=1e-37, rtol=(2e-5 if name == "pow" else 1e-6))
    if dt == F64:
        return Tol(atol=1e-307, rtol=(1e-13 if name == "pow" else 1e-15))
    return EXACT


@budget(80)
@given(name=st.sampled_from(sorted(BINARY)), ops=binary_operands())
def test_binary_elementwise(name, ops):
    binary_oracle.example()
    a, b = ops
    fn = BINARY[name][0]
    sym = _OPSYM.get(name)
    desc = f"({src(a)}) {sym} ({src(b)})" if sym else f"{name}({src(a)}, {src(b)})"

    def call():
        return fn(a.t if isinstance(a, TP) else a, b.t if isinstance(b, TP) else b)

    if not isinstance(a, TP) and not sym:
        return  # methods need a tensor on the left
    try:
        rt = result_type(a, b)
    except Exception:
        rt = F32
    binary_oracle.check(desc, call, lambda: binary_expected(name, a, b), tol=binary_tol(name, rt))


def _clamp_expected(x: TP, lo, hi):
    if lo is None and hi is None:
        raise Invalid("clamp needs min or max")
    parts = [v for v in (x, lo, hi) if v is not None]
    rt = result_type(*parts)
    if rt == BOOL:
        raise Unspecified("clamp of bools")
    shapes = [v.a.shape for v in parts if isinstance(v, TP)]
    try:
        shape = np.broadcast_shapes(*shapes)
    except ValueError:
        raise Invalid("shapes do not broadcast") from None
    with ERR():
        out = as_np(x, rt).astype(np.float64) if rt.kind == "f" else as_np(x, rt)
        if lo is not None:
            lo_ = as_np(lo, rt)
            out = np.where(np.isnan(lo_) | (out < lo_), lo_, out) if rt.kind == "f" else np.maximum(out, lo_)
        if hi is not None:
            hi_ = as_np(hi, rt)
            out = np.where(np.isnan(hi_) | (out > hi_), hi_, out) if rt.kind == "f" else np.minimum(out, hi_)
        if rt.kind == "f":
            out = np.where(np.isnan(as_np(x, rt)), np.nan, out)
    return np.broadcast_to(np.asarray(out).astype(rt), shape).copy()


@budget(40)
@given(
    x=S.tensors(dtypes=S.FLOATS + S.INTS),
    lo=st.one_of(st.none(), st.floats(width=32), st.integers(-5, 5), S.tensors(max_dims=2)),
    hi=st.one_of(st.none(), st.floats(width=32), st.integers(-5, 5), S.tensors(max_dims=2)),
)
def test_clamp(x, lo, hi):
    """clamp(x, min, max) = min(max(x, min), max): min > max gives max; NaN anywhere gives NaN;
    tensor bounds broadcast and take part in type promotion."""
    binary_oracle.example()
    lo_v = lo.t if isinstance(lo, TP) else lo
    hi_v = hi.t if isinstance(hi, TP) else hi
    binary_oracle.check(
        f"{x.src}.clamp({src(lo)}, {src(hi)})",
        lambda: x.t.clamp(lo_v, hi_v),
        lambda: _clamp_expected(x, lo, hi),
        tol=Tol(rtol=0, atol=0),
    )


@budget(40)
@given(cond=S.tensors(dtypes=S.BOOLS + S.FLOATS[:1], max_dims=3), ops=binary_operands())
def test_where(cond, ops):
    """where(cond, a, b): a bool condition, all three broadcast, a and b promote as in add."""
    binary_oracle.example()
    a, b = ops

    def ref():
        if cond.dtype != BOOL:
            raise Invalid("the condition must be a bool tensor")
        for x in (a, b):
            if not isinstance(x, TP) and isinstance(x, int) and not S.I64_MIN <= x <= S.I64_MAX:
                raise Invalid("a Python int that does not fit in int64")
        try:
            shape = np.broadcast_shapes(cond.a.shape, *[x.a.shape for x in (a, b) if isinstance(x, TP)])
        except ValueError:
            raise Invalid("shapes do not broadcast") from None
        rt = result_type(a, b)
        return np.broadcast_to(np.where(cond.a, as_np(a, rt), as_np(b, rt)), shape).astype(rt)

    av = a.t if isinstance(a, TP) else a
    bv = b.t if isinstance(b, TP) else b
    binary_oracle.check(f"bp.where({cond.src}, {src(a)}, {src(b)})", lambda: bp.where(cond.t, av, bv), ref, tol=EXACT)


# ---------------------------------------------------------------------------- reductions

reduce_oracle = Oracle("reductions")
REDUCTIONS = [
    "sum",
    "sum_dtype",
    "mean",
    "amax",
    "amin",
    "argmax",
    "argmin",
    "var",
    "std",
    "any",
    "all",
    "logsumexp",
    "max_dim",
    "min_dim",
    "max_all",
    "min_all",
]


def _axes(dim, ndim, multi=True, none_ok=True):
    """The reduced axes for a dim argument (None: all), PyTorch's rules for lists and 0-d."""
    if dim is None:
        if not none_ok:
            raise Invalid("dim is required")
        return tuple(range(ndim))
    if isinstance(dim, (list, tuple)):
        if not multi:
            raise Invalid("dim must be an int")
        if len(dim) == 0:
            raise Unspecified("an empty dim list (reduce-all in some versions, an error or no-op in others)")
        axes = S.dim_list(dim, ndim)
    else:
        axes = (S.wrap_dim(dim, ndim),)
    return tuple(a for a in axes if ndim > 0)  # a 0-d tensor accepts dim 0 / -1 and reduces nothing


def _keep(out, axes, ndim, keepdim):
    if keepdim:
        return np.expand_dims(out, axes) if axes else out
    return out


def _logsumexp(x, axes):
    with ERR():
        x = x.astype(np.float64)
        if x.size == 0 or any(x.shape[a] == 0 for a in axes):
            return np.full([n for i, n in enumerate(x.shape) if i not in axes], -np.inf)
        m = np.max(x, axis=axes, keepdims=True) if axes else x
        m_fin = np.where(np.isfinite(m), m, 0.0)
        s = np.log(np.sum(np.exp(x - m_fin), axis=axes, keepdims=True)) + m_fin if axes else x
        out = np.where(np.isinf(m) & (m > 0), np.inf, s) if axes else x
        out = np.where(np.isnan(m), np.nan, out) if axes else out
        return np.squeeze(out, axis=axes) if axes else out


def _arg_first(x, axis, want_max):
    """Index of the first max/min (NaN counts as both, as in PyTorch and NumPy)."""
    return np.argmax(x, axis=axis) if want_max else np.argmin(x, axis=axis)


def reduce_expected(name, x: TP, dim, keepdim, extra):
    a, dt, nd = x.a, x.dtype, x.a.ndim
    if name in ("argmax", "argmin", "max_dim", "min_dim"):
        if name.endswith("_dim") and dim is None:
            raise Invalid("max(dim) needs a dim")
        axes = _axes(dim, nd, multi=False)
        if dt == BOOL and name.startswith("arg"):
            raise Unspecified("argmax of a bool tensor (no Bool kernel in PyTorch)")
        if any(a.shape[i] == 0 for i in axes) or a.size == 0 and dim is None:
            raise Invalid("reduction over an empty dimension")
        if dim is None:
            idx = np.asarray(_arg_first(a.ravel(), 0, name == "argmax"), dtype=I64)
            return idx.reshape((1,) * nd) if keepdim else idx
        if not axes:  # 0-d
            idx = np.asarray(0, dtype=I64)
            return idx if name.startswith("arg") else (a.copy(), idx)
        idx = np.asarray(_arg_first(a, axes[0], name in ("argmax", "max_dim")), dtype=I64)
        vals = (np.max if name == "max_dim" else np.min)(a, axis=axes[0]) if name.endswith("_dim") else None
        idx = _keep(idx, axes, nd, keepdim)
        if name.startswith("arg"):
            return idx
        return (_keep(np.asarray(vals, dtype=dt), axes, nd, keepdim), idx)
    if name in ("max_all", "min_all"):
        if a.size == 0:
            raise Invalid("max() of an empty tensor")
        return np.asarray((np.max if name == "max_all" else np.min)(a), dtype=dt)
    if name == "logsumexp":
        axes = _axes(dim, nd, none_ok=False)
        out_dt = F32 if dt.kind in "ib" else dt
        return _keep(np.asarray(_logsumexp(a.astype(out_dt), axes)).astype(out_dt), axes, nd, keepdim)
    axes = _axes(dim, nd)
    with ERR():
        if name in ("sum", "sum_dtype"):
            out_dt = extra if name == "sum_dtype" else (I64 if dt.kind in "ib" else dt)
            if out_dt == BOOL:
                raise Unspecified("sum with dtype=bool")
            src_ = a.astype(out_dt)
            out = np.sum(src_.astype(np.float64) if out_dt.kind == "f" else src_, axis=axes).astype(out_dt)
        elif name == "mean":
            if dt.kind in "ib":
                raise Invalid("mean of an integer tensor needs dtype=")
            out = np.mean(a.astype(np.float64), axis=axes).astype(dt) if a.size or axes else np.asarray(np.nan, dt)
            if any(a.shape[i] == 0 for i in axes):
                out = np.full(np.shape(out), np.nan, dt)
        elif name in ("amax", "amin"):
            if any(a.shape[i] == 0 for i in axes) or (a.size == 0 and not axes and nd > 0):
                raise Invalid("amax over an empty dimension")
            out = (np.max if name == "amax" else np.min)(a, axis=axes) if axes else a.copy()
            out = np.asarray(out, dtype=dt)
        elif name in ("any", "all"):
            out = (np.any if name == "any" else np.all)(a, axis=axes) if axes else a.astype(bool)
            if isinstance(dim, (list, tuple)):
                return Either(
                    _keep(np.asarray(out, dtype=BOOL), axes, nd, keepdim), "any/all over several dims is newer PyTorch"
                )
            out = np.asarray(out, dtype=BOOL)
        else:  # var / std
            if dt.kind in "ib":
                raise Unspecified("var/std of an integer tensor (PyTorch raises)")
            corr = extra
            n = math.prod(a.shape[i] for i in axes)
            x64 = a.astype(np.float64)
            mean = np.mean(x64, axis=axes, keepdims=True) if n else np.zeros([1] * nd)
            ss = np.sum((x64 - mean) ** 2, axis=axes)
            out = ss / max(0, n - corr)
            if name == "std":
                out = np.sqrt(out)
            out = np.asarray(out).astype(dt)
    return _keep(np.asarray(out), axes, nd, keepdim)


def _reduce_call(name, t, dim, keepdim, extra):
    if name == "sum_dtype":
        return t.sum(dim, keepdim, dtype=S.BP[extra])
    if name in ("max_dim", "min_dim"):
        return getattr(t, name[:3])(dim, keepdim)
    if name in ("max_all", "min_all"):
        return getattr(t, name[:3])()
    if name in ("var", "std"):
        return getattr(t, name)(dim, keepdim=keepdim, correction=extra)
    return getattr(t, name)(dim, keepdim)


def reduce_tol(name, x: TP):
    dt = x.dtype
    if name in ("argmax", "argmin", "any", "all") or dt.kind in "ib" and name.startswith("sum"):
        return EXACT
    if name in ("amax", "amin", "max_all", "min_all", "max_dim", "min_dim"):
        return Tol()  # exact, but max(0.0, -0.0) may be either zero
    eps = 1e-6 if dt == F32 or (dt.kind in "ib") else 1e-13
    with ERR():
        fin = x.a[np.isfinite(x.a)].astype(np.float64) if x.a.dtype.kind == "f" else x.a.astype(np.float64)
        scale = float(np.sum(np.abs(fin))) if fin.size else 0.0
        big = float(np.max(fin**2)) if fin.size else 0.0
    if name in ("var", "std"):
        return Tol(atol=eps * 10 * max(big, 1e-30) * max(x.a.size, 1), rtol=eps * 10)
    if name == "logsumexp":
        return Tol(atol=eps * 10, rtol=eps * 10)
    return Tol(atol=eps * 4 * scale + 1e-30, rtol=eps * 4)


@budget(80)
@given(name=st.sampled_from(REDUCTIONS), data=st.data())
def test_reductions(name, data):
    reduce_oracle.example()
    kind = "moderate" if name in ("sum", "sum_dtype", "mean", "var", "std", "logsumexp") else "any"
    x = data.draw(S.tensors(kind=kind), "x")
    nd = x.a.ndim
    one = S.dims(nd)
    dim = data.draw(st.one_of(st.none(), one, st.lists(one, max_size=3), st.tuples(one, one)), "dim")
    if name in ("logsumexp", "max_dim", "min_dim") and dim is None:
        dim = data.draw(one, "dim")
    keepdim = data.draw(st.booleans(), "keepdim")
    extra = None
    if name == "sum_dtype":
        extra = data.draw(st.sampled_from(S.ALL_DTYPES), "dtype")
    elif name in ("var", "std"):
        extra = data.draw(st.sampled_from([0, 1, 1, 2, 5]), "correction")
    if name in ("var", "std") and x.dtype.kind == "f" and np.any((np.abs(x.a) < 1e-30) & (x.a != 0)):
        return  # squares of tiny values underflow in float32: 0/0 (nan) vs tiny/0 (inf) is not a defect
    args = (
        f"{arg_src(dim)}, keepdim={keepdim}"
        + (f", dtype={arg_src(S.BP[extra])}" if name == "sum_dtype" else "")
        + (f", correction={extra}" if extra is not None and name in ("var", "std") else "")
    )
    reduce_oracle.check(
        f"{x.src}.{name}({args})",
        lambda: _reduce_call(name, x.t, dim, keepdim, extra),
        lambda: reduce_expected(name, x, dim, keepdim, np.dtype(extra) if name == "sum_dtype" else extra),
        tol=reduce_tol(name, x),
    )


# ---------------------------------------------------------------------------- views and shape ops

views_oracle = Oracle("views")


def _ints(seq, what="size"):
    return [S.int_arg(v, what) for v in seq]


def infer_shape(shape, numel):
    """PyTorch's infer_size for reshape/view: one -1, no other negative, the product must match."""
    shape = _ints(shape)
    if sum(1 for s in shape if s == -1) > 1:
        raise Invalid("only one dimension can be inferred")
    if any(s < -1 for s in shape):
        raise Invalid("negative size")
    known = 1
    for s in shape:
        if s != -1:
            known *= s
            if known > S.I64_MAX:
                raise Unspecified("the product of the sizes overflows int64")
    if -1 in shape:
        if known == 0 or numel % known:
            raise Invalid("cannot infer the -1")
        shape = [numel // known if s == -1 else s for s in shape]
    elif known != numel:
        raise Invalid("shape is invalid for the number of elements")
    return tuple(shape)


def compute_stride(oldshape, oldstride, newshape):
    """ATen's computeStride: the strides of a view of (oldshape, oldstride) as newshape, or
    None when no view exists (then view() raises and reshape() copies)."""
    if not oldshape:
        return [1] * len(newshape)
    numel = math.prod(oldshape)
    if numel == 0:
        return "zero"
    newstride = [0] * len(newshape)
    view_d = len(newshape) - 1
    chunk_base_stride = oldstride[-1]
    tensor_numel = 1
    view_numel = 1
    for tensor_d in range(len(oldshape) - 1, -1, -1):
        tensor_numel *= oldshape[tensor_d]
        if tensor_d == 0 or (
            oldshape[tensor_d - 1] != 1 and oldstride[tensor_d - 1] != tensor_numel * chunk_base_stride
        ):
            while view_d >= 0 and (view_numel < tensor_numel or newshape[view_d] == 1):
                newstride[view_d] = view_numel * chunk_base_stride
                view_numel *= newshape[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base_stride = oldstride[tensor_d - 1]
                tensor_numel = 1
                view_numel = 1
    if view_d != -1:
        return None
    return newstride


def _shape_args(args):
    """reshape(*sizes) and reshape(sizes) are the same call; None means the tuple form was used."""
    return list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)


def _expand_shape(old, sizes):
    sizes = _ints(sizes)
    if len(sizes) < len(old):
        raise Invalid("expand needs at least as many sizes as dims")
    lead = len(sizes) - len(old)
    out = []
    for i, s in enumerate(sizes):
        if i < lead:
            if s < 0:
                raise Invalid("-1 (or a negative size) in a new leading dimension")
            out.append(s)
            continue
        o = old[i - lead]
        if s == -1:
            out.append(o)
        elif s < -1:
            raise Invalid("negative size")
        elif o == 1 or s == o:
            out.append(s)
        else:
            raise Invalid("expanded size must match a non-singleton dimension")
    if math.prod(out) > S.I64_MAX:
        raise Unspecified("more elements than int64 holds")
    return tuple(out)


@dataclass
class Huge:
    """A result too large to materialise: only its shape is compared."""

    shape: tuple


def view_reference(name, ids: np.ndarray, args, strides):
    """The result of view op ``name`` on ``ids`` (an index array standing for the tensor), with
    PyTorch's argument rules. Returns an index array (or a list of them)."""
    nd = ids.ndim
    if name in ("reshape", "view"):
        shape = infer_shape(_shape_args(args), ids.size)
        if name == "view" and compute_stride(list(ids.shape), list(strides), list(shape)) is None:
            raise Invalid("view of a tensor whose strides are not compatible (use reshape)")
        if max(shape, default=0) > 10**6:
            return Huge(shape)
        return ids.reshape(shape)
    if name == "permute":
        dims = [S.wrap_dim(d, nd) for d in _shape_args(args)] if nd else [S.wrap_dim(d, 0) for d in _shape_args(args)]
        if nd == 0:
            if dims:
                raise Unspecified("permute of a 0-d tensor with dims")
            return ids
        if sorted(dims) != list(range(nd)):
            raise Invalid("dims must be a permutation")
        return ids.transpose(dims)
    if name in ("transpose", "swapaxes"):
        d0, d1 = (S.wrap_dim(d, nd) for d in args)
        return ids if nd == 0 else np.swapaxes(ids, d0, d1)
    if name == "t":
        if nd > 2:
            raise Invalid("t() expects a tensor with <= 2 dimensions")
        return ids.T
    if name == "mT":
        if nd < 2:
            raise Invalid("mT needs at least 2 dims")
        return np.swapaxes(ids, -1, -2)
    if name == "squeeze":
        (dim,) = args
        if dim is None:
            return ids.reshape([n for n in ids.shape if n != 1])
        dims = S.dim_list(dim, nd)
        if isinstance(dim, (list, tuple)) and not dim:
            raise Unspecified("squeeze(())")
        out = ids.reshape([n for i, n in enumerate(ids.shape) if not (i in dims and n == 1)]) if nd else ids
        return Either(out, "squeeze with a tuple of dims is PyTorch >= 2.0") if isinstance(dim, (list, tuple)) else out
    if name == "unsqueeze":
        (d,) = args
        d = S.int_arg(d, "dim")
        if not -nd - 1 <= d <= nd:
            raise Invalid("dim out of range")
        return np.expand_dims(ids, d % (nd + 1))
    if name == "flatten":
        s, e = (S.wrap_dim(d, nd) for d in args)
        if nd == 0:
            return ids.reshape(1)
        if s > e:
            raise Invalid("flatten() has invalid args: start_dim cannot come after end_dim")
        return (
            ids.reshape(ids.shape[:s] + (-1,) + ids.shape[e + 1 :])
            if ids.size
            else ids.reshape(ids.shape[:s] + (math.prod(ids.shape[s : e + 1]),) + ids.shape[e + 1 :])
        )
    if name == "unflatten":
        d, sizes = args
        if nd == 0:
            raise Invalid("unflatten of a 0-d tensor")
        d = S.wrap_dim(d, nd)
        if not isinstance(sizes, (list, tuple)):
            raise Invalid("sizes must be a sequence")
        if len(sizes) == 0:
            raise Invalid("unflatten: sizes must be non-empty")
        inner = infer_shape(sizes, ids.shape[d])
        if max(inner, default=0) > 10**6:
            return Huge(ids.shape[:d] + inner + ids.shape[d + 1 :])
        return ids.reshape(ids.shape[:d] + inner + ids.shape[d + 1 :])
    if name in ("narrow", "select"):
        if nd == 0:
            raise Invalid(f"{name} of a 0-d tensor")
        d = S.wrap_dim(args[0], nd)
        n = ids.shape[d]
        if name == "select":
            i = S.int_arg(args[1], "index")
            if not -n <= i < n:
                raise Invalid("index out of range")
            return np.take(ids, i, axis=d)
        start, length = S.int_arg(args[1], "start"), S.int_arg(args[2], "length")
        if not -n <= start <= n:
            raise Invalid("start out of range")
        start = start + n if start < 0 else start
        if length < 0 or start > n - length:
            raise Invalid("start + length exceeds the dimension")
        return np.take(ids, range(start, start + length), axis=d)
    if name in ("split", "chunk", "unbind"):
        if nd == 0:
            raise Invalid(f"{name} of a 0-d tensor")
        d = S.wrap_dim(args[-1], nd)
        n = ids.shape[d]
        if name == "unbind":
            return [np.take(ids, i, axis=d) for i in range(n)]
        if name == "chunk":
            c = S.int_arg(args[0], "chunks")
            if c <= 0:
                raise Invalid("chunks must be > 0")
            if n == 0:
                if c > 64:
                    raise Unspecified("that many empty chunks")
                return [np.take(ids, [], axis=d)] * c
            size = -(-n // c)
            bounds = list(range(0, n, size))
        else:
            s = args[0]
            if isinstance(s, (list, tuple)):
                sizes = _ints(s)
                if any(v < 0 for v in sizes) or sum(sizes) != n:
                    raise Invalid("split sizes must be non-negative and sum to the dimension")
                out, pos = [], 0
                for v in sizes:
                    out.append(np.take(ids, range(pos, pos + v), axis=d))
                    pos += v
                return out
            size = S.int_arg(s, "split_size")
            if size < 0:
                raise Invalid("split_size must be non-negative")
            if size == 0:
                if n:
                    raise Invalid("split_size can only be 0 if the dimension size is 0")
                return [ids.copy()]
            bounds = list(range(0, n, size)) or [0]
        return [np.take(ids, range(b, min(b + (size if n else 0), n)), axis=d) for b in bounds]
    if name in ("expand", "broadcast_to"):
        shape = _expand_shape(ids.shape, _shape_args(args))
        if math.prod(shape) > 10**6 or max(shape, default=0) > 10**6:
            return Huge(shape)
        return np.broadcast_to(ids, shape)
    if name == "repeat":
        reps = _ints(_shape_args(args))
        if len(reps) < nd:
            raise Invalid("repeat needs at least as many sizes as dims")
        if any(r < 0 for r in reps):
            raise Invalid("negative repeat")
        k = len(reps) - nd
        shape = tuple(reps[:k]) + tuple(r * n for r, n in zip(reps[k:], ids.shape))
        if max(shape, default=0) > S.I64_MAX:
            raise Invalid("a repeated dim beyond int64")
        if math.prod(shape) > 10**6:
            raise Unspecified("too big to build here (MemoryError or a result)")
        if max(shape, default=0) > 10**6:
            return Huge(shape)
        return np.tile(ids, reps) if reps else ids.copy()
    if name in ("contiguous", "clone"):
        return ids.copy()
    raise AssertionError(name)


# Ops whose result always shares the input's memory (PyTorch documents them as views).
ALWAYS_VIEWS = {
    "view",
    "permute",
    "transpose",
    "swapaxes",
    "t",
    "mT",
    "squeeze",
    "unsqueeze",
    "unflatten",
    "narrow",
    "select",
    "split",
    "chunk",
    "unbind",
    "expand",
    "broadcast_to",
}
ALWAYS_COPIES = {"clone", "repeat"}


def _factor_shape(draw, n):
    dims, rem = [], n
    for _ in range(draw(st.integers(0, 3))):
        divs = [d for d in range(1, rem + 1) if rem % d == 0] if rem else [0, 1, 2, 3]
        d = draw(st.sampled_from(divs))
        dims.append(d)
        rem = rem // d if d else 0
    dims.append(rem if n else draw(st.integers(0, 3)))
    if n == 0 and 0 not in dims:
        dims[draw(st.integers(0, len(dims) - 1))] = 0
    dims = draw(st.permutations(dims))
    if draw(st.booleans()) and any(dims):
        i = draw(st.sampled_from([i for i, v in enumerate(dims) if v]))
        dims = list(dims)
        dims[i] = -1
    return list(dims)


@st.composite
def view_case(draw):
    name = draw(st.sampled_from(sorted(ALWAYS_VIEWS | ALWAYS_COPIES | {"reshape", "flatten", "contiguous"})))
    x = draw(S.tensors(kind="any"))
    nd = x.a.ndim
    dim = S.dims(nd)
    size = S.sizes()
    if name in ("reshape", "view"):
        shape = draw(st.one_of(st.just(None), st.lists(size, max_size=4)))
        shape = _factor_shape(draw, x.a.size) if shape is None or draw(st.booleans()) else shape
        args = (tuple(shape),) if draw(st.booleans()) else tuple(shape)
    elif name == "permute":
        perm = draw(st.permutations(range(nd)))
        perm = [p - nd if draw(st.booleans()) else p for p in perm]
        dims = draw(st.one_of(st.just(perm), st.lists(dim, max_size=4)))
        args = (tuple(dims),) if draw(st.booleans()) else tuple(dims)
    elif name in ("transpose", "swapaxes"):
        args = (draw(dim), draw(dim))
    elif name in ("t", "mT", "contiguous", "clone"):
        args = ()
    elif name == "squeeze":
        args = (draw(st.one_of(st.none(), dim, st.tuples(dim), st.tuples(dim, dim))),)
    elif name == "unsqueeze":
        args = (draw(st.one_of(st.integers(-nd - 1, nd), S.dims(nd + 1))),)
    elif name == "flatten":
        args = (draw(dim), draw(dim))
    elif name == "unflatten":
        d = draw(dim)
        try:
            n = x.a.shape[S.wrap_dim(d, nd)] if nd else 1
        except Exception:
            n = 1
        args = (d, tuple(_factor_shape(draw, n)) if draw(st.booleans()) else draw(st.lists(size, max_size=3)))
    elif name in ("narrow", "select"):
        d = draw(dim)
        try:
            n = x.a.shape[S.wrap_dim(d, nd)]
        except Exception:
            n = 2
        i = draw(st.one_of(st.integers(-n - 1, n + 1), st.sampled_from(S.HUGE_INTS)))
        args = (
            (d, i, draw(st.one_of(st.integers(-1, n + 1), st.sampled_from(S.HUGE_INTS))))
            if name == "narrow"
            else (d, i)
        )
    elif name == "split":
        args = (draw(st.one_of(size, st.lists(st.integers(0, 4), max_size=4))), draw(dim))
    elif name == "chunk":
        args = (draw(st.one_of(st.integers(1, 5), size)), draw(dim))
    elif name == "unbind":
        args = (draw(dim),)
    elif name in ("expand", "broadcast_to"):
        lead = draw(st.lists(st.one_of(st.integers(0, 3), size), max_size=2))
        own = [draw(st.one_of(st.sampled_from([n, -1] + ([2, 3, 0] if n == 1 else [])), size)) for n in x.a.shape]
        sizes = lead + own
        args = (tuple(sizes),) if name == "broadcast_to" or draw(st.booleans()) else tuple(sizes)
    else:  # repeat
        reps = draw(st.lists(st.one_of(st.integers(0, 3), size), min_size=max(0, nd - 1), max_size=nd + 2))
        args = (tuple(reps),) if draw(st.booleans()) else tuple(reps)
    return name, x, args


def _view_call(name, t, args):
    if name == "mT":
        return t.mT
    return getattr(t, name)(*args)


def _gather_ids(ids_out, flat):
    if isinstance(ids_out, list):
        return [flat[i] for i in ids_out]
    return flat[ids_out]


@budget(80)
@given(case=view_case())
def test_views_and_shape_ops(case):
    """Each view/shape op against NumPy applied to an index array, so one reference covers every
    dtype; then, for ops that are always views, a write into the input must show in the result."""
    views_oracle.example()
    name, x, args = case
    ids = np.arange(x.a.size).reshape(x.a.shape)
    flat = x.a.ravel()
    strides = x.t.stride()

    def ref():
        r = view_reference(name, ids, args, strides)
        if isinstance(r, Either):
            return Either(_gather_ids(r.value, flat), r.why)
        if isinstance(r, Huge):
            return tuple(r.shape)
        return _gather_ids(r, flat)

    arg_text = ", ".join(arg_src(a) for a in args)
    desc = f"{x.src}.mT" if name == "mT" else f"{x.src}.{name}({arg_text})"
    try:
        huge = isinstance(view_reference(name, ids, args, strides), Huge)
    except Exception:
        huge = False
    if huge:  # compare the shape only, without materialising the result
        views_oracle.check(
            desc,
            lambda: _view_call(name, x.t, args),
            ref,
            convert=lambda r: tuple(r.shape),
            compare=lambda g, w: assert_same(list(g), list(w)),
        )
        return
    out = views_oracle.check(desc, lambda: _view_call(name, x.t, args), ref, tol=EXACT)
    if out is None or x.layout == "expanded" or name not in ALWAYS_VIEWS | ALWAYS_COPIES:
        return
    try:
        r_ids = view_reference(name, ids, args, strides)
    except Exception:
        return
    r_ids = r_ids.value if isinstance(r_ids, Either) else r_ids
    if isinstance(r_ids, Huge) or x.a.size == 0:
        return
    new = (
        (~x.a)
        if x.dtype == BOOL
        else (x.a + 1 if x.dtype == I64 else np.where(np.isfinite(x.a), x.a * 2 + 1, 7.0).astype(x.dtype))
    )
    views_oracle.check(f"{x.src}.copy_(...) into the input of {name}", lambda: x.t.copy_(bp.tensor(new)), None)
    seen = new.ravel() if name in ALWAYS_VIEWS else flat
    views_oracle.check(
        f"{desc} after writing into its input ({'a view sees' if name in ALWAYS_VIEWS else 'a copy does not see'} it)",
        lambda: out,
        lambda: _gather_ids(r_ids, seen),
        tol=EXACT,
    )


# ---------------------------------------------------------------------------- indexing

index_oracle = Oracle("getitem")
setitem_oracle = Oracle("setitem")


@dataclass
class IntTensorIndex:
    """An int64 index given as a bp tensor, a list or a NumPy array (PyTorch accepts all three)."""

    values: np.ndarray
    form: str  # "tensor", "list", "numpy", "tensor0d"

    def __post_init__(self):
        if self.form == "list":  # what the list means: [] of shape (0, 3) is just []
            self.values = np.array(self.values.tolist(), dtype=I64)

    def engine(self):
        if self.form in ("tensor", "tensor0d"):
            return bp.tensor(self.values.astype(I64))
        if self.form == "list":
            return self.values.tolist()
        return self.values.astype(I64)

    def src(self):
        if self.form in ("tensor", "tensor0d"):
            return f"bp.tensor({np_src(self.values.astype(I64))})"
        if self.form == "list":
            return repr(self.values.tolist())
        return np_src(self.values.astype(I64))


@dataclass
class MaskIndex:
    values: np.ndarray  # bool
    form: str  # "tensor", "numpy", "list"

    def engine(self):
        if self.form == "tensor":
            return bp.tensor(self.values)
        return self.values.tolist() if self.form == "list" else self.values

    def src(self):
        if self.form == "tensor":
            return f"bp.tensor({np_src(self.values)})"
        return repr(self.values.tolist()) if self.form == "list" else np_src(self.values)


def _key_engine(key):
    def one(k):
        return k.engine() if isinstance(k, (IntTensorIndex, MaskIndex)) else k

    return tuple(one(k) for k in key) if isinstance(key, tuple) else one(key)


def _key_src(key):
    def one(k):
        if isinstance(k, (IntTensorIndex, MaskIndex)):
            return k.src()
        if isinstance(k, slice):
            parts = ["" if v is None else repr(v) for v in (k.start, k.stop, k.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if k.step is not None else "")
        return "..." if k is Ellipsis else repr(k)

    if isinstance(key, tuple):
        return ", ".join(one(k) for k in key) + ("," if len(key) == 1 else "") if key else "()"
    return one(key)


def _items(key):
    return list(key) if isinstance(key, tuple) else [key]


def _is_int(k):
    """Ints and 0-d integer tensors/arrays: PyTorch applies them as select(), never as advanced
    indices (TensorIndexing.h handles a 0-d integral tensor like an int)."""
    return (isinstance(k, int) and not isinstance(k, bool)) or (isinstance(k, IntTensorIndex) and k.values.ndim == 0)


def torch_index(a: np.ndarray, key):
    """``a[key]`` with PyTorch's rules, computed with NumPy: negative slice steps raise; ints and
    0-d int tensors are applied first as select() (so they never join the advanced indices,
    unlike NumPy); then NumPy's advanced indexing decides where the broadcast dims go; a bool
    mask must match the indexed dims exactly (NumPy lets a size-0 mask pass on a size-1 dim)."""
    items = _items(key)
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise Invalid("an index can only have a single ellipsis")

    def consumed(k):
        if k is None or k is Ellipsis or isinstance(k, bool):
            return 0
        return k.values.ndim if isinstance(k, MaskIndex) else 1

    used = sum(consumed(k) for k in items)
    if used > a.ndim:
        raise Invalid("too many indices")
    n_adv = sum(1 for k in items if isinstance(k, MaskIndex) or (isinstance(k, IntTensorIndex) and not _is_int(k)))
    if any(isinstance(k, bool) for k in items) and n_adv:
        raise Unspecified("a Python bool together with advanced indices")
    k1, k2 = [], []  # first pass: ints as select; second: the rest on what is left
    for k in items:
        if k is Ellipsis:
            k1.append(Ellipsis)
            k2.append(Ellipsis)
        elif k is None:
            k1.append(None)
            k2.append(slice(None))
        elif isinstance(k, bool):
            k2.append(k)
        elif isinstance(k, slice):
            for v in (k.start, k.stop, k.step):
                if v is not None and not isinstance(v, int):
                    raise Invalid("slice indices must be integers or None")
            if k.step is not None and k.step <= 0:
                raise Invalid("step must be greater than zero")
            k1.append(slice(None))
            k2.append(k)
        elif _is_int(k):
            v = int(k.values) if isinstance(k, IntTensorIndex) else k
            if not S.I64_MIN <= v <= S.I64_MAX:
                raise Invalid("index does not fit in int64")
            k1.append(v)
        elif isinstance(k, IntTensorIndex):
            k1.append(slice(None))
            k2.append(k.values.astype(np.intp))
        elif isinstance(k, MaskIndex):
            k1.extend([slice(None)] * k.values.ndim)
            k2.append(k.values)
        else:
            raise Invalid(f"unsupported index type {type(k).__name__}")
    k2 = _clamp_slices(k2)
    try:
        first = a[tuple(k1)]
    except IndexError as e:
        raise Invalid(f"index out of range: {e}") from None

    def consumed2(k):
        if k is Ellipsis or isinstance(k, bool):
            return 0
        return k.ndim if isinstance(k, np.ndarray) and k.dtype == BOOL else 1

    d, n2, oob = 0, sum(consumed2(k) for k in k2), False
    for k in k2:
        if k is Ellipsis:
            d += first.ndim - n2
            continue
        if isinstance(k, bool):
            continue
        if isinstance(k, np.ndarray) and k.dtype == BOOL:
            if k.shape != first.shape[d : d + k.ndim]:
                dims_ = list(first.shape[d : d + k.ndim])
                raise Invalid(f"the shape of the mask {list(k.shape)} does not match the indexed dims {dims_}")
            d += k.ndim
        else:
            if isinstance(k, np.ndarray) and k.size and d < first.ndim:
                oob |= bool(np.any((k < -first.shape[d]) | (k >= first.shape[d])))
            d += 1
    # An Ellipsis is just that many full slices to PyTorch: one that covers no dims does not
    # separate two advanced indices (NumPy's rule says it does).
    spelled = []
    for k in k2:
        spelled.extend([slice(None)] * max(first.ndim - n2, 0) if k is Ellipsis else [k])
    try:
        with np.errstate(all="ignore"):
            out = first[tuple(spelled)]
    except IndexError as e:
        raise Invalid(f"{e}") from None
    if oob:  # NumPy only gets here when the broadcast result is empty
        raise Unspecified("out-of-range index values that select nothing (PyTorch checks per element)")
    return out


def basic_view_overlaps(t: TP, key) -> bool:
    """Whether the view PyTorch writes into for ``t[key] = v`` (t with the ints, slices, None and
    Ellipsis of key applied; index_put_ then works on it) has a stride-0 dim of size > 1: then
    copy_ / index_put_ raise (has_internal_overlap). Computed on a NumPy view with t's strides."""
    k = []
    for item in _items(key):
        if isinstance(item, MaskIndex):
            k.extend([slice(None)] * item.values.ndim)
        elif isinstance(item, IntTensorIndex):
            k.append(int(item.values) if _is_int(item) else slice(None))
        elif isinstance(item, bool):
            k.append(None)
        else:
            k.append(item)
    try:
        v = np.lib.stride_tricks.as_strided(np.zeros(1, np.int8), shape=t.a.shape, strides=_torch_strides(t))[
            tuple(_clamp_slices(k))
        ]
    except (IndexError, ValueError, TypeError, OverflowError):
        return False  # an invalid key: the reference raises for it anyway
    return any(s == 0 and n > 1 for s, n in zip(v.strides, v.shape))


def _clamp_slices(items):
    """Slice bounds beyond int64 mean 'to the end' (Python clamps them); NumPy cannot take them."""

    def c(v):
        return v if v is None else max(min(v, 2**62), -(2**62))

    return [slice(c(k.start), c(k.stop), c(k.step)) if isinstance(k, slice) else k for k in items]


@st.composite
def index_keys(draw, shape):
    """A key for ``t[key]``: ints (also negative, out of range, huge), slices (steps, negative
    and huge bounds, negative or zero steps), None, Ellipsis, int64 index tensors / lists /
    arrays (also out of range), bool masks (also of the wrong shape) and Python bools."""
    nd = len(shape)
    items, dim = [], 0
    n_items = draw(st.integers(0, nd + 1))
    ellipsis_used = False
    for _ in range(n_items):
        n = shape[dim] if dim < nd else 1
        kind = draw(
            st.sampled_from(
                [
                    "int",
                    "int",
                    "slice",
                    "slice",
                    "slice",
                    "none",
                    "ellipsis",
                    "tensor",
                    "tensor",
                    "mask",
                    "bool",
                    "int0d",
                ]
            )
        )
        if kind == "int":
            items.append(
                draw(
                    st.one_of(
                        st.integers(-n, max(n - 1, -n)),
                        st.integers(-n - 2, n + 2),
                        st.sampled_from([2**63, -(2**63) - 1, 2**62]),
                    )
                )
            )
            dim += 1
        elif kind == "int0d":
            items.append(IntTensorIndex(np.asarray(draw(st.integers(-n, max(n - 1, 0)))), "tensor0d"))
            dim += 1
        elif kind == "slice":
            bound = st.one_of(
                st.none(), st.integers(-n - 2, n + 2), st.sampled_from([2**63, -(2**63), 2**70, -(2**70)])
            )
            step = st.one_of(st.none(), st.integers(1, 3), st.sampled_from([-1, 0, 2**62, 2**70]))
            items.append(slice(draw(bound), draw(bound), draw(step)))
            dim += 1
        elif kind == "none":
            items.append(None)
        elif kind == "ellipsis":
            if ellipsis_used and draw(st.integers(0, 4)):
                continue
            ellipsis_used = True
            items.append(Ellipsis)
            dim = max(dim, nd - (n_items - len(items)))
        elif kind == "tensor":
            idx_shape = draw(S.shapes(0, 2, 0, 3))
            lo, hi = (-n, n - 1) if n > 0 else (0, 0)
            vals = draw(
                hnp.arrays(
                    I64,
                    idx_shape,
                    elements=st.one_of(st.integers(lo, hi), st.integers(lo, hi), st.integers(-n - 2, n + 2)),
                )
            )
            form = draw(st.sampled_from(["tensor", "list", "numpy"]))
            if form == "list" and vals.ndim == 0:
                form = "tensor"
            items.append(IntTensorIndex(vals, form))
            dim += 1
        elif kind == "mask":
            k = draw(st.integers(1, max(1, min(2, nd - dim))))
            mshape = tuple(shape[dim : dim + k]) if dim + k <= nd else (1,) * k
            if draw(st.integers(0, 5)) == 0:
                mshape = tuple(draw(st.lists(st.integers(0, 4), min_size=k, max_size=k)))
            vals = draw(hnp.arrays(BOOL, mshape, elements=st.booleans()))
            form = draw(st.sampled_from(["tensor", "tensor", "numpy", "list"]))
            if form == "list" and (vals.ndim == 0 or vals.size == 0):
                form = "tensor"  # an empty list is an (empty) int index, not a mask
            items.append(MaskIndex(vals, form))
            dim += k
        else:
            items.append(draw(st.booleans()))
    if len(items) == 1 and draw(st.booleans()):
        return items[0]
    return tuple(items)


@budget(120)
@given(x=S.tensors(max_dims=4), data=st.data())
def test_getitem(x, data):
    """``t[key]`` against NumPy's ``a[key]`` under PyTorch's rules (torch_index)."""
    index_oracle.example()
    key = data.draw(index_keys(x.a.shape), "key")
    index_oracle.check(
        f"{x.src}[{_key_src(key)}]",
        lambda: x.t[_key_engine(key)],
        lambda: torch_index(x.a, key),
        tol=EXACT,
    )


def _cast_value(v, dt):
    """What a Python number becomes in a tensor of dtype dt (PyTorch: checked conversion)."""
    if dt == BOOL:
        return np.asarray(bool(v))
    if dt == I64:
        if isinstance(v, float):
            if not math.isfinite(v) or not -(2.0**63) <= v < 2.0**63:
                raise Unspecified("a float that does not fit in int64 written into an int64 tensor")
            return np.asarray(int(v), I64)  # truncation toward zero
        if not S.I64_MIN <= int(v) <= S.I64_MAX:
            raise Invalid("value does not fit in int64")
        return np.asarray(int(v), I64)
    if isinstance(v, int) and not isinstance(v, bool) and not S.I64_MIN <= v <= S.I64_MAX:
        raise Unspecified("a huge Python int written into a float tensor")
    with np.errstate(all="ignore"):
        return np.asarray(v, np.float64).astype(dt)


@budget(100)
@given(x=S.tensors(max_dims=3), data=st.data())
def test_setitem(x, data):
    """``t[key] = value`` against NumPy assignment: the value broadcasts to ``t[key]``, is cast to
    t's dtype, and writes through views into the base; expanded tensors refuse writes."""
    setitem_oracle.example()
    key = data.draw(index_keys(x.a.shape), "key")
    try:
        tshape = torch_index(x.a, key).shape
    except (Invalid, Unspecified):
        tshape = data.draw(S.shapes(0, 2, 0, 3), "vshape")
    vform = data.draw(st.sampled_from(["scalar", "tensor", "tensor", "list"]), "vform")
    if vform == "scalar":
        value = data.draw(
            st.one_of(st.booleans(), st.integers(-5, 5), st.floats(width=32), st.integers(S.I64_MIN, S.I64_MAX)),
            "value",
        )
        v_engine, v_src = value, repr(value)
    else:
        vshape = tuple(tshape)
        # a shape that broadcasts to the target (drop leading dims, turn some into 1), or a random one
        if vshape and data.draw(st.booleans()):
            vshape = vshape[data.draw(st.integers(0, len(vshape))) :]
            vshape = tuple(1 if data.draw(st.booleans()) else n for n in vshape)
        if data.draw(st.integers(0, 7)) == 0:
            vshape = data.draw(S.shapes(0, 3, 0, 3), "bad vshape")
        vdt = x.dtype if data.draw(st.booleans()) else data.draw(st.sampled_from(S.ALL_DTYPES))
        value = data.draw(
            S.tensors(
                dtypes=[vdt],
                shape=vshape,
                kind="small" if vdt.kind == "f" else "any",
                layouts=("contig", "permuted", "expanded"),
            ),
            "value",
        )
        if vform == "list" and value.a.ndim > 0:
            v_engine, v_src = value.a.tolist(), repr(value.a.tolist())
            value = TP(np.array(v_engine, dtype=value.dtype), value.t, v_src, "list")  # [] of shape (0, 3) is just []
        else:
            vform = "tensor"
            v_engine, v_src = value.t, value.src
    desc = f"t = {x.src}; t[{_key_src(key)}] = {v_src}"

    def ref():
        tgt = torch_index(x.a, key)
        if basic_view_overlaps(x, key):
            if tgt.size == 0:
                raise Unspecified("an empty write into an expanded view (PyTorch's overlap check raises even then)")
            raise Invalid("writing into an expanded view (several elements share memory)")
        if vform == "scalar":
            val = _cast_value(value, x.dtype)
        else:
            if (
                vform == "tensor"
                and value.dtype != x.dtype
                and any(
                    isinstance(k, (IntTensorIndex, MaskIndex)) and getattr(k, "form", "") != "tensor0d"
                    for k in (key if isinstance(key, tuple) else (key,))
                )
            ):
                raise Unspecified("index_put_ with a value of another dtype")
            if value.dtype.kind == "f" and x.dtype == I64 and not np.all(np.isfinite(value.a)):
                raise Unspecified("NaN/inf written into an int64 tensor")
            with np.errstate(all="ignore"):
                val = value.a.astype(x.dtype)
            if vform == "list" and value.dtype == BOOL and x.dtype != BOOL:
                raise Unspecified("a list of bools written into a non-bool tensor")
            # PyTorch (and NumPy) strip the value's leading size-1 dims, then broadcast
            while val.ndim > tgt.ndim and val.shape[0] == 1:
                val = val[0]
            try:
                np.broadcast_to(val, tgt.shape)
            except ValueError:
                raise Invalid("the value does not broadcast to the indexed shape") from None
        # positions written: unique, or the value is uniform
        pos = torch_index(np.arange(x.a.size).reshape(x.a.shape), key)
        vb = np.broadcast_to(val, pos.shape)
        if pos.size and len(np.unique(pos)) != pos.size and not np.all(vb == vb.ravel()[0]):
            raise Unspecified("duplicate indices with different values (PyTorch: nondeterministic)")
        # every element that shares memory with a written one (stride-0 dims) changes too
        offs = np.zeros(x.a.shape, dtype=np.int64)
        for d, (n, st_) in enumerate(zip(x.a.shape, x.t.stride())):
            offs += (np.arange(n) * st_).reshape((1,) * d + (n,) + (1,) * (x.a.ndim - d - 1))
        out = x.a.copy().ravel()
        written = dict(zip(offs.ravel()[pos.ravel()].tolist(), vb.ravel().tolist()))
        for i, o in enumerate(offs.ravel().tolist()):
            if o in written:
                out[i] = written[o]
        return out.reshape(x.a.shape)

    def call():
        x.t[_key_engine(key)] = v_engine
        return x.t

    setitem_oracle.check(desc, call, ref, tol=EXACT)


# ---------------------------------------------------------------------------- in-place ops

inplace_oracle = Oracle("inplace")


def can_cast(src_dt, dst_dt):
    """PyTorch's canCast for in-place results: no float -> int/bool, no int -> bool."""
    if src_dt.kind == "f" and dst_dt.kind in "ib":
        return False
    return not (src_dt.kind == "i" and dst_dt.kind == "b")


def written_positions(t: bp.Tensor):
    """Storage offsets of t's elements (row-major), for checking writes through views."""
    offs = np.full(t.shape, t.storage_offset(), dtype=np.int64)
    for d, (n, st_) in enumerate(zip(t.shape, t.stride())):
        offs += (np.arange(n) * st_).reshape((1,) * d + (n,) + (1,) * (len(t.shape) - d - 1))
    return offs


def check_base_after_write(oracle, x: TP, base_before: np.ndarray, new_values: np.ndarray, desc: str):
    """After a write through the view x.t, its base holds the new values at the view's offsets
    and is unchanged everywhere else (a write never lands outside the view)."""
    if x.base is None or x.layout == "expanded":
        return
    offs = written_positions(x.t)
    want = base_before.copy().ravel()
    want[offs.ravel()] = np.asarray(new_values, dtype=want.dtype).ravel()
    oracle.check(f"{desc}: the base of the view", lambda: x.base, lambda: want.reshape(base_before.shape), tol=EXACT)


INPLACE_BINARY = {
    "add_": ("add", lambda t, o: t.add_(o)),
    "sub_": ("sub", lambda t, o: t.sub_(o)),
    "mul_": ("mul", lambda t, o: t.mul_(o)),
    "div_": ("div", lambda t, o: t.div_(o)),
    "iadd": ("add", operator.iadd),
    "isub": ("sub", operator.isub),
    "imul": ("mul", operator.imul),
    "itruediv": ("div", operator.itruediv),
    "ipow": ("pow", operator.ipow),
    "iand": ("and", operator.iand),
    "ior": ("or", operator.ior),
    "ixor": ("xor", operator.ixor),
}
INPLACE_UNARY = [
    "neg_",
    "abs_",
    "sign_",
    "exp_",
    "log_",
    "sqrt_",
    "sin_",
    "cos_",
    "tanh_",
    "sigmoid_",
    "relu_",
    "erf_",
    "zero_",
]


@budget(100)
@given(
    data=st.data(),
    name=st.sampled_from(sorted(INPLACE_BINARY) + INPLACE_UNARY + ["fill_", "copy_", "clamp_", "add_alpha"]),
)
def test_inplace(data, name):
    """In-place ops equal the out-of-place op cast back to self's dtype (which must be possible),
    return self, leave self's shape alone (other broadcasts to it), write only through the view
    into its base, and refuse expanded (overlapping) targets."""
    inplace_oracle.example()
    x = data.draw(S.tensors(kind="any"), "self")
    base_before = x.base.numpy().copy() if x.base is not None else None
    overlap = any(s == 0 and n > 1 for s, n in zip(_torch_strides(x), x.a.shape))
    if name in INPLACE_BINARY or name in ("copy_", "add_alpha"):
        other = data.draw(
            st.one_of(
                S.tensors(
                    shape=data.draw(hnp.broadcastable_shapes(x.a.shape, max_dims=4, max_side=4), "oshape"), kind="any"
                ),
                S.tensors(max_dims=3, kind="any"),
                st.booleans(),
                st.integers(-5, 5),
                st.floats(width=32),
            ),
            "other",
        )
    else:
        other = None
    alpha = (
        data.draw(st.one_of(st.integers(-3, 3), st.floats(-2, 2, width=32), st.booleans()), "alpha")
        if name == "add_alpha"
        else None
    )

    def ref():
        if overlap:
            raise Invalid("in-place write into an expanded tensor")
        if name in INPLACE_BINARY:
            out = binary_expected(INPLACE_BINARY[name][0], x, other)
        elif name == "add_alpha":
            if isinstance(alpha, float) and result_type(x, other).kind in "ib":
                raise Invalid("a float alpha with integer tensors")
            if isinstance(alpha, bool) and result_type(x, other) != BOOL:
                raise Unspecified("a bool alpha with non-bool tensors")
            if result_type(x, other) == BOOL and not isinstance(alpha, bool):
                raise Unspecified("add of bools with a number alpha")
            scaled = as_np(other, result_type(x, other)) * (
                alpha if not isinstance(alpha, float) else np.asarray(alpha, np.float64).astype(result_type(x, other))
            )
            out = binary_expected("add", x, _wrap_array(scaled, other))
        elif name == "copy_":
            if not isinstance(other, TP):
                raise Unspecified("copy_ from a Python number")
            try:
                np.broadcast_to(other.a, x.a.shape)
            except ValueError:
                raise Invalid("copy_ source does not broadcast to self") from None
            if other.dtype.kind == "f" and x.dtype == I64 and not np.all(np.isfinite(other.a)):
                raise Unspecified("NaN/inf copied into int64")
            if other.dtype.kind == "f" and x.dtype == I64 and np.any(np.abs(other.a.astype(np.float64)) >= 2.0**63):
                raise Unspecified("out-of-range float copied into int64")
            with ERR():
                return np.broadcast_to(other.a, x.a.shape).astype(x.dtype)
        elif name == "fill_":
            return np.full(x.a.shape, _cast_value(fill, x.dtype), dtype=x.dtype)
        elif name == "zero_":
            return np.zeros_like(x.a)
        elif name == "clamp_":
            out = _clamp_expected(x, lo, hi)
        else:
            out = unary_expected(name[:-1], x)
        out = np.asarray(out)
        if out.shape != x.a.shape:
            raise Invalid("the result would not have self's shape")
        if not can_cast(out.dtype, x.dtype):
            raise Invalid(f"result type {out.dtype} can't be cast to {x.dtype}")
        with ERR():
            return out.astype(x.dtype)

    if name == "fill_":
        fill = data.draw(
            st.one_of(st.booleans(), st.integers(-5, 5), st.floats(width=32), st.integers(S.I64_MIN, S.I64_MAX)),
            "value",
        )
        call, desc = (lambda: x.t.fill_(fill)), f"{x.src}.fill_({fill!r})"
    elif name == "clamp_":
        lo = data.draw(st.one_of(st.none(), st.floats(width=32), st.integers(-5, 5)), "min")
        hi = data.draw(st.one_of(st.none(), st.floats(width=32), st.integers(-5, 5)), "max")
        call, desc = (lambda: x.t.clamp_(lo, hi)), f"{x.src}.clamp_({lo!r}, {hi!r})"
    elif name in INPLACE_BINARY:
        ov = other.t if isinstance(other, TP) else other
        call, desc = (lambda: INPLACE_BINARY[name][1](x.t, ov)), f"{name}({x.src}, {src(other)})"
    elif name == "copy_":
        ov = other.t if isinstance(other, TP) else other
        call, desc = (lambda: x.t.copy_(ov)), f"{x.src}.copy_({src(other)})"
    elif name == "add_alpha":
        ov = other.t if isinstance(other, TP) else other
        call, desc = (lambda: x.t.add_(ov, alpha=alpha)), f"{x.src}.add_({src(other)}, alpha={alpha!r})"
    else:
        call, desc = (lambda: getattr(x.t, name)()), f"{x.src}.{name}()"
    t_before = x.t
    rt = x.dtype
    tol = unary_tol(name[:-1], rt) if name in INPLACE_UNARY else binary_tol(INPLACE_BINARY.get(name, ("add",))[0], rt)
    out = inplace_oracle.check(desc, call, ref, tol=tol)
    if out is None:
        return
    inplace_oracle.check(f"{desc} returns self", lambda: out is t_before, lambda: True)
    check_base_after_write(inplace_oracle, x, base_before, x.t.numpy(), desc)


def _wrap_array(arr, like):
    """An operand standing for ``arr`` with the same promotion class as ``like``."""
    if isinstance(like, TP):
        return TP(np.asarray(arr), like.t, like.src, like.layout)
    return np.asarray(arr).item()


def _torch_strides(x: TP):
    """The strides PyTorch would give x (only their zero-ness matters here): the engine's for a
    non-empty tensor; for an empty one, stride 0 only on the dims expand() broadcast (the engine
    reports 0 for any dim in front of a size-0 dim: D17)."""
    if x.a.size:
        return x.t.stride()
    return tuple(0 if i in getattr(x, "zero_dims", ()) else 1 for i in range(x.a.ndim))


# ---------------------------------------------------------------------------- creation functions

create_oracle = Oracle("creation")
_BIG = 10**6  # more elements than this: only the shape is compared (and memory is capped)


def _size_list(args):
    raw = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    sizes = [S.int_arg(v, "size") for v in raw]
    if any(v < 0 for v in sizes):
        raise Invalid("negative dimension")
    return tuple(sizes)


def _dtype_arg(d, default):
    """dtype=: a bp dtype or None (PyTorch); other spellings are extensions (Either)."""
    if d is None:
        return default, False
    if isinstance(d, bp.dtype):
        return S.NP[d], False
    if d in ("float32", "float64", "int64", "int32", "bool", np.float32, np.float64, np.int64, np.int32):
        return np.dtype(d), True
    raise Invalid(f"dtype {d!r}")


DTYPE_ARGS = (None, bp.float32, bp.float64, bp.int64, bp.bool, "float32", np.float64, "int32", 5, "nope")
CREATION = [
    "zeros",
    "ones",
    "empty",
    "full",
    "rand",
    "randn",
    "randint",
    "randperm",
    "arange",
    "linspace",
    "eye",
    "like",
    "tensor",
]


def _shape_result(shape, dt, values=None, either=False, tol=None):
    n = math.prod(shape)
    if n > _BIG or max(shape, default=0) > _BIG:
        if n == 0:  # nothing to allocate: PyTorch returns it
            return ("shape", tuple(shape), dt)
        return Either(("shape", tuple(shape), dt), "too big to build here: MemoryError or a tensor of that shape")
    out = np.zeros(shape, dt) if values is None else values
    return Either(out) if either else out


@st.composite
def creation_case(draw):
    name = draw(st.sampled_from(CREATION))
    size = draw(st.lists(S.sizes(st.integers(0, 4)), max_size=4))
    dtype = draw(st.sampled_from(DTYPE_ARGS))
    num = st.one_of(
        st.integers(-10, 10),
        st.floats(-10, 10),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.5, 2**63, True, None, "1"]),
    )
    if name == "full":
        return (
            name,
            (
                tuple(size),
                draw(
                    st.one_of(
                        st.floats(width=32), st.integers(-5, 5), st.booleans(), st.sampled_from([2**63, None, "x", 1j])
                    )
                ),
            ),
            dtype,
        )
    if name == "randint":
        lo, hi = draw(st.integers(-5, 5)), draw(st.one_of(st.integers(-5, 8), st.sampled_from(S.HUGE_INTS)))
        form = draw(st.sampled_from(["lo_hi", "hi"]))
        return name, ((lo, hi, tuple(size)) if form == "lo_hi" else (hi, tuple(size))), dtype
    if name == "randperm":
        return name, (draw(st.one_of(st.integers(0, 20), S.sizes())),), dtype
    if name == "arange":
        nargs = draw(st.integers(1, 3))
        return name, tuple(draw(st.one_of(num, st.integers(-10, 10))) for _ in range(nargs)), dtype
    if name == "linspace":
        return name, (draw(num), draw(num), draw(st.one_of(st.integers(0, 12), S.sizes()))), dtype
    if name == "eye":
        return (
            name,
            (draw(st.one_of(st.integers(0, 5), S.sizes())), draw(st.one_of(st.none(), st.integers(0, 5), S.sizes()))),
            dtype,
        )
    if name == "like":
        x = draw(S.tensors(max_dims=3, layouts=("contig", "permuted", "expanded")))
        fn = draw(st.sampled_from(["zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like"]))
        return name, (fn, x), dtype
    if name == "tensor":
        leaf = st.one_of(
            st.booleans(),
            st.integers(-5, 5),
            st.floats(width=32),
            st.sampled_from([2**63, -(2**63) - 1, None, "a", 1j, 2**62]),
        )
        data = draw(st.recursive(leaf, lambda c: st.lists(c, max_size=3), max_leaves=8))
        return name, (data,), dtype
    form = draw(st.booleans())
    return name, (tuple(size),) if form else tuple(size), dtype


def creation_expected(name, args, dtype):
    if name in ("zeros", "ones", "empty", "rand", "randn"):
        shape = _size_list(args)
        dt, ext = _dtype_arg(dtype, F32)
        if name in ("rand", "randn") and dt.kind != "f":
            raise Invalid(f"{name} needs a floating dtype")
        vals = (
            None
            if name in ("zeros", "empty", "rand", "randn") or math.prod(shape) > _BIG or max(shape, default=0) > _BIG
            else np.ones(shape, dt)
        )
        r = _shape_result(shape, dt, vals, either=ext)
        if name in ("empty", "rand", "randn") and not isinstance(r, Either):
            return ("shape", tuple(shape), dt)
        if name in ("empty", "rand", "randn"):
            return Either(("shape", tuple(shape), dt), r.why)
        return r
    if name == "full":
        size, fill = args
        shape = _size_list((size,))
        if fill is None or isinstance(fill, (str, complex)):
            raise Invalid("fill_value must be a number")
        if _huge_int(fill):
            raise Invalid("fill_value does not fit in int64")
        default = BOOL if isinstance(fill, bool) else (I64 if isinstance(fill, int) else F32)
        dt, ext = _dtype_arg(dtype, default)
        if dt.kind in "ib" and isinstance(fill, float) and not isinstance(fill, bool):
            if not math.isfinite(fill) or dt == I64 and abs(fill) >= 2**63:
                raise Unspecified("a non-finite or huge float fill into an integer dtype")
            ext = True
        if math.prod(shape) > _BIG or max(shape, default=0) > _BIG:
            return _shape_result(shape, dt)
        with np.errstate(all="ignore"):
            vals = np.full(shape, _cast_value(fill, dt), dt)
        return Either(vals) if ext else vals
    if name == "randint":
        if len(args) == 3:
            lo, hi, size = args
        else:
            lo, (hi, size) = 0, args
        shape = _size_list((size,))
        dt, ext = _dtype_arg(dtype, I64)
        hi = S.int_arg(hi, "high")
        if lo >= hi:
            raise Invalid("randint: low >= high")
        if dt == BOOL:
            raise Unspecified("randint with dtype=bool")
        if dt.kind == "f" and max(abs(lo), abs(hi)) > 2**24:
            raise Unspecified("bounds not representable in a float dtype")
        if math.prod(shape) > _BIG or max(shape, default=0) > _BIG:
            return _shape_result(shape, dt)
        return Either(("randint", lo, hi, tuple(shape), dt)) if ext else ("randint", lo, hi, tuple(shape), dt)
    if name == "randperm":
        n = S.int_arg(args[0], "n")
        if n < 0:
            raise Invalid("negative n")
        dt, ext = _dtype_arg(dtype, I64)
        if dt == BOOL or (dt.kind == "f" and n > 2**24):
            raise Unspecified("randperm into this dtype")
        if n > _BIG:
            return Either(("shape", (n,), dt))
        return Either(("perm", n, dt)) if ext else ("perm", n, dt)
    if name == "arange":
        vals = list(args)
        for v in vals:
            if v is None:
                raise Unspecified("arange with None for a bound or the step (the engine's end/step are Optional)")
            if isinstance(v, str):
                raise Invalid("arange takes numbers")
            if isinstance(v, bool):
                raise Unspecified("arange with a bool")
            if _huge_int(v):
                raise Invalid("does not fit in int64")
        start, end, step = (0, vals[0], 1) if len(vals) == 1 else ((vals[0], vals[1], 1) if len(vals) == 2 else vals)
        if any(isinstance(v, float) and not math.isfinite(v) for v in (start, end, step)):
            raise Invalid("arange with a non-finite bound or step")
        if step == 0:
            raise Invalid("step must be nonzero")
        if (step > 0 and end < start) or (step < 0 and end > start):
            raise Invalid("upper bound and larger bound inconsistent with step sign")
        default = F32 if any(isinstance(v, float) for v in (start, end, step)) else I64
        dt, ext = _dtype_arg(dtype, default)
        n = math.ceil((end - start) / step) if default == F32 else -(-(end - start) // step)
        if dt == BOOL:
            raise Unspecified("arange with dtype=bool")
        if n > _BIG:
            return _shape_result((n,), dt)
        if dt == I64:
            if default == F32:
                raise Unspecified("float bounds with an integer dtype")
            out = np.arange(start, end, step, dtype=I64)
            if len(out) != n:
                raise AssertionError("reference arange length")
        else:
            out = (np.float64(start) + np.arange(n, dtype=np.float64) * np.float64(step)).astype(dt)
        return Either(out) if ext else out
    if name == "linspace":
        start, end, steps = args
        for v in (start, end):
            if v is None or isinstance(v, str):
                raise Invalid("linspace takes numbers")
            if isinstance(v, bool):
                raise Unspecified("linspace with a bool")
            if _huge_int(v):
                raise Unspecified("a bound beyond int64")
        steps = S.int_arg(steps, "steps")
        if steps < 0:
            raise Invalid("number of steps must be non-negative")
        dt, ext = _dtype_arg(dtype, F32)
        if dt.kind != "f":
            raise Unspecified("integer linspace (bounds are truncated first: see test_hardening)")
        if steps > _BIG:
            return _shape_result((steps,), dt)
        s64, e64 = float(start), float(end)
        if steps == 1:
            out = np.array([s64])
        else:
            with np.errstate(all="ignore"):
                step = (e64 - s64) / (steps - 1) if steps > 1 else 0.0
                i = np.arange(steps, dtype=np.float64)
                out = np.where(i < steps // 2, s64 + i * step, e64 - (steps - 1 - i) * step)
        with np.errstate(all="ignore"):
            out = out.astype(dt)
        return Either(out) if ext else out
    if name == "eye":
        n, m = args
        n = S.int_arg(n, "n")
        m = n if m is None else S.int_arg(m, "m")
        if n < 0 or m < 0:
            raise Invalid("negative size")
        dt, ext = _dtype_arg(dtype, F32)
        if n * m > _BIG or max(n, m) > _BIG:
            return _shape_result((n, m), dt)
        out = np.eye(n, m, dtype=dt)
        return Either(out) if ext else out
    if name == "like":
        fn, x = args
        dt, ext = _dtype_arg(dtype, x.dtype)
        if fn in ("rand_like", "randn_like") and dt.kind != "f":
            raise Invalid(f"{fn} needs a floating dtype")
        if fn in ("empty_like", "rand_like", "randn_like"):
            r = ("shape", x.a.shape, dt)
        elif fn == "full_like":
            r = np.full(x.a.shape, 2, dt)
        else:
            r = np.full(x.a.shape, 1 if fn == "ones_like" else 0, dt)
        return Either(r) if ext else r
    if name == "tensor":
        (data,) = args
        return _tensor_data_expected(data, dtype)
    raise AssertionError(name)


def _tensor_data_expected(data, dtype):
    def leaves(d):
        if isinstance(d, list):
            for v in d:
                yield from leaves(v)
        else:
            yield d

    def shape_of(d):
        if not isinstance(d, list):
            return ()
        if not d:
            return (0,)
        subs = [shape_of(v) for v in d]
        if any(s != subs[0] for s in subs):
            raise Invalid("ragged nested sequence")
        return (len(d),) + subs[0]

    shape = shape_of(data)
    vals = list(leaves(data))
    explicit_float = dtype in (bp.float32, bp.float64)
    for v in vals:
        if v is None or isinstance(v, (str, complex)):
            raise Invalid(f"can't infer a dtype from {type(v).__name__}")
        if _huge_int(v) and not explicit_float:
            raise Invalid("an int beyond int64")  # PyTorch: Overflow when unpacking long
    inferred = (
        F32
        if any(isinstance(v, float) for v in vals)
        else (I64 if any(not isinstance(v, bool) for v in vals) else (BOOL if vals else F32))
    )
    dt, ext = _dtype_arg(dtype, inferred)
    if dt.kind in "ib" and any(isinstance(v, float) and not math.isfinite(v) for v in vals):
        raise Unspecified("NaN/inf into an integer dtype")
    if dt == I64 and any(isinstance(v, float) and abs(v) >= 2**63 for v in vals):
        raise Unspecified("a huge float into int64")
    with np.errstate(all="ignore"):
        out = np.array([_cast_value(v, dt) for v in vals], dtype=dt).reshape(shape)
    return Either(out) if ext else out


def _creation_compare(got, want):
    if not (isinstance(want, tuple) and want and isinstance(want[0], str)):
        return assert_same(got, want, Tol(atol=1e-6, rtol=1e-6) if np.asarray(want).dtype.kind == "f" else EXACT)
    if not isinstance(got, (np.ndarray, ShapeOnly)):
        raise Mismatch(f"expected a tensor, got {type(got).__name__}")
    kind, dt = want[0], want[-1]
    if isinstance(got, ShapeOnly) and kind != "shape":
        raise Mismatch(f"a huge result {got.shape} where {kind} was due")
    if got.dtype != dt:
        raise Mismatch(f"dtype {got.dtype}, expected {dt}")
    if kind == "shape":
        if got.shape != tuple(want[1]):
            raise Mismatch(f"shape {got.shape}, expected {tuple(want[1])}")
    elif kind == "randint":
        _, lo, hi, shape, _ = want
        if got.shape != shape:
            raise Mismatch(f"shape {got.shape}, expected {shape}")
        if got.size and not (np.all(got >= lo) and np.all(got < hi) and np.all(got == np.floor(got))):
            raise Mismatch(f"values outside [{lo}, {hi}): {got.min()}..{got.max()}")
    elif kind == "perm":
        if sorted(got.tolist()) != list(range(want[1])):
            raise Mismatch(f"not a permutation of range({want[1]}): {got.tolist()[:20]}")


def _creation_call(name, args, dtype):
    kw = {} if dtype is None else {"dtype": dtype}
    if name == "like":
        fn, x = args
        return getattr(bp, fn)(x.t, 2, **kw) if fn == "full_like" else getattr(bp, fn)(x.t, **kw)
    if name == "randint":
        return (
            bp.randint(*args[:-1], size=args[-1], **kw) if len(args) == 3 else bp.randint(args[0], size=args[1], **kw)
        )
    if name == "full":
        return bp.full(args[0], args[1], **kw)
    return getattr(bp, name)(*args, **kw)


def _creation_convert(r):
    if isinstance(r, bp.Tensor):
        if r.numel() > _BIG or max(r.shape, default=0) > _BIG:
            return ShapeOnly(tuple(r.shape), S.NP[r.dtype])
        return np.array(r.numpy(), copy=True)
    return r


@budget(120)
@given(case=creation_case())
def test_creation(case):
    """Creation functions with random, invalid and huge arguments; huge sizes must fail as an
    ordinary exception (MemoryError) within a capped address space."""
    create_oracle.example()
    name, args, dtype = case
    if name == "like":
        desc = f"bp.{args[0]}({args[1].src}{', 2' if args[0] == 'full_like' else ''}, dtype={arg_src(dtype)})"
    else:
        desc = f"bp.{name}({', '.join(arg_src(a) for a in args)}, dtype={arg_src(dtype)})"
    if True:  # the watchdog caps the address space around every call (fuzz_oracle.memory_cap)
        create_oracle.check(
            desc,
            lambda: _creation_call(name, args, dtype),
            lambda: creation_expected(name, args, dtype),
            compare=_creation_compare,
            convert=_creation_convert,
        )


# ---------------------------------------------------------------------------- nn.functional

nn_oracle = Oracle("nn")


def _pair(v, what):
    """PyTorch's _pair for int-or-tuple conv/pool arguments."""
    if v is None:
        raise Unspecified(f"{what}=None (the engine's stubs make it Optional: its default)")
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            raise Invalid(f"{what} must be an int or a pair")
        return tuple(S.int_arg(x, what) for x in v)
    x = S.int_arg(v, what)
    return (x, x)


def _float_input(x: TP, *others):
    if x.dtype.kind != "f":
        raise Unspecified("an integer input (PyTorch has no integer kernel for this op)")
    for o in others:
        if o is not None and o.dtype != x.dtype:
            raise Invalid("dtypes differ")


def _batched(x: TP, ranks):
    """3-d inputs are unbatched (a batch of one, squeezed back), as PyTorch allows."""
    if x.a.ndim not in ranks:
        raise Invalid(f"expected a {ranks}-d input")
    return x.a[None] if x.a.ndim == min(ranks) else x.a


def np_conv2d(x, w, b, stride, padding, dilation, groups):
    (sh, sw), (dh, dw) = stride, dilation
    (pt, pb), (pl, pr) = padding
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + pl + pr - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for g in range(groups):
        xs = xp[:, g * cg : (g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh : i * dh + sh * (oh - 1) + 1 : sh, j * dw : j * dw + sw * (ow - 1) + 1 : sw]
                out[:, g * og : (g + 1) * og] += np.einsum(
                    "nchw,oc->nohw", patch, w[g * og : (g + 1) * og, :, i, j].astype(np.float64)
                )
    if b is not None:
        out += b.astype(np.float64).reshape(1, o, 1, 1)
    return out


def conv_expected(x: TP, w: TP, b, stride, padding, dilation, groups):
    _float_input(x, w, b)
    xa = _batched(x, (3, 4))
    if w.a.ndim != 4:
        raise Invalid("weight must be 4-d")
    groups = S.int_arg(groups, "groups")
    if groups <= 0:
        raise Invalid("groups must be positive")
    st_, dil = _pair(stride, "stride"), _pair(dilation, "dilation")
    if min(st_) <= 0 or min(dil) <= 0:
        raise Invalid("stride and dilation must be positive")
    c_in, c_out, kh, kw = xa.shape[1], w.a.shape[0], w.a.shape[2], w.a.shape[3]
    if c_in != w.a.shape[1] * groups or c_out % groups:
        raise Invalid("channels do not match the weight and groups")
    if isinstance(padding, str):
        if padding == "valid":
            pad = ((0, 0), (0, 0))
        elif padding == "same":
            if st_ != (1, 1):
                raise Invalid("padding='same' is not supported for strided convolutions")
            tot = (dil[0] * (kh - 1), dil[1] * (kw - 1))
            pad = ((tot[0] // 2, tot[0] - tot[0] // 2), (tot[1] // 2, tot[1] - tot[1] // 2))
        else:
            raise Invalid(f"padding {padding!r}")
    else:
        p = _pair(padding, "padding")
        if min(p) < 0:
            raise Invalid("negative padding")
        pad = ((p[0], p[0]), (p[1], p[1]))
    if b is not None and b.a.shape != (c_out,):
        raise Invalid("bias must have shape [out_channels]")
    if max(max(p) for p in pad) > 10**5:
        raise Unspecified("a padding too large to compute here")
    h, wd = xa.shape[2] + sum(pad[0]), xa.shape[3] + sum(pad[1])
    if h < dil[0] * (kh - 1) + 1 or wd < dil[1] * (kw - 1) + 1:
        raise Invalid("kernel size can't be greater than the padded input")
    if 0 in xa.shape[1:] or 0 in w.a.shape:
        raise Unspecified("an empty channel/spatial dim or kernel")
    out = np_conv2d(xa, w.a, None if b is None else b.a, st_, pad, dil, groups).astype(x.dtype)
    return out[0] if x.a.ndim == 3 else out


def pool_out(size, k, s, p, d, ceil):
    """PyTorch's pooling_output_shape (the last window must start inside the input or the left
    padding)."""
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)
    o = num // s + 1
    if ceil and (o - 1) * s >= size + p:
        o -= 1
    return o


def pool_expected(kind, x: TP, k, stride, padding, dilation, ceil_mode, count_include_pad=True, divisor_override=None):
    _float_input(x)
    xa = _batched(x, (3, 4))
    if 0 in xa.shape[1:]:
        raise Invalid("non-batch dims must be non-empty")
    k = _pair(k, "kernel_size")
    if stride == ():
        raise Unspecified("stride=() (PyTorch's native op reads an empty list as the kernel size)")
    s = k if stride is None else _pair(stride, "stride")
    p, d = _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(k) <= 0 or min(s) <= 0 or min(d) <= 0:
        raise Invalid("kernel, stride and dilation must be positive")
    if min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise Invalid("pad should be at most half of the kernel size")
    if divisor_override is not None and S.int_arg(divisor_override, "divisor") == 0:
        raise Invalid("divisor must be nonzero")
    n, c, h, w = xa.shape
    oh, ow = pool_out(h, k[0], s[0], p[0], d[0], ceil_mode), pool_out(w, k[1], s[1], p[1], d[1], ceil_mode)
    if oh < 1 or ow < 1:
        raise Invalid("output size is too small")
    out = np.zeros((n, c, oh, ow))
    xf = xa.astype(np.float64)
    for i in range(oh):
        for j in range(ow):
            h0, w0 = i * s[0] - p[0], j * s[1] - p[1]
            if kind == "max":
                rows = [r for r in range(h0, h0 + d[0] * (k[0] - 1) + 1, d[0]) if 0 <= r < h]
                cols = [q for q in range(w0, w0 + d[1] * (k[1] - 1) + 1, d[1]) if 0 <= q < w]
                win = xf[:, :, rows][:, :, :, cols].reshape(n, c, len(rows) * len(cols))
                with np.errstate(all="ignore"):
                    out[:, :, i, j] = np.where(np.isnan(win).any(-1), np.nan, win.max(-1) if win.size else -np.inf)
            else:
                h1, w1 = min(h0 + k[0], h + p[0]), min(w0 + k[1], w + p[1])
                hs, ws, he, we = max(h0, 0), max(w0, 0), min(h1, h), min(w1, w)
                win = xf[:, :, hs:he, ws:we]
                div = divisor_override or ((h1 - h0) * (w1 - w0) if count_include_pad else (he - hs) * (we - ws))
                out[:, :, i, j] = win.sum(axis=(2, 3)) / div
    out = out.astype(x.dtype)
    return out[0] if x.a.ndim == 3 else out


def adaptive_expected(x: TP, size):
    _float_input(x)
    xa = _batched(x, (3, 4))
    oh, ow = _pair(size, "output_size")
    if oh < 0 or ow < 0:
        raise Invalid("negative output size")
    if oh == 0 or ow == 0:
        raise Unspecified("an output size of 0")
    if 0 in xa.shape[2:]:
        raise Invalid("non-batch dims must be non-empty")
    if xa.shape[1] == 0:
        raise Unspecified("no channels (older PyTorch checks every non-batch dim, newer only H and W)")
    if oh * ow > 10**5:
        raise Unspecified("a huge output")
    n, c, h, w = xa.shape
    res = np.zeros((n, c, oh, ow))
    for i in range(oh):
        h0, h1 = (i * h) // oh, -(-((i + 1) * h) // oh)
        for j in range(ow):
            w0, w1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            res[:, :, i, j] = xa[:, :, h0:h1, w0:w1].astype(np.float64).mean(axis=(2, 3))
    res = res.astype(x.dtype)
    return res[0] if x.a.ndim == 3 else res


def pad_expected(x: TP, pad, mode, value):
    pad = [S.int_arg(v, "pad") for v in pad]
    if len(pad) % 2:
        raise Invalid("padding length must be divisible by 2")
    npairs = len(pad) // 2
    if npairs > x.a.ndim:
        raise Invalid("padding longer than the input has dims")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise Invalid(f"mode {mode!r}")
    pairs = [(0, 0)] * (x.a.ndim - npairs) + [(pad[2 * i], pad[2 * i + 1]) for i in range(npairs)][::-1]
    if mode == "constant":
        if value is not None and x.dtype.kind != "f" and isinstance(value, float):
            raise Unspecified("a float pad value for an integer tensor")
        a = x.a
        # negative pads crop
        crop = tuple(
            slice(max(-lo, 0), a.shape[i] - max(-hi, 0) if a.shape[i] - max(-hi, 0) >= max(-lo, 0) else max(-lo, 0))
            for i, (lo, hi) in enumerate(pairs)
        )
        if any(a.shape[i] + lo + hi < 0 for i, (lo, hi) in enumerate(pairs)):
            raise Invalid("the padded size would be negative")
        if any(max(-lo, 0) + max(-hi, 0) > a.shape[i] for i, (lo, hi) in enumerate(pairs)):
            # PyTorch narrows the input by the negative pads first: cropping more than the dim
            # holds fails there even when the other side's padding would make up for it
            raise Unspecified("a crop larger than the dim (PyTorch's narrow raises)")
        a = a[crop]
        with np.errstate(all="ignore"):
            fill = np.asarray(0 if value is None else value).astype(x.dtype)
        return np.pad(a, [(max(lo, 0), max(hi, 0)) for lo, hi in pairs], constant_values=fill)
    if value is not None:
        raise Unspecified(f"a value with mode {mode!r} (PyTorch 2.x raises)")
    if npairs == 0:
        raise Unspecified(f"an empty pad list with mode {mode!r}")
    if mode == "circular":
        raise Unspecified("circular padding")
    # PyTorch pads the last 1-3 dims of a (batch,) channel, spatial input; other ranks are an
    # extension here, fine if they pad like NumPy
    odd_rank = not (1 <= npairs <= 3 and npairs + 1 <= x.a.ndim <= npairs + 2)
    if any(v < 0 for v in pad):
        raise Unspecified(f"negative {mode} padding")
    if x.dtype.kind != "f":
        raise Unspecified(f"{mode} padding of an integer tensor")
    for i, (lo, hi) in enumerate(pairs):
        if (lo or hi) and mode == "reflect" and (lo >= x.a.shape[i] or hi >= x.a.shape[i]):
            raise Invalid("reflect padding must be smaller than the input dim")
        if (lo or hi) and x.a.shape[i] == 0:
            raise Invalid("padding an empty dim")
    out = np.pad(x.a, pairs, mode="reflect" if mode == "reflect" else "edge")
    return Either(out, "a rank PyTorch does not pad in this mode") if odd_rank else out


def np_unfold(x, k, d, p, s):
    n, c, h, w = x.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    cols = np.zeros((n, c, k[0], k[1], oh, ow))
    for i in range(k[0]):
        for j in range(k[1]):
            cols[:, :, i, j] = xp[
                :, :, i * d[0] : i * d[0] + s[0] * (oh - 1) + 1 : s[0], j * d[1] : j * d[1] + s[1] * (ow - 1) + 1 : s[1]
            ]
    return cols.reshape(n, c * k[0] * k[1], oh * ow), oh, ow


def unfold_expected(x: TP, k, d, p, s):
    _float_input(x)
    if x.a.ndim == 3:
        raise Unspecified("an unbatched unfold input (PyTorch documents only 4-d)")
    xa = _batched(x, (3, 4))
    k, d, p, s = _pair(k, "kernel_size"), _pair(d, "dilation"), _pair(p, "padding"), _pair(s, "stride")
    if min(k) <= 0 or min(d) <= 0 or min(s) <= 0 or min(p) < 0:
        raise Invalid("kernel/dilation/stride must be positive, padding non-negative")
    h, w = xa.shape[2:]
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh < 1 or ow < 1:
        raise Invalid("the sliding blocks' shape must be at least one")
    if 0 in xa.shape[1:]:
        raise Unspecified("an empty channel or spatial dim")
    if max(p) > 10**5:
        raise Unspecified("a padding too large to compute here")
    out = np_unfold(xa, k, d, p, s)[0].astype(x.dtype)
    return out[0] if x.a.ndim == 3 else out


def fold_expected(x: TP, out_size, k, d, p, s):
    _float_input(x)
    xa = _batched(x, (2, 3))
    out_size, k, d, p, s = (
        _pair(out_size, "output_size"),
        _pair(k, "kernel_size"),
        _pair(d, "dilation"),
        _pair(p, "padding"),
        _pair(s, "stride"),
    )
    if min(k) <= 0 or min(d) <= 0 or min(s) <= 0 or min(p) < 0 or min(out_size) <= 0:
        raise Invalid("kernel/dilation/stride/output size must be positive, padding non-negative")
    n, ckk, L = xa.shape
    if ckk % (k[0] * k[1]) or ckk == 0:
        raise Invalid("the input's dim 1 must be divisible by the kernel's area")
    oh = (out_size[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (out_size[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    if oh < 1 or ow < 1 or oh * ow != L:
        raise Invalid("the number of blocks does not match the output size")
    c = ckk // (k[0] * k[1])
    cols = xa.astype(np.float64).reshape(n, c, k[0], k[1], oh, ow)
    res = np.zeros((n, c, out_size[0] + 2 * p[0], out_size[1] + 2 * p[1]))
    for i in range(k[0]):
        for j in range(k[1]):
            res[
                :, :, i * d[0] : i * d[0] + s[0] * (oh - 1) + 1 : s[0], j * d[1] : j * d[1] + s[1] * (ow - 1) + 1 : s[1]
            ] += cols[:, :, i, j]
    res = res[:, :, p[0] : p[0] + out_size[0], p[1] : p[1] + out_size[1]].astype(x.dtype)
    return res[0] if x.a.ndim == 2 else res


def _np_log_softmax(a, axis):
    """PyTorch subtracts the row max as it is: a row holding +inf (or only -inf) is all NaN."""
    with np.errstate(all="ignore"):
        a = a.astype(np.float64)
        m = np.max(a, axis=axis, keepdims=True) if a.size else a
        return a - m - np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True))


def _class_targets(target, batch_shape, ignore_index, c, w):
    """PyTorch's checks on class-index targets, then the kept mask, the targets with ignored
    ones made 0 (safe to gather) and each sample's class weight (0 where ignored)."""
    if target.dtype != I64:
        raise Invalid("class targets must be int64")
    if target.a.shape != batch_shape:
        raise Invalid("the target's shape must be the input's without the class dim")
    t = target.a.reshape(-1)
    keep = t != ignore_index
    if np.any(keep & ((t < 0) | (t >= c))):
        raise Invalid("target out of bounds")
    ts = np.where(keep, t, 0)
    return keep, ts, w[ts] * keep


def ce_expected(x: TP, target, weight, ignore_index, reduction, label_smoothing):
    _float_input(x, weight)
    if reduction not in ("none", "mean", "sum"):
        raise Invalid(f"reduction {reduction!r}")
    if not isinstance(label_smoothing, (int, float)) or not 0.0 <= label_smoothing <= 1.0:
        raise Invalid("label_smoothing must be in [0, 1]")
    a = x.a
    if a.ndim == 0:
        raise Invalid("a 0-d input")
    c = a.shape[1] if a.ndim >= 2 else a.shape[0]
    if weight is not None and weight.a.shape != (c,):
        raise Invalid("weight must have shape [C]")
    w = np.ones(c) if weight is None else weight.a.astype(np.float64)
    lp = _np_log_softmax(a, 1 if a.ndim >= 2 else 0)
    lp = np.moveaxis(lp, 1, -1).reshape(-1, c) if a.ndim >= 2 else lp.reshape(1, c)
    batch_shape = (a.shape[0],) + a.shape[2:] if a.ndim >= 2 else ()
    if target.dtype.kind == "f":  # class probabilities
        if target.a.shape != a.shape:
            raise Invalid("probability targets must have the input's shape")
        q = np.moveaxis(target.a, 1, -1).reshape(-1, c) if a.ndim >= 2 else target.a.reshape(1, c)
        q = q.astype(np.float64) * (1 - label_smoothing) + label_smoothing / c
        per = -(lp * q * w).sum(1)  # PyTorch: the class weights scale each term; mean divides by N
        if reduction == "none":
            return per.reshape(batch_shape).astype(x.dtype)
        return np.asarray(per.sum() if reduction == "sum" else (per.mean() if per.size else np.nan)).astype(x.dtype)
    keep, ts, wt = _class_targets(target, batch_shape, ignore_index, c, w)
    nll = -lp[np.arange(len(ts)), ts] * wt
    smooth = -(lp * w).sum(1) * keep
    with np.errstate(all="ignore"):
        if reduction == "none":
            per = (1 - label_smoothing) * nll + label_smoothing / c * smooth
            return per.reshape(batch_shape).astype(x.dtype)
        if reduction == "sum":
            return np.asarray((1 - label_smoothing) * nll.sum() + label_smoothing / c * smooth.sum()).astype(x.dtype)
        return np.asarray(((1 - label_smoothing) * nll.sum() + label_smoothing / c * smooth.sum()) / wt.sum()).astype(
            x.dtype
        )


def layer_norm_expected(x: TP, shape, weight, bias, eps):
    _float_input(x, weight, bias)
    shape = tuple(S.int_arg(v, "normalized_shape") for v in ([shape] if isinstance(shape, int) else shape))
    k = len(shape)
    if k == 0 or k > x.a.ndim or x.a.shape[x.a.ndim - k :] != shape:
        raise Invalid("normalized_shape must match the trailing dims")
    for p in (weight, bias):
        if p is not None and p.a.shape != shape:
            raise Invalid("weight/bias must have normalized_shape")
    axes = tuple(range(x.a.ndim - k, x.a.ndim))
    a = x.a.astype(np.float64)
    if a.size == 0:
        return a.astype(x.dtype)
    mean = a.mean(axis=axes, keepdims=True)
    var = ((a - mean) ** 2).mean(axis=axes, keepdims=True)
    if eps == 0 and np.any((var > 0) & (var < np.finfo(x.dtype).tiny)):
        raise Unspecified("eps=0 and a variance that underflows in the input's dtype (0/0 or x/0 there)")
    if eps == 0 and np.any(np.ptp(a, axis=axes) == 0):
        # a constant group with eps=0 is 0/0: NaN where the mean is exact (PyTorch's double
        # accumulation, ours), +-1 where NumPy's mean is off by an ulp
        raise Unspecified("eps=0 and a constant normalisation group (0/0)")
    with np.errstate(all="ignore"):
        out = (a - mean) / np.sqrt(var + eps)
    if weight is not None:
        out = out * weight.a
    if bias is not None:
        out = out + bias.a
    return out.astype(x.dtype)


def batch_norm_expected(x: TP, rm, rv, weight, bias, training, momentum, eps):
    _float_input(x, weight, bias, rm, rv)
    if x.a.ndim < 2:
        raise Invalid("batch_norm needs at least 2 dims")
    c = x.a.shape[1]
    for p in (rm, rv, weight, bias):
        if p is not None and p.a.shape != (c,):
            raise Invalid("per-channel tensors must have shape [C]")
    axes = (0,) + tuple(range(2, x.a.ndim))
    a = x.a.astype(np.float64)
    bshape = (1, c) + (1,) * (x.a.ndim - 2)
    if training:
        n = a.size // max(c, 1)
        if n <= 1:
            raise Invalid("expected more than 1 value per channel when training")
        mean = a.mean(axis=axes)
        var = a.var(axis=axes)
        new_rm = None if rm is None else (1 - momentum) * rm.a + momentum * mean
        new_rv = None if rv is None else (1 - momentum) * rv.a + momentum * var * n / (n - 1)
    else:
        if rm is None or rv is None:
            raise Unspecified("evaluation mode without running statistics")
        mean, var = rm.a.astype(np.float64), rv.a.astype(np.float64)
        new_rm, new_rv = rm.a, rv.a
    with np.errstate(all="ignore"):
        out = (a - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + eps)
    if weight is not None:
        out = out * weight.a.reshape(bshape)
    if bias is not None:
        out = out + bias.a.reshape(bshape)
    return out.astype(x.dtype), new_rm, new_rv


NN_OPS = [
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "adaptive_avg_pool2d",
    "pad",
    "unfold",
    "fold",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "linear",
    "layer_norm",
    "batch_norm",
    "embedding",
    "dropout",
]
_small_int = st.one_of(st.integers(1, 3), st.integers(1, 3), st.sampled_from([0, -1, 2**62, None, 1.5]))
_pad_int = st.one_of(st.integers(0, 2), st.integers(0, 2), st.sampled_from([-1, 2**62, 1.5]))


def _arg(draw, base):
    """An int argument, sometimes as a pair."""
    return draw(st.one_of(base, st.tuples(base, base)))


def _ft(draw, shape, dt, kind="small"):
    return draw(S.tensors(dtypes=[dt], shape=shape, kind=kind, layouts=("contig", "permuted", "strided", "expanded")))


@st.composite
def nn_case(draw):
    name = draw(st.sampled_from(NN_OPS))
    dt = draw(st.sampled_from([F32, F32, F64, I64]))
    if name == "conv2d":
        n, groups = draw(st.integers(0, 2)), draw(st.sampled_from([1, 1, 2, 3, 0]))
        cg, og = draw(st.integers(1, 2)), draw(st.integers(1, 2))
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
        c_in = cg * max(groups, 1) + draw(st.sampled_from([0, 0, 0, 0, 1]))
        rank = draw(st.sampled_from([4, 4, 4, 3, 2]))
        xshape = {4: (n, c_in, h, w), 3: (c_in, h, w), 2: (h, w)}[rank]
        x = _ft(draw, xshape, dt)
        wt = _ft(draw, (og * max(groups, 1), cg, kh, kw), dt)
        b = None if draw(st.booleans()) else _ft(draw, (og * max(groups, 1) + draw(st.sampled_from([0, 0, 0, 1])),), dt)
        padding = _arg(draw, _pad_int) if draw(st.integers(0, 3)) else draw(st.sampled_from(["same", "valid", "full"]))
        return name, dict(
            x=x,
            w=wt,
            b=b,
            stride=_arg(draw, _small_int),
            padding=padding,
            dilation=_arg(draw, _small_int),
            groups=groups,
        )
    if name in ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"):
        rank = draw(st.sampled_from([4, 4, 3, 2]))
        shape = draw(S.shapes(rank, rank, 0 if rank == 4 else 1, 7))
        x = _ft(draw, shape, dt, "moderate" if name == "max_pool2d" else "small")
        if name == "adaptive_avg_pool2d":
            return name, dict(x=x, size=_arg(draw, st.one_of(st.integers(1, 5), st.sampled_from([0, -1, 10**7]))))
        k = _arg(draw, st.one_of(st.integers(1, 4), st.sampled_from([0, -1])))
        kw = dict(
            x=x,
            k=k,
            stride=draw(st.one_of(st.none(), st.just(()), st.just(_arg(draw, _small_int)))),
            padding=_arg(draw, _pad_int),
            ceil_mode=draw(st.booleans()),
        )
        if name == "max_pool2d":
            kw["dilation"] = _arg(draw, st.one_of(st.integers(1, 2), st.sampled_from([0])))
            kw["return_indices"] = draw(st.booleans())
        else:
            kw["count_include_pad"] = draw(st.booleans())
            kw["divisor_override"] = draw(st.one_of(st.none(), st.integers(1, 5), st.just(0)))
        return name, kw
    if name == "pad":
        x = _ft(draw, draw(S.shapes(1, 4, 0, 4)), dt)
        pad = draw(st.lists(st.integers(-2, 3), max_size=7))
        mode = draw(st.sampled_from(["constant", "constant", "reflect", "replicate", "circular", "nope"]))
        value = (
            draw(st.one_of(st.none(), st.floats(-2, 2, width=32), st.integers(-2, 2))) if draw(st.booleans()) else None
        )
        return name, dict(x=x, pad=pad, mode=mode, value=value)
    if name == "unfold":
        rank = draw(st.sampled_from([4, 4, 3]))
        x = _ft(draw, draw(S.shapes(rank, rank, 1, 6)), dt)
        return name, dict(
            x=x,
            k=_arg(draw, _small_int),
            d=_arg(draw, st.integers(1, 2)),
            p=_arg(draw, _pad_int),
            s=_arg(draw, _small_int),
        )
    if name == "fold":
        k, s, d, p = (
            draw(st.tuples(st.integers(1, 3), st.integers(1, 3))),
            draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
            draw(st.tuples(st.integers(1, 2), st.integers(1, 2))),
            draw(st.tuples(st.integers(0, 1), st.integers(0, 1))),
        )
        out = draw(st.tuples(st.integers(1, 6), st.integers(1, 6)))
        oh = (out[0] + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
        ow = (out[1] + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
        c = draw(st.integers(1, 2))
        L = max(oh, 0) * max(ow, 0) + draw(st.sampled_from([0, 0, 0, 1]))
        shape = (draw(st.integers(0, 2)), c * k[0] * k[1], L) if draw(st.booleans()) else (c * k[0] * k[1], L)
        x = _ft(draw, shape, dt)
        return name, dict(x=x, out=out, k=k, d=d, p=p, s=s)
    if name in ("softmax", "log_softmax"):
        x = _ft(draw, draw(S.shapes(0, 3, 0, 4)), dt, "moderate")
        return name, dict(x=x, dim=draw(S.dims(x.a.ndim)))
    if name in ("cross_entropy", "nll_loss"):
        shape = draw(st.sampled_from([(3, 4), (0, 3), (2, 3, 2), (4,), (1, 1)]))
        c = shape[1] if len(shape) >= 2 else shape[0]
        x = _ft(draw, shape, dt)
        bshape = (shape[0],) + shape[2:] if len(shape) >= 2 else ()
        if name == "cross_entropy" and draw(st.booleans()):
            probs = np.abs(draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1)))) + 1e-3
            probs = probs / probs.sum(axis=1 if len(shape) >= 2 else 0, keepdims=True)
            target = TP(
                probs.astype(dt if dt.kind == "f" else F32),
                bp.tensor(probs.astype(dt if dt.kind == "f" else F32)),
                f"bp.tensor({np_src(probs.astype(dt if dt.kind == 'f' else F32))})",
                "contig",
            )
        else:
            tshape = bshape if draw(st.integers(0, 6)) else draw(S.shapes(0, 2, 0, 3))
            target = draw(S.tensors(dtypes=[I64], shape=tshape, kind=(-1, c), layouts=("contig", "strided")))
            if draw(st.integers(0, 4)) == 0 and target.a.size:
                target.a.ravel()[0] = -100
                target = TP(target.a, bp.tensor(target.a), f"bp.tensor({np_src(target.a)})", "contig")
        weight = (
            _ft(draw, (c + draw(st.sampled_from([0, 0, 0, 1])),), dt, "positive")
            if draw(st.integers(0, 2)) == 0
            else None
        )
        kw = dict(
            x=x,
            target=target,
            weight=weight,
            ignore_index=draw(st.sampled_from([-100, -100, 0, 1])),
            reduction=draw(st.sampled_from(["mean", "mean", "sum", "none", "avg"])),
        )
        if name == "cross_entropy":
            kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.0, 0.1, 1.0, -0.1, 1.5]))
        return name, kw
    if name == "linear":
        batch = draw(S.shapes(0, 2, 0, 3))
        fin, fout = draw(st.integers(0, 4)), draw(st.integers(0, 4))
        x = _ft(draw, batch + (fin,), dt)
        w = _ft(draw, (fout, fin + draw(st.sampled_from([0, 0, 0, 1]))), dt)
        b = None if draw(st.booleans()) else _ft(draw, (fout + draw(st.sampled_from([0, 0, 0, 1])),), dt)
        return name, dict(x=x, w=w, b=b)
    if name == "layer_norm":
        x = _ft(draw, draw(S.shapes(1, 3, 0, 4)), dt, "small")
        k = draw(st.integers(0, x.a.ndim))
        shape = (
            list(x.a.shape[x.a.ndim - k :])
            if draw(st.integers(0, 5))
            else draw(st.lists(st.integers(0, 4), max_size=2))
        )
        w = _ft(draw, tuple(shape), dt) if draw(st.booleans()) and shape else None
        b = _ft(draw, tuple(shape), dt) if draw(st.booleans()) and shape else None
        return name, dict(x=x, shape=shape, w=w, b=b, eps=draw(st.sampled_from([1e-5, 1e-3, 0.0])))
    if name == "batch_norm":
        x = _ft(draw, draw(S.shapes(1, 4, 1, 3)), dt, "small")
        c = x.a.shape[1] if x.a.ndim >= 2 else 1
        stats = draw(st.booleans())
        rm = _ft(draw, (c,), dt, "small") if stats else None
        rv = _ft(draw, (c,), dt, "positive") if stats else None
        if rm is not None:  # the engine updates these in place: give it its own writable copies
            rm, rv = (TP(v.a, bp.tensor(v.a), f"bp.tensor({np_src(v.a)})", "contig") for v in (rm, rv))
        w = _ft(draw, (c,), dt) if draw(st.booleans()) else None
        b = _ft(draw, (c,), dt) if draw(st.booleans()) else None
        return name, dict(
            x=x,
            rm=rm,
            rv=rv,
            w=w,
            b=b,
            training=draw(st.booleans()),
            momentum=draw(st.sampled_from([0.1, 0.0, 1.0])),
            eps=draw(st.sampled_from([1e-5, 1e-3])),
        )
    if name == "embedding":
        num, dim = draw(st.integers(1, 5)), draw(st.integers(0, 3))
        w = _ft(draw, (num, dim), dt if dt.kind == "f" else F32)
        idx = draw(
            S.tensors(
                dtypes=[draw(st.sampled_from([I64, I64, I64, F32]))],
                max_dims=2,
                kind=(-1, num),
                layouts=("contig", "permuted", "strided"),
            )
        )
        return name, dict(idx=idx, w=w)
    x = _ft(draw, draw(S.shapes(0, 3, 0, 4)), dt)
    return name, dict(
        x=x, p=draw(st.sampled_from([0.0, 0.5, 0.2, 1.0, -0.1, 1.5, math.nan])), training=draw(st.booleans())
    )


def _t(v):
    return v.t if isinstance(v, TP) else v


def nn_call_and_ref(name, kw):
    """(call, reference, description, tolerance) for one nn case."""
    if name == "conv2d":
        pos = (kw["stride"], kw["padding"], kw["dilation"], kw["groups"])

        def call():
            return F.conv2d(_t(kw["x"]), _t(kw["w"]), _t(kw["b"]), *pos)

        def ref():
            return conv_expected(kw["x"], kw["w"], kw["b"], *pos)

        desc = f"F.conv2d({src(kw['x'])}, {src(kw['w'])}, {src(kw['b'])}, {', '.join(map(repr, pos))})"
        return call, ref, desc, Tol(atol=1e-4, rtol=1e-4)
    if name in ("max_pool2d", "avg_pool2d"):
        x = kw.pop("x")
        ret = kw.pop("return_indices", False)
        if name == "max_pool2d":
            pos = (kw["k"], kw["stride"], kw["padding"], kw["dilation"], kw["ceil_mode"])

            def call():
                return F.max_pool2d(x.t, *pos, ret)

            def ref():
                return pool_expected("max", x, *pos)

            desc = f"F.max_pool2d({x.src}, {', '.join(map(repr, pos))}, {ret!r})"
        else:
            pos = (
                kw["k"],
                kw["stride"],
                kw["padding"],
                kw["ceil_mode"],
                kw["count_include_pad"],
                kw["divisor_override"],
            )

            def call():
                return F.avg_pool2d(x.t, *pos)

            def ref():
                return pool_expected("avg", x, *pos[:3], 1, *pos[3:])

            desc = f"F.avg_pool2d({x.src}, {', '.join(map(repr, pos))})"
        if ret:
            base_call = call

            def call():
                r = base_call()
                if not isinstance(r, tuple) or len(r) != 2:
                    return r
                vals, idx = r
                # the indices point at the max of each window: gather them back (ties may differ)
                flat = x.t.reshape(*x.t.shape[:-2], -1) if x.t.dim() >= 2 else x.t
                picked = flat.gather(flat.dim() - 1, idx.reshape(*idx.shape[:-2], -1)).reshape(*vals.shape)
                return vals, picked

            base_ref = ref

            def ref():
                r = base_ref()
                return (r, r)

        return call, ref, desc, Tol(atol=1e-5, rtol=1e-5)
    if name == "adaptive_avg_pool2d":
        x = kw["x"]
        return (
            (lambda: F.adaptive_avg_pool2d(x.t, kw["size"])),
            (lambda: adaptive_expected(x, kw["size"])),
            f"F.adaptive_avg_pool2d({x.src}, {kw['size']!r})",
            Tol(atol=1e-5, rtol=1e-5),
        )
    if name == "pad":
        x = kw["x"]
        return (
            (lambda: F.pad(x.t, kw["pad"], kw["mode"], kw["value"])),
            (lambda: pad_expected(x, kw["pad"], kw["mode"], kw["value"])),
            f"F.pad({x.src}, {kw['pad']!r}, {kw['mode']!r}, {kw['value']!r})",
            EXACT,
        )
    if name == "unfold":
        x = kw["x"]
        return (
            (lambda: F.unfold(x.t, kw["k"], kw["d"], kw["p"], kw["s"])),
            (lambda: unfold_expected(x, kw["k"], kw["d"], kw["p"], kw["s"])),
            f"F.unfold({x.src}, {kw['k']!r}, {kw['d']!r}, {kw['p']!r}, {kw['s']!r})",
            Tol(),
        )
    if name == "fold":
        x = kw["x"]
        return (
            (lambda: F.fold(x.t, kw["out"], kw["k"], kw["d"], kw["p"], kw["s"])),
            (lambda: fold_expected(x, kw["out"], kw["k"], kw["d"], kw["p"], kw["s"])),
            f"F.fold({x.src}, {kw['out']!r}, {kw['k']!r}, {kw['d']!r}, {kw['p']!r}, {kw['s']!r})",
            Tol(atol=1e-5, rtol=1e-5),
        )
    if name in ("softmax", "log_softmax"):
        x, dim = kw["x"], kw["dim"]

        def ref():
            _float_input(x)
            # dim=None is PyTorch's deprecated implicit choice: 0 for 0-, 1- and 3-d inputs, else 1
            d = S.wrap_dim(dim if dim is not None else (0 if x.a.ndim in (0, 1, 3) else 1), x.a.ndim)
            if x.a.ndim == 0:
                return (
                    np.asarray(1.0 if name == "softmax" else 0.0, x.dtype)
                    if np.isfinite(x.a)
                    else np.asarray(np.nan, x.dtype)
                )
            lsm = _np_log_softmax(x.a, d)
            return (np.exp(lsm) if name == "softmax" else lsm).astype(x.dtype)

        return (
            (lambda: getattr(F, name)(x.t, dim)),
            ref,
            f"F.{name}({x.src}, {dim!r})",
            Tol(atol=1e-6 if x.dtype == F32 else 1e-13, rtol=1e-5),
        )
    if name in ("cross_entropy", "nll_loss"):
        x, t, w = kw["x"], kw["target"], kw["weight"]
        pos = (kw["ignore_index"], kw["reduction"]) + ((kw["label_smoothing"],) if name == "cross_entropy" else ())
        # by keyword: PyTorch's positional order has the deprecated size_average and reduce in it
        names = ("ignore_index", "reduction", "label_smoothing")
        kws = dict(zip(names, pos))
        desc = f"F.{name}({x.src}, {t.src}, {src(w)}, {', '.join(f'{k}={v!r}' for k, v in kws.items())})"
        if name == "cross_entropy":

            def call():
                return F.cross_entropy(x.t, t.t, _t(w), **kws)

            def ref():
                return ce_expected(x, t, w, *pos)
        else:

            def call():
                return F.nll_loss(x.t, t.t, _t(w), **kws)

            def ref():
                if t.dtype.kind == "f":
                    raise Invalid("nll_loss needs class indices")
                return _nll_expected(x, t, w, *pos)

        return call, ref, desc, Tol(atol=1e-5, rtol=1e-5)
    if name == "linear":
        x, w, b = kw["x"], kw["w"], kw["b"]

        def ref():
            _float_input(x, w, b)
            if w.a.ndim != 2 or w.a.shape[1] != x.a.shape[-1]:
                raise Invalid("weight must be [out, in]")
            out = x.a.astype(np.float64) @ w.a.T.astype(np.float64)
            if b is not None:
                try:
                    if np.broadcast_shapes(b.a.shape, out.shape) != out.shape:
                        raise ValueError
                except ValueError:
                    raise Invalid("the bias must broadcast to the output") from None
                out = out + b.a
            return out.astype(x.dtype)

        return (
            (lambda: F.linear(x.t, w.t, _t(b))),
            ref,
            f"F.linear({x.src}, {w.src}, {src(b)})",
            Tol(atol=1e-5, rtol=1e-5),
        )
    if name == "layer_norm":
        x = kw["x"]
        return (
            (lambda: F.layer_norm(x.t, kw["shape"], _t(kw["w"]), _t(kw["b"]), kw["eps"])),
            (lambda: layer_norm_expected(x, kw["shape"], kw["w"], kw["b"], kw["eps"])),
            f"F.layer_norm({x.src}, {kw['shape']!r}, {src(kw['w'])}, {src(kw['b'])}, {kw['eps']!r})",
            Tol(atol=1e-4, rtol=1e-4),
        )
    if name == "batch_norm":
        x, rm, rv = kw["x"], kw["rm"], kw["rv"]

        def call():
            out = F.batch_norm(x.t, _t(rm), _t(rv), _t(kw["w"]), _t(kw["b"]), kw["training"], kw["momentum"], kw["eps"])
            return out, None if rm is None else rm.t, None if rv is None else rv.t

        def ref():
            out, new_rm, new_rv = batch_norm_expected(
                x, rm, rv, kw["w"], kw["b"], kw["training"], kw["momentum"], kw["eps"]
            )
            return (
                out,
                None if new_rm is None else np.asarray(new_rm).astype(x.dtype),
                None if new_rv is None else np.asarray(new_rv).astype(x.dtype),
            )

        def compare(got, want):
            for i, (g, w_) in enumerate(zip(got, want)):
                if w_ is not None:
                    assert_same(g, w_, Tol(atol=1e-4, rtol=1e-4), ["output", "running_mean", "running_var"][i])

        desc = (
            f"F.batch_norm({x.src}, {src(rm)}, {src(rv)}, {src(kw['w'])}, {src(kw['b'])}, training={kw['training']}, "
            f"momentum={kw['momentum']}, eps={kw['eps']})"
        )
        return call, ref, desc, compare
    if name == "embedding":
        idx, w = kw["idx"], kw["w"]

        def ref():
            if idx.dtype != I64:
                raise Invalid("indices must be int64")
            if np.any((idx.a < 0) | (idx.a >= w.a.shape[0])):
                raise Invalid("index out of range")
            return w.a[idx.a]

        return (lambda: F.embedding(idx.t, w.t)), ref, f"F.embedding({idx.src}, {w.src})", EXACT
    x, p, training = kw["x"], kw["p"], kw["training"]

    def ref():
        if not 0.0 <= p <= 1.0:
            raise Invalid("dropout probability has to be between 0 and 1")
        if x.dtype.kind != "f":
            raise Unspecified("dropout of an integer tensor")
        return ("dropout", x.a, p, training)

    def compare(got, want):
        _, a, p_, tr = want
        if not tr or p_ == 0:
            return assert_same(got, a, EXACT)
        if p_ == 1:
            return assert_same(got, np.zeros_like(a), Tol())
        scaled = (a.astype(np.float64) / (1 - p_)).astype(a.dtype)
        ok = (got == 0) | np.isclose(got, scaled, rtol=1e-6, atol=0, equal_nan=True)
        if got.shape != a.shape or got.dtype != a.dtype or not np.all(ok):
            raise Mismatch(f"dropout: elements must be 0 or x/(1-p); got {got!r}")

    return (lambda: F.dropout(x.t, p, training)), ref, f"F.dropout({x.src}, {p!r}, {training!r})", compare


def _nll_expected(x: TP, target, weight, ignore_index, reduction):
    """nll_loss = cross_entropy without the log_softmax: feed ce_expected inputs whose
    log_softmax is the identity is not possible, so it is written out."""
    _float_input(x, weight)
    if reduction not in ("none", "mean", "sum"):
        raise Invalid(f"reduction {reduction!r}")
    a = x.a
    if a.ndim == 0:
        raise Invalid("a 0-d input")
    c = a.shape[1] if a.ndim >= 2 else a.shape[0]
    if weight is not None and weight.a.shape != (c,):
        raise Invalid("weight must have shape [C]")
    w = np.ones(c) if weight is None else weight.a.astype(np.float64)
    lp = np.moveaxis(a, 1, -1).reshape(-1, c).astype(np.float64) if a.ndim >= 2 else a.reshape(1, c).astype(np.float64)
    batch_shape = (a.shape[0],) + a.shape[2:] if a.ndim >= 2 else ()
    keep, ts, wt = _class_targets(target, batch_shape, ignore_index, c, w)
    per = -lp[np.arange(len(ts)), ts] * wt
    with np.errstate(all="ignore"):
        if reduction == "none":
            return per.reshape(batch_shape).astype(x.dtype)
        return np.asarray(per.sum() if reduction == "sum" else per.sum() / wt.sum()).astype(x.dtype)


@budget(100)
@given(case=nn_case())
def test_nn_functional(case):
    """nn.functional ops with random shapes and valid/invalid arguments against NumPy
    references written from PyTorch's documented formulas and argument checks."""
    nn_oracle.example()
    name, kw = case
    call, ref, desc, tol = nn_call_and_ref(name, dict(kw))
    if callable(tol):
        nn_oracle.check(desc, call, ref, compare=tol)
    else:
        nn_oracle.check(desc, call, ref, tol=tol)


# ---------------------------------------------------------------------------- matmul


@budget(40)
@given(data=st.data())
def test_matmul(data):
    """a @ b with 1-d, 2-d and batched (broadcast) operands of any layout against np.matmul;
    matmul does not promote (mixed dtypes raise) and has no bool kernel."""
    binary_oracle.example()
    nd_a, nd_b = data.draw(st.integers(0, 4), "nd_a"), data.draw(st.integers(0, 4), "nd_b")
    m, k, n = (data.draw(st.integers(0, 4)) for _ in range(3))
    batch = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
    sa = (batch[0] + (m, k))[-nd_a:] if nd_a >= 2 else ((k,) if nd_a == 1 else ())
    sb = (batch[1] + (k, n))[-nd_b:] if nd_b >= 2 else ((k,) if nd_b == 1 else ())
    if data.draw(st.integers(0, 7)) == 0:
        sb = data.draw(S.shapes(0, 3, 0, 4))  # mostly mismatched
    da = data.draw(st.sampled_from(S.ALL_DTYPES))
    db = da if data.draw(st.integers(0, 4)) else data.draw(st.sampled_from(S.ALL_DTYPES))
    a = data.draw(S.tensors(dtypes=[da], shape=sa, kind="small"))
    b = data.draw(S.tensors(dtypes=[db], shape=sb, kind="small"))

    def ref():
        if a.a.ndim == 0 or b.a.ndim == 0:
            raise Invalid("matmul of a 0-d tensor")
        if da != db:
            raise Invalid("matmul operands must have the same dtype")
        if da == BOOL:
            raise Unspecified("matmul of bools")
        try:
            out = np.matmul(a.a.astype(np.float64), b.a.astype(np.float64))
        except ValueError:
            raise Invalid("matmul shapes do not match") from None
        return out.astype(da)

    binary_oracle.check(
        f"({a.src}) @ ({b.src})",
        lambda: a.t @ b.t,
        ref,
        tol=Tol(atol=1e-5, rtol=1e-5) if da == F32 else Tol(atol=1e-12, rtol=1e-12),
    )


# ---------------------------------------------------------------------------- autograd on random graphs

autograd_oracle = Oracle("autograd")

# Smooth ops only (no kinks), with arguments kept inside their domains, so f64 central
# differences are exact to ~1e-8.
_AG_UNARY = {
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "sin": lambda t: t.sin(),
    "square": lambda t: t.square(),
    "exp_tanh": lambda t: t.tanh().exp(),
    "log1p2": lambda t: (t * t + 1).log(),
    "sqrt1p2": lambda t: (t * t + 1).sqrt(),
    "recip1p2": lambda t: (t * t + 1).reciprocal(),
    "rsqrt1p2": lambda t: (t * t + 1).rsqrt(),
    "softplus": lambda t: F.softplus(t),
    "gelu": lambda t: F.gelu(t),
    "pow15": lambda t: (t * t + 1) ** 1.5,
    "erf": lambda t: t.erf(),
    "scale": lambda t: t * 0.5 - 1.0,
    "neg": lambda t: -t,
    "cos": lambda t: t.cos(),
}


def _ag_apply(op, arg, t, other):
    """Applies op to t (and maybe other); returns None when it does not fit t's shape."""
    nd = t.dim()
    if op in _AG_UNARY:
        return _AG_UNARY[op](t)
    if op in ("add", "sub", "mul", "div"):
        try:
            np.broadcast_shapes(t.shape, other.shape)
        except ValueError:
            return None
        return {
            "add": lambda: t + other,
            "sub": lambda: other - t,
            "mul": lambda: t * other,
            "div": lambda: t / (other * other + 1),
        }[op]()
    if op == "sum" and nd:
        return t.sum(arg % nd, keepdim=bool(arg & 1))
    if op == "mean" and nd:
        return t.mean(arg % nd)
    if op in ("softmax", "log_softmax", "logsumexp") and nd:
        return getattr(t, op)(arg % nd)
    if op == "var" and nd and t.shape[arg % nd] > 1:
        return t.var(arg % nd)
    if op == "transpose" and nd >= 2:
        return t.transpose(0, arg % nd)
    if op == "reshape":
        return t.reshape(-1)
    if op == "unsqueeze":
        return t.unsqueeze(arg % (nd + 1))
    if op == "expand":
        return t.unsqueeze(0).expand(2, *t.shape)
    if op == "slice" and nd and t.shape[0] > 1:
        return t[1:]
    if op == "step" and nd and t.shape[-1] > 1:
        return t[..., ::2]
    if op == "index" and nd and t.shape[0] > 0:
        return t[bp.tensor([arg % t.shape[0], 0, arg % t.shape[0]])]  # repeated rows: gradients add up
    if op == "cat" and nd:
        return bp.cat([t, t * 2], dim=arg % nd)
    if op == "stack":
        return bp.stack([t, other.expand(*t.shape) if _bcastable(other.shape, t.shape) else t], dim=arg % (nd + 1))
    if op == "matmul" and nd >= 1 and other.dim() >= 1:
        try:
            np.matmul(np.empty(t.shape), np.empty(other.shape))
        except ValueError:
            return None
        return t @ other
    if op == "setitem" and nd and t.shape[0] > 0:
        y = t * 1
        y[0] = other.sum()  # in-place write into a graph tensor
        return y
    if op == "inplace":
        y = t * 1
        y.mul_(0.5)
        y.tanh_()
        return y
    return None


def _bcastable(src_shape, dst_shape):
    try:
        return np.broadcast_shapes(src_shape, dst_shape) == tuple(dst_shape)
    except ValueError:
        return False


_AG_OPS = sorted(_AG_UNARY) + [
    "add",
    "sub",
    "mul",
    "div",
    "sum",
    "mean",
    "softmax",
    "log_softmax",
    "logsumexp",
    "var",
    "transpose",
    "reshape",
    "unsqueeze",
    "expand",
    "slice",
    "step",
    "index",
    "cat",
    "stack",
    "matmul",
    "setitem",
    "inplace",
]


def _ag_forward(program, x, y, view):
    t = view(x)
    for op, arg in program:
        r = _ag_apply(op, arg, t, y)
        if r is not None and r.numel() <= 512:
            t = r
    return t


@budget(40)
@given(data=st.data())
def test_autograd_random_graphs(data):
    """backward() on random small graphs of differentiable ops (broadcasting, views, indexing
    with repeats, cat/stack, matmul, in-place ops and setitem inside the graph) against f64
    central differences of the same forward."""
    autograd_oracle.example()
    sx = data.draw(S.shapes(1, 3, 1, 3), "x shape")
    sy = data.draw(
        st.one_of(hnp.broadcastable_shapes(sx, min_dims=0, max_dims=3, max_side=3), S.shapes(0, 2, 1, 3)), "y shape"
    )
    xa = data.draw(hnp.arrays(np.float64, sx, elements=st.floats(-1.5, 1.5)), "x")
    ya = data.draw(hnp.arrays(np.float64, sy, elements=st.floats(-1.5, 1.5)), "y")
    program = data.draw(
        st.lists(st.tuples(st.sampled_from(_AG_OPS), st.integers(0, 7)), min_size=1, max_size=6), "program"
    )
    view_kind = data.draw(st.sampled_from(["plain", "transposed", "expanded"]), "input view")
    view = {
        "plain": lambda t: t,
        "transposed": lambda t: t.transpose(0, -1) if t.dim() >= 2 else t,
        "expanded": lambda t: t.expand(2, *t.shape),
    }[view_kind]
    w_seed = data.draw(st.integers(0, 2**16), "weights")
    desc = f"graph {program} on x={np_src(xa)}, y={np_src(ya)}, view={view_kind}"

    def loss_of(xv, yv):
        out = _ag_forward(program, xv, yv, view)
        wts = np.random.default_rng(w_seed).uniform(-1, 1, size=out.shape)
        return (out * bp.tensor(wts, dtype=bp.float64)).sum()

    def numeric_at(step):
        grads = []
        for which in (0, 1):
            base = [xa.copy(), ya.copy()]
            g = np.zeros_like(base[which])
            for i in np.ndindex(base[which].shape):
                vals = []
                for h in (step, -step):
                    pert = [b.copy() for b in base]
                    pert[which][i] += h
                    with bp.no_grad():
                        vals.append(loss_of(bp.tensor(pert[0]), bp.tensor(pert[1])).item())
                g[i] = (vals[0] - vals[1]) / (2 * step)
            grads.append(g)
        return grads

    def numeric():
        grads = numeric_at(1e-6)
        # a graph that amplifies enormously (cos of 1e10) has no usable finite difference:
        # the estimate must agree with one at a smaller step, or there is nothing to compare
        finer = numeric_at(1e-7)
        if not all(np.allclose(a, b, rtol=1e-3, atol=1e-3) for a, b in zip(grads, finer)):
            raise Unspecified("finite differences do not converge (an ill-conditioned graph)")
        return grads

    def analytic():
        xv = bp.tensor(xa, requires_grad=True)
        yv = bp.tensor(ya, requires_grad=True)
        loss_of(xv, yv).backward()
        return [
            np.zeros_like(xa) if xv.grad is None else xv.grad.numpy(),
            np.zeros_like(ya) if yv.grad is None else yv.grad.numpy(),
        ]

    autograd_oracle.check(desc, analytic, numeric, tol=Tol(atol=1e-5, rtol=1e-4))


# ---------------------------------------------------------------------------- checkpoints

ckpt_oracle = Oracle("checkpoint")

_ckpt_keys = st.one_of(
    st.text(max_size=6), st.integers(-3, 3), st.sampled_from(["a.b", "", ".", "0", "1", "weight", "__metadata__"])
)
_ckpt_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    S.tensors(max_dims=3, max_side=3).map(lambda tp: tp),
)
_ckpt_tree = st.recursive(
    _ckpt_leaf,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.lists(c, max_size=3).map(tuple), st.dictionaries(_ckpt_keys, c, max_size=3)
    ),
    max_leaves=8,
)


def _ckpt_engine(obj):
    if isinstance(obj, TP):
        return obj.t
    if isinstance(obj, dict):
        return {k: _ckpt_engine(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_ckpt_engine(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_ckpt_engine(v) for v in obj)
    return obj


def _ckpt_names(obj, name=None, out=None):
    """The tensor names bp.save gives (dotted paths; a lone tensor is 'tensor')."""
    out = [] if out is None else out
    if isinstance(obj, TP):
        out.append("tensor" if name is None else name)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _ckpt_names(v, str(k) if name is None else f"{name}.{k}", out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _ckpt_names(v, str(i) if name is None else f"{name}.{i}", out)
    return out


def _ckpt_expected(obj):
    names = _ckpt_names(obj)
    if len(set(names)) != len(names):
        raise Invalid("two tensors would get the same name")
    if any(n == "__metadata__" for n in names):
        raise Unspecified("a tensor named __metadata__ (the safetensors header's reserved key)")
    if _has_surrogates(obj):
        raise Unspecified("a string that is not valid UTF-8")
    return obj


def _has_surrogates(obj):
    def bad(s):
        return isinstance(s, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in s)

    if isinstance(obj, dict):
        return any(bad(k) or _has_surrogates(v) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return any(_has_surrogates(v) for v in obj)
    return bad(obj)


def _ckpt_compare(got, want, where="obj"):
    if isinstance(want, TP):
        if not isinstance(got, bp.Tensor):
            raise Mismatch(f"{where}: expected a tensor, got {type(got).__name__}")
        assert_same(np.array(got.numpy(), copy=True), want.a, EXACT, where)
        return
    if type(got) is not type(want):
        raise Mismatch(f"{where}: type {type(got).__name__}, expected {type(want).__name__}")
    if isinstance(want, dict):
        if list(got.keys()) != list(want.keys()):
            raise Mismatch(f"{where}: keys {list(got.keys())!r}, expected {list(want.keys())!r}")
        for k in want:
            _ckpt_compare(got[k], want[k], f"{where}[{k!r}]")
    elif isinstance(want, (list, tuple)):
        if len(got) != len(want):
            raise Mismatch(f"{where}: length {len(got)}, expected {len(want)}")
        for i, (g, w) in enumerate(zip(got, want)):
            _ckpt_compare(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and math.isnan(want):
        if not math.isnan(got):
            raise Mismatch(f"{where}: {got!r}, expected nan")
    elif got != want or (isinstance(want, float) and math.copysign(1, got) != math.copysign(1, want)):
        raise Mismatch(f"{where}: {got!r}, expected {want!r}")


@budget(40)
@given(obj=_ckpt_tree, mutate=st.data())
def test_checkpoint_round_trip(obj, mutate):
    """bp.save / bp.load of random trees (nested dicts with str/int keys, lists, tuples, plain
    values incl. NaN/-0.0/big ints/unicode, tensors of every dtype and layout) round-trips
    exactly; then corrupted copies of the file must load or raise an ordinary exception."""
    import io

    ckpt_oracle.example()
    buf = io.BytesIO()
    desc = f"bp.save({_ckpt_desc(obj)}, buf); bp.load(buf)"

    def call():
        bp.save(_ckpt_engine(obj), buf)
        return bp.load(io.BytesIO(buf.getvalue()))

    got = ckpt_oracle.check(
        desc,
        call,
        lambda: _ckpt_expected(obj),
        compare=_ckpt_compare,
        convert=lambda r: r,
    )
    data = buf.getvalue()
    if got is None or not data:
        return
    how = mutate.draw(st.sampled_from(["truncate", "flip", "header_len", "garbage_header"]), "corruption")
    raw = bytearray(data)
    if how == "truncate":
        raw = raw[: mutate.draw(st.integers(0, len(raw) - 1), "cut")]
    elif how == "flip":
        for _ in range(mutate.draw(st.integers(1, 4), "flips")):
            raw[mutate.draw(st.integers(0, len(raw) - 1), "at")] ^= mutate.draw(st.integers(1, 255), "bits")
    elif how == "header_len":
        raw[:8] = mutate.draw(st.sampled_from([0, 1, 2**31, 2**63 - 1, 2**64 - 1, len(raw)]), "n").to_bytes(8, "little")
    else:
        hlen = int.from_bytes(raw[:8], "little")
        pos = mutate.draw(st.integers(8, max(8, min(8 + hlen, len(raw)) - 1)), "at")
        raw[pos : pos + 1] = mutate.draw(
            st.sampled_from([b"{", b"}", b'"', b"9" * 30, b"-1", b"\xff", b"\x00"]), "junk"
        )
    # only crashes matter here: any ordinary exception or a loaded object is fine
    ckpt_oracle.check(
        f"bp.load(corrupted ({how}) copy of: {desc})",
        lambda: bp.load(io.BytesIO(bytes(raw))),
        None,
        convert=lambda r: r,
    )


def _ckpt_desc(obj):
    if isinstance(obj, TP):
        return obj.src
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {_ckpt_desc(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ", ".join(_ckpt_desc(v) for v in obj) + "]"
    if isinstance(obj, tuple):
        return "(" + "".join(_ckpt_desc(v) + ", " for v in obj) + ")"
    return scalar_repr(obj)


def scalar_repr(v):
    return S.scalar_src(v) if isinstance(v, float) else repr(v)


# ---------------------------------------------------------------------------- the op table

optable_oracle = Oracle("optable")


def _optable_cases():
    from op_table import OPS

    cases = []
    for op in OPS:
        for i, s in enumerate(op.samples(np.random.default_rng(abs(hash(op.name)) % 2**32))):
            cases.append(pytest.param(op, s, id=f"{op.name}-{s.desc or i}"))
    return cases


_OPTABLE = _optable_cases()


@pytest.mark.parametrize("op,sample", _OPTABLE)
@budget(2, long_factor=1.0 / len(_OPTABLE))
@given(data=st.data())
def test_optable_rows(op, sample, data):
    """Every op-table row on random inputs: the sample's shapes, fresh values drawn from the
    sample's own range (float inputs) or from the sample's own values (index inputs), float32
    or float64, any layout; forward against the row's NumPy reference with the row's
    tolerances (float32) or test_ops' float64 ones."""
    optable_oracle.example()
    dt = data.draw(st.sampled_from([F32, F64]), "dtype")
    layouts = ("contig", "permuted", "strided", "selected")
    args, np_args, srcs = [], [], []
    for i, a in enumerate(sample.inputs):
        a = np.asarray(a)
        if i in sample.int_inputs:
            vals = np.unique(a.astype(I64))
            arr = data.draw(
                hnp.arrays(I64, a.shape, elements=st.sampled_from(vals.tolist()) if vals.size else st.just(0)),
                f"int input {i}",
            )
            tp = S.build(data.draw, I64, a.shape, data.draw(st.sampled_from(layouts)), ("fixed", arr))
        else:
            fin = a[np.isfinite(a)]  # rows with NaN/inf samples draw from their finite range
            lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
            tp = S.build(
                data.draw,
                dt,
                a.shape,
                data.draw(st.sampled_from(layouts), f"layout {i}"),
                (lo, hi) if lo < hi else (lo - 1, lo + 1),
            )
        args.append(tp.t)
        np_args.append(tp.a.astype(np.float64) if i not in sample.int_inputs else tp.a)
        srcs.append(tp.src)
    kwargs = sample.kwargs
    if op.name == "cross_entropy" and "weight" in kwargs and kwargs["weight"] is not None:
        pass  # the row's own wrapper converts the weight

    def ref():
        return op.ref(*np_args, **kwargs)

    tol = (
        Tol(atol=op.atol, rtol=op.rtol, check_dtype=False)
        if dt == F32
        else Tol(atol=1e-12, rtol=1e-9, check_dtype=False)
    )

    def compare(got, want):
        want = np.asarray(want)
        if want.dtype.kind in "biu":
            return assert_same(got, want, EXACT)
        if isinstance(got, np.ndarray) and got.dtype.kind == "f" and got.dtype != dt:
            raise Mismatch(f"a {got.dtype} result from {dt} inputs")
        with np.errstate(all="ignore"):
            return assert_same(got, want.astype(dt), tol)  # rounded to dt: overflow to inf is right

    optable_oracle.check(
        f"op_table[{op.name!r}]({', '.join(srcs)}, **{kwargs!r})",
        lambda: op.op(*args, **kwargs),
        ref,
        compare=compare,
        convert=lambda r: np.array(r.detach().numpy(), copy=True) if isinstance(r, bp.Tensor) else r,
    )


# ---------------------------------------------------------------------------- the oracle itself


def test_oracle_flags_panics_wrong_values_and_wrong_raises():
    """The suite must be able to fail: each finding kind is reported."""

    class FakePanic(BaseException):  # what pyo3's PanicException derives from
        pass

    o = Oracle("self-test")
    cases = [
        (lambda: (_ for _ in ()).throw(FakePanic("boom")), lambda: 1, "panic"),
        (lambda: bp.tensor([1.0, 2.0]), lambda: np.array([1.0, 3.0], np.float32), "wrong-value"),
        (lambda: bp.tensor([1.0]), lambda: np.array([1.0], np.float64), "wrong-value"),  # dtype
        (lambda: bp.ones(2)[5], lambda: np.float32(1.0), "raises-where-pytorch-works"),
        (lambda: bp.ones(2), lambda: (_ for _ in ()).throw(Invalid("x")), "accepts-invalid"),
    ]
    for call, ref, kind in cases:
        with pytest.raises(AssertionError, match=rf"\[{kind}\]"):
            o.check("self-test", call, ref)
    # and agreement passes, as does an ordinary exception where PyTorch raises
    o.check("ok", lambda: bp.tensor([1.0, 2.0]), lambda: np.array([1.0, 2.0], np.float32))
    o.check("ok", lambda: bp.ones(2)[5], lambda: (_ for _ in ()).throw(Invalid("out of range")))


# ---------------------------------------------------------------------------- defect reproducers


def _ordinary_error(fn):
    """fn() must raise an ordinary exception (what PyTorch does for this input)."""
    try:
        fn()
    except Exception:
        return
    except BaseException as e:  # a PanicException
        raise AssertionError(f"{type(e).__name__}: {e}") from None
    raise AssertionError("no exception raised")


def _child_env(**extra):
    """The environment for a child interpreter that imports this very backprop_rs (not whatever
    a relative PYTHONPATH or the site-packages would find from another directory)."""
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(bp.__file__)))
    return dict(os.environ, PYTHONPATH=os.pathsep.join([pkg_root, here] + sys.path), **extra)


def _survives(code):
    """Runs code in a fresh interpreter: it must exit normally (an ordinary exception is fine,
    a segfault or an abort is not)."""
    import subprocess
    import sys

    prog = f"import numpy as np, backprop_rs as bp\ntry:\n    {code}\nexcept Exception:\n    pass\nprint('survived')"
    p = subprocess.run([sys.executable, "-c", prog], env=_child_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "survived" in p.stdout, f"rc={p.returncode}: {p.stderr[-500:]}"


def _d07():
    r = pow(3, 2**32, 2**64)
    assert (bp.tensor([3]) ** bp.tensor([2**32])).item() == (r - 2**64 if r >= 2**63 else r)


def _d11():
    x = bp.tensor([1.0])
    r = x.repeat(3)
    x.fill_(5.0)
    assert r.tolist() == [1.0, 1.0, 1.0]


def _d14():
    assert bp.arange(3)[True].shape == (1, 3)
    assert bp.arange(3)[False].shape == (0, 3)
    assert bp.tensor(1.0)[True].shape == (1,)


def _d15():
    t = bp.zeros(2, dtype=bp.float64)
    t[:] = [0.1, 0.2]
    assert t.tolist() == [0.1, 0.2]


def _d16():
    assert math.copysign(1.0, bp.full((1,), -0.0).item()) == -1.0
    assert math.copysign(1.0, bp.zeros(1).fill_(-0.0).item()) == -1.0


def _d18():
    t = bp.zeros(1, 3, 4).expand(2, 3, 4)
    t[0, bp.tensor([1])] = 1.0  # t[0] is a plain (3, 4) view: PyTorch writes it
    assert t[1, 1].tolist() == [1.0] * 4  # (both rows share the memory)


def _d30():
    import io

    bp.save({"t": bp.zeros(0, 2)[:, 1]}, io.BytesIO())


KNOWN_REPROS = {
    "D01": lambda: assert_same(bp.tensor([True, False]).sign().dtype == bp.bool, True),
    "D02": lambda: assert_same(bp.tensor([True, False]).square().dtype == bp.int64, True),
    "D03": lambda: (
        _ordinary_error(lambda: bp.ones(3) - bp.tensor(True)),
        _ordinary_error(lambda: bp.tensor([1]) - True),
    ),
    "D04": lambda: _ordinary_error(lambda: bp.tensor([1, 2]) ** -1),
    "D05": lambda: _ordinary_error(lambda: bp.where(bp.tensor([True]), bp.tensor([1]), 2**63)),
    "D06": lambda: assert_same(bp.tensor([0.0]).logical_xor(bp.tensor(1e-300, dtype=bp.float64)).tolist(), [False]),
    "D07": _d07,
    "D08": lambda: (
        assert_same(bp.zeros(0, 3).max(1).values.shape, (0,)),
        assert_same(bp.zeros(0, 3).argmax(1).shape, (0,)),
    ),
    "D09": lambda: (
        _ordinary_error(lambda: bp.tensor(1.0).sum((0, 0))),
        _ordinary_error(lambda: bp.ones(2, 1, 3).squeeze((1, 1))),
    ),
    "D10": lambda: assert_same(bp.tensor(True).sum().dtype == bp.int64, True),
    "D11": _d11,
    "D12": lambda: (
        _ordinary_error(lambda: bp.tensor(1.0).flatten(-2, 0)),
        _ordinary_error(lambda: bp.tensor(1.0).squeeze(-2)),
    ),
    "D13": lambda: assert_same(bp.arange(5)[1 : 2**63].tolist(), [1, 2, 3, 4]),
    "D14": _d14,
    "D15": _d15,
    "D16": _d16,
    "D17": lambda: (bp.zeros(2, 0).add_(1), bp.zeros(2, 0).fill_(1.0), bp.zeros(3, 0, 2).copy_(bp.ones(3, 0, 2))),
    "D18": _d18,
    "D19": lambda: _ordinary_error(lambda: bp.ones(2).max(None, True)),
    "D20": lambda: assert_same(bp.linspace(1.0, 0.0, 1).tolist(), [1.0]),
    "D21": lambda: (
        _ordinary_error(lambda: bp.tensor(["1.5"], dtype=bp.float32)),
        _ordinary_error(lambda: bp.tensor([1, 2**63])),
        _ordinary_error(lambda: bp.tensor([None, 1.0], dtype=bp.float32)),
        _ordinary_error(lambda: bp.tensor([1j], dtype=bp.float32)),
    ),
    "D22": lambda: _survives("bp.zeros(0, 2**33, 2**33).numpy()"),
    "D23": lambda: _ordinary_error(lambda: bp.ones(b"1")),
    "D24": lambda: (
        _ordinary_error(lambda: F.unfold(bp.zeros(1, 1, 2, 2), 1, 1, 2**62)),
        _ordinary_error(lambda: F.conv2d(bp.zeros(1, 1, 1, 1), bp.zeros(1, 1, 1, 1), None, 1, 2**62)),
    ),
    "D26": lambda: assert_same(F.fold(bp.ones(4, 4), (3, 3), 2).shape, (1, 3, 3)),
    "D27": lambda: _ordinary_error(lambda: F.conv2d(bp.zeros(1, 1, 3, 3), bp.zeros(1, 1, 1, 1), None, 1, "same", 0)),
    "D28": lambda: assert_same(F.pad(bp.arange(4.0), [-1, 1]).tolist(), [1.0, 2.0, 3.0, 0.0]),
    "D29": lambda: _ordinary_error(lambda: F.avg_pool2d(bp.ones(1, 0, 4, 4), 2)),
    "D30": _d30,
    "D31": lambda: _ordinary_error(lambda: bp.eye(2**63, 0)),
    "D32": lambda: _ordinary_error(lambda: bp.ones(1).narrow(0, 2, 0)),
    "D34": lambda: bp.manual_seed(2**64 - 1),
    "D38": lambda: assert_same(len(bp.zeros(0, 2).chunk(3, 0)), 3),
    "D39": lambda: _ordinary_error(lambda: bp.ones(3, 1).squeeze(-3)),
    "D41": lambda: assert_same((bp.tensor([3]) ** bp.tensor(2.0)).dtype == bp.float32, True),
    "D42": lambda: assert_same(
        bp.zeros(1, dtype=bp.float64).add(bp.tensor([0.1]), alpha=3.0).item(), 3.0 * float(np.float32(0.1))
    ),
    "D43": lambda: _ordinary_error(lambda: bp.zeros(0, 3).repeat(1, 2**62)),
    "D40": lambda: _ordinary_error(lambda: F.cross_entropy(bp.zeros(1, 1), bp.ones(1, 1), bp.ones(2))),
    "D36": lambda: assert_same(F.max_pool2d(bp.zeros(0, 3, 4, 4), 2).shape, (0, 3, 2, 2)),
    "D37": lambda: assert_same(F.max_pool2d(bp.zeros(1, 1, 3, 3), 4, ceil_mode=True).shape, (1, 1, 1, 1)),
    "D35": lambda: _ordinary_error(lambda: bp.ones(3, dtype=bp.float64).uniform_(-1e308, 1e308)),
    "D44": lambda: assert_same(bp.tensor([0.0]).logical_or(1e-300).tolist(), [False]),
    "D33": lambda: assert_same(
        F.batch_norm(bp.full((3, 1, 4, 5), -1.401087760925293), None, None, training=True).abs().amax().item(), 0.0
    ),
}


# the defects still open (strict xfails): empty since D01-D44 were fixed
OPEN: set = set()


@pytest.mark.parametrize(
    "defect",
    [
        pytest.param(k, id=k, marks=[pytest.mark.xfail(strict=True, reason=f"{k}: {DEFECTS[k]}")] if k in OPEN else [])
        for k in sorted(KNOWN_REPROS)
    ],
)
def test_defect_reproducer(defect):
    """One reproducer per defect the fuzzing found, asserting what PyTorch does: a regression
    test once fixed; strict xfail while open, so a fix shows up as XPASS."""
    KNOWN_REPROS[defect]()


def test_every_defect_has_a_reproducer():
    assert sorted(KNOWN_REPROS) == sorted(DEFECTS)


# ---------------------------------------------------------------------------- cat / stack


@st.composite
def cat_case(draw):
    name = draw(st.sampled_from(["cat", "stack"]))
    n = draw(st.integers(0, 4))
    base = draw(S.shapes(0, 3, 0, 3))
    nd = len(base)
    cat_dim = draw(st.integers(0, max(nd - 1, 0)))
    tensors = []
    for _ in range(n):
        shp = list(base)
        if name == "cat" and nd:
            shp[cat_dim] = draw(st.integers(0, 3))
        if draw(st.integers(0, 9)) == 0:
            shp = list(draw(S.shapes(0, 3, 0, 3)))  # mostly a mismatch
        if draw(st.integers(0, 11)) == 0:
            shp = [0]  # the legacy empty 1-d tensor
        dt = draw(st.sampled_from(S.ALL_DTYPES)) if draw(st.integers(0, 3)) == 0 else None
        tensors.append(draw(S.tensors(dtypes=[dt] if dt is not None else [F32], shape=tuple(shp), kind="small")))
    dim = draw(st.one_of(st.just(cat_dim), S.dims(nd + (name == "stack"))))
    return name, tensors, dim


def cat_expected(name, tps, dim):
    if not tps:
        raise Invalid(f"{name} of an empty list")
    rt = tps[0].dtype
    for t in tps[1:]:
        rt = _promote(rt, t.dtype)
    if name == "stack":
        shapes = {t.a.shape for t in tps}
        if len(shapes) != 1:
            raise Invalid("stack expects each tensor to be equal size")
        nd = tps[0].a.ndim
        d = S.int_arg(dim, "dim")
        if not -nd - 1 <= d <= nd:
            raise Invalid("dim out of range")
        return np.stack([t.a.astype(rt) for t in tps], axis=d % (nd + 1))
    if any(t.a.ndim == 0 for t in tps):
        raise Invalid("zero-dimensional tensor cannot be concatenated")
    kept = [t for t in tps if not (t.a.shape == (0,))]
    if len(kept) != len(tps):
        raise Unspecified("the legacy rule that skips empty 1-d tensors in cat")
    nd = kept[0].a.ndim
    d = S.wrap_dim(dim, nd)
    for t in kept:
        if t.a.ndim != nd or any(a != b for i, (a, b) in enumerate(zip(t.a.shape, kept[0].a.shape)) if i != d):
            raise Invalid("sizes of tensors must match except in the cat dimension")
    return np.concatenate([t.a.astype(rt) for t in kept], axis=d)


@budget(60)
@given(case=cat_case())
def test_cat_stack(case):
    """bp.cat / bp.stack of tensors of random shapes, layouts and dtypes (they promote)."""
    views_oracle.example()
    name, tps, dim = case
    desc = f"bp.{name}([{', '.join(t.src for t in tps)}], {arg_src(dim)})"
    views_oracle.check(
        desc, lambda: getattr(bp, name)([t.t for t in tps], dim), lambda: cat_expected(name, tps, dim), tol=EXACT
    )


def test_watchdog_ends_a_hung_call(tmp_path):
    """A call that never returns is a failure, not a stuck job: the watchdog (a C thread, so it
    also fires while Rust holds the GIL) dumps the stack and exits, and the trace file names
    the call."""
    import os
    import subprocess
    import sys

    trace = tmp_path / "trace"
    env = _child_env(BACKPROP_FUZZ_TIMEOUT="0.5", BACKPROP_FUZZ_TRACE=str(trace))
    prog = "import time\nfrom fuzz_oracle import watchdog\nwith watchdog('bp.hang()'):\n    time.sleep(30)\n"
    p = subprocess.run(
        [sys.executable, "-c", prog],
        cwd=os.path.dirname(__file__),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode != 0 and "Timeout" in p.stderr, p.stderr[-500:]
    assert trace.read_text() == "bp.hang()"


@budget(30)
@given(x=S.tensors(dtypes=S.FLOATS, layouts=("contig", "permuted", "strided", "selected"), kind="any"))
def test_relu_inplace_flag(x):
    """F.relu(x, inplace=True) and nn.ReLU(inplace=True) overwrite x (through a view, into its
    base) and return x itself, as PyTorch does; inplace=False leaves x alone."""
    inplace_oracle.example()
    want = np.where(np.isnan(x.a), x.a, np.maximum(x.a, 0)).astype(x.dtype)
    inplace_oracle.check(f"F.relu({x.src})", lambda: F.relu(x.t), lambda: want, tol=Tol())
    inplace_oracle.check(f"{x.src} after F.relu(.)", lambda: x.t, lambda: x.a, tol=EXACT)
    base_before = x.base.numpy().copy() if x.base is not None else None
    layer = bp.nn.ReLU(inplace=True) if x.a.ndim % 2 else None
    out = inplace_oracle.check(
        f"{'nn.ReLU(inplace=True)' if layer else 'F.relu(inplace=True)'}({x.src})",
        lambda: layer(x.t) if layer else F.relu(x.t, inplace=True),
        lambda: want,
        tol=Tol(),
    )
    if out is None:
        return
    inplace_oracle.check(f"F.relu({x.src}, inplace=True) returns its input", lambda: out is x.t, lambda: True)
    check_base_after_write(inplace_oracle, x, base_before, x.t.numpy(), f"F.relu({x.src}, inplace=True)")


_fill_num = st.one_of(
    st.floats(-10, 10),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 3e38, -3e38, 0.0]),
    st.integers(-3, 3),
)


@budget(40)
@given(
    x=S.tensors(layouts=("contig", "permuted", "strided", "selected"), kind="small"),
    how=st.sampled_from(["uniform_", "normal_", "manual_seed"]),
    a=_fill_num,
    b=_fill_num,
    seed=st.one_of(
        st.integers(-5, 5), st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 1.5, None])
    ),
)
def test_random_fills(x, how, a, b, seed):
    """uniform_(from, to) and normal_(mean, std) fill float tensors (from <= to and to - from
    representable; std >= 0), and manual_seed takes PyTorch's seed range [-2**63, 2**64)."""
    create_oracle.example()
    if how == "manual_seed":

        def ref():
            if not isinstance(seed, int) or isinstance(seed, bool):
                raise Invalid("a seed must be an int")
            if not -(2**63) <= seed < 2**64:
                raise Invalid("seed out of range")
            return None

        create_oracle.check(f"bp.manual_seed({seed!r})", lambda: bp.manual_seed(seed), ref)
        return
    dt = x.dtype

    def ref():
        if dt.kind != "f":
            raise Invalid(f"{how} of an integer or bool tensor")
        lo, hi = float(a), float(b)
        if how == "uniform_":
            big = float(np.finfo(dt).max)
            if not lo <= hi or not (hi - lo) <= big or not (math.isfinite(lo) and math.isfinite(hi)):
                raise Invalid("uniform_ needs from <= to and to - from within the dtype's range")
            return ("uniform", lo, hi)
        if not hi >= 0:
            raise Invalid("normal_ needs std >= 0")
        return ("normal", lo, hi)

    def compare(got, want):
        kind, lo, hi = want
        if got.shape != x.a.shape or got.dtype != dt:
            raise Mismatch(f"shape/dtype {got.shape}/{got.dtype}, expected {x.a.shape}/{dt}")
        if kind == "uniform" and got.size:
            lo_, hi_ = np.asarray(lo, dt), np.asarray(hi, dt)
            if not (np.all(got >= lo_) and np.all(got <= hi_)):
                raise Mismatch(f"uniform_({lo}, {hi}) gave values outside the range: {got.ravel()[:6]}")
        room = float(np.finfo(dt).max) / 4  # mean + std * z stays finite for |z| < 20
        if kind == "normal" and got.size and abs(lo) + 20 * hi < room and not np.all(np.isfinite(got)):
            raise Mismatch(f"normal_({lo}, {hi}) gave non-finite values: {got.ravel()[:6]}")

    create_oracle.check(f"{x.src}.{how}({a!r}, {b!r})", lambda: getattr(x.t, how)(a, b), ref, compare=compare)
