//! The results of the paper's study ([`crate::paper`]) that its figures draw
//! ([`crate::render`]): how a class fares with some channels kept or zeroed, per class and `k`,
//! and the comparative quantity's effect. Data only, apart from the arithmetic of the outcomes;
//! `paper.rs` computes them and `render.rs` draws them without importing `paper.rs`.

use serde::Serialize;

use crate::explain::ClassChannels;

/// How a class fares in a set of digits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Outcome {
    /// Share of the digits predicted as the class.
    pub preserved: f64,
    /// Mean margin of the class, `F_c − max_{j≠c} F_j` (positive: predicted as `c`).
    pub margin: f64,
    /// Mean softmax probability of the class.
    pub probability: f64,
}

impl Outcome {
    /// The outcome of `class` from logits `[n, classes]` row-major.
    pub fn of(logits: &[f32], classes: usize, class: usize) -> Self {
        let n = logits.len() / classes;
        let mut o = Outcome::default();
        for row in logits.chunks(classes) {
            let fc = f64::from(row[class]);
            let other = (0..classes)
                .filter(|&j| j != class)
                .map(|j| f64::from(row[j]))
                .fold(f64::NEG_INFINITY, f64::max);
            let top = row.iter().map(|&v| f64::from(v)).fold(fc, f64::max);
            let z: f64 = row.iter().map(|&v| (f64::from(v) - top).exp()).sum();
            o.preserved += f64::from(u8::from(fc > other));
            o.margin += fc - other;
            o.probability += (fc - top).exp() / z;
        }
        o.scaled(1.0 / n.max(1) as f64)
    }

    pub(crate) fn scaled(self, s: f64) -> Self {
        Outcome {
            preserved: self.preserved * s,
            margin: self.margin * s,
            probability: self.probability * s,
        }
    }

    pub(crate) fn plus(self, o: Outcome) -> Self {
        Outcome {
            preserved: self.preserved + o.preserved,
            margin: self.margin + o.margin,
            probability: self.probability + o.probability,
        }
    }

    /// The mean of several outcomes (zero for none).
    pub fn mean(outcomes: &[Outcome]) -> Self {
        outcomes
            .iter()
            .fold(Outcome::default(), |a, &o| a.plus(o))
            .scaled(1.0 / outcomes.len().max(1) as f64)
    }
}

/// One `k` of a class's essence: its outcome with only `k` channels kept.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EssenceRow {
    /// Channels kept.
    pub k: usize,
    /// Keeping the class's `k` top experts (ranked on the held-out digits, the study's
    /// distribution of interest).
    pub experts: Outcome,
    /// Keeping the `k` top experts ranked on the class's training digits instead (experts
    /// chosen without the digits they are measured on).
    pub experts_train: Outcome,
    /// Keeping the `k` top experts under the other distribution of interest (path if the
    /// study's is the point, else point).
    pub experts_other_doi: Outcome,
    /// Keeping `k` random channels: the mean over the draws.
    pub random: Outcome,
    /// Smallest and largest preserved share over the random draws.
    pub random_preserved_range: (f64, f64),
    /// Keeping the class's `k` least influential channels (influence closest to zero,
    /// [`ClassChannels::bottom`]).
    pub bottom: Outcome,
}

/// A class's essence at several `k`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassEssence {
    /// The class.
    pub class: usize,
    /// Its held-out digits.
    pub digits: usize,
    /// With every channel: the plain outcome (`preserved` is the class's held-out accuracy).
    pub all: Outcome,
    /// Per `k`.
    pub rows: Vec<EssenceRow>,
}

/// A pair of classes and how confusable they are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Pair {
    /// The class whose digits are explained (`F_of − F_against`).
    pub of: usize,
    /// The class it is told apart from.
    pub against: usize,
    /// Held-out digits of either class predicted as the other.
    pub confusions: usize,
    /// Mean probability given to the other class, summed over both directions.
    pub soft: f64,
}

/// What zeroing some channels does to the comparison of `of` and `against` on a set of digits.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ZeroEffect {
    /// Mean margin `F_of − F_against` after zeroing.
    pub margin: f64,
    /// Mean drop of that margin (before − after).
    pub margin_drop: f64,
    /// Share of the digits predicted as `against` after zeroing.
    pub flipped: f64,
    /// Share still predicted as `of`.
    pub still: f64,
}

impl ZeroEffect {
    pub(crate) fn mean(effects: &[ZeroEffect]) -> Self {
        let n = effects.len().max(1) as f64;
        effects
            .iter()
            .fold(ZeroEffect::default(), |a, e| ZeroEffect {
                margin: a.margin + e.margin / n,
                margin_drop: a.margin_drop + e.margin_drop / n,
                flipped: a.flipped + e.flipped / n,
                still: a.still + e.still / n,
            })
    }
}

/// One `k` of the comparative measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ComparativeRow {
    /// Channels zeroed.
    pub k: usize,
    /// Zeroing the top `k` channels by comparative influence.
    pub comparative: ZeroEffect,
    /// Zeroing the top `k` experts of `of` alone (class quantity `F_of`).
    pub class_experts: ZeroEffect,
    /// Zeroing `k` random channels: the mean over the draws.
    pub random: ZeroEffect,
    /// Zeroing the `k` channels of least comparative influence (closest to zero).
    pub bottom: ZeroEffect,
}

/// The comparative study of a pair (§4.3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparative {
    /// The pair and how it was chosen.
    pub pair: Pair,
    /// Held-out digits of `of` (the distribution of interest and the measured set).
    pub digits: usize,
    /// Channels ranked by comparative influence `F_of − F_against` over the `of` digits.
    pub influence: ClassChannels,
    /// Nothing zeroed: the plain margin `F_of − F_against` and the shares predicted as
    /// `against` and as `of`.
    pub plain: ZeroEffect,
    /// Per `k`: the effect of zeroing.
    pub rows: Vec<ComparativeRow>,
}
