"""bp.einsum against np.einsum (values and, through gradcheck, gradients), and bp.bernoulli /
bp.multinomial against their distributions (frequencies within stated bounds) and PyTorch's
documented argument checks."""

import zlib

import numpy as np
import pytest

import backprop_rs as bp

EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("i,j->ij", [(3,), (4,)]),
    ("...ij->...ji", [(2, 3, 4)]),
    ("i,i->", [(5,), (5,)]),
    ("ij->", [(3, 4)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("ij,ij->ij", [(3, 4), (3, 4)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("ji", [(3, 4)]),
    ("i...,i->...", [(3, 2, 4), (3,)]),
    ("bi,bj->bij", [(1, 3), (4, 5)]),
    ("iij->j", [(3, 3, 2)]),
    ("ab,cd->", [(2, 3), (4, 5)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM_CASES, ids=[c[0] for c in EINSUM_CASES])
def test_einsum_matches_numpy(eq, shapes):
    rng = np.random.default_rng(zlib.crc32(eq.encode()))  # stable across runs (hash() is salted)
    arrs = [rng.standard_normal(s) for s in shapes]
    got = bp.einsum(eq, *[bp.tensor(a, dtype=bp.float64) for a in arrs]).numpy()
    want = np.einsum(eq, *arrs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # float32 and the list form of the operands
    got32 = bp.einsum(eq, [bp.tensor(a, dtype=bp.float32) for a in arrs]).numpy()
    np.testing.assert_allclose(got32, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("eq,shapes", [c for c in EINSUM_CASES if c[0] in ("ij,jk->ik", "bhqd,bhkd->bhqk", "ii->i", "i...,i->...")])
def test_einsum_gradients(eq, shapes):
    rng = np.random.default_rng(7)
    ts = [bp.tensor(rng.standard_normal(s), dtype=bp.float64, requires_grad=True) for s in shapes]
    assert bp.autograd.gradcheck(lambda *xs: bp.einsum(eq, *xs), tuple(ts))
    assert bp.autograd.gradgradcheck(lambda *xs: bp.einsum(eq, *xs), tuple(ts))


@pytest.mark.parametrize("eq,shapes", [("ij,jk->ik", [(3, 4), (5, 6)]), ("ij,j->x", [(2, 2), (2,)]),
                                       ("ij->ii", [(2, 2)]), ("i,j", [(2,)]), ("ij", [(2, 3, 4)]),
                                       ("i1->i", [(2, 2)])])
def test_einsum_errors(eq, shapes):
    with pytest.raises(RuntimeError, match="einsum"):  # PyTorch raises RuntimeError
        bp.einsum(eq, *[bp.ones(*s) for s in shapes])


def test_bernoulli_frequencies_and_shape():
    bp.manual_seed(0)
    p = bp.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=bp.float64)
    draws = np.stack([bp.bernoulli(p).numpy() for _ in range(4000)])
    assert draws.dtype == np.float64 and set(np.unique(draws)) <= {0.0, 1.0}
    freq = draws.mean(0)
    # 4000 draws: 4 standard deviations of a proportion is at most 0.032
    np.testing.assert_allclose(freq, p.numpy(), atol=0.032)
    assert freq[0] == 0.0 and freq[-1] == 1.0
    x = bp.zeros(2000)
    x.bernoulli_(0.25)
    assert abs(x.numpy().mean() - 0.25) < 0.04
    with pytest.raises(RuntimeError, match=r"\[0, 1\]"):
        bp.bernoulli(bp.tensor([1.5]))


def test_bernoulli_repeats_under_a_seed_and_a_generator():
    bp.manual_seed(3)
    a = bp.bernoulli(bp.full((50,), 0.5)).numpy()
    bp.manual_seed(3)
    b = bp.bernoulli(bp.full((50,), 0.5)).numpy()
    np.testing.assert_array_equal(a, b)
    g1, g2 = bp.Generator().manual_seed(5), bp.Generator().manual_seed(5)
    np.testing.assert_array_equal(bp.bernoulli(bp.full((50,), 0.5), generator=g1).numpy(),
                                  bp.bernoulli(bp.full((50,), 0.5), generator=g2).numpy())


def test_multinomial_with_replacement_follows_the_weights():
    bp.manual_seed(1)
    w = bp.tensor([[1.0, 0.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    s = bp.multinomial(w, 20000, replacement=True)
    assert s.dtype == bp.int64 and tuple(s.shape) == (2, 20000)
    want = w.numpy() / w.numpy().sum(1, keepdims=True)
    for row, p in zip(s.numpy(), want):
        freq = np.bincount(row, minlength=4) / row.size
        np.testing.assert_allclose(freq, p, atol=0.015)  # > 4 sigma of a proportion at n = 20000
    one = bp.multinomial(bp.tensor([0.0, 1.0, 0.0]), 5, replacement=True)
    assert one.tolist() == [1] * 5


def test_multinomial_without_replacement():
    bp.manual_seed(2)
    w = bp.tensor([0.5, 0.0, 0.3, 0.2])
    draws = np.stack([bp.multinomial(w, 3).numpy() for _ in range(3000)])
    # distinct categories, never the zero-weight one
    assert all(len(set(r)) == 3 and 1 not in r for r in draws)
    # the first draw follows the weights: 0.5 / 0.3 / 0.2
    first = np.bincount(draws[:, 0], minlength=4) / len(draws)
    np.testing.assert_allclose(first, [0.5, 0.0, 0.3, 0.2], atol=0.04)
    # the second follows the remaining weights: P(second = 2) = sum over first of p(first) * p(2 | first)
    p = np.array([0.5, 0.0, 0.3, 0.2])
    second2 = sum(p[f] * p[2] / (1 - p[f]) for f in (0, 3))
    assert abs((draws[:, 1] == 2).mean() - second2) < 0.04


@pytest.mark.parametrize("call", [
    lambda: bp.multinomial(bp.tensor([0.5, 0.0]), 2),  # not enough non-zero categories
    lambda: bp.multinomial(bp.tensor([0.5, -0.1]), 1, True),
    lambda: bp.multinomial(bp.tensor([0.0, 0.0]), 1, True),
    lambda: bp.multinomial(bp.tensor([1.0, 1.0]), 3),
    lambda: bp.multinomial(bp.tensor([1.0, 1.0]), 0, True),
    lambda: bp.multinomial(bp.ones(2, 2, 2), 1),
    lambda: bp.multinomial(bp.tensor([1, 2]), 1),
])
def test_multinomial_refuses_what_pytorch_refuses(call):
    with pytest.raises(RuntimeError):
        call()
