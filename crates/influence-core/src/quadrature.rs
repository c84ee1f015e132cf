//! Quadrature rules on [0, 1]: the points `α_k` at which the path integral is sampled and the
//! weights `w_k` of each sample, exactly as Captum's
//! `captum.attr._utils.approximation_methods` builds them.
//!
//! | method | α_k (k = 0..n-1) | w_k | Σ w_k |
//! |---|---|---|---|
//! | `riemann_left` | k / n | 1/n | 1 |
//! | `riemann_right` | (k + 1) / n | 1/n | 1 |
//! | `riemann_middle` | (k + ½) / n | 1/n | 1 |
//! | `riemann_trapezoid` | k / (n − 1) | 1/n, halved at both ends | (n − 1)/n |
//! | `gausslegendre` | (1 + x_k) / 2 | v_k / 2 | 1 |
//!
//! where x_k, v_k are the n-point Gauss-Legendre nodes and weights on [−1, 1] (from the
//! [`gauss_quad`] crate), sorted by increasing node as NumPy's `leggauss` gives them.
//!
//! Captum's trapezoid rule keeps the plain Riemann step 1/n and halves the two end weights,
//! so its weights sum to (n − 1)/n rather than 1: the rule under-weights the integral by a
//! factor (n − 1)/n. This crate keeps that rule unchanged so that its numbers are Captum's.

use core::fmt;
use core::num::NonZeroUsize;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InfluenceError;

/// A quadrature method, with Captum's names (`method=` in `attribute`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Left Riemann sum, `riemann_left`.
    RiemannLeft,
    /// Right Riemann sum, `riemann_right`.
    RiemannRight,
    /// Midpoint Riemann sum, `riemann_middle`.
    RiemannMiddle,
    /// Captum's trapezoid rule, `riemann_trapezoid` (weights sum to (n − 1)/n).
    RiemannTrapezoid,
    /// Gauss-Legendre quadrature, `gausslegendre` (Captum's default).
    #[default]
    #[serde(rename = "gausslegendre")]
    GaussLegendre,
}

impl Method {
    /// All methods, in Captum's order of documentation.
    pub const ALL: [Method; 5] = [
        Method::RiemannLeft,
        Method::RiemannRight,
        Method::RiemannMiddle,
        Method::RiemannTrapezoid,
        Method::GaussLegendre,
    ];

    /// Captum's name: `riemann_left`, ..., `gausslegendre`.
    pub fn name(self) -> &'static str {
        match self {
            Method::RiemannLeft => "riemann_left",
            Method::RiemannRight => "riemann_right",
            Method::RiemannMiddle => "riemann_middle",
            Method::RiemannTrapezoid => "riemann_trapezoid",
            Method::GaussLegendre => "gausslegendre",
        }
    }

    /// The smallest `n_steps` the method accepts: 2 for the Riemann rules, 1 for
    /// Gauss-Legendre (Captum asserts the same).
    pub fn min_steps(self) -> usize {
        match self {
            Method::GaussLegendre => 1,
            _ => 2,
        }
    }

    /// The `n_steps`-point rule of this method.
    ///
    /// # Errors
    /// [`InfluenceError::TooFewSteps`] when `n_steps < self.min_steps()`,
    /// [`InfluenceError::TooManySteps`] above [`MAX_STEPS`].
    pub fn rule(self, n_steps: usize) -> Result<QuadratureRule, InfluenceError> {
        QuadratureRule::new(self, n_steps)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = InfluenceError;

    /// Parses Captum's names (`riemann_left`, `riemann_right`, `riemann_middle`,
    /// `riemann_trapezoid`, `gausslegendre`).
    ///
    /// # Errors
    /// [`InfluenceError::UnknownMethod`] for any other string.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| InfluenceError::UnknownMethod { name: s.to_owned() })
    }
}

/// The largest `n_steps` accepted: a million points (16 MB of rule, and a million forward
/// rows per example), far past any useful accuracy (2,000 steps are this project's reference
/// values); larger values are a typed error rather than an allocation that aborts the process.
pub const MAX_STEPS: usize = 1_000_000;

/// An `n`-point quadrature rule on [0, 1]: `∫₀¹ f(α) dα ≈ Σ_k w_k f(α_k)`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuadratureRule {
    method: Method,
    alphas: Vec<f64>,
    weights: Vec<f64>,
}

