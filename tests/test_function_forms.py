"""PyTorch's top-level function forms and the composite methods of backprop_rs/_functions.py
(bp.add/sub/mul/div with alpha, rounding_mode and out=, //, dot, mv, addcmul, addcdiv, rsub),
against NumPy and Python's own floor division; gradients by gradcheck."""

import itertools

import numpy as np
import pytest

import backprop_rs as bp


def test_arithmetic_forms():
    a, b = bp.tensor([1.0, -2.0, 3.5]), bp.tensor([0.5, 4.0, -1.0])
    an, bn = a.numpy(), b.numpy()
    np.testing.assert_allclose(bp.add(a, b, alpha=2).numpy(), an + 2 * bn)
    np.testing.assert_allclose(bp.sub(a, b, alpha=3).numpy(), an - 3 * bn)
    np.testing.assert_allclose(bp.mul(a, b).numpy(), an * bn)
    np.testing.assert_allclose(bp.mul(2.0, b).numpy(), 2 * bn)
    np.testing.assert_allclose(bp.div(a, b).numpy(), an / bn)
    np.testing.assert_allclose(bp.true_divide(a, 2).numpy(), an / 2)
    np.testing.assert_allclose(bp.multiply(a, b).numpy(), an * bn)
    np.testing.assert_allclose(bp.subtract(a, b).numpy(), an - bn)
    np.testing.assert_allclose(bp.divide(a, b).numpy(), an / bn)
    np.testing.assert_allclose(bp.rsub(a, 1.0, alpha=2).numpy(), 1.0 - 2 * an)
    np.testing.assert_allclose(a.rsub(b).numpy(), bn - an)
    np.testing.assert_allclose(bp.negative(a).numpy(), -an)
    np.testing.assert_allclose(bp.add(1.0, b).numpy(), 1.0 + bn)
    c = bp.clone(a)
    assert c is not a and np.array_equal(c.numpy(), an)
    assert not bp.detach(bp.ones(1, requires_grad=True) * 2).requires_grad


def test_out_argument():
    a, b = bp.tensor([1.0, 2.0]), bp.tensor([3.0, 4.0])
    out = bp.empty(2)
    assert bp.add(a, b, out=out) is out and out.numpy().tolist() == [4.0, 6.0]
    bp.mul(a, b, out=out)
    assert out.numpy().tolist() == [3.0, 8.0]
    with pytest.raises(RuntimeError, match="does not resize"):
        bp.add(a, b, out=bp.empty(3))
    with pytest.raises(RuntimeError, match="don't support automatic differentiation"):
        bp.add(bp.ones(2, requires_grad=True), b, out=out)


def test_floor_and_trunc_division_of_integers_is_exact():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-2**62, 2**62, 500), rng.integers(-50, 50, 500), [7, -7, 0, 2**63 - 1]])
    b = np.concatenate([rng.integers(-2**40, 2**40, 500), rng.integers(-9, 9, 500), [-2, 2, 3, 7]])
    b[b == 0] = 1
    A, B = bp.tensor(a), bp.tensor(b)
    floor = a // b
    np.testing.assert_array_equal((A // B).numpy(), floor)
    np.testing.assert_array_equal(bp.floor_divide(A, B).numpy(), floor)
    np.testing.assert_array_equal(bp.div(A, B, rounding_mode="floor").numpy(), floor)
    trunc = floor + ((a % b != 0) & ((a < 0) != (b < 0)))
    np.testing.assert_array_equal(bp.div(A, B, rounding_mode="trunc").numpy(), trunc)
    assert (A // B).dtype == bp.int64
    assert (7 // bp.tensor([2, -3])).numpy().tolist() == [3, -3]
    assert (bp.tensor([7, -7]) // 2).numpy().tolist() == [3, -4]
    x = bp.tensor([9, -10])
    x //= 4
    assert x.numpy().tolist() == [2, -3]
    with pytest.raises(ZeroDivisionError):
        bp.tensor([1]) // 0
    with pytest.raises(ValueError, match="rounding_mode"):
        bp.div(A, B, rounding_mode="round")


def test_floor_division_of_floats_matches_python():
    vals = [-2.5, -0.5, 0.0, 0.5, 2.7, 3.0, -3.0, float("nan"), float("inf"), -float("inf"), 7.0]
    for x, y in itertools.product(vals, vals):
        if y == 0:
            continue
        got = (bp.tensor([x], dtype=bp.float64) // bp.tensor([y], dtype=bp.float64)).item()
        want = x // y
        assert got == want or (got != got and want != want), (x, y, got, want)
        t = bp.div(bp.tensor([x], dtype=bp.float64), y, rounding_mode="trunc").item()
        with np.errstate(invalid="ignore"):
            w = float(np.trunc(np.float64(x) / y))
        assert t == w or (t != t and w != w), (x, y, t, w)
    big = bp.tensor([1e20, -3e9], dtype=bp.float32)
    np.testing.assert_array_equal((big // 1.0).numpy(), big.numpy())  # integral already: unchanged


def test_composites_and_their_gradients():
    a, b = bp.tensor([1.0, 2.0, 3.0]), bp.tensor([4.0, -5.0, 6.0])
    assert bp.dot(a, b).item() == 12.0 and a.dot(b).item() == 12.0 and bp.vdot(a, b).item() == 12.0
    m = bp.tensor([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])
    np.testing.assert_allclose(bp.mv(m, a).numpy(), m.numpy() @ a.numpy())
    np.testing.assert_allclose(bp.addcmul(a, a, b, value=0.5).numpy(), a.numpy() + 0.5 * a.numpy() * b.numpy())
    np.testing.assert_allclose(a.addcdiv(a, b, value=2).numpy(), a.numpy() + 2 * a.numpy() / b.numpy(), rtol=1e-6)
    c = a.clone()
    c.addcmul_(a, b, value=2)
    np.testing.assert_allclose(c.numpy(), a.numpy() + 2 * a.numpy() * b.numpy())
    c = a.clone()
    c.addcdiv_(a, b)
    np.testing.assert_allclose(c.numpy(), a.numpy() + a.numpy() / b.numpy(), rtol=1e-6)
    with pytest.raises(RuntimeError, match="1D tensors expected"):
        bp.dot(m, a)
    with pytest.raises(RuntimeError, match="inconsistent tensor size"):
        bp.dot(a, bp.ones(2))

    def f64(*shape):
        return bp.randn(*shape, dtype=bp.float64, requires_grad=True)

    x, y, z, v, w = f64(3), f64(3), f64(3), f64(2, 3), f64(3)
    assert bp.autograd.gradcheck(lambda x, y, z: bp.addcmul(x, y, z, value=0.3), (x, y, z))
    assert bp.autograd.gradcheck(lambda x, y: bp.addcdiv(x, y, z.detach() + 3.0, value=-2), (x, y))
    assert bp.autograd.gradcheck(lambda v, w: bp.mv(v, w), (v, w))
    assert bp.autograd.gradcheck(lambda x, y: bp.dot(x, y), (x, y))
    assert bp.autograd.gradcheck(lambda x, y: bp.add(x, y, alpha=2.5), (x, y))
    assert bp.autograd.gradcheck(lambda x: bp.rsub(x, 1.0, alpha=3), (x,))
