//! Module-level functions of `backprop_rs._core`: constructors, combinators, autograd entry
//! points and the functional ops (losses, activations). Glue only.

use crate::convert::*;
use crate::errors::{to_py, IntoPy};
use crate::tensor::{work, wrap, PyTensor};
use backprop::gradcheck::GradcheckOptions;
use backprop::nn::loss::{self, ClassLossOptions, Reduction};
use backprop::{DType, Device, Error, Scalar, Tensor};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PySequence, PyTuple};
use std::cell::RefCell;

/// The Python object of a new factory tensor; a leaf that requires grad is remembered, so its
/// `AccumulateGrad` node's `variable` is this object (see `autograd::register_leaf`).
fn finish(t: Tensor, requires_grad: bool) -> PyResult<Py<PyTensor>> {
    let t = if requires_grad {
        t.requires_grad_(true).py()?
    } else {
        t
    };
    Python::attach(|py| {
        let obj = Bound::new(py, wrap(t))?;
        if requires_grad {
            crate::autograd::register_leaf(&obj)?;
        }
        Ok(obj.unbind())
    })
}

pub(crate) fn tensors_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Tensor>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(vec![t.get().tensor().clone()]);
    }
    let seq = obj
        .cast::<PySequence>()
        .map_err(|_| PyTypeError::new_err("expected a tensor or a sequence of tensors"))?;
    (0..seq.len()?)
        .map(|i| {
            let it = seq.get_item(i)?;
            it.cast::<PyTensor>()
                .map(|t| t.get().tensor().clone())
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "expected a sequence of tensors, found {} at position {i}",
                        type_name(&it)
                    ))
                })
        })
        .collect()
}

/// A tensor, or a sequence of tensors and Nones (gradient arguments).
fn optional_tensors_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<Option<Tensor>>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(vec![Some(t.get().tensor().clone())]);
    }
    let seq = obj
        .cast::<PySequence>()
        .map_err(|_| PyTypeError::new_err("expected a tensor or a sequence of tensors or None"))?;
    (0..seq.len()?)
        .map(|i| {
            let it = seq.get_item(i)?;
            if it.is_none() {
                return Ok(None);
            }
            it.cast::<PyTensor>()
                .map(|t| Some(t.get().tensor().clone()))
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "expected tensors or None, found {} at position {i}",
                        type_name(&it)
                    ))
                })
        })
        .collect()
}

// ------------------------------------------------------------------ construction

#[pyfunction]
#[pyo3(signature = (data, *, dtype=None, device=None, requires_grad=false))]
pub fn tensor(
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let t = tensor_from_data(data, opt_dtype(dtype)?, opt_device(device)?)?;
    finish(t, requires_grad)
}

/// Like `tensor`, but shares memory with a NumPy array or tensor when it can.
#[pyfunction]
#[pyo3(signature = (data, dtype=None, device=None))]
pub fn as_tensor(
    data: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let dt = opt_dtype(dtype)?;
    let dev = match device {
        Some(d) if !d.is_none() => Some(parse_device(d)?),
        _ => None,
    };
    let base = if let Ok(t) = data.cast::<PyTensor>() {
        t.get().tensor().clone()
    } else if let Ok(arr) = data.cast::<numpy::PyUntypedArray>() {
        match from_numpy_shared(arr)? {
            Some(t) => t,
            None => from_numpy_copy(arr, dt)?,
        }
    } else {
        tensor_from_data(data, dt, Device::Cpu)?
    };
    let mut t = base;
    if let Some(d) = dev {
        t = t.to_device(d).py()?;
    }
    if let Some(d) = dt {
        t = t.to_dtype(d).py()?;
    }
    Ok(wrap(t))
}

/// A tensor sharing the NumPy array's memory (copying only when the array's layout or dtype
/// cannot be shared: non-native byte order, negative strides, read-only, unsupported dtype).
#[pyfunction]
pub fn from_numpy(arr: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    let a = arr.cast::<numpy::PyUntypedArray>().map_err(|_| {
        PyTypeError::new_err(format!("expected a numpy.ndarray, got {}", type_name(arr)))
    })?;
    let t = match from_numpy_shared(a)? {
        Some(t) => t,
        None => from_numpy_copy(a, None)?,
    };
    Ok(wrap(t))
}

macro_rules! filled {
    ($name:ident, $value:expr) => {
        #[pyfunction]
        #[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false))]
        pub fn $name(
            size: &Bound<'_, PyTuple>,
            dtype: Option<&Bound<'_, PyAny>>,
            device: Option<&Bound<'_, PyAny>>,
            requires_grad: bool,
        ) -> PyResult<Py<PyTensor>> {
            let shape = to_shape(&shape_args(size)?)?;
            let dt = opt_dtype(dtype)?.unwrap_or_else(backprop::default_float);
            let dev = opt_device(device)?;
            finish(Tensor::full(shape, $value, dt, dev).py()?, requires_grad)
        }
    };
}
filled!(zeros, 0.0);
filled!(ones, 1.0);
filled!(empty, 0.0);

