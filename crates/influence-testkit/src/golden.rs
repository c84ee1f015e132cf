//! The golden cases: Captum 0.9.0 reference values (float64) for Internal Influence, and a
//! runner that computes each case with this crate on a backend and compares.
//!
//! Two formats (see `tests/fixtures/golden/README.md`):
//! - one case a file (`internal_influence/*.json`): a sequential model given as a layer list;
//! - a suite file with `cases` (`captum_test_suite.json`): Captum's own test models.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, backend::AutodiffBackend};
use influence_core::{
    Attribution, Baseline, Baselines, InfluenceError, InternalInfluence, LayerActivation,
    LayerConductance, LayerGradientXActivation, LayerIntegratedGradients, Method, NoiseTunnel,
    NoiseType, Target,
};
use serde::Deserialize;
use serde_json::Value;

use crate::captum_models::{
    BasicModelMultiLayer, BasicModelMultiLayerMultiInput, MultiLayerOptions,
};
use crate::sequential::{Data, NamedLayer, Sequential};

/// A baseline in a one-case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineSpec {
    /// `{"scalar": v}`.
    Scalar(f64),
    /// `{"tensor": {shape, data}}`.
    Tensor(Data),
}

/// A target in a one-case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSpec {
    /// `{"index": i}`.
    Index(usize),
    /// `{"per_example": [i, ...]}`.
    PerExample(Vec<usize>),
    /// `{"tuple": [i, j, ...]}`.
    Tuple(Vec<usize>),
    /// `{"per_example_tuple": [[i, j, ...], ...]}`.
    PerExampleTuple(Vec<Vec<usize>>),
}

