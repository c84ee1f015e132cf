//! `influence-bench`: times Internal Influence on the standard workloads on each compiled
//! backend.
//!
//! ```text
//! cargo run --release --bin influence-bench -- [--workload NAME] [--backend NAME]
//!     [--repeats N] [--n-steps N] [--internal-batch-size N] [--json FILE]
//! ```
//!
//! Prints one line per workload and backend, `WORKLOAD BACKEND median_s min_s max_s peak_mib`
//! (seconds per `attribute` call, the result read back; the process's peak resident memory
//! during that workload's calls), then `#` lines with the arithmetic floor of each. Timings
//! are Gauss-Legendre, one target per example (`i % 10`), after one warm-up call, as
//! `scripts/captum_reference.py` times Captum.

mod workloads;

use std::process::ExitCode;
use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use burn_influence::onnx::{OnnxArgs, OnnxModel};
use burn_influence::{AnyTensor, AttributeCall, Explainable, InternalInfluence, Method, Target};
use clap::Parser;
use workloads::{Kind, NAMES, Workload, gemm_flops, workload};

/// Time Internal Influence on the standard workloads.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Workloads to run (repeat the flag): digits_cnn, mlp_784, cifar_cnn, resnet18_224,
    /// minilm; default the first three (minilm needs the model files, see influence-minilm).
    #[arg(long)]
    workload: Vec<String>,
    /// Backends to run (repeat the flag); default every compiled one.
    #[arg(long)]
    backend: Vec<String>,
    /// Timed calls per workload and backend.
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Quadrature points.
    #[arg(long, default_value_t = 50)]
    n_steps: usize,
    /// Rows (examples × steps) per forward/backward pass; default all steps in one pass.
    #[arg(long)]
    internal_batch_size: Option<usize>,
    /// Threads per call (`threads`); default the library's choice (the cores on a CPU
    /// backend, one on a GPU).
    #[arg(long)]
    threads: Option<usize>,
    /// Turn one optimisation off, to measure what it is worth: `step-per-pass` runs one
    /// quadrature step per forward/backward pass (`internal_batch_size` = batch) instead of
    /// all steps in one. Sequential workloads only.
    #[arg(long, value_enum, default_value_t = Ablation::None)]
    ablation: Ablation,
    /// Explain these layers (comma-separated) instead of the workload's one, all in one call
    /// (`InternalInfluence::with_layers`), or in one call each with `--separate-calls`.
    /// Sequential workloads only.
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// With `--layers`: one call per layer instead of one call for all.
    #[arg(long)]
    separate_calls: bool,
    /// Instead of timing: the quadrature study of `docs/quadrature.md` on the first backend.
    /// Per workload, the error of Captum's default (50 Gauss-Legendre points) and the points,
    /// time and error of `run_to_tolerance` at 1e-3 and 1e-4, all against 2,000 points.
    #[arg(long)]
    quadrature_study: bool,
    /// Instead of timing: the exact study of `docs/quadrature.md` on the first backend. Per
    /// workload, `run_exact` (pieces per example, passes, time), then the error against it
    /// and the time of Captum's default (50 Gauss-Legendre points) and of `run_to_tolerance`
    /// at 1e-3 and 1e-4. Every run chunked at 50 × batch rows.
    #[arg(long)]
    exact: bool,
    /// With `--exact`: the cap on pieces per example (`run_exact_with`); default the
    /// library's `MAX_EXACT_PIECES`.
    #[arg(long)]
    max_pieces: Option<usize>,
    /// Instead of timing: the ResNet-18 precision study's Rust side. Writes the activations of
    /// the seeded ResNet-18 (`influence_resnet::fixture`) at a few layers, for the seeded
    /// batch of 2 images of `--size` pixels scaled by α ∈ {1, 0.5, 0.05} (points of the path
    /// from a zero baseline), float32, to this safetensors file, on the first backend;
    /// `scripts/resnet18/precision_study.py` compares them with PyTorch's.
    #[arg(long)]
    dump_activations: Option<std::path::PathBuf>,
    /// Image side for `--dump-activations`.
    #[arg(long, default_value_t = 224)]
    size: usize,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