#[pyfunction]
#[pyo3(signature = (size, fill_value, *, dtype=None, device=None, requires_grad=false))]
pub fn full(
    size: &Bound<'_, PyAny>,
    fill_value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let shape = to_shape(&int_list(size)?)?;
    let s = as_scalar(fill_value)?
        .ok_or_else(|| PyTypeError::new_err("fill_value must be a number"))?;
    let dt = opt_dtype(dtype)?.unwrap_or(match s {
        Scalar::Bool(_) => DType::Bool,
        Scalar::Int(_) => DType::I64,
        Scalar::Float(_) => backprop::default_float(),
    });
    finish(
        Tensor::full_value(shape, s, dt, opt_device(device)?).py()?,
        requires_grad,
    )
}

fn like_args(
    t: &PyTensor,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<(DType, Device)> {
    let dt = opt_dtype(dtype)?.unwrap_or(t.tensor().dtype());
    let dev = match device {
        Some(d) if !d.is_none() => parse_device(d)?,
        _ => t.tensor().device(),
    };
    Ok((dt, dev))
}

macro_rules! filled_like {
    ($name:ident, $value:expr) => {
        #[pyfunction]
        #[pyo3(signature = (input, *, dtype=None, layout=None, device=None, requires_grad=false, memory_format=None))]
        pub fn $name(
            input: &PyTensor,
            dtype: Option<&Bound<'_, PyAny>>,
            layout: Option<&Bound<'_, PyAny>>,
            device: Option<&Bound<'_, PyAny>>,
            requires_grad: bool,
            memory_format: Option<&Bound<'_, PyAny>>,
        ) -> PyResult<Py<PyTensor>> {
            let _ = layout;
            let (dt, dev) = like_args(input, dtype, device)?;
            let t = Tensor::full(input.tensor().shape().clone(), $value, dt, dev).py()?;
            finish(laid_out_like(input, t, memory_format)?, requires_grad)
        }
    };
}
filled_like!(zeros_like, 0.0);
filled_like!(ones_like, 1.0);
filled_like!(empty_like, 0.0);

#[pyfunction]
#[pyo3(signature = (input, fill_value, *, dtype=None, layout=None, device=None, requires_grad=false, memory_format=None))]
#[allow(clippy::too_many_arguments)]
pub fn full_like(
    input: &PyTensor,
    fill_value: f64,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyTensor>> {
    let _ = layout;
    let (dt, dev) = like_args(input, dtype, device)?;
    let t = Tensor::full(input.tensor().shape().clone(), fill_value, dt, dev).py()?;
    finish(laid_out_like(input, t, memory_format)?, requires_grad)
}

/// A `*_like` result in the layout `memory_format=` asks for: `preserve_format` (the default, as
/// PyTorch's) keeps a channels-last input's layout, so code that allocates buffers with
/// `empty_like(x)` for a channels-last `x` gets channels-last buffers.
fn laid_out_like(
    input: &PyTensor,
    t: Tensor,
    memory_format: Option<&Bound<'_, PyAny>>,
) -> PyResult<Tensor> {
    let format = match crate::memory_format::parse(memory_format, backprop::MemoryFormat::Preserve)?
    {
        backprop::MemoryFormat::Preserve => input.tensor().suggest_memory_format(),
        f => f,
    };
    match format {
        backprop::MemoryFormat::Contiguous => Ok(t),
        f => t.contiguous_in(f).py(),
    }
}

#[pyfunction]
#[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false))]
pub fn rand(
    size: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let shape = to_shape(&shape_args(size)?)?;
    finish(
        Tensor::rand(
            shape,
            opt_dtype(dtype)?.unwrap_or_else(backprop::default_float),
            opt_device(device)?,
        )
        .py()?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (*size, dtype=None, device=None, requires_grad=false))]
pub fn randn(
    size: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let shape = to_shape(&shape_args(size)?)?;
    finish(
        Tensor::randn(
            shape,
            opt_dtype(dtype)?.unwrap_or_else(backprop::default_float),
            opt_device(device)?,
        )
        .py()?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (input, *, dtype=None, device=None, requires_grad=false))]
pub fn rand_like(
    input: &PyTensor,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let (dt, dev) = like_args(input, dtype, device)?;
    finish(
        Tensor::rand(input.tensor().shape().clone(), dt, dev).py()?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (input, *, dtype=None, device=None, requires_grad=false))]
pub fn randn_like(
    input: &PyTensor,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let (dt, dev) = like_args(input, dtype, device)?;
    finish(
        Tensor::randn(input.tensor().shape().clone(), dt, dev).py()?,
        requires_grad,
    )
}

/// `randint(high, size)` or `randint(low, high, size)`, as in PyTorch.
#[pyfunction]
#[pyo3(signature = (*args, size=None, dtype=None, device=None))]
pub fn randint(
    args: &Bound<'_, PyTuple>,
    size: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let items: Vec<Bound<'_, PyAny>> = args.iter().collect();
    let (low, high, shape_obj) = match (items.as_slice(), size) {
        ([h], Some(s)) => (0, h.extract::<i64>()?, s.clone()),
        ([l, h], Some(s)) => (l.extract::<i64>()?, h.extract::<i64>()?, s.clone()),
        ([h, s], None) => (0, h.extract::<i64>()?, s.clone()),
        ([l, h, s], None) => (l.extract::<i64>()?, h.extract::<i64>()?, s.clone()),
        _ => {
            return Err(PyTypeError::new_err(
                "randint(low=0, high, size): expected high and size",
            ))
        }
    };
    let shape = to_shape(&int_list(&shape_obj)?)?;
    let t = Tensor::randint(low, high, shape, opt_device(device)?).py()?;
    Ok(wrap(match opt_dtype(dtype)? {
        Some(d) => t.to_dtype(d).py()?,
        None => t,
    }))
}

#[pyfunction]
#[pyo3(signature = (n, *, dtype=None, device=None))]
pub fn randperm(
    n: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let t = Tensor::randperm(n, opt_device(device)?).py()?;
    Ok(wrap(match opt_dtype(dtype)? {
        Some(d) => t.to_dtype(d).py()?,
        None => t,
    }))
}

/// `arange(end)`, `arange(start, end, step=1)`; int64 when every argument is an int.
#[pyfunction]
#[pyo3(signature = (start, end=None, step=None, *, dtype=None, device=None, requires_grad=false))]
pub fn arange(
    start: &Bound<'_, PyAny>,
    end: Option<&Bound<'_, PyAny>>,
    step: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    let num = |o: &Bound<'_, PyAny>| {
        as_scalar(o)?.ok_or_else(|| PyTypeError::new_err("arange arguments must be numbers"))
    };
    let (s, e) = match end {
        Some(e) if !e.is_none() => (num(start)?, num(e)?),
        _ => (Scalar::Int(0), num(start)?),
    };
    let st = match step {
        Some(x) if !x.is_none() => num(x)?,
        _ => Scalar::Int(1),
    };
    let all_int = [s, e, st].iter().all(|x| matches!(x, Scalar::Int(_)));
    let dt = opt_dtype(dtype)?.unwrap_or(if all_int {
        DType::I64
    } else {
        backprop::default_float()
    });
    finish(
        Tensor::arange(s.to_f64(), e.to_f64(), st.to_f64(), dt, opt_device(device)?).py()?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (start, end, steps, *, dtype=None, device=None, requires_grad=false))]
pub fn linspace(
    start: f64,
    end: f64,
    steps: usize,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    finish(
        Tensor::linspace(
            start,
            end,
            steps,
            opt_dtype(dtype)?.unwrap_or_else(backprop::default_float),
            opt_device(device)?,
        )
        .py()?,
        requires_grad,
    )
}

#[pyfunction]
#[pyo3(signature = (n, m=None, *, dtype=None, device=None, requires_grad=false))]
pub fn eye(
    n: usize,
    m: Option<usize>,
    dtype: Option<&Bound<'_, PyAny>>,
    device: Option<&Bound<'_, PyAny>>,
    requires_grad: bool,
) -> PyResult<Py<PyTensor>> {
    finish(
        Tensor::eye(
            n,
            m.unwrap_or(n),
            opt_dtype(dtype)?.unwrap_or_else(backprop::default_float),
            opt_device(device)?,
        )
        .py()?,
        requires_grad,
    )
}

/// PyTorch's seed range is [-2**63, 2**64): a negative seed is taken as its 64-bit two's
/// complement.
#[pyfunction]
pub fn manual_seed(seed: &Bound<'_, PyAny>) -> PyResult<()> {
    if seed.is_instance_of::<pyo3::types::PyBool>() || !seed.is_instance_of::<pyo3::types::PyInt>()
    {
        return Err(PyTypeError::new_err(format!(
            "manual_seed expected an int, got {}",
            seed.get_type().name()?
        )));
    }
    let s = match seed.extract::<i64>() {
        Ok(v) => v as u64,
        Err(_) => seed.extract::<u64>().map_err(|_| {
            PyRuntimeError::new_err(format!(
                "Overflow when unpacking long: seed {} must be within the range [-0x8000_0000_0000_0000, 0xffff_ffff_ffff_ffff]",
                seed
            ))
        })?,
    };
    backprop::manual_seed(s);
    Ok(())
}

/// The Python stack of the current call, for anomaly mode's "Traceback of forward call".
fn python_stack() -> Option<String> {
    Python::attach(|py| {
        let tb = py.import("traceback").ok()?;
        let lines = tb.call_method0("format_stack").ok()?;
        let lines: Vec<String> = lines.extract().ok()?;
        Some(lines.concat())
    })
}

/// Turns anomaly detection on or off (`torch.autograd.set_detect_anomaly`); returns the old
/// setting. Recorded ops then keep the Python stack they were called from.
#[pyfunction]
#[pyo3(signature = (mode, check_nan=true))]
pub fn _set_detect_anomaly(mode: bool, check_nan: bool) -> bool {
    backprop::autograd::anomaly::set_trace_hook(Some(python_stack));
    backprop::autograd::anomaly::set_enabled(mode, check_nan)
}

#[pyfunction]
pub fn _is_anomaly_enabled() -> bool {
    backprop::autograd::anomaly::is_enabled()
}

/// `torch.set_flush_denormal`: flush denormal floats to zero in the CPU kernels (on the calling
/// thread, whose NumPy work it affects too, as in PyTorch, and on the compute pool's threads).
/// Returns whether the CPU supports it.
#[pyfunction]
pub fn set_flush_denormal(py: Python<'_>, mode: bool) -> bool {
    // the pool's workers are reached through rayon, which must not wait on the GIL
    py.detach(|| backprop::cpu::denormal::set_flush_denormal(mode))
}

// ------------------------------------------------------------------ combinators

#[pyfunction]
#[pyo3(signature = (tensors, dim=0))]
pub fn cat(py: Python<'_>, tensors: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    let ts = tensors_arg(tensors)?;
    let n: usize = ts.iter().map(|t| t.numel()).sum();
    Ok(wrap(work(py, n, || Tensor::cat(&ts, dim)).py()?))
}

#[pyfunction]
#[pyo3(signature = (tensors, dim=0))]
pub fn stack(py: Python<'_>, tensors: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    let ts = tensors_arg(tensors)?;
    let n: usize = ts.iter().map(|t| t.numel()).sum();
    Ok(wrap(work(py, n, || Tensor::stack(&ts, dim)).py()?))
}

fn tensor_or_scalar(obj: &Bound<'_, PyAny>, like: Option<&Tensor>) -> PyResult<Tensor> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(t.get().tensor().clone());
    }
    if let Some(s) = as_scalar(obj)? {
        let dt = match (s, like) {
            (s, Some(l)) => s.result_dtype(l.dtype()),
            (Scalar::Float(_), None) => backprop::default_float(),
            (Scalar::Int(_), None) => DType::I64,
            (Scalar::Bool(_), None) => DType::Bool,
        };
        return Tensor::full_scalar(s, dt, like.map(|l| l.device()).unwrap_or(Device::Cpu)).py();
    }
    tensor_from_data(obj, None, like.map(|l| l.device()).unwrap_or(Device::Cpu))
}

