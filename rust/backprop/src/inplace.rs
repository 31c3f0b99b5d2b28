//! In-place operations: `copy_`, `fill_`, `add_`, `relu_`, `index_put_`, ... on any tensor,
//! including ones inside a graph.
//!
//! Every in-place op goes through [`Tensor::apply_inplace`]: the new value is computed out of
//! place from the tensor, written into the tensor's memory, and the op returns the tensor that
//! now stands for it: the same memory and layout and, when autograd recorded the computation,
//! a new graph node holding the result's history. So `y = x * 2; y = y.relu_()?` gives `y` the
//! history `relu(mul(x, 2))`, as PyTorch does, while everything recorded earlier from `y` (its
//! graph edges point at the old node) keeps the history it was computed with. That is PyTorch's
//! rule too: its graph edges point at the node a tensor had when it was used. (The Python
//! binding rebinds the Python object to the returned tensor, so every Python reference sees the
//! new history; in Rust, other clones of the handle keep the old one.)
//!
//! The write bumps the memory's version counter; backward checks the versions of every value a
//! rule reads, so a value overwritten after an op saved it is an error naming the op, never a
//! silently wrong gradient.
//!
//! What is refused, with PyTorch's reasons:
//! - writing into a tensor whose elements alias (an `expand`ed view: stride 0 on a dim of extent
//!   > 1), where "the last write wins" would be arbitrary;
//! - writing into a leaf that requires grad while grad mode is on (its `.grad` would be wrong);
//! - a recorded write through a view (PyTorch rewrites the base's history too; this engine does
//!   not, so it refuses rather than leave the base with a stale history);
//! - a result whose dtype cannot be cast to the tensor's (`int_tensor += 0.5`), or whose shape
//!   differs from the tensor's (`a += b` where `b` broadcasts `a` to a bigger shape).

use crate::autograd;
use crate::op::{BinaryOp, UnaryOp};
use crate::{DType, Error, Result, Scalar, Tensor};

/// PyTorch's `canCast`: a result may be written into a tensor of the same or a higher category
/// (bool < integer < floating), never a lower one.
pub(crate) fn can_cast(from: DType, to: DType) -> bool {
    fn category(d: DType) -> u8 {
        if d == DType::Bool {
            0
        } else if d.is_float() {
            2
        } else {
            1
        }
    }
    category(from) <= category(to)
}

impl Tensor {
    /// Errors for writes into this tensor that can never be right, whatever is written.
    pub(crate) fn check_writable(&self, op: &'static str) -> Result<()> {
        if self
            .dims()
            .iter()
            .zip(self.strides())
            .any(|(&d, &s)| d > 1 && s == 0)
        {
            return Err(Error::invalid(
                op,
                format!(
                    "unsupported operation: more than one element of the written-to tensor (shape {}, strides {:?}) refers to a single memory location (it is an expanded view); clone() it before writing",
                    self.shape(),
                    self.strides()
                ),
            ));
        }
        if self.is_inference() && !autograd::is_inference_mode_enabled() {
            return Err(Error::Autograd(format!(
                "{op}: an in-place update to an inference tensor outside inference_mode is not allowed; make a clone() to get a normal tensor before the in-place update"
            )));
        }
        if autograd::is_grad_enabled() && self.requires_grad() && self.is_leaf() {
            return Err(Error::Autograd(format!(
                "{op}: a leaf tensor that requires grad is being used in an in-place operation; wrap the update in no_grad() or use the out-of-place op"
            )));
        }
        Ok(())
    }

