//! Exact path methods for piecewise-linear networks (not in Captum): the path from the
//! baseline to the input is cut into the pieces on which the network is affine (ExactLine:
//! Sotoudeh & Thakur, "Computing Linear Restrictions of Neural Networks", NeurIPS 2019), and
//! on each piece the gradient is constant, so `∫₀¹ ∂F/∂h dα = Σ_pieces (b − a) · ∂F/∂h((a +
//! b)/2)` holds without quadrature error (Internal Influence). On the same pieces `h` is
//! affine too, so Layer Conductance's `∫ ∂F/∂h · dh` is `Σ_pieces ∂F/∂h(mid) · (h(b) −
//! h(a))`. Layer Integrated Gradients runs its path in the layer's space
//! ([`PathSpace::Layer`]): the traced forwards run the inputs themselves with the layer's
//! tensor replaced by `h(x') + β (h(x) − h(x'))` (no autodiff leaf), so the pieces are those
//! of the network above the layer; the patterns below it are the same at every β.
//!
//! **Patterns.** A forward on [`Eval<B>`](crate::Eval) with a trace running records the
//! *activation pattern* of every row (`decorator/trace.rs`): the outcome of each comparison,
//! arg-max and max-pool window, and the side of each ReLU (leaky ReLU, PReLU, absolute value,
//! clamp) kink. The inputs sharing one whole pattern form a convex set (each condition is a
//! linear inequality in the input once the earlier pattern is fixed), so when both ends of a
//! segment of the path have the same pattern, the network is affine on the whole segment.
//!
//! **Refusal.** Two traced forwards with different row counts tell the operands that depend
//! on the inputs (their sizes change) from the parameters (BatchNorm's `sqrt` of its running
//! variance does not). The first operation that is not piecewise linear in an input-dependent
//! operand — a smooth function (`float_exp`, `gelu`, `softmax`, `layer_norm`, ...), a product
//! or a quotient of two input-dependent values, or any operation this module does not know —
//! is [`InfluenceError::NotPiecewiseLinear`].
//!
//! **Partition.** Batched rounds; each evaluates points of every open segment of every
//! example in traced forwards (chunked by `internal_batch_size`), and closes each part whose
//! ends have equal patterns.
//!
//! - *Predicted splits* (ExactLine's own step). When a segment's ends differ first at an
//!   operation kinked at zero (ReLU, leaky ReLU, PReLU, absolute value), every outcome before
//!   it is the same at both ends, so the segment lies in one region of those (the inputs
//!   sharing a prefix of the pattern form a convex set) where that operation's input is
//!   affine in α: its zero crossings, from its values at the two ends (one forward of the
//!   ends that keeps them, [`KEPT_BUDGET`] bytes at most per round), are breakpoints. Each
//!   gets a *cell* of [`CELL`] (2⁻²⁰ of α) on either side, whose two ends are evaluated: a
//!   *hit* (their patterns differ) closes the cell as two pieces' ends, split at the
//!   prediction (a run of crossings wider than [`MIN_PIECE_WIDTH`] is halved instead); a
//!   *miss* (float32 put the crossing elsewhere) makes the next split of the parts beside it
//!   a halving. One round finds every crossing of one layer, so a ReLU network takes a few
//!   rounds per layer instead of ~20 halvings per breakpoint. Past [`KEPT_BUDGET`] a round
//!   keeps no more values (a ResNet-18 at 224×224 has 64 × 112 × 112 float32, 3.2 MB, per
//!   row at its first ReLU), and the rest is halved.
//! - *Halving* otherwise (a max-pool winner, a comparison, a clamp, or after a miss): the
//!   midpoint. A segment shorter than [`RESOLUTION`] whose ends still differ holds a
//!   breakpoint within `2⁻²⁴` of α (a cell); it joins the piece before it, so breakpoints
//!   closer than that count as one, and a pattern that holds at a single point (every
//!   pre-activation exactly zero at a zero baseline) makes no piece of its own (the error is
//!   below the cell's width times the gradient's jump).
//!
//! Adjacent closed segments with one pattern merge into one piece. Last, breakpoints within
//! [`MIN_PIECE_WIDTH`] (2⁻¹⁸) of the first of a run merge into one, and those that close to
//! an end of the path are dropped: float32 rounding makes values that tie at a point (every
//! max-pool window at a zero baseline) flicker over a few 1e-6 of α, where exact arithmetic
//! has one breakpoint.
//!
//! **Which patterns.** Two traced forwards, of `batch` rows at α = 0 and of `2·batch` rows
//! at α = 0 and 1, classify every recorded outcome: one made from parameters alone (its
//! operands have the same size in both) is skipped; one whose first dimension doubles is cut
//! into rows; any other is refused. The first forward's output, against the validation
//! forward's rows at α = 0, is the guard of [`InfluenceError::NotInferenceFunction`].
//!
//! **Integral.** One gradient pass per chunk of pieces, each row at its piece's midpoint,
//! weighted by the piece's length (Layer Conductance: by the layer's change over the piece,
//! from one more untracked forward of the pieces' ends).

use std::sync::Arc;

use burn::tensor::{Bool, Int, Tensor, TensorData, TensorPrimitive};
use burn_backend::{Shape, TensorMetadata};

use super::{Call, Deferred, Endpoints, PathSpace};
use crate::decorator::trace::{self, Op, Pattern, PatternOf, Trace};
use crate::inputs::At;
use crate::panics::forward_or_error;
use crate::quantity::TargetSelector;
use crate::sums::Sums;
use crate::tensor_group::collect;
use crate::{
    AnyTensor, Expansion, ForwardArgs, InfluenceError, LayerProbe, Probe, layer_gradients_probed,
};
use burn::tensor::backend::AutodiffBackend;

/// The shortest segment the bisection splits (in α): a breakpoint is located to within it.
/// float32's spacing near α = 1 (the interpolation runs in the model's float32): a finer
/// split would evaluate the same points again.
pub(crate) const RESOLUTION: f64 = 1.0 / (1u64 << 24) as f64;

/// Steps (points of each example's path) per forward when the call sets no
/// `internal_batch_size`: every bisection round and the integral are chunked by it, so a
/// path of many pieces does not make one forward of unbounded rows.
pub(crate) const DEFAULT_STEPS_PER_PASS: usize = 100;

/// The most steps per forward: bounds the target selector's columns.
const MAX_STEPS_PER_PASS: usize = 1 << 16;

