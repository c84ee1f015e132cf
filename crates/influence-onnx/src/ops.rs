//! The operator table: which ONNX operators this crate evaluates, and their attributes read
//! (with each operator set's defaults) into an [`Op`].
//!
//! A node whose operator is not in the table, or whose attributes ask for something the
//! evaluator does not do (a training-mode BatchNorm, a non-constant pad mode), is refused when
//! the model loads, naming the node ([`OnnxError::UnsupportedOp`], [`OnnxError::BadNode`]).
//! `docs/onnx.md` has the same table for readers.

use crate::error::OnnxError;
use crate::host::{HostTensor, Kind};
use crate::proto::{Attr, NodeDef, elem};

/// Element-wise operators of one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Unary {
    Relu,
    Sigmoid,
    Tanh,
    Exp,
    Log,
    Sqrt,
    Neg,
    Abs,
    Erf,
    Reciprocal,
    Floor,
    Ceil,
    Sin,
    Cos,
    Sign,
    Softplus,
    HardSwish,
    IsNaN,
    IsInf,
    Not,
    /// `Identity`, and `Dropout` (inference: the identity).
    Identity,
}

/// Element-wise operators of two inputs, broadcast as NumPy does.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Mod,
    Equal,
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    And,
    Or,
    Xor,
}

/// Reductions over axes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reduce {
    Mean,
    Sum,
    Max,
    Min,
    Prod,
    /// √(Σ x²).
    L2,
    /// Σ |x|.
    L1,
    /// Σ x².
    SumSquare,
}

/// The spatial settings of a convolution or pooling, as ONNX gives them (`pads` is
/// `[begin..., end...]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    /// `NOTSET`, `SAME_UPPER`, `SAME_LOWER` or `VALID`.
    pub auto_pad: String,
    pub ceil_mode: bool,
}

/// One node's operator with its attributes read.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Unary(Unary),
    LeakyRelu {
        alpha: f32,
    },
    Elu {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    Gelu {
        tanh: bool,
    },
    /// `Clip` with its bounds (opset < 11: attributes; later: inputs 1 and 2).
    Clip {
        min: Option<f32>,
        max: Option<f32>,
    },
    Binary(Binary),
    Where,
    Cast {
        to: Kind,
    },
    CastLike,
    MatMul,
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    Conv {
        window: Window,
        group: usize,
    },
    MaxPool {
        window: Window,
    },
    AveragePool {
        window: Window,
        count_include_pad: bool,
    },
    GlobalAveragePool,
    GlobalMaxPool,
    BatchNorm {
        epsilon: f32,
    },
    LayerNorm {
        axis: i64,
        epsilon: f32,
    },
    /// `Softmax`/`LogSoftmax`; `legacy`: opset < 13, where the input is seen as 2-D at `axis`.
    Softmax {
        axis: i64,
        log: bool,
        legacy: bool,
    },
    Reduce {
        kind: Reduce,
        axes: Option<Vec<i64>>,
        keepdims: bool,
        noop_with_empty_axes: bool,
    },
    Reshape {
        allowzero: bool,
    },
    Flatten {
        axis: i64,
    },
    Transpose {
        perm: Option<Vec<usize>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    Split {
        axis: i64,
        split: Option<Vec<usize>>,
        num_outputs: Option<usize>,
    },
    /// `Slice` (opset < 10: attributes; later: inputs).
    Slice {
        starts: Option<Vec<i64>>,
        ends: Option<Vec<i64>>,
        axes: Option<Vec<i64>>,
    },
    Gather {
        axis: i64,
    },
    GatherElements {
        axis: i64,
    },
    GatherND {
        batch_dims: usize,
    },
    Expand,
    Tile,
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Size,
    ConstantOfShape {
        value: HostTensor,
    },
    Range,
    Constant {
        value: HostTensor,
    },
    /// `Pad`, constant mode (opset < 11: attributes).
    Pad {
        pads: Option<Vec<i64>>,
        value: f32,
    },
}

/// The operators of the default domain this crate evaluates, in the order of docs/onnx.md.
pub const SUPPORTED: &[&str] = &[
    "Abs",
    "Add",
    "And",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "CastLike",
    "Ceil",
    "Clip",
    "Concat",
    "Constant",
    "ConstantOfShape",
    "Conv",
    "Cos",
    "Div",
    "Dropout",
    "Elu",
    "Equal",
    "Erf",
    "Exp",
    "Expand",
    "Flatten",
    "Floor",
    "Gather",
    "GatherElements",
    "GatherND",
    "Gelu",
    "Gemm",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "Greater",
    "GreaterOrEqual",
    "HardSigmoid",
    "HardSwish",
    "Identity",
    "IsInf",
    "IsNaN",
    "LayerNormalization",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "LogSoftmax",
    "MatMul",
    "Max",
    "MaxPool",
    "Min",
    "Mod",
    "Mul",
    "Neg",
    "Not",
    "Or",
    "Pad",
    "Pow",
    "Range",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Size",
    "Slice",
    "Softmax",
    "Softplus",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tanh",
    "Tile",
    "Transpose",
    "Unsqueeze",
    "Where",
    "Xor",
];

/// A node's attributes, looked up by name.
struct Attrs<'a> {
    node: &'a NodeDef,
}

