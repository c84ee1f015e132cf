//! The standard workloads, with the architectures and sizes of
//! `scripts/captum_reference.py` (Captum's timings on the same workloads), built as
//! sequential models whose layers have the PyTorch module names.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use influence_testkit::sequential::{Act, Data, LayerSpec, NamedLayer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What a workload runs.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A sequential model and its input batch.
    Sequential(Net),
    /// all-MiniLM-L6-v2 from this directory: the similarity of one sentence to a query.
    MiniLm(std::path::PathBuf),
    /// torchvision's ResNet-18 with the seeded weights of `influence_resnet::fixture`, a batch
    /// of seeded images `[batch, 3, size, size]`, each explained for its predicted class.
    ResNet18 {
        /// Images in the batch.
        batch: usize,
        /// Their side in pixels.
        size: usize,
    },
    /// The same ResNet-18 (same weights, images and targets) as an ONNX file
    /// (`scripts/onnx/export_bench.py`), through `influence-onnx`.
    OnnxResNet18 {
        /// The `.onnx` file.
        path: std::path::PathBuf,
        /// Images in the batch.
        batch: usize,
        /// Their side in pixels.
        size: usize,
    },
    /// The `minilm` workload's similarity as an ONNX file (`scripts/onnx/export_bench.py`),
    /// explained from its word embeddings; the tokenizer of the MiniLM directory.
    OnnxMiniLm {
        /// The `.onnx` file.
        path: std::path::PathBuf,
        /// The MiniLM directory (tokenizer).
        dir: std::path::PathBuf,
    },
}

