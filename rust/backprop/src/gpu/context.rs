//! The one wgpu device the engine uses: chosen once, lazily, on first use of the GPU.
//!
//! Selection: every adapter of the enabled backends (`WGPU_BACKEND`, e.g. `vulkan`, `metal`,
//! `dx12`, `gl`; default all) that can run compute shaders, ranked by device type for the power
//! preference (`WGPU_POWER_PREF=high|low|none`, default high: discrete before integrated before
//! CPU) and then by backend (native APIs before GL). `BACKPROP_ADAPTER=<substring>` picks the first
//! adapter whose name contains it (case-insensitive), e.g. `BACKPROP_ADAPTER=llvmpipe` for Mesa's
//! lavapipe. The outcome, success or failure, is kept: a machine without an adapter answers every
//! later GPU call with the same `Error::Gpu` at no cost.
//!
//! wgpu reports validation errors, out-of-memory and device loss through callbacks; by default an
//! uncaptured error panics. Here they are recorded and turned into `Error::Gpu` by `check`, which
//! every submission runs, so nothing the GPU reports becomes a panic or an abort.

use super::buffer::BufferPool;
use super::dispatch::{Batch, Check, STATUS_BYTES, STATUS_CLEAR};
use super::pipeline::PipelineCache;
use crate::{Error, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Errors older than this many are dropped: the first ones say what went wrong.
const MAX_KEPT_ERRORS: usize = 8;

pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub pool: BufferPool,
    pub pipelines: PipelineCache,
    /// The driver's pipeline cache, kept on disk between runs (Vulkan).
    pub disk: Option<super::disk_cache::DiskCache>,
    pub batch: Mutex<Batch>,
    /// Device-side error flag of the bounds checks (see `dispatch::Context::new_check`).
    pub status: wgpu::Buffer,
    pub checks: Mutex<Vec<Check>>,
    /// Bad indices found by another thread's readback, kept for the thread whose op it was.
    pub pending: Mutex<std::collections::HashMap<std::thread::ThreadId, Error>>,
    errors: Arc<Mutex<Vec<String>>>,
    lost: Arc<AtomicBool>,
}

static CONTEXT: OnceLock<Result<Context>> = OnceLock::new();

/// The shared context, created on first call.
pub(crate) fn context() -> Result<&'static Context> {
    match CONTEXT.get_or_init(init) {
        Ok(c) => Ok(c),
        Err(e) => Err(e.clone()),
    }
}

/// The context if it was already created (for drops, which must never start a device).
pub(crate) fn existing() -> Option<&'static Context> {
    CONTEXT.get().and_then(|r| r.as_ref().ok())
}

/// A poisoned lock only means another thread panicked while holding it; the data it guards
/// (queues of buffers and commands) is still well-formed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn init() -> Result<Context> {
    // wgpu and the drivers under it may panic on broken installations; that must be an error.
    std::panic::catch_unwind(init_inner).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Err(Error::Gpu(format!("initialising wgpu panicked: {msg}")))
    })
}

fn type_rank(t: wgpu::DeviceType, power: wgpu::PowerPreference) -> u8 {
    use wgpu::DeviceType::*;
    match (power, t) {
        (wgpu::PowerPreference::LowPower, IntegratedGpu) => 0,
        (wgpu::PowerPreference::LowPower, DiscreteGpu) => 1,
        (wgpu::PowerPreference::HighPerformance, DiscreteGpu) => 0,
        (wgpu::PowerPreference::HighPerformance, IntegratedGpu) => 1,
        (wgpu::PowerPreference::None, DiscreteGpu | IntegratedGpu) => 0,
        (_, VirtualGpu) => 2,
        (_, Other) => 3,
        (_, Cpu) => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    }
}

fn describe(info: &wgpu::AdapterInfo) -> String {
    format!(
        "'{}' ({:?}, {:?})",
        info.name, info.backend, info.device_type
    )
}

fn init_inner() -> Result<Context> {
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends,
        ..wgpu::InstanceDescriptor::new_without_display_handle_from_env()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let seen: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
    let compute: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    let wanted = std::env::var("BACKPROP_ADAPTER")
        .ok()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty());
    let power = wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance);
    let adapter = match &wanted {
        Some(w) => compute.into_iter().find(|a| a.get_info().name.to_lowercase().contains(w.as_str())).ok_or_else(|| {
            Error::Gpu(format!(
                "no GPU adapter with compute shaders whose name contains '{w}' (BACKPROP_ADAPTER); backends {backends:?} offer: [{}]",
                seen.join(", ")
            ))
        })?,
        None => {
            let mut compute = compute;
            compute.sort_by_key(|a| {
                let i = a.get_info();
                (type_rank(i.device_type, power), backend_rank(i.backend))
            });
            compute.into_iter().next().ok_or_else(|| {
                Error::Gpu(format!(
                    "no GPU adapter with compute shaders found (backends {backends:?}, set by WGPU_BACKEND; adapters seen: [{}]). \
                     On a machine without a GPU, Mesa's lavapipe is a Vulkan device on the CPU: apt-get install mesa-vulkan-drivers libvulkan1",
                    seen.join(", ")
                ))
            })?
        }
    };
    let info = adapter.get_info();
    // Ask for everything the adapter allows: WebGPU's defaults (128 MiB bindings) would cap
    // tensors far below what the hardware can hold.
    let limits = adapter.limits();
    let disk_cache = super::disk_cache::wanted(&adapter);
    let desc = wgpu::DeviceDescriptor {
        label: Some("backprop"),
        required_features: if disk_cache {
            wgpu::Features::PIPELINE_CACHE
        } else {
            wgpu::Features::empty()
        },
        required_limits: limits.clone(),
        memory_hints: wgpu::MemoryHints::Performance,
        ..Default::default()
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
        Error::Gpu(format!(
            "requesting a device from adapter {} failed: {e}",
            describe(&info)
        ))
    })?;

    let errors: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let lost = Arc::new(AtomicBool::new(false));
    let sink = errors.clone();
    device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
        push_error(&sink, e.to_string())
    }));
    let sink = errors.clone();
    let lost_flag = lost.clone();
    device.set_device_lost_callback(move |reason, msg| {
        lost_flag.store(true, Ordering::SeqCst);
        push_error(&sink, format!("device lost ({reason:?}): {msg}"));
    });
    let batch = Batch::new(&device, &limits)?;
    let status = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bounds-check status"),
        size: STATUS_BYTES,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    queue.write_buffer(&status, 0, bytemuck::cast_slice(&STATUS_CLEAR));
    Ok(Context {
        status,
        checks: Mutex::new(Vec::new()),
        pending: Mutex::new(std::collections::HashMap::new()),
        pool: BufferPool::new(&limits),
        pipelines: PipelineCache::default(),
        disk: if disk_cache {
            super::disk_cache::DiskCache::open(&device, &info)
        } else {
            None
        },
        batch: Mutex::new(batch),
        device,
        queue,
        info,
        limits,
        errors,
        lost,
    })
}

