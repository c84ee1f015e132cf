//! burn-influence on Burn's [CUDA](burn_cuda) backend: NVIDIA GPUs, `f32`. Needs the NVIDIA
//! driver and CUDA runtime at run time (the crate builds without them).
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-ndarray`, `influence-flex` or `influence-wgpu`.

pub use burn_cuda::CudaDevice;
pub use influence_core::*;

/// The inner (non-autodiff) backend: `Cuda` (`f32`, with kernel fusion), with
/// [`CubeclFixes`]: Burn 0.21's input gradient of a convolution whose kernel is shorter than
/// its stride (a ResNet's `1×1`, stride-2 shortcut) is all zeros on burn-cubecl's backends,
/// and is computed through a forward convolution instead.
pub type InnerBackend = Decorator<burn_cuda::Cuda, CubeclFixes>;

/// The autodiff backend the attribution runs on.
pub type Backend = burn_autodiff::Autodiff<InnerBackend>;

/// The device type.
pub type Device = CudaDevice;

/// The backend's name, as the examples' `--backend` flag spells it.
pub const NAME: &str = "cuda";

/// The default device: GPU 0.
pub fn device() -> Device {
    CudaDevice::new(0)
}
