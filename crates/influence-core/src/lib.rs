//! # influence-core
//!
//! Internal Influence (Leino et al. 2018, "Influence-Directed Explanations for Deep
//! Convolutional Networks", arXiv:1802.03788) for any [Burn](https://burn.dev) model, with
//! the numbers and the argument names of Captum's `captum.attr.InternalInfluence`.
//!
//! For a layer `h` of a model `F`, it integrates the gradient of the explained output with
//! respect to `h` along the straight path from a baseline `x'` to the input `x`:
//!
//! ```text
//! attr = Σ_k  w_k · ∂F_target(x' + α_k (x − x')) / ∂h
//! ```
//!
//! with `(α_k, w_k)` from a [`QuadratureRule`]. The result has one value per neuron of `h`.
//!
//! # Where things are
//!
//! Following one call, `InternalInfluence::new(&model, "conv2")?.attribute(x).target(t).run()`:
//!
//! | step | file |
//! |---|---|
//! | the method, its formula and what it is as data (its `PathMethod`) | `internal_influence.rs`, `layer_conductance.rs`, `layer_integrated_gradients.rs` (`path_method.rs`: what the data means) |
//! | the model's copy in inference mode | `explainable.rs`, `eval.rs`, `decorator.rs` (`decorator/ops.rs`, generated) |
//! | the call's setters, its checks and plan, its finish | `call.rs` (`setup.rs`: what every call does first) |
//! | Captum's arguments | `baseline.rs`, `target.rs`, `quantity.rs`, `distribution.rs`, `args.rs`, `noise_tunnel.rs` |
//! | the rule and the chunks | `quadrature.rs`, `chunking.rs` |
//! | the path's inputs | `inputs.rs`, `tensor_group.rs`, `any_tensor.rs` |
//! | the passes (validation forward, threads, forward/backward per chunk) | `engine.rs`, `probe.rs`, `gradient.rs` |
//! | the running results and end-point formulas | `sums.rs` |
//! | what comes back, and the errors | `attribution.rs`, `error.rs`, `panics.rs` |
//!
//! Beside the path methods: Layer Activation and Layer Gradient × Activation
//! (`layer_activation.rs`, `layer_gradient_x_activation.rs`), the exact integral on
//! piecewise-linear networks (`exact.rs`, `engine/exact.rs`, `decorator/trace.rs`), `n_steps`
//! for a tolerance (`tolerance.rs`), datasets (`dataset.rs`), the model's inference function
//! alone (`inference.rs`), and smooth activations (`activation.rs`).
//!
//! Everything is generic over Burn's [`AutodiffBackend`](burn::tensor::backend::AutodiffBackend);
//! the backend crates (`influence-ndarray`, `influence-flex`, `influence-wgpu`,
//! `influence-cuda`) only pick one.

#![warn(missing_docs)]

pub mod activation;
mod any_tensor;
mod args;
mod attribution;
pub mod baseline;
mod call;
mod chunking;
pub mod dataset;
pub mod decorator;
pub mod distribution;
mod engine;
mod error;
pub mod eval;
mod exact;
pub mod explainable;
mod gradient;
mod inference;
mod inputs;
pub mod internal_influence;
pub mod layer_activation;
pub mod layer_conductance;
pub mod layer_gradient_x_activation;
pub mod layer_integrated_gradients;
pub mod noise_tunnel;
mod panics;
mod path_method;
pub mod probe;
pub mod quadrature;
pub mod quantity;
mod setup;
mod sums;
pub mod target;
mod tensor_group;
mod tolerance;

pub use any_tensor::AnyTensor;
pub use args::{Expansion, ForwardArgs};
pub use attribution::Attribution;
pub use baseline::{Baseline, Baselines};
pub use call::{AttributeCall, InternalInfluenceConfig};
pub use chunking::step_chunks;
pub use dataset::{DatasetAttribution, DatasetBatch, DatasetSummary};
pub use decorator::{
    BinaryOp, Conv2dArgs, Conv2dBackwardArgs, CubeclFixes, Decorator, EvalMode, ExactRecip,
    MaxPool2dArgs, Policy, conv2d_x_backward_by_forward,
};
pub use distribution::Distribution;
pub use engine::exact::{MAX_EXACT_PIECES, MIN_PIECE_WIDTH};
pub use error::InfluenceError;
pub use eval::{Eval, ToEval};
pub use exact::ExactAttribution;
pub use explainable::Explainable;
pub use gradient::{LayerGradient, LayerGradients, layer_gradients, layer_gradients_probed};
pub use inference::{check_layer_names, predict};
pub use internal_influence::InternalInfluence;
pub use layer_activation::{ActivationCall, LayerActivation};
pub use layer_conductance::LayerConductance;
pub use layer_gradient_x_activation::{GradientCall, LayerGradientXActivation};
pub use layer_integrated_gradients::LayerIntegratedGradients;
pub use noise_tunnel::{Noise, NoiseTunnel, NoiseType};
pub use probe::{LayerProbe, LayerSide, Probe, Watch};
pub use quadrature::{MAX_STEPS, Method, QuadratureRule};
pub use quantity::{Quantity, TargetSelector};
pub use target::Target;
pub use tensor_group::{TensorGroup, TensorMap};
pub use tolerance::{Converged, MAX_TOLERANCE_STEPS};
