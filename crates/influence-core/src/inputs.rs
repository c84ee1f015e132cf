//! The straight path from the baselines to the inputs: validation of `inputs` and
//! `baselines`, and the interpolated inputs `x' + α (x − x')` of a chunk of steps.

use burn::tensor::{Tensor, backend::Backend};

use crate::{AnyTensor, Baseline, Baselines, InfluenceError, TensorGroup, TensorMap};

/// Where one input's path starts, as a `[batch or 1, features]` view.
#[derive(Debug, Clone)]
enum Start<B: Backend> {
    Zero,
    Scalar(f64),
    Tensor(Tensor<B, 2>),
}

/// The path of one input tensor.
#[derive(Debug, Clone)]
struct Path<B: Backend> {
    /// Full shape of the input, `[batch, ...]`.
    shape: Vec<usize>,
    start: Start<B>,
    /// `x − x'`, `[batch, features]`.
    diff: Tensor<B, 2>,
    /// `x` itself, `[batch, features]`.
    input: Tensor<B, 2>,
    /// Points given instead of the line ([`PathInputs::with_points`]), `[points, batch,
    /// features]`.
    given: Option<Tensor<B, 3>>,
}

/// A point at which the validation forward evaluates the inputs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum At {
    /// `x' + α (x − x')`; at α = 1 the inputs themselves, at α = 0 the baselines.
    Alpha(f64),
    /// Given point `k` ([`PathInputs::with_points`]).
    Point(usize),
    /// One α per example: row `i` is `x'_i + α_i (x_i − x'_i)` (the exact method's points,
    /// which differ from example to example).
    Rows(Vec<f64>),
}

/// The validated inputs and baselines of one `attribute` call.
#[derive(Debug, Clone)]
pub(crate) struct PathInputs<B: Backend> {
    batch: usize,
    paths: Vec<Path<B>>,
    /// What the finiteness flags stand for: (argument, input index), one per flag.
    checked: Vec<(&'static str, usize)>,
    /// The tensors whose finiteness is checked, `[batch or 1, features]` each.
    to_check: Vec<Tensor<B, 2>>,
}

impl<B: Backend> PathInputs<B> {
    /// Validates the inputs and their baselines (host-side shape checks only).
    ///
    /// # Errors
    /// [`InfluenceError::EmptyBatch`], [`InfluenceError::NoFeatures`],
    /// [`InfluenceError::BatchMismatch`],
    /// [`InfluenceError::BaselineCount`], [`InfluenceError::BaselineShape`], and
    /// [`InfluenceError::NonFinite`] for a non-finite scalar baseline.
    pub(crate) fn new(
        inputs: Vec<AnyTensor<B>>,
        baselines: &Baselines<B>,
    ) -> Result<Self, InfluenceError> {
        if inputs.is_empty() {
            return Err(InfluenceError::NoInputs);
        }
        let batch = inputs.first().map_or(0, |x| x.batch());
        for (i, x) in inputs.iter().enumerate() {
            if x.batch() == 0 {
                return Err(InfluenceError::EmptyBatch {
                    input: i,
                    shape: x.shape().to_vec(),
                });
            }
            if x.features() == 0 {
                return Err(InfluenceError::NoFeatures {
                    input: i,
                    shape: x.shape().to_vec(),
                });
            }
            if x.batch() != batch {
                return Err(InfluenceError::BatchMismatch {
                    input: i,
                    expected: batch,
                    got: x.batch(),
                    shape: x.shape().to_vec(),
                });
            }
        }
        let zeros;
        let baselines = match baselines.as_slice() {
            Some(b) if b.len() != inputs.len() => {
                return Err(InfluenceError::BaselineCount {
                    expected: inputs.len(),
                    got: b.len(),
                });
            }
            Some(b) => b,
            None => {
                zeros = vec![Baseline::Zeros; inputs.len()];
                &zeros
            }
        };
        let mut checked = Vec::new();
        let mut to_check = Vec::new();
        let mut paths = Vec::with_capacity(inputs.len());
        for (i, (x, b)) in inputs.into_iter().zip(baselines).enumerate() {
            let shape = x.shape().to_vec();
            let x = x.into_flat();
            let input = x.clone();
            checked.push(("inputs", i));
            to_check.push(x.clone());
            let (start, diff) = match b {
                Baseline::Zeros => (Start::Zero, x),
                Baseline::Scalar(v) => {
                    if !v.is_finite() {
                        return Err(InfluenceError::NonFinite {
                            argument: "baselines",
                            input: i,
                        });
                    }
                    (Start::Scalar(*v), x.sub_scalar(*v))
                }
                Baseline::Tensor(t) => {
                    let same_rest = t.shape()[1..] == shape[1..];
                    if !same_rest || (t.batch() != batch && t.batch() != 1) {
                        return Err(InfluenceError::BaselineShape {
                            input: i,
                            input_shape: shape,
                            baseline: t.shape().to_vec(),
                        });
                    }
                    let t = t.flat().clone();
                    checked.push(("baselines", i));
                    to_check.push(t.clone());
                    (Start::Tensor(t.clone()), x - t)
                }
            };
            paths.push(Path {
                shape,
                start,
                diff,
                input,
                given: None,
            });
        }
        Ok(Self {
            batch,
            paths,
            checked,
            to_check,
        })
    }

