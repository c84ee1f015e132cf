//! ONNX models explained by their PyTorch module names, against Captum on the PyTorch
//! originals: reduced torchvision resnet18 and mobilenet_v2, a timm vision transformer and a
//! BERT of all-MiniLM-L6-v2's architecture (same operators and module names, fewer channels and
//! blocks; `scripts/onnx/fixtures.py`), each exported by both PyTorch exporters (the ResNet
//! also with the options that keep its BatchNorms: dynamo's `optimize=False`, TorchScript's
//! `do_constant_folding=False`), every case
//! (Internal Influence and Captum's sibling layer methods, output and input sides) on every
//! compiled backend.
//!
//! Tolerance, per model: 3× PyTorch's own float32 error against the same float64 reference
//! (the largest over the model's cases; the error is the largest difference relative to the
//! reference's largest magnitude), and at least 1e-6.
//!
//! A `harness = false` test printing one line per case. `$INFLUENCE_ONNX_FILTER` runs the
//! cases whose name contains it, `$INFLUENCE_ONNX_BACKEND` one backend only,
//! `$INFLUENCE_ONNX_FIXTURES` another fixture directory (the full-size check).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use burn_influence::LayerSide;
use burn_influence::onnx::{OnnxArgs, OnnxError, OnnxModel};
use burn_influence::{
    AnyTensor, InfluenceError, InternalInfluence, LayerActivation, LayerConductance,
    LayerGradientXActivation, LayerIntegratedGradients, Target,
};
use serde_json::Value;

/// The fixtures: `tests/fixtures/onnx`, or `$INFLUENCE_ONNX_FIXTURES` (the full-size models of
/// `scripts/onnx/full_size.py`, in the same format).
fn dir() -> PathBuf {
    std::env::var_os("INFLUENCE_ONNX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx"))
}

