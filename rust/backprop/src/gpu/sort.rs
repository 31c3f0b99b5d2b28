//! Launcher of `shaders/sort.wgsl`: the stable order of each row of a contiguous `[rows, n]`
//! input (one workgroup per row, a bitonic network in workgroup memory).

use super::common::{ctx, dt_code, output, word};
use super::pipeline::{Kernel, Shader};
use super::GpuStorage;
use crate::{DType, Error, Layout, Result};

/// The longest row the kernel sorts (its workgroup arrays); `Tensor::argsort` orders longer
/// rows on the CPU.
pub(crate) const SORT_MAX: usize = 1024;

pub(crate) fn argsort_rows(x: &GpuStorage, l: &Layout, descending: bool) -> Result<GpuStorage> {
    let op = "argsort";
    let dt = dt_code(op, x.dtype)?;
    let n = l.dims().last().copied().unwrap_or(1);
    if !l.is_contiguous() || n > SORT_MAX {
        return Err(Error::InvalidShape {
            op,
            shape: l.shape().clone(),
            msg: format!(
                "the GPU sort kernel takes contiguous rows of at most {SORT_MAX} elements"
            ),
        });
    }
    let out = output(op, l.shape(), DType::I64)?;
    let rows = l.numel().checked_div(n).unwrap_or(0);
    if rows == 0 {
        return Ok(out);
    }
    let params = [
        word(op, rows)?,
        word(op, n)?,
        word(op, n.next_power_of_two())?,
        descending as u32,
        word(op, l.offset())?,
    ];
    ctx()?.run(
        op,
        &Kernel::new(Shader::Sort, "argsort_rows", &[("DT", dt)]),
        &params,
        &[(1, x.buf.raw()), (4, out.buf.raw())],
        rows as u64,
    )?;
    Ok(out)
}
