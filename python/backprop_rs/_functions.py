"""PyTorch's top-level function forms that are glue over Tensor methods (``bp.add(a, b, alpha=2,
out=o)``, ``bp.div(a, b, rounding_mode="floor")``, ``bp.dot``...), a few composite methods
(``addcmul``, ``addcdiv``, ``dot``, ``mv``, ``rsub``), ``div``'s ``rounding_mode`` and the ``//``
operator. Composites of existing ops, so gradients come from the ops they are made of.
"""

from __future__ import annotations

from typing import Any, Optional

from . import _core
from ._core import Tensor

__all__ = ["add", "sub", "mul", "div", "true_divide", "floor_divide", "multiply", "divide", "subtract", "rsub",
           "negative", "clone", "detach", "dot", "vdot", "mv", "addcmul", "addcdiv"]


def _finish(result: Tensor, out: Optional[Tensor], name: str) -> Tensor:
    """Writes ``result`` into ``out`` (PyTorch's ``out=``) and returns it; ``out`` must already
    have the result's shape (it is not resized) and no graph is recorded through it."""
    if out is None:
        return result
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if _core.is_grad_enabled() and (result.requires_grad or out.requires_grad):
        raise RuntimeError(f"{name}(): functions with out=... arguments don't support automatic differentiation, "
                           "but one of the arguments requires grad")
    if tuple(out.shape) != tuple(result.shape):
        raise RuntimeError(f"{name}(): out= has shape {tuple(out.shape)} but the result has shape "
                           f"{tuple(result.shape)} (backprop_rs does not resize out=)")
    out.copy_(result)
    return out


def _as_tensor(x: Any, like: Tensor) -> Tensor:
    """``x`` as a tensor on ``like``'s device; a Python number takes ``like``'s floating dtype (as
    PyTorch's wrapped numbers do), so ``float64 / 2.7`` divides by the double 2.7."""
    if isinstance(x, Tensor):
        return x
    if like.is_floating_point() and isinstance(x, (int, float)) and not isinstance(x, bool):
        return _core.tensor(x, dtype=like.dtype, device=like.device)
    return _core.tensor(x, device=like.device)


def add(input: Any, other: Any, *, alpha: Any = None, out: Optional[Tensor] = None) -> Tensor:
    """``input + alpha * other`` (``torch.add``)."""
    if not isinstance(input, Tensor):
        input = _as_tensor(input, other)
    return _finish(input.add(other, alpha=alpha), out, "add")


def sub(input: Any, other: Any, *, alpha: Any = None, out: Optional[Tensor] = None) -> Tensor:
    """``input - alpha * other`` (``torch.sub``)."""
    if not isinstance(input, Tensor):
        input = _as_tensor(input, other)
    return _finish(input.sub(other, alpha=alpha), out, "sub")


def mul(input: Any, other: Any, *, out: Optional[Tensor] = None) -> Tensor:
    """``input * other`` (``torch.mul``)."""
    return _finish(input * other if isinstance(input, Tensor) else other * input, out, "mul")


def _trunc(x: Tensor) -> Tensor:
    """Rounds toward zero exactly: through int64 where that is exact, the value itself where it is
    already integral (large magnitudes, inf) or NaN."""
    if not x.is_floating_point():
        return x
    x = x.detach()  # rounding has no gradient (PyTorch's is zero)
    big = 2.0 ** (52 if x.dtype == _core.float64 else 23)
    keep = (x.abs() >= big) | (x != x)
    return _core.where(keep, x, x.long().to(x.dtype))  # the cast's values where keep are discarded


def _int_div(a: Tensor, b: Tensor, floor: bool) -> Tensor:
    """Integer division rounded toward zero (or down), exact: a float estimate refined twice by
    dividing the integer remainder (exact once it is small), then a sign fix-up."""
    f = _core.float64 if a.device.type == "cpu" else _core.float32
    q = (a.to(f) / b.to(f)).long()
    for _ in range(2):
        q = q + ((a - q * b).to(f) / b.to(f)).long()
    r = a - q * b
    q = q + ((r != 0) & ((r < 0) != (a < 0))).long() * r.sign() * b.sign()  # remainder takes a's sign
    if floor:
        r = a - q * b
        q = q - ((r != 0) & ((r < 0) != (b < 0))).long()
    return q


def _rounded_div(input: Tensor, other: Any, rounding_mode: Optional[str]) -> Tensor:
    if rounding_mode is None:
        return input / other
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    other_t = _as_tensor(other, input)
    if not input.is_floating_point() and not other_t.is_floating_point():
        a, b = (input.long(), other_t.long()) if input.dtype == _core.bool_ or other_t.dtype == _core.bool_ \
            else (input, other_t)
        if bool((b == 0).any()):
            raise ZeroDivisionError("div: integer division by zero")
        return _int_div(a.detach(), b.detach(), rounding_mode == "floor")
    q = (input / other).detach()
    t = _trunc(q)
    if rounding_mode == "trunc":
        return t
    out = t - (t > q).to(t.dtype)  # floor: one below where truncation rounded up
    # PyTorch's (and Python's) floor division works from fmod: inf // finite is nan, and a finite
    # x // inf is -1 where the signs differ (0 otherwise, as computed)
    a, b = input.detach().to(out.dtype), other_t.detach().to(out.dtype)
    inf = float("inf")
    out = _core.where((a.abs() == inf) & (b.abs() != inf) & (b != 0), float("nan"), out)
    finite_a = (a.abs() != inf) & (a == a)
    return _core.where((b.abs() == inf) & finite_a & (a != 0) & ((a < 0) != (b < 0)), -1.0, out)


