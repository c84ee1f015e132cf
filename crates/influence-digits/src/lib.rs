//! The digits example of burn-influence, as a library so that the example binary, its test
//! and the web demo share it: load the UCI 8×8 digits, train (or reload) a small CNN, explain
//! its held-out predictions with Internal Influence the way Leino et al. (2018) do, check
//! the explanation's faithfulness, and write images and a JSON report.

pub mod data;
pub mod explain;
pub mod model;
pub mod paper;
#[cfg(feature = "render")]
pub mod render;
mod report;
#[cfg(feature = "scale")]
pub mod scale;
pub mod train;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder};
use burn::tensor::backend::AutodiffBackend;
use influence_core::InfluenceError;
use serde::Serialize;

#[cfg(feature = "render")]
use crate::data::CLASSES;
use crate::data::Digits;
use crate::explain::{ClassChannels, ExplainConfig, Explanation, Faithfulness};
use crate::model::{DigitsCnn, DigitsCnnConfig, SPATIAL_LAYERS};
use crate::train::{Progress, TrainConfig};

/// Everything that can stop the example.
#[derive(Debug, thiserror::Error)]
pub enum DigitsError {
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The CSV file is malformed.
    #[error("{path}, line {line}: {reason}")]
    Csv {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer that has no influence map.
    #[error(
        "layer {name:?}: influence maps need a convolutional (4-D) layer; choose one of conv1, relu1, conv2, relu2, pool"
    )]
    Layer {
        /// The layer asked for.
        name: String,
    },
    /// A channel index that the layer does not have.
    #[error("channel {channel}: the layer has {channels} channels (0..{channels})")]
    Channel {
        /// The channel asked for.
        channel: usize,
        /// The layer's channels.
        channels: usize,
    },
    /// Saved weights that do not load.
    #[error("weights {path}: {message}; run again with --retrain")]
    Weights {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The attribution failed.
    #[error(transparent)]
    Influence(#[from] InfluenceError),
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The digits CSV file.
    pub data: PathBuf,
    /// Output directory (created if needed).
    pub out: PathBuf,
    /// Where the weights are saved and reloaded from (Burn's `NamedMpkFileRecorder`).
    pub weights: PathBuf,
    /// Train even when saved weights exist.
    pub retrain: bool,
    /// Training settings.
    pub train: TrainConfig,
    /// Share of each class held out.
    pub test_fraction: f64,
    /// Seed of the split.
    pub split_seed: u64,
    /// What to explain.
    pub explain: ExplainConfig,
    /// Name of the backend, for the report.
    pub backend: String,
    /// Digits drawn per class image.
    pub digits_per_class: usize,
}

impl RunConfig {
    /// Defaults: the CSV at `data`, outputs and weights under `out`.
    pub fn new(data: impl Into<PathBuf>, out: impl Into<PathBuf>, backend: &str) -> Self {
        let out = out.into();
        Self {
            data: data.into(),
            weights: out.join("digits_cnn.mpk"),
            out,
            retrain: false,
            train: TrainConfig::new(),
            test_fraction: 0.2,
            split_seed: 7,
            explain: ExplainConfig::default(),
            backend: backend.into(),
            digits_per_class: 8,
        }
    }
}

/// The settings recorded in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// Layer method (Captum's name, `internal_influence` by default).
    pub attribution: String,
    /// Explained layer.
    pub layer: String,
    /// Quadrature rule (Captum's name).
    pub method: String,
    /// Quadrature points.
    pub n_steps: usize,
    /// Rows per pass.
    pub internal_batch_size: usize,
    /// Backend name.
    pub backend: String,
    /// Training epochs (of the run that trained the weights, when trained now).
    pub epochs: usize,
    /// Training seed.
    pub seed: u64,
    /// Whether the weights were trained in this run (else reloaded).
    pub trained: bool,
}

