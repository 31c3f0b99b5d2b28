//! The primitive operations.
//!
//! This is the whole set of things a backend must implement and autograd must differentiate.
//! Everything else (mean, var, softmax-based losses, clamp, leaky_relu, ...) is composed from these
//! in Rust and gets its gradient for free. `Op` is what a non-leaf tensor remembers about how it
//! was made: the primitive and its inputs. `autograd.rs` holds the one exhaustive `match` over it.

use crate::autograd::function::CustomNode;
use crate::Tensor;
use std::sync::Arc;

/// Elementwise functions of one float argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum UnaryOp {
    Neg,
    Abs,
    Sign,
    Exp,
    Log,
    Sqrt,
    Sin,
    Cos,
    Tanh,
    Sigmoid,
    Relu,
    /// Exact (erf-based) GELU, PyTorch's default.
    Gelu,
    Erf,
    /// `log(1 + exp(x))`, computed stably.
    Softplus,
    Log1p,
    Expm1,
    Log2,
    Log10,
    Tan,
    Asin,
    Acos,
    Atan,
    Sinh,
    Cosh,
    /// Rounding to an integral value (identity on integers, gradient zero, as in PyTorch).
    Floor,
    Ceil,
    /// Half to even, as `torch.round` (and WGSL's `round`).
    Round,
    Trunc,
    /// The complementary error function `1 - erf(x)`, accurate in the tail where `1 - erf`
    /// would round to zero.
    Erfc,
    /// `ln |Gamma(x)|` (`torch.lgamma`).
    Lgamma,
    /// `psi(x) = d/dx ln Gamma(x)` (`torch.digamma`, `polygamma(0, x)`).
    Digamma,
    /// `psi'(x)` (`polygamma(1, x)`).
    Trigamma,
}

impl UnaryOp {
    /// Every variant, in declaration order: `ALL[i] as u32 == i` is the code the GPU kernels
    /// switch on (the WGSL constants `UNARY_*` are generated from this list, see `wgsl.rs`).
    pub const ALL: [UnaryOp; 32] = [
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Relu,
        UnaryOp::Gelu,
        UnaryOp::Erf,
        UnaryOp::Softplus,
        UnaryOp::Log1p,
        UnaryOp::Expm1,
        UnaryOp::Log2,
        UnaryOp::Log10,
        UnaryOp::Tan,
        UnaryOp::Asin,
        UnaryOp::Acos,
        UnaryOp::Atan,
        UnaryOp::Sinh,
        UnaryOp::Cosh,
        UnaryOp::Floor,
        UnaryOp::Ceil,
        UnaryOp::Round,
        UnaryOp::Trunc,
        UnaryOp::Erfc,
        UnaryOp::Lgamma,
        UnaryOp::Digamma,
        UnaryOp::Trigamma,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Abs => "abs",
            UnaryOp::Sign => "sign",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Sin => "sin",
            UnaryOp::Cos => "cos",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Relu => "relu",
            UnaryOp::Gelu => "gelu",
            UnaryOp::Erf => "erf",
            UnaryOp::Softplus => "softplus",
            UnaryOp::Log1p => "log1p",
            UnaryOp::Expm1 => "expm1",
            UnaryOp::Log2 => "log2",
            UnaryOp::Log10 => "log10",
            UnaryOp::Tan => "tan",
            UnaryOp::Asin => "asin",
            UnaryOp::Acos => "acos",
            UnaryOp::Atan => "atan",
            UnaryOp::Sinh => "sinh",
            UnaryOp::Cosh => "cosh",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
            UnaryOp::Trunc => "trunc",
            UnaryOp::Erfc => "erfc",
            UnaryOp::Lgamma => "lgamma",
            UnaryOp::Digamma => "digamma",
            UnaryOp::Trigamma => "trigamma",
        }
    }

    /// The op named `name` (its `name()`), if there is one.
    pub fn from_name(name: &str) -> Option<UnaryOp> {
        UnaryOp::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// What the fused derivative kernel (`unary_backward`) of this op reads besides the upstream
    /// gradient: the input `x` or the forward's output. `None`: the gradient stays composed
    /// (ops whose rule is already one or two primitives, or that no training loop runs hot).
    pub fn fused_grad_input(self) -> Option<GradFrom> {
        match self {
            UnaryOp::Gelu | UnaryOp::Erf | UnaryOp::Softplus => Some(GradFrom::Input),
            UnaryOp::Tanh | UnaryOp::Sigmoid => Some(GradFrom::Output),
            _ => None,
        }
    }

    /// Ops that make sense on integers (the rest promote integer input to float first).
    pub fn keeps_integers(self) -> bool {
        matches!(
            self,
            UnaryOp::Neg
                | UnaryOp::Abs
                | UnaryOp::Sign
                | UnaryOp::Relu
                | UnaryOp::Floor
                | UnaryOp::Ceil
                | UnaryOp::Round
                | UnaryOp::Trunc
        )
    }
}