#[pyfunction]
#[pyo3(name = "where")]
pub fn where_(
    condition: &PyTensor,
    input: &Bound<'_, PyAny>,
    other: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let c = &condition.tensor();
    let a = if input.cast::<PyTensor>().is_ok() {
        tensor_or_scalar(input, None)?
    } else {
        let like = other.cast::<PyTensor>().ok().map(|t| t.get().tensor());
        tensor_or_scalar(input, like.as_ref())?
    };
    let b = tensor_or_scalar(other, Some(&a))?;
    let a = if input.cast::<PyTensor>().is_err() {
        tensor_or_scalar(input, Some(&b))?
    } else {
        a
    };
    // numbers live where the condition does (`where(mask, 1.0, 0.0)` on the GPU)
    let on_cond = |t: Tensor, obj: &Bound<'_, PyAny>| -> PyResult<Tensor> {
        if obj.cast::<PyTensor>().is_err() && t.device() != c.device() {
            t.to_device(c.device()).py()
        } else {
            Ok(t)
        }
    };
    let (a, b) = (on_cond(a, input)?, on_cond(b, other)?);
    Ok(wrap(Tensor::where_cond(c, &a, &b).py()?))
}

// ------------------------------------------------------------------ grad mode and autograd

#[pyfunction]
pub fn is_grad_enabled() -> bool {
    backprop::is_grad_enabled()
}

