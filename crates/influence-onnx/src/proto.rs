//! Reading an `.onnx` file: the protobuf messages (onnx-ir's generated `ModelProto`) decoded
//! into this crate's plain definitions, with every tensor's data (inline or external) checked
//! and converted once.
//!
//! Nothing here panics on a malformed file: every fault is an [`OnnxError`].

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use ndarray::{ArrayD, IxDyn};
use protobuf::Message;

use crate::error::OnnxError;
use crate::host::HostTensor;

/// Most elements one tensor of the file, or one computed shape, may have (2^31, 8 GiB of
/// float32): a mutated file that claims more is refused rather than allocated.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Where the data of tensors stored outside the `.onnx` file (ONNX "external data") comes from.
#[derive(Debug, Clone, Default)]
pub enum ExternalData {
    /// None: a tensor that refers to external data is an error.
    #[default]
    None,
    /// Files beside the model: each tensor's `location` is read relative to this folder.
    Dir(PathBuf),
    /// The bytes of the data files, by their `location` as the model names them
    /// (`model.onnx.data`). A single unnamed entry (`""`) serves every location.
    Bytes(HashMap<String, Bytes>),
}

/// One dim of a declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named, dynamic size (`batch`, `s0`).
    Symbolic(String),
    /// Neither.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbolic(s) => write!(f, "{s}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// A value's declared type: element type (ONNX's `TensorProto.DataType` number) and shape.
#[derive(Debug, Clone)]
pub struct ValueDecl {
    pub name: String,
    pub elem: i32,
    pub dims: Option<Vec<Dim>>,
}

/// A node attribute.
#[derive(Debug, Clone)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(TensorDef),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
    /// A subgraph or another kind this crate does not read (an operator reading it refuses
    /// it as not an int, float, ...).
    Other,
}

/// A node as the file gives it.
#[derive(Debug, Clone)]
pub struct NodeDef {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: Vec<(String, Attr)>,
    pub metadata: Vec<(String, String)>,
}

/// A tensor of the file (initializer or constant), its data decoded.
#[derive(Debug, Clone)]
pub struct TensorDef {
    pub name: String,
    pub value: HostTensor,
}

/// The graph as the file gives it.
#[derive(Debug, Clone, Default)]
pub struct GraphDef {
    pub nodes: Vec<NodeDef>,
    pub initializers: Vec<TensorDef>,
    pub inputs: Vec<ValueDecl>,
    pub outputs: Vec<ValueDecl>,
    pub value_info: Vec<ValueDecl>,
}

/// The model as the file gives it.
#[derive(Debug, Clone)]
pub struct ModelDef {
    /// The version of the default (`ai.onnx`) operator set.
    pub opset: i64,
    /// The program that wrote the file (`pytorch`) and its version.
    pub producer: String,
    pub graph: GraphDef,
}

/// A file's bytes, read whole. (Not memory-mapped: a model file truncated while it loads
/// would then end the process with SIGBUS instead of an [`OnnxError`]; the bytes are dropped
/// once the weights are decoded, so no second copy of them is kept.)
pub fn read_file(path: &Path) -> std::io::Result<Bytes> {
    std::fs::read(path).map(Bytes::from)
}