/// Which saved tensor a fused unary derivative is a function of (see
/// [`UnaryOp::fused_grad_input`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradFrom {
    Input,
    Output,
}

/// Elementwise functions of two arguments of the same shape and dtype.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    /// Bitwise and/or/xor of integers (logical on bools); floats are refused.
    BitAnd,
    BitOr,
    BitXor,
    /// `atan2(self, other)`, float only (integers promote).
    Atan2,
    /// C's `fmod`: the remainder of truncated division, with the sign of the dividend.
    Fmod,
    /// Python's `%`: the remainder of floor division, with the sign of the divisor.
    Remainder,
}

impl BinaryOp {
    /// Every variant in declaration order (the GPU's `BINARY_*` codes, see `UnaryOp::ALL`).
    pub const ALL: [BinaryOp; 13] = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::BitAnd,
        BinaryOp::BitOr,
        BinaryOp::BitXor,
        BinaryOp::Atan2,
        BinaryOp::Fmod,
        BinaryOp::Remainder,
    ];

    /// The bitwise ops, defined for integer and bool tensors only.
    pub fn is_bitwise(self) -> bool {
        matches!(self, BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor)
    }

    /// The name of the in-place form (`add_`), for messages.
    pub fn inplace_name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add_",
            BinaryOp::Sub => "sub_",
            BinaryOp::Mul => "mul_",
            BinaryOp::Div => "div_",
            BinaryOp::Pow => "pow_",
            BinaryOp::Maximum => "maximum_",
            BinaryOp::Minimum => "minimum_",
            BinaryOp::BitAnd => "bitwise_and_",
            BinaryOp::BitOr => "bitwise_or_",
            BinaryOp::BitXor => "bitwise_xor_",
            BinaryOp::Atan2 => "atan2_",
            BinaryOp::Fmod => "fmod_",
            BinaryOp::Remainder => "remainder_",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
            BinaryOp::BitAnd => "bitwise_and",
            BinaryOp::BitOr => "bitwise_or",
            BinaryOp::BitXor => "bitwise_xor",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Fmod => "fmod",
            BinaryOp::Remainder => "remainder",
        }
    }
}

/// Comparisons; they produce `Bool` tensors and have no gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    /// Every variant in declaration order (the GPU's `CMP_*` codes).
    pub const ALL: [CmpOp; 6] = [
        CmpOp::Eq,
        CmpOp::Ne,
        CmpOp::Lt,
        CmpOp::Le,
        CmpOp::Gt,
        CmpOp::Ge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// Reductions over a set of dims (the output keeps the reduced dims with extent 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
}

impl ReduceOp {
    /// Every variant in declaration order (the GPU's `REDUCE_*` codes).
    pub const ALL: [ReduceOp; 3] = [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min];

    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
        }
    }
}

/// How `scatter` combines a source element with the element it lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ScatterReduce {
    /// The source replaces the element (PyTorch's `scatter`); where several sources land on one
    /// element, the CPU keeps the last in index order and the GPU any one of them (PyTorch leaves
    /// the choice undefined).
    Assign,
    /// The source is added (`scatter_add`).
    Add,
}

/// Index-producing reductions along one dim (no gradient).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ArgReduceOp {
    ArgMax,
    ArgMin,
}

impl ArgReduceOp {
    /// Every variant in declaration order (the GPU's `ARG_*` codes).
    pub const ALL: [ArgReduceOp; 2] = [ArgReduceOp::ArgMax, ArgReduceOp::ArgMin];

    pub fn name(self) -> &'static str {
        match self {
            ArgReduceOp::ArgMax => "argmax",
            ArgReduceOp::ArgMin => "argmin",
        }
    }
}

