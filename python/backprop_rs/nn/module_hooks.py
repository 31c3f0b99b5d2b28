"""Module hooks: the forward (pre-)hooks and full backward (pre-)hooks of ``nn.Module``, and the
global ones of ``nn.modules.module``, with PyTorch's order and semantics.

Full backward hooks work as in PyTorch: the module's tensor inputs and outputs each pass through
an identity custom Function; a pre-hook on the outputs' node sees ``grad_output`` first (and
calls the backward pre-hooks), then a hook on the inputs' node sees ``grad_input`` and calls
the backward hooks with both. A module whose inputs need no gradient has its backward hooks
called right after its ``grad_output`` is known, with ``grad_input`` all None.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

from .._core import Tensor
from ..autograd.function import Function
from ..utils.hooks import RemovableHandle

# global hooks (torch.nn.modules.module.register_module_*): run before the module's own
_global_forward_pre_hooks: "OrderedDict[int, Callable]" = OrderedDict()
_global_forward_hooks: "OrderedDict[int, Callable]" = OrderedDict()
_global_forward_hooks_always_called: "OrderedDict[int, bool]" = OrderedDict()
_global_backward_pre_hooks: "OrderedDict[int, Callable]" = OrderedDict()
_global_backward_hooks: "OrderedDict[int, Callable]" = OrderedDict()


def any_global_hooks() -> bool:
    return bool(_global_forward_pre_hooks or _global_forward_hooks or _global_backward_pre_hooks or _global_backward_hooks)


def register_module_forward_pre_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """A forward pre-hook run for every module, before the module's own."""
    h = RemovableHandle(_global_forward_pre_hooks)
    _global_forward_pre_hooks[h.id] = hook
    return h


def register_module_forward_hook(hook: Callable[..., Any], *, always_call: bool = False) -> RemovableHandle:
    """A forward hook run for every module, before the module's own."""
    h = RemovableHandle(_global_forward_hooks, extra_dict=_global_forward_hooks_always_called)
    _global_forward_hooks[h.id] = hook
    if always_call:
        _global_forward_hooks_always_called[h.id] = True
    return h


def register_module_full_backward_pre_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """A backward pre-hook run for every module, before the module's own."""
    h = RemovableHandle(_global_backward_pre_hooks)
    _global_backward_pre_hooks[h.id] = hook
    return h


def register_module_full_backward_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """A full backward hook run for every module, before the module's own."""
    h = RemovableHandle(_global_backward_hooks)
    _global_backward_hooks[h.id] = hook
    return h


class _Identity(Function):
    """Passes its tensors through; its node is where the module's hooks sit."""

    @staticmethod
    def forward(ctx: Any, *xs: Tensor) -> Any:
        ctx.set_materialize_grads(False)
        ctx.mark_non_differentiable(*[x for x in xs if not x.requires_grad])
        return xs

    @staticmethod
    def backward(ctx: Any, *grads: Any) -> Any:
        return grads


def _tensor_positions(values: Tuple[Any, ...]) -> List[int]:
    return [i for i, v in enumerate(values) if isinstance(v, Tensor)]


