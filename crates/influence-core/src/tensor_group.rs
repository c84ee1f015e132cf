//! One or more float tensors of any rank: a model's inputs, a layer's input or output.
//!
//! Captum accepts "a tensor or a tuple of tensors" everywhere. In Rust the group keeps each
//! tensor's static type, and the attribution code reaches every tensor through a
//! [`TensorMap`], whose method is generic over the rank.

use burn::tensor::{Tensor, backend::Backend};

/// A rank-generic function on float tensors, applied to each tensor of a [`TensorGroup`].
///
/// The mapped tensor must keep its rank; it may change its values, its batch size or its
/// autodiff status.
pub trait TensorMap<B: Backend> {
    /// Maps one tensor of the group.
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D>;
}

/// One float tensor or several: a model's attributed inputs, or what a layer takes or gives.
///
/// Implemented for `Tensor<B, D>` of any rank, for tuples of up to six groups, for
/// `Vec<T>` and for arrays `[T; N]`. Tensors are visited in order (tuple fields left to
/// right, vector elements first to last); that order is the order of the attributions
/// returned for a layer with several tensors, and of the baselines for several inputs.
///
/// Implement it for your own type (say an enum over ranks) by calling
/// [`TensorMap::map`] on each tensor in a fixed order.
pub trait TensorGroup<B: Backend>: Sized {
    /// Applies `f` to every tensor, in order, and rebuilds the group from the results.
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self;
}

impl<B: Backend, const D: usize> TensorGroup<B> for Tensor<B, D> {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        f.map(self)
    }
}

impl<B: Backend, T: TensorGroup<B>> TensorGroup<B> for Vec<T> {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        self.into_iter().map(|t| t.map_tensors(f)).collect()
    }
}

impl<B: Backend, T: TensorGroup<B>, const N: usize> TensorGroup<B> for [T; N] {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        self.map(|t| t.map_tensors(f))
    }
}

macro_rules! tuple_group {
    ($($name:ident),+) => {
        impl<B: Backend, $($name: TensorGroup<B>),+> TensorGroup<B> for ($($name,)+) {
            #[allow(non_snake_case)]
            fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
                let ($($name,)+) = self;
                ($($name.map_tensors(f),)+)
            }
        }
    };
}

tuple_group!(T1);
tuple_group!(T1, T2);
tuple_group!(T1, T2, T3);
tuple_group!(T1, T2, T3, T4);
tuple_group!(T1, T2, T3, T4, T5);
tuple_group!(T1, T2, T3, T4, T5, T6);

/// Collects a clone of every tensor of a group as an [`AnyTensor`](crate::AnyTensor).
pub(crate) struct Collect<B: Backend>(pub Vec<crate::AnyTensor<B>>);

impl<B: Backend> TensorMap<B> for Collect<B> {
    fn map<const D: usize>(&mut self, tensor: Tensor<B, D>) -> Tensor<B, D> {
        self.0.push(tensor.clone().into());
        tensor
    }
}

/// The tensors of a group, in order, as [`AnyTensor`](crate::AnyTensor)s.
pub(crate) fn collect<B: Backend, G: TensorGroup<B> + Clone>(
    group: &G,
) -> Vec<crate::AnyTensor<B>> {
    let mut c = Collect(Vec::new());
    let _ = group.clone().map_tensors(&mut c);
    c.0
}
