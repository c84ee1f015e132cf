//! The digits CNN: the architecture of the `digits_cnn` benchmark workload
//! (`shared/bench/captum_reference.py`), with the same layer names as its PyTorch
//! `nn.Sequential`, every one exposed to the probe.
//!
//! ```text
//! conv1  Conv2d(1 → 16, 3×3, padding 1)    [batch, 16, 8, 8]
//! relu1
//! conv2  Conv2d(16 → 32, 3×3, padding 1)   [batch, 32, 8, 8]
//! relu2
//! pool   MaxPool2d(2)                      [batch, 32, 4, 4]
//! fc1    Linear(512 → 64), relu3           [batch, 64]
//! fc2    Linear(64 → 10)                   [batch, 10], the logits
//! ```

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};
use influence_core::{AnyTensor, LayerProbe, Probe};

/// The layers, in forward order.
pub const LAYERS: [&str; 9] = [
    "conv1", "relu1", "conv2", "relu2", "pool", "flatten", "fc1", "relu3", "fc2",
];

/// The layers whose activation is `[batch, channels, height, width]`: the ones an influence
/// map can be drawn for.
pub const SPATIAL_LAYERS: [&str; 5] = ["conv1", "relu1", "conv2", "relu2", "pool"];

/// Channels of a spatial layer and its side in pixels.
pub fn spatial_shape(layer: &str) -> Option<(usize, usize)> {
    match layer {
        "conv1" | "relu1" => Some((16, 8)),
        "conv2" | "relu2" => Some((32, 8)),
        "pool" => Some((32, 4)),
        _ => None,
    }
}

/// Settings of the [`DigitsCnn`].
#[derive(Config, Debug)]
pub struct DigitsCnnConfig {
    /// Channels of conv1.
    #[config(default = 16)]
    pub conv1_channels: usize,
    /// Channels of conv2.
    #[config(default = 32)]
    pub conv2_channels: usize,
    /// Width of fc1.
    #[config(default = 64)]
    pub hidden: usize,
}

impl DigitsCnnConfig {
    /// Builds the model with Burn's default initialisation.
    pub fn init<B: Backend>(&self, device: &B::Device) -> DigitsCnn<B> {
        let conv = |c_in, c_out| {
            Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(device)
        };
        DigitsCnn {
            conv1: conv(1, self.conv1_channels),
            conv2: conv(self.conv1_channels, self.conv2_channels),
            pool: MaxPool2dConfig::new([2, 2]).init(),
            fc1: LinearConfig::new(self.conv2_channels * 16, self.hidden).init(device),
            fc2: LinearConfig::new(self.hidden, 10).init(device),
        }
    }
}

/// The digits CNN. See the [module docs](self).
#[derive(Module, Debug)]
pub struct DigitsCnn<B: Backend> {
    conv1: Conv2d<B>,
    conv2: Conv2d<B>,
    pool: MaxPool2d,
    fc1: Linear<B>,
    fc2: Linear<B>,
}

/// Channels to zero at one layer, per example: `mask[i, c]` is 0 to zero channel `c` of
/// example `i` and 1 to keep it.
#[derive(Debug, Clone)]
pub struct Ablation<'a, B: Backend> {
    /// A spatial layer (see [`SPATIAL_LAYERS`]).
    pub layer: &'a str,
    /// `[batch, channels]`.
    pub keep: Tensor<B, 2>,
}

