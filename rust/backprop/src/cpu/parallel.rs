//! When to use threads.
//!
//! Spawning work on rayon costs a few microseconds; below these sizes the calling thread is faster.
//! Chunk boundaries depend only on sizes, never on the thread count, so results (reductions
//! included) are bit-identical run to run and across thread counts.

/// Elementwise kernels go parallel from this many elements. Python's main thread is one of
/// rayon's workers (the binding builds the pool with `use_current_thread`), so a parallel kernel
/// starts on the caller at once; the other workers still have to wake (~10-30 us on a busy or
/// virtualised machine), which enough work must pay for: at ~0.3 ns per element, 2^18 elements
/// is ~80 us of work.
pub const PAR_ELEMENTWISE: usize = 1 << 18;
/// Elements per parallel task for elementwise kernels.
pub const CHUNK: usize = 1 << 14;
/// Contiguous reductions are split into blocks of this many elements, combined in a fixed order.
pub const REDUCE_BLOCK: usize = 1 << 15;

#[inline]
pub fn threads() -> usize {
    rayon::current_num_threads()
}

#[inline]
pub fn go_parallel(n: usize) -> bool {
    n >= PAR_ELEMENTWISE && threads() > 1
}

/// Row kernels (softmax, layer norm: several passes and often an `exp` per element, ~1 ns per
/// element) split from this many elements, through [`for_each_chunk`] (whose helper thread is
/// awake, so the split costs ~1 us, not a rayon wake-up): a 768 x 128 log-softmax is ~50 us of
/// work on one core.
pub const PAR_ROWS: usize = 1 << 15;

#[inline]
pub fn go_parallel_rows(n: usize) -> bool {
    n >= PAR_ROWS && threads() > 1
}

/// Runs `f(chunk_index, piece)` over `out` cut into `chunk`-element pieces (the last may be
/// shorter), in parallel. With two threads the pieces are dealt in two halves, one to the caller
/// and one to the spinning helper ([`super::spin::join`]): rayon's workers fall asleep soon after
/// a kernel, and inside a training step (Python between the kernels) waking one cost ~50 us on
/// the 2-vCPU VM, more than a 300K-element add takes (`g + h` right after a 50 us pause: 79 us
/// instead of 30). With more threads rayon spreads the pieces. The cut depends only on `chunk`,
/// so results do not depend on the thread count.
pub fn for_each_chunk<U: Send>(
    out: &mut [U],
    chunk: usize,
    f: impl Fn(usize, &mut [U]) + Sync + Send,
) {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    if threads() == 2 {
        let pieces = out.len().div_ceil(chunk);
        let first = pieces / 2;
        let (lo, hi) = out.split_at_mut((first * chunk).min(out.len()));
        let f = &f;
        super::spin::join(
            || {
                for (c, p) in lo.chunks_mut(chunk).enumerate() {
                    f(c, p)
                }
            },
            || {
                for (c, p) in hi.chunks_mut(chunk).enumerate() {
                    f(first + c, p)
                }
            },
        );
    } else {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(c, p)| f(c, p));
    }
}