impl From<&TargetSpec> for Target {
    fn from(t: &TargetSpec) -> Self {
        match t {
            TargetSpec::Index(i) => Target::Index(*i),
            TargetSpec::PerExample(v) => Target::PerExample(v.clone()),
            TargetSpec::Tuple(v) => Target::Tuple(v.clone()),
            TargetSpec::PerExampleTuple(v) => Target::PerExampleTuple(v.clone()),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct ModelSpec {
    layers: Vec<NamedLayer>,
}

#[derive(Debug, Clone, Deserialize)]
struct Tolerance {
    abs: f64,
}

/// A one-case file: a sequential model with seeded random weights.
#[derive(Debug, Clone, Deserialize)]
pub struct SequentialCase {
    name: String,
    /// The method (`siblings/`): `layer_conductance`, `layer_integrated_gradients`,
    /// `layer_gradient_x_activation` or `layer_activation`; absent for Internal Influence.
    #[serde(default)]
    attribution: Option<String>,
    /// The constructor argument of Layer IG and Layer Gradient × Activation.
    #[serde(default)]
    multiply_by_inputs: Option<bool>,
    /// Whether Captum also returned the convergence delta (then in `expected_delta`).
    #[serde(default)]
    return_convergence_delta: bool,
    #[serde(default)]
    expected_delta: Option<Data>,
    model: ModelSpec,
    layer: String,
    attribute_to_layer_input: bool,
    inputs: Data,
    baselines: Option<BaselineSpec>,
    target: Option<TargetSpec>,
    /// `null` for the methods without a path.
    n_steps: Option<usize>,
    method: Option<String>,
    internal_batch_size: Option<usize>,
    expected: Data,
    tolerance: Tolerance,
    /// Captum's `NoiseTunnel` around the method, with the noise it drew (`noise_tunnel/`).
    #[serde(default)]
    noise_tunnel: Option<NoiseTunnelSpec>,
}

/// `noise_tunnel`: Captum's `nt_type` and the noise, `[nt_samples, batch, ...]`.
#[derive(Debug, Clone, Deserialize)]
struct NoiseTunnelSpec {
    nt_type: String,
    noise: Data,
}

impl NoiseTunnelSpec {
    /// The tunnel with the given noise, one sample per noisy copy.
    fn tunnel<B: AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> Result<NoiseTunnel<crate::sequential::Act<B>>, String> {
        let nt_type: NoiseType = self
            .nt_type
            .parse()
            .map_err(|e: InfluenceError| e.to_string())?;
        let shape = self.noise.shape[1..].to_vec();
        let per_sample: usize = shape.iter().product();
        let samples = self
            .noise
            .data
            .chunks(per_sample)
            .map(|chunk| {
                Data {
                    shape: shape.clone(),
                    data: chunk.to_vec(),
                }
                .act::<B>(device)
            })
            .collect();
        Ok(NoiseTunnel::given(nt_type, samples))
    }
}

/// A case of Captum's own test suite.
#[derive(Debug, Clone, Deserialize)]
pub struct SuiteCase {
    name: String,
    model: String,
    #[serde(default)]
    model_options: Value,
    layer: String,
    attribute_to_layer_input: bool,
    /// One `{shape, data}` or a list of them.
    inputs: Value,
    /// `null` or one `{shape, data}`.
    baselines: Option<Data>,
    /// `null` or a list of tensors and numbers.
    additional_forward_args: Option<Vec<Value>>,
    /// An index, or a list read as a tuple index (Captum's `target=(1, 0, 1)`).
    target: Value,
    n_steps: usize,
    method: String,
    internal_batch_size: Option<usize>,
    /// One `{shape, data}` or a list of them (one per layer tensor).
    expected: Value,
}

#[derive(Debug, Clone, Deserialize)]
struct Suite {
    cases: Vec<SuiteCase>,
}

/// Any golden case.
#[derive(Debug, Clone)]
pub enum Case {
    /// From a one-case file.
    Sequential(Box<SequentialCase>),
    /// From Captum's test suite; `captum_test_suite.json` is matched to 1e-4.
    Suite(Box<SuiteCase>, f64),
}

impl Case {
    /// The case's name.
    pub fn name(&self) -> &str {
        match self {
            Case::Sequential(c) => &c.name,
            Case::Suite(c, _) => &c.name,
        }
    }
}

/// The layer list of a one-case file's model (`None` for a suite case).
pub fn model_layers(case: &Case) -> Option<Vec<NamedLayer>> {
    match case {
        Case::Sequential(c) => Some(c.model.layers.clone()),
        Case::Suite(..) => None,
    }
}

/// Tolerance of the Captum suite cases (`golden/README.md`).
pub const SUITE_TOLERANCE: f64 = 1e-4;

/// Loads every case of a JSON file: a one-case file or a suite with `cases`.
///
/// # Errors
/// A message naming the file when it cannot be read or parsed.
pub fn load_file(path: &Path) -> Result<Vec<Case>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let parse_err = |e: serde_json::Error| format!("{}: {e}", path.display());
    if value.get("cases").is_some() {
        let suite: Suite = serde_json::from_value(value).map_err(parse_err)?;
        Ok(suite
            .cases
            .into_iter()
            .map(|c| Case::Suite(Box::new(c), SUITE_TOLERANCE))
            .collect())
    } else {
        let case: SequentialCase = serde_json::from_value(value).map_err(parse_err)?;
        Ok(vec![Case::Sequential(Box::new(case))])
    }
}

/// Loads every `*.json` case under `dir` (recursively), in path order.
///
/// # Errors
/// A message naming the file or directory that failed.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, String> {
    let mut files = Vec::new();
    collect_json(dir, &mut files)?;
    files.sort();
    let mut cases = Vec::new();
    for f in files {
        cases.extend(load_file(&f)?);
    }
    Ok(cases)
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// The outcome of one case on one backend.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The case's name.
    pub name: String,
    /// Largest `|actual − expected|` over all values (infinite on a shape mismatch).
    pub max_abs_err: f64,
    /// The case's tolerance.
    pub tolerance: f64,
    /// Why the case could not run, if it could not.
    pub error: Option<String>,
}

impl Outcome {
    /// Ran, and every value is within the tolerance.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.max_abs_err <= self.tolerance
    }
}

/// Runs one case on backend `B` and compares with Captum's values.
pub fn run_case<B: AutodiffBackend>(case: &Case, device: &B::Device) -> Outcome {
    let (result, expected, tolerance) = match case {
        Case::Sequential(c) => {
            let mut expected = vec![c.expected.clone()];
            expected.extend(c.expected_delta.clone());
            (run_sequential::<B>(c, device), expected, c.tolerance.abs)
        }
        Case::Suite(c, tol) => (
            run_suite::<B>(c, device).map(Attribution::into_tensors),
            tensors(&c.expected),
            *tol,
        ),
    };
    let mut outcome = Outcome {
        name: case.name().to_owned(),
        max_abs_err: f64::INFINITY,
        tolerance,
        error: None,
    };
    match result.and_then(|a| compare(a, &expected)) {
        Ok(err) => outcome.max_abs_err = err,
        Err(e) => outcome.error = Some(e),
    }
    outcome
}

