//! Reverse-mode automatic differentiation.
//!
//! `backward` sorts the graph below the output topologically (iteratively: graphs can be 10^5 ops
//! deep), then walks it once in reverse, applying each op's gradient rule. All rules are in the
//! one exhaustive `match` of [`backward_rule`], so a new primitive cannot silently lack a gradient.
//! Rules are written with tensor ops: with `create_graph` they record a graph of their own, which
//! is how second derivatives (grad of grad) work for every op.
//!
//! Around that core: custom functions with a backward of their own (`function`), hooks the
//! engine calls (`hooks`), the graph as node objects (`graph`), grad and inference modes
//! (`mode`), anomaly detection (`anomaly`).

pub mod anomaly;
mod engine;
pub mod function;
mod graph;
pub mod hooks;
mod mode;
mod rules;

pub use function::{apply, BackwardCtx, CustomBackward, Function, FunctionCtx};
pub use graph::{GradFn, NodeKey};
pub use hooks::HookHandle;
pub use mode::{
    grad_mode, inference_mode, is_grad_enabled, is_inference_mode_enabled, no_grad,
    set_grad_enabled, set_inference_mode_enabled, GradModeGuard, InferenceModeGuard,
};
pub(crate) use rules::saved_inputs;
pub use rules::{backward_rule, grad_fn_display};

use crate::{Error, Result, Tensor};
use engine::{accumulate_into_grad, run, seed_grad};

/// PyTorch's `torch.autograd.backward`: one backward pass from all of `tensors` at once (a
/// tensor reached from two roots gets the sum, and its hooks run once). With `inputs`, only
/// those tensors' `.grad` is accumulated into (leaves or not).
pub fn backward(
    tensors: &[Tensor],
    grad_tensors: Option<&[Option<Tensor>]>,
    retain_graph: Option<bool>,
    create_graph: bool,
    inputs: Option<&[Tensor]>,
) -> Result<()> {
    if let Some(g) = grad_tensors {
        if g.len() != tensors.len() {
            return Err(Error::Autograd(format!(
                "backward: got {} grad_tensors for {} tensors",
                g.len(),
                tensors.len()
            )));
        }
    }
    let mut roots = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let g = grad_tensors.and_then(|g| g[i].as_ref());
        roots.push((t.clone(), seed_grad(t, g, i)?));
    }
    let retain = retain_graph.unwrap_or(create_graph);
    let Some(inputs) = inputs else {
        return run(roots, retain, create_graph, None).map(|_| ());
    };
    if inputs.is_empty() {
        return Err(Error::Autograd(
            "'inputs' argument to backward() cannot be empty".into(),
        ));
    }
    if let Some(i) = inputs.iter().position(|x| !x.requires_grad()) {
        return Err(Error::Autograd(format!(
            "backward: input {i} in 'inputs' does not require grad"
        )));
    }
    let got = run(roots, retain, create_graph, Some(inputs))?.unwrap_or_default();
    for (x, g) in inputs.iter().zip(got) {
        if let Some(g) = g {
            accumulate_into_grad(x, &g, create_graph)?;
            if x.is_leaf() {
                x.run_post_accumulate_hooks()?;
            }
        }
    }
    Ok(())
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
