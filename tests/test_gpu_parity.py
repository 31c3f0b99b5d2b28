"""Every primitive and its gradient on the GPU against the CPU backend, through the Python API.

One table of ops (OpInfo style): each row is a function of tensors and the NumPy inputs to feed
it. ``check`` runs the function with CPU tensors and with GPU tensors made from the same data,
then compares the outputs and the gradients of ``sum(out * w)`` (w fixed and random) for every
float input. Tolerances: atol = rtol = 1e-4 for elementwise ops, 1e-3 for reductions and matmul
(the GPU adds in another order); gradients get 10x the forward tolerance (they chain several
kernels). Sizes include 1, 7 and 1000003 elements, 1x1 and 127x129 matmuls, broadcast (stride 0)
and non-contiguous (transposed, sliced) inputs and more than 65535 * 256 elements.

Skips with the reason when no GPU adapter exists, unless BACKPROP_REQUIRE_GPU=1 (CI), in which
case a missing adapter fails. Runs anywhere Mesa's lavapipe is installed (see
scripts/setup-lavapipe.sh).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F

REQUIRE = os.environ.get("BACKPROP_REQUIRE_GPU") == "1"
EW = dict(atol=1e-4, rtol=1e-4)
RED = dict(atol=1e-3, rtol=1e-3)


@pytest.fixture(scope="module", autouse=True)
def gpu():
    if not bp.gpu.is_available():
        try:
            bp.gpu.adapter_info()
            reason = "bp.gpu.is_available() is False"
        except RuntimeError as e:
            reason = str(e)
        if REQUIRE:
            pytest.fail(f"BACKPROP_REQUIRE_GPU=1 but no GPU adapter: {reason}")
        pytest.skip(f"no GPU adapter: {reason}")


RNG = np.random.default_rng(1234)


def normal(*shape):
    return RNG.normal(size=shape).astype(np.float32)


def positive(*shape):
    return RNG.uniform(0.1, 2.0, size=shape).astype(np.float32)


def ints(lo, hi, *shape):
    return RNG.integers(lo, hi, size=shape).astype(np.int64)


def assert_close(what, cpu, gpu, tol):
    assert cpu.shape == gpu.shape, f"{what}: shapes {cpu.shape} vs {gpu.shape}"
    assert cpu.dtype == gpu.dtype, f"{what}: dtypes {cpu.dtype} vs {gpu.dtype}"
    np.testing.assert_allclose(gpu.astype(np.float64), cpu.astype(np.float64), equal_nan=True, err_msg=what, **tol)


def run(fn, inputs, device, grad, wseed=0):
    ts = [bp.tensor(a, device=device, requires_grad=grad and a.dtype.kind == "f") for a in inputs]
    out = fn(*ts)
    assert out.device == bp.device(device), f"result on {out.device}, expected {device}"
    res = [out.detach().to("cpu").numpy()]
    if grad and out.requires_grad:
        w = np.random.default_rng(wseed).normal(size=out.shape).astype(np.float32)
        (out * bp.tensor(w, device=device)).sum().backward()
        res += [None if t.grad is None else t.grad.to("cpu").numpy() for t in ts]
    return res


def check(name, fn, inputs, tol=EW, grad=True):
    cpu = run(fn, inputs, "cpu", grad)
    gpu = run(fn, inputs, "gpu", grad)
    assert_close(name, cpu[0], gpu[0], tol)
    assert len(cpu) == len(gpu), f"{name}: the gradient exists on one device only"
    gtol = {k: v * 10 for k, v in tol.items()}
    for k, (c, g) in enumerate(zip(cpu[1:], gpu[1:])):
        assert (c is None) == (g is None), f"{name}: grad of input {k} on one device only"
        if c is not None:
            assert_close(f"{name}: grad of input {k}", c, g, gtol)


UNARY = {
    "neg": (lambda x: -x, normal),
    "abs": (lambda x: x.abs(), normal),
    "sign": (lambda x: x.sign(), normal),
    "exp": (lambda x: x.exp(), normal),
    "log": (lambda x: x.log(), positive),
    "sqrt": (lambda x: x.sqrt(), positive),
    "sin": (lambda x: x.sin(), normal),
    "cos": (lambda x: x.cos(), normal),
    "tanh": (lambda x: x.tanh(), normal),
    "sigmoid": (lambda x: x.sigmoid(), normal),
    "relu": (lambda x: x.relu(), normal),
    "gelu": (lambda x: F.gelu(x), normal),
    "erf": (lambda x: x.erf(), normal),
    "softplus": (lambda x: F.softplus(x), normal),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("shape", [(1,), (7,), (13, 9)])
def test_unary(name, shape):
    fn, gen = UNARY[name]
    check(f"{name}{shape}", fn, [gen(*shape) * (2 if gen is normal else 1)])


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_transposed_view(name):
    fn, gen = UNARY[name]
    check(f"{name} transposed", lambda x: fn(x.T), [gen(6, 5)])


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "relu", "log"])
def test_unary_1000003_elements(name):
    fn, gen = UNARY[name]
    check(f"{name} 1000003", fn, [gen(1000003)])


def test_unary_special_values():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 1e30, -1e30, 88.0, -88.0, 100.0, -100.0, 0.5, -3.0], np.float32)
    for name, (fn, _) in UNARY.items():
        vals = x[np.isnan(x) | (np.abs(x) <= 100)] if name in ("sin", "cos") else x
        check(f"{name} special values", fn, [vals], grad=False)


BINARY = {
    "add": (lambda a, b: a + b, normal),
    "sub": (lambda a, b: a - b, normal),
    "mul": (lambda a, b: a * b, normal),
    "div": (lambda a, b: a / b, positive),
    "pow": (lambda a, b: a ** b, normal),
    "maximum": (lambda a, b: a.maximum(b), normal),
    "minimum": (lambda a, b: a.minimum(b), normal),
}


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast_and_strided(name):
    fn, gen_b = BINARY[name]
    a = positive(4, 1, 5) if name == "pow" else normal(4, 1, 5)
    check(f"{name} broadcast", fn, [a, gen_b(3, 5)])
    check(f"{name} transposed", lambda x, y: fn(x.T, y[::2]), [a[:, 0, :].copy(), gen_b(10, 4)])
    check(f"{name} scalar operand", lambda x: fn(x, 2.0) if name != "pow" else x ** 2.0, [a])


@pytest.mark.parametrize("name", ["add", "mul"])
def test_binary_1000003_elements(name):
    fn, gen = BINARY[name]
    check(f"{name} 1000003", fn, [normal(1000003), gen(1000003)])


def test_maximum_ties_split_the_gradient():
    a = np.round(normal(6, 5) * 2)
    b = np.round(normal(5) * 2)
    check("maximum ties", lambda x, y: x.maximum(y), [a, b])
    check("minimum ties", lambda x, y: x.minimum(y), [a, b])


def test_integer_and_bool_ops():
    a = np.array([-7, -1, 0, 1, 5, 12, -3, 3], np.int64)
    b = np.array([2, -3, 5, 1, -2, 1, -1, 4], np.int64)
    for name, fn in {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
                     "max": lambda x, y: x.maximum(y), "neg": lambda x, y: -x, "abs": lambda x, y: x.abs(),
                     "lt": lambda x, y: x < y, "eq": lambda x, y: x == y, "true div": lambda x, y: x / y}.items():
        check(f"int {name}", fn, [a, b], grad=False)
    p = np.array([True, True, False, False])
    q = np.array([True, False, True, False])
    check("bool and", lambda x, y: x & y, [p, q], grad=False)
    check("bool or", lambda x, y: x | y, [p, q], grad=False)
    check("bool not", lambda x, y: ~x, [p, q], grad=False)


def test_comparisons_where_and_casts():
    a = np.array([1, 2, np.nan, -0.0, 3, np.inf], np.float32)
    b = np.array([1, 3, 1, 0.0, np.nan, np.inf], np.float32)
    for name, fn in {"eq": lambda x, y: x == y, "ne": lambda x, y: x != y, "lt": lambda x, y: x < y,
                     "le": lambda x, y: x <= y, "gt": lambda x, y: x > y, "ge": lambda x, y: x >= y}.items():
        check(name, fn, [a, b], grad=False)
    cond = normal(4, 1) > 0
    check("where", lambda c, x, y: bp.where(c, x, y), [cond, normal(4, 5), normal(5)])
    check("where strided", lambda c, x, y: bp.where(c, x.T, y[:, 1]), [cond, normal(5, 4), normal(5, 2)])
    f = np.array([1.7, -1.7, 2.5, -0.0, 0.0, 1e9, -1e9, 0.1], np.float32)
    i = np.array([0, 1, -1, 7, 2**31 - 1, -(2**31), 3, 5], np.int64)
    bo = np.array([True, False, True, True, False, False, True, False])
    for src in (f, i, bo):
        for conv in ("float", "long", "bool"):
            check(f"{src.dtype} -> {conv}", lambda x: getattr(x, conv)(), [src], grad=False)
    check("float -> long -> float keeps the graph off", lambda x: x.long().float() * x, [normal(7)])


REDUCE_DIMS = [0, 1, 2, (0, 2), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("dims", REDUCE_DIMS)
@pytest.mark.parametrize("op", ["sum", "amax", "amin", "mean"])
def test_reductions(op, dims):
    x = normal(5, 6, 7)
    check(f"{op}{dims}", lambda t: getattr(t, op)(dim=dims), [x], RED)
    check(f"{op}{dims} permuted keepdim", lambda t: getattr(t, op)(dim=dims, keepdim=True), [normal(7, 5, 6)], RED)
    check(f"{op}{dims} on a permuted view", lambda t: getattr(t.permute(1, 2, 0), op)(dim=dims), [normal(7, 5, 6)], RED)


def test_reductions_large_and_odd():
    check("sum 1000003", lambda t: t.sum(), [normal(1000003)], RED)
    check("amax 1000003", lambda t: t.amax(), [normal(1000003)], RED)
    check("sum long rows", lambda t: t.sum(1), [normal(3, 10000)], RED)
    check("sum many short rows", lambda t: t.sum(1), [normal(20000, 3)], RED)
    check("sum over batch", lambda t: t.sum(0), [normal(3, 20000)], RED)
    check("var", lambda t: t.var(1), [normal(9, 31)], RED)
    check("logsumexp", lambda t: t.logsumexp(1), [normal(9, 31)], RED)
    check("amax ties", lambda t: t.amax(1), [np.array([[1, 3, 3], [-1, 2, 2]], np.float32)], RED)
    check("max NaN", lambda t: t.amax(0), [np.array([1, np.nan, 2], np.float32)], RED, grad=False)
    check("int sum", lambda t: t.sum(1), [ints(-50, 50, 4, 9)], RED, grad=False)
    check("any / all", lambda t: t.any(1).logical_and(t.all(0).sum() >= 0), [normal(4, 3) > 0], RED, grad=False)


def test_arg_reductions():
    ties = np.array([[1, 3, 3, -1], [-1, 2, 0, np.nan], [np.nan, 5, 5, 5]], np.float32)
    for op in ("argmax", "argmin"):
        check(f"{op} ties", lambda t: getattr(t, op)(1), [ties], grad=False)
        check(f"{op} dim 0", lambda t: getattr(t, op)(0), [ties], grad=False)
        check(f"{op} long rows", lambda t: getattr(t, op)(1), [normal(3, 20000)], grad=False)
        check(f"{op} transposed", lambda t: getattr(t.T, op)(0), [normal(9, 6)], grad=False)
        check(f"{op} flat", lambda t: getattr(t, op)(), [normal(1000003)], grad=False)
    check("max with indices", lambda t: t.max(1)[0], [normal(5, 8)], RED)


@pytest.mark.parametrize("shapes", [((1, 1), (1, 1)), ((127, 129), (129, 65)), ((7,), (7,)), ((6, 5), (5,)),
                                    ((3, 17, 19), (3, 19, 23)), ((2, 1, 9, 10), (4, 10, 3)), ((3, 0), (0, 4))])
def test_matmul(shapes):
    a, b = shapes
    check(f"matmul {a} @ {b}", lambda x, y: x @ y, [normal(*a), normal(*b)], RED)


def test_matmul_transposed_operands_and_int():
    check("A^T B", lambda x, y: x.T @ y, [normal(129, 127), normal(129, 33)], RED)
    check("A B^T", lambda x, y: x @ y.T, [normal(70, 40), normal(66, 40)], RED)
    check("sliced", lambda x, y: x[:, 1::2] @ y[::3], [normal(31, 40), normal(60, 9)], RED)
    check("int64", lambda x, y: x @ y, [ints(-9, 9, 5, 6), ints(-9, 9, 6, 4)], RED, grad=False)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
def test_softmax(fn):
    x = normal(4, 7, 5)
    for d in range(3):
        check(f"{fn} dim {d}", lambda t: getattr(t, fn)(d), [x])
    check(f"{fn} long rows", lambda t: getattr(t, fn)(1), [normal(3, 1000) * 5])
    check(f"{fn} many rows", lambda t: getattr(t, fn)(1), [normal(20000, 10)])
    check(f"{fn} transposed", lambda t: getattr(t.T, fn)(0), [normal(300, 9)])
    check(f"{fn} -inf", lambda t: getattr(t, fn)(1), [np.array([[-np.inf, 0, 1], [-np.inf] * 3], np.float32)], grad=False)


def test_indexing_ops():
    x = normal(4, 6)
    idx = np.array([[5, 0, 0], [1, 2, 3], [4, 4, 5], [0, 1, 1]], np.int64)
    check("gather", lambda t, i: t.gather(1, i), [x, idx])
    check("gather dim 0", lambda t, i: t.gather(0, i), [x, np.array([[3, 0, 1, 2, 2, 2]], np.int64)])
    check("gather transposed", lambda t, i: t.T.gather(1, i), [normal(6, 4), idx])
    sel = np.array([2, 0, 2, 5], np.int64)
    check("index_select", lambda t, i: t.index_select(1, i), [x, sel])
    check("index_select dim 0", lambda t, i: t.index_select(0, i), [x, np.array([3, 3, 0], np.int64)])
    check("scatter_add", lambda t, i, s: t.scatter_add(1, i, s), [x, idx, normal(4, 3)])
    check("index_add", lambda t, i, s: t.index_add(1, i, s), [x, sel, normal(4, 4)])
    check("getitem with a tensor index", lambda t, i: t[i], [x, np.array([3, 1, 1], np.int64)])
    check("cat and stack", lambda a, b: bp.cat([a, b.T], 0) + bp.stack([a, a], 0).sum(0).mean(), [normal(2, 3), normal(3, 4)])
    check("slices", lambda t: t[1:, ::2] * 2, [normal(5, 6)])


def test_bad_index_is_an_index_error_on_both_devices():
    # The CPU raises at the op; the GPU checks on the device (no readback per op) and raises the
    # same error, naming the op, at the next synchronisation: .numpy(), .item(), bp.gpu.synchronize().
    x = normal(4, 6)
    for dev in ("cpu", "gpu"):
        t = bp.tensor(x, device=dev)
        with pytest.raises(IndexError, match="gather: index 6 is out of bounds for dimension 1 with size 6"):
            t.gather(1, bp.tensor([[0, 6, -1]], device=dev)).numpy()
    g = bp.tensor(x, device="gpu").gather(1, bp.tensor([[0, 7, 1]], device="gpu"))
    with pytest.raises(IndexError, match="index 7"):
        bp.gpu.synchronize()
    # reported once: the device is usable afterwards
    del g
    np.testing.assert_allclose(bp.tensor(x, device="gpu").gather(1, bp.tensor([[5]], device="gpu")).numpy(), x[:1, 5:6])


def test_setitem_and_inplace_on_gpu():
    for dev in ("cpu", "gpu"):
        t = bp.zeros(3, 4, device=dev)
        t[:, 1:3] = 1.0
        t += 2.0
        t.mul_(bp.tensor([1.0, 2.0, 3.0, 4.0], device=dev))
        np.testing.assert_array_equal(t.numpy(), [[2, 6, 9, 8]] * 3)


def test_more_than_65535_workgroups():
    n = 65535 * 256 + 1000
    x = normal(n)
    check("exp", lambda t: (t * 0.5).exp(), [x], EW, grad=False)
    check("sum", lambda t: t.sum(), [x], dict(atol=1e-2, rtol=1e-3), grad=False)
    check("argmax", lambda t: t.argmax(), [x], grad=False)
    check("softmax rows", lambda t: t.reshape(-1, 8).softmax(1), [x], grad=False)
    check("relu grad", lambda t: t.relu(), [x], EW)


def test_device_placement_and_transfers():
    t = bp.tensor([[1.0, 2.0], [3.0, 4.0]], device="gpu")
    assert t.device == bp.device("gpu") and t.is_gpu and str(t.device) == "gpu"
    assert bp.tensor([1.0], device="cuda").device == bp.device("gpu")
    c = t.to("cpu")
    assert c.device == bp.device("cpu")
    np.testing.assert_array_equal(t.numpy(), [[1, 2], [3, 4]])
    np.testing.assert_array_equal(t.T.to("cpu").numpy(), [[1, 3], [2, 4]])
    assert t.sum().item() == 10.0
    assert c.to("gpu").device == bp.device("gpu")
    assert t.long().to("cpu").dtype == bp.int64
    assert "gpu" in repr(t)
    # gradients flow back across a transfer
    leaf = bp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (leaf.to("gpu") * 3).sum().backward()
    assert leaf.grad.device == bp.device("cpu")
    np.testing.assert_array_equal(leaf.grad.numpy(), [3, 3, 3])


def test_float64_on_the_gpu_is_a_clear_error():
    x64 = bp.tensor(np.array([1.0, 2.0]))  # NumPy float64 stays float64
    assert x64.dtype == bp.float64
    for make in (lambda: x64.to("gpu"), lambda: bp.zeros(3, dtype=bp.float64, device="gpu"),
                 lambda: bp.ones(2, device="gpu").double(), lambda: bp.tensor(np.zeros(2), device="gpu")):
        with pytest.raises(RuntimeError, match=r"float64.*(gpu|GPU)") as e:
            make()
        assert "gpu" in str(e.value)


def _int64_samples(n, seed):
    # values across the whole range, the int32 edges, and small ones (carries between words)
    rng = np.random.default_rng(seed)
    edges = np.array([0, 1, -1, 2**31 - 1, -(2**31), 2**31, 2**32 - 1, 2**32, -(2**32), 2**62, -(2**62),
                      np.iinfo(np.int64).max, np.iinfo(np.int64).min], np.int64)
    wide = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64, endpoint=True)
    small = rng.integers(-1000, 1000, n, dtype=np.int64)
    return np.concatenate([edges, wide, small])


def test_int64_on_the_gpu_keeps_64_bits():
    a = _int64_samples(200, 0)[:396]  # 396 = 36 * 11
    b = np.roll(_int64_samples(200, 1), 7)[:396]
    ga, gb = bp.tensor(a, device="gpu"), bp.tensor(b, device="gpu")
    assert (bp.tensor([2**30]).to("gpu") * 4).item() == 2**32
    with np.errstate(over="ignore"):
        cases = {
            "add": (ga + gb, a + b), "sub": (ga - gb, a - b), "mul": (ga * gb, a * b), "neg": (-ga, -a),
            "abs": (ga.abs(), np.abs(a)), "sign": (ga.sign(), np.sign(a)),
            "maximum": (ga.maximum(gb), np.maximum(a, b)), "minimum": (ga.minimum(gb), np.minimum(a, b)),
            "and": (ga & gb, a & b), "or": (ga | gb, a | b), "xor": (ga ^ gb, a ^ b), "not": (~ga, ~a),
            "relu": (ga.relu(), np.maximum(a, 0)),
            "lt": (ga < gb, a < b), "le": (ga <= gb, a <= b), "eq": (ga == ga, a == a), "ne": (ga != gb, a != b),
            "sum": (ga.sum(), a.sum()), "sum dim": (ga.reshape(-1, 11).sum(1), a.reshape(-1, 11).sum(1)),
            "amax": (ga.amax(), a.max()), "amin": (ga.reshape(-1, 11).amin(0), a.reshape(-1, 11).min(0)),
            "argmax": (ga.argmax(), a.argmax()), "argmin": (ga.reshape(11, -1).argmin(1), a.reshape(11, -1).argmin(1)),
            "to float": (ga.float(), a.astype(np.float32)), "to bool": (ga.bool(), a.astype(bool)),
            "gather": (ga[bp.tensor([5, 0, 395], device="gpu")], a[[5, 0, 395]]),
            "matmul": (ga[:36].reshape(6, 6) @ gb[:36].reshape(6, 6), a[:36].reshape(6, 6) @ b[:36].reshape(6, 6)),
        }
    for name, (got, want) in cases.items():
        np.testing.assert_array_equal(got.numpy(), want, err_msg=name)
    # small-exponent powers wrap like the CPU's wrapping_pow
    p = np.array([0, 1, 2, 3, 5], np.int64)
    np.testing.assert_array_equal((bp.tensor(a[:5], device="gpu") ** bp.tensor(p, device="gpu")).numpy(),
                                  (bp.tensor(a[:5]) ** bp.tensor(p)).numpy())
    # float32 -> int64 of unrepresentable values: INT64_MIN on both devices (x86's rule)
    f = bp.tensor([float("nan"), float("inf"), -3e20, 2.5e9, -7.9, 1.0e18])
    assert f.to("gpu").long().tolist() == f.long().tolist()
    # int64 -> float32 rounds once, like the CPU
    np.testing.assert_array_equal(ga.float().numpy(), bp.tensor(a).float().numpy())
    # scatter_add of int64 carries between the two words
    idx = bp.tensor([0, 0, 1, 0], device="gpu")
    src = bp.tensor([2**32 - 1, 1, 5, 2**33], device="gpu")
    assert bp.zeros(2, dtype=bp.int64, device="gpu").scatter_add(0, idx, src).tolist() == [2**32 + 2**33, 5]


def test_a_tensor_beyond_the_binding_limit_is_a_typed_error():
    limit = bp.gpu.adapter_info()["limits"]["max_storage_buffer_binding_size"]
    n = limit // 4 + 1
    with pytest.raises(RuntimeError, match="largest storage buffer binding"):
        bp.zeros(n, device="gpu")


def test_mixing_devices_names_both():
    a = bp.ones(3)
    b = bp.ones(3, device="gpu")
    for op in (lambda: a + b, lambda: b * a, lambda: a @ b, lambda: bp.where(a > 0, a, b)):
        with pytest.raises(RuntimeError) as e:
            op()
        msg = str(e.value)
        assert "cpu" in msg and "gpu" in msg, msg


def test_gpu_module():
    info = bp.gpu.adapter_info()
    assert isinstance(info["name"], str) and info["name"]
    assert info["backend"] in {"vulkan", "metal", "dx12", "gl", "browserwebgpu"}
    assert info["limits"]["max_compute_workgroups_per_dimension"] >= 65535
    assert info["limits"]["max_storage_buffer_binding_size"] >= 128 << 20
    assert bp.gpu.device_count() == 1
    y = bp.randn(100, 100, device="gpu") @ bp.randn(100, 100, device="gpu")
    bp.gpu.synchronize()
    assert y.shape == (100, 100)


def mlp_train(device, steps, data):
    x_np, y_np, params_np = data
    params = [bp.tensor(p, device=device, requires_grad=True) for p in params_np]
    x = bp.tensor(x_np, device=device)
    y = bp.tensor(y_np, device=device)
    losses = []
    for _ in range(steps):
        w1, b1, w2, b2 = params
        h = F.gelu(x @ w1 + b1)
        loss = F.cross_entropy(h @ w2 + b2, y)
        loss.backward()
        with bp.no_grad():
            for p in params:
                p -= 0.5 * p.grad
                p.grad = None
        losses.append(loss.item())
    return losses, [p.detach().to("cpu").numpy() for p in params]


def test_mlp_training_on_gpu_matches_cpu():
    rng = np.random.default_rng(7)
    data = (
        rng.normal(size=(64, 10)).astype(np.float32),
        rng.integers(0, 3, size=64).astype(np.int64),
        [(rng.normal(size=(10, 16)) * 0.3).astype(np.float32), np.zeros(16, np.float32),
         (rng.normal(size=(16, 3)) * 0.3).astype(np.float32), np.zeros(3, np.float32)],
    )
    lc, pc = mlp_train("cpu", 5, data)
    lg, pg = mlp_train("gpu", 5, data)
    np.testing.assert_allclose(lg, lc, **RED)
    assert lc[-1] < lc[0], "the loss should fall"
    for k, (c, g) in enumerate(zip(pc, pg)):
        assert_close(f"parameter {k} after training", c, g, RED)


def test_a_training_step_allocates_nothing_after_warm_up():
    bp.gpu.empty_cache()  # as in test_mlp_adam_step_cost_after_warm_up
    rng = np.random.default_rng(8)
    w = bp.tensor(rng.normal(size=(32, 8)).astype(np.float32), device="gpu", requires_grad=True)
    x = bp.tensor(rng.normal(size=(16, 32)).astype(np.float32), device="gpu")
    y = bp.tensor(rng.integers(0, 8, size=16), device="gpu")
    counts, steps = [], []
    for _ in range(6):
        before = bp.gpu.counters()
        loss = F.cross_entropy((x @ w).relu(), y)
        loss.backward()
        with bp.no_grad():
            w -= 0.1 * w.grad
            w.grad = None
        loss.item()
        counts.append(bp._core._gpu_buffers_created())
        steps.append(step_cost(before))
    assert counts[2] == counts[5], f"device buffers created after warm-up: {counts}"
    # the bind-group cache serves every dispatch once the pool hands out the same buffers
    assert [s["bind_groups_created"] for s in steps[4:]] == [0, 0], steps
    assert steps[4] == steps[5], f"steps after warm-up differ: {steps[4:]}"


def step_cost(before):
    after = bp.gpu.counters()
    return {k: after[k] - before[k] for k in after}


def test_counters_count_the_work():
    before = bp.gpu.counters()
    assert set(before) == {"submits", "dispatches", "compute_passes", "bind_groups_created", "buffers_created", "uploads", "readbacks"}
    a = bp.tensor(np.ones(10, np.float32), device="gpu")
    b = (a + a).relu()
    b.to("cpu").numpy()
    c = step_cost(before)
    assert c["uploads"] == 1 and c["dispatches"] == 2 and c["readbacks"] == 1 and c["submits"] >= 1, c


def test_mlp_adam_step_cost_after_warm_up():
    """What one step of an MLP trained with Adam costs the host on the GPU, counted (the same on
    every adapter, unlike timings). Printed with -s; asserted: nothing created after warm-up,
    the optimizer's one dispatch per parameter, and at most three waits per step (the loss, and
    the index checks of cross-entropy's gather forward and backward)."""
    # start from an empty pool and bind-group cache. A full CI run once saw one new bind group per
    # step after warm-up (not reproduced alone, by file or over the first half of the suite); the
    # likely cause: free buffers of these sizes left by earlier
    # tests in the process can make the pool hand out a different buffer each step for more
    # steps than the warm-up
    bp.gpu.empty_cache()
    rng = np.random.default_rng(9)
    bp.manual_seed(0)
    model = bp.nn.Sequential(bp.nn.Linear(20, 32), bp.nn.ReLU(), bp.nn.Linear(32, 5)).to("gpu")
    params = list(model.parameters())
    opt = bp.optim.Adam(params, lr=1e-2)
    x = bp.tensor(rng.normal(size=(64, 20)).astype(np.float32), device="gpu")
    y = bp.tensor(rng.integers(0, 5, size=64), device="gpu")
    steps, opt_steps = [], []
    for _ in range(8):
        before = bp.gpu.counters()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        before_opt = bp.gpu.counters()
        opt.step()
        opt_steps.append(step_cost(before_opt))
        loss.item()
        steps.append(step_cost(before))
    for i, (s, o) in enumerate(zip(steps, opt_steps)):
        print(f"step {i}: {s}; optimizer: {o}")
    for s, o in zip(steps[5:], opt_steps[5:]):
        assert s == steps[5], f"steps after warm-up differ: {steps[5:]}"
        assert s["buffers_created"] == 0 and s["bind_groups_created"] == 0, s
        assert s["compute_passes"] <= s["submits"] + 1, s
        assert s["readbacks"] <= 3 and s["submits"] <= 3, s
        assert (o["dispatches"], o["submits"], o["readbacks"]) == (len(params), 0, 0), o


