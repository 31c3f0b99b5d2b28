//! Shapes, dimension arguments and NumPy broadcasting.

use crate::{Error, Result};
use std::fmt;

/// The extent of each dimension of a tensor. A 0-d (scalar) tensor has an empty shape.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Shape(Vec<usize>);

impl Shape {
    pub fn new(dims: Vec<usize>) -> Self {
        Shape(dims)
    }

    /// The shape of a 0-d tensor.
    pub fn scalar() -> Self {
        Shape(Vec::new())
    }

    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// Number of elements (1 for a 0-d tensor, 0 if any dimension is 0). Saturates instead of
    /// overflowing; shapes that large are rejected wherever they could be created.
    pub fn numel(&self) -> usize {
        if self.0.contains(&0) {
            return 0;
        }
        self.0.iter().fold(1usize, |a, &d| a.saturating_mul(d))
    }

    /// Number of elements, or `None` if it does not fit in `usize`.
    pub fn checked_numel(&self) -> Option<usize> {
        if self.0.contains(&0) {
            return Some(0);
        }
        self.0.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }

    /// Extents PyTorch can represent (its sizes are int64): every dim at most `i64::MAX`, and the
    /// product of the nonzero dims too, so that strides (products of extents) exist even for an
    /// empty tensor.
    pub fn check_extents(&self, op: &'static str) -> Result<()> {
        let max = i64::MAX as usize;
        let fits = self
            .0
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1usize, |acc, &d| acc.checked_mul(d).filter(|&p| p <= max))
            .is_some();
        if fits {
            return Ok(());
        }
        Err(Error::InvalidShape {
            op,
            shape: self.clone(),
            msg: "its extents (or their product) exceed the int64 range".into(),
        })
    }

    /// Row-major (C-order) strides in elements.
    pub fn contiguous_strides(&self) -> Vec<usize> {
        let mut strides = vec![0; self.0.len()];
        let mut acc = 1usize;
        for (s, &d) in strides.iter_mut().zip(self.0.iter()).rev() {
            *s = acc;
            // an extent of 0 counts as 1, as in PyTorch: the strides of an empty tensor are
            // those of the same shape with its zeros made ones, never 0 (which would read as an
            // expanded, overlapping view)
            acc = acc.saturating_mul(d.max(1));
        }
        strides
    }

    /// Resolves a possibly negative dimension index (PyTorch convention: -1 is the last dim).
    pub fn dim(&self, op: &'static str, dim: i64) -> Result<usize> {
        normalize_dim(op, dim, self.rank())
    }

    /// Resolves a list of dims, rejecting duplicates. An empty list means "all dims".
    pub fn dims_or_all(&self, op: &'static str, dims: &[i64]) -> Result<Vec<usize>> {
        if dims.is_empty() {
            return Ok((0..self.rank()).collect());
        }
        let mut out = Vec::with_capacity(dims.len());
        for &d in dims {
            let d = self.dim(op, d)?;
            if out.contains(&d) {
                return Err(Error::invalid(
                    op,
                    format!("dim {d} appears more than once in the list of dims"),
                ));
            }
            out.push(d);
        }
        out.sort_unstable();
        Ok(out)
    }

    /// NumPy broadcasting of two shapes: align on the right; each pair of extents must be equal
    /// or one of them 1.
    #[allow(clippy::needless_range_loop)] // i aligns two shapes of different ranks
    pub fn broadcast(op: &'static str, a: &Shape, b: &Shape) -> Result<Shape> {
        let rank = a.rank().max(b.rank());
        let mut out = vec![0; rank];
        for i in 0..rank {
            let da = if i < rank - a.rank() {
                1
            } else {
                a.0[i - (rank - a.rank())]
            };
            let db = if i < rank - b.rank() {
                1
            } else {
                b.0[i - (rank - b.rank())]
            };
            out[i] = if da == db || db == 1 {
                da
            } else if da == 1 {
                db
            } else {
                return Err(Error::ShapeMismatch {
                    op,
                    lhs: a.clone(),
                    rhs: b.clone(),
                    detail: format!(
                        ": the sizes {da} and {db} at dimension {i} of the broadcast shape are neither equal nor 1"
                    ),
                });
            };
        }
        let out = Shape(out);
        if out.checked_numel().is_none() {
            return Err(Error::InvalidShape {
                op,
                shape: out,
                msg: "the broadcast shape has more elements than fit in memory addressing".into(),
            });
        }
        Ok(out)
    }

    /// The dims that were broadcast when going from `self` to `target` (for summing gradients back),
    /// as (dims of target to sum away entirely, dims of target to sum with keepdim).
    pub fn broadcast_reduction_dims(&self, target: &Shape) -> (Vec<usize>, Vec<usize>) {
        let lead = target.rank() - self.rank();
        let removed: Vec<usize> = (0..lead).collect();
        let kept: Vec<usize> = (0..self.rank())
            .filter(|&i| self.0[i] == 1 && target.0[i + lead] != 1)
            .map(|i| i + lead)
            .collect();
        (removed, kept)
    }
}

