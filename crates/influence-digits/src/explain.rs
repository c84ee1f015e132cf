//! Influence-directed explanations of the digits CNN, as Leino et al. (2018) give them: the
//! Internal Influence of a convolutional layer for each digit (target = the predicted
//! class), the layer's most influential channels per class (the class's "experts"), and a
//! check that they matter: zeroing them must lower the class's logit far more than zeroing
//! the least influential channels.

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use std::sync::Arc;

use influence_core::{
    ActivationCall, AttributeCall, Attribution, Baselines, Explainable, GradientCall,
    InfluenceError, InternalInfluence, LayerActivation, LayerConductance, LayerGradientXActivation,
    LayerIntegratedGradients, Method, Target,
};
use serde::Serialize;

use crate::DigitsError;
use crate::data::{CLASSES, Digits, PIXELS};
use crate::model::{Ablation, DigitsCnn, ExpertView, spatial_shape};

/// The layer method that explains the digits, with Captum's names (`internal_influence`,
/// `layer_conductance`, `layer_integrated_gradients`, `layer_gradient_x_activation`,
/// `layer_activation`), so that they can be compared on the same digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LayerMethod {
    /// Internal Influence (Leino et al. 2018), the default.
    #[default]
    InternalInfluence,
    /// Layer Conductance.
    LayerConductance,
    /// Layer Integrated Gradients (multiplied by the activation difference).
    LayerIntegratedGradients,
    /// Layer Gradient × Activation (no path: `n_steps` and `method` unused).
    LayerGradientXActivation,
    /// The layer's activation itself (no path and no target).
    LayerActivation,
}

impl LayerMethod {
    /// Every method, in the order above.
    pub const ALL: [LayerMethod; 5] = [
        LayerMethod::InternalInfluence,
        LayerMethod::LayerConductance,
        LayerMethod::LayerIntegratedGradients,
        LayerMethod::LayerGradientXActivation,
        LayerMethod::LayerActivation,
    ];

    /// Captum's name in snake case (`layer_conductance`).
    pub fn name(self) -> &'static str {
        match self {
            LayerMethod::InternalInfluence => "internal_influence",
            LayerMethod::LayerConductance => "layer_conductance",
            LayerMethod::LayerIntegratedGradients => "layer_integrated_gradients",
            LayerMethod::LayerGradientXActivation => "layer_gradient_x_activation",
            LayerMethod::LayerActivation => "layer_activation",
        }
    }

    /// Whether it integrates along a path (`n_steps` and `method` apply).
    pub fn has_path(self) -> bool {
        matches!(
            self,
            LayerMethod::InternalInfluence
                | LayerMethod::LayerConductance
                | LayerMethod::LayerIntegratedGradients
        )
    }

    /// Attributes `x` at `layer` of `model` for one class per example, with the path settings
    /// where the method has a path, on `threads` threads (`None`: the library's choice).
    /// [`call`](Self::call), then [`MethodCall::run`].
    ///
    /// # Errors
    /// The method's [`InfluenceError`]s.
    #[allow(clippy::too_many_arguments)]
    pub fn attribute<B: AutodiffBackend>(
        self,
        model: &DigitsCnn<B>,
        layer: &str,
        x: Tensor<B, 4>,
        targets: &[usize],
        n_steps: usize,
        method: Method,
        internal_batch_size: usize,
        threads: Option<usize>,
    ) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        let settings = CallSettings {
            n_steps,
            method,
            internal_batch_size: Some(internal_batch_size),
            threads,
            ..CallSettings::new(Target::PerExample(targets.to_vec()))
        };
        self.call(model, layer, x, settings)?.run()
    }

    /// The call of this method at `layer` of `model` on `x`, set up from `settings` (the
    /// path's settings are used where the method has a path; Layer Activation takes no
    /// target): the one place that maps a method name to a call, for the example (which runs
    /// it) and the web demo (which awaits it).
    ///
    /// Any explainable model: the digits CNN (`x`: `[batch, 1, 8, 8]`), an ONNX model (`x`:
    /// its input, an `AnyTensor`).
    ///
    /// # Errors
    /// [`InfluenceError::UnknownLayer`] when the model does not expose `layer`.
    pub fn call<B: AutodiffBackend, M: Explainable<B>>(
        self,
        model: &M,
        layer: &str,
        x: M::Inputs,
        settings: CallSettings<B>,
    ) -> Result<MethodCall<B, M>, InfluenceError> {
        let CallSettings {
            target,
            n_steps,
            method,
            internal_batch_size,
            threads,
            baselines,
            progress,
        } = settings;
        let path = |call: AttributeCall<B, M>| {
            let mut call = call.target(target.clone()).n_steps(n_steps).method(method);
            if let Some(m) = internal_batch_size {
                call = call.internal_batch_size(m);
            }
            if let Some(t) = threads {
                call = call.threads(t);
            }
            if let Some(b) = baselines.clone() {
                call = call.baselines(b);
            }
            if let Some(p) = progress.clone() {
                call = call.progress(move |done, total| p(done, total));
            }
            MethodCall::Path(call)
        };
        Ok(match self {
            LayerMethod::InternalInfluence => {
                path(InternalInfluence::new(model, layer)?.attribute(x))
            }
            LayerMethod::LayerConductance => {
                path(LayerConductance::new(model, layer)?.attribute(x))
            }
            LayerMethod::LayerIntegratedGradients => {
                path(LayerIntegratedGradients::new(model, layer)?.attribute(x))
            }
            LayerMethod::LayerGradientXActivation => MethodCall::Gradient(
                LayerGradientXActivation::new(model, layer)?
                    .attribute(x)
                    .target(target),
            ),
            LayerMethod::LayerActivation => {
                MethodCall::Activation(LayerActivation::new(model, layer)?.attribute(x))
            }
        })
    }
}

