"""The main job end to end: `backprop-rs train` in each mode, `eval` of the checkpoint."""

import re
import subprocess
import sys

import pytest

import backprop_rs as bp

SMALL = {"batch": ["--epochs", "60"], "stochastic": ["--epochs", "1"], "minibatch": ["--epochs", "3"], "online": ["--epochs", "1"]}


def run(*args):
    r = subprocess.run([sys.executable, "-m", "backprop_rs", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("mode", ["batch", "stochastic", "minibatch", "online"])
def test_train_each_mode_and_reload(mode, tmp_path):
    out = tmp_path / f"{mode}.safetensors"
    line = run("train", "--mode", mode, *SMALL[mode], "--quiet", "--out", str(out))
    acc = float(re.search(r"test_acc=([0-9.]+)", line).group(1))
    assert acc > 0.5, line  # chance is 0.1
    ck = bp.load(str(out))
    assert ck["config"]["mode"] == mode and "model" in ck and "optimizer" in ck
    ev = run("eval", str(out))
    assert f"{acc:.4f}" in ev


def test_default_run_reaches_the_target_and_is_reproducible(tmp_path):
    a = run("train", "--quiet", "--out", str(tmp_path / "a.safetensors"))
    b = run("train", "--quiet", "--out", str(tmp_path / "b.safetensors"))
    acc_a = float(re.search(r"test_acc=([0-9.]+)", a).group(1))
    acc_b = float(re.search(r"test_acc=([0-9.]+)", b).group(1))
    assert acc_a >= 0.97, a
    assert acc_a == acc_b
    wa, wb = bp.load(str(tmp_path / "a.safetensors")), bp.load(str(tmp_path / "b.safetensors"))
    for k in wa["model"]:
        assert (wa["model"][k] == wb["model"][k]).all().item()


def test_verbose_output_and_options(tmp_path):
    out = run("train", "--epochs", "2", "--optimizer", "sgd", "--lr", "0.05", "--hidden", "32,16", "--out", str(tmp_path / "c.safetensors"))
    assert "MLP 64-32-16-10" in out and "test accuracy" in out and "checkpoint saved to" in out
    assert "mode minibatch" in out


def test_lenet_trains_from_the_cli(tmp_path):
    out = tmp_path / "lenet.safetensors"
    line = run("train", "--model", "lenet", "--epochs", "2", "--quiet", "--out", str(out))
    acc = float(re.search(r"test_acc=([0-9.]+)", line).group(1))
    assert acc > 0.5, line
    assert f"{acc:.4f}" in run("eval", str(out))


def test_eval_rejects_a_non_checkpoint(tmp_path):
    p = tmp_path / "x.safetensors"
    bp.save({"w": bp.ones(2)}, str(p))
    r = subprocess.run([sys.executable, "-m", "backprop_rs", "eval", str(p)], capture_output=True, text=True)
    assert r.returncode != 0 and "not a backprop-rs training checkpoint" in (r.stderr + r.stdout)
