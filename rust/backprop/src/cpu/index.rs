//! Index-driven kernels: gather / scatter_add (elementwise index along a dim) and
//! index_select / index_add (whole slices along a dim picked by a 1-d index).
//! Every index is bounds-checked before anything is written.

use super::buffer::alloc_for_overwrite;
use super::elementwise::{copy_into, map1, map_runs};
use crate::layout::StridedPlan;
use crate::{Element, Error, Layout, Result, Shape};

fn check(op: &'static str, i: i64, dim: usize, size: usize) -> Result<usize> {
    if i < 0 || i as u64 >= size as u64 {
        Err(Error::IndexOutOfRange {
            op,
            index: i,
            dim,
            size,
        })
    } else {
        Ok(i as usize)
    }
}

/// The indices of a strided I64 view, in row-major order, bounds-checked against `size`.
fn indices(
    op: &'static str,
    idx: &[i64],
    il: &Layout,
    dim: usize,
    size: usize,
) -> Result<Vec<usize>> {
    let raw = map1(op, idx, il, |v| v)?;
    raw.into_iter().map(|i| check(op, i, dim, size)).collect()
}

/// `x`'s strides over `shape` (the index's shape), with `dim` zeroed: offsets of everything but `dim`.
fn over_index_shape(l: &Layout, shape: &Shape, dim: usize) -> Layout {
    let mut s = l.strides().to_vec();
    s[dim] = 0;
    Layout::new(shape.clone(), s, l.offset())
}

pub fn gather<T: Element>(
    x: &[T],
    xl: &Layout,
    dim: usize,
    idx: &[i64],
    il: &Layout,
) -> Result<Vec<T>> {
    let size = xl.dims()[dim];
    let ids = indices("gather", idx, il, dim, size)?;
    let base = over_index_shape(xl, il.shape(), dim);
    let ds = xl.strides()[dim];
    let cl = Layout::contiguous(il.shape().clone());
    // walk (x base offset, position in the index) together
    map_runs(
        "gather",
        [&base, &cl],
        |[ob, oi], [sb, si], out: &mut [T]| {
            for (j, y) in out.iter_mut().enumerate() {
                *y = x[ob + j * sb + ids[oi + j * si] * ds];
            }
        },
    )
}

/// `out = base; out[..index..] = combine(out[..], src[..])` along `dim`, in index order.
#[allow(clippy::too_many_arguments)]
pub fn scatter<T: Element>(
    base: &[T],
    bl: &Layout,
    dim: usize,
    idx: &[i64],
    il: &Layout,
    src: &[T],
    sl: &Layout,
    add: fn(T, T) -> T,
) -> Result<Vec<T>> {
    let size = bl.dims()[dim];
    let ids = indices("scatter", idx, il, dim, size)?;
    let mut out = map1("scatter", base, bl, |v| v)?;
    let ol = Layout::contiguous(bl.shape().clone());
    let ds = ol.strides()[dim];
    let obase = over_index_shape(&ol, il.shape(), dim);
    let src_view = Layout::new(il.shape().clone(), sl.strides().to_vec(), sl.offset());
    let cl = Layout::contiguous(il.shape().clone());
    let plan = StridedPlan::new([&obase, &src_view, &cl]);
    let n = plan.inner_len;
    let [so, ss, si] = plan.inner_strides;
    plan.for_each_run(0, plan.outer_count(), |[oo, os, oi], _| {
        for j in 0..n {
            let t = oo + j * so + ids[oi + j * si] * ds;
            out[t] = add(out[t], src[os + j * ss]);
        }
    });
    Ok(out)
}

pub fn index_select<T: Element>(
    x: &[T],
    xl: &Layout,
    dim: usize,
    idx: &[i64],
    il: &Layout,
) -> Result<Vec<T>> {
    let size = xl.dims()[dim];
    let ids = indices("index_select", idx, il, dim, size)?;
    let mut dims = xl.dims().to_vec();
    dims[dim] = ids.len();
    let shape = Shape::new(dims);
    let mut out = alloc_for_overwrite::<T>("index_select", &shape)?;
    if xl.is_contiguous() {
        // rows of `inner` contiguous elements (an embedding lookup): one memcpy per row, no
        // per-row layouts (their allocations cost more than the copy for 128-wide rows)
        let inner: usize = xl.dims()[dim + 1..].iter().product();
        let (x, nk) = (x.get(xl.offset()..).unwrap_or(&[]), ids.len());
        for (o, block) in out.chunks_exact_mut((nk * inner).max(1)).enumerate() {
            for (k, &i) in ids.iter().enumerate() {
                let src = (o * size + i) * inner;
                block[k * inner..(k + 1) * inner].copy_from_slice(&x[src..src + inner]);
            }
        }
        return Ok(out);
    }
    let ol = Layout::contiguous(shape);
    for (k, &i) in ids.iter().enumerate() {
        copy_into(&mut out, &ol.select(dim, k), x, &xl.select(dim, i));
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)] // a kernel over three strided operands
pub fn index_add<T: Element>(
    base: &[T],
    bl: &Layout,
    dim: usize,
    idx: &[i64],
    il: &Layout,
    src: &[T],
    sl: &Layout,
    add: impl Fn(T, T) -> T + Copy,
) -> Result<Vec<T>> {
    let size = bl.dims()[dim];
    let ids = indices("index_add", idx, il, dim, size)?;
    let mut out = map1("index_add", base, bl, |v| v)?;
    if sl.is_contiguous() {
        // the embedding gradient: whole rows of `inner` elements added in place, a loop the
        // compiler vectorises (`add` is monomorphised), instead of a layout per row
        let inner: usize = bl.dims()[dim + 1..].iter().product();
        let (src, nk) = (src.get(sl.offset()..).unwrap_or(&[]), ids.len());
        let outer = sl.numel().checked_div(nk * inner).unwrap_or(0);
        for o in 0..outer {
            for (k, &i) in ids.iter().enumerate() {
                let d = (o * size + i) * inner;
                let s0 = (o * nk + k) * inner;
                for (y, &v) in out[d..d + inner].iter_mut().zip(&src[s0..s0 + inner]) {
                    *y = add(*y, v);
                }
            }
        }
        return Ok(out);
    }
    let ol = Layout::contiguous(bl.shape().clone());
    for (k, &i) in ids.iter().enumerate() {
        let dl = ol.select(dim, i);
        let s = sl.select(dim, k);
        let plan = StridedPlan::new([&dl, &s]);
        let n = plan.inner_len;
        let [sd, ss] = plan.inner_strides;
        plan.for_each_run(0, plan.outer_count(), |[od, os], _| {
            for j in 0..n {
                out[od + j * sd] = add(out[od + j * sd], src[os + j * ss]);
            }
        });
    }
    Ok(out)
}
