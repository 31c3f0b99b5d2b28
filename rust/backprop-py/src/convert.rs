//! Conversions at the Python boundary: dtype and device objects, Python data and NumPy arrays to
//! tensors (sharing memory where possible), tensors to NumPy arrays (without copying where
//! possible), and the parsing of shape / dim arguments in PyTorch's spellings.

use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use backprop::cpu::CpuStorage;
use backprop::{DType, Device, Layout, Scalar, Shape, Tensor};
use numpy::ndarray::{ArrayViewD, IxDyn, ShapeBuilder};
use numpy::npyffi;
use numpy::prelude::*;
use numpy::{PyArray, PyArrayDescr, PyUntypedArray};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PySequence, PyString, PyTuple};

// ------------------------------------------------------------------ dtype / device objects

/// A tensor element type (`backprop_rs.float32`, ...).
#[pyclass(
    name = "dtype",
    module = "backprop_rs",
    frozen,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDType {
    pub inner: DType,
}

#[pymethods]
impl PyDType {
    fn __repr__(&self) -> String {
        format!("backprop_rs.{}", self.inner.as_str())
    }
    fn __str__(&self) -> String {
        self.__repr__()
    }
    #[getter]
    fn is_floating_point(&self) -> bool {
        self.inner.is_float()
    }
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.size_in_bytes()
    }
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.as_str()
    }
}

/// A device (`device(type='cpu')`); compares equal to its name.
#[pyclass(name = "device", module = "backprop_rs", frozen, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDevice {
    pub inner: Device,
}

#[pymethods]
impl PyDevice {
    #[new]
    fn new(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyDevice {
            inner: parse_device(spec)?,
        })
    }
    #[getter]
    fn r#type(&self) -> &'static str {
        self.inner.as_str()
    }
    #[getter]
    fn index(&self) -> Option<usize> {
        match self.inner {
            Device::Cpu => None,
            Device::Gpu => Some(0),
        }
    }
    fn __repr__(&self) -> String {
        format!("device(type='{}')", self.inner)
    }
    fn __str__(&self) -> &'static str {
        self.inner.as_str()
    }
    fn __hash__(&self) -> u64 {
        self.inner as u64
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        parse_device(other)
            .map(|d| d == self.inner)
            .unwrap_or(false)
    }
    /// `with bp.device("gpu"):` makes it the factories' default device inside the block, as
    /// `with torch.device("cuda"):` does; the previous default comes back on exit (nestable).
    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        ENTERED.with(|e| e.borrow_mut().push(backprop::default_device()));
        backprop::set_default_device(slf.inner);
        slf
    }
    fn __exit__(
        &self,
        _ty: &Bound<'_, PyAny>,
        _value: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        if let Some(prev) = ENTERED.with(|e| e.borrow_mut().pop()) {
            backprop::set_default_device(prev);
        }
        false
    }
}

thread_local! {
    /// The default devices that `with device(...)` blocks replaced, innermost last.
    static ENTERED: std::cell::RefCell<Vec<Device>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    if let Ok(d) = obj.cast::<PyDType>() {
        return Ok(d.get().inner);
    }
    let py = obj.py();
    let name: String = if let Ok(s) = obj.cast::<PyString>() {
        s.to_string()
    } else if obj.is(py.get_type::<PyFloat>()) {
        "float64".into() // torch.tensor(..., dtype=float) is float64, as in NumPy
    } else if obj.is(py.get_type::<PyInt>()) {
        "int64".into()
    } else if obj.is(py.get_type::<PyBool>()) {
        "bool".into()
    } else {
        // NumPy dtypes and scalar types (np.float32, np.dtype('f4'), ...)
        let np = numpy_module(py)?;
        match np
            .call_method1("dtype", (obj,))
            .and_then(|d| d.getattr("name"))
            .and_then(|n| n.extract::<String>())
        {
            Ok(n) => n,
            Err(_) => {
                return Err(PyTypeError::new_err(format!(
                    "dtype must be a backprop_rs dtype, a NumPy dtype or a name, got {}",
                    obj.repr()?
                )))
            }
        }
    };
    DType::parse(&name).ok_or_else(|| {
        PyTypeError::new_err(format!(
            "unsupported dtype '{name}'; backprop_rs has float32, float64, int64 and bool"
        ))
    })
}

