//! What every kernel launcher shares: dtype codes, 32-bit parameter words, shape coalescing,
//! the strided-operand parameter block (its layout is documented in `shaders/common.wgsl`),
//! output allocation and fills.

use super::buffer::{self, GpuBuffer};
use super::context::{context, Context};
use super::dispatch::groups_for;
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::{DType, Device, Error, Layout, Result, Shape};

/// The device code of a dtype (the `DT` override of every kernel), or the f64 error.
pub(crate) fn dt_code(op: &'static str, dtype: DType) -> Result<u32> {
    crate::wgsl::dtype_code(dtype).ok_or_else(|| {
        if dtype.is_storage_only() {
            storage_dtype_unsupported(op, dtype)
        } else {
            f64_unsupported(op)
        }
    })
}

/// The error for a storage dtype (float16, int32...) on the GPU: the WGSL kernels are
/// float32/int32/bool, and these dtypes live on the CPU for now.
pub(crate) fn storage_dtype_unsupported(op: &'static str, dtype: DType) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: format!(
            "dtype {dtype} is CPU-only for now (the GPU kernels are float32, int64-as-int32 and bool; float16 on the GPU needs shader-f16 kernels, not built yet); convert first, e.g. t.to({}) before .to('gpu')",
            dtype.compute()
        ),
    }
}

pub(crate) fn f64_unsupported(op: &'static str) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: "dtype float64 is not available on the GPU (WGSL has no f64); convert to float32 first, e.g. t.float() or dtype=float32".into(),
    }
}

/// A size, stride or offset as a parameter word (the kernels index with 32 bits).
pub(crate) fn word(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: format!("size or stride {v} does not fit the kernels' 32-bit indexing"),
    })
}

pub(crate) fn words(op: &'static str, vs: &[usize]) -> Result<Vec<u32>> {
    vs.iter().map(|&v| word(op, v)).collect()
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
pub(crate) fn strided_params(
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

pub(crate) fn with_zero(strides: &[usize], dim: usize) -> Vec<usize> {
    let mut s = strides.to_vec();
    s[dim] = 0;
    s
}

/// A fresh output storage.
pub(crate) fn output(op: &'static str, shape: &Shape, dtype: DType) -> Result<GpuStorage> {
    dt_code(op, dtype)?;
    Ok(GpuStorage {
        buf: buffer::alloc(op, shape, dtype)?,
        len: shape.numel(),
        dtype,
    })
}

pub(crate) fn ctx() -> Result<&'static Context> {
    context()
}

/// Sets the first `n` elements of `buf` (of `dtype`) to the value whose words are `value`
/// (`(bits, 0)` for float32 and bool, `(low, high)` for int64).
pub(crate) fn fill(
    op: &'static str,
    buf: &GpuBuffer,
    n: usize,
    dtype: DType,
    value: (u32, u32),
) -> Result<()> {
    fill_words(
        op,
        buf,
        n * buffer::words_per(dtype),
        value,
        dtype == DType::I64,
    )
}

/// Sets `n_words` words: all `value.0`, or alternating `value.0, value.1` when `pairs`.
pub(crate) fn fill_words(
    op: &'static str,
    buf: &GpuBuffer,
    n_words: usize,
    value: (u32, u32),
    pairs: bool,
) -> Result<()> {
    if n_words == 0 {
        return Ok(());
    }
    let odd = if pairs { value.1 } else { value.0 };
    ctx()?.run(
        op,
        &Kernel::new(Shader::Elementwise, "fill", &[]),
        &[word(op, n_words)?, value.0, odd],
        &[(4, buf.raw())],
        groups_for(n_words),
    )
}

pub(crate) fn check_same_shape(op: &'static str, a: &Layout, b: &Layout) -> Result<()> {
    if a.shape() != b.shape() {
        return Err(Error::shape_mismatch(op, a.shape(), b.shape()));
    }
    Ok(())
}

pub(crate) fn check_dim(op: &'static str, dim: usize, l: &Layout) -> Result<()> {
    if dim >= l.rank() {
        return Err(Error::DimOutOfRange {
            op,
            dim: dim as i64,
            rank: l.rank(),
        });
    }
    Ok(())
}

/// The words of a scalar value of `dtype` (the CPU's conversion of the value).
pub(crate) fn value_words(op: &'static str, dtype: DType, v: crate::Scalar) -> Result<(u32, u32)> {
    use crate::Element;
    Ok(match dtype {
        DType::F32 => ((v.to_f64() as f32).to_bits(), 0),
        DType::Bool => ((v.to_f64() != 0.0) as u32, 0),
        DType::I64 => {
            let i = i64::from_scalar(v) as u64;
            (i as u32, (i >> 32) as u32)
        }
        DType::F64 => return Err(f64_unsupported(op)),
        d => return Err(storage_dtype_unsupported(op, d)),
    })
}
