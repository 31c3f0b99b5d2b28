//! A helper thread that spins between jobs, for splitting mid-size kernels in two.
//!
//! Rayon's workers go to sleep soon after their last job; inside a training step the next
//! mid-size GEMM comes a few tens of microseconds later, and waking a sleeping worker (a futex
//! round trip, ~10-20 us on the 2-vCPU VM) cost more than the second core gave back, so such
//! products ran on one thread (see `matmul.rs`). OpenMP runtimes avoid this by spinning for a
//! while after a parallel region (`KMP_BLOCKTIME`); this is that idea for one helper: it spins
//! (yielding to other runnable threads) for `SPIN` after its last job, then parks. [`join`]
//! hands the helper one closure and runs the other itself; if the helper is taken (another
//! thread is in a `join`), both run on the caller, so results never depend on who ran what.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper keeps spinning after a job before it parks.
const SPIN: Duration = Duration::from_millis(2);

const IDLE: u8 = 0;
const READY: u8 = 1;
const DONE: u8 = 2;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Helper {
    state: AtomicU8,
    job: UnsafeCell<Option<Job>>,
    /// The payload of a panic in the last job, re-raised on the caller's thread (as if the job
    /// had run there; kernels do not panic, this keeps a bug's message if one does).
    panicked: Mutex<Option<Box<dyn std::any::Any + Send>>>,
    sleeping: AtomicBool,
    /// Held by the thread whose job the helper runs (one `join` at a time).
    taken: AtomicBool,
    /// The process the helper thread lives in: a child made by `fork` (a DataLoader worker)
    /// inherits this state but not the thread, so it must not hand it work.
    pid: u32,
    thread: Mutex<Option<Thread>>,
}

// SAFETY: `job` is written only by the `taken` holder before `state` becomes READY (Release)
// and read only by the helper after it sees READY (Acquire); `state` orders every access.
unsafe impl Sync for Helper {}

fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        if super::parallel::threads() < 2 {
            return None;
        }
        let h: &'static Helper = Box::leak(Box::new(Helper {
            state: AtomicU8::new(IDLE),
            job: UnsafeCell::new(None),
            panicked: Mutex::new(None),
            sleeping: AtomicBool::new(false),
            taken: AtomicBool::new(false),
            pid: std::process::id(),
            thread: Mutex::new(None),
        }));
        let t = std::thread::Builder::new()
            .name("backprop-spin".into())
            .spawn(move || run(h))
            .ok()?;
        *h.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.thread().clone());
        Some(h)
    })
}

fn run(h: &'static Helper) {
    loop {
        let mut since = Instant::now();
        let mut spins = 0u32;
        while h.state.load(Ordering::Acquire) != READY {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 256 == 0 {
                // let the caller's other threads (rayon's workers) have the core
                std::thread::yield_now();
                if since.elapsed() > SPIN {
                    h.sleeping.store(true, Ordering::SeqCst);
                    if h.state.load(Ordering::SeqCst) != READY {
                        std::thread::park();
                    }
                    h.sleeping.store(false, Ordering::SeqCst);
                    since = Instant::now();
                }
            }
        }
        // SAFETY: READY was seen with Acquire: the job was written before it and nobody else
        // touches it until DONE.
        let job = unsafe { (*h.job.get()).take() };
        if let Some(job) = job {
            if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
                *h.panicked.lock().unwrap_or_else(|e| e.into_inner()) = Some(payload);
            }
        }
        h.state.store(DONE, Ordering::Release);
    }
}

/// Runs `a` on this thread and `b` on the spinning helper, returning when both are done; both
/// run here, one after the other, when there is no helper or it is busy.
pub fn join<A: FnOnce() + Send, B: FnOnce() + Send>(a: A, b: B) {
    let Some(h) = helper().filter(|h| h.pid == std::process::id()) else {
        a();
        b();
        return;
    };
    if h.taken.swap(true, Ordering::Acquire) {
        a();
        b();
        return;
    }
    let job: Box<dyn FnOnce() + Send + '_> = Box::new(b);
    // SAFETY: the helper runs the job before this function returns (it waits for DONE below,
    // also when `a` panics: see `Wait`), so nothing the job borrows outlives its use.
    let job: Job = unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + '_>, Job>(job) };
    // SAFETY: `taken` is ours and the state is IDLE: the helper does not touch `job` now.
    unsafe { *h.job.get() = Some(job) };
    h.state.store(READY, Ordering::SeqCst);
    if h.sleeping.load(Ordering::SeqCst) {
        if let Some(t) = h.thread.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            t.unpark();
        }
    }
    /// Waits for the helper on the way out, whether `a` returned or panicked, and takes a panic
    /// of the job before the helper is released to anyone else.
    struct Wait<'p>(
        &'static Helper,
        &'p mut Option<Box<dyn std::any::Any + Send>>,
    );
    impl Drop for Wait<'_> {
        fn drop(&mut self) {
            while self.0.state.load(Ordering::Acquire) != DONE {
                std::hint::spin_loop();
            }
            *self.1 = self
                .0
                .panicked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            self.0.state.store(IDLE, Ordering::Release);
            self.0.taken.store(false, Ordering::Release);
        }
    }
    let mut payload = None;
    let wait = Wait(h, &mut payload);
    a();
    drop(wait);
    if let Some(p) = payload {
        std::panic::resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn join_runs_both_halves_from_many_threads() {
        let total = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for i in 0..2000 {
                        let (mut x, mut y) = (0usize, 0usize);
                        super::join(|| x = i, || y = 2 * i);
                        assert_eq!((x, y), (i, 2 * i));
                        total.fetch_add(x + y, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(total.into_inner(), 4 * 3 * (1999 * 2000 / 2));
    }
}
