"""``backprop_rs.linalg``: the norms of ``torch.linalg`` (``vector_norm``, ``matrix_norm``,
``norm``), composed in the engine from reductions ('nuc' and ord +-2 from the singular values),
and the solvers and decompositions of
:mod:`backprop_rs.decompositions` (``inv``, ``det``, ``solve``, ``cholesky``, ``eigh``, ``svd``, ``lu``,
``lu_solve``, ``lstsq``, ``ldl_factor``, ``cond``...). """

from __future__ import annotations

import math
from typing import Sequence, Union

from . import _core
from ._core import Tensor

_Ord = Union[float, int, str, None]


def _cast(x: Tensor, dtype) -> Tensor:
    return x if dtype is None else x.to(dtype)


def vector_norm(x: Tensor, ord: Union[float, int] = 2, dim: Union[int, Sequence[int], None] = None,
                keepdim: bool = False, *, dtype=None) -> Tensor:
    """The p-norm of ``x`` over ``dim`` (all elements when None): any p, ``inf``, ``-inf``, and
    0 (the number of non-zero elements)."""
    return _core._vector_norm(_cast(x, dtype), float(ord), dim, keepdim)


def matrix_norm(x: Tensor, ord: Union[float, int, str] = "fro", dim: Sequence[int] = (-2, -1),
                keepdim: bool = False, *, dtype=None) -> Tensor:
    """The matrix norm over the two dims ``dim``: 'fro', 'nuc', 1, -1, 2, -2, inf, -inf."""
    if isinstance(ord, (int, float)) and not isinstance(ord, bool):
        ord = float(ord)
    d = tuple(dim)
    if len(d) != 2:
        raise ValueError(f"linalg.matrix_norm: dim must be a 2-tuple, got {dim!r}")
    if ord in ("nuc", 2.0, -2.0):
        # from the singular values (decompositions.svdvals: host LAPACK, gradient U diag(g) Vh)
        from .decompositions import svdvals

        y = _cast(x, dtype)
        nd = y.ndim
        a, b = d[0] % nd, d[1] % nd
        s = svdvals(y.movedim([a, b], [-2, -1]))
        r = s.sum(-1) if ord == "nuc" else (s.amax(-1) if ord == 2.0 else s.amin(-1))
        if keepdim:
            r = r.unsqueeze(min(a, b)).unsqueeze(max(a, b))
        return r
    return _core._matrix_norm(_cast(x, dtype), ord, d, keepdim)


def norm(x: Tensor, ord: _Ord = None, dim: Union[int, Sequence[int], None] = None,
         keepdim: bool = False, *, dtype=None) -> Tensor:
    """``torch.linalg.norm``: with ``ord=None`` the 2-norm of the flattened input (or over
    ``dim``; two dims give the Frobenius norm); with an ``ord``, a vector norm for 1-d input or
    one ``dim``, a matrix norm for 2-d input or two dims."""
    if isinstance(dim, int):
        dim = (dim,)
    if ord is None:
        if dim is None or len(dim) == 1:
            return vector_norm(x, 2, dim, keepdim, dtype=dtype)
        return matrix_norm(x, "fro", dim, keepdim, dtype=dtype)
    if dim is None:
        if x.dim() == 1:
            return vector_norm(x, ord, None, keepdim, dtype=dtype)
        if x.dim() == 2:
            return matrix_norm(x, ord, (-2, -1), keepdim, dtype=dtype)
        raise ValueError(f"linalg.norm: input must be 1-D or 2-D when ord is given and dim is None, got {x.dim()}-D")
    if len(dim) == 1:
        if isinstance(ord, str):
            raise ValueError(f"linalg.norm: ord '{ord}' is a matrix norm; it needs two dims")
        return vector_norm(x, ord, dim, keepdim, dtype=dtype)
    if len(dim) == 2:
        return matrix_norm(x, ord, dim, keepdim, dtype=dtype)
    raise ValueError(f"linalg.norm: dim must have one or two entries, got {dim!r}")


inf = math.inf

def cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:
    """The cross product of 3-vectors along ``dim`` (default the last), broadcast over the rest."""
    from .math_ops import cross as _cross

    return _cross(input, other, dim)


from .decompositions import (  # noqa: E402 (torch.linalg's solvers and decompositions)
    cholesky, cholesky_ex, cond, det, diagonal, eig, eigh, eigvals, eigvalsh, householder_product, inv, inv_ex,
    ldl_factor, ldl_factor_ex, ldl_solve, lstsq, lu, lu_factor, lu_factor_ex, lu_solve, matmul, matrix_exp,
    matrix_power, matrix_rank, multi_dot, pinv, qr, slogdet, solve, solve_ex, solve_triangular, svd, svdvals, tensorinv, tensorsolve, vander, vecdot,
)

__all__ = ["norm", "vector_norm", "matrix_norm", "cross", "cholesky", "cholesky_ex", "det", "eigh", "eigvalsh", "inv",
           "inv_ex", "matrix_exp", "matrix_power", "matrix_rank", "multi_dot", "pinv", "qr", "slogdet", "solve",
           "solve_triangular", "svd", "svdvals", "vecdot", "lu", "lu_factor", "lu_factor_ex", "lu_solve", "lstsq",
           "solve_ex", "cond", "vander", "diagonal", "matmul", "tensorinv", "tensorsolve", "householder_product", "eig",
           "eigvals", "ldl_factor", "ldl_factor_ex", "ldl_solve"]

