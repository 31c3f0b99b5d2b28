"""``torch.amp``: automatic mixed precision on the CPU.

- :class:`autocast` (``bp.autocast("cpu", dtype=bp.bfloat16)``): inside the region, the ops on
  PyTorch's CPU lower-precision list (matmul, ``linear``, convolutions, ``bmm``/``addmm``/
  ``baddbmm``, ``prelu``, scaled dot-product attention, the LSTM layer) cast their floating inputs
  to bfloat16 (or float16), and the ops on its float32 list (the losses, ``grid_sample``,
  ``cdist``, ``trace``, reflection/replication padding...) cast theirs to float32; every other op
  runs in the dtypes it is given. float64 tensors are never cast; gradients reach float32
  parameters in float32; the backward pass runs in the forward's dtypes. The policy is the
  core's (``backprop::autocast``); the Python composites on the lists go through
  :func:`_listed`.
- :class:`GradScaler`: PyTorch's dynamic loss scaling (scale the loss, unscale the gradients,
  skip the step when any is inf/NaN, grow the scale every ``growth_interval`` clean steps, back
  off on overflow), the same algorithm and state dict.

The GPU backend has no float16 kernels yet, so ``autocast("gpu")`` warns and runs its block
unchanged; ``device_type="cuda"`` behaves as PyTorch does on a machine without CUDA (a warning,
then disabled), and so does ``GradScaler("cuda")``.
"""

from __future__ import annotations

import functools
import warnings
from collections import defaultdict
from enum import Enum
from typing import Any, Callable, Dict, Optional

from . import _core

__all__ = ["autocast", "GradScaler", "is_autocast_available", "custom_fwd", "custom_bwd"]

_DEVICE_TYPES = ("cpu", "cuda", "gpu")


def is_autocast_available(device_type: str) -> bool:
    """Whether autocast can be enabled for ``device_type``: only ``"cpu"`` here."""
    return device_type == "cpu"


def _check_device_type(device_type: Any) -> str:
    if not isinstance(device_type, str):
        raise ValueError(f"Expected `device_type` of type `str`, got: `{type(device_type)}`")
    kind = device_type.split(":")[0]
    if kind not in _DEVICE_TYPES:
        raise RuntimeError(
            f"User specified an unsupported autocast device_type '{device_type}' "
            "(backprop_rs autocasts on 'cpu'; 'cuda' and 'gpu' are accepted and disabled)"
        )
    return kind


class autocast:
    """``torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: a context
    manager (and decorator) for a mixed-precision region; see the module docstring.

    >>> import backprop_rs as bp
    >>> x, w = bp.randn(4, 8), bp.randn(8, 3, requires_grad=True)
    >>> with bp.autocast("cpu"):
    ...     y = x @ w
    >>> y.dtype, w.dtype
    (backprop_rs.bfloat16, backprop_rs.float32)
    """

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True,
                 cache_enabled: Optional[bool] = None) -> None:
        self.device = _check_device_type(device_type)
        self.device_type = device_type
        self.fast_dtype = dtype if dtype is not None else get_autocast_dtype(self.device)
        self._cache_enabled = _core._autocast_is_cache_enabled() if cache_enabled is None else bool(cache_enabled)
        self._enabled = bool(enabled)
        self._state = None
        if not self._enabled:
            return
        if self.device == "cuda":
            warnings.warn("User provided device_type of 'cuda', but CUDA is not available. Disabling",
                          UserWarning, stacklevel=2)
            self._enabled = False
        elif self.device == "gpu":
            warnings.warn("autocast(device_type='gpu') is disabled: the GPU backend has no float16 kernels yet "
                          "(WGSL shader-f16), so the block runs in the tensors' own dtypes", UserWarning, stacklevel=2)
            self._enabled = False
        elif self.fast_dtype not in (_core.bfloat16, _core.float16):
            warnings.warn("In CPU autocast, but the target dtype is not supported. Disabling autocast.\n"
                          "CPU Autocast only supports dtype of backprop_rs.bfloat16, backprop_rs.float16 currently.",
                          UserWarning, stacklevel=2)
            self._enabled = False

    def __enter__(self) -> "autocast":
        if self.device == "cpu":
            dtype = self.fast_dtype if self.fast_dtype in (_core.bfloat16, _core.float16) else get_autocast_dtype("cpu")
            self._state = _core._autocast_enter("cpu", self._enabled, dtype, self._cache_enabled)
        return self

    def __exit__(self, *exc: Any) -> bool:
        if self._state is not None:
            _core._autocast_exit(self._state)
            self._state = None
        return False

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def decorate_autocast(*args: Any, **kwargs: Any) -> Any:
            with autocast(self.device_type, self.fast_dtype, self._enabled, self._cache_enabled):
                return func(*args, **kwargs)

        return decorate_autocast


