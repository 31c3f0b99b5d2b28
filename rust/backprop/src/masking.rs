//! Masked writes and reads: `masked_fill(_)`, `masked_select`, `index_fill(_)`, and the
//! float-class tests and repairs (`isnan`, `isinf`, `isfinite`, `nan_to_num`), closeness
//! (`isclose`, `allclose`, `equal`) and `lerp`. All are comparisons and `where` (or the boolean
//! index), so they run on every device and differentiate through `where`'s rule.

use crate::indexer::Indexer;
use crate::op::CmpOp;
use crate::shape::Dim;
use crate::{DType, Error, Result, Scalar, Shape, Tensor};

fn need_bool_mask(op: &'static str, mask: &Tensor) -> Result<()> {
    if mask.dtype() != DType::Bool {
        return Err(Error::DType {
            op,
            dtype: mask.dtype(),
            detail: format!(" ({op} only supports boolean masks)"),
        });
    }
    Ok(())
}

impl Tensor {
    /// `self` with `value` where `mask` (broadcast to `self`'s shape) is true. The value is
    /// converted to `self`'s dtype; a 0-d tensor value receives the summed gradient.
    pub fn masked_fill(&self, mask: &Tensor, value: &Tensor) -> Result<Tensor> {
        need_bool_mask("masked_fill", mask)?;
        if value.rank() != 0 {
            return Err(Error::invalid(
                "masked_fill",
                format!(
                    "only supports a 0-dimensional value tensor, but got tensor with {} dimension(s)",
                    value.rank()
                ),
            ));
        }
        let shape = Shape::broadcast("masked_fill", self.shape(), mask.shape())?;
        if &shape != self.shape() {
            return Err(Error::shape_mismatch(
                "masked_fill",
                self.shape(),
                mask.shape(),
            ));
        }
        let v = if value.dtype() == self.dtype() {
            value.clone()
        } else {
            value.to_dtype(self.dtype())?
        };
        let v = if v.device() != self.device() {
            v.to_device(self.device())?
        } else {
            v
        };
        Tensor::where_cond(mask, &v, self)
    }

    /// `masked_fill` with a number.
    pub fn masked_fill_scalar(&self, mask: &Tensor, value: Scalar) -> Result<Tensor> {
        let v = Tensor::constant(value, self.dtype(), self.device())?;
        self.masked_fill(mask, &v)
    }

    /// In-place `masked_fill`.
    pub fn masked_fill_(&self, mask: &Tensor, value: &Tensor) -> Result<Tensor> {
        self.apply_inplace("masked_fill_", |v| v.masked_fill(mask, value))
    }

    /// The elements where `mask` is true (both broadcast together), as a 1-d tensor.
    pub fn masked_select(&self, mask: &Tensor) -> Result<Tensor> {
        need_bool_mask("masked_select", mask)?;
        let shape = Shape::broadcast("masked_select", self.shape(), mask.shape())?;
        let x = self.broadcast_to(&shape)?;
        let m = mask.broadcast_to(&shape)?;
        if shape.rank() == 0 {
            return x.reshape([1])?.index(&[Indexer::Tensor(m.reshape([1])?)]);
        }
        x.index(&[Indexer::Tensor(m)])
    }

    /// `self` with the slices at `index` along `dim` set to `value` (`torch.index_fill`).
    pub fn index_fill(&self, dim: i64, index: &Tensor, value: &Tensor) -> Result<Tensor> {
        if index.dtype() != DType::I64 || index.rank() > 1 {
            return Err(Error::invalid(
                "index_fill",
                format!(
                    "index must be a 0-d or 1-d int64 tensor, got {} {}",
                    index.dtype(),
                    index.shape()
                ),
            ));
        }
        let d = dim.resolve("index_fill", self.rank())?;
        let n = if self.rank() == 0 { 1 } else { self.dims()[d] };
        let idx = index.reshape([index.numel()])?;
        if idx.numel() > 0 {
            let lo = idx.lt(&Tensor::full_scalar(
                Scalar::Int(-(n as i64)),
                DType::I64,
                idx.device(),
            )?)?;
            let hi = idx.ge(&Tensor::full_scalar(
                Scalar::Int(n as i64),
                DType::I64,
                idx.device(),
            )?)?;
            if lo.logical_or(&hi)?.any(&[] as &[usize], false)?.item()? != 0.0 {
                return Err(Error::invalid(
                    "index_fill",
                    format!("index out of range for dimension {d} of size {n}"),
                ));
            }
        }
        // negative indices count from the end
        let nt = Tensor::full_scalar(Scalar::Int(n as i64), DType::I64, idx.device())?;
        let idx = idx.remainder(&nt)?;
        let pos = crate::matrix::iota(n, self.device())?.reshape([n, 1])?;
        let hit = pos
            .eq(&idx.reshape([1, idx.numel()])?)?
            .any(&[1usize][..], false)?;
        let mut mshape = vec![1usize; self.rank()];
        if self.rank() > 0 {
            mshape[d] = n;
        }
        let mask = hit.reshape(mshape)?;
        self.masked_fill(&mask, value)
    }

