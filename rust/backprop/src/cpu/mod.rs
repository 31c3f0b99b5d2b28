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
use crate::{DType, Device, Element, Error, Layout, Result, Scalar, Shape};
pub use buffer::Buffer;
use elementwise::{map1, select};

/// CPU memory of one dtype.
pub enum CpuStorage {
    F32(Buffer<f32>),
    F64(Buffer<f64>),
    I64(Buffer<i64>),
    Bool(Buffer<u8>),
}

/// Runs `$body` with `$b` bound to the typed slice of any dtype.
macro_rules! any_dtype {
    ($s:expr, |$b:ident| $body:expr) => {
        match $s {
            CpuStorage::F32(x) => {
                let $b = x.as_slice();
                CpuStorage::F32(Buffer::from_vec($body?))
            }
            CpuStorage::F64(x) => {
                let $b = x.as_slice();
                CpuStorage::F64(Buffer::from_vec($body?))
            }
            CpuStorage::I64(x) => {
                let $b = x.as_slice();
                CpuStorage::I64(Buffer::from_vec($body?))
            }
            CpuStorage::Bool(x) => {
                let $b = x.as_slice();
                CpuStorage::Bool(Buffer::from_vec($body?))
            }
        }
    };
}

/// Same-dtype pair dispatch; a dtype mismatch is an engine bug surfaced as an error, not a panic.
macro_rules! pair {
    ($op:expr, $a:expr, $b:expr, |$x:ident, $y:ident, $T:ident| $body:expr) => {
        match ($a, $b) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                type $T = f32;
                let ($x, $y) = (a.as_slice(), b.as_slice());
                $body
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                type $T = f64;
                let ($x, $y) = (a.as_slice(), b.as_slice());
                $body
            }
            (CpuStorage::I64(a), CpuStorage::I64(b)) => {
                type $T = i64;
                let ($x, $y) = (a.as_slice(), b.as_slice());
                $body
            }
            (CpuStorage::Bool(a), CpuStorage::Bool(b)) => {
                type $T = u8;
                let ($x, $y) = (a.as_slice(), b.as_slice());
                $body
            }
            (a, b) => Err(Error::DTypeMismatch {
                op: $op,
                lhs: a.dtype(),
                rhs: b.dtype(),
            }),
        }
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
        }
    }

    /// Typed view of the whole buffer, if `T` matches the dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        let any: &dyn std::any::Any = match self {
            CpuStorage::F32(b) => b,
            CpuStorage::F64(b) => b,
            CpuStorage::I64(b) => b,
            CpuStorage::Bool(b) => b,
        };
        any.downcast_ref::<Buffer<T>>().map(|b| b.as_slice())
    }

    pub fn as_mut_slice<T: Element>(&mut self) -> Option<&mut [T]> {
        let any: &mut dyn std::any::Any = match self {
            CpuStorage::F32(b) => b,
            CpuStorage::F64(b) => b,
            CpuStorage::I64(b) => b,
            CpuStorage::Bool(b) => b,
        };
        any.downcast_mut::<Buffer<T>>().map(|b| b.as_mut_slice())
    }

    /// Base address of the buffer (for zero-copy export, e.g. to NumPy).
    pub fn as_ptr(&self) -> *const u8 {
        match self {
            CpuStorage::F32(b) => b.as_slice().as_ptr() as *const u8,
            CpuStorage::F64(b) => b.as_slice().as_ptr() as *const u8,
            CpuStorage::I64(b) => b.as_slice().as_ptr() as *const u8,
            CpuStorage::Bool(b) => b.as_slice().as_ptr(),
        }
    }

    /// Values of a strided view as f64, row-major (for printing, `item`, tests).
    pub fn to_f64_vec(&self, l: &Layout) -> Result<Vec<f64>> {
        Ok(match self {
            CpuStorage::F32(b) => map1("to_vec", b.as_slice(), l, |v| v as f64)?,
            CpuStorage::F64(b) => map1("to_vec", b.as_slice(), l, |v| v)?,
            CpuStorage::I64(b) => map1("to_vec", b.as_slice(), l, |v| v as f64)?,
            CpuStorage::Bool(b) => map1("to_vec", b.as_slice(), l, |v| v as f64)?,
        })
    }
}

fn cast_vec<T: Element, U: Element>(x: &[T], l: &Layout) -> Result<Vec<U>> {
    map1("to_dtype", x, l, |v| U::from_f64(v.to_f64()))
}

