"""One ``backprop-rs bench`` run, from the header to the JSON: picks the workloads and columns,
describes the machine and the peers, pins the peers' threads, measures, and reports."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

import backprop_rs as bp

from . import machine, peers, report
from .frameworks import BP_CPU, BP_GPU, NUMPY, TORCH, Env, gpu_status, import_torch
from .harness import FULL, QUICK, Cell, Plan, Workload, run_subprocess_workload, run_timed
from .workloads import all_workloads


def _parse_list(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def bench_args(args: Any) -> list[str]:
    """The flags that reproduce this run, for the rerun command the report prints."""
    out: list[str] = []
    if args.quick:
        out.append("--quick")
    if args.device and args.device != "cpu":
        out += ["--device", args.device]
    for flag in ("only", "json", "plot"):
        value = getattr(args, flag, None)
        if value:
            out += [f"--{flag}", str(value)]
    return out


def _measure(env: Env, wls: list[Workload], plan: Plan) -> tuple[dict[str, dict[str, Cell]], dict[str, dict[str, Any]]]:
    """Runs every workload, with a progress bar on a terminal; returns its cells and extras."""
    try:
        from tqdm.auto import tqdm

        # leave=False: the bar goes away and the table stays; None disables it off a terminal
        progress = tqdm(total=len(wls), desc="bench", unit="workload", leave=False, dynamic_ncols=True,
                        disable=True if env.quick else None, file=sys.stderr)
    except ImportError:  # tqdm is a dependency, but the bench must not need it
        progress = None
    results: dict[str, dict[str, Cell]] = {}
    extras: dict[str, dict[str, Any]] = {}
    try:
        for w in wls:
            if progress is not None:
                progress.set_description(w.name, refresh=False)
            if w.kind == "timed":
                results[w.name] = run_timed(env, w, plan, progress)
                extras[w.name] = {}
            else:
                results[w.name], extras[w.name] = run_subprocess_workload(env, w, plan, progress)
            if progress is not None:
                progress.update(1)
    finally:
        if progress is not None:
            progress.close()
    return results, extras


def run(args: Any) -> int:
    """``backprop-rs bench`` with parsed arguments: returns the exit code."""
    if getattr(args, "distributed", False):  # a different bench, run by every rank of an MPI job
        from . import ddp

        return ddp.run(json_path=args.json, quick=bool(args.quick))
    quick = bool(args.quick)
    plan = QUICK if quick else FULL
    all_w = all_workloads(quick)
    names = [w.name for w in all_w]
    if getattr(args, "list", False):
        for w in all_w:
            extra = "" if w.default else " [not in the default run: name it with --only]"
            print(f"{w.name:22s} {w.description}{extra}")
        return 0
    only = _parse_list(args.only)
    unknown = [n for n in only if n not in names]
    if unknown:
        print(f"unknown workload(s): {', '.join(unknown)}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2
    wls = [w for w in all_w if w.name in only] if only else [w for w in all_w if w.default]
    devices = _parse_list(args.device) or ["cpu"]
    bad = [d for d in devices if d not in ("cpu", "gpu")]
    if bad:
        print(f"unknown device(s): {', '.join(bad)} (use cpu, gpu or cpu,gpu)", file=sys.stderr)
        return 2

    torch = import_torch()
    fws: list[str] = []
    gpu_note = None
    if "cpu" in devices:
        fws.append(BP_CPU)
    if "gpu" in devices:
        ok, gpu_note = gpu_status(bp)
        if ok:
            fws.append(BP_GPU)
        else:
            gpu_note += "; skipping the backprop_rs-gpu column"
    fws.append(NUMPY)
    if torch is not None:
        fws.append(TORCH)

    info = machine.machine_info(bp, np, torch)
    level = machine.simd_level(machine.cpu_flags())
    peer_facts = peers.describe(np, torch, info.get("threads"), bench_args(args), cpu_level=level)
    env = Env(bp=bp, np=np, torch=torch, quick=quick, frameworks=fws, gpu_note=gpu_note, threads=info.get("threads"))
    mline = report.machine_line(info)
    vline = report.versions_line(info["versions"])

    with peers.pinned_threads(peer_facts, torch):
        mode = "QUICK run (tiny sizes and repeats: a smoke test, not a measurement)" if quick else "full run"
        print(f"backprop-rs bench: {mode}")
        print(f"machine: {mline}")
        print(f"versions: {vline}")
        for line in report.peer_lines(peer_facts) + report.warning_block(peer_facts):
            print(line)
        if "load_avg_start" in info:
            print("load average at start: " + " ".join(f"{x:.2f}" for x in info["load_avg_start"]))
        if gpu_note:
            print(f"gpu: {gpu_note}")
        if torch is None:
            print("PyTorch is not installed: no torch column (pip install torch to compare)")
        sys.stdout.flush()
        started = time.time()
        cpu0 = machine.cpu_seconds()
        t0 = time.perf_counter()
        results, extras = _measure(env, wls, plan)
        wall = time.perf_counter() - t0
        cpu1 = machine.cpu_seconds()

    load = machine.load_average()
    if load is not None:
        info["load_avg_end"] = load
    if cpu0 is not None and cpu1 is not None:
        others = max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
        info["other_processes_cpu_s"] = others
        info["other_processes_cpu_share"] = others / (wall * (os.cpu_count() or 1))

    summaries = {w.name: report.summarise(results[w.name]) for w in wls}
    print()
    print(report.render_table(fws, wls, results, summaries))
    print()
    print("medians of interleaved rounds; 'x / best' = backprop_rs median / best peer median "
          "(below 1.00x backprop_rs is faster, or smaller for peak_rss_*);")
    print("sgemm GFLOP/s = 2n^3/t; GB/s counts bytes read + written once (add/mul 12n, unary 8n, sum 4n, softmax 8n)")
    no_numpy = [w.name for w in wls if w.kind == "timed" and NUMPY not in w.frameworks]
    if no_numpy:
        peer = "" if torch is not None else "; PyTorch is not installed, so these rows have no peer and no ratio"
        print(f"{', '.join(no_numpy)}: backprop_rs and PyTorch only (no NumPy column){peer}; their result check "
              "compares with a NumPy float64 reference")
    if quick:
        print("--quick shrinks the sizes (sgemm n/8, 1M-element vectors, softmax 256x1000, 20 RSS steps; the JSON "
              "records them under params) and the repeats: these numbers are not comparable with a full run")
    for w in wls:
        if "python_startup_s" in extras[w.name]:
            startup = report.fmt_time(extras[w.name]["python_startup_s"])
            print(f"{w.name}: includes the interpreter's start-up (python -c pass: {startup})")
        for f, c in results[w.name].items():
            if c.error is not None:
                print(f"ERROR {w.name} [{f}]: {c.error}")
            elif c.check not in (None, "ok"):
                print(f"WARNING {w.name} [{f}]: result {c.check}")
    reminder = report.warning_reminder(peer_facts)
    if reminder:
        print(reminder)
    end = [f"wall time {wall:.1f} s"]
    if "other_processes_cpu_s" in info:
        end.append(f"other processes used {info['other_processes_cpu_s']:.1f} CPU-s "
                   f"({100 * info['other_processes_cpu_share']:.1f}% of the machine) meanwhile")
    if "load_avg_end" in info:
        end.append("load average at end: " + " ".join(f"{x:.2f}" for x in info["load_avg_end"]))
    print("; ".join(end))

    if args.json:
        config = {"quick": quick, "devices": devices, "only": only, "plan": plan.__dict__}
        doc = report.json_document(started=started, wall=wall, mline=mline, info=info,
                                   peers=peer_facts, config=config, frameworks=fws, gpu_note=gpu_note, wls=wls,
                                   results=results, summaries=summaries, extras=extras)
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
        print(f"results written to {os.path.abspath(args.json)}")
    if args.plot:
        title = f"backprop-rs bench ({'quick' if quick else 'full'} run)\n{mline}\n{vline}"
        if report.plot(fws, wls, results, args.plot, title):
            print(f"plot written to {os.path.abspath(args.plot)}")
    return 0
