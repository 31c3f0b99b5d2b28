//! Vectorisable float32 transcendental functions.
//!
//! libm's `expf`/`tanhf` are scalar calls the compiler cannot vectorise; these are branch-free
//! (selects instead of branches, integer bit tricks instead of `ldexp`) so that a loop over them
//! vectorises under `simd::dispatch`. Coefficients are Cephes' minimax polynomials; the tests
//! check every function against f64 libm over wide ranges, extremes, NaN, inf and denormals.

/// `exp(x)`, within ~2 ulp, with exact overflow to inf, underflow through the denormals to 0.
#[inline(always)]
#[allow(clippy::excessive_precision)] // minimax coefficients, written as computed
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part with few mantissa bits (n * LN2_HI is exact) and the rest
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // beyond these the result is inf / rounds to 0; clamping keeps the integer part in range.
    // (max/min rather than clamp: NaN becomes a finite number here and is restored at the end,
    // so no NaN reaches the integer arithmetic.)
    #[allow(clippy::manual_clamp)] // clamp would keep NaN; max/min turn it finite (see above)
    let xc = x.max(-104.0).min(89.0);
    // round to nearest with the 1.5 * 2^23 trick: after adding MAGIC the integer n sits in the
    // low mantissa bits, so it can be read off the bit pattern (no float-to-int conversion,
    // which would stop the loop from vectorising)
    const MAGIC: f32 = 12_582_912.0;
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let z = r * r;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1)
        * z
        + r
        + 1.0;
    // 2^n as two factors so that n down to -150 (denormal results) stays representable
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = p * s1 * s2;
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `expm1(x) = exp(x) - 1`, accurate near 0: with `x = n ln2 + r`, it is
/// `2^n * expm1(r) + (2^n - 1)`, and `expm1(r)` is a Taylor polynomial that starts at `r` (so
/// nothing cancels when n = 0).
#[inline(always)]
pub fn expm1_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const MAGIC: f32 = 12_582_912.0;
    #[allow(clippy::manual_clamp)] // clamp would keep NaN; max/min turn it finite (see above)
    let xc = x.max(-104.0).min(89.0);
    let t = xc * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let q = ((((((1.0 / 40320.0 * r + 1.0 / 5040.0) * r + 1.0 / 720.0) * r + 1.0 / 120.0) * r
        + 1.0 / 24.0)
        * r
        + 1.0 / 6.0)
        * r)
        + 0.5;
    let p = r + r * r * q;
    let ni = (t.to_bits() as i32).wrapping_sub(0x4B40_0000);
    let n1 = ni >> 1;
    let n2 = ni - n1;
    let s1 = f32::from_bits(((n1 + 127) as u32) << 23);
    let s2 = f32::from_bits(((n2 + 127) as u32) << 23);
    let y = p * s1 * s2 + (s1 * s2 - 1.0);
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `tanh(x) = sign(x) * e / (e + 2)` with `e = expm1(2|x|)`: one formula, accurate from the
/// denormals (where it returns x) to saturation, with no branch to keep the loop from
/// vectorising (a polynomial/exponential split ran ~2x slower).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let e = expm1_f32(2.0 * x.abs().min(20.0));
    let r = e / (e + 2.0);
    let y = f32::from_bits(r.to_bits() | (x.to_bits() & 0x8000_0000));
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `1 / (1 + exp(-x))`, from `e = exp(-|x|)` so that nothing overflows: `1/(1+e)` for x >= 0,
/// `e/(1+e)` below (which keeps full relative precision deep into the denormals).
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let e = exp_f32(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else if x.is_nan() {
        x
    } else {
        e * s
    }
}

/// `exp(-z*z)` without the error of rounding `z*z` (~16 ulp at z = 4): z is split into a
/// 12-bit head, whose square is exact, and a tail, as fdlibm's erfc does.
#[inline(always)]
fn exp_neg_sq(z: f32) -> f32 {
    let zh = f32::from_bits(z.to_bits() & 0xffff_f000);
    exp_f32(-zh * zh) * exp_f32((zh - z) * (zh + z))
}