/// An optimisation turned off (`--ablation`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Ablation {
    /// Everything on.
    None,
    /// One quadrature step per forward/backward pass.
    StepPerPass,
}

/// One measurement.
struct Timing {
    workload: &'static str,
    backend: &'static str,
    median: f64,
    min: f64,
    max: f64,
    peak_mib: f64,
    floor_s: f64,
    gemm_gflops: f64,
    gflop: f64,
}

/// Resets the kernel's peak-RSS counter of this process (`/proc/self/clear_refs`, Linux).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A memory reading of this process from `/proc/self/status` (`field`: `VmRSS`, `VmHWM`), in
/// MiB; NaN where there is none.
fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// The process's resident memory now, in MiB (`VmRSS`).
fn resident_mib() -> f64 {
    status_mib("VmRSS")
}

/// Peak resident memory of this process since the last reset, in MiB (`VmHWM`).
fn peak_mib() -> f64 {
    status_mib("VmHWM")
}

/// Times `run` (after one warm-up call): sorted seconds, and the peak resident memory.
fn time_calls(repeats: usize, mut run: impl FnMut()) -> (Vec<f64>, f64) {
    reset_peak();
    run(); // warm-up
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times, peak_mib())
}

/// Completes `call` with the benchmark's settings (`n_steps`, Gauss-Legendre,
/// `internal_batch_size`), runs it and reads the result back, which waits for the device.
fn run_call<B: AutodiffBackend, M: Explainable<B>>(
    call: AttributeCall<B, M>,
    n_steps: usize,
    internal_batch_size: Option<usize>,
    threads: Option<usize>,
) {
    let mut call = call.n_steps(n_steps).method(Method::GaussLegendre);
    if let Some(m) = internal_batch_size {
        call = call.internal_batch_size(m);
    }
    if let Some(t) = threads {
        call = call.threads(t);
    }
    for attribution in call.run_layers().expect("attribution") {
        let values = attribution.to_vec().expect("read back");
        assert!(values.iter().all(|v| v.is_finite()));
    }
}

/// The seeded ResNet-18 of the `resnet18_224` workload (`influence_resnet::fixture`) and its
/// seeded images, `[batch, 3, size, size]`.
fn seeded_resnet18<B: AutodiffBackend>(
    batch: usize,
    size: usize,
    device: &B::Device,
) -> (influence_resnet::ResNet18<B>, burn::tensor::Tensor<B, 4>) {
    let bytes = influence_resnet::fixture::seeded_safetensors(1000, 0).expect("weights");
    let model = influence_resnet::load_torchvision_bytes(bytes, device).expect("loads");
    let x = burn::tensor::Tensor::<B, 4>::from_data(
        burn::tensor::TensorData::new(
            influence_resnet::fixture::seeded_images(batch, size, 0),
            [batch, 3, size, size],
        ),
        device,
    );
    (model, x)
}

