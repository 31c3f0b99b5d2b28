"""``bp.linalg``'s solvers and decompositions: forwards against NumPy (float64, rtol 1e-10;
float32 1e-5), first and second derivatives by f64 central differences (gradcheck /
gradgradcheck), PyTorch's error cases."""

from __future__ import annotations

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.autograd import gradcheck, gradgradcheck
from conftest import gpu_or_skip

L = bp.linalg
F64 = bp.float64


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def t(a, **k):
    return bp.tensor(np.asarray(a), dtype=F64, **k)


def test_inverse_determinants_and_solve_against_numpy(rng):
    a = rng.normal(size=(2, 4, 4)) + 4 * np.eye(4)
    b = rng.normal(size=(2, 4, 3))
    np.testing.assert_allclose(L.inv(t(a)).numpy(), np.linalg.inv(a), rtol=1e-10)
    np.testing.assert_allclose(L.det(t(a)).numpy(), np.linalg.det(a), rtol=1e-10)
    sign, logabs = L.slogdet(t(a))
    ws, wl = np.linalg.slogdet(a)
    np.testing.assert_array_equal(sign.numpy(), ws)
    np.testing.assert_allclose(logabs.numpy(), wl, rtol=1e-10)
    np.testing.assert_allclose(L.solve(t(a), t(b)).numpy(), np.linalg.solve(a, b), rtol=1e-10)
    v = rng.normal(size=(2, 4))
    np.testing.assert_allclose(L.solve(t(a), t(v)).numpy(), np.linalg.solve(a, v[..., None])[..., 0], rtol=1e-10)
    bl = rng.normal(size=(2, 3, 4))
    np.testing.assert_allclose(L.solve(t(a), t(bl), left=False).numpy(), bl @ np.linalg.inv(a), rtol=1e-9)
    neg = np.diag([-1.0, 2.0, 3.0])
    assert np.isnan(bp.logdet(t(neg)).item()) and bp.logdet(t(np.eye(3) * 2)).item() == pytest.approx(3 * np.log(2))
    assert bp.inverse(t(a)).shape == (2, 4, 4) and bp.det(t(a)).shape == (2,)
    np.testing.assert_allclose(t(a).inverse().numpy(), np.linalg.inv(a), rtol=1e-10)
    np.testing.assert_allclose(t(a).det().numpy(), np.linalg.det(a), rtol=1e-10)
    np.testing.assert_allclose(t(a[0]).matrix_power(3).numpy(), np.linalg.matrix_power(a[0], 3), rtol=1e-10)
    f32 = L.inv(bp.tensor(a[0], dtype=bp.float32))
    assert f32.dtype == bp.float32
    np.testing.assert_allclose(f32.numpy(), np.linalg.inv(a[0]), rtol=1e-5, atol=1e-6)


def test_factorisations_reconstruct_their_input(rng):
    x = rng.normal(size=(3, 5, 5))
    spd = x @ np.swapaxes(x, -1, -2) + 5 * np.eye(5)
    low = L.cholesky(t(spd)).numpy()
    np.testing.assert_allclose(low, np.linalg.cholesky(spd), rtol=1e-10)
    np.testing.assert_allclose(L.cholesky(t(spd), upper=True).numpy(), np.swapaxes(low, -1, -2), rtol=1e-10)
    w, v = L.eigh(t(spd))
    np.testing.assert_allclose(w.numpy(), np.linalg.eigvalsh(spd), rtol=1e-10)
    np.testing.assert_allclose((v.numpy() * w.numpy()[..., None, :]) @ np.swapaxes(v.numpy(), -1, -2), spd, rtol=1e-9)
    np.testing.assert_allclose(L.eigvalsh(t(spd), UPLO="U").numpy(), np.linalg.eigvalsh(spd, UPLO="U"), rtol=1e-10)
    m = rng.normal(size=(4, 6))
    u, s, vh = L.svd(t(m), full_matrices=False)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(m, compute_uv=False), rtol=1e-10)
    np.testing.assert_allclose((u.numpy() * s.numpy()) @ vh.numpy(), m, atol=1e-12)
    assert L.svd(t(m)).U.shape == (4, 4) and L.svd(t(m)).Vh.shape == (6, 6)
    q, r = L.qr(t(m.T))
    np.testing.assert_allclose(q.numpy() @ r.numpy(), m.T, atol=1e-12)
    assert L.qr(t(m.T), mode="complete").Q.shape == (6, 6)
    np.testing.assert_allclose(L.pinv(t(m)).numpy(), np.linalg.pinv(m), rtol=1e-9, atol=1e-12)
    low_rank = m[:, :2] @ rng.normal(size=(2, 6))
    assert L.matrix_rank(t(low_rank)).item() == 2 and L.matrix_rank(t(m)).item() == 4


