//! `backprop_rs.Tensor`: the Python face of `backprop::Tensor`. Glue only: argument parsing,
//! conversions, and releasing the GIL around real work; all maths is in the core crate.

use crate::convert::*;
use crate::errors::IntoPy;
use backprop::op::{BinaryOp, CmpOp, ReduceOp, UnaryOp};
use backprop::{DType, Device, Scalar, Shape, Tensor};
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
#[pyclass(name = "Tensor", module = "backprop_rs", frozen, subclass, weakref)]
pub struct PyTensor {
    pub inner: Tensor,
}

impl PyTensor {
    pub fn new(inner: Tensor) -> Self {
        PyTensor { inner }
    }
}

pub fn wrap(t: Tensor) -> PyTensor {
    PyTensor { inner: t }
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
        return Ok(Some(Operand::Tensor(t.get().inner.clone())));
    }
    if let Some(s) = as_scalar(obj) {
        return Ok(Some(Operand::Scalar(s)));
    }
    Ok(operand_tensor(obj, like)?.map(Operand::Tensor))
}

impl PyTensor {
    fn binop(
        &self,
        py: Python<'_>,
        other: &Bound<'_, PyAny>,
        op: BinaryOp,
        reversed: bool,
    ) -> PyResult<Py<PyAny>> {
        let a = &self.inner;
        let r = match operand(other, a)? {
            None => return Ok(py.NotImplemented()),
            Some(Operand::Scalar(s)) => work(py, a.numel(), || a.binary_scalar(s, op, reversed)),
            Some(Operand::Tensor(b)) => work(py, a.numel().max(b.numel()), || {
                if reversed {
                    b.binary(a, op)
                } else {
                    a.binary(&b, op)
                }
            }),
        };
        Ok(Bound::new(py, wrap(r.py()?))?.into_any().unbind())
    }

    fn cmp(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: CmpOp) -> PyResult<Option<Tensor>> {
        let a = &self.inner;
        Ok(match operand(other, a)? {
            None => None,
            Some(Operand::Scalar(s)) => Some(work(py, a.numel(), || a.compare_scalar(s, op)).py()?),
            Some(Operand::Tensor(b)) => Some(work(py, a.numel(), || a.compare(&b, op)).py()?),
        })
    }

    fn inplace(&self, py: Python<'_>, other: &Bound<'_, PyAny>, op: BinaryOp) -> PyResult<()> {
        let a = &self.inner;
        let r = match operand(other, a)? {
            None => {
                return Err(PyTypeError::new_err(format!(
                    "unsupported operand type for in-place {}: {}",
                    op.name(),
                    type_name(other)
                )))
            }
            Some(Operand::Scalar(s)) => {
                work(py, a.numel(), || a.binary_scalar(s, op, false)).py()?
            }
            Some(Operand::Tensor(b)) => work(py, a.numel(), || a.binary(&b, op)).py()?,
        };
        if r.dtype() != a.dtype() && DType::promote(r.dtype(), a.dtype()) != a.dtype() {
            return Err(crate::errors::to_py(backprop::Error::DType {
                op: op.name(),
                dtype: a.dtype(),
                detail: format!(
                    ": result type {} can't be cast to the desired output type {} in-place",
                    r.dtype(),
                    a.dtype()
                ),
            }));
        }
        if r.shape() != a.shape() {
            return Err(crate::errors::to_py(backprop::Error::ShapeMismatch {
                op: op.name(),
                lhs: a.shape().clone(),
                rhs: r.shape().clone(),
                detail: ": the in-place result would have a different shape".into(),
            }));
        }
        work(py, a.numel(), || a.copy_(&r)).py()
    }

    fn unary(&self, py: Python<'_>, op: UnaryOp) -> PyResult<PyTensor> {
        let a = &self.inner;
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
        let a = &self.inner;
        wrap_r(work(py, a.numel(), || a.reduce(op, &dims, keepdim)))
    }
}

// ------------------------------------------------------------------------------ indexing

enum Idx {
    Int(i64),
    Slice(Option<i64>, Option<i64>, i64),
    NewAxis,
    Ellipsis,
    Tensor(Tensor),
}

fn parse_index(key: &Bound<'_, PyAny>, device: Device) -> PyResult<Vec<Idx>> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(t) = key.cast::<PyTuple>() {
        t.iter().collect()
    } else {
        vec![key.clone()]
    };
    let mut out = Vec::with_capacity(items.len());
    for it in items {
        out.push(if it.is_instance_of::<PyNone>() {
            Idx::NewAxis
        } else if it.is_instance_of::<PyEllipsis>() {
            Idx::Ellipsis
        } else if let Ok(s) = it.cast::<PySlice>() {
            let get = |name: &str| -> PyResult<Option<i64>> {
                let v = s.getattr(name)?;
                if v.is_none() {
                    Ok(None)
                } else {
                    v.extract::<i64>().map(Some).map_err(|_| PyTypeError::new_err("slice indices must be integers or None"))
                }
            };
            let step = get("step")?.unwrap_or(1);
            if step <= 0 {
                return Err(PyValueError::new_err("step must be greater than zero (negative steps are not supported, as in PyTorch)"));
            }
            Idx::Slice(get("start")?, get("stop")?, step)
        } else if let Ok(t) = it.cast::<PyTensor>() {
            let t = t.get().inner.clone();
            if t.dtype() == DType::I64 && t.rank() == 0 {
                Idx::Int(t.item().py()? as i64)
            } else {
                Idx::Tensor(t)
            }
        } else if it.is_instance_of::<pyo3::types::PyBool>() {
            return Err(PyIndexError::new_err("indexing with a Python bool is not supported; use a bool tensor mask"));
        } else if let Ok(i) = it.extract::<i64>() {
            Idx::Int(i)
        } else if it.is_instance_of::<PyList>() || it.is_instance_of::<numpy::PyUntypedArray>() {
            let t = tensor_from_data(&it, None, device)?;
            if !matches!(t.dtype(), DType::I64 | DType::Bool) {
                return Err(PyIndexError::new_err("tensors used as indices must be long (int64) or bool"));
            }
            Idx::Tensor(t)
        } else {
            return Err(PyIndexError::new_err(format!(
                "only integers, slices, None, Ellipsis and int64/bool tensors are valid indices (got {})",
                type_name(&it)
            )));
        });
    }
    Ok(out)
}

