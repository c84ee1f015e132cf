//! Attribution at dataset scale: stream batches through a layer method, aggregate per class
//! on the fly, store every batch's results as it finishes, resume after a stop, and spread
//! the batches over several workers (threads, devices).
//!
//! Leino et al. (2018) explain *slices of a dataset*: "which channels of conv2 are the
//! experts for class 3 across the test set". [`DatasetAttribution`] computes that over any
//! iterator of [`DatasetBatch`]es (Burn's `DataLoader` gives one with a `map`), with memory
//! bounded by the batches in flight (with `n` workers, at most `2n` batches are ahead of the
//! last one aggregated), whatever the dataset's size:
//!
//! - per class, the mean influence of each neuron of the layer, channel-summed
//!   ([`Attribution::per_channel`]: dim 1 of the layer, the other dims summed, so the
//!   channels of a `[batch, channels, height, width]` convolution), and the class's top-k
//!   neurons by mean influence, its *experts*;
//! - progress after every batch ([`Progress`]: examples done, total, rate, ETA) and a
//!   cancellation flag checked between batches;
//! - with [`out_dir`](DatasetAttribution::out_dir), one safetensors file per batch
//!   (`batches/batch_000000.safetensors`, written whole or not at all) and a JSON summary
//!   (`summary.json`). A run that stops (cancelled, killed, Ctrl-C) and is started again with
//!   the same directory reuses the stored batches, after checking that each is the same data,
//!   and gives the same final numbers as an uninterrupted run.
//!
//! The per-class sums are accumulated in float64 in stream order, whatever the number of
//! workers and however many batches were resumed, so the summary does not depend on either.
//!
//! # Files
//! Each `batches/batch_NNNNNN.safetensors` holds, for the batch's `b` examples:
//! - `neurons`: F32 `[b, neurons]`, the channel-summed attribution;
//! - `targets`: I64 `[b]`, the class each example was explained for;
//! - `attribution`: F32 `[b, ...layer dims]`, the full attribution, with
//!   [`keep_attributions`](DatasetAttribution::keep_attributions);
//! - metadata `batch`, `first_example` (its first example's position in the stream),
//!   `example_shape` (JSON) and `input_hash` (FNV-1a of the inputs' float32 values and the
//!   targets, checked on resume).
//!
//! In Python: `safetensors.numpy.load_file("batches/batch_000000.safetensors")["neurons"]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::{Attribution, InfluenceError};

/// Version of the output directory's layout, stored in `run.json`.
const FORMAT: u32 = 1;

/// One batch of a dataset.
#[derive(Debug, Clone)]
pub struct DatasetBatch<B: Backend, const D: usize> {
    /// The inputs, `[batch, ...]` (for images `[batch, channels, height, width]`).
    pub inputs: Tensor<B, D>,
    /// One class per example: the target it is explained for, and the class its attribution
    /// is counted under (the label, or the model's prediction, as the caller chooses).
    pub targets: Vec<usize>,
}

/// Where a dataset run stands, given to the progress callback after every batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Examples done, resumed ones included.
    pub examples_done: usize,
    /// Of those, examples taken from a previous run's files.
    pub examples_resumed: usize,
    /// The dataset's size, when it was given ([`DatasetAttribution::total`]).
    pub total: Option<usize>,
    /// Batches done.
    pub batches_done: usize,
    /// Examples attributed per second in this run (resumed ones not counted).
    pub examples_per_second: f64,
    /// Estimated time to the end, when the total is known and a batch was attributed.
    pub eta: Option<Duration>,
}

/// One class of a [`DatasetSummary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// The class.
    pub class: usize,
    /// Examples counted under it.
    pub count: usize,
    /// Mean channel-summed influence of each neuron over those examples (0 when `count` is 0).
    pub mean_influence: Vec<f64>,
    /// The `top_k` neurons by decreasing mean influence: the class's experts.
    pub experts: Vec<usize>,
}

/// The result of a dataset run (and the content of `summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetSummary {
    /// Examples attributed (resumed ones included).
    pub examples: usize,
    /// Batches.
    pub batches: usize,
    /// Examples taken from a previous run's files.
    pub examples_resumed: usize,
    /// Neurons per example (dim 1 of the layer).
    pub neurons: usize,
    /// Shape of one example's attribution (the layer's dims after the batch).
    pub example_shape: Vec<usize>,
    /// One entry per class, `0..num_classes`.
    pub classes: Vec<ClassSummary>,
    /// The caller's description of the run ([`DatasetAttribution::settings`]).
    pub settings: String,
}

