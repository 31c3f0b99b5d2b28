"""Runs the PyTorch-style programs in tests/programs/ (each written as a PyTorch user writes it,
under ``import backprop_rs as torch``) and checks every one against an independent NumPy
computation of the same steps from the same initial weights (taken from the program's
``state_dict``, or its data), in float64. Tolerances are stated per program: the engine runs in
float32, so they are relative float32 round-off accumulated over the steps.
"""

import importlib.util
import math
import pathlib
import sys

import numpy as np
import pytest

PROGRAMS = ["polynomial_fit", "custom_function", "mnist_cnn", "bag_of_words", "vae", "dataloader_loop"]


FOLDER = pathlib.Path(__file__).with_name("programs")


def _program(name):
    """Imports tests/programs/<name>.py as a module (its ``main()`` runs the program)."""
    key = f"backprop_programs.{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, FOLDER / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def test_every_program_starts_with_the_pytorch_import():
    folder = FOLDER
    found = sorted(p.stem for p in folder.glob("*.py"))
    assert found == sorted(PROGRAMS)
    for name in PROGRAMS:
        assert (folder / f"{name}.py").read_text().startswith("import backprop_rs as torch\n"), name


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_runs_as_a_script(name, capsys, monkeypatch, tmp_path):
    """``python tests/programs/<name>.py`` runs and prints its progress, as the program's author
    would run it."""
    import runpy

    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(FOLDER / f"{name}.py"), run_name="__main__")
    assert capsys.readouterr().out.strip()


# ------------------------------------------------------------------ optimisers in NumPy


def _sgd(params, grads, state, lr, momentum=0.0, weight_decay=0.0):
    for k in params:
        g = grads[k] + weight_decay * params[k]
        if momentum:
            state[k] = g.copy() if k not in state else momentum * state[k] + g
            g = state[k]
        params[k] = params[k] - lr * g


def _adadelta(params, grads, state, lr, rho=0.9, eps=1e-6):
    for k in params:
        sq, acc = state.get(k, (np.zeros_like(params[k]), np.zeros_like(params[k])))
        g = grads[k]
        sq = rho * sq + (1 - rho) * g * g
        delta = np.sqrt(acc + eps) / np.sqrt(sq + eps) * g
        acc = rho * acc + (1 - rho) * delta * delta
        state[k] = (sq, acc)
        params[k] = params[k] - lr * delta


def _adam(params, grads, state, lr, t, b1=0.9, b2=0.999, eps=1e-8):
    for k in params:
        m, v = state.get(k, (np.zeros_like(params[k]), np.zeros_like(params[k])))
        g = grads[k]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        state[k] = (m, v)
        params[k] = params[k] - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)


def _f64(d):
    return {k: np.asarray(v, dtype=np.float64) for k, v in d.items()}


def _assert_params(final, ref, rtol, atol):
    assert set(final) >= set(ref)
    for k in ref:
        np.testing.assert_allclose(final[k], ref[k], rtol=rtol, atol=atol, err_msg=k)


# ------------------------------------------------------------------ polynomial fit


def test_polynomial_fit():
    steps = 2000
    out = _program("polynomial_fit").main(steps=steps, verbose=False)
    x = out["x"].astype(np.float64)
    np.testing.assert_allclose(x, np.linspace(-math.pi, math.pi, 2000), atol=1e-6)
    y = np.sin(x)
    p = _f64(out["initial"])
    powers = {"a": 0, "b": 1, "c": 2, "d": 3}
    losses = []
    for _ in range(steps):
        pred = sum(p[k] * x**n for k, n in powers.items())
        r = pred - y
        losses.append(float((r**2).sum()))
        grads = {k: np.array(2 * (r * x**n).sum()) for k, n in powers.items()}
        _sgd(p, grads, {}, lr=1e-6)
    # float32 sums of 2000 terms: relative error of a few 1e-6 per step, stable over the fit
    np.testing.assert_allclose(out["losses"], losses, rtol=2e-4)
    _assert_params(out["final"], p, rtol=2e-4, atol=2e-5)
    assert losses[-1] < 20  # the fit converged as in the tutorial (about 9)


# ------------------------------------------------------------------ custom autograd.Function


