//! Captum's `NoiseTunnel` over a layer method (`captum.attr.NoiseTunnel`): the method's
//! attribution averaged over noisy copies of the input, `x + ε_s` with `ε_s ~ N(0, σ²)` per
//! value — SmoothGrad (Smilkov et al. 2017, arXiv:1706.03825), its square, and VarGrad
//! (Adebayo et al. 2018, arXiv:1810.03307):
//!
//! ```text
//! smoothgrad:    (1/S) Σ_s A(x + ε_s)
//! smoothgrad_sq: (1/S) Σ_s A(x + ε_s)²
//! vargrad:       (1/S) Σ_s A(x + ε_s)² − ((1/S) Σ_s A(x + ε_s))²
//! ```
//!
//! In the paper's terms it is a distribution of interest: Gaussian noise around the input,
//! combined with the method's own (the path from the baseline to each noisy input, for
//! Internal Influence). As in Captum, the baselines and per-example targets are repeated for
//! every noisy copy, as are additional forward arguments with one row per example, and the
//! noisy copies of all the examples go through one call, so
//! `internal_batch_size`, `threads` and `progress` apply to them as to any batch.
//!
//! The noise is drawn on the host from a seeded generator (`rand_chacha`'s ChaCha12, whose
//! stream is fixed across releases, and `rand_distr`'s normal distribution), so a call is
//! reproducible (the same noise on every backend); or it is
//! given, sample by sample ([`Noise::Given`]), e.g. to reproduce another library's draws.
//! A [`Target::Predicted`] is resolved for each noisy copy (its own
//! predicted class); give the classes to explain the clean input's prediction instead.

use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand_distr::{Distribution as _, Normal};

use crate::{
    AnyTensor, Baseline, Baselines, InfluenceError, Quantity, Target, TensorGroup, TensorMap,
};

/// How the attributions of the noisy copies are combined (Captum's `nt_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoiseType {
    /// Their mean (`"smoothgrad"`).
    SmoothGrad,
    /// The mean of their squares (`"smoothgrad_sq"`).
    SmoothGradSq,
    /// Their variance, `E[A²] − E[A]²` (`"vargrad"`).
    VarGrad,
}

impl NoiseType {
    /// Every type, in Captum's order.
    pub const ALL: [NoiseType; 3] = [
        NoiseType::SmoothGrad,
        NoiseType::SmoothGradSq,
        NoiseType::VarGrad,
    ];

    /// Captum's name: `smoothgrad`, `smoothgrad_sq` or `vargrad`.
    pub fn name(self) -> &'static str {
        match self {
            NoiseType::SmoothGrad => "smoothgrad",
            NoiseType::SmoothGradSq => "smoothgrad_sq",
            NoiseType::VarGrad => "vargrad",
        }
    }
}

impl core::str::FromStr for NoiseType {
    type Err = InfluenceError;

    /// Parses Captum's names (`smoothgrad`, `smoothgrad_sq`, `vargrad`).
    ///
    /// # Errors
    /// [`InfluenceError::UnknownNoiseType`] for any other string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NoiseType::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| InfluenceError::UnknownNoiseType { name: s.to_owned() })
    }
}

/// Where the noise comes from.
#[derive(Debug, Clone)]
pub enum Noise<I> {
    /// `samples` draws of `N(0, stdev²)` per input value (Captum's `nt_samples` and
    /// `stdevs`), from a generator seeded with `seed`.
    Gaussian {
        /// Noisy copies per example (Captum's `nt_samples`).
        samples: usize,
        /// Standard deviation of the noise, in the input's units (Captum's `stdevs`).
        stdev: f64,
        /// Seed of the generator: the same seed gives the same noise.
        seed: u64,
    },
    /// The noise itself, one sample per noisy copy, each shaped like the inputs
    /// (`[batch, ...]` per input).
    Given(Vec<I>),
}

