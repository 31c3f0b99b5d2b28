//! Matrix-shaped composites: triangles (`tril`/`triu`), diagonals (`diagonal` as a view, `diag`,
//! `trace`), `outer`, and the checked/scaled matrix products (`bmm`, `addmm`, `baddbmm`).
//! Everything is built from primitives (index comparisons + `where`, views, `index_add`,
//! `matmul`), so gradients and second derivatives come for free; the one new piece of engine is
//! the diagonal view's layout and its gradient rule (`ViewKind::Diagonal`).

use crate::op::ViewKind;
use crate::shape::Dim;
use crate::{DType, Device, Error, Layout, Result, Scalar, Shape, Tensor};

fn need_rank(op: &'static str, t: &Tensor, rank: usize, what: &str) -> Result<()> {
    if t.rank() != rank {
        return Err(Error::InvalidShape {
            op,
            shape: t.shape().clone(),
            msg: format!("{what} must be a {rank}-D tensor, got {}-D", t.rank()),
        });
    }
    Ok(())
}

/// `0..n` as an int64 tensor on `device`.
pub(crate) fn iota(n: usize, device: Device) -> Result<Tensor> {
    Tensor::from_vec((0..n as i64).collect::<Vec<i64>>(), [n], device)
}

impl Tensor {
    /// The elements on and below the `diagonal`-th diagonal of the last two dims (the rest 0),
    /// as `torch.tril`.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2], Device::Cpu)?;
    /// assert_eq!(t.tril(0)?.to_vec::<f32>()?, vec![1.0, 0.0, 3.0, 4.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn tril(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("tril", diagonal, true)
    }

    /// The elements on and above the `diagonal`-th diagonal of the last two dims, `torch.triu`.
    pub fn triu(&self, diagonal: i64) -> Result<Tensor> {
        self.triangle("triu", diagonal, false)
    }

    fn triangle(&self, op: &'static str, k: i64, lower: bool) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(Error::InvalidShape {
                op,
                shape: self.shape().clone(),
                msg: "input tensor must have at least 2 dimensions".into(),
            });
        }
        let r = self.rank();
        let (m, n) = (self.dims()[r - 2], self.dims()[r - 1]);
        let dev = self.device();
        let rows = iota(m, dev)?.reshape([m, 1])?;
        let cols = iota(n, dev)?.reshape([1, n])?;
        // keep where col - row <= k (tril) or >= k (triu)
        let diff = cols.sub(&rows)?;
        let kt = Tensor::constant(Scalar::Int(k), DType::I64, dev)?;
        let keep = if lower { diff.le(&kt)? } else { diff.ge(&kt)? };
        let zero = Tensor::constant(Scalar::Int(0), self.dtype(), dev)?;
        Tensor::where_cond(&keep, self, &zero)
    }

    /// The `offset`-th diagonal of the plane `(dim1, dim2)` as a view (same storage, as
    /// `torch.diagonal`): those two dims are removed and the diagonal is appended as the last.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let t = Tensor::from_vec((0..6).map(|v| v as f32).collect::<Vec<_>>(), [2, 3], Device::Cpu)?;
    /// assert_eq!(t.diagonal(1, 0, 1)?.to_vec::<f32>()?, vec![1.0, 5.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn diagonal(&self, offset: i64, dim1: i64, dim2: i64) -> Result<Tensor> {
        let r = self.rank();
        if r < 2 {
            return Err(Error::InvalidShape {
                op: "diagonal",
                shape: self.shape().clone(),
                msg: "diagonal requires a tensor of at least 2 dimensions".into(),
            });
        }
        let d1 = dim1.resolve("diagonal", r)?;
        let d2 = dim2.resolve("diagonal", r)?;
        if d1 == d2 {
            return Err(Error::invalid(
                "diagonal",
                format!("diagonal dimensions cannot be identical {dim1}, {dim2}"),
            ));
        }
        let l = self.layout();
        let (n1, n2) = (self.dims()[d1], self.dims()[d2]);
        let (s1, s2) = (l.strides()[d1], l.strides()[d2]);
        let o = offset.unsigned_abs().min(usize::MAX as u64) as usize;
        let (len, shift) = if offset >= 0 {
            (n1.min(n2.saturating_sub(o)), o.saturating_mul(s2))
        } else {
            (n1.saturating_sub(o).min(n2), o.saturating_mul(s1))
        };
        let start = if len == 0 {
            l.offset()
        } else {
            l.offset() + shift
        };
        let mut dims = Vec::with_capacity(r - 1);
        let mut strides = Vec::with_capacity(r - 1);
        for i in 0..r {
            if i != d1 && i != d2 {
                dims.push(self.dims()[i]);
                strides.push(l.strides()[i]);
            }
        }
        dims.push(len);
        strides.push(s1 + s2);
        let nl = Layout::new(Shape::from(dims), strides, start);
        Ok(self.view_with(
            nl,
            ViewKind::Diagonal {
                offset,
                dim1: d1,
                dim2: d2,
            },
        ))
    }

    /// `torch.diag`: a 1-d tensor becomes the square matrix with it on the `diagonal`-th
    /// diagonal; a 2-d tensor gives (a copy of) its `diagonal`-th diagonal.
    pub fn diag(&self, diagonal: i64) -> Result<Tensor> {
        match self.rank() {
            1 => {
                let len = self.dims()[0];
                let k = diagonal.unsigned_abs() as usize;
                let n = len.checked_add(k).ok_or_else(|| {
                    Error::invalid("diag", format!("diagonal {diagonal} is too large"))
                })?;
                let total = n.checked_mul(n).ok_or_else(|| {
                    Error::invalid("diag", format!("a {n} x {n} matrix is too large"))
                })?;
                let (r0, c0) = if diagonal >= 0 { (0, k) } else { (k, 0) };
                let idx: Vec<i64> = (0..len).map(|i| ((r0 + i) * n + c0 + i) as i64).collect();
                let idx = Tensor::from_vec(idx, [len], self.device())?;
                Tensor::zeros([total], self.dtype(), self.device())?
                    .index_add(0usize, &idx, self)?
                    .reshape([n, n])
            }
            2 => self.diagonal(diagonal, 0, 1)?.contiguous_copy(),
            _ => Err(Error::InvalidShape {
                op: "diag",
                shape: self.shape().clone(),
                msg: "diag expects a 1-D or 2-D tensor".into(),
            }),
        }
    }

    /// The sum of the main diagonal of a 2-d tensor (`torch.trace`).
    pub fn trace(&self) -> Result<Tensor> {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Float32, self.device()) {
            return ac.cast(self)?.trace();
        }
        need_rank("trace", self, 2, "input")?;
        self.diagonal(0, 0, 1)?.sum(&[0usize][..], false)
    }

    /// The outer product of two 1-d tensors.
    pub fn outer(&self, other: &Tensor) -> Result<Tensor> {
        need_rank("outer", self, 1, "input")?;
        need_rank("outer", other, 1, "vec2")?;
        self.reshape([self.dims()[0], 1])?
            .mul(&other.reshape([1, other.dims()[0]])?)
    }

    /// Batched matrix product of two 3-d tensors with equal batch sizes (no broadcasting, as
    /// `torch.bmm`).
    pub fn bmm(&self, other: &Tensor) -> Result<Tensor> {
        need_rank("bmm", self, 3, "batch1")?;
        need_rank("bmm", other, 3, "batch2")?;
        let (a, b) = (self.dims(), other.dims());
        if a[0] != b[0] || a[2] != b[1] {
            return Err(Error::shape_mismatch("bmm", self.shape(), other.shape()));
        }
        self.matmul(other)
    }

    /// `beta * self + alpha * (mat1 @ mat2)` (`torch.addmm`); with `beta == 0` `self` is
    /// ignored (NaN in it does not propagate), as in PyTorch.
    pub fn addmm(&self, mat1: &Tensor, mat2: &Tensor, beta: f64, alpha: f64) -> Result<Tensor> {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, self.device()) {
            return ac
                .cast(self)?
                .addmm(&ac.cast(mat1)?, &ac.cast(mat2)?, beta, alpha);
        }
        need_rank("addmm", mat1, 2, "mat1")?;
        need_rank("addmm", mat2, 2, "mat2")?;
        let p = mat1.matmul(mat2)?;
        scaled_sum("addmm", self, &p, beta, alpha)
    }

    /// `beta * self + alpha * bmm(batch1, batch2)` (`torch.baddbmm`).
    pub fn baddbmm(
        &self,
        batch1: &Tensor,
        batch2: &Tensor,
        beta: f64,
        alpha: f64,
    ) -> Result<Tensor> {
        if let Some(ac) = crate::autocast::begin(crate::autocast::Policy::Lower, self.device()) {
            return ac
                .cast(self)?
                .baddbmm(&ac.cast(batch1)?, &ac.cast(batch2)?, beta, alpha);
        }
        let p = batch1.bmm(batch2)?;
        scaled_sum("baddbmm", self, &p, beta, alpha)
    }
}

