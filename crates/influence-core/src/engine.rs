//! One validated attribution call and its passes, shared by the layer methods: a
//! validation forward, then one forward/backward pass per chunk of quadrature steps, then one
//! read from the device for the checks that need values.
//!
//! 1. **Validation forward** (no autodiff graph): the inputs at two points of the path, the
//!    first quadrature point `α_0` and the input itself (`α = 1`). It checks that the forward
//!    runs at all (a panic inside the model, say from a shape that does not fit, becomes
//!    [`InfluenceError::Forward`]), that every watched layer is reached once, that the output
//!    has one row per example and that the target fits it — everything that can fail, before
//!    any graph exists, so that no failing call leaves a graph behind.
//! 2. **Passes** ([`layer_gradients`]), chunk by chunk; each consumes its own graph.
//! 3. **Checks with values**, read back once at the end: the inputs and baselines are finite,
//!    and the rows of the first pass at `α_0` equal those of the validation forward. The
//!    second is the guard against explaining something other than the model's inference
//!    function: a module that draws random numbers or mixes the rows of a batch gives other
//!    values for the same example in a forward of other rows
//!    ([`InfluenceError::NotInferenceFunction`]).

pub(crate) mod exact;

use core::ops::Range;

use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::gradient::{LayerGradients, check_hits, layer_gradients_probed};
use crate::inputs::{At, PathInputs};
use crate::panics::{ForwardGiven, forward_or_error};
use crate::quantity::TargetSelector;
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Expansion, ForwardArgs, InfluenceError, LayerProbe, LayerSide, Probe, Quantity,
};

/// Relative tolerance of the inference-function guard: rows of two forwards of the same
/// inputs may differ by float rounding (another row count, another kernel), far less than
/// this.
const GUARD_RTOL: f64 = 1e-4;
/// Absolute part of the guard's tolerance, for outputs near zero.
const GUARD_ATOL: f64 = 1e-6;

/// Where the path from the baseline to the input runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathSpace {
    /// In input space: the model runs on `x' + α (x − x')` (Internal Influence, Layer
    /// Conductance, and the one-point methods at α = 1).
    Input,
    /// In the watched layer's space: the model runs on `x`, and the layer's tensor is
    /// replaced by `h(x') + α (h(x) − h(x'))` (Layer Integrated Gradients).
    Layer,
}

/// What a call's passes computed ([`Call::run`]).
pub(crate) struct Ran<A, B: AutodiffBackend> {
    /// The running result, every pass added.
    pub(crate) running: A,
    /// The checks to read back once.
    pub(crate) checks: Deferred<B::InnerBackend>,
    /// The path's end points, when the call asked for them.
    pub(crate) ends: Option<Endpoints<B>>,
}

/// One layer tensor at the path's two ends, `(h(x'), h(x))`, `[batch, features]` each.
pub(crate) type TensorEnds<B> = (Tensor<B, 2>, Tensor<B, 2>);

/// The path's end points, evaluated by the validation forward (when the call asks for them).
pub(crate) struct Endpoints<B: AutodiffBackend> {
    /// Per watched layer, per tensor: `(h(x'), h(x))`, `[batch, features]` each.
    pub layers: Vec<Vec<TensorEnds<B>>>,
    /// The explained output at the baseline and at the input, `[batch]` each.
    pub outputs: (Tensor<B::InnerBackend, 1>, Tensor<B::InnerBackend, 1>),
}

impl<B: AutodiffBackend> Endpoints<B> {
    /// `F_target(x) − F_target(x')`, `[batch]`.
    pub fn output_difference(&self) -> Tensor<B::InnerBackend, 1> {
        self.outputs.1.clone() - self.outputs.0.clone()
    }
}

/// A call whose host-side arguments are validated, ready to run on the device.
pub(crate) struct Call<B: AutodiffBackend, M: LayerProbe<B>> {
    /// The inputs as given: the template of the interpolated inputs.
    pub inputs: M::Inputs,
    pub path: PathInputs<B>,
    pub args: M::Args,
    /// The quantity of interest (Captum's `target`, or another).
    pub quantity: Quantity<B>,
    pub layers: Vec<(String, LayerSide)>,
    /// The quadrature points, in order (with given points, [`PathInputs::with_points`], one
    /// per point, unused: the passes take the points themselves).
    pub alphas: Vec<f64>,
    /// Ranges of step indices, one forward/backward pass each (they may overlap).
    pub chunks: Vec<Range<usize>>,
    pub space: PathSpace,
    /// Evaluate the end points `x'` and `x` too (always done in [`PathSpace::Layer`]).
    pub endpoints: bool,
    /// Called after each pass with `(passes done, passes in the call)`.
    pub progress: Option<ProgressFn>,
}

