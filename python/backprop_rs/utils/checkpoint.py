"""``torch.utils.checkpoint``: activation checkpointing. The checkpointed function runs without
recording a graph in the forward pass, so its intermediate activations are not kept; the
backward pass runs it again (with the generator state it first saw, so dropout masks repeat)
and backpropagates through that recomputation. Memory for time, gradients unchanged.

Both of PyTorch's variants give the same gradients here. ``use_reentrant=False`` (PyTorch's
recommendation) also reaches parameters used inside the function when no input requires grad;
``use_reentrant=True`` keeps PyTorch's old behaviour there: a warning, and no gradients.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

from .. import _core
from .._core import Tensor

__all__ = ["checkpoint", "checkpoint_sequential"]


def _function_class() -> Any:
    from ..autograd import Function

    class CheckpointFunction(Function):
        @staticmethod
        def forward(ctx: Any, run_function: Callable[..., Any], preserve_rng_state: bool, *args: Any) -> Any:
            from .. import random

            ctx.run_function = run_function
            ctx.rng_state = random.get_rng_state() if preserve_rng_state else None
            ctx.inputs = args
            return run_function(*args)  # apply() runs forward without recording

        @staticmethod
        def backward(ctx: Any, *grads: Any) -> Any:
            from .. import autograd, random

            inputs = [a.detach().requires_grad_(a.requires_grad) if isinstance(a, Tensor) else a
                      for a in ctx.inputs]
            with random.fork_rng(enabled=ctx.rng_state is not None):
                if ctx.rng_state is not None:
                    random.set_rng_state(ctx.rng_state)
                with autograd.enable_grad():
                    out = ctx.run_function(*inputs)
            outs = out if isinstance(out, tuple) else (out,)
            pairs = [(o, g) for o, g in zip(outs, grads)
                     if isinstance(o, Tensor) and o.requires_grad and g is not None]
            if pairs:
                autograd.backward([o for o, _ in pairs], [g for _, g in pairs])
            in_grads = [a.grad if isinstance(a, Tensor) and a.requires_grad else None for a in inputs]
            return (None, None, *in_grads)

    return CheckpointFunction


_CLASS: list = []


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: Any = None, context_fn: Any = None,
               determinism_check: str = "default", debug: bool = False, preserve_rng_state: bool = True,
               **kwargs: Any) -> Any:
    """``torch.utils.checkpoint.checkpoint(function, *args, use_reentrant=..., preserve_rng_state=True)``."""
    if use_reentrant is None:
        warnings.warn("torch.utils.checkpoint: the use_reentrant parameter should be passed explicitly; "
                      "backprop_rs defaults to use_reentrant=True as PyTorch does", UserWarning, stacklevel=2)
        use_reentrant = True
    if kwargs and use_reentrant:
        raise ValueError("Unexpected keyword arguments: " + ",".join(kwargs))
    if not _core.is_grad_enabled():
        return function(*args, **kwargs)
    if not _CLASS:
        _CLASS.append(_function_class())
    call_args = list(args)
    anchored = not use_reentrant
    if anchored:
        # a leaf that requires grad, so that the output does and the backward pass reaches the
        # parameters used inside `function` even when no input requires grad
        call_args.append(_core.zeros((), requires_grad=True))
    elif not any(isinstance(a, Tensor) and a.requires_grad for a in args):
        warnings.warn("None of the inputs have requires_grad=True. Gradients will be None", UserWarning, stacklevel=2)

    def run(*a: Any) -> Any:
        return function(*(a[:-1] if anchored else a), **kwargs)

    return _CLASS[0].apply(run, preserve_rng_state, *call_args)


def checkpoint_sequential(functions: Any, segments: int, input: Tensor, use_reentrant: Any = None,
                          **kwargs: Any) -> Any:
    """``torch.utils.checkpoint.checkpoint_sequential``: runs ``functions`` (a Sequential or a
    list) in ``segments`` chunks, each but the last checkpointed."""
    mods: Sequence[Any] = list(functions.children()) if hasattr(functions, "children") else list(functions)
    if use_reentrant is None:
        warnings.warn("torch.utils.checkpoint.checkpoint_sequential: the use_reentrant parameter should be passed "
                      "explicitly; backprop_rs defaults to use_reentrant=True as PyTorch does", UserWarning,
                      stacklevel=2)
        use_reentrant = True
    size = max(len(mods) // segments, 1)

    def run_segment(start: int, end: int) -> Callable[[Any], Any]:
        def forward(x: Any) -> Any:
            for m in mods[start:end + 1]:
                x = m(x)
            return x
        return forward

    end = -1
    for start in range(0, size * (segments - 1), size):
        end = start + size - 1
        input = checkpoint(run_segment(start, end), input, use_reentrant=use_reentrant, **kwargs)
    return run_segment(end + 1, len(mods) - 1)(input)
