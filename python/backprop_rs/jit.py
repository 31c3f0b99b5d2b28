"""``torch.jit``, answered for an eager engine: ``script``, ``trace`` and ``freeze`` return the
module or function they are given (so programs that compile for speed run eagerly, with the
same results), the decorators (``ignore``, ``unused``, ``export``) return what they decorate,
``is_scripting()`` / ``is_tracing()`` are False, ``fork``/``wait`` run at once. ``save`` and
``load`` raise: there is no TorchScript serialisation; checkpoints are safetensors
(``bp.save`` / ``model.state_dict()``)."""

from __future__ import annotations

import warnings
from typing import Any, Callable, Generic, Optional, TypeVar

__all__ = ["script", "trace", "trace_module", "freeze", "optimize_for_inference", "ignore", "unused", "export",
           "is_scripting", "is_tracing", "fork", "wait", "save", "load", "Final", "ScriptModule", "ScriptFunction",
           "annotate"]

_T = TypeVar("_T")
_warned = [False]


def _eager(obj: Any) -> Any:
    if not _warned[0]:
        _warned[0] = True
        warnings.warn("torch.jit: backprop_rs has no TorchScript compiler; the module or function runs eagerly "
                      "(same results)", UserWarning, stacklevel=3)
    return obj


def script(obj: Any, optimize: Any = None, _frames_up: int = 0, _rcb: Any = None, example_inputs: Any = None) -> Any:
    """Returns ``obj`` unchanged (eager execution)."""
    return _eager(obj)


def trace(func: Any, example_inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
    """Returns ``func`` unchanged (eager execution)."""
    return _eager(func)


def trace_module(mod: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
    """Returns ``mod`` unchanged (eager execution)."""
    return _eager(mod)


def freeze(mod: Any, preserved_attrs: Any = None, optimize_numerics: bool = True) -> Any:
    """Returns ``mod`` unchanged."""
    return mod


def optimize_for_inference(mod: Any, other_methods: Any = None) -> Any:
    """Returns ``mod`` unchanged."""
    return mod


def ignore(drop: Any = False, **kwargs: Any) -> Any:
    """``@torch.jit.ignore`` (bare or with arguments): the function itself."""
    if callable(drop):
        return drop
    return lambda fn: fn


def unused(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@torch.jit.unused``: the function itself."""
    return fn


def export(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``@torch.jit.export``: the function itself."""
    return fn


def is_scripting() -> bool:
    """``False``: nothing is ever scripted here."""
    return False


def is_tracing() -> bool:
    """``False``."""
    return False


def annotate(the_type: Any, the_value: _T) -> _T:
    """``torch.jit.annotate``: the value."""
    return the_value


class _Done:
    def __init__(self, value: Any) -> None:
        self._value = value

    def wait(self) -> Any:
        return self._value


def fork(func: Callable[..., Any], *args: Any, **kwargs: Any) -> _Done:
    """Runs ``func`` now; ``wait`` on the result returns its value."""
    return _Done(func(*args, **kwargs))


def wait(future: _Done) -> Any:
    """The value of a :func:`fork`."""
    return future.wait()


def save(m: Any, f: Any, _extra_files: Any = None) -> None:
    """Raises: there is no TorchScript format here."""
    raise RuntimeError("torch.jit.save: backprop_rs has no TorchScript serialisation; save the weights with "
                       "bp.save(model.state_dict(), path) (safetensors) and rebuild the module in Python")


def load(f: Any, map_location: Optional[Any] = None, _extra_files: Any = None) -> Any:
    """Raises: there is no TorchScript format here."""
    raise RuntimeError("torch.jit.load: backprop_rs cannot load TorchScript archives; load a state_dict "
                       "(bp.load) into the module built in Python")


class Final(Generic[_T]):
    """``torch.jit.Final[T]``: a typing marker only."""


class ScriptModule:
    """Never instantiated: nothing is scripted here, so ``isinstance(m, jit.ScriptModule)`` is False."""


class ScriptFunction:
    """Never instantiated, as :class:`ScriptModule`."""
