"""``torch.linalg``'s solvers and decompositions: ``inv``, ``det``, ``slogdet``, ``solve``,
``cholesky``, ``eigh`` / ``eigvalsh``, ``svd`` / ``svdvals``, ``qr``, ``pinv``,
``matrix_rank``, and the composites ``matrix_power``, ``matrix_exp``, ``multi_dot``,
``vecdot``.

The factorisations run on the host in NumPy's LAPACK (batched; a GPU tensor is read back and the
result uploaded): the engine has no factorisation kernels yet. Each is a custom ``Function``
whose backward is PyTorch's formula written with tensor ops (``inv``'s, ``solve``'s...), so
the gradients are themselves differentiable: double backward works for ``inv``, ``det``,
``slogdet``, ``solve``, ``cholesky``, ``eigh``, ``svd`` (through U, S and Vh), ``qr`` (reduced)
and ``pinv``.
"""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any, Optional, Sequence

import numpy as np

from . import _core
from ._core import Tensor
from .autograd.function import Function

__all__ = ["inv", "det", "slogdet", "logdet", "solve", "cholesky", "eigh", "eigvalsh", "svd", "svdvals", "qr",
           "pinv", "matrix_rank", "matrix_power", "matrix_exp", "multi_dot", "vecdot", "inv_ex", "cholesky_ex"]

_SlogDet = namedtuple("slogdet", ["sign", "logabsdet"])
_EighResult = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
_SvdResult = namedtuple("svd", ["U", "S", "Vh"])
_Qr_result = namedtuple("qr", ["Q", "R"])
_InvEx = namedtuple("inv_ex", ["inverse", "info"])
_CholEx = namedtuple("cholesky_ex", ["L", "info"])


def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _upload(a: Any, like: Tensor) -> Tensor:
    a = np.ascontiguousarray(np.asarray(a, dtype=_np_dtype(like)))
    out = _core.from_numpy(a)
    return out if like.device.type == "cpu" else out.to(like.device)


def _np_dtype(t: Tensor) -> Any:
    return np.float64 if t.dtype == _core.float64 else np.float32


def _square(op: str, a: Tensor) -> None:
    if not a.is_floating_point():
        raise RuntimeError(f"linalg.{op}: Expected a floating point tensor as input. Got {a.dtype}")
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise RuntimeError(f"linalg.{op}: A must be batches of square matrices, but they are "
                           f"{a.shape[-2] if a.ndim >= 2 else '?'} by {a.shape[-1] if a.ndim else '?'} matrices")


def _mt(t: Tensor) -> Tensor:
    return t.transpose(-2, -1)


def _widen(a: Tensor) -> np.ndarray:
    # LAPACK in the input's precision (float32 stays float32, as PyTorch's)
    return _host(a).astype(_np_dtype(a))


# ------------------------------------------------------------------ inverse, determinant, solve


