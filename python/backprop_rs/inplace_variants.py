"""PyTorch's in-place ``_`` variants that are the out-of-place op written back into ``self``
(``t.cumsum_(0)``, ``t.eq_(u)``, ``t.addmm_(a, b)``...), made by one factory from one table,
plus a few small Tensor protocol methods (``__contains__``, ``__reversed__``, ``is_nonzero``,
``is_same_size``) and PyTorch's top-level in-place functions (``torch.abs_(t)``...).

Every variant keeps the rules of the engine's own in-place ops (``inplace.rs``,
``apply_inplace``), checked here before the write because ``copy_`` itself broadcasts and casts
freely:

- the result must have ``self``'s shape (``a.add_(b)`` where ``b`` broadcasts ``a`` bigger is an
  error, :class:`backprop_rs.ShapeError`);
- its dtype must be castable to ``self``'s (:func:`backprop_rs.can_cast`: bool < integer <
  floating), so ``bp.arange(3).sqrt_()`` is a :class:`backprop_rs.DTypeError`, while comparisons
  (``eq_``, ``lt_``, ``logical_and_``...) write 1/0 in ``self``'s dtype;
- a leaf that requires grad is refused while grad mode is on;
- the write goes through ``copy_``: it bumps the version counter, gives ``self`` the result's
  history (so gradients flow through the in-place op), and returns ``self`` itself.

When the write is recorded by autograd the op reads a clone of ``self``, so the values its
backward saved are not the ones the write overwrites.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Dict, Tuple

from . import _core
from ._core import Tensor

#: in-place method name -> the out-of-place Tensor method whose result it writes into ``self``
INPLACE_TABLE: Dict[str, str] = {
    "absolute_": "abs",
    "acosh_": "acosh",
    "addbmm_": "addbmm",
    "addmm_": "addmm",
    "addmv_": "addmv",
    "addr_": "addr",
    "arccos_": "acos",
    "arccosh_": "acosh",
    "arcsin_": "asin",
    "arcsinh_": "asinh",
    "arctan2_": "atan2",
    "arctan_": "atan",
    "arctanh_": "atanh",
    "asinh_": "asinh",
    "atanh_": "atanh",
    "baddbmm_": "baddbmm",
    "bitwise_and_": "bitwise_and",
    "bitwise_left_shift_": "bitwise_left_shift",
    "bitwise_not_": "bitwise_not",
    "bitwise_or_": "bitwise_or",
    "bitwise_right_shift_": "bitwise_right_shift",
    "bitwise_xor_": "bitwise_xor",
    "clip_": "clamp",
    "copysign_": "copysign",
    "cumprod_": "cumprod",
    "cumsum_": "cumsum",
    "deg2rad_": "deg2rad",
    "divide_": "div",
    "eq_": "eq",
    "exp2_": "exp2",
    "fix_": "trunc",
    "float_power_": "float_power",
    "gcd_": "gcd",
    "ge_": "ge",
    "greater_": "gt",
    "greater_equal_": "ge",
    "gt_": "gt",
    "heaviside_": "heaviside",
    "lcm_": "lcm",
    "ldexp_": "ldexp",
    "le_": "le",
    "less_": "lt",
    "less_equal_": "le",
    "logical_and_": "logical_and",
    "logical_not_": "logical_not",
    "logical_or_": "logical_or",
    "logit_": "logit",
    "lt_": "lt",
    "multiply_": "mul",
    "nan_to_num_": "nan_to_num",
    "ne_": "ne",
    "negative_": "neg",
    "nextafter_": "nextafter",
    "not_equal_": "ne",
    "pow_": "pow",
    "rad2deg_": "rad2deg",
    "reciprocal_": "reciprocal",
    "renorm_": "renorm",
    "rsqrt_": "rsqrt",
    "sgn_": "sgn",
    "sinc_": "sinc",
    "square_": "square",
    "subtract_": "sub",
    "true_divide_": "true_divide",
    "xlogy_": "xlogy",
}


def _dtype_name(dtype: Any) -> str:
    return str(dtype).rsplit(".", 1)[-1]


def _check_float_power(self: Tensor, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    # float_power computes in float64; PyTorch's float_power_ refuses any other base dtype,
    # even where a cast back would be allowed
    if self.dtype != _core.float64:
        raise RuntimeError(
            f"the base given to float_power_ has dtype {_dtype_name(self.dtype)} but the operation's "
            "result requires dtype float64")


def _check_cumulative_dtype(self: Tensor, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    # cumsum_(dim, dtype) / cumprod_(dim, dtype): PyTorch asks dtype to be self's
    dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    if dtype is not None and dtype != self.dtype:
        raise RuntimeError(
            f"Bad in-place call: input tensor dtype {_dtype_name(self.dtype)} and output tensor dtype "
            f"{_dtype_name(dtype)} should match")


_PRECHECKS: Dict[str, Callable[[Tensor, Tuple[Any, ...], Dict[str, Any]], None]] = {
    "float_power_": _check_float_power,
    "cumsum_": _check_cumulative_dtype,
    "cumprod_": _check_cumulative_dtype,
}


def _requires_grad(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.requires_grad
    if isinstance(value, (list, tuple)):
        return any(_requires_grad(v) for v in value)
    return False


def write_result(name: str, self: Tensor, result: Any) -> Tensor:
    """Writes ``result`` (the out-of-place value of the in-place op ``name``) into ``self`` with
    the engine's in-place rules (same shape, castable dtype, same device) and returns ``self``."""
    if not isinstance(result, Tensor):
        result = _core.tensor(result, device=self.device)
    if tuple(result.shape) != tuple(self.shape):
        raise _core.ShapeError(
            f"{name}: output with shape {list(self.shape)} doesn't match the broadcast shape "
            f"{list(result.shape)} (an in-place result must have the shape of the tensor written to)")
    if not _core.can_cast(result.dtype, self.dtype):
        raise _core.DTypeError(
            f"{name}: result type {_dtype_name(result.dtype)} can't be cast to the desired output type "
            f"{_dtype_name(self.dtype)}")
    if result.device != self.device:
        raise RuntimeError(
            f"{name}: expected the result on {self.device} (the device of the tensor written to), "
            f"got {result.device}")
    return self.copy_(result)