fn time_one<B: AutodiffBackend>(
    w: &Workload,
    backend: &'static str,
    device: &B::Device,
    args: &Args,
) -> Timing {
    let (times, peak, flops) = match &w.kind {
        Kind::Sequential(net) => {
            let model =
                influence_testkit::sequential::Sequential::<B>::from_specs(&net.layers, device);
            let input = net.input::<B>(device);
            let layers: Vec<&str> = if args.layers.is_empty() {
                vec![w.layer]
            } else {
                args.layers.iter().map(String::as_str).collect()
            };
            let explainers: Vec<_> = if args.separate_calls {
                layers
                    .iter()
                    .map(|l| InternalInfluence::new(&model, *l).expect("a layer of the workload"))
                    .collect()
            } else {
                vec![InternalInfluence::with_layers(&model, layers.clone()).expect("its layers")]
            };
            let internal_batch_size = match args.ablation {
                Ablation::StepPerPass => Some(net.batch()),
                _ => args.internal_batch_size,
            };
            let targets = Target::PerExample(net.targets());
            let (times, peak) = time_calls(args.repeats, || {
                for ii in &explainers {
                    let call = ii.attribute(input.clone()).target(targets.clone());
                    run_call(call, args.n_steps, internal_batch_size, args.threads);
                }
            });
            (times, peak, net.flops(w.layer, args.n_steps))
        }
        Kind::MiniLm(dir) => {
            let model = influence_minilm::MiniLm::<B>::load(dir, device).expect("MiniLM loads");
            let query = model
                .tokenize(&[workloads::MINILM_QUERY.to_string()], device)
                .expect("tokenizes");
            let batch = model
                .tokenize(&[workloads::MINILM_SENTENCE.to_string()], device)
                .expect("tokenizes");
            let seq = batch.ids[0].len();
            let f =
                influence_minilm::Similarity::new(model.bert.clone(), model.embed(&query).detach());
            let words = model.bert.word_embeddings(batch.input_ids.clone()).detach();
            let ii = InternalInfluence::new(&f, w.layer).expect("the workload's layer");
            // As Captum's side: only the attribute call is timed.
            let (times, peak) = time_calls(args.repeats, || {
                let call = ii
                    .attribute(words.clone())
                    .additional_forward_args(batch.mask.clone());
                run_call(call, args.n_steps, args.internal_batch_size, args.threads);
            });
            (times, peak, workloads::minilm_flops(seq, args.n_steps))
        }
        Kind::ResNet18 { batch, size } => {
            let (model, x) = seeded_resnet18::<B>(*batch, *size, device);
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            let (times, peak) = time_calls(args.repeats, || {
                let call = ii.attribute(x.clone()).target(Target::Predicted);
                run_call(call, args.n_steps, args.internal_batch_size, args.threads);
            });
            let stage = w.layer.trim_start_matches("layer").parse().unwrap_or(0);
            let flops = workloads::resnet18_flops(*size, stage, *batch, args.n_steps);
            (times, peak, flops)
        }
        Kind::OnnxResNet18 { path, batch, size } => {
            let t = Instant::now();
            let model = OnnxModel::<B>::from_file(path, device).expect("the ONNX ResNet-18 loads");
            println!(
                "# {}: loaded {} in {:.3} s; resident memory {:.0} MiB",
                w.name,
                path.display(),
                t.elapsed().as_secs_f64(),
                resident_mib()
            );
            let (_, x) = seeded_resnet18::<B>(*batch, *size, device);
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            let (times, peak) = time_calls(args.repeats, || {
                let call = ii
                    .attribute(AnyTensor::from(x.clone()))
                    .target(Target::Predicted);
                run_call(call, args.n_steps, args.internal_batch_size, args.threads);
            });
            // After the timing, so that its memory is not in the peak.
            // The same attribution from the hand-written ResNet-18 (same weights and images).
            let (reference, _) = seeded_resnet18::<B>(*batch, *size, device);
            let a = ii
                .attribute(AnyTensor::from(x.clone()))
                .target(Target::Predicted)
                .n_steps(args.n_steps)
                .run()
                .expect("runs")
                .to_vec()
                .expect("read");
            let b = InternalInfluence::new(&reference, w.layer)
                .expect("layer")
                .attribute(x.clone())
                .target(Target::Predicted)
                .n_steps(args.n_steps)
                .run()
                .expect("runs")
                .to_vec()
                .expect("read");
            println!(
                "# {}: largest per-example relative L2 difference from influence-resnet's attribution: {:.2e}",
                w.name,
                relative_error(&a, &b, *batch)
            );
            let stage = w.layer.trim_start_matches("layer").parse().unwrap_or(0);
            let flops = workloads::resnet18_flops(*size, stage, *batch, args.n_steps);
            (times, peak, flops)
        }
        Kind::OnnxMiniLm { path, dir } => {
            let t = Instant::now();
            let model = OnnxModel::<B>::from_file(path, device)
                .and_then(|m| m.with_input("embeddings.word_embeddings"))
                .expect("the ONNX MiniLM loads");
            println!(
                "# {}: loaded {} in {:.3} s; resident memory {:.0} MiB",
                w.name,
                path.display(),
                t.elapsed().as_secs_f64(),
                resident_mib()
            );
            // The hand-written model tokenizes; it is dropped before the timing (its weights
            // would be in the peak) and loaded again after it, for the comparison.
            let load_hand_written =
                || influence_minilm::MiniLm::<B>::load(dir, device).expect("MiniLM loads");
            let tok = load_hand_written();
            let batch = tok
                .tokenize(&[workloads::MINILM_SENTENCE.to_string()], device)
                .expect("tokenizes");
            drop(tok);
            let seq = batch.ids[0].len();
            let ids: Vec<i64> = batch.ids[0].iter().map(|&i| i as i64).collect();
            let ids = OnnxArgs::<B>::new()
                .ints("input_ids", ids, &[1, seq])
                .expect("ids");
            let words = model
                .evaluate(&ids, &["embeddings.word_embeddings"])
                .expect("word embeddings")
                .remove(0);
            let args_ = OnnxArgs::<B>::new()
                .ints("attention_mask", vec![1; seq], &[1, seq])
                .expect("mask");
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            let (times, peak) = time_calls(args.repeats, || {
                let call = ii
                    .attribute(words.clone())
                    .additional_forward_args(args_.clone());
                run_call(call, args.n_steps, args.internal_batch_size, args.threads);
            });
            // After the timing, so that its memory is not in the peak.
            // The same attribution from the hand-written MiniLM.
            {
                let tok = load_hand_written();
                let query = tok
                    .tokenize(&[workloads::MINILM_QUERY.to_string()], device)
                    .expect("tokenizes");
                let f =
                    influence_minilm::Similarity::new(tok.bert.clone(), tok.embed(&query).detach());
                let hw = tok.bert.word_embeddings(batch.input_ids.clone()).detach();
                let b = InternalInfluence::new(&f, w.layer)
                    .expect("layer")
                    .attribute(hw)
                    .additional_forward_args(batch.mask.clone())
                    .n_steps(args.n_steps)
                    .run()
                    .expect("runs")
                    .to_vec()
                    .expect("read");
                let a = ii
                    .attribute(words.clone())
                    .additional_forward_args(args_.clone())
                    .n_steps(args.n_steps)
                    .run()
                    .expect("runs")
                    .to_vec()
                    .expect("read");
                println!(
                    "# {}: relative L2 difference from influence-minilm's attribution: {:.2e}",
                    w.name,
                    relative_error(&a, &b, 1)
                );
            }
            (times, peak, workloads::minilm_flops(seq, args.n_steps))
        }
    };
    let gemm = gemm_flops::<B::InnerBackend>(device, 5);
    Timing {
        workload: w.name,
        backend,
        median: times[times.len() / 2],
        min: times[0],
        max: times[times.len() - 1],
        peak_mib: peak,
        floor_s: flops / gemm,
        gemm_gflops: gemm / 1e9,
        gflop: flops / 1e9,
    }
}

