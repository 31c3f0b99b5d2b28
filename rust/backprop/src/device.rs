//! Where a tensor's storage lives.

use crate::{Error, Result};
use std::fmt;

/// The device a tensor lives on. `Gpu` is the single wgpu device the engine opens lazily
/// (Vulkan, Metal, DX12 or GL, whichever the adapter offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Gpu,
}

impl Device {
    /// Parses `"cpu"`, `"gpu"`, `"gpu:0"`; `"cuda"`/`"cuda:0"` are accepted as aliases for the GPU so
    /// that PyTorch habits (`.to("cuda")`) work on any vendor's card.
    pub fn parse(s: &str) -> Result<Device> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "gpu" | "gpu:0" | "cuda" | "cuda:0" | "wgpu" => Ok(Device::Gpu),
            other => Err(Error::invalid(
                "device",
                format!("unknown device '{other}'; expected 'cpu' or 'gpu'"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
        }
    }
}

/// Whether the default device (what factories use when no device is given) is the GPU.
/// Process-wide, as PyTorch's `torch.set_default_device`.
static DEFAULT_IS_GPU: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The device factories use when none is given (`Device::Cpu` unless changed).
pub fn default_device() -> Device {
    if DEFAULT_IS_GPU.load(std::sync::atomic::Ordering::Relaxed) {
        Device::Gpu
    } else {
        Device::Cpu
    }
}

/// Sets the default device (PyTorch's `set_default_device`). Tensors already made stay put.
///
/// ```
/// # use backprop::{default_device, set_default_device, Device};
/// set_default_device(Device::Cpu);
/// assert_eq!(default_device(), Device::Cpu);
/// ```
pub fn set_default_device(device: Device) {
    DEFAULT_IS_GPU.store(device == Device::Gpu, std::sync::atomic::Ordering::Relaxed);
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