def _listed(policy: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Puts a Python composite on an autocast list: under an active CPU region its tensor
    arguments are cast by the core's rule for ``policy`` (``"lower"`` or ``"fp32"``) and its body
    runs with autocast suspended, as the core's listed ops do."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _core._autocast_active():
                return fn(*args, **kwargs)
            cast = _core._autocast_cast
            args = tuple(cast(policy, a) for a in args)
            kwargs = {k: cast(policy, v) for k, v in kwargs.items()}
            _core._autocast_suspend()
            try:
                return fn(*args, **kwargs)
            finally:
                _core._autocast_resume()

        return wrapper

    return deco


# ------------------------------------------------------------------ torch.* autocast state


def is_autocast_enabled(device_type: Optional[str] = None) -> bool:
    """``torch.is_autocast_enabled(device_type=None)``; no argument means ``"cuda"``, as in PyTorch."""
    kind = _check_device_type("cuda" if device_type is None else device_type)
    return kind == "cpu" and _core._autocast_is_enabled("cpu")


def set_autocast_enabled(device_type: Any, enabled: Any = None) -> None:
    """``torch.set_autocast_enabled(device_type, enabled)`` (or the old one-argument form, for CUDA)."""
    if enabled is None:
        device_type, enabled = "cuda", device_type
    kind = _check_device_type(device_type)
    if kind == "cpu":
        _core._autocast_set_enabled("cpu", bool(enabled))
    elif enabled:
        raise RuntimeError(f"autocast cannot be enabled for device_type '{device_type}': the GPU backend has no "
                           "float16 kernels yet (WGSL shader-f16); autocast on the CPU works")


def get_autocast_dtype(device_type: str) -> Any:
    """``torch.get_autocast_dtype(device_type)``: bfloat16 for the CPU, float16 otherwise (PyTorch's defaults)."""
    kind = _check_device_type(device_type)
    return _core._autocast_get_dtype("cpu") if kind == "cpu" else _core.float16


def set_autocast_dtype(device_type: str, dtype: Any) -> None:
    """``torch.set_autocast_dtype(device_type, dtype)``."""
    kind = _check_device_type(device_type)
    if kind == "cpu":
        _core._autocast_set_dtype("cpu", dtype)


def is_autocast_cpu_enabled() -> bool:
    """``torch.is_autocast_cpu_enabled()`` (deprecated in PyTorch)."""
    return _core._autocast_is_enabled("cpu")


def set_autocast_cpu_enabled(enabled: bool) -> None:
    """``torch.set_autocast_cpu_enabled(enabled)`` (deprecated in PyTorch)."""
    _core._autocast_set_enabled("cpu", bool(enabled))


def get_autocast_cpu_dtype() -> Any:
    """``torch.get_autocast_cpu_dtype()``."""
    return _core._autocast_get_dtype("cpu")


def set_autocast_cpu_dtype(dtype: Any) -> None:
    """``torch.set_autocast_cpu_dtype(dtype)``."""
    _core._autocast_set_dtype("cpu", dtype)


def get_autocast_gpu_dtype() -> Any:
    """``torch.get_autocast_gpu_dtype()``: float16."""
    return _core.float16


def is_autocast_cache_enabled() -> bool:
    """``torch.is_autocast_cache_enabled()``."""
    return _core._autocast_is_cache_enabled()


def set_autocast_cache_enabled(enabled: bool) -> None:
    """``torch.set_autocast_cache_enabled(enabled)``."""
    _core._autocast_set_cache_enabled(bool(enabled))


def clear_autocast_cache() -> None:
    """``torch.clear_autocast_cache()``: drops the cached lower-precision parameter copies."""
    _core._autocast_clear_cache()


def autocast_increment_nesting() -> int:
    """``torch.autocast_increment_nesting()``."""
    return _core._autocast_increment_nesting()


def autocast_decrement_nesting() -> int:
    """``torch.autocast_decrement_nesting()``."""
    return _core._autocast_decrement_nesting()


# ------------------------------------------------------------------ custom_fwd / custom_bwd


def _cast(value: Any, device_type: str, dtype: Any) -> Any:
    from ._core import Tensor

    if isinstance(value, Tensor):
        eligible = (value.is_floating_point() and value.dtype != _core.float64
                    and value.device.type == ("cpu" if device_type == "cpu" else "gpu"))
        return value.to(dtype) if eligible else value
    if isinstance(value, (str, bytes)):
        return value
    if isinstance(value, dict):
        return {_cast(k, device_type, dtype): _cast(v, device_type, dtype) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = (_cast(v, device_type, dtype) for v in value)
        return type(value)(items) if isinstance(value, list) else tuple(items)
    return value


def custom_fwd(fwd: Optional[Callable[..., Any]] = None, *, device_type: str, cast_inputs: Any = None) -> Any:
    """``torch.amp.custom_fwd``: for a custom Function's ``forward``. With ``cast_inputs``, an
    autocast-enabled forward runs with autocast off on inputs cast to ``cast_inputs``; either way
    :func:`custom_bwd` later runs ``backward`` under the forward's autocast state."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)
    _check_device_type(device_type)

    @functools.wraps(fwd)
    def decorate_fwd(*args: Any, **kwargs: Any) -> Any:
        args[0]._dtype = get_autocast_dtype(device_type)
        if cast_inputs is None:
            args[0]._fwd_used_autocast = is_autocast_enabled(device_type)
            return fwd(*args, **kwargs)
        enabled = is_autocast_enabled(device_type)
        args[0]._fwd_used_autocast = False
        if not enabled:
            return fwd(*args, **kwargs)
        with autocast(device_type=device_type, enabled=False):
            return fwd(*_cast(args, device_type, cast_inputs), **_cast(kwargs, device_type, cast_inputs))

    return decorate_fwd


def custom_bwd(bwd: Optional[Callable[..., Any]] = None, *, device_type: str) -> Any:
    """``torch.amp.custom_bwd``: runs a custom Function's ``backward`` under the autocast state
    its forward (decorated with :func:`custom_fwd`) ran under."""
    if bwd is None:
        return functools.partial(custom_bwd, device_type=device_type)
    _check_device_type(device_type)

    @functools.wraps(bwd)
    def decorate_bwd(*args: Any, **kwargs: Any) -> Any:
        ctx = args[0]
        with autocast(device_type=device_type, enabled=getattr(ctx, "_fwd_used_autocast", False),
                      dtype=getattr(ctx, "_dtype", None)):
            return bwd(*args, **kwargs)

    return decorate_bwd


# ------------------------------------------------------------------ GradScaler


class OptState(Enum):
    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _refresh_per_optimizer_state() -> Dict[str, Any]:
    return {"stage": OptState.READY, "found_inf_per_device": {}}


class GradScaler:
    """``torch.amp.GradScaler(device="cuda", init_scale=2.**16, growth_factor=2.0,
    backoff_factor=0.5, growth_interval=2000, enabled=True)``: dynamic loss scaling.

    ``scale(loss)`` multiplies by the scale; ``unscale_(opt)`` divides the optimizer's gradients by
    it (in place) and records whether any is inf/NaN; ``step(opt)`` unscales if needed and calls
    ``opt.step()`` only when none was; ``update()`` halves the scale after an overflow (``backoff_factor``)
    or doubles it after ``growth_interval`` clean steps (``growth_factor``). Enabled for ``"cpu"``
    and ``"gpu"``; ``"cuda"`` warns and disables itself, as PyTorch does without CUDA.
    """

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._device = _check_device_type(device)
        self._enabled = bool(enabled)
        if self._enabled and self._device == "cuda":
            warnings.warn("torch.cuda.amp.GradScaler is enabled, but CUDA is not available.  Disabling.",
                          UserWarning, stacklevel=2)
            self._enabled = False
        if self._enabled:
            if growth_factor <= 1.0:
                raise AssertionError("The growth factor must be > 1.0.")
            if backoff_factor >= 1.0:
                raise AssertionError("The backoff factor must be < 1.0.")
            self._init_scale = init_scale
            self._scale: Any = None
            self._growth_factor = growth_factor
            self._backoff_factor = backoff_factor
            self._growth_interval = growth_interval
            self._init_growth_tracker = 0
            self._growth_tracker: Any = None
            self._per_optimizer_states: Dict[int, Dict[str, Any]] = defaultdict(_refresh_per_optimizer_state)

    def _check_scale_growth_tracker(self, funcname: str) -> tuple:
        fix = "This may indicate your script did not use scaler.scale(loss or outputs) earlier in the iteration."
        if self._scale is None:
            raise AssertionError(f"Attempted {funcname} but _scale is None.  " + fix)
        if self._growth_tracker is None:
            raise AssertionError(f"Attempted {funcname} but _growth_tracker is None.  " + fix)
        return self._scale, self._growth_tracker

    def _lazy_init_scale_growth_tracker(self, device: Any) -> None:
        self._scale = _core.full([], float(self._init_scale), dtype=_core.float32, device=device)
        self._growth_tracker = _core.full([], int(self._init_growth_tracker), dtype=_core.int32, device=device)

    def is_enabled(self) -> bool:
        """Whether the scaler scales (``False`` when built disabled or for ``"cuda"``)."""
        return self._enabled

    def scale(self, outputs: Any) -> Any:
        """``outputs`` (a tensor, or nested lists/tuples of them) times the scale factor."""
        if not self._enabled:
            return outputs
        from ._core import Tensor

        if isinstance(outputs, Tensor):
            if self._scale is None:
                self._lazy_init_scale_growth_tracker(outputs.device)
            return outputs * self._scale.to(device=outputs.device)

        def apply_scale(val: Any) -> Any:
            if isinstance(val, Tensor):
                if self._scale is None:
                    self._lazy_init_scale_growth_tracker(val.device)
                return val * self._scale.to(device=val.device)
            if isinstance(val, (list, tuple)):
                items = [apply_scale(v) for v in val]
                return type(val)(items) if isinstance(val, list) else tuple(items)
            raise ValueError("outputs must be a Tensor or an iterable of Tensors")

        return apply_scale(outputs)

    def _unscale_grads_(self, optimizer: Any, inv_scale: Any, found_inf: Any, allow_fp16: bool) -> Dict[Any, Any]:
        # PyTorch's _amp_foreach_non_finite_check_and_unscale_: every gradient is multiplied by
        # inv_scale (even one holding inf/NaN), and found_inf becomes 1 if any element is not finite.
        per_device: Dict[Any, Any] = {}
        for group in optimizer.param_groups:
            for param in group["params"]:
                grad = getattr(param, "grad", None)
                if grad is None:
                    continue
                if not allow_fp16 and grad.dtype == _core.float16:
                    raise ValueError("Attempting to unscale FP16 gradients.")
                key = str(grad.device)
                if key not in per_device:
                    per_device[key] = found_inf.to(device=grad.device)
                bad = grad.isfinite().all().logical_not().to(_core.float32)
                per_device[key] = per_device[key].maximum(bad)
                grad.mul_(inv_scale.to(device=grad.device, dtype=grad.dtype) if grad.dtype != _core.float32
                          else inv_scale.to(device=grad.device))
        return per_device

    def unscale_(self, optimizer: Any) -> None:
        """Divides ``optimizer``'s gradients by the scale, in place (once per ``update()``), so
        that they can be clipped or inspected before ``step()``."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update().")
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # computed in float64 and rounded once, as PyTorch (scale.double().reciprocal().float())
        inv_scale = self._scale.double().reciprocal().float()
        found_inf = _core.full([], 0.0, dtype=_core.float32, device=self._scale.device)
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, inv_scale, found_inf, False)
        state["stage"] = OptState.UNSCALED

    def _maybe_opt_step(self, optimizer: Any, state: Dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if not sum(v.item() for v in state["found_inf_per_device"].values()):
            return optimizer.step(*args, **kwargs)
        return None

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """Unscales (unless ``unscale_`` already did) and calls ``optimizer.step(*args, **kwargs)``
        when no gradient was inf/NaN; returns what it returned, or ``None`` for a skipped step."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        state = self._per_optimizer_states[id(optimizer)]
        if state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(state["found_inf_per_device"]) == 0:
            raise AssertionError("No inf checks were recorded for this optimizer.")
        retval = self._maybe_opt_step(optimizer, state, *args, **kwargs)
        state["stage"] = OptState.STEPPED
        return retval

    def update(self, new_scale: Any = None) -> None:
        """Updates the scale for the next iteration (PyTorch's ``_amp_update_scale_``), or sets it
        to ``new_scale`` (a float or a one-element float32 tensor)."""
        if not self._enabled:
            return
        scale, tracker = self._check_scale_growth_tracker("update")
        from ._core import Tensor

        if new_scale is not None:
            if isinstance(new_scale, float):
                scale.fill_(new_scale)
            else:
                if not (isinstance(new_scale, Tensor) and new_scale.numel() == 1
                        and new_scale.dtype == _core.float32 and not new_scale.requires_grad):
                    raise AssertionError("new_scale should be a float or a 1-element torch.FloatTensor "
                                         "with requires_grad=False.")
                scale.copy_(new_scale.reshape([]))
        else:
            found_infs = [fi for st in self._per_optimizer_states.values()
                          for fi in st["found_inf_per_device"].values()]
            if len(found_infs) == 0:
                raise AssertionError("No inf checks were recorded prior to update.")
            found = sum(fi.item() for fi in found_infs)
            if found:
                scale.mul_(self._backoff_factor)
                tracker.fill_(0)
            else:
                successful = int(tracker.item()) + 1
                if successful == self._growth_interval:
                    grown = scale * self._growth_factor  # float32 arithmetic, as the kernel's
                    if bool(grown.isfinite().item()):
                        scale.copy_(grown)
                    tracker.fill_(0)
                else:
                    tracker.fill_(successful)
        self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)

    def get_scale(self) -> float:
        """The current scale (``init_scale`` before the first ``scale()``; 1.0 when disabled)."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else float(self._scale.item())

    def get_growth_factor(self) -> float:
        return self._growth_factor if self._enabled else 2.0

    def set_growth_factor(self, new_factor: float) -> None:
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        return self._backoff_factor if self._enabled else 0.5

    def set_backoff_factor(self, new_factor: float) -> None:
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        return self._growth_interval if self._enabled else 2000

    def set_growth_interval(self, new_interval: int) -> None:
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return self._init_growth_tracker if self._growth_tracker is None else int(self._growth_tracker.item())

    def state_dict(self) -> Dict[str, Any]:
        """``scale``, ``growth_factor``, ``backoff_factor``, ``growth_interval``,
        ``_growth_tracker`` (``{}`` when disabled), as PyTorch."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(state_dict["_growth_tracker"])

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise AssertionError("A GradScaler instance may only be pickled at the beginning of an iteration, "
                                     "or at the end after scaler.update().")
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
            state["_per_optimizer_states"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self._enabled:
            self._per_optimizer_states = defaultdict(_refresh_per_optimizer_state)
