"""Weight initialisation (PyTorch's names and formulas; the filling happens in Rust)."""

from __future__ import annotations

import math

from .. import _core
from .._core import Tensor

calculate_gain = _core.calculate_gain


def _fans(t: Tensor):
    return _core._fans(t)


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    _core._init(tensor, "uniform", a, b)
    return tensor


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    _core._init(tensor, "normal", mean, std)
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    _core._init(tensor, "constant", val)
    return tensor


def zeros_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    return constant_(tensor, 1.0)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    _core._init(tensor, "kaiming_uniform", a, 0.0, mode, nonlinearity)
    return tensor


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu") -> Tensor:
    _core._init(tensor, "kaiming_normal", a, 0.0, mode, nonlinearity)
    return tensor


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    _core._init(tensor, "xavier_uniform", gain)
    return tensor


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    _core._init(tensor, "xavier_normal", gain)
    return tensor


def _no_grad():
    from ..autograd import no_grad

    return no_grad()


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """``torch.nn.init.trunc_normal_``: a normal(``mean``, ``std``) truncated to ``[a, b]``, by
    PyTorch's method: uniform values between the two CDF levels, mapped back through ``erfinv``,
    then clamped (for rounding at the ends)."""
    from ..math_ops import erfinv

    def cdf(x: float) -> float:
        return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0

    if mean < a - 2 * std or mean > b + 2 * std:
        import warnings

        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. The distribution of values "
                      "may be incorrect.", stacklevel=2)
    lo, hi = cdf((a - mean) / std), cdf((b - mean) / std)
    with _no_grad():
        u = _core.empty(tuple(tensor.shape), dtype=_core.float64)
        uniform_(u, 2 * lo - 1, 2 * hi - 1)
        v = erfinv(u) * (std * math.sqrt(2.0)) + mean
        tensor.copy_(v.clamp(a, b).to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """``torch.nn.init.orthogonal_``: a (semi-)orthogonal matrix from the QR decomposition of a
    normal one (NumPy's QR on the host; signs fixed by R's diagonal, as PyTorch), times ``gain``."""
    import numpy as np

    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    with _no_grad():
        flat = _core.empty((rows, cols), dtype=_core.float64)
        normal_(flat)
        m = flat.numpy()
        if rows < cols:
            m = m.T
        q, r = np.linalg.qr(m)
        q = q * np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        tensor.copy_(_core.tensor(q.reshape(tuple(tensor.shape)) * gain).to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def eye_(tensor: Tensor) -> Tensor:
    """``nn.init.eye_``: the identity in a 2-d tensor (ones on the main diagonal)."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    with _no_grad():
        tensor.zero_()
        tensor.fill_diagonal_(1.0)
    return tensor


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """``nn.init.dirac_``: a 3/4/5-d convolution weight that passes its input channels through
    (a 1 at each kernel's centre, per group)."""
    dims = tensor.ndim
    if dims not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    sizes = tensor.shape
    if sizes[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = sizes[0] // groups
    min_dim = min(out_per_group, sizes[1])
    import numpy as np

    w = np.zeros(tuple(sizes))
    centre = tuple(s // 2 for s in sizes[2:])
    for g in range(groups):
        for d in range(min_dim):
            w[(g * out_per_group + d, d) + centre] = 1.0
    with _no_grad():
        tensor.copy_(_core.tensor(w).to(device=tensor.device, dtype=tensor.dtype))
    return tensor


def sparse_(tensor: Tensor, sparsity: float, std: float = 0.01, generator=None) -> Tensor:
    """``nn.init.sparse_``: normal(0, ``std``) with ``ceil(sparsity * rows)`` entries of each
    column set to zero (rows drawn at random)."""
    import numpy as np

    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    rows, cols = tensor.shape
    zeros = int(math.ceil(sparsity * rows))
    with _no_grad():
        normal_(tensor, 0.0, std)
        mask = np.ones((rows, cols))
        order = _core.rand(cols, rows).argsort(1).numpy()  # the global stream: seeded programs repeat
        for c in range(cols):
            mask[order[c, :zeros], c] = 0.0
        tensor.mul_(_core.tensor(mask).to(device=tensor.device, dtype=tensor.dtype))
    return tensor


__all__ = [
    "calculate_gain", "eye_", "dirac_", "sparse_", "uniform_", "normal_", "constant_", "zeros_", "ones_", "trunc_normal_", "orthogonal_",
    "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
]
_ = math