pub fn opt_dtype(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<DType>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(parse_dtype(o)?)),
        _ => Ok(None),
    }
}

pub fn parse_device(obj: &Bound<'_, PyAny>) -> PyResult<Device> {
    if let Ok(d) = obj.cast::<PyDevice>() {
        return Ok(d.get().inner);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Device::parse(&s.to_cow()?).py();
    }
    Err(PyTypeError::new_err(format!(
        "device must be a string like 'cpu' or 'gpu', got {}",
        obj.repr()?
    )))
}

pub fn opt_device(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Device> {
    match obj {
        Some(o) if !o.is_none() => parse_device(o),
        _ => Ok(backprop::default_device()),
    }
}

// ------------------------------------------------------------------ shapes and dims

/// `f(2, 3)`, `f((2, 3))` and `f([2, 3])` all mean shape (2, 3).
pub fn shape_args(args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        let a = args.get_item(0)?;
        if !a.is_instance_of::<PyInt>() {
            return int_list(&a);
        }
    }
    args.iter()
        .map(|a| {
            a.extract::<i64>()
                .map_err(|_| PyTypeError::new_err("sizes must be integers"))
        })
        .collect()
}

pub fn int_list(obj: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(i) = obj.extract::<i64>() {
        return Ok(vec![i]);
    }
    // bytes and str are sequences too, but never sizes (b"1" would be the size [49])
    if obj.is_instance_of::<pyo3::types::PyBytes>()
        || obj.is_instance_of::<pyo3::types::PyByteArray>()
        || obj.is_instance_of::<PyString>()
    {
        return Err(PyTypeError::new_err(format!(
            "expected an int or a sequence of ints, got {}",
            type_name(obj)
        )));
    }
    let seq = obj.cast::<PySequence>().map_err(|_| {
        PyTypeError::new_err(format!(
            "expected an int or a sequence of ints, got {}",
            type_name(obj)
        ))
    })?;
    (0..seq.len()?)
        .map(|i| {
            seq.get_item(i)?
                .extract::<i64>()
                .map_err(|_| PyTypeError::new_err("expected a sequence of ints"))
        })
        .collect()
}

/// Non-negative integers (counts, sizes) from an int or a sequence of ints.
pub fn usize_list(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<usize>> {
    int_list(obj)?
        .into_iter()
        .map(|v| {
            usize::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("{op}: expected non-negative integers, got {v}"))
            })
        })
        .collect()
}

/// Non-negative integers from `*args` (`t.repeat(2, 3)` or `t.repeat((2, 3))`).
pub fn usize_args(op: &str, args: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    shape_args(args)?
        .into_iter()
        .map(|v| {
            usize::try_from(v).map_err(|_| {
                PyValueError::new_err(format!("{op}: expected non-negative integers, got {v}"))
            })
        })
        .collect()
}

/// A real-number argument; anything else (a complex number, a string) is a TypeError naming
/// what was given.
pub fn scalar_arg(op: &str, obj: &Bound<'_, PyAny>) -> PyResult<Scalar> {
    as_scalar(obj)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{op}: expected a real number (bool, int or float), got {}",
            type_name(obj)
        ))
    })
}

/// A non-negative shape.
pub fn to_shape(dims: &[i64]) -> PyResult<Shape> {
    dims.iter()
        .map(|&d| {
            usize::try_from(d).map_err(|_| {
                PyValueError::new_err(format!("negative dimension {d} in shape {dims:?}"))
            })
        })
        .collect::<PyResult<Vec<usize>>>()
        .map(Shape::new)
}

