//! Training the digits CNN: Adam on the cross-entropy, seeded initialisation and shuffling.

use burn::config::Config;
use burn::module::AutodiffModule;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::Digits;
use crate::model::{DigitsCnn, DigitsCnnConfig};

/// Training settings.
#[derive(Config, Debug)]
pub struct TrainConfig {
    /// Passes over the training set.
    #[config(default = 20)]
    pub epochs: usize,
    /// Examples per step.
    #[config(default = 32)]
    pub batch_size: usize,
    /// Adam's learning rate.
    #[config(default = 2e-3)]
    pub learning_rate: f64,
    /// Seed of the initialisation and of the shuffling.
    #[config(default = 42)]
    pub seed: u64,
}

/// What the training reports after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Current epoch, from 1.
    pub epoch: usize,
    /// Steps done in all, and in total.
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// Mean loss of the epoch so far, read at the end of each epoch (`None` before).
    pub epoch_loss: Option<f32>,
}

/// Trains a new model on the digits `train`, calling `progress` after every step.
pub fn train<B: AutodiffBackend>(
    data: &Digits,
    train: &[usize],
    config: &TrainConfig,
    device: &B::Device,
    mut progress: impl FnMut(Progress),
) -> DigitsCnn<B> {
    B::seed(device, config.seed);
    let mut model = DigitsCnnConfig::new().init::<B>(device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut order = train.to_vec();
    let per_epoch = order.len().div_ceil(config.batch_size);
    let steps = per_epoch * config.epochs;
    let mut step = 0;
    for epoch in 1..=config.epochs {
        order.shuffle(&mut rng);
        let mut loss_sum = None;
        for batch in order.chunks(config.batch_size) {
            let logits = model.forward(data.images::<B>(batch, device));
            let loss = loss_fn.forward(logits, data.label_tensor::<B>(batch, device));
            let detached = loss.clone().detach() * batch.len() as f32;
            loss_sum = Some(match loss_sum {
                None => detached,
                Some(s) => s + detached,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
            step += 1;
            let last = step % per_epoch == 0;
            let epoch_loss = last
                .then(|| loss_sum.clone())
                .flatten()
                .map(|s| s.into_scalar().elem::<f32>() / order.len() as f32);
            progress(Progress {
                epoch,
                step,
                steps,
                epoch_loss,
            });
        }
    }
    model
}

/// The predicted class of each digit `idx`, computed in batches without autodiff.
pub fn predict<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    idx: &[usize],
    device: &B::Device,
) -> Vec<usize> {
    let model = model.valid();
    predict_inner::<B::InnerBackend>(&model, data, idx, device)
}

fn predict_inner<B: Backend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    idx: &[usize],
    device: &B::Device,
) -> Vec<usize> {
    idx.chunks(512)
        .flat_map(|batch| classes(model.forward(data.images::<B>(batch, device))))
        .collect()
}

/// The class with the largest logit, per example.
///
/// # Shapes
/// - logits: `[batch, classes]`
pub fn classes<B: Backend>(logits: Tensor<B, 2>) -> Vec<usize> {
    logits
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("argmax gives integers")
        .into_iter()
        .map(|c| c as usize)
        .collect()
}

/// Share of `predictions` equal to the labels of `idx`.
pub fn accuracy(data: &Digits, idx: &[usize], predictions: &[usize]) -> f64 {
    let right = idx
        .iter()
        .zip(predictions)
        .filter(|(i, p)| data.labels[**i] == **p)
        .count();
    right as f64 / idx.len().max(1) as f64
}
