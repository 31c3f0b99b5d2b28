"""`backprop-rs bench`: the command runs, its JSON has the documented shape, every framework that
ran produced a positive finite median (no timing thresholds: CI machines are noisy), the package
imports one way, and the hand-written NumPy peers compute the same gradients and updates as
backprop_rs."""

import ast
import importlib.util
import json
import math
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest

import backprop_rs as bp
from backprop_rs.__main__ import main
from backprop_rs.bench import frameworks, nets
from backprop_rs.bench.workloads import all_workloads

QUICK_WORKLOADS = ["add_16M", "graph_4op_fwd_bwd", "mlp_step_b64", "conv_7x7s2_3to64_224px", "lenet_step_b64",
                   "peak_rss_mlp", "import_time"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    rc = main(["bench", "--quick", "--only", ",".join(QUICK_WORKLOADS), "--json", str(path)])
    assert rc == 0
    return json.loads(path.read_text())


def test_json_structure(quick_run):
    doc = quick_run
    assert doc["schema"] == 1
    assert doc["config"]["quick"] is True
    assert isinstance(doc["machine"], str) and doc["machine"]
    for key in ("cpu", "logical_cpus", "simd", "threads"):
        assert key in doc["machine_info"]
    assert doc["machine_info"]["simd"] in ("avx512", "avx2+fma", "neon", "scalar")
    v = doc["versions"]
    assert v["backprop_rs"] == bp.__version__ and v["numpy"] == np.__version__ and v["python"]
    assert "torch" in v
    fws = doc["frameworks"]
    assert fws[0] == "backprop_rs-cpu" and "numpy" in fws
    assert ("torch" in fws) == (importlib.util.find_spec("torch") is not None)
    assert list(doc["workloads"]) == QUICK_WORKLOADS
    for name, w in doc["workloads"].items():
        for key in ("description", "params", "kind", "unit", "best_peer", "ratio_to_best_peer", "results"):
            assert key in w, (name, key)
        for fw in fws:
            r = w["results"][fw]
            assert r["error"] is None, (name, fw, r["error"])
            assert math.isfinite(r["median"]) and r["median"] > 0, (name, fw)
            assert r["samples"] and all(math.isfinite(s) and s > 0 for s in r["samples"])
            assert r["median"] == pytest.approx(float(np.median(r["samples"])))
        assert w["best_peer"] in fws
        ratio = w["ratio_to_best_peer"]["backprop_rs-cpu"]
        assert math.isfinite(ratio) and ratio > 0


def test_results_agree_with_numpy(quick_run):
    # each framework's first result was compared with NumPy's before timing
    for name in ("add_16M", "graph_4op_fwd_bwd", "mlp_step_b64", "conv_7x7s2_3to64_224px", "lenet_step_b64"):
        r = quick_run["workloads"][name]["results"]
        assert r["backprop_rs-cpu"]["check"] == "ok", (name, r["backprop_rs-cpu"]["check"])


def test_throughput_and_subprocess_extras(quick_run):
    w = quick_run["workloads"]
    add = w["add_16M"]
    assert add["metric_unit"] == "GB/s"
    n = add["params"]["n"]
    for r in add["results"].values():
        assert r["metric"] == pytest.approx(12 * n / r["median"] / 1e9)
    assert w["import_time"]["python_startup_s"] > 0
    details = w["peak_rss_mlp"]["results"]["backprop_rs-cpu"]["details"][0]
    assert details["peak_mb"] >= details["rss_end_mb"] > 0
    assert math.isfinite(details["final_loss"])
    # the NumPy process imports the bench's NumPy MLP by module path without loading the engine
    rss = w["peak_rss_mlp"]["results"]
    assert rss["backprop_rs-cpu"]["details"][0]["engine_loaded"] is True
    assert rss["numpy"]["details"][0]["engine_loaded"] is False


def test_unknown_workload_and_device(capsys):
    assert main(["bench", "--quick", "--only", "nope"]) == 2
    assert "sgemm_256" in capsys.readouterr().err
    assert main(["bench", "--quick", "--device", "tpu"]) == 2


def test_list_names_every_workload(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for w in all_workloads(quick=False):
        assert w.name in out


def test_plot_without_matplotlib_is_not_an_error(tmp_path, capsys):
    png = tmp_path / "bench.png"
    rc = main(["bench", "--quick", "--only", "graph_4op_fwd_bwd", "--plot", str(png)])
    assert rc == 0
    if importlib.util.find_spec("matplotlib") is None:
        assert "matplotlib" in capsys.readouterr().err and not png.exists()
    else:
        assert png.stat().st_size > 0


def test_gpu_column_is_skipped_or_runs(capsys):
    ok, _ = frameworks.gpu_status(bp)
    assert main(["bench", "--quick", "--device", "cpu,gpu", "--only", "graph_4op_fwd_bwd"]) == 0
    out = capsys.readouterr().out
    if not ok:
        assert "no GPU adapter found" in out
    else:
        assert "backprop_rs-gpu" in out


def test_cpu_info():
    info = bp._core._cpu_info()
    assert info["simd"] in ("avx512", "avx2+fma", "neon", "scalar")
    assert isinstance(info["threads"], int) and info["threads"] >= 1


# ------------------------------------------------------------------ the NumPy MLP peer is correct


def _same_weights(rng, batch):
    params = nets.NumpyMLP.init_params(rng)
    x = rng.standard_normal((batch, nets.MLP_SIZES[0]), dtype=np.float32)
    y = rng.integers(0, nets.MLP_SIZES[-1], batch, dtype=np.int64)
    return params, x, y


@pytest.mark.parametrize("batch", [1, 16])
def test_numpy_mlp_gradients_match_backprop_rs(rng, batch):
    params, x, y = _same_weights(rng, batch)
    loss_np, grads_np = nets.NumpyMLP(params).loss_and_grads(x.copy(), y)

    model = nets.bp_mlp(bp, params)
    loss = bp.nn.CrossEntropyLoss()(model(bp.tensor(x)), bp.tensor(y))
    loss.backward()
    assert loss_np == pytest.approx(loss.item(), rel=1e-5)
    for (name, p), g in zip(model.named_parameters(), grads_np):
        assert p.grad.shape == g.shape, name
        # float32 throughout; sums of up to 784 products in different orders
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-4, atol=1e-6, err_msg=name)


def test_numpy_mlp_sgd_momentum_matches_backprop_rs(rng):
    params, x, y = _same_weights(rng, 8)
    mlp = nets.NumpyMLP(params)
    model = nets.bp_mlp(bp, params)
    opt = bp.optim.SGD(model.parameters(), lr=nets.MLP_LR, momentum=nets.MLP_MOMENTUM)
    loss_fn = bp.nn.CrossEntropyLoss()
    bx, by = bp.tensor(x), bp.tensor(y)
    for _ in range(3):  # the first step initialises the momentum buffer; later ones use it
        expected = mlp.step(x, y)
        loss = loss_fn(model(bx), by)
        loss.backward()
        opt.step()
        opt.zero_grad()
        assert expected == pytest.approx(loss.item(), rel=1e-5)
    for p, a in zip(model.parameters(), mlp.params):
        np.testing.assert_allclose(p.detach().numpy(), a, rtol=1e-4, atol=1e-6)


def test_gpu_column_survives_a_backend_that_fails(monkeypatch, tmp_path):
    # The GPU backend is optional and still growing: an adapter that reports itself available but
    # cannot run a workload must give an "error" cell, not a crashed benchmark.
    calls = []
    fake_gpu = types.SimpleNamespace(is_available=lambda: True, synchronize=lambda: calls.append(1))
    monkeypatch.setattr(bp, "gpu", fake_gpu, raising=False)
    path = tmp_path / "gpu.json"
    assert main(["bench", "--quick", "--device", "cpu,gpu", "--only", "graph_4op_fwd_bwd", "--json", str(path)]) == 0
    doc = json.loads(path.read_text())
    assert "backprop_rs-gpu" in doc["frameworks"]
    r = doc["workloads"]["graph_4op_fwd_bwd"]["results"]["backprop_rs-gpu"]
    assert r["error"] is not None or (r["median"] > 0 and calls)


# ------------------------------------------------------------------ the NumPy conv peers are correct


@pytest.mark.parametrize("stride,pad,kernel", [(1, 1, 3), (2, 3, 7), (1, 0, 1), (2, 0, 3)])
def test_numpy_conv_peer_matches_backprop_rs(rng, stride, pad, kernel):
    x = rng.standard_normal((2, 3, 11, 11)).astype(np.float32)
    w = rng.standard_normal((4, 3, kernel, kernel)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    y_np, cols = nets.np_conv2d(np, x, w, b, stride, pad)
    g = rng.standard_normal(y_np.shape).astype(np.float32)
    gx_np, gw_np, gb_np = nets.np_conv2d_backward(np, g, cols, x.shape, w, stride, pad)

    bx, bw, bb = (bp.tensor(a).requires_grad_() for a in (x, w, b))
    y = bp.nn.functional.conv2d(bx, bw, bb, stride=stride, padding=pad)
    y.backward(bp.tensor(g))
    np.testing.assert_allclose(y.detach().numpy(), y_np, rtol=1e-4, atol=1e-4)
    for name, got, want in (("x", bx, gx_np), ("w", bw, gw_np), ("b", bb, gb_np)):
        np.testing.assert_allclose(got.grad.numpy(), want, rtol=1e-4, atol=1e-4, err_msg=name)


def test_numpy_lenet_step_matches_backprop_rs(rng):
    params = nets.NumpyLeNet.init_params(rng)
    x = rng.standard_normal((4, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 4, dtype=np.int64)
    loss_np, grads_np = nets.NumpyLeNet(params).loss_and_grads(x, y)
    model = nets.bp_lenet(bp, params)
    loss = bp.nn.CrossEntropyLoss()(model(bp.tensor(x)), bp.tensor(y))
    loss.backward()
    assert loss_np == pytest.approx(loss.item(), rel=1e-5)
    for (name, p), g in zip(model.named_parameters(), grads_np):
        assert p.grad.shape == g.shape, name
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-3, atol=1e-5, err_msg=name)


# ------------------------------------------------------------------ the package imports one way


BENCH_DIR = pathlib.Path(nets.__file__).parent
STDLIB_ONLY = ("nets.py", "frameworks.py", "machine.py", "cli.py", "_child.py", "__init__.py")


def _module_name(path):
    return ".".join(path.relative_to(BENCH_DIR.parents[1]).with_suffix("").parts).removesuffix(".__init__")


MODULES = {_module_name(p): p for p in BENCH_DIR.rglob("*.py")}


def _bench_imports(path):
    """The modules of the bench package that ``path`` imports, relatively or absolutely."""
    here = _module_name(path)
    pkg = here if path.name == "__init__.py" else here.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = pkg.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(x for x in (base, node.module or "") if x)
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]  # `from . import x` imports module x
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n in MODULES and n != here}
    return out