/// `dim=None` (all), `dim=1`, `dim=(0, 2)`.
pub fn dims_arg(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<i64>> {
    match obj {
        None => Ok(vec![]),
        Some(o) if o.is_none() => Ok(vec![]),
        Some(o) => int_list(o),
    }
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

// ------------------------------------------------------------------ Python values -> tensors

static NUMPY: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub fn numpy_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    NUMPY
        .get_or_try_init(py, || py.import("numpy").map(|m| m.unbind()))
        .map(|m| m.bind(py))
}

/// A plain Python bool / int / float (not a NumPy scalar, which has a dtype of its own).
fn python_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Scalar>> {
    if obj.is_instance_of::<PyBool>()
        || obj.is_instance_of::<PyInt>()
        || obj.is_instance_of::<PyFloat>()
    {
        as_scalar(obj)
    } else {
        Ok(None)
    }
}

/// A Python scalar (bool / int / float, incl. NumPy scalars), if `obj` is one.
pub fn as_scalar(obj: &Bound<'_, PyAny>) -> PyResult<Option<Scalar>> {
    if obj.is_instance_of::<PyBool>() {
        return Ok(obj.extract::<bool>().ok().map(Scalar::Bool));
    }
    if obj.is_instance_of::<PyInt>() {
        // PyTorch's scalars are int64: a Python int beyond that is an error, never a wrap
        return match obj.extract::<i64>() {
            Ok(v) => Ok(Some(Scalar::Int(v))),
            Err(_) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "Overflow when unpacking long: {} does not fit in int64",
                obj.repr()?
            ))),
        };
    }
    if obj.is_instance_of::<PyFloat>() {
        return Ok(obj.extract::<f64>().ok().map(Scalar::Float));
    }
    // a 0-d tensor is a tensor operand (with its own dtype), not a scalar
    if obj.is_instance_of::<PyTensor>() {
        return Ok(None);
    }
    // NumPy scalars: np.float32(1.5), np.int64(3), np.bool_(True)
    if obj.hasattr("dtype").unwrap_or(false)
        && obj.hasattr("item").unwrap_or(false)
        && !obj.is_instance_of::<PyUntypedArray>()
        && obj
            .getattr("ndim")
            .and_then(|n| n.extract::<usize>())
            .map(|n| n == 0)
            .unwrap_or(false)
    {
        if let Ok(v) = obj.call_method0("item") {
            if !v.is_instance_of::<PyUntypedArray>() && !v.hasattr("dtype").unwrap_or(true) {
                return as_scalar(&v);
            }
        }
    }
    Ok(None)
}

fn native_dtype(descr: &Bound<'_, PyArrayDescr>) -> Option<DType> {
    match (descr.kind(), descr.itemsize()) {
        (b'f', 4) => Some(DType::F32),
        (b'f', 8) => Some(DType::F64),
        (b'f', 2) => Some(DType::F16),
        (b'i', 8) => Some(DType::I64),
        (b'i', 4) => Some(DType::I32),
        (b'i', 2) => Some(DType::I16),
        (b'i', 1) => Some(DType::I8),
        (b'u', 1) => Some(DType::U8),
        (b'b', 1) => Some(DType::Bool),
        _ => None,
    }
}

/// The dtype a NumPy array of this kind becomes when converted with a copy.
fn converted_dtype(descr: &Bound<'_, PyArrayDescr>) -> PyResult<DType> {
    match descr.kind() {
        b'f' if descr.itemsize() == 2 => Ok(DType::F16),
        b'f' if descr.itemsize() <= 4 => Ok(DType::F32),
        b'f' => Ok(DType::F64),
        b'i' if descr.itemsize() == 4 => Ok(DType::I32),
        b'i' if descr.itemsize() == 2 => Ok(DType::I16),
        b'i' if descr.itemsize() == 1 => Ok(DType::I8),
        b'u' if descr.itemsize() == 1 => Ok(DType::U8),
        // uint16/32/64: no such dtypes here; int64 holds all but the top half of uint64
        b'i' | b'u' => Ok(DType::I64),
        b'b' => Ok(DType::Bool),
        k => Err(PyTypeError::new_err(format!(
            "can't convert a NumPy array of dtype {} (kind '{}'); supported: float, int, uint and bool arrays",
            descr.repr().map(|r| r.to_string()).unwrap_or_default(),
            k as char
        ))),
    }
}

