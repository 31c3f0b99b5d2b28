//! Fused optimizer updates on the GPU (`shaders/optim.wgsl`): one dispatch per parameter per
//! step updates the parameter and its state buffers in place, with the CPU fused kernel's
//! arithmetic and the factors of `optim::rule`. `optim::update::apply` makes the operands
//! contiguous and unaliased and holds their storage locks.

use super::buffer::{alloc_words, GpuBuffer};
use super::common::word;
use super::context::context;
use super::dispatch::{groups_for, Bind};
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::optim::rule::Rule;
use crate::wgsl::optim_flags as flag;
use crate::{DType, Device, Error, Layout, Result, Shape};
use std::sync::OnceLock;

const OP: &str = "optimizer step";

/// Bound at the state slots a rule does not use (the kernel never touches it). One buffer for
/// the whole process, so that bind groups naming it are cached like any other.
static PLACEHOLDER: OnceLock<GpuBuffer> = OnceLock::new();

fn placeholder() -> Result<&'static wgpu::Buffer> {
    if PLACEHOLDER.get().is_none() {
        let b = alloc_words(OP, 1, &Shape::new(vec![1]), DType::F32)?;
        // a thread that got here first wins; this buffer then goes back to the pool
        let _ = PLACEHOLDER.set(b);
    }
    PLACEHOLDER
        .get()
        .map(GpuBuffer::raw)
        .ok_or_else(|| Error::Gpu(format!("{OP}: the placeholder buffer was not created")))
}

fn f32_bits(v: f64) -> u32 {
    (v as f32).to_bits()
}

/// Updates `param` (viewed by `pl`) and `states` in place from `grad` by `rule`. Every operand
/// must be float32 and contiguous with `pl`'s number of elements; `states` are in the order
/// `Rule` documents.
pub(crate) fn fused_update(
    param: &mut GpuStorage,
    pl: &Layout,
    grad: &GpuStorage,
    gl: &Layout,
    states: &mut [(&mut GpuStorage, &Layout)],
    rule: &Rule,
) -> Result<()> {
    let n = pl.numel();
    let operands = [("parameter", &*param, pl), ("gradient", grad, gl)]
        .into_iter()
        .chain(states.iter().map(|(s, l)| ("state", &**s, *l)));
    for (what, s, l) in operands {
        if s.dtype != DType::F32 {
            return Err(Error::DType {
                op: OP,
                dtype: s.dtype,
                detail: format!(" (the fused GPU update takes a float32 {what})"),
            });
        }
        if !l.is_contiguous() || l.numel() != n {
            return Err(Error::Unsupported { op: OP, device: Device::Gpu, msg: format!("the fused update needs a contiguous {what} of {n} elements, got shape {} strides {:?}", l.shape(), l.strides()) });
        }
    }
    // entry point, flag bits, scalars, which state sits at bindings 3/4/5, bindings used
    let bit = |b: bool, f: u32| if b { f } else { 0 };
    let (entry, flags, scalars, slots, n_binds) = match *rule {
        Rule::Sgd {
            lr,
            momentum,
            dampening,
            nesterov,
            weight_decay,
            maximize,
            first_step: init_buffer,
        } => {
            let has_buf = momentum != 0.0;
            let flags = bit(maximize, flag::MAXIMIZE)
                | bit(has_buf, flag::MOMENTUM)
                | bit(nesterov, flag::VARIANT)
                | bit(init_buffer, flag::FIRST_OR_DECOUPLED);
            (
                "sgd",
                flags,
                vec![
                    f32_bits(lr),
                    f32_bits(momentum),
                    f32_bits(1.0 - dampening),
                    f32_bits(weight_decay),
                ],
                [has_buf.then_some(0), None, None],
                3,
            )
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
            step,
        } => {
            let f = Rule::adam_factors(lr, beta1, beta2, weight_decay, step);
            let flags = bit(maximize, flag::MAXIMIZE)
                | bit(amsgrad, flag::VARIANT)
                | bit(decoupled, flag::FIRST_OR_DECOUPLED);
            let s = vec![
                f32_bits(beta1),
                f32_bits(beta2),
                f32_bits(eps),
                f32_bits(weight_decay),
                f32_bits(f.step_size),
                f32_bits(f.inv_sqrt_bias2),
                f32_bits(f.decay),
                f32_bits(f.one_minus_beta1),
                f32_bits(f.one_minus_beta2),
            ];
            (
                "adam",
                flags,
                s,
                [Some(0), Some(1), amsgrad.then_some(2)],
                5,
            )
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
            let has_mom = momentum > 0.0;
            let flags = bit(maximize, flag::MAXIMIZE)
                | bit(has_mom, flag::MOMENTUM)
                | bit(centered, flag::VARIANT);
            let s = vec![
                f32_bits(lr),
                f32_bits(alpha),
                f32_bits(eps),
                f32_bits(weight_decay),
                f32_bits(momentum),
                f32_bits(1.0 - alpha),
            ];
            (
                "rmsprop",
                flags,
                s,
                [
                    Some(0),
                    has_mom.then_some(1),
                    centered.then_some(1 + has_mom as usize),
                ],
                5,
            )
        }
        Rule::Adagrad {
            lr,
            lr_decay,
            weight_decay,
            eps,
            maximize,
            step,
        } => (
            "adagrad",
            bit(maximize, flag::MAXIMIZE),
            vec![
                f32_bits(Rule::adagrad_lr(lr, lr_decay, step)),
                f32_bits(weight_decay),
                f32_bits(eps),
            ],
            [Some(0), None, None],
            3,
        ),
    };
    let wanted = slots.iter().flatten().count();
    if states.len() != wanted {
        return Err(Error::invalid(
            OP,
            format!(
                "expected {wanted} state tensors for {rule:?}, got {}",
                states.len()
            ),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    let mut params = vec![
        word(OP, n)?,
        flags,
        word(OP, gl.offset())?,
        word(OP, pl.offset())?,
    ];
    for slot in slots {
        params.push(match slot {
            Some(k) => word(OP, states[k].1.offset())?,
            None => 0,
        });
    }
    params.extend(scalars);
    let spare = placeholder()?;
    let mut binds: Vec<Bind<'_>> = vec![(1, grad.buf.raw()), (2, param.buf.raw())];
    for (b, slot) in (3u32..).zip(slots).take(n_binds - 2) {
        binds.push((b, slot.map_or(spare, |k| states[k].0.buf.raw())));
    }
    context()?.run(
        OP,
        &Kernel::new(Shader::Optim, entry, &[]),
        &params,
        &binds,
        groups_for(n),
    )
}