/// The directory of the ONNX workloads' files: `$INFLUENCE_ONNX_BENCH_DIR`, else
/// `/var/tmp/onnx-bench` (`python3 scripts/onnx/export_bench.py --out DIR` writes them).
pub fn onnx_dir() -> std::path::PathBuf {
    std::env::var_os("INFLUENCE_ONNX_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "/var/tmp/onnx-bench".into())
}

/// `onnx_resnet18_224`: `resnet18_224` from `resnet18_224.onnx` (dynamo export), or from
/// `file` in [`onnx_dir`].
pub fn onnx_resnet18_224(file: &str) -> Result<Workload, String> {
    let path = onnx_dir().join(file);
    if !path.is_file() {
        return Err(format!(
            "{} missing: python3 scripts/onnx/export_bench.py --out {}",
            path.display(),
            onnx_dir().display()
        ));
    }
    Ok(Workload {
        name: if file.contains("torchscript") {
            "onnx_ts_resnet18_224"
        } else {
            "onnx_resnet18_224"
        },
        kind: Kind::OnnxResNet18 {
            path,
            batch: 2,
            size: 224,
        },
        layer: "layer3",
    })
}

/// `onnx_minilm`: `minilm` from `minilm_similarity.onnx` in [`onnx_dir`].
pub fn onnx_minilm(dir: std::path::PathBuf) -> Result<Workload, String> {
    let path = onnx_dir().join("minilm_similarity.onnx");
    if !path.is_file() {
        return Err(format!(
            "{} missing: python3 scripts/onnx/export_bench.py --out {} --minilm-dir {}",
            path.display(),
            onnx_dir().display(),
            dir.display()
        ));
    }
    Ok(Workload {
        name: "onnx_minilm",
        kind: Kind::OnnxMiniLm { path, dir },
        layer: "encoder.layer.2",
    })
}

/// The `resnet18_224` workload: torchvision's ResNet-18 at 224×224, batch 2, layer3
/// (`scripts/captum_reference.py --workload resnet18_224`).
pub fn resnet18_224() -> Workload {
    Workload {
        name: "resnet18_224",
        kind: Kind::ResNet18 {
            batch: 2,
            size: 224,
        },
        layer: "layer3",
    }
}

/// The convolutions of ResNet-18 for a `size`×`size` input, in forward order: `(stage,
/// multiply-adds per example)`, stage 0 for the stem (conv1), 1 to 4 for `layer1`..`layer4`.
fn resnet18_convs(size: usize) -> Vec<(usize, usize)> {
    let out = |s: usize, k: usize, stride: usize| (s + 2 * (k / 2) - k) / stride + 1;
    let mut convs = Vec::new();
    let mut s = out(size, 7, 2);
    convs.push((0, 64 * 3 * 49 * s * s));
    s = out(s, 3, 2); // max-pool
    let mut c_in = 64;
    for (stage, c) in [64usize, 128, 256, 512].into_iter().enumerate() {
        for block in 0..2 {
            let stride = if block == 0 && stage > 0 { 2 } else { 1 };
            let s_out = out(s, 3, stride);
            let first_in = if block == 0 { c_in } else { c };
            convs.push((stage + 1, c * first_in * 9 * s_out * s_out));
            convs.push((stage + 1, c * c * 9 * s_out * s_out));
            if block == 0 && stage > 0 {
                convs.push((stage + 1, c * c_in * s_out * s_out));
            }
            s = s_out;
        }
        c_in = c;
    }
    convs
}

/// FLOPs of one ResNet-18 attribution at the output of `layer{stage}`: the whole forward,
/// and the input gradients of the stages after it (their convolutions again), per example
/// and point; the fully connected layer and the elementwise work are left out (< 1%).
pub fn resnet18_flops(size: usize, stage: usize, batch: usize, n_steps: usize) -> f64 {
    let convs = resnet18_convs(size);
    let forward: usize = convs.iter().map(|c| c.1).sum();
    let backward: usize = convs.iter().filter(|c| c.0 > stage).map(|c| c.1).sum();
    2.0 * (forward + backward) as f64 * (batch * n_steps) as f64
}

/// A sequential model of a standard workload, and the shape of its input batch.
#[derive(Debug, Clone)]
pub struct Net {
    /// The layers, PyTorch names.
    pub layers: Vec<NamedLayer>,
    /// Input shape, batch first.
    pub input_shape: Vec<usize>,
}

/// The `minilm` workload's query (11 tokens with `[CLS]` and `[SEP]`).
pub const MINILM_QUERY: &str = "How do I bake bread at home?";
/// The `minilm` workload's sentence (16 tokens with `[CLS]` and `[SEP]`).
pub const MINILM_SENTENCE: &str = "A simple recipe for homemade bread, baked in a hot oven.";

/// The `minilm` workload: Internal Influence at encoder layer 2 of the similarity of
/// [`MINILM_SENTENCE`] to [`MINILM_QUERY`] (word embeddings attributed, baseline zeros).
pub fn minilm(dir: std::path::PathBuf) -> Workload {
    Workload {
        name: "minilm",
        kind: Kind::MiniLm(dir),
        layer: "encoder.layer.2",
    }
}

/// FLOPs of one MiniLM attribution of a `seq`-token sentence at encoder layer 2 with
/// `n_steps` points: per token and layer, 4·384² multiply-adds for the attention projections,
/// 2·384·1536 for the feed-forward and 2·seq·384 for the attention itself; forward through the
/// 6 layers, backward through layers 3 to 5.
pub fn minilm_flops(seq: usize, n_steps: usize) -> f64 {
    let (h, i) = (384.0, 1536.0);
    let per_layer = seq as f64 * (4.0 * h * h + 2.0 * h * i + 2.0 * seq as f64 * h);
    2.0 * (6.0 + 3.0) * per_layer * n_steps as f64
}

/// A workload: a model, an input batch and the explained layer.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its name.
    pub name: &'static str,
    /// The model.
    pub kind: Kind,
    /// The explained layer.
    pub layer: &'static str,
}

/// The workload names.
pub const NAMES: [&str; 3] = ["digits_cnn", "mlp_784", "cifar_cnn"];

fn uniform(rng: &mut StdRng, n: usize, bound: f64) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-bound..bound)).collect()
}

