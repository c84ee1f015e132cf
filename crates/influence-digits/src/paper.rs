//! The paper's three kinds of result (Leino et al. 2018, "Influence-Directed Explanations for
//! Deep Convolutional Networks", arXiv:1802.03788, §3–4) on the digits CNN:
//!
//! 1. **Experts of a class** (§3, §4.1): the distributional influence of each channel of a
//!    layer on the class's output `F_c`, with the class's own held-out digits as the
//!    distribution of interest ([`distributional_influence`], [`class_experts`]); the experts
//!    are the channels with the largest influence, drawn in input space with
//!    [`crate::explain::expert_maps`].
//! 2. **The essence of a class** (§4.2): keep only the class's `k` top experts at the layer
//!    (every other channel zeroed) and measure how much of the class survives
//!    ([`essence`]): the share of its digits still predicted as `c`, the margin
//!    `F_c − max_{j≠c} F_j` and the probability of `c`, against keeping `k` random channels
//!    and the `k` least influential ones.
//! 3. **What distinguishes two confusable classes** (§4.3): the comparative quantity
//!    `F_a − F_b` (`Quantity::comparative(a, b)`) over the `a` digits; zeroing its top
//!    channels must lower the margin `F_a − F_b` far more than zeroing random channels, and
//!    flip some `a`s to `b` ([`zero_effect`], [`comparative`]).
//!
//! Every influence here comes from the library's call (`InternalInfluence` with
//! `.quantity(..)` and `.distribution(..)`); channels are the paper's neurons summed over
//! positions (`Attribution::per_channel`). [`run`] runs the whole study and writes
//! `paper.json` and the figures.

use std::path::PathBuf;

use burn::module::AutodiffModule;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use influence_core::{Distribution, Eval, InfluenceError, InternalInfluence, Method, Quantity};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::Serialize;

use crate::data::{CLASSES, Digits};
use crate::explain::{ClassChannels, ExpertMaps, expert_maps};
use crate::model::{Ablation, DigitsCnn, spatial_shape};
use crate::{DigitsError, RunConfig, Stage, load_or_train};

pub use crate::report::{
    ClassEssence, Comparative, ComparativeRow, EssenceRow, Outcome, Pair, ZeroEffect,
};

/// The distribution of interest each digit contributes to a class's distributional influence
/// (the class's digits are the distribution; this is where, around each digit, the gradient
/// is taken).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Doi {
    /// The digit itself: the plain gradient (`Distribution::Point`). The paper's expectation
    /// over the class's instances.
    Point,
    /// The straight path from the zero image to the digit, `n_steps` Gauss-Legendre points
    /// (`Distribution::Path`, Captum's `InternalInfluence`).
    Path {
        /// Quadrature points.
        n_steps: usize,
    },
}

impl core::fmt::Display for Doi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Doi::Point => f.write_str("point"),
            Doi::Path { n_steps } => write!(f, "path (gausslegendre, n_steps {n_steps})"),
        }
    }
}

