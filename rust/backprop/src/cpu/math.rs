//! Scalar reference definitions of the elementwise primitives: what each op means for one
//! element, in f64-grade arithmetic. The float64 kernels use several of them directly (sign,
//! sigmoid, erf, softplus, gelu through `unary_float`); the float32 kernels use the vectorisable
//! versions in `vmath.rs`, whose tests hold them to these definitions within a few ulp. The
//! integer and bool arithmetic here (`binary_i64`, `binary_bool`, comparisons) is what every
//! kernel of those dtypes computes.

use crate::dtype::{Element, FloatElement};
use crate::op::{BinaryOp, CmpOp, UnaryOp};

/// Float unary functions.
#[inline(always)]
pub fn unary_float<T: FloatElement>(op: UnaryOp, x: T) -> T {
    let zero = T::ZERO;
    let one = T::ONE;
    match op {
        UnaryOp::Neg => -x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => sign(x),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        // `x < 0` rather than `max`: NaN stays NaN, as in PyTorch.
        UnaryOp::Relu => {
            if x < zero {
                zero
            } else {
                x
            }
        }
        UnaryOp::Gelu => T::c(0.5) * x * (one + erf(x * T::c(std::f64::consts::FRAC_1_SQRT_2))),
        UnaryOp::Erf => erf(x),
        UnaryOp::Softplus => softplus(x),
        UnaryOp::Log1p => x.ln_1p(),
        UnaryOp::Expm1 => x.exp_m1(),
        UnaryOp::Log2 => x.log2(),
        UnaryOp::Log10 => x.log10(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => round_half_even(x),
        UnaryOp::Trunc => x.trunc(),
        // the gamma family in f64 for both float widths: these are not hot loops, and f32
        // then gets a correctly rounded-ish result instead of an f32 series' error
        UnaryOp::Erfc => via_f64(x, libm::erfc),
        UnaryOp::Lgamma => via_f64(x, libm::lgamma),
        UnaryOp::Digamma => via_f64(x, digamma),
        UnaryOp::Trigamma => via_f64(x, trigamma),
    }
}

#[inline(always)]
fn via_f64<T: FloatElement>(x: T, f: fn(f64) -> f64) -> T {
    T::c(f(Element::to_f64(x)))
}

/// `psi(x)`, the logarithmic derivative of Gamma, with PyTorch's special values: `-inf` at
/// `+0` (`+inf` at `-0`), NaN at the negative integers (poles of both signs) and at `-inf`.
/// Reflection `psi(x) = psi(1 - x) - pi / tan(pi x)` below zero, the recurrence
/// `psi(x) = psi(x + 1) - 1/x` up to 10, then the asymptotic series (error below 1e-15 there).
pub fn digamma(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() {
        return x;
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        };
    }
    let mut x = x;
    let mut acc = 0.0;
    if x < 0.0 {
        if x == x.trunc() {
            return f64::NAN;
        }
        // tan has period 1: reduce to [-1/2, 1/2] first, so a large |x| keeps its fractional
        // digits; `x - round(x)` is exact, and a tiny x stays itself (`x - floor(x)` would
        // round -1e-40 to 1)
        let r = x - x.round();
        acc = -PI / (PI * r).tan();
        x = 1.0 - x;
    }
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    if x == f64::INFINITY {
        return x;
    }
    let w = 1.0 / (x * x);
    // -sum B_2k / (2k x^2k), k = 1..7
    let series = w
        * (1.0 / 12.0
            - w * (1.0 / 120.0
                - w * (1.0 / 252.0
                    - w * (1.0 / 240.0
                        - w * (1.0 / 132.0 - w * (691.0 / 32760.0 - w * (1.0 / 12.0)))))));
    acc + x.ln() - 0.5 / x - series
}

/// `psi'(x)` (`polygamma(1, x)`): `+inf` at zero and the negative integers (double poles),
/// reflection `psi'(x) = pi^2 / sin^2(pi x) - psi'(1 - x)` below 1/2, the recurrence
/// `psi'(x) = psi'(x + 1) + 1/x^2` up to 10, then the asymptotic series.
pub fn trigamma(x: f64) -> f64 {
    use std::f64::consts::PI;
    if x.is_nan() || x == f64::NEG_INFINITY {
        return f64::NAN;
    }
    if x <= 0.0 && x == x.trunc() {
        return f64::INFINITY;
    }
    let mut x = x;
    let mut acc = 0.0;
    let mut sign = 1.0;
    if x < 0.5 {
        // sin^2 has period 1; reduced as in `digamma`
        let s = (PI * (x - x.round())).sin();
        acc = PI * PI / (s * s);
        sign = -1.0;
        x = 1.0 - x;
    }
    let mut tail = 0.0;
    while x < 10.0 {
        tail += 1.0 / (x * x);
        x += 1.0;
    }
    let w = 1.0 / (x * x);
    // 1/x + 1/(2x^2) + sum B_2k / x^(2k+1), k = 1..8
    let series = (1.0
        + w * (1.0 / 6.0
            - w * (1.0 / 30.0
                - w * (1.0 / 42.0
                    - w * (1.0 / 30.0
                        - w * (5.0 / 66.0
                            - w * (691.0 / 2730.0 - w * (7.0 / 6.0 - w * (3617.0 / 510.0)))))))))
        / x
        + 0.5 * w;
    acc + sign * (tail + series)
}

