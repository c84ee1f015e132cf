//! Models with BatchNorm and Dropout are explained in inference mode (what `model.valid()`
//! computes), deterministically, and the caller's model is never changed; a model whose
//! output is not its inference function is refused with a typed error.

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::nn::transformer::{
    TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput,
};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, GaussianNoise, GaussianNoiseConfig, Linear,
    LinearConfig,
};
use burn::tensor::backend::Backend as BackendTrait;
use burn::tensor::{Distribution, Tensor, TensorData};
use burn_influence::{AnyTensor, InfluenceError, InternalInfluence, LayerProbe, Probe};
mod common;
use common::{Backend, device};

type B = Backend;

/// The model: `Linear(4→6) → BatchNorm(6) → Dropout(0.5) → Linear(6→3)`.
#[derive(Module, Debug)]
struct BnNet<B: BackendTrait> {
    lin1: Linear<B>,
    bn: BatchNorm<B>,
    drop: Dropout,
    lin2: Linear<B>,
}

impl<B: BackendTrait> BnNet<B> {
    fn new(device: &B::Device) -> Self {
        Self {
            lin1: LinearConfig::new(4, 6).init(device),
            bn: BatchNormConfig::new(6).init(device),
            drop: DropoutConfig::new(0.5).init(),
            lin2: LinearConfig::new(6, 3).init(device),
        }
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        self.forward_with(x, &mut Probe::disabled())
    }

    fn forward_with(&self, x: Tensor<B, 2>, probe: &mut Probe<B>) -> Tensor<B, 2> {
        let x = probe.layer("lin1", x, |x| self.lin1.forward(x));
        let x = probe.layer("bn", x, |x| self.bn.forward(x));
        let x = probe.layer("drop", x, |x| self.drop.forward(x));
        probe.layer("lin2", x, |x| self.lin2.forward(x))
    }
}

impl<B: BackendTrait> LayerProbe<B> for BnNet<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        ["lin1", "bn", "drop", "lin2"].map(String::from).to_vec()
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        self.forward_with(x, probe).into()
    }
}

/// Every float tensor of a module (parameters and running statistics), as bits.
struct Snapshot(Vec<Vec<u32>>);

impl<B: BackendTrait> ModuleVisitor<B> for Snapshot {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let values = param.val().into_data().to_vec::<f32>().unwrap();
        self.0.push(values.iter().map(|v| v.to_bits()).collect());
    }
}

fn snapshot<M: AutodiffModule<B>>(model: &M) -> Vec<Vec<u32>> {
    // Apply pending running-statistics updates first, as reading a record would.
    let _ = model.valid();
    let mut s = Snapshot(Vec::new());
    model.visit(&mut s);
    s.0
}

fn rows(values: &[f32], cols: usize) -> Tensor<B, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len() / cols, cols]),
        &device(),
    )
}

fn to_vec<BB: BackendTrait, const D: usize>(t: Tensor<BB, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// A trained-looking BnNet: a few training-mode forwards give it non-trivial running
/// statistics, as training would.
fn trained_bn_net() -> BnNet<B> {
    let model = BnNet::<B>::new(&device());
    for _ in 0..5 {
        let x = Tensor::<B, 2>::random([16, 4], Distribution::Normal(0.5, 2.0), &device());
        let _ = model.forward(x);
    }
    model
}

#[test]
fn batch_norm_and_dropout_are_explained_in_inference_mode() {
    let model = trained_bn_net();
    let x = rows(&[0.3, -1.2, 2.0, 0.7, 1.5, 0.1, -0.4, -2.2], 4);
    // The layer after lin1 is affine in inference mode: the gradient of output 1 with
    // respect to lin1's output is constant, W2[:, 1] · γ / √(running_var + ε).
    // The inference function is `model.valid()`'s (running statistics brought up to date).
    let valid = model.valid();
    let w2 = to_vec(valid.lin2.weight.val().slice([0..6, 1..2]));
    let gamma = to_vec(valid.bn.gamma.val());
    let var = to_vec(valid.bn.running_var.value());
    let eps = valid.bn.epsilon;
    assert!(
        var.iter().any(|v| (v - 1.0).abs() > 1e-3),
        "running statistics moved away from their initial values"
    );
    let expected: Vec<f32> = (0..6)
        .map(|j| (w2[j] as f64 * gamma[j] as f64 / (var[j] as f64 + eps).sqrt()) as f32)
        .collect();

    let before = snapshot(&model);
    let ii = InternalInfluence::new(&model, "lin1").unwrap();
    let first = ii.attribute(x.clone()).target(1).run().unwrap();
    let second = ii
        .attribute(x.clone())
        .target(1)
        .internal_batch_size(2)
        .run()
        .unwrap();
    let first = first.to_vec().unwrap();
    for (row, got) in first.chunks(6).enumerate() {
        for (j, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "row {row} neuron {j}: {g} vs inference-mode {e}"
            );
        }
    }
    // Deterministic, and independent of the chunking (no batch statistics).
    let again = ii.attribute(x).target(1).run().unwrap().to_vec().unwrap();
    assert_eq!(
        first.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        again.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        "two identical calls differ"
    );
    let second = second.to_vec().unwrap();
    for (a, b) in first.iter().zip(&second) {
        assert!((a - b).abs() <= 1e-6, "chunking changed the result");
    }
    // Nothing about the caller's model changed.
    assert_eq!(before, snapshot(&model), "the model changed");
}