impl<'a> Attrs<'a> {
    fn get(&self, name: &str) -> Option<&'a Attr> {
        self.node
            .attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| a)
    }

    fn bad(&self, message: String) -> OnnxError {
        OnnxError::BadNode {
            node: self.node.name.clone(),
            op: self.node.op_type.clone(),
            message,
        }
    }

    fn int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        match self.get(name) {
            None => Ok(default),
            Some(Attr::Int(i)) => Ok(*i),
            Some(other) => Err(self.bad(format!("attribute {name} is {other:?}, not an int"))),
        }
    }

    fn float(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        match self.get(name) {
            None => Ok(default),
            Some(Attr::Float(f)) => Ok(*f),
            Some(Attr::Int(i)) => Ok(*i as f32),
            Some(other) => Err(self.bad(format!("attribute {name} is {other:?}, not a float"))),
        }
    }

    fn string(&self, name: &str, default: &str) -> Result<String, OnnxError> {
        match self.get(name) {
            None => Ok(default.to_owned()),
            Some(Attr::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.bad(format!("attribute {name} is {other:?}, not a string"))),
        }
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        match self.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(Attr::Int(i)) => Ok(Some(vec![*i])),
            Some(other) => Err(self.bad(format!("attribute {name} is {other:?}, not ints"))),
        }
    }

    fn usizes(&self, name: &str) -> Result<Option<Vec<usize>>, OnnxError> {
        self.ints(name)?
            .map(|v| {
                v.into_iter()
                    .map(|i| {
                        usize::try_from(i)
                            .map_err(|_| self.bad(format!("attribute {name} has {i} < 0")))
                    })
                    .collect()
            })
            .transpose()
    }

    fn positive(&self, name: &str) -> Result<Option<Vec<usize>>, OnnxError> {
        let v = self.usizes(name)?;
        if let Some(v) = &v
            && v.contains(&0)
        {
            return Err(self.bad(format!("attribute {name} has a 0")));
        }
        Ok(v)
    }

    fn window(&self, pool: bool) -> Result<Window, OnnxError> {
        let kernel = self.positive("kernel_shape")?;
        if pool && kernel.is_none() {
            return Err(self.bad("kernel_shape is required".into()));
        }
        let kernel = kernel.unwrap_or_default();
        let auto_pad = self.string("auto_pad", "NOTSET")?;
        if !matches!(
            auto_pad.as_str(),
            "NOTSET" | "SAME_UPPER" | "SAME_LOWER" | "VALID"
        ) {
            return Err(self.bad(format!("auto_pad {auto_pad:?}")));
        }
        let w = Window {
            strides: self.positive("strides")?.unwrap_or_default(),
            pads: self.usizes("pads")?.unwrap_or_default(),
            dilations: self.positive("dilations")?.unwrap_or_default(),
            auto_pad,
            ceil_mode: self.int("ceil_mode", 0)? != 0,
            kernel,
        };
        let n = w.kernel.len();
        if n > 0
            && ((!w.strides.is_empty() && w.strides.len() != n)
                || (!w.dilations.is_empty() && w.dilations.len() != n)
                || (!w.pads.is_empty() && w.pads.len() != 2 * n))
        {
            return Err(self.bad(format!(
                "kernel {:?}, strides {:?}, dilations {:?} and pads {:?} do not agree",
                w.kernel, w.strides, w.dilations, w.pads
            )));
        }
        Ok(w)
    }
}

