//! Explaining a model trained in PyTorch: torchvision's ResNet-18, its weights saved as
//! safetensors, loaded into a Burn ResNet-18 (`influence-resnet`) that exposes torchvision's
//! layer names, one image explained for its predicted class with Internal Influence at a
//! layer. Writes a labelled figure (`resnet_influence.png`) and a report
//! (`resnet_report.json`). The walk-through is `docs/pytorch.md`.
//!
//! ```text
//! # In Python, once: the weights of your model (here torchvision's pretrained ResNet-18).
//! #   import torchvision; from safetensors.torch import save_file
//! #   m = torchvision.models.resnet18(weights="IMAGENET1K_V1").eval()
//! #   save_file(m.state_dict(), "resnet18.safetensors")
//! cargo run --release --example resnet -- --weights resnet18.safetensors --image cat.jpg
//! cargo run --release --example resnet                    # seeded random weights and image
//! cargo run --release --features ndarray --example resnet -- --backend ndarray
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use influence_resnet::explain::{ExplainConfig, ExplainReport, run};

/// Explain a torchvision ResNet-18 with Internal Influence.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// torchvision `resnet18` state dict saved as safetensors (`save_file(model.state_dict(),
    /// path)`); default: seeded random weights.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// An image (PNG or JPEG), preprocessed as torchvision's ImageNet transforms; default: a
    /// seeded random image.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The explained layer, a torchvision module name: conv1, layer1 .. layer4, layer3.0,
    /// layer3.0.conv1, layer3.0.downsample, ...
    #[arg(long, default_value = "layer3")]
    layer: String,
    /// Attribute to the layer's input instead of its output.
    #[arg(long)]
    attribute_to_layer_input: bool,
    /// Quadrature points (Captum's n_steps).
    #[arg(long, default_value_t = 50)]
    n_steps: usize,
    /// Rows per forward/backward pass (Captum's internal_batch_size).
    #[arg(long)]
    internal_batch_size: Option<usize>,
    /// flex (default), ndarray or wgpu (the latter two with `--features`).
    #[arg(long, default_value = "flex")]
    backend: String,
    /// Output directory.
    #[arg(long, default_value = "out/resnet")]
    out: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = ExplainConfig {
        weights: args.weights,
        image: args.image,
        layer: args.layer,
        attribute_to_layer_input: args.attribute_to_layer_input,
        n_steps: args.n_steps,
        internal_batch_size: args.internal_batch_size,
        out: args.out,
    };
    let report: Result<ExplainReport, String> = match args.backend.as_str() {
        #[cfg(feature = "flex")]
        "flex" => run::<burn_influence::flex::Backend>(&config, &burn_influence::flex::device())
            .map_err(|e| e.to_string()),
        #[cfg(feature = "ndarray")]
        "ndarray" => {
            run::<burn_influence::ndarray::Backend>(&config, &burn_influence::ndarray::device())
                .map_err(|e| e.to_string())
        }
        #[cfg(feature = "wgpu")]
        "wgpu" => run::<burn_influence::wgpu::Backend>(&config, &burn_influence::wgpu::device())
            .map_err(|e| e.to_string()),
        other => Err(format!(
            "--backend {other}: not compiled in or unknown; flex, ndarray (--features ndarray) or wgpu (--features wgpu)"
        )),
    };
    match report {
        Ok(r) => {
            println!("weights: {}", r.weights);
            println!("image:   {}", r.image);
            println!("top-5 classes (ImageNet index, probability):");
            for (c, p) in &r.top5 {
                println!("  {c:>4}  {p:.4}");
            }
            println!(
                "Internal Influence of {} {:?} on class {} ({:.2} s):",
                r.layer, r.shape, r.class, r.seconds
            );
            println!("experts (channel, total influence):");
            for (c, v) in &r.experts {
                println!("  #{c:<4} {v:+.4e}");
            }
            println!("figure: {}", r.figure.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
