"""Every op of the op table, on every device it supports: forward vs NumPy in float32,
float64, float16 and bfloat16, gradcheck (f64 central differences) and gradgradcheck (second derivatives) on the CPU,
and on the GPU forward vs NumPy plus gradients vs the CPU's, all from the same samples (the
OpInfo idea, re-run per device like tinygrad's helper_test_op)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

import backprop_rs as bp
from conftest import gpu_or_skip
from op_table import OPS, OpInfo, Sample

CASES = []
GPU_CASES = []
for _op in OPS:
    # a stable seed per row (Python's hash() is salted per process): inputs are the same each run
    for _i, _s in enumerate(_op.samples(np.random.default_rng(zlib.crc32(_op.name.encode())))):
        CASES.append(pytest.param(_op, _s, id=f"{_op.name}-{_s.desc or _i}"))
        if "gpu" in _op.devices:
            GPU_CASES.append(pytest.param(_op, _s, id=f"{_op.name}-{_s.desc or _i}"))


def _leaf(a: np.ndarray, dtype, noncontig: bool, requires_grad: bool = False, device: str = "cpu"):
    """A bp leaf for `a`; when `noncontig`, the leaf holds the transposed data and the returned
    'view' function transposes it back, so the op sees a strided input."""
    if noncontig and a.ndim >= 2:
        data = np.ascontiguousarray(np.swapaxes(a, -1, -2))
        leaf = bp.tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)
        return leaf, (lambda t: t.transpose(-1, -2))
    leaf = bp.tensor(a, dtype=dtype, device=device, requires_grad=requires_grad)
    return leaf, (lambda t: t)


def _inputs(op: OpInfo, s: Sample, dtype, requires_grad=False, device="cpu"):
    leaves, views, args = [], [], []
    for i, a in enumerate(s.inputs):
        if i in s.int_inputs:
            args.append(bp.tensor(a.astype(np.int64), device=device))
            leaves.append(None)
            views.append(None)
        else:
            leaf, view = _leaf(a, dtype, s.noncontig, requires_grad, device)
            leaves.append(leaf)
            views.append(view)
            args.append(view(leaf))
    return leaves, views, args


def _np_inputs(s: Sample, np_dtype):
    return [a.astype(np.int64) if i in s.int_inputs else a.astype(np_dtype).astype(np.float64) for i, a in enumerate(s.inputs)]


def _compare(got, want, atol, rtol):
    got_np = got.detach().numpy() if isinstance(got, bp.Tensor) else np.asarray(got)
    want = np.asarray(want)
    assert got_np.shape == want.shape, f"shape {got_np.shape} != reference {want.shape}"
    if want.dtype == np.bool_ or np.issubdtype(want.dtype, np.integer):
        np.testing.assert_array_equal(got_np, want)
    else:
        np.testing.assert_allclose(got_np, want, atol=atol, rtol=rtol)


@pytest.mark.parametrize("op,sample", CASES)
def test_forward_f32(op: OpInfo, sample: Sample):
    _, _, args = _inputs(op, sample, bp.float32)
    got = op.op(*args, **sample.kwargs)
    want = op.ref(*_np_inputs(sample, np.float32), **sample.kwargs)
    if isinstance(got, bp.Tensor) and got.is_floating_point():
        assert got.dtype == bp.float32
    _compare(got, want, op.atol, op.rtol)


@pytest.mark.parametrize("op,sample", CASES)
def test_forward_f64(op: OpInfo, sample: Sample):
    _, _, args = _inputs(op, sample, bp.float64)
    got = op.op(*args, **sample.kwargs)
    want = op.ref(*_np_inputs(sample, np.float64), **sample.kwargs)
    if isinstance(got, bp.Tensor) and got.is_floating_point():
        assert got.dtype == bp.float64
    _compare(got, want, 1e-12, 1e-9)


# the storage dtypes: inputs rounded to the dtype, the reference in float64 on those rounded
# values; the tolerance covers one rounding of the result plus the per-op roundings inside
# composites (each intermediate is stored in the narrow dtype, as in PyTorch)
HALF_CASES = [(bp.float16, np.float16, 1e-2), (bp.bfloat16, None, 6e-2)]


def _round_to(a: np.ndarray, bp_dtype) -> np.ndarray:
    return bp.tensor(a, dtype=bp.float32).to(bp_dtype).float().numpy().astype(np.float64)


@pytest.mark.parametrize("half", HALF_CASES, ids=["float16", "bfloat16"])
@pytest.mark.parametrize("op,sample", CASES)
def test_forward_half(op: OpInfo, sample: Sample, half):
    dtype, _, tol = half
    rounded = Sample([a if i in sample.int_inputs else _round_to(a, dtype) for i, a in enumerate(sample.inputs)],
                     sample.kwargs, sample.desc, sample.noncontig, sample.int_inputs)
    _, _, args = _inputs(op, rounded, dtype)
    got = op.op(*args, **sample.kwargs)
    want = op.ref(*_np_inputs(rounded, np.float64), **sample.kwargs)
    if isinstance(got, bp.Tensor) and got.is_floating_point():
        assert got.dtype == dtype
        got = got.float()
    w = np.asarray(want)
    if np.issubdtype(w.dtype, np.floating) and np.abs(w[np.isfinite(w)]).max(initial=0) > bp.finfo(dtype).max:
        pytest.skip("the reference's values do not fit the dtype (they overflow to inf there, as in PyTorch)")
    scale = float(np.abs(w).max()) if w.size and np.issubdtype(w.dtype, np.floating) and np.isfinite(w).all() else 1.0
    _compare(got, want, tol * max(1.0, scale), tol)


def _grad_fn(op: OpInfo, sample: Sample):
    leaves, views, args = _inputs(op, sample, bp.float64, requires_grad=True)
    float_pos = [i for i, leaf in enumerate(leaves) if leaf is not None]

    def fn(*xs):
        full = list(args)
        for p, x in zip(float_pos, xs):
            full[p] = views[p](x)
        return op.op(*full, **sample.kwargs)

    return fn, [leaves[p] for p in float_pos]


def _differentiable(op: OpInfo, sample: Sample) -> bool:
    return op.grad and all(a.size > 0 for i, a in enumerate(sample.inputs) if i not in sample.int_inputs)


@pytest.mark.parametrize("op,sample", CASES)
def test_gradcheck(op: OpInfo, sample: Sample):
    if not _differentiable(op, sample):
        pytest.skip("no gradient for this op/sample (comparison, index output or empty input)")
    fn, xs = _grad_fn(op, sample)
    assert bp.autograd.gradcheck(fn, xs, eps=1e-6, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("op,sample", CASES)
def test_gradgradcheck(op: OpInfo, sample: Sample):
    if not _differentiable(op, sample) or not op.gradgrad:
        pytest.skip("no second derivative for this op/sample")
    fn, xs = _grad_fn(op, sample)
    assert bp.autograd.gradgradcheck(fn, xs, eps=1e-6, atol=1e-5, rtol=1e-3)


# ------------------------------------------------------------------ the same rows on the GPU

# float32 on the GPU runs other transcendental implementations than the CPU's: a little more room
GPU_ATOL, GPU_RTOL = 2e-5, 2e-4


@pytest.mark.parametrize("op,sample", GPU_CASES)
def test_forward_gpu(op: OpInfo, sample: Sample):
    gpu_or_skip()
    _, _, args = _inputs(op, sample, bp.float32, device="gpu")
    got = op.op(*args, **sample.kwargs)
    want = op.ref(*_np_inputs(sample, np.float32), **sample.kwargs)
    if isinstance(got, bp.Tensor):
        assert got.device.type == "gpu", f"{op.name} left the GPU"
        if got.is_floating_point():
            assert got.dtype == bp.float32
        got = got.detach().cpu()
    _compare(got, want, max(op.atol, GPU_ATOL), max(op.rtol, GPU_RTOL))


def _grads(op: OpInfo, sample: Sample, device: str):
    leaves, views, args = _inputs(op, sample, bp.float32, requires_grad=True, device=device)
    out = op.op(*args, **sample.kwargs)
    # a fixed, non-uniform output gradient so that every output element weighs differently
    seed = bp.tensor(np.linspace(-1.0, 1.5, max(out.numel(), 1))[: out.numel()].reshape(out.shape),
                     dtype=bp.float32, device=device)
    out.backward(seed)
    return [leaf.grad.cpu().numpy() if leaf.grad is not None else None for leaf in leaves if leaf is not None]


@pytest.mark.parametrize("op,sample", GPU_CASES)
def test_gradients_gpu_match_cpu(op: OpInfo, sample: Sample):
    if not _differentiable(op, sample):
        pytest.skip("no gradient for this op/sample (comparison, index output or empty input)")
    gpu_or_skip()
    cpu, gpu = _grads(op, sample, "cpu"), _grads(op, sample, "gpu")
    for i, (c, g) in enumerate(zip(cpu, gpu)):
        assert (c is None) == (g is None), f"input {i}: gradient on one device only"
        if c is not None:
            np.testing.assert_allclose(g, c, atol=1e-4, rtol=1e-3, err_msg=f"input {i}")


def test_gradcheck_detects_a_wrong_gradient():
    """The checker itself must be able to fail: a function whose graph is cut gives a wrong
    (zero) analytical gradient for part of its input."""
    x = bp.tensor(np.random.rand(3), dtype=bp.float64, requires_grad=True)
    with pytest.raises(bp.GradcheckError, match="Jacobian mismatch"):
        bp.autograd.gradcheck(lambda t: t * t.detach() + t, [x])
    assert not bp.autograd.gradcheck(lambda t: t * t.detach(), [x], raise_exception=False)


def test_table_covers_the_issue_op_list():
    names = {o.name for o in OPS}
    required = {
        "add", "sub", "mul", "div", "neg", "pow", "pow_scalar", "exp", "log", "sqrt", "abs", "sin", "cos", "tanh",
        "sigmoid", "relu", "leaky_relu", "gelu", "softplus", "clamp", "maximum", "minimum", "where", "eq", "lt",
        "sum", "mean", "max_dim", "max_all", "min_dim", "argmax", "var", "std", "matmul", "reshape", "transpose",
        "permute", "unsqueeze", "squeeze", "expand", "slice", "index_int", "cat", "stack", "gather", "index_select",
        "softmax", "log_softmax", "cross_entropy", "cross_entropy_probs", "nll_loss", "mse_loss", "l1_loss",
        "bce_with_logits",
    }
    assert required <= names, required - names


@pytest.mark.parametrize("dtype", [bp.float32, bp.float64])
def test_special_values_match_numpy(dtype):
    """NaN, +-inf, signed zeros, denormals and huge values through the vectorised kernels."""
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, -1e-40, 1e-30, 88.0, -88.0, 700.0, -700.0, 3.0e38, -3.0e38])
    npd = np.float32 if dtype == bp.float32 else np.float64
    xs = x.astype(npd)
    t = bp.tensor(xs, dtype=dtype)
    with np.errstate(all="ignore"):
        ref = {
            "exp": np.exp(xs.astype(np.float64)),
            "tanh": np.tanh(xs.astype(np.float64)),
            "sigmoid": 1 / (1 + np.exp(-xs.astype(np.float64))),
            "softplus": np.where(np.isnan(xs), np.nan, np.logaddexp(0, xs.astype(np.float64))),
            "relu": np.where(np.isnan(xs), np.nan, np.maximum(xs, 0)).astype(np.float64),
        }
    got = {
        "exp": t.exp(), "tanh": t.tanh(), "sigmoid": t.sigmoid(),
        "softplus": bp.nn.functional.softplus(t, threshold=float("inf")), "relu": t.relu(),
    }
    for k, v in got.items():
        np.testing.assert_allclose(v.numpy().astype(np.float64), ref[k].astype(npd).astype(np.float64), rtol=3e-7 if dtype == bp.float32 else 1e-13, atol=0, equal_nan=True, err_msg=k)
    logs = bp.tensor(np.array([0.0, -1.0, np.inf, np.nan, 1e-40, 1e30], npd), dtype=dtype).log().numpy()
    assert logs[0] == -np.inf and np.isnan(logs[1]) and logs[2] == np.inf and np.isnan(logs[3])
    np.testing.assert_allclose(logs[4:].astype(np.float64), np.log(np.array([1e-40, 1e30], npd).astype(np.float64)), rtol=3e-7)


def _softmax_ref(x: np.ndarray, dim: int, log: bool) -> np.ndarray:
    x = x.astype(np.float64)
    z = x - x.max(axis=dim, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return z - lse if log else np.exp(z - lse)


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("dim", [0, 1, 2])
def test_softmax_kernel_paths_match_float64(log, layout, dim):
    # 3 x 300 x 517 = 465k elements: past the parallel threshold, rows not a multiple of the
    # 16 SIMD lanes; 'transposed' makes the input strided along every dim, and dims 0 and 1 write
    # strided output rows, so every path of the CPU kernel runs
    rng = np.random.default_rng(7 + dim)
    base = (rng.standard_normal((3, 517, 300)) * 8).astype(np.float32)
    t = bp.tensor(base)
    if layout == "transposed":
        t, ref_in = t.transpose(1, 2), base.transpose(0, 2, 1)
    else:
        t, ref_in = bp.tensor(np.ascontiguousarray(base.transpose(0, 2, 1))), base.transpose(0, 2, 1)
    got = (t.log_softmax(dim) if log else t.softmax(dim)).numpy()
    want = _softmax_ref(ref_in, dim, log)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6 if not log else 2e-5)


@pytest.mark.parametrize("view", ["contiguous", "transposed", "permuted3", "strided", "expanded"])
def test_matmul_of_a_batched_view_by_a_matrix_matches_numpy_with_gradients(view):
    # `[..., m, k] @ [k, n]` folds the leading dims into the rows of one product: as laid out,
    # after sorting them by stride (a transposed batch-first input, as MultiheadAttention's),
    # or through a contiguous copy (a step slice, a broadcast); every path must give NumPy's
    # product and the gradients dA = G W^T, dW = sum over rows of A^T G
    rng = np.random.default_rng(5)
    base = rng.standard_normal((4, 6, 5, 7))
    w = rng.standard_normal((7, 3))
    pick = {
        "contiguous": lambda t: t,
        "transposed": lambda t: t.transpose(0, 1),
        "permuted3": lambda t: t.permute(2, 0, 1, 3),
        "strided": lambda t: t[:, ::2],
        "expanded": lambda t: t[:1].expand(4, 6, 5, 7),
    }[view]
    npick = {
        "contiguous": lambda a: a,
        "transposed": lambda a: a.transpose(1, 0, 2, 3),
        "permuted3": lambda a: a.transpose(2, 0, 1, 3),
        "strided": lambda a: a[:, ::2],
        "expanded": lambda a: np.broadcast_to(a[:1], (4, 6, 5, 7)),
    }[view]
    x = bp.tensor(base.astype(np.float32), requires_grad=True)
    tw = bp.tensor(w.astype(np.float32), requires_grad=True)
    a = npick(base)
    out = pick(x) @ tw
    assert tuple(out.shape) == a.shape[:-1] + (3,)
    np.testing.assert_allclose(out.detach().numpy(), a @ w, rtol=1e-5, atol=1e-5)
    gg = rng.standard_normal(a.shape[:-1] + (3,))
    out.backward(bp.tensor(gg.astype(np.float32)))
    want_dw = a.reshape(-1, 7).T @ gg.reshape(-1, 3)
    np.testing.assert_allclose(tw.grad.numpy(), want_dw, rtol=1e-4, atol=1e-4)
    # dA lands on the base through the view: scatter G W^T back by the same indexing in NumPy
    da = np.zeros_like(base)
    view_of = npick(da) if view != "expanded" else None
    if view_of is not None:
        view_of[...] += gg @ w.T
    else:
        da[:1] = (gg @ w.T).sum(0, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), da, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
@pytest.mark.parametrize("mkn", [(1, 64, 256), (32, 256, 1024), (64, 100, 300), (5, 70, 21)])
@pytest.mark.parametrize("batch", [(), (3,)])
def test_matmul_with_a_transposed_wide_rhs_matches_numpy(dtype, mkn, batch):
    # x @ W^T with few rows and a wide W takes the transposed-problem path of the CPU matmul
    # (it computes W @ x^T and transposes the result into place); compare it with NumPy
    m, k, n = mkn
    rng = np.random.default_rng(m * 7 + n)
    if dtype == "int64":
        a, w = rng.integers(-5, 5, (*batch, m, k)), rng.integers(-5, 5, (*batch, n, k))
    else:
        a, w = rng.standard_normal((*batch, m, k)).astype(dtype), rng.standard_normal((*batch, n, k)).astype(dtype)
    got = (bp.tensor(a) @ bp.tensor(w).transpose(-1, -2)).numpy()
    want = a.astype(np.float64) @ np.swapaxes(w, -1, -2).astype(np.float64)
    if dtype == "int64":
        np.testing.assert_array_equal(got, want.astype(np.int64))
    else:
        np.testing.assert_allclose(got, want, rtol=1e-4 if dtype == "float32" else 1e-10, atol=1e-3 if dtype == "float32" else 1e-10)