impl ScatterReduce {
    /// Every variant in declaration order (the GPU's `SCATTER_*` codes).
    pub const ALL: [ScatterReduce; 2] = [ScatterReduce::Assign, ScatterReduce::Add];

    pub fn name(self) -> &'static str {
        match self {
            ScatterReduce::Assign => "scatter",
            ScatterReduce::Add => "scatter_add",
        }
    }
}

/// How a non-leaf tensor was made. Holds its inputs (and nothing else that is large), so keeping
/// a tensor keeps exactly the graph needed to differentiate it.
#[derive(Debug, Clone)]
pub enum Op {
    Unary(Tensor, UnaryOp),
    Binary(Tensor, Tensor, BinaryOp),
    /// `where(cond, on_true, on_false)`; the condition gets no gradient.
    Where(Tensor, Tensor, Tensor),
    /// dtype conversion between float types.
    Cast(Tensor),
    /// Reduction over `dims` keeping them as extent 1.
    Reduce(Tensor, ReduceOp, Vec<usize>),
    /// Batched matrix product of two tensors of rank >= 2 with equal batch dims.
    Matmul(Tensor, Tensor),
    /// Any zero-copy view (reshape, permute, expand, slice, select, squeeze...): the gradient is
    /// computed by `autograd` from the input's shape and the view's kind.
    View(Tensor, ViewKind),
    /// A contiguous copy (also used by reshape when no view is possible).
    Copy(Tensor),
    /// `base` with the slice `dim, start.., step` replaced by `src`.
    SliceScatter {
        base: Tensor,
        src: Tensor,
        dim: usize,
        start: usize,
        step: usize,
    },
    /// Concatenation along `dim`.
    Cat(Vec<Tensor>, usize),
    /// `out[..i..] = x[..index[..i..]..]` along `dim`.
    Gather(Tensor, usize, Tensor),
    /// `base` with `src` written (or added) at `index` along `dim`.
    Scatter {
        base: Tensor,
        dim: usize,
        index: Tensor,
        src: Tensor,
        reduce: ScatterReduce,
    },
    /// Selects whole slices along `dim` with a 1-d index.
    IndexSelect(Tensor, usize, Tensor),
    /// `base` plus `src` slices accumulated at the 1-d `index` along `dim`.
    IndexAdd {
        base: Tensor,
        dim: usize,
        index: Tensor,
        src: Tensor,
    },
    /// Softmax along `dim` (fused and numerically stable).
    Softmax(Tensor, usize),
    /// Log-softmax along `dim` (log-sum-exp stabilised).
    LogSoftmax(Tensor, usize),
    /// The gradient of softmax (`log` false: `y (g - sum(g y))`) or log-softmax (`log` true:
    /// `g - exp(y) sum(g)`) along `dim`, from the upstream gradient `g` and the forward's output
    /// `y`: one fused pass per row instead of four ops.
    SoftmaxBackward {
        g: Tensor,
        y: Tensor,
        dim: usize,
        log: bool,
    },
    /// Fused scaled dot-product attention of `q [B, L, E]`, `k [B, S, E]`, `v [B, S, Ev]`
    /// (contiguous): `softmax(q k^T * scale, causal-masked) v`, computed in tiles with an online
    /// softmax so the `L x S` score matrix never exists (flash attention). `lse` is the forward's
    /// per-row log-sum-exp `[B, L]`, kept for the backward, which recomputes the tiles; it is
    /// not an input (nothing differentiates it, nothing else can modify it).
    Attention {
        q: Tensor,
        k: Tensor,
        v: Tensor,
        spec: AttentionSpec,
        lse: Tensor,
    },
    /// Layer normalisation of `x` (contiguous) over its `trailing` dims:
    /// `(x - mean) / sqrt(var + eps)` per row, biased variance, no affine (the weight and bias
    /// are a plain `mul` and `add` after it). `stats` `[2, rows]` holds the forward's means and
    /// `rstd`s for the backward, which reads `x` again, not the output; like `lse` above it is
    /// not an input.
    LayerNorm {
        x: Tensor,
        trailing: usize,
        eps: f64,
        stats: Tensor,
    },
    /// im2col: sliding `[kh, kw]` windows of an `[N, C, H, W]` input as columns
    /// `[N, C*kh*kw, L]`; positions outside the input read `pad_value`.
    Unfold(Tensor, Window, f64),
    /// col2im, the adjoint of `Unfold`: sums columns `[N, C*kh*kw, L]` back into `[N, C, H, W]`.
    Fold(Tensor, Window, (usize, usize)),
    /// Output `k` of a function defined outside the primitives, with a backward of its own
    /// (`autograd::Function`, Python's `autograd.Function`). Not a kernel: its forward already
    /// ran; this only records it in the graph.
    Custom(Arc<CustomNode>, usize),
}

