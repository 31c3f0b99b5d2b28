"""``torch.linalg``'s solvers and decompositions: ``inv``, ``det``, ``slogdet``, ``solve`` /
``solve_ex``, ``cholesky``, ``eigh`` / ``eigvalsh``, ``svd`` / ``svdvals``, ``qr``, ``pinv``,
``matrix_rank``, ``lu`` / ``lu_factor(_ex)`` / ``lu_solve``, ``lstsq``, ``ldl_factor(_ex)`` /
``ldl_solve``, and the composites ``matrix_power``, ``matrix_exp``, ``multi_dot``, ``vecdot``,
``cond``, ``vander``, ``tensorinv``, ``tensorsolve``, ``householder_product``; ``eig`` /
``eigvals`` refuse (their results are complex). Also the legacy top-level names (``torch.svd``
returning V, ``torch.lu``, ``torch.lu_unpack``, ``torch.lu_solve``, ``torch.triangular_solve``,
and the removed ``torch.qr`` / ``lstsq`` / ``solve`` / ``eig`` / ``symeig`` / ``matrix_rank``,
which raise PyTorch 2's errors): :func:`toplevel_functions` and :func:`tensor_methods`.

The factorisations run on the host in NumPy's LAPACK (batched; a GPU tensor is read back and the
result uploaded): the engine has no factorisation kernels yet. NumPy has no LU or LDL^T, so those
two are written here (partial pivoting as ``getrf``, Bunch-Kaufman as ``sytrf``: the same
pivots as LAPACK's). Each differentiable one is a custom ``Function`` whose backward is a
formula written with tensor ops (``inv``'s, ``solve``'s...), or a composite of such, so the
gradients are themselves differentiable: double backward works for ``inv``, ``det``,
``slogdet``, ``solve``, ``cholesky``, ``eigh``, ``svd`` (through U, S and Vh), ``qr`` (reduced),
``pinv``, ``lu`` (L and U, any shape), ``lu_factor``, ``lu_solve``, ``lstsq`` and the composites.
``ldl_*`` have no gradient (nor have PyTorch's).
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
           "pinv", "matrix_rank", "matrix_power", "matrix_exp", "multi_dot", "vecdot", "inv_ex", "cholesky_ex",
           "lu", "lu_factor", "lu_factor_ex", "lu_unpack", "lu_solve", "lstsq", "solve_ex", "cond", "vander",
           "diagonal", "matmul", "tensorinv", "tensorsolve", "householder_product", "eig", "eigvals",
           "svd_legacy", "qr_legacy", "lu_legacy", "lu_solve_legacy", "triangular_solve", "lstsq_legacy",
           "solve_legacy", "eig_legacy", "symeig", "matrix_rank_legacy", "toplevel_functions", "ldl_factor",
           "ldl_factor_ex", "ldl_solve"]

_SlogDet = namedtuple("slogdet", ["sign", "logabsdet"])
_EighResult = namedtuple("eigh", ["eigenvalues", "eigenvectors"])
_SvdResult = namedtuple("svd", ["U", "S", "Vh"])
_Qr_result = namedtuple("qr", ["Q", "R"])
_InvEx = namedtuple("inv_ex", ["inverse", "info"])
_CholEx = namedtuple("cholesky_ex", ["L", "info"])


def _host(t: Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _upload(a: Any, like: Tensor) -> Tensor:
    a = np.array(a, dtype=_np_dtype(like), order="C")  # keeps 0-d results 0-d (ascontiguousarray makes them (1,))
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
    ``A.matrix_exp()``, ``A.matrix_power(n)``, ``A.pinverse()``, and the legacy ``A.svd()``, ``A.lu()``,
    ``A.lu_solve()``, ``A.triangular_solve()``, ``A.qr()`` / ``A.lstsq()`` / ``A.solve()`` / ``A.eig()`` /
    ``A.symeig()`` (the last raising, as PyTorch 2.15's) (attached by ``_tensor_methods.install``)."""

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
            "cholesky_inverse": cholesky_inverse_method, **_legacy_tensor_methods()}


# ------------------------------------------------------------------ LU, lu_solve, lstsq, solve_ex

_LuFactor = namedtuple("linalg_lu_factor", ["LU", "pivots"])
_LuFactorEx = namedtuple("linalg_lu_factor_ex", ["LU", "pivots", "info"])
_LuResult = namedtuple("linalg_lu", ["P", "L", "U"])
_LuUnpack = namedtuple("lu_unpack", ["P", "L", "U"])
_LuWithInfo = namedtuple("_lu_with_info", ["LU", "pivots", "info"])
_Lstsq = namedtuple("linalg_lstsq", ["solution", "residuals", "rank", "singular_values"])
_SolveEx = namedtuple("linalg_solve_ex", ["result", "info"])
_LegacySvd = namedtuple("svd", ["U", "S", "V"])
_TriangularSolve = namedtuple("triangular_solve", ["solution", "cloned_coefficient"])

# PyTorch's short scalar-type names, for its "not implemented for 'Long'" texts
_TORCH_TYPE_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
                     "bool": "Bool", "float16": "Half", "bfloat16": "BFloat16", "float32": "Float", "float64": "Double"}


def _type_name(t: Tensor) -> str:
    name = str(t.dtype).rsplit(".", 1)[-1]
    return _TORCH_TYPE_NAMES.get(name, name)


def _lu_host(a: np.ndarray) -> Any:
    """LU with partial pivoting of each matrix of ``a`` (``..., m, n``), the unblocked form of
    LAPACK's ``getrf`` (NumPy has no LU): the pivot of column j is the first row of largest
    ``|a|`` at or below j; a zero pivot is skipped (no division), its column is zero below it,
    and ``info`` records the first such j (1-based), as LAPACK does. Vectorised over the batch,
    one Python step per column. Returns the packed ``LU``, the 1-based int32 ``pivots`` (row j
    was swapped with row ``pivots[j] - 1``), the permutation ``perm`` (``A[perm] = L U``), and
    the int32 ``info``."""
    batch, (m, n) = a.shape[:-2], a.shape[-2:]
    k = min(m, n)
    lu = np.array(a, copy=True).reshape((-1, m, n))
    nb = lu.shape[0]
    rows = np.arange(nb)
    piv = np.zeros((nb, k), dtype=np.int32)
    perm = np.tile(np.arange(m), (nb, 1))
    info = np.zeros(nb, dtype=np.int32)
    with np.errstate(all="ignore"):
        for j in range(k):
            p = np.argmax(np.abs(lu[:, j:, j]), axis=-1) + j if nb else np.zeros(0, dtype=np.int64)
            piv[:, j] = p + 1
            row_j, row_p = lu[rows, j].copy(), lu[rows, p].copy()
            lu[rows, j], lu[rows, p] = row_p, row_j
            perm_j, perm_p = perm[rows, j].copy(), perm[rows, p].copy()
            perm[rows, j], perm[rows, p] = perm_p, perm_j
            pivot = lu[:, j, j]
            zero = pivot == 0
            info[(info == 0) & zero] = j + 1
            lu[:, j + 1:, j] = np.where(zero[:, None], lu[:, j + 1:, j], lu[:, j + 1:, j] / np.where(zero, 1, pivot)[:, None])
            lu[:, j + 1:, j + 1:] -= lu[:, j + 1:, j:j + 1] * lu[:, j:j + 1, j + 1:]
    return (lu.reshape(a.shape), piv.reshape(batch + (k,)), perm.reshape(batch + (m,)), info.reshape(batch))


