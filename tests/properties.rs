//! Property tests (proptest) of Internal Influence on a CPU backend (flex by default), on random small
//! models, inputs and baselines:
//! - attributing the examples one by one equals attributing the batch;
//! - every `internal_batch_size` gives the result of none;
//! - when the model is linear after the layer, the attribution is the target's weight row
//!   times the sum of the rule's weights, for any inputs, baselines and method;
//! - all five rules converge to the same integral as `n_steps` grows.

use burn::tensor::Tensor;
mod common;

use burn_influence::{Baseline, InternalInfluence, Method, Target};
use common::{Backend, device};
use influence_testkit::sequential::{Act, Data, LayerSpec, NamedLayer, Sequential};
use proptest::prelude::*;

const D_IN: usize = 3;
const H1: usize = 5;
const H2: usize = 4;
const D_OUT: usize = 3;

fn linear(name: &str, d_in: usize, d_out: usize, w: &[f64], b: &[f64]) -> NamedLayer {
    NamedLayer {
        name: name.into(),
        spec: LayerSpec::Linear {
            in_features: d_in,
            out_features: d_out,
            weight: Data {
                shape: vec![d_out, d_in],
                data: w.to_vec(),
            },
            bias: Some(Data {
                shape: vec![d_out],
                data: b.to_vec(),
            }),
        },
    }
}

fn op(name: &str, spec: LayerSpec) -> NamedLayer {
    NamedLayer {
        name: name.into(),
        spec,
    }
}

/// `fc1 (3→5) → tanh → fc2 (5→4) → act2 = gelu → head (4→3)`; weights from `w`.
#[derive(Debug, Clone)]
struct Weights {
    w1: Vec<f64>,
    w2: Vec<f64>,
    w3: Vec<f64>,
    b: Vec<f64>,
}

impl Weights {
    fn model(&self) -> Sequential<Backend> {
        let layers = vec![
            linear("fc1", D_IN, H1, &self.w1, &self.b[..H1]),
            op("act1", LayerSpec::Tanh),
            linear("fc2", H1, H2, &self.w2, &self.b[H1..H1 + H2]),
            op("act2", LayerSpec::Gelu),
            linear("head", H2, D_OUT, &self.w3, &self.b[H1 + H2..]),
        ];
        Sequential::from_specs(&layers, &device())
    }
}

fn weights() -> impl Strategy<Value = Weights> {
    let v = |n| prop::collection::vec(-1.0f64..1.0, n);
    (v(D_IN * H1), v(H1 * H2), v(H2 * D_OUT), v(H1 + H2 + D_OUT))
        .prop_map(|(w1, w2, w3, b)| Weights { w1, w2, w3, b })
}

fn examples(max_batch: usize) -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<usize>)> {
    (1..=max_batch).prop_flat_map(|n| {
        (
            prop::collection::vec(-2.0f64..2.0, n * D_IN),
            prop::collection::vec(-1.0f64..1.0, n * D_IN),
            prop::collection::vec(0..D_OUT, n),
        )
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(Method::ALL.to_vec())
}

fn tensor(values: &[f64]) -> Tensor<Backend, 2> {
    Data {
        shape: vec![values.len() / D_IN, D_IN],
        data: values.to_vec(),
    }
    .tensor(&device())
}

struct Run<'a> {
    x: &'a [f64],
    baseline: &'a [f64],
    target: Vec<usize>,
    layer: &'a str,
    method: Method,
    n_steps: usize,
    internal_batch_size: Option<usize>,
    to_input: bool,
}

/// The attribution's values, row-major.
fn run(model: &Sequential<Backend>, r: Run) -> Vec<f32> {
    let ii = InternalInfluence::new(model, r.layer).unwrap();
    let mut call = ii
        .attribute(Act::D2(tensor(r.x)))
        .baselines(Baseline::from(tensor(r.baseline)))
        .target(Target::PerExample(r.target))
        .method(r.method)
        .n_steps(r.n_steps)
        .attribute_to_layer_input(r.to_input);
    if let Some(m) = r.internal_batch_size {
        call = call.internal_batch_size(m);
    }
    call.run().unwrap().into_tensors()[0].to_vec().unwrap()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        prop_assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{} vs {} (tolerance {})\n{:?}\n{:?}",
            x,
            y,
            tol,
            a,
            b
        );
    }
    Ok(())
}

