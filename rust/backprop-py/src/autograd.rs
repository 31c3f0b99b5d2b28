//! Autograd objects for Python: `grad_fn` nodes, hook registration and handles, custom
//! `autograd.Function` recording, inference mode. Glue only: the engine (`backprop::autograd`)
//! runs the hooks and the custom backward; here Python callables become engine callbacks and
//! Python exceptions travel through the engine unchanged (`errors::callback_error`).

use crate::errors::{callback_error, IntoPy};
use crate::tensor::{wrap, PyTensor};
use backprop::autograd::function::Record;
use backprop::autograd::{self, CustomBackward, GradFn, HookHandle, NodeKey};
use backprop::{Tensor, TensorId};
use pyo3::exceptions::{PyAttributeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple, PyWeakrefMethods, PyWeakrefReference};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A node of the graph (`t.grad_fn`), PyTorch's `torch.autograd.graph.Node`.
#[pyclass(name = "Node", module = "backprop_rs.autograd.graph", frozen, weakref)]
pub struct PyNode {
    inner: GradFn,
}

/// Live node objects by node, so that the same node is the same Python object while one is
/// alive (`a.grad_fn is a.grad_fn`; walkers that key on `id(fn)` see one node once).
static NODES: Mutex<Option<NodeTable>> = Mutex::new(None);

/// Weak references to the live node objects, and the table's size at the last sweep.
type NodeTable = (HashMap<NodeKey, Py<PyWeakrefReference>>, usize);

/// The Python object for `f` (the live one if there is one).
pub fn node_object(py: Python<'_>, f: GradFn) -> PyResult<Py<PyNode>> {
    let key = f.key();
    let mut g = NODES.lock().unwrap_or_else(|e| e.into_inner());
    let (map, swept_at) = g.get_or_insert_with(|| (HashMap::new(), 0));
    if let Some(w) = map.get(&key) {
        if let Some(obj) = w.bind(py).upgrade() {
            if let Ok(n) = obj.cast_into::<PyNode>() {
                return Ok(n.unbind());
            }
        }
    }
    let obj = Bound::new(py, PyNode { inner: f })?;
    map.insert(key, PyWeakrefReference::new(obj.as_any())?.unbind());
    // dead entries are swept when the table has doubled since the last sweep
    if map.len() > 2 * *swept_at + 1024 {
        map.retain(|_, w| w.bind(py).upgrade().is_some());
        *swept_at = map.len();
    }
    Ok(obj.unbind())
}

/// The Python objects of leaf tensors that require grad, by engine tensor, so that an
/// `AccumulateGrad` node's `variable` is the very object the user holds (`fn.variable is p`, as
/// in PyTorch; torchviz keys parameters by `id(fn.variable)`). Filled by the factories with
/// `requires_grad=True`, `requires_grad_()`, the `requires_grad` and `data` setters, `Tensor(...,
/// requires_grad=True)` / `Parameter` (through `_register_leaf`), and by `variable` itself.
static LEAVES: Mutex<Option<LeafTable>> = Mutex::new(None);

type LeafTable = (HashMap<TensorId, Py<PyWeakrefReference>>, usize);

/// Remembers `obj` as the Python object of the leaf it holds (when that leaf requires grad).
pub fn register_leaf(obj: &Bound<'_, PyTensor>) -> PyResult<()> {
    let t = obj.get().tensor();
    if !t.requires_grad() || !t.is_leaf() {
        return Ok(());
    }
    let py = obj.py();
    // made before taking the lock: creating it may run Python code (a collection)
    let weak = PyWeakrefReference::new(obj.as_any())?.unbind();
    let mut g = LEAVES.lock().unwrap_or_else(|e| e.into_inner());
    let (map, swept_at) = g.get_or_insert_with(|| (HashMap::new(), 0));
    map.insert(t.id(), weak);
    if map.len() > 2 * *swept_at + 1024 {
        map.retain(|_, w| w.bind(py).upgrade().is_some());
        *swept_at = map.len();
    }
    Ok(())
}

/// The live Python object holding leaf `t`, or a new one (remembered for the next call).
fn leaf_object(py: Python<'_>, t: Tensor) -> PyResult<Py<PyAny>> {
    {
        let g = LEAVES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((map, _)) = g.as_ref() {
            if let Some(obj) = map.get(&t.id()).and_then(|w| w.bind(py).upgrade()) {
                // the object may since hold another tensor (`.data = ...`): then it is not this leaf
                if let Ok(p) = obj.cast::<PyTensor>() {
                    if p.get().tensor().id() == t.id() {
                        return Ok(obj.unbind());
                    }
                }
            }
        }
    }
    let obj = Bound::new(py, wrap(t))?;
    register_leaf(&obj)?;
    Ok(obj.into_any().unbind())
}

