//! Counters of the host-side work the backend does: submissions, dispatches, compute passes,
//! bind groups and buffers created, uploads and readbacks. They cost one relaxed atomic add each
//! and exist so that tests (and anyone tuning a training loop) can check by *counting* that a
//! step does what it should after warm-up: timings on a software Vulkan device such as lavapipe
//! say nothing about a GPU, counts do.
//!
//! ```no_run
//! if backprop::gpu::is_available() {
//!     let before = backprop::gpu::counters();
//!     // ... one training step ...
//!     let step = backprop::gpu::counters().since(&before);
//!     println!("{} dispatches, {} submits", step.dispatches, step.submits);
//! }
//! ```

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) static SUBMITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static DISPATCHES: AtomicU64 = AtomicU64::new(0);
pub(crate) static COMPUTE_PASSES: AtomicU64 = AtomicU64::new(0);
pub(crate) static BIND_GROUPS: AtomicU64 = AtomicU64::new(0);
pub(crate) static BUFFERS: AtomicU64 = AtomicU64::new(0);
pub(crate) static UPLOADS: AtomicU64 = AtomicU64::new(0);
pub(crate) static READBACKS: AtomicU64 = AtomicU64::new(0);

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Totals since the process started (never reset: take differences with [`Counters::since`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// `queue.submit` calls (each batch of recorded work, readbacks and `synchronize` included).
    pub submits: u64,
    /// Compute dispatches recorded (one per kernel launch).
    pub dispatches: u64,
    /// Compute passes begun (a pass holds one or more dispatches).
    pub compute_passes: u64,
    /// Bind groups created (a cache hit creates none).
    pub bind_groups_created: u64,
    /// Device buffers created (pool misses; readback staging included).
    pub buffers_created: u64,
    /// Host-to-device tensor uploads (`queue.write_buffer` of tensor data; kernel parameters,
    /// written once per submission, are not counted).
    pub uploads: u64,
    /// Device-to-host readbacks (each waits for the device).
    pub readbacks: u64,
}

impl Counters {
    /// The work done between `earlier` and `self`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        Counters {
            submits: self.submits.saturating_sub(earlier.submits),
            dispatches: self.dispatches.saturating_sub(earlier.dispatches),
            compute_passes: self.compute_passes.saturating_sub(earlier.compute_passes),
            bind_groups_created: self
                .bind_groups_created
                .saturating_sub(earlier.bind_groups_created),
            buffers_created: self.buffers_created.saturating_sub(earlier.buffers_created),
            uploads: self.uploads.saturating_sub(earlier.uploads),
            readbacks: self.readbacks.saturating_sub(earlier.readbacks),
        }
    }
}

/// The counters now.
pub fn counters() -> Counters {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Counters {
        submits: get(&SUBMITS),
        dispatches: get(&DISPATCHES),
        compute_passes: get(&COMPUTE_PASSES),
        bind_groups_created: get(&BIND_GROUPS),
        buffers_created: get(&BUFFERS),
        uploads: get(&UPLOADS),
        readbacks: get(&READBACKS),
    }
}
