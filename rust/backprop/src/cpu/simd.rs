//! Runtime SIMD dispatch.
//!
//! The wheel is built for baseline x86-64 (SSE2), but the machines it runs on mostly have AVX2
//! and FMA, often AVX-512. `dispatch` runs a closure inside a function compiled for the best
//! instruction set the CPU reports; the closure (and the kernel loops it inlines) is then
//! auto-vectorised for that set. The kernels are written as plain branch-free loops (see
//! `vmath.rs` for the transcendental functions) precisely so that this works, which keeps one
//! source for every ISA instead of hand-written intrinsics per ISA.

use std::sync::atomic::{AtomicU8, Ordering};

/// Instruction-set levels, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Avx512,
    Avx2Fma,
    Neon,
    Scalar,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Avx512 => "avx512",
            Level::Avx2Fma => "avx2+fma",
            Level::Neon => "neon",
            Level::Scalar => "scalar",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(u8::MAX);

fn detect() -> Level {
    if let Ok(v) = std::env::var("BACKPROP_SIMD") {
        // lets tests and benchmarks compare code paths on one machine
        match v.as_str() {
            "scalar" => return Level::Scalar,
            "avx2" => return Level::Avx2Fma,
            _ => {}
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2Fma;
        }
        Level::Scalar
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is part of the aarch64 baseline: the default build already uses it.
        Level::Neon
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Level::Scalar
    }
}

/// The level in use (detected once).
#[inline]
pub fn level() -> Level {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Level::Avx512,
        1 => Level::Avx2Fma,
        2 => Level::Neon,
        3 => Level::Scalar,
        _ => {
            let l = detect();
            LEVEL.store(
                match l {
                    Level::Avx512 => 0,
                    Level::Avx2Fma => 1,
                    Level::Neon => 2,
                    Level::Scalar => 3,
                },
                Ordering::Relaxed,
            );
            l
        }
    }
}

/// Runs `f` compiled for the best available instruction set.
#[inline(always)]
pub fn dispatch<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        match level() {
            // SAFETY: the CPU supports these features (checked in `detect`).
            Level::Avx512 => unsafe { x86::avx512(f) },
            Level::Avx2Fma => unsafe { x86::avx2(f) },
            _ => f(),
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
        f()
    }

    #[target_feature(enable = "avx2,fma,bmi1,bmi2,lzcnt,popcnt")]
    pub unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}