# Dispatches of one steady-state step of the two GPU workloads, today (the GPU-efficiency
# issue measured 58 for the MLP; the constant cache took it to 46 and the fused softmax backward
# to 43; the target is half of 58, which
# needs elementwise fusion). A change that adds dispatches fails here and has to say why.
STEP_DISPATCHES = {"mlp_adam_b64": 43, "lenet_sgd_momentum_b64": 82}


@pytest.mark.parametrize("workload", sorted(STEP_DISPATCHES))
def test_training_step_host_cost_after_warm_up(workload):
    """The GPU-efficiency issue's counter targets for a whole step including the wait the user
    asks for: nothing created (buffers, bind groups) once warm, one submission, and no readback
    but the synchronisation's own (the bounds checks of cross-entropy's gather write a device-side
    flag that the synchronisation reads, instead of waiting inside the step)."""
    from backprop_rs import models

    bp.gpu.empty_cache()  # as in test_mlp_adam_step_cost_after_warm_up
    bp.manual_seed(0)
    if workload == "mlp_adam_b64":
        net = bp.nn.Sequential(bp.nn.Linear(784, 256), bp.nn.ReLU(), bp.nn.Linear(256, 128), bp.nn.ReLU(),
                               bp.nn.Linear(128, 10)).to("gpu")
        opt = bp.optim.Adam(net.parameters(), lr=1e-3)
        x = bp.randn(64, 784).to("gpu")
    else:
        net = models.LeNet5().to("gpu")
        opt = bp.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = bp.randn(64, 1, 8, 8).to("gpu")
    y = bp.randint(0, 10, (64,)).to("gpu")
    steps = []
    for _ in range(9):
        bp.gpu.synchronize()
        before = bp.gpu.counters()
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
        bp.gpu.synchronize()
        steps.append(step_cost(before))
    warm = steps[6:]
    for s in warm:
        assert s == warm[0], f"steps after warm-up differ: {warm}"
        assert s["buffers_created"] == 0 and s["bind_groups_created"] == 0, s
        assert s["submits"] == 1 and s["readbacks"] == 1 and s["uploads"] == 0, s
    assert warm[0]["dispatches"] <= STEP_DISPATCHES[workload], warm[0]


