//! The convolution and max-pool hooks of a CPU backend's [`Policy`](influence_core::Policy),
//! written once for flex and ndarray.
//!
//! Each hook takes the decorator's arguments, finds the backend's own tensors in them by a
//! safe downcast (the policy is only installed on that backend; on any other the arguments
//! go back), reads their `f32` values, runs this crate's kernel and makes the backend's tensor
//! of the result. [`CpuTensors`] is what a backend says about its tensor type for that
//! (implemented on the backend's policy type, which its crate owns). Where the kernel does not
//! apply (another dtype, grouped channels, a shape it does not take) the arguments are handed
//! back (`Err`) and the backend runs its own kernel.

use std::any::Any;
use std::borrow::Cow;

use burn_backend::Backend;
use burn_backend::ops::ConvOptions;
use burn_backend::tensor::FloatTensor;
use influence_core::{Conv2dArgs, Conv2dBackwardArgs, MaxPool2dArgs};

use crate::conv;
use crate::geometry::Geometry;
use crate::pool::{self, PoolGeometry};

/// A CPU backend's float tensor type, as the hooks read and make it.
pub trait CpuTensors {
    /// The backend's float tensor (its `FloatTensor` primitive).
    type Tensor: Any;

    /// Whether 1×1 convolutions with stride 1 and no padding run here too (`false` where the
    /// backend's own kernel already runs them as one product).
    const ONE_BY_ONE: bool;

    /// The dimensions of `t`.
    fn dims(t: &Self::Tensor) -> Vec<usize>;

    /// The values of `t` in row-major order when it is `f32` (borrowed where its memory
    /// already is in that order, else copied); `None` for another dtype.
    fn f32s(t: &Self::Tensor) -> Option<Cow<'_, [f32]>>;

    /// A contiguous `f32` tensor of `shape` holding `values` (`values.len()` is the shape's
    /// element count).
    fn from_f32s(shape: &[usize], values: Vec<f32>) -> Self::Tensor;
}

/// `p` as a `T` when it is one.
pub fn downcast_ref<P: Any, T: Any>(p: &P) -> Option<&T> {
    (p as &dyn Any).downcast_ref::<T>()
}

/// `t` as a `U` when `T` and `U` are the same type (a backend's primitive known to be its own
/// tensor type); else `t` back. Safe and without an allocation.
pub fn cast<T: Any, U: Any>(t: T) -> Result<U, T> {
    let mut slot = Some(t);
    if let Some(u) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<U>>()
        .and_then(Option::take)
    {
        return Ok(u);
    }
    match slot {
        Some(t) => Err(t),
        None => unreachable!("the value is taken only when T is U"),
    }
}

/// [`Policy::conv2d`](influence_core::Policy::conv2d) on `K::Tensor`s: see
/// [`conv2d_tensors`].
#[allow(clippy::result_large_err)] // arguments handed back to the backend, not an error
pub fn conv2d<B: Backend, K: CpuTensors>(
    args: Conv2dArgs<B>,
) -> Result<FloatTensor<B>, Conv2dArgs<B>> {
    let y = (|| {
        let bias = match &args.bias {
            Some(b) => Some(downcast_ref::<_, K::Tensor>(b)?),
            None => None,
        };
        conv2d_tensors::<K>(
            downcast_ref::<_, K::Tensor>(&args.x)?,
            downcast_ref::<_, K::Tensor>(&args.weight)?,
            bias,
            &args.options,
        )
    })();
    done::<B, K, _>(y, args)
}

/// [`Policy::conv2d_x_backward`](influence_core::Policy::conv2d_x_backward) on `K::Tensor`s:
/// see [`conv2d_x_backward_tensors`].
#[allow(clippy::result_large_err)] // arguments handed back to the backend, not an error
pub fn conv2d_x_backward<B: Backend, K: CpuTensors>(
    args: Conv2dBackwardArgs<B>,
) -> Result<FloatTensor<B>, Conv2dBackwardArgs<B>> {
    let dx = (|| {
        conv2d_x_backward_tensors::<K>(
            downcast_ref::<_, K::Tensor>(&args.x)?,
            downcast_ref::<_, K::Tensor>(&args.weight)?,
            downcast_ref::<_, K::Tensor>(&args.output_grad)?,
            &args.options,
        )
    })();
    done::<B, K, _>(dx, args)
}

/// [`Policy::max_pool2d`](influence_core::Policy::max_pool2d) on `K::Tensor`s: see
/// [`max_pool2d_tensor`].
#[allow(clippy::result_large_err)] // arguments handed back to the backend, not an error
pub fn max_pool2d<B: Backend, K: CpuTensors>(
    args: MaxPool2dArgs<B>,
) -> Result<FloatTensor<B>, MaxPool2dArgs<B>> {
    let y = downcast_ref::<_, K::Tensor>(&args.x).and_then(|x| {
        let window = [args.kernel_size, args.stride, args.padding, args.dilation];
        max_pool2d_tensor::<K>(x, window, args.ceil_mode)
    });
    done::<B, K, _>(y, args)
}

