//! Launchers of `shaders/reduce.wgsl` (sum/max/min over dims, argmax/argmin along a dim) and of
//! `shaders/softmax.wgsl`.

use super::buffer::{alloc_words, words_per, GpuBuffer};
use super::common::{coalesce, ctx, dt_code, fill, output, word, words};
use super::dispatch::groups_for;
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::op::{ArgReduceOp, BinaryOp, ReduceOp, UnaryOp};
use crate::{DType, Error, Layout, Result, Shape};

/// Elements per workgroup along a reduction in one pass (16 per thread).
const REDUCE_CHUNK: usize = 4096;
/// The most loop iterations (inner loops counted) the host lets one invocation run. Some
/// conformant drivers cut an invocation's loops off after a fixed total (llvmpipe: 65535).
pub(crate) const LOOP_BUDGET: usize = 32768;

pub(crate) fn reduce(
    x: &GpuStorage,
    l: &Layout,
    op: ReduceOp,
    dims: &[usize],
) -> Result<GpuStorage> {
    let name = op.name();
    let dt = dt_code(name, x.dtype)?;
    let rank = l.rank();
    if let Some(&bad) = dims.iter().find(|&&d| d >= rank) {
        return Err(Error::DimOutOfRange {
            op: name,
            dim: bad as i64,
            rank,
        });
    }
    let out_shape = Shape::new(
        (0..rank)
            .map(|d| if dims.contains(&d) { 1 } else { l.dims()[d] })
            .collect(),
    );
    let out = output(name, &out_shape, x.dtype)?;
    let n_out = out_shape.numel();
    if n_out == 0 {
        return Ok(out);
    }
    let kept: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
    let pick = |ds: &[usize], v: &[usize]| -> Vec<usize> { ds.iter().map(|&d| v[d]).collect() };
    let (kd, ks) = coalesce(&pick(&kept, l.dims()), &[&pick(&kept, l.strides())]);
    let (rd, rs) = coalesce(&pick(dims, l.dims()), &[&pick(dims, l.strides())]);
    let red_n: usize = rd.iter().product();
    if red_n == 0 {
        // the sum of nothing is 0 (max/min of nothing is rejected before reaching a backend)
        fill(name, &out.buf, n_out, x.dtype, (0, 0))?;
        return Ok(out);
    }
    let ctx = ctx()?;
    let consts = [("OP", op as u32), ("DT", dt)];
    // (buffer, kept dims, kept strides, reduced dims, reduced strides, offset) of the current pass
    let mut partial: Option<GpuBuffer> = None;
    let (mut kd, mut ks, mut rd, mut rs, mut offset) =
        (kd, ks[0].clone(), rd, rs[0].clone(), l.offset());
    loop {
        let red_n: usize = rd.iter().product();
        let src = partial.as_ref().map(|b| b.raw()).unwrap_or(x.buf.raw());
        // one thread per output walks the whole line (and its offset loops per element)
        let per_thread = red_n * (1 + kd.len() + rd.len());
        let thin = per_thread <= LOOP_BUDGET && (red_n <= 16 || (n_out >= 8192 && red_n <= 2048));
        let n_chunks = if thin {
            1
        } else {
            red_n.div_ceil(REDUCE_CHUNK)
        };
        let mut params = vec![
            word(name, n_out)?,
            word(name, red_n)?,
            word(name, REDUCE_CHUNK)?,
            word(name, n_chunks)?,
            word(name, kd.len())?,
            word(name, rd.len())?,
            word(name, offset)?,
        ];
        params.extend(words(name, &kd)?);
        params.extend(words(name, &ks)?);
        params.extend(words(name, &rd)?);
        params.extend(words(name, &rs)?);
        if thin {
            ctx.run(
                name,
                &Kernel::new(Shader::Reduce, "reduce_thin", &consts),
                &params,
                &[(1, src), (4, out.buf.raw())],
                groups_for(n_out),
            )?;
            return Ok(out);
        }
        if n_chunks == 1 {
            ctx.run(
                name,
                &Kernel::new(Shader::Reduce, "reduce", &consts),
                &params,
                &[(1, src), (4, out.buf.raw())],
                n_out as u64,
            )?;
            return Ok(out);
        }
        // several workgroups per output: write [n_out, n_chunks] partials and reduce those next
        let next = alloc_words(
            name,
            n_out * n_chunks * words_per(x.dtype),
            &out_shape,
            x.dtype,
        )?;
        ctx.run(
            name,
            &Kernel::new(Shader::Reduce, "reduce", &consts),
            &params,
            &[(1, src), (4, next.raw())],
            (n_out * n_chunks) as u64,
        )?;
        partial = Some(next);
        (kd, ks, rd, rs, offset) = (vec![n_out], vec![n_chunks], vec![n_chunks], vec![1], 0);
    }
}

