//! Reductions (sum/max/min over any set of dims), arg-reductions and softmax.
//!
//! Sums are blocked and pairwise: a contiguous run is cut into fixed-size blocks, each summed with
//! 8 independent accumulators (which also vectorises), and block sums are combined pairwise. Error
//! grows like O(log n) instead of O(n), and because the blocking depends only on sizes the result
//! is the same bits with 1 thread or 64.

use super::buffer::{alloc, alloc_for_overwrite};
use super::elementwise::map1;
use super::math::{max_nan, min_nan};
use super::parallel::{for_each_chunk, go_parallel, go_parallel_rows, REDUCE_BLOCK};
use crate::layout::StridedPlan;
use crate::op::{ArgReduceOp, ReduceOp};
use crate::{Element, FloatElement, Layout, Result, Shape};
use rayon::prelude::*;

/// Accumulation behaviour per element type.
pub trait Reducible: Element {
    fn add(a: Self, b: Self) -> Self;
    fn sum_slice(x: &[Self]) -> Self;
}

impl<T: FloatElement> Reducible for T {
    #[inline(always)]
    fn add(a: T, b: T) -> T {
        a + b
    }
    fn sum_slice(x: &[T]) -> T {
        pairwise_sum(x)
    }
}

/// Elements per leaf of the pairwise sum, summed in `SUM_LANES` independent lanes.
const SUM_LEAF: usize = 1024;
/// 32 f32 lanes are two AVX-512 registers: enough independent adds to hide their latency
/// (8 lanes, as before, kept one SSE/AVX add chain busy and capped a core at ~17 GB/s).
const SUM_LANES: usize = 32;

#[inline(always)]
fn leaf_sum<T: FloatElement>(x: &[T]) -> T {
    let mut acc = [T::ZERO; SUM_LANES];
    let chunks = x.chunks_exact(SUM_LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..SUM_LANES {
            acc[k] = acc[k] + c[k];
        }
    }
    let mut s = lane_total(acc);
    for &v in rem {
        s = s + v;
    }
    s
}

/// Sum of a contiguous float slice: lanes within leaves of `SUM_LEAF`, then the leaves combined
/// pairwise (a binary counter: the tree depends only on the length, so the result is the same
/// however the caller split the work). Compiled for the CPU's SIMD level.
pub fn pairwise_sum<T: FloatElement>(x: &[T]) -> T {
    super::simd::dispatch(
        #[inline(always)]
        || {
            if x.len() <= SUM_LEAF {
                return leaf_sum(x);
            }
            // stack[l] holds the sum of 2^l leaves while bit l of `count` is set
            let mut stack = [T::ZERO; 64];
            let mut count = 0usize;
            for c in x.chunks(SUM_LEAF) {
                let mut v = leaf_sum(c);
                let mut l = 0;
                while count >> l & 1 == 1 {
                    v = stack[l] + v;
                    l += 1;
                }
                stack[l] = v;
                count += 1;
            }
            let mut total: Option<T> = None;
            for (l, &v) in stack.iter().enumerate() {
                if count >> l & 1 == 1 {
                    total = Some(match total {
                        None => v,
                        Some(t) => v + t,
                    });
                }
            }
            total.unwrap_or(T::ZERO)
        },
    )
}

/// Integer sums wrap (no panic on overflow); their order does not matter for the result.
pub fn int_sum(x: &[i64]) -> i64 {
    x.iter().fold(0i64, |a, &b| a.wrapping_add(b))
}

fn reduce_contig<T: Element>(
    x: &[T],
    op: ReduceOp,
    sum: impl Fn(&[T]) -> T + Sync + Send + Copy,
    add: impl Fn(T, T) -> T + Sync + Send + Copy,
) -> T {
    match op {
        ReduceOp::Sum => {
            if go_parallel(x.len()) && x.len() > 2 * REDUCE_BLOCK {
                // fixed blocks in parallel, combined in index order: deterministic
                let parts: Vec<T> = x.par_chunks(REDUCE_BLOCK).map(sum).collect();
                let mut parts = parts;
                while parts.len() > 1 {
                    parts = parts
                        .chunks(2)
                        .map(|p| if p.len() == 2 { add(p[0], p[1]) } else { p[0] })
                        .collect();
                }
                parts.first().copied().unwrap_or(T::ZERO)
            } else {
                sum(x)
            }
        }
        ReduceOp::Max => x.iter().copied().reduce(max_nan).unwrap_or(T::ZERO),
        ReduceOp::Min => x.iter().copied().reduce(min_nan).unwrap_or(T::ZERO),
    }
}

