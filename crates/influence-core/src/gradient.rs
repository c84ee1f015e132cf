//! Gradients of the target with respect to watched layers, for one forward/backward pass:
//! Captum's `compute_layer_gradients_and_eval` (`captum/_utils/gradient.py`).
//!
//! Every layer method builds on this: Internal Influence needs the gradients,
//! conductance-style methods also the activations, which come along at no cost.
//!
//! Every autodiff graph built here is consumed by a backward pass before the function
//! returns, on success and on error: Burn 0.21 frees a graph's memory only when a backward
//! pass consumes it, so a graph left behind is a leak.

use burn::tensor::{Tensor, backend::AutodiffBackend};

use crate::quantity::TargetSelector;
use crate::{AnyTensor, InfluenceError, LayerProbe, LayerSide, Probe, Watch};

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

/// What one forward/backward pass gives: per watched layer its gradients and activations,
/// and the model's output.
#[derive(Debug, Clone)]
pub struct LayerGradients<B: AutodiffBackend> {
    /// One entry per watched layer, in the order they were asked for.
    pub layers: Vec<LayerGradient<B>>,
    /// The model's output for the pass, `[rows, ...]`, off the autodiff graph.
    pub output: AnyTensor<B::InnerBackend>,
}

/// Runs the model on `inputs` (a forward of `steps` copies of the batch), watching `layers`,
/// and returns the gradients of the selected outputs, summed over rows, with respect to each
/// watched layer, the layers' activations and the model's output (Captum's
/// `compute_layer_gradients_and_eval`).
///
/// This is the building block of the layer methods: Internal Influence weights and sums the
/// gradients over the quadrature steps; a conductance-style method also uses the values.
/// Several layers can be watched in one pass.
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
/// [`InfluenceError::OutputBatch`] and the target errors of [`crate::Target::columns`]. The
/// pass's autodiff graph is released on these paths too.
pub fn layer_gradients<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
    layers: &[(String, LayerSide)],
    selector: &mut TargetSelector<B>,
    steps: usize,
) -> Result<LayerGradients<B>, InfluenceError>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    layer_gradients_probed(
        model,
        inputs,
        args,
        Probe::watching(layers.iter().cloned()),
        selector,
        steps,
    )
}

/// [`layer_gradients`] with the probe given: one that [watches](Probe::watching) the layers,
/// or one that [replaces](Probe::replacing) their tensors (the gradients are then with
/// respect to the replacements).
///
/// # Errors
/// As [`layer_gradients`], and [`InfluenceError::ReplacementShape`] when a replacement does
/// not fit the tensor it replaces.
pub fn layer_gradients_probed<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
    mut probe: Probe<B>,
    selector: &mut TargetSelector<B>,
    steps: usize,
) -> Result<LayerGradients<B>, InfluenceError>
where
    B: AutodiffBackend,
    M: LayerProbe<B>,
{
    let output = model.forward_probed(inputs, args, &mut probe);
    let watches = probe.into_watches();
    let selected = check_hits(&watches)
        .and_then(|()| check_replacements(&watches))
        .and_then(|()| selector.select_sum(output.clone(), steps));
    let selected = match selected {
        Ok(s) => s,
        Err(e) => {
            release(&output, &watches);
            return Err(e);
        }
    };
    let grads = selected.backward();
    let layers = watches
        .into_iter()
        .map(|w| {
            let (gradients, values) = w
                .leaves
                .into_iter()
                .zip(w.values)
                .map(|(leaf, value)| {
                    let shape = leaf.shape().to_vec();
                    let flat = leaf.into_flat();
                    let grad = flat
                        .grad(&grads)
                        .unwrap_or_else(|| Tensor::zeros(flat.dims(), &flat.device()));
                    (
                        AnyTensor::from_flat(grad, shape.clone()),
                        AnyTensor::from_flat(value.into_flat().inner(), shape),
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
        .collect();
    let shape = output.shape().to_vec();
    Ok(LayerGradients {
        layers,
        output: AnyTensor::from_flat(output.into_flat().inner(), shape),
    })
}

/// Every watched layer reached exactly once.
///
/// # Errors
/// [`InfluenceError::LayerNotReached`], [`InfluenceError::LayerReachedTwice`] and
/// [`InfluenceError::PointHasNoInput`].
pub(crate) fn check_hits<B: burn::tensor::backend::Backend>(
    watches: &[Watch<B>],
) -> Result<(), InfluenceError> {
    for w in watches {
        if w.point_input {
            return Err(InfluenceError::PointHasNoInput {
                name: w.layer.clone(),
            });
        }
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
    Ok(())
}

/// Every replacement fitted the tensor it replaced.
fn check_replacements<B: burn::tensor::backend::Backend>(
    watches: &[Watch<B>],
) -> Result<(), InfluenceError> {
    match watches
        .iter()
        .find_map(|w| w.mismatch.clone().map(|m| (w.layer.clone(), m)))
    {
        Some((layer, (expected, got))) => Err(InfluenceError::ReplacementShape {
            layer,
            expected,
            got,
        }),
        None => Ok(()),
    }
}

/// Consumes the graph of a forward whose result is not used, so that Burn frees it.
///
/// The watched leaves are the only tensors of the forward that require a gradient (the model
/// is `no_grad`, the inputs are constants), so every recorded operation descends from one;
/// without a leaf nothing was recorded. A backward pass from the output plus zero times each
/// leaf visits all of it.
fn release<B: AutodiffBackend>(output: &AnyTensor<B>, watches: &[Watch<B>]) {
    let mut root: Option<Tensor<B, 1>> = None;
    for leaf in watches.iter().flat_map(|w| &w.leaves) {
        let zero = leaf.flat().clone().sum().mul_scalar(0.0);
        root = Some(match root {
            Some(r) => r + zero,
            None => zero,
        });
    }
    if let Some(root) = root {
        let _ = (root + output.flat().clone().sum().mul_scalar(0.0)).backward();
    }
}
