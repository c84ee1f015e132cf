//! Additional forward arguments: what a model's forward takes besides the attributed inputs.
//!
//! Captum's `additional_forward_args`: they are not interpolated. A forward of an attribution
//! runs `steps` copies of the batch at once, so:
//!
//! - a tensor whose **dim 0 is the batch** is repeated once per quadrature step (row
//!   `k * batch + i` of the expanded forward sees example `i`'s argument), as Captum does;
//! - any other tensor (a shared `[1, seq]` mask, a lookup table) and every non-tensor value is
//!   passed unchanged to every forward.
//!
//! A tensor meant per example whose dim 0 is *not* the batch (say 2 rows for a batch of 4)
//! therefore reaches the model unchanged, where its shape fails; the attribution reports that
//! as [`InfluenceError::Forward`](crate::InfluenceError::Forward), listing the argument
//! shapes against the batch.

use core::cell::RefCell;

use burn::tensor::{BasicOps, Tensor, backend::Backend};

/// How the arguments of one forward are laid out: `steps` copies of a batch of `batch`
/// examples, step-major (rows `k * batch .. (k + 1) * batch` are step `k`).
///
/// It also notes the shape of every tensor it expands, so that an error can say which
/// argument did not fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expansion {
    /// Examples in the caller's batch.
    pub batch: usize,
    /// Quadrature steps in this forward.
    pub steps: usize,
    seen: RefCell<Vec<Vec<usize>>>,
}

impl Expansion {
    /// The layout of a forward of `steps` copies of a batch of `batch`.
    pub fn new(batch: usize, steps: usize) -> Self {
        Self {
            batch,
            steps,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// Repeats a tensor whose dim 0 is the batch `steps` times along dim 0; returns any other
    /// tensor unchanged.
    ///
    /// # Shapes
    /// - tensor: `[batch, ...]` → `[steps * batch, ...]`; any other shape is kept.
    pub fn tensor<B: Backend, const D: usize, K: BasicOps<B>>(
        &self,
        tensor: &Tensor<B, D, K>,
    ) -> Tensor<B, D, K> {
        let dims = tensor.dims();
        self.seen.borrow_mut().push(dims.to_vec());
        if self.steps > 1 && dims[0] == self.batch {
            tensor.clone().repeat_dim(0, self.steps)
        } else {
            tensor.clone()
        }
    }

    /// The shapes of the tensors expanded so far, in order.
    pub fn tensor_shapes(&self) -> Vec<Vec<usize>> {
        self.seen.borrow().clone()
    }
}

/// The non-attributed arguments of a model's forward (Captum's `additional_forward_args`).
///
/// Implemented for `()` (no arguments), for tensors of every kind (float, int, bool) and
/// rank, for plain values (numbers, `bool`, `String`), and for `Option`, `Vec` and tuples of
/// these. For a struct of your own, implement [`expand`](Self::expand) with
/// [`Expansion::tensor`] on each batch tensor:
///
/// ```ignore
/// impl<B: Backend> ForwardArgs<B> for BertArgs<B> {
///     fn expand(&self, e: &Expansion) -> Self {
///         Self { attention_mask: e.tensor(&self.attention_mask), scale: self.scale }
///     }
/// }
/// ```
pub trait ForwardArgs<B: Backend>: Clone {
    /// The arguments for a forward over `e.steps` copies of the batch.
    fn expand(&self, e: &Expansion) -> Self;

    /// The value used when the caller gives no arguments; `None` when the model requires
    /// them (the default).
    fn when_absent() -> Option<Self> {
        None
    }
}

impl<B: Backend> ForwardArgs<B> for () {
    fn expand(&self, _: &Expansion) -> Self {}

    fn when_absent() -> Option<Self> {
        Some(())
    }
}

impl<B: Backend, const D: usize, K: BasicOps<B>> ForwardArgs<B> for Tensor<B, D, K> {
    fn expand(&self, e: &Expansion) -> Self {
        e.tensor(self)
    }
}

macro_rules! unchanged {
    ($($t:ty),+) => {$(
        impl<B: Backend> ForwardArgs<B> for $t {
            fn expand(&self, _: &Expansion) -> Self {
                self.clone()
            }
        }
    )+};
}

unchanged!(
    f32, f64, i8, i16, i32, i64, u8, u16, u32, u64, usize, isize, bool, String
);

impl<B: Backend, T: ForwardArgs<B>> ForwardArgs<B> for Option<T> {
    fn expand(&self, e: &Expansion) -> Self {
        self.as_ref().map(|t| t.expand(e))
    }

    fn when_absent() -> Option<Self> {
        Some(None)
    }
}

impl<B: Backend, T: ForwardArgs<B>> ForwardArgs<B> for Vec<T> {
    fn expand(&self, e: &Expansion) -> Self {
        self.iter().map(|t| t.expand(e)).collect()
    }
}

macro_rules! tuple_args {
    ($($name:ident),+) => {
        impl<B: Backend, $($name: ForwardArgs<B>),+> ForwardArgs<B> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn expand(&self, e: &Expansion) -> Self {
                let ($($name,)+) = self;
                ($($name.expand(e),)+)
            }
        }
    };
}

tuple_args!(T1);
tuple_args!(T1, T2);
tuple_args!(T1, T2, T3);
tuple_args!(T1, T2, T3, T4);
tuple_args!(T1, T2, T3, T4, T5);
tuple_args!(T1, T2, T3, T4, T5, T6);