/// Reduces `x` (viewed by `l`) over sorted unique `dims`; output shape keeps them as 1.
pub fn reduce<T: Element>(
    x: &[T],
    l: &Layout,
    op: ReduceOp,
    dims: &[usize],
    // generic, not `fn` pointers: the element combiner must inline into the row loops below
    sum: impl Fn(&[T]) -> T + Sync + Send + Copy,
    add: impl Fn(T, T) -> T + Sync + Send + Copy,
) -> Result<Vec<T>> {
    let rank = l.rank();
    let out_dims: Vec<usize> = (0..rank)
        .map(|d| if dims.contains(&d) { 1 } else { l.dims()[d] })
        .collect();
    let out_shape = Shape::new(out_dims);
    let mut out = alloc::<T>(op.name(), &out_shape)?;
    let n_out = out.len();
    if n_out == 0 {
        return Ok(out);
    }
    let kept: Vec<usize> = (0..rank).filter(|d| !dims.contains(d)).collect();
    let red_shape: Vec<usize> = dims.iter().map(|&d| l.dims()[d]).collect();
    let red_n: usize = red_shape.iter().product();
    if red_n == 0 {
        // empty reduction: the sum of nothing is 0 (max/min of nothing is rejected earlier)
        return Ok(out);
    }
    let red_layout = Layout::new(
        Shape::new(red_shape),
        dims.iter().map(|&d| l.strides()[d]).collect(),
        0,
    );
    let kept_layout = Layout::new(
        Shape::new(kept.iter().map(|&d| l.dims()[d]).collect()),
        kept.iter().map(|&d| l.strides()[d]).collect(),
        l.offset(),
    );

    // Case 1: each output's reduced block is one contiguous run (e.g. reducing trailing dims).
    if red_layout.is_contiguous() {
        let plan = StridedPlan::new([&kept_layout]);
        let one = |o: usize| reduce_contig(&x[o..o + red_n], op, sum, add);
        if go_parallel(n_out * red_n) && n_out > 1 {
            out.par_iter_mut().enumerate().for_each(|(i, y)| {
                *y = one(plan.offsets_at(i / plan.inner_len)[0]
                    + (i % plan.inner_len) * plan.inner_strides[0])
            });
        } else {
            let inner = plan.inner_len;
            let s = plan.inner_strides[0];
            plan.for_each_run(0, plan.outer_count(), |[o], r| {
                for j in 0..inner {
                    out[r * inner + j] = one(o + j * s);
                }
            });
        }
        return Ok(out);
    }

    // Case 2: the innermost kept dim is contiguous in memory (summing over the batch dim of
    // [B, N], over a pooling window of [N, C, k, L], a bias gradient's [N, C, H, W] -> C is not
    // this but the general case): combine whole rows of that dim at once, so the inner loop walks
    // contiguous memory and vectorises; sums go in blocks of rows for accuracy.
    if kept_layout.rank() >= 1 && kept_layout.strides()[kept_layout.rank() - 1] == 1 {
        let last = kept_layout.rank() - 1;
        let inner = kept_layout.dims()[last];
        let outer = kept_layout.select(last, 0);
        let mut row_starts = Vec::with_capacity(outer.numel());
        let oplan = StridedPlan::new([&outer]);
        oplan.for_each_run(0, oplan.outer_count(), |[o], _| {
            for j in 0..oplan.inner_len {
                row_starts.push(o + j * oplan.inner_strides[0]);
            }
        });
        let rows = StridedPlan::new([&red_layout]);
        let mut offsets = Vec::with_capacity(red_n);
        rows.for_each_run(0, rows.outer_count(), |[o], _| {
            for j in 0..rows.inner_len {
                offsets.push(o + j * rows.inner_strides[0]);
            }
        });
        let run = |out: &mut [T], base: usize| match op {
            ReduceOp::Sum => combine_rows(x, &offsets, out, base, add),
            ReduceOp::Max => combine_rows(x, &offsets, out, base, max_nan),
            ReduceOp::Min => combine_rows(x, &offsets, out, base, min_nan),
        };
        const COLS: usize = 256;
        if go_parallel(n_out * red_n) && row_starts.len() == 1 {
            out.par_chunks_mut(COLS)
                .enumerate()
                .for_each(|(c, piece)| run(piece, row_starts[0] + c * COLS));
        } else if go_parallel(n_out * red_n) {
            out.par_chunks_mut(inner)
                .zip(row_starts.par_iter())
                .for_each(|(piece, &b)| run(piece, b));
        } else {
            for (piece, &b) in out.chunks_mut(inner).zip(&row_starts) {
                run(piece, b);
            }
        }
        return Ok(out);
    }

    // General case: move reduced dims last, copy contiguous, then case 1.
    let perm: Vec<usize> = kept.iter().chain(dims.iter()).copied().collect();
    let p = l.permute(&perm)?;
    let packed = map1(op.name(), x, &p, |v| v)?;
    let blocks: Vec<T> = if go_parallel(packed.len()) {
        packed
            .par_chunks(red_n)
            .map(|c| reduce_contig(c, op, sum, add))
            .collect()
    } else {
        packed
            .chunks(red_n)
            .map(|c| reduce_contig(c, op, sum, add))
            .collect()
    };
    out.copy_from_slice(&blocks);
    Ok(out)
}

