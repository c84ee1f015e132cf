//! A shortened run of the digits example (few epochs) on real data, checking what the full
//! run promises: the accuracy, the attribution's shape and finiteness, the faithfulness
//! ordering, and output files that exist and parse. (The `digits` command's handling of bad
//! input is tested in crates/influence-digits/tests/cli.rs.)

use std::path::{Path, PathBuf};

mod common;

use common::{Backend, device};
use influence_digits::explain::ExplainConfig;
use influence_digits::train::TrainConfig;
use influence_digits::{DigitsError, RunConfig};

fn csv() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits/digits.csv")
}

fn out_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("burn-influence-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn shortened_run_trains_explains_and_writes_its_files() {
    let out = out_dir("digits");
    let mut config = RunConfig::new(csv(), &out, common::NAME);
    config.train = TrainConfig::new().with_epochs(10);
    config.explain = ExplainConfig {
        n_steps: 16,
        internal_batch_size: 2048,
        ..ExplainConfig::default()
    };
    let s = influence_digits::run::<Backend>(&config, &device(), |_| {}).unwrap();
    let r = &s.report;

    // Ten epochs (of the full run's twenty) already give a good model on these digits.
    assert!(r.accuracy >= 0.95, "held-out accuracy {}", r.accuracy);
    assert_eq!((r.train_size, r.held_out_size), (1438, 359));

    // The attribution of conv2: [held-out digits, 32, 8, 8], finite, not all zero.
    assert_eq!(r.attribution.shape, vec![359, 32, 8, 8]);
    assert_eq!(r.attribution.data.len(), 359 * 32 * 64);
    assert!(r.attribution.data.iter().all(|v| v.is_finite()));
    assert!(r.attribution.data.iter().any(|v| v.abs() > 1e-3));

    // Zeroing the most influential channels hurts far more than the least influential.
    assert_eq!(
        r.faithfulness.iter().map(|f| f.k).collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    for f in &r.faithfulness {
        assert!(
            f.top_drop > 0.0 && f.top_drop > 2.0 * f.bottom_drop.abs(),
            "k = {}: top drop {} vs bottom drop {}",
            f.k,
            f.top_drop,
            f.bottom_drop
        );
    }

    // The files exist and parse.
    for class in 0..10 {
        let png = out.join(format!("class_{class}.png"));
        let img = image::open(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
        // Three panels of 150 pixels (input, influence, overlay) and the colour bar.
        assert_eq!(img.width(), 3 * 150 + 120);
    }
    image::open(out.join("overview.png")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("influence.json")).unwrap())
            .unwrap();
    assert_eq!(json["settings"]["layer"], "conv2");
    assert_eq!(json["settings"]["method"], "gausslegendre");
    assert_eq!(json["settings"]["n_steps"], 16);
    assert_eq!(json["settings"]["backend"], common::NAME);
    assert_eq!(json["classes"].as_array().unwrap().len(), 10);
    assert_eq!(json["digits"].as_array().unwrap().len(), 359);
    assert!((json["accuracy"].as_f64().unwrap() - r.accuracy).abs() < 1e-12);

    // A second run reuses the saved weights and gives the same accuracy.
    assert!(out.join("digits_cnn.mpk").exists());
    let again = influence_digits::run::<Backend>(&config, &device(), |_| {}).unwrap();
    assert!(!again.report.settings.trained);
    assert_eq!(again.report.accuracy, r.accuracy);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn malformed_csv_and_non_spatial_layer_are_errors() {
    let out = out_dir("bad");
    std::fs::create_dir_all(&out).unwrap();
    let bad = out.join("bad.csv");
    let good = std::fs::read_to_string(csv()).unwrap();
    let mut lines: Vec<&str> = good.lines().take(5).collect();
    lines.push("1,2,3");
    std::fs::write(&bad, lines.join("\n")).unwrap();
    let config = RunConfig::new(&bad, &out, common::NAME);
    match influence_digits::run::<Backend>(&config, &device(), |_| {}) {
        Err(DigitsError::Csv { line: 6, .. }) => {}
        other => panic!("expected a CSV error on line 6, got {other:?}"),
    }
    let mut config = RunConfig::new(csv(), &out, common::NAME);
    config.explain.layer = "fc1".into();
    assert!(matches!(
        influence_digits::run::<Backend>(&config, &device(), |_| {}),
        Err(DigitsError::Layer { .. })
    ));
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn dataset_scale_run_streams_every_digit_resumes_and_draws_the_experts() {
    use influence_digits::data::Digits;
    use influence_digits::scale::{ScaleConfig, run_all};

    let out = out_dir("digits-all");
    let mut config = RunConfig::new(csv(), &out, common::NAME);
    config.train = TrainConfig::new().with_epochs(3);
    config.explain = ExplainConfig {
        n_steps: 8,
        ..ExplainConfig::default()
    };
    let scale = ScaleConfig {
        batch_size: 256,
        workers: 2,
        ..ScaleConfig::default()
    };
    let mut streamed = Vec::new();
    let s = run_all::<Backend>(&config, &scale, &[device()], |stage| {
        if let influence_digits::Stage::Streaming(p) = stage {
            streamed.push(p.examples_done);
        }
    })
    .unwrap();
    let d = &s.dataset;
    assert_eq!((d.examples, d.batches, d.examples_resumed), (1797, 8, 0));
    assert_eq!(streamed.last(), Some(&1797));
    assert_eq!(d.classes.iter().map(|c| c.count).sum::<usize>(), 1797);
    assert_eq!((d.neurons, d.example_shape.clone()), (32, vec![32, 8, 8]));
    for c in &d.classes {
        assert_eq!(c.experts.len(), 5);
        assert!(
            c.experts
                .windows(2)
                .all(|w| c.mean_influence[w[0]] >= c.mean_influence[w[1]])
        );
    }
    let written: burn_influence::DatasetSummary =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(&written, d);
    for (name, min_w) in [("experts.png", 1000), ("expert_maps.png", 500)] {
        let img = image::open(out.join(name)).unwrap();
        assert!(img.width() >= min_w && img.height() > 500, "{name}");
    }

    // Each expert map is Integrated Gradients of the expert's activation (summed over
    // positions): its pixels add up to the activation at the digit minus at the black image,
    // averaged over the class's digits (completeness, up to the quadrature's error).
    let data = Digits::load(&csv()).unwrap();
    let model: influence_digits::model::DigitsCnn<Backend> = burn::module::Module::load_file(
        influence_digits::model::DigitsCnnConfig::new().init(&device()),
        config.weights.clone(),
        &burn::record::NamedMpkFileRecorder::<burn::record::FullPrecisionSettings>::new(),
        &device(),
    )
    .unwrap();
    let predicted: Vec<usize> = {
        let x = data.images::<Backend>(&(0..data.len()).collect::<Vec<_>>(), &device());
        model
            .forward(x)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap()
            .into_iter()
            .map(|c| c as usize)
            .collect()
    };
    assert_eq!(s.expert_maps.len(), 10);
    for m in &s.expert_maps {
        let members: Vec<usize> = (0..data.len())
            .filter(|&i| predicted[i] == m.class)
            .take(scale.digits_per_map)
            .collect();
        assert_eq!(m.digits, members.len());
        let act = |x: burn::tensor::Tensor<Backend, 4>| -> Vec<f32> {
            let h = model.spatial(x, "conv2").unwrap();
            let [n, c, _, _] = h.dims();
            h.sum_dim(3)
                .sum_dim(2)
                .reshape([n, c])
                .into_data()
                .to_vec()
                .unwrap()
        };
        let at_x = act(data.images::<Backend>(&members, &device()));
        let at_0 = act(burn::tensor::Tensor::zeros([1, 1, 8, 8], &device()));
        for (k, &e) in m.experts.iter().enumerate() {
            let want = members
                .iter()
                .enumerate()
                .map(|(j, _)| at_x[j * 32 + e] - at_0[e])
                .sum::<f32>()
                / members.len() as f32;
            let got: f32 = m.maps[k].iter().sum();
            assert!(
                (got - want).abs() <= 0.05 * want.abs().max(1.0),
                "class {} expert {e}: map sums to {got}, activation difference {want}",
                m.class
            );
        }
    }

    // Run again: every batch comes from the files, and the summary is the same.
    let again = run_all::<Backend>(&config, &scale, &[device()], |_| {}).unwrap();
    assert_eq!(again.dataset.examples_resumed, 1797);
    assert_eq!(
        burn_influence::DatasetSummary {
            examples_resumed: 0,
            ..again.dataset
        },
        *d
    );
    let _ = std::fs::remove_dir_all(&out);
}
