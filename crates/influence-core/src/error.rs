//! The one error type of the crate.
//!
//! Every check that Captum makes with an `assert` (and a few more) is a variant here, so a
//! caller gets a typed error naming the argument and the shapes involved instead of a panic or
//! a silently wrong number.

use thiserror::Error;

/// Everything that can go wrong when computing an attribution.
///
/// Each message names the offending argument (with Captum's name for it) and the shapes
/// involved.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum InfluenceError {
    /// The batch (dim 0 of the inputs) is empty.
    #[error(
        "inputs: the batch is empty (input {input} has shape {shape:?}); give at least one example"
    )]
    EmptyBatch {
        /// Index of the input whose dim 0 is 0.
        input: usize,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// An input has no values per example (a dim after the batch is 0).
    #[error(
        "inputs: input {input} has shape {shape:?}: no values per example (a dim after the batch is 0)"
    )]
    NoFeatures {
        /// Index of the input.
        input: usize,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// The inputs of a multi-input model disagree on the batch size.
    #[error(
        "inputs: input {input} has batch size {got} (shape {shape:?}) but input 0 has batch size {expected}; dim 0 is the batch in every input"
    )]
    BatchMismatch {
        /// Index of the disagreeing input.
        input: usize,
        /// Batch size of input 0.
        expected: usize,
        /// Batch size of this input.
        got: usize,
        /// Shape of this input.
        shape: Vec<usize>,
    },

    /// `baselines` has a different number of entries than `inputs`.
    #[error(
        "baselines: {got} baseline(s) given for {expected} input(s); give one baseline per input"
    )]
    BaselineCount {
        /// Number of inputs.
        expected: usize,
        /// Number of baselines given.
        got: usize,
    },

    /// A baseline tensor's shape matches neither the input nor the input with a batch of 1.
    #[error(
        "baselines: baseline {input} has shape {baseline:?}, but input {input} has shape {input_shape:?}; a baseline tensor must have the input's shape or a first dim of 1 (broadcast over the batch)"
    )]
    BaselineShape {
        /// Index of the input.
        input: usize,
        /// Shape of that input.
        input_shape: Vec<usize>,
        /// Shape of the baseline given for it.
        baseline: Vec<usize>,
    },

    /// `inputs` or `baselines` contain NaN or infinite values.
    #[error("{argument}: input {input} contains NaN or infinite values")]
    NonFinite {
        /// `"inputs"` or `"baselines"`.
        argument: &'static str,
        /// Index of the input (or of the input the baseline belongs to).
        input: usize,
    },

    /// `n_steps` is too small for the quadrature method.
    #[error("n_steps: {method} needs n_steps >= {min}, got {n_steps}")]
    TooFewSteps {
        /// Captum name of the method.
        method: &'static str,
        /// Smallest accepted number of steps.
        min: usize,
        /// Number of steps given.
        n_steps: usize,
    },

    /// `n_steps` above [`MAX_STEPS`](crate::MAX_STEPS).
    #[error("n_steps: at most {max} quadrature points, got {n_steps}")]
    TooManySteps {
        /// The largest accepted number of steps.
        max: usize,
        /// Number of steps given.
        n_steps: usize,
    },

    /// A method name that is not one of Captum's.
    #[error(
        "method: unknown method {name:?}; expected one of riemann_left, riemann_right, riemann_middle, riemann_trapezoid, gausslegendre"
    )]
    UnknownMethod {
        /// The name given.
        name: String,
    },

    /// `internal_batch_size` of 0.
    #[error("internal_batch_size: must be at least 1, got 0")]
    ZeroInternalBatchSize,

    /// No target given although the model output has more than one value per example.
    #[error(
        "target: the model output has shape {output_shape:?}, {per_example} values per example; give a target (an index, a tuple or one per example) to select one"
    )]
    TargetMissing {
        /// Shape of the model output.
        output_shape: Vec<usize>,
        /// Number of values per example.
        per_example: usize,
    },

    /// A target index is out of range for its output dimension.
    #[error(
        "target: index {index} is out of range for dim {dim} of size {size} of the model output (shape {output_shape:?}){}",
        example.map(|e| format!(", for example {e}")).unwrap_or_default()
    )]
    TargetOutOfRange {
        /// The index given.
        index: usize,
        /// The output dimension it indexes (1 is the first after the batch).
        dim: usize,
        /// The size of that dimension.
        size: usize,
        /// Shape of the model output.
        output_shape: Vec<usize>,
        /// The example the index belongs to, for per-example targets.
        example: Option<usize>,
    },

    /// A target tuple does not have one index per non-batch output dimension.
    #[error(
        "target: a target of {got} index(es) cannot select one value from the model output of shape {output_shape:?}; give {expected} index(es), one per output dim after the batch (for one class per example, use Target::PerExample(vec![...]))"
    )]
    TargetArity {
        /// Number of indices given.
        got: usize,
        /// Number of non-batch output dims.
        expected: usize,
        /// Shape of the model output.
        output_shape: Vec<usize>,
    },

    /// A per-example target list whose length is not the batch size.
    #[error(
        "target: {got} per-example target(s) given for a batch of {batch} (a Vec or Target::PerExample is one class per example; for one index tuple shared by every example use Target::Tuple)"
    )]
    TargetCount {
        /// Number of targets given.
        got: usize,
        /// Batch size.
        batch: usize,
    },

    /// The layer name is not one the model exposes.
    #[error("layer: the model exposes no layer named {name:?}; it exposes {available:?}")]
    UnknownLayer {
        /// The name asked for.
        name: String,
        /// The names the model's `LayerProbe::layer_names` lists.
        available: Vec<String>,
    },

    /// The layer name is not one the model exposes, and the model says why
    /// ([`LayerProbe::layer_hint`](crate::LayerProbe::layer_hint)): a module an ONNX exporter
    /// fused away, or the closest names of a large model's layers.
    #[error("layer: {name:?} is not a layer of the model: {reason}")]
    LayerUnavailable {
        /// The name asked for.
        name: String,
        /// The model's explanation.
        reason: String,
    },

    /// The forward pass never reached the layer.
    #[error(
        "layer: the forward pass never reached layer {name:?} ({side}); check that the model's forward calls the probe for it with these inputs"
    )]
    LayerNotReached {
        /// The layer.
        name: String,
        /// `"output"` or `"input"`.
        side: &'static str,
    },

    /// The forward pass reached the layer more than once.
    #[error(
        "layer: the forward pass reached layer {name:?} {times} times; Internal Influence needs a layer used once per forward"
    )]
    LayerReachedTwice {
        /// The layer.
        name: String,
        /// How many times it was reached.
        times: usize,
    },

    /// The model's output does not have one row per interpolated example.
    #[error(
        "model: the output has shape {output_shape:?} for a forward of {expected} row(s); dim 0 of the output must be the batch"
    )]
    OutputBatch {
        /// Rows fed to the model.
        expected: usize,
        /// Shape of the output.
        output_shape: Vec<usize>,
    },

    /// The model needs additional forward arguments and none were given.
    #[error("additional_forward_args: this model's forward needs additional arguments; give them")]
    MissingForwardArgs,

    /// A dynamic-rank tensor was asked for as a tensor of another rank.
    #[error("{what}: has shape {shape:?} (rank {}), asked for rank {expected}", shape.len())]
    Rank {
        /// What the tensor is.
        what: &'static str,
        /// The asked-for rank.
        expected: usize,
        /// The tensor's shape.
        shape: Vec<usize>,
    },

    /// An attribution with several tensors was asked for as a single tensor.
    #[error(
        "attribution: the layer gave {count} tensors; pick one with `tensors()[i]` or `into_tensors()`"
    )]
    NotSingle {
        /// Number of tensors.
        count: usize,
    },

    /// Reading a tensor back from the device failed.
    #[error("device read failed: {0}")]
    Read(String),

    /// The model's forward pass failed (panicked) on these inputs: a shape that does not fit
    /// the model, or an additional forward argument that does not fit the batch.
    #[error(
        "model: the forward pass failed on these arguments: {message}; inputs have shapes {input_shapes:?}{}",
        if arg_shapes.is_empty() { String::new() } else {
            format!(", additional_forward_args tensors have shapes {arg_shapes:?} (a tensor whose dim 0 is the batch, {batch}, is repeated once per step; any other tensor is passed unchanged, so a per-example tensor must have dim 0 = {batch})")
        }
    )]
    Forward {
        /// The panic message of the forward.
        message: String,
        /// The shapes of the attributed inputs, `[batch, ...]` each.
        input_shapes: Vec<Vec<usize>>,
        /// The shapes of the tensors among the additional forward arguments, as given.
        arg_shapes: Vec<Vec<usize>>,
        /// The batch (dim 0 of the inputs).
        batch: usize,
    },

    /// The explained function is not the model's inference function: the output for an
    /// example changes with the other rows of the forward's batch, or from one forward to the
    /// next.
    #[error(
        "model: two forwards of the same inputs disagree (largest difference {difference:.3e}, outputs up to {scale:.3e}): the output for an example depends on the other examples of the batch or on random draws, so the model is not running its inference function. BatchNorm, Dropout and GaussianNoise are put in inference mode for the attribution; a module that keeps its own training flag, draws random numbers or mixes the examples of a batch cannot be explained example by example"
    )]
    NotInferenceFunction {
        /// The largest absolute difference between the two forwards.
        difference: f64,
        /// The largest absolute output value.
        scale: f64,
    },

    /// A per-example target read from an integer tensor is negative.
    #[error(
        "target: the target tensor holds {value} for example {example}; class indices are >= 0"
    )]
    TargetNegative {
        /// The value read.
        value: i64,
        /// The example it belongs to.
        example: usize,
    },

    /// A target tensor that is not one index per example.
    #[error(
        "target: a target tensor must hold one class index per example, shape [batch] or [batch, 1] (argmax(1) output); got shape {shape:?}"
    )]
    TargetTensorShape {
        /// The tensor's shape.
        shape: Vec<usize>,
    },

    /// `LayerProbe::layer_names` does not list the layers the forward reaches.
    #[error(
        "layer_names: the forward reaches layers that layer_names() does not list ({not_listed:?}) or layer_names() lists layers the forward never reaches ({not_reached:?})"
    )]
    LayerNamesMismatch {
        /// Reached by the forward, missing from `layer_names()`.
        not_listed: Vec<String>,
        /// Listed by `layer_names()`, never reached by the forward.
        not_reached: Vec<String>,
    },

    /// A layer's tensor changed its size between the forward that evaluated the layer at
    /// the path's end points and a forward that replaces it (Layer Integrated Gradients): the
    /// layer's size depends on more than the example.
    #[error(
        "layer `{layer}`: its tensor is {expected:?} in this forward but the replacement from the end points is {got:?}; Layer Integrated Gradients needs a layer whose size depends only on the example"
    )]
    ReplacementShape {
        /// The layer.
        layer: String,
        /// The tensor's shape in the forward.
        expected: Vec<usize>,
        /// The replacement's `[rows, features]` shape.
        got: Vec<usize>,
    },

    /// [`Target::Predicted`](crate::Target::Predicted) where no forward at the inputs
    /// resolves it (a [`TargetSelector`](crate::TargetSelector) used on its own).
    #[error(
        "target: Target::Predicted is resolved from the model's output at the inputs, which an attribution call computes; here nothing does: give the classes (Target::PerExample)"
    )]
    PredictedUnresolved,

    /// A [`Quantity::Function`](crate::Quantity::Function) did not return one value per row
    /// of the model's output.
    #[error(
        "quantity: the function returned a tensor of shape {got:?} for an output of shape {output_shape:?}; it must return one value per row, [{rows}]"
    )]
    QuantityShape {
        /// The shape it returned.
        got: Vec<usize>,
        /// The rows of the output it was given.
        rows: usize,
        /// The output's shape (rows are the examples at several points).
        output_shape: Vec<usize>,
    },

    /// A [`Quantity::Function`](crate::Quantity::Function) panicked on the model's output.
    #[error("quantity: the function panicked on the model's output: {message}")]
    QuantityPanicked {
        /// The panic's message.
        message: String,
    },

    /// A [`Distribution::Points`](crate::Distribution::Points) without points.
    #[error("distribution: Distribution::Points needs at least one point")]
    NoPoints,

    /// A given point without one tensor per input of the model.
    #[error("distribution: point {point} has {got} tensors; the model takes {expected} inputs")]
    PointInputs {
        /// The point (0-based).
        point: usize,
        /// The model's inputs.
        expected: usize,
        /// The point's tensors.
        got: usize,
    },

    /// A given point whose tensor is not shaped like the input it stands for.
    #[error(
        "distribution: point {point}, input {input} has shape {got:?}; it must have the input's shape {expected:?}"
    )]
    PointShape {
        /// The point (0-based).
        point: usize,
        /// The input (0-based).
        input: usize,
        /// The input's shape, `[batch, ...]`.
        expected: Vec<usize>,
        /// The point's shape.
        got: Vec<usize>,
    },

    /// Given points and their weights do not pair up.
    #[error("distribution: {points} points and {weights} weights; give one weight per point")]
    PointWeights {
        /// Points given.
        points: usize,
        /// Weights given.
        weights: usize,
    },

    /// A weight of a distribution that is not a finite number.
    #[error("distribution: weight {index} is {value}; weights must be finite")]
    BadWeight {
        /// The weight's position.
        index: usize,
        /// Its value.
        value: f64,
    },

    /// A distribution of interest that the method does not take.
    #[error(
        "distribution: {method} takes the straight path from the baselines only; Distribution::{distribution} is for InternalInfluence"
    )]
    UnsupportedDistribution {
        /// The method.
        method: &'static str,
        /// The distribution asked for.
        distribution: &'static str,
    },

    /// A setting that the method (or the call's other settings) does not take.
    #[error("{option}: not available for {method}")]
    NotForMethod {
        /// The setting.
        option: &'static str,
        /// The method.
        method: &'static str,
    },

    /// A noise type that is not one of Captum's.
    #[error("nt_type: unknown noise type `{name}`; expected smoothgrad, smoothgrad_sq or vargrad")]
    UnknownNoiseType {
        /// The string given.
        name: String,
    },

    /// A noise tunnel without noise samples.
    #[error("noise_tunnel: at least one noise sample is needed (nt_samples > 0)")]
    NoNoise,

    /// A noise standard deviation that is negative or not finite.
    #[error("noise_tunnel: stdev is {stdev}; it must be a finite number >= 0")]
    BadStdev {
        /// The value given.
        stdev: f64,
    },

    /// A given noise sample not shaped like the inputs.
    #[error(
        "noise_tunnel: noise sample {sample} has shapes {got:?}; it must have the inputs' shapes {expected:?}"
    )]
    NoiseShape {
        /// The sample (0-based).
        sample: usize,
        /// The inputs' shapes.
        expected: Vec<Vec<usize>>,
        /// The sample's shapes.
        got: Vec<Vec<usize>>,
    },

    /// `attribute_to_layer_input` on a [point](crate::Probe::point): a value exposed with
    /// `Probe::point` has an output side only.
    #[error(
        "attribute_to_layer_input: `{name}` is a point (Probe::point), which has no input side; attribute to its output, or to the input of the layer that takes it"
    )]
    PointHasNoInput {
        /// The point's full name.
        name: String,
    },

    /// No input tensor (an empty `Vec` of inputs).
    #[error("inputs: no input tensor given; give at least one")]
    NoInputs,

    /// A watched tensor of a layer whose dim 0 is not one row per example of the forward.
    #[error(
        "layer `{layer}`: a tensor of shape {shape:?} where the forward has {rows} rows; the layer methods need dim 0 to be the batch in every tensor of the layer"
    )]
    LayerBatch {
        /// The layer.
        layer: String,
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The forward's rows (examples × points).
        rows: usize,
    },

    /// The same layer named twice in a list of layers.
    #[error("layers: `{name}` is named twice; name each layer once")]
    RepeatedLayer {
        /// The layer.
        name: String,
    },

    /// A method constructed with an empty list of layers.
    #[error("layers: the list of layers is empty; name at least one")]
    NoLayers,

    /// `run` (one attribution) on a method that explains several layers.
    #[error(
        "{layers} layers are explained: use run_layers() for one attribution per layer (run() gives one layer's)"
    )]
    SeveralLayers {
        /// How many layers.
        layers: usize,
    },

    /// A tolerance that is not a positive finite number.
    #[error("rtol: {rtol} is not a relative tolerance; give a positive finite number (1e-3, say)")]
    BadTolerance {
        /// The value given.
        rtol: f64,
    },

    /// `run_to_tolerance` did not reach the tolerance within its largest number of points.
    #[error(
        "rtol: the relative error estimate is still {estimate:.3e} at {n_steps} points, above {rtol:.1e}; ask for a larger tolerance or set n_steps yourself (a ReLU network's integrand has kinks that slow every quadrature rule)"
    )]
    ToleranceNotReached {
        /// The tolerance asked for.
        rtol: f64,
        /// The points of the last level computed.
        n_steps: usize,
        /// Its error estimate.
        estimate: f64,
    },

    /// [`run_exact`](crate::AttributeCall::run_exact) on a model that is not piecewise linear
    /// in its inputs: an operation with a smooth non-linearity (`float_exp`, `gelu`,
    /// `softmax`, `layer_norm`, `tanh`, `sigmoid`, ...), or a product or quotient of two
    /// values that both depend on the inputs, applied to values that depend on the inputs.
    #[error(
        "run_exact: the model is not piecewise linear in its inputs: operation `{op}` {why}; the exact method covers networks of linear maps, convolutions, ReLU and leaky ReLU, max and average pools, BatchNorm in inference mode, sums and reshapes. Use run_to_tolerance for this model"
    )]
    NotPiecewiseLinear {
        /// The first such operation, by its name in Burn's backend traits.
        op: String,
        /// What makes it non-linear here.
        why: String,
    },

    /// [`run_exact`](crate::AttributeCall::run_exact): an example's path crosses more
    /// activation-pattern boundaries than the cap allows.
    #[error(
        "run_exact: the path of example {example} has more than {max} affine pieces ({pieces} found so far); raise the cap (run_exact_with) or use run_to_tolerance"
    )]
    TooManyPieces {
        /// The example.
        example: usize,
        /// Pieces found when the cap was passed (a lower bound).
        pieces: usize,
        /// The cap.
        max: usize,
    },

    /// `return_convergence_delta` for a method that has none (Captum offers it on
    /// `LayerConductance` and `LayerIntegratedGradients`).
    #[error(
        "return_convergence_delta: {method} has no convergence delta (Captum offers it for LayerConductance and LayerIntegratedGradients)"
    )]
    NoConvergenceDelta {
        /// The method.
        method: &'static str,
    },

    /// A dataset run ([`crate::dataset::DatasetAttribution`]) was cancelled through its flag.
    /// The batches finished before the flag was seen are on disk when an output directory is
    /// set: the same run with the same directory resumes from them.
    #[error(
        "dataset: cancelled after {examples_done} example(s){}; run again with the same output directory to resume",
        total.map(|t| format!(" of {t}")).unwrap_or_default()
    )]
    Cancelled {
        /// Examples whose attribution is complete (and stored, with an output directory).
        examples_done: usize,
        /// The dataset's size, when it was given.
        total: Option<usize>,
    },

    /// A dataset run's output directory could not be read or written.
    #[error("dataset: {path}: {message}")]
    Storage {
        /// The file or directory.
        path: String,
        /// What went wrong.
        message: String,
    },

    /// A dataset run's output directory holds the results of a different run (other settings,
    /// other data, another order or batch size), so resuming from it would mix two runs.
    #[error(
        "dataset: cannot resume from {path}: {reason}; use a new output directory, or delete this one to start over"
    )]
    ResumeMismatch {
        /// The file that disagrees.
        path: String,
        /// How it disagrees.
        reason: String,
    },

    /// A dataset batch's class is not below the run's `num_classes`.
    #[error(
        "dataset: batch {batch}, example {example}: class {class} is out of range for num_classes {num_classes}"
    )]
    ClassOutOfRange {
        /// The batch (0-based, in stream order).
        batch: usize,
        /// The example within the batch.
        example: usize,
        /// The class given.
        class: usize,
        /// The run's number of classes.
        num_classes: usize,
    },

    /// A dataset batch's attribution that does not have one row per example
    /// (`[examples, neurons, ...]` with at least one neuron).
    #[error(
        "dataset: batch {batch}: the attribution has shape {shape:?}; expected {examples} example(s) in dim 0 and at least one neuron in dim 1"
    )]
    AttributionShape {
        /// The batch (0-based, in stream order).
        batch: usize,
        /// Examples in the batch.
        examples: usize,
        /// The attribution's shape.
        shape: Vec<usize>,
    },

    /// A dataset batch's attribution contains NaN or infinite values (a summary of it would
    /// be meaningless).
    #[error("dataset: batch {batch}: the attribution contains NaN or infinite values")]
    NonFiniteAttribution {
        /// The batch (0-based, in stream order).
        batch: usize,
    },

    /// A worker of a dataset run could not start, or its attribution panicked.
    #[error("dataset: {}: {message}", batch.map(|b| format!("batch {b}")).unwrap_or_else(|| "worker".into()))]
    Worker {
        /// The batch whose attribution panicked (none when a worker could not start).
        batch: Option<usize>,
        /// The panic's or the system's message.
        message: String,
    },

    /// A server of Burn's remote backend that is malformed or does not accept connections
    /// (checked before Burn's client connects, which would panic on its own thread).
    #[error(
        "remote server {address:?}: {message}; start one with `influence-server --port PORT` and give ws://host:port"
    )]
    RemoteUnreachable {
        /// The address given.
        address: String,
        /// What went wrong.
        message: String,
    },

    /// A dataset batch whose attribution has a different number of neurons per example than
    /// the batches before it (every batch must be attributed at the same layer).
    #[error(
        "dataset: batch {batch}: the attribution has {got} neuron(s) per example (dim 1 of the layer), the batches before it {expected}; attribute every batch at the same layer"
    )]
    NeuronCount {
        /// The batch (0-based, in stream order).
        batch: usize,
        /// Neurons per example of the earlier batches.
        expected: usize,
        /// Neurons per example of this batch.
        got: usize,
    },
}

impl From<burn::tensor::DataError> for InfluenceError {
    /// A failed conversion of data read back from the device (`TensorData::to_vec`), so that
    /// `?` chains after [`into_data`](crate::AnyTensor::into_data).
    fn from(e: burn::tensor::DataError) -> Self {
        InfluenceError::Read(format!("{e:?}"))
    }
}