/// Largest absolute difference, or an error on a count or shape mismatch.
fn compare<B: burn::tensor::backend::Backend>(
    actual: Vec<influence_core::AnyTensor<B>>,
    expected: &[Data],
) -> Result<f64, String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "{} attribution tensors, expected {}",
            actual.len(),
            expected.len()
        ));
    }
    let mut worst: f64 = 0.0;
    for (a, e) in actual.into_iter().zip(expected) {
        if a.shape() != e.shape.as_slice() {
            return Err(format!("shape {:?}, expected {:?}", a.shape(), e.shape));
        }
        let values = a.to_vec().map_err(|e| e.to_string())?;
        for (x, y) in values.iter().zip(&e.data) {
            let d = (*x as f64 - y).abs();
            // NaN counts as an infinite error.
            worst = if d.is_nan() {
                f64::INFINITY
            } else {
                worst.max(d)
            };
        }
    }
    Ok(worst)
}

fn tensors(v: &Value) -> Vec<Data> {
    match v {
        Value::Array(items) => items
            .iter()
            .map(|i| serde_json::from_value(i.clone()).expect("tensor {shape, data}"))
            .collect(),
        other => vec![serde_json::from_value(other.clone()).expect("tensor {shape, data}")],
    }
}

fn method(name: &str) -> Result<Method, String> {
    name.parse().map_err(|e: InfluenceError| e.to_string())
}

/// A one-case file's `baselines`, as the call takes them (zeros when absent).
fn baselines_of<B: AutodiffBackend>(c: &SequentialCase, device: &B::Device) -> Baselines<B> {
    match &c.baselines {
        None => Baselines::zeros(),
        Some(BaselineSpec::Scalar(v)) => Baseline::Scalar(*v).into(),
        Some(BaselineSpec::Tensor(t)) => Baseline::Tensor(t.act::<B>(device).into()).into(),
    }
}

/// The attribution of a one-case file, then the convergence delta when the case has one
/// (as a `[batch]` tensor).
fn run_sequential<B: AutodiffBackend>(
    c: &SequentialCase,
    device: &B::Device,
) -> Result<Vec<influence_core::AnyTensor<B::InnerBackend>>, String> {
    let model = Sequential::<B>::from_specs(&c.model.layers, device);
    let baselines = baselines_of::<B>(c, device);
    let target = c.target.as_ref().map(Target::from).unwrap_or_default();
    let layer = c.layer.as_str();
    let err = |e: InfluenceError| e.to_string();
    let x = || c.inputs.act::<B>(device);
    let multiply = c.multiply_by_inputs.unwrap_or(true);
    macro_rules! path {
        ($call:expr) => {{
            let mut call = $call
                .baselines(baselines)
                .target(target)
                .n_steps(c.n_steps.ok_or("n_steps")?)
                .method(method(c.method.as_deref().ok_or("method")?)?)
                .attribute_to_layer_input(c.attribute_to_layer_input);
            if let Some(m) = c.internal_batch_size {
                call = call.internal_batch_size(m);
            }
            if let Some(nt) = &c.noise_tunnel {
                call = call.noise_tunnel(nt.tunnel::<B>(device)?);
            }
            if c.return_convergence_delta {
                let (attr, delta) = call.run_with_convergence_delta().map_err(err)?;
                let mut out = attr.into_tensors();
                out.push(delta.into());
                out
            } else {
                call.run().map_err(err)?.into_tensors()
            }
        }};
    }
    Ok(match c.attribution.as_deref() {
        None | Some("internal_influence") => {
            let ii = InternalInfluence::new(&model, layer).map_err(err)?;
            path!(ii.attribute(x()))
        }
        Some("layer_conductance") => {
            let lc = LayerConductance::new(&model, layer).map_err(err)?;
            path!(lc.attribute(x()))
        }
        Some("layer_integrated_gradients") => {
            let lig = LayerIntegratedGradients::new(&model, layer)
                .map_err(err)?
                .multiply_by_inputs(multiply);
            path!(lig.attribute(x()))
        }
        Some("layer_gradient_x_activation") => LayerGradientXActivation::new(&model, layer)
            .map_err(err)?
            .multiply_by_inputs(multiply)
            .attribute(x())
            .target(target)
            .attribute_to_layer_input(c.attribute_to_layer_input)
            .run()
            .map_err(err)?
            .into_tensors(),
        Some("layer_activation") => LayerActivation::new(&model, layer)
            .map_err(err)?
            .attribute(x())
            .attribute_to_layer_input(c.attribute_to_layer_input)
            .run()
            .map_err(err)?
            .into_tensors(),
        Some(other) => return Err(format!("unknown attribution method `{other}`")),
    })
}

