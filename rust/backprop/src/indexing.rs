//! Index ops: gather / scatter_add, index_select / index_add, slice_scatter, cat / stack.

use crate::op::{Op, ScatterReduce};
use crate::shape::Dim;
use crate::{DType, Error, Layout, Result, Shape, Tensor};

fn check_index(op: &'static str, index: &Tensor) -> Result<()> {
    if index.dtype() != DType::I64 {
        return Err(Error::DType {
            op,
            dtype: index.dtype(),
            detail: " (index tensors must be int64)".into(),
        });
    }
    Ok(())
}

impl Tensor {
    /// `out[i][j] = self[i][index[i][j]]` (for dim 1); `index` has the rank of `self` and is no
    /// larger than it in the other dims.
    pub fn gather<D: Dim>(&self, dim: D, index: &Tensor) -> Result<Tensor> {
        let d = dim.resolve("gather", self.rank())?;
        check_index("gather", index)?;
        if index.rank() != self.rank()
            || (0..self.rank()).any(|i| i != d && index.dims()[i] > self.dims()[i])
        {
            return Err(Error::ShapeMismatch {
                op: "gather",
                lhs: self.shape().clone(),
                rhs: index.shape().clone(),
                detail: format!(
                    ": index must have the same rank as the input and be no larger outside dim {d}"
                ),
            });
        }
        let s = crate::tensor::with_read([self, index], |[sx, si]| {
            sx.gather(self.layout(), d, si, index.layout())
        })?;
        Tensor::from_op(
            s,
            index.shape().clone(),
            Op::Gather(self.clone(), d, index.detach()),
        )
    }

    /// `self` with `src[i][j]` added at `[i][index[i][j]]` (for dim 1).
    pub fn scatter_add<D: Dim>(&self, dim: D, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_reduce_op(dim, index, src, ScatterReduce::Add)
    }

    /// `self` with `src[i][j]` written at `[i][index[i][j]]` (for dim 1; PyTorch's `scatter`).
    pub fn scatter<D: Dim>(&self, dim: D, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        self.scatter_reduce_op(dim, index, src, ScatterReduce::Assign)
    }

    fn scatter_reduce_op<D: Dim>(
        &self,
        dim: D,
        index: &Tensor,
        src: &Tensor,
        reduce: ScatterReduce,
    ) -> Result<Tensor> {
        let name = match reduce {
            ScatterReduce::Add => "scatter_add",
            ScatterReduce::Assign => "scatter",
        };
        let d = dim.resolve(name, self.rank())?;
        check_index(name, index)?;
        let bad = index.rank() != self.rank()
            || src.rank() != self.rank()
            || (0..self.rank()).any(|i| {
                index.dims()[i] > src.dims()[i] || (i != d && index.dims()[i] > self.dims()[i])
            });
        if bad {
            return Err(Error::ShapeMismatch {
                op: name,
                lhs: self.shape().clone(),
                rhs: index.shape().clone(),
                detail: format!(": index (shape {}) must fit inside src (shape {}) and, outside dim {d}, inside self", index.shape(), src.shape()),
            });
        }
        let src = if src.dtype() != self.dtype() {
            src.to_dtype(self.dtype())?
        } else {
            src.clone()
        };
        // only the part of src covered by index takes part
        let src_used = if src.shape() == index.shape() {
            src
        } else {
            let mut t = src;
            for (i, &n) in index.dims().iter().enumerate() {
                t = t.narrow(i, 0, n)?;
            }
            t
        };
        let s = crate::tensor::with_read([self, index, &src_used], |[sb, si, ss]| {
            sb.scatter(
                self.layout(),
                d,
                si,
                index.layout(),
                ss,
                src_used.layout(),
                reduce,
            )
        })?;
        Tensor::from_op(
            s,
            self.shape().clone(),
            Op::Scatter {
                base: self.clone(),
                dim: d,
                index: index.detach(),
                src: src_used,
                reduce,
            },
        )
    }

