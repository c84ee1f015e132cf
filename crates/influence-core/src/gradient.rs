//! Gradients of the target with respect to watched layers, for one forward/backward pass:
//! Captum's `compute_layer_gradients_and_eval` (`captum/_utils/gradient.py`).
//!
//! Every layer method builds on this: Internal Influence needs the gradients,
//! conductance-style methods also the activations, which come along at no cost.

use burn::tensor::{Tensor, backend::AutodiffBackend};

use crate::target::TargetSelector;
use crate::{AnyTensor, InfluenceError, LayerProbe, LayerSide, Probe};

/// The gradient of the explained output with respect to one watched layer, and the layer's
/// activation, for one forward pass.
#[derive(Debug, Clone)]
pub struct LayerGradient<B: AutodiffBackend> {
    /// The layer's name.
    pub layer: String,
    /// Input or output of the layer.
    pub side: LayerSide,
    /// `∂ Σ_rows F_target(row) / ∂h`, one tensor per layer tensor, each shaped like it
    /// (`[rows, ...]`). Zeros where the target does not depend on the tensor.
    pub gradients: Vec<AnyTensor<B::InnerBackend>>,
    /// The activation `h` itself, one tensor per layer tensor.
    pub values: Vec<AnyTensor<B::InnerBackend>>,
}

/// Runs the model on `inputs` (a forward of `steps` copies of the batch), watching `layers`,
/// and returns the gradients of the selected outputs, summed over rows, with respect to each
/// watched layer, and the layers' activations (Captum's `compute_layer_gradients_and_eval`).
///
/// This is the building block of the layer methods: Internal Influence weights and sums the
/// gradients over the quadrature steps; a conductance-style method would also use the
/// values. Several layers can be watched in one pass.
///
/// # Shapes
/// - inputs: each `[steps * batch, ...]`, rows ordered `step * batch + example`
/// - returned gradients and values: each `[steps * batch, ...]`, shaped like the layer tensor
///
/// Rows are independent in a model without cross-example operations, so the gradient of
/// the sum is, row by row, the gradient of each row's own target value.
///
/// # Errors
/// [`InfluenceError::LayerNotReached`], [`InfluenceError::LayerReachedTwice`],
/// [`InfluenceError::OutputBatch`] and the target errors of [`crate::Target::columns`].
pub fn layer_gradients<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
    layers: &[(String, LayerSide)],
    selector: &mut TargetSelector<B>,
    steps: usize,
) -> Result<Vec<LayerGradient<B>>, InfluenceError>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    let mut probe = Probe::watching(layers.iter().cloned());
    let output = model.forward_probed(inputs, args, &mut probe);
    let watches = probe.into_watches();
    for w in &watches {
        match w.hits {
            0 => {
                return Err(InfluenceError::LayerNotReached {
                    name: w.layer.clone(),
                    side: w.side.as_str(),
                });
            }
            1 => {}
            n => {
                return Err(InfluenceError::LayerReachedTwice {
                    name: w.layer.clone(),
                    times: n,
                });
            }
        }
    }
    let grads = selector.select_sum(output, steps)?.backward();
    Ok(watches
        .into_iter()
        .map(|w| {
            let (gradients, values) = w
                .leaves
                .into_iter()
                .map(|leaf| {
                    let shape = leaf.shape().to_vec();
                    let flat = leaf.into_flat();
                    let grad = flat
                        .grad(&grads)
                        .unwrap_or_else(|| Tensor::zeros(flat.dims(), &flat.device()));
                    (
                        AnyTensor::from_flat(grad, shape.clone()),
                        AnyTensor::from_flat(flat.inner(), shape),
                    )
                })
                .unzip();
            LayerGradient {
                layer: w.layer,
                side: w.side,
                gradients,
                values,
            }
        })
        .collect())
}
