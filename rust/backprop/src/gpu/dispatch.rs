//! Recording and submitting work.
//!
//! Kernels are not run one by one: each dispatch is recorded into the current command encoder
//! and the encoder is submitted in batches (every `MAX_DISPATCHES` dispatches, when the parameter
//! arena fills up, or when the host needs a result: readback, index checks, `synchronize`).
//! Tensors stay on the device in between; nothing waits for the GPU except a readback.
//! Consecutive dispatches share one compute pass; a buffer copy or the submission ends it.
//!
//! Kernel parameters (shapes, strides, offsets) of every dispatch in a batch are appended to one
//! host-side array of u32 words, each block aligned to the adapter's storage-offset alignment.
//! At submission the array is written to one device buffer with `queue.write_buffer`, which wgpu
//! runs before the batch's commands; each dispatch binds a window of it at a *dynamic offset*.
//! One buffer serves every batch: the write for batch k+1 is ordered after batch k's commands by
//! the queue.
//!
//! Bind groups: because the parameter block is found by dynamic offset, a bind group depends
//! only on the entry point and the tensor buffers, so it is cached under that key and a training
//! loop, whose pool hands out the same buffers each step, creates none after warm-up (before the
//! cache, each dispatch created one and validated it in three error scopes).
//!
//! Errors: pipelines and bind groups are validated when a dispatch is recorded (in error scopes),
//! so a malformed dispatch fails its own op and is never recorded. What can only fail later (out
//! of memory while executing, a lost device) is returned as `Error::Gpu` by whichever call
//! submits or reads back; the outputs of that batch are then undefined.

use super::context::{join_errors, lock, Context};
use super::pipeline::{Kernel, Shader};
use super::stats::{self, bump};
use crate::{Error, Result};
use std::collections::HashMap;

/// Dispatches per submission: enough to amortise a submit, few enough that the GPU starts early.
const MAX_DISPATCHES: usize = 128;
/// Bytes of the parameter arena (parameter blocks are tens of words).
const PARAMS_BYTES: u64 = 1 << 20;
/// Bytes of the arena a dispatch sees from its (dynamic) offset: the largest parameter block.
/// A block is 2 + r + k (r + 1) words for rank r and k operands, so this allows ranks past 200.
const PARAMS_WINDOW: u64 = 4096;
/// Cached bind groups before the cache starts over. A training loop cycles through a few
/// hundred (its pool buffers repeat step after step); anything larger is not a loop.
const MAX_BIND_GROUPS: usize = 4096;
pub(crate) const WORKGROUP: u64 = 256;

/// What a bind group binds besides the parameter block: the entry point (its layout) and the
/// buffer at each slot. Pool buffers are reused for tensors of the same size, so in a loop the
/// same keys come back every step.
#[derive(PartialEq, Eq, Hash)]
struct BindKey {
    shader: Shader,
    entry: &'static str,
    buffers: Vec<(u32, wgpu::Buffer)>,
}

pub(crate) struct Batch {
    /// The open compute pass all dispatches go into until a copy or the submission ends it.
    /// Declared before `encoder` so that it is dropped (ended) first.
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u32>,
    params_buf: wgpu::Buffer,
    /// Alignment of a parameter block, in words.
    align_words: usize,
    dispatches: usize,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
}

impl Batch {
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits) -> Result<Batch> {
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel parameters"),
            size: PARAMS_BYTES,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let align_words = (limits.min_storage_buffer_offset_alignment as usize / 4).max(1);
        Ok(Batch {
            pass: None,
            encoder: None,
            params: Vec::new(),
            params_buf,
            align_words,
            dispatches: 0,
            bind_groups: HashMap::new(),
        })
    }

    /// The encoder, for commands outside a compute pass (the open pass is ended first).
    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("backprop batch"),
            })
        })
    }

    /// The open compute pass, begun if there is none. One pass holds many dispatches: wgpu
    /// still orders them (each dispatch is its own usage scope, with barriers between them), and
    /// the per-pass work on the host is paid once per run of dispatches instead of per dispatch.
    fn pass(&mut self, device: &wgpu::Device) -> &mut wgpu::ComputePass<'static> {
        let pass = match self.pass.take() {
            Some(p) => p,
            None => {
                bump(&stats::COMPUTE_PASSES);
                let enc = self.encoder(device);
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("backprop kernels"),
                    timestamp_writes: None,
                })
                .forget_lifetime()
            }
        };
        self.pass.insert(pass)
    }

    fn param_start(&self) -> usize {
        self.params.len().div_ceil(self.align_words) * self.align_words
    }
}

