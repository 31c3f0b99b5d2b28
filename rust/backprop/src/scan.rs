//! Scans along a dim: `cumsum` and `cumprod`, composed (not primitives).
//!
//! A scan is `ceil(log2 n)` Hillis–Steele steps, each `y = y OP shift(y, s)` with `s = 1, 2, 4...`
//! and `shift` a `cat` of the identity element and a narrowed copy. That is O(n log n) work in
//! O(log n) ops, runs on every device (the ops are GPU primitives), and needs no gradient rule
//! of its own: the gradient is the chain of `cat`/`narrow`/`add` (or `mul`) rules, so
//! `cumsum`'s gradient is the reversed cumsum and `cumprod`'s is exact even with zeros in the
//! input (no division by the output, unlike the textbook formula), and second derivatives work.

use crate::op::BinaryOp;
use crate::shape::Dim;
use crate::{DType, Result, Scalar, Tensor};

impl Tensor {
    /// Running sum along `dim` (`torch.cumsum`; integer and bool input give int64).
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0], [3], Device::Cpu)?;
    /// assert_eq!(t.cumsum(0)?.to_vec::<f32>()?, vec![1.0, 3.0, 6.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn cumsum(&self, dim: i64) -> Result<Tensor> {
        self.scan("cumsum", dim, BinaryOp::Add)
    }

    /// Running product along `dim` (`torch.cumprod`).
    pub fn cumprod(&self, dim: i64) -> Result<Tensor> {
        self.scan("cumprod", dim, BinaryOp::Mul)
    }

    fn scan(&self, op: &'static str, dim: i64, bop: BinaryOp) -> Result<Tensor> {
        let d = dim.resolve(op, self.rank())?;
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(DType::I64)?
        };
        if x.rank() == 0 || x.dims()[d] <= 1 {
            return x.contiguous_copy();
        }
        let n = x.dims()[d];
        let identity = if bop == BinaryOp::Add { 0 } else { 1 };
        let mut y = x;
        let mut s = 1usize;
        while s < n {
            let mut pad_shape = y.dims().to_vec();
            pad_shape[d] = s;
            let pad = Tensor::full_scalar(Scalar::Int(identity), y.dtype(), y.device())?
                .broadcast_to(&pad_shape.into())?;
            let shifted = Tensor::cat(&[pad, y.narrow(d, 0, n - s)?], d)?;
            y = y.binary(&shifted, bop)?;
            s *= 2;
        }
        Ok(y)
    }
}
