"""CorrCholeskyTransform, CatTransform and StackTransform (values, inverses, log-dets against
numerical Jacobians in float64, the biject_to registry), ExponentialFamily's autograd entropy and
OneHotCategoricalStraightThrough's gradient."""

import math

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions
T = bp.distributions.transforms
C = bp.distributions.constraints


def _jacobian(f, v, h=1e-6):
    cols = []
    for k in range(v.size):
        e = np.zeros_like(v)
        e[k] = h
        cols.append((f(v + e) - f(v - e)) / (2 * h))
    return np.stack(cols, axis=-1)


@pytest.mark.parametrize("d", [2, 3, 5])
def test_corr_cholesky_transform(d):
    t = T.CorrCholeskyTransform()
    n = d * (d - 1) // 2
    x = bp.tensor(np.random.default_rng(d).standard_normal((3, n)))
    y = t(x)
    assert y.shape == (3, d, d) and bool(C.corr_cholesky.check(y).all())
    c = (y @ y.mT).numpy()
    np.testing.assert_allclose(np.diagonal(c, axis1=1, axis2=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(t.inv(y).numpy(), x.numpy(), atol=1e-10)
    rows, cols = np.tril_indices(d, -1)
    for b in range(3):
        jac = _jacobian(lambda v: t(bp.tensor(v)).numpy()[rows, cols], x.numpy()[b])
        assert t.log_abs_det_jacobian(x, y).numpy()[b] == pytest.approx(np.linalg.slogdet(jac)[1], abs=1e-6)
    assert t.forward_shape((4, n)) == (4, d, d) and t.inverse_shape((4, d, d)) == (4, n)
    assert isinstance(T.biject_to(C.corr_cholesky), T.CorrCholeskyTransform)
    with pytest.raises(ValueError, match="flattend lower-diagonal"):
        t.forward_shape((4,))


def test_corr_cholesky_transform_with_lkj_is_a_density_on_the_reals():
    # x -> L = t(x); p(x) = LKJ(L) |dL/dx|: for dim 2 that is a density on the line, integrating to 1
    t, lkj = T.CorrCholeskyTransform(), D.LKJCholesky(2, 2.5)
    x = np.linspace(-12, 12, 200_001)
    xs = bp.tensor(x.reshape(-1, 1))
    y = t(xs)
    dens = np.exp((lkj.log_prob(y) + t.log_abs_det_jacobian(xs, y)).numpy())
    assert float(np.trapezoid(dens, x)) == pytest.approx(1.0, abs=1e-6)


def test_cat_transform_pieces_inverse_and_log_det():
    ct = T.CatTransform([T.ExpTransform(), T.AffineTransform(1.0, 2.0), T.SigmoidTransform()], dim=1,
                        lengths=[2, 1, 2])
    x = bp.tensor(np.random.default_rng(0).standard_normal((4, 5)))
    xn = x.numpy()
    want = np.concatenate([np.exp(xn[:, :2]), 1 + 2 * xn[:, 2:3], 1 / (1 + np.exp(-xn[:, 3:]))], axis=1)
    y = ct(x)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(ct.inv(y).numpy(), xn, atol=1e-12)
    # elementwise transforms in the batch dim 1: the log-dets sit side by side
    ld = ct.log_abs_det_jacobian(x, y).numpy()
    diag = np.stack([np.diagonal(_jacobian(lambda v: ct(bp.tensor(v.reshape(1, 5))).numpy()[0], xn[b]))
                     for b in range(4)])
    np.testing.assert_allclose(ld, np.log(np.abs(diag)), atol=1e-6)
    assert bool(ct.codomain.check(y).all()) and ct.bijective and ct.length == 5
    with pytest.raises(ValueError, match="lengths sum to 5"):
        ct(bp.zeros(4, 3))
    b = T.biject_to(C.cat([C.positive, C.real], 0, [1, 2]))
    assert isinstance(b, T.CatTransform) and b(bp.tensor([0.0, -1.0, 2.0])).tolist() == [1.0, -1.0, 2.0]


def test_stack_transform_slices_and_event_dim_sum():
    st = T.StackTransform([T.ExpTransform(), T.TanhTransform()], dim=-1)
    x = bp.tensor(np.random.default_rng(1).standard_normal((3, 2)))
    y = st(x)
    np.testing.assert_allclose(y.numpy(), np.stack([np.exp(x.numpy()[:, 0]), np.tanh(x.numpy()[:, 1])], -1),
                               rtol=1e-12)
    np.testing.assert_allclose(st.inv(y).numpy(), x.numpy(), atol=1e-12)
    ld = st.log_abs_det_jacobian(x, y).numpy()
    np.testing.assert_allclose(ld[:, 0], x.numpy()[:, 0], rtol=1e-12)
    np.testing.assert_allclose(ld[:, 1], np.log(1 - np.tanh(x.numpy()[:, 1]) ** 2), rtol=1e-10)
    with pytest.raises(ValueError, match="2 transforms for 3 slices"):
        st(bp.zeros(2, 3))
    assert isinstance(T.transform_to(C.stack([C.positive, C.unit_interval], 0)), T.StackTransform)


class _Expo(D.ExponentialFamily):
    """Exponential(rate) as an exponential family: theta = -rate, F(theta) = -log(-theta), h = 1."""

    arg_constraints = {"rate": C.positive}

    def __init__(self, rate):
        self.rate = rate
        super().__init__(tuple(rate.shape))

    @property
    def _natural_params(self):
        return (-self.rate,)

    def _log_normalizer(self, theta):
        return -(-theta).log()

    @property
    def _mean_carrier_measure(self):
        return 0


def test_exponential_family_entropy_from_the_log_normaliser():
    rate = bp.tensor([0.5, 2.0, 7.0], dtype=bp.float64)
    np.testing.assert_allclose(_Expo(rate).entropy().detach().numpy(), 1 - np.log(rate.numpy()), rtol=1e-12)
    np.testing.assert_allclose(_Expo(rate).entropy().detach().numpy(), D.Exponential(rate).entropy().numpy(), rtol=1e-12)


def test_one_hot_straight_through_gradient_is_that_of_probs():
    bp.manual_seed(0)
    logits = bp.tensor([0.2, 1.0, -0.5], dtype=bp.float64, requires_grad=True)
    w = bp.tensor([1.0, 2.0, 3.0], dtype=bp.float64)
    d = D.OneHotCategoricalStraightThrough(logits=logits)
    s = d.rsample((5,))
    assert s.shape == (5, 3) and s.detach().sum(-1).tolist() == [1.0] * 5
    (s * w).sum().backward()
    p = np.exp(logits.detach().numpy()) / np.exp(logits.detach().numpy()).sum()
    # d/dlogits of 5 * (w . softmax(logits)) = 5 * p * (w - w . p)
    np.testing.assert_allclose(logits.grad.numpy(), 5 * p * (w.numpy() - w.numpy() @ p), rtol=1e-10)
    assert D.OneHotCategoricalStraightThrough.has_rsample and math.isclose(float(d.probs.sum()), 1.0)