/// Owner handle keeping a NumPy array alive while tensors view its memory.
struct NumpyOwner(#[allow(dead_code)] Py<PyAny>);

/// Wraps a NumPy array's memory in a tensor without copying, when the array allows it
/// (supported dtype, native byte order, aligned, writeable, non-negative strides).
pub fn from_numpy_shared(arr: &Bound<'_, PyUntypedArray>) -> PyResult<Option<Tensor>> {
    let descr = arr.dtype();
    let Some(dtype) = native_dtype(&descr) else {
        return Ok(None);
    };
    if descr.is_native_byteorder() == Some(false) {
        return Ok(None);
    }
    // SAFETY: as_array_ptr points at the live PyArrayObject of `arr`.
    let flags = unsafe { (*arr.as_array_ptr()).fields.flags };
    let need = npyffi::NPY_ARRAY_ALIGNED | npyffi::NPY_ARRAY_WRITEABLE;
    if flags & need != need || arr.is_empty() {
        return Ok(None);
    }
    let item = dtype.size_in_bytes() as isize;
    let mut strides = Vec::with_capacity(arr.ndim());
    for &s in arr.strides() {
        if s < 0 || s % item != 0 {
            return Ok(None);
        }
        strides.push((s / item) as usize);
    }
    let shape = Shape::new(arr.shape().to_vec());
    let layout = Layout::new(shape, strides, 0);
    let extent = layout.storage_extent();
    // SAFETY: the data pointer of a live array
    let data = unsafe { (*arr.as_array_ptr()).fields.data } as *mut u8;
    let owner: Box<dyn std::any::Any + Send + Sync> =
        Box::new(NumpyOwner(arr.clone().into_any().unbind()));
    // SAFETY: `data` is valid, aligned (checked) and writeable for `extent` elements of the
    // dtype, and stays so while `owner` keeps the array alive.
    let storage = unsafe { CpuStorage::from_foreign(dtype, data, extent, owner) };
    Tensor::from_cpu_storage(storage, layout).py().map(Some)
}

/// A copy of a NumPy array as a tensor (converting dtypes NumPy has and we do not).
pub fn from_numpy_copy(arr: &Bound<'_, PyUntypedArray>, dtype: Option<DType>) -> PyResult<Tensor> {
    let py = arr.py();
    let target = match dtype {
        Some(d) => d,
        None => converted_dtype(&arr.dtype())?,
    };
    if target == DType::BF16 {
        // NumPy has no bfloat16: through float32, rounded once
        return from_numpy_copy(arr, Some(DType::F32))?
            .to_dtype(DType::BF16)
            .py();
    }
    let np = numpy_module(py)?;
    let np_name = target.as_str(); // NumPy's names for the rest are ours
                                   // a fresh C-order copy in a native-byte-order dtype: aligned, writeable, and ours
                                   // (ascontiguousarray would turn 0-d arrays into 1-d ones)
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("dtype", np_name)?;
    kwargs.set_item("order", "C")?;
    kwargs.set_item("copy", true)?;
    let c = np.call_method("array", (arr,), Some(&kwargs))?;
    let c = c.cast::<PyUntypedArray>()?;
    let shape = Shape::new(c.shape().to_vec());
    if c.is_empty() {
        return Tensor::zeros(shape, target, Device::Cpu).py();
    }
    match from_numpy_shared(c)? {
        Some(t) => Ok(t),
        None => Err(PyValueError::new_err(
            "internal: could not wrap a contiguous NumPy copy",
        )),
    }
}

/// Whether nested lists/tuples hold a Python float, and an int beyond int64.
fn scan_numbers(obj: &Bound<'_, PyAny>) -> PyResult<(bool, bool)> {
    let (mut has_float, mut big_int) = (false, false);
    let mut stack = vec![obj.clone()];
    while let Some(o) = stack.pop() {
        if let Ok(l) = o.cast::<PyList>() {
            stack.extend(l.iter());
        } else if let Ok(t) = o.cast::<PyTuple>() {
            stack.extend(t.iter());
        } else if o.is_instance_of::<PyFloat>() {
            has_float = true;
        } else if o.is_instance_of::<PyInt>() && !o.is_instance_of::<PyBool>() {
            big_int |= o.extract::<i64>().is_err();
        }
    }
    Ok((has_float, big_int))
}

/// `bp.tensor(data, dtype=...)`: copies `data` (nested lists, scalars, NumPy arrays, tensors).
pub fn tensor_from_data(
    data: &Bound<'_, PyAny>,
    dtype: Option<DType>,
    device: Device,
) -> PyResult<Tensor> {
    let py = data.py();
    let t = if let Ok(t) = data.cast::<PyTensor>() {
        let src = t.get().tensor().detach();
        let src = match dtype {
            Some(d) => src.to_dtype(d).py()?,
            None => src,
        };
        src.contiguous_copy().py()?
    } else if let Some(s) = python_scalar(data)? {
        let dt = dtype.unwrap_or(match s {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::I64,
            Scalar::Float(_) => backprop::default_float(),
        });
        Tensor::full_scalar(s, dt, Device::Cpu).py()?
    } else if let Ok(arr) = data.cast::<PyUntypedArray>() {
        from_numpy_copy(arr, dtype)?
    } else {
        if data.is_instance_of::<PyString>() {
            return Err(PyTypeError::new_err("can't build a tensor from a string"));
        }
        // Nested sequences: let NumPy parse them, then apply PyTorch's default dtypes
        // (Python floats become float32, ints int64).
        let np = numpy_module(py)?;
        let arr = np.call_method1("asarray", (data,)).map_err(|e| {
            PyTypeError::new_err(format!(
                "could not build a tensor from {}: {}",
                type_name(data),
                e
            ))
        })?;
        let arr = arr.cast::<PyUntypedArray>()?;
        // what NumPy makes of values PyTorch refuses: None (object), complex, strings, ints
        // beyond int64 (uint64 or object)
        match arr.dtype().kind() {
            b'b' | b'i' | b'f' => {}
            b'u' => {
                let too_big = arr.dtype().itemsize() == 8
                    && arr.len() > 0
                    && np
                        .call_method1("max", (arr,))?
                        .extract::<u64>()
                        .map(|m| m > i64::MAX as u64)
                        .unwrap_or(true);
                if too_big {
                    return Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "Overflow when unpacking long: a value does not fit in int64",
                    ));
                }
            }
            b'c' => {
                return Err(PyTypeError::new_err(
                    "complex numbers are not supported (backprop_rs has no complex dtype)",
                ))
            }
            b'O' => {
                return Err(PyTypeError::new_err(format!(
                    "could not build a tensor from {}: every element must be a number (bool, int or float); found another object (None, an int beyond int64, or a non-number)",
                    type_name(data)
                )))
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "could not build a tensor from {}: its elements are not numbers (NumPy dtype {})",
                    type_name(data),
                    arr.dtype()
                )))
            }
        }
        if matches!(arr.dtype().kind(), b'f' | b'u') {
            // NumPy turns [1, 2**63] into float64; PyTorch refuses an int beyond int64
            // unless the tensor is a float one (a float in the data, or a float dtype)
            let (has_float, big_int) = scan_numbers(data)?;
            let int_target = dtype.map(|d| !d.is_float()).unwrap_or(!has_float);
            if big_int && int_target {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "Overflow when unpacking long: a value does not fit in int64",
                ));
            }
        }
        let dt = match dtype {
            Some(d) => d,
            None => match arr.dtype().kind() {
                b'f' => {
                    if data.is_instance_of::<PyList>() || data.is_instance_of::<PyTuple>() {
                        backprop::default_float()
                    } else {
                        converted_dtype(&arr.dtype())?
                    }
                }
                _ => converted_dtype(&arr.dtype())?,
            },
        };
        from_numpy_copy(arr, Some(dt))?
    };
    if device == Device::Cpu {
        Ok(t)
    } else {
        t.to_device(device).py()
    }
}