/// What a [`LayerMethod`]'s call takes besides the model, the layer and the inputs.
#[derive(Clone)]
pub struct CallSettings<B: AutodiffBackend> {
    /// The explained output (Captum's `target`; not used by Layer Activation).
    pub target: Target,
    /// Quadrature points of a path method (Captum's `n_steps`).
    pub n_steps: usize,
    /// Quadrature rule of a path method (Captum's `method`).
    pub method: Method,
    /// Rows per pass of a path method (Captum's `internal_batch_size`); `None`: all at once.
    pub internal_batch_size: Option<usize>,
    /// Threads of a path method; `None`: the library's choice.
    pub threads: Option<usize>,
    /// Where a path starts (Captum's `baselines`); `None`: zeros.
    pub baselines: Option<Baselines<B>>,
    /// Called with `(passes done, passes)` after each pass of a path method.
    pub progress: Option<Arc<dyn Fn(usize, usize) + Send + Sync>>,
}

impl<B: AutodiffBackend> CallSettings<B> {
    /// Captum's defaults (50 Gauss-Legendre points, zero baselines, all steps in one pass)
    /// for `target`.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            n_steps: 50,
            method: Method::GaussLegendre,
            internal_batch_size: None,
            threads: None,
            baselines: None,
            progress: None,
        }
    }
}

/// One call of a [`LayerMethod`], set up by [`LayerMethod::call`], to run with a synchronous
/// read ([`run`](Self::run)) or an awaited one ([`run_async`](Self::run_async), for WebGPU in
/// a browser).
pub enum MethodCall<B: AutodiffBackend, M: Explainable<B>> {
    /// Internal Influence, Layer Conductance or Layer Integrated Gradients.
    Path(AttributeCall<B, M>),
    /// Layer Gradient × Activation.
    Gradient(GradientCall<B, M>),
    /// Layer Activation.
    Activation(ActivationCall<B, M>),
}