fn push_error(sink: &Mutex<Vec<String>>, msg: String) {
    let mut v = lock(sink);
    if v.len() < MAX_KEPT_ERRORS {
        v.push(msg);
    }
}

impl Context {
    /// Turns errors wgpu reported since the last check (and a lost device) into `Error::Gpu`.
    pub fn check(&self, op: &str) -> Result<()> {
        let msgs: Vec<String> = std::mem::take(&mut *lock(&self.errors));
        if self.lost.load(Ordering::SeqCst) {
            return Err(Error::Gpu(format!(
                "{op}: the GPU device {} was lost: {}",
                describe(&self.info),
                msgs.join("; ")
            )));
        }
        if msgs.is_empty() {
            Ok(())
        } else {
            Err(Error::Gpu(format!("{op}: {}", msgs.join("; "))))
        }
    }

    /// Fails fast on a lost device before recording more work.
    pub fn ensure_alive(&self, op: &str) -> Result<()> {
        if self.lost.load(Ordering::SeqCst) {
            return self.check(op);
        }
        Ok(())
    }

    /// Runs `f` inside error scopes and returns what they caught (validation, out of memory,
    /// internal). Scopes are per thread, so errors are attributed to the call that made them.
    pub fn scoped_raw<T>(&self, f: impl FnOnce() -> T) -> (T, Vec<wgpu::Error>) {
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let errs = [validation.pop(), oom.pop(), internal.pop()]
            .into_iter()
            .filter_map(pollster::block_on)
            .collect();
        (out, errs)
    }

    /// `scoped_raw` with the errors as one `Error::Gpu` naming `what`.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let (out, errs) = self.scoped_raw(f);
        if errs.is_empty() {
            Ok(out)
        } else {
            Err(Error::Gpu(format!("{what}: {}", join_errors(&errs))))
        }
    }
}

pub(crate) fn join_errors(errs: &[wgpu::Error]) -> String {
    errs.iter()
        .map(|e| match e {
            wgpu::Error::OutOfMemory { .. } => "out of GPU memory".to_string(),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the adapter is, for `backprop_rs.gpu.adapter_info()`.
#[derive(Debug, Clone)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub vendor: u32,
    pub device: u32,
    /// The limits the device was opened with (name, value).
    pub limits: Vec<(&'static str, u64)>,
}

pub(crate) fn adapter_info(ctx: &Context) -> AdapterInfo {
    let l = &ctx.limits;
    let limits = vec![
        ("max_buffer_size", l.max_buffer_size),
        (
            "max_storage_buffer_binding_size",
            l.max_storage_buffer_binding_size,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            l.max_storage_buffers_per_shader_stage as u64,
        ),
        (
            "max_compute_workgroups_per_dimension",
            l.max_compute_workgroups_per_dimension as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            l.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_compute_workgroup_size_x",
            l.max_compute_workgroup_size_x as u64,
        ),
        (
            "max_compute_workgroup_size_y",
            l.max_compute_workgroup_size_y as u64,
        ),
        (
            "max_compute_workgroup_size_z",
            l.max_compute_workgroup_size_z as u64,
        ),
        (
            "max_compute_workgroup_storage_size",
            l.max_compute_workgroup_storage_size as u64,
        ),
        (
            "min_storage_buffer_offset_alignment",
            l.min_storage_buffer_offset_alignment as u64,
        ),
        ("max_bind_groups", l.max_bind_groups as u64),
        (
            "max_bindings_per_bind_group",
            l.max_bindings_per_bind_group as u64,
        ),
    ];
    AdapterInfo {
        name: ctx.info.name.clone(),
        backend: format!("{:?}", ctx.info.backend).to_lowercase(),
        device_type: format!("{:?}", ctx.info.device_type),
        driver: ctx.info.driver.clone(),
        driver_info: ctx.info.driver_info.clone(),
        vendor: ctx.info.vendor,
        device: ctx.info.device,
        limits,
    }
}
