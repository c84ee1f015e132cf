//! `influence layers` and `influence explain`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use influence_core::{
    AnyTensor, Attribution, DatasetAttribution, DatasetBatch, InfluenceError, InternalInfluence,
    LayerActivation, LayerConductance, LayerGradientXActivation, LayerIntegratedGradients,
    LayerSide, Method, Target, predict,
};
use influence_onnx::{LayerKind, OnnxArgs, OnnxModel};
use serde_json::json;

use crate::inputs::{self, Example, ImageSettings};
use crate::render::{self, Figure};
use crate::{BackendName, CliError, ExplainArgs, Side};

fn out_err(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Output {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Prints a line; a closed pipe (`influence layers m.onnx | head`) ends the listing quietly.
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            return Ok(());
        }
    }};
}

/// `influence layers`.
pub fn layers(model: &Path, all: bool, json: bool) -> Result<(), CliError> {
    #[cfg(feature = "flex")]
    type B = influence_flex::InnerBackend;
    #[cfg(all(not(feature = "flex"), feature = "ndarray"))]
    type B = influence_ndarray::InnerBackend;
    #[cfg(all(not(feature = "flex"), not(feature = "ndarray"), feature = "wgpu"))]
    type B = influence_wgpu::InnerBackend;
    let m = OnnxModel::<B>::from_file(model, &Default::default())?;
    // Shapes the file does not declare come from one forward of zeros.
    let listed = m.layers_with_shapes(&Default::default());
    let layers: Vec<_> = listed
        .iter()
        .filter(|l| all || l.kind == LayerKind::Module)
        .collect();
    if json {
        let v = json!({
            "producer": m.producer().0,
            "opset": m.producer().1,
            "naming": m.naming(),
            "inputs": m.inputs(),
            "outputs": m.outputs(),
            "layers": layers,
        });
        say!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(());
    }
    let (producer, opset) = m.producer();
    say!(
        "{}: {producer}, opset {opset}, names from the {:?} exporter",
        model.display(),
        m.naming()
    );
    for (name, elem, shape) in m.inputs() {
        say!("  input  {name}: {elem} {shape}");
    }
    for (name, shape) in m.outputs() {
        say!("  output {name}: {shape}");
    }
    if layers.is_empty() {
        say!("no PyTorch module names in this file (run with --all for its nodes and values)");
    }
    let width = layers
        .iter()
        .map(|l| l.name.len())
        .max()
        .unwrap_or(0)
        .min(48);
    for l in layers {
        let shapes = |v: &[(String, String)]| {
            v.iter()
                .map(|(_, s)| s.clone())
                .collect::<Vec<_>>()
                .join(", ")
        };
        say!(
            "{:<6} {:<width$}  {:<40} out {}{}",
            match l.kind {
                LayerKind::Module => "module",
                LayerKind::Node => "node",
                LayerKind::Value => "value",
            },
            l.name,
            short(&l.what),
            shapes(&l.outputs),
            if l.inputs.is_empty() {
                String::new()
            } else {
                format!("   in {}", shapes(&l.inputs))
            }
        );
    }
    if !all {
        say!("(every ONNX node and value name is a layer too: --all lists them)");
    }
    Ok(())
}

/// `torch.nn.modules.conv.Conv2d` → `Conv2d`.
fn short(what: &str) -> &str {
    what.rsplit('.').next().unwrap_or(what)
}

/// `influence explain`.
pub fn explain(args: &ExplainArgs) -> Result<(), CliError> {
    match args.backend {
        #[cfg(feature = "flex")]
        BackendName::Flex => run::<influence_flex::Backend>(args, &influence_flex::device()),
        #[cfg(feature = "ndarray")]
        BackendName::Ndarray => {
            run::<influence_ndarray::Backend>(args, &influence_ndarray::device())
        }
        #[cfg(feature = "wgpu")]
        BackendName::Wgpu => run::<influence_wgpu::Backend>(args, &influence_wgpu::device()),
        #[allow(unreachable_patterns)]
        other => Err(CliError::Usage(format!(
            "the backend {other:?} is not compiled into this build (cargo features flex, ndarray, wgpu)"
        ))),
    }
}

fn target_of(args: &ExplainArgs) -> Result<Option<usize>, CliError> {
    match args.target.as_str() {
        "predicted" => Ok(None),
        k => k.parse().map(Some).map_err(|_| {
            CliError::Usage(format!("--target {k:?}: \"predicted\" or a class index"))
        }),
    }
}