def test_composites_against_numpy(rng):
    a = rng.normal(size=(3, 3)) * 0.7
    np.testing.assert_allclose(L.matrix_power(t(a), 5).numpy(), np.linalg.matrix_power(a, 5), rtol=1e-10)
    np.testing.assert_allclose(L.matrix_power(t(a), -3).numpy(), np.linalg.matrix_power(a, -3), rtol=1e-8)
    np.testing.assert_array_equal(L.matrix_power(t(a), 0).numpy(), np.eye(3))
    sym = (a + a.T) * 3.0  # exp of a symmetric matrix from its eigendecomposition: an independent reference
    w, v = np.linalg.eigh(sym)
    np.testing.assert_allclose(L.matrix_exp(t(sym)).numpy(), (v * np.exp(w)) @ v.T, rtol=1e-10)
    np.testing.assert_allclose(bp.matrix_exp(t(np.zeros((2, 2)))).numpy(), np.eye(2))
    vs = [rng.normal(size=(4,)), rng.normal(size=(4, 5)), rng.normal(size=(5, 2)), rng.normal(size=(2,))]
    np.testing.assert_allclose(L.multi_dot([t(x) for x in vs]).item(), np.linalg.multi_dot(vs), rtol=1e-10)
    x, y = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    np.testing.assert_allclose(L.vecdot(t(x), t(y)).numpy(), (x * y).sum(-1), rtol=1e-12)


GRAD_CASES = {
    "inv": lambda a: L.inv(a),
    "det": lambda a: L.det(a),
    "logabsdet": lambda a: L.slogdet(a).logabsdet,
    "solve": lambda a: L.solve(a, bp.arange(6.0, dtype=F64).reshape(3, 2)),
    "solve_rhs": lambda a: L.solve(bp.tensor([[3.0, 1.0, 0.0], [0.5, 4.0, 1.0], [0.0, 1.0, 2.0]], dtype=F64), a[:, :2]),
    "cholesky": lambda a: L.cholesky(a @ a.mT + 3 * bp.eye(3, dtype=F64)),
    "eigh": lambda a: (lambda r: r.eigenvalues.sum() + (r.eigenvectors ** 2 * bp.arange(3.0, dtype=F64)).sum())(
        L.eigh(a + a.mT)),
    "eigvalsh": lambda a: L.eigvalsh(a + a.mT),
    "matrix_exp": lambda a: L.matrix_exp(a),
    "matrix_power": lambda a: L.matrix_power(a, -2),
}


@pytest.mark.parametrize("name", sorted(GRAD_CASES))
def test_first_and_second_derivatives_by_finite_differences(name, rng):
    a = t(rng.normal(size=(3, 3)) + 2 * np.eye(3), requires_grad=True)
    assert gradcheck(GRAD_CASES[name], (a,))
    assert gradgradcheck(GRAD_CASES[name], (a,))


def _svd_loss(full):
    # gauge-invariant in each singular pair's sign (the real SVD's freedom), so finite
    # differences of NumPy's SVD are smooth: weighted squares of U and Vh, a reweighted
    # product U diag(c) Vh, and S
    def f(a):
        u, s, vh = L.svd(a, full_matrices=full)
        k = s.shape[-1]
        u, vh = u[..., :, :k], vh[..., :k, :]
        wu = bp.arange(float(u.shape[-2] * k), dtype=F64).reshape(u.shape[-2], k).cos()
        wv = bp.arange(float(k * vh.shape[-1]), dtype=F64).reshape(k, vh.shape[-1]).sin()
        c = bp.arange(1.0, k + 1.0, dtype=F64)
        mix = ((u * c) @ vh) * bp.arange(float(u.shape[-2] * vh.shape[-1]), dtype=F64).reshape(
            u.shape[-2], vh.shape[-1]).sin()
        return (u ** 2 * wu).sum() + (vh ** 2 * wv).sum() + mix.sum() + (s ** 2).sum() + s.sum()
    return f


@pytest.mark.parametrize("shape", [(3, 3), (5, 3), (3, 5), (2, 4, 3)])
@pytest.mark.parametrize("full", [False, True])
def test_svd_gradients_through_u_s_and_vh_by_finite_differences(shape, full, rng):
    a = t(rng.normal(size=shape), requires_grad=True)
    assert gradcheck(_svd_loss(full), (a,))
    assert gradgradcheck(_svd_loss(full), (a,))


