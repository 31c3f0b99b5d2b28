"""``bp.einsum``: Einstein summation as PyTorch (and NumPy) define it, a composite of the
engine's permute / reshape / sum / matmul, so gradients (and second derivatives) come from
those ops.

Operands are contracted left to right, two at a time (PyTorch's default order without
opt_einsum). For each pair the labels split into batch labels (in both operands and still
needed), contracted labels (in both, needed by neither the output nor a later operand),
and labels of one side only; the pair becomes one batched ``matmul`` of
``[batch, left, contracted] @ [batch, contracted, right]``. A label that appears in one operand
only and is not needed later is summed out before; a label repeated inside one operand takes
that operand's diagonal.
"""

from __future__ import annotations

import string
from typing import List, Sequence, Tuple

from ._core import Tensor

__all__ = ["einsum"]

_LETTERS = set(string.ascii_letters)


def _parse(equation: str, operands: Sequence[Tensor]) -> Tuple[List[List[str]], List[str]]:
    """The label lists of each operand and of the output (``...`` expanded into fresh labels,
    one per broadcast dim, right-aligned as in NumPy)."""
    eq = equation.replace(" ", "")
    if "->" in eq:
        lhs, rhs = eq.split("->", 1)
        explicit = True
    else:
        lhs, rhs, explicit = eq, "", False
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError(f"einsum(): the equation has {len(terms)} operands but {len(operands)} tensors were given")
    ell_rank = 0
    for term, op in zip(terms, operands):
        plain = term.replace("...", "")
        bad = [c for c in plain if c not in _LETTERS]
        if bad or term.count("...") > 1 or "." in plain:
            raise RuntimeError(f"einsum(): invalid subscript {term!r} in {equation!r} (letters and one '...' only)")
        if "..." in term:
            if op.ndim < len(plain):
                raise RuntimeError(f"einsum(): operand {term!r} has {op.ndim} dims, fewer than its subscripts")
            ell_rank = max(ell_rank, op.ndim - len(plain))
        elif op.ndim != len(plain):
            raise RuntimeError(f"einsum(): the subscript {term!r} has {len(plain)} labels for an operand of "
                             f"{op.ndim} dims")
    ell = [f"#{i}" for i in range(ell_rank)]  # labels no user can write
    labels = []
    for term, op in zip(terms, operands):
        if "..." in term:
            pre, post = term.split("...")
            k = op.ndim - len(pre) - len(post)
            labels.append(list(pre) + ell[ell_rank - k:] + list(post))
        else:
            labels.append(list(term))
    if explicit:
        plain = rhs.replace("...", "")
        if any(c not in _LETTERS for c in plain) or rhs.count("...") > 1:
            raise RuntimeError(f"einsum(): invalid output subscript {rhs!r}")
        if len(set(plain)) != len(plain):
            raise RuntimeError(f"einsum(): output subscript {rhs!r} repeats a label")
        seen = {c for ls in labels for c in ls}
        for c in plain:
            if c not in seen:
                raise RuntimeError(f"einsum(): output label {c!r} does not appear in any operand")
        if "..." in rhs:
            pre, post = rhs.split("...")
            out = list(pre) + ell + list(post)
        else:
            out = list(plain)
            if ell_rank:
                # PyTorch: the broadcast dims must appear in the output when '...' is used
                raise RuntimeError("einsum(): the output must contain '...' when an operand does")
    else:
        # implicit output: the broadcast dims, then the labels that appear once, sorted
        counts = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and not c.startswith("#"))
    return labels, out


def _diagonal(t: Tensor, labels: List[str]) -> Tuple[Tensor, List[str]]:
    """Takes the diagonal over each repeated label of one operand (``ii->i``)."""
    while True:
        dup = next((c for c in labels if labels.count(c) > 1), None)
        if dup is None:
            return t, labels
        i = labels.index(dup)
        j = labels.index(dup, i + 1)
        if t.shape[i] != t.shape[j]:
            raise RuntimeError(f"einsum(): label {dup!r} is repeated with sizes {t.shape[i]} and {t.shape[j]}")
        t = t.diagonal(0, i, j)  # the diagonal dim goes last
        labels = [c for k, c in enumerate(labels) if k not in (i, j)] + [dup]


def _sum_out(t: Tensor, labels: List[str], keep: set) -> Tuple[Tensor, List[str]]:
    dims = [k for k, c in enumerate(labels) if c not in keep]
    if dims:
        t = t.sum(dims)
        labels = [c for c in labels if c in keep]
    return t, labels


def _size_of(sizes: dict, c: str, n: int) -> None:
    if c in sizes and sizes[c] != n and 1 not in (sizes[c], n):
        raise RuntimeError(f"einsum(): label {c!r} has sizes {sizes[c]} and {n}, which do not broadcast")
    sizes[c] = max(sizes.get(c, n), n) if 1 in (sizes.get(c, n), n) else n


def _contract(a: Tensor, la: List[str], b: Tensor, lb: List[str], needed: set) -> Tuple[Tensor, List[str]]:
    """``a`` (labels ``la``) times ``b`` (labels ``lb``), summing the shared labels not in
    ``needed``, as one batched matmul."""
    sizes: dict = {}
    for t, ls in ((a, la), (b, lb)):
        for c, n in zip(ls, t.shape):
            _size_of(sizes, c, n)
    batch = [c for c in la if c in lb and c in needed]
    contr = [c for c in la if c in lb and c not in needed]
    left = [c for c in la if c not in lb]
    right = [c for c in lb if c not in la]

    def arrange(t, ls, order):
        t = t.permute(*[ls.index(c) for c in order]) if order else t
        # size-1 dims broadcast against the other operand's
        shape = [sizes[c] for c in order]
        return t.expand(*shape) if tuple(t.shape) != tuple(shape) else t

    def prod(cs):
        p = 1
        for c in cs:
            p *= sizes[c]
        return p

    a2 = arrange(a, la, batch + left + contr).reshape(prod(batch), prod(left), prod(contr))
    b2 = arrange(b, lb, batch + contr + right).reshape(prod(batch), prod(contr), prod(right))
    r = (a2 @ b2).reshape(tuple(sizes[c] for c in batch + left + right))
    return r, batch + left + right


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation over ``operands`` (tensors, or one list of tensors), as
    ``torch.einsum``: ``"ij,jk->ik"`` is a matrix product, ``"bij,bjk->bik"`` a batched one,
    ``"ii->i"`` a diagonal, ``"i,j->ij"`` an outer product, ``"...ij->...ji"`` a transpose over
    any leading dims; without ``->`` the output holds the labels that appear once, sorted."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    for op in operands:
        if not isinstance(op, Tensor):
            raise TypeError(f"einsum(): operands must be tensors, got {type(op).__name__}")
    labels, out = _parse(equation, operands)
    ts = list(operands)
    for i in range(len(ts)):
        ts[i], labels[i] = _diagonal(ts[i], labels[i])
    # sum out labels that appear in one operand only and not in the output
    for i in range(len(ts)):
        elsewhere = set(out).union(*[set(labels[j]) for j in range(len(ts)) if j != i])
        ts[i], labels[i] = _sum_out(ts[i], labels[i], elsewhere)
    acc, la = ts[0], labels[0]
    for i in range(1, len(ts)):
        needed = set(out).union(*[set(labels[j]) for j in range(i + 1, len(ts))])
        acc, la = _contract(acc, la, ts[i], labels[i], needed)
    acc, la = _sum_out(acc, la, set(out))
    # size-1 broadcast dims of a lone operand stay as they are; order as the output asks
    if la != out:
        acc = acc.permute(*[la.index(c) for c in out])
    return acc