/// Rounds half to even (`torch.round`, NumPy's `round`), unlike `f64::round`.
#[inline(always)]
pub fn round_half_even<T: FloatElement>(x: T) -> T {
    let r = x.round();
    if (r - x).abs() == T::c(0.5) {
        T::c(2.0) * (x * T::c(0.5)).round()
    } else {
        r
    }
}

/// C's `fmod`: the sign of the dividend.
#[inline(always)]
pub fn fmod<T: FloatElement>(a: T, b: T) -> T {
    a % b
}

/// Python's (and PyTorch's) `remainder`: the sign of the divisor.
#[inline(always)]
pub fn remainder<T: FloatElement>(a: T, b: T) -> T {
    let m = a % b;
    if m != T::ZERO && ((b < T::ZERO) != (m < T::ZERO)) {
        m + b
    } else {
        m
    }
}

/// Integer `remainder` (sign of the divisor); 0 for a zero divisor (the tensor layer refuses it).
#[inline(always)]
pub fn remainder_i64(a: i64, b: i64) -> i64 {
    let m = a.checked_rem(b).unwrap_or(0);
    if m != 0 && ((b < 0) != (m < 0)) {
        m + b
    } else {
        m
    }
}

#[inline(always)]
pub fn sign<T: FloatElement>(x: T) -> T {
    if x > T::ZERO {
        T::ONE
    } else if x < T::ZERO {
        -T::ONE
    } else {
        x // 0, -0 and NaN map to themselves
    }
}

/// Stable logistic function: never computes exp of a large positive number.
#[inline(always)]
pub fn sigmoid<T: FloatElement>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

/// `log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))`: no overflow for large |x|.
#[inline(always)]
pub fn softplus<T: FloatElement>(x: T) -> T {
    if x.is_nan() {
        return x;
    }
    let m = if x > T::ZERO { x } else { T::ZERO };
    m + (-x.abs()).exp().ln_1p() // +inf gives inf, -inf gives 0 (as in PyTorch)
}

#[inline(always)]
pub fn erf<T: FloatElement>(x: T) -> T {
    // libm's erf/erff are correctly rounded to within an ulp; num_traits has no erf.
    if std::mem::size_of::<T>() == 4 {
        T::c(libm::erff(Element::to_f64(x) as f32) as f64)
    } else {
        T::c(libm::erf(Element::to_f64(x)))
    }
}

/// Integer unary ops (the ones that keep integer dtypes).
#[inline(always)]
pub fn unary_int(op: UnaryOp, x: i64) -> i64 {
    match op {
        UnaryOp::Neg => x.wrapping_neg(),
        UnaryOp::Abs => x.wrapping_abs(),
        UnaryOp::Sign => x.signum(),
        UnaryOp::Relu => x.max(0),
        _ => x, // unreachable: the tensor layer promotes to float first
    }
}

/// Binary arithmetic for every dtype. Integer ops wrap instead of panicking on overflow, and
/// integer division by zero gives 0 (the tensor layer only divides floats; this keeps the kernel
/// panic-free for Rust callers).
pub trait Arith: Element {
    fn binary(op: BinaryOp, a: Self, b: Self) -> Self;
}

impl<T: FloatElement> Arith for T {
    #[inline(always)]
    fn binary(op: BinaryOp, a: T, b: T) -> T {
        match op {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Maximum => max_nan(a, b),
            BinaryOp::Minimum => min_nan(a, b),
            // refused for floats before any kernel runs; a NaN marks misuse from Rust
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => T::nan(),
            BinaryOp::Atan2 => a.atan2(b),
            BinaryOp::Fmod => fmod(a, b),
            BinaryOp::Remainder => remainder(a, b),
        }
    }
}

/// Wrapper so i64 and bool get their own impls next to the blanket float one.
#[inline(always)]
pub fn binary_i64(op: BinaryOp, a: i64, b: i64) -> i64 {
    match op {
        BinaryOp::Add => a.wrapping_add(b),
        BinaryOp::Sub => a.wrapping_sub(b),
        BinaryOp::Mul => a.wrapping_mul(b),
        BinaryOp::Div => a.checked_div(b).unwrap_or(0),
        BinaryOp::Pow => {
            if b < 0 {
                match a {
                    1 => 1,
                    -1 => {
                        if b % 2 == 0 {
                            1
                        } else {
                            -1
                        }
                    }
                    _ => 0,
                }
            } else {
                // squaring over all 64 bits of the exponent (the GPU's i64_pow): wrapping_pow
                // takes a u32, and a capped exponent is a different product
                let (mut result, mut base, mut e) = (1i64, a, b as u64);
                while e != 0 {
                    if e & 1 == 1 {
                        result = result.wrapping_mul(base);
                    }
                    base = base.wrapping_mul(base);
                    e >>= 1;
                }
                result
            }
        }
        BinaryOp::Maximum => a.max(b),
        BinaryOp::Minimum => a.min(b),
        BinaryOp::BitAnd => a & b,
        BinaryOp::BitOr => a | b,
        BinaryOp::BitXor => a ^ b,
        // atan2 promotes integers to float before any kernel runs
        BinaryOp::Atan2 => 0,
        BinaryOp::Fmod => a.checked_rem(b).unwrap_or(0),
        BinaryOp::Remainder => remainder_i64(a, b),
    }
}

