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

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::chunking::step_chunks;
use crate::gradient::layer_gradients;
use crate::inputs::PathInputs;
use crate::target::TargetSelector;
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Baselines, Expansion, ForwardArgs, InfluenceError, LayerProbe, LayerSide, Method,
    Target,
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
    /// Largest number of rows (examples × steps) in one forward/backward pass (Captum's
    /// `internal_batch_size`); `None` runs all steps in one pass.
    #[config(default = "None")]
    pub internal_batch_size: Option<usize>,
    /// Attribute to the layer's input instead of its output (Captum's
    /// `attribute_to_layer_input`).
    #[config(default = false)]
    pub attribute_to_layer_input: bool,
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
#[derive(Debug, Clone)]
pub struct InternalInfluence<B: AutodiffBackend, M> {
    model: M,
    layer: String,
    _backend: PhantomData<B>,
}

impl<B, M> InternalInfluence<B, M>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    /// Explains layer `layer` of `model` (Captum's `InternalInfluence(forward_func, layer)`).
    ///
    /// Uses a copy of the model whose parameters do not require gradients
    /// ([`Module::no_grad`]): the backward pass stops at the layer and no parameter gets a
    /// gradient.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError>
    where
        M: Module<B>,
    {
        Self::from_probe(model.clone().no_grad(), layer)
    }

    /// Like [`new`](Self::new), for a model that is not a [`Module`] (or that you already made
    /// `no_grad`); it is used as it is.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn from_probe(model: M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        let layer = layer.into();
        let available = model.layer_names();
        if !available.contains(&layer) {
            return Err(InfluenceError::UnknownLayer {
                name: layer,
                available,
            });
        }
        Ok(Self {
            model,
            layer,
            _backend: PhantomData,
        })
    }

    /// The explained layer.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Starts an attribution of `inputs` (Captum's `attribute(inputs, ...)`); set the other
    /// arguments on the returned [`AttributeCall`] and call [`run`](AttributeCall::run).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> AttributeCall<'_, B, M> {
        AttributeCall {
            ii: self,
            inputs,
            baselines: Baselines::zeros(),
            target: Target::None,
            args: None,
            config: InternalInfluenceConfig::new(),
        }
    }
}

/// One `attribute` call being set up; every argument but `inputs` has Captum's default.
pub struct AttributeCall<'a, B: AutodiffBackend, M: LayerProbe<B>> {
    ii: &'a InternalInfluence<B, M>,
    inputs: M::Inputs,
    baselines: Baselines<B>,
    target: Target,
    args: Option<M::Args>,
    config: InternalInfluenceConfig,
}

impl<'a, B, M> AttributeCall<'a, B, M>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    /// Where the path starts (Captum's `baselines`, default zeros): a scalar, a tensor of the
    /// input's shape or with first dim 1, or one [`crate::Baseline`] per input.
    pub fn baselines(mut self, baselines: impl Into<Baselines<B>>) -> Self {
        self.baselines = baselines.into();
        self
    }

    /// Which output value to explain (Captum's `target`, default none).
    pub fn target(mut self, target: impl Into<Target>) -> Self {
        self.target = target.into();
        self
    }

    /// The forward's non-attributed arguments (Captum's `additional_forward_args`).
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

    /// Largest number of rows (examples × steps) per forward/backward pass.
    pub fn internal_batch_size(mut self, internal_batch_size: usize) -> Self {
        self.config.internal_batch_size = Some(internal_batch_size);
        self
    }

    /// Attribute to the layer's input instead of its output (default false).
    pub fn attribute_to_layer_input(mut self, yes: bool) -> Self {
        self.config.attribute_to_layer_input = yes;
        self
    }

    /// Replaces all four settings at once.
    pub fn config(mut self, config: InternalInfluenceConfig) -> Self {
        self.config = config;
        self
    }

    /// Computes the attribution.
    ///
    /// Reads from the device once, to check that inputs and baselines are finite; the
    /// result stays on the device. On WebGPU in a browser, where synchronous reads fail, use
    /// [`run_async`](Self::run_async).
    ///
    /// # Shapes
    /// - returns: one tensor per tensor of the layer's output (or input), each shaped like
    ///   it with the caller's batch: `[batch, ...]`.
    ///
    /// # Errors
    /// Every [`InfluenceError`] about `inputs`, `baselines`, `target`, `n_steps`, `method`,
    /// `internal_batch_size`, `additional_forward_args` and the layer.
    pub fn run(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let prepared = self.prepare()?;
        let flags = prepared
            .path
            .finiteness()
            .try_into_data()
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        prepared.path.check_finite(&read_flags(flags)?)?;
        prepared.compute()
    }

    /// [`run`](Self::run) without a blocking read: the one read (the finiteness check) is
    /// awaited.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_async(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let prepared = self.prepare()?;
        let flags = prepared
            .path
            .finiteness()
            .into_data_async()
            .await
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        prepared.path.check_finite(&read_flags(flags)?)?;
        prepared.compute()
    }

    /// Every host-side check, before anything runs on the device.
    fn prepare(self) -> Result<Prepared<'a, B, M>, InfluenceError> {
        let config = self.config;
        let rule = config.method.rule(config.n_steps)?;
        let path = PathInputs::new(collect(&self.inputs), &self.baselines)?;
        let batch = path.batch();
        let chunks = step_chunks(config.n_steps, batch, config.internal_batch_size)?;
        self.target.check_count(batch)?;
        let args = self
            .args
            .or_else(M::Args::when_absent)
            .ok_or(InfluenceError::MissingForwardArgs)?;
        Ok(Prepared {
            ii: self.ii,
            inputs: self.inputs,
            path,
            args,
            target: self.target,
            side: LayerSide::from_attribute_to_layer_input(config.attribute_to_layer_input),
            alphas: rule.alphas().to_vec(),
            weights: rule.weights().to_vec(),
            chunks,
        })
    }
}

