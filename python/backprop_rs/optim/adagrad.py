"""Adagrad."""

from __future__ import annotations

from typing import Any, Dict, List

from .. import _core
from .._core import Tensor
from .optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10, *, maximize: bool = False) -> None:
        if lr < 0.0 or lr_decay < 0.0 or weight_decay < 0.0 or initial_accumulator_value < 0.0 or eps < 0.0:
            raise ValueError("invalid Adagrad hyper-parameter (all must be >= 0)")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps, maximize=maximize))
        for g in self.param_groups:
            for p in g["params"]:
                self.state[p]["step"] = 0
                self.state[p]["sum"] = _core.full_like(p, g["initial_accumulator_value"])

    def _step_group(self, g: Dict[str, Any], params: List[Tensor]) -> None:
        sums, steps = [], []
        for p in params:
            st = self.state[p]
            if "sum" not in st:
                # a parameter of a group added after construction (add_param_group): start it as __init__ does
                st["step"] = 0
                st["sum"] = _core.full_like(p, g["initial_accumulator_value"])
            st["step"] = int(st["step"]) + 1
            steps.append(st["step"])
            sums.append(st["sum"])
        _core._adagrad_step(params, [p.grad for p in params], sums, steps, lr=g["lr"], lr_decay=g["lr_decay"],
                            weight_decay=g["weight_decay"], eps=g["eps"], maximize=g["maximize"])
