//! Splitting the quadrature steps into chunks: Captum's `internal_batch_size`
//! (`captum.attr._utils.batching._batch_attribution`).
//!
//! One forward/backward pass evaluates a chunk of steps for the whole batch, i.e.
//! `steps_in_chunk * batch` rows. With `internal_batch_size = m`, a chunk holds
//! `max(1, m / batch)` steps, so a pass has at most `max(m, batch)` rows: memory follows the
//! chunk, not `n_steps`. A value below the batch size behaves as the batch size (one step
//! per chunk), as in Captum, which warns; this crate logs a warning through [`log`].

use core::ops::Range;

use crate::InfluenceError;

/// The step ranges `[start, end)` of each chunk, in order, covering `0..n_steps`.
///
/// # Errors
/// [`InfluenceError::ZeroInternalBatchSize`] for `internal_batch_size = Some(0)`.
pub fn step_chunks(
    n_steps: usize,
    batch: usize,
    internal_batch_size: Option<usize>,
) -> Result<Vec<Range<usize>>, InfluenceError> {
    let per_chunk = match internal_batch_size {
        None => n_steps,
        Some(0) => return Err(InfluenceError::ZeroInternalBatchSize),
        Some(m) => {
            if m < batch {
                log::warn!(
                    "internal_batch_size ({m}) is smaller than the batch ({batch}); \
                     using one step ({batch} rows) per chunk"
                );
            }
            (m / batch).max(1)
        }
    };
    Ok((0..n_steps)
        .step_by(per_chunk.max(1))
        .map(|start| start..(start + per_chunk).min(n_steps))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_follow_captum() {
        assert_eq!(step_chunks(5, 2, None).unwrap(), vec![0..5]);
        // 7 rows per chunk with a batch of 2: 3 steps a chunk.
        assert_eq!(step_chunks(8, 2, Some(7)).unwrap(), vec![0..3, 3..6, 6..8]);
        // Below the batch size: one step a chunk.
        assert_eq!(step_chunks(3, 4, Some(1)).unwrap(), vec![0..1, 1..2, 2..3]);
        assert_eq!(
            step_chunks(3, 4, Some(0)),
            Err(InfluenceError::ZeroInternalBatchSize)
        );
    }
}