/// The resolution of the partition in α: breakpoints within this of the first of a run count
/// as one (at the run's middle), and breakpoints closer than this to an end of the path belong to
/// it. float32 cannot tell the order of values that tie at a point of the path until they
/// differ by more than their rounding: at a zero baseline, every max-pool window of a
/// bias-free convolution ties at α = 0, and float32 sees its winner flicker for α up to a few
/// 1e-6 (measured on the golden CNNs: up to 3.6e-6), as it sees a shallow zero crossing
/// wobble. Exact arithmetic has one breakpoint there, or none. A merged breakpoint moves the
/// integral by less than this width times the gradient's jump.
pub const MIN_PIECE_WIDTH: f64 = 1.0 / (1u64 << 18) as f64;

/// The default cap on affine pieces per example ([`crate::AttributeCall::run_exact`]). Each
/// piece costs at least one forward/backward row, so at this cap the exact integral costs
/// at least ten times a 2,048-point `run_to_tolerance`. A round whose predicted crossings
/// pass the cap gets [`InfluenceError::TooManyPieces`](crate::InfluenceError::TooManyPieces)
/// before those pieces are evaluated (a ResNet-18 at 224×224: over 98,000 crossings of its
/// first ReLU, in 0.7 s); a path found under the cap round by round may still run long
/// (cifar_cnn: over 10,000 at its first ReLU, not finished in 15 minutes on 2 cores).
/// `run_exact_with` sets another cap.
pub const MAX_EXACT_PIECES: usize = 20_000;

/// What an exact call found, per example.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ExactStats {
    /// Affine pieces of each example's path: the runs of one activation pattern (see
    /// `merge`).
    pub pieces: Vec<usize>,
    /// The interior breakpoints of each example's path, sorted (`pieces − 1` each).
    pub breakpoints: Vec<Vec<f64>>,
    /// Forward passes (traced, for the partition) and forward/backward passes (for the
    /// integral) the call ran.
    pub passes: usize,
}

/// How an operation behaves on values that depend on the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// Linear (or affine, or a selection) in each operand.
    Linear,
    /// A product: linear when at most one operand depends on the inputs.
    Product,
    /// A quotient: linear when the divisor does not depend on the inputs.
    Quotient,
    /// Piecewise linear with its pattern recorded.
    Pattern,
    /// Anything else: not piecewise linear (or not known to be) on input-dependent values.
    Other,
}

fn class(name: &str) -> Class {
    const LINEAR: &[&str] = &[
        "float_to_device",
        "float_repeat_dim",
        "float_add",
        "float_add_scalar",
        "float_sub",
        "float_sub_scalar",
        "float_mul_scalar",
        "float_div_scalar",
        "float_neg",
        "float_transpose",
        "float_swap_dims",
        "float_permute",
        "float_flip",
        "float_reshape",
        "float_gather",
        "float_gather_nd",
        "float_scatter_add",
        "float_select",
        "float_select_add",
        "float_slice",
        "float_slice_assign",
        "float_mask_where",
        "float_mask_fill",
        "float_detach",
        "float_set_require_grad",
        "float_sum",
        "float_sum_dim",
        "float_mean",
        "float_mean_dim",
        "float_cumsum",
        "float_cast",
        "float_expand",
        "float_unfold",
        "embedding",
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "unfold4d",
        "avg_pool1d",
        "avg_pool2d",
        "adaptive_avg_pool1d",
        "adaptive_avg_pool2d",
        "interpolate",
    ];
    const PATTERN: &[&str] = &[
        "float_equal",
        "float_not_equal",
        "float_equal_elem",
        "float_not_equal_elem",
        "float_greater",
        "float_greater_elem",
        "float_greater_equal",
        "float_greater_equal_elem",
        "float_lower",
        "float_lower_elem",
        "float_lower_equal",
        "float_lower_equal_elem",
        "float_is_nan",
        "float_is_inf",
        "float_any",
        "float_any_dim",
        "float_all",
        "float_all_dim",
        "float_argmax",
        "float_argmin",
        "float_max_dim_with_indices",
        "float_min_dim_with_indices",
        "max_pool1d",
        "max_pool2d",
        "max_pool1d_with_indices",
        "max_pool2d_with_indices",
    ];
    match name {
        "float_mul" | "float_matmul" | "float_cross" => Class::Product,
        "float_div" => Class::Quotient,
        n if LINEAR.contains(&n) => Class::Linear,
        n if PATTERN.contains(&n) || trace::KINKED.contains(&n) => Class::Pattern,
        _ => Class::Other,
    }
}

/// The first operation of the traces that is not piecewise linear in the inputs. `small` and
/// `large` trace the same model on fewer and more rows: an operand whose size differs
/// between them depends on the inputs.
///
/// # Errors
/// [`InfluenceError::NotPiecewiseLinear`] naming it; also when the two forwards ran different
/// operations (the operations then depend on the row count, which the method cannot follow).
pub(crate) fn check_piecewise_linear(
    small: &Trace,
    large: &Trace,
    batch: usize,
) -> Result<Vec<Kind>, InfluenceError> {
    check_ops(&small.ops, &large.ops)?;
    let dependent = |op: usize| {
        let (a, b) = (&small.ops[op], &large.ops[op]);
        a.numels != b.numels
    };
    if small.made_by.len() != large.made_by.len() {
        return Err(InfluenceError::NotPiecewiseLinear {
            op: "a comparison".to_string(),
            why: "records another number of outcomes in a forward of another number of rows"
                .to_string(),
        });
    }
    small
        .made_by
        .iter()
        .zip(&large.made_by)
        .map(|((s, op), (l, _))| {
            if !dependent(*op) {
                return Ok(Kind::Parameter);
            }
            let per_row = !s.is_empty()
                && s.len() == l.len()
                && s[0] > 0
                && s[0].is_multiple_of(batch)
                && l[0] == 2 * s[0]
                && s[1..] == l[1..];
            if per_row {
                Ok(Kind::PerRow)
            } else {
                Err(InfluenceError::NotPiecewiseLinear {
                    op: small.ops[*op].name.to_string(),
                    why: format!(
                        "records an outcome of shape {s:?} for {batch} rows and {l:?} for {} rows: its first dimension is not the rows (a transposed layout or a reduction across examples), which the method cannot follow",
                        2 * batch
                    ),
                })
            }
        })
        .collect()
}

