//! Bad ONNX input: truncated, garbage and mutated files (byte flips, truncations, and
//! mutations of the protobuf structure: operators, inputs, outputs, attributes, tensor shapes,
//! data types and data, declared shapes, node order, operator set) of two small real exports
//! (`tiny.dynamo.onnx`, `tiny.torchscript.onnx`: convolution, BatchNorm, pooling, LayerNorm,
//! attention's products and softmax, GELU, slicing), and inputs of the wrong shape or type.
//!
//! Every mutant either loads and runs (a forward on the original input, and every 50th an
//! attribution), or gives a typed error; nothing may panic (a panic hook counts them, caught
//! or not: in a browser a panic aborts the module) and resident memory stays flat.
//!
//! `INFLUENCE_ONNX_FUZZ=N` runs N mutants (default 10,000, with a fixed seed),
//! `INFLUENCE_ONNX_FUZZ_SEED` another seed.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Tensor, TensorData};
use burn_influence::onnx::{OnnxArgs, OnnxError, OnnxModel};
use burn_influence::{AnyTensor, InternalInfluence};
use protobuf::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type Backend = burn_influence::flex::Backend;
type Inner = burn_influence::flex::InnerBackend;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/onnx")
            .join(name),
    )
    .unwrap()
}

fn resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

const OPS: [&str; 14] = [
    "Relu",
    "Conv",
    "Add",
    "MatMul",
    "Reshape",
    "Concat",
    "Gather",
    "Softmax",
    "Slice",
    "Transpose",
    "LayerNormalization",
    "Unknown",
    "Loop",
    "Expand",
];
const INTS: [i64; 10] = [-1, 0, 1, 2, 3, 7, -7, 1 << 20, 1 << 40, -(1 << 40)];

