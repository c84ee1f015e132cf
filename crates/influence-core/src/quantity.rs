//! What is differentiated: the *quantity of interest* of Leino et al. (2018), "Influence-Directed
//! Explanations for Deep Convolutional Networks" (arXiv:1802.03788), §2.
//!
//! The paper's influence of neuron `j` of a layer is `E_{z~P} [ ∂q(z) / ∂h_j ]`: the expected
//! gradient of a quantity `q` of the model's output over a distribution of interest `P`.
//! Captum's `target` is one choice of `q` (one output value); the paper's results need others:
//!
//! | `Quantity` | `q` for example `i` at a point `z` | in the paper / TruLens |
//! |---|---|---|
//! | `Target(t)` | `F(z)[t_i]`, Captum's `target` (see [`Target`]) | `ClassQoI` |
//! | `Comparative { of: a, against: b }` | `F(z)[a_i] − F(z)[b_i]`: what makes the model prefer `a` over `b` | comparative quantity, `ComparativeQoI` |
//! | `TopClass` | `max_j F(z)[j]`: the largest output at each point (its class may change along a path) | `MaxClassQoI` |
//! | `Function(f)` | `f(F(z))[i]`: any function of the output row | a user `QoI` |
//!
//! Each side of a comparative quantity is a [`Target`]: an index shared by every example
//! (`Quantity::comparative(3, 8)`: "3 rather than 8"), one per example (`vec![..]`), or
//! [`Target::Predicted`] ("the predicted class rather than 8").
//!
//! `TopClass` is not [`Target::Predicted`]: `Predicted` fixes each example's class at the input
//! and explains that output all along the path; `TopClass` takes the largest output at every
//! point, so where the top class changes along the path, so does the explained output.
//!
//! A `Function` gets the model's output as `[rows, values per example]` (the rows are the
//! examples at several points of the distribution, `step * batch + example`) and returns one
//! value per row, `[rows]`; it must compute each row's value from that row alone (as every
//! quantity above does). It runs on the engine's backend, [`Eval<B>`](crate::Eval).

use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::panics::{panic_message, quietly};
use crate::{AnyTensor, InfluenceError, Target};

/// A quantity of interest given as a function: `[rows, values per example]` to `[rows]`.
pub type QuantityFn<B> = Arc<dyn Fn(Tensor<B, 2>) -> Tensor<B, 1> + Send + Sync>;

/// The differentiated quantity of the model's output. See the [module docs](self).
#[derive(Clone)]
pub enum Quantity<B: Backend> {
    /// One output value per example: Captum's `target`.
    Target(Target),
    /// `F[of] − F[against]` per example: the paper's comparative quantity.
    Comparative {
        /// The class (or output index) whose preference is explained.
        of: Target,
        /// The class it is compared against.
        against: Target,
    },
    /// The largest value of each example's output, at each point.
    TopClass,
    /// Any function of the output, row by row.
    Function(QuantityFn<B>),
}

impl<B: Backend> Quantity<B> {
    /// `F[of] − F[against]`: e.g. `Quantity::comparative(3, 8)` for "3 rather than 8" in every
    /// example, `Quantity::comparative(Target::Predicted, 8)` for "the predicted class rather
    /// than 8".
    pub fn comparative(of: impl Into<Target>, against: impl Into<Target>) -> Self {
        Quantity::Comparative {
            of: of.into(),
            against: against.into(),
        }
    }

    /// A quantity given as a function of the output (see the [module docs](self)).
    ///
    /// # Shapes
    /// - the function's argument: `[rows, values per example]`
    /// - its result: `[rows]`
    pub fn function(f: impl Fn(Tensor<B, 2>) -> Tensor<B, 1> + Send + Sync + 'static) -> Self {
        Quantity::Function(Arc::new(f))
    }

    /// The quantity's targets: one, two for a comparative quantity, none otherwise.
    pub(crate) fn targets(&self) -> Vec<&Target> {
        match self {
            Quantity::Target(t) => vec![t],
            Quantity::Comparative { of, against } => vec![of, against],
            Quantity::TopClass | Quantity::Function(_) => Vec::new(),
        }
    }
}

impl<B: Backend> From<Target> for Quantity<B> {
    fn from(target: Target) -> Self {
        Quantity::Target(target)
    }
}

impl<B: Backend> core::fmt::Debug for Quantity<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Quantity::Target(t) => f.debug_tuple("Target").field(t).finish(),
            Quantity::Comparative { of, against } => f
                .debug_struct("Comparative")
                .field("of", of)
                .field("against", against)
                .finish(),
            Quantity::TopClass => f.write_str("TopClass"),
            Quantity::Function(_) => f.write_str("Function(..)"),
        }
    }
}

/// Picks and sums the explained values of a step-major forward output (the quantity of
/// interest, [`Quantity`]), resolving its targets against the output's shape on the first
/// forward and reusing the uploaded indices after.
#[derive(Debug, Clone)]
pub struct TargetSelector<B: Backend> {
    quantity: Quantity<B>,
    batch: usize,
    max_steps: usize,
    /// `None` before the first forward; then, per target of the quantity, the uploaded column
    /// per row (or `None` for an output with one value per example).
    columns: Option<Vec<Option<Tensor<B, 1, Int>>>>,
}

impl<B: Backend> TargetSelector<B> {
    /// A selector of `target` for forwards of at most `max_steps` copies of a batch of
    /// `batch`.
    pub fn new(target: Target, batch: usize, max_steps: usize) -> Self {
        Self::for_quantity(Quantity::Target(target), batch, max_steps)
    }

