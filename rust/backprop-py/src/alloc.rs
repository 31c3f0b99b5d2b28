//! The extension's global allocator: mimalloc for small blocks, the system allocator for large ones.
//!
//! Every op allocates a few small objects (the tensor, its shape and layout, the graph node, the
//! backward's frames) and frees them soon after; with glibc's malloc that was ~20% of the per-op
//! time (`perf` of the 4-op graph bench row: 7.1 -> 6.1 us with mimalloc). Large blocks (tensor
//! data) stay with the system allocator on purpose: mimalloc maps memory with `MAP_NORESERVE`, so
//! an absurd request (`bp.zeros(2**40)`) would "succeed" and the process would be killed when
//! the pages are touched, where glibc refuses it and the user gets a `MemoryError`.
//!
//! A block's size decides its allocator, and `dealloc`/`realloc` receive the same size back, so
//! every block is freed by the allocator that made it. Only Rust allocations go through here:
//! NumPy and Python keep their own, and memory lent across (zero-copy NumPy views) is freed by
//! the side that allocated it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, Ordering};

/// Blocks of at least this many bytes go to the system allocator.
const LARGE: usize = 256 << 10;

pub struct SplitAlloc;

static SMALL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// mimalloc's option setter, from the C library the `mimalloc` crate links in. The option numbers
// are positions in `mi_option_e` of the vendored v3 header (libmimalloc-sys 0.1.49, pinned by
// Cargo.lock; `mimalloc_options_are_the_ones_meant` checks them).
extern "C" {
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
}
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
const MI_OPTION_ALLOW_THP: std::ffi::c_int = 43;

static CONFIGURED: AtomicBool = AtomicBool::new(false);

/// At the engine's first small allocation: commit arena memory on demand and keep its small-object
/// pages off transparent huge pages. With mimalloc's defaults (eager commit, THP) the MLP
/// training process's peak RSS rose from 46 to 62 MB; with these (set once mimalloc is already
/// initialised, so its first arena keeps the defaults), 54 MB, for the same speed.
#[cold]
fn configure() {
    CONFIGURED.store(true, Ordering::Relaxed);
    // SAFETY: plain setters of process-wide integers; valid option numbers (see above).
    unsafe {
        mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        mi_option_set(MI_OPTION_ALLOW_THP, 0);
    }
}

#[inline]
fn small() -> &'static mimalloc::MiMalloc {
    if !CONFIGURED.load(Ordering::Relaxed) {
        configure();
    }
    &SMALL
}

// SAFETY: every method forwards to one of two valid allocators, chosen by the layout's size,
// which the caller passes back unchanged on dealloc and realloc (GlobalAlloc's contract).
unsafe impl GlobalAlloc for SplitAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc(layout)
        } else {
            small().alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() >= LARGE {
            System.alloc_zeroed(layout)
        } else {
            small().alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= LARGE {
            System.dealloc(ptr, layout)
        } else {
            SMALL.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (old_large, new_large) = (layout.size() >= LARGE, new_size >= LARGE);
        if old_large == new_large {
            return if old_large {
                System.realloc(ptr, layout, new_size)
            } else {
                SMALL.realloc(ptr, layout, new_size)
            };
        }
        // crossing the threshold: move the block to the other allocator
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mimalloc_options_are_the_ones_meant() {
        let _ = Box::new(1u8); // the first allocation configures mimalloc
                               // SAFETY: getters of process-wide integers.
        let (eager, thp) = unsafe {
            (
                mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT),
                mi_option_get(MI_OPTION_ALLOW_THP),
            )
        };
        assert_eq!((eager, thp), (0, 0));
    }

    #[test]
    fn blocks_survive_growing_and_shrinking_across_the_threshold() {
        let mut v: Vec<u8> = (0..100u8).collect();
        for target in [LARGE - 1, LARGE, 3 * LARGE, 10, LARGE + 7] {
            v.resize(target.max(100), 0);
            v.shrink_to_fit();
            assert_eq!(v[..100], (0..100u8).collect::<Vec<_>>()[..]);
        }
        // an absurd request fails instead of being reserved lazily
        let huge = Layout::from_size_align(1 << 46, 64).unwrap();
        // SAFETY: a valid non-zero layout; a non-null result is freed with the same layout.
        let p = unsafe { SplitAlloc.alloc_zeroed(huge) };
        if !p.is_null() {
            unsafe { SplitAlloc.dealloc(p, huge) };
        }
        assert!(p.is_null(), "64 TiB zeroed should not be granted");
    }
}
