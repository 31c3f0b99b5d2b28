//! Launchers of `shaders/elementwise.wgsl`: unary, binary, compare, where, cast, copies, fill.
//! One thread per output element; operands are read through (offset, strides), so broadcasts
//! and transposes need no copy.

use super::buffer::{self, words_per};
use super::common::{check_same_shape, ctx, dt_code, fill, output, strided_params, value_words};
use super::dispatch::{groups_for, Bind};
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::op::{BinaryOp, CmpOp, UnaryOp};
use crate::{DType, Error, Layout, Result, Scalar, Shape};

/// One thread per output element: inputs at bindings 1.., out at 4.
fn launch(
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
    launch(
        name,
        "unary",
        &[("OP", op as u32), ("DT", dt), ("DT_OUT", dt)],
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
    if op.is_bitwise() && a.dtype == DType::F32 {
        return Err(Error::DType {
            op: name,
            dtype: a.dtype,
            detail: " (bitwise ops are defined for integer and bool tensors only)".into(),
        });
    }
    check_same_shape(name, al, bl)?;
    let dt = dt_code(name, a.dtype)?;
    launch(
        name,
        "binary",
        &[("OP", op as u32), ("DT", dt), ("DT_OUT", dt)],
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
    let bool_code = dt_code(name, DType::Bool)?;
    launch(
        name,
        "compare",
        &[("OP", op as u32), ("DT", dt), ("DT_OUT", bool_code)],
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
    let dt = dt_code("where", t.dtype)?;
    launch(
        "where",
        "where_select",
        &[("DT", dt), ("DT_OUT", dt)],
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
    launch(
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
        let elem = words_per(x.dtype) as u64 * buffer::WORD;
        ctx()?.copy_buffer(
            x.buf.raw(),
            l.offset() as u64 * elem,
            out.buf.raw(),
            0,
            l.numel() as u64 * elem,
        );
        return Ok(out);
    }
    let dt = dt_code("contiguous", x.dtype)?;
    launch(
        "contiguous",
        "copy",
        &[("DT", dt), ("DT_OUT", dt)],
        l.shape(),
        x.dtype,
        &[(x, l)],
    )
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
    let dt = dt_code("copy_", dst.dtype)?;
    let params = strided_params(
        "copy_",
        dl.dims(),
        &[(sl.offset(), sl.strides()), (dl.offset(), dl.strides())],
    )?;
    ctx()?.run(
        "copy_",
        &Kernel::new(
            Shader::Elementwise,
            "copy_into",
            &[("DT", dt), ("DT_OUT", dt)],
        ),
        &params,
        &[(1, src.buf.raw()), (4, dst.buf.raw())],
        groups_for(n),
    )
}

pub(crate) fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<GpuStorage> {
    let w = value_words("full", dtype, value)?;
    let out = output("full", shape, dtype)?;
    fill("full", &out.buf, shape.numel(), dtype, w)?;
    Ok(out)
}
