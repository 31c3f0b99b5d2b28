//! Reductions: sum / max / min primitives and what is composed from them (mean, var, std,
//! logsumexp, argmax, max along a dim with indices).

use crate::op::{ArgReduceOp, Op, ReduceOp};
use crate::shape::{reduction_dims, Dim, Dims};
use crate::{DType, Error, Result, Shape, Tensor};

impl Tensor {
    /// The primitive: reduce over `dims` (sorted, unique, resolved), keeping them as extent 1.
    pub(crate) fn reduce_keepdim(&self, op: ReduceOp, dims: &[usize]) -> Result<Tensor> {
        if dims.is_empty() {
            // a sum over nothing (a 0-d tensor) still counts bools (and small ints) as int64
            if op == ReduceOp::Sum && !self.dtype().is_float() && self.dtype() != DType::I64 {
                return self.to_dtype(DType::I64);
            }
            return Ok(self.clone());
        }
        if op != ReduceOp::Sum && dims.iter().any(|&d| self.dims()[d] == 0) {
            return Err(Error::InvalidShape {
                op: op.name(),
                shape: self.shape().clone(),
                msg: "cannot take the max/min over a dimension of size 0 (the reduction has no identity)".into(),
            });
        }
        // Sums of bools count; sums of ints are int64, whatever their width (as in PyTorch).
        let x = if op == ReduceOp::Sum && !self.dtype().is_float() && self.dtype() != DType::I64 {
            self.to_dtype(DType::I64)?
        } else {
            self.clone()
        };
        let s = x.storage().reduce(x.layout(), op, dims)?;
        let mut out_dims = x.dims().to_vec();
        for &d in dims {
            out_dims[d] = 1;
        }
        Tensor::from_op(s, Shape::new(out_dims), Op::Reduce(x, op, dims.to_vec()))
    }

    /// Reduces over `dims` (empty = all), dropping them unless `keepdim`.
    pub fn reduce<D: Dims + ?Sized>(
        &self,
        op: ReduceOp,
        dims: &D,
        keepdim: bool,
    ) -> Result<Tensor> {
        let dims = reduction_dims(op.name(), dims, self.rank())?;
        let r = self.reduce_keepdim(op, &dims)?;
        if keepdim || dims.is_empty() {
            Ok(r)
        } else {
            let kept: Vec<usize> = (0..self.rank())
                .filter(|d| !dims.contains(d))
                .map(|d| self.dims()[d])
                .collect();
            r.reshape(kept)
        }
    }

