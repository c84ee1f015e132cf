//! Layer Gradient × Activation (Shrikumar et al. 2016, arXiv:1605.01713, applied to a layer),
//! as Captum's `captum.attr.LayerGradientXActivation` computes it: one forward/backward at
//! the input,
//!
//! ```text
//! attr = ∂F_target(x) / ∂h · h(x)
//! ```
//!
//! (the gradient alone when `multiply_by_inputs` is false).

use core::ops::Range;
use std::sync::Arc;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};

use crate::call::Explained;
use crate::engine::{Accumulate, Call, Deferred, PathSpace};
use crate::inputs::PathInputs;
use crate::setup::{eval_args, eval_inputs};
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Attribution, Baselines, Eval, Explainable, InfluenceError, LayerGradients,
    LayerSide, Quantity, Target,
};

/// Layer Gradient × Activation of one layer of a model. See the [module docs](self).
///
/// ```ignore
/// let gxa = LayerGradientXActivation::new(&model, "conv2")?;
/// let attr = gxa.attribute(images).target(3).run()?;   // [batch, 32, 8, 8], like conv2
/// ```
pub struct LayerGradientXActivation<B: AutodiffBackend, M: Explainable<B>> {
    explained: Explained<B, M>,
    multiply_by_inputs: bool,
}

impl<B: AutodiffBackend, M: Explainable<B>> LayerGradientXActivation<B, M> {
    /// Explains layer `layer` of `model` (Captum's
    /// `LayerGradientXActivation(forward_func, layer)`), on a copy of the model in inference
    /// mode, multiplying by the activation (Captum's default `multiply_by_inputs=True`).
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, [layer])?,
            multiply_by_inputs: true,
        })
    }

    /// Captum's `multiply_by_inputs`: `false` gives the layer gradient alone.
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
    pub fn attribute(&self, inputs: M::Inputs) -> GradientCall<B, M> {
        GradientCall {
            model: self.explained.model.clone(),
            layer: self.explained.layer().to_string(),
            multiply_by_inputs: self.multiply_by_inputs,
            inputs,
            target: Ok(Target::None),
            args: None,
            attribute_to_layer_input: false,
        }
    }
}

/// One Layer Gradient × Activation `attribute` call being set up; every argument but
/// `inputs` has Captum's default.
pub struct GradientCall<B: AutodiffBackend, M: Explainable<B>> {
    model: Arc<M::EvalModel>,
    layer: String,
    multiply_by_inputs: bool,
    inputs: M::Inputs,
    target: Result<Target, InfluenceError>,
    args: Option<M::Args>,
    attribute_to_layer_input: bool,
}

impl<B: AutodiffBackend, M: Explainable<B>> GradientCall<B, M> {
    /// Which output value to explain (Captum's `target`); see [`Target`].
    pub fn target(mut self, target: impl Into<Target>) -> Self {
        self.target = Ok(target.into());
        self
    }

    /// One class per example from an integer tensor (`[batch]` or `[batch, 1]`).
    pub fn target_tensor<B2: Backend, const D: usize>(
        mut self,
        target: Tensor<B2, D, Int>,
    ) -> Self {
        self.target = Target::from_tensor(target);
        self
    }

    /// The forward's non-attributed arguments (Captum's `additional_forward_args`).
    pub fn additional_forward_args(mut self, args: M::Args) -> Self {
        self.args = Some(args);
        self
    }

    /// Attribute to the layer's input instead of its output (default false).
    pub fn attribute_to_layer_input(mut self, yes: bool) -> Self {
        self.attribute_to_layer_input = yes;
        self
    }

    /// Computes the attribution: one tensor per tensor of the layer, `[batch, ...]` like it.
    ///
    /// # Errors
    /// The [`InfluenceError`]s about `inputs`, `target`, `additional_forward_args` and the
    /// layer; [`InfluenceError::Forward`] when the model's forward fails on the inputs.
    pub fn run(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let (attribution, checks) = self.compute()?;
        checks.check()?;
        Ok(attribution)
    }

    /// [`run`](Self::run) without a blocking read: the one read is awaited (WebGPU in a
    /// browser).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub async fn run_async(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let (attribution, checks) = self.compute()?;
        checks.check_async().await?;
        Ok(attribution)
    }

    #[allow(clippy::type_complexity)]
    fn compute(
        self,
    ) -> Result<(Attribution<B::InnerBackend>, Deferred<B::InnerBackend>), InfluenceError> {
        let target = self.target?;
        // Whatever this call records in Burn's graph server is freed when it returns.
        let (inputs, _sweep) = eval_inputs::<B, M>(self.inputs);
        let path = PathInputs::new(collect(&inputs), &Baselines::<Eval<B>>::zeros())?;
        let batch = path.batch();
        target.check_count(batch)?;
        let args = eval_args::<B, M>(self.args)?;
        let side = LayerSide::from_attribute_to_layer_input(self.attribute_to_layer_input);
        let layer = self.layer.clone();
        // The path from zeros, at its one point α = 1: the inputs themselves.
        let call: Call<Eval<B>, M::EvalModel> = Call {
            inputs,
            path,
            args,
            quantity: Quantity::Target(target),
            layers: vec![(layer.clone(), side)],
            alphas: vec![1.0],
            chunks: core::iter::once(0..1).collect(),
            space: PathSpace::Input,
            endpoints: false,
            progress: None,
        };
        let multiply = self.multiply_by_inputs;
        let new_acc = || Products {
            multiply,
            parts: Vec::new(),
        };
        let ran = call.run(&self.model, 1, new_acc)?;
        let (products, checks) = (ran.running, ran.checks);
        let attribution = Attribution {
            layer,
            side,
            tensors: products.parts,
        };
        Ok((attribution, checks))
    }
}

/// `∂F/∂h · h` (or `∂F/∂h`) of the one pass.
struct Products<B: Backend> {
    multiply: bool,
    parts: Vec<AnyTensor<B>>,
}

impl<B: AutodiffBackend> Accumulate<B> for Products<B::InnerBackend> {
    fn add(&mut self, _: Range<usize>, pass: LayerGradients<B>) {
        let lg = pass.layers.into_iter().next().expect("one watched layer");
        for (g, h) in lg.gradients.into_iter().zip(lg.values) {
            let shape = g.shape().to_vec();
            let flat = if self.multiply {
                g.into_flat() * h.into_flat()
            } else {
                g.into_flat()
            };
            self.parts.push(AnyTensor::from_flat(flat, shape));
        }
    }

    fn merge(&mut self, later: Self) {
        self.parts.extend(later.parts);
    }
}
