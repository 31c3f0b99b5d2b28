"""``bp.svd_lowrank`` and ``bp.pca_lowrank`` against NumPy's dense SVD: exact recovery of a
matrix whose rank is at most ``q`` (singular values to 1e-10 relative in float64, the
reconstruction to 1e-10), orthonormal factors, the wide/batched/``M`` paths, PCA against
NumPy's centred SVD, the approximation error of a full-rank matrix against the optimal
``sigma_(q+1)``, and the gradient of ``sum(S)`` (the nuclear norm, whose gradient is ``U V^T``)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import gpu_or_skip

import backprop_rs as bp


def _low_rank(rng: np.random.Generator, shape: tuple, rank: int) -> np.ndarray:
    *batch, m, n = shape
    return rng.standard_normal((*batch, m, rank)) @ rng.standard_normal((*batch, rank, n))


def _check_factors(a: np.ndarray, u, s, v, rank: int) -> None:
    u, s, v = u.numpy(), s.numpy(), v.numpy()
    q = s.shape[-1]
    eye = np.eye(q)
    np.testing.assert_allclose(np.swapaxes(u, -1, -2) @ u, np.broadcast_to(eye, u.shape[:-2] + (q, q)), atol=1e-10)
    np.testing.assert_allclose(np.swapaxes(v, -1, -2) @ v, np.broadcast_to(eye, v.shape[:-2] + (q, q)), atol=1e-10)
    ref = np.linalg.svd(a, compute_uv=False)[..., :rank]
    np.testing.assert_allclose(s[..., :rank], ref, rtol=1e-10)
    np.testing.assert_allclose((u * s[..., None, :]) @ np.swapaxes(v, -1, -2), a, atol=1e-10 * np.abs(a).max())


@pytest.mark.parametrize("shape", [(30, 8), (8, 30), (2, 3, 20, 9)])
def test_exact_recovery_at_low_rank(shape):
    rng = np.random.default_rng(1)
    a = _low_rank(rng, shape, 3)
    u, s, v = bp.svd_lowrank(bp.tensor(a), q=5)
    assert tuple(u.shape) == shape[:-1] + (5,) and tuple(v.shape) == shape[:-2] + (shape[-1], 5)
    assert tuple(s.shape) == shape[:-2] + (5,)
    _check_factors(a, u, s, v, 3)


def test_the_M_argument_factorises_A_minus_M():
    rng = np.random.default_rng(2)
    a = _low_rank(rng, (25, 10), 2) + 4.0
    mean = np.broadcast_to(a.mean(0, keepdims=True), a.shape)
    u, s, v = bp.svd_lowrank(bp.tensor(a), q=4, M=bp.tensor(a.mean(0, keepdims=True)))
    _check_factors(a - mean, u, s, v, 2)


def test_pca_matches_numpys_centred_svd():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 5)) @ np.diag([5.0, 3.0, 1.0, 0.5, 0.1]) + 7.0
    u, s, v = bp.pca_lowrank(bp.tensor(x))  # q = min(6, 40, 5) = 5: the whole column space
    c = x - x.mean(0)
    uu, ss, vh = np.linalg.svd(c, full_matrices=False)
    np.testing.assert_allclose(s.numpy(), ss, rtol=1e-10)
    signs = np.sign(np.sum(v.numpy() * vh.T, 0))
    np.testing.assert_allclose(v.numpy() * signs, vh.T, atol=1e-9)
    np.testing.assert_allclose(u.numpy() * signs, uu, atol=1e-9)
    # without centring it factorises x itself
    _, s2, _ = bp.pca_lowrank(bp.tensor(x), q=5, center=False)
    np.testing.assert_allclose(s2.numpy(), np.linalg.svd(x, compute_uv=False), rtol=1e-10)


def test_full_rank_error_is_near_optimal():
    rng = np.random.default_rng(4)
    m, n, q = 60, 40, 8
    qa, _ = np.linalg.qr(rng.standard_normal((m, n)))
    qb, _ = np.linalg.qr(rng.standard_normal((n, n)))
    sigma = 0.7 ** np.arange(n)
    a = (qa * sigma) @ qb.T
    u, s, v = bp.svd_lowrank(bp.tensor(a), q=q, niter=2)
    err = np.linalg.norm(a - (u.numpy() * s.numpy()) @ v.numpy().T, 2)
    assert sigma[q] <= err <= 3 * sigma[q], (err, sigma[q])  # no rank-q matrix does better than sigma_(q+1)
    np.testing.assert_allclose(s.numpy()[:4], sigma[:4], rtol=1e-3)


def test_gradient_of_the_nuclear_norm():
    rng = np.random.default_rng(5)
    a = rng.standard_normal((9, 4))
    t = bp.tensor(a, requires_grad=True)
    _, s, _ = bp.svd_lowrank(t, q=4)
    s.sum().backward()
    uu, _, vh = np.linalg.svd(a, full_matrices=False)
    np.testing.assert_allclose(t.grad.numpy(), uu @ vh, atol=1e-9)


def test_dtypes_and_errors():
    ints = bp.tensor(np.arange(12).reshape(4, 3))
    _, s, _ = bp.svd_lowrank(ints, q=3)
    assert s.dtype == bp.float32
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(np.arange(12.0).reshape(4, 3), compute_uv=False),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"q\(=7\) must be non-negative integer and not greater than min\(m, n\)=3"):
        bp.pca_lowrank(bp.randn(4, 3), q=7)
    with pytest.raises(ValueError, match="niter"):
        bp.svd_lowrank(bp.randn(4, 3), niter=-1)
    with pytest.raises(ValueError, match="matrix"):
        bp.svd_lowrank(bp.randn(4))
    with pytest.raises(TypeError, match="must be Tensor"):
        bp.svd_lowrank(np.ones((3, 3)))


def test_gpu_parity():
    gpu_or_skip()
    rng = np.random.default_rng(6)
    a = _low_rank(rng, (20, 7), 2).astype(np.float32)
    u, s, v = bp.svd_lowrank(bp.tensor(a).to("gpu"), q=3)
    assert u.device.type == "gpu" and s.device.type == "gpu"
    np.testing.assert_allclose(s.cpu().numpy()[:2], np.linalg.svd(a, compute_uv=False)[:2], rtol=1e-4)
    rec = (u.cpu().numpy() * s.cpu().numpy()) @ v.cpu().numpy().T
    np.testing.assert_allclose(rec, a, atol=1e-4 * np.abs(a).max())
