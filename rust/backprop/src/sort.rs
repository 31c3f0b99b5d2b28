//! Sorting and order statistics: `sort`, `argsort`, `topk`, `kthvalue`, `median`,
//! `searchsorted`, `bucketize`.
//!
//! One CPU kernel computes the order (a stable index sort of each row, rows in parallel with
//! rayon; NaN sorts above every number, as in PyTorch). The values are then a `gather` of the
//! input at those indices, so their gradient is the `gather` rule: it flows to the selected
//! positions. GPU tensors take a round trip: the input is read back, ordered on the CPU, and the
//! int64 indices go back to the GPU, where the `gather` runs (there is no WGSL sort kernel).

use crate::shape::Dim;
use crate::{DType, Device, Error, Result, Tensor};
use rayon::prelude::*;
use std::cmp::Ordering;

/// Total order with NaN above everything (and NaNs equal to each other).
#[inline]
#[allow(clippy::eq_op)] // `a != a` is the NaN test for a generic PartialOrd
fn total_cmp<T: PartialOrd + Copy>(a: T, b: T) -> Ordering {
    match (a != a, b != b) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// Per-row stable argsort of `v` (rows of `n`, contiguous).
pub(crate) fn argsort_rows<T: PartialOrd + Copy + Send + Sync>(
    v: &[T],
    n: usize,
    descending: bool,
) -> Vec<i64> {
    let mut out = vec![0i64; v.len()];
    if n == 0 {
        return out;
    }
    out.par_chunks_mut(n)
        .zip(v.par_chunks(n))
        .for_each(|(idx, row)| {
            for (i, x) in idx.iter_mut().enumerate() {
                *x = i as i64;
            }
            if descending {
                idx.sort_by(|&a, &b| total_cmp(row[b as usize], row[a as usize]));
            } else {
                idx.sort_by(|&a, &b| total_cmp(row[a as usize], row[b as usize]));
            }
        });
    out
}

impl Tensor {
    /// This tensor with `d` moved last, contiguous and detached (the host-side view of rows).
    fn rows_last(&self, d: usize) -> Result<Tensor> {
        let last = self.rank() - 1;
        let t = self.detach();
        if d == last {
            Ok(t)
        } else {
            t.transpose(d, last)
        }
    }

    /// The stable ascending (or descending) order of each slice along `dim`, as int64 indices
    /// (`torch.argsort(stable=True)`).
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![3.0f32, 1.0, 2.0], [3], Device::Cpu)?;
    /// assert_eq!(t.argsort(0, false)?.to_vec::<i64>()?, vec![1, 2, 0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn argsort(&self, dim: i64, descending: bool) -> Result<Tensor> {
        if self.rank() == 0 {
            dim.resolve("argsort", 0)?;
            return Tensor::zeros([], DType::I64, self.device());
        }
        let d = dim.resolve("argsort", self.rank())?;
        let rows = self.rows_last(d)?.contiguous()?;
        // rows longer than the GPU kernel's workgroup arrays are ordered on the CPU
        #[cfg(feature = "gpu")]
        let rows = if rows.device() == Device::Gpu && self.dims()[d] > crate::gpu::sort::SORT_MAX {
            rows.to_device(Device::Cpu)?
        } else {
            rows
        };
        let s = rows.storage().argsort_rows(rows.layout(), descending)?;
        let t = Tensor::from_storage(s, rows.shape().clone());
        let last = self.rank() - 1;
        let t = if d == last {
            t
        } else {
            t.transpose(d, last)?.contiguous()?
        };
        t.to_device(self.device())
    }

    /// `(values, indices)` sorted along `dim` (stable; `torch.sort` with `stable=True`, which
    /// also serves `stable=False`: any order of ties is allowed then).
    pub fn sort(&self, dim: i64, descending: bool) -> Result<(Tensor, Tensor)> {
        let idx = self.argsort(dim, descending)?;
        if self.rank() == 0 {
            return Ok((self.contiguous_copy()?, idx));
        }
        let d = dim.resolve("sort", self.rank())?;
        Ok((self.gather(d, &idx)?, idx))
    }

    /// The `k` largest (or smallest) elements along `dim` and their indices, in sorted order.
    pub fn topk(&self, k: usize, dim: i64, largest: bool) -> Result<(Tensor, Tensor)> {
        let n = if self.rank() == 0 {
            dim.resolve("topk", 0)?;
            1
        } else {
            self.dims()[dim.resolve("topk", self.rank())?]
        };
        if k > n {
            return Err(Error::invalid(
                "topk",
                format!("selected index k ({k}) out of range for a dimension of size {n}"),
            ));
        }
        if self.rank() == 0 {
            return self.sort(dim, largest);
        }
        let d = dim.resolve("topk", self.rank())?;
        let idx = self.argsort(dim, largest)?.narrow(d, 0, k)?.contiguous()?;
        Ok((self.gather(d, &idx)?, idx))
    }

    /// The `k`-th smallest element (1-based) along `dim` and its index (`torch.kthvalue`).
    pub fn kthvalue(&self, k: usize, dim: i64, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let (x, d) = self.with_rank1(dim, "kthvalue")?;
        let n = x.dims()[d];
        if k == 0 || k > n {
            return Err(Error::invalid(
                "kthvalue",
                format!("selected number k ({k}) out of range for a dimension of size {n}"),
            ));
        }
        let idx = x
            .argsort(d as i64, false)?
            .narrow(d, k - 1, 1)?
            .contiguous()?;
        self.finish_pick(&x, d, idx, keepdim)
    }

    /// The lower median along `dim` and its index (`torch.median(dim)`): for an even count the
    /// smaller of the two middle values; a slice holding NaN gives NaN (its first NaN).
    pub fn median_dim(&self, dim: i64, keepdim: bool) -> Result<(Tensor, Tensor)> {
        let (x, d) = self.with_rank1(dim, "median")?;
        let n = x.dims()[d];
        if n == 0 {
            return Err(Error::invalid(
                "median",
                "median() of an empty dimension is not defined (expected a non-empty slice)",
            ));
        }
        let order = x.argsort(d as i64, false)?;
        // NaN sorts last: a slice with any NaN picks its first NaN (sorted position = count of
        // numbers), the others position (n - 1) / 2
        let sorted = x.detach().gather(d, &order)?;
        let numbers = if x.dtype().is_float() {
            sorted
                .eq(&sorted)?
                .to_dtype(DType::I64)?
                .sum(&[d][..], true)?
        } else {
            Tensor::full_scalar(crate::Scalar::Int(n as i64), DType::I64, x.device())?
                .broadcast_to(&{
                    let mut s = x.dims().to_vec();
                    s[d] = 1;
                    s.into()
                })?
        };
        let mid = Tensor::full_scalar(
            crate::Scalar::Int(((n - 1) / 2) as i64),
            DType::I64,
            x.device(),
        )?;
        let has_nan = numbers.lt(&Tensor::full_scalar(
            crate::Scalar::Int(n as i64),
            DType::I64,
            x.device(),
        )?)?;
        let pos = Tensor::where_cond(&has_nan, &numbers, &mid)?;
        let idx = order.gather(d, &pos)?;
        self.finish_pick(&x, d, idx, keepdim)
    }

    /// The lower median of all elements (a 0-d tensor; NaN if any element is NaN).
    pub fn median(&self) -> Result<Tensor> {
        let flat = self.reshape([self.numel()])?;
        let (v, _) = flat.median_dim(0, false)?;
        Ok(v)
    }

    fn with_rank1(&self, dim: i64, op: &'static str) -> Result<(Tensor, usize)> {
        if self.rank() == 0 {
            dim.resolve(op, 0)?;
            return Ok((self.reshape([1])?, 0));
        }
        Ok((self.clone(), dim.resolve(op, self.rank())?))
    }

    fn finish_pick(
        &self,
        x: &Tensor,
        d: usize,
        idx: Tensor,
        keepdim: bool,
    ) -> Result<(Tensor, Tensor)> {
        let v = x.gather(d, &idx)?;
        if self.rank() == 0 {
            return Ok((v.reshape([])?, idx.reshape([])?));
        }
        if keepdim {
            Ok((v, idx))
        } else {
            Ok((v.squeeze(Some(d as i64))?, idx.squeeze(Some(d as i64))?))
        }
    }

    /// `torch.searchsorted`: for each value, the index where it would be inserted into the
    /// innermost rows of `self` (sorted ascending) to keep them sorted: the first position whose
    /// element is `>=` the value, or `>` with `right`. `self` is 1-d, or has the leading dims of
    /// `values`. Always int64.
    pub fn searchsorted(&self, values: &Tensor, right: bool) -> Result<Tensor> {
        if self.rank() == 0 {
            return Err(Error::InvalidShape {
                op: "searchsorted",
                shape: self.shape().clone(),
                msg: "boundaries tensor should be 1 dimension or the first N-1 dimensions of boundaries tensor and input value tensor must match".into(),
            });
        }
        let n = self.dims()[self.rank() - 1];
        if self.rank() > 1
            && (values.rank() != self.rank()
                || values.dims()[..values.rank() - 1] != self.dims()[..self.rank() - 1])
        {
            return Err(Error::shape_mismatch(
                "searchsorted",
                self.shape(),
                values.shape(),
            ));
        }
        if self.device() != values.device() {
            return Err(Error::DeviceMismatch {
                op: "searchsorted",
                lhs: self.device(),
                rhs: values.device(),
            });
        }
        let dt = crate::pointwise::promote_pair(self, values);
        let dt = if dt == DType::Bool {
            DType::I64
        } else {
            dt.compute()
        };
        let seq = self.detach().to_dtype(dt)?;
        let vals = values.detach().to_dtype(dt)?;
        let multi = self.rank() > 1;
        let per_row = if self.rank() > 1 {
            values.dims().last().copied().unwrap_or(0)
        } else {
            values.numel()
        };
        macro_rules! go {
            ($T:ty) => {{
                let s = seq.to_vec::<$T>()?;
                let v = vals.to_vec::<$T>()?;
                let mut out = vec![0i64; v.len()];
                if per_row > 0 {
                    out.par_chunks_mut(per_row)
                        .zip(v.par_chunks(per_row))
                        .enumerate()
                        .for_each(|(r, (o, vr))| {
                            let row = if n == 0 {
                                &s[0..0]
                            } else if multi {
                                &s[r * n..(r + 1) * n]
                            } else {
                                &s[..]
                            };
                            for (y, &x) in o.iter_mut().zip(vr) {
                                *y = row.partition_point(|&e| {
                                    let c = total_cmp(e, x);
                                    if right {
                                        c != Ordering::Greater
                                    } else {
                                        c == Ordering::Less
                                    }
                                }) as i64;
                            }
                        });
                }
                out
            }};
        }
        let out = match dt {
            DType::F32 => go!(f32),
            DType::F64 => go!(f64),
            _ => go!(i64),
        };
        Tensor::from_vec(out, values.shape().clone(), Device::Cpu)?.to_device(values.device())
    }

    /// `torch.bucketize(self, boundaries, right)`: `boundaries.searchsorted(self, right)` with
    /// 1-d boundaries.
    pub fn bucketize(&self, boundaries: &Tensor, right: bool) -> Result<Tensor> {
        if boundaries.rank() != 1 {
            return Err(Error::InvalidShape {
                op: "bucketize",
                shape: boundaries.shape().clone(),
                msg: "boundaries tensor must be 1 dimension".into(),
            });
        }
        if self.rank() == 0 {
            return boundaries
                .searchsorted(&self.reshape([1])?, right)?
                .reshape([]);
        }
        boundaries.searchsorted(self, right)
    }
}
