//! The native numbers the browser test compares with: explains every fixture digit on the
//! flex backend, natively, with the same code as the web page, and prints the results as
//! JSON (`[{fixture, index, label, explanation}]`): every fixture with Internal Influence,
//! then the first fixture with each sibling method (`explanation.attribution` names it).
//!
//! usage: native-reference [N_STEPS]   (default 32)
//!        native-reference --onnx DIR      the ONNX cases of the browser test: each fixture
//!                                         model of DIR (tests/fixtures/onnx) explained on its
//!                                         fixture input through the same API as the page
//!                                         (`Model::from_onnx`, `attribute`), as JSON

use influence_web::api::{AttributeOptions, Model};
use influence_web::{LayerMethod, explain_digit, fixtures, load_model};

/// The browser test's ONNX cases: (model file, external data file, fixture, layer, target).
const ONNX_CASES: [(&str, Option<&str>, &str, &str, usize); 2] = [
    (
        "resnet18.dynamo.onnx",
        Some("resnet18.dynamo.onnx.data"),
        "resnet18.safetensors",
        "layer3",
        3,
    ),
    (
        "vit.torchscript.onnx",
        None,
        "vit.safetensors",
        "blocks.0",
        5,
    ),
];

fn onnx(dir: &std::path::Path) {
    let device = influence_flex::device();
    let read = |f: &str| std::fs::read(dir.join(f)).expect("fixture file");
    let mut out = Vec::new();
    for (model, data, fixture, layer, target) in ONNX_CASES {
        let m = Model::<influence_flex::Backend>::from_onnx(
            &read(model),
            data.map(read).as_deref(),
            &device,
        )
        .expect("the fixture model loads");
        let st = read(fixture);
        let st = safetensors::SafeTensors::deserialize(&st).expect("safetensors");
        let t = st.tensor("input").expect("input");
        let x: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let shape = t.shape().to_vec();
        let options: AttributeOptions = serde_json::from_value(
            serde_json::json!({ "layer": layer, "target": target, "nSteps": 8 }),
        )
        .expect("options");
        let attr = pollster::block_on(m.attribute(&x, &shape, &options, None, &device))
            .expect("attribution");
        let logits = pollster::block_on(m.predict(&x, &shape, &device)).expect("prediction");
        out.push(serde_json::json!({
            "model": model, "data": data, "layer": layer, "target": target, "n_steps": 8,
            "input": x, "shape": shape, "logits": logits.values,
            "values": attr.values, "attribution_shape": attr.shape,
        }));
    }
    println!("{}", serde_json::to_string(&out).unwrap());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--onnx") {
        onnx(std::path::Path::new(args.get(2).expect("--onnx DIR")));
        return;
    }
    let n_steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N_STEPS is a number"))
        .unwrap_or(32);
    let device = influence_flex::device();
    let model = load_model::<influence_flex::Backend>(&device).expect("embedded weights load");
    let explain = |pixels: &[f32], method| {
        pollster::block_on(explain_digit(
            &model, pixels, method, n_steps, "flex", &device,
        ))
        .expect("explanation")
    };
    let fixtures = fixtures();
    // Every fixture with Internal Influence, then the first with each sibling method.
    let mut results: Vec<serde_json::Value> = fixtures
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let e = explain(&f.pixels, LayerMethod::InternalInfluence);
            serde_json::json!({"fixture": i, "index": f.index, "label": f.label, "explanation": e})
        })
        .collect();
    let first = &fixtures[0];
    for method in &LayerMethod::ALL[1..] {
        let e = explain(&first.pixels, *method);
        results.push(
            serde_json::json!({"fixture": 0, "index": first.index, "label": first.label, "explanation": e}),
        );
    }
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
}
