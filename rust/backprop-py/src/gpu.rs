//! GPU queries for `backprop_rs.gpu`: availability, what the adapter is, waiting for queued work,
//! releasing cached device memory. Glue only; the backend is `backprop::gpu`.

use crate::errors::IntoPy;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Whether a GPU adapter with compute shaders exists (opens the device on first call).
#[pyfunction]
fn _gpu_is_available(py: Python<'_>) -> bool {
    py.detach(backprop::gpu::is_available)
}

/// The adapter as a dict: name, backend, device_type, driver, driver_info, vendor, device, limits.
/// Raises RuntimeError saying what was looked for when there is no adapter.
#[pyfunction]
fn _gpu_adapter_info<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let info = py.detach(backprop::gpu::adapter_info).py()?;
    let d = PyDict::new(py);
    d.set_item("name", info.name)?;
    d.set_item("backend", info.backend)?;
    d.set_item("device_type", info.device_type)?;
    d.set_item("driver", info.driver)?;
    d.set_item("driver_info", info.driver_info)?;
    d.set_item("vendor", info.vendor)?;
    d.set_item("device", info.device)?;
    let limits = PyDict::new(py);
    for (k, v) in info.limits {
        limits.set_item(k, v)?;
    }
    d.set_item("limits", limits)?;
    Ok(d)
}

/// Submits queued GPU work and waits for it; raises if the device reported an error.
#[pyfunction]
fn _gpu_synchronize(py: Python<'_>) -> PyResult<()> {
    py.detach(backprop::gpu::synchronize).py()
}

/// Frees the device buffers kept for reuse.
#[pyfunction]
fn _gpu_empty_cache(py: Python<'_>) -> PyResult<()> {
    py.detach(backprop::gpu::empty_cache).py()
}

/// How many device buffers were created so far (to check that a loop stops allocating).
#[pyfunction]
fn _gpu_buffers_created() -> u64 {
    backprop::gpu::buffers_created()
}

/// The backend's counters of host-side work as a dict: submits, dispatches, compute_passes,
/// bind_groups_created, buffers_created, uploads, readbacks (totals since start; take
/// differences around the code to measure).
#[pyfunction]
fn _gpu_counters(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let c = backprop::gpu::counters();
    let d = PyDict::new(py);
    d.set_item("submits", c.submits)?;
    d.set_item("dispatches", c.dispatches)?;
    d.set_item("compute_passes", c.compute_passes)?;
    d.set_item("bind_groups_created", c.bind_groups_created)?;
    d.set_item("buffers_created", c.buffers_created)?;
    d.set_item("uploads", c.uploads)?;
    d.set_item("readbacks", c.readbacks)?;
    Ok(d)
}

/// The WGSL source the backend compiles for a kernel family (generated prelude + common.wgsl +
/// the family's file), for running a kernel on its own (tests/test_shaders_wgpu_py.py).
#[pyfunction]
fn _wgsl_source(family: &str) -> PyResult<String> {
    backprop::wgsl::source(family).ok_or_else(|| {
        let names: Vec<&str> = backprop::wgsl::FAMILIES.iter().map(|f| f.0).collect();
        pyo3::exceptions::PyValueError::new_err(format!(
            "no kernel family '{family}' (families: {names:?})"
        ))
    })
}

/// The generated WGSL constants (op codes, dtype codes, optimizer flags) as a dict.
#[pyfunction]
fn _wgsl_constants(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in backprop::wgsl::constants() {
        d.set_item(k, v)?;
    }
    Ok(d)
}

/// Frees the memory both backends keep for reuse (the CPU buffer pool; the GPU pool and cached
/// bind groups, if the GPU was used). Live tensors are untouched.
#[pyfunction]
fn empty_cache(py: Python<'_>) -> PyResult<()> {
    py.detach(|| {
        backprop::cpu::buffer::release_pool();
        if backprop::gpu::memory_stats() != (0, 0, 0) {
            backprop::gpu::empty_cache()?;
        }
        Ok::<(), backprop::Error>(())
    })
    .py()
}

/// Memory statistics of a device as a dict with `torch.cuda.memory_stats`-style keys:
/// `allocated_bytes.all.current`, `allocated_bytes.all.peak`, `reserved_bytes.all.current`
/// (allocated plus cached), `cached_bytes`, and for the CPU `cache_limit_bytes`.
#[pyfunction]
#[pyo3(signature = (device="cpu"))]
fn _memory_stats<'py>(py: Python<'py>, device: &str) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    let (allocated, peak, cached, limit) = match device {
        "cpu" => {
            let s = backprop::cpu::buffer::memory_stats();
            (
                s.allocated as u64,
                s.peak as u64,
                s.cached as u64,
                Some(s.cache_limit as u64),
            )
        }
        "gpu" | "cuda" => {
            let (a, p, c) = backprop::gpu::memory_stats();
            (a, p, c, None)
        }
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "memory_stats: unknown device '{other}' (expected 'cpu' or 'gpu')"
            )))
        }
    };
    d.set_item("allocated_bytes.all.current", allocated)?;
    d.set_item("allocated_bytes.all.peak", peak)?;
    d.set_item("reserved_bytes.all.current", allocated + cached)?;
    d.set_item("cached_bytes", cached)?;
    if let Some(l) = limit {
        d.set_item("cache_limit_bytes", l)?;
    }
    Ok(d)
}

/// Writes newly compiled pipelines to the on-disk cache (never opens a device).
#[pyfunction]
fn _gpu_save_pipeline_cache(py: Python<'_>) {
    py.detach(backprop::gpu::save_pipeline_cache)
}

/// The on-disk pipeline cache file of the device, or None.
#[pyfunction]
fn _gpu_pipeline_cache_path(py: Python<'_>) -> Option<String> {
    py.detach(backprop::gpu::pipeline_cache_path)
        .map(|p| p.to_string_lossy().into_owned())
}

/// Restarts the peak counters of `memory_stats` (both devices) at the current use.
#[pyfunction]
fn reset_peak_memory_stats() {
    backprop::cpu::buffer::reset_peak_memory();
    backprop::gpu::reset_peak_memory();
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(empty_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(reset_peak_memory_stats, m)?)?;
    m.add_function(wrap_pyfunction!(_wgsl_source, m)?)?;
    m.add_function(wrap_pyfunction!(_wgsl_constants, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_is_available, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_adapter_info, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_synchronize, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_empty_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_buffers_created, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_counters, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_save_pipeline_cache, m)?)?;
    m.add_function(wrap_pyfunction!(_gpu_pipeline_cache_path, m)?)?;
    Ok(())
}