/// Sets grad mode for this thread, returning the previous mode.
#[pyfunction]
pub fn _set_grad_enabled(enabled: bool) -> bool {
    backprop::set_grad_enabled(enabled)
}

#[pyfunction]
#[pyo3(signature = (outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=false, allow_unused=false))]
pub fn _grad(
    py: Python<'_>,
    outputs: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    grad_outputs: Option<&Bound<'_, PyAny>>,
    retain_graph: Option<bool>,
    create_graph: bool,
    allow_unused: bool,
) -> PyResult<Vec<Option<PyTensor>>> {
    let outs = tensors_arg(outputs)?;
    let ins = tensors_arg(inputs)?;
    let gos: Option<Vec<Option<Tensor>>> = match grad_outputs {
        Some(g) if !g.is_none() => Some(optional_tensors_arg(g)?),
        _ => None,
    };
    let r = py
        .detach(|| {
            backprop::autograd::grad(
                &outs,
                &ins,
                gos.as_deref(),
                retain_graph,
                create_graph,
                allow_unused,
            )
        })
        .py()?;
    Ok(r.into_iter().map(|g| g.map(wrap)).collect())
}

#[pyfunction]
#[pyo3(signature = (tensors, grad_tensors=None, retain_graph=None, create_graph=false, inputs=None))]
pub fn _backward(
    py: Python<'_>,
    tensors: &Bound<'_, PyAny>,
    grad_tensors: Option<&Bound<'_, PyAny>>,
    retain_graph: Option<bool>,
    create_graph: bool,
    inputs: Option<&Bound<'_, PyAny>>,
) -> PyResult<()> {
    let ts = tensors_arg(tensors)?;
    let gs: Option<Vec<Option<Tensor>>> = match grad_tensors {
        Some(g) if !g.is_none() => Some(optional_tensors_arg(g)?),
        _ => None,
    };
    let ins = match inputs {
        Some(i) if !i.is_none() => Some(tensors_arg(i)?),
        _ => None,
    };
    py.detach(|| {
        backprop::autograd::backward(
            &ts,
            gs.as_deref(),
            retain_graph,
            create_graph,
            ins.as_deref(),
        )
    })
    .py()
}

/// Wraps a Python callable as an engine function; the first Python exception it raises is kept
/// and re-raised as is.
fn python_fn<'py>(
    py: Python<'py>,
    func: &'py Bound<'py, PyAny>,
    err: &'py RefCell<Option<PyErr>>,
) -> impl Fn(&[Tensor]) -> backprop::Result<Vec<Tensor>> + 'py {
    move |xs: &[Tensor]| {
        let args: Vec<PyTensor> = xs.iter().cloned().map(wrap).collect();
        let r = PyTuple::new(py, args)
            .and_then(|a| func.call1(a))
            .and_then(|out| {
                if let Ok(t) = out.cast::<PyTensor>() {
                    Ok(vec![t.get().tensor().clone()])
                } else {
                    tensors_arg(&out)
                }
            });
        r.map_err(|e| {
            let msg = e.to_string();
            err.borrow_mut().get_or_insert(e);
            Error::invalid("gradcheck", format!("the function raised: {msg}"))
        })
    }
}

