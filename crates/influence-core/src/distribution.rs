//! Where the gradients are taken: the *distribution of interest* of Leino et al. (2018),
//! "Influence-Directed Explanations for Deep Convolutional Networks" (arXiv:1802.03788), §2.
//!
//! The paper's influence of a neuron `j` of a layer `h` is an expectation over a distribution
//! `P` of the gradient of a quantity of interest `q` ([`Quantity`](crate::Quantity)):
//!
//! ```text
//! χ_j = E_{z~P} [ ∂q(z) / ∂h_j ]  ≈  Σ_k w_k ∂q(z_k) / ∂h_j
//! ```
//!
//! | `Distribution` | points `z_k`, weights `w_k` | is |
//! |---|---|---|
//! | `Path` (default) | `x' + α_k (x − x')`, the quadrature rule's `(α_k, w_k)` | Captum's `InternalInfluence` (the call's `baselines`, `n_steps`, `method`) |
//! | `Point` | `x`, weight 1 | the plain gradient `∂q(x)/∂h` (Captum's `LayerGradientXActivation` with `multiply_by_inputs=False`) |
//! | `Points { points, weights }` | the given points, the given weights | any distribution given by samples: e.g. the quadrature nodes of another rule, or noisy copies of the input |
//!
//! Whatever the distribution, the call evaluates its points the same way: `internal_batch_size`
//! chunks them, `threads` run the chunks, `progress` reports each pass, and the result is one
//! tensor per tensor of the layer, `[batch, ...]` like it.
//!
//! The paper's distributional influence over a class or a dataset (its "experts") is the mean
//! over those examples of the per-example influence: stream them with
//! [`DatasetAttribution`](crate::DatasetAttribution), whose per-class summary holds that mean
//! for each channel; with `Distribution::Point` each example contributes its plain gradient,
//! with `Path` its path integral.
//!
//! The paper's *attribution* of a neuron multiplies its influence by its activation at the
//! input, `a_j = h_j(x) · χ_j`
//! ([`AttributeCall::multiply_by_activation`](crate::AttributeCall::multiply_by_activation));
//! with `Point` that is Captum's `LayerGradientXActivation`.

/// The distribution of interest of an attribution call. See the [module docs](self).
///
/// `I` is the model's input type (`M::Inputs`): a given point is a full set of inputs.
#[derive(Debug, Clone, Default)]
pub enum Distribution<I> {
    /// The straight path from the baselines to the inputs, with the call's quadrature rule
    /// (Captum's).
    #[default]
    Path,
    /// The inputs themselves: the plain gradient. The call's `baselines`, `n_steps` and
    /// `method` are not used.
    Point,
    /// Points given by the caller, each shaped like the inputs (`[batch, ...]` per input: row
    /// `i` is a point for example `i`), and one finite weight per point. The call's
    /// `baselines`, `n_steps` and `method` are not used.
    Points {
        /// The points `z_k`.
        points: Vec<I>,
        /// Their weights `w_k` (for an expectation over equally likely samples, `1 / K`
        /// each).
        weights: Vec<f64>,
    },
}

impl<I> Distribution<I> {
    /// The variant's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Distribution::Path => "Path",
            Distribution::Point => "Point",
            Distribution::Points { .. } => "Points",
        }
    }
}