pub(crate) fn arg_reduce(
    x: &GpuStorage,
    l: &Layout,
    op: ArgReduceOp,
    dim: usize,
) -> Result<GpuStorage> {
    let name = op.name();
    let dt = dt_code(name, x.dtype)?;
    if dim >= l.rank() {
        return Err(Error::DimOutOfRange {
            op: name,
            dim: dim as i64,
            rank: l.rank(),
        });
    }
    let mut out_dims = l.dims().to_vec();
    let len = out_dims[dim];
    out_dims[dim] = 1;
    let out_shape = Shape::new(out_dims);
    let out = output(name, &out_shape, DType::I64)?;
    let n_out = out_shape.numel();
    if n_out == 0 {
        return Ok(out);
    }
    if len == 0 {
        fill(name, &out.buf, n_out, DType::I64, (0, 0))?;
        return Ok(out);
    }
    let kept: Vec<usize> = (0..l.rank()).filter(|&d| d != dim).collect();
    let (kd, ks) = coalesce(
        &kept.iter().map(|&d| l.dims()[d]).collect::<Vec<_>>(),
        &[&kept.iter().map(|&d| l.strides()[d]).collect::<Vec<_>>()],
    );
    let thin = len <= 64 || (n_out >= 4096 && len <= 4096);
    let n_chunks = if thin { 1 } else { len.div_ceil(REDUCE_CHUNK) };
    let mut params = vec![
        word(name, n_out)?,
        word(name, len)?,
        word(name, l.strides()[dim])?,
        word(name, REDUCE_CHUNK)?,
        word(name, n_chunks)?,
        word(name, kd.len())?,
        word(name, l.offset())?,
    ];
    params.extend(words(name, &kd)?);
    params.extend(words(name, &ks[0])?);
    let consts = [("OP", op as u32), ("DT", dt)];
    let ctx = ctx()?;
    if thin {
        ctx.run(
            name,
            &Kernel::new(Shader::Reduce, "arg_reduce_thin", &consts),
            &params,
            &[(1, x.buf.raw()), (4, out.buf.raw())],
            groups_for(n_out),
        )?;
    } else if n_chunks == 1 {
        ctx.run(
            name,
            &Kernel::new(Shader::Reduce, "arg_reduce", &consts),
            &params,
            &[(1, x.buf.raw()), (4, out.buf.raw())],
            n_out as u64,
        )?;
    } else {
        // each chunk's winner (index and value), then the winner among them
        let parts = n_out * n_chunks;
        let idx = alloc_words(name, parts, &out_shape, DType::I64)?;
        let val = alloc_words(name, parts * words_per(x.dtype), &out_shape, x.dtype)?;
        ctx.run(
            name,
            &Kernel::new(Shader::Reduce, "arg_reduce_partial", &consts),
            &params,
            &[(1, x.buf.raw()), (4, idx.raw()), (5, val.raw())],
            parts as u64,
        )?;
        let combine = [word(name, n_out)?, word(name, n_chunks)?];
        ctx.run(
            name,
            &Kernel::new(Shader::Reduce, "arg_reduce_combine", &consts),
            &combine,
            &[(1, val.raw()), (2, idx.raw()), (4, out.buf.raw())],
            n_out as u64,
        )?;
    }
    Ok(out)
}

