//! The paper's quantities and distributions of interest (Leino et al. 2018, §2) against what
//! they must equal: a comparative quantity is the difference of two single-target runs; a
//! function quantity equals the built-in one it spells out; the top class at the input is the
//! predicted class; the point distribution is the plain gradient (Captum's
//! `LayerGradientXActivation` without and with the activation); given points at the quadrature
//! nodes with the rule's weights are the path; chunks and threads do not change given points;
//! and the typed errors of the new arguments.

mod common;

use burn::tensor::{Tensor, TensorData};
use burn_influence::{
    Attribution, Distribution, InfluenceError, InternalInfluence, LayerConductance,
    LayerGradientXActivation, Method, Quantity, Target,
};
use common::{Backend, device};
use influence_digits::model::{DigitsCnn, DigitsCnnConfig};

type B = Backend;
type Inner = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;

const BATCH: usize = 4;

/// The digits CNN with Burn's random initialisation, seeded (the comparisons below are between
/// calls on the same model), and four deterministic 8×8 "digits" in [0, 1], `[4, 1, 8, 8]`.
fn model_and_inputs() -> (DigitsCnn<B>, Tensor<B, 4>) {
    <B as burn::tensor::backend::Backend>::seed(&device(), 20181);
    let model = DigitsCnnConfig::new().init::<B>(&device());
    let values: Vec<f32> = (0..BATCH * 64)
        .map(|i| {
            let (e, p) = ((i / 64) as f32, (i % 64) as f32);
            (0.5 + 0.5 * (0.37 * p + 1.3 * e).sin() * (0.11 * p * (e + 1.0)).cos()).clamp(0.0, 1.0)
        })
        .collect();
    let x = Tensor::from_data(TensorData::new(values, [BATCH, 1, 8, 8]), &device());
    (model, x)
}

fn values(a: &Attribution<Inner>) -> Vec<f32> {
    a.to_vec().unwrap()
}

/// Largest difference relative to the largest value of `a`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.0, "an all-zero reference proves nothing");
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn ii(model: &DigitsCnn<B>) -> InternalInfluence<B, DigitsCnn<B>> {
    InternalInfluence::new(model, "conv2").unwrap()
}

#[test]
fn a_comparative_quantity_is_the_difference_of_two_single_target_runs() {
    let (model, x) = model_and_inputs();
    let run = |target: Vec<usize>| {
        values(
            &ii(&model)
                .attribute(x.clone())
                .target(target)
                .n_steps(16)
                .run()
                .unwrap(),
        )
    };
    let (a, b) = (vec![3, 1, 7, 0], vec![8, 8, 2, 5]);
    let (fa, fb) = (run(a.clone()), run(b.clone()));
    let expected: Vec<f32> = fa.iter().zip(&fb).map(|(p, q)| p - q).collect();
    let comparative = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::comparative(a, b))
        .n_steps(16)
        .run()
        .unwrap();
    let d = rel_diff(&expected, &values(&comparative));
    assert!(d < 1e-5, "per-example comparative: relative difference {d}");

    // Shared classes: "3 rather than 8" for every example.
    let shared = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::comparative(3, 8))
        .n_steps(16)
        .run()
        .unwrap();
    let expected: Vec<f32> = run(vec![3; BATCH])
        .iter()
        .zip(&run(vec![8; BATCH]))
        .map(|(p, q)| p - q)
        .collect();
    let d = rel_diff(&expected, &values(&shared));
    assert!(d < 1e-5, "shared comparative: relative difference {d}");
}

#[test]
fn a_function_quantity_equals_the_quantity_it_spells_out() {
    let (model, x) = model_and_inputs();
    let builtin = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::comparative(3, 8))
        .n_steps(12)
        .run()
        .unwrap();
    let function = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::function(|out| {
            let rows = out.dims()[0];
            let f3 = out.clone().slice([0..rows, 3..4]).reshape([rows]);
            let f8 = out.slice([0..rows, 8..9]).reshape([rows]);
            f3 - f8
        }))
        .n_steps(12)
        .run()
        .unwrap();
    let d = rel_diff(&values(&builtin), &values(&function));
    assert!(d < 1e-6, "relative difference {d}");
}

