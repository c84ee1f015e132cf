//! burn-influence in the browser: a JavaScript API (wasm-bindgen, TypeScript declarations;
//! `Explainer.load(model, recordBytes, backend)`, `predict`, `attribute`; see
//! `docs/web.md`) whose logic is [`api`], and the web demo built on it: the digits CNN of the
//! digits example predicts a drawn or picked 8×8 digit and explains the prediction with
//! Internal Influence at `conv2`, on WebGPU when the browser offers it (feature `webgpu`),
//! else on the flex CPU backend compiled to wasm.
//!
//! Everything on the attribution path is asynchronous where it reads from the device
//! ([`InternalInfluence`]'s `run_async`, `into_data_async`): WebGPU in a browser cannot read
//! synchronously. The same [`explain_digit`] runs natively (the `native-reference` binary)
//! to give the numbers the browser test compares with.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use influence_core::{InfluenceError, Method, Target};
use influence_digits::data::PIXELS;
pub use influence_digits::explain::LayerMethod;
use influence_digits::model::DigitsCnn;
use serde::{Deserialize, Serialize};

pub mod api;
#[cfg(target_arch = "wasm32")]
mod web;

/// The trained weights of the digits example (`cargo run --release -p influence-digits`,
/// flex backend, seed 42, 20 epochs), in Burn's named MessagePack format. Native code (the
/// `native-reference` binary, the tests) uses them from here; the page fetches the same file
/// (`www/models/digits_cnn.mpk`, copied by `build-web.sh`), so the module does not carry them.
pub const WEIGHTS: &[u8] = include_bytes!("../assets/digits_cnn.mpk");

/// The explained layer.
pub const LAYER: &str = "conv2";

/// A few held-out digits of the dataset, to pick from in the page and to test with.
pub const FIXTURES: &str = include_str!("../www/fixtures.json");

/// A digit picked from the dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fixture {
    /// Row of the CSV file.
    pub index: usize,
    /// True label.
    pub label: usize,
    /// 64 pixel values in [0, 1], row-major.
    pub pixels: Vec<f32>,
}

/// The fixture digits.
pub fn fixtures() -> Vec<Fixture> {
    serde_json::from_str(FIXTURES).expect("fixtures.json parses")
}

/// Everything the page shows about one digit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DigitExplanation {
    /// The backend that computed it.
    pub backend: String,
    /// The layer method (Captum's name).
    pub attribution: String,
    /// The 10 logits.
    pub logits: Vec<f32>,
    /// The predicted class, the explained target.
    pub predicted: usize,
    /// Quadrature points used.
    pub n_steps: usize,
    /// Influence of each of conv2's 32 channels (summed over positions).
    pub channel_influence: Vec<f32>,
    /// Influence map: conv2's channels summed, 8×8 row-major.
    pub map: Vec<f32>,
}

/// Errors of the demo.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// Not 64 pixels.
    #[error("pixels: expected 64 values, got {0}")]
    Pixels(usize),
    /// The embedded weights do not load.
    #[error("weights: {0}")]
    Weights(String),
    /// The attribution failed.
    #[error(transparent)]
    Influence(#[from] InfluenceError),
    /// `Explainer.load` with a model name that is not built in ([`api::MODELS`]).
    /// An ONNX model that does not load, or whose input is not supported here.
    #[error(transparent)]
    Onnx(#[from] influence_onnx::OnnxError),
    #[error("model: unknown model '{0}' (this module has: digits_cnn)")]
    UnknownModel(String),
    /// An input or baselines whose shape is not the model's, or does not match the number of
    /// values.
    #[error("shape: expected {expected}, got {shape:?} with {values} values")]
    Shape {
        /// The model's input shape.
        expected: String,
        /// The shape given.
        shape: Vec<usize>,
        /// The number of values given.
        values: usize,
    },
    /// A bad option of `attribute` (an unknown method name, a missing target).
    #[error("{0}")]
    Option(String),
}

/// The digits CNN with the embedded weights ([`WEIGHTS`]).
///
/// # Errors
/// [`WebError::Weights`] when the weights do not load.
pub fn load_model<B: AutodiffBackend>(device: &B::Device) -> Result<DigitsCnn<B>, WebError> {
    match api::Model::load("digits_cnn", WEIGHTS.to_vec(), device)? {
        api::Model::DigitsCnn(model) => Ok(model),
        api::Model::Onnx(_) => unreachable!("digits_cnn loads the digits CNN"),
    }
}

/// Predicts one digit and explains the prediction with `method` (Internal Influence or a
/// sibling) at `conv2` (Gauss-Legendre, `n_steps` points, zero baseline, for the methods with
/// a path), without a blocking read.
///
/// # Shapes
/// - pixels: 64 values in [0, 1], row-major 8×8
///
/// # Errors
/// [`WebError::Pixels`] for a wrong number of pixels, and the attribution's errors.
pub async fn explain_digit<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    pixels: &[f32],
    method: LayerMethod,
    n_steps: usize,
    backend: &str,
    device: &B::Device,
) -> Result<DigitExplanation, WebError> {
    if pixels.len() != PIXELS {
        return Err(WebError::Pixels(pixels.len()));
    }
    let x = Tensor::<B, 4>::from_data(TensorData::new(pixels.to_vec(), [1, 1, 8, 8]), device);
    let (logits, _) = api::read(model.forward(x.clone()).inner().into_data_async().await)?;
    let predicted = logits
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .expect("10 logits");
    let options = api::AttributeOptions {
        layer: LAYER.to_owned(),
        attribution: None,
        target: None,
        n_steps: Some(n_steps),
        method: None,
        internal_batch_size: None,
        baselines: None,
    };
    let target = Target::Index(predicted);
    let attribution = api::attribute(
        method,
        model,
        x,
        LAYER,
        target,
        Method::GaussLegendre,
        &options,
        None,
        None,
    )
    .await?;
    let values = attribution
        .into_tensors()
        .remove(0)
        .into_data_async()
        .await?;
    let values = values
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| WebError::Influence(InfluenceError::Read(format!("{e:?}"))))?;
    // [1, 32, 8, 8]: per channel 64 positions.
    let channel_influence = values.chunks(64).map(|c| c.iter().sum()).collect();
    let mut map = vec![0f32; 64];
    for c in values.chunks(64) {
        for (m, v) in map.iter_mut().zip(c) {
            *m += v;
        }
    }
    Ok(DigitExplanation {
        backend: backend.to_owned(),
        attribution: method.to_string(),
        logits,
        predicted,
        n_steps,
        channel_influence,
        map,
    })
}
