//! burn-influence on Burn's [flex](burn_flex) backend: Burn's fast, portable pure-Rust CPU
//! backend (SIMD, multi-threaded with rayon), `f32`. It also builds for
//! `wasm32-unknown-unknown`, where it is the CPU backend of a web page.
//!
//! Re-exports everything of [`influence_core`]; switching backend is changing this crate for
//! `influence-ndarray`, `influence-wgpu` or `influence-cuda`.
//!
//! The backend is flex with kernels of this crate's own ([`FlexKernels`]), on `f32`: 2-D
//! convolutions (im2col from NCHW rows and one `gemm` product per piece of the output, 2–3×
//! faster than Burn 0.21's flex on the benchmark models' convolutions; their backward passes
//! are flex's), GELU forward and backward (vectorised `erf` and `exp` instead of scalar
//! `libm` calls), broadcasting and strided `+ − × ÷` and copying reshapes (a strided walk by
//! runs instead of flex's element by element), and matrix products (flex's `gemm` calls,
//! written straight into a fresh buffer). See `docs/performance.md`.

mod elementwise;
mod matmul;
mod strided;

use burn_backend::tensor::FloatTensor;
use burn_backend::{Backend as BurnBackend, Bytes, DType, Shape, TensorMetadata};
use burn_flex::{FlexTensor, Layout};
use core::any::Any;
use influence_cpu::policy::{self, CpuTensors};
use std::borrow::Cow;

pub use influence_core::*;

/// The inner (non-autodiff) backend: Burn's `Flex` (`f32`) with this crate's kernels
/// ([`FlexKernels`]).
pub type InnerBackend = Decorator<burn_flex::Flex, FlexKernels>;

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

/// The [`Policy`] of [`InnerBackend`]: flex in every operation but these, on `f32` (other
/// dtypes, and the cases named, go to flex):
///
/// - **2-D convolution, forward** (`groups` 1; `1×1` kernels at stride 1 without padding,
///   which flex already runs as one product, stay flex's), with
///   [`influence_cpu::conv::conv2d`]: the im2col matrix `[channels_in · kernel_height ·
///   kernel_width, positions]` built straight from the NCHW rows and one `gemm` product per
///   piece of the output (a few small images, or a tile of a large one), the pieces in
///   parallel on rayon's pool. Same values as flex's up to the order of the sums (a few ulp).
/// - **2-D convolution, input gradient** (`groups` 1), what autodiff's convolution backward
///   calls, with [`influence_cpu::conv::conv2d_x_backward`]: one `gemm` product with the
///   transposed kernel per image and col2im, instead of flex's transposed convolution.
/// - **2-D max pool, forward** where autodiff does not track it (below the explained
///   layer; floor mode, padding at most half the window), with
///   [`influence_cpu::pool::max_pool2d`]: plane by plane on rayon's pool, instead of flex's
///   3-D pool with indices element by element (about 8× slower on ResNet's stem pool). The
///   same values (a maximum has no rounding).
/// - **GELU, forward and backward** (contiguous tensors): the exact `x · Φ(x)` and
///   `grad · (Φ(x) + x · φ(x))`, as flex's, with `erf` and `exp` as vectorised polynomials
///   (AVX2 + FMA when the CPU has them) instead of scalar `libm` calls; within
///   3e-7 · (|x| + 1) of float64, and flex's values at the ends (±0, NaN, ±∞).
/// - **`+ − × ÷` with broadcasting or strided operands** (same-shape contiguous operands,
///   which flex runs in place with SIMD, stay flex's), and **reshapes that must copy**: a
///   walk over the output by runs, dimensions merged where every operand allows. Same bits
///   as flex's.
/// - **Matrix products** (`float_matmul`, and `linear` and its input gradient through it,
///   [`Policy::LINEAR_FROM_OPS`]): flex's own `gemm` calls, strategy and thresholds, written
///   into a fresh buffer instead of flex's zero-filled and then realigned one. Same bits as
///   flex's.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlexKernels;

#[allow(clippy::result_large_err)] // tensors handed back to flex, not errors
impl Policy for FlexKernels {
    const AD_ENABLED: Option<bool> = None;
    const EXACT_RECIP: bool = false;
    const FLAT_LINEAR: bool = false;
    const NAME: &'static str = "kernels";
    const LINEAR_FROM_OPS: bool = true;

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