fn run_check(
    py: Python<'_>,
    func: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    opts: GradcheckOptions,
    second: bool,
) -> PyResult<bool> {
    let ins = tensors_arg(inputs)?;
    let err = RefCell::new(None);
    let f = python_fn(py, func, &err);
    let r = if second {
        backprop::gradcheck::gradgradcheck(&f, &ins, opts)
    } else {
        backprop::gradcheck::gradcheck(&f, &ins, opts)
    };
    drop(f);
    if let Some(e) = err.into_inner() {
        return Err(e);
    }
    r.py().map(|_| true)
}

#[pyfunction]
#[pyo3(signature = (func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3))]
pub fn _gradcheck(
    py: Python<'_>,
    func: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    eps: f64,
    atol: f64,
    rtol: f64,
) -> PyResult<bool> {
    run_check(
        py,
        func,
        inputs,
        GradcheckOptions { eps, atol, rtol },
        false,
    )
}

#[pyfunction]
#[pyo3(signature = (func, inputs, eps=1e-6, atol=1e-5, rtol=1e-3))]
pub fn _gradgradcheck(
    py: Python<'_>,
    func: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
    eps: f64,
    atol: f64,
    rtol: f64,
) -> PyResult<bool> {
    run_check(py, func, inputs, GradcheckOptions { eps, atol, rtol }, true)
}

/// Number of engine tensors alive (views and graph nodes included); for leak tests.
#[pyfunction]
pub fn _live_tensors() -> usize {
    backprop::live_tensors()
}

// ------------------------------------------------------------------ functional ops

fn reduction(s: &str) -> PyResult<Reduction> {
    Reduction::parse(s).py()
}