fn settings(args: &ExplainArgs) -> String {
    json!({
        "model": args.model.display().to_string(),
        "layer": args.layer,
        "side": format!("{:?}", args.side).to_lowercase(),
        "method": args.method,
        "n_steps": args.n_steps,
        "quadrature": args.quadrature,
        "baseline": args.baseline,
        "target": args.target,
        "size": args.size,
        "mean": args.mean,
        "std": args.std,
        "input_name": args.input_name,
    })
    .to_string()
}

/// One layer method's call on `x`, as the arguments ask.
fn attribute<B: AutodiffBackend>(
    model: &OnnxModel<B>,
    args: &ExplainArgs,
    x: AnyTensor<B>,
    target: Target,
) -> Result<Attribution<B::InnerBackend>, InfluenceError> {
    let layer = args.layer.as_str();
    let input = args.side == Side::Input;
    let quadrature: Method = args.quadrature.parse()?;
    let steps = |call: influence_core::AttributeCall<B, OnnxModel<B>>| {
        let call = call
            .target(target.clone())
            .baselines(args.baseline)
            .n_steps(args.n_steps)
            .method(quadrature)
            .attribute_to_layer_input(input);
        match args.internal_batch_size {
            Some(n) => call.internal_batch_size(n),
            None => call,
        }
    };
    match args.method.as_str() {
        "internal_influence" => steps(InternalInfluence::new(model, layer)?.attribute(x)).run(),
        "layer_conductance" => steps(LayerConductance::new(model, layer)?.attribute(x)).run(),
        "layer_integrated_gradients" => {
            steps(LayerIntegratedGradients::new(model, layer)?.attribute(x)).run()
        }
        "layer_gradient_x_activation" => LayerGradientXActivation::new(model, layer)?
            .attribute(x)
            .target(target.clone())
            .attribute_to_layer_input(input)
            .run(),
        "layer_activation" => LayerActivation::new(model, layer)?
            .attribute(x)
            .attribute_to_layer_input(input)
            .run(),
        other => Err(InfluenceError::UnknownMethod {
            name: other.to_owned(),
        }),
    }
}

fn batch_tensor<B: Backend>(
    examples: &[Example],
    device: &B::Device,
) -> Result<AnyTensor<B>, CliError> {
    let shape0 = &examples[0].shape;
    if let Some(e) = examples.iter().find(|e| &e.shape != shape0) {
        return Err(CliError::Usage(format!(
            "{} has shape {:?}, {} has {:?}: one batch needs one shape",
            e.name, e.shape, examples[0].name, shape0
        )));
    }
    let per: usize = shape0.iter().product();
    let values: Vec<f32> = examples
        .iter()
        .flat_map(|e| e.values.iter().copied())
        .collect();
    let n = values.len();
    let flat = Tensor::<B, 1>::from_data(TensorData::new(values, [n]), device)
        .reshape([examples.len(), per]);
    let mut shape = vec![examples.len()];
    shape.extend(shape0);
    Ok(AnyTensor::from_parts(flat, shape)?)
}

/// Top-`k` (class, logit) of each row of `[rows, classes]` logits.
fn top_classes(logits: &[f32], classes: usize, k: usize) -> Vec<Vec<(usize, f32)>> {
    logits
        .chunks(classes.max(1))
        .map(|row| {
            let mut idx: Vec<usize> = (0..row.len()).collect();
            idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
            idx.into_iter().take(k).map(|i| (i, row[i])).collect()
        })
        .collect()
}

fn run<B: AutodiffBackend>(args: &ExplainArgs, device: &B::Device) -> Result<(), CliError> {
    let mut model = OnnxModel::<B>::from_file(&args.model, device)?;
    if let Some(name) = &args.input_name {
        model = model.with_input(name)?;
    }
    let side = match args.side {
        Side::Output => LayerSide::Output,
        Side::Input => LayerSide::Input,
    };
    model.check_layer(&args.layer, side)?;
    if let Some(missing) = model.required_args().first() {
        return Err(CliError::Usage(format!(
            "the model also needs the input {missing:?}; this command explains models of one input (use the Rust API, OnnxArgs, for the others)"
        )));
    }
    args.quadrature.parse::<Method>()?;
    target_of(args)?;
    std::fs::create_dir_all(&args.out).map_err(|e| out_err(&args.out, e))?;
    let images = ImageSettings {
        size: args.size,
        mean: args.mean.clone(),
        std: args.std.clone(),
    };
    let example_rank = model.input_dims().map(|d| d.len().saturating_sub(1));
    if args.input.is_dir() {
        folder(&model, args, &images, example_rank, device)
    } else {
        let examples = inputs::read(&args.input, &images, example_rank)?;
        single(&model, args, examples, device)
    }
}

