//! Custom functions: an op whose forward runs outside the graph and whose backward is the user's
//! (PyTorch's `torch.autograd.Function`).
//!
//! Two levels. [`Function`] is what a Rust user implements: `forward` with a [`FunctionCtx`] to
//! save tensors in, `backward` from the gradients of the outputs; [`apply`] runs it and records
//! it. [`record`] is the step underneath, for callers that run the forward themselves (the
//! Python binding runs a Python `forward`): it takes the outputs already computed and gives back
//! the tensors that carry the new node. Either way the node is [`Op::Custom`]: one node shared
//! by all its outputs, whose backward the engine calls once, after every output's gradient is
//! known.
//!
//! Saved tensors are kept by the node, not by the user, so that they get PyTorch's checks (a
//! saved value modified in place since is an error naming its versions; saved values are freed
//! by a backward without `retain_graph`) and so that saving an output does not make a cycle
//! (output -> node -> saved output): an output is saved without its history and given it back
//! when unpacked for a differentiable backward.

use super::hooks::{run_node_hooks, run_node_prehooks, NodeHooks};
use super::rules::check_finite;
use crate::op::Op;
use crate::{DType, Device, Error, Result, Shape, Tensor, TensorId};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The backward of a recorded custom function.
pub trait CustomBackward: Send + Sync {
    /// Gradients with respect to each input (in the order they were recorded; `None` for no
    /// gradient) from the saved tensors and the gradients of the outputs (`None` for an output
    /// that got none, unless the node materialises them as zeros).
    fn backward(
        &self,
        saved: &[Option<Tensor>],
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>>;
}

/// A custom function as a Rust user writes it.
///
/// ```
/// use backprop::autograd::{apply, Function, FunctionCtx, BackwardCtx};
/// use backprop::{Tensor, Device, Result};
///
/// /// y = x^3, with its derivative written by hand.
/// struct Cube;
/// impl Function for Cube {
///     fn forward(&self, ctx: &mut FunctionCtx, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
///         ctx.save_for_backward(&inputs[..1]);
///         Ok(vec![inputs[0].mul(&inputs[0])?.mul(&inputs[0])?])
///     }
///     fn backward(&self, ctx: &BackwardCtx, grads: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
///         let x = ctx.saved_tensors()[0].clone().unwrap();
///         Ok(vec![Some(grads[0].mul(&x.mul(&x)?.mul_scalar(3.0)?)?)])
///     }
/// }
///
/// let x = Tensor::from_vec(vec![2.0f32], [1], Device::Cpu)?.requires_grad_(true)?;
/// let y = apply(Cube, &[x.clone()])?.remove(0);
/// assert_eq!(y.grad_fn().unwrap().name(), "CubeBackward");
/// y.sum_all()?.backward()?;
/// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![12.0]);
/// # Ok::<(), backprop::Error>(())
/// ```
pub trait Function: Send + Sync + 'static {
    /// The node's name in `grad_fn` (default: the type's name followed by `Backward`).
    fn name(&self) -> String {
        let full = std::any::type_name::<Self>();
        let short = full.rsplit("::").next().unwrap_or(full);
        format!("{short}Backward")
    }

    /// Computes the outputs (grad recording is off inside).
    fn forward(&self, ctx: &mut FunctionCtx, inputs: &[Tensor]) -> Result<Vec<Tensor>>;

    /// Gradients with respect to each input from the gradients of the outputs (zeros for an
    /// output that got none). Runs with grad recording on under `create_graph`, so a backward
    /// written with differentiable ops gives second derivatives.
    fn backward(&self, ctx: &BackwardCtx, grad_outputs: &[Tensor]) -> Result<Vec<Option<Tensor>>>;
}

/// What `Function::forward` can tell the engine about its outputs.
#[derive(Default)]
pub struct FunctionCtx {
    saved: Vec<Option<Tensor>>,
    dirty: Vec<TensorId>,
    non_differentiable: Vec<TensorId>,
    needs_input_grad: Vec<bool>,
}

