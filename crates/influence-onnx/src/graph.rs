//! The graph as the evaluator runs it: values numbered, each node's operator read, constants
//! split into device parameters (the weights) and host tensors (shapes, indices, scalars).

use std::collections::HashMap;

use crate::error::OnnxError;
use crate::host::HostTensor;
use crate::ops::{self, Op};
use crate::proto::{Dim, ModelDef, ValueDecl};

/// A value's number.
pub type ValueId = usize;

/// Float constants with at least this many elements are device parameters; smaller ones (and
/// every integer or boolean constant) stay on the host.
pub const PARAM_MIN_ELEMENTS: usize = 16;

/// Where a value comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A graph input.
    Input,
    /// Output of node `n`.
    Node(usize),
    /// Device parameter number `p` (a weight).
    Param(usize),
    /// A host constant.
    Host(HostTensor),
}

/// One value of the graph.
#[derive(Debug, Clone)]
pub struct Value {
    /// Its name in the file.
    pub name: String,
    /// Where it comes from.
    pub source: Source,
    /// Its declared type and shape, when the file declares them.
    pub decl: Option<ValueDecl>,
}

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its name in the file (`node_Conv_292`, `/layer1/layer1.0/conv1/Conv`), or
    /// `<op>_<index>` when the file gives none.
    pub name: String,
    /// Its operator, as the file names it.
    pub op_type: String,
    /// Its operator with the attributes read.
    pub op: Op,
    /// Its inputs; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    /// Its outputs; `None` for an omitted optional output.
    pub outputs: Vec<Option<ValueId>>,
    /// The file's metadata (`namespace`, `pkg.torch.onnx.name_scopes`, ...).
    pub metadata: Vec<(String, String)>,
}

/// The data of one device parameter, uploaded when the model is built and then dropped.
#[derive(Debug, Clone)]
pub struct ParamData {
    /// Its values, row-major (the shape is in [`Graph::param_shapes`]).
    pub values: Vec<f32>,
}

/// A graph ready to run.
#[derive(Debug, Clone)]
pub struct Graph {
    /// The version of the default operator set.
    pub opset: i64,
    /// The program that wrote the file.
    pub producer: String,
    /// Every value.
    pub values: Vec<Value>,
    /// Values by name.
    pub by_name: HashMap<String, ValueId>,
    /// The nodes, in the file's (topological) order.
    pub nodes: Vec<Node>,
    /// The graph's inputs that are not initializers, in order.
    pub inputs: Vec<ValueId>,
    /// The graph's outputs, in order.
    pub outputs: Vec<ValueId>,
    /// The shape of each device parameter.
    pub param_shapes: Vec<Vec<usize>>,
    /// The nodes that use each value.
    pub consumers: Vec<Vec<usize>>,
    /// Names of initializers, with their value (to tell which module a weight belongs to).
    pub initializer_names: HashMap<String, ValueId>,
}

