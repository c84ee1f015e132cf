//! Reading inputs: images (resized and normalised as torchvision's transforms do), `.npy`
//! and `.safetensors` files.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::CliError;

/// One example read from a file.
#[derive(Debug, Clone)]
pub struct Example {
    /// Where it came from (`cat.jpg`, `batch.npy[3]`).
    pub name: String,
    /// Its values, row-major, without the batch dim.
    pub values: Vec<f32>,
    /// Its shape, without the batch dim.
    pub shape: Vec<usize>,
    /// The image as the model saw it (resized), for the figure.
    pub image: Option<RgbImage>,
}

/// How images become tensors.
#[derive(Debug, Clone)]
pub struct ImageSettings {
    /// Resized to `size × size`.
    pub size: u32,
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

fn bad(path: &Path, message: impl Into<String>) -> CliError {
    CliError::Input {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Whether a file is one this tool reads.
pub fn readable(path: &Path) -> bool {
    matches!(
        path.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("png" | "jpg" | "jpeg" | "npy" | "safetensors")
    )
}

/// The readable files of a folder, sorted by name (or the file itself).
pub fn files(path: &Path) -> Result<Vec<PathBuf>, CliError> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| bad(path, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && readable(p))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(bad(
                path,
                "the folder has no .png, .jpg, .npy or .safetensors file",
            ));
        }
        Ok(files)
    } else if path.is_file() {
        if !readable(path) {
            return Err(bad(path, "not a .png, .jpg, .npy or .safetensors file"));
        }
        Ok(vec![path.to_path_buf()])
    } else {
        Err(bad(path, "no such file or folder"))
    }
}

/// The examples of one file. `example_rank` is the rank of one example of the model's input
/// (its declared rank without the batch), when declared: a tensor of that rank is one
/// example, one of rank + 1 a batch.
pub fn read(
    path: &Path,
    images: &ImageSettings,
    example_rank: Option<usize>,
) -> Result<Vec<Example>, CliError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => Ok(vec![image(path, &name, images)?]),
        "npy" => {
            let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
            let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(path, e.to_string()))?;
            let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
            let values: Vec<f32> = match npy.dtype() {
                npyz::DType::Plain(t)
                    if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 =>
                {
                    npy.into_vec::<f64>()
                        .map_err(|e| bad(path, e.to_string()))?
                        .into_iter()
                        .map(|v| v as f32)
                        .collect()
                }
                npyz::DType::Plain(t)
                    if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 =>
                {
                    npy.into_vec::<f32>()
                        .map_err(|e| bad(path, e.to_string()))?
                }
                other => {
                    return Err(bad(
                        path,
                        format!("array of {other:?}: float32 or float64 only"),
                    ));
                }
            };
            split(path, &name, values, shape, example_rank)
        }
        "safetensors" => {
            let bytes = std::fs::read(path).map_err(|e| bad(path, e.to_string()))?;
            let st = safetensors::SafeTensors::deserialize(&bytes)
                .map_err(|e| bad(path, e.to_string()))?;
            let names = st.names();
            let key = if names.contains(&"input") {
                "input".to_string()
            } else if names.len() == 1 {
                names[0].to_string()
            } else {
                return Err(bad(
                    path,
                    format!("no tensor named \"input\" among {names:?}"),
                ));
            };
            let t = st.tensor(&key).map_err(|e| bad(path, e.to_string()))?;
            let values: Vec<f32> = match t.dtype() {
                safetensors::Dtype::F32 => t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                safetensors::Dtype::F64 => t
                    .data()
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
                other => {
                    return Err(bad(
                        path,
                        format!("tensor {key:?} is {other:?}: F32 or F64 only"),
                    ));
                }
            };
            split(path, &name, values, t.shape().to_vec(), example_rank)
        }
        _ => Err(bad(path, "not a .png, .jpg, .npy or .safetensors file")),
    }
}

fn split(
    path: &Path,
    name: &str,
    values: Vec<f32>,
    shape: Vec<usize>,
    example_rank: Option<usize>,
) -> Result<Vec<Example>, CliError> {
    let batch = match example_rank {
        Some(r) if shape.len() == r => None,
        Some(r) if shape.len() == r + 1 => Some(shape[0]),
        Some(r) => {
            return Err(bad(
                path,
                format!(
                    "an array of shape {shape:?}: the model takes examples of rank {r} (or a batch of them)"
                ),
            ));
        }
        None => Some(shape.first().copied().unwrap_or(1)),
    };
    match batch {
        None => Ok(vec![Example {
            name: name.to_owned(),
            values,
            shape,
            image: None,
        }]),
        Some(b) => {
            let per: usize = shape[1..].iter().product();
            Ok((0..b)
                .map(|i| Example {
                    name: format!("{name}[{i}]"),
                    values: values[i * per..(i + 1) * per].to_vec(),
                    shape: shape[1..].to_vec(),
                    image: None,
                })
                .collect())
        }
    }
}

fn image(path: &Path, name: &str, s: &ImageSettings) -> Result<Example, CliError> {
    if s.mean.len() != 3 || s.std.len() != 3 || s.std.contains(&0.0) {
        return Err(CliError::Usage(
            "--mean and --std take three values each (red, green, blue), --std none zero".into(),
        ));
    }
    let img = image::open(path)
        .map_err(|e| bad(path, e.to_string()))?
        .to_rgb8();
    let img = image::imageops::resize(&img, s.size, s.size, image::imageops::FilterType::Triangle);
    let n = (s.size * s.size) as usize;
    let mut values = vec![0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            values[c * n + i] = (p.0[c] as f32 / 255.0 - s.mean[c]) / s.std[c];
        }
    }
    Ok(Example {
        name: name.to_owned(),
        values,
        shape: vec![3, s.size as usize, s.size as usize],
        image: Some(img),
    })
}
