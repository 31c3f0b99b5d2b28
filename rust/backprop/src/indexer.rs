//! NumPy/PyTorch indexing: `t[0, 1:3, None, ..., idx, mask]` as [`Tensor::index`], and the
//! assignment `t[key] = value` as [`Tensor::index_put`] (out of place, differentiable) and
//! [`Tensor::index_put_`] (in place).
//!
//! Integers, slices, `None` and `...` are *basic* indices: they only change the layout, so the
//! result is a view. Int64 tensors and bool masks are *advanced* indices: they gather (a copy).
//! Integers are applied as `select` before the advanced indices are looked at (PyTorch's order),
//! so the rule for where the advanced result's dims go is NumPy's rule applied to the dims that
//! remain: where the advanced indices sit on adjacent dims, the broadcast index shape replaces
//! them in place; otherwise it goes first.
//!
//! ```
//! use backprop::{Device, DType, IndexOp, Indexer, Tensor};
//! let t = Tensor::arange(0.0, 12.0, 1.0, DType::F32, Device::Cpu)?.reshape([3, 4])?;
//! let row = t.i(1)?;                                   // t[1]
//! assert_eq!(row.to_vec::<f32>()?, vec![4.0, 5.0, 6.0, 7.0]);
//! let col = t.i((.., 2))?;                             // t[:, 2]
//! assert_eq!(col.to_vec::<f32>()?, vec![2.0, 6.0, 10.0]);
//! let idx = Tensor::from_vec(vec![2i64, 0], [2], Device::Cpu)?;
//! let picked = t.index(&[Indexer::from(&idx), Indexer::from(1..3)])?; // t[[2, 0], 1:3]
//! assert_eq!(picked.to_vec::<f32>()?, vec![9.0, 10.0, 1.0, 2.0]);
//! # Ok::<(), backprop::Error>(())
//! ```

use crate::op::BinaryOp;
use crate::views::{select_position, slice_bounds};
use crate::{DType, Device, Error, Layout, Result, Scalar, Shape, Tensor};
use std::ops::{Range, RangeFrom, RangeFull, RangeInclusive, RangeTo, RangeToInclusive};

/// One entry of an index key.
#[derive(Debug, Clone)]
pub enum Indexer {
    /// `t[i]`: one position along the dim, which is removed (negative counts from the end).
    Select(i64),
    /// `t[start:stop:step]` with NumPy's clamping of out-of-range bounds; `step > 0`.
    Slice {
        start: Option<i64>,
        stop: Option<i64>,
        step: i64,
    },
    /// `t[None]`: a new dim of extent 1.
    NewAxis,
    /// `t[...]`: as many full slices as the other entries leave dims.
    Ellipsis,
    /// An int64 tensor of positions or a bool mask (advanced indexing).
    Tensor(Tensor),
}

impl Indexer {
    /// The full slice `:`.
    pub fn full() -> Indexer {
        Indexer::Slice {
            start: None,
            stop: None,
            step: 1,
        }
    }

    /// How many dims of the indexed tensor this entry consumes.
    fn consumes(&self) -> usize {
        match self {
            Indexer::Select(_) | Indexer::Slice { .. } => 1,
            Indexer::Tensor(m) if m.dtype() == DType::Bool => m.rank(),
            Indexer::Tensor(_) => 1,
            Indexer::NewAxis | Indexer::Ellipsis => 0,
        }
    }
}

impl From<i64> for Indexer {
    fn from(i: i64) -> Self {
        Indexer::Select(i)
    }
}
impl From<i32> for Indexer {
    fn from(i: i32) -> Self {
        Indexer::Select(i as i64)
    }
}
impl From<usize> for Indexer {
    fn from(i: usize) -> Self {
        Indexer::Select(i64::try_from(i).unwrap_or(i64::MAX))
    }
}
impl From<RangeFull> for Indexer {
    fn from(_: RangeFull) -> Self {
        Indexer::full()
    }
}
impl From<Range<i64>> for Indexer {
    fn from(r: Range<i64>) -> Self {
        Indexer::Slice {
            start: Some(r.start),
            stop: Some(r.end),
            step: 1,
        }
    }
}
impl From<Range<i32>> for Indexer {
    fn from(r: Range<i32>) -> Self {
        Indexer::from(r.start as i64..r.end as i64)
    }
}
impl From<RangeFrom<i64>> for Indexer {
    fn from(r: RangeFrom<i64>) -> Self {
        Indexer::Slice {
            start: Some(r.start),
            stop: None,
            step: 1,
        }
    }
}
impl From<RangeTo<i64>> for Indexer {
    fn from(r: RangeTo<i64>) -> Self {
        Indexer::Slice {
            start: None,
            stop: Some(r.end),
            step: 1,
        }
    }
}
impl From<RangeInclusive<i64>> for Indexer {
    fn from(r: RangeInclusive<i64>) -> Self {
        let (a, b) = r.into_inner();
        // `a..=-1` runs to the end (a stop of 0 would be empty)
        let stop = if b == -1 {
            None
        } else {
            Some(b.saturating_add(1))
        };
        Indexer::Slice {
            start: Some(a),
            stop,
            step: 1,
        }
    }
}
impl From<RangeToInclusive<i64>> for Indexer {
    fn from(r: RangeToInclusive<i64>) -> Self {
        Indexer::from(0..=r.end)
    }
}
impl From<&Tensor> for Indexer {
    fn from(t: &Tensor) -> Self {
        Indexer::Tensor(t.clone())
    }
}
impl From<Tensor> for Indexer {
    fn from(t: Tensor) -> Self {
        Indexer::Tensor(t)
    }
}

