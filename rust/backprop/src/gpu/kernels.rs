//! Kernel launches: for each primitive, the parameter block its WGSL kernel reads (see the header
//! of each file in `shaders/` for the word layout), the buffers it binds and the grid it runs on.
//!
//! Shapes are coalesced before they reach a kernel (adjacent dims merged when every operand's
//! strides allow it, unit dims dropped), exactly as the CPU's `StridedPlan` does, so the common
//! contiguous case costs one division per element in the shader.

use super::buffer::{alloc_words, GpuBuffer};
use super::context::{context, Context};
use super::dispatch::{groups_for, Bind};
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::op::{ArgReduceOp, BinaryOp, CmpOp, ReduceOp, ScatterReduce, UnaryOp, Window};
use crate::{DType, Device, Error, Layout, Result, Scalar, Shape};

/// Elements per workgroup along a reduction in one pass (16 per thread).
const REDUCE_CHUNK: usize = 4096;
const NONE: u32 = u32::MAX;

/// The device's word code for a dtype (the `DT` override of every shader).
pub(crate) fn dt_code(op: &'static str, dtype: DType) -> Result<u32> {
    match dtype {
        DType::F32 => Ok(0),
        DType::I64 => Ok(1),
        DType::Bool => Ok(2),
        DType::F64 => Err(f64_unsupported(op)),
    }
}

pub(crate) fn f64_unsupported(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: "dtype float64 is not available on the GPU (WGSL has no f64); convert to float32 first, e.g. t.float() or dtype=float32".into(),
    }
}

pub(crate) fn word(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: format!("size or stride {v} does not fit the kernels' 32-bit indexing"),
    })
}

fn unary_code(op: UnaryOp) -> u32 {
    match op {
        UnaryOp::Neg => 0,
        UnaryOp::Abs => 1,
        UnaryOp::Sign => 2,
        UnaryOp::Exp => 3,
        UnaryOp::Log => 4,
        UnaryOp::Sqrt => 5,
        UnaryOp::Sin => 6,
        UnaryOp::Cos => 7,
        UnaryOp::Tanh => 8,
        UnaryOp::Sigmoid => 9,
        UnaryOp::Relu => 10,
        UnaryOp::Gelu => 11,
        UnaryOp::Erf => 12,
        UnaryOp::Softplus => 13,
    }
}

fn binary_code(op: BinaryOp) -> u32 {
    match op {
        BinaryOp::Add => 0,
        BinaryOp::Sub => 1,
        BinaryOp::Mul => 2,
        BinaryOp::Div => 3,
        BinaryOp::Pow => 4,
        BinaryOp::Maximum => 5,
        BinaryOp::Minimum => 6,
        BinaryOp::BitAnd => 7,
        BinaryOp::BitOr => 8,
        BinaryOp::BitXor => 9,
    }
}

fn cmp_code(op: CmpOp) -> u32 {
    match op {
        CmpOp::Eq => 0,
        CmpOp::Ne => 1,
        CmpOp::Lt => 2,
        CmpOp::Le => 3,
        CmpOp::Gt => 4,
        CmpOp::Ge => 5,
    }
}

fn reduce_code(op: ReduceOp) -> u32 {
    match op {
        ReduceOp::Sum => 0,
        ReduceOp::Max => 1,
        ReduceOp::Min => 2,
    }
}

/// Merges adjacent dims that every operand walks contiguously and drops unit dims.
pub(crate) fn coalesce(dims: &[usize], strides: &[&[usize]]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut cd: Vec<usize> = Vec::with_capacity(dims.len());
    let mut cs: Vec<Vec<usize>> = vec![Vec::with_capacity(dims.len()); strides.len()];
    for (i, &d) in dims.iter().enumerate() {
        if d == 1 {
            continue;
        }
        if let Some(last) = cd.len().checked_sub(1) {
            if strides.iter().zip(&cs).all(|(s, c)| c[last] == s[i] * d) {
                cd[last] *= d;
                for (s, c) in strides.iter().zip(cs.iter_mut()) {
                    c[last] = s[i];
                }
                continue;
            }
        }
        cd.push(d);
        for (s, c) in strides.iter().zip(cs.iter_mut()) {
            c.push(s[i]);
        }
    }
    (cd, cs)
}

