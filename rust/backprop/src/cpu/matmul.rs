//! Batched matrix multiply on the CPU through the `gemm` crate.
//!
//! `gemm` takes arbitrary row and column strides, so transposed operands (the `A^T B` and `A B^T`
//! of every Linear backward) are multiplied in place without a copy, and it picks AVX-512 / AVX2 /
//! NEON micro-kernels at run time. We only walk the batch dims.

use super::buffer::{alloc, alloc_for_overwrite};
use crate::layout::StridedPlan;
use crate::{Element, Layout, Result, Shape};
use rayon::prelude::*;

/// Output shape `[..batch, m, n]` for `[..batch, m, k] @ [..batch, k, n]`.
pub fn out_shape(l: &Layout, r: &Layout) -> Shape {
    let mut d = l.dims().to_vec();
    let rk = r.rank();
    let last = d.len() - 1;
    d[last] = r.dims()[rk - 1];
    Shape::new(d)
}

/// The batch part of a layout (all dims but the last two), as a layout of its own.
fn batch_layout(l: &Layout) -> Layout {
    let rk = l.rank();
    Layout::new(
        Shape::new(l.dims()[..rk - 2].to_vec()),
        l.strides()[..rk - 2].to_vec(),
        l.offset(),
    )
}

fn batch_offsets(l: &Layout, out_batch: &Layout) -> Vec<(usize, usize)> {
    let bl = batch_layout(l);
    let plan = StridedPlan::new([&bl, out_batch]);
    let mut v = Vec::with_capacity(bl.numel().max(1));
    plan.for_each_run(0, plan.outer_count(), |[a, o], _| {
        for j in 0..plan.inner_len {
            v.push((a + j * plan.inner_strides[0], o + j * plan.inner_strides[1]));
        }
    });
    v
}

/// A multiply-add capable element: floats go to `gemm`, integers to a simple loop.
pub trait MatmulElement: Element {
    /// # Safety
    /// Pointers and strides must describe valid m x k, k x n and m x n matrices; `dst` is
    /// written only, never read, and does not alias the inputs.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut Self,
        drs: isize,
        lhs: *const Self,
        lrs: isize,
        lcs: isize,
        rhs: *const Self,
        rrs: isize,
        rcs: isize,
        threads: bool,
    );
}

macro_rules! float_gemm {
    ($t:ty) => {
        impl MatmulElement for $t {
            unsafe fn gemm(
                m: usize,
                n: usize,
                k: usize,
                dst: *mut $t,
                drs: isize,
                lhs: *const $t,
                lrs: isize,
                lcs: isize,
                rhs: *const $t,
                rrs: isize,
                rcs: isize,
                threads: bool,
            ) {
                let par = if threads {
                    gemm::Parallelism::Rayon(0)
                } else {
                    gemm::Parallelism::None
                };
                // SAFETY: forwarded from the caller's contract.
                unsafe {
                    gemm::gemm(
                        m, n, k, dst, 1, drs, false, lhs, lcs, lrs, rhs, rcs, rrs, 0.0, 1.0, false,
                        false, false, par,
                    );
                }
            }
        }
    };
}
float_gemm!(f32);
float_gemm!(f64);

impl MatmulElement for i64 {
    unsafe fn gemm(
        m: usize,
        n: usize,
        k: usize,
        dst: *mut i64,
        drs: isize,
        lhs: *const i64,
        lrs: isize,
        lcs: isize,
        rhs: *const i64,
        rrs: isize,
        rcs: isize,
        _threads: bool,
    ) {
        for i in 0..m as isize {
            for j in 0..n as isize {
                let mut acc = 0i64;
                for p in 0..k as isize {
                    // SAFETY: indices are within the matrices described by the caller.
                    unsafe {
                        acc = acc.wrapping_add(
                            (*lhs.offset(i * lrs + p * lcs))
                                .wrapping_mul(*rhs.offset(p * rrs + j * rcs)),
                        );
                    }
                }
                // SAFETY: as above.
                unsafe { *dst.offset(i * drs + j) = acc };
            }
        }
    }
}