class _Inv(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        try:
            y = np.linalg.inv(_widen(a))
        except np.linalg.LinAlgError:
            raise RuntimeError("linalg.inv: The diagonal element is zero, the inversion could not be completed "
                               "because the input matrix is singular.") from None
        out = _upload(y, a)
        ctx.save_for_backward(a)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (a,) = ctx.saved_tensors
        y = inv(a)  # recorded when create_graph: the backward is differentiable
        return -(_mt(y) @ g @ _mt(y))


def inv(A: Tensor) -> Tensor:
    """``torch.linalg.inv``: the inverse of each square matrix (singular ones raise)."""
    _square("inv", A)
    return _Inv.apply(A)


def inv_ex(A: Tensor, *, check_errors: bool = False) -> Any:
    """``torch.linalg.inv_ex``: ``(inverse, info)``; ``info`` is 0, or raises when ``check_errors``."""
    return _InvEx(inv(A), _core.zeros(tuple(A.shape[:-2]), dtype=_core.int32))


class _Det(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        ctx.save_for_backward(a)
        return _upload(np.linalg.det(_widen(a)), a)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (a,) = ctx.saved_tensors
        d = det(a)
        return (g * d).unsqueeze(-1).unsqueeze(-1) * _mt(inv(a))


def det(A: Tensor) -> Tensor:
    """``torch.linalg.det``. Its gradient ``det(A) * A^-T`` needs an invertible ``A``."""
    _square("det", A)
    return _Det.apply(A)


class _LogAbsDet(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        ctx.save_for_backward(a)
        _, logabs = np.linalg.slogdet(_widen(a))
        return _upload(logabs, a)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (a,) = ctx.saved_tensors
        return g.unsqueeze(-1).unsqueeze(-1) * _mt(inv(a))


def slogdet(A: Tensor) -> Any:
    """``torch.linalg.slogdet``: ``(sign, logabsdet)``; the gradient flows through ``logabsdet``."""
    _square("slogdet", A)
    sign, _ = np.linalg.slogdet(_widen(A))
    return _SlogDet(_upload(sign, A), _LogAbsDet.apply(A))


def logdet(A: Tensor) -> Tensor:
    """``torch.logdet``: ``log(det(A))``: NaN for a negative determinant, ``-inf`` for zero."""
    sign, logabs = slogdet(A)
    return _core.where(sign > 0, logabs, _core.where(sign == 0, float("-inf"), float("nan")))


def _is_vector_rhs(A: Tensor, B: Tensor) -> bool:
    return B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape[:-1]))


class _Solve(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor) -> Tensor:
        try:
            x = np.linalg.solve(_widen(a), _widen(b))
        except np.linalg.LinAlgError:
            raise RuntimeError("linalg.solve: The solver failed because the input matrix is singular.") from None
        out = _upload(x, a)
        ctx.save_for_backward(a, out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, x = ctx.saved_tensors
        gb = _Solve.apply(_mt(a), g)
        ga = -(gb @ _mt(x))
        return ga, gb


def solve(A: Tensor, B: Tensor, *, left: bool = True, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.solve``: ``X`` with ``A X = B`` (``X A = B`` for ``left=False``); ``B`` may
    be a vector (or a batch of them)."""
    _square("solve", A)
    if not left:
        r = _mt(solve(_mt(A), _mt(B)))
    elif _is_vector_rhs(A, B):
        r = _Solve.apply(A, B.unsqueeze(-1)).squeeze(-1)
    else:
        r = _Solve.apply(A, B)
    if out is not None:
        out.copy_(r)
        return out
    return r


def _triangle(a: Tensor, upper: bool, unit: bool) -> Tensor:
    t = a.triu(1 if unit else 0) if upper else a.tril(-1 if unit else 0)
    return t


class _SolveTriangular(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, upper: bool, unit: bool) -> Tensor:
        m = _widen(a)
        m = np.triu(m) if upper else np.tril(m)
        if unit:
            idx = np.arange(m.shape[-1])
            m[..., idx, idx] = 1.0
        # a triangular matrix through the general solver: LAPACK's LU of it pivots nothing away
        # from the triangle, and NumPy has no batched triangular solve (SciPy is not a dependency)
        with np.errstate(all="ignore"):
            x = np.linalg.solve(m, np.broadcast_to(_widen(b), np.broadcast_shapes(m.shape[:-2], b.shape[:-2]) + tuple(b.shape[-2:])))
        out = _upload(x, a)
        ctx.save_for_backward(a, out)
        ctx.upper, ctx.unit = upper, unit
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, x = ctx.saved_tensors
        # A X = B: gB = A^-T g (A^T is triangular the other way), gA = -gB X^T on A's triangle
        gb = _SolveTriangular.apply(_mt(a), g, not ctx.upper, ctx.unit)
        ga = _triangle(-(gb @ _mt(x)), ctx.upper, ctx.unit)
        return ga, gb, None, None


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True, unitriangular: bool = False,
                     out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.solve_triangular``: ``X`` with ``A X = B`` (``X A = B`` for ``left=False``)
    for triangular ``A``; only its ``upper`` (or lower) triangle is read, and its diagonal is taken
    as ones with ``unitriangular``. Differentiable in both."""
    _square("solve_triangular", A)
    if B.ndim < 2:
        raise RuntimeError(f"linalg.solve_triangular: The input tensor B must have at least 2 dimensions, got {B.ndim}")
    if left:
        r = _SolveTriangular.apply(A, B, bool(upper), bool(unitriangular))
    else:
        r = _mt(_SolveTriangular.apply(_mt(A), _mt(B), not upper, bool(unitriangular)))
    if out is not None:
        out.copy_(r)
        return out
    return r


# ------------------------------------------------------------------ Cholesky, eigh


class _Cholesky(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor) -> Tensor:
        try:
            lo = np.linalg.cholesky(_widen(a))
        except np.linalg.LinAlgError:
            raise RuntimeError("linalg.cholesky: The factorization could not be completed because the input is not "
                               "positive-definite.") from None
        out = _upload(lo, a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Tensor:
        (lo,) = ctx.saved_tensors
        # PyTorch's cholesky_backward: sym(L^-T Phi(L^T gL) L^-1), Phi = lower triangle, half diagonal
        phi = (_mt(lo) @ g).tril()
        phi = phi - 0.5 * phi.diagonal(0, -2, -1).diag_embed()
        li = inv(lo)
        s = _mt(li) @ phi @ li
        return 0.5 * (s + _mt(s))


def cholesky(A: Tensor, *, upper: bool = False, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.cholesky``: lower-triangular ``L`` with ``A = L L^T`` (``upper``: ``L^T``)."""
    _square("cholesky", A)
    r = _Cholesky.apply(A)
    r = _mt(r) if upper else r
    if out is not None:
        out.copy_(r)
        return out
    return r


def cholesky_ex(A: Tensor, *, upper: bool = False, check_errors: bool = False) -> Any:
    """``torch.linalg.cholesky_ex``: ``(L, info)`` (raises on a matrix that is not positive-definite)."""
    return _CholEx(cholesky(A, upper=upper), _core.zeros(tuple(A.shape[:-2]), dtype=_core.int32))


class _Eigh(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, lower: bool) -> Any:
        w, v = np.linalg.eigh(_widen(a), UPLO="L" if lower else "U")
        lam, vec = _upload(w, a), _upload(v, a)
        ctx.save_for_backward(lam, vec)
        return lam, vec

    @staticmethod
    def backward(ctx: Any, g_lam: Optional[Tensor], g_vec: Optional[Tensor]) -> Any:
        lam, vec = ctx.saved_tensors
        n = lam.shape[-1]
        inner = _core.zeros(tuple(vec.shape), dtype=vec.dtype, device=vec.device)
        if g_vec is not None:
            vg = _mt(vec) @ g_vec
            skew = 0.5 * (vg - _mt(vg))
            gap = lam.unsqueeze(-2) - lam.unsqueeze(-1)  # E_ij = lam_j - lam_i
            eye = _core.eye(n, dtype=_core.bool_, device=vec.device)
            inner = inner + _core.where(eye, 0.0, skew / _core.where(eye, 1.0, gap))
        if g_lam is not None:
            inner = inner + g_lam.diag_embed()
        ga = vec @ inner @ _mt(vec)
        return 0.5 * (ga + _mt(ga)), None


def eigh(A: Tensor, UPLO: str = "L") -> Any:
    """``torch.linalg.eigh``: ``(eigenvalues, eigenvectors)`` of symmetric matrices, eigenvalues
    ascending (only the ``UPLO`` triangle is read). The eigenvectors' gradient needs distinct
    eigenvalues, as PyTorch's."""
    _square("eigh", A)
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    lam, vec = _Eigh.apply(A, UPLO == "L")
    return _EighResult(lam, vec)


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:
    """``torch.linalg.eigvalsh``: the eigenvalues of symmetric matrices, ascending."""
    return eigh(A, UPLO).eigenvalues


# ------------------------------------------------------------------ SVD, QR, pinv, rank


class _Svd(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, full: bool) -> Any:
        u, s, vh = np.linalg.svd(_widen(a), full_matrices=full)
        us, ss, vs = _upload(u, a), _upload(s, a), _upload(vh, a)
        ctx.save_for_backward(us, ss, vs)
        return us, ss, vs

    @staticmethod
    def backward(ctx: Any, g_u: Optional[Tensor], g_s: Optional[Tensor], g_vh: Optional[Tensor]) -> Any:
        u, s, vh = ctx.saved_tensors
        k = s.shape[-1]
        # full_matrices: the columns of U (rows of Vh) past min(m, n) are an arbitrary basis of
        # the complement, so their gradients are ignored, as PyTorch documents
        u, vh = u[..., :, :k], vh[..., :k, :]
        g_u = None if g_u is None else g_u[..., :, :k]
        g_vh = None if g_vh is None else g_vh[..., :k, :]
        return _svd_backward(g_u, g_s, g_vh, u, s, vh), None


def _svd_backward(g_u: Optional[Tensor], g_s: Optional[Tensor], g_vh: Optional[Tensor], u: Tensor, s: Tensor,
                  vh: Tensor) -> Tensor:
    """The gradient of ``A = U diag(S) Vh`` (reduced: U m x k, Vh k x n, k = min(m, n)) for
    real matrices, Townsend's "Differentiating the singular value decomposition" in the form
    PyTorch's ``svd_backward`` writes it: with ``E_ij = s_j^2 - s_i^2``,
    ``inner = (skew(U^T gU) S + S skew(Vh gVh^T)) / E + diag(gS)``, ``gA = U inner Vh`` plus,
    for a tall A, ``(I - U U^T) gU S^-1 Vh`` (for a wide one ``U S^-1 gVh (I - V V^T)``). It is
    finite only for distinct singular values (and nonzero ones where the projection term
    divides by S), as PyTorch's. Written with tensor ops, so it is itself differentiable."""
    m, n = u.shape[-2], vh.shape[-1]
    if g_u is None and g_vh is None:
        if g_s is None:
            return _core.zeros((*u.shape[:-1], n), dtype=u.dtype, device=u.device)
        return u @ (g_s.unsqueeze(-1) * vh)
    k = s.shape[-1]
    s_row, s_col = s.unsqueeze(-2), s.unsqueeze(-1)
    s2 = s * s
    eye = _core.eye(k, dtype=_core.bool_, device=s.device)
    gap = _core.where(eye, 1.0, s2.unsqueeze(-2) - s2.unsqueeze(-1))
    inner: Any = 0.0
    if g_u is not None:
        ug = _mt(u) @ g_u
        inner = (ug - _mt(ug)) * s_row
    if g_vh is not None:
        vg = vh @ _mt(g_vh)
        inner = inner + s_col * (vg - _mt(vg))
    inner = inner / gap  # the skew parts vanish on the diagonal; gap is 1 there
    if g_s is not None:
        inner = inner + g_s.diag_embed()
    if m > n and g_u is not None:
        ga = u @ inner
        gus = g_u / s_row
        ga = ga + gus - u @ (_mt(u) @ gus)
        return ga @ vh
    if m < n and g_vh is not None:
        ga = inner @ vh
        sgv = g_vh / s_col
        ga = ga + sgv - (sgv @ _mt(vh)) @ vh
        return u @ ga
    return u @ (inner @ vh) if m >= n else (u @ inner) @ vh


def svd(A: Tensor, full_matrices: bool = True, *, driver: Any = None) -> Any:
    """``torch.linalg.svd``: ``(U, S, Vh)`` with ``A = U diag(S) Vh``, ``S`` descending."""
    if A.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    u, s, vh = _Svd.apply(A, bool(full_matrices))
    return _SvdResult(u, s, vh)


def svdvals(A: Tensor, *, driver: Any = None) -> Tensor:
    """``torch.linalg.svdvals``: the singular values, descending (gradient ``U diag(g) Vh``)."""
    return svd(A, full_matrices=False).S


class _Qr(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, mode: str) -> Any:
        q, r = np.linalg.qr(_widen(a), mode="complete" if mode == "complete" else "reduced")
        qt, rt = _upload(q, a), _upload(r, a)
        ctx.mode = mode
        ctx.save_for_backward(qt, rt)
        ctx.m, ctx.n = a.shape[-2], a.shape[-1]
        return qt, rt

    @staticmethod
    def backward(ctx: Any, g_q: Optional[Tensor], g_r: Optional[Tensor]) -> Any:
        # PyTorch's texts for the two cases it cannot differentiate
        if ctx.mode == "r":
            raise RuntimeError("The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                               "Please use linalg.qr(A, mode='reduced') if you are going to differentiate through "
                               "linalg.qr.")
        if ctx.mode == "complete" and ctx.m > ctx.n:
            raise RuntimeError("The QR decomposition is not differentiable when mode='complete' and nrows > ncols.")
        q, r = ctx.saved_tensors
        g_q = _core.zeros_like(q) if g_q is None else g_q
        g_r = _core.zeros_like(r) if g_r is None else g_r
        m, n = ctx.m, ctx.n
        if m >= n:
            return _qr_backward_deep(q, r, g_q, g_r), None
        # wide: A = [X | Y] with X = Q U square, Y = Q V; X's rule with Y's share folded into gQ
        a = q @ r
        y, u = a[..., :, m:], r[..., :, :m]
        g_u, g_v = g_r[..., :, :m], g_r[..., :, m:]
        g_x = _qr_backward_deep(q, u, g_q + y @ _mt(g_v), g_u)
        return _core.cat([g_x, q @ g_v], -1), None


def _qr_backward_deep(q: Tensor, r: Tensor, g_q: Tensor, g_r: Tensor) -> Tensor:
    """The gradient of the reduced ``A = Q R`` for ``m >= n`` (R square, invertible), the
    formula of Walter and Lehmann ("Algorithmic differentiation of linear algebra functions
    with application in optimum experimental design"): with ``M = tril(skew(Q^T gQ) +
    skew(R gR^T))``, ``gA = Q (gR + M R^-T) + (gQ - Q Q^T gQ) R^-T``."""
    qg = _mt(q) @ g_q
    rg = r @ _mt(g_r)
    low = ((qg - _mt(qg)) + (rg - _mt(rg))).tril()
    rt = _mt(r)  # X R^-T solves Y R^T = X, R^T lower triangular
    first = q @ (g_r + solve_triangular(rt, low, upper=False, left=False))
    second = solve_triangular(rt, g_q - q @ qg, upper=False, left=False)
    return first + second


def qr(A: Tensor, mode: str = "reduced") -> Any:
    """``torch.linalg.qr``: ``(Q, R)`` (``mode`` reduced, complete or r). Differentiable in the
    reduced mode (and in the complete one when ``m <= n``), as PyTorch's."""
    if mode not in ("reduced", "complete", "r"):
        raise RuntimeError(f"qr received unrecognized mode '{mode}' but expected one of 'reduced' (default), 'r', "
                           "or 'complete'")
    if A.ndim < 2:
        raise RuntimeError("linalg.qr: The input tensor A must have at least 2 dimensions.")
    q, r = _Qr.apply(A, mode)
    if mode == "r":
        return _Qr_result(_core.empty((0,), dtype=A.dtype, device=A.device), r)
    return _Qr_result(q, r)


class _Pinv(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, fn: Any) -> Tensor:
        p = _upload(fn(_widen(a)), a)
        ctx.save_for_backward(a, p)
        return p

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, p = ctx.saved_tensors
        return _pinv_backward(g, p, a), None


def _pinv_backward(g: Tensor, p: Tensor, a: Tensor) -> Tensor:
    """The gradient of ``P = pinv(A)`` where the rank of A is locally constant (Golub and
    Pereyra's derivative of the pseudo-inverse, transposed): ``gA = -P^T G P^T + (I - A P) G^T
    P P^T + P^T P G^T (I - P A)``, with the identities multiplied out so no m x m or n x n
    identity is built. Tensor ops throughout, so it is itself differentiable."""
    pt, gt = _mt(p), _mt(g)
    left = gt @ (p @ pt)      # G^T P P^T (m x n)
    right = (pt @ p) @ gt     # P^T P G^T (m x n)
    return -(pt @ g @ pt) + left - a @ (p @ left) + right - (right @ p) @ a


def pinv(A: Tensor, *, atol: Any = None, rtol: Any = None, hermitian: bool = False) -> Tensor:
    """``torch.linalg.pinv``: the Moore-Penrose pseudo-inverse (NumPy's), differentiable where the
    rank is locally constant (PyTorch's ``pinv_backward`` formula)."""
    tol = rtol if rtol is not None else (max(A.shape[-2:]) * float(np.finfo(_np_dtype(A)).eps) if atol is None
                                         else 0.0)

    def fn(a: np.ndarray) -> np.ndarray:
        if atol is None:
            return np.linalg.pinv(a, rcond=tol, hermitian=hermitian)
        s = np.linalg.svd(a, compute_uv=False)
        cut = np.maximum(float(atol), tol * s[..., :1])
        return np.linalg.pinv(a, rcond=cut / np.maximum(s[..., :1], 1e-300), hermitian=hermitian)

    return _Pinv.apply(A, fn)


def matrix_rank(A: Tensor, *, atol: Any = None, rtol: Any = None, hermitian: bool = False) -> Tensor:
    """``torch.linalg.matrix_rank``: singular values above ``max(atol, rtol * s_max)`` (default
    ``rtol = eps * max(m, n)``)."""
    s = np.linalg.svd(_widen(A), compute_uv=False)
    eps = float(np.finfo(_np_dtype(A)).eps)
    r = rtol if rtol is not None else (max(A.shape[-2:]) * eps if atol is None else 0.0)
    tol = np.maximum(float(atol or 0.0), r * (s[..., :1] if s.shape[-1] else 0.0))
    return _core.tensor(np.asarray((s > tol).sum(-1), dtype=np.int64), device=A.device)


# ------------------------------------------------------------------ composites


def matrix_power(A: Tensor, n: int) -> Tensor:
    """``torch.linalg.matrix_power``: ``A^n`` by repeated squaring (``A^-1`` powers for ``n < 0``,
    the identity for 0)."""
    _square("matrix_power", A)
    if n == 0:
        eye = _core.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        return eye.expand(list(A.shape)).clone()
    base = inv(A) if n < 0 else A
    n = abs(n)
    result: Optional[Tensor] = None
    while n:
        if n & 1:
            result = base if result is None else result @ base
        n >>= 1
        if n:
            base = base @ base
    return result


def matrix_exp(A: Tensor) -> Tensor:
    """``torch.linalg.matrix_exp``: scaling and squaring, ``exp(A) = T(A / 2^s)^(2^s)`` with a
    degree-18 Taylor polynomial ``T`` on a matrix of 1-norm <= 1/2 (truncation below 1e-20); a
    composite of matmuls, so it is differentiable to any order."""
    _square("matrix_exp", A)
    norm = float(np.abs(_host(A)).sum(-2).max()) if A.numel() else 0.0
    s = max(0, int(math.ceil(math.log2(norm))) + 1) if norm > 0 else 0
    x = A / (2.0 ** s)
    n = A.shape[-1]
    eye = _core.eye(n, dtype=A.dtype, device=A.device).expand(list(A.shape))
    term, total = eye, eye
    for k in range(1, 19):
        term = (term @ x) / k
        total = total + term
    for _ in range(s):
        total = total @ total
    return total


def multi_dot(tensors: Sequence[Tensor], *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.multi_dot``: the product of the matrices (the first may be a row vector,
    the last a column vector), left to right."""
    ts = list(tensors)
    if len(ts) < 2:
        raise RuntimeError(f"multi_dot(): expected at least 2 tensors but got {len(ts)}")
    first_vec, last_vec = ts[0].ndim == 1, ts[-1].ndim == 1
    if first_vec:
        ts[0] = ts[0].unsqueeze(0)
    if last_vec:
        ts[-1] = ts[-1].unsqueeze(-1)
    r = ts[0]
    for t in ts[1:]:
        r = r @ t
    if first_vec:
        r = r.squeeze(0)
    if last_vec:
        r = r.squeeze(-1)
    if out is not None:
        out.copy_(r)
        return out
    return r


def cholesky_solve(B: Tensor, L: Tensor, upper: bool = False, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.cholesky_solve(B, L, upper=False)``: ``X`` with ``A X = B`` for ``A = L L^T``
    (``U^T U`` for ``upper=True``) given its Cholesky factor: two triangular solves, so it is
    differentiable in both ``B`` and ``L`` and batches broadcast."""
    if upper:
        y = solve_triangular(L.mT, B, upper=False)
        r = solve_triangular(L, y, upper=True)
    else:
        y = solve_triangular(L, B, upper=False)
        r = solve_triangular(L.mT, y, upper=True)
    if out is not None:
        out.copy_(r)
        return out
    return r


def cholesky_inverse(L: Tensor, upper: bool = False, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.cholesky_inverse(L, upper=False)``: ``A^-1`` for ``A = L L^T`` (``U^T U``)."""
    eye = _core.eye(L.shape[-1], dtype=L.dtype, device=L.device)
    return cholesky_solve(eye.expand(list(L.shape)), L, upper, out=out)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """``torch.linalg.vecdot``: ``sum(x * y)`` along ``dim``."""
    return (x * y).sum(dim)


# the binding's ``Tensor.norm``, kept before ``tensor_methods``' wrapper replaces it
_BINDING_NORM = Tensor.norm


def tensor_methods() -> dict:
    """``A.norm(p)``, ``A.inverse()``, ``A.det()``, ``A.logdet()``, ``A.slogdet()``, ``A.cholesky(upper=False)``,
    ``A.matrix_exp()``, ``A.matrix_power(n)``, ``A.pinverse()`` (attached by ``_tensor_methods.install``)."""

    def inverse(self: Tensor) -> Tensor:
        """:func:`backprop_rs.linalg.inv` of ``self``."""
        return inv(self)

    def cholesky_method(self: Tensor, upper: bool = False) -> Tensor:
        """:func:`backprop_rs.linalg.cholesky` of ``self``."""
        return cholesky(self, upper=upper)

    def pinverse(self: Tensor, rcond: float = 1e-15) -> Tensor:
        """:func:`backprop_rs.linalg.pinv` of ``self`` (``rcond`` as ``rtol``)."""
        return pinv(self, rtol=rcond)

    def cholesky_solve_method(self: Tensor, input2: Tensor, upper: bool = False) -> Tensor:
        """:func:`backprop_rs.cholesky_solve` of ``self`` (the right-hand side) and the factor ``input2``."""
        return cholesky_solve(self, input2, upper)

    def cholesky_inverse_method(self: Tensor, upper: bool = False) -> Tensor:
        """:func:`backprop_rs.cholesky_inverse` of the factor ``self``."""
        return cholesky_inverse(self, upper)

    def one(f: Any) -> Any:
        def method(self: Tensor, *args: Any) -> Any:
            return f(self, *args)

        method.__doc__ = f":func:`backprop_rs.linalg.{f.__name__}` of ``self``."
        return method

    binding_norm = _BINDING_NORM

    def norm(self: Tensor, p: Any = "fro", dim: Any = None, keepdim: bool = False, dtype: Any = None) -> Tensor:
        """``Tensor.norm`` (PyTorch's legacy norm): 'fro' and numbers are the binding's vector
        norms over ``dim``; 'nuc' is the nuclear norm over ``dim`` (default the last two dims)
        from the singular values, as ``linalg.matrix_norm``."""
        if isinstance(p, str) and p == "nuc":
            from .linalg import matrix_norm

            return matrix_norm(self, "nuc", (-2, -1) if dim is None else tuple(dim), keepdim, dtype=dtype)
        return binding_norm(self, p, dim, keepdim, dtype)

    return {"inverse": inverse, "cholesky": cholesky_method, "pinverse": pinverse, "det": one(det), "norm": norm,
            "logdet": one(logdet), "slogdet": one(slogdet), "matrix_exp": one(matrix_exp),
            "matrix_power": one(matrix_power), "cholesky_solve": cholesky_solve_method,
            "cholesky_inverse": cholesky_inverse_method}