impl FunctionCtx {
    /// Keeps tensors (inputs or outputs) for backward, with PyTorch's checks on unpacking.
    pub fn save_for_backward(&mut self, tensors: &[Tensor]) {
        self.saved = tensors.iter().cloned().map(Some).collect();
    }
    /// Declares inputs that `forward` modified in place (and returns as outputs).
    pub fn mark_dirty(&mut self, tensors: &[Tensor]) {
        self.dirty = tensors.iter().map(Tensor::id).collect();
    }
    /// Declares outputs that get no gradient (indices, masks).
    pub fn mark_non_differentiable(&mut self, tensors: &[Tensor]) {
        self.non_differentiable = tensors.iter().map(Tensor::id).collect();
    }
    /// Whether input `i` requires grad (so its gradient is needed).
    pub fn needs_input_grad(&self, i: usize) -> bool {
        self.needs_input_grad.get(i).copied().unwrap_or(false)
    }
}

/// What `Function::backward` gets besides the gradients.
pub struct BackwardCtx<'a> {
    saved: &'a [Option<Tensor>],
    needs_input_grad: &'a [bool],
}

impl BackwardCtx<'_> {
    /// The tensors saved by `forward`, checked: an error had any been modified in place since.
    pub fn saved_tensors(&self) -> &[Option<Tensor>] {
        self.saved
    }
    /// Whether input `i` needs a gradient (one returned for another input is dropped).
    pub fn needs_input_grad(&self, i: usize) -> bool {
        self.needs_input_grad.get(i).copied().unwrap_or(false)
    }
}

struct Adapter<F: Function> {
    f: F,
    needs_input_grad: Vec<bool>,
}

impl<F: Function> CustomBackward for Adapter<F> {
    fn backward(
        &self,
        saved: &[Option<Tensor>],
        grad_outputs: &[Option<Tensor>],
    ) -> Result<Vec<Option<Tensor>>> {
        // the node materialises missing gradients, so every entry is present
        let grads: Vec<Tensor> = grad_outputs.iter().flatten().cloned().collect();
        if grads.len() != grad_outputs.len() {
            return Err(Error::Autograd(format!(
                "{}: a gradient was not materialised",
                self.f.name()
            )));
        }
        let ctx = BackwardCtx {
            saved,
            needs_input_grad: &self.needs_input_grad,
        };
        self.f.backward(&ctx, &grads)
    }
}

/// Runs `f` on `inputs` and records it in the graph (when grad mode is on and an input
/// requires grad). Returns the outputs.
pub fn apply<F: Function>(f: F, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    let mut ctx = FunctionCtx {
        needs_input_grad: inputs
            .iter()
            .map(|t| super::is_grad_enabled() && t.requires_grad())
            .collect(),
        ..FunctionCtx::default()
    };
    let outputs = {
        let _g = super::no_grad();
        f.forward(&mut ctx, inputs)?
    };
    let dirty: Vec<bool> = outputs
        .iter()
        .map(|o| ctx.dirty.contains(&o.id()))
        .collect();
    if let Some(d) = ctx
        .dirty
        .iter()
        .find(|d| !outputs.iter().any(|o| o.id() == **d))
    {
        let _ = d;
        return Err(Error::Autograd(format!(
            "{}: some tensors marked as dirty during forward were not returned as outputs",
            f.name()
        )));
    }
    let non_differentiable: Vec<bool> = outputs
        .iter()
        .map(|o| ctx.non_differentiable.contains(&o.id()))
        .collect();
    let name = f.name();
    record(
        Record {
            name: &name,
            inputs,
            outputs: &outputs,
            saved: &ctx.saved,
            dirty: &dirty,
            non_differentiable: &non_differentiable,
            materialize_grads: true,
        },
        Box::new(Adapter {
            needs_input_grad: ctx.needs_input_grad,
            f,
        }),
    )
}

