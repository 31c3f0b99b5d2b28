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
