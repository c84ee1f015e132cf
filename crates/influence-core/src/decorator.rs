//! [`Decorator<B, P>`]: a Burn backend that is `B` in every operation, but for the few that a
//! [`Policy`] `P` changes. Two policies are used:
//!
//! - [`EvalMode`] ([`Eval<B>`](crate::Eval)): `ad_enabled` is false, so modules take their
//!   inference behaviour while the autodiff backend `B` still records gradients;
//! - [`ExactRecip`]: reciprocals are computed as a true division. Burn 0.21's ndarray
//!   backend computes `recip` (and `powi` with exponent −1 or −2) with an approximate SIMD
//!   reciprocal, about 3e-4 relative error, and autodiff's division backward uses `recip`:
//!   softmax and layer-norm gradients lose three to four digits. `influence-ndarray` runs on
//!   `Autodiff<Decorator<NdArray, ExactRecip>>`.
//!
//! A backend crate may define its own policy, as `influence-flex` does to run 2-D
//! convolutions with its own kernel ([`Policy::conv2d`]).
//!
//! The forwarding methods (one per operation of Burn's `Backend`, 417) are generated from
//! burn-backend 0.21.0's trait declarations by `scripts/gen_decorator.py` into
//! `decorator/ops.rs`; CI checks that the file is up to date.

mod ops;
pub(crate) mod trace;

use core::marker::PhantomData;

use burn_backend::ops::ConvOptions;
use burn_backend::tensor::{BoolTensor, FloatTensor, IntTensor, QuantizedTensor};
use burn_backend::{
    AutodiffBackend, Backend, BackendTypes, DTypeUsageSet, ExecutionError, Shape, TensorData,
    TensorMetadata, TensorPrimitive,
};

