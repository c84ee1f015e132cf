//! The model's inference function, run without changing the model: [`predict`] and
//! [`check_layer_names`].
//!
//! On an autodiff backend (every backend an attribution runs on), a Burn model's own
//! `model.forward(x)` runs its modules' *training* behaviour: `B::ad_enabled` is true, so
//! BatchNorm normalises with the batch's statistics and moves its running statistics (Burn's
//! `RunningState`, shared by every clone of the model), Dropout drops. A forward "just to get
//! the predicted classes" before an attribution therefore gives other logits than the model's
//! inference function, and changes the model that the attribution then explains.
//!
//! The functions here run the forward the way the attribution methods do: on a copy of the
//! model in inference mode on [`Eval<B>`](crate::Eval) (Burn's `valid()`, PyTorch's
//! `model.eval()`), inside the same panic guard. The caller's model, its running statistics
//! included, is never changed. Burn's own equivalent for predictions is
//! `model.valid().forward(x)` (on the inner backend, without gradients), which is also safe.

use burn::tensor::backend::AutodiffBackend;

use crate::explainable::EvalArgs;
use crate::inputs::PathInputs;
use crate::panics::{ForwardGiven, forward_or_error};
use crate::setup::eval_inputs;
use crate::tensor_group::collect;
use crate::{AnyTensor, Baselines, Eval, Explainable, InfluenceError, LayerProbe, Probe, ToEval};

/// The model's output in inference mode, what `model.valid().forward(inputs)` computes
/// (PyTorch's `model.eval()`; BatchNorm with its running statistics, Dropout the identity),
/// without changing the model. Use it for the predictions that choose the explained classes
/// (or let the call choose them: [`Target::Predicted`](crate::Target::Predicted)).
///
/// ```ignore
/// let logits = predict(&model, images.clone(), &())?.into_tensor::<2>()?; // [batch, classes]
/// let classes = logits.argmax(1);                                        // [batch, 1]
/// ```
///
/// # Shapes
/// - inputs: each `[batch, ...]`, the shapes the model's forward takes.
/// - returns: the model's output, `[batch, ...]`, on `B`'s inner backend (no autodiff graph).
///
/// # Errors
/// The [`InfluenceError`]s about `inputs` ([`EmptyBatch`](InfluenceError::EmptyBatch),
/// [`BatchMismatch`](InfluenceError::BatchMismatch), [`NoInputs`](InfluenceError::NoInputs),
/// [`NoFeatures`](InfluenceError::NoFeatures)); [`InfluenceError::Forward`] when the model's
/// forward panics on them.
pub fn predict<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
) -> Result<AnyTensor<B::InnerBackend>, InfluenceError>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    let (output, _) = run_inference(model, inputs, args, Probe::disabled())?;
    let shape = output.shape().to_vec();
    Ok(AnyTensor::from_flat(output.into_flat().inner(), shape))
}

/// Runs one forward of `model` in inference mode (as [`predict`]) with a
/// [recording](Probe::recording) probe and checks that [`LayerProbe::layer_names`] lists
/// exactly the layers the forward reaches. Call it in a test of your model, so that the list
/// cannot drift from the forward. The model is not changed.
///
/// Returns the reached layers in the order of the forward.
///
/// # Errors
/// [`InfluenceError::LayerNamesMismatch`] naming the layers on one side only; the errors of
/// [`predict`].
pub fn check_layer_names<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
) -> Result<Vec<String>, InfluenceError>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    let (_, probe) = run_inference(model, inputs, args, Probe::recording())?;
    let reached = probe.into_recorded();
    let listed = model.layer_names();
    let not_listed: Vec<String> = reached
        .iter()
        .filter(|n| !listed.contains(n))
        .cloned()
        .collect();
    let not_reached: Vec<String> = listed
        .iter()
        .filter(|n| !reached.contains(n))
        .cloned()
        .collect();
    if not_listed.is_empty() && not_reached.is_empty() {
        Ok(reached)
    } else {
        Err(InfluenceError::LayerNamesMismatch {
            not_listed,
            not_reached,
        })
    }
}

/// One forward of the inference-mode copy of `model` with `probe`, the inputs checked first
/// and a panic caught as [`InfluenceError::Forward`].
#[allow(clippy::type_complexity)]
fn run_inference<B, M>(
    model: &M,
    inputs: M::Inputs,
    args: &M::Args,
    mut probe: Probe<Eval<B>>,
) -> Result<(AnyTensor<Eval<B>>, Probe<Eval<B>>), InfluenceError>
where
    B: AutodiffBackend,
    M: Explainable<B>,
{
    // Whatever this call records in Burn's graph server is freed when it returns.
    let (inputs, _sweep) = eval_inputs::<B, M>(inputs);
    let path = PathInputs::new(collect(&inputs), &Baselines::<Eval<B>>::zeros())?;
    let args: EvalArgs<B, M> = args.clone().to_eval();
    let copy = model.to_eval_model();
    let output = forward_or_error(
        || copy.forward_probed(inputs, &args, &mut probe),
        || ForwardGiven {
            input_shapes: path.shapes(),
            arg_shapes: Vec::new(),
            batch: path.batch(),
        },
    )?;
    Ok((output, probe))
}
