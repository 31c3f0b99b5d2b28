//! Device memory: a pool of storage buffers in size buckets, so that a training loop whose shapes
//! repeat allocates nothing on the device after its first step.
//!
//! Buckets are 2^k * {4, 5, 6, 7} / 4 bytes (at least 256): at most 25% of a buffer is slack.
//! A buffer whose tensor is dropped goes to a *pending* list, not straight back to the free lists:
//! commands recorded but not yet submitted may still read it, and `queue.write_buffer` (used by
//! uploads) runs at the start of the next submission, before those commands. Reusing it for an
//! upload before the submission would let the upload overwrite data the earlier commands read.
//! `recycle_pending` moves the pending buffers to the free lists right after each submission.
//! Free lists are ordered by buffer identity, not by the order of release (see `recycle_pending`).
//!
//! Every tensor buffer is bound whole, so a bucket never exceeds the adapter's max storage
//! binding size; a tensor that needs more is refused with a typed error naming the limit.

use super::context::{context, existing, join_errors, lock, Context};
use super::stats;
use crate::{DType, Device, Error, Result, Shape};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Bytes of a device word: float32 and bool take one per element, int64 two.
pub(crate) const WORD: u64 = 4;

/// Device words per element of a dtype (int64 is two words, low word first).
pub(crate) fn words_per(dtype: DType) -> usize {
    if dtype == DType::I64 {
        2
    } else {
        1
    }
}
const MIN_BUCKET: u64 = 256;

/// How many device buffers were ever created (the allocation-free-after-warm-up tests read it;
/// also `counters().buffers_created`).
pub fn buffers_created() -> u64 {
    stats::BUFFERS.load(Ordering::Relaxed)
}

#[derive(Default)]
struct Lists {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    pending: Vec<(u64, wgpu::Buffer)>,
    staging: HashMap<u64, Vec<wgpu::Buffer>>,
}

pub(crate) struct BufferPool {
    lists: Mutex<Lists>,
    /// The largest buffer a tensor may have (bytes).
    max_bytes: u64,
}

/// A pooled storage buffer, returned to the pool when dropped.
pub(crate) struct GpuBuffer {
    buffer: wgpu::Buffer,
    bucket: u64,
}