/// `out[j] = comb over r of x[base + offsets[r] + j]`, in blocks of 64 rows (a sum's rounding
/// error then grows with the number of blocks, not of rows).
fn combine_rows<T: Element>(
    x: &[T],
    offsets: &[usize],
    out: &mut [T],
    base: usize,
    comb: impl Fn(T, T) -> T,
) {
    const ROW_BLOCK: usize = 64;
    let w = out.len();
    let mut block = vec![T::ZERO; w];
    super::simd::dispatch(
        #[inline(always)]
        || {
            for (bi, rows) in offsets.chunks(ROW_BLOCK).enumerate() {
                block.copy_from_slice(&x[base + rows[0]..base + rows[0] + w]);
                for &ro in &rows[1..] {
                    for (b, &v) in block.iter_mut().zip(&x[base + ro..base + ro + w]) {
                        *b = comb(*b, v);
                    }
                }
                if bi == 0 {
                    out.copy_from_slice(&block);
                } else {
                    for (o, &b) in out.iter_mut().zip(&block) {
                        *o = comb(*o, b);
                    }
                }
            }
        },
    );
}

/// Index of the max/min along `dim` (first on ties; NaN counts as the extreme, like PyTorch).
pub fn arg_reduce<T: Element>(
    x: &[T],
    l: &Layout,
    op: ArgReduceOp,
    dim: usize,
) -> Result<Vec<i64>> {
    let mut out_dims = l.dims().to_vec();
    let len = out_dims[dim];
    out_dims[dim] = 1;
    let out_shape = Shape::new(out_dims);
    let outer = l.select(dim, 0);
    let stride = l.strides()[dim];
    super::elementwise::map_runs(
        "argmax",
        [&Layout::new(
            out_shape.clone(),
            outer_strides(&outer, dim),
            outer.offset(),
        )],
        |[o], [s], out: &mut [i64]| match op {
            ArgReduceOp::ArgMax => arg_run(x, o, s, stride, len, out, |v, best| v > best),
            ArgReduceOp::ArgMin => arg_run(x, o, s, stride, len, out, |v, best| v < best),
        },
    )
}

