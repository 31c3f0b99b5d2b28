//! The fused optimizer step of one parameter: one pass over the parameter, its gradient and its
//! optimiser state per step, instead of the 5-10 separate elementwise kernels (and temporaries)
//! the update would take when written with tensor ops. The arithmetic is a backend operation
//! (`BackendStorage::fused_update`: `cpu/optim.rs`, `gpu/optim.rs` + `shaders/optim.wgsl`); this
//! file holds what is the same for every backend: argument checks, making strided or aliased
//! operands dense (the kernels see contiguous, unaliased memory only), and taking the storage
//! locks in the engine's global order.

pub use super::rule::Rule;
use crate::storage::Storage;
use crate::{Error, Result, Tensor};

/// Applies `rule` to `param` in place, updating `states` (in `Rule`'s order) in place. Runs
/// outside the graph (like PyTorch's optimisers, under no_grad).
pub fn apply(param: &Tensor, grad: &Tensor, states: &[Tensor], rule: &Rule) -> Result<()> {
    const OP: &str = "optimizer step";
    if states.len() != rule.n_states() {
        return Err(Error::invalid(
            OP,
            format!(
                "expected {} state tensors for {rule:?}, got {}",
                rule.n_states(),
                states.len()
            ),
        ));
    }
    if !param.dtype().is_float() {
        return Err(Error::DType {
            op: OP,
            dtype: param.dtype(),
            detail: " (optimizers update float tensors)".into(),
        });
    }
    for t in std::iter::once(grad).chain(states) {
        if t.shape() != param.shape() {
            return Err(Error::ShapeMismatch {
                op: OP,
                lhs: param.shape().clone(),
                rhs: t.shape().clone(),
                detail: ": gradient/state shape differs from the parameter".into(),
            });
        }
        if t.device() != param.device() {
            return Err(Error::DeviceMismatch {
                op: OP,
                lhs: param.device(),
                rhs: t.device(),
            });
        }
    }
    let _g = crate::no_grad();
    param.check_writable(OP)?;
    // The kernels take dense, same-dtype, unaliased operands; anything else is made so: a copy
    // of a strided gradient costs far less than the unfused rule would, and parameters or
    // states that are strided views (rare) are updated through dense copies written back.
    let grad = if grad.dtype() != param.dtype() {
        grad.to_dtype(param.dtype())?
    } else {
        grad.clone()
    };
    let grad = if grad.is_contiguous() && !grad.shares_storage(param) {
        grad
    } else {
        grad.contiguous_copy()?
    };
    let dense = |t: &Tensor, i: usize| {
        t.is_contiguous()
            && t.dtype() == param.dtype()
            && !states[..i].iter().any(|s| s.shares_storage(t))
            && (std::ptr::eq(t, param) || !t.shares_storage(param))
    };
    let p = if dense(param, 0) {
        param.clone()
    } else {
        param.contiguous_copy()?
    };
    let st: Vec<Tensor> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            if dense(s, i) {
                Ok(s.clone())
            } else {
                s.to_dtype(param.dtype())?.contiguous_copy()
            }
        })
        .collect::<Result<_>>()?;
    fused(&p, &grad, &st, rule)?;
    if !p.shares_storage(param) {
        param.copy_(&p)?;
    }
    for (s, d) in states.iter().zip(&st) {
        if !d.shares_storage(s) {
            s.copy_(d)?;
        }
    }
    Ok(())
}

/// Runs the backend kernel with param and states locked for writing and the gradient for
/// reading, every lock taken once and in address order (see `tensor::with_read`).
fn fused(param: &Tensor, grad: &Tensor, states: &[Tensor], rule: &Rule) -> Result<()> {
    let mut order: Vec<(usize, &Tensor, bool)> = std::iter::once((param, true))
        .chain(states.iter().map(|s| (s, true)))
        .chain(std::iter::once((grad, false)))
        .enumerate()
        .map(|(i, (t, w))| (i, t, w))
        .collect();
    order.sort_by_key(|(_, t, _)| t.storage_key());
    let mut guards: Vec<(usize, Guard<'_>)> = Vec::with_capacity(order.len());
    for (i, t, w) in &order {
        guards.push((
            *i,
            if *w {
                Guard::W(t.storage_mut())
            } else {
                Guard::R(t.storage())
            },
        ));
    }
    guards.sort_by_key(|(i, _)| *i);
    let mut it = guards.into_iter().map(|(_, g)| g);
    let (Some(Guard::W(mut pg)), mut rest) = (it.next(), it.collect::<Vec<_>>()) else {
        return Err(Error::invalid("optimizer step", "internal: lock order"));
    };
    let Some(Guard::R(gg)) = rest.pop() else {
        return Err(Error::invalid("optimizer step", "internal: lock order"));
    };
    let mut sg: Vec<std::sync::RwLockWriteGuard<'_, Storage>> = rest
        .into_iter()
        .map(|g| match g {
            Guard::W(w) => Ok(w),
            Guard::R(_) => Err(Error::invalid("optimizer step", "internal: lock order")),
        })
        .collect::<Result<_>>()?;
    let mut st: Vec<(&mut Storage, &crate::Layout)> = sg
        .iter_mut()
        .map(|g| &mut **g)
        .zip(states.iter().map(Tensor::layout))
        .collect();
    pg.fused_update(param.layout(), &gg, grad.layout(), &mut st, rule)
}

enum Guard<'a> {
    W(std::sync::RwLockWriteGuard<'a, Storage>),
    R(std::sync::RwLockReadGuard<'a, Storage>),
}
