//! Strided and broadcasting elementwise kernels of [`FlexKernels`](crate::FlexKernels), `f32`:
//! copying a strided view to contiguous memory (a `reshape` that must copy, such as the
//! attention heads' `swap_dims(1, 2).reshape(..)`), and `+ − × ÷` with broadcasting or
//! strided operands (an attention mask `[batch, 1, 1, seq]` added to scores
//! `[batch, heads, seq, seq]`, position embeddings added to a batch).
//!
//! Burn 0.21's flex walks such operands one element at a time with a generic strided index
//! iterator (`StridedIter`: 7% of a MiniLM attribution, `docs/performance.md`). Here the
//! dimensions are first merged where every operand's strides allow (and size-1 dimensions
//! dropped), then the output is filled one innermost run at a time: a `memcpy` or a
//! vectorisable loop when the run is contiguous or broadcast in each operand. Large outputs
//! are filled in parallel on rayon's pool. Same values as flex's, bit for bit (each element is
//! one `f32` operation, or a copy).

use influence_core::BinaryOp;
use rayon::prelude::*;

/// Output elements per parallel task (at least one run).
const CHUNK: usize = 1 << 15;

/// An output shape and each operand's element strides over it, with dimensions merged.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Walk<const K: usize> {
    /// The merged dimensions (at least one).
    dims: Vec<usize>,
    /// Per operand, its stride along each merged dimension (0 where broadcast).
    strides: [Vec<isize>; K],
    /// Per operand, the element offset of the first output element.
    starts: [isize; K],
}

impl<const K: usize> Walk<K> {
    /// The walk of an output of shape `shape` over operands with these strides (0 along
    /// broadcast dimensions) and start offsets. `None` for negative strides (flipped views),
    /// which are left to flex.
    pub fn new(shape: &[usize], strides: [&[isize]; K], starts: [usize; K]) -> Option<Self> {
        if strides
            .iter()
            .any(|s| s.len() != shape.len() || s.iter().any(|&x| x < 0))
        {
            return None;
        }
        let mut dims: Vec<usize> = Vec::with_capacity(shape.len());
        let mut merged: [Vec<isize>; K] = core::array::from_fn(|_| Vec::new());
        for (i, &d) in shape.iter().enumerate() {
            if d == 1 {
                continue;
            }
            // The new dimension folds into the previous one when, for every operand, one
            // step of the previous equals `d` steps of this one.
            let fold = dims.last().is_some_and(|_| {
                (0..K).all(|k| *merged[k].last().unwrap() == strides[k][i] * d as isize)
            });
            if fold {
                *dims.last_mut().unwrap() *= d;
                for k in 0..K {
                    *merged[k].last_mut().unwrap() = strides[k][i];
                }
            } else {
                dims.push(d);
                for k in 0..K {
                    merged[k].push(strides[k][i]);
                }
            }
        }
        if dims.is_empty() {
            dims.push(1);
            for m in &mut merged {
                m.push(0);
            }
        }
        Some(Self {
            dims,
            strides: merged,
            starts: starts.map(|s| s as isize),
        })
    }

    /// Elements of the output.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Length of the innermost run.
    fn run(&self) -> usize {
        *self.dims.last().unwrap()
    }

    /// Each operand's stride along the innermost run.
    fn run_strides(&self) -> [isize; K] {
        core::array::from_fn(|k| *self.strides[k].last().unwrap())
    }

    /// Each operand's offset at the start of run `r`.
    fn offsets(&self, mut r: usize) -> [isize; K] {
        let mut off = self.starts;
        for i in (0..self.dims.len() - 1).rev() {
            let idx = (r % self.dims[i]) as isize;
            r /= self.dims[i];
            for (o, s) in off.iter_mut().zip(&self.strides) {
                *o += idx * s[i];
            }
        }
        off
    }

    /// Fills `out` (the whole output, row-major) run by run: `f(out_run, offsets)` for each
    /// run, in parallel for large outputs.
    fn fill(&self, out: &mut [f32], f: impl Fn(&mut [f32], [isize; K]) + Sync) {
        debug_assert_eq!(out.len(), self.len());
        let run = self.run();
        if run == 0 || out.is_empty() {
            return;
        }
        let runs_per_task = (CHUNK / run).max(1);
        let task = |(t, chunk): (usize, &mut [f32])| {
            let first = t * runs_per_task;
            for (j, o) in chunk.chunks_mut(run).enumerate() {
                f(o, self.offsets(first + j));
            }
        };
        if out.len() <= CHUNK {
            task((0, out));
        } else {
            out.par_chunks_mut(runs_per_task * run)
                .enumerate()
                .for_each(task);
        }
    }
}

