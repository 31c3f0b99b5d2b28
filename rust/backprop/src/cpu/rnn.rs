//! The LSTM cell's pointwise work in one pass (`nn::rnn::lstm_layer` calls it once per step
//! between the recurrent GEMMs), forward and backward. Gate order i, f, g, o as PyTorch's.

use super::buffer::alloc_for_overwrite;
use crate::{FloatElement, Result, Shape};

/// From the pre-activations `pre [b, 4h]` and the previous cell `cp [b, h]` (both contiguous):
/// `(h_new, c_new, act)` with `act = [sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)]`.
pub fn lstm_cell<T: FloatElement>(
    pre: &[T],
    cp: &[T],
    (b, h): (usize, usize),
) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
    let op = "lstm_cell";
    let mut hn = alloc_for_overwrite::<T>(op, &Shape::new(vec![b, h]))?;
    let mut cn = alloc_for_overwrite::<T>(op, &Shape::new(vec![b, h]))?;
    let mut act = alloc_for_overwrite::<T>(op, &Shape::new(vec![b, 4 * h]))?;
    super::simd::dispatch(
        #[inline(always)]
        || {
            for r in 0..b {
                let p = &pre[r * 4 * h..(r + 1) * 4 * h];
                let a = &mut act[r * 4 * h..(r + 1) * 4 * h];
                let (c0, cr, hr) = (
                    &cp[r * h..(r + 1) * h],
                    &mut cn[r * h..(r + 1) * h],
                    &mut hn[r * h..(r + 1) * h],
                );
                // one contiguous map per gate, then the cell and the output: simple loops that
                // vectorise (one interleaved loop over the four gates stayed scalar: ~2x slower)
                for (a, &x) in a[..2 * h].iter_mut().zip(&p[..2 * h]) {
                    *a = x.fast_sigmoid();
                }
                for (a, &x) in a[2 * h..3 * h].iter_mut().zip(&p[2 * h..3 * h]) {
                    *a = x.fast_tanh();
                }
                for (a, &x) in a[3 * h..].iter_mut().zip(&p[3 * h..]) {
                    *a = x.fast_sigmoid();
                }
                let (i, f, g) = (&a[..h], &a[h..2 * h], &a[2 * h..3 * h]);
                for j in 0..h {
                    cr[j] = f[j] * c0[j] + i[j] * g[j];
                }
                let o = &a[3 * h..];
                for j in 0..h {
                    hr[j] = o[j] * cr[j].fast_tanh();
                }
            }
        },
    );
    Ok((hn, cn, act))
}

/// The step's backward: from `act [b, 4h]`, the cell `c` and previous cell `cp` (`[b, h]`) and
/// the gradients `dh`, `dc` reaching `h_new` and `c_new` (`dc` without the part through
/// `h_new`): `(dgates [b, 4h], dc_prev [b, h])`, the gradient of the pre-activations and of
/// the previous cell.
pub fn lstm_cell_backward<T: FloatElement>(
    act: &[T],
    (c, cp): (&[T], &[T]),
    (dh, dc): (&[T], &[T]),
    (b, h): (usize, usize),
) -> Result<(Vec<T>, Vec<T>)> {
    let op = "lstm_cell_backward";
    let mut dg = alloc_for_overwrite::<T>(op, &Shape::new(vec![b, 4 * h]))?;
    let mut dcp = alloc_for_overwrite::<T>(op, &Shape::new(vec![b, h]))?;
    super::simd::dispatch(
        #[inline(always)]
        || {
            for r in 0..b {
                let (a, d) = (
                    &act[r * 4 * h..(r + 1) * 4 * h],
                    &mut dg[r * 4 * h..(r + 1) * 4 * h],
                );
                // every stream sliced to length h first, so the loop has no bounds checks and
                // vectorises
                let (ai, af, ag, ao) = (&a[..h], &a[h..2 * h], &a[2 * h..3 * h], &a[3 * h..4 * h]);
                let (d01, d23) = d.split_at_mut(2 * h);
                let (di, df) = d01.split_at_mut(h);
                let (dgg, dov) = d23.split_at_mut(h);
                let rows = r * h..(r + 1) * h;
                let (cr, cpr) = (&c[rows.clone()], &cp[rows.clone()]);
                let (dhr, dcr) = (&dh[rows.clone()], &dc[rows.clone()]);
                let dcpr = &mut dcp[rows];
                for j in 0..h {
                    let (i, f, g, og) = (ai[j], af[j], ag[j], ao[j]);
                    let tc = cr[j].fast_tanh();
                    let dhj = dhr[j];
                    let dcs = dcr[j] + dhj * og * (T::ONE - tc * tc);
                    di[j] = dcs * g * i * (T::ONE - i);
                    df[j] = dcs * cpr[j] * f * (T::ONE - f);
                    dgg[j] = dcs * i * (T::ONE - g * g);
                    dov[j] = dhj * tc * og * (T::ONE - og);
                    dcpr[j] = dcs * f;
                }
            }
        },
    );
    Ok((dg, dcp))
}
