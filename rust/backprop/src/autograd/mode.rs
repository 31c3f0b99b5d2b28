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

thread_local! {
    static INFERENCE: Cell<bool> = const { Cell::new(false) };
}

/// Whether inference mode is on for this thread.
pub fn is_inference_mode_enabled() -> bool {
    INFERENCE.with(|g| g.get())
}

/// Sets inference mode on this thread (grad mode is left as it is: `inference_mode` sets both);
/// returns the previous setting.
pub fn set_inference_mode_enabled(on: bool) -> bool {
    INFERENCE.with(|g| g.replace(on))
}

/// Restores grad mode and inference mode when dropped.
#[must_use = "inference mode is restored when the guard is dropped"]
pub struct InferenceModeGuard {
    grad: bool,
    inference: bool,
}

impl Drop for InferenceModeGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.grad);
        INFERENCE.with(|g| g.set(self.inference));
    }
}

/// PyTorch's `torch.inference_mode(mode)`: with `true`, no graph is recorded and every tensor
/// made is an *inference tensor*: one that can never be saved for backward, nor be modified in
/// place or be made to require grad outside inference mode (those are errors, so a value from
/// an inference pass cannot silently enter a training graph). `false` turns it off (and grad
/// mode on) inside an enclosing block.
///
/// ```
/// # use backprop::{Tensor, Device, DType};
/// let w = Tensor::ones([2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
/// let y = {
///     let _g = backprop::autograd::inference_mode(true);
///     w.mul_scalar(2.0)?
/// };
/// assert!(y.is_inference() && !y.requires_grad());
/// assert!(w.mul(&y).is_err()); // y would be saved for backward
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn inference_mode(on: bool) -> InferenceModeGuard {
    InferenceModeGuard {
        grad: set_grad_enabled(!on),
        inference: set_inference_mode_enabled(on),
    }
}
