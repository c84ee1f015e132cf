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

use core::marker::PhantomData;
use core::ops::Range;
use std::sync::Arc;

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::chunking::step_chunks;
use crate::engine::{Accumulate, Call, Deferred, Endpoints, PathSpace, SweepGraphs};
use crate::inputs::PathInputs;
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Attribution, Baselines, Eval, Explainable, ForwardArgs, InfluenceError,
    LayerGradients, LayerProbe, LayerSide, Method, Target, ToEval,
};

/// The settings of an Internal Influence attribution, with Captum's names and defaults.
#[derive(Config, Debug, PartialEq)]
pub struct InternalInfluenceConfig {
    /// Number of quadrature points (Captum's `n_steps`).
    #[config(default = 50)]
    pub n_steps: usize,
    /// Quadrature rule (Captum's `method`).
    #[config(default = "Method::GaussLegendre")]
    pub method: Method,
    /// Largest number of rows (examples × steps) alive in the forward/backward passes at
    /// once (Captum's `internal_batch_size`), shared between the [`threads`](Self::threads);
    /// `None` runs all steps at once (in one pass per thread).
    #[config(default = "None")]
    pub internal_batch_size: Option<usize>,
    /// Attribute to the layer's input instead of its output (Captum's
    /// `attribute_to_layer_input`).
    #[config(default = false)]
    pub attribute_to_layer_input: bool,
    /// Threads that run the passes, each on its own run of quadrature steps (not in Captum).
    /// `None` chooses: the machine's cores on a CPU backend (flex, ndarray, candle), one on
    /// a GPU, and never more than `n_steps`. With `internal_batch_size`, the threads share it:
    /// peak memory still follows it. On a CPU backend a call runs on a rayon pool kept per
    /// calling thread (as many workers as cores, or as threads if more), one pass per
    /// worker at a time, so that the backend's kernels split their work within it; the
    /// calling thread waits for the call.
    #[config(default = "None")]
    pub threads: Option<usize>,
}

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
    model: Arc<M::EvalModel>,
    /// One layer, or several explained in one pass ([`with_layers`](Self::with_layers)).
    layers: Arc<[String]>,
    _backend: PhantomData<B>,
}

impl<B: AutodiffBackend, M: Explainable<B>> Clone for InternalInfluence<B, M> {
    fn clone(&self) -> Self {
        Self {
            model: self.model.clone(),
            layers: self.layers.clone(),
            _backend: PhantomData,
        }
    }
}

impl<B: AutodiffBackend, M: Explainable<B>> core::fmt::Debug for InternalInfluence<B, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InternalInfluence")
            .field("layers", &self.layers)
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
        let (model, layers) = explained(model, vec![layer.into()])?;
        Ok(Self {
            model,
            layers,
            _backend: PhantomData,
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
    /// [`InfluenceError::NoLayers`] for an empty list.
    pub fn with_layers<S: Into<String>>(
        model: &M,
        layers: impl IntoIterator<Item = S>,
    ) -> Result<Self, InfluenceError> {
        let (model, layers) = explained(model, layers.into_iter().map(Into::into).collect())?;
        Ok(Self {
            model,
            layers,
            _backend: PhantomData,
        })
    }

    /// The explained layer (the first, when there are several).
    pub fn layer(&self) -> &str {
        &self.layers[0]
    }

    /// The explained layers.
    pub fn layers(&self) -> &[String] {
        &self.layers
    }

    /// Starts an attribution of `inputs` (Captum's `attribute(inputs, ...)`); set the other
    /// arguments on the returned [`AttributeCall`] and call [`run`](AttributeCall::run).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> AttributeCall<B, M> {
        AttributeCall::new(
            self.model.clone(),
            self.layers.clone(),
            PathKind::InternalInfluence,
            inputs,
        )
    }
}

/// The model's copy in inference mode on [`Eval<B>`], and the layers, checked to be ones the
/// model exposes: what every layer method's constructor does.
///
/// # Errors
/// [`InfluenceError::UnknownLayer`] when the model does not expose a layer;
/// [`InfluenceError::NoLayers`] for an empty list.
#[allow(clippy::type_complexity)]
pub(crate) fn explained<B: AutodiffBackend, M: Explainable<B>>(
    model: &M,
    layers: Vec<String>,
) -> Result<(Arc<M::EvalModel>, Arc<[String]>), InfluenceError> {
    if layers.is_empty() {
        return Err(InfluenceError::NoLayers);
    }
    if let Some((_, layer)) = layers
        .iter()
        .enumerate()
        .find(|(i, l)| layers[..*i].contains(l))
    {
        return Err(InfluenceError::RepeatedLayer {
            name: layer.clone(),
        });
    }
    let available = model.layer_names();
    if let Some(layer) = layers.iter().find(|l| !available.contains(l)) {
        return Err(InfluenceError::UnknownLayer {
            name: layer.clone(),
            available,
        });
    }
    Ok((Arc::new(model.to_eval_model()), layers.into()))
}