/// The distributional influence of each channel of `layer` on `quantity`, with the examples
/// `x` as the distribution of interest: one attribution call over all of them (each example
/// at its point or along its path, `doi`), each example's influence summed over positions
/// (`per_channel`), then averaged over the examples:
/// `χ_j = (1/n) Σ_i Σ_{positions} E_{z~doi(x_i)} ∂q(z)/∂h_j` (§2, with the class's digits as
/// `P`).
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`, `n ≥ 1`
/// - returns: `[channels]`
///
/// # Errors
/// The call's [`InfluenceError`]s (an unknown layer, no inputs, a bad target).
pub fn distributional_influence<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    quantity: Quantity<Eval<B>>,
    doi: Doi,
    internal_batch_size: usize,
) -> Result<Vec<f32>, InfluenceError> {
    let call = InternalInfluence::new(model, layer)?
        .attribute(x)
        .quantity(quantity)
        .internal_batch_size(internal_batch_size);
    let call = match doi {
        Doi::Point => call.distribution(Distribution::Point),
        Doi::Path { n_steps } => call.n_steps(n_steps).method(Method::GaussLegendre),
    };
    let per_channel = call.run()?.per_channel()?;
    let [n, channels] = per_channel.dims();
    let values = host(per_channel);
    Ok((0..channels)
        .map(|c| {
            (0..n)
                .map(|i| f64::from(values[i * channels + c]))
                .sum::<f64>()
                / n as f64
        })
        .map(|v| v as f32)
        .collect())
}

/// The digits of `idx` labelled `class`.
pub fn members(data: &Digits, idx: &[usize], class: usize) -> Vec<usize> {
    idx.iter()
        .copied()
        .filter(|&i| data.labels[i] == class)
        .collect()
}

/// Per class, its channels of `layer` ranked by distributional influence on its own output
/// `F_c`, with the digits of `idx` labelled `c` as the distribution (§3). A class without
/// digits gets zeros.
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial, and the call's errors.
pub fn class_experts<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    data: &Digits,
    idx: &[usize],
    layer: &str,
    doi: Doi,
    internal_batch_size: usize,
    device: &B::Device,
) -> Result<Vec<ClassChannels>, DigitsError> {
    let channels = channels_of(layer)?;
    (0..CLASSES)
        .map(|class| {
            let m = members(data, idx, class);
            let mean = if m.is_empty() {
                vec![0.0; channels]
            } else {
                distributional_influence(
                    model,
                    layer,
                    data.images::<B>(&m, device),
                    Quantity::Target(class.into()),
                    doi,
                    internal_batch_size,
                )?
            };
            Ok(ClassChannels::from_mean(class, m.len(), mean))
        })
        .collect()
}

/// `draws` sets of `k` distinct channels out of `channels`, drawn uniformly from a generator
/// seeded with `seed` (the same seed, the same sets).
pub fn random_channels(channels: usize, k: usize, draws: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..draws)
        .map(|_| {
            let mut all: Vec<usize> = (0..channels).collect();
            all.shuffle(&mut rng);
            all.truncate(k.min(channels));
            all
        })
        .collect()
}

/// The logits with each channel `c` of `layer` multiplied by `scale[c]` (1 keeps it, 0 zeroes
/// it) in every example, from the model's inference forward.
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`
/// - scale: `[channels]`
/// - returns: `[n, 10]` row-major
pub fn logits_scaled<B: Backend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    scale: &[f32],
) -> Vec<f32> {
    let [n, ..] = x.dims();
    let c = scale.len();
    let keep = Tensor::<B, 2>::from_data(TensorData::new(scale.repeat(n), [n, c]), &x.device());
    host(model.forward_ablated(x, &Ablation { layer, keep }))
}

/// `[channels]`: 1 on the `picked` channels, 0 elsewhere (`on = true`); the reverse with
/// `on = false`.
///
/// # Errors
/// [`DigitsError::Channel`] for a picked channel outside `0..channels`.
pub fn mask(channels: usize, picked: &[usize], on: bool) -> Result<Vec<f32>, DigitsError> {
    let (hit, miss) = if on { (1.0, 0.0) } else { (0.0, 1.0) };
    let mut m = vec![miss; channels];
    for &p in picked {
        *m.get_mut(p).ok_or(DigitsError::Channel {
            channel: p,
            channels,
        })? = hit;
    }
    Ok(m)
}

/// The channels of a spatial layer.
fn channels_of(layer: &str) -> Result<usize, DigitsError> {
    spatial_shape(layer)
        .map(|(channels, _)| channels)
        .ok_or_else(|| DigitsError::Layer {
            name: layer.to_string(),
        })
}