/// A progress callback: `(passes done, passes in the call)`, called after each pass, from the
/// thread that ran it.
pub type ProgressFn = std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>;

/// The checks that need values from the device, computed there and read once.
pub(crate) struct Deferred<B: Backend> {
    /// `[checked tensors...]` finiteness flags (1 or 0), then the guard's largest difference
    /// and largest output.
    values: Tensor<B, 1>,
    path_checks: usize,
    labels: Vec<(&'static str, usize)>,
}

impl<B: Backend> Deferred<B> {
    /// Only the finiteness checks of the inputs (a call without passes to guard).
    pub(crate) fn finiteness<A: AutodiffBackend<InnerBackend = B>>(path: &PathInputs<A>) -> Self {
        let finite = path.finiteness().inner();
        let path_checks = finite.dims()[0];
        let device = finite.device();
        Self {
            values: Tensor::cat(vec![finite, Tensor::zeros([2], &device)], 0),
            path_checks,
            labels: path.labels(),
        }
    }

    /// Reads the checks (a synchronous device read).
    pub(crate) fn check(self) -> Result<(), InfluenceError> {
        let data = self
            .values
            .clone()
            .try_into_data()
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        self.judge(data)
    }

    /// Reads the checks without blocking.
    pub(crate) async fn check_async(self) -> Result<(), InfluenceError> {
        let data = self
            .values
            .clone()
            .into_data_async()
            .await
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        self.judge(data)
    }

