"""The learning, measured while it happens: :class:`Monitor` hooks a model (and optionally its
optimizer) and records, per layer and per step, the quantities that tell whether a network
learns: weight norm, gradient norm, update-to-weight ratio, activation mean/std, the fraction
of dead ReLU units and of saturated tanh/sigmoid units. It warns once per kind of trouble.

    mon = bp.viz.Monitor(model, optimizer)      # attached now; steps itself on optimizer.step()
    ...train...
    mon.detach()                                # hooks removed: zero cost from here on
    mon.to_jsonl("monitor.jsonl"); mon.plot("plots/")
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._core import Tensor, is_grad_enabled, stack, tensor

__all__ = ["Monitor", "TrainingWarning", "QUANTITIES"]

QUANTITIES = ("weight_norm", "grad_norm", "update_ratio", "act_mean", "act_std", "dead_frac", "saturated_frac")
FIELDS = ("step", "layer", "type") + QUANTITIES

# activation modules by class name, and which of the activation quantities each gets
_RELU = {"ReLU", "ReLU6", "RReLU"}
_TANH = {"Tanh", "Hardtanh", "Softsign"}
_SIGMOID = {"Sigmoid", "Hardsigmoid", "LogSigmoid"}
ACTIVATIONS = _RELU | _TANH | _SIGMOID | {"LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU", "Mish", "Softplus", "PReLU"}


class TrainingWarning(UserWarning):
    """A :class:`Monitor` diagnosis: vanishing or exploding gradients, dead or saturated layers."""


def _sumsq(t: Tensor) -> Tensor:
    t = t.detach()
    return (t * t).sum()


class Monitor:
    """Records per-layer training statistics through hooks.

    Layers are the model's leaf modules that own parameters (``Linear``, ``Conv2d``...) or are
    activations (``ReLU``, ``Tanh``, ``Sigmoid``...). Per step and layer (``None`` where a
    quantity does not apply):

    * ``weight_norm``: ``||theta||`` over all the layer's parameters, after the step;
    * ``grad_norm``: ``||grad||`` over them (the ``.grad`` the step used);
    * ``update_ratio``: ``||theta_after - theta_before|| / ||theta_before||``;
    * ``act_mean``, ``act_std``: mean and (unbiased) standard deviation of the layer's output
      in the step's training-mode forward passes (averaged when there are several);
    * ``dead_frac`` (ReLU family): the fraction of output units that are zero for every example
      of the batch (units are all non-batch positions: features, or channel x pixel);
    * ``saturated_frac`` (tanh / sigmoid family): the fraction of outputs within
      ``1 - saturation`` of the asymptotes (``|y| > 0.97`` for tanh, ``y < 0.03`` or
      ``y > 0.97`` for sigmoid, with the default ``saturation=0.97``).

    Steps: with ``optimizer`` given, its step hooks close each step; otherwise call
    :meth:`step` after each ``optimizer.step()`` (before ``zero_grad``). Forward passes in
    eval mode or under ``no_grad`` are not recorded (evaluation does not pollute the record).

    Warnings (``TrainingWarning``, each kind once): *exploding* gradients when a layer's
    gradient is non-finite or ``||grad||/||theta|| > exploding``; *vanishing* when it is below
    ``vanishing``; *dead* layers when a ReLU layer's ``dead_frac`` or a tanh/sigmoid layer's
    ``saturated_frac`` is at least ``dead``; the last two must hold ``patience`` steps running.
    """

    def __init__(self, model: Any, optimizer: Any = None, *, every: int = 1, saturation: float = 0.97,
                 warn: bool = True, vanishing: float = 1e-6, exploding: float = 1e2, dead: float = 0.95,
                 patience: int = 3, layers: Optional[Sequence[str]] = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.every = max(1, int(every))
        self.saturation = float(saturation)
        self.warn = warn
        self.vanishing, self.exploding, self.dead, self.patience = vanishing, exploding, dead, patience
        self.records: List[Dict[str, Any]] = []
        self.warned: Dict[str, str] = {}
        self.steps = 0
        self._handles: List[Any] = []
        self._layers: List[Tuple[str, Any, List[Tensor], Optional[str]]] = []
        for name, m in model.named_modules():
            if any(True for _ in m.children()):
                continue
            if layers is not None and name not in layers:
                continue
            params = [p for p in m.parameters(recurse=False) if p.requires_grad]
            kind = type(m).__name__
            act = "relu" if kind in _RELU else "tanh" if kind in _TANH else "sigmoid" if kind in _SIGMOID else None
            if params or kind in ACTIVATIONS:
                self._layers.append((name, m, params, act))
        self._acts: Dict[str, List[List[Tensor]]] = {}
        self._prev: Dict[str, List[Tensor]] = {}
        self._grad: Dict[str, Optional[Tensor]] = {}
        self._streak: Dict[Tuple[str, str], int] = {}
        self.attach()

    # ------------------------------------------------------------------ hooks

    @property
    def layer_names(self) -> List[str]:
        """The monitored layers, in model order."""
        return [n for n, *_ in self._layers]

    @property
    def attached(self) -> bool:
        """True while the hooks are registered."""
        return bool(self._handles)

    def attach(self) -> "Monitor":
        """Registers the hooks (done by the constructor); a no-op when attached."""
        if self._handles:
            return self
        for name, m, _, act in self._layers:
            self._handles.append(m.register_forward_hook(self._forward_hook(name, act)))
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(lambda opt, a, k: self._before()))
            self._handles.append(self.optimizer.register_step_post_hook(lambda opt, a, k: self._after()))
        self._snapshot()
        return self

    def detach(self) -> None:
        """Removes every hook: the model and optimizer run as if never monitored."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._prev.clear()
        self._acts.clear()

    close = detach

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def _recording(self) -> bool:
        return self.steps % self.every == 0

    def _forward_hook(self, name: str, act: Optional[str]):
        def hook(module: Any, args: Any, output: Any) -> None:
            if not (module.training and is_grad_enabled() and isinstance(output, Tensor) and self._recording()):
                return None
            o = output.detach()
            if o.numel() == 0:
                return None
            # the engine's mean/std (one pass each, pairwise sums) rather than sum/sum of squares,
            # which cancels catastrophically in float32 when |mean| >> std
            s = [o.mean(), o.std() if o.numel() > 1 else tensor(math.nan)]
            if act == "relu":
                alive = (o > 0).float()
                if o.ndim > 1:
                    alive = alive.sum(0)
                s.append(((alive == 0).float()).mean())
            elif act == "tanh":
                s.append((o.abs() > self.saturation).float().mean())
            elif act == "sigmoid":
                s.append(((o - 0.5).abs() > self.saturation - 0.5).float().mean())
            self._acts.setdefault(name, []).append(s)
            return None

        return hook

    def _snapshot(self) -> None:
        if self._recording():
            self._prev = {name: [p.detach().clone() for p in params] for name, _, params, _ in self._layers if params}

    def _before(self) -> None:
        """Before the optimizer updates: the gradients it is about to use."""
        if not self._recording():
            return
        self._grad = {}
        for name, _, params, _ in self._layers:
            gs = [_sumsq(p.grad) for p in params if p.grad is not None]
            self._grad[name] = stack(gs).sum() if gs else None
        if not self._prev:
            self._snapshot()

    def _after(self) -> None:
        """After the update: the new weights, the update, and the step's record."""
        self._finish()

    def step(self) -> None:
        """Closes the current step (call after ``optimizer.step()``, when no optimizer was given)."""
        if self.optimizer is not None and self.attached:
            raise RuntimeError("this Monitor steps itself through the optimizer's step hooks; do not call step()")
        if self._recording():
            self._grad = {}
            for name, _, params, _ in self._layers:
                gs = [_sumsq(p.grad) for p in params if p.grad is not None]
                self._grad[name] = stack(gs).sum() if gs else None
        self._finish()

    # ------------------------------------------------------------------ one step

    def _finish(self) -> None:
        if not self._recording():
            self.steps += 1
            self._snapshot()
            return
        # gather every statistic of the step as 0-d tensors, then read them back at once
        flat: List[Tensor] = []
        slots: Dict[Tuple[str, str], Tuple[int, int]] = {}

        def put(key: Tuple[str, str], ts: List[Tensor]) -> None:
            slots[key] = (len(flat), len(ts))
            flat.extend(t.reshape(()).to("cpu").double() if str(t.device) != "cpu" else t.reshape(()).double() for t in ts)

        for name, _, params, act in self._layers:
            if params:
                put((name, "w"), [_sumsq(p) for p in params])
                prev = self._prev.get(name)
                if prev is not None:
                    put((name, "u"), [_sumsq(p.detach() - q) for p, q in zip(params, prev)])
                    put((name, "w0"), [_sumsq(q) for q in prev])
                g = self._grad.get(name)
                if g is not None:
                    put((name, "g"), [g])
            for i, s in enumerate(self._acts.get(name, [])):
                put((name, f"a{i}"), s)
        vals = stack(flat).numpy().astype(np.float64) if flat else np.zeros(0)

        def get(key: Tuple[str, str]) -> Optional[np.ndarray]:
            if key not in slots:
                return None
            i, k = slots[key]
            return vals[i : i + k]

        step = self.steps
        rows = []
        for name, m, params, act in self._layers:
            row: Dict[str, Any] = {"step": step, "layer": name, "type": type(m).__name__}
            for q in QUANTITIES:
                row[q] = None
            if params:
                w = get((name, "w"))
                row["weight_norm"] = math.sqrt(float(w.sum()))
                g = get((name, "g"))
                row["grad_norm"] = math.sqrt(float(g[0])) if g is not None else None
                u, w0 = get((name, "u")), get((name, "w0"))
                if u is not None:
                    den = math.sqrt(float(w0.sum()))
                    row["update_ratio"] = math.sqrt(float(u.sum())) / den if den > 0 else (0.0 if float(u.sum()) == 0 else math.inf)
            acts = [get((name, f"a{i}")) for i in range(len(self._acts.get(name, [])))]
            if acts:
                means, stds, extra = [], [], []
                for a in acts:
                    means.append(float(a[0]))
                    stds.append(float(a[1]))
                    if len(a) > 2:
                        extra.append(float(a[2]))
                row["act_mean"] = float(np.mean(means))
                row["act_std"] = float(np.mean(stds))
                if extra:
                    row["dead_frac" if act == "relu" else "saturated_frac"] = float(np.mean(extra))
            rows.append(row)
        self.records.extend(rows)
        self._acts = {}
        self._grad = {}
        self.steps += 1
        self._snapshot()
        if self.warn:
            self._diagnose(rows)

    # ------------------------------------------------------------------ diagnosis

    def _streaky(self, key: Tuple[str, str], cond: bool) -> bool:
        self._streak[key] = self._streak.get(key, 0) + 1 if cond else 0
        return self._streak[key] >= self.patience

    def _warn(self, kind: str, msg: str) -> None:
        if kind in self.warned:
            return
        self.warned[kind] = msg
        warnings.warn(msg, TrainingWarning, stacklevel=4)

    def _diagnose(self, rows: List[Dict[str, Any]]) -> None:
        exploding, vanishing, dead = [], [], []
        for r in rows:
            g, w = r["grad_norm"], r["weight_norm"]
            if g is not None and w is not None:
                ratio = g / w if w > 0 else (0.0 if g == 0 else math.inf)
                if not math.isfinite(g) or ratio > self.exploding:
                    exploding.append(f"'{r['layer']}' ({r['type']}) |grad|/|w| = {ratio:.3g}")
                if self._streaky((r["layer"], "vanishing"), math.isfinite(ratio) and ratio < self.vanishing):
                    vanishing.append(f"'{r['layer']}' ({r['type']}) |grad|/|w| = {ratio:.3g}")
            for q, what in (("dead_frac", "dead ReLU units"), ("saturated_frac", "saturated units")):
                v = r[q]
                if v is not None and self._streaky((r["layer"], q), v >= self.dead):
                    dead.append(f"'{r['layer']}' ({r['type']}) {100 * v:.0f}% {what}")
        step = rows[0]["step"] if rows else self.steps
        if exploding:
            self._warn("exploding", f"bp.viz.Monitor: exploding gradients at step {step}: {'; '.join(exploding)} "
                                    f"(threshold {self.exploding:g}). Lower the learning rate, clip gradients "
                                    "(nn.utils.clip_grad_norm_) or check the initialisation. (warned once)")
        if vanishing:
            self._warn("vanishing", f"bp.viz.Monitor: vanishing gradients since step {step - self.patience + 1}: "
                                    f"{'; '.join(vanishing)} (threshold {self.vanishing:g}); these layers barely learn. "
                                    "Check the initialisation, prefer ReLU to sigmoid/tanh in deep nets, or add "
                                    "normalisation / residual connections. (warned once)")
        if dead:
            self._warn("dead", f"bp.viz.Monitor: dead layers since step {step - self.patience + 1}: {'; '.join(dead)} "
                               f"(threshold {100 * self.dead:.0f}%); no gradient flows through them. Lower the learning "
                               "rate, check biases/initialisation, or try LeakyReLU. (warned once)")

    # ------------------------------------------------------------------ results

    def history(self, quantity: str) -> Dict[str, Tuple[List[int], List[float]]]:
        """``{layer: (steps, values)}`` for one of :data:`QUANTITIES` (layers without it omitted)."""
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {quantity!r}; expected one of {', '.join(QUANTITIES)}")
        out: Dict[str, Tuple[List[int], List[float]]] = {}
        for r in self.records:
            v = r[quantity]
            if v is None:
                continue
            xs, ys = out.setdefault(r["layer"], ([], []))
            xs.append(r["step"])
            ys.append(v)
        return out

    def to_jsonl(self, path: str) -> str:
        """One JSON object per line and layer and step (``step, layer, type`` and the quantities;
        ``null`` where one does not apply or is not finite); returns ``path``."""
        with open(path, "w", encoding="utf-8") as f:
            for r in self.records:
                f.write(json.dumps({k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()}) + "\n")
        return path

    def to_csv(self, path: str) -> str:
        """The records as CSV with a header row (:data:`FIELDS`; empty cells where ``None``)."""
        with open(path, "w", encoding="utf-8", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(FIELDS))
            w.writeheader()
            for r in self.records:
                w.writerow({k: ("" if r[k] is None else r[k]) for k in FIELDS})
        return path

    def plot(self, directory: str, quantities: Sequence[str] = QUANTITIES) -> List[str]:
        """One PNG per quantity in ``directory`` (one line per layer over the steps); returns
        the paths written. Needs matplotlib: raises ``ImportError`` saying so when it is absent."""
        plt = _pyplot()
        os.makedirs(directory, exist_ok=True)
        paths = []
        for q in quantities:
            h = self.history(q)
            if not h:
                continue
            fig, ax = plt.subplots(figsize=(6, 3.4))
            for layer, (xs, ys) in h.items():
                ax.plot(xs, ys, label=layer or "(model)", linewidth=1)
            if q in ("weight_norm", "grad_norm", "update_ratio") and all(y > 0 for _, ys in h.values() for y in ys):
                ax.set_yscale("log")
            ax.set_xlabel("step")
            ax.set_title(q.replace("_", " "))
            ax.legend(fontsize=7, title="layer", title_fontsize=7)
            fig.tight_layout()
            p = os.path.join(directory, f"{q}.png")
            fig.savefig(p, dpi=100)
            plt.close(fig)
            paths.append(p)
        return paths

    def summary(self, max_points: int = 200) -> Dict[str, Dict[str, List[Optional[float]]]]:
        """A compact copy for checkpoints and reports: ``{quantity: {layer: values}}``,
        subsampled to at most ``max_points`` evenly spaced steps, plus ``"step"``."""
        out: Dict[str, Any] = {}
        for q in QUANTITIES:
            h = self.history(q)
            if not h:
                continue
            out[q] = {}
            for layer, (xs, ys) in h.items():
                idx = np.unique(np.linspace(0, len(xs) - 1, min(max_points, len(xs))).round().astype(int))
                out[q][layer] = [ys[i] if math.isfinite(ys[i]) else None for i in idx]
                out.setdefault("step", {})[layer] = [xs[i] for i in idx]
        return out


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # optional dependency
        raise ImportError("plots need matplotlib, which is not installed (pip install matplotlib)") from e
    return plt