/// The dims other than `dim` (which enumerate the rows of a softmax kernel) with each operand's
/// strides along them, coalesced where they are contiguous in every operand.
fn row_dims(l: &Layout, dim: usize, strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let others: Vec<usize> = (0..l.rank()).filter(|&d| d != dim).collect();
    let od: Vec<usize> = others.iter().map(|&d| l.dims()[d]).collect();
    let per: Vec<Vec<usize>> = strides
        .iter()
        .map(|st| others.iter().map(|&d| st[d]).collect())
        .collect();
    let refs: Vec<&[usize]> = per.iter().map(|v| v.as_slice()).collect();
    coalesce(&od, &refs)
}

/// Rows up to this long take the one-workgroup-per-row softmax kernel (three strided passes of
/// len / 256 iterations each stay within the loop budget); longer rows are composed below.
const SOFTMAX_MAX_ROW: usize = LOOP_BUDGET / 3 * 256;

pub(crate) fn softmax(x: &GpuStorage, l: &Layout, dim: usize, log: bool) -> Result<GpuStorage> {
    let name = if log { "log_softmax" } else { "softmax" };
    if x.dtype != DType::F32 {
        return Err(Error::DType {
            op: name,
            dtype: x.dtype,
            detail: " (expected a float tensor)".into(),
        });
    }
    if dim >= l.rank() {
        return Err(Error::DimOutOfRange {
            op: name,
            dim: dim as i64,
            rank: l.rank(),
        });
    }
    let numel = l.numel();
    if numel == 0 {
        return output(name, l.shape(), x.dtype);
    }
    let len = l.dims()[dim];
    if len > SOFTMAX_MAX_ROW {
        return softmax_long(x, l, dim, log);
    }
    let out = output(name, l.shape(), x.dtype)?;
    let rows = numel / len;
    let cs = l.shape().contiguous_strides();
    let (cd, cst) = row_dims(l, dim, &[l.strides(), &cs]);
    let mut params = vec![
        word(name, rows)?,
        word(name, len)?,
        word(name, l.strides()[dim])?,
        word(name, cs[dim])?,
        word(name, cd.len())?,
        word(name, l.offset())?,
    ];
    params.extend(words(name, &cd)?);
    params.extend(words(name, &cst[0])?);
    params.extend(words(name, &cst[1])?);
    let consts = [("LOG", log as u32)];
    let binds = [(1, x.buf.raw()), (4, out.buf.raw())];
    let thin_loops = 3 * len * (1 + cd.len());
    if (len <= 128 || (rows >= 16384 && len <= 1024)) && thin_loops <= LOOP_BUDGET {
        ctx()?.run(
            name,
            &Kernel::new(Shader::Softmax, "softmax_thin", &consts),
            &params,
            &binds,
            groups_for(rows),
        )?;
    } else {
        ctx()?.run(
            name,
            &Kernel::new(Shader::Softmax, "softmax", &consts),
            &params,
            &binds,
            rows as u64,
        )?;
    }
    Ok(out)
}

/// Softmax of rows too long for one workgroup's loop budget, from the multi-pass reduce and the
/// elementwise kernels: `m = max(x)`, `s = sum(exp(x - m))`, then `exp(x - m) / s` (or
/// `x - m - log(s)`), the same arithmetic as the one-pass kernel up to summation order.
fn softmax_long(x: &GpuStorage, l: &Layout, dim: usize, log: bool) -> Result<GpuStorage> {
    use super::elementwise::{binary, unary};
    let m = reduce(x, l, ReduceOp::Max, &[dim])?;
    let mut mdims = l.dims().to_vec();
    mdims[dim] = 1;
    let ml = Layout::contiguous(Shape::new(mdims));
    let mb = ml.broadcast_as(l.shape())?;
    let shifted = binary(x, l, &m, &mb, BinaryOp::Sub)?;
    let cl = Layout::contiguous(l.shape().clone());
    let e = unary(&shifted, &cl, UnaryOp::Exp)?;
    let s = reduce(&e, &cl, ReduceOp::Sum, &[dim])?;
    let sb = ml.broadcast_as(l.shape())?;
    if log {
        let ls = unary(&s, &ml, UnaryOp::Log)?;
        binary(&shifted, &cl, &ls, &sb, BinaryOp::Sub)
    } else {
        binary(&e, &cl, &s, &sb, BinaryOp::Div)
    }
}