def _perm_matrix(perm: np.ndarray, dtype: Any) -> np.ndarray:
    # P with A = P L U: P[perm[i], i] = 1
    m = perm.shape[-1]
    p = np.zeros(perm.shape + (m,), dtype=dtype)
    np.put_along_axis(p, perm[..., :, None], 1, axis=-1)  # p[..., i, perm[i]] = 1, i.e. P^T
    return np.swapaxes(p, -1, -2)


def _perm_from_pivots(piv: np.ndarray, m: int) -> np.ndarray:
    """The permutation that the LAPACK row swaps ``piv`` (1-based, applied in order) make of
    ``range(m)``."""
    flat = piv.reshape((-1, piv.shape[-1])).astype(np.int64) - 1
    nb = flat.shape[0]
    rows = np.arange(nb)
    perm = np.tile(np.arange(m), (nb, 1))
    if flat.size and (flat.min() < 0 or flat.max() >= m):
        raise RuntimeError(f"lu_unpack: the pivots must be between 1 and {m}")
    for j in range(flat.shape[-1]):
        p = flat[:, j]
        a, b = perm[rows, j].copy(), perm[rows, p].copy()
        perm[rows, j], perm[rows, p] = b, a
    return perm.reshape(piv.shape[:-1] + (m,))


def _upload_int(a: np.ndarray, like: Tensor, np_dtype: Any) -> Tensor:
    out = _core.from_numpy(np.array(a, dtype=np_dtype, order="C"))  # (ascontiguousarray makes 0-d 1-d)
    if like.device.type != "cpu":
        try:
            out = out.to(like.device)
        except Exception:  # a storage dtype the device does not hold (int32): stays on the host
            pass
    return out


def _lu_checks(op: str, A: Tensor, pivot: bool) -> None:
    if A.ndim < 2:
        raise RuntimeError(f"torch.{op}: Expected tensor with 2 or more dimensions. Got size: {list(A.shape)} instead")
    if A.dtype not in (_core.float32, _core.float64):
        raise NotImplementedError(f"\"lu_cpu\" not implemented for '{_type_name(A)}'")
    if not pivot:
        raise RuntimeError("linalg.lu_factor: LU without pivoting is not implemented on the CPU")


def _lu_error(op: str, info: np.ndarray) -> None:
    """PyTorch's error for a zero pivot (``info > 0``), naming the batch element when batched."""
    bad = np.flatnonzero(info.reshape(-1) > 0)
    if bad.size:
        where = f"(Batch element {int(bad[0])}): " if info.ndim else ""
        j = int(info.reshape(-1)[bad[0]])
        raise RuntimeError(f"torch.{op}: {where}U[{j},{j}] is zero and using it on lu_solve would result in a "
                           "division by zero. If you still want to perform the factorization, consider calling "
                           "linalg.lu(A, pivot) or linalg.lu_factor_ex(A, pivot)")


class _Lu(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, host: Any) -> Any:
        lu, _, perm, _ = host
        m, n = lu.shape[-2:]
        k = min(m, n)
        low = np.tril(lu[..., :, :k], -1) + np.eye(m, k, dtype=lu.dtype)
        up = np.triu(lu[..., :k, :])
        p, lo, u = _upload(_perm_matrix(perm, lu.dtype), a), _upload(low, a), _upload(up, a)
        ctx.mark_non_differentiable(p)
        ctx.save_for_backward(p, lo, u)
        return p, lo, u

    @staticmethod
    def backward(ctx: Any, g_p: Optional[Tensor], g_l: Optional[Tensor], g_u: Optional[Tensor]) -> Any:
        p, lo, u = ctx.saved_tensors
        return _lu_backward(g_l, g_u, p, lo, u), None


def _lu_backward(g_l: Optional[Tensor], g_u: Optional[Tensor], p: Tensor, lo: Tensor, u: Tensor) -> Tensor:
    """The gradient of ``A = P L U`` (L unit lower m x k, U upper k x n, k = min(m, n)).

    Square: ``L^-1 P^T dA U^-1 = L^-1 dL + dU U^-1 = M``, the first term strictly lower, the
    second upper, so ``dL = L tril(M, -1)``, ``dU = triu(M) U`` and, pairing with gL and gU,
    ``gA = P L^-T (tril(L^T gL, -1) + triu(gU U^T)) U^-T``.
    Wide (m < n, U = [U1 | U2]): ``A2 = P L U2`` gives ``dU2 = L^-1 (P^T dA2 - dL U2)``, so
    gL gains ``-L^-T gU2 U2^T`` and ``gA = P L^-T [X U1^-T | gU2]`` with
    ``X = tril(L^T gL - gU2 U2^T, -1) + triu(gU1 U1^T)``.
    Tall (m > n, L = [L1; L2]): symmetrically ``dL2 = (P^T dA)_2 U^-1 - L2 dU U^-1``, so
    ``gA = P [L1^-T X; gL2] U^-T`` with ``X = tril(L1^T gL1, -1) + triu(gU U^T - L2^T gL2)``.
    Tensor ops (triangular solves) throughout, so it is itself differentiable."""
    m, n = lo.shape[-2], u.shape[-1]
    g_l = _core.zeros_like(lo) if g_l is None else g_l
    g_u = _core.zeros_like(u) if g_u is None else g_u
    if m <= n:
        u1, u2 = u[..., :, :m], u[..., :, m:]
        gu1, gu2 = g_u[..., :, :m], g_u[..., :, m:]
        low = _mt(lo) @ g_l
        if m < n:
            low = low - gu2 @ _mt(u2)
        x = low.tril(-1) + (gu1 @ _mt(u1)).triu()
        inner = solve_triangular(_mt(u1), x, upper=False, left=False)
        if m < n:
            inner = _core.cat([inner, gu2], -1)
        return p @ solve_triangular(_mt(lo), inner, upper=True, unitriangular=True)
    l1, l2 = lo[..., :n, :], lo[..., n:, :]
    gl1, gl2 = g_l[..., :n, :], g_l[..., n:, :]
    x = (_mt(l1) @ gl1).tril(-1) + (g_u @ _mt(u) - _mt(l2) @ gl2).triu()
    top = solve_triangular(_mt(l1), x, upper=True, unitriangular=True)
    return p @ solve_triangular(_mt(u), _core.cat([top, gl2], -2), upper=False, left=False)


