//! A sequential model built from a list of layers in the golden files' JSON format
//! (PyTorch conventions and weight layouts), every layer exposed to the probe by name.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear,
    LinearConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::tensor::activation::{relu, sigmoid, softmax, tanh};
use burn::tensor::module::{avg_pool2d, max_pool2d};
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend, backend::Backend};
use influence_core::activation::gelu_exact;
use influence_core::{AnyTensor, Eval, LayerProbe, Probe, TensorGroup, TensorMap, ToEval};
use serde::Deserialize;

/// A tensor in the golden files: `{shape, data}`, row-major.
#[derive(Debug, Clone, Deserialize)]
pub struct Data {
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f64>,
}

impl Data {
    /// The tensor on `device` (converted to the backend's float type).
    pub fn tensor<B: Backend, const D: usize>(&self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// The tensor as an [`Act`] of its own rank (2, 3 or 4).
    pub fn act<B: Backend>(&self, device: &B::Device) -> Act<B> {
        match self.shape.len() {
            2 => Act::D2(self.tensor(device)),
            3 => Act::D3(self.tensor(device)),
            4 => Act::D4(self.tensor(device)),
            r => panic!("golden tensors have rank 2 to 4, got {r}"),
        }
    }
}

/// One layer of the JSON list; parameters as PyTorch names and stores them.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum LayerSpec {
    Linear {
        in_features: usize,
        out_features: usize,
        weight: Data,
        bias: Option<Data>,
    },
    Conv2d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        weight: Data,
        bias: Option<Data>,
    },
    Conv1d {
        in_channels: usize,
        out_channels: usize,
        kernel_size: [usize; 1],
        stride: [usize; 1],
        padding: [usize; 1],
        weight: Data,
        bias: Option<Data>,
    },
    Relu,
    /// ReLU written as a comparison and a mask (`x.mask_fill(x.lower_equal_elem(0), 0)`), as
    /// some models write it: not a golden type; the exact method's tests use it.
    ReluMask,
    Tanh,
    Sigmoid,
    Gelu,
    Softmax {
        dim: usize,
    },
    MaxPool2d {
        kernel_size: [usize; 2],
        stride: [usize; 2],
    },
    AvgPool2d {
        kernel_size: [usize; 2],
        stride: [usize; 2],
    },
    Flatten,
    LayerNorm {
        normalized_shape: Vec<usize>,
        eps: f64,
        weight: Data,
        bias: Data,
    },
    /// PyTorch's `BatchNorm1d` (`dims` 1, on `[batch, C]`) or `BatchNorm2d` (`dims` 2, on
    /// `[batch, C, H, W]`), built as Burn's `BatchNorm` with the running statistics given.
    BatchNorm {
        dims: usize,
        num_features: usize,
        eps: f64,
        weight: Data,
        bias: Data,
        running_mean: Data,
        running_var: Data,
        #[serde(default = "default_momentum")]
        momentum: f64,
    },
    /// Burn's `Dropout` with probability `p`.
    Dropout {
        p: f64,
    },
}

fn default_momentum() -> f64 {
    // PyTorch's default; Burn's BatchNorm uses the same convention (weight of the new value).
    0.1
}

/// A named layer of the JSON list.
#[derive(Debug, Clone, Deserialize)]
pub struct NamedLayer {
    /// The layer's name (the probe's name for it).
    pub name: String,
    /// What it is.
    #[serde(flatten)]
    pub spec: LayerSpec,
}

/// A parameter-free layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    /// ReLU.
    Relu,
    /// ReLU as a comparison and a mask.
    ReluMask,
    /// tanh.
    Tanh,
    /// Logistic sigmoid.
    Sigmoid,
    /// GELU, exact (erf) form.
    Gelu,
    /// Softmax over a dim.
    Softmax(usize),
    /// 2-D max pooling, no padding: kernel, stride.
    MaxPool2d([usize; 2], [usize; 2]),
    /// 2-D average pooling, no padding: kernel, stride.
    AvgPool2d([usize; 2], [usize; 2]),
    /// Keep dim 0, flatten the rest.
    Flatten,
}

/// A layer with parameters or a mode of its own (Burn's modules).
#[derive(Module, Debug)]
#[allow(missing_docs)]
pub enum Layer<B: Backend> {
    Linear(Linear<B>),
    Conv1d(Conv1d<B>),
    Conv2d(Conv2d<B>),
    LayerNorm(LayerNorm<B>),
    BatchNorm(BatchNorm<B>),
    Dropout(Dropout),
}

/// One step of a [`Sequential`]: a layer with parameters (by index) or a parameter-free op.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// `layers[i]` of the model.
    Layer(usize),
    /// A parameter-free op.
    Op(Op),
}