/// Reads a node's operator.
///
/// # Errors
/// [`OnnxError::UnsupportedOp`] for an operator outside [`SUPPORTED`] (or in another domain);
/// [`OnnxError::BadNode`] for attributes of the wrong kind or asking for what is not supported.
pub fn parse(node: &NodeDef, opset: i64) -> Result<Op, OnnxError> {
    let unsupported = || OnnxError::UnsupportedOp {
        node: node.name.clone(),
        op: if node.domain.is_empty() {
            node.op_type.clone()
        } else {
            format!("{}::{}", node.domain, node.op_type)
        },
    };
    if !(node.domain.is_empty() || node.domain == "ai.onnx") {
        return Err(unsupported());
    }
    let a = Attrs { node };
    let op = match node.op_type.as_str() {
        "Relu" => Op::Unary(Unary::Relu),
        "Sigmoid" => Op::Unary(Unary::Sigmoid),
        "Tanh" => Op::Unary(Unary::Tanh),
        "Exp" => Op::Unary(Unary::Exp),
        "Log" => Op::Unary(Unary::Log),
        "Sqrt" => Op::Unary(Unary::Sqrt),
        "Neg" => Op::Unary(Unary::Neg),
        "Abs" => Op::Unary(Unary::Abs),
        "Erf" => Op::Unary(Unary::Erf),
        "Reciprocal" => Op::Unary(Unary::Reciprocal),
        "Floor" => Op::Unary(Unary::Floor),
        "Ceil" => Op::Unary(Unary::Ceil),
        "Sin" => Op::Unary(Unary::Sin),
        "Cos" => Op::Unary(Unary::Cos),
        "Sign" => Op::Unary(Unary::Sign),
        "Softplus" => Op::Unary(Unary::Softplus),
        "HardSwish" => Op::Unary(Unary::HardSwish),
        "IsNaN" => Op::Unary(Unary::IsNaN),
        "IsInf" => {
            if a.int("detect_negative", 1)? == 0 || a.int("detect_positive", 1)? == 0 {
                return Err(a.bad("one-sided IsInf is not supported".into()));
            }
            Op::Unary(Unary::IsInf)
        }
        "Not" => Op::Unary(Unary::Not),
        "Identity" => Op::Unary(Unary::Identity),
        "Dropout" => {
            // Inference: the identity. Its optional mask output is refused below.
            if node.outputs.len() > 1 && node.outputs[1..].iter().any(|o| !o.is_empty()) {
                return Err(a.bad("Dropout's mask output is not supported".into()));
            }
            Op::Unary(Unary::Identity)
        }
        "LeakyRelu" => Op::LeakyRelu {
            alpha: a.float("alpha", 0.01)?,
        },
        "Elu" => Op::Elu {
            alpha: a.float("alpha", 1.0)?,
        },
        "HardSigmoid" => Op::HardSigmoid {
            alpha: a.float("alpha", 0.2)?,
            beta: a.float("beta", 0.5)?,
        },
        "Gelu" => Op::Gelu {
            tanh: match a.string("approximate", "none")?.as_str() {
                "none" => false,
                "tanh" => true,
                other => return Err(a.bad(format!("approximate {other:?}"))),
            },
        },
        "Clip" => {
            if opset < 11 {
                Op::Clip {
                    min: Some(a.float("min", f32::MIN)?),
                    max: Some(a.float("max", f32::MAX)?),
                }
            } else {
                Op::Clip {
                    min: None,
                    max: None,
                }
            }
        }
        "Add" => Op::Binary(Binary::Add),
        "Sub" => Op::Binary(Binary::Sub),
        "Mul" => Op::Binary(Binary::Mul),
        "Div" => Op::Binary(Binary::Div),
        "Pow" => Op::Binary(Binary::Pow),
        "Max" | "Min" => {
            if node.inputs.len() != 2 {
                return Err(a.bad(format!(
                    "{} of {} inputs (only 2 are supported)",
                    node.op_type,
                    node.inputs.len()
                )));
            }
            Op::Binary(if node.op_type == "Max" {
                Binary::Max
            } else {
                Binary::Min
            })
        }
        "Mod" => {
            if a.int("fmod", 0)? != 0 {
                return Err(a.bad("fmod=1 is not supported".into()));
            }
            Op::Binary(Binary::Mod)
        }
        "Equal" => Op::Binary(Binary::Equal),
        "Greater" => Op::Binary(Binary::Greater),
        "GreaterOrEqual" => Op::Binary(Binary::GreaterOrEqual),
        "Less" => Op::Binary(Binary::Less),
        "LessOrEqual" => Op::Binary(Binary::LessOrEqual),
        "And" => Op::Binary(Binary::And),
        "Or" => Op::Binary(Binary::Or),
        "Xor" => Op::Binary(Binary::Xor),
        "Where" => Op::Where,
        "Cast" => {
            let to = a.int("to", 0)? as i32;
            Op::Cast {
                to: if elem::is_float(to) {
                    Kind::Float
                } else if elem::is_int(to) {
                    Kind::Int
                } else if to == elem::BOOL {
                    Kind::Bool
                } else {
                    return Err(a.bad(format!("cast to {}", elem::name(to))));
                },
            }
        }
        "CastLike" => Op::CastLike,
        "MatMul" => Op::MatMul,
        "Gemm" => Op::Gemm {
            alpha: a.float("alpha", 1.0)?,
            beta: a.float("beta", 1.0)?,
            trans_a: a.int("transA", 0)? != 0,
            trans_b: a.int("transB", 0)? != 0,
        },
        "Conv" => {
            let group = a.int("group", 1)?;
            if group < 1 {
                return Err(a.bad(format!("group {group}")));
            }
            Op::Conv {
                window: a.window(false)?,
                group: group as usize,
            }
        }
        "MaxPool" => {
            if node.outputs.len() > 1 && node.outputs[1..].iter().any(|o| !o.is_empty()) {
                return Err(a.bad("MaxPool's indices output is not supported".into()));
            }
            if a.int("storage_order", 0)? != 0 {
                return Err(a.bad("storage_order=1 is not supported".into()));
            }
            Op::MaxPool {
                window: a.window(true)?,
            }
        }
        "AveragePool" => Op::AveragePool {
            window: a.window(true)?,
            count_include_pad: a.int("count_include_pad", 0)? != 0,
        },
        "GlobalAveragePool" => Op::GlobalAveragePool,
        "GlobalMaxPool" => Op::GlobalMaxPool,
        "BatchNormalization" => {
            if a.int("training_mode", 0)? != 0 || node.outputs.len() > 1 {
                return Err(a.bad(
                    "a training-mode BatchNormalization: export the model after model.eval()"
                        .into(),
                ));
            }
            Op::BatchNorm {
                epsilon: a.float("epsilon", 1e-5)?,
            }
        }
        "LayerNormalization" => {
            if node.outputs.len() > 1 && node.outputs[1..].iter().any(|o| !o.is_empty()) {
                return Err(
                    a.bad("LayerNormalization's mean/inv-std outputs are not supported".into())
                );
            }
            Op::LayerNorm {
                axis: a.int("axis", -1)?,
                epsilon: a.float("epsilon", 1e-5)?,
            }
        }
        "Softmax" | "LogSoftmax" => Op::Softmax {
            axis: a.int("axis", if opset < 13 { 1 } else { -1 })?,
            log: node.op_type == "LogSoftmax",
            legacy: opset < 13,
        },
        op @ ("ReduceMean" | "ReduceSum" | "ReduceMax" | "ReduceMin" | "ReduceProd"
        | "ReduceL2" | "ReduceL1" | "ReduceSumSquare") => {
            let kind = match op {
                "ReduceMean" => Reduce::Mean,
                "ReduceSum" => Reduce::Sum,
                "ReduceMax" => Reduce::Max,
                "ReduceMin" => Reduce::Min,
                "ReduceL2" => Reduce::L2,
                "ReduceL1" => Reduce::L1,
                "ReduceSumSquare" => Reduce::SumSquare,
                _ => Reduce::Prod,
            };
            // Axes became an input in opset 13 (ReduceSum) and 18 (the others).
            let axes_input = if kind == Reduce::Sum {
                opset >= 13
            } else {
                opset >= 18
            };
            Op::Reduce {
                kind,
                axes: if axes_input { None } else { a.ints("axes")? },
                keepdims: a.int("keepdims", 1)? != 0,
                noop_with_empty_axes: a.int("noop_with_empty_axes", 0)? != 0,
            }
        }
        "Reshape" => Op::Reshape {
            allowzero: a.int("allowzero", 0)? != 0,
        },
        "Flatten" => Op::Flatten {
            axis: a.int("axis", 1)?,
        },
        "Transpose" => Op::Transpose {
            perm: a.usizes("perm")?,
        },
        "Squeeze" => Op::Squeeze {
            axes: if opset < 13 { a.ints("axes")? } else { None },
        },
        "Unsqueeze" => {
            let axes = if opset < 13 { a.ints("axes")? } else { None };
            if opset < 13 && axes.is_none() {
                return Err(a.bad("Unsqueeze without axes".into()));
            }
            Op::Unsqueeze { axes }
        }
        "Concat" => Op::Concat {
            axis: a.int("axis", i64::MIN).and_then(|x| {
                if x == i64::MIN {
                    Err(a.bad("Concat without axis".into()))
                } else {
                    Ok(x)
                }
            })?,
        },
        "Split" => Op::Split {
            axis: a.int("axis", 0)?,
            split: if opset < 13 { a.usizes("split")? } else { None },
            num_outputs: a
                .int("num_outputs", 0)
                .map(|n| (n > 0).then_some(n as usize))?,
        },
        "Slice" => {
            if opset < 10 {
                Op::Slice {
                    starts: Some(a.ints("starts")?.ok_or_else(|| a.bad("no starts".into()))?),
                    ends: Some(a.ints("ends")?.ok_or_else(|| a.bad("no ends".into()))?),
                    axes: a.ints("axes")?,
                }
            } else {
                Op::Slice {
                    starts: None,
                    ends: None,
                    axes: None,
                }
            }
        }
        "Gather" => Op::Gather {
            axis: a.int("axis", 0)?,
        },
        "GatherElements" => Op::GatherElements {
            axis: a.int("axis", 0)?,
        },
        "GatherND" => {
            let b = a.int("batch_dims", 0)?;
            if b < 0 {
                return Err(a.bad(format!("batch_dims {b}")));
            }
            Op::GatherND {
                batch_dims: b as usize,
            }
        }
        "Expand" => Op::Expand,
        "Tile" => Op::Tile,
        "Shape" => Op::Shape {
            start: a.int("start", 0)?,
            end: match a.get("end") {
                None => None,
                Some(_) => Some(a.int("end", 0)?),
            },
        },
        "Size" => Op::Size,
        "ConstantOfShape" => Op::ConstantOfShape {
            value: match a.get("value") {
                None => HostTensor::F32(ndarray::ArrayD::zeros(ndarray::IxDyn(&[]))),
                Some(Attr::Tensor(t)) if t.value.len() == 1 => t.value.clone(),
                Some(other) => return Err(a.bad(format!("value {other:?}"))),
            },
        },
        "Range" => Op::Range,
        "Constant" => {
            let value = if let Some(Attr::Tensor(t)) = a.get("value") {
                t.value.clone()
            } else if let Some(Attr::Float(f)) = a.get("value_float") {
                HostTensor::F32(ndarray::ArrayD::from_elem(ndarray::IxDyn(&[]), *f))
            } else if let Some(Attr::Int(i)) = a.get("value_int") {
                HostTensor::scalar_i64(*i)
            } else if let Some(Attr::Floats(v)) = a.get("value_floats") {
                HostTensor::F32(
                    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[v.len()]), v.clone())
                        .map_err(|e| a.bad(e.to_string()))?,
                )
            } else if let Some(Attr::Ints(v)) = a.get("value_ints") {
                HostTensor::vec_i64(v.clone())
            } else {
                return Err(a.bad("a Constant without a supported value".into()));
            };
            Op::Constant { value }
        }
        "Pad" => {
            let mode = a.string("mode", "constant")?;
            if mode != "constant" {
                return Err(a.bad(format!("pad mode {mode:?} (only \"constant\")")));
            }
            if opset < 11 {
                Op::Pad {
                    pads: Some(a.ints("pads")?.ok_or_else(|| a.bad("no pads".into()))?),
                    value: a.float("value", 0.0)?,
                }
            } else {
                Op::Pad {
                    pads: None,
                    value: 0.0,
                }
            }
        }
        _ => return Err(unsupported()),
    };
    Ok(op)
}
