"""The fresh processes of the memory workloads: ``python .../bench/_child.py WORKLOAD FRAMEWORK N``.

``peak_rss_mlp``: imports one framework, trains the bench's MLP at batch 64 for N steps, and
prints one JSON line: the peak resident memory and the RSS after set-up, after 10 % of the steps
and at the end. ``peak_rss_sdpa``: causal ``scaled_dot_product_attention`` forward + backward
on q/k/v [1, 8, N, 64] (twice), and the same memory facts: how memory grows with the sequence.

It is started by its file path, not with ``python -m backprop_rs.bench._child``: ``-m`` would
first import the package ``backprop_rs``, which loads the engine's extension, and the NumPy and
PyTorch processes must not carry backprop_rs's memory. So for those two the parent packages are
registered bare (their ``__path__`` only, ``__init__`` not run), and ``backprop_rs.bench.nets``,
which imports only the standard library, is imported by its module path. The JSON's
``engine_loaded`` says whether backprop_rs's extension ended up in the process.
Only the standard library is imported before the framework, so every process pays the same.
"""

import json
import os
import resource
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.dirname(os.path.dirname(HERE))  # the directory that holds backprop_rs/


def rss_now_mb():
    """Resident memory now, in MB (Linux), else None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return None


def ru_maxrss_mb():
    """``getrusage``'s peak resident memory in MB."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 2**20 if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB on Linux


def peak_mb():
    """This process's peak resident memory in MB.

    Linux: VmHWM, the high-water mark of this process's own memory map. ru_maxrss is not used
    there because exec keeps the larger of the old and new maps' peaks, so a child forked from a
    100 MB benchmark would report at least 100 MB whatever it did.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return ru_maxrss_mb()


def bare_packages(*names):
    """Registers packages under PYTHON_DIR by their directories alone, without running their
    ``__init__``, so a submodule can be imported by its module path."""
    for name in names:
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = [os.path.join(PYTHON_DIR, *name.split("."))]
            sys.modules[name] = pkg


def mlp_step(fw, xa, ya, rng):
    """The framework's MLP (the bench's weights) and a step on the batch (xa, ya)."""
    if fw == "numpy":
        bare_packages("backprop_rs", "backprop_rs.bench")
        from backprop_rs.bench import nets

        mlp = nets.NumpyMLP(nets.NumpyMLP.init_params(rng))
        return lambda: mlp.step(xa, ya)
    if fw == "torch":
        bare_packages("backprop_rs", "backprop_rs.bench")
        import torch as mod

        from backprop_rs.bench import nets
    else:
        import backprop_rs as mod
        from backprop_rs.bench import nets
    model = nets.load_model(mod, nets.mlp_layers, nets.NumpyMLP.init_params(rng))
    opt = mod.optim.SGD(model.parameters(), lr=nets.MLP_LR, momentum=nets.MLP_MOMENTUM)
    loss_fn = mod.nn.CrossEntropyLoss()
    x, y = mod.tensor(xa), mod.tensor(ya)

    def step():
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss

    return step


def peak_rss_mlp(fw, steps):
    """Trains the MLP at batch 64 for ``steps`` steps; returns the memory facts."""
    import numpy as np

    rng = np.random.default_rng(0)
    xa = rng.standard_normal((64, 784), dtype=np.float32)
    ya = rng.integers(0, 10, 64, dtype=np.int64)
    step = mlp_step(fw, xa, ya, rng)
    after_setup = rss_now_mb()
    early = None
    loss = None
    for i in range(steps):
        loss = step()
        if i == steps // 10:
            early = rss_now_mb()
    return {"peak_mb": peak_mb(), "ru_maxrss_mb": ru_maxrss_mb(), "rss_after_setup_mb": after_setup,
            "rss_early_mb": early, "rss_end_mb": rss_now_mb(),
            "final_loss": float(loss.item() if hasattr(loss, "item") else loss),
            "engine_loaded": "backprop_rs._core" in sys.modules}


def peak_rss_sdpa(fw, steps):
    """Causal attention forward + backward at sequence length ``steps`` (the CLI's N), twice."""
    import numpy as np

    if fw == "torch":
        import torch as mod
    else:
        import backprop_rs as mod
    rng = np.random.default_rng(0)
    shape = (1, 8, steps, 64)
    q, k, v, g = (mod.tensor(rng.standard_normal(shape, dtype=np.float32)) for _ in range(4))
    for t in (q, k, v):
        t.requires_grad_()
    after_setup = rss_now_mb()
    total = None
    for _ in range(2):
        q.grad = k.grad = v.grad = None
        mod.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        total = float(q.grad.sum() + k.grad.sum() + v.grad.sum())
    return {"peak_mb": peak_mb(), "ru_maxrss_mb": ru_maxrss_mb(), "rss_after_setup_mb": after_setup,
            "rss_end_mb": rss_now_mb(), "grad_sum": total, "engine_loaded": "backprop_rs._core" in sys.modules}


WORKLOADS = {"peak_rss_mlp": peak_rss_mlp, "peak_rss_sdpa": peak_rss_sdpa}


def main(argv):
    """``WORKLOAD FRAMEWORK STEPS``: runs it and prints its JSON line."""
    # Started by path, sys.path[0] is this directory; the directory above the package takes its
    # place, so ``import backprop_rs`` finds the same package as the parent that started us.
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == HERE:
        sys.path[0] = PYTHON_DIR
    workload, fw, steps = argv
    print(json.dumps(WORKLOADS[workload](fw, int(steps))))


if __name__ == "__main__":
    main(sys.argv[1:])
