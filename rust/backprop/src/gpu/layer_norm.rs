//! Launchers of `shaders/layer_norm.wgsl`: layer normalisation's forward (keeping the rows'
//! mean and `rstd`) and backward, one workgroup per row.

use super::common::{ctx, output, word};
use super::pipeline::{Kernel, Shader};
use super::reduce::LOOP_BUDGET;
use super::GpuStorage;
use crate::{DType, Error, Layout, Result, Shape};

/// Whether the kernels take rows of `len`: three strided passes of `len / 256` iterations each
/// stay within the loop budget. `Tensor::layer_norm` composes longer rows.
pub(crate) fn fits(len: usize) -> bool {
    len > 0 && 3 * len.div_ceil(256) <= LOOP_BUDGET
}

/// The row count of the contiguous `l` cut into rows of `len`, and checks the operand.
fn row_count(op: &'static str, s: &GpuStorage, l: &Layout, len: usize) -> Result<usize> {
    if s.dtype != DType::F32 {
        return Err(Error::DType {
            op,
            dtype: s.dtype,
            detail: " (the GPU layer-norm kernels are float32)".into(),
        });
    }
    if !l.is_contiguous() || !fits(len) || l.numel() % len != 0 {
        return Err(Error::InvalidShape {
            op,
            shape: l.shape().clone(),
            msg: format!(
                "the layer-norm kernels take a contiguous input of whole rows of {len} elements (at most {})",
                LOOP_BUDGET / 3 * 256
            ),
        });
    }
    Ok(l.numel() / len)
}

pub(crate) fn forward(
    (x, xl): (&GpuStorage, &Layout),
    len: usize,
    eps: f64,
) -> Result<(GpuStorage, GpuStorage)> {
    let op = "layer_norm";
    let rows = row_count(op, x, xl, len)?;
    let out = output(op, xl.shape(), DType::F32)?;
    let stats = output(op, &Shape::new(vec![2, rows]), DType::F32)?;
    let params = [
        word(op, rows)?,
        word(op, len)?,
        (eps as f32).to_bits(),
        word(op, xl.offset())?,
        0,
        0,
    ];
    let binds = [(1, x.buf.raw()), (4, out.buf.raw()), (5, stats.buf.raw())];
    ctx()?.run(
        op,
        &Kernel::new(Shader::LayerNorm, "layer_norm", &[]),
        &params,
        &binds,
        rows as u64,
    )?;
    Ok((out, stats))
}

pub(crate) fn backward(
    (g, gl): (&GpuStorage, &Layout),
    (x, xl): (&GpuStorage, &Layout),
    (st, sl): (&GpuStorage, &Layout),
    len: usize,
) -> Result<GpuStorage> {
    let op = "layer_norm_backward";
    if gl.shape() != xl.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: gl.shape().clone(),
            rhs: xl.shape().clone(),
            detail: ": the gradient and the input must have the same shape".into(),
        });
    }
    let rows = row_count(op, x, xl, len)?;
    row_count(op, g, gl, len)?;
    if st.dtype != DType::F32 || !sl.is_contiguous() || sl.numel() != 2 * rows {
        return Err(Error::InvalidShape {
            op,
            shape: sl.shape().clone(),
            msg: format!(
                "expected contiguous float32 statistics of {rows} rows, shaped [2, {rows}]"
            ),
        });
    }
    let out = output(op, xl.shape(), DType::F32)?;
    let params = [
        word(op, rows)?,
        word(op, len)?,
        0,
        word(op, xl.offset())?,
        word(op, gl.offset())?,
        word(op, sl.offset())?,
    ];
    let binds = [
        (1, x.buf.raw()),
        (2, g.buf.raw()),
        (3, st.buf.raw()),
        (4, out.buf.raw()),
    ];
    ctx()?.run(
        op,
        &Kernel::new(Shader::LayerNorm, "layer_norm_backward", &[]),
        &params,
        &binds,
        rows as u64,
    )?;
    Ok(out)
}
