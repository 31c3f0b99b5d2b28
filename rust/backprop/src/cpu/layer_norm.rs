//! Layer normalisation's row kernels (`Op::LayerNorm`): each row of `len` contiguous elements is
//! normalised to zero mean and unit (biased) variance, and its mean and `1/sqrt(var + eps)` are
//! kept for the backward, which reads the input again instead of the output (as PyTorch's
//! `native_layer_norm` does), so an in-place op on the output does not invalidate it.
//!
//! A row is read four times in the forward (it stays in L1 for any row a model normalises):
//! a first mean `m0`, then the sums of `d = x - m0` and of `d^2`, which correct the mean and give
//! the variance of the shifted data (`mean = m0 + mean(d)`, `var = mean(d^2) - mean(d)^2`), then
//! the write (one reduction per pass). The shift makes the statistics accurate where
//! `sum(x^2) - n m^2` would cancel, and a constant row gets exactly its value as mean and
//! normalises to exactly 0 (the correction is what PyTorch's double accumulation gives there).

use super::buffer::alloc_for_overwrite;
use super::parallel::{for_each_chunk, go_parallel_rows, CHUNK};
use super::reduce::lane_total;
use crate::{Error, FloatElement, Layout, Result, Shape};

/// Independent partial sums per row (two AVX-512 registers of f32; `lane_total` says why its
/// tree does not spoil them).
const LANES: usize = 32;

/// A lane-parallel sum of `f(x[i])` over a row.
#[inline(always)]
fn row_sum_by<T: FloatElement>(x: &[T], f: impl Fn(T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let rem = chunks.remainder();
    for c in chunks {
        for k in 0..LANES {
            acc[k] = acc[k] + f(c[k]);
        }
    }
    rem.iter().fold(lane_total(acc), |a, &v| a + f(v))
}

/// A lane-parallel sum of `f(x[i], y[i])` over two rows of the same length.
#[inline(always)]
fn row_sum2_by<T: FloatElement>(x: &[T], y: &[T], f: impl Fn(T, T) -> T) -> T {
    let mut acc = [T::zero(); LANES];
    let n = x.len() - x.len() % LANES;
    let (xs, ys) = (&x[..n], &y[..n]);
    let mut i = 0;
    while i < n {
        let (cx, cy) = (&xs[i..i + LANES], &ys[i..i + LANES]);
        for k in 0..LANES {
            acc[k] = acc[k] + f(cx[k], cy[k]);
        }
        i += LANES;
    }
    x[n..]
        .iter()
        .zip(&y[n..])
        .fold(lane_total(acc), |a, (&u, &v)| a + f(u, v))
}

/// Normalises the rows of `len` in `x` into `out`, writing each row's mean and rstd. The work is
/// done in phases over the block (every row's first mean, then every row's statistics, then the
/// writes) so that neighbouring rows' reductions, each a chain of dependent steps for a short
/// row, are independent work the processor can overlap. Measured on the 2-vCPU VM it is no
/// faster than row by row at 128 (62.8 vs 62.0 us for 768 rows, before the `lane_tree` fix,
/// which is what brought that to ~28 us); the phases stay because they cost nothing.
#[inline(always)]
fn forward_block<T: FloatElement>(
    x: &[T],
    out: &mut [T],
    means: &mut [T],
    rstds: &mut [T],
    len: usize,
    eps: T,
) {
    let n = T::c(len as f64);
    for (xr, m) in x.chunks_exact(len).zip(means.iter_mut()) {
        *m = row_sum_by(xr, |v| v) / n;
    }
    for ((xr, m), r) in x
        .chunks_exact(len)
        .zip(means.iter_mut())
        .zip(rstds.iter_mut())
    {
        let m0 = *m;
        let c = row_sum_by(xr, |v| v - m0) / n;
        let ss = row_sum_by(xr, |v| (v - m0) * (v - m0)) / n;
        *m = m0 + c;
        // the variance of shifted data cannot go below 0 in exact arithmetic; rounding can
        let var = (ss - c * c).max(T::zero());
        *r = T::one() / (var + eps).sqrt();
    }
    for (((xr, or), &mean), &rstd) in x
        .chunks_exact(len)
        .zip(out.chunks_exact_mut(len))
        .zip(means.iter())
        .zip(rstds.iter())
    {
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = (v - mean) * rstd;
        }
    }
}

/// `dx = rstd (g - mean(g) - xhat mean(g xhat))`, `xhat = (x - mean) rstd`, for a block of rows
/// (the sums of every row first, then the writes, as in `forward_block`).
#[inline(always)]
fn backward_block<T: FloatElement>(
    g: &[T],
    x: &[T],
    means: &[T],
    rstds: &[T],
    out: &mut [T],
    len: usize,
) {
    let inv_n = T::one() / T::c(len as f64);
    let mut sums: Vec<(T, T)> = Vec::with_capacity(means.len());
    for (((gr, xr), &mean), &rstd) in g
        .chunks_exact(len)
        .zip(x.chunks_exact(len))
        .zip(means)
        .zip(rstds)
    {
        let a = row_sum_by(gr, |v| v) * inv_n;
        let b = row_sum2_by(gr, xr, |gv, xv| gv * ((xv - mean) * rstd)) * inv_n;
        sums.push((a, b));
    }
    for (((((gr, xr), &mean), &rstd), or), &(a, b)) in g
        .chunks_exact(len)
        .zip(x.chunks_exact(len))
        .zip(means)
        .zip(rstds)
        .zip(out.chunks_exact_mut(len))
        .zip(&sums)
    {
        for ((o, &gv), &xv) in or.iter_mut().zip(gr).zip(xr) {
            *o = rstd * (gv - a - (xv - mean) * rstd * b);
        }
    }
}

