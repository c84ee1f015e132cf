//! Seeded random ResNet-18 weights and images, the same bits as
//! `scripts/resnet18/fixture.py`, so that a test can load weights written the way a user's
//! file is written (a torchvision state dict as safetensors) and compare with references
//! computed by torchvision and Captum from the same values, without a 47 MB file in the
//! repository.
//!
//! Every value is drawn from a counter-based generator keyed by the tensor's name:
//! `SplitMix64(FNV-1a(name) ^ seed + index)`, whose top 24 bits `u / 2^24` are mapped to
//! `lo + (hi − lo) · u` in float64 and rounded to float32.

use std::collections::BTreeMap;

/// FNV-1a, 64 bits.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// SplitMix64's output function of state `x`.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `n` values in `[lo, hi)` for the tensor `name`.
pub fn uniform(name: &str, n: usize, lo: f64, hi: f64, seed: u64) -> Vec<f32> {
    let key = fnv1a64(name.as_bytes()) ^ seed;
    (0..n as u64)
        .map(|i| {
            let u = (splitmix64(key.wrapping_add(i)) >> 40) as f64 / (1u64 << 24) as f64;
            (lo + (hi - lo) * u) as f32
        })
        .collect()
}

/// The range of a parameter of torchvision's `resnet18` (as `fixture.py`'s `param_range`):
/// He-uniform convolutions, PyTorch's default for `fc`, BatchNorm scales in [0.5, 1.2),
/// shifts and running means in [−0.2, 0.2), running variances in [0.5, 1.5).
fn param_range(name: &str, shape: &[usize]) -> (f64, f64) {
    if name.ends_with("running_mean") {
        (-0.2, 0.2)
    } else if name.ends_with("running_var") {
        (0.5, 1.5)
    } else if shape.len() == 4 {
        let fan_in = (shape[1] * shape[2] * shape[3]) as f64;
        let b = (6.0 / fan_in).sqrt();
        (-b, b)
    } else if name.starts_with("fc.") {
        let b = 1.0 / 512f64.sqrt();
        (-b, b)
    } else if name.ends_with("weight") {
        (0.5, 1.2)
    } else {
        (-0.2, 0.2)
    }
}

/// The float tensors of torchvision's `resnet18(num_classes=classes).state_dict()`, names
/// and shapes, in its order (`num_batches_tracked` left out).
pub fn state_dict_shapes(classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let bn = |out: &mut Vec<(String, Vec<usize>)>, name: &str, c: usize| {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{name}.{p}"), vec![c]));
        }
    };
    out.push(("conv1.weight".into(), vec![64, 3, 7, 7]));
    bn(&mut out, "bn1", 64);
    let mut c_in = 64;
    for (s, c) in [64, 128, 256, 512].into_iter().enumerate() {
        for b in 0..2 {
            let block = format!("layer{}.{b}", s + 1);
            let first_in = if b == 0 { c_in } else { c };
            out.push((format!("{block}.conv1.weight"), vec![c, first_in, 3, 3]));
            bn(&mut out, &format!("{block}.bn1"), c);
            out.push((format!("{block}.conv2.weight"), vec![c, c, 3, 3]));
            bn(&mut out, &format!("{block}.bn2"), c);
            if b == 0 && s > 0 {
                out.push((format!("{block}.downsample.0.weight"), vec![c, c_in, 1, 1]));
                bn(&mut out, &format!("{block}.downsample.1"), c);
            }
        }
        c_in = c;
    }
    out.push(("fc.weight".into(), vec![classes, 512]));
    out.push(("fc.bias".into(), vec![classes]));
    out
}

/// The seeded weights: every float tensor of the state dict, by name, with its shape.
pub fn seeded_state_dict(classes: usize, seed: u64) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    state_dict_shapes(classes)
        .into_iter()
        .map(|(name, shape)| {
            let (lo, hi) = param_range(&name, &shape);
            let values = uniform(&name, shape.iter().product(), lo, hi, seed);
            (name, (shape, values))
        })
        .collect()
}

/// The seeded weights as a safetensors file's bytes, as
/// `safetensors.torch.save_file(model.state_dict(), path)` writes them (float32, torchvision's
/// names; without `num_batches_tracked`).
///
/// # Errors
/// The `safetensors` crate's serialisation error (none for these tensors).
pub fn seeded_safetensors(
    classes: usize,
    seed: u64,
) -> Result<Vec<u8>, safetensors::SafeTensorError> {
    let tensors = seeded_state_dict(classes, seed);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, (shape, values))| {
            let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, raw)
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, shape, raw)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), raw)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::serialize(views, None)
}

/// `[batch, 3, size, size]` seeded inputs in [−2, 2) (the range of ImageNet-normalised
/// pixels), row-major; `fixture.py`'s `images`.
pub fn seeded_images(batch: usize, size: usize, seed: u64) -> Vec<f32> {
    uniform(
        &format!("images/{batch}x{size}"),
        batch * 3 * size * size,
        -2.0,
        2.0,
        seed,
    )
}
