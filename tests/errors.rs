//! One test per error kind: bad input gives a typed `InfluenceError` whose message names the
//! argument and the shapes involved, never a panic.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend as BackendTrait;
use burn::tensor::{Tensor, TensorData};
mod common;

use burn_influence::{
    AnyTensor, Baseline, Baselines, InfluenceError, InternalInfluence, LayerProbe, Method, Probe,
    Target,
};
use common::{Backend, device};
use influence_testkit::captum_models::{
    BasicModelMultiLayer, BasicModelMultiLayerMultiInput, MultiLayerOptions,
};

type B = Backend;

fn x(rows: &[[f32; 3]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &device())
}

fn model() -> BasicModelMultiLayer<B> {
    BasicModelMultiLayer::new(MultiLayerOptions::default(), &device())
}

fn err<T: std::fmt::Debug>(r: Result<T, InfluenceError>) -> InfluenceError {
    let e = r.expect_err("expected an error");
    // Every error renders a message that names what is wrong.
    assert!(!e.to_string().is_empty());
    e
}

#[test]
fn unknown_layer() {
    let e = err(InternalInfluence::new(&model(), "conv9"));
    assert!(
        matches!(&e, InfluenceError::UnknownLayer { name, available }
        if name == "conv9" && available.contains(&"linear1".to_string()))
    );
    assert!(e.to_string().contains("linear1"), "{e}");
}

#[test]
fn unknown_method() {
    let e = err("simpson".parse::<Method>());
    assert_eq!(
        e,
        InfluenceError::UnknownMethod {
            name: "simpson".into()
        }
    );
    assert!(e.to_string().contains("gausslegendre"));
}

#[test]
fn too_few_steps() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    for (method, n, min) in [
        (Method::RiemannTrapezoid, 1, 2),
        (Method::RiemannLeft, 0, 2),
        (Method::GaussLegendre, 0, 1),
    ] {
        let e = err(ii
            .attribute(x(&[[1.0, 2.0, 3.0]]))
            .target(0usize)
            .method(method)
            .n_steps(n)
            .run());
        assert_eq!(
            e,
            InfluenceError::TooFewSteps {
                method: method.name(),
                min,
                n_steps: n
            }
        );
        assert!(e.to_string().contains("n_steps"));
    }
}

#[test]
fn zero_internal_batch_size() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0]]))
        .target(0usize)
        .internal_batch_size(0)
        .run());
    assert_eq!(e, InfluenceError::ZeroInternalBatchSize);
    assert!(e.to_string().contains("internal_batch_size"));
}

#[test]
fn empty_batch() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let empty = Tensor::<B, 2>::zeros([0, 3], &device());
    let e = err(ii.attribute(empty).target(0usize).run());
    assert_eq!(
        e,
        InfluenceError::EmptyBatch {
            input: 0,
            shape: vec![0, 3]
        }
    );
}

#[test]
fn batch_mismatch_between_inputs() {
    let m = BasicModelMultiLayerMultiInput::<B>::new(&device());
    let ii = InternalInfluence::new(&m, "model.linear1").unwrap();
    let e = err(ii
        .attribute(vec![x(&[[1.0, 2.0, 3.0]; 2]), x(&[[1.0, 2.0, 3.0]; 3])])
        .additional_forward_args((None, 1.0))
        .target(0usize)
        .run());
    assert_eq!(
        e,
        InfluenceError::BatchMismatch {
            input: 1,
            expected: 2,
            got: 3,
            shape: vec![3, 3]
        }
    );
}

#[test]
fn wrong_number_of_baselines() {
    let m = BasicModelMultiLayerMultiInput::<B>::new(&device());
    let ii = InternalInfluence::new(&m, "model.linear1").unwrap();
    let e = err(ii
        .attribute(vec![x(&[[1.0, 2.0, 3.0]]), x(&[[1.0, 2.0, 3.0]])])
        .baselines(Baselines::per_input(vec![Baseline::Scalar(0.0)]))
        .additional_forward_args((None, 1.0))
        .target(0usize)
        .run());
    assert_eq!(
        e,
        InfluenceError::BaselineCount {
            expected: 2,
            got: 1
        }
    );
    assert!(e.to_string().contains("baselines"));
}

