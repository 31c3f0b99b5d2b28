"""F.grid_sample and F.affine_grid against an independent NumPy implementation of PyTorch's
documented algorithm (unnormalisation by align_corners, zeros / border / reflection padding,
bilinear, nearest and bicubic taps, 4-D and 5-D inputs), plus f64 gradchecks in the input and the
grid."""

from __future__ import annotations

import math

import numpy as np
import pytest

import backprop_rs as bp

F = bp.nn.functional


def _unnormalise(c: float, size: int, align: bool) -> float:
    return (c + 1) / 2 * (size - 1) if align else ((c + 1) * size - 1) / 2


def _reflect(x: float, twice_low: float, twice_high: float) -> float:
    if twice_low == twice_high:
        return 0.0
    lo, span = twice_low / 2, (twice_high - twice_low) / 2
    x = abs(x - lo)
    extra, flips = math.fmod(x, span), math.floor(x / span)
    return extra + lo if flips % 2 == 0 else span - extra + lo


def _source(c: float, size: int, align: bool, padding: str) -> float:
    x = _unnormalise(c, size, align)
    if padding == "border":
        x = min(max(x, 0.0), size - 1)
    elif padding == "reflection":
        x = _reflect(x, 0, 2 * (size - 1)) if align else _reflect(x, -1, 2 * size - 1)
        x = min(max(x, 0.0), size - 1)
    return x


def _reference(x: np.ndarray, grid: np.ndarray, mode: str, padding: str, align: bool) -> np.ndarray:
    n, c, h, w = x.shape
    _, ho, wo, _ = grid.shape
    out = np.zeros((n, c, ho, wo))

    def at(b, yi, xi):
        return x[b, :, yi, xi] if 0 <= yi < h and 0 <= xi < w else np.zeros(c)

    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                sx = _source(grid[b, i, j, 0], w, align, padding)
                sy = _source(grid[b, i, j, 1], h, align, padding)
                if mode == "nearest":
                    out[b, :, i, j] = at(b, int(np.rint(sy)), int(np.rint(sx)))  # half to even
                    continue
                x0, y0 = math.floor(sx), math.floor(sy)
                fx, fy = sx - x0, sy - y0
                out[b, :, i, j] = (at(b, y0, x0) * (1 - fx) * (1 - fy) + at(b, y0, x0 + 1) * fx * (1 - fy)
                                   + at(b, y0 + 1, x0) * (1 - fx) * fy + at(b, y0 + 1, x0 + 1) * fx * fy)
    return out


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_matches_the_reference(mode, padding, align):
    rng = np.random.default_rng(hash((mode, padding, align)) % 2**32)
    x = rng.normal(size=(2, 3, 5, 6))
    grid = rng.uniform(-1.6, 1.6, size=(2, 4, 7, 2))  # a third of the points fall outside
    grid[0, 0, 0] = [-1.0, 1.0]  # the corners themselves
    want = _reference(x, grid, mode, padding, align)
    for dtype, tol in [(bp.float64, 1e-12), (bp.float32, 1e-5)]:
        got = F.grid_sample(bp.tensor(x, dtype=dtype), bp.tensor(grid, dtype=dtype), mode=mode,
                            padding_mode=padding, align_corners=align)
        assert got.shape == (2, 3, 4, 7)
        np.testing.assert_allclose(got.numpy(), want, atol=tol, rtol=tol)


def _fold(x: float, size: int, align: bool, padding: str) -> float:
    if padding == "border":
        return min(max(x, 0.0), size - 1)
    if padding == "reflection":
        x = _reflect(x, 0, 2 * (size - 1)) if align else _reflect(x, -1, 2 * size - 1)
        return min(max(x, 0.0), size - 1)
    return x


def _cubic(t: float) -> list:
    a = -0.75

    def near(v):
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


def _reference_bicubic(x: np.ndarray, grid: np.ndarray, padding: str, align: bool) -> np.ndarray:
    """PyTorch's grid_sampler_2d bicubic path: unnormalise, 4x4 taps around floor, each tap
    folded by the padding and read as 0 outside."""
    n, c, h, w = x.shape
    _, ho, wo, _ = grid.shape
    out = np.zeros((n, c, ho, wo))
    for b in range(n):
        for i in range(ho):
            for j in range(wo):
                sx, sy = _unnormalise(grid[b, i, j, 0], w, align), _unnormalise(grid[b, i, j, 1], h, align)
                x0, y0 = math.floor(sx), math.floor(sy)
                wx, wy = _cubic(sx - x0), _cubic(sy - y0)
                for q in range(4):
                    for p_ in range(4):
                        xi = int(_fold(x0 - 1 + p_, w, align, padding))
                        yi = int(_fold(y0 - 1 + q, h, align, padding))
                        if 0 <= xi < w and 0 <= yi < h:
                            out[b, :, i, j] += x[b, :, yi, xi] * wx[p_] * wy[q]
    return out