/// How a recorded outcome relates to the rows of its forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Of values that do not depend on the inputs: the same for every row, not hashed.
    Parameter,
    /// Dimension 0 holds the rows (a multiple of them, row-major): cut into one part each.
    PerRow,
}

/// The operations of the two traces: see [`check_piecewise_linear`].
fn check_ops(small: &[Op], large: &[Op]) -> Result<(), InfluenceError> {
    for (i, a) in small.iter().enumerate() {
        let Some(b) = large.get(i).filter(|b| b.name == a.name) else {
            return Err(InfluenceError::NotPiecewiseLinear {
                op: a.name.to_string(),
                why: "runs at another place in a forward of another number of rows (the model's operations depend on the batch size)".to_string(),
            });
        };
        let dependent: Vec<bool> = a
            .numels
            .iter()
            .zip(&b.numels)
            .map(|(x, y)| x != y)
            .collect();
        let count = dependent.iter().filter(|&&d| d).count();
        let why = match class(a.name) {
            Class::Linear | Class::Pattern => None,
            Class::Product if count >= 2 => {
                Some("multiplies two values that both depend on the inputs")
            }
            Class::Product => None,
            Class::Quotient if dependent.get(1) == Some(&true) => {
                Some("divides by a value that depends on the inputs")
            }
            Class::Quotient => None,
            Class::Other if count > 0 => Some("is applied to values that depend on the inputs"),
            Class::Other => None,
        };
        if let Some(why) = why {
            return Err(InfluenceError::NotPiecewiseLinear {
                op: a.name.to_string(),
                why: why.to_string(),
            });
        }
    }
    if large.len() != small.len() {
        let op = large[small.len().min(large.len() - 1)].name;
        return Err(InfluenceError::NotPiecewiseLinear {
            op: op.to_string(),
            why: "runs only in a forward of another number of rows (the model's operations depend on the batch size)".to_string(),
        });
    }
    Ok(())
}

/// Mixes `v` into the hash `h`.
fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(31)
}

/// Each row's pattern: a 64-bit hash of the whole, and one of each recorded outcome (0 for
/// those of [`Kind::Parameter`]), in the order of the forward.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RowPattern {
    hash: u64,
    parts: Arc<[u64]>,
}

impl RowPattern {
    /// The first outcome on which `self` and `other` differ.
    fn first_difference(&self, other: &Self) -> Option<usize> {
        self.parts
            .iter()
            .zip(other.parts.iter())
            .position(|(x, y)| x != y)
    }
}

/// The pattern of each row of a traced forward of `rows` rows ([`RowPattern`]): each
/// recorded outcome of [`Kind::PerRow`] is cut into `rows` contiguous parts, one per row;
/// those of [`Kind::Parameter`] are skipped.
///
/// # Errors
/// [`InfluenceError::Read`] when an outcome cannot be read back;
/// [`InfluenceError::NotPiecewiseLinear`] when the forward recorded other outcomes than the
/// checked ones (its operations depend on the values).
fn row_patterns<B: AutodiffBackend>(
    trace: Trace,
    rows: usize,
    kinds: &[Kind],
) -> Result<Vec<RowPattern>, InfluenceError> {
    let hashes = row_hashes::<B>(trace, rows, kinds)?;
    Ok(hashes
        .into_iter()
        .map(|parts| RowPattern {
            hash: parts.iter().fold(0, |h, &p| mix(h, p)),
            parts: parts.into(),
        })
        .collect())
}

/// [`row_patterns`]' per-outcome hashes, `[rows][outcomes]`.
fn row_hashes<B: AutodiffBackend>(
    trace: Trace,
    rows: usize,
    kinds: &[Kind],
) -> Result<Vec<Vec<u64>>, InfluenceError> {
    let read_err = |e: burn::tensor::DataError| InfluenceError::Read(format!("{e:?}"));
    let mut hashes = vec![vec![0u64; kinds.len()]; rows];
    if trace.patterns.len() != kinds.len() {
        return Err(InfluenceError::NotPiecewiseLinear {
            op: "a comparison".to_string(),
            why: format!(
                "the forward records {} outcomes at one point of the path and {} at another (its operations depend on the values)",
                kinds.len(),
                trace.patterns.len()
            ),
        });
    }
    for (index, (pattern, kind)) in trace.patterns.into_iter().zip(kinds).enumerate() {
        if *kind == Kind::Parameter {
            continue;
        }
        let Ok(pattern) = pattern.downcast::<PatternOf<B>>() else {
            // Another backend's trace (a nested call on another backend): not this model's.
            continue;
        };
        let values: Vec<u64> = match *pattern {
            Pattern::Sign(f) => {
                let n = f.shape().num_elements();
                let t = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(B::float_reshape(
                    f,
                    Shape::new([n]),
                )));
                t.into_data()
                    .convert::<f32>()
                    .to_vec::<f32>()
                    .map_err(read_err)?
                    .into_iter()
                    .map(|d| u64::from(d > 0.0) | (u64::from(d < 0.0) << 1))
                    .collect()
            }
            Pattern::Bool(b) => {
                // As integers: some backends store booleans as bytes or words.
                let n = b.shape().num_elements();
                Tensor::<B, 1, Bool>::from_primitive(B::bool_reshape(b, Shape::new([n])))
                    .int()
                    .into_data()
                    .convert::<i64>()
                    .to_vec::<i64>()
                    .map_err(read_err)?
                    .into_iter()
                    .map(|x| u64::from(x != 0))
                    .collect()
            }
            Pattern::Int(i) => {
                let n = i.shape().num_elements();
                let t = Tensor::<B, 1, Int>::from_primitive(B::int_reshape(i, Shape::new([n])));
                t.into_data()
                    .convert::<i64>()
                    .to_vec::<i64>()
                    .map_err(read_err)?
                    .into_iter()
                    .map(|x| x as u64)
                    .collect()
            }
        };
        if !values.len().is_multiple_of(rows) {
            return Err(InfluenceError::Read(format!(
                "a recorded outcome of {} values for {rows} rows",
                values.len()
            )));
        }
        // Seeded with the row's own size, not the forward's: a row's hash does not depend on
        // how many rows its forward had.
        let width = values.len() / rows;
        let seed = mix(index as u64 + 1, width as u64);
        for (row, h) in hashes.iter_mut().enumerate() {
            let part = &values[row * width..(row + 1) * width];
            h[index] = part.iter().fold(seed, |acc, &v| mix(acc, v));
        }
    }
    Ok(hashes)
}

