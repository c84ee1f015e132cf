//! The BERT encoder of all-MiniLM-L6-v2 in Burn, with Hugging Face's layout and names.
//!
//! ```text
//! embeddings  = LayerNorm(word[ids] + position[0..seq] + token_type[0])        [batch, seq, 384]
//! layer i     = LayerNorm(h + FFN(h)),  h = LayerNorm(x + SelfAttention(x, mask))
//!               FFN = Linear(1536 → 384) ∘ GELU ∘ Linear(384 → 1536); 12 heads of 32
//! embedding   = normalize(mean over real tokens of layer 5)                    [batch, 384]
//! ```
//!
//! Exposed to the probe: `embeddings` (the embeddings' output) and `encoder.layer.{i}` (the
//! output of encoder layer `i`, Hugging Face's `encoder.layer.{i}.output`).

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};
use influence_core::Probe;
use influence_core::activation::gelu_exact;
use serde::Deserialize;

use crate::MiniLmError;

/// The fields of `config.json` the model needs.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BertConfig {
    /// Vocabulary size (30,522).
    pub vocab_size: usize,
    /// Hidden size (384).
    pub hidden_size: usize,
    /// Encoder layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads (12).
    pub num_attention_heads: usize,
    /// Feed-forward width (1,536).
    pub intermediate_size: usize,
    /// Positions (512).
    pub max_position_embeddings: usize,
    /// Token types (2).
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12).
    pub layer_norm_eps: f64,
}

/// One encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer<B: Backend> {
    query: Linear<B>,
    key: Linear<B>,
    value: Linear<B>,
    attention_output: Linear<B>,
    attention_norm: LayerNorm<B>,
    intermediate: Linear<B>,
    output: Linear<B>,
    output_norm: LayerNorm<B>,
    #[module(skip)]
    heads: usize,
}

impl<B: Backend> BertLayer<B> {
    /// # Shapes
    /// - x: `[batch, seq, hidden]`
    /// - mask_bias: `[batch, 1, 1, seq]`, 0 for real tokens and a large negative for padding
    /// - returns: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>, mask_bias: Tensor<B, 4>) -> Tensor<B, 3> {
        let [batch, seq, hidden] = x.dims();
        let (heads, head_dim) = (self.heads, hidden / self.heads);
        let split = |t: Tensor<B, 3>| t.reshape([batch, seq, heads, head_dim]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)) / (head_dim as f64).sqrt() + mask_bias;
        let context = softmax(scores, 3)
            .matmul(v)
            .swap_dims(1, 2)
            .reshape([batch, seq, hidden]);
        let h = self
            .attention_norm
            .forward(self.attention_output.forward(context) + x);
        let ffn = self
            .output
            .forward(gelu_exact(self.intermediate.forward(h.clone())));
        self.output_norm.forward(ffn + h)
    }
}

/// The BERT encoder with its embeddings.
#[derive(Module, Debug)]
pub struct Bert<B: Backend> {
    word_embeddings: Embedding<B>,
    position_embeddings: Embedding<B>,
    token_type_embeddings: Embedding<B>,
    embeddings_norm: LayerNorm<B>,
    layers: Vec<BertLayer<B>>,
}

/// Reads tensors of a safetensors file by name, as Burn tensors.
struct Weights<'a, B: Backend> {
    file: safetensors::SafeTensors<'a>,
    device: &'a B::Device,
}

impl<B: Backend> Weights<'_, B> {
    fn tensor<const D: usize>(&self, name: &str) -> Result<Tensor<B, D>, MiniLmError> {
        let view = self
            .file
            .tensor(name)
            .map_err(|e| MiniLmError::Weights(format!("{name}: {e}")))?;
        if view.dtype() != safetensors::Dtype::F32 || view.shape().len() != D {
            return Err(MiniLmError::Weights(format!(
                "{name}: expected a rank-{D} F32 tensor, found {:?} {:?}",
                view.dtype(),
                view.shape()
            )));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(values, view.shape().to_vec()),
            self.device,
        ))
    }

    /// A PyTorch `Linear` (`weight` [out, in]) as Burn's (`[in, out]`).
    fn linear(&self, prefix: &str, d_in: usize, d_out: usize) -> Result<Linear<B>, MiniLmError> {
        let mut l = LinearConfig::new(d_in, d_out).init(self.device);
        l.weight = Param::from_tensor(self.tensor::<2>(&format!("{prefix}.weight"))?.transpose());
        l.bias = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"))?));
        Ok(l)
    }

    fn layer_norm(&self, prefix: &str, d: usize, eps: f64) -> Result<LayerNorm<B>, MiniLmError> {
        let mut n = LayerNormConfig::new(d).with_epsilon(eps).init(self.device);
        n.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"))?);
        n.beta = Some(Param::from_tensor(self.tensor(&format!("{prefix}.bias"))?));
        Ok(n)
    }

    fn embedding(&self, name: &str, n: usize, d: usize) -> Result<Embedding<B>, MiniLmError> {
        let mut e = EmbeddingConfig::new(n, d).init(self.device);
        e.weight = Param::from_tensor(self.tensor(name)?);
        Ok(e)
    }
}

