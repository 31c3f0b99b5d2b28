//! Property-based fuzzing of the checkpoint loader and the index/shape parsing (the targets in
//! `fuzz_targets/`): random and mutated inputs must give an error or a checked result, never a
//! panic. `cargo test` runs a bounded number of cases; `BACKPROP_FUZZ_CASES=1000000 cargo test
//! --release --test fuzz_parsers` is the long run (its figures are in BENCHMARKS.md). The same
//! targets also run under AFL++'s coverage-guided fuzzer (`fuzz/README.md`).

mod fuzz_targets;

use proptest::collection::vec;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("BACKPROP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn checkpoint_random_bytes(data in vec(any::<u8>(), 0..300)) {
        fuzz_targets::checkpoint(&data);
    }

    /// Byte flips, insertions and truncations of a valid file reach the header parser and the
    /// data section checks, where random bytes stop at the length prefix.
    #[test]
    fn checkpoint_mutated(edits in vec((any::<usize>(), any::<u8>(), 0u8..4), 1..6), cut in any::<usize>()) {
        let mut data = fuzz_targets::seed_checkpoint();
        for (at, byte, how) in edits {
            let i = at % (data.len() + 1);
            match how {
                0 if i < data.len() => data[i] = byte,
                1 => data.insert(i, byte),
                2 if i < data.len() => { data.remove(i); }
                _ if i < data.len() => data[i] ^= 1 << (byte % 8),
                _ => {}
            }
        }
        if cut % 4 == 0 {
            data.truncate(cut % (data.len() + 1));
        }
        fuzz_targets::checkpoint(&data);
    }

    #[test]
    fn index_keys(data in vec(any::<u8>(), 0..48)) {
        fuzz_targets::index(&data);
    }

    #[test]
    fn shape_arguments(data in vec(any::<u8>(), 0..48)) {
        fuzz_targets::shapes(&data);
    }
}

#[test]
fn the_seed_checkpoint_round_trips() {
    fuzz_targets::checkpoint(&fuzz_targets::seed_checkpoint());
    assert!(backprop::io::load_from_bytes(&fuzz_targets::seed_checkpoint()).is_ok());
}
