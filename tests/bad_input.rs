//! Bad input at scale: generated bad argument combinations thrown at the public API (wrong
//! shapes, counts, ranks, NaN/Inf, empty batches, zero and huge `n_steps`, chunk 0,
//! out-of-range and wrong-arity targets, missing or ill-fitting forward arguments), each a
//! typed error and never a panic, with the live heap flat at the end.
//!
//! 10,000 cases by default (a minute or two in CI); `INFLUENCE_SOAK_CASES=N` runs N.

use burn::tensor::{Int, Tensor, TensorData};
use burn_influence::{Baseline, Baselines, InfluenceError, InternalInfluence, Method, Target};
use influence_testkit::captum_models::{
    BasicModelMultiLayer, BasicModelMultiLayerMultiInput, MultiLayerOptions,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
mod common;
use common::{Backend, device};
#[path = "common/heap.rs"]
mod heap;

type B = Backend;

#[global_allocator]
static GLOBAL: heap::Counting = heap::Counting;

/// One bad call: what is wrong, with its generated numbers.
#[derive(Debug, Clone)]
enum Bad {
    /// Inputs with `features` columns where the model takes 3.
    FeatureShape { batch: usize, features: usize },
    /// An empty batch.
    EmptyBatch,
    /// Two inputs of a multi-input model with different batches.
    BatchMismatch { a: usize, b: usize },
    /// A baseline count other than the number of inputs.
    BaselineCount { batch: usize, count: usize },
    /// A baseline tensor of the wrong shape.
    BaselineShape {
        batch: usize,
        rows: usize,
        cols: usize,
    },
    /// A NaN or infinite value in the inputs, a baseline tensor or a scalar baseline.
    NonFinite {
        batch: usize,
        at: usize,
        value: f32,
        place: u8,
    },
    /// Too few or too many quadrature steps.
    Steps { method: Method, n_steps: usize },
    /// `internal_batch_size` 0.
    ZeroChunk { batch: usize },
    /// A target index past the end of the output's dim.
    TargetRange { batch: usize, index: usize },
    /// A target tuple of the wrong length.
    TargetArity { batch: usize, len: usize },
    /// Per-example targets not one per example.
    TargetCount { batch: usize, count: usize },
    /// A target tensor with a negative class or the wrong shape.
    TargetTensor { batch: usize, negative: bool },
    /// No target for an output with several values per example.
    TargetMissing { batch: usize },
    /// A multi-input model without its additional forward arguments.
    MissingArgs { batch: usize },
    /// An additional forward argument tensor with another batch.
    ArgBatch { batch: usize, rows: usize },
    /// A layer name the model does not expose.
    UnknownLayer { name: String },
}

fn batch() -> impl Strategy<Value = usize> {
    1usize..6
}

fn bad() -> impl Strategy<Value = Bad> {
    let value = prop::sample::select(vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    let too_few_or_many = prop_oneof![
        Just(0usize),
        1usize..2,
        (burn_influence::MAX_STEPS + 1)..usize::MAX,
    ];
    prop_oneof![
        (batch(), (0usize..12).prop_filter("not 3", |f| *f != 3))
            .prop_map(|(batch, features)| Bad::FeatureShape { batch, features }),
        Just(Bad::EmptyBatch),
        (batch(), batch())
            .prop_filter("different", |(a, b)| a != b)
            .prop_map(|(a, b)| Bad::BatchMismatch { a, b }),
        (batch(), (0usize..5).prop_filter("not 1", |c| *c != 1))
            .prop_map(|(batch, count)| Bad::BaselineCount { batch, count }),
        (batch(), 1usize..8, 0usize..6)
            .prop_filter("not a valid shape", |(b, r, c)| !((*r == *b || *r == 1)
                && *c == 3))
            .prop_map(|(batch, rows, cols)| Bad::BaselineShape { batch, rows, cols }),
        (batch(), 0usize..15, value, 0u8..3).prop_map(|(batch, at, value, place)| {
            Bad::NonFinite {
                batch,
                at,
                value,
                place,
            }
        }),
        (prop::sample::select(Method::ALL.to_vec()), too_few_or_many)
            .prop_filter("invalid", |(m, n)| *n < m.min_steps()
                || *n > burn_influence::MAX_STEPS)
            .prop_map(|(method, n_steps)| Bad::Steps { method, n_steps }),
        batch().prop_map(|batch| Bad::ZeroChunk { batch }),
        (batch(), 2usize..1000).prop_map(|(batch, index)| Bad::TargetRange { batch, index }),
        (batch(), (0usize..5).prop_filter("not 1", |l| *l != 1))
            .prop_map(|(batch, len)| Bad::TargetArity { batch, len }),
        (batch(), 0usize..8)
            .prop_filter("not the batch", |(b, c)| b != c)
            .prop_map(|(batch, count)| Bad::TargetCount { batch, count }),
        (batch(), any::<bool>())
            .prop_map(|(batch, negative)| Bad::TargetTensor { batch, negative }),
        batch().prop_map(|batch| Bad::TargetMissing { batch }),
        batch().prop_map(|batch| Bad::MissingArgs { batch }),
        (batch(), 2usize..7)
            .prop_filter("not the batch", |(b, r)| b != r)
            .prop_map(|(batch, rows)| Bad::ArgBatch { batch, rows }),
        "[a-z0-9_.]{0,12}"
            .prop_filter("not a layer", |n| !n.starts_with("linear")
                && !n.contains("relu"))
            .prop_map(|name| Bad::UnknownLayer { name }),
    ]
}

fn x(batch: usize, features: usize) -> Tensor<B, 2> {
    let values: Vec<f32> = (0..batch * features)
        .map(|i| (i % 7) as f32 * 0.3 - 0.8)
        .collect();
    Tensor::from_data(TensorData::new(values, [batch, features]), &device())
}

/// Runs one bad call and checks it gives the expected typed error.
fn check(
    single: &BasicModelMultiLayer<B>,
    multi: &BasicModelMultiLayerMultiInput<B>,
    bad: &Bad,
) -> Result<(), TestCaseError> {
    let ii = InternalInfluence::new(single, "linear1").unwrap();
    let mi = InternalInfluence::new(multi, "model.relu").unwrap();
    let result = match bad.clone() {
        Bad::FeatureShape { batch, features } => ii.attribute(x(batch, features)).target(0).run(),
        Bad::EmptyBatch => ii.attribute(x(0, 3)).target(0).run(),
        Bad::BatchMismatch { a, b } => mi
            .attribute(vec![x(a, 3), x(b, 3)])
            .additional_forward_args((None, 1.0))
            .target(0)
            .run(),
        Bad::BaselineCount { batch, count } => ii
            .attribute(x(batch, 3))
            .baselines(Baselines::per_input(vec![Baseline::Scalar(0.5); count]))
            .target(0)
            .run(),
        Bad::BaselineShape { batch, rows, cols } => ii
            .attribute(x(batch, 3))
            .baselines(x(rows, cols))
            .target(0)
            .run(),
        Bad::NonFinite {
            batch,
            at,
            value,
            place,
        } => {
            let mut values: Vec<f32> = vec![0.5; batch * 3];
            let at = at % values.len();
            values[at] = value;
            let t = Tensor::<B, 2>::from_data(TensorData::new(values, [batch, 3]), &device());
            let call = match place {
                0 => ii.attribute(t),
                1 => ii.attribute(x(batch, 3)).baselines(t),
                _ => ii.attribute(x(batch, 3)).baselines(value as f64),
            };
            call.target(1).n_steps(3).run()
        }
        Bad::Steps { method, n_steps } => ii
            .attribute(x(2, 3))
            .target(0)
            .method(method)
            .n_steps(n_steps)
            .run(),
        Bad::ZeroChunk { batch } => ii
            .attribute(x(batch, 3))
            .target(0)
            .internal_batch_size(0)
            .run(),
        Bad::TargetRange { batch, index } => ii.attribute(x(batch, 3)).target(index).run(),
        Bad::TargetArity { batch, len } => ii
            .attribute(x(batch, 3))
            .target(Target::Tuple(vec![0; len]))
            .run(),
        Bad::TargetCount { batch, count } => ii.attribute(x(batch, 3)).target(vec![0; count]).run(),
        Bad::TargetTensor { batch, negative } => {
            let t = if negative {
                let v: Vec<i64> = (0..batch as i64).map(|i| -1 - i).collect();
                Tensor::<B, 1, Int>::from_data(TensorData::new(v, [batch]), &device())
                    .reshape([batch, 1])
            } else {
                Tensor::<B, 2, Int>::zeros([batch, 2], &device())
            };
            ii.attribute(x(batch, 3)).target_tensor(t).run()
        }
        Bad::TargetMissing { batch } => ii.attribute(x(batch, 3)).run(),
        Bad::MissingArgs { batch } => mi.attribute(vec![x(batch, 3), x(batch, 3)]).target(0).run(),
        Bad::ArgBatch { batch, rows } => mi
            .attribute(vec![x(batch, 3), x(batch, 3)])
            .additional_forward_args((Some(x(rows, 3)), 2.0))
            .target(0)
            .run(),
        Bad::UnknownLayer { name } => match InternalInfluence::new(single, name) {
            Err(e) => Err(e),
            Ok(_) => return Err(TestCaseError::fail("an unknown layer was accepted")),
        },
    };
    let e = match result {
        Ok(_) => return Err(TestCaseError::fail(format!("{bad:?} was accepted"))),
        Err(e) => e,
    };
    let expected = matches!(
        (bad, &e),
        (Bad::FeatureShape { .. }, InfluenceError::Forward { .. })
            | (
                Bad::FeatureShape { features: 0, .. },
                InfluenceError::NoFeatures { .. }
            )
            | (Bad::EmptyBatch, InfluenceError::EmptyBatch { .. })
            | (
                Bad::BatchMismatch { .. },
                InfluenceError::BatchMismatch { .. }
            )
            | (
                Bad::BaselineCount { .. },
                InfluenceError::BaselineCount { .. }
            )
            | (
                Bad::BaselineShape { .. },
                InfluenceError::BaselineShape { .. }
            )
            | (Bad::NonFinite { .. }, InfluenceError::NonFinite { .. })
            | (Bad::Steps { .. }, InfluenceError::TooFewSteps { .. })
            | (Bad::Steps { .. }, InfluenceError::TooManySteps { .. })
            | (Bad::ZeroChunk { .. }, InfluenceError::ZeroInternalBatchSize)
            | (
                Bad::TargetRange { .. },
                InfluenceError::TargetOutOfRange { .. }
            )
            | (Bad::TargetArity { .. }, InfluenceError::TargetArity { .. })
            | (Bad::TargetCount { .. }, InfluenceError::TargetCount { .. })
            | (
                Bad::TargetTensor { .. },
                InfluenceError::TargetNegative { .. }
            )
            | (
                Bad::TargetTensor { .. },
                InfluenceError::TargetTensorShape { .. }
            )
            | (
                Bad::TargetMissing { .. },
                InfluenceError::TargetMissing { .. }
            )
            | (Bad::MissingArgs { .. }, InfluenceError::MissingForwardArgs)
            | (Bad::ArgBatch { .. }, InfluenceError::Forward { .. })
            | (
                Bad::UnknownLayer { .. },
                InfluenceError::UnknownLayer { .. }
            )
    );
    prop_assert!(expected, "{bad:?} gave {e:?}");
    prop_assert!(!e.to_string().is_empty());
    Ok(())
}

#[test]
fn bad_input_gives_typed_errors_and_no_growth() {
    let cases = std::env::var("INFLUENCE_SOAK_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000u32);
    let single = BasicModelMultiLayer::<B>::new(
        MultiLayerOptions {
            multidim_output: false,
            ..Default::default()
        },
        &device(),
    );
    let multi = BasicModelMultiLayerMultiInput::<B>::new(&device());
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    // Warm up the backend and the allocator with a first batch of cases.
    let mut runner = TestRunner::new(Config {
        cases: 200,
        ..config.clone()
    });
    runner.run(&bad(), |b| check(&single, &multi, &b)).unwrap();
    let start = heap::live_mib();
    let mut runner = TestRunner::new(config);
    runner.run(&bad(), |b| check(&single, &multi, &b)).unwrap();
    let end = heap::live_mib();
    println!("{cases} bad calls: live heap {start:.2} MiB before, {end:.2} MiB after");
    assert!(
        end - start < 4.0,
        "live heap grew by {:.2} MiB",
        end - start
    );
}
