//! The running results of the path methods: what each pass of a call adds, per watched layer
//! and per tensor of the layer, `[batch, features]`; and the end-point formulas (Layer
//! Integrated Gradients' `multiply_by_inputs`, Captum's convergence delta).

use core::ops::Range;

use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};

use crate::engine::{Accumulate, Endpoints, TensorEnds};
use crate::{AnyTensor, Eval, LayerGradients};

/// Each layer tensor's result times a factor made from the layer's end points `(h(x'), h(x))`,
/// tensor by tensor: `h(x) − h(x')` for Layer Integrated Gradients' `multiply_by_inputs`,
/// `h(x)` for the paper's attribution ([`crate::AttributeCall::multiply_by_activation`]).
pub(crate) fn multiply_by_layer<B: AutodiffBackend>(
    tensors: Vec<AnyTensor<B::InnerBackend>>,
    ends: &[TensorEnds<Eval<B>>],
    factor: impl Fn(&Tensor<Eval<B>, 2>, &Tensor<Eval<B>, 2>) -> Tensor<Eval<B>, 2>,
) -> Vec<AnyTensor<B::InnerBackend>> {
    tensors
        .into_iter()
        .zip(ends)
        .map(|(sum, (start, end))| sum.map_flat(|s| s * factor(start, end).inner()))
        .collect()
}

/// Captum's `compute_convergence_delta`: per example, the attribution summed over every value
/// of every tensor, minus `F_target(x) − F_target(x')`.
pub(crate) fn convergence_delta<B: AutodiffBackend>(
    tensors: &[AnyTensor<B::InnerBackend>],
    ends: &Endpoints<Eval<B>>,
) -> Tensor<B::InnerBackend, 1> {
    let total = tensors
        .iter()
        .map(|t| {
            let batch = t.flat().dims()[0];
            t.flat().clone().sum_dim(1).reshape([batch])
        })
        .reduce(|a, b| a + b)
        .expect("a layer has at least one tensor");
    total - ends.output_difference()
}

/// Per watched layer, per tensor of the layer, a running sum: `[batch, features]` with the
/// tensor's full shape.
pub(crate) struct Sums<B: Backend> {
    batch: usize,
    pub(crate) layers: Vec<Vec<AnyTensor<B>>>,
}

impl<B: Backend> Sums<B> {
    pub(crate) fn new(batch: usize, layers: usize) -> Self {
        Self {
            batch,
            layers: (0..layers).map(|_| Vec::new()).collect(),
        }
    }

    /// Adds `part` to the sum of tensor `k` of layer `l` (the first part starts it).
    pub(crate) fn add_part(&mut self, l: usize, k: usize, part: Tensor<B, 2>, shape: Vec<usize>) {
        let tensors = &mut self.layers[l];
        match tensors.get(k) {
            Some(sum) => tensors[k] = sum.clone().map_flat(|s| s + part),
            None => tensors.push(AnyTensor::from_flat(part, shape)),
        }
    }

    fn merge(&mut self, later: Self) {
        for (l, tensors) in later.layers.into_iter().enumerate() {
            for (k, part) in tensors.into_iter().enumerate() {
                let (part, shape) = part.into_parts();
                self.add_part(l, k, part, shape);
            }
        }
    }

    /// The full shape of a pass's tensor with the caller's batch.
    pub(crate) fn shape_of<T: Backend>(&self, g: &AnyTensor<T>) -> Vec<usize> {
        let mut shape = g.shape().to_vec();
        shape[0] = self.batch;
        shape
    }
}

/// Layer Conductance's running result (Captum's `LayerConductance._attribute`):
/// `Σ_k ∂F/∂h(α_k) · (h(α_{k+1}) − h(α_k))` over the intervals of the chunks seen.
pub(crate) struct Differences<B: Backend>(pub(crate) Sums<B>);

impl<B: AutodiffBackend> Accumulate<B> for Differences<B::InnerBackend> {
    fn add(&mut self, chunk: Range<usize>, pass: LayerGradients<B>) {
        let (points, batch) = (chunk.len(), self.0.batch);
        for (l, lg) in pass.layers.into_iter().enumerate() {
            for (k, (g, h)) in lg.gradients.into_iter().zip(lg.values).enumerate() {
                let shape = self.0.shape_of(&g);
                let features = g.features();
                let width = batch * features;
                let g = g.into_flat().reshape([points, width]);
                let h = h.into_flat().reshape([points, width]);
                let steps = points - 1;
                let diff = h.clone().slice(1..points) - h.slice(0..steps);
                let part = (g.slice(0..steps) * diff)
                    .sum_dim(0)
                    .reshape([batch, features]);
                self.0.add_part(l, k, part, shape);
            }
        }
    }

    fn merge(&mut self, later: Self) {
        self.0.merge(later.0);
    }
}

/// Internal Influence's (and Layer Integrated Gradients') running result: per layer tensor,
/// `Σ_k w_k ∂F/∂h(α_k)` over the steps seen, `[batch, features]`.
pub(crate) struct WeightedSums<B: Backend> {
    pub(crate) weights: Tensor<B, 1>,
    pub(crate) sums: Sums<B>,
}

impl<B: AutodiffBackend> Accumulate<B> for WeightedSums<B::InnerBackend> {
    fn add(&mut self, chunk: Range<usize>, pass: LayerGradients<B>) {
        let (steps, batch) = (chunk.len(), self.sums.batch);
        let w = self.weights.clone().slice(chunk).reshape([1, steps]);
        for (l, lg) in pass.layers.into_iter().enumerate() {
            for (k, g) in lg.gradients.into_iter().enumerate() {
                let shape = self.sums.shape_of(&g);
                let per_example = g.features();
                // [1, steps] x [steps, batch * features]: the weighted sum over the steps.
                let part = w
                    .clone()
                    .matmul(g.into_flat().reshape([steps, batch * per_example]))
                    .reshape([batch, per_example]);
                self.sums.add_part(l, k, part, shape);
            }
        }
    }

    fn merge(&mut self, later: Self) {
        self.sums.merge(later.sums);
    }
}
