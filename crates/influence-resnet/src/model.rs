//! torchvision's `resnet18` (He et al. 2016, "Deep Residual Learning for Image
//! Recognition", arXiv:1512.03385; `torchvision.models.resnet18`) as a Burn [`Module`],
//! exposing every module under torchvision's name.
//!
//! ```text
//! conv1    Conv2d(3 → 64, 7×7, stride 2, padding 3, no bias)   [batch, 64, 112, 112]
//! bn1      BatchNorm2d(64), then ReLU
//! maxpool  MaxPool2d(3, stride 2, padding 1)                   [batch, 64, 56, 56]
//! layer1   2 BasicBlocks, 64 channels                          [batch, 64, 56, 56]
//! layer2   2 BasicBlocks, 128 channels, stride 2               [batch, 128, 28, 28]
//! layer3   2 BasicBlocks, 256 channels, stride 2               [batch, 256, 14, 14]
//! layer4   2 BasicBlocks, 512 channels, stride 2               [batch, 512, 7, 7]
//! avgpool  AdaptiveAvgPool2d(1)                                [batch, 512, 1, 1]
//! fc       Linear(512 → 1000)                                  [batch, 1000], the logits
//! ```
//! (sizes for a 224×224 input; any size from 32×32 up works, the pooling adapts.)
//!
//! Each `BasicBlock` `layerN.i` computes `relu(bn2(conv2(relu(bn1(conv1(x))))) + identity)`,
//! where `identity` is `x`, or `downsample(x)` (`downsample.0`, a 1×1 convolution with the
//! block's stride, then `downsample.1`, a BatchNorm) in the first block of layers 2 to 4.
//!
//! The exposed layers are torchvision's module names, nested as in PyTorch: `layer3` (the
//! stage), `layer3.0` (its first block), `layer3.0.conv1` (a convolution inside it),
//! `layer3.0.downsample` and `layer3.0.downsample.0`. torchvision's `relu` module is called
//! several times per forward (a Captum hook on it fires at each call), so it is not exposed;
//! `bn1` is the activation before it.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{Tensor, backend::Backend};
use influence_core::{AnyTensor, LayerProbe, Probe};

/// Channels of the four stages.
const WIDTHS: [usize; 4] = [64, 128, 256, 512];

/// ImageNet's classes: the width of `fc`.
pub const CLASSES: usize = 1000;

/// torchvision's ResNet-18. See the [module docs](self).
#[derive(Module, Debug)]
pub struct ResNet18<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    maxpool: MaxPool2d,
    layer1: Vec<BasicBlock<B>>,
    layer2: Vec<BasicBlock<B>>,
    layer3: Vec<BasicBlock<B>>,
    layer4: Vec<BasicBlock<B>>,
    avgpool: AdaptiveAvgPool2d,
    fc: Linear<B>,
}

/// torchvision's `BasicBlock`.
#[derive(Module, Debug)]
pub struct BasicBlock<B: Backend> {
    conv1: Conv2d<B>,
    bn1: BatchNorm<B>,
    conv2: Conv2d<B>,
    bn2: BatchNorm<B>,
    downsample: Option<Downsample<B>>,
}

/// The shortcut of a block that changes the width or the resolution: torchvision's
/// `downsample`, an `nn.Sequential` of a 1×1 convolution (`downsample.0`, here `conv`) and a
/// BatchNorm (`downsample.1`, here `bn`).
#[derive(Module, Debug)]
pub struct Downsample<B: Backend> {
    conv: Conv2d<B>,
    bn: BatchNorm<B>,
}

fn conv<B: Backend>(
    c_in: usize,
    c_out: usize,
    kernel: usize,
    stride: usize,
    device: &B::Device,
) -> Conv2d<B> {
    let p = kernel / 2;
    Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
        .with_bias(false)
        .init(device)
}

