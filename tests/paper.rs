//! The paper study of the digits CNN (`influence_digits::paper`, Leino et al. 2018 §3–4)
//! against what it must equal, on a small seeded model and hand-made inputs: the
//! distributional influence of a class is the mean of per-example calls (at the point and
//! along the path); the comparative one is the difference of two class influences; the
//! essence with every channel kept is the class's plain accuracy; zeroing every channel
//! leaves an output that does not depend on the input; the rankings, random sets and the
//! choice of the confusable pair pick the right channels and classes on hand-made values.

mod common;

use burn::module::AutodiffModule;
use burn_influence::{Distribution, InternalInfluence, Quantity, Target};
use common::{Backend, device};
use influence_digits::DigitsError;
use influence_digits::data::Digits;
use influence_digits::explain::ClassChannels;
use influence_digits::model::{DigitsCnn, DigitsCnnConfig};
use influence_digits::paper::{self, Doi, Outcome, Rankings};

type B = Backend;

const N: usize = 6;

/// The digits CNN with Burn's seeded random initialisation and six deterministic 8×8
/// "digits" in [0, 1].
fn model_and_digits() -> (DigitsCnn<B>, Digits) {
    <B as burn::tensor::backend::Backend>::seed(&device(), 26);
    let model = DigitsCnnConfig::new().init::<B>(&device());
    let pixels = (0..N)
        .map(|e| {
            core::array::from_fn(|p| {
                let (e, p) = (e as f32, p as f32);
                (0.5 + 0.5 * (0.37 * p + 1.3 * e).sin() * (0.11 * p * (e + 1.0)).cos())
                    .clamp(0.0, 1.0)
            })
        })
        .collect();
    let digits = Digits {
        pixels,
        labels: vec![0; N],
    };
    (model, digits)
}

fn all(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Largest difference relative to the largest value of `a`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "an all-zero reference proves nothing");
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

#[test]
fn distributional_influence_is_the_mean_of_per_example_calls() {
    let (model, digits) = model_and_digits();
    let x = digits.images::<B>(&all(N), &device());
    for doi in [Doi::Point, Doi::Path { n_steps: 8 }] {
        let dist = paper::distributional_influence(
            &model,
            "conv2",
            x.clone(),
            Quantity::Target(Target::Index(3)),
            doi,
            64,
        )
        .unwrap();
        assert_eq!(dist.len(), 32);
        // One call per digit, its [1, 32, 8, 8] attribution summed over positions by hand.
        let mut expected = vec![0f32; 32];
        for i in 0..N {
            let call = InternalInfluence::new(&model, "conv2")
                .unwrap()
                .attribute(digits.images::<B>(&[i], &device()))
                .target(3);
            let call = match doi {
                Doi::Point => call.distribution(Distribution::Point),
                Doi::Path { n_steps } => call.n_steps(n_steps),
            };
            let values = call.run().unwrap().to_vec().unwrap();
            for (c, plane) in values.chunks(64).enumerate() {
                expected[c] += plane.iter().sum::<f32>() / N as f32;
            }
        }
        let d = rel_diff(&expected, &dist);
        assert!(d < 1e-5, "{doi}: relative difference {d}");
    }
}

#[test]
fn comparative_influence_is_the_difference_of_two_class_influences() {
    let (model, digits) = model_and_digits();
    let x = digits.images::<B>(&all(N), &device());
    let dist = |q| paper::distributional_influence(&model, "relu2", x.clone(), q, Doi::Point, 64);
    let f3 = dist(Quantity::Target(Target::Index(3))).unwrap();
    let f8 = dist(Quantity::Target(Target::Index(8))).unwrap();
    let comparative = dist(Quantity::comparative(3, 8)).unwrap();
    let expected: Vec<f32> = f3.iter().zip(&f8).map(|(a, b)| a - b).collect();
    let d = rel_diff(&expected, &comparative);
    assert!(d < 1e-5, "relative difference {d}");
    // And the study's ranking of it is by that difference.
    let ranked = ClassChannels::from_mean(3, N, comparative);
    let best = (0..32)
        .max_by(|&a, &b| expected[a].total_cmp(&expected[b]))
        .unwrap();
    assert_eq!(ranked.top(1), &[best]);
}

