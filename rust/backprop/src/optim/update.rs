//! Fused parameter updates: one pass over a parameter, its gradient and its optimiser state per
//! step, instead of the 5-10 separate elementwise kernels (and temporaries) the update would
//! take when written with tensor ops. CPU tensors take the fused loop below; float32 GPU tensors
//! take one dispatch of `shaders/optim.wgsl` (`GpuStorage::fused_update`, the same arithmetic);
//! anything else (a strided or aliased state, float64 elsewhere than the CPU) takes the
//! equivalent composition of tensor ops, so every backend and layout is covered.
//!
//! The rules are PyTorch's published update rules, term for term.

use crate::cpu::parallel::{go_parallel, CHUNK};
use crate::storage::Storage;
use crate::{DType, Device, Error, FloatElement, Result, Tensor};
use rayon::prelude::*;

/// One optimiser step's rule and hyper-parameters (with step-dependent factors precomputed).
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// `states = [momentum_buffer]` when `momentum != 0`, else `[]`. `init_buffer` is set on the
    /// first step, when PyTorch initialises the buffer with the gradient itself.
    Sgd {
        lr: f64,
        momentum: f64,
        dampening: f64,
        nesterov: bool,
        weight_decay: f64,
        maximize: bool,
        init_buffer: bool,
    },
    /// `states = [exp_avg, exp_avg_sq]` (+ `[max_exp_avg_sq]` with amsgrad). `decoupled` is AdamW.
    /// `bias1 = 1 - beta1^t`, `bias2 = 1 - beta2^t`.
    Adam {
        lr: f64,
        beta1: f64,
        beta2: f64,
        eps: f64,
        weight_decay: f64,
        decoupled: bool,
        amsgrad: bool,
        maximize: bool,
        bias1: f64,
        bias2: f64,
    },
    /// `states = [square_avg]` (+ `[momentum_buffer]` if momentum > 0) (+ `[grad_avg]` if centered).
    RmsProp {
        lr: f64,
        alpha: f64,
        eps: f64,
        weight_decay: f64,
        momentum: f64,
        centered: bool,
        maximize: bool,
    },
    /// `states = [sum]`; `lr` is the already-decayed `lr / (1 + (t - 1) * lr_decay)`.
    Adagrad {
        lr: f64,
        weight_decay: f64,
        eps: f64,
        maximize: bool,
    },
}

impl Rule {
    fn n_states(&self) -> usize {
        match *self {
            Rule::Sgd { momentum, .. } => (momentum != 0.0) as usize,
            Rule::Adam { amsgrad, .. } => 2 + amsgrad as usize,
            Rule::RmsProp {
                momentum, centered, ..
            } => 1 + (momentum > 0.0) as usize + centered as usize,
            Rule::Adagrad { .. } => 1,
        }
    }
}

/// Applies `rule` to `param` in place, updating `states` in place. Runs outside the graph.
pub fn apply(param: &Tensor, grad: &Tensor, states: &[Tensor], rule: &Rule) -> Result<()> {
    if states.len() != rule.n_states() {
        return Err(Error::invalid(
            "optimizer step",
            format!(
                "expected {} state tensors for {rule:?}, got {}",
                rule.n_states(),
                states.len()
            ),
        ));
    }
    for t in std::iter::once(grad).chain(states) {
        if t.shape() != param.shape() {
            return Err(Error::ShapeMismatch {
                op: "optimizer step",
                lhs: param.shape().clone(),
                rhs: t.shape().clone(),
                detail: ": gradient/state shape differs from the parameter".into(),
            });
        }
        if t.device() != param.device() {
            return Err(Error::DeviceMismatch {
                op: "optimizer step",
                lhs: param.device(),
                rhs: t.device(),
            });
        }
    }
    let _g = crate::no_grad();
    let grad = if grad.dtype() != param.dtype() {
        grad.to_dtype(param.dtype())?
    } else {
        grad.clone()
    };
    // one copy of a strided gradient is far cheaper than the composite path's ten passes
    let grad = if param.is_contiguous() && !grad.is_contiguous() {
        grad.contiguous()?
    } else {
        grad
    };
    let dense = param.dtype().is_float()
        && std::iter::once(param)
            .chain(states)
            .chain(std::iter::once(&grad))
            .all(|t| t.is_contiguous() && t.dtype() == param.dtype())
        && !aliased(param, &grad, states);
    match param.device() {
        Device::Cpu if dense => match param.dtype() {
            DType::F32 => fused::<f32>(param, &grad, states, rule),
            _ => fused::<f64>(param, &grad, states, rule),
        },
        #[cfg(feature = "gpu")]
        Device::Gpu if dense && param.dtype() == DType::F32 => {
            fused_gpu(param, &grad, states, rule)
        }
        _ => composite(param, &grad, states, rule),
    }
}

