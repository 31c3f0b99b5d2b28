"""What a run prints and writes: the header lines (machine, versions, peers, warnings), the table
of medians with the ratio to the best peer, the JSON document and the plot."""

from __future__ import annotations

import sys
import time
from typing import Any

from .frameworks import BP_CPU, BP_GPU, PEERS
from .harness import Cell, Workload

# ------------------------------------------------------------------ header


def machine_line(info: dict[str, Any]) -> str:
    """CPU, core count, engine SIMD level and threads, OS."""
    return (f"{info['cpu']} | {info['logical_cpus']} logical CPUs | SIMD {info['simd']} | backprop_rs threads "
            f"{info['threads']} | {info['os']} {info['arch']}")


def versions_line(v: dict[str, Any]) -> str:
    """Python, NumPy (with its BLAS), backprop_rs and PyTorch versions."""
    blas = f" ({v['numpy_blas']})" if v.get("numpy_blas") else ""
    torch = f"torch {v['torch']}" if v.get("torch") else "torch not installed"
    return f"Python {v['python']} | NumPy {v['numpy']}{blas} | backprop_rs {v['backprop_rs']} | {torch}"


def _blas_text(lib: dict[str, Any]) -> str:
    name = {"openblas": "OpenBLAS", "mkl": "MKL", "blis": "BLIS", "flexiblas": "FlexiBLAS"}.get(
        str(lib.get("internal_api")), str(lib.get("internal_api")))
    bits = [f"{name} {lib.get('version') or '?'}", f"kernel {lib.get('architecture') or 'not reported'}"]
    if lib.get("threading_layer"):
        bits.append(f"{lib['threading_layer']} threading")
    threads = lib.get("num_threads")
    default = lib.get("num_threads_default")
    bits.append(f"{threads} threads" + (f" (default {default})" if default is not None and default != threads else ""))
    return ", ".join(bits)


def peer_lines(peers: dict[str, Any]) -> list[str]:
    """The header's account of each peer's BLAS, kernel and threads, and the thread policy."""
    n = peers.get("threads")
    np_ = peers["numpy"]
    lines = []
    if n is None:
        lines.append("threads: backprop_rs's thread count is unknown; every peer keeps its own default")
    elif peers.get("threadpoolctl"):
        how = f"NumPy's BLAS through threadpoolctl {peers['threadpoolctl']}"
        if peers.get("torch") is not None:
            how += ", PyTorch through torch.set_num_threads"
        lines.append(f"threads: every framework runs with {n} threads (backprop_rs's count; {how})")
    else:
        torch = "; PyTorch through torch.set_num_threads" if peers.get("torch") is not None else ""
        lines.append(f"threads: backprop_rs {n}; NumPy's BLAS is NOT pinned to it (no threadpoolctl, see the note)"
                     f"{torch}")
    if np_["blas"]:
        blas = "; ".join(_blas_text(lib) for lib in np_["blas"])
    elif np_.get("blas_build"):
        blas = f"{np_['blas_build']} (as built; kernel and threads not reported without threadpoolctl)"
    else:
        blas = "unknown"
    simd = np_.get("simd")
    simd_text = ""
    if simd and simd.get("best_enabled"):
        simd_text = f"; ufunc SIMD up to {simd['best_enabled']} ({simd['level']})"
    lines.append(f"numpy: BLAS {blas}{simd_text}")
    t = peers.get("torch")
    if t is not None:
        threads = t.get("threads", t.get("threads_default"))
        default = f" (default {t['threads_default']})" if t.get("threads_default") not in (None, threads) else ""
        libs = [lib for lib in peers.get("libraries") or [] if lib["owner"] == "torch" and lib["user_api"] == "blas"]
        blas = "; ".join(_blas_text(lib) for lib in libs) or (t.get("blas") or "not reported")
        lines.append(f"torch: ATen CPU capability {t.get('cpu_capability') or 'not reported'}, BLAS {blas}, "
                     f"{threads} threads{default}")
    lines += [f"note: {note}" for note in peers.get("notes", [])]
    return lines


def warning_block(peers: dict[str, Any]) -> list[str]:
    """The LOUD warning about peers running older kernels than the CPU has, with the command that
    reruns the bench without the overrides; empty when there is nothing to warn about."""
    if not peers.get("warnings"):
        return []
    bar = "!" * 100
    lines = [bar]
    lines += [f"!! WARNING: {w}" for w in peers["warnings"]]
    if peers.get("rerun_command"):
        lines.append("!! rerun without the override(s):")
        lines.append(f"!!   {peers['rerun_command']}")
    lines.append(bar)
    return lines


def warning_reminder(peers: dict[str, Any]) -> str | None:
    """One line for the end of the run, so the warning is not scrolled away with the header."""
    if not peers.get("warnings"):
        return None
    rerun = f"; rerun: {peers['rerun_command']}" if peers.get("rerun_command") else ""
    return f"WARNING: a peer ran older kernels than this CPU supports (see the header){rerun}"


# ------------------------------------------------------------------ table


