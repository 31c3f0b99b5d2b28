"""float16, bfloat16, int32, int16, int8 and uint8: storage dtypes whose arithmetic is computed
in float32 / int64 and rounded back (PyTorch's CPU semantics). References are NumPy's own float16
and narrow-int arithmetic, and an independent NumPy implementation of bfloat16 rounding."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp

F16 = np.float16
RNG = np.random.default_rng(7)


def f16_ref(f, *xs):
    """What a float16 op must give: computed in float32, rounded once to float16."""
    return f(*[x.astype(np.float32) for x in xs]).astype(F16)


def bf16_round(x32: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 -> float32 by hand: round to nearest even on the top 16 bits."""
    bits = np.ascontiguousarray(x32, np.float32).view(np.uint32).astype(np.uint64)
    bias = ((bits >> 16) & 1) + 0x7FFF
    out = (((bits + bias) >> 16) << 16).astype(np.uint32)
    return out.view(np.float32)


def ulps16(a: np.ndarray, b: np.ndarray) -> int:
    """The largest distance in float16 units in the last place (same-sign finite values)."""
    ia, ib = a.astype(F16).view(np.int16).astype(np.int64), b.astype(F16).view(np.int16).astype(np.int64)
    return int(np.abs(ia - ib).max(initial=0))


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_float16_arithmetic_is_numpys_rounded_float32(op):
    a = RNG.standard_normal((17, 33)).astype(F16)
    b = (RNG.standard_normal((17, 33)) + 3).astype(F16)
    f = getattr(np, {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide"}[op])
    got = getattr(bp.from_numpy(a), op)(bp.from_numpy(b))
    assert got.dtype == bp.float16
    np.testing.assert_array_equal(got.numpy(), f16_ref(f, a, b))
    # broadcasting and a strided view take the same path
    got_t = getattr(bp.from_numpy(a).T, op)(bp.from_numpy(b[0]).reshape(1, 33).T)
    np.testing.assert_array_equal(got_t.numpy(), f16_ref(f, a.T, b[0].reshape(1, 33).T))


@pytest.mark.parametrize("name", ["exp", "tanh", "sigmoid", "sqrt", "log", "relu", "abs", "neg"])
def test_float16_unary_within_one_ulp(name):
    a = (RNG.random(500) * 4 + 0.01).astype(F16)
    ref32 = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "sqrt": np.sqrt,
             "log": np.log, "relu": lambda x: np.maximum(x, 0), "abs": np.abs, "neg": np.negative}[name]
    got = getattr(bp.from_numpy(a), name)()
    assert got.dtype == bp.float16
    # the float32 kernels differ from NumPy's by float32 ulps, which can flip one float16 rounding
    assert ulps16(got.numpy(), f16_ref(ref32, a)) <= 1


def test_float16_matmul_sum_softmax_accumulate_in_float32():
    a = RNG.standard_normal((24, 40)).astype(F16)
    b = RNG.standard_normal((40, 12)).astype(F16)
    mm = bp.from_numpy(a) @ bp.from_numpy(b)
    assert mm.dtype == bp.float16
    assert ulps16(mm.numpy(), f16_ref(np.matmul, a, b)) <= 1
    s = bp.from_numpy(a).sum(1)
    assert s.dtype == bp.float16 and ulps16(s.numpy(), a.astype(np.float32).sum(1).astype(F16)) <= 1
    sm = bp.from_numpy(a).softmax(-1)
    e = np.exp(a.astype(np.float32) - a.astype(np.float32).max(-1, keepdims=True))
    assert sm.dtype == bp.float16 and ulps16(sm.numpy(), (e / e.sum(-1, keepdims=True)).astype(F16)) <= 1
    # a float16 sum of many values does not overflow on the way (65504 is float16's max)
    big = np.full(4096, 60.0, F16)
    assert bp.from_numpy(big).mean().item() == 60.0


def test_bfloat16_rounding_matches_an_independent_implementation():
    x = np.concatenate([RNG.standard_normal(4000).astype(np.float32) * 1e3,
                        np.array([1.00390625, 1.01171875, -2.5, 3.0e38, 1e-40], np.float32)])
    t = bp.from_numpy(x).bfloat16()
    assert t.dtype == bp.bfloat16
    np.testing.assert_array_equal(t.float().numpy(), bf16_round(x))
    # arithmetic: computed in float32, rounded to bfloat16
    y = bf16_round(RNG.standard_normal(4005).astype(np.float32))
    got = (t * bp.from_numpy(y).bfloat16()).float().numpy()
    with np.errstate(over="ignore"):  # 3e38 * y overflows to inf in both
        want = bf16_round(bf16_round(x) * y)
    np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="BFloat16"):
        t.numpy()  # NumPy has no bfloat16, as PyTorch says


