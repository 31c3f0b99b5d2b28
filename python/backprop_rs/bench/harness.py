"""How the bench measures: warm-up, settle and re-warm, interleaved rounds, medians, the result
check, and the fresh processes of the memory and import workloads.

Every workload runs for every framework in ONE process, round by round, with the framework order
rotated each round, so machine noise (other processes, turbo, the page cache) falls on all of them
alike; each framework's MEDIAN per-call time is reported. A sample is the mean of ``k``
back-to-back calls, ``k`` chosen during warm-up so a sample lasts long enough for the timer (tens
of milliseconds), so even microsecond workloads are measured, not the clock.

Before timing, each framework's first result is compared with NumPy's (or, for a workload without
a NumPy column, with its NumPy ``reference``): a benchmark of a wrong kernel is worthless, and this
is where a broken fast path shows up first.
"""

from __future__ import annotations

import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .frameworks import BP_CPU, BP_GPU, NUMPY, TORCH, Env, gpu_sync, to_numpy


@dataclass
class Runner:
    """What a framework runs for a workload: ``fn`` is timed; ``finish`` (GPU) runs once after each
    sample's calls, inside the timed region, so queued work is counted."""

    fn: Callable[[], Any]
    finish: Callable[[Any], None] | None = None


@dataclass
class Workload:
    """One row of the report: how to build each framework's runner, and how to read its time."""

    name: str
    description: str
    params: dict[str, Any]
    make: Callable[[Env, str], Runner] | None  # (env, framework) -> Runner; raises if not applicable
    metric: tuple[str, float] | None = None  # (unit, amount per call): reports amount / time
    tol: tuple[float, float] | None = None  # (rtol, atol) for the result check; None = no check
    frameworks: tuple[str, ...] = (BP_CPU, BP_GPU, NUMPY, TORCH)
    # the first result computed in NumPy (env -> value), for a workload without a NumPy column:
    # the result check compares every framework with it instead of with NumPy's column
    reference: Callable[[Env], Any] | None = None
    default: bool = True  # False: runs only when ``--only`` names it (too big for the default run)
    kind: str = "timed"  # "timed" (seconds per call), or "rss" / "import" (fresh-process workloads)
    unit: str = "s"
    # fresh-process workloads: framework -> the child's arguments after the interpreter
    command: Callable[[str], list[str]] | None = None


def wrap_bp(env: Env, fw: str, fn: Callable[[], Any]) -> Runner:
    """A backprop_rs runner; on the GPU column each sample waits for the queue before it ends."""
    if fw == BP_GPU:
        bp = env.bp
        return Runner(fn, lambda out: gpu_sync(bp, out))
    return Runner(fn)


@dataclass
class Cell:
    """One framework's results for one workload."""

    samples: list[float] = field(default_factory=list)
    inner: int = 1
    error: str | None = None
    check: str | None = None  # "ok", a mismatch description, or None when not checked
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        """The median sample, or None when there is none or the framework failed."""
        return statistics.median(self.samples) if self.samples and self.error is None else None


@dataclass
class Plan:
    """How long and how often to measure (``FULL`` or ``QUICK``)."""

    warmup_s: float
    min_warmup: int
    sample_s: float  # a sample lasts about this long (k calls)
    budget_s: float  # rounds are chosen so one workload takes about this long
    min_rounds: int
    max_rounds: int
    rss_repeats: int
    import_repeats: int
    # Idle time before every sample. OpenBLAS (NumPy's BLAS) keeps its worker threads spinning for
    # about 0.1 s after each threaded call; measured here, a backprop_rs sgemm 1024 sample taken
    # straight after a NumPy one ran ~2x slower than alone. Pausing before each sample lets any
    # framework's pool go idle, so the interleaving spreads machine noise without one framework's
    # threads stealing the cores from the next.
    settle_s: float = 0.0
    # Untimed calls of the same runner after the settle pause, for about this long. Measured here,
    # the first ~10-40 ms of work after a 0.15 s idle run up to 2x slow for every framework (NumPy's
    # exp of 2M floats: 1.9 ms, then 1.5, 1.1, 1.0 ms): the CPU (a VM's vCPU) ramps back up. Without
    # this, a sample of a few long calls (a LeNet step) would time the ramp more than the work.
    rewarm_s: float = 0.0


FULL = Plan(warmup_s=0.3, min_warmup=2, sample_s=0.05, budget_s=3.0, min_rounds=7, max_rounds=21, rss_repeats=3,
            import_repeats=9, settle_s=0.15, rewarm_s=0.05)
