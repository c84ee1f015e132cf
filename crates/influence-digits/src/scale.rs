//! The main job at dataset scale (`--all`): every digit of the set, streamed through Burn's
//! `DataLoader` into [`DatasetAttribution`], with each digit explained for the class the
//! model predicts; then the paper's picture of the experts. Writes into the output
//! directory:
//!
//! - `batches/batch_NNNNNN.safetensors`, `run.json`, `summary.json`: the per-example
//!   attributions and the per-class summary (see [`influence_core::dataset`]); a run that
//!   was stopped resumes from them;
//! - `experts.png`: per class, the mean influence of its top experts (a bar chart);
//! - `expert_maps.png`: per class, its mean digit and, for each of its top experts, what the
//!   expert responds to in input space: the Integrated Gradients of the expert's activation
//!   (summed over positions) on the input pixels, averaged over the class's digits (Leino et
//!   al. 2018 visualise an expert by attributing its activation back to the input);
//! - `expert_maps.json`: those maps' values.
//!
//! Positions in the stream are rows of the CSV file: the loader does not shuffle, so that a
//! resumed run meets the same batches in the same order.

use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::data::dataset::Dataset;
use burn::module::{AutodiffModule, Module};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use influence_core::dataset::{DatasetAttribution, DatasetBatch, DatasetSummary};

use crate::data::{CLASSES, Digits, PIXELS, SIDE};
pub use crate::explain::ExpertMaps;
use crate::model::{DigitsCnn, SPATIAL_LAYERS};
use crate::{DigitsError, RunConfig, Stage, load_or_train};

/// Settings of a dataset-scale run, beside the [`RunConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleConfig {
    /// Digits per batch.
    pub batch_size: usize,
    /// Workers attributing batches at once, each on its own thread, each call on one thread
    /// (default: the machine's cores). The numbers do not depend on it.
    pub workers: usize,
    /// Experts per class in the summary and the bar chart.
    pub top_k: usize,
    /// Experts per class drawn in input space.
    pub experts_shown: usize,
    /// Class digits averaged per expert map.
    pub digits_per_map: usize,
    /// Store each digit's full attribution in the batch files.
    pub keep_attributions: bool,
}

impl Default for ScaleConfig {
    fn default() -> Self {
        Self {
            batch_size: 64,
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            top_k: 5,
            experts_shown: 3,
            digits_per_map: 64,
            keep_attributions: true,
        }
    }
}

/// One digit of the set, as Burn's `DataLoader` hands it to the batcher.
#[derive(Debug, Clone)]
pub struct DigitItem {
    /// Pixel values in [0, 1], row-major.
    pub pixels: [f32; PIXELS],
}

/// The digits as a Burn [`Dataset`], in file order.
#[derive(Debug, Clone)]
pub struct DigitsDataset(pub Arc<Digits>);

