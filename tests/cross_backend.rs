//! The same model, inputs and settings on every compiled backend give the same attributions.
//!
//! A small CNN (conv2d → GELU → max-pool → linear) with fixed weights, a batch of four
//! examples with a broadcast baseline, one target per example and internal batching into
//! chunks of unequal size. Prints the largest difference of each backend from ndarray and
//! fails when it exceeds 1e-5 of the largest attribution value. (`harness = false`, so the
//! report shows in plain `cargo test` output.)

use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use burn_influence::{Baseline, InternalInfluence, Method, Target};
use influence_testkit::sequential::{Data, LayerSpec, NamedLayer, Sequential};

/// Deterministic values in [-scale, scale].
fn values(n: usize, seed: f64, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|i| scale * (i as f64 * 0.618 + seed).sin())
        .collect()
}

fn layers() -> Vec<NamedLayer> {
    let layer = |name: &str, spec| NamedLayer {
        name: name.into(),
        spec,
    };
    vec![
        layer(
            "conv1",
            LayerSpec::Conv2d {
                in_channels: 2,
                out_channels: 4,
                kernel_size: [3, 3],
                stride: [1, 1],
                padding: [1, 1],
                weight: Data {
                    shape: vec![4, 2, 3, 3],
                    data: values(72, 0.3, 0.4),
                },
                bias: Some(Data {
                    shape: vec![4],
                    data: values(4, 1.1, 0.1),
                }),
            },
        ),
        layer("act1", LayerSpec::Gelu),
        layer(
            "pool1",
            LayerSpec::MaxPool2d {
                kernel_size: [2, 2],
                stride: [2, 2],
            },
        ),
        layer("flatten", LayerSpec::Flatten),
        layer(
            "head",
            LayerSpec::Linear {
                in_features: 64,
                out_features: 5,
                weight: Data {
                    shape: vec![5, 64],
                    data: values(320, 2.0, 0.3),
                },
                bias: Some(Data {
                    shape: vec![5],
                    data: values(5, 0.5, 0.1),
                }),
            },
        ),
    ]
}

/// The attribution of `act1` on backend `B`, row-major.
fn attribution<B: AutodiffBackend>(device: &B::Device) -> Vec<f32> {
    let model = Sequential::<B>::from_specs(&layers(), device);
    let x = Data {
        shape: vec![4, 2, 8, 8],
        data: values(512, 0.0, 1.0),
    };
    let base = Data {
        shape: vec![1, 2, 8, 8],
        data: values(128, 3.0, 0.2),
    };
    let ii = InternalInfluence::new(&model, "act1").unwrap();
    ii.attribute(x.act(device))
        .baselines(Baseline::Tensor(base.act::<B>(device).into()))
        .target(Target::PerExample(vec![0, 3, 1, 4]))
        .method(Method::GaussLegendre)
        .n_steps(20)
        .internal_batch_size(28) // 7 steps a chunk: chunks of 7, 7 and 6 steps
        .run()
        .unwrap()
        .into_tensors()[0]
        .to_vec()
        .unwrap()
}

#[allow(clippy::vec_init_then_push)] // one push per compiled backend
fn main() -> ExitCode {
    let reference =
        attribution::<burn_influence::ndarray::Backend>(&burn_influence::ndarray::device());
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut others: Vec<(&str, Vec<f32>)> = Vec::new();
    #[cfg(feature = "flex")]
    others.push((
        "flex",
        attribution::<burn_influence::flex::Backend>(&burn_influence::flex::device()),
    ));
    #[cfg(feature = "wgpu")]
    others.push((
        "wgpu",
        attribution::<burn_influence::wgpu::Backend>(&burn_influence::wgpu::device()),
    ));
    let mut ok = true;
    for (name, values) in others {
        let diff = values
            .iter()
            .zip(&reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        let pass = values.len() == reference.len() && diff <= 1e-5 * scale;
        ok &= pass;
        println!(
            "cross-backend: {name} vs ndarray: largest difference {diff:.3e} ({:.2e} of the largest value {scale:.3e}) {}",
            diff / scale,
            if pass { "ok" } else { "FAILED" }
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