def div(input: Any, other: Any, *, rounding_mode: Optional[str] = None, out: Optional[Tensor] = None) -> Tensor:
    """``input / other`` (``torch.div``); ``rounding_mode="trunc"`` rounds toward zero,
    ``"floor"`` down (integer inputs give exact integer results)."""
    if not isinstance(input, Tensor):
        input = _as_tensor(input, other)
    return _finish(_rounded_div(input, other, rounding_mode), out, "div")


def true_divide(input: Any, other: Any, *, out: Optional[Tensor] = None) -> Tensor:
    """``input / other``."""
    return div(input, other, out=out)


def floor_divide(input: Any, other: Any, *, out: Optional[Tensor] = None) -> Tensor:
    """``input // other``: division rounded down (``div(..., rounding_mode="floor")``)."""
    return div(input, other, rounding_mode="floor", out=out)


multiply = mul
divide = div
subtract = sub


def rsub(input: Tensor, other: Any, *, alpha: Any = None) -> Tensor:
    """``other - alpha * input``."""
    scaled = input if alpha is None else input * alpha
    return _as_tensor(other, input) - scaled


def negative(input: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """``-input``."""
    return _finish(input.neg(), out, "negative")


def clone(input: Tensor, *, memory_format: Any = None) -> Tensor:
    """A copy of ``input`` (in the graph, as ``input.clone()``)."""
    return input.clone()


def detach(input: Tensor) -> Tensor:
    """``input.detach()``."""
    return input.detach()


def dot(input: Tensor, other: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """The dot product of two 1-D tensors of the same length."""
    if input.dim() != 1 or other.dim() != 1:
        raise RuntimeError(f"1D tensors expected, but got {input.dim()}D and {other.dim()}D tensors")
    if input.shape[0] != other.shape[0]:
        raise RuntimeError(f"inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
                           f"[{other.shape[0]}] to have the same number of elements, but got "
                           f"{input.shape[0]} and {other.shape[0]} elements respectively")
    return _finish((input * other).sum(), out, "dot")


vdot = dot  # real tensors only: no conjugation to do


def mv(input: Tensor, vec: Tensor, *, out: Optional[Tensor] = None) -> Tensor:
    """Matrix (n, m) times vector (m,)."""
    if input.dim() != 2 or vec.dim() != 1:
        raise RuntimeError(f"vector + matrix @ vector expected, got {input.dim()}D and {vec.dim()}D tensors")
    return _finish(input @ vec, out, "mv")


def addcmul(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1,
            out: Optional[Tensor] = None) -> Tensor:
    """``input + value * tensor1 * tensor2``."""
    prod = tensor1 * tensor2
    return _finish(input + (prod if value == 1 else prod * value), out, "addcmul")


def addcdiv(input: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1,
            out: Optional[Tensor] = None) -> Tensor:
    """``input + value * tensor1 / tensor2``."""
    if not (tensor1.is_floating_point() or tensor2.is_floating_point()):
        raise RuntimeError("addcdiv: integer division of tensors is not supported; use floats "
                           "(as PyTorch: use torch.div(..., rounding_mode=...) for integer division)")
    quot = tensor1 / tensor2
    return _finish(input + (quot if value == 1 else quot * value), out, "addcdiv")


# ------------------------------------------------------------------ the matching Tensor methods


def _m_div(self: Tensor, other: Any, *, rounding_mode: Optional[str] = None) -> Tensor:
    """``self / other``; ``rounding_mode="trunc"`` or ``"floor"`` as ``bp.div``."""
    return _rounded_div(self, other, rounding_mode)


def _m_floordiv(self: Tensor, other: Any) -> Tensor:
    """``self // other``: division rounded down."""
    return _rounded_div(self, other, "floor")


def _m_rfloordiv(self: Tensor, other: Any) -> Tensor:
    """``other // self``."""
    return _rounded_div(_as_tensor(other, self), self, "floor")


def _m_addcmul_(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """In place: ``self += value * tensor1 * tensor2``."""
    prod = tensor1 * tensor2
    return self.add_(prod if value == 1 else prod * value)


def _m_addcdiv_(self: Tensor, tensor1: Tensor, tensor2: Tensor, *, value: Any = 1) -> Tensor:
    """In place: ``self += value * tensor1 / tensor2``."""
    quot = tensor1 / tensor2
    return self.add_(quot if value == 1 else quot * value)


def _m_floor_divide_(self: Tensor, other: Any) -> Tensor:
    """In place: ``self //= other``."""
    return self.copy_(_rounded_div(self, other, "floor"))


def _method(f: Any, doc: str) -> Any:
    def m(self: Tensor, *args: Any, **kwargs: Any) -> Any:
        return f(self, *args, **kwargs)

    m.__doc__ = doc
    return m


def tensor_methods() -> dict:
    """The Tensor methods this module provides, for ``_tensor_methods.install``."""
    return {
        "div": _m_div, "divide": _m_div, "floor_divide": _m_floordiv, "__floordiv__": _m_floordiv,
        "__rfloordiv__": _m_rfloordiv, "floor_divide_": _m_floor_divide_, "__ifloordiv__": _m_floor_divide_,
        "addcmul": _method(addcmul, addcmul.__doc__), "addcdiv": _method(addcdiv, addcdiv.__doc__),
        "addcmul_": _m_addcmul_, "addcdiv_": _m_addcdiv_, "dot": _method(dot, dot.__doc__),
        "vdot": _method(dot, dot.__doc__), "mv": _method(mv, mv.__doc__), "rsub": _method(rsub, rsub.__doc__),
    }