fn scaled_sum(
    op: &'static str,
    input: &Tensor,
    p: &Tensor,
    beta: f64,
    alpha: f64,
) -> Result<Tensor> {
    // the input must broadcast to the product's shape (not the other way round)
    let shape = Shape::broadcast(op, input.shape(), p.shape())?;
    if &shape != p.shape() {
        return Err(Error::shape_mismatch(op, input.shape(), p.shape()));
    }
    let p = if alpha == 1.0 {
        p.clone()
    } else {
        p.mul_scalar(alpha)?
    };
    if beta == 0.0 {
        return Ok(p);
    }
    let i = if beta == 1.0 {
        input.clone()
    } else {
        input.mul_scalar(beta)?
    };
    p.add(&i)
}

/// The gradient of a diagonal view: `g` added at the positions the view reads (an `index_add`
/// into zeros, so second derivatives work).
pub(crate) fn diagonal_backward(
    x: &Tensor,
    g: &Tensor,
    offset: i64,
    dim1: usize,
    dim2: usize,
) -> Result<Tensor> {
    let n = x.numel();
    let pos = iota(n, g.device())?.reshape(x.shape().clone())?.diagonal(
        offset,
        dim1 as i64,
        dim2 as i64,
    )?;
    let m = pos.numel();
    let pos = pos.contiguous()?.reshape([m])?;
    Tensor::zeros([n], g.dtype(), g.device())?
        .index_add(0usize, &pos, &g.contiguous()?.reshape([m])?)?
        .reshape(x.shape().clone())
}
