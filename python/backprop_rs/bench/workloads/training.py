"""Training-step workloads and the step runners they share with the LeNet step (``conv.py``).

A step is forward, cross-entropy, backward, SGD (momentum 0.9) step and zero_grad, on the next
batch of a pool of random examples. All frameworks start from the same weights (``nets``), so
the first step's losses must agree: that is the result check.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from ..frameworks import NUMPY, TORCH, Env, bp_device, rng
from ..harness import Runner, Workload, wrap_bp
from ..nets import MLP_LR, MLP_MOMENTUM, MLP_SIZES, NumpyMLP, load_model, mlp_layers


def step_batches(gen: Any, batch: int, shape: Sequence[int], classes: int) -> tuple[Any, Any]:
    """A pool of random batches ``[k, batch, *shape]`` and labels ``[k, batch]`` that the training
    workloads cycle through, ``k * batch`` >= 1024 examples. Stepping on ONE batch over and over
    (thousands of times per workload) drives its loss to zero within a few dozen steps; the
    gradients then underflow to denormals, whose arithmetic is ~100x slower on x86 (measured here:
    the b1 backward went from 56 to 150 us after 50 steps on one example), so the bench would time
    the denormal penalty instead of the step. With a pool, every framework sees the same data."""
    import numpy as np

    k = max(1, -(-1024 // batch))
    x = gen.standard_normal((k, batch, *shape), dtype=np.float32)
    y = gen.integers(0, classes, (k, batch), dtype=np.int64)
    return x, y


def train_step_runner(env: Env, fw: str, layers: Callable[[Any], list[Any]], params: Sequence[Any], x: Any,
                      y: Any) -> Runner:
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
        dev = bp_device(fw)
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

    return Runner(step) if fw == TORCH else wrap_bp(env, fw, step)


def numpy_step_runner(net: Any, x: Any, y: Any) -> Runner:
    """The hand-written NumPy step (``NumpyMLP`` or a subclass) over the same pool of batches."""
    order = itertools.cycle(range(len(x)))

    def step() -> Any:
        i = next(order)
        return net.step(x[i], y[i])

    return Runner(step)


def _mlp_step(batch: int) -> Callable[[Env, str], Runner]:
    """A training step of a 784-256-128-10 ReLU MLP on random batches (a pool, see
    ``step_batches``)."""

    def make(env: Env, fw: str) -> Runner:
        gen = rng(env)
        params = NumpyMLP.init_params(gen)
        x, y = step_batches(gen, batch, (MLP_SIZES[0],), MLP_SIZES[-1])
        if fw == NUMPY:
            return numpy_step_runner(NumpyMLP(params), x, y)
        return train_step_runner(env, fw, mlp_layers, params, x, y)

    return make


def mlp_workloads(quick: bool) -> list[Workload]:
    """The MLP training step at batch 1, 64 and 512 (the same sizes in quick mode: they are small)."""
    del quick  # the MLP steps take milliseconds at every batch size
    return [Workload(f"mlp_step_b{b}", f"MLP 784-256-128-10 training step, batch {b}", {"batch": b}, _mlp_step(b),
                     tol=(1e-4, 1e-5)) for b in (1, 64, 512)]