    fn judge(&self, data: TensorData) -> Result<(), InfluenceError> {
        let v = data.convert::<f64>().to_vec::<f64>()?;
        if let Some(k) = v[..self.path_checks].iter().position(|&f| f != 1.0) {
            let (argument, input) = self.labels[k];
            return Err(InfluenceError::NonFinite { argument, input });
        }
        let (difference, scale) = (v[self.path_checks], v[self.path_checks + 1]);
        // A NaN difference (a model whose output is not finite) is no evidence either way.
        if difference > GUARD_RTOL * scale + GUARD_ATOL {
            return Err(InfluenceError::NotInferenceFunction { difference, scale });
        }
        Ok(())
    }
}

/// What a layer method does with the passes: a running result, one per thread, merged in
/// the order of the steps.
pub(crate) trait Accumulate<B: AutodiffBackend>: Send {
    /// Adds the pass of the steps `chunk`.
    fn add(&mut self, chunk: Range<usize>, pass: LayerGradients<B>);
    /// Appends the result of the chunks that came after this one's.
    fn merge(&mut self, later: Self);
}

/// The guard's reading of the first pass: its largest difference from the validation forward,
/// and the validation forward's largest value, `[1]` each.
type Guard<B> = (Tensor<B, 1>, Tensor<B, 1>);

/// What one thread's run of chunks gives: its accumulator, and the guard's reading when it
/// ran the first chunk.
type GroupResult<A, B> = Result<(A, Option<Guard<B>>), InfluenceError>;

impl<B, M> Call<B, M>
where
    B: AutodiffBackend,
    M: LayerProbe<B> + Sync,
    M::Inputs: Send + Sync,
    M::Args: Sync,
{
    /// Runs the validation forward, then every chunk's pass, on `threads` threads: each takes
    /// a contiguous run of chunks and adds its passes to its own accumulator (`new_acc`); the
    /// accumulators are merged in the order of the steps, so the result depends on the
    /// chunks, not on which thread ran them. Returns the merged accumulator and the checks to
    /// read.
    ///
    /// # Errors
    /// [`InfluenceError::Forward`], [`InfluenceError::LayerNotReached`],
    /// [`InfluenceError::LayerReachedTwice`], [`InfluenceError::OutputBatch`] and the target
    /// errors, all before any autodiff graph is recorded.
    pub(crate) fn run<A: Accumulate<B>>(
        self,
        model: &M,
        threads: usize,
        new_acc: impl Fn() -> A + Sync,
    ) -> Result<Ran<A, B>, InfluenceError> {
        let groups = split(&self.chunks, threads).len();
        let device = collect(&self.inputs)[0].flat().device();
        // A GPU backend's single pass stays on the calling thread, as it always did.
        if groups == 1 && !cpu_backend::<B>(&device) {
            return self.run_on(model, threads, &new_acc, None);
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (this, new_acc) = (&self, &new_acc);
        with_pool(groups.max(cores), |pool| match pool {
            Some(pool) => pool.install(|| this.run_on(model, threads, new_acc, Some(pool))),
            None => this.run_on(model, threads, new_acc, None),
        })
    }

    /// [`run`](Self::run), with the groups of chunks on `pool`'s first workers (one each)
    /// when there is a pool, else on plain threads.
    fn run_on<A: Accumulate<B>>(
        &self,
        model: &M,
        threads: usize,
        new_acc: &(impl Fn() -> A + Sync),
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<Ran<A, B>, InfluenceError> {
        let batch = self.path.batch();
        let device = collect(&self.inputs)[0].flat().device();
        let max_steps = self.chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        let mut selector =
            TargetSelector::for_quantity(self.quantity.clone(), batch, max_steps.max(3));
        let (reference, endpoints, layer_guard) = self.validate(model, &mut selector, &device)?;

        let n = self.alphas.len();
        let alphas = Tensor::<B, 1>::from_data(TensorData::new(self.alphas.clone(), [n]), &device);
        let groups = split(&self.chunks, threads);
        let passes_done = std::sync::atomic::AtomicUsize::new(0);
        let run_group = |chunks: &[Range<usize>]| -> GroupResult<A, B::InnerBackend> {
            let mut selector = selector.clone();
            let mut acc = new_acc();
            let mut guard = None;
            for chunk in chunks.iter().cloned() {
                let steps = chunk.len();
                let at = alphas.clone().slice(chunk.clone());
                let (x, probe) = match (&self.space, &endpoints) {
                    (PathSpace::Layer, Some(ends)) => {
                        // The model runs on the inputs themselves, as under Captum's hook.
                        let x = self.path.at_points(self.inputs.clone(), &vec![1.0; steps]);
                        let a = at.reshape([steps, 1, 1]);
                        (x, Probe::replacing(self.layer_path(ends, a)))
                    }
                    _ => (
                        self.path
                            .interpolate(self.inputs.clone(), at, chunk.clone()),
                        Probe::watching(self.layers.iter().cloned()),
                    ),
                };
                let expansion = Expansion::new(batch, steps);
                // The validation forward ran these inputs; a forward of another row count can
                // still fail (an argument whose dim 0 happened to fit the validation's rows).
                let pass = forward_or_error(
                    || {
                        let args = self.args.expand(&expansion);
                        layer_gradients_probed(model, x, &args, probe, &mut selector, steps)
                    },
                    || {
                        drain_orphaned_graphs::<B>(&device);
                        self.given(&expansion, batch)
                    },
                )??;
                if chunk.start == 0 && self.space == PathSpace::Input {
                    // Rows 0..batch of the first pass are the inputs at alphas[0].
                    let first = pass.output.flat().clone().slice(0..batch);
                    guard = Some((
                        (first - reference.clone()).abs().max(),
                        reference.clone().abs().max(),
                    ));
                }
                acc.add(chunk, pass);
                if let Some(progress) = &self.progress {
                    let done = passes_done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    progress(done, self.chunks.len());
                }
            }
            Ok((acc, guard))
        };
        let results: Vec<_> = if groups.len() == 1 {
            vec![run_group(&groups[0])]
        } else {
            match pool {
                Some(pool) if pool.current_num_threads() >= groups.len() => pool
                    .broadcast(|ctx| groups.get(ctx.index()).map(|g| run_group(g)))
                    .into_iter()
                    .flatten()
                    .collect(),
                _ => std::thread::scope(|s| {
                    let handles: Vec<_> = groups.iter().map(|g| s.spawn(|| run_group(g))).collect();
                    handles
                        .into_iter()
                        .map(|h| {
                            h.join()
                                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                        })
                        .collect()
                }),
            }
        };
        let mut merged: Option<A> = None;
        let mut guard = None;
        for r in results {
            let (acc, g) = r?;
            guard = guard.or(g);
            match merged.as_mut() {
                Some(m) => m.merge(acc),
                None => merged = Some(acc),
            }
        }
        let acc = merged.expect("at least one chunk");
        let (difference, scale) = guard
            .or(layer_guard)
            .expect("the first chunk starts at step 0");
        let finite = self.path.finiteness().inner();
        let path_checks = finite.dims()[0];
        Ok(Ran {
            running: acc,
            checks: Deferred {
                values: Tensor::cat(vec![finite, difference, scale], 0),
                path_checks,
                labels: self.path.labels(),
            },
            ends: endpoints,
        })
    }

    /// The replacements of the watched layers' tensors at the points `a` of the path in
    /// layer space, `h(x') + α (h(x) − h(x'))`, rows `step * batch + example`: `a` is
    /// `[steps, 1, 1]` (one α per step) or `[steps, batch, 1]` (one per row).
    #[allow(clippy::type_complexity)]
    pub(crate) fn layer_path(
        &self,
        ends: &Endpoints<B>,
        a: Tensor<B, 3>,
    ) -> Vec<((String, LayerSide), Vec<AnyTensor<B>>)> {
        let steps = a.dims()[0];
        self.layers
            .iter()
            .cloned()
            .zip(&ends.layers)
            .map(|(layer, tensors)| {
                let values = tensors
                    .iter()
                    .map(|(start, end)| {
                        let [batch, features] = start.dims();
                        let diff = (end.clone() - start.clone()).unsqueeze::<3>();
                        let at = a.clone() * diff + start.clone().unsqueeze::<3>();
                        let rows = steps * batch;
                        AnyTensor::from_flat(at.reshape([rows, features]), vec![rows, features])
                    })
                    .collect();
                (layer, values)
            })
            .collect()
    }

    /// The validation forward, untracked: the inputs at `alphas[0]` (or at the first given
    /// point) and at 1 (0 if `alphas[0]` is 1), and at 0 as well when the end points are needed. Returns the output
    /// rows at `alphas[0]`, `[batch, values per example]`; the end points when asked for; and,
    /// for a path in layer space (whose passes do not run the inputs at `alphas[0]`), the
    /// guard's reading from a second forward of the inputs alone.
    #[allow(clippy::type_complexity)]
    fn validate(
        &self,
        model: &M,
        selector: &mut TargetSelector<B>,
        device: &B::Device,
    ) -> Result<
        (
            Tensor<B::InnerBackend, 2>,
            Option<Endpoints<B>>,
            Option<Guard<B::InnerBackend>>,
        ),
        InfluenceError,
    > {
        let batch = self.path.batch();
        let first = if self.path.has_points() {
            At::Point(0)
        } else {
            At::Alpha(self.alphas[0])
        };
        let endpoints = self.endpoints || self.space == PathSpace::Layer;
        let (input, baseline) = (At::Alpha(1.0), At::Alpha(0.0));
        let points = if endpoints {
            vec![first, input.clone(), baseline]
        } else if first == input {
            vec![first, baseline]
        } else {
            vec![first, input.clone()]
        };
        let (output, watches) = self.forward_at(model, &points, device)?;
        check_hits(&watches)?;
        let n = points.len();
        check_layer_batch(&watches, n * batch)?;
        // The inputs themselves are the step at α = 1: a predicted target is read there.
        let input_step = points
            .iter()
            .position(|p| *p == input)
            .expect("α = 1 is evaluated");
        selector.resolve_at_input(&output, n, input_step)?;
        let inner_rows = |o: &AnyTensor<B>, rows: Range<usize>| {
            let shape = o.shape().to_vec();
            AnyTensor::from_flat(o.flat().clone().inner(), shape)
                .into_flat()
                .slice(rows)
        };
        let reference = inner_rows(&output, 0..batch);
        if !endpoints {
            return Ok((reference, None, None));
        }
        let selected = selector.select_rows(output.clone(), n)?.inner();
        let ends = Endpoints {
            layers: watches
                .iter()
                .map(|w| {
                    w.values
                        .iter()
                        .map(|v| {
                            let v = v.flat().clone();
                            (
                                v.clone().slice(2 * batch..3 * batch),
                                v.slice(batch..2 * batch),
                            )
                        })
                        .collect()
                })
                .collect(),
            outputs: (
                selected.clone().slice(2 * batch..3 * batch),
                selected.slice(batch..2 * batch),
            ),
        };
        let guard = if self.space == PathSpace::Layer {
            // The same inputs in a forward of other rows must give the same outputs.
            let (alone, _) = self.forward_at(model, &[At::Alpha(1.0)], device)?;
            let at_one = inner_rows(&output, batch..2 * batch);
            let alone = inner_rows(&alone, 0..batch);
            Some(((alone - at_one.clone()).abs().max(), at_one.abs().max()))
        } else {
            None
        };
        Ok((reference, Some(ends), guard))
    }

    /// An untracked forward of the inputs at the points `points` of the path, capturing the
    /// watched layers.
    pub(crate) fn forward_at(
        &self,
        model: &M,
        points: &[At],
        device: &B::Device,
    ) -> Result<(AnyTensor<B>, Vec<crate::Watch<B>>), InfluenceError> {
        let _ = device;
        let batch = self.path.batch();
        let n = points.len();
        let x = self.path.at(self.inputs.clone(), points);
        let expansion = Expansion::new(batch, n);
        forward_or_error(
            || {
                let args = self.args.expand(&expansion);
                let mut probe = Probe::capturing(self.layers.iter().cloned());
                let output = model.forward_probed(x, &args, &mut probe);
                (output, probe.into_watches())
            },
            || self.given(&expansion, batch),
        )
    }

    /// What a forward of `batch` rows per input, its arguments expanded by `expansion`, was
    /// given (for [`InfluenceError::Forward`]).
    pub(crate) fn given(&self, expansion: &Expansion, batch: usize) -> ForwardGiven {
        ForwardGiven {
            input_shapes: self.path.shapes(),
            arg_shapes: expansion.tensor_shapes(),
            batch,
        }
    }
}

/// Every watched tensor has one row per row of the forward (`rows`): the layer methods sum and
/// reshape per example.
///
/// # Errors
/// [`InfluenceError::LayerBatch`] naming the first that does not.
pub(crate) fn check_layer_batch<B: Backend>(
    watches: &[crate::Watch<B>],
    rows: usize,
) -> Result<(), InfluenceError> {
    for w in watches {
        if let Some(shape) = w.shapes.iter().find(|s| s.first() != Some(&rows)) {
            return Err(InfluenceError::LayerBatch {
                layer: w.layer.clone(),
                shape: shape.clone(),
                rows,
            });
        }
    }
    Ok(())
}

/// Frees the entries that operations without a backward pass left in Burn's autodiff graph
/// server, when it is dropped: at the end of every public call (success or error).
///
/// Burn 0.21 registers every operation of an autodiff backend in its graph server, untracked
/// ones too ("otherwise memory bound operations that have an untracked parent would not be
/// able to retrieve it", `burn-autodiff/src/ops/base.rs`), and removes the entries of dropped
/// tensors only after a backward pass (`cleanup_orphaned_entries`). A call that fails in its
/// validation forward, or a forward-only call (Layer Activation, [`predict`](crate::predict)),
/// runs no backward pass, so each such call left its operations' entries behind: about
/// 19 KB per failing call of the digits CNN, a process growing without bound in a service
/// that gets bad requests (Burn's issues #4970 and #4339 are the same kind of growth). One
/// backward pass of a one-element tensor runs that cleanup: every entry whose tensor is gone
/// and whose parents are gone is freed (an untracked operation has no parents in the graph).
pub(crate) struct SweepGraphs<B: AutodiffBackend>(Option<B::Device>);

impl<B: AutodiffBackend> SweepGraphs<B> {
    /// Sweeps on drop, on `device` (the call's; none: nothing to sweep).
    pub(crate) fn on(device: Option<B::Device>) -> Self {
        Self(device)
    }
}

impl<B: AutodiffBackend> Drop for SweepGraphs<B> {
    fn drop(&mut self) {
        if let Some(device) = self.0.take() {
            let _ = Tensor::<B, 1>::zeros([1], &device)
                .require_grad()
                .sum()
                .backward();
        }
    }
}

/// Frees what a forward that panicked half-way left in Burn's autodiff graph server.
///
/// Such a forward's recorded operations are orphans: no tensor refers to them any more, and no
/// backward pass will consume them. Burn 0.21 prunes orphaned graphs after each backward pass,
/// one layer of operations at a time, so a few hundred backward passes of a one-element tensor
/// free a graph of that depth at once instead of leaving it to the next calls.
fn drain_orphaned_graphs<B: AutodiffBackend>(device: &B::Device) {
    for _ in 0..256 {
        let _ = Tensor::<B, 1>::zeros([1], device)
            .require_grad()
            .sum()
            .backward();
    }
}

/// Runs `f` with a rayon pool of `n` threads of the calling thread's own (`None` where no
/// pool can be built: a target without threads).
///
/// On a CPU backend every call runs on such a pool of `max(groups, cores)` workers: its
/// validation forward inside `install`, its groups of passes on the first workers, one each,
/// through `broadcast` (a single group on the worker that runs the call). Burn's CPU
/// backends (flex, ndarray) split their kernels' work on rayon; called from a pass, a kernel
/// splits it within this pool, the worker that called it doing its share and the other
/// workers taking the rest, where a plain thread would hand all of it to the global pool and
/// sleep until it is done (measured: MiniLM 0.35 → 0.28 s per call on flex,
/// `docs/performance.md`).
///
/// Why a pool of the call's own, and never two passes on one thread: Burn's autodiff holds a
/// graph's lock during its backward pass, and a thread that waits inside a rayon kernel runs
/// other queued jobs of its pool; a second pass nested there would wait for that lock
/// forever. Here no pass waits in a queue (`broadcast` hands each worker its group at once,
/// and other workers' broadcast jobs are never taken), so a waiting worker only picks up
/// kernel work; and the pool serves one call at a time: it is kept per calling thread
/// (building new threads on every call cost the CNN workloads 20–30% in page faults), taken
/// out of its slot while a call runs, so that a call nested on the same thread (a caller's
/// rayon job picked up while this thread waits for the pool) builds a pool of its own. A
/// calling thread keeps its pool's threads, asleep, until it exits.
fn with_pool<R>(n: usize, f: impl FnOnce(Option<&rayon::ThreadPool>) -> R) -> R {
    std::thread_local! {
        static POOL: std::cell::RefCell<Option<rayon::ThreadPool>> =
            const { std::cell::RefCell::new(None) };
    }
    let pool = POOL
        .with(|p| p.borrow_mut().take())
        .filter(|p| p.current_num_threads() == n)
        .or_else(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("burn-influence-{i}"))
                .build()
                .ok()
        });
    let result = f(pool.as_ref());
    if let Some(pool) = pool {
        POOL.with(|p| *p.borrow_mut() = Some(pool));
    }
    result
}

/// `chunks` in at most `threads` contiguous runs of near-equal length, in order.
fn split(chunks: &[Range<usize>], threads: usize) -> Vec<Vec<Range<usize>>> {
    let parts = threads.clamp(1, chunks.len().max(1));
    let (per, extra) = (chunks.len() / parts, chunks.len() % parts);
    let mut out = Vec::with_capacity(parts);
    let mut start = 0;
    for i in 0..parts {
        let len = per + usize::from(i < extra);
        out.push(chunks[start..start + len].to_vec());
        start += len;
    }
    out
}

/// Whether `B` is one of Burn's CPU backends (recognised by name, through any decorators and
/// autodiff: flex, ndarray, candle).
pub(crate) fn cpu_backend<B: Backend>(device: &B::Device) -> bool {
    let name = B::name(device);
    ["flex", "ndarray", "candle"]
        .iter()
        .any(|b| name.contains(b))
}

/// The threads a call uses when the caller does not say: the machine's cores on Burn's CPU
/// backends (recognised by name: flex, ndarray, candle), one elsewhere (a GPU runs one pass
/// at a time best).
pub(crate) fn default_threads<B: Backend>(device: &B::Device) -> usize {
    if cpu_backend::<B>(device) {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        1
    }
}