fn single<B: AutodiffBackend>(
    model: &OnnxModel<B>,
    args: &ExplainArgs,
    examples: Vec<Example>,
    device: &B::Device,
) -> Result<(), CliError> {
    let x = batch_tensor::<B>(&examples, device)?;
    let logits = predict(model, x.clone(), &OnnxArgs::new())?;
    let classes = logits.features();
    let top = top_classes(&logits.to_vec()?, classes, 5);
    let target = match target_of(args)? {
        Some(k) => Target::from(k),
        None => Target::Predicted,
    };
    let explained: Vec<usize> = match target_of(args)? {
        Some(k) => vec![k; examples.len()],
        None => top.iter().map(|t| t[0].0).collect(),
    };
    let t = std::time::Instant::now();
    let attribution = attribute(model, args, x.clone(), target)?;
    let seconds = t.elapsed().as_secs_f64();
    let shape = attribution.shape()?.to_vec();
    let values = attribution.to_vec()?;
    let per_channel: Option<Vec<f32>> = if shape.len() >= 2 {
        Some(
            attribution
                .per_channel()?
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| CliError::Usage(format!("{e:?}")))?,
        )
    } else {
        None
    };

    // safetensors: the attribution, its per-channel sums, the inputs.
    let path = args.out.join("attribution.safetensors");
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (a_bytes, x_bytes) = (bytes(&values), bytes(&x.to_vec()?));
    let pc_bytes = per_channel.as_deref().map(bytes);
    let mut tensors = vec![
        (
            "attribution".to_string(),
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), &a_bytes)
                .map_err(|e| out_err(&path, e))?,
        ),
        (
            "input".to_string(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                x.shape().to_vec(),
                &x_bytes,
            )
            .map_err(|e| out_err(&path, e))?,
        ),
    ];
    if let Some(pc) = &pc_bytes {
        tensors.push((
            "per_channel".to_string(),
            safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                vec![shape[0], shape[1]],
                pc,
            )
            .map_err(|e| out_err(&path, e))?,
        ));
    }
    let metadata: HashMap<String, String> = [("settings".to_string(), settings(args))].into();
    safetensors::serialize_to_file(tensors, Some(metadata), &path)
        .map_err(|e| out_err(&path, e))?;

    // JSON: settings, shapes, each example's prediction, target and top channels.
    let per_example: usize = shape[1..].iter().product();
    let channels = if shape.len() >= 2 { shape[1] } else { 0 };
    let examples_json: Vec<_> = examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let top_channels: Vec<(usize, f32)> = per_channel
                .as_ref()
                .map(|pc| {
                    let row = &pc[i * channels..(i + 1) * channels];
                    let mut idx: Vec<usize> = (0..channels).collect();
                    idx.sort_by(|&a, &b| row[b].abs().total_cmp(&row[a].abs()));
                    idx.into_iter().take(10).map(|c| (c, row[c])).collect()
                })
                .unwrap_or_default();
            json!({
                "name": e.name,
                "top_classes": top[i],
                "target": explained[i],
                "top_channels": top_channels,
            })
        })
        .collect();
    let json_path = args.out.join("attribution.json");
    let report = json!({
        "settings": serde_json::from_str::<serde_json::Value>(&settings(args)).expect("json"),
        "backend": format!("{:?}", args.backend).to_lowercase(),
        "input_shape": x.shape(),
        "attribution_shape": shape,
        "seconds": seconds,
        "examples": examples_json,
    });
    std::fs::write(
        &json_path,
        serde_json::to_string_pretty(&report).expect("json"),
    )
    .map_err(|e| out_err(&json_path, e))?;

    // A figure per image.
    let mut written = vec![path.display().to_string(), json_path.display().to_string()];
    for (i, e) in examples.iter().enumerate() {
        let Some(image) = &e.image else { continue };
        let stem = Path::new(&e.name)
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| format!("example{i}"));
        let png = args.out.join(format!("{stem}.png"));
        let pc = per_channel
            .as_ref()
            .map(|pc| &pc[i * channels..(i + 1) * channels])
            .unwrap_or(&[]);
        render::write(
            &png,
            &Figure {
                image,
                title: format!(
                    "{} of {} at {} ({}), class {} (logit {:.2})",
                    args.method,
                    args.model
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default(),
                    args.layer,
                    format!("{:?}", args.side).to_lowercase(),
                    explained[i],
                    top[i]
                        .iter()
                        .find(|(c, _)| *c == explained[i])
                        .map_or(f32::NAN, |(_, l)| *l)
                ),
                attribution: &values[i * per_example..(i + 1) * per_example],
                shape: &shape[1..],
                per_channel: pc,
            },
        )?;
        written.push(png.display().to_string());
    }
    println!(
        "{} example(s), {} at {} ({:?}), attribution {:?}, {seconds:.2} s on {:?}",
        examples.len(),
        args.method,
        args.layer,
        args.side,
        shape,
        args.backend
    );
    for w in written {
        println!("  wrote {w}");
    }
    Ok(())
}

