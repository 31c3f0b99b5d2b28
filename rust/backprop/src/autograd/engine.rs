//! The backward engine: a topological sort of the graph below the roots, then one reverse walk
//! that applies each node's gradient rule and accumulates into leaves (or captures for `grad`).

use super::function;
use super::hooks::{run_node_hooks, run_node_prehooks};
use super::rules::{backward_rule, check_finite, check_versions, grad_fn_display};
use super::{anomaly, grad_mode};
use crate::op::{BinaryOp, Op, ViewKind};
use crate::tensor::Node;
use crate::{Error, Result, Tensor, TensorId};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Tensor and node ids are unique integers handed out in sequence: a multiplicative hash of
/// the integer is all the tables of one backward need (SipHash was a tenth of a small graph's
/// backward).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;
type IdSet<K> = HashSet<K, BuildHasherDefault<IdHasher>>;

/// The backward engine. Returns the gradients of `capture` (when given) instead of accumulating
/// into `.grad` of leaves.
pub(super) fn run(
    roots: Vec<(Tensor, Tensor)>,
    retain: bool,
    create: bool,
    capture: Option<&[Tensor]>,
) -> Result<Option<Vec<Option<Tensor>>>> {
    // Gradient rules run in the dtypes their forward ops ran in (PyTorch: "backward ops run in
    // the same type that autocast used for corresponding forward ops").
    let _no_autocast = crate::autocast::suspend();
    // 1. topological order (post-order DFS, iterative)
    let mut order: Vec<(Tensor, Option<Node>)> = Vec::new();
    let mut visited: IdSet<TensorId> = IdSet::default();
    for (root, _) in &roots {
        if !visited.insert(root.id()) {
            continue;
        }
        // each frame holds its node's inputs, collected once; the frame stays put while its
        // children are pushed above it (moving a Node at every step was a hot memmove)
        let mut stack: Vec<(Tensor, Option<Node>, Vec<Tensor>, usize)> = Vec::new();
        let op = graph_op(root)?;
        let inputs = input_list(&op);
        stack.push((root.clone(), op, inputs, 0));
        while let Some(top) = stack.last_mut() {
            let next = top.3;
            if next < top.2.len() {
                top.3 += 1;
                let child = top.2[next].clone();
                if child.requires_grad() && visited.insert(child.id()) {
                    let cop = graph_op(&child)?;
                    let inputs = input_list(&cop);
                    stack.push((child, cop, inputs, 0));
                }
            } else if let Some((t, op, _, _)) = stack.pop() {
                order.push((t, op));
            }
        }
    }

    // A custom node runs once for all its outputs: after the last of them in the walk (each
    // output depends on all the node's inputs, so every output comes before any input).
    let mut pending: IdMap<u64, Pending> = IdMap::default();
    for (_, node) in &order {
        if let Some(Node {
            op: Op::Custom(n, _),
            ..
        }) = node
        {
            pending
                .entry(n.id())
                .or_insert_with(|| Pending {
                    grads: vec![None; n.n_outputs()],
                    remaining: 0,
                })
                .remaining += 1;
        }
    }

    let capture_ids: IdMap<TensorId, usize> = capture
        .map(|c| c.iter().enumerate().map(|(i, t)| (t.id(), i)).collect())
        .unwrap_or_default();
    let mut captured: Vec<Option<Tensor>> = vec![None; capture.map_or(0, |c| c.len())];

    // 2. reverse walk
    let _mode = grad_mode(create);
    let mut grads: IdMap<TensorId, Tensor> = IdMap::default();
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
        let g = match grads.remove(&t.id()) {
            Some(g) => Some(t.run_grad_hooks(g)?),
            None => None,
        };
        if let Some(g) = &g {
            if let Some(&i) = capture_ids.get(&t.id()) {
                captured[i] = Some(g.clone());
            } else if capture.is_none() && (t.is_leaf() || t.retains_grad()) {
                accumulate_into_grad(&t, g, create)?;
                if t.is_leaf() {
                    t.run_post_accumulate_hooks()?;
                }
            }
        }
        let Some(node) = op else { continue };
        if let Op::Custom(n, k) = &node.op {
            let Some(p) = pending.get_mut(&n.id()) else {
                continue;
            };
            if let Some(g) = g {
                p.grads[*k] = Some(match p.grads[*k].take() {
                    Some(old) => old.add(&g)?,
                    None => g,
                });
            }
            p.remaining -= 1;
            if p.remaining > 0 {
                continue;
            }
            let Some(p) = pending.remove(&n.id()) else {
                continue;
            };
            if p.grads.iter().all(Option::is_none) {
                continue;
            }
            let input_grads = function::run_backward(n, p.grads, retain)?;
            pass_on(&mut grads, n.inputs().iter(), input_grads)?;
            continue;
        }
        let Some(g) = g else { continue };
        check_versions(&node, &t)?;
        let g = match &node.hooks {
            None => g,
            Some(_) => match run_node_prehooks(node.hooks.as_ref(), vec![Some(g)])?.pop() {
                Some(Some(g)) => g,
                _ => continue,
            },
        };
        if !create && node.hooks.is_none() && !anomaly::is_enabled() {
            if let Op::View(x, ViewKind::Slice { dim, start, step }) = &node.op {
                if x.requires_grad() {
                    accumulate_slice(&mut grads, x, &g, *dim, *start, *step)?;
                }
                continue;
            }
        }
        let input_grads = backward_rule(&node.op, &t, &g)?;
        let input_grads = match &node.hooks {
            None => input_grads,
            Some(h) => run_node_hooks(Some(h), input_grads, &[Some(g)])?,
        };
        if anomaly::is_enabled() && anomaly::check_nan() {
            check_finite(
                &grad_fn_display(node.op.name()),
                node.trace.as_ref(),
                &input_grads,
            )?;
        }
        let op = node.op;
        if cfg!(debug_assertions) {
            for (x, gx) in op.inputs().into_iter().zip(&input_grads) {
                if let Some(gx) = gx {
                    debug_assert_eq!(
                        gx.shape(),
                        x.shape(),
                        "gradient of {} has the wrong shape",
                        op.name()
                    );
                }
            }
        }
        pass_on(&mut grads, op.inputs().into_iter(), input_grads)?;
    }

    Ok(capture.map(|_| captured))
}