    /// Replaces the line from the baselines to the inputs by given points (a distribution of
    /// interest given point by point): `points[k]` holds one tensor per input, each shaped
    /// like that input. The passes then evaluate the points instead of `x' + α (x − x')`.
    ///
    /// # Errors
    /// [`InfluenceError::NoPoints`] for no points; [`InfluenceError::PointInputs`] for a point
    /// without one tensor per input; [`InfluenceError::PointShape`] for a point whose
    /// tensors are not shaped like the inputs.
    pub(crate) fn with_points(
        mut self,
        points: Vec<Vec<AnyTensor<B>>>,
    ) -> Result<Self, InfluenceError> {
        if points.is_empty() {
            return Err(InfluenceError::NoPoints);
        }
        let mut stacks: Vec<Vec<Tensor<B, 3>>> = vec![Vec::new(); self.paths.len()];
        for (k, point) in points.into_iter().enumerate() {
            if point.len() != self.paths.len() {
                return Err(InfluenceError::PointInputs {
                    point: k,
                    expected: self.paths.len(),
                    got: point.len(),
                });
            }
            for (i, (t, path)) in point.into_iter().zip(&self.paths).enumerate() {
                if t.shape() != path.shape.as_slice() {
                    return Err(InfluenceError::PointShape {
                        point: k,
                        input: i,
                        expected: path.shape.clone(),
                        got: t.shape().to_vec(),
                    });
                }
                let flat = t.into_flat();
                self.checked.push(("points", i));
                self.to_check.push(flat.clone());
                stacks[i].push(flat.unsqueeze::<3>());
            }
        }
        for (path, stack) in self.paths.iter_mut().zip(stacks) {
            path.given = Some(Tensor::cat(stack, 0));
        }
        Ok(self)
    }

    /// Whether the points are given ([`with_points`](Self::with_points)) rather than on the
    /// line.
    pub(crate) fn has_points(&self) -> bool {
        self.paths.first().is_some_and(|p| p.given.is_some())
    }

    /// Examples in the batch.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }

    /// One value per checked tensor: 1 when all its values are finite, else 0. A single
    /// device reduction; read it after the passes.
    ///
    /// # Shapes
    /// - returns: `[number of inputs + number of tensor baselines]`
    pub(crate) fn finiteness(&self) -> Tensor<B, 1> {
        let flags = self
            .to_check
            .iter()
            .map(|t| t.clone().is_finite().all().float())
            .collect();
        Tensor::cat(flags, 0)
    }

    /// What each flag of [`finiteness`](Self::finiteness) stands for: (argument, input index).
    pub(crate) fn labels(&self) -> Vec<(&'static str, usize)> {
        self.checked.clone()
    }

    /// The full shape of each input, `[batch, ...]`.
    pub(crate) fn shapes(&self) -> Vec<Vec<usize>> {
        self.paths.iter().map(|p| p.shape.clone()).collect()
    }