/// A custom function's forward, already run: what [`record`] turns into a node.
pub struct Record<'a> {
    /// Display name of the node (`"MyFunctionBackward"`).
    pub name: &'a str,
    /// The tensors the function read that may get a gradient, in the order the backward returns
    /// gradients for them.
    pub inputs: &'a [Tensor],
    /// The tensors `forward` returned.
    pub outputs: &'a [Tensor],
    /// Tensors kept for backward (inputs or outputs); `None` entries stay `None`.
    pub saved: &'a [Option<Tensor>],
    /// Per output: it is an input that `forward` modified in place.
    pub dirty: &'a [bool],
    /// Per output: it gets no gradient.
    pub non_differentiable: &'a [bool],
    /// Missing output gradients reach the backward as zeros (PyTorch's default) rather than
    /// `None`.
    pub materialize_grads: bool,
}

struct OutputInfo {
    shape: Shape,
    dtype: DType,
    device: Device,
    differentiable: bool,
}

struct Saved {
    tensor: Tensor,
    version: u64,
    /// The output it is (saved without its history, which is this node).
    output: Option<usize>,
}

/// The node of a recorded custom function, shared by its outputs.
pub struct CustomNode {
    id: u64,
    name: &'static str,
    backward: Box<dyn CustomBackward>,
    inputs: Vec<Tensor>,
    outputs: Vec<OutputInfo>,
    /// `None` once a backward without `retain_graph` has run this node.
    saved: Mutex<Option<Vec<Option<Saved>>>>,
    materialize_grads: bool,
    trace: Option<Arc<str>>,
    pub(crate) hooks: Arc<NodeHooks>,
}

impl std::fmt::Debug for CustomNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.name)
    }
}

static NEXT_NODE: AtomicU64 = AtomicU64::new(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Op::name` is `&'static str`; a function's name is made once per distinct name.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut g = lock(&NAMES);
    let set = g.get_or_insert_with(HashSet::new);
    if let Some(s) = set.get(name) {
        return s;
    }
    let s: &'static str = Box::leak(name.to_string().into_boxed_str());
    set.insert(s);
    s
}

impl CustomNode {
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
    pub(crate) fn id(&self) -> u64 {
        self.id
    }
    pub(crate) fn inputs(&self) -> &[Tensor] {
        &self.inputs
    }
    pub(crate) fn n_outputs(&self) -> usize {
        self.outputs.len()
    }
    /// What the node holds that may hold graphs (freed iteratively by `TensorImpl::drop`).
    pub(crate) fn into_inputs(self) -> Vec<Tensor> {
        let mut v = self.inputs;
        if let Some(saved) = self.saved.into_inner().unwrap_or_else(|e| e.into_inner()) {
            v.extend(saved.into_iter().flatten().map(|s| s.tensor));
        }
        v
    }

    /// The saved tensors, checked against in-place changes; a saved output gets this node back
    /// as its history when the backward is itself recorded (`create_graph`).
    fn unpack(self: &Arc<Self>) -> Result<Vec<Option<Tensor>>> {
        let guard = lock(&self.saved);
        let Some(saved) = guard.as_ref() else {
            return Err(Error::Autograd(format!(
                "{}: trying to backward through the graph a second time (or directly access saved tensors after they have already been freed); saved values are freed by backward() and autograd.grad(): specify retain_graph=True to backward through the graph a second time",
                self.name
            )));
        };
        let recording = super::is_grad_enabled();
        let mut out = Vec::with_capacity(saved.len());
        for (i, s) in saved.iter().enumerate() {
            let Some(s) = s else {
                out.push(None);
                continue;
            };
            let now = s.tensor.version();
            if now != s.version {
                let what = match s.output {
                    Some(k) => format!("output {k}"),
                    None => format!("saved tensor {i}"),
                };
                return Err(Error::Autograd(format!(
                    "one of the variables needed for gradient computation has been modified by an inplace operation: [{} {}], which is {what} of {}, is at version {now}; expected version {} instead. Hint: the operation that modified it ran after this one was recorded; use an out-of-place op (or .clone() the value) there",
                    s.tensor.dtype(),
                    s.tensor.shape(),
                    self.name,
                    s.version
                )));
            }
            out.push(Some(match s.output {
                Some(k) if recording && self.outputs[k].differentiable => {
                    s.tensor.with_recorded(Op::Custom(self.clone(), k), false)
                }
                _ => s.tensor.clone(),
            }));
        }
        Ok(out)
    }

