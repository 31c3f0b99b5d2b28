//! AFL++ target: `index` from rust/backprop/tests/fuzz_targets (see fuzz/README.md).
#[path = "../../../rust/backprop/tests/fuzz_targets/mod.rs"]
#[allow(dead_code)]
mod fuzz_targets;

fn main() {
    afl::fuzz!(|data: &[u8]| fuzz_targets::index(data));
}