/// Resolves a possibly negative dim against a rank. A 0-d tensor accepts dims 0 and -1, as in PyTorch.
pub fn normalize_dim(op: &'static str, dim: i64, rank: usize) -> Result<usize> {
    let r = rank.max(1) as i64;
    if dim < -r || dim >= r {
        return Err(Error::DimOutOfRange { op, dim, rank });
    }
    Ok(if dim < 0 {
        (dim + r) as usize
    } else {
        dim as usize
    })
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Vec<usize>> for Shape {
    fn from(v: Vec<usize>) -> Self {
        Shape(v)
    }
}
impl From<&[usize]> for Shape {
    fn from(v: &[usize]) -> Self {
        Shape(v.to_vec())
    }
}
impl<const N: usize> From<[usize; N]> for Shape {
    fn from(v: [usize; N]) -> Self {
        Shape(v.to_vec())
    }
}
impl From<()> for Shape {
    fn from(_: ()) -> Self {
        Shape(Vec::new())
    }
}
impl From<usize> for Shape {
    fn from(v: usize) -> Self {
        Shape(vec![v])
    }
}
impl From<&Shape> for Shape {
    fn from(v: &Shape) -> Self {
        v.clone()
    }
}

/// A dimension argument: `usize` counts from the front, `i64`/`i32` may be negative (from the back).
pub trait Dim: Copy {
    fn resolve(self, op: &'static str, rank: usize) -> Result<usize>;
}
impl Dim for usize {
    fn resolve(self, op: &'static str, rank: usize) -> Result<usize> {
        if self < rank.max(1) {
            Ok(self)
        } else {
            Err(Error::DimOutOfRange {
                op,
                dim: self as i64,
                rank,
            })
        }
    }
}
impl Dim for i64 {
    fn resolve(self, op: &'static str, rank: usize) -> Result<usize> {
        normalize_dim(op, self, rank)
    }
}
impl Dim for i32 {
    fn resolve(self, op: &'static str, rank: usize) -> Result<usize> {
        normalize_dim(op, self as i64, rank)
    }
}

/// A list of dimension arguments.
pub trait Dims {
    fn resolve_all(&self, op: &'static str, rank: usize) -> Result<Vec<usize>>;
}
impl<D: Dim> Dims for [D] {
    fn resolve_all(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        self.iter().map(|d| d.resolve(op, rank)).collect()
    }
}
impl<D: Dim> Dims for Vec<D> {
    fn resolve_all(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        self.as_slice().resolve_all(op, rank)
    }
}
impl<D: Dim, const N: usize> Dims for [D; N] {
    fn resolve_all(&self, op: &'static str, rank: usize) -> Result<Vec<usize>> {
        self.as_slice().resolve_all(op, rank)
    }
}

/// Resolves dims for a reduction: empty means all; duplicates are rejected; result sorted.
pub fn reduction_dims<D: Dims + ?Sized>(
    op: &'static str,
    dims: &D,
    rank: usize,
) -> Result<Vec<usize>> {
    let mut v = dims.resolve_all(op, rank)?;
    v.sort_unstable();
    if v.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::invalid(
            op,
            "a dim appears more than once in the list of dims",
        ));
    }
    if rank == 0 {
        // a 0-d tensor reduces over nothing, whatever dim (0 or -1) was named
        return Ok(Vec::new());
    }
    if v.is_empty() {
        return Ok((0..rank).collect());
    }
    Ok(v)
}

/// Resolves a shape that may contain one `-1` (inferred from `numel`).
pub fn infer_shape(op: &'static str, dims: &[i64], numel: usize, from: &Shape) -> Result<Shape> {
    let mut infer = None;
    let mut known = 1usize;
    let mut out = Vec::with_capacity(dims.len());
    for (i, &d) in dims.iter().enumerate() {
        if d == -1 {
            if infer.replace(i).is_some() {
                return Err(Error::invalid(
                    op,
                    "only one dimension can be inferred (-1)",
                ));
            }
            out.push(0);
        } else if d < 0 {
            return Err(Error::invalid(op, format!("invalid shape dimension {d}")));
        } else {
            known = known
                .checked_mul(d as usize)
                .ok_or_else(|| Error::invalid(op, "shape is too large"))?;
            out.push(d as usize);
        }
    }
    let bad = || Error::InvalidShape {
        op,
        shape: from.clone(),
        msg: format!("cannot be viewed as {dims:?} ({numel} elements)"),
    };
    if let Some(i) = infer {
        if known == 0 || numel % known != 0 {
            return Err(bad());
        }
        out[i] = numel / known;
    } else if known != numel {
        return Err(bad());
    }
    Ok(Shape::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy() {
        let s = |v: &[usize]| Shape::from(v);
        assert_eq!(
            Shape::broadcast("t", &s(&[3, 1]), &s(&[4])).unwrap(),
            s(&[3, 4])
        );
        assert_eq!(
            Shape::broadcast("t", &s(&[]), &s(&[2, 2])).unwrap(),
            s(&[2, 2])
        );
        assert_eq!(
            Shape::broadcast("t", &s(&[0, 1]), &s(&[1, 5])).unwrap(),
            s(&[0, 5])
        );
        let err = Shape::broadcast("add", &s(&[2, 3]), &s(&[4]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("add") && err.contains("[2, 3]") && err.contains("[4]"),
            "{err}"
        );
    }

    #[test]
    fn strides_and_dims() {
        let s = Shape::from([2, 3, 4]);
        assert_eq!(s.contiguous_strides(), vec![12, 4, 1]);
        assert_eq!(s.dim("t", -1).unwrap(), 2);
        assert!(s.dim("t", 3).is_err());
        assert_eq!(Shape::scalar().dim("t", -1).unwrap(), 0);
        assert_eq!(s.dims_or_all("t", &[]).unwrap(), vec![0, 1, 2]);
        assert!(s.dims_or_all("t", &[1, -2]).is_err());
    }

    #[test]
    fn broadcast_reduction_dims() {
        let (removed, kept) = Shape::from([3, 1]).broadcast_reduction_dims(&Shape::from([2, 3, 4]));
        assert_eq!(removed, vec![0]);
        assert_eq!(kept, vec![2]);
    }
}