/// The strided-operand block: `[n, r, dims[r], (offset, strides[r]) per operand]`.
fn strided_params(
    op: &'static str,
    dims: &[usize],
    operands: &[(usize, &[usize])],
) -> Result<Vec<u32>> {
    let strides: Vec<&[usize]> = operands.iter().map(|o| o.1).collect();
    let (cd, cs) = coalesce(dims, &strides);
    let n: usize = dims.iter().product();
    let mut p = Vec::with_capacity(2 + cd.len() * (1 + operands.len()) + operands.len());
    p.push(word(op, n)?);
    p.push(word(op, cd.len())?);
    for &d in &cd {
        p.push(word(op, d)?);
    }
    for (k, &(offset, _)) in operands.iter().enumerate() {
        p.push(word(op, offset)?);
        for &s in &cs[k] {
            p.push(word(op, s)?);
        }
    }
    Ok(p)
}

fn words(op: &'static str, vs: &[usize]) -> Result<Vec<u32>> {
    vs.iter().map(|&v| word(op, v)).collect()
}

fn with_zero(strides: &[usize], dim: usize) -> Vec<usize> {
    let mut s = strides.to_vec();
    s[dim] = 0;
    s
}

/// A fresh output storage.
fn output(op: &'static str, shape: &Shape, dtype: DType) -> Result<GpuStorage> {
    dt_code(op, dtype)?;
    Ok(GpuStorage {
        buf: super::buffer::alloc(op, shape, dtype)?,
        len: shape.numel(),
        dtype,
    })
}

fn ctx() -> Result<&'static Context> {
    context()
}

