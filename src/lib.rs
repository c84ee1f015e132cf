//! # burn-influence
//!
//! Internal Influence (Leino et al. 2018, arXiv:1802.03788; Captum's
//! `captum.attr.InternalInfluence`) for [Burn](https://burn.dev) models, on every Burn
//! backend. This facade re-exports [`influence_core`] and, behind one Cargo feature each,
//! the backends:
//!
//! | feature | module | backend |
//! |---|---|---|
//! | `ndarray` (default) | [`ndarray`] | Burn's ndarray, CPU |
//! | `flex` | [`flex`] | Burn's flex, CPU (native and wasm) |

pub use influence_core::*;

/// Burn's ndarray CPU backend (feature `ndarray`, on by default).
#[cfg(feature = "ndarray")]
pub mod ndarray {
    pub use influence_ndarray::{Backend, Device, InnerBackend, NAME, device};
}

/// Burn's flex CPU backend (feature `flex`).
#[cfg(feature = "flex")]
pub mod flex {
    pub use influence_flex::{Backend, Device, InnerBackend, NAME, device};
}