    /// In-place `index_fill`.
    pub fn index_fill_(&self, dim: i64, index: &Tensor, value: &Tensor) -> Result<Tensor> {
        self.apply_inplace("index_fill_", |v| v.index_fill(dim, index, value))
    }

    /// True where the element is NaN (never for integers).
    pub fn isnan(&self) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Tensor::zeros(self.shape().clone(), DType::Bool, self.device());
        }
        self.detach().compare(&self.detach(), CmpOp::Ne)
    }

    /// True where the element is +inf or -inf.
    pub fn isinf(&self) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Tensor::zeros(self.shape().clone(), DType::Bool, self.device());
        }
        self.detach()
            .abs()?
            .compare_scalar(Scalar::Float(f64::INFINITY), CmpOp::Eq)
    }

    /// True where the element is neither NaN nor infinite.
    pub fn isfinite(&self) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Tensor::ones(self.shape().clone(), DType::Bool, self.device());
        }
        // x - x is 0 exactly for finite x, NaN for NaN and infinities
        let x = self.detach();
        x.sub(&x)?.compare_scalar(Scalar::Float(0.0), CmpOp::Eq)
    }

    /// NaN replaced by `nan`, +inf by `posinf` and -inf by `neginf` (by default the dtype's
    /// largest and lowest finite values), as `torch.nan_to_num`.
    pub fn nan_to_num(&self, nan: f64, posinf: Option<f64>, neginf: Option<f64>) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return self.contiguous_copy();
        }
        let hi = self.dtype().finite_max();
        let lo = -hi;
        let full = |v: f64| Tensor::constant(Scalar::Float(v), self.dtype(), self.device());
        let x = Tensor::where_cond(&self.isnan()?, &full(nan)?, self)?;
        let x = Tensor::where_cond(
            &self.compare_scalar(Scalar::Float(f64::INFINITY), CmpOp::Eq)?,
            &full(posinf.unwrap_or(hi))?,
            &x,
        )?;
        Tensor::where_cond(
            &self.compare_scalar(Scalar::Float(f64::NEG_INFINITY), CmpOp::Eq)?,
            &full(neginf.unwrap_or(lo))?,
            &x,
        )
    }

    /// `|self - other| <= atol + rtol * |other|` elementwise (equal infinities are close; NaNs
    /// only with `equal_nan`), as `torch.isclose`.
    pub fn isclose(&self, other: &Tensor, rtol: f64, atol: f64, equal_nan: bool) -> Result<Tensor> {
        if rtol < 0.0 || atol < 0.0 {
            return Err(Error::invalid(
                "isclose",
                format!("rtol ({rtol}) and atol ({atol}) must be non-negative"),
            ));
        }
        let (a, b) = (self.detach(), other.detach());
        let eq = a.eq(&b)?;
        let dt = crate::pointwise::promote_pair(&a, &b);
        if !dt.is_float() {
            if rtol == 0.0 && atol == 0.0 {
                return Ok(eq);
            }
            let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
            return a
                .isclose(&b, rtol, atol, false)
                .map(|c| c.logical_or(&eq))
                .and_then(|r| r);
        }
        let (a, b) = (a.to_dtype(dt)?, b.to_dtype(dt)?);
        let diff = a.sub(&b)?.abs()?;
        let tol = b.abs()?.mul_scalar(rtol)?.add_scalar(atol)?;
        // finite differences only: inf - inf is NaN, and NaN <= tol is false
        let close = diff.le(&tol)?.logical_or(&eq)?;
        if equal_nan {
            close.logical_or(&a.isnan()?.logical_and(&b.isnan()?)?)
        } else {
            Ok(close)
        }
    }

    /// Whether every element is close (`torch.allclose`).
    pub fn allclose(&self, other: &Tensor, rtol: f64, atol: f64, equal_nan: bool) -> Result<bool> {
        let c = self.isclose(other, rtol, atol, equal_nan)?;
        Ok(c.all(&[] as &[usize], false)?.item()? != 0.0)
    }

    /// Same shape and the same elements (`torch.equal`; NaN is never equal).
    pub fn equal(&self, other: &Tensor) -> Result<bool> {
        if self.shape() != other.shape() {
            return Ok(false);
        }
        let e = self.detach().eq(&other.detach())?;
        Ok(e.all(&[] as &[usize], false)?.item()? != 0.0)
    }

    /// `self + weight * (end - self)` (`torch.lerp`), all broadcast together.
    pub fn lerp(&self, end: &Tensor, weight: &Tensor) -> Result<Tensor> {
        self.add(&weight.mul(&end.sub(self)?)?)
    }
}
