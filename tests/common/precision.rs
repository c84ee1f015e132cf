//! Precision on generated LayerNorm/softmax/GELU models (the `mlp_ln_softmax` kind of the
//! golden files, where careless float32 kernels show first): a backend in float32 against the
//! same attribution in float64 on another backend. Shared by `tests/precision.rs` and
//! `tests/precision_ndarray.rs` (Burn keeps one default float type per device, so a backend
//! cannot be checked against itself in float64 in one process).

use burn::tensor::backend::AutodiffBackend;
use burn_influence::{Attribution, InternalInfluence, Method, Target};
use influence_testkit::sequential::{Data, LayerSpec, NamedLayer, Sequential};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRng, TestRunner};

/// Largest error allowed, relative to the largest attribution value: the golden files'
/// tolerances are about 2e-5 of it; float32 kernels that accumulate carefully stay well below
/// (flex: 6e-6 at most over 200 models), an approximate reciprocal (3e-4) does not.
pub const TOLERANCE: f64 = 2e-5;

/// `fc1 (d→h) → act → ln → head (h→k) → softmax`, PyTorch layouts.
#[derive(Debug, Clone)]
pub struct Case {
    d: usize,
    h: usize,
    k: usize,
    act: LayerSpec,
    w1: Vec<f64>,
    w2: Vec<f64>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    x: Vec<f64>,
    batch: usize,
    target: Vec<usize>,
    layer: &'static str,
    method: Method,
    n_steps: usize,
}

fn data(shape: Vec<usize>, data: Vec<f64>) -> Data {
    Data { shape, data }
}

impl Case {
    fn layers(&self) -> Vec<NamedLayer> {
        let named = |name: &str, spec| NamedLayer {
            name: name.into(),
            spec,
        };
        vec![
            named(
                "fc1",
                LayerSpec::Linear {
                    in_features: self.d,
                    out_features: self.h,
                    weight: data(vec![self.h, self.d], self.w1.clone()),
                    bias: Some(data(vec![self.h], vec![0.1; self.h])),
                },
            ),
            named("act1", self.act.clone()),
            named(
                "ln",
                LayerSpec::LayerNorm {
                    normalized_shape: vec![self.h],
                    eps: 1e-5,
                    weight: data(vec![self.h], self.gamma.clone()),
                    bias: data(vec![self.h], self.beta.clone()),
                },
            ),
            named(
                "head",
                LayerSpec::Linear {
                    in_features: self.h,
                    out_features: self.k,
                    weight: data(vec![self.k, self.h], self.w2.clone()),
                    bias: None,
                },
            ),
            named("softmax", LayerSpec::Softmax { dim: 1 }),
        ]
    }

    fn attribute<B: AutodiffBackend>(&self, device: &B::Device) -> Vec<f64> {
        let model = Sequential::<B>::from_specs(&self.layers(), device);
        let x = data(vec![self.batch, self.d], self.x.clone()).act::<B>(device);
        let a: Attribution<B::InnerBackend> = InternalInfluence::new(&model, self.layer)
            .unwrap()
            .attribute(x)
            .target(Target::PerExample(self.target.clone()))
            .method(self.method)
            .n_steps(self.n_steps)
            .run()
            .unwrap();
        a.single()
            .unwrap()
            .clone()
            .into_data()
            .unwrap()
            .convert::<f64>()
            .to_vec::<f64>()
            .unwrap()
    }
}

pub fn case() -> impl Strategy<Value = Case> {
    (2usize..6, 3usize..9, 2usize..5, 1usize..4).prop_flat_map(|(d, h, k, batch)| {
        let v = |n, r: f64| prop::collection::vec(-r..r, n);
        (
            prop::sample::select(vec![LayerSpec::Gelu, LayerSpec::Tanh, LayerSpec::Relu]),
            v(h * d, 1.5),
            v(k * h, 1.5),
            v(h, 1.0),
            v(h, 0.5),
            v(batch * d, 2.0),
            prop::collection::vec(0..k, batch),
            prop::sample::select(vec!["fc1", "act1", "ln", "head"]),
            prop::sample::select(Method::ALL.to_vec()),
            2usize..60,
        )
            .prop_map(
                move |(act, w1, w2, gamma, beta, x, target, layer, method, n_steps)| Case {
                    d,
                    h,
                    k,
                    act,
                    w1,
                    w2,
                    gamma: gamma.into_iter().map(|g| 1.0 + g).collect(),
                    beta,
                    x,
                    batch,
                    target,
                    layer,
                    method,
                    n_steps,
                },
            )
    })
}

/// Checks `cases` generated models on backend `B` (float32) against reference backend `R`,
/// whose device runs float64, within `TOLERANCE` of the attribution's scale.
pub fn check<B: AutodiffBackend, R: AutodiffBackend>(
    name: &str,
    device: &B::Device,
    reference_device: &R::Device,
    cases: u32,
) {
    // A fixed seed: the same 48 models on every run. With a fresh seed per run, a ReLU whose
    // input sits within float32 rounding of its kink at a quadrature point now and then
    // switches the other way than in float64, a real difference of the two precisions but
    // not a fault of a backend, and the test failed one run in many.
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::deterministic_rng(config.rng_algorithm);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let worst = std::cell::Cell::new(0f64);
    let result = runner.run(&case(), |c| {
        let reference = c.attribute::<R>(reference_device);
        let got = c.attribute::<B>(device);
        let scale = reference.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let err = got
            .iter()
            .zip(&reference)
            .fold(0f64, |m, (a, r)| m.max((a - r).abs()));
        worst.set(worst.get().max(err / scale));
        if std::env::var_os("INFLUENCE_PRECISION_VERBOSE").is_some() {
            println!(
                "{name} {:.2e} {} {:?} {} {} d{} h{} k{}",
                err / scale,
                c.layer,
                c.act,
                c.method,
                c.n_steps,
                c.d,
                c.h,
                c.k
            );
        }
        prop_assert!(
            err <= TOLERANCE * scale,
            "{name}: largest error {err:.3e} (scale {scale:.3e}) on {c:?}"
        );
        Ok(())
    });
    println!(
        "precision ({name}): {cases} generated models, largest error {:.2e} of the scale",
        worst.get()
    );
    result.unwrap();
}
