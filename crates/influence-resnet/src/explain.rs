//! The path of a user who explains a ResNet-18 trained in PyTorch: load the weights
//! (torchvision's state dict as safetensors), load and preprocess an image as torchvision
//! does, predict, explain the predicted class at a layer with Internal Influence, and draw a
//! labelled figure. The `resnet` example (`examples/resnet.rs`) is this module with a
//! command line; `docs/pytorch.md` walks through it.

use std::path::{Path, PathBuf};

use burn::tensor::activation::softmax;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};
use influence_core::{InfluenceError, InternalInfluence, Method, Target, predict};
use serde::Serialize;

use crate::{ResNet18, ResNetError, fixture, load_torchvision, load_torchvision_bytes, normalize};

/// What to explain.
#[derive(Debug, Clone)]
pub struct ExplainConfig {
    /// A torchvision `resnet18` state dict saved as safetensors; `None`: the seeded random
    /// weights of [`fixture`] (a random network: the figure shows the mechanics, not a
    /// meaningful explanation).
    pub weights: Option<PathBuf>,
    /// An image (PNG or JPEG); `None`: a seeded random image.
    pub image: Option<PathBuf>,
    /// The explained layer, a torchvision name (`layer3`, `layer4.1.conv2`, ...).
    pub layer: String,
    /// Attribute to the layer's input instead of its output.
    pub attribute_to_layer_input: bool,
    /// Quadrature points (Captum's `n_steps`).
    pub n_steps: usize,
    /// Rows per forward/backward pass (Captum's `internal_batch_size`).
    pub internal_batch_size: Option<usize>,
    /// Output directory: `resnet_influence.png` and `resnet_report.json`.
    pub out: PathBuf,
}

impl ExplainConfig {
    /// Defaults: seeded weights and image, layer3, 50 points, output in `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            weights: None,
            image: None,
            layer: "layer3".into(),
            attribute_to_layer_input: false,
            n_steps: 50,
            internal_batch_size: None,
            out: out.into(),
        }
    }
}

/// What the run found (`resnet_report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ExplainReport {
    /// Where the weights came from.
    pub weights: String,
    /// Where the image came from.
    pub image: String,
    /// The five most probable classes (index into ImageNet's 1000), with probabilities.
    pub top5: Vec<(usize, f32)>,
    /// The explained class: the predicted one.
    pub class: usize,
    /// The explained layer and side.
    pub layer: String,
    /// The layer's shape for the image, `[1, channels, height, width]`.
    pub shape: Vec<usize>,
    /// The eight channels of largest total influence (the paper's experts), with it.
    pub experts: Vec<(usize, f32)>,
    /// Seconds of the attribution call.
    pub seconds: f64,
    /// The figure.
    pub figure: PathBuf,
}