/// An activation of rank 2, 3 or 4: what flows between the layers of a [`Sequential`].
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Act<B: Backend> {
    D2(Tensor<B, 2>),
    D3(Tensor<B, 3>),
    D4(Tensor<B, 4>),
}

impl<B: Backend> TensorGroup<B> for Act<B> {
    fn map_tensors<F: TensorMap<B>>(self, f: &mut F) -> Self {
        match self {
            Act::D2(t) => Act::D2(f.map(t)),
            Act::D3(t) => Act::D3(f.map(t)),
            Act::D4(t) => Act::D4(f.map(t)),
        }
    }
}

impl<B: AutodiffBackend> ToEval<B> for Act<B> {
    type Eval = Act<Eval<B>>;

    fn to_eval(self) -> Act<Eval<B>> {
        match self {
            Act::D2(t) => Act::D2(t.to_eval()),
            Act::D3(t) => Act::D3(t.to_eval()),
            Act::D4(t) => Act::D4(t.to_eval()),
        }
    }
}

impl<B: Backend> From<Act<B>> for AnyTensor<B> {
    fn from(a: Act<B>) -> Self {
        match a {
            Act::D2(t) => t.into(),
            Act::D3(t) => t.into(),
            Act::D4(t) => t.into(),
        }
    }
}

macro_rules! each_rank {
    ($act:expr, |$t:ident| $body:expr) => {
        match $act {
            Act::D2($t) => Act::D2($body),
            Act::D3($t) => Act::D3($body),
            Act::D4($t) => Act::D4($body),
        }
    };
}

impl<B: Backend> Layer<B> {
    /// Builds the layer from its JSON spec, with PyTorch's weights; a parameter-free layer
    /// gives its [`Op`] instead.
    pub fn from_spec(spec: &LayerSpec, device: &B::Device) -> Result<Self, Op> {
        let param1 = |d: &Data| Param::from_tensor(d.tensor::<B, 1>(device));
        match spec {
            LayerSpec::Linear {
                in_features,
                out_features,
                weight,
                bias,
            } => {
                let mut l = LinearConfig::new(*in_features, *out_features)
                    .with_bias(bias.is_some())
                    .init(device);
                // PyTorch stores [out, in]; Burn [in, out].
                l.weight = Param::from_tensor(weight.tensor::<B, 2>(device).transpose());
                l.bias = bias.as_ref().map(param1);
                Ok(Layer::Linear(l))
            }
            LayerSpec::Conv2d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                weight,
                bias,
            } => {
                let mut c = Conv2dConfig::new([*in_channels, *out_channels], *kernel_size)
                    .with_stride(*stride)
                    .with_padding(PaddingConfig2d::Explicit(
                        padding[0], padding[1], padding[0], padding[1],
                    ))
                    .with_bias(bias.is_some())
                    .init(device);
                c.weight = Param::from_tensor(weight.tensor(device));
                c.bias = bias.as_ref().map(param1);
                Ok(Layer::Conv2d(c))
            }
            LayerSpec::Conv1d {
                in_channels,
                out_channels,
                kernel_size,
                stride,
                padding,
                weight,
                bias,
            } => {
                let mut c = Conv1dConfig::new(*in_channels, *out_channels, kernel_size[0])
                    .with_stride(stride[0])
                    .with_padding(PaddingConfig1d::Explicit(padding[0], padding[0]))
                    .with_bias(bias.is_some())
                    .init(device);
                c.weight = Param::from_tensor(weight.tensor(device));
                c.bias = bias.as_ref().map(param1);
                Ok(Layer::Conv1d(c))
            }
            LayerSpec::LayerNorm {
                normalized_shape,
                eps,
                weight,
                bias,
            } => {
                assert_eq!(
                    normalized_shape.len(),
                    1,
                    "layer_norm over the last dim only"
                );
                let mut n = LayerNormConfig::new(normalized_shape[0])
                    .with_epsilon(*eps)
                    .init(device);
                n.gamma = param1(weight);
                n.beta = Some(param1(bias));
                Ok(Layer::LayerNorm(n))
            }
            LayerSpec::BatchNorm {
                dims,
                num_features,
                eps,
                weight,
                bias,
                running_mean,
                running_var,
                momentum,
            } => {
                assert!(
                    *dims == 1 || *dims == 2,
                    "batch_norm dims is 1 or 2, got {dims}"
                );
                let mut n = BatchNormConfig::new(*num_features)
                    .with_epsilon(*eps)
                    .with_momentum(*momentum)
                    .init(device);
                n.gamma = param1(weight);
                n.beta = param1(bias);
                n.running_mean = RunningState::new(running_mean.tensor(device));
                n.running_var = RunningState::new(running_var.tensor(device));
                Ok(Layer::BatchNorm(n))
            }
            LayerSpec::Dropout { p } => Ok(Layer::Dropout(DropoutConfig::new(*p).init())),
            LayerSpec::Relu => Err(Op::Relu),
            LayerSpec::ReluMask => Err(Op::ReluMask),
            LayerSpec::Tanh => Err(Op::Tanh),
            LayerSpec::Sigmoid => Err(Op::Sigmoid),
            LayerSpec::Gelu => Err(Op::Gelu),
            LayerSpec::Softmax { dim } => Err(Op::Softmax(*dim)),
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
            } => Err(Op::MaxPool2d(*kernel_size, *stride)),
            LayerSpec::AvgPool2d {
                kernel_size,
                stride,
            } => Err(Op::AvgPool2d(*kernel_size, *stride)),
            LayerSpec::Flatten => Err(Op::Flatten),
        }
    }

    /// Applies the layer.
    ///
    /// # Panics
    /// When the activation's rank does not suit the layer (a conv on a matrix, say): the
    /// golden files never do that.
    pub fn forward(&self, x: Act<B>) -> Act<B> {
        match self {
            Layer::Linear(l) => each_rank!(x, |t| l.forward(t)),
            Layer::LayerNorm(n) => each_rank!(x, |t| n.forward(t)),
            Layer::BatchNorm(n) => each_rank!(x, |t| n.forward(t)),
            Layer::Dropout(d) => each_rank!(x, |t| d.forward(t)),
            Layer::Conv1d(c) => match x {
                Act::D3(t) => Act::D3(c.forward(t)),
                _ => panic!("conv1d takes [batch, channels, length]"),
            },
            Layer::Conv2d(c) => match x {
                Act::D4(t) => Act::D4(c.forward(t)),
                _ => panic!("conv2d takes [batch, channels, height, width]"),
            },
        }
    }
}

