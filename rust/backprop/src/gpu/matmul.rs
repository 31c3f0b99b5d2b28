//! Launcher of `shaders/matmul.wgsl`: batched matmul of strided operands (transposes, slices and
//! broadcast batch dims are multiplied where they lie). The inner dimension is split over
//! dispatches of at most `K_CHUNK` that accumulate into the output, so no shader loop runs past
//! the drivers' iteration limits however long K is.

use super::common::{coalesce, ctx, f64_unsupported, fill, output, word, words};
use super::dispatch::groups_for;
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::{DType, Error, Layout, Result, Shape};

/// Inner-dimension elements per dispatch: 1024 slabs of 16 for the tiled float kernel (about 18
/// loop iterations per slab), 16384 multiply-adds per thread for the int64 kernel.
pub(crate) const K_CHUNK: usize = 16384;

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
    let entry = match a.dtype {
        DType::F32 => "matmul",
        DType::I64 => "matmul_i64",
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
        fill("matmul", &out.buf, numel, a.dtype, (0, 0))?; // an empty sum
        return Ok(out);
    }
    let (bd, bs) = coalesce(
        &al.dims()[..r - 2],
        &[&al.strides()[..r - 2], &bl.strides()[..r - 2]],
    );
    let batch: usize = bd.iter().product();
    let (tiles_m, tiles_n) = (m.div_ceil(64), n.div_ceil(64));
    let s = |v: usize| word("matmul", v);
    let groups = if a.dtype == DType::F32 {
        batch as u64 * tiles_m as u64 * tiles_n as u64
    } else {
        groups_for(word("matmul", numel)? as usize)
    };
    let ctx = ctx()?;
    for (i, k0) in (0..k).step_by(K_CHUNK).enumerate() {
        let k1 = (k0 + K_CHUNK).min(k);
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
            s(k0)?,
            s(k1)?,
            (i > 0) as u32,
        ];
        params.extend(words("matmul", &bd)?);
        params.extend(words("matmul", &bs[0])?);
        params.extend(words("matmul", &bs[1])?);
        ctx.run(
            "matmul",
            &Kernel::new(Shader::Matmul, entry, &[]),
            &params,
            &[(1, a.buf.raw()), (2, b.buf.raw()), (4, out.buf.raw())],
            groups,
        )?;
    }
    Ok(out)
}