/// Decodes a model from the bytes of an `.onnx` file.
///
/// # Errors
/// [`OnnxError::Parse`] when the bytes are not an ONNX model; [`OnnxError::BadTensor`] for a
/// tensor whose data is missing, of the wrong length or of an unsupported type;
/// [`OnnxError::ExternalData`] when external data cannot be read.
pub fn decode(bytes: Bytes, external: &ExternalData) -> Result<ModelDef, OnnxError> {
    let model = onnx_ir::ModelProto::parse_from_tokio_bytes(&bytes)
        .map_err(|e| OnnxError::Parse(e.to_string()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Parse("the model imports no default operator set".into()))?;
    if !(1..=30).contains(&opset) {
        return Err(OnnxError::Parse(format!(
            "operator set version {opset} is not an ONNX release"
        )));
    }
    let Some(graph) = model.graph.as_ref() else {
        return Err(OnnxError::Parse("the model has no graph".into()));
    };
    let mut files = FileCache::new(external);
    let initializers = graph
        .initializer
        .iter()
        .map(|t| tensor(t, &mut files))
        .collect::<Result<Vec<_>, _>>()?;
    let mut nodes = Vec::with_capacity(graph.node.len());
    for (index, node) in graph.node.iter().enumerate() {
        let mut attrs = Vec::with_capacity(node.attribute.len());
        for a in &node.attribute {
            let value = match a.type_.value() {
                1 => Attr::Float(a.f),
                2 => Attr::Int(a.i),
                3 => Attr::String(utf8(&a.s, &node.name)?),
                4 => Attr::Tensor(tensor(&a.t, &mut files)?),
                6 => Attr::Floats(a.floats.clone()),
                7 => Attr::Ints(a.ints.clone()),
                _ => Attr::Other,
            };
            attrs.push((a.name.clone(), value));
        }
        let name = if node.name.is_empty() {
            format!("{}_{index}", node.op_type)
        } else {
            node.name.clone()
        };
        nodes.push(NodeDef {
            name,
            op_type: node.op_type.clone(),
            domain: node.domain.clone(),
            inputs: node.input.clone(),
            outputs: node.output.clone(),
            attrs,
            metadata: node
                .metadata_props
                .iter()
                .map(|p| (p.key.clone(), p.value.clone()))
                .collect(),
        });
    }
    let decl = |v: &onnx_ir::ValueInfoProto| {
        let (elem, dims) = if v.type_.has_tensor_type() {
            let t = v.type_.tensor_type();
            let dims = t.shape.as_ref().map(|s| {
                s.dim
                    .iter()
                    .map(|d| {
                        if d.has_dim_value() && d.dim_value() >= 0 {
                            Dim::Fixed(d.dim_value() as usize)
                        } else if !d.dim_param().is_empty() {
                            Dim::Symbolic(d.dim_param().to_owned())
                        } else {
                            Dim::Unknown
                        }
                    })
                    .collect()
            });
            (t.elem_type, dims)
        } else {
            (0, None)
        };
        ValueDecl {
            name: v.name.clone(),
            elem,
            dims,
        }
    };
    Ok(ModelDef {
        opset,
        producer: format!("{} {}", model.producer_name, model.producer_version)
            .trim()
            .to_owned(),
        graph: GraphDef {
            nodes,
            initializers,
            inputs: graph.input.iter().map(decl).collect(),
            outputs: graph.output.iter().map(decl).collect(),
            value_info: graph.value_info.iter().map(decl).collect(),
        },
    })
}

fn utf8(bytes: &Bytes, node: &str) -> Result<String, OnnxError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| OnnxError::BadNode {
        node: node.to_owned(),
        op: String::new(),
        message: "an attribute string is not UTF-8".into(),
    })
}

/// The external data files a model reads, each read once.
struct FileCache<'a> {
    source: &'a ExternalData,
    files: HashMap<String, Bytes>,
}

impl<'a> FileCache<'a> {
    fn new(source: &'a ExternalData) -> Self {
        Self {
            source,
            files: HashMap::new(),
        }
    }

    fn file(&mut self, location: &str, tensor: &str) -> Result<Bytes, OnnxError> {
        let err = |message: String| OnnxError::ExternalData {
            tensor: tensor.to_owned(),
            location: location.to_owned(),
            message,
        };
        if let Some(b) = self.files.get(location) {
            return Ok(b.clone());
        }
        let bytes = match self.source {
            ExternalData::None => {
                return Err(err(
                    "the model keeps this tensor's data in another file; load it from its path \
                     (OnnxModel::from_file) or give the data file's bytes \
                     (OnnxModel::from_bytes_with_data)"
                        .into(),
                ));
            }
            ExternalData::Bytes(map) => match map.get(location).or_else(|| map.get("")) {
                Some(b) => b.clone(),
                None => {
                    return Err(err(format!(
                        "no data file of that name was given (given: {:?})",
                        map.keys().collect::<Vec<_>>()
                    )));
                }
            },
            ExternalData::Dir(dir) => {
                // ONNX: a location is a path relative to the model's folder; one that leaves
                // it (absolute, `..`) is refused.
                let rel = Path::new(location);
                if location.is_empty()
                    || rel
                        .components()
                        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
                {
                    return Err(err(
                        "the location is not a relative path inside the model's folder".into(),
                    ));
                }
                let path = dir.join(rel);
                Bytes::from(
                    std::fs::read(&path).map_err(|e| err(format!("{}: {e}", path.display())))?,
                )
            }
        };
        self.files.insert(location.to_owned(), bytes.clone());
        Ok(bytes)
    }
}