/// Softmax's / log-softmax's gradient along `dim` from the upstream gradient `g` and the
/// forward's output `y` (see `softmax.wgsl`), into a C-contiguous output.
pub(crate) fn softmax_backward(
    g: &GpuStorage,
    gl: &Layout,
    y: &GpuStorage,
    yl: &Layout,
    dim: usize,
    log: bool,
) -> Result<GpuStorage> {
    let name = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    if g.dtype != DType::F32 || y.dtype != DType::F32 {
        return Err(Error::DTypeMismatch {
            op: name,
            lhs: g.dtype,
            rhs: y.dtype,
        });
    }
    if dim >= gl.rank() || gl.shape() != yl.shape() {
        return Err(Error::ShapeMismatch {
            op: name,
            lhs: gl.shape().clone(),
            rhs: yl.shape().clone(),
            detail: format!(" (softmax dim {dim})"),
        });
    }
    let numel = gl.numel();
    if numel == 0 {
        return output(name, gl.shape(), g.dtype);
    }
    let len = gl.dims()[dim];
    if len > SOFTMAX_MAX_ROW {
        return softmax_backward_long(g, gl, y, yl, dim, log);
    }
    let out = output(name, gl.shape(), g.dtype)?;
    let rows = numel / len;
    let cs = gl.shape().contiguous_strides();
    let (cd, cst) = row_dims(gl, dim, &[gl.strides(), yl.strides(), &cs]);
    let mut params = vec![
        word(name, rows)?,
        word(name, len)?,
        word(name, gl.strides()[dim])?,
        word(name, yl.strides()[dim])?,
        word(name, cs[dim])?,
        word(name, cd.len())?,
        word(name, gl.offset())?,
        word(name, yl.offset())?,
    ];
    params.extend(words(name, &cd)?);
    for s in &cst {
        params.extend(words(name, s)?);
    }
    let consts = [("LOG", log as u32)];
    let binds = [(1, g.buf.raw()), (2, y.buf.raw()), (4, out.buf.raw())];
    let thin_loops = 2 * len * (1 + cd.len());
    let (entry, groups) =
        if (len <= 128 || (rows >= 16384 && len <= 1024)) && thin_loops <= LOOP_BUDGET {
            ("softmax_backward_thin", groups_for(rows))
        } else {
            ("softmax_backward", rows as u64)
        };
    ctx()?.run(
        name,
        &Kernel::new(Shader::Softmax, entry, &consts),
        &params,
        &binds,
        groups,
    )?;
    Ok(out)
}

/// The gradient for rows too long for one workgroup's loop budget, from the reduce and
/// elementwise kernels (the same arithmetic up to summation order).
fn softmax_backward_long(
    g: &GpuStorage,
    gl: &Layout,
    y: &GpuStorage,
    yl: &Layout,
    dim: usize,
    log: bool,
) -> Result<GpuStorage> {
    use super::elementwise::{binary, unary};
    let mut sdims = gl.dims().to_vec();
    sdims[dim] = 1;
    let sb = Layout::contiguous(Shape::new(sdims)).broadcast_as(gl.shape())?;
    let cl = Layout::contiguous(gl.shape().clone());
    if log {
        let s = reduce(g, gl, ReduceOp::Sum, &[dim])?;
        let e = unary(y, yl, UnaryOp::Exp)?;
        let t = binary(&e, &cl, &s, &sb, BinaryOp::Mul)?;
        binary(g, gl, &t, &cl, BinaryOp::Sub)
    } else {
        let gy = binary(g, gl, y, yl, BinaryOp::Mul)?;
        let dot = reduce(&gy, &cl, ReduceOp::Sum, &[dim])?;
        let t = binary(g, gl, &dot, &sb, BinaryOp::Sub)?;
        binary(y, yl, &t, &cl, BinaryOp::Mul)
    }
}
