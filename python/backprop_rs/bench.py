"""``backprop-rs bench``: times backprop_rs against NumPy (and PyTorch when it is installed).

Every workload runs for every framework in ONE process, round by round, with the framework order
rotated each round, so machine noise (other processes, turbo, the page cache) falls on all of them
alike; each framework's MEDIAN per-call time is reported with its ratio to the best peer. A sample
is the mean of ``k`` back-to-back calls, ``k`` chosen during warm-up so a sample lasts long enough
for the timer (tens of milliseconds), so even microsecond workloads are measured, not the clock.

Before timing, each framework's first result is compared with NumPy's: a benchmark of a wrong
kernel is worthless, and this is where a broken fast path shows up first.

Nothing here asserts on timings; ``--quick`` (CI) only proves that every path runs.
Only the standard library is imported at module level so ``backprop-rs train`` stays quick to start.
"""

from __future__ import annotations

import gc
import inspect
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

BP_CPU = "backprop_rs-cpu"
BP_GPU = "backprop_rs-gpu"
NUMPY = "numpy"
TORCH = "torch"
PEERS = (NUMPY, TORCH)

MLP_SIZES = (784, 256, 128, 10)
MLP_LR = 0.01
MLP_MOMENTUM = 0.9


# ------------------------------------------------------------------ the NumPy peer of the MLP step


