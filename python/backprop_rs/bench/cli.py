"""The flags of ``backprop-rs bench``, shared by ``python -m backprop_rs.bench``.

Only argparse is imported here: ``backprop-rs``'s parser takes the bench's flags from
``add_arguments`` for every sub-command, so ``backprop-rs train`` stays quick to start; the run
itself (``runner``) is imported when a bench runs.
"""

from __future__ import annotations

import argparse

DESCRIPTION = ("Runs each workload for backprop_rs, NumPy and PyTorch (when installed) in one process, interleaved "
               "round by round, and reports median times and the ratio to the best peer.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the bench's flags to ``parser`` (the ``bench`` sub-command's, or a parser of its own)."""
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="write machine-readable results (all raw samples) to FILE")
    parser.add_argument("--plot", metavar="PNG", default=None, help="draw a bar chart to PNG (needs matplotlib)")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and repeats, for CI: proves every path runs, measures nothing")
    parser.add_argument("--device", default="cpu", help="backprop_rs columns to run: cpu, gpu or cpu,gpu (default cpu)")
    parser.add_argument("--only", default=None, metavar="NAME,...", help="run only these workloads (see --list)")
    parser.add_argument("--list", action="store_true", help="list the workloads and exit")
    parser.add_argument("--distributed", action="store_true",
                        help="the DistributedDataParallel bench instead (step time, bytes all-reduced, overlap); run it "
                             "as `mpirun -np N backprop-rs bench --distributed` (see backprop_rs.bench.ddp)")


def main(argv: list[str] | None = None) -> int:
    """``python -m backprop_rs.bench [flags]``: the same as ``backprop-rs bench [flags]``."""
    parser = argparse.ArgumentParser(prog="backprop-rs bench", description=DESCRIPTION)
    add_arguments(parser)
    from .runner import run

    return run(parser.parse_args(argv))
