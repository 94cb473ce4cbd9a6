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

/// The largest shapes a `config.json` may describe. Real models sit far below them (all-MiniLM-L6-v2: 6
/// layers, width 384, 1536 intermediate, 12 heads, 30522 tokens, 512 positions; BERT-large: 24, 1024, 4096,
/// 16). They make a hostile config a `BAD_CONFIG` before anything is allocated, and keep every product of
/// them within a `usize` on wasm32: the largest single tensor, `vocab x hidden`, is at most 2^34 values
/// here, so [`ModelConfig::parameter_count`] is computed in `u64` and itself capped by [`MAX_PARAMETERS`].
pub const MAX_LAYERS: usize = 256;
/// Widest hidden state (and `output_dim`'s bound).
pub const MAX_HIDDEN: usize = 1 << 14;
/// Widest feed-forward layer.
pub const MAX_INTERMEDIATE: usize = 1 << 16;
/// Most attention heads.
pub const MAX_HEADS: usize = 256;
/// Largest vocabulary (word embedding rows).
pub const MAX_VOCAB: usize = 1 << 20;
/// Most positions (position embedding rows).
pub const MAX_POSITIONS: usize = 1 << 13;
/// Most token types.
pub const MAX_TYPES: usize = 1 << 10;
/// Most values all of a model's tensors may hold together: 2^28 (1 GiB as f32). Every tensor is then
/// below 2^28 values, so its f32 bytes fit a wasm32 `Vec`.
pub const MAX_PARAMETERS: u64 = 1 << 28;

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
        for (name, v, max) in [
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            ("num_hidden_layers", self.num_hidden_layers, MAX_LAYERS),
            ("num_attention_heads", self.num_attention_heads, MAX_HEADS),
            (
                "intermediate_size",
                self.intermediate_size,
                MAX_INTERMEDIATE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                MAX_POSITIONS,
            ),
            ("type_vocab_size", self.type_vocab_size, MAX_TYPES),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
            if v > max {
                return bad(format!("{name} = {v} is over the {max} shelfwise takes"));
            }
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if let Some(o) = self.shelfwise.output_dim {
            if o == 0 || o > MAX_HIDDEN {
                return bad(format!(
                    "shelfwise.output_dim {o} is not in 1..={MAX_HIDDEN}"
                ));
            }
        }
        match self.parameter_count() {
            Some(n) if n <= MAX_PARAMETERS => {}
            n => {
                return bad(format!(
                    "the model would hold {} values, over the {MAX_PARAMETERS} shelfwise takes",
                    n.map_or("more than 2^64".into(), |n| n.to_string())
                ))
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

    /// Values in all the tensors the config implies (those [`crate::model::BertWeights::from_safetensors`]
    /// reads), or `None` if the count overflows a `u64`. Checked arithmetic, so a hostile config cannot wrap.
    pub fn parameter_count(&self) -> Option<u64> {
        let n = |v: usize| v as u64;
        let (h, i) = (n(self.hidden_size), n(self.intermediate_size));
        let linear = |out: u64, inp: u64| out.checked_mul(inp)?.checked_add(out);
        let norm = h.checked_mul(2)?;
        // Four h x h projections, the feed-forward pair, two LayerNorms.
        let layer = linear(h, h)?
            .checked_mul(4)?
            .checked_add(linear(i, h)?)?
            .checked_add(linear(h, i)?)?
            .checked_add(norm.checked_mul(2)?)?;
        let word = if self.shelfwise.external_inputs {
            0
        } else {
            n(self.vocab_size).checked_mul(h)?
        };
        let tables = n(self.max_position_embeddings)
            .checked_add(n(self.type_vocab_size))?
            .checked_mul(h)?
            .checked_add(word)?;
        let final_norm = if self.shelfwise.pre_ln { norm } else { 0 };
        let projection = match self.shelfwise.output_dim {
            Some(o) => linear(n(o), h)?,
            None => 0,
        };
        layer
            .checked_mul(n(self.num_hidden_layers))?
            .checked_add(tables)?
            .checked_add(norm)?
            .checked_add(final_norm)?
            .checked_add(projection)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A tiny valid config, with `fields` replaced.
    fn config(fields: Value) -> Vec<u8> {
        let mut c = json!({
            "vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 16, "hidden_act": "gelu", "max_position_embeddings": 16,
            "type_vocab_size": 2
        });
        for (k, v) in fields.as_object().unwrap() {
            c[k] = v.clone();
        }
        c.to_string().into_bytes()
    }

    fn code(fields: Value) -> &'static str {
        match ModelConfig::from_json(&config(fields)) {
            Ok(_) => "OK",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_small_config_is_read() {
        assert_eq!(code(json!({})), "OK");
        // The largest of each size alone is fine while the model stays under MAX_PARAMETERS.
        assert_eq!(code(json!({"num_hidden_layers": MAX_LAYERS})), "OK");
        assert_eq!(code(json!({"vocab_size": MAX_VOCAB})), "OK");
        assert_eq!(
            code(json!({"max_position_embeddings": MAX_POSITIONS})),
            "OK"
        );
        assert_eq!(
            code(
                json!({"hidden_size": 384, "num_attention_heads": 12, "intermediate_size": 1536,
                        "vocab_size": 30522, "max_position_embeddings": 512, "num_hidden_layers": 6})
            ),
            "OK",
            "all-MiniLM-L6-v2's shape"
        );
    }

    /// A hostile size is a BAD_CONFIG, never an allocation: `1 << 24` layers used to pass the bound and make
    /// `Vec::with_capacity` panic ("capacity overflow") on wasm32.
    #[test]
    fn huge_sizes_are_bad_configs() {
        for (what, fields) in [
            ("1 << 24 layers", json!({"num_hidden_layers": 1 << 24})),
            (
                "a layer too many",
                json!({"num_hidden_layers": MAX_LAYERS + 1}),
            ),
            (
                "1 << 24 hidden",
                json!({"hidden_size": 1 << 24, "num_attention_heads": 1}),
            ),
            (
                "hidden over the bound",
                json!({"hidden_size": MAX_HIDDEN * 2, "num_attention_heads": 2}),
            ),
            (
                "1 << 24 intermediate",
                json!({"intermediate_size": 1 << 24}),
            ),
            ("1 << 24 vocab", json!({"vocab_size": 1 << 24})),
            ("vocab over the bound", json!({"vocab_size": MAX_VOCAB + 1})),
            (
                "1 << 24 positions",
                json!({"max_position_embeddings": 1 << 24}),
            ),
            (
                "1 << 24 heads",
                json!({"hidden_size": 1 << 24, "num_attention_heads": 1 << 24}),
            ),
            (
                "too many heads",
                json!({"hidden_size": 512, "num_attention_heads": 512}),
            ),
            ("1 << 24 types", json!({"type_vocab_size": 1 << 24})),
            ("2^40 layers", json!({"num_hidden_layers": 1u64 << 40})),
            ("u64::MAX vocab", json!({"vocab_size": u64::MAX})),
            ("a negative size", json!({"hidden_size": -8})),
            (
                "an output_dim over the bound",
                json!({"shelfwise": {"output_dim": MAX_HIDDEN + 1}}),
            ),
        ] {
            assert_eq!(code(fields), "BAD_CONFIG", "{what}");
        }
    }

    /// Sizes that are each within bounds but whose products overflow a 32-bit `usize` (wasm32's): the count
    /// is taken in u64, so it cannot wrap to something small, and it is over MAX_PARAMETERS.
    #[test]
    fn products_past_32_bits_are_bad_configs() {
        for (what, fields) in [
            (
                "vocab x hidden = 2^34",
                json!({"vocab_size": MAX_VOCAB, "hidden_size": MAX_HIDDEN, "num_attention_heads": 16}),
            ),
            (
                "layers x hidden^2 = 2^38",
                json!({"num_hidden_layers": MAX_LAYERS, "hidden_size": MAX_HIDDEN,
                       "num_attention_heads": 16, "vocab_size": 1}),
            ),
            (
                "layers x hidden x intermediate = 2^38",
                json!({"num_hidden_layers": MAX_LAYERS, "hidden_size": MAX_HIDDEN,
                       "intermediate_size": MAX_INTERMEDIATE, "num_attention_heads": 16}),
            ),
            (
                "layers x 2 x intermediate x hidden = 2^37",
                json!({"num_hidden_layers": MAX_LAYERS, "hidden_size": 4096,
                       "intermediate_size": MAX_INTERMEDIATE, "num_attention_heads": 16,
                       "vocab_size": 1, "shelfwise": {"external_inputs": true}}),
            ),
        ] {
            let bytes = config(fields);
            let raw: ModelConfig = serde_json::from_slice(&bytes).unwrap();
            let n = raw.parameter_count().expect("counted in u64");
            assert!(n > MAX_PARAMETERS, "{what}: {n}");
            assert!(n > u64::from(u32::MAX), "{what}: {n} fits in 32 bits");
            assert_eq!(
                ModelConfig::from_json(&bytes).unwrap_err().code(),
                "BAD_CONFIG",
                "{what}"
            );
        }
    }

    #[test]
    fn the_parameter_count_saturates_to_none_not_a_wrap() {
        let mut c = ModelConfig::from_json(&config(json!({}))).unwrap();
        c.num_hidden_layers = usize::MAX;
        c.hidden_size = usize::MAX;
        assert_eq!(c.parameter_count(), None);
        assert_eq!(c.validate().unwrap_err().code(), "BAD_CONFIG");
    }
}