/// Which path method an [`AttributeCall`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// [`InternalInfluence`].
    InternalInfluence,
    /// [`LayerConductance`](crate::LayerConductance).
    Conductance,
    /// [`LayerIntegratedGradients`](crate::LayerIntegratedGradients).
    IntegratedGradients {
        /// Multiply the integrated gradients by `h(x) − h(x')`.
        multiply_by_inputs: bool,
    },
}

impl PathKind {
    fn name(self) -> &'static str {
        match self {
            PathKind::InternalInfluence => "InternalInfluence",
            PathKind::Conductance => "LayerConductance",
            PathKind::IntegratedGradients { .. } => "LayerIntegratedGradients",
        }
    }
}

/// One `attribute` call of a path method (Internal Influence, Layer Conductance, Layer
/// Integrated Gradients) being set up; every argument but `inputs` has Captum's default.
///
/// It owns what it needs (the method's model copy and layers are shared, reference-counted),
/// so it can be kept in a variable, set up over several statements, and outlive the method:
///
/// ```ignore
/// let mut call = InternalInfluence::new(&model, "layer3")?.attribute(images).target(Target::Predicted);
/// if let Some(m) = chunk {
///     call = call.internal_batch_size(m);
/// }
/// let attribution = call.run()?;
/// ```
pub struct AttributeCall<B: AutodiffBackend, M: Explainable<B>> {
    model: Arc<M::EvalModel>,
    layers: Arc<[String]>,
    kind: PathKind,
    inputs: M::Inputs,
    baselines: Baselines<B>,
    /// A target read from a tensor may have failed to read; the error is returned by `run`.
    target: Result<Target, InfluenceError>,
    args: Option<M::Args>,
    config: InternalInfluenceConfig,
    progress: Option<crate::engine::ProgressFn>,
}