    /// The one path of every in-place op: `f` computes the new value from `self`; the value is
    /// cast to this dtype, written into this memory, and the tensor that now stands for `self`
    /// is returned (with the result's history when autograd recorded `f`).
    ///
    /// ```
    /// # use backprop::{Tensor, Device, DType};
    /// let x = Tensor::from_vec(vec![-1.0f32, 2.0], [2], Device::Cpu)?.requires_grad_(true)?;
    /// let y = x.mul_scalar(3.0)?;
    /// let y = y.apply_inplace("relu_", |v| v.relu())?;  // y = relu(3x), in y's own memory
    /// y.sum_all()?.backward()?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![0.0, 3.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn apply_inplace(
        &self,
        op: &'static str,
        f: impl FnOnce(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        self.check_writable(op)?;
        let r = f(self)?;
        if r.shape() != self.shape() {
            return Err(Error::ShapeMismatch {
                op,
                lhs: self.shape().clone(),
                rhs: r.shape().clone(),
                detail: format!(
                    ": the in-place result (shape {}) must have the shape of the tensor written to (shape {})",
                    r.shape(),
                    self.shape()
                ),
            });
        }
        if !can_cast(r.dtype(), self.dtype()) {
            return Err(Error::DType {
                op,
                dtype: self.dtype(),
                detail: format!(
                    ": result type {} can't be cast to the desired output type {} in-place",
                    r.dtype(),
                    self.dtype()
                ),
            });
        }
        if r.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: r.device(),
            });
        }
        let r = if r.dtype() != self.dtype() {
            r.to_dtype(self.dtype())?
        } else {
            r
        };
        // A value that does not depend on the graph (copy_ of a constant, fill_, zero_, eq_...)
        // written into a tensor that requires grad: PyTorch keeps the tensor in the graph, its old
        // history getting a zero gradient (CopyBackwards, FillBackward0...). `where(true, r,
        // self)` is that link: r's values exactly (no arithmetic, so no NaN from inf * 0) and a
        // gradient of zero to self. Detaching instead would make a later backward() fail or
        // leave parameters with None where PyTorch gives zeros.
        let r = if crate::is_grad_enabled() && self.requires_grad() && !r.requires_grad() {
            let all = Tensor::full_scalar(Scalar::Bool(true), DType::Bool, self.device())?;
            Tensor::where_cond(&all, &r, self)?
        } else {
            r
        };
        let recorded = r.requires_grad() && !r.is_leaf();
        if recorded {
            if self.is_view() {
                return Err(Error::Autograd(format!(
                    "{op}: an in-place write through a view of a tensor that is part of a graph is not supported (PyTorch would rewrite the viewed tensor's history; backprop_rs refuses instead of leaving it stale); write into the tensor itself (e.g. t[index] = value) or use the out-of-place op"
                )));
            }
            // Values the result's backward reads from this memory are about to be overwritten:
            // let the rule read a copy instead (PyTorch saves `self.clone()` for such ops).
            r.preserve_saved_inputs(self)?;
        }
        self.write_values(op, &r)?;
        if recorded {
            Ok(self.with_history_of(&r))
        } else {
            Ok(self.clone())
        }
    }

    /// Writes the values of `src` (same shape and dtype) into this tensor's memory.
    fn write_values(&self, op: &'static str, src: &Tensor) -> Result<()> {
        let _g = crate::no_grad();
        // Reading and writing the same storage would deadlock the lock and could read
        // half-written data: materialise the source first.
        let src = if src.shares_storage(self) {
            src.detach().contiguous_copy()?
        } else {
            src.detach()
        };
        if src.device() != self.device() {
            return Err(Error::DeviceMismatch {
                op,
                lhs: self.device(),
                rhs: src.device(),
            });
        }
        // Locks in address order (see `tensor::with_read`), so two threads copying between the
        // same pair of tensors in opposite directions cannot deadlock.
        if src.storage_key() < self.storage_key() {
            let s = src.storage();
            self.storage_mut()
                .copy_into(self.layout(), &s, src.layout())
        } else {
            let mut d = self.storage_mut();
            d.copy_into(self.layout(), &src.storage(), src.layout())
        }
    }

    /// Copies `src` (broadcast to this shape, cast to this dtype, moved to this device) into this
    /// tensor's memory; differentiable with respect to `src` (the returned tensor's history is
    /// the copy's).
    pub fn copy_(&self, src: &Tensor) -> Result<Tensor> {
        let src = if src.device() != self.device() {
            src.to_device(self.device())?
        } else {
            src.clone()
        };
        let src = if src.dtype() != self.dtype() {
            // copy_ casts in any direction (float into int truncates), unlike arithmetic
            src.to_dtype(self.dtype())?
        } else {
            src
        };
        let shape = self.shape().clone();
        self.apply_inplace("copy_", |_| Ok(src.broadcast_to(&shape)?.alias()))
    }

    /// Sets every element to `value` (cast to this dtype, as PyTorch's `fill_`).
    pub fn fill_(&self, value: Scalar) -> Result<Tensor> {
        let v = Tensor::full_scalar(value, self.dtype(), self.device())?;
        let shape = self.shape().clone();
        self.apply_inplace("fill_", |_| Ok(v.broadcast_to(&shape)?.alias()))
    }

    /// Sets every element to zero.
    pub fn zero_(&self) -> Result<Tensor> {
        self.fill_(Scalar::Int(0))
    }

    /// `self = self OP rhs` in place (`+=`, `add_`, ...), with PyTorch's in-place promotion rule.
    pub fn binary_(&self, rhs: &Tensor, op: BinaryOp) -> Result<Tensor> {
        self.apply_inplace(op.inplace_name(), |v| v.binary(rhs, op))
    }

    /// `self = self OP s` in place.
    pub fn binary_scalar_(&self, s: Scalar, op: BinaryOp) -> Result<Tensor> {
        self.apply_inplace(op.inplace_name(), |v| v.binary_scalar(s, op, false))
    }

    /// `self = f(self)` in place (`relu_`, `exp_`, ...).
    pub fn unary_(&self, op: UnaryOp) -> Result<Tensor> {
        self.apply_inplace(op.name(), |v| v.unary(op))
    }

    /// If this (recorded) result's rule reads values that live in `dst`'s memory, points the
    /// rule at copies of them taken now, before `dst` is overwritten.
    fn preserve_saved_inputs(&self, dst: &Tensor) -> Result<()> {
        self.with_node_mut(|node| {
            let saved = autograd::saved_inputs(&node.op);
            for (i, x) in node.op.inputs_mut().into_iter().enumerate().take(3) {
                if saved & (1 << i) != 0 && x.shares_storage(dst) {
                    *x = x.contiguous_copy()?;
                    node.versions[i] = x.version();
                }
            }
            Ok(())
        })
        .map(|_| ())
    }
}
