"""What the peers (NumPy, PyTorch) really run: their BLAS and its kernel, their SIMD level, their
thread counts, and the environment variables that force any of these; and running them with
backprop_rs's thread count.

A comparison with a peer that was pushed onto older kernels than the CPU has (``OPENBLAS_CORETYPE=
Haswell`` on an AVX-512 machine, say: OpenBLAS then runs its AVX2 code) or onto fewer threads
flatters backprop_rs, so the report states all of it and warns loudly.

``threadpoolctl`` (optional) reads and sets the BLAS libraries' thread counts and reports
OpenBLAS's kernel ("architecture"); without it the report says what it could not see.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .machine import LEVEL_NAMES, SIMD_LEVELS, numpy_blas_build

# OpenBLAS core types (OPENBLAS_CORETYPE values; threadpoolctl's "architecture"), by the widest
# SIMD level of their kernels: an index into machine.SIMD_LEVELS. Names from OpenBLAS's
# driver/others/dynamic.c; OpenBLAS compares them case-insensitively and ignores unknown ones.
OPENBLAS_CORE_LEVELS: dict[str, int] = {
    **dict.fromkeys(("katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
                     "dunnington", "athlon", "opteron", "opteron(sse3)", "barcelona", "nano", "bobcat"), 0),
    "nehalem": 1,
    **dict.fromkeys(("sandybridge", "bulldozer", "piledriver", "steamroller"), 2),
    **dict.fromkeys(("haswell", "zen", "excavator"), 3),
    **dict.fromkeys(("skylakex", "cooperlake", "sapphirerapids"), 4),
}
# MKL_ENABLE_INSTRUCTIONS and MKL_CBWR name an instruction set (MKL_CBWR also COMPATIBLE, the
# SSE2 path; AUTO forces nothing); the longest matching prefix gives the level
_MKL_ISA_LEVELS = (("avx512", 4), ("avx10", 4), ("avx2", 3), ("avx", 2), ("sse4", 1), ("ssse3", 0), ("sse", 0),
                   ("compatible", 0))
# MKL_DEBUG_CPU_TYPE is undocumented; the two values in common use (an old trick for AMD CPUs)
_MKL_DEBUG_LEVELS = {"4": 2, "5": 3}
_ATEN_LEVELS = {"default": 0, "avx2": 3, "avx512": 4}

# variable -> (the library it forces, which peers use that library)
KERNEL_VARS: dict[str, tuple[str, str]] = {
    "OPENBLAS_CORETYPE": ("OpenBLAS", "NumPy's BLAS"),
    "MKL_ENABLE_INSTRUCTIONS": ("MKL", "the BLAS of NumPy or PyTorch, where it is MKL"),
    "MKL_CBWR": ("MKL", "the BLAS of NumPy or PyTorch, where it is MKL"),
    "MKL_DEBUG_CPU_TYPE": ("MKL", "the BLAS of NumPy or PyTorch, where it is MKL"),
    "NPY_DISABLE_CPU_FEATURES": ("NumPy's SIMD ufunc loops", "NumPy's elementwise and reduction kernels"),
    "NPY_ENABLE_CPU_FEATURES": ("NumPy's SIMD ufunc loops", "NumPy's elementwise and reduction kernels"),
    "ATEN_CPU_CAPABILITY": ("PyTorch's ATen CPU kernels", "PyTorch"),
}
# set together with OPENBLAS_CORETYPE to tune it, or change what OpenBLAS prints; unset with it
TUNING_VARS = ("OPENBLAS_L2_SIZE", "OPENBLAS_VERBOSE", "GOTO_L2_SIZE")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS", "MKL_DYNAMIC",
               "OMP_DYNAMIC", "RAYON_NUM_THREADS")


# ------------------------------------------------------------------ levels of kernels


def npy_feature_level(name: str) -> int | None:
    """The SIMD level of a NumPy CPU feature or dispatch target name (``AVX512_SKX``, ``X86_V3``)."""
    n = name.strip().upper()
    if n.startswith(("AVX512", "AVX10")) or n == "X86_V4":
        return 4
    if n in ("AVX2", "FMA3", "X86_V3"):
        return 3
    if n in ("AVX", "F16C"):
        return 2
    if n in ("SSE41", "SSE42", "POPCNT", "X86_V2"):
        return 1
    if n in ("SSE", "SSE2", "SSE3", "SSSE3"):
        return 0
    return None


def requested_level(var: str, value: str) -> int | None:
    """The SIMD level an override variable asks its library for, or None when it asks for none
    (MKL_CBWR=AUTO) or the value is not one this module knows."""
    v = value.strip().lower()
    if var == "OPENBLAS_CORETYPE":
        return OPENBLAS_CORE_LEVELS.get(v)
    if var in ("MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR"):
        v = v.split(",")[0].strip()
        if v == "auto":
            return None
        return next((lvl for prefix, lvl in _MKL_ISA_LEVELS if v.startswith(prefix)), None)
    if var == "MKL_DEBUG_CPU_TYPE":
        return _MKL_DEBUG_LEVELS.get(v)
    if var == "ATEN_CPU_CAPABILITY":
        return _ATEN_LEVELS.get(v)
    features = [f for f in v.replace(",", " ").split() if f]
    levels = [lvl for lvl in map(npy_feature_level, features) if lvl is not None]
    if var == "NPY_DISABLE_CPU_FEATURES":
        # disabling a feature disables its level (the features above it depend on it)
        return min(levels) - 1 if levels and min(levels) > 0 else None
    if var == "NPY_ENABLE_CPU_FEATURES":
        return max(levels) if levels else None
    return None


# ------------------------------------------------------------------ what is loaded


def threadpoolctl_module() -> Any:
    """``threadpoolctl``, or None when it is not installed (it is optional)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    return threadpoolctl