impl GpuBuffer {
    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// Bytes of device memory held by live tensors' buffers (bucket sizes), and the high-water mark.
static IN_USE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PEAK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// GPU memory, like `torch.cuda.memory_stats`: bytes of live tensors' buffers (`allocated`,
/// counted in pool buckets, and its `peak`), and bytes of free buffers the pool keeps
/// (`cached`). All zero before the device is first used.
pub fn memory_stats() -> (u64, u64, u64) {
    let cached = existing().map_or(0, |ctx| {
        let l = lock(&ctx.pool.lists);
        l.free.iter().map(|(b, v)| b * v.len() as u64).sum::<u64>()
            + l.pending.iter().map(|(b, _)| *b).sum::<u64>()
    });
    (
        IN_USE.load(Ordering::Relaxed),
        PEAK.load(Ordering::Relaxed),
        cached,
    )
}

/// Restarts the peak of `memory_stats` at the current use.
pub fn reset_peak_memory() {
    PEAK.store(IN_USE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Counts a buffer handed to a tensor (its drop uncounts it).
fn track(bucket: u64) {
    let now = IN_USE.fetch_add(bucket, Ordering::Relaxed) + bucket;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        IN_USE.fetch_sub(self.bucket, Ordering::Relaxed);
        // A GpuBuffer exists only once the context does; `existing` never initialises a device.
        if let Some(ctx) = existing() {
            lock(&ctx.pool.lists)
                .pending
                .push((self.bucket, self.buffer.clone()));
        }
    }
}

fn bucket_of(bytes: u64) -> u64 {
    if bytes <= MIN_BUCKET {
        return MIN_BUCKET;
    }
    // top two bits after the leading one select the quarter step
    let p = 63 - bytes.leading_zeros() as u64; // 2^p <= bytes < 2^(p+1)
    let quarter = 1u64 << (p - 2);
    bytes.div_ceil(quarter) * quarter
}

impl BufferPool {
    pub fn new(limits: &wgpu::Limits) -> Self {
        BufferPool {
            lists: Mutex::new(Lists::default()),
            max_bytes: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
        }
    }

    /// After a submission: buffers dropped while it was being recorded may be reused.
    pub fn recycle_pending(&self) {
        let mut l = lock(&self.lists);
        let pending = std::mem::take(&mut l.pending);
        for (b, buf) in pending {
            // Kept sorted (by wgpu's identity order), so which buffer an allocation gets depends
            // only on *which* buffers are free, not on the order they were freed in. A training
            // step then hands every tensor the same buffer as the step before, and the kernels'
            // bind groups (cached per buffer set, see dispatch.rs) are all reused; in LIFO order
            // the assignment drifts from step to step and most bind groups are new.
            let list = l.free.entry(b).or_default();
            let at = list.binary_search(&buf).unwrap_or_else(|i| i);
            list.insert(at, buf);
        }
    }

    /// Drops every cached buffer (free and staging); live tensors are untouched.
    pub fn clear(&self) {
        let mut l = lock(&self.lists);
        l.free.clear();
        l.staging.clear();
    }

    fn take_free(&self, bucket: u64) -> Option<wgpu::Buffer> {
        lock(&self.lists)
            .free
            .get_mut(&bucket)
            .and_then(|v| v.pop())
    }

    /// A new buffer; on failure, whether it was out of memory and what wgpu said.
    fn create(
        &self,
        ctx: &Context,
        bucket: u64,
        usage: wgpu::BufferUsages,
    ) -> std::result::Result<wgpu::Buffer, (bool, String)> {
        let desc = wgpu::BufferDescriptor {
            label: None,
            size: bucket,
            usage,
            mapped_at_creation: false,
        };
        let (mut buf, mut errs) = ctx.scoped_raw(|| ctx.device.create_buffer(&desc));
        if !errs.is_empty() {
            // Out of memory (or a driver refusal): give back what the pool (and the bind groups
            // holding its buffers) caches and retry once.
            ctx.release_cached();
            (buf, errs) = ctx.scoped_raw(|| ctx.device.create_buffer(&desc));
        }
        if errs.is_empty() {
            stats::bump(&stats::BUFFERS);
            Ok(buf)
        } else {
            Err((
                errs.iter()
                    .any(|e| matches!(e, wgpu::Error::OutOfMemory { .. })),
                join_errors(&errs),
            ))
        }
    }

    /// Staging buffer for readback (MAP_READ | COPY_DST), at least `bytes` long.
    pub fn staging(&self, ctx: &Context, bytes: u64) -> Result<(u64, wgpu::Buffer)> {
        let bucket = bucket_of(bytes);
        if let Some(b) = lock(&self.lists)
            .staging
            .get_mut(&bucket)
            .and_then(|v| v.pop())
        {
            return Ok((bucket, b));
        }
        let b = self
            .create(
                ctx,
                bucket,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            )
            .map_err(|(_, msg)| {
                Error::Gpu(format!(
                    "creating a readback buffer of {bucket} bytes: {msg}"
                ))
            })?;
        Ok((bucket, b))
    }

    pub fn return_staging(&self, bucket: u64, buf: wgpu::Buffer) {
        lock(&self.lists)
            .staging
            .entry(bucket)
            .or_default()
            .push(buf);
    }
}

/// A device buffer for a tensor of `shape` and `dtype` made by `op`.
pub(crate) fn alloc(op: &'static str, shape: &Shape, dtype: DType) -> Result<GpuBuffer> {
    let ctx = context()?;
    let n = shape
        .checked_numel()
        .and_then(|n| n.checked_mul(words_per(dtype)))
        .ok_or_else(|| too_big(op, shape, dtype, u128::MAX, ctx.pool.max_bytes))?;
    alloc_words(op, n, shape, dtype)
}

/// Like `alloc` for scratch space of `n` words (reduction partials, scatter claims); `shape` and
/// `dtype` only name what the space is for in errors.
pub(crate) fn alloc_words(
    op: &'static str,
    n: usize,
    shape: &Shape,
    dtype: DType,
) -> Result<GpuBuffer> {
    let ctx = context()?;
    let bytes = (n as u128) * WORD as u128;
    if bytes > ctx.pool.max_bytes as u128 {
        return Err(too_big(op, shape, dtype, bytes, ctx.pool.max_bytes));
    }
    let bytes = bytes as u64;
    // Never round past the binding limit: the whole buffer is bound.
    let bucket = bucket_of(bytes).min(ctx.pool.max_bytes.max(MIN_BUCKET));
    if let Some(buffer) = ctx.pool.take_free(bucket) {
        track(bucket);
        return Ok(GpuBuffer { buffer, bucket });
    }
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let buffer = ctx.pool.create(ctx, bucket, usage).map_err(|(oom, msg)| {
        if oom {
            Error::OutOfMemory {
                op,
                shape: shape.clone(),
                dtype,
                bytes: bytes as u128,
            }
        } else {
            Error::Gpu(format!("{op}: creating a buffer of {bucket} bytes: {msg}"))
        }
    })?;
    track(bucket);
    Ok(GpuBuffer { buffer, bucket })
}

fn too_big(op: &'static str, shape: &Shape, dtype: DType, bytes: u128, limit: u64) -> Error {
    Error::Unsupported {
        op,
        device: Device::Gpu,
        msg: format!(
            "a {dtype} tensor of shape {shape} needs {bytes} bytes on the device, more than the adapter's largest storage buffer binding ({limit} bytes)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::bucket_of;

    #[test]
    fn buckets_waste_at_most_a_quarter() {
        for bytes in [
            1u64,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let b = bucket_of(bytes);
            assert!(b >= bytes, "{bytes} -> {b}");
            assert!(
                b <= 256 || (b as f64) <= bytes as f64 * 1.25 + 1.0,
                "{bytes} -> {b}"
            );
            assert_eq!(b % 4, 0);
        }
        // the same size always lands in the same bucket (that is what makes reuse work)
        assert_eq!(bucket_of(1000), bucket_of(1000));
    }
}
