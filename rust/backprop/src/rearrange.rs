//! Composites that move elements around: `flip`, `roll`, `tile`, `repeat_interleave`,
//! `meshgrid`, `take_along_dim`. Each is an `index_select`/`gather` with a computed index (or
//! views), so gradients flow back through those primitives' rules. Strides are never negative
//! here, so `flip` is a copy (PyTorch's is a copy too).

use crate::shape::Dim;
use crate::{DType, Error, Result, Shape, Tensor};

/// How `meshgrid` lays out its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeshIndexing {
    /// Matrix indexing: output `i` varies along dim `i`.
    Ij,
    /// Cartesian indexing: the first two dims swapped (NumPy's default).
    Xy,
}

fn resolve_dims(op: &'static str, dims: &[i64], rank: usize) -> Result<Vec<usize>> {
    let mut out: Vec<usize> = Vec::with_capacity(dims.len());
    for &d in dims {
        let r = d.resolve(op, rank)?;
        if out.contains(&r) {
            return Err(Error::invalid(
                op,
                format!("dim {r} appears multiple times in the list of dims"),
            ));
        }
        out.push(r);
    }
    Ok(out)
}

impl Tensor {
    /// Reverses the order of elements along each of `dims`.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1i64, 2, 3], [3], Device::Cpu)?;
    /// assert_eq!(t.flip(&[0])?.to_vec::<i64>()?, vec![3, 2, 1]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn flip(&self, dims: &[i64]) -> Result<Tensor> {
        let ds = resolve_dims("flip", dims, self.rank())?;
        let mut t = self.clone();
        for d in ds {
            if self.rank() == 0 {
                break;
            }
            let n = self.dims()[d];
            if n <= 1 {
                continue;
            }
            let idx: Vec<i64> = (0..n as i64).rev().collect();
            t = t.index_select(d, &Tensor::from_vec(idx, [n], self.device())?)?;
        }
        if t.id() == self.id() {
            // a new tensor, as in PyTorch (flip never returns a view)
            return self.contiguous_copy();
        }
        Ok(t)
    }

    /// Rolls elements along `dims` by `shifts` (elements pushed past the end come back at the
    /// start); with no dims, the flattened tensor is rolled and the shape restored.
    pub fn roll(&self, shifts: &[i64], dims: &[i64]) -> Result<Tensor> {
        if dims.is_empty() {
            if shifts.len() != 1 {
                return Err(Error::invalid(
                    "roll",
                    format!(
                        "`shifts` must have one entry when `dims` is empty, got {}",
                        shifts.len()
                    ),
                ));
            }
            let n = self.numel();
            return self
                .reshape([n])?
                .roll(shifts, &[0])?
                .reshape(self.shape().clone());
        }
        if shifts.len() != dims.len() {
            return Err(Error::invalid(
                "roll",
                format!(
                    "shifts and dimensions must align. shifts: {}, dims: {}",
                    shifts.len(),
                    dims.len()
                ),
            ));
        }
        let mut t = self.clone();
        for (&s, &d) in shifts.iter().zip(dims) {
            let d = d.resolve("roll", self.rank())?;
            let n = self.dims().get(d).copied().unwrap_or(1);
            if n == 0 {
                continue;
            }
            let s = s.rem_euclid(n as i64) as usize;
            if s == 0 {
                continue;
            }
            let idx: Vec<i64> = (0..n).map(|i| ((i + n - s) % n) as i64).collect();
            t = t.index_select(d, &Tensor::from_vec(idx, [n], self.device())?)?;
        }
        if t.id() == self.id() {
            return self.contiguous_copy();
        }
        Ok(t)
    }

    /// `torch.tile`: `repeat` after padding `reps` with leading 1s to the tensor's rank.
    pub fn tile(&self, reps: &[usize]) -> Result<Tensor> {
        let mut r = reps.to_vec();
        while r.len() < self.rank() {
            r.insert(0, 1);
        }
        self.repeat(&r)
    }

    /// Repeats each element (each slice along `dim`) `repeats[i]` times; `repeats` is one count
    /// for all or one per slice. Without `dim` the input is flattened first.
    pub fn repeat_interleave(&self, repeats: &[i64], dim: Option<i64>) -> Result<Tensor> {
        let (x, d) = match dim {
            None => (self.reshape([self.numel()])?, 0usize),
            Some(d) => {
                let x = if self.rank() == 0 {
                    self.reshape([1])?
                } else {
                    self.clone()
                };
                let r = d.resolve("repeat_interleave", self.rank())?;
                (x, r)
            }
        };
        let n = x.dims()[d];
        if repeats.len() != 1 && repeats.len() != n {
            return Err(Error::invalid(
                "repeat_interleave",
                format!(
                    "repeats must have the same size as input along dim {d} ({n}), got {}",
                    repeats.len()
                ),
            ));
        }
        if let Some(r) = repeats.iter().find(|&&r| r < 0) {
            return Err(Error::invalid(
                "repeat_interleave",
                format!("repeats can not be negative, got {r}"),
            ));
        }
        let count = |i: usize| {
            let r = if repeats.len() == 1 {
                repeats[0]
            } else {
                repeats[i]
            };
            usize::try_from(r).unwrap_or(0)
        };
        let total = (0..n)
            .try_fold(0usize, |acc, i| acc.checked_add(count(i)))
            .ok_or_else(|| Error::invalid("repeat_interleave", "the repeated size overflows"))?;
        Shape::from([total]).check_extents("repeat_interleave")?;
        let mut idx: Vec<i64> = Vec::new();
        // a count far beyond memory is an error, not an abort
        idx.try_reserve_exact(total)
            .map_err(|_| Error::OutOfMemory {
                op: "repeat_interleave",
                shape: Shape::from([total]),
                dtype: DType::I64,
                bytes: (total as u128) * 8,
            })?;
        for i in 0..n {
            idx.extend(std::iter::repeat_n(i as i64, count(i)));
        }
        let m = idx.len();
        x.index_select(d, &Tensor::from_vec(idx, [m], self.device())?)
    }

    /// `torch.meshgrid` of 0-d or 1-d tensors: output `i` holds input `i` broadcast along its
    /// own dim (expanded views, as in PyTorch).
    pub fn meshgrid(tensors: &[Tensor], indexing: MeshIndexing) -> Result<Vec<Tensor>> {
        for t in tensors {
            if t.rank() > 1 {
                return Err(Error::InvalidShape {
                    op: "meshgrid",
                    shape: t.shape().clone(),
                    msg: "expects all tensors to be 0- or 1-dimensional".into(),
                });
            }
        }
        let mut ts: Vec<Tensor> = tensors.to_vec();
        let swap = indexing == MeshIndexing::Xy && ts.len() >= 2;
        if swap {
            ts.swap(0, 1);
        }
        let sizes: Vec<usize> = ts.iter().map(|t| t.numel()).collect();
        let shape = Shape::from(sizes.clone());
        let mut out = Vec::with_capacity(ts.len());
        for (i, t) in ts.iter().enumerate() {
            let mut v = vec![1usize; ts.len()];
            v[i] = sizes[i];
            out.push(t.reshape(v)?.broadcast_to(&shape)?);
        }
        if swap {
            out.swap(0, 1);
        }
        Ok(out)
    }

    /// `torch.take_along_dim`: `gather` after broadcasting `self` and `indices` against each
    /// other in every dim but `dim`; without `dim`, both are flattened.
    pub fn take_along_dim(&self, indices: &Tensor, dim: Option<i64>) -> Result<Tensor> {
        if indices.dtype() != DType::I64 {
            return Err(Error::DType {
                op: "take_along_dim",
                dtype: indices.dtype(),
                detail: " (indices must be an int64 tensor)".into(),
            });
        }
        let Some(dim) = dim else {
            let n = self.numel();
            let m = indices.numel();
            return self.reshape([n])?.gather(0usize, &indices.reshape([m])?);
        };
        if self.rank() == 0 && indices.rank() == 0 {
            return self
                .reshape([1])?
                .take_along_dim(&indices.reshape([1])?, Some(0))?
                .reshape([]);
        }
        if self.rank() != indices.rank() {
            return Err(Error::invalid(
                "take_along_dim",
                format!(
                    "input and indices should have the same number of dimensions, but got {} and {}",
                    self.rank(),
                    indices.rank()
                ),
            ));
        }
        let d = dim.resolve("take_along_dim", self.rank())?;
        let mut a = self.dims().to_vec();
        let mut b = indices.dims().to_vec();
        a[d] = 1;
        b[d] = 1;
        let common = Shape::broadcast("take_along_dim", &Shape::from(a), &Shape::from(b))?;
        let mut sa = common.dims().to_vec();
        let mut si = common.dims().to_vec();
        sa[d] = self.dims()[d];
        si[d] = indices.dims()[d];
        let x = self.broadcast_to(&Shape::from(sa))?;
        let i = indices.broadcast_to(&Shape::from(si))?;
        x.gather(d, &i)
    }
}
