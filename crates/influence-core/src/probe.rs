//! How a model exposes its layers: the [`LayerProbe`] trait and the [`Probe`] it threads
//! through its forward pass.
//!
//! Burn has no forward hooks. Instead a model routes each layer it wants to expose through
//! [`Probe::layer`], giving the layer's name, its input and the closure that runs it:
//!
//! ```ignore
//! let x = probe.layer("conv2", x, |x| self.conv2.forward(x));
//! ```
//!
//! When nobody watches the layer this is just `self.conv2.forward(x)`. When an attribution
//! watches the layer's output (or input), the probe replaces that tensor by a fresh autodiff
//! leaf — `h.detach().require_grad()` — and the forward continues with the leaf. The gradient
//! of the target with respect to the leaf is then exactly the gradient with respect to the
//! activation as used downstream of the layer (what Captum's forward hook, or forward
//! pre-hook for `attribute_to_layer_input`, gives), and the backward pass stops at the layer:
//! nothing upstream, no parameter, gets a gradient.

use burn::tensor::{Tensor, backend::Backend};

use crate::{AnyTensor, ForwardArgs, TensorGroup, TensorMap};

/// A model that exposes named layers to attribution methods.
///
/// Implement it once, generically over `B: Backend`; the same code then serves plain
/// inference (with [`Probe::disabled`]) and every attribution method on every backend.
///
/// # Example
/// ```ignore
/// impl<B: Backend> Cnn<B> {
///     pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
///         self.forward_with(x, &mut Probe::disabled())
///     }
///     fn forward_with(&self, x: Tensor<B, 4>, probe: &mut Probe<B>) -> Tensor<B, 2> {
///         let x = probe.layer("conv1", x, |x| relu(self.conv1.forward(x)));
///         let x = probe.layer("conv2", x, |x| relu(self.conv2.forward(x)));
///         self.fc.forward(x.flatten(1, 3))
///     }
/// }
///
/// impl<B: Backend> LayerProbe<B> for Cnn<B> {
///     type Inputs = Tensor<B, 4>;
///     type Args = ();
///     fn layer_names(&self) -> Vec<String> {
///         vec!["conv1".into(), "conv2".into()]
///     }
///     fn forward_probed(&self, x: Tensor<B, 4>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
///         self.forward_with(x, probe).into()
///     }
/// }
/// ```
pub trait LayerProbe<B: Backend> {
    /// The attributed inputs: one float tensor (`Tensor<B, D>`) or several (a tuple or a
    /// `Vec`); dim 0 is the batch in each.
    type Inputs: TensorGroup<B> + Clone;

    /// The forward's other arguments (Captum's `additional_forward_args`), `()` for none.
    type Args: ForwardArgs<B>;

    /// The names of the layers this model routes through [`Probe::layer`].
    fn layer_names(&self) -> Vec<String>;

    /// Why `name` is not one of [`layer_names`](Self::layer_names), when the model can say
    /// more than the list of its layers: a module the exporter fused away, the closest names.
    /// An attribution asked for such a name returns
    /// [`InfluenceError::LayerUnavailable`](crate::InfluenceError::LayerUnavailable) with this
    /// text instead of [`InfluenceError::UnknownLayer`](crate::InfluenceError::UnknownLayer)
    /// and its full list. `None` by default.
    fn layer_hint(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }

    /// The forward pass, calling `probe` at every exposed layer.
    ///
    /// # Shapes
    /// - output: `[batch, ...]`, one row per example of the inputs.
    fn forward_probed(
        &self,
        inputs: Self::Inputs,
        args: &Self::Args,
        probe: &mut Probe<B>,
    ) -> AnyTensor<B>;
}

/// Which tensors of a layer are watched: what it gives (Captum's default) or what it takes
/// (`attribute_to_layer_input = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayerSide {
    /// The layer's output, as used downstream.
    Output,
    /// The layer's input, as used by the layer.
    Input,
}

impl LayerSide {
    /// `Input` when `attribute_to_layer_input`, else `Output`.
    pub fn from_attribute_to_layer_input(attribute_to_layer_input: bool) -> Self {
        if attribute_to_layer_input {
            Self::Input
        } else {
            Self::Output
        }
    }

    /// `"input"` or `"output"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Input => "input",
        }
    }
}

