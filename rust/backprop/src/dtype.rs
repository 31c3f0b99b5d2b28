//! Element types.
//!
//! Four dtypes cover what training needs: `F32` (the default for Python floats and the only float
//! type WGSL has), `F64` (kept when a float64 NumPy array comes in, and what gradcheck uses),
//! `I64` for indices and labels, and `Bool` for masks and comparison results (stored as one byte).

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::Bool => 1,
        }
    }

    /// `true` for floating-point dtypes (the ones that can carry gradients).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64)
    }

    /// PyTorch-style name, as shown in reprs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::Bool => "bool",
        }
    }

    /// Parses the names users write (`"float32"`, `"f32"`, `"float"`, `"long"`, ...).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "float32" | "f32" | "float" => DType::F32,
            "float64" | "f64" | "double" => DType::F64,
            "int64" | "i64" | "long" => DType::I64,
            "bool" => DType::Bool,
            _ => return None,
        })
    }

    /// Type promotion for binary ops, following PyTorch's category rule:
    /// bool < integer < floating; within floats the wider wins.
    pub fn promote(a: DType, b: DType) -> DType {
        fn rank(d: DType) -> u8 {
            match d {
                DType::Bool => 0,
                DType::I64 => 1,
                DType::F32 => 2,
                DType::F64 => 3,
            }
        }
        if rank(a) >= rank(b) {
            a
        } else {
            b
        }
    }
}

/// The default float dtype (`DType::F32` unless changed): what Python floats, float factories
/// without a dtype and integer-to-float promotions (true division, `mean` of integers, ...)
/// produce. Process-wide, as PyTorch's `torch.set_default_dtype`.
static DEFAULT_FLOAT_IS_F64: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// The default float dtype (see [`set_default_float`]).
pub fn default_float() -> DType {
    if DEFAULT_FLOAT_IS_F64.load(std::sync::atomic::Ordering::Relaxed) {
        DType::F64
    } else {
        DType::F32
    }
}

/// Sets the default float dtype (PyTorch's `set_default_dtype`); only float dtypes qualify.
///
/// ```
/// # use backprop::{default_float, set_default_float, DType};
/// assert_eq!(default_float(), DType::F32);
/// assert!(set_default_float(DType::I64).is_err());
/// ```
pub fn set_default_float(dtype: DType) -> crate::Result<()> {
    if !dtype.is_float() {
        return Err(crate::Error::DType {
            op: "set_default_dtype",
            dtype,
            detail: ": only floating-point types are supported as the default type".into(),
        });
    }
    DEFAULT_FLOAT_IS_F64.store(dtype == DType::F64, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// How an operand takes part in type promotion (PyTorch's `result_type` rule): tensors with
/// dims decide within a category; 0-d tensors and Python numbers only lift the result into a
/// higher category (bool < integer < floating), never widen it within one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Participation {
    /// A tensor with at least one dim.
    Dim,
    /// A 0-d tensor.
    ZeroDim,
    /// A Python number (its dtype: bool, int64, or the default float dtype for floats).
    Number,
}

impl DType {
    fn category(self) -> u8 {
        match self {
            DType::Bool => 0,
            DType::I64 => 1,
            DType::F32 | DType::F64 => 2,
        }
    }

    /// The dtype of an op over these operands, by PyTorch's `result_type` rule.
    pub fn result_type(operands: &[(DType, Participation)]) -> Option<DType> {
        let class = |p: Participation| {
            operands
                .iter()
                .filter(|(_, q)| *q == p)
                .map(|(d, _)| *d)
                .reduce(DType::promote)
        };
        // `higher` has priority; `lower` wins only by being of a higher category
        let combine = |higher: Option<DType>, lower: Option<DType>| match (higher, lower) {
            (Some(h), Some(l)) => Some(if l.category() > h.category() { l } else { h }),
            (h, None) => h,
            (None, l) => l,
        };
        combine(
            class(Participation::Dim),
            combine(class(Participation::ZeroDim), class(Participation::Number)),
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Rust type that can be a tensor element.
///
/// All element types are plain data whose all-zero bit pattern is the value zero, which is what
/// lets the allocator hand out zeroed pages instead of writing zeros.
pub trait Element:
    Copy + Send + Sync + 'static + PartialOrd + PartialEq + fmt::Debug + Default
{
    const DTYPE: DType;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    /// An integer, exactly where the type can hold it (f64 `as` would drop bits above 2^53).
    fn from_i64(v: i64) -> Self;
    /// A Python-style scalar converted to this type.
    #[inline]
    fn from_scalar(s: Scalar) -> Self {
        match s {
            Scalar::Bool(b) => Self::from_i64(b as i64),
            Scalar::Int(i) => Self::from_i64(i),
            Scalar::Float(f) => Self::from_f64(f),
        }
    }
    const ZERO: Self;
    const ONE: Self;
}

macro_rules! float_element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
        }
    };
}
float_element!(f32, F32);
float_element!(f64, F64);

impl Element for i64 {
    const DTYPE: DType = DType::I64;
    /// Float to int64 as PyTorch gives it on x86 (the `cvttsd2si` rule): truncation toward
    /// zero, and NaN, infinities and values outside the int64 range all become `i64::MIN`
    /// (Rust's `as` would saturate and map NaN to 0).
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        const TWO_63: f64 = 9_223_372_036_854_775_808.0;
        if (-TWO_63..TWO_63).contains(&v) {
            v as i64
        } else {
            i64::MIN
        }
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        v
    }
    const ZERO: Self = 0;
    const ONE: Self = 1;
}