/// A noise tunnel around an attribution call ([`crate::AttributeCall::noise_tunnel`]). See
/// the [module docs](self).
#[derive(Debug, Clone)]
pub struct NoiseTunnel<I> {
    /// How the noisy attributions are combined.
    pub nt_type: NoiseType,
    /// The noise.
    pub noise: Noise<I>,
}

impl<I> NoiseTunnel<I> {
    /// `samples` noisy copies with Gaussian noise of standard deviation `stdev`, drawn from a
    /// generator seeded with `seed` (Captum's `NoiseTunnel(method).attribute(..., nt_type,
    /// nt_samples=samples, stdevs=stdev)`).
    pub fn gaussian(nt_type: NoiseType, samples: usize, stdev: f64, seed: u64) -> Self {
        Self {
            nt_type,
            noise: Noise::Gaussian {
                samples,
                stdev,
                seed,
            },
        }
    }

    /// The given noise samples, each shaped like the inputs.
    pub fn given(nt_type: NoiseType, samples: Vec<I>) -> Self {
        Self {
            nt_type,
            noise: Noise::Given(samples),
        }
    }
}

/// The noisy copies of a call's inputs: `samples` copies, sample-major (row `s * batch + i` is
/// example `i` plus noise sample `s`), and everything else of the call repeated to match.
pub(crate) struct Expanded<G, B: Backend> {
    pub inputs: G,
    pub baselines: Baselines<B>,
    pub quantity: Quantity<B>,
    pub samples: usize,
}

/// Expands `inputs`, `baselines` and `quantity` for the noise of `noise` (the noise already on
/// the engine's backend, when given).
///
/// # Errors
/// [`InfluenceError::BatchMismatch`] for inputs of different batches;
/// [`InfluenceError::NoNoise`] for no samples; [`InfluenceError::BadStdev`] for a standard
/// deviation that is negative or not finite; [`InfluenceError::NoiseShape`] for a given
/// sample not shaped like the inputs.
pub(crate) fn expand<B: Backend, G: TensorGroup<B> + Clone>(
    inputs: G,
    baselines: Baselines<B>,
    quantity: Quantity<B>,
    noise: Noise<Vec<AnyTensor<B>>>,
) -> Result<Expanded<G, B>, InfluenceError> {
    let tensors = crate::tensor_group::collect(&inputs);
    let shapes: Vec<Vec<usize>> = tensors.iter().map(|t| t.shape().to_vec()).collect();
    let batch = shapes.first().map_or(0, |s| s[0]);
    if let Some((input, shape)) = shapes.iter().enumerate().find(|(_, s)| s[0] != batch) {
        return Err(InfluenceError::BatchMismatch {
            input,
            expected: batch,
            got: shape[0],
            shape: shape.clone(),
        });
    }
    let (samples, mut noises): (usize, Vec<Tensor<B, 2>>) = match noise {
        Noise::Gaussian {
            samples,
            stdev,
            seed,
        } => {
            if samples == 0 {
                return Err(InfluenceError::NoNoise);
            }
            let normal = Normal::new(0.0, stdev)
                .ok()
                .filter(|_| stdev.is_finite() && stdev >= 0.0)
                .ok_or(InfluenceError::BadStdev { stdev })?;
            let mut rng = rand_chacha::ChaCha12Rng::seed_from_u64(seed);
            let device = tensors.first().map(|t| t.flat().device());
            let noises = shapes
                .iter()
                .map(|shape| {
                    let features: usize = shape[1..].iter().product();
                    let values: Vec<f32> = (0..samples * batch * features)
                        .map(|_| normal.sample(&mut rng) as f32)
                        .collect();
                    Tensor::from_data(
                        TensorData::new(values, [samples * batch, features]),
                        device.as_ref().expect("an input"),
                    )
                })
                .collect();
            (samples, noises)
        }
        Noise::Given(given) => {
            if given.is_empty() {
                return Err(InfluenceError::NoNoise);
            }
            let mut per_input: Vec<Vec<Tensor<B, 2>>> = vec![Vec::new(); shapes.len()];
            for (s, sample) in given.iter().enumerate() {
                let got: Vec<Vec<usize>> = sample.iter().map(|t| t.shape().to_vec()).collect();
                if got != shapes {
                    return Err(InfluenceError::NoiseShape {
                        sample: s,
                        expected: shapes.clone(),
                        got,
                    });
                }
                for (i, t) in sample.iter().enumerate() {
                    per_input[i].push(t.flat().clone());
                }
            }
            let samples = given.len();
            (
                samples,
                per_input.into_iter().map(|v| Tensor::cat(v, 0)).collect(),
            )
        }
    };
    noises.reverse();
    let inputs = inputs.map_tensors(&mut AddNoise { noises, samples });
    let baselines = baselines.repeat(batch, samples);
    let quantity = match quantity {
        Quantity::Target(t) => Quantity::Target(repeat_target(t, samples)),
        Quantity::Comparative { of, against } => Quantity::Comparative {
            of: repeat_target(of, samples),
            against: repeat_target(against, samples),
        },
        q => q,
    };
    Ok(Expanded {
        inputs,
        baselines,
        quantity,
        samples,
    })
}

