"""The viz command line and the HTML reports: `train --monitor DIR --allocate-loss` (records vs
the checkpoint's weights, LCA rows that add up), `explain CHECKPOINT` (numbers vs NumPy, the
HTML parses, holds no external URL and no script), `explain --tiny` (every hand chain-rule
product equals the engine's .grad), and both pages rendered in headless Chromium (screenshot
not blank, no console errors, no request outside the page). A viz on the GPU matches the CPU.

Chromium, Graphviz and matplotlib are optional here (the tests that need them skip, saying
why); CI sets BACKPROP_REQUIRE_VIZ=1 (scripts/test.sh installs them), and a missing one fails.
"""

import html.parser
import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs import models, viz
from backprop_rs.viz.report import explain_checkpoint
from backprop_rs.viz.tiny import explain_tiny

import headless
from conftest import gpu_or_skip, tool_or_skip

F = bp.nn.functional
STEPS_PER_EPOCH = math.ceil(1437 / 32)  # the digits' training split in minibatches of 32


def have_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "backprop_rs", *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def np_(t):
    return np.array(t.detach().numpy(), dtype=np.float64)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One short training run with --monitor and --allocate-loss (2 epochs, 90 steps)."""
    d = tmp_path_factory.mktemp("train")
    out = cli("train", "--epochs", "2", "--monitor", str(d / "mon"), "--allocate-loss", "--out", str(d / "ck.safetensors"))
    return d, out


def test_bp_viz_and_bp_train_need_no_import():
    code = "import backprop_rs as bp; print(bp.viz.graph.__name__, bp.train.fit.__name__, bp.viz.Monitor.__name__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["graph", "fit", "Monitor"], r.stderr


# ------------------------------------------------------------------------------ train --monitor


def test_train_monitor_records_and_lca_rows(run):
    d, out = run
    steps = 2 * STEPS_PER_EPOCH
    rows = [json.loads(s) for s in open(d / "mon" / "monitor.jsonl")]
    assert len(rows) == steps * 3 and {r["layer"] for r in rows} == {"0", "1", "2"}
    assert [r["step"] for r in rows[::3]] == list(range(steps))
    ck = bp.load(str(d / "ck.safetensors"))
    for layer in ("0", "2"):  # the last record's weight norm is the saved weights' norm
        last = [r for r in rows if r["layer"] == layer][-1]
        w = math.sqrt(sum((np_(ck["model"][f"{layer}.{k}"]) ** 2).sum() for k in ("weight", "bias")))
        assert last["weight_norm"] == pytest.approx(w, rel=1e-5)
        assert all(r["grad_norm"] > 0 and 0 < r["update_ratio"] < 1 for r in rows if r["layer"] == layer)
    relu = [r for r in rows if r["layer"] == "1"]
    assert all(0 <= r["dead_frac"] <= 1 and r["act_mean"] >= 0 for r in relu)
    # the initial weights kept for `explain --baseline initial` are those of the seeded model
    bp.manual_seed(0)
    fresh = models.build(ck["config"]).state_dict()
    assert set(ck["initial"]) == set(fresh)
    for k, v in fresh.items():
        assert np.array_equal(np_(ck["initial"][k]), np_(v)), k
    # ... and step 0's update ratio is measured from them: | |w1|/|w0| - 1 | <= |w1 - w0|/|w0|
    first = rows[0]
    w0 = math.sqrt(sum((np_(fresh[f"0.{k}"]) ** 2).sum() for k in ("weight", "bias")))
    assert abs(first["weight_norm"] / w0 - 1) <= first["update_ratio"] * (1 + 1e-5)

    lca = [json.loads(s) for s in open(d / "mon" / "lca.jsonl")]
    assert len(lca) == steps
    for r in lca:  # each step's allocations add up to that step's loss change, up to its residual
        alloc = r["lca.0"] + r["lca.2"]
        assert alloc - (r["loss_after"] - r["loss_before"]) == pytest.approx(r["residual"], abs=1e-9)
    total = sum(r["lca.0"] + r["lca.2"] for r in lca)
    change = lca[-1]["loss_after"] - lca[0]["loss_before"]
    assert change < -1.0 and abs(total - change) < 0.01 * abs(change)
    h = ck["history"]
    assert h["lca"]["steps"] == steps and h["lca"]["relative_residual"] < 0.01
    assert h["lca"]["loss_change"] == pytest.approx(change, rel=1e-9)
    assert set(h["monitor"]) >= {"grad_norm", "weight_norm", "step"}
    m = re.search(r"residual ([0-9.e-]+)% \(per step", out)
    assert m and float(m.group(1)) < 1, out
    assert "share of the learning" in out and f"{steps * 3} records ({steps} steps x 3 layers)" in out
    tool_or_skip("matplotlib", have_matplotlib())
    for q in ("grad_norm", "weight_norm", "update_ratio", "act_std", "dead_frac"):
        assert (d / "mon" / f"{q}.png").read_bytes()[:4] == b"\x89PNG"
    assert (d / "mon" / "lca.png").exists()


def test_train_monitor_csv_in_batch_mode(tmp_path):
    out = cli("train", "--mode", "batch", "--epochs", "4", "--monitor", str(tmp_path), "--monitor-format", "csv",
              "--quiet", "--out", str(tmp_path / "b.safetensors"))
    assert "test_acc=" in out
    lines = (tmp_path / "monitor.csv").read_text().splitlines()
    assert lines[0].split(",") == ["step", "layer", "type", *viz.QUANTITIES] and len(lines) == 1 + 4 * 3
    assert not (tmp_path / "lca.jsonl").exists()


# --------------------------------------------------------------------------------- the HTML


class StrictHTML(html.parser.HTMLParser):
    """Fails on an end tag that does not close the innermost open element (HTML's void
    elements excepted), and collects every attribute, tag and the text of <style>."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.tags, self.attrs, self.style, self.errors = [], [], [], [], []
        self.ids = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs
        if tag not in self.VOID:
            self.stack.append((tag, self.getpos()))

    def handle_startendtag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1][0] != tag:
            self.errors.append(f"</{tag}> at {self.getpos()} closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1][0] == "style":
            self.style.append(data)


URL = re.compile(r"(?i)\b(?:https?|ftp|wss?):|//[a-z0-9.-]+\.[a-z]{2,}")


def check_self_contained(text):
    """The page parses (balanced tags, each inline SVG is well-formed XML) and needs nothing
    outside itself: no script, no external resource, no URL at all."""
    p = StrictHTML()
    p.feed(text)
    p.close()
    assert not p.errors, p.errors[:5]
    assert [t for t, _ in p.stack] == [], p.stack
    assert p.tags[:3] == ["html", "head", "meta"] and "body" in p.tags and "title" in p.tags
    for bad in ("script", "link", "iframe", "object", "embed", "base", "frame", "audio", "video"):
        assert bad not in p.tags, bad
    for name, value in p.attrs:
        assert not name.startswith("on"), name  # no inline event handlers either
        if name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data"):
            assert value.startswith(("data:", "#")), (name, value[:80])
    css = "".join(p.style)
    assert "url(" not in css and "@import" not in css
    assert not URL.search(text), URL.search(text).group(0)
    svgs = re.findall(r"<svg\b.*?</svg>", text, re.S)
    for s in svgs:
        ET.fromstring(s)  # well-formed
    return p, svgs


@pytest.fixture(scope="module")
def report(run):
    d, _ = run
    path, info = explain_checkpoint(str(d / "ck.safetensors"), index=5, out=str(d / "explain.html"))
    return path, info, open(path, encoding="utf-8").read()


def test_explain_report_numbers_match_numpy(run, report):
    d, _ = run
    path, info, text = report
    ck = bp.load(str(d / "ck.safetensors"))
    data = bp.data.load_digits()
    x, y = np_(data.x_test[5:6])[0], int(data.y_test[5].item())
    W1, b1, W2, b2 = (np_(ck["model"][k]) for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    h = np.maximum(W1 @ x + b1, 0)
    z = W2 @ h + b2
    logp = z - z.max() - np.log(np.exp(z - z.max()).sum())
    assert info["label"] == y and info["prediction"] == int(z.argmax())
    assert info["loss"] == pytest.approx(-logp[y], rel=1e-5)
    assert info["ig_relative_residual"] < 0.01 and info["input_relative_residual"] < 0.01
    assert info.get("chain_rule") and "DIFFERENT" not in text and ">equal<" in text
    # the chain-rule block: dL/dW1[j,k] = (W2^T (softmax - onehot))_j [z_j > 0] x_k, by hand
    j, k = map(int, re.search(r"W\[(\d+), (\d+)\], from input", text).groups())
    dz = np.exp(logp) - np.eye(10)[y]
    ref = (W2.T @ dz)[j] * float((W1 @ x + b1)[j] > 0) * x[k]
    eng = float(re.search(r"engine's W.grad\[\d+,\d+\] = ([-0-9.e]+)", text).group(1))
    assert eng == pytest.approx(ref, rel=1e-4, abs=1e-7)
    assert abs(ref) == pytest.approx(np.abs(np.outer((W2.T @ dz) * (W1 @ x + b1 > 0), x)).max(), rel=1e-5)
    for n, heading in enumerate(["The input", "Forward pass", "The loss", "Backward pass", "The chain rule",
                                 "share of the loss", "Which pixels", "Training"], start=1):
        assert re.search(rf"<h2>{n}\. [^<]*{heading}", text), heading
    assert f"&minus;log {np.exp(logp[y]):.6g}" in text
    assert "loss change allocation" in text  # the curves of a --monitor --allocate-loss run


def test_explain_report_is_self_contained_html(report):
    path, info, text = report
    p, svgs = check_self_contained(text)
    assert len(svgs) >= 15 and sum(v.startswith("data:image/png;base64,") for k, v in p.attrs if k == "src") == 2
    if viz.dot_available():
        assert "<g id=\"graph0\"" in text  # the graph drawn by Graphviz, inline
    else:
        assert "digraph backprop {" in text  # or its DOT text


def test_the_committed_docs_pictures_are_current_and_self_contained():
    root = os.path.join(os.path.dirname(__file__), "..", "docs")
    text = open(os.path.join(root, "explain-example.html"), encoding="utf-8").read()
    check_self_contained(text)
    assert "How backpropagation sees test example 5" in text
    svg = open(os.path.join(root, "viz-graph.svg"), encoding="utf-8").read()
    ET.fromstring(svg[svg.index("<svg"):])
    assert "AccumulateGrad" not in svg and "0.weight" in svg and "grad |.|=" in svg  # parameters drawn by name
    png = open(os.path.join(root, "viz-explain.png"), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 400_000


def test_explain_cli_and_a_bad_index(run):
    d, _ = run
    out = cli("explain", str(d / "ck.safetensors"), "--index", "7", "--baseline", "initial", "--out", str(d / "e7.html"))
    m = re.search(r"attribution residual ([0-9.e+-]+)% \(weights\), ([0-9.e+-]+)% \(input\)", out)
    assert m and float(m.group(1)) < 1 and float(m.group(2)) < 1, out
    assert "the initial weights" in (d / "e7.html").read_text()
    r = subprocess.run([sys.executable, "-m", "backprop_rs", "explain", str(d / "ck.safetensors"), "--index", "360"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "--index must be in 0..359" in r.stderr


def test_explain_a_lenet_checkpoint(tmp_path):
    """The report of a convolutional net: feature maps as pictures, the chain rule found in its
    classifier, completeness below 1% (an untrained LeNet: no training time spent here)."""
    bp.manual_seed(0)
    config = {"model": "lenet", "classes": 10, "dataset": "digits"}
    net = models.build(config)
    bp.save({"model": net.state_dict(), "config": config}, str(tmp_path / "lenet.safetensors"))
    path, info = explain_checkpoint(str(tmp_path / "lenet.safetensors"), index=2)
    assert info["ig_relative_residual"] < 0.01 and info["input_relative_residual"] < 0.01 and info.get("chain_rule")
    text = open(path, encoding="utf-8").read()
    assert "features.1</code> Conv2d &rarr; shape (6, 16, 16)" in text and ">equal<" in text
    with bp.no_grad():
        logits = np_(net(bp.data.load_digits().x_test[2:3]))[0]
    assert info["prediction"] == int(logits.argmax())
    _, svgs = check_self_contained(text)
    assert len(svgs) > 50  # one small heat map per feature map


def test_explain_tiny_prints_every_number_and_matches_the_engine(tmp_path):
    lines = []
    path, info = explain_tiny(str(tmp_path / "xor.html"), echo=lines.append, train_steps=2000)
    assert info["max_abs_diff"] < 1e-12 and info["solved"]
    checks = [s for s in lines if "engine .grad" in s]
    assert len(checks) == 9 and all(s.rstrip().endswith("ok") for s in checks)  # W1 (4), b1 (2), W2 (2), b2 (1)
    # the forward numbers, by hand from the printed weights' source: the same seed in NumPy terms
    vals = {m.group(1): float(m.group(2)) for m in (re.match(r"\s+(\S+)\s+=.*= +(-?[0-9.]+)", s) for s in lines) if m}
    assert vals["h0"] == pytest.approx(math.tanh(vals["z0"]), abs=2e-6)
    assert vals["p"] == pytest.approx(1 / (1 + math.exp(-vals["z"])), abs=2e-6)
    assert vals["L"] == pytest.approx((vals["p"] - 1.0) ** 2, abs=2e-6)  # example 2 is (1, 0) -> 1
    assert vals["dL/dz"] == pytest.approx(2 * (vals["p"] - 1) * vals["p"] * (1 - vals["p"]), abs=2e-6)
    assert info["loss_after"] < info["loss"]
    check_self_contained((tmp_path / "xor.html").read_text())
    out = cli("explain", "--tiny", cwd=str(tmp_path))
    assert out.count(" ok") == 9 and "XOR solved" in out and (tmp_path / "xor-explain.html").exists()


# ------------------------------------------------------------------------------- in Chromium


def nonblank(img):
    """A screenshot holds a rendered page: enough ink, many colours, and ink in every fifth
    of its height (a page that stopped rendering half-way fails)."""
    rgb = img[..., :3].astype(int)
    ink = (rgb < 235).any(-1)
    colours = len(np.unique(rgb.reshape(-1, 3) // 8, axis=0))
    bands = [ink[i * ink.shape[0] // 5 : (i + 1) * ink.shape[0] // 5].mean() for i in range(5)]
    return ink.mean() > 0.03 and colours > 40 and min(bands) > 0.005


@pytest.fixture(scope="module")
def browser():
    tool_or_skip("Chromium (apt-get install chromium)", headless.find_browser() is not None)
    with headless.Browser() as b:
        yield b


def check_render(browser, path, text):
    r = browser.open(str(path), width=1100, scale=0.5)
    assert r.errors == [], r.errors
    page = "file://" + os.path.abspath(path)
    assert [u for u in r.requests if u != page and not u.startswith("data:")] == []
    assert r.dom["scripts"] == 0 and r.dom["title"]
    assert r.dom["svgs"] == r.dom["svgs_drawn"] == text.count("<svg") > 0
    assert r.dom["images"] == r.dom["images_decoded"]
    assert r.dom["width"] <= 1100  # nothing wider than the window
    img = headless.decode_png(r.png)
    assert img.shape[0] >= r.dom["height"] // 2 - 1 and nonblank(img)
    return r


def test_reports_render_in_headless_chromium(browser, report, tmp_path):
    path, _, text = report
    r = check_render(browser, path, text)
    assert r.dom["height"] > 3000 and r.dom["text_chars"] > 2000 and r.dom["images"] == 2
    tiny, _ = explain_tiny(str(tmp_path / "xor.html"), echo=lambda s: None, train_steps=200)
    check_render(browser, tiny, open(tiny).read())


def test_the_browser_check_catches_errors_requests_and_blank_pages(browser, tmp_path):
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>"
                   "<script>console.error('drawn wrong'); throw new Error('boom')</script>"
                   "<img src='http://127.0.0.1:9/pixel.png'></body></html>")
    r = browser.open(str(bad))
    assert any("drawn wrong" in e for e in r.errors) and any("boom" in e for e in r.errors)
    assert "http://127.0.0.1:9/pixel.png" in r.requests and r.dom["scripts"] == 1
    with pytest.raises(AssertionError):
        check_self_contained(bad.read_text())
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><head><title>b</title></head><body></body></html>")
    assert not nonblank(headless.decode_png(browser.open(str(blank), scale=0.25).png))


def test_graph_renders_with_graphviz(tmp_path):
    tool_or_skip("Graphviz (apt-get install graphviz)", shutil.which("dot") is not None)
    bp.manual_seed(0)
    m = models.mlp(4, [3], 2)
    loss = F.cross_entropy(m(bp.randn(5, 4)), bp.tensor([0, 1, 0, 1, 1]))
    g = viz.graph(loss, params=dict(m.named_parameters()))
    loss.backward()
    svg = open(g.render(str(tmp_path / "g.svg"))).read()
    root = ET.fromstring(svg[svg.index("<svg"):])
    ns = "{http://www.w3.org/2000/svg}"
    drawn = root.findall(f".//{ns}g[@class='node']")
    edges = root.findall(f".//{ns}g[@class='edge']")
    assert len(drawn) == len(g.nodes) and len(edges) == len(g.edges)
    assert {e.find(f"{ns}title").text for e in edges} == {f"{c}->{p}" for c, p in g.edges}
    assert g.render(str(tmp_path / "g.png")) and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------- GPU


def test_graph_monitor_and_attribution_on_the_gpu():
    gpu_or_skip()
    data = bp.data.load_digits()
    x, y = data.x_train[:32], data.y_train[:32]
    out = {}
    for dev in ("cpu", "gpu"):
        bp.manual_seed(0)
        m = models.mlp(64, [16], 10).to(dev)
        opt = bp.optim.SGD(m.parameters(), lr=0.1)
        mon = viz.Monitor(m, opt, warn=False)
        with viz.trace(m) as tr:
            loss = F.cross_entropy(m(x.to(dev)), y.to(dev))
        g = viz.graph(loss, params=dict(m.named_parameters()))
        gm = viz.graph(loss, params=dict(m.named_parameters()), collapse="module", trace=tr)
        assert {"0: Linear", "1: ReLU", "2: Linear"} <= {n.title for n in gm.nodes.values()}
        assert not any(n.kind in ("param", "leaf") for n in gm.nodes.values())  # each folded into its module
        opt.zero_grad()
        loss.backward()
        grads = {n: np_(p.grad.to("cpu")) for n, p in m.named_parameters()}
        opt.step()
        mon.detach()
        a = viz.attribute(m, F.cross_entropy, x[:1].to(dev), y[:1].to(dev), steps=32)
        out[dev] = (g, grads, mon.records, a)
    g, grads, recs, a = out["gpu"]
    dev = str(g.find("0.weight")[0].device)
    assert dev.startswith("gpu") and f"float32 {dev}" in g.source
    for name, ref in grads.items():
        assert g.find(name)[0].grad.norm == pytest.approx(np.linalg.norm(ref), rel=1e-5)
        np.testing.assert_allclose(ref, out["cpu"][1][name], rtol=1e-4, atol=1e-6)
    for rg, rc in zip(recs, out["cpu"][2]):
        for q in viz.QUANTITIES:
            if rc[q] is not None:
                assert rg[q] == pytest.approx(rc[q], rel=1e-3, abs=1e-6), q
    assert a.relative_residual < 0.01
    assert a.total == pytest.approx(out["cpu"][3].total, rel=1e-3)
