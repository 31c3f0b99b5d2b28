//! Zero-copy views: they build a new layout over the same storage and record a `View` op whose
//! gradient undoes the view (reshape back, inverse permute, sum over broadcast dims, scatter a
//! slice into zeros).

use crate::op::{Op, ViewKind};
use crate::shape::{infer_shape, Dim, Dims};
use crate::{Error, Layout, Result, Shape, Tensor};

impl Tensor {
    /// Same elements, new shape. A view when the strides allow it, a copy otherwise (as PyTorch's
    /// `reshape`).
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        shape.check_extents("reshape")?;
        if shape.checked_numel() != Some(self.numel()) {
            return Err(Error::InvalidShape {
                op: "reshape",
                shape: self.shape().clone(),
                msg: format!("cannot be reshaped to {shape} ({} elements)", self.numel()),
            });
        }
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        match self.layout().reshape(&shape) {
            Some(l) => Ok(self.view_with(l, ViewKind::Reshape)),
            None => {
                let c = self.contiguous()?;
                let l = Layout::contiguous(shape);
                Ok(c.view_with(
                    Layout::new(l.shape().clone(), l.strides().to_vec(), c.layout().offset()),
                    ViewKind::Reshape,
                ))
            }
        }
    }

    /// `reshape` with PyTorch's `-1` for one inferred dim.
    pub fn reshape_infer(&self, dims: &[i64]) -> Result<Tensor> {
        let shape = infer_shape("reshape", dims, self.numel(), self.shape())?;
        self.reshape(shape)
    }

    /// Like `reshape` but never copies: errors if the strides do not allow a view.
    pub fn view(&self, dims: &[i64]) -> Result<Tensor> {
        let shape = infer_shape("view", dims, self.numel(), self.shape())?;
        match self.layout().reshape(&shape) {
            Some(l) => Ok(self.view_with(l, ViewKind::Reshape)),
            None => Err(Error::InvalidShape {
                op: "view",
                shape: self.shape().clone(),
                msg: format!(
                    "with strides {:?} cannot be viewed as {shape} without a copy (at least one dimension spans two contiguous subspaces); use .reshape(...) instead",
                    self.strides()
                ),
            }),
        }
    }

    /// Reorders dims (`perm` may use negative dims).
    pub fn permute<D: Dims + ?Sized>(&self, perm: &D) -> Result<Tensor> {
        let perm = perm.resolve_all("permute", self.rank())?;
        if perm.iter().enumerate().all(|(i, &p)| i == p) && perm.len() == self.rank() {
            return Ok(self.clone());
        }
        let l = self.layout().permute(&perm)?;
        Ok(self.view_with(l, ViewKind::Permute(perm)))
    }

    /// Swaps two dims.
    pub fn transpose<D: Dim>(&self, d0: D, d1: D) -> Result<Tensor> {
        let r = self.rank();
        if r < 2 {
            // PyTorch allows transpose(0, -1) etc. on 0-d / 1-d tensors: a no-op
            d0.resolve("transpose", r)?;
            d1.resolve("transpose", r)?;
            return Ok(self.clone());
        }
        let (a, b) = (d0.resolve("transpose", r)?, d1.resolve("transpose", r)?);
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(a, b);
        self.permute(&perm)
    }

    /// Transpose of a matrix (`.T` on <= 2-d tensors, as PyTorch's `t()`).
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() > 2 {
            return Err(Error::InvalidShape {
                op: "t",
                shape: self.shape().clone(),
                msg: "t() expects a tensor with <= 2 dimensions; use .mT or permute".into(),
            });
        }
        self.transpose(0usize, self.rank().saturating_sub(1))
    }

    /// Transposes the last two dims (PyTorch's `.mT`).
    pub fn mt(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::InvalidShape {
                op: "mT",
                shape: self.shape().clone(),
                msg: "mT expects a tensor with at least 2 dimensions".into(),
            });
        }
        self.transpose(-2i64, -1i64)
    }

    /// Inserts a dim of extent 1 (`dim` may be `rank` to append).
    pub fn unsqueeze<D: Dim>(&self, dim: D) -> Result<Tensor> {
        let d = dim.resolve("unsqueeze", self.rank() + 1)?;
        let l = self.layout().unsqueeze(d);
        Ok(self.view_with(l, ViewKind::Reshape))
    }

    /// Removes `dim` if its extent is 1, or every extent-1 dim when `dim` is `None`.
    /// Squeezes each of `dims` that has extent 1 (PyTorch's `squeeze(dim=(...))`); a dim named
    /// twice is an error.
    pub fn squeeze_dims(&self, dims: &[i64]) -> Result<Tensor> {
        let ds = crate::shape::reduction_dims("squeeze", dims, self.rank())?;
        if self.rank() == 0 || dims.is_empty() {
            return Ok(self.clone());
        }
        let kept: Vec<usize> = self
            .dims()
            .iter()
            .enumerate()
            .filter(|&(i, &x)| !(x == 1 && ds.contains(&i)))
            .map(|(_, &x)| x)
            .collect();
        self.reshape(kept)
    }

    pub fn squeeze(&self, dim: Option<i64>) -> Result<Tensor> {
        let dims: Vec<usize> = match dim {
            Some(d) => {
                let d = d.resolve("squeeze", self.rank())?;
                if self.rank() == 0 || self.dims()[d] != 1 {
                    return Ok(self.clone());
                }
                self.dims()
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != d)
                    .map(|(_, &x)| x)
                    .collect()
            }
            None => self.dims().iter().copied().filter(|&x| x != 1).collect(),
        };
        self.reshape(dims)
    }

    /// Broadcasts to `shape` without copying (stride 0 on new and extent-1 dims).
    pub fn broadcast_to(&self, shape: &Shape) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        shape.check_extents("expand")?;
        let l = self.layout().broadcast_as(shape)?;
        Ok(self.view_with(l, ViewKind::Expand))
    }

    /// PyTorch's `expand`: like `broadcast_to`, with `-1` meaning "keep this dim".
    pub fn expand(&self, dims: &[i64]) -> Result<Tensor> {
        let lead = dims.len().checked_sub(self.rank()).ok_or_else(|| {
            Error::invalid("expand", format!("the number of sizes provided ({}) must be greater or equal to the number of dimensions in the tensor ({})", dims.len(), self.rank()))
        })?;
        let mut out = Vec::with_capacity(dims.len());
        for (i, &d) in dims.iter().enumerate() {
            if d == -1 {
                if i < lead {
                    return Err(Error::invalid(
                        "expand",
                        "-1 is not allowed in a leading, non-existing dimension",
                    ));
                }
                out.push(self.dims()[i - lead]);
            } else if d < 0 {
                return Err(Error::invalid("expand", format!("invalid size {d}")));
            } else {
                out.push(d as usize);
            }
        }
        self.broadcast_to(&Shape::new(out))
    }

    /// Sums a broadcast gradient back down to `shape` (the inverse of `broadcast_to`).
    pub fn sum_to_shape(&self, shape: &Shape) -> Result<Tensor> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let (removed, kept) = shape.broadcast_reduction_dims(self.shape());
        let mut dims = removed.clone();
        dims.extend(kept);
        let s = self.reduce_keepdim(crate::op::ReduceOp::Sum, &dims)?;
        s.reshape(shape.clone())
    }

    /// `len` elements along `dim` starting at `start`.
    pub fn narrow<D: Dim>(&self, dim: D, start: usize, len: usize) -> Result<Tensor> {
        let d = dim.resolve("narrow", self.rank())?;
        let size = self.dims().get(d).copied().unwrap_or(0);
        if start > size || start.checked_add(len).is_none_or(|e| e > size) {
            return Err(Error::invalid(
                "narrow",
                format!(
                    "start ({start}) + length ({len}) exceeds dimension size ({size}) of dim {d}"
                ),
            ));
        }
        self.slice_step(d, start, len, 1)
    }

    /// `len` elements along `dim` from `start` taking every `step`-th (a view).
    pub fn slice_step(&self, dim: usize, start: usize, len: usize, step: usize) -> Result<Tensor> {
        if self.rank() == 0 {
            return Err(Error::InvalidShape {
                op: "slice",
                shape: self.shape().clone(),
                msg: "cannot slice a 0-d tensor".into(),
            });
        }
        let size = self.dims()[dim.min(self.rank() - 1)];
        // the last element taken, without overflow (a public API: any usize may come in)
        let last = (len > 0).then(|| {
            (len - 1)
                .checked_mul(step)
                .and_then(|o| o.checked_add(start))
        });
        let past_end = matches!(last, Some(None)) || matches!(last, Some(Some(l)) if l >= size);
        if dim >= self.rank() || step == 0 || past_end {
            return Err(Error::invalid(
                "slice",
                format!("slice start={start} len={len} step={step} of dim {dim} is out of range for shape {}", self.shape()),
            ));
        }
        if start == 0 && len == size && step == 1 {
            return Ok(self.clone());
        }
        let l = self.layout().slice(dim, start, len, step);
        Ok(self.view_with(l, ViewKind::Slice { dim, start, step }))
    }

    /// Python-style slice `start:end:step` along `dim` (negative and out-of-range bounds clamp,
    /// as in NumPy). `step` must be positive.
    pub fn slice<D: Dim>(
        &self,
        dim: D,
        start: Option<i64>,
        end: Option<i64>,
        step: i64,
    ) -> Result<Tensor> {
        let d = dim.resolve("slice", self.rank())?;
        let (s, len) = slice_bounds(self.dims()[d], start, end, step)?;
        if len == 0 {
            // an empty view: PyTorch allows it at any start
            let l = self.layout().slice(d, 0, 0, 1);
            return Ok(self.view_with(
                l,
                ViewKind::Slice {
                    dim: d,
                    start: 0,
                    step: 1,
                },
            ));
        }
        self.slice_step(d, s, len, step as usize)
    }

    /// Fixes `dim` at `index` (negative counts from the end), removing the dim.
    pub fn select<D: Dim>(&self, dim: D, index: i64) -> Result<Tensor> {
        let d = dim.resolve("select", self.rank())?;
        if self.rank() == 0 {
            return Err(Error::InvalidShape {
                op: "select",
                shape: self.shape().clone(),
                msg: "invalid index of a 0-dim tensor".into(),
            });
        }
        let i = select_position(self.dims()[d], d, index)?;
        self.slice_step(d, i, 1, 1)?
            .squeeze(Some(d as i64))
            .and_then(|t| {
                if t.rank() + 1 == self.rank() {
                    Ok(t)
                } else {
                    // squeeze keeps dims that are not 1; here the sliced dim is 1 by construction
                    let mut dims = self.dims().to_vec();
                    dims.remove(d);
                    t.reshape(dims)
                }
            })
    }

    /// Flattens dims `start..=end` into one.
    pub fn flatten<D: Dim>(&self, start: D, end: D) -> Result<Tensor> {
        if self.rank() == 0 {
            // a 0-d tensor has the dims of a 1-d one for this purpose (0 and -1), as in PyTorch
            start.resolve("flatten", 0)?;
            end.resolve("flatten", 0)?;
            return self.reshape([1]);
        }
        let (s, e) = (
            start.resolve("flatten", self.rank())?,
            end.resolve("flatten", self.rank())?,
        );
        if s > e {
            return Err(Error::invalid(
                "flatten",
                "start_dim cannot come after end_dim",
            ));
        }
        let mut dims: Vec<usize> = self.dims()[..s].to_vec();
        dims.push(self.dims()[s..=e].iter().product());
        dims.extend_from_slice(&self.dims()[e + 1..]);
        self.reshape(dims)
    }

    /// Splits `dim` into `sizes` (one may be -1, inferred), PyTorch's `unflatten`.
    pub fn unflatten<D: Dim>(&self, dim: D, sizes: &[i64]) -> Result<Tensor> {
        let d = self.existing_dim("unflatten", dim)?;
        if sizes.is_empty() {
            return Err(Error::invalid("unflatten", "sizes must be non-empty"));
        }
        let inner = infer_shape("unflatten", sizes, self.dims()[d], self.shape())?;
        let mut dims: Vec<usize> = self.dims()[..d].to_vec();
        dims.extend_from_slice(inner.dims());
        dims.extend_from_slice(&self.dims()[d + 1..]);
        self.reshape(dims)
    }

    /// Tiles the tensor `reps[i]` times along each dim (PyTorch's `repeat`; `reps` may be longer
    /// than the rank, adding leading dims). Built as unsqueeze + expand + a copy, so its
    /// gradient (a sum over the copies) comes from those views; the copy is what PyTorch
    /// returns too (never memory shared with the input, which an expanded view would be).
    pub fn repeat(&self, reps: &[usize]) -> Result<Tensor> {
        if reps.len() < self.rank() {
            return Err(Error::invalid(
                "repeat",
                "number of dimensions of repeat dims can not be smaller than number of dimensions of tensor",
            ));
        }
        let lead = reps.len() - self.rank();
        let mut base: Vec<usize> = vec![1; lead];
        base.extend_from_slice(self.dims());
        let mut inter: Vec<usize> = Vec::with_capacity(2 * reps.len());
        let mut expand: Vec<i64> = Vec::with_capacity(2 * reps.len());
        let mut fin: Vec<usize> = Vec::with_capacity(reps.len());
        for (&r, &b) in reps.iter().zip(&base) {
            let total = r.checked_mul(b).ok_or_else(|| {
                Error::invalid(
                    "repeat",
                    format!("repeat count {r} overflows the dim of size {b}"),
                )
            })?;
            inter.extend([1, b]);
            expand.extend([i64::try_from(r).unwrap_or(i64::MAX), b as i64]);
            fin.push(total);
        }
        Shape::new(fin.clone()).check_extents("repeat")?;
        self.reshape(inter)?
            .expand(&expand)?
            .contiguous_copy()?
            .reshape(fin)
    }

    /// PyTorch's `as_strided`: a view of `self`'s storage with any `size` and non-negative
    /// `stride`, starting at `storage_offset` (default: `self`'s own offset). Elements may
    /// overlap (`size [3, 2], stride [1, 1]` gives sliding windows). The gradient adds the
    /// view's gradient into the storage positions it addresses and reads them back at `self`'s
    /// positions (divided by how many elements of `self` share each position, as PyTorch).
    ///
    /// ```
    /// # use backprop::{Device, Tensor};
    /// let x = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0, 4.0], [5], Device::Cpu)?;
    /// let w = x.as_strided(&[3, 3], &[1, 1], None)?; // windows of 3
    /// assert_eq!(w.to_vec::<f32>()?, vec![0.0, 1.0, 2.0, 1.0, 2.0, 3.0, 2.0, 3.0, 4.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn as_strided(
        &self,
        size: &[usize],
        stride: &[usize],
        storage_offset: Option<usize>,
    ) -> Result<Tensor> {
        if size.len() != stride.len() {
            return Err(Error::InvalidShape {
                op: "as_strided",
                shape: Shape::from(size),
                msg: format!(
                    "mismatch in length of strides and shape: size {size:?} has {} dims, stride {stride:?} has {}",
                    size.len(),
                    stride.len()
                ),
            });
        }
        let shape = Shape::from(size);
        shape.check_extents("as_strided")?;
        let offset = storage_offset.unwrap_or_else(|| self.layout().offset());
        // the last element's position, in checked arithmetic
        let last = size.iter().zip(stride).try_fold(offset, |acc, (&n, &s)| {
            if n == 0 {
                Some(acc)
            } else {
                (n - 1).checked_mul(s).and_then(|d| acc.checked_add(d))
            }
        });
        let have = self.storage().len();
        let need = if shape.numel() == 0 {
            Some(0)
        } else {
            last.and_then(|l| l.checked_add(1))
        };
        match need {
            Some(n) if n <= have => {}
            _ => {
                return Err(Error::InvalidShape {
                    op: "as_strided",
                    shape: Shape::from(size),
                    msg: format!(
                        "setStorage: sizes {size:?}, strides {stride:?}, storage offset {offset}, and itemsize {} requiring a storage size of {} are out of bounds for storage of size {}",
                        self.dtype().size_in_bytes(),
                        need.map_or_else(|| "more than usize::MAX bytes".to_string(), |n| (n * self.dtype().size_in_bytes()).to_string()),
                        have * self.dtype().size_in_bytes()
                    ),
                })
            }
        }
        let l = Layout::new(shape, stride.to_vec(), offset);
        Ok(self.view_with(
            l,
            ViewKind::Strided {
                strides: stride.to_vec(),
                offset,
            },
        ))
    }

    /// `self` if already C-contiguous, else a contiguous copy.
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let s = self.storage().copy_strided(self.layout())?;
        Tensor::from_op(s, self.shape().clone(), Op::Copy(self.clone()))
    }
}