fn suite_target(v: &Value) -> Target {
    match v {
        Value::Null => Target::None,
        Value::Number(n) => Target::Index(n.as_u64().expect("index") as usize),
        Value::Array(items) => Target::Tuple(
            items
                .iter()
                .map(|i| i.as_u64().expect("index") as usize)
                .collect(),
        ),
        other => panic!("unsupported target {other}"),
    }
}

fn run_suite<B: AutodiffBackend>(
    c: &SuiteCase,
    device: &B::Device,
) -> Result<Attribution<B::InnerBackend>, String> {
    let inputs: Vec<Tensor<B, 2>> = tensors(&c.inputs)
        .iter()
        .map(|d| d.tensor(device))
        .collect();
    let baselines = match &c.baselines {
        None => Baselines::zeros(),
        Some(d) => Baselines::from(d.tensor::<B, 2>(device)),
    };
    let target = suite_target(&c.target);
    let method = method(&c.method)?;
    let args = c.additional_forward_args.clone().unwrap_or_default();
    macro_rules! configure {
        ($call:expr) => {{
            let mut call = $call
                .baselines(baselines)
                .target(target)
                .n_steps(c.n_steps)
                .method(method)
                .attribute_to_layer_input(c.attribute_to_layer_input);
            if let Some(m) = c.internal_batch_size {
                call = call.internal_batch_size(m);
            }
            call.run().map_err(|e| e.to_string())
        }};
    }
    match c.model.as_str() {
        "BasicModel_MultiLayer" | "BasicModel_MultiLayer(multidim_output=True)" => {
            let options = MultiLayerOptions {
                multi_input_module: c.model_options["multi_input_module"] == Value::Bool(true),
                multidim_output: c.model.contains("multidim_output=True"),
            };
            let model = BasicModelMultiLayer::<B>::new(options, device);
            let ii = InternalInfluence::new(&model, c.layer.as_str()).map_err(|e| e.to_string())?;
            let x = inputs.into_iter().next().ok_or("no input")?;
            configure!(ii.attribute(x))
        }
        "BasicModel_MultiLayer_MultiInput" => {
            let model = BasicModelMultiLayerMultiInput::<B>::new(device);
            let ii = InternalInfluence::new(&model, c.layer.as_str()).map_err(|e| e.to_string())?;
            // Additional arguments: (scale) or (x3, scale).
            let (x3, scale) = match args.as_slice() {
                [scale] => (None, scale.as_f64().ok_or("scale")?),
                [x3, scale] => {
                    let d: Data = serde_json::from_value(x3.clone()).map_err(|e| e.to_string())?;
                    (Some(d.tensor(device)), scale.as_f64().ok_or("scale")?)
                }
                other => return Err(format!("unexpected additional_forward_args {other:?}")),
            };
            configure!(ii.attribute(inputs).additional_forward_args((x3, scale)))
        }
        other => Err(format!("unknown model {other}")),
    }
}

/// Runs every case on backend `B`; prints `golden: N passed, M failed (BACKEND)` and one
/// line per failing case with its largest error (and, with `INFLUENCE_GOLDEN_TIMES` set,
/// each case's time). Returns the outcomes.
pub fn run_all<B: AutodiffBackend>(
    cases: &[Case],
    device: &B::Device,
    backend: &str,
) -> Vec<Outcome> {
    let times = std::env::var_os("INFLUENCE_GOLDEN_TIMES").is_some();
    let outcomes: Vec<Outcome> = cases
        .iter()
        .map(|c| {
            let start = std::time::Instant::now();
            let outcome = run_case::<B>(c, device);
            if times {
                println!(
                    "  {backend} {:.2}s {}",
                    start.elapsed().as_secs_f64(),
                    c.name()
                );
            }
            outcome
        })
        .collect();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.passed()).collect();
    println!(
        "golden: {} passed, {} failed ({backend})",
        outcomes.len() - failed.len(),
        failed.len()
    );
    for o in failed {
        match &o.error {
            Some(e) => println!("  FAILED {}: error: {e}", o.name),
            None => println!(
                "  FAILED {}: largest error {:.3e} > tolerance {:.3e}",
                o.name, o.max_abs_err, o.tolerance
            ),
        }
    }
    outcomes
}