fn opt_tensor(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Tensor>> {
    match obj {
        Some(o) if !o.is_none() => Ok(Some(
            o.cast::<PyTensor>()
                .map_err(|_| PyTypeError::new_err("expected a Tensor or None"))?
                .get()
                .tensor()
                .clone(),
        )),
        _ => Ok(None),
    }
}

#[pyfunction]
#[pyo3(signature = (input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0))]
pub fn cross_entropy(
    py: Python<'_>,
    input: &PyTensor,
    target: &PyTensor,
    weight: Option<&Bound<'_, PyAny>>,
    ignore_index: i64,
    reduction: &str,
    label_smoothing: f64,
) -> PyResult<PyTensor> {
    let opts = ClassLossOptions {
        weight: opt_tensor(weight)?,
        ignore_index,
        reduction: self::reduction(reduction)?,
        label_smoothing,
    };
    let (x, t) = (&input.tensor(), &target.tensor());
    Ok(wrap(
        work(py, x.numel(), || loss::cross_entropy(x, t, &opts)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, target, weight=None, ignore_index=-100, reduction="mean"))]
pub fn nll_loss(
    py: Python<'_>,
    input: &PyTensor,
    target: &PyTensor,
    weight: Option<&Bound<'_, PyAny>>,
    ignore_index: i64,
    reduction: &str,
) -> PyResult<PyTensor> {
    let opts = ClassLossOptions {
        weight: opt_tensor(weight)?,
        ignore_index,
        reduction: self::reduction(reduction)?,
        label_smoothing: 0.0,
    };
    let (x, t) = (&input.tensor(), &target.tensor());
    Ok(wrap(
        work(py, x.numel(), || loss::nll_loss(x, t, &opts)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, target, reduction="mean"))]
pub fn mse_loss(
    py: Python<'_>,
    input: &PyTensor,
    target: &PyTensor,
    reduction: &str,
) -> PyResult<PyTensor> {
    let r = self::reduction(reduction)?;
    let (x, t) = (&input.tensor(), &target.tensor());
    Ok(wrap(work(py, x.numel(), || loss::mse_loss(x, t, r)).py()?))
}

#[pyfunction]
#[pyo3(signature = (input, target, reduction="mean"))]
pub fn l1_loss(
    py: Python<'_>,
    input: &PyTensor,
    target: &PyTensor,
    reduction: &str,
) -> PyResult<PyTensor> {
    let r = self::reduction(reduction)?;
    let (x, t) = (&input.tensor(), &target.tensor());
    Ok(wrap(work(py, x.numel(), || loss::l1_loss(x, t, r)).py()?))
}

#[pyfunction]
#[pyo3(signature = (input, target, weight=None, reduction="mean", pos_weight=None))]
pub fn binary_cross_entropy_with_logits(
    py: Python<'_>,
    input: &PyTensor,
    target: &PyTensor,
    weight: Option<&Bound<'_, PyAny>>,
    reduction: &str,
    pos_weight: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let r = self::reduction(reduction)?;
    let (w, pw) = (opt_tensor(weight)?, opt_tensor(pos_weight)?);
    let (x, t) = (&input.tensor(), &target.tensor());
    Ok(wrap(
        work(py, x.numel(), || {
            loss::binary_cross_entropy_with_logits(x, t, w.as_ref(), pw.as_ref(), r)
        })
        .py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, p=0.5, training=true))]
pub fn dropout(py: Python<'_>, input: &PyTensor, p: f64, training: bool) -> PyResult<PyTensor> {
    let x = &input.tensor();
    Ok(wrap(
        work(py, x.numel(), || {
            backprop::nn::functional::dropout(x, p, training)
        })
        .py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, approximate="none"))]
pub fn gelu(py: Python<'_>, input: &PyTensor, approximate: &str) -> PyResult<PyTensor> {
    let x = &input.tensor();
    let r = match approximate {
        "none" => work(py, x.numel(), || x.gelu()),
        "tanh" => work(py, x.numel(), || x.gelu_tanh()),
        other => {
            return Err(to_py(Error::invalid(
                "gelu",
                format!("approximate must be 'none' or 'tanh', got '{other}'"),
            )))
        }
    };
    Ok(wrap(r.py()?))
}

#[pyfunction]
#[pyo3(signature = (input, negative_slope=0.01))]
pub fn leaky_relu(py: Python<'_>, input: &PyTensor, negative_slope: f64) -> PyResult<PyTensor> {
    let x = &input.tensor();
    Ok(wrap(
        work(py, x.numel(), || x.leaky_relu(negative_slope)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (input, beta=1.0, threshold=20.0))]
pub fn softplus(py: Python<'_>, input: &PyTensor, beta: f64, threshold: f64) -> PyResult<PyTensor> {
    let x = &input.tensor();
    Ok(wrap(
        work(py, x.numel(), || x.softplus(beta, threshold)).py()?,
    ))
}

#[pyfunction]
#[pyo3(signature = (*tensors, indexing=None))]
pub fn meshgrid(tensors: &Bound<'_, PyTuple>, indexing: Option<&str>) -> PyResult<Vec<PyTensor>> {
    // one list argument or the tensors as varargs, as torch.meshgrid
    let items: Vec<Bound<'_, PyAny>> =
        if tensors.len() == 1 && tensors.get_item(0)?.cast::<PyTensor>().is_err() {
            tensors.get_item(0)?.try_iter()?.collect::<PyResult<_>>()?
        } else {
            tensors.iter().collect()
        };
    let ts = items
        .iter()
        .map(|o| {
            o.cast::<PyTensor>()
                .map(|t| t.get().tensor())
                .map_err(PyErr::from)
        })
        .collect::<PyResult<Vec<Tensor>>>()?;
    let ix = match indexing.unwrap_or("ij") {
        "ij" => backprop::MeshIndexing::Ij,
        "xy" => backprop::MeshIndexing::Xy,
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "meshgrid: indexing must be one of \"xy\" or \"ij\", but received: {other}"
            )))
        }
    };
    Ok(Tensor::meshgrid(&ts, ix)
        .py()?
        .into_iter()
        .map(wrap)
        .collect())
}

#[pyfunction]
#[pyo3(signature = (sorted_sequence, input, *, out_int32=false, right=false, side=None, sorter=None))]
pub fn searchsorted(
    py: Python<'_>,
    sorted_sequence: &PyTensor,
    input: &Bound<'_, PyAny>,
    out_int32: bool,
    right: bool,
    side: Option<&str>,
    sorter: Option<&PyTensor>,
) -> PyResult<PyTensor> {
    let seq = sorted_sequence.tensor();
    let right = match side {
        None => right,
        Some("left") if !right => false,
        Some("right") => true,
        Some(s) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "searchsorted: side must be 'left' or 'right' (and agree with right={right}), got '{s}'"
            )))
        }
    };
    let seq = match sorter {
        Some(s) => seq.gather(-1i64, &s.tensor()).py()?,
        None => seq,
    };
    let v = tensor_or_scalar(input, Some(&seq))?;
    let out = work(py, v.numel(), || seq.searchsorted(&v, right)).py()?;
    let _ = out_int32; // int64 either way (there is no int32 dtype yet)
    Ok(wrap(out))
}

#[pyfunction]
#[pyo3(signature = (input, boundaries, *, out_int32=false, right=false))]
pub fn bucketize(
    py: Python<'_>,
    input: &Bound<'_, PyAny>,
    boundaries: &PyTensor,
    out_int32: bool,
    right: bool,
) -> PyResult<PyTensor> {
    let b = boundaries.tensor();
    let x = tensor_or_scalar(input, Some(&b))?;
    let _ = out_int32;
    wrap_r_f(work(py, x.numel(), || x.bucketize(&b, right)))
}

fn wrap_r_f(t: backprop::Result<Tensor>) -> PyResult<PyTensor> {
    t.py().map(wrap)
}

/// `linalg.vector_norm` (the dispatch over `ord=None` / `dim` lives in `backprop_rs.linalg`).
#[pyfunction]
#[pyo3(signature = (x, ord, dim, keepdim))]
pub fn _vector_norm(
    py: Python<'_>,
    x: &PyTensor,
    ord: f64,
    dim: Option<&Bound<'_, PyAny>>,
    keepdim: bool,
) -> PyResult<PyTensor> {
    let dims = dims_arg(dim)?;
    let t = x.tensor();
    wrap_r_f(work(py, t.numel(), || t.vector_norm(ord, &dims, keepdim)))
}

