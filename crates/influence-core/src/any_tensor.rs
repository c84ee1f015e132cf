//! A float tensor of any rank, kept as a `[batch, features]` matrix plus its full shape.
//!
//! Burn tensors carry their rank in the type (`Tensor<B, D>`), but a model's layers have
//! different ranks (`[batch, features]`, `[batch, seq, hidden]`,
//! `[batch, channels, height, width]`) and the layer is picked by name at run time. The
//! attribution machinery works on the flattened `[batch, features]` view, which is all the
//! method needs (every operation acts per example), and gives the tensor back at its rank.

use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};

use crate::{Eval, InfluenceError, TensorGroup, TensorMap, ToEval};

/// A float tensor of any rank ≥ 1 whose dim 0 is the batch.
///
/// # Shapes
/// - [`shape`](Self::shape): the full shape `[batch, d1, ..., dk]`
/// - [`flat`](Self::flat): the same values as `[batch, d1 * ... * dk]` (row-major)
#[derive(Debug, Clone)]
pub struct AnyTensor<B: Backend> {
    flat: Tensor<B, 2>,
    shape: Vec<usize>,
}

impl<B: Backend> AnyTensor<B> {
    /// Wraps a `[batch, features]` matrix that stands for a tensor of shape `shape`.
    ///
    /// `shape[0]` must be the matrix's rows and the product of the rest its columns.
    pub(crate) fn from_flat(flat: Tensor<B, 2>, shape: Vec<usize>) -> Self {
        debug_assert_eq!(flat.dims()[0], shape[0]);
        debug_assert_eq!(flat.dims()[1], shape[1..].iter().product::<usize>());
        Self { flat, shape }
    }

    /// The `[batch, features]` matrix and the full shape.
    pub(crate) fn into_parts(self) -> (Tensor<B, 2>, Vec<usize>) {
        (self.flat, self.shape)
    }

    /// The same shape, its matrix replaced by `f(matrix)` (of the same dims).
    pub(crate) fn map_flat(self, f: impl FnOnce(Tensor<B, 2>) -> Tensor<B, 2>) -> Self {
        Self {
            flat: f(self.flat),
            shape: self.shape,
        }
    }

    /// A `[batch, features]` matrix as the tensor of shape `shape` (row-major): the inverse of
    /// [`flat`](Self::flat).
    ///
    /// # Errors
    /// [`InfluenceError::Rank`] when `shape` is empty or its first dim and the product of the
    /// rest are not the matrix's rows and columns.
    pub fn from_parts(flat: Tensor<B, 2>, shape: Vec<usize>) -> Result<Self, InfluenceError> {
        let [rows, cols] = flat.dims();
        if shape.first() != Some(&rows) || shape[1..].iter().product::<usize>() != cols {
            return Err(InfluenceError::Rank {
                what: "tensor of [batch, features] view",
                expected: 2,
                shape,
            });
        }
        Ok(Self { flat, shape })
    }

    /// The full shape, `[batch, d1, ..., dk]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The rank (number of dims, batch included).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Dim 0, the batch.
    pub fn batch(&self) -> usize {
        self.shape[0]
    }

    /// Number of values per example: the product of the dims after the batch.
    pub fn features(&self) -> usize {
        self.shape[1..].iter().product()
    }

    /// The `[batch, features]` view.
    pub fn flat(&self) -> &Tensor<B, 2> {
        &self.flat
    }

    /// The `[batch, features]` view, by value.
    pub fn into_flat(self) -> Tensor<B, 2> {
        self.flat
    }

    /// The tensor at its own rank `D`.
    ///
    /// # Errors
    /// [`InfluenceError::Rank`] when the tensor's rank is not `D`.
    pub fn to_tensor<const D: usize>(&self) -> Result<Tensor<B, D>, InfluenceError> {
        self.clone().into_tensor()
    }

    /// The tensor at its own rank `D`, by value.
    ///
    /// # Errors
    /// [`InfluenceError::Rank`] when the tensor's rank is not `D`.
    pub fn into_tensor<const D: usize>(self) -> Result<Tensor<B, D>, InfluenceError> {
        if self.shape.len() != D {
            return Err(InfluenceError::Rank {
                what: "tensor",
                expected: D,
                shape: self.shape,
            });
        }
        Ok(self.flat.reshape(burn::tensor::Shape::from(self.shape)))
    }

    /// Reads the values back to the host, in the tensor's full shape.
    ///
    /// This is a synchronous read: on WebGPU in a browser use
    /// [`into_data_async`](Self::into_data_async).
    ///
    /// # Errors
    /// [`InfluenceError::Read`] when the device read fails.
    pub fn into_data(self) -> Result<TensorData, InfluenceError> {
        let shape = self.shape;
        let mut data = self
            .flat
            .try_into_data()
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        data.shape = shape.into();
        Ok(data)
    }

    /// Reads the values back to the host without blocking, in the tensor's full shape.
    ///
    /// # Errors
    /// [`InfluenceError::Read`] when the device read fails.
    pub async fn into_data_async(self) -> Result<TensorData, InfluenceError> {
        let shape = self.shape;
        let mut data = self
            .flat
            .into_data_async()
            .await
            .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
        data.shape = shape.into();
        Ok(data)
    }

    /// Reads the values back to the host as `f32`, row-major over [`shape`](Self::shape).
    ///
    /// # Errors
    /// [`InfluenceError::Read`] when the device read fails.
    pub fn to_vec(&self) -> Result<Vec<f32>, InfluenceError> {
        self.clone()
            .into_data()?
            .convert::<f32>()
            .to_vec::<f32>()
            .map_err(read_err)
    }
}

fn read_err(e: burn::tensor::DataError) -> InfluenceError {
    InfluenceError::Read(format!("{e:?}"))
}

impl<B: Backend, const D: usize> From<Tensor<B, D>> for AnyTensor<B> {
    fn from(tensor: Tensor<B, D>) -> Self {
        let shape = tensor.dims().to_vec();
        let batch = shape[0];
        let features = shape[1..].iter().product::<usize>();
        Self {
            flat: tensor.reshape([batch, features]),
            shape,
        }
    }
}

/// An `AnyTensor` is one tensor of its own rank to the attribution machinery (a layer's
/// leaves, an input's interpolation): ranks 1 to 8 are mapped at their rank, higher ranks as
/// the `[batch, features]` view.
impl<B: Backend> TensorGroup<B> for AnyTensor<B> {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        let shape = self.shape;
        macro_rules! at_rank {
            ($($d:literal)*) => {
                match shape.len() {
                    $($d => {
                        let dims: [usize; $d] = shape.clone().try_into().expect("rank checked");
                        let t: Tensor<B, $d> = self.flat.reshape(dims);
                        // The map may change the shape (an interpolation repeats the rows).
                        let out = f.map(t);
                        let shape = out.dims().to_vec();
                        let [rows, cols] = [shape[0], shape[1..].iter().product::<usize>()];
                        Self { flat: out.reshape([rows, cols]), shape }
                    })*
                    _ => {
                        let flat = f.map(self.flat);
                        let mut shape = shape;
                        shape[0] = flat.dims()[0];
                        Self { flat, shape }
                    }
                }
            };
        }
        at_rank!(1 2 3 4 5 6 7 8)
    }
}

impl<B: AutodiffBackend> ToEval<B> for AnyTensor<B> {
    type Eval = AnyTensor<Eval<B>>;

    fn to_eval(self) -> AnyTensor<Eval<B>> {
        AnyTensor {
            flat: self.flat.to_eval(),
            shape: self.shape,
        }
    }
}