/// One watched layer: its name, which side, and what the forward recorded there.
#[derive(Debug)]
pub struct Watch<B: Backend> {
    /// The layer's name.
    pub layer: String,
    /// Input or output.
    pub side: LayerSide,
    /// The autodiff leaves put in place of the layer's tensors, as `[batch, features]`
    /// views with their full shapes; their values are the activations (or the replacements
    /// of a [replacing](Probe::replacing) probe), or with several watched layers leaves of
    /// zeros added to the activations. Empty when the probe only [observes](Probe::observing)
    /// or [captures](Probe::capturing).
    pub leaves: Vec<AnyTensor<B>>,
    /// The full shape of each of the layer's tensors, `[batch, ...]`, in order.
    pub shapes: Vec<Vec<usize>>,
    /// How many times the forward reached the layer.
    pub hits: usize,
    /// The layer's tensors as the forward continues with them, `[batch, features]` views with
    /// their full shapes: the activations (or the replacements). Filled by every probe that
    /// watches or captures.
    pub values: Vec<AnyTensor<B>>,
    /// What a [replacing](Probe::replacing) probe puts in place of the layer's tensors,
    /// `[rows, features]` each.
    replacements: Option<Vec<AnyTensor<B>>>,
    /// A replacement whose element count differs from the tensor it replaces: (expected
    /// shape, replacement shape).
    pub(crate) mismatch: Option<(Vec<usize>, Vec<usize>)>,
    /// The watch is the input side of a [point](Probe::point), which has none.
    pub(crate) point_input: bool,
}

/// What a probe does at a watched layer.
#[derive(Debug)]
enum Mode {
    /// Puts autodiff leaves in place of the watched tensors (an attribution's forward).
    Leaves,
    /// Only counts the hits and records the shapes: the forward runs unchanged and records no
    /// autodiff graph (a validation forward).
    Observe,
    /// Also keeps the watched tensors' values; the forward runs unchanged.
    Capture,
    /// Puts the watch's replacements in place of the watched tensors without making them
    /// autodiff leaves (a forward that records no graph: the exact method's traced forwards
    /// on a path in layer space).
    Substitute,
    /// Records the name of every layer reached, and changes nothing.
    Record(Vec<String>),
}

/// What a model's forward calls at each exposed layer. See the [module docs](self).
#[derive(Debug)]
pub struct Probe<B: Backend> {
    watches: Vec<Watch<B>>,
    /// Several watched layers: leaves are added to the activations instead of replacing them,
    /// so that gradients flow through every watched layer to the ones before it.
    joint: bool,
    mode: Mode,
    /// The dotted path of the enclosing [`scope`](Probe::scope)s, `""` at the top.
    prefix: String,
    /// Full names of layers whose input [`input_of`](Probe::input_of) exposed, not yet run.
    inputs_taken: Vec<String>,
}

impl<B: Backend> Default for Probe<B> {
    fn default() -> Self {
        Self::disabled()
    }
}

impl<B: Backend> Probe<B> {
    /// A probe that watches nothing: the forward runs unchanged.
    pub fn disabled() -> Self {
        Self::with_mode(Vec::<(String, LayerSide)>::new(), Mode::Leaves)
    }

    /// A probe that watches the given layers (several layers in one pass are allowed),
    /// putting an autodiff leaf in place of each watched tensor.
    ///
    /// With one layer, the leaf replaces the layer's tensor (`h.detach().require_grad()`): the
    /// backward pass stops there. With several, a leaf of zeros is added to each
    /// (`h + 0`), so that the graph runs through every watched layer and the gradient with
    /// respect to an earlier layer counts the paths through the later ones, as in separate
    /// calls; the backward pass then stops at the earliest watched layer.
    pub fn watching<S: Into<String>>(layers: impl IntoIterator<Item = (S, LayerSide)>) -> Self {
        let mut probe = Self::with_mode(layers, Mode::Leaves);
        probe.joint = probe.watches.len() > 1;
        probe
    }

    /// A probe that only counts how often the forward reaches the given layers and records
    /// their shapes; the forward runs unchanged. Attribution methods validate a call with it
    /// before any forward that records an autodiff graph.
    pub fn observing<S: Into<String>>(layers: impl IntoIterator<Item = (S, LayerSide)>) -> Self {
        Self::with_mode(layers, Mode::Observe)
    }

    /// A probe that keeps the values of the watched tensors (in [`Watch::values`]) and
    /// changes nothing: Captum's `_forward_layer_eval`.
    pub fn capturing<S: Into<String>>(layers: impl IntoIterator<Item = (S, LayerSide)>) -> Self {
        Self::with_mode(layers, Mode::Capture)
    }