class NumpyMLP:
    """A ReLU MLP trained with a hand-written forward, cross-entropy, backward and SGD-with-momentum
    step in NumPy float32: the NumPy peer of the ``mlp_step_*`` workloads (NumPy has no autograd).

    Parameters are ``[W1, b1, W2, b2, ...]`` with ``W`` of shape ``[out, in]`` as in ``nn.Linear``,
    so the same arrays can be loaded into a backprop_rs or PyTorch model. The momentum rule is
    PyTorch's: ``buf = grad`` on the first step, then ``buf = momentum * buf + grad``;
    ``p -= lr * buf``. tests/test_bench.py checks its gradients against backprop_rs's.
    """

    def __init__(self, params: Sequence[Any], lr: float = MLP_LR, momentum: float = MLP_MOMENTUM) -> None:
        import numpy as np

        self.params = [np.array(p, dtype=np.float32) for p in params]
        self.bufs: Optional[List[Any]] = None
        self.lr = np.float32(lr)
        self.momentum = np.float32(momentum)

    @staticmethod
    def init_params(rng: Any, sizes: Sequence[int] = MLP_SIZES) -> List[Any]:
        """PyTorch's default ``nn.Linear`` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
        import numpy as np

        out = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            out.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
            out.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        return out

    def loss_and_grads(self, x: Any, y: Any) -> Tuple[float, List[Any]]:
        """Mean cross-entropy of the logits against integer labels ``y``, and d loss / d params."""
        import numpy as np

        n = x.shape[0]
        rows = np.arange(n)
        acts, pre = [x], []
        a = x
        layers = len(self.params) // 2
        for i in range(layers):
            w, b = self.params[2 * i], self.params[2 * i + 1]
            h = a @ w.T
            h += b
            if i < layers - 1:
                pre.append(h)
                a = np.maximum(h, 0)
                acts.append(a)
            else:
                a = h
        z = a
        # log-softmax made stable by subtracting the row maximum (the loss is shift-invariant)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.log(s).mean() - z[rows, y].mean())
        # d loss / d logits = (softmax - onehot) / n
        dz = e / s
        dz[rows, y] -= 1
        dz /= n
        grads: List[Any] = [None] * len(self.params)
        for i in reversed(range(layers)):
            w = self.params[2 * i]
            grads[2 * i] = dz.T @ acts[i]
            grads[2 * i + 1] = dz.sum(axis=0)
            if i > 0:
                dz = dz @ w
                dz *= pre[i - 1] > 0  # ReLU passes the gradient where its input was positive
        return loss, grads

    def step(self, x: Any, y: Any) -> float:
        """One training step; returns the loss before the update (as a framework's forward does)."""
        loss, grads = self.loss_and_grads(x, y)
        if self.bufs is None:
            self.bufs = [g.copy() for g in grads]
        else:
            for b, g in zip(self.bufs, grads):
                b *= self.momentum
                b += g
        for p, b in zip(self.params, self.bufs):
            p -= self.lr * b
        return loss


# ------------------------------------------------------------------ environment: what is installed


@dataclass
class Env:
    bp: Any
    np: Any
    torch: Any  # None when PyTorch is not installed
    quick: bool
    frameworks: List[str]  # columns that run, in display order
    gpu_note: Optional[str] = None  # why the GPU column is missing, or which adapter it uses


def _import_torch() -> Any:
    try:
        import torch  # noqa: F401  (optional peer, never a dependency)
    except Exception:  # a broken install must not take the bench down with it
        return None
    return torch


def gpu_status(bp: Any) -> Tuple[bool, str]:
    """(available, message). The GPU backend is optional and still growing, so every call into it
    is guarded: a missing module, a missing function or an exception all mean "no GPU"."""
    gpu = getattr(bp, "gpu", None)
    if gpu is None:
        return False, "no GPU adapter found (this backprop_rs build has no GPU backend)"
    avail = getattr(gpu, "is_available", None)
    if not callable(avail):
        return False, "no GPU adapter found (backprop_rs.gpu.is_available() is missing)"
    try:
        ok = bool(avail())
    except Exception as e:
        return False, f"no GPU adapter found (backprop_rs.gpu.is_available() failed: {e})"
    if not ok:
        return False, "no GPU adapter found"
    name = ""
    for attr in ("adapter_name", "device_name", "get_device_name", "adapter_info"):
        f = getattr(gpu, attr, None)
        if callable(f):
            try:
                name = str(f())
                break
            except Exception:
                pass
    return True, f"GPU adapter: {name}" if name else "GPU adapter available"


def _gpu_sync(bp: Any, out: Any) -> None:
    """Waits for the GPU queue: ``bp.gpu.synchronize()`` when the backend has it, otherwise a
    one-element readback of the last result (a readback must wait for the work before it)."""
    sync = getattr(getattr(bp, "gpu", None), "synchronize", None)
    if callable(sync):
        sync()
        return
    if isinstance(out, bp.Tensor):
        out.reshape(-1)[0].item()


def _bp_device(fw: str) -> str:
    return "gpu" if fw == BP_GPU else "cpu"


def _to_numpy(env: Env, value: Any) -> Any:
    np = env.np
    if isinstance(value, env.bp.Tensor):
        return value.detach().to("cpu").numpy()
    if env.torch is not None and isinstance(value, env.torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


# ------------------------------------------------------------------ workloads


@dataclass
class Runner:
    """What a framework runs for a workload: ``fn`` is timed; ``finish`` (GPU) runs once after each
    sample's calls, inside the timed region, so queued work is counted."""

    fn: Callable[[], Any]
    finish: Optional[Callable[[Any], None]] = None


@dataclass
class Workload:
    name: str
    description: str
    params: Dict[str, Any]
    make: Callable[[Env, str], Runner]  # (env, framework) -> Runner; raises if not applicable
    metric: Optional[Tuple[str, float]] = None  # (unit, amount per call): reports amount / time
    tol: Optional[Tuple[float, float]] = None  # (rtol, atol) for the result check; None = no check
    frameworks: Tuple[str, ...] = (BP_CPU, BP_GPU, NUMPY, TORCH)
    kind: str = "timed"  # "timed" (seconds per call), or "rss" / "import" (subprocess workloads)
    unit: str = "s"


def _rng(env: Env, seed: int = 0) -> Any:
    return env.np.random.default_rng(seed)


def _wrap_bp(env: Env, fw: str, fn: Callable[[], Any]) -> Runner:
    if fw == BP_GPU:
        bp = env.bp
        return Runner(fn, lambda out: _gpu_sync(bp, out))
    return Runner(fn)


def _sgemm(n: int) -> Callable[[Env, str], Runner]:
    def make(env: Env, fw: str) -> Runner:
        rng = _rng(env)
        a = rng.standard_normal((n, n), dtype=env.np.float32)
        b = rng.standard_normal((n, n), dtype=env.np.float32)
        if fw == NUMPY:
            return Runner(lambda: a @ b)
        if fw == TORCH:
            ta, tb = env.torch.tensor(a), env.torch.tensor(b)
            return Runner(lambda: ta @ tb)
        dev = _bp_device(fw)
        xa, xb = env.bp.tensor(a).to(dev), env.bp.tensor(b).to(dev)
        return _wrap_bp(env, fw, lambda: xa @ xb)

    return make


# name -> (NumPy expression, PyTorch expression, backprop_rs expression) over the inputs
_ELEMENTWISE: Dict[str, Tuple[Callable[..., Any], Callable[..., Any], Callable[..., Any]]] = {
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
        rng = _rng(env)
        a = rng.standard_normal(n, dtype=env.np.float32)
        b = rng.standard_normal(n, dtype=env.np.float32) if binary else None
        if fw == NUMPY:
            np = env.np
            return Runner(lambda: np_f(np, a, b))
        if fw == TORCH:
            t = env.torch
            ta = t.tensor(a)
            tb = t.tensor(b) if binary else None
            return Runner(lambda: torch_f(t, ta, tb))
        dev = _bp_device(fw)
        # bp.tensor copies into engine-owned memory, as bp.randn would; from_numpy would share
        # NumPy's buffer and measure the engine on NumPy's allocation instead
        xa = env.bp.tensor(a).to(dev)
        xb = env.bp.tensor(b).to(dev) if binary else None
        return _wrap_bp(env, fw, lambda: bp_f(xa, xb))

    return make


def _softmax(rows: int, cols: int) -> Callable[[Env, str], Runner]:
    def make(env: Env, fw: str) -> Runner:
        x = _rng(env).standard_normal((rows, cols), dtype=env.np.float32)
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
        xb = env.bp.tensor(x).to(_bp_device(fw))
        return _wrap_bp(env, fw, lambda: xb.softmax(1))

    return make


def _graph_4op(env: Env, fw: str) -> Runner:
    """``((x * w).tanh() + x).sum()`` forward and backward on 8 elements: mul, tanh, add, sum.
    Gradients are reset to None each call, as a training loop's zero_grad does, in every framework;
    the returned value is d/dx, which the result check compares with the hand-written NumPy one."""
    rng = _rng(env)
    xa = rng.standard_normal(8, dtype=env.np.float32)
    wa = rng.standard_normal(8, dtype=env.np.float32)
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
    dev = _bp_device(fw)
    x = bp.tensor(xa).to(dev).requires_grad_()
    w = bp.tensor(wa).to(dev).requires_grad_()

    def fwd_bwd_bp() -> Any:
        x.grad = None
        w.grad = None
        ((x * w).tanh() + x).sum().backward()
        return x.grad

    return _wrap_bp(env, fw, fwd_bwd_bp)


def _mlp_layers(nn: Any) -> List[Any]:
    """The MLP's layers in any framework with PyTorch's ``nn`` names (backprop_rs, PyTorch)."""
    layers: List[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return layers


def load_model(fw_module: Any, layers: Callable[[Any], List[Any]], params: Sequence[Any], device: str = "cpu") -> Any:
    """``nn.Sequential(*layers(fw_module.nn))`` of backprop_rs or PyTorch, loaded with the NumPy
    ``params`` (in ``parameters()`` order), on ``device``."""
    model = fw_module.nn.Sequential(*layers(fw_module.nn))
    with fw_module.no_grad():
        for p, a in zip(model.parameters(), params):
            p.copy_(fw_module.tensor(a))
    return model.to(device)


def bp_mlp(bp: Any, params: Sequence[Any], device: str = "cpu") -> Any:
    """The backprop_rs model of the MLP workloads, loaded with ``params`` (NumpyMLP's layout)."""
    return load_model(bp, _mlp_layers, params, device)


def step_batches(rng: Any, batch: int, shape: Sequence[int], classes: int) -> Tuple[Any, Any]:
    """A pool of random batches ``[k, batch, *shape]`` and labels ``[k, batch]`` that the training
    workloads cycle through, ``k * batch`` >= 1024 examples. Stepping on ONE batch over and over
    (thousands of times per workload) drives its loss to zero within a few dozen steps; the
    gradients then underflow to denormals, whose arithmetic is ~100x slower on x86 (measured here:
    the b1 backward went from 56 to 150 us after 50 steps on one example), so the bench would time
    the denormal penalty instead of the step. With a pool, every framework sees the same data."""
    import numpy as np

    k = max(1, -(-1024 // batch))
    x = rng.standard_normal((k, batch, *shape), dtype=np.float32)
    y = rng.integers(0, classes, (k, batch), dtype=np.int64)
    return x, y


def train_step_runner(env: Env, fw: str, layers: Callable[[Any], List[Any]], params: Sequence[Any], x: Any, y: Any) -> Runner:
    """A framework's training step for the model ``layers`` builds, loaded with ``params``: forward,
    cross-entropy, backward, SGD (momentum 0.9) step, zero_grad, on the next batch of the pool
    ``x``/``y`` (from ``step_batches``); returns the loss. (NumPy's step is hand-written per model,
    so not here.)"""
    if fw == TORCH:
        t = env.torch
        model = load_model(t, layers, params)
        batches = [(t.tensor(xb), t.tensor(yb)) for xb, yb in zip(x, y)]
        mod = t
    else:
        mod = env.bp
        dev = _bp_device(fw)
        model = load_model(mod, layers, params, dev)
        batches = [(mod.tensor(xb).to(dev), mod.tensor(yb).to(dev)) for xb, yb in zip(x, y)]
    opt = mod.optim.SGD(model.parameters(), lr=MLP_LR, momentum=MLP_MOMENTUM)
    loss_fn = mod.nn.CrossEntropyLoss()
    order = itertools.cycle(batches)

    def step() -> Any:
        tx, ty = next(order)
        loss = loss_fn(model(tx), ty)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    return Runner(step) if fw == TORCH else _wrap_bp(env, fw, step)


def numpy_step_runner(net: Any, x: Any, y: Any) -> Runner:
    """The hand-written NumPy step (``NumpyMLP`` or a subclass) over the same pool of batches."""
    order = itertools.cycle(range(len(x)))

    def step() -> Any:
        i = next(order)
        return net.step(x[i], y[i])

    return Runner(step)


def _mlp_step(batch: int) -> Callable[[Env, str], Runner]:
    """A training step of a 784-256-128-10 ReLU MLP on random batches (a pool, see `step_batches`): forward, cross-entropy,
    backward, SGD (momentum 0.9) step, zero_grad. All frameworks start from the same weights, so
    the first step's losses must agree (the result check)."""

    def make(env: Env, fw: str) -> Runner:
        rng = _rng(env)
        params = NumpyMLP.init_params(rng)
        x, y = step_batches(rng, batch, (MLP_SIZES[0],), MLP_SIZES[-1])
        if fw == NUMPY:
            return numpy_step_runner(NumpyMLP(params), x, y)
        return train_step_runner(env, fw, _mlp_layers, params, x, y)

    return make


def _not_timed(env: Env, fw: str) -> Runner:  # subprocess workloads have no in-process runner
    raise RuntimeError("not an in-process workload")


def workloads(quick: bool) -> List[Workload]:
    """Every workload, in run order. ``quick`` shrinks sizes so CI finishes in seconds; the names
    stay the same (so ``--only`` works in both modes) and ``params`` records the sizes that ran."""
    out: List[Workload] = []
    for n in (256, 512, 1024, 2048):
        m = max(32, n // 8) if quick else n
        out.append(Workload(f"sgemm_{n}", f"f32 matmul [{m}x{m}] @ [{m}x{m}]", {"n": m}, _sgemm(m),
                            metric=("GFLOP/s", 2.0 * m**3 / 1e9), tol=(1e-4, 1e-5 * m)))
    n = (1 << 20) if quick else (1 << 24)
    for op in ("add", "mul"):
        out.append(Workload(f"{op}_16M", f"f32 elementwise {op} of two {n}-element vectors", {"n": n}, _elementwise(op, n),
                            metric=("GB/s", 3 * 4 * n / 1e9), tol=(1e-6, 1e-6)))
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
    out.append(Workload("graph_4op_fwd_bwd", "((x*w).tanh() + x).sum().backward() on 8 elements", {"n": 8}, _graph_4op,
                        tol=(1e-5, 1e-6)))
    for b in (1, 64, 512):
        out.append(Workload(f"mlp_step_b{b}", f"MLP 784-256-128-10 training step, batch {b}", {"batch": b}, _mlp_step(b),
                            tol=(1e-4, 1e-5)))
    from .bench_conv import conv_workloads  # imports this module: deferred to avoid a cycle

    out += conv_workloads(quick)
    steps = 20 if quick else 300
    out.append(Workload("peak_rss_mlp", f"peak RSS of a fresh process training the MLP at batch 64 for {steps} steps",
                        {"batch": 64, "steps": steps}, _not_timed, frameworks=(BP_CPU, NUMPY, TORCH), kind="rss", unit="MB"))
    out.append(Workload("import_time", "wall time of `python -c \"import <framework>\"` in a fresh process", {},
                        _not_timed, frameworks=(BP_CPU, NUMPY, TORCH), kind="import", unit="s"))
    return out


# ------------------------------------------------------------------ timing


@dataclass
class Cell:
    """One framework's results for one workload."""

    samples: List[float] = field(default_factory=list)
    inner: int = 1
    error: Optional[str] = None
    check: Optional[str] = None  # "ok", a mismatch description, or None when not checked
    details: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> Optional[float]:
        return statistics.median(self.samples) if self.samples and self.error is None else None


@dataclass
class Plan:
    warmup_s: float
    min_warmup: int
    sample_s: float  # a sample lasts about this long (k calls)
    budget_s: float  # rounds are chosen so one workload takes about this long
    min_rounds: int
    max_rounds: int
    rss_repeats: int
    import_repeats: int
    # Idle time before every sample. OpenBLAS (NumPy's BLAS) keeps its worker threads spinning for
    # about 0.1 s after each threaded call; measured here, a backprop_rs sgemm 1024 sample taken
    # straight after a NumPy one ran ~2x slower than alone. Pausing before each sample lets any
    # framework's pool go idle, so the interleaving spreads machine noise without one framework's
    # threads stealing the cores from the next.
    settle_s: float = 0.0
    # Untimed calls of the same runner after the settle pause, for about this long. Measured here,
    # the first ~10-40 ms of work after a 0.15 s idle run up to 2x slow for every framework (NumPy's
    # exp of 2M floats: 1.9 ms, then 1.5, 1.1, 1.0 ms): the CPU (a VM's vCPU) ramps back up. Without
    # this, a sample of a few long calls (a LeNet step) would time the ramp more than the work.
    rewarm_s: float = 0.0


FULL = Plan(warmup_s=0.3, min_warmup=2, sample_s=0.05, budget_s=3.0, min_rounds=7, max_rounds=21, rss_repeats=3, import_repeats=9,
            settle_s=0.15, rewarm_s=0.05)
QUICK = Plan(warmup_s=0.0, min_warmup=1, sample_s=0.002, budget_s=0.0, min_rounds=3, max_rounds=3, rss_repeats=1, import_repeats=2)


def _warm_up(r: Runner, plan: Plan) -> Tuple[Any, float]:
    """Runs until warm; returns the first result and the median single-call time."""
    first = None
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < plan.min_warmup or time.perf_counter() - start < plan.warmup_s:
        t0 = time.perf_counter()
        out = r.fn()
        if r.finish is not None:
            r.finish(out)
        times.append(time.perf_counter() - t0)
        if first is None:
            first = out
    return first, statistics.median(times)


def _rewarm(r: Runner, seconds: float) -> None:
    """Calls the runner, untimed, until ``seconds`` have passed (at least once)."""
    start = time.perf_counter()
    while True:
        out = r.fn()
        if r.finish is not None:
            r.finish(out)
        if time.perf_counter() - start >= seconds:
            return


def _sample(r: Runner, k: int) -> float:
    fn = r.fn
    t0 = time.perf_counter()
    out = None
    for _ in range(k):
        out = fn()
    if r.finish is not None:
        r.finish(out)
    return (time.perf_counter() - t0) / k


def _check(env: Env, w: Workload, results: Dict[str, Any], cells: Dict[str, Cell]) -> None:
    if w.tol is None or NUMPY not in results:
        return
    np = env.np
    ref = np.asarray(_to_numpy(env, results[NUMPY]), dtype=np.float64)
    rtol, atol = w.tol
    for fw, value in results.items():
        if fw == NUMPY:
            continue
        try:
            got = np.asarray(_to_numpy(env, value), dtype=np.float64)
        except Exception as e:
            cells[fw].check = f"could not read the result back: {e}"
            continue
        if got.shape != ref.shape:
            cells[fw].check = f"shape {got.shape} differs from NumPy's {ref.shape}"
        elif not np.allclose(got, ref, rtol=rtol, atol=atol, equal_nan=False):
            err = np.abs(got - ref)
            cells[fw].check = f"differs from NumPy's result: max abs err {float(np.nanmax(err)):.3g} (rtol {rtol:g}, atol {atol:g})"
        else:
            cells[fw].check = "ok"


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:160]


def run_timed(env: Env, w: Workload, plan: Plan, progress: Any) -> Dict[str, Cell]:
    fws = [f for f in env.frameworks if f in w.frameworks]
    cells = {f: Cell() for f in fws}
    runners: Dict[str, Runner] = {}
    firsts: Dict[str, Any] = {}
    call_s: Dict[str, float] = {}
    gc.collect()
    for fw in fws:
        try:
            r = w.make(env, fw)
            first, t = _warm_up(r, plan)
        except Exception as e:  # one framework failing (e.g. an op the GPU lacks) spoils only its cell
            cells[fw].error = _short(e)
            continue
        runners[fw], firsts[fw], call_s[fw] = r, first, max(t, 1e-9)
        cells[fw].inner = max(1, min(100_000, math.ceil(plan.sample_s / call_s[fw])))
    _check(env, w, firsts, cells)
    firsts.clear()  # 16M-element results are 64 MB each; do not hold them through the timing
    if runners:
        per_round = sum(cells[f].inner * call_s[f] for f in runners)
        rounds = max(plan.min_rounds, min(plan.max_rounds, int(plan.budget_s / max(per_round, 1e-9))))
        order = list(runners)
        # timeit's practice: no cyclic GC pauses inside samples (refcounting still frees tensors)
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            for rnd in range(rounds):
                if progress is not None:
                    progress.set_postfix_str(f"{w.name} round {rnd + 1}/{rounds}", refresh=False)
                s = rnd % len(order)
                for fw in order[s:] + order[:s]:  # rotate so no framework always runs first
                    if cells[fw].error is not None:
                        continue
                    if plan.settle_s:
                        time.sleep(plan.settle_s)
                    if plan.rewarm_s:
                        _rewarm(runners[fw], plan.rewarm_s)
                    try:
                        cells[fw].samples.append(_sample(runners[fw], cells[fw].inner))
                    except Exception as e:
                        cells[fw].error = _short(e)
        finally:
            if gc_was_on:
                gc.enable()
    runners.clear()
    gc.collect()
    return cells


# ------------------------------------------------------------------ subprocess workloads

_CHILD_PRELUDE = '''
import json, os, resource, sys
def rss_now_mb():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None
def peak_mb():
    # Linux: VmHWM, the high-water mark of this process's own memory map. ru_maxrss is not used
    # there because exec keeps the larger of the old and new maps' peaks, so a child forked from
    # a 100 MB benchmark would report at least 100 MB whatever it did.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux
def ru_maxrss_mb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024
steps = int(sys.argv[1])
import numpy as np
rng = np.random.default_rng(0)
xa = rng.standard_normal((64, 784), dtype=np.float32)
ya = rng.integers(0, 10, 64, dtype=np.int64)
'''

_CHILD_BP = '''
import backprop_rs as bp
from backprop_rs.bench import NumpyMLP, bp_mlp
model = bp_mlp(bp, NumpyMLP.init_params(rng))
opt = bp.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = bp.nn.CrossEntropyLoss()
x, y = bp.tensor(xa), bp.tensor(ya)
def step():
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss
'''

_CHILD_TORCH = '''
import torch
model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
loss_fn = torch.nn.CrossEntropyLoss()
x, y = torch.tensor(xa), torch.tensor(ya)
def step():
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss
'''

_CHILD_LOOP = '''
after_setup = rss_now_mb()
early = None
for i in range(steps):
    loss = step()
    if i == steps // 10:
        early = rss_now_mb()
print(json.dumps({"peak_mb": peak_mb(), "ru_maxrss_mb": ru_maxrss_mb(), "rss_after_setup_mb": after_setup, "rss_early_mb": early,
                  "rss_end_mb": rss_now_mb(), "final_loss": float(loss.item() if hasattr(loss, "item") else loss)}))
'''


def _child_numpy_source() -> str:
    # The NumPy child must not import backprop_rs (that would count its memory), so it gets the
    # class's source text instead.
    return "import math\nfrom typing import Any, List, Optional, Sequence, Tuple\n" + \
        f"MLP_SIZES, MLP_LR, MLP_MOMENTUM = {MLP_SIZES!r}, {MLP_LR!r}, {MLP_MOMENTUM!r}\n" + \
        textwrap.dedent(inspect.getsource(NumpyMLP)) + \
        "mlp = NumpyMLP(NumpyMLP.init_params(rng))\nstep = lambda: mlp.step(xa, ya)\n"


def _rss_script(fw: str) -> str:
    body = {BP_CPU: _CHILD_BP, TORCH: _CHILD_TORCH}.get(fw) or _child_numpy_source()
    return _CHILD_PRELUDE + body + _CHILD_LOOP


def _import_module(fw: str) -> str:
    return {BP_CPU: "backprop_rs", NUMPY: "numpy", TORCH: "torch"}[fw]


def _run_child(args: List[str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def run_subprocess_workload(env: Env, w: Workload, plan: Plan, progress: Any) -> Tuple[Dict[str, Cell], Dict[str, Any]]:
    fws = [f for f in env.frameworks if f in w.frameworks]
    cells = {f: Cell() for f in fws}
    extra: Dict[str, Any] = {}
    repeats = plan.rss_repeats if w.kind == "rss" else plan.import_repeats
    baseline: List[float] = []
    for rnd in range(repeats):
        if progress is not None:
            progress.set_postfix_str(f"{w.name} run {rnd + 1}/{repeats}", refresh=False)
        s = rnd % len(fws)
        for fw in fws[s:] + fws[:s]:
            c = cells[fw]
            if c.error is not None:
                continue
            try:
                if w.kind == "rss":
                    p = _run_child(["-c", _rss_script(fw), str(w.params["steps"])])
                    if p.returncode != 0:
                        raise RuntimeError((p.stderr.strip().splitlines() or ["exit code %d" % p.returncode])[-1])
                    info = json.loads(p.stdout.strip().splitlines()[-1])
                    c.details.append(info)
                    c.samples.append(float(info["peak_mb"]))
                else:
                    t0 = time.perf_counter()
                    p = _run_child(["-c", f"import {_import_module(fw)}"])
                    dt = time.perf_counter() - t0
                    if p.returncode != 0:
                        raise RuntimeError((p.stderr.strip().splitlines() or ["exit code %d" % p.returncode])[-1])
                    c.samples.append(dt)
            except Exception as e:
                c.error = _short(e)
        if w.kind == "import":
            # the interpreter's own start-up, which every import time above includes
            t0 = time.perf_counter()
            _run_child(["-c", "pass"])
            baseline.append(time.perf_counter() - t0)
    if baseline:
        extra["python_startup_s"] = statistics.median(baseline)
        extra["python_startup_samples"] = baseline
    return cells, extra


# ------------------------------------------------------------------ machine description


def _cpu_seconds() -> Optional[Tuple[float, float]]:
    """(CPU-seconds the whole machine has been busy, CPU-seconds this process and its children
    used), Linux only. The difference over a run is what OTHER processes took from the cores:
    the load average cannot say that, since it counts the benchmark's own threads."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
        busy = sum(fields[:8]) - fields[3] - fields[4]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    t = os.times()
    return busy / ticks, t.user + t.system + t.children_user + t.children_system


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _numpy_blas(np: Any) -> Optional[str]:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy has no dict mode; the BLAS name is a nicety
        return None


def machine_info(env: Env) -> Dict[str, Any]:
    info: Dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "os": f"{platform.system()} {platform.release()}",
                            "arch": platform.machine()}
    try:
        ci = env.bp._core._cpu_info()
        info["simd"], info["threads"] = ci.get("simd"), ci.get("threads")
    except Exception:  # an older extension without _cpu_info still benchmarks
        info["simd"], info["threads"] = "unknown", None
    try:
        info["load_avg_start"] = list(os.getloadavg())
    except OSError:
        pass
    versions: Dict[str, Any] = {"python": platform.python_version(), "numpy": env.np.__version__,
                                "numpy_blas": _numpy_blas(env.np), "backprop_rs": env.bp.__version__,
                                "torch": getattr(env.torch, "__version__", None)}
    if env.torch is not None:
        try:
            info["torch_threads"] = env.torch.get_num_threads()
        except Exception:
            pass
    info["versions"] = versions
    return info


def machine_line(info: Dict[str, Any]) -> str:
    return (f"{info['cpu']} | {info['logical_cpus']} logical CPUs | SIMD {info['simd']} | backprop_rs threads "
            f"{info['threads']} | {info['os']} {info['arch']}")


def versions_line(v: Dict[str, Any]) -> str:
    blas = f" ({v['numpy_blas']})" if v.get("numpy_blas") else ""
    torch = f"torch {v['torch']}" if v.get("torch") else "torch not installed"
    return f"Python {v['python']} | NumPy {v['numpy']}{blas} | backprop_rs {v['backprop_rs']} | {torch}"


# ------------------------------------------------------------------ report


def fmt_time(s: float) -> str:
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_cell(w: Workload, c: Optional[Cell]) -> str:
    if c is None:
        return "-"
    if c.error is not None:
        return "error"
    m = c.median
    if m is None:
        return "-"
    if w.unit == "MB":
        return f"{m:.0f} MB"
    text = fmt_time(m)
    if w.metric is not None:
        unit, amount = w.metric
        text += f" ({amount / m:.1f} {unit})"
    return text


def summarise(w: Workload, cells: Dict[str, Cell]) -> Dict[str, Any]:
    peers = {f: cells[f].median for f in PEERS if f in cells and cells[f].median is not None}
    best = min(peers, key=lambda f: peers[f]) if peers else None
    ratios = {}
    for f in (BP_CPU, BP_GPU):
        if best is not None and f in cells and cells[f].median is not None:
            ratios[f] = cells[f].median / peers[best]
    return {"best_peer": best, "ratio_to_best_peer": ratios}


def render_table(env: Env, wls: List[Workload], results: Dict[str, Dict[str, Cell]], summaries: Dict[str, Dict[str, Any]]) -> str:
    cols = list(env.frameworks)
    ratio_cols = [f for f in (BP_CPU, BP_GPU) if f in cols]
    head = ["workload"] + cols + ["best peer"] + [("cpu" if f == BP_CPU else "gpu") + " / best" for f in ratio_cols]
    rows = [head]
    for w in wls:
        cells = results[w.name]
        s = summaries[w.name]
        row = [w.name] + [fmt_cell(w, cells.get(f)) if f in w.frameworks else "-" for f in cols]
        row.append(s["best_peer"] or "-")
        row += [f"{s['ratio_to_best_peer'][f]:.2f}x" if f in s["ratio_to_best_peer"] else "-" for f in ratio_cols]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(v.ljust(widths[j]) if j == 0 else v.rjust(widths[j]) for j, v in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


def plot(env: Env, wls: List[Workload], results: Dict[str, Dict[str, Cell]], path: str, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("--plot needs matplotlib, which is not installed (pip install matplotlib); skipping the plot", file=sys.stderr)
        return False
    names = [w.name for w in wls]
    cols = list(env.frameworks)
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(names) + 2), 4.8))
    width = 0.8 / max(1, len(cols))
    for j, f in enumerate(cols):
        xs, ys, labels = [], [], []
        for i, w in enumerate(wls):
            meds = {g: c.median for g, c in results[w.name].items() if c.median is not None}
            if f in meds:
                # relative to the fastest (smallest) framework of the workload, so one axis fits
                # microseconds, seconds and megabytes alike; the bar's label keeps the absolute value
                xs.append(i + (j - (len(cols) - 1) / 2) * width)
                ys.append(meds[f] / min(meds.values()))
                labels.append(f"{meds[f]:.0f} MB" if w.unit == "MB" else fmt_time(meds[f]))
        bars = ax.bar(xs, ys, width, label=f)
        ax.bar_label(bars, labels=labels, rotation=90, fontsize=6, padding=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0.9, ax.get_ylim()[1] * 2)  # room for the labels above the tallest bar
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("median / best median (lower is better)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------ entry point


def _parse_list(text: Optional[str]) -> List[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def run(args: Any) -> int:
    """``backprop-rs bench`` with parsed arguments (see ``__main__``): returns the exit code."""
    import numpy as np

    import backprop_rs as bp

    quick = bool(args.quick)
    plan = QUICK if quick else FULL
    all_w = workloads(quick)
    names = [w.name for w in all_w]
    if getattr(args, "list", False):
        for w in all_w:
            print(f"{w.name:20s} {w.description}")
        return 0
    only = _parse_list(args.only)
    unknown = [n for n in only if n not in names]
    if unknown:
        print(f"unknown workload(s): {', '.join(unknown)}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    wls = [w for w in all_w if not only or w.name in only]
    devices = _parse_list(args.device) or ["cpu"]
    bad = [d for d in devices if d not in ("cpu", "gpu")]
    if bad:
        print(f"unknown device(s): {', '.join(bad)} (use cpu, gpu or cpu,gpu)", file=sys.stderr)
        return 2

    torch = _import_torch()
    fws: List[str] = []
    gpu_note = None
    if "cpu" in devices:
        fws.append(BP_CPU)
    if "gpu" in devices:
        ok, gpu_note = gpu_status(bp)
        if ok:
            fws.append(BP_GPU)
        else:
            gpu_note += "; skipping the backprop_rs-gpu column"
    fws.append(NUMPY)
    if torch is not None:
        fws.append(TORCH)
    env = Env(bp=bp, np=np, torch=torch, quick=quick, frameworks=fws, gpu_note=gpu_note)

    info = machine_info(env)
    mline = machine_line(info)
    vline = versions_line(info["versions"])
    print(f"backprop-rs bench: {'QUICK run (tiny sizes and repeats: a smoke test, not a measurement)' if quick else 'full run'}")
    print(f"machine: {mline}")
    print(f"versions: {vline}")
    if "load_avg_start" in info:
        print("load average at start: " + " ".join(f"{x:.2f}" for x in info["load_avg_start"]))
    if gpu_note:
        print(f"gpu: {gpu_note}")
    if torch is None:
        print("PyTorch is not installed: no torch column (pip install torch to compare)")
    sys.stdout.flush()

    try:
        from tqdm.auto import tqdm

        # leave=False: the bar goes away and the table stays; None disables it off a terminal
        progress = tqdm(total=len(wls), desc="bench", unit="workload", leave=False, dynamic_ncols=True,
                        disable=True if quick else None, file=sys.stderr)
    except ImportError:  # tqdm is a dependency, but the bench must not need it
        progress = None

    results: Dict[str, Dict[str, Cell]] = {}
    extras: Dict[str, Dict[str, Any]] = {}
    started = time.time()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    try:
        for w in wls:
            if progress is not None:
                progress.set_description(w.name, refresh=False)
            if w.kind == "timed":
                results[w.name] = run_timed(env, w, plan, progress)
                extras[w.name] = {}
            else:
                results[w.name], extras[w.name] = run_subprocess_workload(env, w, plan, progress)
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    wall = time.perf_counter() - t0
    cpu1 = _cpu_seconds()
    try:
        info["load_avg_end"] = list(os.getloadavg())
    except OSError:
        pass
    if cpu0 is not None and cpu1 is not None:
        others = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
        info["other_processes_cpu_s"] = others
        info["other_processes_cpu_share"] = others / (wall * (os.cpu_count() or 1))

    summaries = {w.name: summarise(w, results[w.name]) for w in wls}
    print()
    print(render_table(env, wls, results, summaries))
    print()
    print("medians of interleaved rounds; 'x / best' = backprop_rs median / best peer median "
          "(below 1.00x backprop_rs is faster, or smaller for peak_rss_mlp);")
    print("sgemm GFLOP/s = 2n^3/t; GB/s counts bytes read + written once (add/mul 12n, unary 8n, sum 4n, softmax 8n)")
    if quick:
        print("--quick shrinks the sizes (sgemm n/8, 1M-element vectors, softmax 256x1000, 20 RSS steps; the JSON "
              "records them under params) and the repeats: these numbers are not comparable with a full run")
    for w in wls:
        if "python_startup_s" in extras[w.name]:
            print(f"{w.name}: includes the interpreter's start-up (python -c pass: {fmt_time(extras[w.name]['python_startup_s'])})")
        for f, c in results[w.name].items():
            if c.error is not None:
                print(f"ERROR {w.name} [{f}]: {c.error}")
            elif c.check not in (None, "ok"):
                print(f"WARNING {w.name} [{f}]: result {c.check}")
    end = [f"wall time {wall:.1f} s"]
    if "other_processes_cpu_s" in info:
        end.append(f"other processes used {info['other_processes_cpu_s']:.1f} CPU-s "
                   f"({100 * info['other_processes_cpu_share']:.1f}% of the machine) meanwhile")
    if "load_avg_end" in info:
        end.append("load average at end: " + " ".join(f"{x:.2f}" for x in info["load_avg_end"]))
    print("; ".join(end))

    if args.json:
        doc = {
            "schema": 1,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_s": wall,
            "machine": mline,
            "machine_info": {k: v for k, v in info.items() if k != "versions"},
            "versions": info["versions"],
            "config": {"quick": quick, "devices": devices, "only": only, "plan": plan.__dict__},
            "frameworks": fws,
            "gpu_note": gpu_note,
            "workloads": {},
        }
        for w in wls:
            entry: Dict[str, Any] = {"description": w.description, "params": w.params, "kind": w.kind, "unit": w.unit,
                                     "metric_unit": w.metric[0] if w.metric else None, **summaries[w.name], **extras[w.name],
                                     "results": {}}
            for f, c in results[w.name].items():
                r: Dict[str, Any] = {"median": c.median, "samples": c.samples, "inner": c.inner, "error": c.error, "check": c.check}
                if w.metric is not None and c.median:
                    r["metric"] = w.metric[1] / c.median
                if c.details:
                    r["details"] = c.details
                entry["results"][f] = r
            doc["workloads"][w.name] = entry
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"results written to {os.path.abspath(args.json)}")
    if args.plot:
        if plot(env, wls, results, args.plot, f"backprop-rs bench ({'quick' if quick else 'full'} run)\n{mline}\n{vline}"):
            print(f"plot written to {os.path.abspath(args.plot)}")
    return 0
