//! Which models the attribution methods take: [`Explainable`], every Burn [`Module`] that
//! implements [`LayerProbe`] generically over the backend.
//!
//! An attribution explains a model's inference function (what `model.valid().forward(x)`
//! computes, PyTorch's `model.eval()`), with gradients. It runs a copy of the model on
//! [`Eval<B>`], made with Burn's own conversions: `valid()` (the model on the inner backend:
//! every parameter read, so a lazily initialised parameter gets its value in the caller's
//! model first, and running statistics copied into a state of their own), then
//! `train::<Eval<B>>()`, then `no_grad()`. The caller's model is never changed by an
//! attribution, and the copy shares the parameters' device memory with it.

use burn::module::{AutodiffModule, HasAutodiffModule, Module};
use burn::tensor::backend::AutodiffBackend;

use crate::{Eval, ForwardArgs, LayerProbe, TensorGroup, ToEval};

/// A model the attribution methods can explain: a Burn [`Module`] on an autodiff backend `B`
/// whose [`LayerProbe`] implementation is generic over the backend.
///
/// Implemented for every such model: a `#[derive(Module)]` struct generic over
/// `B: Backend`, with `impl<B: Backend> LayerProbe<B> for MyModel<B>` whose `Inputs` and
/// `Args` are tensors (or tuples, vectors, options of them) or types implementing
/// [`ToEval`]. The model, its inputs and arguments are shared by the threads of a call, so
/// they are `Sync` (Burn's modules and tensors are). You do not implement it yourself; in generic code, bound a model by it:
///
/// ```ignore
/// fn explain<B: AutodiffBackend, M: Explainable<B>>(model: &M, x: M::Inputs) { ... }
/// ```
pub trait Explainable<B: AutodiffBackend>:
    LayerProbe<
        B,
        Inputs: ToEval<B, Eval: TensorGroup<Eval<B>> + Clone + Send + Sync>,
        Args: ToEval<B, Eval: ForwardArgs<Eval<B>> + Sync>,
    > + AutodiffModule<B>
{
    /// The same model on [`Eval<B>`]: the model type with `Eval<B>` for `B`.
    type EvalModel: LayerProbe<
            Eval<B>,
            Inputs = <Self::Inputs as ToEval<B>>::Eval,
            Args = <Self::Args as ToEval<B>>::Eval,
        > + Module<Eval<B>>
        + Sync;

    /// A copy of the model on [`Eval<B>`], its parameters not requiring gradients. See the
    /// [module docs](self).
    fn to_eval_model(&self) -> Self::EvalModel;
}

impl<B, M> Explainable<B> for M
where
    B: AutodiffBackend,
    M: LayerProbe<
            B,
            Inputs: ToEval<B, Eval: TensorGroup<Eval<B>> + Clone + Send + Sync>,
            Args: ToEval<B, Eval: ForwardArgs<Eval<B>> + Sync>,
        > + AutodiffModule<B>,
    M::InnerModule: HasAutodiffModule<Eval<B>>,
    <M::InnerModule as HasAutodiffModule<Eval<B>>>::TrainModule: LayerProbe<
            Eval<B>,
            Inputs = <M::Inputs as ToEval<B>>::Eval,
            Args = <M::Args as ToEval<B>>::Eval,
        > + Sync,
{
    type EvalModel = <M::InnerModule as HasAutodiffModule<Eval<B>>>::TrainModule;

    fn to_eval_model(&self) -> Self::EvalModel {
        self.valid().train::<Eval<B>>().no_grad()
    }
}

/// The inputs of `M`'s copy on [`Eval<B>`].
pub(crate) type EvalInputs<B, M> =
    <<M as Explainable<B>>::EvalModel as LayerProbe<Eval<B>>>::Inputs;
/// The additional forward arguments of `M`'s copy on [`Eval<B>`].
pub(crate) type EvalArgs<B, M> = <<M as Explainable<B>>::EvalModel as LayerProbe<Eval<B>>>::Args;