/// `erfc(z)` for z >= 1 as `exp(-z^2) * R(1/z)`: R (the scaled complementary error function) is
/// smooth and slowly varying there, so a polynomial in 1/z fits it to 2e-8 relative on [1, 10];
/// beyond 10, erfc underflows f32 anyway.
#[inline(always)]
fn erfc_tail(z: f32) -> f32 {
    erfcx_poly(1.0 / z) * exp_neg_sq(z)
}

/// The scaled complementary error function `exp(z^2) erfc(z)` for z in [1, 10], as a
/// polynomial in `s = (1/z - 0.55) / 0.45` (which spans [-1, 1], keeping the coefficients small
/// and the f32 evaluation well conditioned). Least-squares fit against mpmath: 1.5e-8 relative;
/// evaluated in f32 it is good to ~4e-7.
#[inline(always)]
fn erfcx_poly(w: f32) -> f32 {
    const R: [f32; 12] = [
        -3.911_338_3e-7,
        -1.724_642e-5,
        4.844_397_5e-5,
        -3.105_412_7e-5,
        -9.649_616e-5,
        4.719_339e-4,
        -1.278_765_1e-3,
        1.844_330_4e-3,
        3.073_116_5e-3,
        -3.670_006_3e-2,
        1.839_753_8e-1,
        2.762_943_8e-1,
    ];
    let s = (w - 0.55) * (1.0 / 0.45);
    // Horner, written out: a loop here would be an inner loop and stop vectorisation
    let r = ((((R[0] * s + R[1]) * s + R[2]) * s + R[3]) * s + R[4]) * s + R[5];
    let r = ((((r * s + R[6]) * s + R[7]) * s + R[8]) * s + R[9]) * s + R[10];
    r * s + R[11]
}

/// `erf(x)` on |x| < 1: `x * P(x^2)` (1.2e-9 relative fit).
#[inline(always)]
fn erf_small(x: f32) -> f32 {
    let t = x * x;
    // x * (2/sqrt(pi) + t*Q(t)) written as x + x*(0.128... + t*Q(t)): the leading 1 is exact,
    // which saves the half ulp that rounding 2/sqrt(pi) itself would cost
    let q = (((((7.847_266e-5 * t - 8.008_197e-4) * t + 5.188_100_6e-3) * t - 2.685_369_3e-2) * t
        + 1.128_358_2e-1)
        * t
        - 3.761_262_6e-1)
        * t
        + 0.128_379_17;
    x + x * q
}

/// `erf(x)`: [`erf_small`] on |x| < 1, `1 - erfc(|x|)` above.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    let a = x.abs();
    let big = (1.0 - erfc_tail(a.clamp(1.0, 10.0))).copysign(x);
    // selects, not an `else if` chain: a chain stays scalar (see `sel`)
    sel(a < 1.0, erf_small(x), sel(x.is_nan(), x, big))
}

/// The standard normal CDF `Phi(x) = erfc(-x/sqrt 2) / 2`. One tail evaluation serves both
/// sides (`Phi(-|x|)` directly, `1 - Phi(-|x|)` for x > 0), so the negative tail keeps full
/// relative precision where `1 + erf` would cancel to nothing, and GELU and its derivative pay
/// for one erfc, not the two that `erf` on each branch cost.
#[inline(always)]
pub fn normal_cdf_f32(x: f32) -> f32 {
    use std::f32::consts::{FRAC_1_SQRT_2, SQRT_2};
    let core = 0.5 + 0.5 * erf_small(x * FRAC_1_SQRT_2);
    // exp(-x^2/2) from x itself, split into an exactly-squaring head and a tail: rounding
    // z = x/sqrt(2) first would cost 2 z^2 ulp (~1e-5 at x = -12)
    let a = x.abs().clamp(SQRT_2, 10.0 * SQRT_2);
    let ah = f32::from_bits(a.to_bits() & 0xffff_f000);
    let e = exp_f32(-0.5 * ah * ah) * exp_f32(0.5 * (ah - a) * (ah + a));
    let lower = 0.5 * erfcx_poly(SQRT_2 / a) * e; // Phi(-|x|)
                                                  // erfc(10) underflows f32: Phi is 0 beyond; NaN falls through to `1 - lower` (NaN)
    let tail = sel(x < 0.0, sel(x < -10.0 * SQRT_2, 0.0, lower), 1.0 - lower);
    sel(x.abs() < SQRT_2, core, tail)
}

