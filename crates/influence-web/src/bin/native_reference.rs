//! The native numbers the browser test compares with: explains every fixture digit on the
//! flex backend, natively, with the same code as the web page, and prints the results as
//! JSON (`[{fixture, index, label, explanation}]`): every fixture with Internal Influence,
//! then the first fixture with each sibling method (`explanation.attribution` names it).
//!
//! usage: native-reference [N_STEPS]   (default 32)

use influence_web::{LayerMethod, explain_digit, fixtures, load_model};

fn main() {
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
