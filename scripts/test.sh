#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs what is missing (Python packages
# into .venv; system packages where a backend needs them), builds the extension, then runs the
# Rust tests (cargo test) and the Python tests (pytest). Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== python environment"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check --upgrade pip
python -m pip install -q --disable-pip-version-check "numpy>=1.22" "tqdm>=4.60" "pytest>=7" "maturin>=1.7,<2"

echo "== build the extension (release)"
maturin develop --release --quiet

echo "== cargo test (core crate: unit, integration and doc tests)"
cargo test --quiet

echo "== pytest"
python -m pytest -q "$@"
