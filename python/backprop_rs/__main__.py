"""Command line: ``python -m backprop_rs`` / ``backprop-rs``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional


def _demo(args: argparse.Namespace) -> int:
    """Fits a small MLP to a noisy sine with plain gradient descent: forward, loss, backward, step."""
    import backprop_rs as bp

    bp.manual_seed(args.seed)
    x = bp.linspace(-3.0, 3.0, 256).reshape(-1, 1)
    y = x.sin() + 0.05 * bp.randn(256, 1)
    w1 = (bp.randn(1, 32) * 1.0).requires_grad_()
    b1 = bp.zeros(32, requires_grad=True)
    w2 = (bp.randn(32, 1) * (1 / 32**0.5)).requires_grad_()
    b2 = bp.zeros(1, requires_grad=True)
    params = [w1, b1, w2, b2]
    t0 = time.perf_counter()
    for step in range(args.steps + 1):
        pred = (x @ w1 + b1).tanh() @ w2 + b2
        loss = ((pred - y) ** 2).mean()
        loss.backward()
        with bp.no_grad():
            for p in params:
                p -= args.lr * p.grad
                p.grad = None
        if step % max(1, args.steps // 5) == 0:
            print(f"step {step:5d}  mse {loss.item():.5f}")
    print(f"done in {time.perf_counter() - t0:.2f} s; final mse {loss.item():.5f} (noise floor 0.0025)")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="backprop-rs", description="backprop_rs command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="fit a small MLP to a sine curve (a quick check that everything works)")
    demo.add_argument("--steps", type=int, default=2000)
    demo.add_argument("--lr", type=float, default=0.05)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
