//! What a path method is, as data: its points, the space its path runs in, how its steps are
//! split into passes, the running result each pass adds into, and what multiplies the integral
//! at the end. Each method's own file holds its [`PathMethod`] beside its formula
//! (`internal_influence.rs`, `layer_conductance.rs`, `layer_integrated_gradients.rs`); the call
//! ([`crate::call`]) plans and runs any of them, and the engine ([`crate::engine`]) runs the
//! passes.
//!
//! | method | points (`n_steps = n`) | space | steps split as | running result | finish |
//! |---|---|---|---|---|---|
//! | Internal Influence | `n` | input | points | `Σ_k w_k ∂F/∂h(α_k)` | — |
//! | Layer Conductance | `n + 1` | input | intervals | `Σ_k ∂F/∂h(α_k) · Δh_k` | — |
//! | Layer Integrated Gradients | `n` | layer | points | `Σ_k w_k ∂F/∂h(α_k)` | `· (h(x) − h(x'))` (`multiply_by_inputs`) |

use core::ops::Range;

use crate::InfluenceError;
use crate::chunking::{conductance_chunks, parallel_chunks};
use crate::engine::PathSpace;

/// One path method of Captum's layer attributions. See the [module docs](self).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PathMethod {
    /// Captum's class name, for errors.
    pub(crate) name: &'static str,
    /// How many points of the quadrature rule a call of `n_steps` asks for.
    pub(crate) points: Points,
    /// Where the path runs.
    pub(crate) space: PathSpace,
    /// The running result that each pass adds into.
    pub(crate) running: Running,
    /// What multiplies the integral once every pass has run.
    pub(crate) finish: Finish,
    /// Captum's `return_convergence_delta`: whether the call reports the difference between the
    /// attribution's sum over the neurons and `F(x) − F(x')` (Internal Influence's sum is not
    /// meant to approximate it; Captum's has no delta either).
    pub(crate) convergence_delta: bool,
    /// The paper's options (a distribution of interest other than the path,
    /// `multiply_by_activation`): Internal Influence only, as in Leino et al. 2018.
    pub(crate) paper_options: bool,
}

/// How many quadrature points a call of `n_steps` evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Points {
    /// `n_steps` points, each a step.
    Steps,
    /// `n_steps + 1` points whose `n_steps` intervals are the steps (Captum's
    /// `alphas_func(n_steps + 1)` in Layer Conductance); the rule's weights are not used.
    Intervals,
}

/// The running result of a call, per watched layer and tensor, `[batch, features]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Running {
    /// `Σ_k w_k ∂F/∂h(α_k)`, the rule's weighted sum ([`crate::sums::WeightedSums`]).
    WeightedGradients,
    /// `Σ_k ∂F/∂h(α_k) · (h(α_{k+1}) − h(α_k))` over the intervals
    /// ([`crate::sums::Differences`]).
    GradientTimesDifference,
}

/// What multiplies the integral at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Nothing: the integral is the attribution.
    Integral,
    /// `h(x) − h(x')`, the layer's own difference along the path (Layer Integrated
    /// Gradients' `multiply_by_inputs`).
    TimesLayerDifference,
}

impl PathMethod {
    /// The quadrature points of a call of `n_steps`.
    ///
    /// # Errors
    /// [`InfluenceError::TooFewSteps`] for Layer Conductance with no interval (`n_steps = 0`;
    /// `method` names the rule); [`InfluenceError::TooManySteps`] where `n_steps + 1`
    /// overflows.
    pub(crate) fn points(
        &self,
        n_steps: usize,
        method: &'static str,
    ) -> Result<usize, InfluenceError> {
        match self.points {
            Points::Steps => Ok(n_steps),
            Points::Intervals if n_steps == 0 => Err(InfluenceError::TooFewSteps {
                method,
                min: 1,
                n_steps: 0,
            }),
            Points::Intervals => n_steps.checked_add(1).ok_or(InfluenceError::TooManySteps {
                n_steps,
                max: crate::MAX_STEPS,
            }),
        }
    }

    /// The steps of a call of `n_steps` that evaluates `points` points: its points (the
    /// rule's, a given distribution's, or the exact method's one validation point), or Layer
    /// Conductance's `n_steps` intervals.
    pub(crate) fn steps(&self, n_steps: usize, points: usize) -> usize {
        match self.points {
            Points::Steps => points,
            Points::Intervals => n_steps,
        }
    }

    /// The passes of a call: ranges of its points (for intervals, each pass evaluates one point
    /// more than it has intervals, consecutive passes sharing a point: Captum's
    /// `include_endpoint`), and the threads that run them.
    ///
    /// # Errors
    /// [`InfluenceError::ZeroInternalBatchSize`] for `internal_batch_size(0)`.
    pub(crate) fn chunks(
        &self,
        steps: usize,
        batch: usize,
        internal_batch_size: Option<usize>,
        threads: usize,
    ) -> Result<(Vec<Range<usize>>, usize), InfluenceError> {
        match self.points {
            Points::Steps => parallel_chunks(steps, batch, internal_batch_size, threads),
            Points::Intervals => conductance_chunks(steps, batch, internal_batch_size, threads),
        }
    }
}
