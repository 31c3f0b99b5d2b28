"""The long profile of tests/test_properties.py: every family in its own subprocess.

    python tests/fuzz_long.py                 # all families, 10,000 examples each
    python tests/fuzz_long.py views getitem   # some of them
    python tests/fuzz_long.py --examples 20000 --seed 7 --out /tmp/fuzz

Each family runs ``pytest tests/test_properties.py -k <test>`` with BACKPROP_FUZZ_PROFILE=long, in a
process whose address space is capped (a runaway allocation fails fast instead of taking the
machine down) and under a wall-clock limit. Findings are collected (BACKPROP_FUZZ_COLLECT)
rather than stopping the family at the first one. A process killed by a signal (an abort, a
segfault) or by the time limit (a hang) is reported with the last call it made (from the
watchdog's trace file), and the family is restarted with the next seed so the rest of its
budget still runs. The figures table (examples, calls, wall time, findings per family) is
printed at the end and written to <out>/summary.json and <out>/summary.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import OrderedDict

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# family -> the test (pytest -k expression) that drives it
FAMILIES = OrderedDict(
    [
        ("optable", "test_optable_rows"),
        ("unary", "test_unary_elementwise"),
        ("binary", "test_binary_elementwise"),
        ("clamp", "test_clamp"),
        ("where", "test_where"),
        ("matmul", "test_matmul"),
        ("reductions", "test_reductions"),
        ("views", "test_views_and_shape_ops"),
        ("cat_stack", "test_cat_stack"),
        ("getitem", "test_getitem"),
        ("setitem", "test_setitem"),
        ("inplace", "test_inplace"),
        ("creation", "test_creation"),
        ("random", "test_random_fills"),
        ("nn", "test_nn_functional"),
        ("autograd", "test_autograd_random_graphs"),
        ("checkpoint", "test_checkpoint_round_trip"),
    ]
)


def signature(f: dict) -> tuple:
    """Findings that are the same defect: same kind, same op, same message shape."""
    call = f["call"]
    ops = re.findall(r"\.(\w+)\(", call)
    op = ops[-1] if ops else call.split("(")[0][:40]
    if call.startswith("t = "):
        op = "setitem"
    sym = re.findall(r"\) (\S{1,2}) \(", call)
    if sym:
        op = sym[0]
    msg = re.sub(r"-?\d[\d.e+-]*", "N", f["msg"])
    msg = re.sub(r"array\(.*", "array(...)", msg)[:90]
    return (f["kind"], op, msg)


def run_family(name: str, test: str, args, out: str) -> dict:
    budget = args.examples
    res = {"family": name, "test": test, "examples": 0, "calls": 0, "wall_s": 0.0, "runs": [], "known": {}}
    seed = args.seed
    for attempt in range(args.restarts + 1):
        tag = f"{name}.{attempt}"
        collect, stats, trace = (os.path.join(out, f"{tag}.{ext}") for ext in ("jsonl", "stats.json", "trace"))
        env = dict(
            os.environ,
            BACKPROP_FUZZ_PROFILE="long",
            BACKPROP_FUZZ_EXAMPLES=str(budget),
            BACKPROP_FUZZ_COLLECT=collect,
            BACKPROP_FUZZ_STATS=stats,
            BACKPROP_FUZZ_TRACE=trace,
            BACKPROP_FUZZ_TIMEOUT=str(args.call_timeout),
            BACKPROP_FUZZ_NO_EXCLUDE="1" if args.no_exclude else "0",
            PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "python"), os.environ.get("PYTHONPATH", "")]),
        )
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-x",
            os.path.join(HERE, "test_properties.py"),
            "-k",
            test,
            f"--hypothesis-seed={seed}",
        ]

        def cap():
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (args.mem_gib << 30, resource.RLIM_INFINITY))
            os.setsid()

        t0 = time.time()
        log_path = os.path.join(out, f"{tag}.log")
        with open(log_path, "w") as log:
            p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=cap)
            try:
                rc = p.wait(timeout=args.family_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                rc = "timeout"
        wall = time.time() - t0
        st = json.load(open(stats)) if os.path.exists(stats) else {"calls": {}, "examples": {}, "known": {}}
        ex, calls = sum(st["examples"].values()), sum(st["calls"].values())
        last = open(trace, encoding="utf-8", errors="replace").read() if os.path.exists(trace) else ""
        run = {"seed": seed, "rc": rc, "wall_s": round(wall, 1), "examples": ex, "calls": calls, "log": log_path}
        if rc not in (0, 1):
            # killed: by a signal (abort, segfault), or it printed a watchdog stack (hang) and exited
            hung = rc == "timeout" or "Timeout (0:" in open(log_path, errors="replace").read()
            run["crash"] = {
                "what": "hang" if hung else f"signal {-rc}" if isinstance(rc, int) and rc < 0 else f"exit {rc}",
                "last_call": last,
            }
        elif rc == 1:
            tail = open(log_path, errors="replace").read()[-3000:]
            hung = "Timeout (0:" in tail
            if hung:
                run["crash"] = {"what": "hang", "last_call": last}
            else:
                run["harness_failure"] = tail
        res["runs"].append(run)
        res["wall_s"] += wall
        res["calls"] += calls
        res["examples"] += ex
        for k, v in st.get("known", {}).items():
            res["known"][k] = res["known"].get(k, 0) + v
        if "crash" not in run or res["examples"] >= args.examples:
            break
        budget = max(args.examples - res["examples"], 100)
        seed += 1
    findings = []
    for run_i in range(len(res["runs"])):
        path = os.path.join(out, f"{name}.{run_i}.jsonl")
        if os.path.exists(path):
            findings += [json.loads(line) for line in open(path, encoding="utf-8")]
    distinct = OrderedDict()
    for f in findings:
        distinct.setdefault(signature(f), {"count": 0, "example": f})["count"] += 1
    res["findings"] = len(findings)
    res["distinct"] = [
        {
            "kind": k[0],
            "op": k[1],
            "count": v["count"],
            "call": v["example"]["call"][:1500],
            "msg": v["example"]["msg"][:600],
        }
        for k, v in distinct.items()
    ]
    res["crashes"] = [r["crash"] for r in res["runs"] if "crash" in r]
    res["harness_failures"] = [r["harness_failure"] for r in res["runs"] if "harness_failure" in r]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("families", nargs="*", help=f"default: all of {', '.join(FAMILIES)}")
    ap.add_argument("--examples", type=int, default=10_000, help="examples per family (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join("/tmp", f"backprop_fuzz_{time.strftime('%Y%m%d_%H%M%S')}"))
    ap.add_argument("--mem-gib", type=int, default=8, help="address-space cap per family process")
    ap.add_argument("--family-timeout", type=float, default=4 * 3600)
    ap.add_argument("--call-timeout", type=float, default=60, help="per-call watchdog (a hang)")
    ap.add_argument("--restarts", type=int, default=5, help="restarts after a crash, with the next seed")
    ap.add_argument("--no-exclude", action="store_true", help="run into the known crashes, do not step around them")
    args = ap.parse_args()
    names = args.families or list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        ap.error(f"unknown families {unknown}; known: {list(FAMILIES)}")
    os.makedirs(args.out, exist_ok=True)
    results = []
    for n in names:
        print(f"== {n} ({FAMILIES[n]}): {args.examples} examples ...", flush=True)
        r = run_family(n, FAMILIES[n], args, args.out)
        results.append(r)
        print(
            f"   {r['examples']} examples, {r['calls']} calls, {r['wall_s']:.0f} s, {r['findings']} findings "
            f"({len(r['distinct'])} distinct), {len(r['crashes'])} crashes, known-defect hits {r['known']}",
            flush=True,
        )
        for c in r["crashes"]:
            print(f"   CRASH ({c['what']}): {c['last_call'][:400]}", flush=True)
        for h in r["harness_failures"]:
            print(f"   HARNESS FAILURE:\n{h[-1500:]}", flush=True)
    lines = [
        "| family | examples | calls | wall s | findings (distinct) | crashes | known-defect hits |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        known = ", ".join(f"{k}: {v}" for k, v in sorted(r["known"].items())) or "-"
        row = [r["family"], r["examples"], r["calls"], f"{r['wall_s']:.0f}", f"{r['findings']} ({len(r['distinct'])})"]
        lines.append("| " + " | ".join(map(str, row + [len(r["crashes"]), known])) + " |")
    lines.append("")
    for r in results:
        for d in r["distinct"]:
            head = f"- **{r['family']} / {d['kind']} / {d['op']}** ({d['count']}x)"
            lines.append(f"{head}: `{d['call'][:300]}` -> {d['msg'][:300]}")
        for c in r["crashes"]:
            lines.append(f"- **{r['family']} / CRASH {c['what']}**: `{c['last_call'][:500]}`")
    md = "\n".join(lines)
    print("\n" + md)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(md + "\n")
    print(f"\nwritten to {args.out}")
    return 1 if any(r["findings"] or r["crashes"] or r["harness_failures"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