/// With more than two threads, products above this many multiply-adds (m*n*k) use `gemm`'s own
/// rayon threading. Below it, rayon's workers have gone to sleep between a training step's
/// kernels, and waking them (a futex round trip per fork) cost more than the extra cores gave
/// back: measured on the 2-vCPU VM (MLP 784-256-128-10 step), threading above 2M gave b64 at
/// 0.83 ms, above 32M 0.65 ms.
const GEMM_THREAD_MIN_MNK: f64 = 32.0 * 1024.0 * 1024.0;

/// Products of at least this many multiply-adds are cut in two along their larger output dim,
/// one half on the caller, the other on the spinning helper of `spin.rs` (each a
/// single-threaded `gemm`): no sleeping worker to wake. On two threads this is used at every
/// size above it (it beat `gemm`'s own threading up to sgemm 2048 too: 512 790 -> 733 us,
/// MLP b512 2.53 -> 2.28 ms); with more threads only up to `GEMM_THREAD_MIN_MNK`. Measured
/// (BENCHMARKS.md): sgemm 256 188 -> 98 us, MLP b64 636 -> 528 us, LSTM step 56 -> 30 ms.
const GEMM_SPLIT_MIN_MNK: f64 = 2.0 * 1024.0 * 1024.0;

/// A raw pointer that may cross to the other half's thread (the halves write disjoint rows or
/// columns of `dst` and only read the inputs).
#[derive(Clone, Copy)]
struct Shared<P>(P);
// SAFETY: see the type's doc; `gemm_auto` hands each half a disjoint output block.
unsafe impl<P> Send for Shared<P> {}
// SAFETY: as above.
unsafe impl<P> Sync for Shared<P> {}

/// `dst (m x n, row stride drs) = lhs @ rhs` with the threading the size pays for: one thread
/// below `GEMM_SPLIT_MIN_MNK` (or when `threads` is false: the caller already runs products in
/// parallel), `gemm`'s own threads above `GEMM_THREAD_MIN_MNK` when there are more than two,
/// else two halves (`spin::join`).
///
/// # Safety
/// As `MatmulElement::gemm`.
unsafe fn gemm_auto<T: MatmulElement>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    drs: isize,
    (lhs, lrs, lcs): (*const T, isize, isize),
    (rhs, rrs, rcs): (*const T, isize, isize),
    threads: bool,
) {
    let flops = (m * n * k) as f64;
    let whole = |par: bool| {
        // SAFETY: the caller's contract.
        unsafe { T::gemm(m, n, k, dst, drs, lhs, lrs, lcs, rhs, rrs, rcs, par) }
    };
    if !threads || flops < GEMM_SPLIT_MIN_MNK || super::parallel::threads() < 2 {
        return whole(false);
    }
    if flops > GEMM_THREAD_MIN_MNK && super::parallel::threads() > 2 {
        return whole(true);
    }
    let (d, l, r) = (Shared(dst), Shared(lhs), Shared(rhs));
    if n >= m && n >= 32 {
        // columns [0, h) and [h, n): dst and rhs move along their column strides
        let h = (n / 2).next_multiple_of(16).min(n);
        let left = move || {
            let (d, l, r) = (d, l, r);
            // SAFETY: the left m x h block of dst and rhs's first h columns.
            unsafe { T::gemm(m, h, k, d.0, drs, l.0, lrs, lcs, r.0, rrs, rcs, false) }
        };
        let right = move || {
            let (d, l, r) = (d, l, r);
            // SAFETY: the right m x (n - h) block; offsets stay inside the matrices.
            unsafe {
                T::gemm(
                    m,
                    n - h,
                    k,
                    d.0.add(h),
                    drs,
                    l.0,
                    lrs,
                    lcs,
                    r.0.offset(h as isize * rcs),
                    rrs,
                    rcs,
                    false,
                )
            }
        };
        super::spin::join(left, right);
    } else if m >= 32 {
        let h = (m / 2).next_multiple_of(8).min(m);
        let top = move || {
            let (d, l, r) = (d, l, r);
            // SAFETY: dst's first h rows from lhs's first h rows.
            unsafe { T::gemm(h, n, k, d.0, drs, l.0, lrs, lcs, r.0, rrs, rcs, false) }
        };
        let bottom = move || {
            let (d, l, r) = (d, l, r);
            // SAFETY: the remaining m - h rows.
            unsafe {
                T::gemm(
                    m - h,
                    n,
                    k,
                    d.0.offset(h as isize * drs),
                    drs,
                    l.0.offset(h as isize * lrs),
                    lrs,
                    lcs,
                    r.0,
                    rrs,
                    rcs,
                    false,
                )
            }
        };
        super::spin::join(top, bottom);
    } else {
        whole(false);
    }
}

