"""The convolutional workloads of ``backprop-rs bench``: conv2d forward+backward on ResNet-like
shapes and a LeNet-5 training step, each with a hand-written NumPy peer.

NumPy has no convolution, so its peer is the im2col formulation a NumPy user would write: a
``sliding_window_view`` gathered into a column matrix and one BLAS matmul, with the backward as two
more matmuls and a col2im that adds the ``R*S`` kernel taps back as strided slices. Besides being
the baseline when PyTorch is absent, it is the reference the result check compares with, so a
broken conv kernel shows up here before its time does.
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

from .bench import NUMPY, TORCH, Env, NumpyMLP, Runner, Workload, _bp_device, _rng, _wrap_bp, load_model, numpy_step_runner, step_batches, train_step_runner

# (name, batch, in channels, out channels, kernel, stride, padding, input size): the shape classes
# of a ResNet-50 at batch 8: the 7x7/2 stem, 3x3 convs at each stage's width, and a 1x1 expansion
CONV_SHAPES: Tuple[Tuple[str, int, int, int, int, int, int, int], ...] = (
    ("conv_7x7s2_3to64_224px", 8, 3, 64, 7, 2, 3, 224),
    ("conv_3x3_64to64_56px", 8, 64, 64, 3, 1, 1, 56),
    ("conv_3x3_128to128_28px", 8, 128, 128, 3, 1, 1, 28),
    ("conv_3x3_256to256_14px", 8, 256, 256, 3, 1, 1, 14),
    ("conv_1x1_256to1024_14px", 8, 256, 1024, 1, 1, 0, 14),
)


def np_conv2d(np: Any, x: Any, w: Any, b: Optional[Any], stride: int, pad: int) -> Tuple[Any, Any]:
    """NCHW convolution by im2col; returns the output and the column matrix the backward reuses."""
    if pad:
        x = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k, c, r, s = w.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (r, s), axis=(2, 3))[:, :, ::stride, ::stride]
    n, _, oh, ow = win.shape[:4]
    cols = win.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * r * s)
    y = cols @ w.reshape(k, -1).T
    if b is not None:
        y += b
    return y.reshape(n, oh, ow, k).transpose(0, 3, 1, 2), cols


def np_conv2d_backward(np: Any, gy: Any, cols: Any, x_shape: Sequence[int], w: Any, stride: int, pad: int,
                       need_input: bool = True) -> Tuple[Optional[Any], Any, Any]:
    """Gradients of ``np_conv2d`` for the input (unless not needed), the weight and the bias."""
    n, k, oh, ow = gy.shape
    _, c, r, s = w.shape
    g2 = gy.transpose(0, 2, 3, 1).reshape(-1, k)
    gw = (g2.T @ cols).reshape(w.shape)
    gb = g2.sum(axis=0)
    if not need_input:
        return None, gw, gb
    gcols = (g2 @ w.reshape(k, -1)).reshape(n, oh, ow, c, r, s)
    h, wd = x_shape[2] + 2 * pad, x_shape[3] + 2 * pad
    gx = np.zeros((n, c, h, wd), dtype=gy.dtype)
    for i in range(r):  # col2im: every kernel tap adds its slice of the column gradient back
        for j in range(s):
            gx[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return gx[:, :, pad:h - pad, pad:wd - pad], gw, gb


def _np_max_pool2(np: Any, x: Any) -> Tuple[Any, Any]:
    """2x2/2 max-pool and the mask of the maxima (ties only happen among ReLU zeros, whose
    gradient the ReLU's backward drops anyway)."""
    n, c, h, w = x.shape
    v = x.reshape(n, c, h // 2, 2, w // 2, 2)
    m = v.max(axis=(3, 5))
    return m, v == m[:, :, :, None, :, None]


def _np_max_pool2_backward(g: Any, mask: Any) -> Any:
    n, c, h2, _, w2, _ = mask.shape
    return (mask * g[:, :, :, None, :, None]).reshape(n, c, 2 * h2, 2 * w2)


class NumpyLeNet(NumpyMLP):
    """LeNet-5 on 1x28x28 inputs (conv 5x5 'same' 6 -> ReLU -> max-pool 2 -> conv 5x5 16 -> ReLU ->
    max-pool 2 -> fc 120 -> fc 84 -> fc 10), forward and backward by hand in NumPy float32; the
    optimiser step (SGD, PyTorch's momentum rule) is NumpyMLP's. Parameters are
    ``[conv1.w, conv1.b, conv2.w, conv2.b, fc1.W, fc1.b, ...]`` in PyTorch's layouts."""

    SHAPES = ((6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84))

    @staticmethod
    def init_params(rng: Any, sizes: Sequence[Any] = SHAPES) -> List[Any]:
        """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
        import numpy as np

        out = []
        for shape in sizes:
            bound = 1.0 / math.sqrt(math.prod(shape[1:]))
            out.append(rng.uniform(-bound, bound, shape).astype(np.float32))
            out.append(rng.uniform(-bound, bound, shape[0]).astype(np.float32))
        return out

    def loss_and_grads(self, x: Any, y: Any) -> Tuple[float, List[Any]]:
        import numpy as np

        w1, b1, w2, b2, w3, b3, w4, b4, w5, b5 = self.params
        n = x.shape[0]
        rows = np.arange(n)
        c1, cols1 = np_conv2d(np, x, w1, b1, 1, 2)
        p1, m1 = _np_max_pool2(np, np.maximum(c1, 0))
        c2, cols2 = np_conv2d(np, p1, w2, b2, 1, 0)
        p2, m2 = _np_max_pool2(np, np.maximum(c2, 0))
        f = p2.reshape(n, -1)
        h3 = f @ w3.T + b3
        a3 = np.maximum(h3, 0)
        h4 = a3 @ w4.T + b4
        a4 = np.maximum(h4, 0)
        z = a4 @ w5.T + b5
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.log(s).mean() - z[rows, y].mean())
        dz = e / s
        dz[rows, y] -= 1
        dz /= n
        g5, gb5 = dz.T @ a4, dz.sum(axis=0)
        d4 = (dz @ w5) * (h4 > 0)
        g4, gb4 = d4.T @ a3, d4.sum(axis=0)
        d3 = (d4 @ w4) * (h3 > 0)
        g3, gb3 = d3.T @ f, d3.sum(axis=0)
        dc2 = _np_max_pool2_backward((d3 @ w3).reshape(p2.shape), m2) * (c2 > 0)
        dp1, g2, gb2 = np_conv2d_backward(np, dc2, cols2, p1.shape, w2, 1, 0)
        dc1 = _np_max_pool2_backward(dp1, m1) * (c1 > 0)
        _, g1, gb1 = np_conv2d_backward(np, dc1, cols1, x.shape, w1, 1, 2, need_input=False)
        return loss, [g1, gb1, g2, gb2, g3, gb3, g4, gb4, g5, gb5]


def _lenet_layers(nn: Any) -> List[Any]:
    """The LeNet-5 layers in any framework with PyTorch's ``nn`` names (backprop_rs, PyTorch)."""
    return [
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ]


def bp_lenet(bp: Any, params: Sequence[Any], device: str = "cpu") -> Any:
    """The backprop_rs LeNet-5 of the bench, loaded with ``params`` (NumpyLeNet's layout)."""
    return load_model(bp, _lenet_layers, params, device)


def _lenet_step(batch: int):
    """A LeNet-5 training step on random 1x28x28 batches (a pool cycled through, see
    ``step_batches``): forward, cross-entropy, backward, SGD (momentum 0.9), zero_grad; the first
    step's loss is the result check."""

    def make(env: Env, fw: str) -> Runner:
        rng = _rng(env)
        params = NumpyLeNet.init_params(rng)
        x, y = step_batches(rng, batch, (1, 28, 28), 10)
        if fw == NUMPY:
            return numpy_step_runner(NumpyLeNet(params), x, y)
        return train_step_runner(env, fw, _lenet_layers, params, x, y)

    return make


def _conv_fwd_bwd(n: int, c: int, k: int, r: int, stride: int, pad: int, hw: int):
    """conv2d forward and backward (input, weight and bias gradients) against a fixed random
    upstream gradient; the weight gradient is the result check."""

    def make(env: Env, fw: str) -> Runner:
        np = env.np
        rng = _rng(env)
        x = rng.standard_normal((n, c, hw, hw), dtype=np.float32)
        w = (rng.standard_normal((k, c, r, r), dtype=np.float32) / np.float32(math.sqrt(c * r * r))).astype(np.float32)
        b = rng.standard_normal(k, dtype=np.float32)
        oh = (hw + 2 * pad - r) // stride + 1
        g = rng.standard_normal((n, k, oh, oh), dtype=np.float32)
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
        dev = _bp_device(fw)
        bx, bw, bb = (bp.tensor(a).to(dev).requires_grad_() for a in (x, w, b))
        bg = bp.tensor(g).to(dev)

        def fwd_bwd_bp() -> Any:
            bx.grad = bw.grad = bb.grad = None
            bp.nn.functional.conv2d(bx, bw, bb, stride=stride, padding=pad).backward(bg)
            return bw.grad

        return _wrap_bp(env, fw, fwd_bwd_bp)

    return make


def conv_workloads(quick: bool) -> List[Workload]:
    out: List[Workload] = []
    for name, n, c, k, r, stride, pad, hw in CONV_SHAPES:
        if quick:  # same names, toy sizes: CI proves the paths run
            n, c, k, hw = 2, max(1, c // 8), max(1, k // 16), max(8, hw // 8)
        oh = (hw + 2 * pad - r) // stride + 1
        flops = 3 * 2.0 * n * k * c * r * r * oh * oh  # forward, input gradient, weight gradient
        desc = f"conv2d fwd+bwd, x [{n},{c},{hw},{hw}], w [{k},{c},{r},{r}], stride {stride}, padding {pad}"
        # f32 sums over n*oh*oh products in different orders: relative agreement to ~1e-4
        out.append(Workload(name, desc, {"n": n, "c": c, "k": k, "kernel": r, "stride": stride, "padding": pad, "hw": hw},
                            _conv_fwd_bwd(n, c, k, r, stride, pad, hw), metric=("GFLOP/s", flops / 1e9),
                            tol=(1e-3, 1e-3 * math.sqrt(n * oh * oh))))
    b = 8 if quick else 64
    out.append(Workload("lenet_step_b64", f"LeNet-5 training step on 1x28x28, batch {b}", {"batch": b}, _lenet_step(b),
                        tol=(1e-4, 1e-5)))
    return out


__all__ = ["NumpyLeNet", "np_conv2d", "np_conv2d_backward", "bp_lenet", "conv_workloads"]