OPTIMIZERS = {
    "sgd": lambda ps: bp.optim.SGD(ps, lr=0.05, weight_decay=1e-2),
    "sgd_momentum_dampening_maximize": lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, maximize=True),
    "sgd_nesterov": lambda ps: bp.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": lambda ps: bp.optim.Adam(ps, lr=1e-2),
    "adam_l2_amsgrad": lambda ps: bp.optim.Adam(ps, lr=1e-2, weight_decay=1e-2, amsgrad=True),
    "adamw": lambda ps: bp.optim.AdamW(ps, lr=1e-2),
    "adamw_amsgrad_maximize": lambda ps: bp.optim.AdamW(ps, lr=1e-2, amsgrad=True, maximize=True),
    "rmsprop": lambda ps: bp.optim.RMSprop(ps, lr=1e-2),
    "rmsprop_centered": lambda ps: bp.optim.RMSprop(ps, lr=1e-2, centered=True),
    "rmsprop_centered_momentum_weight_decay": lambda ps: bp.optim.RMSprop(ps, lr=1e-2, momentum=0.9, centered=True, weight_decay=1e-2),
    "adagrad": lambda ps: bp.optim.Adagrad(ps, lr=0.1, lr_decay=0.01, weight_decay=1e-2),
}


def _optimize(name, device, init, grads):
    ps = [bp.tensor(a, device=device, requires_grad=True) for a in init]
    opt = OPTIMIZERS[name](ps)
    dispatches = []
    for step_grads in grads:
        for p, g in zip(ps, step_grads):
            p.grad = bp.tensor(g, device=device)
        before = bp.gpu.counters()["dispatches"]
        opt.step()
        dispatches.append(bp.gpu.counters()["dispatches"] - before)
    state = [{k: v.detach().to("cpu").numpy() for k, v in opt.state[p].items() if isinstance(v, bp.Tensor)} for p in ps]
    return [p.detach().to("cpu").numpy() for p in ps], state, dispatches


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_on_gpu_matches_cpu_with_one_dispatch_per_parameter(name):
    """bp.optim on GPU parameters: 20 steps against the same optimizer on the CPU (parameters
    and every state tensor), and each GPU step after the first (which creates the state) is one
    fused dispatch per parameter."""
    rng = np.random.default_rng(11)
    shapes = [(7, 5), (5,), (300,), (1,)]
    init = [rng.normal(size=s).astype(np.float32) for s in shapes]
    grads = [[rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(20)]
    pc, sc, _ = _optimize(name, "cpu", init, grads)
    pg, sg, dispatches = _optimize(name, "gpu", init, grads)
    for k, (c, g) in enumerate(zip(pc, pg)):
        assert_close(f"{name}: parameter {k} after 20 steps", c, g, EW)
    for k, (c, g) in enumerate(zip(sc, sg)):
        assert c.keys() == g.keys(), (c.keys(), g.keys())
        for key in c:
            assert_close(f"{name}: state {key} of parameter {k} after 20 steps", c[key], g[key], EW)
    assert dispatches[1:] == [len(shapes)] * 19, f"dispatches per GPU step: {dispatches}"


CONV = {
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [(2, 3, 9, 8), (4, 3, 3, 3), (4,)]),
    "conv2d_same_groups": (lambda x, w: F.conv2d(x, w, None, padding="same", groups=2), [(1, 4, 7, 6), (6, 2, 2, 3)]),
    "conv2d_stride_dilation": (lambda x, w: F.conv2d(x, w, None, stride=2, dilation=(1, 2)), [(2, 2, 11, 10), (3, 2, 3, 3)]),
    "conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, None, stride=2, padding=1, output_padding=1), [(1, 3, 5, 4), (3, 2, 3, 3)]),
    "max_pool2d": (lambda x: F.max_pool2d(x, 2), [(2, 3, 8, 6)]),
    "max_pool2d_pad": (lambda x: F.max_pool2d(x, 3, 2, 1), [(1, 2, 9, 7)]),
    "avg_pool2d": (lambda x: F.avg_pool2d(x, 2, 1), [(2, 3, 5, 6)]),
    "max_pool2d_ceil": (lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True), [(1, 2, 8, 7)]),
    "avg_pool2d_ceil_exclude_pad": (lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False), [(1, 2, 8, 7)]),
    "adaptive_avg_pool2d": (lambda x: F.adaptive_avg_pool2d(x, (3, 2)), [(2, 2, 7, 5)]),
    "unfold": (lambda x: F.unfold(x, (2, 3), padding=1, stride=(2, 1)), [(2, 3, 6, 5)]),
    "fold": (lambda c: F.fold(c, (5, 6), (2, 2), stride=1), [(2, 3 * 4, 4 * 5)]),
    "pad_reflect": (lambda x: F.pad(x, (1, 2, 2, 1), mode="reflect"), [(1, 2, 5, 6)]),
    "batch_norm2d": (lambda x: F.batch_norm(x, None, None, training=True), [(4, 3, 5, 5)]),
}


