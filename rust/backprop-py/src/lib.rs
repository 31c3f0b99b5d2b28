//! `backprop_rs._core`: the Python extension module. Glue only — the engine is the `backprop`
//! crate; this crate converts arguments, raises the right exceptions and releases the GIL around
//! kernels.

mod alloc;
mod autocast;
mod autograd;
mod conv;
mod convert;
mod errors;
mod functions;
mod gpu;
mod info;
mod io;
mod memory_format;
mod nn;
mod tensor;

use pyo3::prelude::*;

#[global_allocator]
static GLOBAL: alloc::SplitAlloc = alloc::SplitAlloc;

/// Makes the importing thread (normally Python's main thread) one of rayon's workers. A parallel
/// kernel called from it then starts on it at once and hands half the work to the other
/// worker(s), instead of blocking while sleeping workers wake up (tens of microseconds on a busy
/// or virtualised machine: more than a mid-size kernel takes). `RAYON_NUM_THREADS` still sets
/// the total. If a pool already exists, it is kept.
fn init_thread_pool() {
    let n = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .use_current_thread()
        .build_global();
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    init_thread_pool();
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
        ("float16", backprop::DType::F16),
        ("bfloat16", backprop::DType::BF16),
        ("int32", backprop::DType::I32),
        ("int16", backprop::DType::I16),
        ("int8", backprop::DType::I8),
        ("uint8", backprop::DType::U8),
    ] {
        m.add(name, convert::PyDType { inner: d })?;
    }
    functions::register(m)?;
    autograd::register(m)?;
    autocast::register(m)?;
    m.add_function(wrap_pyfunction!(tensor::_unary, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::_unary_, m)?)?;
    m.add_function(wrap_pyfunction!(tensor::_unary_op_names, m)?)?;
    nn::register(m)?;
    conv::register(m)?;
    io::register(m)?;
    memory_format::register(m)?;
    gpu::register(m)?;
    info::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
