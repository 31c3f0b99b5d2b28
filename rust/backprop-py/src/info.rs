//! `_core._cpu_info()`: what the engine sees of the CPU it runs on, for `backprop-rs bench` headers
//! and bug reports. Glue only: the detection lives in `backprop::cpu`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `{"simd": "avx512" | "avx2+fma" | "neon" | "scalar", "threads": <rayon threads>}`.
#[pyfunction]
pub fn _cpu_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("simd", backprop::cpu::features::simd_level())?;
    d.set_item("threads", backprop::cpu::parallel::threads())?;
    Ok(d)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_cpu_info, m)?)
}