impl<B: Backend> DigitsCnn<B> {
    /// The logits.
    ///
    /// # Shapes
    /// - x: `[batch, 1, 8, 8]`, pixel values in [0, 1]
    /// - returns: `[batch, 10]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_with(x, &mut Probe::disabled(), None)
    }

    /// The logits with channels zeroed at one layer (for faithfulness checks).
    ///
    /// # Shapes
    /// - x: `[batch, 1, 8, 8]`
    /// - returns: `[batch, 10]`
    pub fn forward_ablated(&self, x: Tensor<B, 4>, ablation: &Ablation<'_, B>) -> Tensor<B, 2> {
        self.forward_with(x, &mut Probe::disabled(), Some(ablation))
    }

    fn forward_with(
        &self,
        x: Tensor<B, 4>,
        probe: &mut Probe<B>,
        ablation: Option<&Ablation<'_, B>>,
    ) -> Tensor<B, 2> {
        let ablate = |name: &str, t: Tensor<B, 4>| match ablation {
            Some(a) if a.layer == name => {
                let [n, c] = a.keep.dims();
                t * a.keep.clone().reshape([n, c, 1, 1])
            }
            _ => t,
        };
        let x = ablate("conv1", probe.layer("conv1", x, |x| self.conv1.forward(x)));
        let x = ablate("relu1", probe.layer("relu1", x, relu));
        let x = ablate("conv2", probe.layer("conv2", x, |x| self.conv2.forward(x)));
        let x = ablate("relu2", probe.layer("relu2", x, relu));
        let x = ablate("pool", probe.layer("pool", x, |x| self.pool.forward(x)));
        let x = probe.layer("flatten", x, |x: Tensor<B, 4>| x.flatten::<2>(1, 3));
        let x = probe.layer("fc1", x, |x| self.fc1.forward(x));
        let x = probe.layer("relu3", x, relu);
        probe.layer("fc2", x, |x| self.fc2.forward(x))
    }
}

impl<B: Backend> LayerProbe<B> for DigitsCnn<B> {
    /// `[batch, 1, 8, 8]`.
    type Inputs = Tensor<B, 4>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        LAYERS.map(String::from).to_vec()
    }

    fn forward_probed(&self, x: Tensor<B, 4>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        self.forward_with(x, probe, None).into()
    }
}

impl<B: Backend> DigitsCnn<B> {
    /// The activation of a spatial layer (see [`SPATIAL_LAYERS`]), `[batch, channels,
    /// side, side]`; `None` for another name.
    pub fn spatial(&self, x: Tensor<B, 4>, layer: &str) -> Option<Tensor<B, 4>> {
        let x = self.conv1.forward(x);
        if layer == "conv1" {
            return Some(x);
        }
        let x = relu(x);
        if layer == "relu1" {
            return Some(x);
        }
        let x = self.conv2.forward(x);
        if layer == "conv2" {
            return Some(x);
        }
        let x = relu(x);
        if layer == "relu2" {
            return Some(x);
        }
        let x = self.pool.forward(x);
        (layer == "pool").then_some(x)
    }
}

/// The digits CNN cut at a spatial layer, whose output is the activation of each channel of
/// that layer summed over positions, `[batch, channels]`. Attributing output `c` to the
/// input (its only probed layer, `"input"`) shows what channel `c`, an expert, responds to
/// in input space, as Leino et al. (2018, §3) visualise experts.
#[derive(Module, Debug)]
pub struct ExpertView<B: Backend> {
    cnn: DigitsCnn<B>,
    #[module(skip)]
    layer: String,
}

impl<B: Backend> ExpertView<B> {
    /// The view of `layer` (a spatial layer) of `cnn`; `None` for another name.
    pub fn new(cnn: &DigitsCnn<B>, layer: &str) -> Option<Self> {
        spatial_shape(layer)?;
        Some(Self {
            cnn: cnn.clone(),
            layer: layer.to_string(),
        })
    }
}

impl<B: Backend> LayerProbe<B> for ExpertView<B> {
    /// `[batch, 1, 8, 8]`.
    type Inputs = Tensor<B, 4>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        vec!["input".to_string()]
    }

    fn forward_probed(&self, x: Tensor<B, 4>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        let x = probe.layer("input", x, |x| x);
        let h = self
            .cnn
            .spatial(x, &self.layer)
            .expect("a spatial layer, checked in new");
        let [n, c, _, _] = h.dims();
        h.sum_dim(3).sum_dim(2).reshape([n, c]).into()
    }
}
