"""Single-kernel workloads: sgemm, elementwise and transcendental ops, a sum, softmax, and the
per-op overhead of a 4-op graph's forward and backward. Each ``make`` builds the backprop_rs,
NumPy and PyTorch versions of the same computation from the same random inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..frameworks import NUMPY, TORCH, Env, bp_device, rng
from ..harness import Runner, Workload, wrap_bp


def _sgemm(n: int) -> Callable[[Env, str], Runner]:
    def make(env: Env, fw: str) -> Runner:
        gen = rng(env)
        a = gen.standard_normal((n, n), dtype=env.np.float32)
        b = gen.standard_normal((n, n), dtype=env.np.float32)
        if fw == NUMPY:
            return Runner(lambda: a @ b)
        if fw == TORCH:
            ta, tb = env.torch.tensor(a), env.torch.tensor(b)
            return Runner(lambda: ta @ tb)
        dev = bp_device(fw)
        xa, xb = env.bp.tensor(a).to(dev), env.bp.tensor(b).to(dev)
        return wrap_bp(env, fw, lambda: xa @ xb)

    return make


# name -> (NumPy expression, PyTorch expression, backprop_rs expression) over the inputs
_ELEMENTWISE: dict[str, tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
    "add": (lambda np, a, b: a + b, lambda t, a, b: a + b, lambda a, b: a + b),
    "mul": (lambda np, a, b: a * b, lambda t, a, b: a * b, lambda a, b: a * b),
    "exp": (lambda np, a, b: np.exp(a), lambda t, a, b: t.exp(a), lambda a, b: a.exp()),
    "tanh": (lambda np, a, b: np.tanh(a), lambda t, a, b: t.tanh(a), lambda a, b: a.tanh()),
    # NumPy has no sigmoid: the hand-written form a NumPy user would write
    "sigmoid": (lambda np, a, b: 1 / (1 + np.exp(-a)), lambda t, a, b: t.sigmoid(a), lambda a, b: a.sigmoid()),
    "sum": (lambda np, a, b: a.sum(), lambda t, a, b: a.sum(), lambda a, b: a.sum()),
}


def _elementwise(op: str, n: int) -> Callable[[Env, str], Runner]:
    np_f, torch_f, bp_f = _ELEMENTWISE[op]
    binary = op in ("add", "mul")

    def make(env: Env, fw: str) -> Runner:
        gen = rng(env)
        a = gen.standard_normal(n, dtype=env.np.float32)
        b = gen.standard_normal(n, dtype=env.np.float32) if binary else None
        if fw == NUMPY:
            np = env.np
            return Runner(lambda: np_f(np, a, b))
        if fw == TORCH:
            t = env.torch
            ta = t.tensor(a)
            tb = t.tensor(b) if binary else None
            return Runner(lambda: torch_f(t, ta, tb))
        dev = bp_device(fw)
        # bp.tensor copies into engine-owned memory, as bp.randn would; from_numpy would share
        # NumPy's buffer and measure the engine on NumPy's allocation instead
        xa = env.bp.tensor(a).to(dev)
        xb = env.bp.tensor(b).to(dev) if binary else None
        return wrap_bp(env, fw, lambda: bp_f(xa, xb))

    return make


def _softmax(rows: int, cols: int) -> Callable[[Env, str], Runner]:
    def make(env: Env, fw: str) -> Runner:
        x = rng(env).standard_normal((rows, cols), dtype=env.np.float32)
        if fw == NUMPY:
            np = env.np

            def softmax_np() -> Any:
                # the stable form: subtracting the row max keeps exp from overflowing
                e = np.exp(x - x.max(axis=1, keepdims=True))
                e /= e.sum(axis=1, keepdims=True)
                return e

            return Runner(softmax_np)
        if fw == TORCH:
            t = env.torch
            tx = t.tensor(x)
            return Runner(lambda: t.softmax(tx, 1))
        xb = env.bp.tensor(x).to(bp_device(fw))
        return wrap_bp(env, fw, lambda: xb.softmax(1))

    return make


def _graph_4op(env: Env, fw: str) -> Runner:
    """``((x * w).tanh() + x).sum()`` forward and backward on 8 elements: mul, tanh, add, sum.
    Gradients are reset to None each call, as a training loop's zero_grad does, in every framework;
    the returned value is d/dx, which the result check compares with the hand-written NumPy one."""
    gen = rng(env)
    xa = gen.standard_normal(8, dtype=env.np.float32)
    wa = gen.standard_normal(8, dtype=env.np.float32)
    if fw == NUMPY:
        np = env.np

        def fwd_bwd_np() -> Any:
            p = xa * wa
            t = np.tanh(p)
            s = t + xa
            s.sum()  # the forward's value; the backward below does not need it
            dp = 1 - t * t  # d sum / d t = 1, d tanh(p) / d p = 1 - tanh^2
            dx = dp * wa + 1  # x feeds both the product and the add
            dp * xa  # d/dw, computed as the frameworks do, then dropped
            return dx

        return Runner(fwd_bwd_np)
    if fw == TORCH:
        t = env.torch
        x = t.tensor(xa, requires_grad=True)
        w = t.tensor(wa, requires_grad=True)

        def fwd_bwd_torch() -> Any:
            x.grad = None
            w.grad = None
            ((x * w).tanh() + x).sum().backward()
            return x.grad

        return Runner(fwd_bwd_torch)
    bp = env.bp
    dev = bp_device(fw)
    x = bp.tensor(xa).to(dev).requires_grad_()
    w = bp.tensor(wa).to(dev).requires_grad_()

    def fwd_bwd_bp() -> Any:
        x.grad = None
        w.grad = None
        ((x * w).tanh() + x).sum().backward()
        return x.grad

    return wrap_bp(env, fw, fwd_bwd_bp)


def kernel_workloads(quick: bool) -> list[Workload]:
    """sgemm, elementwise, sum, softmax and the 4-op graph, in run order; ``quick`` shrinks sizes."""
    out: list[Workload] = []
    for n in (256, 512, 1024, 2048):
        m = max(32, n // 8) if quick else n
        out.append(Workload(f"sgemm_{n}", f"f32 matmul [{m}x{m}] @ [{m}x{m}]", {"n": m}, _sgemm(m),
                            metric=("GFLOP/s", 2.0 * m**3 / 1e9), tol=(1e-4, 1e-5 * m)))
    n = (1 << 20) if quick else (1 << 24)
    for op in ("add", "mul"):
        out.append(Workload(f"{op}_16M", f"f32 elementwise {op} of two {n}-element vectors", {"n": n},
                            _elementwise(op, n), metric=("GB/s", 3 * 4 * n / 1e9), tol=(1e-6, 1e-6)))
    for op in ("exp", "tanh", "sigmoid"):
        out.append(Workload(f"{op}_16M", f"f32 {op} of a {n}-element vector", {"n": n}, _elementwise(op, n),
                            metric=("GB/s", 2 * 4 * n / 1e9), tol=(1e-5, 1e-6)))
    # float32 sums in different orders differ by rounding; a lost or doubled block would be off by
    # about sqrt(block) >> sqrt(n) / 1000, so this tolerance still catches a broken reduction
    out.append(Workload("sum_16M", f"f32 sum of a {n}-element vector", {"n": n}, _elementwise("sum", n),
                        metric=("GB/s", 4 * n / 1e9), tol=(1e-5, 1e-3 * math.sqrt(n))))
    rows = 256 if quick else 4096
    out.append(Workload("softmax_4096x1000", f"f32 softmax over dim 1 of [{rows}x1000]", {"rows": rows, "cols": 1000},
                        _softmax(rows, 1000), metric=("GB/s", 2 * 4 * rows * 1000 / 1e9), tol=(1e-5, 1e-6)))
    out.append(Workload("graph_4op_fwd_bwd", "((x*w).tanh() + x).sum().backward() on 8 elements", {"n": 8},
                        _graph_4op, tol=(1e-5, 1e-6)))
    return out
