//! The engine's front door: one `attribute` call of a path method (Internal Influence, Layer
//! Conductance, Layer Integrated Gradients), with Captum's arguments. A call is checked and
//! planned on the host ([`AttributeCall::plan`]: the points, weights and steps of the path),
//! then run ([`AttributeCall::compute_with`]): the engine ([`crate::engine`]) runs the passes,
//! which add into the method's running result ([`crate::sums`]), and the method's finish
//! applies.
//!
//! What each method is — its points, its space, its running result, its finish — is a
//! [`PathMethod`] in the method's own file; this file holds what they share: the settings
//! ([`InternalInfluenceConfig`]), the model copy and its layers ([`Explained`]), and every
//! setter and every `run`, written once on [`AttributeCall`].

use core::marker::PhantomData;
use std::sync::Arc;

use burn::config::Config;
use burn::tensor::{Int, Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::engine::exact::ExactStats;
use crate::engine::{Call, Deferred, ProgressFn, default_threads};
use crate::inputs::PathInputs;
use crate::noise_tunnel::{self, Noise, NoiseTunnel};
use crate::path_method::{Finish, PathMethod, Running};
use crate::setup::{eval_args, eval_inputs};
use crate::sums::{Differences, Sums, WeightedSums, convergence_delta, multiply_by_layer};
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Attribution, Baselines, Distribution, Eval, Expansion, Explainable, ForwardArgs,
    InfluenceError, LayerSide, Method, Quantity, Target, ToEval,
};

/// The settings of a path method's attribution (Internal Influence, Layer Conductance, Layer
/// Integrated Gradients), with Captum's names and defaults.
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

/// What every layer method is built from: the model's copy in inference mode on
/// [`Eval<B>`], its parameters not requiring gradients, and the explained layers, checked to be
/// ones the model exposes. Shared (reference-counted) by the method and its calls.
pub(crate) struct Explained<B: AutodiffBackend, M: Explainable<B>> {
    pub(crate) model: Arc<M::EvalModel>,
    /// One layer, or several explained in one pass.
    pub(crate) layers: Arc<[String]>,
    _backend: PhantomData<B>,
}

impl<B: AutodiffBackend, M: Explainable<B>> Clone for Explained<B, M> {
    fn clone(&self) -> Self {
        Self {
            model: self.model.clone(),
            layers: self.layers.clone(),
            _backend: PhantomData,
        }
    }
}

impl<B: AutodiffBackend, M: Explainable<B>> core::fmt::Debug for Explained<B, M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Explained")
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

impl<B: AutodiffBackend, M: Explainable<B>> Explained<B, M> {
    /// Takes the model's copy (every parameter of `model` is read first, so a freshly
    /// initialised model is explained with the weights it holds) and checks the layers.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose a layer
    /// ([`InfluenceError::LayerUnavailable`] when the model says why);
    /// [`InfluenceError::NoLayers`] for an empty list; [`InfluenceError::RepeatedLayer`] for a
    /// layer named twice.
    pub(crate) fn new<S: Into<String>>(
        model: &M,
        layers: impl IntoIterator<Item = S>,
    ) -> Result<Self, InfluenceError> {
        let layers: Vec<String> = layers.into_iter().map(Into::into).collect();
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
            if let Some(reason) = model.layer_hint(layer) {
                return Err(InfluenceError::LayerUnavailable {
                    name: layer.clone(),
                    reason,
                });
            }
            return Err(InfluenceError::UnknownLayer {
                name: layer.clone(),
                available,
            });
        }
        Ok(Self {
            model: Arc::new(model.to_eval_model()),
            layers: layers.into(),
            _backend: PhantomData,
        })
    }

    /// The first explained layer.
    pub(crate) fn layer(&self) -> &str {
        &self.layers[0]
    }

    /// A call of the path method `method` on `inputs`, every other argument at Captum's
    /// default.
    pub(crate) fn call(
        &self,
        method: &'static PathMethod,
        inputs: M::Inputs,
    ) -> AttributeCall<B, M> {
        AttributeCall::new(self.model.clone(), self.layers.clone(), method, inputs)
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
    pub(crate) model: Arc<M::EvalModel>,
    pub(crate) layers: Arc<[String]>,
    /// What the method is (its file's [`PathMethod`]).
    pub(crate) path_method: &'static PathMethod,
    pub(crate) inputs: M::Inputs,
    pub(crate) baselines: Baselines<B>,
    /// A target read from a tensor may have failed to read; the error is returned by `run`.
    pub(crate) quantity: Result<Quantity<Eval<B>>, InfluenceError>,
    pub(crate) distribution: Distribution<M::Inputs>,
    pub(crate) multiply_by_activation: bool,
    pub(crate) noise_tunnel: Option<NoiseTunnel<M::Inputs>>,
    pub(crate) args: Option<M::Args>,
    pub(crate) config: InternalInfluenceConfig,
    pub(crate) progress: Option<ProgressFn>,
}