/// Values of every row of a forward, one width each: `(values, width)`.
type RowValues = (Vec<f32>, usize);

/// The values a trace kept ([`trace::start_keeping`]) of the outcomes marked in `wanted`,
/// each as `rows` contiguous parts of one width: `[outcome] -> (values, width)`.
///
/// # Errors
/// [`InfluenceError::Read`] when a value cannot be read back or does not split into rows.
fn kept_values<B: AutodiffBackend>(
    values: Vec<Option<Box<dyn std::any::Any>>>,
    rows: usize,
    wanted: &[bool],
) -> Result<Vec<Option<RowValues>>, InfluenceError> {
    let read_err = |e: burn::tensor::DataError| InfluenceError::Read(format!("{e:?}"));
    values
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let Some(value) = value.filter(|_| wanted.get(index) == Some(&true)) else {
                return Ok(None);
            };
            let Ok(f) = value.downcast::<burn_backend::tensor::FloatTensor<B>>() else {
                return Ok(None);
            };
            let n = f.shape().num_elements();
            let t = Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(B::float_reshape(
                *f,
                Shape::new([n]),
            )));
            let v = t
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(read_err)?;
            if !v.len().is_multiple_of(rows) {
                return Err(InfluenceError::Read(format!(
                    "a kept value of {} elements for {rows} rows",
                    v.len()
                )));
            }
            let width = v.len() / rows;
            Ok(Some((v, width)))
        })
        .collect()
}

/// A segment `[a, b]` of one example's path with its ends' patterns.
#[derive(Debug, Clone)]
struct Segment {
    a: f64,
    b: f64,
    pa: RowPattern,
    pb: RowPattern,
    /// Whether its next split may be predicted (see [`predicted_cells`]); false after a
    /// prediction missed, so that every other split of a lineage is at least a halving.
    predict: bool,
}

impl Segment {
    fn mid(&self) -> f64 {
        0.5 * (self.a + self.b)
    }

    /// Whether its ends have one pattern (so has all of it, by convexity).
    fn uniform(&self) -> bool {
        self.pa.hash == self.pb.hash
    }
}

/// A predicted breakpoint ([`predicted_cells`]): the cell `[lo, hi]` around the crossing
/// (or the run of crossings) at `t`, and how wide the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cell {
    lo: f64,
    hi: f64,
    t: f64,
    /// From the first crossing of the run to the last (0 for one crossing).
    run: f64,
}

/// Where a segment whose ends differ first at an outcome of an operation kinked at zero
/// (ReLU, leaky ReLU, PReLU, absolute value) has its breakpoints, from that operation's input
/// at the two ends, `za` and `zb` (ExactLine's step: Sotoudeh & Thakur 2019). Every outcome
/// before it is the same at both ends, so the segment lies in one region of those (the inputs
/// sharing a prefix of the pattern form a convex set), where the operation's input is affine
/// in α: each element that changes sign crosses zero once, at `a + (b − a) · za/(za − zb)`,
/// and each such crossing is a breakpoint. float32 places the crossing of the model's own
/// forward within rounding of that: each cell spans [`CELL`] on either side, reaching at
/// most halfway to the segment's ends, and the two
/// points that end it are evaluated to confirm the breakpoint (a *hit*: their patterns
/// differ). Overlapping cells are joined into one over the run of crossings. Returns the
/// cells, sorted; empty when no element changes sign strictly inside the segment.
fn predicted_cells(s: &Segment, za: &[f32], zb: &[f32]) -> Vec<Cell> {
    if za.len() != zb.len() {
        return Vec::new();
    }
    let mut t: Vec<f64> = za
        .iter()
        .zip(zb)
        .filter(|&(&x, &y)| (x < 0.0 && y > 0.0) || (x > 0.0 && y < 0.0))
        .map(|(&x, &y)| {
            let (x, y) = (f64::from(x), f64::from(y));
            s.a + (s.b - s.a) * (x / (x - y))
        })
        .filter(|t| t.is_finite())
        .collect();
    t.sort_by(f64::total_cmp);
    let mut runs: Vec<(f64, f64)> = Vec::new();
    for t in t.into_iter().filter(|&t| t > s.a && t < s.b) {
        match runs.last_mut() {
            Some(last) if t - CELL <= last.1 + CELL => last.1 = t,
            _ => runs.push((t, t)),
        }
    }
    // Each cell reaches at most halfway to the segment's ends, so that it lies inside.
    runs.into_iter()
        .map(|(first, last)| Cell {
            lo: (first - CELL).max(0.5 * (s.a + first)),
            hi: (last + CELL).min(0.5 * (last + s.b)),
            t: 0.5 * (first + last),
            run: last - first,
        })
        .filter(|c| c.lo > s.a && c.hi < s.b && c.lo < c.t && c.t < c.hi)
        .collect()
}

/// The half-width of a predicted cell ([`predicted_cells`]), in α: float32 rounding of the
/// ends' values moves a predicted crossing by their rounding over the slope, a few 1e-7; a
/// quarter of [`MIN_PIECE_WIDTH`], so that crossings joined into one cell are within the
/// partition's resolution.
const CELL: f64 = MIN_PIECE_WIDTH / 4.0;

/// The most bytes of kept values ([`Call::evaluate`]) one round of the partition holds on
/// the host: a model whose kinked layers are large (a ResNet at 224×224: 3 MB per row at
/// its first ReLU) predicts the crossings of as many segments as fit, and halves the rest.
const KEPT_BUDGET: usize = 256 << 20;

/// Closed segments, sorted, merged into pieces; returns the interior breakpoints between
/// them. A segment whose ends have one pattern has it
/// throughout (convexity); neighbours with one pattern join. A *cell* (a segment narrower
/// than [`RESOLUTION`] whose ends differ: a breakpoint, or several within `2⁻²⁴` of each
/// other, or a pattern that holds only at one point, such as every pre-activation exactly zero
/// at a zero baseline) joins the piece before it (the first piece when it starts the path),
/// so the pieces are the runs of one pattern; the integral's error from a cell is below its
/// width times the gradient's jump.
fn merge(mut closed: Vec<Segment>) -> Vec<f64> {
    closed.sort_by(|x, y| x.a.total_cmp(&y.a));
    // (start, end, the pattern; `None` while the piece is only cells)
    let mut pieces: Vec<(f64, f64, Option<u64>)> = Vec::with_capacity(closed.len());
    for s in closed {
        let pattern = s.uniform().then_some(s.pa.hash);
        match (pieces.last_mut(), pattern) {
            (Some(p), None) => p.1 = s.b,
            (Some(p), Some(h)) if p.2.is_none_or(|q| q == h) => {
                p.1 = s.b;
                p.2 = Some(h);
            }
            _ => pieces.push((s.a, s.b, pattern)),
        }
    }
    pieces.into_iter().skip(1).map(|(a, _, _)| a).collect()
}

