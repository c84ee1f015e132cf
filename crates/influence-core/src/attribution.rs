//! What a layer attribution gives back: [`Attribution`], one tensor per tensor of the layer.

use burn::tensor::{Tensor, backend::Backend};

use crate::{AnyTensor, InfluenceError, LayerSide};

/// The attribution of one layer: one tensor per tensor the layer gives (or takes), each
/// shaped like it, `[batch, ...]`.
///
/// The tensors live on the backend's inner (non-autodiff) backend, on the device. The common
/// reads are one call each:
///
/// | call | gives |
/// |---|---|
/// | [`to_vec`](Self::to_vec) | the values, `Vec<f32>`, row-major over [`shape`](Self::shape) |
/// | [`into_single::<D>`](Self::into_single) | the tensor at its rank, `Tensor<_, D>` |
/// | [`per_example`](Self::per_example) | `[batch, neurons]`: every neuron of the layer, flattened |
/// | [`per_channel`](Self::per_channel) | `[batch, channels]`: summed over the dims after dim 1 (the paper's unit for convolutions) |
///
/// A layer with several tensors is read with [`tensors`](Self::tensors) instead.
#[derive(Debug, Clone)]
pub struct Attribution<B: Backend> {
    pub(crate) layer: String,
    pub(crate) side: LayerSide,
    pub(crate) tensors: Vec<AnyTensor<B>>,
}

impl<B: Backend> Attribution<B> {
    /// The explained layer.
    pub fn layer(&self) -> &str {
        &self.layer
    }

    /// Whether this attributes to the layer's output or input.
    pub fn side(&self) -> LayerSide {
        self.side
    }

    /// The tensors, in the order the layer gives them.
    pub fn tensors(&self) -> &[AnyTensor<B>] {
        &self.tensors
    }

    /// The tensors, by value.
    pub fn into_tensors(self) -> Vec<AnyTensor<B>> {
        self.tensors
    }

    /// The one tensor of a single-tensor layer.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`] when the layer has several tensors.
    pub fn single(&self) -> Result<&AnyTensor<B>, InfluenceError> {
        match self.tensors.as_slice() {
            [t] => Ok(t),
            ts => Err(InfluenceError::NotSingle { count: ts.len() }),
        }
    }

    /// The full shape of a single-tensor layer's attribution, `[batch, ...]`, like the layer's
    /// output (or input).
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`] when the layer has several tensors.
    pub fn shape(&self) -> Result<&[usize], InfluenceError> {
        Ok(self.single()?.shape())
    }

    /// The attribution of a layer with a single tensor, at its rank `D`.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`] when the layer has several tensors,
    /// [`InfluenceError::Rank`] when its rank is not `D`.
    pub fn into_single<const D: usize>(self) -> Result<Tensor<B, D>, InfluenceError> {
        self.single()?.clone().into_tensor()
    }

    /// The values of a single-tensor layer's attribution, row-major over
    /// [`shape`](Self::shape). A synchronous device read.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`], [`InfluenceError::Read`].
    pub fn to_vec(&self) -> Result<Vec<f32>, InfluenceError> {
        self.single()?.to_vec()
    }

    /// Every neuron's attribution, flattened: `[batch, neurons]`, where `neurons` is the
    /// product of the layer's dims after the batch.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`].
    pub fn per_example(&self) -> Result<Tensor<B, 2>, InfluenceError> {
        Ok(self.single()?.flat().clone())
    }

    /// The attribution summed over the dims after dim 1: `[batch, channels]`. For a
    /// convolution's `[batch, channels, height, width]` this is the influence of each channel
    /// (the paper's "experts"); for a `[batch, features]` layer it is the attribution itself.
    ///
    /// # Errors
    /// [`InfluenceError::NotSingle`]; [`InfluenceError::Rank`] for a layer of rank 1.
    pub fn per_channel(&self) -> Result<Tensor<B, 2>, InfluenceError> {
        let t = self.single()?;
        let shape = t.shape();
        if shape.len() < 2 {
            return Err(InfluenceError::Rank {
                what: "attribution (per_channel)",
                expected: 2,
                shape: shape.to_vec(),
            });
        }
        let (batch, channels) = (shape[0], shape[1]);
        let rest: usize = shape[2..].iter().product();
        Ok(t.flat()
            .clone()
            .reshape([batch, channels, rest])
            .sum_dim(2)
            .reshape([batch, channels]))
    }
}
