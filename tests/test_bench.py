"""`backprop-rs bench`: the command runs, its JSON has the documented shape, every framework that
ran produced a positive finite median (no timing thresholds: CI machines are noisy), the header
and JSON tell the truth about the peers (BLAS, kernel, threads, overrides), the package imports
one way, and the hand-written NumPy peers compute the same gradients and updates as
backprop_rs."""

import ast
import dataclasses
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
from backprop_rs.bench import frameworks, harness, machine, nets, peers, report
from backprop_rs.bench.workloads import all_workloads

SEQUENCE_WORKLOADS = ["lstm_step", "transformer_block_step", "sdpa_T256", "sdpa_T1024", "sdpa_T4096"]
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
    assert w["peak_rss_mlp"]["child_threads"] == quick_run["machine_info"]["threads"]


def test_attention_memory_grows_linearly_in_the_sequence():
    """The fused attention's forward + backward at T = 512 and 4096 in fresh processes: the
    [8, T, T] float32 scores alone would be 8 MB and 512 MB, and the math path keeps several;
    the fused kernels' extra memory is the inputs, outputs and gradients, 8x from 512 to 4096
    (about 50 MB here). The bound sits far from both."""
    def peak(t):
        p = harness.run_child([harness.CHILD, "peak_rss_sdpa", "backprop_rs-cpu", str(t)],
                              env=harness.child_env(1))
        assert p.returncode == 0, p.stderr
        info = json.loads(p.stdout.strip().splitlines()[-1])
        assert math.isfinite(info["grad_sum"]) and info["engine_loaded"] is True
        assert info["peak_mb"] >= info["rss_end_mb"] > 0
        return info["peak_mb"]

    grown = peak(4096) - peak(512)
    assert grown < 200, f"peak memory grew by {grown:.0f} MB from T=512 to T=4096"


def test_json_records_the_peers(quick_run):
    p = quick_run["peers"]
    assert p["threads"] == quick_run["machine_info"]["threads"]
    for key in ("threadpoolctl", "cpu_simd_level", "environment", "warnings", "notes", "rerun_command", "libraries"):
        assert key in p, key
    assert p["numpy"]["version"] == np.__version__
    if importlib.util.find_spec("threadpoolctl") is None:
        assert p["threadpoolctl"] is None and p["libraries"] is None
        assert any("threadpoolctl is not installed" in n for n in p["notes"])
    assert (p["torch"] is None) == (importlib.util.find_spec("torch") is None)


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


# ------------------------------------------------------------------ the sequence-model rows (no NumPy column)


def test_sequence_rows_run_without_a_numpy_column(tmp_path, capsys):
    path = tmp_path / "seq.json"
    assert main(["bench", "--quick", "--only", ",".join(SEQUENCE_WORKLOADS), "--json", str(path)]) == 0
    out = capsys.readouterr().out
    doc = json.loads(path.read_text())
    assert list(doc["workloads"]) == SEQUENCE_WORKLOADS
    has_torch = importlib.util.find_spec("torch") is not None
    for name, w in doc["workloads"].items():
        assert "numpy" not in w["results"], name  # the column exists for the run, not for these rows
        assert ("torch" in w["results"]) == has_torch
        for fw, r in w["results"].items():
            assert r["error"] is None, (name, fw, r["error"])
            assert math.isfinite(r["median"]) and r["median"] > 0, (name, fw)
            # compared with the NumPy float64 reference (there is no NumPy column to compare with)
            assert r["check"] == "ok", (name, fw, r["check"])
        if has_torch:
            assert w["best_peer"] == "torch" and w["ratio_to_best_peer"]["backprop_rs-cpu"] > 0
        else:
            assert w["best_peer"] is None and w["ratio_to_best_peer"] == {}
        # the report's row: the backprop_rs time, "-" for NumPy, a ratio only with a peer
        row = next(line for line in out.splitlines() if line.startswith(name + " ")).split()
        assert row[-1].endswith("x") if has_torch else row[-3:] == ["-", "-", "-"]
    assert "no NumPy column" in out and "ERROR" not in out and "WARNING" not in out
    assert doc["workloads"]["lstm_step"]["params"]["hidden"] == 64  # --quick shrank it


def test_sequence_rows_with_a_torch_column(monkeypatch):
    # PyTorch is not a dependency: stand backprop_rs (whose API is PyTorch's) in for it, so the torch
    # column, the best peer and the ratio are exercised where torch is not installed
    np_env = frameworks.Env(bp=bp, np=np, torch=bp, quick=True,
                            frameworks=[frameworks.BP_CPU, frameworks.NUMPY, frameworks.TORCH])
    wls = [w for w in all_workloads(quick=True) if w.name in ("lstm_step", "sdpa_T256")]
    results = {w.name: harness.run_timed(np_env, w, harness.QUICK, None) for w in wls}
    summaries = {w.name: report.summarise(results[w.name]) for w in wls}
    for w in wls:
        cells = results[w.name]
        assert set(cells) == {"backprop_rs-cpu", "torch"}
        assert all(c.check == "ok" and c.median > 0 for c in cells.values()), w.name
        assert summaries[w.name]["best_peer"] == "torch"
    table = report.render_table(np_env.frameworks, wls, results, summaries)
    row = next(line for line in table.splitlines() if line.startswith("lstm_step"))
    assert row.split()[-1].endswith("x") and " - " in row  # a ratio; "-" in the NumPy column


