//! Anomaly detection (PyTorch's `torch.autograd.detect_anomaly`): while it is on, every recorded
//! op remembers where it was called from, and backward checks each gradient it computes; the
//! first NaN or infinity is an error naming the op whose backward produced it and showing the
//! call that recorded that op. It costs a trace per op and a check (a readback on the GPU) per
//! gradient, so it is a debugging mode, off by default.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

static ENABLED: AtomicBool = AtomicBool::new(false);
static CHECK_NAN: AtomicBool = AtomicBool::new(true);

/// Produces the description of the current call site (the Python binding installs one that
/// formats the Python stack; the default is Rust's backtrace).
pub type TraceHook = fn() -> Option<String>;
static HOOK: RwLock<Option<TraceHook>> = RwLock::new(None);

/// Turns anomaly detection on or off (process-wide, as PyTorch's); returns the old setting.
pub fn set_enabled(on: bool, check_nan: bool) -> bool {
    CHECK_NAN.store(check_nan, Ordering::Relaxed);
    ENABLED.swap(on, Ordering::Relaxed)
}

pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

pub(crate) fn check_nan() -> bool {
    CHECK_NAN.load(Ordering::Relaxed)
}

/// Sets how call sites are described (`None`: Rust's backtrace).
pub fn set_trace_hook(hook: Option<TraceHook>) {
    *HOOK.write().unwrap_or_else(|e| e.into_inner()) = hook;
}

/// The current call site, when anomaly detection is on.
pub(crate) fn trace() -> Option<Arc<str>> {
    if !is_enabled() {
        return None;
    }
    let hook = *HOOK.read().unwrap_or_else(|e| e.into_inner());
    let text = match hook {
        Some(h) => h(),
        None => Some(std::backtrace::Backtrace::force_capture().to_string()),
    };
    text.map(Arc::from)
}
