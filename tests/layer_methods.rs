//! The sibling layer methods beyond their golden values: several layers in one pass equal the
//! single-layer calls; chunking and threads do not change Conductance (whose chunks overlap by
//! one point) or Layer IG; the convergence delta shrinks as `n_steps` grows; and the typed
//! errors of the new arguments.

mod common;

use std::path::Path;

use burn::tensor::Tensor;
use burn_influence::{
    Attribution, InfluenceError, InternalInfluence, LayerActivation, LayerConductance,
    LayerGradientXActivation, LayerIntegratedGradients, Method, Target,
};
use common::{Backend, device};
use influence_testkit::golden::{load_file, model_layers};
use influence_testkit::sequential::{Act, Data, Sequential};

type B = Backend;
type Inner = <B as burn::tensor::backend::AutodiffBackend>::InnerBackend;

/// A golden case's CNN (conv1 → act1 (tanh) → pool1 → flatten → head), and its batch of
/// four inputs `[4, 3, 8, 8]`.
fn cnn() -> (Sequential<B>, Act<B>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden/internal_influence/g028_cnn_head_riemann_trapezoid_50.json");
    let case = &load_file(&path).unwrap()[0];
    let model = Sequential::from_specs(&model_layers(case).unwrap(), &device());
    let text = std::fs::read_to_string(&path).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inputs: Data = serde_json::from_value(value["inputs"].clone()).unwrap();
    (model, inputs.act(&device()))
}

fn values(a: &Attribution<Inner>) -> Vec<f32> {
    a.to_vec().unwrap()
}

/// Largest difference relative to the largest value.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn several_layers_in_one_pass_equal_the_single_layer_calls() {
    let (model, x) = cnn();
    let layers = ["conv1", "act1", "pool1", "head"];
    let ii = InternalInfluence::with_layers(&model, layers).unwrap();
    let all = ii
        .attribute(x.clone())
        .target(Target::PerExample(vec![0, 3, 1, 2]))
        .n_steps(20)
        .run_layers()
        .unwrap();
    assert_eq!(all.len(), layers.len());
    for (layer, joint) in layers.iter().zip(&all) {
        assert_eq!(joint.layer(), *layer);
        let alone = InternalInfluence::new(&model, *layer)
            .unwrap()
            .attribute(x.clone())
            .target(Target::PerExample(vec![0, 3, 1, 2]))
            .n_steps(20)
            .run()
            .unwrap();
        assert_eq!(joint.shape().unwrap(), alone.shape().unwrap());
        let d = rel_diff(&values(&alone), &values(joint));
        assert!(d < 1e-5, "{layer}: relative difference {d}");
        assert!(
            values(&alone).iter().any(|v| *v != 0.0),
            "{layer}: all zero"
        );
    }
    // Conductance too, chunked and on two threads.
    let lc = LayerConductance::with_layers(&model, ["conv1", "act1"]).unwrap();
    let all = lc
        .attribute(x.clone())
        .target(2)
        .n_steps(16)
        .internal_batch_size(12)
        .threads(2)
        .run_layers()
        .unwrap();
    for (layer, joint) in ["conv1", "act1"].iter().zip(&all) {
        let alone = LayerConductance::new(&model, *layer)
            .unwrap()
            .attribute(x.clone())
            .target(2)
            .n_steps(16)
            .run()
            .unwrap();
        let d = rel_diff(&values(&alone), &values(joint));
        assert!(d < 1e-5, "conductance {layer}: relative difference {d}");
    }
}

#[test]
fn chunks_and_threads_do_not_change_conductance_or_layer_ig() {
    let (model, x) = cnn();
    let lc = LayerConductance::new(&model, "act1").unwrap();
    let lig = LayerIntegratedGradients::new(&model, "pool1").unwrap();
    let run_lc = |m: Option<usize>, threads: usize| {
        let mut call = lc
            .attribute(x.clone())
            .target(3)
            .n_steps(23)
            .method(Method::RiemannTrapezoid)
            .threads(threads);
        if let Some(m) = m {
            call = call.internal_batch_size(m);
        }
        values(&call.run().unwrap())
    };
    let run_lig = |m: Option<usize>, threads: usize| {
        let mut call = lig
            .attribute(x.clone())
            .target(3)
            .n_steps(23)
            .threads(threads);
        if let Some(m) = m {
            call = call.internal_batch_size(m);
        }
        values(&call.run().unwrap())
    };
    let (lc_whole, lig_whole) = (run_lc(None, 1), run_lig(None, 1));
    // Batch 4: from one step a pass (below two steps, conductance still makes progress with
    // one interval a pass) to all of them.
    for (m, threads) in [(3, 1), (8, 1), (9, 2), (24, 2), (100, 3)] {
        let d = rel_diff(&lc_whole, &run_lc(Some(m), threads));
        assert!(
            d < 1e-5,
            "conductance, internal_batch_size {m}, {threads} threads: {d}"
        );
        let d = rel_diff(&lig_whole, &run_lig(Some(m), threads));
        assert!(
            d < 1e-5,
            "layer IG, internal_batch_size {m}, {threads} threads: {d}"
        );
    }
}