#[test]
fn baseline_shape_mismatch() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let two = x(&[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
    // Batch 3 is neither 2 nor 1.
    let e = err(ii
        .attribute(two.clone())
        .baselines(x(&[[0.0; 3]; 3]))
        .target(0usize)
        .run());
    assert_eq!(
        e,
        InfluenceError::BaselineShape {
            input: 0,
            input_shape: vec![2, 3],
            baseline: vec![3, 3]
        }
    );
    assert!(
        e.to_string().contains("[2, 3]") && e.to_string().contains("[3, 3]"),
        "{e}"
    );
    // Wrong feature dims.
    let e = err(ii
        .attribute(two.clone())
        .baselines(Tensor::<B, 2>::zeros([1, 4], &device()))
        .target(0usize)
        .run());
    assert!(matches!(e, InfluenceError::BaselineShape { .. }));
    // A first dim of 1 broadcasts and is fine.
    ii.attribute(two)
        .baselines(x(&[[0.0; 3]]))
        .target(0usize)
        .run()
        .unwrap();
}

#[test]
fn non_finite_inputs_and_baselines() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let e = err(ii.attribute(x(&[[1.0, bad, 3.0]])).target(0usize).run());
        assert_eq!(
            e,
            InfluenceError::NonFinite {
                argument: "inputs",
                input: 0
            }
        );
        let e = err(ii
            .attribute(x(&[[1.0, 2.0, 3.0]]))
            .baselines(x(&[[0.0, 0.0, bad]]))
            .target(0usize)
            .run());
        assert_eq!(
            e,
            InfluenceError::NonFinite {
                argument: "baselines",
                input: 0
            }
        );
        let e = err(ii
            .attribute(x(&[[1.0, 2.0, 3.0]]))
            .baselines(bad as f64)
            .target(0usize)
            .run());
        assert_eq!(
            e,
            InfluenceError::NonFinite {
                argument: "baselines",
                input: 0
            }
        );
    }
}

#[test]
fn target_missing_when_output_has_several_values() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).run());
    assert_eq!(
        e,
        InfluenceError::TargetMissing {
            output_shape: vec![1, 2],
            per_example: 2
        }
    );
    assert!(e.to_string().contains("target"));
}

#[test]
fn target_out_of_range() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).target(2usize).run());
    assert_eq!(
        e,
        InfluenceError::TargetOutOfRange {
            index: 2,
            dim: 1,
            size: 2,
            output_shape: vec![1, 2],
            example: None
        }
    );
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]))
        .target(vec![0, 5])
        .run());
    assert!(matches!(
        e,
        InfluenceError::TargetOutOfRange {
            index: 5,
            example: Some(1),
            ..
        }
    ));
    assert!(e.to_string().contains("example 1"), "{e}");
}

#[test]
fn target_tuple_arity() {
    let multidim = BasicModelMultiLayer::<B>::new(
        MultiLayerOptions {
            multidim_output: true,
            ..Default::default()
        },
        &device(),
    );
    let ii = InternalInfluence::new(&multidim, "linear1").unwrap();
    // The output is [batch, 2, 2, 2]: a tuple needs 3 indices.
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).target((1, 0)).run());
    assert_eq!(
        e,
        InfluenceError::TargetArity {
            got: 2,
            expected: 3,
            output_shape: vec![1, 2, 2, 2]
        }
    );
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).target(1usize).run());
    assert!(matches!(
        e,
        InfluenceError::TargetArity {
            got: 1,
            expected: 3,
            ..
        }
    ));
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0]]))
        .target(Target::PerExampleTuple(vec![vec![1, 0]]))
        .run());
    assert!(matches!(e, InfluenceError::TargetArity { got: 2, .. }));
}

