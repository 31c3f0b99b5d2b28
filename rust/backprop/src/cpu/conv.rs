//! im2col (`unfold`) and col2im (`fold`) on the CPU: the two primitives every convolution and
//! pooling op is composed from (convolution = unfold + GEMM, so it rides the tuned GEMM path).
//! Both run in parallel over the (sample, channel) planes, which never overlap in the output
//! (`parallel::for_each_chunk`: halves on the caller and the awake helper thread with two threads).

use super::buffer::{alloc, alloc_for_overwrite};
use super::elementwise::map1;
use crate::op::Window;
use crate::{Element, Layout, Result, Shape};

/// Flattened contiguous copy of a strided view (no copy is made for contiguous inputs' data).
fn contiguous<'a, T: Element>(x: &'a [T], l: &Layout) -> Result<std::borrow::Cow<'a, [T]>> {
    match l.contiguous_range() {
        Some((a, b)) => Ok(std::borrow::Cow::Borrowed(&x[a..b])),
        None => Ok(std::borrow::Cow::Owned(map1("unfold", x, l, |v| v)?)),
    }
}

/// The output positions `j < len_out` whose input index `j * stride + off` lies in `0..len_in`:
/// a contiguous range, since the index grows with `j`.
fn valid_range(len_out: usize, stride: usize, off: isize, len_in: usize) -> (usize, usize) {
    let lo = if off < 0 {
        ((-off) as usize).div_ceil(stride)
    } else {
        0
    };
    let last = len_in as isize - 1 - off;
    let hi = if last < 0 {
        0
    } else {
        (last as usize / stride + 1).min(len_out)
    };
    (lo.min(hi), hi)
}

/// Per kernel column `kj`: the window columns `c0..c1` whose tap `kj` reads inside an image row
/// of `wd` values, and the image column the first of them reads (0 when none does). The same
/// for every row and plane, so found once: the row loops then need no per-element bounds test.
fn column_spans(w: &Window, ow: usize, wd: usize) -> Vec<(usize, usize, usize)> {
    let (sw, dw, pw) = (w.stride.1, w.dilation.1, w.padding.1 as isize);
    (0..w.kernel.1)
        .map(|kj| {
            let off = (kj * dw) as isize - pw;
            let (c0, c1) = valid_range(ow, sw, off, wd);
            let start = if c0 < c1 {
                (c0 as isize * sw as isize + off) as usize
            } else {
                0
            };
            (c0, c1, start)
        })
        .collect()
}

pub fn unfold<T: Element>(x: &[T], l: &Layout, w: &Window, pad: T) -> Result<Vec<T>> {
    let d = l.dims();
    let (n, c, h, wd) = (d[0], d[1], d[2], d[3]);
    let (oh, ow) = w.out_hw(h, wd).unwrap_or((0, 0));
    let (kh, kw) = w.kernel;
    let cols = oh * ow;
    let shape = Shape::new(vec![n, c * kh * kw, cols]);
    let mut out = alloc_for_overwrite::<T>("unfold", &shape)?;
    if out.is_empty() {
        return Ok(out);
    }
    let src = contiguous(x, l)?;
    let plane = h * wd;
    let per_plane = kh * kw * cols;
    let (sh, sw) = w.stride;
    let ph = w.padding.0 as isize;
    let dh = w.dilation.0;
    let spans = column_spans(w, ow, wd);
    let fill = |p: usize, o: &mut [T]| {
        let xin = &src[p * plane..(p + 1) * plane];
        // compiled for the machine's vector width, the short runs (an output row: 10 columns
        // in LeNet's second conv) copied 8 at a time: a `copy_from_slice` is a memmove call
        // per row, which cost more than the copy
        super::simd::dispatch(
            #[inline(always)]
            || {
                for ki in 0..kh {
                    for (kj, &(c0, c1, start)) in spans.iter().enumerate() {
                        let row = &mut o[(ki * kw + kj) * cols..(ki * kw + kj + 1) * cols];
                        for oi in 0..oh {
                            let hi = (oi * sh + ki * dh) as isize - ph;
                            let seg = &mut row[oi * ow..(oi + 1) * ow];
                            if hi < 0 || hi >= h as isize || c0 == c1 {
                                // a padding row, or no column of this window row lands inside
                                // the input (and `start` would point past the row)
                                seg.iter_mut().for_each(|v| *v = pad);
                                continue;
                            }
                            let xrow = &xin[hi as usize * wd..(hi as usize + 1) * wd];
                            seg[..c0].iter_mut().for_each(|v| *v = pad);
                            seg[c1..].iter_mut().for_each(|v| *v = pad);
                            let seg = &mut seg[c0..c1];
                            if sw == 1 {
                                let xs = &xrow[start..start + seg.len()];
                                let mut d8 = seg.chunks_exact_mut(8);
                                let mut s8 = xs.chunks_exact(8);
                                for (d, s) in (&mut d8).zip(&mut s8) {
                                    d.copy_from_slice(s); // a fixed length: one vector move
                                }
                                for (d, &s) in d8.into_remainder().iter_mut().zip(s8.remainder()) {
                                    *d = s;
                                }
                            } else {
                                for (v, &s) in seg.iter_mut().zip(xrow[start..].iter().step_by(sw))
                                {
                                    *v = s;
                                }
                            }
                        }
                    }
                }
            },
        );
    };
    // split through `for_each_chunk` (its helper thread is awake) rather than rayon, whose
    // sleeping workers cost a wake-up per call inside a training step
    if super::parallel::go_parallel_rows(out.len()) {
        super::parallel::for_each_chunk(&mut out, per_plane, fill);
    } else {
        out.chunks_mut(per_plane)
            .enumerate()
            .for_each(|(p, o)| fill(p, o));
    }
    Ok(out)
}