/// The values of one operand, as a contiguous `Vec`.
pub(crate) fn copy(src: &[f32], walk: &Walk<1>) -> Vec<f32> {
    let mut out = vec![0.0f32; walk.len()];
    let [s] = walk.run_strides();
    walk.fill(&mut out, |o, [at]| {
        let at = at as usize;
        if s == 1 {
            o.copy_from_slice(&src[at..at + o.len()]);
        } else {
            for (j, v) in o.iter_mut().enumerate() {
                *v = src[at + j * s as usize];
            }
        }
    });
    out
}

/// `lhs op rhs` element by element over the walk's output.
pub(crate) fn binary(op: BinaryOp, lhs: &[f32], rhs: &[f32], walk: &Walk<2>) -> Vec<f32> {
    match op {
        BinaryOp::Add => binary_with(lhs, rhs, walk, |a, b| a + b),
        BinaryOp::Sub => binary_with(lhs, rhs, walk, |a, b| a - b),
        BinaryOp::Mul => binary_with(lhs, rhs, walk, |a, b| a * b),
        BinaryOp::Div => binary_with(lhs, rhs, walk, |a, b| a / b),
    }
}

#[inline(always)]
fn binary_with(
    lhs: &[f32],
    rhs: &[f32],
    walk: &Walk<2>,
    f: impl Fn(f32, f32) -> f32 + Copy + Sync,
) -> Vec<f32> {
    let mut out = vec![0.0f32; walk.len()];
    let [sl, sr] = walk.run_strides();
    walk.fill(&mut out, |o, [a, b]| {
        let (a, b, n) = (a as usize, b as usize, o.len());
        match (sl, sr) {
            (1, 1) => {
                for ((v, &x), &y) in o.iter_mut().zip(&lhs[a..a + n]).zip(&rhs[b..b + n]) {
                    *v = f(x, y);
                }
            }
            (1, 0) => {
                let y = rhs[b];
                for (v, &x) in o.iter_mut().zip(&lhs[a..a + n]) {
                    *v = f(x, y);
                }
            }
            (0, 1) => {
                let x = lhs[a];
                for (v, &y) in o.iter_mut().zip(&rhs[b..b + n]) {
                    *v = f(x, y);
                }
            }
            _ => {
                for (j, v) in o.iter_mut().enumerate() {
                    *v = f(lhs[a + j * sl as usize], rhs[b + j * sr as usize]);
                }
            }
        }
    });
    out
}

/// `lhs op rhs` written over `lhs`, a contiguous tensor of the walk's output shape (the walk
/// is over `rhs` alone).
pub(crate) fn binary_in_place(op: BinaryOp, lhs: &mut [f32], rhs: &[f32], walk: &Walk<1>) {
    match op {
        BinaryOp::Add => in_place_with(lhs, rhs, walk, |a, b| a + b),
        BinaryOp::Sub => in_place_with(lhs, rhs, walk, |a, b| a - b),
        BinaryOp::Mul => in_place_with(lhs, rhs, walk, |a, b| a * b),
        BinaryOp::Div => in_place_with(lhs, rhs, walk, |a, b| a / b),
    }
}

#[inline(always)]
fn in_place_with(
    lhs: &mut [f32],
    rhs: &[f32],
    walk: &Walk<1>,
    f: impl Fn(f32, f32) -> f32 + Copy + Sync,
) {
    let [sr] = walk.run_strides();
    walk.fill(lhs, |o, [b]| {
        let (b, n) = (b as usize, o.len());
        match sr {
            1 => {
                for (v, &y) in o.iter_mut().zip(&rhs[b..b + n]) {
                    *v = f(*v, y);
                }
            }
            0 => {
                let y = rhs[b];
                for v in o.iter_mut() {
                    *v = f(*v, y);
                }
            }
            _ => {
                for (j, v) in o.iter_mut().enumerate() {
                    *v = f(*v, rhs[b + j * sr as usize]);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_merge_where_every_operand_allows() {
        // Scores [2, 3, 4, 4] + mask [2, 1, 1, 4] (broadcast over heads and rows).
        let w = Walk::new(&[2, 3, 4, 4], [&[48, 16, 4, 1], &[4, 0, 0, 1]], [0, 0]).unwrap();
        assert_eq!(w.dims, vec![2, 12, 4]);
        assert_eq!(w.strides, [vec![48, 4, 1], vec![4, 0, 1]]);
        // A contiguous tensor is one run; size-1 dimensions are dropped.
        let w = Walk::new(&[5, 1, 7], [&[7, 7, 1]], [3]).unwrap();
        assert_eq!(
            (w.dims.clone(), w.strides.clone(), w.starts),
            (vec![35], [vec![1]], [3])
        );
        // Heads swapped back: [b, s, h, d] over [b, h, s, d] memory; nothing merges.
        let w = Walk::new(&[2, 5, 3, 4], [&[60, 4, 20, 1]], [0]).unwrap();
        assert_eq!(w.dims, vec![2, 5, 3, 4]);
        assert_eq!(w.offsets(4), [24]);
        // Flipped views are flex's.
        assert!(Walk::new(&[3], [&[-1]], [2]).is_none());
    }
}