/// What a [`Decorator`] changes of the backend it wraps.
pub trait Policy: 'static {
    /// The decorator's `ad_enabled`: `None` keeps the wrapped backend's.
    const AD_ENABLED: Option<bool>;
    /// Compute `recip` (and `powi` with exponent −1 or −2) as a division.
    const EXACT_RECIP: bool;
    /// Run a `Linear` over a rank > 2 input as one matrix product over all its rows
    /// (`[d0, .., dn, d_in]` viewed as `[d0·..·dn, d_in]`), as PyTorch does, instead of
    /// Burn's default batched product with the weight broadcast (one small product per
    /// leading index). Same values up to rounding; on the CPU backends several times faster
    /// for a transformer's `[batch, seq, hidden]` activations.
    const FLAT_LINEAR: bool;
    /// The decorator's name, as `Backend::name` shows it: `NAME<inner name>`.
    const NAME: &'static str;
    /// Compute `linear` and its input gradient from the decorator's own operations
    /// (`float_matmul`, `float_add`, `float_reshape`: Burn's default formulas), so that a
    /// policy's [`float_matmul`](Policy::float_matmul) runs them too; otherwise they go to
    /// the wrapped backend's `linear`, whose products are its own.
    const LINEAR_FROM_OPS: bool = false;
    /// Record the exact method's trace of the operations (`decorator/trace.rs`) while one
    /// runs on the thread: [`EvalMode`] only.
    const TRACE: bool = false;

    /// A 2-D convolution of the policy's own: Burn's `ModuleOps::conv2d` with the same
    /// arguments and result (`x` `[batch, channels_in, height, width]`, `weight`
    /// `[channels_out, channels_in / groups, kernel_height, kernel_width]`, `bias`
    /// `[channels_out]`; returns `[batch, channels_out, out_height, out_width]`). Only the
    /// forward pass: under autodiff the backward still uses `B`'s `conv2d_x_backward` and
    /// friends. `Err(args)` hands the call back to `B`; by default every call goes to `B`.
    fn conv2d<B: Backend>(args: Conv2dArgs<B>) -> Result<FloatTensor<B>, Conv2dArgs<B>> {
        Err(args)
    }

    /// The input gradient of a 2-D convolution, of the policy's own: Burn's
    /// `ModuleOps::conv2d_x_backward` with the same arguments and result (`x` the forward's
    /// input `[batch, channels_in, height, width]`, `weight`, `output_grad` `[batch,
    /// channels_out, out_height, out_width]`; returns `[batch, channels_in, height, width]`).
    /// Autodiff's convolution backward calls it. `Err(args)` hands the call back to `B`; by
    /// default every call goes to `B`.
    fn conv2d_x_backward<B: Backend>(
        args: Conv2dBackwardArgs<B>,
    ) -> Result<FloatTensor<B>, Conv2dBackwardArgs<B>> {
        Err(args)
    }

    /// A 2-D max pool of the policy's own: Burn's `ModuleOps::max_pool2d` with the same
    /// arguments and result (`x` `[batch, channels, height, width]`; returns `[batch,
    /// channels, out_height, out_width]`). Autodiff calls it where the pool is not tracked
    /// (a tracked pool runs `max_pool2d_with_indices`, which stays `B`'s). `Err(args)` hands
    /// the call back to `B`; by default every call goes to `B`.
    fn max_pool2d<B: Backend>(args: MaxPool2dArgs<B>) -> Result<FloatTensor<B>, MaxPool2dArgs<B>> {
        Err(args)
    }

    /// An elementwise `lhs op rhs` of the policy's own: Burn's `float_add`, `float_sub`,
    /// `float_mul` or `float_div` with the same arguments and result (two float tensors of
    /// one rank whose shapes broadcast; returns the broadcast shape). Under autodiff the
    /// forward pass and the backward passes call these. `Err((lhs, rhs))` hands the call back
    /// to `B`; by default every call goes to `B`.
    #[allow(clippy::type_complexity)]
    fn float_binary<B: Backend>(
        op: BinaryOp,
        lhs: FloatTensor<B>,
        rhs: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        let _ = op;
        Err((lhs, rhs))
    }

    /// A matrix product of the policy's own: Burn's `float_matmul` (`lhs` `[..., m, k]`,
    /// `rhs` `[..., k, n]`, batch dimensions broadcast; returns `[..., m, n]`). Under
    /// autodiff the forward pass and the backward passes call it. `Err((lhs, rhs))` hands
    /// the call back to `B`; by default every call goes to `B`.
    #[allow(clippy::type_complexity)]
    fn float_matmul<B: Backend>(
        lhs: FloatTensor<B>,
        rhs: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        Err((lhs, rhs))
    }

    /// A reshape of the policy's own: Burn's `float_reshape` (same element count; returns
    /// `shape`). Under autodiff the forward pass and the backward pass call it. `Err((tensor,
    /// shape))` hands the call back to `B`; by default every call goes to `B`.
    fn float_reshape<B: Backend>(
        tensor: FloatTensor<B>,
        shape: Shape,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, Shape)> {
        Err((tensor, shape))
    }

    /// A GELU kernel of the policy's own: Burn's `ActivationOps::gelu`, the exact form
    /// `x · Φ(x)` (any shape; returns the same shape). Under autodiff the forward pass calls
    /// it. `Err(tensor)` hands the call back to `B`; by default every call goes to `B`.
    fn gelu<B: Backend>(tensor: FloatTensor<B>) -> Result<FloatTensor<B>, FloatTensor<B>> {
        Err(tensor)
    }

    /// GELU's backward of the policy's own: Burn's `ActivationOps::gelu_backward`,
    /// `grad · (Φ(x) + x · φ(x))` (`x` and `grad` of one shape; returns that shape). Under
    /// autodiff the backward pass of `gelu` calls it. `Err((x, grad))` hands the call back
    /// to `B`; by default every call goes to `B`.
    #[allow(clippy::type_complexity)]
    fn gelu_backward<B: Backend>(
        x: FloatTensor<B>,
        grad: FloatTensor<B>,
    ) -> Result<FloatTensor<B>, (FloatTensor<B>, FloatTensor<B>)> {
        Err((x, grad))
    }
}

/// One of Burn's four elementwise arithmetic operations on two float tensors, given to
/// [`Policy::float_binary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `float_add`: `lhs + rhs`.
    Add,
    /// `float_sub`: `lhs - rhs`.
    Sub,
    /// `float_mul`: `lhs * rhs`.
    Mul,
    /// `float_div`: `lhs / rhs`.
    Div,
}