/// One explained digit in the report.
#[derive(Debug, Clone, Serialize)]
pub struct DigitReport {
    /// Row of the CSV file (0-based, header excluded).
    pub index: usize,
    /// True label.
    pub label: usize,
    /// Predicted class, the explained target.
    pub predicted: usize,
    /// Influence of each channel (summed over positions).
    pub channel_influence: Vec<f32>,
    /// Influence map: channels summed, `side × side`, row-major.
    pub map: Vec<f32>,
}

/// A tensor in the report: shape and row-major values.
#[derive(Debug, Clone, Serialize)]
pub struct TensorReport {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// The JSON report (`influence.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// How the run was made.
    pub settings: Settings,
    /// Held-out accuracy.
    pub accuracy: f64,
    /// Digits trained on.
    pub train_size: usize,
    /// Digits held out (and explained).
    pub held_out_size: usize,
    /// Per class: the channels' mean influence and ranking.
    pub classes: Vec<ClassChannels>,
    /// Logit drops when zeroing the most and least influential channels.
    pub faithfulness: Vec<Faithfulness>,
    /// Per digit: summaries of its attribution.
    pub digits: Vec<DigitReport>,
    /// The full attribution, `[digits, channels, side, side]`.
    pub attribution: TensorReport,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The JSON report's content.
    pub report: Report,
    /// The explanation.
    pub explanation: Explanation,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// What the run is doing, for a progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// Reloaded saved weights from this file.
    Loaded(PathBuf),
    /// A training step.
    Training(Progress),
    /// Saved the trained weights to this file.
    Saved(PathBuf),
    /// Computing the attribution of this many digits.
    Explaining(usize),
    /// Streaming the whole set (`--all`): where it stands.
    Streaming(influence_core::dataset::Progress),
    /// Drawing the experts (`--all`).
    Figures,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> DigitsError + '_ {
    move |e| DigitsError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Runs the whole job on backend `B`: data, model (trained or reloaded), accuracy,
/// explanation, faithfulness, images and report.
///
/// # Errors
/// [`DigitsError`] for unreadable or malformed data, a non-spatial layer, weights that do
/// not load, files that cannot be written, and attribution errors.
pub fn run<B: AutodiffBackend>(
    config: &RunConfig,
    device: &B::Device,
    mut stage: impl FnMut(Stage),
) -> Result<Summary, DigitsError> {
    if !SPATIAL_LAYERS.contains(&config.explain.layer.as_str()) {
        return Err(DigitsError::Layer {
            name: config.explain.layer.clone(),
        });
    }
    let data = Digits::load(&config.data)?;
    let (train_idx, held_out) = data.stratified_split(config.test_fraction, config.split_seed);
    let (model, trained) = load_or_train::<B>(config, &data, &train_idx, device, &mut stage)?;
    let predicted = train::predict(&model, &data, &held_out, device);
    let accuracy = train::accuracy(&data, &held_out, &predicted);

    stage(Stage::Explaining(held_out.len()));
    let explanation = explain::explain(
        &model,
        &data,
        &held_out,
        &predicted,
        &config.explain,
        device,
    )?;
    let faithfulness = explain::faithfulness(&model, &data, &explanation, &[1, 2, 4], device);

    let mut files = Vec::new();
    #[cfg(feature = "render")]
    files.extend(write_images(config, &data, &explanation)?);

    let report = Report {
        settings: Settings {
            attribution: config.explain.attribution.to_string(),
            layer: config.explain.layer.clone(),
            method: config.explain.method.to_string(),
            n_steps: config.explain.n_steps,
            internal_batch_size: config.explain.internal_batch_size,
            backend: config.backend.clone(),
            epochs: config.train.epochs,
            seed: config.train.seed,
            trained,
        },
        accuracy,
        train_size: train_idx.len(),
        held_out_size: held_out.len(),
        classes: explanation.classes.clone(),
        faithfulness,
        digits: (0..held_out.len())
            .map(|i| DigitReport {
                index: held_out[i],
                label: data.labels[held_out[i]],
                predicted: predicted[i],
                channel_influence: explanation.channel_influence(i),
                map: explanation.map(i),
            })
            .collect(),
        attribution: TensorReport {
            shape: vec![
                held_out.len(),
                explanation.channels,
                explanation.side,
                explanation.side,
            ],
            data: explanation.influence.clone(),
        },
    };
    let json_path = config.out.join("influence.json");
    let json = serde_json::to_string(&report).expect("the report serialises");
    std::fs::write(&json_path, json).map_err(io(&json_path))?;
    files.push(json_path);
    Ok(Summary {
        report,
        explanation,
        files,
    })
}

/// The model of a run: the weights in `config.weights` when they exist (and `retrain` is
/// off), else trained on `train_idx` and saved there. Returns it and whether it was trained.
///
/// # Errors
/// [`DigitsError::Io`] and [`DigitsError::Weights`].
pub fn load_or_train<B: AutodiffBackend>(
    config: &RunConfig,
    data: &Digits,
    train_idx: &[usize],
    device: &B::Device,
    stage: &mut impl FnMut(Stage),
) -> Result<(DigitsCnn<B>, bool), DigitsError> {
    std::fs::create_dir_all(&config.out).map_err(io(&config.out))?;
    let recorder = NamedMpkFileRecorder::<FullPrecisionSettings>::new();
    let trained = config.retrain || !config.weights.exists();
    let model: DigitsCnn<B> = if trained {
        let model = train::train::<B>(data, train_idx, &config.train, device, |p| {
            stage(Stage::Training(p))
        });
        if let Some(dir) = config.weights.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        model
            .clone()
            .save_file(config.weights.clone(), &recorder)
            .map_err(|e| DigitsError::Weights {
                path: config.weights.display().to_string(),
                message: e.to_string(),
            })?;
        stage(Stage::Saved(config.weights.clone()));
        model
    } else {
        let model = DigitsCnnConfig::new()
            .init::<B>(device)
            .load_file(config.weights.clone(), &recorder, device)
            .map_err(|e| DigitsError::Weights {
                path: config.weights.display().to_string(),
                message: e.to_string(),
            })?;
        stage(Stage::Loaded(config.weights.clone()));
        model
    };
    Ok((model, trained))
}

/// One grid per class (`class_<c>.png`: input, influence map, overlay for the first
/// `digits_per_class` digits predicted as `c`) and `overview.png` (the first digit of each
/// class).
#[cfg(feature = "render")]
fn write_images(
    config: &RunConfig,
    data: &Digits,
    explanation: &Explanation,
) -> Result<Vec<PathBuf>, DigitsError> {
    let panel = |i: usize, label: String| render::DigitPanel {
        label,
        pixels: data.pixels[explanation.examples[i]],
        map: render::upsample(&explanation.map(i), explanation.side),
    };
    let what = format!(
        "{} of {}, summed over its {} channels, for the predicted class ({}, n_steps {})",
        config.explain.attribution,
        explanation.layer,
        explanation.channels,
        config.explain.method,
        config.explain.n_steps
    );
    let mut files = Vec::new();
    let mut firsts = Vec::new();
    for class in 0..CLASSES {
        let members: Vec<usize> = (0..explanation.targets.len())
            .filter(|&i| explanation.targets[i] == class)
            .take(config.digits_per_class)
            .collect();
        if let Some(&first) = members.first() {
            firsts.push(panel(first, format!("predicted {class}")));
        }
        let path = config.out.join(format!("class_{class}.png"));
        let title = format!("Digits predicted as {class} (#: position in the data set)\n{what}");
        let panels: Vec<_> = members
            .iter()
            .map(|&i| panel(i, format!("#{}", explanation.examples[i])))
            .collect();
        render::digit_grid(&path, &title, &panels)?;
        files.push(path);
    }
    let path = config.out.join("overview.png");
    render::overview(&path, &format!("One digit per class\n{what}"), &firsts)?;
    files.push(path);
    Ok(files)
}