#[test]
fn the_essence_with_every_channel_kept_is_the_plain_accuracy_of_the_class() {
    // A model fitted for a few steps to tell the first three digits (class 1) from the last
    // three (class 6), so that it predicts more than one class.
    let (_, mut digits) = model_and_digits();
    digits.labels = vec![1, 1, 1, 6, 6, 6];
    let config = influence_digits::train::TrainConfig::new()
        .with_epochs(30)
        .with_batch_size(N)
        .with_learning_rate(1e-2);
    let model = influence_digits::train::train::<B>(&digits, &all(N), &config, &device(), |_| {});
    let predicted = influence_digits::train::predict(&model, &digits, &all(N), &device());
    // Label every digit 1: the class's accuracy is the share of digits predicted as 1.
    let class = 1;
    digits.labels = vec![class; N];
    let accuracy = influence_digits::train::accuracy(&digits, &all(N), &predicted);
    assert!(
        accuracy > 0.0 && accuracy < 1.0,
        "a share strictly between 0 and 1 tests more: {predicted:?}"
    );
    let inference = model.valid();
    let x = digits
        .images::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend>(&all(N), &device());
    let experts =
        paper::class_experts(&model, &digits, &all(N), "conv2", Doi::Point, 64, &device()).unwrap();
    let c = &experts[class];
    let e = paper::essence(
        &inference,
        "conv2",
        x.clone(),
        class,
        Rankings {
            held_out: c,
            train: c,
            other_doi: c,
        },
        &[1, 32],
        3,
        7,
    )
    .unwrap();
    assert_eq!(e.digits, N);
    assert_eq!(e.all.preserved, accuracy);
    let kept_all = &e.rows[1];
    assert_eq!(kept_all.k, 32);
    for o in [
        kept_all.experts,
        kept_all.random,
        kept_all.bottom,
        kept_all.experts_train,
    ] {
        assert_eq!(o.preserved, accuracy);
        assert!((o.margin - e.all.margin).abs() < 1e-6);
        assert!((o.probability - e.all.probability).abs() < 1e-9);
    }
    // The margin is F_c minus the largest other logit, from the plain forward.
    let logits = inference.forward(x).into_data().to_vec::<f32>().unwrap();
    let margin: f64 = logits
        .chunks(10)
        .map(|r| {
            let other = (0..10)
                .filter(|&j| j != class)
                .map(|j| r[j])
                .fold(f32::MIN, f32::max);
            f64::from(r[class] - other)
        })
        .sum::<f64>()
        / N as f64;
    assert!(
        (e.all.margin - margin).abs() < 1e-5,
        "{} vs {margin}",
        e.all.margin
    );
    // Keeping one channel changes the logits.
    assert_ne!(e.rows[0].experts.margin, e.all.margin);
}

#[test]
fn outcome_and_zeroing_on_hand_made_values() {
    // Two examples, three classes: [1, 3, 0] (class 0 loses to 1 by 2), [2, 1, 0] (wins by 1).
    let o = Outcome::of(&[1.0, 3.0, 0.0, 2.0, 1.0, 0.0], 3, 0);
    assert_eq!(o.preserved, 0.5);
    assert!((o.margin - (-0.5)).abs() < 1e-12);
    let p = |r: [f64; 3]| r[0].exp() / r.iter().map(|v| v.exp()).sum::<f64>();
    let expected = (p([1.0, 3.0, 0.0]) + p([2.0, 1.0, 0.0])) / 2.0;
    assert!((o.probability - expected).abs() < 1e-12);

    // Zeroing nothing changes nothing; zeroing every channel of conv2 leaves logits that do
    // not depend on the input (the same margin for every digit).
    let (model, digits) = model_and_digits();
    let inference = model.valid();
    let x = digits.images(&all(N), &device());
    let none = paper::zero_effect(&inference, "conv2", x.clone(), 3, 8, &[]).unwrap();
    assert_eq!(none.margin_drop, 0.0);
    let logits = paper::logits_scaled(&inference, "conv2", x.clone(), &[0.0; 32]);
    for row in logits.chunks(10) {
        assert_eq!(row, &logits[..10]);
    }
    let everything = paper::zero_effect(&inference, "conv2", x.clone(), 3, 8, &all(32)).unwrap();
    let m = f64::from(logits[3] - logits[8]);
    assert!((everything.margin - m).abs() < 1e-5);
    assert!((everything.margin_drop - (none.margin - m)).abs() < 1e-5);
    // Bad input is a typed error: a layer without channel maps, a channel it does not have.
    assert!(matches!(
        paper::zero_effect(&inference, "fc1", x.clone(), 3, 8, &[0]),
        Err(DigitsError::Layer { .. })
    ));
    assert!(matches!(
        paper::zero_effect(&inference, "conv2", x, 3, 8, &[32]),
        Err(DigitsError::Channel {
            channel: 32,
            channels: 32
        })
    ));
}