/// One run of `arg_reduce`: `out[j]` is the index along the reduced axis of the extreme of
/// `x[o + j*s + i*stride]` over `i`. `better(v, best)` is the strict comparison; NaN wins and the
/// first NaN stays.
#[inline(always)]
#[allow(clippy::eq_op)] // `v != v` is the NaN test for a generic Element
fn arg_run<T: Element>(
    x: &[T],
    o: usize,
    s: usize,
    stride: usize,
    len: usize,
    out: &mut [i64],
    better: impl Fn(T, T) -> bool,
) {
    let take = |v: T, best: T| (better(v, best) || v != v) && best == best;
    if s == 1 && len > 1 {
        // the reduced axis is not the innermost one (pooling windows, `max(dim=0)`): sweep the
        // reduced axis outermost so the inner loop walks contiguous memory and vectorises
        let n = out.len();
        let mut best = x[o..o + n].to_vec();
        out.iter_mut().for_each(|y| *y = 0);
        super::simd::dispatch(
            #[inline(always)]
            || {
                for i in 1..len {
                    let row = &x[o + i * stride..o + i * stride + n];
                    for ((b, y), &v) in best.iter_mut().zip(out.iter_mut()).zip(row) {
                        let t = take(v, *b);
                        *b = if t { v } else { *b };
                        *y = if t { i as i64 } else { *y };
                    }
                }
            },
        );
        return;
    }
    for (j, y) in out.iter_mut().enumerate() {
        let base = o + j * s;
        let mut best = x[base];
        let mut bi = 0usize;
        for i in 1..len {
            let v = x[base + i * stride];
            if take(v, best) {
                best = v;
                bi = i;
            }
        }
        *y = bi as i64;
    }
}

/// Strides of a keepdim output viewed over the input: the selected-away dim gets stride 0.
fn outer_strides(outer: &Layout, dim: usize) -> Vec<usize> {
    let mut s = outer.strides().to_vec();
    s.insert(dim, 0);
    s
}

/// Lanes of the row kernels: 16 f32 fill an AVX-512 register; independent lanes also break the
/// max / sum dependency chains the compiler may not reorder (float max and add do not associate).
pub(crate) const ROW_LANES: usize = 16;

/// Maximum of a contiguous row, NaN-propagating (a row of all -inf gives -inf, and softmax then
/// gives NaN, as PyTorch's).
#[inline(always)]
pub(crate) fn row_max<T: FloatElement>(x: &[T]) -> T {
    let mut mx = [T::neg_infinity(); ROW_LANES];
    let mut chunks = x.chunks_exact(ROW_LANES);
    for c in &mut chunks {
        for k in 0..ROW_LANES {
            mx[k] = max_nan(mx[k], c[k]);
        }
    }
    chunks
        .remainder()
        .iter()
        .copied()
        .fold(lane_tree(mx, max_nan), max_nan)
}

/// Combines `N` (a power of two) lane accumulators by a fixed tree, so the result does not
/// depend on how the row was scheduled. `black_box` hides the tree from the loop that filled
/// the lanes: when LLVM's SLP vectoriser sees both, it rebuilds that loop from 2-wide vectors
/// to match the tree's last steps (`vmovsd` loads; a 98K-float sum took 10.6 us instead of 3.7,
/// layer-norm rows of 128 about twice their time), and a sequential fold instead costs `N`
/// dependent adds.
#[inline(always)]
pub(crate) fn lane_tree<T: Copy, const N: usize>(acc: [T; N], op: impl Fn(T, T) -> T) -> T {
    let mut a = std::hint::black_box(acc);
    let mut w = N / 2;
    while w > 0 {
        for k in 0..w {
            a[k] = op(a[k], a[k + w]);
        }
        w /= 2;
    }
    a[0]
}

#[inline(always)]
pub(crate) fn lane_total<T: FloatElement, const N: usize>(acc: [T; N]) -> T {
    lane_tree(acc, |a, b| a + b)
}

/// One softmax row from contiguous `x` into contiguous `out` (same length). The row is read from
/// memory once: the max pass brings it into L1 and the exp pass re-reads it from there (a row of
/// a few thousand floats fits), so an "online" max-and-sum pass would save no memory traffic but
/// would cost a second exp per element. Softmax writes `exp(x - max)` while summing, then scales
/// in place; log-softmax sums without storing and writes `x - max - log(sum)`.
#[inline(always)]
fn softmax_row<T: FloatElement>(x: &[T], out: &mut [T], log: bool) {
    let m = row_max(x);
    let mut acc = [T::ZERO; ROW_LANES];
    let n = x.len() - x.len() % ROW_LANES;
    if log {
        for c in x[..n].chunks_exact(ROW_LANES) {
            for k in 0..ROW_LANES {
                acc[k] = acc[k] + (c[k] - m).fast_exp();
            }
        }
        let mut s = lane_total(acc);
        for &v in &x[n..] {
            s = s + (v - m).fast_exp();
        }
        // (x - max) - log(sum), not x - (max + log(sum)): the sum would round log(sum) to the
        // precision of max's magnitude
        let ls = s.ln();
        for (o, &v) in out.iter_mut().zip(x) {
            *o = (v - m) - ls;
        }
    } else {
        for (c, o) in x[..n]
            .chunks_exact(ROW_LANES)
            .zip(out[..n].chunks_exact_mut(ROW_LANES))
        {
            for k in 0..ROW_LANES {
                let e = (c[k] - m).fast_exp();
                o[k] = e;
                acc[k] = acc[k] + e;
            }
        }
        let mut s = lane_total(acc);
        for (o, &v) in out[n..].iter_mut().zip(&x[n..]) {
            *o = (v - m).fast_exp();
            s = s + *o;
        }
        let inv = T::ONE / s;
        for o in out.iter_mut() {
            *o = *o * inv;
        }
    }
}

