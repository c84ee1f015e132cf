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
///
/// On Burn's flex backend, whose own GELU has the exact backward, this is Burn's
/// `activation::gelu` (one fused pass forward and one backward instead of five); elsewhere it
/// is composed from `erf`.
pub fn gelu_exact<B: Backend, const D: usize>(x: Tensor<B, D>) -> Tensor<B, D> {
    if fused_gelu_is_exact::<B>(&x.device()) {
        burn::tensor::activation::gelu(x)
    } else {
        x.clone() * (x / core::f64::consts::SQRT_2).erf().add_scalar(1.0) * 0.5
    }
}

/// Whether Burn's `gelu` has the exact backward on this backend: flex's does
/// (`Φ(x) + x·φ(x)`, burn-flex 0.21 `gelu_backward`); the default one (ndarray, wgpu, CUDA)
/// differentiates the tanh approximation. Recognised by name, through any decorators and
/// autodiff (`eval<autodiff<flex>>`).
fn fused_gelu_is_exact<B: Backend>(device: &B::Device) -> bool {
    B::name(device).contains("flex")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use burn::tensor::backend::AutodiffBackend;

    /// Φ(x) + x·φ(x), in float64.
    fn exact_derivative(x: f64) -> f64 {
        // erf through its Taylor series is enough for |x| ≤ 4 in float64.
        let erf = |z: f64| {
            let (mut term, mut sum) = (z, z);
            for n in 1..200 {
                term *= -z * z / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / core::f64::consts::PI.sqrt()
        };
        let cdf = 0.5 * (1.0 + erf(x / core::f64::consts::SQRT_2));
        let pdf = (-0.5 * x * x).exp() / (2.0 * core::f64::consts::PI).sqrt();
        cdf + x * pdf
    }

    fn check<B: AutodiffBackend>(device: &B::Device) {
        let xs: Vec<f32> = (-16..=16).map(|i| i as f32 * 0.25).collect();
        let x = Tensor::<B, 1>::from_data(TensorData::new(xs.clone(), [xs.len()]), device)
            .require_grad();
        let grads = gelu_exact(x.clone()).sum().backward();
        let g = x.grad(&grads).unwrap().into_data().to_vec::<f32>().unwrap();
        for (x, g) in xs.iter().zip(g) {
            let want = exact_derivative(*x as f64);
            assert!(
                (g as f64 - want).abs() < 2e-6,
                "{}: gelu'({x}) = {g}, exact {want}",
                B::name(device)
            );
        }
    }

    #[test]
    fn gradient_is_exact_on_flex_and_ndarray() {
        assert!(fused_gelu_is_exact::<
            burn_autodiff::Autodiff<burn_flex::Flex>,
        >(&Default::default()));
        check::<burn_autodiff::Autodiff<burn_flex::Flex>>(&Default::default());
        check::<burn_autodiff::Autodiff<burn_ndarray::NdArray>>(&Default::default());
    }
}
