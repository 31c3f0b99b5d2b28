//! Launchers of `shaders/elementwise.wgsl`: unary, binary, compare, where, cast, copies, fill.
//! One thread per output element; operands are read through (offset, strides), so broadcasts
//! and transposes need no copy.

use super::buffer::{self, words_per};
use super::common::{
    check_same_shape, ctx, dt_code, fill, output, strided_params, value_words, word,
};
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

/// `g * f'(a)` in one dispatch (see `BackendStorage::unary_backward`; `unary_backward` in
/// elementwise.wgsl).
pub(crate) fn unary_backward(
    (a, al): (&GpuStorage, &Layout),
    (g, gl): (&GpuStorage, &Layout),
    op: UnaryOp,
) -> Result<GpuStorage> {
    let name = op.name();
    if op.fused_grad_input().is_none() {
        return Err(Error::Unsupported {
            op: name,
            device: crate::backend::BackendStorage::device(a),
            msg: "no fused derivative kernel (its gradient is composed)".into(),
        });
    }
    for s in [a, g] {
        if s.dtype != DType::F32 {
            return Err(Error::DType {
                op: name,
                dtype: s.dtype,
                detail: " (the GPU derivative kernels are float32)".into(),
            });
        }
    }
    check_same_shape(name, al, gl)?;
    launch(
        name,
        "unary_backward",
        &[
            ("OP", op as u32),
            ("DT", dt_code(name, a.dtype)?),
            ("DT_OUT", dt_code(name, a.dtype)?),
        ],
        al.shape(),
        a.dtype,
        &[(a, al), (g, gl)],
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

fn lstm_params(op: &'static str, rows_h: usize, h: usize, offsets: &[usize]) -> Result<Vec<u32>> {
    let mut p = vec![word(op, rows_h)?, word(op, h)?];
    for &o in offsets {
        p.push(word(op, o)?);
    }
    p.resize(7, 0);
    Ok(p)
}

fn lstm_f32(op: &'static str, ts: &[&GpuStorage]) -> Result<()> {
    match ts.iter().find(|t| t.dtype != DType::F32) {
        Some(t) => Err(Error::DType {
            op,
            dtype: t.dtype,
            detail: " (the GPU LSTM cell kernels are float32)".into(),
        }),
        None => Ok(()),
    }
}

/// The LSTM cell's pointwise step (see `lstm_cell` in elementwise.wgsl).
pub(crate) fn lstm_cell(
    (pre, pl): (&GpuStorage, &Layout),
    (cp, cl): (&GpuStorage, &Layout),
) -> Result<(GpuStorage, GpuStorage, GpuStorage)> {
    let op = "lstm_cell";
    let (b, h) = crate::cpu::lstm_dims(op, pl, &[cl])?;
    lstm_f32(op, &[pre, cp])?;
    let hn = output(op, &Shape::new(vec![b, h]), DType::F32)?;
    let cn = output(op, &Shape::new(vec![b, h]), DType::F32)?;
    let act = output(op, &Shape::new(vec![b, 4 * h]), DType::F32)?;
    let n = b * h;
    if n > 0 {
        let p = lstm_params(op, n, h, &[pl.offset(), cl.offset()])?;
        let binds = [
            (1, pre.buf.raw()),
            (2, cp.buf.raw()),
            (4, hn.buf.raw()),
            (5, cn.buf.raw()),
            (6, act.buf.raw()),
        ];
        ctx()?.run(
            op,
            &Kernel::new(Shader::Elementwise, "lstm_cell", &[]),
            &p,
            &binds,
            groups_for(n),
        )?;
    }
    Ok((hn, cn, act))
}

/// Its backward (see `lstm_cell_backward` in elementwise.wgsl).
pub(crate) fn lstm_cell_backward(
    (act, al): (&GpuStorage, &Layout),
    (c, cl): (&GpuStorage, &Layout),
    (cp, cpl): (&GpuStorage, &Layout),
    (dh, dhl): (&GpuStorage, &Layout),
    (dc, dcl): (&GpuStorage, &Layout),
) -> Result<(GpuStorage, GpuStorage)> {
    let op = "lstm_cell_backward";
    let (b, h) = crate::cpu::lstm_dims(op, al, &[cl, cpl, dhl, dcl])?;
    lstm_f32(op, &[act, c, cp, dh, dc])?;
    let dg = output(op, &Shape::new(vec![b, 4 * h]), DType::F32)?;
    let dcp = output(op, &Shape::new(vec![b, h]), DType::F32)?;
    let n = b * h;
    if n > 0 {
        let offs = [
            al.offset(),
            cl.offset(),
            cpl.offset(),
            dhl.offset(),
            dcl.offset(),
        ];
        let p = lstm_params(op, n, h, &offs)?;
        let binds = [
            (1, act.buf.raw()),
            (2, c.buf.raw()),
            (3, cp.buf.raw()),
            (7, dh.buf.raw()),
            (8, dc.buf.raw()),
            (4, dg.buf.raw()),
            (5, dcp.buf.raw()),
        ];
        ctx()?.run(
            op,
            &Kernel::new(Shader::Elementwise, "lstm_cell_backward", &[]),
            &p,
            &binds,
            groups_for(n),
        )?;
    }
    Ok((dg, dcp))
}