impl<B, M> AttributeCall<B, M>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    pub(crate) fn new(
        model: Arc<M::EvalModel>,
        layers: Arc<[String]>,
        kind: PathKind,
        inputs: M::Inputs,
    ) -> Self {
        AttributeCall {
            model,
            layers,
            kind,
            inputs,
            baselines: Baselines::zeros(),
            target: Ok(Target::None),
            args: None,
            config: InternalInfluenceConfig::new(),
            progress: None,
        }
    }

    /// Calls `progress(passes_done, passes)` after each forward/backward pass of the call
    /// (a chunk of quadrature steps: with `internal_batch_size`, `n_steps` steps take several
    /// passes), from the thread that ran the pass. For progress bars over long calls; the
    /// call's result does not depend on it.
    pub fn progress(mut self, progress: impl Fn(usize, usize) + Send + Sync + 'static) -> Self {
        self.progress = Some(std::sync::Arc::new(progress));
        self
    }

    /// Where the path starts (Captum's `baselines`, default zeros): a scalar (`f32` or
    /// `f64`), a tensor of the input's shape or with first dim 1, or one [`crate::Baseline`]
    /// per input.
    pub fn baselines(mut self, baselines: impl Into<Baselines<B>>) -> Self {
        self.baselines = baselines.into();
        self
    }

    /// Which output value to explain (Captum's `target`, default none): an index (`3`), a
    /// tuple shared by every example (`(1, 0)`), one class per example (`vec![2, 7, 0]`), or
    /// any [`Target`]. See the [`target` module docs](crate::Target).
    pub fn target(mut self, target: impl Into<Target>) -> Self {
        self.target = Ok(target.into());
        self
    }

    /// One class per example, from an integer tensor: the `[batch]` or `[batch, 1]` output of
    /// `argmax(1)`, of any backend (Captum's tensor `target`). Reads the tensor (a
    /// synchronous read; on WebGPU in a browser use [`Target::from_tensor_async`] and
    /// [`target`](Self::target)).
    pub fn target_tensor<B2: Backend, const D: usize>(
        mut self,
        target: Tensor<B2, D, Int>,
    ) -> Self {
        self.target = Target::from_tensor(target);
        self
    }

    /// The forward's non-attributed arguments (Captum's `additional_forward_args`). A
    /// tensor whose dim 0 is the batch is repeated once per quadrature step; anything else
    /// is passed unchanged (see [`ForwardArgs`]).
    pub fn additional_forward_args(mut self, args: M::Args) -> Self {
        self.args = Some(args);
        self
    }

    /// Number of quadrature points (default 50).
    pub fn n_steps(mut self, n_steps: usize) -> Self {
        self.config.n_steps = n_steps;
        self
    }

    /// Quadrature rule (default Gauss-Legendre).
    pub fn method(mut self, method: Method) -> Self {
        self.config.method = method;
        self
    }

    /// Largest number of rows (examples × steps) in the forward/backward passes at once,
    /// all threads together; see [`InternalInfluenceConfig::internal_batch_size`].
    pub fn internal_batch_size(mut self, internal_batch_size: usize) -> Self {
        self.config.internal_batch_size = Some(internal_batch_size);
        self
    }

    /// Attribute to the layer's input instead of its output (default false).
    pub fn attribute_to_layer_input(mut self, yes: bool) -> Self {
        self.config.attribute_to_layer_input = yes;
        self
    }

    /// Threads for the passes (default: the machine's cores on a CPU backend, one on a GPU);
    /// see [`InternalInfluenceConfig::threads`]. `threads(1)` runs one
    /// pass at a time (on a CPU backend its kernels still use every core); 0 is taken as 1,
    /// and more threads than `n_steps` as `n_steps`.
    pub fn threads(mut self, threads: usize) -> Self {
        self.config.threads = Some(threads);
        self
    }

    /// Replaces all the settings at once.
    pub fn config(mut self, config: InternalInfluenceConfig) -> Self {
        self.config = config;
        self
    }

    /// Computes the attribution.
    ///
    /// Reads from the device once, at the end, for the checks that need values; the result
    /// stays on the device. On WebGPU in a browser, where synchronous reads fail, use
    /// [`run_async`](Self::run_async).
    ///
    /// # Shapes
    /// - returns: one tensor per tensor of the layer's output (or input), each shaped like
    ///   it with the caller's batch: `[batch, ...]`.
    ///
    /// # Errors
    /// Every [`InfluenceError`] about `inputs`, `baselines`, `target`, `n_steps`, `method`,
    /// `internal_batch_size`, `additional_forward_args` and the layer;
    /// [`InfluenceError::Forward`] when the model's forward fails on the inputs;
    /// [`InfluenceError::NotInferenceFunction`] when the model's output for an example
    /// depends on the rest of the batch or on random draws.
    pub fn run(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        self.single_layer()?;
        let (attributions, checks, _) = self.compute(false)?;
        checks.check()?;
        Ok(attributions.into_iter().next().expect("one layer"))
    }

    /// Computes the attribution of every explained layer (see
    /// [`InternalInfluence::with_layers`]), in the order given, from one forward/backward
    /// pass per chunk.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_layers(self) -> Result<Vec<Attribution<B::InnerBackend>>, InfluenceError> {
        let (attributions, checks, _) = self.compute(false)?;
        checks.check()?;
        Ok(attributions)
    }

    /// `run` and `run_with_convergence_delta` give one layer's attribution.
    fn single_layer(&self) -> Result<(), InfluenceError> {
        match self.layers.len() {
            1 => Ok(()),
            n => Err(InfluenceError::SeveralLayers { layers: n }),
        }
    }

    /// [`run`](Self::run) without a blocking read: the one read is awaited.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_async(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        self.single_layer()?;
        let (attributions, checks, _) = self.compute(false)?;
        checks.check_async().await?;
        Ok(attributions.into_iter().next().expect("one layer"))
    }

    /// Chooses `n_steps` for a relative accuracy `rtol` instead of taking it (not in
    /// Captum): computes the attribution with 4, 8, 16, … points of the call's `method`,
    /// doubling until two successive results differ by at most `rtol`, and returns the finer
    /// one, the points it used and the difference as its error estimate. The difference is
    /// measured per example, relative (`‖a_2n − a_n‖₂ / ‖a_2n‖₂` over every value of the
    /// layer), and the largest over the batch is compared with `rtol`. The call's `n_steps`
    /// is not used; every other setting is. See `docs/quadrature.md` for the method, what it
    /// costs (about twice the final points, since Gauss-Legendre points are not nested) and
    /// its limits.
    ///
    /// Reads from the device after each level (a synchronous read).
    ///
    /// # Errors
    /// As [`run`](Self::run); [`InfluenceError::BadTolerance`] for an `rtol` that is not a
    /// positive finite number; [`InfluenceError::ToleranceNotReached`] when
    /// [`MAX_TOLERANCE_STEPS`] points are not enough.
    pub fn run_to_tolerance(self, rtol: f64) -> Result<Converged<B::InnerBackend>, InfluenceError> {
        if !(rtol.is_finite() && rtol > 0.0) {
            return Err(InfluenceError::BadTolerance { rtol });
        }
        self.single_layer()?;
        let mut n = 4;
        let mut coarse = self.at_steps(n).run()?;
        loop {
            let fine = self.at_steps(2 * n).run()?;
            let estimate = relative_difference(&coarse, &fine)?;
            n *= 2;
            if estimate.is_nan() {
                // A non-finite attribution (the model's own NaN or infinity): no estimate.
                return Err(InfluenceError::ToleranceNotReached {
                    rtol,
                    n_steps: n,
                    estimate,
                });
            }
            if estimate <= rtol {
                return Ok(Converged {
                    attribution: fine,
                    n_steps: n,
                    error_estimate: estimate,
                });
            }
            if 2 * n > MAX_TOLERANCE_STEPS {
                return Err(InfluenceError::ToleranceNotReached {
                    rtol,
                    n_steps: n,
                    estimate,
                });
            }
            coarse = fine;
        }
    }

    /// A copy of the call with `n_steps` points.
    fn at_steps(&self, n_steps: usize) -> Self {
        Self {
            model: self.model.clone(),
            layers: self.layers.clone(),
            kind: self.kind,
            inputs: self.inputs.clone(),
            baselines: self.baselines.clone(),
            target: self.target.clone(),
            args: self.args.clone(),
            config: self.config.clone().with_n_steps(n_steps),
            progress: self.progress.clone(),
        }
    }

    /// [`run`](Self::run), also returning the convergence delta (Captum's
    /// `return_convergence_delta=True`): per example, the sum of the attribution over all the
    /// layer's values minus `F_target(x) − F_target(x')` (Captum's
    /// `compute_convergence_delta`). It measures how far the attribution is from
    /// completeness; it shrinks as `n_steps` grows.
    ///
    /// # Shapes
    /// - returns: the attribution, and the delta `[batch]`
    ///
    /// # Errors
    /// As [`run`](Self::run); [`InfluenceError::NoConvergenceDelta`] for Internal Influence,
    /// which has none in Captum.
    #[allow(clippy::type_complexity)]
    pub fn run_with_convergence_delta(
        self,
    ) -> Result<(Attribution<B::InnerBackend>, Tensor<B::InnerBackend, 1>), InfluenceError> {
        self.single_layer()?;
        let (attributions, checks, delta) = self.compute(true)?;
        checks.check()?;
        let attribution = attributions.into_iter().next().expect("one layer");
        Ok((attribution, delta.expect("asked for")))
    }

    /// Every host-side check, then the passes, without reading back; with `delta`, also the
    /// convergence delta.
    #[allow(clippy::type_complexity)]
    fn compute(
        self,
        delta: bool,
    ) -> Result<
        (
            Vec<Attribution<B::InnerBackend>>,
            Deferred<B::InnerBackend>,
            Option<Tensor<B::InnerBackend, 1>>,
        ),
        InfluenceError,
    > {
        if delta && self.kind == PathKind::InternalInfluence {
            return Err(InfluenceError::NoConvergenceDelta {
                method: self.kind.name(),
            });
        }
        let config = self.config;
        // Conductance evaluates n_steps + 1 points and uses their differences (Captum's
        // `alphas_func(n_steps + 1)`); the weights are not used.
        if self.kind == PathKind::Conductance && config.n_steps == 0 {
            // No interval between points: nothing to attribute.
            return Err(InfluenceError::TooFewSteps {
                method: config.method.name(),
                min: 1,
                n_steps: 0,
            });
        }
        let points = match self.kind {
            PathKind::Conductance => {
                config
                    .n_steps
                    .checked_add(1)
                    .ok_or(InfluenceError::TooManySteps {
                        n_steps: config.n_steps,
                        max: crate::MAX_STEPS,
                    })?
            }
            _ => config.n_steps,
        };
        let rule = config.method.rule(points)?;
        let target = self.target?;
        let inputs: EvalInputs<B, M> = self.inputs.to_eval();
        // Whatever this call records in Burn's graph server is freed when it returns.
        let _sweep =
            SweepGraphs::<Eval<B>>::on(collect(&inputs).first().map(|t| t.flat().device()));
        let path = PathInputs::new(collect(&inputs), &self.baselines.to_eval())?;
        let batch = path.batch();
        target.check_count(batch)?;
        let device = collect(&inputs)[0].flat().device();
        let threads = config
            .threads
            .unwrap_or_else(|| default_threads::<B>(&device))
            .clamp(1, config.n_steps.max(1));
        let (chunks, threads) = match self.kind {
            // Chunks of intervals between consecutive points; each pass also evaluates the
            // point that ends its last interval (Captum's `include_endpoint`).
            PathKind::Conductance => {
                conductance_chunks(config.n_steps, batch, config.internal_batch_size, threads)?
            }
            _ => parallel_chunks(config.n_steps, batch, config.internal_batch_size, threads)?,
        };
        let args: EvalArgs<B, M> = match self.args {
            Some(args) => args.to_eval(),
            None => EvalArgs::<B, M>::when_absent().ok_or(InfluenceError::MissingForwardArgs)?,
        };
        let side = LayerSide::from_attribute_to_layer_input(config.attribute_to_layer_input);
        let layers: Vec<(String, LayerSide)> =
            self.layers.iter().map(|l| (l.clone(), side)).collect();
        let n = rule.alphas().len();
        let weights = Tensor::<B::InnerBackend, 1>::from_data(
            TensorData::new(rule.weights().to_vec(), [n]),
            &device,
        );
        let space = match self.kind {
            PathKind::IntegratedGradients { .. } => PathSpace::Layer,
            _ => PathSpace::Input,
        };
        let call: Call<Eval<B>, M::EvalModel> = Call {
            inputs,
            path,
            args,
            target,
            layers: layers.clone(),
            alphas: rule.alphas().to_vec(),
            chunks,
            space,
            endpoints: delta,
            progress: self.progress,
        };
        let (sums, checks, ends) = match self.kind {
            PathKind::Conductance => {
                let new_sums = || Differences(Sums::new(batch, layers.len()));
                let (sums, checks, ends) = call.run(&self.model, threads, new_sums)?;
                (sums.0, checks, ends)
            }
            _ => {
                let new_sums = || WeightedSums {
                    weights: weights.clone(),
                    sums: Sums::new(batch, layers.len()),
                };
                let (sums, checks, ends) = call.run(&self.model, threads, new_sums)?;
                (sums.sums, checks, ends)
            }
        };
        let mut per_layer: Vec<_> = sums.layers;
        if let (
            PathKind::IntegratedGradients {
                multiply_by_inputs: true,
            },
            Some(ends),
        ) = (self.kind, &ends)
        {
            per_layer = per_layer
                .into_iter()
                .zip(&ends.layers)
                .map(|(tensors, ends)| multiply_by_layer_difference::<B>(tensors, ends))
                .collect();
        }
        let delta = match (&ends, delta) {
            (Some(ends), true) => Some(convergence_delta::<B>(&per_layer[0], ends)),
            _ => None,
        };
        let attributions = layers
            .into_iter()
            .zip(per_layer)
            .map(|((layer, side), tensors)| Attribution {
                layer,
                side,
                tensors: tensors
                    .into_iter()
                    .map(|(flat, shape)| AnyTensor::from_flat(flat, shape))
                    .collect(),
            })
            .collect();
        Ok((attributions, checks, delta))
    }
}