impl<B: AutodiffBackend, M: Explainable<B>> MethodCall<B, M> {
    /// Runs the call.
    ///
    /// # Errors
    /// The method's [`InfluenceError`]s.
    pub fn run(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        match self {
            MethodCall::Path(call) => call.run(),
            MethodCall::Gradient(call) => call.run(),
            MethodCall::Activation(call) => call.run(),
        }
    }

    /// Runs the call, awaiting its one device read.
    ///
    /// # Errors
    /// The method's [`InfluenceError`]s.
    pub async fn run_async(self) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
        match self {
            MethodCall::Path(call) => call.run_async().await,
            MethodCall::Gradient(call) => call.run_async().await,
            MethodCall::Activation(call) => call.run_async().await,
        }
    }
}

impl core::fmt::Display for LayerMethod {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for LayerMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        LayerMethod::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = LayerMethod::ALL.iter().map(|m| m.name()).collect();
                format!("unknown attribution method {s:?}; choose one of {names:?}")
            })
    }
}

/// What to explain and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainConfig {
    /// The layer method (default Internal Influence).
    pub attribution: LayerMethod,
    /// A spatial layer of the model (see [`crate::model::SPATIAL_LAYERS`]).
    pub layer: String,
    /// Quadrature points.
    pub n_steps: usize,
    /// Quadrature rule.
    pub method: Method,
    /// Rows (digits × steps) per forward/backward pass.
    pub internal_batch_size: usize,
}

impl Default for ExplainConfig {
    fn default() -> Self {
        Self {
            attribution: LayerMethod::InternalInfluence,
            layer: "conv2".into(),
            n_steps: 50,
            method: Method::GaussLegendre,
            internal_batch_size: 4096,
        }
    }
}

/// The influence of one class's experts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassChannels {
    /// The class.
    pub class: usize,
    /// Digits predicted as this class.
    pub count: usize,
    /// Mean influence of each channel (summed over its positions) over those digits.
    pub mean_influence: Vec<f32>,
    /// Channels by decreasing mean influence.
    pub ranking: Vec<usize>,
}

impl ClassChannels {
    /// The channels of `class` ranked by their mean influence `mean_influence` (one value per
    /// channel) over `count` digits: [`ranking`](Self::ranking) is by decreasing influence,
    /// ties in channel order.
    pub fn from_mean(class: usize, count: usize, mean_influence: Vec<f32>) -> Self {
        let mut ranking: Vec<usize> = (0..mean_influence.len()).collect();
        ranking.sort_by(|&a, &b| mean_influence[b].total_cmp(&mean_influence[a]));
        Self {
            class,
            count,
            mean_influence,
            ranking,
        }
    }

    /// The `k` most influential channels (largest mean influence).
    pub fn top(&self, k: usize) -> &[usize] {
        &self.ranking[..k.min(self.ranking.len())]
    }

    /// The `k` least influential channels (mean influence closest to zero).
    pub fn bottom(&self, k: usize) -> Vec<usize> {
        let mut by_size: Vec<usize> = (0..self.mean_influence.len()).collect();
        by_size.sort_by(|&a, &b| {
            self.mean_influence[a]
                .abs()
                .total_cmp(&self.mean_influence[b].abs())
        });
        by_size.truncate(k);
        by_size
    }
}

/// The explanation of a set of digits at one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The layer.
    pub layer: String,
    /// Its channels.
    pub channels: usize,
    /// Its side in pixels (its maps are `side × side`).
    pub side: usize,
    /// The explained digits (indices into the data).
    pub examples: Vec<usize>,
    /// The class explained for each: the predicted one.
    pub targets: Vec<usize>,
    /// The attribution, `[digits, channels, side, side]` row-major.
    pub influence: Vec<f32>,
    /// Per class, the channels' mean influence and ranking.
    pub classes: Vec<ClassChannels>,
}

impl Explanation {
    /// The attribution of digit `i` (position in [`examples`](Self::examples)), as
    /// `[channels, side, side]`.
    pub fn digit(&self, i: usize) -> &[f32] {
        let size = self.channels * self.side * self.side;
        &self.influence[i * size..(i + 1) * size]
    }