    /// A probe that puts autodiff leaves holding the given values in place of the watched
    /// tensors: the forward continues from `replacements[i]` at layer `i` instead of from what
    /// the layer computed (Captum's forward hook that returns a new output, as in
    /// `LayerIntegratedGradients`). Each replacement is `[rows, features]`, with as many
    /// elements as the tensor it replaces.
    pub fn replacing<S: Into<String>>(
        layers: impl IntoIterator<Item = ((S, LayerSide), Vec<AnyTensor<B>>)>,
    ) -> Self {
        let (layers, replacements): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
        let mut probe = Self::with_mode(layers, Mode::Leaves);
        for (w, r) in probe.watches.iter_mut().zip(replacements) {
            w.replacements = Some(r);
        }
        probe
    }

    /// [`replacing`](Self::replacing) without autodiff leaves: the replacements go in as
    /// they are, and the forward records no graph for them.
    pub(crate) fn substituting<S: Into<String>>(
        layers: impl IntoIterator<Item = ((S, LayerSide), Vec<AnyTensor<B>>)>,
    ) -> Self {
        let (layers, replacements): (Vec<_>, Vec<_>) = layers.into_iter().unzip();
        let mut probe = Self::with_mode(layers, Mode::Substitute);
        for (w, r) in probe.watches.iter_mut().zip(replacements) {
            w.replacements = Some(r);
        }
        probe
    }

    /// A probe that records the full name of every layer the forward reaches
    /// ([`Probe::layer`] and [`Probe::point`]), in order, and changes nothing: compare it
    /// with [`LayerProbe::layer_names`] (see [`check_layer_names`](crate::check_layer_names)).
    pub fn recording() -> Self {
        Self::with_mode(Vec::<(String, LayerSide)>::new(), Mode::Record(Vec::new()))
    }

    fn with_mode<S: Into<String>>(
        layers: impl IntoIterator<Item = (S, LayerSide)>,
        mode: Mode,
    ) -> Self {
        Self {
            watches: layers
                .into_iter()
                .map(|(layer, side)| Watch {
                    layer: layer.into(),
                    side,
                    leaves: Vec::new(),
                    shapes: Vec::new(),
                    hits: 0,
                    values: Vec::new(),
                    replacements: None,
                    mismatch: None,
                    point_input: false,
                })
                .collect(),
            mode,
            prefix: String::new(),
            inputs_taken: Vec::new(),
            joint: false,
        }
    }

    /// Runs `f` with layer names prefixed by `name.`, the way PyTorch names the layers of a
    /// submodule (`model.linear1`). Scopes nest.
    ///
    /// ```ignore
    /// let y = probe.scope("encoder", |probe| self.encoder.forward_with(x, probe));
    /// ```
    pub fn scope<T>(&mut self, name: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let len = self.prefix.len();
        if len > 0 {
            self.prefix.push('.');
        }
        self.prefix.push_str(name);
        let out = f(self);
        self.prefix.truncate(len);
        out
    }

    /// Runs one exposed layer: `f(input)`, with the input or the output replaced by
    /// autodiff leaves when the layer is watched.
    ///
    /// `input` and the result may each be one tensor of any rank or several
    /// (see [`TensorGroup`]).
    pub fn layer<I, O>(&mut self, name: &str, input: I, f: impl FnOnce(I) -> O) -> O
    where
        I: TensorGroup<B>,
        O: TensorGroup<B>,
    {
        self.record(name);
        let input = self.tap_input(name, input);
        let output = f(input);
        self.tap(name, LayerSide::Output, output)
    }

    /// The full name of `name` in the current scope.
    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Taps the input side of `name`, unless [`input_of`](Self::input_of) already did.
    fn tap_input<T: TensorGroup<B>>(&mut self, name: &str, input: T) -> T {
        if !self.inputs_taken.is_empty() {
            let prefix = self.prefix.as_str();
            if let Some(k) = self
                .inputs_taken
                .iter()
                .position(|full| full_name_is(full, prefix, name))
            {
                self.inputs_taken.swap_remove(k);
                return input;
            }
        }
        self.tap(name, LayerSide::Input, input)
    }

    /// Exposes `value` as the input of the layers `names` (called later in this scope, each
    /// taking this value), before any of its uses: when the input side of one of them is
    /// watched (`attribute_to_layer_input = true`), `value` is replaced here, so the gradient
    /// covers every later use of it, not only the path through that layer. Their own
    /// [`layer`](Self::layer) calls then leave their input as it is.
    ///
    /// This is what Captum computes: its pre-hook takes the gradient with respect to the
    /// tensor the module receives, through every use of that tensor. In a residual block the
    /// block's input feeds both `conv1` and the shortcut, so Captum's attribution to
    /// `conv1`'s input is the gradient through both:
    ///
    /// ```ignore
    /// let x = probe.input_of(&["conv1", "downsample"], x);
    /// let out = probe.layer("conv1", x.clone(), |x| self.conv1.forward(x));
    /// // ...
    /// let identity = probe.layer("downsample", x, |x| self.downsample.forward(x));
    /// ```
    ///
    /// Without it, the input side of `conv1` is the gradient through `conv1` alone.
    pub fn input_of<T: TensorGroup<B>>(&mut self, names: &[&str], value: T) -> T {
        let mut value = value;
        for name in names {
            let full = self.full_name(name);
            value = self.tap(name, LayerSide::Input, value);
            self.inputs_taken.push(full);
        }
        value
    }

