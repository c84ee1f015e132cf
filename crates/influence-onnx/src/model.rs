//! [`OnnxModel`]: an ONNX graph as a Burn [`Module`] that implements [`LayerProbe`].

use std::path::Path;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::FloatTensor;
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive};
use burn_backend::{Shape, TensorMetadata};
use bytes::Bytes;
use influence_core::{
    AnyTensor, Eval, Expansion, ForwardArgs, LayerProbe, LayerSide, Probe, TensorGroup, TensorMap,
    ToEval,
};
use ndarray::{ArrayD, Axis, IxDyn};

use crate::error::OnnxError;
use crate::eval::{Ctx, Value, eval, upload_f32};
use crate::graph::{Graph, Source, ValueId};
use crate::host::HostTensor;
use crate::modules::{LayerInfo, Layers, Naming};
use crate::proto::{self, Dim, ExternalData, elem};

/// Everything about a model that is not a weight: the graph, its layers, the chosen input
/// and output, and the order the nodes run in.
#[derive(Debug)]
pub struct Plan {
    graph: Graph,
    layers: Layers,
    /// The explained input: a graph input, or a value inside the graph (the graph is then
    /// evaluated from it, as from an input).
    input: Option<ValueId>,
    /// The explained output.
    output: ValueId,
    /// Which nodes run (those the output needs, not through the input).
    needed: Vec<bool>,
    /// The graph inputs the forward needs besides the explained one (additional forward
    /// arguments).
    required: Vec<ValueId>,
    /// The batch the graph was exported with, when fixed.
    export_batch: Option<usize>,
    /// Per value, the last running node that reads it (after which it is dropped).
    last_use: Vec<usize>,
    /// Per value, whether it depends on the explained input's values (a layer's side is
    /// the part of its values that does).
    from_input: Vec<bool>,
}

impl Plan {
    fn new(graph: Graph, layers: Layers, input: Option<ValueId>, output: ValueId) -> Self {
        let n = graph.nodes.len();
        let mut needed = vec![false; n];
        let mut seen = vec![false; graph.values.len()];
        let mut required = Vec::new();
        let mut stack = vec![output];
        while let Some(v) = stack.pop() {
            if std::mem::replace(&mut seen[v], true) || Some(v) == input {
                continue;
            }
            match graph.values[v].source {
                Source::Node(p) if !needed[p] => {
                    needed[p] = true;
                    stack.extend(graph.nodes[p].inputs.iter().flatten().copied());
                }
                Source::Input => required.push(v),
                _ => {}
            }
        }
        required.sort_unstable();
        let mut last_use = vec![0usize; graph.values.len()];
        for (i, node) in graph.nodes.iter().enumerate() {
            if needed[i] {
                for v in node.inputs.iter().flatten() {
                    last_use[*v] = i;
                }
            }
        }
        last_use[output] = usize::MAX;
        let declared_batch = |v: ValueId| match graph.values[v]
            .decl
            .as_ref()
            .and_then(|d| d.dims.as_ref())
            .and_then(|d| d.first())
        {
            Some(Dim::Fixed(b)) => Some(*b),
            _ => None,
        };
        let export_batch = input
            .and_then(declared_batch)
            .or_else(|| graph.inputs.first().copied().and_then(declared_batch));
        let from_input = graph.depends_on(input.as_slice());
        Self {
            graph,
            layers,
            input,
            output,
            needed,
            required,
            export_batch,
            last_use,
            from_input,
        }
    }
}

/// An ONNX model (from PyTorch's `torch.onnx.export`, timm, Hugging Face, ...), evaluated
/// with Burn tensor operations on any backend, whose layers are named as in PyTorch.
///
/// It is a Burn [`Module`] (its weights are its parameters) and implements [`LayerProbe`], so
/// every attribution method of `influence-core` explains it as it explains a hand-written Burn
/// model, on every backend, in inference mode:
///
/// ```ignore
/// use influence_onnx::OnnxModel;
/// let model = OnnxModel::<Backend>::from_file("resnet18.onnx", &device)?;
/// let ii = InternalInfluence::new(&model, "layer3")?;         // Captum: model.layer3
/// let attr = ii.attribute(AnyTensor::from(images)).target(7).run()?;
/// ```
///
/// # Layers
/// A layer is a PyTorch module path (`layer3`, `layer3.0.conv1`, `encoder.layer.2.output`),
/// read from the dynamo exporter's metadata or the TorchScript exporter's node names, or any
/// node or value name of the graph. [`layers`](Self::layers) lists them with their shapes.
/// A module's output side is every value its nodes produce and the rest of the graph uses; its
/// input side (`attribute_to_layer_input`) is every value its nodes take from outside.
///
/// # Inputs
/// - the explained input ([`LayerProbe::Inputs`]): an [`AnyTensor`] of the graph input's shape,
///   `[batch, ...]` (by default the first float input; [`with_input`](Self::with_input) picks
///   another, or a value inside the graph such as a text model's word embeddings);
/// - every other graph input, as [`OnnxArgs`] (Captum's `additional_forward_args`);
/// - output: the graph's first output (or [`with_output`](Self::with_output)'s),
///   `[batch, ...]`.
#[derive(Module, Debug)]
pub struct OnnxModel<B: Backend> {
    /// The weights, each at its rank (a reshape per read would be one more autodiff operation
    /// per weight and forward, which Burn's autodiff graph cleaner then scans).
    params: Vec<Weight<B>>,
    #[module(skip)]
    plan: Arc<Plan>,
}

