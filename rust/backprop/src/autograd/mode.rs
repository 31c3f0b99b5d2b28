//! Grad mode: whether ops record the graph, per thread (as in PyTorch).

use std::cell::Cell;

thread_local! {
    // Per thread, as in PyTorch: a no_grad block on one thread does not affect others.
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record the graph on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Turns recording on or off for this thread; returns the previous setting.
pub fn set_grad_enabled(enabled: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(enabled))
}

/// Restores the previous grad mode when dropped.
#[must_use = "grad mode is restored when the guard is dropped"]
pub struct GradModeGuard(bool);

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

/// Disables recording until the guard is dropped (PyTorch's `with torch.no_grad():`).
///
/// ```
/// # use backprop::{Tensor, Device, DType};
/// let w = Tensor::ones([2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
/// let y = {
///     let _g = backprop::no_grad();
///     w.mul_scalar(2.0)?
/// };
/// assert!(!y.requires_grad());
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn no_grad() -> GradModeGuard {
    GradModeGuard(set_grad_enabled(false))
}

/// Sets grad mode to `enabled` until the guard is dropped.
pub fn grad_mode(enabled: bool) -> GradModeGuard {
    GradModeGuard(set_grad_enabled(enabled))
}