/// `run.json`: what a directory was made by; a resumed run must match it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunFile {
    format: u32,
    num_classes: usize,
    keep_attributions: bool,
    settings: String,
}

/// Streams a dataset through a layer method. See the [module docs](self).
///
/// ```ignore
/// let summary = DatasetAttribution::new(10)
///     .top_k(5)
///     .total(dataset.len())
///     .out_dir("run-1")
///     .run(
///         batches,                       // impl Iterator<Item = DatasetBatch<B, 4>>
///         |_worker, x, targets| {
///             InternalInfluence::new(&model, "conv2")?
///                 .attribute(x)
///                 .target(targets.to_vec())
///                 .run()
///         },
///         |p| println!("{}/{:?}", p.examples_done, p.total),
///     )?;
/// ```
#[derive(Debug, Clone)]
pub struct DatasetAttribution {
    num_classes: usize,
    top_k: usize,
    workers: usize,
    total: Option<usize>,
    out_dir: Option<PathBuf>,
    keep_attributions: bool,
    settings: String,
    cancel: Option<Arc<AtomicBool>>,
}

/// A batch on its way to a worker.
struct Job<B: Backend, const D: usize> {
    index: usize,
    first_example: usize,
    batch: DatasetBatch<B, D>,
    stored: Option<PathBuf>,
}

/// What a worker hands back for one batch.
struct Done {
    index: usize,
    targets: Vec<usize>,
    /// `[batch, neurons]`, row-major.
    neurons: Vec<f32>,
    width: usize,
    example_shape: Vec<usize>,
    resumed: bool,
}

impl DatasetAttribution {
    /// A run over a dataset of `num_classes` classes, with the defaults: 5 experts per class,
    /// one worker, no output directory (nothing stored, no resume), per-example attributions
    /// not kept.
    pub fn new(num_classes: usize) -> Self {
        Self {
            num_classes,
            top_k: 5,
            workers: 1,
            total: None,
            out_dir: None,
            keep_attributions: false,
            settings: String::new(),
            cancel: None,
        }
    }

    /// Experts reported per class (default 5).
    pub fn top_k(mut self, k: usize) -> Self {
        self.top_k = k;
        self
    }

    /// Workers that attribute batches at the same time (default 1, on the calling thread).
    /// With `n > 1`, `n` threads each take the next batch; the attribution closure gets the
    /// worker's index, to pick its device (several GPUs) or its model copy. On a CPU
    /// backend give each worker's call `threads(1)`, so the workers do not oversubscribe the
    /// cores. The results do not depend on the number of workers. 0 is taken as 1. On
    /// wasm32 in a browser, which has no threads, keep 1.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The dataset's size in examples, for [`Progress::total`] and the ETA.
    pub fn total(mut self, examples: usize) -> Self {
        self.total = Some(examples);
        self
    }

    /// Stores every batch's results under `dir` as it finishes, writes `summary.json` at the
    /// end, and resumes from what `dir` already holds.
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also stores each example's full attribution (`attribution` in the batch files).
    pub fn keep_attributions(mut self, keep: bool) -> Self {
        self.keep_attributions = keep;
        self
    }

    /// A description of the run (layer, method, `n_steps`, weights, ...), stored in
    /// `run.json` and the summary. Resuming with a different description is refused
    /// ([`InfluenceError::ResumeMismatch`]), so put in it everything that changes the numbers.
    pub fn settings(mut self, settings: impl Into<String>) -> Self {
        self.settings = settings.into();
        self
    }