/// The largest over the examples of the relative L2 error of `a` against `reference`.
fn relative_error(a: &[f32], reference: &[f32], batch: usize) -> f64 {
    let per = reference.len() / batch;
    (0..batch)
        .map(|i| {
            let (r, a) = (
                &reference[i * per..(i + 1) * per],
                &a[i * per..(i + 1) * per],
            );
            let d: f64 = r
                .iter()
                .zip(a)
                .map(|(r, a)| (*r as f64 - *a as f64).powi(2))
                .sum();
            let n: f64 = r.iter().map(|r| (*r as f64).powi(2)).sum();
            if d == 0.0 { 0.0 } else { (d / n).sqrt() }
        })
        .fold(0.0, f64::max)
}

/// One workload's row of the quadrature study: `make` starts the workload's call; `rows` is
/// the rows of one 50-point pass, the chunk every run uses (bounded memory at 2,000 points).
fn study<B: AutodiffBackend, M: Explainable<B>>(
    name: &str,
    batch: usize,
    make: impl Fn() -> AttributeCall<B, M>,
) {
    let rows = 50 * batch;
    let read = |a: burn_influence::Attribution<B::InnerBackend>| a.to_vec().expect("read back");
    let t = Instant::now();
    let reference = read(
        make()
            .n_steps(2000)
            .internal_batch_size(rows)
            .run()
            .expect("runs"),
    );
    println!(
        "{name:<11} reference 2000 points: {:.2} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    let default = read(
        make()
            .n_steps(50)
            .internal_batch_size(rows)
            .run()
            .expect("runs"),
    );
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{name:<11} {:<10} {:>7} {:>9.3} {:>10} {:>11.2e}",
        "n_steps=50",
        50,
        secs,
        "-",
        relative_error(&default, &reference, batch)
    );
    for rtol in [1e-3, 1e-4] {
        let t = Instant::now();
        match make().internal_batch_size(rows).run_to_tolerance(rtol) {
            Ok(c) => {
                let secs = t.elapsed().as_secs_f64();
                let error = relative_error(&read(c.attribution), &reference, batch);
                println!(
                    "{name:<11} {:<10} {:>7} {:>9.3} {:>10.2e} {:>11.2e}",
                    format!("rtol={rtol:e}"),
                    c.n_steps,
                    secs,
                    c.error_estimate,
                    error
                );
            }
            Err(e) => println!("{name:<11} rtol={rtol:e}: {e}"),
        }
    }
}

