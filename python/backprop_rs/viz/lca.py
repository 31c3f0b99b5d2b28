"""Loss change allocation (Lan, Liu, Zhou, Yosinski: "LCA: Loss Change Allocation for Neural
Network Training", NeurIPS 2019): each optimizer step's change of the loss on a fixed batch,
split among the parameters.

For the step ``theta_t -> theta_{t+1}`` (``d = theta_{t+1} - theta_t``) parameter ``i`` gets

    LCA_{t,i} = d_i * integral_0^1 dL/dtheta_i(theta_t + s d) ds
              ~ d_i * (g(theta_t) + 4 g(theta_t + d/2) + g(theta_{t+1}))_i / 6

(the paper's fourth-order Runge-Kutta rule, which for this integral is Simpson's rule), so the
allocations of a step add up to ``L(theta_{t+1}) - L(theta_t)`` up to the quadrature error.
Negative LCA helped (lowered the loss); positive LCA fought the learning. Each step costs two
extra gradient evaluations on the fixed batch (the midpoint and the new point; the new point's
gradient is reused as the next step's start).

Algorithm (for the Rust port):

    on the first step: L_0, g_0 = loss and gradient at theta_0 on the fixed batch
    before step t: keep theta_t
    after step t:  d = theta_{t+1} - theta_t
                   g_m = gradient at theta_t + d / 2;  L_{t+1}, g_{t+1} at theta_{t+1}
                   LCA_t = d * (g_t + 4 g_m + g_{t+1}) / 6       (per element, float64)
                   residual_t = sum(LCA_t) - (L_{t+1} - L_t)
    run residual = sum_t residual_t, relative to |L_T - L_0|

The model runs in eval mode for these evaluations (a deterministic loss), its parameters come
back bit for bit, ``.grad`` and the optimizer's state are untouched.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .. import autograd
from .._core import Tensor
from ._summary import to_numpy

__all__ = ["LossChangeAllocator"]


def _layer_of(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


class LossChangeAllocator:
    """Allocates the loss change of every optimizer step on ``(x, y)`` among the parameters.

    Attach to an optimizer (``allocator.attach(optimizer)``: its step pre/post hooks do the
    work) or call :meth:`before_step` / :meth:`after_step` around ``optimizer.step()``.

    Results: ``loss`` (the fixed-batch loss before the first step and after each step),
    ``per_tensor[name]`` (the LCA of each step, summed over the tensor), ``cumulative[name]``
    (per element, summed over the steps), ``residuals`` (per step), and the aggregates below.
    """

    def __init__(self, model: Any, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Any) -> None:
        self.model, self.loss_fn, self.x, self.y = model, loss_fn, x, y
        self.params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.loss: List[float] = []
        self.per_tensor: Dict[str, List[float]] = {n: [] for n, _ in self.params}
        self.cumulative: Dict[str, np.ndarray] = {n: np.zeros(tuple(p.shape)) for n, p in self.params}
        self.residuals: List[float] = []
        self.seconds = 0.0
        self._g: Optional[List[np.ndarray]] = None
        self._before: Optional[List[Tensor]] = None
        self._handles: List[Any] = []

    # ------------------------------------------------------------------ hooks

    def attach(self, optimizer: Any) -> "LossChangeAllocator":
        """Hooks ``optimizer.step`` (pre and post); returns ``self``."""
        self._handles.append(optimizer.register_step_pre_hook(lambda opt, a, k: self.before_step()))
        self._handles.append(optimizer.register_step_post_hook(lambda opt, a, k: self.after_step()))
        return self

    def detach(self) -> None:
        """Removes the optimizer hooks."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _eval(self) -> tuple:
        """Loss and gradient on the fixed batch at the current parameters (eval mode)."""
        was = self.model.training
        self.model.eval()
        try:
            loss = self.loss_fn(self.model(self.x), self.y)
            grads = autograd.grad(loss, [p for _, p in self.params], allow_unused=True)
        finally:
            self.model.train(was)
        return float(loss.item()), [np.zeros(tuple(p.shape)) if g is None else to_numpy(g) for (_, p), g in zip(self.params, grads)]

    def before_step(self) -> None:
        """Before ``optimizer.step()``: keeps ``theta_t`` (and evaluates ``g_t`` the first time)."""
        import time

        t0 = time.perf_counter()
        if self._g is None:
            l0, self._g = self._eval()
            self.loss.append(l0)
        self._before = [p.detach().clone() for _, p in self.params]
        self.seconds += time.perf_counter() - t0

    def after_step(self) -> None:
        """After ``optimizer.step()``: allocates the step's loss change."""
        import time

        if self._before is None or self._g is None:
            raise RuntimeError("after_step() without before_step()")
        t0 = time.perf_counter()
        after = [p.detach().clone() for _, p in self.params]
        d = [to_numpy(a) - to_numpy(b) for a, b in zip(after, self._before)]
        try:
            with autograd.no_grad():
                for (_, p), b, a in zip(self.params, self._before, after):
                    # the midpoint, computed in the parameter's dtype as the optimizer would
                    p.copy_(b + (a - b) * 0.5)
            _, gm = self._eval()
        finally:
            with autograd.no_grad():
                for (_, p), a in zip(self.params, after):
                    p.copy_(a)
        l1, g1 = self._eval()
        total = 0.0
        for (name, _), di, g0, gmi, g1i in zip(self.params, d, self._g, gm, g1):
            lca = di * (g0 + 4.0 * gmi + g1i) / 6.0
            self.cumulative[name] += lca
            s = float(lca.sum())
            self.per_tensor[name].append(s)
            total += s
        self.residuals.append(total - (l1 - self.loss[-1]))
        self.loss.append(l1)
        self._g = g1
        self._before = None
        self.seconds += time.perf_counter() - t0

    # ------------------------------------------------------------------ results

    @property
    def steps(self) -> int:
        """Steps allocated so far."""
        return len(self.residuals)

    @property
    def loss_change(self) -> float:
        """``L_T - L_0`` on the fixed batch."""
        return self.loss[-1] - self.loss[0] if self.loss else 0.0

    @property
    def total(self) -> float:
        """The sum of all allocations."""
        return float(sum(sum(v) for v in self.per_tensor.values()))

    @property
    def residual(self) -> float:
        """``total - loss_change``."""
        return self.total - self.loss_change

    @property
    def relative_residual(self) -> float:
        """``|residual| / |loss_change|`` for the run."""
        return abs(self.residual) / max(abs(self.loss_change), 1e-300)

    @property
    def step_relative_residual(self) -> float:
        """``sum_t |residual_t| / sum_t |L_{t+1} - L_t|``: the per-step errors, not cancelling."""
        dl = np.abs(np.diff(self.loss)).sum() if len(self.loss) > 1 else 0.0
        return float(np.abs(self.residuals).sum() / max(dl, 1e-300))

    def per_layer(self) -> Dict[str, np.ndarray]:
        """``{module path: LCA per step}`` (numpy arrays of length :attr:`steps`)."""
        out: Dict[str, np.ndarray] = {}
        for name, v in self.per_tensor.items():
            layer = _layer_of(name)
            out[layer] = out.get(layer, np.zeros(self.steps)) + np.asarray(v)
        return out

    def layer_totals(self) -> Dict[str, float]:
        """``{module path: LCA over the run}``: negative layers did the learning."""
        return {k: float(v.sum()) for k, v in self.per_layer().items()}

    def shares(self) -> Dict[str, float]:
        """Each layer's share of the loss change (they add up to 1 when the residual is 0):
        positive shares helped, negative ones fought the learning."""
        dl = self.loss_change
        return {k: (v / dl if dl else math.nan) for k, v in self.layer_totals().items()}

    def summary(self, max_points: int = 200) -> Dict[str, Any]:
        """A JSON-ready digest for checkpoints and reports: the loss, the cumulative LCA per
        layer (subsampled to ``max_points`` steps), totals, shares and residuals."""
        idx = np.unique(np.linspace(0, max(self.steps - 1, 0), min(max_points, max(self.steps, 1))).round().astype(int))
        cum = {k: np.cumsum(v) for k, v in self.per_layer().items()}
        return {
            "steps": self.steps,
            "step": [int(i) + 1 for i in idx] if self.steps else [],
            "loss": [float(self.loss[0])] + [float(self.loss[i + 1]) for i in idx] if self.steps else list(self.loss),
            "cumulative": {k: [float(v[i]) for i in idx] for k, v in cum.items()} if self.steps else {},
            "totals": self.layer_totals(),
            "shares": self.shares() if self.steps else {},
            "loss_change": self.loss_change,
            "residual": self.residual,
            "relative_residual": self.relative_residual,
            "step_relative_residual": self.step_relative_residual if self.steps else 0.0,
            "seconds": self.seconds,
        }

    def plot(self, path: str) -> str:
        """Cumulative LCA per layer over the steps (matplotlib); returns ``path``."""
        from .monitor import _pyplot

        plt = _pyplot()
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
        for layer, v in self.per_layer().items():
            a.plot(np.arange(1, self.steps + 1), np.cumsum(v), label=layer or "(model)", linewidth=1)
        a.axhline(0, color="#888", linewidth=0.5)
        a.set_title("cumulative LCA per layer (negative = helped)")
        a.set_xlabel("step")
        a.legend(fontsize=7)
        b.plot(np.arange(len(self.loss)), self.loss)
        b.set_title("loss on the fixed batch")
        b.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path
