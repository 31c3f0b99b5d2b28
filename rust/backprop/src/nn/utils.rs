//! Training utilities.

use crate::{Error, Result, Tensor};

/// Scales the gradients of `params` in place so that their joint `norm_type`-norm is at most
/// `max_norm`; returns the norm before clipping (PyTorch's `clip_grad_norm_`). `norm_type` may be
/// `f64::INFINITY` for the max-norm.
pub fn clip_grad_norm_(params: &[Tensor], max_norm: f64, norm_type: f64) -> Result<Tensor> {
    let grads: Vec<Tensor> = params.iter().filter_map(|p| p.grad()).collect();
    let _g = crate::no_grad();
    let Some(first) = grads.first() else {
        return Tensor::full_scalar(
            crate::Scalar::Float(0.0),
            crate::default_float(),
            crate::Device::Cpu,
        );
    };
    #[allow(clippy::neg_cmp_op_on_partial_ord)] // also rejects NaN
    if !(norm_type > 0.0) {
        return Err(Error::invalid(
            "clip_grad_norm_",
            format!("norm_type must be positive, got {norm_type}"),
        ));
    }
    let mut parts = Vec::with_capacity(grads.len());
    for g in &grads {
        let a = g.abs()?;
        parts.push(if norm_type.is_infinite() {
            a.max_all()?
        } else if norm_type == 2.0 {
            a.mul(&a)?.sum_all()?
        } else {
            a.pow_scalar(norm_type)?.sum_all()?
        });
    }
    let stacked = Tensor::stack(&parts, 0usize)?;
    let total = if norm_type.is_infinite() {
        stacked.max_all()?
    } else {
        stacked.sum_all()?.pow_scalar(1.0 / norm_type)?
    };
    let coef = max_norm / (total.item()? + 1e-6);
    if coef < 1.0 {
        for g in &grads {
            g.copy_(&g.mul_scalar(coef)?)?;
        }
    }
    let _ = first;
    Ok(total)
}