impl<B: Backend> OnnxModel<B> {
    /// Loads a model from an `.onnx` file. Weights kept in files beside it (ONNX external
    /// data, `model.onnx.data`, as the dynamo exporter writes them) are read from there.
    ///
    /// # Errors
    /// [`OnnxError::Io`] when the file cannot be read; the errors of
    /// [`from_bytes`](Self::from_bytes).
    pub fn from_file(path: impl AsRef<Path>, device: &B::Device) -> Result<Self, OnnxError> {
        let path = path.as_ref();
        let io = |e: std::io::Error| OnnxError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let bytes = crate::proto::read_file(path).map_err(io)?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::load(bytes, &ExternalData::Dir(dir), device)
    }

    /// Loads a model from the bytes of an `.onnx` file that holds its weights.
    ///
    /// # Errors
    /// [`OnnxError::Parse`] for bytes that are not an ONNX model; [`OnnxError::BadTensor`],
    /// [`OnnxError::ExternalData`] for weights that cannot be read (a model with external data
    /// needs [`from_bytes_with_data`](Self::from_bytes_with_data));
    /// [`OnnxError::UnsupportedOp`] naming the first node whose operator is not supported;
    /// [`OnnxError::BadNode`], [`OnnxError::Graph`] for a malformed graph.
    pub fn from_bytes(bytes: &[u8], device: &B::Device) -> Result<Self, OnnxError> {
        Self::load(Bytes::copy_from_slice(bytes), &ExternalData::None, device)
    }

    /// Loads a model from the bytes of an `.onnx` file and of its external data file (the
    /// `model.onnx.data` that the dynamo exporter writes beside it).
    ///
    /// # Errors
    /// As [`from_bytes`](Self::from_bytes).
    pub fn from_bytes_with_data(
        bytes: &[u8],
        data: &[u8],
        device: &B::Device,
    ) -> Result<Self, OnnxError> {
        let map = std::iter::once((String::new(), Bytes::copy_from_slice(data))).collect();
        Self::load(
            Bytes::copy_from_slice(bytes),
            &ExternalData::Bytes(map),
            device,
        )
    }

    fn load(bytes: Bytes, external: &ExternalData, device: &B::Device) -> Result<Self, OnnxError> {
        let def = proto::decode(bytes, external)?;
        let (graph, params) = Graph::build(def)?;
        let layers = Layers::new(&graph);
        let input = graph.inputs.iter().copied().find(|&v| {
            graph.values[v]
                .decl
                .as_ref()
                .is_none_or(|d| d.elem == 0 || elem::is_float(d.elem))
        });
        let output = graph.outputs[0];
        let params = params
            .into_iter()
            .zip(&graph.param_shapes)
            .map(|(p, shape)| Weight::new(p.values, shape, device))
            .collect();
        Ok(Self {
            params,
            plan: Arc::new(Plan::new(graph, layers, input, output)),
        })
    }

    /// The model with another explained input: a graph input of float type, or a module, node
    /// or value inside the graph whose output is one float tensor `[batch, ...]` (a text
    /// model's `embeddings.word_embeddings`: the graph then runs from the embeddings, as
    /// Captum's text tutorials attribute to them).
    ///
    /// # Errors
    /// [`OnnxError::UnknownLayer`] for a name the model does not have;
    /// [`OnnxError::Input`] for a layer of several values.
    pub fn with_input(self, name: &str) -> Result<Self, OnnxError> {
        let v = self.single_value(name)?;
        let plan = &self.plan;
        let graph = plan.graph.clone();
        let layers = plan.layers.clone();
        Ok(Self {
            plan: Arc::new(Plan::new(graph, layers, Some(v), plan.output)),
            params: self.params,
        })
    }

    /// The model with another explained output: a graph output or any value inside the graph,
    /// `[batch, ...]`.
    ///
    /// # Errors
    /// As [`with_input`](Self::with_input).
    pub fn with_output(self, name: &str) -> Result<Self, OnnxError> {
        let v = self.single_value(name)?;
        let plan = &self.plan;
        let graph = plan.graph.clone();
        let layers = plan.layers.clone();
        Ok(Self {
            plan: Arc::new(Plan::new(graph, layers, plan.input, v)),
            params: self.params,
        })
    }

    fn single_value(&self, name: &str) -> Result<ValueId, OnnxError> {
        if let Some(&v) = self.plan.graph.by_name.get(name) {
            return Ok(v);
        }
        let (outs, _) = self.sides(name)?;
        match outs.as_slice() {
            [v] => Ok(*v),
            _ => Err(OnnxError::Input {
                name: name.to_owned(),
                message: format!(
                    "the layer has {} output values; name one of them: {:?}",
                    outs.len(),
                    outs.iter()
                        .map(|&v| self.plan.graph.values[v].name.clone())
                        .collect::<Vec<_>>()
                ),
            }),
        }
    }