/// The arguments of Burn's `ModuleOps::conv2d`, given to [`Policy::conv2d`] and handed back
/// by it when it leaves the call to the wrapped backend.
pub struct Conv2dArgs<B: Backend> {
    /// The input, `[batch, channels_in, height, width]`.
    pub x: FloatTensor<B>,
    /// The kernel, `[channels_out, channels_in / groups, kernel_height, kernel_width]`.
    pub weight: FloatTensor<B>,
    /// The bias, `[channels_out]`.
    pub bias: Option<FloatTensor<B>>,
    /// Stride, padding, dilation and groups.
    pub options: ConvOptions<2>,
}

/// The arguments of Burn's `ModuleOps::max_pool2d`, given to [`Policy::max_pool2d`] and
/// handed back by it when it leaves the call to the wrapped backend.
pub struct MaxPool2dArgs<B: Backend> {
    /// The input, `[batch, channels, height, width]`.
    pub x: FloatTensor<B>,
    /// The window `[height, width]`.
    pub kernel_size: [usize; 2],
    /// Stride `[y, x]`.
    pub stride: [usize; 2],
    /// Padding `[y, x]` on both sides (never the maximum).
    pub padding: [usize; 2],
    /// Dilation `[y, x]`.
    pub dilation: [usize; 2],
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

/// The arguments of Burn's `ModuleOps::conv2d_x_backward`, given to
/// [`Policy::conv2d_x_backward`] and handed back by it when it leaves the call to the wrapped
/// backend.
pub struct Conv2dBackwardArgs<B: Backend> {
    /// The forward's input, `[batch, channels_in, height, width]` (its shape is what the
    /// gradient has).
    pub x: FloatTensor<B>,
    /// The kernel, `[channels_out, channels_in / groups, kernel_height, kernel_width]`.
    pub weight: FloatTensor<B>,
    /// The gradient of the forward's output, `[batch, channels_out, out_height, out_width]`.
    pub output_grad: FloatTensor<B>,
    /// The forward's stride, padding, dilation and groups.
    pub options: ConvOptions<2>,
}

/// `ad_enabled` false: inference behaviour with gradients. See [`Eval`](crate::Eval).
#[derive(Debug, Clone, Copy, Default)]
pub struct EvalMode;

impl Policy for EvalMode {
    const AD_ENABLED: Option<bool> = Some(false);
    const EXACT_RECIP: bool = false;
    const FLAT_LINEAR: bool = true;
    const NAME: &'static str = "eval";
    const TRACE: bool = true;
}

/// Reciprocals as a true division (for Burn's ndarray backend). See the [module docs](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct ExactRecip;

impl Policy for ExactRecip {
    const AD_ENABLED: Option<bool> = None;
    const EXACT_RECIP: bool = true;
    const FLAT_LINEAR: bool = false;
    const NAME: &'static str = "exact-recip";
}

/// Burn 0.21's GPU backends (wgpu, CUDA: burn-cubecl) with their one wrong gradient put right:
/// the input gradient of a convolution whose kernel span is shorter than its stride
/// (`kernel · dilation < stride` in a dimension: the `1×1`, stride-2 shortcut of every ResNet
/// stage is one) is computed through a stride-1 forward convolution
/// ([`conv2d_x_backward_by_forward`]).
///
/// burn-cubecl's direct transposed-convolution kernel (`conv_transpose2d_direct_kernel`, which
/// its `conv2d_x_backward` uses for every stride above 1) takes the input rows
/// `y_start .. y_start + kernel · dilation − stride + 1`: an empty range when the kernel is
/// shorter than the stride, so that gradient came out as zeros, silently. Measured against
/// flex on `1×1` stride-2 convolutions: relative error 1.0 (the whole gradient missing), and a
/// torchvision ResNet-18's attribution of any layer before `layer4` off by its own size.
#[derive(Debug, Clone, Copy, Default)]
pub struct CubeclFixes;

impl Policy for CubeclFixes {
    const AD_ENABLED: Option<bool> = None;
    const EXACT_RECIP: bool = false;
    const FLAT_LINEAR: bool = false;
    const NAME: &'static str = "fixes";