QUICK = Plan(warmup_s=0.0, min_warmup=1, sample_s=0.002, budget_s=0.0, min_rounds=3, max_rounds=3, rss_repeats=1,
             import_repeats=2)


# ------------------------------------------------------------------ timing in this process


def _warm_up(r: Runner, plan: Plan) -> tuple[Any, float]:
    """Runs until warm; returns the first result and the median single-call time."""
    first = None
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < plan.min_warmup or time.perf_counter() - start < plan.warmup_s:
        t0 = time.perf_counter()
        out = r.fn()
        if r.finish is not None:
            r.finish(out)
        times.append(time.perf_counter() - t0)
        if first is None:
            first = out
    return first, statistics.median(times)


def _rewarm(r: Runner, seconds: float) -> None:
    """Calls the runner, untimed, until ``seconds`` have passed (at least once)."""
    start = time.perf_counter()
    while True:
        out = r.fn()
        if r.finish is not None:
            r.finish(out)
        if time.perf_counter() - start >= seconds:
            return


def _sample(r: Runner, k: int) -> float:
    fn = r.fn
    t0 = time.perf_counter()
    out = None
    for _ in range(k):
        out = fn()
    if r.finish is not None:
        r.finish(out)
    return (time.perf_counter() - t0) / k


def _check(env: Env, w: Workload, results: dict[str, Any], cells: dict[str, Cell]) -> None:
    """Compares each framework's first result with NumPy's column, or, for a workload without one,
    with its NumPy ``reference``; no reference (or no tolerance): no check."""
    if w.tol is None:
        return
    np = env.np
    if NUMPY in results:
        ref_value, ref_name = results[NUMPY], "NumPy's"
    elif w.reference is not None and results:
        try:
            ref_value, ref_name = w.reference(env), "the NumPy reference's"
        except Exception as e:  # noqa: BLE001 - a broken reference spoils the check, not the run
            for fw in results:
                cells[fw].check = f"the NumPy reference failed: {short_error(e)}"
            return
    else:
        return
    ref = np.asarray(to_numpy(env, ref_value), dtype=np.float64)
    rtol, atol = w.tol
    for fw, value in results.items():
        if fw == NUMPY:
            continue
        try:
            got = np.asarray(to_numpy(env, value), dtype=np.float64)
        except Exception as e:  # noqa: BLE001 - a failed readback is this framework's result
            cells[fw].check = f"could not read the result back: {e}"
            continue
        if got.shape != ref.shape:
            cells[fw].check = f"shape {got.shape} differs from {ref_name} {ref.shape}"
        elif not np.allclose(got, ref, rtol=rtol, atol=atol, equal_nan=False):
            err = float(np.nanmax(np.abs(got - ref)))
            cells[fw].check = f"differs from {ref_name} result: max abs err {err:.3g} (rtol {rtol:g}, atol {atol:g})"
        else:
            cells[fw].check = "ok"


def short_error(e: BaseException) -> str:
    """An exception as one short line for a report cell."""
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:160]


def run_timed(env: Env, w: Workload, plan: Plan, progress: Any) -> dict[str, Cell]:
    """Warms every framework up, checks its first result, then times it in interleaved rounds."""
    fws = [f for f in env.frameworks if f in w.frameworks]
    cells = {f: Cell() for f in fws}
    runners: dict[str, Runner] = {}
    firsts: dict[str, Any] = {}
    call_s: dict[str, float] = {}
    gc.collect()
    for fw in fws:
        try:
            r = w.make(env, fw)
            first, t = _warm_up(r, plan)
        except Exception as e:  # noqa: BLE001 - one framework failing (an op the GPU lacks) spoils only its cell
            cells[fw].error = short_error(e)
            continue
        runners[fw], firsts[fw], call_s[fw] = r, first, max(t, 1e-9)
        cells[fw].inner = max(1, min(100_000, math.ceil(plan.sample_s / call_s[fw])))
    _check(env, w, firsts, cells)
    firsts.clear()  # 16M-element results are 64 MB each; do not hold them through the timing
    if runners:
        per_round = sum(cells[f].inner * call_s[f] for f in runners)
        rounds = max(plan.min_rounds, min(plan.max_rounds, int(plan.budget_s / max(per_round, 1e-9))))
        order = list(runners)
        # timeit's practice: no cyclic GC pauses inside samples (refcounting still frees tensors)
        gc_was_on = gc.isenabled()
        gc.disable()
        try:
            for rnd in range(rounds):
                if progress is not None:
                    progress.set_postfix_str(f"{w.name} round {rnd + 1}/{rounds}", refresh=False)
                s = rnd % len(order)
                for fw in order[s:] + order[:s]:  # rotate so no framework always runs first
                    if cells[fw].error is not None:
                        continue
                    if plan.settle_s:
                        time.sleep(plan.settle_s)
                    if plan.rewarm_s:
                        _rewarm(runners[fw], plan.rewarm_s)
                    try:
                        cells[fw].samples.append(_sample(runners[fw], cells[fw].inner))
                    except Exception as e:  # noqa: BLE001 - a failure mid-run spoils only this cell
                        cells[fw].error = short_error(e)
        finally:
            if gc_was_on:
                gc.enable()
    runners.clear()
    gc.collect()
    return cells


