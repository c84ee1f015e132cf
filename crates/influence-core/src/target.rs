//! Which output value is explained: Captum's `target` argument.
//!
//! The model output has shape `[batch, d1, ..., dk]`. The explained function of example `i`
//! is one value of its row:
//!
//! | `Target` | Captum | value explained for example i |
//! |---|---|---|
//! | `None` | `target=None` | `output[i]` (the output must have one value per example) |
//! | `Index(j)` | `target=j` | `output[i, j]` (output `[batch, d1]`) |
//! | `Tuple([j1, .., jk])` | `target=(j1, .., jk)` | `output[i, j1, .., jk]` |
//! | `PerExample([j_0, ..])` | `target=[j_0, ..]` / a tensor | `output[i, j_i]` |
//! | `PerExampleTuple([t_0, ..])` | `target=[t_0, ..]`, tuples | `output[i, t_i...]` |
//! | `Predicted` | `target=model.eval()(x).argmax(1)` | `output[i, argmax_j output(x_i)[j]]`: the class the model predicts for the input |
//!
//! What converts into a `Target` follows Captum's split between a tuple and a list, with
//! Rust's own tuple and list types, so the intent shows in the code:
//!
//! | you write | is | Captum |
//! |---|---|---|
//! | `.target(3)` | `Index(3)` | `target=3` |
//! | `.target((1, 0))` (a Rust tuple) | `Tuple([1, 0])`: the same index tuple for every example | `target=(1, 0)` |
//! | `.target(vec![2, 7, 0])` (a `Vec` or slice) | `PerExample([2, 7, 0])`: one class per example | `target=[2, 7, 0]` |
//! | `.target(Target::from_tensor(preds)?)` | `PerExample`, read from an integer tensor (`argmax(1)` output) | `target=tensor` |
//!
//! An array (`[2, 7, 0]`) converts to neither, on purpose: it would be read as one or the
//! other silently.
//!
//! `Target::Predicted` explains each example for the class the model predicts for it: the
//! largest value of its output row at the input itself (`α = 1`), taken from the
//! attribution's own validation forward, in inference mode, on the device, with no extra
//! forward and no read back. It is what Captum users write as
//! `target=model(x).argmax(1)` after `model.eval()`, without the trap of computing the
//! predictions with a forward that changes the model (a Burn model on an autodiff backend
//! runs BatchNorm in training mode and moves its running statistics; see
//! [`predict`](crate::predict)). Ties are broken as Burn's `argmax` breaks them.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use crate::InfluenceError;

/// The output value to explain for each example. See the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Target {
    /// No target: the output has exactly one value per example.
    #[default]
    None,
    /// The same index into dim 1 for every example (output `[batch, classes]`).
    Index(usize),
    /// The same index tuple into dims 1..=k for every example.
    Tuple(Vec<usize>),
    /// One index into dim 1 per example.
    PerExample(Vec<usize>),
    /// One index tuple per example.
    PerExampleTuple(Vec<Vec<usize>>),
    /// Per example, the index of the largest value of its output at the input (the predicted
    /// class), from the model's inference function. Resolved by an attribution call; see the
    /// [module docs](self).
    Predicted,
}

impl From<usize> for Target {
    fn from(index: usize) -> Self {
        Target::Index(index)
    }
}

impl From<Vec<usize>> for Target {
    /// One index per example, like a Captum target list or tensor.
    fn from(indices: Vec<usize>) -> Self {
        Target::PerExample(indices)
    }
}

impl From<&[usize]> for Target {
    /// One index per example, like a Captum target list or tensor.
    fn from(indices: &[usize]) -> Self {
        Target::PerExample(indices.to_vec())
    }
}

macro_rules! tuple_target {
    ($($i:ident),+) => {
        impl From<($(tuple_target!(@usize $i),)+)> for Target {
            /// One index tuple shared by every example, like a Captum target tuple.
            fn from(($($i,)+): ($(tuple_target!(@usize $i),)+)) -> Self {
                Target::Tuple(vec![$($i),+])
            }
        }
    };
    (@usize $i:ident) => { usize };
}

tuple_target!(a);
tuple_target!(a, b);
tuple_target!(a, b, c);
tuple_target!(a, b, c, d);

impl From<Option<usize>> for Target {
    fn from(index: Option<usize>) -> Self {
        index.map_or(Target::None, Target::Index)
    }
}

impl Target {
    /// One class per example, read from an integer tensor: the `[batch]` or `[batch, 1]`
    /// output of `argmax(1)`, of any backend and any Int element type (Captum's tensor
    /// target). A synchronous device read; on WebGPU in a browser use
    /// [`from_tensor_async`](Self::from_tensor_async).
    ///
    /// # Errors
    /// [`InfluenceError::TargetTensorShape`] for another shape,
    /// [`InfluenceError::TargetNegative`] for a negative index, [`InfluenceError::Read`] when
    /// the read fails.
    pub fn from_tensor<B: Backend, const D: usize>(
        tensor: Tensor<B, D, Int>,
    ) -> Result<Target, InfluenceError> {
        check_target_shape(&tensor.dims())?;
        let data = tensor
            .try_into_data()
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        per_example_from(data)
    }

