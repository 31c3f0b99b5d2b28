"""``bp.linalg``'s LU family (``lu``, ``lu_factor(_ex)``, ``lu_solve``, ``lu_unpack``), ``lstsq``,
``solve_ex``, the composites (``cond``, ``vander``, ``tensorinv``, ``tensorsolve``,
``householder_product``...), the refused complex ``eig``, and the legacy top-level names of
:mod:`backprop_rs.decompositions`. References: a partial-pivoting LU written here in plain
NumPy loops, NumPy's ``lstsq`` / ``solve`` / ``cond`` / ``tensorinv``; gradients by f64 central
differences (gradcheck / gradgradcheck)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import decompositions as D
from backprop_rs.autograd import gradcheck, gradgradcheck
from conftest import gpu_or_skip

L = bp.linalg
F64 = bp.float64


def t(a, **k):
    return bp.tensor(np.asarray(a, dtype=np.float64), dtype=F64, **k)


def reference_lu(a):
    """Doolittle LU with partial pivoting of one m x n matrix, one element at a time: the first
    row of largest |a| in the column is the pivot; a zero pivot column is left alone. Returns
    (packed LU, 1-based LAPACK pivots, permutation with a[perm] = L U)."""
    a = np.array(a, dtype=np.float64)
    m, n = a.shape
    perm = list(range(m))
    piv = []
    for j in range(min(m, n)):
        best = j
        for i in range(j + 1, m):
            if abs(a[i, j]) > abs(a[best, j]):
                best = i
        piv.append(best + 1)
        a[[j, best]] = a[[best, j]]
        perm[j], perm[best] = perm[best], perm[j]
        if a[j, j] != 0:
            for i in range(j + 1, m):
                a[i, j] /= a[j, j]
                for c in range(j + 1, n):
                    a[i, c] -= a[i, j] * a[j, c]
    return a, np.array(piv), np.array(perm)


def batched_reference(a):
    flat = a.reshape((-1,) + a.shape[-2:])
    outs = [reference_lu(x) for x in flat]
    lu = np.stack([o[0] for o in outs]).reshape(a.shape)
    piv = np.stack([o[1] for o in outs]).reshape(a.shape[:-2] + (-1,))
    perm = np.stack([o[2] for o in outs]).reshape(a.shape[:-2] + (a.shape[-2],))
    return lu, piv, perm


@pytest.mark.parametrize("shape", [(4, 4), (5, 3), (3, 5), (2, 3, 4, 4), (2, 6, 2), (3, 2, 5)])
def test_lu_reconstructs_and_matches_a_reference_partial_pivoting(shape, rng):
    a = rng.normal(size=shape)
    m, n = shape[-2:]
    k = min(m, n)
    p, lo, u = (x.numpy() for x in L.lu(t(a)))
    assert p.shape == shape[:-2] + (m, m) and lo.shape == shape[:-2] + (m, k) and u.shape == shape[:-2] + (k, n)
    np.testing.assert_allclose(p @ lo @ u, a, atol=1e-12)
    np.testing.assert_array_equal(np.triu(lo, 1), 0)
    np.testing.assert_array_equal(np.diagonal(lo, 0, -2, -1), 1)
    np.testing.assert_array_equal(np.tril(u, -1), 0)
    # P is a permutation matrix
    np.testing.assert_array_equal(p.sum(-1), 1)
    np.testing.assert_array_equal(p.sum(-2), 1)
    ref_lu, ref_piv, ref_perm = batched_reference(a)
    packed, piv = L.lu_factor(t(a))
    assert piv.dtype == bp.int32 and piv.shape == shape[:-2] + (k,)
    np.testing.assert_array_equal(piv.numpy(), ref_piv)
    np.testing.assert_allclose(packed.numpy(), ref_lu, rtol=1e-10, atol=1e-12)
    # the pivots, applied as row swaps in order, give the permutation: P^T A = A[perm]
    np.testing.assert_array_equal(np.swapaxes(p, -1, -2) @ np.arange(m, dtype=np.float64), ref_perm)
    np.testing.assert_array_equal(L.lu_factor_ex(t(a)).info.numpy(), np.zeros(shape[:-2], dtype=np.int32))
    up, ul, uu = D.lu_unpack(packed, piv)
    np.testing.assert_array_equal(up.numpy(), p)
    np.testing.assert_allclose(ul.numpy(), lo, atol=0)
    np.testing.assert_allclose(uu.numpy(), u, atol=0)


def test_lu_float32_stays_float32(rng):
    a = rng.normal(size=(3, 4, 4))
    p, lo, u = L.lu(bp.tensor(a, dtype=bp.float32))
    assert lo.dtype == bp.float32 and p.dtype == bp.float32
    np.testing.assert_allclose(p.numpy() @ lo.numpy() @ u.numpy(), a, atol=1e-5)


def test_singular_lu_reports_info_and_lu_factor_raises():
    s = np.zeros((2, 3, 3))
    s[:, 0, 0] = 1.0
    s[0] = np.eye(3)
    packed, piv, info = L.lu_factor_ex(t(s))
    np.testing.assert_array_equal(info.numpy(), [0, 2])
    np.testing.assert_array_equal(piv.numpy(), [[1, 2, 3], [1, 2, 3]])
    ref = batched_reference(s)[0]
    np.testing.assert_array_equal(packed.numpy(), ref)
    with pytest.raises(RuntimeError, match=r"linalg.lu_factor: \(Batch element 1\): U\[2,2\] is zero"):
        L.lu_factor(t(s))
    with pytest.raises(RuntimeError, match=r"lu_factor_ex: U\[2,2\] is zero and using it on lu_solve"):
        L.lu_factor_ex(t(s[1]), check_errors=True)
    p, lo, u = L.lu(t(s))  # linalg.lu factors singular matrices without complaint
    np.testing.assert_allclose(p.numpy() @ lo.numpy() @ u.numpy(), s)
    legacy = D.lu_legacy(t(s), get_infos=True)
    np.testing.assert_array_equal(legacy.info.numpy(), [0, 2])
    assert len(D.lu_legacy(t(s))) == 2


def test_lu_errors_as_pytorch():
    for f in (L.lu_factor, L.lu_factor_ex, L.lu, D.lu_legacy):
        with pytest.raises(RuntimeError, match="LU without pivoting is not implemented on the CPU"):
            f(t(np.eye(3)), pivot=False)
    with pytest.raises(RuntimeError, match=r"Expected tensor with 2 or more dimensions. Got size: \[3\] instead"):
        L.lu_factor(t(np.ones(3)))
    with pytest.raises(NotImplementedError, match="not implemented for 'Long'"):
        L.lu_factor(bp.eye(3, dtype=bp.int64))


def test_lu_unpack_leaves_out_what_is_not_asked(rng):
    packed, piv = L.lu_factor(t(rng.normal(size=(4, 4))))
    p, lo, u = D.lu_unpack(packed, piv, unpack_data=False)
    assert p.shape == (4, 4) and lo.numel() == 0 and u.numel() == 0
    p, lo, u = D.lu_unpack(packed, piv, unpack_pivots=False)
    assert p.numel() == 0 and lo.shape == (4, 4) and u.shape == (4, 4)


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("adjoint", [False, True])
def test_lu_solve_against_numpy(left, adjoint, rng):
    a = rng.normal(size=(2, 1, 4, 4))
    b = rng.normal(size=(3, 4, 2)) if left else rng.normal(size=(3, 2, 4))
    packed, piv = L.lu_factor(t(a))
    x = L.lu_solve(packed, piv, t(b), left=left, adjoint=adjoint).numpy()
    op = np.swapaxes(a, -1, -2) if adjoint else a
    want = np.linalg.solve(op, np.broadcast_to(b, (2, 3) + b.shape[-2:])) if left else \
        np.swapaxes(np.linalg.solve(np.swapaxes(op, -1, -2), np.swapaxes(np.broadcast_to(b, (2, 3) + b.shape[-2:]),
                                                                          -1, -2)), -1, -2)
    assert x.shape == (2, 3) + b.shape[-2:]
    np.testing.assert_allclose(x, want, rtol=1e-9, atol=1e-10)
    legacy = D.lu_solve_legacy(t(b[0]) if left else t(np.swapaxes(b[0], -1, -2)), packed[0, 0], piv[0, 0]).numpy()
    np.testing.assert_allclose(legacy, np.linalg.solve(a[0, 0], b[0] if left else np.swapaxes(b[0], -1, -2)),
                               rtol=1e-9, atol=1e-10)


def test_lu_solve_errors_as_pytorch(rng):
    packed, piv = L.lu_factor(t(rng.normal(size=(3, 3))))
    with pytest.raises(RuntimeError, match="The input tensor B must have at least 2 dimensions"):
        L.lu_solve(packed, piv, t(np.ones(3)))
    with pytest.raises(RuntimeError, match=r"Incompatible shapes of A and B for the equation AX = B \(3x3 and 4x2\)"):
        L.lu_solve(packed, piv, t(np.ones((4, 2))))
    with pytest.raises(RuntimeError, match="pivots should be a Tensor of scalar type torch.int32"):
        L.lu_solve(packed, piv.long(), t(np.ones((3, 2))))
    tall, tpiv = L.lu_factor(t(rng.normal(size=(5, 3))))
    with pytest.raises(RuntimeError, match="A must be batches of square matrices, but they are 5 by 3 matrices"):
        L.lu_solve(tall, tpiv, t(np.ones((5, 2))))


def _weights(shape, fn):
    return fn(bp.arange(float(int(np.prod(shape))), dtype=F64).reshape(*shape) * 0.37 + 0.2)


def _lu_loss(which):
    def f(a):
        p, lo, u = L.lu(a)
        parts = {"L": lo, "U": u}
        if which == "packed":
            packed = L.lu_factor(a).LU
            return (packed * _weights(packed.shape, bp.cos)).sum() + (packed ** 2).sum()
        total = 0.0
        for name in which:
            x = parts[name]
            total = total + (x * _weights(x.shape, bp.sin)).sum() + (x ** 2 * 0.5).sum()
        return total + (p * 0).sum()
    return f


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4), (2, 3, 3), (2, 5, 3), (2, 3, 5)])
@pytest.mark.parametrize("which", [("L",), ("U",), ("L", "U"), "packed"])
def test_lu_gradients_by_finite_differences(shape, which, rng):
    a = t(rng.normal(size=shape) + 0.5 * np.eye(*shape[-2:]), requires_grad=True)
    assert gradcheck(_lu_loss(which), (a,))
    assert gradgradcheck(_lu_loss(which), (a,))


@pytest.mark.parametrize("left,adjoint", [(True, False), (True, True), (False, False), (False, True)])
def test_lu_solve_gradients_in_lu_and_b(left, adjoint, rng):
    a = rng.normal(size=(2, 3, 3)) + 2 * np.eye(3)
    packed0, piv = L.lu_factor(t(a))
    packed = packed0.detach().clone().requires_grad_(True)
    b = t(rng.normal(size=(2, 3, 2) if left else (2, 2, 3)), requires_grad=True)

    def f(lu_, b_):
        return L.lu_solve(lu_, piv, b_, left=left, adjoint=adjoint)

    assert gradcheck(f, (packed, b))
    assert gradgradcheck(f, (packed, b))


def test_lu_solve_gradient_matches_solves_gradient(rng):
    # through lu_factor, lu_solve's gradient w.r.t. A is solve's: -A^-T g X^T
    a = t(rng.normal(size=(4, 4)) + 3 * np.eye(4), requires_grad=True)
    b = rng.normal(size=(4, 2))
    g = rng.normal(size=(4, 2))
    packed, piv = L.lu_factor(a)
    (L.lu_solve(packed, piv, t(b)) * t(g)).sum().backward()
    an = a.detach().numpy()
    x = np.linalg.solve(an, b)
    np.testing.assert_allclose(a.grad.numpy(), -np.linalg.solve(an.T, g) @ x.T, rtol=1e-9, atol=1e-11)


# ------------------------------------------------------------------ lstsq


@pytest.mark.parametrize("a_shape,b_shape", [((6, 3), (6, 2)), ((3, 5), (3, 2)), ((2, 6, 3), (2, 6, 4)),
                                             ((2, 6, 3), (1, 6, 2)), ((6, 3), (6,)), ((2, 5, 3), (2, 5))])
def test_lstsq_against_numpy(a_shape, b_shape, rng):
    a, b = rng.normal(size=a_shape), rng.normal(size=b_shape)
    vector = len(b_shape) == len(a_shape) - 1
    bm = b[..., None] if vector else b
    batch = np.broadcast_shapes(a.shape[:-2], bm.shape[:-2])
    aa, bb = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(bm, batch + bm.shape[-2:])
    flat = [np.linalg.lstsq(x, y, rcond=None) for x, y in zip(aa.reshape((-1,) + a.shape[-2:]),
                                                                bb.reshape((-1,) + bm.shape[-2:]))]
    m, n = a_shape[-2:]
    want = np.stack([f[0] for f in flat]).reshape(batch + (n, bm.shape[-1]))
    want = want[..., 0] if vector else want
    for driver in (None, "gelsy", "gelsd", "gelss", "gels"):
        r = L.lstsq(t(a), t(b), driver=driver)
        np.testing.assert_allclose(r.solution.numpy(), want, rtol=1e-9, atol=1e-11)
        if driver == "gels":
            assert r.rank.numel() == 0 and r.rank.dtype == bp.int64
        else:
            assert r.rank.shape == batch and r.rank.dtype == bp.int64
            np.testing.assert_array_equal(r.rank.numpy(), np.full(batch, min(m, n)))
        if driver in ("gelsd", "gelss"):
            np.testing.assert_allclose(r.singular_values.numpy(),
                                       np.linalg.svd(aa, compute_uv=False), rtol=1e-10)
        else:
            assert r.singular_values.shape == (0,)
        if m > n and driver not in (None, "gelsy"):
            want_res = np.stack([f[1] for f in flat]).reshape(batch + (bm.shape[-1],))
            np.testing.assert_allclose(r.residuals.numpy(), want_res, rtol=1e-9)
        else:
            assert r.residuals.shape == (0,)


def test_lstsq_rank_deficient_gives_the_minimum_norm_solution_and_no_residuals(rng):
    a = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 4))
    b = rng.normal(size=(6, 3))
    r = L.lstsq(t(a), t(b), driver="gelsd")
    np.testing.assert_allclose(r.solution.numpy(), np.linalg.pinv(a) @ b, rtol=1e-8, atol=1e-10)
    assert r.rank.item() == 2 and r.residuals.shape == (0,)
    tall = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 3))
    assert L.lstsq(t(tall), t(b), driver="gelss").residuals.shape == (0,)
    assert L.lstsq(t(tall), t(b), rcond=0.5).rank.item() <= 2


def test_lstsq_errors_as_pytorch(rng):
    a, b = t(rng.normal(size=(5, 3))), t(rng.normal(size=(5, 2)))
    with pytest.raises(RuntimeError, match=r"parameter `driver` should be one of \(gels, gelsy, gelsd, gelss\)"):
        L.lstsq(a, b, driver="foo")
    with pytest.raises(RuntimeError, match=r"input.size\(-2\) should match other.size\(-2\)"):
        L.lstsq(a, b[:3])
    with pytest.raises(RuntimeError, match="Expected input and other to have the same dtype, but got input's dtype "
                                           "Float and other's dtype Double"):
        L.lstsq(a.float(), b)
    with pytest.raises(RuntimeError, match=r"input.dim\(\) must be greater or equal to other.dim\(\)"):
        L.lstsq(a, b.reshape(1, 1, 5, 2))


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 2)])
def test_lstsq_gradients_by_finite_differences(shape, rng):
    a = t(rng.normal(size=shape), requires_grad=True)
    b = t(rng.normal(size=shape[:-1] + (2,)), requires_grad=True)

    def f(a_, b_):
        r = L.lstsq(a_, b_, driver="gelsd")
        total = (r.solution * _weights(r.solution.shape, bp.cos)).sum()
        return total + (r.residuals.sum() if r.residuals.numel() else 0.0)

    assert gradcheck(f, (a, b))
    assert gradgradcheck(f, (a, b))


# ------------------------------------------------------------------ solve_ex, cond, composites


def test_solve_ex(rng):
    a, b = rng.normal(size=(2, 3, 3)) + 3 * np.eye(3), rng.normal(size=(2, 3, 2))
    r = L.solve_ex(t(a), t(b))
    np.testing.assert_allclose(r.result.numpy(), np.linalg.solve(a, b), rtol=1e-10)
    np.testing.assert_array_equal(r.info.numpy(), [0, 0])
    assert r.info.dtype == bp.int32
    bl = rng.normal(size=(2, 2, 3))
    np.testing.assert_allclose(L.solve_ex(t(a), t(bl), left=False).result.numpy(), bl @ np.linalg.inv(a), rtol=1e-9)
    s = np.array([[1.0, 2.0], [2.0, 4.0]])
    r = L.solve_ex(t(s), t(np.ones(2)))
    assert r.info.item() == 2 and not np.isfinite(r.result.numpy()).all()
    with pytest.raises(RuntimeError, match="solve_ex: The solver failed because the input matrix is singular"):
        L.solve_ex(t(s), t(np.ones(2)), check_errors=True)
    x = t(a, requires_grad=True)
    assert gradcheck(lambda m: L.solve_ex(m, t(b)).result, (x,))


@pytest.mark.parametrize("p", [None, 2, -2, "fro", "nuc", math.inf, -math.inf, 1, -1])
def test_cond_against_numpy(p, rng):
    a = rng.normal(size=(3, 4, 4))
    np.testing.assert_allclose(L.cond(t(a), p).numpy(), np.linalg.cond(a, p), rtol=1e-9)
    x = t(a + 2 * np.eye(4), requires_grad=True)
    assert gradcheck(lambda m: L.cond(m, p), (x,))


def test_cond_singular_and_errors(rng):
    s = np.stack([np.zeros((3, 3)), np.eye(3)])
    np.testing.assert_array_equal(L.cond(t(s), 1).numpy(), [math.inf, 1.0])
    wide = rng.normal(size=(3, 5))
    np.testing.assert_allclose(L.cond(t(wide)).item(), np.linalg.cond(wide), rtol=1e-10)
    with pytest.raises(RuntimeError, match=r"linalg.cond\(ord=1\): A must be batches of square matrices, but they "
                                           "are 3 by 5 matrices"):
        L.cond(t(wide), 1)
    with pytest.raises(ValueError, match="linalg.cond got an invalid norm type: 3"):
        L.cond(t(np.eye(3)), 3)


def test_vander_diagonal_matmul(rng):
    x = rng.normal(size=(2, 4))
    np.testing.assert_allclose(L.vander(t(x)).numpy(), np.stack([np.vander(r, increasing=True) for r in x]))
    np.testing.assert_allclose(L.vander(t(x[0]), N=6).numpy(), np.vander(x[0], 6, increasing=True), rtol=1e-12)
    ints = L.vander(bp.tensor([1, 2, 3]), N=4)
    assert ints.dtype == bp.int64
    np.testing.assert_array_equal(ints.numpy(), np.vander([1, 2, 3], 4, increasing=True))
    with pytest.raises(RuntimeError, match="N must be greater than 1."):
        L.vander(t(x[0]), N=1)
    xz = t(np.array([0.0, 0.5, -1.0]), requires_grad=True)
    assert gradcheck(lambda v: L.vander(v, N=4), (xz,))
    m = rng.normal(size=(2, 3, 4))
    np.testing.assert_array_equal(L.diagonal(t(m)).numpy(), np.diagonal(m, 0, -2, -1))
    np.testing.assert_array_equal(L.diagonal(t(m), offset=1, dim1=0, dim2=2).numpy(), np.diagonal(m, 1, 0, 2))
    o = rng.normal(size=(4, 5))
    np.testing.assert_allclose(L.matmul(t(m), t(o)).numpy(), m @ o, rtol=1e-12)


def test_tensorinv_and_tensorsolve_against_numpy(rng):
    a = rng.normal(size=(4, 6, 8, 3))
    np.testing.assert_allclose(L.tensorinv(t(a)).numpy(), np.linalg.tensorinv(a), rtol=1e-8, atol=1e-10)
    b = rng.normal(size=(24, 4, 2, 3))
    np.testing.assert_allclose(L.tensorinv(t(b), ind=1).numpy(), np.linalg.tensorinv(b, ind=1), rtol=1e-8, atol=1e-10)
    with pytest.raises(RuntimeError, match="Expected a strictly positive integer for 'ind', but got 0"):
        L.tensorinv(t(a), ind=0)
    with pytest.raises(RuntimeError, match=r"prod\(self.shape\[ind:\]\) == prod\(self.shape\[:ind\]\), but got 12 != 2"):
        L.tensorinv(t(np.ones((2, 3, 4))), ind=1)
    s = rng.normal(size=(2, 3, 6))
    rhs = rng.normal(size=(2, 3))
    np.testing.assert_allclose(L.tensorsolve(t(s), t(rhs)).numpy(), np.linalg.tensorsolve(s, rhs), rtol=1e-8)
    s2 = rng.normal(size=(6, 2, 3))
    np.testing.assert_allclose(L.tensorsolve(t(s2), t(rhs), dims=(0,)).numpy(),
                               np.linalg.tensorsolve(s2, rhs, axes=(0,)), rtol=1e-8)
    x = t(rng.normal(size=(2, 3, 6)), requires_grad=True)
    assert gradcheck(lambda m: L.tensorsolve(m, t(rhs)), (x,))
    y = t(rng.normal(size=(2, 3, 6)), requires_grad=True)
    assert gradgradcheck(lambda m: L.tensorinv(m), (y,))


def _reference_householder(a, tau):
    m, n = a.shape
    q = np.eye(m)
    for i in range(len(tau)):
        v = np.zeros(m)
        v[i] = 1.0
        v[i + 1:] = a[i + 1:, i]
        q = q @ (np.eye(m) - tau[i] * np.outer(v, v))
    return q[:, :n]


def test_householder_product_against_explicit_reflectors(rng):
    a, tau = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 2))
    got = L.householder_product(t(a), t(tau)).numpy()
    assert got.shape == (2, 5, 3)
    for i in range(2):
        np.testing.assert_allclose(got[i], _reference_householder(a[i], tau[i]), rtol=1e-10, atol=1e-12)
    # tau = 2 / v^T v makes each reflector orthogonal, so the columns are orthonormal
    v = np.tril(a[0], -1) + np.eye(5, 3)
    q = L.householder_product(t(a[0]), t(2.0 / (v * v).sum(0))).numpy()
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-12)
    x, tx = t(a[0], requires_grad=True), t(tau[0], requires_grad=True)
    assert gradcheck(L.householder_product, (x, tx))
    assert gradgradcheck(L.householder_product, (x, tx))
    with pytest.raises(RuntimeError, match=r"input.shape\[-2\] must be greater than or equal to input.shape\[-1\]"):
        L.householder_product(t(np.ones((2, 3))), t(np.ones(2)))
    with pytest.raises(RuntimeError, match=r"input.shape\[-1\] must be greater than or equal to tau.shape\[-1\]"):
        L.householder_product(t(np.ones((3, 2))), t(np.ones(3)))


def test_eig_and_eigvals_are_refused_as_complex():
    for f in (L.eig, L.eigvals):
        with pytest.raises(bp.UnsupportedDTypeError, match="eigh") as info:
            f(t(np.eye(2)))
        assert isinstance(info.value, TypeError) and isinstance(info.value, RuntimeError)
        assert "complex" in str(info.value)


# ------------------------------------------------------------------ legacy top-level names


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (2, 4, 4)])
def test_svd_legacy_returns_v(shape, rng):
    a = rng.normal(size=shape)
    u, s, v = D.svd_legacy(t(a))
    k = min(shape[-2:])
    assert v.shape == shape[:-2] + (shape[-1], k)
    np.testing.assert_allclose((u.numpy() * s.numpy()[..., None, :]) @ np.swapaxes(v.numpy(), -1, -2), a, atol=1e-12)
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-10)
    u, s, v = D.svd_legacy(t(a), some=False)
    assert u.shape[-1] == shape[-2] and v.shape[-1] == shape[-1]
    u, s, v = D.svd_legacy(t(a), compute_uv=False)
    assert u.shape == shape[:-2] + (shape[-2],) * 2 and v.shape == shape[:-2] + (shape[-1],) * 2
    assert not u.numpy().any() and not v.numpy().any()
    np.testing.assert_allclose(s.numpy(), np.linalg.svd(a, compute_uv=False), rtol=1e-10)
    x = t(a, requires_grad=True)
    assert gradcheck(lambda m: D.svd_legacy(m, compute_uv=False).S, (x,))
    assert gradcheck(lambda m: (lambda r: (r.U @ r.V.mT * 0.3).sum() + r.S.sum())(D.svd_legacy(m)), (x,))


@pytest.mark.parametrize("upper", [True, False])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("unit", [False, True])
def test_triangular_solve_against_numpy(upper, transpose, unit, rng):
    a = rng.normal(size=(2, 4, 4)) + 3 * np.eye(4)
    b = rng.normal(size=(4, 3))
    tri = np.triu(a) if upper else np.tril(a)
    if unit:
        tri = tri - np.diagonal(tri, 0, -2, -1)[..., None] * np.eye(4) + np.eye(4)
    op = np.swapaxes(tri, -1, -2) if transpose else tri
    x, coef = D.triangular_solve(t(b), t(a), upper, transpose, unit)
    np.testing.assert_allclose(x.numpy(), np.linalg.solve(op, np.broadcast_to(b, (2, 4, 3))), rtol=1e-10)
    np.testing.assert_array_equal(coef.numpy(), a)
    xa, xb = t(a, requires_grad=True), t(b, requires_grad=True)
    assert gradcheck(lambda m, r: D.triangular_solve(r, m, upper, transpose, unit).solution, (xa, xb))


def test_removed_names_raise_with_their_replacement():
    a = t(np.eye(3))
    cases = {"lstsq": "torch.linalg.lstsq", "solve": "torch.linalg.solve", "eig": "torch.linalg.eig",
             "symeig": "torch.linalg.eigh", "matrix_rank": "torch.linalg.matrix_rank", "qr": "torch.linalg.qr"}
    top = D.toplevel_functions()
    for name, replacement in cases.items():
        with pytest.raises(RuntimeError, match="deprecated since version 1.9 and is now removed") as info:
            top[name](a, a) if name in ("lstsq", "solve") else top[name](a)
        assert replacement in str(info.value)
    with pytest.raises(RuntimeError, match="Since `some` was set to False, use mode='complete'"):
        D.qr_legacy(a, some=False)
    assert set(top) >= {"svd", "qr", "lu", "lu_unpack", "lu_solve", "triangular_solve"}


def test_tensor_method_forms(rng):
    a = rng.normal(size=(4, 4)) + 3 * np.eye(4)
    b = rng.normal(size=(4, 2))
    x = t(a)
    u, s, v = x.svd()
    np.testing.assert_allclose((u.numpy() * s.numpy()) @ v.numpy().T, a, atol=1e-12)
    packed, piv = x.lu()
    np.testing.assert_array_equal(piv.numpy(), reference_lu(a)[1])
    assert len(x.lu(get_infos=True)) == 3
    np.testing.assert_allclose(t(b).lu_solve(packed, piv).numpy(), np.linalg.solve(a, b), rtol=1e-10)
    sol, _ = t(b).triangular_solve(x, upper=False)
    np.testing.assert_allclose(sol.numpy(), np.linalg.solve(np.tril(a), b), rtol=1e-10)
    for name in ("lstsq", "solve", "eig", "symeig", "qr"):
        with pytest.raises(RuntimeError, match="is now removed"):
            getattr(x, name)(x) if name in ("lstsq", "solve") else getattr(x, name)()


def test_gpu_tensors_round_trip_through_the_host(rng):
    gpu_or_skip()
    a = rng.normal(size=(2, 4, 3))
    p, lo, u = L.lu(bp.tensor(a, dtype=bp.float32, device="gpu"))
    assert lo.device.type == "gpu"
    np.testing.assert_allclose(p.cpu().numpy() @ lo.cpu().numpy() @ u.cpu().numpy(), a, atol=1e-5)
    packed, piv = L.lu_factor(bp.tensor(a[:, :3], dtype=bp.float32, device="gpu"))
    np.testing.assert_array_equal(piv.cpu().numpy(), batched_reference(a[:, :3])[1])
    b = rng.normal(size=(2, 3, 2))
    x = L.lu_solve(packed, piv, bp.tensor(b, dtype=bp.float32, device="gpu"))
    np.testing.assert_allclose(x.cpu().numpy(), np.linalg.solve(a[:, :3], b), rtol=1e-4, atol=1e-4)
    r = L.lstsq(bp.tensor(a, dtype=bp.float32, device="gpu"), bp.tensor(rng.normal(size=(2, 4, 2)),
                                                                         dtype=bp.float32, device="gpu"))
    assert r.solution.device.type == "gpu" and r.solution.shape == (2, 3, 2)


# ------------------------------------------------------------------ LDL^T


def reconstruct_ldl(ld, piv):
    """A = M D M^T from the packed Bunch-Kaufman factors, M = P(1) L(1) P(2) L(2) ... (LAPACK's
    documented form), built one pivot block at a time."""
    n = ld.shape[-1]
    m, d = np.eye(n), np.zeros((n, n))
    k = 0
    while k < n:
        step = 1 if piv[k] > 0 else 2
        swap = (k, piv[k] - 1) if step == 1 else (k + 1, -piv[k] - 1)
        p = np.eye(n)
        p[list(swap)] = p[list(swap[::-1])]
        lk = np.eye(n)
        lk[k + step:, k:k + step] = ld[k + step:, k:k + step]
        d[k:k + step, k:k + step] = ld[k:k + step, k:k + step]
        if step == 2:
            d[k, k + 1] = ld[k + 1, k]
        m = m @ p @ lk
        k += step
    return m @ d @ m.T


def test_ldl_factor_reconstructs_and_solves(rng):
    x = rng.normal(size=(3, 6, 6))
    sym = x + np.swapaxes(x, -1, -2)
    sym[1, range(6), range(6)] *= 1e-3  # small diagonals: 2x2 pivots
    sym[2, range(6), range(6)] = 0.0
    ld, piv = L.ldl_factor(t(sym))
    assert piv.dtype == bp.int32 and (piv.numpy() < 0).any() and (piv.numpy() > 0).any()
    np.testing.assert_array_equal(np.triu(ld.numpy(), 1), 0)
    for i in range(3):
        np.testing.assert_allclose(reconstruct_ldl(ld.numpy()[i], piv.numpy()[i]), sym[i], atol=1e-10)
    b = rng.normal(size=(3, 6, 2))
    np.testing.assert_allclose(L.ldl_solve(ld, piv, t(b)).numpy(), np.linalg.solve(sym, b), rtol=1e-8, atol=1e-10)
    # only the lower triangle is read
    garbage_upper = np.tril(sym) + np.triu(rng.normal(size=(3, 6, 6)), 1)
    np.testing.assert_array_equal(L.ldl_factor(t(garbage_upper)).LD.numpy(), ld.numpy())


def test_ldl_info_errors_and_no_gradient(rng):
    r = L.ldl_factor_ex(t(np.zeros((3, 3))))
    assert r.info.item() == 1
    with pytest.raises(RuntimeError, match=r"D\[1,1\] is exactly zero"):
        L.ldl_factor(t(np.zeros((3, 3))))
    with pytest.raises(RuntimeError, match="A must be batches of square matrices, but they are 3 by 4 matrices"):
        L.ldl_factor(t(np.zeros((3, 4))))
    a = t(np.eye(3) * 2, requires_grad=True)
    ld, piv = L.ldl_factor(a)
    with pytest.raises(RuntimeError, match="derivative for linalg.ldl_factor_ex is not implemented"):
        ld.sum().backward()
    with pytest.raises(RuntimeError, match="Expected b and A to have the same dtype"):
        L.ldl_solve(ld.detach(), piv, bp.ones(3, 1))


def test_ldl_pivot_choice_follows_bunch_kaufman_by_hand():
    # alpha = (1 + sqrt 17) / 8 ~ 0.64. [[2,4,0],[4,10,0],[0,0,1]]: |a00| = 2 < alpha * colmax
    # (colmax = 4, at row 1), rowmax of row 1 = 4, 2 < alpha * 4 * (4 / 4), |a11| = 10 >= alpha * 4:
    # a 1x1 pivot on a11 swapped in, so pivots[0] = 2 (1-based)
    ld, piv = L.ldl_factor(t([[2.0, 4.0, 0.0], [4.0, 10.0, 0.0], [0.0, 0.0, 1.0]]))
    assert piv.numpy()[0] == 2 and ld.numpy()[0, 0] == 10.0
    # a zero diagonal: |a00| = 0, colmax 2 at row 2, rowmax 3, |a22| = 0 < alpha * 3: the 2x2 pivot
    # of rows 0 and 2 (row 2 swapped to 1), pivots -3, -3; then a 1x1 pivot
    ld, piv = L.ldl_factor(t([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]]))
    np.testing.assert_array_equal(piv.numpy(), [-3, -3, 3])
    assert ld.numpy()[1, 0] == 2.0  # the 2x2 block's off-diagonal is a20
