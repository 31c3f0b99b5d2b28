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

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
