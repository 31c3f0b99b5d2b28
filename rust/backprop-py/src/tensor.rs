//! `backprop_rs.Tensor`: the Python face of `backprop::Tensor`. Glue only: argument parsing,
//! conversions, and releasing the GIL around real work; all maths is in the core crate.

use crate::convert::*;
use crate::errors::IntoPy;
use backprop::op::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use backprop::{DType, Device, Indexer, MemoryFormat, Scalar, Tensor};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyIndexError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyEllipsis, PyInt, PyList, PyNone, PySlice, PyTuple};

/// Below this many elements the kernel is shorter than releasing and re-taking the GIL.
const RELEASE_GIL_AT: usize = 1 << 15;

/// Runs `f` without the GIL when the work is large enough to pay for the switch.
#[inline]
pub fn work<R: Send>(py: Python<'_>, n: usize, f: impl FnOnce() -> R + Send) -> R {
    if n >= RELEASE_GIL_AT {
        py.detach(f)
    } else {
        f()
    }
}

/// An n-dimensional array with reverse-mode autodiff (PyTorch's `torch.Tensor`).
///
/// The Python object holds its engine tensor behind a lock so that `t.data = other` can swap
/// what it refers to (another device or dtype) while the object stays the same one: that is how
/// `module.to(...)` moves parameters without replacing them, so optimisers built before the move
/// and weights tied between two modules stay valid, as in PyTorch.
#[pyclass(name = "Tensor", module = "backprop_rs", frozen, subclass, weakref)]
pub struct PyTensor {
    cell: std::sync::RwLock<Tensor>,
}

impl PyTensor {
    pub fn new(inner: Tensor) -> Self {
        PyTensor {
            cell: std::sync::RwLock::new(inner),
        }
    }

    /// The engine tensor this object currently refers to (a cheap handle clone).
    #[inline]
    pub fn tensor(&self) -> Tensor {
        self.cell.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Points this object at another engine tensor (what `.data = ...` does).
    pub fn set(&self, t: Tensor) {
        *self.cell.write().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

pub fn wrap(t: Tensor) -> PyTensor {
    PyTensor::new(t)
}

fn wrap_r(t: backprop::Result<Tensor>) -> PyResult<PyTensor> {
    t.py().map(wrap)
}

static RETURN_TYPES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `(values, indices)` as a namedtuple, like PyTorch's `torch.return_types.max`.
fn values_indices(py: Python<'_>, name: &str, v: Tensor, i: Tensor) -> PyResult<Py<PyAny>> {
    let nt = RETURN_TYPES.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let collections = py.import("collections")?;
        Ok(collections
            .getattr("namedtuple")?
            .call1(("values_indices", ("values", "indices")))?
            .unbind())
    })?;
    let _ = name;
    Ok(nt.bind(py).call1((wrap(v), wrap(i)))?.unbind())
}

enum Operand {
    Scalar(Scalar),
    Tensor(Tensor),
}

fn operand(obj: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Option<Operand>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(Some(Operand::Tensor(t.get().tensor().clone())));
    }
    if let Some(s) = as_scalar(obj)? {
        return Ok(Some(Operand::Scalar(s)));
    }
    Ok(operand_tensor(obj, like)?.map(Operand::Tensor))
}

impl PyTensor {
    /// `self OP other` for an operator (`+`): an operand of another kind gives NotImplemented,
    /// so Python can try the other side's reflected method.
    fn binop(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
        reversed: bool,
    ) -> PyResult<Py<PyAny>> {
        match self.binop_value(py, other, op, reversed)? {
            Some(t) => Ok(Bound::new(py, t)?.into_any().unbind()),
            None => Ok(py.NotImplemented()),
        }
    }

    /// `self.add(other)` and friends: a method, so an operand of another kind is a TypeError
    /// (never NotImplemented returned as if it were a result).
    fn binop_method(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
    ) -> PyResult<PyTensor> {
        self.binop_value(py, other, op, false)?
            .ok_or_else(|| unsupported_operand(op.name(), other))
    }

    fn binop_value(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
        reversed: bool,
    ) -> PyResult<Option<PyTensor>> {
        let a = &self.tensor();
        let r = match operand(other, a)? {
            None => return Ok(None),
            Some(Operand::Scalar(s)) => work(py, a.numel(), || a.binary_scalar(s, op, reversed)),
            Some(Operand::Tensor(b)) => work(py, a.numel().max(b.numel()), || {
                if reversed {
                    b.binary(a, op)
                } else {
                    a.binary(&b, op)
                }
            }),
        };
        Ok(Some(wrap(r.py()?)))
    }

    fn cmp_method(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CmpOp,
    ) -> PyResult<PyTensor> {
        self.cmp(py, other, op)?
            .map(wrap)
            .ok_or_else(|| unsupported_operand(op.name(), other))
    }

    fn cmp(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: CmpOp) -> PyResult<Option<Tensor>> {
        let a = &self.tensor();
        Ok(match operand(other, a)? {
            None => None,
            Some(Operand::Scalar(s)) => Some(work(py, a.numel(), || a.compare_scalar(s, op)).py()?),
            Some(Operand::Tensor(b)) => Some(work(py, a.numel(), || a.compare(&b, op)).py()?),
        })
    }

    fn inplace(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: BinaryOp) -> PyResult<()> {
        let a = &self.tensor();
        match operand(other, a)? {
            None => Err(PyTypeError::new_err(format!(
                "unsupported operand type for in-place {}: {}",
                op.name(),
                type_name(other)
            ))),
            Some(Operand::Scalar(s)) => {
                self.set(work(py, a.numel(), || a.binary_scalar_(s, op)).py()?);
                Ok(())
            }
            Some(Operand::Tensor(b)) => {
                self.set(work(py, a.numel(), || a.binary_(&b, op)).py()?);
                Ok(())
            }
        }
    }

    /// `other` as a tensor like `self` would combine with it (a scalar becomes a 0-d tensor of
    /// the dtype PyTorch gives it next to `self`).
    fn operand_as_tensor(&self, other: &Bound<'_, PyAny>) -> PyResult<Option<Tensor>> {
        let a = self.tensor();
        Ok(match operand(other, &a)? {
            None => None,
            Some(Operand::Tensor(t)) => Some(t),
            Some(Operand::Scalar(v)) => {
                Some(Tensor::full_scalar(v, v.result_dtype(a.dtype()), a.device()).py()?)
            }
        })
    }

    fn alpha_method(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
        op: BinaryOp,
    ) -> PyResult<PyTensor> {
        let Some(alpha) = alpha.filter(|a| !a.is_none()) else {
            return self.binop_method(py, other, op);
        };
        let s = scalar_arg(op.name(), alpha)?;
        let a = self.tensor();
        let b = self
            .operand_as_tensor(other)?
            .ok_or_else(|| unsupported_operand(op.name(), other))?;
        wrap_r(work(py, a.numel(), || a.add_alpha(&b, s, op)))
    }

    fn inplace_alpha(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
        op: BinaryOp,
    ) -> PyResult<()> {
        let Some(alpha) = alpha.filter(|a| !a.is_none()) else {
            return self.inplace(py, other, op);
        };
        let s = scalar_arg(op.name(), alpha)?;
        let a = self.tensor();
        let b = self
            .operand_as_tensor(other)?
            .ok_or_else(|| unsupported_operand(op.name(), other))?;
        self.set(work(py, a.numel(), || a.add_alpha_(&b, s, op)).py()?);
        Ok(())
    }

    fn unary_(&self, py: Python<'_>, op: UnaryOp) -> PyResult<()> {
        let a = self.tensor();
        self.set(work(py, a.numel(), || a.unary_(op)).py()?);
        Ok(())
    }

    fn unary(&self, py: Python<'_>, op: UnaryOp) -> PyResult<PyTensor> {
        let a = &self.tensor();
        wrap_r(work(py, a.numel(), || a.unary(op)))
    }

    fn reduce_dims(
        &self,
        py: Python<'_>,
        op: ReduceOp,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = dims_arg(dim)?;
        let a = &self.tensor();
        wrap_r(work(py, a.numel(), || a.reduce(op, &dims, keepdim)))
    }
}

// ------------------------------------------------------------------------------ indexing

