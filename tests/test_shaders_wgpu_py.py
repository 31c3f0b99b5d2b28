"""Each WGSL kernel run on its own through wgpu-py (the Python WebGPU package ``wgpu``) on small
inputs and compared with NumPy. This checks the shaders independently of the Rust host code,
which builds the same parameter blocks (their word layouts are documented at the top of each
family's .wgsl file and in common.wgsl).

The source of a family is what the backend compiles (a prelude generated from the Rust enums,
common.wgsl, the family's file), taken from the extension with ``_core._wgsl_source``; every op,
dtype and flag code is looked up by name in ``_core._wgsl_constants()``, so this file holds no
numeric code that could drift from the enums.

Storage convention: every buffer is uint32 words; float32 is its bits, bool 0/1, int64 two
words, low word first (``a.view(np.uint32)`` of a NumPy int64 array, and ``.view(np.int64)``
back). Offsets and strides in parameter blocks count elements, not words.

Skips without wgpu-py or an adapter, unless BACKPROP_REQUIRE_GPU=1 (CI), which turns that into a
failure. Tolerances: float32 elementwise rtol 1e-4 / atol 1e-5 against a float64 NumPy reference
computed from the same float32 inputs, 1e-4 / 1e-4 for reductions and matmul; integer and bool
results, casts, copies and index kernels are exact.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pytest
from backprop_rs import _core
from op_table import _digamma, _erfc, _lgamma, _trigamma

REQUIRE = os.environ.get("BACKPROP_REQUIRE_GPU") == "1"
EW = {"rtol": 1e-4, "atol": 1e-5}
RED = {"rtol": 1e-4, "atol": 1e-4}

# The extension has no list of families; test_zz_... checks this one against its error message.
FAMILIES = ("elementwise", "reduce", "matmul", "softmax", "attention", "layer_norm", "index", "conv", "optim", "sort")
K = _core._wgsl_constants()
F32, I64, BOOL = K["DT_F32"], K["DT_I64"], K["DT_BOOL"]
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
NONE = 0xFFFFFFFF  # "no failed check yet" in status[0]
JUNK = 0x7FC0DEAD


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"BACKPROP_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


try:
    import wgpu
except ImportError:  # pragma: no cover - depends on the environment
    wgpu = None


class Gpu:
    """Runs one entry point of a kernel family on given uint32 buffers."""

    def __init__(self):
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        if adapter is None:
            raise RuntimeError("wgpu-py found no adapter")
        self.device = adapter.request_device_sync()
        self.modules = {}
        self.pipelines = {}
        self.ran = set()
        self.max_x = 65535  # workgroups along x before the grid spills into y, as on the host

    def pipeline(self, family, entry, constants):
        key = (family, entry, tuple(sorted((constants or {}).items())))
        if key not in self.pipelines:
            if family not in self.modules:
                code = _core._wgsl_source(family)
                self.modules[family] = self.device.create_shader_module(code=code)
            stage = {"module": self.modules[family], "entry_point": entry}
            if constants:
                stage["constants"] = {k: float(v) for k, v in constants.items()}
            self.pipelines[key] = self.device.create_compute_pipeline(layout="auto", compute=stage)
        return self.pipelines[key]

    def buffer(self, words):
        data = np.ascontiguousarray(words).view(np.uint32)
        if data.size == 0:
            data = np.zeros(1, np.uint32)
        usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer_with_data(data=data.tobytes(), usage=usage)

    def run(self, family, entry, params, buffers, groups, constants=None, read=(4,)):
        """buffers: {binding: array of any 4-byte dtype}, exactly the bindings `entry` uses
        (layout="auto" drops the others); returns {binding: uint32 contents} for `read`.
        A kernel that runs in several dispatches is run here as several calls, each starting from
        the contents the previous one read back."""
        self.ran.add((family, entry))
        pipeline = self.pipeline(family, entry, constants)
        bufs = {0: self.buffer(np.asarray(params, np.uint32))}
        bufs.update({b: self.buffer(a) for b, a in buffers.items()})
        entries = [
            {"binding": b, "resource": {"buffer": buf, "offset": 0, "size": buf.size}}
            for b, buf in bufs.items()
        ]
        bind = self.device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=entries)
        x = min(groups, self.max_x)
        y = -(-groups // x)
        enc = self.device.create_command_encoder()
        p = enc.begin_compute_pass()
        p.set_pipeline(pipeline)
        p.set_bind_group(0, bind)
        p.dispatch_workgroups(x, y, 1)
        p.end()
        self.device.queue.submit([enc.finish()])
        return {b: np.frombuffer(self.device.queue.read_buffer(bufs[b]), np.uint32).copy() for b in read}


@pytest.fixture(scope="module")
def gpu():
    if wgpu is None:
        _skip_or_fail("the wgpu package (wgpu-py) is not installed")
    try:
        g = Gpu()
    except Exception as e:  # noqa: BLE001 - no adapter, no Vulkan loader, a driver error...
        _skip_or_fail(f"no WebGPU adapter through wgpu-py: {e}")
    yield g
    # every entry point of every family ran in this module (checked last, see test_zz_...)


def groups(n):
    return max(1, -(-n // 256))


def junk(n_words):
    """An output buffer's initial contents: a quiet-NaN pattern (and an odd int64), so that an
    element a kernel fails to write shows up."""
    return np.full(n_words, JUNK, np.uint32)


def f32w(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def i64w(a):
    return np.ascontiguousarray(a, np.int64).view(np.uint32)


def boolw(a):
    return np.asarray(a, bool).astype(np.uint32)


def as_f32(w):
    return w.view(np.float32)


def as_i64(w):
    return w.view(np.int64)


def wrap(v):
    """A Python int reduced to int64, wrapping as two's complement (NumPy's int64 arithmetic)."""
    v &= 2**64 - 1
    return v - 2**64 if v >= 2**63 else v


def rand_i64(rng, size):
    return rng.integers(I64_MIN, I64_MAX, size=size, dtype=np.int64, endpoint=True)


def strided(dims, operands):
    """The strided-operand block of common.wgsl: [n, r, dims, (offset, strides) per operand]."""
    n = int(np.prod(dims)) if dims else 1
    p = [n, len(dims), *dims]
    for off, strides in operands:
        p += [off, *strides]
    return p


def flat(n, operands):
    """The strided block of `operands` contiguous operands of n elements."""
    return strided([n], [(0, [1])] * operands)


def erf(x):
    return np.vectorize(math.erf)(x)


def ew(op=None, dt=F32, dt_out=None):
    """The overrides of an elementwise kernel: OP by name, DT, and DT_OUT (default: DT)."""
    c = {"DT": dt, "DT_OUT": dt if dt_out is None else dt_out}
    if op is not None:
        c["OP"] = K[op]
    return c


# ------------------------------------------------------------------ elementwise

UNARY_F32 = {
    "UNARY_NEG": lambda x: -x,
    "UNARY_ABS": np.abs,
    "UNARY_SIGN": np.sign,
    "UNARY_EXP": np.exp,
    "UNARY_LOG": np.log,
    "UNARY_SQRT": np.sqrt,
    "UNARY_SIN": np.sin,
    "UNARY_COS": np.cos,
    "UNARY_TANH": np.tanh,
    "UNARY_SIGMOID": lambda x: 1 / (1 + np.exp(-x)),
    "UNARY_RELU": lambda x: np.where(x < 0, 0.0, x),  # keeps NaN, as PyTorch's relu
    "UNARY_GELU": lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    "UNARY_ERF": erf,
    "UNARY_SOFTPLUS": lambda x: np.logaddexp(0, x),
    "UNARY_LOG1P": np.log1p,
    "UNARY_EXPM1": np.expm1,
    "UNARY_LOG2": np.log2,
    "UNARY_LOG10": np.log10,
    "UNARY_TAN": np.tan,
    "UNARY_ASIN": np.arcsin,
    "UNARY_ACOS": np.arccos,
    "UNARY_ATAN": np.arctan,
    "UNARY_SINH": np.sinh,
    "UNARY_COSH": np.cosh,
    "UNARY_FLOOR": np.floor,
    "UNARY_CEIL": np.ceil,
    "UNARY_ROUND": np.round,
    "UNARY_TRUNC": np.trunc,
    "UNARY_ERFC": _erfc,
    "UNARY_LGAMMA": _lgamma,
    "UNARY_DIGAMMA": _digamma,
    "UNARY_TRIGAMMA": _trigamma,
}
# the inputs each op's domain allows (the transposed-view test maps its normal draws into it)
UNARY_DOMAIN = {
    "UNARY_LOG": lambda b: np.abs(b) + 0.1,
    "UNARY_SQRT": lambda b: np.abs(b) + 0.1,
    "UNARY_LOG2": lambda b: np.abs(b) + 0.1,
    "UNARY_LOG10": lambda b: np.abs(b) + 0.1,
    "UNARY_LOG1P": lambda b: np.abs(b) - 0.5,
    "UNARY_ASIN": lambda b: np.tanh(b),
    "UNARY_ACOS": lambda b: np.tanh(b),
    "UNARY_TAN": lambda b: np.tanh(b) * 1.3,
    # away from the poles at 0, -1, -2, ... (the special-values test has the poles themselves)
    "UNARY_LGAMMA": lambda b: np.abs(b) + 0.1,
    "UNARY_DIGAMMA": lambda b: np.abs(b) + 0.1,
    "UNARY_TRIGAMMA": lambda b: np.abs(b) + 0.1,
}


def test_unary_table_covers_every_unary_op():
    assert set(UNARY_F32) == {k for k in K if k.startswith("UNARY_")}


@pytest.mark.parametrize("op", sorted(UNARY_F32))
def test_unary_f32_on_a_transposed_view(gpu, op):
    rng = np.random.default_rng(sorted(UNARY_F32).index(op))
    base = rng.normal(size=(5, 3)).astype(np.float32) * 2  # stored [5, 3], viewed as its [3, 5] transpose
    if op in UNARY_DOMAIN:
        base = UNARY_DOMAIN[op](base).astype(np.float32)
    params = strided([3, 5], [(0, [1, 3])])
    out = gpu.run("elementwise", "unary", params, {1: f32w(base), 4: junk(15)}, 1, ew(op))[4]
    want = UNARY_F32[op](base.T.astype(np.float64)).reshape(-1)
    np.testing.assert_allclose(as_f32(out), want, **EW)


def test_unary_f32_special_values(gpu):
    # the edges the kernels handle explicitly: log/sqrt outside their domain, infinities, NaN,
    # large arguments of sin/cos (range reduction), saturation of tanh/sigmoid/softplus/erf
    x = np.array([0, -0.0, -1, np.inf, -np.inf, np.nan, 1e4, -2e3, 30, -30, 100, -100, 6, 1e-30, -1e-30], np.float32)
    p = flat(x.size, 1)
    for op, f in UNARY_F32.items():
        got = as_f32(gpu.run("elementwise", "unary", p, {1: f32w(x), 4: junk(x.size)}, 1, ew(op))[4])
        with np.errstate(all="ignore"):  # rounded to float32: exp(100) is inf there
            want = f(x.astype(np.float64)).astype(np.float32)
        np.testing.assert_allclose(got, want, equal_nan=True, err_msg=op, **EW)


# d/dx of the ops with a fused derivative kernel, as a function of what the kernel reads: the
# input x (gelu, erf, softplus) or the forward's output y (tanh, sigmoid)
UNARY_GRAD = {
    "UNARY_GELU": (lambda x: 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), False),
    "UNARY_ERF": (lambda x: 2 / math.sqrt(math.pi) * np.exp(-x * x), False),
    "UNARY_SOFTPLUS": (lambda x: 1 / (1 + np.exp(-x)), False),
    "UNARY_TANH": (lambda x: 1 - np.tanh(x) ** 2, True),
    "UNARY_SIGMOID": (lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s), True),
}


@pytest.mark.parametrize("op", sorted(UNARY_GRAD))
def test_unary_backward_on_a_transposed_view(gpu, op):
    # a [3, 5] transposed view of the saved tensor against a contiguous gradient, values in the tails
    rng = np.random.default_rng(7)
    x = np.linspace(-9, 9, 15).reshape(5, 3).astype(np.float32)
    g = rng.normal(size=(3, 5)).astype(np.float32)
    deriv, from_output = UNARY_GRAD[op]
    saved = UNARY_F32[op](x.astype(np.float64)).astype(np.float32) if from_output else x
    params = strided([3, 5], [(0, [1, 3]), (0, [5, 1])])
    out = gpu.run("elementwise", "unary_backward", params, {1: f32w(saved), 2: f32w(g), 4: junk(15)}, 1, ew(op))[4]
    want = (g * deriv(x.T.astype(np.float64))).reshape(-1)
    np.testing.assert_allclose(as_f32(out), want, rtol=1e-4, atol=1e-5, err_msg=op)


def test_unary_i64_wraps(gpu):
    x = [-7, -1, 0, 3, 2**40, -(2**40), 2**32, -(2**32), 2**32 - 1, 2**31, I64_MIN, I64_MAX]
    x = np.array(x, np.int64)
    refs = {
        "UNARY_NEG": np.negative,  # -INT64_MIN wraps to INT64_MIN
        "UNARY_ABS": np.abs,  # abs(INT64_MIN) likewise
        "UNARY_SIGN": np.sign,
        "UNARY_RELU": lambda v: np.maximum(v, 0),
    }
    for op, f in refs.items():
        bufs = {1: i64w(x), 4: junk(2 * x.size)}
        out = gpu.run("elementwise", "unary", flat(x.size, 1), bufs, 1, ew(op, I64))[4]
        np.testing.assert_array_equal(as_i64(out), f(x), err_msg=op)


def test_binary_f32_broadcast(gpu):
    rng = np.random.default_rng(1)
    a = rng.normal(size=3).astype(np.float32)  # [3, 1] broadcast to [3, 4]
    b = rng.uniform(0.5, 2, size=4).astype(np.float32)  # [1, 4] broadcast to [3, 4]
    refs = {
        "BINARY_ADD": np.add,
        "BINARY_SUB": np.subtract,
        "BINARY_MUL": np.multiply,
        "BINARY_DIV": np.divide,
        "BINARY_MAXIMUM": np.maximum,
        "BINARY_MINIMUM": np.minimum,
        "BINARY_ATAN2": np.arctan2,
        "BINARY_FMOD": np.fmod,
        "BINARY_REMAINDER": np.remainder,
    }
    params = strided([3, 4], [(0, [1, 0]), (0, [0, 1])])
    for op, f in refs.items():
        out = gpu.run("elementwise", "binary", params, {1: f32w(a), 2: f32w(b), 4: junk(12)}, 1, ew(op))[4]
        want = f(a[:, None].astype(np.float64), b[None, :]).reshape(-1)
        np.testing.assert_allclose(as_f32(out), want, err_msg=op, **EW)


def test_binary_f32_special_values(gpu):
    x = np.array([-2, -2, -1.5, 0, 2, 3, 1, np.nan, -3, 4, -0.0, 0, -0.0], np.float32)
    y = np.array([3, 2, 0.5, 2, -2, 0.5, np.nan, 0, -3, 0.5, -1, -1, 3], np.float32)
    p = flat(x.size, 2)
    bufs = {1: f32w(x), 2: f32w(y), 4: junk(x.size)}
    out = as_f32(gpu.run("elementwise", "binary", p, bufs, 1, ew("BINARY_POW"))[4])
    with np.errstate(all="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64))
    want[6] = 1.0  # C99 (Rust's powf): pow(1, NaN) = 1; NumPy gives NaN
    np.testing.assert_allclose(out, want, equal_nan=True, **EW)
    np.testing.assert_array_equal(np.signbit(out[10:]), np.signbit(want[10:]))  # pow(-0, odd) keeps the sign
    # maximum / minimum propagate NaN from either side (PyTorch's, and NumPy's, rule); IEEE division
    a = np.array([np.nan, 1, 2, -np.inf, 1, -1, 0, np.inf], np.float32)
    b = np.array([1, np.nan, 3, 0, 0, 0, 0, np.inf], np.float32)
    refs = {"BINARY_MAXIMUM": np.maximum, "BINARY_MINIMUM": np.minimum, "BINARY_DIV": np.divide}
    for op, f in refs.items():
        bufs = {1: f32w(a), 2: f32w(b), 4: junk(a.size)}
        out = gpu.run("elementwise", "binary", flat(a.size, 2), bufs, 1, ew(op))[4]
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(as_f32(out), f(a, b), err_msg=op)


# pairs that cross the 32-bit word boundary: carries and borrows between the words, a low word
# with its top bit set (compared unsigned), values beyond int32, and the int64 extremes (wrap)
I64_PAIRS = [
    (2**32 - 1, 1),
    (1, 2**32 - 1),
    (2**32, -1),
    (-(2**32), 1),
    (0, 1),
    (-1, 1),
    (2**31, 2**31 - 1),
    (-(2**31), 2**31),
    (I64_MAX, 1),
    (I64_MIN, -1),
    (I64_MIN, 1),
    (I64_MAX, I64_MIN),
    (2**40 + 7, -(2**40)),
    (-(2**62), 2**62 - 1),
    (2**32 + 3, 2**31 + 5),
    (0x1_2345_6789, 0xFEDC_BA98),
    (-(2**33) - 5, 2**33 + 5),
    (3037000500, 3037000500),  # the square just exceeds INT64_MAX
    (-7, 2),
    (7, -2),
    (5, 5),
    (-5, -5),
]


def i64_operands(rng, n_random=64):
    a, b = (np.array(v, np.int64) for v in zip(*I64_PAIRS))
    # plus random pairs over the full range and over mixed magnitudes (division sees every size)
    ra, rb = rand_i64(rng, n_random), rand_i64(rng, n_random)
    rb >>= rng.integers(0, 63, size=n_random)
    return np.concatenate([a, ra]), np.concatenate([b, rb])


def run_binary_i64(gpu, op, a, b):
    bufs = {1: i64w(a), 2: i64w(b), 4: junk(2 * a.size)}
    return as_i64(gpu.run("elementwise", "binary", flat(a.size, 2), bufs, 1, ew(op, I64))[4])


def test_binary_i64_arithmetic_wraps_like_numpy(gpu):
    a, b = i64_operands(np.random.default_rng(2))
    refs = {
        "BINARY_ADD": np.add,
        "BINARY_SUB": np.subtract,
        "BINARY_MUL": np.multiply,  # the low 64 bits of the full product
        "BINARY_MAXIMUM": np.maximum,
        "BINARY_MINIMUM": np.minimum,
        "BINARY_BIT_AND": np.bitwise_and,
        "BINARY_BIT_OR": np.bitwise_or,
        "BINARY_BIT_XOR": np.bitwise_xor,
    }
    # with div, pow, fmod and remainder (tested next) every binary op but atan2, which promotes
    # integers to float and so has no int64 case
    rest = {"BINARY_DIV", "BINARY_POW", "BINARY_FMOD", "BINARY_REMAINDER", "BINARY_ATAN2"}
    assert set(refs) | rest == {k for k in K if k.startswith("BINARY_")}
    for op, f in refs.items():
        np.testing.assert_array_equal(run_binary_i64(gpu, op, a, b), f(a, b), err_msg=op)


def test_binary_i64_fmod_and_remainder(gpu):
    """C's truncating fmod (sign of the dividend) and Python's floor remainder (sign of the
    divisor), exact over all 64 bits; a zero divisor is the core's error, not tested here."""
    a, b = i64_operands(np.random.default_rng(5))
    a = np.concatenate([a, [7, -7, 7, -7, I64_MIN, I64_MIN, I64_MAX, 0]]).astype(np.int64)
    b = np.concatenate([b, [3, 3, -3, -3, -1, 7, -(2**40), 5]]).astype(np.int64)
    keep = b != 0
    a, b = a[keep], b[keep]
    np.testing.assert_array_equal(run_binary_i64(gpu, "BINARY_FMOD", a, b), np.fmod(a, b))
    np.testing.assert_array_equal(run_binary_i64(gpu, "BINARY_REMAINDER", a, b), np.remainder(a, b))


