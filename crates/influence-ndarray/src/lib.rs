//! burn-influence on Burn's [ndarray](burn_ndarray) backend: pure Rust, CPU, multi-threaded,
//! `f32`. Works everywhere Rust does; the reference CPU backend.
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-flex`, `influence-wgpu` or `influence-cuda`.

use std::borrow::Cow;

use burn_backend::tensor::FloatTensor;
use burn_backend::{Backend as BurnBackend, DType, TensorMetadata};
use burn_ndarray::NdArrayTensor;
use core::any::Any;
use influence_cpu::conv::{self, Geometry};
use influence_cpu::pool::{self, PoolGeometry};

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
        // `B` is ndarray here (the policy is only used on it); anything else goes back.
        let (Some(x), Some(weight)) = (as_ndarray::<B>(&args.x), as_ndarray::<B>(&args.weight))
        else {
            return Err(args);
        };
        let bias = match &args.bias {
            Some(b) => match as_ndarray::<B>(b) {
                Some(b) => Some(b),
                None => return Err(args),
            },
            None => None,
        };
        let o = &args.options;
        let Some(g) = Geometry::new(&x.shape(), &weight.shape(), o.stride, o.padding, o.dilation)
        else {
            return Err(args);
        };
        if o.groups != 1 || bias.is_some_and(|b| b.shape().num_elements() != g.c_out) {
            return Err(args);
        }
        let (Some(xs), Some(ws)) = (f32s(x), f32s(weight)) else {
            return Err(args);
        };
        let bs = match bias.map(f32s) {
            Some(None) => return Err(args),
            Some(Some(b)) => Some(b),
            None => None,
        };
        let [oh, ow] = g.out_hw().expect("checked by Geometry::new");
        let y = conv::conv2d(&xs, &ws, bs.as_deref(), &g);
        Ok(from_ndarray::<B>(tensor(&[g.batch, g.c_out, oh, ow], y)))
    }

    fn conv2d_x_backward<B: BurnBackend>(
        args: Conv2dBackwardArgs<B>,
    ) -> Result<FloatTensor<B>, Conv2dBackwardArgs<B>> {
        let (Some(x), Some(weight), Some(dy)) = (
            as_ndarray::<B>(&args.x),
            as_ndarray::<B>(&args.weight),
            as_ndarray::<B>(&args.output_grad),
        ) else {
            return Err(args);
        };
        let o = &args.options;
        let Some(g) = Geometry::new(&x.shape(), &weight.shape(), o.stride, o.padding, o.dilation)
        else {
            return Err(args);
        };
        let [oh, ow] = g.out_hw().expect("checked by Geometry::new");
        if o.groups != 1 || dy.shape().dims::<4>() != [g.batch, g.c_out, oh, ow] {
            return Err(args);
        }
        let (Some(ws), Some(dys)) = (f32s(weight), f32s(dy)) else {
            return Err(args);
        };
        let dx = conv::conv2d_x_backward(&dys, &ws, &g);
        Ok(from_ndarray::<B>(tensor(
            &[g.batch, g.c_in, g.height, g.width],
            dx,
        )))
    }

    fn max_pool2d<B: BurnBackend>(
        args: MaxPool2dArgs<B>,
    ) -> Result<FloatTensor<B>, MaxPool2dArgs<B>> {
        let Some(x) = as_ndarray::<B>(&args.x) else {
            return Err(args);
        };
        let Some(g) = PoolGeometry::new(
            &x.shape(),
            args.kernel_size,
            args.stride,
            args.padding,
            args.dilation,
            args.ceil_mode,
        ) else {
            return Err(args);
        };
        let Some(xs) = f32s(x) else {
            return Err(args);
        };
        let [oh, ow] = g.out_hw().expect("checked by PoolGeometry::new");
        let y = pool::max_pool2d(&xs, &g);
        Ok(from_ndarray::<B>(tensor(&[g.batch, g.channels, oh, ow], y)))
    }
}

/// The primitive as ndarray's tensor (`None` for another backend's).
fn as_ndarray<B: BurnBackend>(t: &FloatTensor<B>) -> Option<&NdArrayTensor> {
    (t as &dyn Any).downcast_ref::<NdArrayTensor>()
}

/// ndarray's tensor as the primitive of `B` (ndarray, checked by the caller).
fn from_ndarray<B: BurnBackend>(t: NdArrayTensor) -> FloatTensor<B> {
    let mut slot = Some(t);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<FloatTensor<B>>>()
        .and_then(Option::take)
        .expect("the policy runs on ndarray")
}

/// The values of an `f32` tensor in row-major order: borrowed when its memory already is,
/// else copied.
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

/// A contiguous `f32` ndarray tensor of `shape`.
fn tensor(shape: &[usize], values: Vec<f32>) -> NdArrayTensor {
    let array = ndarray::ArcArray::from_shape_vec(ndarray::IxDyn(shape), values)
        .expect("as many values as the shape holds");
    NdArrayTensor::from(array)
}