/// `BackendStorage::pool_argmax` on the CPU: planes in parallel; per window the in-bounds
/// rows and columns are found once per output row / column, so the scan has no bounds test.
pub fn pool_argmax<T: Element>(
    x: &[T],
    l: &Layout,
    w: &Window,
    out_hw: (usize, usize),
) -> Result<Vec<i64>> {
    let d = l.dims();
    let (n, c, h, wd) = (d[0], d[1], d[2], d[3]);
    let (oh, ow) = out_hw;
    let shape = Shape::new(vec![n, c, oh, ow]);
    let mut out = alloc_for_overwrite::<i64>("max_pool2d", &shape)?;
    if out.is_empty() {
        return Ok(out);
    }
    let src = contiguous(x, l)?;
    let plane = h * wd;
    let (kh, kw) = w.kernel;
    let (sh, sw) = w.stride;
    let (dh, dw) = w.dilation;
    let (ph, pw) = (w.padding.0 as isize, w.padding.1 as isize);
    // the kernel taps inside the image for each output row / column: taps k with
    // 0 <= o*s + k*dil - pad < len, a contiguous range of k
    let taps = |o: usize, s: usize, dil: usize, pad: isize, k: usize, len: usize| {
        let base = (o * s) as isize - pad;
        let lo = if base < 0 {
            ((-base) as usize).div_ceil(dil)
        } else {
            0
        };
        let hi = if base >= len as isize {
            0
        } else {
            ((len as isize - 1 - base) as usize / dil + 1).min(k)
        };
        (base, lo.min(hi), hi)
    };
    let rows: Vec<_> = (0..oh).map(|o| taps(o, sh, dh, ph, kh, h)).collect();
    let cols: Vec<_> = (0..ow).map(|o| taps(o, sw, dw, pw, kw, wd)).collect();
    // the output columns whose every tap is inside the image: a contiguous range
    let full = |&(_, c0, c1): &(isize, usize, usize)| c0 == 0 && c1 == kw;
    let j0 = cols.iter().position(full).unwrap_or(ow);
    let j1 = cols.iter().rposition(full).map_or(j0, |j| j + 1);
    let nin = j1 - j0;
    // PyTorch's `val > maxval || isnan(val)` from maxval = -inf at the first in-bounds tap:
    // taking that first tap unconditionally gives the same value and index (a window with no
    // tap inside the image keeps PyTorch's index of its first position). `|`, not `||`: a
    // short-circuit is a branch, and on random data each comparison is a coin toss
    #[allow(clippy::eq_op)] // `v != v`: the NaN test for any Element
    let better = |v: T, b: T| (v > b) | (v != v);
    // Consecutive output rows whose windows cover the same kernel rows (all rows away from the
    // top and bottom padding) form one block, and a block's interior windows are compared as one
    // run of lanes: an output row alone is too short to fill a vector (LeNet's pool has rows of
    // 14 windows, fewer than the 16 float32 lanes of AVX-512, so a per-row loop ran scalar).
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    for oi in 0..oh {
        match blocks.last_mut() {
            Some((_, end)) if (rows[oi - 1].1, rows[oi - 1].2) == (rows[oi].1, rows[oi].2) => {
                *end = oi + 1
            }
            _ => blocks.push((oi, oi + 1)),
        }
    }
    let cb0 = cols.get(j0).map_or(0, |c| c.0);
    // the window (oi, j0)'s kernel position (0, 0), which may lie in the padding, and a tap's
    // offset from it
    let origin = |oi: usize| rows[oi].0 * wd as isize + cb0;
    let tap_off = |ki: usize, kj: usize| (ki * dh * wd + kj * dw) as isize;
    // per block, each interior window's flat index at its first tap, as u32: the lanes carry
    // indices as wide as a float32, so the selects vectorise with the value's, and they are
    // the same for every plane
    if plane > u32::MAX as usize {
        return Err(crate::Error::Unsupported {
            op: "max_pool2d",
            device: crate::Device::Cpu,
            msg: format!("a {h}x{wd} plane has more than 2^32 elements"),
        });
    }
    let lane_at: Vec<Vec<u32>> = blocks
        .iter()
        .map(|&(b0, b1)| {
            let (_, r0, r1) = rows[b0];
            if r0 == r1 {
                return Vec::new(); // no window row inside the image (not a PyTorch window)
            }
            let first = tap_off(r0, 0);
            (b0..b1)
                .flat_map(|oi| (0..nin).map(move |t| (origin(oi) + first) as usize + t * sw))
                .map(|i| i as u32)
                .collect()
        })
        .collect();
    let max_lanes = lane_at.iter().map(Vec::len).max().unwrap_or(0);
    let fill = |p: usize, o: &mut [i64]| {
        let xin = &src[p * plane..(p + 1) * plane];
        // the edge columns one window at a time
        let edges = cols[..j0].iter().enumerate();
        let edges = edges.chain(cols[j1..].iter().enumerate().map(|(t, c)| (j1 + t, c)));
        for (orow, &(rb, r0, r1)) in o.chunks_mut(ow).zip(&rows) {
            let row_at = |ki: usize| (rb + (ki * dh) as isize) as usize * wd;
            for (oj, &(cb, c0, c1)) in edges.clone() {
                let col0 = (cb + (c0 * dw) as isize) as usize;
                let mut best_i = row_at(r0) + col0;
                if r0 < r1 && c0 < c1 {
                    let mut best_v = xin[best_i];
                    let span = (c1 - c0 - 1) * dw + 1;
                    for ki in r0..r1 {
                        let at = row_at(ki) + col0;
                        for (t, &v) in xin[at..at + span].iter().step_by(dw).enumerate() {
                            if better(v, best_v) {
                                best_v = v;
                                best_i = at + t * dw;
                            }
                        }
                    }
                }
                orow[oj] = best_i as i64;
            }
        }
        if nin == 0 {
            return;
        }
        // the interior windows: per tap, every window's value at that tap is copied out
        // (stride `sw`) and compared lane-wise with the best so far
        let mut best = vec![T::ZERO; max_lanes];
        let mut tap = vec![T::ZERO; max_lanes];
        let mut won = vec![0u32; max_lanes];
        for (&(b0, b1), at0) in blocks.iter().zip(&lane_at) {
            let (_, r0, r1) = rows[b0];
            if r0 == r1 {
                continue;
            }
            let lanes = at0.len();
            let (best, tap, won) = (&mut best[..lanes], &mut tap[..lanes], &mut won[..lanes]);
            super::simd::dispatch(
                #[inline(always)]
                || {
                    for ki in r0..r1 {
                        for kj in 0..kw {
                            let first = ki == r0 && kj == 0;
                            let dst: &mut [T] = if first { best } else { tap };
                            for (oi, d) in (b0..b1).zip(dst.chunks_exact_mut(nin)) {
                                let at = (origin(oi) + tap_off(ki, kj)) as usize;
                                gather_strided(d, &xin[at..], sw);
                            }
                            if first {
                                won.copy_from_slice(at0);
                                continue;
                            }
                            let rel = (tap_off(ki, kj) - tap_off(r0, 0)) as u32;
                            let lanes = best.iter_mut().zip(won.iter_mut()).zip(&*tap).zip(at0);
                            for (((b, k), &v), &a) in lanes {
                                let take = better(v, *b);
                                // a mask rather than `if`: LLVM keeps a select it cannot
                                // pair with the value's as a branch
                                let m = u32::from(take).wrapping_neg();
                                *k = (*k & !m) | ((a + rel) & m);
                                *b = if take { v } else { *b };
                            }
                        }
                    }
                    for (oi, ks) in (b0..b1).zip(won.chunks_exact(nin)) {
                        for (y, &k) in o[oi * ow + j0..oi * ow + j1].iter_mut().zip(ks) {
                            *y = i64::from(k);
                        }
                    }
                },
            );
        }
    };
    let per_plane = oh * ow;
    if super::parallel::go_parallel_rows(out.len() * kh * kw) {
        super::parallel::for_each_chunk(&mut out, per_plane, fill);
    } else {
        out.chunks_mut(per_plane)
            .enumerate()
            .for_each(|(p, o)| fill(p, o));
    }
    Ok(out)
}

