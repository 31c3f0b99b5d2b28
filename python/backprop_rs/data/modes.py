"""The four ways to feed backprop.

============  ==================================  =========================================
mode          one update uses                     the right choice when
============  ==================================  =========================================
batch         the whole data set                  the data fits in memory and is small; the
                                                  gradient is exact, steps are few and
                                                  deterministic (full-batch gradient descent)
stochastic    one example, shuffled each epoch    you want the most updates per pass and the
                                                  noise that helps escape poor minima; slow
                                                  per example (no vectorisation)
minibatch     k examples (the default, k=32)      almost always: vectorised like batch, noisy
                                                  and frequent like stochastic
online        each example as it arrives from a   data is a stream (sensor, log, user events):
              stream; no epochs, no shuffling,    it can't be stored or revisited, memory must
              constant memory                     stay constant, the model adapts as it goes
============  ==================================  =========================================
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Tuple

from .._core import Tensor
from .dataloader import DataLoader
from .dataset import Dataset

MODES = ("batch", "stochastic", "minibatch", "online")


def loader_for(mode: str, dataset: Dataset, batch_size: int = 32, seed: Optional[int] = None) -> DataLoader:
    """A DataLoader that feeds ``dataset`` the way ``mode`` says (``online`` is not a loader:
    use :func:`stream`)."""
    if mode == "batch":
        return DataLoader(dataset, batch_size=len(dataset), shuffle=False)
    if mode == "stochastic":
        return DataLoader(dataset, batch_size=1, shuffle=True, seed=seed)
    if mode == "minibatch":
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, seed=seed)
    if mode == "online":
        raise ValueError("online mode consumes a stream of examples; build one with backprop_rs.data.stream(...)")
    raise ValueError(f"unknown mode '{mode}'; expected one of {', '.join(MODES)}")


def stream(*tensors: Tensor, passes: int = 1) -> Iterator[Tuple[Tensor, ...]]:
    """A stream of single examples (each with a leading batch dim of 1) in arrival order,
    generated lazily: nothing is copied or buffered. ``passes`` replays the source that many
    times, as a stand-in for a longer stream."""
    n = tensors[0].shape[0]
    for _ in range(passes):
        for i in range(n):
            yield tuple(t[i : i + 1] for t in tensors)


def as_stream(source: Iterable[Any]) -> Iterator[Tuple[Tensor, ...]]:
    """Adapts any iterable/generator of examples into the online trainer's input."""
    for item in source:
        yield tuple(item) if isinstance(item, (tuple, list)) else (item,)