    /// A selector of any quantity of interest for forwards of at most `max_steps` copies of a
    /// batch of `batch`.
    pub fn for_quantity(quantity: Quantity<B>, batch: usize, max_steps: usize) -> Self {
        Self {
            quantity,
            batch,
            max_steps,
            columns: None,
        }
    }

    /// `Σ_rows q(output[row])` for a forward of `steps` copies of the batch, rows ordered
    /// `step * batch + example`.
    ///
    /// # Shapes
    /// - output: `[steps * batch, ...]`
    /// - returns: `[1]`
    ///
    /// # Errors
    /// As [`select_rows`](Self::select_rows).
    pub fn select_sum(
        &mut self,
        output: AnyTensor<B>,
        steps: usize,
    ) -> Result<Tensor<B, 1>, InfluenceError> {
        Ok(self.select_rows(output, steps)?.sum())
    }

    /// `q(output[row])` for each row of a forward of `steps` copies of the batch (for a
    /// target, `output[row, target(row)]`).
    ///
    /// # Shapes
    /// - output: `[steps * batch, ...]`
    /// - returns: `[steps * batch]`
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    pub fn select_rows(
        &mut self,
        output: AnyTensor<B>,
        steps: usize,
    ) -> Result<Tensor<B, 1>, InfluenceError> {
        self.resolve(&output, steps)?;
        let rows = steps * self.batch;
        let output = output.into_flat();
        let columns = self.columns.as_ref().expect("resolved");
        let pick = |output: Tensor<B, 2>, k: usize| match &columns[k] {
            None => output.reshape([rows]),
            Some(cols) => {
                let idx = cols.clone().slice(0..rows).reshape([rows, 1]);
                output.gather(1, idx).reshape([rows])
            }
        };
        Ok(match &self.quantity {
            Quantity::Target(_) => pick(output, 0),
            Quantity::Comparative { .. } => pick(output.clone(), 0) - pick(output, 1),
            Quantity::TopClass => output.max_dim(1).reshape([rows]),
            Quantity::Function(f) => f(output),
        })
    }

    /// [`resolve`](Self::resolve) for a forward whose step `input_step` is the inputs
    /// themselves (`α = 1`): a [`Target::Predicted`] is resolved from that step's rows, on the
    /// device (the largest value of each example's row).
    ///
    /// # Errors
    /// As [`resolve`](Self::resolve).
    pub fn resolve_at_input(
        &mut self,
        output: &AnyTensor<B>,
        steps: usize,
        input_step: usize,
    ) -> Result<(), InfluenceError> {
        self.resolve_with(output, steps, Some(input_step))
    }

    /// Checks a forward's output against the quantity (its batch, the targets against its
    /// shape, a function's result) and, the first time, uploads the targets' columns.
    /// Validation forwards call it before any forward that records a graph.
    ///
    /// # Errors
    /// [`InfluenceError::OutputBatch`] when the output's dim 0 is not `steps * batch`; the
    /// errors of [`Target::columns`] ([`Target::Predicted`] is resolved by
    /// [`resolve_at_input`](Self::resolve_at_input) only); for a
    /// [`Quantity::Function`], [`InfluenceError::QuantityShape`] when it does not return one
    /// value per row and [`InfluenceError::QuantityPanicked`] when it panics.
    pub fn resolve(&mut self, output: &AnyTensor<B>, steps: usize) -> Result<(), InfluenceError> {
        self.resolve_with(output, steps, None)
    }

    fn resolve_with(
        &mut self,
        output: &AnyTensor<B>,
        steps: usize,
        input_step: Option<usize>,
    ) -> Result<(), InfluenceError> {
        let rows = steps * self.batch;
        if output.batch() != rows {
            return Err(InfluenceError::OutputBatch {
                expected: rows,
                output_shape: output.shape().to_vec(),
            });
        }
        if self.columns.is_some() {
            return Ok(());
        }
        let device = output.flat().device();
        // Errors speak of the caller's batch, not of the forward's steps × batch rows.
        let mut shape = output.shape().to_vec();
        shape[0] = self.batch;
        let mut columns = Vec::new();
        for target in self.quantity.targets() {
            if let (Target::Predicted, Some(step)) = (target, input_step) {
                let at_input = output
                    .flat()
                    .clone()
                    .slice(step * self.batch..(step + 1) * self.batch);
                let classes = at_input.argmax(1).reshape([self.batch]);
                columns.push(Some(classes.repeat_dim(0, self.max_steps)));
                continue;
            }
            let cols = target.columns(self.batch, &shape)?;
            columns.push(cols.map(|c| {
                let data: Vec<i64> = (0..self.max_steps)
                    .flat_map(|_| c.iter().map(|&c| c as i64))
                    .collect();
                let len = data.len();
                Tensor::from_data(TensorData::new(data, [len]), &device)
            }));
        }
        if let Quantity::Function(f) = &self.quantity {
            let flat = output.flat().clone();
            let got = quietly(|| f(flat).dims())
                .map_err(|panic| InfluenceError::QuantityPanicked {
                    message: panic_message(panic),
                })?
                .to_vec();
            if got != [rows] {
                return Err(InfluenceError::QuantityShape {
                    got,
                    rows,
                    output_shape: output.shape().to_vec(),
                });
            }
        }
        self.columns = Some(columns);
        Ok(())
    }
}
