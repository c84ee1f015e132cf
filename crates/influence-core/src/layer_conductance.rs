//! Layer Conductance (Dhamdhere et al. 2018, "How Important Is a Neuron?",
//! arXiv:1805.12233; Shrikumar et al. 2018, arXiv:1807.09946), as Captum's
//! `captum.attr.LayerConductance` computes it.
//!
//! For a layer `h`, input `x`, baseline `x'` and the `n_steps + 1` points `α_0 < … < α_n` of
//! the quadrature rule (its weights are not used):
//!
//! ```text
//! attr = Σ_{k<n}  ∂F_target(x' + α_k (x − x')) / ∂h  ·  (h(x' + α_{k+1} (x − x')) − h(x' + α_k (x − x')))
//! ```
//!
//! the flow of the integrated gradients through each neuron of `h`. Like Captum, the
//! endpoints are the rule's own first and last points, so with Gauss-Legendre (whose points
//! stop short of 0 and 1) the sum over the neurons is close to, not equal to,
//! `F(x) − F(x')`; [`AttributeCall::run_with_convergence_delta`] reports the difference.
//!
//! [`AttributeCall::run_exact`] computes the limit of this sum exactly on piecewise-linear
//! networks (ReLU, max pools; not in Captum): `Σ_pieces ∂F/∂h(mid) · (h(end) − h(start))` over
//! the pieces of the path on which the network is affine.

use burn::tensor::backend::AutodiffBackend;

use crate::call::{AttributeCall, Explained};
use crate::engine::PathSpace;
use crate::path_method::{Finish, PathMethod, Points, Running};
use crate::{Explainable, InfluenceError};

/// The formula above: `n_steps + 1` points of the rule on the input-space path (its weights
/// unused), each gradient times the layer's difference to the next point, summed over the
/// `n_steps` intervals; its sum over the neurons approximates `F(x) − F(x')`, hence a
/// convergence delta.
pub(crate) const LAYER_CONDUCTANCE: PathMethod = PathMethod {
    name: "LayerConductance",
    points: Points::Intervals,
    space: PathSpace::Input,
    running: Running::GradientTimesDifference,
    finish: Finish::Integral,
    convergence_delta: true,
    paper_options: false,
};

/// Layer Conductance of one layer of a model. See the [module docs](self).
///
/// Its [`attribute`](Self::attribute) call takes Captum's arguments (`baselines`, `target`,
/// `additional_forward_args`, `n_steps` default 50, `method` default Gauss-Legendre,
/// `internal_batch_size`, `attribute_to_layer_input`) and returns one tensor per tensor of the
/// layer, `[batch, ...]` like it; `run_with_convergence_delta` also returns the delta
/// (Captum's `return_convergence_delta=True`).
///
/// ```ignore
/// let lc = LayerConductance::new(&model, "conv2")?;
/// let (attr, delta) = lc.attribute(images).target(3).run_with_convergence_delta()?;
/// ```
///
/// `internal_batch_size` counts the rows of a pass as in Captum: each pass evaluates one point
/// more than it has intervals (the next pass starts at that point again).
pub struct LayerConductance<B: AutodiffBackend, M: Explainable<B>> {
    explained: Explained<B, M>,
}

impl<B: AutodiffBackend, M: Explainable<B>> LayerConductance<B, M> {
    /// Explains layer `layer` of `model` (Captum's `LayerConductance(forward_func, layer)`),
    /// on a copy of the model in inference mode.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, [layer])?,
        })
    }

    /// Explains several layers in one pass per chunk, as
    /// [`InternalInfluence::with_layers`](crate::InternalInfluence::with_layers) does: the
    /// call's [`run_layers`](AttributeCall::run_layers) gives one attribution per layer.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] for a layer the model does not expose;
    /// [`InfluenceError::NoLayers`] for an empty list.
    pub fn with_layers<S: Into<String>>(
        model: &M,
        layers: impl IntoIterator<Item = S>,
    ) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, layers)?,
        })
    }

    /// The explained layer (the first, when there are several).
    pub fn layer(&self) -> &str {
        self.explained.layer()
    }

    /// Starts an attribution of `inputs` (Captum's `attribute(inputs, ...)`).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> AttributeCall<B, M> {
        self.explained.call(&LAYER_CONDUCTANCE, inputs)
    }
}
