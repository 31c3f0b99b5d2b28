//! Reverse-mode automatic differentiation.
//!
//! `backward` sorts the graph below the output topologically (iteratively: graphs can be 10^5 ops
//! deep), then walks it once in reverse, applying each op's gradient rule. All rules are in the
//! one exhaustive `match` of [`backward_rule`], so a new primitive cannot silently lack a gradient.
//! Rules are written with tensor ops: with `create_graph` they record a graph of their own, which
//! is how second derivatives (grad of grad) work for every op.

use crate::op::{BinaryOp, Op, ReduceOp, ScatterReduce, UnaryOp, ViewKind};
use crate::tensor::Node;
use crate::{Error, Result, Scalar, Tensor, TensorId};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

thread_local! {
    // Per thread, as in PyTorch: a no_grad block on one thread does not affect others.
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops record the graph on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Turns recording on or off for this thread; returns the previous setting.
pub fn set_grad_enabled(enabled: bool) -> bool {
    GRAD_ENABLED.with(|g| g.replace(enabled))
}

/// Anomaly detection (PyTorch's `torch.autograd.detect_anomaly`): while it is on, every recorded
/// op remembers where it was called from, and backward checks each gradient it computes; the
/// first NaN or infinity is an error naming the op whose backward produced it and showing the
/// call that recorded that op. It costs a trace per op and a check (a readback on the GPU) per
/// gradient, so it is a debugging mode, off by default.
pub mod anomaly {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, RwLock};

    static ENABLED: AtomicBool = AtomicBool::new(false);
    static CHECK_NAN: AtomicBool = AtomicBool::new(true);

    /// Produces the description of the current call site (the Python binding installs one that
    /// formats the Python stack; the default is Rust's backtrace).
    pub type TraceHook = fn() -> Option<String>;
    static HOOK: RwLock<Option<TraceHook>> = RwLock::new(None);

    /// Turns anomaly detection on or off (process-wide, as PyTorch's); returns the old setting.
    pub fn set_enabled(on: bool, check_nan: bool) -> bool {
        CHECK_NAN.store(check_nan, Ordering::Relaxed);
        ENABLED.swap(on, Ordering::Relaxed)
    }

    pub fn is_enabled() -> bool {
        ENABLED.load(Ordering::Relaxed)
    }

    pub(crate) fn check_nan() -> bool {
        CHECK_NAN.load(Ordering::Relaxed)
    }

    /// Sets how call sites are described (`None`: Rust's backtrace).
    pub fn set_trace_hook(hook: Option<TraceHook>) {
        *HOOK.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// The current call site, when anomaly detection is on.
    pub(crate) fn trace() -> Option<Arc<str>> {
        if !is_enabled() {
            return None;
        }
        let hook = *HOOK.read().unwrap_or_else(|e| e.into_inner());
        let text = match hook {
            Some(h) => h(),
            None => Some(std::backtrace::Backtrace::force_capture().to_string()),
        };
        text.map(Arc::from)
    }
}

/// Restores the previous grad mode when dropped.
#[must_use = "grad mode is restored when the guard is dropped"]
pub struct GradModeGuard(bool);

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        set_grad_enabled(self.0);
    }
}

/// Disables recording until the guard is dropped (PyTorch's `with torch.no_grad():`).
///
/// ```
/// # use backprop::{Tensor, Device, DType};
/// let w = Tensor::ones([2], DType::F32, Device::Cpu)?.requires_grad_(true)?;
/// let y = {
///     let _g = backprop::no_grad();
///     w.mul_scalar(2.0)?
/// };
/// assert!(!y.requires_grad());
/// # Ok::<(), backprop::Error>(())
/// ```
pub fn no_grad() -> GradModeGuard {
    GradModeGuard(set_grad_enabled(false))
}

/// Sets grad mode to `enabled` until the guard is dropped.
pub fn grad_mode(enabled: bool) -> GradModeGuard {
    GradModeGuard(set_grad_enabled(enabled))
}

impl Tensor {
    /// Backpropagates from a scalar: accumulates d(self)/d(leaf) into every leaf's `.grad`.
    pub fn backward(&self) -> Result<()> {
        self.backward_with(None, false, false)
    }

    /// PyTorch's `backward(gradient, retain_graph, create_graph)`.
    pub fn backward_with(
        &self,
        gradient: Option<&Tensor>,
        retain_graph: bool,
        create_graph: bool,
    ) -> Result<()> {
        let seed = seed_grad(self, gradient, 0)?;
        run(
            vec![(self.clone(), seed)],
            retain_graph || create_graph,
            create_graph,
            None,
        )
        .map(|_| ())
    }
}