# ------------------------------------------------------------------ fresh processes


CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_child.py")
# Thread-count variables that BLAS/OpenMP libraries and rayon read at start-up: a child that
# computes gets the run's thread count through them (threadpoolctl cannot reach another process).
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS")


def child_env(threads: int | None) -> dict[str, str] | None:
    """The environment of a computing child: this one, with every thread variable set to
    ``threads``; None (inherit unchanged) when the run's thread count is unknown."""
    if threads is None:
        return None
    env = dict(os.environ)
    env.update(dict.fromkeys(THREAD_VARS, str(threads)))
    return env


def import_env() -> dict[str, str]:
    """The environment of an import-time child: this one without ``PYTHONDONTWRITEBYTECODE``.
    With it set (some CI images set it) every import compiles every module from source, which
    measures the compiler, not the import a user of an installed wheel sees (pip writes the
    bytecode at install time); a warm-up import then writes the bytecode where it is writable."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(args: list[str], timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``python ARGS`` with this interpreter, output captured."""
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          check=False)


def _failure(p: subprocess.CompletedProcess) -> RuntimeError:
    return RuntimeError((p.stderr.strip().splitlines() or [f"exit code {p.returncode}"])[-1])


def run_subprocess_workload(env: Env, w: Workload, plan: Plan, progress: Any) -> tuple[dict[str, Cell], dict[str, Any]]:
    """Runs a fresh-process workload (``kind`` "rss" or "import") for every framework, in rounds
    rotated like the timed ones; returns the cells and the workload's extra facts for the JSON."""
    fws = [f for f in env.frameworks if f in w.frameworks]
    cells = {f: Cell() for f in fws}
    extra: dict[str, Any] = {}
    repeats = plan.rss_repeats if w.kind == "rss" else plan.import_repeats
    baseline: list[float] = []
    computing_env = child_env(env.threads) if w.kind == "rss" else None
    imp_env = import_env()
    if w.kind == "import":
        for fw in fws:  # warm-up: compiles and caches the bytecode, fills the page cache
            run_child(w.command(fw), env=imp_env)
    for rnd in range(repeats):
        if progress is not None:
            progress.set_postfix_str(f"{w.name} run {rnd + 1}/{repeats}", refresh=False)
        s = rnd % len(fws)
        for fw in fws[s:] + fws[:s]:
            c = cells[fw]
            if c.error is not None:
                continue
            try:
                if w.kind == "rss":
                    p = run_child(w.command(fw), env=computing_env)
                    if p.returncode != 0:
                        raise _failure(p)
                    info = json.loads(p.stdout.strip().splitlines()[-1])
                    c.details.append(info)
                    c.samples.append(float(info["peak_mb"]))
                else:
                    t0 = time.perf_counter()
                    p = run_child(w.command(fw), env=imp_env)
                    dt = time.perf_counter() - t0
                    if p.returncode != 0:
                        raise _failure(p)
                    c.samples.append(dt)
            except Exception as e:  # noqa: BLE001 - a failed child spoils only this cell
                c.error = short_error(e)
        if w.kind == "import":
            # the interpreter's own start-up, which every import time above includes
            t0 = time.perf_counter()
            run_child(["-c", "pass"], env=imp_env)
            baseline.append(time.perf_counter() - t0)
    if computing_env is not None:
        extra["child_threads"] = env.threads
    if baseline:
        extra["python_startup_s"] = statistics.median(baseline)
        extra["python_startup_samples"] = baseline
    return cells, extra