/// A one-case file's exact Internal Influence ([`AttributeCall::run_exact`], `tests/exact.rs`):
/// the attribution, the pieces and breakpoints of each example's path. `n_steps`, `method` and a noise
/// tunnel are not used; `internal_batch_size` is, as the bound of every pass's rows.
///
/// # Errors
/// The call's error; [`InfluenceError::NoInputs`] for a suite case.
///
/// [`AttributeCall::run_exact`]: influence_core::AttributeCall::run_exact
pub fn run_exact<B: AutodiffBackend>(
    case: &Case,
    device: &B::Device,
    internal_batch_size: Option<usize>,
) -> Result<influence_core::ExactAttribution<B::InnerBackend>, InfluenceError> {
    run_exact_explaining::<B>(case, device, internal_batch_size, None)
}

/// [`run_exact`] explaining `quantity` instead of the case's target.
///
/// # Errors
/// As [`run_exact`].
pub fn run_exact_explaining<B: AutodiffBackend>(
    case: &Case,
    device: &B::Device,
    internal_batch_size: Option<usize>,
    quantity: Option<influence_core::Quantity<influence_core::Eval<B>>>,
) -> Result<influence_core::ExactAttribution<B::InnerBackend>, InfluenceError> {
    run_exact_method::<B>(
        case,
        device,
        internal_batch_size,
        "internal_influence",
        quantity,
    )
}

/// [`run_exact_explaining`] with another layer method: `"internal_influence"`,
/// `"layer_conductance"` or `"layer_integrated_gradients"` (with `multiply_by_inputs`, its
/// default).
///
/// # Errors
/// As [`run_exact`]; [`InfluenceError::NotForMethod`] for another method name.
pub fn run_exact_method<B: AutodiffBackend>(
    case: &Case,
    device: &B::Device,
    internal_batch_size: Option<usize>,
    method: &str,
    quantity: Option<influence_core::Quantity<influence_core::Eval<B>>>,
) -> Result<influence_core::ExactAttribution<B::InnerBackend>, InfluenceError> {
    let Case::Sequential(c) = case else {
        return Err(InfluenceError::NoInputs);
    };
    let model = Sequential::<B>::from_specs(&c.model.layers, device);
    let baselines = baselines_of::<B>(c, device);
    let target = c.target.as_ref().map(Target::from).unwrap_or_default();
    let x = c.inputs.act::<B>(device);
    let layer = c.layer.as_str();
    let mut call = match method {
        "internal_influence" => InternalInfluence::new(&model, layer)?.attribute(x),
        "layer_conductance" => LayerConductance::new(&model, layer)?.attribute(x),
        "layer_integrated_gradients" => LayerIntegratedGradients::new(&model, layer)?.attribute(x),
        _ => {
            return Err(InfluenceError::NotForMethod {
                option: "run_exact",
                method: "an unknown method",
            });
        }
    }
    .baselines(baselines)
    .target(target)
    .attribute_to_layer_input(c.attribute_to_layer_input);
    if let Some(m) = internal_batch_size {
        call = call.internal_batch_size(m);
    }
    if let Some(q) = quantity {
        call = call.quantity(q);
    }
    call.run_exact()
}

/// The largest absolute difference between `actual` and a one-case file's `expected`, and
/// its tolerance (`tolerance.abs`).
///
/// # Errors
/// On a count or shape mismatch; for a suite case.
pub fn compare_expected<B: burn::tensor::backend::Backend>(
    case: &Case,
    actual: Vec<influence_core::AnyTensor<B>>,
) -> Result<(f64, f64), String> {
    let Case::Sequential(c) = case else {
        return Err("a suite case".to_string());
    };
    Ok((
        compare(actual, std::slice::from_ref(&c.expected))?,
        c.tolerance.abs,
    ))
}
