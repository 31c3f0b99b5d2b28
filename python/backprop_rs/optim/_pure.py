"""Shared pieces of the optimizers written as plain tensor ops (no fused kernel): argument
checks, PyTorch's implementation-switch keywords, and the gradient each step starts from."""

from __future__ import annotations

from typing import Any, Dict, Optional

from .._core import Tensor


def check(name: str, value: float, low: float = 0.0, high: Optional[float] = None, strict_high: bool = False) -> None:
    """PyTorch's ``Invalid <name>: <value>`` ValueError for a hyper-parameter out of range."""
    bad = value < low or (high is not None and (value >= high if strict_high else value > high))
    if bad:
        raise ValueError(f"Invalid {name}: {value}")


def check_betas(betas) -> None:
    if not 0.0 <= betas[0] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 0: {betas[0]}")
    if not 0.0 <= betas[1] < 1.0:
        raise ValueError(f"Invalid beta parameter at index 1: {betas[1]}")


def switches(foreach: Optional[bool], maximize: bool, capturable: bool, differentiable: bool,
             fused: Optional[bool] = None, name: str = "optimizer", has_fused: bool = False) -> Dict[str, Any]:
    """PyTorch's implementation keywords as group entries. ``foreach`` and ``capturable`` select
    kernels / CUDA-graph safety in PyTorch and change nothing here (one code path, steps kept on
    the host), so they are accepted as no-ops. ``differentiable=True`` (autograd through the
    update) is refused rather than silently ignored; so is ``fused=True`` where PyTorch has no
    fused form either."""
    if differentiable:
        raise NotImplementedError(f"{name}(differentiable=True): backprop_rs optimizers update parameters under "
                                  "no_grad; a differentiable step is not implemented")
    out: Dict[str, Any] = {"foreach": foreach, "maximize": maximize, "capturable": capturable, "differentiable": False}
    if has_fused:
        out["fused"] = fused
    elif fused:
        raise RuntimeError(f"`fused` is not currently supported for {name}")
    return out


def grad_of(p: Tensor, group: Dict[str, Any]) -> Tensor:
    """The gradient the update uses: negated for ``maximize``, plus L2 ``weight_decay * p``
    unless the optimizer decouples it."""
    g = p.grad
    if group.get("maximize"):
        g = -g
    wd = group.get("weight_decay", 0.0)
    if wd != 0 and not group.get("decoupled_weight_decay", False):
        g = g + p * wd
    return g
