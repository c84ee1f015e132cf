//! One `InternalInfluence` shared by several threads, each attributing its own batch, gives
//! the same numbers as sequential calls.

use burn::tensor::{Distribution, Tensor};
use burn_influence::InternalInfluence;
use influence_testkit::golden::load_file;
use influence_testkit::sequential::{Act, Sequential};
mod common;
use common::{Backend, device};

type B = Backend;

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn attributions_are_send_and_sync_on_every_backend() {
    #[cfg(feature = "ndarray")]
    assert_send_sync::<InternalInfluence<burn_influence::ndarray::Backend, Sequential<_>>>();
    #[cfg(feature = "flex")]
    assert_send_sync::<InternalInfluence<burn_influence::flex::Backend, Sequential<_>>>();
    #[cfg(feature = "wgpu")]
    assert_send_sync::<InternalInfluence<burn_influence::wgpu::Backend, Sequential<_>>>();
    #[cfg(feature = "cuda")]
    assert_send_sync::<InternalInfluence<burn_influence::cuda::Backend, Sequential<_>>>();
}

/// Internal Influence of `conv1` of a CNN of the golden cases: conv, BatchNorm, ReLU,
/// Dropout, max-pool, linear.
fn bn_dropout_cnn() -> InternalInfluence<B, Sequential<B>> {
    let case = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden/internal_influence_train_mode/t019_cnn_bn_dropout_conv1_gausslegendre_64.json");
    let layers = influence_testkit::golden::model_layers(&load_file(&case).unwrap()[0]).unwrap();
    let model = Sequential::<B>::from_specs(&layers, &device());
    InternalInfluence::new(&model, "conv1").unwrap()
}

#[test]
fn threads_sharing_one_attribution_match_sequential_calls() {
    let ii = bn_dropout_cnn();
    let batches: Vec<Tensor<B, 4>> = (0..6)
        .map(|_| Tensor::random([3, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device()))
        .collect();
    let attribute = |x: &Tensor<B, 4>| {
        ii.attribute(Act::D4(x.clone()))
            .target(vec![0, 1, 1])
            .n_steps(16)
            .internal_batch_size(12)
            .run()
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let sequential: Vec<Vec<f32>> = batches.iter().map(attribute).collect();
    let parallel: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = batches
            .iter()
            .map(|x| s.spawn(move || attribute(x)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, b)) in sequential.iter().zip(&parallel).enumerate() {
        assert!(a.iter().any(|v| *v != 0.0));
        assert_eq!(
            a, b,
            "batch {i}: a thread gave other numbers than a sequential call"
        );
    }
}

/// Calls made from a caller's rayon jobs, each with one or two threads of its own, on a pool
/// of two workers: every call finishes (a pass never runs nested inside another pass on one
/// thread, where Burn's autodiff would wait for a graph lock the thread holds) and gives
/// the numbers of a sequential call.
#[test]
fn calls_inside_a_callers_rayon_jobs_finish_and_match_sequential_calls() {
    use rayon::prelude::*;
    let ii = bn_dropout_cnn();
    let batches: Vec<Tensor<B, 4>> = (0..8)
        .map(|_| Tensor::random([3, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device()))
        .collect();
    for threads in [1, 2] {
        let attribute = |x: &Tensor<B, 4>| {
            ii.attribute(Act::D4(x.clone()))
                .target(vec![0, 1, 1])
                .n_steps(16)
                .internal_batch_size(12)
                .threads(threads)
                .run()
                .unwrap()
                .to_vec()
                .unwrap()
        };
        let sequential: Vec<Vec<f32>> = batches.iter().map(attribute).collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for round in 0..3 {
            let parallel: Vec<Vec<f32>> =
                pool.install(|| batches.par_iter().map(attribute).collect());
            assert_eq!(sequential, parallel, "threads {threads}, round {round}");
        }
    }
}

#[test]
fn thread_counts_agree_and_each_is_deterministic() {
    let ii = bn_dropout_cnn();
    let x = Tensor::<B, 4>::random([3, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device());
    let attribute = |threads: usize, chunk: Option<usize>| {
        let mut call = ii
            .attribute(Act::D4(x.clone()))
            .target(vec![0, 1, 1])
            .n_steps(20)
            .threads(threads);
        if let Some(m) = chunk {
            call = call.internal_batch_size(m);
        }
        call.run().unwrap().to_vec().unwrap()
    };
    for chunk in [None, Some(12)] {
        let one = attribute(1, chunk);
        let scale = one.iter().fold(0f32, |a, v| a.max(v.abs()));
        assert!(scale > 0.0);
        for threads in [2, 3] {
            let many = attribute(threads, chunk);
            // Another thread count sums the steps in other groups: equal within rounding.
            let err = one
                .iter()
                .zip(&many)
                .fold(0f32, |a, (u, v)| a.max((u - v).abs()));
            assert!(
                err <= 1e-5 * scale,
                "threads {threads}, chunk {chunk:?}: {err} (scale {scale})"
            );
            // The same thread count: bit-identical.
            assert_eq!(many, attribute(threads, chunk), "threads {threads}");
        }
    }
}

/// `progress` is called once per pass with the count so far and the total, on one thread and
/// on two, and does not change the result.
#[test]
fn progress_counts_every_pass_and_leaves_the_result_alone() {
    use std::sync::{Arc, Mutex};
    let ii = bn_dropout_cnn();
    let x: Tensor<B, 4> = Tensor::random([3, 3, 6, 6], Distribution::Normal(0.0, 1.0), &device());
    type Seen = Arc<Mutex<Vec<(usize, usize)>>>;
    let run = |threads: usize, seen: Option<Seen>| {
        // 16 steps × 3 examples in passes of at most 12 rows: 4 steps per pass, 4 passes.
        let mut call = ii
            .attribute(Act::D4(x.clone()))
            .target(vec![0, 1, 1])
            .n_steps(16)
            .internal_batch_size(12)
            .threads(threads);
        if let Some(seen) = seen {
            call = call.progress(move |done, total| seen.lock().unwrap().push((done, total)));
        }
        call.run().unwrap().to_vec().unwrap()
    };
    for threads in [1, 2] {
        let plain = run(threads, None);
        let seen = Arc::new(Mutex::new(Vec::new()));
        assert_eq!(run(threads, Some(seen.clone())), plain, "threads {threads}");
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        let passes = seen.len();
        assert_eq!(seen, (1..=passes).map(|d| (d, passes)).collect::<Vec<_>>());
        // One thread: 4 passes of 4 steps; two: the 12 rows shared, 8 passes of 2 steps.
        assert_eq!(passes, [4, 8][threads - 1], "threads {threads}");
    }
}
