//! Glue for `backprop::MemoryFormat`: `backprop_rs.channels_last` and friends, PyTorch's
//! `torch.memory_format` objects, and their parsing from `memory_format=` arguments.

use backprop::MemoryFormat;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// A memory format (`backprop_rs.channels_last`...), as `torch.memory_format`.
#[pyclass(name = "memory_format", module = "backprop_rs", frozen, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyMemoryFormat {
    pub inner: MemoryFormat,
}

#[pymethods]
impl PyMemoryFormat {
    fn __repr__(&self) -> String {
        format!("backprop_rs.{}", self.inner.name())
    }
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyMemoryFormat>()
            .is_ok_and(|o| o.get().inner == self.inner)
    }
    fn __hash__(&self) -> isize {
        self.inner as isize
    }
}

/// `memory_format=` read: a `memory_format` object, or None for `default`.
pub fn parse(obj: Option<&Bound<'_, PyAny>>, default: MemoryFormat) -> PyResult<MemoryFormat> {
    match obj {
        None => Ok(default),
        Some(o) if o.is_none() => Ok(default),
        Some(o) => o
            .cast::<PyMemoryFormat>()
            .map(|f| f.get().inner)
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "memory_format must be a backprop_rs.memory_format (e.g. backprop_rs.channels_last), got {}",
                    o.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ))
            }),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMemoryFormat>()?;
    for f in [
        MemoryFormat::Contiguous,
        MemoryFormat::ChannelsLast,
        MemoryFormat::ChannelsLast3d,
        MemoryFormat::Preserve,
    ] {
        m.add(f.name(), PyMemoryFormat { inner: f })?;
    }
    Ok(())
}