    fn float_binary<B: BurnBackend>(
        op: BinaryOp,
        lhs: FloatTensor<B>,
        rhs: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        on_flex::<B>(lhs, rhs, |l, r| {
            strided_binary(op, l, &r).map_err(|l| (l, r))
        })
    }

    fn float_matmul<B: BurnBackend>(
        lhs: FloatTensor<B>,
        rhs: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        on_flex::<B>(lhs, rhs, |l, r| match matmul::matmul(&l, &r) {
            Some((shape, values)) => Ok(f32_tensor(Shape::from(shape), values)),
            None => Err((l, r)),
        })
    }

    fn float_reshape<B: BurnBackend>(
        tensor: FloatTensor<B>,
        shape: Shape,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, Shape)> {
        if !(&tensor as &dyn Any).is::<FlexTensor>() {
            return Err((tensor, shape));
        }
        let t = cast::<FloatTensor<B>, FlexTensor>(tensor);
        // Only a reshape that must copy (flex's copy walks a strided view element by
        // element); a view that reshapes in place stays flex's.
        if t.dtype() != DType::F32
            || t.layout().num_elements() != shape.num_elements()
            || t.layout().reshape(shape.clone()).is_some()
        {
            return Err((cast(t), shape));
        }
        let dims = t.shape();
        let layout = t.layout();
        match strided::Walk::new(&dims, [layout.strides()], [layout.start_offset()]) {
            Some(walk) => Ok(cast(f32_tensor(
                shape,
                strided::copy(t.storage::<f32>(), &walk),
            ))),
            None => Err((cast(t), shape)),
        }
    }

    fn gelu<B: BurnBackend>(tensor: FloatTensor<B>) -> Result<FloatTensor<B>, FloatTensor<B>> {
        if !(&tensor as &dyn Any).is::<FlexTensor>() {
            return Err(tensor);
        }
        let x = cast::<FloatTensor<B>, FlexTensor>(tensor);
        match f32_values(&x) {
            Some(v) => Ok(cast(f32_tensor(x.shape(), elementwise::gelu(v)))),
            None => Err(cast(x)),
        }
    }

    fn gelu_backward<B: BurnBackend>(
        x: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        on_flex::<B>(x, grad, |x, g| match (f32_values(&x), f32_values(&g)) {
            (Some(xv), Some(gv)) if x.shape() == g.shape() => {
                Ok(f32_tensor(x.shape(), elementwise::gelu_backward(xv, gv)))
            }
            _ => Err((x, g)),
        })
    }
}

/// `f` on two tensors of `B` known to be flex's, or both handed back when `B` is not flex (the
/// policy is only used on flex); `f` hands them back (`Err`) to leave the call to flex.
#[allow(clippy::type_complexity, clippy::result_large_err)]
fn on_flex<B: BurnBackend>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    f: impl FnOnce(FlexTensor, FlexTensor) -> Result<FlexTensor, (FlexTensor, FlexTensor)>,
) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
    if !(&a as &dyn Any).is::<FlexTensor>() {
        return Err((a, b));
    }
    let into_flex = cast::<FloatTensor<B>, FlexTensor>;
    f(into_flex(a), into_flex(b))
        .map(cast)
        .map_err(|(a, b)| (cast(a), cast(b)))
}

