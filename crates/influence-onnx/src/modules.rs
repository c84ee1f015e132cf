//! Layers by name: PyTorch module paths (`layer3`, `layer3.0.conv1`, `encoder.layer.2.output`)
//! read from the exporter's metadata or node names, and every node and value name of the graph.
//!
//! - The **dynamo exporter** (`torch.onnx.export`'s default since torch 2.9) writes each node's
//!   module path in its metadata, `pkg.torch.onnx.name_scopes`: `['', 'layer1', 'layer1.0',
//!   'layer1.0.conv1', 'conv2d_1']` (root, the nested modules, then the operation).
//! - The **TorchScript exporter** (`dynamo=False`) names nodes by path:
//!   `/layer1/layer1.0/conv1/Conv`, where a component holding dots (`layer1.0`,
//!   `downsample.1`) continues the path of the component before it.
//!
//! A module's **output** is every value produced by its nodes and used outside them (or a graph
//! output); its **input** is every non-constant value its nodes take from outside, as Captum's
//! forward hook and pre-hook see them.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::graph::{Graph, Source, ValueId};

/// How a layer is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// A PyTorch module, by its path.
    Module,
    /// An ONNX node, by its name.
    Node,
    /// An ONNX value, by its name (a graph input is one).
    Value,
}

/// One layer of an ONNX model, as [`OnnxModel::layers`](crate::OnnxModel::layers) lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerInfo {
    /// The name to ask for (`layer3.0.conv1`, `/layer3/layer3.0/conv1/Conv`, `relu_7`).
    pub name: String,
    /// Module, node or value.
    pub kind: LayerKind,
    /// What it is: the module's class (`torch.nn.modules.conv.Conv2d`, dynamo only) or the
    /// operators of its nodes (`Conv`, `Conv+Relu`), or the node's operator, or `value`.
    pub what: String,
    /// The values on the output side, by name, with their declared shapes
    /// (`[batch, 64, 56, 56]`; `?` where the file declares none).
    pub outputs: Vec<(String, String)>,
    /// The values on the input side, likewise.
    pub inputs: Vec<(String, String)>,
}

/// Which exporter wrote the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Naming {
    /// `torch.onnx.export(..., dynamo=True)`: module paths in node metadata.
    Dynamo,
    /// `torch.onnx.export(..., dynamo=False)`: module paths in node names.
    TorchScript,
    /// Neither: node and value names only.
    Plain,
}

/// A module the exporter fused into another, or changed so that one side of it is not in the
/// graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Removed {
    /// Why, and what to ask for instead.
    pub reason: String,
    /// Whether the module's input side is still in the graph (and under which name).
    pub input_as: Option<String>,
}

/// The layers of a graph.
#[derive(Debug, Clone)]
pub struct Layers {
    /// Which exporter's names were read.
    pub naming: Naming,
    /// Every layer, modules first (in graph order), then nodes, then values.
    pub list: Vec<LayerInfo>,
    /// Name → (output values, input values), for the three kinds; modules win over nodes over
    /// values when names coincide.
    pub sides: HashMap<String, (Vec<ValueId>, Vec<ValueId>)>,
    /// Modules the exporter removed or changed (fused BatchNorms).
    pub removed: HashMap<String, Removed>,
    /// Modules whose input side is not in the graph (a BatchNorm fused with the convolution
    /// before it: its input was the convolution's output).
    pub no_input: HashMap<String, String>,
}

/// Parses a Python list of strings (`['', 'layer1', "it's"]`) as the exporter writes it.
fn py_list(s: &str) -> Option<Vec<String>> {
    let s = s.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let Some(q) = chars.next() else { break };
        if q != '\'' && q != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(chars.next()?),
                c if c == q => break,
                c => item.push(c),
            }
        }
        out.push(item);
    }
    Some(out)
}

