"""Randomised low-rank factorisations: ``torch.svd_lowrank`` and ``torch.pca_lowrank``.

Halko, Martinsson and Tropp (2009), algorithms 4.4 and 5.1, as PyTorch runs them: a Gaussian test
matrix ``R`` (``n x q``), the range of ``A R`` orthonormalised by QR, ``niter`` subspace
(power) iterations alternating ``A^H Q`` and ``A Q`` with a QR after each, then the exact SVD of
the small ``q x n`` matrix ``Q^H A``. A wide matrix is factorised through its transpose, so ``Q``
is always the taller side. Everything is a composite of ``matmul``, ``linalg.qr`` and
``linalg.svd``, so it runs on every device and is differentiable wherever those are (the
gradient of a random sketch is the gradient for the drawn ``R``).

The draws come from backprop_rs's generator, not PyTorch's stream, so the factors of a matrix
whose rank exceeds ``q`` are approximations that differ from PyTorch's run by run (as PyTorch's
differ between its own seeds); for rank at most ``q`` both recover the exact leading factors.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

from . import _core
from ._core import Tensor


def _floating(a: Tensor) -> Tensor:
    return a if a.is_floating_point() else a.to(_core.float32)


def _approximate_basis(a: Tensor, q: int, niter: int, m: Optional[Tensor]) -> Tensor:
    """An ``m x q`` matrix with orthonormal columns whose range approximates that of ``a - m``."""
    from .linalg import qr

    r = _core.randn(a.shape[-1], q, dtype=a.dtype).to(a.device)
    x = a @ r if m is None else a @ r - m @ r
    basis = qr(x).Q
    for _ in range(niter):
        x = a.mH @ basis if m is None else a.mH @ basis - m.mH @ basis
        basis = qr(x).Q
        x = a @ basis if m is None else a @ basis - m @ basis
        basis = qr(x).Q
    return basis


def _check_matrix(name: str, a: Any) -> Tensor:
    if not isinstance(a, Tensor):
        raise TypeError(f"{name}(): argument 'A' must be Tensor, not {type(a).__name__}")
    if a.dim() < 2:
        raise ValueError(f"{name}(): expected a matrix or a batch of matrices, got a tensor of shape {tuple(a.shape)}")
    return _floating(a)


def _svd_lowrank(a: Tensor, q: int, niter: int, m: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    from .linalg import svd

    rows, cols = a.shape[-2:]
    if m is not None:
        m = _floating(m).broadcast_to(tuple(a.shape))
    wide = rows < cols
    if wide:
        a = a.mH
        m = None if m is None else m.mH
    basis = _approximate_basis(a, q, niter, m)
    b = basis.mH @ a if m is None else basis.mH @ a - basis.mH @ m
    u, s, vh = svd(b, full_matrices=False)
    v = vh.mH
    u = basis @ u
    return (v, s, u) if wide else (u, s, v)


def svd_lowrank(A: Tensor, q: Optional[int] = 6, niter: int = 2, M: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """``torch.svd_lowrank``: ``(U, S, V)`` with ``A - M ~ U diag(S) V^H`` of rank ``q`` (``V``, not
    ``V^H``, as ``torch.svd``), by the randomised range finder with ``niter`` subspace iterations.

    >>> import backprop_rs as bp
    >>> a = bp.randn(20, 3, dtype=bp.float64) @ bp.randn(3, 10, dtype=bp.float64)  # rank 3
    >>> u, s, v = bp.svd_lowrank(a, q=4)
    >>> bool(bp.allclose(u[:, :3] * s[:3] @ v[:, :3].mT, a))
    True
    """
    a = _check_matrix("svd_lowrank", A)
    q = 6 if q is None else int(q)
    if q < 0:
        raise ValueError(f"q(={q}) must be a non-negative integer")
    if niter < 0:
        raise ValueError(f"niter(={niter}) must be non-negative integer")
    return _svd_lowrank(a, q, int(niter), M)


def pca_lowrank(A: Tensor, q: Optional[int] = None, center: bool = True,
                niter: int = 2) -> Tuple[Tensor, Tensor, Tensor]:
    """``torch.pca_lowrank``: the low-rank SVD of ``A`` less its column means (``center=True``):
    ``V``'s columns are the principal directions, ``S**2 / (m - 1)`` the variances along them,
    ``A V[:, :k]`` the data projected on the first ``k``. ``q`` defaults to ``min(6, m, n)``.

    >>> import backprop_rs as bp
    >>> x = bp.randn(50, 2, dtype=bp.float64) @ bp.tensor([[3.0, 0.0], [0.0, 0.5]], dtype=bp.float64)
    >>> u, s, v = bp.pca_lowrank(x, q=2)
    >>> round(abs(v[0, 0].item()), 1)  # the first direction is the stretched axis
    1.0
    """
    a = _check_matrix("pca_lowrank", A)
    rows, cols = a.shape[-2:]
    if q is None:
        q = min(6, rows, cols)
    elif not (0 <= q <= min(rows, cols)):
        raise ValueError(f"q(={q}) must be non-negative integer and not greater than min(m, n)={min(rows, cols)}")
    if niter < 0:
        raise ValueError(f"niter(={niter}) must be non-negative integer")
    if not center:
        return _svd_lowrank(a, int(q), int(niter), None)
    return _svd_lowrank(a - a.mean(-2, keepdim=True), int(q), int(niter), None)


__all__ = ["svd_lowrank", "pca_lowrank"]