/// `dst[t] = src[t * step]`, with the common strides 1 and 2 as constants so that the copy
/// vectorises (a memcpy, a de-interleave).
#[inline(always)]
fn gather_strided<T: Copy>(dst: &mut [T], src: &[T], step: usize) {
    match step {
        1 => dst.copy_from_slice(&src[..dst.len()]),
        2 => {
            // whole pairs where the source has them (the last value's partner may lie past the
            // end of the plane), so the loop has no bounds test and becomes a de-interleave
            let whole = dst.len().min(src.len() / 2);
            let pairs = src[..2 * whole].chunks_exact(2);
            for (d, pair) in dst.iter_mut().zip(pairs) {
                *d = pair[0];
            }
            for (t, d) in dst.iter_mut().enumerate().skip(whole) {
                *d = src[2 * t];
            }
        }
        _ => {
            for (d, &v) in dst.iter_mut().zip(src.iter().step_by(step)) {
                *d = v;
            }
        }
    }
}

pub fn fold<T: Element>(
    cols_data: &[T],
    l: &Layout,
    w: &Window,
    out_hw: (usize, usize),
    add: impl Fn(T, T) -> T + Sync,
) -> Result<Vec<T>> {
    let d = l.dims();
    let (kh, kw) = w.kernel;
    let (n, ckk, cols) = (d[0], d[1], d[2]);
    let c = ckk / (kh * kw).max(1);
    let (h, wd) = out_hw;
    let (oh, ow) = w.out_hw(h, wd).unwrap_or((0, 0));
    let shape = Shape::new(vec![n, c, h, wd]);
    let mut out = alloc::<T>("fold", &shape)?;
    if out.is_empty() || cols == 0 {
        return Ok(out);
    }
    let src = contiguous(cols_data, l)?;
    let plane = h * wd;
    let per_plane = kh * kw * cols;
    let (sh, sw) = w.stride;
    let ph = w.padding.0 as isize;
    let dh = w.dilation.0;
    let spans = column_spans(w, ow, wd);
    let acc = |p: usize, o: &mut [T]| {
        let cin = &src[p * per_plane..(p + 1) * per_plane];
        // compiled for the machine's vector width: the runs are short (LeNet's second conv:
        // 10 columns), so they are added 8 at a time, a whole vector, then the rest
        super::simd::dispatch(
            #[inline(always)]
            || {
                for ki in 0..kh {
                    for (kj, &(c0, c1, start)) in spans.iter().enumerate() {
                        if c0 == c1 {
                            continue;
                        }
                        let row = &cin[(ki * kw + kj) * cols..(ki * kw + kj + 1) * cols];
                        for oi in 0..oh {
                            let hi = (oi * sh + ki * dh) as isize - ph;
                            if hi < 0 || hi >= h as isize {
                                continue;
                            }
                            let orow = &mut o[hi as usize * wd..(hi as usize + 1) * wd];
                            let seg = &row[oi * ow + c0..oi * ow + c1];
                            if sw == 1 {
                                let ys = &mut orow[start..start + (c1 - c0)];
                                let mut y8 = ys.chunks_exact_mut(8);
                                let mut v8 = seg.chunks_exact(8);
                                for (y, v) in (&mut y8).zip(&mut v8) {
                                    for k in 0..8 {
                                        y[k] = add(y[k], v[k]);
                                    }
                                }
                                let rest = y8.into_remainder().iter_mut().zip(v8.remainder());
                                for (y, &v) in rest {
                                    *y = add(*y, v);
                                }
                            } else {
                                for (y, &v) in orow[start..].iter_mut().step_by(sw).zip(seg) {
                                    *y = add(*y, v);
                                }
                            }
                        }
                    }
                }
            },
        );
    };
    if super::parallel::go_parallel_rows(src.len()) {
        super::parallel::for_each_chunk(&mut out, plane, acc);
    } else {
        out.chunks_mut(plane)
            .enumerate()
            .for_each(|(p, o)| acc(p, o));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_matches_brute_force() {
        for len_out in 0..7 {
            for stride in 1..4 {
                for off in -6isize..8 {
                    for len_in in 0..9 {
                        let inside: Vec<usize> = (0..len_out)
                            .filter(|&j| {
                                let i = j as isize * stride as isize + off;
                                i >= 0 && i < len_in as isize
                            })
                            .collect();
                        let (c0, c1) = valid_range(len_out, stride, off, len_in);
                        let want = inside
                            .first()
                            .map_or((c0, c0), |&a| (a, inside.last().unwrap() + 1));
                        assert_eq!(
                            (c0, c1),
                            want,
                            "len_out {len_out} stride {stride} off {off} len_in {len_in}"
                        );
                        assert_eq!(c1 - c0, inside.len());
                    }
                }
            }
        }
    }
}
