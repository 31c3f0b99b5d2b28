//! `torch.autocast`'s thread-local switches (`torch.set_autocast_enabled`, ...) and the two
//! entry points the Python layer's listed composites use. The policy itself is the core's
//! (`backprop::autocast`).

use std::cell::RefCell;

use backprop::autocast::{self, Policy, RegionState, Suspended};
use pyo3::prelude::*;

use crate::convert::{parse_device, parse_dtype, PyDType};
use crate::errors::IntoPy;
use crate::tensor::{wrap, PyTensor};

thread_local! {
    // Suspensions opened from Python (`_autocast_suspend`), closed in LIFO order.
    static PY_SUSPENDED: RefCell<Vec<Suspended>> = const { RefCell::new(Vec::new()) };
}

/// The settings an autocast region replaced (opaque to Python).
#[pyclass(name = "_AutocastState", module = "backprop_rs._core", frozen)]
pub struct PyRegionState(RegionState);

#[pyfunction]
fn _autocast_is_enabled(device: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(autocast::is_enabled(parse_device(device)?))
}

#[pyfunction]
fn _autocast_set_enabled(device: &Bound<'_, PyAny>, enabled: bool) -> PyResult<bool> {
    autocast::set_enabled(parse_device(device)?, enabled).py()
}

#[pyfunction]
fn _autocast_get_dtype(device: &Bound<'_, PyAny>) -> PyResult<PyDType> {
    Ok(PyDType {
        inner: autocast::dtype(parse_device(device)?),
    })
}

#[pyfunction]
fn _autocast_set_dtype(device: &Bound<'_, PyAny>, dtype: &Bound<'_, PyAny>) -> PyResult<()> {
    autocast::set_dtype(parse_device(device)?, parse_dtype(dtype)?).py()?;
    Ok(())
}

#[pyfunction]
fn _autocast_is_cache_enabled() -> bool {
    autocast::is_cache_enabled()
}

#[pyfunction]
fn _autocast_set_cache_enabled(enabled: bool) -> bool {
    autocast::set_cache_enabled(enabled)
}

#[pyfunction]
fn _autocast_clear_cache() {
    autocast::clear_cache()
}

#[pyfunction]
fn _autocast_increment_nesting() -> i64 {
    autocast::increment_nesting()
}

#[pyfunction]
fn _autocast_decrement_nesting() -> i64 {
    autocast::decrement_nesting()
}

#[pyfunction]
fn _autocast_cached_casts() -> usize {
    autocast::cached_casts()
}

/// `autocast.__enter__`: the previous settings, for `_autocast_exit`.
#[pyfunction]
fn _autocast_enter(
    device: &Bound<'_, PyAny>,
    enabled: bool,
    dtype: &Bound<'_, PyAny>,
    cache_enabled: bool,
) -> PyResult<PyRegionState> {
    let state = autocast::enter(
        parse_device(device)?,
        enabled,
        parse_dtype(dtype)?,
        cache_enabled,
    )
    .py()?;
    Ok(PyRegionState(state))
}

#[pyfunction]
fn _autocast_exit(state: &PyRegionState) {
    autocast::exit(state.0)
}

/// Whether an op called now on the CPU would be autocast (cheap: the Python composites on the
/// lists ask it first).
#[pyfunction]
fn _autocast_active() -> bool {
    autocast::is_active(backprop::Device::Cpu)
}

/// `tensor` cast for a listed op under `policy` (`"lower"` or `"fp32"`); `tensor` itself (the
/// same object) when autocast is not active or the tensor is not eligible.
#[pyfunction]
fn _autocast_cast<'py>(policy: &str, tensor: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let policy = Policy::parse(policy).py()?;
    let Ok(t) = tensor.cast::<PyTensor>() else {
        return Ok(tensor.clone());
    };
    let t = t.get().tensor();
    let Some(ac) = autocast::begin(policy, t.device()) else {
        return Ok(tensor.clone());
    };
    let cast = ac.cast(&t).py()?;
    if cast.id() == t.id() {
        return Ok(tensor.clone());
    }
    Ok(Bound::new(tensor.py(), wrap(cast))?.into_any())
}

/// Suspends autocast until the matching `_autocast_resume` (a listed composite's body).
#[pyfunction]
fn _autocast_suspend() {
    PY_SUSPENDED.with(|s| s.borrow_mut().push(autocast::suspend()));
}

#[pyfunction]
fn _autocast_resume() {
    PY_SUSPENDED.with(|s| drop(s.borrow_mut().pop()));
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    macro_rules! add {
        ($($f:ident),* $(,)?) => { $( m.add_function(wrap_pyfunction!($f, m)?)?; )* };
    }
    m.add_class::<PyRegionState>()?;
    add!(
        _autocast_is_enabled,
        _autocast_set_enabled,
        _autocast_get_dtype,
        _autocast_set_dtype,
        _autocast_is_cache_enabled,
        _autocast_set_cache_enabled,
        _autocast_clear_cache,
        _autocast_increment_nesting,
        _autocast_decrement_nesting,
        _autocast_cached_casts,
        _autocast_enter,
        _autocast_exit,
        _autocast_active,
        _autocast_cast,
        _autocast_suspend,
        _autocast_resume,
    );
    Ok(())
}