/// What indexing produced: the result, plus whether advanced (tensor) indexing was used and,
/// for assignment, the basic view and advanced indices to write through.
struct Indexed {
    basic: Tensor,
    /// (dim in `basic`, int64 index tensor) for each advanced index.
    advanced: Vec<(usize, Tensor)>,
}

fn apply_basic(t: &Tensor, items: Vec<Idx>) -> PyResult<Indexed> {
    let consumed: usize = items
        .iter()
        .map(|i| match i {
            Idx::Int(_) | Idx::Slice(..) => 1,
            Idx::Tensor(m) if m.dtype() == DType::Bool => m.rank(),
            Idx::Tensor(_) => 1,
            _ => 0,
        })
        .sum();
    if items.iter().filter(|i| matches!(i, Idx::Ellipsis)).count() > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis ('...')",
        ));
    }
    if consumed > t.rank() {
        return Err(PyIndexError::new_err(format!(
            "too many indices for tensor of dimension {} (got {consumed})",
            t.rank()
        )));
    }
    let mut cur = t.clone();
    let mut d = 0usize;
    let mut advanced: Vec<(usize, Tensor)> = Vec::new();
    let mut saw_ellipsis = false;
    for it in items {
        match it {
            Idx::Int(i) => {
                cur = cur.select(d, i).py()?;
            }
            Idx::Slice(s, e, step) => {
                cur = cur.slice(d, s, e, step).py()?;
                d += 1;
            }
            Idx::NewAxis => {
                cur = cur.unsqueeze(d).py()?;
                d += 1;
            }
            Idx::Ellipsis => {
                saw_ellipsis = true;
                d += t.rank() - consumed;
            }
            Idx::Tensor(m) if m.dtype() == DType::Bool => {
                let k = m.rank();
                if cur.dims().get(d..d + k) != Some(m.dims()) {
                    return Err(PyIndexError::new_err(format!(
                        "the shape of the mask {} does not match the shape {} of the indexed tensor starting at dim {d}",
                        m.shape(),
                        cur.shape()
                    )));
                }
                let nz = m.nonzero().py()?; // [count, k]
                for j in 0..k {
                    advanced.push((d + j, nz.select(1usize, j as i64).py()?.contiguous().py()?));
                }
                d += k;
            }
            Idx::Tensor(ix) => {
                if ix.dtype() != DType::I64 {
                    return Err(PyIndexError::new_err(format!(
                        "tensors used as indices must be long (int64) or bool, got {}",
                        ix.dtype()
                    )));
                }
                advanced.push((d, ix));
                d += 1;
            }
        }
    }
    let _ = saw_ellipsis;
    Ok(Indexed {
        basic: cur,
        advanced,
    })
}

