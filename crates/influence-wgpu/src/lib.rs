//! burn-influence on Burn's [wgpu](burn_wgpu) backend: GPUs through Vulkan (Linux,
//! Windows, Android), Metal (macOS, iOS), DX12 (Windows) and WebGPU (browsers), `f32`.
//! Without a GPU it runs on a software Vulkan driver (Mesa's lavapipe) with
//! [`WgpuDevice::Cpu`].
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-ndarray`, `influence-flex` or `influence-cuda`.

pub use burn_wgpu::WgpuDevice;
pub use influence_core::*;

/// The inner (non-autodiff) backend: `Wgpu` (`f32`; kernel fusion off, see
/// the project's `docs/backends.md`), with [`CubeclFixes`]: Burn 0.21's input gradient of a
/// convolution whose kernel is shorter than its stride (a ResNet's `1×1`, stride-2 shortcut)
/// is all zeros on wgpu, and is computed through a forward convolution instead.
pub type InnerBackend = Decorator<burn_wgpu::Wgpu, CubeclFixes>;

/// The autodiff backend the attribution runs on.
pub type Backend = burn_autodiff::Autodiff<InnerBackend>;

/// The device type.
pub type Device = WgpuDevice;

/// The backend's name, as the examples' `--backend` flag spells it.
pub const NAME: &str = "wgpu";

/// The default device: wgpu's pick ([`WgpuDevice::DefaultDevice`], a discrete GPU when there is
/// one). Set `INFLUENCE_WGPU_DEVICE=cpu` to use the CPU adapter (a software driver such as
/// lavapipe), as CI does; `integrated` and `discrete` pick the first GPU of that kind.
pub fn device() -> Device {
    match std::env::var("INFLUENCE_WGPU_DEVICE").as_deref() {
        Ok("cpu") => WgpuDevice::Cpu,
        Ok("integrated") => WgpuDevice::IntegratedGpu(0),
        Ok("discrete") => WgpuDevice::DiscreteGpu(0),
        _ => WgpuDevice::DefaultDevice,
    }
}
