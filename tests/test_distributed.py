"""Runs the MPI tests where they must run: in MPI jobs started by ``mpirun``.

* ``tests/mpi`` (collectives vs NumPy, DDP vs single-process training, the sampler, the process
  group) at ``-np 2`` and ``-np 3`` (odd sizes catch even-only bugs);
* a rank that raises mid-training ends the whole job non-zero, with that rank's error, in
  seconds rather than hanging the others in their next all-reduce;
* ``backprop-rs train --distributed`` at ``-np 2`` (rank 0 alone logs and saves; the replicas
  end identical) and in a world of one (the same run as without ``--distributed``);
* the README's distributed example at ``-np 2``.

Without ``mpirun`` or mpi4py these skip, unless ``BACKPROP_REQUIRE_MPI=1`` (CI sets it; the
test script installs Open MPI and mpi4py), which makes a missing MPI a failure. Every job has a
timeout, so a regression that hangs fails instead of blocking the suite.
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import backprop_rs as bp

ROOT = Path(__file__).resolve().parents[1]
MPIRUN = shutil.which("mpirun")
HAVE_MPI = MPIRUN is not None and importlib.util.find_spec("mpi4py") is not None

if not HAVE_MPI:
    if os.environ.get("BACKPROP_REQUIRE_MPI") == "1":
        raise RuntimeError("BACKPROP_REQUIRE_MPI=1 but mpirun or mpi4py is missing "
                           "(apt-get install openmpi-bin libopenmpi-dev; pip install mpi4py)")
    pytestmark = pytest.mark.skip(reason="needs mpirun (Open MPI) and mpi4py")


def mpi_env():
    env = dict(os.environ)
    # Open MPI refuses to run as root unless told (CI containers run as root)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    # containers often forbid the cross-memory-attach syscalls of the shared-memory transport
    env.setdefault("OMPI_MCA_btl_vader_single_copy_mechanism", "none")
    # the package under test, wherever pytest imported it from
    pkg = str(Path(bp.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "") if env.get("PYTHONPATH") else pkg
    # one compute thread per rank (the core's rayon pool, NumPy's BLAS): the ranks share the cores
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    return env


def mpirun(np_, *args, timeout=240, cwd=None):
    cmd = [MPIRUN, "--oversubscribe", "-np", str(np_)]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=mpi_env(), cwd=cwd or ROOT)
    return r, time.monotonic() - t0


@pytest.mark.parametrize("np_", [2, 3])
def test_the_mpi_suite(np_):
    r, _ = mpirun(np_, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "mpi"))
    tail = r.stdout[-6000:] + "\n" + r.stderr[-6000:]
    assert r.returncode == 0, tail  # a failure on any rank aborts the job (tests/mpi/conftest.py)
    counts = re.findall(r"(\d+) passed", r.stdout)
    assert len(counts) == np_ and len(set(counts)) == 1, tail  # every rank ran the same tests
    assert int(counts[0]) > 400, tail  # the folder was collected, not skipped


CRASH = """
import time
import backprop_rs as bp
import backprop_rs.distributed as dist
from backprop_rs.nn.parallel import DistributedDataParallel as DDP

dist.init_process_group("mpi")
bp.manual_seed(0)
model = DDP(bp.nn.Linear(4, 2))
opt = bp.optim.SGD(model.parameters(), lr=0.1)
for step in range(1000):
    if step == 5 and dist.get_rank() == 1:
        raise ValueError("rank one fails at step 5")
    opt.zero_grad()
    model(bp.randn(8, 4)).sum().backward()   # the other ranks wait here for rank 1's gradients
    opt.step()
    time.sleep(0.001)