def _reference_3d(x: np.ndarray, grid: np.ndarray, mode: str, padding: str, align: bool) -> np.ndarray:
    n, c, d, h, w = x.shape
    _, do, ho, wo, _ = grid.shape
    out = np.zeros((n, c, do, ho, wo))

    def at(b, zi, yi, xi):
        return x[b, :, zi, yi, xi] if 0 <= zi < d and 0 <= yi < h and 0 <= xi < w else np.zeros(c)

    for b in range(n):
        for k in range(do):
            for i in range(ho):
                for j in range(wo):
                    gx, gy, gz = grid[b, k, i, j]
                    sx, sy, sz = (_source(gx, w, align, padding), _source(gy, h, align, padding),
                                  _source(gz, d, align, padding))
                    if mode == "nearest":
                        out[b, :, k, i, j] = at(b, int(np.rint(sz)), int(np.rint(sy)), int(np.rint(sx)))
                        continue
                    x0, y0, z0 = math.floor(sx), math.floor(sy), math.floor(sz)
                    fx, fy, fz = sx - x0, sy - y0, sz - z0
                    acc = np.zeros(c)
                    for dz in (0, 1):
                        for dy in (0, 1):
                            for dx in (0, 1):
                                wgt = (fx if dx else 1 - fx) * (fy if dy else 1 - fy) * (fz if dz else 1 - fz)
                                acc += at(b, z0 + dz, y0 + dy, x0 + dx) * wgt
                    out[b, :, k, i, j] = acc
    return out


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_bicubic_matches_the_reference(padding, align):
    rng = np.random.default_rng(hash(("bicubic", padding, align)) % 2**32)
    x = rng.normal(size=(2, 2, 5, 6))
    grid = rng.uniform(-1.5, 1.5, size=(2, 3, 4, 2))
    grid[0, 0, 0] = [-1.0, 1.0]
    want = _reference_bicubic(x, grid, padding, align)
    for dtype, tol in [(bp.float64, 1e-12), (bp.float32, 1e-5)]:
        got = F.grid_sample(bp.tensor(x, dtype=dtype), bp.tensor(grid, dtype=dtype), mode="bicubic",
                            padding_mode=padding, align_corners=align)
        np.testing.assert_allclose(got.numpy(), want, atol=tol, rtol=tol)
    # exact on the pixel centres with align_corners=True: bicubic interpolates
    if align and padding == "zeros":
        ys, xs = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 6), indexing="ij")
        g = np.stack([xs, ys], -1)[None].repeat(2, 0)
        back = F.grid_sample(bp.tensor(x), bp.tensor(g), mode="bicubic", align_corners=True).numpy()
        np.testing.assert_allclose(back, x, atol=1e-12)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("align", [False, True])
def test_grid_sample_5d_matches_the_reference(mode, padding, align):
    rng = np.random.default_rng(hash(("3d", mode, padding, align)) % 2**32)
    x = rng.normal(size=(2, 2, 3, 4, 5))
    grid = rng.uniform(-1.4, 1.4, size=(2, 2, 3, 4, 3))
    want = _reference_3d(x, grid, mode, padding, align)
    got = F.grid_sample(bp.tensor(x), bp.tensor(grid), mode=mode, padding_mode=padding, align_corners=align)
    assert got.shape == (2, 2, 2, 3, 4)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-12, rtol=1e-12)


def test_grid_sample_bicubic_and_5d_gradients():
    rng = np.random.default_rng(6)
    x = bp.tensor(rng.normal(size=(1, 2, 3, 4)), requires_grad=True)
    grid = bp.tensor(rng.uniform(-1.2, 1.2, size=(1, 2, 3, 2)), requires_grad=True)
    assert bp.autograd.gradcheck(
        lambda a, g: F.grid_sample(a, g, mode="bicubic", padding_mode="reflection", align_corners=False),
        (x, grid), eps=1e-6, atol=1e-6)
    x3 = bp.tensor(rng.normal(size=(1, 2, 2, 3, 3)), requires_grad=True)
    g3 = bp.tensor(rng.uniform(-1.1, 1.1, size=(1, 2, 2, 2, 3)), requires_grad=True)
    assert bp.autograd.gradcheck(lambda a, g: F.grid_sample(a, g, padding_mode="border", align_corners=True),
                                 (x3, g3), eps=1e-6, atol=1e-6)


def test_affine_grid_5d_matches_the_definition():
    rng = np.random.default_rng(4)
    th = rng.normal(size=(2, 3, 4))
    for align in (False, True):
        got = F.affine_grid(bp.tensor(th), (2, 1, 2, 3, 4), align_corners=align).numpy()
        assert got.shape == (2, 2, 3, 4, 3)
        xs = np.linspace(-1, 1, 4) * (1 if align else 3 / 4)
        ys = np.linspace(-1, 1, 3) * (1 if align else 2 / 3)
        zs = np.linspace(-1, 1, 2) * (1 if align else 1 / 2)
        for b in range(2):
            for k in range(2):
                for i in range(3):
                    for j in range(4):
                        np.testing.assert_allclose(got[b, k, i, j], th[b] @ np.array([xs[j], ys[i], zs[k], 1.0]),
                                                   atol=1e-12)
    # the identity map samples a volume back
    x = bp.tensor(rng.normal(size=(1, 2, 3, 4, 5)))
    ident = bp.tensor(np.eye(3, 4)[None])
    g = F.affine_grid(ident, (1, 2, 3, 4, 5), align_corners=False)
    np.testing.assert_allclose(F.grid_sample(x, g, align_corners=False).numpy(), x.numpy(), atol=1e-12)