impl QuadratureRule {
    /// Builds the `n_steps`-point rule of `method` (see the [module docs](self) for the
    /// formulas).
    ///
    /// # Errors
    /// [`InfluenceError::TooFewSteps`] when `n_steps < method.min_steps()`,
    /// [`InfluenceError::TooManySteps`] above [`MAX_STEPS`].
    pub fn new(method: Method, n_steps: usize) -> Result<Self, InfluenceError> {
        if n_steps > MAX_STEPS {
            return Err(InfluenceError::TooManySteps {
                max: MAX_STEPS,
                n_steps,
            });
        }
        if n_steps < method.min_steps() {
            return Err(InfluenceError::TooFewSteps {
                method: method.name(),
                min: method.min_steps(),
                n_steps,
            });
        }
        let n = n_steps as f64;
        let (alphas, weights) = match method {
            Method::GaussLegendre => {
                let degree = NonZeroUsize::new(n_steps).expect("n_steps >= 1 checked above");
                let mut pairs = gauss_quad::legendre::GaussLegendre::new(degree)
                    .into_node_weight_pairs()
                    .into_vec();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                pairs
                    .into_iter()
                    .map(|(x, v)| (0.5 * (1.0 + x), 0.5 * v))
                    .unzip()
            }
            riemann => {
                let (start, end) = match riemann {
                    Method::RiemannLeft => (0.0, 1.0 - 1.0 / n),
                    Method::RiemannRight => (1.0 / n, 1.0),
                    Method::RiemannMiddle => (0.5 / n, 1.0 - 0.5 / n),
                    _ => (0.0, 1.0),
                };
                let alphas = linspace(start, end, n_steps);
                let mut weights = vec![1.0 / n; n_steps];
                if riemann == Method::RiemannTrapezoid {
                    weights[0] /= 2.0;
                    weights[n_steps - 1] /= 2.0;
                }
                (alphas, weights)
            }
        };
        Ok(Self {
            method,
            alphas,
            weights,
        })
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Number of points, `n_steps`.
    pub fn len(&self) -> usize {
        self.alphas.len()
    }

    /// Always false: a rule has at least one point.
    pub fn is_empty(&self) -> bool {
        self.alphas.is_empty()
    }

    /// The points `α_k` in [0, 1], increasing.
    pub fn alphas(&self) -> &[f64] {
        &self.alphas
    }

    /// The weights `w_k` (Captum's `step_sizes`).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `Σ_k w_k`: 1, except (n − 1)/n for `riemann_trapezoid`.
    pub fn weight_sum(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// `Σ_k w_k f(α_k)`, the rule's estimate of `∫₀¹ f(α) dα`.
    pub fn integrate(&self, mut f: impl FnMut(f64) -> f64) -> f64 {
        self.alphas
            .iter()
            .zip(&self.weights)
            .map(|(&a, &w)| w * f(a))
            .sum()
    }
}

/// `n` evenly spaced points from `start` to `end` inclusive (`torch.linspace`).
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    let step = (end - start) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            if i == n - 1 {
                end
            } else {
                start + step * i as f64
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-12, "{a:?} != {b:?}");
        }
    }

    #[test]
    fn riemann_rules_match_captum() {
        // Values of captum.attr._utils.approximation_methods for n = 4.
        let l = Method::RiemannLeft.rule(4).unwrap();
        close(l.alphas(), &[0.0, 0.25, 0.5, 0.75]);
        close(l.weights(), &[0.25; 4]);
        let r = Method::RiemannRight.rule(4).unwrap();
        close(r.alphas(), &[0.25, 0.5, 0.75, 1.0]);
        let m = Method::RiemannMiddle.rule(4).unwrap();
        close(m.alphas(), &[0.125, 0.375, 0.625, 0.875]);
        let t = Method::RiemannTrapezoid.rule(4).unwrap();
        close(t.alphas(), &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        close(t.weights(), &[0.125, 0.25, 0.25, 0.125]);
        assert!((t.weight_sum() - 0.75).abs() < 1e-12);
    }

    #[test]
    fn gauss_legendre_matches_numpy_leggauss() {
        // 0.5 * (1 + leggauss(3)[0]) and 0.5 * leggauss(3)[1].
        let g = Method::GaussLegendre.rule(3).unwrap();
        let r = (0.6f64).sqrt();
        close(g.alphas(), &[0.5 * (1.0 - r), 0.5, 0.5 * (1.0 + r)]);
        close(g.weights(), &[5.0 / 18.0, 8.0 / 18.0, 5.0 / 18.0]);
        let one = Method::GaussLegendre.rule(1).unwrap();
        close(one.alphas(), &[0.5]);
        close(one.weights(), &[1.0]);
        // Exact for polynomials of degree 2n - 1.
        let g5 = Method::GaussLegendre.rule(5).unwrap();
        assert!((g5.integrate(|a| a.powi(9)) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn too_few_steps_and_names() {
        assert!(matches!(
            Method::RiemannLeft.rule(1),
            Err(InfluenceError::TooFewSteps { min: 2, .. })
        ));
        assert!(matches!(
            Method::GaussLegendre.rule(0),
            Err(InfluenceError::TooFewSteps { min: 1, .. })
        ));
        for m in Method::ALL {
            assert_eq!(m.name().parse::<Method>().unwrap(), m);
        }
        assert!(matches!(
            "simpson".parse::<Method>(),
            Err(InfluenceError::UnknownMethod { .. })
        ));
    }
}
