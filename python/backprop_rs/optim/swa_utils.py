"""``torch.optim.swa_utils``: stochastic weight averaging and EMA of a model's weights
(``AveragedModel``, ``get_ema_multi_avg_fn``...), the ``SWALR`` schedule and ``update_bn``, with
PyTorch's algorithms."""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any, Callable, Iterable, List, Optional

from .. import _core
from .._core import Tensor
from ..autograd import no_grad
from ..nn.module import Module
from .lr_scheduler import LRScheduler
from .optimizer import Optimizer

__all__ = ["AveragedModel", "update_bn", "SWALR", "get_ema_multi_avg_fn", "get_swa_multi_avg_fn",
           "get_ema_avg_fn", "get_swa_avg_fn"]


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable[..., None]:
    """An in-place EMA over lists of tensors: ``ema = decay * ema + (1 - decay) * current``."""

    @no_grad()
    def ema_update(ema_params: List[Tensor], current_params: List[Tensor], num_averaged: Any) -> None:
        for e, c in zip(ema_params, current_params):
            if e.is_floating_point():
                e.lerp_(c, 1 - decay)
            else:
                e.copy_(c)

    return ema_update


def get_swa_multi_avg_fn() -> Callable[..., None]:
    """An in-place running mean over lists of tensors."""

    @no_grad()
    def swa_update(averaged: List[Tensor], current: List[Tensor], num_averaged: Any) -> None:
        n = float(num_averaged.item() if isinstance(num_averaged, Tensor) else num_averaged)
        for a, c in zip(averaged, current):
            a.add_((c - a) / (n + 1))

    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable[..., Tensor]:
    """``(ema, current, n) -> decay * ema + (1 - decay) * current``."""

    @no_grad()
    def ema_update(ema_param: Tensor, current_param: Tensor, num_averaged: Any) -> Tensor:
        return decay * ema_param + (1 - decay) * current_param

    return ema_update


def get_swa_avg_fn() -> Callable[..., Tensor]:
    """``(avg, current, n) -> avg + (current - avg) / (n + 1)``."""

    @no_grad()
    def swa_update(averaged: Tensor, current: Tensor, num_averaged: Any) -> Tensor:
        return averaged + (current - averaged) / (num_averaged + 1)

    return swa_update


class AveragedModel(Module):
    """A deep copy of ``model`` whose parameters (and, with ``use_buffers``, buffers) are the
    running average (or ``avg_fn`` / ``multi_avg_fn``, e.g. an EMA) of ``model``'s, updated by
    :meth:`update_parameters`. ``n_averaged`` counts the updates."""

    def __init__(self, model: Module, device: Any = None, avg_fn: Optional[Callable[..., Tensor]] = None,
                 multi_avg_fn: Optional[Callable[..., None]] = None, use_buffers: bool = False) -> None:
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", _core.tensor(0, dtype=_core.int64, device=device))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    @no_grad()
    def update_parameters(self, model: Module) -> None:
        ours = list(itertools.chain(self.module.parameters(), self.module.buffers()) if self.use_buffers
                    else self.parameters())
        theirs = list(itertools.chain(model.parameters(), model.buffers()) if self.use_buffers
                      else model.parameters())
        first = int(self.n_averaged.item()) == 0
        pairs = [(a, b.detach().to(a.device)) for a, b in zip(ours, theirs)]
        if first:
            for a, b in pairs:
                a.detach().copy_(b)
        elif self.multi_avg_fn is not None:
            self.multi_avg_fn([a.detach() for a, _ in pairs], [b for _, b in pairs], self.n_averaged)
        else:
            fn = self.avg_fn or get_swa_avg_fn()
            n = self.n_averaged.to(pairs[0][0].dtype) if pairs and pairs[0][0].is_floating_point() else self.n_averaged
            for a, b in pairs:
                a.detach().copy_(fn(a.detach(), b, n))
        if not self.use_buffers:
            # the averaged model keeps the source's buffers (e.g. BatchNorm statistics) in step
            for a, b in zip(self.module.buffers(), model.buffers()):
                a.detach().copy_(b.detach().to(a.device))
        self.n_averaged.add_(1)


@no_grad()
def update_bn(loader: Iterable[Any], model: Module, device: Any = None) -> None:
    """Recomputes every BatchNorm's running statistics with one pass over ``loader`` (a
    cumulative average: momentum ``None`` for the pass)."""
    from ..nn.normalization import _NormBase

    momenta = {}
    for m in model.modules():
        if isinstance(m, _NormBase) and m.track_running_stats and type(m).__name__.startswith("BatchNorm"):
            m.reset_running_stats()
            momenta[m] = m.momentum
    if not momenta:
        return
    was_training = model.training
    model.train()
    for m in momenta:
        m.momentum = None
    for batch in loader:
        if isinstance(batch, (list, tuple)):
            batch = batch[0]
        if device is not None:
            batch = batch.to(device)
        model(batch)
    for m, momentum in momenta.items():
        m.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """Anneals each group's rate to ``swa_lr`` over ``anneal_epochs`` (``"cos"`` or ``"linear"``),
    then holds it (PyTorch's formula)."""

    def __init__(self, optimizer: Optimizer, swa_lr: Any, anneal_epochs: int = 10, anneal_strategy: str = "cos",
                 last_epoch: int = -1) -> None:
        lrs = list(swa_lr) if isinstance(swa_lr, (list, tuple)) else [swa_lr] * len(optimizer.param_groups)
        if len(lrs) != len(optimizer.param_groups):
            raise ValueError(f"swa_lr must have the same length as optimizer.param_groups: swa_lr has {len(lrs)}, "
                             f"optimizer.param_groups has {len(optimizer.param_groups)}")
        for lr, group in zip(lrs, optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must by one of 'cos' or 'linear', instead got {anneal_strategy}")
        self.anneal_func = self._cosine_anneal if anneal_strategy == "cos" else self._linear_anneal
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_epochs = anneal_epochs
        super().__init__(optimizer, last_epoch)

    @staticmethod
    def _linear_anneal(t: float) -> float:
        return t

    @staticmethod
    def _cosine_anneal(t: float) -> float:
        return (1 - math.cos(math.pi * t)) / 2

    @staticmethod
    def _get_initial_lr(lr: float, swa_lr: float, alpha: float) -> float:
        if alpha == 1:
            return swa_lr
        return (lr - alpha * swa_lr) / (1 - alpha)

    def get_lr(self) -> List[float]:
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_t = max(0, min(1, (step - 1) / max(1, self.anneal_epochs)))
        prev_alpha = self.anneal_func(prev_t)
        prev_lrs = [self._get_initial_lr(g["lr"], g["swa_lr"], prev_alpha) for g in self.optimizer.param_groups]
        t = max(0, min(1, step / max(1, self.anneal_epochs)))
        alpha = self.anneal_func(t)
        return [g["swa_lr"] * alpha + lr * (1 - alpha) for g, lr in zip(self.optimizer.param_groups, prev_lrs)]
