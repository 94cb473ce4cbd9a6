//! `config.json`: the BERT fields Hugging Face writes, plus shelfwise's own options under `"shelfwise"`.

use serde::Deserialize;

use crate::error::{Error, Result};

/// How token states become one vector per text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over real (unmasked) tokens, as sentence-transformers does.
    Mean,
    /// The first token (`[CLS]`).
    Cls,
    /// The last real token (for causal models).
    Last,
}

/// shelfwise's options; every field has a default that reproduces BERT.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineOptions {
    /// LayerNorm before each sub-layer (and once at the end) instead of after the residual add.
    pub pre_ln: bool,
    /// Each position attends only to itself and earlier positions.
    pub causal: bool,
    pub pooling: Pooling,
    /// L2-normalise the pooled vector (after the projection, when there is one).
    pub normalize: bool,
    /// The caller supplies each position's input vector ([`crate::model::Bert::embed_vectors`]) instead of
    /// token ids into a stored word table; the weights then hold no `embeddings.word_embeddings.weight`.
    /// The interest model works this way: its inputs are item vectors from the shard and encoded queries.
    pub external_inputs: bool,
    /// Width of a dense layer (`projection.weight` `[output_dim, hidden]`, `projection.bias`) applied to
    /// the pooled vector: a compact encoder distilled from a wider teacher answers in the teacher's space.
    pub output_dim: Option<usize>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            pre_ln: false,
            causal: false,
            pooling: Pooling::Mean,
            normalize: true,
            external_inputs: false,
            output_dim: None,
        }
    }
}

/// A BERT-family encoder's shape and options.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "two")]
    pub type_vocab_size: usize,
    #[serde(default = "eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub shelfwise: EngineOptions,
}

fn two() -> usize {
    2
}

fn eps() -> f64 {
    1e-12
}

impl ModelConfig {
    /// Parses and validates `config.json`.
    pub fn from_json(bytes: &[u8]) -> Result<ModelConfig> {
        let c: ModelConfig =
            serde_json::from_slice(bytes).map_err(|e| Error::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::Config(s));
        if self.hidden_act != "gelu" {
            return bad(format!(
                "hidden_act `{}` is not supported (gelu, the exact erf form)",
                self.hidden_act
            ));
        }
        for (name, v) in [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            if v > 1 << 24 {
                return bad(format!("{name} = {v} is implausibly large"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if let Some(o) = self.shelfwise.output_dim {
            if o == 0 || o > 1 << 16 {
                return bad(format!("shelfwise.output_dim {o} is not in 1..=65536"));
            }
        }
        if !((self.layer_norm_eps as f32) > 0.0 && self.layer_norm_eps < 1.0) {
            return bad(format!(
                "layer_norm_eps {} is not in (0, 1)",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Width of the vectors [`crate::model::Bert::embed`] returns.
    pub fn output_dim(&self) -> usize {
        self.shelfwise.output_dim.unwrap_or(self.hidden_size)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