    fn conv2d_x_backward<B: Backend>(
        args: Conv2dBackwardArgs<B>,
    ) -> Result<FloatTensor<B>, Conv2dBackwardArgs<B>> {
        let [_, _, kh, kw] = args.weight.shape().dims::<4>();
        let o = &args.options;
        let short = [kh, kw]
            .iter()
            .zip(o.dilation.iter().zip(&o.stride))
            .any(|(k, (d, s))| k * d < *s);
        if short {
            Ok(conv2d_x_backward_by_forward::<B>(args))
        } else {
            Err(args)
        }
    }
}

/// The input gradient of a 2-D convolution (what Burn's `conv2d_x_backward` computes) from a
/// stride-1 forward convolution, on any backend: the output gradient with `stride − 1` zeros
/// inserted between its elements, padded (or cropped) by `dilation · (kernel − 1) − padding`
/// before and so as to give the input's size after, convolved with the kernel flipped in
/// space and with its two channel dimensions swapped (per group). Slower than a transposed
/// convolution kernel; [`CubeclFixes`] uses it only where Burn 0.21's kernel is wrong.
///
/// # Shapes
/// - `x`: `[batch, c_in, height, width]` (only its shape is used)
/// - `weight`: `[c_out, c_in / groups, kh, kw]`; `output_grad`: `[batch, c_out, oh, ow]`
/// - returns: `[batch, c_in, height, width]`
pub fn conv2d_x_backward_by_forward<B: Backend>(args: Conv2dBackwardArgs<B>) -> FloatTensor<B> {
    use burn::tensor::Tensor;
    let Conv2dBackwardArgs {
        x,
        weight,
        output_grad,
        options,
    } = args;
    let [_, _, height, width] = x.shape().dims::<4>();
    let weight = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(weight));
    let mut z = Tensor::<B, 4>::from_primitive(TensorPrimitive::Float(output_grad));
    let [c_out, c_in_group, kh, kw] = weight.dims();
    let device = z.device();
    // Zeros between the elements, dimension by dimension (2 and 3).
    for (axis, stride) in [(2usize, options.stride[0]), (3, options.stride[1])] {
        if stride > 1 {
            let mut dims = z.dims();
            let n = dims[axis];
            let moved = z.swap_dims(axis, 3);
            let [a, b, c, _] = moved.dims();
            let spread = Tensor::cat(
                vec![
                    moved.reshape([a, b, c, n, 1]),
                    Tensor::zeros([a, b, c, n, stride - 1], &device),
                ],
                4,
            )
            .reshape([a, b, c, n * stride])
            .narrow(3, 0, (n - 1) * stride + 1);
            z = spread.swap_dims(axis, 3);
            dims[axis] = (n - 1) * stride + 1;
            debug_assert_eq!(z.dims(), dims);
        }
    }
    // Padding before (may be negative: a crop) and after, so that the stride-1 convolution
    // gives the input's size.
    for (axis, k, d, p, size) in [
        (2usize, kh, options.dilation[0], options.padding[0], height),
        (3, kw, options.dilation[1], options.padding[1], width),
    ] {
        let before = (d * (k - 1)) as isize - p as isize;
        let len = z.dims()[axis] as isize;
        let after = size as isize + (d * (k - 1)) as isize - before - len;
        z = pad_or_crop(z, axis, before, after, &device);
    }
    let groups = options.groups.max(1);
    let c_out_group = c_out / groups;
    let parts: Vec<Tensor<B, 4>> = (0..groups)
        .map(|g| {
            // [c_out / groups, c_in / groups, kh, kw] → [c_in / groups, c_out / groups, kh, kw],
            // flipped in space.
            let w = weight
                .clone()
                .narrow(0, g * c_out_group, c_out_group)
                .swap_dims(0, 1)
                .flip([2, 3]);
            let dy = z.clone().narrow(1, g * c_out_group, c_out_group);
            let _ = c_in_group;
            burn::tensor::module::conv2d(
                dy,
                w,
                None,
                ConvOptions::new([1, 1], [0, 0], options.dilation, 1),
            )
        })
        .collect();
    Tensor::cat(parts, 1).into_primitive().tensor()
}