/// A node's module paths, outermost first, and the class of each when known.
fn node_modules(
    naming: Naming,
    name: &str,
    meta: &[(String, String)],
) -> Vec<(String, Option<String>)> {
    match naming {
        Naming::Dynamo => {
            let get = |k: &str| {
                meta.iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.as_str())
            };
            let Some(scopes) = get("pkg.torch.onnx.name_scopes").and_then(py_list) else {
                return Vec::new();
            };
            // A node outside any module has a first scope other than the root's ''.
            if scopes.first().map(String::as_str) != Some("") || scopes.len() < 3 {
                return Vec::new();
            }
            let classes = get("pkg.torch.onnx.class_hierarchy").and_then(py_list);
            scopes[1..scopes.len() - 1]
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let class = classes
                        .as_ref()
                        .and_then(|c| (c.len() == scopes.len()).then(|| c[i + 1].clone()));
                    (p.clone(), class)
                })
                .collect()
        }
        Naming::TorchScript => {
            let Some(rest) = name.strip_prefix('/') else {
                return Vec::new();
            };
            let parts: Vec<&str> = rest.split('/').collect();
            let mut paths: Vec<String> = Vec::new();
            for (i, comp) in parts[..parts.len().saturating_sub(1)].iter().enumerate() {
                if comp.is_empty() {
                    return Vec::new();
                }
                // `layer1.0` after `layer1`: the component restates its parent's name.
                let prev = if i > 0 { parts[i - 1] } else { "" };
                let full = if i > 0 && comp.starts_with(&format!("{prev}.")) {
                    let parent = if i >= 2 {
                        paths[i - 2].clone()
                    } else {
                        String::new()
                    };
                    if parent.is_empty() {
                        comp.to_string()
                    } else {
                        format!("{parent}.{comp}")
                    }
                } else if let Some(p) = paths.last() {
                    format!("{p}.{comp}")
                } else {
                    comp.to_string()
                };
                paths.push(full);
            }
            paths.into_iter().map(|p| (p, None)).collect()
        }
        Naming::Plain => Vec::new(),
    }
}

