//! # burn-influence
//!
//! Internal Influence (Leino et al. 2018, arXiv:1802.03788; Captum's
//! `captum.attr.InternalInfluence`) for [Burn](https://burn.dev) models, on every Burn
//! backend. This facade re-exports [`influence_core`] and, behind one Cargo feature each,
//! the backends:
//!
//! | feature | module | backend |
//! |---|---|---|
//! | `flex` (default) | [`flex`] | Burn's flex, CPU, SIMD (native and wasm) |
//! | `ndarray` | [`ndarray`] | Burn's ndarray, CPU |
//! | `wgpu` | [`wgpu`] | Burn's wgpu: Vulkan, Metal, DX12, WebGPU |
//! | `cuda` | [`cuda`] | Burn's CUDA, NVIDIA GPUs |
//! | `remote` | [`remote`] | Burn's remote backend: a server's backend, over WebSocket |
//!
//! and, behind the feature `onnx`, [`onnx`]: ONNX models (PyTorch's `torch.onnx.export`)
//! explained by their PyTorch module names, on any of these backends.

pub use influence_core::*;

/// Burn's ndarray CPU backend (feature `ndarray`).
#[cfg(feature = "ndarray")]
pub mod ndarray {
    pub use influence_ndarray::{Backend, Device, InnerBackend, NAME, device};
}

/// Burn's flex CPU backend (feature `flex`, on by default).
#[cfg(feature = "flex")]
pub mod flex {
    pub use influence_flex::{Backend, Device, InnerBackend, NAME, device};
}

/// Burn's wgpu backend (feature `wgpu`): Vulkan, Metal, DX12, WebGPU.
#[cfg(feature = "wgpu")]
pub mod wgpu {
    pub use influence_wgpu::{Backend, Device, InnerBackend, NAME, WgpuDevice, device};
}

/// Burn's remote backend (feature `remote`): the kernels run on a server
/// (`influence-server`, or any `burn::server`), on another process or machine.
#[cfg(feature = "remote")]
pub mod remote {
    pub use influence_remote::{Backend, Device, InnerBackend, NAME, device, remote_device};
}

/// Burn's CUDA backend (feature `cuda`): NVIDIA GPUs.
#[cfg(feature = "cuda")]
pub mod cuda {
    pub use influence_cuda::{Backend, CudaDevice, Device, InnerBackend, NAME, device};
}

/// ONNX models explained by their PyTorch module names (feature `onnx`): [`OnnxModel`]
/// evaluates an `.onnx` file's graph with Burn operations on any backend and implements
/// [`LayerProbe`]. See `docs/onnx.md`.
///
/// [`OnnxModel`]: influence_onnx::OnnxModel
#[cfg(feature = "onnx")]
pub mod onnx {
    pub use influence_onnx::*;
}

/// The guide to `LayerProbe` (`docs/layer-probe.md`), whose worked example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../docs/layer-probe.md")]
pub struct LayerProbeGuide;

/// The quadrature guide (`docs/quadrature.md`), whose example runs as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../docs/quadrature.md")]
pub struct QuadratureGuide;
