//! Which SIMD instruction set this CPU offers, as the kernels' runtime dispatch sees it.
//!
//! Detection is at run time (not `target_feature` at compile time) because one wheel has to run on
//! every x86-64 or aarch64 machine; the answer is what a benchmark report or a bug report needs to
//! say which code path ran.

/// The widest SIMD level the running CPU supports: `"avx512"`, `"avx2+fma"`, `"neon"` or `"scalar"`.
///
/// ```
/// let level = backprop::cpu::features::simd_level();
/// assert!(["avx512", "avx2+fma", "neon", "scalar"].contains(&level));
/// ```
pub fn simd_level() -> &'static str {
    detect()
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn detect() -> &'static str {
    // AVX-512F is the foundation every other AVX-512 subset builds on, so it names the level.
    // AVX2 is reported only together with FMA: kernels written for AVX2 use fused multiply-add,
    // and a CPU with one but not the other would not run them.
    if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512"
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        "avx2+fma"
    } else {
        "scalar"
    }
}

#[cfg(target_arch = "aarch64")]
fn detect() -> &'static str {
    if std::arch::is_aarch64_feature_detected!("neon") {
        "neon"
    } else {
        "scalar"
    }
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
fn detect() -> &'static str {
    "scalar"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_is_one_of_the_documented_names() {
        assert!(["avx512", "avx2+fma", "neon", "scalar"].contains(&simd_level()));
    }
}
