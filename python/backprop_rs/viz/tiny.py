"""``backprop-rs explain --tiny``: the micrograd view. A 2-2-1 network (tanh hidden layer,
sigmoid output, squared error) on one XOR example: every number of the forward pass, of one
backward pass (each local derivative and each chain-rule product, checked against the engine's
``.grad``) and of the SGD update, printed in the terminal and written as an HTML page; then the
same network trained on all four XOR examples."""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from . import _svg
from ._svg import esc
from .graph import dot_available, graph
from .report import page

XOR = [((0.0, 0.0), 0.0), ((0.0, 1.0), 1.0), ((1.0, 0.0), 1.0), ((1.0, 1.0), 0.0)]


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _net_svg(x: Tuple[float, float], z1: np.ndarray, h: np.ndarray, p: float, W1: np.ndarray, W2: np.ndarray,
             gW1: np.ndarray, gW2: np.ndarray, dz1: np.ndarray, dz2: float) -> str:
    """The 2-2-1 network drawn with every value (black) and gradient (red) on it."""
    pos = {"x0": (60, 70), "x1": (60, 210), "h0": (300, 70), "h1": (300, 210), "p": (540, 140)}
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="640" height="290" role="img">',
             '<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="3" orient="auto">'
             '<path d="M0,0 L7,3 L0,6 z" fill="#777"/></marker></defs>']

    def edge(a: str, b: str, w: float, g: float, t: float) -> None:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(f'<line x1="{x1 + 34}" y1="{y1}" x2="{x2 - 36}" y2="{y2}" stroke="#999" marker-end="url(#a)"/>')
        mx, my = x1 + 34 + (x2 - x1 - 70) * t, y1 + (y2 - y1) * t
        parts.append(f'<text x="{mx}" y="{my - 4}" font-size="11" text-anchor="middle">w={w:.3f}</text>'
                     f'<text x="{mx}" y="{my + 10}" font-size="11" fill="#c00" text-anchor="middle">g={g:.4f}</text>')

    for j in range(2):
        for i in range(2):
            edge(f"x{i}", f"h{j}", W1[j, i], gW1[j, i], 0.3 if i == j else 0.7)
        edge(f"h{j}", "p", W2[0, j], gW2[0, j], 0.5)

    def node(k: str, lines: List[Tuple[str, str]]) -> None:
        cx, cy = pos[k]
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="34" fill="#eef3fb" stroke="#557"/>')
        for n, (txt, col) in enumerate(lines):
            parts.append(f'<text x="{cx}" y="{cy - 8 + 13 * n}" font-size="11" text-anchor="middle" fill="{col}">{esc(txt)}</text>')

    node("x0", [("x0", "#000"), (f"{x[0]:g}", "#000")])
    node("x1", [("x1", "#000"), (f"{x[1]:g}", "#000")])
    for j in range(2):
        node(f"h{j}", [(f"z={z1[j]:.3f}", "#000"), (f"h={h[j]:.3f}", "#000"), (f"dz={dz1[j]:.4f}", "#c00")])
    node("p", [(f"p={p:.4f}", "#000"), (f"dz={dz2:.4f}", "#c00")])
    parts.append("</svg>")
    return "".join(parts)


