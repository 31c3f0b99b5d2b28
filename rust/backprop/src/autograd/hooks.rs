//! Hooks: user code the backward engine calls while it runs.
//!
//! Two places hold them, as in PyTorch:
//! - a tensor ([`Tensor::register_hook`], [`Tensor::register_post_accumulate_grad_hook`]): the
//!   gradient with respect to that tensor, before it is accumulated or passed on;
//! - a graph node ([`GradFn::register_prehook`](super::GradFn::register_prehook),
//!   [`GradFn::register_hook`](super::GradFn::register_hook)): the gradients of the node's
//!   outputs before its rule runs, and the gradients it produced for its inputs after.
//!
//! Unused hooks cost one `Option` check per tensor the engine visits: the lists are allocated
//! on the first registration only.
//!
//! A hook that fails returns an error; for errors raised by the embedding program's own code
//! (a Python exception), [`Error::Callback`] carries them through the engine unchanged.

use crate::{Error, Result, Tensor};
use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// Called with the gradient of a tensor; may return a replacement (same shape, dtype, device).
pub type TensorHook = Arc<dyn Fn(&Tensor) -> Result<Option<Tensor>> + Send + Sync>;
/// Called with a leaf after its `.grad` was accumulated.
pub type PostAccumulateGradHook = Arc<dyn Fn(&Tensor) -> Result<()> + Send + Sync>;
/// Called with the gradients of a node's outputs before its rule runs; may replace them.
pub type NodePreHook =
    Arc<dyn Fn(&[Option<Tensor>]) -> Result<Option<Vec<Option<Tensor>>>> + Send + Sync>;
/// Called with (gradients the node produced for its inputs, gradients of its outputs) after its
/// rule ran; may replace the former.
pub type NodeHook = Arc<
    dyn Fn(&[Option<Tensor>], &[Option<Tensor>]) -> Result<Option<Vec<Option<Tensor>>>>
        + Send
        + Sync,
>;

static NEXT_HOOK: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_HOOK.fetch_add(1, Ordering::Relaxed)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Hooks registered on one tensor.
#[derive(Default)]
pub(crate) struct TensorHooks {
    pre: Vec<(u64, TensorHook)>,
    post_accumulate: Vec<(u64, PostAccumulateGradHook)>,
}

/// Hooks registered on one graph node, and data the embedding program keeps with the node (the
/// Python binding keeps `grad_fn.metadata` there, so it lives as long as the node).
#[derive(Default)]
pub(crate) struct NodeHookList {
    pub(crate) pre: Vec<(u64, NodePreHook)>,
    pub(crate) post: Vec<(u64, NodeHook)>,
    pub(crate) data: Option<Arc<dyn Any + Send + Sync>>,
}

pub(crate) type NodeHooks = Mutex<NodeHookList>;

enum Target {
    Tensor(Weak<Mutex<TensorHooks>>),
    Node(Weak<NodeHooks>),
}

/// What a `register_*hook` returns: [`remove`](Self::remove) unregisters the hook. Holds its
/// target weakly, so a handle never keeps a tensor or a graph alive.
pub struct HookHandle {
    id: u64,
    target: Target,
}

impl HookHandle {
    /// Unregisters the hook; a second call (or a call after the target died) does nothing.
    pub fn remove(&self) {
        match &self.target {
            Target::Tensor(w) => {
                if let Some(t) = w.upgrade() {
                    let mut h = lock(&t);
                    h.pre.retain(|(i, _)| *i != self.id);
                    h.post_accumulate.retain(|(i, _)| *i != self.id);
                }
            }
            Target::Node(w) => {
                if let Some(n) = w.upgrade() {
                    let mut l = lock(&n);
                    l.pre.retain(|(i, _)| *i != self.id);
                    l.post.retain(|(i, _)| *i != self.id);
                }
            }
        }
    }