    /// The saved tensors without checks or history, for inspection (`None` once freed).
    pub fn saved_tensors(&self) -> Option<Vec<Option<Tensor>>> {
        lock(&self.saved).as_ref().map(|v| {
            v.iter()
                .map(|s| s.as_ref().map(|s| s.tensor.clone()))
                .collect()
        })
    }
}

/// Records a custom function whose forward produced `rec.outputs` from `rec.inputs`: returns the
/// tensors that stand for the outputs (the same values, with the new node as history). Nothing
/// is recorded when grad mode is off or no input requires grad; outputs come back unchanged.
pub fn record(rec: Record<'_>, backward: Box<dyn CustomBackward>) -> Result<Vec<Tensor>> {
    let n = rec.outputs.len();
    if rec.dirty.len() != n || rec.non_differentiable.len() != n {
        return Err(Error::invalid(
            "autograd.Function",
            "dirty and non_differentiable need one flag per output",
        ));
    }
    for (k, o) in rec.outputs.iter().enumerate() {
        if rec.dirty[k] && !rec.inputs.iter().any(|x| x.id() == o.id()) {
            return Err(Error::Autograd(format!(
                "{}: output {k} was marked dirty but is not an input (mark_dirty takes the inputs that forward modified in place)",
                rec.name
            )));
        }
    }
    let recording = super::is_grad_enabled() && rec.inputs.iter().any(Tensor::requires_grad);
    if !recording {
        return Ok(rec.outputs.to_vec());
    }
    for (k, o) in rec.outputs.iter().enumerate() {
        if !rec.dirty[k] {
            continue;
        }
        if o.is_leaf() && o.requires_grad() {
            return Err(Error::Autograd(format!(
                "{}: a leaf tensor that requires grad has been used in an in-place operation (it was marked dirty)",
                rec.name
            )));
        }
        if o.is_view() {
            return Err(Error::Autograd(format!(
                "{}: output {k} is a view modified in place (marked dirty); backprop_rs does not rewrite the history of the viewed tensor, so this is refused; modify the tensor itself",
                rec.name
            )));
        }
    }
    for s in rec.saved.iter().flatten() {
        if s.is_inference() {
            return Err(Error::Autograd(format!(
                "{}: inference tensors cannot be saved for backward; make a clone() outside inference_mode and use that",
                rec.name
            )));
        }
    }
    let out_pos = |t: &Tensor| rec.outputs.iter().position(|o| o.id() == t.id());
    let saved: Vec<Option<Saved>> = rec
        .saved
        .iter()
        .map(|s| {
            s.as_ref().map(|t| match out_pos(t) {
                Some(k) => Saved {
                    tensor: t.detach(),
                    version: t.version(),
                    output: Some(k),
                },
                None => Saved {
                    tensor: t.clone(),
                    version: t.version(),
                    output: None,
                },
            })
        })
        .collect();
    let outputs: Vec<OutputInfo> = rec
        .outputs
        .iter()
        .enumerate()
        .map(|(k, o)| OutputInfo {
            shape: o.shape().clone(),
            dtype: o.dtype(),
            device: o.device(),
            differentiable: !rec.non_differentiable[k] && o.dtype().is_float(),
        })
        .collect();
    let node = Arc::new(CustomNode {
        id: NEXT_NODE.fetch_add(1, Ordering::Relaxed),
        name: intern(rec.name),
        backward,
        inputs: rec.inputs.to_vec(),
        outputs,
        saved: Mutex::new(Some(saved)),
        materialize_grads: rec.materialize_grads,
        trace: super::anomaly::trace(),
        hooks: Arc::default(),
    });
    let mut seen: HashSet<TensorId> = HashSet::new();
    Ok(rec
        .outputs
        .iter()
        .enumerate()
        .map(|(k, o)| {
            if !node.outputs[k].differentiable {
                return o.detach();
            }
            // an input returned unchanged (or one output returned twice) becomes an alias, so
            // that the input keeps its own history
            let aliases_input = !rec.dirty[k] && rec.inputs.iter().any(|x| x.id() == o.id());
            let repeated = !seen.insert(o.id());
            o.with_recorded(Op::Custom(node.clone(), k), aliases_input || repeated)
        })
        .collect())
}