#[test]
fn convergence_delta_shrinks_with_more_steps() {
    let (model, x) = cnn();
    let worst = |delta: Tensor<Inner, 1>| {
        delta
            .into_data()
            .to_vec::<f32>()
            .unwrap()
            .into_iter()
            .fold(0f32, |m, v| m.max(v.abs()))
    };
    // conv1: tanh follows it, so neither path integral is exact at few steps.
    let lig = LayerIntegratedGradients::new(&model, "conv1").unwrap();
    let lc = LayerConductance::new(&model, "conv1").unwrap();
    let mut deltas = Vec::new();
    for n in [2, 8, 64] {
        let (_, d_lig) = lig
            .attribute(x.clone())
            .target(1)
            .n_steps(n)
            .run_with_convergence_delta()
            .unwrap();
        let (_, d_lc) = lc
            .attribute(x.clone())
            .target(1)
            .n_steps(n)
            .method(Method::RiemannTrapezoid)
            .run_with_convergence_delta()
            .unwrap();
        deltas.push((worst(d_lig), worst(d_lc)));
    }
    println!("largest |delta| at n_steps 2, 8, 64 (layer IG, conductance): {deltas:?}");
    // Each rule converges: 8 times the steps cut the delta at least fourfold.
    for pair in deltas.windows(2) {
        let ((lig_a, lc_a), (lig_b, lc_b)) = (pair[0], pair[1]);
        assert!(lig_b <= lig_a / 4.0 + 1e-6, "layer IG: {deltas:?}");
        assert!(lc_b <= lc_a / 4.0 + 1e-6, "conductance: {deltas:?}");
    }
}

#[test]
fn gradient_x_activation_is_gradient_times_activation() {
    let (model, x) = cnn();
    let with = LayerGradientXActivation::new(&model, "act1").unwrap();
    let without = LayerGradientXActivation::new(&model, "act1")
        .unwrap()
        .multiply_by_inputs(false);
    let act = LayerActivation::new(&model, "act1").unwrap();
    let gxa = values(&with.attribute(x.clone()).target(3).run().unwrap());
    let g = values(&without.attribute(x.clone()).target(3).run().unwrap());
    let h = values(&act.attribute(x.clone()).run().unwrap());
    let product: Vec<f32> = g.iter().zip(&h).map(|(g, h)| g * h).collect();
    assert!(rel_diff(&gxa, &product) < 1e-6);
    assert!(h.iter().any(|v| *v > 0.0) && g.iter().any(|v| *v != 0.0));
}

