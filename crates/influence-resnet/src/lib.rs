//! # influence-resnet
//!
//! torchvision's ResNet-18 in Burn ([`ResNet18`]), exposing torchvision's module names to
//! burn-influence's [`LayerProbe`](influence_core::LayerProbe), and the way to bring a model
//! trained in PyTorch over: [`load_torchvision`] reads the weights of
//! `torchvision.models.resnet18` saved as safetensors
//! (`safetensors.torch.save_file(model.state_dict(), "resnet18.safetensors")`) with Burn's
//! own import crate, burn-store.
//!
//! [`fixture`] makes seeded random weights and images, the same bits as the repository's
//! reference generator (`scripts/resnet18/fixture.py`), for tests and benchmarks.

#![warn(missing_docs)]

pub mod explain;
pub mod fixture;
mod model;
pub mod render;

use std::path::Path;

use burn::tensor::{Tensor, TensorData, backend::Backend};
use burn_store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

pub use model::{BasicBlock, CLASSES, Downsample, ResNet18, layer_names};

/// What can go wrong loading weights.
#[derive(Debug, thiserror::Error)]
pub enum ResNetError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a safetensors file, or its tensors do not fit a ResNet-18.
    #[error("weights: {0}")]
    Weights(String),
}

/// ImageNet's per-channel mean, as torchvision's transforms use it.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel standard deviation.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Loads a ResNet-18 from the bytes of a safetensors file holding a torchvision
/// `resnet18` state dict (`model.state_dict()`, float32, torchvision's names). The number of
/// classes is read from `fc.weight`.
///
/// burn-store's `PyTorchToBurnAdapter` transposes `fc.weight` and renames BatchNorm's
/// `weight`/`bias` to Burn's `gamma`/`beta`; `downsample.0`/`downsample.1` are renamed to
/// this model's `downsample.conv`/`downsample.bn`. `num_batches_tracked` is not used.
///
/// # Errors
/// [`ResNetError::Weights`] when the bytes are not safetensors, `fc.weight` is missing, or a
/// tensor of the model is missing from the file or does not fit.
pub fn load_torchvision_bytes<B: Backend>(
    bytes: Vec<u8>,
    device: &B::Device,
) -> Result<ResNet18<B>, ResNetError> {
    let classes = {
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| ResNetError::Weights(format!("not a safetensors file: {e}")))?;
        let fc = file
            .tensor("fc.weight")
            .map_err(|_| ResNetError::Weights("no fc.weight: not a ResNet state dict".into()))?;
        match fc.shape() {
            [classes, 512] => *classes,
            s => {
                return Err(ResNetError::Weights(format!(
                    "fc.weight has shape {s:?}; a ResNet-18's is [classes, 512]"
                )));
            }
        }
    };
    let mut model = ResNet18::new(classes, device);
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .with_key_remapping(r"\.downsample\.0\.", ".downsample.conv.")
        .with_key_remapping(r"\.downsample\.1\.", ".downsample.bn.");
    let result = model
        .load_from(&mut store)
        .map_err(|e| ResNetError::Weights(format!("{e}")))?;
    if !result.missing.is_empty() || !result.errors.is_empty() {
        return Err(ResNetError::Weights(format!(
            "missing from the file: {:?}; errors: {:?}",
            result.missing.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            result.errors
        )));
    }
    Ok(model)
}

/// [`load_torchvision_bytes`] from a file.
///
/// # Errors
/// [`ResNetError::Io`] when the file cannot be read; the errors of
/// [`load_torchvision_bytes`].
pub fn load_torchvision<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<ResNet18<B>, ResNetError> {
    let bytes = std::fs::read(path).map_err(|source| ResNetError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_torchvision_bytes(bytes, device)
}

/// RGB pixels in [0, 1], `[batch, 3, height, width]`, normalised as torchvision's
/// `transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)`: `(x − mean) / std` per channel.
pub fn normalize<B: Backend>(pixels: Tensor<B, 4>) -> Tensor<B, 4> {
    let device = pixels.device();
    let mean = Tensor::<B, 1>::from_data(TensorData::from(IMAGENET_MEAN), &device);
    let std = Tensor::<B, 1>::from_data(TensorData::from(IMAGENET_STD), &device);
    (pixels - mean.reshape([1, 3, 1, 1])) / std.reshape([1, 3, 1, 1])
}