/// Converts a Python index key into the core's `Indexer`s (the rules live in the core).
fn parse_index(key: &Bound<'_, PyAny>, device: Device) -> PyResult<Vec<Indexer>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(t) = key.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        vec![key.clone()]
    };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        out.push(if it.is_instance_of::<PyNone>() {
            Indexer::NewAxis
        } else if it.is_instance_of::<PyEllipsis>() {
            Indexer::Ellipsis
        } else if let Ok(s) = it.cast::<PySlice>() {
            let get = |name: &str| -> PyResult<Option<i64>> {
                let v = s.getattr(name)?;
                if v.is_none() {
                    Ok(None)
                } else if let Ok(t) = v.cast::<PyTensor>() {
                    let t = t.get().tensor();
                    if t.dtype() != DType::I64 || t.numel() != 1 {
                        return Err(PyTypeError::new_err("slice indices must be integers or None or have an __index__ method"));
                    }
                    match t.item_scalar().py()? {
                        Scalar::Int(i) => Ok(Some(i)),
                        _ => Err(PyTypeError::new_err("slice indices must be integers")),
                    }
                } else if let Ok(i) = v.extract::<i64>() {
                    Ok(Some(i))
                } else if let Ok(i) = v.cast::<PyInt>() {
                    // beyond int64: past either end of any dim, so clamp like Python's slices
                    let neg = i.lt(0)?;
                    Ok(Some(if neg { i64::MIN } else { i64::MAX }))
                } else {
                    Err(PyTypeError::new_err(
                        "slice indices must be integers or None or have an __index__ method",
                    ))
                }
            };
            Indexer::Slice {
                start: get("start")?,
                stop: get("stop")?,
                step: get("step")?.unwrap_or(1),
            }
        } else if let Ok(t) = it.cast::<PyTensor>() {
            Indexer::Tensor(t.get().tensor())
        } else if it.is_instance_of::<pyo3::types::PyBool>() {
            // t[True] / t[False]: a 0-d mask (NumPy's rule)
            let b: bool = it.extract()?;
            Indexer::Tensor(Tensor::full_scalar(Scalar::Bool(b), DType::Bool, device).py()?)
        } else if let Ok(i) = it.extract::<i64>() {
            Indexer::Select(i)
        } else if it.is_instance_of::<PyList>() || it.is_instance_of::<numpy::PyUntypedArray>() || it.is_instance_of::<PyTuple>() {
            let t = tensor_from_data(&it, None, device)?;
            // an empty list indexes nothing (as int64, like PyTorch)
            let t = if t.numel() == 0 && t.dtype() != DType::Bool {
                t.to_dtype(DType::I64).py()?
            } else {
                t
            };
            if !matches!(t.dtype(), DType::I64 | DType::Bool) {
                return Err(PyIndexError::new_err(
                    "tensors used as indices must be long (int64) or bool",
                ));
            }
            Indexer::Tensor(t)
        } else {
            return Err(PyIndexError::new_err(format!(
                "only integers, slices (`:`), ellipsis (`...`), None and long or bool tensors are valid indices (got {})",
                type_name(&it)
            )));
        });
    }
    Ok(out)
}

#[pymethods]
impl PyTensor {
    /// `Tensor(data)` copies `data`, like `backprop_rs.tensor(data)`.
    #[new]
    #[pyo3(signature = (data=None, *, dtype=None, device=None, requires_grad=false))]
    fn py_new(
        data: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
        requires_grad: bool,
    ) -> PyResult<Self> {
        let dt = opt_dtype(dtype)?;
        let dev = opt_device(device)?;
        let t = match data {
            Some(d) if !d.is_none() => {
                if let Ok(t) = d.cast::<PyTensor>() {
                    // Tensor(t) shares t's data (what Parameter(t) relies on)
                    let t = t.get().tensor().detach();
                    match dt {
                        Some(dt) if dt != t.dtype() => t.to_dtype(dt).py()?,
                        _ => t,
                    }
                } else {
                    tensor_from_data(d, dt, dev)?
                }
            }
            _ => Tensor::zeros([0], dt.unwrap_or_else(backprop::default_float), dev).py()?,
        };
        let t = if requires_grad {
            t.requires_grad_(true).py()?
        } else {
            t
        };
        Ok(wrap(t))
    }

    // ------------------------------------------------------------------ metadata

