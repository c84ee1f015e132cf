//! What the JavaScript API ([`web`](crate) module, wasm only) does, on any backend and
//! testable natively: load a model from a Burn record, predict, and attribute with the
//! options an app passes as a JavaScript object.

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use influence_core::{Attribution, Baselines, InfluenceError, Method, Target};
use influence_digits::explain::CallSettings;
use influence_digits::model::{DigitsCnn, DigitsCnnConfig};
use serde::Deserialize;

use influence_core::{AnyTensor, Explainable};
use influence_onnx::{Dim, LayerKind, OnnxArgs, OnnxModel};

use crate::{LayerMethod, WebError};

/// A progress callback of [`Model::attribute`]: `(passes done, passes in the call)`.
pub type ProgressFn = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The model architectures compiled into the module, by the name `Explainer.load` takes
/// (`Explainer.fromOnnx` takes any ONNX model).
pub const MODELS: [&str; 1] = ["digits_cnn"];

/// The keys of the JavaScript object `AttributeOptions`, as [`AttributeOptions`] reads them.
pub const OPTION_NAMES: [&str; 7] = [
    "layer",
    "attribution",
    "target",
    "nSteps",
    "method",
    "internalBatchSize",
    "baselines",
];

/// The settings of one attribution, as the JavaScript object `AttributeOptions` spells them
/// (camelCase; unknown keys are an error, so a misspelt option is not silently ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttributeOptions {
    /// The layer to attribute to, one of the model's probe layers (`digits_cnn`: `conv1`,
    /// `conv2`, `fc1`, ...).
    pub layer: String,
    /// The layer method, Captum's name: `internal_influence` (default),
    /// `layer_conductance`, `layer_integrated_gradients`, `layer_gradient_x_activation`,
    /// `layer_activation`.
    #[serde(default)]
    pub attribution: Option<String>,
    /// The explained output: one class for every example, or one per example. Not used by
    /// `layer_activation`; required by the others.
    #[serde(default)]
    pub target: Option<TargetOption>,
    /// Quadrature points (Captum's `n_steps`, default 50).
    #[serde(default)]
    pub n_steps: Option<usize>,
    /// The quadrature rule, Captum's `method`: `gausslegendre` (default), `riemann_left`,
    /// `riemann_right`, `riemann_middle`, `riemann_trapezoid`.
    #[serde(default)]
    pub method: Option<String>,
    /// Rows per pass (Captum's `internal_batch_size`); all steps in one pass by default.
    #[serde(default)]
    pub internal_batch_size: Option<usize>,
    /// Baselines of the input's shape, or one number for every value (default zeros).
    #[serde(default)]
    pub baselines: Option<BaselinesOption>,
}

/// `target`: one class index for every example, or one per example.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TargetOption {
    /// The same class for every example.
    Index(usize),
    /// One class per example.
    PerExample(Vec<usize>),
}

/// `baselines`: one number, or values of the input's shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BaselinesOption {
    /// The same value everywhere.
    Scalar(f64),
    /// Values of the input's shape, row-major.
    Values(Vec<f32>),
}

/// A tensor read back to the host: row-major `values` of `shape`.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The values, row-major.
    pub values: Vec<f32>,
    /// The shape, e.g. `[batch, channels, height, width]`.
    pub shape: Vec<usize>,
}

/// A model built in to the module, with its weights, or a user's ONNX model.
#[derive(Debug, Clone)]
// One per explainer: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Model<B: AutodiffBackend> {
    /// The digits CNN of the digits example: input `[batch, 1, 8, 8]`, output
    /// `[batch, 10]` logits.
    DigitsCnn(DigitsCnn<B>),
    /// An ONNX model (`Explainer.fromOnnx`), its layers by PyTorch module name; its input is
    /// the graph's first float input, of fixed dims besides the batch.
    Onnx(OnnxModel<B>),
}

/// One layer of an ONNX model, as `Explainer.layers()` lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerSummary {
    /// Its name (`layer3`, `features.3`).
    pub name: String,
    /// `module`, `node` or `value`.
    pub kind: String,
    /// The module's class or the node's operators.
    pub what: String,
    /// The shapes of its output values (`[batch, 256, 14, 14]`).
    pub outputs: Vec<String>,
}

impl<B: AutodiffBackend> Model<B> {
    /// The architecture `name` (one of [`MODELS`]) with the weights of `record`: the bytes of
    /// a Burn record in the named MessagePack format at full precision (what
    /// `NamedMpkFileRecorder::<FullPrecisionSettings>` writes, a `.mpk` file).
    ///
    /// # Errors
    /// [`WebError::UnknownModel`] for another name, [`WebError::Weights`] when the record
    /// does not load into the architecture.
    pub fn load(name: &str, record: Vec<u8>, device: &B::Device) -> Result<Self, WebError> {
        match name {
            "digits_cnn" => {
                let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
                    .load(record, device)
                    .map_err(|e| WebError::Weights(e.to_string()))?;
                Ok(Model::DigitsCnn(
                    DigitsCnnConfig::new().init::<B>(device).load_record(record),
                ))
            }
            other => Err(WebError::UnknownModel(other.to_owned())),
        }
    }