_OWNER = {"numpy": "NumPy", "torch": "PyTorch"}


def _owner(path: str, torch: Any) -> str:
    torch_dir = os.path.dirname(getattr(torch, "__file__", "") or "") if torch is not None else ""
    if torch_dir and os.path.abspath(path).startswith(os.path.abspath(torch_dir) + os.sep):
        return "torch"
    return "numpy"


def thread_libraries(tpc: Any, torch: Any) -> list[dict[str, Any]]:
    """threadpoolctl's view of the BLAS and OpenMP libraries in this process, each tagged with the
    peer that loaded it (a library under torch's package directory is PyTorch's; the rest are
    NumPy's, the only other importer of a BLAS here)."""
    libs = []
    for lib in tpc.threadpool_info():
        entry = {k: lib.get(k) for k in ("user_api", "internal_api", "prefix", "version", "threading_layer",
                                          "architecture", "num_threads", "filepath")}
        entry["owner"] = _owner(lib.get("filepath") or "", torch)
        libs.append(entry)
    return libs


def numpy_simd(np: Any) -> dict[str, Any] | None:
    """NumPy's ufunc SIMD: its baseline, its dispatch targets, and the widest one enabled here
    (NPY_DISABLE_CPU_FEATURES removes targets when NumPy is imported)."""
    mod = None
    for name in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # NumPy 2, NumPy 1
        try:
            mod = importlib.import_module(name)
            break
        except ImportError:
            continue
    features = getattr(mod, "__cpu_features__", None)
    if not isinstance(features, dict):
        return None
    baseline = list(getattr(mod, "__cpu_baseline__", []))
    dispatch = list(getattr(mod, "__cpu_dispatch__", []))
    enabled = [t for t in baseline + dispatch if features.get(t)]
    levels = [lvl for lvl in map(npy_feature_level, enabled) if lvl is not None]
    level = max(levels) if levels else None
    return {"baseline": baseline, "dispatch": dispatch, "best_enabled": enabled[-1] if enabled else None,
            "level": LEVEL_NAMES[level] if level is not None else None}


