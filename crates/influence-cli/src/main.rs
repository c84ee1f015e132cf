//! `influence`: explain an ONNX model from the command line.
//!
//! ```text
//! influence layers model.onnx                      # its layers, PyTorch module names first
//! influence explain model.onnx --input cat.jpg --layer layer3 --target predicted --out out/
//! influence explain model.onnx --input images/ --layer layer3 --out out/   # a folder
//! ```
//!
//! `explain` writes `attribution.safetensors` (the attribution `[batch, ...layer dims]`, its
//! per-channel sums and the inputs), `attribution.json` (settings, shapes, targets, the
//! model's top classes, each example's top channels) and, for images, one PNG per image: the
//! input, the influence map (the attribution summed over channels) and the top channels.
//! A folder streams through burn-influence's dataset runner with a progress bar: one
//! safetensors file per batch under `OUT/dataset/`, per-class experts in
//! `OUT/dataset/summary.json`; started again with the same `--out`, it resumes.

mod explain;
mod inputs;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// Explain ONNX models (PyTorch's `torch.onnx.export`, timm, Hugging Face) by their PyTorch
/// module names, with Internal Influence and Captum's layer methods, on Burn's backends.
#[derive(Debug, Parser)]
#[command(name = "influence", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
// Parsed once: the size of `Explain` does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// List a model's layers: PyTorch modules (from the exporter's names), then, with --all,
    /// every ONNX node and value, with their shapes.
    Layers {
        /// The `.onnx` file (its external data, `model.onnx.data`, is read from beside it).
        model: PathBuf,
        /// Also every ONNX node and value.
        #[arg(long)]
        all: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Explain the model's output at one layer for an input (an image, a `.npy` or
    /// `.safetensors` file, or a folder of them).
    Explain(ExplainArgs),
}

/// Which side of the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// What the layer gives (Captum's default).
    Output,
    /// What the layer takes (Captum's `attribute_to_layer_input=True`).
    Input,
}

/// The backend the attribution runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// Burn's flex, CPU (feature `flex`, on by default).
    Flex,
    /// Burn's ndarray, CPU (feature `ndarray`).
    Ndarray,
    /// Burn's wgpu: Vulkan, Metal, DX12 (feature `wgpu`).
    Wgpu,
}

/// The arguments of `influence explain`.
#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The `.onnx` file.
    pub model: PathBuf,
    /// An image (PNG, JPEG), a `.npy` or `.safetensors` file of the model's input (one example
    /// or a batch), or a folder of such files.
    #[arg(long)]
    pub input: PathBuf,
    /// The layer: a PyTorch module path (`layer3`, `features.3`), an ONNX node or value name.
    #[arg(long)]
    pub layer: String,
    /// The explained output: `predicted` (each example's top class) or a class index.
    #[arg(long, default_value = "predicted")]
    pub target: String,
    /// The layer method, Captum's name.
    #[arg(long, default_value = "internal_influence", value_parser = ["internal_influence", "layer_conductance", "layer_integrated_gradients", "layer_gradient_x_activation", "layer_activation"])]
    pub method: String,
    /// Quadrature points (Captum's `n_steps`).
    #[arg(long, default_value_t = 50)]
    pub n_steps: usize,
    /// The quadrature rule (Captum's `method` argument).
    #[arg(long, default_value = "gausslegendre", value_parser = ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"])]
    pub quadrature: String,
    /// Attribute to the layer's output (default) or input.
    #[arg(long, value_enum, default_value_t = Side::Output)]
    pub side: Side,
    /// The baseline: every input value (default 0, after normalisation).
    #[arg(long, default_value_t = 0.0)]
    pub baseline: f64,
    /// Rows per forward/backward pass (Captum's `internal_batch_size`).
    #[arg(long)]
    pub internal_batch_size: Option<usize>,
    /// The backend.
    #[arg(long, value_enum, default_value_t = BackendName::Flex)]
    pub backend: BackendName,
    /// Images are resized to SIZE×SIZE.
    #[arg(long, default_value_t = 224)]
    pub size: u32,
    /// Per-channel mean subtracted from images (ImageNet's by default).
    #[arg(long, value_delimiter = ',', default_values_t = [0.485f32, 0.456, 0.406])]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation images are divided by (ImageNet's by default).
    #[arg(long, value_delimiter = ',', default_values_t = [0.229f32, 0.224, 0.225])]
    pub std: Vec<f32>,
    /// The graph input (or the value inside the graph) to explain, when not the first float
    /// input.
    #[arg(long)]
    pub input_name: Option<String>,
    /// Examples per batch for a folder.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Where to write the results.
    #[arg(long)]
    pub out: PathBuf,
}

/// Everything that can go wrong, with its message.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The model.
    #[error(transparent)]
    Onnx(#[from] influence_onnx::OnnxError),
    /// The attribution.
    #[error(transparent)]
    Influence(#[from] influence_core::InfluenceError),
    /// An input file.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Writing results.
    #[error("{path}: {message}")]
    Output {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// An argument.
    #[error("{0}")]
    Usage(String),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Layers { model, all, json } => explain::layers(&model, all, json),
        Command::Explain(args) => explain::explain(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("influence: error: {e}");
            ExitCode::FAILURE
        }
    }
}
