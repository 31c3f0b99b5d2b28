//! Element types.
//!
//! Four *compute* dtypes cover what training needs and what every backend has kernels for: `F32`
//! (the default for Python floats and the only float type WGSL has), `F64` (kept when a float64
//! NumPy array comes in, and what gradcheck uses), `I64` for indices and labels, and `Bool` for
//! masks and comparison results (stored as one byte).
//!
//! Six more are *storage* dtypes, as PyTorch's CPU treats half precision: `F16`, `BF16` (what
//! checkpoints on the web are mostly stored in), `I32`, `I16`, `I8` and `U8` (images). Their
//! tensors hold the narrow values; an arithmetic kernel widens its operands to the compute dtype
//! ([`DType::compute`]: f32 for the half floats, int64 for the small ints), computes there and
//! rounds the result back to the storage dtype, so `a + b` of two float16 tensors is float16 and
//! equals NumPy's float16 result. Integer results wrap exactly as in native int32 arithmetic,
//! since widening, computing modulo 2^64 and truncating commute for `+`, `-`, `*`. Data movement
//! (views, copies, gather, index_select, cat, casts) runs on the narrow values directly. They
//! live on the CPU only for now: the WGSL kernels are float32/int32, so moving one to the GPU
//! is refused with an error that says so.

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    I64,
    Bool,
    F16,
    BF16,
    I32,
    I16,
    I8,
    U8,
}

impl DType {
    /// Bytes per element.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::Bool | DType::I8 | DType::U8 => 1,
        }
    }

    /// `true` for floating-point dtypes (the ones that can carry gradients).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// `true` for the integer dtypes (not bool).
    pub fn is_int(self) -> bool {
        matches!(
            self,
            DType::I64 | DType::I32 | DType::I16 | DType::I8 | DType::U8
        )
    }

    /// The dtype kernels compute in for values of this dtype: itself for the compute dtypes,
    /// f32 for float16/bfloat16, int64 for the small integers (see the module docs).
    pub fn compute(self) -> DType {
        match self {
            DType::F16 | DType::BF16 => DType::F32,
            DType::I32 | DType::I16 | DType::I8 | DType::U8 => DType::I64,
            d => d,
        }
    }

    /// `true` for the storage-only dtypes (those whose [`compute`](Self::compute) differs).
    ///
    /// ```
    /// # use backprop::DType;
    /// assert!(DType::F16.is_storage_only());
    /// assert_eq!(DType::BF16.compute(), DType::F32);
    /// assert!(!DType::I64.is_storage_only());
    /// ```
    pub fn is_storage_only(self) -> bool {
        self.compute() != self
    }

    /// The largest finite value of a float dtype (`f64::MAX` for the others, whose range checks
    /// are elsewhere).
    pub fn finite_max(self) -> f64 {
        match self {
            DType::F32 => f32::MAX as f64,
            DType::F16 => half::f16::MAX.to_f64(),
            DType::BF16 => half::bf16::MAX.to_f64(),
            _ => f64::MAX,
        }
    }

    /// Every dtype, compute dtypes first.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::F64,
        DType::I64,
        DType::Bool,
        DType::F16,
        DType::BF16,
        DType::I32,
        DType::I16,
        DType::I8,
        DType::U8,
    ];

    /// PyTorch-style name, as shown in reprs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I64 => "int64",
            DType::Bool => "bool",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::I32 => "int32",
            DType::I16 => "int16",
            DType::I8 => "int8",
            DType::U8 => "uint8",
        }
    }

    /// Parses the names users write (`"float32"`, `"f32"`, `"float"`, `"long"`, ...).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s {
            "float32" | "f32" | "float" => DType::F32,
            "float64" | "f64" | "double" => DType::F64,
            "int64" | "i64" | "long" => DType::I64,
            "bool" => DType::Bool,
            "float16" | "f16" | "half" => DType::F16,
            "bfloat16" | "bf16" => DType::BF16,
            "int32" | "i32" | "int" => DType::I32,
            "int16" | "i16" | "short" => DType::I16,
            "int8" | "i8" => DType::I8,
            "uint8" | "u8" => DType::U8,
            _ => return None,
        })
    }

    /// Type promotion for binary ops, PyTorch's `promote_types` table: bool < integer <
    /// floating; within a category the wider wins; uint8 with a signed int is the next signed
    /// int that holds both (uint8 + int8 -> int16), float16 with bfloat16 is float32.
    ///
    /// ```
    /// # use backprop::DType;
    /// assert_eq!(DType::promote(DType::U8, DType::I8), DType::I16);
    /// assert_eq!(DType::promote(DType::F16, DType::BF16), DType::F32);
    /// assert_eq!(DType::promote(DType::I32, DType::F16), DType::F16);
    /// ```
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        fn rank(d: DType) -> u8 {
            match d {
                Bool => 0,
                U8 | I8 => 1,
                I16 => 2,
                I32 => 3,
                I64 => 4,
                F16 | BF16 => 5,
                F32 => 6,
                F64 => 7,
            }
        }
        match (a, b) {
            (U8, I8) | (I8, U8) => I16,
            (F16, BF16) | (BF16, F16) => F32,
            _ if rank(a) >= rank(b) => a,
            _ => b,
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
/// assert!(set_default_float(DType::F16).is_err());
/// ```
pub fn set_default_float(dtype: DType) -> crate::Result<()> {
    if !dtype.is_float() {
        return Err(crate::Error::DType {
            op: "set_default_dtype",
            dtype,
            detail: ": only floating-point types are supported as the default type".into(),
        });
    }
    if dtype.is_storage_only() {
        // PyTorch allows it; here factories and Python floats would all become storage-only
        // tensors whose every op widens and rounds, so it is refused rather than half-done
        return Err(crate::Error::DType {
            op: "set_default_dtype",
            dtype,
            detail: ": float16/bfloat16 are storage dtypes in backprop_rs (computed in float32) and cannot be the default; use float32 or float64, and .half() where float16 storage is wanted".into(),
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
        if self == DType::Bool {
            0
        } else if self.is_float() {
            2
        } else {
            1
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

/// A `uint8` element. A newtype because `u8` is already the storage of `Bool` (0 or 1), and
/// the typed views dispatch on the Rust type; the byte itself is the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
#[repr(transparent)]
pub struct UInt8(pub u8);

/// float -> a 32-bit-or-narrower int as PyTorch does it on x86: truncation to int32 (the
/// `cvttss2si` rule: NaN and out-of-range values become `i32::MIN`), then the narrow type keeps
/// the low bits (`-1.0` as uint8 is 255, as in PyTorch).
#[inline(always)]
fn f64_to_i32_bits(v: f64) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        v as i32
    } else {
        i32::MIN
    }
}

macro_rules! small_int_element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                f64_to_i32_bits(v) as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            /// Keeps the low bits, as PyTorch's int64 -> int32 conversion.
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            const ZERO: Self = 0;
            const ONE: Self = 1;
        }
    };
}
small_int_element!(i32, I32);
small_int_element!(i16, I16);
small_int_element!(i8, I8);

impl Element for UInt8 {
    const DTYPE: DType = DType::U8;
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        UInt8(f64_to_i32_bits(v) as u8)
    }
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self.0 as f64
    }
    #[inline(always)]
    fn from_i64(v: i64) -> Self {
        UInt8(v as u8)
    }
    const ZERO: Self = UInt8(0);
    const ONE: Self = UInt8(1);
}

