//! Which SIMD instruction set the kernels run with, for benchmark and bug reports.
//!
//! Detection is at run time (not `target_feature` at compile time) because one wheel has to run on
//! every x86-64 or aarch64 machine; `simd::dispatch` uses the same answer to pick the code path.

/// The level the kernels dispatch to: `"avx512"`, `"avx2+fma"`, `"neon"` or `"scalar"`
/// (`BACKPROP_SIMD=scalar|avx2` lowers it, for comparisons).
///
/// ```
/// let level = backprop::cpu::features::simd_level();
/// assert!(["avx512", "avx2+fma", "neon", "scalar"].contains(&level));
/// ```
pub fn simd_level() -> &'static str {
    super::simd::level().name()
}