/// Gathers with advanced indices (NumPy/PyTorch rules: broadcast the index tensors; the indexed
/// dims are replaced by the broadcast index shape, in place if they are adjacent, else in front).
fn apply_advanced(ix: Indexed) -> PyResult<Tensor> {
    let Indexed { basic, advanced } = ix;
    if advanced.is_empty() {
        return Ok(basic);
    }
    let dims: Vec<usize> = advanced.iter().map(|(d, _)| *d).collect();
    let adjacent = dims.windows(2).all(|w| w[1] == w[0] + 1);
    // move the advanced dims to the front when they are not adjacent
    let (x, first) = if adjacent {
        (basic, dims[0])
    } else {
        let mut perm = dims.clone();
        perm.extend((0..basic.rank()).filter(|d| !dims.contains(d)));
        (basic.permute(&perm).py()?, 0)
    };
    let k = dims.len();
    let sizes: Vec<usize> = (0..k).map(|j| x.dims()[first + j]).collect();
    // broadcast shape of the index tensors
    let mut bshape = Shape::scalar();
    for (_, t) in &advanced {
        bshape = Shape::broadcast("index", &bshape, t.shape()).py()?;
    }
    let mut linear: Option<Tensor> = None;
    for (j, (_, t)) in advanced.iter().enumerate() {
        let n = sizes[j] as f64;
        // bounds check per dim (negative indices count from the end)
        if t.numel() > 0 {
            let (lo, hi) = (
                t.min_all().py()?.item().py()?,
                t.max_all().py()?.item().py()?,
            );
            if lo < -n || hi >= n {
                let bad = if lo < -n { lo } else { hi };
                return Err(PyIndexError::new_err(format!(
                    "index {bad} is out of bounds for dimension {} with size {}",
                    dims[j], sizes[j]
                )));
            }
        }
        let t = Tensor::where_cond(
            &t.lt_scalar(0.0).py()?,
            &t.binary_scalar(Scalar::Int(sizes[j] as i64), BinaryOp::Add, false)
                .py()?,
            t,
        )
        .py()?;
        let t = t.broadcast_to(&bshape).py()?;
        linear = Some(match linear {
            None => t,
            Some(l) => l
                .binary_scalar(Scalar::Int(sizes[j] as i64), BinaryOp::Mul, false)
                .py()?
                .add(&t)
                .py()?,
        });
    }
    let linear = linear.ok_or_else(|| PyRuntimeError::new_err("internal: no index"))?;
    let mut merged: Vec<usize> = x.dims()[..first].to_vec();
    merged.push(sizes.iter().product());
    merged.extend_from_slice(&x.dims()[first + k..]);
    let xm = x.reshape(merged).py()?;
    let flat = linear.reshape([linear.numel()]).py()?;
    let picked = xm.index_select(first, &flat).py()?;
    let mut out: Vec<usize> = x.dims()[..first].to_vec();
    out.extend_from_slice(bshape.dims());
    out.extend_from_slice(&x.dims()[first + k..]);
    picked.reshape(out).py()
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
                    let t = t.get().inner.detach();
                    match dt {
                        Some(dt) if dt != t.dtype() => t.to_dtype(dt).py()?,
                        _ => t,
                    }
                } else {
                    tensor_from_data(d, dt, dev)?
                }
            }
            _ => Tensor::zeros([0], dt.unwrap_or(DType::F32), dev).py()?,
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
        PyTuple::new(py, self.inner.dims())
    }
    #[pyo3(signature = (dim=None))]
    fn size<'py>(&self, py: Python<'py>, dim: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, self.inner.dims())?.into_any()),
            Some(d) => Ok(self.inner.size(d).py()?.into_pyobject(py)?.into_any()),
        }
    }
    fn dim(&self) -> usize {
        self.inner.rank()
    }
    #[getter]
    fn ndim(&self) -> usize {
        self.inner.rank()
    }
    fn numel(&self) -> usize {
        self.inner.numel()
    }
    fn nelement(&self) -> usize {
        self.inner.numel()
    }
    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType {
            inner: self.inner.dtype(),
        }
    }
    #[getter]
    fn device(&self) -> PyDevice {
        PyDevice {
            inner: self.inner.device(),
        }
    }
    #[getter]
    fn is_gpu(&self) -> bool {
        self.inner.device() == Device::Gpu
    }
    #[getter]
    fn is_cuda(&self) -> bool {
        self.inner.device() == Device::Gpu
    }
    fn is_floating_point(&self) -> bool {
        self.inner.dtype().is_float()
    }
    fn element_size(&self) -> usize {
        self.inner.dtype().size_in_bytes()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.dtype().size_in_bytes()
    }
    #[getter]
    fn nbytes(&self) -> usize {
        self.inner.numel() * self.inner.dtype().size_in_bytes()
    }
    #[pyo3(signature = (dim=None))]
    fn stride<'py>(&self, py: Python<'py>, dim: Option<i64>) -> PyResult<Bound<'py, PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, self.inner.strides())?.into_any()),
            Some(d) => {
                let d = backprop::shape::normalize_dim("stride", d, self.inner.rank()).py()?;
                Ok(self
                    .inner
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
        self.inner.layout().offset()
    }
    fn is_contiguous(&self) -> bool {
        self.inner.is_contiguous()
    }
    /// Address of the first element (CPU tensors), for checking memory sharing.
    fn data_ptr(&self) -> usize {
        self.inner.cpu_data_ptr().map(|p| p as usize).unwrap_or(0)
    }
    fn __len__(&self) -> PyResult<usize> {
        self.inner
            .dims()
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
    fn __repr__(&self) -> String {
        self.inner.to_string()
    }
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }

    // ------------------------------------------------------------------ autograd

    #[getter]
    fn get_requires_grad(&self) -> bool {
        self.inner.requires_grad()
    }
    #[setter]
    fn set_requires_grad(&self, flag: bool) -> PyResult<()> {
        self.inner.requires_grad_(flag).py().map(|_| ())
    }
    #[pyo3(signature = (requires_grad=true))]
    fn requires_grad_(slf: &Bound<'_, Self>, requires_grad: bool) -> PyResult<Py<Self>> {
        slf.get().inner.requires_grad_(requires_grad).py()?;
        Ok(slf.clone().unbind())
    }
    #[getter]
    fn get_grad(&self) -> Option<PyTensor> {
        self.inner.grad().map(wrap)
    }
    #[setter]
    fn set_grad(&self, g: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        match g {
            None => self.inner.set_grad(None).py(),
            Some(g) if g.is_none() => self.inner.set_grad(None).py(),
            Some(g) => {
                let t = g
                    .cast::<PyTensor>()
                    .map_err(|_| PyTypeError::new_err("assigned grad must be a Tensor or None"))?;
                self.inner.set_grad(Some(t.get().inner.clone())).py()
            }
        }
    }
    #[getter]
    fn is_leaf(&self) -> bool {
        self.inner.is_leaf()
    }
    /// Name of the op that made this tensor (`"MulBackward"`), or None for leaves.
    #[getter]
    fn grad_fn(&self) -> Option<String> {
        self.inner.grad_fn_name().map(|n| {
            let camel: String = n
                .split('_')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().chain(c).collect::<String>())
                        .unwrap_or_default()
                })
                .collect();
            format!("{camel}Backward")
        })
    }
    fn retain_grad(&self) {
        self.inner.retain_grad();
    }
    #[getter]
    fn retains_grad(&self) -> bool {
        self.inner.retains_grad()
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
        if inputs.is_some_and(|i| !i.is_none()) {
            return Err(PyValueError::new_err(
                "backward(inputs=...) is not supported; use backprop_rs.autograd.grad",
            ));
        }
        let g = match gradient {
            Some(g) if !g.is_none() => Some(match g.cast::<PyTensor>() {
                Ok(t) => t.get().inner.clone(),
                Err(_) => tensor_from_data(g, Some(self.inner.dtype()), self.inner.device())?,
            }),
            _ => None,
        };
        let t = &self.inner;
        let retain = retain_graph.unwrap_or(create_graph);
        py.detach(|| t.backward_with(g.as_ref(), retain, create_graph))
            .py()
    }
    fn detach(&self) -> PyTensor {
        wrap(self.inner.detach())
    }
    /// The same data without autograd history (PyTorch's `.data`).
    #[getter]
    fn get_data(&self) -> PyTensor {
        wrap(self.inner.detach())
    }
    #[setter]
    fn set_data(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = value
            .cast::<PyTensor>()
            .map_err(|_| PyTypeError::new_err("data must be a Tensor"))?
            .get()
            .inner
            .clone();
        if v.shape() != self.inner.shape() || v.dtype() != self.inner.dtype() {
            return Err(PyValueError::new_err(format!(
                "assigning .data of shape {} / {} to a tensor of shape {} / {}: only same shape and dtype are supported (the data is copied)",
                v.shape(), v.dtype(), self.inner.shape(), self.inner.dtype()
            )));
        }
        let _g = backprop::no_grad();
        let t = &self.inner;
        work(py, t.numel(), || t.detach().copy_(&v)).py()
    }

    // ------------------------------------------------------------------ conversion

    /// The value of a one-element tensor as a Python number.
    fn item<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.inner.item().py()?;
        Ok(match self.inner.dtype() {
            DType::I64 => (v as i64).into_pyobject(py)?.into_any(),
            DType::Bool => pyo3::types::PyBool::new(py, v != 0.0).to_owned().into_any(),
            _ => v.into_pyobject(py)?.into_any(),
        })
    }
    fn tolist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_numpy(py, &self.inner, false)?.call_method0("tolist")
    }
    /// A NumPy array sharing this tensor's memory (CPU) or a copy (GPU).
    #[pyo3(signature = (*, force=false))]
    fn numpy<'py>(&self, py: Python<'py>, force: bool) -> PyResult<Bound<'py, PyAny>> {
        if self.inner.requires_grad() && !force {
            return Err(PyRuntimeError::new_err("Can't call numpy() on a tensor that requires grad. Use tensor.detach().numpy() instead."));
        }
        to_numpy(py, &self.inner, force)
    }
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let wants_dtype = dtype.filter(|d| !d.is_none());
        if copy == Some(false) && self.inner.device() != Device::Cpu {
            return Err(PyValueError::new_err("Unable to avoid copy while creating an array as requested: the tensor is on the gpu."));
        }
        let arr = to_numpy(py, &self.inner, copy == Some(true))?;
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
        if self.inner.numel() != 1 {
            return Err(PyRuntimeError::new_err(format!(
                "Boolean value of Tensor with {} values is ambiguous",
                self.inner.numel()
            )));
        }
        Ok(self.inner.item().py()? != 0.0)
    }
    fn __float__(&self) -> PyResult<f64> {
        self.inner.item().py()
    }
    fn __int__(&self) -> PyResult<i64> {
        Ok(self.inner.item().py()? as i64)
    }
    fn __index__(&self) -> PyResult<i64> {
        if self.inner.dtype() != DType::I64 || self.inner.numel() != 1 {
            return Err(PyTypeError::new_err(
                "only integer tensors of a single element can be converted to an index",
            ));
        }
        Ok(self.inner.item().py()? as i64)
    }

    /// `to(device)`, `to(dtype)`, `to(device, dtype)`, `to(other_tensor)`, keywords too.
    #[pyo3(signature = (*args, dtype=None, device=None, non_blocking=false, copy=false))]
    fn to(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        dtype: Option<&Bound<'_, PyAny>>,
        device: Option<&Bound<'_, PyAny>>,
        non_blocking: bool,
        copy: bool,
    ) -> PyResult<PyTensor> {
        let _ = non_blocking;
        let mut dt = opt_dtype(dtype)?;
        let mut dev = match device {
            Some(d) if !d.is_none() => Some(parse_device(d)?),
            _ => None,
        };
        for a in args.iter() {
            if let Ok(t) = a.cast::<PyTensor>() {
                dt = Some(t.get().inner.dtype());
                dev = Some(t.get().inner.device());
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
        let t = &self.inner;
        let r = work(py, t.numel(), || -> backprop::Result<Tensor> {
            let mut r = t.clone();
            if let Some(d) = dev {
                r = r.to_device(d)?;
            }
            if let Some(d) = dt {
                r = r.to_dtype(d)?;
            }
            if copy && r.shares_storage(t) {
                r = r.contiguous_copy()?;
            }
            Ok(r)
        });
        wrap_r(r)
    }
    fn cpu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.to_device(Device::Cpu)))
    }
    fn gpu(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.to_device(Device::Gpu)))
    }
    #[pyo3(signature = (device=None))]
    fn cuda(&self, py: Python<'_>, device: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        let _ = device;
        self.gpu(py)
    }
    fn float(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.to_dtype(DType::F32))
    }
    fn double(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.to_dtype(DType::F64))
    }
    fn long(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.to_dtype(DType::I64))
    }
    fn int(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.to_dtype(DType::I64))
    }
    fn bool(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.to_dtype(DType::Bool))
    }
    #[pyo3(signature = (dtype=None))]
    fn r#type(&self, py: Python<'_>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        match opt_dtype(dtype)? {
            None => Ok(format!("backprop_rs.{}", self.inner.dtype())
                .into_pyobject(py)?
                .into_any()
                .unbind()),
            Some(d) => Ok(Bound::new(py, wrap(self.inner.to_dtype(d).py()?))?
                .into_any()
                .unbind()),
        }
    }

    // ------------------------------------------------------------------ views

    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(shape)?;
        wrap_r(self.inner.reshape_infer(&dims))
    }
    #[pyo3(signature = (*shape))]
    fn view(&self, shape: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        if shape.len() == 1 {
            if let Ok(d) = parse_dtype(&shape.get_item(0)?) {
                if d != self.inner.dtype() {
                    return Err(PyTypeError::new_err(
                        "view(dtype) reinterpretation is not supported; use .to(dtype)",
                    ));
                }
                return Ok(wrap(self.inner.clone()));
            }
        }
        let dims = shape_args(shape)?;
        wrap_r(self.inner.view(&dims))
    }
    fn view_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        let dims: Vec<i64> = other.inner.dims().iter().map(|&d| d as i64).collect();
        wrap_r(self.inner.view(&dims))
    }
    fn reshape_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.inner.reshape(other.inner.shape().clone()))
    }
    #[pyo3(signature = (*dims))]
    fn permute(&self, dims: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(dims)?;
        if dims.len() != self.inner.rank() {
            return Err(crate::errors::to_py(backprop::Error::invalid(
                "permute",
                format!(
                    "number of dims {} does not match the tensor's rank {}",
                    dims.len(),
                    self.inner.rank()
                ),
            )));
        }
        wrap_r(self.inner.permute(&dims))
    }
    fn transpose(&self, dim0: i64, dim1: i64) -> PyResult<PyTensor> {
        wrap_r(self.inner.transpose(dim0, dim1))
    }
    fn swapaxes(&self, axis0: i64, axis1: i64) -> PyResult<PyTensor> {
        wrap_r(self.inner.transpose(axis0, axis1))
    }
    fn t(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.t())
    }
    #[getter(T)]
    fn get_t(&self) -> PyResult<PyTensor> {
        // PyTorch's .T reverses all dims
        let r = self.inner.rank();
        let perm: Vec<usize> = (0..r).rev().collect();
        wrap_r(self.inner.permute(&perm))
    }
    #[getter(mT)]
    fn get_mt(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.mt())
    }
    fn unsqueeze(&self, dim: i64) -> PyResult<PyTensor> {
        wrap_r(self.inner.unsqueeze(dim))
    }
    #[pyo3(signature = (dim=None))]
    fn squeeze(&self, dim: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
        match dim {
            None => wrap_r(self.inner.squeeze(None)),
            Some(d) if d.is_none() => wrap_r(self.inner.squeeze(None)),
            Some(d) => {
                let mut dims = int_list(d)?;
                let rank = self.inner.rank() as i64;
                for x in dims.iter_mut() {
                    if *x < 0 {
                        *x += rank.max(1);
                    }
                }
                dims.sort_unstable();
                let mut t = self.inner.clone();
                for &x in dims.iter().rev() {
                    t = t.squeeze(Some(x)).py()?;
                }
                Ok(wrap(t))
            }
        }
    }
    #[pyo3(signature = (*sizes))]
    fn expand(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let dims = shape_args(sizes)?;
        wrap_r(self.inner.expand(&dims))
    }
    fn expand_as(&self, other: &PyTensor) -> PyResult<PyTensor> {
        wrap_r(self.inner.broadcast_to(other.inner.shape()))
    }
    fn broadcast_to(&self, shape: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let dims = int_list(shape)?;
        wrap_r(self.inner.expand(&dims))
    }
    #[pyo3(signature = (start_dim=0, end_dim=-1))]
    fn flatten(&self, start_dim: i64, end_dim: i64) -> PyResult<PyTensor> {
        wrap_r(self.inner.flatten(start_dim, end_dim))
    }
    fn unflatten(&self, dim: i64, sizes: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let sizes = int_list(sizes)?;
        let d = backprop::shape::normalize_dim("unflatten", dim, self.inner.rank()).py()?;
        let mut dims: Vec<i64> = self.inner.dims()[..d].iter().map(|&x| x as i64).collect();
        dims.extend(&sizes);
        dims.extend(self.inner.dims()[d + 1..].iter().map(|&x| x as i64));
        wrap_r(self.inner.reshape_infer(&dims))
    }
    fn narrow(&self, dim: i64, start: i64, length: usize) -> PyResult<PyTensor> {
        let d = backprop::shape::normalize_dim("narrow", dim, self.inner.rank()).py()?;
        let n = self.inner.dims().get(d).copied().unwrap_or(0) as i64;
        let s = if start < 0 { start + n } else { start };
        if s < 0 {
            return Err(PyIndexError::new_err(format!(
                "narrow: start {start} is out of range for dimension {d} of size {n}"
            )));
        }
        wrap_r(self.inner.narrow(d, s as usize, length))
    }
    fn select(&self, dim: i64, index: i64) -> PyResult<PyTensor> {
        wrap_r(self.inner.select(dim, index))
    }
    #[pyo3(signature = (split_size_or_sections, dim=0))]
    fn split(
        &self,
        split_size_or_sections: &Bound<'_, PyAny>,
        dim: i64,
    ) -> PyResult<Vec<PyTensor>> {
        if let Ok(n) = split_size_or_sections.extract::<usize>() {
            return Ok(self
                .inner
                .split(n, dim)
                .py()?
                .into_iter()
                .map(wrap)
                .collect());
        }
        let sections = int_list(split_size_or_sections)?;
        let d = backprop::shape::normalize_dim("split", dim, self.inner.rank()).py()?;
        let total: i64 = sections.iter().sum();
        if total != self.inner.dims()[d] as i64 || sections.iter().any(|&s| s < 0) {
            return Err(PyValueError::new_err(format!(
                "split sizes {sections:?} must sum to the size {} of dim {d}",
                self.inner.dims()[d]
            )));
        }
        let mut off = 0;
        let mut out = Vec::new();
        for s in sections {
            out.push(wrap(self.inner.narrow(d, off, s as usize).py()?));
            off += s as usize;
        }
        Ok(out)
    }
    #[pyo3(signature = (chunks, dim=0))]
    fn chunk(&self, chunks: usize, dim: i64) -> PyResult<Vec<PyTensor>> {
        Ok(self
            .inner
            .chunk(chunks, dim)
            .py()?
            .into_iter()
            .map(wrap)
            .collect())
    }
    #[pyo3(signature = (dim=0))]
    fn unbind(&self, dim: i64) -> PyResult<Vec<PyTensor>> {
        let d = backprop::shape::normalize_dim("unbind", dim, self.inner.rank()).py()?;
        (0..self.inner.dims()[d])
            .map(|i| wrap_r(self.inner.select(d, i as i64)))
            .collect()
    }
    fn contiguous(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.contiguous()))
    }
    fn clone(&self, py: Python<'_>) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.contiguous_copy()))
    }
    #[pyo3(signature = (*sizes))]
    fn repeat(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<PyTensor> {
        let reps = shape_args(sizes)?;
        let t = &self.inner;
        if reps.len() < t.rank() {
            return Err(PyValueError::new_err(
                "number of repeat dims can not be smaller than the number of tensor dims",
            ));
        }
        // repeat = unsqueeze each dim, expand it by its count, merge: [r0, d0, r1, d1, ...]
        let lead = reps.len() - t.rank();
        let mut base: Vec<usize> = vec![1; lead];
        base.extend_from_slice(t.dims());
        let mut inter: Vec<usize> = Vec::new();
        let mut expand: Vec<i64> = Vec::new();
        let mut fin: Vec<usize> = Vec::new();
        for (i, &r) in reps.iter().enumerate() {
            let r = usize::try_from(r)
                .map_err(|_| PyValueError::new_err("repeat counts must be non-negative"))?;
            inter.push(1);
            inter.push(base[i]);
            expand.push(r as i64);
            expand.push(base[i] as i64);
            fin.push(r * base[i]);
        }
        let r = t
            .reshape(inter)
            .and_then(|x| x.expand(&expand))
            .and_then(|x| x.reshape(fin));
        wrap_r(r)
    }

    // ------------------------------------------------------------------ indexing

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        if let Ok(i) = key.cast::<PyInt>() {
            // fast path: t[i]
            let i: i64 = i.extract()?;
            if self.inner.rank() == 0 {
                return Err(PyIndexError::new_err("invalid index of a 0-dim tensor"));
            }
            return wrap_r(self.inner.select(0usize, i));
        }
        let items = parse_index(key, self.inner.device())?;
        let ix = apply_basic(&self.inner, items)?;
        let n = ix.basic.numel();
        let r = work(py, n, || Ok::<_, PyErr>(ix)).and_then(apply_advanced)?;
        Ok(wrap(r))
    }

    fn __setitem__(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let t = &self.inner;
        let items = parse_index(key, t.device())?;
        // a full-shape bool mask: t[mask] = v  ==  t.copy_(where(mask, v, t))
        if let [Idx::Tensor(m)] = items.as_slice() {
            if m.dtype() == DType::Bool && m.shape() == t.shape() {
                let v = match operand(value, t)? {
                    Some(Operand::Tensor(v)) => v,
                    Some(Operand::Scalar(s)) => {
                        Tensor::full_scalar(s, t.dtype(), t.device()).py()?
                    }
                    None => {
                        return Err(PyTypeError::new_err(format!(
                            "can't assign a {} to a tensor",
                            type_name(value)
                        )))
                    }
                };
                if v.numel() != 1 && v.shape() != t.shape() {
                    return Err(PyValueError::new_err(format!(
                        "masked assignment needs a scalar or a value of the tensor's shape {}, got {}",
                        t.shape(),
                        v.shape()
                    )));
                }
                let v = if v.numel() == 1 {
                    v.reshape(Shape::scalar()).py()?
                } else {
                    v
                };
                t.check_inplace_py()?;
                let _g = backprop::no_grad();
                let r = Tensor::where_cond(m, &v.to_dtype(t.dtype()).py()?, t).py()?;
                return work(py, t.numel(), || t.copy_(&r)).py();
            }
        }
        let ix = apply_basic(t, items)?;
        let v = match operand(value, t)? {
            Some(Operand::Tensor(v)) => v,
            Some(Operand::Scalar(s)) => Tensor::full_scalar(s, t.dtype(), t.device()).py()?,
            None => {
                return Err(PyTypeError::new_err(format!(
                    "can't assign a {} to a tensor",
                    type_name(value)
                )))
            }
        };
        match ix.advanced.as_slice() {
            [] => work(py, ix.basic.numel(), || ix.basic.copy_(&v)).py(),
            [(d, idx)] if idx.rank() <= 1 => {
                // one integer index: write each selected slice
                let idx = idx.reshape([idx.numel()]).py()?;
                let ids: Vec<i64> = idx.to_vec::<i64>().py()?;
                let mut shape = ix.basic.dims().to_vec();
                shape[*d] = ids.len();
                let v = v.to_dtype(t.dtype()).py()?.broadcast_to(&Shape::new(shape)).py()?;
                for (k, &i) in ids.iter().enumerate() {
                    ix.basic.select(*d, i).py()?.copy_(&v.select(*d, k as i64).py()?).py()?;
                }
                Ok(())
            }
            _ => Err(PyIndexError::new_err("assignment with this combination of tensor indices is not supported; use a full-shape bool mask or one 1-d index tensor")),
        }
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
        if let Some(Scalar::Int(2)) | Some(Scalar::Float(2.0)) = as_scalar(other) {
            // x ** 2 is everywhere in losses; x * x is cheaper and exactly differentiable
            let t = &self.inner;
            return Ok(
                Bound::new(py, wrap(work(py, t.numel(), || t.mul(t)).py()?))?
                    .into_any()
                    .unbind(),
            );
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
        let Some(b) = operand_tensor(other, &self.inner)? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.inner;
        let r = work(py, a.numel() + b.numel(), || a.matmul(&b)).py()?;
        Ok(Bound::new(py, wrap(r))?.into_any().unbind())
    }
    fn __rmatmul__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let Some(b) = operand_tensor(other, &self.inner)? else {
            return Ok(py.NotImplemented());
        };
        let a = &self.inner;
        let r = work(py, a.numel() + b.numel(), || b.matmul(a)).py()?;
        Ok(Bound::new(py, wrap(r))?.into_any().unbind())
    }
    fn __neg__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Neg)
    }
    fn __pos__(&self) -> PyTensor {
        wrap(self.inner.clone())
    }
    fn __abs__(&self, py: Python<'_>) -> PyResult<PyTensor> {
        self.unary(py, UnaryOp::Abs)
    }
    fn __invert__(&self) -> PyResult<PyTensor> {
        if self.inner.dtype() != DType::Bool {
            return Err(PyTypeError::new_err("~ is only supported on bool tensors"));
        }
        wrap_r(self.inner.logical_not())
    }
    fn __and__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let b = logical_operand(other, &self.inner)?;
        wrap_r(self.inner.logical_and(&b))
    }
    fn __or__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let b = logical_operand(other, &self.inner)?;
        wrap_r(self.inner.logical_or(&b))
    }
    fn __rand__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.__and__(other)
    }
    fn __ror__(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.__or__(other)
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

    fn add_<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Add)?;
        Ok(slf.clone())
    }
    fn sub_<'py>(slf: &Bound<'py, Self>, other: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        slf.get().inplace(slf.py(), other, BinaryOp::Sub)?;
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
    fn zero_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        t.copy_(&t.zeros_scalar_pub().py()?).py()?;
        Ok(slf.clone())
    }
    fn fill_<'py>(slf: &Bound<'py, Self>, value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        let s = as_scalar(value).ok_or_else(|| PyTypeError::new_err("fill_ expects a number"))?;
        t.copy_(&Tensor::full_scalar(s, t.dtype(), t.device()).py()?)
            .py()?;
        Ok(slf.clone())
    }
    fn copy_<'py>(slf: &Bound<'py, Self>, src: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        let s = match src.cast::<PyTensor>() {
            Ok(s) => s.get().inner.clone(),
            Err(_) => tensor_from_data(src, Some(t.dtype()), t.device())?,
        };
        work(slf.py(), t.numel(), || t.copy_(&s)).py()?;
        Ok(slf.clone())
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp_<'py>(
        slf: &Bound<'py, Self>,
        min: Option<f64>,
        max: Option<f64>,
    ) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        let r = t.clamp(min, max).py()?;
        t.copy_(&r).py()?;
        Ok(slf.clone())
    }
    #[pyo3(signature = (a=0.0, b=1.0))]
    fn uniform_<'py>(slf: &Bound<'py, Self>, a: f64, b: f64) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        let r =
            Tensor::uniform(t.shape().clone(), a, b, float_dtype(t.dtype())?, t.device()).py()?;
        t.copy_(&r).py()?;
        Ok(slf.clone())
    }
    #[pyo3(signature = (mean=0.0, std=1.0))]
    fn normal_<'py>(slf: &Bound<'py, Self>, mean: f64, std: f64) -> PyResult<Bound<'py, Self>> {
        let t = &slf.get().inner;
        let r = Tensor::normal(
            t.shape().clone(),
            mean,
            std,
            float_dtype(t.dtype())?,
            t.device(),
        )
        .py()?;
        t.copy_(&r).py()?;
        Ok(slf.clone())
    }
    fn detach_<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Self>> {
        Err(PyRuntimeError::new_err(
            "detach_() is not supported: tensors are immutable handles here; use t = t.detach()",
        ))
        .map(|()| slf.clone())
    }

    // ------------------------------------------------------------------ math methods

    fn add(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Add, false)
    }
    fn sub(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Sub, false)
    }
    fn mul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Mul, false)
    }
    fn div(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Div, false)
    }
    fn pow(&self, py: Python<'_>, exponent: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__pow__(py, exponent, None)
    }
    fn maximum(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Maximum, false)
    }
    fn minimum(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.binop(py, other, BinaryOp::Minimum, false)
    }
    fn matmul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__matmul__(py, other)
    }
    fn mm(&self, py: Python<'_>, other: &PyTensor) -> PyResult<PyTensor> {
        let (a, b) = (&self.inner, &other.inner);
        wrap_r(work(py, a.numel() + b.numel(), || a.mm(b)))
    }
    fn eq(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Eq)
    }
    fn ne(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Ne)
    }
    fn lt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Lt)
    }
    fn le(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Le)
    }
    fn gt(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Gt)
    }
    fn ge(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__richcmp__(py, other, CompareOp::Ge)
    }
    fn logical_not(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.logical_not())
    }
    fn logical_and(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.__and__(other)
    }
    fn logical_or(&self, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        self.__or__(other)
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
        wrap_r(self.inner.rsqrt())
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
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.mul(t)))
    }
    fn reciprocal(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.reciprocal())
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp(&self, py: Python<'_>, min: Option<f64>, max: Option<f64>) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.clamp(min, max)))
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clip(&self, py: Python<'_>, min: Option<f64>, max: Option<f64>) -> PyResult<PyTensor> {
        self.clamp(py, min, max)
    }
    #[pyo3(name = "where")]
    fn where_(&self, condition: &PyTensor, other: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
        let o = match operand(other, &self.inner)? {
            Some(Operand::Tensor(t)) => t,
            Some(Operand::Scalar(s)) => {
                Tensor::full_scalar(s, s.result_dtype(self.inner.dtype()), self.inner.device())
                    .py()?
            }
            None => {
                return Err(PyTypeError::new_err(
                    "where: other must be a tensor or a number",
                ))
            }
        };
        wrap_r(Tensor::where_cond(&condition.inner, &self.inner, &o))
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
        let r = self.reduce_dims(py, ReduceOp::Sum, dim, keepdim)?;
        match opt_dtype(dtype)? {
            Some(d) => wrap_r(r.inner.to_dtype(d)),
            None => Ok(r),
        }
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
            Some(d) => self.inner.to_dtype(d).py()?,
            None => self.inner.clone(),
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
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn max(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyAny>> {
        self.extreme(py, dim, keepdim, true)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn min(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
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
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.argmax(dim, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmin(&self, py: Python<'_>, dim: Option<i64>, keepdim: bool) -> PyResult<PyTensor> {
        let t = &self.inner;
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
        let t = &self.inner;
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
        let t = &self.inner;
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
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.logsumexp(&dims, keepdim)))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn all(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let b = self.inner.to_dtype(DType::Bool).py()?;
        let dims = dims_arg(dim)?;
        wrap_r(
            work(py, b.numel(), || b.amin(&dims, keepdim)).and_then(|r| {
                if b.numel() == 0 {
                    Tensor::full_scalar(Scalar::Bool(true), DType::Bool, b.device())
                } else {
                    Ok(r)
                }
            }),
        )
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn any(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<PyTensor> {
        let b = self.inner.to_dtype(DType::Bool).py()?;
        let dims = dims_arg(dim)?;
        wrap_r(
            work(py, b.numel(), || b.amax(&dims, keepdim)).and_then(|r| {
                if b.numel() == 0 {
                    Tensor::full_scalar(Scalar::Bool(false), DType::Bool, b.device())
                } else {
                    Ok(r)
                }
            }),
        )
    }
    fn nonzero(&self) -> PyResult<PyTensor> {
        wrap_r(self.inner.nonzero())
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
            Some(d) => self.inner.to_dtype(d).py()?,
            None => self.inner.clone(),
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
            Some(d) => self.inner.to_dtype(d).py()?,
            None => self.inner.clone(),
        };
        wrap_r(work(py, t.numel(), || t.log_softmax(dim)))
    }
    fn gather(&self, py: Python<'_>, dim: i64, index: &PyTensor) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, index.inner.numel(), || {
            t.gather(dim, &index.inner)
        }))
    }
    fn scatter_add(
        &self,
        py: Python<'_>,
        dim: i64,
        index: &PyTensor,
        src: &PyTensor,
    ) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, index.inner.numel(), || {
            t.scatter_add(dim, &index.inner, &src.inner)
        }))
    }
    fn index_select(&self, py: Python<'_>, dim: i64, index: &PyTensor) -> PyResult<PyTensor> {
        let t = &self.inner;
        wrap_r(work(py, t.numel(), || t.index_select(dim, &index.inner)))
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
        let t = &self.inner;
        let src = if alpha == 1.0 {
            source.inner.clone()
        } else {
            source.inner.mul_scalar(alpha).py()?
        };
        wrap_r(work(py, t.numel(), || t.index_add(dim, &index.inner, &src)))
    }
}

