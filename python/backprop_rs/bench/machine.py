"""The machine a run measures: CPU model, backprop_rs's view of it (SIMD level, threads), load,
and the CPU time other processes take meanwhile."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU-seconds the whole machine has been busy, CPU-seconds this process and its children
    used), Linux only. The difference over a run is what OTHER processes took from the cores:
    the load average cannot say that, since it counts the benchmark's own threads."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
        busy = sum(fields[:8]) - fields[3] - fields[4]
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    t = os.times()
    return busy / ticks, t.user + t.system + t.children_user + t.children_system


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none."""
    with contextlib.suppress(OSError):
        return list(os.getloadavg())
    return None


def numpy_blas_build(np: Any) -> str | None:
    """The BLAS NumPy was built against (name and version), from ``np.show_config``."""
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy has no dict mode; the BLAS name is a nicety
        return None


def machine_info(bp: Any, np: Any, torch: Any) -> dict[str, Any]:
    """The machine and versions part of the report and JSON (``machine_info`` and ``versions``)."""
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine()}
    try:
        ci = bp._core._cpu_info()
        info["simd"], info["threads"] = ci.get("simd"), ci.get("threads")
    except Exception:  # noqa: BLE001 - an older extension without _cpu_info still benchmarks
        info["simd"], info["threads"] = "unknown", None
    load = load_average()
    if load is not None:
        info["load_avg_start"] = load
    versions: dict[str, Any] = {"python": platform.python_version(), "numpy": np.__version__,
                                "numpy_blas": numpy_blas_build(np), "backprop_rs": bp.__version__,
                                "torch": getattr(torch, "__version__", None)}
    if torch is not None:
        with contextlib.suppress(Exception):
            info["torch_threads"] = torch.get_num_threads()
    info["versions"] = versions
    return info