    fn sides(&self, name: &str) -> Result<(Vec<ValueId>, Vec<ValueId>), OnnxError> {
        let layers = &self.plan.layers;
        if let Some(s) = layers.sides.get(name) {
            return Ok(s.clone());
        }
        if let Some(r) = layers.removed.get(name) {
            return Err(OnnxError::LayerUnavailable {
                name: name.to_owned(),
                side: "output",
                reason: r.reason.clone(),
            });
        }
        // TorchScript's constant folding removes BatchNorms without a trace but the rewritten
        // weights of the convolutions before them: name those beside the missing module.
        if layers.naming == Naming::TorchScript {
            let parent = name.rsplit_once('.').map_or("", |(p, _)| p);
            let mut folded: Vec<String> = layers
                .removed
                .iter()
                .filter(|(path, _)| path.rsplit_once('.').map_or("", |(p, _)| p) == parent)
                .map(|(path, r)| {
                    format!(
                        "{path:?} (node {:?})",
                        r.input_as.clone().unwrap_or_default()
                    )
                })
                .collect();
            folded.sort();
            if !folded.is_empty() {
                return Err(OnnxError::LayerUnavailable {
                    name: name.to_owned(),
                    side: "output",
                    reason: format!(
                        "the TorchScript exporter's constant folding (do_constant_folding=True) folds each \
                         BatchNorm into the convolution before it and leaves no trace of the BatchNorm; \
                         here it rewrote {}: a folded BatchNorm's output is its convolution node's output. \
                         Export with do_constant_folding=False (or the dynamo exporter) to keep the module",
                        folded.join(", ")
                    ),
                });
            }
        }
        Err(OnnxError::UnknownLayer {
            name: name.to_owned(),
            closest: layers.closest(name),
        })
    }

    /// The values of one side of a layer.
    ///
    /// # Errors
    /// [`OnnxError::UnknownLayer`] with the closest names; [`OnnxError::LayerUnavailable`] for
    /// a module the exporter fused away, or a side that does not exist (the input of a fused
    /// BatchNorm, of a value).
    pub fn check_layer(&self, name: &str, side: LayerSide) -> Result<Vec<String>, OnnxError> {
        let (outs, ins) = self.sides(name)?;
        let values = match side {
            LayerSide::Output => outs,
            LayerSide::Input => {
                if let Some(reason) = self.plan.layers.no_input.get(name) {
                    return Err(OnnxError::LayerUnavailable {
                        name: name.to_owned(),
                        side: "input",
                        reason: reason.clone(),
                    });
                }
                if ins.is_empty() {
                    return Err(OnnxError::LayerUnavailable {
                        name: name.to_owned(),
                        side: "input",
                        reason: "it takes no value computed from the inputs (a value or a graph input has no input side)".into(),
                    });
                }
                ins
            }
        };
        let plan = &self.plan;
        let kept: Vec<ValueId> = if plan.input.is_some() {
            values
                .iter()
                .copied()
                .filter(|&v| plan.from_input[v])
                .collect()
        } else {
            values.clone()
        };
        if kept.is_empty() {
            return Err(OnnxError::LayerUnavailable {
                name: name.to_owned(),
                side: side.as_str(),
                reason: format!(
                    "none of its values ({:?}) depends on the explained input {:?}",
                    values
                        .iter()
                        .map(|&v| plan.graph.values[v].name.clone())
                        .collect::<Vec<_>>(),
                    self.input_name().unwrap_or("")
                ),
            });
        }
        Ok(kept
            .iter()
            .map(|&v| plan.graph.values[v].name.clone())
            .collect())
    }

    /// Every layer: PyTorch modules (in graph order), then ONNX nodes, then values, each with
    /// its kind and the declared shapes of its output and input sides.
    pub fn layers(&self) -> &[LayerInfo] {
        &self.plan.layers.list
    }