#[inline(always)]
pub fn binary_bool(op: BinaryOp, a: u8, b: u8) -> u8 {
    match op {
        BinaryOp::Add | BinaryOp::Maximum | BinaryOp::BitOr => a | b,
        BinaryOp::Mul | BinaryOp::Minimum | BinaryOp::BitAnd => a & b,
        BinaryOp::Sub | BinaryOp::BitXor => a ^ b,
        BinaryOp::Div => a,
        BinaryOp::Pow => a | (b ^ 1),
        // promoted to int64 / float before any kernel runs
        BinaryOp::Atan2 | BinaryOp::Fmod | BinaryOp::Remainder => a,
    }
}

/// Maximum that propagates NaN from either side, as PyTorch's `maximum` does.
#[inline(always)]
#[allow(clippy::eq_op)] // `a != a` is the NaN test for a generic PartialOrd
pub fn max_nan<T: PartialOrd + Copy>(a: T, b: T) -> T {
    if a > b || a != a {
        a
    } else {
        b
    }
}

#[inline(always)]
#[allow(clippy::eq_op)]
pub fn min_nan<T: PartialOrd + Copy>(a: T, b: T) -> T {
    if a < b || a != a {
        a
    } else {
        b
    }
}

#[inline(always)]
pub fn compare<T: PartialOrd>(op: CmpOp, a: T, b: T) -> u8 {
    (match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    }) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// digamma against a Richardson-extrapolated central difference of libm's lgamma (an
    /// independent implementation), and trigamma against the same difference of digamma.
    #[test]
    fn digamma_and_trigamma_are_the_derivatives() {
        fn deriv(f: fn(f64) -> f64, x: f64) -> f64 {
            let d = |h: f64| (f(x + h) - f(x - h)) / (2.0 * h);
            let h = 1e-3 * x.abs().max(0.1);
            (4.0 * d(h / 2.0) - d(h)) / 3.0
        }
        for &x in &[
            0.05, 0.3, 1.0, 1.4616, 2.5, 7.9, 10.0, 12.5, 40.0, -0.4, -1.7, -5.25,
        ] {
            let (p, want_p) = (digamma(x), deriv(libm::lgamma, x));
            assert!(
                (p - want_p).abs() <= 1e-8 * want_p.abs().max(1.0),
                "digamma({x}) {p} vs {want_p}"
            );
            let (t, want_t) = (trigamma(x), deriv(digamma, x));
            assert!(
                (t - want_t).abs() <= 1e-7 * want_t.abs().max(1.0),
                "trigamma({x}) {t} vs {want_t}"
            );
        }
        // exact values: psi(1) = -gamma, psi'(1) = pi^2 / 6
        assert!((digamma(1.0) + 0.577_215_664_901_532_9).abs() < 1e-15);
        assert!((trigamma(1.0) - std::f64::consts::PI.powi(2) / 6.0).abs() < 1e-15);
        assert_eq!(digamma(0.0), f64::NEG_INFINITY);
        assert_eq!(digamma(-0.0), f64::INFINITY);
        assert!(digamma(-3.0).is_nan() && trigamma(f64::NEG_INFINITY).is_nan());
        assert_eq!(trigamma(-3.0), f64::INFINITY);
    }

    #[test]
    fn stable_functions_at_extremes() {
        assert_eq!(sigmoid(1000.0f64), 1.0);
        assert_eq!(sigmoid(-1000.0f64), 0.0);
        assert!((softplus(1000.0f64) - 1000.0).abs() < 1e-12);
        assert!(softplus(-1000.0f64) >= 0.0 && softplus(-1000.0f64) < 1e-300);
        assert!(softplus(f64::NAN).is_nan());
        assert!(unary_float(UnaryOp::Relu, f32::NAN).is_nan());
        assert!(max_nan(1.0, f64::NAN).is_nan() && max_nan(f64::NAN, 1.0).is_nan());
    }

    #[test]
    fn gelu_matches_definition() {
        // GELU(1) = 0.5 * (1 + erf(1/sqrt 2)) = 0.8413447460685429 (Phi(1), standard normal tables)
        assert!((unary_float(UnaryOp::Gelu, 1.0f64) - 0.8413447460685429).abs() < 1e-15);
    }

    #[test]
    fn integer_ops_never_panic() {
        assert_eq!(binary_i64(BinaryOp::Div, 7, 0), 0);
        assert_eq!(binary_i64(BinaryOp::Add, i64::MAX, 1), i64::MIN);
        assert_eq!(binary_i64(BinaryOp::Pow, 2, -1), 0);
        assert_eq!(binary_i64(BinaryOp::Pow, 3, 4), 81);
    }
}
