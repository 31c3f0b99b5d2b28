//! Launchers of `shaders/attention.wgsl`: the fused (flash) attention forward, and its backward
//! as two kernels (dQ per query row, dK and dV per key row) so no invocation needs atomics.

use super::common::{ctx, output, word};
use super::pipeline::{Kernel, Shader};
use super::reduce::LOOP_BUDGET;
use super::GpuStorage;
use crate::cpu::{attention_extents, attention_operand};
use crate::op::AttentionSpec;
use crate::{DType, Error, Layout, Result, Shape};

/// Threads per workgroup: one per output column, so head dims above this are composed.
const WG: usize = 256;

/// Whether the kernels take a problem of these extents on this adapter: head dims within one
/// workgroup, every invocation's loops within the driver's budget, and the eight storage
/// bindings of the dK/dV kernel within the adapter's limit. `Tensor::attention` composes the
/// rest from matmul and softmax.
pub(crate) fn fits(l: usize, s: usize, e: usize, ev: usize) -> bool {
    let Ok(c) = ctx() else { return false };
    let per_tile = e + ev + WG + 16;
    e <= WG
        && ev <= WG
        && l.max(s).div_ceil(WG) * per_tile <= LOOP_BUDGET
        && c.limits.max_storage_buffers_per_shader_stage >= 8
}

fn params(
    op: &'static str,
    rows: usize,
    x: crate::cpu::attention::Extents,
    spec: AttentionSpec,
    offsets: [usize; 5],
) -> Result<Vec<u32>> {
    let mut p = vec![
        word(op, rows)?,
        word(op, x.l)?,
        word(op, x.s)?,
        word(op, x.e)?,
        word(op, x.ev)?,
        spec.causal as u32,
        (spec.scale as f32).to_bits(),
    ];
    for o in offsets {
        p.push(word(op, o)?);
    }
    Ok(p)
}

fn check_f32(op: &'static str, ts: &[&GpuStorage]) -> Result<()> {
    match ts.iter().find(|t| t.dtype != DType::F32) {
        Some(t) => Err(Error::DType {
            op,
            dtype: t.dtype,
            detail: " (the GPU attention kernels are float32)".into(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn forward(
    (q, ql): (&GpuStorage, &Layout),
    (k, kl): (&GpuStorage, &Layout),
    (v, vl): (&GpuStorage, &Layout),
    spec: AttentionSpec,
) -> Result<(GpuStorage, GpuStorage)> {
    let op = "scaled_dot_product_attention";
    let x = attention_extents(op, ql, kl, vl)?;
    check_f32(op, &[q, k, v])?;
    let out = output(op, &Shape::new(vec![x.b, x.l, x.ev]), DType::F32)?;
    let lse = output(op, &Shape::new(vec![x.b, x.l]), DType::F32)?;
    let rows = x.b * x.l;
    if rows == 0 {
        return Ok((out, lse));
    }
    let p = params(
        op,
        rows,
        x,
        spec,
        [ql.offset(), kl.offset(), vl.offset(), 0, 0],
    )?;
    let binds = [
        (1, q.buf.raw()),
        (2, k.buf.raw()),
        (3, v.buf.raw()),
        (4, out.buf.raw()),
        (5, lse.buf.raw()),
    ];
    ctx()?.run(
        op,
        &Kernel::new(Shader::Attention, "attn_fwd", &[]),
        &p,
        &binds,
        rows as u64,
    )?;
    Ok((out, lse))
}

pub(crate) fn backward(
    (q, ql): (&GpuStorage, &Layout),
    (k, kl): (&GpuStorage, &Layout),
    (v, vl): (&GpuStorage, &Layout),
    (g, gl): (&GpuStorage, &Layout),
    (st, sl): (&GpuStorage, &Layout),
    spec: AttentionSpec,
) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
    let op = "scaled_dot_product_attention_backward";
    let x = attention_extents(op, ql, kl, vl)?;
    attention_operand(op, gl, &[x.b, x.l, x.ev])?;
    attention_operand(op, sl, &[2, x.b, x.l])?;
    check_f32(op, &[q, k, v, g, st])?;
    let dq = output(op, &Shape::new(vec![x.b, x.l, x.e]), DType::F32)?;
    let dk = output(op, &Shape::new(vec![x.b, x.s, x.e]), DType::F32)?;
    let dv = output(op, &Shape::new(vec![x.b, x.s, x.ev]), DType::F32)?;
    let offs = [
        ql.offset(),
        kl.offset(),
        vl.offset(),
        gl.offset(),
        sl.offset(),
    ];
    let c = ctx()?;
    let (qrows, krows) = (x.b * x.l, x.b * x.s);
    if qrows > 0 {
        let binds = [
            (1, q.buf.raw()),
            (2, k.buf.raw()),
            (3, v.buf.raw()),
            (4, dq.buf.raw()),
            (6, g.buf.raw()),
            (7, st.buf.raw()),
        ];
        let p = params(op, qrows, x, spec, offs)?;
        c.run(
            op,
            &Kernel::new(Shader::Attention, "attn_dq", &[]),
            &p,
            &binds,
            qrows as u64,
        )?;
    }
    if krows > 0 {
        let binds = [
            (1, q.buf.raw()),
            (2, k.buf.raw()),
            (3, v.buf.raw()),
            (4, dk.buf.raw()),
            (5, dv.buf.raw()),
            (6, g.buf.raw()),
            (7, st.buf.raw()),
        ];
        let p = params(op, krows, x, spec, offs)?;
        c.run(
            op,
            &Kernel::new(Shader::Attention, "attn_dkv", &[]),
            &p,
            &binds,
            krows as u64,
        )?;
    }
    Ok((dq, dk, dv))
}