/// ImageNet preprocessing as torchvision's `Resize(256)`, `CenterCrop(224)`, `ToTensor()`,
/// `Normalize(IMAGENET_MEAN, IMAGENET_STD)` (the resize with a triangle filter, torchvision's
/// with bilinear antialiasing: close, not bit-equal). Returns the normalised
/// `[1, 3, 224, 224]` tensor and the cropped pixels in [0, 1], `[3, 224, 224]` row-major.
///
/// # Errors
/// [`ResNetError::Io`] when the image cannot be read or decoded.
pub fn load_image<B: burn::tensor::backend::Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(Tensor<B, 4>, Vec<f32>), ResNetError> {
    let img = image::open(path)
        .map_err(|e| ResNetError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?
        .to_rgb8();
    let (w, h) = img.dimensions();
    let scale = 256.0 / w.min(h) as f64;
    let (rw, rh) = (
        ((w as f64 * scale).round() as u32).max(224),
        ((h as f64 * scale).round() as u32).max(224),
    );
    let resized = image::imageops::resize(&img, rw, rh, image::imageops::FilterType::Triangle);
    let (x0, y0) = ((rw - 224) / 2, (rh - 224) / 2);
    let mut pixels = vec![0f32; 3 * 224 * 224];
    for y in 0..224 {
        for x in 0..224 {
            let p = resized.get_pixel(x0 + x, y0 + y);
            for c in 0..3 {
                pixels[(c * 224 + y as usize) * 224 + x as usize] = p.0[c] as f32 / 255.0;
            }
        }
    }
    let t = Tensor::from_data(TensorData::new(pixels.clone(), [1, 3, 224, 224]), device);
    Ok((normalize(t), pixels))
}

/// Runs the whole path on backend `B` and writes the figure and the report.
///
/// # Errors
/// [`ResNetError`] for weights or images that do not load, the attribution's
/// [`InfluenceError`]s (an unknown layer, say), or a figure that cannot be written.
pub fn run<B: AutodiffBackend>(
    config: &ExplainConfig,
    device: &B::Device,
) -> Result<ExplainReport, ResNetError> {
    let (model, weights): (ResNet18<B>, String) = match &config.weights {
        Some(path) => (load_torchvision(path, device)?, path.display().to_string()),
        None => (
            load_torchvision_bytes(
                fixture::seeded_safetensors(crate::CLASSES, 0)
                    .map_err(|e| ResNetError::Weights(e.to_string()))?,
                device,
            )?,
            "seeded random weights (influence_resnet::fixture; no --weights given)".into(),
        ),
    };
    let (x, pixels, image) = match &config.image {
        Some(path) => {
            let (x, pixels) = load_image::<B>(path, device)?;
            (x, pixels, path.display().to_string())
        }
        None => {
            let normalised = fixture::seeded_images(1, 224, 0);
            let pixels = normalised
                .chunks(224 * 224)
                .enumerate()
                .flat_map(|(c, plane)| {
                    plane.iter().map(move |v| {
                        (v * crate::IMAGENET_STD[c] + crate::IMAGENET_MEAN[c]).clamp(0.0, 1.0)
                    })
                })
                .collect();
            let x = Tensor::from_data(TensorData::new(normalised, [1, 3, 224, 224]), device);
            (x, pixels, "a seeded random image (no --image given)".into())
        }
    };
    let influence = |e: InfluenceError| ResNetError::Weights(format!("attribution: {e}"));

    // Predictions from the model's inference function: `predict` (or `model.valid()`), never
    // `model.forward` on an autodiff backend, which would run BatchNorm in training mode and
    // move its running statistics.
    let logits = predict(&model, x.clone(), &())
        .map_err(influence)?
        .into_tensor::<2>()
        .map_err(influence)?;
    let probs: Vec<f32> = softmax(logits, 1)
        .into_data()
        .to_vec()
        .map_err(|e| ResNetError::Weights(format!("{e:?}")))?;
    let mut order: Vec<usize> = (0..probs.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
    let top5: Vec<(usize, f32)> = order.iter().take(5).map(|&c| (c, probs[c])).collect();

    let ii = InternalInfluence::new(&model, config.layer.as_str()).map_err(influence)?;
    let mut call = ii
        .attribute(x)
        .target(Target::Predicted)
        .n_steps(config.n_steps)
        .method(Method::GaussLegendre)
        .attribute_to_layer_input(config.attribute_to_layer_input);
    if let Some(m) = config.internal_batch_size {
        call = call.internal_batch_size(m);
    }
    let t = std::time::Instant::now();
    let attribution = call.run().map_err(influence)?;
    let seconds = t.elapsed().as_secs_f64();
    let shape = attribution.shape().map_err(influence)?.to_vec();
    let values = attribution.to_vec().map_err(influence)?;
    let (channels, positions) = match shape.as_slice() {
        [_, c, h, w] => (*c, h * w),
        [_, c] => (*c, 1),
        s => {
            return Err(ResNetError::Weights(format!(
                "layer {}: shape {s:?}; the figure needs [1, channels, height, width] or [1, features]",
                config.layer
            )));
        }
    };
    let per_channel: Vec<f32> = (0..channels)
        .map(|c| values[c * positions..(c + 1) * positions].iter().sum())
        .collect();
    let mut ranked: Vec<usize> = (0..channels).collect();
    ranked.sort_by(|&a, &b| per_channel[b].abs().total_cmp(&per_channel[a].abs()));
    let experts: Vec<(usize, f32)> = ranked
        .iter()
        .take(8)
        .map(|&c| (c, per_channel[c]))
        .collect();
    let map: Vec<f32> = (0..positions)
        .map(|p| (0..channels).map(|c| values[c * positions + p]).sum())
        .collect();
    let side = (positions as f64).sqrt().round() as usize;

    std::fs::create_dir_all(&config.out).map_err(|source| ResNetError::Io {
        path: config.out.display().to_string(),
        source,
    })?;
    let figure = config.out.join("resnet_influence.png");
    let side_name = if config.attribute_to_layer_input {
        "input"
    } else {
        "output"
    };
    crate::render::figure(
        &figure,
        &crate::render::Figure {
            pixels: &pixels,
            map: (side * side == positions).then_some((&map, side)),
            experts: &experts,
            title: format!(
                "Internal Influence of {} ({side_name}) on class {} (p = {:.3}), {} Gauss-Legendre points",
                config.layer, top5[0].0, top5[0].1, config.n_steps
            ),
        },
    )?;
    let report = ExplainReport {
        weights,
        image,
        top5,
        class: order[0],
        layer: format!("{} ({side_name})", config.layer),
        shape,
        experts,
        seconds,
        figure,
    };
    let json = serde_json::to_string_pretty(&report).expect("serialisable");
    let path = config.out.join("resnet_report.json");
    std::fs::write(&path, json).map_err(|source| ResNetError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(report)
}