    /// The influence of each channel of digit `i`, summed over positions.
    pub fn channel_influence(&self, i: usize) -> Vec<f32> {
        let plane = self.side * self.side;
        self.digit(i)
            .chunks(plane)
            .map(|c| c.iter().sum())
            .collect()
    }

    /// The influence map of digit `i`: the channels summed, `side × side`.
    pub fn map(&self, i: usize) -> Vec<f32> {
        let plane = self.side * self.side;
        let mut m = vec![0f32; plane];
        for c in self.digit(i).chunks(plane) {
            for (a, b) in m.iter_mut().zip(c) {
                *a += b;
            }
        }
        m
    }
}

/// Computes the attribution (`config.attribution`, default Internal Influence) of
/// `config.layer` for the digits `idx`, each explained for its class in `targets`, in one
/// attribution over the whole set (chunked by `internal_batch_size`), and the per-class
/// channel rankings.
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial, and the attribution's errors.
pub fn explain<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    idx: &[usize],
    targets: &[usize],
    config: &ExplainConfig,
    device: &B::Device,
) -> Result<Explanation, DigitsError> {
    let (channels, side) = spatial_shape(&config.layer).ok_or_else(|| DigitsError::Layer {
        name: config.layer.clone(),
    })?;
    let attribution = config.attribution.attribute(
        model,
        &config.layer,
        data.images::<B>(idx, device),
        targets,
        config.n_steps,
        config.method,
        config.internal_batch_size,
        None,
    )?;
    let influence = attribution.tensors()[0].to_vec()?;
    let mut explanation = Explanation {
        layer: config.layer.clone(),
        channels,
        side,
        examples: idx.to_vec(),
        targets: targets.to_vec(),
        influence,
        classes: Vec::new(),
    };
    let per_digit: Vec<Vec<f32>> = (0..idx.len())
        .map(|i| explanation.channel_influence(i))
        .collect();
    explanation.classes = (0..CLASSES)
        .map(|class| {
            let members: Vec<&Vec<f32>> = per_digit
                .iter()
                .zip(targets)
                .filter(|(_, t)| **t == class)
                .map(|(c, _)| c)
                .collect();
            let mut mean = vec![0f32; channels];
            for m in &members {
                for (a, b) in mean.iter_mut().zip(m.iter()) {
                    *a += b / members.len() as f32;
                }
            }
            ClassChannels::from_mean(class, members.len(), mean)
        })
        .collect();
    Ok(explanation)
}

/// The effect of zeroing `k` channels at the layer on the explained class's logit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Faithfulness {
    /// Channels zeroed.
    pub k: usize,
    /// Mean drop of the logit when the class's `k` most influential channels are zeroed.
    pub top_drop: f32,
    /// Mean drop when its `k` least influential channels are zeroed.
    pub bottom_drop: f32,
}

/// For each `k`, zeroes each digit's class's `k` most (then least) influential channels at
/// the explained layer and averages the drop of the explained logit over the digits.
pub fn faithfulness<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    explanation: &Explanation,
    ks: &[usize],
    device: &B::Device,
) -> Vec<Faithfulness> {
    let model = model.valid();
    let idx = &explanation.examples;
    let n = idx.len();
    let x = data.images::<B::InnerBackend>(idx, device);
    let targets = Tensor::<B::InnerBackend, 2, Int>::from_data(
        TensorData::new(
            explanation.targets.iter().map(|&t| t as i64).collect(),
            [n, 1],
        ),
        device,
    );
    let logit = |logits: Tensor<B::InnerBackend, 2>| logits.gather(1, targets.clone());
    let base = logit(model.forward(x.clone()));
    ks.iter()
        .map(|&k| {
            let drop = |pick: &dyn Fn(&ClassChannels) -> Vec<usize>| -> f32 {
                let keep = keep_mask::<B::InnerBackend>(explanation, pick, device);
                let ablated = logit(model.forward_ablated(
                    x.clone(),
                    &Ablation {
                        layer: &explanation.layer,
                        keep,
                    },
                ));
                mean(base.clone() - ablated)
            };
            Faithfulness {
                k,
                top_drop: drop(&|c| c.top(k).to_vec()),
                bottom_drop: drop(&|c| c.bottom(k)),
            }
        })
        .collect()
}