/// The most points [`AttributeCall::run_to_tolerance`] tries (the last level it computes).
pub const MAX_TOLERANCE_STEPS: usize = 4096;

/// An attribution computed to a tolerance ([`AttributeCall::run_to_tolerance`]).
#[derive(Debug, Clone)]
pub struct Converged<B: Backend> {
    /// The attribution at [`n_steps`](Self::n_steps) points.
    pub attribution: Attribution<B>,
    /// The points used for it.
    pub n_steps: usize,
    /// Its estimated relative error: the largest over the examples of
    /// `‖a(n_steps) − a(n_steps / 2)‖₂ / ‖a(n_steps)‖₂`. It measures the error of the coarser
    /// result: for a smooth integrand it overestimates the returned one's, but where the
    /// integrand jumps (a ReLU network) the rule converges at first order and it is about the
    /// returned one's error (see `docs/quadrature.md`).
    pub error_estimate: f64,
}

/// The largest over the examples of `‖fine − coarse‖₂ / ‖fine‖₂`, every tensor of the layer
/// together (0 for an example whose attribution is zero at both).
fn relative_difference<B: Backend>(
    coarse: &Attribution<B>,
    fine: &Attribution<B>,
) -> Result<f64, InfluenceError> {
    let mut diff: Option<Tensor<B, 1>> = None;
    let mut norm: Option<Tensor<B, 1>> = None;
    for (c, f) in coarse.tensors.iter().zip(&fine.tensors) {
        let (c, f) = (c.flat().clone(), f.flat().clone());
        let batch = f.dims()[0];
        let d = (f.clone() - c).powi_scalar(2).sum_dim(1).reshape([batch]);
        let n = f.powi_scalar(2).sum_dim(1).reshape([batch]);
        diff = Some(diff.map_or(d.clone(), |s| s + d));
        norm = Some(norm.map_or(n.clone(), |s| s + n));
    }
    let (diff, norm) = (diff.expect("a tensor"), norm.expect("a tensor"));
    let read = |t: Tensor<B, 1>| -> Result<Vec<f64>, InfluenceError> {
        Ok(t.into_data().convert::<f64>().to_vec::<f64>()?)
    };
    let (diff, norm) = (read(diff)?, read(norm)?);
    Ok(diff
        .iter()
        .zip(&norm)
        .map(|(d, n)| if *d == 0.0 { 0.0 } else { (d / n).sqrt() })
        // A NaN (non-finite attribution) wins, so that it cannot pass for converged.
        .fold(0.0, |m: f64, r| {
            if r.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(r)
            }
        }))
}