impl<B: Backend> BasicBlock<B> {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &B::Device) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| Downsample {
            conv: conv(c_in, c_out, 1, stride, device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            conv1: conv(c_in, c_out, 3, stride, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv(c_out, c_out, 3, 1, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            downsample,
        }
    }

    /// `[batch, c_in, h, w]` → `[batch, c_out, h / stride, w / stride]`.
    fn forward_with(&self, x: Tensor<B, 4>, probe: &mut Probe<B>) -> Tensor<B, 4> {
        // `x` feeds conv1 and the shortcut: exposed as the input of both before either uses
        // it, so that an attribution to either's input covers both paths, as Captum's
        // pre-hook gradient does.
        let x = match self.downsample {
            Some(_) => probe.input_of(&["conv1", "downsample", "downsample.0"], x),
            None => probe.input_of(&["conv1"], x),
        };
        let out = probe.layer("conv1", x.clone(), |x| self.conv1.forward(x));
        let out = relu(probe.layer("bn1", out, |x| self.bn1.forward(x)));
        let out = probe.layer("conv2", out, |x| self.conv2.forward(x));
        let out = probe.layer("bn2", out, |x| self.bn2.forward(x));
        let identity = match &self.downsample {
            Some(d) => probe.scoped_layer("downsample", x, |probe, x| {
                let x = probe.layer("0", x, |x| d.conv.forward(x));
                probe.layer("1", x, |x| d.bn.forward(x))
            }),
            None => x,
        };
        relu(out + identity)
    }
}

impl<B: Backend> ResNet18<B> {
    /// A ResNet-18 with Burn's default initialisation, for `classes` outputs (1000 for
    /// ImageNet); load trained weights with [`crate::load_torchvision`].
    pub fn new(classes: usize, device: &B::Device) -> Self {
        let stage = |c_in: usize, c_out: usize, stride: usize| {
            vec![
                BasicBlock::new(c_in, c_out, stride, device),
                BasicBlock::new(c_out, c_out, 1, device),
            ]
        };
        Self {
            conv1: conv(3, 64, 7, 2, device),
            bn1: BatchNormConfig::new(64).init(device),
            maxpool: MaxPoolConfig::torchvision(),
            layer1: stage(64, 64, 1),
            layer2: stage(64, 128, 2),
            layer3: stage(128, 256, 2),
            layer4: stage(256, 512, 2),
            avgpool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(512, classes).init(device),
        }
    }

    /// The logits. On an autodiff backend this is Burn's training-mode forward (BatchNorm
    /// with batch statistics, updating its running statistics): for predictions use
    /// `model.valid().forward(x)` or [`influence_core::predict`].
    ///
    /// # Shapes
    /// - x: `[batch, 3, height, width]`, normalised with ImageNet's mean and standard
    ///   deviation (see [`crate::normalize`])
    /// - returns: `[batch, classes]`
    pub fn forward(&self, x: Tensor<B, 4>) -> Tensor<B, 2> {
        self.forward_with(x, &mut Probe::disabled())
    }

    fn forward_with(&self, x: Tensor<B, 4>, probe: &mut Probe<B>) -> Tensor<B, 2> {
        let x = probe.layer("conv1", x, |x| self.conv1.forward(x));
        let x = relu(probe.layer("bn1", x, |x| self.bn1.forward(x)));
        let x = probe.layer("maxpool", x, |x| self.maxpool.forward(x));
        let x = stage(probe, "layer1", &self.layer1, x);
        let x = stage(probe, "layer2", &self.layer2, x);
        let x = stage(probe, "layer3", &self.layer3, x);
        let x = stage(probe, "layer4", &self.layer4, x);
        let x = probe.layer("avgpool", x, |x| self.avgpool.forward(x));
        probe.layer("fc", x.flatten(1, 3), |x| self.fc.forward(x))
    }
}

/// One stage, `name`, with its blocks `name.0`, `name.1`.
fn stage<B: Backend>(
    probe: &mut Probe<B>,
    name: &str,
    blocks: &[BasicBlock<B>],
    x: Tensor<B, 4>,
) -> Tensor<B, 4> {
    probe.scoped_layer(name, x, |probe, x| {
        blocks.iter().enumerate().fold(x, |x, (i, block)| {
            probe.scoped_layer(&i.to_string(), x, |probe, x| block.forward_with(x, probe))
        })
    })
}

struct MaxPoolConfig;

impl MaxPoolConfig {
    /// torchvision's `MaxPool2d(kernel_size=3, stride=2, padding=1)`.
    fn torchvision() -> MaxPool2d {
        MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init()
    }
}

/// Every exposed layer, torchvision's module names in the order of the forward.
pub fn layer_names() -> Vec<String> {
    let mut names: Vec<String> = ["conv1", "bn1", "maxpool"].map(String::from).to_vec();
    for (s, _) in WIDTHS.iter().enumerate() {
        let stage = format!("layer{}", s + 1);
        names.push(stage.clone());
        for b in 0..2 {
            let block = format!("{stage}.{b}");
            names.push(block.clone());
            for l in ["conv1", "bn1", "conv2", "bn2"] {
                names.push(format!("{block}.{l}"));
            }
            if s > 0 && b == 0 {
                for l in ["downsample", "downsample.0", "downsample.1"] {
                    names.push(format!("{block}.{l}"));
                }
            }
        }
    }
    names.extend(["avgpool", "fc"].map(String::from));
    names
}

impl<B: Backend> LayerProbe<B> for ResNet18<B> {
    type Inputs = Tensor<B, 4>;
    type Args = ();

    fn layer_names(&self) -> Vec<String> {
        layer_names()
    }

    fn forward_probed(&self, x: Tensor<B, 4>, _: &(), probe: &mut Probe<B>) -> AnyTensor<B> {
        self.forward_with(x, probe).into()
    }
}