@pytest.mark.parametrize("name", sorted(CONV))
def test_convolution_family(name):
    fn, shapes = CONV[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    check(name, fn, [rng.normal(size=s).astype(np.float32) for s in shapes], RED)


def test_max_pool_indices_match():
    x = np.random.default_rng(3).normal(size=(2, 3, 6, 6)).astype(np.float32)
    _, ic = F.max_pool2d(bp.tensor(x), 2, return_indices=True)
    _, ig = F.max_pool2d(bp.tensor(x, device="gpu"), 2, return_indices=True)
    np.testing.assert_array_equal(ic.numpy(), ig.cpu().numpy())


def _digits_accuracy(device, epochs=3):
    from backprop_rs import models
    from backprop_rs.train import accuracy, fit

    bp.manual_seed(0)
    d = bp.data.load_digits()
    xtr, ytr, xte, yte = (t.to(device) for t in d)
    model = models.mlp(64, [64], 10).to(device)
    opt = bp.optim.Adam(model.parameters(), lr=3e-3)
    fit(model, opt, bp.nn.CrossEntropyLoss(), bp.data.TensorDataset(xtr, ytr), mode="minibatch", epochs=epochs, batch_size=64, seed=0, progress=False)
    assert all(p.device == bp.device(device) for p in model.parameters())
    return accuracy(model, xte, yte)


def test_mlp_on_digits_reaches_the_cpu_accuracy_on_the_gpu():
    cpu, gpu = _digits_accuracy("cpu"), _digits_accuracy("gpu")
    assert cpu > 0.85
    assert abs(cpu - gpu) <= 2 / 360, (cpu, gpu)  # same run up to float rounding: at most 2 test images apart


def test_cli_trains_on_the_gpu(tmp_path):
    import re
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "backprop_rs", "train", "--device", "gpu", "--epochs", "2", "--quiet", "--out", str(tmp_path / "g.safetensors")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert float(re.search(r"test_acc=([0-9.]+)", r.stdout).group(1)) > 0.5


def test_device_constants_made_under_inference_mode_do_not_leak_into_training():
    # the device-constant cache must not hand a constant made inside inference_mode (an
    # inference tensor, which autograd refuses to save) to a later differentiated op
    x = bp.tensor(np.arange(4, dtype=np.float32), device="gpu")
    with bp.inference_mode():
        (x * 3.25 + 1.5).to("cpu")
    w = bp.tensor(np.ones(4, np.float32), device="gpu", requires_grad=True)
    loss = (w * 3.25 + 1.5).relu().sum()
    loss.backward()
    np.testing.assert_allclose(w.grad.to("cpu").numpy(), np.full(4, 3.25, np.float32))
    # and constants cached outside it stay usable inside it
    with bp.inference_mode():
        assert float((w.detach() * 3.25).sum().item()) == 13.0