/// ONNX's element type numbers.
pub mod elem {
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const BFLOAT16: i32 = 16;

    /// The type's name, as ONNX spells it.
    pub fn name(t: i32) -> &'static str {
        match t {
            FLOAT => "float",
            UINT8 => "uint8",
            INT8 => "int8",
            UINT16 => "uint16",
            INT16 => "int16",
            INT32 => "int32",
            INT64 => "int64",
            8 => "string",
            BOOL => "bool",
            FLOAT16 => "float16",
            DOUBLE => "double",
            UINT32 => "uint32",
            UINT64 => "uint64",
            BFLOAT16 => "bfloat16",
            _ => "unknown",
        }
    }

    /// Whether the type is read as float32 here.
    pub fn is_float(t: i32) -> bool {
        matches!(t, FLOAT | FLOAT16 | DOUBLE | BFLOAT16)
    }

    /// Whether the type is read as int64 here.
    pub fn is_int(t: i32) -> bool {
        matches!(
            t,
            UINT8 | INT8 | UINT16 | INT16 | INT32 | INT64 | UINT32 | UINT64
        )
    }
}

/// Most elements a tensor the graph computes may have (2^28, 1 GiB of float32): a shape read
/// from a mutated file (a `Reshape`, `Expand` or `ConstantOfShape` target) that asks for more
/// is an error, not an allocation that would end the process.
pub const MAX_COMPUTED_ELEMENTS: usize = 1 << 28;

/// Element count of `dims`, refused past [`MAX_ELEMENTS`].
pub fn checked_count(dims: &[usize]) -> Option<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
}

/// Element count of a computed shape, refused past [`MAX_COMPUTED_ELEMENTS`].
pub fn computed_count(dims: &[usize]) -> Option<usize> {
    checked_count(dims).filter(|&n| n <= MAX_COMPUTED_ELEMENTS)
}

