//! The gradient rule of every primitive (one exhaustive `match`), which values each rule reads
//! (for the version-counter check), and the saved-value checks themselves.

use super::no_grad;
use crate::op::{BinaryOp, Op, ReduceOp, ScatterReduce, UnaryOp, ViewKind};
use crate::tensor::Node;
use crate::{Error, Result, Scalar, Tensor};

fn needs(t: &Tensor) -> bool {
    t.requires_grad()
}

/// Bit of [`saved_inputs`] that stands for the op's output.
pub(crate) const SAVED_OUTPUT: u8 = 1 << 3;

/// Which values `backward_rule` reads for this op, given which inputs need a gradient: bit `i`
/// for input `i` (in `op.inputs()` order, `i < 3`), [`SAVED_OUTPUT`] for the output. Values not
/// listed may change after the op without changing its gradient (only their shapes are used).
/// Kept next to the rules, which it must describe exactly.
pub(crate) fn saved_inputs(op: &Op) -> u8 {
    const A: u8 = 1;
    const B: u8 = 2;
    const C: u8 = 4;
    const OUT: u8 = SAVED_OUTPUT;
    let n = |t: &Tensor| needs(t) as u8;
    match op {
        Op::Unary(_, u) => match u {
            UnaryOp::Neg
            | UnaryOp::Sign
            | UnaryOp::Floor
            | UnaryOp::Ceil
            | UnaryOp::Round
            | UnaryOp::Trunc => 0,
            UnaryOp::Exp
            | UnaryOp::Sqrt
            | UnaryOp::Tanh
            | UnaryOp::Sigmoid
            | UnaryOp::Relu
            | UnaryOp::Expm1
            | UnaryOp::Tan => OUT,
            UnaryOp::Abs
            | UnaryOp::Log
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Gelu
            | UnaryOp::Erf
            | UnaryOp::Softplus
            | UnaryOp::Log1p
            | UnaryOp::Log2
            | UnaryOp::Log10
            | UnaryOp::Asin
            | UnaryOp::Acos
            | UnaryOp::Atan
            | UnaryOp::Sinh
            | UnaryOp::Cosh
            | UnaryOp::Erfc
            | UnaryOp::Lgamma
            | UnaryOp::Digamma
            | UnaryOp::Trigamma => A,
        },
        Op::Binary(a, b, bop) => match bop {
            BinaryOp::Add | BinaryOp::Sub => 0,
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => 0,
            BinaryOp::Mul => (n(b) * A) | (n(a) * B),
            BinaryOp::Div => B | (n(b) * OUT),
            BinaryOp::Pow => A | B | (n(b) * OUT),
            BinaryOp::Maximum | BinaryOp::Minimum => A | B,
            BinaryOp::Atan2 => A | B,
            BinaryOp::Fmod | BinaryOp::Remainder => n(b) * (A | B),
        },
        Op::Where(..) => A,
        Op::Reduce(_, ReduceOp::Max | ReduceOp::Min, _) => A | OUT,
        Op::Matmul(a, b) => (n(b) * A) | (n(a) * B),
        Op::Softmax(..) | Op::LogSoftmax(..) => OUT,
        Op::SoftmaxBackward { y, .. } => B | (n(y) * A),
        Op::Attention { .. } => A | B | C | OUT,
        Op::LayerNorm { .. } => A,
        Op::Gather(..) | Op::IndexSelect(..) => B,
        Op::Scatter { .. } | Op::IndexAdd { .. } => B,
        Op::Cast(_)
        | Op::Reduce(_, ReduceOp::Sum, _)
        | Op::View(..)
        | Op::Copy(_)
        | Op::SliceScatter { .. }
        | Op::Cat(..)
        | Op::Unfold(..)
        | Op::Fold(..) => 0,
        // a custom node checks the values it saved itself (`function::CustomNode::unpack`)
        Op::Custom(..) => 0,
    }
    .min(A | B | C | OUT)
}

