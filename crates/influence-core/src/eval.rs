//! [`Eval`]: an autodiff backend in evaluation mode — PyTorch's `model.eval()` for Burn,
//! with gradients.
//!
//! Burn 0.21 has no training flag on modules. `BatchNorm`, `Dropout` and `GaussianNoise`
//! (and the burn-nn composites that hold them: transformer encoder and decoder, multi-head
//! attention) choose their behaviour from the backend: training behaviour (batch statistics
//! and running-statistics updates, random drops, noise) when `B::ad_enabled(device)` is true,
//! which it always is on `Autodiff<_>`; inference behaviour (running statistics, identity)
//! otherwise. An attribution needs both: the model's *inference* function, and gradients.
//!
//! `Eval<B>` wraps an autodiff backend `B`. Its tensors are `B`'s tensors, every operation is
//! `B`'s operation (a [`Decorator`] with one generated forwarding method per operation of
//! Burn's `Backend`), and gradients are `B`'s gradients; the one difference is
//! `Backend::ad_enabled`, which is `false`. Every module that follows Burn's convention —
//! burn-nn's own and a user's — therefore behaves as under `model.valid()`, while the
//! autodiff graph is still recorded.
//!
//! [`InternalInfluence::new`](crate::InternalInfluence::new) moves the model onto `Eval<B>`
//! with Burn's own conversions (`valid()` then `train::<Eval<B>>()`), which also gives the
//! attribution its own copy of the running statistics, so the caller's model is never
//! changed. The design note is `docs/eval-mode.md`.

use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Bool, Int, Tensor};

use crate::decorator::{Decorator, EvalMode, tp_out};

/// The autodiff backend `B` in evaluation mode: `B`'s tensors, operations and gradients, with
/// `ad_enabled` `false`, so that BatchNorm uses its running statistics and Dropout and
/// GaussianNoise are the identity, as under Burn's `valid()` (PyTorch's `model.eval()`),
/// while gradients are still tracked. See the [module docs](self).
///
/// Its inner backend is `B`'s, so gradients and results are `Tensor<B::InnerBackend, D>`, as
/// on `B`.
pub type Eval<B> = Decorator<B, EvalMode>;

/// A value that moves onto [`Eval<B>`]: a model's inputs and its additional forward arguments.
///
/// Tensors move without a copy or any device work (`B` and `Eval<B>` share their tensor
/// primitives; the autodiff graph is untouched); other values stay as they are.
///
/// Implemented for float, int and bool tensors of every rank; for `()`, numbers, `bool` and
/// `String`; and for `Option`, `Vec`, arrays and tuples of up to six of these. For a type of
/// your own (an enum over ranks, a struct of forward arguments), move each field:
///
/// ```ignore
/// impl<B: AutodiffBackend> ToEval<B> for BertArgs<B> {
///     type Eval = BertArgs<Eval<B>>;
///     fn to_eval(self) -> BertArgs<Eval<B>> {
///         BertArgs { mask: self.mask.to_eval(), scale: self.scale }
///     }
/// }
/// ```
pub trait ToEval<B: AutodiffBackend> {
    /// The same value on `Eval<B>`.
    type Eval;

    /// Moves the value.
    fn to_eval(self) -> Self::Eval;
}

impl<B: AutodiffBackend, const D: usize> ToEval<B> for Tensor<B, D> {
    type Eval = Tensor<Eval<B>, D>;

    fn to_eval(self) -> Self::Eval {
        Tensor::from_primitive(tp_out::<B, EvalMode>(self.into_primitive()))
    }
}

impl<B: AutodiffBackend, const D: usize> ToEval<B> for Tensor<B, D, Int> {
    type Eval = Tensor<Eval<B>, D, Int>;

    fn to_eval(self) -> Self::Eval {
        Tensor::from_primitive(self.into_primitive())
    }
}

impl<B: AutodiffBackend, const D: usize> ToEval<B> for Tensor<B, D, Bool> {
    type Eval = Tensor<Eval<B>, D, Bool>;

    fn to_eval(self) -> Self::Eval {
        Tensor::from_primitive(self.into_primitive())
    }
}

macro_rules! unchanged {
    ($($t:ty),+) => {$(
        impl<B: AutodiffBackend> ToEval<B> for $t {
            type Eval = $t;

            fn to_eval(self) -> Self {
                self
            }
        }
    )+};
}

unchanged!(
    (),
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
    usize,
    isize,
    bool,
    String
);

impl<B: AutodiffBackend, T: ToEval<B>> ToEval<B> for Option<T> {
    type Eval = Option<T::Eval>;

    fn to_eval(self) -> Self::Eval {
        self.map(T::to_eval)
    }
}

impl<B: AutodiffBackend, T: ToEval<B>> ToEval<B> for Vec<T> {
    type Eval = Vec<T::Eval>;

    fn to_eval(self) -> Self::Eval {
        self.into_iter().map(T::to_eval).collect()
    }
}

impl<B: AutodiffBackend, T: ToEval<B>, const N: usize> ToEval<B> for [T; N] {
    type Eval = [T::Eval; N];

    fn to_eval(self) -> Self::Eval {
        self.map(T::to_eval)
    }
}

macro_rules! tuple_to_eval {
    ($($name:ident),+) => {
        impl<B: AutodiffBackend, $($name: ToEval<B>),+> ToEval<B> for ($($name,)+) {
            type Eval = ($($name::Eval,)+);

            #[allow(non_snake_case)]
            fn to_eval(self) -> Self::Eval {
                let ($($name,)+) = self;
                ($($name.to_eval(),)+)
            }
        }
    };
}

tuple_to_eval!(T1);
tuple_to_eval!(T1, T2);
tuple_to_eval!(T1, T2, T3);
tuple_to_eval!(T1, T2, T3, T4);
tuple_to_eval!(T1, T2, T3, T4, T5);
tuple_to_eval!(T1, T2, T3, T4, T5, T6);