    /// An ONNX model from the bytes of its `.onnx` file and, when the export keeps its
    /// weights beside the graph (the dynamo exporter's default), of its `.onnx.data` file.
    ///
    /// # Errors
    /// [`WebError::Onnx`] for a file that does not load (every fault is a typed error), and
    /// for a model without a float input of fixed dims besides the batch.
    pub fn from_onnx(
        bytes: &[u8],
        data: Option<&[u8]>,
        device: &B::Device,
    ) -> Result<Self, WebError> {
        let model = match data {
            Some(d) => OnnxModel::from_bytes_with_data(bytes, d, device)?,
            None => OnnxModel::from_bytes(bytes, device)?,
        };
        let model = Model::Onnx(model);
        model.example_shape()?;
        Ok(model)
    }

    /// The input shape without the batch dimension.
    ///
    /// # Errors
    /// [`WebError::Onnx`] for an ONNX model whose input is not a float tensor of fixed dims
    /// besides the batch.
    pub fn example_shape(&self) -> Result<Vec<usize>, WebError> {
        match self {
            Model::DigitsCnn(_) => Ok(vec![1, 8, 8]),
            Model::Onnx(m) => {
                let err = |message: String| {
                    WebError::Onnx(influence_onnx::OnnxError::Input {
                        name: m.input_name().unwrap_or("").to_owned(),
                        message,
                    })
                };
                let dims = m.input_dims().ok_or_else(|| {
                    err("the model has no float input with a declared shape".into())
                })?;
                dims.iter()
                    .skip(1)
                    .map(|d| match d {
                        Dim::Fixed(n) => Ok(*n),
                        other => Err(err(format!(
                            "its dims besides the batch must be fixed, one is {other}"
                        ))),
                    })
                    .collect()
            }
        }
    }

    /// The layers of an ONNX model (PyTorch modules first; all when `all`), with their
    /// shapes; the digits CNN's probe layers.
    pub fn layers(&self, all: bool, device: &B::Device) -> Vec<LayerSummary> {
        match self {
            Model::DigitsCnn(m) => influence_core::LayerProbe::layer_names(m)
                .into_iter()
                .map(|name| LayerSummary {
                    name,
                    kind: "module".into(),
                    what: String::new(),
                    outputs: Vec::new(),
                })
                .collect(),
            Model::Onnx(m) => m
                .layers_with_shapes(device)
                .into_iter()
                .filter(|l| all || l.kind == LayerKind::Module)
                .map(|l| LayerSummary {
                    name: l.name,
                    kind: match l.kind {
                        LayerKind::Module => "module",
                        LayerKind::Node => "node",
                        LayerKind::Value => "value",
                    }
                    .into(),
                    what: l.what,
                    outputs: l.outputs.into_iter().map(|(_, s)| s).collect(),
                })
                .collect(),
        }
    }

    fn input_any(
        &self,
        values: &[f32],
        shape: &[usize],
        device: &B::Device,
    ) -> Result<AnyTensor<B>, WebError> {
        let example = self.example_shape()?;
        let shape_ok = shape.len() == example.len() + 1 && shape[1..] == *example;
        if !shape_ok || shape.iter().product::<usize>() != values.len() || shape[0] == 0 {
            return Err(WebError::Shape {
                expected: format!("[batch, {}]", join(&example)),
                shape: shape.to_vec(),
                values: values.len(),
            });
        }
        let n = values.len();
        let flat = Tensor::<B, 1>::from_data(TensorData::new(values.to_vec(), [n]), device)
            .reshape([shape[0], n / shape[0]]);
        Ok(AnyTensor::from_parts(flat, shape.to_vec())?)
    }

    fn input(
        &self,
        values: &[f32],
        shape: &[usize],
        device: &B::Device,
    ) -> Result<Tensor<B, 4>, WebError> {
        let example = self.example_shape()?;
        let shape_ok = shape.len() == example.len() + 1 && shape[1..] == *example;
        if !shape_ok || shape.iter().product::<usize>() != values.len() {
            return Err(WebError::Shape {
                expected: format!("[batch, {}]", join(&example)),
                shape: shape.to_vec(),
                values: values.len(),
            });
        }
        Ok(Tensor::from_data(
            TensorData::new(values.to_vec(), [shape[0], shape[1], shape[2], shape[3]]),
            device,
        ))
    }