/// `t` with `before` zeros added before its elements along `axis` (or `−before` removed) and
/// `after` after them (or removed).
fn pad_or_crop<B: Backend>(
    t: burn::tensor::Tensor<B, 4>,
    axis: usize,
    before: isize,
    after: isize,
    device: &B::Device,
) -> burn::tensor::Tensor<B, 4> {
    use burn::tensor::Tensor;
    let mut t = t;
    let zeros = |t: &Tensor<B, 4>, n: usize| {
        let mut dims = t.dims();
        dims[axis] = n;
        Tensor::<B, 4>::zeros(dims, device)
    };
    if before > 0 {
        let z = zeros(&t, before as usize);
        t = Tensor::cat(vec![z, t], axis);
    } else if before < 0 {
        let n = t.dims()[axis];
        t = t.narrow(axis, (-before) as usize, n - (-before) as usize);
    }
    if after > 0 {
        let z = zeros(&t, after as usize);
        t = Tensor::cat(vec![t, z], axis);
    } else if after < 0 {
        let n = t.dims()[axis];
        t = t.narrow(axis, 0, n - (-after) as usize);
    }
    t
}

/// The backend `B` with the changes of policy `P`. Its tensors are `B`'s tensors (the same
/// primitives), so moving a tensor between `B` and the decorator costs nothing. An autodiff
/// `B` gives an autodiff decorator with `B`'s inner backend and gradients.
pub struct Decorator<B, P> {
    _marker: PhantomData<fn() -> (B, P)>,
}

impl<B, P> core::fmt::Debug for Decorator<B, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Decorator")
    }
}

impl<B, P> Clone for Decorator<B, P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<B, P> Copy for Decorator<B, P> {}

impl<B, P> Default for Decorator<B, P> {
    fn default() -> Self {
        Self {
            _marker: PhantomData,
        }
    }
}

impl<B: Backend, P: Policy> BackendTypes for Decorator<B, P> {
    type Device = B::Device;
    type FloatTensorPrimitive = B::FloatTensorPrimitive;
    type FloatElem = B::FloatElem;
    type IntTensorPrimitive = B::IntTensorPrimitive;
    type IntElem = B::IntElem;
    type BoolTensorPrimitive = B::BoolTensorPrimitive;
    type BoolElem = B::BoolElem;
    type QuantizedTensorPrimitive = B::QuantizedTensorPrimitive;
}

impl<B: Backend, P: Policy> Backend for Decorator<B, P> {
    fn ad_enabled(device: &Self::Device) -> bool {
        P::AD_ENABLED.unwrap_or_else(|| B::ad_enabled(device))
    }

    fn memory_persistent_allocations<
        Output: Send,
        Input: Send,
        Func: Fn(Input) -> Output + Send,
    >(
        device: &Self::Device,
        input: Input,
        func: Func,
    ) -> Output {
        B::memory_persistent_allocations(device, input, func)
    }

    fn memory_cleanup(device: &Self::Device) {
        B::memory_cleanup(device)
    }

    fn name(device: &Self::Device) -> String {
        format!("{}<{}>", P::NAME, B::name(device))
    }

    fn seed(device: &Self::Device, seed: u64) {
        B::seed(device, seed)
    }

    fn sync(device: &Self::Device) -> Result<(), ExecutionError> {
        B::sync(device)
    }

    fn staging<'a, Iter>(data: Iter, device: &Self::Device)
    where
        Iter: Iterator<Item = &'a mut TensorData>,
    {
        B::staging(data, device)
    }

    fn supports_dtype(device: &Self::Device, dtype: burn_backend::DType) -> bool {
        B::supports_dtype(device, dtype)
    }

    fn dtype_usage(device: &Self::Device, dtype: burn_backend::DType) -> DTypeUsageSet {
        B::dtype_usage(device, dtype)
    }

    fn device_count(type_id: u16) -> usize {
        B::device_count(type_id)
    }
}

impl<B: AutodiffBackend, P: Policy> AutodiffBackend for Decorator<B, P> {
    type InnerBackend = B::InnerBackend;
    type Gradients = B::Gradients;