def _pack_lu(lo: Tensor, u: Tensor) -> Tensor:
    """``L``'s strict lower triangle and ``U`` in one m x n matrix (LAPACK's packed LU), as a
    composite, so the gradient of the packed ``LU`` reaches L and U."""
    m, n = lo.shape[-2], u.shape[-1]
    strict = lo.tril(-1)
    if m > n:
        u = _core.cat([u, _core.zeros((*u.shape[:-2], m - n, n), dtype=u.dtype, device=u.device)], -2)
    elif m < n:
        strict = _core.cat([strict, _core.zeros((*lo.shape[:-2], m, n - m), dtype=lo.dtype, device=lo.device)], -1)
    return strict + u


def _lu_parts(op: str, A: Tensor, pivot: bool) -> Any:
    _lu_checks(op, A, pivot)
    host = _lu_host(_widen(A))
    p, lo, u = _Lu.apply(A, host)
    return host, p, lo, u


def lu(A: Tensor, *, pivot: bool = True) -> Any:
    """``torch.linalg.lu``: ``(P, L, U)`` with ``A = P L U`` for any m x n ``A`` (L unit lower
    m x k, U upper k x n, k = min(m, n)), batched. Differentiable in L and U (``P`` is not);
    singular matrices factor without error, as PyTorch's. ``pivot=False`` raises, as PyTorch
    does on the CPU."""
    _, p, lo, u = _lu_parts("linalg.lu", A, pivot)
    return _LuResult(p, lo, u)


def lu_factor_ex(A: Tensor, *, pivot: bool = True, check_errors: bool = False) -> Any:
    """``torch.linalg.lu_factor_ex``: ``(LU, pivots, info)``: the packed factors, LAPACK's
    1-based int32 row swaps, and ``info`` (0, or the 1-based index of the first zero pivot);
    ``check_errors`` raises PyTorch's error on a zero pivot. ``LU`` is differentiable."""
    host, _, lo, u = _lu_parts("linalg.lu_factor_ex", A, pivot)
    if check_errors:
        _lu_error("linalg.lu_factor_ex", host[3])
    return _LuFactorEx(_pack_lu(lo, u), _upload_int(host[1], A, np.int32), _upload_int(host[3], A, np.int32))


def lu_factor(A: Tensor, *, pivot: bool = True) -> Any:
    """``torch.linalg.lu_factor``: ``(LU, pivots)`` (see :func:`lu_factor_ex`); a zero pivot
    raises, as PyTorch's."""
    host, _, lo, u = _lu_parts("linalg.lu_factor", A, pivot)
    _lu_error("linalg.lu_factor", host[3])
    return _LuFactor(_pack_lu(lo, u), _upload_int(host[1], A, np.int32))


def lu_unpack(LU_data: Tensor, LU_pivots: Tensor, unpack_data: bool = True, unpack_pivots: bool = True) -> Any:
    """``torch.lu_unpack``: ``(P, L, U)`` from a packed LU and its pivots; the parts not asked
    for are empty tensors, as PyTorch's. L and U are slices of ``LU_data`` (differentiable)."""
    m, n = LU_data.shape[-2], LU_data.shape[-1]
    k = min(m, n)
    empty = _core.empty((0,), dtype=LU_data.dtype, device=LU_data.device)
    lo = u = p = empty
    if unpack_data:
        eye = _core.eye(m, k, dtype=LU_data.dtype, device=LU_data.device)
        lo = LU_data[..., :, :k].tril(-1) + eye
        u = LU_data[..., :k, :].triu()
    if unpack_pivots:
        if LU_pivots.dtype != _core.int32:
            raise RuntimeError("lu_unpack: LU_pivots is expected to be a contiguous tensor of torch.int32 dtype.\n"
                               "Note: this function is intended to be used with the output produced by "
                               "torch.linalg.lu_factor")
        perm = _perm_from_pivots(LU_pivots.cpu().numpy(), m)
        p = _upload(_perm_matrix(perm, _np_dtype(LU_data)), LU_data)
    return _LuUnpack(p, lo, u)


def _broadcast_batch(a: Tensor, b: Tensor) -> Any:
    batch = tuple(np.broadcast_shapes(tuple(a.shape[:-2]), tuple(b.shape[:-2])))
    a = a if tuple(a.shape[:-2]) == batch else a.expand([*batch, *a.shape[-2:]])
    b = b if tuple(b.shape[:-2]) == batch else b.expand([*batch, *b.shape[-2:]])
    return a, b


