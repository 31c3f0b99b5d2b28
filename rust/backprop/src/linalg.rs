//! Matrix products: `matmul` with NumPy/PyTorch semantics (1-d operands, broadcast batch dims).

use crate::op::Op;
use crate::{Error, Result, Shape, Tensor};

impl Tensor {
    /// Matrix product. 1-d operands are treated as a row/column vector and the added dim is
    /// removed from the result; batch dims (all but the last two) broadcast.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], Device::Cpu)?;
    /// let v = Tensor::from_vec(vec![1.0f32, 1.0], [2], Device::Cpu)?;
    /// assert_eq!(a.matmul(&v)?.to_vec::<f32>()?, vec![3.0, 7.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, self.device()) {
            return ac.cast(self)?.matmul(&ac.cast(rhs)?);
        }
        if self.device() != rhs.device() {
            return Err(Error::DeviceMismatch {
                op: "matmul",
                lhs: self.device(),
                rhs: rhs.device(),
            });
        }
        if self.dtype() != rhs.dtype() {
            return Err(Error::DTypeMismatch {
                op: "matmul",
                lhs: self.dtype(),
                rhs: rhs.dtype(),
            });
        }
        if self.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                detail: ": both arguments to matmul need to be at least 1-d".into(),
            });
        }
        let a = if self.rank() == 1 {
            self.unsqueeze(0usize)?
        } else {
            self.clone()
        };
        let b = if rhs.rank() == 1 {
            rhs.unsqueeze(1usize)?
        } else {
            rhs.clone()
        };
        let (ar, br) = (a.rank(), b.rank());
        let k = a.dims()[ar - 1];
        if b.dims()[br - 2] != k {
            return Err(Error::ShapeMismatch {
                op: "matmul",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                detail: format!(
                    ": the inner dimensions differ ({k} vs {})",
                    b.dims()[br - 2]
                ),
            });
        }
        // `[..., m, k] @ [k, n]` (a Linear on a batch of sequences) is one `[B*m, k] @ [k, n]`
        // product, as PyTorch folds it, when the leading dims merge with m without a copy: one
        // large GEMM instead of B small ones, and in the backward `dW` is one GEMM too instead
        // of B products summed over the broadcast batch (GPT's feed-forward forward: ~1.5x)
        if ar >= 3 && rhs.rank() <= 2 {
            // A leading-dims order that is one run of rows: as given, or after sorting the dims
            // by stride (a batch-first `[N, L, E]` seen sequence-first through `transpose(0, 1)`,
            // as `nn.MultiheadAttention` does, folds in `[N, L]` order). Otherwise PyTorch's
            // fold: copy the rows contiguous (k moves per row, against k*n multiply-adds),
            // instead of one small product per leading index.
            let perm = fold_order(&a);
            let a2 = match &perm {
                Some(p) if p.iter().enumerate().all(|(i, &j)| i == j) => a.clone(),
                Some(p) => a.permute(p.as_slice())?,
                None => a.contiguous()?,
            };
            let rows: usize = a2.dims()[..ar - 1].iter().product();
            let out = a2.reshape([rows, k])?.matmul(&b)?;
            let mut od = a2.dims()[..ar - 1].to_vec();
            od.push(b.dims()[1]);
            let mut out = out.reshape(od)?;
            if let Some(p) = perm.filter(|p| p.iter().enumerate().any(|(i, &j)| i != j)) {
                // back to the caller's order: out's dim i is the caller's dim p[i]
                let mut inv = vec![0usize; p.len()];
                for (i, &j) in p.iter().enumerate() {
                    inv[j] = i;
                }
                out = out.permute(inv.as_slice())?;
            }
            return if rhs.rank() == 1 {
                out.squeeze(Some(-1))
            } else {
                Ok(out)
            };
        }
        let batch = Shape::broadcast(
            "matmul",
            &Shape::from(&a.dims()[..ar - 2]),
            &Shape::from(&b.dims()[..br - 2]),
        )
        .map_err(|_| Error::ShapeMismatch {
            op: "matmul",
            lhs: self.shape().clone(),
            rhs: rhs.shape().clone(),
            detail: ": the batch dimensions do not broadcast".into(),
        })?;
        let mut ad = batch.dims().to_vec();
        ad.extend_from_slice(&a.dims()[ar - 2..]);
        let mut bd = batch.dims().to_vec();
        bd.extend_from_slice(&b.dims()[br - 2..]);
        let a = a.broadcast_to(&Shape::new(ad))?;
        let b = b.broadcast_to(&Shape::new(bd))?;
        let s =
            crate::tensor::with_read([&a, &b], |[sa, sb]| sa.matmul(a.layout(), sb, b.layout()))?;
        let mut od = batch.dims().to_vec();
        od.push(a.dims()[a.rank() - 2]);
        od.push(b.dims()[b.rank() - 1]);
        let out = Tensor::from_op(s, Shape::new(od), Op::Matmul(a, b))?;
        match (self.rank(), rhs.rank()) {
            (1, 1) => out.reshape(Shape::scalar()),
            (1, _) => out.squeeze(Some(-2)),
            (_, 1) => out.squeeze(Some(-1)),
            _ => Ok(out),
        }
    }

    /// 2-d matrix product (PyTorch's `mm`).
    pub fn mm(&self, rhs: &Tensor) -> Result<Tensor> {
        if self.rank() != 2 || rhs.rank() != 2 {
            return Err(Error::ShapeMismatch {
                op: "mm",
                lhs: self.shape().clone(),
                rhs: rhs.shape().clone(),
                detail: ": mm expects two 2-d tensors".into(),
            });
        }
        self.matmul(rhs)
    }
}

/// Whether `[d0, ..., m, k]` views as `[d0 * ... * m, k]` (its dims before the last are laid out
/// as one run of rows; `k` may have any stride).
fn folds_into_rows(a: &Tensor) -> bool {
    let (d, st) = (a.dims(), a.layout().strides());
    let r = d.len();
    (0..r - 2).all(|i| d[i + 1] == 1 || d[i] == 1 || st[i] == st[i + 1] * d[i + 1])
}

/// A permutation of `a`'s leading dims (the last stays last) under which they fold into one run
/// of rows (`folds_into_rows`): the identity when they already do, else the dims sorted by
/// decreasing stride; `None` when neither folds.
fn fold_order(a: &Tensor) -> Option<Vec<usize>> {
    let r = a.rank();
    if folds_into_rows(a) {
        return Some((0..r).collect());
    }
    let st = a.layout().strides();
    let mut p: Vec<usize> = (0..r - 1).collect();
    p.sort_by_key(|&i| std::cmp::Reverse(st[i]));
    p.push(r - 1);
    let t = a.permute(p.as_slice()).ok()?;
    folds_into_rows(&t).then_some(p)
}