fn read_flags(data: TensorData) -> Result<Vec<f32>, InfluenceError> {
    data.convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| InfluenceError::Read(format!("{e:?}")))
}

/// A validated call, ready to run on the device.
struct Prepared<'a, B: AutodiffBackend, M: LayerProbe<B>> {
    ii: &'a InternalInfluence<B, M>,
    inputs: M::Inputs,
    path: PathInputs<B>,
    args: M::Args,
    target: Target,
    side: LayerSide,
    alphas: Vec<f64>,
    weights: Vec<f64>,
    chunks: Vec<core::ops::Range<usize>>,
}

impl<B, M> Prepared<'_, B, M>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    /// `Σ_k w_k ∂F_target(x' + α_k (x − x')) / ∂h`, chunk by chunk, without reading back.
    fn compute(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let batch = self.path.batch();
        let device = collect(&self.inputs)[0].flat().device();
        let n = self.alphas.len();
        let alphas = Tensor::<B, 1>::from_data(TensorData::new(self.alphas, [n]), &device);
        let weights =
            Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(self.weights, [n]), &device);
        let max_steps = self.chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut selector = TargetSelector::new(self.target, batch, max_steps);
        let layers = [(self.ii.layer.clone(), self.side)];
        let mut sums: Vec<(Tensor<B::InnerBackend, 2>, Vec<usize>)> = Vec::new();
        for chunk in self.chunks {
            let steps = chunk.len();
            let x = self
                .path
                .interpolate(self.inputs.clone(), alphas.clone().slice(chunk.clone()));
            let args = self.args.expand(&Expansion { batch, steps });
            let lg = layer_gradients(&self.ii.model, x, &args, &layers, &mut selector, steps)?
                .pop()
                .expect("one watched layer");
            let w = weights.clone().slice(chunk).reshape([1, steps]);
            for (k, g) in lg.gradients.into_iter().enumerate() {
                let mut shape = g.shape().to_vec();
                shape[0] = batch;
                let per_example = g.features();
                // [1, steps] x [steps, batch * features]: the weighted sum over the steps.
                let part = w
                    .clone()
                    .matmul(g.into_flat().reshape([steps, batch * per_example]))
                    .reshape([batch, per_example]);
                match sums.get_mut(k) {
                    Some((sum, _)) => *sum = sum.clone() + part,
                    None => sums.push((part, shape)),
                }
            }
        }
        Ok(Attribution {
            layer: self.ii.layer.clone(),
            side: self.side,
            tensors: sums
                .into_iter()
                .map(|(flat, shape)| AnyTensor::from_flat(flat, shape))
                .collect(),
        })
    }
}

/// The attribution of one layer: one tensor per tensor the layer gives (or takes), each
/// shaped like it, `[batch, ...]`.
#[derive(Debug, Clone)]
pub struct Attribution<B: Backend> {
    layer: String,
    side: LayerSide,
    tensors: Vec<AnyTensor<B>>,
}

impl<B: Backend> Attribution<B> {
    /// The explained layer.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// Whether this attributes to the layer's output or input.
    pub fn side(&self) -> LayerSide {
        self.side
    }

    /// The tensors, in the order the layer gives them.
    pub fn tensors(&self) -> &[AnyTensor<B>] {
        &self.tensors
    }

    /// The tensors, by value.
    pub fn into_tensors(self) -> Vec<AnyTensor<B>> {
        self.tensors
    }

    /// The attribution of a layer with a single tensor, at its rank `D`.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`] when the layer has several tensors,
    /// [`InfluenceError::Rank`] when its rank is not `D`.
    pub fn into_single<const D: usize>(self) -> Result<Tensor<B, D>, InfluenceError> {
        if self.tensors.len() != 1 {
            return Err(InfluenceError::NotSingle {
                count: self.tensors.len(),
            });
        }
        self.tensors
            .into_iter()
            .next()
            .expect("one tensor")
            .into_tensor()
    }
}
