//! One error type for the whole engine.
//!
//! Every variant names the operation that failed and the shapes, dtypes or devices involved, so
//! that a message read in Python (where these become ValueError / TypeError / RuntimeError /
//! MemoryError / IndexError) says what to fix without a stack trace into Rust.

use crate::{DType, Device, Shape};

/// The result type of every fallible engine call.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the engine. Nothing in the core panics on bad input.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Two shapes that must agree (or broadcast) do not.
    #[error("{op}: shape mismatch between {lhs} and {rhs}{detail}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        detail: String,
    },

    /// A shape that is invalid for the op on its own (wrong rank, wrong element count, ...).
    #[error("{op}: invalid shape {shape}: {msg}")]
    InvalidShape {
        op: &'static str,
        shape: Shape,
        msg: String,
    },

    /// Operands have dtypes the op cannot combine or does not support.
    #[error("{op}: unsupported dtype {dtype}{detail}")]
    DType {
        op: &'static str,
        dtype: DType,
        detail: String,
    },

    /// Two operands have dtypes that must be equal but are not.
    #[error("{op}: expected both operands to have the same dtype, got {lhs} and {rhs}")]
    DTypeMismatch {
        op: &'static str,
        lhs: DType,
        rhs: DType,
    },

    /// Operands live on different devices.
    #[error("{op}: expected all tensors on the same device, got {lhs} and {rhs}")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },

    /// A dimension argument is out of range for the tensor's rank.
    #[error("{op}: dimension {dim} is out of range for a tensor of rank {rank} (expected {lo}..={hi})", lo = -(*rank as i64).max(1), hi = (*rank as i64).max(1) - 1)]
    DimOutOfRange {
        op: &'static str,
        dim: i64,
        rank: usize,
    },

    /// An index is out of range for the dimension it indexes.
    #[error("{op}: index {index} is out of bounds for dimension {dim} with size {size}")]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        dim: usize,
        size: usize,
    },

    /// An index key that does not fit the tensor (too many indices, a mask of the wrong shape).
    #[error("{op}: {msg}")]
    Index { op: &'static str, msg: String },

    /// An argument of the wrong kind (a complex number, a float where an integer is needed).
    #[error("{op}: {msg}")]
    Type { op: &'static str, msg: String },

    /// The allocation for a tensor could not be made.
    #[error("{op}: cannot allocate a tensor of shape {shape} and dtype {dtype} ({bytes} bytes): out of memory")]
    OutOfMemory {
        op: &'static str,
        shape: Shape,
        dtype: DType,
        bytes: u128,
    },

    /// An argument is invalid for reasons other than shape/dtype/device.
    #[error("{op}: {msg}")]
    InvalidArgument { op: &'static str, msg: String },

    /// Integer division (or remainder) by zero, which PyTorch refuses.
    #[error("{op}: ZeroDivisionError (integer division by zero)")]
    ZeroDivision { op: &'static str },

    /// An autograd misuse (backward on a non-scalar, twice without retain_graph, ...).
    #[error("{0}")]
    Autograd(String),

    /// The op is not available on this device (e.g. f64 on the GPU).
    #[error("{op}: not supported on device {device}: {msg}")]
    Unsupported {
        op: &'static str,
        device: Device,
        msg: String,
    },

    /// A failure reported by the GPU runtime (adapter missing, device lost, validation error).
    #[error("gpu: {0}")]
    Gpu(String),

    /// Reading or writing a file failed.
    #[error("{op}: {msg}")]
    Io { op: &'static str, msg: String },

    /// A checkpoint file is malformed; it was rejected before anything was allocated from it.
    #[error("checkpoint: {0}")]
    Checkpoint(String),

    /// A gradient check found analytical and numerical derivatives that disagree.
    #[error("gradcheck: {0}")]
    Gradcheck(String),

    /// User code the engine called back (a hook, a custom function's backward) failed; the
    /// payload is that code's own error (the Python binding re-raises the Python exception).
    #[error("{msg}")]
    Callback { msg: String, payload: CallbackError },
}

/// The error value of a failed callback, opaque to the engine.
#[derive(Clone)]
pub struct CallbackError(pub std::sync::Arc<dyn std::any::Any + Send + Sync>);

impl std::fmt::Debug for CallbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallbackError")
    }
}

impl Error {
    /// Shorthand used across the crate for argument errors.
    pub fn invalid(op: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            msg: msg.into(),
        }
    }

    /// Shorthand for a shape mismatch without extra detail.
    pub fn shape_mismatch(op: &'static str, lhs: &Shape, rhs: &Shape) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            detail: String::new(),
        }
    }
}

thread_local! {
    static REPORTED_OP: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with errors that are only found later (the GPU's device-side index checks, reported
/// at the next synchronisation) attributed to `op` instead of the primitive that found them:
/// a bad class label is then `cross_entropy`'s error, not `gather`'s.
pub(crate) fn reporting_as<R>(op: &'static str, f: impl FnOnce() -> R) -> R {
    let prev = REPORTED_OP.with(|c| c.replace(Some(op)));
    let r = f();
    REPORTED_OP.with(|c| c.set(prev));
    r
}

/// The op deferred errors are attributed to on this thread, if a caller set one.
#[cfg_attr(not(feature = "gpu"), allow(dead_code))]
pub(crate) fn reported_op() -> Option<&'static str> {
    REPORTED_OP.with(|c| c.get())
}
