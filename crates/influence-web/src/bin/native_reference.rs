//! The native numbers the browser test compares with: explains every fixture digit on the
//! flex backend, natively, with the same code as the web page, and prints the results as
//! JSON (`[{index, label, explanation}]`).
//!
//! usage: native-reference [N_STEPS]   (default 32)

use influence_web::{explain_digit, fixtures, load_model};

fn main() {
    let n_steps: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("N_STEPS is a number"))
        .unwrap_or(32);
    let device = influence_flex::device();
    let model = load_model::<influence_flex::Backend>(&device).expect("embedded weights load");
    let results: Vec<serde_json::Value> = fixtures()
        .into_iter()
        .map(|f| {
            let e = pollster::block_on(explain_digit(&model, &f.pixels, n_steps, "flex", &device))
                .expect("explanation");
            serde_json::json!({"index": f.index, "label": f.label, "explanation": e})
        })
        .collect();
    println!("{}", serde_json::to_string_pretty(&results).unwrap());
}