/// `_core._register_leaf(t)`: what `nn.Parameter(...)` calls after construction.
#[pyfunction]
pub fn _register_leaf(t: &Bound<'_, PyTensor>) -> PyResult<()> {
    register_leaf(t)
}

fn opt_node(py: Python<'_>, f: Option<GradFn>) -> PyResult<Py<PyAny>> {
    Ok(match f {
        Some(f) => node_object(py, f)?.into_any(),
        None => py.None(),
    })
}

fn tensors_to_py<'py>(py: Python<'py>, ts: &[Option<Tensor>]) -> PyResult<Bound<'py, PyTuple>> {
    let items: Vec<Py<PyAny>> = ts
        .iter()
        .map(|t| match t {
            Some(t) => Ok(Py::new(py, wrap(t.clone()))?.into_any()),
            None => Ok(py.None()),
        })
        .collect::<PyResult<_>>()?;
    PyTuple::new(py, items)
}

/// A hook's or backward's returned gradients: a tensor, or a sequence of tensors / None.
fn grads_from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Option<Tensor>>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(vec![Some(t.get().tensor())]);
    }
    let seq = obj.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what} must return a Tensor, None, or a tuple of Tensors or None, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    seq.map(|item| {
        let item = item?;
        if item.is_none() {
            Ok(None)
        } else {
            item.cast::<PyTensor>()
                .map(|t| Some(t.get().tensor()))
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "{what} must return Tensors or None, got {}",
                        item.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))
                })
        }
    })
    .collect()
}

#[pymethods]
impl PyNode {
    /// PyTorch's name of the node: `MulBackward0`, `MyFunctionBackward`, `AccumulateGrad`.
    fn name(&self) -> String {
        self.inner.name()
    }

    /// `((node or None, input index), ...)`: where the gradient of each input goes next.
    #[getter]
    fn next_functions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let edges = self.inner.next_functions().py()?;
        let items: Vec<Bound<'py, PyTuple>> = edges
            .into_iter()
            .map(|(f, k)| {
                PyTuple::new(
                    py,
                    [opt_node(py, f)?, k.into_pyobject(py)?.into_any().unbind()],
                )
            })
            .collect::<PyResult<_>>()?;
        PyTuple::new(py, items)
    }

    /// The leaf an `AccumulateGrad` node accumulates into.
    #[getter]
    fn variable(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let t = self.inner.variable().ok_or_else(|| {
            PyAttributeError::new_err(format!(
                "'{}' object has no attribute 'variable' (only AccumulateGrad nodes have one)",
                self.inner.name()
            ))
        })?;
        leaf_object(py, t)
    }

    /// A dict kept with the node for as long as it lives.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = self
            .inner
            .data_or_insert(|| Arc::new(PyDict::new(py).unbind()))
            .py()?;
        match d.downcast_ref::<Py<PyDict>>() {
            Some(d) => Ok(d.clone_ref(py)),
            None => Ok(PyDict::new(py).unbind()),
        }
    }

    /// `hook(grad_inputs, grad_outputs) -> new grad_inputs or None`, called after the node ran.
    fn register_hook(&self, hook: Py<PyAny>) -> PyResult<PyHookHandle> {
        let f: autograd::hooks::NodeHook = Arc::new(move |gin, gout| {
            Python::attach(|py| {
                let r = hook
                    .call1(py, (tensors_to_py(py, gin)?, tensors_to_py(py, gout)?))?
                    .into_bound(py);
                if r.is_none() {
                    Ok(None)
                } else {
                    grads_from_py(&r, "a node hook").map(Some)
                }
            })
            .map_err(callback_error)
        });
        Ok(PyHookHandle(Some(self.inner.register_hook(f).py()?)))
    }

    /// `hook(grad_outputs) -> new grad_outputs or None`, called before the node runs.
    fn register_prehook(&self, hook: Py<PyAny>) -> PyResult<PyHookHandle> {
        let f: autograd::hooks::NodePreHook = Arc::new(move |gout| {
            Python::attach(|py| {
                let r = hook.call1(py, (tensors_to_py(py, gout)?,))?.into_bound(py);
                if r.is_none() {
                    Ok(None)
                } else {
                    grads_from_py(&r, "a node pre-hook").map(Some)
                }
            })
            .map_err(callback_error)
        });
        Ok(PyHookHandle(Some(self.inner.register_prehook(f).py()?)))
    }

    /// The tensors a custom function saved (unchecked), for inspection.
    #[getter]
    fn saved_tensors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let freed = self.inner.is_freed();
        match self.inner.custom_node().map(|n| n.saved_tensors()) {
            Some(Some(v)) => tensors_to_py(py, &v),
            Some(None) => Err(freed_error(&self.inner)),
            None if freed => Err(freed_error(&self.inner)),
            None => Err(PyAttributeError::new_err(format!(
                "'{}' object has no attribute 'saved_tensors'",
                self.inner.name()
            ))),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        format!(
            "<{} object at {:#x}>",
            slf.get().inner.name(),
            slf.as_ptr() as usize
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyNode>()
            .map(|o| o.get().inner.key() == self.inner.key())
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.key().hash(&mut h);
        h.finish()
    }
}

