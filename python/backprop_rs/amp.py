"""``torch.amp``: mixed precision, answered for an engine without autocast yet.

backprop_rs has float16 and bfloat16 as CPU storage dtypes (computed in float32, stored rounded;
``t.half()``, ``model.half()`` work), but not autocast's per-op casting policy. So:

- :class:`autocast` is a context manager (and decorator) that runs its body unchanged, in the
  tensors' own dtypes. Asking for it enabled warns once that it is disabled and why, as PyTorch
  itself warns and disables autocast for ``device_type="cuda"`` without CUDA.
- :class:`GradScaler` is always disabled (there are no float16 gradients to protect from
  underflow): ``scale(loss)`` returns ``loss``, ``step(optimizer)`` calls ``optimizer.step()``,
  ``update()`` and ``unscale_()`` do nothing, ``get_scale()`` is 1.0. Constructing one with
  ``enabled=True`` warns, as PyTorch's GradScaler does on a machine without CUDA.

A training loop written for AMP (``with autocast(...): loss = ...``, ``scaler.scale(loss).backward()``,
``scaler.step(opt)``, ``scaler.update()``) therefore runs and gives float32 results.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable, Dict, Optional

__all__ = ["autocast", "GradScaler", "is_autocast_available"]

_warned: set = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, UserWarning, stacklevel=3)


def is_autocast_available(device_type: str) -> bool:
    """``False``: there are no lower-precision dtypes to autocast to."""
    return False


class autocast:
    """``torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None)``: runs the
    block unchanged (float32); when enabled, warns once that autocast is disabled here."""

    def __init__(self, device_type: str = "cuda", dtype: Any = None, enabled: bool = True,
                 cache_enabled: Optional[bool] = None) -> None:
        self.device_type = str(device_type)
        self.fast_dtype = dtype
        self.enabled = False
        if enabled:
            _warn_once(
                f"autocast-{self.device_type}",
                f"autocast(device_type={self.device_type!r}) is disabled: backprop_rs has float16/bfloat16 tensors "
                "but no autocast casting policy yet, so the block runs in the tensors' own dtypes",
            )

    def __enter__(self) -> "autocast":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper


class GradScaler:
    """``torch.amp.GradScaler``: always disabled here (no float16 gradients); every method
    passes through. ``enabled=True`` warns once."""

    def __init__(self, device: str = "cuda", init_scale: float = 2.0**16, growth_factor: float = 2.0,
                 backoff_factor: float = 0.5, growth_interval: int = 2000, enabled: bool = True) -> None:
        self._enabled = False
        if enabled:
            _warn_once(
                "gradscaler",
                "GradScaler is disabled: backprop_rs has no float16 gradients to scale (scale() returns the "
                "loss unchanged and step() calls optimizer.step())",
            )

    def is_enabled(self) -> bool:
        """``False``."""
        return self._enabled

    def scale(self, outputs: Any) -> Any:
        """Returns ``outputs`` unchanged."""
        return outputs

    def unscale_(self, optimizer: Any) -> None:
        """Does nothing (nothing was scaled)."""

    def step(self, optimizer: Any, *args: Any, **kwargs: Any) -> Any:
        """``optimizer.step(*args, **kwargs)``."""
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: Any = None) -> None:
        """Does nothing."""

    def get_scale(self) -> float:
        """1.0 (PyTorch's value for a disabled scaler)."""
        return 1.0

    def get_growth_factor(self) -> float:
        """The growth factor (unused)."""
        return 2.0

    def state_dict(self) -> Dict[str, Any]:
        """``{}``, as a disabled PyTorch scaler returns."""
        return {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Accepts any state (a disabled scaler has none to restore)."""
