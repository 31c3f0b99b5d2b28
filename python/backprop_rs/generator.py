"""``Generator``: a random-number generator object with ``torch.Generator``'s interface, for the
places that take ``generator=`` (samplers, ``random_split``, ``DataLoader``).

It runs in Python on NumPy's PCG64, not in the Rust core: the core has one global generator
(``bp.manual_seed``) and no per-object state, and everything that takes a ``generator`` here draws
index permutations and sample choices, which NumPy does well. Where no generator is passed, a
fresh one is seeded from the global generator (:func:`_resolve`), so ``bp.manual_seed(s)`` alone
makes shuffling reproducible, as ``torch.manual_seed`` does.

The streams differ from PyTorch's (a different algorithm), so the same seed gives the same
permutation on every machine running backprop_rs, not the permutation PyTorch would draw.
"""

from __future__ import annotations

import numbers
import os
from typing import Any, Optional

import numpy as np

from . import _core
from ._core import Tensor

__all__ = ["Generator", "default_generator"]

_MASK64 = (1 << 64) - 1
# a tag in front of the state tensor, so that set_state can refuse a tensor of the wrong kind
_STATE_TAG = 0x5043_4736_3401  # "PCG64", version 1
_STATE_LEN = 8


class Generator:
    """A pseudo-random generator: ``bp.Generator().manual_seed(42)``.

    ``manual_seed(seed)`` (returns the generator), ``seed()`` (a fresh non-deterministic seed,
    returned), ``initial_seed()``, ``get_state()`` / ``set_state(state)``. A new generator starts
    from PyTorch's default seed, 67280421310721. Only ``device="cpu"``: the draws are index
    permutations made on the host.

    ``get_state()`` returns a 1-D ``int64`` tensor of 8 values (PyTorch returns ``uint8`` bytes;
    backprop_rs has no ``uint8`` dtype); it can be saved with ``bp.save`` and handed back to
    ``set_state`` of any ``Generator``.

    >>> g = Generator().manual_seed(7)
    >>> g.initial_seed()
    7
    >>> Generator().set_state(g.get_state()).initial_seed()
    7
    """

    _DEFAULT_SEED = 67280421310721

    def __init__(self, device: Any = "cpu") -> None:
        dev = device if isinstance(device, _core.device) else _core.device(device)
        if dev.type != "cpu":
            raise ValueError(
                "backprop_rs.Generator only supports device='cpu' (it draws on the host with NumPy), "
                f"got device='{dev}'"
            )
        self.device = dev
        self.manual_seed(self._DEFAULT_SEED)

    def manual_seed(self, seed: int) -> "Generator":
        """Seeds the generator; negative seeds wrap to 64 bits as in PyTorch. Returns ``self``."""
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
        seed = int(seed)
        if not -(1 << 63) <= seed <= _MASK64:
            raise RuntimeError(f"Overflow when unpacking long: seed {seed} does not fit in 64 bits")
        seed &= _MASK64
        self._initial_seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed))
        return self

    def seed(self) -> int:
        """Seeds from the operating system's entropy and returns the seed."""
        # os.urandom rather than `secrets`: the same entropy source, without importing hmac and
        # hashlib into every `import backprop_rs`.
        s = int.from_bytes(os.urandom(8), "little")
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        """The seed the generator was last seeded with."""
        return self._initial_seed

    def get_state(self) -> Tensor:
        """The whole state as a 1-D ``int64`` tensor (a copy)."""
        st = self._rng.bit_generator.state
        words = [
            _STATE_TAG,
            st["state"]["state"] & _MASK64, st["state"]["state"] >> 64,
            st["state"]["inc"] & _MASK64, st["state"]["inc"] >> 64,
            int(st["has_uint32"]), int(st["uinteger"]), self._initial_seed,
        ]
        return _core.from_numpy(np.array(words, dtype=np.uint64).view(np.int64).copy())

    def set_state(self, new_state: Tensor) -> "Generator":
        """Restores a state from :meth:`get_state`. Returns ``self``."""
        if not isinstance(new_state, Tensor):
            raise TypeError(f"expected a Tensor from Generator.get_state(), got {type(new_state).__name__}")
        if new_state.dtype != _core.int64 or tuple(new_state.shape) != (_STATE_LEN,):
            raise RuntimeError(
                f"expected a state of {_STATE_LEN} int64 values from backprop_rs.Generator.get_state(), "
                f"got dtype {new_state.dtype} and shape {tuple(new_state.shape)}"
            )
        w = [int(v) for v in np.asarray(new_state.detach().cpu().numpy(), dtype=np.int64).view(np.uint64)]
        if w[0] != _STATE_TAG:
            raise RuntimeError("the tensor is not a backprop_rs.Generator state (its tag does not match)")
        bitgen = np.random.PCG64()
        bitgen.state = {
            "bit_generator": "PCG64",
            "state": {"state": w[1] | (w[2] << 64), "inc": w[3] | (w[4] << 64)},
            "has_uint32": w[5],
            "uinteger": w[6],
        }
        self._rng = np.random.Generator(bitgen)
        self._initial_seed = w[7]
        return self

    def __repr__(self) -> str:
        return f"<backprop_rs.Generator object (seed {self._initial_seed})>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # A generator travels to DataLoader workers (spawn) and may be pickled by users; its state is
        # plain integers, so this is safe (no code runs on load beyond rebuilding the state).
        return (_rebuild_generator, (self._initial_seed, self._rng.bit_generator.state))