def test_narrow_ints_wrap_as_numpys():
    a = RNG.integers(-2**31, 2**31, 1000).astype(np.int32)
    b = RNG.integers(-2**31, 2**31, 1000).astype(np.int32)
    ta, tb = bp.from_numpy(a), bp.from_numpy(b)
    with np.errstate(over="ignore"):
        for got, want in ((ta + tb, a + b), (ta * tb, a * b), (ta - tb, a - b), (-ta, -a)):
            assert got.dtype == bp.int32
            np.testing.assert_array_equal(got.numpy(), want)
    u = np.arange(250, 256, dtype=np.uint8)
    np.testing.assert_array_equal((bp.from_numpy(u) + 10).numpy(), u + np.uint8(10))
    i8 = np.array([-128, 127, 5], np.int8)
    np.testing.assert_array_equal((bp.from_numpy(i8) * 3).numpy(), i8 * np.int8(3))
    np.testing.assert_array_equal((bp.from_numpy(i8) // 2).numpy(), i8 // np.int8(2))
    np.testing.assert_array_equal(bp.from_numpy(a).amax(0).numpy(), a.max())


def test_python_numbers_that_do_not_fit_raise_as_in_pytorch():
    u = bp.tensor([1, 2], dtype=bp.uint8)
    for bad in (lambda: u + 300, lambda: u * -1, lambda: u < 256, lambda: bp.ones(2).half() + 1e6,
                lambda: bp.ones(2, dtype=bp.int32) + 2**31):
        with pytest.raises(RuntimeError, match="without overflow"):
            bad()
    assert (u + 253).numpy().tolist() == [254, 255] and (bp.ones(1).half() * float("inf")).item() == float("inf")


def test_promotion_follows_pytorch():
    t = lambda d: bp.ones(2, dtype=d)  # noqa: E731
    assert (t(bp.uint8) + t(bp.int8)).dtype == bp.int16
    assert (t(bp.float16) + t(bp.bfloat16)).dtype == bp.float32
    assert (t(bp.int32) + t(bp.float16)).dtype == bp.float16
    assert (t(bp.int32) + t(bp.int64)).dtype == bp.int64
    assert (t(bp.uint8) + t(bp.bool)).dtype == bp.uint8
    assert (t(bp.int32) + 2).dtype == bp.int32 and (t(bp.int32) + 2.5).dtype == bp.float32
    assert (t(bp.float16) + 2.5).dtype == bp.float16
    # a 0-d tensor does not widen within a category
    assert (t(bp.float16) + bp.tensor(1.0)).dtype == bp.float16
    assert (t(bp.int8) + bp.tensor(300)).dtype == bp.int8
    # sums of ints are int64, integer true division is the default float, argmax is int64
    assert t(bp.int32).sum().dtype == bp.int64 and t(bp.uint8).sum().item() == 2
    assert (t(bp.int32) / 2).dtype == bp.float32
    assert t(bp.float16).argmax().dtype == bp.int64
    assert t(bp.int16).cumsum(0).dtype == bp.int64


def test_data_movement_runs_on_the_narrow_values():
    a = RNG.standard_normal((5, 6)).astype(F16)
    t = bp.from_numpy(a)
    np.testing.assert_array_equal(bp.cat([t, t[:2]]).numpy(), np.concatenate([a, a[:2]]))
    idx32 = np.array([4, 0, 2], np.int32)
    np.testing.assert_array_equal(t[bp.from_numpy(idx32)].numpy(), a[idx32])  # int32 indices, as PyTorch
    np.testing.assert_array_equal(t.index_select(1, bp.tensor([5, 1])).numpy(), a[:, [5, 1]])
    np.testing.assert_array_equal(t.gather(1, bp.tensor([[0], [1], [2], [3], [4]])).numpy(),
                                  np.take_along_axis(a, np.arange(5)[:, None], 1))
    np.testing.assert_array_equal(bp.where(t > 0, t, bp.zeros_like(t)).numpy(), np.where(a > 0, a, F16(0)))
    s, i = t.sort(1)
    np.testing.assert_array_equal(s.numpy(), np.sort(a, 1))
    np.testing.assert_array_equal(i.numpy(), np.argsort(a, 1, kind="stable"))
    c = t.clone()
    c[1:3] = 2.5
    a2 = a.copy()
    a2[1:3] = 2.5
    np.testing.assert_array_equal(c.numpy(), a2)
    c.add_(1)
    np.testing.assert_array_equal(c.numpy(), f16_ref(lambda x: x + 1, a2))
    assert "dtype=float16" in repr(t) and repr(bp.ones(2, dtype=bp.int32)) == "tensor([1, 1], dtype=int32)"


def test_float16_autograd_matches_float32_rounded():
    x32 = RNG.standard_normal((8, 5)).astype(np.float32)
    w32 = RNG.standard_normal((5, 3)).astype(np.float32)
    x16, w16 = x32.astype(F16), w32.astype(F16)
    w = bp.tensor(w16, requires_grad=True)
    loss = (bp.from_numpy(x16) @ w).tanh().sum()
    loss.backward()
    assert w.grad.dtype == bp.float16
    # reference: the same float16 values in float32 arithmetic (the rounding of the intermediate
    # products to float16 is within a few float16 ulps of it)
    wr = bp.tensor(w16.astype(np.float32), requires_grad=True)
    (bp.from_numpy(x16.astype(np.float32)) @ wr).tanh().sum().backward()
    np.testing.assert_allclose(w.grad.numpy().astype(np.float32), wr.grad.numpy(), rtol=1e-2, atol=1e-2)


def test_optimizers_step_float16_parameters():
    net = bp.nn.Linear(4, 3).half()
    x = bp.randn(6, 4).half()
    for opt_cls, kw in ((bp.optim.SGD, {"lr": 0.1, "momentum": 0.9}), (bp.optim.Adam, {"lr": 1e-2})):
        opt = opt_cls(net.parameters(), **kw)
        before = net.weight.detach().numpy().copy()
        opt.zero_grad()
        net(x).square().mean().backward()
        g = net.weight.grad.numpy().astype(np.float32)
        opt.step()
        assert net.weight.dtype == bp.float16
        after = net.weight.detach().numpy()
        if opt_cls is bp.optim.SGD:
            # first step: buf = g, p - lr * g, computed in float32 and rounded once
            np.testing.assert_array_equal(after, (before.astype(np.float32) - 0.1 * g).astype(F16))
        else:
            assert np.all(np.abs(after.astype(np.float32) - before.astype(np.float32)) <= 1.2e-2)
            assert np.any(after != before)


def test_safetensors_round_trips_and_reads_half_checkpoints(tmp_path):
    tensors = {
        "h": bp.from_numpy(RNG.standard_normal((3, 4)).astype(F16)),
        "b": bp.randn(5).bfloat16(),
        "i": bp.tensor([1, -2, 2**31 - 1], dtype=bp.int32),
        "s": bp.tensor([-3, 7], dtype=bp.int16),
        "c": bp.tensor([-128, 127], dtype=bp.int8),
        "u": bp.tensor([0, 255], dtype=bp.uint8),
    }
    p = tmp_path / "m.safetensors"
    bp.save(tensors, str(p))
    back = bp.load(str(p))
    for k, v in tensors.items():
        assert back[k].dtype == v.dtype, k
        assert bp.equal(back[k], v), k
    # a file written by hand, as other tools write F16: header + little-endian bytes
    import json
    import struct

    vals = np.array([0.5, -1.25, 65504.0, 6e-8], F16)
    header = json.dumps({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    q = tmp_path / "hand.safetensors"
    q.write_bytes(struct.pack("<Q", len(header)) + header + vals.tobytes())
    w = bp.load(str(q))["w"]
    assert w.dtype == bp.float16
    np.testing.assert_array_equal(w.numpy(), vals)


def test_half_cannot_be_the_default_dtype():
    with pytest.raises(TypeError, match="storage dtypes"):
        bp.set_default_dtype(bp.float16)
    assert bp.get_default_dtype() == bp.float32


def test_storage_dtypes_are_refused_on_the_gpu_with_a_clear_error():
    if not bp.gpu.is_available():
        pytest.skip("no GPU adapter (lavapipe runs this in CI)")
    with pytest.raises(Exception, match="float16 is CPU-only for now"):
        bp.ones(2, dtype=bp.float16).to("gpu")
    with pytest.raises(Exception, match="int32 is CPU-only"):
        bp.ones(2, dtype=bp.int32, device="gpu")