fn f64s(v: &safetensors::tensor::TensorView<'_>) -> Vec<f64> {
    v.data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn f32s(v: &safetensors::tensor::TensorView<'_>) -> Vec<f32> {
    v.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

fn i64s(v: &safetensors::tensor::TensorView<'_>) -> Vec<i64> {
    v.data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Largest |a − r| over largest |r|.
fn relative_error(ours: &[f32], reference: &[f64]) -> f64 {
    let scale = reference.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    let diff = ours
        .iter()
        .zip(reference)
        .fold(0.0f64, |m, (a, r)| m.max((*a as f64 - r).abs()));
    diff / scale
}

fn target(v: &Value) -> Target {
    match v {
        Value::Null => Target::None,
        Value::Array(a) => Target::from((
            a[0].as_u64().unwrap() as usize,
            a[1].as_u64().unwrap() as usize,
        )),
        v => Target::from(v.as_u64().unwrap() as usize),
    }
}

fn attribute<B: AutodiffBackend>(
    model: &OnnxModel<B>,
    case: &Value,
    x: AnyTensor<B>,
    args: OnnxArgs<B>,
    t: Target,
) -> Result<Vec<f32>, InfluenceError> {
    let layer = case["layer"].as_str().unwrap();
    let input = case["side"] == "input";
    let n = case["n_steps"].as_u64().unwrap() as usize;
    let a = match case["method"].as_str().unwrap() {
        "internal_influence" => InternalInfluence::new(model, layer)?
            .attribute(x)
            .additional_forward_args(args)
            .target(t)
            .n_steps(n)
            .attribute_to_layer_input(input)
            .run()?,
        "layer_conductance" => LayerConductance::new(model, layer)?
            .attribute(x)
            .additional_forward_args(args)
            .target(t)
            .n_steps(n)
            .attribute_to_layer_input(input)
            .run()?,
        "layer_integrated_gradients" => LayerIntegratedGradients::new(model, layer)?
            .attribute(x)
            .additional_forward_args(args)
            .target(t)
            .n_steps(n)
            .attribute_to_layer_input(input)
            .run()?,
        "layer_gradient_x_activation" => LayerGradientXActivation::new(model, layer)?
            .attribute(x)
            .additional_forward_args(args)
            .target(t)
            .attribute_to_layer_input(input)
            .run()?,
        "layer_activation" => LayerActivation::new(model, layer)?
            .attribute(x)
            .additional_forward_args(args)
            .attribute_to_layer_input(input)
            .run()?,
        other => panic!("method {other}"),
    };
    a.to_vec()
}

fn run<B: AutodiffBackend>(meta: &Value, device: &B::Device, backend: &str) -> usize {
    let filter = std::env::var("INFLUENCE_ONNX_FILTER").unwrap_or_default();
    let (mut passed, mut failed) = (0, 0);
    for (name, m) in meta["models"].as_object().unwrap() {
        let bytes = std::fs::read(dir().join(format!("{name}.safetensors"))).unwrap();
        let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let input = file.tensor("input").unwrap();
        let shape = input.shape().to_vec();
        let values = f32s(&input);
        let tolerance = (3.0 * m["torch_f32_error"].as_f64().unwrap()).max(1e-6);
        for export in m["exports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
        {
            let path = dir().join(format!("{name}.{export}.onnx"));
            let mut model = OnnxModel::<B>::from_file(&path, device).unwrap();
            if let Some(layer) = m["explained"].as_str() {
                model = model.with_input(layer).unwrap();
            }
            let mut args = OnnxArgs::<B>::new();
            for arg in model.required_args() {
                let t = if let Ok(t) = file.tensor(&format!("args.{arg}")) {
                    (i64s(&t), t.shape().to_vec())
                } else {
                    let v = &m["tokens"][&arg];
                    let rows: Vec<Vec<i64>> = serde_json::from_value(v.clone()).unwrap();
                    (rows.concat(), vec![rows.len(), rows[0].len()])
                };
                args = args.ints(&arg, t.0, &t.1).unwrap();
            }
            let x = AnyTensor::from_parts(
                Tensor::<B, 1>::from_data(TensorData::new(values.clone(), [values.len()]), device)
                    .reshape([shape[0], values.len() / shape[0]]),
                shape.clone(),
            )
            .unwrap();
            // The forward first: the graph's output against PyTorch's (float64).
            let out = model.forward(x.clone(), &args).unwrap().to_vec().unwrap();
            let reference = f64s(&file.tensor("output").unwrap());
            let err = relative_error(&out, &reference);
            let ok = out.len() == reference.len() && err <= 1e-5;
            println!(
                "onnx: {} {name}.{export} forward: error {err:.2e} ({backend})",
                if ok { "ok  " } else { "FAIL" }
            );
            if ok {
                passed += 1
            } else {
                failed += 1
            }
            for case in m["cases"].as_array().unwrap() {
                let label = format!(
                    "{name}.{export} {} {} ({})",
                    case["method"].as_str().unwrap(),
                    case["layer"].as_str().unwrap(),
                    case["side"].as_str().unwrap()
                );
                if !label.contains(&filter) {
                    continue;
                }
                let reference = f64s(&file.tensor(case["tensor"].as_str().unwrap()).unwrap());
                let t = std::time::Instant::now();
                // A side this export fused away (a convolution's output, a BatchNorm's input):
                // a typed error.
                let unavailable = case["unavailable_in"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|e| e == export));
                if unavailable {
                    let layer = case["layer"].as_str().unwrap();
                    let side = if case["side"] == "input" {
                        LayerSide::Input
                    } else {
                        LayerSide::Output
                    };
                    let by_model = model.check_layer(layer, side);
                    let by_call =
                        attribute(&model, case, x.clone(), args.clone(), target(&m["target"]));
                    let ok = matches!(by_model, Err(OnnxError::LayerUnavailable { .. }))
                        && matches!(
                            by_call,
                            Err(InfluenceError::LayerUnavailable { .. }
                                | InfluenceError::Forward { .. })
                        );
                    if ok {
                        passed += 1
                    } else {
                        failed += 1
                    }
                    println!(
                        "onnx: {} {label}: not in this export, a typed error: {} ({backend})",
                        if ok { "ok  " } else { "FAIL" },
                        by_model.err().map_or("none".into(), |e| e.to_string())
                    );
                    continue;
                }
                // A module this export folded away: its name is a typed error that names the
                // node computing it, and that node gives Captum's numbers.
                let mut case = case.clone();
                if export == "torchscript"
                    && let Some(node) = case["torchscript_layer"].as_str().map(str::to_owned)
                {
                    let layer = case["layer"].as_str().unwrap();
                    match InternalInfluence::new(&model, layer) {
                        Err(InfluenceError::LayerUnavailable { reason, .. })
                            if reason.contains(&node) =>
                        {
                            passed += 1;
                            println!(
                                "onnx: ok   {label}: a typed error naming {node:?} ({backend})"
                            );
                        }
                        other => {
                            failed += 1;
                            println!(
                                "onnx: FAIL {label}: expected LayerUnavailable naming {node:?}, got {:?}",
                                other.err()
                            );
                        }
                    }
                    case["layer"] = Value::from(node);
                }
                match attribute(&model, &case, x.clone(), args.clone(), target(&m["target"])) {
                    Ok(ours) => {
                        let err = relative_error(&ours, &reference);
                        let ok = ours.len() == reference.len() && err <= tolerance;
                        if ok {
                            passed += 1
                        } else {
                            failed += 1
                        }
                        println!(
                            "onnx: {} {label:<80} error {err:.2e} (tolerance {tolerance:.1e}, PyTorch f32 {:.1e}) {:.2} s {backend}",
                            if ok { "ok  " } else { "FAIL" },
                            case["torch_f32_error"].as_f64().unwrap(),
                            t.elapsed().as_secs_f64()
                        );
                    }
                    Err(e) => {
                        failed += 1;
                        println!("onnx: FAIL {label}: {e} ({backend})");
                    }
                }
            }
        }
    }
    println!("onnx: {passed} passed, {failed} failed ({backend})");
    failed
}

fn wanted(backend: &str) -> bool {
    std::env::var("INFLUENCE_ONNX_BACKEND").map_or(true, |b| b == backend)
}

fn main() -> ExitCode {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("reference.json")).unwrap())
            .unwrap();
    let mut failed = 0;
    #[cfg(feature = "flex")]
    if wanted("flex") {
        use burn_influence::flex;
        failed += run::<flex::Backend>(&meta, &flex::device(), flex::NAME);
    }
    #[cfg(feature = "ndarray")]
    if wanted("ndarray") {
        use burn_influence::ndarray;
        failed += run::<ndarray::Backend>(&meta, &ndarray::device(), ndarray::NAME);
    }
    #[cfg(feature = "wgpu")]
    if wanted("wgpu") {
        use burn_influence::wgpu;
        failed += run::<wgpu::Backend>(&meta, &wgpu::device(), wgpu::NAME);
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
