//! Fused scaled dot-product attention (flash attention) on the CPU.
//!
//! The forward walks the keys in blocks of `BC` for each block of `BR` query rows, keeping per
//! row the running maximum `m`, the running sum `l` of `exp(s - m)` and the unnormalised output;
//! a new block rescales them by `exp(m_old - m_new)` (the online softmax). Only one `BR x BC`
//! block of scores exists at a time, so memory is O(L + S) per head instead of O(L * S). The
//! backward recomputes each block's probabilities from the saved log-sum-exp and forms
//! `dV += P^T dO`, `dS = P (dO V^T - D)`, `dQ += dS K`, `dK += dS^T Q` block by block
//! (FlashAttention-2's order: key blocks outside, so `dK`/`dV` of a block stay in registers and
//! cache). The block products go to `gemm` (single-threaded: the threads split the batch x
//! query blocks, or the batch in the backward).

use super::buffer::{alloc, alloc_for_overwrite};
use super::reduce::{lane_total, row_max, ROW_LANES};
use crate::op::AttentionSpec;
use crate::{Device, Error, FloatElement, Result, Shape};
use rayon::prelude::*;

/// Query rows x keys per block of the forward and of the backward: enough rows for `gemm` to
/// reach its packed kernels, few enough that the score blocks stay in L2 with the q/k/v blocks.
/// Measured on the bench's [1, 8, T, 64] causal rows (2 AVX-512 vCPUs): the forward is fastest
/// at 64 x 256 (0.95x the time of 64 x 128 at T 1024), the backward, with five products per
/// block, at 64 x 64 (64 x 128 and 128 x 64 within noise of it).
const BR: usize = 64;
const BC: usize = 256;
const BWD_BR: usize = 64;
const BWD_BC: usize = 64;

/// Below this many multiply-adds the work stays on the calling thread (fork/join costs more).
const PAR_MIN_MACS: usize = 1 << 21;

/// Extents of one attention problem: `q [b, l, e]`, `k [b, s, e]`, `v [b, s, ev]`.
#[derive(Debug, Clone, Copy)]
pub struct Extents {
    pub b: usize,
    pub l: usize,
    pub s: usize,
    pub e: usize,
    pub ev: usize,
}

