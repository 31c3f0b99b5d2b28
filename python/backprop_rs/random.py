"""``torch.random``: the global generator's state (``get_rng_state`` / ``set_rng_state``),
``fork_rng``, ``manual_seed``, ``seed``, ``initial_seed``.

The state is the engine generator's (xoshiro256++, four 64-bit words) as a ``uint8`` tensor,
behind an 8-byte tag so that a PyTorch state (5056 bytes of Mersenne Twister) is refused with a
clear error instead of being misread.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any, Iterator

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["get_rng_state", "set_rng_state", "fork_rng", "manual_seed", "seed", "initial_seed"]


def __getattr__(name: str) -> Any:
    if name == "default_generator":
        from .generator import default_generator

        return default_generator
    raise AttributeError(f"module 'backprop_rs.random' has no attribute '{name}'")


_TAG = np.frombuffer(b"bprsRNG1", dtype=np.uint8)
_initial = [67280421310721]  # the engine's default seed, PyTorch's


def get_rng_state() -> Tensor:
    """The global generator's state as a 40-byte ``uint8`` tensor (a copy)."""
    words = np.array(_core._get_rng_state(), dtype=np.uint64)
    return _core.tensor(np.concatenate([_TAG, words.view(np.uint8)]), dtype=_core.uint8)


def set_rng_state(new_state: Tensor) -> None:
    """Restores a state from :func:`get_rng_state`."""
    if not isinstance(new_state, Tensor):
        raise TypeError(f"set_rng_state(): expected a ByteTensor, got {type(new_state).__name__}")
    raw = np.asarray(new_state.detach().cpu().numpy())
    if raw.dtype != np.uint8 or raw.shape != (40,) or not np.array_equal(raw[:8], _TAG):
        raise RuntimeError("set_rng_state(): expected a state from backprop_rs.get_rng_state() (40 uint8 values "
                           f"starting with its tag), got dtype {new_state.dtype} and shape {tuple(new_state.shape)}")
    _core._set_rng_state([int(w) for w in raw[8:].copy().view(np.uint64)])


def manual_seed(seed: int) -> Any:
    """Seeds the global generator and returns it (``torch.manual_seed``, which returns
    ``torch.default_generator``)."""
    from .generator import default_generator

    _initial[0] = int(seed)
    _core.manual_seed(int(seed))
    return default_generator


def seed() -> int:
    """Seeds the global generator with a random 63-bit number and returns it."""
    s = secrets.randbits(63)
    manual_seed(s)
    return s


def initial_seed() -> int:
    """The seed last given to :func:`manual_seed` (or :func:`seed`)."""
    return _initial[0]


@contextlib.contextmanager
def fork_rng(devices: Any = None, enabled: bool = True, _caller: str = "fork_rng",
             _devices_kw: str = "devices", device_type: str = "cuda") -> Iterator[None]:
    """Restores the global generator's state when the block ends."""
    if not enabled:
        yield
        return
    state = get_rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