print("unreachable: training finished")
"""


def test_a_rank_raising_mid_training_ends_the_job_with_its_error(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    r, seconds = mpirun(3, str(script), timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "ValueError: rank one fails at step 5" in out, out
    assert "rank 1 of 3 raised an uncaught ValueError" in out, out
    assert "unreachable" not in out
    assert seconds < 30, f"the job took {seconds:.1f} s to end"


def test_cli_train_distributed(tmp_path):
    out = tmp_path / "ddp.safetensors"
    r, _ = mpirun(2, "-m", "backprop_rs", "train", "--distributed", "--epochs", "2", "--batch-size", "16",
                  "--optimizer", "sgd", "--lr", "0.05", "--out", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # rank 0 alone logs: every line once
    for line in ("distributed: 2 MPI processes, each 16 examples per update", "test accuracy", "checkpoint saved to"):
        assert r.stdout.count(line) == 1, r.stdout
    acc = float(re.search(r"test accuracy ([0-9.]+)", r.stdout).group(1))
    assert acc > 0.5, r.stdout
    ck = bp.load(str(out))
    assert ck["config"]["world_size"] == 2 and ck["config"]["batch_size"] == 16
    assert list(ck["model"]) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # no "module." prefix
    ev = subprocess.run([sys.executable, "-m", "backprop_rs", "eval", str(out)], capture_output=True, text=True,
                        env=mpi_env(), timeout=120)
    assert f"{acc:.4f}" in ev.stdout, ev.stdout + ev.stderr


def test_cli_train_distributed_in_a_world_of_one_is_the_plain_run(tmp_path):
    common = ["-m", "backprop_rs", "train", "--epochs", "2", "--quiet"]
    a = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "a.safetensors")], capture_output=True,
                       text=True, env=mpi_env(), timeout=120)
    b = subprocess.run([sys.executable, *common, "--distributed", "--out", str(tmp_path / "b.safetensors")],
                       capture_output=True, text=True, env=mpi_env(), timeout=120)
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    wa, wb = bp.load(str(tmp_path / "a.safetensors"))["model"], bp.load(str(tmp_path / "b.safetensors"))["model"]
    for k in wa:
        assert (wa[k] == wb[k]).all().item(), k  # same order (the sampler's permutation), same updates


@pytest.mark.parametrize("args,why", [(["--mode", "online"], "online mode reads one stream"),
                                      (["--model", "gpt"], "the language models run in one process")])
def test_cli_refuses_what_it_cannot_distribute(args, why):
    r = subprocess.run([sys.executable, "-m", "backprop_rs", "train", "--distributed", *args],
                       capture_output=True, text=True, env=mpi_env(), timeout=60)
    assert r.returncode != 0 and why in r.stderr, r.stderr


def readme_example():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Distributed training", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```py\n(.*?)```", section, re.S).group(1)


def test_the_readme_distributed_example_runs_under_mpirun(tmp_path):
    (tmp_path / "ddp_example.py").write_text(readme_example())
    r, _ = mpirun(2, "ddp_example.py", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("final loss") == 1, r.stdout
    state = bp.load(str(tmp_path / "ddp.safetensors"))
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_the_distributed_bench_runs(tmp_path):
    import json

    path = tmp_path / "ddp.json"
    r, _ = mpirun(2, "-m", "backprop_rs", "bench", "--distributed", "--quick", "--json", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("DDP bench: 2 rank(s)") == 1, r.stdout
    doc = json.loads(path.read_text())
    assert doc["world"] == 2 and {row["model"] for row in doc["ddp"]} == {"mlp", "lenet", "deep"}
    grads = {"mlp": 9610 * 4, "lenet": 85544, "deep": 3305512}
    for row in doc["ddp"]:
        assert row["bytes"] == grads[row["model"]] == sum(row["bucket_bytes"])
        assert row["step_ms_overlap"] > 0 and row["step_ms_serial"] > 0 and row["exposed_ms_serial"] >= 0
        assert row["early_buckets_per_step"] == row["buckets"] - 1  # every bucket but the last starts early
    assert [a["bytes"] for a in doc["allreduce"]][0] == 8
