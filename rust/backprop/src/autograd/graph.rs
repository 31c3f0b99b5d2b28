//! The graph as objects (PyTorch's `grad_fn` nodes): walk it with
//! [`GradFn::next_functions`], hook into it, name its nodes.
//!
//! The engine's graph is kept on the tensors (each non-leaf holds the op that made it); a
//! [`GradFn`] is a handle on one node of it. Leaves that require grad appear as
//! `AccumulateGrad` nodes, as in PyTorch.

use super::function::CustomNode;
use super::hooks::{self, HookHandle, NodeHookList, NodeHooks};
use crate::op::Op;
use crate::{Error, Result, Tensor};
use std::any::Any;
use std::sync::{Arc, Mutex};

/// A node of the graph.
#[derive(Clone)]
pub enum GradFn {
    /// The node of the primitive op that made this tensor.
    Op(Tensor),
    /// A custom function's node (shared by all its outputs).
    Custom(Arc<CustomNode>),
    /// Accumulates into the `.grad` of this leaf.
    AccumulateGrad(Tensor),
}

/// Identity of a node: equal keys are the same node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeKey(u8, u64);

impl Tensor {
    /// The node that made this tensor (PyTorch's `grad_fn`); `None` for leaves.
    ///
    /// ```
    /// # use backprop::{Tensor, Device};
    /// let x = Tensor::from_vec(vec![1.0f32, 2.0], [2], Device::Cpu)?.requires_grad_(true)?;
    /// let y = x.mul_scalar(2.0)?.exp()?;
    /// let f = y.grad_fn().unwrap();
    /// assert_eq!(f.name(), "ExpBackward0");
    /// let (mul, _) = f.next_functions()?.remove(0);
    /// assert_eq!(mul.as_ref().unwrap().name(), "MulBackward0");
    /// let (acc, _) = mul.unwrap().next_functions()?.remove(0);
    /// assert_eq!(acc.unwrap().variable().unwrap().id(), x.id());
    /// # Ok::<(), backprop::Error>(())
    /// ```
    pub fn grad_fn(&self) -> Option<GradFn> {
        if self.is_leaf() {
            return None;
        }
        match self.op() {
            Some(Op::Custom(n, _)) => Some(GradFn::Custom(n)),
            _ => Some(GradFn::Op(self.clone())),
        }
    }

    /// The edge into the graph for gradients flowing to this tensor: its node and which output
    /// of that node it is; `None` when it does not require grad.
    pub fn gradient_edge(&self) -> Option<(GradFn, usize)> {
        if !self.requires_grad() {
            return None;
        }
        if self.is_leaf() {
            return Some((GradFn::AccumulateGrad(self.clone()), 0));
        }
        match self.op() {
            Some(Op::Custom(n, k)) => Some((GradFn::Custom(n), k)),
            _ => Some((GradFn::Op(self.clone()), 0)),
        }
    }
}

impl GradFn {
    /// PyTorch's name for the node: `MulBackward0`, `MyFunctionBackward`, `AccumulateGrad`.
    pub fn name(&self) -> String {
        match self {
            GradFn::Op(t) => t.grad_fn_display_name().unwrap_or_default(),
            GradFn::Custom(n) => n.name().to_string(),
            GradFn::AccumulateGrad(_) => "AccumulateGrad".into(),
        }
    }

    /// Equal for handles on the same node.
    pub fn key(&self) -> NodeKey {
        match self {
            GradFn::Op(t) => NodeKey(0, t.id().0),
            GradFn::Custom(n) => NodeKey(1, n.id()),
            GradFn::AccumulateGrad(t) => NodeKey(2, t.id().0),
        }
    }

    /// The nodes gradients go to next, one per input of this node: `(node, which output of it)`,
    /// `None` for inputs that need no gradient. Empty for `AccumulateGrad`. An error once a
    /// backward without `retain_graph` has freed this part of the graph.
    pub fn next_functions(&self) -> Result<Vec<(Option<GradFn>, usize)>> {
        let edges = |inputs: &[&Tensor]| {
            inputs
                .iter()
                .map(|x| match x.gradient_edge() {
                    Some((f, k)) => (Some(f), k),
                    None => (None, 0),
                })
                .collect()
        };
        match self {
            GradFn::Op(t) => match t.op() {
                Some(op) => Ok(edges(&op.inputs())),
                None => Err(freed(&self.name())),
            },
            GradFn::Custom(n) => Ok(edges(&n.inputs().iter().collect::<Vec<_>>())),
            GradFn::AccumulateGrad(_) => Ok(Vec::new()),
        }
    }

