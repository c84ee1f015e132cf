//! burn-influence on Burn's [ndarray](burn_ndarray) backend: pure Rust, CPU, multi-threaded,
//! `f32`. Works everywhere Rust does; the reference CPU backend.
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-flex`, `influence-wgpu` or `influence-cuda`.

pub use influence_core::*;

/// The inner (non-autodiff) backend: `NdArray<f32>` with exact reciprocals
/// ([`ExactRecip`]): Burn 0.21's ndarray computes `recip` with an approximate SIMD
/// reciprocal (about 3e-4 relative error), which autodiff's division backward uses, so
/// softmax and layer-norm gradients would lose three to four digits.
pub type InnerBackend = Decorator<burn_ndarray::NdArray<f32>, ExactRecip>;

/// The autodiff backend the attribution runs on.
pub type Backend = burn_autodiff::Autodiff<InnerBackend>;

/// The device type.
pub type Device = burn_ndarray::NdArrayDevice;

/// The backend's name, as the examples' `--backend` flag spells it.
pub const NAME: &str = "ndarray";

/// The default device: the CPU.
pub fn device() -> Device {
    burn_ndarray::NdArrayDevice::Cpu
}