/// Combines the attributions of the noisy copies, `[samples * batch, features]`, into one
/// per example, `[batch, features]`.
pub(crate) fn combine<B: Backend>(
    nt_type: NoiseType,
    samples: usize,
    flat: Tensor<B, 2>,
) -> Tensor<B, 2> {
    let [rows, features] = flat.dims();
    let batch = rows / samples;
    let per_sample = flat.reshape([samples, batch, features]);
    let mean = |t: Tensor<B, 3>| t.mean_dim(0).reshape([batch, features]);
    match nt_type {
        NoiseType::SmoothGrad => mean(per_sample),
        NoiseType::SmoothGradSq => mean(per_sample.powi_scalar(2)),
        NoiseType::VarGrad => {
            let m = mean(per_sample.clone());
            mean(per_sample.powi_scalar(2)) - m.powi_scalar(2)
        }
    }
}

/// Per-example targets repeated for every sample (sample-major, like the inputs).
fn repeat_target(target: Target, samples: usize) -> Target {
    match target {
        Target::PerExample(v) => Target::PerExample(v.repeat(samples)),
        Target::PerExampleTuple(v) => {
            Target::PerExampleTuple((0..samples).flat_map(|_| v.iter().cloned()).collect())
        }
        t => t,
    }
}

/// Replaces each input `[batch, ...]` by its `samples` copies plus noise, `[samples * batch,
/// ...]`.
struct AddNoise<B: Backend> {
    /// The noise of each input, in reverse order (popped), `[samples * batch, features]`.
    noises: Vec<Tensor<B, 2>>,
    samples: usize,
}

impl<B: Backend> TensorMap<B> for AddNoise<B> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        let noise = self.noises.pop().expect("one noise per input");
        let mut shape = tensor.dims();
        shape[0] *= self.samples;
        let copies = tensor.repeat_dim(0, self.samples);
        copies + noise.reshape(shape)
    }
}

impl<B: Backend> Baselines<B> {
    /// Tensor baselines with one row per example repeated for every sample (sample-major).
    fn repeat(self, batch: usize, samples: usize) -> Self {
        let Some(v) = self.as_slice().map(<[_]>::to_vec) else {
            return self;
        };
        Baselines::from(
            v.into_iter()
                .map(|b| match b {
                    Baseline::Tensor(t) if t.batch() == batch && batch > 1 => {
                        let mut shape = t.shape().to_vec();
                        shape[0] *= samples;
                        Baseline::Tensor(AnyTensor::from_flat(
                            t.into_flat().repeat_dim(0, samples),
                            shape,
                        ))
                    }
                    b => b,
                })
                .collect::<Vec<_>>(),
        )
    }
}