fn folder<B: AutodiffBackend>(
    model: &OnnxModel<B>,
    args: &ExplainArgs,
    images: &ImageSettings,
    example_rank: Option<usize>,
    device: &B::Device,
) -> Result<(), CliError> {
    let files = inputs::files(&args.input)?;
    // The first file gives the example shape and the number of classes.
    let first = inputs::read(&files[0], images, example_rank)?;
    let rank = first[0].shape.len() + 1;
    let probe = batch_tensor::<B>(&first[..1], device)?;
    let logits = predict(model, probe, &OnnxArgs::new())?;
    if logits.rank() != 2 {
        return Err(CliError::Usage(format!(
            "a folder needs a classifier: the model's output is {:?}, not [batch, classes]",
            logits.shape()
        )));
    }
    let classes = logits.features();
    match rank {
        2 => folder_at::<B, 2>(model, args, images, example_rank, device, files, classes),
        3 => folder_at::<B, 3>(model, args, images, example_rank, device, files, classes),
        4 => folder_at::<B, 4>(model, args, images, example_rank, device, files, classes),
        5 => folder_at::<B, 5>(model, args, images, example_rank, device, files, classes),
        r => Err(CliError::Usage(format!(
            "examples of rank {} are not supported in a folder",
            r - 1
        ))),
    }
}

#[allow(clippy::too_many_arguments)]
fn folder_at<B: AutodiffBackend, const D: usize>(
    model: &OnnxModel<B>,
    args: &ExplainArgs,
    images: &ImageSettings,
    example_rank: Option<usize>,
    device: &B::Device,
    files: Vec<std::path::PathBuf>,
    classes: usize,
) -> Result<(), CliError> {
    let fixed = target_of(args)?;
    let read_error: Arc<std::sync::Mutex<Option<CliError>>> = Arc::default();
    // Examples, read lazily file by file, in batches.
    let examples = files.iter().flat_map({
        let read_error = read_error.clone();
        move |f| match inputs::read(f, images, example_rank) {
            Ok(v) => v,
            Err(e) => {
                read_error.lock().expect("not poisoned").get_or_insert(e);
                Vec::new()
            }
        }
    });
    let mut examples = examples.peekable();
    let batches = std::iter::from_fn(|| {
        let chunk: Vec<Example> = examples.by_ref().take(args.batch_size.max(1)).collect();
        if chunk.is_empty() {
            return None;
        }
        let x = batch_tensor::<B>(&chunk, device).ok()?;
        let targets: Vec<usize> = match fixed {
            Some(k) => vec![k; chunk.len()],
            None => {
                let logits = predict(model, x.clone(), &OnnxArgs::new()).ok()?;
                top_classes(&logits.to_vec().ok()?, classes, 1)
                    .iter()
                    .map(|t| t[0].0)
                    .collect()
            }
        };
        let inputs: Tensor<B, D> = x.into_tensor().ok()?;
        Some(DatasetBatch { inputs, targets })
    });
    let total = files.len();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} examples {per_sec} eta {eta} {msg}",
        )
        .expect("a valid template"),
    );
    let dir = args.out.join("dataset");
    let summary = DatasetAttribution::new(classes)
        .out_dir(&dir)
        .keep_attributions(true)
        .settings(settings(args))
        .run(
            batches,
            |_, x: Tensor<B, D>, targets: &[usize]| {
                attribute(
                    model,
                    args,
                    AnyTensor::from(x),
                    Target::from(targets.to_vec()),
                )
            },
            |p| {
                bar.set_length(p.total.unwrap_or(total).max(p.examples_done) as u64);
                bar.set_position(p.examples_done as u64);
                if p.examples_resumed > 0 {
                    bar.set_message(format!("({} resumed)", p.examples_resumed));
                }
            },
        )?;
    bar.finish();
    if let Some(e) = read_error.lock().expect("not poisoned").take() {
        return Err(e);
    }
    println!(
        "{} examples in {} batches ({} resumed), layer {} ({} neurons): {}",
        summary.examples,
        summary.batches,
        summary.examples_resumed,
        args.layer,
        summary.neurons,
        dir.display()
    );
    for c in summary.classes.iter().filter(|c| c.count > 0) {
        println!(
            "  class {}: {} examples, experts {:?}",
            c.class,
            c.count,
            c.experts.iter().take(5).collect::<Vec<_>>()
        );
    }
    Ok(())
}