/// `lhs op rhs` with this crate's strided kernel when flex would walk an operand element by
/// element: `f32` operands of one rank whose shapes differ (broadcasting) or which are not
/// contiguous. Written over `lhs` when it is the only owner of its buffer, contiguous and of
/// the output's shape (a bias added to a product, say), as flex does; else into a new
/// buffer. `Err(lhs)` leaves the call to flex (same-shape contiguous operands, which flex
/// runs in place with SIMD; other dtypes; shapes that do not broadcast, for flex's error).
fn strided_binary(
    op: BinaryOp,
    lhs: FlexTensor,
    rhs: &FlexTensor,
) -> Result<FlexTensor, FlexTensor> {
    let (ls, rs) = (lhs.shape(), rhs.shape());
    if lhs.dtype() != DType::F32 || rhs.dtype() != DType::F32 || ls.num_dims() != rs.num_dims() {
        return Err(lhs);
    }
    if ls == rs && lhs.is_contiguous() && rhs.is_contiguous() {
        return Err(lhs);
    }
    let mut out = Vec::with_capacity(ls.num_dims());
    for i in 0..ls.num_dims() {
        out.push(match (ls[i], rs[i]) {
            (a, b) if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return Err(lhs),
        });
    }
    // Strides over the output: 0 along the dimensions an operand broadcasts.
    let over = |t: &FlexTensor| -> Vec<isize> {
        let (dims, strides) = (t.shape(), t.layout().strides());
        (0..out.len())
            .map(|i| {
                if dims[i] == 1 && out[i] != 1 {
                    0
                } else {
                    strides[i]
                }
            })
            .collect()
    };
    let (sl, sr) = (over(&lhs), over(rhs));
    let n: usize = out.iter().product();
    let whole = lhs.is_contiguous()
        && lhs.layout().start_offset() == 0
        && lhs.bytes().len() == n * core::mem::size_of::<f32>();
    if whole && ls.as_slice() == out.as_slice() && lhs.is_unique() {
        let Some(walk) = strided::Walk::new(&out, [&sr], [rhs.layout().start_offset()]) else {
            return Err(lhs);
        };
        let mut lhs = lhs;
        strided::binary_in_place(op, lhs.storage_mut::<f32>(), rhs.storage::<f32>(), &walk);
        return Ok(lhs);
    }
    let Some(walk) = strided::Walk::new(
        &out,
        [&sl, &sr],
        [lhs.layout().start_offset(), rhs.layout().start_offset()],
    ) else {
        return Err(lhs);
    };
    let values = strided::binary(op, lhs.storage::<f32>(), rhs.storage::<f32>(), &walk);
    Ok(f32_tensor(Shape::from(out), values))
}

/// The values of a contiguous `f32` tensor, in order; `None` for another dtype or layout.
fn f32_values(t: &FlexTensor) -> Option<&[f32]> {
    t.as_slice::<f32>()
}