def test_custom_function_legendre():
    steps = 2000
    out = _program("custom_function").main(steps=steps, verbose=False)
    x = out["x"].astype(np.float64)
    y = np.sin(x)
    a, b, c, d = 0.0, -1.0, 0.0, 0.3
    losses = []
    for _ in range(steps):
        z = c + d * x
        p3 = 0.5 * (5 * z**3 - 3 * z)
        r = a + b * p3 - y
        losses.append(float((r**2).sum()))
        g = 2 * r
        dz = g * b * 1.5 * (5 * z**2 - 1)
        ga, gb, gc, gd = g.sum(), (g * p3).sum(), dz.sum(), (dz * x).sum()
        a, b, c, d = a - 5e-6 * ga, b - 5e-6 * gb, c - 5e-6 * gc, d - 5e-6 * gd
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-3)
    np.testing.assert_allclose(out["final"], [a, b, c, d], rtol=1e-3, atol=1e-5)
    assert losses[-1] < 10  # the tutorial's result: about 8.9


# ------------------------------------------------------------------ MNIST-shaped CNN


def _conv_fwd(x, w, b):
    k = w.shape[-1]
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N C H W k k
    return np.einsum("nchwij,ocij->nohw", patches, w) + b[None, :, None, None], patches


def _conv_bwd(dout, patches, w, x_shape, need_dx):
    dw = np.einsum("nohw,nchwij->ocij", dout, patches)
    db = dout.sum(axis=(0, 2, 3))
    dx = None
    if need_dx:
        k = w.shape[-1]
        dx = np.zeros(x_shape)
        ho, wo = dout.shape[2:]
        for i in range(k):
            for j in range(k):
                dx[:, :, i:i + ho, j:j + wo] += np.einsum("nohw,oc->nchw", dout, w[:, :, i, j])
    return dw, db, dx