#[test]
fn per_example_target_count() {
    let m = model();
    let ii = InternalInfluence::new(&m, "linear1").unwrap();
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0]; 2]))
        .target(vec![0, 1, 1])
        .run());
    assert_eq!(e, InfluenceError::TargetCount { got: 3, batch: 2 });
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0]; 2]))
        .target(Target::PerExampleTuple(vec![vec![0]]))
        .run());
    assert_eq!(e, InfluenceError::TargetCount { got: 1, batch: 2 });
}

#[test]
fn missing_additional_forward_args() {
    let m = BasicModelMultiLayerMultiInput::<B>::new(&device());
    let ii = InternalInfluence::new(&m, "model.linear1").unwrap();
    let e = err(ii
        .attribute(vec![x(&[[1.0, 2.0, 3.0]])])
        .target(0usize)
        .run());
    assert_eq!(e, InfluenceError::MissingForwardArgs);
}

/// A model whose forward skips `fc` when `skip`, calls it twice when `twice`, and mixes the
/// batch into one row when `pool_batch`.
#[derive(Module, Debug)]
struct Quirky<B: BackendTrait> {
    fc: Linear<B>,
    #[module(skip)]
    mode: &'static str,
}

impl<B: BackendTrait> LayerProbe<B> for Quirky<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["fc".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        match self.mode {
            "skip" => x.into(),
            "twice" => {
                let y = probe.layer("fc", x, |x| self.fc.forward(x));
                probe.layer("fc", relu(y), |x| self.fc.forward(x)).into()
            }
            _ => probe
                .layer("fc", x, |x| self.fc.forward(x))
                .sum_dim(0)
                .into(),
        }
    }
}

fn quirky(mode: &'static str) -> Quirky<B> {
    Quirky {
        fc: LinearConfig::new(3, 3).init(&device()),
        mode,
    }
}

#[test]
fn layer_never_reached() {
    let m = quirky("skip");
    let ii = InternalInfluence::new(&m, "fc").unwrap();
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).target(0usize).run());
    assert_eq!(
        e,
        InfluenceError::LayerNotReached {
            name: "fc".into(),
            side: "output"
        }
    );
}

#[test]
fn layer_reached_twice() {
    let m = quirky("twice");
    let ii = InternalInfluence::new(&m, "fc").unwrap();
    let e = err(ii.attribute(x(&[[1.0, 2.0, 3.0]])).target(0usize).run());
    assert_eq!(
        e,
        InfluenceError::LayerReachedTwice {
            name: "fc".into(),
            times: 2
        }
    );
}

#[test]
fn output_without_batch_dim() {
    let m = quirky("pool_batch");
    let ii = InternalInfluence::new(&m, "fc").unwrap();
    let e = err(ii
        .attribute(x(&[[1.0, 2.0, 3.0]; 2]))
        .target(0usize)
        .n_steps(4)
        .run());
    // The validation forward, of the inputs at two points of the path (4 rows), finds it
    // before any attribution forward.
    assert_eq!(
        e,
        InfluenceError::OutputBatch {
            expected: 4,
            output_shape: vec![1, 3]
        }
    );
}

#[test]
fn wrong_rank_and_not_single() {
    let m = BasicModelMultiLayer::<B>::new(
        MultiLayerOptions {
            multi_input_module: true,
            ..Default::default()
        },
        &device(),
    );
    let ii = InternalInfluence::new(&m, "multi_relu").unwrap();
    let attr = ii
        .attribute(x(&[[1.0, 2.0, 3.0]]))
        .target(0usize)
        .attribute_to_layer_input(true)
        .run()
        .unwrap();
    assert_eq!(attr.tensors().len(), 2);
    let e = err(attr.tensors()[0].to_tensor::<3>());
    assert_eq!(
        e,
        InfluenceError::Rank {
            what: "tensor",
            expected: 3,
            shape: vec![1, 4]
        }
    );
    let e = err(attr.into_single::<2>());
    assert_eq!(e, InfluenceError::NotSingle { count: 2 });
}
