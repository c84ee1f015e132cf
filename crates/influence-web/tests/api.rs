//! The JavaScript API's logic (`influence_web::api`), natively on flex: what `Explainer.load`,
//! `predict` and `attribute` compute, the options object as JSON, and every typed error.

use influence_web::api::{AttributeOptions, Model};
use influence_web::{LayerMethod, WEIGHTS, WebError, explain_digit, fixtures};
use pollster::block_on;

type B = influence_flex::Backend;

fn model() -> Model<B> {
    Model::load("digits_cnn", WEIGHTS.to_vec(), &influence_flex::device()).unwrap()
}

fn options(json: &str) -> AttributeOptions {
    serde_json::from_str(json).unwrap()
}

#[test]
fn attribute_equals_the_demo_explanation() {
    let model = model();
    let Model::DigitsCnn(cnn) = &model else {
        unreachable!("digits_cnn")
    };
    let device = influence_flex::device();
    for f in fixtures().iter().take(3) {
        let demo = block_on(explain_digit(
            cnn,
            &f.pixels,
            LayerMethod::InternalInfluence,
            32,
            "flex",
            &device,
        ))
        .unwrap();
        let logits = block_on(model.predict(&f.pixels, &[1, 1, 8, 8], &device)).unwrap();
        assert_eq!(logits.shape, vec![1, 10]);
        assert_eq!(logits.values, demo.logits);
        let opts = options(&format!(
            r#"{{"layer": "conv2", "target": {}, "nSteps": 32, "method": "gausslegendre"}}"#,
            demo.predicted
        ));
        let attr =
            block_on(model.attribute(&f.pixels, &[1, 1, 8, 8], &opts, None, &device)).unwrap();
        assert_eq!(attr.shape, vec![1, 32, 8, 8]);
        // The demo's map is the attribution summed over conv2's 32 channels.
        for (p, &m) in demo.map.iter().enumerate() {
            let sum: f32 = (0..32).map(|c| attr.values[c * 64 + p]).sum();
            assert!(
                (sum - m).abs() <= 1e-6 * (1.0 + m.abs()),
                "pixel {p}: {sum} vs {m}"
            );
        }
    }
}

