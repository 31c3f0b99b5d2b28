//! Flushing denormal floats to zero on the CPU: PyTorch's `set_flush_denormal`.
//!
//! x86 arithmetic that reads or produces a denormal (|x| < 1.18e-38 in f32) takes on the order of
//! 100x longer than on normal numbers, and a loss near zero fills gradients with them (measured
//! here: an MLP's batch-1 backward went from 56 to 150 us once its loss reached 0). The MXCSR
//! register's FTZ (results flush to 0) and DAZ (denormal inputs read as 0) bits trade that last
//! sliver of range for speed. MXCSR is per thread, so the switch is applied to the calling thread
//! and to every worker of the compute pool. It does not touch the GPU backend.

#[cfg(target_arch = "x86_64")]
mod imp {
    /// FTZ (bit 15) and DAZ (bit 6).
    const FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

    fn get() -> u32 {
        let mut v: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR to the address given, a live local.
        unsafe {
            core::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags))
        };
        v
    }

    fn set(v: u32) {
        // SAFETY: ldmxcsr loads MXCSR from a live local; only the FTZ/DAZ bits differ from the
        // value read, and both are defined on every x86-64 CPU (SSE2 is baseline).
        unsafe {
            core::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, readonly, preserves_flags))
        };
    }

    pub fn apply(on: bool) {
        let c = get();
        set(if on { c | FTZ_DAZ } else { c & !FTZ_DAZ });
    }

    pub fn enabled() -> bool {
        get() & FTZ_DAZ == FTZ_DAZ
    }

    pub const SUPPORTED: bool = true;
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    // Elsewhere (aarch64's FPCR.FZ would be the equivalent) this is not implemented yet: the
    // switch reports "unsupported" and changes nothing, as PyTorch does on such systems.
    pub fn apply(_on: bool) {}
    pub fn enabled() -> bool {
        false
    }
    pub const SUPPORTED: bool = false;
}

/// Turns flushing of denormal floats to zero on or off for the CPU kernels (the calling thread
/// and every compute-pool thread), as `torch.set_flush_denormal`. Returns whether this CPU
/// supports it (x86-64); where it does not, nothing changes and it returns `false`.
///
/// ```
/// use backprop::{Device, Tensor};
/// use backprop::cpu::denormal::{flush_denormal, set_flush_denormal};
///
/// let tiny = f32::MIN_POSITIVE / 4.0; // a denormal
/// let x = Tensor::from_vec(vec![tiny], [1], Device::Cpu)?;
/// if set_flush_denormal(true) {
///     assert!(flush_denormal());
///     assert_eq!(x.mul_scalar(1.0)?.to_vec::<f32>()?[0], 0.0);
///     set_flush_denormal(false);
/// }
/// assert_eq!(x.mul_scalar(1.0)?.to_vec::<f32>()?[0], tiny);
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn set_flush_denormal(on: bool) -> bool {
    if !imp::SUPPORTED {
        return false;
    }
    imp::apply(on);
    rayon::broadcast(|_| imp::apply(on));
    true
}

/// Whether denormals are flushed to zero on the calling thread.
pub fn flush_denormal() -> bool {
    imp::enabled()
}