#[test]
fn the_top_class_at_the_input_is_the_predicted_class() {
    let (model, x) = model_and_inputs();
    let predicted = ii(&model)
        .attribute(x.clone())
        .target(Target::Predicted)
        .distribution(Distribution::Point)
        .run()
        .unwrap();
    let top = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::TopClass)
        .distribution(Distribution::Point)
        .run()
        .unwrap();
    let d = rel_diff(&values(&predicted), &values(&top));
    assert!(d < 1e-6, "relative difference {d}");
}

#[test]
fn the_point_distribution_is_the_plain_gradient() {
    let (model, x) = model_and_inputs();
    let target = vec![2, 5, 9, 1];
    let gradient = LayerGradientXActivation::new(&model, "conv2")
        .unwrap()
        .multiply_by_inputs(false)
        .attribute(x.clone())
        .target(target.clone())
        .run()
        .unwrap();
    let point = ii(&model)
        .attribute(x.clone())
        .target(target.clone())
        .distribution(Distribution::Point)
        // Not used by the point distribution.
        .baselines(0.5)
        .n_steps(7)
        .run()
        .unwrap();
    let d = rel_diff(&values(&gradient), &values(&point));
    assert!(d < 1e-6, "gradient: relative difference {d}");

    // Times the activation: Captum's LayerGradientXActivation.
    let gxa = LayerGradientXActivation::new(&model, "conv2")
        .unwrap()
        .attribute(x.clone())
        .target(target.clone())
        .run()
        .unwrap();
    let attribution = ii(&model)
        .attribute(x.clone())
        .target(target)
        .distribution(Distribution::Point)
        .multiply_by_activation(true)
        .run()
        .unwrap();
    let d = rel_diff(&values(&gxa), &values(&attribution));
    assert!(d < 1e-6, "gradient x activation: relative difference {d}");
}

/// The path's points `x' + α_k (x − x')` as given points, with the rule's weights.
fn path_points(
    x: &Tensor<B, 4>,
    baseline: f32,
    rule: Method,
    n: usize,
) -> Distribution<Tensor<B, 4>> {
    let rule = rule.rule(n).unwrap();
    let diff = x.clone().sub_scalar(baseline);
    Distribution::Points {
        points: rule
            .alphas()
            .iter()
            .map(|&a| diff.clone().mul_scalar(a).add_scalar(baseline))
            .collect(),
        weights: rule.weights().to_vec(),
    }
}

#[test]
fn given_points_at_the_quadrature_nodes_are_the_path() {
    let (model, x) = model_and_inputs();
    for (method, n) in [(Method::GaussLegendre, 20), (Method::RiemannTrapezoid, 9)] {
        let path = ii(&model)
            .attribute(x.clone())
            .target(vec![0, 4, 6, 3])
            .baselines(0.25)
            .method(method)
            .n_steps(n)
            .run()
            .unwrap();
        let given = ii(&model)
            .attribute(x.clone())
            .target(vec![0, 4, 6, 3])
            .distribution(path_points(&x, 0.25, method, n))
            .run()
            .unwrap();
        let d = rel_diff(&values(&path), &values(&given));
        assert!(d < 1e-5, "{method:?}: relative difference {d}");
    }
}

#[test]
fn chunks_and_threads_do_not_change_given_points() {
    let (model, x) = model_and_inputs();
    let call = || {
        ii(&model)
            .attribute(x.clone())
            // The predicted class rather than classes 0..4: not zero for at least three.
            .quantity(Quantity::comparative(Target::Predicted, vec![0, 1, 2, 3]))
            .distribution(path_points(&x, 0.0, Method::GaussLegendre, 11))
    };
    let whole = values(&call().threads(1).run().unwrap());
    for (m, t) in [(4, 1), (8, 2), (12, 2)] {
        let chunked = values(&call().internal_batch_size(m).threads(t).run().unwrap());
        let d = rel_diff(&whole, &chunked);
        assert!(
            d < 1e-5,
            "internal_batch_size {m}, threads {t}: relative difference {d}"
        );
    }
}

