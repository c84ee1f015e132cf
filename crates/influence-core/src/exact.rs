//! Exact Internal Influence, Layer Conductance and Layer Integrated Gradients for
//! piecewise-linear networks (not in Captum): [`AttributeCall::run_exact`]. The method is in `engine/exact.rs`; its use, cost and
//! limits in `docs/quadrature.md`.

use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::call::AttributeCall;
use crate::{Attribution, Explainable, InfluenceError, MAX_EXACT_PIECES};

impl<B, M> AttributeCall<B, M>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    /// The exact integral instead of a quadrature rule (not in Captum), for networks that are
    /// piecewise linear in their inputs: linear maps and convolutions, ReLU, leaky ReLU and
    /// PReLU, max and average pools, BatchNorm in inference mode (its running statistics
    /// are parameters), dropout in inference mode, sums, reshapes, concatenations. The path
    /// is cut into the pieces on which the network is affine (ExactLine: Sotoudeh & Thakur,
    /// "Computing Linear Restrictions of Neural Networks", NeurIPS 2019); on each piece the
    /// gradient is constant, so the sum over the pieces is the integral, without the
    /// quadrature error of `n_steps` points (Captum's default, 50 Gauss-Legendre points,
    /// leaves about 1e-2 on a ReLU CNN: `docs/quadrature.md`). Per method:
    ///
    /// - **Internal Influence**: `Σ_pieces (b − a) · ∂F/∂h(x(mid))`, the path in input space.
    /// - **Layer Conductance**: `Σ_pieces ∂F/∂h(x(mid)) · (h(x(b)) − h(x(a)))` on the same
    ///   partition (on a piece `h` is affine and `∂F/∂h` constant): the limit of Captum's
    ///   sum, which sums to `F(x) − F(x')` over the layer's neurons when every path from the
    ///   input to the output runs through the layer.
    /// - **Layer Integrated Gradients**: the path `h(x') + β (h(x) − h(x'))` in the layer's
    ///   space, cut into the pieces on which the network above the layer is affine; the
    ///   model runs on the inputs themselves, the layer's tensor replaced, as in
    ///   [`run`](Self::run); times `h(x) − h(x')` with `multiply_by_inputs` (its default).
    ///   The operations below the layer must be piecewise linear too (the check does not
    ///   know where the layer is), though their values do not change along this path.
    ///
    /// The pieces are found from the activation patterns (every comparison, ReLU side and
    /// max-pool winner of the forward, recorded by the backend decorator): a segment whose
    /// ends share one pattern is affine throughout, because the inputs sharing a pattern
    /// form a convex set. Segments whose ends differ are split in batched rounds of
    /// untracked forwards: at the zero crossings of the first differing ReLU (leaky ReLU,
    /// PReLU, absolute value), predicted from its input at the ends and confirmed by the
    /// patterns around each (ExactLine's step), else at the midpoint, down to 2⁻²⁴ of α. The
    /// integral is one forward/backward pass per chunk of pieces (Layer Conductance adds one
    /// forward of the pieces' ends, one step more than the chunk). The call's
    /// `internal_batch_size` bounds every pass's rows (without it, 100 points of each
    /// example's path per pass); `n_steps`, `method`, `threads` and `progress` are not used
    /// (one thread; no progress calls).
    ///
    /// The result is exact up to float32 rounding: each piece's gradient is evaluated in
    /// float32 like any quadrature point.
    ///
    /// # Shapes
    /// As [`run`](Self::run).
    ///
    /// # Errors
    /// As [`run`](Self::run); [`InfluenceError::NotPiecewiseLinear`] naming the first
    /// operation that is not piecewise linear in the inputs (a smooth function such as
    /// `float_exp`, `gelu`, `softmax`, `layer_norm`, `tanh`, `sigmoid`; a product or quotient
    /// of two input-dependent values; an operation the method does not know);
    /// [`InfluenceError::TooManyPieces`] when an example's path has more than
    /// [`MAX_EXACT_PIECES`] pieces; [`InfluenceError::NotForMethod`] for a call that is not a
    /// path integral (a `Distribution` other than the path, a noise tunnel,
    /// `multiply_by_activation`, `Quantity::TopClass` or `Quantity::Function`, whose kinks
    /// the method cannot see); [`InfluenceError::NotInferenceFunction`] when an example's
    /// output depends on the other rows of its forward; [`InfluenceError::Read`] when a
    /// recorded pattern cannot be read back; [`InfluenceError::ReplacementShape`] (Layer
    /// Integrated Gradients) as for [`run`](Self::run).
    pub fn run_exact(self) -> Result<ExactAttribution<B::InnerBackend>, InfluenceError> {
        self.run_exact_with(MAX_EXACT_PIECES)
    }

    /// [`run_exact`](Self::run_exact) with another cap on the pieces of each example's path.
    ///
    /// # Errors
    /// As [`run_exact`](Self::run_exact).
    pub fn run_exact_with(
        self,
        max_pieces: usize,
    ) -> Result<ExactAttribution<B::InnerBackend>, InfluenceError> {
        self.single_layer()?;
        let c = self.compute_with(false, Some(max_pieces))?;
        c.checks.check()?;
        let stats = c.exact.expect("an exact call reports its partition");
        Ok(ExactAttribution {
            attribution: c.attributions.into_iter().next().expect("one layer"),
            pieces: stats.pieces,
            breakpoints: stats.breakpoints,
            passes: stats.passes,
        })
    }
}

/// An exact attribution ([`AttributeCall::run_exact`]).
#[derive(Debug, Clone)]
pub struct ExactAttribution<B: Backend> {
    /// The attribution, as [`AttributeCall::run`] gives it.
    pub attribution: Attribution<B>,
    /// The affine pieces of each example's path, `[batch]` (for Layer Integrated Gradients,
    /// of its path in the layer's space): the runs of one activation pattern along it, at
    /// the resolution [`MIN_PIECE_WIDTH`](crate::MIN_PIECE_WIDTH) in α (closer breakpoints
    /// count as one; float32 cannot order values closer than their rounding).
    pub pieces: Vec<usize>,
    /// Each example's breakpoints: the α in `(0, 1)` where one piece ends and the next
    /// begins, sorted, `pieces[i] − 1` of them: each within 2⁻²⁴ of where float32 puts
    /// it, or at a predicted crossing that float32 confirmed within
    /// [`MIN_PIECE_WIDTH`](crate::MIN_PIECE_WIDTH)
    /// (float32 rounding moves a shallow zero crossing by up to about 1e-5).
    pub breakpoints: Vec<Vec<f64>>,
    /// The passes the call ran: traced forwards (for the partition) and forward/backward
    /// passes (for the integral).
    pub passes: usize,
}
