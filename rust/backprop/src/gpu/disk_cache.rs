//! Compiled pipelines kept on disk between runs (wgpu's `PipelineCache`, Vulkan only).
//!
//! Compiling the WGSL of a training step's ~30 kernels into device code takes most of a GPU
//! program's start-up (seconds on lavapipe, whose LLVM compiles each pipeline). The driver's
//! own pipeline cache, handed back to it on the next run, lets it skip that. The file is named
//! by `wgpu::util::pipeline_cache_key` (vendor and device; the driver itself rejects data from
//! another driver version, and `fallback: true` then starts an empty cache). It lives in
//! `$BACKPROP_PIPELINE_CACHE` if set (`0` or `off` turns it off), else
//! `$XDG_CACHE_HOME/backprop_rs` or `~/.cache/backprop_rs`. It is written atomically (a
//! temporary file renamed over it) after new pipelines were compiled — at most every few
//! seconds during a run, and on [`save`] (Python calls it at exit).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::context::lock;

/// How long after one save a newly compiled pipeline triggers the next.
const SAVE_EVERY: Duration = Duration::from_secs(3);

pub(crate) struct DiskCache {
    pub cache: wgpu::PipelineCache,
    pub path: PathBuf,
    dirty: AtomicBool,
    last_save: Mutex<Option<Instant>>,
}

/// The directory for cache files, or `None` when turned off or no home is known.
fn directory() -> Option<PathBuf> {
    match std::env::var("BACKPROP_PIPELINE_CACHE") {
        Ok(v) if matches!(v.trim(), "0" | "off" | "false" | "") => return None,
        Ok(v) => return Some(PathBuf::from(v)),
        Err(_) => {}
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("backprop_rs"))
}

/// Whether this adapter can use a disk cache here (the feature to request with the device).
pub(crate) fn wanted(adapter: &wgpu::Adapter) -> bool {
    adapter.features().contains(wgpu::Features::PIPELINE_CACHE)
        && wgpu::util::pipeline_cache_key(&adapter.get_info()).is_some()
        && directory().is_some()
}

impl DiskCache {
    /// Opens (or starts) the cache file for this device; `None` if there is none to use.
    pub(crate) fn open(device: &wgpu::Device, info: &wgpu::AdapterInfo) -> Option<DiskCache> {
        let key = wgpu::util::pipeline_cache_key(info)?;
        let dir = directory()?;
        let path = dir.join(key);
        let data = std::fs::read(&path).ok();
        // SAFETY: the data, if any, is what `get_data` returned for a cache of a device with the
        // same cache key (vendor and device); the driver validates its header (and driver
        // version) itself, and with `fallback: true` data it rejects gives an empty cache.
        let cache = unsafe {
            device.create_pipeline_cache(&wgpu::PipelineCacheDescriptor {
                label: Some("backprop pipeline cache"),
                data: data.as_deref(),
                fallback: true,
            })
        };
        Some(DiskCache {
            cache,
            path,
            dirty: AtomicBool::new(false),
            last_save: Mutex::new(None),
        })
    }

    /// Notes a newly compiled pipeline; saves when the last save is old enough.
    pub(crate) fn compiled(&self) {
        self.dirty.store(true, Ordering::Relaxed);
        let due = lock(&self.last_save).is_none_or(|t| t.elapsed() >= SAVE_EVERY);
        if due {
            self.save();
        }
    }

    /// Writes the cache if pipelines were compiled since the last write. A failure to write
    /// (read-only home, full disk) only costs the next start-up its speed-up, so it is ignored.
    pub(crate) fn save(&self) {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return;
        }
        *lock(&self.last_save) = Some(Instant::now());
        let Some(data) = self.cache.get_data() else {
            return;
        };
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self
            .path
            .with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &data).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