/// `linalg.matrix_norm`: `ord` is 'fro', 'nuc' or a number.
#[pyfunction]
#[pyo3(signature = (x, ord, dim, keepdim))]
pub fn _matrix_norm(
    py: Python<'_>,
    x: &PyTensor,
    ord: &Bound<'_, PyAny>,
    dim: (i64, i64),
    keepdim: bool,
) -> PyResult<PyTensor> {
    let o = match ord.extract::<String>() {
        Ok(s) if s == "fro" => backprop::MatrixOrd::Fro,
        Ok(s) if s == "nuc" => backprop::MatrixOrd::Nuc,
        Ok(s) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "linalg.matrix_norm: ord must be 'fro', 'nuc' or a number, got '{s}'"
            )))
        }
        Err(_) => backprop::MatrixOrd::P(ord.extract::<f64>()?),
    };
    let t = x.tensor();
    wrap_r_f(work(py, t.numel(), || t.matrix_norm(o, dim, keepdim)))
}

fn softmax_backward_data(
    py: Python<'_>,
    grad_output: &PyTensor,
    output: &PyTensor,
    dim: i64,
    input_dtype: Option<&Bound<'_, PyAny>>,
    log: bool,
) -> PyResult<PyTensor> {
    let (g, y) = (grad_output.tensor(), output.tensor());
    let want = opt_dtype(input_dtype)?;
    work(py, g.numel(), || {
        let r = Tensor::softmax_backward(&g, &y, dim, log)?;
        match want {
            Some(d) if d != r.dtype() => r.to_dtype(d),
            _ => Ok(r),
        }
    })
    .py()
    .map(wrap)
}

/// PyTorch's `torch._softmax_backward_data`: softmax's gradient from the output's.
#[pyfunction]
#[pyo3(signature = (grad_output, output, dim, input_dtype=None))]
pub fn _softmax_backward_data(
    py: Python<'_>,
    grad_output: &PyTensor,
    output: &PyTensor,
    dim: i64,
    input_dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    softmax_backward_data(py, grad_output, output, dim, input_dtype, false)
}

/// PyTorch's `torch._log_softmax_backward_data`: log-softmax's gradient from the output's.
#[pyfunction]
#[pyo3(signature = (grad_output, output, dim, input_dtype=None))]
pub fn _log_softmax_backward_data(
    py: Python<'_>,
    grad_output: &PyTensor,
    output: &PyTensor,
    dim: i64,
    input_dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    softmax_backward_data(py, grad_output, output, dim, input_dtype, true)
}

/// The fused (flash) attention primitive behind `F.scaled_dot_product_attention` when it has no
/// mask and no dropout: `softmax(q k^T * scale) v` with equal leading dims.
#[pyfunction]
#[pyo3(signature = (query, key, value, scale=None, is_causal=false))]
pub fn _fused_attention(
    py: Python<'_>,
    query: &PyTensor,
    key: &PyTensor,
    value: &PyTensor,
    scale: Option<f64>,
    is_causal: bool,
) -> PyResult<PyTensor> {
    let (q, k, v) = (query.tensor(), key.tensor(), value.tensor());
    let n = q.numel().max(k.numel());
    wrap_r_f(work(py, n, || {
        Tensor::scaled_dot_product_attention(&q, &k, &v, scale, is_causal)
    }))
}

/// One LSTM direction over a whole sequence with the core's backward through time
/// (`backprop::nn::rnn::lstm_layer`): `(outputs [T, B, H], h_T, c_T)`.
#[pyfunction]
#[pyo3(signature = (xw, h0, c0, w_hh, reverse=false))]
pub fn _lstm_layer(
    py: Python<'_>,
    xw: &PyTensor,
    h0: &PyTensor,
    c0: &PyTensor,
    w_hh: &PyTensor,
    reverse: bool,
) -> PyResult<(PyTensor, PyTensor, PyTensor)> {
    let (x, h, c, w) = (xw.tensor(), h0.tensor(), c0.tensor(), w_hh.tensor());
    let (o, hn, cn) = work(py, x.numel(), || {
        backprop::nn::rnn::lstm_layer(&x, &h, &c, &w, reverse)
    })
    .py()?;
    Ok((wrap(o), wrap(hn), wrap(cn)))
}

/// The default float dtype (`torch.get_default_dtype`).
#[pyfunction]
pub fn _get_default_dtype() -> PyDType {
    PyDType {
        inner: backprop::default_float(),
    }
}

/// The global generator's state as four 64-bit words (`bp.get_rng_state` packs them as bytes).
#[pyfunction]
pub fn _get_rng_state() -> Vec<u64> {
    backprop::random::state().to_vec()
}

/// Restores the global generator from four 64-bit words.
#[pyfunction]
pub fn _set_rng_state(words: Vec<u64>) -> PyResult<()> {
    let w: [u64; 4] = words
        .try_into()
        .map_err(|_| PyTypeError::new_err("the generator state has four 64-bit words"))?;
    backprop::random::set_state(w).py()
}

/// `torch.promote_types(type1, type2)`: the core's promotion table.
#[pyfunction]
pub fn promote_types(type1: &Bound<'_, PyAny>, type2: &Bound<'_, PyAny>) -> PyResult<PyDType> {
    Ok(PyDType {
        inner: DType::promote(parse_dtype(type1)?, parse_dtype(type2)?),
    })
}