    fn backward(tensor: FloatTensor<Self>) -> Self::Gradients {
        B::backward(tensor)
    }

    fn grad(
        tensor: &FloatTensor<Self>,
        grads: &Self::Gradients,
    ) -> Option<FloatTensor<Self::InnerBackend>> {
        B::grad(tensor, grads)
    }

    fn grad_remove(
        tensor: &FloatTensor<Self>,
        grads: &mut Self::Gradients,
    ) -> Option<FloatTensor<Self::InnerBackend>> {
        B::grad_remove(tensor, grads)
    }

    fn grad_replace(
        tensor: &FloatTensor<Self>,
        grads: &mut Self::Gradients,
        grad: FloatTensor<Self::InnerBackend>,
    ) {
        B::grad_replace(tensor, grads, grad)
    }

    fn inner(tensor: FloatTensor<Self>) -> FloatTensor<Self::InnerBackend> {
        B::inner(tensor)
    }

    fn int_inner(tensor: IntTensor<Self>) -> IntTensor<Self::InnerBackend> {
        B::int_inner(tensor)
    }

    fn bool_inner(tensor: BoolTensor<Self>) -> BoolTensor<Self::InnerBackend> {
        B::bool_inner(tensor)
    }

    fn q_inner(tensor: QuantizedTensor<Self>) -> QuantizedTensor<Self::InnerBackend> {
        B::q_inner(tensor)
    }

    fn from_inner(tensor: FloatTensor<Self::InnerBackend>) -> FloatTensor<Self> {
        B::from_inner(tensor)
    }

    fn int_from_inner(tensor: IntTensor<Self::InnerBackend>) -> IntTensor<Self> {
        B::int_from_inner(tensor)
    }

    fn bool_from_inner(tensor: BoolTensor<Self::InnerBackend>) -> BoolTensor<Self> {
        B::bool_from_inner(tensor)
    }

    fn q_from_inner(tensor: QuantizedTensor<Self::InnerBackend>) -> QuantizedTensor<Self> {
        B::q_from_inner(tensor)
    }
}

/// Burn's default `linear` (burn-backend 0.21 `ops::modules::linear`, crate-private there):
/// `x @ weight + bias`, the weight `[d_input, d_output]` and the bias `[d_output]` broadcast
/// over `x`'s leading dimensions.
pub(crate) fn linear_from_ops<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    bias: Option<FloatTensor<B>>,
) -> FloatTensor<B> {
    let rank = x.shape().num_dims();
    let output = B::float_matmul(x, unsqueeze_leading::<B>(weight, rank));
    match bias {
        Some(bias) => B::float_add(output, unsqueeze_leading::<B>(bias, rank)),
        None => output,
    }
}

/// `tensor` with size-1 dimensions put in front until it has `rank` dimensions.
pub(crate) fn unsqueeze_leading<B: Backend>(tensor: FloatTensor<B>, rank: usize) -> FloatTensor<B> {
    let shape = tensor.shape();
    let have = shape.num_dims();
    if have >= rank {
        return tensor;
    }
    let dims: Vec<usize> = core::iter::repeat_n(1, rank - have)
        .chain((0..have).map(|i| shape[i]))
        .collect();
    B::float_reshape(tensor, Shape::from(dims))
}

/// `B`'s float primitive as the decorator's (the same value).
pub(crate) fn tp_out<B: Backend, P: Policy>(
    t: TensorPrimitive<B>,
) -> TensorPrimitive<Decorator<B, P>> {
    match t {
        TensorPrimitive::Float(t) => TensorPrimitive::Float(t),
        TensorPrimitive::QFloat(t) => TensorPrimitive::QFloat(t),
    }
}

/// The decorator's float primitive as `B`'s (the same value).
fn tp_in<B: Backend, P: Policy>(t: TensorPrimitive<Decorator<B, P>>) -> TensorPrimitive<B> {
    match t {
        TensorPrimitive::Float(t) => TensorPrimitive::Float(t),
        TensorPrimitive::QFloat(t) => TensorPrimitive::QFloat(t),
    }
}