impl<B, M> AttributeCall<B, M>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    pub(crate) fn new(
        model: Arc<M::EvalModel>,
        layers: Arc<[String]>,
        path_method: &'static PathMethod,
        inputs: M::Inputs,
    ) -> Self {
        AttributeCall {
            model,
            layers,
            path_method,
            inputs,
            baselines: Baselines::zeros(),
            quantity: Ok(Quantity::Target(Target::None)),
            distribution: Distribution::Path,
            multiply_by_activation: false,
            noise_tunnel: None,
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
        self.quantity = Ok(Quantity::Target(target.into()));
        self
    }

    /// What is differentiated, when it is not one output value (the paper's quantity of
    /// interest; replaces [`target`](Self::target)): a comparative quantity
    /// (`Quantity::comparative(3, 8)`), the top class at each point, or any function of the
    /// output. See [`Quantity`].
    pub fn quantity(mut self, quantity: Quantity<Eval<B>>) -> Self {
        self.quantity = Ok(quantity);
        self
    }

    /// Where the gradients are taken (the paper's distribution of interest, default the
    /// straight path from the baselines, as Captum): the input itself, or given points with
    /// weights. Internal Influence only. See [`Distribution`].
    pub fn distribution(mut self, distribution: Distribution<M::Inputs>) -> Self {
        self.distribution = distribution;
        self
    }

    /// Multiply the influence by the layer's activation at the input, `h(x) · χ` (the paper's
    /// attribution rather than its influence; default false). Internal Influence only; with
    /// [`Distribution::Point`] it is Captum's `LayerGradientXActivation`.
    pub fn multiply_by_activation(mut self, yes: bool) -> Self {
        self.multiply_by_activation = yes;
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
        self.quantity = Target::from_tensor(target).map(Quantity::Target);
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

    /// Runs the call on noisy copies of the inputs and combines their attributions (Captum's
    /// `NoiseTunnel` around the method: SmoothGrad, SmoothGrad², VarGrad). See
    /// [`NoiseTunnel`]. Not with [`run_with_convergence_delta`](Self::run_with_convergence_delta)
    /// or [`Distribution::Points`].
    pub fn noise_tunnel(mut self, noise_tunnel: NoiseTunnel<M::Inputs>) -> Self {
        self.noise_tunnel = Some(noise_tunnel);
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
        let c = self.compute(false)?;
        c.checks.check()?;
        Ok(c.attributions.into_iter().next().expect("one layer"))
    }

    /// Computes the attribution of every explained layer (see
    /// [`InternalInfluence::with_layers`](crate::InternalInfluence::with_layers)), in the order given, from one forward/backward
    /// pass per chunk.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_layers(self) -> Result<Vec<Attribution<B::InnerBackend>>, InfluenceError> {
        let c = self.compute(false)?;
        c.checks.check()?;
        Ok(c.attributions)
    }

    /// `run` and `run_with_convergence_delta` give one layer's attribution.
    pub(crate) fn single_layer(&self) -> Result<(), InfluenceError> {
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
        let c = self.compute(false)?;
        c.checks.check_async().await?;
        Ok(c.attributions.into_iter().next().expect("one layer"))
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
        let c = self.compute(true)?;
        c.checks.check()?;
        let attribution = c.attributions.into_iter().next().expect("one layer");
        Ok((attribution, c.delta.expect("asked for")))
    }

    /// Every host-side check, then the passes, without reading back; with `delta`, also the
    /// convergence delta.
    fn compute(self, delta: bool) -> Result<Computed<B::InnerBackend>, InfluenceError> {
        self.compute_with(delta, None)
    }

    /// The options that the call's method, or the exact integral (`exact`), does not take.
    ///
    /// # Errors
    /// [`InfluenceError::NotForMethod`], [`InfluenceError::NoConvergenceDelta`],
    /// [`InfluenceError::UnsupportedDistribution`].
    fn refuse_options(&self, delta: bool, exact: bool) -> Result<(), InfluenceError> {
        let refuse = |option: &'static str, method: &'static str| {
            Err(InfluenceError::NotForMethod { option, method })
        };
        if exact {
            match self.distribution {
                Distribution::Path => {}
                Distribution::Point => return refuse("run_exact", "Distribution::Point"),
                Distribution::Points { .. } => return refuse("run_exact", "Distribution::Points"),
            }
            if self.noise_tunnel.is_some() {
                return refuse("run_exact", "a call with a noise tunnel");
            }
            if self.multiply_by_activation {
                return refuse("multiply_by_activation", "run_exact");
            }
            // Applied to the output outside the traced forward: a kink of the quantity itself
            // (the top class switching, a softmax) would not be seen.
            match &self.quantity {
                Ok(Quantity::TopClass) => return refuse("run_exact", "Quantity::TopClass"),
                Ok(Quantity::Function(_)) => return refuse("run_exact", "Quantity::Function"),
                _ => {}
            }
        }
        let method = self.path_method;
        if delta && !method.convergence_delta {
            return Err(InfluenceError::NoConvergenceDelta {
                method: method.name,
            });
        }
        if !method.paper_options {
            if !matches!(self.distribution, Distribution::Path) {
                return Err(InfluenceError::UnsupportedDistribution {
                    method: method.name,
                    distribution: self.distribution.name(),
                });
            }
            if self.multiply_by_activation {
                return refuse("multiply_by_activation", method.name);
            }
        }
        Ok(())
    }

    /// The call's plan, on the host: the points of the passes (with given points,
    /// placeholders), their weights, the given points, and the steps.
    ///
    /// # Errors
    /// The rule's ([`Method::rule`]); [`InfluenceError::TooFewSteps`] for Layer
    /// Conductance's `n_steps = 0` and [`InfluenceError::TooManySteps`] where its
    /// `n_steps + 1` overflows; [`InfluenceError::PointWeights`] and
    /// [`InfluenceError::BadWeight`] for given points.
    fn plan(&mut self, exact: bool) -> Result<Plan<M::Inputs>, InfluenceError> {
        let n_steps = self.config.n_steps;
        let distribution = core::mem::replace(&mut self.distribution, Distribution::Path);
        let (alphas, weights, given) = match distribution {
            // The exact method chooses its points; the validation forward runs α = 0 and 1.
            Distribution::Path if exact => (vec![0.0], vec![1.0], None),
            Distribution::Path => {
                let points = self
                    .path_method
                    .points(n_steps, self.config.method.name())?;
                let rule = self.config.method.rule(points)?;
                (rule.alphas().to_vec(), rule.weights().to_vec(), None)
            }
            Distribution::Point => (vec![1.0], vec![1.0], None),
            Distribution::Points { points, weights } => {
                if points.len() != weights.len() {
                    return Err(InfluenceError::PointWeights {
                        points: points.len(),
                        weights: weights.len(),
                    });
                }
                if let Some((index, &value)) =
                    weights.iter().enumerate().find(|(_, w)| !w.is_finite())
                {
                    return Err(InfluenceError::BadWeight { index, value });
                }
                (vec![0.0; points.len()], weights, Some(points))
            }
        };
        let steps = self.path_method.steps(n_steps, alphas.len());
        Ok(Plan {
            alphas,
            weights,
            given,
            steps,
        })
    }

    /// [`compute`](Self::compute); with `exact` (a cap on pieces per example), the exact
    /// integral instead of the quadrature rule (`engine/exact.rs`), and what it found.
    pub(crate) fn compute_with(
        mut self,
        delta: bool,
        exact: Option<usize>,
    ) -> Result<Computed<B::InnerBackend>, InfluenceError> {
        self.refuse_options(delta, exact.is_some())?;
        // Off the path, the points stand alone: the baselines are not used (and at α = 1 from
        // zeros the interpolated inputs are the inputs exactly).
        let on_path = matches!(self.distribution, Distribution::Path);
        let Plan {
            alphas,
            weights,
            given,
            steps,
        } = self.plan(exact.is_some())?;
        let config = self.config;
        let method = self.path_method;
        let quantity = self.quantity?;
        // Whatever this call records in Burn's graph server is freed when it returns.
        let (inputs, _sweep) = eval_inputs::<B, M>(self.inputs);
        let baselines = if on_path {
            self.baselines.to_eval()
        } else {
            Baselines::zeros()
        };
        // Per-example targets fit the caller's batch (a noise tunnel repeats them with the
        // inputs, so they still fit after it).
        // (No inputs: `PathInputs::new` reports it.)
        let caller_batch = collect(&inputs).first().map_or(0, |x| x.batch());
        if caller_batch > 0 {
            for target in quantity.targets() {
                target.check_count(caller_batch)?;
            }
        }
        let (inputs, baselines, quantity, noise) = match self.noise_tunnel {
            None => (inputs, baselines, quantity, None),
            Some(nt) => {
                if delta {
                    return Err(InfluenceError::NotForMethod {
                        option: "run_with_convergence_delta",
                        method: "a call with a noise tunnel",
                    });
                }
                if given.is_some() {
                    return Err(InfluenceError::NotForMethod {
                        option: "noise_tunnel",
                        method: "Distribution::Points",
                    });
                }
                let noise = match nt.noise {
                    Noise::Gaussian {
                        samples,
                        stdev,
                        seed,
                    } => Noise::Gaussian {
                        samples,
                        stdev,
                        seed,
                    },
                    Noise::Given(samples) => {
                        Noise::Given(samples.into_iter().map(|s| collect(&s.to_eval())).collect())
                    }
                };
                let e = noise_tunnel::expand(inputs, baselines, quantity, noise)?;
                (
                    e.inputs,
                    e.baselines,
                    e.quantity,
                    Some((nt.nt_type, e.samples)),
                )
            }
        };
        let mut path = PathInputs::new(collect(&inputs), &baselines)?;
        if let Some(points) = given {
            let points = points.into_iter().map(|p| collect(&p.to_eval())).collect();
            path = path.with_points(points)?;
        }
        let batch = path.batch();
        let device = collect(&inputs)[0].flat().device();
        let threads = config
            .threads
            .unwrap_or_else(|| default_threads::<B>(&device))
            .clamp(1, steps.max(1));
        let (chunks, threads) = method.chunks(steps, batch, config.internal_batch_size, threads)?;
        let mut args = eval_args::<B, M>(self.args)?;
        if let Some((_, samples)) = noise {
            // Per-example arguments repeated for every noisy copy, sample-major like the
            // inputs (Captum's NoiseTunnel repeats them too).
            args = args.expand(&Expansion::new(caller_batch, samples));
        }
        let side = LayerSide::from_attribute_to_layer_input(config.attribute_to_layer_input);
        let layers: Vec<(String, LayerSide)> =
            self.layers.iter().map(|l| (l.clone(), side)).collect();
        let n = weights.len();
        let weights =
            Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(weights, [n]), &device);
        let call: Call<Eval<B>, M::EvalModel> = Call {
            inputs,
            path,
            args,
            quantity,
            layers: layers.clone(),
            alphas,
            chunks,
            space: method.space,
            endpoints: delta || self.multiply_by_activation,
            progress: self.progress,
        };
        let mut exact_stats = None;
        let (sums, checks, ends) = match (exact, method.running) {
            (Some(max_pieces), running) => {
                let conductance = running == Running::GradientTimesDifference;
                let (sums, checks, stats, ends) = call.run_exact(
                    &self.model,
                    config.internal_batch_size,
                    max_pieces,
                    conductance,
                )?;
                exact_stats = Some(stats);
                (sums, checks, ends)
            }
            (None, Running::GradientTimesDifference) => {
                let new_sums = || Differences(Sums::new(batch, layers.len()));
                let ran = call.run(&self.model, threads, new_sums)?;
                (ran.running.0, ran.checks, ran.ends)
            }
            (None, Running::WeightedGradients) => {
                let new_sums = || WeightedSums {
                    weights: weights.clone(),
                    sums: Sums::new(batch, layers.len()),
                };
                let ran = call.run(&self.model, threads, new_sums)?;
                (ran.running.sums, ran.checks, ran.ends)
            }
        };
        let mut per_layer: Vec<_> = sums.layers;
        if let (Finish::TimesLayerDifference, Some(ends)) = (method.finish, &ends) {
            per_layer = per_layer
                .into_iter()
                .zip(&ends.layers)
                .map(|(tensors, ends)| {
                    multiply_by_layer::<B>(tensors, ends, |start, end| end.clone() - start.clone())
                })
                .collect();
        }
        if let (true, Some(ends)) = (self.multiply_by_activation, &ends) {
            per_layer = per_layer
                .into_iter()
                .zip(&ends.layers)
                .map(|(tensors, ends)| multiply_by_layer::<B>(tensors, ends, |_, end| end.clone()))
                .collect();
        }
        let delta = match (&ends, delta) {
            (Some(ends), true) => Some(convergence_delta::<B>(&per_layer[0], ends)),
            _ => None,
        };
        if let Some((nt_type, samples)) = noise {
            per_layer = per_layer
                .into_iter()
                .map(|tensors| {
                    tensors
                        .into_iter()
                        .map(|t| {
                            let (flat, mut shape) = t.into_parts();
                            shape[0] /= samples;
                            AnyTensor::from_flat(
                                noise_tunnel::combine(nt_type, samples, flat),
                                shape,
                            )
                        })
                        .collect()
                })
                .collect();
        }
        let attributions = layers
            .into_iter()
            .zip(per_layer)
            .map(|((layer, side), tensors)| Attribution {
                layer,
                side,
                tensors,
            })
            .collect();
        Ok(Computed {
            attributions,
            checks,
            delta,
            exact: exact_stats,
        })
    }
}

/// A call's plan ([`AttributeCall::plan`]).
struct Plan<I> {
    /// The points of the passes, in α (with given points, placeholders).
    alphas: Vec<f64>,
    /// The rule's weights, or the given points' (not used by Layer Conductance).
    weights: Vec<f64>,
    /// The given points ([`Distribution::Points`]).
    given: Option<Vec<I>>,
    /// The steps that the passes split: points, or Layer Conductance's intervals.
    steps: usize,
}

/// What a call computed, before the checks that need values read back.
pub(crate) struct Computed<B: Backend> {
    /// One attribution per explained layer, in the order given.
    pub(crate) attributions: Vec<Attribution<B>>,
    /// The checks to read back ([`Deferred::check`]).
    pub(crate) checks: Deferred<B>,
    /// Captum's convergence delta, `[batch]`, when asked for.
    pub(crate) delta: Option<Tensor<B, 1>>,
    /// What the exact integral found, for `run_exact`.
    pub(crate) exact: Option<ExactStats>,
}
