//! Launchers of `shaders/index.wgsl`: gather / index_select and scatter (assign, add) /
//! index_add. Index bounds are checked on the device: a bad index is skipped by the kernel and
//! reported through the context's status buffer at the next synchronisation (see
//! `Context::new_check`), so an indexing op costs no readback.

use super::buffer::alloc_words;
use super::common::{
    check_dim, ctx, dt_code, f64_unsupported, fill_words, output, strided_params, with_zero, word,
};
use super::dispatch::groups_for;
use super::elementwise::copy_strided;
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::op::ScatterReduce;
use crate::{DType, Error, Layout, Result, Shape};

fn check_index_dtype(op: &'static str, index: &GpuStorage) -> Result<()> {
    if index.dtype != DType::I64 {
        return Err(Error::DType {
            op,
            dtype: index.dtype,
            detail: " (indices must be int64)".into(),
        });
    }
    Ok(())
}

/// `out[i] = src[off0(i) + index[off1(i)] * ds]` over `shape` (gather and index_select).
#[allow(clippy::too_many_arguments)]
fn gather_words(
    op: &'static str,
    x: &GpuStorage,
    shape: &Shape,
    x_op: (usize, &[usize]),
    idx: (&GpuStorage, usize, &[usize]),
    ds: usize,
    dim: usize,
    size: usize,
) -> Result<GpuStorage> {
    let out = output(op, shape, x.dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let ctx = ctx()?;
    let mut params = strided_params(op, shape.dims(), &[x_op, (idx.1, idx.2)])?;
    params.push(word(op, ds)?);
    params.push(word(op, size)?);
    params.push(ctx.new_check(op, dim, size)?);
    let dt = dt_code(op, x.dtype)?;
    ctx.run(
        op,
        &Kernel::new(Shader::Index, "gather", &[("DT", dt)]),
        &params,
        &[
            (1, x.buf.raw()),
            (2, idx.0.buf.raw()),
            (4, out.buf.raw()),
            (6, ctx.status_buffer()),
        ],
        groups_for(n),
    )?;
    Ok(out)
}

pub(crate) fn gather(
    x: &GpuStorage,
    l: &Layout,
    dim: usize,
    index: &GpuStorage,
    il: &Layout,
) -> Result<GpuStorage> {
    check_dim("gather", dim, l)?;
    check_index_dtype("gather", index)?;
    if il.rank() != l.rank() {
        return Err(Error::ShapeMismatch {
            op: "gather",
            lhs: l.shape().clone(),
            rhs: il.shape().clone(),
            detail: ": index must have the input's rank".into(),
        });
    }
    let size = l.dims()[dim];
    let xs = with_zero(l.strides(), dim);
    gather_words(
        "gather",
        x,
        il.shape(),
        (l.offset(), &xs),
        (index, il.offset(), il.strides()),
        l.strides()[dim],
        dim,
        size,
    )
}

pub(crate) fn index_select(
    x: &GpuStorage,
    l: &Layout,
    dim: usize,
    index: &GpuStorage,
    il: &Layout,
) -> Result<GpuStorage> {
    check_dim("index_select", dim, l)?;
    check_index_dtype("index_select", index)?;
    let (k, istride) = one_d_index("index_select", il)?;
    let size = l.dims()[dim];
    let mut dims = l.dims().to_vec();
    dims[dim] = k;
    let shape = Shape::new(dims);
    let xs = with_zero(l.strides(), dim);
    // the 1-d index viewed over the output: its stride on `dim`, 0 elsewhere
    let is = with_stride_at(l.rank(), dim, istride);
    gather_words(
        "index_select",
        x,
        &shape,
        (l.offset(), &xs),
        (index, il.offset(), &is),
        l.strides()[dim],
        dim,
        size,
    )
}

fn one_d_index(op: &'static str, il: &Layout) -> Result<(usize, usize)> {
    match il.rank() {
        1 => Ok((il.dims()[0], il.strides()[0])),
        0 => Ok((1, 0)),
        _ => Err(Error::InvalidShape {
            op,
            shape: il.shape().clone(),
            msg: "the index must be 1-d".into(),
        }),
    }
}

fn with_stride_at(rank: usize, dim: usize, stride: usize) -> Vec<usize> {
    let mut s = vec![0; rank];
    s[dim] = stride;
    s
}

fn scatter_dtype(
    op: &'static str,
    base: &GpuStorage,
    src: &GpuStorage,
    reduce: ScatterReduce,
) -> Result<u32> {
    if base.dtype != src.dtype {
        return Err(Error::DTypeMismatch {
            op,
            lhs: base.dtype,
            rhs: src.dtype,
        });
    }
    match base.dtype {
        DType::F32 | DType::I64 => dt_code(op, base.dtype),
        DType::Bool if reduce == ScatterReduce::Assign => dt_code(op, base.dtype),
        DType::F64 => Err(f64_unsupported(op)),
        other => Err(Error::DType {
            op,
            dtype: other,
            detail: " (expected a float or int64 tensor)".into(),
        }),
    }
}

/// `out = copy(base); out[off0(i) + index[off1(i)] * ds] (+)= src[off2(i)]` over `shape`.
#[allow(clippy::too_many_arguments)]
fn scatter_words(
    op: &'static str,
    base: &GpuStorage,
    bl: &Layout,
    dt: u32,
    shape: &Shape,
    idx: (&GpuStorage, usize, &[usize]),
    src: (&GpuStorage, usize, &[usize]),
    dim: usize,
    reduce: ScatterReduce,
) -> Result<GpuStorage> {
    let out = copy_strided(base, bl)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let ctx = ctx()?;
    let cs = bl.shape().contiguous_strides();
    let os = with_zero(&cs, dim);
    let size = bl.dims()[dim];
    let mut params = strided_params(
        op,
        shape.dims(),
        &[(0, &os), (idx.1, idx.2), (src.1, src.2)],
    )?;
    params.push(word(op, cs[dim])?);
    params.push(word(op, size)?);
    params.push(ctx.new_check(op, dim, size)?);
    let consts = [("DT", dt)];
    match reduce {
        ScatterReduce::Add => ctx.run(
            op,
            &Kernel::new(Shader::Index, "scatter_add", &consts),
            &params,
            &[
                (2, idx.0.buf.raw()),
                (3, src.0.buf.raw()),
                (5, out.buf.raw()),
                (6, ctx.status_buffer()),
            ],
            groups_for(n),
        )?,
        ScatterReduce::Assign => {
            // who writes each element: the last source in index order, as on the CPU
            let claim = alloc_words(op, bl.numel(), bl.shape(), base.dtype)?;
            fill_words(op, &claim, bl.numel(), (0, 0), false)?;
            ctx.run(
                op,
                &Kernel::new(Shader::Index, "scatter_claim", &consts),
                &params,
                &[
                    (2, idx.0.buf.raw()),
                    (6, ctx.status_buffer()),
                    (7, claim.raw()),
                ],
                groups_for(n),
            )?;
            ctx.run(
                op,
                &Kernel::new(Shader::Index, "scatter_assign", &consts),
                &params,
                &[
                    (2, idx.0.buf.raw()),
                    (3, src.0.buf.raw()),
                    (5, out.buf.raw()),
                    (7, claim.raw()),
                ],
                groups_for(n),
            )?;
        }
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn scatter(
    base: &GpuStorage,
    l: &Layout,
    dim: usize,
    index: &GpuStorage,
    il: &Layout,
    src: &GpuStorage,
    sl: &Layout,
    reduce: ScatterReduce,
) -> Result<GpuStorage> {
    let op = reduce.name();
    check_dim(op, dim, l)?;
    check_index_dtype(op, index)?;
    let dt = scatter_dtype(op, base, src, reduce)?;
    if sl.rank() != il.rank() {
        return Err(Error::shape_mismatch(op, il.shape(), sl.shape()));
    }
    // src is read over the index's shape, as on the CPU
    scatter_words(
        op,
        base,
        l,
        dt,
        il.shape(),
        (index, il.offset(), il.strides()),
        (src, sl.offset(), sl.strides()),
        dim,
        reduce,
    )
}

pub(crate) fn index_add(
    base: &GpuStorage,
    l: &Layout,
    dim: usize,
    index: &GpuStorage,
    il: &Layout,
    src: &GpuStorage,
    sl: &Layout,
) -> Result<GpuStorage> {
    check_dim("index_add", dim, l)?;
    check_index_dtype("index_add", index)?;
    let dt = scatter_dtype("index_add", base, src, ScatterReduce::Add)?;
    let (k, istride) = one_d_index("index_add", il)?;
    if sl.rank() != l.rank() || sl.dims()[dim] != k {
        return Err(Error::shape_mismatch("index_add", l.shape(), sl.shape()));
    }
    let is = with_stride_at(l.rank(), dim, istride);
    scatter_words(
        "index_add",
        base,
        l,
        dt,
        sl.shape(),
        (index, il.offset(), &is),
        (src, sl.offset(), sl.strides()),
        dim,
        ScatterReduce::Add,
    )
}