/// `attr · (h(x) − h(x'))`, tensor by tensor (Layer Integrated Gradients'
/// `multiply_by_inputs`).
#[allow(clippy::type_complexity)]
fn multiply_by_layer_difference<B: AutodiffBackend>(
    tensors: Vec<(Tensor<B::InnerBackend, 2>, Vec<usize>)>,
    ends: &[(Tensor<Eval<B>, 2>, Tensor<Eval<B>, 2>)],
) -> Vec<(Tensor<B::InnerBackend, 2>, Vec<usize>)> {
    tensors
        .into_iter()
        .zip(ends)
        .map(|((sum, shape), (start, end))| {
            let diff = (end.clone() - start.clone()).inner();
            (sum * diff, shape)
        })
        .collect()
}

/// Captum's `compute_convergence_delta`: per example, the attribution summed over every value
/// of every tensor, minus `F_target(x) − F_target(x')`.
fn convergence_delta<B: AutodiffBackend>(
    tensors: &[(Tensor<B::InnerBackend, 2>, Vec<usize>)],
    ends: &Endpoints<Eval<B>>,
) -> Tensor<B::InnerBackend, 1> {
    let total = tensors
        .iter()
        .map(|(t, _)| {
            let batch = t.dims()[0];
            t.clone().sum_dim(1).reshape([batch])
        })
        .reduce(|a, b| a + b)
        .expect("a layer has at least one tensor");
    total - ends.output_difference()
}