/// One structural mutation of the model's protobuf.
fn mutate_structure(model: &mut onnx_ir::ModelProto, rng: &mut StdRng) {
    let graph = model.graph.mut_or_insert_default();
    let names: Vec<String> = graph
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(graph.initializer.iter().map(|t| t.name.clone()))
        .collect();
    let n_nodes = graph.node.len().max(1);
    let pick = |rng: &mut StdRng, names: &[String]| -> String {
        if names.is_empty() || rng.random_bool(0.1) {
            "no_such_value".into()
        } else {
            names[rng.random_range(0..names.len())].clone()
        }
    };
    match rng.random_range(0..14) {
        0 if !graph.node.is_empty() => {
            let i = rng.random_range(0..n_nodes);
            graph.node[i].op_type = OPS[rng.random_range(0..OPS.len())].into();
        }
        1 if !graph.node.is_empty() => {
            let i = rng.random_range(0..n_nodes);
            let node = &mut graph.node[i];
            if !node.input.is_empty() && rng.random_bool(0.5) {
                let k = rng.random_range(0..node.input.len());
                node.input.remove(k);
            } else {
                node.input.push(pick(rng, &names));
            }
        }
        2 if !graph.node.is_empty() => {
            let i = rng.random_range(0..n_nodes);
            let node = &mut graph.node[i];
            if !node.input.is_empty() {
                let k = rng.random_range(0..node.input.len());
                node.input[k] = pick(rng, &names);
            }
        }
        3 if !graph.node.is_empty() => {
            let i = rng.random_range(0..n_nodes);
            let node = &mut graph.node[i];
            if !node.output.is_empty() {
                node.output[0] = pick(rng, &names);
            }
        }
        4 | 5 if !graph.node.is_empty() => {
            let i = rng.random_range(0..n_nodes);
            let node = &mut graph.node[i];
            if !node.attribute.is_empty() {
                let k = rng.random_range(0..node.attribute.len());
                let a = &mut node.attribute[k];
                match rng.random_range(0..5) {
                    0 => a.i = INTS[rng.random_range(0..INTS.len())],
                    1 => {
                        let v = INTS[rng.random_range(0..INTS.len())];
                        if a.ints.is_empty() {
                            a.ints.push(v);
                        } else {
                            let j = rng.random_range(0..a.ints.len());
                            a.ints[j] = v;
                        }
                    }
                    2 => a.f = [f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30][rng.random_range(0..5)],
                    3 => a.type_ = protobuf::EnumOrUnknown::from_i32(rng.random_range(0..16)),
                    _ => a.ints.clear(),
                }
            }
        }
        6 | 7 if !graph.initializer.is_empty() => {
            let i = rng.random_range(0..graph.initializer.len());
            let t = &mut graph.initializer[i];
            match rng.random_range(0..5) {
                0 if !t.dims.is_empty() => {
                    let j = rng.random_range(0..t.dims.len());
                    t.dims[j] = INTS[rng.random_range(0..INTS.len())];
                }
                1 => t.dims.push(INTS[rng.random_range(0..INTS.len())]),
                2 => {
                    let len = t.raw_data.len();
                    t.raw_data = t.raw_data.slice(0..rng.random_range(0..=len));
                }
                3 => t.data_type = rng.random_range(0..20),
                _ => {
                    t.data_location = protobuf::EnumOrUnknown::from_i32(1);
                    let mut e = onnx_ir::TensorProto::new().external_data;
                    e.clear();
                    t.external_data = e;
                }
            }
        }
        8 if !graph.input.is_empty() => {
            let i = rng.random_range(0..graph.input.len());
            let shape = graph.input[i]
                .type_
                .mut_or_insert_default()
                .mut_tensor_type()
                .shape
                .mut_or_insert_default();
            if !shape.dim.is_empty() {
                let j = rng.random_range(0..shape.dim.len());
                shape.dim[j].set_dim_value(INTS[rng.random_range(0..INTS.len())]);
            } else {
                shape.dim.clear();
            }
        }
        9 if graph.node.len() > 1 => {
            let i = rng.random_range(0..n_nodes);
            graph.node.remove(i);
        }
        10 if graph.node.len() > 1 => {
            let (i, j) = (rng.random_range(0..n_nodes), rng.random_range(0..n_nodes));
            graph.node.swap(i, j);
        }
        11 if !model.opset_import.is_empty() => {
            model.opset_import[0].version = [0, 7, 9, 11, 13, 17, 18, 99][rng.random_range(0..8)];
        }
        12 => {
            graph.output.clear();
        }
        _ => {
            let i = rng.random_range(0..n_nodes);
            if let Some(node) = graph.node.get_mut(i) {
                node.domain = "com.microsoft".into();
            }
        }
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut StdRng) {
    match rng.random_range(0..4) {
        0 => {
            for _ in 0..rng.random_range(1..10) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => bytes.truncate(rng.random_range(0..bytes.len())),
        2 => {
            let i = rng.random_range(0..bytes.len());
            let junk: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            bytes.splice(i..i, junk);
        }
        _ => {
            let i = rng.random_range(0..bytes.len());
            let n = rng.random_range(1..32).min(bytes.len() - i);
            bytes.drain(i..i + n);
        }
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let n = PANICS.fetch_add(1, Ordering::Relaxed);
        if n < 5 {
            eprintln!("onnx_fuzz: PANIC: {info}");
        }
    }));
    let count: usize = std::env::var("INFLUENCE_ONNX_FUZZ")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let seed: u64 = std::env::var("INFLUENCE_ONNX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(35);
    let device = burn_influence::flex::device();
    let bases = [
        fixture("tiny.dynamo.onnx"),
        fixture("tiny.torchscript.onnx"),
    ];
    let st = fixture("tiny.safetensors");
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    let x: Vec<f32> = st
        .tensor("input")
        .unwrap()
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let input = |rows: usize| {
        let data: Vec<f32> = x.iter().cycle().take(rows * x.len()).copied().collect();
        AnyTensor::from(Tensor::<Inner, 4>::from_data(
            TensorData::new(data, [rows, 3, 8, 8]),
            &device,
        ))
    };
    let mut failures = 0;

    // The originals load and run; wrong inputs are typed errors.
    for (k, base) in bases.iter().enumerate() {
        let m = OnnxModel::<Inner>::from_bytes(base, &device).unwrap();
        m.forward(input(1), &OnnxArgs::new()).unwrap();
        m.forward(input(3), &OnnxArgs::new()).unwrap();
        let wrong = AnyTensor::from(Tensor::<Inner, 4>::zeros([1, 3, 9, 8], &device));
        let flat = AnyTensor::from(Tensor::<Inner, 2>::zeros([1, 192], &device));
        let extra = OnnxArgs::new().ints("mask", vec![1, 2], &[1, 2]).unwrap();
        for (what, r) in [
            ("a [1, 3, 9, 8] input", m.forward(wrong, &OnnxArgs::new())),
            ("a [1, 192] input", m.forward(flat, &OnnxArgs::new())),
            ("an argument the graph lacks", m.forward(input(1), &extra)),
        ] {
            match r {
                Err(OnnxError::Input { .. }) => {
                    println!("onnx_fuzz: ok   export {k}: {what} is OnnxError::Input")
                }
                other => {
                    failures += 1;
                    println!(
                        "onnx_fuzz: FAIL export {k}: {what}: {:?}",
                        other.map(|_| ())
                    );
                }
            }
        }
    }

    let mut rng = StdRng::seed_from_u64(seed);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let t = std::time::Instant::now();
    let mut rss_warm = 0.0;
    for i in 0..count {
        if i == count / 10 {
            rss_warm = resident_mb();
        }
        let base = &bases[rng.random_range(0..bases.len())];
        let bytes = if rng.random_bool(0.3) {
            let mut b = base.clone();
            mutate_bytes(&mut b, &mut rng);
            b
        } else {
            let mut model = onnx_ir::ModelProto::parse_from_bytes(base).unwrap();
            for _ in 0..rng.random_range(1..4) {
                mutate_structure(&mut model, &mut rng);
            }
            model.write_to_bytes().unwrap()
        };
        let outcome = match OnnxModel::<Inner>::from_bytes(&bytes, &device) {
            Err(e) => format!("load: {}", variant(&e)),
            Ok(m) => match m.forward(input(2), &OnnxArgs::new()) {
                Err(e) => format!("forward: {}", variant(&e)),
                Ok(_) if i % 50 == 0 => {
                    let am = OnnxModel::<Backend>::from_bytes(&bytes, &device).unwrap();
                    let layer = am
                        .layers()
                        .first()
                        .map(|l| l.name.clone())
                        .unwrap_or_default();
                    let x = AnyTensor::from(Tensor::<Backend, 4>::from_data(
                        TensorData::new(x.repeat(2), [2, 3, 8, 8]),
                        &device,
                    ));
                    match InternalInfluence::new(&am, layer.as_str())
                        .and_then(|ii| ii.attribute(x).target(0).n_steps(4).run())
                    {
                        Ok(_) => "attribution: ok".into(),
                        Err(e) => format!(
                            "attribution: {}",
                            format!("{e:?}")
                                .split(['{', '('])
                                .next()
                                .unwrap_or("")
                                .trim()
                        ),
                    }
                }
                Ok(_) => "forward: ok".into(),
            },
        };
        *outcomes.entry(outcome).or_default() += 1;
    }
    let elapsed = t.elapsed().as_secs_f64();
    let rss_end = resident_mb();
    for (k, v) in &outcomes {
        println!("onnx_fuzz: {v:>6} {k}");
    }
    let panics = PANICS.load(Ordering::Relaxed);
    println!(
        "onnx_fuzz: {count} mutants (seed {seed}) in {elapsed:.1} s; panics: {panics}; resident memory {rss_warm:.1} MB after {} mutants, {rss_end:.1} MB at the end",
        count / 10
    );
    if panics > 0 {
        println!("onnx_fuzz: FAIL: {panics} panics");
        failures += 1;
    }
    // Flat: the allocator may keep a few MB of freed memory; a leak per mutant would show as
    // tens of MB over 9,000 of them.
    if rss_end - rss_warm > 24.0 {
        println!(
            "onnx_fuzz: FAIL: resident memory grew by {:.1} MB",
            rss_end - rss_warm
        );
        failures += 1;
    }
    if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn variant(e: &OnnxError) -> String {
    format!("{e:?}")
        .split(['{', '('])
        .next()
        .unwrap_or("")
        .trim()
        .to_owned()
}
