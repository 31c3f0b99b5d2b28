//! Softmax and log-softmax: fused primitives (one pass for the max, one for the sum), because
//! composing them from exp/sum/div costs several passes and loses the log-sum-exp stability.

use crate::op::Op;
use crate::shape::Dim;
use crate::{DType, Result, Tensor};

impl Tensor {
    /// `exp(x) / sum(exp(x))` along `dim`.
    pub fn softmax<D: Dim>(&self, dim: D) -> Result<Tensor> {
        self.softmax_impl(dim, false)
    }

    /// `x - log(sum(exp(x)))` along `dim`, computed without overflow.
    pub fn log_softmax<D: Dim>(&self, dim: D) -> Result<Tensor> {
        self.softmax_impl(dim, true)
    }

    fn softmax_impl<D: Dim>(&self, dim: D, log: bool) -> Result<Tensor> {
        let name = if log { "log_softmax" } else { "softmax" };
        let d = dim.resolve(name, self.rank())?;
        let x = if self.dtype().is_float() {
            self.clone()
        } else {
            self.to_dtype(DType::F32)?
        };
        if x.rank() == 0 {
            return x
                .reshape([1])?
                .softmax_impl(0usize, log)?
                .reshape(crate::Shape::scalar());
        }
        let s = x.storage().softmax(x.layout(), d, log)?;
        let op = if log {
            Op::LogSoftmax(x.clone(), d)
        } else {
            Op::Softmax(x.clone(), d)
        };
        Tensor::from_op(s, x.shape().clone(), op)
    }
}
