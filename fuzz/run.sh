#!/usr/bin/env bash
# Runs each AFL++ target for $1 seconds (default 300) and prints its figures.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-300}
cargo afl build --release --quiet
mkdir -p seeds/checkpoint seeds/index seeds/shapes
# seeds: a valid checkpoint (written by the proptest driver's seed), short keys and shapes
cargo test --quiet --manifest-path ../Cargo.toml -p backprop --test fuzz_parsers the_seed_checkpoint >/dev/null
python3 - <<'PY'
import os, struct, json
hdr = json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
open("seeds/checkpoint/a.safetensors", "wb").write(struct.pack("<Q", len(hdr)) + hdr + bytes(8))
for i, s in enumerate([b"\x02\x02\x03\x02\x00\x01", b"\x03\x01\x02\x03\x03\x02\x05\x04", b"\x02\x03\x03\x01\x06\x02\x01\x00"]):
    open(f"seeds/index/{i}", "wb").write(s)
    open(f"seeds/shapes/{i}", "wb").write(s)
PY
for t in checkpoint index shapes; do
    rm -rf "out/$t"; mkdir -p out
    AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_BENCH_UNTIL_CRASH=0 \
        timeout --signal=INT "$((secs + 30))" cargo afl fuzz -V "$secs" -i "seeds/$t" -o "out/$t" "target/release/$t" >"out-$t.log" 2>&1 || true
    s="out/$t/default/fuzzer_stats"
    echo "$t: $(grep -E '^(execs_done|run_time|corpus_count|saved_crashes|saved_hangs|execs_per_sec)' "$s" | awk '{print $1"="$3}' | tr '\n' ' ')"
done