/// A buffer bound at a binding slot of a kernel (slot 0 is always the parameter block).
pub(crate) type Bind<'a> = (u32, &'a wgpu::Buffer);

impl Context {
    /// Records one dispatch of `k` over `groups` workgroups (spread over x and y so that more
    /// than 65535 groups need no second dispatch).
    pub fn run(
        &self,
        op: &'static str,
        k: &Kernel,
        params: &[u32],
        binds: &[Bind<'_>],
        groups: u64,
    ) -> Result<()> {
        if groups == 0 {
            return Ok(());
        }
        self.ensure_alive(op)?;
        let max = self.limits.max_compute_workgroups_per_dimension.max(1) as u64;
        let x = groups.min(max);
        let y = groups.div_ceil(x);
        if y > max {
            return Err(Error::Unsupported {
                op,
                device: crate::Device::Gpu,
                msg: format!("{groups} workgroups exceed the adapter's grid of {max} x {max}"),
            });
        }
        let words = params.len().max(1);
        if (words * 4) as u64 > PARAMS_WINDOW {
            return Err(Error::Unsupported { op, device: crate::Device::Gpu, msg: format!("kernel parameters of {words} words exceed the {PARAMS_WINDOW}-byte parameter window") });
        }
        let pipe = self.pipelines.get(self, k)?;
        let mut batch = lock(&self.batch);
        let fits = |b: &Batch| (b.param_start() * 4) as u64 + PARAMS_WINDOW <= PARAMS_BYTES;
        if batch.dispatches >= MAX_DISPATCHES || !fits(&batch) {
            self.submit_locked(&mut batch, op)?;
        }
        let start = batch.param_start();
        batch.params.resize(start, 0);
        batch.params.extend_from_slice(params);
        if params.is_empty() {
            batch.params.push(0);
        }
        let key = BindKey {
            shader: k.shader,
            entry: k.entry,
            buffers: binds.iter().map(|&(b, buf)| (b, buf.clone())).collect(),
        };
        let bind_group = match batch.bind_groups.get(&key) {
            Some(bg) => bg.clone(),
            None => {
                let mut entries = Vec::with_capacity(binds.len() + 1);
                entries.push(wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: &batch.params_buf,
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAMS_WINDOW),
                    }),
                });
                for &(binding, buffer) in binds {
                    entries.push(wgpu::BindGroupEntry {
                        binding,
                        resource: buffer.as_entire_binding(),
                    });
                }
                // Checked here, in an error scope, rather than at submission: an invalid bind
                // group would invalidate the whole encoder, silently losing every other dispatch
                // of the batch. Only new bind groups need the check; cached ones passed it.
                let (bg, errs) = self.scoped_raw(|| {
                    self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some(k.entry),
                        layout: &pipe.layout,
                        entries: &entries,
                    })
                });
                if !errs.is_empty() {
                    batch.params.truncate(start);
                    return Err(Error::Gpu(format!(
                        "{op}: binding buffers for shaders/{} entry point '{}': {}",
                        k.shader.file(),
                        k.entry,
                        join_errors(&errs)
                    )));
                }
                bump(&stats::BIND_GROUPS);
                if batch.bind_groups.len() >= MAX_BIND_GROUPS {
                    batch.bind_groups.clear();
                }
                batch.bind_groups.insert(key, bg.clone());
                bg
            }
        };
        let offset = (start * 4) as u32;
        let pass = batch.pass(&self.device);
        pass.set_pipeline(&pipe.pipeline);
        pass.set_bind_group(0, &bind_group, &[offset]);
        pass.dispatch_workgroups(x as u32, y as u32, 1);
        bump(&stats::DISPATCHES);
        batch.dispatches += 1;
        Ok(())
    }

    /// Drops the cached bind groups (they keep their buffers alive) and the pool's free buffers:
    /// what `empty_cache` and an allocation that ran out of memory give back.
    pub fn release_cached(&self) {
        lock(&self.batch).bind_groups.clear();
        self.pool.clear();
    }

    /// Records a buffer-to-buffer copy (in order with the dispatches).
    pub fn copy_buffer(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    ) {
        if bytes == 0 {
            return;
        }
        let mut batch = lock(&self.batch);
        batch
            .encoder(&self.device)
            .copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    /// Writes host data into a buffer. Runs at the start of the next submission, so the buffer
    /// must not be read by commands already recorded (fresh pool buffers never are, see buffer.rs).
    pub fn upload(&self, dst: &wgpu::Buffer, data: &[u8]) {
        if !data.is_empty() {
            bump(&stats::UPLOADS);
            self.queue.write_buffer(dst, 0, data);
        }
    }

    fn submit_locked(&self, batch: &mut Batch, op: &str) -> Result<()> {
        batch.pass = None; // ends the pass
        let encoder = batch.encoder.take();
        let params = std::mem::take(&mut batch.params);
        batch.dispatches = 0;
        let (_, errs) = self.scoped_raw(|| {
            if !params.is_empty() {
                self.queue
                    .write_buffer(&batch.params_buf, 0, bytemuck::cast_slice(&params));
            }
            if let Some(enc) = encoder {
                bump(&stats::SUBMITS);
                self.queue.submit([enc.finish()]);
            } else if !params.is_empty() {
                bump(&stats::SUBMITS);
                self.queue.submit([]);
            }
        });
        // Buffers dropped while the batch was recorded may be reused from now on.
        self.pool.recycle_pending();
        // keep the arena's allocation for the next batch
        batch.params = params;
        batch.params.clear();
        if !errs.is_empty() {
            // drain anything also reported to the uncaptured handler, it is the same failure
            let earlier = self
                .check(op)
                .err()
                .map(|e| format!(" (earlier: {e})"))
                .unwrap_or_default();
            return Err(Error::Gpu(format!("{op}: {}{earlier}", join_errors(&errs))));
        }
        self.check(op)
    }

    /// Submits pending work and blocks until the device has finished it; reports a bad index
    /// any kernel met since the last synchronisation (see `new_check`).
    pub fn synchronize(&self, op: &str) -> Result<()> {
        self.read(op, &self.status, 0, 0).map(|_| ())
    }

    /// Registers the bounds check of a dispatch about to be recorded and returns its id, which
    /// the kernel writes to the status buffer when it meets an index outside `[0, size)` of `dim`.
    /// The next readback (or `synchronize`) reports the earliest failed check as the error of
    /// the op that made it, like CUDA's device-side asserts: no readback per indexing op.
    pub fn new_check(&self, op: &'static str, dim: usize, size: usize) -> Result<u32> {
        let mut checks = lock(&self.checks);
        if checks.len() >= MAX_CHECKS {
            drop(checks);
            // ids must stay below the status buffer's "no error" value: resolve these first
            self.synchronize(op)?;
            checks = lock(&self.checks);
        }
        checks.push(Check {
            op: crate::error::reported_op().unwrap_or(op),
            dim,
            size,
            thread: std::thread::current().id(),
        });
        Ok((checks.len() - 1) as u32)
    }

    pub fn status_buffer(&self) -> &wgpu::Buffer {
        &self.status
    }

    /// Reads `bytes` bytes at `offset` of `src` back to the host (submits and waits), together
    /// with the status buffer, and turns a recorded bad index into the error of its op.
    pub fn read(&self, op: &str, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        bump(&stats::READBACKS);
        let status_at = bytes.div_ceil(16) * 16;
        let total = status_at + STATUS_BYTES;
        let (bucket, staging) = self.pool.staging(self, total)?;
        let checks = {
            let mut batch = lock(&self.batch);
            let enc = batch.encoder(&self.device);
            if bytes > 0 {
                enc.copy_buffer_to_buffer(src, offset, &staging, 0, bytes);
            }
            enc.copy_buffer_to_buffer(&self.status, 0, &staging, status_at, STATUS_BYTES);
            self.submit_locked(&mut batch, op)?;
            // The checks of the work just submitted; later dispatches start a fresh list, and
            // the status reset below runs after this submission and before theirs.
            let checks = std::mem::take(&mut *lock(&self.checks));
            self.queue
                .write_buffer(&self.status, 0, bytemuck::cast_slice(&STATUS_CLEAR));
            checks
        };
        let slice = staging.slice(0..total);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // the receiver only goes away if this function already returned an error
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("{op}: waiting for the device failed: {e}")))?;
        let mapped = rx
            .recv()
            .map_err(|_| Error::Gpu(format!("{op}: the readback mapping was never completed")))?
            .map_err(|e| Error::Gpu(format!("{op}: mapping the readback buffer failed: {e}")));
        if let Err(e) = mapped {
            // the device may have reported why
            self.check(op)?;
            return Err(e);
        }
        let (data, status) = {
            let view = slice.get_mapped_range().map_err(|e| {
                Error::Gpu(format!("{op}: reading the readback buffer failed: {e:?}"))
            })?;
            let status: Vec<u32> = bytemuck::pod_collect_to_vec(
                &view[status_at as usize..(status_at + STATUS_BYTES) as usize],
            );
            (view[..bytes as usize].to_vec(), status)
        };
        staging.unmap();
        self.pool.return_staging(bucket, staging);
        self.check(op)?;
        let me = std::thread::current().id();
        if status[0] != STATUS_CLEAR[0] {
            let value = ((status[2] as u64) << 32 | status[1] as u64) as i64;
            match checks.get(status[0] as usize) {
                Some(c) => {
                    let e = Error::IndexOutOfRange {
                        op: c.op,
                        index: value,
                        dim: c.dim,
                        size: c.size,
                    };
                    if c.thread == me {
                        return Err(e);
                    }
                    // another thread's op: it gets the error at its next synchronisation
                    lock(&self.pending).entry(c.thread).or_insert(e);
                }
                None => {
                    return Err(Error::Gpu(format!(
                        "{op}: a GPU kernel met an out-of-range index {value} (check {} of an earlier batch)",
                        status[0]
                    )))
                }
            }
        }
        if let Some(e) = lock(&self.pending).remove(&me) {
            return Err(e);
        }
        Ok(data)
    }
}