def make_inplace(name: str, target: str) -> Callable[..., Tensor]:
    """The in-place method ``name``: ``self.<target>(*args, **kwargs)`` written back into
    ``self`` (see the module's docstring for the rules); returns ``self``."""
    precheck = _PRECHECKS.get(name)

    def method(self: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if precheck is not None:
            precheck(self, args, kwargs)
        grad_on = _core.is_grad_enabled()
        if grad_on and self.requires_grad and self.is_leaf:
            raise RuntimeError(f"{name}: a leaf Variable that requires grad is being used in an in-place operation.")
        # a recorded op may save self for its backward: let it read a clone, which the write
        # leaves alone (the clone carries self's history, so gradients flow through it)
        recorded = grad_on and (self.requires_grad or _requires_grad(args) or _requires_grad(tuple(kwargs.values())))
        source = self.clone() if recorded else self
        op = getattr(source, target, None)
        if op is None:
            raise NotImplementedError(f"{name} writes Tensor.{target}(...) into self, and Tensor has no method {target!r}")
        return write_result(name, self, op(*args, **kwargs))

    method.__name__ = name
    method.__qualname__ = f"Tensor.{name}"
    method.__doc__ = (f"In-place ``{target}``: ``self.{target}(...)`` written into ``self`` (same shape; the "
                      "result's dtype castable to ``self``'s). Returns ``self``.")
    return method


def __contains__(self: Tensor, element: Any) -> bool:
    """``element in t``: whether any element equals ``element`` (a number or a tensor, which
    broadcasts against ``t``), as PyTorch's ``(element == t).any().item()``."""
    if isinstance(element, (Tensor, numbers.Number)):
        return bool((self == element).any().item())
    raise RuntimeError(
        f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a {type(element)}.")


def __reversed__(self: Tensor) -> Tensor:
    """``reversed(t)``: ``t.flip(0)``; a 0-d tensor is returned as is."""
    return self if self.dim() == 0 else self.flip(0)


def is_nonzero(self: Tensor) -> bool:
    """Whether the single element is nonzero; PyTorch's errors for none or several elements."""
    n = self.numel()
    if n == 0:
        raise RuntimeError("Boolean value of Tensor with no values is ambiguous")
    if n > 1:
        raise RuntimeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(self.item() != 0)


def is_same_size(self: Tensor, other: Tensor) -> bool:
    """Whether ``other`` (a Tensor) has this tensor's shape."""
    if not isinstance(other, Tensor):
        raise TypeError(f"is_same_size(): argument 'other' (position 1) must be Tensor, not {type(other).__name__}")
    return tuple(self.shape) == tuple(other.shape)


def tensor_methods() -> Dict[str, Any]:
    """The Tensor methods of this module, by name, for ``_tensor_methods.install``: every
    in-place variant of :data:`INPLACE_TABLE` and the protocol methods."""
    methods: Dict[str, Any] = {name: make_inplace(name, target) for name, target in INPLACE_TABLE.items()}
    for f in (__contains__, __reversed__, is_nonzero, is_same_size):
        methods[f.__name__] = f
    return methods


#: PyTorch's top-level in-place functions that are a Tensor in-place method of the same name
TOPLEVEL_METHOD_NAMES: Tuple[str, ...] = (
    "abs_", "acos_", "acosh_", "addmv_", "arccos_", "arccosh_", "arcsin_", "arcsinh_", "arctan_",
    "arctanh_", "asin_", "asinh_", "atan_", "atanh_", "ceil_", "clamp_", "clamp_max_", "clamp_min_",
    "clip_", "cos_", "cosh_", "deg2rad_", "erf_", "erfc_", "exp2_", "exp_", "expm1_", "fill_",
    "fix_", "floor_", "frac_", "gcd_", "i0_", "index_put_", "lcm_", "ldexp_", "log10_", "log1p_", "log2_",
    "log_", "logit_", "nan_to_num_", "neg_", "negative_", "rad2deg_", "reciprocal_", "relu_", "round_",
    "rsqrt_", "sigmoid_", "sin_", "sinc_", "sinh_", "sqrt_", "square_", "tan_", "tanh_", "trunc_", "xlogy_",
    "zero_",
)

#: PyTorch's top-level in-place activations / dropouts -> (nn.functional name, passes inplace=True)
TOPLEVEL_FUNCTIONAL: Dict[str, Tuple[str, bool]] = {
    "celu_": ("celu_", False),
    "selu_": ("selu_", False),
    "rrelu_": ("rrelu_", False),
    "threshold_": ("threshold_", False),
    "dropout_": ("dropout", True),
    "alpha_dropout_": ("alpha_dropout", True),
    "feature_alpha_dropout_": ("feature_alpha_dropout", True),
}


def _toplevel_method(name: str) -> Callable[..., Any]:
    def f(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        return getattr(input, name)(*args, **kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``{name}(input, ...)`` is ``input.{name}(...)`` (in place; returns ``input``)."
    return f


def _toplevel_functional(name: str, target: str, inplace_kwarg: bool) -> Callable[..., Any]:
    def f(input: Tensor, *args: Any, **kwargs: Any) -> Any:
        from .nn import functional as F

        if inplace_kwarg:
            kwargs["inplace"] = True
        return getattr(F, target)(input, *args, **kwargs)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"``{name}(input, ...)``: ``nn.functional.{target}`` applied to ``input`` in place."
    return f


def fill(input: Tensor, value: Any) -> Tensor:
    """``fill(t, value)``: a new tensor of ``t``'s shape, dtype and device filled with ``value``
    (a number or a 0-d tensor, whose gradient it carries), as PyTorch's ``torch.fill``."""
    return _core.zeros(*input.shape, dtype=input.dtype, device=input.device).fill_(value)


def toplevel_functions() -> Dict[str, Any]:
    """PyTorch's top-level in-place functions (``torch.abs_(t)``, ``torch.clamp_(t, 0, 1)``,
    ``torch.zero_(t)``, ``torch.relu_(t)``, ``torch.dropout_(t, p, train)``...) and the out-of-place
    ``fill``, by name, for the top-level namespace. Each dispatches by name when called."""
    out: Dict[str, Any] = {name: _toplevel_method(name) for name in TOPLEVEL_METHOD_NAMES}
    out.update({name: _toplevel_functional(name, target, kw) for name, (target, kw) in TOPLEVEL_FUNCTIONAL.items()})
    out["fill"] = fill
    return out
