"""zeta (Hurwitz) and polygamma of every order against mpmath at 40 digits: an independent
arbitrary-precision reference (mpmath's zeta drifts for large q, so there the reference is
mpmath's own sum of the series' first 2*10^4 terms plus its Euler-Maclaurin tail)."""

import mpmath as mp
import numpy as np
import pytest

import backprop_rs as bp

mp.mp.dps = 40


def _ref_zeta(s: float, q: float) -> float:
    if q <= 20:
        return float(mp.zeta(s, q))
    n = 20_000
    a = mp.mpf(q) + n
    head = mp.fsum(mp.power(mp.mpf(q) + k, -s) for k in range(n))
    return float(head + a ** (1 - s) / (s - 1) + a ** -s / 2 + s * a ** (-s - 1) / 12)


@pytest.mark.parametrize("s", [1.0001, 1.5, 2.0, 3.0, 5.5, 10.0, 30.0])
def test_zeta_matches_mpmath(s):
    qs = [1e-8, 1e-3, 0.3, 1.0, 2.5, 9.99, 10.0, 37.3, 1e3]
    got = bp.special.zeta(bp.tensor(s, dtype=bp.float64), bp.tensor(qs, dtype=bp.float64)).numpy()
    want = np.array([_ref_zeta(s, q) for q in qs])
    np.testing.assert_allclose(got, want, rtol=2e-14, atol=0)


def test_zeta_domain_follows_pytorch():
    s = bp.tensor([1.0, 0.5, 2.0, 2.0, 2.5, 2.0, float("nan")])
    q = bp.tensor([1.0, 1.0, 0.0, -2.0, -1.5, -1.5, 1.0])
    got = bp.special.zeta(s, q).tolist()
    assert got[:4] == [float("inf"), pytest.approx(float("nan"), nan_ok=True), float("inf"), float("inf")]
    assert np.isnan(got[1]) and np.isnan(got[4]) and np.isnan(got[6])
    # integer s with a negative non-integer q is real: sum over (q + k)^-2
    assert got[5] == pytest.approx(float(mp.zeta(2, -1.5)), rel=1e-6)


def test_zeta_broadcasts_takes_numbers_and_keeps_dtype():
    q = bp.tensor([[1.0], [2.0]])
    r = bp.special.zeta(bp.tensor([2.0, 3.0, 4.0]), q)
    assert r.shape == (2, 3) and r.dtype == bp.float32
    want = [[float(mp.zeta(s, qq)) for s in (2, 3, 4)] for qq in (1, 2)]
    np.testing.assert_allclose(r.numpy(), want, rtol=1e-6)
    assert bp.special.zeta(2.0, bp.tensor([1.0], dtype=bp.float64)).dtype == bp.float64
    with pytest.raises(TypeError, match="Tensor"):
        bp.special.zeta(2.0, 1.0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6])
def test_polygamma_every_order(n):
    xs = [1e-3, 0.1, 0.7, 1.0, 3.3, 12.5, 50.0, 1e4]
    got = bp.polygamma(n, bp.tensor(xs, dtype=bp.float64)).numpy()
    np.testing.assert_allclose(got, [float(mp.polygamma(n, x)) for x in xs], rtol=1e-13)
    # left of 0 the head of the series cancels (as in Cephes): a few digits go
    neg = [-2.5, -0.3, -7.75]
    np.testing.assert_allclose(bp.polygamma(n, bp.tensor(neg, dtype=bp.float64)).numpy(),
                               [float(mp.polygamma(n, x)) for x in neg], rtol=1e-10)
    assert bp.tensor([1.5]).polygamma(n).dtype == bp.float32


def test_polygamma_poles_signs_as_pytorch():
    # (-1)^(n+1) n! zeta(n+1, x): zeta is +inf at the poles
    assert bp.polygamma(2, bp.tensor([0.0, -1.0])).tolist() == [float("-inf")] * 2
    assert bp.polygamma(3, bp.tensor([0.0])).tolist() == [float("inf")]
    assert bp.special.polygamma(2, bp.tensor([2])).dtype == bp.float32  # integer input: default float


def test_polygamma_gradients_are_the_next_order():
    xs = [0.7, 2.0, 5.5]
    x = bp.tensor(xs, dtype=bp.float64, requires_grad=True)
    bp.polygamma(1, x).sum().backward()  # trigamma's derivative: the engine has no kernel, the host does
    np.testing.assert_allclose(x.grad.numpy(), [float(mp.polygamma(2, v)) for v in xs], rtol=1e-13)
    x = bp.tensor(xs, dtype=bp.float64, requires_grad=True)
    (g,) = bp.autograd.grad(bp.polygamma(3, x).sum(), x, create_graph=True)
    (g2,) = bp.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g.detach().numpy(), [float(mp.polygamma(4, v)) for v in xs], rtol=1e-13)
    np.testing.assert_allclose(g2.numpy(), [float(mp.polygamma(5, v)) for v in xs], rtol=1e-13)


def test_zeta_gradient_in_q_and_not_in_s():
    s = bp.tensor([2.0, 3.5], dtype=bp.float64)
    q = bp.tensor([0.8, 4.0], dtype=bp.float64, requires_grad=True)
    bp.special.zeta(s, q).sum().backward()
    fd = [float(mp.diff(lambda t, ss=ss: mp.zeta(ss, t), qq)) for ss, qq in zip([2.0, 3.5], [0.8, 4.0])]
    np.testing.assert_allclose(q.grad.numpy(), fd, rtol=1e-12)
    s2 = bp.tensor([2.0], dtype=bp.float64, requires_grad=True)
    with pytest.raises(NotImplementedError, match="first argument"):
        bp.special.zeta(s2, bp.tensor([1.0], dtype=bp.float64)).sum().backward()