    /// A flag checked before each batch is handed out: once it is set, no further batch is
    /// started beyond those already handed out (with several workers, up to one queued per
    /// worker besides the ones running); they finish (and are stored), and the run returns
    /// [`InfluenceError::Cancelled`]. Set it from a Ctrl-C handler or another thread.
    pub fn cancel_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// Attributes every batch with `attribute(worker, inputs, targets)` and aggregates.
    ///
    /// `attribute` is any layer method's call, for example
    /// `InternalInfluence::new(&model, "conv2")?.attribute(x).target(targets.to_vec()).run()`.
    /// `progress` is called on the calling thread after every batch, in stream order.
    ///
    /// # Errors
    /// - the attribution's own [`InfluenceError`]s (the error of the earliest failing batch);
    /// - [`InfluenceError::TargetCount`] for a batch with not one target per example,
    ///   [`InfluenceError::ClassOutOfRange`] for a target not below `num_classes`;
    /// - [`InfluenceError::NeuronCount`] when batches are attributed at different layers,
    ///   [`InfluenceError::AttributionShape`] for an attribution without one row per example,
    ///   [`InfluenceError::NonFiniteAttribution`] for NaN or infinite values in it;
    /// - [`InfluenceError::Worker`] when the attribution panics (or a worker thread cannot
    ///   start);
    /// - [`InfluenceError::Cancelled`] once the cancellation flag is set;
    /// - with an output directory: [`InfluenceError::Storage`] for files that cannot be read
    ///   or written, [`InfluenceError::ResumeMismatch`] when the directory holds another
    ///   run (other settings, or a stored batch whose data differs from this run's).
    pub fn run<B, A, const D: usize, I, F, P>(
        &self,
        batches: I,
        attribute: F,
        mut progress: P,
    ) -> Result<DatasetSummary, InfluenceError>
    where
        B: Backend,
        A: Backend,
        I: IntoIterator<Item = DatasetBatch<B, D>>,
        F: Fn(usize, Tensor<B, D>, &[usize]) -> Result<Attribution<A>, InfluenceError> + Sync,
        P: FnMut(&Progress),
    {
        let stored = match &self.out_dir {
            Some(dir) => self.prepare_dir(dir)?,
            None => HashSet::new(),
        };
        let mut agg = Aggregate::new(self.num_classes, self.total);
        let mut jobs = batches
            .into_iter()
            .enumerate()
            .scan(0usize, |first, (index, batch)| {
                let job = Job {
                    index,
                    first_example: *first,
                    stored: stored
                        .contains(&index)
                        .then(|| self.batch_path(index))
                        .flatten(),
                    batch,
                };
                *first += job.batch.inputs.dims()[0];
                Some(job)
            });
        let cancelled = || {
            self.cancel
                .as_ref()
                .is_some_and(|f| f.load(Ordering::SeqCst))
        };

        if self.workers == 1 {
            loop {
                if cancelled() {
                    return Err(agg.cancelled());
                }
                let Some(job) = jobs.next() else { break };
                let done = self.process_guarded(0, job, &attribute)?;
                agg.add(done)?;
                progress(&agg.progress());
            }
        } else {
            let mut error: Option<(usize, InfluenceError)> = None;
            let mut was_cancelled = false;
            std::thread::scope(|scope| {
                let (job_tx, job_rx) = mpsc::sync_channel::<Job<B, D>>(self.workers);
                let job_rx = Arc::new(Mutex::new(job_rx));
                let (done_tx, done_rx) = mpsc::channel::<(usize, Result<Done, InfluenceError>)>();
                for worker in 0..self.workers {
                    let (job_rx, done_tx, attribute) =
                        (job_rx.clone(), done_tx.clone(), &attribute);
                    let spawned = std::thread::Builder::new()
                        .name(format!("dataset-worker-{worker}"))
                        .spawn_scoped(scope, move || {
                            loop {
                                let job = match job_rx.lock() {
                                    Ok(rx) => rx.recv(),
                                    Err(_) => break,
                                };
                                let Ok(job) = job else { break };
                                let index = job.index;
                                let result = self.process_guarded(worker, job, attribute);
                                if done_tx.send((index, result)).is_err() {
                                    break;
                                }
                            }
                        });
                    if let Err(e) = spawned {
                        error = Some((
                            0,
                            InfluenceError::Worker {
                                batch: None,
                                message: format!("cannot start worker thread {worker}: {e}"),
                            },
                        ));
                        break;
                    }
                }
                // Only the workers hold the queue's receiver: if they all stopped, sending fails
                // instead of blocking.
                drop(job_rx);
                drop(done_tx);
                // Results wait here until every earlier batch is in, so that they are
                // aggregated (and reported) in stream order.
                let mut pending: BTreeMap<usize, Done> = BTreeMap::new();
                let mut next = 0usize;
                let mut sent = 0usize;
                let mut handle =
                    |(index, result): (usize, Result<Done, InfluenceError>),
                     pending: &mut BTreeMap<usize, Done>,
                     next: &mut usize,
                     error: &mut Option<(usize, InfluenceError)>| {
                        match result {
                            Ok(done) => {
                                pending.insert(index, done);
                            }
                            Err(e) => {
                                if error.as_ref().is_none_or(|(i, _)| index < *i) {
                                    *error = Some((index, e));
                                }
                            }
                        }
                        while let Some(done) = pending.remove(next) {
                            *next += 1;
                            if error.as_ref().is_some_and(|(i, _)| *i < *next) {
                                continue;
                            }
                            if let Err(e) = agg.add(done) {
                                *error = Some((*next - 1, e));
                                continue;
                            }
                            progress(&agg.progress());
                        }
                    };
                loop {
                    while let Ok(r) = done_rx.try_recv() {
                        handle(r, &mut pending, &mut next, &mut error);
                    }
                    if error.is_some() {
                        break;
                    }
                    if cancelled() {
                        was_cancelled = true;
                        break;
                    }
                    // Results waiting for an earlier batch are bounded too: no more than two
                    // batches per worker are ahead of the last one aggregated.
                    while sent - next >= 2 * self.workers && error.is_none() {
                        match done_rx.recv() {
                            Ok(r) => handle(r, &mut pending, &mut next, &mut error),
                            Err(_) => break,
                        }
                    }
                    if error.is_some() {
                        break;
                    }
                    let Some(job) = jobs.next() else { break };
                    // A full queue blocks here: no more batches are read than workers can take.
                    if job_tx.send(job).is_err() {
                        break;
                    }
                    sent += 1;
                }
                drop(job_tx);
                for r in done_rx.iter() {
                    handle(r, &mut pending, &mut next, &mut error);
                }
                debug_assert!(error.is_some() || next == sent);
            });
            if let Some((_, e)) = error {
                return Err(e);
            }
            if was_cancelled {
                return Err(agg.cancelled());
            }
        }
        let summary = agg.summary(self.top_k, &self.settings);
        if let Some(dir) = &self.out_dir {
            let text = serde_json::to_string_pretty(&summary).expect("the summary serialises");
            write_atomic(&dir.join("summary.json"), text.as_bytes())?;
        }
        Ok(summary)
    }

