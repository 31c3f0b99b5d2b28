//! The CPU backend: typed buffers and the primitive kernels over them.

pub mod attention;
pub mod buffer;
pub mod conv;
pub mod denormal;
pub mod elementwise;
pub mod features;
pub mod index;
pub mod layer_norm;
pub mod math;
pub mod matmul;
pub(crate) mod optim;
pub mod parallel;
pub mod reduce;
pub mod rnn;
pub mod simd;
pub mod spin;
pub mod vmath;

use crate::backend::BackendStorage;
use crate::op::{
    ArgReduceOp, AttentionSpec, BinaryOp, CmpOp, ReduceOp, ScatterReduce, UnaryOp, Window,
};
use crate::{DType, Device, Element, Error, Layout, Result, Scalar, Shape, UInt8};
pub use buffer::Buffer;
use elementwise::{map1, select};
use half::{bf16, f16};

/// CPU memory of one dtype. The last six are storage dtypes (see `dtype.rs`): data movement
/// reads them directly; arithmetic widens them first ([`CpuStorage::widened`]).
pub enum CpuStorage {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
    I64(Buffer<i64>),
    Bool(Buffer<u8>),
    F16(Buffer<f16>),
    BF16(Buffer<bf16>),
    I32(Buffer<i32>),
    I16(Buffer<i16>),
    I8(Buffer<i8>),
    U8(Buffer<UInt8>),
}

/// `$m!(Variant, RustType)` for every dtype: one list, so a new dtype is one line.
macro_rules! for_each_variant {
    ($m:ident) => {
        $m!(F32, f32);
        $m!(F64, f64);
        $m!(I64, i64);
        $m!(Bool, u8);
        $m!(F16, f16);
        $m!(BF16, bf16);
        $m!(I32, i32);
        $m!(I16, i16);
        $m!(I8, i8);
        $m!(U8, UInt8);
    };
}