class _DefaultGenerator(Generator):
    """``torch.default_generator``: the global generator itself (what ``bp.manual_seed`` seeds
    and returns). Its ``get_state``/``set_state`` are ``bp.get_rng_state``/``set_rng_state``; where
    it is passed as ``generator=``, each use draws a fresh NumPy stream from the global one, so
    the draws advance and replay with the global seed exactly as ``generator=None`` does."""

    def __init__(self) -> None:
        self.device = _core.device("cpu")

    def manual_seed(self, seed: int) -> "Generator":
        from .random import manual_seed

        manual_seed(seed)
        return self

    def seed(self) -> int:
        from .random import seed

        return seed()

    def initial_seed(self) -> int:
        from .random import initial_seed

        return initial_seed()

    def get_state(self) -> Tensor:
        from .random import get_rng_state

        return get_rng_state()

    def set_state(self, new_state: Tensor) -> "Generator":
        from .random import set_rng_state

        set_rng_state(new_state)
        return self

    @property
    def _rng(self) -> np.random.Generator:  # type: ignore[override]
        return np.random.Generator(np.random.PCG64(_global_seed()))

    def __repr__(self) -> str:
        return "<backprop_rs default Generator (the global generator)>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_the_default_generator, ())


default_generator = _DefaultGenerator()


def _the_default_generator() -> Generator:
    return default_generator


def _rebuild_generator(initial_seed: int, state: dict) -> Generator:
    g = Generator()
    bitgen = np.random.PCG64()
    bitgen.state = state
    g._rng = np.random.Generator(bitgen)
    g._initial_seed = initial_seed
    return g


def _resolve(generator: Optional[Generator]) -> np.random.Generator:
    """The NumPy generator to draw from: ``generator``'s own (its state advances), or, when None,
    a fresh one seeded with one draw from backprop_rs's global generator (``bp.manual_seed``)."""
    if generator is None:
        return np.random.Generator(np.random.PCG64(_global_seed()))
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a backprop_rs.Generator or None, got {type(generator).__name__}")
    return generator._rng


def _global_seed() -> int:
    """One 63-bit draw from the global generator, as PyTorch's ``torch.empty((), dtype=torch.int64).random_()``."""
    # tolist, not item: item() of an int64 goes through a float64 and drops the low bits above 2**53
    return int(_core.randint(0, (1 << 63) - 1, (1,)).tolist()[0])


def _draw_seed(generator: Optional[Generator]) -> int:
    """A 63-bit seed drawn from ``generator`` (or the global generator when None)."""
    if generator is None:
        return _global_seed()
    return int(_resolve(generator).integers(0, (1 << 63) - 1))
