"""max_pool3d / adaptive_max_pool3d with return_indices against a brute-force NumPy reference
(the first maximum of each window, as a flat D*H*W index, PyTorch's convention), and gradcheck
of the pooled values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop_rs as bp

F = bp.nn.functional


def _np_max_pool3d(x, k, s, p, d, ceil):
    n, c, D, H, W = x.shape
    outs = []
    for size, kk, ss, pp, dd in zip((D, H, W), k, s, p, d):
        span = dd * (kk - 1) + 1
        num = size + 2 * pp - span
        o = (-(-num // ss) if ceil else num // ss) + 1
        if ceil and (o - 1) * ss >= size + pp:
            o -= 1
        outs.append(o)
    val = np.full((n, c, *outs), -np.inf)
    idx = np.zeros((n, c, *outs), np.int64)
    for od, oh, ow in itertools.product(*(range(o) for o in outs)):
        best = np.full((n, c), -np.inf)
        where = np.zeros((n, c), np.int64)
        for a, b, e in itertools.product(range(k[0]), range(k[1]), range(k[2])):
            zd, zh, zw = od * s[0] - p[0] + a * d[0], oh * s[1] - p[1] + b * d[1], ow * s[2] - p[2] + e * d[2]
            if 0 <= zd < D and 0 <= zh < H and 0 <= zw < W:
                v = x[:, :, zd, zh, zw]
                better = v > best
                best = np.where(better, v, best)
                where = np.where(better, (zd * H + zh) * W + zw, where)
        val[:, :, od, oh, ow], idx[:, :, od, oh, ow] = best, where
    return val, idx


CASES = [((2, 2, 2), None, (0, 0, 0), (1, 1, 1), False), ((3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), False),
         ((2, 3, 2), (1, 2, 2), (0, 1, 0), (2, 1, 1), True), ((3, 2, 2), (2, 1, 2), (1, 0, 1), (1, 1, 2), True)]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_max_pool3d_indices_match_the_brute_force(case):
    k, s, p, d, ceil = CASES[case]
    x = np.random.default_rng(case).normal(size=(2, 3, 7, 6, 5))
    xt = bp.tensor(x, dtype=bp.float64, requires_grad=True)
    out, idx = F.max_pool3d(xt, k, s, p, d, ceil, return_indices=True)
    want_v, want_i = _np_max_pool3d(x, k, s or k, p, d, ceil)
    np.testing.assert_array_equal(out.detach().numpy(), want_v)
    np.testing.assert_array_equal(idx.numpy(), want_i)
    assert idx.dtype == bp.int64
    assert bp.autograd.gradcheck(lambda t: F.max_pool3d(t, k, s, p, d, ceil, return_indices=True)[0], (xt,))
    m_out, m_idx = bp.nn.MaxPool3d(k, s, p, d, return_indices=True, ceil_mode=ceil)(xt[0])
    np.testing.assert_array_equal(m_idx.numpy(), want_i[0])


@pytest.mark.parametrize("output_size", [(3, 2, 2), (7, 6, 5), (2, None, 3), 1])
def test_adaptive_max_pool3d_indices(output_size):
    x = np.random.default_rng(5).normal(size=(2, 3, 7, 6, 5))
    xt = bp.tensor(x, dtype=bp.float64, requires_grad=True)
    out, idx = F.adaptive_max_pool3d(xt, output_size, return_indices=True)
    sizes = output_size if isinstance(output_size, tuple) else (output_size,) * 3
    sizes = [o if o is not None else x.shape[2 + i] for i, o in enumerate(sizes)]
    D, H, W = x.shape[2:]
    for od, oh, ow in itertools.product(*(range(o) for o in sizes)):
        rng = [((i * n) // o, -(-((i + 1) * n) // o)) for i, n, o in zip((od, oh, ow), (D, H, W), sizes)]
        block = x[:, :, rng[0][0]:rng[0][1], rng[1][0]:rng[1][1], rng[2][0]:rng[2][1]]
        flat = block.reshape(2, 3, -1)
        j = flat.argmax(-1)
        bd, bh, bw = np.unravel_index(j, block.shape[2:])
        want = ((bd + rng[0][0]) * H + bh + rng[1][0]) * W + bw + rng[2][0]
        np.testing.assert_array_equal(idx.numpy()[:, :, od, oh, ow], want)
        np.testing.assert_array_equal(out.detach().numpy()[:, :, od, oh, ow], flat.max(-1))
    assert bp.autograd.gradcheck(lambda t: F.adaptive_max_pool3d(t, output_size, return_indices=True)[0], (xt,))


def test_max_unpool3d_writes_each_maximum_back_at_its_index():
    x = np.random.default_rng(9).normal(size=(2, 3, 6, 4, 4))
    xt = bp.tensor(x, dtype=bp.float64, requires_grad=True)
    out, idx = F.max_pool3d(xt, 2, return_indices=True)
    up = F.max_unpool3d(out, idx, 2)
    want = np.zeros_like(x).reshape(2, 3, -1)
    np.put_along_axis(want, idx.numpy().reshape(2, 3, -1), out.detach().numpy().reshape(2, 3, -1), -1)
    np.testing.assert_array_equal(up.detach().numpy(), want.reshape(x.shape))
    np.testing.assert_array_equal(bp.nn.MaxUnpool3d(2)(out, idx).detach().numpy(), want.reshape(x.shape))
    assert tuple(F.max_unpool3d(out, idx, 2, output_size=(7, 5, 5)).shape) == (2, 3, 7, 5, 5)
    assert bp.autograd.gradcheck(lambda t: F.max_unpool3d(t, idx, 2), (out.detach().requires_grad_(),))