/// PyTorch's saved-tensor check: every value the rule of `node` reads must still be the one it
/// saw when the op was recorded.
pub(super) fn check_versions(node: &Node, out: &Tensor) -> Result<()> {
    let saved = saved_inputs(&node.op);
    if saved == 0 {
        return Ok(());
    }
    let stale = |t: &Tensor, what: String, expected: u64| -> Result<()> {
        let now = t.version();
        if now == expected {
            return Ok(());
        }
        Err(Error::Autograd(format!(
            "one of the variables needed for gradient computation has been modified by an inplace operation: [{} {}], which is {what} of {}, is at version {now}; expected version {expected} instead. Hint: the operation that modified it ran after this one was recorded; use an out-of-place op (or .clone() the value) there",
            t.dtype(),
            t.shape(),
            grad_fn_display(node.op.name()),
        )))
    };
    for (i, x) in node.op.inputs().into_iter().enumerate().take(3) {
        if saved & (1 << i) != 0 {
            stale(x, format!("input {i}"), node.versions[i])?;
        }
    }
    if saved & SAVED_OUTPUT != 0 {
        stale(out, "output 0".into(), node.out_version)?;
    }
    Ok(())
}

/// Anomaly mode: the gradients a rule produced must be finite.
pub(super) fn check_finite(
    name: &str,
    trace: Option<&std::sync::Arc<str>>,
    grads: &[Option<Tensor>],
) -> Result<()> {
    for (i, g) in grads.iter().enumerate() {
        let Some(g) = g else { continue };
        if !g.dtype().is_float() || g.numel() == 0 {
            continue;
        }
        let _ng = no_grad();
        // x - x is 0 exactly for finite x and NaN for NaN and infinities
        let d = g.detach().sub(&g.detach())?;
        let finite = d.eq_scalar(0.0)?.all(&[] as &[usize], false)?.item()? != 0.0;
        if !finite {
            let what = if g
                .detach()
                .ne(&g.detach())?
                .any(&[] as &[usize], false)?
                .item()?
                != 0.0
            {
                "nan"
            } else {
                "inf"
            };
            let mut msg = format!("Function '{name}' returned {what} values in its {i}th output.");
            match trace {
                Some(t) => {
                    msg.push_str("\nTraceback of forward call that caused the error:\n");
                    msg.push_str(t);
                }
                None => msg.push_str(
                    " (the op was recorded before anomaly detection was turned on, so where it was called from is unknown)",
                ),
            }
            return Err(Error::Autograd(msg));
        }
    }
    Ok(())
}

/// PyTorch's spelling of a node (`MulBackward0`) for messages: `mul` -> `MulBackward0`.
pub fn grad_fn_display(op_name: &str) -> String {
    let camel: String = op_name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    format!("{camel}Backward0")
}