def test_sequence_check_catches_a_wrong_result():
    env = frameworks.Env(bp=bp, np=np, torch=None, quick=True, frameworks=[frameworks.BP_CPU])
    w = next(w for w in all_workloads(quick=True) if w.name == "sdpa_T256")
    wrong = dataclasses.replace(w, reference=lambda e: w.reference(e) * 1.01)
    cell = harness.run_timed(env, wrong, harness.QUICK, None)["backprop_rs-cpu"]
    assert cell.check.startswith("differs from the NumPy reference's result"), cell.check
    broken = dataclasses.replace(w, reference=lambda e: 1 / 0)
    cell = harness.run_timed(env, broken, harness.QUICK, None)["backprop_rs-cpu"]
    assert "the NumPy reference failed: ZeroDivisionError" in cell.check and cell.median > 0


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


# ------------------------------------------------------------------ the header tells the truth about the peers

AVX512_FLAGS = {"sse2", "sse4_2", "avx", "avx2", "fma", "avx512f"}
KERNEL_VARS = (*peers.KERNEL_VARS, *peers.TUNING_VARS)


@pytest.fixture
def clean_env(monkeypatch):
    """No kernel override in the environment, and a CPU with AVX-512, whatever machine runs this."""
    for var in KERNEL_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(machine, "cpu_flags", lambda *a: set(AVX512_FLAGS))
    return monkeypatch