fn freed_error(f: &GradFn) -> PyErr {
    pyo3::exceptions::PyRuntimeError::new_err(format!(
        "{}: saved tensors were freed by a backward pass (use retain_graph=True to keep them)",
        f.name()
    ))
}

/// What `register_hook` returns: `handle.remove()`, or use it as a context manager.
#[pyclass(name = "RemovableHandle", module = "backprop_rs.utils.hooks")]
pub struct PyHookHandle(Option<HookHandle>);

#[pymethods]
impl PyHookHandle {
    /// Unregisters the hook (a second call does nothing).
    fn remove(&mut self) {
        if let Some(h) = self.0.take() {
            h.remove();
        }
    }
    #[getter]
    fn id(&self) -> Option<u64> {
        self.0.as_ref().map(HookHandle::id)
    }
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }
    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) {
        self.remove();
    }
}

/// `Tensor.register_hook(hook)`: `hook(grad) -> Tensor or None`.
pub fn register_tensor_hook(t: &Tensor, hook: Py<PyAny>) -> PyResult<PyHookHandle> {
    let h = t
        .register_hook(move |g| {
            Python::attach(|py| {
                let r = hook.call1(py, (wrap(g.clone()),))?.into_bound(py);
                if r.is_none() {
                    return Ok(None);
                }
                match r.cast::<PyTensor>() {
                    Ok(t) => Ok(Some(t.get().tensor())),
                    Err(_) => Err(PyTypeError::new_err(format!(
                        "a tensor hook must return a Tensor or None, got {}",
                        r.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))),
                }
            })
            .map_err(callback_error)
        })
        .py()?;
    Ok(PyHookHandle(Some(h)))
}

/// `Tensor.register_post_accumulate_grad_hook(hook)`: `hook(tensor)`, called with the Python
/// object the hook was registered on (held weakly), so code that keys on it works.
pub fn register_post_accumulate_hook(
    slf: &Bound<'_, PyTensor>,
    hook: Py<PyAny>,
) -> PyResult<PyHookHandle> {
    let weak = PyWeakrefReference::new(slf.as_any())?.unbind();
    let h = slf
        .get()
        .tensor()
        .register_post_accumulate_grad_hook(move |t| {
            Python::attach(|py| {
                let obj = match weak.bind(py).upgrade() {
                    Some(o) => o.unbind(),
                    None => Py::new(py, wrap(t.clone()))?.into_any(),
                };
                hook.call1(py, (obj,)).map(|_| ())
            })
            .map_err(callback_error)
        })
        .py()?;
    Ok(PyHookHandle(Some(h)))
}

/// A Python `autograd.Function`'s backward as the engine calls it: `backward(saved, grads)`
/// returns one gradient (or None) per recorded input.
struct PyBackward(Py<PyAny>);

impl CustomBackward for PyBackward {
    fn backward(
        &self,
        saved: &[Option<Tensor>],
        grad_outputs: &[Option<Tensor>],
    ) -> backprop::Result<Vec<Option<Tensor>>> {
        Python::attach(|py| {
            let r = self
                .0
                .call1(
                    py,
                    (tensors_to_py(py, saved)?, tensors_to_py(py, grad_outputs)?),
                )?
                .into_bound(py);
            grads_from_py(&r, "backward")
        })
        .map_err(callback_error)
    }
}