def lu_solve(LU: Tensor, pivots: Tensor, B: Tensor, *, left: bool = True, adjoint: bool = False,
             out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.lu_solve``: ``X`` with ``A X = B`` from ``A``'s :func:`lu_factor`
    (``X A = B`` for ``left=False``, ``A^T`` for ``adjoint``), batches broadcast. Two triangular
    solves and a permutation, composed in tensor ops, so it is differentiable in ``B`` and in
    ``LU`` (its strict lower and upper triangles, as PyTorch's)."""
    if pivots.dtype != _core.int32:
        raise RuntimeError("linalg.lu_solve: pivots should be a Tensor of scalar type torch.int32")
    if LU.ndim < 2 or LU.shape[-1] != LU.shape[-2]:
        raise RuntimeError(f"torch.linalg.lu_solve: A must be batches of square matrices, but they are "
                           f"{LU.shape[-2] if LU.ndim >= 2 else '?'} by {LU.shape[-1]} matrices")
    if B.ndim < 2:
        raise RuntimeError("linalg.lu_solve: The input tensor B must have at least 2 dimensions.")
    n = LU.shape[-1]
    if (B.shape[-2] if left else B.shape[-1]) != n:
        eq = "AX = B" if left else "XA = B"
        raise RuntimeError(f"linalg.lu_solve: Incompatible shapes of A and B for the equation {eq} "
                           f"({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    p = lu_unpack(LU, pivots, unpack_data=False).P
    if not left:
        # X A = B is A^T X^T = B^T; X A^T = B is A X^T = B^T
        r = _mt(lu_solve(LU, pivots, _mt(B), left=True, adjoint=not adjoint))
    else:
        lu_b, b = _broadcast_batch(LU, B)
        p, _ = _broadcast_batch(p, b)
        if not adjoint:  # A = P L U: X = U^-1 L^-1 P^T B
            y = solve_triangular(lu_b, _mt(p) @ b, upper=False, unitriangular=True)
            r = solve_triangular(lu_b, y, upper=True)
        else:  # A^T = U^T L^T P^T: X = P L^-T U^-T B
            y = solve_triangular(_mt(lu_b), b, upper=False)
            r = p @ solve_triangular(_mt(lu_b), y, upper=True, unitriangular=True)
    if out is not None:
        out.copy_(r)
        return out
    return r


def _lu_solve_host(lu: np.ndarray, perm: np.ndarray, b: np.ndarray) -> np.ndarray:
    # X = U^-1 L^-1 P^T B by substitution, infinities and NaNs allowed (a zero pivot)
    n = lu.shape[-1]
    x = np.take_along_axis(b, perm[..., :, None], axis=-2).copy()
    with np.errstate(all="ignore"):
        for i in range(n):
            x[..., i, :] -= (lu[..., i, :i, None] * x[..., :i, :]).sum(-2)
        for i in reversed(range(n)):
            x[..., i, :] -= (lu[..., i, i + 1:, None] * x[..., i + 1:, :]).sum(-2)
            x[..., i, :] /= lu[..., i, i, None]
    return x


def _host_solve_singular(A: Tensor, B: Tensor, left: bool) -> Tensor:
    a = _widen(A) if left else np.swapaxes(_widen(A), -1, -2)
    vec = left and _is_vector_rhs(A, B)
    b = _widen(B)[..., None] if vec else (_widen(B) if left else np.swapaxes(_widen(B), -1, -2))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    lu_, _, perm, _ = _lu_host(a)
    x = _lu_solve_host(lu_, perm, b)
    x = x[..., 0] if vec else (x if left else np.swapaxes(x, -1, -2))
    return _upload(x, A)


def solve_ex(A: Tensor, B: Tensor, *, left: bool = True, check_errors: bool = False) -> Any:
    """``torch.linalg.solve_ex``: ``(result, info)``; ``info`` is the 1-based index of the first
    zero pivot of A's LU (0 when invertible). A singular A gives the non-finite result of the
    LU solve (PyTorch's behaviour) unless ``check_errors``, which raises."""
    _square("solve_ex", A)
    _, _, _, info = _lu_host(_widen(A))
    if (info > 0).any():
        if check_errors:
            where = f"(Batch element {int(np.flatnonzero(info.reshape(-1) > 0)[0])}): " if info.ndim else ""
            raise RuntimeError(f"torch.linalg.solve_ex: {where}The solver failed because the input matrix is singular.")
        # the LU solve's non-finite result, on the host (no gradient: it is not finite)
        r = _host_solve_singular(A, B, left)
    else:
        r = solve(A, B, left=left)
    return _SolveEx(r, _upload_int(info, A, np.int32))


class _LstsqSolution(Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, b: Tensor, x: np.ndarray, rcond: float) -> Tensor:
        ctx.save_for_backward(a, b)
        ctx.rcond = rcond
        return _upload(x, a)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> Any:
        a, b = ctx.saved_tensors
        # X = pinv(A) B: gB = pinv(A)^T g; gA through pinv's gradient with gP = g B^T (the
        # rank locally constant, as PyTorch's pinv-based lstsq backward)
        p = pinv(a, rtol=ctx.rcond)
        return _pinv_backward(g @ _mt(b), p, a), _mt(p) @ g, None, None


def lstsq(A: Tensor, B: Tensor, rcond: Optional[float] = None, *, driver: Optional[str] = None) -> Any:
    """``torch.linalg.lstsq``: ``(solution, residuals, rank, singular_values)`` of
    ``min ||A X - B||``, batched and broadcast. The solution is the minimum-norm one from the SVD
    with singular values below ``rcond * s_max`` dropped (default ``rcond = eps * max(m, n)``),
    which is what every LAPACK driver returns for a full-rank A. The fields follow PyTorch's CPU
    rules: ``rank`` for every driver but 'gels'; ``singular_values`` for 'gelsd'/'gelss';
    ``residuals`` (squared column norms of ``A X - B``) when m > n, the driver is not 'gelsy' and
    every matrix has full rank; the rest empty. Differentiable in A and B (solution and residuals)
    through the pseudo-inverse."""
    if driver not in (None, "gels", "gelsy", "gelsd", "gelss"):
        raise RuntimeError("torch.linalg.lstsq: parameter `driver` should be one of (gels, gelsy, gelsd, gelss)")
    driver = driver or "gelsy"
    if A.ndim < 2:
        raise RuntimeError("torch.linalg.lstsq: input must have at least 2 dimensions.")
    if A.dtype != B.dtype:
        raise RuntimeError("torch.linalg.lstsq: Expected input and other to have the same dtype, but got input's "
                           f"dtype {_type_name(A)} and other's dtype {_type_name(B)}")
    if not A.is_floating_point():
        raise RuntimeError(f"torch.linalg.lstsq: Expected a floating point tensor as input. Got {A.dtype}")
    if not (A.ndim >= B.ndim and A.ndim - B.ndim <= 1):
        raise RuntimeError("torch.linalg.lstsq: input.dim() must be greater or equal to other.dim() and "
                           "(input.dim() - other.dim()) <= 1")
    vector = B.ndim == A.ndim - 1
    b = B.unsqueeze(-1) if vector else B
    if A.shape[-2] != b.shape[-2]:
        raise RuntimeError("torch.linalg.lstsq: input.size(-2) should match other.size(-2)")
    a, b = _broadcast_batch(A, b)
    m, n = a.shape[-2], a.shape[-1]
    rc = float(rcond) if rcond is not None else float(np.finfo(_np_dtype(a)).eps) * max(m, n)
    an, bn = _widen(a), _widen(b)
    batch = tuple(a.shape[:-2])
    if min(m, n) == 0:
        s = np.zeros(batch + (0,), dtype=an.dtype)
        x = np.zeros(batch + (n, bn.shape[-1]), dtype=an.dtype)
        rank = np.zeros(batch, dtype=np.int64)
    else:
        u, s, vh = np.linalg.svd(an, full_matrices=False)
        keep = s > rc * s[..., :1]
        with np.errstate(all="ignore"):
            s_inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0).astype(an.dtype)
        x = np.swapaxes(vh, -1, -2) @ (s_inv[..., :, None] * (np.swapaxes(u, -1, -2) @ bn))
        rank = keep.sum(-1).astype(np.int64)
    sol = _LstsqSolution.apply(a, b, x, rc)
    empty = _core.empty((0,), dtype=A.dtype, device=A.device)
    if driver != "gelsy" and m > n and (driver == "gels" or bool((rank == n).all())):
        residuals = ((a @ sol - b) ** 2).sum(-2)
    else:
        residuals = empty
    rank_t = (_core.empty((0,), dtype=_core.int64, device=A.device) if driver == "gels"
              else _upload_int(rank, A, np.int64))
    sv = _upload(s, A) if driver in ("gelsd", "gelss") else empty
    return _Lstsq(sol.squeeze(-1) if vector else sol, residuals, rank_t, sv)


# ------------------------------------------------------------------ composites: cond, vander, tensor solves...


def cond(A: Tensor, p: Any = None, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.cond``: the condition number. ``p`` None, 2 or -2 from the singular values
    (``s_max / s_min``, or its inverse; any m x n A); 'fro', 'nuc', inf, -inf, 1, -1 as
    ``norm(A, p) * norm(inv(A), p)`` for square A, ``inf`` where A is singular (PyTorch's)."""
    if isinstance(p, bool) or not (p is None or p in ("fro", "nuc") or
                                   (isinstance(p, (int, float)) and p in (2, -2, 1, -1, math.inf, -math.inf))):
        raise ValueError(f"linalg.cond got an invalid norm type: {p}")
    if A.ndim < 2:
        raise RuntimeError("linalg.cond: The input tensor A must have at least 2 dimensions.")
    if p is None or p in (2, -2):
        s = svdvals(A)
        r = s[..., 0] / s[..., -1] if p in (None, 2) else s[..., -1] / s[..., 0]
    else:
        if A.shape[-1] != A.shape[-2]:
            raise RuntimeError(f"linalg.cond(ord={p}): A must be batches of square matrices, but they are "
                               f"{A.shape[-2]} by {A.shape[-1]} matrices")
        from .linalg import matrix_norm

        _, _, _, info = _lu_host(_widen(A))
        singular = info > 0
        if singular.any():
            # inv of the invertible ones only (the singular ones are swapped for I, then masked to inf)
            mask = _upload_int(singular, A, np.bool_).to(A.device)
            eye = _core.eye(A.shape[-1], dtype=A.dtype, device=A.device)
            safe = _core.where(mask.unsqueeze(-1).unsqueeze(-1), eye, A)
            r = _core.where(mask, math.inf, matrix_norm(safe, p) * matrix_norm(inv(safe), p))
        else:
            r = matrix_norm(A, p) * matrix_norm(inv(A), p)
    if out is not None:
        out.copy_(r)
        return out
    return r


def vander(x: Tensor, *, N: Optional[int] = None) -> Tensor:
    """``torch.linalg.vander``: ``[1, x, x^2, ..., x^(N-1)]`` along a new last dim (increasing
    powers, unlike ``torch.vander``); ``N`` defaults to ``x.shape[-1]``. Repeated products, so
    the gradient is finite at ``x = 0``."""
    n = N if N is not None else (x.shape[-1] if x.ndim else 0)
    if n <= 1:
        raise RuntimeError("N must be greater than 1.")
    col = x.unsqueeze(-1)
    powers = [_core.ones_like(col), col]
    for _ in range(n - 2):
        powers.append(powers[-1] * col)
    return _core.cat(powers, -1)


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """``torch.linalg.diagonal``: ``torch.diagonal`` with the matrix dims (-2, -1) as defaults."""
    return A.diagonal(offset, dim1, dim2)


def matmul(input: Tensor, other: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.matmul``: ``torch.matmul``."""
    r = input @ other
    if out is not None:
        out.copy_(r)
        return out
    return r


def _prod(shape: Sequence[int]) -> int:
    r = 1
    for s in shape:
        r *= int(s)
    return r


def tensorinv(A: Tensor, ind: int = 2, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.tensorinv``: the inverse of ``A`` seen as a linear map from its last
    dims (``A.shape[ind:]``) to its first ``ind``; the result has shape
    ``A.shape[ind:] + A.shape[:ind]``. A reshape around :func:`inv`."""
    if ind <= 0:
        raise RuntimeError(f"Expected a strictly positive integer for 'ind', but got {ind}")
    head, tail = tuple(A.shape[:ind]), tuple(A.shape[ind:])
    if _prod(head) != _prod(tail):
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[ind:]) == "
                           f"prod(self.shape[:ind]), but got {_prod(tail)} != {_prod(head)}")
    r = inv(A.reshape(_prod(head), _prod(tail))).reshape(*tail, *head)
    if out is not None:
        out.copy_(r)
        return out
    return r


def tensorsolve(A: Tensor, B: Tensor, dims: Optional[Sequence[int]] = None, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.tensorsolve``: ``X`` with ``tensordot(A, X, X.ndim) = B``; ``dims`` of A
    are first moved to the end. A reshape around :func:`solve`; X has shape
    ``A.shape[B.ndim:]``."""
    if dims is not None:
        nd = A.ndim
        src = [d % nd for d in dims]
        A = A.movedim(src, list(range(nd - len(src), nd)))
    rest = tuple(A.shape[B.ndim:])
    if _prod(A.shape[:B.ndim]) != _prod(rest):
        raise RuntimeError("Expected self to satisfy the requirement prod(self.shape[other.ndim:]) == "
                           f"prod(self.shape[:other.ndim]), but got {_prod(rest)} != {_prod(A.shape[:B.ndim])}")
    r = solve(A.reshape(_prod(A.shape[:B.ndim]), _prod(rest)), B.reshape(-1)).reshape(*rest)
    if out is not None:
        out.copy_(r)
        return out
    return r


def householder_product(A: Tensor, tau: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.householder_product``: the first n columns of ``H_1 ... H_k`` with
    ``H_i = I - tau_i v_i v_i^T``, ``v_i`` the i-th column of A below the diagonal with a unit
    on it (LAPACK's ``orgqr``, e.g. from a ``geqrf``). Rank-one updates in tensor ops, so it is
    differentiable (to any order) in A and tau."""
    if A.ndim < 2:
        raise RuntimeError("torch.linalg.householder_product: input must have at least 2 dimensions.")
    m, n = A.shape[-2], A.shape[-1]
    if m < n:
        raise RuntimeError("torch.linalg.householder_product: input.shape[-2] must be greater than or equal to "
                           "input.shape[-1]")
    k = tau.shape[-1] if tau.ndim else 1
    if k > n:
        raise RuntimeError("torch.linalg.householder_product: input.shape[-1] must be greater than or equal to "
                           "tau.shape[-1]")
    if tau.ndim != A.ndim - 1 or tuple(tau.shape[:-1]) != tuple(A.shape[:-2]):
        raise RuntimeError("torch.linalg.householder_product: Expected batch dimensions of tau to be equal to "
                           f"input.shape[:-2], but got {list(tau.shape[:-1])}")
    v = A[..., :, :k].tril(-1) + _core.eye(m, k, dtype=A.dtype, device=A.device)
    q = _core.eye(m, n, dtype=A.dtype, device=A.device).expand([*A.shape[:-2], m, n])
    # Q = H_1 (H_2 (... H_k E)), applied from the last reflector: each step Q <- Q - tau v (v^T Q)
    for i in reversed(range(k)):
        vi = v[..., :, i:i + 1]
        q = q - tau[..., i:i + 1].unsqueeze(-1) * (vi @ (_mt(vi) @ q))
    if out is not None:
        out.copy_(q)
        return q
    return q


def _no_complex(op: str) -> Exception:
    from ._compat import UnsupportedDTypeError

    return UnsupportedDTypeError(
        f"torch.linalg.{op}: the eigen-decomposition of a general matrix is complex (PyTorch returns complex64 / "
        "complex128), and backprop_rs has no complex dtype yet; for symmetric matrices use "
        "backprop_rs.linalg.eigh / eigvalsh, whose results are real")


def eig(A: Tensor, *, out: Any = None) -> Any:
    """``torch.linalg.eig``: refused: its results are complex, which backprop_rs does not store
    (an ``UnsupportedDTypeError``, a TypeError and a RuntimeError); see :func:`eigh`."""
    raise _no_complex("eig")


def eigvals(A: Tensor, *, out: Any = None) -> Any:
    """``torch.linalg.eigvals``: refused, as :func:`eig` (complex results); see :func:`eigvalsh`."""
    raise _no_complex("eigvals")


# ------------------------------------------------------------------ legacy top-level names

_REMOVED = ("This function was deprecated since version 1.9 and is now removed. ")
_REMOVED_GUIDANCE = {
    "lstsq": "`torch.lstsq` is deprecated in favor of `torch.linalg.lstsq`.\n`torch.linalg.lstsq` has reversed "
             "arguments and does not return the QR decomposition in the returned tuple (although it returns other "
             "information about the problem).\n\nTo get the QR decomposition consider using `torch.linalg.qr`.\n\n"
             "The returned solution in `torch.lstsq` stored the residuals of the solution in the last m - n columns "
             "of the returned value whenever m > n. In torch.linalg.lstsq, the residuals are in the field "
             "'residuals' of the returned named tuple.\n\nThe unpacking of the solution, as in\n"
             "X, _ = torch.lstsq(B, A).solution[:A.size(1)]\nshould be replaced with:\n"
             "X = torch.linalg.lstsq(A, B).solution",
    "solve": "`torch.solve` is deprecated in favor of `torch.linalg.solve`. `torch.linalg.solve` has its arguments "
             "reversed and does not return the LU factorization.\n\nTo get the LU factorization see `torch.lu`, "
             "which can be used with `torch.lu_solve` or `torch.lu_unpack`.\nX = torch.solve(B, A).solution should "
             "be replaced with:\nX = torch.linalg.solve(A, B)",
    "eig": "`torch.linalg.eig` returns complex tensors of dtype `cfloat` or `cdouble` rather than real tensors "
           "mimicking complex tensors.\n\nL, _ = torch.eig(A) should be replaced with:\n"
           "L_complex = torch.linalg.eigvals(A)\n\nand\n\nL, V = torch.eig(A, eigenvectors=True) should be replaced "
           "with:\nL_complex, V_complex = torch.linalg.eig(A)",
    "symeig": "The default behavior has changed from using the upper triangular portion of the matrix by default to "
              "using the lower triangular portion.\n\nL, _ = torch.symeig(A, upper=upper) should be replaced with:\n"
              "L = torch.linalg.eigvalsh(A, UPLO='U' if upper else 'L')\n\nand\n\nL, V = torch.symeig(A, "
              "eigenvectors=True) should be replaced with:\nL, V = torch.linalg.eigh(A, UPLO='U' if upper else 'L')",
    "matrix_rank": "\nPlease use the `torch.linalg.matrix_rank` function instead. The parameter 'symmetric' was "
                   "renamed in `torch.linalg.matrix_rank()` to 'hermitian'.",
}


def _removed(name: str) -> Any:
    def removed(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(_REMOVED.rstrip(" ") + ("" if _REMOVED_GUIDANCE[name].startswith("\n") else " ")
                           + _REMOVED_GUIDANCE[name])

    removed.__name__ = name
    removed.__doc__ = (f"``torch.{name}``: removed in PyTorch 2 (deprecated since 1.9); raises PyTorch's "
                       "RuntimeError naming its replacement.")
    return removed


lstsq_legacy = _removed("lstsq")
solve_legacy = _removed("solve")
eig_legacy = _removed("eig")
symeig = _removed("symeig")
matrix_rank_legacy = _removed("matrix_rank")


def qr_legacy(input: Tensor, some: bool = True, *, out: Any = None) -> Any:
    """``torch.qr``: removed in PyTorch 2.15 as well (it raises there); raises its RuntimeError,
    which names ``linalg.qr``'s mode for the given ``some``."""
    raise RuntimeError(
        _REMOVED + "`torch.qr` is deprecated in favor of `torch.linalg.qr` and the boolean parameter `some` has been "
        "replaced with a string parameter `mode`.\n\nQ, R = torch.qr(A) should be replaced with:\n"
        "Q, R = torch.linalg.qr(A, mode='reduced')\n\nand\n\nQ, R = torch.qr(A, some=False) should be replaced "
        f"with:\nQ, R = torch.linalg.qr(A, mode='complete')\n\nSince `some` was set to {bool(some)}, use "
        f"mode='{'reduced' if some else 'complete'}'.")


def svd_legacy(input: Tensor, some: bool = True, compute_uv: bool = True, *, out: Any = None) -> Any:
    """``torch.svd``: ``(U, S, V)`` with ``A = U diag(S) V^T`` (V, not Vh; reduced unless
    ``some=False``). With ``compute_uv=False`` U and V are zero-filled m x m and n x n, as
    PyTorch's, and only S carries a gradient."""
    if input.ndim < 2:
        raise RuntimeError("linalg.svd: The input tensor A must have at least 2 dimensions.")
    m, n = input.shape[-2], input.shape[-1]
    if not compute_uv:
        s = svdvals(input)
        batch = tuple(input.shape[:-2])
        zu = _core.zeros((*batch, m, m), dtype=input.dtype, device=input.device)
        zv = _core.zeros((*batch, n, n), dtype=input.dtype, device=input.device)
        return _LegacySvd(zu, s, zv)
    u, s, vh = svd(input, full_matrices=not some)
    return _LegacySvd(u, s, _mt(vh))


def lu_legacy(A: Tensor, pivot: bool = True, get_infos: bool = False, out: Any = None) -> Any:
    """``torch.lu``: ``(LU, pivots)``, or ``(LU, pivots, infos)`` with ``get_infos``; never raises
    on a singular matrix (PyTorch's). :func:`lu_factor_ex` underneath."""
    r = lu_factor_ex(A, pivot=pivot)
    return _LuWithInfo(*r) if get_infos else (r.LU, r.pivots)


def lu_solve_legacy(b: Tensor, LU_data: Tensor, LU_pivots: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """``torch.lu_solve(b, LU_data, LU_pivots)``: :func:`lu_solve` with the legacy argument order."""
    return lu_solve(LU_data, LU_pivots, b, out=out)


def triangular_solve(b: Tensor, A: Tensor, upper: bool = True, transpose: bool = False,
                     unitriangular: bool = False, *, out: Any = None) -> Any:
    """``torch.triangular_solve``: ``(solution, cloned_coefficient)``: ``X`` with ``A X = b``
    (``A^T X = b`` with ``transpose``) for triangular A (its ``upper`` or lower triangle),
    batches broadcast; the second field is a copy of A broadcast to the batch. Differentiable."""
    if b.ndim < 2 or A.ndim < 2:
        raise RuntimeError(f"torch.triangular_solve: Expected b to have at least 2 dimensions, but it has {b.ndim} "
                           "dimensions instead" if b.ndim < 2 else
                           f"torch.triangular_solve: Expected A to have at least 2 dimensions, but it has {A.ndim} "
                           "dimensions instead")
    a, bb = _broadcast_batch(A, b)
    coef = _mt(a) if transpose else a
    x = solve_triangular(coef, bb, upper=bool(upper) != bool(transpose), unitriangular=bool(unitriangular))
    return _TriangularSolve(x, a.clone())


def toplevel_functions() -> dict:
    """The top-level ``torch.*`` names this module provides, for the package namespace:
    ``svd``, ``qr``, ``lu``, ``lu_unpack``, ``lu_solve``, ``triangular_solve``, and PyTorch 2's
    removed ``lstsq``, ``solve``, ``eig``, ``symeig``, ``matrix_rank`` (which raise)."""
    return {"svd": svd_legacy, "qr": qr_legacy, "lu": lu_legacy, "lu_unpack": lu_unpack,
            "lu_solve": lu_solve_legacy, "triangular_solve": triangular_solve, "lstsq": lstsq_legacy,
            "solve": solve_legacy, "eig": eig_legacy, "symeig": symeig, "matrix_rank": matrix_rank_legacy}


def _legacy_tensor_methods() -> dict:
    """The Tensor method forms of the legacy names PyTorch 2.15 has (``t.svd``, ``t.qr``, ``t.lu``,
    ``t.lu_solve``, ``t.triangular_solve``, and the raising ``t.lstsq``, ``t.solve``, ``t.eig``,
    ``t.symeig``)."""

    def svd_method(self: Tensor, some: bool = True, compute_uv: bool = True) -> Any:
        """``torch.svd(self, some, compute_uv)``: ``(U, S, V)``."""
        return svd_legacy(self, some, compute_uv)

    def qr_method(self: Tensor, some: bool = True) -> Any:
        """``torch.qr(self)``: removed (raises, naming ``linalg.qr``)."""
        return qr_legacy(self, some)

    def lu_method(self: Tensor, pivot: bool = True, get_infos: bool = False) -> Any:
        """``torch.lu(self, pivot, get_infos)``: ``(LU, pivots[, infos])``."""
        return lu_legacy(self, pivot, get_infos)

    def lu_solve_method(self: Tensor, LU_data: Tensor, LU_pivots: Tensor) -> Tensor:
        """``torch.lu_solve(self, LU_data, LU_pivots)``: solves with ``self`` as the right-hand side."""
        return lu_solve_legacy(self, LU_data, LU_pivots)

    def triangular_solve_method(self: Tensor, A: Tensor, upper: bool = True, transpose: bool = False,
                                unitriangular: bool = False) -> Any:
        """``torch.triangular_solve(self, A, ...)``: ``(solution, cloned_coefficient)``."""
        return triangular_solve(self, A, upper, transpose, unitriangular)

    def raising(name: str) -> Any:
        f = _removed(name)

        def method(self: Tensor, *args: Any, **kwargs: Any) -> Any:
            return f(self, *args, **kwargs)

        method.__doc__ = f"``Tensor.{name}``: removed in PyTorch 2; raises PyTorch's error naming the replacement."
        return method

    return {"svd": svd_method, "qr": qr_method, "lu": lu_method, "lu_solve": lu_solve_method,
            "triangular_solve": triangular_solve_method, **{n: raising(n) for n in ("lstsq", "solve", "eig", "symeig")}}


# ------------------------------------------------------------------ LDL^T (Bunch-Kaufman)

_LdlFactor = namedtuple("linalg_ldl_factor", ["LD", "pivots"])
_LdlFactorEx = namedtuple("linalg_ldl_factor_ex", ["LD", "pivots", "info"])
_BK_ALPHA = (1.0 + math.sqrt(17.0)) / 8.0


def _ldl_host_one(a: np.ndarray) -> Any:
    """Bunch-Kaufman ``A = L D L^T`` of one symmetric matrix (its lower triangle), the unblocked
    form of LAPACK's ``sytrf`` with ``uplo='L'`` (its blocked form picks the same pivots): at
    column k, with ``colmax`` the largest ``|a_ik|`` below the diagonal (at row ``imax``) and
    ``rowmax`` the largest off-diagonal of row/column ``imax``, a 1x1 pivot on ``a_kk`` when
    ``|a_kk| >= alpha colmax`` or ``|a_kk| rowmax >= alpha colmax^2`` (alpha = (1 + sqrt 17) / 8),
    a 1x1 pivot on ``a_imax,imax`` swapped in when that is ``>= alpha rowmax``, else the 2x2
    pivot of rows k and imax (swapped to k + 1). Zero-division is avoided the way LAPACK does. ``L`` is ``P(1) L(1) ... P(k) L(k)`` (earlier columns are
    not swapped), stored below D's diagonal and sub-diagonal; pivots are 1-based, negative and
    repeated for a 2x2 block. Returns (LD with its strict upper triangle zero, pivots, info)."""
    n = a.shape[-1]
    w = np.tril(a) + np.tril(a, -1).T  # the full symmetric matrix from the lower triangle
    piv = np.zeros(n, dtype=np.int32)
    info = 0
    k = 0
    while k < n:
        kstep = 1
        absakk = abs(w[k, k])
        if k < n - 1:
            imax = k + 1 + int(np.argmax(np.abs(w[k + 1:, k])))
            colmax = abs(w[imax, k])
        else:
            imax, colmax = k, 0.0
        if max(absakk, colmax) == 0 or np.isnan(absakk):
            info = info or k + 1
            kp = k
        else:
            if absakk >= _BK_ALPHA * colmax:
                kp = k
            else:
                rowmax = float(np.max(np.abs(w[imax, k:imax])))
                if imax < n - 1:
                    rowmax = max(rowmax, float(np.max(np.abs(w[imax + 1:, imax]))))
                if absakk >= _BK_ALPHA * colmax * (colmax / rowmax):
                    kp = k
                elif abs(w[imax, imax]) >= _BK_ALPHA * rowmax:
                    kp = imax
                else:
                    kp, kstep = imax, 2
            kk = k + kstep - 1
            if kp != kk:  # swap rows and columns kk and kp of the trailing matrix w[k:, k:]
                idx = np.arange(k, n)
                sw = idx.copy()
                sw[kk - k], sw[kp - k] = kp, kk
                w[k:, k:] = w[np.ix_(sw, sw)]
            if kstep == 1:
                d = w[k, k]
                col = w[k + 1:, k].copy()
                w[k + 1:, k + 1:] -= np.outer(col, col) / d
                w[k + 1:, k] = col / d
                w[k, k + 1:] = 0.0
            else:
                if k < n - 2:
                    d21 = w[k + 1, k]
                    d11 = w[k + 1, k + 1] / d21
                    d22 = w[k, k] / d21
                    tt = 1.0 / (d11 * d22 - 1.0)
                    d21 = tt / d21
                    c0, c1 = w[k + 2:, k].copy(), w[k + 2:, k + 1].copy()
                    wk = d21 * (d11 * c0 - c1)
                    wkp1 = d21 * (d22 * c1 - c0)
                    w[k + 2:, k + 2:] -= np.outer(c0, wk) + np.outer(c1, wkp1)
                    w[k + 2:, k], w[k + 2:, k + 1] = wk, wkp1
                w[k, k + 1:] = 0.0
                w[k + 1, k + 2:] = 0.0
        if kstep == 1:
            piv[k] = kp + 1
        else:
            piv[k] = piv[k + 1] = -(kp + 1)
        k += kstep
    return np.tril(w), piv, info


def _ldl_solve_host_one(ld: np.ndarray, piv: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``A X = B`` from :func:`_ldl_host_one`'s factors (LAPACK's ``sytrs``, lower): ``L D Y = B``
    forward through the pivots, then ``L^T X = Y`` backward."""
    n = ld.shape[-1]
    x = np.array(b, dtype=ld.dtype, copy=True)
    k = 0
    with np.errstate(all="ignore"):
        while k < n:
            if piv[k] > 0:
                kp = piv[k] - 1
                x[[k, kp]] = x[[kp, k]]
                x[k + 1:] -= np.outer(ld[k + 1:, k], x[k])
                x[k] /= ld[k, k]
                k += 1
            else:
                kp = -piv[k] - 1
                x[[k + 1, kp]] = x[[kp, k + 1]]
                x[k + 2:] -= np.outer(ld[k + 2:, k], x[k]) + np.outer(ld[k + 2:, k + 1], x[k + 1])
                blk = np.array([[ld[k, k], ld[k + 1, k]], [ld[k + 1, k], ld[k + 1, k + 1]]])
                x[k:k + 2] = np.linalg.solve(blk, x[k:k + 2])
                k += 2
        k = n - 1
        while k >= 0:
            if piv[k] > 0:
                x[k] -= ld[k + 1:, k] @ x[k + 1:]
                kp = piv[k] - 1
                x[[k, kp]] = x[[kp, k]]
                k -= 1
            else:
                x[k] -= ld[k + 1:, k] @ x[k + 1:]
                x[k - 1] -= ld[k + 1:, k - 1] @ x[k + 1:]
                kp = -piv[k] - 1
                x[[k, kp]] = x[[kp, k]]
                k -= 2
    return x


class _NotDifferentiable(Function):
    """Host results with PyTorch's "derivative ... is not implemented" on backward (rather than a
    silently missing gradient)."""

    @staticmethod
    def forward(ctx: Any, a: Tensor, name: str, outs: Any) -> Tensor:
        ctx.name = name
        return outs

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError(f"derivative for {ctx.name} is not implemented")


def ldl_factor_ex(A: Tensor, *, hermitian: bool = False, check_errors: bool = False) -> Any:
    """``torch.linalg.ldl_factor_ex``: ``(LD, pivots, info)``, the Bunch-Kaufman factorisation of
    symmetric matrices (their lower triangle), as LAPACK's ``sytrf`` (see
    :func:`_ldl_host_one`); ``info`` is the 1-based index of a zero diagonal of D. Real
    matrices only, so ``hermitian`` changes nothing. Not differentiable (PyTorch's is not either)."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise RuntimeError(f"torch.linalg.ldl_factor_ex: A must be batches of square matrices, but they are "
                           f"{A.shape[-2] if A.ndim >= 2 else '?'} by {A.shape[-1] if A.ndim else '?'} matrices")
    if A.dtype not in (_core.float32, _core.float64):
        raise RuntimeError(f"torch.linalg.ldl_factor_ex: Expected a floating point tensor as input. Got {A.dtype}")
    a = _widen(A)
    n = a.shape[-1]
    flat = a.reshape((-1, n, n))
    parts = [_ldl_host_one(m) for m in flat]
    ld = np.stack([p[0] for p in parts]).reshape(a.shape) if parts else np.zeros(a.shape, a.dtype)
    piv = np.stack([p[1] for p in parts]).reshape(a.shape[:-1]) if parts else np.zeros(a.shape[:-1], np.int32)
    info = np.array([p[2] for p in parts], dtype=np.int32).reshape(a.shape[:-2])
    if check_errors and (info > 0).any():
        bad = int(np.flatnonzero(info.reshape(-1) > 0)[0])
        where = f"(Batch element {bad}): " if info.ndim else ""
        j = int(info.reshape(-1)[bad])
        raise RuntimeError(f"torch.linalg.ldl_factor_ex: {where}The factorization could not be completed: "
                           f"D[{j},{j}] is exactly zero, so D is singular")
    ld_t = _upload(ld, A)
    if A.requires_grad and _core.is_grad_enabled():
        ld_t = _NotDifferentiable.apply(A, "linalg.ldl_factor_ex", ld_t)
    return _LdlFactorEx(ld_t, _upload_int(piv, A, np.int32), _upload_int(info, A, np.int32))


def ldl_factor(A: Tensor, *, hermitian: bool = False) -> Any:
    """``torch.linalg.ldl_factor``: ``(LD, pivots)`` (see :func:`ldl_factor_ex`); a singular D
    raises."""
    r = ldl_factor_ex(A, hermitian=hermitian, check_errors=True)
    return _LdlFactor(r.LD, r.pivots)


def ldl_solve(LD: Tensor, pivots: Tensor, B: Tensor, *, hermitian: bool = False,
              out: Optional[Tensor] = None) -> Tensor:
    """``torch.linalg.ldl_solve``: ``X`` with ``A X = B`` from :func:`ldl_factor`'s ``(LD,
    pivots)``, batches broadcast (LAPACK's ``sytrs``). Not differentiable, as PyTorch's."""
    if LD.ndim < 2 or LD.shape[-1] != LD.shape[-2]:
        raise RuntimeError(f"torch.linalg.ldl_solve: A must be batches of square matrices, but they are "
                           f"{LD.shape[-2] if LD.ndim >= 2 else '?'} by {LD.shape[-1]} matrices")
    if B.ndim < 2:
        raise RuntimeError(f"torch.linalg.ldl_solve: Expected B to have at least 2 dimensions, but it has {B.ndim} "
                           "dimensions instead")
    if pivots.dtype != _core.int32:
        raise RuntimeError("torch.linalg.ldl_solve: Expected pivots to be integers. Got "
                           f"{str(pivots.dtype).rsplit('.', 1)[-1]}")
    if LD.dtype != B.dtype:
        raise RuntimeError(f"Expected b and A to have the same dtype, but found b of type {_type_name(B)} and A of "
                           f"type {_type_name(LD)} instead.")
    n = LD.shape[-1]
    if B.shape[-2] != n:
        raise RuntimeError(f"torch.linalg.ldl_solve: Incompatible shapes of A and B for the equation AX = B "
                           f"({n}x{n} and {B.shape[-2]}x{B.shape[-1]})")
    ld, piv, b = _widen(LD), pivots.cpu().numpy(), _widen(B)
    batch = np.broadcast_shapes(ld.shape[:-2], b.shape[:-2])
    ld = np.broadcast_to(ld, batch + (n, n)).reshape((-1, n, n))
    piv = np.broadcast_to(piv, batch + (n,)).reshape((-1, n))
    bb = np.broadcast_to(b, batch + b.shape[-2:]).reshape((-1,) + b.shape[-2:])
    xs = [_ldl_solve_host_one(ld[i], piv[i], bb[i]) for i in range(ld.shape[0])]
    x = (np.stack(xs) if xs else np.zeros(bb.shape, ld.dtype)).reshape(batch + b.shape[-2:])
    r = _upload(x, LD)
    if (LD.requires_grad or B.requires_grad) and _core.is_grad_enabled():
        r = _NotDifferentiable.apply(LD if LD.requires_grad else B, "linalg.ldl_solve", r)
    if out is not None:
        out.copy_(r)
        return out
    return r
