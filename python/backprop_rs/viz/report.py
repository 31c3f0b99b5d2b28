"""``backprop-rs explain``: one self-contained HTML page that shows backpropagation at work on
one test example of the digits model: the input, the forward pass layer by layer, the loss,
the backward pass layer by layer, the chain-rule product for one weight, each layer's share of
the loss (integrated gradients), the input heat map, and the training curves when the
checkpoint has them. Pictures are inline SVG (and one PNG as a data URI); there are no scripts
and no external resources, so the page opens anywhere, offline.
"""

from __future__ import annotations

import math
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._core import Tensor
from . import _svg
from ._svg import esc
from .attribution import attribute, attribute_input
from .graph import dot_available, graph
from .trace import trace

__all__ = ["explain_checkpoint", "digits_report", "page"]

CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;max-width:1100px;color:#222;line-height:1.4}
h1{font-size:22px;margin-bottom:4px} h2{font-size:17px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h3{font-size:14px;margin:14px 0 4px} .sub{color:#666;font-size:13px}
table{border-collapse:collapse;font-size:12px;margin:6px 0} td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4} td.l,th.l{text-align:left} .row{display:flex;gap:28px;flex-wrap:wrap;align-items:flex-start}
.card{border:1px solid #e3e3e3;border-radius:6px;padding:8px 12px;margin:6px 0;background:#fcfcfc}
.eq{font-family:Menlo,Consolas,monospace;font-size:13px;background:#f6f8fa;padding:8px 10px;border-radius:4px;white-space:pre-wrap}
.ok{color:#2a7d2a;font-weight:bold} .bad{color:#c00;font-weight:bold} code{font-size:12px}
.graph svg{max-width:100%;height:auto}
"""


def page(title: str, body: List[str]) -> str:
    """A complete HTML document around ``body`` (inline CSS, no scripts). SVG namespace
    declarations are dropped: HTML does not need them, and the page then holds no URL at all."""
    text = "\n".join(body)
    for ns in (' xmlns="http://www.w3.org/2000/svg"', ' xmlns:xlink="http://www.w3.org/1999/xlink"'):
        text = text.replace(ns, "")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + text + "\n</body></html>\n")


def _np(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().to("cpu").numpy(), dtype=np.float64)


def _stats(a: np.ndarray) -> str:
    return f"mean {a.mean():.3g}, std {a.std():.3g}, min {a.min():.3g}, max {a.max():.3g}"


def _picture(a: np.ndarray, diverging: bool) -> str:
    """One example's tensor as a picture: feature maps as small heat maps, vectors as strips."""
    if a.ndim == 3 and a.shape[1] * a.shape[2] > 1:
        cell = max(3, min(10, 64 // max(a.shape[1], 1)))
        maps = [_svg.heatmap(a[c], cell=cell, diverging=diverging) for c in range(min(a.shape[0], 16))]
        more = f"<span class=sub> +{a.shape[0] - 16} more maps</span>" if a.shape[0] > 16 else ""
        return "<div class=row style='gap:6px'>" + "".join(maps) + more + "</div>"
    v = a.ravel()
    if v.size <= 16:
        return _svg.bars(v, width=380, bar=12)
    return _svg.strip(v, diverging=diverging)


def _graph_block(g: Any) -> str:
    if dot_available():
        try:
            svg = g.pipe("svg").decode("utf-8")
            svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE (the page is HTML)
            return f"<div class=graph>{svg}</div>"
        except RuntimeError:
            pass
    return ("<p class=sub>Graphviz's <code>dot</code> is not installed, so here is the graph as DOT text "
            "(paste it into any Graphviz viewer):</p><pre class=eq>" + esc(g.source) + "</pre>")


def _chain_rule(calls: List[Dict[str, Any]], probs: np.ndarray, label: int) -> Optional[str]:
    """The chain-rule product for the weight with the largest gradient in the first
    ``Linear -> activation -> Linear`` chain of the model."""
    for i in range(len(calls) - 2):
        a, act, b = calls[i], calls[i + 1], calls[i + 2]
        if not (a["type"] == "Linear" and act["type"] in ("ReLU", "Tanh", "Sigmoid") and b["type"] == "Linear"):
            continue
        W = a["module"].weight
        if W.grad is None or a["input"] is None or act["grad"] is None or b["grad"] is None:
            return None
        gW = _np(W.grad)
        j, k = np.unravel_index(np.argmax(np.abs(gW)), gW.shape)
        x_in = a["input"].ravel()
        z = a["output"].ravel()
        h = act["output"].ravel()
        up = act["grad"].ravel()  # dL/dh
        if act["type"] == "ReLU":
            local, lname = (1.0 if z[j] > 0 else 0.0), f"relu'(z_{j}) = [z_{j} > 0] = [{z[j]:.4g} > 0]"
        elif act["type"] == "Tanh":
            local, lname = 1 - h[j] ** 2, f"tanh'(z_{j}) = 1 - h_{j}^2 = 1 - {h[j]:.4g}^2"
        else:
            local, lname = h[j] * (1 - h[j]), f"sigmoid'(z_{j}) = h_{j} (1 - h_{j})"
        W2 = _np(b["module"].weight)
        dz2 = b["grad"].ravel()
        terms = dz2 * W2[:, j]
        product = up[j] * local * x_in[k]
        engine = gW[j, k]
        order = np.argsort(-np.abs(terms))
        top = order[: min(10, terms.size)]
        rows = "".join(f"<tr><td>{q}</td><td>{dz2[q]:.5g}</td><td>{W2[q, j]:.5g}</td><td>{terms[q]:.5g}</td></tr>" for q in top)
        rest = terms.sum() - terms[top].sum()
        if terms.size > top.size:
            rows += f"<tr><td class=l colspan=3>the other {terms.size - top.size} terms</td><td>{rest:.5g}</td></tr>"
        last = b is calls[-1]
        dz2_note = (f"Here layer <code>{esc(b['name'])}</code> is the output layer, so dL/dz'<sub>q</sub> = softmax(z')<sub>q</sub> &minus; "
                    f"[q = {label}] (for q = {label}: {probs[label]:.4g} &minus; 1 = {dz2[label]:.4g})." if last else
                    f"dL/dz'<sub>q</sub> itself came down from the layers above <code>{esc(b['name'])}</code>.")
        ok = abs(product - engine) <= 1e-5 * max(1.0, abs(engine)) + 1e-7
        return f"""
<p>The weight with the largest gradient in layer <code>{esc(a['name'])}</code> (Linear) is
W[{j}, {k}], from input {k} to unit {j}. Backpropagation reaches it as the gradient arriving at the
unit's output times each local derivative on the way down:</p>
<div class=eq>dL/dW[{j},{k}] = dL/dh_{j}  &times;  dh_{j}/dz_{j}  &times;  dz_{j}/dW[{j},{k}]
            = (sum over q of dL/dz'_q &middot; W'[q,{j}])  &times;  {esc(lname)}  &times;  x_{k}
            = {up[j]:.6g}  &times;  {local:.6g}  &times;  {x_in[k]:.6g}
            = {product:.6g}
engine's W.grad[{j},{k}] = {engine:.6g}   <span class={'ok' if ok else 'bad'}>{'equal' if ok else 'DIFFERENT'}</span></div>
<p>where h = {esc(act['type'])}(z) is the activation after <code>{esc(a['name'])}</code> and z' = W'h + b' is the next layer
(<code>{esc(b['name'])}</code>). The upstream gradient dL/dh<sub>{j}</sub> = {up[j]:.6g} is itself a sum over the
{terms.size} units q of the next layer (largest terms first):</p>
<table><tr><th>q</th><th>dL/dz'<sub>q</sub></th><th>W'[q,{j}]</th><th>product</th></tr>{rows}
<tr><th class=l colspan=3>sum = dL/dh<sub>{j}</sub></th><th>{terms.sum():.6g}</th></tr></table>
<p class=sub>{dz2_note}</p>"""
    return None


def digits_report(model: Any, x: Tensor, y: Tensor, *, index: int, source: str, history: Optional[Dict[str, Any]] = None,
                  initial: Optional[Dict[str, Tensor]] = None, baseline: str = "zeros", steps: int = 64) -> Tuple[str, Dict[str, Any]]:
    """The HTML of the report for the example ``x`` (1 x 64), label ``y`` (1), and the numbers it
    shows (``info``: prediction, loss, residuals, the chain-rule check)."""
    from ..nn import functional as F

    model.eval()
    label = int(y.item())
    grads: Dict[int, np.ndarray] = {}
    with trace(model) as tr:
        logits = model(x)
    loss = F.cross_entropy(logits, y)
    params = dict(model.named_parameters())
    g = graph(loss, params=params, collapse="module", trace=tr, show_values=True,
              title=f"digits model, test example {index}: graph collapsed by module, with gradients")
    leaf_calls = [c for c in tr.calls if c.leaf]
    for i, c in enumerate(leaf_calls):
        if c.outputs and c.outputs[0].requires_grad:
            c.outputs[0].register_hook(lambda gr, i=i: grads.__setitem__(i, _np(gr)) or None)
    for p in model.parameters():
        p.grad = None
    loss.backward()
    g.close()
    calls: List[Dict[str, Any]] = []
    for i, c in enumerate(leaf_calls):
        calls.append({"name": c.name, "type": type(c.module).__name__, "module": c.module,
                      "input": _np(c.inputs[0])[0] if c.inputs else None,
                      "output": _np(c.outputs[0])[0] if c.outputs else None, "grad": grads.get(i)[0] if i in grads else None})
    probs = np.exp(_np(logits.log_softmax(1)))[0]
    pred = int(probs.argmax())
    lval = float(loss.item())

    base = initial if (baseline == "initial" and initial) else "zeros"
    ig = attribute(model, F.cross_entropy, x, y, baseline=base, steps=steps)
    ia = attribute_input(model, x, target=y)
    img = _np(x).reshape(8, 8)
    info: Dict[str, Any] = {"index": index, "label": label, "prediction": pred, "loss": lval,
                            "ig_relative_residual": ig.relative_residual, "input_relative_residual": ia.relative_residual}

    body = [f"<h1>How backpropagation sees test example {index}</h1>",
            f"<p class=sub>checkpoint <code>{esc(source)}</code> &middot; model {esc(type(model).__name__)} with "
            f"{sum(p.numel() for p in model.parameters())} parameters &middot; true digit <b>{label}</b>, predicted <b>{pred}</b> "
            f"(p = {probs[pred]:.3f}) &middot; loss {lval:.4g}</p>"]

    # 1. input
    body.append("<h2>1. The input</h2><div class=row>")
    body.append(f"<div><img alt='input digit' width=128 height=128 src='{_svg.gray_png_uri(img)}'><div class=sub>8&times;8 pixels, as seen</div></div>")
    body.append(f"<div>{_svg.heatmap(img, cell=26, numbers=True)}<div class=sub>pixel values (0 = white, 1 = black)</div></div></div>")

    # 2. forward
    body.append("<h2>2. Forward pass, layer by layer</h2><p>Each layer turns the previous layer's output into its own; "
                "values for this one example (red positive, blue negative).</p>")
    for c in calls:
        if c["output"] is None:
            continue
        o = c["output"]
        extra = ""
        if c["type"] == "ReLU":
            extra = f", {100 * np.mean(o == 0):.0f}% of units are 0 (inactive)"
        body.append(f"<div class=card><h3><code>{esc(c['name'])}</code> {esc(c['type'])} &rarr; shape {tuple(o.shape)}</h3>"
                    f"<div class=sub>{_stats(o)}{extra}</div>{_picture(o, True)}</div>")
    body.append(f"<div class=card><h3>softmax &rarr; probabilities</h3>{_svg.bars(probs, [f'digit {d}' for d in range(probs.size)], highlight=label)}</div>")

    # 3. loss
    body.append(f"<h2>3. The loss</h2><div class=eq>L = cross_entropy(logits, {label}) = &minus;log softmax(logits)[{label}] = "
                f"&minus;log {probs[label]:.6g} = {lval:.6g}</div>")

    # 4. backward
    body.append("<h2>4. Backward pass, layer by layer</h2><p>dL/d(output) of each layer, from the loss down to the "
                "input: each layer's gradient is the one above it times the layer's local derivative (the chain rule).</p>")
    for c in reversed(calls):
        if c["grad"] is None:
            continue
        gr = c["grad"]
        pg = ""
        m = c["module"]
        rows = [(n, p) for n, p in m.named_parameters(recurse=False) if p.grad is not None]
        if rows:
            pg = "<table><tr><th class=l>parameter</th><th>shape</th><th>|grad|</th><th>min</th><th>max</th></tr>" + "".join(
                f"<tr><td class=l>{esc(c['name'])}.{esc(n)}</td><td>{tuple(p.shape)}</td><td>{np.linalg.norm(_np(p.grad)):.4g}</td>"
                f"<td>{_np(p.grad).min():.3g}</td><td>{_np(p.grad).max():.3g}</td></tr>" for n, p in rows) + "</table>"
        body.append(f"<div class=card><h3>dL/d <code>{esc(c['name'])}</code> ({esc(c['type'])}) output, |grad| = {np.linalg.norm(gr):.4g}</h3>"
                    f"{_picture(gr, True)}{pg}</div>")
    body.append("<h3>The same graph, as the engine recorded it</h3>")
    body.append(_graph_block(g))

    # 5. chain rule
    cr = _chain_rule(calls, probs, label)
    if cr:
        body.append("<h2>5. The chain rule for one weight</h2>" + cr)
        info["chain_rule"] = True

    # 6. layer shares
    per_layer = ig.per_layer
    lay = list(per_layer)
    what = "all-zero weights" if isinstance(base, str) else "the initial weights"
    body.append(f"<h2>6. Each layer's share of the loss</h2><p>Integrated gradients over the weights, along the straight "
                f"line from {what} (loss {ig.baseline_loss:.4g}) to the trained weights (loss {ig.loss:.4g}): each weight's "
                f"share of the change {ig.delta:.4g}. Shares sum to {ig.total:.6g} (completeness residual "
                f"{100 * ig.relative_residual:.3g}%, {ig.steps}-point Gauss-Legendre). Negative = lowered the loss.</p>")
    if isinstance(base, str):
        body.append("<p class=sub>From all-zero weights, the layers of a ReLU network without biases would split the change "
                    "exactly equally (scaling every layer by a scales the output by a<sup>depth</sup>), so differences between "
                    "the layers here come from the biases and the kinks; <code>--baseline initial</code> compares with the "
                    "untrained network instead.</p>")
    body.append("<div class=row><div>" + _svg.bars([per_layer[k] for k in lay], [k or "(model)" for k in lay]) + "</div>")
    last = lay[-1] if lay else None
    if last is not None and last in ig.per_neuron and ig.per_neuron[last].size <= 16:
        v = ig.per_neuron[last]
        body.append(f"<div><div class=sub>output layer <code>{esc(last)}</code>, per output unit (digit)</div>"
                    + _svg.bars(v, [f"digit {d}" for d in range(v.size)], highlight=label) + "</div>")
    body.append("</div>")

    # 7. input heat map
    hm = ia.heatmap(0)
    body.append(f"<h2>7. Which pixels pushed toward digit {label}</h2><p>Integrated gradients over the input, from a "
                f"blank image: each pixel's share of log p({label}) &minus; log p<sub>blank</sub>({label}) = "
                f"{ia.output[0] - ia.baseline_output[0]:.4g}. Red pixels pushed the prediction toward {label}, blue away "
                f"(residual {100 * ia.relative_residual:.3g}%).</p><div class=row>")
    body.append(f"<div>{_svg.heatmap(hm, cell=26, diverging=True, numbers=True)}</div>"
                f"<div><img alt='input digit' width=128 height=128 src='{_svg.gray_png_uri(img)}'></div></div>")

    # 8. curves
    if history:
        body.append("<h2>8. Training</h2>" + _curves(history))
    return page(f"backprop-rs explain: example {index}", body), info


def _curves(h: Dict[str, Any]) -> str:
    out = ["<div class=row>"]
    if h.get("loss"):
        xs = list(range(1, len(h["loss"]) + 1))
        out.append(_svg.lines({"train loss": (xs, h["loss"])}, "training loss per epoch", "epoch"))
        acc = {"train": (xs, h.get("train_acc") or [])}
        if h.get("test_acc"):
            acc["test"] = (xs, h["test_acc"])
        out.append(_svg.lines(acc, "accuracy", "epoch"))
    mon = h.get("monitor") or {}
    for q, logy in (("grad_norm", True), ("update_ratio", True), ("dead_frac", False), ("act_std", False)):
        if q in mon:
            series = {k: (mon["step"][k], [v if v is not None else math.nan for v in vs]) for k, vs in mon[q].items()}
            out.append(_svg.lines(series, q.replace("_", " ") + " per layer" + (" (log10)" if logy else ""), "step", logy=logy))
    lca = h.get("lca")
    if lca and lca.get("steps"):
        series = {k or "(model)": (lca["step"], v) for k, v in lca["cumulative"].items()}
        out.append(_svg.lines(series, "loss change allocation, cumulative", "step"))
        out.append("</div><p>Loss change allocation (Lan et al., 2019): over "
                   f"{lca['steps']} steps the loss on a fixed batch changed by {lca['loss_change']:.4g}; the allocations add "
                   f"up to it within {100 * lca['relative_residual']:.3g}%. Share of the learning per layer (negative = fought it):</p>")
        sh = lca.get("shares") or {}
        out.append(_svg.bars(list(sh.values()), [k or "(model)" for k in sh], fmt="{:.1%}"))
        return "".join(out)
    out.append("</div>")
    if not mon and not lca:
        out.append("<p class=sub>(train with <code>--monitor DIR</code> and <code>--allocate-loss</code> for per-layer curves)</p>")
    return "".join(out)


def explain_checkpoint(path: str, index: int = 0, out: Optional[str] = None, baseline: str = "zeros", steps: int = 64) -> Tuple[str, Dict[str, Any]]:
    """Writes the report for test example ``index`` of the digits model in checkpoint ``path``
    (from ``backprop-rs train``); returns the HTML file's path and the numbers it shows."""
    import backprop_rs as bp

    from .. import models

    ck = bp.load(path)
    if not isinstance(ck, dict) or "model" not in ck or "config" not in ck:
        raise SystemExit(f"{path} is not a backprop-rs training checkpoint (expected 'model' and 'config' entries)")
    model = models.build(ck["config"])
    model.load_state_dict(ck["model"])
    data = bp.data.load_digits()
    n = data.x_test.shape[0]
    if not 0 <= index < n:
        raise SystemExit(f"--index must be in 0..{n - 1}, got {index}")
    x, y = data.x_test[index : index + 1], data.y_test[index : index + 1]
    html_text, info = digits_report(model, x, y, index=index, source=os.path.basename(path), history=ck.get("history"),
                                    initial=ck.get("initial"), baseline=baseline, steps=steps)
    out = out or os.path.splitext(path)[0] + f"-explain-{index}.html"
    with open(out, "w", encoding="utf-8") as f:
        f.write(html_text)
    return out, info
