"""The WGSL kernels in shaders/ stand on their own: each file is loaded with wgpu-py (the Python
WebGPU package ``wgpu``), each entry point is run on small inputs, and the result is compared with
NumPy. This checks the shaders independently of the Rust host code (which builds the same
parameter blocks; the word layouts are documented at the top of each .wgsl file).

Storage convention: every buffer is uint32 words; float32 is stored as its bits, int64 as int32,
bool as 0/1 (``DT`` override: 0 = f32, 1 = i32, 2 = bool).

Skips without wgpu-py or an adapter, unless BACKPROP_REQUIRE_GPU=1 (CI), which turns that into a
failure. Tolerances: rtol 1e-4 / atol 1e-5 elementwise against a float64 NumPy reference computed
from the same float32 inputs, 1e-4 / 1e-4 for reductions and matmul.
"""

from __future__ import annotations

import math
import os
import pathlib
import re

import numpy as np
import pytest

SHADERS = pathlib.Path(__file__).resolve().parent.parent / "shaders"
REQUIRE = os.environ.get("BACKPROP_REQUIRE_GPU") == "1"
EW = dict(rtol=1e-4, atol=1e-5)
RED = dict(rtol=1e-4, atol=1e-4)


def _skip_or_fail(reason: str):
    if REQUIRE:
        pytest.fail(f"BACKPROP_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


try:
    import wgpu  # noqa: E402
except ImportError:  # pragma: no cover - depends on the environment
    wgpu = None


class Gpu:
    """Runs one entry point of a shader file on given uint32 buffers."""

    def __init__(self):
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
        if adapter is None:
            raise RuntimeError("wgpu-py found no adapter")
        self.device = adapter.request_device_sync()
        self.modules = {}
        self.ran = set()

    def module(self, name):
        if name not in self.modules:
            self.modules[name] = self.device.create_shader_module(code=(SHADERS / name).read_text())
        return self.modules[name]

    def buffer(self, words):
        data = np.ascontiguousarray(words).view(np.uint32)
        if data.size == 0:
            data = np.zeros(1, np.uint32)
        usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST
        return self.device.create_buffer_with_data(data=data.tobytes(), usage=usage)

    def run(self, shader, entry, params, buffers, groups, constants=None, read=(4,)):
        """buffers: {binding: array (any 4-byte dtype)}; returns {binding: uint32 array} for `read`."""
        self.ran.add((shader, entry))
        stage = {"module": self.module(shader), "entry_point": entry}
        if constants:
            stage["constants"] = {k: float(v) for k, v in constants.items()}
        pipeline = self.device.create_compute_pipeline(layout="auto", compute=stage)
        bufs = {0: self.buffer(np.asarray(params, np.uint32))}
        bufs.update({b: self.buffer(a) for b, a in buffers.items()})
        bind = self.device.create_bind_group(
            layout=pipeline.get_bind_group_layout(0),
            entries=[{"binding": b, "resource": {"buffer": buf, "offset": 0, "size": buf.size}} for b, buf in bufs.items()],
        )
        x = min(groups, 65535)
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
    except Exception as e:  # no adapter, no Vulkan loader...
        _skip_or_fail(f"no WebGPU adapter through wgpu-py: {e}")
    yield g
    # every entry point of every file ran in this module (checked last, see test_zz_...)


def groups(n):
    return max(1, -(-n // 256))


def f32w(a):
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def i32w(a):
    return np.ascontiguousarray(a, np.int32).view(np.uint32)


def as_f32(w):
    return w.view(np.float32)


def as_i32(w):
    return w.view(np.int32)


def strided(dims, operands):
    """The elementwise parameter block: [n, r, dims, (offset, strides) per operand]."""
    n = int(np.prod(dims)) if dims else 1
    p = [n, len(dims), *dims]
    for off, strides in operands:
        p += [off, *strides]
    return p


def erf(x):
    return np.vectorize(math.erf)(x)


# ------------------------------------------------------------------ elementwise.wgsl

UNARY_F32 = {
    0: lambda x: -x,
    1: np.abs,
    2: np.sign,
    3: np.exp,
    4: np.log,
    5: np.sqrt,
    6: np.sin,
    7: np.cos,
    8: np.tanh,
    9: lambda x: 1 / (1 + np.exp(-x)),
    10: lambda x: np.maximum(x, 0),
    11: lambda x: 0.5 * x * (1 + erf(x / math.sqrt(2))),
    12: erf,
    13: lambda x: np.logaddexp(0, x),
}


@pytest.mark.parametrize("op", sorted(UNARY_F32))
def test_unary_f32_on_a_transposed_view(gpu, op):
    rng = np.random.default_rng(op)
    base = rng.normal(size=(5, 3)).astype(np.float32) * 2  # stored [5, 3]; viewed as its [3, 5] transpose
    if op in (4, 5):
        base = np.abs(base) + 0.1
    view = base.T
    params = strided([3, 5], [(0, [1, 3])])
    out = gpu.run("elementwise.wgsl", "unary", params, {1: f32w(base), 4: np.zeros(15, np.uint32)}, groups(15), {"OP": op, "DT": 0})[4]
    want = UNARY_F32[op](view.astype(np.float64)).reshape(-1)
    np.testing.assert_allclose(as_f32(out), want, **EW)


def test_unary_i32(gpu):
    x = np.array([-7, -1, 0, 3, 2**31 - 1, -(2**31)], np.int32)
    for op, f in {0: lambda v: -v, 1: np.abs, 2: np.sign, 10: lambda v: np.maximum(v, 0)}.items():
        out = gpu.run("elementwise.wgsl", "unary", strided([6], [(0, [1])]), {1: i32w(x), 4: np.zeros(6, np.uint32)}, 1, {"OP": op, "DT": 1})[4]
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(as_i32(out), f(x).astype(np.int32))  # wraps like WGSL


def test_binary_f32_broadcast(gpu):
    rng = np.random.default_rng(1)
    a = rng.normal(size=3).astype(np.float32)  # [3, 1] broadcast to [3, 4]
    b = rng.uniform(0.5, 2, size=4).astype(np.float32)  # [1, 4] broadcast to [3, 4]
    refs = {0: np.add, 1: np.subtract, 2: np.multiply, 3: np.divide, 5: np.maximum, 6: np.minimum}
    params = strided([3, 4], [(0, [1, 0]), (0, [0, 1])])
    for op, f in refs.items():
        out = gpu.run("elementwise.wgsl", "binary", params, {1: f32w(a), 2: f32w(b), 4: np.zeros(12, np.uint32)}, 1, {"OP": op, "DT": 0})[4]
        np.testing.assert_allclose(as_f32(out), f(a[:, None].astype(np.float64), b[None, :]).reshape(-1), **EW)


def test_pow_f32_follows_c99(gpu):
    x = np.array([-2, -2, -1.5, 0, 2, 3, 1, np.nan, -3, 4], np.float32)
    y = np.array([3, 2, 0.5, 2, -2, 0.5, np.nan, 0, -3, 0.5], np.float32)
    out = gpu.run("elementwise.wgsl", "binary", strided([10], [(0, [1]), (0, [1])]), {1: f32w(x), 2: f32w(y), 4: np.zeros(10, np.uint32)}, 1, {"OP": 4, "DT": 0})[4]
    with np.errstate(invalid="ignore"):
        want = np.power(x.astype(np.float64), y.astype(np.float64))
    want[6] = 1.0  # C99: pow(1, NaN) = 1
    want[7] = 1.0  # pow(NaN, 0) = 1
    np.testing.assert_allclose(as_f32(out), want, equal_nan=True, **EW)


def test_binary_i32_and_bool(gpu):
    a = np.array([7, -7, 7, 0, 5, -3], np.int32)
    b = np.array([2, 2, 0, 3, 3, 2], np.int32)
    p = strided([6], [(0, [1]), (0, [1])])
    div = as_i32(gpu.run("elementwise.wgsl", "binary", p, {1: i32w(a), 2: i32w(b), 4: np.zeros(6, np.uint32)}, 1, {"OP": 3, "DT": 1})[4])
    np.testing.assert_array_equal(div, [3, -3, 0, 0, 1, -1])  # truncating, x / 0 = 0 (the CPU's rule)
    pw = as_i32(gpu.run("elementwise.wgsl", "binary", p, {1: i32w(a), 2: i32w(b), 4: np.zeros(6, np.uint32)}, 1, {"OP": 4, "DT": 1})[4])
    np.testing.assert_array_equal(pw, a.astype(np.int64) ** b)
    t = np.array([1, 1, 0, 0], np.uint32)
    f = np.array([1, 0, 1, 0], np.uint32)
    q = strided([4], [(0, [1]), (0, [1])])
    for op, want in {0: t | f, 2: t & f, 1: t ^ f}.items():
        out = gpu.run("elementwise.wgsl", "binary", q, {1: t, 2: f, 4: np.zeros(4, np.uint32)}, 1, {"OP": op, "DT": 2})[4]
        np.testing.assert_array_equal(out, want)


def test_compare_with_nan(gpu):
    a = np.array([1, 2, np.nan, -0.0, 3, np.inf], np.float32)
    b = np.array([1, 3, 1, 0.0, np.nan, np.inf], np.float32)
    p = strided([6], [(0, [1]), (0, [1])])
    for op, f in enumerate([np.equal, np.not_equal, np.less, np.less_equal, np.greater, np.greater_equal]):
        out = gpu.run("elementwise.wgsl", "compare", p, {1: f32w(a), 2: f32w(b), 4: np.zeros(6, np.uint32)}, 1, {"OP": op, "DT": 0})[4]
        np.testing.assert_array_equal(out, f(a, b).astype(np.uint32), err_msg=f"op {op}")
    ia = np.array([-1, 2, 3], np.int32)
    ib = np.array([1, 2, -3], np.int32)
    out = gpu.run("elementwise.wgsl", "compare", strided([3], [(0, [1]), (0, [1])]), {1: i32w(ia), 2: i32w(ib), 4: np.zeros(3, np.uint32)}, 1, {"OP": 2, "DT": 1})[4]
    np.testing.assert_array_equal(out, (ia < ib).astype(np.uint32))


def test_where_cast_copy_fill(gpu):
    c = np.array([1, 0, 1, 0], np.uint32)
    t = f32w(np.arange(4, dtype=np.float32))
    f = f32w(np.array([9], np.float32))  # broadcast scalar
    p = strided([4], [(0, [1]), (0, [1]), (0, [0])])
    out = gpu.run("elementwise.wgsl", "where_select", p, {1: c, 2: t, 3: f, 4: np.zeros(4, np.uint32)}, 1)[4]
    np.testing.assert_array_equal(as_f32(out), [0, 9, 2, 9])

    x = np.array([1.7, -1.7, np.nan, 3e9, -3e9, -0.0, 0.25], np.float32)
    p1 = strided([7], [(0, [1])])
    to_i = as_i32(gpu.run("elementwise.wgsl", "cast_dtype", p1, {1: f32w(x), 4: np.zeros(7, np.uint32)}, 1, {"DT": 0, "DT_OUT": 1})[4])
    np.testing.assert_array_equal(to_i, [1, -1, 0, 2**31 - 1, -(2**31), 0, 0])  # truncate, NaN -> 0, saturate
    to_b = gpu.run("elementwise.wgsl", "cast_dtype", p1, {1: f32w(x), 4: np.zeros(7, np.uint32)}, 1, {"DT": 0, "DT_OUT": 2})[4]
    np.testing.assert_array_equal(to_b, [1, 1, 1, 1, 1, 0, 1])
    ints = np.array([-3, 0, 5], np.int32)
    to_f = as_f32(gpu.run("elementwise.wgsl", "cast_dtype", strided([3], [(0, [1])]), {1: i32w(ints), 4: np.zeros(3, np.uint32)}, 1, {"DT": 1, "DT_OUT": 0})[4])
    np.testing.assert_array_equal(to_f, [-3, 0, 5])
    bools_to_f = as_f32(gpu.run("elementwise.wgsl", "cast_dtype", strided([3], [(0, [1])]), {1: np.array([1, 0, 1], np.uint32), 4: np.zeros(3, np.uint32)}, 1, {"DT": 2, "DT_OUT": 0})[4])
    np.testing.assert_array_equal(bools_to_f, [1, 0, 1])

    m = np.arange(12, dtype=np.float32).reshape(3, 4)
    cp = gpu.run("elementwise.wgsl", "copy", strided([4, 3], [(0, [1, 4])]), {1: f32w(m), 4: np.zeros(12, np.uint32)}, 1)[4]
    np.testing.assert_array_equal(as_f32(cp), m.T.reshape(-1))

    # copy_into: write a [2, 2] source into columns 1..3 of rows 0..2 of a [3, 4] destination
    dst = np.zeros((3, 4), np.float32)
    src = np.array([[1, 2], [3, 4]], np.float32)
    p2 = strided([2, 2], [(0, [2, 1]), (1, [4, 1])])
    got = as_f32(gpu.run("elementwise.wgsl", "copy_into", p2, {1: f32w(src), 4: f32w(dst)}, 1)[4]).reshape(3, 4)
    dst[0:2, 1:3] = src
    np.testing.assert_array_equal(got, dst)

    filled = gpu.run("elementwise.wgsl", "fill", [300, 0xDEADBEEF], {4: np.zeros(301, np.uint32)}, groups(300))[4]
    assert (filled[:300] == 0xDEADBEEF).all() and filled[300] == 0


# ------------------------------------------------------------------ reduce.wgsl


def reduce_params(n_out, red_n, chunk, n_chunks, kept, red, offset=0):
    kd, ks = kept
    rd, rs = red
    return [n_out, red_n, chunk, n_chunks, len(kd), len(rd), offset, *kd, *ks, *rd, *rs]


def test_reduce_sum_max_min_over_strided_dims(gpu):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 6)).astype(np.float32)
    # reduce dims 0 and 2 of x, keeping dim 1
    p = reduce_params(5, 24, 4096, 1, ([5], [6]), ([4, 6], [30, 1]))
    for op, f in {0: np.sum, 1: np.max, 2: np.min}.items():
        for entry in ("reduce", "reduce_thin"):
            out = gpu.run("reduce.wgsl", entry, p, {1: f32w(x), 4: np.zeros(5, np.uint32)}, 5 if entry == "reduce" else 1, {"OP": op, "DT": 0})[4]
            np.testing.assert_allclose(as_f32(out), f(x.astype(np.float64), axis=(0, 2)), **RED, err_msg=f"{entry} op {op}")


def test_reduce_in_chunks_writes_partials(gpu):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 1000)).astype(np.float32)
    p = reduce_params(2, 1000, 256, 4, ([2], [1000]), ([1000], [1]))
    out = as_f32(gpu.run("reduce.wgsl", "reduce", p, {1: f32w(x), 4: np.zeros(8, np.uint32)}, 8, {"OP": 0, "DT": 0})[4])
    want = np.stack([x[:, i * 256:(i + 1) * 256].astype(np.float64).sum(1) for i in range(4)], 1).reshape(-1)
    np.testing.assert_allclose(out, want, **RED)


