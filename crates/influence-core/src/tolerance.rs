//! Choosing `n_steps` for an accuracy instead of taking it (not in Captum):
//! [`AttributeCall::run_to_tolerance`] doubles the quadrature points until two successive
//! results agree. The method, its cost and its limits are in `docs/quadrature.md`.

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::call::AttributeCall;
use crate::{Attribution, Distribution, Explainable, InfluenceError};

impl<B, M> AttributeCall<B, M>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    /// Chooses `n_steps` for a relative accuracy `rtol` instead of taking it (not in
    /// Captum): computes the attribution with 4, 8, 16, … points of the call's `method`,
    /// doubling until two successive results differ by at most `rtol`, and returns the finer
    /// one, the points it used and the difference as its error estimate. The difference is
    /// measured per example, relative (`‖a_2n − a_n‖₂ / ‖a_2n‖₂` over every value of the
    /// layer), and the largest over the batch is compared with `rtol`. The call's `n_steps`
    /// is not used; every other setting is. See `docs/quadrature.md` for the method, what it
    /// costs (about twice the final points, since Gauss-Legendre points are not nested) and
    /// its limits.
    ///
    /// Reads from the device after each level (a synchronous read).
    ///
    /// # Errors
    /// As [`run`](Self::run); [`InfluenceError::BadTolerance`] for an `rtol` that is not a
    /// positive finite number; [`InfluenceError::ToleranceNotReached`] when
    /// [`MAX_TOLERANCE_STEPS`] points are not enough; [`InfluenceError::NotForMethod`] for a
    /// call whose distribution is not the path.
    pub fn run_to_tolerance(self, rtol: f64) -> Result<Converged<B::InnerBackend>, InfluenceError> {
        if !(rtol.is_finite() && rtol > 0.0) {
            return Err(InfluenceError::BadTolerance { rtol });
        }
        self.single_layer()?;
        if !matches!(self.distribution, Distribution::Path) {
            // Off the path there is no n_steps to choose.
            return Err(InfluenceError::NotForMethod {
                option: "run_to_tolerance",
                method: match self.distribution {
                    Distribution::Point => "Distribution::Point",
                    _ => "Distribution::Points",
                },
            });
        }
        let mut n = 4;
        let mut coarse = self.at_steps(n).run()?;
        loop {
            let fine = self.at_steps(2 * n).run()?;
            let estimate = relative_difference(&coarse, &fine)?;
            n *= 2;
            if estimate.is_nan() {
                // A non-finite attribution (the model's own NaN or infinity): no estimate.
                return Err(InfluenceError::ToleranceNotReached {
                    rtol,
                    n_steps: n,
                    estimate,
                });
            }
            if estimate <= rtol {
                return Ok(Converged {
                    attribution: fine,
                    n_steps: n,
                    error_estimate: estimate,
                });
            }
            if 2 * n > MAX_TOLERANCE_STEPS {
                return Err(InfluenceError::ToleranceNotReached {
                    rtol,
                    n_steps: n,
                    estimate,
                });
            }
            coarse = fine;
        }
    }

    /// A copy of the call with `n_steps` points.
    fn at_steps(&self, n_steps: usize) -> Self {
        Self {
            model: self.model.clone(),
            layers: self.layers.clone(),
            path_method: self.path_method,
            inputs: self.inputs.clone(),
            baselines: self.baselines.clone(),
            quantity: self.quantity.clone(),
            distribution: self.distribution.clone(),
            multiply_by_activation: self.multiply_by_activation,
            noise_tunnel: self.noise_tunnel.clone(),
            args: self.args.clone(),
            config: self.config.clone().with_n_steps(n_steps),
            progress: self.progress.clone(),
        }
    }
}

/// The most points [`AttributeCall::run_to_tolerance`] tries (the last level it computes).
pub const MAX_TOLERANCE_STEPS: usize = 4096;

/// An attribution computed to a tolerance ([`AttributeCall::run_to_tolerance`]).
#[derive(Debug, Clone)]
pub struct Converged<B: Backend> {
    /// The attribution at [`n_steps`](Self::n_steps) points.
    pub attribution: Attribution<B>,
    /// The points used for it.
    pub n_steps: usize,
    /// Its estimated relative error: the largest over the examples of
    /// `‖a(n_steps) − a(n_steps / 2)‖₂ / ‖a(n_steps)‖₂`. It measures the error of the coarser
    /// result: for a smooth integrand it overestimates the returned one's, but where the
    /// integrand jumps (a ReLU network) the rule converges at first order and it is about the
    /// returned one's error (see `docs/quadrature.md`).
    pub error_estimate: f64,
}

/// The largest over the examples of `‖fine − coarse‖₂ / ‖fine‖₂`, every tensor of the layer
/// together (0 for an example whose attribution is zero at both).
fn relative_difference<B: Backend>(
    coarse: &Attribution<B>,
    fine: &Attribution<B>,
) -> Result<f64, InfluenceError> {
    let mut diff: Option<Tensor<B, 1>> = None;
    let mut norm: Option<Tensor<B, 1>> = None;
    for (c, f) in coarse.tensors.iter().zip(&fine.tensors) {
        let (c, f) = (c.flat().clone(), f.flat().clone());
        let batch = f.dims()[0];
        let d = (f.clone() - c).powi_scalar(2).sum_dim(1).reshape([batch]);
        let n = f.powi_scalar(2).sum_dim(1).reshape([batch]);
        diff = Some(diff.map_or(d.clone(), |s| s + d));
        norm = Some(norm.map_or(n.clone(), |s| s + n));
    }
    let (diff, norm) = (diff.expect("a tensor"), norm.expect("a tensor"));
    let read = |t: Tensor<B, 1>| -> Result<Vec<f64>, InfluenceError> {
        Ok(t.into_data().convert::<f64>().to_vec::<f64>()?)
    };
    let (diff, norm) = (read(diff)?, read(norm)?);
    Ok(diff
        .iter()
        .zip(&norm)
        .map(|(d, n)| if *d == 0.0 { 0.0 } else { (d / n).sqrt() })
        // A NaN (non-finite attribution) wins, so that it cannot pass for converged.
        .fold(0.0, |m: f64, r| {
            if r.is_nan() || m.is_nan() {
                f64::NAN
            } else {
                m.max(r)
            }
        }))
}
