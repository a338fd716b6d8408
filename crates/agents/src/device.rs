//! Where the networks run: Burn's pure-Rust `flex` CPU backend (the default) or `wgpu`.
//!
//! ```
//! use ratchet_agents::{DeviceKind, device};
//! let cpu = device(DeviceKind::Cpu).unwrap();
//! assert!("wgpu".parse::<DeviceKind>().is_ok());
//! ```

use std::str::FromStr;
use std::sync::OnceLock;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::AgentError;

/// The compute device an agent trains on, chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// Burn's `flex` backend: pure Rust, CPU, always available, bitwise reproducible.
    #[default]
    Cpu,
    /// Burn's `wgpu` backend on the default adapter (Vulkan, Metal, DX12 or GL).
    Wgpu,
}

impl DeviceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Wgpu => "wgpu",
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceKind {
    type Err = AgentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(DeviceKind::Cpu),
            "wgpu" | "gpu" => Ok(DeviceKind::Wgpu),
            other => Err(AgentError::Config(format!(
                "unknown device '{other}': use 'cpu' or 'wgpu'"
            ))),
        }
    }
}

/// The Burn device for `kind` (without autodiff; trainers add it).
///
/// `wgpu` is initialised once per process and the result cached: asking again returns the same
/// device, or the same error. When no adapter exists this returns [`AgentError::Device`] with a
/// message saying what to install, instead of panicking on the first tensor.
pub fn device(kind: DeviceKind) -> Result<Device, AgentError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Wgpu => {
            static WGPU: OnceLock<Result<Device, String>> = OnceLock::new();
            WGPU.get_or_init(|| {
                Device::wgpu_options().init().map_err(|e| {
                    format!(
                        "no usable wgpu adapter ({e}); install a GPU driver or a software Vulkan \
                         driver (Debian/Ubuntu: apt-get install mesa-vulkan-drivers), or use --device cpu"
                    )
                })
            })
            .clone()
            .map_err(AgentError::Device)
        }
    }
}