impl<B: Backend> Bert<B> {
    /// Loads the model from `model.safetensors` bytes (Hugging Face names, float32).
    ///
    /// # Errors
    /// [`MiniLmError::Weights`] when a tensor is missing or of the wrong type or shape.
    pub fn from_safetensors(
        bytes: &[u8],
        config: &BertConfig,
        device: &B::Device,
    ) -> Result<Self, MiniLmError> {
        let file = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| MiniLmError::Weights(e.to_string()))?;
        let w = Weights::<B> { file, device };
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let p = format!("encoder.layer.{i}");
                Ok(BertLayer {
                    query: w.linear(&format!("{p}.attention.self.query"), h, h)?,
                    key: w.linear(&format!("{p}.attention.self.key"), h, h)?,
                    value: w.linear(&format!("{p}.attention.self.value"), h, h)?,
                    attention_output: w.linear(&format!("{p}.attention.output.dense"), h, h)?,
                    attention_norm: w.layer_norm(
                        &format!("{p}.attention.output.LayerNorm"),
                        h,
                        eps,
                    )?,
                    intermediate: w.linear(
                        &format!("{p}.intermediate.dense"),
                        h,
                        config.intermediate_size,
                    )?,
                    output: w.linear(&format!("{p}.output.dense"), config.intermediate_size, h)?,
                    output_norm: w.layer_norm(&format!("{p}.output.LayerNorm"), h, eps)?,
                    heads: config.num_attention_heads,
                })
            })
            .collect::<Result<_, MiniLmError>>()?;
        Ok(Self {
            word_embeddings: w.embedding(
                "embeddings.word_embeddings.weight",
                config.vocab_size,
                h,
            )?,
            position_embeddings: w.embedding(
                "embeddings.position_embeddings.weight",
                config.max_position_embeddings,
                h,
            )?,
            token_type_embeddings: w.embedding(
                "embeddings.token_type_embeddings.weight",
                config.type_vocab_size,
                h,
            )?,
            embeddings_norm: w.layer_norm("embeddings.LayerNorm", h, eps)?,
            layers,
        })
    }

    /// The layer names the probe sees: `embeddings`, `encoder.layer.0`, ….
    pub fn layer_names(&self) -> Vec<String> {
        std::iter::once("embeddings".to_string())
            .chain((0..self.layers.len()).map(|i| format!("encoder.layer.{i}")))
            .collect()
    }

    /// The word embeddings of token ids: the attributed input.
    ///
    /// # Shapes
    /// - ids: `[batch, seq]`
    /// - returns: `[batch, seq, hidden]`
    pub fn word_embeddings(&self, ids: Tensor<B, 2, Int>) -> Tensor<B, 3> {
        self.word_embeddings.forward(ids)
    }

    /// The encoder from word embeddings (position and token-type 0 embeddings are added
    /// inside), calling the probe at `embeddings` and at each `encoder.layer.{i}`.
    ///
    /// # Shapes
    /// - words: `[batch, seq, hidden]`
    /// - mask: `[batch, seq]`, 1 for real tokens and 0 for padding
    /// - returns: the last layer's output, `[batch, seq, hidden]`
    pub fn encode(
        &self,
        words: Tensor<B, 3>,
        mask: Tensor<B, 2>,
        probe: &mut Probe<B>,
    ) -> Tensor<B, 3> {
        let [batch, seq, _] = words.dims();
        let device = words.device();
        let positions = Tensor::<B, 1, Int>::arange(0..seq as i64, &device).reshape([1, seq]);
        let types = Tensor::<B, 2, Int>::zeros([1, seq], &device);
        let x = probe.layer("embeddings", words, |w| {
            self.embeddings_norm.forward(
                w + self.position_embeddings.forward(positions)
                    + self.token_type_embeddings.forward(types),
            )
        });
        // Hugging Face adds the dtype's most negative value where the mask is 0.
        let mask_bias = (mask.neg().add_scalar(1.0) * f32::MIN as f64).reshape([batch, 1, 1, seq]);
        self.layers.iter().enumerate().fold(x, |x, (i, layer)| {
            probe.layer(&format!("encoder.layer.{i}"), x, |x| {
                layer.forward(x, mask_bias.clone())
            })
        })
    }
}

/// Mean over real tokens, then L2 normalisation (sentence-transformers' pooling).
///
/// # Shapes
/// - hidden: `[batch, seq, dim]`
/// - mask: `[batch, seq]`
/// - returns: `[batch, dim]`, unit rows
pub fn mean_pool_normalize<B: Backend>(hidden: Tensor<B, 3>, mask: Tensor<B, 2>) -> Tensor<B, 2> {
    let [batch, seq, dim] = hidden.dims();
    let m = mask.reshape([batch, seq, 1]);
    let summed = (hidden * m.clone()).sum_dim(1).reshape([batch, dim]);
    let count = m.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    let mean = summed / count;
    let norm = mean
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    mean / norm
}