/// One workload's rows of the exact study (`--exact`): `make` starts the workload's call.
fn exact_study<B: AutodiffBackend, M: Explainable<B>>(
    name: &str,
    batch: usize,
    max_pieces: usize,
    make: impl Fn() -> AttributeCall<B, M>,
) {
    let rows = 50 * batch;
    let read = |a: burn_influence::Attribution<B::InnerBackend>| a.to_vec().expect("read back");
    let t = Instant::now();
    let exact = match make().internal_batch_size(rows).run_exact_with(max_pieces) {
        Ok(exact) => exact,
        Err(e) => {
            println!(
                "{name:<13} exact: {e} (after {:.1} s)",
                t.elapsed().as_secs_f64()
            );
            return;
        }
    };
    let secs = t.elapsed().as_secs_f64();
    let mut pieces = exact.pieces.clone();
    pieces.sort_unstable();
    println!(
        "{name:<13} {:<12} {:>7} {:>9.3} {:>11} pieces per example {} – {} – {}, {} passes",
        "exact",
        "-",
        secs,
        "0",
        pieces[0],
        pieces[pieces.len() / 2],
        pieces[pieces.len() - 1],
        exact.passes
    );
    let reference = read(exact.attribution);
    let t = Instant::now();
    let default = read(
        make()
            .n_steps(50)
            .method(Method::GaussLegendre)
            .internal_batch_size(rows)
            .run()
            .expect("runs"),
    );
    println!(
        "{name:<13} {:<12} {:>7} {:>9.3} {:>11.2e}",
        "n_steps=50",
        50,
        t.elapsed().as_secs_f64(),
        relative_error(&default, &reference, batch)
    );
    for rtol in [1e-3, 1e-4] {
        let t = Instant::now();
        match make().internal_batch_size(rows).run_to_tolerance(rtol) {
            Ok(c) => println!(
                "{name:<13} {:<12} {:>7} {:>9.3} {:>11.2e}",
                format!("rtol={rtol:e}"),
                c.n_steps,
                t.elapsed().as_secs_f64(),
                relative_error(&read(c.attribution), &reference, batch)
            ),
            Err(e) => println!(
                "{name:<13} rtol={rtol:e}: {e} ({:.1} s)",
                t.elapsed().as_secs_f64()
            ),
        }
    }
}

/// `--exact` on one workload.
fn exact_one<B: AutodiffBackend>(w: &Workload, device: &B::Device, max_pieces: usize) {
    match &w.kind {
        Kind::Sequential(net) => {
            let model =
                influence_testkit::sequential::Sequential::<B>::from_specs(&net.layers, device);
            let input = net.input::<B>(device);
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            let targets = Target::PerExample(net.targets());
            exact_study(w.name, net.batch(), max_pieces, || {
                ii.attribute(input.clone()).target(targets.clone())
            });
        }
        Kind::ResNet18 { batch, size } => {
            let (model, x) = seeded_resnet18::<B>(*batch, *size, device);
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            exact_study(w.name, *batch, max_pieces, || {
                ii.attribute(x.clone()).target(Target::Predicted)
            });
        }
        Kind::MiniLm(_) | Kind::OnnxMiniLm { .. } => println!(
            "{:<13} exact: not offered (GELU, softmax and layer norm are not piecewise linear: run_exact refuses it)",
            w.name
        ),
        Kind::OnnxResNet18 { .. } => println!("{:<13} exact: not offered", w.name),
    }
}