/// Converts an operand of an arithmetic op: tensors pass through, anything array-like is built
/// on `like`'s device. Scalars are handled by the caller (they promote differently).
pub fn operand_tensor(obj: &Bound<'_, PyAny>, like: &Tensor) -> PyResult<Option<Tensor>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(Some(t.get().tensor()));
    }
    if obj.is_instance_of::<PyUntypedArray>()
        || obj.is_instance_of::<PyList>()
        || obj.is_instance_of::<PyTuple>()
    {
        return tensor_from_data(obj, None, like.device()).map(Some);
    }
    Ok(None)
}

// ------------------------------------------------------------------ tensors -> NumPy

/// Keeps a tensor's storage alive for as long as a NumPy array views it.
#[pyclass(name = "_StorageOwner", module = "backprop_rs", frozen)]
pub struct StorageOwner {
    _tensor: Tensor,
}

fn export<'py, T: numpy::Element>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let ptr =
        t.cpu_data_ptr()
            .ok_or_else(|| PyValueError::new_err("tensor is not on the cpu"))? as *const T;
    let dims = t.dims().to_vec();
    let strides = t.strides().to_vec();
    // SAFETY: the layout describes elements inside the storage, which `owner` keeps alive;
    // callers only export layouts without stride-0 (overlapping) dims.
    let view =
        unsafe { ArrayViewD::<T>::from_shape_ptr(IxDyn(&dims).strides(IxDyn(&strides)), ptr) };
    let owner = Bound::new(py, StorageOwner { _tensor: t.clone() })?;
    // SAFETY: the view's memory outlives the array through `owner`.
    let arr = unsafe { PyArray::<T, _>::borrow_from_array(&view, owner.into_any()) };
    Ok(arr.into_any())
}