impl Graph {
    /// Builds the graph of a decoded model, returning the parameters' data beside it.
    ///
    /// # Errors
    /// [`OnnxError::UnsupportedOp`] and [`OnnxError::BadNode`] from the operator table;
    /// [`OnnxError::Graph`] for a value used before it is produced, produced twice, or a graph
    /// output never produced.
    pub fn build(model: ModelDef) -> Result<(Self, Vec<ParamData>), OnnxError> {
        let ModelDef {
            opset,
            producer,
            graph,
        } = model;
        let mut g = Graph {
            opset,
            producer,
            values: Vec::new(),
            by_name: HashMap::new(),
            nodes: Vec::with_capacity(graph.nodes.len()),
            inputs: Vec::new(),
            outputs: Vec::new(),
            param_shapes: Vec::new(),
            consumers: Vec::new(),
            initializer_names: HashMap::new(),
        };
        let mut params = Vec::new();
        let decls: HashMap<&str, &ValueDecl> = graph
            .inputs
            .iter()
            .chain(&graph.outputs)
            .chain(&graph.value_info)
            .map(|d| (d.name.as_str(), d))
            .collect();
        let decl_of = |name: &str| decls.get(name).map(|d| (*d).clone());

        let define = |g: &mut Graph, name: &str, source: Source| -> Result<ValueId, OnnxError> {
            if g.by_name.contains_key(name) {
                return Err(OnnxError::Graph(format!("value {name:?} is defined twice")));
            }
            let id = g.values.len();
            g.values.push(Value {
                name: name.to_owned(),
                source,
                decl: decl_of(name),
            });
            g.by_name.insert(name.to_owned(), id);
            Ok(id)
        };

        for init in graph.initializers {
            let source = constant_source(&init.name, init.value, &mut params, &mut g.param_shapes);
            let id = define(&mut g, &init.name, source)?;
            g.initializer_names.insert(init.name, id);
        }
        for input in &graph.inputs {
            // Older exporters also list the initializers as inputs: those keep their values.
            if g.by_name.contains_key(&input.name) {
                continue;
            }
            let id = define(&mut g, &input.name, Source::Input)?;
            g.inputs.push(id);
        }
        for def in graph.nodes {
            let op = ops::parse(&def, opset)?;
            let mut inputs = Vec::with_capacity(def.inputs.len());
            for name in &def.inputs {
                if name.is_empty() {
                    inputs.push(None);
                    continue;
                }
                let id = *g.by_name.get(name).ok_or_else(|| {
                    OnnxError::Graph(format!(
                        "node {:?} uses value {name:?} before any node produces it",
                        def.name
                    ))
                })?;
                inputs.push(Some(id));
            }
            let n = g.nodes.len();
            let mut outputs = Vec::with_capacity(def.outputs.len());
            for name in &def.outputs {
                if name.is_empty() {
                    outputs.push(None);
                    continue;
                }
                let source = match &op {
                    Op::Constant { value } => {
                        constant_source(name, value.clone(), &mut params, &mut g.param_shapes)
                    }
                    // The TorchScript exporter copies shared weights with Identity nodes: the
                    // copy is the same constant.
                    Op::Unary(ops::Unary::Identity) => match inputs.first().copied().flatten() {
                        Some(v) if g.is_constant(v) => g.values[v].source.clone(),
                        _ => Source::Node(n),
                    },
                    _ => Source::Node(n),
                };
                outputs.push(Some(define(&mut g, name, source)?));
            }
            if outputs.iter().all(Option::is_none) {
                return Err(OnnxError::BadNode {
                    node: def.name.clone(),
                    op: def.op_type.clone(),
                    message: "the node has no output".into(),
                });
            }
            check_arity(&def.name, &def.op_type, &op, inputs.len(), outputs.len())?;
            g.nodes.push(Node {
                name: def.name,
                op_type: def.op_type,
                op,
                inputs,
                outputs,
                metadata: def.metadata,
            });
        }
        for out in &graph.outputs {
            let id = *g.by_name.get(&out.name).ok_or_else(|| {
                OnnxError::Graph(format!("graph output {:?} is never produced", out.name))
            })?;
            g.outputs.push(id);
        }
        if g.outputs.is_empty() {
            return Err(OnnxError::Graph("the graph has no output".into()));
        }
        let mut names = HashMap::new();
        for (i, node) in g.nodes.iter().enumerate() {
            if let Some(prev) = names.insert(node.name.clone(), i) {
                // Node names are not required to be unique; later ones get their index.
                let _ = prev;
            }
        }
        g.consumers = vec![Vec::new(); g.values.len()];
        for (i, node) in g.nodes.iter().enumerate() {
            for v in node.inputs.iter().flatten() {
                g.consumers[*v].push(i);
            }
        }
        Ok((g, params))
    }