def div_trunc(a, b):
    """The CPU's checked_div(..).unwrap_or(0): truncating; x / 0 and MIN / -1 give 0."""
    if b == 0 or (a == I64_MIN and b == -1):
        return 0
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def pow_wrap(a, b):
    """The CPU's wrapping integer power; a negative exponent gives 1 for 1, +-1 for -1, else 0."""
    if b < 0:
        return 1 if a == 1 else (1 - 2 * (b % 2) if a == -1 else 0)
    return wrap(pow(a, b, 2**64))


def test_binary_i64_div_and_pow(gpu):
    a, b = i64_operands(np.random.default_rng(3))
    a = np.concatenate([a, [7, 0, I64_MIN, I64_MIN, I64_MIN, -(2**40), 1]])
    b = np.concatenate([b, [0, 0, 2, I64_MIN, I64_MAX, 3, -(2**62)]])
    got = run_binary_i64(gpu, "BINARY_DIV", a, b)
    want = [div_trunc(int(x), int(y)) for x, y in zip(a, b)]
    np.testing.assert_array_equal(got, want)

    pairs = [(3, 40), (2, 62), (2, 63), (2, 64), (-2, 63), (-3, 41), (10, 18), (10, 19), (7, 2**40 + 1),
             (-1, I64_MAX), (I64_MIN, 2), (2**32 + 1, 3), (0, 0), (5, 0), (0, 7), (1, -5), (-1, -5),
             (-1, -4), (2, -1), (0, -1), (I64_MIN, -1)]
    rng = np.random.default_rng(4)
    ra, rb = rng.integers(-50, 50, 32), rng.integers(0, 100, 32)
    pa = np.concatenate([[p[0] for p in pairs], ra]).astype(np.int64)
    pb = np.concatenate([[p[1] for p in pairs], rb]).astype(np.int64)
    got = run_binary_i64(gpu, "BINARY_POW", pa, pb)
    want = [pow_wrap(int(x), int(y)) for x, y in zip(pa, pb)]
    np.testing.assert_array_equal(got, want)


def test_binary_bool(gpu):
    t = boolw([1, 1, 0, 0])
    f = boolw([1, 0, 1, 0])
    tb, fb = t.astype(bool), f.astype(bool)
    refs = {  # the CPU's bool arithmetic
        "BINARY_ADD": tb | fb,
        "BINARY_MAXIMUM": tb | fb,
        "BINARY_BIT_OR": tb | fb,
        "BINARY_MUL": tb & fb,
        "BINARY_MINIMUM": tb & fb,
        "BINARY_BIT_AND": tb & fb,
        "BINARY_SUB": tb ^ fb,
        "BINARY_BIT_XOR": tb ^ fb,
        "BINARY_POW": t ** f == 1,
    }
    for op, want in refs.items():
        out = gpu.run("elementwise", "binary", flat(4, 2), {1: t, 2: f, 4: junk(4)}, 1, ew(op, BOOL))[4]
        np.testing.assert_array_equal(out, want.astype(np.uint32), err_msg=op)


CMP = {
    "CMP_EQ": np.equal,
    "CMP_NE": np.not_equal,
    "CMP_LT": np.less,
    "CMP_LE": np.less_equal,
    "CMP_GT": np.greater,
    "CMP_GE": np.greater_equal,
}


def run_compare(gpu, op, dt, a, b, n):
    bufs = {1: a, 2: b, 4: junk(n)}
    return gpu.run("elementwise", "compare", flat(n, 2), bufs, 1, ew(op, dt, BOOL))[4]


def test_compare_f32_with_nan(gpu):
    assert set(CMP) == {k for k in K if k.startswith("CMP_")}
    a = np.array([1, 2, np.nan, -0.0, 3, np.inf, np.nan], np.float32)
    b = np.array([1, 3, 1, 0.0, np.nan, np.inf, np.nan], np.float32)
    for op, f in CMP.items():
        out = run_compare(gpu, op, F32, f32w(a), f32w(b), a.size)
        np.testing.assert_array_equal(out, f(a, b).astype(np.uint32), err_msg=op)


