//! The main job: train a small CNN on the 1,797 real UCI 8×8 handwritten digits and explain
//! its held-out predictions with Internal Influence, the way Leino et al. (2018) do.
//!
//! ```text
//! cargo run --release --example digits                          # flex backend (CPU)
//! cargo run --release --features ndarray --example digits -- --backend ndarray
//! cargo run --release --features wgpu --example digits -- --backend wgpu
//! cargo run --release --example digits -- --layer conv1 --n-steps 32 --method riemann_middle --out my-run
//! cargo run --release --example digits -- --attribution layer_conductance --out conductance
//! ```
//!
//! Trains on first use (fixed seed, stratified 80/20 split) and saves the weights with Burn's
//! recorder under `--out`; later runs reuse them (`--retrain` to train again). Writes
//! `class_<c>.png` (input, influence map and overlay of up to 8 digits per predicted class),
//! `overview.png` (one digit per class) and `influence.json` (the attributions, the most
//! influential channels per class, the faithfulness check and the run's settings).

use std::path::PathBuf;
use std::process::ExitCode;

use burn_influence::Method;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use influence_digits::explain::{ExplainConfig, LayerMethod};
use influence_digits::train::TrainConfig;
use influence_digits::{DigitsError, RunConfig, Stage, Summary};

/// Train a digits CNN and explain it with Internal Influence (or a sibling layer method).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Backend: flex, ndarray or wgpu (ndarray and wgpu need `--features ndarray` / `--features wgpu`).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Layer to explain: conv1, relu1, conv2, relu2 or pool.
    #[arg(long, default_value = "conv2")]
    layer: String,
    /// Quadrature points.
    #[arg(long, default_value_t = 50)]
    n_steps: usize,
    /// Quadrature rule: gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid.
    #[arg(long, default_value = "gausslegendre")]
    method: String,
    /// Layer method (Captum's names): internal_influence, layer_conductance,
    /// layer_integrated_gradients, layer_gradient_x_activation, layer_activation. The last two
    /// take no path (`--n-steps`, `--method` unused); layer_activation explains no class.
    #[arg(long, default_value = "internal_influence")]
    attribution: String,
    /// Rows (digits × steps) per forward/backward pass.
    #[arg(long, default_value_t = 4096)]
    internal_batch_size: usize,
    /// Output directory (images, report, weights).
    #[arg(long, default_value = "digits-out")]
    out: PathBuf,
    /// The digits CSV file.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits/digits.csv"))]
    data: PathBuf,
    /// Weights file (default: <out>/digits_cnn.mpk).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Train even when saved weights exist.
    #[arg(long)]
    retrain: bool,
    /// Training epochs.
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Training seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
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
    let method: Method = args.method.parse().map_err(|e| format!("--method: {e}"))?;
    let attribution: LayerMethod = args
        .attribution
        .parse()
        .map_err(|e| format!("--attribution: {e}"))?;
    let mut config = RunConfig::new(&args.data, &args.out, &args.backend);
    if let Some(w) = &args.weights {
        config.weights = w.clone();
    }
    config.retrain = args.retrain;
    config.train = TrainConfig::new()
        .with_epochs(args.epochs)
        .with_seed(args.seed);
    config.explain = ExplainConfig {
        attribution,
        layer: args.layer.clone(),
        n_steps: args.n_steps,
        method,
        internal_batch_size: args.internal_batch_size,
    };
    let summary = match args.backend.as_str() {
        #[cfg(feature = "ndarray")]
        "ndarray" => {
            run_on::<burn_influence::ndarray::Backend>(&config, &burn_influence::ndarray::device())
        }
        #[cfg(feature = "flex")]
        "flex" => run_on::<burn_influence::flex::Backend>(&config, &burn_influence::flex::device()),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<burn_influence::wgpu::Backend>(&config, &burn_influence::wgpu::device()),
        known if ["ndarray", "flex", "wgpu"].contains(&known) => {
            return Err(format!(
                "--backend {known}: not compiled in; run with `--features {known}`"
            ));
        }
        other => {
            return Err(format!(
                "--backend {other:?}: unknown backend; choose ndarray, flex or wgpu"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    print_summary(&summary);
    Ok(())
}

fn run_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &RunConfig,
    device: &B::Device,
) -> Result<Summary, DigitsError> {
    let mut bar: Option<ProgressBar> = None;
    let explaining = std::cell::Cell::new(std::time::Instant::now());
    let summary = influence_digits::run::<B>(config, device, |stage| match stage {
        Stage::Training(p) => {
            let bar = bar.get_or_insert_with(|| {
                let b = ProgressBar::new(p.steps as u64);
                b.set_style(
                    ProgressStyle::with_template(
                        "training {bar:40} {pos}/{len} steps, epoch {msg} [{elapsed}]",
                    )
                    .expect("a valid template"),
                );
                b
            });
            bar.set_position(p.step as u64);
            match p.epoch_loss {
                Some(l) => bar.set_message(format!("{} (loss {l:.4})", p.epoch)),
                None if bar.message().is_empty() => bar.set_message(p.epoch.to_string()),
                None => {}
            }
        }
        Stage::Saved(path) => {
            if let Some(b) = &bar {
                b.finish();
            }
            println!("saved the weights to {}", path.display());
        }
        Stage::Loaded(path) => println!(
            "reusing the weights in {} (--retrain to train again)",
            path.display()
        ),
        Stage::Explaining(n) => {
            explaining.set(std::time::Instant::now());
            println!(
                "computing {} for {n} held-out digits ...",
                config.explain.attribution
            );
        }
    })?;
    println!(
        "  done in {:.1} s",
        explaining.get().elapsed().as_secs_f64()
    );
    Ok(summary)
}

fn print_summary(s: &Summary) {
    let r = &s.report;
    println!(
        "held-out accuracy: {:.2}% ({} digits; trained on {})",
        100.0 * r.accuracy,
        r.held_out_size,
        r.train_size
    );
    println!(
        "\nmost influential channels of layer {} per class (mean {} over the digits predicted as that class; {}, n_steps {}, {})",
        r.settings.layer,
        r.settings.attribution,
        r.settings.method,
        r.settings.n_steps,
        r.settings.backend
    );
    println!("class  digits  top channels (mean influence)");
    for c in &r.classes {
        let top: Vec<String> = c
            .top(5)
            .iter()
            .map(|&ch| format!("#{ch:<2} ({:+.3})", c.mean_influence[ch]))
            .collect();
        println!("{:>5}  {:>6}  {}", c.class, c.count, top.join("  "));
    }
    println!(
        "\nfaithfulness: mean drop of the explained logit when zeroing channels at {}",
        r.settings.layer
    );
    println!("   k   most influential   least influential");
    for f in &r.faithfulness {
        println!(
            "{:>4}   {:>16.3}   {:>17.3}",
            f.k, f.top_drop, f.bottom_drop
        );
    }
    println!("\nwrote:");
    for f in &s.files {
        println!("  {}", f.display());
    }
}