/// The constants of a fused attention (`Op::Attention`): the score scale and the causal mask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionSpec {
    pub scale: f64,
    /// Row `i` attends to keys `j <= i` only (top-left aligned, as PyTorch's `is_causal`).
    pub causal: bool,
}

/// Geometry of a 2-d sliding window (convolution, pooling, unfold/fold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub kernel: (usize, usize),
    pub stride: (usize, usize),
    pub padding: (usize, usize),
    pub dilation: (usize, usize),
}

impl Window {
    /// Output extent along one axis, or `None` when the window does not fit.
    pub fn out_len(
        input: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> Option<usize> {
        let span = dilation
            .checked_mul(kernel.checked_sub(1)?)?
            .checked_add(1)?;
        let padded = input.checked_add(padding.checked_mul(2)?)?;
        if padded < span || stride == 0 {
            return None;
        }
        // sizes are int64 (as in PyTorch): an extent beyond that does not fit
        if padded > i64::MAX as usize {
            return None;
        }
        Some((padded - span) / stride + 1)
    }

    /// `(out_h, out_w)` for an input of `(h, w)`.
    pub fn out_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        Some((
            Window::out_len(
                h,
                self.kernel.0,
                self.stride.0,
                self.padding.0,
                self.dilation.0,
            )?,
            Window::out_len(
                w,
                self.kernel.1,
                self.stride.1,
                self.padding.1,
                self.dilation.1,
            )?,
        ))
    }
}

/// The kinds of zero-copy views, with what their backward needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewKind {
    /// Same elements, new shape (includes squeeze/unsqueeze/flatten).
    Reshape,
    /// Dims reordered by this permutation.
    Permute(Vec<usize>),
    /// Broadcast to a larger shape (stride 0 on the new dims).
    Expand,
    /// Every `step`-th element from `start` along `dim`.
    Slice {
        dim: usize,
        start: usize,
        step: usize,
    },
    /// The `offset`-th diagonal of the plane `(dim1, dim2)`, appended as the last dim.
    Diagonal {
        offset: i64,
        dim1: usize,
        dim2: usize,
    },
    /// Any layout over the input's storage (`as_strided`: the view's strides and storage
    /// offset; its sizes are the view's shape); the gradient goes back through the storage
    /// positions both layouts address.
    Strided { strides: Vec<usize>, offset: usize },
}