    /// Whole slices along `dim` picked by a 1-d (or 0-d) int64 `index`.
    pub fn index_select<D: Dim>(&self, dim: D, index: &Tensor) -> Result<Tensor> {
        let d = dim.resolve("index_select", self.rank())?;
        check_index("index_select", index)?;
        if index.rank() > 1 {
            return Err(Error::InvalidShape {
                op: "index_select",
                shape: index.shape().clone(),
                msg: "index must be 0-d or 1-d".into(),
            });
        }
        let index = if index.rank() == 0 {
            index.reshape([1])?
        } else {
            index.clone()
        };
        let x = if self.rank() == 0 {
            self.reshape([1])?
        } else {
            self.clone()
        };
        let s = crate::tensor::with_read([&x, &index], |[sx, si]| {
            sx.index_select(x.layout(), d, si, index.layout())
        })?;
        let mut dims = x.dims().to_vec();
        dims[d] = index.numel();
        Tensor::from_op(s, Shape::new(dims), Op::IndexSelect(x, d, index.detach()))
    }

    /// `self` with slice `k` of `src` added at slice `index[k]` along `dim`.
    pub fn index_add<D: Dim>(&self, dim: D, index: &Tensor, src: &Tensor) -> Result<Tensor> {
        let d = dim.resolve("index_add", self.rank())?;
        check_index("index_add", index)?;
        let mut expect = self.dims().to_vec();
        if index.rank() != 1 || src.rank() != self.rank() || {
            expect[d] = index.numel();
            src.dims() != expect.as_slice()
        } {
            return Err(Error::ShapeMismatch {
                op: "index_add",
                lhs: self.shape().clone(),
                rhs: src.shape().clone(),
                detail: format!(
                    ": src must have shape {} for a 1-d index of {} entries along dim {d}",
                    Shape::new(expect),
                    index.numel()
                ),
            });
        }
        let src = if src.dtype() != self.dtype() {
            src.to_dtype(self.dtype())?
        } else {
            src.clone()
        };
        let s = crate::tensor::with_read([self, index, &src], |[sb, si, ss]| {
            sb.index_add(self.layout(), d, si, index.layout(), ss, src.layout())
        })?;
        Tensor::from_op(
            s,
            self.shape().clone(),
            Op::IndexAdd {
                base: self.clone(),
                dim: d,
                index: index.detach(),
                src,
            },
        )
    }

