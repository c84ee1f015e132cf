//! The start of the integration path: Captum's `baselines` argument.
//!
//! One baseline per input; the forms may be mixed across inputs:
//!
//! | `Baseline` | Captum | meaning |
//! |---|---|---|
//! | `Zeros` | `None` | all zeros |
//! | `Scalar(v)` | a number | every value `v` |
//! | `Tensor(t)`, `t`: `[batch, ...]` | a tensor of the input's shape | one baseline per example |
//! | `Tensor(t)`, `t`: `[1, ...]` | a tensor with first dim 1 | shared by every example |

use burn::tensor::{Tensor, backend::AutodiffBackend, backend::Backend};

use crate::{AnyTensor, Eval, ToEval};

/// The baseline of one input. See the [module docs](self).
#[derive(Debug, Clone, Default)]
pub enum Baseline<B: Backend> {
    /// All zeros (Captum's default).
    #[default]
    Zeros,
    /// Every value the same.
    Scalar(f64),
    /// A tensor of the input's shape, or with a first dim of 1 to share it over the batch.
    Tensor(AnyTensor<B>),
}

impl<B: Backend> From<f64> for Baseline<B> {
    fn from(v: f64) -> Self {
        Baseline::Scalar(v)
    }
}

impl<B: Backend> From<f32> for Baseline<B> {
    fn from(v: f32) -> Self {
        Baseline::Scalar(v as f64)
    }
}

impl<B: Backend, const D: usize> From<Tensor<B, D>> for Baseline<B> {
    fn from(t: Tensor<B, D>) -> Self {
        Baseline::Tensor(t.into())
    }
}

/// The baselines of all inputs: zeros for every input (Captum's `baselines=None`), or one
/// [`Baseline`] per input.
#[derive(Debug, Clone, Default)]
pub struct Baselines<B: Backend>(Option<Vec<Baseline<B>>>);

impl<B: Backend> Baselines<B> {
    /// Zeros for every input.
    pub fn zeros() -> Self {
        Self(None)
    }

    /// One baseline per input, in the order of the inputs.
    pub fn per_input(baselines: Vec<Baseline<B>>) -> Self {
        Self(Some(baselines))
    }

    /// The per-input list, or `None` for zeros everywhere.
    pub fn as_slice(&self) -> Option<&[Baseline<B>]> {
        self.0.as_deref()
    }
}

impl<B: Backend> From<Baseline<B>> for Baselines<B> {
    /// The baseline of a single-input model.
    fn from(b: Baseline<B>) -> Self {
        Self(Some(vec![b]))
    }
}

impl<B: Backend> From<Vec<Baseline<B>>> for Baselines<B> {
    fn from(v: Vec<Baseline<B>>) -> Self {
        Self(Some(v))
    }
}

impl<B: Backend> From<AnyTensor<B>> for Baseline<B> {
    fn from(t: AnyTensor<B>) -> Self {
        Baseline::Tensor(t)
    }
}

impl<B: Backend> From<AnyTensor<B>> for Baselines<B> {
    fn from(t: AnyTensor<B>) -> Self {
        Baseline::from(t).into()
    }
}

impl<B: Backend> From<f64> for Baselines<B> {
    /// A scalar baseline for a single-input model.
    fn from(v: f64) -> Self {
        Baseline::from(v).into()
    }
}

impl<B: Backend> From<f32> for Baselines<B> {
    /// A scalar baseline for a single-input model.
    fn from(v: f32) -> Self {
        Baseline::from(v).into()
    }
}

impl<B: Backend, const D: usize> From<Tensor<B, D>> for Baselines<B> {
    /// A tensor baseline for a single-input model.
    fn from(t: Tensor<B, D>) -> Self {
        Baseline::from(t).into()
    }
}

impl<B: AutodiffBackend> ToEval<B> for Baselines<B> {
    type Eval = Baselines<Eval<B>>;

    fn to_eval(self) -> Baselines<Eval<B>> {
        Baselines(self.0.map(|v| {
            v.into_iter()
                .map(|b| match b {
                    Baseline::Zeros => Baseline::Zeros,
                    Baseline::Scalar(v) => Baseline::Scalar(v),
                    Baseline::Tensor(t) => Baseline::Tensor(t.to_eval()),
                })
                .collect()
        }))
    }
}
