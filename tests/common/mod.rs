//! The CPU backend the single-backend tests run on: flex when compiled in (the default
//! feature; Burn's fast CPU backend), else ndarray.

#[cfg(feature = "flex")]
#[allow(unused_imports)] // each test file uses part of it
pub use burn_influence::flex::{Backend, NAME, device};
#[cfg(all(not(feature = "flex"), feature = "ndarray"))]
#[allow(unused_imports)]
pub use burn_influence::ndarray::{Backend, NAME, device};