/// `torch.result_type(tensor1, tensor2)`: each a tensor or a Python number, by the core's rule
/// (0-d tensors and numbers do not widen within a category).
#[pyfunction]
pub fn result_type(tensor1: &Bound<'_, PyAny>, tensor2: &Bound<'_, PyAny>) -> PyResult<PyDType> {
    use backprop::Participation as P;
    let operand = |o: &Bound<'_, PyAny>| -> PyResult<(DType, P)> {
        if let Ok(t) = o.cast::<PyTensor>() {
            let t = t.get().tensor();
            return Ok((t.dtype(), if t.rank() == 0 { P::ZeroDim } else { P::Dim }));
        }
        if o.is_instance_of::<pyo3::types::PyBool>() {
            Ok((DType::Bool, P::Number))
        } else if o.is_instance_of::<pyo3::types::PyInt>() {
            Ok((DType::I64, P::Number))
        } else if o.is_instance_of::<pyo3::types::PyFloat>() {
            Ok((backprop::default_float(), P::Number))
        } else {
            Err(PyTypeError::new_err(format!(
                "result_type(): expected a Tensor or a Number, got {}",
                o.get_type().name()?
            )))
        }
    };
    let ops = [operand(tensor1)?, operand(tensor2)?];
    let d = DType::result_type(&ops)
        .ok_or_else(|| PyTypeError::new_err("result_type(): no operands"))?;
    Ok(PyDType { inner: d })
}

/// `torch.can_cast(from_, to)`: PyTorch's casting rule for in-place and `out=` results (no
/// float to integral, no non-bool to bool).
#[pyfunction]
pub fn can_cast(from_: &Bound<'_, PyAny>, to: &Bound<'_, PyAny>) -> PyResult<bool> {
    let (a, b) = (parse_dtype(from_)?, parse_dtype(to)?);
    let float_to_integral = a.is_float() && !b.is_float();
    let to_bool = a != DType::Bool && b == DType::Bool;
    Ok(!(float_to_integral || to_bool))
}

/// Sets the default float dtype (`torch.set_default_dtype`); a non-float dtype is a TypeError.
#[pyfunction]
pub fn _set_default_dtype(dtype: &Bound<'_, PyAny>) -> PyResult<()> {
    let d = opt_dtype(Some(dtype))?.ok_or_else(|| PyTypeError::new_err("a dtype is required"))?;
    if !d.is_float() {
        return Err(PyTypeError::new_err(format!(
            "only floating-point types are supported as the default type, got {}",
            d.as_str()
        )));
    }
    backprop::set_default_float(d).py()
}

/// The factories' default device (`torch.get_default_device`).
#[pyfunction]
pub fn _get_default_device() -> PyDevice {
    PyDevice {
        inner: backprop::default_device(),
    }
}

/// Sets the factories' default device (`torch.set_default_device`; None restores the CPU).
#[pyfunction]
pub fn _set_default_device(device: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
    let d = match device {
        Some(o) if !o.is_none() => parse_device(o)?,
        _ => Device::Cpu,
    };
    backprop::set_default_device(d);
    Ok(())
}

/// Sets the print options (`torch.set_printoptions`; Python resolves profiles and keeps the
/// fields not given). `threshold` may be `inf` (never summarise).
#[pyfunction]
pub fn _set_print_options(
    precision: usize,
    threshold: f64,
    edgeitems: usize,
    linewidth: usize,
    sci_mode: Option<bool>,
) -> PyResult<()> {
    if threshold.is_nan() {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "set_printoptions: threshold must be a number, got nan",
        ));
    }
    backprop::set_print_options(backprop::PrintOptions {
        precision,
        threshold,
        edgeitems,
        linewidth,
        sci_mode,
    });
    Ok(())
}

/// The print options as `(precision, threshold, edgeitems, linewidth, sci_mode)`.
#[pyfunction]
pub fn _get_print_options() -> (usize, f64, usize, usize, Option<bool>) {
    let o = backprop::print_options();
    (
        o.precision,
        o.threshold,
        o.edgeitems,
        o.linewidth,
        o.sci_mode,
    )
}

/// All public names of the functional API that Python re-exports.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( m.add_function(wrap_pyfunction!($f, m)?)?; )* };
    }
    add!(
        _set_print_options,
        _get_print_options,
        _get_default_device,
        _set_default_device,
        _get_default_dtype,
        _set_default_dtype,
        promote_types,
        _get_rng_state,
        _set_rng_state,
        result_type,
        can_cast,
        _softmax_backward_data,
        _log_softmax_backward_data,
        _fused_attention,
        _lstm_layer,
        tensor,
        as_tensor,
        from_numpy,
        zeros,
        ones,
        empty,
        full,
        zeros_like,
        ones_like,
        empty_like,
        full_like,
        rand,
        randn,
        rand_like,
        randn_like,
        randint,
        randperm,
        arange,
        linspace,
        eye,
        manual_seed,
        set_flush_denormal,
        _set_detect_anomaly,
        _is_anomaly_enabled
    );
    add!(
        cat,
        stack,
        where_,
        is_grad_enabled,
        _set_grad_enabled,
        _grad,
        _backward,
        _gradcheck,
        _gradgradcheck,
        _live_tensors
    );
    add!(
        cross_entropy,
        nll_loss,
        mse_loss,
        l1_loss,
        binary_cross_entropy_with_logits,
        dropout,
        gelu,
        leaky_relu,
        softplus
    );
    add!(
        meshgrid,
        searchsorted,
        bucketize,
        _vector_norm,
        _matrix_norm
    );
    let _ = PyList::empty(m.py());
    Ok(())
}