fn study_one<B: AutodiffBackend>(w: &Workload, device: &B::Device) {
    match &w.kind {
        Kind::Sequential(net) => {
            let model =
                influence_testkit::sequential::Sequential::<B>::from_specs(&net.layers, device);
            let input = net.input::<B>(device);
            let ii = InternalInfluence::new(&model, w.layer).expect("the workload's layer");
            let targets = Target::PerExample(net.targets());
            study(w.name, net.batch(), || {
                ii.attribute(input.clone()).target(targets.clone())
            });
        }
        Kind::MiniLm(dir) => {
            let model = influence_minilm::MiniLm::<B>::load(dir, device).expect("MiniLM loads");
            let query = model
                .tokenize(&[workloads::MINILM_QUERY.to_string()], device)
                .expect("tokenizes");
            let batch = model
                .tokenize(&[workloads::MINILM_SENTENCE.to_string()], device)
                .expect("tokenizes");
            let f =
                influence_minilm::Similarity::new(model.bert.clone(), model.embed(&query).detach());
            let words = model.bert.word_embeddings(batch.input_ids.clone()).detach();
            let ii = InternalInfluence::new(&f, w.layer).expect("the workload's layer");
            study(w.name, 1, || {
                ii.attribute(words.clone())
                    .additional_forward_args(batch.mask.clone())
            });
        }
        Kind::ResNet18 { .. } | Kind::OnnxResNet18 { .. } | Kind::OnnxMiniLm { .. } => {
            println!("# quadrature study: {} not offered", w.name)
        }
    }
}

/// The layers of the precision study: every activation that feeds a ReLU (the stem's `bn1`
/// and each block's `bn1`), the stages' outputs, and the logits.
pub const STUDY_LAYERS: [&str; 15] = [
    "bn1",
    "layer1.0.bn1",
    "layer1.1.bn1",
    "layer2.0.bn1",
    "layer2.1.bn1",
    "layer3.0.bn1",
    "layer3.1.bn1",
    "layer4.0.bn1",
    "layer4.1.bn1",
    "layer1",
    "layer2",
    "layer3",
    "layer4",
    "avgpool",
    "fc",
];