fn aliased(param: &Tensor, grad: &Tensor, states: &[Tensor]) -> bool {
    let all: Vec<&Tensor> = std::iter::once(param)
        .chain(std::iter::once(grad))
        .chain(states)
        .collect();
    (0..all.len()).any(|i| (i + 1..all.len()).any(|j| all[i].shares_storage(all[j])))
}

/// A raw pointer that may cross into rayon tasks; each task touches a disjoint range.
#[derive(Clone, Copy)]
struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}
unsafe impl<T> Sync for Ptr<T> {}

/// Takes every lock once, in address order (see tensor::with_read): param and states for
/// writing, grad for reading. The guards come back in the order param, states..., grad.
fn lock_all<'a>(param: &'a Tensor, grad: &'a Tensor, states: &'a [Tensor]) -> Vec<GuardRef<'a>> {
    let mut order: Vec<(usize, &Tensor, bool)> = std::iter::once((param, true))
        .chain(states.iter().map(|s| (s, true)))
        .chain(std::iter::once((grad, false)))
        .enumerate()
        .map(|(i, (t, w))| (i, t, w))
        .collect();
    order.sort_by_key(|(_, t, _)| t.storage_key());
    let mut guards: Vec<(usize, GuardRef<'_>)> = Vec::with_capacity(order.len());
    for (i, t, w) in &order {
        guards.push((
            *i,
            if *w {
                GuardRef::W(t.storage_mut())
            } else {
                GuardRef::R(t.storage())
            },
        ));
    }
    guards.sort_by_key(|(i, _)| *i);
    guards.into_iter().map(|(_, g)| g).collect()
}

fn fused<T: FloatElement>(
    param: &Tensor,
    grad: &Tensor,
    states: &[Tensor],
    rule: &Rule,
) -> Result<()> {
    let mut guards = lock_all(param, grad, states);
    let n = param.numel();
    let mut ptrs: Vec<Ptr<T>> = Vec::with_capacity(guards.len());
    for (g, t) in guards.iter_mut().zip(
        std::iter::once(param)
            .chain(states)
            .chain(std::iter::once(grad)),
    ) {
        let off = t.layout().offset();
        let ptr = match g {
            GuardRef::W(s) => match &mut **s {
                Storage::Cpu(c) => c.as_mut_slice::<T>().map(|x| x[off..off + n].as_mut_ptr()),
                #[allow(unreachable_patterns)]
                _ => None,
            },
            GuardRef::R(s) => match &**s {
                Storage::Cpu(c) => c
                    .as_slice::<T>()
                    .map(|x| x[off..off + n].as_ptr() as *mut T),
                #[allow(unreachable_patterns)]
                _ => None,
            },
        };
        ptrs.push(Ptr(ptr.ok_or_else(|| {
            Error::invalid("optimizer step", "internal: expected CPU float storage")
        })?));
    }
    let p = ptrs[0];
    let st: Vec<Ptr<T>> = ptrs[1..ptrs.len() - 1].to_vec();
    let g = ptrs[ptrs.len() - 1];
    let rule = *rule;
    let run = move |start: usize, end: usize| {
        // SAFETY: the pointers address `n` elements each, held under the locks above for the
        // duration of this call; ranges given to concurrent tasks are disjoint; param and states
        // are distinct storages (checked by `aliased`), so no two slices overlap.
        let len = end - start;
        let sl = |q: Ptr<T>| unsafe { std::slice::from_raw_parts_mut(q.0.add(start), len) };
        crate::cpu::simd::dispatch(
            #[inline(always)]
            || kernel(sl(p), &*sl(g), st.iter().map(|&q| sl(q)).collect(), &rule),
        );
    };
    if go_parallel(n) {
        (0..n.div_ceil(CHUNK))
            .into_par_iter()
            .for_each(|c| run(c * CHUNK, ((c + 1) * CHUNK).min(n)));
    } else {
        run(0, n);
    }
    drop(guards);
    Ok(())
}

