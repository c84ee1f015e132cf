//! The matrix product of [`FlexKernels`](crate::FlexKernels), `f32`: Burn 0.21 flex's own
//! strided `gemm` calls (same products, same parallel strategy, same values), with the output
//! written straight into a fresh buffer.
//!
//! Flex allocates each product's output with `FlexTensor::empty`, which zero-fills a byte
//! vector and then copies it into a new allocation to align it: two passes of page faults
//! and a `memcpy` over every output before `gemm` writes it (7.5% of a MiniLM attribution,
//! `docs/performance.md`). `gemm` overwrites the output (`read_dst = false`), so here it
//! writes into uninitialised capacity.

use rayon::prelude::*;

/// Products of at least this many multiply-adds split their work on rayon's pool (flex's
/// threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;
/// Batches of at least this many multiply-adds in all run their products in parallel
/// (flex's threshold).
const BATCH_PARALLEL_THRESHOLD: usize = 128 * 128 * 128;

/// One operand: the buffer, the element offset of its first matrix, its strides along the
/// broadcast batch dimensions (0 where it broadcasts), and its row and column strides.
struct Operand<'a> {
    data: &'a [f32],
    start: isize,
    batch: Vec<isize>,
    row: isize,
    col: isize,
}

impl Operand<'_> {
    /// The element offset of matrix `b` of the broadcast batch `dims`.
    fn offset(&self, mut b: usize, dims: &[usize]) -> isize {
        let mut off = self.start;
        for (i, &d) in dims.iter().enumerate().rev() {
            off += (b % d) as isize * self.batch[i];
            b /= d;
        }
        off
    }
}

/// The output pointer, shared by tasks that write disjoint matrices.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes its own matrices of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `i` elements in (a method, so that closures capture the whole `Out`).
    fn at(self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// `lhs @ rhs` for `f32` operands `[..., m, k]` and `[..., k, n]` of any strides, the batch
/// dimensions broadcast; `None` for other dtypes, ranks below 2, or shapes that do not fit
/// (left to flex, for its error).
///
/// Returns the output `[..., m, n]` (its shape and values).
pub(crate) fn matmul(
    lhs: &burn_flex::FlexTensor,
    rhs: &burn_flex::FlexTensor,
) -> Option<(Vec<usize>, Vec<f32>)> {
    use burn_backend::{DType, TensorMetadata};
    if lhs.dtype() != DType::F32 || rhs.dtype() != DType::F32 {
        return None;
    }
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let (lr, rr) = (ls.num_dims(), rs.num_dims());
    if lr < 2 || rr < 2 {
        return None;
    }
    let (m, k, n) = (ls[lr - 2], ls[lr - 1], rs[rr - 1]);
    if rs[rr - 2] != k {
        return None;
    }
    // Batch dimensions, right-aligned and broadcast.
    let nb = lr.max(rr) - 2;
    let dim = |s: &burn_backend::Shape, r: usize, i: usize| {
        if i + r - 2 >= nb {
            s[i + r - 2 - nb]
        } else {
            1
        }
    };
    let mut batch = Vec::with_capacity(nb);
    for i in 0..nb {
        let (a, b) = (dim(&ls, lr, i), dim(&rs, rr, i));
        batch.push(match (a, b) {
            _ if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => return None,
        });
    }
    let (a, b) = (operand(lhs, lr, nb), operand(rhs, rr, nb));
    let count: usize = batch.iter().product();
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let size = m.checked_mul(n)?;
    let len = count.checked_mul(size)?;
    if len == 0 || k == 0 {
        return Some((shape, vec![0.0; len]));
    }

    let mut out: Vec<f32> = Vec::with_capacity(len);
    let dst = Out(out.as_mut_ptr());
    let one = |i: usize, parallelism: gemm::Parallelism| {
        let (ao, bo) = (a.offset(i, &batch), b.offset(i, &batch));
        // SAFETY: the operands' offsets and strides address elements of their buffers (they
        // come from valid flex layouts); the output matrix `i` lies inside `out`'s capacity
        // and only this call writes it; `read_dst = false`, so gemm never reads it.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                dst.at(i * size),
                1,
                n as isize,
                false,
                a.data.as_ptr().offset(ao),
                a.col,
                a.row,
                b.data.as_ptr().offset(bo),
                b.col,
                b.row,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let per_matrix = size.saturating_mul(k);
    let total = count.saturating_mul(per_matrix);
    let batch_parallel = count >= 4 && total >= BATCH_PARALLEL_THRESHOLD;
    if per_matrix >= PARALLEL_THRESHOLD && !batch_parallel {
        (0..count).for_each(|i| one(i, gemm::Parallelism::Rayon(0)));
    } else if total >= BATCH_PARALLEL_THRESHOLD && count > 1 {
        (0..count)
            .into_par_iter()
            .for_each(|i| one(i, gemm::Parallelism::None));
    } else {
        (0..count).for_each(|i| one(i, gemm::Parallelism::None));
    }
    // SAFETY: every one of the `count` matrices of `size` elements was written above.
    unsafe { out.set_len(len) };
    Some((shape, out))
}

/// `t` (rank `r`) as an operand over `nb` broadcast batch dimensions.
fn operand(t: &burn_flex::FlexTensor, r: usize, nb: usize) -> Operand<'_> {
    use burn_backend::TensorMetadata;
    let strides = t.layout().strides();
    let shape = t.shape();
    Operand {
        data: t.storage::<f32>(),
        start: t.layout().start_offset() as isize,
        batch: (0..nb)
            .map(|i| match (i + r - 2).checked_sub(nb) {
                Some(j) if shape[j] != 1 => strides[j],
                _ => 0,
            })
            .collect(),
        row: strides[r - 2],
        col: strides[r - 1],
    }
}