    /// [`from_tensor`](Self::from_tensor) without a blocking read.
    ///
    /// # Errors
    /// As [`from_tensor`](Self::from_tensor).
    pub async fn from_tensor_async<B: Backend, const D: usize>(
        tensor: Tensor<B, D, Int>,
    ) -> Result<Target, InfluenceError> {
        check_target_shape(&tensor.dims())?;
        let data = tensor
            .into_data_async()
            .await
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        per_example_from(data)
    }

    /// The column of the `[batch, d1 * ... * dk]` view of the output that holds each
    /// example's explained value, or `None` when the output has one value per example.
    ///
    /// # Errors
    /// - [`InfluenceError::TargetMissing`]: no target and more than one value per example;
    /// - [`InfluenceError::TargetCount`]: per-example targets not one per example;
    /// - [`InfluenceError::TargetArity`]: a tuple without one index per output dim after the
    ///   batch (an `Index` counts as a tuple of one);
    /// - [`InfluenceError::TargetOutOfRange`]: an index past the end of its dim;
    /// - [`InfluenceError::PredictedUnresolved`]: [`Target::Predicted`], which needs the
    ///   output's values, not only its shape.
    pub fn columns(
        &self,
        batch: usize,
        output_shape: &[usize],
    ) -> Result<Option<Vec<usize>>, InfluenceError> {
        let dims = &output_shape[1..];
        let per_example: usize = dims.iter().product();
        let flat = |tuple: &[usize], example: Option<usize>| -> Result<usize, InfluenceError> {
            if tuple.len() != dims.len() {
                return Err(InfluenceError::TargetArity {
                    got: tuple.len(),
                    expected: dims.len(),
                    output_shape: output_shape.to_vec(),
                });
            }
            let mut col = 0;
            for (d, (&i, &size)) in tuple.iter().zip(dims).enumerate() {
                if i >= size {
                    return Err(InfluenceError::TargetOutOfRange {
                        index: i,
                        dim: d + 1,
                        size,
                        output_shape: output_shape.to_vec(),
                        example,
                    });
                }
                col = col * size + i;
            }
            Ok(col)
        };
        let count = |n: usize| {
            if n == batch {
                Ok(())
            } else {
                Err(InfluenceError::TargetCount { got: n, batch })
            }
        };
        let cols = match self {
            Target::None => {
                if per_example != 1 {
                    return Err(InfluenceError::TargetMissing {
                        output_shape: output_shape.to_vec(),
                        per_example,
                    });
                }
                return Ok(None);
            }
            Target::Index(i) => vec![flat(&[*i], None)?; batch],
            Target::Tuple(t) => vec![flat(t, None)?; batch],
            Target::PerExample(v) => {
                count(v.len())?;
                v.iter()
                    .enumerate()
                    .map(|(e, &i)| flat(&[i], Some(e)))
                    .collect::<Result<_, _>>()?
            }
            Target::PerExampleTuple(v) => {
                count(v.len())?;
                v.iter()
                    .enumerate()
                    .map(|(e, t)| flat(t, Some(e)))
                    .collect::<Result<_, _>>()?
            }
            Target::Predicted => return Err(InfluenceError::PredictedUnresolved),
        };
        Ok(Some(cols))
    }

    /// Checks the per-example count before any forward pass (the rest needs the output's
    /// shape).
    pub(crate) fn check_count(&self, batch: usize) -> Result<(), InfluenceError> {
        let n = match self {
            Target::PerExample(v) => v.len(),
            Target::PerExampleTuple(v) => v.len(),
            _ => return Ok(()),
        };
        if n == batch {
            Ok(())
        } else {
            Err(InfluenceError::TargetCount { got: n, batch })
        }
    }
}

fn check_target_shape(shape: &[usize]) -> Result<(), InfluenceError> {
    match shape {
        [_] | [_, 1] => Ok(()),
        _ => Err(InfluenceError::TargetTensorShape {
            shape: shape.to_vec(),
        }),
    }
}

fn per_example_from(data: TensorData) -> Result<Target, InfluenceError> {
    let values = data.convert::<i64>().to_vec::<i64>()?;
    values
        .into_iter()
        .enumerate()
        .map(|(example, value)| {
            usize::try_from(value).map_err(|_| InfluenceError::TargetNegative { value, example })
        })
        .collect::<Result<_, _>>()
        .map(Target::PerExample)
}