/// The GPU's fused update (one dispatch of `shaders/optim.wgsl`), under the same locks as the
/// CPU loop: the kernel is recorded while param and states are held for writing.
#[cfg(feature = "gpu")]
fn fused_gpu(param: &Tensor, grad: &Tensor, states: &[Tensor], rule: &Rule) -> Result<()> {
    use crate::gpu::GpuStorage;
    let internal = || {
        Error::invalid(
            "optimizer step",
            "internal: expected GPU storage for every operand",
        )
    };
    let mut guards = lock_all(param, grad, states);
    let (writes, read) = guards.split_at_mut(states.len() + 1);
    let g = match read.first() {
        Some(GuardRef::R(s)) => match &**s {
            Storage::Gpu(g) => g,
            _ => return Err(internal()),
        },
        _ => return Err(internal()),
    };
    let mut out: Vec<&mut GpuStorage> = writes
        .iter_mut()
        .map(|w| match w {
            GuardRef::W(s) => match &mut **s {
                Storage::Gpu(x) => Some(x),
                _ => None,
            },
            GuardRef::R(_) => None,
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(internal)?;
    let mut st: Vec<(&mut GpuStorage, &crate::Layout)> = out
        .drain(1..)
        .zip(states.iter().map(Tensor::layout))
        .collect();
    let p = out.pop().ok_or_else(internal)?;
    p.fused_update(param.layout(), g, grad.layout(), &mut st, rule)
}

enum GuardRef<'a> {
    W(std::sync::RwLockWriteGuard<'a, Storage>),
    R(std::sync::RwLockReadGuard<'a, Storage>),
}

/// Optimiser state that decays geometrically (momentum of a dead unit's weights, Adam's
/// moments) ends up as denormal floats, and so do gradients once a loss is nearly zero; x86
/// arithmetic on denormals is ~100x slower, so a training step could spend most of its time
/// there. Such values are below 1.2e-38 and change no parameter by a representable amount, so
/// gradients and state are flushed to zero as they enter the update.
#[inline(always)]
fn ftz<T: FloatElement>(v: T) -> T {
    if v.abs() < T::min_positive_value() {
        T::ZERO
    } else {
        v
    }
}

#[inline(always)]
fn kernel<T: FloatElement>(p: &mut [T], g: &[T], mut st: Vec<&mut [T]>, rule: &Rule) {
    let c = T::c;
    // Loops are written as zips so the compiler drops bounds checks and vectorises them.
    match *rule {
        Rule::Sgd {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            maximize,
            init_buffer,
        } => {
            let (lr, mom, damp, wd) = (c(lr), c(momentum), c(1.0 - dampening), c(weight_decay));
            let sign = if maximize { -T::ONE } else { T::ONE };
            if let Some(buf) = st.first_mut() {
                for ((pi, &gi), bi) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
                    let d = sign * ftz(gi) + wd * *pi;
                    let b = if init_buffer {
                        d
                    } else {
                        ftz(mom * *bi + damp * d)
                    };
                    *bi = b;
                    let step = if nesterov { d + mom * b } else { b };
                    *pi = *pi - lr * step;
                }
            } else {
                for (pi, &gi) in p.iter_mut().zip(g) {
                    *pi = *pi - lr * (sign * ftz(gi) + wd * *pi);
                }
            }
        }
        Rule::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            maximize,
            bias1,
            bias2,
            ..
        } => {
            let (b1, b2, eps, wd) = (c(beta1), c(beta2), c(eps), c(weight_decay));
            // 1 - beta in f64: from the rounded f32 beta, 1 - beta2 would be off by 7e-6
            // relative, and the first step would exceed lr (PyTorch's stays <= lr)
            let (ob1, ob2) = (c(1.0 - beta1), c(1.0 - beta2));
            let step_size = c(lr / bias1);
            let inv_sqrt_b2 = c(1.0 / bias2.sqrt());
            let decay = c(1.0 - lr * weight_decay);
            let sign = if maximize { -T::ONE } else { T::ONE };
            let mut it = st.into_iter();
            let (Some(m), Some(v)) = (it.next(), it.next()) else {
                return;
            };
            let vmax = it.next();
            let step = |pi: &mut T, gi: T, mi: &mut T, vi: &mut T, vm: Option<&mut T>| {
                let mut gi = sign * ftz(gi);
                if decoupled {
                    *pi = *pi * decay;
                } else {
                    gi = gi + wd * *pi;
                }
                *mi = ftz(b1 * *mi + ob1 * gi);
                *vi = ftz(b2 * *vi + ob2 * gi * gi);
                let vv = match vm {
                    Some(vm) => {
                        if *vi > *vm {
                            *vm = *vi;
                        }
                        *vm
                    }
                    None => *vi,
                };
                *pi = *pi - step_size * *mi / (vv.sqrt() * inv_sqrt_b2 + eps);
            };
            match vmax {
                Some(vmax) => {
                    for ((((pi, &gi), mi), vi), vm) in p
                        .iter_mut()
                        .zip(g)
                        .zip(m.iter_mut())
                        .zip(v.iter_mut())
                        .zip(vmax.iter_mut())
                    {
                        step(pi, gi, mi, vi, Some(vm));
                    }
                }
                None => {
                    for (((pi, &gi), mi), vi) in
                        p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut())
                    {
                        step(pi, gi, mi, vi, None);
                    }
                }
            }
        }
        Rule::RmsProp {
            lr,
            alpha,
            eps,
            weight_decay,
            momentum,
            centered,
            maximize,
        } => {
            let (lr, a, eps, wd, mom) = (c(lr), c(alpha), c(eps), c(weight_decay), c(momentum));
            let oa = c(1.0 - alpha);
            let sign = if maximize { -T::ONE } else { T::ONE };
            let has_mom = momentum > 0.0;
            for i in 0..p.len() {
                let gi = sign * ftz(g[i]) + wd * p[i];
                let sq = ftz(a * st[0][i] + oa * gi * gi);
                st[0][i] = sq;
                let avg = if centered {
                    let k = if has_mom { 2 } else { 1 };
                    let ga = ftz(a * st[k][i] + oa * gi);
                    st[k][i] = ga;
                    (sq - ga * ga).sqrt() + eps
                } else {
                    sq.sqrt() + eps
                };
                if has_mom {
                    let b = ftz(mom * st[1][i] + gi / avg);
                    st[1][i] = b;
                    p[i] = p[i] - lr * b;
                } else {
                    p[i] = p[i] - lr * gi / avg;
                }
            }
        }
        Rule::Adagrad {
            lr,
            weight_decay,
            eps,
            maximize,
        } => {
            let (lr, wd, eps) = (c(lr), c(weight_decay), c(eps));
            let sign = if maximize { -T::ONE } else { T::ONE };
            let Some(sum) = st.into_iter().next() else {
                return;
            };
            for ((pi, &gi), si) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
                let gi = sign * ftz(gi) + wd * *pi;
                let s = *si + gi * gi;
                *si = s;
                *pi = *pi - lr * gi / (s.sqrt() + eps);
            }
        }
    }
}

