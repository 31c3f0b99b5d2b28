"""A small trainer: runs backprop over data fed in one of the four modes (batch, stochastic,
minibatch, online; see :mod:`backprop_rs.data.modes`), with a live progress bar."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, List, Optional, Tuple

from ._core import Tensor
from .autograd import no_grad
from .data import MODES, DataLoader, TensorDataset, loader_for


@dataclass
class History:
    """What happened during training: one entry per epoch (or per reporting chunk online)."""

    mode: str
    loss: List[float] = field(default_factory=list)
    train_acc: List[float] = field(default_factory=list)
    test_acc: List[float] = field(default_factory=list)
    updates: int = 0
    seconds: float = 0.0
    lca: Any = None  # a viz.lca.LossChangeAllocator when fit(..., allocate_loss=True)


def accuracy(model, x: Tensor, y: Tensor, batch_size: int = 1024) -> float:
    """Fraction of rows of ``x`` whose arg-max prediction equals ``y`` (in eval mode, no graph)."""
    was_training = model.training
    model.eval()
    correct = 0
    with no_grad():
        for s in range(0, x.shape[0], batch_size):
            out = model(x[s : s + batch_size])
            correct += int((out.argmax(1) == y[s : s + batch_size]).sum().item())
    model.train(was_training)
    return correct / max(1, x.shape[0])


def _bar(iterable, total, desc, enabled):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency; stay usable without it
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=True, dynamic_ncols=True, mininterval=0.2)


def fit(
    model,
    optimizer,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: Any,
    *,
    mode: str = "minibatch",
    epochs: int = 1,
    batch_size: int = 32,
    seed: Optional[int] = None,
    scheduler=None,
    eval_data: Optional[Tuple[Tensor, Tensor]] = None,
    progress: bool = True,
    report_every: int = 1000,
    allocate_loss: bool = False,
    lca_data: Optional[Tuple[Tensor, Tensor]] = None,
    lca_batch: int = 256,
    distributed: bool = False,
) -> History:
    """Trains ``model`` in place.

    ``data`` is a ``TensorDataset`` (inputs, integer labels) for the batch, stochastic and
    minibatch modes, and an iterable of ``(x, y)`` examples for ``online`` (each ``x`` with a
    leading batch dim of 1; see :func:`backprop_rs.data.stream`). ``scheduler.step()`` runs once
    per epoch (per ``report_every`` examples online). Returns a :class:`History`.

    ``allocate_loss=True`` runs loss change allocation (:mod:`backprop_rs.viz.lca`) on a fixed
    batch: ``lca_data``, or the first ``lca_batch`` training examples (``lca_data`` is needed
    online); the allocator is ``History.lca``.

    ``distributed=True`` (inside ``bp.distributed.init_process_group``, with ``model`` wrapped
    in ``DistributedDataParallel``): each rank reads its share of ``data`` through a
    :class:`~backprop_rs.utils.data.distributed.DistributedSampler` (seeded with ``seed``,
    reshuffled each epoch by ``set_epoch``), ``batch_size`` examples per rank per update (the
    rank's whole share in ``batch`` mode, one example in ``stochastic``), and the history's
    loss and accuracy are summed over the ranks, so every rank reports the global figures.
    ``online`` is one stream and cannot be split this way.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode '{mode}'; expected one of {', '.join(MODES)}")
    if distributed and mode == "online":
        raise ValueError("online mode reads one stream of examples, which distributed training cannot split among "
                         "ranks; use batch, stochastic or minibatch")
    hist = History(mode=mode)
    if allocate_loss:
        from .viz.lca import LossChangeAllocator

        if lca_data is None:
            if not isinstance(data, TensorDataset):
                raise ValueError("allocate_loss=True needs lca_data=(x, y) when the data is a stream")
            lca_data = (data.tensors[0][:lca_batch], data.tensors[1][:lca_batch])
        hist.lca = LossChangeAllocator(model, loss_fn, *lca_data).attach(optimizer)
    try:
        _fit(hist, model, optimizer, loss_fn, data, mode, epochs, batch_size, seed, scheduler, eval_data, progress, report_every,
             distributed)
    finally:
        if hist.lca is not None:
            hist.lca.detach()
    return hist


def _fit(hist, model, optimizer, loss_fn, data, mode, epochs, batch_size, seed, scheduler, eval_data, progress, report_every,
         distributed=False) -> None:
    t0 = time.perf_counter()
    model.train()

    def update(xb: Tensor, yb: Tensor) -> Tuple[float, int, int]:
        out = model(xb)
        loss = loss_fn(out, yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        hist.updates += 1
        with no_grad():
            correct = int((out.argmax(1) == yb).sum().item()) if out.ndim == 2 else 0
        return float(loss.item()), correct, int(yb.shape[0])

    if mode == "online":
        # One update per arriving example; running averages instead of epochs.
        loss_sum = correct = seen = 0.0
        chunk = 0
        bar = _bar(data, getattr(data, "__len__", lambda: None)(), "online", progress)
        for item in bar:
            xb, yb = item[0], item[1]
            batch_loss, c, n = update(xb, yb)
            loss_sum, correct, seen, chunk = loss_sum + batch_loss * n, correct + c, seen + n, chunk + n
            if chunk >= report_every:
                _close_chunk(hist, loss_sum / seen, correct / seen, model, eval_data, bar)
                loss_sum = correct = seen = chunk = 0
                if scheduler is not None:
                    scheduler.step()
        if seen:
            _close_chunk(hist, loss_sum / seen, correct / seen, model, eval_data, bar)
        if hasattr(bar, "close"):
            bar.close()
    else:
        if not isinstance(data, TensorDataset):
            raise TypeError(f"mode '{mode}' needs a TensorDataset; got {type(data).__name__}")
        loader = _distributed_loader(mode, data, batch_size, seed) if distributed else loader_for(mode, data, batch_size, seed)
        for epoch in range(1, epochs + 1):
            if distributed:
                loader.sampler.set_epoch(epoch - 1)  # epoch k's order is the one a single process draws
            loss_sum = correct = seen = 0.0
            bar = _bar(loader, len(loader), f"epoch {epoch}/{epochs}", progress)
            for i, (xb, yb) in enumerate(bar):
                batch_loss, c, n = update(xb, yb)
                loss_sum, correct, seen = loss_sum + batch_loss * n, correct + c, seen + n
                if hasattr(bar, "set_postfix") and (i % 50 == 0 or i == len(loader) - 1):
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
            if distributed:
                loss_sum, correct, seen = _sum_over_ranks(loss_sum, correct, seen)
            _close_chunk(hist, loss_sum / max(seen, 1), correct / max(seen, 1), model, eval_data, bar)
            if hasattr(bar, "close"):
                bar.close()
            if scheduler is not None:
                scheduler.step()
    hist.seconds = time.perf_counter() - t0


def _distributed_loader(mode: str, data: TensorDataset, batch_size: int, seed: Optional[int]) -> DataLoader:
    """This rank's loader: its share of ``data`` (shuffled unless ``batch`` mode), in batches of
    ``batch_size`` per rank (the whole share in ``batch`` mode, 1 in ``stochastic``)."""
    from .utils.data.distributed import DistributedSampler

    sampler = DistributedSampler(data, shuffle=mode != "batch", seed=0 if seed is None else int(seed))
    per_rank = {"batch": max(1, len(sampler)), "stochastic": 1}.get(mode, batch_size)
    return DataLoader(data, batch_size=per_rank, sampler=sampler)


def _sum_over_ranks(*values: float) -> Tuple[float, ...]:
    from . import _core
    from . import distributed as dist

    t = _core.tensor([float(v) for v in values], dtype=_core.float64)
    dist.all_reduce(t)
    return tuple(t.tolist())


def _close_chunk(hist: History, loss: float, acc: float, model, eval_data, bar) -> None:
    hist.loss.append(loss)
    hist.train_acc.append(acc)
    post = {"loss": f"{loss:.4f}", "acc": f"{acc:.3f}"}
    if eval_data is not None:
        ta = accuracy(model, *eval_data)
        hist.test_acc.append(ta)
        post["test_acc"] = f"{ta:.3f}"
    if hasattr(bar, "set_postfix"):
        bar.set_postfix(post)
    if not math.isfinite(loss):
        raise FloatingPointError(f"training diverged (loss = {loss}); try a smaller learning rate")