/// Exact GELU `x * Phi(x)` (PyTorch's default). Past x = -10 sqrt 2 it is -0, and -inf gives
/// NaN, as PyTorch's formula does.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    x * normal_cdf_f32(x)
}

/// `log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`, with `log1p(u) = log(v) - (v - 1 - u) / v`
/// for `v = 1 + u` (the second term restores what rounding v lost; when 1 + u rounds to 1 it
/// gives u itself).
#[inline(always)]
pub fn softplus_f32(x: f32) -> f32 {
    let u = exp_f32(-x.abs());
    let v = 1.0 + u;
    let l1p = log_f32(v) - ((v - 1.0) - u) / v;
    let r = x.max(0.0) + l1p;
    if x.is_nan() {
        x
    } else {
        r
    }
}

/// `if c { a } else { b }` as one select: every branch in these functions is written through
/// this, so each is a single diamond that the vectoriser if-converts even when several of the
/// functions are inlined into one loop (chains of `else if` were left scalar).
#[inline(always)]
fn sel(c: bool, a: f32, b: f32) -> f32 {
    if c {
        a
    } else {
        b
    }
}

/// Natural logarithm: NaN below 0, -inf at 0, denormal inputs handled.
#[inline(always)]
pub fn log_f32(x: f32) -> f32 {
    const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    // lift denormals into the normal range first
    let tiny = x < f32::MIN_POSITIVE;
    let xs = x * sel(tiny, 8_388_608.0, 1.0); // 2^23
    let bits = xs.to_bits();
    let m0 = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000); // in [0.5, 1)
    let lo = m0 < SQRTHF;
    let ef = ((bits >> 23) & 0xff) as i32 as f32 - 126.0 - sel(tiny, 23.0, 0.0) - sel(lo, 1.0, 0.0);
    let m = m0 + sel(lo, m0, 0.0) - 1.0;
    let z = m * m;
    let mut y = ((((((((7.037_683_6e-2 * m - 1.151_461e-1) * m + 1.167_699_9e-1) * m
        - 1.242_014_1e-1)
        * m
        + 1.424_932_3e-1)
        * m
        - 1.666_805_8e-1)
        * m
        + 2.000_071_5e-1)
        * m
        - 2.499_999_4e-1)
        * m
        + 3.333_333e-1)
        * m
        * z;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    let r = m + y + 0.693_359_4 * ef;
    // x = 0: -inf; x < 0 or NaN: NaN; x = inf: inf
    let r = sel(x == 0.0, f32::NEG_INFINITY, r);
    let r = sel(x >= 0.0, r, f32::NAN);
    sel(x == f32::INFINITY, x, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place (of f32) between `got` and the exact value `want`.
    fn ulps(got: f32, want: f64) -> f64 {
        if got.is_nan() || want.is_nan() {
            return if got.is_nan() && want.is_nan() {
                0.0
            } else {
                f64::INFINITY
            };
        }
        let w = want as f32;
        if w.is_infinite() || got.is_infinite() {
            return if got == w { 0.0 } else { f64::INFINITY };
        }
        let spacing = if w == 0.0 {
            f32::from_bits(1) as f64
        } else {
            ((w.abs().next_up() as f64) - (w.abs() as f64)).max(f32::from_bits(1) as f64)
        };
        (got as f64 - want).abs() / spacing
    }

    /// Inputs: a dense sweep of the interesting range plus the extremes.
    fn sweep(lo: f32, hi: f32) -> Vec<f32> {
        let mut v: Vec<f32> = (0..200_001)
            .map(|i| lo + (hi - lo) * i as f32 / 200_000.0)
            .collect();
        v.extend([
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1e-40,
            -1e-40,
            1e-30,
            -1e-30,
            1e-7,
            -1e-7,
            f32::MAX,
            f32::MIN,
        ]);
        v.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
        v
    }

    fn worst(f: fn(f32) -> f32, reference: fn(f64) -> f64, xs: &[f32]) -> (f64, f32) {
        let mut worst = (0.0, 0.0);
        for &x in xs {
            let u = ulps(f(x), reference(x as f64));
            if u > worst.0 {
                worst = (u, x);
            }
        }
        worst
    }

    #[test]
    fn exp_within_2_ulp_including_extremes() {
        let (u, at) = worst(exp_f32, f64::exp, &sweep(-110.0, 95.0));
        assert!(u <= 2.0, "exp: {u} ulp at {at}");
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert!(exp_f32(-100.0) > 0.0 && exp_f32(-100.0) < f32::MIN_POSITIVE); // denormal
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_and_expm1_within_2_5_ulp() {
        let (u, at) = worst(tanh_f32, f64::tanh, &sweep(-12.0, 12.0));
        assert!(u <= 2.5, "tanh: {u} ulp at {at}"); // expm1, one add and one division: ~2 ulp
        let (u, at) = worst(expm1_f32, f64::exp_m1, &sweep(-20.0, 20.0));
        assert!(u <= 2.5, "expm1: {u} ulp at {at}");
        assert_eq!(tanh_f32(1e30), 1.0);
        assert_eq!(tanh_f32(-f32::INFINITY), -1.0);
        assert_eq!(tanh_f32(1e-40), 1e-40); // denormal in, same out
        assert!(tanh_f32(f32::NAN).is_nan());
    }

    #[test]
    fn sigmoid_within_3_ulp() {
        let (u, at) = worst(
            sigmoid_f32,
            |x| 1.0 / (1.0 + (-x).exp()),
            &sweep(-100.0, 100.0),
        );
        assert!(u <= 3.0, "sigmoid: {u} ulp at {at}");
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erf_gelu_softplus_close_to_libm() {
        let xs = sweep(-12.0, 12.0);
        let (u, at) = worst(erf_f32, libm::erf, &xs);
        assert!(u <= 2.0, "erf: {u} ulp at {at}");
        let gelu_ref = |x: f64| 0.5 * x * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2);
        // x >= -0.5: within 2 ulp. Below, gelu = x/2 * erfc(-x/sqrt 2) is small: on (-sqrt 2, -0.5)
        // it comes from 1 + erf, which cancels 2-3 bits, and below -sqrt 2 from a fitted erfcx and
        // two exps, each rounded in f32: within 16 ulp there (values below 0.16 |x|). (PyTorch's f32 formula
        // 0.5 x (1 + erf(x / sqrt 2)) cancels completely in the tail: off by up to 100%.)
        let core: Vec<f32> = xs
            .iter()
            .copied()
            .filter(|&x| x.is_nan() || x >= -0.5)
            .collect();
        let tail: Vec<f32> = xs.iter().copied().filter(|&x| x < -0.5).collect();
        let (u, at) = worst(gelu_f32, gelu_ref, &core);
        assert!(u <= 2.0, "gelu: {u} ulp at {at}");
        let (u, at) = worst(gelu_f32, gelu_ref, &tail);
        assert!(u <= 16.0, "gelu tail: {u} ulp at {at}");
        let softplus_ref = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
        let (u, at) = worst(softplus_f32, softplus_ref, &sweep(-100.0, 100.0));
        assert!(u <= 3.0, "softplus: {u} ulp at {at}"); // exp and log1p, each within ~1.5 ulp
        assert_eq!(softplus_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(softplus_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(erf_f32(f32::INFINITY), 1.0);
        assert!(gelu_f32(f32::NEG_INFINITY).is_nan()); // PyTorch's x * Phi(x) gives -inf * 0 = NaN
        assert_eq!(gelu_f32(f32::INFINITY), f32::INFINITY);
    }

    #[test]
    fn log_within_2_ulp_including_denormals() {
        let mut xs = sweep(1e-6, 100.0);
        xs.extend((1..2000).map(|i| f32::from_bits(i * 4093))); // denormals
        xs.extend((0..2000).map(|i| 10f32.powf(-37.0 + i as f32 * 0.07)));
        let (u, at) = worst(log_f32, f64::ln, &xs);
        assert!(u <= 2.0, "log: {u} ulp at {at}");
        assert_eq!(log_f32(0.0), f32::NEG_INFINITY);
        assert!(log_f32(-1.0).is_nan() && log_f32(f32::NAN).is_nan());
        assert_eq!(log_f32(f32::INFINITY), f32::INFINITY);
    }
}