    /// The inputs at the points `alphas` of the path, stacked step-major, rebuilt into the
    /// model's input type (`template` gives the types and the order).
    ///
    /// # Shapes
    /// - alphas: `[steps]`, the points of the steps `chunk` (given points: the steps `chunk`
    ///   of them)
    /// - each returned input: `[steps * batch, ...]` (row `k * batch + i` is example `i` at
    ///   `alphas[k]`)
    pub(crate) fn interpolate<G: TensorGroup<B>>(
        &self,
        template: G,
        alphas: Tensor<B, 1>,
        chunk: core::ops::Range<usize>,
    ) -> G {
        let steps = alphas.dims()[0];
        let a = alphas.reshape([steps, 1, 1]);
        let flats = self
            .paths
            .iter()
            .map(|p| {
                let rows = steps * self.batch;
                let features = p.diff.dims()[1];
                let mut shape = p.shape.clone();
                shape[0] = rows;
                if let Some(given) = &p.given {
                    let at = given.clone().slice(chunk.clone());
                    return (at.reshape([rows, features]), shape);
                }
                let moved: Tensor<B, 3> = a.clone() * p.diff.clone().unsqueeze::<3>();
                let at = match &p.start {
                    Start::Zero => moved,
                    Start::Scalar(v) => moved.add_scalar(*v),
                    Start::Tensor(t) => moved + t.clone().unsqueeze::<3>(),
                };
                (at.reshape([rows, features]), shape)
            })
            .collect();
        template.map_tensors(&mut Rebuild { flats, next: 0 })
    }
}

impl<B: Backend> PathInputs<B> {
    /// The inputs at a few points of the path, stacked point-major like
    /// [`interpolate`](Self::interpolate), with the inputs themselves (not `x' + 1·(x − x')`,
    /// which can differ by a rounding) at α = 1 and the baselines themselves at α = 0: the
    /// validation forward's end points, and Layer Integrated Gradients' forwards on `x`, as
    /// Captum runs them.
    ///
    /// # Shapes
    /// - each returned input: `[points.len() * batch, ...]`
    pub(crate) fn at_points<G: TensorGroup<B>>(&self, template: G, points: &[f64]) -> G {
        let points: Vec<At> = points.iter().map(|&a| At::Alpha(a)).collect();
        self.at(template, &points)
    }

    /// [`at_points`](Self::at_points), with given points too.
    pub(crate) fn at<G: TensorGroup<B>>(&self, template: G, points: &[At]) -> G {
        let flats = self
            .paths
            .iter()
            .map(|p| {
                let device = p.diff.device();
                let blocks: Vec<Tensor<B, 2>> = points
                    .iter()
                    .map(|at| {
                        let a = match at {
                            At::Alpha(a) => *a,
                            At::Rows(alphas) => {
                                let n = alphas.len();
                                let column = Tensor::<B, 2>::from_data(
                                    burn::tensor::TensorData::new(alphas.clone(), [n, 1]),
                                    &device,
                                );
                                let moved = p.diff.clone() * column;
                                return match &p.start {
                                    Start::Zero => moved,
                                    Start::Scalar(v) => moved.add_scalar(*v),
                                    Start::Tensor(t) => moved + t.clone(),
                                };
                            }
                            &At::Point(k) => {
                                let given = p.given.as_ref().expect("given points");
                                let [_, batch, features] = given.dims();
                                return given.clone().slice(k..k + 1).reshape([batch, features]);
                            }
                        };
                        if a == 1.0 {
                            return p.input.clone();
                        }
                        let moved = p.diff.clone().mul_scalar(a);
                        match &p.start {
                            Start::Zero => moved,
                            Start::Scalar(v) => moved.add_scalar(*v),
                            Start::Tensor(t) if a == 0.0 => {
                                // x' itself, broadcast to the batch.
                                Tensor::zeros(p.diff.dims(), &device) + t.clone()
                            }
                            Start::Tensor(t) => moved + t.clone(),
                        }
                    })
                    .collect();
                let mut shape = p.shape.clone();
                shape[0] = points.len() * self.batch;
                (Tensor::cat(blocks, 0), shape)
            })
            .collect();
        template.map_tensors(&mut Rebuild { flats, next: 0 })
    }
}

/// Replaces each tensor of a group by the next rebuilt flat tensor, at its rank.
struct Rebuild<B: Backend> {
    flats: Vec<(Tensor<B, 2>, Vec<usize>)>,
    next: usize,
}

impl<B: Backend> TensorMap<B> for Rebuild<B> {
    fn map<const D: usize>(&mut self, _: Tensor<B, D>) -> Tensor<B, D> {
        let (flat, shape) = self.flats[self.next].clone();
        self.next += 1;
        flat.reshape(burn::tensor::Shape::from(shape))
    }
}
