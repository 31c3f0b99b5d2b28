#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (Mesa's lavapipe,
# a real Vulkan device on the CPU, for the GPU backend; Open MPI for bp.distributed; Python
# packages into .venv), checks formatting and lints (cargo fmt, clippy, ruff), builds the
# extension (with the GPU backend), then runs the Rust tests (cargo test with the `gpu` feature;
# the default build is linted), packages the core crate and builds a downstream crate against the
# package, and runs the Python tests (pytest).
# Exits non-zero if anything fails.
#
# GPU tests run on lavapipe and must not skip here (BACKPROP_REQUIRE_GPU=1): a missing adapter
# is a failure. Set BACKPROP_SKIP_GPU_SETUP=1 to run on an existing GPU instead of lavapipe.
# The viz tests need Graphviz, headless Chromium and matplotlib (scripts/setup-viz-tools.sh and
# pip install them) and must not skip either (BACKPROP_REQUIRE_VIZ=1); BACKPROP_SKIP_VIZ_SETUP=1
# leaves the system packages alone (those tests then skip when a tool is missing). The MPI tests
# (tests/test_distributed.py starts tests/mpi under `mpirun -np 2` and `-np 3`) must not skip
# either (BACKPROP_REQUIRE_MPI=1; scripts/setup-mpi.sh installs Open MPI, pip mpi4py).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each section header carries the seconds spent so far, so a slow CI run shows where it went.
section() { echo "== [${SECONDS}s] $*"; }

if [ "${BACKPROP_SKIP_GPU_SETUP:-0}" != "1" ]; then
    section "lavapipe (Vulkan on the CPU) for the GPU tests"
    lavapipe_env=$(bash scripts/setup-lavapipe.sh --env)
    while IFS= read -r line; do export "${line?}"; done <<< "$lavapipe_env"
fi

if [ "${BACKPROP_SKIP_VIZ_SETUP:-0}" != "1" ]; then
    section "Graphviz and headless Chromium for the viz tests"
    viz_env=$(bash scripts/setup-viz-tools.sh --env)
    while IFS= read -r line; do export "${line?}"; done <<< "$viz_env"
fi

section "MPI (Open MPI) for bp.distributed: its tests run under mpirun and must not skip here"
bash scripts/setup-mpi.sh
export BACKPROP_REQUIRE_MPI=1

section "python environment"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip
python -m pip install -q --disable-pip-version-check "numpy>=1.22" "tqdm>=4.60" "pytest>=7" "maturin>=1.7,<2" \
    "wgpu>=0.19" "hypothesis>=6.100" "ruff==0.17.6" "safetensors>=0.4" "threadpoolctl>=3" "matplotlib>=3.5" \
    "mpi4py>=4" "mpmath>=1.3"

section "formatting and lints (cargo fmt, clippy, ruff)"
cargo fmt --all -- --check
cargo clippy --quiet --workspace --all-targets --all-features -- -D warnings
ruff check python tests

section "build the extension (release, GPU backend included)"
maturin develop --release --quiet

# The default (no-gpu) build is checked by clippy rather than a second `cargo test`: compiling
# every test target twice at opt-level 2 cost about 6 minutes, and the code behind
# `cfg(not(feature = "gpu"))` is only the "no GPU backend" errors. The examples run with the
# test profile and the gpu feature, so they reuse what `cargo test --features gpu` compiled.
section "clippy on the default build (no gpu feature)"
cargo clippy --quiet -p backprop --all-targets -- -D warnings
section "cargo test --features gpu (core crate: unit, integration, doc tests, GPU parity, shaders)"
cargo test --quiet --features gpu
section "examples"
cargo run --quiet --profile test --features gpu --example indexing > /dev/null
cargo run --quiet --profile test --features gpu --example attribution > /dev/null
cargo run --quiet --profile test --features gpu --example char_lstm -- 30 > /dev/null  # fails unless the loss falls
section "the published crate: cargo package, then a downstream crate against the package"
bash scripts/check-package.sh

section "pytest"
python -m pytest -q "$@"
