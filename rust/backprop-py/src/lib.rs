//! `backprop_rs._core`: the Python extension module. Glue only — the engine is the `backprop`
//! crate; this crate converts arguments, raises the right exceptions and releases the GIL around
//! kernels.

mod convert;
mod errors;
mod functions;
mod info;
mod nn;
mod tensor;

use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<tensor::PyTensor>()?;
    m.add_class::<convert::PyDType>()?;
    m.add_class::<convert::PyDevice>()?;
    m.add_class::<convert::StorageOwner>()?;
    for (name, d) in [
        ("float32", backprop::DType::F32),
        ("float64", backprop::DType::F64),
        ("int64", backprop::DType::I64),
        ("bool_", backprop::DType::Bool),
    ] {
        m.add(name, convert::PyDType { inner: d })?;
    }
    functions::register(m)?;
    nn::register(m)?;
    info::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
