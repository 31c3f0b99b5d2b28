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

/// The indices of a strided I64 view, in row-major order (borrowed when the view is
/// contiguous), bounds-checked against `size`: each is then a valid `usize` (`i as usize`).
fn indices<'a>(
    op: &'static str,
    idx: &'a [i64],
    il: &Layout,
    dim: usize,
    size: usize,
) -> Result<std::borrow::Cow<'a, [i64]>> {
    let raw = match il.contiguous_range() {
        Some((a, b)) => std::borrow::Cow::Borrowed(&idx[a..b]),
        None => std::borrow::Cow::Owned(map1(op, idx, il, |v| v)?),
    };
    // one pass that vectorises (an unsigned max: a negative index is a huge one) finds whether
    // any index is out of range; only then is the first one looked for, to name it
    let largest = super::simd::dispatch(
        #[inline(always)]
        || raw.iter().map(|&i| i as u64).max(),
    );
    if largest.is_some_and(|m| m >= size as u64) {
        for &i in raw.iter() {
            check(op, i, dim, size)?;
        }
    }
    Ok(raw)
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
            if (sb, si) == (0, 1) {
                // the run walks `dim` itself (a max-pool's values): a tight gather
                let (x, ids) = (&x[ob..], &ids[oi..oi + out.len()]);
                super::simd::dispatch(
                    #[inline(always)]
                    || {
                        for (y, &i) in out.iter_mut().zip(ids) {
                            *y = x[i as usize * ds];
                        }
                    },
                );
                return;
            }
            for (j, y) in out.iter_mut().enumerate() {
                *y = x[ob + j * sb + ids[oi + j * si] as usize * ds];
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
    add: impl Fn(T, T) -> T + Sync,
) -> Result<Vec<T>> {
    let size = bl.dims()[dim];
    let ids = indices("scatter", idx, il, dim, size)?;
    let mut out = map1("scatter", base, bl, |v| v)?;
    let ol = Layout::contiguous(bl.shape().clone());
    let ds = ol.strides()[dim];
    let obase = over_index_shape(&ol, il.shape(), dim);
    let src_view = Layout::new(il.shape().clone(), sl.strides().to_vec(), sl.offset());
    let cl = Layout::contiguous(il.shape().clone());
    let run = |plan: StridedPlan<3>, out: &mut [T]| {
        let n = plan.inner_len;
        let [so, ss, si] = plan.inner_strides;
        plan.for_each_run(0, plan.outer_count(), |[oo, os, oi], _| {
            if (so, ss, si) == (0, 1, 1) {
                // the run walks `dim` itself with a contiguous source (the gradient of a
                // gather such as max-pooling's): a tight loop over one output fibre
                let (fibre, ids, src) = (&mut out[oo..], &ids[oi..oi + n], &src[os..os + n]);
                for (&i, &v) in ids.iter().zip(src) {
                    let t = i as usize * ds;
                    fibre[t] = add(fibre[t], v);
                }
                return;
            }
            for j in 0..n {
                let t = oo + j * so + ids[oi + j * si] as usize * ds;
                out[t] = add(out[t], src[os + j * ss]);
            }
        });
    };
    // Each position in the dims before `dim` writes only its own block of the output (the
    // fibers along `dim` and the dims after it), so blocks run in parallel (max-pooling's
    // backward scatters every plane at once). Within a block the index is walked in the same
    // row-major order as in one pass, so every element sums its contributions in index order
    // and the result does not depend on the split or the thread count.
    let tail: usize = il.dims()[dim..].iter().product();
    if dim == 0 || tail == 0 || !super::parallel::go_parallel_rows(ids.len()) {
        run(StridedPlan::new([&obase, &src_view, &cl]), &mut out);
        return Ok(out);
    }
    let part = |l: &Layout, offset: usize| {
        let dims = Shape::new(l.dims()[dim..].to_vec());
        Layout::new(dims, l.strides()[dim..].to_vec(), offset)
    };
    let block: usize = bl.dims()[dim..].iter().product();
    // blocks dealt in groups of at least ~1K index elements, which pay for a plan each
    let group = 1024usize.div_ceil(tail);
    super::parallel::for_each_chunk(&mut out, block * group, |q, o| {
        for (g, o) in o.chunks_mut(block).enumerate() {
            // the block's position in the output's leading dims, where the index may be shorter
            let (mut rem, mut s_off, mut i_off) = (q * group + g, sl.offset(), 0);
            let mut inside = true;
            for k in (0..dim).rev() {
                let m = rem % bl.dims()[k];
                rem /= bl.dims()[k];
                inside &= m < il.dims()[k];
                s_off += m * sl.strides()[k];
                i_off += m * cl.strides()[k];
            }
            if inside {
                let layouts = [&part(&obase, 0), &part(&src_view, s_off), &part(&cl, i_off)];
                run(StridedPlan::new(layouts), o);
            }
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
                let src = (o * size + i as usize) * inner;
                block[k * inner..(k + 1) * inner].copy_from_slice(&x[src..src + inner]);
            }
        }
        return Ok(out);
    }
    let ol = Layout::contiguous(shape);
    for (k, &i) in ids.iter().enumerate() {
        copy_into(&mut out, &ol.select(dim, k), x, &xl.select(dim, i as usize));
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
                let d = (o * size + i as usize) * inner;
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
        let dl = ol.select(dim, i as usize);
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