/// `--dump-activations`: see [`Args::dump_activations`].
fn dump_activations<B: AutodiffBackend>(
    path: &std::path::Path,
    size: usize,
    device: &B::Device,
) -> Result<(), String> {
    use burn::tensor::{Tensor, TensorData};
    let bytes =
        influence_resnet::fixture::seeded_safetensors(1000, 0).map_err(|e| e.to_string())?;
    let model: influence_resnet::ResNet18<B> =
        influence_resnet::load_torchvision_bytes(bytes, device).map_err(|e| e.to_string())?;
    let images = influence_resnet::fixture::seeded_images(2, size, 0);
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for alpha in [1.0f32, 0.5, 0.05] {
        let scaled: Vec<f32> = images.iter().map(|v| alpha * v).collect();
        let x = Tensor::<B, 4>::from_data(TensorData::new(scaled, [2, 3, size, size]), device);
        for layer in STUDY_LAYERS {
            let a = burn_influence::LayerActivation::new(&model, layer)
                .map_err(|e| e.to_string())?
                .attribute(x.clone())
                .run()
                .map_err(|e| e.to_string())?;
            let shape = a.shape().map_err(|e| e.to_string())?.to_vec();
            let values = a.to_vec().map_err(|e| e.to_string())?;
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensors.push((format!("{alpha}/{layer}"), shape, raw));
        }
    }
    let views = tensors
        .iter()
        .map(|(n, shape, raw)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                .map(|v| (n.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let bytes = safetensors::serialize(views, None).map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn compiled_backends() -> Vec<&'static str> {
    [
        #[cfg(feature = "flex")]
        "flex",
        #[cfg(feature = "ndarray")]
        "ndarray",
        #[cfg(feature = "wgpu")]
        "wgpu",
        #[cfg(feature = "cuda")]
        "cuda",
    ]
    .to_vec()
}

fn run_backend(w: &Workload, backend: &str, args: &Args) -> Option<Timing> {
    match backend {
        #[cfg(feature = "flex")]
        "flex" => Some(time_one::<burn_influence::flex::Backend>(
            w,
            "flex",
            &burn_influence::flex::device(),
            args,
        )),
        #[cfg(feature = "ndarray")]
        "ndarray" => Some(time_one::<burn_influence::ndarray::Backend>(
            w,
            "ndarray",
            &burn_influence::ndarray::device(),
            args,
        )),
        #[cfg(feature = "wgpu")]
        "wgpu" => Some(time_one::<burn_influence::wgpu::Backend>(
            w,
            "wgpu",
            &burn_influence::wgpu::device(),
            args,
        )),
        #[cfg(feature = "cuda")]
        "cuda" => Some(time_one::<burn_influence::cuda::Backend>(
            w,
            "cuda",
            &burn_influence::cuda::device(),
            args,
        )),
        _ => None,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let names: Vec<String> = if args.workload.is_empty() {
        NAMES.map(String::from).to_vec()
    } else {
        args.workload.clone()
    };
    let backends: Vec<String> = if args.backend.is_empty() {
        compiled_backends().into_iter().map(String::from).collect()
    } else {
        args.backend.clone()
    };
    let mut workloads = Vec::new();
    for n in &names {
        match workload(n) {
            Some(w) => workloads.push(w),
            None if n == "resnet18_224" => workloads.push(workloads::resnet18_224()),
            None if n == "onnx_resnet18_224" || n == "onnx_ts_resnet18_224" => {
                let file = if n.contains("_ts_") {
                    "resnet18_224.torchscript.onnx"
                } else {
                    "resnet18_224.onnx"
                };
                match workloads::onnx_resnet18_224(file) {
                    Ok(w) => workloads.push(w),
                    Err(e) => println!("# {n}: skipped: {e}"),
                }
            }
            None if n == "onnx_minilm" => {
                match influence_minilm::find_model_dir(None)
                    .map_err(|e| e.to_string())
                    .and_then(workloads::onnx_minilm)
                {
                    Ok(w) => workloads.push(w),
                    Err(e) => println!("# onnx_minilm: skipped: {e}"),
                }
            }
            None if n == "minilm" => match influence_minilm::find_model_dir(None) {
                Ok(dir) => workloads.push(workloads::minilm(dir)),
                Err(e) => println!("# minilm: skipped: {e}"),
            },
            None => {
                eprintln!(
                    "error: --workload {n:?}: unknown; choose from {NAMES:?}, resnet18_224, minilm, onnx_resnet18_224, onnx_ts_resnet18_224 or onnx_minilm"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    for b in &backends {
        if !compiled_backends().contains(&b.as_str()) {
            eprintln!(
                "error: --backend {b:?}: not compiled in (compiled: {:?}; build with --features {b})",
                compiled_backends()
            );
            return ExitCode::FAILURE;
        }
    }
    if let Some(path) = &args.dump_activations {
        let written = match backends[0].as_str() {
            #[cfg(feature = "flex")]
            "flex" => dump_activations::<burn_influence::flex::Backend>(
                path,
                args.size,
                &burn_influence::flex::device(),
            ),
            #[cfg(feature = "ndarray")]
            "ndarray" => dump_activations::<burn_influence::ndarray::Backend>(
                path,
                args.size,
                &burn_influence::ndarray::device(),
            ),
            #[cfg(feature = "wgpu")]
            "wgpu" => dump_activations::<burn_influence::wgpu::Backend>(
                path,
                args.size,
                &burn_influence::wgpu::device(),
            ),
            other => Err(format!(
                "--dump-activations: backend {other} not offered here"
            )),
        };
        return match written {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.exact {
        let max_pieces = args.max_pieces.unwrap_or(burn_influence::MAX_EXACT_PIECES);
        println!(
            "# exact study on {}: error = largest per-example relative L2 error against run_exact; at most {max_pieces} pieces per example",
            backends[0]
        );
        println!(
            "{:<13} {:<12} {:>7} {:>9} {:>11}",
            "workload", "setting", "n_steps", "seconds", "error"
        );
        for w in &workloads {
            match backends[0].as_str() {
                #[cfg(feature = "flex")]
                "flex" => exact_one::<burn_influence::flex::Backend>(
                    w,
                    &burn_influence::flex::device(),
                    max_pieces,
                ),
                #[cfg(feature = "ndarray")]
                "ndarray" => exact_one::<burn_influence::ndarray::Backend>(
                    w,
                    &burn_influence::ndarray::device(),
                    max_pieces,
                ),
                other => println!("# exact study: backend {other} not offered here"),
            }
        }
        return ExitCode::SUCCESS;
    }
    if args.quadrature_study {
        println!(
            "# quadrature study on {}: largest per-example relative L2 error against 2000 Gauss-Legendre points",
            backends[0]
        );
        println!(
            "{:<11} {:<10} {:>7} {:>9} {:>10} {:>11}",
            "workload", "setting", "n_steps", "seconds", "estimate", "error"
        );
        for w in &workloads {
            match backends[0].as_str() {
                #[cfg(feature = "flex")]
                "flex" => {
                    study_one::<burn_influence::flex::Backend>(w, &burn_influence::flex::device())
                }
                #[cfg(feature = "ndarray")]
                "ndarray" => study_one::<burn_influence::ndarray::Backend>(
                    w,
                    &burn_influence::ndarray::device(),
                ),
                other => println!("# quadrature study: backend {other} not offered here"),
            }
        }
        return ExitCode::SUCCESS;
    }
    if args.ablation != Ablation::None
        && workloads
            .iter()
            .any(|w| !matches!(w.kind, Kind::Sequential(_)))
    {
        eprintln!("error: --ablation applies to the sequential workloads only");
        return ExitCode::FAILURE;
    }
    if !args.layers.is_empty()
        && workloads
            .iter()
            .any(|w| !matches!(w.kind, Kind::Sequential(_)))
    {
        eprintln!("error: --layers applies to the sequential workloads only");
        return ExitCode::FAILURE;
    }
    println!(
        "# n_steps {}, internal_batch_size {}, threads {}, {} repeats, ablation {:?}; seconds per attribute call",
        args.n_steps,
        args.internal_batch_size
            .map_or("none".to_string(), |m| m.to_string()),
        args.threads.map_or("auto".to_string(), |t| t.to_string()),
        args.repeats,
        args.ablation
    );
    println!("# WORKLOAD BACKEND median_s min_s max_s peak_mib");
    let mut results = Vec::new();
    for w in &workloads {
        for b in &backends {
            let t = run_backend(w, b, &args).expect("a compiled backend");
            println!(
                "{} {} {:.4} {:.4} {:.4} {:.1}",
                t.workload, t.backend, t.median, t.min, t.max, t.peak_mib
            );
            results.push(t);
        }
    }
    println!(
        "# arithmetic floor: FLOPs of the forward pass and of the backward pass to the layer,"
    );
    println!("# at the backend's measured 1024x1024 matmul throughput");
    println!("# WORKLOAD BACKEND gflop gemm_gflops floor_s median/floor");
    for t in &results {
        println!(
            "# {} {} {:.2} {:.1} {:.4} {:.2}",
            t.workload,
            t.backend,
            t.gflop,
            t.gemm_gflops,
            t.floor_s,
            t.median / t.floor_s
        );
    }
    if let Some(path) = &args.json {
        let json: Vec<serde_json::Value> = results
            .iter()
            .map(|t| {
                serde_json::json!({
                    "workload": t.workload, "backend": t.backend, "median_s": t.median,
                    "min_s": t.min, "max_s": t.max, "peak_mib": t.peak_mib,
                    "gflop": t.gflop, "gemm_gflops": t.gemm_gflops, "floor_s": t.floor_s,
                    "n_steps": args.n_steps, "internal_batch_size": args.internal_batch_size,
                    "threads": args.threads,
                    "ablation": format!("{:?}", args.ablation),
                })
            })
            .collect();
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&json).unwrap()) {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
