"""The networks the training workloads train, once for every framework.

NumPy has no autograd, so its MLP and LeNet-5 are written by hand here (forward, backward and
PyTorch's SGD-with-momentum rule, float32 throughout), with NumPy's convolution as the im2col a
NumPy user writes. backprop_rs and PyTorch share PyTorch's ``nn`` names, so one layer list builds
the model in both, and ``load_model`` gives all three frameworks the same weights.

This module imports only the standard library (NumPy inside functions): the fresh process of the
``peak_rss_mlp`` workload imports it for NumPy's and PyTorch's models without importing
backprop_rs, whose memory would otherwise count against them (see ``_child.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

MLP_SIZES = (784, 256, 128, 10)
MLP_LR = 0.01
MLP_MOMENTUM = 0.9


# ------------------------------------------------------------------ the MLP


class NumpyMLP:
    """A ReLU MLP trained with a hand-written forward, cross-entropy, backward and SGD-with-momentum
    step in NumPy float32: the NumPy peer of the ``mlp_step_*`` workloads (NumPy has no autograd).

    Parameters are ``[W1, b1, W2, b2, ...]`` with ``W`` of shape ``[out, in]`` as in ``nn.Linear``,
    so the same arrays can be loaded into a backprop_rs or PyTorch model. The momentum rule is
    PyTorch's: ``buf = grad`` on the first step, then ``buf = momentum * buf + grad``;
    ``p -= lr * buf``. tests/test_bench.py checks its gradients against backprop_rs's.

    >>> import numpy as np
    >>> net = NumpyMLP(NumpyMLP.init_params(np.random.default_rng(0), (4, 3, 2)))
    >>> x, y = np.ones((5, 4), dtype=np.float32), np.zeros(5, dtype=np.int64)
    >>> net.step(x, y) > net.step(x, y)  # the loss falls
    True
    """

    def __init__(self, params: Sequence[Any], lr: float = MLP_LR, momentum: float = MLP_MOMENTUM) -> None:
        import numpy as np

        self.params = [np.array(p, dtype=np.float32) for p in params]
        self.bufs: list[Any] | None = None
        self.lr = np.float32(lr)
        self.momentum = np.float32(momentum)

    @staticmethod
    def init_params(rng: Any, sizes: Sequence[int] = MLP_SIZES) -> list[Any]:
        """PyTorch's default ``nn.Linear`` init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
        import numpy as np

        out = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(fan_in)
            out.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
            out.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
        return out

    def loss_and_grads(self, x: Any, y: Any) -> tuple[float, list[Any]]:
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
        grads: list[Any] = [None] * len(self.params)
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


def mlp_layers(nn: Any) -> list[Any]:
    """The MLP's layers in any framework with PyTorch's ``nn`` names (backprop_rs, PyTorch)."""
    layers: list[Any] = []
    for i, (fan_in, fan_out) in enumerate(zip(MLP_SIZES[:-1], MLP_SIZES[1:])):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(fan_in, fan_out))
    return layers


def load_model(fw_module: Any, layers: Callable[[Any], list[Any]], params: Sequence[Any], device: str = "cpu") -> Any:
    """``nn.Sequential(*layers(fw_module.nn))`` of backprop_rs or PyTorch, loaded with the NumPy
    ``params`` (in ``parameters()`` order), on ``device``."""
    model = fw_module.nn.Sequential(*layers(fw_module.nn))
    with fw_module.no_grad():
        for p, a in zip(model.parameters(), params):
            p.copy_(fw_module.tensor(a))
    return model.to(device)


def bp_mlp(bp: Any, params: Sequence[Any], device: str = "cpu") -> Any:
    """The backprop_rs model of the MLP workloads, loaded with ``params`` (NumpyMLP's layout)."""
    return load_model(bp, mlp_layers, params, device)


# ------------------------------------------------------------------ NumPy's convolution (im2col)


def np_conv2d(np: Any, x: Any, w: Any, b: Any | None, stride: int, pad: int) -> tuple[Any, Any]:
    """NCHW convolution by im2col; returns the output and the column matrix the backward reuses.

    NumPy has no convolution: this is the formulation a NumPy user writes, a
    ``sliding_window_view`` gathered into a column matrix and one BLAS matmul.
    """
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
                       need_input: bool = True) -> tuple[Any | None, Any, Any]:
    """Gradients of ``np_conv2d`` for the input (unless not needed), the weight and the bias: two
    matmuls and a col2im that adds the ``R*S`` kernel taps back as strided slices."""
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
            hs, ws = slice(i, i + stride * (oh - 1) + 1, stride), slice(j, j + stride * (ow - 1) + 1, stride)
            gx[:, :, hs, ws] += gcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return gx[:, :, pad:h - pad, pad:wd - pad], gw, gb


def _np_max_pool2(np: Any, x: Any) -> tuple[Any, Any]:
    """2x2/2 max-pool and the mask of the maxima (ties only happen among ReLU zeros, whose
    gradient the ReLU's backward drops anyway)."""
    n, c, h, w = x.shape
    v = x.reshape(n, c, h // 2, 2, w // 2, 2)
    m = v.max(axis=(3, 5))
    return m, v == m[:, :, :, None, :, None]


def _np_max_pool2_backward(g: Any, mask: Any) -> Any:
    n, c, h2, _, w2, _ = mask.shape
    return (mask * g[:, :, :, None, :, None]).reshape(n, c, 2 * h2, 2 * w2)


# ------------------------------------------------------------------ LeNet-5


class NumpyLeNet(NumpyMLP):
    """LeNet-5 on 1x28x28 inputs (conv 5x5 'same' 6 -> ReLU -> max-pool 2 -> conv 5x5 16 -> ReLU ->
    max-pool 2 -> fc 120 -> fc 84 -> fc 10), forward and backward by hand in NumPy float32; the
    optimiser step (SGD, PyTorch's momentum rule) is NumpyMLP's. Parameters are
    ``[conv1.w, conv1.b, conv2.w, conv2.b, fc1.W, fc1.b, ...]`` in PyTorch's layouts."""

    SHAPES = ((6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120), (10, 84))

    @staticmethod
    def init_params(rng: Any, sizes: Sequence[Any] = SHAPES) -> list[Any]:
        """PyTorch's default conv/linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b."""
        import numpy as np

        out = []
        for shape in sizes:
            bound = 1.0 / math.sqrt(math.prod(shape[1:]))
            out.append(rng.uniform(-bound, bound, shape).astype(np.float32))
            out.append(rng.uniform(-bound, bound, shape[0]).astype(np.float32))
        return out

    def loss_and_grads(self, x: Any, y: Any) -> tuple[float, list[Any]]:
        """Mean cross-entropy of LeNet-5's logits against labels ``y``, and d loss / d params."""
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


def lenet_layers(nn: Any) -> list[Any]:
    """The LeNet-5 layers in any framework with PyTorch's ``nn`` names (backprop_rs, PyTorch)."""
    return [
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
    ]


def bp_lenet(bp: Any, params: Sequence[Any], device: str = "cpu") -> Any:
    """The backprop_rs LeNet-5 of the bench, loaded with ``params`` (NumpyLeNet's layout)."""
    return load_model(bp, lenet_layers, params, device)