/// Gradients of `outputs` with respect to `inputs` without touching any `.grad`
/// (PyTorch's `torch.autograd.grad`).
pub fn grad(
    outputs: &[Tensor],
    inputs: &[Tensor],
    grad_outputs: Option<&[Option<Tensor>]>,
    retain_graph: Option<bool>,
    create_graph: bool,
    allow_unused: bool,
) -> Result<Vec<Option<Tensor>>> {
    if let Some(go) = grad_outputs {
        if go.len() != outputs.len() {
            return Err(Error::Autograd(format!(
                "grad: got {} grad_outputs for {} outputs",
                go.len(),
                outputs.len()
            )));
        }
    }
    for (i, x) in inputs.iter().enumerate() {
        if !x.requires_grad() {
            return Err(Error::Autograd(format!(
                "grad: input {i} does not require grad"
            )));
        }
    }
    let mut roots = Vec::with_capacity(outputs.len());
    for (i, o) in outputs.iter().enumerate() {
        let g = grad_outputs.and_then(|go| go[i].as_ref());
        roots.push((o.clone(), seed_grad(o, g, i)?));
    }
    let retain = retain_graph.unwrap_or(create_graph);
    let got = run(roots, retain, create_graph, Some(inputs))?.unwrap_or_default();
    if !allow_unused {
        if let Some(i) = got.iter().position(|g| g.is_none()) {
            return Err(Error::Autograd(format!(
                "grad: input {i} was not used in the graph of the outputs; pass allow_unused=True if this is intended"
            )));
        }
    }
    Ok(got)
}

fn seed_grad(out: &Tensor, gradient: Option<&Tensor>, index: usize) -> Result<Tensor> {
    if !out.requires_grad() {
        return Err(Error::Autograd(format!(
            "element {index} of tensors does not require grad and does not have a grad_fn"
        )));
    }
    match gradient {
        Some(g) => {
            if g.shape() != out.shape() {
                return Err(Error::ShapeMismatch {
                    op: "backward",
                    lhs: out.shape().clone(),
                    rhs: g.shape().clone(),
                    detail: ": gradient must have the shape of the output".into(),
                });
            }
            let g = if g.dtype() != out.dtype() {
                g.to_dtype(out.dtype())?
            } else {
                g.clone()
            };
            if g.device() != out.device() {
                return Err(Error::DeviceMismatch {
                    op: "backward",
                    lhs: out.device(),
                    rhs: g.device(),
                });
            }
            Ok(g)
        }
        None => {
            if out.numel() != 1 {
                return Err(Error::Autograd(format!(
                    "grad can be implicitly created only for scalar outputs (got shape {}); pass a gradient of that shape",
                    out.shape()
                )));
            }
            Tensor::ones(out.shape().clone(), out.dtype(), out.device())
        }
    }
}

/// The backward engine. Returns the gradients of `capture` (when given) instead of accumulating
/// into `.grad` of leaves.
fn run(
    roots: Vec<(Tensor, Tensor)>,
    retain: bool,
    create: bool,
    capture: Option<&[Tensor]>,
) -> Result<Option<Vec<Option<Tensor>>>> {
    // 1. topological order (post-order DFS, iterative)
    let mut order: Vec<(Tensor, Option<Node>)> = Vec::new();
    let mut visited: HashSet<TensorId> = HashSet::new();
    for (root, _) in &roots {
        if !visited.insert(root.id()) {
            continue;
        }
        let mut stack: Vec<(Tensor, Option<Node>, usize)> =
            vec![(root.clone(), graph_op(root)?, 0)];
        while let Some((t, op, next)) = stack.pop() {
            let inputs: Vec<Tensor> = op
                .as_ref()
                .map(|o| o.op.inputs().into_iter().cloned().collect())
                .unwrap_or_default();
            if let Some(child) = inputs.get(next).cloned() {
                stack.push((t, op, next + 1));
                if child.requires_grad() && visited.insert(child.id()) {
                    let cop = graph_op(&child)?;
                    stack.push((child, cop, 0));
                }
            } else {
                order.push((t, op));
            }
        }
    }

    let capture_ids: HashMap<TensorId, usize> = capture
        .map(|c| c.iter().enumerate().map(|(i, t)| (t.id(), i)).collect())
        .unwrap_or_default();
    let mut captured: Vec<Option<Tensor>> = vec![None; capture.map_or(0, |c| c.len())];

    // 2. reverse walk
    let _mode = grad_mode(create);
    let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
    for (t, g) in roots {
        accumulate(&mut grads, t.id(), g)?;
    }
    for i in (0..order.len()).rev() {
        // Without retain_graph each op is released as soon as it has been differentiated, so
        // intermediates die during the walk rather than after it.
        let (t, op) = if retain {
            (order[i].0.clone(), order[i].1.clone())
        } else {
            (order[i].0.clone(), order[i].1.take())
        };
        if !retain {
            t.take_op();
        }
        let Some(g) = grads.remove(&t.id()) else {
            continue;
        };
        if let Some(&i) = capture_ids.get(&t.id()) {
            captured[i] = Some(g.clone());
        } else if capture.is_none() && (t.is_leaf() || t.retains_grad()) {
            // `.grad` is always dense, row-major and owned by this leaf alone (PyTorch's layout
            // contract): optimisers then take their fused path, and in-place changes to one
            // leaf's gradient (clipping, zero_) cannot leak into another's. A gradient that
            // arrives as a view (the transpose of a Linear weight's gradient) or that is shared
            // (the two inputs of an add get the same tensor) is copied once.
            let g = if g.is_contiguous() && g.is_exclusive() {
                g.clone()
            } else {
                g.contiguous_copy()?
            };
            let g = if create { g } else { g.detach() };
            let new = match t.grad() {
                Some(old) => old.add(&g)?,
                None => g.clone(),
            };
            t.set_grad(Some(new))?;
        }
        let Some(node) = op else { continue };
        check_versions(&node, &t)?;
        let input_grads = backward_rule(&node.op, &t, &g)?;
        if anomaly::is_enabled() && anomaly::check_nan() {
            check_finite(&node, &input_grads)?;
        }
        let op = node.op;
        for (x, gx) in op.inputs().into_iter().zip(input_grads) {
            if let Some(gx) = gx {
                if x.requires_grad() {
                    debug_assert_eq!(
                        gx.shape(),
                        x.shape(),
                        "gradient of {} has the wrong shape",
                        op.name()
                    );
                    accumulate(&mut grads, x.id(), gx)?;
                }
            }
        }
    }

    Ok(capture.map(|_| captured))
}