#[test]
fn the_model_is_unchanged_after_failed_calls() {
    let model = trained_bn_net();
    let before = snapshot(&model);
    let ii = InternalInfluence::new(&model, "bn").unwrap();
    let x = rows(&[0.3, -1.2, 2.0, 0.7], 4);
    for target in [3usize, 7, 100] {
        let e = ii.attribute(x.clone()).target(target).run().unwrap_err();
        assert!(matches!(e, InfluenceError::TargetOutOfRange { .. }), "{e}");
    }
    let e = ii
        .attribute(rows(&[1.0, 2.0, 3.0], 3))
        .target(0)
        .run()
        .unwrap_err();
    assert!(matches!(e, InfluenceError::Forward { .. }), "{e}");
    assert!(ii.attribute(x).target(0).run().is_ok());
    assert_eq!(before, snapshot(&model), "the model changed");
}

/// A transformer encoder from burn-nn (Dropout inside its attention and feed-forward
/// blocks), pooled over the sequence, then a linear head.
#[derive(Module, Debug)]
struct Encoder<B: BackendTrait> {
    encoder: TransformerEncoder<B>,
    noise: GaussianNoise,
    head: Linear<B>,
}

impl<B: BackendTrait> Encoder<B> {
    fn new(dropout: f64, noise: f64, device: &B::Device) -> Self {
        Self {
            encoder: TransformerEncoderConfig::new(8, 16, 2, 2)
                .with_dropout(dropout)
                .init(device),
            noise: GaussianNoiseConfig::new(noise).init(),
            head: LinearConfig::new(8, 3).init(device),
        }
    }
}

impl<B: BackendTrait> LayerProbe<B> for Encoder<B> {
    /// `[batch, seq, 8]`.
    type Inputs = Tensor<B, 3>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["encoder".into(), "pooled".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 3>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let h = probe.layer("encoder", x, |x| {
            self.encoder.forward(TransformerEncoderInput::new(x))
        });
        let [batch, _, d] = h.dims();
        let pooled = probe.point("pooled", h.mean_dim(1).reshape([batch, d]));
        self.head.forward(self.noise.forward(pooled)).into()
    }
}

#[test]
fn dropout_inside_burn_composites_is_off() {
    let device = device();
    let with_dropout = Encoder::<B>::new(0.5, 0.3, &device);
    // Burn initialises parameters lazily, and a clone of an uninitialised parameter draws its
    // own values: read them all first, so that the copy below has the same weights.
    let _ = with_dropout.valid();
    // The same weights, built without dropout or noise: the reference function.
    let without =
        Encoder::<B>::new(0.0, 0.0, &device).load_record(with_dropout.clone().into_record());
    let x = Tensor::<B, 3>::random([3, 5, 8], Distribution::Normal(0.0, 1.0), &device);
    for layer in ["encoder", "pooled"] {
        let a = InternalInfluence::new(&with_dropout, layer)
            .unwrap()
            .attribute(x.clone())
            .target(vec![0, 2, 1])
            .n_steps(8)
            .run()
            .unwrap()
            .to_vec()
            .unwrap();
        let b = InternalInfluence::new(&without, layer)
            .unwrap()
            .attribute(x.clone())
            .target(vec![0, 2, 1])
            .n_steps(8)
            .run()
            .unwrap()
            .to_vec()
            .unwrap();
        assert!(a.iter().any(|v| *v != 0.0));
        assert_eq!(a, b, "{layer}: dropout or noise was active");
    }
}

/// A module of a user's own that normalises over the batch whatever the mode: its output for
/// an example depends on the other examples.
#[derive(Module, Debug)]
struct BatchCentred<B: BackendTrait> {
    lin: Linear<B>,
}

impl<B: BackendTrait> LayerProbe<B> for BatchCentred<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["lin".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let h = probe.layer("lin", x, |x| self.lin.forward(x));
        let centred = h.clone() - h.mean_dim(0);
        (centred.clone() * centred).into()
    }
}

