//! [`TextEncoder`]: a tokenizer and a BERT-family model on one backend, turning texts into vectors. Loading
//! is split in two so the caller can time it: [`EncoderFiles::parse`] reads and checks the files, and
//! [`EncoderFiles::upload`] puts the weights on a backend.

use super::{Bert, BertWeights, ModelConfig, NnBackend};
use crate::error::{Error, Result};
use crate::tokenize::{Batch, Tokenizer};

/// Texts are cut to this many bytes per allowed token before tokenizing, so a huge string costs no more
/// than a long one. No real token is this long, so the result is that of the whole text (tokens past the
/// model's length are dropped anyway).
pub const BYTES_PER_TOKEN_CAP: usize = 64;

/// The files of a model: `config.json`, `model.safetensors` and `tokenizer.json`.
#[derive(Clone, Copy, Debug)]
pub struct ModelFiles<'a> {
    pub config: &'a [u8],
    pub weights: &'a [u8],
    pub tokenizer: &'a [u8],
}

/// A text encoder's files, parsed and checked against each other, not yet on a backend.
pub struct EncoderFiles<'a> {
    files: ModelFiles<'a>,
    cfg: ModelConfig,
    weights: BertWeights,
    tokenizer: Tokenizer,
}

impl<'a> EncoderFiles<'a> {
    /// Parses the config, the weights (checked against the config) and the tokenizer (whose vocabulary
    /// must fit the model's). `max_len` caps tokens per text (special tokens included); by default the
    /// model's `max_position_embeddings`, and never above it.
    pub fn parse(files: ModelFiles<'a>, max_len: Option<usize>) -> Result<Self> {
        let cfg = ModelConfig::from_json(files.config)?;
        let weights = BertWeights::from_safetensors("model.safetensors", files.weights, &cfg)?;
        let len = max_len
            .unwrap_or(cfg.max_position_embeddings)
            .min(cfg.max_position_embeddings);
        let tokenizer = Tokenizer::from_bytes(files.tokenizer, len.max(2))?;
        if tokenizer.vocab_size() > cfg.vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer knows {} tokens, the model only {}",
                tokenizer.vocab_size(),
                cfg.vocab_size
            )));
        }
        Ok(EncoderFiles {
            files,
            cfg,
            weights,
            tokenizer,
        })
    }

    /// The encoder on `backend`; texts are cut to the backend's longest sequence if that is shorter.
    pub fn upload<B: NnBackend>(self, backend: B) -> Result<TextEncoder<B>> {
        let len = self.tokenizer.max_len().min(backend.max_len());
        let tokenizer = if len == self.tokenizer.max_len() {
            self.tokenizer
        } else {
            Tokenizer::from_bytes(self.files.tokenizer, len)?
        };
        Ok(TextEncoder {
            tokenizer,
            bert: Bert::new(self.cfg, &self.weights, backend)?,
        })
    }
}

/// Texts to vectors (unit vectors, or whatever pooling the model's config asks for) on backend `B`.
pub struct TextEncoder<B: NnBackend> {
    tokenizer: Tokenizer,
    bert: Bert<B>,
}

impl<B: NnBackend> TextEncoder<B> {
    /// Embeds `texts` (at least one): `[texts.len(), dim]`, row-major.
    pub async fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<f32>> {
        let batch = self.encode(texts)?;
        self.bert.embed(&batch).await
    }

    /// Tokenizes `texts` as [`TextEncoder::embed`] does.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Batch> {
        let cap = self.max_len() * BYTES_PER_TOKEN_CAP;
        let cut: Vec<&str> = texts.iter().map(|t| prefix(t.as_ref(), cap)).collect();
        self.tokenizer.encode_batch(&cut)
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        self.config().output_dim()
    }

    pub fn config(&self) -> &ModelConfig {
        self.bert.config()
    }

    /// Tokens per text, at most.
    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len()
    }

    pub fn backend(&self) -> &B {
        self.bert.backend()
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
