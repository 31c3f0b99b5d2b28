"""The viz parts of the command line: ``train --monitor DIR / --allocate-loss`` and the
``explain`` subcommand. Kept here so ``__main__`` only calls in."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any, Callable, Dict, Optional


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The ``train`` flags of the viz tools."""
    p.add_argument("--monitor", default=None, metavar="DIR",
                   help="record per-layer weight/grad norms, update ratios and activation statistics every step into DIR "
                        "(monitor.jsonl or .csv, plus PNG plots when matplotlib is installed)")
    p.add_argument("--monitor-format", choices=["jsonl", "csv"], default="jsonl", help="format of the --monitor records (default jsonl)")
    p.add_argument("--allocate-loss", action="store_true",
                   help="loss change allocation (Lan et al. 2019): split each step's loss change on a fixed batch of 256 "
                        "training examples among the layers (costs two extra gradient evaluations per step)")


class TrainingViz:
    """What ``train`` needs from the viz tools around ``fit``."""

    def __init__(self, args: argparse.Namespace, model: Any, optimizer: Any, x_train: Any, y_train: Any) -> None:
        self.args = args
        self.monitor = None
        self.initial = None
        self.lca_data = (x_train[:256], y_train[:256]) if args.allocate_loss else None
        if args.monitor or args.allocate_loss:
            self.initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if args.monitor:
            from .monitor import Monitor

            os.makedirs(args.monitor, exist_ok=True)
            self.monitor = Monitor(model, optimizer)

    def fit_kwargs(self) -> Dict[str, Any]:
        """Extra keyword arguments for :func:`backprop_rs.train.fit`."""
        return {"allocate_loss": True, "lca_data": self.lca_data} if self.args.allocate_loss else {}

    def finish(self, hist: Any, say: Callable[..., Any]) -> Dict[str, Any]:
        """Writes the records and plots; returns entries to add to the checkpoint."""
        args = self.args
        extra: Dict[str, Any] = {}
        if self.monitor is None and hist.lca is None:
            return extra
        history: Dict[str, Any] = {"loss": [_f(v) for v in hist.loss], "train_acc": list(hist.train_acc), "test_acc": list(hist.test_acc)}
        if self.monitor is not None:
            mon = self.monitor
            mon.detach()
            path = os.path.join(args.monitor, f"monitor.{args.monitor_format}")
            (mon.to_csv if args.monitor_format == "csv" else mon.to_jsonl)(path)
            say(f"monitor: {len(mon.records)} records ({mon.steps} steps x {len(mon.layer_names)} layers) in {os.path.abspath(path)}")
            for kind in mon.warned:
                say(f"monitor warned: {kind}")
            try:
                plots = mon.plot(args.monitor)
                say(f"monitor: plots {', '.join(os.path.basename(p) for p in plots)} in {os.path.abspath(args.monitor)}")
            except ImportError as e:
                print(f"monitor: {e}; records written, plots skipped", file=sys.stderr)
            history["monitor"] = mon.summary()
        if hist.lca is not None:
            lca = hist.lca
            s = lca.summary()
            history["lca"] = s
            say(f"loss change allocation over {lca.steps} steps: loss on the fixed batch {lca.loss[0]:.4f} -> {lca.loss[-1]:.4f} "
                f"(change {lca.loss_change:.4f}); allocations sum to {lca.total:.4f}, residual {100 * lca.relative_residual:.3g}% "
                f"(per step {100 * lca.step_relative_residual:.3g}%), {lca.seconds:.2f} s spent allocating")
            for layer, share in lca.shares().items():
                say(f"  layer {layer or '(model)':<16} LCA {lca.layer_totals()[layer]: .4f}  share of the learning {100 * share:6.1f}%"
                    + ("  (fought it)" if share < 0 else ""))
            if args.monitor:
                with open(os.path.join(args.monitor, "lca.jsonl"), "w", encoding="utf-8") as f:
                    per = lca.per_layer()
                    for t in range(lca.steps):
                        f.write(json.dumps({"step": t, "loss_before": lca.loss[t], "loss_after": lca.loss[t + 1],
                                            "residual": lca.residuals[t], **{f"lca.{k or 'model'}": float(v[t]) for k, v in per.items()}}) + "\n")
                try:
                    lca.plot(os.path.join(args.monitor, "lca.png"))
                except ImportError:
                    pass
        extra["history"] = history
        if self.initial is not None:
            extra["initial"] = self.initial
        return extra


def _f(v: float) -> Optional[float]:
    return v if math.isfinite(v) else None


def add_explain_parser(sub: Any) -> None:
    """Registers ``backprop-rs explain``."""
    ex = sub.add_parser("explain", help="write a self-contained HTML page showing backpropagation on one test digit",
                        description="Explains one prediction of a digits checkpoint (from `backprop-rs train`) in one HTML file: "
                                    "the input, the forward and backward passes layer by layer, the chain rule for one weight, "
                                    "each layer's share of the loss and the input heat map. --tiny explains a 2-2-1 XOR network "
                                    "with every number printed.")
    ex.add_argument("checkpoint", nargs="?", default=None, help="a checkpoint written by `backprop-rs train` (not needed with --tiny)")
    ex.add_argument("--index", type=int, default=0, help="which test example (0..359, default 0)")
    ex.add_argument("--out", default=None, help="the HTML file (default CHECKPOINT-explain-N.html, or xor-explain.html with --tiny)")
    ex.add_argument("--baseline", choices=["zeros", "initial"], default="zeros",
                    help="integrated-gradients baseline: all-zero weights (default) or the initial weights (checkpoints trained "
                         "with --monitor/--allocate-loss keep them)")
    ex.add_argument("--steps", type=int, default=64, help="Gauss-Legendre points for the integrated gradients (default 64)")
    ex.add_argument("--tiny", action="store_true", help="explain a 2-2-1 network on XOR instead, every number printed")
    ex.add_argument("--seed", type=int, default=0, help="seed of the --tiny network (default 0)")
    ex.set_defaults(func=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    """``backprop-rs explain``."""
    if args.tiny:
        from .tiny import explain_tiny

        out, info = explain_tiny(args.out or "xor-explain.html", seed=args.seed)
        print(f"report written to {os.path.abspath(out)}")
        return 0
    if args.checkpoint is None:
        raise SystemExit("explain needs a CHECKPOINT (from `backprop-rs train`), or --tiny")
    from .report import explain_checkpoint

    out, info = explain_checkpoint(args.checkpoint, index=args.index, out=args.out, baseline=args.baseline, steps=args.steps)
    print(f"test example {info['index']}: digit {info['label']}, predicted {info['prediction']}, loss {info['loss']:.4g}; "
          f"attribution residual {100 * info['ig_relative_residual']:.3g}% (weights), {100 * info['input_relative_residual']:.3g}% (input)")
    print(f"report written to {os.path.abspath(out)}")
    return 0