def test_compare_i64_across_the_sign_and_word_boundaries(gpu):
    a, b = i64_operands(np.random.default_rng(5), 16)
    a = np.concatenate([a, b, a])  # also (b, a) and (a, a)
    b = np.concatenate([b, a[: b.size], a[: b.size]])
    for op, f in CMP.items():
        out = run_compare(gpu, op, I64, i64w(a), i64w(b), a.size)
        np.testing.assert_array_equal(out, f(a, b).astype(np.uint32), err_msg=op)
    tb, fb = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    for op, f in CMP.items():  # bool compares as 0 < 1
        out = run_compare(gpu, op, BOOL, boolw(tb), boolw(fb), 4)
        np.testing.assert_array_equal(out, f(tb, fb).astype(np.uint32), err_msg=f"bool {op}")


def test_where_select(gpu):
    c = boolw([1, 0, 1, 0, 0])
    p = strided([5], [(0, [1]), (1, [1]), (0, [0])])  # on_true starts at element 1, on_false broadcasts
    t = np.arange(6, dtype=np.float32)
    out = gpu.run("elementwise", "where_select", p, {1: c, 2: f32w(t), 3: f32w([9]), 4: junk(5)}, 1, ew())[4]
    np.testing.assert_array_equal(as_f32(out), np.where(c, t[1:], 9))

    ti = np.array([0, 2**40, -(2**62), I64_MIN, 2**32 + 1, -1], np.int64)
    fi = np.array([I64_MAX], np.int64)
    bufs = {1: c, 2: i64w(ti), 3: i64w(fi), 4: junk(10)}
    out = gpu.run("elementwise", "where_select", p, bufs, 1, ew(dt=I64))[4]
    np.testing.assert_array_equal(as_i64(out), np.where(c, ti[1:], fi[0]))

    tb = boolw([0, 1, 1, 0, 1, 1])
    bufs = {1: c, 2: tb, 3: boolw([1]), 4: junk(5)}
    out = gpu.run("elementwise", "where_select", p, bufs, 1, ew(dt=BOOL))[4]
    np.testing.assert_array_equal(out, np.where(c, tb[1:], 1))


def f32_to_i64(x):
    """The CPU's float -> int64: truncation; NaN, infinities and out-of-range give INT64_MIN."""
    x = float(x)
    if not math.isfinite(x) or not -(2.0**63) <= x < 2.0**63:
        return I64_MIN
    return math.trunc(x)


def run_cast(gpu, src, dst, words, n):
    bufs = {1: words, 4: junk(n * (1 + (dst == I64)))}
    out = gpu.run("elementwise", "cast_dtype", flat(n, 1), bufs, groups(n), ew(dt=src, dt_out=dst))[4]
    return {F32: as_f32, I64: as_i64, BOOL: lambda w: w}[dst](out)


def test_cast_f32_to_int64_and_bool(gpu):
    rng = np.random.default_rng(6)
    special = [1.7, -1.7, np.nan, np.inf, -np.inf, 3e9, -3e9, 1.5e10, -1.5e10, 2.0**62, -(2.0**62),
               2.0**63, -(2.0**63), 1e19, -1e19, -0.0, 0.25, -0.9999, 16777217, 8388607.5, 1e-40,
               123456789012.0, -9.2e18, 4294967295.0, 4294967296.0, 2147483648.0]
    x = np.concatenate([special, rng.normal(size=64) * 10.0 ** rng.uniform(0, 18.9, 64)]).astype(np.float32)
    got = run_cast(gpu, F32, I64, f32w(x), x.size)
    np.testing.assert_array_equal(got, [f32_to_i64(v) for v in x])
    ok = np.isfinite(x) & (np.abs(x.astype(np.float64)) < 2.0**63)
    np.testing.assert_array_equal(got[ok], x[ok].astype(np.int64))  # NumPy agrees where it is defined
    got = run_cast(gpu, F32, BOOL, f32w(x), x.size)
    np.testing.assert_array_equal(got, x.astype(bool))  # NaN is true, -0.0 false


def test_cast_int64_to_f32_rounds_like_numpy(gpu):
    rng = np.random.default_rng(7)
    ties = []
    for k in range(39):  # halfway cases (to even, both ways) and just above, at every exponent
        for m in (2**24 + 1, 2**24 + 3, 2**25 - 1):
            ties += [m << k, (m << k) + 1, -(m << k), (m << k) - 1]
    special = [0, 1, -1, 2**24 - 1, 2**24, 2**24 + 1, 2**53 + 1, 2**63 - 1, I64_MIN, I64_MIN + 1,
               2**32, 2**32 - 1]
    x = np.concatenate([np.array(special + ties, np.int64), rand_i64(rng, 256), rand_i64(rng, 64) >> 30])
    got = run_cast(gpu, I64, F32, i64w(x), x.size)
    np.testing.assert_array_equal(got, x.astype(np.float32))

    got = run_cast(gpu, I64, BOOL, i64w(x), x.size)  # 2**32 has a zero low word and is true
    np.testing.assert_array_equal(got, x != 0)
    b = np.array([1, 0, 1, 1, 0], bool)
    np.testing.assert_array_equal(run_cast(gpu, BOOL, I64, boolw(b), b.size), b.astype(np.int64))
    np.testing.assert_array_equal(run_cast(gpu, BOOL, F32, boolw(b), b.size), b.astype(np.float32))


def test_copy_and_copy_into(gpu):
    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    cp = gpu.run("elementwise", "copy", strided([4, 3], [(0, [1, 4])]), {1: f32w(m), 4: junk(12)}, 1, ew())[4]
    np.testing.assert_array_equal(as_f32(cp), m.T.reshape(-1))

    # int64: the [3, 4] transpose of a [4, 3] view that starts at element 2 (offsets count elements)
    mi = rand_i64(np.random.default_rng(8), 14)
    view = mi[2:].reshape(4, 3)
    p = strided([3, 4], [(2, [1, 3])])
    cp = gpu.run("elementwise", "copy", p, {1: i64w(mi), 4: junk(24)}, 1, ew(dt=I64))[4]
    np.testing.assert_array_equal(as_i64(cp), view.T.reshape(-1))

    # copy_into: write a [2, 2] source into rows 0..2, columns 1..3 of a [3, 4] destination
    src = np.array([[1, 2], [3, 4]], np.float32)
    p2 = strided([2, 2], [(0, [2, 1]), (1, [4, 1])])
    dst = np.full((3, 4), -5, np.float32)
    got = as_f32(gpu.run("elementwise", "copy_into", p2, {1: f32w(src), 4: f32w(dst)}, 1, ew())[4])
    dst[0:2, 1:3] = src
    np.testing.assert_array_equal(got.reshape(3, 4), dst)

    srci = np.array([[2**40, -1], [I64_MIN, 2**32 + 7]], np.int64)
    dsti = np.full((3, 4), 3, np.int64)
    got = as_i64(gpu.run("elementwise", "copy_into", p2, {1: i64w(srci), 4: i64w(dsti)}, 1, ew(dt=I64))[4])
    dsti[0:2, 1:3] = srci
    np.testing.assert_array_equal(got.reshape(3, 4), dsti)


def test_fill(gpu):
    # one word repeated (float32, bool), and an int64 value as its (low, high) pattern
    filled = gpu.run("elementwise", "fill", [301, 0xDEADBEEF, 0xDEADBEEF], {4: junk(302)}, groups(301))[4]
    assert (filled[:301] == 0xDEADBEEF).all() and filled[301] == JUNK
    v = np.array([-(2**40) - 3], np.int64).view(np.uint32)
    filled = gpu.run("elementwise", "fill", [600, v[0], v[1]], {4: junk(602)}, groups(600))[4]
    np.testing.assert_array_equal(as_i64(filled[:600]), np.full(300, -(2**40) - 3))
    assert (filled[600:] == JUNK).all()


# ------------------------------------------------------------------ reduce


def reduce_params(n_out, red_n, chunk, n_chunks, kept, red, offset=0):
    kd, ks = kept
    rd, rs = red
    return [n_out, red_n, chunk, n_chunks, len(kd), len(rd), offset, *kd, *ks, *rd, *rs]


RED_OPS = {"REDUCE_SUM": np.sum, "REDUCE_MAX": np.max, "REDUCE_MIN": np.min}


def test_reduce_table_covers_every_reduce_op():
    assert set(RED_OPS) == {k for k in K if k.startswith("REDUCE_")}


def test_reduce_f32_over_strided_dims(gpu):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 6)).astype(np.float32)
    p = reduce_params(5, 24, 4096, 1, ([5], [6]), ([4, 6], [30, 1]))  # reduce dims 0 and 2, keep dim 1
    for op, f in RED_OPS.items():
        for entry, g in (("reduce", 5), ("reduce_thin", 1)):
            out = gpu.run("reduce", entry, p, {1: f32w(x), 4: junk(5)}, g, {"OP": K[op], "DT": F32})[4]
            want = f(x.astype(np.float64), axis=(0, 2))
            np.testing.assert_allclose(as_f32(out), want, **RED, err_msg=f"{entry} {op}")


def test_reduce_in_chunks_writes_partials(gpu):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 1000)).astype(np.float32)
    p = reduce_params(2, 1000, 256, 4, ([2], [1000]), ([1000], [1]))
    c = {"OP": K["REDUCE_SUM"], "DT": F32}
    out = as_f32(gpu.run("reduce", "reduce", p, {1: f32w(x), 4: junk(8)}, 8, c)[4])
    # chunks of 256 over 1000: the last one is short
    want = np.stack([x[:, i * 256:(i + 1) * 256].astype(np.float64).sum(1) for i in range(4)], 1)
    np.testing.assert_allclose(out, want.reshape(-1), **RED)


def test_reduce_f32_nan_propagates(gpu):
    x = np.array([1, np.nan, 3, -1], np.float32)
    p = reduce_params(1, 4, 4096, 1, ([], []), ([4], [1]))
    for op in ("REDUCE_MAX", "REDUCE_MIN", "REDUCE_SUM"):
        got = as_f32(gpu.run("reduce", "reduce", p, {1: f32w(x), 4: junk(1)}, 1, {"OP": K[op], "DT": F32})[4])
        assert np.isnan(got[0]), op


def test_reduce_i64_with_carries_and_wrap(gpu):
    rng = np.random.default_rng(9)
    x = rand_i64(rng, (4, 1000))
    x[0] = 2**32 - 1  # every add carries into the high word
    x[1, :500], x[1, 500:] = I64_MAX, rng.integers(-(2**40), 2**40, 500)  # wraps many times
    x[2] >>= 20
    xw = i64w(x)
    for op, f in RED_OPS.items():
        c = {"OP": K[op], "DT": I64}
        want = f(x, axis=1)  # NumPy's int64 sum wraps as well
        # one workgroup per row (a 256-thread tree), one thread per row, and 4 chunks per row
        passes = (("reduce", 4096, 1, 4), ("reduce_thin", 4096, 1, 1), ("reduce", 256, 4, 16))
        for entry, chunk, n_chunks, g in passes:
            p = reduce_params(4, 1000, chunk, n_chunks, ([4], [1000]), ([1000], [1]))
            out = as_i64(gpu.run("reduce", entry, p, {1: xw, 4: junk(2 * 4 * n_chunks)}, g, c)[4])
            if n_chunks > 1:
                out = f(out.reshape(4, n_chunks), axis=1)
            np.testing.assert_array_equal(out, want, err_msg=f"{entry} {op} x{n_chunks}")
        # along the strided dim 0, keeping dim 1 (offset 10: the view starts at column 10)
        p = reduce_params(990, 4, 4096, 1, ([990], [1]), ([4], [1000]), offset=10)
        out = as_i64(gpu.run("reduce", "reduce_thin", p, {1: xw, 4: junk(2 * 990)}, groups(990), c)[4])
        np.testing.assert_array_equal(out, f(x[:, 10:], axis=0), err_msg=f"dim 0 {op}")
    # the identities: max of INT64_MIN only, min of INT64_MAX only
    p = reduce_params(1, 300, 4096, 1, ([], []), ([300], [1]))
    for op, v in (("REDUCE_MAX", I64_MIN), ("REDUCE_MIN", I64_MAX)):
        bufs = {1: i64w(np.full(300, v)), 4: junk(2)}
        out = gpu.run("reduce", "reduce", p, bufs, 1, {"OP": K[op], "DT": I64})[4]
        assert as_i64(out)[0] == v, op


