//! Activations whose gradients matter for attributions.

use burn::tensor::{Tensor, backend::Backend};

/// GELU in its exact form, `x · Φ(x) = x · (1 + erf(x / √2)) / 2`, built from `erf` so that
/// its gradient is exact on every backend.
///
/// Burn 0.21's `burn::tensor::activation::gelu` computes the same forward value, but the
/// default backward that the ndarray, wgpu and CUDA backends use is the derivative of the
/// tanh approximation, off by up to about 1e-4; attributions through it inherit the error.
/// Use this function in models you attribute (BERT's `"gelu"`, PyTorch's `nn.GELU()`).
///
/// # Shapes
/// - x: any; returns the same shape
pub fn gelu_exact<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    x.clone() * (x / core::f64::consts::SQRT_2).erf().add_scalar(1.0) * 0.5
}
