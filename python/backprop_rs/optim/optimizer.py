"""``Optimizer``: parameter groups, per-parameter state, ``zero_grad``, ``state_dict``, step
hooks — the PyTorch interface. Subclasses implement ``_step_group``, which hands a whole group to
one fused Rust kernel call.

``state_dict()`` numbers the parameters in group order and stores per-parameter state under
those numbers; ``load_state_dict`` maps them back by position, casts floating-point state to the
parameter's dtype and device (``step`` is left as it is), and replaces the groups'
hyper-parameters by the saved ones, as PyTorch does. One deliberate difference: loaded state
tensors are copies (PyTorch may share them with the dict it was given), so loading one
optimizer's state into another never ties their buffers together.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections import OrderedDict, defaultdict
from itertools import chain
from typing import Any, Callable, Dict, Iterable, List, Optional

from .. import _core
from .._core import Tensor
from ..utils.hooks import RemovableHandle

__all__ = ["Optimizer", "required", "register_optimizer_step_pre_hook", "register_optimizer_step_post_hook"]


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()

_global_optimizer_pre_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
_global_optimizer_post_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()


def register_optimizer_step_pre_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """A pre-hook for every optimizer's ``step``: ``hook(optimizer, args, kwargs)``, which may
    return ``(new_args, new_kwargs)``."""
    handle = RemovableHandle(_global_optimizer_pre_hooks)
    _global_optimizer_pre_hooks[handle.id] = hook
    return handle


def register_optimizer_step_post_hook(hook: Callable[..., Any]) -> RemovableHandle:
    """A post-hook for every optimizer's ``step``: ``hook(optimizer, args, kwargs)``."""
    handle = RemovableHandle(_global_optimizer_post_hooks)
    _global_optimizer_post_hooks[handle.id] = hook
    return handle