    /// Sum over `dims` (empty = all dims).
    pub fn sum<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Sum, dims, keepdim)
    }
    /// Sum of all elements, as a 0-d tensor.
    pub fn sum_all(&self) -> Result<Tensor> {
        self.sum(&[] as &[usize], false)
    }
    /// Mean over `dims` (empty = all dims). Integer input is promoted to float32.
    pub fn mean<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        if self.dtype().is_storage_only() && self.dtype().is_float() {
            // float16's sum of the values may overflow where their mean does not: accumulate and
            // divide in float32, round once (PyTorch's half mean does the same)
            let d = self.dtype();
            return self.to_dtype(d.compute())?.mean(dims, keepdim)?.to_dtype(d);
        }
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(crate::default_float())?
        };
        let rd = reduction_dims("mean", dims, x.rank())?;
        let n: usize = rd.iter().map(|&d| x.dims()[d]).product();
        // the mean of nothing is NaN, as in NumPy and PyTorch
        x.sum(&rd, keepdim)?.div_scalar(n as f64)
    }
    pub fn mean_all(&self) -> Result<Tensor> {
        self.mean(&[] as &[usize], false)
    }
    /// Largest value over `dims` (PyTorch's `amax`; ties share the gradient evenly).
    pub fn amax<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Max, dims, keepdim)
    }
    pub fn amin<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        self.reduce(ReduceOp::Min, dims, keepdim)
    }
    pub fn max_all(&self) -> Result<Tensor> {
        self.amax(&[] as &[usize], false)
    }
    pub fn min_all(&self) -> Result<Tensor> {
        self.amin(&[] as &[usize], false)
    }

    /// Index of the largest value along `dim`, or of the flattened tensor when `dim` is `None`.
    pub fn argmax(&self, dim: Option<i64>, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgReduceOp::ArgMax, dim, keepdim)
    }
    pub fn argmin(&self, dim: Option<i64>, keepdim: bool) -> Result<Tensor> {
        self.arg_reduce(ArgReduceOp::ArgMin, dim, keepdim)
    }
    fn arg_reduce(&self, op: ArgReduceOp, dim: Option<i64>, keepdim: bool) -> Result<Tensor> {
        let name = if op == ArgReduceOp::ArgMax {
            "argmax"
        } else {
            "argmin"
        };
        if self.numel() == 0 && dim.is_none() {
            return Err(Error::InvalidShape {
                op: name,
                shape: self.shape().clone(),
                msg: "cannot take the argmax/argmin of an empty tensor".into(),
            });
        }
        let (x, d) = match dim {
            None => (self.detach().reshape([self.numel()])?, 0usize),
            Some(d) if self.rank() == 0 => {
                (self.detach().reshape([1])?, d.resolve(name, 0).map(|_| 0)?)
            }
            Some(d) => (self.detach(), d.resolve(name, self.rank())?),
        };
        if x.dims()[d] == 0 {
            return Err(Error::InvalidShape {
                op: name,
                shape: self.shape().clone(),
                msg: format!("dimension {d} has size 0"),
            });
        }
        let mut dims = x.dims().to_vec();
        dims[d] = 1;
        let r = if x.numel() == 0 {
            // a non-empty dim of an empty tensor: the result is empty too (PyTorch)
            Tensor::zeros(Shape::new(dims.clone()), DType::I64, x.device())?
        } else {
            let s = x.storage().arg_reduce(x.layout(), op, d)?;
            Tensor::from_storage(s, Shape::new(dims.clone()))
        };
        match (dim, keepdim) {
            (None, true) => r.reshape(vec![1; self.rank()]),
            (None, false) => r.reshape(Shape::scalar()),
            (Some(_), _) if self.rank() == 0 => r.reshape(Shape::scalar()),
            (Some(_), true) => Ok(r),
            (Some(_), false) => {
                dims.remove(d);
                r.reshape(dims)
            }
        }
    }

    /// PyTorch's `max(dim)`: (values, indices). The gradient goes to the arg-max position only.
    pub fn max_dim<D: Dim>(&self, dim: D, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme_dim(dim, keepdim, ArgReduceOp::ArgMax)
    }
    pub fn min_dim<D: Dim>(&self, dim: D, keepdim: bool) -> Result<(Tensor, Tensor)> {
        self.extreme_dim(dim, keepdim, ArgReduceOp::ArgMin)
    }
    fn extreme_dim<D: Dim>(
        &self,
        dim: D,
        keepdim: bool,
        op: ArgReduceOp,
    ) -> Result<(Tensor, Tensor)> {
        let d = dim.resolve("max", self.rank())?;
        if self.rank() == 0 {
            return Ok((
                self.clone(),
                Tensor::zeros(Shape::scalar(), DType::I64, self.device())?,
            ));
        }
        let idx = self.arg_reduce(op, Some(d as i64), true)?;
        let vals = self.gather(d, &idx)?;
        if keepdim {
            Ok((vals, idx))
        } else {
            Ok((vals.squeeze(Some(d as i64))?, idx.squeeze(Some(d as i64))?))
        }
    }

    /// Whether any element over `dims` (empty = all) is non-zero; a bool tensor (PyTorch's
    /// `any`). Empty reductions give `false`.
    pub fn any<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        self.bool_reduce(dims, keepdim, ReduceOp::Max, false)
    }

    /// Whether every element over `dims` (empty = all) is non-zero (PyTorch's `all`). Empty
    /// reductions give `true`.
    pub fn all<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        self.bool_reduce(dims, keepdim, ReduceOp::Min, true)
    }

    /// max (any) / min (all) of the truth values; a reduction over nothing is `identity`.
    fn bool_reduce<D: Dims + ?Sized>(
        &self,
        dims: &D,
        keepdim: bool,
        op: ReduceOp,
        identity: bool,
    ) -> Result<Tensor> {
        let b = self.detach().to_dtype(DType::Bool)?;
        let rd = reduction_dims(op.name(), dims, b.rank())?;
        let all_dims: Vec<usize> = (0..b.rank()).collect();
        let over = if rd.is_empty() { &all_dims } else { &rd };
        if over.iter().any(|&d| b.dims()[d] == 0) {
            // the sum of nothing has a shape; take it from a sum over the same dims
            let shape = b.sum(&rd, keepdim)?.shape().clone();
            return Tensor::full_value(
                shape,
                crate::Scalar::Bool(identity),
                DType::Bool,
                b.device(),
            );
        }
        b.reduce(op, &rd, keepdim)
    }

    /// Variance over `dims` with Bessel-style `correction` (1 = unbiased, PyTorch's default).
    pub fn var<D: Dims + ?Sized>(
        &self,
        dims: &D,
        correction: f64,
        keepdim: bool,
    ) -> Result<Tensor> {
        if self.dtype().is_storage_only() && self.dtype().is_float() {
            // as `mean`: the squared deviations are summed in float32
            let d = self.dtype();
            return self
                .to_dtype(d.compute())?
                .var(dims, correction, keepdim)?
                .to_dtype(d);
        }
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(crate::default_float())?
        };
        let rd = reduction_dims("var", dims, x.rank())?;
        let n: usize = rd.iter().map(|&d| x.dims()[d]).product();
        let mu = x.mean(&rd, true)?;
        let dev = x.sub(&mu)?;
        let ss = dev.mul(&dev)?.sum(&rd, keepdim)?;
        // PyTorch divides by max(0, n - correction): 0/0 = NaN, and a positive sum over 0 is inf
        // (never a negative "variance" when the correction exceeds n)
        ss.div_scalar((n as f64 - correction).max(0.0))
    }
    pub fn std<D: Dims + ?Sized>(
        &self,
        dims: &D,
        correction: f64,
        keepdim: bool,
    ) -> Result<Tensor> {
        self.var(dims, correction, keepdim)?.sqrt()
    }

    /// `log(sum(exp(x)))` over `dims`, stabilised by subtracting the (detached) max.
    pub fn logsumexp<D: Dims + ?Sized>(&self, dims: &D, keepdim: bool) -> Result<Tensor> {
        if !self.dtype().is_float() {
            // integer and bool inputs are promoted to the default float dtype, as in PyTorch
            return self
                .to_dtype(crate::default_float())?
                .logsumexp(dims, keepdim);
        }
        let rd = reduction_dims("logsumexp", dims, self.rank())?;
        if rd.iter().any(|&d| self.dims()[d] == 0) {
            // log(sum over nothing) = log(0) = -inf
            let s = self.detach().sum(&rd, keepdim)?;
            return s.full_like(f64::NEG_INFINITY);
        }
        let m = self.detach().amax(&rd, true)?;
        // a row of -inf would give -inf - -inf = NaN; use 0 there (the result is -inf either way)
        let m = Tensor::where_cond(&m.abs()?.eq_scalar(f64::INFINITY)?, &m.zeros_scalar()?, &m)?;
        let s = self.sub(&m)?.exp()?.sum(&rd, true)?.log()?.add(&m)?;
        if keepdim {
            Ok(s)
        } else {
            let kept: Vec<usize> = (0..self.rank())
                .filter(|d| !rd.contains(d))
                .map(|d| self.dims()[d])
                .collect();
            s.reshape(kept)
        }
    }
}