/// A contiguous `f32` flex tensor holding `values` (no copy: flex's own `from_data` copies a
/// `Vec<f32>` again to align it).
fn f32_tensor(shape: Shape, values: Vec<f32>) -> FlexTensor {
    debug_assert_eq!(shape.num_elements(), values.len());
    FlexTensor::new(
        Bytes::from_elems(values),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// `t` as `U`, for `T` and `U` the same type (a backend's primitive known to be flex's), by
/// a safe downcast without an allocation: this runs on every hooked operation.
fn cast<T: Any, U: Any>(t: T) -> U {
    match policy::cast::<T, U>(t) {
        Ok(u) => u,
        Err(_) => panic!("checked by the caller: the same type"),
    }
}

/// flex's tensors for the shared hooks of [`influence_cpu::policy`].
impl CpuTensors for FlexKernels {
    type Tensor = FlexTensor;
    // flex runs a 1×1 stride-1 convolution as one product already.
    const ONE_BY_ONE: bool = false;

    fn dims(t: &FlexTensor) -> Vec<usize> {
        t.shape().to_vec()
    }

    fn f32s(t: &FlexTensor) -> Option<Cow<'_, [f32]>> {
        if t.dtype() != DType::F32 {
            return None;
        }
        if let Some(s) = t.as_slice::<f32>() {
            return Some(Cow::Borrowed(s));
        }
        // A strided view: its values in order, copied once.
        let (dims, layout) = (t.shape(), t.layout());
        let walk = strided::Walk::new(&dims, [layout.strides()], [layout.start_offset()])?;
        Some(Cow::Owned(strided::copy(t.storage::<f32>(), &walk)))
    }

    fn from_f32s(shape: &[usize], values: Vec<f32>) -> FlexTensor {
        f32_tensor(Shape::from(shape.to_vec()), values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use influence_cpu::conv::Geometry;
    use influence_cpu::pool::PoolGeometry;

    /// The shared convolution hook on flex tensors (`None`: left to flex).
    fn fast_conv2d(
        x: &FlexTensor,
        weight: &FlexTensor,
        bias: Option<&FlexTensor>,
        options: &burn_backend::ops::ConvOptions<2>,
    ) -> Option<FlexTensor> {
        policy::conv2d_tensors::<FlexKernels>(x, weight, bias, options)
    }

    /// The shared max-pool hook on a flex tensor (`None`: left to flex).
    fn fast_max_pool2d(
        x: &FlexTensor,
        window: [[usize; 2]; 4],
        ceil_mode: bool,
    ) -> Option<FlexTensor> {
        policy::max_pool2d_tensor::<FlexKernels>(x, window, ceil_mode)
    }
    use burn_backend::TensorData;
    use burn_backend::ops::{ConvOptions, ModuleOps};
    use burn_flex::Flex;
    use proptest::prelude::*;

    fn tensor(values: &[f32], shape: [usize; 4]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values.to_vec(), shape))
    }

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Ours against flex's own `conv2d` on the same tensors; `true` when ours ran.
    fn check(g: influence_cpu::conv::Geometry, with_bias: bool, seed: u64) -> bool {
        let xs = [g.batch, g.c_in, g.height, g.width];
        let ws = [g.c_out, g.c_in, g.kernel[0], g.kernel[1]];
        let x = values(xs.iter().product(), seed);
        let w = values(ws.iter().product(), seed + 1);
        let b = values(g.c_out, seed + 2);
        let bias = with_bias.then(|| FlexTensor::from_data(TensorData::new(b.clone(), [g.c_out])));
        let options = ConvOptions::new(g.stride, g.padding, g.dilation, 1);
        let Some(ours) = fast_conv2d(&tensor(&x, xs), &tensor(&w, ws), bias.as_ref(), &options)
        else {
            return false;
        };
        let flex = <Flex as ModuleOps<Flex>>::conv2d(tensor(&x, xs), tensor(&w, ws), bias, options);
        assert_eq!(ours.shape(), flex.shape(), "{g:?}");
        let (ours, flex) = (
            ours.into_data().to_vec::<f32>().unwrap(),
            flex.into_data().to_vec::<f32>().unwrap(),
        );
        let k = (g.c_in * g.kernel[0] * g.kernel[1]) as f32;
        for (i, (a, b)) in ours.iter().zip(&flex).enumerate() {
            assert!(
                (a - b).abs() <= 4e-7 * (k + 1.0),
                "{g:?} at {i}: ours {a}, flex {b}"
            );
        }
        true
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Any stride, padding and dilation, with and without bias, several images per piece.
        #[test]
        fn same_as_flex(
            batch in 1usize..5, c_in in 1usize..5, height in 1usize..12, width in 1usize..12,
            c_out in 1usize..6, kh in 1usize..4, kw in 1usize..4, sy in 1usize..4, sx in 1usize..4,
            py in 0usize..3, px in 0usize..3, dy in 1usize..3, dx in 1usize..3,
            with_bias in any::<bool>(), seed in any::<u32>(),
        ) {
            let g = Geometry {
                batch, c_in, height, width, c_out, kernel: [kh, kw], stride: [sy, sx],
                padding: [py, px], dilation: [dy, dx],
            };
            prop_assume!(g.out_hw().is_some());
            prop_assume!(!(kh == 1 && kw == 1 && sy == 1 && sx == 1 && py == 0 && px == 0));
            prop_assert!(check(g, with_bias, u64::from(seed)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The max pool equals flex's bit for bit, wherever it takes the call; a strided
        /// (permuted) input too.
        #[test]
        fn max_pool_same_as_flex(
            batch in 1usize..3, channels in 1usize..4, height in 1usize..12, width in 1usize..12,
            kh in 1usize..4, kw in 1usize..4, sy in 1usize..4, sx in 1usize..4,
            py in 0usize..2, px in 0usize..2, dy in 1usize..3, dx in 1usize..3,
            permuted in any::<bool>(), seed in any::<u32>(),
        ) {
            let shape = [batch, channels, height, width];
            let v = values(shape.iter().product(), u64::from(seed));
            let x = if permuted {
                tensor(&v, [batch, height, width, channels]).permute(&[0, 3, 1, 2])
            } else {
                tensor(&v, shape)
            };
            let geometry =
                PoolGeometry::new(&shape, [kh, kw], [sy, sx], [py, px], [dy, dx], false);
            let ours = fast_max_pool2d(&x, [[kh, kw], [sy, sx], [py, px], [dy, dx]], false);
            prop_assert_eq!(ours.is_some(), geometry.is_some());
            if let Some(ours) = ours {
                let flex = <Flex as ModuleOps<Flex>>::max_pool2d(
                    x.to_contiguous(), [kh, kw], [sy, sx], [py, px], [dy, dx], false,
                );
                prop_assert_eq!(ours.shape(), flex.shape());
                prop_assert_eq!(
                    ours.into_data().to_vec::<f32>().unwrap(),
                    flex.into_data().to_vec::<f32>().unwrap()
                );
            }
        }
    }

    #[test]
    fn large_images_in_tiles_and_small_ones_grouped() {
        let g = |batch, height, width, stride| Geometry {
            batch,
            c_in: 3,
            height,
            width,
            c_out: 5,
            kernel: [3, 3],
            stride: [stride, stride],
            padding: [1, 1],
            dilation: [1, 1],
        };
        // 70 × 70 = 4,900 positions: two tiles per image, cut inside an output row.
        assert!(check(g(2, 70, 70, 1), true, 7));
        assert!(check(g(1, 139, 67, 2), false, 8));
        // 4 × 4 = 16 positions: sixteen images per piece, and a last short piece.
        assert!(check(g(37, 4, 4, 1), true, 9));
    }

    #[test]
    fn non_contiguous_input_and_declined_calls() {
        let x = values(2 * 3 * 5 * 6, 1);
        let w = values(4 * 3 * 3 * 3, 2);
        let options = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        // [2, 5, 6, 3] permuted to NCHW: a strided view.
        let permuted = tensor(&x, [2, 5, 6, 3]).permute(&[0, 3, 1, 2]);
        let ours = fast_conv2d(&permuted, &tensor(&w, [4, 3, 3, 3]), None, &options).unwrap();
        let flex = <Flex as ModuleOps<Flex>>::conv2d(
            permuted.to_contiguous(),
            tensor(&w, [4, 3, 3, 3]),
            None,
            options.clone(),
        );
        let (ours, flex) = (
            ours.into_data().to_vec::<f32>().unwrap(),
            flex.into_data().to_vec::<f32>().unwrap(),
        );
        assert!(ours.iter().zip(&flex).all(|(a, b)| (a - b).abs() < 1e-5));
        // Grouped convolutions and 1×1 kernels are flex's.
        let grouped = ConvOptions::new([1, 1], [0, 0], [1, 1], 3);
        let w1 = tensor(&values(3 * 9, 3), [3, 1, 3, 3]);
        assert!(fast_conv2d(&tensor(&x, [2, 3, 5, 6]), &w1, None, &grouped).is_none());
        let w11 = tensor(&values(4 * 3, 4), [4, 3, 1, 1]);
        let plain = ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        assert!(fast_conv2d(&tensor(&x, [2, 3, 5, 6]), &w11, None, &plain).is_none());
        // A kernel larger than the padded input: flex's (and its error).
        let big = tensor(&values(4 * 3 * 9 * 9, 5), [4, 3, 9, 9]);
        assert!(fast_conv2d(&tensor(&x, [2, 3, 5, 6]), &big, None, &plain).is_none());
    }

    /// GELU through the backend runs this crate's kernel on contiguous `f32` tensors (the
    /// same bits as the kernel) and flex's on strided ones; both agree with flex's to 1e-6.
    #[test]
    fn gelu_hooks_run_the_kernel_and_agree_with_flex() {
        use burn_backend::ops::ActivationOps;
        let x = values(4 * 300, 11)
            .iter()
            .map(|v| v * 6.0)
            .collect::<Vec<_>>();
        let g = values(4 * 300, 12);
        let t = |v: &[f32]| FlexTensor::from_data(TensorData::new(v.to_vec(), [4, 300]));
        let read = |t: FlexTensor| t.into_data().to_vec::<f32>().unwrap();
        let ours = read(<InnerBackend as ActivationOps<InnerBackend>>::gelu(t(&x)));
        assert_eq!(ours, elementwise::gelu(&x));
        let flex = read(<Flex as ActivationOps<Flex>>::gelu(t(&x)));
        assert!(ours.iter().zip(&flex).all(|(a, b)| (a - b).abs() <= 1e-6));
        let back = read(<InnerBackend as ActivationOps<InnerBackend>>::gelu_backward(t(&x), t(&g)));
        assert_eq!(back, elementwise::gelu_backward(&x, &g));
        let flex_back = read(<Flex as ActivationOps<Flex>>::gelu_backward(t(&x), t(&g)));
        assert!(
            back.iter()
                .zip(&flex_back)
                .all(|(a, b)| (a - b).abs() <= 1e-6)
        );
        // A transposed view is flex's: the same bits as flex on the same view.
        let view = |v: &[f32]| {
            FlexTensor::from_data(TensorData::new(v.to_vec(), [300, 4])).transpose(0, 1)
        };
        assert_eq!(
            read(<InnerBackend as ActivationOps<InnerBackend>>::gelu(view(
                &x
            ))),
            read(<Flex as ActivationOps<Flex>>::gelu(view(&x)))
        );
    }

    /// A random view of `dims`: the values laid out in a permuted order (and `permute`d back),
    /// or a slice of a larger tensor, or plain.
    fn view(dims: &[usize], kind: u8, seed: u64) -> FlexTensor {
        let n: usize = dims.iter().product();
        let rank = dims.len();
        match kind % 3 {
            0 => FlexTensor::from_data(TensorData::new(values(n, seed), dims.to_vec())),
            1 => {
                // Stored reversed, viewed through the reversing permutation.
                let stored: Vec<usize> = dims.iter().rev().copied().collect();
                let axes: Vec<usize> = (0..rank).rev().collect();
                FlexTensor::from_data(TensorData::new(values(n, seed), stored)).permute(&axes)
            }
            _ => {
                // The last `dims[0]` rows of one more along dim 0.
                let mut bigger = dims.to_vec();
                bigger[0] += 1;
                let m: usize = bigger.iter().product();
                FlexTensor::from_data(TensorData::new(values(m, seed), bigger))
                    .narrow(0, 1, dims[0])
            }
        }
    }

    fn flex_binary(op: BinaryOp, l: FlexTensor, r: FlexTensor) -> FlexTensor {
        use burn_backend::ops::FloatTensorOps;
        match op {
            BinaryOp::Add => Flex::float_add(l, r),
            BinaryOp::Sub => Flex::float_sub(l, r),
            BinaryOp::Mul => Flex::float_mul(l, r),
            BinaryOp::Div => Flex::float_div(l, r),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Broadcasting and strided operands: the same bits as flex, through the backend.
        #[test]
        fn binary_ops_same_bits_as_flex(
            dims in proptest::collection::vec(1usize..5, 1..5),
            lmask in any::<u8>(), rmask in any::<u8>(), lkind in any::<u8>(), rkind in any::<u8>(),
            op in 0usize..4, seed in any::<u32>(),
        ) {
            use burn_backend::ops::FloatTensorOps;
            let op = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div][op];
            // Each operand keeps a dimension or broadcasts it (size 1), by its mask's bits.
            let shape = |mask: u8| -> Vec<usize> {
                dims.iter().enumerate().map(|(i, &d)| if mask >> i & 1 == 1 { 1 } else { d }).collect()
            };
            let (ld, rd) = (shape(lmask), shape(rmask));
            let seed = u64::from(seed);
            let (l, r) = (view(&ld, lkind, seed), view(&rd, rkind, seed + 1));
            let read = |t: FlexTensor| (t.shape().to_vec(), t.into_data().to_vec::<f32>().unwrap());
            let want = read(flex_binary(op, l.clone(), r.clone()));
            let got = read(match op {
                BinaryOp::Add => InnerBackend::float_add(l, r),
                BinaryOp::Sub => InnerBackend::float_sub(l, r),
                BinaryOp::Mul => InnerBackend::float_mul(l, r),
                BinaryOp::Div => InnerBackend::float_div(l, r),
            });
            prop_assert_eq!(got.0, want.0);
            for (a, b) in got.1.iter().zip(&want.1) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
        }

        /// A reshape of a strided view: the same values as flex's copy.
        #[test]
        fn reshape_copies_same_as_flex(
            dims in proptest::collection::vec(1usize..6, 2..5), kind in any::<u8>(), seed in any::<u32>(),
        ) {
            use burn_backend::ops::FloatTensorOps;
            let t = view(&dims, kind, u64::from(seed));
            let n: usize = dims.iter().product();
            let read = |t: FlexTensor| (t.shape().to_vec(), t.into_data().to_vec::<f32>().unwrap());
            let want = read(Flex::float_reshape(t.clone(), Shape::new([n])));
            prop_assert_eq!(read(InnerBackend::float_reshape(t, Shape::new([n]))), want);
        }
    }

    #[test]
    fn attention_shapes_take_the_kernels() {
        // Mask [b, 1, 1, s] on scores [b, h, s, s]; heads swapped back and flattened.
        let scores = view(&[3, 4, 5, 5], 0, 1);
        let mask = view(&[3, 1, 1, 5], 0, 2);
        assert!(strided_binary(BinaryOp::Add, scores.clone(), &mask).is_ok());
        let same = view(&[3, 4, 5, 5], 0, 3);
        assert!(strided_binary(BinaryOp::Add, scores.clone(), &same).is_err());
        assert!(strided_binary(BinaryOp::Add, scores, &view(&[3, 4, 5, 4], 0, 3)).is_err());
        let heads = view(&[3, 4, 5, 8], 0, 4).transpose(1, 2);
        let flat = <InnerBackend as burn_backend::ops::FloatTensorOps<InnerBackend>>::float_reshape(
            heads.clone(),
            Shape::new([3, 5, 32]),
        );
        assert_eq!(
            flat.into_data().to_vec::<f32>().unwrap(),
            heads.to_contiguous().into_data().to_vec::<f32>().unwrap()
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Products with broadcast batch dimensions and strided operands: the same bits as
        /// flex's (the same gemm calls).
        #[test]
        fn matmul_same_bits_as_flex(
            batch in proptest::collection::vec(1usize..4, 0..3), lmask in any::<u8>(),
            rmask in any::<u8>(), m in 1usize..9, k in 0usize..9, n in 1usize..9,
            lkind in any::<u8>(), rkind in any::<u8>(), seed in any::<u32>(),
        ) {
            use burn_backend::ops::FloatTensorOps;
            let dims = |mask: u8, tail: [usize; 2]| -> Vec<usize> {
                let mut d: Vec<usize> = batch
                    .iter()
                    .enumerate()
                    .map(|(i, &b)| if mask >> i & 1 == 1 { 1 } else { b })
                    .collect();
                // Some operands have fewer batch dimensions.
                if mask & 0x80 != 0 && !d.is_empty() {
                    d.remove(0);
                }
                d.extend(tail);
                d
            };
            let seed = u64::from(seed);
            let l = view(&dims(lmask, [m, k]), lkind, seed);
            let r = view(&dims(rmask, [k, n]), rkind, seed + 1);
            let read = |t: FlexTensor| (t.shape().to_vec(), t.into_data().to_vec::<f32>().unwrap());
            let want = read(Flex::float_matmul(l.clone(), r.clone()));
            let got = read(InnerBackend::float_matmul(l, r));
            prop_assert_eq!(&got.0, &want.0);
            prop_assert!(got.1.iter().zip(&want.1).all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    #[test]
    fn large_products_and_linear_take_the_kernel_with_flex_bits() {
        use burn_backend::ops::{FloatTensorOps, ModuleOps};
        // One product over the parallel threshold, and a batch of small ones over the batch
        // threshold: both parallel strategies.
        for (l, r) in [([1, 300, 200], [1, 200, 250]), ([64, 40, 40], [64, 40, 40])] {
            let (lv, rv) = (values(l.iter().product(), 1), values(r.iter().product(), 2));
            let t =
                |v: &[f32], s: [usize; 3]| FlexTensor::from_data(TensorData::new(v.to_vec(), s));
            let read = |t: FlexTensor| t.into_data().to_vec::<f32>().unwrap();
            let ours = matmul::matmul(&t(&lv, l), &t(&rv, r)).unwrap().1;
            assert_eq!(ours, read(Flex::float_matmul(t(&lv, l), t(&rv, r))));
        }
        // `linear` over [batch, seq, d_in] through the decorator's own operations.
        let (x, w, b) = (values(2 * 5 * 7, 3), values(7 * 4, 4), values(4, 5));
        let t = |v: &[f32], s: Vec<usize>| FlexTensor::from_data(TensorData::new(v.to_vec(), s));
        let read = |t: FlexTensor| t.into_data().to_vec::<f32>().unwrap();
        let ours = read(InnerBackend::linear(
            t(&x, vec![2, 5, 7]),
            t(&w, vec![7, 4]),
            Some(t(&b, vec![4])),
        ));
        let flex = read(Flex::linear(
            t(&x, vec![2, 5, 7]),
            t(&w, vec![7, 4]),
            Some(t(&b, vec![4])),
        ));
        assert_eq!(ours, flex);
        let g = values(2 * 5 * 4, 6);
        let ours = read(InnerBackend::linear_x_backward(
            t(&w, vec![7, 4]),
            t(&g, vec![2, 5, 4]),
        ));
        let flex = read(Flex::linear_x_backward(
            t(&w, vec![7, 4]),
            t(&g, vec![2, 5, 4]),
        ));
        assert_eq!(ours, flex);
    }
}
