"""The bundled handwritten-digits data set (UCI, CC BY 4.0; see datasets/README.md)."""

from __future__ import annotations

import gzip
from typing import NamedTuple

import numpy as np

from .. import _core
from .._core import Tensor

N_TEST = 360  # the conventional 80/20 split of the 1797 images


class Digits(NamedTuple):
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor


def _raw() -> np.ndarray:
    # Imported here: importlib.resources (pathlib, tempfile, shutil, ...) costs ~5 ms of every
    # `import backprop_rs` otherwise.
    from importlib import resources

    path = resources.files("backprop_rs").joinpath("datasets/digits.csv.gz")
    with path.open("rb") as f, gzip.open(f, "rt") as g:
        return np.loadtxt(g, delimiter=",", dtype=np.float64)


def load_digits(dtype=None, normalize: bool = True) -> Digits:
    """1797 8x8 images of the digits 0-9: 1437 for training, 360 for testing, in a fixed
    shuffled split (the same on every machine). Pixels are scaled to [0, 1] when ``normalize``.
    Returns ``(x_train [1437, 64], y_train [1437], x_test [360, 64], y_test [360])``."""
    data = _raw()
    x, y = data[:, :64], data[:, 64].astype(np.int64)
    if normalize:
        x = x / 16.0
    order = np.random.default_rng(20240601).permutation(len(y))  # fixed split, independent of any seed
    x, y = x[order], y[order]
    dt = dtype or _core.float32
    tr, te = slice(0, len(y) - N_TEST), slice(len(y) - N_TEST, None)
    return Digits(_core.tensor(x[tr], dtype=dt), _core.tensor(y[tr]), _core.tensor(x[te], dtype=dt), _core.tensor(y[te]))
