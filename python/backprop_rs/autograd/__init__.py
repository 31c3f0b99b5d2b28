"""Autograd with PyTorch's names: grad and inference modes, ``grad``, ``backward``, ``gradcheck``,
custom :class:`Function` classes, the graph as :mod:`~backprop_rs.autograd.graph` nodes, and the
transforms of :mod:`~backprop_rs.autograd.functional`."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence, Tuple, Union

from .. import _core
from .._core import GradcheckError, Tensor

__all__ = [
    "Function",
    "FunctionCtx",
    "once_differentiable",
    "Variable",
    "inference_mode",
    "is_inference_mode_enabled",
    "functional",
    "graph",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "grad",
    "backward",
    "gradcheck",
    "gradgradcheck",
    "GradcheckError",
]

is_grad_enabled = _core.is_grad_enabled
is_inference_mode_enabled = _core.is_inference_mode_enabled


class _GradMode:
    """Context manager and decorator that sets grad mode on this thread (grad mode is per thread,
    as in PyTorch)."""

    _mode: bool = True

    def __init__(self, func: Optional[Callable] = None) -> None:
        self._prev: list = []
        self._func = func
        if func is not None:
            functools.update_wrapper(self, func)

    def __enter__(self) -> None:
        self._prev.append(_core._set_grad_enabled(self._mode))

    def __exit__(self, *exc: Any) -> None:
        _core._set_grad_enabled(self._prev.pop())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is not None:  # used as @no_grad without parentheses
            with self.__class__():
                return self._func(*args, **kwargs)
        (func,) = args

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with self.__class__():
                return func(*a, **kw)

        return wrapper


class no_grad(_GradMode):
    """Ops inside record no graph: ``with bp.no_grad(): ...`` or ``@bp.no_grad()``."""

    _mode = False


class enable_grad(_GradMode):
    """Turns recording back on inside a ``no_grad`` block."""

    _mode = True


class set_grad_enabled:
    """``set_grad_enabled(False)`` as a call, a context manager or a decorator."""

    def __init__(self, mode: bool) -> None:
        self._prev = _core._set_grad_enabled(bool(mode))
        self._mode = bool(mode)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        _core._set_grad_enabled(self._prev)

    def __call__(self, func: Callable) -> Callable:
        _core._set_grad_enabled(self._prev)
        mode = self._mode

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with set_grad_enabled(mode):
                return func(*a, **kw)

        return wrapper


class inference_mode:
    """``torch.inference_mode(mode=True)``: a context manager and decorator (with or without
    parentheses) in which nothing is recorded and every tensor made is an *inference tensor*:
    using one later where autograd must save it, modifying it in place, or making it require
    grad outside inference mode raises (``t.is_inference()`` says which tensors are). Thread
    local and nestable; ``inference_mode(False)`` inside turns it off (and grad mode on)."""

    def __init__(self, mode: Any = True) -> None:
        self._func: Optional[Callable] = None
        if callable(mode):  # used as @inference_mode without parentheses
            self._func = mode
            mode = True
            functools.update_wrapper(self, self._func)
        self.mode = bool(mode)
        self._prev: list = []

    def __enter__(self) -> None:
        self._prev.append(_core._set_inference_mode(self.mode))

    def __exit__(self, *exc: Any) -> None:
        _core._restore_inference_mode(self._prev.pop())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._func is not None:
            with inference_mode(True):
                return self._func(*args, **kwargs)
        (func,) = args
        mode = self.mode

        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with inference_mode(mode):
                return func(*a, **kw)

        return wrapper

    def clone(self) -> "inference_mode":
        return inference_mode(self.mode)


class _VariableMeta(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableMeta):
    """The legacy ``torch.autograd.Variable``: ``Variable(t, requires_grad=False)`` returns a
    tensor (the two have been one type since PyTorch 0.4); ``isinstance(t, Variable)`` holds for
    every tensor."""

    def __new__(cls, data: Any = None, requires_grad: bool = False, volatile: bool = False) -> Any:  # type: ignore[misc]
        if data is None:
            t = _core.tensor([])
        elif isinstance(data, Tensor):
            t = data.detach()
        else:
            t = _core.tensor(data)
        if requires_grad:
            t.requires_grad_(True)
        return t


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on (``torch.is_anomaly_enabled``)."""
    return _core._is_anomaly_enabled()


