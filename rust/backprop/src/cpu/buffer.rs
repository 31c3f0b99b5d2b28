//! CPU memory: either a `Vec` the engine owns or memory owned by someone else (a NumPy array),
//! kept alive by an opaque owner handle. The second case is how `from_numpy` shares memory while
//! the core crate stays free of pyo3.

use crate::{DType, Element, Error, Result, Shape};
use std::any::Any;
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::Mutex;

pub struct Buffer<T> {
    inner: Inner<T>,
}

enum Inner<T> {
    Owned(Vec<T>),
    Foreign {
        ptr: NonNull<T>,
        len: usize,
        // Never read: it exists so that the memory outlives every tensor viewing it.
        _owner: Box<dyn Any + Send + Sync>,
    },
}

// SAFETY: Owned is a Vec; Foreign points at memory whose owner is Send + Sync and which nobody
// frees while `_owner` lives. Access is synchronised by the RwLock around every storage.
unsafe impl<T: Send> Send for Buffer<T> {}
unsafe impl<T: Sync> Sync for Buffer<T> {}

impl<T: Element> Buffer<T> {
    pub fn from_vec(v: Vec<T>) -> Self {
        track_alloc(v.capacity() * std::mem::size_of::<T>());
        Buffer {
            inner: Inner::Owned(v),
        }
    }

