//! Precision of ndarray on generated LayerNorm/softmax/GELU models, against float64 on Burn's
//! flex backend (see `common/precision.rs`).

use burn::tensor::DType;
#[path = "common/precision.rs"]
mod precision;

type F64 = burn_autodiff::Autodiff<burn_flex::Flex>;

#[test]
fn layer_norm_softmax_models_match_float64() {
    let reference = burn_flex::FlexDevice;
    burn::tensor::set_default_dtypes::<F64>(&reference, DType::F64, DType::I64).unwrap();
    precision::check::<burn_influence::ndarray::Backend, F64>(
        "ndarray",
        &burn_influence::ndarray::device(),
        &reference,
        48,
    );
}