/// The pieces between sorted interior breakpoints.
fn pieces_of(breakpoints: &[f64]) -> Vec<(f64, f64)> {
    let mut ends = Vec::with_capacity(breakpoints.len() + 2);
    ends.push(0.0);
    ends.extend_from_slice(breakpoints);
    ends.push(1.0);
    ends.windows(2).map(|w| (w[0], w[1])).collect()
}

/// Sorted breakpoints at resolution `width` ([`MIN_PIECE_WIDTH`]): each run of breakpoints
/// within `width` of its first becomes one, at the middle of the run (so a merge moves a
/// breakpoint by less than `width`); a run that starts within `width` of 0 or ends within
/// `width` of 1 joins that end (no breakpoint).
pub(crate) fn cluster(breakpoints: &[f64], width: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(breakpoints.len());
    let mut i = 0;
    while i < breakpoints.len() {
        let mut j = i;
        while j + 1 < breakpoints.len() && breakpoints[j + 1] - breakpoints[i] < width {
            j += 1;
        }
        let (first, last) = (breakpoints[i], breakpoints[j]);
        if first >= width && last <= 1.0 - width {
            out.push(0.5 * (first + last));
        }
        i = j + 1;
    }
    out
}

impl<B, M> Call<B, M>
where
    B: AutodiffBackend,
    M: LayerProbe<B> + Sync,
    M::Inputs: Send + Sync,
    M::Args: Sync,
{
    /// The forward's inputs and probe at `points`: on a path in input space the inputs
    /// there, the watched layers captured (`grad`: made autodiff leaves); on a path in layer
    /// space (`ends`, Layer Integrated Gradients) the inputs themselves, the watched layers'
    /// tensors replaced by `h(x') + α (h(x) − h(x'))` (`grad`: as autodiff leaves).
    fn exact_inputs(
        &self,
        points: &[At],
        ends: Option<&Endpoints<B>>,
        grad: bool,
    ) -> (M::Inputs, Probe<B>) {
        let layers = self.layers.iter().cloned();
        match ends {
            Some(ends) => {
                let batch = self.path.batch();
                let x = self
                    .path
                    .at_points(self.inputs.clone(), &vec![1.0; points.len()]);
                let device = collect(&self.inputs)[0].flat().device();
                let alphas: Vec<f64> = points
                    .iter()
                    .flat_map(|p| match p {
                        At::Rows(r) => r.clone(),
                        At::Alpha(a) => vec![*a; batch],
                        At::Point(_) => unreachable!("the exact method runs on the path"),
                    })
                    .collect();
                let a = Tensor::<B, 3>::from_data(
                    TensorData::new(alphas, [points.len(), batch, 1]),
                    &device,
                );
                let replacements = self.layer_path(ends, a);
                let probe = if grad {
                    Probe::replacing(replacements)
                } else {
                    Probe::substituting(replacements)
                };
                (x, probe)
            }
            None => {
                let x = self.path.at(self.inputs.clone(), points);
                let probe = if grad {
                    Probe::watching(layers)
                } else {
                    Probe::capturing(layers)
                };
                (x, probe)
            }
        }
    }

    /// A forward at `points` ([`exact_inputs`](Self::exact_inputs)) with a trace running
    /// (`keep`: keeping the inputs of the operations kinked at zero whose outcomes it marks):
    /// the output and the trace.
    fn traced(
        &self,
        model: &M,
        points: &[At],
        ends: Option<&Endpoints<B>>,
        keep: Option<Vec<bool>>,
    ) -> Result<(AnyTensor<B>, Trace), InfluenceError> {
        let batch = self.path.batch();
        let (x, mut probe) = self.exact_inputs(points, ends, false);
        let expansion = Expansion::new(batch, points.len());
        forward_or_error(
            || {
                let args = self.args.expand(&expansion);
                match keep {
                    Some(keep) => trace::start_keeping(keep),
                    None => trace::start(),
                }
                let output = model.forward_probed(x, &args, &mut probe);
                let trace = trace::finish().unwrap_or_default();
                (output, trace)
            },
            || {
                let _ = trace::finish();
                self.given(&expansion, batch)
            },
        )
    }

    /// The patterns of the rows `(example, α)` of `points` (each [`At::Rows`]),
    /// `steps_per_pass` points at most per traced forward; returns `patterns[point][example]`,
    /// and with `want` (`[point][example]`: an outcome whose kept value the caller needs)
    /// that value's part of each such row (`[point][example]`; `None`, and no entries for
    /// the chunks after, past [`KEPT_BUDGET`]).
    #[allow(clippy::too_many_arguments, clippy::type_complexity)]
    fn evaluate(
        &self,
        model: &M,
        points: &[At],
        steps_per_pass: usize,
        kinds: &[Kind],
        ends: Option<&Endpoints<B>>,
        want: Option<&[Vec<Option<usize>>]>,
        passes: &mut usize,
    ) -> Result<(Vec<Vec<RowPattern>>, Vec<Vec<Option<Vec<f32>>>>), InfluenceError> {
        let batch = self.path.batch();
        let per = steps_per_pass.max(1);
        let mut out = Vec::with_capacity(points.len());
        let mut kept = Vec::new();
        let mut held = 0usize;
        for (c, chunk) in points.chunks(per).enumerate() {
            let want = want.map(|w| &w[c * per..c * per + chunk.len()]);
            let wanted = want.map(|want| {
                let mut wanted = vec![false; kinds.len()];
                for op in want.iter().flatten().flatten() {
                    if let Some(w) = wanted.get_mut(*op) {
                        *w = true;
                    }
                }
                wanted
            });
            // Past the budget, nothing more is kept (those segments are halved).
            let wanted = wanted.filter(|_| held < KEPT_BUDGET);
            let (_, mut trace) = self.traced(model, chunk, ends, wanted.clone())?;
            *passes += 1;
            let rows = chunk.len() * batch;
            if let (Some(want), Some(wanted)) = (want, wanted) {
                let values = kept_values::<B>(std::mem::take(&mut trace.values), rows, &wanted)?;
                for (k, per_example) in want.iter().enumerate() {
                    kept.push(
                        per_example
                            .iter()
                            .enumerate()
                            .map(|(i, op)| {
                                let (v, width) = values.get((*op)?)?.as_ref()?;
                                // Past the budget, a segment is halved instead.
                                let bytes = width * std::mem::size_of::<f32>();
                                if held + bytes > KEPT_BUDGET {
                                    return None;
                                }
                                held += bytes;
                                let row = k * batch + i;
                                Some(v[row * width..(row + 1) * width].to_vec())
                            })
                            .collect(),
                    );
                }
            }
            let patterns = row_patterns::<B>(trace, rows, kinds)?;
            out.extend(patterns.chunks(batch).map(<[RowPattern]>::to_vec));
        }
        Ok((out, kept))
    }

    /// The exact integral of the call's layers (see the [module docs](self)): their running
    /// sums, the checks to read, what the partition found, and on a path in layer space the
    /// path's end points (Layer Integrated Gradients multiplies by their difference).
    /// `rows_per_pass` bounds the rows of every forward (`internal_batch_size`); `max_pieces`
    /// the pieces of each example's path. With `conductance`, each piece's gradient is
    /// weighted by the layer's change over the piece, `h(b) − h(a)` (Layer Conductance),
    /// instead of its length.
    ///
    /// # Errors
    /// Those of the validation forward ([`Call::run`]);
    /// [`InfluenceError::NotPiecewiseLinear`]; [`InfluenceError::TooManyPieces`].
    #[allow(clippy::type_complexity)]
    pub(crate) fn run_exact(
        self,
        model: &M,
        rows_per_pass: Option<usize>,
        max_pieces: usize,
        conductance: bool,
    ) -> Result<
        (
            Sums<B::InnerBackend>,
            Deferred<B::InnerBackend>,
            ExactStats,
            Option<Endpoints<B>>,
        ),
        InfluenceError,
    > {
        let batch = self.path.batch();
        let device = collect(&self.inputs)[0].flat().device();
        let steps_per_pass = rows_per_pass
            .map_or(DEFAULT_STEPS_PER_PASS, |r| (r / batch).max(1))
            .min(MAX_STEPS_PER_PASS);
        let mut selector =
            TargetSelector::for_quantity(self.quantity.clone(), batch, steps_per_pass.max(3));
        // The validation forward: the inputs at α = 0 (the call's first point) and at 1 (and
        // on a path in layer space, the end points and the guard's reading).
        let (reference, endpoints, layer_guard) = self.validate(model, &mut selector, &device)?;
        let ends = match self.space {
            PathSpace::Layer => endpoints.as_ref(),
            PathSpace::Input => None,
        };

        // Two traced forwards, of batch and of 2·batch rows: which operations see values that
        // depend on the inputs, and the patterns at both ends of every path. On a path in
        // input space the first, at α = 0 alone, is also the guard: its output must equal the
        // validation forward's rows at α = 0, which ran beside other rows (an output that
        // depends on the other examples of its forward is `NotInferenceFunction`); in layer
        // space the validation forward took that reading.
        let (output, small) = self.traced(model, &[At::Alpha(0.0)], ends, None)?;
        let (_, large) = self.traced(model, &[At::Alpha(0.0), At::Alpha(1.0)], ends, None)?;
        let mut passes = 2;
        let kinds = check_piecewise_linear(&small, &large, batch)?;
        let guard = match layer_guard {
            Some(guard) => guard,
            None => {
                let first =
                    AnyTensor::from_flat(output.flat().clone().inner(), output.shape().to_vec())
                        .into_flat()
                        .slice(0..batch);
                (
                    (first - reference.clone()).abs().max(),
                    reference.abs().max(),
                )
            }
        };
        // The outcomes of operations kinked at zero, whose crossings can be predicted.
        let zero_kinked: Vec<bool> = small
            .made_by
            .iter()
            .map(|(_, op)| trace::ZERO_KINKED.contains(&small.ops[*op].name))
            .collect();
        let end_patterns = row_patterns::<B>(large, 2 * batch, &kinds)?;

        // The partition, in batched rounds: every open segment is split at a predicted
        // breakpoint where it can be (`predicted_split`), else halved.
        let mut open: Vec<Vec<Segment>> = Vec::with_capacity(batch);
        let mut closed: Vec<Vec<Segment>> = vec![Vec::new(); batch];
        for i in 0..batch {
            let s = Segment {
                a: 0.0,
                b: 1.0,
                pa: end_patterns[i].clone(),
                pb: end_patterns[batch + i].clone(),
                predict: true,
            };
            if s.uniform() {
                closed[i].push(s);
                open.push(Vec::new());
            } else {
                open.push(vec![s]);
            }
        }
        let rows_of = |lists: &[Vec<f64>]| -> Vec<At> {
            let steps = lists.iter().map(Vec::len).max().unwrap_or(0);
            (0..steps)
                .map(|r| {
                    At::Rows(
                        lists
                            .iter()
                            .map(|l| l.get(r).copied().unwrap_or(0.5))
                            .collect(),
                    )
                })
                .collect()
        };
        while open.iter().any(|o| !o.is_empty()) {
            // Segments that differ first at an operation kinked at zero: that operation's
            // input at both ends, from one traced forward of the ends (keeping values).
            let firsts: Vec<Vec<Option<usize>>> = open
                .iter()
                .map(|segments| {
                    segments
                        .iter()
                        .map(|s| {
                            s.predict
                                .then(|| s.pa.first_difference(&s.pb))
                                .flatten()
                                .filter(|&k| zero_kinked.get(k) == Some(&true))
                        })
                        .collect()
                })
                .collect();
            let ends_at: Vec<Vec<(f64, usize)>> = open
                .iter()
                .zip(&firsts)
                .map(|(segments, firsts)| {
                    segments
                        .iter()
                        .zip(firsts)
                        .filter_map(|(s, k)| k.map(|k| [(s.a, k), (s.b, k)]))
                        .flatten()
                        .collect()
                })
                .collect();
            let kept = if ends_at.iter().any(|l| !l.is_empty()) {
                let lists: Vec<Vec<f64>> = ends_at
                    .iter()
                    .map(|l| l.iter().map(|e| e.0).collect())
                    .collect();
                let points = rows_of(&lists);
                let want: Vec<Vec<Option<usize>>> = (0..points.len())
                    .map(|r| ends_at.iter().map(|l| l.get(r).map(|e| e.1)).collect())
                    .collect();
                let (_, kept) = self.evaluate(
                    model,
                    &points,
                    steps_per_pass,
                    &kinds,
                    ends,
                    Some(&want),
                    &mut passes,
                )?;
                kept
            } else {
                Vec::new()
            };
            // Each open segment's predicted cells, or none (then it is halved).
            let predicted: Vec<Vec<Vec<Cell>>> = open
                .iter()
                .zip(&firsts)
                .enumerate()
                .map(|(i, (segments, firsts))| {
                    let mut r = 0;
                    segments
                        .iter()
                        .zip(firsts)
                        .map(|(s, k)| {
                            let cells = k
                                .and_then(|_| {
                                    let za = kept.get(r)?.get(i)?.as_deref()?;
                                    let zb = kept.get(r + 1)?.get(i)?.as_deref()?;
                                    Some(predicted_cells(s, za, zb))
                                })
                                .unwrap_or_default();
                            if k.is_some() {
                                r += 2;
                            }
                            cells
                        })
                        .collect()
                })
                .collect();
            // The points to evaluate: the two ends of each cell, or the midpoint.
            let splits: Vec<Vec<Vec<f64>>> = open
                .iter()
                .zip(&predicted)
                .map(|(segments, predicted)| {
                    segments
                        .iter()
                        .zip(predicted)
                        .map(|(s, cells)| {
                            if cells.is_empty() {
                                vec![s.mid()]
                            } else {
                                cells.iter().flat_map(|c| [c.lo, c.hi]).collect()
                            }
                        })
                        .collect()
                })
                .collect();
            // A lower bound on the pieces, before they are evaluated: each open segment
            // holds at least one breakpoint, and each predicted cell one.
            for (i, per) in splits.iter().enumerate() {
                let pieces = per.iter().map(|p| (p.len() / 2).max(1)).sum::<usize>() + 1;
                if pieces > max_pieces {
                    return Err(InfluenceError::TooManyPieces {
                        example: i,
                        pieces,
                        max: max_pieces,
                    });
                }
            }
            let lists: Vec<Vec<f64>> = splits
                .iter()
                .map(|per| per.iter().flatten().copied().collect())
                .collect();
            let points = rows_of(&lists);
            let (patterns, _) = self.evaluate(
                model,
                &points,
                steps_per_pass,
                &kinds,
                ends,
                None,
                &mut passes,
            )?;
            for (i, segments) in open.iter_mut().enumerate() {
                let mut next = Vec::with_capacity(2 * segments.len());
                let mut r = 0;
                for ((s, at), cells) in segments.iter().zip(&splits[i]).zip(&predicted[i]) {
                    let found: Vec<RowPattern> = at
                        .iter()
                        .map(|_| {
                            r += 1;
                            patterns[r - 1][i].clone()
                        })
                        .collect();
                    let mut children = Vec::with_capacity(found.len() / 2 + 2);
                    if !cells.is_empty() {
                        // Around predicted breakpoints. A hit cell (other patterns at its
                        // ends) is closed as two pieces' ends, split at the prediction, when
                        // it holds one crossing or a run narrower than `MIN_PIECE_WIDTH`
                        // (which count as one); a wider run stays open, to be split further.
                        // A miss (one pattern at both ends: float32 put the crossing
                        // elsewhere) is closed as it is, and makes the next split of the
                        // parts beside it a halving.
                        let (mut from, mut pfrom, mut after_hit) = (s.a, s.pa.clone(), true);
                        for (cell, p) in cells.iter().zip(found.chunks(2)) {
                            let hit = p[0].hash != p[1].hash;
                            children.push(Segment {
                                a: from,
                                b: cell.lo,
                                pa: pfrom,
                                pb: p[0].clone(),
                                predict: after_hit && hit,
                            });
                            let whole = Segment {
                                a: cell.lo,
                                b: cell.hi,
                                pa: p[0].clone(),
                                pb: p[1].clone(),
                                predict: true,
                            };
                            if whole.uniform() {
                                closed[i].push(whole);
                            } else if cell.run < MIN_PIECE_WIDTH {
                                closed[i].push(Segment {
                                    a: cell.lo,
                                    b: cell.t,
                                    pa: p[0].clone(),
                                    pb: p[0].clone(),
                                    predict: true,
                                });
                                closed[i].push(Segment {
                                    a: cell.t,
                                    b: cell.hi,
                                    pa: p[1].clone(),
                                    pb: p[1].clone(),
                                    predict: true,
                                });
                            } else {
                                // Predicted again, the run would join again: halve it.
                                children.push(Segment {
                                    predict: false,
                                    ..whole
                                });
                            }
                            (from, pfrom, after_hit) = (cell.hi, p[1].clone(), hit);
                        }
                        children.push(Segment {
                            a: from,
                            b: s.b,
                            pa: pfrom,
                            pb: s.pb.clone(),
                            predict: after_hit,
                        });
                    } else {
                        let (m, pm) = (at[0], found[0].clone());
                        children.push(Segment {
                            a: s.a,
                            b: m,
                            pa: s.pa.clone(),
                            pb: pm.clone(),
                            predict: true,
                        });
                        children.push(Segment {
                            a: m,
                            b: s.b,
                            pa: pm,
                            pb: s.pb.clone(),
                            predict: true,
                        });
                    }
                    for half in children {
                        if half.uniform() || half.b - half.a <= RESOLUTION {
                            closed[i].push(half);
                        } else {
                            next.push(half);
                        }
                    }
                }
                // Each open segment holds a breakpoint: at least one more piece each.
                if next.len() >= max_pieces {
                    return Err(InfluenceError::TooManyPieces {
                        example: i,
                        pieces: next.len() + 1,
                        max: max_pieces,
                    });
                }
                *segments = next;
            }
        }
        let breakpoints: Vec<Vec<f64>> = closed
            .into_iter()
            .map(|c| cluster(&merge(c), MIN_PIECE_WIDTH))
            .collect();
        let pieces: Vec<Vec<(f64, f64)>> = breakpoints.iter().map(|b| pieces_of(b)).collect();
        if let Some((example, p)) = pieces
            .iter()
            .enumerate()
            .find(|(_, p)| p.len() > max_pieces)
        {
            return Err(InfluenceError::TooManyPieces {
                example,
                pieces: p.len(),
                max: max_pieces,
            });
        }

        // The integral: each piece's gradient at its midpoint, times the piece's length (or,
        // for Layer Conductance, times the layer's change over the piece).
        let steps = pieces.iter().map(Vec::len).max().unwrap_or(0);
        let mut sums = Sums::new(batch, self.layers.len());
        let starts: Vec<usize> = (0..steps).step_by(steps_per_pass.max(1)).collect();
        for start in starts {
            let end = start.saturating_add(steps_per_pass).min(steps);
            let n = end - start;
            let mut alphas = Vec::with_capacity(n);
            let mut weights = Vec::with_capacity(n * batch);
            for k in start..end {
                let mut row = Vec::with_capacity(batch);
                for p in &pieces {
                    let (a, b) = p.get(k).copied().unwrap_or((0.5, 0.5));
                    row.push(0.5 * (a + b));
                    weights.push(if conductance {
                        f64::from(u8::from(k < p.len()))
                    } else {
                        b - a
                    });
                }
                alphas.push(At::Rows(row));
            }
            let (x, probe) = self.exact_inputs(&alphas, ends, true);
            let expansion = Expansion::new(batch, n);
            let pass = forward_or_error(
                || {
                    let args = self.args.expand(&expansion);
                    layer_gradients_probed(model, x, &args, probe, &mut selector, n)
                },
                || self.given(&expansion, batch),
            )??;
            passes += 1;
            // Layer Conductance: the layer at the pieces' ends, `[n + 1, batch, features]`
            // per tensor (an example's ends past its last piece stay at α = 1; its rows there
            // have weight 0).
            let changes = if conductance {
                let points: Vec<At> = (start..=end)
                    .map(|k| {
                        At::Rows(
                            pieces
                                .iter()
                                .map(|p| p.get(k).map_or(1.0, |&(a, _)| a))
                                .collect(),
                        )
                    })
                    .collect();
                let (_, watches) = self.forward_at(model, &points, &device)?;
                passes += 1;
                Some(watches)
            } else {
                None
            };
            let w = Tensor::<B::InnerBackend, 3>::from_data(
                TensorData::new(weights, [n, batch, 1]),
                &device,
            );
            for (l, lg) in pass.layers.into_iter().enumerate() {
                for (k, g) in lg.gradients.into_iter().enumerate() {
                    let shape = sums.shape_of(&g);
                    let features = g.features();
                    let mut g = g.into_flat().reshape([n, batch, features]) * w.clone();
                    if let Some(watches) = &changes {
                        let h = watches[l].values[k].flat().clone().inner().reshape([
                            n + 1,
                            batch,
                            features,
                        ]);
                        g = g * (h.clone().slice(1..n + 1) - h.slice(0..n));
                    }
                    let part = g.sum_dim(0).reshape([batch, features]);
                    sums.add_part(l, k, part, shape);
                }
            }
        }
        let finite = self.path.finiteness().inner();
        let path_checks = finite.dims()[0];
        let checks = Deferred {
            values: Tensor::cat(vec![finite, guard.0, guard.1], 0),
            path_checks,
            labels: self.path.labels(),
        };
        let stats = ExactStats {
            pieces: pieces.iter().map(Vec::len).collect(),
            breakpoints,
            passes,
        };
        Ok((sums, checks, stats, endpoints))
    }
}

