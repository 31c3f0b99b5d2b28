//! Elementwise kernels over strided inputs: unary maps, binary ops, comparisons, where, casts and
//! strided copies.
//!
//! Every kernel goes through `map_runs`: the operands' layouts are coalesced into an outer walk
//! and an inner run, and the inner loop is specialised on the inner strides (contiguous, or
//! broadcast with stride 0) so that the common cases (same-shape contiguous, scalar, row or
//! column broadcast) are straight loops the compiler vectorises.

use super::buffer::alloc;
use super::parallel::{go_parallel, CHUNK};
use crate::layout::StridedPlan;
use crate::{Element, Layout, Result};
use rayon::prelude::*;

/// Computes a contiguous output of `layouts[0].numel()` elements, one inner run at a time.
/// `run(offsets, inner_strides, out_run)` fills `out_run` (its length is the run length).
pub fn map_runs<const N: usize, U: Element>(
    op: &'static str,
    layouts: [&Layout; N],
    run: impl Fn([usize; N], [usize; N], &mut [U]) + Sync + Send,
) -> Result<Vec<U>> {
    let shape = layouts[0].shape();
    let mut out = alloc::<U>(op, shape)?;
    let n = out.len();
    if n == 0 {
        return Ok(out);
    }
    let plan = StridedPlan::new(layouts);
    let inner = plan.inner_len;
    let runs = plan.outer_count();
    let strides = plan.inner_strides;
    if !go_parallel(n) {
        plan.for_each_run(0, runs, |offs, r| run(offs, strides, &mut out[r * inner..(r + 1) * inner]));
    } else if runs == 1 {
        // one long run: split it into fixed-size pieces
        out.par_chunks_mut(CHUNK).enumerate().for_each(|(c, piece)| {
            let start = c * CHUNK;
            let offs = std::array::from_fn(|k| plan.offsets[k] + start * strides[k]);
            run(offs, strides, piece);
        });
    } else {
        let runs_per_task = (CHUNK / inner).max(1);
        out.par_chunks_mut(runs_per_task * inner).enumerate().for_each(|(c, piece)| {
            let first = c * runs_per_task;
            let last = (first + piece.len() / inner).min(runs);
            plan.for_each_run(first, last, |offs, r| {
                let local = r - first;
                run(offs, strides, &mut piece[local * inner..(local + 1) * inner]);
            });
        });
    }
    Ok(out)
}

/// `out[i] = f(x[i])` over a strided view.
pub fn map1<T: Element, U: Element>(op: &'static str, x: &[T], l: &Layout, f: impl Fn(T) -> U + Sync + Send) -> Result<Vec<U>> {
    map_runs(op, [l], |[o], [s], out: &mut [U]| {
        let n = out.len();
        if s == 1 {
            for (y, &v) in out.iter_mut().zip(&x[o..o + n]) {
                *y = f(v);
            }
        } else {
            for (j, y) in out.iter_mut().enumerate() {
                *y = f(x[o + j * s]);
            }
        }
    })
}

/// `out[i] = f(a[i], b[i])` over two same-shape strided views.
pub fn map2<T: Element, U: Element>(
    op: &'static str,
    a: &[T],
    al: &Layout,
    b: &[T],
    bl: &Layout,
    f: impl Fn(T, T) -> U + Sync + Send,
) -> Result<Vec<U>> {
    map_runs(op, [al, bl], |[oa, ob], [sa, sb], out: &mut [U]| {
        let n = out.len();
        match (sa, sb) {
            (1, 1) => {
                for ((y, &u), &v) in out.iter_mut().zip(&a[oa..oa + n]).zip(&b[ob..ob + n]) {
                    *y = f(u, v);
                }
            }
            (1, 0) => {
                let v = b[ob];
                for (y, &u) in out.iter_mut().zip(&a[oa..oa + n]) {
                    *y = f(u, v);
                }
            }
            (0, 1) => {
                let u = a[oa];
                for (y, &v) in out.iter_mut().zip(&b[ob..ob + n]) {
                    *y = f(u, v);
                }
            }
            _ => {
                for (j, y) in out.iter_mut().enumerate() {
                    *y = f(a[oa + j * sa], b[ob + j * sb]);
                }
            }
        }
    })
}

/// `out[i] = if c[i] { t[i] } else { f[i] }`.
pub fn select<T: Element>(c: &[u8], cl: &Layout, t: &[T], tl: &Layout, f: &[T], fl: &Layout) -> Result<Vec<T>> {
    map_runs("where", [cl, tl, fl], |[oc, ot, of], [sc, st, sf], out: &mut [T]| {
        for (j, y) in out.iter_mut().enumerate() {
            *y = if c[oc + j * sc] != 0 { t[ot + j * st] } else { f[of + j * sf] };
        }
    })
}

/// Writes `src` viewed by `sl` into `dst` at the positions of `dl` (same shape). Sequential: it
/// serves cat, slice assignment and scatter bases, which are bandwidth-bound copies.
pub fn copy_into<T: Element>(dst: &mut [T], dl: &Layout, src: &[T], sl: &Layout) {
    if dl.numel() == 0 {
        return;
    }
    let plan = StridedPlan::new([dl, sl]);
    let [sd, ss] = plan.inner_strides;
    let n = plan.inner_len;
    plan.for_each_run(0, plan.outer_count(), |[od, os], _| {
        if sd == 1 && ss == 1 {
            dst[od..od + n].copy_from_slice(&src[os..os + n]);
        } else {
            for j in 0..n {
                dst[od + j * sd] = src[os + j * ss];
            }
        }
    });
}