    /// A number unique to this registration.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Tensor {
    /// Registers `hook`, called with the gradient with respect to this tensor each time one is
    /// computed (PyTorch's `Tensor.register_hook`). Returning `Some(g)` replaces the gradient;
    /// hooks run in registration order, each seeing the previous one's result, before the
    /// gradient is accumulated into `.grad` (leaves and `retain_grad` tensors) or passed on.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], [2], Device::Cpu)?.requires_grad_(true)?;
    /// let _h = x.register_hook(|g| Ok(Some(g.mul_scalar(10.0)?)))?;
    /// x.mul_scalar(3.0)?.sum_all()?.backward()?;
    /// assert_eq!(x.grad().unwrap().to_vec::<f32>()?, vec![30.0, 30.0]);
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn register_hook(
        &self,
        hook: impl Fn(&Tensor) -> Result<Option<Tensor>> + Send + Sync + 'static,
    ) -> Result<HookHandle> {
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "cannot register a hook on a tensor that doesn't require gradient".into(),
            ));
        }
        let id = next_id();
        let lists = self.hook_lists();
        lock(&lists).pre.push((id, Arc::new(hook)));
        Ok(HookHandle {
            id,
            target: Target::Tensor(Arc::downgrade(&lists)),
        })
    }

    /// Registers `hook`, called with this leaf after a backward accumulated into its `.grad`
    /// (PyTorch's `register_post_accumulate_grad_hook`; not called by `autograd::grad`).
    pub fn register_post_accumulate_grad_hook(
        &self,
        hook: impl Fn(&Tensor) -> Result<()> + Send + Sync + 'static,
    ) -> Result<HookHandle> {
        if !self.requires_grad() {
            return Err(Error::Autograd(
                "cannot register a hook on a tensor that doesn't require gradient".into(),
            ));
        }
        if !self.is_leaf() {
            return Err(Error::Autograd(
                "post accumulate grad hooks cannot be registered on non-leaf tensors".into(),
            ));
        }
        let id = next_id();
        let lists = self.hook_lists();
        lock(&lists).post_accumulate.push((id, Arc::new(hook)));
        Ok(HookHandle {
            id,
            target: Target::Tensor(Arc::downgrade(&lists)),
        })
    }

    /// Runs this tensor's gradient hooks on `g` (the engine's step for every tensor it visits).
    pub(crate) fn run_grad_hooks(&self, mut g: Tensor) -> Result<Tensor> {
        let Some(hooks) = self.hooks_snapshot(|h| {
            h.pre
                .iter()
                .map(|(_, f)| f.clone())
                .collect::<Vec<TensorHook>>()
        }) else {
            return Ok(g);
        };
        for f in hooks {
            if let Some(new) = f(&g)? {
                check_replacement("hook", &g, &new)?;
                g = new;
            }
        }
        Ok(g)
    }

    pub(crate) fn run_post_accumulate_hooks(&self) -> Result<()> {
        let Some(hooks) = self.hooks_snapshot(|h| {
            h.post_accumulate
                .iter()
                .map(|(_, f)| f.clone())
                .collect::<Vec<_>>()
        }) else {
            return Ok(());
        };
        for f in hooks {
            f(self)?;
        }
        Ok(())
    }
}

/// A hook's replacement gradient must stand where the original did.
pub(crate) fn check_replacement(what: &str, old: &Tensor, new: &Tensor) -> Result<()> {
    if new.shape() != old.shape() {
        return Err(Error::Autograd(format!(
            "{what} has changed the size of value: the gradient had shape {} and the hook returned shape {}",
            old.shape(),
            new.shape()
        )));
    }
    if new.dtype() != old.dtype() {
        return Err(Error::Autograd(format!(
            "{what} has changed the type of value: the gradient had dtype {} and the hook returned dtype {}",
            old.dtype(),
            new.dtype()
        )));
    }
    if new.device() != old.device() {
        return Err(Error::Autograd(format!(
            "{what} has changed the device of value: the gradient was on {} and the hook returned a tensor on {}",
            old.device(),
            new.device()
        )));
    }
    Ok(())
}

/// Registers a hook on the node list `hooks` (shared by the node's clones).
pub(crate) fn add_node_prehook(hooks: &Arc<NodeHooks>, f: NodePreHook) -> HookHandle {
    let id = next_id();
    lock(hooks).pre.push((id, f));
    HookHandle {
        id,
        target: Target::Node(Arc::downgrade(hooks)),
    }
}

pub(crate) fn add_node_hook(hooks: &Arc<NodeHooks>, f: NodeHook) -> HookHandle {
    let id = next_id();
    lock(hooks).post.push((id, f));
    HookHandle {
        id,
        target: Target::Node(Arc::downgrade(hooks)),
    }
}

/// Runs a node's pre-hooks on the gradients of its outputs.
pub(crate) fn run_node_prehooks(
    hooks: Option<&Arc<NodeHooks>>,
    mut grads: Vec<Option<Tensor>>,
) -> Result<Vec<Option<Tensor>>> {
    let Some(h) = hooks else { return Ok(grads) };
    let fs: Vec<NodePreHook> = lock(h).pre.iter().map(|(_, f)| f.clone()).collect();
    for f in fs {
        if let Some(new) = f(&grads)? {
            grads = check_replacements("prehook", &grads, new)?;
        }
    }
    Ok(grads)
}

/// Runs a node's hooks on (gradients it produced for its inputs, gradients of its outputs).
pub(crate) fn run_node_hooks(
    hooks: Option<&Arc<NodeHooks>>,
    mut grad_inputs: Vec<Option<Tensor>>,
    grad_outputs: &[Option<Tensor>],
) -> Result<Vec<Option<Tensor>>> {
    let Some(h) = hooks else {
        return Ok(grad_inputs);
    };
    let fs: Vec<NodeHook> = lock(h).post.iter().map(|(_, f)| f.clone()).collect();
    for f in fs {
        if let Some(new) = f(&grad_inputs, grad_outputs)? {
            grad_inputs = check_replacements("hook", &grad_inputs, new)?;
        }
    }
    Ok(grad_inputs)
}

fn check_replacements(
    what: &str,
    old: &[Option<Tensor>],
    new: Vec<Option<Tensor>>,
) -> Result<Vec<Option<Tensor>>> {
    if new.len() != old.len() {
        return Err(Error::Autograd(format!(
            "{what} returned {} gradients where {} were expected",
            new.len(),
            old.len()
        )));
    }
    for (o, n) in old.iter().zip(&new) {
        if let (Some(o), Some(n)) = (o, n) {
            check_replacement(what, o, n)?;
        }
    }
    Ok(new)
}

pub(crate) fn node_data(hooks: &Arc<NodeHooks>) -> Option<Arc<dyn Any + Send + Sync>> {
    lock(hooks).data.clone()
}

pub(crate) fn set_node_data(hooks: &Arc<NodeHooks>, data: Arc<dyn Any + Send + Sync>) {
    lock(hooks).data = Some(data);
}