proptest! {
    // Fixed seeds: the same models on every run, so that a failure reproduces.
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x1eb0_2018),
        ..ProptestConfig::with_cases(24)
    })]

    #[test]
    fn one_by_one_equals_batch(
        w in weights(),
        (x, base, target) in examples(5),
        method in method(),
        n_steps in 2usize..20,
        layer in prop::sample::select(vec!["fc1", "act1", "fc2", "act2", "head"]),
    ) {
        let model = w.model();
        let batch = run(&model, Run {
            x: &x, baseline: &base, target: target.clone(), layer, method, n_steps,
            internal_batch_size: None, to_input: false,
        });
        let width = batch.len() / target.len();
        for (i, &t) in target.iter().enumerate() {
            let rows = i * D_IN..(i + 1) * D_IN;
            let one = run(&model, Run {
                x: &x[rows.clone()], baseline: &base[rows], target: vec![t], layer, method,
                n_steps, internal_batch_size: None, to_input: false,
            });
            assert_close(&one, &batch[i * width..(i + 1) * width], 1e-5)?;
        }
    }

    #[test]
    fn every_internal_batch_size_equals_none(
        w in weights(),
        (x, base, target) in examples(4),
        method in method(),
        n_steps in 2usize..12,
        to_input in any::<bool>(),
    ) {
        let model = w.model();
        let base_run = |ibs| run(&model, Run {
            x: &x, baseline: &base, target: target.clone(), layer: "fc2", method, n_steps,
            internal_batch_size: ibs, to_input,
        });
        let whole = base_run(None);
        let rows = target.len() * n_steps;
        for m in 1..=rows + 1 {
            assert_close(&base_run(Some(m)), &whole, 1e-5)?;
        }
    }

    #[test]
    fn linear_after_the_layer_gives_weight_row_times_weight_sum(
        w in weights(),
        (x, base, target) in examples(4),
        method in method(),
        n_steps in 2usize..40,
        to_input in any::<bool>(),
    ) {
        // act2's output (or head's input) feeds only the linear head: ∂F_t/∂h = W_head[t, :].
        let (layer, layer_input) = if to_input { ("head", true) } else { ("act2", false) };
        let model = w.model();
        let got = run(&model, Run {
            x: &x, baseline: &base, target: target.clone(), layer, method, n_steps,
            internal_batch_size: None, to_input: layer_input,
        });
        let weight_sum = method.rule(n_steps).unwrap().weight_sum();
        let expected: Vec<f32> = target
            .iter()
            .flat_map(|&t| w.w3[t * H2..(t + 1) * H2].iter().map(move |&v| (v * weight_sum) as f32))
            .collect();
        assert_close(&got, &expected, 1e-5)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x1eb0_2018),
        ..ProptestConfig::with_cases(6)
    })]

    #[test]
    fn all_rules_converge_to_the_same_integral(
        w in weights(),
        (x, base, target) in examples(3),
    ) {
        let model = w.model();
        let at = |method, n_steps| run(&model, Run {
            x: &x, baseline: &base, target: target.clone(), layer: "fc1", method, n_steps,
            internal_batch_size: None, to_input: false,
        });
        // Gauss-Legendre with 64 points is exact to float precision for this smooth path.
        let integral = at(Method::GaussLegendre, 64);
        let scale = integral.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let err = |a: &[f32]| a.iter().zip(&integral).fold(0f32, |m, (p, q)| m.max((p - q).abs()));
        for method in Method::ALL {
            let coarse = err(&at(method, 8));
            let fine = err(&at(method, 1024));
            // Every rule is within 1% of the integral at 1024 steps (O(1/n) for the
            // Riemann rules, whose trapezoid weights sum to (n - 1)/n) ...
            prop_assert!(fine <= 1e-2 * scale, "{method}: error {fine} at n = 1024 (scale {scale})");
            // ... and closer than at 8 steps, unless already at float precision.
            prop_assert!(fine <= coarse || coarse <= 1e-5 * scale, "{method}: {coarse} -> {fine}");
        }
    }
}