/// `t.i(key)` for keys written as Rust values: `t.i(0)`, `t.i((.., 1))`, `t.i((0, 1..3, &idx))`
/// (Candle's `IndexOp`).
pub trait IndexOp<T> {
    fn i(&self, key: T) -> Result<Tensor>;
}

impl<A: Into<Indexer>> IndexOp<A> for Tensor {
    fn i(&self, key: A) -> Result<Tensor> {
        self.index(&[key.into()])
    }
}

macro_rules! index_tuple {
    ($($t:ident),+) => {
        impl<$($t: Into<Indexer>),+> IndexOp<($($t,)+)> for Tensor {
            #[allow(non_snake_case)]
            fn i(&self, key: ($($t,)+)) -> Result<Tensor> {
                let ($($t,)+) = key;
                self.index(&[$($t.into()),+])
            }
        }
    };
}
index_tuple!(A);
index_tuple!(A, B);
index_tuple!(A, B, C);
index_tuple!(A, B, C, D);
index_tuple!(A, B, C, D, E);

/// What resolving a key needs from the thing indexed: a tensor (for `index`, whose views are
/// recorded for autograd) or a bare layout (for the positions `index_put` writes to, computed
/// without touching memory).
trait Viewable: Sized {
    fn extents(&self) -> &[usize];
    fn pick(&self, dim: usize, index: i64) -> Result<Self>;
    fn range(&self, dim: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Result<Self>;
    fn new_axis(&self, dim: usize) -> Result<Self>;
}

impl Viewable for Tensor {
    fn extents(&self) -> &[usize] {
        self.dims()
    }
    fn pick(&self, dim: usize, index: i64) -> Result<Self> {
        self.select(dim, index)
    }
    fn range(&self, dim: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Result<Self> {
        self.slice(dim, start, stop, step)
    }
    fn new_axis(&self, dim: usize) -> Result<Self> {
        self.unsqueeze(dim)
    }
}

impl Viewable for Layout {
    fn extents(&self) -> &[usize] {
        self.dims()
    }
    fn pick(&self, dim: usize, index: i64) -> Result<Self> {
        let i = select_position(self.dims()[dim], dim, index)?;
        Ok(Layout::select(self, dim, i))
    }
    fn range(&self, dim: usize, start: Option<i64>, stop: Option<i64>, step: i64) -> Result<Self> {
        let (s, len) = slice_bounds(self.dims()[dim], start, stop, step)?;
        Ok(Layout::slice(self, dim, s, len, step as usize))
    }
    fn new_axis(&self, dim: usize) -> Result<Self> {
        Ok(Layout::unsqueeze(self, dim))
    }
}

/// An index key resolved: the view of its basic entries, and the advanced entries as (dim of
/// that view, int64 positions) pairs.
struct Resolved<V> {
    basic: V,
    advanced: Vec<(usize, Tensor)>,
}

fn index_error(msg: impl Into<String>) -> Error {
    Error::Index {
        op: "index",
        msg: msg.into(),
    }
}

/// Applies the basic entries of `key` to `t` and collects the advanced ones.
fn resolve<V: Viewable>(t: V, device: Device, key: &[Indexer]) -> Result<Resolved<V>> {
    let rank = t.extents().len();
    if key
        .iter()
        .filter(|i| matches!(i, Indexer::Ellipsis))
        .count()
        > 1
    {
        return Err(index_error(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    let consumed: usize = key.iter().map(Indexer::consumes).sum();
    if consumed > rank {
        return Err(index_error(format!(
            "too many indices for tensor of dimension {rank} (got {consumed})"
        )));
    }
    let mut cur = t;
    let mut d = 0usize;
    let mut advanced: Vec<(usize, Tensor)> = Vec::new();
    for it in key {
        match it {
            Indexer::Select(i) => {
                if d >= cur.extents().len() {
                    return Err(index_error("invalid index of a 0-dim tensor"));
                }
                cur = cur.pick(d, *i)?
            }
            Indexer::Slice { start, stop, step } => {
                if *step <= 0 {
                    return Err(Error::invalid(
                        "index",
                        "step must be greater than zero (negative slice steps are not supported, as in PyTorch; use flip)",
                    ));
                }
                if d >= cur.extents().len() {
                    return Err(index_error("too many indices for a 0-dim tensor"));
                }
                cur = cur.range(d, *start, *stop, *step)?;
                d += 1;
            }
            Indexer::NewAxis => {
                cur = cur.new_axis(d)?;
                d += 1;
            }
            Indexer::Ellipsis => d += rank - consumed,
            Indexer::Tensor(m) if m.dtype() == DType::Bool => {
                // an index on another device is moved, as PyTorch does for CPU indices
                let m = &m.to_device(device)?;
                if m.rank() == 0 {
                    // t[True] is t[None]; t[False] is an empty new dim (NumPy's rule)
                    cur = cur.new_axis(d)?;
                    let ids: Vec<i64> = if m.item()? != 0.0 { vec![0] } else { vec![] };
                    let n = ids.len();
                    advanced.push((d, Tensor::from_vec(ids, [n], device)?));
                    d += 1;
                    continue;
                }
                let k = m.rank();
                if cur.extents().get(d..d + k) != Some(m.dims()) {
                    return Err(index_error(format!(
                        "the shape of the mask {} does not match the shape {:?} of the indexed tensor starting at dim {d}",
                        m.shape(),
                        cur.extents()
                    )));
                }
                let nz = m.nonzero()?; // [count, k]
                for j in 0..k {
                    advanced.push((d + j, nz.select(1usize, j as i64)?.contiguous()?));
                }
                d += k;
            }
            Indexer::Tensor(ix) => {
                // int32 (and narrower) indices are accepted and widened, as PyTorch does
                let widened;
                let ix = if ix.dtype().is_int() && ix.dtype() != DType::I64 {
                    widened = ix.to_dtype(DType::I64)?;
                    &widened
                } else {
                    ix
                };
                if ix.dtype() != DType::I64 {
                    return Err(index_error(format!(
                        "tensors used as indices must be long (int64) or bool, got {}",
                        ix.dtype()
                    )));
                }
                let ix = &ix.to_device(device)?;
                if ix.rank() == 0 {
                    // a 0-d index tensor behaves as an integer
                    cur = cur.pick(d, ix.item()? as i64)?;
                } else {
                    advanced.push((d, ix.clone()));
                    d += 1;
                }
            }
        }
    }
    Ok(Resolved {
        basic: cur,
        advanced,
    })
}

/// Gathers `x` at the advanced indices (NumPy's rules: broadcast the index tensors; the indexed
/// dims are replaced by the broadcast shape, in place if they are adjacent, else in front).
fn gather_advanced(x: &Tensor, advanced: &[(usize, Tensor)]) -> Result<Tensor> {
    if advanced.is_empty() {
        return Ok(x.clone());
    }
    let dims: Vec<usize> = advanced.iter().map(|(d, _)| *d).collect();
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    // move the advanced dims to the front when they are not adjacent
    let (x, first) = if adjacent {
        (x.clone(), dims[0])
    } else {
        let mut perm = dims.clone();
        perm.extend((0..x.rank()).filter(|d| !dims.contains(d)));
        (x.permute(&perm)?, 0)
    };
    let k = dims.len();
    let sizes: Vec<usize> = (0..k).map(|j| x.dims()[first + j]).collect();
    let mut bshape = Shape::scalar();
    for (_, t) in advanced {
        bshape = Shape::broadcast("index", &bshape, t.shape())?;
    }
    let mut linear: Option<Tensor> = None;
    for (j, (_, t)) in advanced.iter().enumerate() {
        let t = wrap_negative(t, dims[j], sizes[j])?.broadcast_to(&bshape)?;
        linear = Some(match linear {
            None => t,
            Some(l) => l
                .binary_scalar(Scalar::Int(sizes[j] as i64), BinaryOp::Mul, false)?
                .add(&t)?,
        });
    }
    let linear = linear.ok_or_else(|| Error::invalid("index", "internal: no advanced index"))?;
    let mut merged: Vec<usize> = x.dims()[..first].to_vec();
    merged.push(sizes.iter().product());
    merged.extend_from_slice(&x.dims()[first + k..]);
    let xm = x.reshape(merged)?;
    let flat = linear.reshape([linear.numel()])?;
    let picked = xm.index_select(first, &flat)?;
    let mut out: Vec<usize> = x.dims()[..first].to_vec();
    out.extend_from_slice(bshape.dims());
    out.extend_from_slice(&x.dims()[first + k..]);
    picked.reshape(out)
}

/// Positions counted from the end made non-negative, after checking every position is in range.
fn wrap_negative(t: &Tensor, dim: usize, size: usize) -> Result<Tensor> {
    if t.numel() > 0 {
        let (lo, hi) = (t.min_all()?.item()?, t.max_all()?.item()?);
        let n = size as f64;
        if lo < -n || hi >= n {
            let bad = if lo < -n { lo } else { hi };
            return Err(Error::IndexOutOfRange {
                op: "index",
                index: bad as i64,
                dim,
                size,
            });
        }
        if lo >= 0.0 {
            return Ok(t.clone());
        }
    }
    Tensor::where_cond(
        &t.lt_scalar(0.0)?,
        &t.binary_scalar(Scalar::Int(size as i64), BinaryOp::Add, false)?,
        t,
    )
}

/// The row-major positions (in a contiguous tensor of `l`'s underlying shape) of the elements a
/// layout views, as an int64 tensor of the layout's shape. Built from one arange per dim, so it
/// costs the size of the view, not of the whole tensor.
fn positions(l: &Layout, device: Device) -> Result<Tensor> {
    let mut pos = Tensor::full_scalar(Scalar::Int(l.offset() as i64), DType::I64, device)?;
    let r = l.rank();
    for (d, (&n, &s)) in l.dims().iter().zip(l.strides()).enumerate() {
        let mut shape = vec![1usize; r];
        shape[d] = n;
        let a = Tensor::arange(0.0, n as f64, 1.0, DType::I64, device)?
            .binary_scalar(Scalar::Int(s as i64), BinaryOp::Mul, false)?
            .reshape(shape)?;
        pos = pos.add(&a)?;
    }
    pos.broadcast_to(l.shape())?.contiguous()
}

impl Tensor {
    /// `self[key]` with NumPy/PyTorch semantics: a view when `key` holds only integers, slices,
    /// `NewAxis` and `Ellipsis`; a gathered copy when it holds index tensors or masks.
    pub fn index(&self, key: &[Indexer]) -> Result<Tensor> {
        let r = resolve(self.clone(), self.device(), key)?;
        gather_advanced(&r.basic, &r.advanced)
    }

    /// `self` with `value` written at `self[key]` (added there when `accumulate`, like PyTorch's
    /// `index_put(..., accumulate=True)`), out of place. Differentiable with respect to `self`
    /// (the overwritten elements get no gradient) and `value` (summed over its broadcast).
    /// Where an advanced key names one element several times, the CPU keeps the last value in
    /// index order (PyTorch leaves the choice undefined); with `accumulate` all are added.
    pub fn index_put(&self, key: &[Indexer], value: &Tensor, accumulate: bool) -> Result<Tensor> {
        let pos = self.key_positions(key)?;
        let value = value_for(self, value, pos.shape())?;
        let flat_pos = pos.reshape([pos.numel()])?;
        let flat_val = value.reshape([value.numel()])?;
        let flat = self.contiguous()?.reshape([self.numel()])?;
        let out = if accumulate {
            flat.scatter_add(0usize, &flat_pos, &flat_val)?
        } else {
            flat.scatter(0usize, &flat_pos, &flat_val)?
        };
        out.reshape(self.shape().clone())
    }

    /// `self[key] = value` in place (Python's `__setitem__`), with gradients when autograd
    /// records: `self` takes the history of [`Tensor::index_put`].
    pub fn index_put_(&self, key: &[Indexer], value: &Tensor, accumulate: bool) -> Result<Tensor> {
        let recording = crate::is_grad_enabled() && (self.requires_grad() || value.requires_grad());
        if !recording && !accumulate && !key.iter().any(|k| matches!(k, Indexer::Tensor(_))) {
            // basic key: write straight through the view
            let view = self.index(key)?;
            view.copy_(&value_for(self, value, view.shape())?)?;
            return Ok(self.clone());
        }
        if !recording {
            if let Some((view_key, rest)) = split_basic(key)? {
                // PyTorch applies the basic entries first: the advanced write goes into that
                // view, so only the view's elements must not alias (t[0, idx] = v on an
                // expanded t whose t[0] is a plain view)
                self.index(&view_key)?
                    .index_put_(&rest, value, accumulate)?;
                return Ok(self.clone());
            }
        }
        if !accumulate {
            if let [Indexer::Tensor(m)] = key {
                if m.dtype() == DType::Bool && m.shape() == self.shape() && value.numel() == 1 {
                    // a full-shape mask with one value: a select, no positions to compute
                    let v = value_for(self, value, &Shape::scalar())?;
                    let m = m.clone();
                    return self.apply_inplace("index_put_", |cur| Tensor::where_cond(&m, &v, cur));
                }
            }
        }
        let key = key.to_vec();
        let value = value.clone();
        self.apply_inplace("index_put_", |cur| cur.index_put(&key, &value, accumulate))
    }

    /// Positions (row-major, in a contiguous tensor of this shape) of the elements `self[key]`
    /// names, in the shape of `self[key]`.
    fn key_positions(&self, key: &[Indexer]) -> Result<Tensor> {
        let _g = crate::no_grad();
        let r = resolve(Layout::contiguous(self.shape().clone()), self.device(), key)?;
        let pos = positions(&r.basic, self.device())?;
        gather_advanced(&pos, &r.advanced)
    }
}

/// Splits a key that mixes advanced entries with narrowing basic ones (an int, a 0-d integer
/// tensor, which PyTorch's assignment applies as an int, a slice that is not `:`, `None`) into
/// the basic key that makes the view and the advanced key applied to that view; `None` when
/// there is nothing to split.
fn split_basic(key: &[Indexer]) -> Result<Option<(Vec<Indexer>, Vec<Indexer>)>> {
    let is_full = |k: &Indexer| {
        matches!(
            k,
            Indexer::Slice {
                start: None,
                stop: None,
                step: 1
            }
        )
    };
    let int0d =
        |k: &Indexer| matches!(k, Indexer::Tensor(m) if m.rank() == 0 && m.dtype() == DType::I64);
    let advanced = key
        .iter()
        .any(|k| matches!(k, Indexer::Tensor(_)) && !int0d(k));
    let narrowing = key
        .iter()
        .any(|k| int0d(k) || (!matches!(k, Indexer::Tensor(_) | Indexer::Ellipsis) && !is_full(k)));
    if !(advanced || key.iter().any(int0d)) || !narrowing {
        return Ok(None);
    }
    let (mut view_key, mut rest) = (Vec::new(), Vec::new());
    for k in key {
        match k {
            Indexer::Select(_) => view_key.push(k.clone()),
            Indexer::Tensor(m) if int0d(k) => {
                let i = m.to_device(Device::Cpu)?.to_vec::<i64>()?[0];
                view_key.push(Indexer::Select(i));
            }
            Indexer::Slice { .. } | Indexer::NewAxis => {
                view_key.push(k.clone());
                rest.push(Indexer::full());
            }
            Indexer::Ellipsis => {
                view_key.push(Indexer::Ellipsis);
                rest.push(Indexer::Ellipsis);
            }
            Indexer::Tensor(_) => {
                view_key.extend((0..k.consumes()).map(|_| Indexer::full()));
                rest.push(k.clone());
            }
        }
    }
    Ok(Some((view_key, rest)))
}

/// `value` cast to `t`'s dtype and device, broadcast to `shape` (PyTorch's error when it cannot).
fn value_for(t: &Tensor, value: &Tensor, shape: &Shape) -> Result<Tensor> {
    let v = if value.device() != t.device() {
        value.to_device(t.device())?
    } else {
        value.clone()
    };
    let v = if v.dtype() != t.dtype() {
        v.to_dtype(t.dtype())?
    } else {
        v
    };
    // a value with more leading unit dims than the target still assigns (NumPy allows it)
    let mut v = v;
    while v.rank() > shape.rank() && v.dims()[0] == 1 {
        v = v.squeeze(Some(0))?;
    }
    v.broadcast_to(shape).map_err(|_| {
        Error::ShapeMismatch {
            op: "index_put_",
            lhs: value.shape().clone(),
            rhs: shape.clone(),
            detail: format!(
                ": shape mismatch: value tensor of shape {} cannot be broadcast to indexing result of shape {}",
                value.shape(),
                shape
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t3() -> Tensor {
        Tensor::arange(0.0, 24.0, 1.0, DType::F64, Device::Cpu)
            .and_then(|t| t.reshape([2, 3, 4]))
            .unwrap()
    }

    #[test]
    fn basic_is_a_view() {
        let t = t3();
        let v = t.i((1, .., 2)).unwrap();
        assert!(v.shares_storage(&t));
        assert_eq!(v.to_vec::<f64>().unwrap(), vec![14.0, 18.0, 22.0]);
    }
}