// Bool is stored as u8 (0 or 1); conversions normalise to 0/1.
impl Element for u8 {
    const DTYPE: DType = DType::Bool;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        (v != 0.0) as u8
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        (v != 0) as u8
    }
    const ZERO: Self = 0;
    const ONE: Self = 1;
}

/// Float element types: the ones transcendental kernels and gradients are defined for.
pub trait FloatElement: Element + num_traits::Float + std::iter::Sum {
    /// f32 -> f32 / f64 -> f64 constant, for writing kernels once for both.
    fn c(v: f64) -> Self;
    /// `exp` through the vectorisable polynomial of `cpu::vmath` for f32 (the libm call would
    /// keep the loop scalar); f64 keeps libm, where precision is why one picked f64.
    fn fast_exp(self) -> Self;
    /// `tanh` and the logistic sigmoid, likewise (the unary kernels' f32 formulas).
    fn fast_tanh(self) -> Self;
    fn fast_sigmoid(self) -> Self;
}
impl FloatElement for f32 {
    #[inline(always)]
    fn c(v: f64) -> Self {
        v as f32
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        crate::cpu::vmath::exp_f32(self)
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        crate::cpu::vmath::tanh_f32(self)
    }
    #[inline(always)]
    fn fast_sigmoid(self) -> Self {
        crate::cpu::vmath::sigmoid_f32(self)
    }
}
impl FloatElement for f64 {
    #[inline(always)]
    fn c(v: f64) -> Self {
        v
    }
    #[inline(always)]
    fn fast_exp(self) -> Self {
        self.exp()
    }
    #[inline(always)]
    fn fast_tanh(self) -> Self {
        self.tanh()
    }
    #[inline(always)]
    fn fast_sigmoid(self) -> Self {
        // as the f64 unary kernel: from exp(-|x|), so nothing overflows
        let e = (-self.abs()).exp();
        let s = 1.0 / (1.0 + e);
        if self >= 0.0 {
            s
        } else if self.is_nan() {
            self
        } else {
            e * s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_follows_categories() {
        assert_eq!(DType::promote(DType::I64, DType::F32), DType::F32);
        assert_eq!(DType::promote(DType::F32, DType::F64), DType::F64);
        assert_eq!(DType::promote(DType::Bool, DType::I64), DType::I64);
        assert_eq!(DType::promote(DType::Bool, DType::Bool), DType::Bool);
    }

    #[test]
    fn zero_dim_tensors_do_not_widen_within_a_category() {
        use Participation::*;
        let rt = |v: &[(DType, Participation)]| DType::result_type(v).unwrap();
        assert_eq!(rt(&[(DType::F32, Dim), (DType::F64, ZeroDim)]), DType::F32);
        assert_eq!(rt(&[(DType::I64, Dim), (DType::F64, ZeroDim)]), DType::F64);
        assert_eq!(rt(&[(DType::I64, Dim), (DType::F32, Number)]), DType::F32);
        assert_eq!(
            rt(&[(DType::F64, ZeroDim), (DType::F32, ZeroDim)]),
            DType::F64
        );
        assert_eq!(rt(&[(DType::Bool, Dim), (DType::I64, Number)]), DType::I64);
    }

    #[test]
    fn parse_names() {
        assert_eq!(DType::parse("long"), Some(DType::I64));
        assert_eq!(DType::parse("double"), Some(DType::F64));
        assert_eq!(DType::parse("complex"), None);
    }
}

/// A Python-style scalar operand: its kind decides type promotion the way PyTorch does
/// (an int scalar keeps an int tensor int; a float scalar turns it float32; neither widens a
/// float32 tensor to float64).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
}

impl Scalar {
    pub fn to_f64(self) -> f64 {
        match self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }

    /// The dtype of `tensor OP scalar` for a tensor of dtype `t`.
    pub fn result_dtype(self, t: DType) -> DType {
        match (self, t) {
            (Scalar::Float(_), DType::I64 | DType::Bool) => default_float(),
            (Scalar::Int(_), DType::Bool) => DType::I64,
            _ => t,
        }
    }
}

impl From<f64> for Scalar {
    fn from(v: f64) -> Self {
        Scalar::Float(v)
    }
}
impl From<f32> for Scalar {
    fn from(v: f32) -> Self {
        Scalar::Float(v as f64)
    }
}
impl From<i64> for Scalar {
    fn from(v: i64) -> Self {
        Scalar::Int(v)
    }
}
impl From<bool> for Scalar {
    fn from(v: bool) -> Self {
        Scalar::Bool(v)
    }
}