    fn batch_path(&self, index: usize) -> Option<PathBuf> {
        self.out_dir.as_ref().map(|d| {
            d.join("batches")
                .join(format!("batch_{index:06}.safetensors"))
        })
    }

    /// Creates the directory (or checks that it holds this run) and lists its stored batches.
    fn prepare_dir(&self, dir: &Path) -> Result<HashSet<usize>, InfluenceError> {
        let batches = dir.join("batches");
        std::fs::create_dir_all(&batches).map_err(storage(&batches))?;
        let run = RunFile {
            format: FORMAT,
            num_classes: self.num_classes,
            keep_attributions: self.keep_attributions,
            settings: self.settings.clone(),
        };
        let run_path = dir.join("run.json");
        match std::fs::read_to_string(&run_path) {
            Ok(text) => {
                let found: RunFile =
                    serde_json::from_str(&text).map_err(|e| InfluenceError::ResumeMismatch {
                        path: run_path.display().to_string(),
                        reason: format!("not a run file of this version ({e})"),
                    })?;
                if found != run {
                    return Err(InfluenceError::ResumeMismatch {
                        path: run_path.display().to_string(),
                        reason: format!(
                            "it was written by a run with other settings ({}), this run has ({})",
                            describe(&found),
                            describe(&run)
                        ),
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let text = serde_json::to_string_pretty(&run).expect("the run file serialises");
                write_atomic(&run_path, text.as_bytes())?;
            }
            Err(e) => return Err(storage(&run_path)(e)),
        }
        // A summary of an earlier run is not this run's: it is written again at the end.
        let summary = dir.join("summary.json");
        if summary.exists() {
            std::fs::remove_file(&summary).map_err(storage(&summary))?;
        }
        let mut stored = HashSet::new();
        for entry in std::fs::read_dir(&batches).map_err(storage(&batches))? {
            let name = entry.map_err(storage(&batches))?.file_name();
            let name = name.to_string_lossy();
            if let Some(i) = name
                .strip_prefix("batch_")
                .and_then(|n| n.strip_suffix(".safetensors"))
                .and_then(|n| n.parse::<usize>().ok())
            {
                stored.insert(i);
            }
        }
        Ok(stored)
    }

    /// [`process`](Self::process), with a panic of the attribution turned into
    /// [`InfluenceError::Worker`].
    fn process_guarded<B, A, const D: usize, F>(
        &self,
        worker: usize,
        job: Job<B, D>,
        attribute: &F,
    ) -> Result<Done, InfluenceError>
    where
        B: Backend,
        A: Backend,
        F: Fn(usize, Tensor<B, D>, &[usize]) -> Result<Attribution<A>, InfluenceError>,
    {
        let index = job.index;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.process(worker, job, attribute)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the attribution panicked".into());
            Err(InfluenceError::Worker {
                batch: Some(index),
                message,
            })
        })
    }

    /// Attributes one batch (or reads it back from a previous run) and stores it.
    fn process<B, A, const D: usize, F>(
        &self,
        worker: usize,
        job: Job<B, D>,
        attribute: &F,
    ) -> Result<Done, InfluenceError>
    where
        B: Backend,
        A: Backend,
        F: Fn(usize, Tensor<B, D>, &[usize]) -> Result<Attribution<A>, InfluenceError>,
    {
        let Job {
            index,
            first_example,
            batch,
            stored,
        } = job;
        let n = batch.inputs.dims()[0];
        if batch.targets.len() != n {
            return Err(InfluenceError::TargetCount {
                got: batch.targets.len(),
                batch: n,
            });
        }
        if let Some((example, &class)) = batch
            .targets
            .iter()
            .enumerate()
            .find(|(_, c)| **c >= self.num_classes)
        {
            return Err(InfluenceError::ClassOutOfRange {
                batch: index,
                example,
                class,
                num_classes: self.num_classes,
            });
        }
        let hash = match &self.out_dir {
            Some(_) => Some(input_hash(&batch)?),
            None => None,
        };
        if let (Some(path), Some(hash)) = (&stored, hash) {
            return read_batch(path, index, first_example, hash, &batch.targets);
        }
        let attribution = attribute(worker, batch.inputs, &batch.targets)?;
        let shape = attribution.shape()?.to_vec();
        if shape.len() < 2 || shape[0] != n || shape[1] == 0 {
            return Err(InfluenceError::AttributionShape {
                batch: index,
                examples: n,
                shape,
            });
        }
        let per_channel = attribution.per_channel()?;
        let width = per_channel.dims()[1];
        let neurons = per_channel.into_data().convert::<f32>().to_vec::<f32>()?;
        if neurons.iter().any(|v| !v.is_finite()) {
            return Err(InfluenceError::NonFiniteAttribution { batch: index });
        }
        let example_shape = shape[1..].to_vec();
        if let (Some(path), Some(hash)) = (self.batch_path(index), hash) {
            let full = if self.keep_attributions {
                Some(attribution.to_vec()?)
            } else {
                None
            };
            write_batch(
                &path,
                Stored {
                    index,
                    first_example,
                    hash,
                    targets: &batch.targets,
                    neurons: &neurons,
                    width,
                    example_shape: &example_shape,
                    full: full.as_deref(),
                },
            )?;
        }
        Ok(Done {
            index,
            targets: batch.targets,
            neurons,
            width,
            example_shape,
            resumed: false,
        })
    }
}

fn describe(run: &RunFile) -> String {
    format!(
        "num_classes {}, keep_attributions {}, settings {:?}",
        run.num_classes, run.keep_attributions, run.settings
    )
}

/// The running per-class sums, fed in stream order.
struct Aggregate {
    sums: Vec<Vec<f64>>,
    counts: Vec<usize>,
    width: Option<usize>,
    example_shape: Vec<usize>,
    examples: usize,
    resumed: usize,
    batches: usize,
    total: Option<usize>,
    start: Instant,
    attributed_time: Duration,
}

impl Aggregate {
    fn new(num_classes: usize, total: Option<usize>) -> Self {
        Self {
            sums: vec![Vec::new(); num_classes],
            counts: vec![0; num_classes],
            width: None,
            example_shape: Vec::new(),
            examples: 0,
            resumed: 0,
            batches: 0,
            total,
            start: Instant::now(),
            attributed_time: Duration::ZERO,
        }
    }