/// Softmax or log-softmax along `dim`, max-subtracted so nothing overflows.
pub fn softmax<T: FloatElement>(x: &[T], l: &Layout, dim: usize, log: bool) -> Result<Vec<T>> {
    let shape = l.shape().clone();
    let mut out = alloc_for_overwrite::<T>(if log { "log_softmax" } else { "softmax" }, &shape)?;
    if out.is_empty() {
        return Ok(out);
    }
    let len = shape.dims()[dim];
    let in_stride = l.strides()[dim];
    let out_full = Layout::contiguous(shape.clone());
    let out_stride = out_full.strides()[dim];
    let in_outer = l.select(dim, 0);
    let out_outer = out_full.select(dim, 0);
    let plan = StridedPlan::new([&in_outer, &out_outer]);
    let mut row_offsets = Vec::with_capacity(in_outer.numel());
    plan.for_each_run(0, plan.outer_count(), |[oi, oo], _| {
        for j in 0..plan.inner_len {
            row_offsets.push((
                oi + j * plan.inner_strides[0],
                oo + j * plan.inner_strides[1],
            ));
        }
    });
    // rows per parallel task: enough work (~CHUNK elements) to pay for the hand-off
    let rows_per_task = (super::parallel::CHUNK / len).max(1);
    if out_stride == 1 {
        // the common case (the last dim): output rows are slices, one SIMD dispatch per block of
        // rows; an input row is used in place when contiguous, else gathered first
        let block = |rows: &mut [T], offs: &[(usize, usize)]| {
            let mut src = Vec::new();
            super::simd::dispatch(
                #[inline(always)]
                || {
                    for (o, &(xi, _)) in rows.chunks_exact_mut(len).zip(offs) {
                        if in_stride == 1 {
                            softmax_row(&x[xi..xi + len], o, log);
                        } else {
                            src.clear();
                            src.extend((0..len).map(|i| x[xi + i * in_stride]));
                            softmax_row(&src, o, log);
                        }
                    }
                },
            )
        };
        if go_parallel_rows(shape.numel()) {
            for_each_chunk(&mut out, len * rows_per_task, |c, o| {
                let first = c * rows_per_task;
                block(o, &row_offsets[first..first + o.len() / len]);
            });
        } else {
            block(&mut out, &row_offsets);
        }
        return Ok(out);
    }
    // the output row is strided (softmax over a dim that is not innermost): gather the row, run
    // the same kernel, scatter the result
    let mut src = Vec::with_capacity(len);
    let mut dst = vec![T::ZERO; len];
    for &(xi, oo) in &row_offsets {
        src.clear();
        src.extend((0..len).map(|i| x[xi + i * in_stride]));
        super::simd::dispatch(
            #[inline(always)]
            || softmax_row(&src, &mut dst, log),
        );
        for (i, &v) in dst.iter().enumerate() {
            out[oo + i * out_stride] = v;
        }
    }
    Ok(out)
}