/// A custom node's output gradients collected so far, and how many of its outputs the walk has
/// still to reach.
struct Pending {
    grads: Vec<Option<Tensor>>,
    remaining: usize,
}

/// Adds each input's gradient to what it has collected (inputs that need none are skipped).
fn pass_on<'a>(
    grads: &mut IdMap<TensorId, Tensor>,
    inputs: impl Iterator<Item = &'a Tensor>,
    input_grads: Vec<Option<Tensor>>,
) -> Result<()> {
    for (x, gx) in inputs.zip(input_grads) {
        if let Some(gx) = gx {
            if x.requires_grad() {
                accumulate(grads, x.id(), gx)?;
            }
        }
    }
    Ok(())
}

/// `.grad += g` for a leaf (or a `retain_grad` tensor).
pub(super) fn accumulate_into_grad(t: &Tensor, g: &Tensor, create: bool) -> Result<()> {
    // `.grad` is always dense, row-major and owned by this leaf alone (PyTorch's layout
    // contract): optimisers then take their fused path, and in-place changes to one leaf's
    // gradient (clipping, zero_) cannot leak into another's. A gradient that arrives as a view
    // (the transpose of a Linear weight's gradient) or that is shared (the two inputs of an add
    // get the same tensor) is copied once.
    let g = if g.is_contiguous() && g.is_exclusive() {
        g.clone()
    } else {
        g.contiguous_copy()?
    };
    let g = if create { g } else { g.detach() };
    let new = match t.grad() {
        Some(old) => old.add(&g)?,
        None => g,
    };
    t.set_grad(Some(new))
}

/// The op to walk through for `t`: `None` for leaves; an error if the graph was already freed.
fn input_list(op: &Option<Node>) -> Vec<Tensor> {
    op.as_ref()
        .map(|o| o.op.inputs().into_iter().cloned().collect())
        .unwrap_or_default()
}

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

fn accumulate(grads: &mut IdMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
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

/// The gradient of a slice (`narrow`, `split`, `chunk`, basic indexing) added into its base's.
/// The rule's form, the gradient padded with zeros to the base's shape and then added, costs the
/// whole base per slice: a loop over a sequence's T steps that takes one slice each (a recurrent
/// layer's split projection, the four gate chunks per step) then moved O(T^2) memory, most of an
/// LSTM's backward. Here the first slice to arrive gets the padded tensor, and later ones are
/// added into their region of it in place, O(slice) each. Only when the collected gradient is a
/// plain buffer nothing else holds (it is not differentiated: no `create_graph`), so the write
/// cannot be seen by anything but this walk; otherwise the general rule runs.
fn accumulate_slice(
    grads: &mut IdMap<TensorId, Tensor>,
    x: &Tensor,
    g: &Tensor,
    dim: usize,
    start: usize,
    step: usize,
) -> Result<()> {
    if let Some(old) = grads.get(&x.id()) {
        if old.is_exclusive()
            && !old.requires_grad()
            && old.dtype() == g.dtype()
            && old.device() == g.device()
            && old.shape() == x.shape()
        {
            old.slice_step(dim, start, g.dims()[dim], step)?
                .binary_(g, BinaryOp::Add)?;
            return Ok(());
        }
    }
    let padded = crate::indexing::slice_backward(x.shape(), g, dim, start, step)?;
    accumulate(grads, x.id(), padded)
}

pub(super) fn seed_grad(out: &Tensor, gradient: Option<&Tensor>, index: usize) -> Result<Tensor> {
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