#[cfg(test)]
mod tests {
    use super::{
        CELL, Cell, MIN_PIECE_WIDTH, RowPattern, Segment, cluster, pieces_of, predicted_cells,
    };

    fn segment(a: f64, b: f64) -> Segment {
        let p = RowPattern {
            hash: 0,
            parts: vec![0u64].into(),
        };
        Segment {
            a,
            b,
            pa: p.clone(),
            pb: p,
            predict: true,
        }
    }

    #[test]
    fn crossings_are_predicted_from_the_ends() {
        // Units crossing zero at 0.25, at 0.75 (two: one cell), none (no sign change), and
        // one at an end (no strict change).
        let za = [1.0f32, 3.0, -3.0, 2.0, 0.0];
        let zb = [-3.0f32, -1.0, 1.0, 5.0, -1.0];
        let s = segment(0.0, 1.0);
        let cells = predicted_cells(&s, &za, &zb);
        assert_eq!(cells.len(), 2, "{cells:?}");
        assert_eq!(
            cells[0],
            Cell {
                lo: 0.25 - CELL,
                hi: 0.25 + CELL,
                t: 0.25,
                run: 0.0
            }
        );
        assert!((cells[1].t - 0.75).abs() < 1e-12);
        // On a segment [0.5, 0.7]: the same values put the crossings at 0.55 and 0.65.
        let cells = predicted_cells(&segment(0.5, 0.7), &za, &zb);
        assert!((cells[0].t - 0.55).abs() < 1e-12 && (cells[1].t - 0.65).abs() < 1e-12);
        // A crossing closer to an end than a cell's half-width: the cell reaches halfway.
        let cells = predicted_cells(&segment(0.0, 1.0), &[1e-7], &[-1.0]);
        assert_eq!(cells.len(), 1);
        assert!(cells[0].lo > 0.0 && cells[0].lo < cells[0].t && cells[0].hi > cells[0].t);
        // No sign change: no prediction.
        assert!(predicted_cells(&s, &[1.0, -2.0], &[2.0, -1.0]).is_empty());
    }

    #[test]
    fn close_breakpoints_merge_and_those_at_the_ends_go() {
        let w = MIN_PIECE_WIDTH;
        let b = [
            0.1 * w,
            0.9 * w,
            0.25,
            0.25 + 0.5 * w,
            0.25 + 0.75 * w,
            0.5,
            0.75,
            0.75 + 0.75 * w,
            0.75 + 1.5 * w,
            1.0 - 0.5 * w,
        ];
        // A run is anchored at its first breakpoint: a chain of gaps below `w` that spans
        // more than `w` is more than one breakpoint.
        assert_eq!(
            cluster(&b, w),
            vec![0.25 + 0.375 * w, 0.5, 0.75 + 0.375 * w, 0.75 + 1.5 * w]
        );
        assert_eq!(cluster(&[], w), Vec::<f64>::new());
        assert_eq!(
            pieces_of(&[0.25, 0.5]),
            vec![(0.0, 0.25), (0.25, 0.5), (0.5, 1.0)]
        );
    }
}