    fn add(&mut self, done: Done) -> Result<(), InfluenceError> {
        match self.width {
            None => {
                self.width = Some(done.width);
                self.example_shape = done.example_shape.clone();
                for s in &mut self.sums {
                    *s = vec![0.0; done.width];
                }
            }
            Some(w) if w != done.width => {
                return Err(InfluenceError::NeuronCount {
                    batch: done.index,
                    expected: w,
                    got: done.width,
                });
            }
            Some(_) => {}
        }
        for (row, &class) in done.neurons.chunks(done.width).zip(&done.targets) {
            for (s, &v) in self.sums[class].iter_mut().zip(row) {
                *s += f64::from(v);
            }
            self.counts[class] += 1;
        }
        self.examples += done.targets.len();
        self.batches += 1;
        if done.resumed {
            self.resumed += done.targets.len();
        } else {
            self.attributed_time = self.start.elapsed();
        }
        Ok(())
    }

    fn progress(&self) -> Progress {
        let attributed = self.examples - self.resumed;
        let secs = self.attributed_time.as_secs_f64();
        let rate = if attributed > 0 && secs > 0.0 {
            attributed as f64 / secs
        } else {
            0.0
        };
        Progress {
            examples_done: self.examples,
            examples_resumed: self.resumed,
            total: self.total,
            batches_done: self.batches,
            examples_per_second: rate,
            eta: self
                .total
                .filter(|_| rate > 0.0)
                .map(|t| Duration::from_secs_f64(t.saturating_sub(self.examples) as f64 / rate)),
        }
    }