/// The gradient of each input of `op` (in `op.inputs()` order) given the gradient `g` of its
/// output `out`. `None` where an input needs no gradient (or has none, like indices).
pub fn backward_rule(op: &Op, out: &Tensor, g: &Tensor) -> Result<Vec<Option<Tensor>>> {
    let some = |t: Tensor| Ok(Some(t));
    Ok(match op {
        Op::Unary(x, u) => {
            // Without create_graph the derivative runs as one fused kernel; under it the composed
            // formula below is recorded, so it can be differentiated again.
            if !crate::is_grad_enabled() {
                if let Some(from) = u.fused_grad_input() {
                    let saved = match from {
                        crate::op::GradFrom::Input => x,
                        crate::op::GradFrom::Output => out,
                    };
                    return Ok(vec![Some(saved.unary_backward(g, *u)?)]);
                }
            }
            let gx = match u {
                UnaryOp::Neg => g.neg()?,
                UnaryOp::Abs => g.mul(&x.sign()?)?,
                UnaryOp::Sign => g.zeros_like()?,
                UnaryOp::Exp => g.mul(out)?,
                UnaryOp::Log => g.div(x)?,
                UnaryOp::Sqrt => g.div(&out.mul_scalar(2.0)?)?,
                UnaryOp::Sin => g.mul(&x.cos()?)?,
                UnaryOp::Cos => g.mul(&x.sin()?)?.neg()?,
                UnaryOp::Tanh => g.mul(&out.mul(out)?.rsub_scalar(1.0)?)?,
                UnaryOp::Sigmoid => g.mul(&out.mul(&out.rsub_scalar(1.0)?)?)?,
                UnaryOp::Relu => Tensor::where_cond(&out.gt_scalar(0.0)?, g, &g.zeros_scalar()?)?,
                UnaryOp::Gelu => {
                    // d/dx x*Phi(x) = Phi(x) + x*phi(x)
                    let cdf = x
                        .mul_scalar(std::f64::consts::FRAC_1_SQRT_2)?
                        .erf()?
                        .add_scalar(1.0)?
                        .mul_scalar(0.5)?;
                    let pdf = x
                        .mul(x)?
                        .mul_scalar(-0.5)?
                        .exp()?
                        .mul_scalar(0.3989422804014327)?; // 1/sqrt(2 pi)
                    g.mul(&cdf.add(&x.mul(&pdf)?)?)?
                }
                UnaryOp::Erf => g.mul(
                    &x.mul(x)?
                        .neg()?
                        .exp()?
                        .mul_scalar(std::f64::consts::FRAC_2_SQRT_PI)?,
                )?,
                UnaryOp::Softplus => g.mul(&x.sigmoid()?)?,
                UnaryOp::Log1p => g.div(&x.add_scalar(1.0)?)?,
                UnaryOp::Expm1 => g.mul(&out.add_scalar(1.0)?)?,
                UnaryOp::Log2 => g.div(&x.mul_scalar(std::f64::consts::LN_2)?)?,
                UnaryOp::Log10 => g.div(&x.mul_scalar(std::f64::consts::LN_10)?)?,
                UnaryOp::Tan => g.mul(&out.mul(out)?.add_scalar(1.0)?)?,
                UnaryOp::Asin => g.mul(&x.mul(x)?.rsub_scalar(1.0)?.rsqrt()?)?,
                UnaryOp::Acos => g.mul(&x.mul(x)?.rsub_scalar(1.0)?.rsqrt()?)?.neg()?,
                UnaryOp::Atan => g.div(&x.mul(x)?.add_scalar(1.0)?)?,
                UnaryOp::Sinh => g.mul(&x.cosh()?)?,
                UnaryOp::Cosh => g.mul(&x.sinh()?)?,
                // piecewise constant: zero almost everywhere, as PyTorch defines it
                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round | UnaryOp::Trunc => {
                    g.zeros_like()?
                }
                UnaryOp::Erfc => g.mul(
                    &x.mul(x)?
                        .neg()?
                        .exp()?
                        .mul_scalar(-std::f64::consts::FRAC_2_SQRT_PI)?,
                )?,
                UnaryOp::Lgamma => g.mul(&x.unary(UnaryOp::Digamma)?)?,
                UnaryOp::Digamma => g.mul(&x.unary(UnaryOp::Trigamma)?)?,
                // PyTorch differentiates polygamma(n) with polygamma(n + 1); only n <= 1 is
                // a kernel here, so the third derivative of lgamma says so instead of guessing
                UnaryOp::Trigamma => {
                    return Err(Error::Autograd(
                        "trigamma (polygamma(1, x)) backward: its derivative polygamma(2, x) \
                         is not implemented (lgamma is differentiable twice here, digamma once \
                         more)"
                            .into(),
                    ))
                }
            };
            vec![Some(gx)]
        }
        Op::Binary(a, b, bop) => {
            let (ga, gb) = match bop {
                BinaryOp::Add => (needs(a).then(|| g.clone()), needs(b).then(|| g.clone())),
                BinaryOp::Sub => (
                    needs(a).then(|| g.clone()),
                    if needs(b) { Some(g.neg()?) } else { None },
                ),
                BinaryOp::Mul => (opt(needs(a), || g.mul(b))?, opt(needs(b), || g.mul(a))?),
                BinaryOp::Div => (
                    opt(needs(a), || g.div(b))?,
                    opt(needs(b), || g.mul(out)?.div(b)?.neg())?,
                ),
                BinaryOp::Pow => (
                    opt(needs(a), || g.mul(b)?.mul(&a.pow(&b.sub_scalar(1.0)?)?))?,
                    opt(needs(b), || {
                        // d/db a^b = a^b ln a; PyTorch defines it as 0 where a == 0
                        let v = g.mul(out)?.mul(&a.log()?)?;
                        Tensor::where_cond(&a.eq_scalar(0.0)?, &v.zeros_scalar()?, &v)
                    })?,
                ),
                BinaryOp::Atan2 => {
                    // d/da atan2(a, b) = b / (a^2 + b^2), d/db = -a / (a^2 + b^2)
                    let r = a.mul(a)?.add(&b.mul(b)?)?;
                    (
                        opt(needs(a), || g.mul(b)?.div(&r))?,
                        opt(needs(b), || g.mul(a)?.div(&r)?.neg())?,
                    )
                }
                // a - q b with q = trunc(a / b) (fmod) or floor(a / b) (remainder), as PyTorch
                BinaryOp::Fmod | BinaryOp::Remainder => (
                    needs(a).then(|| g.clone()),
                    opt(needs(b), || {
                        let q = a.div(b)?;
                        let q = if *bop == BinaryOp::Fmod {
                            q.unary(UnaryOp::Trunc)?
                        } else {
                            q.unary(UnaryOp::Floor)?
                        };
                        g.mul(&q)?.neg()
                    })?,
                ),
                // integer ops: nothing that requires grad reaches them
                BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => (None, None),
                BinaryOp::Maximum | BinaryOp::Minimum => {
                    // the winner takes the gradient; ties split it evenly (as PyTorch does)
                    let (wa, wb) = if *bop == BinaryOp::Maximum {
                        (a.gt(b)?, b.gt(a)?)
                    } else {
                        (a.lt(b)?, b.lt(a)?)
                    };
                    let tie = a.eq(b)?.to_dtype(g.dtype())?.mul_scalar(0.5)?;
                    (
                        opt(needs(a), || g.mul(&wa.to_dtype(g.dtype())?.add(&tie)?))?,
                        opt(needs(b), || g.mul(&wb.to_dtype(g.dtype())?.add(&tie)?))?,
                    )
                }
            };
            vec![ga, gb]
        }
        Op::Where(c, a, b) => {
            let z = g.zeros_scalar()?;
            vec![
                None,
                opt(needs(a), || Tensor::where_cond(c, g, &z))?,
                opt(needs(b), || Tensor::where_cond(c, &z, g))?,
            ]
        }
        Op::Cast(x) => vec![some(g.to_dtype(x.dtype())?)?],
        Op::Reduce(x, r, dims) => {
            let gx = match r {
                ReduceOp::Sum => g.broadcast_to(x.shape())?,
                ReduceOp::Max | ReduceOp::Min => {
                    let hit = x.eq(&out.broadcast_to(x.shape())?)?.to_dtype(g.dtype())?;
                    let count = hit.reduce_keepdim(ReduceOp::Sum, dims)?;
                    g.div(&count)?.broadcast_to(x.shape())?.mul(&hit)?
                }
            };
            vec![Some(gx)]
        }
        Op::Matmul(a, b) => {
            // When an operand is a transposed matrix (a Linear layer's `x @ W.T`), produce its
            // gradient in that same memory order: (g^T a)^T equals a^T g, but its storage is
            // already row-major for W, so W.grad needs no transposing copy later.
            let transposed = |t: &Tensor| {
                t.rank() == 2 && t.strides()[0] == 1 && t.dims()[0] > 1 && t.dims()[1] > 1
            };
            vec![
                opt(needs(a), || {
                    if transposed(a) {
                        b.matmul(&g.mt()?)?.mt()
                    } else {
                        g.matmul(&b.mt()?)
                    }
                })?,
                opt(needs(b), || {
                    if transposed(b) {
                        g.mt()?.matmul(a)?.mt()
                    } else {
                        a.mt()?.matmul(g)
                    }
                })?,
            ]
        }
        Op::View(x, kind) => {
            let gx = match kind {
                ViewKind::Reshape => g.reshape(x.shape().clone())?,
                ViewKind::Permute(p) => {
                    let mut inv = vec![0; p.len()];
                    for (i, &pi) in p.iter().enumerate() {
                        inv[pi] = i;
                    }
                    g.permute(&inv)?
                }
                ViewKind::Expand => g.sum_to_shape(x.shape())?,
                ViewKind::Diagonal { offset, dim1, dim2 } => {
                    crate::matrix::diagonal_backward(x, g, *offset, *dim1, *dim2)?
                }
                ViewKind::Slice { dim, start, step } => {
                    crate::indexing::slice_backward(x.shape(), g, *dim, *start, *step)?
                }
                ViewKind::Strided { strides, offset } => {
                    crate::views::as_strided_backward(x, g, strides, *offset)?
                }
            };
            vec![Some(gx)]
        }
        Op::Copy(x) => vec![some(if g.device() != x.device() {
            g.to_device(x.device())?
        } else {
            g.clone()
        })?],
        Op::SliceScatter {
            base,
            src,
            dim,
            start,
            step,
        } => vec![
            opt(needs(base), || {
                g.slice_scatter(&src.zeros_like()?, *dim, *start, *step)
            })?,
            opt(needs(src), || {
                g.slice_step(*dim, *start, src.dims()[*dim], *step)
            })?,
        ],
        Op::Cat(xs, dim) => {
            let mut off = 0;
            let mut v = Vec::with_capacity(xs.len());
            for x in xs {
                let n = x.dims()[*dim];
                v.push(opt(needs(x), || g.narrow(*dim, off, n))?);
                off += n;
            }
            v
        }
        Op::Gather(x, dim, idx) => vec![
            opt(needs(x), || x.zeros_like()?.scatter_add(*dim, idx, g))?,
            None,
        ],
        Op::Scatter {
            base,
            dim,
            index,
            src,
            reduce,
        } => {
            vec![
                opt(needs(base), || match reduce {
                    ScatterReduce::Add => Ok(g.clone()),
                    // the overwritten elements of base do not reach the output
                    ScatterReduce::Assign => g.scatter(*dim, index, &src.zeros_like()?),
                })?,
                None,
                opt(needs(src), || g.gather(*dim, index))?,
            ]
        }
        Op::IndexSelect(x, dim, idx) => vec![
            opt(needs(x), || x.zeros_like()?.index_add(*dim, idx, g))?,
            None,
        ],
        Op::IndexAdd {
            base,
            dim,
            index,
            src,
        } => {
            vec![
                needs(base).then(|| g.clone()),
                None,
                opt(needs(src), || g.index_select(*dim, index))?,
            ]
        }
        Op::Softmax(_, dim) => vec![some(Tensor::softmax_backward(g, out, *dim, false)?)?],
        Op::LogSoftmax(_, dim) => vec![some(Tensor::softmax_backward(g, out, *dim, true)?)?],
        // r = y (g0 - D), D = sum(g0 y): dr/dg0 . h = y (h - sum(h y)), the same fused op;
        // dr/dy . h = h (g0 - D) - g0 sum(h y).
        // r = g0 - exp(y) S, S = sum(g0): dr/dg0 . h = h - sum(h exp(y));
        // dr/dy . h = -h exp(y) S.
        Op::SoftmaxBackward { g: g0, y, dim, log } => {
            let d = &[*dim];
            if *log {
                let ey = y.exp()?;
                vec![
                    opt(needs(g0), || {
                        g.sub(&g.mul(&ey)?.reduce_keepdim(ReduceOp::Sum, d)?)
                    })?,
                    opt(needs(y), || {
                        g.mul(&ey)?
                            .mul(&g0.reduce_keepdim(ReduceOp::Sum, d)?)?
                            .neg()
                    })?,
                ]
            } else {
                vec![
                    opt(needs(g0), || Tensor::softmax_backward(g, y, *dim, false))?,
                    opt(needs(y), || {
                        let dd = g0.mul(y)?.reduce_keepdim(ReduceOp::Sum, d)?;
                        let e = g.mul(y)?.reduce_keepdim(ReduceOp::Sum, d)?;
                        g.mul(&g0.sub(&dd)?)?.sub(&g0.mul(&e)?)
                    })?,
                ]
            }
        }
        Op::Attention { q, k, v, spec, lse } => {
            let [dq, dk, dv] = crate::attention::attention_grads((q, k, v), lse, out, g, *spec)?;
            vec![
                needs(q).then_some(dq),
                needs(k).then_some(dk),
                needs(v).then_some(dv),
            ]
        }
        Op::LayerNorm {
            x,
            trailing,
            eps,
            stats,
        } => vec![some(crate::layer_norm::layer_norm_grad(
            x, stats, g, *trailing, *eps,
        )?)?],
        // unfold and fold are each other's adjoints; padded positions get no gradient
        Op::Unfold(x, w, _) => vec![some(g.fold(*w, (x.dims()[2], x.dims()[3]))?)?],
        Op::Fold(_, w, _) => vec![some(g.unfold(*w, 0.0)?)?],
        // the engine calls a custom node once for all its outputs (`function::run_backward`)
        Op::Custom(n, _) => {
            return Err(Error::Autograd(format!(
                "{}: a custom function's backward runs through the engine, not backward_rule",
                n.name()
            )))
        }
    })
}

fn opt(cond: bool, f: impl FnOnce() -> Result<Tensor>) -> Result<Option<Tensor>> {
    if cond {
        f().map(Some)
    } else {
        Ok(None)
    }
}

impl Tensor {
    /// A 0-d zero of this tensor's dtype and device (broadcasts anywhere).
    pub(crate) fn zeros_scalar(&self) -> Result<Tensor> {
        Tensor::constant(Scalar::Float(0.0), self.dtype(), self.device())
    }
}
