//! Vector and matrix norms (`torch.linalg.vector_norm` / `matrix_norm`, `Tensor.norm`),
//! composed from reductions. The 2-norm is `sqrt(sum(x^2))` guarded so that its gradient at
//! zero is 0 (PyTorch's subgradient), not the NaN of `0 / 0`.

use crate::shape::Dim;
use crate::{Error, Result, Scalar, Tensor};

/// The order of a matrix norm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatrixOrd {
    /// Frobenius: the 2-norm of the entries.
    Fro,
    /// Nuclear (sum of singular values): needs an SVD, which the engine does not have.
    Nuc,
    /// 1, -1, inf, -inf (max/min column or row sums) or 2, -2 (singular values; refused).
    P(f64),
}

impl Tensor {
    /// `torch.linalg.vector_norm(x, ord, dim, keepdim)`: `ord` is any p (`inf`, `-inf`, 0 for
    /// the count of non-zeros); `dims` empty means all.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![3.0f32, -4.0], [2], Device::Cpu)?;
    /// assert_eq!(t.vector_norm(2.0, &[], false)?.item()?, 5.0);
    /// assert_eq!(t.vector_norm(f64::INFINITY, &[], false)?.item()?, 4.0);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn vector_norm(&self, ord: f64, dims: &[i64], keepdim: bool) -> Result<Tensor> {
        if !self.dtype().is_float() {
            return Err(Error::DType {
                op: "linalg.vector_norm",
                dtype: self.dtype(),
                detail: " (expected a floating point tensor as input)".into(),
            });
        }
        if ord.is_nan() {
            return Err(Error::invalid("linalg.vector_norm", "ord must not be NaN"));
        }
        let mut ds: Vec<usize> = Vec::with_capacity(dims.len());
        for &d in dims {
            ds.push(d.resolve("linalg.vector_norm", self.rank())?);
        }
        let a = self.abs()?;
        if ord == 2.0 {
            let s = self.mul(self)?.sum(&ds, keepdim)?;
            // sqrt with a zero gradient where the sum is 0 (the double-where trick)
            let zero = s.eq_scalar(0.0)?;
            let one = Tensor::constant(Scalar::Float(1.0), s.dtype(), s.device())?;
            let safe = Tensor::where_cond(&zero, &one, &s)?.sqrt()?;
            return Tensor::where_cond(&zero, &s.zeros_scalar()?, &safe);
        }
        if ord == f64::INFINITY {
            return if self.numel() == 0 {
                a.sum(&ds, keepdim)
            } else {
                a.amax(&ds, keepdim)
            };
        }
        if ord == f64::NEG_INFINITY {
            return a.amin(&ds, keepdim);
        }
        if ord == 0.0 {
            return a
                .ne(&a.zeros_scalar()?)?
                .to_dtype(self.dtype())?
                .sum(&ds, keepdim);
        }
        if ord == 1.0 {
            return a.sum(&ds, keepdim);
        }
        a.pow_scalar(ord)?.sum(&ds, keepdim)?.pow_scalar(1.0 / ord)
    }

    /// `torch.linalg.matrix_norm(x, ord, dim=(d0, d1), keepdim)`: Frobenius and the 1 / inf
    /// families; the nuclear and spectral norms need singular values and are refused.
    pub fn matrix_norm(&self, ord: MatrixOrd, dim: (i64, i64), keepdim: bool) -> Result<Tensor> {
        const OP: &str = "linalg.matrix_norm";
        if self.rank() < 2 {
            return Err(Error::InvalidShape {
                op: OP,
                shape: self.shape().clone(),
                msg: "the input tensor must be a matrix or a batch of matrices".into(),
            });
        }
        let d0 = dim.0.resolve(OP, self.rank())?;
        let d1 = dim.1.resolve(OP, self.rank())?;
        if d0 == d1 {
            return Err(Error::invalid(
                OP,
                format!("dims must be different, got ({}, {})", dim.0, dim.1),
            ));
        }
        match ord {
            MatrixOrd::Fro => self.vector_norm(2.0, &[d0 as i64, d1 as i64], keepdim),
            MatrixOrd::Nuc => Err(Error::Unsupported {
                op: OP,
                device: self.device(),
                msg:
                    "ord='nuc' needs singular values (an SVD), which backprop_rs does not implement"
                        .into(),
            }),
            MatrixOrd::P(p) if p == 2.0 || p == -2.0 => Err(Error::Unsupported {
                op: OP,
                device: self.device(),
                msg: format!(
                    "ord={p} needs singular values (an SVD), which backprop_rs does not implement"
                ),
            }),
            MatrixOrd::P(p) if p.abs() == 1.0 || p.abs() == f64::INFINITY => {
                if !self.dtype().is_float() {
                    return Err(Error::DType {
                        op: OP,
                        dtype: self.dtype(),
                        detail: " (expected a floating point tensor as input)".into(),
                    });
                }
                // ord 1: the largest column sum (sum over d0, then max over d1); inf: rows
                let (sum_d, ext_d) = if p.abs() == 1.0 { (d0, d1) } else { (d1, d0) };
                let s = self.abs()?.sum(&[sum_d], true)?;
                let r = if p > 0.0 {
                    s.amax(&[ext_d], true)?
                } else {
                    s.amin(&[ext_d], true)?
                };
                if keepdim {
                    Ok(r)
                } else {
                    let (hi, lo) = (d0.max(d1), d0.min(d1));
                    r.squeeze(Some(hi as i64))?.squeeze(Some(lo as i64))
                }
            }
            MatrixOrd::P(p) => Err(Error::invalid(
                OP,
                format!(
                    "order {p} not supported (expected 'fro', 'nuc', 1, -1, 2, -2, inf or -inf)"
                ),
            )),
        }
    }
}
