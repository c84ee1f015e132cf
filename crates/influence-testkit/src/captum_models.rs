//! Captum's test models (`tests/helpers/basic_models.py`) in Burn, with the same fixed
//! weights, exposing the same layer names.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use influence_core::{AnyTensor, LayerProbe, Probe};

/// Options of `BasicModel_MultiLayer`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MultiLayerOptions {
    /// Use `multi_relu`, a layer with two inputs and two outputs, in place of `relu`.
    pub multi_input_module: bool,
    /// Return an output of shape `[batch, 2, 2, 2]` instead of `[batch, 2]`.
    pub multidim_output: bool,
}

/// Captum's `BasicModel_MultiLayer`:
///
/// ```text
/// linear0 = Linear(3, 3), W = I, b = 0
/// linear1 = Linear(3, 4), W = 1, b = [-10, 1, 1, 1]     (linear1_alt the same)
/// linear2 = Linear(4, 2), W = 1, b = [-1, 1]
/// forward(x, add_input) = linear2(relu(linear1(linear0(x + add_input))))
/// ```
///
/// with `multi_relu(linear1(..), linear1_alt(x))` summed in place of `relu` when
/// `multi_input_module`, and the output stacked into `[batch, 2, 2, 2]` when
/// `multidim_output`. Layers: `linear0`, `linear1`, `linear1_alt`, `relu`, `multi_relu`,
/// `linear2`.
#[derive(Module, Debug)]
pub struct BasicModelMultiLayer<B: Backend> {
    linear0: Linear<B>,
    linear1: Linear<B>,
    linear1_alt: Linear<B>,
    linear2: Linear<B>,
    #[module(skip)]
    options: MultiLayerOptions,
}

fn linear<B: Backend>(
    d_in: usize,
    d_out: usize,
    weight_in_out: Vec<f64>,
    bias: Vec<f64>,
    device: &B::Device,
) -> Linear<B> {
    let mut l = LinearConfig::new(d_in, d_out).init(device);
    l.weight = Param::from_tensor(Tensor::from_data(
        TensorData::new(weight_in_out, [d_in, d_out]),
        device,
    ));
    l.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(bias, [d_out]),
        device,
    )));
    l
}

impl<B: Backend> BasicModelMultiLayer<B> {
    /// The model with Captum's weights.
    pub fn new(options: MultiLayerOptions, device: &B::Device) -> Self {
        let eye = (0..9).map(|i| if i % 4 == 0 { 1.0 } else { 0.0 }).collect();
        Self {
            linear0: linear(3, 3, eye, vec![0.0; 3], device),
            linear1: linear(3, 4, vec![1.0; 12], vec![-10.0, 1.0, 1.0, 1.0], device),
            linear1_alt: linear(3, 4, vec![1.0; 12], vec![-10.0, 1.0, 1.0, 1.0], device),
            linear2: linear(4, 2, vec![1.0; 8], vec![-1.0, 1.0], device),
            options,
        }
    }

    /// The forward pass, calling the probe at every layer.
    ///
    /// # Shapes
    /// - x, add_input: `[batch, 3]`
    /// - output: `[batch, 2]`, or `[batch, 2, 2, 2]` with `multidim_output`
    pub fn forward_with(
        &self,
        x: Tensor<B, 2>,
        add_input: Option<Tensor<B, 2>>,
        probe: &mut Probe<B>,
    ) -> AnyTensor<B> {
        let input = match add_input {
            Some(a) => x + a,
            None => x,
        };
        let lin0 = probe.layer("linear0", input.clone(), |x| self.linear0.forward(x));
        let lin1 = probe.layer("linear1", lin0, |x| self.linear1.forward(x));
        let relu_out = if self.options.multi_input_module {
            let alt = probe.layer("linear1_alt", input, |x| self.linear1_alt.forward(x));
            let (a, b) = probe.layer("multi_relu", (lin1, alt), |(a, b)| (relu(a), relu(b)));
            a + b
        } else {
            probe.layer("relu", lin1, relu)
        };
        let lin2 = probe.layer("linear2", relu_out, |x| self.linear2.forward(x));
        if self.options.multidim_output {
            let mid = Tensor::stack::<3>(vec![lin2.clone(), lin2 * 2.0], 2);
            Tensor::stack::<4>(vec![mid.clone(), mid * 4.0], 3).into()
        } else {
            lin2.into()
        }
    }

    fn names() -> Vec<String> {
        [
            "linear0",
            "linear1",
            "linear1_alt",
            "relu",
            "multi_relu",
            "linear2",
        ]
        .map(String::from)
        .to_vec()
    }
}

impl<B: Backend> LayerProbe<B> for BasicModelMultiLayer<B> {
    type Inputs = Tensor<B, 2>;
    /// `add_input`.
    type Args = Option<Tensor<B, 2>>;

    fn layer_names(&self) -> Vec<String> {
        Self::names()
    }

    fn forward_probed(
        &self,
        x: Tensor<B, 2>,
        add_input: &Option<Tensor<B, 2>>,
        probe: &mut Probe<B>,
    ) -> AnyTensor<B> {
        self.forward_with(x, add_input.clone(), probe)
    }
}

/// Captum's `BasicModel_MultiLayer_MultiInput`:
/// `forward(x1, x2, x3, scale) = model(scale * (x1 + x2 + x3))`, with `model` a
/// [`BasicModelMultiLayer`]; its layers are exposed as `model.linear1` and so on.
///
/// The attributed inputs are `[x1, x2, x3]` or `[x1, x2]`; the additional arguments are
/// `(x3, scale)`, with `x3` given there when it is not an input.
#[derive(Module, Debug)]
pub struct BasicModelMultiLayerMultiInput<B: Backend> {
    model: BasicModelMultiLayer<B>,
}

impl<B: Backend> BasicModelMultiLayerMultiInput<B> {
    /// The model with Captum's weights.
    pub fn new(device: &B::Device) -> Self {
        Self {
            model: BasicModelMultiLayer::new(MultiLayerOptions::default(), device),
        }
    }
}

impl<B: Backend> LayerProbe<B> for BasicModelMultiLayerMultiInput<B> {
    /// `[x1, x2, x3]` or `[x1, x2]`, each `[batch, 3]`.
    type Inputs = Vec<Tensor<B, 2>>;
    /// `(x3 when not an input, scale)`.
    type Args = (Option<Tensor<B, 2>>, f64);

    fn layer_names(&self) -> Vec<String> {
        BasicModelMultiLayer::<B>::names()
            .into_iter()
            .map(|n| format!("model.{n}"))
            .collect()
    }

    fn forward_probed(
        &self,
        inputs: Vec<Tensor<B, 2>>,
        (x3, scale): &(Option<Tensor<B, 2>>, f64),
        probe: &mut Probe<B>,
    ) -> AnyTensor<B> {
        let sum = inputs
            .into_iter()
            .chain(x3.clone())
            .reduce(|a, b| a + b)
            .expect("at least one input");
        probe.scope("model", |probe| {
            self.model.forward_with(sum * *scale, None, probe)
        })
    }
}