def _typename(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return obj.type()  # type: ignore[return-value]
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ in ("", "builtins") else f"{cls.__module__}.{cls.__qualname__}"


def _with_step_hooks(func: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a ``step`` so that the pre/post hooks run around it (once, even when a subclass's
    ``step`` calls ``super().step()``) and the LR schedulers can tell it was called."""

    @functools.wraps(func)
    def step(self: "Optimizer", *args: Any, **kwargs: Any) -> Any:
        self._opt_called = True
        if self._in_step or not (_global_optimizer_pre_hooks or self._optimizer_step_pre_hooks
                                 or self._optimizer_step_post_hooks or _global_optimizer_post_hooks):
            return func(self, *args, **kwargs)
        self._in_step = True
        try:
            for pre_hook in chain(_global_optimizer_pre_hooks.values(), self._optimizer_step_pre_hooks.values()):
                result = pre_hook(self, args, kwargs)
                if result is not None:
                    if isinstance(result, tuple) and len(result) == 2:
                        args, kwargs = result
                    else:
                        raise RuntimeError(
                            f"{func} must return None or a tuple of (new_args, new_kwargs), but got {result}.")
            out = func(self, *args, **kwargs)
            for post_hook in chain(self._optimizer_step_post_hooks.values(), _global_optimizer_post_hooks.values()):
                post_hook(self, args, kwargs)
            return out
        finally:
            self._in_step = False

    step._with_step_hooks = True  # type: ignore[attr-defined]
    return step


class Optimizer:
    """Base class of the optimizers: ``Optimizer(params, defaults)``, where ``params`` is an
    iterable of tensors or of dicts (parameter groups, each with ``"params"`` and any
    hyper-parameters overriding ``defaults``)."""

    _in_step = False
    _opt_called = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # a subclass's own step gets the hooks too, as PyTorch's patched step does
        own = cls.__dict__.get("step")
        if own is not None and not getattr(own, "_with_step_hooks", False):
            cls.step = _with_step_hooks(own)  # type: ignore[method-assign]

    def __init__(self, params: Iterable[Any], defaults: Dict[str, Any]) -> None:
        self.defaults = defaults
        self._optimizer_step_pre_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        self._optimizer_step_post_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        self._optimizer_state_dict_pre_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        self._optimizer_state_dict_post_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        self._optimizer_load_state_dict_post_hooks: "OrderedDict[int, Callable[..., Any]]" = OrderedDict()
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or dicts, but got "
                + _typename(params)
            )
        self.state: Dict[Any, Dict[str, Any]] = defaultdict(dict)
        self.param_groups: List[Dict[str, Any]] = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a group (a dict with ``"params"`` and optional hyper-parameters; missing ones
        take the defaults). The dict itself becomes ``param_groups[-1]``, as in PyTorch."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group)}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            param_group["params"] = [params]
        elif isinstance(params, set):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the ordering of tensors in "
                "sets will change between runs. Please use a list instead."
            )
        else:
            param_group["params"] = list(params)
        for p in param_group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is " + _typename(p))
            if not (p.is_leaf or p.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in param_group:
                raise ValueError(f"parameter group didn't specify a value of required optimization parameter {name}")
            param_group.setdefault(name, default)
        ids = [id(p) for p in param_group["params"]]
        if len(ids) != len(set(ids)):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; in future, this will cause an error; "
                "see github.com/pytorch/pytorch/issues/40967 for more information",
                stacklevel=3,
            )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drops every parameter's ``.grad`` (``set_to_none=True``) or zeroes it in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        g = p.grad
                        if g.grad_fn is not None:
                            g.detach_()
                        else:
                            g.requires_grad_(False)
                        with _no_grad():
                            g.zero_()

    @_with_step_hooks
    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """One update of every group's parameters that have a gradient; ``closure`` (re-evaluates
        the model and returns the loss) runs first, with grad enabled, and its loss is returned."""
        loss = None
        if closure is not None:
            from ..autograd import enable_grad

            with enable_grad():
                loss = closure()
        for g in self.param_groups:
            params = [p for p in g["params"] if p.grad is not None]
            if params:
                self._step_group(g, params)
        return loss

    def _step_group(self, group: Dict[str, Any], params: List[Tensor]) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ hooks

    def register_step_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` before each ``step``; it may return
        ``(new_args, new_kwargs)``. Returns a handle whose ``remove()`` unregisters it."""
        handle = RemovableHandle(self._optimizer_step_pre_hooks)
        self._optimizer_step_pre_hooks[handle.id] = hook
        return handle

    def register_step_post_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """``hook(optimizer, args, kwargs)`` after each ``step``."""
        handle = RemovableHandle(self._optimizer_step_post_hooks)
        self._optimizer_step_post_hooks[handle.id] = hook
        return handle

    @staticmethod
    def _register(hooks: "OrderedDict[int, Callable[..., Any]]", hook: Callable[..., Any],
                  prepend: bool) -> RemovableHandle:
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_state_dict_pre_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` before ``state_dict()`` builds the dict."""
        return self._register(self._optimizer_state_dict_pre_hooks, hook, prepend)

    def register_state_dict_post_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` after; it may return a replacement dict."""
        return self._register(self._optimizer_state_dict_post_hooks, hook, prepend)

    def register_load_state_dict_pre_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer, state_dict)`` before loading (a shallow copy); it may return a replacement."""
        return self._register(self._optimizer_load_state_dict_pre_hooks, hook, prepend)

    def register_load_state_dict_post_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(optimizer)`` after loading."""
        return self._register(self._optimizer_load_state_dict_post_hooks, hook, prepend)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> Dict[str, Any]:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}`` with the
        parameters numbered in group order, as in PyTorch (state tensors are the live ones)."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        mapping: Dict[int, int] = {}
        start = 0
        groups = []
        for g in self.param_groups:
            packed = {k: v for k, v in g.items() if k != "params"}
            mapping.update({id(p): i for i, p in enumerate(g["params"], start) if id(p) not in mapping})
            packed["params"] = [mapping[id(p)] for p in g["params"]]
            start += len(packed["params"])
            groups.append(packed)
        state = {(mapping[id(k)] if isinstance(k, Tensor) else k): dict(v) for k, v in self.state.items()
                 if not isinstance(k, Tensor) or id(k) in mapping}
        sd: Dict[str, Any] = {"state": state, "param_groups": groups}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, sd)
            if result is not None:
                sd = result
        return sd

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores state and hyper-parameters from :meth:`state_dict` (groups matched by
        position, parameters by position within them)."""
        state_dict = dict(state_dict)  # shallow copy, as PyTorch (hooks may edit it)
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        groups = self.param_groups
        saved_groups = [_copy_group(g) for g in state_dict["param_groups"]]
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)} in the state dict, {len(groups)} in the optimizer)"
            )
        for i, (g, s) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size of optimizer's group "
                    f"(group {i}: {len(s['params'])} parameters in the state dict, {len(g['params'])} in the optimizer)"
                )
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))
        state: Dict[Any, Dict[str, Any]] = defaultdict(dict)
        for k, v in state_dict["state"].items():
            p = id_map.get(k)
            if p is None:
                state[k] = v  # state not tied to a parameter is kept as it is (PyTorch's rule)
                continue
            state[p] = {key: _cast(p, val, key) for key, val in v.items()}
        new_groups = []
        for g, s in zip(groups, saved_groups):
            s["params"] = g["params"]
            for k, v in self.defaults.items():
                if v is not required:
                    s.setdefault(k, v)  # a checkpoint from before a hyper-parameter existed
            new_groups.append(s)
        self.state = state
        self.param_groups = new_groups
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("optimizers are not picklable; save optimizer.state_dict() with backprop_rs.save")


def _copy_group(g: Dict[str, Any]) -> Dict[str, Any]:
    # deepcopy of the hyper-parameters (tensors can't be deep-copied here: clone them)
    return {k: (v.clone() if isinstance(v, Tensor) else copy.deepcopy(v)) for k, v in g.items()}


def _cast(param: Tensor, value: Any, key: Any) -> Any:
    """A state value for ``param``: tensors copied, floating-point ones to the parameter's dtype
    and device, others to its device; ``step`` keeps its type (PyTorch's rule)."""
    if isinstance(value, Tensor):
        if key == "step":
            return value.clone()
        if param.is_floating_point() and value.is_floating_point():
            return value.to(param.device).to(param.dtype).clone()
        return value.to(param.device).clone()
    if isinstance(value, dict):
        return {k: _cast(param, v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cast(param, v, None) for v in value)
    return value


def _no_grad() -> Any:
    from ..autograd import no_grad

    return no_grad()


def _zeros_like(p: Tensor) -> Tensor:
    return _core.zeros_like(p)