def test_reduce_nan_int_and_bool(gpu):
    x = np.array([1, np.nan, 3, -1], np.float32)
    p = reduce_params(1, 4, 4096, 1, ([], []), ([4], [1]))
    mx = as_f32(gpu.run("reduce.wgsl", "reduce", p, {1: f32w(x), 4: np.zeros(1, np.uint32)}, 1, {"OP": 1, "DT": 0})[4])
    assert np.isnan(mx[0])  # NaN propagates, as the CPU's max_nan
    ints = np.array([2**31 - 1, 1, -5, 7], np.int32)
    s = as_i32(gpu.run("reduce.wgsl", "reduce_thin", p, {1: i32w(ints), 4: np.zeros(1, np.uint32)}, 1, {"OP": 0, "DT": 1})[4])
    assert s[0] == np.int32(np.int64(ints.astype(np.int64).sum()) - 2**32)  # wraps at 32 bits
    b = np.array([0, 1, 0, 0], np.uint32)
    anyb = gpu.run("reduce.wgsl", "reduce", p, {1: b, 4: np.zeros(1, np.uint32)}, 1, {"OP": 1, "DT": 2})[4]
    allb = gpu.run("reduce.wgsl", "reduce", p, {1: b, 4: np.zeros(1, np.uint32)}, 1, {"OP": 2, "DT": 2})[4]
    assert anyb[0] == 1 and allb[0] == 0


