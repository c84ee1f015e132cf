//! CPU kernels of burn-influence on plain `f32` slices, shared by its flex and ndarray
//! backends (`influence-flex`, `influence-ndarray`), which hand their tensors' memory to them
//! through a backend [`Policy`](https://docs.rs/influence-core) hook:
//!
//! - [`conv::conv2d`]: a 2-D convolution, NCHW, `groups` 1, any stride, padding and
//!   dilation: im2col straight from the NCHW rows and one `gemm` product per piece of the
//!   output;
//! - [`conv::conv2d_x_backward`]: its input gradient, what autodiff's convolution backward
//!   needs (`gemm` with the transposed kernel, then col2im);
//! - [`pool::max_pool2d`]: a 2-D max pool, forward only (no indices), NCHW;
//! - [`winograd`]: Winograd's F(2×2, 3×3) for 3×3 stride-1 convolutions (forward and input
//!   gradient), which [`conv::conv2d`] and [`conv::conv2d_x_backward`] use only with the
//!   `winograd` feature (off by default: faster, less precise; see `docs/performance.md`).
//!
//! [`policy`] holds the convolution and max-pool hooks of both backends' policies, written
//! once over [`policy::CpuTensors`] (what a backend says about its tensor type).
//!
//! [`geometry::Geometry`] (a convolution's shape, also `conv::Geometry`) and the tasks'
//! shared output pointer and scratch buffers (`parallel.rs`) sit apart from both convolution
//! files, so that `conv` dispatches to `winograd` and neither imports the other's types.
//!
//! All run their pieces in parallel on rayon's pool (the calling thread's pool when called
//! inside one). See `docs/performance.md` for what they are worth against Burn's own kernels.

#![warn(missing_docs)]

pub mod conv;
pub mod geometry;
mod parallel;
pub mod policy;
pub mod pool;
pub mod winograd;