/// `[..., m, k] @ [..., k, n]` with identical batch dims (possibly stride 0 from broadcasting).
pub fn matmul<T: MatmulElement>(a: &[T], al: &Layout, b: &[T], bl: &Layout) -> Result<Vec<T>> {
    let shape = out_shape(al, bl);
    let rk = al.rank();
    let (m, k, n) = (al.dims()[rk - 2], al.dims()[rk - 1], bl.dims()[rk - 1]);
    if shape.numel() == 0 || k == 0 {
        return alloc::<T>("matmul", &shape); // zeros, as an empty sum should be
    }
    let mut out = alloc_for_overwrite::<T>("matmul", &shape)?;
    let out_batch = batch_layout(&Layout::contiguous(shape.clone()));
    let ab = batch_offsets(al, &out_batch);
    let bb = batch_offsets(bl, &out_batch);
    let (lrs, lcs) = (al.strides()[rk - 2] as isize, al.strides()[rk - 1] as isize);
    let (rrs, rcs) = (bl.strides()[rk - 2] as isize, bl.strides()[rk - 1] as isize);
    let mn = m * n;
    let flops = (m * n * k) as f64;
    let batches = ab.len();
    // Many small products: parallelise over the batch; few large ones: let gemm thread inside.
    let par_batches = batches >= 2 * super::parallel::threads() && flops * batches as f64 > 1e6;
    // `x @ W^T` with few rows and a wide W (a Linear's forward at small batch, an RNN's
    // recurrent step): `gemm` is up to 2x slower on this orientation than on the transposed
    // problem `W @ x^T` (measured: 32x256x1024 198 vs 95 us), so compute that into a scratch
    // block and transpose it into place (m*n moves, small next to the m*n*k product).
    let swap = rrs == 1 && rcs != 1 && m <= 64 && n >= 4 * m && k >= 64 && !par_batches;
    // one scratch block for every batch of the (sequential) swapped path, from the buffer pool
    // without a zeroing pass: gemm overwrites it whole
    let scratch = std::sync::Mutex::new(if swap {
        alloc_for_overwrite::<T>("matmul", &Shape::new(vec![n, m]))?
    } else {
        Vec::new()
    });
    let one = |(oa, ob, dst): (usize, usize, &mut [T])| {
        if swap {
            let mut scratch = scratch.lock().unwrap_or_else(|e| e.into_inner());
            // SAFETY: as below; the transposed problem reads the same matrices with swapped
            // strides and writes the fresh n x m scratch block.
            unsafe {
                gemm_auto(
                    (n, m, k),
                    scratch.as_mut_ptr(),
                    m as isize,
                    (b.as_ptr().add(ob), rcs, rrs),
                    (a.as_ptr().add(oa), lcs, lrs),
                    true,
                );
            }
            for (i, row) in dst.chunks_exact_mut(n).enumerate() {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = scratch[j * m + i];
                }
            }
            return;
        }
        // SAFETY: offsets and strides come from layouts validated against their storages; dst is
        // a fresh m x n block.
        unsafe {
            gemm_auto(
                (m, n, k),
                dst.as_mut_ptr(),
                n as isize,
                (a.as_ptr().add(oa), lrs, lcs),
                (b.as_ptr().add(ob), rrs, rcs),
                !par_batches,
            );
        }
    };
    if par_batches {
        out.par_chunks_mut(mn)
            .zip(ab.par_iter().zip(bb.par_iter()))
            .for_each(|(dst, (&(oa, _), &(ob, _)))| one((oa, ob, dst)));
    } else {
        for (dst, (&(oa, _), &(ob, _))) in out.chunks_mut(mn).zip(ab.iter().zip(bb.iter())) {
            one((oa, ob, dst));
        }
    }
    Ok(out)
}