def arg_params(n_out, length, stride, chunk, n_chunks, kept, offset=0):
    kd, ks = kept
    return [n_out, length, stride, chunk, n_chunks, len(kd), offset, *kd, *ks]


def test_arg_reduce_first_index_on_ties_and_nan(gpu):
    x = np.array([[1, 3, 3, -1], [2, np.nan, np.nan, 0], [5, 5, 5, 5]], np.float32)
    p = arg_params(3, 4, 1, 4096, 1, ([3], [4]))
    for op, want in {0: [1, 1, 0], 1: [3, 1, 0]}.items():
        for entry, g in (("arg_reduce", 3), ("arg_reduce_thin", 1)):
            out = as_i32(gpu.run("reduce.wgsl", entry, p, {1: f32w(x), 4: np.zeros(3, np.uint32)}, g, {"OP": op, "DT": 0})[4])
            np.testing.assert_array_equal(out, want, err_msg=f"{entry} op {op}")


def test_arg_reduce_two_passes(gpu):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 1000)).astype(np.float32)
    chunk, n_chunks = 256, 4
    p = arg_params(3, 1000, 1, chunk, n_chunks, ([3], [1000]))
    r = gpu.run("reduce.wgsl", "arg_reduce_partial", p, {1: f32w(x), 4: np.zeros(12, np.uint32), 5: np.zeros(12, np.uint32)}, 12, {"OP": 0, "DT": 0}, read=(4, 5))
    idx, val = r[4], r[5]
    np.testing.assert_array_equal(idx.reshape(3, 4), [[c * chunk + np.argmax(x[i, c * chunk:(c + 1) * chunk]) for c in range(4)] for i in range(3)])
    out = as_i32(gpu.run("reduce.wgsl", "arg_reduce_combine", [3, n_chunks], {1: val, 2: idx, 4: np.zeros(3, np.uint32)}, 3, {"OP": 0, "DT": 0})[4])
    np.testing.assert_array_equal(out, np.argmax(x, 1))


