"""The machine a run measures: CPU model and SIMD level, backprop_rs's view of it, load, and the
CPU time other processes take meanwhile."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any

# x86 SIMD levels, lowest to highest, as /proc/cpuinfo flags; the OpenBLAS core type that uses
# each level's widest kernels is named so a warning can say what a peer should have picked
SIMD_LEVELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sse2", ("sse2",), "Core2-class"),
    ("sse4.2", ("sse4_2",), "Nehalem-class"),
    ("avx", ("avx",), "SandyBridge-class"),
    ("avx2", ("avx2", "fma"), "Haswell-class"),
    ("avx512", ("avx512f",), "SkylakeX-class"),
)
LEVEL_NAMES = tuple(name for name, _, _ in SIMD_LEVELS)


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


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on Arm), or None off Linux."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        return None
    return None


def simd_level(flags: set[str] | None) -> int | None:
    """Index into ``SIMD_LEVELS`` of the widest x86 level the flags support; None when unknown
    (not Linux, or not x86: Arm kernels are not ranked here)."""
    if not flags or "sse2" not in flags:
        return None
    best = 0
    for i, (_, needs, _) in enumerate(SIMD_LEVELS):
        if all(f in flags for f in needs):
            best = i
    return best


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
    flags = cpu_flags()
    level = simd_level(flags)
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cpus": os.cpu_count(),
                            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(),
                            "cpu_simd_level": LEVEL_NAMES[level] if level is not None else None}
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