/// Runs `$body` with `$b` bound to the typed slice and `$T` to its element type, for any dtype,
/// returning what the body returns.
macro_rules! with_slice {
    ($s:expr, |$b:ident, $T:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(x) => {
                type $T = f32;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::F64(x) => {
                type $T = f64;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::I64(x) => {
                type $T = i64;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::Bool(x) => {
                type $T = u8;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::F16(x) => {
                type $T = f16;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::BF16(x) => {
                type $T = bf16;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::I32(x) => {
                type $T = i32;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::I16(x) => {
                type $T = i16;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::I8(x) => {
                type $T = i8;
                let $b = x.as_slice();
                $body
            }
            CpuStorage::U8(x) => {
                type $T = UInt8;
                let $b = x.as_slice();
                $body
            }
        }
    };
}

/// Runs `$body` (a `Result<Vec<T>>`) with `$b` bound to the typed slice of any dtype, and wraps
/// the vector as a storage of the same dtype.
macro_rules! any_dtype {
    ($s:expr, |$b:ident| $body:expr) => {
        with_slice!($s, |$b, _T| CpuStorage::from_vec($body?))
    };
}

/// Same-dtype pair dispatch; a dtype mismatch is an engine bug surfaced as an error, not a panic.
macro_rules! pair {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident, $T:ident| $body:expr) => {
        with_slice!($a, |$x, $T| match $b.as_slice::<$T>() {
            Some($y) => $body,
            None => Err(Error::DTypeMismatch {
                op: $op,
                lhs: $a.dtype(),
                rhs: $b.dtype(),
            }),
        })
    };
}

impl CpuStorage {
    pub fn from_vec<T: Element>(v: Vec<T>) -> CpuStorage {
        // Dispatch on the element's dtype without specialisation: move through the concrete type.
        let any: Box<dyn std::any::Any> = Box::new(v);
        match T::DTYPE {
            DType::F32 => CpuStorage::F32(Buffer::from_vec(
                *any.downcast::<Vec<f32>>().unwrap_or_default(),
            )),
            DType::F64 => CpuStorage::F64(Buffer::from_vec(
                *any.downcast::<Vec<f64>>().unwrap_or_default(),
            )),
            DType::I64 => CpuStorage::I64(Buffer::from_vec(
                *any.downcast::<Vec<i64>>().unwrap_or_default(),
            )),
            DType::Bool => CpuStorage::Bool(Buffer::from_vec(
                *any.downcast::<Vec<u8>>().unwrap_or_default(),
            )),
            DType::F16 => CpuStorage::F16(Buffer::from_vec(
                *any.downcast::<Vec<f16>>().unwrap_or_default(),
            )),
            DType::BF16 => CpuStorage::BF16(Buffer::from_vec(
                *any.downcast::<Vec<bf16>>().unwrap_or_default(),
            )),
            DType::I32 => CpuStorage::I32(Buffer::from_vec(
                *any.downcast::<Vec<i32>>().unwrap_or_default(),
            )),
            DType::I16 => CpuStorage::I16(Buffer::from_vec(
                *any.downcast::<Vec<i16>>().unwrap_or_default(),
            )),
            DType::I8 => CpuStorage::I8(Buffer::from_vec(
                *any.downcast::<Vec<i8>>().unwrap_or_default(),
            )),
            DType::U8 => CpuStorage::U8(Buffer::from_vec(
                *any.downcast::<Vec<UInt8>>().unwrap_or_default(),
            )),
        }
    }

    /// Wraps memory owned elsewhere (a NumPy array) as a storage of `dtype`.
    ///
    /// # Safety
    /// As [`Buffer::from_foreign`], with `data` pointing at `len` elements of `dtype`.
    pub unsafe fn from_foreign(
        dtype: DType,
        data: *mut u8,
        len: usize,
        owner: Box<dyn std::any::Any + Send + Sync>,
    ) -> CpuStorage {
        macro_rules! arm {
            ($v:ident, $t:ty) => {
                if dtype == DType::$v {
                    return CpuStorage::$v(Buffer::from_foreign(data as *mut $t, len, owner));
                }
            };
        }
        for_each_variant!(arm);
        unreachable!("every dtype has an arm above")
    }

    /// The values widened to the compute dtype when this is a storage dtype (float16 -> f32,
    /// int32 -> int64...), borrowed as they are otherwise. The whole buffer is widened, so every
    /// layout over it stays valid.
    pub(crate) fn widened(&self) -> Result<Widened<'_>> {
        let d = self.dtype();
        if !d.is_storage_only() {
            return Ok(Widened::Borrowed(self));
        }
        let l = Layout::contiguous(Shape::new(vec![self.len()]));
        Ok(Widened::Owned(self.cast(&l, d.compute())?))
    }

    /// A kernel's result rounded back to the storage dtype `d` when it came out in `d`'s compute
    /// dtype (float16 + float16 computed in f32 is float16 again); other results (bool masks,
    /// int64 indices) are kept.
    pub(crate) fn narrowed(self, d: DType) -> Result<CpuStorage> {
        if d.is_storage_only() && self.dtype() == d.compute() {
            let l = Layout::contiguous(Shape::new(vec![self.len()]));
            self.cast(&l, d)
        } else {
            Ok(self)
        }
    }

    /// Typed view of the whole buffer, if `T` matches the dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        let any: &dyn std::any::Any = match self {
            CpuStorage::F32(b) => b,
            CpuStorage::F64(b) => b,
            CpuStorage::I64(b) => b,
            CpuStorage::Bool(b) => b,
            CpuStorage::F16(b) => b,
            CpuStorage::BF16(b) => b,
            CpuStorage::I32(b) => b,
            CpuStorage::I16(b) => b,
            CpuStorage::I8(b) => b,
            CpuStorage::U8(b) => b,
        };
        any.downcast_ref::<Buffer<T>>().map(|b| b.as_slice())
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        let any: &mut dyn std::any::Any = match self {
            CpuStorage::F32(b) => b,
            CpuStorage::F64(b) => b,
            CpuStorage::I64(b) => b,
            CpuStorage::Bool(b) => b,
            CpuStorage::F16(b) => b,
            CpuStorage::BF16(b) => b,
            CpuStorage::I32(b) => b,
            CpuStorage::I16(b) => b,
            CpuStorage::I8(b) => b,
            CpuStorage::U8(b) => b,
        };
        any.downcast_mut::<Buffer<T>>().map(|b| b.as_mut_slice())
    }

    /// Base address of the buffer (for zero-copy export, e.g. to NumPy).
    pub fn as_ptr(&self) -> *const u8 {
        #[allow(clippy::unnecessary_cast)] // a no-op only for the byte dtypes
        let p = with_slice!(self, |b, _T| b.as_ptr() as *const u8);
        p
    }

    /// Values of a strided view as f64, row-major (for printing, `item`, tests).
    pub fn to_f64_vec(&self, l: &Layout) -> Result<Vec<f64>> {
        with_slice!(self, |b, _T| map1("to_vec", b, l, |v| v.to_f64()))
    }
}

fn cast_vec<T: Element, U: Element>(x: &[T], l: &Layout) -> Result<Vec<U>> {
    map1("to_dtype", x, l, |v| U::from_f64(v.to_f64()))
}

/// int64 -> any: one rounding (through f64 an int above 2^53 would be rounded twice).
fn cast_from_i64<U: Element>(x: &[i64], l: &Layout) -> Result<Vec<U>> {
    map1("to_dtype", x, l, U::from_i64)
}

/// float16/bfloat16 <-> float32 of a contiguous view through `half`'s slice conversions (F16C
/// instructions where the CPU has them; the same round-to-nearest-even as the element path).
/// Every arithmetic op on a half tensor widens and narrows, so this is their hot path.
fn half_fast_cast(s: &CpuStorage, l: &Layout, dtype: DType) -> Result<Option<CpuStorage>> {
    use half::slice::HalfFloatSliceExt;
    let Some((start, end)) = l.contiguous_range() else {
        return Ok(None);
    };
    let shape = l.shape();
    Ok(Some(match (s, dtype) {
        (CpuStorage::F16(b), DType::F32) => {
            let mut out = buffer::alloc_for_overwrite::<f32>("to_dtype", shape)?;
            b.as_slice()[start..end].convert_to_f32_slice(&mut out);
            CpuStorage::F32(Buffer::from_vec(out))
        }
        (CpuStorage::BF16(b), DType::F32) => {
            let mut out = buffer::alloc_for_overwrite::<f32>("to_dtype", shape)?;
            b.as_slice()[start..end].convert_to_f32_slice(&mut out);
            CpuStorage::F32(Buffer::from_vec(out))
        }
        (CpuStorage::F32(b), DType::F16) => {
            let mut out = buffer::alloc_for_overwrite::<f16>("to_dtype", shape)?;
            out.convert_from_f32_slice(&b.as_slice()[start..end]);
            CpuStorage::F16(Buffer::from_vec(out))
        }
        (CpuStorage::F32(b), DType::BF16) => {
            let mut out = buffer::alloc_for_overwrite::<bf16>("to_dtype", shape)?;
            out.convert_from_f32_slice(&b.as_slice()[start..end]);
            CpuStorage::BF16(Buffer::from_vec(out))
        }
        _ => return Ok(None),
    }))
}

fn full_vec<T: Element>(shape: &Shape, v: Scalar) -> Result<Vec<T>> {
    let mut out = buffer::alloc::<T>("full", shape)?;
    let v = T::from_scalar(v);
    // the buffer starts zeroed; -0.0 compares equal to 0.0 but must be written
    if v != T::ZERO || v.to_f64().is_sign_negative() {
        out.iter_mut().for_each(|x| *x = v);
    }
    Ok(out)
}

fn add_f32(a: f32, b: f32) -> f32 {
    a + b
}
fn add_f64(a: f64, b: f64) -> f64 {
    a + b
}
fn add_i64(a: i64, b: i64) -> i64 {
    a.wrapping_add(b)
}
fn add_u8(a: u8, b: u8) -> u8 {
    a | b
}
fn sum_u8(x: &[u8]) -> u8 {
    x.iter().any(|&v| v != 0) as u8
}

impl BackendStorage for CpuStorage {
    fn dtype(&self) -> DType {
        with_slice!(self, |_b, T| T::DTYPE)
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn len(&self) -> usize {
        with_slice!(self, |b, _T| b.len())
    }

    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
        if self.dtype().is_storage_only() {
            return self.widened()?.unary(l, op)?.narrowed(self.dtype());
        }
        Ok(match self {
            CpuStorage::F32(b) => CpuStorage::F32(Buffer::from_vec(elementwise::unary_f32(
                b.as_slice(),
                l,
                op,
            )?)),
            CpuStorage::F64(b) => CpuStorage::F64(Buffer::from_vec(elementwise::unary_f64(
                b.as_slice(),
                l,
                op,
            )?)),
            CpuStorage::I64(b) if op.keeps_integers() => CpuStorage::I64(Buffer::from_vec(
                elementwise::unary_i64(b.as_slice(), l, op)?,
            )),
            other => {
                return Err(Error::DType {
                    op: op.name(),
                    dtype: other.dtype(),
                    detail: " (expected a float tensor)".into(),
                })
            }
        })
    }

    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self> {
        if self.dtype().is_storage_only() || rhs.dtype().is_storage_only() {
            let w = self.widened()?.binary(l, &*rhs.widened()?, rl, op)?;
            return w.narrowed(self.dtype());
        }
        Ok(match (self, rhs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(Buffer::from_vec(
                elementwise::binary_float(a.as_slice(), l, b.as_slice(), rl, op)?,
            )),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(Buffer::from_vec(
                elementwise::binary_float(a.as_slice(), l, b.as_slice(), rl, op)?,
            )),
            (CpuStorage::I64(a), CpuStorage::I64(b)) => CpuStorage::I64(Buffer::from_vec(
                elementwise::binary_i64(a.as_slice(), l, b.as_slice(), rl, op)?,
            )),
            (CpuStorage::Bool(a), CpuStorage::Bool(b)) => CpuStorage::Bool(Buffer::from_vec(
                elementwise::binary_bool(a.as_slice(), l, b.as_slice(), rl, op)?,
            )),
            (a, b) => {
                return Err(Error::DTypeMismatch {
                    op: op.name(),
                    lhs: a.dtype(),
                    rhs: b.dtype(),
                })
            }
        })
    }

    fn compare(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self> {
        let out = pair!(op.name(), self, rhs, |a, b, T| elementwise::compare::<T>(
            a, l, b, rl, op
        ))?;
        Ok(CpuStorage::Bool(Buffer::from_vec(out)))
    }

    fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self> {
        let c = self.as_slice::<u8>().ok_or(Error::DType {
            op: "where",
            dtype: self.dtype(),
            detail: " (the condition must be bool)".into(),
        })?;
        with_slice!(t, |a, T| {
            let b = f.as_slice::<T>().ok_or(Error::DTypeMismatch {
                op: "where",
                lhs: t.dtype(),
                rhs: f.dtype(),
            })?;
            Ok(CpuStorage::from_vec(select(c, l, a, tl, b, fl)?))
        })
    }

    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        macro_rules! to {
            ($conv:ident, $x:expr) => {
                match dtype {
                    DType::F32 => CpuStorage::F32(Buffer::from_vec($conv($x, l)?)),
                    DType::F64 => CpuStorage::F64(Buffer::from_vec($conv($x, l)?)),
                    DType::I64 => CpuStorage::I64(Buffer::from_vec($conv($x, l)?)),
                    DType::Bool => CpuStorage::Bool(Buffer::from_vec($conv($x, l)?)),
                    DType::F16 => CpuStorage::F16(Buffer::from_vec($conv($x, l)?)),
                    DType::BF16 => CpuStorage::BF16(Buffer::from_vec($conv($x, l)?)),
                    DType::I32 => CpuStorage::I32(Buffer::from_vec($conv($x, l)?)),
                    DType::I16 => CpuStorage::I16(Buffer::from_vec($conv($x, l)?)),
                    DType::I8 => CpuStorage::I8(Buffer::from_vec($conv($x, l)?)),
                    DType::U8 => CpuStorage::U8(Buffer::from_vec($conv($x, l)?)),
                }
            };
        }
        if let Some(out) = half_fast_cast(self, l, dtype)? {
            return Ok(out);
        }
        if let CpuStorage::I64(b) = self {
            return Ok(to!(cast_from_i64, b.as_slice()));
        }
        Ok(with_slice!(self, |x, _T| to!(cast_vec, x)))
    }

    fn reduce(&self, l: &Layout, op: ReduceOp, dims: &[usize]) -> Result<Self> {
        if self.dtype().is_storage_only() {
            return self.widened()?.reduce(l, op, dims)?.narrowed(self.dtype());
        }
        Ok(match self {
            CpuStorage::F32(b) => CpuStorage::F32(Buffer::from_vec(reduce::reduce(
                b.as_slice(),
                l,
                op,
                dims,
                reduce::pairwise_sum,
                add_f32,
            )?)),
            CpuStorage::F64(b) => CpuStorage::F64(Buffer::from_vec(reduce::reduce(
                b.as_slice(),
                l,
                op,
                dims,
                reduce::pairwise_sum,
                add_f64,
            )?)),
            CpuStorage::I64(b) => CpuStorage::I64(Buffer::from_vec(reduce::reduce(
                b.as_slice(),
                l,
                op,
                dims,
                reduce::int_sum,
                add_i64,
            )?)),
            CpuStorage::Bool(b) => CpuStorage::Bool(Buffer::from_vec(reduce::reduce(
                b.as_slice(),
                l,
                op,
                dims,
                sum_u8,
                add_u8,
            )?)),
            _ => unreachable!("storage dtypes were widened above"),
        })
    }

    fn arg_reduce(&self, l: &Layout, op: ArgReduceOp, dim: usize) -> Result<Self> {
        // the widened values (NaN and order rules are the compute dtype's); indices stay int64
        let w = self.widened()?;
        let out = match &*w {
            CpuStorage::F32(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::F64(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::I64(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::Bool(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            _ => unreachable!("storage dtypes were widened above"),
        };
        Ok(CpuStorage::I64(Buffer::from_vec(out)))
    }

    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
        if self.dtype().is_storage_only() || rhs.dtype().is_storage_only() {
            let w = self.widened()?.matmul(l, &*rhs.widened()?, rl)?;
            return w.narrowed(self.dtype());
        }
        Ok(match (self, rhs) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(Buffer::from_vec(
                matmul::matmul(a.as_slice(), l, b.as_slice(), rl)?,
            )),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(Buffer::from_vec(
                matmul::matmul(a.as_slice(), l, b.as_slice(), rl)?,
            )),
            (CpuStorage::I64(a), CpuStorage::I64(b)) => CpuStorage::I64(Buffer::from_vec(
                matmul::matmul(a.as_slice(), l, b.as_slice(), rl)?,
            )),
            (a, b) if a.dtype() != b.dtype() => {
                return Err(Error::DTypeMismatch {
                    op: "matmul",
                    lhs: a.dtype(),
                    rhs: b.dtype(),
                })
            }
            (a, _) => {
                return Err(Error::DType {
                    op: "matmul",
                    dtype: a.dtype(),
                    detail: " (expected float or int64 tensors)".into(),
                })
            }
        })
    }

    fn copy_strided(&self, l: &Layout) -> Result<Self> {
        Ok(any_dtype!(self, |b| map1("contiguous", b, l, |v| v)))
    }

    fn copy_into(&mut self, dl: &Layout, src: &Self, sl: &Layout) -> Result<()> {
        let (dd, sd) = (self.dtype(), src.dtype());
        with_slice!(src, |s, T| {
            let d = self.as_mut_slice::<T>().ok_or(Error::DTypeMismatch {
                op: "copy_",
                lhs: dd,
                rhs: sd,
            })?;
            elementwise::copy_into(d, dl, s, sl);
            Ok(())
        })
    }

    fn gather(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self> {
        let idx = index_slice("gather", index)?;
        Ok(any_dtype!(self, |b| index::gather(b, l, dim, idx, il)))
    }

    fn scatter(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
        reduce: ScatterReduce,
    ) -> Result<Self> {
        let idx = index_slice("scatter", index)?;
        if reduce == ScatterReduce::Assign {
            // data movement: any dtype, directly
            return with_slice!(self, |a, T| {
                let v = src.as_slice::<T>().ok_or(Error::DTypeMismatch {
                    op: "scatter",
                    lhs: self.dtype(),
                    rhs: src.dtype(),
                })?;
                Ok(CpuStorage::from_vec(index::scatter(
                    a,
                    l,
                    dim,
                    idx,
                    il,
                    v,
                    sl,
                    |_, s| s,
                )?))
            });
        }
        if self.dtype().is_storage_only() || src.dtype().is_storage_only() {
            let w = self.widened()?;
            let out = w.scatter(l, dim, index, il, &*src.widened()?, sl, reduce)?;
            return out.narrowed(self.dtype());
        }
        // ScatterReduce::Add from here on (Assign returned above); the sums are fn items, not
        // pointers, so the kernel inlines them (a call per element cost 3x the loop)
        Ok(match (self, src) {
            (CpuStorage::F32(a), CpuStorage::F32(s)) => CpuStorage::F32(Buffer::from_vec(
                index::scatter(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_f32)?,
            )),
            (CpuStorage::F64(a), CpuStorage::F64(s)) => CpuStorage::F64(Buffer::from_vec(
                index::scatter(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_f64)?,
            )),
            (CpuStorage::I64(a), CpuStorage::I64(s)) => CpuStorage::I64(Buffer::from_vec(
                index::scatter(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_i64)?,
            )),
            (a, s) => {
                return Err(Error::DTypeMismatch {
                    op: "scatter",
                    lhs: a.dtype(),
                    rhs: s.dtype(),
                })
            }
        })
    }

    fn index_select(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self> {
        let idx = index_slice("index_select", index)?;
        Ok(any_dtype!(self, |b| index::index_select(
            b, l, dim, idx, il
        )))
    }

    fn index_add(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
    ) -> Result<Self> {
        let idx = index_slice("index_add", index)?;
        if self.dtype().is_storage_only() || src.dtype().is_storage_only() {
            let w = self.widened()?;
            let out = w.index_add(l, dim, index, il, &*src.widened()?, sl)?;
            return out.narrowed(self.dtype());
        }
        Ok(match (self, src) {
            (CpuStorage::F32(a), CpuStorage::F32(s)) => CpuStorage::F32(Buffer::from_vec(
                index::index_add(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_f32)?,
            )),
            (CpuStorage::F64(a), CpuStorage::F64(s)) => CpuStorage::F64(Buffer::from_vec(
                index::index_add(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_f64)?,
            )),
            (CpuStorage::I64(a), CpuStorage::I64(s)) => CpuStorage::I64(Buffer::from_vec(
                index::index_add(a.as_slice(), l, dim, idx, il, s.as_slice(), sl, add_i64)?,
            )),
            (a, s) => {
                return Err(Error::DTypeMismatch {
                    op: "index_add",
                    lhs: a.dtype(),
                    rhs: s.dtype(),
                })
            }
        })
    }

    fn unary_backward(&self, l: &Layout, (g, gl): (&Self, &Layout), op: UnaryOp) -> Result<Self> {
        if self.dtype().is_storage_only() || g.dtype().is_storage_only() {
            let w = self
                .widened()?
                .unary_backward(l, (&*g.widened()?, gl), op)?;
            return w.narrowed(g.dtype());
        }
        Ok(match (self, g) {
            (CpuStorage::F32(a), CpuStorage::F32(g)) => CpuStorage::F32(Buffer::from_vec(
                elementwise::unary_backward_f32(a.as_slice(), l, g.as_slice(), gl, op)?,
            )),
            (CpuStorage::F64(a), CpuStorage::F64(g)) => CpuStorage::F64(Buffer::from_vec(
                elementwise::unary_backward_f64(a.as_slice(), l, g.as_slice(), gl, op)?,
            )),
            (a, g) => {
                return Err(Error::DTypeMismatch {
                    op: op.name(),
                    lhs: a.dtype(),
                    rhs: g.dtype(),
                })
            }
        })
    }

    fn layer_norm(&self, l: &Layout, len: usize, eps: f64) -> Result<(Self, Self)> {
        if self.dtype().is_storage_only() {
            // the row statistics stay in the compute dtype (PyTorch keeps them in float too)
            let (y, st) = self.widened()?.layer_norm(l, len, eps)?;
            return Ok((y.narrowed(self.dtype())?, st));
        }
        Ok(match self {
            CpuStorage::F32(b) => {
                let (y, st) = layer_norm::forward(b.as_slice(), l, len, eps)?;
                (
                    CpuStorage::F32(Buffer::from_vec(y)),
                    CpuStorage::F32(Buffer::from_vec(st)),
                )
            }
            CpuStorage::F64(b) => {
                let (y, st) = layer_norm::forward(b.as_slice(), l, len, eps)?;
                (
                    CpuStorage::F64(Buffer::from_vec(y)),
                    CpuStorage::F64(Buffer::from_vec(st)),
                )
            }
            other => {
                return Err(Error::DType {
                    op: "layer_norm",
                    dtype: other.dtype(),
                    detail: " (expected a float tensor)".into(),
                })
            }
        })
    }

    fn layer_norm_backward(
        &self,
        gl: &Layout,
        (x, xl): (&Self, &Layout),
        (st, sl): (&Self, &Layout),
        len: usize,
    ) -> Result<Self> {
        if self.dtype().is_storage_only() || x.dtype().is_storage_only() {
            let (g, xw) = (self.widened()?, x.widened()?);
            let w = g.layer_norm_backward(gl, (&xw, xl), (&*st.widened()?, sl), len)?;
            return w.narrowed(self.dtype());
        }
        Ok(match (self, x, st) {
            (CpuStorage::F32(g), CpuStorage::F32(x), CpuStorage::F32(st)) => {
                CpuStorage::F32(Buffer::from_vec(layer_norm::backward(
                    (g.as_slice(), gl),
                    (x.as_slice(), xl),
                    (st.as_slice(), sl),
                    len,
                )?))
            }
            (CpuStorage::F64(g), CpuStorage::F64(x), CpuStorage::F64(st)) => {
                CpuStorage::F64(Buffer::from_vec(layer_norm::backward(
                    (g.as_slice(), gl),
                    (x.as_slice(), xl),
                    (st.as_slice(), sl),
                    len,
                )?))
            }
            (g, x, _) => {
                return Err(Error::DTypeMismatch {
                    op: "layer_norm_backward",
                    lhs: g.dtype(),
                    rhs: x.dtype(),
                })
            }
        })
    }

    fn softmax_backward(
        &self,
        l: &Layout,
        y: &Self,
        yl: &Layout,
        dim: usize,
        log: bool,
    ) -> Result<Self> {
        if self.dtype().is_storage_only() || y.dtype().is_storage_only() {
            let w = self
                .widened()?
                .softmax_backward(l, &*y.widened()?, yl, dim, log)?;
            return w.narrowed(self.dtype());
        }
        Ok(match (self, y) {
            (CpuStorage::F32(g), CpuStorage::F32(y)) => CpuStorage::F32(Buffer::from_vec(
                reduce::softmax_backward(g.as_slice(), l, y.as_slice(), yl, dim, log)?,
            )),
            (CpuStorage::F64(g), CpuStorage::F64(y)) => CpuStorage::F64(Buffer::from_vec(
                reduce::softmax_backward(g.as_slice(), l, y.as_slice(), yl, dim, log)?,
            )),
            (g, y) => {
                return Err(Error::DTypeMismatch {
                    op: if log {
                        "log_softmax_backward"
                    } else {
                        "softmax_backward"
                    },
                    lhs: g.dtype(),
                    rhs: y.dtype(),
                })
            }
        })
    }

    fn attention(
        &self,
        ql: &Layout,
        (k, kl): (&Self, &Layout),
        (v, vl): (&Self, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Self, Self)> {
        let op = "scaled_dot_product_attention";
        if [self, k, v].iter().any(|s| s.dtype().is_storage_only()) {
            let (q, k, v) = (self.widened()?, k.widened()?, v.widened()?);
            let (o, lse) = q.attention(ql, (&k, kl), (&v, vl), spec)?;
            return Ok((o.narrowed(self.dtype())?, lse));
        }
        let x = attention_extents(op, ql, kl, vl)?;
        Ok(match (self, k, v) {
            (CpuStorage::F32(q), CpuStorage::F32(k), CpuStorage::F32(v)) => {
                let (o, l) = attention::forward(
                    &q.as_slice()[ql.offset()..],
                    &k.as_slice()[kl.offset()..],
                    &v.as_slice()[vl.offset()..],
                    x,
                    spec,
                )?;
                (
                    CpuStorage::F32(Buffer::from_vec(o)),
                    CpuStorage::F32(Buffer::from_vec(l)),
                )
            }
            (CpuStorage::F64(q), CpuStorage::F64(k), CpuStorage::F64(v)) => {
                let (o, l) = attention::forward(
                    &q.as_slice()[ql.offset()..],
                    &k.as_slice()[kl.offset()..],
                    &v.as_slice()[vl.offset()..],
                    x,
                    spec,
                )?;
                (
                    CpuStorage::F64(Buffer::from_vec(o)),
                    CpuStorage::F64(Buffer::from_vec(l)),
                )
            }
            (q, k, _) => {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: q.dtype(),
                    rhs: k.dtype(),
                })
            }
        })
    }

    fn attention_backward(
        &self,
        ql: &Layout,
        (k, kl): (&Self, &Layout),
        (v, vl): (&Self, &Layout),
        (g, gl): (&Self, &Layout),
        (st, sl): (&Self, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Self, Self, Self)> {
        let op = "scaled_dot_product_attention_backward";
        if [self, k, v, g].iter().any(|s| s.dtype().is_storage_only()) {
            let (q, kw, vw, gw) = (self.widened()?, k.widened()?, v.widened()?, g.widened()?);
            let stw = st.widened()?;
            let (a, b, c) =
                q.attention_backward(ql, (&kw, kl), (&vw, vl), (&gw, gl), (&stw, sl), spec)?;
            return Ok((
                a.narrowed(self.dtype())?,
                b.narrowed(k.dtype())?,
                c.narrowed(v.dtype())?,
            ));
        }
        let x = attention_extents(op, ql, kl, vl)?;
        attention_operand(op, gl, &[x.b, x.l, x.ev])?;
        attention_operand(op, sl, &[2, x.b, x.l])?;
        macro_rules! run {
            ($var:ident, $q:expr, $k:expr, $v:expr, $g:expr, $st:expr) => {{
                let (a, b, c) = attention::backward(
                    (
                        &$q.as_slice()[ql.offset()..],
                        &$k.as_slice()[kl.offset()..],
                        &$v.as_slice()[vl.offset()..],
                        &$g.as_slice()[gl.offset()..],
                    ),
                    &$st.as_slice()[sl.offset()..],
                    x,
                    spec,
                )?;
                (
                    CpuStorage::$var(Buffer::from_vec(a)),
                    CpuStorage::$var(Buffer::from_vec(b)),
                    CpuStorage::$var(Buffer::from_vec(c)),
                )
            }};
        }
        Ok(match (self, k, v, g, st) {
            (
                CpuStorage::F32(q),
                CpuStorage::F32(k),
                CpuStorage::F32(v),
                CpuStorage::F32(g),
                CpuStorage::F32(st),
            ) => run!(F32, q, k, v, g, st),
            (
                CpuStorage::F64(q),
                CpuStorage::F64(k),
                CpuStorage::F64(v),
                CpuStorage::F64(g),
                CpuStorage::F64(st),
            ) => run!(F64, q, k, v, g, st),
            (q, _, _, g, _) => {
                return Err(Error::DTypeMismatch {
                    op,
                    lhs: q.dtype(),
                    rhs: g.dtype(),
                })
            }
        })
    }

    fn lstm_cell(&self, pl: &Layout, (cp, cl): (&Self, &Layout)) -> Result<(Self, Self, Self)> {
        if self.dtype().is_storage_only() || cp.dtype().is_storage_only() {
            let (a, b, c) = self.widened()?.lstm_cell(pl, (&*cp.widened()?, cl))?;
            let d = self.dtype();
            return Ok((a.narrowed(d)?, b.narrowed(d)?, c.narrowed(d)?));
        }
        let (b, h) = lstm_dims("lstm_cell", pl, &[cl])?;
        macro_rules! run {
            ($var:ident, $p:expr, $c:expr) => {{
                let (x, y, z) = rnn::lstm_cell(
                    &$p.as_slice()[pl.offset()..],
                    &$c.as_slice()[cl.offset()..],
                    (b, h),
                )?;
                (
                    CpuStorage::$var(Buffer::from_vec(x)),
                    CpuStorage::$var(Buffer::from_vec(y)),
                    CpuStorage::$var(Buffer::from_vec(z)),
                )
            }};
        }
        Ok(match (self, cp) {
            (CpuStorage::F32(p), CpuStorage::F32(c)) => run!(F32, p, c),
            (CpuStorage::F64(p), CpuStorage::F64(c)) => run!(F64, p, c),
            (p, c) => {
                return Err(Error::DTypeMismatch {
                    op: "lstm_cell",
                    lhs: p.dtype(),
                    rhs: c.dtype(),
                })
            }
        })
    }

    fn lstm_cell_backward(
        &self,
        al: &Layout,
        (c, cl): (&Self, &Layout),
        (cp, cpl): (&Self, &Layout),
        (dh, dhl): (&Self, &Layout),
        (dc, dcl): (&Self, &Layout),
    ) -> Result<(Self, Self)> {
        if [self, c, cp, dh, dc]
            .iter()
            .any(|s| s.dtype().is_storage_only())
        {
            let w = |s: &CpuStorage| s.widened()?.into_owned();
            let (a, x, p, h, d) = (w(self)?, w(c)?, w(cp)?, w(dh)?, w(dc)?);
            let (x, y) = a.lstm_cell_backward(al, (&x, cl), (&p, cpl), (&h, dhl), (&d, dcl))?;
            return Ok((x.narrowed(self.dtype())?, y.narrowed(self.dtype())?));
        }
        let (b, h) = lstm_dims("lstm_cell_backward", al, &[cl, cpl, dhl, dcl])?;
        macro_rules! run {
            ($var:ident, $a:expr, $c:expr, $p:expr, $h:expr, $d:expr) => {{
                let (x, y) = rnn::lstm_cell_backward(
                    &$a.as_slice()[al.offset()..],
                    (
                        &$c.as_slice()[cl.offset()..],
                        &$p.as_slice()[cpl.offset()..],
                    ),
                    (
                        &$h.as_slice()[dhl.offset()..],
                        &$d.as_slice()[dcl.offset()..],
                    ),
                    (b, h),
                )?;
                (
                    CpuStorage::$var(Buffer::from_vec(x)),
                    CpuStorage::$var(Buffer::from_vec(y)),
                )
            }};
        }
        Ok(match (self, c, cp, dh, dc) {
            (
                CpuStorage::F32(a),
                CpuStorage::F32(c),
                CpuStorage::F32(p),
                CpuStorage::F32(h),
                CpuStorage::F32(d),
            ) => run!(F32, a, c, p, h, d),
            (
                CpuStorage::F64(a),
                CpuStorage::F64(c),
                CpuStorage::F64(p),
                CpuStorage::F64(h),
                CpuStorage::F64(d),
            ) => run!(F64, a, c, p, h, d),
            (a, c, ..) => {
                return Err(Error::DTypeMismatch {
                    op: "lstm_cell_backward",
                    lhs: a.dtype(),
                    rhs: c.dtype(),
                })
            }
        })
    }

    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self> {
        if self.dtype().is_storage_only() {
            return self.widened()?.softmax(l, dim, log)?.narrowed(self.dtype());
        }
        Ok(match self {
            CpuStorage::F32(b) => CpuStorage::F32(Buffer::from_vec(reduce::softmax(
                b.as_slice(),
                l,
                dim,
                log,
            )?)),
            CpuStorage::F64(b) => CpuStorage::F64(Buffer::from_vec(reduce::softmax(
                b.as_slice(),
                l,
                dim,
                log,
            )?)),
            other => {
                return Err(Error::DType {
                    op: "softmax",
                    dtype: other.dtype(),
                    detail: " (expected a float tensor)".into(),
                })
            }
        })
    }

    fn unfold(&self, l: &Layout, w: &Window, pad_value: f64) -> Result<Self> {
        if self.dtype().is_storage_only() {
            return self
                .widened()?
                .unfold(l, w, pad_value)?
                .narrowed(self.dtype());
        }
        Ok(match self {
            CpuStorage::F32(b) => CpuStorage::F32(Buffer::from_vec(conv::unfold(
                b.as_slice(),
                l,
                w,
                pad_value as f32,
            )?)),
            CpuStorage::F64(b) => CpuStorage::F64(Buffer::from_vec(conv::unfold(
                b.as_slice(),
                l,
                w,
                pad_value,
            )?)),
            CpuStorage::I64(b) => CpuStorage::I64(Buffer::from_vec(conv::unfold(
                b.as_slice(),
                l,
                w,
                pad_value as i64,
            )?)),
            CpuStorage::Bool(b) => CpuStorage::Bool(Buffer::from_vec(conv::unfold(
                b.as_slice(),
                l,
                w,
                (pad_value != 0.0) as u8,
            )?)),
            _ => unreachable!("storage dtypes were widened above"),
        })
    }

    fn argsort_rows(&self, l: &Layout, descending: bool) -> Result<Self> {
        // storage dtypes order by their widened values (exact: widening keeps every value)
        let w = self.widened()?;
        let n = l.dims().last().copied().unwrap_or(1);
        macro_rules! rows {
            ($b:expr) => {
                crate::sort::argsort_rows(&map1("argsort", $b.as_slice(), l, |v| v)?, n, descending)
            };
        }
        let idx = match &*w {
            CpuStorage::F32(b) => rows!(b),
            CpuStorage::F64(b) => rows!(b),
            CpuStorage::I64(b) => rows!(b),
            CpuStorage::Bool(b) => rows!(b),
            _ => unreachable!("storage dtypes were widened above"),
        };
        Ok(CpuStorage::I64(Buffer::from_vec(idx)))
    }

    fn pool_argmax(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self> {
        // storage dtypes compare by their widened values (exact: widening keeps every value)
        let wide = self.widened()?;
        let idx = match &*wide {
            CpuStorage::F32(b) => conv::pool_argmax(b.as_slice(), l, w, out_hw)?,
            CpuStorage::F64(b) => conv::pool_argmax(b.as_slice(), l, w, out_hw)?,
            CpuStorage::I64(b) => conv::pool_argmax(b.as_slice(), l, w, out_hw)?,
            CpuStorage::Bool(_) => {
                return Err(Error::DType {
                    op: "max_pool2d",
                    dtype: DType::Bool,
                    detail: " (expected a numeric tensor)".into(),
                })
            }
            _ => unreachable!("storage dtypes were widened above"),
        };
        Ok(CpuStorage::I64(Buffer::from_vec(idx)))
    }

    fn fold(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self> {
        if self.dtype().is_storage_only() {
            return self.widened()?.fold(l, w, out_hw)?.narrowed(self.dtype());
        }
        Ok(match self {
            CpuStorage::F32(b) => CpuStorage::F32(Buffer::from_vec(conv::fold(
                b.as_slice(),
                l,
                w,
                out_hw,
                add_f32,
            )?)),
            CpuStorage::F64(b) => CpuStorage::F64(Buffer::from_vec(conv::fold(
                b.as_slice(),
                l,
                w,
                out_hw,
                add_f64,
            )?)),
            CpuStorage::I64(b) => CpuStorage::I64(Buffer::from_vec(conv::fold(
                b.as_slice(),
                l,
                w,
                out_hw,
                add_i64,
            )?)),
            other => {
                return Err(Error::DType {
                    op: "fold",
                    dtype: other.dtype(),
                    detail: " (expected a numeric tensor)".into(),
                })
            }
        })
    }

    fn fused_update(
        &mut self,
        l: &Layout,
        grad: &Self,
        gl: &Layout,
        states: &mut [(&mut Self, &Layout)],
        rule: &crate::optim::rule::Rule,
    ) -> Result<()> {
        let packed = |s: &CpuStorage| s.dtype().is_storage_only();
        if !(packed(self) || packed(grad) || states.iter().any(|(s, _)| packed(s))) {
            return optim::fused_update(self, l, grad, gl, states, rule);
        }
        // a float16 parameter (or state): the step runs on widened copies, and the parameter
        // and states are rounded back into their own buffers (PyTorch keeps a float16
        // parameter's optimiser state in float16 too)
        let mut p = self.widened()?.into_owned()?;
        let g = grad.widened()?;
        let mut ws = states
            .iter()
            .map(|(s, _)| s.widened()?.into_owned())
            .collect::<Result<Vec<_>>>()?;
        {
            let mut refs: Vec<(&mut CpuStorage, &Layout)> = ws
                .iter_mut()
                .zip(states.iter())
                .map(|(w, (_, sl))| (w, *sl))
                .collect();
            optim::fused_update(&mut p, l, &g, gl, &mut refs, rule)?;
        }
        self.store_rounded(&p)?;
        for ((s, _), w) in states.iter_mut().zip(&ws) {
            s.store_rounded(w)?;
        }
        Ok(())
    }

    fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<Self> {
        macro_rules! arm {
            ($v:ident, $t:ty) => {
                if dtype == DType::$v {
                    return Ok(CpuStorage::$v(Buffer::from_vec(full_vec::<$t>(
                        shape, value,
                    )?)));
                }
            };
        }
        for_each_variant!(arm);
        unreachable!("every dtype has an arm above")
    }
}

/// A storage's values in its compute dtype: itself, or a widened copy (see
/// [`CpuStorage::widened`]). Storages are not `Clone` (a copy of a tensor's memory is always
/// explicit), hence this instead of a `Cow`.
pub(crate) enum Widened<'a> {
    Borrowed(&'a CpuStorage),
    Owned(CpuStorage),
}

impl std::ops::Deref for Widened<'_> {
    type Target = CpuStorage;
    fn deref(&self) -> &CpuStorage {
        match self {
            Widened::Borrowed(s) => s,
            Widened::Owned(s) => s,
        }
    }
}

impl Widened<'_> {
    /// An owned storage: the widened copy, or a copy of the borrowed one.
    fn into_owned(self) -> Result<CpuStorage> {
        match self {
            Widened::Owned(s) => Ok(s),
            Widened::Borrowed(s) => s.copy_strided(&Layout::contiguous(Shape::new(vec![s.len()]))),
        }
    }
}

impl CpuStorage {
    /// Writes `src` (same length, any dtype) over the whole buffer, rounded to this dtype: the
    /// in-place write-back of a step computed on widened copies. In place, so memory shared
    /// with NumPy stays shared.
    fn store_rounded(&mut self, src: &CpuStorage) -> Result<()> {
        let lin = Layout::contiguous(Shape::new(vec![self.len()]));
        let rounded = src.cast(&lin, self.dtype())?;
        self.copy_into(&lin, &rounded, &lin)
    }
}

fn index_slice<'a>(op: &'static str, index: &'a CpuStorage) -> Result<&'a [i64]> {
    index.as_slice::<i64>().ok_or(Error::DType {
        op,
        dtype: index.dtype(),
        detail: " (indices must be int64)".into(),
    })
}

/// The extents of an attention problem from its q, k, v layouts (`[B, L, E]`, `[B, S, E]`,
/// `[B, S, Ev]`, contiguous), or a shape error naming the op.
pub(crate) fn attention_extents(
    op: &'static str,
    ql: &Layout,
    kl: &Layout,
    vl: &Layout,
) -> Result<attention::Extents> {
    let (q, k, v) = (ql.dims(), kl.dims(), vl.dims());
    let bad = |detail: &str| Error::ShapeMismatch {
        op,
        lhs: ql.shape().clone(),
        rhs: kl.shape().clone(),
        detail: format!(" (value {:?}){detail}", v),
    };
    if q.len() != 3 || k.len() != 3 || v.len() != 3 {
        return Err(bad(": q, k and v must be 3-d [batch, seq, dim]"));
    }
    if k[0] != q[0] || v[0] != q[0] || k[2] != q[2] || v[1] != k[1] {
        return Err(bad(": expected q [B, L, E], k [B, S, E], v [B, S, Ev]"));
    }
    if !(ql.is_contiguous() && kl.is_contiguous() && vl.is_contiguous()) {
        return Err(bad(": the fused kernel reads contiguous operands"));
    }
    Ok(attention::Extents {
        b: q[0],
        l: q[1],
        s: k[1],
        e: q[2],
        ev: v[2],
    })
}

/// Checks that an extra attention operand is contiguous with `dims`.
pub(crate) fn attention_operand(op: &'static str, l: &Layout, dims: &[usize]) -> Result<()> {
    if l.dims() != dims || !l.is_contiguous() {
        return Err(Error::ShapeMismatch {
            op,
            lhs: l.shape().clone(),
            rhs: Shape::new(dims.to_vec()),
            detail: " (attention operand: expected this contiguous shape)".into(),
        });
    }
    Ok(())
}

/// `(B, H)` of an LSTM cell step from the `[B, 4H]` operand's layout, checking that the `[B, H]`
/// operands match and that every operand is contiguous.
pub(crate) fn lstm_dims(
    op: &'static str,
    wide: &Layout,
    narrow: &[&Layout],
) -> Result<(usize, usize)> {
    let d = wide.dims();
    let bad = |l: &Layout| Error::ShapeMismatch {
        op,
        lhs: wide.shape().clone(),
        rhs: l.shape().clone(),
        detail: " (expected contiguous [B, 4H] and [B, H] operands)".into(),
    };
    if d.len() != 2 || d[1] % 4 != 0 || !wide.is_contiguous() {
        return Err(bad(wide));
    }
    let (b, h) = (d[0], d[1] / 4);
    for l in narrow {
        if l.dims() != [b, h] || !l.is_contiguous() {
            return Err(bad(l));
        }
    }
    Ok((b, h))
}
