"""The fresh-process workloads: peak memory while training the MLP, and import time. Each
framework runs in a process of its own, started by ``harness.run_subprocess_workload``; the
memory child is ``bench/_child.py``, imported by nothing here and started by its path."""

from __future__ import annotations

from ..frameworks import BP_CPU, NUMPY, TORCH
from ..harness import CHILD, Workload

_MODULE = {BP_CPU: "backprop_rs", NUMPY: "numpy", TORCH: "torch"}


def process_workloads(quick: bool) -> list[Workload]:
    """``peak_rss_mlp`` (300 steps; 20 in quick mode), ``peak_rss_sdpa_T1024`` /
    ``peak_rss_sdpa_T4096`` (T 64 / 256 in quick mode) and ``import_time``."""
    steps = 20 if quick else 300
    sdpa = [
        Workload(f"peak_rss_sdpa_T{t}", f"peak RSS of a fresh process running causal scaled_dot_product_attention "
                 f"fwd+bwd on q/k/v [1,8,{n},64]", {"batch": 1, "heads": 8, "T": n, "head_dim": 64}, None,
                 frameworks=(BP_CPU, TORCH), kind="rss", unit="MB",
                 command=lambda fw, n=n: [CHILD, "peak_rss_sdpa", fw, str(n)])
        for t in (1024, 4096) for n in [t // 16 if quick else t]
    ]
    return [
        Workload("peak_rss_mlp", f"peak RSS of a fresh process training the MLP at batch 64 for {steps} steps",
                 {"batch": 64, "steps": steps}, None, frameworks=(BP_CPU, NUMPY, TORCH), kind="rss", unit="MB",
                 command=lambda fw: [CHILD, "peak_rss_mlp", fw, str(steps)]),
        # `python -c "import X"` and nothing else: the time measured is the interpreter's start-up
        # (reported separately) plus the import
        Workload("import_time", "wall time of `python -c \"import <framework>\"` in a fresh process", {}, None,
                 frameworks=(BP_CPU, NUMPY, TORCH), kind="import", unit="s",
                 command=lambda fw: ["-c", f"import {_MODULE[fw]}"]),
    ] + sdpa