#[test]
fn the_new_arguments_give_typed_errors() {
    let (model, x) = model_and_inputs();
    let points = |k: usize| vec![x.clone(); k];
    let err = |d: Distribution<Tensor<B, 4>>| {
        ii(&model)
            .attribute(x.clone())
            .target(1)
            .distribution(d)
            .run()
            .unwrap_err()
    };
    assert!(matches!(
        err(Distribution::Points {
            points: points(2),
            weights: vec![0.5]
        }),
        InfluenceError::PointWeights {
            points: 2,
            weights: 1
        }
    ));
    assert!(matches!(
        err(Distribution::Points {
            points: vec![],
            weights: vec![]
        }),
        InfluenceError::NoPoints
    ));
    assert!(matches!(
        err(Distribution::Points {
            points: points(2),
            weights: vec![0.5, f64::NAN]
        }),
        InfluenceError::BadWeight { index: 1, .. }
    ));
    let wrong = Tensor::<B, 4>::zeros([BATCH, 1, 8, 7], &device());
    match err(Distribution::Points {
        points: vec![x.clone(), wrong],
        weights: vec![0.5, 0.5],
    }) {
        InfluenceError::PointShape {
            point: 1,
            input: 0,
            expected,
            got,
        } => {
            assert_eq!(
                (expected, got),
                (vec![BATCH, 1, 8, 8], vec![BATCH, 1, 8, 7])
            );
        }
        e => panic!("expected PointShape, got {e:?}"),
    }
    let mut bad = x.clone().into_data().to_vec::<f32>().unwrap();
    bad[5] = f32::INFINITY;
    let bad = Tensor::<B, 4>::from_data(TensorData::new(bad, [BATCH, 1, 8, 8]), &device());
    assert!(matches!(
        err(Distribution::Points {
            points: vec![x.clone(), bad],
            weights: vec![0.5, 0.5]
        }),
        InfluenceError::NonFinite {
            argument: "points",
            input: 0
        }
    ));

    let lc = LayerConductance::new(&model, "conv2").unwrap();
    assert!(matches!(
        lc.attribute(x.clone())
            .target(1)
            .distribution(Distribution::Point)
            .run(),
        Err(InfluenceError::UnsupportedDistribution {
            method: "LayerConductance",
            distribution: "Point"
        })
    ));
    assert!(matches!(
        lc.attribute(x.clone())
            .target(1)
            .multiply_by_activation(true)
            .run(),
        Err(InfluenceError::NotForMethod {
            option: "multiply_by_activation",
            method: "LayerConductance"
        })
    ));

    let shape = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::function(|out| out.sum_dim(1).reshape([-1])))
        .n_steps(4)
        .run();
    assert!(
        shape.is_ok(),
        "a function that returns one value per row is fine: {shape:?}"
    );
    let shape = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::function(|out| out.sum()))
        .n_steps(4)
        .run();
    assert!(
        matches!(&shape, Err(InfluenceError::QuantityShape { got, rows: 8, .. }) if got == &vec![1]),
        "{shape:?}"
    );
    let panics = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::function(|_| panic!("no such class")))
        .n_steps(4)
        .run();
    assert!(
        matches!(&panics, Err(InfluenceError::QuantityPanicked { message }) if message == "no such class"),
        "{panics:?}"
    );
    let count = ii(&model)
        .attribute(x.clone())
        .quantity(Quantity::comparative(vec![1, 2], 3))
        .run();
    assert!(matches!(
        count,
        Err(InfluenceError::TargetCount {
            got: 2,
            batch: BATCH
        })
    ));
}

