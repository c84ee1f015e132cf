//! burn-influence on Burn's [CUDA](burn_cuda) backend: NVIDIA GPUs, `f32`. Needs the NVIDIA
//! driver and CUDA runtime at run time (the crate builds without them).
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-ndarray`, `influence-flex` or `influence-wgpu`.

pub use burn_cuda::CudaDevice;
pub use influence_core::*;

/// The inner (non-autodiff) backend: `Cuda` (`f32`, with kernel fusion).
pub type InnerBackend = burn_cuda::Cuda;

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
