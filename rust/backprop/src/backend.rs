//! The contract every backend implements: the primitive kernels of `op.rs`, on (storage, layout)
//! pairs. CPU (`cpu/`) and GPU (`gpu/`) implement the same set, so anything composed above this
//! trait (all of autograd, nn and optim) runs on either without change.
//!
//! Conventions: inputs of a multi-operand kernel have the same shape (broadcasting was already
//! done with stride-0 views) and the same dtype (promotion was done with casts); outputs are
//! freshly allocated and C-contiguous.

use crate::op::{
    ArgReduceOp, AttentionSpec, BinaryOp, CmpOp, ReduceOp, ScatterReduce, UnaryOp, Window,
};
use crate::{DType, Device, Layout, Result, Scalar, Shape};

pub trait BackendStorage: Sized + Send + Sync {
    fn dtype(&self) -> DType;
    fn device(&self) -> Device;
    /// Number of elements the storage holds.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn unary(&self, l: &Layout, op: UnaryOp) -> Result<Self>;
    fn binary(&self, l: &Layout, rhs: &Self, rl: &Layout, op: BinaryOp) -> Result<Self>;
    fn compare(&self, l: &Layout, rhs: &Self, rl: &Layout, op: CmpOp) -> Result<Self>;
    /// `self` is the Bool condition.
    fn where_cond(&self, l: &Layout, t: &Self, tl: &Layout, f: &Self, fl: &Layout) -> Result<Self>;
    fn cast(&self, l: &Layout, dtype: DType) -> Result<Self>;
    /// Reduces over `dims` (sorted, unique); the output has the input's rank with those dims = 1.
    fn reduce(&self, l: &Layout, op: ReduceOp, dims: &[usize]) -> Result<Self>;
    /// I64 indices along `dim`, output keeps `dim` with extent 1. Ties give the first index.
    fn arg_reduce(&self, l: &Layout, op: ArgReduceOp, dim: usize) -> Result<Self>;
    /// Batched matmul: `[..., m, k] @ [..., k, n]` with identical batch dims.
    fn matmul(&self, l: &Layout, rhs: &Self, rl: &Layout) -> Result<Self>;
    /// A C-contiguous copy of the viewed elements.
    fn copy_strided(&self, l: &Layout) -> Result<Self>;
    /// Writes `src` (viewed through `sl`) into `self` at the positions of `dl` (same shapes).
    fn copy_into(&mut self, dl: &Layout, src: &Self, sl: &Layout) -> Result<()>;
    /// `out[i][j] = self[i][index[i][j]]` for dim 1 (and likewise for any dim). `index` is I64.
    fn gather(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self>;
    /// `out = self; out[i][index[i][j]] (+)= src[i][j]` (for dim 1); index and src share a shape.
    #[allow(clippy::too_many_arguments)]
    fn scatter(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
        reduce: ScatterReduce,
    ) -> Result<Self>;
    /// Whole slices along `dim` picked by a 1-d I64 index.
    fn index_select(&self, l: &Layout, dim: usize, index: &Self, il: &Layout) -> Result<Self>;
    /// `out = self; out.select(dim, index[k]) += src.select(dim, k)`.
    fn index_add(
        &self,
        l: &Layout,
        dim: usize,
        index: &Self,
        il: &Layout,
        src: &Self,
        sl: &Layout,
    ) -> Result<Self>;
    /// Softmax (or log-softmax) along `dim`.
    fn softmax(&self, l: &Layout, dim: usize, log: bool) -> Result<Self>;
    /// Softmax's (or log-softmax's) gradient along `dim` from the upstream gradient (`self`)
    /// and the forward's output `y` (same shape); the result is C-contiguous.
    fn softmax_backward(
        &self,
        l: &Layout,
        y: &Self,
        yl: &Layout,
        dim: usize,
        log: bool,
    ) -> Result<Self>;

    /// Layer normalisation (`Op::LayerNorm`) of every row of `len` elements of `self`, viewed
    /// by the contiguous `l` (an offset is allowed; `len > 0` divides its element count).
    /// Returns the normalised rows (C-contiguous, `l`'s shape) and the statistics `[2, rows]`:
    /// the rows' means, then their `1 / sqrt(var + eps)` (biased variance).
    fn layer_norm(&self, l: &Layout, len: usize, eps: f64) -> Result<(Self, Self)>;
    /// Its backward: the input's gradient from the output's gradient (`self`), the input `x`
    /// and the forward's statistics, all contiguous; C-contiguous.
    fn layer_norm_backward(
        &self,
        gl: &Layout,
        x: (&Self, &Layout),
        stats: (&Self, &Layout),
        len: usize,
    ) -> Result<Self>;

    /// The gradient of a unary op in one pass: `g * f'(.)`, where `self` is the op's input or
    /// its output as [`UnaryOp::fused_grad_input`] says, `g` the upstream gradient (same shape
    /// and float dtype). Only for ops where that returns `Some`. The result is C-contiguous.
    fn unary_backward(&self, l: &Layout, g: (&Self, &Layout), op: UnaryOp) -> Result<Self>;

    /// Fused attention (flash attention, see `op::Op::Attention`): `self` is q `[B, L, E]`,
    /// with k `[B, S, E]` and v `[B, S, Ev]`; every layout is contiguous (an offset is allowed)
    /// and `S, E, Ev > 0`. Returns the output `[B, L, Ev]` and the per-row log-sum-exp `[B, L]`.
    fn attention(
        &self,
        ql: &Layout,
        k: (&Self, &Layout),
        v: (&Self, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Self, Self)>;
    /// Its backward: `(dq, dk, dv)` from q (`self`), k, v, the output's gradient `g` `[B, L, Ev]`
    /// and `stats` `[2, B, L]` (the forward's log-sum-exp, then `rowsum(g * output)`), all
    /// contiguous. The probabilities are recomputed block by block, never stored.
    fn attention_backward(
        &self,
        ql: &Layout,
        k: (&Self, &Layout),
        v: (&Self, &Layout),
        g: (&Self, &Layout),
        stats: (&Self, &Layout),
        spec: AttentionSpec,
    ) -> Result<(Self, Self, Self)>;

    /// The LSTM cell's pointwise step (`cpu/rnn.rs`): `self` is the pre-activations `[B, 4H]`,
    /// `cp` the previous cell `[B, H]`, both contiguous. Returns `(h, c, act)`: the new hidden
    /// state and cell `[B, H]` and the gate activations `[B, 4H]` (i, f, o sigmoid, g tanh).
    fn lstm_cell(&self, pl: &Layout, cp: (&Self, &Layout)) -> Result<(Self, Self, Self)>;
    /// Its backward: `self` is `act`, with the cell `c`, the previous cell `cp` and the
    /// gradients `dh` and `dc` (`[B, H]`, contiguous). Returns `(dgates [B, 4H], dc_prev)`.
    fn lstm_cell_backward(
        &self,
        al: &Layout,
        c: (&Self, &Layout),
        cp: (&Self, &Layout),
        dh: (&Self, &Layout),
        dc: (&Self, &Layout),
    ) -> Result<(Self, Self)>;

    /// im2col of an `[N, C, H, W]` view: `[N, C*kh*kw, L]` (out-of-bounds reads give `pad_value`).
    fn unfold(&self, l: &Layout, w: &Window, pad_value: f64) -> Result<Self>;
    /// The stable ascending (or descending) order of each row of a contiguous `[.., n]` view as
    /// int64 indices (NaN greatest, -0.0 equal to 0.0; PyTorch's `argsort(stable=True)`).
    fn argsort_rows(&self, l: &Layout, descending: bool) -> Result<Self>;
    /// col2im of an `[N, C*kh*kw, L]` view into `[N, C, H, W]` with `(H, W) = out_hw`, summing overlaps.
    fn fold(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self>;
    /// Max-pooling's choice: for every window of an `[N, C, H, W]` view, the flat index
    /// `h * W + w` (into its plane) of the element max-pooling keeps, as int64 `[N, C, oh, ow]`
    /// with `(oh, ow) = out_hw` (which may exceed `w.out_hw` by ceil mode's partial windows).
    /// PyTorch's rule: a row-major scan of the window's in-bounds positions keeps `v` when
    /// `v > best || isnan(v)`, starting from `-inf` at the first in-bounds position. The pooled
    /// values are then a `gather` at these indices, so their gradient is the gather's.
    fn pool_argmax(&self, l: &Layout, w: &Window, out_hw: (usize, usize)) -> Result<Self>;

    /// One fused optimizer step in place: `self` is the parameter (viewed by `l`), `states` its
    /// optimizer state in `Rule`'s order. Every operand is contiguous, of `self`'s float dtype,
    /// with `l`'s element count, and no two share memory (`optim::update::apply` ensures it).
    fn fused_update(
        &mut self,
        l: &Layout,
        grad: &Self,
        gl: &Layout,
        states: &mut [(&mut Self, &Layout)],
        rule: &crate::optim::rule::Rule,
    ) -> Result<()>;

    /// A storage of `shape.numel()` elements all equal to `value`.
    fn full(shape: &Shape, value: Scalar, dtype: DType) -> Result<Self>;
}
