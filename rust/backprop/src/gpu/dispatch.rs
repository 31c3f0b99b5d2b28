//! Recording and submitting work.
//!
//! Kernels are not run one by one: each dispatch is recorded into the current command encoder
//! and the encoder is submitted in batches (every `MAX_DISPATCHES` dispatches, when the parameter
//! arena fills up, or when the host needs a result: readback, index checks, `synchronize`).
//! Tensors stay on the device in between; nothing waits for the GPU except a readback.
//!
//! Kernel parameters (shapes, strides, offsets) of every dispatch in a batch are appended to one
//! host-side array of u32 words, each block aligned to the adapter's storage-offset alignment.
//! At submission the array is written to one device buffer with `queue.write_buffer`, which wgpu
//! runs before the batch's commands; each dispatch binds its block by offset. One buffer serves
//! every batch: the write for batch k+1 is ordered after batch k's commands by the queue.
//!
//! Errors: pipelines and bind groups are validated when a dispatch is recorded (in error scopes),
//! so a malformed dispatch fails its own op and is never recorded. What can only fail later (out
//! of memory while executing, a lost device) is returned as `Error::Gpu` by whichever call
//! submits or reads back; the outputs of that batch are then undefined.

use super::context::{join_errors, lock, Context};
use super::pipeline::Kernel;
use super::stats::{self, bump};
use crate::{Error, Result};

/// Dispatches per submission: enough to amortise a submit, few enough that the GPU starts early.
const MAX_DISPATCHES: usize = 128;
/// Bytes of the parameter arena (parameter blocks are tens of words).
const PARAMS_BYTES: u64 = 1 << 20;
pub(crate) const WORKGROUP: u64 = 256;

pub(crate) struct Batch {
    encoder: Option<wgpu::CommandEncoder>,
    params: Vec<u32>,
    params_buf: wgpu::Buffer,
    /// Alignment of a parameter block, in words.
    align_words: usize,
    dispatches: usize,
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
        Ok(Batch { encoder: None, params: Vec::new(), params_buf, align_words, dispatches: 0 })
    }

    fn encoder(&mut self, device: &wgpu::Device) -> &mut wgpu::CommandEncoder {
        self.encoder.get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("backprop batch") }))
    }
}

/// A buffer bound at a binding slot of a kernel (slot 0 is always the parameter block).
pub(crate) type Bind<'a> = (u32, &'a wgpu::Buffer);