/// One row of softmax's gradient: `y (g - sum(g y))`, or log-softmax's: `g - exp(y) sum(g)`.
/// Both read the row once for the sum (into L1) and once more for the write.
#[inline(always)]
fn softmax_backward_row<T: FloatElement>(g: &[T], y: &[T], out: &mut [T], log: bool) {
    let n = g.len() - g.len() % ROW_LANES;
    let mut acc = [T::ZERO; ROW_LANES];
    if log {
        for c in g[..n].chunks_exact(ROW_LANES) {
            for k in 0..ROW_LANES {
                acc[k] = acc[k] + c[k];
            }
        }
        let s = g[n..].iter().fold(lane_total(acc), |a, &v| a + v);
        for ((o, &gv), &yv) in out.iter_mut().zip(g).zip(y) {
            *o = gv - yv.fast_exp() * s;
        }
    } else {
        for (cg, cy) in g[..n]
            .chunks_exact(ROW_LANES)
            .zip(y[..n].chunks_exact(ROW_LANES))
        {
            for k in 0..ROW_LANES {
                acc[k] = acc[k] + cg[k] * cy[k];
            }
        }
        let dot = g[n..]
            .iter()
            .zip(&y[n..])
            .fold(lane_total(acc), |a, (&gv, &yv)| a + gv * yv);
        for ((o, &gv), &yv) in out.iter_mut().zip(g).zip(y) {
            *o = yv * (gv - dot);
        }
    }
}

/// The gradient of softmax / log-softmax along `dim` (see `softmax_backward_row`), from the
/// upstream gradient `g` and the forward's output `y`, which have the same shape (any strides).
/// The result is C-contiguous.
pub fn softmax_backward<T: FloatElement>(
    g: &[T],
    gl: &Layout,
    y: &[T],
    yl: &Layout,
    dim: usize,
    log: bool,
) -> Result<Vec<T>> {
    let name = if log {
        "log_softmax_backward"
    } else {
        "softmax_backward"
    };
    let shape = gl.shape().clone();
    let mut out = alloc_for_overwrite::<T>(name, &shape)?;
    if out.is_empty() {
        return Ok(out);
    }
    let len = shape.dims()[dim];
    let (gs, ys) = (gl.strides()[dim], yl.strides()[dim]);
    let out_full = Layout::contiguous(shape.clone());
    let os = out_full.strides()[dim];
    let (go, yo, oo) = (
        gl.select(dim, 0),
        yl.select(dim, 0),
        out_full.select(dim, 0),
    );
    let plan = StridedPlan::new([&go, &yo, &oo]);
    let mut rows = Vec::with_capacity(go.numel());
    plan.for_each_run(0, plan.outer_count(), |[a, b, c], _| {
        for j in 0..plan.inner_len {
            rows.push((
                a + j * plan.inner_strides[0],
                b + j * plan.inner_strides[1],
                c + j * plan.inner_strides[2],
            ));
        }
    });
    // a strided row is gathered into a buffer first; a contiguous one is used in place
    let gather = |src: &[T], at: usize, stride: usize, buf: &mut Vec<T>| {
        buf.clear();
        buf.extend((0..len).map(|i| src[at + i * stride]));
    };
    if os == 1 {
        let rows_per_task = (super::parallel::CHUNK / len).max(1);
        let block = |dst: &mut [T], offs: &[(usize, usize, usize)]| {
            let (mut gb, mut yb) = (Vec::new(), Vec::new());
            super::simd::dispatch(
                #[inline(always)]
                || {
                    for (o, &(a, b, _)) in dst.chunks_exact_mut(len).zip(offs) {
                        let gr = if gs == 1 {
                            &g[a..a + len]
                        } else {
                            gather(g, a, gs, &mut gb);
                            &gb[..]
                        };
                        let yr = if ys == 1 {
                            &y[b..b + len]
                        } else {
                            gather(y, b, ys, &mut yb);
                            &yb[..]
                        };
                        softmax_backward_row(gr, yr, o, log);
                    }
                },
            )
        };
        if go_parallel_rows(shape.numel()) {
            for_each_chunk(&mut out, len * rows_per_task, |c, o| {
                let first = c * rows_per_task;
                block(o, &rows[first..first + o.len() / len]);
            });
        } else {
            block(&mut out, &rows);
        }
        return Ok(out);
    }
    // the output row is strided (a dim that is not innermost): gather, compute, scatter
    let (mut gb, mut yb, mut ob) = (Vec::new(), Vec::new(), vec![T::ZERO; len]);
    for &(a, b, c) in &rows {
        gather(g, a, gs, &mut gb);
        gather(y, b, ys, &mut yb);
        super::simd::dispatch(
            #[inline(always)]
            || softmax_backward_row(&gb, &yb, &mut ob, log),
        );
        for (i, &v) in ob.iter().enumerate() {
            out[c + i * os] = v;
        }
    }
    Ok(out)
}