@pytest.mark.parametrize("padding", ["zeros", "border", "reflection"])
def test_grid_sample_gradients(padding):
    rng = np.random.default_rng(5)
    x = bp.tensor(rng.normal(size=(1, 2, 3, 4)), requires_grad=True)
    grid = bp.tensor(rng.uniform(-1.2, 1.2, size=(1, 2, 3, 2)), requires_grad=True)
    assert bp.autograd.gradcheck(lambda a, g: F.grid_sample(a, g, padding_mode=padding, align_corners=False),
                                 (x, grid), eps=1e-6, atol=1e-6)


def test_grid_sample_nearest_gives_the_grid_a_zero_gradient():
    x = bp.randn(1, 1, 3, 3, requires_grad=True)
    grid = bp.rand(1, 2, 2, 2, requires_grad=True)
    with pytest.warns(UserWarning, match="align_corners=False since 1.3.0"):  # PyTorch's warning for None
        out = F.grid_sample(x, grid, mode="nearest")
    out.sum().backward()
    assert grid.grad is not None and not grid.grad.numpy().any()
    assert x.grad is not None and x.grad.numpy().sum() == 4.0  # four taps, each weight 1


def test_affine_grid_identity_samples_the_input_back():
    rng = np.random.default_rng(2)
    x = bp.tensor(rng.normal(size=(2, 3, 4, 5)))
    theta = bp.tensor(np.tile(np.array([[1.0, 0, 0], [0, 1, 0]]), (2, 1, 1)))
    for align in (False, True):
        grid = F.affine_grid(theta, (2, 3, 4, 5), align_corners=align)
        np.testing.assert_allclose(F.grid_sample(x, grid, align_corners=align).numpy(), x.numpy(), atol=1e-12)


def test_affine_grid_matches_the_definition_and_is_differentiable():
    rng = np.random.default_rng(3)
    th = rng.normal(size=(2, 2, 3))
    for align in (False, True):
        got = F.affine_grid(bp.tensor(th), (2, 1, 3, 4), align_corners=align).numpy()
        xs = np.linspace(-1, 1, 4) * (1 if align else 3 / 4)
        ys = np.linspace(-1, 1, 3) * (1 if align else 2 / 3)
        for b in range(2):
            for i in range(3):
                for j in range(4):
                    np.testing.assert_allclose(got[b, i, j], th[b] @ np.array([xs[j], ys[i], 1.0]), atol=1e-12)
    theta = bp.tensor(th, requires_grad=True)
    assert bp.autograd.gradcheck(lambda t: F.affine_grid(t, (2, 1, 3, 4), align_corners=False), (theta,))


def test_grid_sample_errors_name_the_problem():
    x, grid = bp.randn(1, 1, 3, 3), bp.randn(1, 2, 2, 2)
    with pytest.raises(ValueError, match="expected mode"):
        F.grid_sample(x, grid, mode="cubic")
    with pytest.raises(ValueError, match="padding_mode"):
        F.grid_sample(x, grid, padding_mode="wrap")
    with pytest.raises(RuntimeError, match="bicubic interpolation only supports 4D input"):
        F.grid_sample(bp.randn(1, 1, 2, 2, 2), bp.randn(1, 1, 1, 1, 3), mode="bicubic", align_corners=False)
    with pytest.raises(RuntimeError, match="same batch size"):
        F.grid_sample(x, bp.randn(2, 2, 2, 2), align_corners=False)
    with pytest.raises(ValueError, match="Nx2x3"):
        F.affine_grid(bp.randn(1, 3, 3), (1, 1, 2, 2), align_corners=False)


def test_grid_sample_on_the_gpu_matches_the_cpu():
    from conftest import gpu_or_skip

    gpu_or_skip()
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    grid = rng.uniform(-1.3, 1.3, size=(2, 4, 7, 2)).astype(np.float32)
    w = rng.normal(size=(2, 3, 4, 7)).astype(np.float32)
    results = []
    for dev in ("cpu", "gpu"):
        a = bp.tensor(x, device=dev, requires_grad=True)
        g = bp.tensor(grid, device=dev, requires_grad=True)
        out = F.grid_sample(a, g, padding_mode="reflection", align_corners=False)
        (out * bp.tensor(w, device=dev)).sum().backward()
        results.append([t.detach().cpu().numpy() for t in (out, a.grad, g.grad)])
    for c, gg in zip(*results):
        np.testing.assert_allclose(gg, c, atol=1e-4, rtol=1e-4)