/// int64 -> any: one rounding (through f64 an int above 2^53 would be rounded twice).
fn cast_from_i64<U: Element>(x: &[i64], l: &Layout) -> Result<Vec<U>> {
    map1("to_dtype", x, l, U::from_i64)
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
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::Bool(_) => DType::Bool,
        }
    }

    fn device(&self) -> Device {
        Device::Cpu
    }

    fn len(&self) -> usize {
        match self {
            CpuStorage::F32(b) => b.len(),
            CpuStorage::F64(b) => b.len(),
            CpuStorage::I64(b) => b.len(),
            CpuStorage::Bool(b) => b.len(),
        }
    }

    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self> {
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
        Ok(match (t, f) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => CpuStorage::F32(Buffer::from_vec(select(
                c,
                l,
                a.as_slice(),
                tl,
                b.as_slice(),
                fl,
            )?)),
            (CpuStorage::F64(a), CpuStorage::F64(b)) => CpuStorage::F64(Buffer::from_vec(select(
                c,
                l,
                a.as_slice(),
                tl,
                b.as_slice(),
                fl,
            )?)),
            (CpuStorage::I64(a), CpuStorage::I64(b)) => CpuStorage::I64(Buffer::from_vec(select(
                c,
                l,
                a.as_slice(),
                tl,
                b.as_slice(),
                fl,
            )?)),
            (CpuStorage::Bool(a), CpuStorage::Bool(b)) => CpuStorage::Bool(Buffer::from_vec(
                select(c, l, a.as_slice(), tl, b.as_slice(), fl)?,
            )),
            (a, b) => {
                return Err(Error::DTypeMismatch {
                    op: "where",
                    lhs: a.dtype(),
                    rhs: b.dtype(),
                })
            }
        })
    }

    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self> {
        macro_rules! to {
            ($x:expr) => {
                match dtype {
                    DType::F32 => CpuStorage::F32(Buffer::from_vec(cast_vec($x, l)?)),
                    DType::F64 => CpuStorage::F64(Buffer::from_vec(cast_vec($x, l)?)),
                    DType::I64 => CpuStorage::I64(Buffer::from_vec(cast_vec($x, l)?)),
                    DType::Bool => CpuStorage::Bool(Buffer::from_vec(cast_vec($x, l)?)),
                }
            };
        }
        Ok(match self {
            CpuStorage::F32(b) => to!(b.as_slice()),
            CpuStorage::F64(b) => to!(b.as_slice()),
            CpuStorage::I64(b) => {
                let x = b.as_slice();
                match dtype {
                    DType::F32 => CpuStorage::F32(Buffer::from_vec(cast_from_i64(x, l)?)),
                    DType::F64 => CpuStorage::F64(Buffer::from_vec(cast_from_i64(x, l)?)),
                    DType::I64 => CpuStorage::I64(Buffer::from_vec(cast_from_i64(x, l)?)),
                    DType::Bool => CpuStorage::Bool(Buffer::from_vec(cast_from_i64(x, l)?)),
                }
            }
            CpuStorage::Bool(b) => to!(b.as_slice()),
        })
    }

    fn reduce(&self, l: &Layout, op: ReduceOp, dims: &[usize]) -> Result<Self> {
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
        })
    }

    fn arg_reduce(&self, l: &Layout, op: ArgReduceOp, dim: usize) -> Result<Self> {
        let out = match self {
            CpuStorage::F32(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::F64(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::I64(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
            CpuStorage::Bool(b) => reduce::arg_reduce(b.as_slice(), l, op, dim)?,
        };
        Ok(CpuStorage::I64(Buffer::from_vec(out)))
    }

    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self> {
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
        match (self, src) {
            (CpuStorage::F32(d), CpuStorage::F32(s)) => {
                elementwise::copy_into(d.as_mut_slice(), dl, s.as_slice(), sl)
            }
            (CpuStorage::F64(d), CpuStorage::F64(s)) => {
                elementwise::copy_into(d.as_mut_slice(), dl, s.as_slice(), sl)
            }
            (CpuStorage::I64(d), CpuStorage::I64(s)) => {
                elementwise::copy_into(d.as_mut_slice(), dl, s.as_slice(), sl)
            }
            (CpuStorage::Bool(d), CpuStorage::Bool(s)) => {
                elementwise::copy_into(d.as_mut_slice(), dl, s.as_slice(), sl)
            }
            _ => {
                return Err(Error::DTypeMismatch {
                    op: "copy_",
                    lhs: dd,
                    rhs: sd,
                })
            }
        }
        Ok(())
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
        fn pick<T: Element>(reduce: ScatterReduce, add: fn(T, T) -> T) -> fn(T, T) -> T {
            match reduce {
                ScatterReduce::Add => add,
                ScatterReduce::Assign => |_, s| s,
            }
        }
        Ok(match (self, src) {
            (CpuStorage::F32(a), CpuStorage::F32(s)) => {
                CpuStorage::F32(Buffer::from_vec(index::scatter(
                    a.as_slice(),
                    l,
                    dim,
                    idx,
                    il,
                    s.as_slice(),
                    sl,
                    pick(reduce, add_f32),
                )?))
            }
            (CpuStorage::F64(a), CpuStorage::F64(s)) => {
                CpuStorage::F64(Buffer::from_vec(index::scatter(
                    a.as_slice(),
                    l,
                    dim,
                    idx,
                    il,
                    s.as_slice(),
                    sl,
                    pick(reduce, add_f64),
                )?))
            }
            (CpuStorage::I64(a), CpuStorage::I64(s)) => {
                CpuStorage::I64(Buffer::from_vec(index::scatter(
                    a.as_slice(),
                    l,
                    dim,
                    idx,
                    il,
                    s.as_slice(),
                    sl,
                    pick(reduce, add_i64),
                )?))
            }
            (CpuStorage::Bool(a), CpuStorage::Bool(s)) if reduce == ScatterReduce::Assign => {
                CpuStorage::Bool(Buffer::from_vec(index::scatter(
                    a.as_slice(),
                    l,
                    dim,
                    idx,
                    il,
                    s.as_slice(),
                    sl,
                    |_, s| s,
                )?))
            }
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
        })
    }

    fn fold(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self> {
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
        optim::fused_update(self, l, grad, gl, states, rule)
    }

    fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<Self> {
        Ok(match dtype {
            DType::F32 => CpuStorage::F32(Buffer::from_vec(full_vec(shape, value)?)),
            DType::F64 => CpuStorage::F64(Buffer::from_vec(full_vec(shape, value)?)),
            DType::I64 => CpuStorage::I64(Buffer::from_vec(full_vec(shape, value)?)),
            DType::Bool => CpuStorage::Bool(Buffer::from_vec(full_vec(shape, value)?)),
        })
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