#[test]
fn a_gaussian_noise_tunnel_is_seeded_and_without_noise_is_the_method() {
    use burn_influence::{NoiseTunnel, NoiseType};
    let (model, x) = model_and_inputs();
    let target = vec![3, 1, 4, 1];
    let plain = values(
        &ii(&model)
            .attribute(x.clone())
            .target(target.clone())
            .n_steps(8)
            .run()
            .unwrap(),
    );
    let tunnel = |nt_type, stdev, seed| {
        values(
            &ii(&model)
                .attribute(x.clone())
                .target(target.clone())
                .n_steps(8)
                .noise_tunnel(NoiseTunnel::gaussian(nt_type, 3, stdev, seed))
                .run()
                .unwrap(),
        )
    };
    // No noise: three identical copies.
    let d = rel_diff(&plain, &tunnel(NoiseType::SmoothGrad, 0.0, 1));
    assert!(
        d < 1e-5,
        "smoothgrad without noise: relative difference {d}"
    );
    let squares: Vec<f32> = plain.iter().map(|v| v * v).collect();
    let d = rel_diff(&squares, &tunnel(NoiseType::SmoothGradSq, 0.0, 1));
    assert!(
        d < 1e-5,
        "smoothgrad_sq without noise: relative difference {d}"
    );
    let var = tunnel(NoiseType::VarGrad, 0.0, 1);
    let scale = squares.iter().fold(0f32, |m, v| m.max(*v));
    assert!(
        var.iter().all(|v| v.abs() <= 1e-5 * scale),
        "vargrad without noise"
    );

    // Noise: the same seed gives the same numbers, another seed others, all near the method's.
    let (a, b, c) = (
        tunnel(NoiseType::SmoothGrad, 0.1, 7),
        tunnel(NoiseType::SmoothGrad, 0.1, 7),
        tunnel(NoiseType::SmoothGrad, 0.1, 8),
    );
    assert_eq!(a, b, "same seed");
    let d = rel_diff(&a, &c);
    assert!(d > 1e-4, "another seed gives other noise: {d}");
    let d = rel_diff(&plain, &a);
    assert!(
        d > 1e-4 && d < 1.0,
        "noise of 0.1 moves the result, not beyond it: {d}"
    );
    let var = tunnel(NoiseType::VarGrad, 0.1, 7);
    assert!(
        var.iter().all(|v| *v >= -1e-6 * scale),
        "a variance is not negative"
    );
    assert!(var.iter().any(|v| *v > 0.0), "noise gives a variance");

    let err = |nt| {
        ii(&model)
            .attribute(x.clone())
            .target(target.clone())
            .noise_tunnel(nt)
            .run()
            .unwrap_err()
    };
    assert!(matches!(
        err(NoiseTunnel::gaussian(NoiseType::SmoothGrad, 0, 0.1, 1)),
        InfluenceError::NoNoise
    ));
    assert!(matches!(
        err(NoiseTunnel::gaussian(NoiseType::SmoothGrad, 2, -0.1, 1)),
        InfluenceError::BadStdev { .. }
    ));
    let wrong = Tensor::<B, 4>::zeros([BATCH, 1, 4, 4], &device());
    assert!(matches!(
        err(NoiseTunnel::given(
            NoiseType::VarGrad,
            vec![x.clone(), wrong]
        )),
        InfluenceError::NoiseShape { sample: 1, .. }
    ));
    // A wrong per-example target count is reported against the caller's batch.
    let count = ii(&model)
        .attribute(x.clone())
        .target(vec![1, 2])
        .noise_tunnel(NoiseTunnel::gaussian(NoiseType::SmoothGrad, 3, 0.1, 1))
        .run();
    assert!(matches!(
        count,
        Err(InfluenceError::TargetCount {
            got: 2,
            batch: BATCH
        })
    ));
    // Off the path there is no n_steps to choose.
    let tolerance = ii(&model)
        .attribute(x.clone())
        .target(target.clone())
        .distribution(Distribution::Point)
        .run_to_tolerance(1e-3);
    assert!(matches!(
        tolerance,
        Err(InfluenceError::NotForMethod {
            option: "run_to_tolerance",
            ..
        })
    ));
    assert!(matches!(
        "smoothgrad_sq".parse::<NoiseType>(),
        Ok(NoiseType::SmoothGradSq)
    ));
    assert!(matches!(
        "smooth".parse::<NoiseType>(),
        Err(InfluenceError::UnknownNoiseType { .. })
    ));
}

