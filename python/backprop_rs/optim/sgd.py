"""Stochastic gradient descent."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from .. import _core
from .._core import Tensor
from ._pure import switches
from .optimizer import Optimizer, _zeros_like, required


class SGD(Optimizer):
    """PyTorch's SGD: momentum, dampening, Nesterov momentum, weight decay, maximize.

    ``d = g + wd * p; b = momentum * b + (1 - dampening) * d (b = d on the first step);
    p -= lr * (d + momentum * b if nesterov else b)``. ``foreach`` and ``fused`` are accepted and
    change nothing (every step is one fused kernel call already); ``differentiable=True`` is
    refused (the kernel updates under no_grad)."""

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach: Optional[bool] = None, differentiable: bool = False, fused: Optional[bool] = None) -> None:
        if lr is not required and lr < 0.0:
            raise ValueError(f"Invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"Invalid momentum value: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Invalid weight_decay value: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        sw = switches(foreach, maximize, False, differentiable, fused, name="SGD", has_fused=True)
        del sw["capturable"]  # SGD has no capturable keyword in PyTorch
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov, **sw))

    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        bufs, init = [], []
        for p in params:
            st = self.state[p]
            if g["momentum"] != 0:
                new = "momentum_buffer" not in st or st["momentum_buffer"] is None
                if new:
                    st["momentum_buffer"] = _zeros_like(p)
                bufs.append(st["momentum_buffer"])
                init.append(new)
            else:
                bufs.append(None)
                init.append(False)
        _core._sgd_step(params, [p.grad for p in params], bufs, init, lr=g["lr"], momentum=g["momentum"],
                        dampening=g["dampening"], nesterov=g["nesterov"], weight_decay=g["weight_decay"],
                        maximize=g["maximize"])