impl Layers {
    /// Reads the layers of a graph.
    pub fn new(g: &Graph) -> Self {
        // The TorchScript exporter names the nodes it copies weights or constants with
        // (`Identity_3`, `Constant_12`) without a path: count the others.
        let named: Vec<_> = g
            .nodes
            .iter()
            .filter(|n| !matches!(n.op_type.as_str(), "Identity" | "Constant"))
            .collect();
        let by_path = named.iter().filter(|n| n.name.starts_with('/')).count();
        let naming = if g.nodes.iter().any(|n| {
            n.metadata
                .iter()
                .any(|(k, _)| k == "pkg.torch.onnx.name_scopes")
        }) {
            Naming::Dynamo
        } else if !named.is_empty() && by_path * 2 >= named.len() {
            Naming::TorchScript
        } else {
            Naming::Plain
        };

        // Module → its nodes, in graph order; the first node's index orders the modules.
        let mut members: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut classes: HashMap<String, String> = HashMap::new();
        let mut first: HashMap<String, usize> = HashMap::new();
        for (i, node) in g.nodes.iter().enumerate() {
            for (path, class) in node_modules(naming, &node.name, &node.metadata) {
                members.entry(path.clone()).or_default().push(i);
                first.entry(path.clone()).or_insert(i);
                if let Some(c) = class {
                    classes.entry(path).or_insert(c);
                }
            }
        }

        let mut removed = HashMap::new();
        let mut no_input = HashMap::new();
        for (i, node) in g.nodes.iter().enumerate() {
            let rules = node
                .metadata
                .iter()
                .find(|(k, _)| k == "pkg.onnxscript.rewriter.rule_name")
                .map(|(_, v)| v.as_str())
                .unwrap_or("");
            let weight_name = node
                .inputs
                .get(1)
                .copied()
                .flatten()
                .map(|v| g.values[v].name.clone());
            if naming == Naming::Dynamo && rules.contains("FuseBatchNormIntoConv") {
                // The fused node carries the BatchNorm's path; the convolution's weight keeps
                // its initializer name, `<conv path>.weight`.
                let bn = node_modules(naming, &node.name, &node.metadata)
                    .last()
                    .map(|(p, _)| p.clone());
                if let (Some(bn), Some(w)) = (
                    bn,
                    weight_name
                        .as_deref()
                        .and_then(|w| w.strip_suffix(".weight")),
                ) && w != bn
                {
                    let input = node.inputs[0].map(|v| g.values[v].name.clone());
                    removed.insert(
                        w.to_owned(),
                        Removed {
                            reason: format!(
                                "the exporter fused the convolution {w:?} with the BatchNorm after it ({bn:?}), \
                                 so the convolution's own output does not exist: ask for {bn:?} (the BatchNorm's output, \
                                 computed by the fused node {:?}), or export with optimize=False to keep both",
                                node.name
                            ),
                            input_as: input.clone(),
                        },
                    );
                    no_input.insert(
                        bn.clone(),
                        format!(
                            "the BatchNorm {bn:?} was fused with the convolution before it ({w:?}): its input, \
                             the convolution's output, does not exist; export with optimize=False to keep it"
                        ),
                    );
                }
            }
            if naming == Naming::TorchScript && node.op_type == "Conv" {
                // Constant folding (do_constant_folding=True, the default) folds an eval-mode
                // BatchNorm into the convolution before it, and names the new weight
                // `onnx::Conv_<n>` instead of `<conv path>.weight`.
                if let Some(w) = &weight_name
                    && w.starts_with("onnx::")
                    && let Some((conv, _)) = node_modules(naming, &node.name, &node.metadata).last()
                {
                    removed.insert(
                        conv.clone(),
                        Removed {
                            reason: format!(
                                "the exporter folded the BatchNorm that follows the convolution {conv:?} into it \
                                 (its weight is {w:?}, not \"{conv}.weight\"), so node {:?} computes the BatchNorm's \
                                 output, not the convolution's; export with do_constant_folding=False to keep both, \
                                 or ask for the node's input by the node's name",
                                node.name
                            ),
                            input_as: Some(node.name.clone()),
                        },
                    );
                }
            }
            let _ = i;
        }

        // The values computed from the graph's inputs: a module's sides are those (shape
        // arithmetic and constants are not).
        let data = g.depends_on(&g.inputs);
        let is_data = |v: ValueId| data[v];
        let mut list = Vec::new();
        let mut sides: HashMap<String, (Vec<ValueId>, Vec<ValueId>)> = HashMap::new();
        let shape_of = |v: ValueId| (g.values[v].name.clone(), g.shape_text(v));

        let mut modules: Vec<(&String, &Vec<usize>)> = members.iter().collect();
        modules.sort_by_key(|(p, _)| first[*p]);
        for (path, nodes) in modules {
            if removed.contains_key(path) {
                continue;
            }
            let set: HashSet<usize> = nodes.iter().copied().collect();
            let mut outs = Vec::new();
            let mut ins = Vec::new();
            for &n in nodes {
                for v in g.nodes[n].outputs.iter().flatten() {
                    let used_outside =
                        g.consumers[*v].iter().any(|c| !set.contains(c)) || g.outputs.contains(v);
                    if used_outside && is_data(*v) && !outs.contains(v) {
                        outs.push(*v);
                    }
                }
                for v in g.nodes[n].inputs.iter().flatten() {
                    let inside = matches!(g.values[*v].source, Source::Node(p) if set.contains(&p));
                    if !inside && is_data(*v) && !ins.contains(v) {
                        ins.push(*v);
                    }
                }
            }
            if outs.is_empty() {
                continue;
            }
            let what = classes.get(path).cloned().unwrap_or_else(|| {
                let mut ops: Vec<&str> =
                    nodes.iter().map(|&n| g.nodes[n].op_type.as_str()).collect();
                ops.dedup();
                if ops.len() > 4 {
                    format!("{} nodes", nodes.len())
                } else {
                    ops.join("+")
                }
            });
            list.push(LayerInfo {
                name: path.clone(),
                kind: LayerKind::Module,
                what,
                outputs: outs.iter().map(|&v| shape_of(v)).collect(),
                inputs: ins.iter().map(|&v| shape_of(v)).collect(),
            });
            sides.insert(path.clone(), (outs, ins));
        }
        for node in &g.nodes {
            if sides.contains_key(&node.name) || matches!(node.op, crate::ops::Op::Constant { .. })
            {
                continue;
            }
            let outs: Vec<ValueId> = node
                .outputs
                .iter()
                .flatten()
                .copied()
                .filter(|v| is_data(*v))
                .collect();
            if outs.is_empty() {
                continue;
            }
            let ins: Vec<ValueId> = node
                .inputs
                .iter()
                .flatten()
                .copied()
                .filter(|v| is_data(*v))
                .collect();
            list.push(LayerInfo {
                name: node.name.clone(),
                kind: LayerKind::Node,
                what: node.op_type.clone(),
                outputs: outs.iter().map(|&v| shape_of(v)).collect(),
                inputs: ins.iter().map(|&v| shape_of(v)).collect(),
            });
            sides.insert(node.name.clone(), (outs, ins));
        }
        for (v, value) in g.values.iter().enumerate() {
            if sides.contains_key(&value.name) || !is_data(v) {
                continue;
            }
            list.push(LayerInfo {
                name: value.name.clone(),
                kind: LayerKind::Value,
                what: "value".into(),
                outputs: vec![shape_of(v)],
                inputs: Vec::new(),
            });
            sides.insert(value.name.clone(), (vec![v], Vec::new()));
        }
        Self {
            naming,
            list,
            sides,
            removed,
            no_input,
        }
    }