impl Dataset<DigitItem> for DigitsDataset {
    fn get(&self, index: usize) -> Option<DigitItem> {
        self.0.pixels.get(index).map(|p| DigitItem { pixels: *p })
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// Stacks digits into `[batch, 1, 8, 8]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DigitsBatcher;

impl<B: Backend> Batcher<B, DigitItem, Tensor<B, 4>> for DigitsBatcher {
    fn batch(&self, items: Vec<DigitItem>, device: &B::Device) -> Tensor<B, 4> {
        let n = items.len();
        let values: Vec<f32> = items.iter().flat_map(|d| d.pixels).collect();
        Tensor::from_data(TensorData::new(values, [n, 1, SIDE, SIDE]), device)
    }
}

/// What a dataset-scale run produced.
#[derive(Debug, Clone)]
pub struct ScaleSummary {
    /// The streamed attribution's summary (`summary.json`).
    pub dataset: DatasetSummary,
    /// Per class, its experts in input space.
    pub expert_maps: Vec<ExpertMaps>,
    /// Whether the weights were trained in this run.
    pub trained: bool,
    /// Seconds spent streaming (attributing and storing the batches; figures excluded).
    pub streaming_seconds: f64,
    /// Files written (besides the batch files).
    pub files: Vec<PathBuf>,
}

/// Runs the dataset-scale job on backend `B`, on one device or spread over several. See the
/// [module docs](self).
///
/// With several `devices` (GPUs, or remote servers with Burn's remote backend), each of
/// `max(workers, devices.len())` workers attributes on device `worker % devices.len()`,
/// with its own copy of the weights; the batches are made on the first device and copied to
/// the worker's. The numbers do not depend on the split.
///
/// # Errors
/// [`DigitsError`] for unreadable data, a non-spatial layer, weights that do not load, files
/// that cannot be written, and the attribution's and the stream's errors (among them
/// `Cancelled` and `ResumeMismatch`, see [`influence_core::dataset`]).
pub fn run_all<B: AutodiffBackend>(
    config: &RunConfig,
    scale: &ScaleConfig,
    devices: &[B::Device],
    mut stage: impl FnMut(Stage),
) -> Result<ScaleSummary, DigitsError> {
    let explain = &config.explain;
    let Some(device) = devices.first() else {
        return Err(DigitsError::Io {
            path: config.out.display().to_string(),
            message: "no device given".into(),
        });
    };
    if !SPATIAL_LAYERS.contains(&explain.layer.as_str()) {
        return Err(DigitsError::Layer {
            name: explain.layer.clone(),
        });
    }
    let data = Arc::new(Digits::load(&config.data)?);
    let (train_idx, _) = data.stratified_split(config.test_fraction, config.split_seed);
    let (model, trained) = load_or_train::<B>(config, &data, &train_idx, device, &mut stage)?;
    let workers = scale.workers.max(devices.len()).max(1);
    // One copy of the weights per further device, loaded from the file just saved or read.
    let mut models = vec![model.clone()];
    for d in &devices[1..] {
        models.push(
            crate::model::DigitsCnnConfig::new()
                .init::<B>(d)
                .load_file(
                    config.weights.clone(),
                    &burn::record::NamedMpkFileRecorder::<burn::record::FullPrecisionSettings>::new(
                    ),
                    d,
                )
                .map_err(|e| DigitsError::Weights {
                    path: config.weights.display().to_string(),
                    message: e.to_string(),
                })?,
        );
    }

    let loader: Arc<dyn DataLoader<B, Tensor<B, 4>>> = DataLoaderBuilder::new(DigitsBatcher)
        .batch_size(scale.batch_size.max(1))
        .set_device(device.clone())
        .build(DigitsDataset(data.clone()));
    let inference = model.valid();
    let mut predicted: Vec<usize> = Vec::with_capacity(data.len());
    let batches = loader.iter().map(|x: Tensor<B, 4>| {
        let targets = crate::train::classes(inference.forward(x.clone().inner()));
        predicted.extend(&targets);
        DatasetBatch { inputs: x, targets }
    });
    // One thread per call whatever the number of workers, so that each batch is computed in
    // the same order of operations (a call's threads split its steps into chunks) and the
    // numbers do not depend on `workers`.
    let threads = Some(1);
    let settings = format!(
        "weights {} layer {} attribution {} method {} n_steps {} internal_batch_size {} threads per call 1 batch_size {}",
        weights_fingerprint(&config.weights)?,
        explain.layer,
        explain.attribution,
        explain.method,
        explain.n_steps,
        explain.internal_batch_size,
        scale.batch_size,
    );
    stage(Stage::Streaming(influence_core::dataset::Progress {
        examples_done: 0,
        examples_resumed: 0,
        total: Some(data.len()),
        batches_done: 0,
        examples_per_second: 0.0,
        eta: None,
    }));
    let started = std::time::Instant::now();
    let dataset = DatasetAttribution::new(CLASSES)
        .top_k(scale.top_k)
        .workers(workers)
        .total(data.len())
        .keep_attributions(scale.keep_attributions)
        .settings(settings)
        .out_dir(&config.out)
        .run(
            batches,
            |w, x, targets| {
                let d = w % devices.len();
                let x = if d == 0 {
                    x
                } else {
                    Tensor::from_data(x.into_data(), &devices[d])
                };
                explain.attribution.attribute(
                    &models[d],
                    &explain.layer,
                    x,
                    targets,
                    explain.n_steps,
                    explain.method,
                    explain.internal_batch_size,
                    threads,
                )
            },
            |p| stage(Stage::Streaming(*p)),
        )?;

    let streaming_seconds = started.elapsed().as_secs_f64();
    stage(Stage::Figures);
    let expert_maps = expert_maps(&model, &data, &predicted, &dataset, config, scale, device)?;
    let mut files = vec![config.out.join("run.json"), config.out.join("summary.json")];
    let json_path = config.out.join("expert_maps.json");
    let json = serde_json::to_string(&expert_maps).expect("the maps serialise");
    std::fs::write(&json_path, json).map_err(crate::io(&json_path))?;
    files.push(json_path);
    #[cfg(feature = "render")]
    {
        let title = format!(
            "{} of {} ({}, n_steps {}), mean over the digits predicted as each class",
            explain.attribution, explain.layer, explain.method, explain.n_steps
        );
        let path = config.out.join("experts.png");
        crate::render::experts_chart(&path, &dataset, scale.top_k, &title)?;
        files.push(path);
        let path = config.out.join("expert_maps.png");
        crate::render::expert_maps(&path, &expert_maps, &explain.layer)?;
        files.push(path);
    }
    Ok(ScaleSummary {
        dataset,
        expert_maps,
        trained,
        streaming_seconds,
        files,
    })
}

/// A short fingerprint of the weights file (FNV-1a of its bytes), so that a resumed run
/// refuses a directory written with other weights.
fn weights_fingerprint(path: &std::path::Path) -> Result<String, DigitsError> {
    let bytes = std::fs::read(path).map_err(crate::io(path))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

/// Per class: the Integrated Gradients of each top expert's activation on the input,
/// averaged over (up to `digits_per_map` of) the digits predicted as the class
/// ([`crate::explain::expert_maps`]).
fn expert_maps<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    predicted: &[usize],
    summary: &DatasetSummary,
    config: &RunConfig,
    scale: &ScaleConfig,
    device: &B::Device,
) -> Result<Vec<ExpertMaps>, DigitsError> {
    let mut out = Vec::new();
    for class in &summary.classes {
        let members: Vec<usize> = (0..predicted.len())
            .filter(|&i| predicted[i] == class.class)
            .take(scale.digits_per_map)
            .collect();
        if members.is_empty() {
            continue;
        }
        let experts: Vec<usize> = class
            .experts
            .iter()
            .copied()
            .take(scale.experts_shown)
            .collect();
        let influence: Vec<f64> = experts.iter().map(|&e| class.mean_influence[e]).collect();
        out.push(crate::explain::expert_maps(
            model,
            &config.explain.layer,
            data,
            class.class,
            &members,
            &experts,
            &influence,
            device,
        )?);
    }
    Ok(out)
}