/// PyTorch's default initialisation bounds (`U(-1/√fan_in, 1/√fan_in)`), seeded.
fn linear(rng: &mut StdRng, name: &str, d_in: usize, d_out: usize) -> NamedLayer {
    let b = 1.0 / (d_in as f64).sqrt();
    NamedLayer {
        name: name.into(),
        spec: LayerSpec::Linear {
            in_features: d_in,
            out_features: d_out,
            weight: Data {
                shape: vec![d_out, d_in],
                data: uniform(rng, d_in * d_out, b),
            },
            bias: Some(Data {
                shape: vec![d_out],
                data: uniform(rng, d_out, b),
            }),
        },
    }
}

fn conv(rng: &mut StdRng, name: &str, c_in: usize, c_out: usize) -> NamedLayer {
    let b = 1.0 / ((c_in * 9) as f64).sqrt();
    NamedLayer {
        name: name.into(),
        spec: LayerSpec::Conv2d {
            in_channels: c_in,
            out_channels: c_out,
            kernel_size: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
            weight: Data {
                shape: vec![c_out, c_in, 3, 3],
                data: uniform(rng, c_out * c_in * 9, b),
            },
            bias: Some(Data {
                shape: vec![c_out],
                data: uniform(rng, c_out, b),
            }),
        },
    }
}

fn op(name: &str, spec: LayerSpec) -> NamedLayer {
    NamedLayer {
        name: name.into(),
        spec,
    }
}

fn pool(name: &str) -> NamedLayer {
    op(
        name,
        LayerSpec::MaxPool2d {
            kernel_size: [2, 2],
            stride: [2, 2],
        },
    )
}

/// The workload `name`, or `None` for an unknown name.
pub fn workload(name: &str) -> Option<Workload> {
    let mut rng = StdRng::seed_from_u64(0);
    let rng = &mut rng;
    Some(match name {
        "digits_cnn" => Workload {
            name: "digits_cnn",
            kind: Kind::Sequential(Net {
                layers: vec![
                    conv(rng, "conv1", 1, 16),
                    op("relu1", LayerSpec::Relu),
                    conv(rng, "conv2", 16, 32),
                    op("relu2", LayerSpec::Relu),
                    pool("pool"),
                    op("flatten", LayerSpec::Flatten),
                    linear(rng, "fc1", 32 * 4 * 4, 64),
                    op("relu3", LayerSpec::Relu),
                    linear(rng, "fc2", 64, 10),
                ],
                input_shape: vec![64, 1, 8, 8],
            }),
            layer: "conv2",
        },
        "mlp_784" => Workload {
            name: "mlp_784",
            kind: Kind::Sequential(Net {
                layers: vec![
                    linear(rng, "fc1", 784, 512),
                    op("relu1", LayerSpec::Relu),
                    linear(rng, "fc2", 512, 256),
                    op("relu2", LayerSpec::Relu),
                    linear(rng, "fc3", 256, 10),
                ],
                input_shape: vec![128, 784],
            }),
            layer: "fc2",
        },
        "cifar_cnn" => Workload {
            name: "cifar_cnn",
            kind: Kind::Sequential(Net {
                layers: vec![
                    conv(rng, "conv1", 3, 32),
                    op("relu1", LayerSpec::Relu),
                    conv(rng, "conv2", 32, 32),
                    op("relu2", LayerSpec::Relu),
                    pool("pool1"),
                    conv(rng, "conv3", 32, 64),
                    op("relu3", LayerSpec::Relu),
                    pool("pool2"),
                    op("flatten", LayerSpec::Flatten),
                    linear(rng, "fc1", 64 * 8 * 8, 128),
                    op("relu4", LayerSpec::Relu),
                    linear(rng, "fc2", 128, 10),
                ],
                input_shape: vec![16, 3, 32, 32],
            }),
            layer: "conv3",
        },
        _ => return None,
    })
}