/// The outcome of `class` on the digits `x` when only the channels `keep` of `layer` are kept
/// (all others zeroed); `None` keeps them all (the plain forward).
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial (when `keep` is given),
/// [`DigitsError::Channel`] for a kept channel the layer does not have.
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`
pub fn keep_only<B: Backend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    class: usize,
    keep: Option<&[usize]>,
) -> Result<Outcome, DigitsError> {
    let logits = match keep {
        None => host(model.forward(x)),
        Some(k) => logits_scaled(model, layer, x, &mask(channels_of(layer)?, k, true)?),
    };
    Ok(Outcome::of(&logits, CLASSES, class))
}

/// The experts of one class under the three rankings the essence compares.
#[derive(Debug, Clone, Copy)]
pub struct Rankings<'a> {
    /// On the held-out digits, the study's distribution of interest.
    pub held_out: &'a ClassChannels,
    /// On the training digits.
    pub train: &'a ClassChannels,
    /// On the held-out digits, the other distribution of interest.
    pub other_doi: &'a ClassChannels,
}

/// The essence of `class` on its digits `x` (§4.2): for each `k` of `ks`, the outcome with
/// only its top-`k` experts kept, against the `draws` random `k`-sets (seeded by `seed`, `k`
/// and the class) and its `k` least influential channels.
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`, the class's digits
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial.
#[allow(clippy::too_many_arguments)]
pub fn essence<B: Backend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    class: usize,
    rankings: Rankings<'_>,
    ks: &[usize],
    draws: usize,
    seed: u64,
) -> Result<ClassEssence, DigitsError> {
    let channels = rankings.held_out.mean_influence.len();
    let outcome = |keep: &[usize]| keep_only(model, layer, x.clone(), class, Some(keep));
    let rows = ks
        .iter()
        .map(|&k| {
            let random: Vec<Outcome> = random_channels(
                channels,
                k,
                draws,
                seed.wrapping_add((class * 1000 + k) as u64),
            )
            .iter()
            .map(|set| outcome(set))
            .collect::<Result<_, _>>()?;
            let (lo, hi) = random.iter().fold((f64::MAX, f64::MIN), |(l, h), o| {
                (l.min(o.preserved), h.max(o.preserved))
            });
            Ok(EssenceRow {
                k,
                experts: outcome(rankings.held_out.top(k))?,
                experts_train: outcome(rankings.train.top(k))?,
                experts_other_doi: outcome(rankings.other_doi.top(k))?,
                random: Outcome::mean(&random),
                random_preserved_range: (lo, hi),
                bottom: outcome(&rankings.held_out.bottom(k))?,
            })
        })
        .collect::<Result<_, DigitsError>>()?;
    Ok(ClassEssence {
        class,
        digits: x.dims()[0],
        all: keep_only(model, layer, x, class, None)?,
        rows,
    })
}

/// The essence over all classes: each outcome averaged over the classes weighted by their
/// digits (so `preserved` is the share of all the digits kept in their class).
pub fn pooled(classes: &[ClassEssence]) -> Vec<EssenceRow> {
    let total: usize = classes.iter().map(|c| c.digits).sum();
    let Some(first) = classes.first() else {
        return Vec::new();
    };
    (0..first.rows.len())
        .map(|r| {
            let w = |c: &ClassEssence| c.digits as f64 / total.max(1) as f64;
            let sum = |f: &dyn Fn(&EssenceRow) -> Outcome| {
                classes.iter().fold(Outcome::default(), |a, c| {
                    a.plus(f(&c.rows[r]).scaled(w(c)))
                })
            };
            let (lo, hi) = classes.iter().fold((0.0, 0.0), |(l, h), c| {
                let (cl, ch) = c.rows[r].random_preserved_range;
                (l + cl * w(c), h + ch * w(c))
            });
            EssenceRow {
                k: first.rows[r].k,
                experts: sum(&|e| e.experts),
                experts_train: sum(&|e| e.experts_train),
                experts_other_doi: sum(&|e| e.experts_other_doi),
                random: sum(&|e| e.random),
                random_preserved_range: (lo, hi),
                bottom: sum(&|e| e.bottom),
            }
        })
        .collect()
}

/// `confusion[true][predicted]`: counts of each label predicted as each class.
pub fn confusion(labels: &[usize], predicted: &[usize]) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0; CLASSES]; CLASSES];
    for (&l, &p) in labels.iter().zip(predicted) {
        m[l][p] += 1;
    }
    m
}

/// The pair of the comparative study: the pair of classes with the most held-out digits of
/// either predicted as the other (`confusion`, see [`confusion`]) when that count stands out
/// (at least 2, and no other pair has as many), oriented so that `of` is the class more often
/// taken for the other (ties: the larger mean probability `soft[of][against]` its digits give
/// the other); else the paper's 3 vs 8. `soft[a][b]` is the mean probability of `b` on the
/// `a` digits.
pub fn most_confusable(confusion: &[Vec<usize>], soft: &[Vec<f64>]) -> Pair {
    let pair = |a: usize, b: usize| {
        let (of, against) = if (confusion[a][b], soft[a][b]) >= (confusion[b][a], soft[b][a]) {
            (a, b)
        } else {
            (b, a)
        };
        Pair {
            of,
            against,
            confusions: confusion[a][b] + confusion[b][a],
            soft: soft[a][b] + soft[b][a],
        }
    };
    let pairs: Vec<Pair> = (0..CLASSES)
        .flat_map(|a| (a + 1..CLASSES).map(move |b| (a, b)))
        .map(|(a, b)| pair(a, b))
        .collect();
    let most = pairs.iter().map(|p| p.confusions).max().unwrap_or(0);
    let at_most: Vec<&Pair> = pairs.iter().filter(|p| p.confusions == most).collect();
    match at_most[..] {
        [p] if most >= 2 => *p,
        _ => Pair {
            of: 3,
            against: 8,
            ..pair(3, 8)
        },
    }
}

