"""Custom autograd Functions, as ``torch.autograd.Function``.

A subclass defines static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` (or the
newer split ``forward(*args)`` + ``setup_context(ctx, inputs, output)``), and is called with
``MyFunction.apply(*args)``::

    class Exp(bp.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y

The forward runs with grad recording off; the engine records one node for all its outputs and
calls ``backward`` once, with a gradient for every output (zeros for those that got none, unless
``ctx.set_materialize_grads(False)``; ``None`` for non-tensor outputs). ``backward`` returns one
gradient per ``forward`` argument (``None`` for arguments that are not tensors or need none).
Saved tensors are kept by the engine, which checks them for in-place changes and frees them
after backward, as PyTorch does. With ``create_graph=True`` the backward is itself recorded, so
a backward written with differentiable ops gives second derivatives.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Tuple

from .. import _core
from .._core import Tensor

__all__ = ["Function", "FunctionCtx", "once_differentiable", "BackwardCFunction"]


class FunctionCtx:
    """The ``ctx`` of a custom Function: what ``forward`` tells ``backward``.

    Attributes set on it in ``forward`` are there in ``backward``. Tensors should be passed to
    :meth:`save_for_backward` rather than stored as attributes: saved tensors are checked and
    freed by the engine, while a tensor stored on ``ctx`` (an output especially) is kept alive
    by the graph it belongs to.
    """

    needs_input_grad: Tuple[bool, ...] = ()

    def __init__(self) -> None:
        self.to_save: Tuple[Optional[Tensor], ...] = ()
        self.dirty_tensors: Tuple[Tensor, ...] = ()
        self.non_differentiable: Tuple[Tensor, ...] = ()
        self.materialize_grads = True
        self._unpacked: Optional[Tuple[Optional[Tensor], ...]] = None

    def save_for_backward(self, *tensors: Optional[Tensor]) -> None:
        """Keeps tensors (inputs, outputs or None) for ``backward`` (read ``ctx.saved_tensors``)."""
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(
                    f"save_for_backward can only save tensors or None, but argument {i} is of type "
                    f"{type(t).__name__}; store other values as attributes of ctx"
                )
        self.to_save = tensors

    def save_for_forward(self, *tensors: Optional[Tensor]) -> None:
        """Accepted for compatibility; forward-mode AD (``jvp``) is not supported."""
        self.saved_for_forward = tensors

    def mark_dirty(self, *tensors: Tensor) -> None:
        """Declares inputs that ``forward`` modified in place (they must be returned)."""
        self.dirty_tensors = tensors

    def mark_non_differentiable(self, *tensors: Tensor) -> None:
        """Declares outputs that get no gradient (they come back with ``requires_grad=False``)."""
        self.non_differentiable = tensors

    def set_materialize_grads(self, value: bool) -> None:
        """With ``False``, outputs that got no gradient reach ``backward`` as None, not zeros."""
        self.materialize_grads = bool(value)

    @property
    def saved_tensors(self) -> Tuple[Optional[Tensor], ...]:
        """The tensors given to :meth:`save_for_backward`, available inside ``backward``.

        Raises RuntimeError if one was modified in place after it was saved."""
        if self._unpacked is None:
            raise RuntimeError(
                "saved_tensors can only be read inside backward (the engine keeps and checks them "
                "until then)"
            )
        return self._unpacked

    saved_variables = saved_tensors


# PyTorch's name for the ctx class; some code isinstance-checks against it.
BackwardCFunction = FunctionCtx


def _base_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: Any) -> Any:
    raise NotImplementedError("setup_context is not overridden")


class Function:
    """Base class of custom differentiable functions; see the module docstring.

    Subclasses are used through :meth:`apply`; instances are not called (PyTorch's legacy
    non-static form is not supported).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "Legacy autograd function with non-static forward method is not supported; define "
            "forward and backward as @staticmethods and call MyFunction.apply(...)"
        )

    @staticmethod
    def forward(ctx: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("You must implement the forward function for custom autograd.Function.")

    @staticmethod
    def backward(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom autograd.Function "
            "to use it with backward mode AD."
        )

    @staticmethod
    def vjp(ctx: Any, *grad_outputs: Any) -> Any:
        raise NotImplementedError(
            "You must implement either the backward or vjp method for your custom autograd.Function "
            "to use it with backward mode AD."
        )

    @staticmethod
    def jvp(ctx: Any, *grad_inputs: Any) -> Any:
        raise NotImplementedError("forward-mode AD (jvp) is not supported by backprop_rs")

    setup_context = staticmethod(_base_setup_context)

    @classmethod
    def _backward_impl(cls) -> Callable[..., Any]:
        # a subclass may define vjp instead of backward, as PyTorch allows
        if cls.backward is not Function.backward:
            return cls.backward
        if cls.vjp is not Function.vjp:
            return cls.vjp
        return cls.backward

    @classmethod
    def apply(cls, *args: Any, **kwargs: Any) -> Any:
        """Runs ``forward`` on ``args`` and records the call in the graph."""
        split = getattr(cls.setup_context, "__func__", cls.setup_context) is not _base_setup_context
        ctx = FunctionCtx()
        grad_on = _core.is_grad_enabled()
        ctx.needs_input_grad = tuple(grad_on and isinstance(a, Tensor) and a.requires_grad for a in args)
        prev = _core._set_grad_enabled(False)
        try:
            if split:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        finally:
            _core._set_grad_enabled(prev)
        return _record(cls, ctx, args, out)


def _record(cls: type, ctx: FunctionCtx, args: Tuple[Any, ...], out: Any) -> Any:
    name = cls.__name__ + "Backward"
    is_tuple = isinstance(out, tuple)
    outs = list(out) if is_tuple else [out]
    tensor_inputs = [a for a in args if isinstance(a, Tensor)]
    out_pos = [k for k, o in enumerate(outs) if isinstance(o, Tensor)]
    tensor_outputs = [outs[k] for k in out_pos]
    for d in ctx.dirty_tensors:
        if not any(d is a for a in tensor_inputs):
            raise RuntimeError(f"{name}: mark_dirty only accepts input tensors, but got a tensor that is not an input")
        if not any(d is o for o in tensor_outputs):
            raise RuntimeError(f"{name}: some elements marked as dirty during the forward method were not returned as output")
    dirty = [any(o is d for d in ctx.dirty_tensors) for o in tensor_outputs]
    non_diff = [any(o is d for d in ctx.non_differentiable) for o in tensor_outputs]
    backward = _make_backward(cls, ctx, name, [isinstance(a, Tensor) for a in args], len(outs), out_pos)
    recorded = _core._record_function(
        name, backward, tensor_inputs, tensor_outputs, list(ctx.to_save), dirty, non_diff, ctx.materialize_grads
    )
    # the engine keeps the saved tensors now; references from ctx would only make cycles
    ctx.to_save = ()
    ctx.dirty_tensors = ()
    ctx.non_differentiable = ()
    for k, t in zip(out_pos, recorded):
        outs[k] = t
    return tuple(outs) if is_tuple else outs[0]


def _make_backward(
    cls: type, ctx: FunctionCtx, name: str, arg_is_tensor: list, n_outputs: int, out_pos: list
) -> Callable[..., list]:
    # Holds no tensors (the inputs and outputs are the engine's): a reference from here to a
    # dirty input would be a cycle through the node.
    impl = cls._backward_impl()

    def backward(saved: Tuple[Optional[Tensor], ...], grads: Tuple[Optional[Tensor], ...]) -> list:
        full: list = [None] * n_outputs
        for k, g in zip(out_pos, grads):
            full[k] = g
        ctx._unpacked = tuple(saved)
        try:
            result = impl(ctx, *full)
        finally:
            ctx._unpacked = None
        if not isinstance(result, tuple):
            result = (result,)
        n = len(arg_is_tensor)
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(
                f"function {name} returned an incorrect number of gradients (expected {n}, got {len(result)})"
            )
        grads_out = []
        for i, (g, is_t) in enumerate(zip(result, arg_is_tensor)):
            if is_t:
                grads_out.append(g)
            elif g is not None:
                raise RuntimeError(
                    f"function {name} returned a gradient different than None at position {i + 1}, but the "
                    "corresponding forward input was not a Variable"
                )
        return grads_out

    return backward


class _DelayedError(Function):
    """Passes values through; differentiating it raises (what once_differentiable attaches)."""

    @staticmethod
    def forward(ctx: Any, *xs: Any) -> Any:
        return xs if len(xs) != 1 else xs[0]

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        raise RuntimeError("trying to differentiate twice a function that was marked with @once_differentiable")


def once_differentiable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorates a ``backward`` that is not itself differentiable: it runs without recording,
    and under ``create_graph=True`` its results carry a node that raises if differentiated."""

    @functools.wraps(fn)
    def wrapper(ctx: Any, *args: Any) -> Any:
        prev = _core._set_grad_enabled(False)
        try:
            outputs = fn(ctx, *args)
        finally:
            _core._set_grad_enabled(prev)
        if not _core.is_grad_enabled():
            return outputs
        if not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return outputs
        was_tuple = isinstance(outputs, tuple)
        outs = outputs if was_tuple else (outputs,)
        fakes = [
            o.detach().requires_grad_(True) if isinstance(o, Tensor) and o.is_floating_point() else o
            for o in outs
        ]
        res = _DelayedError.apply(*fakes)
        if len(fakes) == 1:
            res = (res,)
        return tuple(res) if was_tuple else res[0]

    return wrapper
