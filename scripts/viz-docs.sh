#!/usr/bin/env bash
# Regenerates the pictures of bp.viz that README.md shows (docs/): the graph of a small MLP's
# loss after one backward pass (Graphviz), and the explain report of a digits checkpoint trained
# with --monitor/--allocate-loss (HTML, and a headless-Chromium screenshot of it).
# Needs the built package on PYTHONPATH (or installed), Graphviz and Chromium
# (scripts/setup-viz-tools.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p docs

$py - <<'PY'
import backprop_rs as bp
from backprop_rs import viz

bp.manual_seed(0)
model = bp.nn.Sequential(bp.nn.Linear(4, 3), bp.nn.ReLU(), bp.nn.Linear(3, 2))
x, y = bp.randn(5, 4), bp.tensor([0, 1, 1, 0, 1])
loss = bp.nn.functional.cross_entropy(model(x), y)
g = viz.graph(loss, params=dict(model.named_parameters()), title="cross_entropy(model(x), y) after loss.backward()")
loss.backward()
g.render("docs/viz-graph.svg")
print("docs/viz-graph.svg")
PY

$py -m backprop_rs train --epochs 10 --monitor "$work/mon" --allocate-loss --quiet --out "$work/digits.safetensors"
$py -m backprop_rs explain "$work/digits.safetensors" --index 5 --out docs/explain-example.html
$py tests/headless.py docs/explain-example.html "$work/full.png" 1100 > /dev/null
$py - "$work/full.png" <<'PY'
import sys
from PIL import Image  # matplotlib brings Pillow; only this docs script needs it

im = Image.open(sys.argv[1]).convert("RGB")
w, h = im.size
im = im.resize((w * 3 // 5, h * 3 // 5), Image.LANCZOS)
im.quantize(colors=128).save("docs/viz-explain.png", optimize=True)
print("docs/viz-explain.png", im.size)
PY
