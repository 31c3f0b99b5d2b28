"""``Module``: the base class of layers and models, with PyTorch's behaviour: attributes that
are Parameters or Modules are registered automatically; ``parameters()``, ``state_dict()``,
``train()/eval()``, ``to(device)`` walk the tree."""

from __future__ import annotations

import copy
import warnings
from collections import OrderedDict, namedtuple
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Set, Tuple

from .._core import Tensor
from ..utils.hooks import RemovableHandle
from . import module_hooks
from .parameter import Parameter


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: ``(missing_keys, unexpected_keys)``."""

    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class Module:
    """Subclass it, create layers in ``__init__``, and write ``forward``."""

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------------ registration

    def _check_init(self) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign parameters or modules before {type(self).__name__}.__init__() calls super().__init__()")

    def __setattr__(self, name: str, value: Any) -> None:
        # PyTorch's rules: a Parameter or Module value (re)registers the name; assigning to a
        # registered name must keep its kind (or be None); anything else is a plain attribute
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._check_init()
            self._remove_from(name, keep=self._parameters)  # a re-assigned parameter keeps its place
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{_typename(value)}' as parameter '{name}' (nn.Parameter or None expected)")
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._check_init()
            self._remove_from(name, keep=self._modules)
            self._modules[name] = value
        elif params is not None and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{_typename(value)}' as child module '{name}' (nn.Module or None expected)")
            self._modules[name] = None
        elif params is not None and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign '{_typename(value)}' as buffer '{name}' (Tensor or None expected)")
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove_from(self, name: str, keep: Optional[Dict[str, Any]] = None) -> None:
        for d in (self.__dict__, self._parameters, self._buffers, self._modules):
            if name in d and d is not keep:
                del d[name]
        self._non_persistent.discard(name)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                self._non_persistent.discard(name)
                return
        object.__delattr__(self, name)

    def _check_name(self, kind: str, name: Any, store: Dict[str, Any]) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {_typename(name)}")
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain "."' + (f", got: {name}" if kind == "module" else ""))
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if hasattr(self, name) and name not in store:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Registers ``param`` (a Parameter or None) under ``name``."""
        self._check_init()
        self._check_name("parameter", name, self._parameters)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{_typename(param)}' object to parameter '{name}' (nn.Parameter or None required)")
        if param is not None and param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model parameters must be created explicitly. "
                f"To express '{name}' as a function of another Tensor, compute the value in the forward() method."
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Optional[Tensor], persistent: bool = True) -> None:
        """Registers a tensor that is state but not a parameter (running statistics, say).
        ``persistent=False`` keeps it out of ``state_dict()``."""
        if "_buffers" not in self.__dict__:
            raise AttributeError("cannot assign buffer before Module.__init__() call")
        self._check_name("buffer", name, self._buffers)
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"cannot assign '{_typename(tensor)}' object to buffer '{name}' (Tensor or None required)")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent.discard(name)
        else:
            self._non_persistent.add(name)

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        """Registers a child module (or None) under ``name``."""
        self._check_init()
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{_typename(module)} is not a Module subclass")
        self._check_name("module", name, self._modules)
        self._modules[name] = module

    def register_module(self, name: str, module: Optional["Module"]) -> None:
        """Alias of :meth:`add_module`."""
        self.add_module(name, module)

    # ------------------------------------------------------------------ calling

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"Module [{type(self).__name__}] is missing the required \"forward\" function")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        d = self.__dict__
        # the common case (no hook anywhere) costs four dict lookups
        if not (d.get("_forward_pre_hooks") or d.get("_forward_hooks") or d.get("_backward_hooks")
                or d.get("_backward_pre_hooks") or module_hooks.any_global_hooks()):
            return self.forward(*args, **kwargs)
        return module_hooks.call_with_hooks(self, args, kwargs)

    _call_impl = __call__

    # ------------------------------------------------------------------ hooks

    def _hook_dict(self, name: str) -> "OrderedDict[int, Any]":
        d = self.__dict__.get(name)
        if d is None:
            d = OrderedDict()
            object.__setattr__(self, name, d)
        return d

    def _add_hook(self, name: str, hook: Callable[..., Any], prepend: bool, flags: Dict[str, bool]) -> RemovableHandle:
        hooks = self._hook_dict(name)
        extras = [self._hook_dict(f) for f in flags]
        handle = RemovableHandle(hooks, extra_dict=extras)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        for f, on in flags.items():
            if on:
                self._hook_dict(f)[handle.id] = True
        return handle

    def register_forward_pre_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                                  with_kwargs: bool = False) -> RemovableHandle:
        """``hook(module, args)`` (or ``hook(module, args, kwargs)`` with ``with_kwargs=True``)
        before ``forward``; it may return new args (or ``(args, kwargs)``)."""
        return self._add_hook("_forward_pre_hooks", hook, prepend,
                              {"_forward_pre_hooks_with_kwargs": with_kwargs})

    def register_forward_hook(self, hook: Callable[..., Any], *, prepend: bool = False,
                              with_kwargs: bool = False, always_call: bool = False) -> RemovableHandle:
        """``hook(module, args, output)`` (or ``hook(module, args, kwargs, output)``) after
        ``forward``; it may return a new output. ``always_call`` runs it even if forward raised."""
        return self._add_hook("_forward_hooks", hook, prepend,
                              {"_forward_hooks_with_kwargs": with_kwargs,
                               "_forward_hooks_always_called": always_call})

    def register_full_backward_pre_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_output)`` when the gradients of the module's outputs are known;
        it may return a new ``grad_output``."""
        return self._add_hook("_backward_pre_hooks", hook, prepend, {})

    def register_full_backward_hook(self, hook: Callable[..., Any], prepend: bool = False) -> RemovableHandle:
        """``hook(module, grad_input, grad_output)`` when the gradients of the module's inputs are
        known (``grad_input`` has one entry per positional argument, None for non-tensors); it
        may return a new ``grad_input``."""
        return self._add_hook("_backward_hooks", hook, prepend, {})

    def register_backward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """PyTorch's deprecated form; registered as a full backward hook (which is what
        PyTorch recommends it be replaced with)."""
        warnings.warn("register_backward_hook is deprecated; it is registered as register_full_backward_hook",
                      FutureWarning, stacklevel=2)
        return self.register_full_backward_hook(hook)

    # ------------------------------------------------------------------ traversal

    def named_modules(self, memo: Optional[Set["Module"]] = None, prefix: str = "",
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, "Module"]]:
        """``(dotted name, module)`` for this module and every descendant, depth first; a module
        reachable twice is listed once unless ``remove_duplicate=False``."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, m in self._modules.items():
            if m is None:
                continue
            yield from m.named_modules(memo, prefix + ("." if prefix else "") + name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        """Every module in the tree (this one first), each once."""
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """``(name, module)`` for the direct children, each once."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and m not in seen:
                seen.add(m)
                yield name, m

    def children(self) -> Iterator["Module"]:
        """The direct children, each once."""
        for _, m in self.named_children():
            yield m

    def _named_members(self, store: str, prefix: str, recurse: bool,
                       remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, t in getattr(m, store).items():
                if t is None or id(t) in seen:
                    continue
                if remove_duplicate:
                    seen.add(id(t))
                yield (f"{mprefix}.{name}" if mprefix else name), t

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[Tuple[str, Parameter]]:
        """``(dotted name, parameter)``; a parameter shared by two modules is listed once."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)  # type: ignore[misc]

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """Every parameter, each once (what an optimizer takes)."""
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[Tuple[str, Tensor]]:
        """``(dotted name, buffer)``, persistent or not."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """Every buffer, each once."""
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Calls ``fn`` on every child (recursively), then on this module; returns self."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def _get_name(self) -> str:
        return type(self).__name__

    def get_submodule(self, target: str) -> "Module":
        """The module at dotted path ``target`` (``""`` is this module)."""
        if target == "":
            return self
        mod: Module = self
        for item in target.split("."):
            if not hasattr(mod, item):
                raise AttributeError(mod._get_name() + " has no attribute `" + item + "`")
            mod = getattr(mod, item)
            if not isinstance(mod, Module):
                raise AttributeError("`" + item + "` is not an nn.Module")
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at dotted path ``target`` (``"fc1.weight"``)."""
        module_path, _, param_name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, param_name):
            raise AttributeError(mod._get_name() + " has no attribute `" + param_name + "`")
        param = getattr(mod, param_name)
        if not isinstance(param, Parameter):
            raise AttributeError("`" + param_name + "` is not an nn.Parameter")
        return param

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at dotted path ``target`` (``"bn.running_mean"``)."""
        module_path, _, buffer_name = target.rpartition(".")
        mod = self.get_submodule(module_path)
        if not hasattr(mod, buffer_name):
            raise AttributeError(mod._get_name() + " has no attribute `" + buffer_name + "`")
        buffer = getattr(mod, buffer_name)
        if buffer_name not in mod._buffers:
            raise AttributeError("`" + buffer_name + "` is not a buffer")
        return buffer

    # ------------------------------------------------------------------ modes and gradients

    def train(self, mode: bool = True) -> "Module":
        """Sets training mode (``mode=False``: evaluation) on this module and its descendants."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        object.__setattr__(self, "training", mode)
        for m in self.children():
            m.train(mode)
        return self

    def eval(self) -> "Module":
        """``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Sets ``requires_grad`` on every parameter (freezing with ``False``); returns self."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drops every parameter's ``.grad`` (``set_to_none=True``) or zeroes it in place."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    from ..autograd import no_grad

                    g = p.grad
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    with no_grad():
                        g.zero_()

    # ------------------------------------------------------------------ devices and dtypes

    def _apply_tensors(self, fn: Callable[[Tensor], Tensor]) -> "Module":
        """Applies ``fn`` to every parameter's data (in place: ``p.data = fn(p.data)``, so each
        Parameter object stays the same one and shared parameters stay shared, as PyTorch's
        ``_apply`` does), to each gradient, and to every buffer."""
        seen = set()
        for m in self.modules():
            for p in m._parameters.values():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                g = p.grad
                p.data = fn(p.detach())
                if g is not None:
                    p.grad = fn(g)
            for name, b in list(m._buffers.items()):
                if b is not None:
                    m._buffers[name] = fn(b)
        return self

    def to(self, *args: Any, **kwargs: Any) -> "Module":
        """Moves (and/or casts floating-point) parameters and buffers: ``to("gpu")``,
        ``to(bp.float64)``. Parameters are moved in place (the same objects), so an optimiser
        made before the move keeps working, as in PyTorch."""

        # memory_format applies to the 4-D and 5-D tensors only, as PyTorch's Module.to
        memory_format = kwargs.pop("memory_format", None)

        def fn(t: Tensor) -> Tensor:
            if not t.is_floating_point():
                # integer buffers move but keep their dtype
                dev = [a for a in args if not _is_dtype(a)] or ([kwargs["device"]] if "device" in kwargs else [])
                return t.to(*dev) if dev else t
            if memory_format is not None and t.ndim in (4, 5):
                return t.to(*args, **kwargs, memory_format=memory_format)
            return t.to(*args, **kwargs)

        return self._apply_tensors(fn)

    def cpu(self) -> "Module":
        return self.to("cpu")

    def gpu(self) -> "Module":
        return self.to("gpu")

    def cuda(self, device: Any = None) -> "Module":
        return self.to("gpu")

    def float(self) -> "Module":
        from .._core import float32

        return self.to(float32)

    def double(self) -> "Module":
        from .._core import float64

        return self.to(float64)

    def half(self) -> "Module":
        """Casts floating-point parameters and buffers to float16 (CPU storage; arithmetic is
        computed in float32 and rounded, as PyTorch's CPU kernels do)."""
        from .._core import float16

        return self.to(float16)

    def bfloat16(self) -> "Module":
        """Casts floating-point parameters and buffers to bfloat16 (CPU storage, as ``half``)."""
        from .._core import bfloat16

        return self.to(bfloat16)

    def type(self, dst_type: Any) -> "Module":
        """Casts every parameter and buffer (integer ones too, unlike ``to(dtype)``) to ``dst_type``."""
        return self._apply_tensors(lambda t: t.type(dst_type))

    # ------------------------------------------------------------------ state

    def get_extra_state(self) -> Any:
        """Override (with :meth:`set_extra_state`) to put non-tensor state in ``state_dict()``
        under ``"_extra_state"``."""
        raise RuntimeError(
            "Reached a code path in Module.get_extra_state() that should never be called. Please file an issue at "
            "https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml to report this bug."
        )

    def set_extra_state(self, state: Any) -> None:
        """Receives what :meth:`get_extra_state` returned, from ``load_state_dict``."""
        raise RuntimeError(
            "Reached a code path in Module.set_extra_state() that should never be called. Please file an issue at "
            "https://github.com/pytorch/pytorch/issues/new?template=bug-report.yml to report this bug."
        )

    def _has_extra_state(self) -> bool:
        return type(self).get_extra_state is not Module.get_extra_state

    def _save_to_state_dict(self, destination: Dict[str, Any], prefix: str, keep_vars: bool) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent:
                destination[prefix + name] = b if keep_vars else b.detach()
        if self._has_extra_state():
            destination[prefix + _EXTRA_STATE_KEY_SUFFIX] = self.get_extra_state()

    def state_dict(self, *args: Any, destination: Optional[Dict[str, Any]] = None, prefix: str = "",
                   keep_vars: bool = False) -> Dict[str, Any]:
        """Parameters and persistent buffers by dotted name, ``prefix`` prepended as given
        (``prefix="model."``); tensors share memory with the model (``keep_vars`` keeps the
        Parameters themselves). A module reachable twice appears under both names, as in PyTorch."""
        if args:
            # PyTorch's deprecated positional form: state_dict(destination, prefix, keep_vars)
            if len(args) > 3:
                raise TypeError(f"state_dict() takes at most 3 positional arguments, got {len(args)}")
            warnings.warn("Positional args are being deprecated, use kwargs instead.", FutureWarning, stacklevel=2)
            destination = args[0] if destination is None else destination
            prefix = args[1] if len(args) > 1 else prefix
            keep_vars = args[2] if len(args) > 2 else keep_vars
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars)
        return destination

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, missing_keys: List[str],
                              unexpected_keys: List[str], error_msgs: List[str], pending: List[Any]) -> None:
        """Checks this module's own entries (PyTorch's rules and messages) and queues the copies
        in ``pending``; nothing is written until every module has been checked."""
        local_state = {k: v for k, v in self._parameters.items() if v is not None}
        local_state.update({k: v for k, v in self._buffers.items() if v is not None and k not in self._non_persistent})
        for name, param in local_state.items():
            key = prefix + name
            if key not in state_dict:
                missing_keys.append(key)
                continue
            input_param = state_dict[key]
            if not isinstance(input_param, Tensor):
                error_msgs.append(
                    f'While copying the parameter named "{key}", expected torch.Tensor or Tensor-like object from '
                    f"checkpoint but received {type(input_param)}"
                )
                continue
            if param.ndim == 0 and input_param.ndim == 1 and input_param.shape[0] == 1:
                input_param = input_param[0]  # PyTorch's compatibility rule for 0.3-era scalars
            if tuple(input_param.shape) != tuple(param.shape):
                error_msgs.append(
                    f"size mismatch for {key}: copying a param with shape {tuple(input_param.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(param.shape)}."
                )
                continue
            pending.append((self, name, param, input_param))
        extra_key = prefix + _EXTRA_STATE_KEY_SUFFIX
        if self._has_extra_state():
            if extra_key in state_dict:
                pending.append((self, _EXTRA_STATE_KEY_SUFFIX, None, state_dict[extra_key]))
            else:
                missing_keys.append(extra_key)
        for key in state_dict:
            if key.startswith(prefix) and key != extra_key:
                input_name = key[len(prefix):].split(".", 1)
                if len(input_name) > 1:
                    if input_name[0] not in self._modules:
                        unexpected_keys.append(key)
                elif input_name[0] not in local_state:
                    unexpected_keys.append(key)
            elif key == extra_key and not self._has_extra_state():
                unexpected_keys.append(key)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> _IncompatibleKeys:
        """Copies ``state_dict``'s tensors into the parameters and buffers (in place, no graph),
        or with ``assign=True`` makes them the parameters and buffers (Parameters keep their
        ``requires_grad``). Returns ``(missing_keys, unexpected_keys)``.

        Missing or unexpected keys raise a RuntimeError when ``strict``; shape mismatches always
        do, with PyTorch's messages. Unlike PyTorch, nothing is copied when an error is raised
        (PyTorch may have loaded part of the modules by then)."""
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing_keys: List[str] = []
        unexpected_keys: List[str] = []
        error_msgs: List[str] = []
        pending: List[Any] = []
        state_dict = OrderedDict(state_dict)

        def load(module: Module, local: Dict[str, Any], prefix: str = "") -> None:
            module._load_from_state_dict(local, prefix, missing_keys, unexpected_keys, error_msgs, pending)
            for name, child in module._modules.items():
                if child is not None:
                    child_prefix = prefix + name + "."
                    load(child, {k: v for k, v in local.items() if k.startswith(child_prefix)}, child_prefix)

        load(self, state_dict)
        if strict:
            if unexpected_keys:
                error_msgs.insert(0, "Unexpected key(s) in state_dict: {}. ".format(_quoted(unexpected_keys)))
            if missing_keys:
                error_msgs.insert(0, "Missing key(s) in state_dict: {}. ".format(_quoted(missing_keys)))
        if error_msgs:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {self.__class__.__name__}:\n\t" + "\n\t".join(error_msgs))
        from ..autograd import no_grad

        with no_grad():
            for module, name, param, value in pending:
                if name == _EXTRA_STATE_KEY_SUFFIX:
                    module.set_extra_state(value)
                elif assign:
                    if isinstance(param, Parameter) and not isinstance(value, Parameter):
                        value = Parameter(value, requires_grad=param.requires_grad)
                    elif isinstance(param, Parameter):
                        value.requires_grad_(param.requires_grad)
                    setattr(module, name, value)
                else:
                    param.copy_(value)
        return _IncompatibleKeys(missing_keys, unexpected_keys)

    # ------------------------------------------------------------------ printing

    def extra_repr(self) -> str:
        """The text inside ``Name(...)`` before the children; layers override it."""
        return ""

    def __repr__(self) -> str:
        extra_lines: List[str] = []
        extra = self.extra_repr()
        if extra:
            extra_lines = extra.split("\n")
        child_lines = [f"({name}): " + _addindent(repr(m), 2) for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]  # the one-liner most layers print
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules) | set(self._buffers))

    def __deepcopy__(self, memo):
        """``copy.deepcopy(model)``: a module with copies of every parameter, buffer and submodule
        (shared ones stay shared, through ``memo``). Pickling stays refused (safetensors only)."""
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new

    def __reduce_ex__(self, protocol):
        raise TypeError("backprop_rs modules are not picklable; save model.state_dict() with backprop_rs.save (safetensors)")


_EXTRA_STATE_KEY_SUFFIX = "_extra_state"


def _quoted(keys: List[str]) -> str:
    return ", ".join(f'"{k}"' for k in keys)


def _addindent(s: str, num_spaces: int) -> str:
    """Indents every line of ``s`` but the first by ``num_spaces``."""
    lines = s.split("\n")
    if len(lines) == 1:
        return s
    return lines[0] + "\n" + "\n".join(" " * num_spaces + line for line in lines[1:])


def _typename(obj: Any) -> str:
    if isinstance(obj, Tensor):
        return obj.type()  # type: ignore[return-value]
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ in ("", "builtins") else f"{cls.__module__}.{cls.__qualname__}"


def _is_dtype(a: Any) -> bool:
    from .._core import dtype

    return isinstance(a, dtype)