impl Op {
    /// Applies the op.
    ///
    /// # Panics
    /// When a pooling op gets an activation that is not of rank 4.
    pub fn forward<B: Backend>(self, x: Act<B>) -> Act<B> {
        match self {
            Op::Relu => each_rank!(x, |t| relu(t)),
            Op::ReluMask => each_rank!(x, |t| {
                let negative = t.clone().lower_equal_elem(0.0);
                t.mask_fill(negative, 0.0)
            }),
            Op::Tanh => each_rank!(x, |t| tanh(t)),
            Op::Sigmoid => each_rank!(x, |t| sigmoid(t)),
            Op::Gelu => each_rank!(x, |t| gelu_exact(t)),
            Op::Softmax(dim) => each_rank!(x, |t| softmax(t, dim)),
            Op::MaxPool2d(k, s) => match x {
                Act::D4(t) => Act::D4(max_pool2d(t, k, s, [0, 0], [1, 1], false)),
                _ => panic!("max_pool2d takes rank 4"),
            },
            Op::AvgPool2d(k, s) => match x {
                Act::D4(t) => Act::D4(avg_pool2d(t, k, s, [0, 0], true, false)),
                _ => panic!("avg_pool2d takes rank 4"),
            },
            Op::Flatten => match x {
                Act::D2(t) => Act::D2(t),
                Act::D3(t) => Act::D2(t.flatten(1, 2)),
                Act::D4(t) => Act::D2(t.flatten(1, 3)),
            },
        }
    }
}

/// A sequential model; each layer is exposed to the probe under its JSON name.
#[derive(Module, Debug)]
pub struct Sequential<B: Backend> {
    layers: Vec<Layer<B>>,
    /// The steps in order, each with its name.
    #[module(skip)]
    steps: Vec<(String, Step)>,
}

impl<B: Backend> Sequential<B> {
    /// Builds the model from its JSON layer list.
    pub fn from_specs(layers: &[NamedLayer], device: &B::Device) -> Self {
        let mut params = Vec::new();
        let mut steps = Vec::new();
        for l in layers {
            let step = match Layer::from_spec(&l.spec, device) {
                Ok(layer) => {
                    params.push(layer);
                    Step::Layer(params.len() - 1)
                }
                Err(op) => Step::Op(op),
            };
            steps.push((l.name.clone(), step));
        }
        Self {
            layers: params,
            steps,
        }
    }

    /// The forward pass, calling the probe at every layer.
    pub fn forward_with(&self, x: Act<B>, probe: &mut Probe<B>) -> Act<B> {
        self.steps.iter().fold(x, |x, (name, step)| {
            probe.layer(name, x, |x| match step {
                Step::Layer(i) => self.layers[*i].forward(x),
                Step::Op(op) => op.forward(x),
            })
        })
    }
}

impl<B: Backend> LayerProbe<B> for Sequential<B> {
    type Inputs = Act<B>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        self.steps.iter().map(|(name, _)| name.clone()).collect()
    }

    fn forward_probed(&self, x: Act<B>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        self.forward_with(x, probe).into()
    }
}