def test_reduce_bool(gpu):
    p = reduce_params(3, 4, 4096, 1, ([3], [4]), ([4], [1]))
    b = np.array([[0, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], bool)
    refs = {"REDUCE_SUM": np.any, "REDUCE_MAX": np.any, "REDUCE_MIN": np.all}  # the CPU's: sum is any
    for op, f in refs.items():
        for entry, g in (("reduce", 3), ("reduce_thin", 1)):
            out = gpu.run("reduce", entry, p, {1: boolw(b), 4: junk(3)}, g, {"OP": K[op], "DT": BOOL})[4]
            np.testing.assert_array_equal(out, f(b, axis=1), err_msg=f"{entry} {op}")


def arg_params(n_out, length, stride, chunk, n_chunks, kept, offset=0):
    kd, ks = kept
    return [n_out, length, stride, chunk, n_chunks, len(kd), offset, *kd, *ks]


def arg_entries(n_out):
    """(entry, workgroups): one workgroup per output, or one thread per output."""
    return (("arg_reduce", n_out), ("arg_reduce_thin", groups(n_out)))


def test_arg_reduce_f32_first_index_on_ties_and_nan(gpu):
    x = np.array([[1, 3, 3, -1], [2, np.nan, np.nan, 0], [5, 5, 5, 5]], np.float32)
    p = arg_params(3, 4, 1, 4096, 1, ([3], [4]))
    for op, want in {"ARG_MAX": [1, 1, 0], "ARG_MIN": [3, 1, 0]}.items():
        for entry, g in arg_entries(3):
            out = gpu.run("reduce", entry, p, {1: f32w(x), 4: junk(6)}, g, {"OP": K[op], "DT": F32})[4]
            np.testing.assert_array_equal(as_i64(out), want, err_msg=f"{entry} {op}")


def test_arg_reduce_i64_and_bool(gpu):
    # values that differ only in the low word (top bit set), only in the high word, across zero
    x = np.array([
        [2**31 - 1, 2**31, -(2**31), 2**31, 5],
        [-(2**32), -1, 2**32, -(2**40), 2**32],
        [I64_MIN, I64_MAX, I64_MIN, I64_MAX, 0],
        [7, 7, 7, 7, 7],
    ], np.int64)
    p = arg_params(4, 5, 1, 4096, 1, ([4], [5]))
    for op, f in {"ARG_MAX": np.argmax, "ARG_MIN": np.argmin}.items():
        for entry, g in arg_entries(4):
            out = gpu.run("reduce", entry, p, {1: i64w(x), 4: junk(8)}, g, {"OP": K[op], "DT": I64})[4]
            np.testing.assert_array_equal(as_i64(out), f(x, axis=1), err_msg=f"{entry} {op}")
        # along the strided dim 0 (stride 5) of the view x[:, 1:] (offset 1), one output per column
        pc = arg_params(4, 4, 5, 4096, 1, ([4], [1]), offset=1)
        c = {"OP": K[op], "DT": I64}
        out = gpu.run("reduce", "arg_reduce_thin", pc, {1: i64w(x), 4: junk(8)}, 1, c)[4]
        np.testing.assert_array_equal(as_i64(out), f(x[:, 1:], axis=0), err_msg=f"dim 0 {op}")
    b = np.array([[0, 0, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]], bool)
    pb = arg_params(3, 4, 1, 4096, 1, ([3], [4]))
    for op, f in {"ARG_MAX": np.argmax, "ARG_MIN": np.argmin}.items():
        for entry, g in arg_entries(3):
            out = gpu.run("reduce", entry, pb, {1: boolw(b), 4: junk(6)}, g, {"OP": K[op], "DT": BOOL})[4]
            np.testing.assert_array_equal(as_i64(out), f(b, axis=1), err_msg=f"bool {entry} {op}")


@pytest.mark.parametrize("dt", ["DT_F32", "DT_I64"])
def test_arg_reduce_two_passes(gpu, dt):
    rng = np.random.default_rng(5)
    if dt == "DT_F32":
        x = rng.normal(size=(3, 1000)).astype(np.float32)
        xw, words = f32w(x), 1
    else:
        x = rand_i64(rng, (3, 1000))
        x[1] = rng.integers(-3, 3, 1000)  # many ties across chunks: the first index must win
        xw, words = i64w(x), 2
    chunk, n_chunks = 256, 4
    p = arg_params(3, 1000, 1, chunk, n_chunks, ([3], [1000]))
    for op, f in {"ARG_MAX": np.argmax, "ARG_MIN": np.argmin}.items():
        c = {"OP": K[op], "DT": K[dt]}
        bufs = {1: xw, 4: junk(12), 5: junk(12 * words)}
        r = gpu.run("reduce", "arg_reduce_partial", p, bufs, 12, c, read=(4, 5))
        idx, val = r[4], r[5]  # u32 indices; values in the input's dtype
        want_idx = [[c0 * chunk + f(x[i, c0 * chunk:(c0 + 1) * chunk]) for c0 in range(4)] for i in range(3)]
        np.testing.assert_array_equal(idx.reshape(3, 4), want_idx, err_msg=op)
        got_val = as_f32(val) if dt == "DT_F32" else as_i64(val)
        np.testing.assert_array_equal(got_val.reshape(3, 4), np.take_along_axis(x, np.array(want_idx), 1))
        out = gpu.run("reduce", "arg_reduce_combine", [3, n_chunks], {1: val, 2: idx, 4: junk(6)}, 3, c)[4]
        np.testing.assert_array_equal(as_i64(out), f(x, axis=1), err_msg=op)


# ------------------------------------------------------------------ matmul


def matmul_params(m, n, k, a_rs, a_cs, b_rs, b_cs, batch=((), (), ()), k_range=None, accumulate=0,
                  offsets=(0, 0)):
    bd, bsa, bsb = batch
    nb = int(np.prod(bd)) if bd else 1
    kb, ke = k_range or (0, k)
    tiles = [-(-m // 64), -(-n // 64)]
    head = [m, n, k, nb, a_rs, a_cs, b_rs, b_cs, *offsets, len(bd), *tiles, kb, ke, accumulate]
    return head + [*bd, *bsa, *bsb]


def n_tiles(m, n, batch=1):
    """Workgroups of the float kernel: one per (batch, 64-row tile, 64-column tile)."""
    return batch * -(-m // 64) * -(-n // 64)


def test_matmul_f32_batched_with_transposed_and_broadcast_operands(gpu):
    rng = np.random.default_rng(6)
    m, k, n = 70, 33, 65
    a = rng.normal(size=(2, k, m)).astype(np.float32)  # each batch's A is stored transposed
    b = rng.normal(size=(k, n)).astype(np.float32)  # one B broadcast over the batch (stride 0)
    p = matmul_params(m, n, k, 1, m, n, 1, ((2,), (k * m,), (0,)))
    tiles = n_tiles(m, n, 2)
    out = as_f32(gpu.run("matmul", "matmul", p, {1: f32w(a), 2: f32w(b), 4: junk(2 * m * n)}, tiles)[4])
    want = np.matmul(a.transpose(0, 2, 1).astype(np.float64), b)
    np.testing.assert_allclose(out.reshape(2, m, n), want, **RED)
    bufs = {1: f32w([3.0]), 2: f32w([-2.0]), 4: junk(1)}
    one = gpu.run("matmul", "matmul", matmul_params(1, 1, 1, 1, 1, 1, 1), bufs, 1)[4]
    assert as_f32(one)[0] == -6.0


def test_matmul_f32_k_split_accumulates(gpu):
    # the host splits a long K over dispatches: [0, k1) writes (over garbage), [k1, k) adds to it
    rng = np.random.default_rng(10)
    m, k, n, k1 = 67, 50, 40, 21  # k1 is not a multiple of the 16-wide slab
    a = rng.integers(-8, 8, size=(m, k)).astype(np.float32)  # small integers: every sum is exact
    b = rng.integers(-8, 8, size=(k, n)).astype(np.float32)
    bufs = {1: f32w(a), 2: f32w(b)}
    tiles = n_tiles(m, n)
    lay = (m, n, k, k, 1, n, 1)  # both row-major
    whole = gpu.run("matmul", "matmul", matmul_params(*lay), {**bufs, 4: junk(m * n)}, tiles)[4]
    p = matmul_params(*lay, k_range=(0, k1))
    first = gpu.run("matmul", "matmul", p, {**bufs, 4: junk(m * n)}, tiles)[4]  # junk: NaN
    np.testing.assert_array_equal(as_f32(first).reshape(m, n), a[:, :k1] @ b[:k1])
    p = matmul_params(*lay, k_range=(k1, k), accumulate=1)
    both = gpu.run("matmul", "matmul", p, {**bufs, 4: first}, tiles)[4]
    np.testing.assert_array_equal(as_f32(both), as_f32(whole))
    np.testing.assert_array_equal(as_f32(both).reshape(m, n), a @ b)


def i64_matmul_ref(a, b):
    """Exact integer products, wrapped to int64 at the end (wrapping is a ring homomorphism)."""
    prod = np.matmul(a.astype(object), b.astype(object))
    return np.vectorize(wrap, otypes=[np.int64])(prod)


def test_matmul_i64_batched_wraps_and_k_split(gpu):
    rng = np.random.default_rng(11)
    m, k, n = 5, 7, 3
    a = rand_i64(rng, (2, m, k))
    a[0] >>= 30  # batch 0: products near 2**64 (wrap only sometimes); batch 1: full range
    b = rand_i64(rng, (k, n)) >> rng.integers(0, 40, size=(k, n))
    want = np.stack([i64_matmul_ref(a[i], b) for i in range(2)])
    g = groups(2 * m * n)
    # A row-major (batch stride m*k); B broadcast over the batch, stored transposed after one
    # leading element: (row stride 1, column stride k) at offset 1
    bw = i64w(np.concatenate([[123], b.T.reshape(-1)]))
    p = matmul_params(m, n, k, k, 1, 1, k, ((2,), (m * k,), (0,)), offsets=(0, 1))
    out = gpu.run("matmul", "matmul_i64", p, {1: i64w(a), 2: bw, 4: junk(4 * m * n)}, g)[4]
    np.testing.assert_array_equal(as_i64(out).reshape(2, m, n), want)
    # the other way round (A stored transposed, B row-major), and K in two ranges accumulating
    # (the first over garbage)
    bufs = {1: i64w(a.transpose(0, 2, 1)), 2: i64w(b)}
    lay = (m, n, k, 1, m, n, 1, ((2,), (k * m,), (0,)))
    out = junk(4 * m * n)
    for kr, acc in (((0, 3), 0), ((3, k), 1)):
        p = matmul_params(*lay, k_range=kr, accumulate=acc)
        out = gpu.run("matmul", "matmul_i64", p, {**bufs, 4: out}, g)[4]
    np.testing.assert_array_equal(as_i64(out).reshape(2, m, n), want)


# ------------------------------------------------------------------ softmax


def softmax_params(rows, length, in_stride, out_stride, others, offset=0):
    od, ins, outs = others
    return [rows, length, in_stride, out_stride, len(od), offset, *od, *ins, *outs]


@pytest.mark.parametrize("entry", ["softmax", "softmax_thin"])
@pytest.mark.parametrize("log", [0, 1])
def test_softmax_along_a_strided_dim(gpu, entry, log):
    rng = np.random.default_rng(7)
    rows = 520  # three workgroups of softmax_thin's one thread per row
    x = (rng.normal(size=(300, rows)) * 4).astype(np.float32)  # softmax along dim 0 (stride `rows`)
    x[:, 3] = -np.inf  # a row of -inf only gives NaN, as on the CPU and in PyTorch
    p = softmax_params(rows, 300, rows, rows, ([rows], [1], [1]))
    g = rows if entry == "softmax" else groups(rows)
    out = gpu.run("softmax", entry, p, {1: f32w(x), 4: junk(x.size)}, g, {"LOG": log})[4]
    out = as_f32(out).reshape(x.shape)
    xd = np.delete(x, 3, 1).astype(np.float64)
    lse = np.log(np.exp(xd - xd.max(0)).sum(0)) + xd.max(0)
    want = xd - lse if log else np.exp(xd - lse)
    np.testing.assert_allclose(np.delete(out, 3, 1), want, **RED)
    assert np.isnan(out[:, 3]).all()


@pytest.mark.parametrize("entry", ["softmax_backward", "softmax_backward_thin"])
@pytest.mark.parametrize("log", [0, 1])
def test_softmax_backward_with_different_strides(gpu, entry, log):
    # logical [300, rows], the gradient taken along dim 0; g is stored row-major, y transposed
    # (column-major), so every stride differs between the operands and the contiguous output
    rng = np.random.default_rng(8)
    rows, length = 520, 300
    x = (rng.normal(size=(length, rows)) * 3).astype(np.float64)
    lse = np.log(np.exp(x - x.max(0)).sum(0)) + x.max(0)
    y = (x - lse) if log else np.exp(x - lse)
    g = rng.normal(size=(length, rows))
    y_store = np.ascontiguousarray(y.T).astype(np.float32)  # element [i, r] at r * length + i
    p = [rows, length, rows, 1, rows, 1, 0, 0, rows, 1, length, 1]
    n = rows if entry == "softmax_backward" else groups(rows)
    out = gpu.run("softmax", entry, p, {1: f32w(g.astype(np.float32)), 2: f32w(y_store), 4: junk(g.size)}, n,
                  {"LOG": log})[4]
    out = as_f32(out).reshape(g.shape)
    yd = y_store.T.astype(np.float64)
    gd = g.astype(np.float32).astype(np.float64)
    want = gd - np.exp(yd) * gd.sum(0) if log else yd * (gd - (gd * yd).sum(0))
    np.testing.assert_allclose(out, want, **RED)


# ------------------------------------------------------------------ the LSTM cell


def test_lstm_cell_kernels(gpu):
    rng = np.random.default_rng(14)
    b, h = 37, 11  # B*H = 407 threads: two workgroups, the second partly idle
    pre = (rng.normal(size=(b, 4 * h)) * 2).astype(np.float32)
    cp, dh, dc = (rng.normal(size=(b, h)).astype(np.float32) for _ in range(3))
    pd, cpd = pre.astype(np.float64), cp.astype(np.float64)
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    i, f, g, o = sig(pd[:, :h]), sig(pd[:, h:2 * h]), np.tanh(pd[:, 2 * h:3 * h]), sig(pd[:, 3 * h:])
    c = f * cpd + i * g
    pad = lambda a: np.concatenate([np.zeros(2, np.float32), a.ravel()])  # noqa: E731
    p = [b * h, h, 2, 2, 2, 2, 2]
    r = gpu.run("elementwise", "lstm_cell", p, {1: f32w(pad(pre)), 2: f32w(pad(cp)), 4: junk(b * h), 5: junk(b * h),
                6: junk(4 * b * h)}, groups(b * h), read=(4, 5, 6))
    np.testing.assert_allclose(as_f32(r[4]).reshape(b, h), o * np.tanh(c), **EW)
    np.testing.assert_allclose(as_f32(r[5]).reshape(b, h), c, **EW)
    act = np.concatenate([i, f, g, o], 1)
    np.testing.assert_allclose(as_f32(r[6]).reshape(b, 4 * h), act, **EW)
    tc = np.tanh(c)
    dcs = dc + dh * o * (1 - tc * tc)
    want = np.concatenate([dcs * g * i * (1 - i), dcs * cpd * f * (1 - f), dcs * i * (1 - g * g),
                           dh * tc * o * (1 - o)], 1)
    bufs = {1: f32w(pad(act.astype(np.float32))), 2: f32w(pad(c.astype(np.float32))), 3: f32w(pad(cp)),
            7: f32w(pad(dh)), 8: f32w(pad(dc)), 4: junk(4 * b * h), 5: junk(b * h)}
    r = gpu.run("elementwise", "lstm_cell_backward", p, bufs, groups(b * h), read=(4, 5))
    np.testing.assert_allclose(as_f32(r[4]).reshape(b, 4 * h), want, **RED)
    np.testing.assert_allclose(as_f32(r[5]).reshape(b, h), dcs * f, **RED)


# ------------------------------------------------------------------ attention


def _attention_case(causal, seed=12, b=2, L=300, S=270, E=20, Ev=12):
    """q/k/v/g float32 with a leading junk word each (the offsets in the parameter block), and
    the float64 reference: out, lse, D = rowsum(g out), dq, dk, dv."""
    rng = np.random.default_rng(seed)
    q, k = rng.normal(size=(b, L, E)).astype(np.float32), rng.normal(size=(b, S, E)).astype(np.float32)
    v, g = rng.normal(size=(b, S, Ev)).astype(np.float32), rng.normal(size=(b, L, Ev)).astype(np.float32)
    scale = 0.3
    qd, kd, vd, gd = (a.astype(np.float64) for a in (q, k, v, g))
    s = qd @ kd.transpose(0, 2, 1) * scale
    if causal:
        s = np.where(np.arange(L)[:, None] >= np.arange(S)[None, :], s, -np.inf)
    lse = np.log(np.exp(s - s.max(-1, keepdims=True)).sum(-1)) + s.max(-1)
    pr = np.exp(s - lse[..., None])
    out = pr @ vd
    d = (gd * out).sum(-1)
    ds = pr * (gd @ vd.transpose(0, 2, 1) - d[..., None]) * scale
    ref = dict(out=out, lse=lse, d=d, dq=ds @ kd, dk=ds.transpose(0, 2, 1) @ qd, dv=pr.transpose(0, 2, 1) @ gd)
    pad = lambda a: np.concatenate([np.zeros(1, np.float32), a.ravel()])  # noqa: E731
    params = lambda rows: [rows, L, S, E, Ev, int(causal), np.float32(scale).view(np.uint32), 1, 1, 1, 1, 1]  # noqa: E731
    bufs = {1: f32w(pad(q)), 2: f32w(pad(k)), 3: f32w(pad(v)), 6: f32w(pad(g))}
    return bufs, params, ref, (b, L, S, E, Ev)


@pytest.mark.parametrize("causal", [0, 1])
def test_attention_forward_and_backward_kernels(gpu, causal):
    # L and S above one 256-wide tile, L != S (the causal mask's alignment), offsets of 1
    bufs, params, ref, (b, L, S, E, Ev) = _attention_case(causal)
    r = gpu.run("attention", "attn_fwd", params(b * L), {k: bufs[k] for k in (1, 2, 3)} | {4: junk(b * L * Ev),
                5: junk(b * L)}, b * L, read=(4, 5))
    np.testing.assert_allclose(as_f32(r[4]).reshape(b, L, Ev), ref["out"], **RED)
    np.testing.assert_allclose(as_f32(r[5]).reshape(b, L), ref["lse"], **RED)
    stats = f32w(np.concatenate([[0.0], ref["lse"].ravel(), ref["d"].ravel()]).astype(np.float32))
    r = gpu.run("attention", "attn_dq", params(b * L), bufs | {7: stats, 4: junk(b * L * E)}, b * L)
    np.testing.assert_allclose(as_f32(r[4]).reshape(b, L, E), ref["dq"], **RED)
    r = gpu.run("attention", "attn_dkv", params(b * S), bufs | {7: stats, 4: junk(b * S * E), 5: junk(b * S * Ev)},
                b * S, read=(4, 5))
    np.testing.assert_allclose(as_f32(r[4]).reshape(b, S, E), ref["dk"], **RED)
    np.testing.assert_allclose(as_f32(r[5]).reshape(b, S, Ev), ref["dv"], **RED)


# ------------------------------------------------------------------ layer_norm


def test_layer_norm_forward_and_backward_kernels(gpu):
    # rows of 300 (more than one 256-thread pass), a constant row (exactly 0 out), a row with a
    # large offset; operands start at offsets 1, 2 and 3 words (the parameter block's offsets)
    rng = np.random.default_rng(21)
    rows, n, eps = 5, 300, 1e-5
    x = rng.normal(size=(rows, n)).astype(np.float32)
    x[1] = -2.5
    x[2] = 50.0 + 0.1 * x[2]
    g = rng.normal(size=(rows, n)).astype(np.float32)
    xd, gd = x.astype(np.float64), g.astype(np.float64)
    mean = xd.mean(1, keepdims=True)
    rstd = 1.0 / np.sqrt(((xd - mean) ** 2).mean(1, keepdims=True) + np.float32(eps))
    xhat = (xd - mean) * rstd
    dx = rstd * (gd - gd.mean(1, keepdims=True) - xhat * (gd * xhat).mean(1, keepdims=True))
    eps_bits = int(np.float32(eps).view(np.uint32))
    xb = f32w(np.concatenate([np.zeros(1, np.float32), x.ravel()]))
    r = gpu.run("layer_norm", "layer_norm", [rows, n, eps_bits, 1, 0, 0], {1: xb, 4: junk(rows * n),
                5: junk(2 * rows)}, rows, read=(4, 5))
    y = as_f32(r[4]).reshape(rows, n)
    # float32 statistics: |mean| * rstd ulps of scale on the offset row
    np.testing.assert_allclose(y, xhat, rtol=1e-4, atol=1e-4 * (1 + np.abs(mean) * rstd).max())
    assert (y[1] == 0).all()
    st = as_f32(r[5])
    np.testing.assert_allclose(st[:rows], mean.ravel(), rtol=1e-6)
    np.testing.assert_allclose(st[rows:], rstd.ravel(), rtol=1e-3)
    stats = f32w(np.concatenate([np.zeros(3, np.float32), st]))
    gb = f32w(np.concatenate([np.zeros(2, np.float32), g.ravel()]))
    r = gpu.run("layer_norm", "layer_norm_backward", [rows, n, 0, 1, 2, 3], {1: xb, 2: gb, 3: stats,
                4: junk(rows * n)}, rows)
    got = as_f32(r[4]).reshape(rows, n)
    np.testing.assert_allclose(got, dx, rtol=1e-3, atol=1e-4 * np.abs(dx).max() * (1 + np.abs(mean) * rstd).max())


# ------------------------------------------------------------------ sort


@pytest.mark.parametrize("dt", ["f32", "i64", "bool"])
def test_argsort_rows_kernel(gpu, dt):
    # rows of 300 (padded to 512, more than one 256-thread pass); ties, NaN, -0.0 and 0.0, and an
    # input starting at offset 2 (the parameter block's offset); against NumPy's stable argsort
    # with NaN last ascending and first descending (PyTorch's order)
    rng = np.random.default_rng(31)
    rows, n = 4, 300
    if dt == "f32":
        x = rng.integers(-4, 5, size=(rows, n)).astype(np.float32)
        x[0, ::7] = np.nan
        x[1, ::2] = -0.0
        words = f32w(np.concatenate([np.zeros(2, np.float32), x.ravel()]))
        off = 2
    elif dt == "i64":
        x = rng.integers(-2**40, 2**40, size=(rows, n))
        x[2, ::3] = -7
        words = i64w(np.concatenate([np.zeros(1, np.int64), x.ravel()]))
        off = 1
    else:
        x = rng.integers(0, 2, size=(rows, n)).astype(bool)
        words = boolw(np.concatenate([np.zeros(2, bool), x.ravel()]))
        off = 2
    code = K[{"f32": "DT_F32", "i64": "DT_I64", "bool": "DT_BOOL"}[dt]]
    for desc in (0, 1):
        r = gpu.run("sort", "argsort_rows", [rows, n, 512, desc, off], {1: words, 4: junk(2 * rows * n)}, rows,
                    constants={"DT": code})
        got = as_i64(r[4]).reshape(rows, n)
        key = x.astype(np.float64) if dt != "i64" else x
        if desc:
            # stable descending: NaN first, ties by index
            want = np.stack([sorted(range(n), key=lambda i, row=row: (0 if np.isnan(row[i]) else 1,
                                                                      -row[i] if not np.isnan(row[i]) else 0, i))
                             for row in key])
        else:
            want = np.argsort(key, axis=1, kind="stable")
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ index


def status_clear():
    return np.array([NONE, 0, 0, 0], np.uint32)


def index_bufs(idx, status=None):
    return {2: i64w(idx), 6: status_clear() if status is None else status}


def test_gather_f32_and_i64(gpu):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    idx = np.array([[5, 0, 0], [1, 2, 3], [4, 4, 5], [0, 1, 1]], np.int64)
    # dim 1: operand 0 = x with dim 1's stride zeroed, operand 1 = the index; then ds, size, check id
    p = strided([4, 3], [(0, [6, 0]), (0, [3, 1])]) + [1, 6, 0]
    bufs = {1: f32w(x), **index_bufs(idx), 4: junk(12)}
    r = gpu.run("index", "gather", p, bufs, 1, {"DT": F32}, read=(4, 6))
    np.testing.assert_array_equal(as_f32(r[4]).reshape(4, 3), np.take_along_axis(x, idx, 1))
    np.testing.assert_array_equal(r[6], status_clear())

    xi = rand_i64(np.random.default_rng(12), (4, 6))
    bufs = {1: i64w(xi), **index_bufs(idx), 4: junk(24)}
    r = gpu.run("index", "gather", p, bufs, 1, {"DT": I64}, read=(4, 6))
    np.testing.assert_array_equal(as_i64(r[4]).reshape(4, 3), np.take_along_axis(xi, idx, 1))
    # index_select on dim 0 of the [4, 6] int64 tensor: the 1-d index viewed over the output
    # (its stride on dim 0, 0 elsewhere), here a view starting at element 1 of its buffer
    sel = np.array([99, 3, 0, 3], np.int64)
    p = strided([3, 6], [(0, [0, 1]), (1, [1, 0])]) + [6, 4, 1]
    bufs = {1: i64w(xi), **index_bufs(sel), 4: junk(36)}
    r = gpu.run("index", "gather", p, bufs, 1, {"DT": I64}, read=(4, 6))
    np.testing.assert_array_equal(as_i64(r[4]).reshape(3, 6), xi[sel[1:]])
    np.testing.assert_array_equal(r[6], status_clear())


def scatter_params(shape, dim, index, src_strides, check=0, src_offset=0):
    """The scatter block over the index's (dims, strides): operand 0 the contiguous output of
    `shape` with `dim`'s stride zeroed, 1 the index, 2 the source; then ds, size, check id."""
    cs = [int(np.prod(shape[d + 1:])) for d in range(len(shape))]
    zeroed = [0 if d == dim else s for d, s in enumerate(cs)]
    dims, strides = index
    operands = [(0, zeroed), (0, strides), (src_offset, src_strides)]
    return strided(dims, operands) + [cs[dim], shape[dim], check]


def test_scatter_add_f32_and_i64_with_carries(gpu):
    rng = np.random.default_rng(13)
    w = 300  # 1200 sources over 4 workgroups onto 24 targets: many concurrent collisions
    idx = rng.integers(0, 6, size=(4, w)).astype(np.int64)
    rows = np.arange(4)[:, None].repeat(w, 1)
    p = scatter_params((4, 6), 1, ([4, w], [w, 1]), [w, 1])
    g = groups(4 * w)

    src = rng.integers(-4, 5, size=(4, w)).astype(np.float32)  # small integers: the sums are exact
    base = rng.integers(-4, 5, size=(4, 6)).astype(np.float32)
    bufs = {**index_bufs(idx), 3: f32w(src), 5: f32w(base)}
    r = gpu.run("index", "scatter_add", p, bufs, g, {"DT": F32}, read=(5, 6))
    want = base.copy()
    np.add.at(want, (rows, idx), src)
    np.testing.assert_array_equal(as_f32(r[5]).reshape(4, 6), want)
    np.testing.assert_array_equal(r[6], status_clear())

    # int64: low words near 2**32 so that adds carry (and negative values borrow) concurrently
    srci = rand_i64(rng, (4, w))
    srci[0] = 2**32 - 1
    srci[1] = -(2**32) + rng.integers(0, 2**32, w)
    basei = np.array([[2**32 - 1, -1, I64_MAX, I64_MIN, 2**40, 0]] * 4, np.int64)
    # the source read from element 2 of its buffer: operand offsets count elements, not words
    p = scatter_params((4, 6), 1, ([4, w], [w, 1]), [w, 1], src_offset=2)
    bufs = {**index_bufs(idx), 3: i64w(np.concatenate([[5, 5], srci.reshape(-1)])), 5: i64w(basei)}
    r = gpu.run("index", "scatter_add", p, bufs, g, {"DT": I64}, read=(5, 6))
    want = basei.copy()
    np.add.at(want, (rows, idx), srci)  # wraps
    np.testing.assert_array_equal(as_i64(r[5]).reshape(4, 6), want)
    np.testing.assert_array_equal(r[6], status_clear())


def run_scatter_assign(gpu, p, idx, src_words, base_words, dt, n_out):
    """Both passes: claim (into a zeroed buffer), then assign; returns (out, status, claim)."""
    claim = np.zeros(n_out, np.uint32)
    r1 = gpu.run("index", "scatter_claim", p, {**index_bufs(idx), 7: claim}, 1, {"DT": dt}, read=(6, 7))
    bufs = {2: i64w(idx), 3: src_words, 5: base_words, 7: r1[7]}
    r2 = gpu.run("index", "scatter_assign", p, bufs, 1, {"DT": dt}, read=(5,))
    return r2[5], r1[6], r1[7]


def assign_ref(base, dim, idx, src):
    """Scatter assignment in the index's C order, so the last duplicate wins."""
    out = base.copy()
    for pos in np.ndindex(idx.shape):
        tgt = list(pos)
        tgt[dim] = idx[pos]
        out[tuple(tgt)] = src[pos]
    return out


def test_scatter_assign_last_wins(gpu):
    rng = np.random.default_rng(14)
    # dim 0 of a [5, 3] tensor; index [6, 3] with duplicates in every column
    idx = rng.integers(0, 5, size=(6, 3)).astype(np.int64)
    idx[:, 0] = 2  # all six sources aim at one element: source row 5 must win
    p = scatter_params((5, 3), 0, ([6, 3], [3, 1]), [3, 1])
    cases = {
        F32: (rng.normal(size=(6, 3)).astype(np.float32), np.zeros((5, 3), np.float32), f32w, as_f32),
        I64: (rand_i64(rng, (6, 3)), np.full((5, 3), -7, np.int64), i64w, as_i64),
        BOOL: (rng.integers(0, 2, (6, 3)) == 1, np.zeros((5, 3), bool), boolw, lambda w: w == 1),
    }
    for dt, (src, base, enc, dec) in cases.items():
        out, status, claim = run_scatter_assign(gpu, p, idx, enc(src), enc(base), dt, 15)
        want = assign_ref(base, 0, idx, src)
        np.testing.assert_array_equal(dec(out).reshape(5, 3), want, err_msg=f"dt {dt}")
        np.testing.assert_array_equal(status, status_clear())
        assert claim[2 * 3 + 0] == 5 * 3 + 0 + 1  # the claim holds the last source position + 1


def test_bounds_check_status(gpu):
    x = np.arange(10, 15, dtype=np.float32)  # gather along dim 0 of a [5] tensor
    p = strided([4], [(0, [0]), (0, [1])]) + [1, 5]

    def gather(idx, check, status=None):
        bufs = {1: f32w(x), **index_bufs(np.array(idx), status), 4: junk(4)}
        r = gpu.run("index", "gather", p + [check], bufs, 1, {"DT": F32}, read=(4, 6))
        return as_f32(r[4]), r[6]

    # each bad index: negative (high word all ones), == size, and 2**32 + 1, whose LOW word is in
    # range: only the high word makes it bad
    for bad in (-1, 5, 2**32 + 1, -(2**63), 2**40):
        out, status = gather([0, 4, bad, 1], 3)
        words = np.array([bad], np.int64).view(np.uint32)
        np.testing.assert_array_equal(status, [3, words[0], words[1], 0], err_msg=f"index {bad}")
        np.testing.assert_array_equal(out, [10, 14, 0, 11], err_msg=f"index {bad}")  # never followed
    # several bad indices in one dispatch: one of them is recorded, both of its words
    _, status = gather([7, -2, 9, 2**33], 0)
    assert status[0] == 0 and status[3] == 0
    recorded = int(status[1:3].view(np.int64)[0])
    assert recorded in (7, -2, 9, 2**33)
    # the earliest check wins across dispatches: a later (higher) id leaves it, an earlier one replaces it
    _, status = gather([0, 6, 0, 0], 9)
    _, status = gather([0, 0, -3, 0], 12, status)
    np.testing.assert_array_equal(status, [9, 6, 0, 0])
    _, status = gather([8, 0, 0, 0], 4, status)
    np.testing.assert_array_equal(status, [4, 8, 0, 0])

    # scatter_add and scatter_claim report too, and leave the output untouched there
    ps = scatter_params((5,), 0, ([3], [1]), [1], check=2)
    idx = np.array([1, 2**32 + 1, 1], np.int64)
    src, base = i64w([5, 6, 7]), i64w(np.zeros(5))
    r = gpu.run("index", "scatter_add", ps, {**index_bufs(idx), 3: src, 5: base}, 1, {"DT": I64}, read=(5, 6))
    np.testing.assert_array_equal(as_i64(r[5]), [0, 12, 0, 0, 0])
    np.testing.assert_array_equal(r[6], [2, 1, 1, 0])
    out, status, _ = run_scatter_assign(gpu, ps, np.array([1, -5, 3], np.int64), src, base, I64, 5)
    np.testing.assert_array_equal(as_i64(out), [0, 5, 0, 7, 0])
    np.testing.assert_array_equal(status, [2, *np.array([-5], np.int64).view(np.uint32), 0])


# ------------------------------------------------------------------ conv


def window_params(n_out, img, k, s, p, d, o, offset, strides):
    st = list(strides) + [0] * (4 - len(strides))
    return [n_out, *img, *k, *s, *p, *d, *o, offset, *st]


def out_hw(img, k, s, p, d):
    return tuple((img[2 + i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))


def windows(img, k, s, p, d):
    """(ki, kj, oi, oj, hi, wj) of every kernel tap that reads inside the image."""
    oh, ow = out_hw(img, k, s, p, d)
    for ki in range(k[0]):
        for kj in range(k[1]):
            for oi in range(oh):
                for oj in range(ow):
                    hi, wj = oi * s[0] + ki * d[0] - p[0], oj * s[1] + kj * d[1] - p[1]
                    if 0 <= hi < img[2] and 0 <= wj < img[3]:
                        yield ki, kj, oi, oj, hi, wj


def np_unfold(x, k, s, p, d, pad):
    n, c = x.shape[:2]
    oh, ow = out_hw(x.shape, k, s, p, d)
    out = np.full((n, c, k[0], k[1], oh, ow), pad, dtype=x.dtype)
    for ki, kj, oi, oj, hi, wj in windows(x.shape, k, s, p, d):
        out[:, :, ki, kj, oi, oj] = x[:, :, hi, wj]
    return out.reshape(n, c * k[0] * k[1], oh * ow)


def np_fold(cols, img, k, s, p, d):
    oh, ow = out_hw(img, k, s, p, d)
    c6 = cols.reshape(img[0], img[1], k[0], k[1], oh, ow)
    want = np.zeros(img, cols.dtype if cols.dtype == np.int64 else np.float64)
    for ki, kj, oi, oj, hi, wj in windows(img, k, s, p, d):
        want[:, :, hi, wj] += c6[:, :, ki, kj, oi, oj]
    return want


def test_unfold_on_a_strided_image_with_padding(gpu):
    rng = np.random.default_rng(4)
    k, s, p, d = (3, 2), (2, 1), (1, 1), (1, 2)
    base = rng.normal(size=(2, 3, 8, 7)).astype(np.float32)  # stored as [N, C, W, H]: a transposed view
    basei = rand_i64(rng, (2, 3, 8, 7))
    cases = [  # (stored image, dtype, pad value, encode, decode)
        (base, F32, 0.0, f32w, as_f32),
        (base, F32, -np.inf, f32w, as_f32),  # max pooling's pad
        (basei, I64, I64_MIN, i64w, as_i64),  # -inf converted to int64
        (basei, I64, 2**40 + 3, i64w, as_i64),
        (base > 0, BOOL, False, boolw, lambda w: w.astype(bool)),
    ]
    for stored, dt, pad, enc, dec in cases:
        x = stored.transpose(0, 1, 3, 2)
        want = np_unfold(x, k, s, p, d, pad)
        oh, ow = out_hw(x.shape, k, s, p, d)
        params = window_params(want.size, x.shape, k, s, p, d, (oh, ow), 0, (3 * 56, 56, 1, 7))
        pw = enc(np.array([pad], want.dtype))
        params += [int(pw[0]), int(pw[1]) if pw.size > 1 else 0]
        words = want.size * (2 if dt == I64 else 1)
        bufs = {1: enc(stored), 4: junk(words)}
        out = gpu.run("conv", "unfold", params, bufs, groups(want.size), {"DT": dt})[4]
        np.testing.assert_array_equal(dec(out), want.reshape(-1), err_msg=f"dt {dt} pad {pad}")


def np_pool_argmax(x, k, s, p, d, o):
    """PyTorch's max-pool scan, one window at a time: row-major over the in-bounds taps, the
    first one taken, then `v > best or isnan(v)` (the first maximum; a later NaN wins)."""
    n, c, h, w = x.shape
    out = np.zeros((n, c) + o, np.int64)
    for b in range(n):
        for ch in range(c):
            for oi in range(o[0]):
                for oj in range(o[1]):
                    best = best_i = None
                    for ki in range(k[0]):
                        for kj in range(k[1]):
                            y, xx = oi * s[0] + ki * d[0] - p[0], oj * s[1] + kj * d[1] - p[1]
                            if not (0 <= y < h and 0 <= xx < w):
                                continue
                            v = x[b, ch, y, xx]
                            if best is None or v > best or v != v:
                                best, best_i = v, y * w + xx
                    out[b, ch, oi, oj] = best_i
    return out


def test_pool_argmax_first_maximum_and_nan_on_a_strided_image(gpu):
    rng = np.random.default_rng(6)
    k, s, p, d = (3, 2), (2, 2), (1, 1), (1, 2)
    # few distinct values, so that most windows hold ties; a NaN or two and -inf
    base = rng.integers(-2, 3, size=(2, 3, 9, 8)).astype(np.float32)
    base.flat[rng.choice(base.size, 12, replace=False)] = np.nan
    base.flat[rng.choice(base.size, 12, replace=False)] = -np.inf
    basei = rng.integers(-3, 3, size=(2, 3, 9, 8)) * (2**33 + 5)  # ties and both words differ
    for stored, dt, enc in ((base, F32, f32w), (basei, I64, i64w)):
        x = stored.transpose(0, 1, 3, 2)  # stored as [N, C, W, H]: a transposed view
        o = out_hw(x.shape, k, s, p, d)
        o = (o[0] + 1, o[1])  # ceil mode's extra row: its window starts inside the image
        assert (o[0] - 1) * s[0] - p[0] < x.shape[2]
        want = np_pool_argmax(x, k, s, p, d, o)
        params = window_params(want.size, x.shape, k, s, p, d, o, 0, (3 * 72, 72, 1, 8))
        bufs = {1: enc(stored), 4: junk(2 * want.size)}
        out = gpu.run("conv", "pool_argmax", params, bufs, groups(want.size), {"DT": dt})[4]
        np.testing.assert_array_equal(as_i64(out), want.reshape(-1), err_msg=f"dt {dt}")


FOLD = {"img": (2, 2, 6, 5), "k": (3, 3), "s": (1, 2), "p": (1, 0), "d": (2, 1)}


def fold_params(n, cols_shape, ki=None, kj=None, accumulate=0):
    img, k = FOLD["img"], FOLD["k"]
    oh, ow = out_hw(img, k, FOLD["s"], FOLD["p"], FOLD["d"])
    base = window_params(n, img, k, FOLD["s"], FOLD["p"], FOLD["d"], (oh, ow), 0,
                         (cols_shape[1] * cols_shape[2], cols_shape[2], 1))
    return base + [*(ki or (0, k[0])), *(kj or (0, k[1])), accumulate]


def fold_cols(rng, dt):
    img, k = FOLD["img"], FOLD["k"]
    oh, ow = out_hw(img, k, FOLD["s"], FOLD["p"], FOLD["d"])
    shape = (img[0], img[1] * k[0] * k[1], oh * ow)
    if dt == F32:
        return rng.normal(size=shape).astype(np.float32)
    cols = rand_i64(rng, shape) >> 2  # sums of up to k taps carry between the words and wrap
    cols[0, :, :] = 2**32 - 1
    return cols


@pytest.mark.parametrize("dt", ["DT_F32", "DT_I64"])
def test_fold_is_the_adjoint_of_unfold(gpu, dt):
    rng = np.random.default_rng(5)
    cols = fold_cols(rng, K[dt])
    enc, dec = (f32w, as_f32) if dt == "DT_F32" else (i64w, as_i64)
    n = int(np.prod(FOLD["img"]))
    words = n * (2 if dt == "DT_I64" else 1)
    want = np_fold(cols, **FOLD).reshape(-1)
    bufs = {1: enc(cols), 4: junk(words)}
    out = dec(gpu.run("conv", "fold", fold_params(n, cols.shape), bufs, groups(n), {"DT": K[dt]})[4])
    if dt == "DT_F32":
        np.testing.assert_allclose(out, want, **EW)
    else:
        np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dt", ["DT_F32", "DT_I64"])
def test_fold_kernel_split_accumulates(gpu, dt):
    # the host splits a large kernel over dispatches of kernel-position ranges that accumulate:
    # by rows (ki) and, here, also by columns (kj); the first dispatch writes over garbage
    rng = np.random.default_rng(15)
    cols = fold_cols(rng, K[dt])
    if dt == "DT_F32":
        cols = np.round(cols * 8)  # small integers: any summation order is exact
    enc, dec = (f32w, as_f32) if dt == "DT_F32" else (i64w, as_i64)
    n = int(np.prod(FOLD["img"]))
    words = n * (2 if dt == "DT_I64" else 1)
    c = {"DT": K[dt]}
    p = fold_params(n, cols.shape)
    whole = gpu.run("conv", "fold", p, {1: enc(cols), 4: junk(words)}, groups(n), c)[4]
    out = np.full(words, NONE, np.uint32)
    for i, (ki, kj) in enumerate([((0, 1), (0, 3)), ((1, 3), (0, 2)), ((1, 3), (2, 3))]):
        p = fold_params(n, cols.shape, ki, kj, accumulate=int(i > 0))
        out = gpu.run("conv", "fold", p, {1: enc(cols), 4: out}, groups(n), c)[4]
    np.testing.assert_array_equal(dec(out), dec(whole))
    np.testing.assert_array_equal(dec(out), np_fold(cols, **FOLD).reshape(-1))


# ------------------------------------------------------------------ optim

MIN_NORMAL = float(np.finfo(np.float32).tiny)
# leading words before each operand, so that the offsets in the parameter block are exercised
OPTIM_PAD = {1: 3, 2: 1, 3: 2, 4: 0, 5: 5}
OPTIM_BINDINGS = {"sgd": (1, 2, 3), "adagrad": (1, 2, 3), "adam": (1, 2, 3, 4, 5), "rmsprop": (1, 2, 3, 4, 5)}


def flags(**on):
    """The flag word from OPT_* names, e.g. flags(MAXIMIZE=True, VARIANT=False)."""
    return sum(K[f"OPT_{name}"] for name, v in on.items() if v)


def f32(x):
    """A host scalar as the kernel sees it: rounded to float32 (then widened for the reference)."""
    return float(np.float32(x))


def ftz(v):
    return np.where(np.abs(v) < MIN_NORMAL, 0.0, v)


def run_optim(gpu, entry, flag_word, scalars, g, p, states):
    """One dispatch of `entry`; states[k] (or None: a placeholder) is bound at 3 + k. Returns
    {binding: float32 contents of the operand after the update} for the parameter and the
    states, after checking that nothing outside the operands (the padding before each, and a
    placeholder) was written."""
    n = p.size
    bufs, offs = {}, {}
    for b, a in zip((1, 2, 3, 4, 5), (g, p, *states)):
        if b not in OPTIM_BINDINGS[entry]:
            continue
        if a is None:
            bufs[b], offs[b] = np.full(1, 7.0, np.float32), None
        else:
            pad = np.full(OPTIM_PAD[b], 7.0, np.float32)
            bufs[b], offs[b] = np.concatenate([pad, np.asarray(a, np.float32)]), OPTIM_PAD[b]
    params = [n, flag_word] + [offs.get(b) or 0 for b in (1, 2, 3, 4, 5)]
    params += [int(np.float32(x).view(np.uint32)) for x in scalars]
    written = tuple(b for b in bufs if b != 1)
    out = gpu.run("optim", entry, params, {b: f32w(a) for b, a in bufs.items()}, groups(n), read=written)
    res = {}
    for b in written:
        got = as_f32(out[b])
        lead = 1 if offs[b] is None else offs[b]
        msg = f"{entry}: binding {b} was written outside its operand"
        np.testing.assert_array_equal(got[:lead], 7.0, err_msg=msg)
        if offs[b] is not None:
            res[b] = got[lead:]
    return res


# normal floats that one decay step (by 0.999 or less) takes below the smallest normal float
TINY = [1.1756e-38, -1.1756e-38, 1.1757e-38]


def optim_inputs(rng, n):
    """Gradient and parameter; both are 0 at the first three elements, where the states are
    TINY, so that the states' decay there ends in denormals, which must be flushed to zero."""
    g = rng.normal(size=n).astype(np.float32)
    p = rng.normal(size=n).astype(np.float32)
    g[:3] = p[:3] = 0.0
    return g, p


def tiny_state(rng, n, low=-1.0, high=1.0):
    s = rng.uniform(low, high, size=n).astype(np.float32)
    s[:3] = TINY
    return s


def assert_flushed(what, state):
    assert (state[:3] == 0).all(), f"{what}: a denormal state was not flushed to zero: {state[:3]}"


SGD_CASES = {
    # name: (momentum, 1 - dampening, weight_decay, has buffer, nesterov, first step, maximize)
    "plain": (0.0, 1.0, 1e-2, False, False, False, False),
    "momentum_dampening": (0.9, 0.9, 1e-3, True, False, False, False),
    "first_step": (0.9, 1.0, 0.0, True, False, True, False),
    "nesterov_maximize": (0.5, 1.0, 1e-2, True, True, False, True),
}


@pytest.mark.parametrize("case", sorted(SGD_CASES))
def test_optim_sgd(gpu, case):
    mom, damp, wd, has_buf, nesterov, first, maximize = SGD_CASES[case]
    rng = np.random.default_rng(20)
    n, lr = 600, 0.05
    g, p = optim_inputs(rng, n)
    b = tiny_state(rng, n) if has_buf else None
    fw = flags(MAXIMIZE=maximize, MOMENTUM=has_buf, VARIANT=nesterov, FIRST_OR_DECOUPLED=first)
    out = run_optim(gpu, "sgd", fw, [lr, mom, damp, wd], g, p, [b])
    g64, p64 = g.astype(np.float64), p.astype(np.float64)
    d = (-g64 if maximize else g64) + f32(wd) * p64
    step = d
    if has_buf:
        nb = d if first else ftz(f32(mom) * b + f32(damp) * d)
        np.testing.assert_allclose(out[3], nb, err_msg=f"sgd {case}: momentum buffer", **EW)
        if not first:
            assert_flushed(f"sgd {case}: momentum buffer", out[3])
        step = d + f32(mom) * nb if nesterov else nb
    np.testing.assert_allclose(out[2], p64 - f32(lr) * step, err_msg=f"sgd {case}: parameter", **EW)


ADAM_CASES = {
    # name: (weight_decay, amsgrad, decoupled, maximize)
    "plain": (0.0, False, False, False),
    "l2_amsgrad_maximize": (1e-2, True, False, True),
    "adamw": (1e-2, False, True, False),
    "adamw_amsgrad": (0.1, True, True, False),
}


@pytest.mark.parametrize("case", sorted(ADAM_CASES))
def test_optim_adam(gpu, case):
    wd, amsgrad, decoupled, maximize = ADAM_CASES[case]
    rng = np.random.default_rng(21)
    n, lr, b1, b2, eps, t = 600, 1e-2, 0.9, 0.999, 1e-8, 3
    g, p = optim_inputs(rng, n)
    m = tiny_state(rng, n)
    v = tiny_state(rng, n, 0.0, 1e-2)
    v[:3] = np.abs(v[:3])
    vmax = rng.uniform(0.0, 2e-2, size=n).astype(np.float32) if amsgrad else None
    step_size, inv_sqrt_b2, decay = lr / (1 - b1**t), 1 / math.sqrt(1 - b2**t), 1 - lr * wd
    # 1 - beta in f64 by the host (from the f32-rounded beta the first step would exceed lr)
    fw = flags(MAXIMIZE=maximize, VARIANT=amsgrad, FIRST_OR_DECOUPLED=decoupled)
    scalars = [b1, b2, eps, wd, step_size, inv_sqrt_b2, decay, 1 - b1, 1 - b2]
    out = run_optim(gpu, "adam", fw, scalars, g, p, [m, v, vmax])
    g64, p64 = (-g if maximize else g).astype(np.float64), p.astype(np.float64)
    if decoupled:
        p64 = p64 * f32(decay)
    else:
        g64 = g64 + f32(wd) * p64
    nm = ftz(f32(b1) * m + f32(1 - b1) * g64)
    nv = ftz(f32(b2) * v + f32(1 - b2) * g64 * g64)
    np.testing.assert_allclose(out[3], nm, err_msg=f"adam {case}: exp_avg", **EW)
    np.testing.assert_allclose(out[4], nv, err_msg=f"adam {case}: exp_avg_sq", **EW)
    assert_flushed(f"adam {case}: exp_avg", out[3])
    assert_flushed(f"adam {case}: exp_avg_sq", out[4])
    vv = nv
    if amsgrad:
        vv = np.maximum(vmax, nv)
        np.testing.assert_allclose(out[5], vv, err_msg=f"adam {case}: max_exp_avg_sq", **EW)
    want = p64 - f32(step_size) * nm / (np.sqrt(vv) * f32(inv_sqrt_b2) + f32(eps))
    np.testing.assert_allclose(out[2], want, err_msg=f"adam {case}: parameter", **EW)


def test_optim_first_steps_use_the_hosts_one_minus_beta(gpu):
    # From zero state the first moments are exactly f32(1 - beta) * g (computed by the host in
    # f64, as PyTorch): 1 - f32(beta) would differ in the last bits, and PyTorch's first Adam
    # step, which moves each parameter by lr up to eps, would then move it by more than lr.
    n, lr, b1, b2, alpha = 256, 1e-3, 0.9, 0.999, 0.99
    g = np.random.default_rng(24).normal(size=n).astype(np.float32)
    z = np.zeros(n, np.float32)
    scalars = [b1, b2, 1e-8, 0.0, lr / (1 - b1), 1 / math.sqrt(1 - b2), 1.0, 1 - b1, 1 - b2]
    out = run_optim(gpu, "adam", flags(), scalars, g, z, [z, z, None])
    np.testing.assert_array_equal(out[3], np.float32(1 - b1) * g)
    np.testing.assert_array_equal(out[4], np.float32(1 - b2) * g * g)
    step = -out[2].astype(np.float64) * np.sign(g)
    assert (step > 0).all() and (step <= lr * (1 + 2e-6)).all(), step.max() / lr
    out = run_optim(gpu, "rmsprop", flags(), [lr, alpha, 1e-8, 0.0, 0.0, 1 - alpha], g, z, [z, None, None])
    np.testing.assert_array_equal(out[3], np.float32(1 - alpha) * g * g)


RMSPROP_CASES = {
    # name: (momentum, centered, weight_decay, maximize)
    "plain": (0.0, False, 0.0, False),
    "centered": (0.0, True, 0.0, False),
    "momentum_weight_decay": (0.9, False, 1e-2, False),
    "centered_momentum_maximize": (0.5, True, 1e-2, True),
}


@pytest.mark.parametrize("case", sorted(RMSPROP_CASES))
def test_optim_rmsprop(gpu, case):
    mom, centered, wd, maximize = RMSPROP_CASES[case]
    rng = np.random.default_rng(22)
    n, lr, alpha, eps = 600, 1e-2, 0.9, 1e-8
    g, p = optim_inputs(rng, n)
    sq = rng.uniform(1.0, 2.0, size=n).astype(np.float32)
    sq[:3] = np.abs(TINY)
    buf = tiny_state(rng, n) if mom > 0 else None
    ga = tiny_state(rng, n, -0.1, 0.1) if centered else None
    fw = flags(MAXIMIZE=maximize, MOMENTUM=mom > 0, VARIANT=centered)
    out = run_optim(gpu, "rmsprop", fw, [lr, alpha, eps, wd, mom, 1 - alpha], g, p, [sq, buf, ga])
    p64 = p.astype(np.float64)
    g64 = (-g if maximize else g).astype(np.float64) + f32(wd) * p64
    a, oa = f32(alpha), f32(1 - alpha)
    nsq = ftz(a * sq + oa * g64 * g64)
    np.testing.assert_allclose(out[3], nsq, err_msg=f"rmsprop {case}: square_avg", **EW)
    assert_flushed(f"rmsprop {case}: square_avg", out[3])
    avg = np.sqrt(nsq) + f32(eps)
    if centered:
        nga = ftz(a * ga + oa * g64)
        np.testing.assert_allclose(out[5], nga, err_msg=f"rmsprop {case}: grad_avg", **EW)
        assert_flushed(f"rmsprop {case}: grad_avg", out[5])
        with np.errstate(invalid="ignore"):
            avg = np.sqrt(nsq - nga * nga) + f32(eps)
    if mom > 0:
        nb = ftz(f32(mom) * buf + g64 / avg)
        ok = np.isfinite(nb)
        np.testing.assert_allclose(out[4][ok], nb[ok], err_msg=f"rmsprop {case}: momentum_buffer", **EW)
        assert_flushed(f"rmsprop {case}: momentum_buffer", out[4])
        want = p64 - f32(lr) * nb
    else:
        want = p64 - f32(lr) * g64 / avg
    ok = np.isfinite(want)
    assert ok[3:].all(), f"rmsprop {case}: the reference has non-finite values where it should not"
    np.testing.assert_allclose(out[2][ok], want[ok], err_msg=f"rmsprop {case}: parameter", **EW)
    assert np.isnan(out[2][~ok]).all(), f"rmsprop {case}: NaN where the reference has NaN"


@pytest.mark.parametrize("maximize", [False, True])
def test_optim_adagrad(gpu, maximize):
    rng = np.random.default_rng(23)
    n, lr, wd, eps = 600, 0.1 / (1 + 2 * 0.01), 0.0 if maximize else 1e-2, 1e-10
    g, p = optim_inputs(rng, n)
    s = rng.uniform(0.0, 1.0, size=n).astype(np.float32)
    out = run_optim(gpu, "adagrad", flags(MAXIMIZE=maximize), [lr, wd, eps], g, p, [s])
    p64 = p.astype(np.float64)
    g64 = (-g if maximize else g).astype(np.float64) + f32(wd) * p64
    ns = s + g64 * g64
    np.testing.assert_allclose(out[3], ns, err_msg="adagrad: sum", **EW)
    want = p64 - f32(lr) * g64 / (np.sqrt(ns) + f32(eps))
    np.testing.assert_allclose(out[2], want, err_msg="adagrad: parameter", **EW)


def test_grids_that_spill_into_y(gpu):
    """Past 65535 workgroups along x the host adds rows of workgroups along y, and each kernel
    linearises (x, y) itself (linear_id, or its own formula for per-workgroup kernels). Grids two
    workgroups wide stand in for that here; odd counts leave a spare workgroup, which must do
    nothing. Reruns tests that dispatch several workgroups of each kind of kernel."""
    gpu.max_x = 2
    try:
        test_reduce_i64_with_carries_and_wrap(gpu)  # reduce (per workgroup), reduce_thin
        test_arg_reduce_two_passes(gpu, "DT_I64")  # arg_reduce_partial, arg_reduce_combine
        test_arg_reduce_i64_and_bool(gpu)  # arg_reduce
        test_matmul_f32_batched_with_transposed_and_broadcast_operands(gpu)
        test_matmul_i64_batched_wraps_and_k_split(gpu)
        for entry in ("softmax", "softmax_thin"):
            test_softmax_along_a_strided_dim(gpu, entry, 0)
        test_cast_int64_to_f32_rounds_like_numpy(gpu)  # linear_id
        test_unfold_on_a_strided_image_with_padding(gpu)
        test_optim_adagrad(gpu, False)
    finally:
        gpu.max_x = 65535


# Accuracy cases that drivers get wrong with the naive formulas: sin/cos past |k| = 2^16 periods
# (a two-part reduction), tanh of tiny arguments (lavapipe's builtin), softplus' log1p (a driver
# folds (1 + y) - 1 to y). The shaders avoid all three; these keep it so.


def test_sin_cos_of_large_arguments(gpu):
    x = np.geomspace(1e3, 1e7, 512).astype(np.float32)
    for op, f in (("UNARY_SIN", np.sin), ("UNARY_COS", np.cos)):
        out = gpu.run("elementwise", "unary", flat(x.size, 1), {1: f32w(x), 4: junk(x.size)}, 2, ew(op))[4]
        np.testing.assert_allclose(as_f32(out), f(x.astype(np.float64)), err_msg=op, **EW)


SMALL_RESULTS = {
    # op: (inputs with small results, what a naive formula gets wrong); atol 1e-5 would hide it
    "UNARY_TANH": ([1e-10, -1e-7, 1e-5, -1e-4], "lavapipe's tanh builtin: tanh(1e-10) = 3e-8"),
    "UNARY_SOFTPLUS": ([-16.3, -15.5, -14.4, -13.3], "a log1p from (1 + y) - 1, which a driver folds to y"),
}


@pytest.mark.parametrize("op", sorted(SMALL_RESULTS))
def test_relative_accuracy_of_small_results(gpu, op):
    x = np.array(SMALL_RESULTS[op][0], np.float32)
    out = gpu.run("elementwise", "unary", flat(x.size, 1), {1: f32w(x), 4: junk(x.size)}, 1, ew(op))[4]
    np.testing.assert_allclose(as_f32(out), UNARY_F32[op](x.astype(np.float64)), rtol=1e-4, atol=0)


def test_zz_every_entry_point_was_run(gpu):
    """Runs last in this module (pytest keeps file order): no kernel is left untested."""
    with pytest.raises(ValueError) as e:  # its message lists the families the extension knows
        _core._wgsl_source("no such family")
    assert set(re.findall(r'"(\w+)"', str(e.value))) == set(FAMILIES), str(e.value)
    declared = set()
    for family in FAMILIES:
        src = _core._wgsl_source(family)
        for name in re.findall(r"@compute\s+@workgroup_size\([^)]*\)\s*fn\s+(\w+)", src):
            declared.add((family, name))
    assert declared, "no entry points found in the composed sources"
    missing = sorted(declared - gpu.ran)
    assert not missing, f"entry points never run by this file: {missing}"