    /// The names closest to `name`, best first (at most five).
    pub fn closest(&self, name: &str) -> Vec<String> {
        let mut scored: Vec<(f64, &str)> = self
            .list
            .iter()
            .map(|l| {
                let s = strsim::normalized_levenshtein(name, &l.name)
                    + if l.name.starts_with(name) || name.starts_with(&l.name) {
                        0.3
                    } else {
                        0.0
                    }
                    + if l.kind == LayerKind::Module {
                        0.05
                    } else {
                        0.0
                    };
                (s, l.name.as_str())
            })
            .filter(|(s, _)| *s > 0.35)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored
            .into_iter()
            .take(5)
            .map(|(_, n)| n.to_owned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_lists_parse() {
        assert_eq!(
            py_list("['', 'layer1', 'layer1.0']").unwrap(),
            vec!["", "layer1", "layer1.0"]
        );
        assert_eq!(py_list("[\"it's\", 'a\\'b']").unwrap(), vec!["it's", "a'b"]);
        assert_eq!(py_list("[]").unwrap(), Vec::<String>::new());
        assert!(py_list("['unterminated").is_none());
        assert!(py_list("not a list").is_none());
    }

    #[test]
    fn torchscript_names_give_module_paths() {
        let paths = |n: &str| {
            node_modules(Naming::TorchScript, n, &[])
                .into_iter()
                .map(|(p, _)| p)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            paths("/layer1/layer1.0/conv1/Conv"),
            vec!["layer1", "layer1.0", "layer1.0.conv1"]
        );
        assert_eq!(
            paths("/layer2/layer2.0/downsample/downsample.1/BatchNormalization"),
            vec![
                "layer2",
                "layer2.0",
                "layer2.0.downsample",
                "layer2.0.downsample.1"
            ]
        );
        assert_eq!(paths("/fc/Gemm"), vec!["fc"]);
        assert_eq!(paths("/Flatten"), Vec::<String>::new());
        assert_eq!(paths("Identity_3"), Vec::<String>::new());
        assert_eq!(
            paths("/encoder/layer.0/attention/self/query/MatMul"),
            vec![
                "encoder",
                "encoder.layer.0",
                "encoder.layer.0.attention",
                "encoder.layer.0.attention.self",
                "encoder.layer.0.attention.self.query"
            ]
        );
    }
}