    /// A copy of `self` with the slice `start, start+step, ...` along `dim` replaced by `src`.
    pub fn slice_scatter(
        &self,
        src: &Tensor,
        dim: usize,
        start: usize,
        step: usize,
    ) -> Result<Tensor> {
        if dim >= self.rank() || step == 0 {
            return Err(Error::invalid(
                "slice_scatter",
                format!(
                    "invalid dim {dim} or step {step} for shape {}",
                    self.shape()
                ),
            ));
        }
        let len = src.dims().get(dim).copied().unwrap_or(0);
        let mut expect = self.dims().to_vec();
        expect[dim] = len;
        if src.dims() != expect.as_slice()
            || (len > 0 && start + (len - 1) * step >= self.dims()[dim])
        {
            return Err(Error::ShapeMismatch {
                op: "slice_scatter",
                lhs: self.shape().clone(),
                rhs: src.shape().clone(),
                detail: format!(": src does not fit at start={start} step={step} of dim {dim}"),
            });
        }
        let src = if src.dtype() != self.dtype() {
            src.to_dtype(self.dtype())?
        } else {
            src.clone()
        };
        if src.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op: "slice_scatter",
                lhs: self.device(),
                rhs: src.device(),
            });
        }
        let mut out = self.storage().copy_strided(self.layout())?;
        let dl = Layout::contiguous(self.shape().clone()).slice(dim, start, len, step);
        out.copy_into(&dl, &src.storage(), src.layout())?;
        Tensor::from_op(
            out,
            self.shape().clone(),
            Op::SliceScatter {
                base: self.clone(),
                src,
                dim,
                start,
                step,
            },
        )
    }

    /// Concatenates along `dim`; all tensors must agree in the other dims.
    pub fn cat<D: Dim>(tensors: &[Tensor], dim: D) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("cat", "expected a non-empty list of tensors"))?;
        // PyTorch skips 1-d empty tensors (legacy behaviour people rely on)
        let parts: Vec<&Tensor> = tensors
            .iter()
            .filter(|t| !(t.rank() == 1 && t.numel() == 0))
            .collect();
        let Some(reference) = parts.first() else {
            return Ok(first.clone());
        };
        let d = dim.resolve("cat", reference.rank())?;
        if reference.rank() == 0 {
            return Err(Error::invalid(
                "cat",
                "zero-dimensional tensors cannot be concatenated; use stack",
            ));
        }
        let dtype = parts
            .iter()
            .fold(reference.dtype(), |a, t| DType::promote(a, t.dtype()));
        let mut total = 0usize;
        for t in &parts {
            if t.rank() != reference.rank()
                || (0..t.rank()).any(|i| i != d && t.dims()[i] != reference.dims()[i])
            {
                return Err(Error::ShapeMismatch {
                    op: "cat",
                    lhs: reference.shape().clone(),
                    rhs: t.shape().clone(),
                    detail: format!(": sizes must match except in dimension {d}"),
                });
            }
            if t.device() != reference.device() {
                return Err(Error::DeviceMismatch {
                    op: "cat",
                    lhs: reference.device(),
                    rhs: t.device(),
                });
            }
            total += t.dims()[d];
        }
        let mut dims = reference.dims().to_vec();
        dims[d] = total;
        let shape = Shape::new(dims);
        let mut out = crate::storage::Storage::full(
            &shape,
            crate::Scalar::Int(0),
            dtype,
            reference.device(),
        )?;
        let full = Layout::contiguous(shape.clone());
        let mut inputs = Vec::with_capacity(parts.len());
        let mut off = 0;
        for t in parts {
            let t = if t.dtype() != dtype {
                t.to_dtype(dtype)?
            } else {
                t.clone()
            };
            let n = t.dims()[d];
            out.copy_into(&full.slice(d, off, n, 1), &t.storage(), t.layout())?;
            off += n;
            inputs.push(t);
        }
        Tensor::from_op(out, shape, Op::Cat(inputs, d))
    }

    /// Stacks equal-shape tensors along a new dim.
    pub fn stack<D: Dim>(tensors: &[Tensor], dim: D) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "expected a non-empty list of tensors"))?;
        let d = dim.resolve("stack", first.rank() + 1)?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(Error::ShapeMismatch {
                    op: "stack",
                    lhs: first.shape().clone(),
                    rhs: t.shape().clone(),
                    detail: ": stack expects each tensor to be equal size".into(),
                });
            }
        }
        let parts: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.unsqueeze(d))
            .collect::<Result<_>>()?;
        Tensor::cat(&parts, d)
    }

    /// Splits into pieces of `size` along `dim` (the last may be smaller; PyTorch's
    /// `split(int)`). A dim of extent 0 gives one empty piece, as in PyTorch.
    pub fn split<D: Dim>(&self, size: usize, dim: D) -> Result<Vec<Tensor>> {
        let d = self.existing_dim("split", dim)?;
        if size == 0 && self.dims()[d] != 0 {
            return Err(Error::invalid(
                "split",
                "split_size can only be 0 if the dimension size is 0",
            ));
        }
        let n = self.dims()[d];
        if n == 0 {
            return Ok(vec![self.clone()]);
        }
        (0..n.div_ceil(size))
            .map(|i| self.narrow(d, i * size, size.min(n - i * size)))
            .collect()
    }

    /// Splits into pieces of the given sizes along `dim` (PyTorch's `split(list)`).
    pub fn split_with_sizes<D: Dim>(&self, sizes: &[usize], dim: D) -> Result<Vec<Tensor>> {
        let d = self.existing_dim("split_with_sizes", dim)?;
        let total = sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s));
        if total != Some(self.dims()[d]) {
            return Err(Error::invalid(
                "split_with_sizes",
                format!(
                    "split_with_sizes expects split_sizes to sum exactly to {} (input tensor's size at dimension {d}), but got split_sizes={sizes:?}",
                    self.dims()[d]
                ),
            ));
        }
        let mut off = 0;
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            out.push(self.narrow(d, off, s)?);
            off += s;
        }
        Ok(out)
    }

    /// Splits into `chunks` nearly equal pieces along `dim` (PyTorch's rule: pieces of
    /// `ceil(n / chunks)`, so there may be fewer than `chunks`).
    pub fn chunk<D: Dim>(&self, chunks: usize, dim: D) -> Result<Vec<Tensor>> {
        let d = self.existing_dim("chunk", dim)?;
        if chunks == 0 {
            return Err(Error::invalid(
                "chunk",
                "chunk expects `chunks` to be greater than 0",
            ));
        }
        let n = self.dims()[d];
        if n == 0 {
            // PyTorch: `chunks` empty pieces. Each is a tensor handle, so an absurd count would
            // exhaust memory one small allocation at a time: refused instead
            const MAX_EMPTY_PIECES: usize = 1 << 20;
            if chunks > MAX_EMPTY_PIECES {
                return Err(Error::invalid(
                    "chunk",
                    format!("chunking a dim of size 0 into {chunks} empty pieces is refused (at most {MAX_EMPTY_PIECES}; PyTorch would try to make them all)"),
                ));
            }
            return (0..chunks).map(|_| self.narrow(d, 0, 0)).collect();
        }
        self.split(n.div_ceil(chunks), d)
    }

    /// The slices along `dim`, each without that dim (PyTorch's `unbind`).
    pub fn unbind<D: Dim>(&self, dim: D) -> Result<Vec<Tensor>> {
        let d = self.existing_dim("unbind", dim)?;
        (0..self.dims()[d])
            .map(|i| self.select(d, i as i64))
            .collect()
    }

    /// A dim argument that must name an existing dim (0-d tensors have none).
    pub(crate) fn existing_dim<D: Dim>(&self, op: &'static str, dim: D) -> Result<usize> {
        if self.rank() == 0 {
            return Err(Error::invalid(
                op,
                format!("{op} expects at least a 1-dimensional tensor (got a 0-d tensor)"),
            ));
        }
        dim.resolve(op, self.rank())
    }
}