impl Op {
    /// A short name for messages and graph dumps.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Unary(_, u) => u.name(),
            Op::Binary(_, _, b) => b.name(),
            Op::Where(..) => "where",
            Op::Cast(_) => "to_dtype",
            Op::Reduce(_, r, _) => r.name(),
            Op::Matmul(..) => "matmul",
            Op::View(_, ViewKind::Reshape) => "reshape",
            Op::View(_, ViewKind::Permute(_)) => "permute",
            Op::View(_, ViewKind::Expand) => "expand",
            Op::View(_, ViewKind::Slice { .. }) => "slice",
            Op::View(_, ViewKind::Diagonal { .. }) => "diagonal",
            Op::View(_, ViewKind::Strided { .. }) => "as_strided",
            Op::Copy(_) => "contiguous",
            Op::SliceScatter { .. } => "slice_scatter",
            Op::Cat(..) => "cat",
            Op::Gather(..) => "gather",
            Op::Scatter {
                reduce: ScatterReduce::Assign,
                ..
            } => "scatter",
            Op::Scatter {
                reduce: ScatterReduce::Add,
                ..
            } => "scatter_add",
            Op::IndexSelect(..) => "index_select",
            Op::IndexAdd { .. } => "index_add",
            Op::Softmax(..) => "softmax",
            Op::LogSoftmax(..) => "log_softmax",
            Op::SoftmaxBackward { log: false, .. } => "softmax_backward",
            Op::SoftmaxBackward { log: true, .. } => "log_softmax_backward",
            Op::Attention { .. } => "scaled_dot_product_attention",
            Op::LayerNorm { .. } => "layer_norm",
            Op::Unfold(..) => "unfold",
            Op::Fold(..) => "fold",
            Op::Custom(n, _) => n.name(),
        }
    }

    /// The tensors this op read, in order (index tensors included; they never require grad).
    pub fn inputs(&self) -> Vec<&Tensor> {
        match self {
            Op::Unary(a, _) | Op::Cast(a) | Op::Reduce(a, _, _) | Op::View(a, _) | Op::Copy(a) => {
                vec![a]
            }
            Op::Softmax(a, _) | Op::LogSoftmax(a, _) | Op::Unfold(a, ..) | Op::Fold(a, ..) => {
                vec![a]
            }
            Op::LayerNorm { x, .. } => vec![x],
            Op::Binary(a, b, _) | Op::Matmul(a, b) => vec![a, b],
            Op::Where(c, a, b) => vec![c, a, b],
            Op::SliceScatter { base, src, .. } => vec![base, src],
            Op::SoftmaxBackward { g, y, .. } => vec![g, y],
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Cat(xs, _) => xs.iter().collect(),
            Op::Gather(a, _, i) | Op::IndexSelect(a, _, i) => vec![a, i],
            Op::Scatter {
                base, index, src, ..
            }
            | Op::IndexAdd {
                base, index, src, ..
            } => vec![base, index, src],
            Op::Custom(n, _) => n.inputs().iter().collect(),
        }
    }

    /// The inputs, mutably (an in-place op re-points a rule at a copy of a value it overwrites).
    pub(crate) fn inputs_mut(&mut self) -> Vec<&mut Tensor> {
        match self {
            Op::Unary(a, _) | Op::Cast(a) | Op::Reduce(a, _, _) | Op::View(a, _) | Op::Copy(a) => {
                vec![a]
            }
            Op::Softmax(a, _) | Op::LogSoftmax(a, _) | Op::Unfold(a, ..) | Op::Fold(a, ..) => {
                vec![a]
            }
            Op::LayerNorm { x, .. } => vec![x],
            Op::Binary(a, b, _) | Op::Matmul(a, b) => vec![a, b],
            Op::Where(c, a, b) => vec![c, a, b],
            Op::SliceScatter { base, src, .. } => vec![base, src],
            Op::SoftmaxBackward { g, y, .. } => vec![g, y],
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Cat(xs, _) => xs.iter_mut().collect(),
            Op::Gather(a, _, i) | Op::IndexSelect(a, _, i) => vec![a, i],
            Op::Scatter {
                base, index, src, ..
            }
            | Op::IndexAdd {
                base, index, src, ..
            } => vec![base, index, src],
            // a custom node is shared by its outputs and checks its own saved values
            Op::Custom(..) => Vec::new(),
        }
    }

    /// Consumes the op, yielding owned inputs (used to free deep graphs without recursion).
    pub(crate) fn into_inputs(self) -> Vec<Tensor> {
        match self {
            Op::Unary(a, _) | Op::Cast(a) | Op::Reduce(a, _, _) | Op::View(a, _) | Op::Copy(a) => {
                vec![a]
            }
            Op::Softmax(a, _) | Op::LogSoftmax(a, _) | Op::Unfold(a, ..) | Op::Fold(a, ..) => {
                vec![a]
            }
            Op::LayerNorm { x, .. } => vec![x],
            Op::Binary(a, b, _) | Op::Matmul(a, b) => vec![a, b],
            Op::Where(c, a, b) => vec![c, a, b],
            Op::SliceScatter { base, src, .. } => vec![base, src],
            Op::SoftmaxBackward { g, y, .. } => vec![g, y],
            Op::Attention { q, k, v, .. } => vec![q, k, v],
            Op::Cat(xs, _) => xs,
            Op::Gather(a, _, i) | Op::IndexSelect(a, _, i) => vec![a, i],
            Op::Scatter {
                base, index, src, ..
            }
            | Op::IndexAdd {
                base, index, src, ..
            } => vec![base, index, src],
            // the last output to let go of the node frees its inputs
            Op::Custom(n, _) => Arc::into_inner(n)
                .map(CustomNode::into_inputs)
                .unwrap_or_default(),
        }
    }
}