/// Records a custom function whose forward already ran: the outputs come back as tensors with
/// the new node as history. An output object that is fresh is re-pointed in place (so other
/// references to it see the history, as in PyTorch); an input returned as it is, or an output
/// returned twice, becomes a new object (an alias) unless it was marked dirty.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn _record_function<'py>(
    py: Python<'py>,
    name: &str,
    backward: Py<PyAny>,
    inputs: Vec<Bound<'py, PyTensor>>,
    outputs: Vec<Bound<'py, PyTensor>>,
    saved: Vec<Option<Bound<'py, PyTensor>>>,
    dirty: Vec<bool>,
    non_differentiable: Vec<bool>,
    materialize_grads: bool,
) -> PyResult<Bound<'py, PyList>> {
    let ins: Vec<Tensor> = inputs.iter().map(|t| t.get().tensor()).collect();
    let outs: Vec<Tensor> = outputs.iter().map(|t| t.get().tensor()).collect();
    let sv: Vec<Option<Tensor>> = saved
        .iter()
        .map(|s| s.as_ref().map(|t| t.get().tensor()))
        .collect();
    let recorded = autograd::function::record(
        Record {
            name,
            inputs: &ins,
            outputs: &outs,
            saved: &sv,
            dirty: &dirty,
            non_differentiable: &non_differentiable,
            materialize_grads,
        },
        Box::new(PyBackward(backward)),
    )
    .py()?;
    let result = PyList::empty(py);
    for (k, (obj, t)) in outputs.iter().zip(recorded).enumerate() {
        let is_input = inputs.iter().any(|i| i.is(obj));
        let repeated = outputs[..k].iter().any(|o| o.is(obj));
        if dirty.get(k).copied().unwrap_or(false) || !(is_input || repeated) {
            obj.get().set(t);
            result.append(obj)?;
        } else {
            result.append(Py::new(py, wrap(t))?)?;
        }
    }
    Ok(result)
}

/// `Tensor.grad_fn`.
pub fn grad_fn(py: Python<'_>, t: &Tensor) -> PyResult<Py<PyAny>> {
    opt_node(py, t.grad_fn())
}

/// Sets inference mode on this thread; returns the previous `(grad_enabled, inference)` state.
#[pyfunction]
pub fn _set_inference_mode(on: bool) -> (bool, bool) {
    let grad = autograd::set_grad_enabled(!on);
    (grad, autograd::set_inference_mode_enabled(on))
}

/// Restores a state `_set_inference_mode` returned.
#[pyfunction]
pub fn _restore_inference_mode(state: (bool, bool)) {
    autograd::set_inference_mode_enabled(state.1);
    autograd::set_grad_enabled(state.0);
}

#[pyfunction]
pub fn is_inference_mode_enabled() -> bool {
    autograd::is_inference_mode_enabled()
}

/// The core's Graphviz DOT of the graph behind `roots` (`backprop::viz::to_dot`), for Rust
/// parity with `bp.viz.graph` and for users who want the plain text without hooks.
#[pyfunction]
#[pyo3(signature = (roots, params=None, show_values=false, title=None))]
pub fn _to_dot(
    py: Python<'_>,
    roots: Vec<PyRef<'_, PyTensor>>,
    params: Option<Vec<(String, PyRef<'_, PyTensor>)>>,
    show_values: bool,
    title: Option<String>,
) -> PyResult<String> {
    let roots: Vec<Tensor> = roots.iter().map(|t| t.tensor()).collect();
    let params: Vec<(String, Tensor)> = params
        .unwrap_or_default()
        .iter()
        .map(|(n, t)| (n.clone(), t.tensor()))
        .collect();
    let opts = backprop::viz::DotOptions { show_values, title };
    py.detach(|| {
        let r: Vec<&Tensor> = roots.iter().collect();
        let p: Vec<(&str, &Tensor)> = params.iter().map(|(n, t)| (n.as_str(), t)).collect();
        backprop::viz::to_dot(&r, &p, &opts)
    })
    .py()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_to_dot, m)?)?;
    m.add_class::<PyNode>()?;
    m.add_class::<PyHookHandle>()?;
    m.add_function(wrap_pyfunction!(_record_function, m)?)?;
    m.add_function(wrap_pyfunction!(_set_inference_mode, m)?)?;
    m.add_function(wrap_pyfunction!(_restore_inference_mode, m)?)?;
    m.add_function(wrap_pyfunction!(is_inference_mode_enabled, m)?)?;
    m.add_function(wrap_pyfunction!(_register_leaf, m)?)?;
    Ok(())
}
