//! The fused optimizer step on the CPU: one pass over a parameter, its gradient and its state,
//! vectorised (the loops are zips the compiler turns into SIMD) and split over threads for large
//! parameters. The arithmetic is the one `shaders/optim.wgsl` does on the GPU, with the
//! step-dependent factors from `optim::rule`.

use super::parallel::{go_parallel, CHUNK};
use super::CpuStorage;
use crate::optim::rule::Rule;
use crate::{Error, FloatElement, Layout, Result};
use rayon::prelude::*;

const OP: &str = "optimizer step";

/// One thread's share of a step: (parameter, gradient, states) over the same range.
type Piece<'a, T> = (&'a mut [T], &'a [T], Vec<&'a mut [T]>);

/// Applies `rule` in place. Every operand is contiguous with `pl`'s element count and of the
/// parameter's float dtype (the caller, `optim::update::apply`, made sure).
pub(crate) fn fused_update(
    param: &mut CpuStorage,
    pl: &Layout,
    grad: &CpuStorage,
    gl: &Layout,
    states: &mut [(&mut CpuStorage, &Layout)],
    rule: &Rule,
) -> Result<()> {
    match param {
        CpuStorage::F32(_) => typed::<f32>(param, pl, grad, gl, states, rule),
        CpuStorage::F64(_) => typed::<f64>(param, pl, grad, gl, states, rule),
        other => Err(Error::DType {
            op: OP,
            dtype: crate::backend::BackendStorage::dtype(other),
            detail: " (optimizers update float tensors)".into(),
        }),
    }
}

fn typed<T: FloatElement>(
    param: &mut CpuStorage,
    pl: &Layout,
    grad: &CpuStorage,
    gl: &Layout,
    states: &mut [(&mut CpuStorage, &Layout)],
    rule: &Rule,
) -> Result<()> {
    let n = pl.numel();
    let wrong = || {
        Error::invalid(
            OP,
            "internal: operands of mixed dtypes reached the fused update",
        )
    };
    let range = |l: &Layout| l.offset()..l.offset() + n;
    let p = param
        .as_mut_slice::<T>()
        .and_then(|s| s.get_mut(range(pl)))
        .ok_or_else(wrong)?;
    let g = grad
        .as_slice::<T>()
        .and_then(|s| s.get(range(gl)))
        .ok_or_else(wrong)?;
    let mut st: Vec<&mut [T]> = Vec::with_capacity(states.len());
    for (s, l) in states.iter_mut() {
        let r = range(l);
        st.push(
            s.as_mut_slice::<T>()
                .and_then(|x| x.get_mut(r))
                .ok_or_else(wrong)?,
        );
    }
    let rule = *rule;
    if go_parallel(n) {
        // cut every operand at the same chunk boundaries; chunks are disjoint, so each task
        // owns its pieces
        let mut pieces: Vec<Piece<'_, T>> = p
            .chunks_mut(CHUNK)
            .zip(g.chunks(CHUNK))
            .map(|(pc, gc)| (pc, gc, Vec::with_capacity(st.len())))
            .collect();
        for s in st {
            for (piece, sc) in pieces.iter_mut().zip(s.chunks_mut(CHUNK)) {
                piece.2.push(sc);
            }
        }
        pieces.into_par_iter().for_each(|(pc, gc, sc)| {
            super::simd::dispatch(
                #[inline(always)]
                || kernel(pc, gc, sc, &rule),
            )
        });
    } else {
        super::simd::dispatch(
            #[inline(always)]
            || kernel(p, g, st, &rule),
        );
    }
    Ok(())
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
            first_step: init_buffer,
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
            step: t,
            ..
        } => {
            let f = Rule::adam_factors(lr, beta1, beta2, weight_decay, t);
            let (b1, b2, eps, wd) = (c(beta1), c(beta2), c(eps), c(weight_decay));
            let (ob1, ob2) = (c(f.one_minus_beta1), c(f.one_minus_beta2));
            let step_size = c(f.step_size);
            let inv_sqrt_b2 = c(f.inv_sqrt_bias2);
            let decay = c(f.decay);
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
            lr_decay,
            weight_decay,
            eps,
            maximize,
            step,
        } => {
            let (lr, wd, eps) = (
                c(Rule::adagrad_lr(lr, lr_decay, step)),
                c(weight_decay),
                c(eps),
            );
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
