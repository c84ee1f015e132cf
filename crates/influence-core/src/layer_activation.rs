//! Layer Activation, as Captum's `captum.attr.LayerActivation` computes it: the layer's
//! tensor at the input, `h(x)`, from one untracked forward. Not an attribution by itself; the
//! baseline against which the others are read (and what the paper's experts are made of).

use std::sync::Arc;

use burn::tensor::backend::AutodiffBackend;

use crate::call::Explained;
use crate::engine::{Call, Deferred, PathSpace};
use crate::gradient::check_hits;
use crate::inputs::{At, PathInputs};
use crate::setup::{eval_args, eval_inputs};
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Attribution, Baselines, Eval, Explainable, InfluenceError, LayerSide, Quantity,
    Target,
};

/// Layer Activation of one layer of a model. See the [module docs](self).
///
/// ```ignore
/// let la = LayerActivation::new(&model, "conv2")?;
/// let h = la.attribute(images).run()?;   // [batch, 32, 8, 8], conv2's output
/// ```
pub struct LayerActivation<B: AutodiffBackend, M: Explainable<B>> {
    explained: Explained<B, M>,
}

impl<B: AutodiffBackend, M: Explainable<B>> LayerActivation<B, M> {
    /// The activations of layer `layer` of `model` (Captum's
    /// `LayerActivation(forward_func, layer)`), from a copy of the model in inference mode.
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn new(model: &M, layer: impl Into<String>) -> Result<Self, InfluenceError> {
        Ok(Self {
            explained: Explained::new(model, [layer])?,
        })
    }

    /// The layer.
    pub fn layer(&self) -> &str {
        self.explained.layer()
    }

    /// Starts a call on `inputs` (Captum's `attribute(inputs, ...)`).
    ///
    /// # Shapes
    /// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
    pub fn attribute(&self, inputs: M::Inputs) -> ActivationCall<B, M> {
        ActivationCall {
            model: self.explained.model.clone(),
            layer: self.explained.layer().to_string(),
            inputs,
            args: None,
            attribute_to_layer_input: false,
        }
    }
}

/// One Layer Activation call being set up.
pub struct ActivationCall<B: AutodiffBackend, M: Explainable<B>> {
    model: Arc<M::EvalModel>,
    layer: String,
    inputs: M::Inputs,
    args: Option<M::Args>,
    attribute_to_layer_input: bool,
}

impl<B: AutodiffBackend, M: Explainable<B>> ActivationCall<B, M> {
    /// The forward's non-attributed arguments (Captum's `additional_forward_args`).
    pub fn additional_forward_args(mut self, args: M::Args) -> Self {
        self.args = Some(args);
        self
    }

    /// The layer's input instead of its output (Captum's `attribute_to_layer_input`).
    pub fn attribute_to_layer_input(mut self, yes: bool) -> Self {
        self.attribute_to_layer_input = yes;
        self
    }

    /// The activations: one tensor per tensor of the layer, `[batch, ...]`.
    ///
    /// # Errors
    /// The [`InfluenceError`]s about `inputs`, `additional_forward_args` and the layer;
    /// [`InfluenceError::Forward`] when the model's forward fails on the inputs;
    /// [`InfluenceError::OutputBatch`] when the output does not have one row per example.
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
        // Whatever this call records in Burn's graph server is freed when it returns.
        let (inputs, _sweep) = eval_inputs::<B, M>(self.inputs);
        let path = PathInputs::new(collect(&inputs), &Baselines::<Eval<B>>::zeros())?;
        let batch = path.batch();
        let device = collect(&inputs)[0].flat().device();
        let args = eval_args::<B, M>(self.args)?;
        let side = LayerSide::from_attribute_to_layer_input(self.attribute_to_layer_input);
        let layer = self.layer.clone();
        let call: Call<Eval<B>, M::EvalModel> = Call {
            inputs,
            path,
            args,
            quantity: Quantity::Target(Target::None),
            layers: vec![(layer.clone(), side)],
            alphas: vec![1.0],
            chunks: core::iter::once(0..1).collect(),
            space: PathSpace::Input,
            endpoints: false,
            progress: None,
        };
        // The inputs themselves: the path from zeros at α = 1.
        let (output, watches) = call.forward_at(&self.model, &[At::Alpha(1.0)], &device)?;
        check_hits(&watches)?;
        crate::engine::check_layer_batch(&watches, batch)?;
        if output.batch() != batch {
            return Err(InfluenceError::OutputBatch {
                expected: batch,
                output_shape: output.shape().to_vec(),
            });
        }
        let checks = Deferred::finiteness(&call.path);
        let watch = watches.into_iter().next().expect("one watched layer");
        let attribution = Attribution {
            layer,
            side,
            tensors: watch
                .values
                .into_iter()
                .map(|v| {
                    let shape = v.shape().to_vec();
                    AnyTensor::from_flat(v.into_flat().inner(), shape)
                })
                .collect(),
        };
        Ok((attribution, checks))
    }
}
