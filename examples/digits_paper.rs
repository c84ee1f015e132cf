//! The paper's three kinds of result (Leino et al. 2018, arXiv:1802.03788, §3–4) on the
//! digits CNN of the main job: the experts of each class, the essence of a class (its top
//! experts alone keep it), and what distinguishes two confusable classes.
//!
//! ```text
//! cargo run --release --example digits_paper                     # flex backend (CPU)
//! cargo run --release --example digits_paper -- --layer relu2 --doi path --out paper-relu2
//! cargo run --release --example digits_paper -- --pair 3,8
//! ```
//!
//! Reuses the main job's weights (`digits-out/digits_cnn.mpk`, same training seed and split)
//! when they exist, else trains the same model and saves it there, so that
//! `cargo run --release -p influence-digits` reuses it in turn. Writes `paper.json` (every
//! measurement), `paper-experts.png`, `paper-essence.png` and `paper-comparative.png` into
//! `--out` (default `digits-paper-out`). See docs/paper-results.md.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use influence_digits::paper::{Doi, PaperConfig, PaperSummary};
use influence_digits::train::TrainConfig;
use influence_digits::{RunConfig, Stage};

/// Reproduce Leino et al.'s experts, essence and comparative results on the digits CNN.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Backend: flex, ndarray or wgpu (ndarray and wgpu need `--features ndarray` / `wgpu`).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Layer: conv1, relu1, conv2, relu2 or pool.
    #[arg(long, default_value = "conv2")]
    layer: String,
    /// Distribution of interest around each digit: point (the plain gradient at the digit)
    /// or path (Internal Influence's straight path from zero, 50 Gauss-Legendre points).
    #[arg(long, default_value = "point")]
    doi: String,
    /// The pair of the comparative study, `of,against` (default: the most confusable pair of
    /// the held-out digits).
    #[arg(long)]
    pair: Option<String>,
    /// Random draws per k.
    #[arg(long, default_value_t = 20)]
    draws: usize,
    /// Seed of the random channel sets.
    #[arg(long, default_value_t = 2018)]
    seed: u64,
    /// Output directory.
    #[arg(long, default_value = "digits-paper-out")]
    out: PathBuf,
    /// The digits CSV file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv"))]
    data: PathBuf,
    /// Weights file: the main job's by default (trained and saved there when missing).
    #[arg(long, default_value = "digits-out/digits_cnn.mpk")]
    weights: PathBuf,
    /// Train even when the weights exist.
    #[arg(long)]
    retrain: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let mut rc = RunConfig::new(&args.data, &args.out, &args.backend);
    rc.weights = args.weights.clone();
    rc.retrain = args.retrain;
    // The main job's training settings (the digits command's defaults).
    rc.train = TrainConfig::new();
    let mut config = PaperConfig::new(rc);
    config.layer = args.layer.clone();
    config.doi = match args.doi.as_str() {
        "point" => Doi::Point,
        "path" => Doi::Path { n_steps: 50 },
        other => return Err(format!("--doi {other:?}: choose point or path")),
    };
    config.draws = args.draws;
    config.seed = args.seed;
    if let Some(p) = &args.pair {
        let parsed: Vec<usize> = p
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--pair {p:?}: {e}"))?;
        match parsed[..] {
            [a, b] if a < 10 && b < 10 && a != b => config.pair = Some((a, b)),
            _ => return Err(format!("--pair {p:?}: two different classes 0-9, e.g. 3,8")),
        }
    }
    let summary = match args.backend.as_str() {
        #[cfg(feature = "flex")]
        "flex" => run_on::<burn_influence::flex::Backend>(&config, &burn_influence::flex::device()),
        #[cfg(feature = "ndarray")]
        "ndarray" => {
            run_on::<burn_influence::ndarray::Backend>(&config, &burn_influence::ndarray::device())
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<burn_influence::wgpu::Backend>(&config, &burn_influence::wgpu::device()),
        known if ["ndarray", "flex", "wgpu"].contains(&known) => {
            return Err(format!(
                "--backend {known}: not compiled in; run with `--features {known}`"
            ));
        }
        other => return Err(format!("--backend {other:?}: choose flex, ndarray or wgpu")),
    }?;
    print_summary(&summary);
    Ok(())
}