/// A module of a user's own that draws noise whatever the mode.
#[derive(Module, Debug)]
struct AlwaysNoisy<B: BackendTrait> {
    lin: Linear<B>,
}

impl<B: BackendTrait> LayerProbe<B> for AlwaysNoisy<B> {
    type Inputs = Tensor<B, 2>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["lin".into()]
    }

    fn forward_probed(&self, x: Tensor<B, 2>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let h = probe.layer("lin", x, |x| self.lin.forward(x));
        let noise = h.random_like(Distribution::Normal(0.0, 0.5));
        (h + noise).into()
    }
}

#[test]
fn a_function_that_is_not_the_inference_function_is_refused() {
    let device = device();
    let x = rows(&[0.3, -1.2, 2.0, 0.7, 1.5, 0.1], 3);
    let centred = BatchCentred::<B> {
        lin: LinearConfig::new(3, 2).init(&device),
    };
    let e = InternalInfluence::new(&centred, "lin")
        .unwrap()
        .attribute(x.clone())
        .target(0)
        .run()
        .unwrap_err();
    assert!(
        matches!(e, InfluenceError::NotInferenceFunction { .. }),
        "{e}"
    );
    let noisy = AlwaysNoisy::<B> {
        lin: LinearConfig::new(3, 2).init(&device),
    };
    let e = InternalInfluence::new(&noisy, "lin")
        .unwrap()
        .attribute(x)
        .target(1)
        .run()
        .unwrap_err();
    assert!(
        matches!(e, InfluenceError::NotInferenceFunction { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("inference"), "{e}");
}

/// A ResNet with BatchNorm (torchvision's ResNet-18, seeded weights loaded from safetensors),
/// then every public function the docs show before and around an attribution: the model's
/// running statistics stay bit-identical, and the attribution still equals Captum's (the
/// float64 reference of `tests/fixtures/resnet18`). The model's own training-mode forward on
/// the autodiff backend, by contrast, does move them (what the docs warn about).
#[test]
fn nothing_in_the_library_changes_a_resnet() {
    use burn_influence::{
        LayerActivation, LayerGradientXActivation, Target, check_layer_names, predict,
    };
    use influence_resnet::{ResNet18, fixture, load_torchvision_bytes};

    let bytes = fixture::seeded_safetensors(1000, 0).unwrap();
    let model: ResNet18<B> = load_torchvision_bytes(bytes, &device()).unwrap();
    let x = Tensor::<B, 4>::from_data(
        TensorData::new(fixture::seeded_images(2, 64, 0), [2, 3, 64, 64]),
        &device(),
    );
    let before = snapshot(&model);

    check_layer_names(&model, x.clone(), &()).unwrap();
    let logits = predict(&model, x.clone(), &())
        .unwrap()
        .into_tensor::<2>()
        .unwrap();
    let classes = burn_influence::Target::from_tensor(logits.argmax(1)).unwrap();
    let _ = LayerActivation::new(&model, "layer3")
        .unwrap()
        .attribute(x.clone())
        .run()
        .unwrap();
    let _ = LayerGradientXActivation::new(&model, "layer3.0.conv1")
        .unwrap()
        .attribute(x.clone())
        .target(Target::Predicted)
        .run()
        .unwrap();
    let ii = InternalInfluence::new(&model, "layer3").unwrap();
    let predicted = ii
        .attribute(x.clone())
        .target(Target::Predicted)
        .n_steps(50)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    let given = ii
        .attribute(x.clone())
        .target(classes)
        .n_steps(50)
        .run()
        .unwrap()
        .to_vec()
        .unwrap();
    assert_eq!(
        predicted, given,
        "Target::Predicted is the predicted classes"
    );
    assert_eq!(snapshot(&model), before, "the running statistics moved");

    // Captum's float64 attribution of the same case (64×64, layer3's output).
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/resnet18/cases_64.safetensors"),
    )
    .unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let reference: Vec<f64> = file
        .tensor("64/layer3/output")
        .unwrap()
        .data()
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let scale = reference.iter().fold(0.0f64, |m, r| m.max(r.abs()));
    let error = predicted
        .iter()
        .zip(&reference)
        .fold(0.0f64, |m, (a, r)| m.max((*a as f64 - r).abs()))
        / scale;
    assert!(error < 1e-6, "error {error:.2e} of the largest value");

    // The trap the docs warn about: the model's own forward on an autodiff backend is Burn's
    // training forward, and moves the running statistics.
    let _ = model.forward(x);
    assert_ne!(snapshot(&model), before);
}