/// `dst (m x n, row stride drs) += lhs (m x k) @ rhs (k x n)`, strides in elements.
///
/// # Safety
/// The pointers and strides must describe valid matrices; `dst` must not alias the inputs.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn mm_acc<T: FloatElement>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    drs: isize,
    acc: bool,
    (lhs, lrs, lcs): (*const T, isize, isize),
    (rhs, rrs, rcs): (*const T, isize, isize),
) {
    // SAFETY: forwarded from the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            drs,
            acc,
            lhs,
            lcs,
            lrs,
            rhs,
            rcs,
            rrs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Keys row `i` may attend to among the `nc` keys from `j0`: all of them, or under the causal
/// mask (top-left aligned, as PyTorch's `is_causal`) those with `j <= i`.
#[inline]
fn visible(causal: bool, i: usize, j0: usize, nc: usize) -> usize {
    if causal {
        (i + 1).saturating_sub(j0).min(nc)
    } else {
        nc
    }
}

/// The online-softmax step of one row for one key block: scales the first `vis` scores, folds
/// their maximum into the running max `m`, rescales the running sum `l` and the unnormalised
/// output row `o` by `exp(m_old - m_new)`, and leaves `exp(s - m_new)` in the row (zeros past
/// `vis`) for the `P V` product. Lanes as in the softmax kernel, so it vectorises.
#[inline(always)]
fn online_update<T: FloatElement>(
    row: &mut [T],
    vis: usize,
    scale: T,
    (m, l): (&mut T, &mut T),
    o: &mut [T],
) {
    if vis == 0 {
        row.fill(T::ZERO);
        return;
    }
    for sv in row[..vis].iter_mut() {
        *sv = *sv * scale;
    }
    let mx = row_max(&row[..vis]);
    let m_new = if *m > mx { *m } else { mx };
    // a row whose scores so far are all -inf keeps m = -inf: nothing to rescale
    let corr = if *m == T::neg_infinity() {
        T::ZERO
    } else {
        (*m - m_new).fast_exp()
    };
    let mut acc = [T::ZERO; ROW_LANES];
    let n = vis - vis % ROW_LANES;
    for c in row[..n].chunks_exact_mut(ROW_LANES) {
        for k in 0..ROW_LANES {
            c[k] = (c[k] - m_new).fast_exp();
            acc[k] = acc[k] + c[k];
        }
    }
    let mut sum = lane_total(acc);
    for sv in row[n..vis].iter_mut() {
        *sv = (*sv - m_new).fast_exp();
        sum = sum + *sv;
    }
    row[vis..].fill(T::ZERO);
    *l = *l * corr + sum;
    *m = m_new;
    if corr != T::ONE {
        for v in o.iter_mut() {
            *v = *v * corr;
        }
    }
}

/// One block of query rows `i0..i0 + nr` of one batch: writes `out` (`nr x ev`) and `lse` (`nr`).
#[allow(clippy::too_many_arguments)]
fn forward_block<T: FloatElement>(
    q: &[T],
    k: &[T],
    v: &[T],
    x: Extents,
    spec: AttentionSpec,
    i0: usize,
    out: &mut [T],
    lse: &mut [T],
) {
    let nr = lse.len();
    let scale = T::c(spec.scale);
    let mut m = vec![T::neg_infinity(); nr];
    let mut l = vec![T::ZERO; nr];
    // the unnormalised output accumulates in `out` itself
    out.fill(T::ZERO);
    let mut s = vec![T::ZERO; nr * BC];
    let kend = if spec.causal { x.s.min(i0 + nr) } else { x.s };
    for j0 in (0..kend).step_by(BC) {
        let nc = BC.min(kend - j0);
        // SAFETY: q rows i0.. (nr x e, row stride e), k rows j0.. read transposed (e x nc),
        // s is a fresh nr x nc block.
        unsafe {
            mm_acc(
                (nr, nc, x.e),
                s.as_mut_ptr(),
                nc as isize,
                false,
                (q[i0 * x.e..].as_ptr(), x.e as isize, 1),
                (k[j0 * x.e..].as_ptr(), 1, x.e as isize),
            );
        }
        // the softmax update of every row, compiled for the CPU's SIMD level
        super::simd::dispatch(
            #[inline(always)]
            || {
                for r in 0..nr {
                    let vis = visible(spec.causal, i0 + r, j0, nc);
                    let row = &mut s[r * nc..(r + 1) * nc];
                    let o = &mut out[r * x.ev..(r + 1) * x.ev];
                    online_update(row, vis, scale, (&mut m[r], &mut l[r]), o);
                }
            },
        );
        // SAFETY: s is nr x nc, v rows j0.. are nc x ev, out is nr x ev; all disjoint.
        unsafe {
            mm_acc(
                (nr, x.ev, nc),
                out.as_mut_ptr(),
                x.ev as isize,
                true,
                (s.as_ptr(), nc as isize, 1),
                (v[j0 * x.ev..].as_ptr(), x.ev as isize, 1),
            );
        }
    }
    for r in 0..nr {
        let inv = T::ONE / l[r];
        for o in out[r * x.ev..(r + 1) * x.ev].iter_mut() {
            *o = *o * inv;
        }
        lse[r] = m[r] + l[r].ln();
    }
}

/// The forward: `(out [b, l, ev], lse [b, l])` from contiguous `q`, `k`, `v` (already sliced to
/// their first element). Every row must see at least one key (`s > 0`): the caller routes empty
/// problems elsewhere.
pub fn forward<T: FloatElement>(
    q: &[T],
    k: &[T],
    v: &[T],
    x: Extents,
    spec: AttentionSpec,
) -> Result<(Vec<T>, Vec<T>)> {
    let op = "scaled_dot_product_attention";
    degenerate(op, x)?;
    let mut out = alloc_for_overwrite::<T>(op, &Shape::new(vec![x.b, x.l, x.ev]))?;
    let mut lse = alloc_for_overwrite::<T>(op, &Shape::new(vec![x.b, x.l]))?;
    if out.is_empty() || lse.is_empty() {
        return Ok((out, lse));
    }
    let (qb, kb, vb) = (x.l * x.e, x.s * x.e, x.s * x.ev);
    let task = |(t, (o, ls)): (usize, (&mut [T], &mut [T]))| {
        let blocks = x.l.div_ceil(BR);
        let (b, blk) = (t / blocks, t % blocks);
        forward_block(
            &q[b * qb..(b + 1) * qb],
            &k[b * kb..(b + 1) * kb],
            &v[b * vb..(b + 1) * vb],
            x,
            spec,
            blk * BR,
            o,
            ls,
        );
    };
    // one task per (batch, query block); blocks never straddle two batches
    let mut chunks: Vec<(&mut [T], &mut [T])> = Vec::with_capacity(x.b * x.l.div_ceil(BR));
    for (ob, lb) in out.chunks_mut(x.l * x.ev).zip(lse.chunks_mut(x.l)) {
        chunks.extend(ob.chunks_mut(BR * x.ev).zip(lb.chunks_mut(BR)));
    }
    let macs = x.b * x.l * x.s * (x.e + x.ev);
    if macs >= PAR_MIN_MACS && chunks.len() > 1 {
        chunks.into_par_iter().enumerate().for_each(task);
    } else {
        chunks.into_iter().enumerate().for_each(task);
    }
    Ok((out, lse))
}

/// The kernels need at least one key and non-empty head dims (`Tensor::attention` composes the
/// other cases from matmul and softmax); empty batches or queries are fine.
fn degenerate(op: &'static str, x: Extents) -> Result<()> {
    if x.s == 0 || x.e == 0 || x.ev == 0 {
        return Err(Error::Unsupported {
            op,
            device: Device::Cpu,
            msg: format!("the fused kernel needs keys and head dims; got {x:?}"),
        });
    }
    Ok(())
}

/// Scratch blocks of one backward task.
struct Scratch<T> {
    p: Vec<T>,
    ds: Vec<T>,
}

/// The backward of one batch: `dq` (`l x e`), `dk` (`s x e`), `dv` (`s x ev`), given `g` (the
/// output's gradient, `l x ev`) and `lse`, `d = rowsum(g * out)` (`l` each).
#[allow(clippy::too_many_arguments)]
fn backward_batch<T: FloatElement>(
    (q, k, v, g): (&[T], &[T], &[T], &[T]),
    (lse, d): (&[T], &[T]),
    x: Extents,
    spec: AttentionSpec,
    dq: &mut [T],
    dk: &mut [T],
    dv: &mut [T],
) {
    let scale = T::c(spec.scale);
    let mut sc = Scratch {
        p: vec![T::ZERO; BWD_BR * BWD_BC],
        ds: vec![T::ZERO; BWD_BR * BWD_BC],
    };
    dq.fill(T::ZERO);
    for j0 in (0..x.s).step_by(BWD_BC) {
        let nc = BWD_BC.min(x.s - j0);
        let dkb = &mut dk[j0 * x.e..(j0 + nc) * x.e];
        let dvb = &mut dv[j0 * x.ev..(j0 + nc) * x.ev];
        dkb.fill(T::ZERO);
        dvb.fill(T::ZERO);
        // causal: rows before j0 see none of these keys
        let first = if spec.causal { j0 / BWD_BR * BWD_BR } else { 0 };
        for i0 in (first..x.l).step_by(BWD_BR) {
            let nr = BWD_BR.min(x.l - i0);
            let (p, ds) = (&mut sc.p[..nr * nc], &mut sc.ds[..nr * nc]);
            // SAFETY (all products below): row-major blocks inside their slices, with the
            // strides given; destinations are distinct scratch or output blocks.
            unsafe {
                mm_acc(
                    (nr, nc, x.e),
                    p.as_mut_ptr(),
                    nc as isize,
                    false,
                    (q[i0 * x.e..].as_ptr(), x.e as isize, 1),
                    (k[j0 * x.e..].as_ptr(), 1, x.e as isize),
                );
                // dP = dO V^T into ds
                mm_acc(
                    (nr, nc, x.ev),
                    ds.as_mut_ptr(),
                    nc as isize,
                    false,
                    (g[i0 * x.ev..].as_ptr(), x.ev as isize, 1),
                    (v[j0 * x.ev..].as_ptr(), 1, x.ev as isize),
                );
            }
            super::simd::dispatch(
                #[inline(always)]
                || {
                    for r in 0..nr {
                        let i = i0 + r;
                        let vis = visible(spec.causal, i, j0, nc);
                        let pr = &mut p[r * nc..(r + 1) * nc];
                        let dr = &mut ds[r * nc..(r + 1) * nc];
                        let (li, di) = (lse[i], d[i]);
                        for (pv, dv) in pr[..vis].iter_mut().zip(dr[..vis].iter_mut()) {
                            *pv = (*pv * scale - li).fast_exp();
                            // the scale of s = q k^T * scale goes into dS once, for dQ and dK
                            *dv = *pv * (*dv - di) * scale;
                        }
                        pr[vis..].fill(T::ZERO);
                        dr[vis..].fill(T::ZERO);
                    }
                },
            );
            unsafe {
                // dV += P^T dO
                mm_acc(
                    (nc, x.ev, nr),
                    dvb.as_mut_ptr(),
                    x.ev as isize,
                    true,
                    (p.as_ptr(), 1, nc as isize),
                    (g[i0 * x.ev..].as_ptr(), x.ev as isize, 1),
                );
                // dK += dS^T Q
                mm_acc(
                    (nc, x.e, nr),
                    dkb.as_mut_ptr(),
                    x.e as isize,
                    true,
                    (ds.as_ptr(), 1, nc as isize),
                    (q[i0 * x.e..].as_ptr(), x.e as isize, 1),
                );
                // dQ += dS K
                mm_acc(
                    (nr, x.e, nc),
                    dq[i0 * x.e..].as_mut_ptr(),
                    x.e as isize,
                    true,
                    (ds.as_ptr(), nc as isize, 1),
                    (k[j0 * x.e..].as_ptr(), x.e as isize, 1),
                );
            }
        }
    }
}

/// The backward: `(dq, dk, dv)` from contiguous `q`, `k`, `v`, the output's gradient `g`
/// (`[b, l, ev]`) and `stats` (`[2, b, l]`: the forward's log-sum-exp, then `rowsum(g * out)`).
pub fn backward<T: FloatElement>(
    (q, k, v, g): (&[T], &[T], &[T], &[T]),
    stats: &[T],
    x: Extents,
    spec: AttentionSpec,
) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
    let op = "scaled_dot_product_attention_backward";
    degenerate(op, x)?;
    let mut dq = alloc::<T>(op, &Shape::new(vec![x.b, x.l, x.e]))?;
    let mut dk = alloc::<T>(op, &Shape::new(vec![x.b, x.s, x.e]))?;
    let mut dv = alloc::<T>(op, &Shape::new(vec![x.b, x.s, x.ev]))?;
    if x.b * x.l * x.s == 0 {
        return Ok((dq, dk, dv));
    }
    let rows = x.b * x.l;
    let (lse, d) = stats.split_at(rows);
    let (qb, kb, vb, gb) = (x.l * x.e, x.s * x.e, x.s * x.ev, x.l * x.ev);
    type Grads<'a, T> = ((&'a mut [T], &'a mut [T]), &'a mut [T]);
    let task = |(b, ((dqb, dkb), dvb)): (usize, Grads<'_, T>)| {
        backward_batch(
            (
                &q[b * qb..(b + 1) * qb],
                &k[b * kb..(b + 1) * kb],
                &v[b * vb..(b + 1) * vb],
                &g[b * gb..(b + 1) * gb],
            ),
            (&lse[b * x.l..(b + 1) * x.l], &d[b * x.l..(b + 1) * x.l]),
            x,
            spec,
            dqb,
            dkb,
            dvb,
        )
    };
    let macs = x.b * x.l * x.s * (x.e + x.ev);
    let it = dq
        .chunks_mut(qb)
        .zip(dk.chunks_mut(kb))
        .zip(dv.chunks_mut(vb));
    if macs >= PAR_MIN_MACS && x.b > 1 {
        it.collect::<Vec<_>>()
            .into_par_iter()
            .enumerate()
            .for_each(task);
    } else {
        it.enumerate().for_each(task);
    }
    Ok((dq, dk, dv))
}
