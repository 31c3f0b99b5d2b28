#!/usr/bin/env bash
# The core crate as crates.io would ship it: `cargo package -p backprop` (the .crate file), then a
# downstream crate that depends on the unpacked package with the gpu feature builds and runs.
# That downstream build compiles the packaged sources on their own, which is what cargo's own
# verify step would do, so the package is made with --no-verify instead of compiling it twice.
# The downstream crate shares the workspace's target dir and lock file, and `--profile test` with
# the workspace's test-profile settings (tests/downstream-crate/Cargo.toml), so it reuses the
# dependencies `cargo test --features gpu` already compiled: only backprop itself is rebuilt.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
cargo package -p backprop --allow-dirty --no-verify --quiet
rm -rf "target/package/backprop-$version"
tar -xzf "target/package/backprop-$version.crate" -C target/package
dir=tests/downstream-crate
cp Cargo.lock "$dir/Cargo.lock"
trap 'rm -f "$dir/Cargo.lock"' EXIT
CARGO_TARGET_DIR="$PWD/target" cargo run --quiet --profile test --manifest-path "$dir/Cargo.toml"