/// The effect on the digits `x` of zeroing the channels `zero` of `layer`: the margin
/// `F_of − F_against`, its drop from the plain forward, the shares predicted as `against` and
/// as `of`.
///
/// # Errors
/// [`DigitsError::Layer`] for a layer that is not spatial, [`DigitsError::Channel`] for a
/// zeroed channel the layer does not have.
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`
pub fn zero_effect<B: Backend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    of: usize,
    against: usize,
    zero: &[usize],
) -> Result<ZeroEffect, DigitsError> {
    let channels = channels_of(layer)?;
    let margins = |logits: &[f32]| -> Vec<f64> {
        logits
            .chunks(CLASSES)
            .map(|r| f64::from(r[of]) - f64::from(r[against]))
            .collect()
    };
    let before = margins(&host(model.forward(x.clone())));
    let logits = logits_scaled(model, layer, x, &mask(channels, zero, false)?);
    let after = margins(&logits);
    let n = before.len().max(1) as f64;
    let argmax = |r: &[f32]| {
        (0..r.len())
            .max_by(|&a, &b| r[a].total_cmp(&r[b]))
            .expect("classes")
    };
    let predicted: Vec<usize> = logits.chunks(CLASSES).map(argmax).collect();
    Ok(ZeroEffect {
        margin: after.iter().sum::<f64>() / n,
        margin_drop: before.iter().zip(&after).map(|(b, a)| b - a).sum::<f64>() / n,
        flipped: predicted.iter().filter(|&&p| p == against).count() as f64 / n,
        still: predicted.iter().filter(|&&p| p == of).count() as f64 / n,
    })
}

/// The comparative study of `pair` on the digits `x` of `pair.of` (§4.3): the channels ranked
/// by the distributional influence of `F_of − F_against` (`Quantity::comparative`), and for
/// each `k` the effect of zeroing its top `k`, the top `k` experts of `of` (`class`), `draws`
/// random `k`-sets and its `k` least influential channels.
///
/// # Shapes
/// - x: `[n, 1, 8, 8]`, the `of` digits, `n ≥ 1`
///
/// # Errors
/// The call's [`InfluenceError`]s (as [`DigitsError::Influence`]), [`DigitsError::Layer`]
/// for a layer that is not spatial.
#[allow(clippy::too_many_arguments)]
pub fn comparative<B: AutodiffBackend>(
    model: &DigitsCnn<B>,
    layer: &str,
    x: Tensor<B, 4>,
    pair: Pair,
    class: &ClassChannels,
    doi: Doi,
    internal_batch_size: usize,
    ks: &[usize],
    draws: usize,
    seed: u64,
) -> Result<Comparative, DigitsError> {
    let n = x.dims()[0];
    let mean = distributional_influence(
        model,
        layer,
        x.clone(),
        Quantity::comparative(pair.of, pair.against),
        doi,
        internal_batch_size,
    )?;
    let influence = ClassChannels::from_mean(pair.of, n, mean);
    let channels = influence.mean_influence.len();
    let inference = model.valid();
    let x = x.inner();
    let effect =
        |zero: &[usize]| zero_effect(&inference, layer, x.clone(), pair.of, pair.against, zero);
    let rows = ks
        .iter()
        .map(|&k| {
            let random: Vec<ZeroEffect> = random_channels(channels, k, draws, seed ^ 0x3808)
                .iter()
                .map(|s| effect(s))
                .collect::<Result<_, _>>()?;
            Ok(ComparativeRow {
                k,
                comparative: effect(influence.top(k))?,
                class_experts: effect(class.top(k))?,
                random: ZeroEffect::mean(&random),
                bottom: effect(&influence.bottom(k))?,
            })
        })
        .collect::<Result<_, DigitsError>>()?;
    let plain = effect(&[])?;
    Ok(Comparative {
        pair,
        digits: n,
        influence,
        plain,
        rows,
    })
}

/// The layer whose activation shows what makes a channel of `layer` fire: a convolution's
/// ReLU (`conv1` → `relu1`, `conv2` → `relu2`), else the layer itself.
pub fn fired(layer: &str) -> &str {
    match layer {
        "conv1" => "relu1",
        "conv2" => "relu2",
        other => other,
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("floats")
}

/// Settings of the paper study.
#[derive(Debug, Clone)]
pub struct PaperConfig {
    /// Data, weights (the main job's, reused when present), training and split.
    pub run: RunConfig,
    /// The explained layer (a spatial layer; default `conv2`).
    pub layer: String,
    /// The distribution of interest around each digit (default the point).
    pub doi: Doi,
    /// `k` of the essence (channels kept); the layer's channel count is added if missing.
    pub essence_ks: Vec<usize>,
    /// `k` of the comparative measurement (channels zeroed).
    pub zero_ks: Vec<usize>,
    /// Random draws per `k`.
    pub draws: usize,
    /// Seed of the random channel sets.
    pub seed: u64,
    /// Experts marked per class in the figure and drawn in input space.
    pub experts_shown: usize,
    /// The pair (`of`, `against`); `None`: the most confusable on the held-out digits.
    pub pair: Option<(usize, usize)>,
    /// Rows per pass of the attribution calls.
    pub internal_batch_size: usize,
}

impl PaperConfig {
    /// Defaults on top of a [`RunConfig`].
    pub fn new(run: RunConfig) -> Self {
        Self {
            run,
            layer: "conv2".into(),
            doi: Doi::Point,
            essence_ks: vec![1, 2, 4, 8, 16, 32],
            zero_ks: vec![1, 2, 4, 8, 16],
            draws: 20,
            seed: 2018,
            experts_shown: 3,
            pair: None,
            internal_batch_size: 4096,
        }
    }
}

/// The experts of one class in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassExperts {
    /// The class.
    pub class: usize,
    /// Held-out digits of the class (its distribution of interest).
    pub digits: usize,
    /// Distributional influence of each channel (the study's distribution of interest).
    pub influence: Vec<f32>,
    /// Channels by decreasing influence.
    pub ranking: Vec<usize>,
    /// The same under the other distribution of interest.
    pub influence_other_doi: Vec<f32>,
    /// Ranking under the other distribution of interest.
    pub ranking_other_doi: Vec<usize>,
    /// Ranking on the class's training digits (the study's distribution of interest).
    pub ranking_train: Vec<usize>,
}

/// Settings recorded in `paper.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PaperSettings {
    /// The layer.
    pub layer: String,
    /// The layer whose channels are drawn in input space: [`fired`] of the layer.
    pub maps_layer: String,
    /// The distribution of interest around each digit.
    pub doi: String,
    /// The other one, compared in the essence.
    pub other_doi: String,
    /// Random draws per `k`.
    pub draws: usize,
    /// Their seed.
    pub seed: u64,
    /// The weights file.
    pub weights: String,
    /// Whether they were trained in this run.
    pub trained: bool,
    /// Backend.
    pub backend: String,
}