    /// Wraps memory owned elsewhere.
    ///
    /// # Safety
    /// `ptr` must be valid for reads and writes of `len` elements of `T`, properly aligned, for as
    /// long as `owner` is alive, and nothing may free or move it in that time.
    pub unsafe fn from_foreign(ptr: *mut T, len: usize, owner: Box<dyn Any + Send + Sync>) -> Self {
        let ptr = NonNull::new(ptr).unwrap_or(NonNull::dangling());
        Buffer {
            inner: Inner::Foreign {
                ptr,
                len,
                _owner: owner,
            },
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match &self.inner {
            Inner::Owned(v) => v,
            // SAFETY: see from_foreign's contract.
            Inner::Foreign { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [T] {
        match &mut self.inner {
            Inner::Owned(v) => v,
            // SAFETY: see from_foreign's contract; &mut self gives exclusive access on our side.
            Inner::Foreign { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Bytes of memory this buffer holds (0 for foreign memory, which is not ours).
    pub fn owned_bytes(&self) -> usize {
        match &self.inner {
            Inner::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Inner::Foreign { .. } => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the memory belongs to someone else (e.g. NumPy).
    pub fn is_foreign(&self) -> bool {
        matches!(self.inner, Inner::Foreign { .. })
    }
}

impl<T> Drop for Buffer<T> {
    fn drop(&mut self) {
        if let Inner::Owned(v) = &mut self.inner {
            let v = std::mem::take(v);
            let bytes = v.capacity() * std::mem::size_of::<T>();
            track_free(bytes);
            if bytes >= POOL_MIN_BYTES {
                let mut v = std::mem::ManuallyDrop::new(v);
                let ptr = v.as_mut_ptr() as *mut u8;
                if !pool_give(ptr, bytes, std::mem::align_of::<T>()) {
                    // SAFETY: rebuilds the Vec we just took apart, to free it normally.
                    drop(unsafe { Vec::from_raw_parts(v.as_mut_ptr(), v.len(), v.capacity()) });
                }
            }
        }
    }
}

// ------------------------------------------------------------------ buffer pool
//
// A training step allocates the same tensor sizes every iteration. Returning freed buffers to
// the allocator and asking again costs page faults and kernel zeroing on every step (glibc maps
// and unmaps large blocks); keeping them in a pool keyed by exact (size, alignment) turns that
// into a lock and a pointer pop. Small buffers are left to malloc, which is already fast for
// them. The pool is bounded (an eighth of the machine's memory, between 64 and 512 MiB) and,
// when full, evicts the buffers freed longest ago: the recent ones are the ones a loop reuses.
// `release_pool` (Python's `bp.empty_cache()`) gives everything back; `memory_stats` says how
// much is in use and how much is cached.

const POOL_MIN_BYTES: usize = 32 * 1024;

struct Pool {
    free: HashMap<(usize, usize), Vec<usize>>,
    /// Every pooled buffer, oldest first: (key, pointer), for eviction.
    order: std::collections::VecDeque<((usize, usize), usize)>,
    bytes: usize,
    limit: usize,
}

static POOL: Mutex<Option<Pool>> = Mutex::new(None);

/// Bytes of CPU tensor memory in use (owned buffers alive), and its high-water mark.
static IN_USE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static PEAK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn track_alloc(bytes: usize) {
    use std::sync::atomic::Ordering::Relaxed;
    let now = IN_USE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(now, Relaxed);
}

fn track_free(bytes: usize) {
    IN_USE.fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
}

/// The pool's bound: an eighth of the physical memory, clamped to [64, 512] MiB.
fn pool_limit() -> usize {
    const MIB: usize = 1 << 20;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions; a failure returns -1, handled below.
        let (pages, page) = unsafe {
            (
                libc::sysconf(libc::_SC_PHYS_PAGES),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if pages > 0 && page > 0 {
            return ((pages as usize).saturating_mul(page as usize) / 8).clamp(64 * MIB, 512 * MIB);
        }
    }
    256 * MIB
}

fn dealloc(ptr: usize, (bytes, align): (usize, usize)) {
    if let Ok(layout) = std::alloc::Layout::from_size_align(bytes, align) {
        // SAFETY: each pooled pointer came from the global allocator with this layout.
        unsafe { std::alloc::dealloc(ptr as *mut u8, layout) };
    }
}

fn pool_take(bytes: usize, align: usize) -> Option<*mut u8> {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = g.as_mut()?;
    let p = pool.free.get_mut(&(bytes, align))?.pop()?;
    pool.bytes -= bytes;
    if let Some(i) = pool.order.iter().rposition(|&(_, q)| q == p) {
        pool.order.remove(i);
    }
    Some(p as *mut u8)
}

fn pool_give(ptr: *mut u8, bytes: usize, align: usize) -> bool {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = g.get_or_insert_with(|| Pool {
        free: HashMap::new(),
        order: std::collections::VecDeque::new(),
        bytes: 0,
        limit: pool_limit(),
    });
    if bytes > pool.limit {
        return false;
    }
    // make room by freeing the buffers that have waited longest
    while pool.bytes + bytes > pool.limit {
        let Some((key, p)) = pool.order.pop_front() else {
            break;
        };
        if let Some(list) = pool.free.get_mut(&key) {
            if let Some(i) = list.iter().position(|&q| q == p) {
                list.swap_remove(i);
                pool.bytes -= key.0;
                dealloc(p, key);
            }
        }
    }
    pool.bytes += bytes;
    pool.free
        .entry((bytes, align))
        .or_default()
        .push(ptr as usize);
    pool.order.push_back(((bytes, align), ptr as usize));
    true
}

/// Frees every pooled buffer (Python's `bp.empty_cache()`); live tensors are untouched.
pub fn release_pool() {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pool) = g.as_mut() {
        for (key, ptrs) in pool.free.drain() {
            for p in ptrs {
                dealloc(p, key);
            }
        }
        pool.order.clear();
        pool.bytes = 0;
    }
}

/// Bytes currently held in the pool.
pub fn pooled_bytes() -> usize {
    POOL.lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map_or(0, |p| p.bytes)
}

/// CPU tensor memory, like `torch.cuda.memory_stats`: bytes held by live tensors (`allocated`,
/// and its `peak` since start or the last `reset_peak`), bytes the pool keeps for reuse
/// (`cached`), and the pool's bound (`cache_limit`). Foreign memory (NumPy arrays viewed by
/// `from_numpy`) is not counted: it is not the engine's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    pub allocated: usize,
    pub peak: usize,
    pub cached: usize,
    pub cache_limit: usize,
}

pub fn memory_stats() -> MemoryStats {
    use std::sync::atomic::Ordering::Relaxed;
    let g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    MemoryStats {
        allocated: IN_USE.load(Relaxed),
        peak: PEAK.load(Relaxed),
        cached: g.as_ref().map_or(0, |p| p.bytes),
        cache_limit: g.as_ref().map_or_else(pool_limit, |p| p.limit),
    }
}

/// Restarts the peak of `memory_stats` at the current use.
pub fn reset_peak_memory() {
    use std::sync::atomic::Ordering::Relaxed;
    PEAK.store(IN_USE.load(Relaxed), Relaxed);
}

/// A pooled buffer of exactly `n` elements, if one is free. Its contents are stale values of
/// a previous tensor: valid for every element type here (any bit pattern is a valid f32, f64,
/// i64 or u8), but meaningless until overwritten.
fn pooled<T: Element>(n: usize) -> Option<Vec<T>> {
    let bytes = n.checked_mul(std::mem::size_of::<T>())?;
    if bytes < POOL_MIN_BYTES {
        return None;
    }
    let p = pool_take(bytes, std::mem::align_of::<T>())?;
    // SAFETY: allocated by the global allocator as `n` elements of a type with T's size and
    // alignment, initialised (stale) data, capacity n.
    Some(unsafe { Vec::from_raw_parts(p as *mut T, n, n) })
}

/// A zero-filled vector, or an error instead of an abort when memory is short.
///
/// `alloc_zeroed` lets the OS hand over already-zeroed pages, so large outputs cost no extra pass.
pub fn try_zeroed<T: Element>(n: usize) -> Option<Vec<T>> {
    if n == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<T>(n).ok()?;
    // SAFETY: layout has non-zero size; every Element type is valid as all-zero bits.
    let ptr = unsafe { std::alloc::alloc_zeroed(layout) } as *mut T;
    if ptr.is_null() {
        return None;
    }
    advise_huge_pages(ptr as *mut u8, layout.size());
    // SAFETY: allocated by the global allocator with exactly this layout, fully initialised.
    Some(unsafe { Vec::from_raw_parts(ptr, n, n) })
}

/// Asks Linux to back large buffers with transparent huge pages (what NumPy does too): a 64 MB
/// output then takes 32 page faults instead of 16384, which is most of the cost of a
/// memory-bound elementwise op on a fresh buffer. A hint only; failures are ignored.
fn advise_huge_pages(ptr: *mut u8, bytes: usize) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        if bytes >= 2 * HUGE {
            let start = (ptr as usize).div_ceil(HUGE) * HUGE;
            let end = (ptr as usize + bytes) / HUGE * HUGE;
            if end > start {
                // SAFETY: the range lies inside an allocation we own; madvise only changes paging policy.
                unsafe {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
                }
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, bytes);
}

/// A vector for an output the caller will overwrite completely: pooled memory with stale
/// contents when available (no zeroing pass), fresh zeroed memory otherwise.
pub fn alloc_for_overwrite<T: Element>(op: &'static str, shape: &Shape) -> Result<Vec<T>> {
    if let Some(n) = shape.checked_numel() {
        if let Some(v) = pooled::<T>(n) {
            return Ok(v);
        }
    }
    alloc(op, shape)
}

/// `try_zeroed` with the engine's out-of-memory error.
pub fn alloc<T: Element>(op: &'static str, shape: &Shape) -> Result<Vec<T>> {
    let oom = || Error::OutOfMemory {
        op,
        shape: shape.clone(),
        dtype: T::DTYPE,
        bytes: shape
            .dims()
            .iter()
            .fold(T::DTYPE.size_in_bytes() as u128, |a, &d| {
                a.saturating_mul(d as u128)
            }),
    };
    let n = shape.checked_numel().ok_or_else(oom)?;
    n.checked_mul(std::mem::size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(oom)?;
    if let Some(mut v) = pooled::<T>(n) {
        // SAFETY: writing zero bytes over initialised memory of an all-zero-is-valid type.
        unsafe { std::ptr::write_bytes(v.as_mut_ptr(), 0, n) };
        return Ok(v);
    }
    try_zeroed(n).ok_or_else(oom)
}

/// Byte size check used before allocating anything for a shape of a dtype.
pub fn checked_bytes(shape: &Shape, dtype: DType) -> Option<usize> {
    shape
        .checked_numel()?
        .checked_mul(dtype.size_in_bytes())
        .filter(|&b| b <= isize::MAX as usize)
}
