"""torch.special's Bessel functions J0/J1/Y0/Y1/K0/K1 (and the scaled K) against mpmath at 30
digits across every branch of the implementation (trapezoid, series, quadrature, Hankel), their
edges, dtypes and gradients (the recurrences, checked against mpmath's derivatives)."""

import mpmath as mp
import numpy as np
import pytest

import backprop_rs as bp

mp.mp.dps = 30
S = bp.special

# both sides of each switch (4 for Y's series, 25 for Hankel) and far out
XS = np.array([1e-8, 0.01, 0.5, 1.0, 2.404825557695773, 3.999, 4.0, 4.001, 7.3, 13.0, 24.99, 25.0, 25.01, 40.0,
               300.0, 1e4])
REFS = {
    "bessel_j0": lambda v: mp.besselj(0, v),
    "bessel_j1": lambda v: mp.besselj(1, v),
    "bessel_y0": lambda v: mp.bessely(0, v),
    "bessel_y1": lambda v: mp.bessely(1, v),
    "modified_bessel_k0": lambda v: mp.besselk(0, v),
    "modified_bessel_k1": lambda v: mp.besselk(1, v),
    "scaled_modified_bessel_k0": lambda v: mp.besselk(0, v) * mp.exp(v),
    "scaled_modified_bessel_k1": lambda v: mp.besselk(1, v) * mp.exp(v),
}


@pytest.mark.parametrize("name", sorted(REFS))
def test_bessel_matches_mpmath(name):
    got = getattr(S, name)(bp.tensor(XS, dtype=bp.float64)).numpy()
    want = np.array([float(REFS[name](mp.mpf(v))) for v in XS])
    if "modified" in name:  # K has no zeros: relative accuracy everywhere (and no underflow in the scaled form)
        np.testing.assert_allclose(got, want, rtol=2e-15, atol=0 if "scaled" in name else 1e-300)
    else:  # near the zeros of J and Y only absolute digits are meaningful
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_k_keeps_relative_digits_from_tiny_to_huge_arguments():
    x = np.geomspace(1e-300, 1e6, 40)
    for n in (0, 1):
        got = getattr(S, f"scaled_modified_bessel_k{n}")(bp.tensor(x, dtype=bp.float64)).numpy()
        want = np.array([float(mp.besselk(n, v) * mp.exp(v)) for v in x])
        np.testing.assert_allclose(got, want, rtol=2e-15)


def test_symmetry_edges_and_dtypes():
    x = bp.tensor([-3.5, 3.5], dtype=bp.float64)
    j0, j1 = S.bessel_j0(x).tolist(), S.bessel_j1(x).tolist()
    assert j0[0] == j0[1] and j1[0] == -j1[1]  # J0 even, J1 odd
    edge = bp.tensor([0.0, -1.0, float("inf")])
    assert S.bessel_y0(edge).tolist()[0] == float("-inf") and np.isnan(S.bessel_y1(edge).tolist()[1])
    assert S.modified_bessel_k0(edge).tolist()[0] == float("inf") and np.isnan(S.modified_bessel_k1(edge).tolist()[1])
    assert S.bessel_j0(edge).tolist()[2] == 0.0 and S.modified_bessel_k1(edge).tolist()[2] == 0.0
    assert S.bessel_j0(bp.tensor([0.0])).item() == pytest.approx(1.0, abs=1e-15)
    assert S.bessel_y1(bp.tensor([2.0])).dtype == bp.float32 and S.bessel_j1(bp.tensor([2])).dtype == bp.float32
    np.testing.assert_allclose(S.modified_bessel_i0(x).numpy(), bp.special.i0(x).numpy())
    np.testing.assert_allclose(S.modified_bessel_i1(x).numpy(), bp.special.i1(x).numpy())


@pytest.mark.parametrize("name", sorted(REFS))
def test_gradients_are_the_derivatives(name):
    pts = [0.7, 3.0, 6.5, 30.0]
    x = bp.tensor(pts, dtype=bp.float64, requires_grad=True)
    getattr(S, name)(x).sum().backward()
    want = [float(mp.diff(REFS[name], mp.mpf(v))) for v in pts]
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-15)