/// The kernel's result as `B`'s tensor, or `args` back where there is none.
#[allow(clippy::result_large_err)]
fn done<B: Backend, K: CpuTensors, A>(
    result: Option<K::Tensor>,
    args: A,
) -> Result<FloatTensor<B>, A> {
    match result.map(cast::<K::Tensor, FloatTensor<B>>) {
        Some(Ok(t)) => Ok(t),
        _ => Err(args),
    }
}

/// `conv2d(x, weight) + bias` with [`conv::conv2d`], for `x` `[batch, c_in, height, width]`,
/// `weight` `[c_out, c_in, kh, kw]` and `bias` `[c_out]`; `None` where the backend should run
/// it: a dtype other than `f32`, grouped channels, a shape [`Geometry::new`] does not take, a
/// bias of another length, or a 1×1 stride-1 unpadded kernel where `K::ONE_BY_ONE` is false.
pub fn conv2d_tensors<K: CpuTensors>(
    x: &K::Tensor,
    weight: &K::Tensor,
    bias: Option<&K::Tensor>,
    options: &ConvOptions<2>,
) -> Option<K::Tensor> {
    if options.groups != 1 {
        return None;
    }
    let g = Geometry::new(
        &K::dims(x),
        &K::dims(weight),
        options.stride,
        options.padding,
        options.dilation,
    )?;
    let one_by_one = g.kernel == [1, 1] && options.stride == [1, 1] && options.padding == [0, 0];
    if (one_by_one && !K::ONE_BY_ONE)
        || bias.is_some_and(|b| K::dims(b).iter().product::<usize>() != g.c_out)
    {
        return None;
    }
    let [oh, ow] = g.out_hw()?;
    let (xs, ws) = (K::f32s(x)?, K::f32s(weight)?);
    let bs = match bias {
        Some(b) => Some(K::f32s(b)?),
        None => None,
    };
    let y = conv::conv2d(&xs, &ws, bs.as_deref(), &g);
    Some(K::from_f32s(&[g.batch, g.c_out, oh, ow], y))
}

/// The input gradient of [`conv2d_tensors`] with [`conv::conv2d_x_backward`]: `x` gives the
/// shape `[batch, c_in, height, width]`, `output_grad` is `[batch, c_out, out_h, out_w]`;
/// `None` where the backend should run it (another dtype, grouped channels, shapes that do not
/// match).
pub fn conv2d_x_backward_tensors<K: CpuTensors>(
    x: &K::Tensor,
    weight: &K::Tensor,
    output_grad: &K::Tensor,
    options: &ConvOptions<2>,
) -> Option<K::Tensor> {
    if options.groups != 1 {
        return None;
    }
    let g = Geometry::new(
        &K::dims(x),
        &K::dims(weight),
        options.stride,
        options.padding,
        options.dilation,
    )?;
    let [oh, ow] = g.out_hw()?;
    if K::dims(output_grad) != [g.batch, g.c_out, oh, ow] {
        return None;
    }
    let (ws, dy) = (K::f32s(weight)?, K::f32s(output_grad)?);
    let dx = conv::conv2d_x_backward(&dy, &ws, &g);
    Some(K::from_f32s(&[g.batch, g.c_in, g.height, g.width], dx))
}

/// The 2-D max pool of `x` `[batch, channels, height, width]` with [`pool::max_pool2d`]
/// (`window`: kernel size, stride, padding, dilation, each `[y, x]`); `None` where the backend
/// should run it (another dtype, a window [`PoolGeometry::new`] does not take).
pub fn max_pool2d_tensor<K: CpuTensors>(
    x: &K::Tensor,
    window: [[usize; 2]; 4],
    ceil_mode: bool,
) -> Option<K::Tensor> {
    let [kernel, stride, padding, dilation] = window;
    let g = PoolGeometry::new(&K::dims(x), kernel, stride, padding, dilation, ceil_mode)?;
    let [oh, ow] = g.out_hw()?;
    let xs = K::f32s(x)?;
    let y = pool::max_pool2d(&xs, &g);
    Some(K::from_f32s(&[g.batch, g.channels, oh, ow], y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_moves_a_value_of_the_same_type_and_hands_back_another() {
        assert_eq!(
            cast::<Vec<f32>, Vec<f32>>(vec![1.0, 2.0]),
            Ok(vec![1.0, 2.0])
        );
        assert_eq!(cast::<Vec<f32>, Vec<f64>>(vec![1.0]), Err(vec![1.0]));
        assert_eq!(downcast_ref::<u8, u8>(&3), Some(&3));
        assert_eq!(downcast_ref::<u8, u16>(&3), None);
    }
}
