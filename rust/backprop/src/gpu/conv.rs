//! Launchers of `shaders/conv.wgsl`: unfold (im2col) and fold (col2im), the primitives
//! convolution and pooling are composed from. Fold sums over the kernel positions in a loop;
//! large kernels are split over dispatches that accumulate, to bound the loop.

use super::common::{ctx, dt_code, output, value_words, words};
use super::dispatch::groups_for;
use super::pipeline::{Kernel, Shader};
use super::reduce::LOOP_BUDGET;
use super::GpuStorage;
use crate::op::Window;
use crate::{DType, Error, Layout, Result, Scalar, Shape};

fn window_params(
    op: &'static str,
    n_out: usize,
    img: [usize; 4],
    w: &Window,
    out_hw: (usize, usize),
    offset: usize,
    strides: &[usize],
) -> Result<Vec<u32>> {
    let mut v = vec![
        n_out,
        img[0],
        img[1],
        img[2],
        img[3],
        w.kernel.0,
        w.kernel.1,
        w.stride.0,
        w.stride.1,
        w.padding.0,
        w.padding.1,
        w.dilation.0,
        w.dilation.1,
        out_hw.0,
        out_hw.1,
        offset,
    ];
    v.extend_from_slice(strides);
    v.resize(20, 0);
    words(op, &v)
}

fn numeric(op: &'static str, dtype: DType) -> Result<u32> {
    if dtype == DType::Bool {
        return Err(Error::DType {
            op,
            dtype,
            detail: " (expected a numeric tensor)".into(),
        });
    }
    dt_code(op, dtype)
}

pub(crate) fn unfold(x: &GpuStorage, l: &Layout, w: &Window, pad_value: f64) -> Result<GpuStorage> {
    let d = l.dims();
    let (oh, ow) = w.out_hw(d[2], d[3]).unwrap_or((0, 0));
    let shape = Shape::new(vec![d[0], d[1] * w.kernel.0 * w.kernel.1, oh * ow]);
    let dt = dt_code("unfold", x.dtype)?;
    let out = output("unfold", &shape, x.dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let mut params = window_params(
        "unfold",
        n,
        [d[0], d[1], d[2], d[3]],
        w,
        (oh, ow),
        l.offset(),
        l.strides(),
    )?;
    let pad = value_words("unfold", x.dtype, Scalar::Float(pad_value))?;
    params.extend([pad.0, pad.1]);
    ctx()?.run(
        "unfold",
        &Kernel::new(Shader::Conv, "unfold", &[("DT", dt)]),
        &params,
        &[(1, x.buf.raw()), (4, out.buf.raw())],
        groups_for(n),
    )?;
    Ok(out)
}

pub(crate) fn fold(
    x: &GpuStorage,
    l: &Layout,
    w: &Window,
    out_hw: (usize, usize),
) -> Result<GpuStorage> {
    let d = l.dims();
    let (kh, kw) = w.kernel;
    let c = d[1] / (kh * kw).max(1);
    let (oh, ow) = w.out_hw(out_hw.0, out_hw.1).unwrap_or((0, 0));
    let shape = Shape::new(vec![d[0], c, out_hw.0, out_hw.1]);
    let dt = numeric("fold", x.dtype)?;
    let out = output("fold", &shape, x.dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let base = window_params(
        "fold",
        n,
        [d[0], c, out_hw.0, out_hw.1],
        w,
        (oh, ow),
        l.offset(),
        l.strides(),
    )?;
    // kernel positions per dispatch: whole rows of the kernel while they fit the loop budget
    let cols = kw.clamp(1, LOOP_BUDGET);
    let rows = (LOOP_BUDGET / cols).max(1);
    let ctx = ctx()?;
    let mut first = true;
    for ki0 in (0..kh).step_by(rows) {
        for kj0 in (0..kw).step_by(cols) {
            let mut params = base.clone();
            params.extend(words(
                "fold",
                &[
                    ki0,
                    (ki0 + rows).min(kh),
                    kj0,
                    (kj0 + cols).min(kw),
                    (!first) as usize,
                ],
            )?);
            first = false;
            ctx.run(
                "fold",
                &Kernel::new(Shader::Conv, "fold", &[("DT", dt)]),
                &params,
                &[(1, x.buf.raw()), (4, out.buf.raw())],
                groups_for(n),
            )?;
        }
    }
    Ok(out)
}

/// `BackendStorage::pool_argmax`: one invocation per window (`shaders/conv.wgsl`).
pub(crate) fn pool_argmax(
    x: &GpuStorage,
    l: &Layout,
    w: &Window,
    out_hw: (usize, usize),
) -> Result<GpuStorage> {
    let d = l.dims();
    let shape = Shape::new(vec![d[0], d[1], out_hw.0, out_hw.1]);
    if !matches!(x.dtype, DType::F32 | DType::I64) {
        return Err(Error::DType {
            op: "max_pool2d",
            dtype: x.dtype,
            detail: " (the GPU kernel takes float32 or int64)".into(),
        });
    }
    if w.kernel.0.saturating_mul(w.kernel.1) > LOOP_BUDGET {
        return Err(Error::Unsupported {
            op: "max_pool2d",
            device: crate::Device::Gpu,
            msg: format!(
                "a {}x{} window exceeds the GPU kernels' loop bound of {LOOP_BUDGET} positions",
                w.kernel.0, w.kernel.1
            ),
        });
    }
    let dt = dt_code("max_pool2d", x.dtype)?;
    let out = output("max_pool2d", &shape, DType::I64)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let params = window_params(
        "max_pool2d",
        n,
        [d[0], d[1], d[2], d[3]],
        w,
        out_hw,
        l.offset(),
        l.strides(),
    )?;
    ctx()?.run(
        "max_pool2d",
        &Kernel::new(Shader::Conv, "pool_argmax", &[("DT", dt)]),
        &params,
        &[(1, x.buf.raw()), (4, out.buf.raw())],
        groups_for(n),
    )?;
    Ok(out)
}