/// A registered bounds check: what to report if its kernel meets a bad index, and to which
/// thread (each thread's ops report their own errors, whichever thread reads back first).
pub(crate) struct Check {
    pub op: &'static str,
    pub dim: usize,
    pub size: usize,
    pub thread: std::thread::ThreadId,
}

/// The status buffer: [0] id of the earliest failed check (or u32::MAX), [1] [2] the index.
pub(crate) const STATUS_BYTES: u64 = 16;
pub(crate) const STATUS_CLEAR: [u32; 4] = [u32::MAX, 0, 0, 0];
/// Checks recorded before a forced synchronisation (a loop that never reads back).
const MAX_CHECKS: usize = 1 << 20;

/// Workgroups for one thread per element.
pub(crate) fn groups_for(n: usize) -> u64 {
    (n as u64).div_ceil(WORKGROUP)
}

#[cfg(test)]
mod tests {
    use super::super::context::context;
    use super::super::pipeline::{Kernel, Shader};
    use crate::{DType, Device, Error, Tensor};

    /// A malformed dispatch (a binding the kernel needs is missing) must come back as
    /// `Error::Gpu`, not as wgpu's default panic, and the device must stay usable afterwards.
    #[test]
    fn validation_errors_become_gpu_errors() {
        let Ok(ctx) = context() else {
            eprintln!("skipping: no GPU adapter");
            return;
        };
        let t = Tensor::ones([4], DType::F32, Device::Gpu).unwrap();
        let storage = t.storage();
        let crate::storage::Storage::Gpu(g) = &*storage else {
            panic!("not a GPU storage")
        };
        let k = Kernel::new(Shader::Elementwise, "unary", &[("OP", 0), ("DT", 0)]);
        // binding 1 (the input) is left out
        match ctx.run("test", &k, &[4, 1, 4, 0, 1], &[(4, g.buf.raw())], 1) {
            Err(Error::Gpu(msg)) => {
                assert!(msg.starts_with("test:") && msg.contains("unary"), "{msg}")
            }
            other => panic!("expected Error::Gpu, got {other:?}"),
        }
        drop(storage);
        ctx.synchronize("test").unwrap();
        // the work queued before it (filling `t`) and after it is unaffected
        assert_eq!(t.add(&t).unwrap().to_vec::<f32>().unwrap(), vec![2.0; 4]);
    }
}
