//! Internal Influence (Leino et al. 2018, "Influence-Directed Explanations for Deep
//! Convolutional Networks", arXiv:1802.03788), as Captum's
//! `captum.attr.InternalInfluence` computes it.
//!
//! For a layer `h` of a model `F`, input `x`, baseline `x'` and a quadrature rule
//! `(α_k, w_k)` on [0, 1]:
//!
//! ```text
//! attr = Σ_k  w_k · ∂F_target(x' + α_k (x − x')) / ∂h
//! ```
//!
//! one value per neuron of `h`: the path integral, in input space, of the gradient of the
//! explained output with respect to the layer. (Unlike Layer Integrated Gradients there is no
//! multiplication by a difference of activations.)

use burn::tensor::backend::AutodiffBackend;

use crate::call::{AttributeCall, Explained};
use crate::engine::PathSpace;
use crate::path_method::{Finish, PathMethod, Points, Running};
use crate::{Explainable, InfluenceError};

/// The formula above: `n_steps` points of the rule on the input-space path, the weighted sum of
/// the layer's gradients, nothing multiplied at the end. Alone among the path methods it takes
/// the paper's options (a distribution of interest, `multiply_by_activation`); its sum over the
/// neurons is not `F(x) − F(x')`, so it has no convergence delta (Captum's neither).
pub(crate) const INTERNAL_INFLUENCE: PathMethod = PathMethod {
    name: "InternalInfluence",
    points: Points::Steps,
    space: PathSpace::Input,
    running: Running::WeightedGradients,
    finish: Finish::Integral,
    convergence_delta: false,
    paper_options: true,
};

/// Internal Influence of one layer of a model. See the [module docs](self).
///
/// ```ignore
/// let ii = InternalInfluence::new(&model, "conv2")?;
/// let attr = ii
///     .attribute(images)                    // [batch, 1, 8, 8]
///     .target(Target::PerExample(labels))   // one class per example
///     .n_steps(50)
///     .internal_batch_size(512)
///     .run()?;
/// let influence: Tensor<_, 4> = attr.into_single()?;   // [batch, 32, 8, 8], like conv2's output
/// ```
///
/// It explains the model's inference function (Burn's `valid()`, PyTorch's `model.eval()`):
/// BatchNorm uses its running statistics, Dropout and GaussianNoise are the identity, on a
/// copy of the model (see [`Explainable`]); the caller's model is never changed.
///
/// `Send + Sync`: one instance can serve several threads at once, shared by reference
/// (`tests/concurrency.rs`); results do not depend on which thread computes them.
pub struct InternalInfluence<B: AutodiffBackend, M: Explainable<B>> {
    explained: Explained<B, M>,
}

impl<B: AutodiffBackend, M: Explainable<B>> Clone for InternalInfluence<B, M> {
    fn clone(&self) -> Self {
        Self {
            explained: self.explained.clone(),
        }
    }
}

impl<B: AutodiffBackend, M: Explainable<B>> core::fmt::Debug for InternalInfluence<B, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InternalInfluence")
            .field("layers", &self.explained.layers)
            .finish_non_exhaustive()
    }
}

impl<B, M> InternalInfluence<B, M>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    /// Explains layer `layer` of `model` (Captum's `InternalInfluence(forward_func, layer)`).
    ///
    /// Takes a copy of the model in inference mode on [`Eval<B>`](crate::Eval), its
    /// parameters not requiring gradients: the backward pass stops at the layer and no
    /// parameter gets a gradient. Every parameter of `model` is read first, so a freshly
    /// initialised model is explained with the weights it holds.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, [layer])?,
        })
    }

    /// Explains several layers of `model` in one pass per chunk (not in Captum, whose
    /// `InternalInfluence` takes one layer): [`AttributeCall::run_layers`] returns one
    /// attribution per layer, in this order, each equal (up to rounding) to what a call for
    /// that layer alone gives. Each pass runs the forward once and the backward once, down to
    /// the earliest of the layers, instead of once per layer.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] for a layer the model does not expose;
    /// [`InfluenceError::NoLayers`] for an empty list; [`InfluenceError::RepeatedLayer`] for
    /// a layer named twice.
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

    /// The explained layers.
    pub fn layers(&self) -> &[String] {
        &self.explained.layers
    }

    /// Starts an attribution of `inputs` (Captum's `attribute(inputs, ...)`); set the other
    /// arguments on the returned [`AttributeCall`] and call [`run`](AttributeCall::run).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> AttributeCall<B, M> {
        self.explained.call(&INTERNAL_INFLUENCE, inputs)
    }
}
