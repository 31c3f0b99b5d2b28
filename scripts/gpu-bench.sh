#!/usr/bin/env bash
# The real-GPU benchmark (issue 18): on a machine with a GPU and a Vulkan driver, installs the
# built wheel into a fresh venv, prints the adapter, runs `backprop-rs bench --device cpu,gpu`
# (PyTorch's CUDA column appears when PyTorch with CUDA is installed there), the GPU counters of
# one steady-state training step per workload, and writes the JSON and the plot.
#
# Usage:
#   maturin build --release -o dist          # here, where the Rust toolchain is
#   bash scripts/gpu-bench.sh dist/backprop_rs-*.whl [OUT_DIR] [--quick]
#
# NVIDIA machines without a system Vulkan loader: unpack libvulkan1 (and its friends) first and
# point the loader at the driver's ICD, e.g.
#   for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
#   export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
# (see the device notes in BENCHMARKS.md). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for
# the bench only, so NumPy runs its native kernels (the bench header reports which).
set -euo pipefail
wheel=${1:?usage: gpu-bench.sh WHEEL [OUT_DIR] [--quick]}
out=${2:-gpu-bench-out}
quick=${3:-}
mkdir -p "$out"
py=${PYTHON:-python3}
venv="$out/venv"
"$py" -m venv --system-site-packages "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" "numpy>=1.22" "tqdm>=4.60" \
    "threadpoolctl>=3" "matplotlib>=3.5" 2>&1 | tail -2 || true

echo "== machine"
uname -a
nproc
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv) || true
"$venv/bin/python" - <<'PY'
import backprop_rs as bp
print("gpu available:", bp.gpu.is_available())
if bp.gpu.is_available():
    print("adapter:", bp.gpu.adapter_info())
PY

echo "== counters of one steady-state step"
"$venv/bin/python" - <<'PY' | tee "$out/counters.json"
import json
import backprop_rs as bp
import backprop_rs.nn as nn
import backprop_rs.nn.functional as F

def count(name, model, opt, x, y):
    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    # the pool hands every tensor the same buffer (and so the same cached bind group) as the
    # step before only after a few steps: six warm-up steps, as the counter test in CI
    for _ in range(6):
        step()
    bp.gpu.synchronize()
    a = bp.gpu.counters()
    step()
    bp.gpu.synchronize()
    b = bp.gpu.counters()
    return {k: b[k] - a[k] for k in b}

res = {}
if bp.gpu.is_available():
    bp.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10)).to("gpu")
    res["mlp_adam_b64"] = count("mlp", mlp, bp.optim.Adam(mlp.parameters(), lr=1e-3),
                                bp.randn(64, 784).to("gpu"), bp.randint(0, 10, (64,)).to("gpu"))
    from backprop_rs import models
    if hasattr(models, "LeNet5"):
        net = models.LeNet5().to("gpu")
        res["lenet_sgd_b64"] = count("lenet", net, bp.optim.SGD(net.parameters(), lr=0.01, momentum=0.9),
                                     bp.randn(64, 1, 8, 8).to("gpu"), bp.randint(0, 10, (64,)).to("gpu"))
print(json.dumps(res, indent=1))
PY

echo "== bench (cpu and gpu columns)"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$venv/bin/python" -m backprop_rs bench --device cpu,gpu \
    --json "$out/bench.json" --plot "$out/bench.png" $quick
echo "results in $out/"
