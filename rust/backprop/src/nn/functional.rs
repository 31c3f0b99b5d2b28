//! Stateless functions over tensors that are not primitives: dropout and friends.

use crate::{Error, Result, Tensor};

/// Zeroes each element with probability `p` and scales the rest by `1/(1-p)` when `training`;
/// the identity otherwise. Masks come from the global generator, so `manual_seed` fixes them.
pub fn dropout(x: &Tensor, p: f64, training: bool) -> Result<Tensor> {
    if !(0.0..=1.0).contains(&p) {
        return Err(Error::invalid("dropout", format!("dropout probability has to be between 0 and 1, but got {p}")));
    }
    if !training || p == 0.0 {
        return Ok(x.clone());
    }
    if p == 1.0 {
        return x.mul(&x.zeros_scalar()?);
    }
    let mask = Tensor::bernoulli(x.shape().clone(), 1.0 - p, x.dtype(), x.device())?;
    x.mul(&mask.mul_scalar(1.0 / (1.0 - p))?)
}