    /// A value's declared shape as text (`[batch, 3, 224, 224]`), or `?` when undeclared.
    pub fn shape_text(&self, v: ValueId) -> String {
        match self.values[v].decl.as_ref().and_then(|d| d.dims.as_ref()) {
            Some(dims) => format!(
                "[{}]",
                dims.iter()
                    .map(Dim::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None => match &self.values[v].source {
                Source::Param(p) => format!("{:?}", self.param_shapes[*p]),
                Source::Host(h) => format!("{:?}", h.shape()),
                _ => "?".into(),
            },
        }
    }

    /// Which values depend on the values of `sources` (through every operator but `Shape` and
    /// `Size`, whose results depend on shapes only): those an attribution from `sources` can
    /// have a gradient for.
    pub fn depends_on(&self, sources: &[ValueId]) -> Vec<bool> {
        let mut dep = vec![false; self.values.len()];
        for &s in sources {
            dep[s] = true;
        }
        for node in &self.nodes {
            if matches!(node.op, Op::Shape { .. } | Op::Size) {
                continue;
            }
            if node.inputs.iter().flatten().any(|&v| dep[v]) {
                for &v in node.outputs.iter().flatten() {
                    if !self.is_constant(v) {
                        dep[v] = true;
                    }
                }
            }
        }
        dep
    }

    /// Whether a value is a constant (a weight or a host constant).
    pub fn is_constant(&self, v: ValueId) -> bool {
        matches!(self.values[v].source, Source::Param(_) | Source::Host(_))
    }
}

fn constant_source(
    name: &str,
    value: HostTensor,
    params: &mut Vec<ParamData>,
    shapes: &mut Vec<Vec<usize>>,
) -> Source {
    match value {
        HostTensor::F32(a) if a.len() >= PARAM_MIN_ELEMENTS => {
            let shape = a.shape().to_vec();
            // The decoded values move into the parameter without a copy (a file's tensors are
            // in standard layout, alone in their buffer); a view into a larger buffer is cut out.
            let n = a.len();
            let values = if a.is_standard_layout() {
                let (mut v, offset) = a.into_raw_vec_and_offset();
                let start = offset.unwrap_or(0);
                if start != 0 || v.len() != n {
                    v = v[start..start + n].to_vec();
                }
                v
            } else {
                a.iter().copied().collect()
            };
            shapes.push(shape.clone());
            let _ = name;
            params.push(ParamData { values });
            Source::Param(params.len() - 1)
        }
        other => Source::Host(other),
    }
}

/// Checks a node's input and output counts against its operator.
fn check_arity(
    node: &str,
    op_type: &str,
    op: &Op,
    inputs: usize,
    outputs: usize,
) -> Result<(), OnnxError> {
    let (lo, hi) = match op {
        Op::Unary(_)
        | Op::LeakyRelu { .. }
        | Op::Elu { .. }
        | Op::HardSigmoid { .. }
        | Op::Gelu { .. }
        | Op::Cast { .. }
        | Op::Softmax { .. }
        | Op::Flatten { .. }
        | Op::Transpose { .. }
        | Op::GlobalAveragePool
        | Op::GlobalMaxPool
        | Op::MaxPool { .. }
        | Op::AveragePool { .. }
        | Op::Shape { .. }
        | Op::Size
        | Op::ConstantOfShape { .. } => (1, 1),
        Op::Clip { .. } => (1, 3),
        Op::Binary(_) | Op::CastLike | Op::MatMul | Op::Expand | Op::Tile => (2, 2),
        Op::Reshape { .. } => (2, 2),
        Op::Where | Op::Range => (3, 3),
        Op::Gemm { .. } => (2, 3),
        Op::Conv { .. } => (2, 3),
        Op::BatchNorm { .. } => (5, 5),
        Op::LayerNorm { .. } => (2, 3),
        Op::Reduce { .. } | Op::Squeeze { .. } | Op::Unsqueeze { .. } | Op::Split { .. } => (1, 2),
        Op::Concat { .. } => (1, usize::MAX),
        Op::Slice { .. } => (1, 5),
        Op::Gather { .. } | Op::GatherND { .. } | Op::GatherElements { .. } => (2, 2),
        Op::Constant { .. } => (0, 0),
        Op::Pad { .. } => (1, 4),
    };
    let bad = |message: String| OnnxError::BadNode {
        node: node.to_owned(),
        op: op_type.to_owned(),
        message,
    };
    if inputs < lo || inputs > hi {
        return Err(bad(format!(
            "{inputs} inputs (the operator takes {lo} to {})",
            if hi == usize::MAX {
                "any".to_string()
            } else {
                hi.to_string()
            }
        )));
    }
    let max_out = match op {
        Op::Split { .. } => usize::MAX,
        Op::Unary(ops::Unary::Identity) => 2,
        Op::MaxPool { .. } | Op::LayerNorm { .. } => 3,
        _ => 1,
    };
    if outputs > max_out {
        return Err(bad(format!("{outputs} outputs")));
    }
    Ok(())
}