    /// Runs one exposed layer that contains other exposed layers: `f(probe, input)`, with
    /// the layers inside named `name.<inner>` (as [`scope`](Self::scope) names them), and
    /// the layer's own input and output watched as [`layer`](Self::layer) watches them.
    ///
    /// This is how a model mirrors PyTorch's nested module names, where a block and the
    /// modules inside it are both layers: torchvision's ResNet exposes `layer3` (a
    /// `Sequential`) and `layer3.0.conv1` inside it.
    ///
    /// ```ignore
    /// let x = probe.scoped_layer("layer3", x, |probe, x| {
    ///     let x = probe.scope("0", |probe| self.layer3[0].forward_with(x, probe));
    ///     probe.scope("1", |probe| self.layer3[1].forward_with(x, probe))
    /// });
    /// ```
    ///
    /// Side `Input` (`attribute_to_layer_input = true`) is the tensor `f` receives; side
    /// `Output` is what `f` returns, as every later use sees it.
    pub fn scoped_layer<I, O>(
        &mut self,
        name: &str,
        input: I,
        f: impl FnOnce(&mut Self, I) -> O,
    ) -> O
    where
        I: TensorGroup<B>,
        O: TensorGroup<B>,
    {
        self.record(name);
        let input = self.tap_input(name, input);
        let output = self.scope(name, |probe| f(probe, input));
        self.tap(name, LayerSide::Output, output)
    }

    /// Exposes a value that has no module of its own (say the sum of a residual branch) as
    /// a layer named `name`: its output is the value as every later use sees it.
    ///
    /// A point has no input side (PyTorch has no pre-hook for a value that is not a module's
    /// input): an attribution to its input (`attribute_to_layer_input = true`) is
    /// [`InfluenceError::PointHasNoInput`](crate::InfluenceError::PointHasNoInput), not the output's attribution under another name.
    pub fn point<T: TensorGroup<B>>(&mut self, name: &str, value: T) -> T {
        self.record(name);
        let prefix = self.prefix.as_str();
        for watch in self
            .watches
            .iter_mut()
            .filter(|w| w.side == LayerSide::Input && full_name_is(&w.layer, prefix, name))
        {
            watch.hits += 1;
            watch.point_input = true;
        }
        self.tap(name, LayerSide::Output, value)
    }

    /// Taps one side of a layer whose tensors the caller computes itself, as a graph
    /// interpreter does (`influence-onnx`): `value` is the layer's output (or, for
    /// [`LayerSide::Input`], its input) as every later use sees it, and comes back replaced
    /// when that side is watched. An output tap also records the layer for a
    /// [recording](Self::recording) probe.
    ///
    /// This is [`layer`](Self::layer) split in its two taps, for a caller that cannot nest
    /// its evaluation in a closure.
    pub fn tap_side<T: TensorGroup<B>>(&mut self, name: &str, side: LayerSide, value: T) -> T {
        if side == LayerSide::Output {
            self.record(name);
        }
        self.tap(name, side, value)
    }

    /// The layers this probe watches, each with its side, in the order given (full names).
    pub fn watched(&self) -> impl Iterator<Item = (&str, LayerSide)> + '_ {
        self.watches.iter().map(|w| (w.layer.as_str(), w.side))
    }

    fn record(&mut self, name: &str) {
        if matches!(self.mode, Mode::Record(_)) {
            let full = self.full_name(name);
            if let Mode::Record(names) = &mut self.mode {
                names.push(full);
            }
        }
    }

    fn tap<T: TensorGroup<B>>(&mut self, name: &str, side: LayerSide, value: T) -> T {
        let prefix = self.prefix.as_str();
        match self
            .watches
            .iter_mut()
            .find(|w| w.side == side && full_name_is(&w.layer, prefix, name))
        {
            None => value,
            Some(watch) => {
                watch.hits += 1;
                watch.leaves.clear();
                watch.values.clear();
                watch.shapes.clear();
                match self.mode {
                    Mode::Leaves => value.map_tensors(&mut MakeLeaves {
                        watch,
                        next: 0,
                        joint: self.joint,
                    }),
                    Mode::Capture => value.map_tensors(&mut Keep(watch)),
                    Mode::Substitute => value.map_tensors(&mut Substitute { watch, next: 0 }),
                    _ => value.map_tensors(&mut Shapes(&mut watch.shapes)),
                }
            }
        }
    }

    /// What the forward recorded, one entry per watched layer, in the order given to
    /// [`watching`](Self::watching).
    pub fn into_watches(self) -> Vec<Watch<B>> {
        self.watches
    }

    /// The layers a [`recording`](Self::recording) probe saw, in the order the forward
    /// reached them (a layer reached twice is listed twice); empty for other probes.
    pub fn into_recorded(self) -> Vec<String> {
        match self.mode {
            Mode::Record(names) => names,
            _ => Vec::new(),
        }
    }
}