    #[getter]
    fn shape<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.tensor().dims())
    }
    #[pyo3(signature = (dim=None))]
    fn size<'py>(&self, py: Python<'py>, dim: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, self.tensor().dims())?.into_any()),
            Some(d) => Ok(self.tensor().size(d).py()?.into_pyobject(py)?.into_any()),
        }
    }
    fn dim(&self) -> usize {
        self.tensor().rank()
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.tensor().rank()
    }
    fn numel(&self) -> usize {
        self.tensor().numel()
    }
    fn nelement(&self) -> usize {
        self.tensor().numel()
    }
    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType {
            inner: self.tensor().dtype(),
        }
    }
    #[getter]
    fn device(&self) -> PyDevice {
        PyDevice {
            inner: self.tensor().device(),
        }
    }
    #[getter]
    fn is_gpu(&self) -> bool {
        self.tensor().device() == Device::Gpu
    }
    #[getter]
    fn is_cuda(&self) -> bool {
        self.tensor().device() == Device::Gpu
    }
    fn is_floating_point(&self) -> bool {
        self.tensor().dtype().is_float()
    }
    fn element_size(&self) -> usize {
        self.tensor().dtype().size_in_bytes()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.tensor().dtype().size_in_bytes()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.tensor().numel() * self.tensor().dtype().size_in_bytes()
    }
    #[pyo3(signature = (dim=None))]
    fn stride<'py>(&self, py: Python<'py>, dim: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, self.tensor().strides())?.into_any()),
            Some(d) => {
                let d = backprop::shape::normalize_dim("stride", d, self.tensor().rank()).py()?;
                Ok(self
                    .tensor()
                    .strides()
                    .get(d)
                    .copied()
                    .unwrap_or(1)
                    .into_pyobject(py)?
                    .into_any())
            }
        }
    }
    fn storage_offset(&self) -> usize {
        self.tensor().layout().offset()
    }
    /// Whether the strides are dense in `memory_format`'s order (row-major by default).
    #[pyo3(signature = (memory_format=None))]
    fn is_contiguous(&self, memory_format: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
        match crate::memory_format::parse(memory_format, MemoryFormat::Contiguous)? {
            MemoryFormat::Contiguous => Ok(self.tensor().is_contiguous()),
            f => self.tensor().is_contiguous_in(f).py(),
        }
    }
    /// Address of the first element, for checking memory sharing: the real address on the CPU;
    /// on the GPU (whose memory has no host address) a unique non-zero number per buffer plus
    /// the offset in bytes, so views of one buffer compare as PyTorch's CUDA pointers do.
    fn data_ptr(&self) -> usize {
        let t = self.tensor();
        t.cpu_data_ptr()
            .map(|p| p as usize)
            .unwrap_or_else(|| t.device_data_ptr())
    }
    fn __len__(&self) -> PyResult<usize> {
        self.tensor()
            .dims()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
    /// Every unary primitive of the engine is a method, `t.exp()`, and has an in-place form,
    /// `t.exp_()`, even when no method is written out for it here: the core's op enum is the
    /// list (adding an op to it is all it takes to reach Python).
    fn __getattr__(slf: &Bound<'_, Self>, name: &str) -> PyResult<Py<PyAny>> {
        let (base, inplace) = match name.strip_suffix('_') {
            Some(b) => (b, true),
            None => (name, false),
        };
        if UnaryOp::from_name(base).is_some() {
            let py = slf.py();
            let f = py.import("backprop_rs._core")?.getattr(if inplace {
                "_unary_"
            } else {
                "_unary"
            })?;
            let partial = py.import("functools")?.getattr("partial")?;
            return Ok(partial.call1((f, slf, base))?.unbind());
        }
        Err(pyo3::exceptions::PyAttributeError::new_err(format!(
            "'backprop_rs.Tensor' object has no attribute '{name}'"
        )))
    }
    fn __repr__(&self) -> String {
        self.tensor().to_string()
    }
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    // ------------------------------------------------------------------ autograd

    #[getter]
    fn get_requires_grad(&self) -> bool {
        self.tensor().requires_grad()
    }
    #[setter]
    fn set_requires_grad(slf: &Bound<'_, Self>, flag: bool) -> PyResult<()> {
        slf.get().tensor().requires_grad_(flag).py()?;
        crate::autograd::register_leaf(slf)
    }
    #[pyo3(signature = (requires_grad=true))]
    fn requires_grad_(slf: &Bound<'_, Self>, requires_grad: bool) -> PyResult<Py<Self>> {
        slf.get().tensor().requires_grad_(requires_grad).py()?;
        crate::autograd::register_leaf(slf)?;
        Ok(slf.clone().unbind())
    }
    #[getter]
    fn get_grad(&self) -> Option<PyTensor> {
        self.tensor().grad().map(wrap)
    }
    #[setter]
    fn set_grad(&self, g: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match g {
            None => self.tensor().set_grad(None).py(),
            Some(g) if g.is_none() => self.tensor().set_grad(None).py(),
            Some(g) => {
                let t = g
                    .cast::<PyTensor>()
                    .map_err(|_| PyTypeError::new_err("assigned grad must be a Tensor or None"))?;
                self.tensor().set_grad(Some(t.get().tensor().clone())).py()
            }
        }
    }
    #[getter]
    fn is_leaf(&self) -> bool {
        self.tensor().is_leaf()
    }
    /// The node that made this tensor (`<MulBackward0 object at ...>`), or None for leaves.
    #[getter]
    fn grad_fn(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::autograd::grad_fn(py, &self.tensor())
    }
    /// `hook(grad) -> Tensor or None`, called with the gradient of this tensor during backward.
    fn register_hook(&self, hook: Py<PyAny>) -> PyResult<crate::autograd::PyHookHandle> {
        crate::autograd::register_tensor_hook(&self.tensor(), hook)
    }
    /// `hook(tensor)`, called after backward accumulated into this leaf's `.grad`.
    fn register_post_accumulate_grad_hook(
        slf: &Bound<'_, Self>,
        hook: Py<PyAny>,
    ) -> PyResult<crate::autograd::PyHookHandle> {
        crate::autograd::register_post_accumulate_hook(slf, hook)
    }
    /// Whether this tensor was made in inference mode.
    fn is_inference(&self) -> bool {
        self.tensor().is_inference()
    }
    fn retain_grad(&self) {
        self.tensor().retain_grad();
    }
    #[getter]
    fn retains_grad(&self) -> bool {
        self.tensor().retains_grad()
    }
    #[pyo3(signature = (gradient=None, retain_graph=None, create_graph=false, inputs=None))]
    fn backward(
        &self,
        py: Python<'_>,
        gradient: Option<&Bound<'_, PyAny>>,
        retain_graph: Option<bool>,
        create_graph: bool,
        inputs: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let inputs = match inputs {
            Some(i) if !i.is_none() => Some(crate::functions::tensors_arg(i)?),
            _ => None,
        };
        let g = match gradient {
            Some(g) if !g.is_none() => Some(match g.cast::<PyTensor>() {
                Ok(t) => t.get().tensor().clone(),
                Err(_) => tensor_from_data(g, Some(self.tensor().dtype()), self.tensor().device())?,
            }),
            _ => None,
        };
        let t = self.tensor();
        if inputs.is_none() {
            let retain = retain_graph.unwrap_or(create_graph);
            return py
                .detach(|| t.backward_with(g.as_ref(), retain, create_graph))
                .py();
        }
        py.detach(|| {
            backprop::autograd::backward(
                std::slice::from_ref(&t),
                Some(&[g]),
                retain_graph,
                create_graph,
                inputs.as_deref(),
            )
        })
        .py()
    }
    fn detach(&self) -> PyTensor {
        wrap(self.tensor().detach())
    }
    /// The same data without autograd history (PyTorch's `.data`).
    #[getter]
    fn get_data(&self) -> PyTensor {
        wrap(self.tensor().detach())
    }
    /// `t.data = other`: this object now holds `other`'s memory (any shape, dtype or device),
    /// keeping its `requires_grad` (and its `.grad` where that still fits), as in PyTorch.
    #[setter]
    fn set_data(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let this = slf.get();
        let v = value
            .cast::<PyTensor>()
            .map_err(|_| {
                PyTypeError::new_err(format!("data must be a Tensor, got {}", type_name(value)))
            })?
            .get()
            .tensor();
        let new = this.tensor().with_data(&v).py()?;
        this.set(new);
        // the object now holds another engine tensor: graphs built from here on refer to it
        crate::autograd::register_leaf(slf)
    }
    /// How many in-place writes this tensor's memory has seen (PyTorch's `_version`).
    #[getter]
    fn _version(&self) -> u64 {
        self.tensor().version()
    }
    /// Whether this tensor is a view recorded by autograd (shares memory with its base).
    fn _is_view(&self) -> bool {
        self.tensor().is_view()
    }

    // ------------------------------------------------------------------ conversion

    /// The value of a one-element tensor as a Python number.
    fn item<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        scalar_to_py(py, self.tensor().item_scalar().py()?)
    }
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_numpy(py, &self.tensor(), false)?.call_method0("tolist")
    }
    /// A NumPy array sharing this tensor's memory (CPU) or a copy (GPU).
    #[pyo3(signature = (*, force=false))]
    fn numpy<'py>(&self, py: Python<'py>, force: bool) -> PyResult<Bound<'py, PyAny>> {
        if self.tensor().requires_grad() && !force {
            return Err(PyRuntimeError::new_err("Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy() instead."));
        }
        to_numpy(py, &self.tensor(), force)
    }
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let wants_dtype = dtype.filter(|d| !d.is_none());
        if copy == Some(false) && self.tensor().device() != Device::Cpu {
            return Err(PyValueError::new_err("Unable to avoid copy while creating an array as requested: the tensor is on the gpu."));
        }
        let arr = to_numpy(py, &self.tensor(), copy == Some(true))?;
        match wants_dtype {
            None => Ok(arr),
            Some(d) => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("copy", copy.unwrap_or(false))?;
                let same = arr
                    .getattr("dtype")?
                    .eq(numpy_module(py)?.call_method1("dtype", (d,))?)?;
                if copy == Some(false) && !same {
                    return Err(PyValueError::new_err("Unable to avoid copy while creating an array as requested: the dtype differs."));
                }
                arr.call_method("astype", (d,), Some(&kwargs))
            }
        }
    }
    #[classattr]
    fn __array_priority__() -> f64 {
        1000.0
    }
    fn __bool__(&self) -> PyResult<bool> {
        if self.tensor().numel() != 1 {
            return Err(PyRuntimeError::new_err(format!(
                "Boolean value of Tensor with {} values is ambiguous",
                self.tensor().numel()
            )));
        }
        Ok(self.tensor().item().py()? != 0.0)
    }
    fn __float__(&self) -> PyResult<f64> {
        self.tensor().item().py()
    }
    /// Python's `int()` of the value (NaN and infinities raise as they do for floats).
    fn __int__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        scalar_to_py(py, self.tensor().item_scalar().py()?)?.call_method0("__int__")
    }
    fn __index__(&self) -> PyResult<i64> {
        if self.tensor().dtype() != DType::I64 || self.tensor().numel() != 1 {
            return Err(PyTypeError::new_err(
                "only integer tensors of a single element can be converted to an index",
            ));
        }
        match self.tensor().item_scalar().py()? {
            Scalar::Int(i) => Ok(i),
            _ => Err(PyTypeError::new_err(
                "only integer tensors of a single element can be converted to an index",
            )),
        }
    }

    /// `to(device)`, `to(dtype)`, `to(device, dtype)`, `to(other_tensor)`, keywords too.
    /// `memory_format=channels_last` lays the result out so (`preserve_format`, the default,
    /// keeps the input's layout where no copy is made).
    #[pyo3(signature = (*args, dtype=None, device=None, non_blocking=false, copy=false, memory_format=None))]
    #[allow(clippy::too_many_arguments)]
    fn to(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
        non_blocking: bool,
        copy: bool,
        memory_format: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let _ = non_blocking;
        let format = crate::memory_format::parse(memory_format, MemoryFormat::Preserve)?;
        let mut dt = opt_dtype(dtype)?;
        let mut dev = match device {
            Some(d) if !d.is_none() => Some(parse_device(d)?),
            _ => None,
        };
        for a in args.iter() {
            if let Ok(t) = a.cast::<PyTensor>() {
                dt = Some(t.get().tensor().dtype());
                dev = Some(t.get().tensor().device());
            } else if a.cast::<PyDevice>().is_ok()
                || a.cast::<pyo3::types::PyString>().is_ok_and(|s| {
                    s.to_cow()
                        .map(|c| Device::parse(&c).is_ok())
                        .unwrap_or(false)
                })
            {
                dev = Some(parse_device(&a)?);
            } else {
                dt = Some(parse_dtype(&a)?);
            }
        }
        let t = &self.tensor();
        let r = work(py, t.numel(), || -> backprop::Result<Tensor> {
            let mut r = t.clone();
            if let Some(d) = dev {
                r = r.to_device(d)?;
            }
            if let Some(d) = dt {
                r = r.to_dtype(d)?;
            }
            if copy && r.shares_storage(t) {
                r = r.clone_in(MemoryFormat::Preserve)?;
            }
            if format != MemoryFormat::Preserve {
                r = r.contiguous_in(format)?;
            } else {
                r = preserve_layout(t, r)?;
            }
            Ok(r)
        });
        wrap_r(r)
    }
    fn cpu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.to_device(Device::Cpu)))
    }
    fn gpu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.to_device(Device::Gpu)))
    }
    #[pyo3(signature = (device=None))]
    fn cuda(&self, py: Python<'_>, device: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        let _ = device;
        self.gpu(py)
    }
    fn float(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::F32).and_then(|r| preserve_layout(&t, r)))
    }
    fn double(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::F64).and_then(|r| preserve_layout(&t, r)))
    }
    fn long(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::I64).and_then(|r| preserve_layout(&t, r)))
    }
    /// int32, as PyTorch's `Tensor.int()`.
    fn int(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::I32).and_then(|r| preserve_layout(&t, r)))
    }
    fn short(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::I16).and_then(|r| preserve_layout(&t, r)))
    }
    /// int8, as PyTorch's `Tensor.char()`.
    fn char(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::I8).and_then(|r| preserve_layout(&t, r)))
    }
    /// uint8, as PyTorch's `Tensor.byte()`.
    fn byte(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        wrap_r(t.to_dtype(DType::U8).and_then(|r| preserve_layout(&t, r)))
    }
    #[pyo3(signature = (memory_format=None))]
    fn half(&self, memory_format: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        let _ = memory_format;
        wrap_r(self.tensor().to_dtype(DType::F16))
    }
    #[pyo3(signature = (memory_format=None))]
    fn bfloat16(&self, memory_format: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        let _ = memory_format;
        wrap_r(self.tensor().to_dtype(DType::BF16))
    }
    fn bool(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().to_dtype(DType::Bool))
    }
    #[pyo3(signature = (dtype=None))]
    fn r#type(&self, py: Python<'_>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        match opt_dtype(dtype)? {
            None => Ok(format!("backprop_rs.{}", self.tensor().dtype())
                .into_pyobject(py)?
                .into_any()
                .unbind()),
            Some(d) => Ok(Bound::new(py, wrap(self.tensor().to_dtype(d).py()?))?
                .into_any()
                .unbind()),
        }
    }

    // ------------------------------------------------------------------ views

    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(shape)?;
        wrap_r(self.tensor().reshape_infer(&dims))
    }
    #[pyo3(signature = (*shape))]
    fn view(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        if shape.len() == 1 {
            if let Ok(d) = parse_dtype(&shape.get_item(0)?) {
                if d != self.tensor().dtype() {
                    return Err(PyTypeError::new_err(
                        "view(dtype) reinterpretation is not supported; use .to(dtype)",
                    ));
                }
                return Ok(wrap(self.tensor().clone()));
            }
        }
        let dims = shape_args(shape)?;
        wrap_r(self.tensor().view(&dims))
    }
    fn view_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        let dims: Vec<i64> = other.tensor().dims().iter().map(|&d| d as i64).collect();
        wrap_r(self.tensor().view(&dims))
    }
    fn reshape_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.tensor().reshape(other.tensor().shape().clone()))
    }
    #[pyo3(signature = (*dims))]
    fn permute(&self, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(dims)?;
        if dims.len() != self.tensor().rank() {
            return Err(crate::errors::to_py(backprop::Error::invalid(
                "permute",
                format!(
                    "number of dims {} does not match the tensor's rank {}",
                    dims.len(),
                    self.tensor().rank()
                ),
            )));
        }
        wrap_r(self.tensor().permute(&dims))
    }
    fn transpose(&self, dim0: i64, dim1: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().transpose(dim0, dim1))
    }
    fn swapaxes(&self, axis0: i64, axis1: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().transpose(axis0, axis1))
    }
    fn t(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().t())
    }
    // The in-place view ops change which view of its storage this object is: the object then
    // holds the view (sharing the storage, gradients flowing through it as through `t()`).
    fn t_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().tensor().t();
        become_view(slf, "t_", v)
    }
    fn transpose_<'py>(slf: &Bound<'py, Self>, dim0: i64, dim1: i64) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().tensor().transpose(dim0, dim1);
        become_view(slf, "transpose_", v)
    }
    fn swapaxes_<'py>(
        slf: &Bound<'py, Self>,
        axis0: i64,
        axis1: i64,
    ) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().tensor().transpose(axis0, axis1);
        become_view(slf, "swapaxes_", v)
    }
    fn swapdims_<'py>(slf: &Bound<'py, Self>, dim0: i64, dim1: i64) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().tensor().transpose(dim0, dim1);
        become_view(slf, "swapdims_", v)
    }
    fn unsqueeze_<'py>(slf: &Bound<'py, Self>, dim: i64) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().tensor().unsqueeze(dim);
        become_view(slf, "unsqueeze_", v)
    }
    #[pyo3(signature = (dim=None))]
    fn squeeze_<'py>(
        slf: &Bound<'py, Self>,
        dim: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let v = slf.get().squeeze(dim)?.tensor();
        become_view(slf, "squeeze_", Ok(v))
    }
    #[getter(T)]
    fn get_t(&self) -> PyResult<PyTensor> {
        // PyTorch's .T reverses all dims
        let r = self.tensor().rank();
        let perm: Vec<usize> = (0..r).rev().collect();
        wrap_r(self.tensor().permute(&perm))
    }
    #[getter(mT)]
    fn get_mt(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().mt())
    }
    fn unsqueeze(&self, dim: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().unsqueeze(dim))
    }
    #[pyo3(signature = (dim=None))]
    fn squeeze(&self, dim: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        match dim {
            None => wrap_r(self.tensor().squeeze(None)),
            Some(d) if d.is_none() => wrap_r(self.tensor().squeeze(None)),
            Some(d) if d.is_instance_of::<pyo3::types::PyInt>() => {
                wrap_r(self.tensor().squeeze(Some(d.extract::<i64>()?)))
            }
            Some(d) => wrap_r(self.tensor().squeeze_dims(&int_list(d)?)),
        }
    }
    #[pyo3(signature = (*sizes))]
    fn expand(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(sizes)?;
        wrap_r(self.tensor().expand(&dims))
    }
    fn expand_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.tensor().broadcast_to(other.tensor().shape()))
    }
    fn broadcast_to(&self, shape: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let dims = int_list(shape)?;
        wrap_r(self.tensor().expand(&dims))
    }
    #[pyo3(signature = (start_dim=0, end_dim=-1))]
    fn flatten(&self, start_dim: i64, end_dim: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().flatten(start_dim, end_dim))
    }
    fn unflatten(&self, dim: i64, sizes: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let sizes = int_list(sizes)?;
        wrap_r(self.tensor().unflatten(dim, &sizes))
    }
    fn narrow(&self, dim: i64, start: i64, length: usize) -> PyResult<PyTensor> {
        let d = backprop::shape::normalize_dim("narrow", dim, self.tensor().rank()).py()?;
        let n = self.tensor().dims().get(d).copied().unwrap_or(0) as i64;
        let s = if start < 0 { start + n } else { start };
        if s < 0 {
            return Err(PyIndexError::new_err(format!(
                "narrow: start {start} is out of range for dimension {d} of size {n}"
            )));
        }
        wrap_r(self.tensor().narrow(d, s as usize, length))
    }
    fn select(&self, dim: i64, index: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().select(dim, index))
    }
    #[pyo3(signature = (split_size_or_sections, dim=0))]
    fn split(
        &self,
        split_size_or_sections: &Bound<'_, PyAny>,
        dim: i64,
    ) -> PyResult<Vec<PyTensor>> {
        let t = self.tensor();
        let parts = if split_size_or_sections.is_instance_of::<PyInt>() {
            let n: i64 = split_size_or_sections.extract()?;
            let n = usize::try_from(n).map_err(|_| {
                PyValueError::new_err(format!(
                    "split expects split_size be non-negative, but got split_size={n}"
                ))
            })?;
            t.split(n, dim).py()?
        } else {
            let sections = usize_list("split", split_size_or_sections)?;
            t.split_with_sizes(&sections, dim).py()?
        };
        Ok(parts.into_iter().map(wrap).collect())
    }
    #[pyo3(signature = (chunks, dim=0))]
    fn chunk(&self, chunks: i64, dim: i64) -> PyResult<Vec<PyTensor>> {
        let chunks = usize::try_from(chunks).map_err(|_| {
            PyValueError::new_err(format!(
                "chunk expects `chunks` to be greater than 0, got: {chunks}"
            ))
        })?;
        Ok(self
            .tensor()
            .chunk(chunks, dim)
            .py()?
            .into_iter()
            .map(wrap)
            .collect())
    }
    #[pyo3(signature = (dim=0))]
    fn unbind(&self, dim: i64) -> PyResult<Vec<PyTensor>> {
        Ok(self
            .tensor()
            .unbind(dim)
            .py()?
            .into_iter()
            .map(wrap)
            .collect())
    }
    #[pyo3(signature = (memory_format=None))]
    fn contiguous(
        &self,
        py: Python<'_>,
        memory_format: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let f = crate::memory_format::parse(memory_format, MemoryFormat::Contiguous)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.contiguous_in(f)))
    }
    /// A copy; row-major unless `memory_format` says otherwise (`preserve_format` keeps a
    /// channels-last layout). PyTorch's default is `preserve_format`: ours stays row-major so
    /// that `t.clone().view(...)` keeps working on permuted tensors; values are the same.
    #[pyo3(signature = (memory_format=None))]
    fn clone(
        &self,
        py: Python<'_>,
        memory_format: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let f = crate::memory_format::parse(memory_format, MemoryFormat::Contiguous)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.clone_in(f)))
    }
    #[pyo3(signature = (*sizes))]
    fn repeat(&self, py: Python<'_>, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let reps = usize_args("repeat", sizes)?;
        let t = self.tensor();
        wrap_r(work(py, t.numel(), || t.repeat(&reps)))
    }

    // ------------------------------------------------------------------ indexing

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let t = self.tensor();
        if let (Ok(i), false) = (
            key.cast::<PyInt>(),
            key.is_instance_of::<pyo3::types::PyBool>(),
        ) {
            // fast path: t[i] (a bool is a 0-d mask, not an int)
            let i: i64 = i.extract()?;
            if t.rank() == 0 {
                return Err(PyIndexError::new_err("invalid index of a 0-dim tensor"));
            }
            return wrap_r(t.select(0usize, i));
        }
        let key = parse_index(key, t.device())?;
        wrap_r(work(py, t.numel(), || t.index(&key)))
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = self.tensor();
        let key = parse_index(key, t.device())?;
        // a Python list is read in the target's dtype (as PyTorch does), not through float32
        let v = if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
            Some(Operand::Tensor(tensor_from_data(
                value,
                Some(t.dtype()),
                t.device(),
            )?))
        } else {
            operand(value, &t)?
        };
        let v = match v {
            Some(Operand::Tensor(v)) => v,
            Some(Operand::Scalar(s)) => Tensor::full_scalar(s, t.dtype(), t.device()).py()?,
            None => {
                return Err(PyTypeError::new_err(format!(
                    "can't assign a {} to a tensor",
                    type_name(value)
                )))
            }
        };
        self.set(work(py, t.numel(), || t.index_put_(&key, &v, false)).py()?);
        Ok(())
    }

    // ------------------------------------------------------------------ arithmetic operators

    fn __add__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Add, false)
    }
    fn __radd__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Add, true)
    }
    fn __sub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Sub, false)
    }
    fn __rsub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Sub, true)
    }
    fn __mul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Mul, false)
    }
    fn __rmul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Mul, true)
    }
    fn __truediv__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Div, false)
    }
    fn __rtruediv__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Div, true)
    }
    fn __pow__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        if modulo.is_some_and(|m| !m.is_none()) {
            return Err(PyTypeError::new_err(
                "pow() with a modulus is not supported for tensors",
            ));
        }
        if let Some(s) = as_scalar(other)? {
            let t = &self.tensor();
            return Ok(Bound::new(
                py,
                wrap(work(py, t.numel(), || t.pow_scalar_value(s)).py()?),
            )?
            .into_any()
            .unbind());
        }
        self.binop(py, other, BinaryOp::Pow, false)
    }
    fn __rpow__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = modulo;
        self.binop(py, other, BinaryOp::Pow, true)
    }
    fn __matmul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Some(b) = operand_tensor(other, &self.tensor())? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.tensor();
        let r = work(py, a.numel() + b.numel(), || a.matmul(&b)).py()?;
        Ok(Bound::new(py, wrap(r))?.into_any().unbind())
    }
    fn __rmatmul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Some(b) = operand_tensor(other, &self.tensor())? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.tensor();
        let r = work(py, a.numel() + b.numel(), || b.matmul(a)).py()?;
        Ok(Bound::new(py, wrap(r))?.into_any().unbind())
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Neg)
    }
    fn __pos__(&self) -> PyTensor {
        wrap(self.tensor().clone())
    }
    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Abs)
    }
    /// `~t`: logical not of a bool tensor, bitwise not of an integer one.
    fn __invert__(&self) -> PyResult<PyTensor> {
        let t = self.tensor();
        match t.dtype() {
            DType::Bool => wrap_r(t.logical_not()),
            DType::I64 => wrap_r(t.binary_scalar(Scalar::Int(-1), BinaryOp::BitXor, false)),
            d => Err(PyTypeError::new_err(format!(
                "bitwise_not: ~ is only defined for integer and bool tensors, got {d}"
            ))),
        }
    }
    fn __and__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitAnd, false)
    }
    fn __or__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitOr, false)
    }
    fn __xor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitXor, false)
    }
    fn __rand__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitAnd, true)
    }
    fn __ror__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitOr, true)
    }
    fn __rxor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::BitXor, true)
    }
    fn __iand__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::BitAnd)
    }
    fn __ior__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::BitOr)
    }
    fn __ixor__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::BitXor)
    }
    fn bitwise_and(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::BitAnd)
    }
    fn bitwise_or(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::BitOr)
    }
    fn bitwise_xor(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::BitXor)
    }
    fn bitwise_not(&self) -> PyResult<PyTensor> {
        self.__invert__()
    }
    fn __richcmp__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let c = match op {
            CompareOp::Eq => CmpOp::Eq,
            CompareOp::Ne => CmpOp::Ne,
            CompareOp::Lt => CmpOp::Lt,
            CompareOp::Le => CmpOp::Le,
            CompareOp::Gt => CmpOp::Gt,
            CompareOp::Ge => CmpOp::Ge,
        };
        match self.cmp(py, other, c)? {
            Some(t) => Ok(Bound::new(py, wrap(t))?.into_any().unbind()),
            None => Ok(py.NotImplemented()),
        }
    }

    fn __iadd__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Add)
    }
    fn __isub__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Sub)
    }
    fn __imul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Mul)
    }
    fn __itruediv__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Div)
    }
    fn __ipow__(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        _modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Pow)
    }

    // ------------------------------------------------------------------ in-place methods

    #[pyo3(signature = (other, *, alpha=None))]
    fn add_<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        alpha: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        slf.get()
            .inplace_alpha(slf.py(), other, alpha, BinaryOp::Add)?;
        Ok(slf.clone())
    }
    #[pyo3(signature = (other, *, alpha=None))]
    fn sub_<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
        alpha: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        slf.get()
            .inplace_alpha(slf.py(), other, alpha, BinaryOp::Sub)?;
        Ok(slf.clone())
    }
    fn mul_<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Mul)?;
        Ok(slf.clone())
    }
    fn div_<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Div)?;
        Ok(slf.clone())
    }
    fn neg_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Neg)?;
        Ok(slf.clone())
    }
    fn abs_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Abs)?;
        Ok(slf.clone())
    }
    fn sign_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Sign)?;
        Ok(slf.clone())
    }
    fn exp_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Exp)?;
        Ok(slf.clone())
    }
    fn log_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Log)?;
        Ok(slf.clone())
    }
    fn sqrt_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Sqrt)?;
        Ok(slf.clone())
    }
    fn sin_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Sin)?;
        Ok(slf.clone())
    }
    fn cos_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Cos)?;
        Ok(slf.clone())
    }
    fn tanh_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Tanh)?;
        Ok(slf.clone())
    }
    fn sigmoid_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Sigmoid)?;
        Ok(slf.clone())
    }
    fn relu_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Relu)?;
        Ok(slf.clone())
    }
    fn erf_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        slf.get().unary_(slf.py(), UnaryOp::Erf)?;
        Ok(slf.clone())
    }
    fn zero_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        slf.get().set(work(slf.py(), t.numel(), || t.zero_()).py()?);
        Ok(slf.clone())
    }
    fn fill_<'py>(slf: &Bound<'py, Self>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        let s = match value.cast::<PyTensor>() {
            Ok(v) => {
                let v = v.get().tensor();
                if v.rank() != 0 {
                    return Err(PyRuntimeError::new_err(format!(
                        "fill_ only supports 0-dimension value tensor but got tensor with {} dimensions",
                        v.rank()
                    )));
                }
                slf.get()
                    .set(work(slf.py(), t.numel(), || t.copy_(&v)).py()?);
                return Ok(slf.clone());
            }
            Err(_) => scalar_arg("fill_", value)?,
        };
        slf.get()
            .set(work(slf.py(), t.numel(), || t.fill_(s)).py()?);
        Ok(slf.clone())
    }
    fn copy_<'py>(slf: &Bound<'py, Self>, src: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        let s = match src.cast::<PyTensor>() {
            Ok(s) => s.get().tensor(),
            Err(_) => tensor_from_data(src, Some(t.dtype()), t.device())?,
        };
        slf.get()
            .set(work(slf.py(), t.numel(), || t.copy_(&s)).py()?);
        Ok(slf.clone())
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp_<'py>(
        slf: &Bound<'py, Self>,
        min: Option<&Bound<'py, PyAny>>,
        max: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        let (lo, hi) = (clamp_bound(min, &t)?, clamp_bound(max, &t)?);
        let r = work(slf.py(), t.numel(), || {
            t.apply_inplace("clamp_", |v| v.clamp_tensors(lo.as_ref(), hi.as_ref()))
        })
        .py()?;
        slf.get().set(r);
        Ok(slf.clone())
    }
    #[pyo3(signature = (from_=0.0, to=1.0, *, generator=None))]
    fn uniform_<'py>(
        slf: &Bound<'py, Self>,
        from_: f64,
        to: f64,
        generator: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let _ = generator;
        let t = slf.get().tensor();
        slf.get()
            .set(work(slf.py(), t.numel(), || t.uniform_(from_, to)).py()?);
        Ok(slf.clone())
    }
    #[pyo3(signature = (mean=0.0, std=1.0, *, generator=None))]
    fn normal_<'py>(
        slf: &Bound<'py, Self>,
        mean: f64,
        std: f64,
        generator: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, Self>> {
        let _ = generator;
        let t = slf.get().tensor();
        slf.get()
            .set(work(slf.py(), t.numel(), || t.normal_(mean, std)).py()?);
        Ok(slf.clone())
    }
    fn detach_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        Err(PyRuntimeError::new_err(
            "detach_() is not supported: tensors are immutable handles here; use t = t.detach()",
        ))
        .map(|()| slf.clone())
    }

    // ------------------------------------------------------------------ math methods

    #[pyo3(signature = (other, *, alpha=None))]
    fn add(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        self.alpha_method(py, other, alpha, BinaryOp::Add)
    }
    #[pyo3(signature = (other, *, alpha=None))]
    fn sub(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        alpha: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        self.alpha_method(py, other, alpha, BinaryOp::Sub)
    }
    fn mul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Mul)
    }
    fn div(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Div)
    }
    fn pow(&self, py: Python<'_>, exponent: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let r = self.__pow__(py, exponent, None)?;
        if r.is(py.NotImplemented()) {
            return Err(unsupported_operand("pow", exponent));
        }
        Ok(r)
    }
    fn maximum(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Maximum)
    }
    fn minimum(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Minimum)
    }
    fn matmul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let a = &self.tensor();
        let b = operand_tensor(other, a)?.ok_or_else(|| unsupported_operand("matmul", other))?;
        wrap_r(work(py, a.numel() + b.numel(), || a.matmul(&b)))
    }
    fn mm(&self, py: Python<'_>, other: &PyTensor) -> PyResult<PyTensor> {
        let (a, b) = (&self.tensor(), &other.tensor());
        wrap_r(work(py, a.numel() + b.numel(), || a.mm(b)))
    }
    fn eq(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Eq)
    }
    fn ne(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Ne)
    }
    fn lt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Lt)
    }
    fn le(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Le)
    }
    fn gt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Gt)
    }
    fn ge(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.cmp_method(py, other, CmpOp::Ge)
    }
    fn logical_not(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().logical_not())
    }
    fn logical_and(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let b = logical_operand(other, &self.tensor())?;
        wrap_r(self.tensor().logical_and(&b))
    }
    fn logical_or(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let b = logical_operand(other, &self.tensor())?;
        wrap_r(self.tensor().logical_or(&b))
    }
    fn logical_xor(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let b = logical_operand(other, &self.tensor())?;
        wrap_r(self.tensor().logical_xor(&b))
    }

    fn neg(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Neg)
    }
    fn abs(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Abs)
    }
    fn sign(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Sign)
    }
    fn exp(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Exp)
    }
    fn log(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Log)
    }
    fn sqrt(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Sqrt)
    }
    fn rsqrt(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().rsqrt())
    }
    fn sin(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Sin)
    }
    fn cos(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Cos)
    }
    fn tanh(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Tanh)
    }
    fn sigmoid(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Sigmoid)
    }
    fn relu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Relu)
    }
    fn erf(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Erf)
    }
    fn square(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.square()))
    }
    fn reciprocal(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().reciprocal())
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp(
        &self,
        py: Python<'_>,
        min: Option<&Bound<'_, PyAny>>,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = &self.tensor();
        let (lo, hi) = (clamp_bound(min, t)?, clamp_bound(max, t)?);
        wrap_r(work(py, t.numel(), || {
            t.clamp_tensors(lo.as_ref(), hi.as_ref())
        }))
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clip(
        &self,
        py: Python<'_>,
        min: Option<&Bound<'_, PyAny>>,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        self.clamp(py, min, max)
    }
    #[pyo3(name = "where")]
    fn where_(&self, condition: &PyTensor, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let o = match operand(other, &self.tensor())? {
            Some(Operand::Tensor(t)) => t,
            Some(Operand::Scalar(s)) => Tensor::full_scalar(
                s,
                s.result_dtype(self.tensor().dtype()),
                self.tensor().device(),
            )
            .py()?,
            None => {
                return Err(PyTypeError::new_err(
                    "where: other must be a tensor or a number",
                ))
            }
        };
        wrap_r(Tensor::where_cond(&condition.tensor(), &self.tensor(), &o))
    }

    // ------------------------------------------------------------------ reductions

    #[pyo3(signature = (dim=None, keepdim=false, *, dtype=None))]
    fn sum(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        // dtype= converts before summing (an int64 sum requested as float64 must not wrap)
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor(),
        };
        let dims = dims_arg(dim)?;
        wrap_r(work(py, t.numel(), || t.sum(&dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false, *, dtype=None))]
    fn mean(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let dims = dims_arg(dim)?;
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor().clone(),
        };
        if !t.dtype().is_float() {
            return Err(crate::errors::to_py(backprop::Error::DType {
                op: "mean",
                dtype: t.dtype(),
                detail:
                    " (mean needs a float input; pass dtype=backprop_rs.float32 or convert first)"
                        .into(),
            }));
        }
        wrap_r(work(py, t.numel(), || t.mean(&dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=None))]
    fn max(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        self.extreme(py, dim, keepdim, true)
    }
    #[pyo3(signature = (dim=None, keepdim=None))]
    fn min(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
    ) -> PyResult<Py<PyAny>> {
        self.extreme(py, dim, keepdim, false)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amax(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        self.reduce_dims(py, ReduceOp::Max, dim, keepdim)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amin(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        self.reduce_dims(py, ReduceOp::Min, dim, keepdim)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmax(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.argmax(dim, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmin(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.argmin(dim, keepdim)))
    }
    #[pyo3(signature = (dim=None, unbiased=None, keepdim=false, *, correction=None))]
    fn var(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: Option<bool>,
        keepdim: bool,
        correction: Option<f64>,
    ) -> PyResult<PyTensor> {
        let dims = dims_arg(dim)?;
        let c = correction.unwrap_or(if unbiased.unwrap_or(true) { 1.0 } else { 0.0 });
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.var(&dims, c, keepdim)))
    }
    #[pyo3(signature = (dim=None, unbiased=None, keepdim=false, *, correction=None))]
    fn std(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        unbiased: Option<bool>,
        keepdim: bool,
        correction: Option<f64>,
    ) -> PyResult<PyTensor> {
        let dims = dims_arg(dim)?;
        let c = correction.unwrap_or(if unbiased.unwrap_or(true) { 1.0 } else { 0.0 });
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.std(&dims, c, keepdim)))
    }
    #[pyo3(signature = (dim, keepdim=false))]
    fn logsumexp(
        &self,
        py: Python<'_>,
        dim: &Bound<'_, PyAny>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let dims = int_list(dim)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.logsumexp(&dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn all(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let t = self.tensor();
        let dims = dims_arg(dim)?;
        wrap_r(work(py, t.numel(), || t.all(&dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn any(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let t = self.tensor();
        let dims = dims_arg(dim)?;
        wrap_r(work(py, t.numel(), || t.any(&dims, keepdim)))
    }
    fn nonzero(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().nonzero())
    }

    // ------------------------------------------------------------------ nn-ish methods

    #[pyo3(signature = (dim, dtype=None))]
    fn softmax(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor().clone(),
        };
        wrap_r(work(py, t.numel(), || t.softmax(dim)))
    }
    #[pyo3(signature = (dim, dtype=None))]
    fn log_softmax(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor().clone(),
        };
        wrap_r(work(py, t.numel(), || t.log_softmax(dim)))
    }
    fn gather(&self, py: Python<'_>, dim: i64, index: &PyTensor) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, index.tensor().numel(), || {
            t.gather(dim, &index.tensor())
        }))
    }
    fn scatter_add(
        &self,
        py: Python<'_>,
        dim: i64,
        index: &PyTensor,
        src: &PyTensor,
    ) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, index.tensor().numel(), || {
            t.scatter_add(dim, &index.tensor(), &src.tensor())
        }))
    }
    fn index_select(&self, py: Python<'_>, dim: i64, index: &PyTensor) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.index_select(dim, &index.tensor())))
    }
    #[pyo3(signature = (dim, index, source, *, alpha=1.0))]
    fn index_add(
        &self,
        py: Python<'_>,
        dim: i64,
        index: &PyTensor,
        source: &PyTensor,
        alpha: f64,
    ) -> PyResult<PyTensor> {
        let t = &self.tensor();
        let src = if alpha == 1.0 {
            source.tensor().clone()
        } else {
            source.tensor().mul_scalar(alpha).py()?
        };
        wrap_r(work(py, t.numel(), || {
            t.index_add(dim, &index.tensor(), &src)
        }))
    }

    // ------------------------------------------------------------------ ops surface (issue 13)

    fn atan2(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Atan2)
    }
    fn arctan2(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Atan2)
    }
    fn fmod(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Fmod)
    }
    fn remainder(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.binop_method(py, other, BinaryOp::Remainder)
    }
    fn __mod__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Remainder, false)
    }
    fn __rmod__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Remainder, true)
    }
    fn __imod__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<()> {
        self.inplace(py, other, BinaryOp::Remainder)
    }
    fn atan2_<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Atan2)?;
        Ok(slf.clone())
    }
    fn fmod_<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Fmod)?;
        Ok(slf.clone())
    }
    fn remainder_<'py>(
        slf: &Bound<'py, Self>,
        other: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Remainder)?;
        Ok(slf.clone())
    }
    fn frac(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().frac())
    }
    fn clamp_min(&self, py: Python<'_>, min: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.clamp(py, Some(min), None)
    }
    fn clamp_max(&self, py: Python<'_>, max: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.clamp(py, None, Some(max))
    }
    #[pyo3(signature = (diagonal=0))]
    fn tril(&self, py: Python<'_>, diagonal: i64) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.tril(diagonal)))
    }
    #[pyo3(signature = (diagonal=0))]
    fn triu(&self, py: Python<'_>, diagonal: i64) -> PyResult<PyTensor> {
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.triu(diagonal)))
    }
    #[pyo3(signature = (diagonal=0))]
    fn tril_<'py>(slf: &Bound<'py, Self>, diagonal: i64) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        slf.get()
            .set(t.apply_inplace("tril_", |v| v.tril(diagonal)).py()?);
        Ok(slf.clone())
    }
    #[pyo3(signature = (diagonal=0))]
    fn triu_<'py>(slf: &Bound<'py, Self>, diagonal: i64) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        slf.get()
            .set(t.apply_inplace("triu_", |v| v.triu(diagonal)).py()?);
        Ok(slf.clone())
    }
    /// `Tensor.as_strided(size, stride, storage_offset=None)`: a view of the storage with any
    /// sizes and non-negative strides (PyTorch's checks and messages).
    #[pyo3(signature = (size, stride, storage_offset=None))]
    fn as_strided(
        &self,
        size: &Bound<'_, PyAny>,
        stride: &Bound<'_, PyAny>,
        storage_offset: Option<i64>,
    ) -> PyResult<PyTensor> {
        let (size, stride) = (int_list(size)?, int_list(stride)?);
        if let Some(&n) = size.iter().find(|&&n| n < 0) {
            return Err(PyRuntimeError::new_err(format!(
                "Trying to create tensor with negative dimension {n}: {size:?}"
            )));
        }
        if stride.iter().any(|&s| s < 0) {
            return Err(PyRuntimeError::new_err(format!(
                "as_strided: Negative strides are not supported at the moment, got strides: {stride:?}"
            )));
        }
        if let Some(o) = storage_offset.filter(|&o| o < 0) {
            return Err(PyRuntimeError::new_err(format!(
                "Tensor: invalid storage offset {o}"
            )));
        }
        let size: Vec<usize> = size.into_iter().map(|n| n as usize).collect();
        let stride: Vec<usize> = stride.into_iter().map(|s| s as usize).collect();
        wrap_r(
            self.tensor()
                .as_strided(&size, &stride, storage_offset.map(|o| o as usize)),
        )
    }
    #[pyo3(signature = (offset=0, dim1=0, dim2=1))]
    fn diagonal(&self, offset: i64, dim1: i64, dim2: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().diagonal(offset, dim1, dim2))
    }
    #[pyo3(signature = (diagonal=0))]
    fn diag(&self, diagonal: i64) -> PyResult<PyTensor> {
        wrap_r(self.tensor().diag(diagonal))
    }
    fn trace(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().trace())
    }
    fn outer(&self, vec2: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.tensor().outer(&vec2.tensor()))
    }
    fn bmm(&self, py: Python<'_>, mat2: &PyTensor) -> PyResult<PyTensor> {
        let (a, b) = (self.tensor(), mat2.tensor());
        wrap_r(work(py, a.numel(), || a.bmm(&b)))
    }
    #[pyo3(signature = (mat1, mat2, *, beta=1.0, alpha=1.0))]
    fn addmm(
        &self,
        py: Python<'_>,
        mat1: &PyTensor,
        mat2: &PyTensor,
        beta: f64,
        alpha: f64,
    ) -> PyResult<PyTensor> {
        let (t, a, b) = (self.tensor(), mat1.tensor(), mat2.tensor());
        wrap_r(work(py, a.numel(), || t.addmm(&a, &b, beta, alpha)))
    }
    #[pyo3(signature = (batch1, batch2, *, beta=1.0, alpha=1.0))]
    fn baddbmm(
        &self,
        py: Python<'_>,
        batch1: &PyTensor,
        batch2: &PyTensor,
        beta: f64,
        alpha: f64,
    ) -> PyResult<PyTensor> {
        let (t, a, b) = (self.tensor(), batch1.tensor(), batch2.tensor());
        wrap_r(work(py, a.numel(), || t.baddbmm(&a, &b, beta, alpha)))
    }
    #[pyo3(signature = (*dims))]
    fn flip(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let d = int_list_args(dims)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.flip(&d)))
    }
    fn fliplr(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().flip(&[1]))
    }
    fn flipud(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().flip(&[0]))
    }
    #[pyo3(signature = (shifts, dims=None))]
    fn roll(
        &self,
        py: Python<'_>,
        shifts: &Bound<'_, PyAny>,
        dims: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let s = dims_arg(Some(shifts))?;
        let d = dims_arg(dims)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.roll(&s, &d)))
    }
    #[pyo3(signature = (*dims))]
    fn tile(&self, py: Python<'_>, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let d = int_list_args(dims)?;
        let reps = to_shape(&d)?;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.tile(reps.dims())))
    }
    #[pyo3(signature = (repeats, dim=None, *, output_size=None))]
    fn repeat_interleave(
        &self,
        py: Python<'_>,
        repeats: &Bound<'_, PyAny>,
        dim: Option<i64>,
        output_size: Option<usize>,
    ) -> PyResult<PyTensor> {
        let reps: Vec<i64> = match repeats.cast::<PyTensor>() {
            Ok(r) => {
                let r = r.get().tensor();
                if r.dtype() != DType::I64 || r.rank() > 1 {
                    return Err(PyValueError::new_err(
                        "repeat_interleave: repeats must be an int or a 0-d / 1-d int64 tensor",
                    ));
                }
                r.reshape([r.numel()]).py()?.to_vec::<i64>().py()?
            }
            Err(_) => vec![repeats.extract::<i64>()?],
        };
        let t = &self.tensor();
        let out = work(py, t.numel(), || t.repeat_interleave(&reps, dim)).py()?;
        if let Some(n) = output_size {
            let d = match dim {
                None => 0,
                Some(v) => v.rem_euclid(out.rank().max(1) as i64) as usize,
            };
            let got = out.dims().get(d).copied().unwrap_or(1);
            if got != n {
                return Err(PyValueError::new_err(format!(
                    "repeat_interleave: output_size {n} does not match the repeated size {got}"
                )));
            }
        }
        Ok(wrap(out))
    }
    #[pyo3(signature = (indices, dim=None))]
    fn take_along_dim(&self, indices: &PyTensor, dim: Option<i64>) -> PyResult<PyTensor> {
        wrap_r(self.tensor().take_along_dim(&indices.tensor(), dim))
    }
    fn masked_fill(
        &self,
        py: Python<'_>,
        mask: &PyTensor,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<PyTensor> {
        let t = &self.tensor();
        let v = fill_value("masked_fill", value, t)?;
        wrap_r(work(py, t.numel(), || t.masked_fill(&mask.tensor(), &v)))
    }
    fn masked_fill_<'py>(
        slf: &Bound<'py, Self>,
        mask: &PyTensor,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        let v = fill_value("masked_fill_", value, &t)?;
        slf.get().set(t.masked_fill_(&mask.tensor(), &v).py()?);
        Ok(slf.clone())
    }
    fn masked_select(&self, mask: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.tensor().masked_select(&mask.tensor()))
    }
    fn index_fill(
        &self,
        dim: i64,
        index: &PyTensor,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<PyTensor> {
        let t = &self.tensor();
        let v = fill_value("index_fill", value, t)?;
        wrap_r(t.index_fill(dim, &index.tensor(), &v))
    }
    fn index_fill_<'py>(
        slf: &Bound<'py, Self>,
        dim: i64,
        index: &PyTensor,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let t = slf.get().tensor();
        let v = fill_value("index_fill_", value, &t)?;
        slf.get().set(t.index_fill_(dim, &index.tensor(), &v).py()?);
        Ok(slf.clone())
    }
    fn isnan(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().isnan())
    }
    fn isinf(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().isinf())
    }
    fn isfinite(&self) -> PyResult<PyTensor> {
        wrap_r(self.tensor().isfinite())
    }
    #[pyo3(signature = (nan=0.0, posinf=None, neginf=None))]
    fn nan_to_num(&self, nan: f64, posinf: Option<f64>, neginf: Option<f64>) -> PyResult<PyTensor> {
        wrap_r(self.tensor().nan_to_num(nan, posinf, neginf))
    }
    #[pyo3(signature = (other, rtol=1e-05, atol=1e-08, equal_nan=false))]
    fn isclose(
        &self,
        other: &Bound<'_, PyAny>,
        rtol: f64,
        atol: f64,
        equal_nan: bool,
    ) -> PyResult<PyTensor> {
        let b = self
            .operand_as_tensor(other)?
            .ok_or_else(|| unsupported_operand("isclose", other))?;
        wrap_r(self.tensor().isclose(&b, rtol, atol, equal_nan))
    }
    #[pyo3(signature = (other, rtol=1e-05, atol=1e-08, equal_nan=false))]
    fn allclose(
        &self,
        other: &Bound<'_, PyAny>,
        rtol: f64,
        atol: f64,
        equal_nan: bool,
    ) -> PyResult<bool> {
        let b = self
            .operand_as_tensor(other)?
            .ok_or_else(|| unsupported_operand("allclose", other))?;
        self.tensor().allclose(&b, rtol, atol, equal_nan).py()
    }
    fn equal(&self, other: &PyTensor) -> PyResult<bool> {
        self.tensor().equal(&other.tensor()).py()
    }
    fn lerp(&self, end: &PyTensor, weight: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let w = self
            .operand_as_tensor(weight)?
            .ok_or_else(|| unsupported_operand("lerp", weight))?;
        wrap_r(self.tensor().lerp(&end.tensor(), &w))
    }
    #[pyo3(signature = (dim, *, dtype=None))]
    fn cumsum(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor(),
        };
        wrap_r(work(py, t.numel(), || t.cumsum(dim)))
    }
    #[pyo3(signature = (dim, *, dtype=None))]
    fn cumprod(
        &self,
        py: Python<'_>,
        dim: i64,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor(),
        };
        wrap_r(work(py, t.numel(), || t.cumprod(dim)))
    }
    #[pyo3(signature = (dim=-1, descending=false, stable=false))]
    fn sort(
        &self,
        py: Python<'_>,
        dim: i64,
        descending: bool,
        stable: bool,
    ) -> PyResult<Py<PyAny>> {
        let _ = stable; // the sort is always stable (allowed for stable=False too)
        let t = &self.tensor();
        let (v, i) = work(py, t.numel(), || t.sort(dim, descending)).py()?;
        values_indices(py, "sort", v, i)
    }
    #[pyo3(signature = (dim=-1, descending=false, stable=false))]
    fn argsort(
        &self,
        py: Python<'_>,
        dim: i64,
        descending: bool,
        stable: bool,
    ) -> PyResult<PyTensor> {
        let _ = stable;
        let t = &self.tensor();
        wrap_r(work(py, t.numel(), || t.argsort(dim, descending)))
    }
    #[pyo3(signature = (k, dim=-1, largest=true, sorted=true))]
    fn topk(
        &self,
        py: Python<'_>,
        k: usize,
        dim: i64,
        largest: bool,
        sorted: bool,
    ) -> PyResult<Py<PyAny>> {
        let _ = sorted; // always sorted (allowed for sorted=False too)
        let t = &self.tensor();
        let (v, i) = work(py, t.numel(), || t.topk(k, dim, largest)).py()?;
        values_indices(py, "topk", v, i)
    }
    #[pyo3(signature = (k, dim=-1, keepdim=false))]
    fn kthvalue(&self, py: Python<'_>, k: usize, dim: i64, keepdim: bool) -> PyResult<Py<PyAny>> {
        let t = &self.tensor();
        let (v, i) = work(py, t.numel(), || t.kthvalue(k, dim, keepdim)).py()?;
        values_indices(py, "kthvalue", v, i)
    }
    /// `Tensor.norm(p='fro', dim=None, keepdim=False, dtype=None)` (PyTorch's legacy norm: 'fro'
    /// is the 2-norm over `dim`, a number p the vector p-norm; 'nuc' reaches the core's matrix norm,
    /// which refuses it: Python's `Tensor.norm` wrapper sends it to `linalg.matrix_norm` first).
    #[pyo3(signature = (p=None, dim=None, keepdim=false, dtype=None))]
    fn norm(
        &self,
        py: Python<'_>,
        p: Option<&Bound<'_, PyAny>>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyTensor> {
        let t = match opt_dtype(dtype)? {
            Some(d) => self.tensor().to_dtype(d).py()?,
            None => self.tensor(),
        };
        let dims = dims_arg(dim)?;
        let ord = match p {
            None => 2.0,
            Some(o) if o.is_none() => 2.0,
            Some(o) => match o.extract::<String>() {
                Ok(s) if s == "fro" => 2.0,
                Ok(s) if s == "nuc" => {
                    let (a, b) = match dims.as_slice() {
                        [a, b] => (*a, *b),
                        _ => (-2, -1),
                    };
                    return wrap_r(t.matrix_norm(backprop::MatrixOrd::Nuc, (a, b), keepdim));
                }
                Ok(s) => {
                    return Err(PyValueError::new_err(format!(
                        "norm: p must be a number, 'fro' or 'nuc', got '{s}'"
                    )))
                }
                Err(_) => o.extract::<f64>()?,
            },
        };
        wrap_r(work(py, t.numel(), || t.vector_norm(ord, &dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn median(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<Py<PyAny>> {
        let t = &self.tensor();
        match dim {
            None => Ok(Bound::new(py, wrap(t.median().py()?))?.into_any().unbind()),
            Some(d) => {
                let (v, i) = work(py, t.numel(), || t.median_dim(d, keepdim)).py()?;
                values_indices(py, "median", v, i)
            }
        }
    }
}

impl PyTensor {
    fn extreme(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: Option<bool>,
        is_max: bool,
    ) -> PyResult<Py<PyAny>> {
        let t = &self.tensor();
        // PyTorch's overloads are max(), max(dim, keepdim=False) and max(other): a keepdim
        // (even False) without a dim matches none of them
        let keepdim_given = keepdim.is_some();
        let keepdim = keepdim.unwrap_or(false);
        match dim {
            Some(d) if !d.is_none() => {
                if let Ok(other) = d.cast::<PyTensor>() {
                    // t.max(other) is maximum(t, other)
                    let o = other.get().tensor().clone();
                    let r = if is_max { t.maximum(&o) } else { t.minimum(&o) };
                    return Ok(Bound::new(py, wrap(r.py()?))?.into_any().unbind());
                }
                let dim: i64 = d.extract()?;
                let (v, i) = work(py, t.numel(), || {
                    if is_max {
                        t.max_dim(dim, keepdim)
                    } else {
                        t.min_dim(dim, keepdim)
                    }
                })
                .py()?;
                values_indices(py, if is_max { "max" } else { "min" }, v, i)
            }
            _ => {
                if keepdim_given {
                    return Err(PyTypeError::new_err(
                        "max()/min() received an invalid combination of arguments: keepdim needs a dim",
                    ));
                }
                if t.numel() == 0 {
                    return Err(PyRuntimeError::new_err(
                        "max(): expected a non-empty tensor (the reduction has no identity)",
                    ));
                }
                let r = work(py, t.numel(), || {
                    if is_max {
                        t.max_all()
                    } else {
                        t.min_all()
                    }
                })
                .py()?;
                Ok(Bound::new(py, wrap(r))?.into_any().unbind())
            }
        }
    }
}

fn logical_operand(other: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Tensor> {
    match operand(other, like)? {
        Some(Operand::Tensor(t)) => Ok(t),
        // the scalar in the common dtype first, as PyTorch casts both operands before testing
        // truthiness: a float too small for float32 is 0 there, hence False
        Some(Operand::Scalar(s)) => {
            Tensor::full_scalar(s, s.result_dtype(like.dtype()), like.device()).py()
        }
        None => Err(PyTypeError::new_err(format!(
            "unsupported operand type for a logical op: {}",
            type_name(other)
        ))),
    }
}

/// A clamp bound: a number (a 0-d tensor that promotes like a Python number) or a tensor.
/// A scalar as the Python number of its kind.
fn scalar_to_py(py: Python<'_>, s: Scalar) -> PyResult<Bound<'_, PyAny>> {
    Ok(match s {
        Scalar::Int(i) => i.into_pyobject(py)?.into_any(),
        Scalar::Bool(b) => pyo3::types::PyBool::new(py, b).to_owned().into_any(),
        Scalar::Float(f) => f.into_pyobject(py)?.into_any(),
    })
}

fn clamp_bound(obj: Option<&Bound<'_, PyAny>>, like: &Tensor) -> PyResult<Option<Tensor>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => match o.cast::<PyTensor>() {
            Ok(t) => Ok(Some(t.get().tensor())),
            Err(_) => {
                let s = scalar_arg("clamp", o)?;
                Ok(Some(
                    Tensor::full_scalar(s, s.result_dtype(like.dtype()), like.device()).py()?,
                ))
            }
        },
    }
}

fn unsupported_operand(op: &str, other: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "{op}(): unsupported operand type {} (expected a Tensor, a real number, or a list/array of them; complex numbers are not supported)",
        type_name(other)
    ))
}

/// Makes `slf` hold the view `v` of its own storage (the in-place view ops). A leaf that
/// requires grad is refused: it would stop being the leaf its `.grad` belongs to.
fn become_view<'py>(
    slf: &Bound<'py, PyTensor>,
    op: &str,
    v: backprop::Result<Tensor>,
) -> PyResult<Bound<'py, PyTensor>> {
    let me = slf.get();
    let t = me.tensor();
    if t.is_leaf() && t.requires_grad() {
        return Err(PyRuntimeError::new_err(format!(
            "{op}(): a leaf tensor that requires grad cannot change its shape in place in backprop_rs \
             (it would stop being the leaf its .grad belongs to); use the out-of-place form, \
             x = x.{}(...)",
            op.trim_end_matches('_')
        )));
    }
    me.set(v.py()?);
    Ok(slf.clone())
}