# ------------------------------------------------------------------ matmul.wgsl


def matmul_params(m, n, k, a_rs, a_cs, b_rs, b_cs, batch=((), (), ())):
    bd, bsa, bsb = batch
    nb = int(np.prod(bd)) if bd else 1
    return [m, n, k, nb, a_rs, a_cs, b_rs, b_cs, 0, 0, len(bd), -(-m // 64), -(-n // 64), *bd, *bsa, *bsb]


def test_matmul_f32_batched_with_transposed_and_broadcast_operands(gpu):
    rng = np.random.default_rng(6)
    m, k, n = 70, 33, 65
    a = rng.normal(size=(2, k, m)).astype(np.float32)  # each batch's A is stored transposed
    b = rng.normal(size=(k, n)).astype(np.float32)  # one B broadcast over the batch (stride 0)
    p = matmul_params(m, n, k, 1, m, n, 1, ((2,), (k * m,), (0,)))
    tiles = 2 * (-(-m // 64)) * (-(-n // 64))
    out = as_f32(gpu.run("matmul.wgsl", "matmul", p, {1: f32w(a), 2: f32w(b), 4: np.zeros(2 * m * n, np.uint32)}, tiles, {"DT": 0})[4])
    want = np.matmul(a.transpose(0, 2, 1).astype(np.float64), b)
    np.testing.assert_allclose(out.reshape(2, m, n), want, **RED)


def test_matmul_i32_and_1x1(gpu):
    a = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    b = np.array([[7, -8], [9, 10], [11, -12]], np.int32)
    out = as_i32(gpu.run("matmul.wgsl", "matmul", matmul_params(2, 2, 3, 3, 1, 2, 1), {1: i32w(a), 2: i32w(b), 4: np.zeros(4, np.uint32)}, 1, {"DT": 1})[4])
    np.testing.assert_array_equal(out.reshape(2, 2), a @ b)
    one = as_f32(gpu.run("matmul.wgsl", "matmul", matmul_params(1, 1, 1, 1, 1, 1, 1), {1: f32w([3.0]), 2: f32w([-2.0]), 4: np.zeros(1, np.uint32)}, 1, {"DT": 0})[4])
    assert one[0] == -6.0


# ------------------------------------------------------------------ softmax.wgsl


def softmax_params(rows, length, in_stride, out_stride, others, offset=0):
    od, ins, outs = others
    return [rows, length, in_stride, out_stride, len(od), offset, *od, *ins, *outs]


@pytest.mark.parametrize("entry", ["softmax", "softmax_thin"])
@pytest.mark.parametrize("log", [0, 1])
def test_softmax_along_a_strided_dim(gpu, entry, log):
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(300, 4)) * 4).astype(np.float32)  # softmax along dim 0 (stride 4)
    p = softmax_params(4, 300, 4, 4, ([4], [1], [1]))
    g = 4 if entry == "softmax" else 1
    out = as_f32(gpu.run("softmax.wgsl", entry, p, {1: f32w(x), 4: np.zeros(1200, np.uint32)}, g, {"LOG": log})[4]).reshape(300, 4)
    xd = x.astype(np.float64)
    lse = np.log(np.exp(xd - xd.max(0)).sum(0)) + xd.max(0)
    want = xd - lse if log else np.exp(xd - lse)
    np.testing.assert_allclose(out, want, **RED)


# ------------------------------------------------------------------ index.wgsl


def test_gather_and_scatter_add(gpu):
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    idx = np.array([[5, 0, 0], [1, 2, 3], [4, 4, 5], [0, 1, 1]], np.int32)
    # gather dim 1: operand 0 = x with dim 1's stride zeroed, operand 1 = the index; then ds, size
    p = strided([4, 3], [(0, [6, 0]), (0, [3, 1])]) + [1, 6]
    out = as_f32(gpu.run("index.wgsl", "gather", p, {1: f32w(x), 2: i32w(idx), 4: np.zeros(12, np.uint32)}, 1)[4])
    np.testing.assert_array_equal(out.reshape(4, 3), np.take_along_axis(x, idx, 1))

    src = np.ones((4, 3), np.float32)
    base = np.zeros((4, 6), np.float32)
    p = strided([4, 3], [(0, [6, 0]), (0, [3, 1]), (0, [3, 1])]) + [1, 6]
    acc = as_f32(gpu.run("index.wgsl", "scatter_add", p, {2: i32w(idx), 3: f32w(src), 5: f32w(base)}, 1, {"DT": 0}, read=(5,))[5])
    want = base.copy()
    np.add.at(want, (np.arange(4)[:, None].repeat(3, 1), idx), src)
    np.testing.assert_array_equal(acc.reshape(4, 6), want)
    iacc = as_i32(gpu.run("index.wgsl", "scatter_add", p, {2: i32w(idx), 3: i32w(np.full((4, 3), 2)), 5: i32w(base)}, 1, {"DT": 1}, read=(5,))[5])
    np.testing.assert_array_equal(iacc.reshape(4, 6), (want * 2).astype(np.int32))


def test_check_index_reports_the_first_bad_index(gpu):
    idx = np.array([0, 3, 7, -1, 9], np.int32)
    p = strided([5], [(0, [1])]) + [6]
    status = np.full(2, 0xFFFFFFFF, np.uint32)
    r = gpu.run("index.wgsl", "check_index", p, {1: i32w(idx), 5: status}, 1, read=(5,))[5]
    assert r[0] == 2  # position of 7, the first index outside [0, 6)
    r = gpu.run("index.wgsl", "check_index_value", p, {1: i32w(idx), 5: r}, 1, read=(5,))[5]
    assert r.view(np.int32)[1] == 7
    ok = gpu.run("index.wgsl", "check_index", strided([2], [(0, [1])]) + [6], {1: i32w([0, 5]), 5: np.full(2, 0xFFFFFFFF, np.uint32)}, 1, read=(5,))[5]
    assert ok[0] == 0xFFFFFFFF


# ------------------------------------------------------------------ conv.wgsl

def window_params(n_out, img, k, s, p, d, o, offset, strides):
    st = list(strides) + [0] * (4 - len(strides))
    return [n_out, *img, *k, *s, *p, *d, *o, offset, *st]


def np_unfold(x, k, s, p, d, pad):
    n, c, h, w = x.shape
    oh = (h + 2 * p[0] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + 2 * p[1] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    out = np.full((n, c, k[0], k[1], oh, ow), pad, dtype=x.dtype)
    for ki in range(k[0]):
        for kj in range(k[1]):
            for oi in range(oh):
                for oj in range(ow):
                    hi, wj = oi * s[0] + ki * d[0] - p[0], oj * s[1] + kj * d[1] - p[1]
                    if 0 <= hi < h and 0 <= wj < w:
                        out[:, :, ki, kj, oi, oj] = x[:, :, hi, wj]
    return out.reshape(n, c * k[0] * k[1], oh * ow), (oh, ow)


def test_unfold_on_a_strided_image_with_padding(gpu):
    rng = np.random.default_rng(4)
    base = rng.normal(size=(2, 3, 8, 7)).astype(np.float32)  # stored as [N, C, W, H]: a transposed view
    x = base.transpose(0, 1, 3, 2)
    k, s, p, d = (3, 2), (2, 1), (1, 1), (1, 2)
    for pad, dt in ((0.0, 0), (-np.inf, 0)):
        want, (oh, ow) = np_unfold(x, k, s, p, d, pad)
        params = window_params(want.size, x.shape, k, s, p, d, (oh, ow), 0, (3 * 56, 56, 1, 7))
        params.append(int(np.float32(pad).view(np.uint32)))
        out = as_f32(gpu.run("conv.wgsl", "unfold", params, {1: f32w(base), 4: np.zeros(want.size, np.uint32)}, groups(want.size), {"DT": dt})[4])
        np.testing.assert_array_equal(out, want.reshape(-1).astype(np.float32))


def test_fold_is_the_adjoint_of_unfold(gpu):
    rng = np.random.default_rng(5)
    img, k, s, p, d = (2, 2, 6, 5), (2, 3), (1, 2), (1, 0), (2, 1)
    _, (oh, ow) = np_unfold(np.zeros(img, np.float32), k, s, p, d, 0.0)
    cols = rng.normal(size=(img[0], img[1] * k[0] * k[1], oh * ow)).astype(np.float32)
    # reference: scatter every column entry to the pixel unfold reads it from
    want = np.zeros(img)
    c6 = cols.reshape(img[0], img[1], k[0], k[1], oh, ow)
    for ki in range(k[0]):
        for kj in range(k[1]):
            for oi in range(oh):
                for oj in range(ow):
                    hi, wj = oi * s[0] + ki * d[0] - p[0], oj * s[1] + kj * d[1] - p[1]
                    if 0 <= hi < img[2] and 0 <= wj < img[3]:
                        want[:, :, hi, wj] += c6[:, :, ki, kj, oi, oj]
    n = int(np.prod(img))
    params = window_params(n, img, k, s, p, d, (oh, ow), 0, (cols.shape[1] * cols.shape[2], cols.shape[2], 1))
    out = as_f32(gpu.run("conv.wgsl", "fold", params, {1: f32w(cols), 4: np.zeros(n, np.uint32)}, groups(n), {"DT": 0})[4])
    np.testing.assert_allclose(out, want.reshape(-1), **EW)
    # integers too
    ic = rng.integers(-5, 5, size=cols.shape).astype(np.int32)
    out_i = as_i32(gpu.run("conv.wgsl", "fold", params, {1: i32w(ic), 4: np.zeros(n, np.uint32)}, groups(n), {"DT": 1})[4])
    wi = np.zeros(img, np.int64)
    i6 = ic.reshape(c6.shape)
    for ki in range(k[0]):
        for kj in range(k[1]):
            for oi in range(oh):
                for oj in range(ow):
                    hi, wj = oi * s[0] + ki * d[0] - p[0], oj * s[1] + kj * d[1] - p[1]
                    if 0 <= hi < img[2] and 0 <= wj < img[3]:
                        wi[:, :, hi, wj] += i6[:, :, ki, kj, oi, oj]
    np.testing.assert_array_equal(out_i, wi.reshape(-1))


# ------------------------------------------------------------------ optim.wgsl

MIN_NORMAL = float(np.finfo(np.float32).tiny)
# leading words before each operand, so that the offsets in the parameter block are exercised
OPTIM_PAD = {1: 3, 2: 1, 3: 2, 4: 0, 5: 5}
OPTIM_BINDINGS = {"sgd": (1, 2, 3), "adagrad": (1, 2, 3), "adam": (1, 2, 3, 4, 5), "rmsprop": (1, 2, 3, 4, 5)}


def f32(x):
    """A host scalar as the kernel sees it: rounded to float32 (then widened for the reference)."""
    return float(np.float32(x))


def ftz(v):
    return np.where(np.abs(v) < MIN_NORMAL, 0.0, v)


def run_optim(gpu, entry, flags, scalars, g, p, states):
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
            bufs[b], offs[b] = np.concatenate([np.full(OPTIM_PAD[b], 7.0, np.float32), np.asarray(a, np.float32)]), OPTIM_PAD[b]
    params = [n, flags] + [offs.get(b) or 0 for b in (1, 2, 3, 4, 5)] + [int(np.float32(x).view(np.uint32)) for x in scalars]
    written = tuple(b for b in bufs if b != 1)
    out = gpu.run("optim.wgsl", entry, params, {b: f32w(a) for b, a in bufs.items()}, groups(n), read=written)
    res = {}
    for b in written:
        got = as_f32(out[b])
        lead = 1 if offs[b] is None else offs[b]
        np.testing.assert_array_equal(got[:lead], 7.0, err_msg=f"{entry}: binding {b} was written outside its operand")
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
    flags = maximize | has_buf << 1 | nesterov << 2 | first << 3
    out = run_optim(gpu, "sgd", flags, [lr, mom, damp, wd], g, p, [b])
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
    flags = maximize | amsgrad << 1 | decoupled << 2
    out = run_optim(gpu, "adam", flags, [b1, b2, eps, wd, step_size, inv_sqrt_b2, decay], g, p, [m, v, vmax])
    g64, p64 = (-g if maximize else g).astype(np.float64), p.astype(np.float64)
    if decoupled:
        p64 = p64 * f32(decay)
    else:
        g64 = g64 + f32(wd) * p64
    b1f, b2f = f32(b1), f32(b2)
    nm = ftz(b1f * m + f32(1 - b1f) * g64)
    nv = ftz(b2f * v + f32(1 - b2f) * g64 * g64)
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
    flags = maximize | (mom > 0) << 1 | centered << 2
    out = run_optim(gpu, "rmsprop", flags, [lr, alpha, eps, wd, mom], g, p, [sq, buf, ga])
    p64 = p.astype(np.float64)
    g64 = (-g if maximize else g).astype(np.float64) + f32(wd) * p64
    a = f32(alpha)
    nsq = ftz(a * sq + f32(1 - a) * g64 * g64)
    np.testing.assert_allclose(out[3], nsq, err_msg=f"rmsprop {case}: square_avg", **EW)
    assert_flushed(f"rmsprop {case}: square_avg", out[3])
    avg = np.sqrt(nsq) + f32(eps)
    if centered:
        nga = ftz(a * ga + f32(1 - a) * g64)
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
    out = run_optim(gpu, "adagrad", int(maximize), [lr, wd, eps], g, p, [s])
    p64 = p.astype(np.float64)
    g64 = (-g if maximize else g).astype(np.float64) + f32(wd) * p64
    ns = s + g64 * g64
    np.testing.assert_allclose(out[3], ns, err_msg="adagrad: sum", **EW)
    np.testing.assert_allclose(out[2], p64 - f32(lr) * g64 / (np.sqrt(ns) + f32(eps)), err_msg="adagrad: parameter", **EW)


def test_zz_every_entry_point_was_run(gpu):
    """Runs last in this module (pytest keeps file order): no kernel is left untested."""
    declared = set()
    for path in sorted(SHADERS.glob("*.wgsl")):
        for name in re.findall(r"@compute\s+@workgroup_size\([^)]*\)\s*fn\s+(\w+)", path.read_text()):
            declared.add((path.name, name))
    assert declared, "no entry points found in shaders/"
    missing = sorted(declared - gpu.ran)
    assert not missing, f"entry points never run by this file: {missing}"