#[test]
fn rankings_random_sets_and_the_pair_on_hand_made_values() {
    let c = ClassChannels::from_mean(4, 10, vec![0.1, -0.5, 2.0, 0.3, 0.0]);
    assert_eq!(c.ranking, vec![2, 3, 0, 4, 1]);
    assert_eq!(c.top(2), &[2, 3]);
    // Least influential: closest to zero.
    assert_eq!(c.bottom(2), vec![4, 0]);
    assert_eq!(
        paper::mask(5, c.top(2), true).unwrap(),
        vec![0., 0., 1., 1., 0.]
    );
    assert_eq!(
        paper::mask(5, c.top(2), false).unwrap(),
        vec![1., 1., 0., 0., 1.]
    );
    assert!(matches!(
        paper::mask(5, &[2, 5], true),
        Err(DigitsError::Channel {
            channel: 5,
            channels: 5
        })
    ));

    let draws = paper::random_channels(32, 4, 10, 9);
    assert_eq!(draws, paper::random_channels(32, 4, 10, 9), "seeded");
    assert_ne!(draws, paper::random_channels(32, 4, 10, 10));
    for d in &draws {
        let mut s = d.clone();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 4);
        assert!(s.iter().all(|&ch| ch < 32));
    }
    assert!(draws.iter().any(|d| d != &draws[0]));
    assert_eq!(paper::random_channels(32, 40, 1, 0)[0].len(), 32);

    // The pair: most confusions both ways when they stand out, oriented to the class more
    // often mistaken.
    let mut confusion = vec![vec![0; 10]; 10];
    let mut soft = vec![vec![0.0; 10]; 10];
    confusion[9][5] = 2;
    confusion[5][9] = 1;
    confusion[1][7] = 2;
    soft[1][7] = 0.01;
    let labels = [9, 9, 5, 1, 1];
    let predicted = [5, 5, 9, 7, 7];
    assert_eq!(paper::confusion(&labels, &predicted)[9][5], 2);
    let p = paper::most_confusable(&confusion, &soft);
    assert_eq!((p.of, p.against, p.confusions), (9, 5, 3));
    // A tie for the most confusions: the paper's 3 vs 8 (with its own counts).
    confusion[7][1] = 1;
    let p = paper::most_confusable(&confusion, &soft);
    assert_eq!((p.of, p.against, p.confusions), (3, 8, 0));
    // A single confusion does not stand out either.
    let mut one = vec![vec![0; 10]; 10];
    one[8][6] = 1;
    let p = paper::most_confusable(&one, &vec![vec![0.0; 10]; 10]);
    assert_eq!((p.of, p.against), (3, 8));
    // Equal counts in both directions: the probability orients the pair.
    let mut two = vec![vec![0; 10]; 10];
    two[4][9] = 1;
    two[9][4] = 1;
    let mut soft = vec![vec![0.0; 10]; 10];
    soft[9][4] = 0.2;
    soft[4][9] = 0.1;
    let p = paper::most_confusable(&two, &soft);
    assert_eq!((p.of, p.against, p.confusions), (9, 4, 2));
    assert!((p.soft - 0.3).abs() < 1e-12);
}

/// The study's per-class experts come from the same call as a direct distributional
/// influence over the class's digits (and a class without digits gets zeros).
#[test]
fn class_experts_rank_each_class_over_its_own_digits() {
    let (model, mut digits) = model_and_digits();
    digits.labels = vec![2, 2, 2, 7, 7, 7];
    let experts =
        paper::class_experts(&model, &digits, &all(N), "conv2", Doi::Point, 64, &device()).unwrap();
    assert_eq!(experts.len(), 10);
    assert_eq!(experts[0].count, 0);
    assert!(experts[0].mean_influence.iter().all(|&v| v == 0.0));
    for (class, idx) in [(2, [0, 1, 2]), (7, [3, 4, 5])] {
        let direct = paper::distributional_influence(
            &model,
            "conv2",
            digits.images::<B>(&idx, &device()),
            Quantity::Target(Target::Index(class)),
            Doi::Point,
            64,
        )
        .unwrap();
        assert_eq!(experts[class].count, 3);
        assert_eq!(experts[class].mean_influence, direct);
        let top = experts[class].top(1)[0];
        assert!(direct.iter().all(|&v| v <= direct[top]));
    }
    // Different digits, different experts' influence.
    assert_ne!(experts[2].mean_influence, experts[7].mean_influence);
}