def test_bench_imports_form_no_cycle():
    graph = {m: _bench_imports(p) for m, p in MODULES.items()}
    state = {}

    def visit(m, stack):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import cycle: {' -> '.join([*stack, m])}"
        state[m] = "open"
        for n in sorted(graph[m]):
            visit(n, [*stack, m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


@pytest.mark.parametrize("name,allowed", [
    ("__init__.py", set()),
    ("nets.py", set()),  # the NumPy memory child imports it: the standard library only
    ("frameworks.py", set()),
    ("machine.py", set()),
    ("cli.py", {"backprop_rs.bench.runner"}),  # imported when a run starts, not with the flags
    ("_child.py", {"backprop_rs.bench", "backprop_rs.bench.nets"}),
])
def test_leaf_modules_import_little_of_the_bench(name, allowed):
    assert _bench_imports(BENCH_DIR / name) <= allowed


def test_no_source_text_is_shipped_to_children():
    for path in MODULES.values():
        assert "getsource" not in path.read_text(), f"{path.name} ships source text to a child process"


def test_python_dash_m_bench_lists_the_workloads():
    r = subprocess.run([sys.executable, "-m", "backprop_rs.bench", "--list"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert "sgemm_256" in r.stdout and "peak_rss_mlp" in r.stdout
