"""The distributed benchmark: DistributedDataParallel training steps under ``mpirun``.

    mpirun -np 2 python -m backprop_rs.bench.ddp [--json FILE] [--steps 200] [--batch-size 32]
    backprop-rs bench --distributed                 # the same, as a bench flag (run it under mpirun)

For the MLP (64-128-10, the CLI's default), LeNet-5 and a deeper MLP (64-512x4-10) on the
digits, at the per-rank batch given, it measures per step (forward, loss, backward with DDP's all-reduces, SGD step):

* ``step_ms``: the median step time, every rank starting the step together (a barrier before
  each step, not timed); the slowest rank's median is reported;
* ``bytes``: bytes all-reduced per step (the gradients, float32), and the number of buckets;
* ``exposed_ms``: the median time backward spent waiting for all-reduces after its last gradient
  (``Reducer`` ``wait_s``), with the all-reduces started from the hooks (``overlap``) and with
  all of them started only once backward finished (``serial``, the baseline). The minimum over
  the ranks: the rank whose backward ends last waits only for communication, the others for it
  too (that skew is in the JSON as ``exposed_ms_*_max_rank``);
* ``hidden``: ``1 - exposed(overlap) / exposed(serial)``, the fraction of the all-reduce time
  that backward's computation hid. With one bucket (the default 25 MiB cap holds the whole MLP
  or LeNet) nothing can overlap, so each model also runs with a small cap that splits it;
* ``plain_ms``: at ``-np 1``, the same step without the wrapper, for DDP's own overhead.

It also times ``MPI_Allreduce`` alone (blocking, and ``MPI_Iallreduce`` + ``Wait``) over sizes
from 8 B to 16 MiB: the latency and bandwidth terms of the cost model ``t = a + 2 (N-1)/N * bytes / B`` that BENCHMARKS.md
extrapolates from. Set ``RAYON_NUM_THREADS=1`` to give every rank one compute thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any, Dict, List, Optional

import numpy as np

# MiB; None = DDP's default (25, the first bucket 1). "deep" is an MLP 64-512-512-512-512-10 (3.3 MB of
# gradients in four ~1 MB layers): at a 1 MiB cap each layer is a bucket, whose all-reduce can
# overlap the backward of the layers below it
BUCKET_CAPS = {"mlp": [None, 0.01], "lenet": [None, 0.02], "deep": [None, 1.0]}
SIZES = [8, 1024, 38440, 85544, 1 << 20, 3305512, 16 << 20]  # bytes: the MLP's, LeNet's, deep's gradients


def _model(kind: str) -> Any:
    import backprop_rs as bp
    from backprop_rs import models

    bp.manual_seed(0)
    if kind == "deep":
        return models.mlp(64, [512] * 4, 10)
    return models.mlp(64, [128], 10) if kind == "mlp" else models.LeNet5(10)


def _time_steps(step, comm, steps: int, warmup: int) -> List[float]:
    for _ in range(warmup):
        step()
    out = []
    for _ in range(steps):
        comm.Barrier()
        t0 = time.perf_counter()
        step()
        out.append(time.perf_counter() - t0)
    return out


def _slowest_median(comm, samples: List[float]) -> float:
    return max(comm.allgather(statistics.median(samples)))


def _ddp_case(kind: str, cap: Optional[float], batch: int, steps: int, warmup: int, comm) -> Dict[str, Any]:
    import backprop_rs as bp
    from backprop_rs.nn.parallel import DistributedDataParallel as DDP

    d = bp.data.load_digits()
    rank, world = comm.Get_rank(), comm.Get_size()
    x = d.x_train[rank * batch:(rank + 1) * batch]
    y = d.y_train[rank * batch:(rank + 1) * batch]
    model = _model(kind)
    ddp = DDP(model, bucket_cap_mb=cap)
    opt = bp.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = bp.nn.CrossEntropyLoss()

    waits: List[float] = []

    def step() -> None:
        before = ddp.reducer.stats["wait_s"]
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()
        waits.append(ddp.reducer.stats["wait_s"] - before)

    row: Dict[str, Any] = {"model": kind, "world": world, "batch_per_rank": batch,
                           "bucket_cap_mb": cap, "buckets": len(ddp.bucket_sizes()), "bucket_bytes": ddp.bucket_sizes()}
    for mode, overlap in (("overlap", True), ("serial", False)):
        ddp.reducer.overlap = overlap
        before = dict(ddp.comm_stats())
        samples = _time_steps(step, comm, steps, warmup)
        after = ddp.comm_stats()
        n = after["steps"] - before["steps"]
        row[f"step_ms_{mode}"] = 1e3 * _slowest_median(comm, samples)
        # the rank that finishes backward last waits only for the communication still to do;
        # the others wait for it as well (skew): min over ranks is the exposed communication
        per_rank = comm.allgather(statistics.median(waits[-steps:]))
        row[f"exposed_ms_{mode}"] = 1e3 * min(per_rank)
        row[f"exposed_ms_{mode}_max_rank"] = 1e3 * max(per_rank)
        row["bytes"] = (after["bytes"] - before["bytes"]) // n
        if overlap:
            row["early_buckets_per_step"] = (after["early_buckets"] - before["early_buckets"]) / n
    serial = row["exposed_ms_serial"]
    row["hidden"] = None if world == 1 or serial <= 0 else max(0.0, 1.0 - row["exposed_ms_overlap"] / serial)
    ddp.reducer.remove_hooks()
    if world == 1:
        plain = _model(kind)
        popt = bp.optim.SGD(plain.parameters(), lr=0.01)

        def plain_step() -> None:
            popt.zero_grad()
            loss_fn(plain(x), y).backward()
            popt.step()

        row["plain_ms"] = 1e3 * statistics.median(_time_steps(plain_step, comm, steps, warmup))
    return row


def _allreduce_times(comm, repeats: int) -> List[Dict[str, Any]]:
    from mpi4py import MPI

    out = []
    for size in SIZES:
        buf = np.ones(max(1, size // 4), np.float32)
        for _ in range(3):
            comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        k = max(3, min(repeats, int(2e8 // max(size, 1))))
        row: Dict[str, Any] = {"bytes": int(buf.nbytes)}
        for name, call in (("ms", lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)),
                           ("ms_nonblocking", lambda: comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM).Wait())):
            samples = []
            for _ in range(k):
                comm.Barrier()
                t0 = time.perf_counter()
                call()
                samples.append(time.perf_counter() - t0)
            row[name] = 1e3 * _slowest_median(comm, samples)
        out.append(row)
    return out


def run(steps: int = 200, warmup: int = 20, batch: int = 32, json_path: Optional[str] = None,
        quick: bool = False) -> int:
    """Runs the benchmark on every rank of the MPI job; rank 0 prints (and writes the JSON)."""
    import backprop_rs as bp
    import backprop_rs.distributed as dist

    from . import machine

    if quick:
        steps, warmup = 5, 2
    dist.init_process_group("mpi")
    comm = dist.group.WORLD.comm
    rank, world = comm.Get_rank(), comm.Get_size()
    comm.Barrier()
    wall0, cpu0 = time.perf_counter(), machine.cpu_seconds()
    rows = [_ddp_case(kind, cap, batch, steps, warmup, comm) for kind, caps in BUCKET_CAPS.items() for cap in caps]
    ar = _allreduce_times(comm, 10 if quick else 200)
    comm.Barrier()
    wall, cpu1 = time.perf_counter() - wall0, machine.cpu_seconds()
    # what other processes took from the cores meanwhile (the machine's busy time less the ranks')
    mine = comm.allreduce(cpu1[1] - cpu0[1] if cpu0 and cpu1 else 0.0)
    others = None if not (cpu0 and cpu1) else max(0.0, (cpu1[0] - cpu0[0]) - mine) / wall
    doc = {"schema": 1, "world": world, "batch_per_rank": batch, "steps": steps,
           "threads": os.environ.get("RAYON_NUM_THREADS", "default"), "cpu": machine.cpu_model(),
           "load_average": machine.load_average(), "backprop_rs": bp.__version__, "seconds": wall,
           "other_processes_cores": others,
           "libnbc_iallreduce_algorithm": os.environ.get("OMPI_MCA_coll_libnbc_iallreduce_algorithm"),
           "ddp": rows, "allreduce": ar}
    if rank == 0:
        print(f"DDP bench: {world} rank(s), batch {batch} per rank, {steps} timed steps, "
              f"RAYON_NUM_THREADS={doc['threads']}, {doc['cpu']}; other processes used "
              f"{'?' if others is None else f'{others:.2f}'} cores meanwhile ({wall:.1f} s)")
        head = (f"{'model':6} {'cap MiB':>8} {'buckets':>7} {'bytes':>7} {'step ms':>8} {'serial ms':>9} "
                f"{'exposed ms':>10} {'serial exp':>10} {'hidden':>6} {'plain ms':>8}")
        print(head)
        for r in rows:
            cap = "25/1" if r["bucket_cap_mb"] is None else f"{r['bucket_cap_mb']:g}"
            hidden = "-" if r["hidden"] is None else f"{r['hidden']:.0%}"
            plain = f"{r['plain_ms']:.3f}" if "plain_ms" in r else "-"
            print(f"{r['model']:6} {cap:>8} {r['buckets']:>7} {r['bytes']:>7} {r['step_ms_overlap']:>8.3f} "
                  f"{r['step_ms_serial']:>9.3f} {r['exposed_ms_overlap']:>10.3f} {r['exposed_ms_serial']:>10.3f} "
                  f"{hidden:>6} {plain:>8}")
        print("MPI_Allreduce alone, float32 in place, slowest rank's median ms (blocking / MPI_Iallreduce + Wait):")
        print("  " + ", ".join(f"{a['bytes']} B {a['ms']:.4f} / {a['ms_nonblocking']:.4f}" for a in ar))
        if json_path:
            with open(json_path, "w") as f:
                json.dump(doc, f, indent=1)
    dist.destroy_process_group()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m backprop_rs.bench.ddp",
                                description="DistributedDataParallel step times, bytes and overlap; run under mpirun")
    p.add_argument("--steps", type=int, default=200, help="timed steps per case (default 200)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32, help="examples per rank per step (default 32)")
    p.add_argument("--json", default=None, metavar="FILE")
    p.add_argument("--quick", action="store_true", help="a few steps: proves the paths run, measures nothing")
    a = p.parse_args(argv)
    return run(a.steps, a.warmup, a.batch_size, a.json, a.quick)


if __name__ == "__main__":
    import sys

    sys.exit(main())
