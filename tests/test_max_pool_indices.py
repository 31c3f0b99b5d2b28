"""max_pool2d's window scan against a scalar loop of PyTorch's CPU kernel: per window, the
first in-bounds tap, then `val > maxval || isnan(val)` in row-major tap order (so ties keep
the first maximum and a NaN wins, the last NaN winning over an earlier one). Ties and NaNs are
made common on purpose: they are where a vectorised scan could silently pick another index."""

import math

import numpy as np
import pytest

import backprop_rs as bp
import backprop_rs.nn.functional as F
from conftest import gpu_or_skip


def _out_len(n, k, s, p, d, ceil):
    eff = d * (k - 1) + 1
    num = n + 2 * p - eff
    o = (num + (s - 1 if ceil else 0)) // s + 1
    if ceil and (o - 1) * s >= n + p:
        o -= 1
    return o


def _reference(x, k, s, p, d, ceil):
    n, c, h, w = x.shape
    oh, ow = (_out_len(h, k[i], s[i], p[i], d[i], ceil) for i, h in enumerate((h, w)))
    vals = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((n, c, oh, ow), np.int64)
    for b in range(n):
        for ch in range(c):
            for i in range(oh):
                for j in range(ow):
                    hs, ws = i * s[0] - p[0], j * s[1] - p[1]
                    best, bi = -math.inf, None
                    for ki in range(k[0]):
                        r = hs + ki * d[0]
                        if not 0 <= r < h:
                            continue
                        for kj in range(k[1]):
                            q = ws + kj * d[1]
                            if not 0 <= q < w:
                                continue
                            v = x[b, ch, r, q]
                            if bi is None or v > best or math.isnan(v):
                                best, bi = v, r * w + q
                    vals[b, ch, i, j], idx[b, ch, i, j] = best, bi
    return vals, idx


CASES = [
    # (shape, kernel, stride, padding, dilation, ceil_mode)
    ((2, 3, 9, 11), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 10, 13), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 1, 12, 12), (3, 2), (1, 3), (1, 1), (2, 1), False),
    ((1, 2, 8, 40), (2, 3), (3, 1), (1, 0), (1, 2), True),
    ((1, 1, 5, 5), (5, 5), (1, 1), (2, 2), (1, 1), False),
    ((3, 2, 7, 64), (1, 4), (1, 4), (0, 2), (1, 1), True),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_indices_match_pytorch_scan(case, dtype):
    shape, k, s, p, d, ceil = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.integers(-3, 3, size=shape).astype(dtype)  # many ties
    x[rng.random(shape) < 0.08] = np.nan
    x[rng.random(shape) < 0.03] = -np.inf
    ev, ei = _reference(x, k, s, p, d, ceil)
    y, i = F.max_pool2d(bp.tensor(x), k, s, p, d, ceil_mode=ceil, return_indices=True)
    np.testing.assert_array_equal(i.numpy(), ei)
    np.testing.assert_array_equal(y.numpy(), ev)  # NaNs compare equal here


def test_int64_input():
    rng = np.random.default_rng(5)
    x = rng.integers(-4, 4, size=(2, 3, 9, 10))
    ev, ei = _reference(x.astype(np.float64), (3, 3), (2, 2), (1, 1), (1, 1), False)
    y, i = F.max_pool2d(bp.tensor(x), 3, 2, 1, return_indices=True)
    assert y.dtype == bp.int64
    np.testing.assert_array_equal(i.numpy(), ei)
    np.testing.assert_array_equal(y.numpy(), ev.astype(np.int64))


def test_gpu_matches_cpu():
    gpu_or_skip()
    rng = np.random.default_rng(9)
    x = rng.integers(-3, 3, size=(2, 3, 13, 17)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    ev, ei = _reference(x, (3, 3), (2, 2), (1, 1), (1, 1), True)
    y, i = F.max_pool2d(bp.tensor(x).to("gpu"), 3, 2, 1, ceil_mode=True, return_indices=True)
    assert y.device.type == "gpu"
    np.testing.assert_array_equal(i.numpy(), ei)
    np.testing.assert_array_equal(y.numpy(), ev)