def explain_tiny(out: Optional[str] = None, seed: int = 0, lr: float = 0.5, example: int = 2,
                 echo: Callable[[str], Any] = print, train_steps: int = 2000) -> Tuple[Optional[str], Dict[str, Any]]:
    """Prints one forward/backward/update step of a 2-2-1 XOR network and writes the HTML page
    to ``out`` (when given). ``example`` picks the XOR row (0..3). Returns ``(path, numbers)``;
    ``numbers["max_abs_diff"]`` is the largest gap between the hand chain rule and the engine."""
    import backprop_rs as bp

    bp.manual_seed(seed)
    f64 = bp.float64
    W1 = (bp.randn(2, 2, dtype=f64)).requires_grad_()
    b1 = (bp.randn(2, dtype=f64) * 0.1).requires_grad_()
    W2 = (bp.randn(1, 2, dtype=f64)).requires_grad_()
    b2 = (bp.randn(1, dtype=f64) * 0.1).requires_grad_()
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2}
    (x0, x1), yv = XOR[example]
    xt = bp.tensor([[x0, x1]], dtype=f64)
    yt = bp.tensor([[yv]], dtype=f64)
    zt = xt @ W1.t() + b1
    ht = zt.tanh()
    pt = (ht @ W2.t() + b2).sigmoid()
    loss_t = ((pt - yt) ** 2).sum()
    g = graph(loss_t, params=params, title="the XOR net's graph after one backward pass")
    loss_t.backward()
    g.close()

    # copies: .numpy() shares memory with the tensor, and training below changes the weights
    w1, c1, w2, c2 = (np.array(t.detach().numpy(), np.float64) for t in (W1, b1, W2, b2))
    x = np.array([x0, x1])
    lines: List[str] = []
    html_rows: List[Tuple[str, str, str]] = []  # (quantity, how, value)
    diffs: List[float] = []

    def say(s: str = "") -> None:
        lines.append(s)
        echo(s)

    def row(q: str, how: str, v: float, engine: Optional[float] = None) -> float:
        check = ""
        if engine is not None:
            diffs.append(abs(v - engine))
            check = f"   engine .grad {engine: .6f}  {'ok' if abs(v - engine) < 1e-9 else 'MISMATCH'}"
        say(f"  {q:<13} = {how:<44} = {v: .6f}{check}")
        html_rows.append((q, how, f"{v:.6f}" + (f" (engine {engine:.6f})" if engine is not None else "")))
        return v

    say(f"backprop-rs explain --tiny: a 2-2-1 network on XOR (tanh hidden layer, sigmoid output, squared error), seed {seed}")
    say(f"  W1 = {np.array2string(w1, precision=4, separator=', ').replace(chr(10), '')}  b1 = {np.array2string(c1, precision=4, separator=', ')}")
    say(f"  W2 = {np.array2string(w2, precision=4, separator=', ')}  b2 = {np.array2string(c2, precision=4, separator=', ')}")
    say(f"example {example}: x = ({x0:g}, {x1:g}), target y = {yv:g}")
    say("forward:")
    z = np.zeros(2)
    h = np.zeros(2)
    for j in range(2):
        z[j] = row(f"z{j}", f"W1[{j},0]*x0 + W1[{j},1]*x1 + b1[{j}] = {w1[j,0]:.4f}*{x0:g} + {w1[j,1]:.4f}*{x1:g} + {c1[j]:.4f}",
                   w1[j, 0] * x0 + w1[j, 1] * x1 + c1[j])
        h[j] = row(f"h{j}", f"tanh(z{j}) = tanh({z[j]:.4f})", math.tanh(z[j]))
    zo = row("z", f"W2[0,0]*h0 + W2[0,1]*h1 + b2 = {w2[0,0]:.4f}*{h[0]:.4f} + {w2[0,1]:.4f}*{h[1]:.4f} + {c2[0]:.4f}",
             w2[0, 0] * h[0] + w2[0, 1] * h[1] + c2[0])
    p = row("p", f"sigmoid(z) = 1 / (1 + exp(-({zo:.4f})))", _sig(zo))
    L = row("L", f"(p - y)^2 = ({p:.4f} - {yv:g})^2", (p - yv) ** 2)
    say("backward (each gradient = the gradient above it x a local derivative):")
    dp = row("dL/dp", f"2 (p - y) = 2 ({p:.4f} - {yv:g})", 2 * (p - yv))
    dpdz = row("dp/dz", f"p (1 - p) = {p:.4f} (1 - {p:.4f})", p * (1 - p))
    dz = row("dL/dz", f"dL/dp * dp/dz = {dp:.4f} * {dpdz:.4f}", dp * dpdz)
    gw1, gw2, gb1 = np.zeros((2, 2)), np.zeros((1, 2)), np.zeros(2)
    e_w1, e_b1, e_w2, e_b2 = (np.array(t.grad.numpy(), np.float64) for t in (W1, b1, W2, b2))
    for j in range(2):
        gw2[0, j] = row(f"dL/dW2[0,{j}]", f"dL/dz * h{j} = {dz:.4f} * {h[j]:.4f}", dz * h[j], e_w2[0, j])
    gb2 = row("dL/db2", "dL/dz * 1", dz, e_b2[0])
    dz1 = np.zeros(2)
    for j in range(2):
        dh = row(f"dL/dh{j}", f"dL/dz * W2[0,{j}] = {dz:.4f} * {w2[0,j]:.4f}", dz * w2[0, j])
        dhdz = row(f"dh{j}/dz{j}", f"1 - h{j}^2 = 1 - ({h[j]:.4f})^2", 1 - h[j] ** 2)
        dz1[j] = row(f"dL/dz{j}", f"dL/dh{j} * dh{j}/dz{j} = {dh:.4f} * {dhdz:.4f}", dh * dhdz)
        for i in range(2):
            gw1[j, i] = row(f"dL/dW1[{j},{i}]", f"dL/dz{j} * x{i} = {dz1[j]:.4f} * {x[i]:g}", dz1[j] * x[i], e_w1[j, i])
        gb1[j] = row(f"dL/db1[{j}]", f"dL/dz{j} * 1", dz1[j], e_b1[j])
    say(f"update (SGD, lr = {lr:g}): each weight moves against its gradient, w <- w - lr * dL/dw")
    nw1, nc1, nw2, nc2 = w1 - lr * gw1, c1 - lr * gb1, w2 - lr * gw2, c2 - lr * gb2
    for name, old, new in (("W1", w1, nw1), ("b1", c1, nc1), ("W2", w2, nw2), ("b2", c2, nc2)):
        say(f"  {name}: {np.array2string(old.ravel(), precision=4)} -> {np.array2string(new.ravel(), precision=4)}")
    zn = nw1 @ x + nc1
    pn = _sig(float(nw2[0] @ np.tanh(zn) + nc2[0]))
    Ln = (pn - yv) ** 2
    say(f"  loss on this example: {L:.6f} -> {Ln:.6f} ({'lower' if Ln < L else 'not lower'})")

    # train on all four examples (full batch) to show that the net learns XOR
    X = bp.tensor([list(a) for a, _ in XOR], dtype=f64)
    Y = bp.tensor([[b] for _, b in XOR], dtype=f64)
    opt = bp.optim.SGD(list(params.values()), lr=lr, momentum=0.9)
    curve = []
    for _ in range(train_steps):
        out_ = ((X @ W1.t() + b1).tanh() @ W2.t() + b2).sigmoid()
        lt = ((out_ - Y) ** 2).mean()
        opt.zero_grad()
        lt.backward()
        opt.step()
        curve.append(float(lt.item()))
    with bp.no_grad():
        final = np.asarray(((X @ W1.t() + b1).tanh() @ W2.t() + b2).sigmoid().numpy()).ravel()
    say(f"after {train_steps} full-batch SGD steps (momentum 0.9) on all four examples: mse {curve[-1]:.2e}; "
        + ", ".join(f"({a[0]:g},{a[1]:g}) -> {v:.3f}" for (a, _), v in zip(XOR, final)))
    solved = all((v > 0.5) == (b > 0.5) for (_, b), v in zip(XOR, final))
    say("XOR solved" if solved else "XOR not solved with this seed (try another --seed)")

    info = {"loss": L, "loss_after": Ln, "max_abs_diff": max(diffs), "solved": solved, "final": final.tolist(), "lines": lines}
    if out is None:
        return None, info
    body = ["<h1>A 2-2-1 network learns XOR: every number of one backward step</h1>",
            f"<p class=sub>tanh hidden layer, sigmoid output, squared error; seed {seed}; example x = ({x0:g}, {x1:g}), "
            f"target {yv:g}. Values in black, gradients dL/d&middot; in red.</p>",
            _net_svg((x0, x1), z, h, p, w1, w2, gw1, gw2, dz1, dz),
            "<h2>Forward, backward and update</h2><table><tr><th class=l>quantity</th><th class=l>how</th><th>value</th></tr>"
            + "".join(f"<tr><td class=l>{esc(q)}</td><td class=l><code>{esc(how)}</code></td><td>{esc(v)}</td></tr>" for q, how, v in html_rows)
            + "</table>",
            f"<p>Largest difference between this hand-written chain rule and the engine's <code>.grad</code>: {max(diffs):.2e}.</p>",
            f"<div class=eq>{esc(chr(10).join(lines[-6:]))}</div>",
            "<h2>The graph the engine recorded</h2>"]
    if dot_available():
        svg = g.pipe("svg").decode("utf-8")
        body.append("<div class=graph>" + svg[svg.index("<svg"):] + "</div>")
    else:
        body.append("<pre class=eq>" + esc(g.source) + "</pre>")
    body.append("<h2>Training on all four examples</h2>" + _svg.lines({"mse": (list(range(1, len(curve) + 1)), curve)},
                                                                      "training loss (log10)", "step", logy=True))
    with open(out, "w", encoding="utf-8") as f:
        f.write(page("backprop-rs explain --tiny", body))
    return out, info