/// NumPy's reading of `start:end:step` on a dim of extent `n`: out-of-range and negative bounds
/// clamp. Returns `(start, len)`.
pub(crate) fn slice_bounds(
    n: usize,
    start: Option<i64>,
    end: Option<i64>,
    step: i64,
) -> Result<(usize, usize)> {
    if step <= 0 {
        return Err(Error::invalid(
            "slice",
            format!("slice step must be positive, got {step}"),
        ));
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    let clampi = |v: i64| {
        if v < 0 {
            v.saturating_add(n).max(0)
        } else {
            v.min(n)
        }
    };
    let s = start.map(clampi).unwrap_or(0);
    let e = end.map(clampi).unwrap_or(n);
    let len = if e > s { (e - s - 1) / step + 1 } else { 0 };
    Ok((s as usize, len as usize))
}

/// Position `index` (negative counts from the end) along a dim of extent `n`, checked.
pub(crate) fn select_position(n: usize, dim: usize, index: i64) -> Result<usize> {
    let ni = i64::try_from(n).unwrap_or(i64::MAX);
    let i = if index < 0 {
        index.saturating_add(ni)
    } else {
        index
    };
    if i < 0 || i >= ni {
        return Err(Error::IndexOutOfRange {
            op: "select",
            index,
            dim,
            size: n,
        });
    }
    Ok(i as usize)
}

/// The storage position of every element of a layout, in its row-major element order.
fn positions(l: &Layout) -> Vec<i64> {
    let mut out = Vec::with_capacity(l.numel());
    let (dims, strides) = (l.dims(), l.strides());
    let mut idx = vec![0usize; dims.len()];
    for _ in 0..l.numel() {
        let p: usize = l.offset() + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        out.push(p as i64);
        for d in (0..dims.len()).rev() {
            idx[d] += 1;
            if idx[d] < dims[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// The gradient of `x.as_strided(g.shape(), strides, offset)`: `g` added into a buffer over
/// the storage positions (an `index_add`, so overlapping view elements add up), then read at
/// `x`'s positions (an `index_select`), divided where several elements of `x` share one
/// position. Tensor ops throughout, so the gradient is itself differentiable.
pub(crate) fn as_strided_backward(
    x: &Tensor,
    g: &Tensor,
    strides: &[usize],
    offset: usize,
) -> Result<Tensor> {
    let view = Layout::new(g.shape().clone(), strides.to_vec(), offset);
    let (pv, px) = (positions(&view), positions(x.layout()));
    let lo = pv.iter().chain(&px).copied().min().unwrap_or(0);
    let hi = pv.iter().chain(&px).copied().max().unwrap_or(-1);
    let span = (hi - lo + 1).max(0) as usize;
    let rel = |v: Vec<i64>| -> Result<Tensor> {
        let n = v.len();
        Tensor::from_vec(
            v.into_iter().map(|p| p - lo).collect::<Vec<i64>>(),
            [n],
            g.device(),
        )
    };
    let (iv, ix) = (rel(pv)?, rel(px.clone())?);
    let buf = Tensor::zeros([span], g.dtype(), g.device())?.index_add(
        0usize,
        &iv,
        &g.reshape([g.numel()])?,
    )?;
    let gx = buf.index_select(0usize, &ix)?.reshape(x.shape().clone())?;
    // x's own elements overlap (x is itself an overlapping view): share each position's
    // gradient among them, as PyTorch's as_strided_backward does
    let mut count = vec![0u32; span];
    for &p in &px {
        count[(p - lo) as usize] += 1;
    }
    if px.iter().any(|&p| count[(p - lo) as usize] > 1) {
        let c: Vec<f64> = px
            .iter()
            .map(|&p| count[(p - lo) as usize] as f64)
            .collect();
        let c = Tensor::from_vec(c, x.shape().clone(), crate::Device::Cpu)?
            .to_dtype(g.dtype())?
            .to_device(g.device())?;
        return gx.div(&c);
    }
    Ok(gx)
}