/// A NumPy array viewing the tensor's memory when it is a plain strided view on the CPU;
/// otherwise (GPU, broadcast views) a copy.
/// rust-numpy builds arrays of at most this many dimensions and panics beyond it (tensors of
/// higher rank are legal, e.g. loaded from a checkpoint), so the export checks first.
const NUMPY_MAX_DIMS: usize = 32;

pub fn to_numpy<'py>(py: Python<'py>, t: &Tensor, force_copy: bool) -> PyResult<Bound<'py, PyAny>> {
    if t.rank() > NUMPY_MAX_DIMS {
        return Err(PyValueError::new_err(format!(
            "cannot convert a tensor of rank {} (shape {}) to a NumPy array: at most {NUMPY_MAX_DIMS} dimensions are supported",
            t.rank(),
            t.shape()
        )));
    }
    // NumPy's own limit: the extents (zero ones aside, as NumPy computes it) times the item
    // size must fit an isize; an empty tensor with huge other dims is legal here but would
    // overflow NumPy's stride arithmetic
    let fits = t
        .dims()
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(t.dtype().size_in_bytes(), |acc, &d| acc.checked_mul(d))
        .is_some_and(|b| b <= isize::MAX as usize);
    if !fits {
        return Err(PyValueError::new_err(format!(
            "cannot convert a tensor of shape {} to a NumPy array: array is too big (its extents times the item size exceed the maximum possible size)",
            t.shape()
        )));
    }
    let t = if t.device() != Device::Cpu {
        t.to_device(Device::Cpu).py()?
    } else {
        t.clone()
    };
    let t = if force_copy
        || t.strides()
            .iter()
            .zip(t.dims())
            .any(|(&s, &d)| s == 0 && d > 1)
        || t.numel() == 0
    {
        t.detach().contiguous_copy().py()?.detach()
    } else {
        t.detach()
    };
    match t.dtype() {
        DType::F32 => export::<f32>(py, &t),
        DType::F64 => export::<f64>(py, &t),
        DType::I64 => export::<i64>(py, &t),
        DType::Bool => export::<bool>(py, &t),
        DType::F16 => export::<half::f16>(py, &t),
        DType::I32 => export::<i32>(py, &t),
        DType::I16 => export::<i16>(py, &t),
        DType::I8 => export::<i8>(py, &t),
        // `UInt8` is a transparent byte
        DType::U8 => export::<u8>(py, &t),
        // PyTorch's own error: NumPy has no bfloat16 (convert with .float() first)
        DType::BF16 => Err(PyTypeError::new_err(
            "Got unsupported ScalarType BFloat16 (NumPy has no bfloat16; convert first, e.g. t.float().numpy())",
        )),
    }
}