/// The same rules written with tensor ops (any device, any layout).
fn composite(p: &Tensor, g: &Tensor, st: &[Tensor], rule: &Rule) -> Result<()> {
    match *rule {
        Rule::Sgd {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            maximize,
            init_buffer,
        } => {
            let mut d = if maximize { g.neg()? } else { g.clone() };
            if weight_decay != 0.0 {
                d = d.add(&p.mul_scalar(weight_decay)?)?;
            }
            let step = if let Some(buf) = st.first() {
                let b = if init_buffer {
                    d.clone()
                } else {
                    buf.mul_scalar(momentum)?
                        .add(&d.mul_scalar(1.0 - dampening)?)?
                };
                buf.copy_(&b)?;
                if nesterov {
                    d.add(&b.mul_scalar(momentum)?)?
                } else {
                    b
                }
            } else {
                d
            };
            p.copy_(&p.sub(&step.mul_scalar(lr)?)?)
        }
        Rule::Adam {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
            amsgrad,
            maximize,
            bias1,
            bias2,
        } => {
            let mut gi = if maximize { g.neg()? } else { g.clone() };
            let mut pv = p.clone();
            if decoupled {
                pv = p.mul_scalar(1.0 - lr * weight_decay)?;
            } else if weight_decay != 0.0 {
                gi = gi.add(&p.mul_scalar(weight_decay)?)?;
            }
            let m = st[0].mul_scalar(beta1)?.add(&gi.mul_scalar(1.0 - beta1)?)?;
            let v = st[1]
                .mul_scalar(beta2)?
                .add(&gi.mul(&gi)?.mul_scalar(1.0 - beta2)?)?;
            st[0].copy_(&m)?;
            st[1].copy_(&v)?;
            let vv = if amsgrad {
                let vm = st[2].maximum(&v)?;
                st[2].copy_(&vm)?;
                vm
            } else {
                v
            };
            let denom = vv.sqrt()?.mul_scalar(1.0 / bias2.sqrt())?.add_scalar(eps)?;
            p.copy_(&pv.sub(&m.div(&denom)?.mul_scalar(lr / bias1)?)?)
        }
        Rule::RmsProp {
            lr,
            alpha,
            eps,
            weight_decay,
            momentum,
            centered,
            maximize,
        } => {
            let mut gi = if maximize { g.neg()? } else { g.clone() };
            if weight_decay != 0.0 {
                gi = gi.add(&p.mul_scalar(weight_decay)?)?;
            }
            let sq = st[0]
                .mul_scalar(alpha)?
                .add(&gi.mul(&gi)?.mul_scalar(1.0 - alpha)?)?;
            st[0].copy_(&sq)?;
            let avg = if centered {
                let k = if momentum > 0.0 { 2 } else { 1 };
                let ga = st[k].mul_scalar(alpha)?.add(&gi.mul_scalar(1.0 - alpha)?)?;
                st[k].copy_(&ga)?;
                sq.sub(&ga.mul(&ga)?)?.sqrt()?.add_scalar(eps)?
            } else {
                sq.sqrt()?.add_scalar(eps)?
            };
            if momentum > 0.0 {
                let b = st[1].mul_scalar(momentum)?.add(&gi.div(&avg)?)?;
                st[1].copy_(&b)?;
                p.copy_(&p.sub(&b.mul_scalar(lr)?)?)
            } else {
                p.copy_(&p.sub(&gi.div(&avg)?.mul_scalar(lr)?)?)
            }
        }
        Rule::Adagrad {
            lr,
            weight_decay,
            eps,
            maximize,
        } => {
            let mut gi = if maximize { g.neg()? } else { g.clone() };
            if weight_decay != 0.0 {
                gi = gi.add(&p.mul_scalar(weight_decay)?)?;
            }
            let s = st[0].add(&gi.mul(&gi)?)?;
            st[0].copy_(&s)?;
            p.copy_(&p.sub(&gi.div(&s.sqrt()?.add_scalar(eps)?)?.mul_scalar(lr)?)?)
        }
    }
}
