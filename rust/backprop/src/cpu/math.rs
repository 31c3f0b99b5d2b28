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