def test_svd_full_matrices_ignores_the_complement_columns(rng):
    # PyTorch: with full_matrices=True the columns of U past min(m, n) get no gradient (they
    # are an arbitrary basis); the gradient equals the reduced SVD's for a loss on the first k
    a = t(rng.normal(size=(5, 3)), requires_grad=True)
    u, _, _ = L.svd(a, full_matrices=True)
    (u ** 3).sum().backward()
    g_full = a.grad.numpy().copy()
    a.grad = None
    u, _, _ = L.svd(a, full_matrices=True)
    ((u[:, :3] ** 3).sum()).backward()
    np.testing.assert_allclose(a.grad.numpy(), g_full, rtol=1e-12, atol=1e-12)
    assert gradcheck(L.svdvals, (a,))


def _qr_loss(mode):
    def f(a):
        q, r = L.qr(a, mode=mode)
        wq = bp.arange(float(q.numel()), dtype=F64).reshape(q.shape).cos()
        wr = bp.arange(float(r.numel()), dtype=F64).reshape(r.shape).sin()
        return (q * wq).sum() + (r * wr).sum() + (r ** 2).sum()
    return f


@pytest.mark.parametrize("shape,mode", [((3, 3), "reduced"), ((5, 3), "reduced"), ((3, 5), "reduced"),
                                        ((3, 5), "complete"), ((2, 4, 4), "complete"), ((2, 5, 2), "reduced")])
def test_qr_gradients_by_finite_differences(shape, mode, rng):
    a = t(rng.normal(size=shape), requires_grad=True)
    assert gradcheck(_qr_loss(mode), (a,))
    assert gradgradcheck(_qr_loss(mode), (a,))


@pytest.mark.parametrize("shape,hermitian", [((3, 3), False), ((4, 3), False), ((3, 4), False),
                                             ((2, 3, 5), False), ((3, 3), True), ((2, 4, 4), True)])
def test_pinv_gradients_by_finite_differences(shape, hermitian, rng):
    base = rng.normal(size=shape)

    def f(a):
        a = a + a.mT if hermitian else a
        w = bp.arange(float(np.prod(shape)), dtype=F64).reshape(*shape[:-2], shape[-1], shape[-2]).cos()
        return (L.pinv(a, hermitian=hermitian) * w).sum()

    a = t(base, requires_grad=True)
    assert gradcheck(f, (a,))
    assert gradgradcheck(f, (a,))


def test_pinv_gradient_of_a_rank_deficient_matrix_against_numpy_differences(rng):
    # rank 2 of 4x3, perturbed only inside the rank-2 manifold (A + t B C2 + t B2 C), where the
    # pseudo-inverse is smooth: the directional derivative matches NumPy's central difference
    b, c = rng.normal(size=(4, 2)), rng.normal(size=(2, 3))
    db, dc = rng.normal(size=(4, 2)), rng.normal(size=(2, 3))
    w = rng.normal(size=(3, 4))
    a = t(b @ c, requires_grad=True)
    (L.pinv(a) * t(w)).sum().backward()
    direction = db @ c + b @ dc
    h = 1e-6
    num = ((np.linalg.pinv((b + h * db) @ (c + h * dc)) - np.linalg.pinv((b - h * db) @ (c - h * dc))) * w).sum() / (2 * h)
    np.testing.assert_allclose((a.grad.numpy() * direction).sum(), num, rtol=1e-6, atol=1e-8)


def test_qr_refused_backwards_name_the_mode(rng):
    a = t(rng.normal(size=(4, 3)), requires_grad=True)
    _, r = L.qr(a, mode="r")
    with pytest.raises(RuntimeError, match="mode='r'"):
        r.sum().backward()
    q, _ = L.qr(a, mode="complete")
    with pytest.raises(RuntimeError, match="nrows > ncols"):
        q.sum().backward()


def test_errors_as_pytorch():
    with pytest.raises(RuntimeError, match="singular"):
        L.inv(t(np.zeros((2, 2))))
    with pytest.raises(RuntimeError, match="positive-definite"):
        L.cholesky(t(-np.eye(2)))
    with pytest.raises(RuntimeError, match="square"):
        L.det(t(np.ones((2, 3))))
    with pytest.raises(RuntimeError, match="floating point"):
        L.inv(bp.eye(2, dtype=bp.int64))
    with pytest.raises(RuntimeError, match="singular"):
        L.solve(t(np.ones((2, 2))), t(np.ones(2)))


def test_gpu_tensors_round_trip_through_the_host():
    gpu_or_skip()
    a = bp.tensor([[4.0, 1.0], [2.0, 3.0]], device="gpu", requires_grad=True)
    y = L.inv(a)
    assert y.device.type == "gpu"
    np.testing.assert_allclose(y.cpu().detach().numpy(), np.linalg.inv([[4.0, 1.0], [2.0, 3.0]]), rtol=1e-6)
    L.det(a).backward()
    np.testing.assert_allclose(a.grad.cpu().numpy(), 10.0 * np.linalg.inv([[4.0, 1.0], [2.0, 3.0]]).T, rtol=1e-5)