class detect_anomaly:
    """Context manager and decorator that turns anomaly detection on (PyTorch's
    ``torch.autograd.detect_anomaly``): every op recorded inside keeps the Python stack it was
    called from, and backward raises at the first gradient that becomes NaN or infinite, naming
    the op whose backward produced it and printing that stack. Slow: for debugging only.
    ``check_nan=False`` keeps the stacks but skips the checks."""

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan
        self._prev: list = []

    def __enter__(self) -> None:
        self._prev.append(_core._set_detect_anomaly(True, self.check_nan))

    def __exit__(self, *exc: Any) -> None:
        _core._set_detect_anomaly(self._prev.pop(), True)

    def __call__(self, func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*a: Any, **kw: Any) -> Any:
            with detect_anomaly(self.check_nan):
                return func(*a, **kw)

        return wrapper


class set_detect_anomaly:
    """``set_detect_anomaly(True)`` as a call (anomaly detection stays on), or as a context
    manager that restores the previous setting on exit."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self._prev = _core._set_detect_anomaly(bool(mode), check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: Any) -> None:
        _core._set_detect_anomaly(self._prev, True)


def set_anomaly_enabled(mode: bool, check_nan: bool = True) -> None:
    """``torch.set_anomaly_enabled``: turns anomaly detection on or off."""
    _core._set_detect_anomaly(bool(mode), check_nan)


TensorOrTensors = Union[Tensor, Sequence[Tensor]]


def _as_list(x: Any) -> list:
    if isinstance(x, Tensor):
        return [x]
    return list(x)


def grad(
    outputs: TensorOrTensors,
    inputs: TensorOrTensors,
    grad_outputs: Optional[TensorOrTensors] = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    allow_unused: bool = False,
) -> Tuple[Optional[Tensor], ...]:
    """Gradients of ``outputs`` with respect to ``inputs`` (``.grad`` fields are left alone).

    With ``create_graph=True`` the result is itself differentiable (for second derivatives).
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    gos = None if grad_outputs is None else _as_list(grad_outputs)
    return tuple(_core._grad(outs, ins, gos, retain_graph, create_graph, allow_unused))


def backward(
    tensors: TensorOrTensors,
    grad_tensors: Optional[TensorOrTensors] = None,
    retain_graph: Optional[bool] = None,
    create_graph: bool = False,
    grad_variables: Optional[TensorOrTensors] = None,
    inputs: Optional[TensorOrTensors] = None,
) -> None:
    """Accumulates gradients of ``tensors`` (one backward pass from all of them) into the
    ``.grad`` of every leaf they depend on, or only of ``inputs`` when given."""
    if grad_variables is not None:  # PyTorch's old name
        grad_tensors = grad_variables
    _core._backward(
        _as_list(tensors),
        None if grad_tensors is None else _as_list(grad_tensors),
        retain_graph,
        create_graph,
        None if inputs is None else _as_list(inputs),
    )


def gradcheck(
    func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Compares autograd's Jacobian of ``func`` at ``inputs`` with central finite differences.

    Inputs that should be checked must be float64 tensors with ``requires_grad=True``. Returns
    True, or raises :class:`GradcheckError` naming the first mismatching entry (or returns
    False when ``raise_exception=False``).
    """
    try:
        return _core._gradcheck(func, _as_list(inputs), eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False


def gradgradcheck(
    func: Callable[..., TensorOrTensors],
    inputs: TensorOrTensors,
    *,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
) -> bool:
    """Checks second derivatives: gradcheck of the vector-Jacobian product of ``func``."""
    try:
        return _core._gradgradcheck(func, _as_list(inputs), eps, atol, rtol)
    except GradcheckError:
        if raise_exception:
            raise
        return False


from . import functional, graph  # noqa: E402  (they import this package)
from .function import Function, FunctionCtx, once_differentiable  # noqa: E402
