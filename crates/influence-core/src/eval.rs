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
/// primitives); float tensors move detached from the caller's autodiff graph (why: at the
/// `Tensor` implementation); other values stay as they are.
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

/// A float tensor moves detached from the caller's autodiff graph. An attribution's gradients
/// are taken with respect to the explained layer, never through the caller's operations; a
/// tensor that still tracked them (a word embedding computed on `Autodiff<_>`, say) would make
/// every operation of every forward between it and the layer a recorded node that no backward
/// pass consumes, and Burn 0.21 frees such orphans only one level per backward pass: each call
/// would leave its forwards' saved activations behind, and the graph server's cleanup, which
/// walks every entry after each backward pass, would grow slower call after call.
impl<B: AutodiffBackend, const D: usize> ToEval<B> for Tensor<B, D> {
    type Eval = Tensor<Eval<B>, D>;

    fn to_eval(self) -> Self::Eval {
        // Untracked: no parent in the graph, not a leaf requiring gradients (Burn's `detach`
        // keeps a leaf's `require_grad`; `set_require_grad(false)` makes a fresh tensor).
        let untracked = self.set_require_grad(false);
        Tensor::from_primitive(tp_out::<B, EvalMode>(untracked.into_primitive()))
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

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn_autodiff::Autodiff<burn_ndarray::NdArray>;

    fn values<BB: burn::tensor::backend::Backend>(t: Tensor<BB, 2>) -> Vec<f32> {
        t.into_data().to_vec::<f32>().expect("f32 values")
    }

    /// A tensor that tracks the caller's operations (or is a leaf requiring gradients) moves with
    /// its values and without them:
    /// a backward pass on `Eval<B>` reaches none of the caller's tensors. (Before, it did, and
    /// each forward between such an input and the explained layer was recorded and never
    /// consumed: all-MiniLM-L6-v2 from ONNX explained from its word embeddings, computed on
    /// `Autodiff<_>`, grew by about 40 MB a call.)
    #[test]
    fn a_tracked_tensor_moves_detached() {
        let device = Default::default();
        let leaf = Tensor::<B, 2>::from_floats([[1.0, -2.0]], &device).require_grad();
        let moved = (leaf.clone() * 3.0).to_eval();
        let w = Tensor::<Eval<B>, 2>::from_floats([[0.5, 4.0]], &device).require_grad();
        let g = (moved.clone() * w.clone()).sum().backward();
        assert_eq!(values(moved.inner()), [3.0, -6.0]);
        assert_eq!(values(w.grad(&g).expect("w's gradient")), [3.0, -6.0]);
        assert!(leaf.grad(&g).is_none(), "the caller's leaf got a gradient");
        // A leaf that requires gradients moves as a plain tensor too: operations on it are
        // not recorded.
        let moved_leaf = leaf.clone().to_eval();
        assert!(!moved_leaf.is_require_grad());
        assert_eq!(values(moved_leaf.inner()), [1.0, -2.0]);

        // The same on B itself: the gradient reaches the leaf.
        let g = ((leaf.clone() * 3.0) * 2.0).sum().backward();
        assert_eq!(values(leaf.grad(&g).expect("tracked on B")), [6.0, 6.0]);
    }
}
