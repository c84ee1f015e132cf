//! Precision of flex and wgpu on generated LayerNorm/softmax/GELU models, against float64 on
//! Burn's ndarray backend (see `common/precision.rs`).

use burn::tensor::DType;
#[path = "common/precision.rs"]
mod precision;

type F64 = burn_autodiff::Autodiff<burn_ndarray::NdArray<f64>>;

#[test]
fn layer_norm_softmax_models_match_float64() {
    let reference = burn_ndarray::NdArrayDevice::Cpu;
    burn::tensor::set_default_dtypes::<F64>(&reference, DType::F64, DType::I64).unwrap();
    #[cfg(feature = "flex")]
    precision::check::<burn_influence::flex::Backend, F64>(
        "flex",
        &burn_influence::flex::device(),
        &reference,
        48,
    );
    // A few on wgpu: every new shape compiles kernels, slow on a software adapter.
    #[cfg(feature = "wgpu")]
    precision::check::<burn_influence::wgpu::Backend, F64>(
        "wgpu",
        &burn_influence::wgpu::device(),
        &reference,
        6,
    );
}
