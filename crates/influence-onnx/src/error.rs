//! [`OnnxError`]: everything that can go wrong loading or running an ONNX model.

/// An error of this crate: a file that cannot be read, an operator outside the supported set,
/// a layer name that does not exist, inputs that do not fit the graph.
///
/// Every fault of a malformed or unsupported file is reported as one of these when the model
/// loads; nothing panics. During an attribution, a fault of the graph's evaluation (say inputs
/// whose shapes do not fit) reaches the caller as
/// [`InfluenceError::Forward`](influence_core::InfluenceError::Forward) with this error's text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OnnxError {
    /// The file could not be read.
    #[error("onnx: cannot read {path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// The operating system's message.
        message: String,
    },

    /// The bytes are not an ONNX model (protobuf decoding failed, no graph, no operator set).
    #[error("onnx: not a valid ONNX model: {0}")]
    Parse(String),

    /// A tensor of the file is malformed: data of the wrong length, a negative dim, an element
    /// type this crate does not read.
    #[error("onnx: tensor {name:?}: {message}")]
    BadTensor {
        /// The tensor's name.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// A tensor's external data (a `model.onnx.data` file) cannot be read.
    #[error("onnx: tensor {tensor:?}: external data {location:?}: {message}")]
    ExternalData {
        /// The tensor.
        tensor: String,
        /// The data file's name, as the model gives it.
        location: String,
        /// What is wrong.
        message: String,
    },

    /// A node uses an operator this crate does not evaluate (see `docs/onnx.md` for the
    /// table).
    #[error(
        "onnx: node {node:?} uses operator {op:?}, which influence-onnx does not evaluate (the supported operators are listed in docs/onnx.md)"
    )]
    UnsupportedOp {
        /// The node's name.
        node: String,
        /// The operator (`domain::op` outside the default domain).
        op: String,
    },

    /// A node's attributes or inputs are malformed or ask for something not supported.
    #[error("onnx: node {node:?} ({op}): {message}")]
    BadNode {
        /// The node's name.
        node: String,
        /// Its operator.
        op: String,
        /// What is wrong.
        message: String,
    },

    /// The graph is malformed: a value used before it is produced, produced twice, or never
    /// produced.
    #[error("onnx: the graph is malformed: {0}")]
    Graph(String),

    /// A layer name that the model does not have.
    #[error("onnx: the model has no layer {name:?}{}", closest_text(.closest))]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// The closest names the model has.
        closest: Vec<String>,
    },

    /// A layer that the exporter removed or changed, so that its values are not in the graph.
    #[error("onnx: layer {name:?} ({side}) is not in this export: {reason}")]
    LayerUnavailable {
        /// The name asked for.
        name: String,
        /// `"output"` or `"input"`.
        side: &'static str,
        /// What the exporter did and what exists instead.
        reason: String,
    },

    /// The chosen input or output of the model is not one it has, or not a float tensor.
    #[error("onnx: {0}")]
    Io2(String),

    /// An input given to the model does not fit its graph (missing, unknown name, wrong type
    /// or rank).
    #[error("onnx: input {name:?}: {message}")]
    Input {
        /// The input's name.
        name: String,
        /// What is wrong.
        message: String,
    },

    /// A node failed while the graph ran (shapes that do not fit, a value the evaluator cannot
    /// compute on the host).
    #[error("onnx: node {node:?} ({op}): {message}")]
    Eval {
        /// The node's name.
        node: String,
        /// Its operator.
        op: String,
        /// What went wrong.
        message: String,
    },
}

fn closest_text(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        format!("; the closest names are {closest:?}")
    }
}