/// One thread per output element of the elementwise family: inputs at bindings 1.., out at 4.
fn elementwise(
    op: &'static str,
    entry: &'static str,
    constants: &[(&'static str, u32)],
    shape: &Shape,
    out_dtype: DType,
    inputs: &[(&GpuStorage, &Layout)],
) -> Result<GpuStorage> {
    let out = output(op, shape, out_dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let operands: Vec<(usize, &[usize])> = inputs
        .iter()
        .map(|(_, l)| (l.offset(), l.strides()))
        .collect();
    let params = strided_params(op, shape.dims(), &operands)?;
    let mut binds: Vec<Bind<'_>> = inputs
        .iter()
        .enumerate()
        .map(|(i, (s, _))| (i as u32 + 1, s.buf.raw()))
        .collect();
    binds.push((4, out.buf.raw()));
    ctx()?.run(
        op,
        &Kernel::new(Shader::Elementwise, entry, constants),
        &params,
        &binds,
        groups_for(n),
    )?;
    Ok(out)
}

/// Sets the first `n` words of `buf` to `value`.
fn fill(op: &'static str, buf: &GpuBuffer, n: usize, value: u32) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    ctx()?.run(
        op,
        &Kernel::new(Shader::Elementwise, "fill", &[]),
        &[word(op, n)?, value],
        &[(4, buf.raw())],
        groups_for(n),
    )
}

// ---------------------------------------------------------------- elementwise

pub(crate) fn unary(x: &GpuStorage, l: &Layout, op: UnaryOp) -> Result<GpuStorage> {
    let name = op.name();
    match x.dtype {
        DType::F32 => {}
        DType::I64 if op.keeps_integers() => {}
        other => {
            return Err(Error::DType {
                op: name,
                dtype: other,
                detail: " (expected a float tensor)".into(),
            })
        }
    }
    let dt = dt_code(name, x.dtype)?;
    elementwise(
        name,
        "unary",
        &[("OP", unary_code(op)), ("DT", dt)],
        l.shape(),
        x.dtype,
        &[(x, l)],
    )
}

pub(crate) fn binary(
    a: &GpuStorage,
    al: &Layout,
    b: &GpuStorage,
    bl: &Layout,
    op: BinaryOp,
) -> Result<GpuStorage> {
    let name = op.name();
    if a.dtype != b.dtype {
        return Err(Error::DTypeMismatch {
            op: name,
            lhs: a.dtype,
            rhs: b.dtype,
        });
    }
    check_same_shape(name, al, bl)?;
    let dt = dt_code(name, a.dtype)?;
    elementwise(
        name,
        "binary",
        &[("OP", binary_code(op)), ("DT", dt)],
        al.shape(),
        a.dtype,
        &[(a, al), (b, bl)],
    )
}

pub(crate) fn compare(
    a: &GpuStorage,
    al: &Layout,
    b: &GpuStorage,
    bl: &Layout,
    op: CmpOp,
) -> Result<GpuStorage> {
    let name = op.name();
    if a.dtype != b.dtype {
        return Err(Error::DTypeMismatch {
            op: name,
            lhs: a.dtype,
            rhs: b.dtype,
        });
    }
    check_same_shape(name, al, bl)?;
    let dt = dt_code(name, a.dtype)?;
    elementwise(
        name,
        "compare",
        &[("OP", cmp_code(op)), ("DT", dt)],
        al.shape(),
        DType::Bool,
        &[(a, al), (b, bl)],
    )
}

pub(crate) fn where_cond(
    c: &GpuStorage,
    cl: &Layout,
    t: &GpuStorage,
    tl: &Layout,
    f: &GpuStorage,
    fl: &Layout,
) -> Result<GpuStorage> {
    if c.dtype != DType::Bool {
        return Err(Error::DType {
            op: "where",
            dtype: c.dtype,
            detail: " (the condition must be bool)".into(),
        });
    }
    if t.dtype != f.dtype {
        return Err(Error::DTypeMismatch {
            op: "where",
            lhs: t.dtype,
            rhs: f.dtype,
        });
    }
    check_same_shape("where", cl, tl)?;
    check_same_shape("where", cl, fl)?;
    elementwise(
        "where",
        "where_select",
        &[],
        cl.shape(),
        t.dtype,
        &[(c, cl), (t, tl), (f, fl)],
    )
}

pub(crate) fn cast(x: &GpuStorage, l: &Layout, dtype: DType) -> Result<GpuStorage> {
    let to = dt_code("to_dtype", dtype)?;
    if dtype == x.dtype {
        return copy_strided(x, l);
    }
    let from = dt_code("to_dtype", x.dtype)?;
    elementwise(
        "to_dtype",
        "cast_dtype",
        &[("DT", from), ("DT_OUT", to)],
        l.shape(),
        dtype,
        &[(x, l)],
    )
}

pub(crate) fn copy_strided(x: &GpuStorage, l: &Layout) -> Result<GpuStorage> {
    if l.is_contiguous() {
        let out = output("contiguous", l.shape(), x.dtype)?;
        let bytes = l.numel() as u64 * super::buffer::WORD;
        ctx()?.copy_buffer(
            x.buf.raw(),
            l.offset() as u64 * super::buffer::WORD,
            out.buf.raw(),
            0,
            bytes,
        );
        return Ok(out);
    }
    elementwise("contiguous", "copy", &[], l.shape(), x.dtype, &[(x, l)])
}

pub(crate) fn copy_into(
    dst: &mut GpuStorage,
    dl: &Layout,
    src: &GpuStorage,
    sl: &Layout,
) -> Result<()> {
    if dst.dtype != src.dtype {
        return Err(Error::DTypeMismatch {
            op: "copy_",
            lhs: dst.dtype,
            rhs: src.dtype,
        });
    }
    check_same_shape("copy_", dl, sl)?;
    let n = dl.numel();
    if n == 0 {
        return Ok(());
    }
    let params = strided_params(
        "copy_",
        dl.dims(),
        &[(sl.offset(), sl.strides()), (dl.offset(), dl.strides())],
    )?;
    ctx()?.run(
        "copy_",
        &Kernel::new(Shader::Elementwise, "copy_into", &[]),
        &params,
        &[(1, src.buf.raw()), (4, dst.buf.raw())],
        groups_for(n),
    )
}

pub(crate) fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<GpuStorage> {
    let bits = match dtype {
        DType::F32 => (value.to_f64() as f32).to_bits(),
        DType::Bool => (value.to_f64() != 0.0) as u32,
        DType::I64 => {
            // the same conversion as the CPU's, then the device's range
            let v = <i64 as crate::Element>::from_scalar(value);
            i32::try_from(v).map_err(|_| int_range_error("full", v))? as u32
        }
        DType::F64 => return Err(f64_unsupported("full")),
    };
    let out = output("full", shape, dtype)?;
    fill("full", &out.buf, shape.numel(), bits)?;
    Ok(out)
}

pub(crate) fn int_range_error(op: &'static str, v: i64) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: format!("int64 value {v} is outside the int32 range: the GPU stores int64 tensors as 32-bit integers"),
    }
}

fn check_same_shape(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    Ok(())
}

// ---------------------------------------------------------------- reductions

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
        fill(name, &out.buf, n_out, 0)?;
        return Ok(out);
    }
    let ctx = ctx()?;
    let consts = [("OP", reduce_code(op)), ("DT", dt)];
    // (buffer, kept dims, kept strides, reduced dims, reduced strides, offset) of the current pass
    let mut partial: Option<GpuBuffer> = None;
    let (mut kd, mut ks, mut rd, mut rs, mut offset) =
        (kd, ks[0].clone(), rd, rs[0].clone(), l.offset());
    loop {
        let red_n: usize = rd.iter().product();
        let src = partial.as_ref().map(|b| b.raw()).unwrap_or(x.buf.raw());
        let thin = red_n <= 16 || (n_out >= 8192 && red_n <= 2048);
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
        let next = alloc_words(name, n_out * n_chunks, &out_shape, x.dtype)?;
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
    let name = match op {
        ArgReduceOp::ArgMax => "argmax",
        ArgReduceOp::ArgMin => "argmin",
    };
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
        fill(name, &out.buf, n_out, 0)?;
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
    let code = match op {
        ArgReduceOp::ArgMax => 0,
        ArgReduceOp::ArgMin => 1,
    };
    let consts = [("OP", code), ("DT", dt)];
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
        let val = alloc_words(name, parts, &out_shape, x.dtype)?;
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
    let out = output(name, l.shape(), x.dtype)?;
    let numel = l.numel();
    if numel == 0 {
        return Ok(out);
    }
    let len = l.dims()[dim];
    let rows = numel / len;
    let cs = l.shape().contiguous_strides();
    let others: Vec<usize> = (0..l.rank()).filter(|&d| d != dim).collect();
    let od: Vec<usize> = others.iter().map(|&d| l.dims()[d]).collect();
    let is: Vec<usize> = others.iter().map(|&d| l.strides()[d]).collect();
    let os: Vec<usize> = others.iter().map(|&d| cs[d]).collect();
    let (cd, cst) = coalesce(&od, &[&is, &os]);
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
    if len <= 128 || (rows >= 16384 && len <= 1024) {
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

// ---------------------------------------------------------------- matmul

pub(crate) fn matmul(
    a: &GpuStorage,
    al: &Layout,
    b: &GpuStorage,
    bl: &Layout,
) -> Result<GpuStorage> {
    if a.dtype != b.dtype {
        return Err(Error::DTypeMismatch {
            op: "matmul",
            lhs: a.dtype,
            rhs: b.dtype,
        });
    }
    let dt = match a.dtype {
        DType::F32 => 0,
        DType::I64 => 1,
        DType::F64 => return Err(f64_unsupported("matmul")),
        other => {
            return Err(Error::DType {
                op: "matmul",
                dtype: other,
                detail: " (expected float or int64 tensors)".into(),
            })
        }
    };
    let r = al.rank();
    if r < 2
        || bl.rank() != r
        || al.dims()[..r - 2] != bl.dims()[..r - 2]
        || al.dims()[r - 1] != bl.dims()[r - 2]
    {
        return Err(Error::ShapeMismatch {
            op: "matmul",
            lhs: al.shape().clone(),
            rhs: bl.shape().clone(),
            detail: ": expected [..., m, k] @ [..., k, n] with equal batch dims".into(),
        });
    }
    let (m, k, n) = (al.dims()[r - 2], al.dims()[r - 1], bl.dims()[r - 1]);
    let mut out_dims = al.dims().to_vec();
    out_dims[r - 1] = n;
    let out_shape = Shape::new(out_dims);
    let out = output("matmul", &out_shape, a.dtype)?;
    let numel = out_shape.numel();
    if numel == 0 {
        return Ok(out);
    }
    if k == 0 {
        fill("matmul", &out.buf, numel, 0)?; // an empty sum
        return Ok(out);
    }
    let (bd, bs) = coalesce(
        &al.dims()[..r - 2],
        &[&al.strides()[..r - 2], &bl.strides()[..r - 2]],
    );
    let batch: usize = bd.iter().product();
    let (tiles_m, tiles_n) = (m.div_ceil(64), n.div_ceil(64));
    let s = |v: usize| word("matmul", v);
    let mut params = vec![
        s(m)?,
        s(n)?,
        s(k)?,
        s(batch)?,
        s(al.strides()[r - 2])?,
        s(al.strides()[r - 1])?,
        s(bl.strides()[r - 2])?,
        s(bl.strides()[r - 1])?,
        s(al.offset())?,
        s(bl.offset())?,
        s(bd.len())?,
        s(tiles_m)?,
        s(tiles_n)?,
    ];
    params.extend(words("matmul", &bd)?);
    params.extend(words("matmul", &bs[0])?);
    params.extend(words("matmul", &bs[1])?);
    let groups = batch as u64 * tiles_m as u64 * tiles_n as u64;
    ctx()?.run(
        "matmul",
        &Kernel::new(Shader::Matmul, "matmul", &[("DT", dt)]),
        &params,
        &[(1, a.buf.raw()), (2, b.buf.raw()), (4, out.buf.raw())],
        groups,
    )?;
    Ok(out)
}

// ---------------------------------------------------------------- indexing

/// Fails with `IndexOutOfRange` naming the first bad index (row-major) of the view, if any.
/// This reads two words back, so it waits for the work queued before it: the price of reporting
/// a bad index as an error at the call that made it, as the CPU does.
fn check_indices(
    op: &'static str,
    index: &GpuStorage,
    il: &Layout,
    dim: usize,
    size: usize,
) -> Result<()> {
    if index.dtype != DType::I64 {
        return Err(Error::DType {
            op,
            dtype: index.dtype,
            detail: " (indices must be int64)".into(),
        });
    }
    let n = il.numel();
    if n == 0 {
        return Ok(());
    }
    let ctx = ctx()?;
    let status = alloc_words(op, 2, il.shape(), DType::I64)?;
    fill(op, &status, 2, NONE)?;
    let mut params = strided_params(op, il.dims(), &[(il.offset(), il.strides())])?;
    params.push(word(op, size)?);
    let binds = [(1, index.buf.raw()), (5, status.raw())];
    ctx.run(
        op,
        &Kernel::new(Shader::Index, "check_index", &[]),
        &params,
        &binds,
        groups_for(n),
    )?;
    ctx.run(
        op,
        &Kernel::new(Shader::Index, "check_index_value", &[]),
        &params,
        &binds,
        1,
    )?;
    let bytes = ctx.read(op, status.raw(), 0, 8)?;
    let w: Vec<u32> = bytemuck::pod_collect_to_vec(&bytes);
    match (w.first(), w.get(1)) {
        (Some(&pos), Some(&val)) if pos != NONE => Err(Error::IndexOutOfRange {
            op,
            index: val as i32 as i64,
            dim,
            size,
        }),
        (Some(_), Some(_)) => Ok(()),
        _ => Err(Error::Gpu(format!(
            "{op}: the index check returned {} bytes",
            bytes.len()
        ))),
    }
}

/// `out[i] = src[off0(i) + index[off1(i)] * ds]` over `shape` (gather and index_select).
fn gather_words(
    op: &'static str,
    x: &GpuStorage,
    shape: &Shape,
    x_op: (usize, &[usize]),
    idx: (&GpuStorage, usize, &[usize]),
    ds: usize,
    size: usize,
) -> Result<GpuStorage> {
    let out = output(op, shape, x.dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let mut params = strided_params(op, shape.dims(), &[x_op, (idx.1, idx.2)])?;
    params.push(word(op, ds)?);
    params.push(word(op, size)?);
    ctx()?.run(
        op,
        &Kernel::new(Shader::Index, "gather", &[]),
        &params,
        &[(1, x.buf.raw()), (2, idx.0.buf.raw()), (4, out.buf.raw())],
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
    if il.rank() != l.rank() {
        return Err(Error::ShapeMismatch {
            op: "gather",
            lhs: l.shape().clone(),
            rhs: il.shape().clone(),
            detail: ": index must have the input's rank".into(),
        });
    }
    let size = l.dims()[dim];
    check_indices("gather", index, il, dim, size)?;
    let xs = with_zero(l.strides(), dim);
    gather_words(
        "gather",
        x,
        il.shape(),
        (l.offset(), &xs),
        (index, il.offset(), il.strides()),
        l.strides()[dim],
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
    let (k, istride) = one_d_index("index_select", il)?;
    let size = l.dims()[dim];
    check_indices("index_select", index, il, dim, size)?;
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
        size,
    )
}

fn check_dim(op: &'static str, dim: usize, l: &Layout) -> Result<()> {
    if dim >= l.rank() {
        return Err(Error::DimOutOfRange {
            op,
            dim: dim as i64,
            rank: l.rank(),
        });
    }
    Ok(())
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

fn accumulate_dtype(
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
        DType::F32 => Ok(0),
        DType::I64 => Ok(1),
        DType::Bool if reduce == ScatterReduce::Assign => Ok(2),
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
    let cs = bl.shape().contiguous_strides();
    let os = with_zero(&cs, dim);
    let mut params = strided_params(
        op,
        shape.dims(),
        &[(0, &os), (idx.1, idx.2), (src.1, src.2)],
    )?;
    params.push(word(op, cs[dim])?);
    params.push(word(op, bl.dims()[dim])?);
    let binds = [
        (2, idx.0.buf.raw()),
        (3, src.0.buf.raw()),
        (5, out.buf.raw()),
    ];
    ctx()?.run(
        op,
        &Kernel::new(
            Shader::Index,
            "scatter_add",
            &[("DT", dt), ("ASSIGN", (reduce == ScatterReduce::Assign) as u32)],
        ),
        &params,
        &binds,
        groups_for(n),
    )?;
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
    check_dim("scatter", dim, l)?;
    let dt = accumulate_dtype("scatter", base, src, reduce)?;
    if sl.rank() != il.rank() {
        return Err(Error::shape_mismatch("scatter", il.shape(), sl.shape()));
    }
    check_indices("scatter", index, il, dim, l.dims()[dim])?;
    // src is read over the index's shape, as on the CPU
    scatter_words(
        "scatter",
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
    let dt = accumulate_dtype("index_add", base, src, ScatterReduce::Add)?;
    let (k, istride) = one_d_index("index_add", il)?;
    if sl.rank() != l.rank() || sl.dims()[dim] != k {
        return Err(Error::shape_mismatch("index_add", l.shape(), sl.shape()));
    }
    check_indices("index_add", index, il, dim, l.dims()[dim])?;
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

// ---------------------------------------------------------------- conv.wgsl: unfold / fold

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

/// The device word for a pad value of the given dtype.
fn pad_word(op: &'static str, dtype: DType, v: f64) -> Result<u32> {
    Ok(match dtype {
        DType::F32 => (v as f32).to_bits(),
        DType::I64 => {
            let i = v as i64;
            i32::try_from(i).map_err(|_| int_range_error(op, i))? as u32
        }
        DType::Bool => (v != 0.0) as u32,
        DType::F64 => return Err(f64_unsupported(op)),
    })
}

pub(crate) fn unfold(x: &GpuStorage, l: &Layout, w: &Window, pad_value: f64) -> Result<GpuStorage> {
    let d = l.dims();
    let (oh, ow) = w.out_hw(d[2], d[3]).unwrap_or((0, 0));
    let shape = Shape::new(vec![d[0], d[1] * w.kernel.0 * w.kernel.1, oh * ow]);
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
    params.push(pad_word("unfold", x.dtype, pad_value)?);
    let dt = dt_code("unfold", x.dtype)?;
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
    let k = w.kernel.0 * w.kernel.1;
    let c = d[1] / k.max(1);
    let (oh, ow) = w.out_hw(out_hw.0, out_hw.1).unwrap_or((0, 0));
    let shape = Shape::new(vec![d[0], c, out_hw.0, out_hw.1]);
    if x.dtype == DType::Bool {
        return Err(Error::DType {
            op: "fold",
            dtype: x.dtype,
            detail: " (expected a numeric tensor)".into(),
        });
    }
    let out = output("fold", &shape, x.dtype)?;
    let n = shape.numel();
    if n == 0 {
        return Ok(out);
    }
    let params = window_params(
        "fold",
        n,
        [d[0], c, out_hw.0, out_hw.1],
        w,
        (oh, ow),
        l.offset(),
        l.strides(),
    )?;
    let dt = dt_code("fold", x.dtype)?;
    ctx()?.run(
        "fold",
        &Kernel::new(Shader::Conv, "fold", &[("DT", dt)]),
        &params,
        &[(1, x.buf.raw()), (4, out.buf.raw())],
        groups_for(n),
    )?;
    Ok(out)
}