#[test]
fn the_top_class_follows_the_largest_output_along_the_path() {
    let (model, x) = model_and_inputs();
    let n = 6;
    let rule = Method::GaussLegendre.rule(n).unwrap();
    let top = values(
        &ii(&model)
            .attribute(x.clone())
            .quantity(Quantity::TopClass)
            .n_steps(n)
            .run()
            .unwrap(),
    );
    // Independently: at each node, the arg-max class of each example (from the model's
    // inference forward), explained as a one-point distribution with the node's weight.
    let mut sum = vec![0f32; top.len()];
    let mut classes_seen = std::collections::BTreeSet::new();
    for (&a, &w) in rule.alphas().iter().zip(rule.weights()) {
        let z = x.clone().mul_scalar(a);
        let logits = burn_influence::predict(&model, z.clone(), &()).unwrap();
        let classes: Vec<usize> = logits
            .to_vec()
            .unwrap()
            .chunks(10)
            .map(|row| (0..10).max_by(|&i, &j| row[i].total_cmp(&row[j])).unwrap())
            .collect();
        classes_seen.extend(classes.iter().copied());
        let node = values(
            &ii(&model)
                .attribute(x.clone())
                .target(classes)
                .distribution(Distribution::Points {
                    points: vec![z],
                    weights: vec![w],
                })
                .run()
                .unwrap(),
        );
        for (s, v) in sum.iter_mut().zip(node) {
            *s += v;
        }
    }
    let d = rel_diff(&sum, &top);
    assert!(
        d < 1e-5,
        "relative difference {d} (classes along the path: {classes_seen:?})"
    );
}

#[test]
fn a_noise_tunnel_repeats_per_example_forward_arguments() {
    use burn_influence::{NoiseTunnel, NoiseType};
    use influence_testkit::captum_models::{BasicModelMultiLayer, MultiLayerOptions};
    let model = BasicModelMultiLayer::<B>::new(MultiLayerOptions::default(), &device());
    let t = |v: Vec<f32>| Tensor::<B, 2>::from_data(TensorData::new(v, [3, 3]), &device());
    let x = t(vec![0.5, 1.0, -2.0, 3.0, 0.25, 1.5, -1.0, 2.0, 0.75]);
    // One row per example: repeated for every noisy copy, as Captum does.
    let add = t(vec![1.0, -0.5, 2.0, 0.0, 1.5, -1.0, 0.5, 0.5, 3.0]);
    let noise = [
        t(vec![0.3, -0.2, 0.1, 0.0, 0.4, -0.6, 0.2, 0.1, -0.3]),
        t(vec![-0.1, 0.5, 0.2, -0.4, 0.1, 0.3, -0.2, 0.0, 0.6]),
    ];
    let ii = InternalInfluence::new(&model, "relu").unwrap();
    let call = |x: Tensor<B, 2>| {
        ii.attribute(x)
            .target(vec![0, 1, 1])
            .additional_forward_args(Some(add.clone()))
            .n_steps(10)
    };
    let tunnel = values(
        &call(x.clone())
            .noise_tunnel(NoiseTunnel::given(NoiseType::SmoothGrad, noise.to_vec()))
            .run()
            .unwrap(),
    );
    let one = |k: usize| values(&call(x.clone() + noise[k].clone()).run().unwrap());
    let mean: Vec<f32> = one(0)
        .iter()
        .zip(one(1))
        .map(|(a, b)| (a + b) / 2.0)
        .collect();
    let d = rel_diff(&mean, &tunnel);
    assert!(d < 1e-5, "relative difference {d}");
}