impl Tensor {
    /// Coordinates of the non-zero elements, shape `[count, rank]` (int64). The count depends on
    /// the data, so this reads the tensor back to the host.
    pub fn nonzero(&self) -> Result<Tensor> {
        let vals = self.detach().to_f64_vec()?;
        let rank = self.rank();
        let strides = self.shape().contiguous_strides();
        let mut coords: Vec<i64> = Vec::new();
        let mut count = 0usize;
        for (flat, v) in vals.iter().enumerate() {
            if *v != 0.0 {
                count += 1;
                let mut rem = flat;
                for &s in &strides {
                    coords.push((rem / s.max(1)) as i64);
                    rem %= s.max(1);
                }
            }
        }
        Tensor::from_vec(coords, [count, rank], self.device())
    }
}

/// The gradient of a slice: `g` written into zeros of the sliced tensor's shape. Without
/// `create_graph` it is written in place into the fresh zeros (one fill and one copy); under it,
/// `slice_scatter` records the differentiable op (which copies its base first).
pub(crate) fn slice_backward(
    shape: &crate::Shape,
    g: &Tensor,
    dim: usize,
    start: usize,
    step: usize,
) -> Result<Tensor> {
    let out = Tensor::zeros(shape.clone(), g.dtype(), g.device())?;
    if crate::is_grad_enabled() {
        return out.slice_scatter(g, dim, start, step);
    }
    let len = g.dims().get(dim).copied().unwrap_or(0);
    let fits = dim < shape.rank()
        && step > 0
        && g.dims().len() == shape.rank()
        && g.dims()
            .iter()
            .zip(shape.dims())
            .enumerate()
            .all(|(d, (&a, &b))| d == dim || a == b)
        && (len == 0 || start + (len - 1) * step < shape.dims()[dim]);
    if !fits {
        return out.slice_scatter(g, dim, start, step); // its checks name the mismatch
    }
    let dl = Layout::contiguous(shape.clone()).slice(dim, start, len, step);
    {
        let src = g.storage();
        out.storage_mut().copy_into(&dl, &src, g.layout())?;
    }
    Ok(out)
}