macro_rules! half_element {
    ($t:ty, $d:ident) => {
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            /// Through f32, as PyTorch converts a Python float (a C double) to half: one rounding
            /// from f32 values, which is what every tensor conversion starts from.
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                <$t>::from_f32(v as f32)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self.to_f64()
            }
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                <$t>::from_f32(v as f32)
            }
            const ZERO: Self = <$t>::ZERO;
            const ONE: Self = <$t>::ONE;
        }
    };
}
half_element!(half::f16, F16);
half_element!(half::bf16, BF16);

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
        // PyTorch's promote_types for the storage dtypes
        use DType::*;
        for (a, b, want) in [
            (U8, I8, I16),
            (U8, I16, I16),
            (I8, I32, I32),
            (U8, Bool, U8),
            (I32, I64, I64),
            (F16, BF16, F32),
            (BF16, F32, F32),
            (I64, F16, F16),
            (U8, BF16, BF16),
        ] {
            assert_eq!(DType::promote(a, b), want, "{a} + {b}");
            assert_eq!(DType::promote(b, a), want, "{b} + {a}");
        }
    }

    #[test]
    fn narrow_conversions_follow_pytorch_on_x86() {
        // float -> int: truncation toward zero, then the low bits of the int32
        assert_eq!(<i8 as Element>::from_f64(300.0), 44);
        assert_eq!(UInt8::from_f64(-1.0), UInt8(255));
        assert_eq!(<i32 as Element>::from_f64(f64::NAN), i32::MIN);
        assert_eq!(<i32 as Element>::from_i64(1 << 32 | 7), 7);
        // float16 rounds to nearest even
        assert_eq!(half::f16::from_f64(1.0 + 2f64.powi(-11)).to_f64(), 1.0);
        assert_eq!(half::f16::from_f64(65520.0).to_f64(), f64::INFINITY);
        for d in DType::ALL {
            assert_eq!(DType::parse(d.as_str()), Some(d));
            assert_eq!(d.compute().compute(), d.compute());
        }
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
            (Scalar::Float(_), t) if !t.is_float() => default_float(),
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
