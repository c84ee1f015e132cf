//! The main job: train a small CNN on the 1,797 real UCI 8×8 handwritten digits and explain
//! its held-out predictions with Internal Influence, the way Leino et al. (2018) do.
//!
//! ```text
//! cargo run --release -p influence-digits                          # flex backend (CPU)
//! cargo run --release -p influence-digits --features ndarray -- --backend ndarray
//! cargo run --release -p influence-digits --features wgpu -- --backend wgpu
//! cargo run --release -p influence-digits -- --layer conv1 --n-steps 32 --method riemann_middle --out my-run
//! cargo run --release -p influence-digits -- --attribution layer_conductance --out conductance
//! cargo run --release -p influence-digits -- --all --out digits-all  # every digit, resumable
//! ```
//!
//! Trains on first use (fixed seed, stratified 80/20 split) and saves the weights with Burn's
//! recorder under `--out`; later runs reuse them (`--retrain` to train again). Writes
//! `class_<c>.png` (input, influence map and overlay of up to 8 digits per predicted class),
//! `overview.png` (one digit per class) and `influence.json` (the attributions, the most
//! influential channels per class, the faithfulness check and the run's settings).
//!
//! With `--all` it streams the whole set (1,797 digits) through Burn's `DataLoader` with a
//! progress bar, each digit explained for its predicted class, and writes one safetensors
//! file per batch, `summary.json` (per class: mean influence of each channel, top experts),
//! `experts.png` (bar charts) and `expert_maps.png` (what each class's top experts respond to
//! in input space). Stopped (Ctrl-C, kill) and run again with the same `--out`, it resumes
//! from the stored batches.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use influence_core::Method;
use influence_digits::explain::{ExplainConfig, LayerMethod};
use influence_digits::scale::{ScaleConfig, ScaleSummary};
use influence_digits::train::TrainConfig;
use influence_digits::{DigitsError, RunConfig, Stage, Summary};

/// Train a digits CNN and explain it with Internal Influence (or a sibling layer method).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Backend: flex, ndarray, wgpu or remote (ndarray, wgpu and remote need `--features
    /// ndarray` / `wgpu` / `remote`).
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
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/digits/digits.csv"))]
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
    /// Explain every digit of the set (streamed, stored per batch, resumable) and draw the
    /// experts of each class, instead of the held-out digits.
    #[arg(long)]
    all: bool,
    /// With --all: digits per batch.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// With --all: batches attributed at once, each on its own thread (default: the cores).
    #[arg(long)]
    workers: Option<usize>,
    /// With --backend remote: the servers (`influence-server`), comma-separated; with --all the
    /// batches are spread over them.
    #[arg(long, default_value = "ws://127.0.0.1:3000")]
    remote: String,
    /// With --all: experts per class in the summary and the chart.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
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
    let scale = args.all.then(|| ScaleConfig {
        batch_size: args.batch_size,
        top_k: args.top_k,
        workers: args.workers.unwrap_or(ScaleConfig::default().workers),
        ..ScaleConfig::default()
    });
    let scale = scale.as_ref();
    let done = match args.backend.as_str() {
        #[cfg(feature = "ndarray")]
        "ndarray" => {
            run_on::<influence_ndarray::Backend>(&config, scale, &[influence_ndarray::device()])
        }
        #[cfg(feature = "flex")]
        "flex" => run_on::<influence_flex::Backend>(&config, scale, &[influence_flex::device()]),
        #[cfg(feature = "wgpu")]
        "wgpu" => run_on::<influence_wgpu::Backend>(&config, scale, &[influence_wgpu::device()]),
        #[cfg(feature = "remote")]
        "remote" => {
            let devices = args
                .remote
                .split(',')
                .map(|a| influence_remote::remote_device(a.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--remote: {e}"))?;
            run_on::<influence_remote::Backend>(&config, scale, &devices)
        }
        known if ["ndarray", "flex", "wgpu", "remote"].contains(&known) => {
            return Err(format!(
                "--backend {known}: not compiled in; run with `--features {known}`"
            ));
        }
        other => {
            return Err(format!(
                "--backend {other:?}: unknown backend; choose ndarray, flex, wgpu or remote"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    match done {
        Done::HeldOut(summary) => print_summary(&summary),
        Done::All(summary) => print_scale(&summary, &config),
    }
    Ok(())
}

enum Done {
    HeldOut(Box<Summary>),
    All(Box<ScaleSummary>),
}

fn run_on<B: burn::tensor::backend::AutodiffBackend>(
    config: &RunConfig,
    scale: Option<&ScaleConfig>,
    devices: &[B::Device],
) -> Result<Done, DigitsError> {
    let mut bar: Option<ProgressBar> = None;
    let mut streaming: Option<ProgressBar> = None;
    let explaining = std::cell::Cell::new(std::time::Instant::now());
    let stage = |stage| match stage {
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
        Stage::Streaming(p) => {
            let bar = streaming.get_or_insert_with(|| {
                explaining.set(std::time::Instant::now());
                println!(
                    "computing {} of {} for every digit, stored in {} ...",
                    config.explain.attribution,
                    config.explain.layer,
                    config.out.display()
                );
                let b = ProgressBar::new(p.total.unwrap_or(0) as u64);
                b.set_style(
                    ProgressStyle::with_template(
                        "{bar:40} {pos}/{len} digits, {msg} [{elapsed}, eta {eta}]",
                    )
                    .expect("a valid template"),
                );
                b
            });
            bar.set_position(p.examples_done as u64);
            let mut msg = format!("{:.0} digits/s", p.examples_per_second);
            if p.examples_resumed > 0 {
                msg.push_str(&format!(", {} resumed", p.examples_resumed));
            }
            bar.set_message(msg);
        }
        Stage::Figures => {
            if let Some(b) = &streaming {
                b.finish();
            }
            println!("drawing the experts ...");
        }
    };
    let done = match scale {
        None => Done::HeldOut(Box::new(influence_digits::run::<B>(
            config,
            &devices[0],
            stage,
        )?)),
        Some(scale) => Done::All(Box::new(influence_digits::scale::run_all::<B>(
            config, scale, devices, stage,
        )?)),
    };
    println!(
        "  done in {:.1} s",
        explaining.get().elapsed().as_secs_f64()
    );
    Ok(done)
}

fn print_scale(s: &ScaleSummary, config: &RunConfig) {
    let d = &s.dataset;
    println!(
        "explained {} digits in {} batches ({} resumed from {}); streaming took {:.2} s, {:.0} digits/s",
        d.examples,
        d.batches,
        d.examples_resumed,
        config.out.display(),
        s.streaming_seconds,
        (d.examples - d.examples_resumed) as f64 / s.streaming_seconds.max(1e-9)
    );
    println!(
        "\nexperts of layer {} per class (mean {} over the digits predicted as the class)",
        config.explain.layer, config.explain.attribution
    );
    println!("class  digits  experts (mean influence)");
    for c in &d.classes {
        let top: Vec<String> = c
            .experts
            .iter()
            .map(|&ch| format!("#{ch:<2} ({:+.3})", c.mean_influence[ch]))
            .collect();
        println!("{:>5}  {:>6}  {}", c.class, c.count, top.join("  "));
    }
    println!("\nwrote:");
    println!("  {}", config.out.join("batches").display());
    for f in &s.files {
        println!("  {}", f.display());
    }
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
