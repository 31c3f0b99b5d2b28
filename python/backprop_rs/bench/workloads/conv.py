"""The convolutional workloads: conv2d forward+backward on the shape classes of a ResNet-50 and
a LeNet-5 training step. NumPy's peer is the im2col a NumPy user writes (``nets.np_conv2d``);
besides being the baseline when PyTorch is absent, it is the reference the result check compares
with, so a broken conv kernel shows up here before its time does."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..frameworks import NUMPY, TORCH, Env, bp_device, rng
from ..harness import Runner, Workload, wrap_bp
from ..nets import NumpyLeNet, lenet_layers, np_conv2d, np_conv2d_backward
from .training import numpy_step_runner, step_batches, train_step_runner

# (name, batch, in channels, out channels, kernel, stride, padding, input size): the shape classes
# of a ResNet-50 at batch 8: the 7x7/2 stem, 3x3 convs at each stage's width, and a 1x1 expansion
CONV_SHAPES: tuple[tuple[str, int, int, int, int, int, int, int], ...] = (
    ("conv_7x7s2_3to64_224px", 8, 3, 64, 7, 2, 3, 224),
    ("conv_3x3_64to64_56px", 8, 64, 64, 3, 1, 1, 56),
    ("conv_3x3_128to128_28px", 8, 128, 128, 3, 1, 1, 28),
    ("conv_3x3_256to256_14px", 8, 256, 256, 3, 1, 1, 14),
    ("conv_1x1_256to1024_14px", 8, 256, 1024, 1, 1, 0, 14),
)


def _lenet_step(batch: int) -> Callable[[Env, str], Runner]:
    """A LeNet-5 training step on random 1x28x28 batches (a pool cycled through, see
    ``step_batches``): forward, cross-entropy, backward, SGD (momentum 0.9), zero_grad; the first
    step's loss is the result check."""

    def make(env: Env, fw: str) -> Runner:
        gen = rng(env)
        params = NumpyLeNet.init_params(gen)
        x, y = step_batches(gen, batch, (1, 28, 28), 10)
        if fw == NUMPY:
            return numpy_step_runner(NumpyLeNet(params), x, y)
        return train_step_runner(env, fw, lenet_layers, params, x, y)

    return make


def _conv_fwd_bwd(n: int, c: int, k: int, r: int, stride: int, pad: int, hw: int) -> Callable[[Env, str], Runner]:
    """conv2d forward and backward (input, weight and bias gradients) against a fixed random
    upstream gradient; the weight gradient is the result check."""

    def make(env: Env, fw: str) -> Runner:
        np = env.np
        gen = rng(env)
        x = gen.standard_normal((n, c, hw, hw), dtype=np.float32)
        w = (gen.standard_normal((k, c, r, r), dtype=np.float32) / np.float32(math.sqrt(c * r * r))).astype(np.float32)
        b = gen.standard_normal(k, dtype=np.float32)
        oh = (hw + 2 * pad - r) // stride + 1
        g = gen.standard_normal((n, k, oh, oh), dtype=np.float32)
        if fw == NUMPY:
            def fwd_bwd_np() -> Any:
                _, cols = np_conv2d(np, x, w, b, stride, pad)
                _, gw, _ = np_conv2d_backward(np, g, cols, x.shape, w, stride, pad)
                return gw

            return Runner(fwd_bwd_np)
        if fw == TORCH:
            t = env.torch
            tx, tw, tb = (t.tensor(a, requires_grad=True) for a in (x, w, b))
            tg = t.tensor(g)

            def fwd_bwd_torch() -> Any:
                tx.grad = tw.grad = tb.grad = None
                t.nn.functional.conv2d(tx, tw, tb, stride=stride, padding=pad).backward(tg)
                return tw.grad

            return Runner(fwd_bwd_torch)
        bp = env.bp
        dev = bp_device(fw)
        bx, bw, bb = (bp.tensor(a).to(dev).requires_grad_() for a in (x, w, b))
        bg = bp.tensor(g).to(dev)

        def fwd_bwd_bp() -> Any:
            bx.grad = bw.grad = bb.grad = None
            bp.nn.functional.conv2d(bx, bw, bb, stride=stride, padding=pad).backward(bg)
            return bw.grad

        return wrap_bp(env, fw, fwd_bwd_bp)

    return make


def conv_workloads(quick: bool) -> list[Workload]:
    """The conv2d fwd+bwd rows; ``quick`` keeps the names with toy sizes."""
    out: list[Workload] = []
    for name, n0, c0, k0, r, stride, pad, hw0 in CONV_SHAPES:
        n, c, k, hw = n0, c0, k0, hw0
        if quick:  # same names, toy sizes: CI proves the paths run
            n, c, k, hw = 2, max(1, c0 // 8), max(1, k0 // 16), max(8, hw0 // 8)
        oh = (hw + 2 * pad - r) // stride + 1
        flops = 3 * 2.0 * n * k * c * r * r * oh * oh  # forward, input gradient, weight gradient
        desc = f"conv2d fwd+bwd, x [{n},{c},{hw},{hw}], w [{k},{c},{r},{r}], stride {stride}, padding {pad}"
        params = {"n": n, "c": c, "k": k, "kernel": r, "stride": stride, "padding": pad, "hw": hw}
        # f32 sums over n*oh*oh products in different orders: relative agreement to ~1e-4
        out.append(Workload(name, desc, params, _conv_fwd_bwd(n, c, k, r, stride, pad, hw),
                            metric=("GFLOP/s", flops / 1e9), tol=(1e-3, 1e-3 * math.sqrt(n * oh * oh))))
    return out


def lenet_workloads(quick: bool) -> list[Workload]:
    """The LeNet-5 training step (batch 64; 8 in quick mode)."""
    b = 8 if quick else 64
    return [Workload("lenet_step_b64", f"LeNet-5 training step on 1x28x28, batch {b}", {"batch": b}, _lenet_step(b),
                     tol=(1e-4, 1e-5))]