/// The contiguous elements of `l` (an offset is allowed), split into rows of `len`.
fn rows_of<'a, T>(op: &'static str, x: &'a [T], l: &Layout, len: usize) -> Result<&'a [T]> {
    let numel = l.numel();
    if !l.is_contiguous() || len == 0 || numel % len != 0 || l.offset() + numel > x.len() {
        return Err(Error::InvalidShape {
            op,
            shape: l.shape().clone(),
            msg: format!(
                "the layer-norm kernels take a contiguous input of whole rows of {len} elements"
            ),
        });
    }
    Ok(&x[l.offset()..l.offset() + numel])
}

/// Rows per phase of `forward_block` / `backward_block`: 4K elements (16 KB of f32) stay in L1
/// from one phase to the next.
fn rows_per_block(len: usize) -> usize {
    (4096 / len).max(1)
}

/// Rows per parallel task: about `CHUNK` elements, enough to pay for the hand-off.
fn rows_per_task(len: usize) -> usize {
    (CHUNK / len).max(1)
}

/// Normalises every row of `len` elements of the contiguous view `l`: returns the output
/// (C-contiguous, `l`'s shape) and the statistics `[2, rows]` (the means, then the `rstd`s).
pub fn forward<T: FloatElement>(
    x: &[T],
    l: &Layout,
    len: usize,
    eps: f64,
) -> Result<(Vec<T>, Vec<T>)> {
    let op = "layer_norm";
    let x = rows_of(op, x, l, len)?;
    let rows = x.len() / len;
    let mut out = alloc_for_overwrite::<T>(op, l.shape())?;
    let mut stats = alloc_for_overwrite::<T>(op, &Shape::new(vec![2, rows]))?;
    let (means, rstds) = stats.split_at_mut(rows);
    let eps = T::c(eps);
    let block = |xs: &[T], o: &mut [T], m: &mut [T], r: &mut [T]| {
        super::simd::dispatch(
            #[inline(always)]
            || {
                let per = rows_per_block(len);
                for (((xb, ob), mb), rb) in xs
                    .chunks(len * per)
                    .zip(o.chunks_mut(len * per))
                    .zip(m.chunks_mut(per))
                    .zip(r.chunks_mut(per))
                {
                    forward_block(xb, ob, mb, rb, len, eps);
                }
            },
        )
    };
    let per = rows_per_task(len);
    if go_parallel_rows(x.len()) {
        let mut tasks: Vec<_> = x
            .chunks(len * per)
            .zip(out.chunks_mut(len * per))
            .zip(means.chunks_mut(per).zip(rstds.chunks_mut(per)))
            .collect();
        for_each_chunk(&mut tasks, 1, |_, t| {
            for ((xs, o), (m, r)) in t.iter_mut() {
                block(xs, o, m, r);
            }
        });
    } else {
        block(x, &mut out, means, rstds);
    }
    Ok((out, stats))
}

/// The input's gradient from the output's gradient `g`, the input `x` (both contiguous, same
/// shape) and the forward's statistics `[2, rows]` (contiguous); C-contiguous.
pub fn backward<T: FloatElement>(
    g: (&[T], &Layout),
    x: (&[T], &Layout),
    stats: (&[T], &Layout),
    len: usize,
) -> Result<Vec<T>> {
    let op = "layer_norm_backward";
    if g.1.shape() != x.1.shape() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: g.1.shape().clone(),
            rhs: x.1.shape().clone(),
            detail: ": the gradient and the input must have the same shape".into(),
        });
    }
    let gs = rows_of(op, g.0, g.1, len)?;
    let xs = rows_of(op, x.0, x.1, len)?;
    let rows = xs.len() / len;
    let st = rows_of(op, stats.0, stats.1, rows.max(1))?;
    if st.len() != 2 * rows {
        return Err(Error::InvalidShape {
            op,
            shape: stats.1.shape().clone(),
            msg: format!("expected the statistics of {rows} rows, shaped [2, {rows}]"),
        });
    }
    let (means, rstds) = st.split_at(rows);
    let mut out = alloc_for_overwrite::<T>(op, x.1.shape())?;
    let block = |g: &[T], x: &[T], m: &[T], r: &[T], o: &mut [T]| {
        super::simd::dispatch(
            #[inline(always)]
            || {
                let per = rows_per_block(len);
                for ((((gb, xb), mb), rb), ob) in g
                    .chunks(len * per)
                    .zip(x.chunks(len * per))
                    .zip(m.chunks(per))
                    .zip(r.chunks(per))
                    .zip(o.chunks_mut(len * per))
                {
                    backward_block(gb, xb, mb, rb, ob, len);
                }
            },
        )
    };
    let per = rows_per_task(len);
    if go_parallel_rows(xs.len()) {
        let mut tasks: Vec<_> = gs
            .chunks(len * per)
            .zip(xs.chunks(len * per))
            .zip(means.chunks(per).zip(rstds.chunks(per)))
            .zip(out.chunks_mut(len * per))
            .collect();
        for_each_chunk(&mut tasks, 1, |_, t| {
            for (((g, x), (m, r)), o) in t.iter_mut() {
                block(g, x, m, r, o);
            }
        });
    } else {
        block(gs, xs, means, rstds, &mut out);
    }
    Ok(out)
}