    /// The leaf of an `AccumulateGrad` node.
    pub fn variable(&self) -> Option<Tensor> {
        match self {
            GradFn::AccumulateGrad(t) => Some(t.clone()),
            _ => None,
        }
    }

    /// Registers `hook`, called with the gradients of this node's outputs before it runs
    /// (PyTorch's `Node.register_prehook`); returning `Some` replaces them.
    pub fn register_prehook(&self, hook: hooks::NodePreHook) -> Result<HookHandle> {
        match self {
            GradFn::AccumulateGrad(t) => t.register_hook(move |g| {
                Ok(hook(&[Some(g.clone())])?.and_then(|mut v| v.pop().flatten()))
            }),
            _ => Ok(hooks::add_node_prehook(&self.hook_list()?, hook)),
        }
    }

    /// Registers `hook`, called with (gradients this node produced for its inputs, gradients of
    /// its outputs) after it runs (PyTorch's `Node.register_hook`); returning `Some` replaces
    /// the former. On an `AccumulateGrad` node it runs before the gradient is accumulated and
    /// cannot replace it.
    pub fn register_hook(&self, hook: hooks::NodeHook) -> Result<HookHandle> {
        match self {
            GradFn::AccumulateGrad(t) => t.register_hook(move |g| {
                hook(&[], &[Some(g.clone())])?;
                Ok(None)
            }),
            _ => Ok(hooks::add_node_hook(&self.hook_list()?, hook)),
        }
    }

    /// Data an embedding program keeps with this node for as long as it lives (the Python
    /// binding's `grad_fn.metadata`); `make` creates it on first use.
    pub fn data_or_insert(
        &self,
        make: impl FnOnce() -> Arc<dyn Any + Send + Sync>,
    ) -> Result<Arc<dyn Any + Send + Sync>> {
        let list = match self {
            GradFn::AccumulateGrad(t) => accumulate_list(t),
            _ => self.hook_list()?,
        };
        if let Some(d) = hooks::node_data(&list) {
            return Ok(d);
        }
        let d = make();
        hooks::set_node_data(&list, d.clone());
        Ok(d)
    }

    /// A node whose graph a backward without `retain_graph` freed (its name is all that is left).
    pub fn is_freed(&self) -> bool {
        matches!(self, GradFn::Op(t) if t.op().is_none())
    }

    /// The custom node behind this handle, if it is one.
    pub fn custom_node(&self) -> Option<&Arc<CustomNode>> {
        match self {
            GradFn::Custom(n) => Some(n),
            _ => None,
        }
    }

    fn hook_list(&self) -> Result<Arc<NodeHooks>> {
        match self {
            GradFn::Custom(n) => Ok(n.hooks.clone()),
            GradFn::Op(t) => t
                .with_node_mut(|n| Ok(n.hooks.get_or_insert_with(Arc::default).clone()))?
                .ok_or_else(|| freed(&self.name())),
            GradFn::AccumulateGrad(t) => Ok(accumulate_list(t)),
        }
    }
}

/// `AccumulateGrad` nodes are not stored anywhere (the leaf is the node); their data lives in
/// a table keyed by the leaf, dropped with it.
fn accumulate_list(t: &Tensor) -> Arc<NodeHooks> {
    use std::collections::HashMap;
    use std::sync::Weak;
    type Table = HashMap<u64, (Weak<crate::tensor::TensorImpl>, Arc<NodeHooks>)>;
    static TABLE: Mutex<Option<Table>> = Mutex::new(None);
    let mut g = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let table = g.get_or_insert_with(HashMap::new);
    table.retain(|_, (w, _)| w.strong_count() > 0);
    table
        .entry(t.id().0)
        .or_insert_with(|| {
            (
                Arc::downgrade(&t.0),
                Arc::new(Mutex::new(NodeHookList::default())),
            )
        })
        .1
        .clone()
}

fn freed(name: &str) -> Error {
    Error::Autograd(format!(
        "{name}: the graph below this node was freed by a backward pass; call backward(retain_graph=True) to inspect it afterwards"
    ))
}

impl PartialEq for GradFn {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}
impl Eq for GradFn {}

impl std::fmt::Debug for GradFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}>", self.name())
    }
}