fn run_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &PaperConfig,
    device: &B::Device,
) -> Result<PaperSummary, String> {
    let started = std::time::Instant::now();
    let mut last_epoch = 0;
    influence_digits::paper::run::<B>(config, device, |stage| match stage {
        Stage::Loaded(p) => println!(
            "reusing the weights in {} (--retrain to train again)",
            p.display()
        ),
        Stage::Training(p) => {
            if p.epoch_loss.is_some() && p.epoch != last_epoch {
                last_epoch = p.epoch;
                println!(
                    "training: epoch {} loss {:.4}",
                    p.epoch,
                    p.epoch_loss.unwrap_or(0.0)
                );
            }
        }
        Stage::Saved(p) => println!("saved the weights to {}", p.display()),
        Stage::Explaining(n) => println!(
            "ranking the experts of {} over {n} held-out digits ...",
            config.layer
        ),
        Stage::Figures => println!("drawing the experts in input space ..."),
        Stage::Streaming(_) => {}
    })
    .map_err(|e| e.to_string())
    .inspect(|_| println!("  done in {:.1} s", started.elapsed().as_secs_f64()))
}

fn print_summary(s: &PaperSummary) {
    let r = &s.report;
    println!(
        "\nheld-out accuracy: {:.2}% ({} digits); layer {}, distribution of interest: {}",
        100.0 * r.accuracy,
        r.held_out,
        r.settings.layer,
        r.settings.doi
    );
    println!(
        "\n1. experts per class (distributional influence on F_c over the class's held-out digits)"
    );
    println!(
        "class  digits  top experts (influence)                     top 3 under {}",
        r.settings.other_doi
    );
    for c in &r.experts {
        let top: Vec<String> = c.ranking[..3]
            .iter()
            .map(|&ch| format!("#{ch:<2} ({:+.3})", c.influence[ch]))
            .collect();
        let other: Vec<String> = c.ranking_other_doi[..3]
            .iter()
            .map(|ch| format!("#{ch}"))
            .collect();
        println!(
            "{:>5}  {:>6}  {}   {}",
            c.class,
            c.digits,
            top.join("  "),
            other.join(" ")
        );
    }
    println!(
        "\n2. essence: share of held-out digits still predicted as their class with only k channels kept (all classes)"
    );
    println!(
        "   k   experts   experts(train)   experts({})   random(mean, min-max)   least influential",
        short(&r.settings.other_doi)
    );
    for row in &r.essence_pooled {
        println!(
            "{:>4}   {:>6.1}%   {:>13.1}%   {:>11.1}%   {:>6.1}% ({:.1}-{:.1})      {:>6.1}%",
            row.k,
            100.0 * row.experts.preserved,
            100.0 * row.experts_train.preserved,
            100.0 * row.experts_other_doi.preserved,
            100.0 * row.random.preserved,
            100.0 * row.random_preserved_range.0,
            100.0 * row.random_preserved_range.1,
            100.0 * row.bottom.preserved
        );
    }
    let c = &r.comparative;
    let (a, b) = (c.pair.of, c.pair.against);
    println!(
        "\n3. comparative {a} vs {b} ({} held-out confusions between them; {} {a}s, mean margin F_{a} - F_{b} {:.2}, {:.1}% predicted {b} before zeroing)",
        c.pair.confusions,
        c.digits,
        c.plain.margin,
        100.0 * c.plain.flipped
    );
    let top: Vec<String> = c.influence.ranking[..4]
        .iter()
        .map(|&ch| format!("#{ch} ({:+.3})", c.influence.mean_influence[ch]))
        .collect();
    println!("top comparative channels: {}", top.join("  "));
    println!("   k   zeroed: margin drop / {a}s predicted {b}");
    println!("       comparative        experts of {a}      random             least");
    for row in &c.rows {
        let f = |z: &influence_digits::paper::ZeroEffect| {
            format!("{:>6.2} / {:>5.1}%", z.margin_drop, 100.0 * z.flipped)
        };
        println!(
            "{:>4}   {}   {}   {}   {}",
            row.k,
            f(&row.comparative),
            f(&row.class_experts),
            f(&row.random),
            f(&row.bottom)
        );
    }
    println!("\nwrote:");
    for f in &s.files {
        println!("  {}", f.display());
    }
}

fn short(doi: &str) -> &str {
    doi.split(' ').next().unwrap_or(doi)
}
