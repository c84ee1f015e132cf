//! What a new user meets in the first hour: a freshly constructed model explained with its
//! own weights, targets and baselines written as users write them, additional forward
//! arguments that do not fit, results read in one call, and `layer_names` kept true.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::backend::Backend as BackendTrait;
use burn::tensor::{Int, Tensor, TensorData};
use burn_influence::{
    AnyTensor, InfluenceError, InternalInfluence, LayerProbe, Probe, Target, check_layer_names,
};
use influence_testkit::captum_models::BasicModelMultiLayerMultiInput;
mod common;
use common::{Backend, device};

type B = Backend;

/// `Linear(3→4, no bias) → ReLU → h`, then `2h + 5h → Linear(4→2)`: the gradient of output
/// `c` with respect to `h` is `7 · W2[:, c]` whatever the input.
#[derive(Module, Debug)]
struct Twice<B: BackendTrait> {
    lin1: Linear<B>,
    lin2: Linear<B>,
}

impl<B: BackendTrait> Twice<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            lin1: LinearConfig::new(3, 4).with_bias(false).init(device),
            lin2: LinearConfig::new(4, 2).init(device),
        }
    }
}

impl<B: BackendTrait> LayerProbe<B> for Twice<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["lin1".into(), "h".into(), "lin2".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let h = probe.layer("lin1", x, |x| relu(self.lin1.forward(x)));
        let h = probe.point("h", h);
        let sum = h.clone().mul_scalar(2.0) + h.mul_scalar(5.0);
        probe.layer("lin2", sum, |s| self.lin2.forward(s)).into()
    }
}

fn x(rows: &[[f32; 3]]) -> Tensor<B, 2> {
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), 3]), &device())
}

#[test]
fn a_fresh_model_is_explained_with_its_own_weights() {
    // Parameters are initialised lazily: nothing has read them yet.
    let model = Twice::<B>::new(&device());
    let inputs = x(&[[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]);
    let first = InternalInfluence::new(&model, "h")
        .unwrap()
        .attribute(inputs.clone())
        .target(0)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    let second = InternalInfluence::new(&model, "h")
        .unwrap()
        .attribute(inputs)
        .target(0)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    // The weights the caller's model holds now, read after the attribution.
    let w2: Vec<f32> = model
        .lin2
        .weight
        .val()
        .slice([0..4, 0..1])
        .into_data()
        .to_vec()
        .unwrap();
    for row in first.chunks(4) {
        for (got, w) in row.iter().zip(&w2) {
            assert!((got - 7.0 * w).abs() <= 1e-6, "{got} vs 7 · {w}");
        }
    }
    assert_eq!(
        first, second,
        "two InternalInfluence::new on one fresh model differ"
    );
}

#[test]
fn targets_as_users_write_them() {
    let model = Twice::<B>::new(&device());
    let ii = InternalInfluence::new(&model, "lin1").unwrap();
    let inputs = x(&[[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [0.1, 0.2, 0.3]]);
    let run = |t: Target| {
        ii.attribute(inputs.clone())
            .target(t)
            .run()
            .unwrap()
            .to_vec()
            .unwrap()
    };
    let per_example = run(Target::PerExample(vec![1, 0, 1]));
    // A Vec is one class per example (Captum's list).
    let from_vec = ii
        .attribute(inputs.clone())
        .target(vec![1, 0, 1])
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(from_vec, per_example);
    // An integer tensor, as argmax(1) gives it ([batch, 1]), of any Int element type.
    let preds =
        Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 0, 1], [3, 1]), &device());
    let from_tensor = ii
        .attribute(inputs.clone())
        .target_tensor(preds)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(from_tensor, per_example);
    let preds =
        Tensor::<<B as burn::tensor::backend::AutodiffBackend>::InnerBackend, 1, Int>::from_data(
            TensorData::new(vec![1i32, 0, 1], [3]),
            &device(),
        );
    assert_eq!(
        Target::from_tensor(preds).unwrap(),
        Target::PerExample(vec![1, 0, 1])
    );
    // A Rust tuple is one index tuple for every example (Captum's tuple).
    assert_eq!(Target::from((1, 0)), Target::Tuple(vec![1, 0]));
    // Bad tensors are typed errors.
    let negative =
        Tensor::<B, 1, Int>::from_data(TensorData::new(vec![1i64, -2, 0], [3]), &device());
    assert_eq!(
        ii.attribute(inputs.clone())
            .target_tensor(negative)
            .run()
            .unwrap_err(),
        InfluenceError::TargetNegative {
            value: -2,
            example: 1
        }
    );
    let wrong = Tensor::<B, 2, Int>::zeros([3, 2], &device());
    assert!(matches!(
        ii.attribute(inputs.clone())
            .target_tensor(wrong)
            .run()
            .unwrap_err(),
        InfluenceError::TargetTensorShape { .. }
    ));
    // An arity error hints at one class per example.
    let e = ii.attribute(inputs).target((1, 0)).run().unwrap_err();
    assert!(matches!(e, InfluenceError::TargetArity { .. }));
    assert!(e.to_string().contains("PerExample"), "{e}");
}

