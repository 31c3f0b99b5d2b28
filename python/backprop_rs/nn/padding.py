"""Padding layers (``ZeroPad*d``, ``ConstantPad*d``, ``ReflectionPad*d``, ``ReplicationPad*d``,
``CircularPad*d``): ``F.pad`` with the layer's padding and mode, as PyTorch's."""

from __future__ import annotations

from typing import Sequence, Tuple, Union

from .._core import Tensor
from . import functional as F
from .module import Module


def _pads(padding: Union[int, Sequence[int]], n: int) -> Tuple[int, ...]:
    if isinstance(padding, int):
        return (padding,) * (2 * n)
    p = tuple(int(v) for v in padding)
    if len(p) != 2 * n:
        raise ValueError(f"padding must be an int or a {2 * n}-tuple, got {padding}")
    return p


class _PadNd(Module):
    _n = 1
    _mode = "constant"

    def __init__(self, padding: Union[int, Sequence[int]], value: float = 0.0) -> None:
        super().__init__()
        self.padding = _pads(padding, self._n)
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        if self._mode == "constant":
            return F.pad(x, self.padding, "constant", self.value)
        return F.pad(x, self.padding, self._mode)

    def extra_repr(self) -> str:
        return f"{self.padding}" + (f", value={self.value}" if self._mode == "constant" and self.value else "")


def _make(name: str, n: int, mode: str, doc: str, with_value: bool) -> type:
    def __init__(self, padding, *args) -> None:  # type: ignore[no-untyped-def]
        _PadNd.__init__(self, padding, *(args if with_value else (0.0,)))

    return type(name, (_PadNd,), {"_n": n, "_mode": mode, "__doc__": doc, "__init__": __init__,
                                  "__module__": __name__})


ZeroPad1d = _make("ZeroPad1d", 1, "constant", "Zeros at both ends of the last dim.", False)
ZeroPad2d = _make("ZeroPad2d", 2, "constant", "Zeros around the last two dims (left, right, top, bottom).", False)
ZeroPad3d = _make("ZeroPad3d", 3, "constant", "Zeros around the last three dims.", False)
ConstantPad1d = _make("ConstantPad1d", 1, "constant", "``value`` at both ends of the last dim.", True)
ConstantPad2d = _make("ConstantPad2d", 2, "constant", "``value`` around the last two dims.", True)
ConstantPad3d = _make("ConstantPad3d", 3, "constant", "``value`` around the last three dims.", True)
ReflectionPad1d = _make("ReflectionPad1d", 1, "reflect", "The last dim mirrored at its ends (edge not repeated).",
                        False)
ReflectionPad2d = _make("ReflectionPad2d", 2, "reflect", "The last two dims mirrored at their edges.", False)
ReflectionPad3d = _make("ReflectionPad3d", 3, "reflect", "The last three dims mirrored at their edges.", False)
ReplicationPad1d = _make("ReplicationPad1d", 1, "replicate", "The edge values of the last dim repeated.", False)
ReplicationPad2d = _make("ReplicationPad2d", 2, "replicate", "The edge values of the last two dims repeated.", False)
ReplicationPad3d = _make("ReplicationPad3d", 3, "replicate", "The edge values of the last three dims repeated.",
                         False)
CircularPad1d = _make("CircularPad1d", 1, "circular", "The last dim wrapped around.", False)
CircularPad2d = _make("CircularPad2d", 2, "circular", "The last two dims wrapped around.", False)
CircularPad3d = _make("CircularPad3d", 3, "circular", "The last three dims wrapped around.", False)

__all__ = ["ZeroPad1d", "ZeroPad2d", "ZeroPad3d", "ConstantPad1d", "ConstantPad2d", "ConstantPad3d", "ReflectionPad1d",
           "ReflectionPad2d", "ReflectionPad3d", "ReplicationPad1d", "ReplicationPad2d", "ReplicationPad3d",
           "CircularPad1d", "CircularPad2d", "CircularPad3d"]