def _maxpool_fwd(x):
    n, c, h, w = x.shape
    win = x.reshape(n, c, h // 2, 2, w // 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, h // 2, w // 2, 4)
    arg = win.argmax(-1)
    return np.take_along_axis(win, arg[..., None], -1)[..., 0], arg


def _maxpool_bwd(dout, arg, shape):
    n, c, h, w = shape
    win = np.zeros(dout.shape + (4,))
    np.put_along_axis(win, arg[..., None], dout[..., None], -1)
    return win.reshape(n, c, h // 2, w // 2, 2, 2).transpose(0, 1, 2, 4, 3, 5).reshape(shape)


def _cnn_step(p, x, t):
    """Loss and gradients of the program's Net (NLL of log-softmax, mean over the batch)."""
    z1, p1 = _conv_fwd(x, p["conv1.weight"], p["conv1.bias"])
    a1 = np.maximum(z1, 0)
    z2, p2 = _conv_fwd(a1, p["conv2.weight"], p["conv2.bias"])
    a2 = np.maximum(z2, 0)
    m, arg = _maxpool_fwd(a2)
    f = m.reshape(len(x), -1)
    h = f @ p["fc1.weight"].T + p["fc1.bias"]
    ha = np.maximum(h, 0)
    o = ha @ p["fc2.weight"].T + p["fc2.bias"]
    o = o - o.max(1, keepdims=True)
    logp = o - np.log(np.exp(o).sum(1, keepdims=True))
    n = len(x)
    loss = -logp[np.arange(n), t].mean()
    do = np.exp(logp)
    do[np.arange(n), t] -= 1
    do /= n
    g = {"fc2.weight": do.T @ ha, "fc2.bias": do.sum(0)}
    dh = (do @ p["fc2.weight"]) * (h > 0)
    g["fc1.weight"], g["fc1.bias"] = dh.T @ f, dh.sum(0)
    dm = (dh @ p["fc1.weight"]).reshape(m.shape)
    dz2 = _maxpool_bwd(dm, arg, a2.shape) * (z2 > 0)
    g["conv2.weight"], g["conv2.bias"], da1 = _conv_bwd(dz2, p2, p["conv2.weight"], a1.shape, True)
    g["conv1.weight"], g["conv1.bias"], _ = _conv_bwd(da1 * (z1 > 0), p1, p["conv1.weight"], x.shape, False)
    return loss, g, logp


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_mnist_cnn(device):
    if device == "gpu":
        from conftest import gpu_or_skip

        gpu_or_skip()
    out = _program("mnist_cnn").main(epochs=2, verbose=False, device=device)
    x, t = out["images"].astype(np.float64), out["labels"]
    p, state, losses, lr = _f64(out["initial"]), {}, [], 1.0
    for _ in range(2):
        for s in range(0, 48, 16):
            loss, g, _ = _cnn_step(p, x[s:s + 16], t[s:s + 16])
            losses.append(loss)
            _adadelta(p, g, state, lr)
        lr *= 0.7  # StepLR(step_size=1, gamma=0.7)
    # 6 Adadelta steps through two convolutions in float32
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-5)
    _assert_params(out["final"], p, rtol=1e-4, atol=1e-5)
    _, _, logp = _cnn_step(p, x[48:], t[48:])
    np.testing.assert_allclose(out["test_loss"], -logp[np.arange(16), t[48:]].mean(), rtol=1e-5)
    assert out["correct"] == int((logp.argmax(1) == t[48:]).sum())


# ------------------------------------------------------------------ bag of words


def _clip(grads, max_norm):
    total = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    coef = min(max_norm / (total + 1e-6), 1.0)
    return {k: g * coef for k, g in grads.items()}, total


def test_bag_of_words():
    prog = _program("bag_of_words")
    epochs = 20
    out = prog.main(epochs=epochs, verbose=False)

    def encode(batch):
        longest = max(len(s) for s, _ in batch)
        text = np.array([[prog.word_to_ix[w] for w in s] + [0] * (longest - len(s)) for s, _ in batch])
        return text, np.array([len(s) for s, _ in batch], float), np.array([prog.label_to_ix[c] for _, c in batch])

    def forward(p, text, lengths):
        mask = (text != 0)[..., None]
        e = (p["embedding.weight"][text] * mask).sum(1) / lengths[:, None]
        return e, mask, e @ p["fc.weight"].T + p["fc.bias"]

    p, losses, norms = _f64(out["initial"]), [], []
    for epoch in range(epochs):
        lr = 5 * 0.9**epoch  # StepLR(step_size=1, gamma=0.9), stepped once per epoch
        for s in range(0, len(prog.data), 2):
            text, lengths, label = encode(prog.data[s:s + 2])
            e, mask, logits = forward(p, text, lengths)
            z = logits - logits.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            n = len(label)
            losses.append(-logp[np.arange(n), label].mean())
            d = np.exp(logp)
            d[np.arange(n), label] -= 1
            d /= n
            de = d @ p["fc.weight"]
            g_emb = np.zeros_like(p["embedding.weight"])
            np.add.at(g_emb, text, de[:, None, :] / lengths[:, None, None] * mask)
            grads, total = _clip({"embedding.weight": g_emb, "fc.weight": d.T @ e, "fc.bias": d.sum(0)}, 0.1)
            norms.append(total)
            _sgd(p, grads, {}, lr)
    # 40 clipped SGD steps; embedding rows gather and scatter exactly, so float32 round-off only
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-5)
    np.testing.assert_allclose(out["norms"], norms, rtol=1e-5)
    _assert_params(out["final"], p, rtol=1e-4, atol=1e-6)
    text, lengths, label = encode(prog.test_data)
    logits = forward(p, text, lengths)[2]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    np.testing.assert_allclose(out["test_probs"], probs, rtol=1e-5)
    assert (probs.argmax(1) == label).all()  # the classifier learned both test sentences


# ------------------------------------------------------------------ VAE