def test_forced_old_kernel_warns_loudly_with_the_rerun_command(clean_env, tmp_path, capsys):
    clean_env.setenv("OPENBLAS_CORETYPE", "Haswell")
    path = tmp_path / "forced.json"
    assert main(["bench", "--quick", "--only", "graph_4op_fwd_bwd", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    command = f"env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE backprop-rs bench --quick --only graph_4op_fwd_bwd " \
              f"--json {path}"
    header = out.split("workload ")[0]
    assert "!! WARNING: OPENBLAS_CORETYPE=Haswell forces OpenBLAS" in header
    assert "avx512" in header and "SkylakeX-class" in header
    assert command in header
    assert f"rerun: {command}" in out.split("workload ")[-1]  # repeated after the table
    doc = json.loads(path.read_text())
    p = doc["peers"]
    assert p["environment"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert p["forced_by"] == ["OPENBLAS_CORETYPE"]
    assert p["rerun_command"] == command
    assert any("OPENBLAS_CORETYPE=Haswell" in w for w in p["warnings"])
    assert p["cpu_simd_level"] == "avx512"


def test_no_warning_without_overrides(clean_env, capsys):
    # an AVX2 CPU here: NumPy's own detection picks Haswell kernels on AVX2-only hosts and
    # SkylakeX ones on AVX-512 hosts, and neither is older than AVX2, so no host may warn
    clean_env.setattr(machine, "cpu_flags", lambda *a: AVX512_FLAGS - {"avx512f"})
    assert main(["bench", "--quick", "--only", "graph_4op_fwd_bwd"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" not in out and "env -u" not in out


@pytest.mark.parametrize("var,value,forced", [
    ("OPENBLAS_CORETYPE", "SkylakeX", False),  # what this CPU would pick anyway
    ("OPENBLAS_CORETYPE", "sandybridge", True),  # OpenBLAS compares names case-insensitively
    ("OPENBLAS_CORETYPE", "NoSuchCore", False),  # OpenBLAS ignores it; a note, not a warning
    ("MKL_ENABLE_INSTRUCTIONS", "AVX2", True),
    ("MKL_CBWR", "AUTO", False),
    ("MKL_CBWR", "AVX,STRICT", True),
    ("MKL_DEBUG_CPU_TYPE", "5", True),
    ("ATEN_CPU_CAPABILITY", "avx2", True),
    ("ATEN_CPU_CAPABILITY", "avx512", False),
])
def test_each_override_is_ranked_against_the_cpu(clean_env, var, value, forced):
    clean_env.setenv(var, value)
    p = peers.describe(np, None, 2, ["--quick"], cpu_level=machine.simd_level(AVX512_FLAGS))
    assert p["environment"][var] == value
    assert (p["forced_by"] == [var]) is forced
    if forced:
        assert p["rerun_command"].startswith(f"env -u {var} ")
        assert p["rerun_command"].endswith(" backprop-rs bench --quick")
    else:
        assert p["rerun_command"] is None
        assert any(n.startswith(f"{var}={value} is set") for n in p["notes"])


def test_numpy_feature_overrides_are_ranked():
    # names as NumPy spells them; disabling a feature drops NumPy to the level below it
    assert peers.requested_level("NPY_DISABLE_CPU_FEATURES", "AVX512F AVX512_SKX") == 3
    assert peers.requested_level("NPY_DISABLE_CPU_FEATURES", "AVX2,FMA3") == 2
    assert peers.requested_level("NPY_ENABLE_CPU_FEATURES", "SSE SSE2 SSE3 SSSE3 SSE41 POPCNT SSE42") == 1
    assert peers.requested_level("NPY_DISABLE_CPU_FEATURES", "") is None


def test_cpu_levels_from_flags():
    assert machine.LEVEL_NAMES[machine.simd_level(AVX512_FLAGS)] == "avx512"
    assert machine.LEVEL_NAMES[machine.simd_level({"sse2", "avx", "avx2", "fma"})] == "avx2"
    assert machine.LEVEL_NAMES[machine.simd_level({"sse2", "avx", "avx2"})] == "avx"  # AVX2 without FMA
    assert machine.simd_level({"fp", "asimd"}) is None  # Arm: not ranked
    assert machine.simd_level(None) is None


class FakeThreadpoolctl(types.ModuleType):
    """threadpoolctl's two calls, over one OpenBLAS library with a settable thread count."""

    def __init__(self, architecture):
        super().__init__("threadpoolctl")
        self.__version__ = "0.0-fake"
        self.lib = {"user_api": "blas", "internal_api": "openblas", "prefix": "libopenblas", "version": "0.3.99",
                    "threading_layer": "pthreads", "architecture": architecture, "num_threads": 8,
                    "filepath": "/fake/numpy.libs/libopenblas.so"}

    def threadpool_info(self):
        return [dict(self.lib)]

    def threadpool_limits(self, limits, user_api):
        assert user_api == "blas"
        before = self.lib["num_threads"]
        self.lib["num_threads"] = limits
        lib = self.lib
        return types.SimpleNamespace(restore_original_limits=lambda: lib.update(num_threads=before))


class FakeTorch:
    """The few torch calls the peers' description makes."""

    __version__ = "9.9-fake"
    __file__ = "/fake/torch/__init__.py"

    def __init__(self):
        self.threads = 16
        self.backends = types.SimpleNamespace(cpu=types.SimpleNamespace(get_cpu_capability=lambda: "AVX2"))
        config = "  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, LAPACK_INFO=mkl"  # as torch prints it
        self.__config__ = types.SimpleNamespace(show=lambda: config)

    def get_num_threads(self):
        return self.threads

    def set_num_threads(self, n):
        self.threads = n


def test_peers_are_pinned_to_backprop_rs_threads_and_restored(clean_env):
    tpc = FakeThreadpoolctl("SkylakeX")
    clean_env.setitem(sys.modules, "threadpoolctl", tpc)
    torch = FakeTorch()
    p = peers.describe(np, torch, 2, cpu_level=machine.simd_level(AVX512_FLAGS))
    assert p["threadpoolctl"] == "0.0-fake"
    assert [lib["architecture"] for lib in p["numpy"]["blas"]] == ["SkylakeX"]
    assert p["torch"]["cpu_capability"] == "AVX2" and p["torch"]["blas"] == "mkl"
    with peers.pinned_threads(p, torch):
        assert tpc.lib["num_threads"] == 2 and torch.threads == 2
        assert p["numpy"]["threads"] == 2 and p["numpy"]["blas"][0]["num_threads_default"] == 8
        assert p["torch"]["threads"] == 2 and p["torch"]["threads_default"] == 16
        lines = "\n".join(report.peer_lines(p))
    assert tpc.lib["num_threads"] == 8 and torch.threads == 16  # restored
    assert "threads: every framework runs with 2 threads" in lines
    assert "OpenBLAS 0.3.99, kernel SkylakeX, pthreads threading, 2 threads (default 8)" in lines
    assert "torch: ATen CPU capability AVX2, BLAS mkl, 2 threads (default 16)" in lines
    assert p["warnings"] == []


def test_old_kernel_seen_without_an_override_is_a_warning(clean_env):
    # OpenBLAS can pick an old kernel on its own (a VM hiding CPU flags, a build without newer
    # kernels): threadpoolctl's "architecture" shows it even with no variable set
    clean_env.setitem(sys.modules, "threadpoolctl", FakeThreadpoolctl("Haswell"))
    p = peers.describe(np, None, 2, cpu_level=machine.simd_level(AVX512_FLAGS))
    assert len(p["warnings"]) == 1 and "runs its Haswell kernels" in p["warnings"][0]
    assert "no override is set" in p["warnings"][0]
    assert p["rerun_command"] is None  # there is nothing to unset


def test_real_threadpoolctl_pins_numpy_blas():
    tpc = pytest.importorskip("threadpoolctl")
    p = peers.describe(np, None, 1)
    assert p["numpy"]["blas"], "threadpoolctl found no BLAS in NumPy"
    before = [lib["num_threads"] for lib in tpc.threadpool_info() if lib["user_api"] == "blas"]
    with peers.pinned_threads(p, None):
        assert all(lib["num_threads"] == 1 for lib in tpc.threadpool_info() if lib["user_api"] == "blas")
        assert p["numpy"]["threads"] == 1
    assert [lib["num_threads"] for lib in tpc.threadpool_info() if lib["user_api"] == "blas"] == before


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