/// Per watched layer, per tensor of the layer, a running `[batch, features]` sum and the
/// tensor's full shape.
struct Sums<B: Backend> {
    batch: usize,
    layers: Vec<Vec<(Tensor<B, 2>, Vec<usize>)>>,
}

impl<B: Backend> Sums<B> {
    fn new(batch: usize, layers: usize) -> Self {
        Self {
            batch,
            layers: (0..layers).map(|_| Vec::new()).collect(),
        }
    }

    /// Adds `part` to the sum of tensor `k` of layer `l` (the first part starts it).
    fn add_part(&mut self, l: usize, k: usize, part: Tensor<B, 2>, shape: Vec<usize>) {
        match self.layers[l].get_mut(k) {
            Some((sum, _)) => *sum = sum.clone() + part,
            None => self.layers[l].push((part, shape)),
        }
    }

    fn merge(&mut self, later: Self) {
        for (l, tensors) in later.layers.into_iter().enumerate() {
            for (k, (part, shape)) in tensors.into_iter().enumerate() {
                self.add_part(l, k, part, shape);
            }
        }
    }

    /// The full shape of a pass's tensor with the caller's batch.
    fn shape_of<T: Backend>(&self, g: &AnyTensor<T>) -> Vec<usize> {
        let mut shape = g.shape().to_vec();
        shape[0] = self.batch;
        shape
    }
}

/// Layer Conductance's running result (Captum's `LayerConductance._attribute`):
/// `Σ_k ∂F/∂h(α_k) · (h(α_{k+1}) − h(α_k))` over the intervals of the chunks seen.
struct Differences<B: Backend>(Sums<B>);

