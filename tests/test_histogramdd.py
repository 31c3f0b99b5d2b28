"""``bp.histogramdd`` against an independent reference written here (each point's bin by
counting the edges at or below it, the last bin closed on the right, then a weighted count per
bin; density by dividing by the total and the bin volumes), PyTorch's documented example, and
its argument errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import backprop_rs as bp


def _reference(points: np.ndarray, edges: list, weight=None, density=False) -> np.ndarray:
    d = points.shape[1]
    hist = np.zeros([len(e) - 1 for e in edges])
    w = np.ones(len(points)) if weight is None else weight
    for p, wt in zip(points, w):
        idx = []
        for k in range(d):
            e = edges[k]
            if not (e[0] <= p[k] <= e[-1]):
                break
            i = int(np.sum(e <= p[k])) - 1
            idx.append(min(i, len(e) - 2))  # the right edge belongs to the last bin
        else:
            hist[tuple(idx)] += wt
    if density:
        volumes = np.ones_like(hist)
        for k in range(d):
            shape = [1] * d
            shape[k] = -1
            volumes = volumes * np.diff(edges[k]).reshape(shape)
        hist = hist / hist.sum() / volumes
    return hist


def _even_edges(points: np.ndarray, bins: list, rng=None) -> list:
    out = []
    for k, b in enumerate(bins):
        lo, hi = (points[:, k].min(), points[:, k].max()) if rng is None else rng[k]
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        out.append(np.linspace(lo, hi, b + 1))
    return out


def test_pytorch_documented_example():
    h = bp.histogramdd(bp.tensor([[0., 1.], [1., 0.], [2., 0.], [2., 2.]]), bins=[3, 3],
                       weight=bp.tensor([1., 2., 4., 8.]))
    np.testing.assert_array_equal(h.hist.numpy(), [[0, 1, 0], [2, 0, 0], [4, 0, 8]])
    assert isinstance(h.bin_edges, tuple) and len(h.bin_edges) == 2
    np.testing.assert_allclose(h.bin_edges[0].numpy(), [0, 2 / 3, 4 / 3, 2], rtol=1e-6)
    h = bp.histogramdd(bp.tensor([[0., 0.], [1., 1.], [2., 2.]]), bins=[2, 2], range=[0., 1., 0., 1.], density=True)
    np.testing.assert_array_equal(h.hist.numpy(), [[2, 0], [0, 2]])


@pytest.mark.parametrize("dims,bins,density,weighted", list(itertools.product([1, 2, 3], [3, [4, 2, 5]],
                                                                               [False, True], [False, True])))
def test_random_points_against_the_reference(dims, bins, density, weighted):
    rng = np.random.default_rng(dims)
    points = rng.standard_normal((200, dims))
    points[:5] = np.round(points[:5])  # some points on edges
    nb = [bins] * dims if isinstance(bins, int) else bins[:dims]
    w = rng.random(200) if weighted else None
    h = bp.histogramdd(bp.tensor(points), bins=bins if isinstance(bins, int) else nb,
                       weight=None if w is None else bp.tensor(w), density=density)
    edges = _even_edges(points, nb)
    for got, want in zip(h.bin_edges, edges):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(h.hist.numpy(), _reference(points, edges, w, density), rtol=1e-12)
    assert h.hist.dtype == bp.float64 and tuple(h.hist.shape) == tuple(nb)


def test_explicit_edges_range_and_leading_dimensions():
    rng = np.random.default_rng(7)
    points = rng.uniform(-2, 2, (4, 25, 2)).astype(np.float32)
    e0 = np.array([-1.0, 0.0, 0.5, 3.0])
    e1 = np.array([-2.0, 2.0])
    h = bp.histogramdd(bp.tensor(points), bins=[bp.tensor(e0), bp.tensor(e1)])
    flat = points.reshape(-1, 2).astype(np.float64)
    np.testing.assert_allclose(h.hist.numpy(), _reference(flat, [e0, e1]))
    assert h.hist.dtype == bp.float32
    h = bp.histogramdd(bp.tensor(points), bins=4, range=[-1.0, 1.0, 0.0, 0.5])
    edges = _even_edges(flat, [4, 4], [(-1.0, 1.0), (0.0, 0.5)])
    np.testing.assert_allclose(h.hist.numpy(), _reference(flat, edges))


def test_a_constant_dimension_is_widened_by_a_half():
    h = bp.histogramdd(bp.tensor([[1.0, 3.0], [1.0, 4.0]]), bins=2)
    np.testing.assert_allclose(h.bin_edges[0].numpy(), [0.5, 1.0, 1.5])
    np.testing.assert_array_equal(h.hist.numpy(), [[0, 0], [1, 1]])


def test_errors():
    x = bp.randn(5, 2)
    with pytest.raises(RuntimeError, match="same dtype"):
        bp.histogramdd(bp.tensor([[1, 2]]), bins=2)
    with pytest.raises(RuntimeError, match="expected 2 sequences of bin edges"):
        bp.histogramdd(x, bins=[2, 2, 2])
    with pytest.raises(RuntimeError, match="range should have 4 elements"):
        bp.histogramdd(x, bins=2, range=[0.0, 1.0])
    with pytest.raises(RuntimeError, match="min should not exceed max"):
        bp.histogramdd(x, bins=2, range=[1.0, 0.0, 0.0, 1.0])
    with pytest.raises(RuntimeError, match="bins must be > 0"):
        bp.histogramdd(x, bins=0)
    with pytest.raises(RuntimeError, match="same shape as the input tensor excluding its innermost"):
        bp.histogramdd(x, bins=2, weight=bp.ones(4))