fn tensor(t: &onnx_ir::TensorProto, files: &mut FileCache<'_>) -> Result<TensorDef, OnnxError> {
    let name = t.name.clone();
    let bad = |message: String| OnnxError::BadTensor {
        name: name.clone(),
        message,
    };
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("negative dim {d}"))))
        .collect::<Result<_, _>>()?;
    let count =
        checked_count(&dims).ok_or_else(|| bad(format!("{dims:?} has too many elements")))?;
    // data_location 1 = EXTERNAL.
    let raw: Bytes = if t.data_location.value() == 1 {
        let mut location = None;
        let mut offset = 0usize;
        let mut length = None;
        for e in &t.external_data {
            match e.key.as_str() {
                "location" => location = Some(e.value.clone()),
                "offset" => {
                    offset = e
                        .value
                        .parse()
                        .map_err(|_| bad(format!("external data offset {:?}", e.value)))?
                }
                "length" => {
                    length = Some(
                        e.value
                            .parse::<usize>()
                            .map_err(|_| bad(format!("external data length {:?}", e.value)))?,
                    )
                }
                _ => {}
            }
        }
        let location = location.ok_or_else(|| bad("external data without a location".into()))?;
        let file = files.file(&location, &name)?;
        let end = match length {
            Some(l) => offset.checked_add(l),
            None => Some(file.len()),
        };
        match end {
            Some(end) if offset <= end && end <= file.len() => file.slice(offset..end),
            _ => {
                return Err(OnnxError::ExternalData {
                    tensor: name.clone(),
                    location,
                    message: format!(
                        "bytes {offset}..{} lie outside the file ({} bytes)",
                        end.map_or("overflow".to_string(), |e| e.to_string()),
                        file.len()
                    ),
                });
            }
        }
    } else {
        t.raw_data.clone()
    };
    let len_err = |have: usize, width: usize| {
        bad(format!(
            "holds {have} values, its shape {dims:?} needs {count} ({} bytes of raw data)",
            count.saturating_mul(width)
        ))
    };
    let shape = IxDyn(&dims);
    let value = match t.data_type {
        elem::FLOAT | elem::DOUBLE | elem::FLOAT16 | elem::BFLOAT16 => {
            let v: Vec<f32> = if !raw.is_empty() {
                let width = match t.data_type {
                    elem::FLOAT => 4,
                    elem::DOUBLE => 8,
                    _ => 2,
                };
                if raw.len() != count * width {
                    return Err(len_err(raw.len() / width, width));
                }
                match t.data_type {
                    elem::FLOAT => raw
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect(),
                    elem::DOUBLE => raw
                        .chunks_exact(8)
                        .map(|c| {
                            f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                                as f32
                        })
                        .collect(),
                    elem::FLOAT16 => raw
                        .chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                    _ => raw
                        .chunks_exact(2)
                        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect(),
                }
            } else {
                match t.data_type {
                    elem::FLOAT => t.float_data.clone(),
                    elem::DOUBLE => t.double_data.iter().map(|&x| x as f32).collect(),
                    // float16 and bfloat16 values are stored as their bits in int32_data.
                    elem::FLOAT16 => t
                        .int32_data
                        .iter()
                        .map(|&b| half::f16::from_bits(b as u16).to_f32())
                        .collect(),
                    _ => t
                        .int32_data
                        .iter()
                        .map(|&b| half::bf16::from_bits(b as u16).to_f32())
                        .collect(),
                }
            };
            if v.len() != count {
                return Err(len_err(v.len(), 4));
            }
            HostTensor::F32(ArrayD::from_shape_vec(shape, v).map_err(|e| bad(e.to_string()))?)
        }
        elem::BOOL => {
            let v: Vec<bool> = if !raw.is_empty() {
                raw.iter().map(|&b| b != 0).collect()
            } else {
                t.int32_data.iter().map(|&b| b != 0).collect()
            };
            if v.len() != count {
                return Err(len_err(v.len(), 1));
            }
            HostTensor::Bool(ArrayD::from_shape_vec(shape, v).map_err(|e| bad(e.to_string()))?)
        }
        ty if elem::is_int(ty) => {
            let v: Vec<i64> = if !raw.is_empty() {
                let width = match ty {
                    elem::UINT8 | elem::INT8 => 1,
                    elem::UINT16 | elem::INT16 => 2,
                    elem::INT32 | elem::UINT32 => 4,
                    _ => 8,
                };
                if raw.len() != count * width {
                    return Err(len_err(raw.len() / width, width));
                }
                raw.chunks_exact(width)
                    .map(|c| match ty {
                        elem::UINT8 => c[0] as i64,
                        elem::INT8 => c[0] as i8 as i64,
                        elem::UINT16 => u16::from_le_bytes([c[0], c[1]]) as i64,
                        elem::INT16 => i16::from_le_bytes([c[0], c[1]]) as i64,
                        elem::INT32 => i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                        elem::UINT32 => u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64,
                        _ => i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                    })
                    .collect()
            } else {
                match ty {
                    elem::INT64 => t.int64_data.clone(),
                    elem::UINT64 | elem::UINT32 => {
                        t.uint64_data.iter().map(|&x| x as i64).collect()
                    }
                    _ => t.int32_data.iter().map(|&x| x as i64).collect(),
                }
            };
            if v.len() != count {
                return Err(len_err(v.len(), 8));
            }
            HostTensor::I64(ArrayD::from_shape_vec(shape, v).map_err(|e| bad(e.to_string()))?)
        }
        other => {
            return Err(bad(format!(
                "element type {} ({other}) is not supported",
                elem::name(other)
            )));
        }
    };
    Ok(TensorDef { name, value })
}