def fmt_time(s: float) -> str:
    """Seconds in the unit that keeps 3-4 significant digits."""
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_cell(w: Workload, c: Cell | None) -> str:
    """A table cell: the median, with the workload's throughput metric when it has one."""
    if c is None:
        return "-"
    if c.error is not None:
        return "error"
    m = c.median
    if m is None:
        return "-"
    if w.unit == "MB":
        return f"{m:.0f} MB"
    text = fmt_time(m)
    if w.metric is not None:
        unit, amount = w.metric
        text += f" ({amount / m:.1f} {unit})"
    return text


def summarise(cells: dict[str, Cell]) -> dict[str, Any]:
    """The best peer's name and each backprop_rs column's median / best peer median."""
    peers = {f: cells[f].median for f in PEERS if f in cells and cells[f].median is not None}
    best = min(peers, key=lambda f: peers[f]) if peers else None
    ratios = {}
    for f in (BP_CPU, BP_GPU):
        if best is not None and f in cells and cells[f].median is not None:
            ratios[f] = cells[f].median / peers[best]
    return {"best_peer": best, "ratio_to_best_peer": ratios}


def render_table(frameworks: list[str], wls: list[Workload], results: dict[str, dict[str, Cell]],
                 summaries: dict[str, dict[str, Any]]) -> str:
    """The report's table: one row per workload, one column per framework, best peer, ratios."""
    cols = list(frameworks)
    ratio_cols = [f for f in (BP_CPU, BP_GPU) if f in cols]
    head = ["workload", *cols, "best peer"] + [("cpu" if f == BP_CPU else "gpu") + " / best" for f in ratio_cols]
    rows = [head]
    for w in wls:
        cells = results[w.name]
        s = summaries[w.name]
        row = [w.name] + [fmt_cell(w, cells.get(f)) if f in w.frameworks else "-" for f in cols]
        row.append(s["best_peer"] or "-")
        row += [f"{s['ratio_to_best_peer'][f]:.2f}x" if f in s["ratio_to_best_peer"] else "-" for f in ratio_cols]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = []
    for i, r in enumerate(rows):
        lines.append("  ".join(v.ljust(widths[j]) if j == 0 else v.rjust(widths[j]) for j, v in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------ JSON


def json_document(*, started: float, wall: float, mline: str, info: dict[str, Any], peers: dict[str, Any],
                  config: dict[str, Any], frameworks: list[str], gpu_note: str | None, wls: list[Workload],
                  results: dict[str, dict[str, Cell]], summaries: dict[str, dict[str, Any]],
                  extras: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``--json`` document: machine, versions, peers, configuration, and per workload every
    framework's median, metric, raw samples, result check and details."""
    doc: dict[str, Any] = {
        "schema": 1,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "wall_s": wall,
        "machine": mline,
        "machine_info": {k: v for k, v in info.items() if k != "versions"},
        "versions": info["versions"],
        "peers": peers,
        "config": config,
        "frameworks": frameworks,
        "gpu_note": gpu_note,
        "workloads": {},
    }
    for w in wls:
        entry: dict[str, Any] = {"description": w.description, "params": w.params, "kind": w.kind, "unit": w.unit,
                                 "metric_unit": w.metric[0] if w.metric else None, **summaries[w.name],
                                 **extras[w.name], "results": {}}
        for f, c in results[w.name].items():
            r: dict[str, Any] = {"median": c.median, "samples": c.samples, "inner": c.inner, "error": c.error,
                                 "check": c.check}
            if w.metric is not None and c.median:
                r["metric"] = w.metric[1] / c.median
            if c.details:
                r["details"] = c.details
            entry["results"][f] = r
        doc["workloads"][w.name] = entry
    return doc


# ------------------------------------------------------------------ plot


def plot(frameworks: list[str], wls: list[Workload], results: dict[str, dict[str, Cell]], path: str,
         title: str) -> bool:
    """Draws each framework's median relative to the fastest, one group per workload, to ``path``.
    Returns False (and says so) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        print("--plot needs matplotlib, which is not installed (pip install matplotlib); skipping the plot",
              file=sys.stderr)
        return False
    names = [w.name for w in wls]
    cols = list(frameworks)
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(names) + 2), 4.8))
    width = 0.8 / max(1, len(cols))
    for j, f in enumerate(cols):
        xs, ys, labels = [], [], []
        for i, w in enumerate(wls):
            meds = {g: c.median for g, c in results[w.name].items() if c.median is not None}
            if f in meds:
                # relative to the fastest (smallest) framework of the workload, so one axis fits
                # microseconds, seconds and megabytes alike; the bar's label keeps the absolute value
                xs.append(i + (j - (len(cols) - 1) / 2) * width)
                ys.append(meds[f] / min(meds.values()))
                labels.append(f"{meds[f]:.0f} MB" if w.unit == "MB" else fmt_time(meds[f]))
        bars = ax.bar(xs, ys, width, label=f)
        ax.bar_label(bars, labels=labels, rotation=90, fontsize=6, padding=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(0.9, ax.get_ylim()[1] * 2)  # room for the labels above the tallest bar
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right")
    ax.set_ylabel("median / best median (lower is better)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
