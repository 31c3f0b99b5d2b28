"""``bp.distributions.constraints`` and ``transforms`` against independent references: every
bijection's inverse by the round trip, its ``log_abs_det_jacobian`` against the log-determinant
of a central-difference Jacobian of the forward map in float64 (NumPy's slogdet for the vector
maps), ``sign`` against the derivative's sign, and ``biject_to``/``transform_to`` by checking
that images of random reals satisfy the constraint."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp

D = bp.distributions
C = D.constraints
T = D.transforms
F64 = bp.float64


def npa(t):
    return t.detach().numpy()


def t64(a):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=F64)


def _fd_derivative(t, x, h=1e-6):
    return (npa(t(t64(x + h))) - npa(t(t64(x - h)))) / (2 * h)


ELEMENTWISE = {
    "exp": (lambda: T.ExpTransform(), np.linspace(-3, 3, 13)),
    "sigmoid": (lambda: T.SigmoidTransform(), np.linspace(-6, 6, 13)),
    "softplus": (lambda: T.SoftplusTransform(), np.linspace(-5, 5, 13)),
    "tanh": (lambda: T.TanhTransform(), np.linspace(-3, 3, 13)),
    "affine_scalar": (lambda: T.AffineTransform(1.5, -2.5), np.linspace(-3, 3, 7)),
    "affine_tensor": (lambda: T.AffineTransform(t64([0.5] * 7), t64(np.linspace(-2, 3, 7) + 0.01)),
                      np.linspace(-3, 3, 7)),
    "power": (lambda: T.PowerTransform(2.5), np.linspace(0.1, 4, 9)),
    "power_negative": (lambda: T.PowerTransform(t64(-0.7)), np.linspace(0.1, 4, 9)),
    "compose": (lambda: T.ComposeTransform([T.ExpTransform(), T.AffineTransform(-1.0, 3.0), T.SigmoidTransform()]),
                np.linspace(-2, 1, 9)),
    "inverse_sigmoid": (lambda: T.SigmoidTransform().inv, np.linspace(0.05, 0.95, 9)),
    "inverse_exp": (lambda: T.ExpTransform().inv, np.linspace(0.1, 5, 9)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_bijections_invert_and_match_the_numerical_log_det(name):
    make, x = ELEMENTWISE[name]
    t = make()
    assert t.bijective
    xt = t64(x)
    y = t(xt)
    np.testing.assert_allclose(npa(t.inv(y)), x, rtol=1e-9, atol=1e-10)
    deriv = _fd_derivative(t, x)
    np.testing.assert_allclose(npa(t.log_abs_det_jacobian(xt, y)), np.log(np.abs(deriv)), rtol=1e-6, atol=1e-6)
    sign = t.sign
    sign = npa(sign) if isinstance(sign, bp.Tensor) else np.full_like(x, sign)
    np.testing.assert_array_equal(np.broadcast_to(sign, x.shape), np.sign(deriv))
    # the inverse's log-det is the negation at the swapped arguments
    np.testing.assert_allclose(npa(t.inv.log_abs_det_jacobian(y, xt)), -npa(t.log_abs_det_jacobian(xt, y)),
                               rtol=1e-12, atol=1e-12)
    assert t.codomain.check(y).all().item() and t.domain.check(xt).all().item()


def test_log_det_is_differentiable_in_the_transform_parameters():
    loc = bp.tensor([0.3, -0.2], dtype=F64, requires_grad=True)
    scale = bp.tensor([1.7, -0.4], dtype=F64, requires_grad=True)
    x = bp.tensor([0.5, 2.0], dtype=F64, requires_grad=True)

    def f(loc, scale, x):
        t = T.ComposeTransform([T.AffineTransform(loc, scale), T.TanhTransform()])
        y = t(x)
        return t.log_abs_det_jacobian(x, y) + y

    assert bp.autograd.gradcheck(f, (loc, scale, x))


def _numerical_jacobian(f, x, h=1e-6):
    cols = []
    for i in range(x.shape[-1]):
        e = np.zeros_like(x)
        e[..., i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, -1)


def _np_stick_breaking(x):
    """An independent NumPy stick-breaking map R^K -> the first K coordinates of the simplex."""
    k = x.shape[-1]
    z = 1 / (1 + np.exp(-(x - np.log(np.arange(k, 0, -1)))))
    out, left = [], 1.0
    for i in range(k):
        out.append(z[..., i] * left)
        left = left * (1 - z[..., i])
    return np.stack(out, -1)


def test_stick_breaking_is_a_bijection_onto_the_simplex_with_the_right_log_det():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 3)) * 2
    t = T.StickBreakingTransform()
    y = t(t64(x))
    assert tuple(y.shape) == (4, 4) and t.forward_shape((4, 3)) == (4, 4) and t.inverse_shape((4, 4)) == (4, 3)
    assert C.simplex.check(y).all().item()
    np.testing.assert_allclose(npa(y)[:, :3], _np_stick_breaking(x), rtol=1e-12)
    np.testing.assert_allclose(npa(t.inv(y)), x, rtol=1e-8, atol=1e-9)
    want = [np.linalg.slogdet(_numerical_jacobian(_np_stick_breaking, xi))[1] for xi in x]
    np.testing.assert_allclose(npa(t.log_abs_det_jacobian(t64(x), y)), want, rtol=1e-6, atol=1e-7)
    # zero maps to the centre of the simplex
    np.testing.assert_allclose(npa(t(t64(np.zeros(3)))), np.full(4, 0.25), rtol=1e-12)


def test_matrix_vector_and_shape_transforms():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 3))
    lower = T.LowerCholeskyTransform()(t64(x))
    assert C.lower_cholesky.check(lower).all().item()
    np.testing.assert_allclose(npa(T.LowerCholeskyTransform().inv(lower)), np.tril(x), rtol=1e-12)
    pd = T.PositiveDefiniteTransform()(t64(x))
    assert C.positive_definite.check(pd).all().item()
    np.testing.assert_allclose(npa(T.PositiveDefiniteTransform().inv(pd)), np.tril(x), rtol=1e-9, atol=1e-10)

    sm = T.SoftmaxTransform()(t64(x))
    e = np.exp(x - x.max(-1, keepdims=True))
    np.testing.assert_allclose(npa(sm), e / e.sum(-1, keepdims=True), rtol=1e-12)
    with pytest.raises(NotImplementedError):
        T.SoftmaxTransform().log_abs_det_jacobian(t64(x), sm)

    r = T.ReshapeTransform((3, 3), (9,))
    y = r(t64(x))
    assert tuple(y.shape) == (2, 9) and r.forward_shape((5, 3, 3)) == (5, 9)
    np.testing.assert_array_equal(npa(r.inv(y)), x)
    np.testing.assert_array_equal(npa(r.log_abs_det_jacobian(t64(x), y)), np.zeros(2))
    with pytest.raises(ValueError, match="inconsistent"):
        T.ReshapeTransform((3, 3), (8,))

    ind = T.IndependentTransform(T.ExpTransform(), 2)
    assert ind.domain.event_dim == 2 and ind.codomain.event_dim == 2
    np.testing.assert_allclose(npa(ind.log_abs_det_jacobian(t64(x), ind(t64(x)))), x.sum((-2, -1)), rtol=1e-12)

    aff = T.AffineTransform(t64([1.0, 2.0, 3.0]), t64([2.0, -1.0, 0.5]), event_dim=1)
    ld = aff.log_abs_det_jacobian(t64(x), aff(t64(x)))
    np.testing.assert_allclose(npa(ld), np.full((2, 3), np.log(2 * 1 * 0.5)), rtol=1e-12, atol=1e-15)


def test_compose_sums_log_dets_over_changing_event_dims():
    # Affine on scalars then stick breaking: the affine log-det is summed over the vector event
    x = np.array([[0.2, -0.4], [1.0, 0.3]])
    t = T.ComposeTransform([T.AffineTransform(0.5, 2.0), T.StickBreakingTransform()])
    assert t.domain.event_dim == 1 and t.codomain.event_dim == 1
    y = t(t64(x))

    def f(v):
        return _np_stick_breaking(0.5 + 2.0 * v)

    want = [np.linalg.slogdet(_numerical_jacobian(f, xi))[1] for xi in x]
    np.testing.assert_allclose(npa(t.log_abs_det_jacobian(t64(x), y)), want, rtol=1e-6)
    np.testing.assert_allclose(npa(t.inv(y)), x, rtol=1e-9)
    assert T.identity_transform(t64(x)) is not None and t.inv.inv is t


def test_cache_returns_the_input_itself():
    t = T.ExpTransform(cache_size=1)
    x = t64([0.1, 0.2])
    assert t.inv(t(x)) is x
    assert T.ExpTransform().inv(T.ExpTransform()(x)) is not x
    with pytest.raises(ValueError, match="cache_size"):
        T.ExpTransform(cache_size=2)


CONSTRAINED = [C.real, C.positive, C.nonnegative, C.unit_interval, C.interval(-2.0, 5.0), C.half_open_interval(0.0, 3.0),
               C.greater_than(1.5), C.greater_than_eq(-1.0), C.less_than(2.0), C.simplex, C.real_vector,
               C.independent(C.positive, 1)]


@pytest.mark.parametrize("c", CONSTRAINED, ids=repr)
def test_biject_to_and_transform_to_land_inside_the_constraint(c):
    x = t64(np.random.default_rng(2).normal(size=(5, 4)) * 3)
    for registry in (D.biject_to, D.transform_to):
        t = registry(c)
        y = t(x)
        ok = c.check(y)
        assert ok.all().item(), (c, npa(y))
        if registry is D.biject_to and c is not C.simplex:
            np.testing.assert_allclose(npa(t.inv(y)), npa(x), rtol=1e-7, atol=1e-7)
    lc = D.transform_to(C.lower_cholesky)(t64(np.random.default_rng(3).normal(size=(3, 3))))
    assert C.lower_cholesky.check(lc).item()
    with pytest.raises(NotImplementedError, match="Cannot transform"):
        D.biject_to(C.boolean)


def test_constraint_checks_and_names_match_pytorch():
    v = t64([-1.0, 0.0, 0.5, 1.0, 2.0])
    expect = {
        C.real: [1, 1, 1, 1, 1], C.positive: [0, 0, 1, 1, 1], C.nonnegative: [0, 1, 1, 1, 1],
        C.unit_interval: [0, 1, 1, 1, 0], C.half_open_interval(0.0, 1.0): [0, 1, 1, 0, 0],
        C.boolean: [0, 1, 0, 1, 0], C.nonnegative_integer: [0, 1, 0, 1, 1], C.positive_integer: [0, 0, 0, 1, 1],
        C.integer_interval(0, 1): [0, 1, 0, 1, 0], C.less_than(1.0): [1, 1, 1, 0, 0],
    }
    for c, want in expect.items():
        np.testing.assert_array_equal(npa(c.check(v)).astype(int), want, err_msg=repr(c))
    assert not C.real.check(t64([float("nan")])).item()
    assert repr(C.positive) == "GreaterThan(lower_bound=0.0)"
    assert repr(C.unit_interval) == "Interval(lower_bound=0.0, upper_bound=1.0)"
    assert repr(C.real_vector) == "IndependentConstraint(Real(), 1)"
    assert repr(C.nonnegative_integer) == "IntegerGreaterThan(lower_bound=0)"
    assert C.simplex.event_dim == 1 and C.lower_cholesky.event_dim == 2 and C.boolean.is_discrete
    m = t64([[0.2, 0.8], [0.5, 0.6]])
    np.testing.assert_array_equal(npa(C.simplex.check(m)), [True, False])
    np.testing.assert_array_equal(npa(C.one_hot.check(t64([[0, 1], [1, 1]]))), [True, False])
    np.testing.assert_array_equal(npa(C.multinomial(3).check(t64([[1, 2], [2, 2]]))), [True, False])
    spd = t64([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 2.0], [2.0, 1.0]]])
    np.testing.assert_array_equal(npa(C.positive_definite.check(spd)), [True, False])
    np.testing.assert_array_equal(npa(C.symmetric.check(t64([[[1.0, 2.0], [3.0, 1.0]]]))), [False])
    assert C.is_dependent(C.dependent) and not C.is_dependent(C.real)
    with pytest.raises(ValueError, match="dependent"):
        C.dependent.check(v)
    # a distribution's dependent support is the instance's region
    assert D.Uniform(0.0, 2.0).support.check(t64(1.5)).item()
    assert not D.Uniform(0.0, 2.0).support.check(t64(2.5)).item()
    assert C.is_dependent(D.Uniform.support)
    np.testing.assert_array_equal(npa(C.cat([C.positive, C.real], 0, [2, 1]).check(t64([1.0, -1.0, -1.0]))),
                                  [True, False, True])
    np.testing.assert_array_equal(npa(C.stack([C.positive, C.real], 0).check(t64([-1.0, -1.0]))), [False, True])