impl Context {
    /// Records one dispatch of `k` over `groups` workgroups (spread over x and y so that more
    /// than 65535 groups need no second dispatch).
    pub fn run(&self, op: &'static str, k: &Kernel, params: &[u32], binds: &[Bind<'_>], groups: u64) -> Result<()> {
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
        let pipe = self.pipelines.get(self, k)?;
        let mut batch = lock(&self.batch);
        let words = params.len().max(1);
        let start = batch.params.len().div_ceil(batch.align_words) * batch.align_words;
        if batch.dispatches >= MAX_DISPATCHES || ((start + words) * 4) as u64 > PARAMS_BYTES {
            self.submit_locked(&mut batch, op)?;
        }
        let start = batch.params.len().div_ceil(batch.align_words) * batch.align_words;
        if ((start + words) * 4) as u64 > PARAMS_BYTES {
            return Err(Error::Unsupported { op, device: crate::Device::Gpu, msg: format!("kernel parameters of {words} words do not fit the parameter buffer") });
        }
        batch.params.resize(start, 0);
        batch.params.extend_from_slice(params);
        if params.is_empty() {
            batch.params.push(0);
        }
        let mut entries = Vec::with_capacity(binds.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &batch.params_buf,
                offset: (start * 4) as u64,
                size: wgpu::BufferSize::new((words * 4) as u64),
            }),
        });
        for &(binding, buffer) in binds {
            entries.push(wgpu::BindGroupEntry { binding, resource: buffer.as_entire_binding() });
        }
        // Checked here, in an error scope, rather than at submission: an invalid bind group would
        // invalidate the whole encoder, silently losing every other dispatch of the batch.
        let (bind_group, errs) = self.scoped_raw(|| {
            self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: Some(k.entry), layout: &pipe.layout, entries: &entries })
        });
        if !errs.is_empty() {
            batch.params.truncate(start);
            return Err(Error::Gpu(format!("{op}: binding buffers for shaders/{} entry point '{}': {}", k.shader.file(), k.entry, join_errors(&errs))));
        }
        bump(&stats::BIND_GROUPS);
        {
            let enc = batch.encoder(&self.device);
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(k.entry), timestamp_writes: None });
            pass.set_pipeline(&pipe.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x as u32, y as u32, 1);
        }
        bump(&stats::COMPUTE_PASSES);
        bump(&stats::DISPATCHES);
        batch.dispatches += 1;
        Ok(())
    }

    /// Records a buffer-to-buffer copy (in order with the dispatches).
    pub fn copy_buffer(&self, src: &wgpu::Buffer, src_offset: u64, dst: &wgpu::Buffer, dst_offset: u64, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut batch = lock(&self.batch);
        batch.encoder(&self.device).copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
    }

    /// Writes host data into a buffer. Runs at the start of the next submission, so the buffer
    /// must not be read by commands already recorded (fresh pool buffers never are, see buffer.rs).
    pub fn upload(&self, dst: &wgpu::Buffer, data: &[u8]) {
        if !data.is_empty() {
            bump(&stats::UPLOADS);
            self.queue.write_buffer(dst, 0, data);
        }
    }

    /// Submits everything recorded so far.
    pub fn submit(&self, op: &str) -> Result<()> {
        let mut batch = lock(&self.batch);
        self.submit_locked(&mut batch, op)
    }

    fn submit_locked(&self, batch: &mut Batch, op: &str) -> Result<()> {
        let encoder = batch.encoder.take();
        let params = std::mem::take(&mut batch.params);
        batch.dispatches = 0;
        let (_, errs) = self.scoped_raw(|| {
            if !params.is_empty() {
                self.queue.write_buffer(&batch.params_buf, 0, bytemuck::cast_slice(&params));
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
            let earlier = self.check(op).err().map(|e| format!(" (earlier: {e})")).unwrap_or_default();
            return Err(Error::Gpu(format!("{op}: {}{earlier}", join_errors(&errs))));
        }
        self.check(op)
    }

    /// Submits pending work and blocks until the device has finished it.
    pub fn synchronize(&self, op: &str) -> Result<()> {
        self.submit(op)?;
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("{op}: waiting for the device failed: {e}")))?;
        self.check(op)
    }

    /// Reads `bytes` bytes at `offset` of `src` back to the host (submits and waits).
    pub fn read(&self, op: &str, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        if bytes == 0 {
            return Ok(Vec::new());
        }
        bump(&stats::READBACKS);
        let (bucket, staging) = self.pool.staging(self, bytes)?;
        self.copy_buffer(src, offset, &staging, 0, bytes);
        self.submit(op)?;
        let slice = staging.slice(0..bytes);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            // the receiver only goes away if this function already returned an error
            let _ = tx.send(r);
        });
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("{op}: waiting for the device failed: {e}")))?;
        let mapped = rx
            .recv()
            .map_err(|_| Error::Gpu(format!("{op}: the readback mapping was never completed")))?
            .map_err(|e| Error::Gpu(format!("{op}: mapping the readback buffer failed: {e}")));
        if let Err(e) = mapped {
            // the device may have reported why
            self.check(op)?;
            return Err(e);
        }
        let data = slice.get_mapped_range().map_err(|e| Error::Gpu(format!("{op}: reading the readback buffer failed: {e:?}")))?.to_vec();
        staging.unmap();
        self.pool.return_staging(bucket, staging);
        self.check(op)?;
        Ok(data)
    }
}

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
        let crate::storage::Storage::Gpu(g) = &*storage else { panic!("not a GPU storage") };
        let k = Kernel::new(Shader::Elementwise, "unary", &[("OP", 0), ("DT", 0)]);
        // binding 1 (the input) is left out
        match ctx.run("test", &k, &[4, 1, 4, 0, 1], &[(4, g.buf.raw())], 1) {
            Err(Error::Gpu(msg)) => assert!(msg.starts_with("test:") && msg.contains("unary"), "{msg}"),
            other => panic!("expected Error::Gpu, got {other:?}"),
        }
        drop(storage);
        ctx.submit("test").unwrap();
        // the work queued before it (filling `t`) and after it is unaffected
        assert_eq!(t.add(&t).unwrap().to_vec::<f32>().unwrap(), vec![2.0; 4]);
    }
}
