//! burn-influence on Burn's [flex](burn_flex) backend: Burn's fast, portable pure-Rust CPU
//! backend (SIMD, multi-threaded with rayon), `f32`. It also builds for
//! `wasm32-unknown-unknown`, where it is the CPU backend of a web page.
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-ndarray`, `influence-wgpu` or `influence-cuda`.

pub use influence_core::*;

/// The inner (non-autodiff) backend: `Flex` (`f32`).
pub type InnerBackend = burn_flex::Flex;

/// The autodiff backend the attribution runs on.
pub type Backend = burn_autodiff::Autodiff<InnerBackend>;

/// The device type.
pub type Device = burn_flex::FlexDevice;

/// The backend's name, as the examples' `--backend` flag spells it.
pub const NAME: &str = "flex";

/// The default device: the CPU.
pub fn device() -> Device {
    burn_flex::FlexDevice
}