    /// [`layers`](Self::layers) with the shapes the file does not declare (`?`) filled in from
    /// one forward of zeros of the explained input's declared shape (batch 1), on `device`.
    /// Without a fully declared input, or when the graph needs other inputs, the declared
    /// shapes are returned as they are.
    pub fn layers_with_shapes(&self, device: &B::Device) -> Vec<LayerInfo> {
        let list = self.plan.layers.list.clone();
        let Some(dims) = self.input_dims() else {
            return list;
        };
        let shape: Option<Vec<usize>> = dims
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Fixed(n) => Some(if i == 0 { 1 } else { *n }),
                _ if i == 0 => Some(1),
                _ => None,
            })
            .collect();
        let Some(shape) = shape else { return list };
        if !self.plan.required.is_empty() || shape.is_empty() {
            return list;
        }
        let n: usize = shape.iter().product();
        let flat = Tensor::<B, 2>::zeros([shape[0], n / shape[0].max(1)], device);
        let Ok(x) = AnyTensor::from_parts(flat, shape) else {
            return list;
        };
        let mut shapes = vec![None; self.plan.graph.values.len()];
        if let Some(v) = self.plan.input {
            shapes[v] = Some(x.shape().to_vec());
        }
        if self
            .run_recording(
                Some(x),
                &OnnxArgs::new(),
                &mut Probe::disabled(),
                &[self.plan.output],
                Some(&mut shapes),
            )
            .is_err()
        {
            return list;
        }
        let fill = |side: &mut Vec<(String, String)>| {
            for (name, shape) in side.iter_mut() {
                if shape.contains('?')
                    && let Some(Some(s)) = self
                        .plan
                        .graph
                        .by_name
                        .get(name)
                        .map(|&v| shapes[v].clone())
                {
                    *shape = format!("{s:?}");
                }
            }
        };
        list.into_iter()
            .map(|mut l| {
                fill(&mut l.outputs);
                fill(&mut l.inputs);
                l
            })
            .collect()
    }

    /// Which exporter's names the module paths were read from.
    pub fn naming(&self) -> Naming {
        self.plan.layers.naming
    }

    /// The graph's inputs: name, ONNX element type name and declared shape.
    pub fn inputs(&self) -> Vec<(String, &'static str, String)> {
        let g = &self.plan.graph;
        g.inputs
            .iter()
            .map(|&v| {
                let elem = g.values[v].decl.as_ref().map_or(0, |d| d.elem);
                (g.values[v].name.clone(), elem::name(elem), g.shape_text(v))
            })
            .collect()
    }

    /// The graph's outputs: name and declared shape.
    pub fn outputs(&self) -> Vec<(String, String)> {
        let g = &self.plan.graph;
        g.outputs
            .iter()
            .map(|&v| (g.values[v].name.clone(), g.shape_text(v)))
            .collect()
    }

    /// The explained input's name (`None` when the graph has no float input and none was
    /// chosen).
    pub fn input_name(&self) -> Option<&str> {
        self.plan
            .input
            .map(|v| self.plan.graph.values[v].name.as_str())
    }

    /// The explained input's declared shape (`[batch, 3, 224, 224]`), if declared.
    pub fn input_dims(&self) -> Option<Vec<Dim>> {
        let v = self.plan.input?;
        self.plan.graph.values[v].decl.as_ref()?.dims.clone()
    }

    /// The names of the graph inputs a forward needs besides the explained one.
    pub fn required_args(&self) -> Vec<String> {
        self.plan
            .required
            .iter()
            .map(|&v| self.plan.graph.values[v].name.clone())
            .collect()
    }

    /// The batch the model was exported with, when its input's dim 0 is fixed (see
    /// docs/onnx.md, "Batch").
    pub fn export_batch(&self) -> Option<usize> {
        self.plan.export_batch
    }

    /// The program that wrote the file (`pytorch 2.15.0`) and the default operator set.
    pub fn producer(&self) -> (&str, i64) {
        (&self.plan.graph.producer, self.plan.graph.opset)
    }

    /// The inference forward: the explained output for `input` and `args`.
    ///
    /// # Shapes
    /// - input: the explained input's shape, `[batch, ...]`
    /// - output: `[batch, ...]`
    ///
    /// # Errors
    /// [`OnnxError::Input`] for missing or unfitting arguments; [`OnnxError::Eval`] naming the
    /// node where the graph failed.
    pub fn forward(
        &self,
        input: AnyTensor<B>,
        args: &OnnxArgs<B>,
    ) -> Result<AnyTensor<B>, OnnxError> {
        self.run(
            Some(input),
            args,
            &mut Probe::disabled(),
            &[self.plan.output],
        )
        .map(|mut v| v.remove(0))
    }

    /// Values of the graph computed from the graph's own inputs (all given in `args`, the
    /// explained input included by its name): say a text model's word embeddings from token
    /// ids (`evaluate(&ids, &["embeddings.word_embeddings"])`), to explain the model from them.
    /// A name is a value, or a module or node with one output value.
    ///
    /// # Errors
    /// As [`forward`](Self::forward); [`OnnxError::UnknownLayer`] for an unknown name.
    pub fn evaluate(
        &self,
        args: &OnnxArgs<B>,
        names: &[&str],
    ) -> Result<Vec<AnyTensor<B>>, OnnxError> {
        let targets = names
            .iter()
            .map(|n| self.single_value(n))
            .collect::<Result<Vec<_>, _>>()?;
        self.run(None, args, &mut Probe::disabled(), &targets)
    }

    fn param(&self, p: usize) -> FloatTensor<B> {
        self.params[p].read(self.plan.param_shape(p))
    }

    /// Runs the graph. With `input` the explained input is it and the plan's needed nodes
    /// run; without, every graph input comes from `args` and every node the targets need runs.
    fn run(
        &self,
        input: Option<AnyTensor<B>>,
        args: &OnnxArgs<B>,
        probe: &mut Probe<B>,
        targets: &[ValueId],
    ) -> Result<Vec<AnyTensor<B>>, OnnxError> {
        self.run_recording(input, args, probe, targets, None)
    }

    /// [`run`](Self::run), recording the shape of every value computed when `shapes` is given.
    fn run_recording(
        &self,
        input: Option<AnyTensor<B>>,
        args: &OnnxArgs<B>,
        probe: &mut Probe<B>,
        targets: &[ValueId],
        mut shapes: Option<&mut Vec<Option<Vec<usize>>>>,
    ) -> Result<Vec<AnyTensor<B>>, OnnxError> {
        let plan = &*self.plan;
        let g = &plan.graph;
        let mut env: Vec<Option<Value<B>>> = vec![None; g.values.len()];

        // Which nodes run.
        let (needed, last_use, start) = if let Some(x) = &input {
            let Some(v) = plan.input else {
                return Err(OnnxError::Input {
                    name: String::new(),
                    message: "the graph has no float input: choose the explained input with OnnxModel::with_input".into(),
                });
            };
            let _ = x;
            if targets != [plan.output] {
                return Err(OnnxError::Input {
                    name: String::new(),
                    message: "internal: targets".into(),
                });
            }
            (plan.needed.clone(), plan.last_use.clone(), Some(v))
        } else {
            let sub = Plan::new(g.clone(), plan.layers.clone(), None, targets[0]);
            let mut needed = sub.needed;
            for &t in &targets[1..] {
                let s = Plan::new(g.clone(), plan.layers.clone(), None, t);
                for (a, b) in needed.iter_mut().zip(s.needed) {
                    *a |= b;
                }
            }
            let mut last = vec![0usize; g.values.len()];
            for (i, node) in g.nodes.iter().enumerate() {
                if needed[i] {
                    for v in node.inputs.iter().flatten() {
                        last[*v] = i;
                    }
                }
            }
            for &t in targets {
                last[t] = usize::MAX;
            }
            (needed, last, None)
        };

        let device = match (
            &input,
            args.values.iter().find_map(|(_, a)| match a {
                ArgValue::Float(t) => Some(t.flat().device()),
                _ => None,
            }),
        ) {
            (Some(x), _) => x.flat().device(),
            (None, Some(d)) => d,
            (None, None) => Default::default(),
        };

        let explained = input.is_some();
        let rows;
        if let (Some(x), Some(v)) = (input, start) {
            rows = x.batch();
            self.check_input(v, &x)?;
            let shape = x.shape().to_vec();
            env[v] = Some(Value::Float(B::float_reshape(
                x.into_flat().into_primitive().tensor(),
                Shape::from(shape),
            )));
        } else {
            rows = args.rows().unwrap_or(1);
        }
        // The other graph inputs.
        for (i, &v) in g.inputs.iter().enumerate() {
            if Some(v) == start {
                continue;
            }
            let name = &g.values[v].name;
            match args.get(name) {
                Some(a) => {
                    let value = match a {
                        ArgValue::Host(h) => Value::Host(h.clone()),
                        ArgValue::Float(t) => {
                            let shape = t.shape().to_vec();
                            Value::Float(B::float_reshape(
                                t.flat().clone().into_primitive().tensor(),
                                Shape::from(shape),
                            ))
                        }
                    };
                    self.check_arg(v, &value)?;
                    env[v] = Some(value);
                }
                None => {
                    let used = g.consumers[v].iter().any(|&c| needed[c]) || targets.contains(&v);
                    if used {
                        return Err(OnnxError::Input {
                            name: name.clone(),
                            message: format!(
                                "the graph needs this input (graph input {i}, {} {}); give it in OnnxArgs",
                                elem::name(g.values[v].decl.as_ref().map_or(0, |d| d.elem)),
                                g.shape_text(v)
                            ),
                        });
                    }
                }
            }
        }
        for (name, _) in &args.values {
            if !g.inputs.iter().any(|&v| &g.values[v].name == name) {
                return Err(OnnxError::Input {
                    name: name.clone(),
                    message: format!(
                        "the graph has no input of that name; its inputs are {:?}",
                        self.inputs().into_iter().map(|i| i.0).collect::<Vec<_>>()
                    ),
                });
            }
        }

        let ctx = Ctx {
            device: &device,
            rows,
            export_batch: plan.export_batch,
        };

        // The watched layers, each tapped once all its values exist.
        let taps = if explained {
            self.taps(probe, &needed)?
        } else {
            Vec::new()
        };
        let tap_now = |env: &mut Vec<Option<Value<B>>>,
                       probe: &mut Probe<B>,
                       at: Option<usize>|
         -> Result<(), OnnxError> {
            for t in taps.iter().filter(|t| t.at == at) {
                let mut group = Vec::with_capacity(t.values.len());
                for &v in &t.values {
                    match env[v].take() {
                        Some(Value::Float(p)) => {
                            let shape = p.shape().to_vec();
                            if shape.first() != Some(&rows) {
                                return Err(OnnxError::Input {
                                    name: t.name.clone(),
                                    message: format!(
                                        "its value {:?} has shape {shape:?}, whose dim 0 is not the batch ({rows} rows): choose a layer whose values are [batch, ...]",
                                        g.values[v].name
                                    ),
                                });
                            }
                            group.push(Prim::<B>(p));
                        }
                        other => {
                            return Err(OnnxError::Input {
                                name: t.name.clone(),
                                message: format!(
                                    "its value {:?} is {}, not a float tensor computed from the input",
                                    g.values[v].name,
                                    match other {
                                        Some(Value::Bool(_)) => "a boolean tensor",
                                        Some(Value::Host(_)) => "a constant or a shape",
                                        _ => "not computed",
                                    }
                                ),
                            });
                        }
                    }
                }
                let group = probe.tap_side(&t.name, t.side, group);
                for (&v, p) in t.values.iter().zip(group) {
                    env[v] = Some(Value::Float(p.0));
                }
            }
            Ok(())
        };
        tap_now(&mut env, probe, None)?;

        // INFLUENCE_ONNX_PROFILE=1: the slowest nodes of each forward on stderr (the time to
        // enqueue each node's operations; on a CPU backend, to run them).
        let mut profile: Option<Vec<(f64, usize)>> = profiling().then(Vec::new);
        for (i, node) in g.nodes.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            let mut inputs = Vec::with_capacity(node.inputs.len());
            for v in &node.inputs {
                inputs.push(match v {
                    None => None,
                    Some(v) => Some(self.read(&env, *v).ok_or_else(|| OnnxError::Eval {
                        node: node.name.clone(),
                        op: node.op_type.clone(),
                        message: format!("value {:?} was not computed", g.values[*v].name),
                    })?),
                });
            }
            let t0 = profile.as_ref().map(|_| std::time::Instant::now());
            let outs = eval::<B>(node, inputs, &ctx).map_err(|message| OnnxError::Eval {
                node: node.name.clone(),
                op: node.op_type.clone(),
                message,
            })?;
            if let (Some(p), Some(t0)) = (profile.as_mut(), t0) {
                p.push((t0.elapsed().as_secs_f64(), i));
            }
            for (slot, value) in node.outputs.iter().zip(outs) {
                if let Some(v) = slot {
                    if let Some(shapes) = shapes.as_deref_mut() {
                        shapes[*v] = Some(value.shape());
                    }
                    env[*v] = Some(value);
                }
            }
            // Values no later node reads are dropped (their memory, and autodiff's hold).
            for v in node.inputs.iter().flatten() {
                if last_use[*v] == i
                    && !matches!(g.values[*v].source, Source::Param(_) | Source::Host(_))
                {
                    env[*v] = None;
                }
            }
            tap_now(&mut env, probe, Some(i))?;
        }

        if let Some(mut p) = profile {
            p.sort_by(|a, b| b.0.total_cmp(&a.0));
            let total: f64 = p.iter().map(|x| x.0).sum();
            eprintln!(
                "influence-onnx profile: {rows} rows, {:.1} ms in {} nodes; slowest:",
                total * 1e3,
                p.len()
            );
            for (t, i) in p.iter().take(8) {
                eprintln!(
                    "  {:8.2} ms  {} ({})",
                    t * 1e3,
                    g.nodes[*i].name,
                    g.nodes[*i].op_type
                );
            }
        }
        targets
            .iter()
            .map(|&t| {
                let value = match self.read(&env, t) {
                    Some(v) => v,
                    None => {
                        return Err(OnnxError::Eval {
                            node: String::new(),
                            op: String::new(),
                            message: format!("value {:?} was not computed", g.values[t].name),
                        });
                    }
                };
                match value {
                    Value::Float(p) => {
                        let shape = p.shape().to_vec();
                        if !explained || shape.first() == Some(&rows) {
                            Ok(any_tensor::<B>(p))
                        } else {
                            Err(OnnxError::Input {
                                name: g.values[t].name.clone(),
                                message: format!(
                                    "the output has shape {shape:?}, whose dim 0 is not the batch ({rows} rows){}",
                                    if plan.export_batch.is_some_and(|b| b != rows) {
                                        format!(
                                            "; the model was exported for a fixed batch of {}: export it with a dynamic batch dimension (see docs/onnx.md, \"Batch\")",
                                            plan.export_batch.unwrap_or(0)
                                        )
                                    } else {
                                        String::new()
                                    }
                                ),
                            })
                        }
                    }
                    Value::Host(h) => {
                        let shape = h.shape().to_vec();
                        Ok(any_tensor::<B>(upload_f32::<B>(h.to_f32(), &shape, &device)))
                    }
                    Value::Bool(_) => Err(OnnxError::Input {
                        name: g.values[t].name.clone(),
                        message: "the output is a boolean tensor".into(),
                    }),
                }
            })
            .collect()
    }

    fn read(&self, env: &[Option<Value<B>>], v: ValueId) -> Option<Value<B>> {
        match &self.plan.graph.values[v].source {
            Source::Param(p) => Some(Value::Float(self.param(*p))),
            Source::Host(h) => Some(Value::Host(h.clone())),
            _ => env[v].clone(),
        }
    }

    fn check_input(&self, v: ValueId, x: &AnyTensor<B>) -> Result<(), OnnxError> {
        let value = &self.plan.graph.values[v];
        if let Some(dims) = value.decl.as_ref().and_then(|d| d.dims.as_ref()) {
            let shape = x.shape();
            let fits = dims.len() == shape.len()
                && dims
                    .iter()
                    .zip(shape)
                    .enumerate()
                    .all(|(i, (d, &s))| match d {
                        Dim::Fixed(n) => *n == s || (i == 0 && self.plan.export_batch == Some(*n)),
                        _ => true,
                    });
            if !fits {
                return Err(OnnxError::Input {
                    name: value.name.clone(),
                    message: format!(
                        "given a tensor of shape {shape:?}, the graph declares {}",
                        self.plan.graph.shape_text(v)
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_arg(&self, v: ValueId, a: &Value<B>) -> Result<(), OnnxError> {
        let value = &self.plan.graph.values[v];
        let Some(decl) = &value.decl else {
            return Ok(());
        };
        let kind_ok = match a {
            Value::Float(_) | Value::Host(HostTensor::F32(_)) => {
                decl.elem == 0 || elem::is_float(decl.elem)
            }
            Value::Host(HostTensor::I64(_)) => decl.elem == 0 || elem::is_int(decl.elem),
            Value::Host(HostTensor::Bool(_)) | Value::Bool(_) => {
                decl.elem == 0 || decl.elem == elem::BOOL
            }
        };
        let shape = a.shape();
        let rank_ok = decl.dims.as_ref().is_none_or(|d| {
            d.len() == shape.len()
                && d.iter()
                    .zip(&shape)
                    .enumerate()
                    .all(|(i, (d, &s))| match d {
                        Dim::Fixed(n) => *n == s || i == 0,
                        _ => true,
                    })
        });
        if !kind_ok || !rank_ok {
            return Err(OnnxError::Input {
                name: value.name.clone(),
                message: format!(
                    "given {} {shape:?}, the graph declares {} {}",
                    match a {
                        Value::Host(h) => h.kind(),
                        _ => "float",
                    },
                    elem::name(decl.elem),
                    self.plan.graph.shape_text(v)
                ),
            });
        }
        Ok(())
    }

    /// Where each watched layer is tapped: after the node that produces the last of its
    /// values (`None`: before any node, for graph inputs).
    fn taps(&self, probe: &Probe<B>, needed: &[bool]) -> Result<Vec<Tap>, OnnxError> {
        let g = &self.plan.graph;
        let mut taps = Vec::new();
        for (name, side) in probe.watched() {
            let values = self.check_layer(name, side)?;
            let values: Vec<ValueId> = values.iter().map(|n| g.by_name[n]).collect();
            let at_of = |v: ValueId| match g.values[v].source {
                Source::Node(n) => Some(n),
                _ => None,
            };
            let at = values.iter().map(|&v| at_of(v)).max().flatten();
            // A value read before the tap point would be used unwatched: tap each value where it
            // is produced instead (the probe then counts the layer as reached several times).
            let early_use = values.iter().any(|&v| {
                g.consumers[v]
                    .iter()
                    .any(|&c| needed[c] && at.is_some_and(|a| c <= a))
            });
            if early_use {
                for &v in &values {
                    taps.push(Tap {
                        name: name.to_owned(),
                        side,
                        values: vec![v],
                        at: at_of(v),
                    });
                }
            } else {
                taps.push(Tap {
                    name: name.to_owned(),
                    side,
                    values,
                    at,
                });
            }
        }
        Ok(taps)
    }
}

impl Plan {
    fn param_shape(&self, p: usize) -> &[usize] {
        &self.graph.param_shapes[p]
    }
}

/// One weight of an [`OnnxModel`], a parameter at its own rank (ranks past 6 are kept flat).
#[derive(Module, Debug)]
pub enum Weight<B: Backend> {
    /// Rank 1 (and the flat form of ranks past 6).
    R1(Param<Tensor<B, 1>>),
    /// Rank 2.
    R2(Param<Tensor<B, 2>>),
    /// Rank 3.
    R3(Param<Tensor<B, 3>>),
    /// Rank 4.
    R4(Param<Tensor<B, 4>>),
    /// Rank 5.
    R5(Param<Tensor<B, 5>>),
    /// Rank 6.
    R6(Param<Tensor<B, 6>>),
}

impl<B: Backend> Weight<B> {
    fn new(values: Vec<f32>, shape: &[usize], device: &B::Device) -> Self {
        macro_rules! at {
            ($v:ident, $d:literal) => {
                Weight::$v(Param::from_tensor(Tensor::<B, $d>::from_data(
                    TensorData::new(values, shape.to_vec()),
                    device,
                )))
            };
        }
        match shape.len() {
            2 => at!(R2, 2),
            3 => at!(R3, 3),
            4 => at!(R4, 4),
            5 => at!(R5, 5),
            6 => at!(R6, 6),
            _ => {
                let n = values.len();
                Weight::R1(Param::from_tensor(Tensor::<B, 1>::from_data(
                    TensorData::new(values, [n]),
                    device,
                )))
            }
        }
    }

    /// The weight's tensor, of `shape`.
    fn read(&self, shape: &[usize]) -> FloatTensor<B> {
        let t = match self {
            Weight::R1(p) => p.val().into_primitive().tensor(),
            Weight::R2(p) => p.val().into_primitive().tensor(),
            Weight::R3(p) => p.val().into_primitive().tensor(),
            Weight::R4(p) => p.val().into_primitive().tensor(),
            Weight::R5(p) => p.val().into_primitive().tensor(),
            Weight::R6(p) => p.val().into_primitive().tensor(),
        };
        if t.shape().as_slice() == shape {
            t
        } else {
            B::float_reshape(t, Shape::from(shape.to_vec()))
        }
    }
}

/// Where one watched layer is tapped.
struct Tap {
    name: String,
    side: LayerSide,
    values: Vec<ValueId>,
    at: Option<usize>,
}

/// A device float tensor of any rank as a [`TensorGroup`] member.
struct Prim<B: Backend>(FloatTensor<B>);

impl<B: Backend> TensorGroup<B> for Prim<B> {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        macro_rules! at_rank {
            ($($d:literal)*) => {
                match self.0.shape().num_dims() {
                    $($d => Prim(f.map(Tensor::<B, $d>::from_primitive(TensorPrimitive::Float(self.0))).into_primitive().tensor()),)*
                    _ => {
                        // Ranks past 8: the [batch, features] view.
                        let shape = self.0.shape();
                        let flat = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(B::float_reshape(
                            self.0,
                            Shape::from(vec![shape[0], shape.num_elements() / shape[0].max(1)]),
                        )));
                        Prim(B::float_reshape(f.map(flat).into_primitive().tensor(), shape))
                    }
                }
            };
        }
        at_rank!(1 2 3 4 5 6 7 8)
    }
}

fn any_tensor<B: Backend>(p: FloatTensor<B>) -> AnyTensor<B> {
    let shape = p.shape().to_vec();
    let batch = shape.first().copied().unwrap_or(1);
    let features: usize = shape.iter().skip(1).product();
    let flat = Tensor::<B, 2>::from_primitive(TensorPrimitive::Float(B::float_reshape(
        p,
        Shape::from(vec![batch, features]),
    )));
    AnyTensor::from_parts(flat, shape).expect("the [batch, features] view of this shape")
}

impl<B: Backend> LayerProbe<B> for OnnxModel<B> {
    /// The explained input, `[batch, ...]` of the graph input's shape.
    type Inputs = AnyTensor<B>;
    /// The graph's other inputs.
    type Args = OnnxArgs<B>;

    fn layer_names(&self) -> Vec<String> {
        self.plan
            .layers
            .list
            .iter()
            .map(|l| l.name.clone())
            .collect()
    }

    fn layer_hint(&self, name: &str) -> Option<String> {
        match self.sides(name) {
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        }
    }

    fn forward_probed(
        &self,
        inputs: AnyTensor<B>,
        args: &OnnxArgs<B>,
        probe: &mut Probe<B>,
    ) -> AnyTensor<B> {
        match self.run(Some(inputs), args, probe, &[self.plan.output]) {
            Ok(mut out) => out.remove(0),
            // The attribution catches this as InfluenceError::Forward, with the text.
            Err(e) => panic!("{e}"),
        }
    }
}

/// One additional forward argument of an [`OnnxModel`]: a host tensor (token ids, attention
/// masks: integers and booleans are always host tensors) or a float tensor on the device.
#[derive(Debug, Clone)]
pub enum ArgValue<B: Backend> {
    /// Values on the host.
    Host(HostTensor),
    /// A float tensor on the device, `[batch, ...]`.
    Float(AnyTensor<B>),
}

/// The graph inputs of an [`OnnxModel`] other than the explained one, by name (Captum's
/// `additional_forward_args`): `attention_mask`, `token_type_ids`, ...
///
/// A tensor whose dim 0 is the batch is repeated for every quadrature step, as Captum does.
/// Integers and booleans are kept on the host: the graph computes its masks and shapes from
/// them without reading a device.
#[derive(Debug, Clone)]
pub struct OnnxArgs<B: Backend> {
    values: Vec<(String, ArgValue<B>)>,
}

impl<B: Backend> Default for OnnxArgs<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: Backend> OnnxArgs<B> {
    /// No arguments.
    pub fn new() -> Self {
        Self { values: Vec::new() }
    }

    fn set(mut self, name: &str, value: ArgValue<B>) -> Self {
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.to_owned(), value));
        self
    }

    /// An integer input (token ids, an attention mask): row-major `values` of `shape`.
    ///
    /// # Errors
    /// [`OnnxError::Input`] when the count of values does not match the shape.
    pub fn ints(self, name: &str, values: Vec<i64>, shape: &[usize]) -> Result<Self, OnnxError> {
        let a = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| OnnxError::Input {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(self.set(name, ArgValue::Host(HostTensor::I64(a))))
    }

    /// A float input kept on the host: row-major `values` of `shape`.
    ///
    /// # Errors
    /// [`OnnxError::Input`] when the count of values does not match the shape.
    pub fn floats(self, name: &str, values: Vec<f32>, shape: &[usize]) -> Result<Self, OnnxError> {
        let a = ArrayD::from_shape_vec(IxDyn(shape), values).map_err(|e| OnnxError::Input {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
        Ok(self.set(name, ArgValue::Host(HostTensor::F32(a))))
    }

    /// A float input on the device, `[batch, ...]`.
    pub fn tensor(self, name: &str, tensor: impl Into<AnyTensor<B>>) -> Self {
        self.set(name, ArgValue::Float(tensor.into()))
    }

    /// An integer input from a Burn integer tensor (read back to the host once, here).
    ///
    /// # Errors
    /// [`OnnxError::Input`] when the device read fails.
    pub fn int_tensor<const D: usize>(
        self,
        name: &str,
        tensor: Tensor<B, D, Int>,
    ) -> Result<Self, OnnxError> {
        let shape = tensor.dims().to_vec();
        let data = tensor.into_data().convert::<i64>();
        let values = data.to_vec::<i64>().map_err(|e| OnnxError::Input {
            name: name.to_owned(),
            message: format!("{e:?}"),
        })?;
        self.ints(name, values, &shape)
    }

    /// The argument of that name.
    pub fn get(&self, name: &str) -> Option<&ArgValue<B>> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The names given.
    pub fn names(&self) -> Vec<&str> {
        self.values.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn rows(&self) -> Option<usize> {
        self.values.iter().find_map(|(_, v)| match v {
            ArgValue::Host(h) => h.shape().first().copied(),
            ArgValue::Float(t) => Some(t.batch()),
        })
    }
}

impl<B: Backend> ForwardArgs<B> for OnnxArgs<B> {
    fn expand(&self, e: &Expansion) -> Self {
        let values = self
            .values
            .iter()
            .map(|(name, v)| {
                let v = match v {
                    ArgValue::Host(h) if e.steps > 1 && h.shape().first() == Some(&e.batch) => {
                        ArgValue::Host(crate::host::map_host!(h.clone(), a => {
                            let views: Vec<_> = (0..e.steps).map(|_| a.view()).collect();
                            ndarray::concatenate(Axis(0), &views).expect("same shapes")
                        }))
                    }
                    ArgValue::Float(t) if e.steps > 1 && t.batch() == e.batch => {
                        let shape = t.shape().to_vec();
                        let mut out = shape.clone();
                        out[0] *= e.steps;
                        ArgValue::Float(
                            AnyTensor::from_parts(t.flat().clone().repeat_dim(0, e.steps), out)
                                .expect("rows repeated"),
                        )
                    }
                    other => other.clone(),
                };
                (name.clone(), v)
            })
            .collect();
        Self { values }
    }

    fn when_absent() -> Option<Self> {
        Some(Self::new())
    }
}

impl<B: AutodiffBackend> ToEval<B> for OnnxArgs<B> {
    type Eval = OnnxArgs<Eval<B>>;

    fn to_eval(self) -> OnnxArgs<Eval<B>> {
        OnnxArgs {
            values: self
                .values
                .into_iter()
                .map(|(n, v)| {
                    (
                        n,
                        match v {
                            ArgValue::Host(h) => ArgValue::Host(h),
                            ArgValue::Float(t) => ArgValue::Float(t.to_eval()),
                        },
                    )
                })
                .collect(),
        }
    }
}

/// Whether `INFLUENCE_ONNX_PROFILE` is set (read once). Never on wasm32, which has no
/// environment and no `Instant`.
fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        cfg!(not(target_arch = "wasm32")) && std::env::var_os("INFLUENCE_ONNX_PROFILE").is_some()
    })
}