class BackwardHook:
    """Wires one call of a module to its full backward (pre-)hooks."""

    def __init__(self, module: Any, user_hooks: List[Callable], user_pre_hooks: List[Callable]) -> None:
        self.module = module
        self.user_hooks = user_hooks
        self.user_pre_hooks = user_pre_hooks
        self.grad_outputs: Optional[Tuple[Any, ...]] = None
        self.n_inputs = 0
        self.input_positions: Optional[List[int]] = None
        self.n_outputs = 0
        self.output_positions: List[int] = []

    def _pack(self, values: Tuple[Any, ...], positions: List[int], size: int) -> Tuple[Any, ...]:
        full: List[Any] = [None] * size
        for p, v in zip(positions, values):
            full[p] = v
        return tuple(full)

    def _wrap(self, values: Tuple[Any, ...]) -> Tuple[Tuple[Any, ...], Optional[Any], List[int]]:
        """Passes the tensors of ``values`` through the identity; returns the new values, the
        identity's node (None when nothing requires grad) and the tensors' positions."""
        positions = _tensor_positions(values)
        tensors = [values[i] for i in positions]
        if not any(t.requires_grad for t in tensors):
            return values, None, positions
        out = _Identity.apply(*tensors)
        if not isinstance(out, tuple):
            out = (out,)
        new = list(values)
        node = None
        for p, t in zip(positions, out):
            new[p] = t
            if node is None and t.grad_fn is not None:
                node = t.grad_fn
        return tuple(new), node, positions

    def setup_input_hook(self, args: Tuple[Any, ...]) -> Tuple[Any, ...]:
        self.n_inputs = len(args)
        if not (self.user_hooks or self.user_pre_hooks) or not _tensor_positions(args):
            return args
        new, node, positions = self._wrap(args)
        if node is None:
            return args
        self.input_positions = positions

        def hook(grad_inputs: Tuple[Any, ...], _grad_outputs: Tuple[Any, ...]) -> Any:
            if not self.user_hooks:
                return None
            grad_input = self._pack(grad_inputs, positions, self.n_inputs)
            changed = False
            for h in self.user_hooks:
                res = h(self.module, grad_input, self.grad_outputs)
                if res is None:
                    continue
                if not isinstance(res, tuple):
                    res = (res,)
                if len(res) != len(grad_input):
                    raise RuntimeError(
                        f"Backward hook returned an invalid number of grad_input, got {len(res)}, but expected {len(grad_input)}")
                grad_input = tuple(res)
                changed = True
            self.grad_outputs = None
            if not changed:
                return None
            return tuple(grad_input[p] for p in positions)

        node.register_hook(hook)
        return new

    def setup_output_hook(self, result: Any) -> Any:
        is_tensor = isinstance(result, Tensor)
        values = (result,) if is_tensor else result
        if not isinstance(values, tuple) or not _tensor_positions(values):
            return result
        self.n_outputs = len(values)
        new, node, positions = self._wrap(values)
        if node is None:
            return result
        self.output_positions = positions

        def prehook(grad_outputs: Tuple[Any, ...]) -> Any:
            grad_output = self._pack(grad_outputs, positions, self.n_outputs)
            changed = False
            for h in self.user_pre_hooks:
                res = h(self.module, grad_output)
                if res is None:
                    continue
                if not isinstance(res, tuple):
                    res = (res,)
                if len(res) != len(grad_output):
                    raise RuntimeError(
                        f"Backward pre hook returned an invalid number of grad_output, got {len(res)}, but expected {len(grad_output)}")
                grad_output = tuple(res)
                changed = True
            self.grad_outputs = grad_output
            if self.input_positions is None:
                # no input needs a gradient: the hooks get grad_input all None, now
                grad_input = (None,) * self.n_inputs
                for h in self.user_hooks:
                    res = h(self.module, grad_input, self.grad_outputs)
                    if res is not None and not (isinstance(res, tuple) and all(r is None for r in res)):
                        raise RuntimeError(
                            "Backward hook for Modules where no input requires gradient should always return None or None for all gradients.")
                self.grad_outputs = None
            if not changed:
                return None
            return tuple(grad_output[p] for p in positions)

        node.register_prehook(prehook)
        return new[0] if is_tensor else new


def call_with_hooks(module: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Any:
    """``module(*args, **kwargs)`` with every hook that applies, in PyTorch's order."""
    d = module.__dict__
    pre_hooks = list(_global_forward_pre_hooks.items()) + list(d.get("_forward_pre_hooks", {}).items())
    pre_kwargs = d.get("_forward_pre_hooks_with_kwargs", {})
    for hid, hook in pre_hooks:
        if hid in pre_kwargs:
            res = hook(module, args, kwargs)
            if res is not None:
                if not (isinstance(res, tuple) and len(res) == 2):
                    raise RuntimeError(
                        f"forward pre-hook must return None or a tuple of (new_args, new_kwargs), but got {res}.")
                args, kwargs = res
        else:
            res = hook(module, args)
            if res is not None:
                args = res if isinstance(res, tuple) else (res,)

    bw_hooks = list(_global_backward_hooks.values()) + list(d.get("_backward_hooks", {}).values())
    bw_pre_hooks = list(_global_backward_pre_hooks.values()) + list(d.get("_backward_pre_hooks", {}).values())
    bw = None
    if bw_hooks or bw_pre_hooks:
        bw = BackwardHook(module, bw_hooks, bw_pre_hooks)
        args = bw.setup_input_hook(args)

    fwd_hooks = list(_global_forward_hooks.items()) + list(d.get("_forward_hooks", {}).items())
    fwd_kwargs = d.get("_forward_hooks_with_kwargs", {})
    always = dict(_global_forward_hooks_always_called)
    always.update(d.get("_forward_hooks_always_called", {}))
    called: set = set()
    try:
        result = module.forward(*args, **kwargs)
        for hid, hook in fwd_hooks:
            called.add(hid)
            res = hook(module, args, kwargs, result) if hid in fwd_kwargs else hook(module, args, result)
            if res is not None:
                result = res
    except Exception:
        # hooks registered with always_call=True still run when forward (or a hook) raised
        for hid, hook in fwd_hooks:
            if hid in always and hid not in called:
                try:
                    if hid in fwd_kwargs:
                        hook(module, args, kwargs, None)
                    else:
                        hook(module, args, None)
                except Exception:
                    pass
        raise

    if bw is not None:
        result = bw.setup_output_hook(result)
    return result