impl<B: AutodiffBackend> Accumulate<B> for Differences<B::InnerBackend> {
    fn add(&mut self, chunk: Range<usize>, pass: LayerGradients<B>) {
        let (points, batch) = (chunk.len(), self.0.batch);
        for (l, lg) in pass.layers.into_iter().enumerate() {
            for (k, (g, h)) in lg.gradients.into_iter().zip(lg.values).enumerate() {
                let shape = self.0.shape_of(&g);
                let features = g.features();
                let width = batch * features;
                let g = g.into_flat().reshape([points, width]);
                let h = h.into_flat().reshape([points, width]);
                let steps = points - 1;
                let diff = h.clone().slice(1..points) - h.slice(0..steps);
                let part = (g.slice(0..steps) * diff)
                    .sum_dim(0)
                    .reshape([batch, features]);
                self.0.add_part(l, k, part, shape);
            }
        }
    }

    fn merge(&mut self, later: Self) {
        self.0.merge(later.0);
    }
}

/// Internal Influence's (and Layer Integrated Gradients') running result: per layer tensor,
/// `Σ_k w_k ∂F/∂h(α_k)` over the steps seen, `[batch, features]`.
struct WeightedSums<B: Backend> {
    weights: Tensor<B, 1>,
    sums: Sums<B>,
}

impl<B: AutodiffBackend> Accumulate<B> for WeightedSums<B::InnerBackend> {
    fn add(&mut self, chunk: Range<usize>, pass: LayerGradients<B>) {
        let (steps, batch) = (chunk.len(), self.sums.batch);
        let w = self.weights.clone().slice(chunk).reshape([1, steps]);
        for (l, lg) in pass.layers.into_iter().enumerate() {
            for (k, g) in lg.gradients.into_iter().enumerate() {
                let shape = self.sums.shape_of(&g);
                let per_example = g.features();
                // [1, steps] x [steps, batch * features]: the weighted sum over the steps.
                let part = w
                    .clone()
                    .matmul(g.into_flat().reshape([steps, batch * per_example]))
                    .reshape([batch, per_example]);
                self.sums.add_part(l, k, part, shape);
            }
        }
    }

    fn merge(&mut self, later: Self) {
        self.sums.merge(later.sums);
    }
}

/// Whether `B` is one of Burn's CPU backends (recognised by name, through any decorators and
/// autodiff: flex, ndarray, candle).
pub(crate) fn cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    ["flex", "ndarray", "candle"]
        .iter()
        .any(|b| name.contains(b))
}