impl PyTensor {
    fn extreme(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
        is_max: bool,
    ) -> PyResult<Py<PyAny>> {
        let t = &self.inner;
        match dim {
            Some(d) if !d.is_none() => {
                if let Ok(other) = d.cast::<PyTensor>() {
                    // t.max(other) is maximum(t, other)
                    let o = other.get().inner.clone();
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
        Some(Operand::Scalar(s)) => Tensor::full_scalar(s, DType::Bool, like.device()).py(),
        None => Err(PyTypeError::new_err(format!(
            "unsupported operand type for a logical op: {}",
            type_name(other)
        ))),
    }
}

fn float_dtype(d: DType) -> PyResult<DType> {
    if d.is_float() {
        Ok(d)
    } else {
        Err(PyTypeError::new_err(format!(
            "random initialisation needs a float tensor, got {d}"
        )))
    }
}

/// Small helpers the binding needs from the core that are crate-private there.
trait TensorExt {
    fn zeros_scalar_pub(&self) -> backprop::Result<Tensor>;
    fn check_inplace_py(&self) -> PyResult<()>;
}

impl TensorExt for Tensor {
    fn zeros_scalar_pub(&self) -> backprop::Result<Tensor> {
        Tensor::full_scalar(Scalar::Int(0), self.dtype(), self.device())
    }
    fn check_inplace_py(&self) -> PyResult<()> {
        if backprop::is_grad_enabled() && self.requires_grad() {
            return Err(PyRuntimeError::new_err("a tensor that requires grad is being used in an in-place operation; wrap it in backprop_rs.no_grad()"));
        }
        Ok(())
    }
}
