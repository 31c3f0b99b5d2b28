"""The sequence-model workloads: an LSTM training step, a pre-norm Transformer encoder block's
training step, and causal scaled-dot-product attention forward + backward.

They run for backprop_rs and PyTorch only: there is no NumPy column (a hand-written NumPy
backward of an LSTM or a Transformer block is not what a NumPy user runs). The result check still
has a reference: each workload's ``reference`` computes the first result in NumPy float64 (a
forward pass for the training steps, whose first loss is their result; the attention's gradients
by hand for ``sdpa_*``), so a wrong kernel shows up even where PyTorch is not installed.

Every framework starts from the same weights: NumPy arrays made once per workload from the
parameter names and shapes (the names are PyTorch's, which backprop_rs shares) and copied into
each framework's module by name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

from ..frameworks import BP_CPU, BP_GPU, TORCH, Env, bp_device, rng
from ..harness import Runner, Workload, wrap_bp
from ..nets import MLP_LR, MLP_MOMENTUM

SEQ_FRAMEWORKS = (BP_CPU, BP_GPU, TORCH)
POOL = 8  # batches the training steps cycle through (see ``_pool``)
CLASSES = 10  # the LSTM head's classes


def _pool(env: Env, batch: int, shape: tuple[int, ...]) -> Any:
    """``POOL`` random batches ``[POOL, batch, *shape]``. Like ``training.step_batches``, the steps
    cycle through a pool rather than repeat one batch (a loss driven to zero underflows the
    gradients to slow denormals); a full-size step takes tens of milliseconds or more, so a few
    batches are plenty, and the pool stays a few MB."""
    return rng(env, 1).standard_normal((POOL, batch, *shape), dtype=env.np.float32)


def _uniform(gen: Any, bound: float, shape: tuple[int, ...]) -> Any:
    import numpy as np

    return gen.uniform(-bound, bound, shape).astype(np.float32)


def _module_with(mod: Any, module: Any, params: dict[str, Any], device: str | None) -> Any:
    """``module`` (of backprop_rs or PyTorch) loaded with the NumPy ``params`` by parameter name,
    then moved to ``device`` (None: left where it is, PyTorch's CPU)."""
    names = [n for n, _ in module.named_parameters()]
    if sorted(names) != sorted(params):
        raise RuntimeError(f"parameter names {sorted(names)} differ from the bench's {sorted(params)}")
    with mod.no_grad():
        for n, p in module.named_parameters():
            if tuple(p.shape) != params[n].shape:
                raise RuntimeError(f"parameter {n} has shape {tuple(p.shape)}, the bench's {params[n].shape}")
            p.copy_(mod.tensor(params[n]))
    return module if device is None else module.to(device)


def _framework(env: Env, fw: str) -> tuple[Any, str | None]:
    """(the framework's module, the device string its tensors go to; None for PyTorch's CPU)."""
    if fw == TORCH:
        return env.torch, None
    return env.bp, bp_device(fw)


def _on(mod: Any, a: Any, device: str | None) -> Any:
    t = mod.tensor(a)
    return t if device is None else t.to(device)


def _step_runner(env: Env, fw: str, step: Callable[[], Any]) -> Runner:
    return Runner(step) if fw == TORCH else wrap_bp(env, fw, step)


def _np_sigmoid(np: Any, a: Any) -> Any:
    return 1.0 / (1.0 + np.exp(-a))


def _np_log_softmax_ce(np: Any, z: Any, y: Any) -> float:
    z = z - z.max(axis=1, keepdims=True)
    return float(np.log(np.exp(z).sum(axis=1)).mean() - z[np.arange(len(y)), y].mean())


# ------------------------------------------------------------------ LSTM


def _lstm_params(env: Env, inp: int, hidden: int) -> dict[str, Any]:
    """PyTorch's default init: U(-1/sqrt(hidden), 1/sqrt(hidden)) for the LSTM; nn.Linear's for
    the head."""
    gen = rng(env)
    k = 1.0 / math.sqrt(hidden)
    return {
        "0.weight_ih_l0": _uniform(gen, k, (4 * hidden, inp)),
        "0.weight_hh_l0": _uniform(gen, k, (4 * hidden, hidden)),
        "0.bias_ih_l0": _uniform(gen, k, (4 * hidden,)),
        "0.bias_hh_l0": _uniform(gen, k, (4 * hidden,)),
        "1.weight": _uniform(gen, k, (CLASSES, hidden)),
        "1.bias": _uniform(gen, k, (CLASSES,)),
    }


def _lstm_labels(env: Env, batch: int) -> Any:
    return rng(env, 2).integers(0, CLASSES, (POOL, batch), dtype=env.np.int64)


def _lstm_step(batch: int, steps: int, inp: int, hidden: int) -> Callable[[Env, str], Runner]:
    """One training step of ``nn.LSTM(inp, hidden, batch_first=True)`` and a linear head on the
    last time step's output: forward, cross-entropy, backward, SGD (momentum 0.9), zero_grad;
    returns the loss (the first one is the result check)."""

    def make(env: Env, fw: str) -> Runner:
        mod, dev = _framework(env, fw)
        nn = mod.nn
        model = _module_with(mod, nn.ModuleList([nn.LSTM(inp, hidden, 1, batch_first=True), nn.Linear(hidden, CLASSES)]),
                             _lstm_params(env, inp, hidden), dev)
        lstm, head = model[0], model[1]
        xs, ys = _pool(env, batch, (steps, inp)), _lstm_labels(env, batch)
        batches = itertools.cycle([(_on(mod, x, dev), _on(mod, y, dev)) for x, y in zip(xs, ys)])
        opt = mod.optim.SGD(model.parameters(), lr=MLP_LR, momentum=MLP_MOMENTUM)
        loss_fn = nn.CrossEntropyLoss()

        def step() -> Any:
            x, y = next(batches)
            out, _ = lstm(x)
            loss = loss_fn(head(out[:, -1]), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        return _step_runner(env, fw, step)

    return make


def _lstm_reference(batch: int, steps: int, inp: int, hidden: int) -> Callable[[Env], Any]:
    """The first step's loss in NumPy float64: PyTorch's LSTM cell (gates i, f, g, o)."""

    def ref(env: Env) -> Any:
        np = env.np
        p = {k: v.astype(np.float64) for k, v in _lstm_params(env, inp, hidden).items()}
        x = _pool(env, batch, (steps, inp))[0].astype(np.float64)
        y = _lstm_labels(env, batch)[0]
        h = np.zeros((batch, hidden))
        c = np.zeros((batch, hidden))
        xw = x @ p["0.weight_ih_l0"].T + p["0.bias_ih_l0"] + p["0.bias_hh_l0"]
        for t in range(steps):
            g = xw[:, t] + h @ p["0.weight_hh_l0"].T
            i, f, gg, o = np.split(g, 4, axis=1)
            c = _np_sigmoid(np, f) * c + _np_sigmoid(np, i) * np.tanh(gg)
            h = _np_sigmoid(np, o) * np.tanh(c)
        return _np_log_softmax_ce(np, h @ p["1.weight"].T + p["1.bias"], y)

    return ref


# ------------------------------------------------------------------ Transformer encoder block


def _block_params(env: Env, d: int, ff: int) -> dict[str, Any]:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every weight and bias (random biases, not PyTorch's
    zeros, so the check sees them), LayerNorm weights 1 + U(-0.1, 0.1)."""
    gen = rng(env)
    kd, kf = 1.0 / math.sqrt(d), 1.0 / math.sqrt(ff)
    return {
        "self_attn.in_proj_weight": _uniform(gen, kd, (3 * d, d)),
        "self_attn.in_proj_bias": _uniform(gen, kd, (3 * d,)),
        "self_attn.out_proj.weight": _uniform(gen, kd, (d, d)),
        "self_attn.out_proj.bias": _uniform(gen, kd, (d,)),
        "linear1.weight": _uniform(gen, kd, (ff, d)),
        "linear1.bias": _uniform(gen, kd, (ff,)),
        "linear2.weight": _uniform(gen, kf, (d, ff)),
        "linear2.bias": _uniform(gen, kf, (d,)),
        "norm1.weight": 1 + _uniform(gen, 0.1, (d,)),
        "norm1.bias": _uniform(gen, 0.1, (d,)),
        "norm2.weight": 1 + _uniform(gen, 0.1, (d,)),
        "norm2.bias": _uniform(gen, 0.1, (d,)),
    }


def _block_step(batch: int, steps: int, d: int, heads: int, ff: int) -> Callable[[Env, str], Runner]:
    """One training step of a pre-norm ``nn.TransformerEncoderLayer`` (ReLU, no dropout) with a
    causal mask: forward, loss = mean of the output's squares, backward, SGD (momentum 0.9),
    zero_grad; returns the loss (the first one is the result check)."""

    def make(env: Env, fw: str) -> Runner:
        mod, dev = _framework(env, fw)
        nn = mod.nn
        layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, batch_first=True, norm_first=True)
        layer = _module_with(mod, layer, _block_params(env, d, ff), dev)
        mask = nn.Transformer.generate_square_subsequent_mask(steps)
        if dev is not None:
            mask = mask.to(dev)
        batches = itertools.cycle([_on(mod, x, dev) for x in _pool(env, batch, (steps, d))])
        opt = mod.optim.SGD(layer.parameters(), lr=MLP_LR, momentum=MLP_MOMENTUM)

        def step() -> Any:
            out = layer(next(batches), src_mask=mask, is_causal=True)
            loss = (out * out).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            return loss

        return _step_runner(env, fw, step)

    return make


def _np_layer_norm(np: Any, x: Any, w: Any, b: Any) -> Any:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * w + b


def _block_reference(batch: int, steps: int, d: int, heads: int, ff: int) -> Callable[[Env], Any]:
    """The first step's loss in NumPy float64: x + attn(norm1(x)), then + ff(norm2(.))."""

    def ref(env: Env) -> Any:
        np = env.np
        p = {k: v.astype(np.float64) for k, v in _block_params(env, d, ff).items()}
        x = _pool(env, batch, (steps, d))[0].astype(np.float64)
        a = _np_layer_norm(np, x, p["norm1.weight"], p["norm1.bias"])
        qkv = a @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
        hd = d // heads
        q, k, v = (t.reshape(batch, steps, heads, hd).transpose(0, 2, 1, 3) for t in np.split(qkv, 3, axis=-1))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd)
        s = np.where(np.tril(np.ones((steps, steps), dtype=bool)), s, -np.inf)
        e = np.exp(s - s.max(-1, keepdims=True))
        att = (e / e.sum(-1, keepdims=True)) @ v
        att = att.transpose(0, 2, 1, 3).reshape(batch, steps, d)
        x = x + att @ p["self_attn.out_proj.weight"].T + p["self_attn.out_proj.bias"]
        a = _np_layer_norm(np, x, p["norm2.weight"], p["norm2.bias"])
        hmid = np.maximum(a @ p["linear1.weight"].T + p["linear1.bias"], 0)
        x = x + hmid @ p["linear2.weight"].T + p["linear2.bias"]
        return float((x * x).mean())

    return ref


# ------------------------------------------------------------------ scaled dot-product attention


def _sdpa_inputs(env: Env, batch: int, heads: int, steps: int, dim: int) -> tuple[Any, Any, Any, Any]:
    """q, k, v and the upstream gradient, float32 ``[batch, heads, steps, dim]``."""
    gen = rng(env)
    shape = (batch, heads, steps, dim)
    return tuple(gen.standard_normal(shape, dtype=env.np.float32) for _ in range(4))  # type: ignore[return-value]


def _sdpa(batch: int, heads: int, steps: int, dim: int) -> Callable[[Env, str], Runner]:
    """``F.scaled_dot_product_attention(q, k, v, is_causal=True)`` forward and backward against a
    fixed random upstream gradient; returns the gradients of q, k and v (the result check)."""

    def make(env: Env, fw: str) -> Runner:
        mod, dev = _framework(env, fw)
        q, k, v, g = _sdpa_inputs(env, batch, heads, steps, dim)
        tq, tk, tv = (_on(mod, a, dev).requires_grad_() for a in (q, k, v))
        tg = _on(mod, g, dev)
        sdpa = mod.nn.functional.scaled_dot_product_attention

        def fwd_bwd() -> Any:
            tq.grad = tk.grad = tv.grad = None
            sdpa(tq, tk, tv, is_causal=True).backward(tg)
            return tq.grad, tk.grad, tv.grad

        return _step_runner(env, fw, fwd_bwd)

    return make


def _sdpa_reference(batch: int, heads: int, steps: int, dim: int) -> Callable[[Env], Any]:
    """The gradients of q, k and v in NumPy float64, by hand, in blocks of query rows (memory of
    one block's scores, not T x T): P = softmax(causal(q k^T / sqrt(dim))), o = P v;
    dv = P^T g, dP = g v^T, dS = P (dP - rowsum(dP P)), dq = dS k / sqrt(dim), dk = dS^T q / sqrt(dim)."""

    def ref(env: Env) -> Any:
        np = env.np
        q, k, v, g = (a.astype(np.float64) for a in _sdpa_inputs(env, batch, heads, steps, dim))
        sf = 1.0 / math.sqrt(dim)
        dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
        block = max(1, (1 << 22) // (batch * heads * steps))  # ~32 MB of float64 scores per block
        for r0 in range(0, steps, block):
            r1 = min(steps, r0 + block)
            s = q[:, :, r0:r1] @ k.transpose(0, 1, 3, 2) * sf
            s = np.where(np.arange(r0, r1)[:, None] >= np.arange(steps)[None, :], s, -np.inf)
            e = np.exp(s - s.max(-1, keepdims=True))
            pr = e / e.sum(-1, keepdims=True)
            gb = g[:, :, r0:r1]
            dv += pr.transpose(0, 1, 3, 2) @ gb
            dp = gb @ v.transpose(0, 1, 3, 2)
            ds = pr * (dp - (dp * pr).sum(-1, keepdims=True))
            dq[:, :, r0:r1] = ds @ k * sf
            dk += ds.transpose(0, 1, 3, 2) @ q[:, :, r0:r1] * sf
        return np.stack([dq, dk, dv])

    return ref


# ------------------------------------------------------------------ the rows


def sequence_workloads(quick: bool) -> list[Workload]:
    """``lstm_step``, ``transformer_block_step`` and ``sdpa_T256`` / ``sdpa_T1024`` /
    ``sdpa_T4096``; ``quick`` keeps the names with toy sizes."""
    out: list[Workload] = []
    b, t, i, h = (4, 16, 16, 64) if quick else (32, 64, 64, 256)
    out.append(Workload("lstm_step", f"LSTM({i}, {h}) + linear head training step on [{b},{t},{i}] (cross-entropy "
                        "on the last step)", {"batch": b, "T": t, "input": i, "hidden": h}, _lstm_step(b, t, i, h),
                        tol=(1e-4, 1e-5), frameworks=SEQ_FRAMEWORKS, reference=_lstm_reference(b, t, i, h)))
    b, t, d, nh, ff = (2, 16, 64, 4, 128) if quick else (16, 128, 256, 4, 1024)
    out.append(Workload("transformer_block_step", f"pre-norm TransformerEncoderLayer(d {d}, {nh} heads, ff {ff}), "
                        f"causal, training step on [{b},{t},{d}] (loss mean(y^2))",
                        {"batch": b, "T": t, "d_model": d, "nhead": nh, "dim_feedforward": ff},
                        _block_step(b, t, d, nh, ff), tol=(1e-4, 1e-5), frameworks=SEQ_FRAMEWORKS,
                        reference=_block_reference(b, t, d, nh, ff)))
    for t0 in (256, 1024, 4096):
        b, nh, t, hd = (1, 2, t0 // 8, 16) if quick else (1, 8, t0, 64)
        # float32 softmax and matmul rounding over t keys; measured here the error is below 1% of
        # this tolerance at every size, while a wrong mask or a lost term is off by O(1)
        out.append(Workload(f"sdpa_T{t0}", f"causal scaled_dot_product_attention fwd+bwd, q/k/v [{b},{nh},{t},{hd}]",
                            {"batch": b, "heads": nh, "T": t, "head_dim": hd}, _sdpa(b, nh, t, hd),
                            tol=(1e-4, 1e-5 * math.sqrt(t)), frameworks=SEQ_FRAMEWORKS,
                            reference=_sdpa_reference(b, nh, t, hd)))
    return out
