//! burn-influence on Burn's [ndarray](burn_ndarray) backend: pure Rust, CPU, multi-threaded,
//! `f32`. Works everywhere Rust does; the reference CPU backend.
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-flex`, `influence-wgpu` or `influence-cuda`.

use std::borrow::Cow;

use burn_backend::tensor::FloatTensor;
use burn_backend::{Backend as BurnBackend, DType, TensorMetadata};
use burn_ndarray::NdArrayTensor;
use influence_cpu::policy::{self, CpuTensors};

pub use influence_core::*;

/// The inner (non-autodiff) backend: `NdArray<f32>` with this crate's kernels
/// ([`NdArrayKernels`]): exact reciprocals, 2-D convolutions (forward and input gradient)
/// on [`influence_cpu`]'s im2col/`gemm` kernels, and its 2-D max pool.
pub type InnerBackend = Decorator<burn_ndarray::NdArray<f32>, NdArrayKernels>;

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

/// The [`Policy`] of [`InnerBackend`]: ndarray in every operation but these (on `f32`; other
/// dtypes and the cases named go to ndarray):
///
/// - **reciprocals as a true division** ([`ExactRecip`]'s): Burn 0.21's ndarray computes
///   `recip` (and `powi` with exponent −1 or −2) with an approximate SIMD reciprocal, about
///   3e-4 relative error, which autodiff's division backward uses, so softmax and layer-norm
///   gradients would lose three to four digits;
/// - **2-D convolution, forward and input gradient** (`groups` 1) on
///   [`influence_cpu::conv`]: im2col and one `gemm` product per piece of the output, and its
///   transpose with col2im. Burn 0.21's ndarray runs a direct loop of multiply-adds per kernel
///   offset (and its transposed convolution likewise), which made a ResNet-18 at 224×224
///   40–80× slower than on flex (`docs/performance.md`);
/// - **2-D max pool, forward**, where autodiff does not track it (floor mode, padding at most
///   half the window), on [`influence_cpu::pool::max_pool2d`]: the same values.
#[derive(Debug, Clone, Copy, Default)]
pub struct NdArrayKernels;

impl Policy for NdArrayKernels {
    const AD_ENABLED: Option<bool> = None;
    const EXACT_RECIP: bool = true;
    const FLAT_LINEAR: bool = false;
    const NAME: &'static str = "kernels";

    fn conv2d<B: BurnBackend>(args: Conv2dArgs<B>) -> Result<FloatTensor<B>, Conv2dArgs<B>> {
        policy::conv2d::<B, Self>(args)
    }

    fn conv2d_x_backward<B: BurnBackend>(
        args: Conv2dBackwardArgs<B>,
    ) -> Result<FloatTensor<B>, Conv2dBackwardArgs<B>> {
        policy::conv2d_x_backward::<B, Self>(args)
    }

    fn max_pool2d<B: BurnBackend>(
        args: MaxPool2dArgs<B>,
    ) -> Result<FloatTensor<B>, MaxPool2dArgs<B>> {
        policy::max_pool2d::<B, Self>(args)
    }
}

/// ndarray's tensors for the shared hooks of [`influence_cpu::policy`].
impl CpuTensors for NdArrayKernels {
    type Tensor = NdArrayTensor;
    // ndarray's own 1×1 convolution is a loop of multiply-adds too.
    const ONE_BY_ONE: bool = true;

    fn dims(t: &NdArrayTensor) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn f32s(t: &NdArrayTensor) -> Option<Cow<'_, [f32]>> {
        if t.dtype() != DType::F32 {
            return None;
        }
        let NdArrayTensor::F32(storage) = t else {
            return None;
        };
        let view = storage.view();
        Some(match view.to_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(view.iter().copied().collect()),
        })
    }

    fn from_f32s(shape: &[usize], values: Vec<f32>) -> NdArrayTensor {
        let array = ndarray::ArcArray::from_shape_vec(ndarray::IxDyn(shape), values)
            .expect("as many values as the shape holds");
        NdArrayTensor::from(array)
    }
}