/// `paper.json`.
#[derive(Debug, Clone, Serialize)]
pub struct PaperReport {
    /// How the run was made.
    pub settings: PaperSettings,
    /// Held-out accuracy.
    pub accuracy: f64,
    /// Held-out digits.
    pub held_out: usize,
    /// `confusion[true][predicted]` on the held-out digits.
    pub confusion: Vec<Vec<usize>>,
    /// Per class, its experts (§3).
    pub experts: Vec<ClassExperts>,
    /// Per class, its essence (§4.2).
    pub essence: Vec<ClassEssence>,
    /// The essence over all classes.
    pub essence_pooled: Vec<EssenceRow>,
    /// Per class, its experts in input space.
    pub expert_maps: Vec<ExpertMaps>,
    /// What tells the pair apart (§4.3).
    pub comparative: Comparative,
    /// The comparative experts in input space, on the `of` digits and on the `against` digits.
    pub comparative_maps: [ExpertMaps; 2],
}

/// What the study produced.
#[derive(Debug, Clone)]
pub struct PaperSummary {
    /// `paper.json`'s content.
    pub report: PaperReport,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// Runs the study on backend `B`: loads (or trains and saves) the main job's model, ranks the
/// experts of every class, measures the essence, picks the pair and measures the comparative
/// experts; writes `paper.json` and, with the `render` feature, `paper-experts.png`,
/// `paper-essence.png` and `paper-comparative.png` into `config.run.out`.
///
/// # Errors
/// [`DigitsError`] for unreadable data, a non-spatial layer, weights that do not load, files
/// that cannot be written, and attribution errors.
pub fn run<B: AutodiffBackend>(
    config: &PaperConfig,
    device: &B::Device,
    mut stage: impl FnMut(Stage),
) -> Result<PaperSummary, DigitsError> {
    let layer = config.layer.as_str();
    let channels = channels_of(layer)?;
    let rc = &config.run;
    let data = Digits::load(&rc.data)?;
    let (train_idx, held_out) = data.stratified_split(rc.test_fraction, rc.split_seed);
    let (model, trained) = load_or_train::<B>(rc, &data, &train_idx, device, &mut stage)?;
    std::fs::create_dir_all(&rc.out).map_err(crate::io(&rc.out))?;
    let inference = model.valid();
    let predicted = crate::train::predict(&model, &data, &held_out, device);
    let accuracy = crate::train::accuracy(&data, &held_out, &predicted);
    let labels: Vec<usize> = held_out.iter().map(|&i| data.labels[i]).collect();
    let confusion = confusion(&labels, &predicted);

    // 1. Experts (§3): under the study's distribution, the other one, and on training digits.
    stage(Stage::Explaining(held_out.len()));
    let other = match config.doi {
        Doi::Point => Doi::Path { n_steps: 50 },
        Doi::Path { .. } => Doi::Point,
    };
    let ibs = config.internal_batch_size;
    let experts = class_experts(&model, &data, &held_out, layer, config.doi, ibs, device)?;
    let experts_other = class_experts(&model, &data, &held_out, layer, other, ibs, device)?;
    let experts_train = class_experts(&model, &data, &train_idx, layer, config.doi, ibs, device)?;

    // 2. Essence (§4.2).
    let mut ks = config.essence_ks.clone();
    ks.retain(|&k| k >= 1 && k <= channels);
    if !ks.contains(&channels) {
        ks.push(channels);
    }
    let essence: Vec<ClassEssence> = (0..CLASSES)
        .map(|c| {
            let m = members(&data, &held_out, c);
            essence(
                &inference,
                layer,
                data.images::<B::InnerBackend>(&m, device),
                c,
                Rankings {
                    held_out: &experts[c],
                    train: &experts_train[c],
                    other_doi: &experts_other[c],
                },
                &ks,
                config.draws,
                config.seed,
            )
        })
        .collect::<Result<_, _>>()?;
    let essence_pooled = pooled(&essence);

    // 3. Comparative (§4.3): the pair from the confusion matrix unless given.
    let probabilities = {
        let x = data.images::<B::InnerBackend>(&held_out, device);
        let p = burn::tensor::activation::softmax(inference.forward(x), 1);
        host(p)
    };
    let mut soft = vec![vec![0f64; CLASSES]; CLASSES];
    let mut count = [0usize; CLASSES];
    for (i, &l) in labels.iter().enumerate() {
        count[l] += 1;
        for (b, s) in soft[l].iter_mut().enumerate() {
            *s += f64::from(probabilities[i * CLASSES + b]);
        }
    }
    for (row, &n) in soft.iter_mut().zip(&count) {
        for s in row.iter_mut() {
            *s /= n.max(1) as f64;
        }
    }
    let pair = match config.pair {
        Some((of, against)) => Pair {
            of,
            against,
            confusions: confusion[of][against] + confusion[against][of],
            soft: soft[of][against] + soft[against][of],
        },
        None => most_confusable(&confusion, &soft),
    };
    let of_digits = members(&data, &held_out, pair.of);
    let against_digits = members(&data, &held_out, pair.against);
    let comparative = comparative(
        &model,
        layer,
        data.images::<B>(&of_digits, device),
        pair,
        &experts[pair.of],
        config.doi,
        ibs,
        &config.zero_ks,
        config.draws,
        config.seed,
    )?;

    // Input space: what makes each expert fire, its channel after the ReLU (the same
    // channel; at conv2 the influence counts only the positions where it is active).
    stage(Stage::Figures);
    let view = fired(layer);
    let shown = config.experts_shown;
    let mut maps = Vec::new();
    for e in &experts {
        let top = e.top(shown).to_vec();
        let infl: Vec<f64> = top
            .iter()
            .map(|&t| f64::from(e.mean_influence[t]))
            .collect();
        let m = members(&data, &held_out, e.class);
        maps.push(expert_maps(
            &model, view, &data, e.class, &m, &top, &infl, device,
        )?);
    }
    let comp_top = comparative.influence.top(shown.max(4)).to_vec();
    let comp_infl: Vec<f64> = comp_top
        .iter()
        .map(|&t| f64::from(comparative.influence.mean_influence[t]))
        .collect();
    let comparative_maps = [
        expert_maps(
            &model, view, &data, pair.of, &of_digits, &comp_top, &comp_infl, device,
        )?,
        expert_maps(
            &model,
            view,
            &data,
            pair.against,
            &against_digits,
            &comp_top,
            &comp_infl,
            device,
        )?,
    ];

    let report = PaperReport {
        settings: PaperSettings {
            layer: layer.to_string(),
            maps_layer: view.to_string(),
            doi: config.doi.to_string(),
            other_doi: other.to_string(),
            draws: config.draws,
            seed: config.seed,
            weights: rc.weights.display().to_string(),
            trained,
            backend: rc.backend.clone(),
        },
        accuracy,
        held_out: held_out.len(),
        confusion,
        experts: (0..CLASSES)
            .map(|c| ClassExperts {
                class: c,
                digits: experts[c].count,
                influence: experts[c].mean_influence.clone(),
                ranking: experts[c].ranking.clone(),
                influence_other_doi: experts_other[c].mean_influence.clone(),
                ranking_other_doi: experts_other[c].ranking.clone(),
                ranking_train: experts_train[c].ranking.clone(),
            })
            .collect(),
        essence,
        essence_pooled,
        expert_maps: maps,
        comparative,
        comparative_maps,
    };
    let mut files = Vec::new();
    #[cfg(feature = "render")]
    files.extend(write_figures(config, &report, &experts)?);
    let json_path = rc.out.join("paper.json");
    let json = serde_json::to_string_pretty(&report).expect("the report serialises");
    std::fs::write(&json_path, json).map_err(crate::io(&json_path))?;
    files.push(json_path);
    Ok(PaperSummary { report, files })
}

#[cfg(feature = "render")]
fn write_figures(
    config: &PaperConfig,
    report: &PaperReport,
    experts: &[ClassChannels],
) -> Result<Vec<PathBuf>, DigitsError> {
    let out = &config.run.out;
    let s = &report.settings;
    let mut files = Vec::new();
    let path = out.join("paper-experts.png");
    crate::render::paper_experts(
        &path,
        &format!(
            "Experts of each class at {} (Leino et al. 2018, §3)\nleft: distributional influence of each channel on F_c over the class's held-out digits ({} distribution), top {} marked\nright: what each marked expert responds to, the Integrated Gradients of its {} activation (summed over positions) on the input, averaged over the class's digits",
            s.layer, s.doi, config.experts_shown, s.maps_layer
        ),
        experts,
        &report.expert_maps,
    )?;
    files.push(path);
    let path = out.join("paper-essence.png");
    crate::render::paper_essence(
        &path,
        &format!(
            "The essence of a class at {} (§4.2): held-out digits still predicted as their class with only k channels kept\nexperts ranked by {} influence on the held-out digits; random: mean of {} seeded draws (band: min–max); least influential: influence closest to zero",
            s.layer, s.doi, s.draws
        ),
        &report.essence,
        &report.essence_pooled,
    )?;
    files.push(path);
    let path = out.join("paper-comparative.png");
    let c = &report.comparative;
    crate::render::paper_comparative(
        &path,
        &format!(
            "What makes a {a} a {a} rather than a {b} at {} (§4.3): comparative quantity F_{a} − F_{b} over the {n} held-out {a}s ({})",
            s.layer,
            s.doi,
            a = c.pair.of,
            b = c.pair.against,
            n = c.digits
        ),
        c,
        &report.comparative_maps,
        &s.maps_layer,
    )?;
    files.push(path);
    Ok(files)
}
