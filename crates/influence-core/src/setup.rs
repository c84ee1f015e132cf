//! What every call does first, written once: move the caller's inputs and forward arguments
//! onto [`Eval<B>`](crate::Eval) and arrange for what the call records in Burn's graph server to
//! be freed when it returns.

use burn::tensor::backend::AutodiffBackend;

use crate::engine::SweepGraphs;
use crate::explainable::{EvalArgs, EvalInputs};
use crate::tensor_group::collect;
use crate::{Eval, Explainable, ForwardArgs, InfluenceError, ToEval};

/// The caller's inputs on `Eval<B>` (untracked, see [`ToEval`]), and the sweep that frees the
/// call's entries in Burn's graph server when it is dropped: keep it until the call returns
/// (`let (inputs, _sweep) = eval_inputs(..)`).
pub(crate) fn eval_inputs<B: AutodiffBackend, M: Explainable<B>>(
    inputs: M::Inputs,
) -> (EvalInputs<B, M>, SweepGraphs<Eval<B>>) {
    let inputs: EvalInputs<B, M> = inputs.to_eval();
    let sweep = SweepGraphs::<Eval<B>>::on(collect(&inputs).first().map(|t| t.flat().device()));
    (inputs, sweep)
}

/// The call's additional forward arguments on `Eval<B>`; none given: the model's arguments
/// when they can be absent ([`ForwardArgs::when_absent`], say `()`).
///
/// # Errors
/// [`InfluenceError::MissingForwardArgs`] when the model needs arguments and none were given.
pub(crate) fn eval_args<B: AutodiffBackend, M: Explainable<B>>(
    args: Option<M::Args>,
) -> Result<EvalArgs<B, M>, InfluenceError> {
    match args {
        Some(args) => Ok(args.to_eval()),
        None => EvalArgs::<B, M>::when_absent().ok_or(InfluenceError::MissingForwardArgs),
    }
}