/// The op to walk through for `t`: `None` for leaves; an error if the graph was already freed.
fn graph_op(t: &Tensor) -> Result<Option<Node>> {
    if t.is_leaf() {
        return Ok(None);
    }
    match t.node() {
        Some(op) => Ok(Some(op)),
        None => Err(Error::Autograd(
            "trying to backward through the graph a second time (or directly access saved tensors after they have already been freed); \
             specify retain_graph=True if you need to backward through the graph a second time"
                .into(),
        )),
    }
}

fn accumulate(grads: &mut HashMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
    match grads.remove(&id) {
        Some(old) => {
            grads.insert(id, old.add(&g)?);
        }
        None => {
            grads.insert(id, g);
        }
    }
    Ok(())
}

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
            UnaryOp::Neg | UnaryOp::Sign => 0,
            UnaryOp::Exp | UnaryOp::Sqrt | UnaryOp::Tanh | UnaryOp::Sigmoid | UnaryOp::Relu => OUT,
            UnaryOp::Abs
            | UnaryOp::Log
            | UnaryOp::Sin
            | UnaryOp::Cos
            | UnaryOp::Gelu
            | UnaryOp::Erf
            | UnaryOp::Softplus => A,
        },
        Op::Binary(a, b, bop) => match bop {
            BinaryOp::Add | BinaryOp::Sub => 0,
            BinaryOp::BitAnd | BinaryOp::BitOr | BinaryOp::BitXor => 0,
            BinaryOp::Mul => (n(b) * A) | (n(a) * B),
            BinaryOp::Div => B | (n(b) * OUT),
            BinaryOp::Pow => A | B | (n(b) * OUT),
            BinaryOp::Maximum | BinaryOp::Minimum => A | B,
        },
        Op::Where(..) => A,
        Op::Reduce(_, ReduceOp::Max | ReduceOp::Min, _) => A | OUT,
        Op::Matmul(a, b) => (n(b) * A) | (n(a) * B),
        Op::Softmax(..) | Op::LogSoftmax(..) => OUT,
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
    }
    .min(A | B | C | OUT)
}

/// PyTorch's saved-tensor check: every value the rule of `node` reads must still be the one it
/// saw when the op was recorded.
fn check_versions(node: &Node, out: &Tensor) -> Result<()> {
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
fn check_finite(node: &Node, grads: &[Option<Tensor>]) -> Result<()> {
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
            let mut msg = format!(
                "Function '{}' returned {what} values in its {i}th output.",
                grad_fn_display(node.op.name())
            );
            match &node.trace {
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
                ViewKind::Slice { dim, start, step } => {
                    Tensor::zeros(x.shape().clone(), g.dtype(), g.device())?
                        .slice_scatter(g, *dim, *start, *step)?
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
        Op::Softmax(_, dim) => {
            let dot = g.mul(out)?.reduce_keepdim(ReduceOp::Sum, &[*dim])?;
            vec![some(out.mul(&g.sub(&dot)?)?)?]
        }
        Op::LogSoftmax(_, dim) => {
            let gs = g.reduce_keepdim(ReduceOp::Sum, &[*dim])?;
            vec![some(g.sub(&out.exp()?.mul(&gs)?)?)?]
        }
        // unfold and fold are each other's adjoints; padded positions get no gradient
        Op::Unfold(x, w, _) => vec![some(g.fold(*w, (x.dims()[2], x.dims()[3]))?)?],
        Op::Fold(_, w, _) => vec![some(g.unfold(*w, 0.0)?)?],
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
        Tensor::full_scalar(Scalar::Float(0.0), self.dtype(), self.device())
    }
}