/// The threads a call uses when the caller does not say: the machine's cores on Burn's CPU
/// backends (recognised by name: flex, ndarray, candle), one elsewhere (a GPU runs one pass
/// at a time best).
pub(crate) fn default_threads<B: Backend>(device: &B::Device) -> usize {
    if cpu_backend::<B>(device) {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}

/// Layer Conductance's chunks: ranges of its `n_steps + 1` points, each pass evaluating one
/// point more than it has intervals, consecutive passes sharing a point (Captum's
/// `include_endpoint`); and the threads that run them. With `internal_batch_size = m`, every
/// pass has at least two points (`2 · batch` rows; Captum warns below that, and so does this),
/// and the threads share `m` so that the rows alive at once stay within `max(m, 2 · batch)`.
fn conductance_chunks(
    n_steps: usize,
    batch: usize,
    internal_batch_size: Option<usize>,
    threads: usize,
) -> Result<(Vec<Range<usize>>, usize), InfluenceError> {
    let batch = batch.max(1);
    let (intervals, threads) = match internal_batch_size {
        None => parallel_chunks(n_steps, batch, None, threads)?,
        Some(0) => return Err(InfluenceError::ZeroInternalBatchSize),
        Some(m) => {
            if m < 2 * batch {
                log::warn!(
                    "internal_batch_size ({m}) is smaller than two steps of the batch ({batch}); \
                     Layer Conductance uses two points ({} rows) per pass",
                    2 * batch
                );
            }
            let threads = (m / (2 * batch)).clamp(1, threads);
            // Points per pass, per thread; one interval fewer.
            let per_pass = (m / threads / batch).max(2) - 1;
            let chunks = step_chunks(n_steps, 1, Some(per_pass))?;
            if chunks.len() >= threads {
                (chunks, threads)
            } else {
                (
                    step_chunks(n_steps, 1, Some(n_steps.div_ceil(threads)))?,
                    threads,
                )
            }
        }
    };
    let points = intervals.into_iter().map(|c| c.start..c.end + 1).collect();
    Ok((points, threads))
}

/// The chunks of a call, and the threads that run them. `internal_batch_size` is shared
/// between the threads: each thread's passes have at most `internal_batch_size / threads`
/// rows, and no more threads run than it has room for (one step, `batch` rows, each), so the
/// rows alive at once stay within `max(internal_batch_size, batch)`, as on one thread. Each
/// thread gets at least one chunk.
fn parallel_chunks(
    n_steps: usize,
    batch: usize,
    internal_batch_size: Option<usize>,
    threads: usize,
) -> Result<(Vec<Range<usize>>, usize), InfluenceError> {
    let (per_thread, threads) = match internal_batch_size {
        // (`Some(0)` reaches `step_chunks` as given, which refuses it.)
        Some(m) => match (m / batch.max(1)).clamp(1, threads) {
            // The caller's own value, so that a too-small one is reported as given.
            1 => (Some(m), 1),
            t => (Some(m / t), t),
        },
        None => (None, threads),
    };
    let chunks = step_chunks(n_steps, batch, per_thread)?;
    if chunks.len() >= threads {
        return Ok((chunks, threads));
    }
    // Fewer chunks than threads: one run of near-equal length per thread instead.
    let chunks = step_chunks(n_steps, 1, Some(n_steps.div_ceil(threads)))?;
    Ok((chunks, threads))
}

/// The inputs of `M`'s copy on [`Eval<B>`].
pub(crate) type EvalInputs<B, M> =
    <<M as Explainable<B>>::EvalModel as LayerProbe<Eval<B>>>::Inputs;
/// The additional forward arguments of `M`'s copy on [`Eval<B>`].
pub(crate) type EvalArgs<B, M> = <<M as Explainable<B>>::EvalModel as LayerProbe<Eval<B>>>::Args;

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows alive at once: the largest chunk (× batch) times the threads that run.
    fn rows_alive(chunks: &[Range<usize>], threads: usize, batch: usize) -> usize {
        let largest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        largest * batch * threads.min(chunks.len())
    }

    #[test]
    fn parallel_chunks_cover_the_steps_in_order() {
        for (n, batch, m, threads) in [(50, 4, None, 2), (50, 4, Some(40), 2), (7, 3, Some(5), 4)] {
            let (chunks, _) = parallel_chunks(n, batch, m, threads).unwrap();
            let steps: Vec<usize> = chunks.iter().flat_map(|c| c.clone()).collect();
            assert_eq!(steps, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn threads_never_hold_more_rows_than_internal_batch_size() {
        for threads in 1..=4 {
            for batch in [1, 3, 8] {
                for m in [1, 2, 5, 8, 9, 16, 24, 100] {
                    let (chunks, t) = parallel_chunks(50, batch, Some(m), threads).unwrap();
                    assert!((1..=threads).contains(&t));
                    let alive = rows_alive(&chunks, t, batch);
                    assert!(
                        alive <= m.max(batch),
                        "threads {threads}, batch {batch}, m {m}: {alive} rows alive"
                    );
                }
            }
        }
    }

    #[test]
    fn conductance_chunks_overlap_by_one_point_and_respect_internal_batch_size() {
        for threads in 1..=3 {
            for batch in [1, 3, 8] {
                for m in [
                    None,
                    Some(1),
                    Some(5),
                    Some(16),
                    Some(17),
                    Some(48),
                    Some(1000),
                ] {
                    let (chunks, t) = conductance_chunks(23, batch, m, threads).unwrap();
                    // Each interval k..k+1 of the 24 points in exactly one chunk.
                    let intervals: Vec<usize> =
                        chunks.iter().flat_map(|c| c.start..c.end - 1).collect();
                    assert_eq!(intervals, (0..23).collect::<Vec<_>>(), "{chunks:?}");
                    assert!(chunks.iter().all(|c| c.len() >= 2));
                    if let Some(m) = m {
                        let alive = rows_alive(&chunks, t, batch);
                        assert!(
                            alive <= m.max(2 * batch),
                            "threads {threads}, batch {batch}, m {m}: {alive} rows alive"
                        );
                    }
                }
            }
        }
        assert!(matches!(
            conductance_chunks(5, 2, Some(0), 1),
            Err(InfluenceError::ZeroInternalBatchSize)
        ));
    }

    #[test]
    fn without_internal_batch_size_every_thread_gets_a_chunk() {
        let (chunks, t) = parallel_chunks(50, 4, None, 2).unwrap();
        assert_eq!((t, chunks), (2, vec![0..25, 25..50]));
        let (chunks, t) = parallel_chunks(50, 4, Some(400), 2).unwrap();
        assert_eq!((t, chunks), (2, vec![0..25, 25..50]));
        assert!(matches!(
            parallel_chunks(50, 4, Some(0), 2),
            Err(InfluenceError::ZeroInternalBatchSize)
        ));
    }
}