impl Net {
    /// The input batch: uniform in [0, 1), seeded.
    pub fn input<B: Backend>(&self, device: &B::Device) -> Act<B> {
        let mut rng = StdRng::seed_from_u64(1);
        let n: usize = self.input_shape.iter().product();
        Data {
            shape: self.input_shape.clone(),
            data: (0..n).map(|_| rng.random_range(0.0..1.0)).collect(),
        }
        .act(device)
    }

    /// The batch size.
    pub fn batch(&self) -> usize {
        self.input_shape[0]
    }

    /// One target per example: `i % 10`, as the reference script.
    pub fn targets(&self) -> Vec<usize> {
        (0..self.batch()).map(|i| i % 10).collect()
    }

    /// Multiply-adds of one example's forward pass, and of its backward pass from the output
    /// to the explained layer `layer` (input gradients only, no parameter gradients).
    pub fn macs_per_example(&self, layer: &str) -> (u64, u64) {
        let mut shape: Vec<usize> = self.input_shape[1..].to_vec();
        let (mut forward, mut after) = (0u64, 0u64);
        let mut past_layer = false;
        for l in &self.layers {
            let macs = match &l.spec {
                LayerSpec::Linear {
                    in_features,
                    out_features,
                    ..
                } => {
                    shape = vec![*out_features];
                    (in_features * out_features) as u64
                }
                LayerSpec::Conv2d {
                    in_channels,
                    out_channels,
                    kernel_size,
                    ..
                } => {
                    // Stride 1, padding 1: the spatial size is kept.
                    let (h, w) = (shape[1], shape[2]);
                    shape = vec![*out_channels, h, w];
                    (in_channels * out_channels * kernel_size[0] * kernel_size[1] * h * w) as u64
                }
                LayerSpec::MaxPool2d { .. } => {
                    shape = vec![shape[0], shape[1] / 2, shape[2] / 2];
                    0
                }
                LayerSpec::Flatten => {
                    shape = vec![shape.iter().product()];
                    0
                }
                _ => 0,
            };
            forward += macs;
            if past_layer {
                after += macs;
            }
            past_layer |= l.name == layer;
        }
        (forward, after)
    }

    /// Floating-point operations of one attribution with `n_steps` points: two per
    /// multiply-add, over `n_steps × batch` rows, forward plus backward to `layer`.
    pub fn flops(&self, layer: &str, n_steps: usize) -> f64 {
        let (forward, after) = self.macs_per_example(layer);
        2.0 * (forward + after) as f64 * (n_steps * self.batch()) as f64
    }
}

/// The backend's sustained matrix-product throughput in FLOP/s: the median of `repeats`
/// products of two 1024 × 1024 matrices, each read back.
pub fn gemm_flops<B: Backend>(device: &B::Device, repeats: usize) -> f64 {
    let n = 1024;
    let a = Tensor::<B, 2>::ones([n, n], device);
    let b = Tensor::<B, 2>::ones([n, n], device);
    let _ = a.clone().matmul(b.clone()).sum().into_data(); // warm-up
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = std::time::Instant::now();
            let _ = a.clone().matmul(b.clone()).sum().into_data();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    2.0 * (n * n * n) as f64 / times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet18_has_torchvisions_multiply_adds() {
        // torchvision's documented 1.81 GFLOPS (multiply-adds) for ResNet-18 at 224×224,
        // of which the fully connected layer is 0.5 M.
        let macs: usize = resnet18_convs(224).iter().map(|c| c.1).sum();
        assert_eq!(macs, 1_813_561_344);
    }

    #[test]
    fn macs_of_the_digits_cnn() {
        let w = workload("digits_cnn").unwrap();
        let Kind::Sequential(net) = &w.kind else {
            panic!("digits_cnn is sequential")
        };
        let (forward, after) = net.macs_per_example(w.layer);
        let conv1 = 16 * 9 * 64;
        let conv2 = 16 * 32 * 9 * 64;
        let fc = 512 * 64 + 64 * 10;
        assert_eq!(forward, (conv1 + conv2 + fc) as u64);
        assert_eq!(after, fc as u64);
        assert!(workload("resnet").is_none());
    }
}