#[test]
fn a_batch_with_targets_baselines_and_internal_batch_size() {
    let model = model();
    let device = influence_flex::device();
    let f = fixtures();
    let (a, b) = (&f[0].pixels, &f[1].pixels);
    let batch: Vec<f32> = a.iter().chain(b).copied().collect();
    let base = "\"layer\": \"conv2\", \"nSteps\": 20";
    // The progress callback: every pass once, with the call's number of passes.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record: influence_web::api::ProgressFn = {
        let seen = seen.clone();
        std::sync::Arc::new(move |done, total| seen.lock().unwrap().push((done, total)))
    };
    let both = block_on(model.attribute(
        &batch,
        &[2, 1, 8, 8],
        &options(&format!(
            r#"{{{base}, "target": [{}, {}], "baselines": 0.25, "internalBatchSize": 8}}"#,
            f[0].label, f[1].label
        )),
        Some(record.clone()),
        &device,
    ))
    .unwrap();
    assert_eq!(both.shape, vec![2, 32, 8, 8]);
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    let passes = seen.len();
    // 2 examples × 20 steps in passes of at most 8 rows: at least 5 passes.
    assert!(passes >= 5, "{seen:?}");
    assert_eq!(seen, (1..=passes).map(|d| (d, passes)).collect::<Vec<_>>());
    // Each example alone, with the same settings: the same values.
    for (i, (x, label)) in [(a, f[0].label), (b, f[1].label)].into_iter().enumerate() {
        let baselines: Vec<f32> = vec![0.25; 64];
        let one = block_on(model.attribute(
            x,
            &[1, 1, 8, 8],
            &options(&format!(
                r#"{{{base}, "target": {label}, "baselines": {baselines:?}}}"#
            )),
            None,
            &device,
        ))
        .unwrap();
        let part = &both.values[i * 2048..(i + 1) * 2048];
        let worst = one
            .values
            .iter()
            .zip(part)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        assert!(worst < 1e-5, "example {i}: {worst}");
        // Another baseline gives other values.
        let zero = block_on(model.attribute(
            x,
            &[1, 1, 8, 8],
            &options(&format!(r#"{{{base}, "target": {label}}}"#)),
            None,
            &device,
        ))
        .unwrap();
        assert!(
            zero.values
                .iter()
                .zip(&one.values)
                .any(|(p, q)| (p - q).abs() > 1e-4)
        );
    }
    // layer_activation needs no target; its values are conv2's activation.
    let act = block_on(model.attribute(
        a,
        &[1, 1, 8, 8],
        &options(r#"{"layer": "conv2", "attribution": "layer_activation"}"#),
        None,
        &device,
    ))
    .unwrap();
    assert_eq!(act.shape, vec![1, 32, 8, 8]);
    assert!(act.values.iter().any(|&v| v > 0.0));
}

#[test]
fn typed_errors() {
    let device = influence_flex::device();
    let err = Model::<B>::load("resnet", WEIGHTS.to_vec(), &device).unwrap_err();
    assert!(
        matches!(err, WebError::UnknownModel(ref m) if m == "resnet"),
        "{err}"
    );
    let err = Model::<B>::load("digits_cnn", vec![1, 2, 3], &device).unwrap_err();
    assert!(matches!(err, WebError::Weights(_)), "{err}");

    let model = model();
    let x = fixtures()[0].pixels.clone();
    let run = |shape: &[usize], json: &str| {
        block_on(model.attribute(&x, shape, &options(json), None, &device)).unwrap_err()
    };
    let err = run(&[1, 8, 8], r#"{"layer": "conv2", "target": 0}"#);
    assert!(matches!(err, WebError::Shape { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "shape: expected [batch, 1, 8, 8], got [1, 8, 8] with 64 values"
    );
    let err = run(&[2, 1, 8, 8], r#"{"layer": "conv2", "target": 0}"#);
    assert!(matches!(err, WebError::Shape { .. }), "{err}");
    let err = run(&[1, 1, 8, 8], r#"{"layer": "conv2"}"#);
    assert!(err.to_string().contains("needs a target"), "{err}");
    let err = run(
        &[1, 1, 8, 8],
        r#"{"layer": "conv2", "target": 0, "attribution": "saliency"}"#,
    );
    assert!(matches!(err, WebError::Option(_)), "{err}");
    let err = run(
        &[1, 1, 8, 8],
        r#"{"layer": "conv2", "target": 0, "method": "simpson"}"#,
    );
    assert!(err.to_string().starts_with("method:"), "{err}");
    let err = run(&[1, 1, 8, 8], r#"{"layer": "conv9", "target": 0}"#);
    assert!(matches!(err, WebError::Influence(_)), "{err}");
    let err = run(&[1, 1, 8, 8], r#"{"layer": "conv2", "target": 10}"#);
    assert!(matches!(err, WebError::Influence(_)), "{err}");
    let err = run(
        &[1, 1, 8, 8],
        r#"{"layer": "conv2", "target": 0, "nSteps": 0}"#,
    );
    assert!(matches!(err, WebError::Influence(_)), "{err}");
    let err = run(
        &[1, 1, 8, 8],
        r#"{"layer": "conv2", "target": 0, "baselines": [0.5, 0.5]}"#,
    );
    assert!(matches!(err, WebError::Shape { .. }), "{err}");
    // Every key the JavaScript layer accepts (OPTION_NAMES) is a field, and a misspelt one
    // is an error, not ignored.
    let all = r#"{"layer": "conv2", "attribution": "internal_influence", "target": [1],
        "nSteps": 4, "method": "riemann_left", "internalBatchSize": 4, "baselines": 0.5}"#;
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(all)
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let mut names = influence_web::api::OPTION_NAMES.map(String::from).to_vec();
    names.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(keys, names);
    let all = options(all);
    assert_eq!((all.n_steps, all.internal_batch_size), (Some(4), Some(4)));
    let bad: Result<AttributeOptions, _> =
        serde_json::from_str(r#"{"layer": "conv2", "n_steps": 5}"#);
    assert!(
        bad.unwrap_err()
            .to_string()
            .contains("unknown field `n_steps`")
    );
}

fn onnx_fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/onnx")
            .join(name),
    )
    .unwrap()
}

/// `Explainer.fromOnnx` with the graph's and the external data's bytes: the layers by module
/// name, the prediction, and Captum's numbers (the fixture's float64 reference).
#[test]
fn onnx_from_bytes_with_external_data_matches_captum() {
    let device = influence_flex::device();
    let (graph, data) = (
        onnx_fixture("resnet18.dynamo.onnx"),
        onnx_fixture("resnet18.dynamo.onnx.data"),
    );
    let model = Model::<B>::from_onnx(&graph, Some(&data), &device).unwrap();
    assert_eq!(model.example_shape().unwrap(), vec![3, 32, 32]);
    let layers = model.layers(false, &device);
    let layer3 = layers.iter().find(|l| l.name == "layer3").unwrap();
    assert_eq!(layer3.outputs, vec!["[batch, 16, 2, 2]".to_string()]);
    let st = onnx_fixture("resnet18.safetensors");
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let x: Vec<f32> = st
        .tensor("input")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let logits = block_on(model.predict(&x, &[2, 3, 32, 32], &device)).unwrap();
    assert_eq!(logits.shape, vec![2, 10]);
    let attr = block_on(model.attribute(
        &x,
        &[2, 3, 32, 32],
        &options(r#"{"layer": "layer3", "target": 3, "nSteps": 8}"#),
        None,
        &device,
    ))
    .unwrap();
    assert_eq!(attr.shape, vec![2, 16, 2, 2]);
    let r: Vec<f64> = st
        .tensor("case0")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let scale = r.iter().fold(0f64, |m, v| m.max(v.abs()));
    let err = attr
        .values
        .iter()
        .zip(&r)
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()))
        / scale;
    assert!(err < 5e-6, "relative error {err}");
}

#[test]
fn onnx_errors_are_typed() {
    let device = influence_flex::device();
    let graph = onnx_fixture("resnet18.dynamo.onnx");
    // The weights are in the data file: without its bytes, a typed error that says so.
    let e = Model::<B>::from_onnx(&graph, None, &device).unwrap_err();
    assert!(
        matches!(e, WebError::Onnx(_)) && e.to_string().contains("from_bytes_with_data"),
        "{e}"
    );
    let e = Model::<B>::from_onnx(b"garbage", None, &device).unwrap_err();
    assert!(e.to_string().contains("not a valid ONNX model"), "{e}");
    let model = Model::<B>::from_onnx(
        &onnx_fixture("mobilenet_v2.torchscript.onnx"),
        None,
        &device,
    )
    .unwrap();
    let x = vec![0.1f32; 3 * 32 * 32];
    let e = block_on(model.attribute(
        &x,
        &[1, 3, 32, 32],
        &options(r#"{"layer": "featurs.3", "target": 0, "nSteps": 4}"#),
        None,
        &device,
    ))
    .unwrap_err();
    assert!(e.to_string().contains("features.3"), "{e}");
    let e = block_on(model.predict(&x[..100], &[1, 3, 32, 32], &device)).unwrap_err();
    assert!(matches!(e, WebError::Shape { .. }), "{e}");
}
