"""``torch.nn.utils.parametrize``: a module's tensor replaced by a function of other tensors.

``register_parametrization(module, "weight", P())`` moves the parameter to
``module.parametrizations.weight.original`` (the same Parameter object, so an optimizer built
before keeps working; ``original0``, ``original1``... when ``P.right_inverse`` returns several)
and turns ``module.weight`` into a property that computes ``P(original)`` on each access (once
per :func:`cached` block). The module's class becomes a generated subclass, as PyTorch's does.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Iterator, Optional, Sequence

from ..._core import Tensor
from ...autograd import no_grad
from ..container import ModuleDict, ModuleList
from ..module import Module
from ..parameter import Parameter

__all__ = ["register_parametrization", "remove_parametrizations", "is_parametrized", "cached",
           "type_before_parametrizations", "ParametrizationList"]

_cache_enabled = [0]
_cache: Dict[Any, Tensor] = {}


@contextlib.contextmanager
def cached() -> Iterator[None]:
    """Within the block, each parametrized tensor is computed once (on first access)."""
    _cache_enabled[0] += 1
    try:
        yield
    finally:
        _cache_enabled[0] -= 1
        if not _cache_enabled[0]:
            _cache.clear()


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order, and the ``original`` tensor(s)."""

    def __init__(self, modules: Sequence[Module], original: Tensor, unsafe: bool = False) -> None:
        super().__init__(modules)
        self.unsafe = unsafe
        with no_grad():
            new: Any = original
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    new = m.right_inverse(new)
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if tuple(new.shape) != tuple(original.shape) or new.dtype != original.dtype:
                if not unsafe:
                    raise ValueError("The result of right_inverse must have the same shape and dtype as the "
                                     f"original: got {tuple(new.shape)}, {new.dtype}")
            with no_grad():
                if new is not original:
                    original.data = new.detach().clone() if isinstance(new, Tensor) else new
            param = original if isinstance(original, Parameter) else Parameter(original, original.requires_grad)
            self.register_parameter("original", param)
        else:
            for i, t in enumerate(new):
                self.register_parameter(f"original{i}", Parameter(t.detach().clone(), original.requires_grad))

    def right_inverse(self, value: Tensor) -> None:
        """Sets the original(s) so that the parametrization gives ``value``."""
        with no_grad():
            for m in reversed(list(self)):
                if hasattr(m, "right_inverse"):
                    value = m.right_inverse(value)
                elif not self.unsafe:
                    raise RuntimeError(f"parametrization {type(m).__name__} does not implement right_inverse.")
            if self.is_tensor:
                self.original.copy_(value)
            else:
                for i, t in enumerate(value):
                    getattr(self, f"original{i}").copy_(t)

    def forward(self) -> Tensor:
        mods = list(self)
        x = mods[0](self.original) if self.is_tensor else mods[0](*[getattr(self, f"original{i}")
                                                                    for i in range(self.ntensors)])
        for m in mods[1:]:
            x = m(x)
        return x


def _make_property(name: str) -> property:
    def getter(self: Module) -> Tensor:
        plist = self.parametrizations[name]
        if _cache_enabled[0]:
            key = (id(self), name)
            if key not in _cache:
                _cache[key] = plist()
            return _cache[key]
        return plist()

    def setter(self: Module, value: Tensor) -> None:
        self.parametrizations[name].right_inverse(value)

    return property(getter, setter)


def is_parametrized(module: Module, tensor_name: Optional[str] = None) -> bool:
    """Whether ``module`` (or its ``tensor_name``) has a parametrization."""
    plist = module.__dict__.get("_modules", {}).get("parametrizations")
    if plist is None or not isinstance(plist, ModuleDict):
        return False
    return len(plist) > 0 if tensor_name is None else tensor_name in plist


def type_before_parametrizations(module: Module) -> type:
    """The module's class before :func:`register_parametrization` replaced it."""
    return module.__class__.__bases__[0] if is_parametrized(module) else type(module)


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Parametrizes ``module.<tensor_name>`` by ``parametrization`` (another call adds one more,
    applied after)."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        module.parametrizations[tensor_name].append(parametrization)
        return module
    if tensor_name in module._buffers or tensor_name in module._parameters:
        original = getattr(module, tensor_name)
        plist = ParametrizationList([parametrization], original, unsafe=unsafe)
        delattr(module, tensor_name)
    else:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a parametrized element with "
                         f"name '{tensor_name}'")
    if not is_parametrized(module):
        cls = module.__class__
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), {})
        module.parametrizations = ModuleDict()
    setattr(module.__class__, tensor_name, _make_property(tensor_name))
    module.parametrizations[tensor_name] = plist
    return module


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True) -> Module:
    """Undoes :func:`register_parametrization` for ``tensor_name``: the tensor becomes a plain
    parameter again, holding the parametrized value (``leave_parametrized``) or the original."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    plist = module.parametrizations[tensor_name]
    if leave_parametrized:
        with no_grad():
            value = getattr(module, tensor_name)
        if plist.is_tensor:
            param = plist.original
            with no_grad():
                param.data = value.detach().clone()
        else:
            param = Parameter(value.detach().clone(), value.requires_grad)
    else:
        if not plist.is_tensor:
            raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is "
                             "parametrized in terms of a sequence of tensors.")
        param = plist.original
    delattr(module.__class__, tensor_name)
    del module.parametrizations[tensor_name]
    module.register_parameter(tensor_name, param)
    if len(module.parametrizations) == 0:
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]
    return module