def torch_facts(torch: Any) -> dict[str, Any]:
    """PyTorch's version, ATen CPU capability, BLAS and default thread count."""
    facts: dict[str, Any] = {"version": getattr(torch, "__version__", None)}
    try:
        facts["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - older PyTorch has no get_cpu_capability
        facts["cpu_capability"] = None
    try:
        # torch.__config__.show(): "  - Build settings: BLAS_INFO=mkl, BUILD_TYPE=Release, ..."
        found = re.search(r"BLAS_INFO=([^,\s]+)", str(torch.__config__.show()))
        facts["blas"] = found.group(1) if found else None
    except Exception:  # noqa: BLE001 - the build description is a nicety
        facts["blas"] = None
    try:
        facts["threads_default"] = int(torch.get_num_threads())
    except Exception:  # noqa: BLE001 - a torch without get_num_threads still benchmarks
        facts["threads_default"] = None
    return facts


def environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables set in ``environ`` that change a peer's kernels, tuning or threads."""
    names = (*KERNEL_VARS, *TUNING_VARS, *THREAD_VARS)
    return {k: environ[k] for k in names if k in environ}


# ------------------------------------------------------------------ findings


def rerun_command(variables: Sequence[str], bench_args: Sequence[str]) -> str:
    """``env -u VAR ... backprop-rs bench ARGS``: the same run without the overrides."""
    unset = " ".join(f"-u {shlex.quote(v)}" for v in variables)
    args = " ".join(shlex.quote(a) for a in bench_args)
    return f"env {unset} backprop-rs bench{' ' + args if args else ''}"


def _level_text(level: int) -> str:
    name, flags, cls = SIMD_LEVELS[level]
    return f"{name} ({'+'.join(flags)}: {cls} kernels)"


def kernel_findings(facts: dict[str, Any], environ: Mapping[str, str], cpu_level: int | None) -> None:
    """Fills ``facts["warnings"]``, ``facts["notes"]`` and ``facts["forced_by"]``: every kernel
    override in ``environ``, and every peer kernel seen running below the CPU's level. An
    override that asks for an older level than the CPU has is a warning; one that cannot be
    ranked (an unknown value, a CPU that is not x86) is a note."""
    warnings: list[str] = facts.setdefault("warnings", [])
    notes: list[str] = facts.setdefault("notes", [])
    forced: list[str] = []
    cpu_text = _level_text(cpu_level) if cpu_level is not None else None
    # OpenBLAS libraries threadpoolctl saw, with the level of the kernels they run
    openblas = [(lib, OPENBLAS_CORE_LEVELS.get(str(lib.get("architecture")).lower()))
                for lib in facts.get("libraries") or [] if lib.get("architecture")]
    simd = (facts.get("numpy") or {}).get("simd") or {}
    for var, (library, users) in KERNEL_VARS.items():
        if var not in environ:
            continue
        value = environ[var]
        level = requested_level(var, value)
        if var.startswith("NPY_") and simd.get("level") in LEVEL_NAMES:
            # NumPy applied the variable when it was imported: what it enabled is the truth
            level = LEVEL_NAMES.index(simd["level"])
        if level is None or cpu_level is None:
            notes.append(f"{var}={value} is set: it chooses {library}'s code path ({users}); the bench cannot rank "
                         "that value against this CPU")
        elif level < cpu_level:
            forced.append(var)
            seen = ""
            if var == "OPENBLAS_CORETYPE" and openblas:
                runs = [f"{_OWNER[lib['owner']]}'s OpenBLAS runs {lib['architecture']} kernels" for lib, _ in openblas]
                seen = f" (threadpoolctl: {', '.join(runs)} in this process)"
            elif var.startswith("NPY_") and simd.get("best_enabled"):
                seen = f" (NumPy's widest enabled ufunc target: {simd['best_enabled']})"
            warnings.append(f"{var}={value} forces {library} ({users}) onto {LEVEL_NAMES[level]} kernels{seen}, but "
                            f"this CPU supports {cpu_text}: that peer's numbers are not what this machine can do")
        else:
            notes.append(f"{var}={value} is set ({library}, {users}); it asks for {LEVEL_NAMES[level]}, "
                         "not below this CPU's level")
    if cpu_level is not None and "OPENBLAS_CORETYPE" not in forced:
        for lib, level in openblas:
            if level is not None and level < cpu_level:
                if "OPENBLAS_CORETYPE" in environ:
                    cause = f"OPENBLAS_CORETYPE={environ['OPENBLAS_CORETYPE']} is set"
                else:
                    cause = "no override is set: OpenBLAS's own CPU detection, or a build without newer kernels"
                who = f"{_OWNER[lib['owner']]}'s OpenBLAS {lib.get('version') or ''}".rstrip()
                warnings.append(f"{who} runs its {lib['architecture']} kernels ({LEVEL_NAMES[level]}; {cause}) on a "
                                f"CPU that supports {cpu_text}")
    facts["forced_by"] = forced


def unset_for_rerun(environ: Mapping[str, str], forced: Sequence[str]) -> list[str]:
    """The variables a clean rerun unsets: every forcing one set, and with OPENBLAS_CORETYPE the
    OpenBLAS tuning variables that accompany it (an L2 size tuned for the forced core would
    mis-block the real one); ``env -u`` of an unset variable is harmless."""
    out = [v for v in KERNEL_VARS if v in forced]
    if "OPENBLAS_CORETYPE" in out:
        out += ["OPENBLAS_L2_SIZE"] + [v for v in TUNING_VARS if v in environ and v != "OPENBLAS_L2_SIZE"]
    return out


# ------------------------------------------------------------------ the facts, and thread pinning


def describe(np: Any, torch: Any, threads: int | None, bench_args: Sequence[str] = (),
             environ: Mapping[str, str] | None = None, cpu_level: int | None = None) -> dict[str, Any]:
    """Everything the report says about the peers, as a JSON-ready dict (the ``peers`` key).

    ``threads`` is backprop_rs's thread count, the one the peers will be pinned to;
    ``bench_args`` the bench's arguments, for the rerun command; ``cpu_level`` an index into
    ``machine.SIMD_LEVELS`` (None: not ranked).
    """
    environ = os.environ if environ is None else environ
    tpc = threadpoolctl_module()
    facts: dict[str, Any] = {"threads": threads, "threadpoolctl": getattr(tpc, "__version__", None) if tpc else None,
                             "cpu_simd_level": LEVEL_NAMES[cpu_level] if cpu_level is not None else None,
                             "environment": environment(environ), "warnings": [], "notes": []}
    libs = thread_libraries(tpc, torch) if tpc is not None else None
    facts["libraries"] = libs
    facts["numpy"] = {"version": np.__version__, "blas_build": numpy_blas_build(np), "simd": numpy_simd(np),
                      "blas": [lib for lib in libs or [] if lib["owner"] == "numpy" and lib["user_api"] == "blas"]}
    facts["torch"] = torch_facts(torch) if torch is not None else None
    if tpc is None:
        facts["notes"].append("threadpoolctl is not installed (pip install threadpoolctl): NumPy's BLAS kernel and "
                              "thread count are not reported, and its threads are not pinned to backprop_rs's count")
    elif not facts["numpy"]["blas"]:
        facts["notes"].append("threadpoolctl found no BLAS library of NumPy's: its kernel and threads are unknown")
    kernel_findings(facts, environ, cpu_level)
    facts["rerun_command"] = None
    if facts.get("forced_by"):
        facts["rerun_command"] = rerun_command(unset_for_rerun(environ, facts["forced_by"]), bench_args)
    return facts


@contextlib.contextmanager
def pinned_threads(facts: dict[str, Any], torch: Any) -> Iterator[None]:
    """Runs the peers with ``facts["threads"]`` threads (``facts`` from ``describe``) inside the
    ``with`` block: NumPy's BLAS through threadpoolctl's ``threadpool_limits``, PyTorch through
    ``torch.set_num_threads``; the previous counts come back on exit. Records the counts that
    took effect in ``facts``."""
    n = facts.get("threads")
    numpy = facts["numpy"]
    numpy["threads"] = None
    if n is None:
        facts["notes"].append("backprop_rs's thread count is unknown: the peers keep their own defaults")
        yield
        return
    tpc = threadpoolctl_module()
    limits = None
    torch_before = None
    try:
        if tpc is not None:
            limits = tpc.threadpool_limits(limits=n, user_api="blas")
            now = {lib.get("filepath"): lib.get("num_threads") for lib in tpc.threadpool_info()}
            for lib in numpy["blas"]:
                lib["num_threads_default"] = lib.get("num_threads")
                lib["num_threads"] = now.get(lib.get("filepath"), lib.get("num_threads"))
            counts = {lib["num_threads"] for lib in numpy["blas"]}
            numpy["threads"] = counts.pop() if len(counts) == 1 else None
        if torch is not None and facts["torch"] is not None:
            try:
                torch_before = int(torch.get_num_threads())
                torch.set_num_threads(n)
                facts["torch"]["threads"] = int(torch.get_num_threads())
            except Exception as e:  # noqa: BLE001 - report it; the run goes on with torch's own count
                facts["notes"].append(f"could not set PyTorch's thread count: {e}")
                facts["torch"]["threads"] = facts["torch"].get("threads_default")
        yield
    finally:
        if limits is not None:
            limits.restore_original_limits()
        if torch_before is not None:
            torch.set_num_threads(torch_before)