/// `t.<op>()` for any unary primitive by name (what `Tensor.__getattr__` hands out).
#[pyfunction]
pub fn _unary(py: Python<'_>, t: &PyTensor, name: &str) -> PyResult<PyTensor> {
    let op = UnaryOp::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("no unary op named '{name}'")))?;
    t.unary(py, op)
}

/// `t.<op>_()` for any unary primitive by name, in place; returns the tensor.
#[pyfunction]
pub fn _unary_<'py>(t: &Bound<'py, PyTensor>, name: &str) -> PyResult<Bound<'py, PyTensor>> {
    let op = UnaryOp::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("no unary op named '{name}'")))?;
    t.get().unary_(t.py(), op)?;
    Ok(t.clone())
}

/// The names of the engine's unary primitives.
#[pyfunction]
pub fn _unary_op_names() -> Vec<&'static str> {
    UnaryOp::ALL.iter().map(|o| o.name()).collect()
}

/// Ints given as varargs (`t.flip(0, 1)`) or as one list/tuple (`t.flip((0, 1))`).
fn int_list_args(args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        let a = args.get_item(0)?;
        if !a.is_instance_of::<PyInt>() {
            return a.extract::<Vec<i64>>();
        }
    }
    args.extract::<Vec<i64>>()
}

/// A fill value: a 0-d tensor (kept, so it can receive a gradient) or a number.
fn fill_value(op: &str, value: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Tensor> {
    if let Ok(t) = value.cast::<PyTensor>() {
        return Ok(t.get().tensor());
    }
    let s = scalar_arg(op, value)?;
    Tensor::full_scalar(s, like.dtype(), like.device()).py()
}

/// A conversion's result laid out as its source was (channels-last stays channels-last), as
/// PyTorch's `preserve_format`, the default of `to` and the dtype shortcuts. Views that share the
/// source's storage already have its strides and are returned as they are.
fn preserve_layout(src: &Tensor, r: Tensor) -> backprop::Result<Tensor> {
    match src.suggest_memory_format() {
        MemoryFormat::Contiguous => Ok(r),
        _ if r.shares_storage(src) => Ok(r),
        f => r.contiguous_in(f),
    }
}