#[test]
fn baselines_from_f32_and_f64() {
    let model = Twice::<B>::new(&device());
    let ii = InternalInfluence::new(&model, "lin1").unwrap();
    let inputs = x(&[[0.5, -1.0, 2.0]]);
    let half: f32 = 0.5;
    let a = ii
        .attribute(inputs.clone())
        .target(0)
        .baselines(half)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    let b = ii
        .attribute(inputs)
        .target(0)
        .baselines(0.5f64)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn additional_forward_args_that_do_not_fit_the_batch() {
    let model = BasicModelMultiLayerMultiInput::<B>::new(&device());
    let ii = InternalInfluence::new(&model, "model.linear1").unwrap();
    let four = x(&[[1.0, 2.0, 3.0]; 4]);
    // x3 has 2 rows for a batch of 4: it is not the batch, so it is passed unchanged, and
    // the model cannot add it to 4 rows.
    let x3 = x(&[[0.0, 1.0, 0.0]; 2]);
    let e = ii
        .attribute(vec![four.clone(), four])
        .additional_forward_args((Some(x3), 5.0))
        .target(0)
        .run()
        .unwrap_err();
    match &e {
        InfluenceError::Forward {
            input_shapes,
            arg_shapes,
            batch,
            ..
        } => {
            assert_eq!(input_shapes, &vec![vec![4, 3], vec![4, 3]]);
            assert_eq!(arg_shapes, &vec![vec![2, 3]]);
            assert_eq!(*batch, 4);
        }
        other => panic!("expected a Forward error, got {other:?}"),
    }
    assert!(e.to_string().contains("additional_forward_args"), "{e}");
}

#[test]
fn results_are_read_in_one_call() {
    let model = Twice::<B>::new(&device());
    let ii = InternalInfluence::new(&model, "h").unwrap();
    let attr = ii
        .attribute(x(&[[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]))
        .target(1)
        .run()
        .unwrap();
    assert_eq!(attr.shape().unwrap(), &[2, 4]);
    let values = attr.to_vec().unwrap();
    assert_eq!(values.len(), 8);
    let per_channel: Vec<f32> = attr.per_channel().unwrap().into_data().to_vec().unwrap();
    assert_eq!(
        per_channel, values,
        "per_channel of a [batch, features] layer"
    );
    // `?` chains from a device read to a typed error.
    fn read(
        attr: &burn_influence::Attribution<impl BackendTrait>,
    ) -> Result<Vec<f32>, InfluenceError> {
        Ok(attr.single()?.clone().into_data()?.to_vec::<f32>()?)
    }
    assert_eq!(read(&attr).unwrap(), values);
}

#[test]
fn layer_names_are_checked_against_the_forward() {
    let model = Twice::<B>::new(&device());
    let reached = check_layer_names(&model, x(&[[0.5, -1.0, 2.0]]), &()).unwrap();
    assert_eq!(reached, vec!["lin1", "h", "lin2"]);

    /// `layer_names` lists a layer the forward never reaches, and misses one it reaches.
    #[derive(Module, Debug)]
    struct Drifted<B: BackendTrait> {
        inner: Twice<B>,
    }
    impl<B: BackendTrait> LayerProbe<B> for Drifted<B> {
        type Inputs = Tensor<B, 2>;
        type Args = ();
        fn layer_names(&self) -> Vec<String> {
            vec!["lin1".into(), "lin2".into(), "conv9".into()]
        }
        fn forward_probed(&self, x: Tensor<B, 2>, a: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
            self.inner.forward_probed(x, a, probe)
        }
    }
    let drifted = Drifted {
        inner: Twice::<B>::new(&device()),
    };
    assert_eq!(
        check_layer_names(&drifted, x(&[[0.5, -1.0, 2.0]]), &()).unwrap_err(),
        InfluenceError::LayerNamesMismatch {
            not_listed: vec!["h".into()],
            not_reached: vec!["conv9".into()],
        }
    );
}
