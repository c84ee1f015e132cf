//! Layer Integrated Gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep
//! Networks", arXiv:1703.01365, applied to a layer), as Captum's
//! `captum.attr.LayerIntegratedGradients` computes it.
//!
//! The path runs in the **layer's** space: with `h(x)` and `h(x')` the layer's tensor at the
//! input and at the baseline, the model runs on `x` with the layer's tensor replaced by
//! `h(x') + α_k (h(x) − h(x'))`, and
//!
//! ```text
//! attr = (h(x) − h(x')) · Σ_k w_k ∂F_target / ∂h  at  h(x') + α_k (h(x) − h(x'))
//! ```
//!
//! (without the factor `h(x) − h(x')` when `multiply_by_inputs` is false). Internal Influence,
//! by contrast, moves along the path in input space.
//!
//! Like Captum's forward hook, the replacement changes only what the layer hands on: a model
//! whose later layers also read earlier activations (a skip connection around the layer) reads
//! them at `x`.
//!
//! [`AttributeCall::run_exact`] computes the integral exactly when the network above the
//! layer is piecewise linear (ReLU, max pools; not in Captum), over the pieces of the
//! layer-space path on which it is affine.

use burn::tensor::backend::AutodiffBackend;

use crate::call::{AttributeCall, Explained};
use crate::engine::PathSpace;
use crate::path_method::{Finish, PathMethod, Points, Running};
use crate::{Explainable, InfluenceError};

/// The formula above: `n_steps` points of the rule on the layer-space path, the weighted sum of
/// the layer's gradients, times `h(x) − h(x')` at the end; with a convergence delta, as
/// Captum's.
pub(crate) const LAYER_INTEGRATED_GRADIENTS: PathMethod = PathMethod {
    name: "LayerIntegratedGradients",
    points: Points::Steps,
    space: PathSpace::Layer,
    running: Running::WeightedGradients,
    finish: Finish::TimesLayerDifference,
    convergence_delta: true,
    paper_options: false,
};

/// The same without the final factor (`multiply_by_inputs(false)`: the integrated gradients
/// alone, a "local" attribution). Captum reports the convergence delta of this sum too.
pub(crate) const LAYER_INTEGRATED_GRADIENTS_LOCAL: PathMethod = PathMethod {
    finish: Finish::Integral,
    ..LAYER_INTEGRATED_GRADIENTS
};

/// Layer Integrated Gradients of one layer of a model. See the [module docs](self).
///
/// Its [`attribute`](Self::attribute) call takes Captum's arguments (`baselines`, `target`,
/// `additional_forward_args`, `n_steps` default 50, `method` default Gauss-Legendre,
/// `internal_batch_size`, `attribute_to_layer_input`) and returns one tensor per tensor of the
/// layer, `[batch, ...]` like it; `run_with_convergence_delta` also returns the delta
/// (Captum's `return_convergence_delta=True`).
///
/// ```ignore
/// let lig = LayerIntegratedGradients::new(&model, "conv2")?.multiply_by_inputs(false);
/// let attr = lig.attribute(images).target(3).run()?;
/// ```
pub struct LayerIntegratedGradients<B: AutodiffBackend, M: Explainable<B>> {
    explained: Explained<B, M>,
    multiply_by_inputs: bool,
}

impl<B: AutodiffBackend, M: Explainable<B>> LayerIntegratedGradients<B, M> {
    /// Explains layer `layer` of `model` (Captum's
    /// `LayerIntegratedGradients(forward_func, layer)`), on a copy of the model in inference
    /// mode, multiplying by `h(x) − h(x')` (Captum's default `multiply_by_inputs=True`).
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, [layer])?,
            multiply_by_inputs: true,
        })
    }

    /// Captum's `multiply_by_inputs`: `false` gives the integrated gradients alone, without
    /// the factor `h(x) − h(x')` (a "local" attribution).
    pub fn multiply_by_inputs(mut self, yes: bool) -> Self {
        self.multiply_by_inputs = yes;
        self
    }

    /// The explained layer.
    pub fn layer(&self) -> &str {
        self.explained.layer()
    }

    /// Starts an attribution of `inputs` (Captum's `attribute(inputs, ...)`).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> AttributeCall<B, M> {
        let method = if self.multiply_by_inputs {
            &LAYER_INTEGRATED_GRADIENTS
        } else {
            &LAYER_INTEGRATED_GRADIENTS_LOCAL
        };
        self.explained.call(method, inputs)
    }
}
