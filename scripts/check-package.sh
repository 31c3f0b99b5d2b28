#!/usr/bin/env bash
# The core crate as crates.io would ship it: `cargo package -p backprop` (which builds the
# packaged sources on their own), then a downstream crate that depends on that package with the
# gpu feature builds and runs. Shares the workspace's target dir and lock file so the
# dependencies are compiled once.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo package -p backprop --allow-dirty --quiet
dir=tests/downstream-crate
cp Cargo.lock "$dir/Cargo.lock"
CARGO_TARGET_DIR="$PWD/target" cargo run --quiet --manifest-path "$dir/Cargo.toml"
rm -f "$dir/Cargo.lock"