#[test]
fn new_arguments_give_typed_errors() {
    let (model, x) = cnn();
    let ii = InternalInfluence::new(&model, "act1").unwrap();
    assert!(matches!(
        ii.attribute(x.clone())
            .target(0)
            .run_with_convergence_delta(),
        Err(InfluenceError::NoConvergenceDelta { .. })
    ));
    let two = InternalInfluence::with_layers(&model, ["act1", "head"]).unwrap();
    assert_eq!(
        two.attribute(x.clone()).target(0).run().unwrap_err(),
        InfluenceError::SeveralLayers { layers: 2 }
    );
    assert!(matches!(
        InternalInfluence::with_layers(&model, Vec::<String>::new()),
        Err(InfluenceError::NoLayers)
    ));
    assert!(matches!(
        LayerConductance::with_layers(&model, ["act1", "nope"]),
        Err(InfluenceError::UnknownLayer { .. })
    ));
    assert_eq!(
        InternalInfluence::with_layers(&model, ["act1", "head", "act1"]).unwrap_err(),
        InfluenceError::RepeatedLayer {
            name: "act1".into()
        }
    );
    let lc = LayerConductance::new(&model, "act1").unwrap();
    assert_eq!(
        lc.attribute(x.clone())
            .target(0)
            .internal_batch_size(0)
            .run()
            .unwrap_err(),
        InfluenceError::ZeroInternalBatchSize
    );
    // No input tensor at all (a multi-input model given an empty Vec).
    let multi =
        influence_testkit::captum_models::BasicModelMultiLayerMultiInput::<B>::new(&device());
    let lig = LayerIntegratedGradients::new(&multi, "model.linear1").unwrap();
    assert_eq!(
        lig.attribute(Vec::new())
            .additional_forward_args((None, 1.0))
            .target(0)
            .run()
            .unwrap_err(),
        InfluenceError::NoInputs
    );
    assert!(matches!(
        LayerIntegratedGradients::new(&model, "nope"),
        Err(InfluenceError::UnknownLayer { .. })
    ));
    // The checks the path methods share apply to the new ones too.
    let lig = LayerIntegratedGradients::new(&model, "act1").unwrap();
    assert!(matches!(
        lig.attribute(x.clone()).target(99).run(),
        Err(InfluenceError::TargetOutOfRange { .. })
    ));
    let lc = LayerConductance::new(&model, "act1").unwrap();
    assert!(matches!(
        lc.attribute(x.clone()).target(0).n_steps(0).run(),
        Err(InfluenceError::TooFewSteps { min: 1, .. })
    ));
    let gxa = LayerGradientXActivation::new(&model, "act1").unwrap();
    assert!(matches!(
        gxa.attribute(x.clone()).run(),
        Err(InfluenceError::TargetMissing { .. })
    ));
}

#[test]
fn run_to_tolerance_meets_the_tolerance_against_a_fine_reference() {
    let (model, x) = cnn();
    let ii = InternalInfluence::new(&model, "conv1").unwrap();
    let call = || {
        ii.attribute(x.clone())
            .target(Target::PerExample(vec![0, 3, 1, 2]))
    };
    let reference = values(&call().n_steps(2000).run().unwrap());
    let features = reference.len() / 4;
    // The largest per-example relative L2 error, as run_to_tolerance measures it.
    let error = |a: &[f32]| {
        (0..4)
            .map(|i| {
                let (r, a) = (
                    &reference[i * features..(i + 1) * features],
                    &a[i * features..(i + 1) * features],
                );
                let d: f64 = r.iter().zip(a).map(|(r, a)| ((r - a) as f64).powi(2)).sum();
                let n: f64 = r.iter().map(|r| (*r as f64).powi(2)).sum();
                (d / n).sqrt()
            })
            .fold(0.0, f64::max)
    };
    // Captum's Riemann trapezoid converges at first order here (its error halves when the
    // points double): 1e-4 would take more than MAX_TOLERANCE_STEPS points.
    assert!(matches!(
        call()
            .method(Method::RiemannTrapezoid)
            .run_to_tolerance(1e-4),
        Err(InfluenceError::ToleranceNotReached { .. })
    ));
    for (method, rtols) in [
        (Method::GaussLegendre, &[1e-2, 1e-3, 1e-4][..]),
        (Method::RiemannMiddle, &[1e-2, 1e-3, 1e-4]),
        (Method::RiemannTrapezoid, &[1e-2, 1e-3]),
    ] {
        for &rtol in rtols {
            let converged = call().method(method).run_to_tolerance(rtol).unwrap();
            let actual = error(&values(&converged.attribution));
            println!(
                "{method:?} rtol {rtol:e}: {} points, estimate {:.2e}, error against 2000 points {actual:.2e}",
                converged.n_steps, converged.error_estimate
            );
            assert!(converged.n_steps.is_power_of_two() && converged.n_steps >= 8);
            assert!(converged.error_estimate <= rtol);
            assert!(
                actual <= rtol,
                "{method:?} rtol {rtol}: actual error {actual}"
            );
        }
    }
    assert!(matches!(
        call().run_to_tolerance(0.0),
        Err(InfluenceError::BadTolerance { .. })
    ));
    assert!(matches!(
        call().run_to_tolerance(f64::NAN),
        Err(InfluenceError::BadTolerance { .. })
    ));
    // float32 cannot resolve 1e-12: the search stops with a typed error, not a wrong claim.
    assert!(matches!(
        call().run_to_tolerance(1e-12),
        Err(InfluenceError::ToleranceNotReached { n_steps: 4096, .. })
    ));
}
