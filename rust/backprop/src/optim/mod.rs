//! Optimisers usable from Rust. Each step updates every parameter with one fused kernel
//! (`update::apply`); the Python `backprop_rs.optim` classes call the same kernels.
//!
//! ```
//! use backprop::optim::{Optimizer, Sgd, SgdConfig};
//! use backprop::{DType, Device, Tensor};
//! let w = Tensor::ones([2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
//! let mut opt = Sgd::new(vec![w.clone()], SgdConfig { lr: 0.1, momentum: 0.9, ..Default::default() });
//! w.mul(&w)?.sum_all()?.backward()?;      // grad = 2w = [2, 2]
//! opt.step()?;
//! assert_eq!(w.to_vec::<f32>()?, vec![0.8, 0.8]);
//! # Ok::<(), backprop::Error>(())
//! ```

mod adagrad;
mod adam;
mod rmsprop;
pub mod rule;
mod sgd;
pub mod update;

pub use adagrad::{Adagrad, AdagradConfig};
pub use adam::{Adam, AdamConfig};
pub use rmsprop::{RmsProp, RmsPropConfig};
pub use sgd::{Sgd, SgdConfig};

use crate::{Result, Tensor};

/// What every optimiser offers.
pub trait Optimizer {
    /// Updates every parameter that has a gradient.
    fn step(&mut self) -> Result<()>;
    /// The parameters being optimised.
    fn params(&self) -> &[Tensor];
    /// Clears the gradients (`set_to_none`, as PyTorch's default).
    fn zero_grad(&self) -> Result<()> {
        for p in self.params() {
            p.set_grad(None)?;
        }
        Ok(())
    }
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// A zero state tensor shaped like `p`, created on first use.
pub(crate) fn state_like(slot: &mut Option<Tensor>, p: &Tensor) -> Result<Tensor> {
    if let Some(t) = slot {
        return Ok(t.clone());
    }
    let t = p.detach().zeros_like()?;
    *slot = Some(t.clone());
    Ok(t)
}
