//! Softmax and log-softmax: fused primitives (one pass for the max, one for the sum), because
//! composing them from exp/sum/div costs several passes and loses the log-sum-exp stability.

use crate::op::Op;
use crate::shape::Dim;
use crate::{Result, Tensor};

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
            self.to_dtype(crate::default_float())?
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

    /// The gradient of `softmax` (`log` false) or `log_softmax` (`log` true) along `dim`, given
    /// the upstream gradient `grad` and the forward's output `output` (PyTorch's
    /// `_softmax_backward_data`): `y (g - sum(g y))` or `g - exp(y) sum(g)`, one fused pass per
    /// row. Differentiable (its own gradient is composed), so double backward works.
    ///
    /// ```
    /// # use backprop::{Device, Tensor};
    /// let y = Tensor::from_vec(vec![0.25f32, 0.75], [2], Device::Cpu)?;
    /// let g = Tensor::from_vec(vec![1.0f32, 0.0], [2], Device::Cpu)?;
    /// let dx = Tensor::softmax_backward(&g, &y, 0, false)?.to_vec::<f32>()?;
    /// assert_eq!(dx, vec![0.1875, -0.1875]); // y * (g - 0.25)
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn softmax_backward<D: Dim>(
        grad: &Tensor,
        output: &Tensor,
        dim: D,
        log: bool,
    ) -> Result<Tensor> {
        let name = if log {
            "log_softmax_backward"
        } else {
            "softmax_backward"
        };
        if grad.shape() != output.shape() {
            return Err(crate::Error::ShapeMismatch {
                op: name,
                lhs: grad.shape().clone(),
                rhs: output.shape().clone(),
                detail: ": the gradient and the output must have the same shape".into(),
            });
        }
        if grad.dtype() != output.dtype() || !grad.dtype().is_float() {
            return Err(crate::Error::DTypeMismatch {
                op: name,
                lhs: grad.dtype(),
                rhs: output.dtype(),
            });
        }
        if grad.device() != output.device() {
            return Err(crate::Error::DeviceMismatch {
                op: name,
                lhs: grad.device(),
                rhs: output.device(),
            });
        }
        if grad.rank() == 0 {
            let one = |t: &Tensor| t.reshape([1]);
            return Tensor::softmax_backward(&one(grad)?, &one(output)?, 0usize, log)?
                .reshape(crate::Shape::scalar());
        }
        let d = dim.resolve(name, grad.rank())?;
        let s = crate::tensor::with_read([grad, output], |[gs, ys]| {
            gs.softmax_backward(grad.layout(), ys, output.layout(), d, log)
        })?;
        let op = Op::SoftmaxBackward {
            g: grad.clone(),
            y: output.clone(),
            dim: d,
            log,
        };
        Tensor::from_op(s, grad.shape().clone(), op)
    }
}
