//! Reductions (sum/max/min over any set of dims), arg-reductions and softmax.
//!
//! Sums are blocked and pairwise: a contiguous run is cut into fixed-size blocks, each summed with
//! 8 independent accumulators (which also vectorises), and block sums are combined pairwise. Error
//! grows like O(log n) instead of O(n), and because the blocking depends only on sizes the result
//! is the same bits with 1 thread or 64.

use super::buffer::{alloc, alloc_for_overwrite};
use super::elementwise::map1;
use super::math::{max_nan, min_nan};
use super::parallel::{go_parallel, REDUCE_BLOCK};
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

/// Sum of a contiguous float slice: 8 lanes per block of up to 256, then pairwise over blocks.
pub fn pairwise_sum<T: FloatElement>(x: &[T]) -> T {
    const LEAF: usize = 256;
    if x.len() <= LEAF {
        let mut acc = [T::ZERO; 8];
        let chunks = x.chunks_exact(8);
        let rem = chunks.remainder();
        for c in chunks {
            for k in 0..8 {
                acc[k] = acc[k] + c[k];
            }
        }
        let mut s =
            ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for &v in rem {
            s = s + v;
        }
        return s;
    }
    // split on a multiple of LEAF so the tree shape depends only on the length
    let half = (x.len() / 2).div_ceil(LEAF) * LEAF;
    pairwise_sum(&x[..half]) + pairwise_sum(&x[half..])
}

/// Integer sums wrap (no panic on overflow); their order does not matter for the result.
pub fn int_sum(x: &[i64]) -> i64 {
    x.iter().fold(0i64, |a, &b| a.wrapping_add(b))
}

fn reduce_contig<T: Element>(x: &[T], op: ReduceOp, sum: fn(&[T]) -> T, add: fn(T, T) -> T) -> T {
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
    sum: fn(&[T]) -> T,
    add: fn(T, T) -> T,
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

    // Case 2: the kept dims form a contiguous run (e.g. summing over the batch dim of [B, N]):
    // accumulate whole rows, in blocks of rows for accuracy.
    if kept_layout.is_contiguous() && op == ReduceOp::Sum {
        let rows = StridedPlan::new([&red_layout]);
        let mut offsets = Vec::with_capacity(red_n);
        rows.for_each_run(0, rows.outer_count(), |[o], _| {
            for j in 0..rows.inner_len {
                offsets.push(o + j * rows.inner_strides[0]);
            }
        });
        let base = l.offset();
        const ROW_BLOCK: usize = 64;
        let accumulate = |out: &mut [T], col0: usize| {
            let w = out.len();
            let mut block = vec![T::ZERO; w];
            for rows in offsets.chunks(ROW_BLOCK) {
                for v in block.iter_mut() {
                    *v = T::ZERO;
                }
                for &ro in rows {
                    let row = &x[base + ro + col0..base + ro + col0 + w];
                    for (b, &v) in block.iter_mut().zip(row) {
                        *b = add(*b, v);
                    }
                }
                for (o, &b) in out.iter_mut().zip(&block) {
                    *o = add(*o, b);
                }
            }
        };
        if go_parallel(n_out * red_n) && n_out >= 256 {
            out.par_chunks_mut(256)
                .enumerate()
                .for_each(|(c, piece)| accumulate(piece, c * 256));
        } else {
            accumulate(&mut out, 0);
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
        |[o], [s], out: &mut [i64]| {
            for (j, y) in out.iter_mut().enumerate() {
                let base = o + j * s;
                let mut best = x[base];
                let mut bi = 0usize;
                #[allow(clippy::eq_op)]
                for i in 1..len {
                    let v = x[base + i * stride];
                    if best != best {
                        break;
                    }
                    let better = match op {
                        ArgReduceOp::ArgMax => v > best || v != v,
                        ArgReduceOp::ArgMin => v < best || v != v,
                    };
                    if better {
                        best = v;
                        bi = i;
                    }
                }
                *y = bi as i64;
            }
        },
    )
}

/// Strides of a keepdim output viewed over the input: the selected-away dim gets stride 0.
fn outer_strides(outer: &Layout, dim: usize) -> Vec<usize> {
    let mut s = outer.strides().to_vec();
    s.insert(dim, 0);
    s
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
    let row = |xin: usize, dst: &mut dyn FnMut(usize, T), tmp: &mut Vec<T>| {
        tmp.clear();
        if in_stride == 1 {
            tmp.extend_from_slice(&x[xin..xin + len]);
        } else {
            tmp.extend((0..len).map(|i| x[xin + i * in_stride]));
        }
        // the three passes over the row run inside the SIMD dispatcher so that the max, the
        // polynomial exp and the sum are vectorised for the CPU at hand
        let s = crate::cpu::simd::dispatch(
            #[inline(always)]
            || {
                // eight independent lanes for the max and the sum: a single accumulator is a
                // dependency chain the compiler may not reorder (float max/add are not associative)
                let mut mx = [T::neg_infinity(); 8];
                let mut chunks = tmp.chunks_exact(8);
                for c in &mut chunks {
                    for k in 0..8 {
                        mx[k] = max_nan(mx[k], c[k]);
                    }
                }
                // a row of all -inf: softmax is NaN in PyTorch too; the max follows suit
                let m = chunks
                    .remainder()
                    .iter()
                    .copied()
                    .fold(mx.into_iter().fold(T::neg_infinity(), max_nan), max_nan);
                let mut acc = [T::ZERO; 8];
                let mut chunks = tmp.chunks_exact_mut(8);
                for c in &mut chunks {
                    for k in 0..8 {
                        let e = (c[k] - m).fast_exp();
                        c[k] = e;
                        acc[k] = acc[k] + e;
                    }
                }
                let mut s = ((acc[0] + acc[1]) + (acc[2] + acc[3]))
                    + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
                for v in chunks.into_remainder() {
                    *v = (*v - m).fast_exp();
                    s = s + *v;
                }
                (m, s)
            },
        );
        let (m, s) = s;
        if log {
            let ls = s.ln();
            for i in 0..len {
                dst(i, x[xin + i * in_stride] - m - ls);
            }
        } else {
            let inv = T::ONE / s;
            for (i, &e) in tmp.iter().enumerate() {
                dst(i, e * inv);
            }
        }
    };
    if out_stride == 1 && go_parallel(shape.numel()) {
        // rows are contiguous in the output: one row per parallel item
        out.par_chunks_mut(len)
            .zip(row_offsets.par_iter())
            .for_each_init(Vec::new, |tmp, (o, &(xi, _))| {
                row(xi, &mut |i, v| o[i] = v, tmp);
            });
    } else {
        let mut tmp = Vec::with_capacity(len);
        for &(xi, oo) in &row_offsets {
            row(xi, &mut |i, v| out[oo + i * out_stride] = v, &mut tmp);
        }
    }
    Ok(out)
}