    /// The model's output for `input` (`shape` `[batch, ...]`): `[batch, 10]` logits for
    /// `digits_cnn`.
    ///
    /// # Errors
    /// [`WebError::Shape`] when `shape` is not the model's input shape or does not match the
    /// number of values; a failed device read.
    pub async fn predict(
        &self,
        input: &[f32],
        shape: &[usize],
        device: &B::Device,
    ) -> Result<HostTensor, WebError> {
        match self {
            Model::DigitsCnn(model) => {
                let x = self.input(input, shape, device)?;
                let y = model.forward(x).inner();
                read(y.into_data_async().await).map(|(values, shape)| HostTensor { values, shape })
            }
            Model::Onnx(model) => {
                let x = self.input_any(input, shape, device)?;
                let y = influence_core::predict(model, x, &OnnxArgs::new())?;
                let shape = y.shape().to_vec();
                let data = y.into_data_async().await?;
                let values = data
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .map_err(|e| WebError::Influence(InfluenceError::Read(format!("{e:?}"))))?;
                Ok(HostTensor { values, shape })
            }
        }
    }

    /// The attribution of `options.attribution` at `options.layer` for `input` (`shape`
    /// `[batch, ...]`), awaiting the one device read: the layer's shape, e.g. `[batch, 32, 8,
    /// 8]` for `digits_cnn`'s `conv2`.
    ///
    /// # Errors
    /// [`WebError::Shape`] for the input or the baselines, [`WebError::Option`] for an
    /// unknown method name or a missing target, and every error of the attribution
    /// ([`InfluenceError`]: an unknown layer, a target out of range, `n_steps` 0, ...).
    ///
    /// `progress(passes_done, passes)` is called after each forward/backward pass (several
    /// per call with `internalBatchSize`; not for the one-point methods).
    pub async fn attribute(
        &self,
        input: &[f32],
        shape: &[usize],
        options: &AttributeOptions,
        progress: Option<ProgressFn>,
        device: &B::Device,
    ) -> Result<HostTensor, WebError> {
        let method: LayerMethod = options
            .attribution
            .as_deref()
            .unwrap_or("internal_influence")
            .parse()
            .map_err(WebError::Option)?;
        let rule: Method = match options.method.as_deref() {
            None => Method::GaussLegendre,
            Some(m) => m
                .parse()
                .map_err(|e| WebError::Option(format!("method: {e}")))?,
        };
        let target = match (&options.target, method) {
            (_, LayerMethod::LayerActivation) => Target::None,
            (Some(TargetOption::Index(i)), _) => Target::Index(*i),
            (Some(TargetOption::PerExample(v)), _) => Target::PerExample(v.clone()),
            (None, _) => {
                return Err(WebError::Option(format!(
                    "target: {method} needs a target (a class index, or one per example)"
                )));
            }
        };
        let baselines: Option<Baselines<B>> = match &options.baselines {
            None => None,
            Some(BaselinesOption::Scalar(v)) => Some((*v).into()),
            Some(BaselinesOption::Values(v)) => Some(self.input_any(v, shape, device)?.into()),
        };
        let attribution = match self {
            Model::DigitsCnn(model) => {
                let x = self.input(input, shape, device)?;
                attribute(
                    method,
                    model,
                    x,
                    &options.layer,
                    target,
                    rule,
                    options,
                    baselines,
                    progress,
                )
                .await?
            }
            Model::Onnx(model) => {
                let x = self.input_any(input, shape, device)?;
                attribute(
                    method,
                    model,
                    x,
                    &options.layer,
                    target,
                    rule,
                    options,
                    baselines,
                    progress,
                )
                .await?
            }
        };
        let tensor = attribution.into_tensors().remove(0);
        let shape = tensor.shape().to_vec();
        let data = tensor.into_data_async().await?;
        let values = data
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(|e| WebError::Influence(InfluenceError::Read(format!("{e:?}"))))?;
        Ok(HostTensor { values, shape })
    }
}

/// `method` at `layer` of `x` with the settings of `options` (all but the target, the rule
/// and the baselines, given here already read), awaiting the one device read.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn attribute<B: AutodiffBackend, M: Explainable<B>>(
    method: LayerMethod,
    model: &M,
    x: M::Inputs,
    layer: &str,
    target: Target,
    rule: Method,
    options: &AttributeOptions,
    baselines: Option<Baselines<B>>,
    progress: Option<ProgressFn>,
) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
    let settings = CallSettings {
        n_steps: options.n_steps.unwrap_or(50),
        method: rule,
        internal_batch_size: options.internal_batch_size,
        baselines,
        progress,
        ..CallSettings::new(target)
    };
    method.call(model, layer, x, settings)?.run_async().await
}

/// The values and shape of a device read, or its error as [`InfluenceError::Read`].
pub(crate) fn read(
    data: Result<TensorData, burn::tensor::backend::ExecutionError>,
) -> Result<(Vec<f32>, Vec<usize>), WebError> {
    let data = data.map_err(|e| WebError::Influence(InfluenceError::Read(format!("{e:?}"))))?;
    let shape = data.shape.to_vec();
    let values = data
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| WebError::Influence(InfluenceError::Read(format!("{e:?}"))))?;
    Ok((values, shape))
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
