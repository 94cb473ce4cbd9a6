//! Text to token ids with a Hugging Face `tokenizer.json`, through the `tokenizers` crate (the same
//! features natively and in wasm).
//!
//! [`Tokenizer::encode_batch`] truncates every text to the model's maximum length (longer texts are cut, as
//! documented, never an error), adds the special tokens, and pads the batch to its longest member.

use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, PostProcessor, TruncationParams,
};

use crate::error::{Error, Result};

/// A loaded `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    max_len: usize,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab", &self.inner.get_vocab_size(true))
            .field("max_len", &self.max_len)
            .finish()
    }
}

/// A padded batch. Every tensor is row-major `[batch, len]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    pub batch: usize,
    /// Length of every row: the longest encoded text, at most the tokenizer's `max_len`.
    pub len: usize,
    pub ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    pub type_ids: Vec<u32>,
}

impl Batch {
    /// Rows `range` of the batch, with the same `len`.
    pub fn rows(&self, range: std::ops::Range<usize>) -> Batch {
        let cols = range.start * self.len..range.end * self.len;
        Batch {
            batch: range.len(),
            len: self.len,
            ids: self.ids[cols.clone()].to_vec(),
            attention_mask: self.attention_mask[cols.clone()].to_vec(),
            type_ids: self.type_ids[cols].to_vec(),
        }
    }
}

/// The tokenizers crate reads a `TemplateProcessing` without the checks its builder makes, then panics while
/// encoding: on a piece naming a special token that `special_tokens` lacks, on `$B` in the `single`
/// template (a single text has no second sequence), and on a template after another in a `Sequence` (it
/// gets one encoding per piece of the first). This checks the post-processor as the crate read it,
/// serialised back, so that nested processors and both template syntaxes look the same.
fn check_templates(p: &serde_json::Value) -> std::result::Result<(), String> {
    fn collect<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        match v {
            serde_json::Value::Object(o)
                if o.get("type").is_some_and(|t| t == "TemplateProcessing") =>
            {
                out.push(v)
            }
            serde_json::Value::Object(o) => o.values().for_each(|v| collect(v, out)),
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut templates = Vec::new();
    collect(p, &mut templates);
    if templates.len() > 1 {
        return Err(format!(
            "{} TemplateProcessing steps, at most one can run",
            templates.len()
        ));
    }
    for t in templates {
        for key in ["single", "pair"] {
            for piece in t[key].as_array().into_iter().flatten() {
                if let Some(id) = piece["SpecialToken"]["id"].as_str() {
                    if t["special_tokens"].get(id).is_none() {
                        return Err(format!("the `{key}` template names the special token `{id}`, which `special_tokens` lacks"));
                    }
                }
                if key == "single" && piece["Sequence"]["id"] == "B" {
                    return Err("the `single` template uses `$B`, which only a pair has".into());
                }
            }
        }
    }
    Ok(())
}

impl Tokenizer {
    /// Parses `tokenizer.json`. Texts will be truncated to `max_len` tokens, special tokens included.
    pub fn from_bytes(bytes: &[u8], max_len: usize) -> Result<Tokenizer> {
        if max_len < 2 {
            return Err(Error::invalid(
                "max_len",
                "must leave room for the special tokens (at least 2)",
            ));
        }
        // The tokenizers crate panics (`expect("Helper")`) on a JSON syntax error inside the `decoder`
        // value, as a truncated download has: check that the whole file is JSON first, so that is an error.
        serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(|e| Error::Tokenizer(format!("tokenizer.json is not valid JSON: {e}")))?;
        let mut inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        if let Some(p) = inner.get_post_processor() {
            let p = serde_json::to_value(p).map_err(|e| Error::Tokenizer(e.to_string()))?;
            check_templates(&p).map_err(|e| Error::Tokenizer(format!("post_processor: {e}")))?;
        }
        let specials = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if max_len <= specials {
            return Err(Error::invalid(
                "max_len",
                format!("must exceed the {specials} special tokens the tokenizer adds"),
            ));
        }
        // Pad with the file's own pad token when it names one.
        let (pad_id, pad_token, pad_type_id) = match inner.get_padding() {
            Some(p) => (p.pad_id, p.pad_token.clone(), p.pad_type_id),
            None => (0, "[PAD]".to_string(), 0),
        };
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            direction: PaddingDirection::Right,
            pad_to_multiple_of: None,
            pad_id,
            pad_type_id,
            pad_token,
        }));
        Ok(Tokenizer { inner, max_len })
    }

    /// Maximum tokens per text.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes a batch of texts (at least one).
    pub fn encode_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Batch> {
        if texts.is_empty() {
            return Err(Error::invalid("texts", "the batch is empty"));
        }
        let inputs: Vec<&str> = texts.iter().map(AsRef::as_ref).collect();
        let enc = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let mut batch = Batch {
            batch: enc.len(),
            len,
            ids: Vec::with_capacity(enc.len() * len),
            attention_mask: Vec::with_capacity(enc.len() * len),
            type_ids: Vec::with_capacity(enc.len() * len),
        };
        for e in &enc {
            if e.get_ids().len() != len {
                return Err(Error::Tokenizer(
                    "the batch came back unevenly padded".into(),
                ));
            }
            batch.ids.extend_from_slice(e.get_ids());
            batch
                .attention_mask
                .extend_from_slice(e.get_attention_mask());
            batch.type_ids.extend_from_slice(e.get_type_ids());
        }
        Ok(batch)
    }
}