/// Whether `full` is `prefix.name` (or `name` when `prefix` is empty), without allocating.
fn full_name_is(full: &str, prefix: &str, name: &str) -> bool {
    if prefix.is_empty() {
        return full == name;
    }
    full.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|rest| rest == name)
}

/// Replaces each tensor by a leaf that requires a gradient (holding the tensor's values, or
/// the watch's replacement), or with `joint` adds a leaf of zeros to it, recording the leaf.
struct MakeLeaves<'a, B: Backend> {
    watch: &'a mut Watch<B>,
    next: usize,
    joint: bool,
}

impl<B: Backend> TensorMap<B> for MakeLeaves<'_, B> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        let shape = tensor.dims();
        // The leaf is the [batch, features] view; the forward continues with it reshaped
        // back, so its gradient is the gradient of the activation as used downstream.
        if self.joint {
            let value = AnyTensor::from(tensor.clone());
            let zeros = Tensor::<B, 2>::zeros(value.flat().dims(), &value.flat().device());
            let leaf = zeros.require_grad();
            self.watch.shapes.push(shape.to_vec());
            self.watch
                .leaves
                .push(AnyTensor::from_flat(leaf.clone(), shape.to_vec()));
            self.watch.values.push(value);
            return tensor + leaf.reshape(shape);
        }
        let leaf = AnyTensor::from(tensor.detach());
        let mut flat = leaf.into_flat();
        let k = self.next;
        self.next += 1;
        if let Some(r) = self.watch.replacements.as_ref().and_then(|r| r.get(k)) {
            let r = r.flat().clone();
            if r.dims() == flat.dims() {
                flat = r.detach();
            } else {
                // Reported by the caller; the forward goes on with the layer's own values.
                self.watch.mismatch = Some((shape.to_vec(), r.dims().to_vec()));
            }
        }
        let flat = flat.require_grad();
        self.watch.shapes.push(shape.to_vec());
        let leaf = AnyTensor::from_flat(flat.clone(), shape.to_vec());
        self.watch.values.push(leaf.clone());
        self.watch.leaves.push(leaf);
        flat.reshape(shape)
    }
}

/// Puts the watch's replacement in place of each tensor (its shape), keeping the value the
/// forward continues with; a replacement of another element count is recorded as the
/// mismatch, and the forward goes on with the layer's own values.
struct Substitute<'a, B: Backend> {
    watch: &'a mut Watch<B>,
    next: usize,
}

impl<B: Backend> TensorMap<B> for Substitute<'_, B> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        let shape = tensor.dims();
        let k = self.next;
        self.next += 1;
        self.watch.shapes.push(shape.to_vec());
        let own = AnyTensor::from(tensor.clone());
        let value = match self.watch.replacements.as_ref().and_then(|r| r.get(k)) {
            Some(r) if r.flat().dims() == own.flat().dims() => {
                AnyTensor::from_flat(r.flat().clone(), shape.to_vec())
            }
            Some(r) => {
                self.watch.mismatch = Some((shape.to_vec(), r.flat().dims().to_vec()));
                own
            }
            None => own,
        };
        let out = value.flat().clone().reshape(shape);
        self.watch.values.push(value);
        out
    }
}

/// Keeps each tensor's value and shape, and passes it on unchanged.
struct Keep<'a, B: Backend>(&'a mut Watch<B>);

impl<B: Backend> TensorMap<B> for Keep<'_, B> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        self.0.shapes.push(tensor.dims().to_vec());
        self.0.values.push(AnyTensor::from(tensor.clone()));
        tensor
    }
}

/// Records each tensor's shape and passes it on unchanged.
struct Shapes<'a>(&'a mut Vec<Vec<usize>>);

impl<B: Backend> TensorMap<B> for Shapes<'_> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        self.0.push(tensor.dims().to_vec());
        tensor
    }
}