/// The engine's call of a custom node, once the gradients of all its outputs are known:
/// pre-hooks, materialise, the user's backward, checks, hooks.
pub(crate) fn run_backward(
    node: &Arc<CustomNode>,
    grads: Vec<Option<Tensor>>,
    retain: bool,
) -> Result<Vec<Option<Tensor>>> {
    // pre-hooks see the gradients as they arrived (None where an output got none), as in
    // PyTorch, where materialising is part of the function's own call
    let grads = run_node_prehooks(Some(&node.hooks), grads)?;
    let grads = if node.materialize_grads {
        grads
            .into_iter()
            .zip(&node.outputs)
            .map(|(g, o)| match g {
                Some(g) => Ok(Some(g)),
                None => Tensor::zeros(o.shape.clone(), o.dtype, o.device).map(Some),
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        grads
    };
    let saved = node.unpack()?;
    let got = node.backward.backward(&saved, &grads)?;
    if got.len() != node.inputs.len() {
        return Err(Error::Autograd(format!(
            "function {} returned an incorrect number of gradients (expected {}, got {})",
            node.name,
            node.inputs.len(),
            got.len()
        )));
    }
    let mut checked = Vec::with_capacity(got.len());
    for (i, (x, g)) in node.inputs.iter().zip(got).enumerate() {
        checked.push(match g {
            Some(g) if x.requires_grad() => Some(fit_gradient(node.name, i, x, g)?),
            _ => None,
        });
    }
    let checked = run_node_hooks(Some(&node.hooks), checked, &grads)?;
    if super::anomaly::is_enabled() && super::anomaly::check_nan() {
        check_finite(node.name, node.trace.as_ref(), &checked)?;
    }
    if !retain {
        *lock(&node.saved) = None;
    }
    Ok(checked)
}

/// PyTorch's validation of a custom backward's gradient: a gradient the input's shape
/// broadcasts to is summed down to it; another dtype is cast; any other shape is an error.
fn fit_gradient(name: &str, i: usize, x: &Tensor, g: Tensor) -> Result<Tensor> {
    let g = if g.shape() != x.shape() {
        let fits = Shape::broadcast("autograd.Function", x.shape(), g.shape())
            .map(|b| &b == g.shape())
            .unwrap_or(false);
        if !fits {
            return Err(Error::Autograd(format!(
                "function {name} returned an invalid gradient at index {i} - got {} but expected shape compatible with {}",
                g.shape(),
                x.shape()
            )));
        }
        g.sum_to_shape(x.shape())?
    } else {
        g
    };
    if g.device() != x.device() {
        return Err(Error::Autograd(format!(
            "function {name} returned an invalid gradient at index {i} - expected device {} but got {}",
            x.device(),
            g.device()
        )));
    }
    if g.dtype() != x.dtype() {
        return g.to_dtype(x.dtype());
    }
    Ok(g)
}
