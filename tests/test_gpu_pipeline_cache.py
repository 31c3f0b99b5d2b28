"""The on-disk pipeline cache (Vulkan): written as pipelines compile, read back by the next
process, turned off by ``BACKPROP_PIPELINE_CACHE=off``. Each case is its own process (the device
is opened once per process)."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import gpu_or_skip

SCRIPT = """
import backprop_rs as bp
x = bp.randn(8, 8, device="gpu")
y = (x @ x).relu().sum().item()
print(bp.gpu.pipeline_cache_path())
print(bp.gpu.adapter_info()["backend"])
"""


def _run(env_extra):
    env = dict(os.environ, **env_extra)
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    path, backend = r.stdout.strip().splitlines()[-2:]
    return path, backend


def test_cache_file_is_written_reused_and_can_be_turned_off(tmp_path):
    gpu_or_skip()
    path, backend = _run({"BACKPROP_PIPELINE_CACHE": str(tmp_path)})
    if "vulkan" not in backend.lower():
        assert path == "None"  # wgpu keeps pipeline caches on Vulkan only
        return
    assert path != "None" and os.path.dirname(path) == str(tmp_path)
    with open(path, "rb") as f:
        first = f.read()
    assert first.startswith(b"WGPUPLCH")  # wgpu's header around the driver's data
    again, _ = _run({"BACKPROP_PIPELINE_CACHE": str(tmp_path)})  # starts from the file
    assert again == path and os.path.getsize(path) >= len(first) - 64
    off, _ = _run({"BACKPROP_PIPELINE_CACHE": "off"})
    assert off == "None"
