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

/// Layer Conductance's chunks: ranges of its `n_steps + 1` points, each pass evaluating one
/// point more than it has intervals, consecutive passes sharing a point (Captum's
/// `include_endpoint`); and the threads that run them. With `internal_batch_size = m`, every
/// pass has at least two points (`2 · batch` rows; Captum warns below that, and so does this),
/// and the threads share `m` so that the rows alive at once stay within `max(m, 2 · batch)`.
pub(crate) fn conductance_chunks(
    n_steps: usize,
    batch: usize,
    internal_batch_size: Option<usize>,
    threads: usize,
) -> Result<(Vec<Range<usize>>, usize), InfluenceError> {
    let batch = batch.max(1);
    let (intervals, threads) = match internal_batch_size {
        None => parallel_chunks(n_steps, batch, None, threads)?,
        Some(0) => return Err(InfluenceError::ZeroInternalBatchSize),
        Some(m) => {
            if m < 2 * batch {
                log::warn!(
                    "internal_batch_size ({m}) is smaller than two steps of the batch ({batch}); \
                     Layer Conductance uses two points ({} rows) per pass",
                    2 * batch
                );
            }
            let threads = (m / (2 * batch)).clamp(1, threads);
            // Points per pass, per thread; one interval fewer.
            let per_pass = (m / threads / batch).max(2) - 1;
            let chunks = step_chunks(n_steps, 1, Some(per_pass))?;
            if chunks.len() >= threads {
                (chunks, threads)
            } else {
                (
                    step_chunks(n_steps, 1, Some(n_steps.div_ceil(threads)))?,
                    threads,
                )
            }
        }
    };
    let points = intervals.into_iter().map(|c| c.start..c.end + 1).collect();
    Ok((points, threads))
}

/// The chunks of a call, and the threads that run them. `internal_batch_size` is shared
/// between the threads: each thread's passes have at most `internal_batch_size / threads`
/// rows, and no more threads run than it has room for (one step, `batch` rows, each), so the
/// rows alive at once stay within `max(internal_batch_size, batch)`, as on one thread. Each
/// thread gets at least one chunk.
pub(crate) fn parallel_chunks(
    n_steps: usize,
    batch: usize,
    internal_batch_size: Option<usize>,
    threads: usize,
) -> Result<(Vec<Range<usize>>, usize), InfluenceError> {
    let (per_thread, threads) = match internal_batch_size {
        // (`Some(0)` reaches `step_chunks` as given, which refuses it.)
        Some(m) => match (m / batch.max(1)).clamp(1, threads) {
            // The caller's own value, so that a too-small one is reported as given.
            1 => (Some(m), 1),
            t => (Some(m / t), t),
        },
        None => (None, threads),
    };
    let chunks = step_chunks(n_steps, batch, per_thread)?;
    if chunks.len() >= threads {
        return Ok((chunks, threads));
    }
    // Fewer chunks than threads: one run of near-equal length per thread instead.
    let chunks = step_chunks(n_steps, 1, Some(n_steps.div_ceil(threads)))?;
    Ok((chunks, threads))
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

    /// The rows alive at once: the largest chunk (× batch) times the threads that run.
    fn rows_alive(chunks: &[Range<usize>], threads: usize, batch: usize) -> usize {
        let largest = chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        largest * batch * threads.min(chunks.len())
    }

    #[test]
    fn parallel_chunks_cover_the_steps_in_order() {
        for (n, batch, m, threads) in [(50, 4, None, 2), (50, 4, Some(40), 2), (7, 3, Some(5), 4)] {
            let (chunks, _) = parallel_chunks(n, batch, m, threads).unwrap();
            let steps: Vec<usize> = chunks.iter().flat_map(|c| c.clone()).collect();
            assert_eq!(steps, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn threads_never_hold_more_rows_than_internal_batch_size() {
        for threads in 1..=4 {
            for batch in [1, 3, 8] {
                for m in [1, 2, 5, 8, 9, 16, 24, 100] {
                    let (chunks, t) = parallel_chunks(50, batch, Some(m), threads).unwrap();
                    assert!((1..=threads).contains(&t));
                    let alive = rows_alive(&chunks, t, batch);
                    assert!(
                        alive <= m.max(batch),
                        "threads {threads}, batch {batch}, m {m}: {alive} rows alive"
                    );
                }
            }
        }
    }

    #[test]
    fn conductance_chunks_overlap_by_one_point_and_respect_internal_batch_size() {
        for threads in 1..=3 {
            for batch in [1, 3, 8] {
                for m in [
                    None,
                    Some(1),
                    Some(5),
                    Some(16),
                    Some(17),
                    Some(48),
                    Some(1000),
                ] {
                    let (chunks, t) = conductance_chunks(23, batch, m, threads).unwrap();
                    // Each interval k..k+1 of the 24 points in exactly one chunk.
                    let intervals: Vec<usize> =
                        chunks.iter().flat_map(|c| c.start..c.end - 1).collect();
                    assert_eq!(intervals, (0..23).collect::<Vec<_>>(), "{chunks:?}");
                    assert!(chunks.iter().all(|c| c.len() >= 2));
                    if let Some(m) = m {
                        let alive = rows_alive(&chunks, t, batch);
                        assert!(
                            alive <= m.max(2 * batch),
                            "threads {threads}, batch {batch}, m {m}: {alive} rows alive"
                        );
                    }
                }
            }
        }
        assert!(matches!(
            conductance_chunks(5, 2, Some(0), 1),
            Err(InfluenceError::ZeroInternalBatchSize)
        ));
    }

    #[test]
    fn without_internal_batch_size_every_thread_gets_a_chunk() {
        let (chunks, t) = parallel_chunks(50, 4, None, 2).unwrap();
        assert_eq!((t, chunks), (2, vec![0..25, 25..50]));
        let (chunks, t) = parallel_chunks(50, 4, Some(400), 2).unwrap();
        assert_eq!((t, chunks), (2, vec![0..25, 25..50]));
        assert!(matches!(
            parallel_chunks(50, 4, Some(0), 2),
            Err(InfluenceError::ZeroInternalBatchSize)
        ));
    }
}