def test_vae(monkeypatch):
    import backprop_rs as bp

    drawn = []
    real = bp.randn_like

    def recording_randn_like(t, *args, **kwargs):
        out = real(t, *args, **kwargs)
        drawn.append(out.numpy().copy())
        return out

    monkeypatch.setattr(bp, "randn_like", recording_randn_like)
    out = _program("vae").main(epochs=2, verbose=False)
    assert len(drawn) == 4  # one reparameterisation per step
    x_all = out["images"].reshape(64, 784).astype(np.float64)
    p, state, losses = _f64(out["initial"]), {}, []
    step = 0
    for _ in range(2):
        for s in range(0, 64, 32):
            x, eps = x_all[s:s + 32], drawn[step].astype(np.float64)
            step += 1
            a1 = x @ p["fc1.weight"].T + p["fc1.bias"]
            h1 = np.maximum(a1, 0)
            mu = h1 @ p["fc21.weight"].T + p["fc21.bias"]
            lv = h1 @ p["fc22.weight"].T + p["fc22.bias"]
            std = np.exp(0.5 * lv)
            z = mu + eps * std
            a3 = z @ p["fc3.weight"].T + p["fc3.bias"]
            h3 = np.maximum(a3, 0)
            r = 1 / (1 + np.exp(-(h3 @ p["fc4.weight"].T + p["fc4.bias"])))
            bce = -(x * np.log(r) + (1 - x) * np.log(1 - r)).sum()
            kld = -0.5 * (1 + lv - mu**2 - np.exp(lv)).sum()
            losses.append(bce + kld)
            d4 = r - x  # d BCE / d logits of the sigmoid
            g = {"fc4.weight": d4.T @ h3, "fc4.bias": d4.sum(0)}
            d3 = (d4 @ p["fc4.weight"]) * (a3 > 0)
            g["fc3.weight"], g["fc3.bias"] = d3.T @ z, d3.sum(0)
            dz = d3 @ p["fc3.weight"]
            dmu = dz + mu
            dlv = dz * eps * 0.5 * std - 0.5 + 0.5 * np.exp(lv)
            g["fc21.weight"], g["fc21.bias"] = dmu.T @ h1, dmu.sum(0)
            g["fc22.weight"], g["fc22.bias"] = dlv.T @ h1, dlv.sum(0)
            d1 = (dmu @ p["fc21.weight"] + dlv @ p["fc22.weight"]) * (a1 > 0)
            g["fc1.weight"], g["fc1.bias"] = d1.T @ x, d1.sum(0)
            _adam(p, g, state, 1e-3, step)
    # losses are sums over 25k terms in float32; Adam's steps are about lr = 1e-3 per weight
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-5)
    _assert_params(out["final"], p, rtol=1e-4, atol=2e-6)


# ------------------------------------------------------------------ DataLoader loop


def test_dataloader_loop(tmp_path):
    out = _program("dataloader_loop").main(str(tmp_path), epochs=3, verbose=False)
    x, y = out["x"].astype(np.float64), out["y"].astype(np.float64)
    val = np.array(out["val_indices"])
    train = np.setdiff1d(np.arange(120), val)
    assert len(val) == 24 and len(set(val.tolist())) == 24
    batches = out["batches"]
    assert len(batches) == 3 * 6 and all(len(b) == 16 for b in batches)
    orders = [np.concatenate(batches[e * 6:(e + 1) * 6]) for e in range(3)]
    for order in orders:  # each epoch visits every training example once
        np.testing.assert_array_equal(np.sort(order), train)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    assert (tmp_path / "mlp.pt").exists() and out["restored_matches"]

    p, state, losses = _f64(out["initial"]), {}, []

    def forward(p, xb):
        h = np.tanh(xb @ p["layers.0.weight"].T + p["layers.0.bias"])
        return h, h @ p["layers.2.weight"].T + p["layers.2.bias"]

    val_losses = []
    for epoch in range(3):
        lr = 0.05 if epoch < 2 else 0.005  # MultiStepLR(milestones=[2], gamma=0.1)
        for idx in batches[epoch * 6:(epoch + 1) * 6]:
            xb, yb = x[idx], y[idx]
            h, pred = forward(p, xb)
            r = pred - yb
            losses.append(float((r**2).mean()))
            d = 2 * r / r.size
            dh = (d @ p["layers.2.weight"]) * (1 - h**2)
            g = {"layers.2.weight": d.T @ h, "layers.2.bias": d.sum(0),
                 "layers.0.weight": dh.T @ xb, "layers.0.bias": dh.sum(0)}
            _sgd(p, g, state, lr, momentum=0.9, weight_decay=1e-4)
        val_losses.append(float(((forward(p, x[val])[1] - y[val]) ** 2).mean()))
    np.testing.assert_allclose(out["losses"], losses, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["val_losses"], val_losses, rtol=1e-5)
    _assert_params(out["final"], p, rtol=1e-5, atol=1e-6)