    fn cancelled(&self) -> InfluenceError {
        InfluenceError::Cancelled {
            examples_done: self.examples,
            total: self.total,
        }
    }

    fn summary(self, top_k: usize, settings: &str) -> DatasetSummary {
        let width = self.width.unwrap_or(0);
        let classes = self
            .sums
            .into_iter()
            .zip(self.counts)
            .enumerate()
            .map(|(class, (sum, count))| {
                let mean_influence: Vec<f64> = if count == 0 {
                    vec![0.0; width]
                } else {
                    sum.iter().map(|s| s / count as f64).collect()
                };
                let mut experts: Vec<usize> = (0..width).collect();
                experts.sort_by(|&a, &b| mean_influence[b].total_cmp(&mean_influence[a]));
                experts.truncate(if count == 0 { 0 } else { top_k });
                ClassSummary {
                    class,
                    count,
                    mean_influence,
                    experts,
                }
            })
            .collect();
        DatasetSummary {
            examples: self.examples,
            batches: self.batches,
            examples_resumed: self.resumed,
            neurons: width,
            example_shape: self.example_shape,
            classes,
            settings: settings.to_string(),
        }
    }
}

fn storage(path: &Path) -> impl Fn(std::io::Error) -> InfluenceError + '_ {
    move |e| InfluenceError::Storage {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to a temporary file beside `path` and renames it: a stop leaves the old
/// file or the new one, never a part.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InfluenceError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(storage(&tmp))?;
    file.write_all(bytes).map_err(storage(&tmp))?;
    // On disk before the rename, so that a crash of the machine leaves the old file or the
    // whole new one.
    file.sync_all().map_err(storage(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(storage(path))?;
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        // Best effort: directories cannot be opened for syncing everywhere.
        let _ = dir.sync_all();
    }
    Ok(())
}

/// FNV-1a (64-bit) of the inputs' float32 values and the targets.
fn input_hash<B: Backend, const D: usize>(
    batch: &DatasetBatch<B, D>,
) -> Result<u64, InfluenceError> {
    let values = batch.inputs.to_data().convert::<f32>().to_vec::<f32>()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for d in batch.inputs.dims() {
        eat(&(d as u64).to_le_bytes());
    }
    for v in values {
        eat(&v.to_bits().to_le_bytes());
    }
    for &t in &batch.targets {
        eat(&(t as u64).to_le_bytes());
    }
    Ok(h)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// One batch's results, as stored.
struct Stored<'a> {
    index: usize,
    first_example: usize,
    hash: u64,
    targets: &'a [usize],
    neurons: &'a [f32],
    width: usize,
    example_shape: &'a [usize],
    full: Option<&'a [f32]>,
}

fn write_batch(path: &Path, b: Stored<'_>) -> Result<(), InfluenceError> {
    let Stored {
        index,
        first_example,
        hash,
        targets,
        neurons,
        width,
        example_shape,
        full,
    } = b;
    let n = targets.len();
    let neuron_bytes = f32_bytes(neurons);
    let target_bytes: Vec<u8> = targets
        .iter()
        .flat_map(|&t| (t as i64).to_le_bytes())
        .collect();
    let full_bytes = full.map(f32_bytes);
    let bad = |e: safetensors::SafeTensorError| InfluenceError::Storage {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let mut tensors = vec![
        (
            "neurons".to_string(),
            TensorView::new(Dtype::F32, vec![n, width], &neuron_bytes).map_err(bad)?,
        ),
        (
            "targets".to_string(),
            TensorView::new(Dtype::I64, vec![n], &target_bytes).map_err(bad)?,
        ),
    ];
    if let Some(bytes) = &full_bytes {
        let mut s = vec![n];
        s.extend_from_slice(example_shape);
        tensors.push((
            "attribution".to_string(),
            TensorView::new(Dtype::F32, s, bytes).map_err(bad)?,
        ));
    }
    let metadata = HashMap::from([
        ("batch".to_string(), index.to_string()),
        ("first_example".to_string(), first_example.to_string()),
        ("input_hash".to_string(), format!("{hash:016x}")),
        (
            "example_shape".to_string(),
            serde_json::to_string(example_shape).expect("a shape serialises"),
        ),
    ]);
    let bytes = safetensors::serialize(tensors, Some(metadata)).map_err(bad)?;
    write_atomic(path, &bytes)
}

/// Reads a stored batch back, after checking that it is this run's batch `index`.
fn read_batch(
    path: &Path,
    index: usize,
    first_example: usize,
    hash: u64,
    targets: &[usize],
) -> Result<Done, InfluenceError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(storage(path))?;
    let unreadable = |e: safetensors::SafeTensorError| InfluenceError::Storage {
        path: shown.clone(),
        message: format!("not a readable batch file ({e}); delete it to recompute the batch"),
    };
    let (_, metadata) = SafeTensors::read_metadata(&bytes).map_err(unreadable)?;
    let meta = |key: &str| {
        metadata
            .metadata()
            .as_ref()
            .and_then(|m| m.get(key).cloned())
            .unwrap_or_default()
    };
    let stored_hash = meta("input_hash");
    if meta("batch") != index.to_string() || meta("first_example") != first_example.to_string() {
        return Err(InfluenceError::ResumeMismatch {
            path: shown,
            reason: format!(
                "it holds batch {:?} from example {:?}, this run's batch {index} starts at example {first_example} (a different batch size?)",
                meta("batch"),
                meta("first_example")
            ),
        });
    }
    if stored_hash != format!("{hash:016x}") {
        return Err(InfluenceError::ResumeMismatch {
            path: shown,
            reason: format!(
                "batch {index} of this run has other inputs or targets than the stored one (a different dataset, order or batch size)"
            ),
        });
    }
    let file = SafeTensors::deserialize(&bytes).map_err(unreadable)?;
    let neurons = file.tensor("neurons").map_err(unreadable)?;
    let shape = neurons.shape().to_vec();
    if neurons.dtype() != Dtype::F32
        || shape.len() != 2
        || shape[0] != targets.len()
        || shape[1] == 0
    {
        return Err(InfluenceError::Storage {
            path: shown,
            message: format!(
                "`neurons` is {:?} {shape:?}, expected F32 [{}, neurons ≥ 1]; delete the file to recompute the batch",
                neurons.dtype(),
                targets.len()
            ),
        });
    }
    let values = neurons
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let example_shape: Vec<usize> =
        serde_json::from_str(&meta("example_shape")).map_err(|e| InfluenceError::Storage {
            path: shown.clone(),
            message: format!(
                "metadata `example_shape` unreadable ({e}); delete the file to recompute the batch"
            ),
        })?;
    Ok(Done {
        index,
        targets: targets.to_vec(),
        neurons: values,
        width: shape[1],
        example_shape,
        resumed: true,
    })
}
