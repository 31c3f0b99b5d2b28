//! Engine errors as Python exceptions of the kinds people catch.
//!
//! Shape errors are `ShapeError`, a subclass of both ValueError and RuntimeError (PyTorch raises
//! RuntimeError, NumPy ValueError: either habit catches it). Likewise `DTypeError` is a TypeError
//! and a RuntimeError. Index problems are IndexError, allocation failures MemoryError.

use backprop::Error;
use pyo3::exceptions::{
    PyIndexError, PyMemoryError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

static SHAPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DTYPE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static GRADCHECK_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ZERO_DIVISION_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn make_type(
    py: Python<'_>,
    name: &str,
    bases: &[Bound<'_, PyType>],
    doc: &str,
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__doc__", doc)?;
    dict.set_item("__module__", "backprop_rs")?;
    let bases = PyTuple::new(py, bases)?;
    let ty = py.get_type::<PyType>().call1((name, bases, dict))?;
    Ok(ty.cast_into::<PyType>()?.unbind())
}

/// Creates the exception classes and adds them to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    let shape = SHAPE_ERROR.get_or_try_init(py, || {
        make_type(
            py,
            "ShapeError",
            &[
                py.get_type::<PyValueError>(),
                py.get_type::<PyRuntimeError>(),
            ],
            "Tensor shapes do not fit the operation.",
        )
    })?;
    let dtype = DTYPE_ERROR.get_or_try_init(py, || {
        make_type(
            py,
            "DTypeError",
            &[
                py.get_type::<PyTypeError>(),
                py.get_type::<PyRuntimeError>(),
            ],
            "Tensor dtypes do not fit the operation.",
        )
    })?;
    let gc = GRADCHECK_ERROR.get_or_try_init(py, || {
        make_type(
            py,
            "GradcheckError",
            &[py.get_type::<PyRuntimeError>()],
            "Analytical and numerical gradients disagree.",
        )
    })?;
    // PyTorch raises RuntimeError("ZeroDivisionError"); Python's own class catches it too
    let zd = ZERO_DIVISION_ERROR.get_or_try_init(py, || {
        make_type(
            py,
            "ZeroDivisionError",
            &[
                py.get_type::<pyo3::exceptions::PyZeroDivisionError>(),
                py.get_type::<PyRuntimeError>(),
            ],
            "Integer division or remainder by zero.",
        )
    })?;
    m.add("ZeroDivisionError", zd.bind(py))?;
    m.add("ShapeError", shape.bind(py))?;
    m.add("DTypeError", dtype.bind(py))?;
    m.add("GradcheckError", gc.bind(py))?;
    Ok(())
}

fn raise(lock: &PyOnceLock<Py<PyType>>, fallback: fn(String) -> PyErr, msg: String) -> PyErr {
    Python::attach(|py| match lock.get(py) {
        Some(ty) => PyErr::from_type(ty.bind(py).clone(), msg),
        None => fallback(msg),
    })
}

/// Converts an engine error into the matching Python exception.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    match e {
        // a Python exception raised in a hook or a custom backward: re-raise it as it was
        Error::Callback { payload, .. } => match payload.0.downcast_ref::<PyErr>() {
            Some(err) => Python::attach(|py| err.clone_ref(py)),
            None => PyRuntimeError::new_err(msg),
        },
        Error::ShapeMismatch { .. } | Error::InvalidShape { .. } => {
            raise(&SHAPE_ERROR, PyValueError::new_err, msg)
        }
        Error::DType { .. } | Error::DTypeMismatch { .. } => {
            raise(&DTYPE_ERROR, PyTypeError::new_err, msg)
        }
        Error::Gradcheck(_) => raise(&GRADCHECK_ERROR, PyRuntimeError::new_err, msg),
        Error::ZeroDivision { .. } => raise(
            &ZERO_DIVISION_ERROR,
            pyo3::exceptions::PyZeroDivisionError::new_err,
            msg,
        ),
        Error::DimOutOfRange { .. } | Error::IndexOutOfRange { .. } | Error::Index { .. } => {
            PyIndexError::new_err(msg)
        }
        Error::Type { .. } => PyTypeError::new_err(msg),
        Error::OutOfMemory { .. } => PyMemoryError::new_err(msg),
        Error::InvalidArgument { .. } | Error::Checkpoint(_) => PyValueError::new_err(msg),
        Error::Io { .. } => PyOSError::new_err(msg),
        Error::DeviceMismatch { .. }
        | Error::Autograd(_)
        | Error::Unsupported { .. }
        | Error::Gpu(_) => PyRuntimeError::new_err(msg),
    }
}

/// Carries a Python exception raised in a callback (hook, custom backward) through the engine.
pub fn callback_error(e: PyErr) -> Error {
    Error::Callback {
        msg: e.to_string(),
        payload: backprop::CallbackError(std::sync::Arc::new(e)),
    }
}

/// `?`-friendly conversion for engine results.
pub trait IntoPy<T> {
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for backprop::Result<T> {
    #[inline]
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