/// `[digits, channels]`: 0 on the channels `pick` gives for each digit's class, else 1.
fn keep_mask<B: Backend>(
    explanation: &Explanation,
    pick: &dyn Fn(&ClassChannels) -> Vec<usize>,
    device: &B::Device,
) -> Tensor<B, 2> {
    let c = explanation.channels;
    let mut keep = vec![1f32; explanation.targets.len() * c];
    for (i, &t) in explanation.targets.iter().enumerate() {
        for ch in pick(&explanation.classes[t]) {
            keep[i * c + ch] = 0.0;
        }
    }
    Tensor::from_data(
        TensorData::new(keep, [explanation.targets.len(), c]),
        device,
    )
}

fn mean<B: Backend>(t: Tensor<B, 2>) -> f32 {
    t.mean()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("a float")[0]
}

/// One class's experts drawn in input space.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpertMaps {
    /// The class.
    pub class: usize,
    /// Digits averaged (those predicted as the class, up to `digits_per_map`).
    pub digits: usize,
    /// The class's mean digit, 8×8 row-major.
    pub mean_digit: Vec<f32>,
    /// The experts drawn (channels of the layer), by decreasing influence.
    pub experts: Vec<usize>,
    /// Per expert: its mean influence on the class.
    pub influence: Vec<f64>,
    /// Per expert: Integrated Gradients of its activation on the input, 8×8 row-major,
    /// averaged over the digits.
    pub maps: Vec<Vec<f32>>,
}

/// What the channels `experts` of `layer` respond to in input space, averaged over the digits
/// `members` (indices into `data`): for each expert, the Integrated Gradients (32
/// Gauss-Legendre points, zero baseline) of its activation summed over positions (an
/// [`ExpertView`] of the model) on the input pixels, averaged over the digits. Leino et al.
/// (2018, §3) visualise an expert by attributing its activation back to the input.
/// `influence` is stored beside each expert (one value per expert).
///
/// # Shapes
/// - each map: `[8, 8]` row-major, like the mean digit
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial, and the attribution's errors.
#[allow(clippy::too_many_arguments)]
pub fn expert_maps<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    layer: &str,
    data: &Digits,
    class: usize,
    members: &[usize],
    experts: &[usize],
    influence: &[f64],
    device: &B::Device,
) -> Result<ExpertMaps, DigitsError> {
    let view = ExpertView::new(model, layer).ok_or_else(|| DigitsError::Layer {
        name: layer.to_string(),
    })?;
    let n = members.len().max(1) as f32;
    let mut mean_digit = vec![0f32; PIXELS];
    for &i in members {
        for (m, p) in mean_digit.iter_mut().zip(data.pixels[i]) {
            *m += p / n;
        }
    }
    let mut maps = Vec::new();
    for &e in experts {
        let mut map = vec![0f32; PIXELS];
        if !members.is_empty() {
            let ig = LayerIntegratedGradients::new(&view, "input")?
                .attribute(data.images::<B>(members, device))
                .target(Target::PerExample(vec![e; members.len()]))
                .n_steps(32)
                .method(Method::GaussLegendre)
                .run()?;
            for digit in ig.to_vec()?.chunks(PIXELS) {
                for (m, v) in map.iter_mut().zip(digit) {
                    *m += v / n;
                }
            }
        }
        maps.push(map);
    }
    Ok(ExpertMaps {
        class,
        digits: members.len(),
        mean_digit,
        experts: experts.to_vec(),
        influence: influence.to_vec(),
        maps,
    })
}
