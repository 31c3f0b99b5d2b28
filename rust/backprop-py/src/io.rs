//! Checkpoint I/O: `_save` / `_load` (files) and `_save_bytes` / `_load_bytes` (memory), thin
//! wrappers over `backprop::io`. The Python layer (`backprop_rs.serialization`) turns nested
//! state dicts into the flat `(name, tensor)` list and string metadata these take. The GIL is
//! released around encoding, parsing and file I/O.

use crate::errors::IntoPy;
use crate::tensor::{wrap, PyTensor};
use backprop::io::Checkpoint;
use backprop::Tensor;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::collections::BTreeMap;
use std::path::PathBuf;

type Loaded = (Vec<(String, PyTensor)>, BTreeMap<String, String>);

fn pairs(names: Vec<String>, tensors: Vec<PyRef<'_, PyTensor>>) -> PyResult<Vec<(String, Tensor)>> {
    if names.len() != tensors.len() {
        return Err(PyValueError::new_err(format!(
            "got {} names for {} tensors",
            names.len(),
            tensors.len()
        )));
    }
    Ok(names
        .into_iter()
        .zip(tensors.iter().map(|t| t.tensor().clone()))
        .collect())
}

fn unpack(c: Checkpoint) -> Loaded {
    (
        c.tensors.into_iter().map(|(n, t)| (n, wrap(t))).collect(),
        c.metadata,
    )
}

/// Writes `tensors` under `names` (and the string `metadata`) to `path` as safetensors.
#[pyfunction]
#[pyo3(signature = (names, tensors, metadata, path))]
pub fn _save(
    py: Python<'_>,
    names: Vec<String>,
    tensors: Vec<PyRef<'_, PyTensor>>,
    metadata: Option<BTreeMap<String, String>>,
    path: PathBuf,
) -> PyResult<()> {
    let items = pairs(names, tensors)?;
    py.detach(|| backprop::io::save(&items, metadata.as_ref(), &path))
        .py()
}

/// The safetensors bytes `_save` would write.
#[pyfunction]
#[pyo3(signature = (names, tensors, metadata))]
pub fn _save_bytes<'py>(
    py: Python<'py>,
    names: Vec<String>,
    tensors: Vec<PyRef<'_, PyTensor>>,
    metadata: Option<BTreeMap<String, String>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let items = pairs(names, tensors)?;
    let bytes = py
        .detach(|| backprop::io::save_to_bytes(&items, metadata.as_ref()))
        .py()?;
    Ok(PyBytes::new(py, &bytes))
}

/// Reads a safetensors file: `([(name, tensor), ...] in file order, metadata dict)`.
#[pyfunction]
pub fn _load(py: Python<'_>, path: PathBuf) -> PyResult<Loaded> {
    Ok(unpack(py.detach(|| backprop::io::load(&path)).py()?))
}

/// `_load` for a file's bytes held in memory.
#[pyfunction]
pub fn _load_bytes(py: Python<'_>, data: &[u8]) -> PyResult<Loaded> {
    Ok(unpack(
        py.detach(|| backprop::io::load_from_bytes(data)).py()?,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_save, m)?)?;
    m.add_function(wrap_pyfunction!(_save_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(_load, m)?)?;
    m.add_function(wrap_pyfunction!(_load_bytes, m)?)?;
    Ok(())
}
