//! The network, written once for every backend.

use super::config::ModelConfig;
use super::weights::BertWeights;
use super::NnBackend;
use crate::error::{Error, Result};
use crate::tokenize::Batch;

struct Layer<B: NnBackend> {
    query: B::Linear,
    key: B::Linear,
    value: B::Linear,
    attn_out: B::Linear,
    attn_norm: B::Norm,
    intermediate: B::Linear,
    output: B::Linear,
    ffn_norm: B::Norm,
}

/// A BERT-family encoder on backend `B`.
pub struct Bert<B: NnBackend> {
    cfg: ModelConfig,
    backend: B,
    /// `None` for a model with external inputs.
    word: Option<B::Table>,
    position: B::Table,
    token_type: B::Table,
    embed_norm: B::Norm,
    layers: Vec<Layer<B>>,
    final_norm: Option<B::Norm>,
    /// The dense layer after pooling, and its output width.
    projection: Option<(B::Linear, usize)>,
}

impl<B: NnBackend> Bert<B> {
    /// Uploads `weights` (checked against `cfg` when they were read) to `backend`.
    pub fn new(cfg: ModelConfig, weights: &BertWeights, backend: B) -> Result<Bert<B>> {
        let eps = cfg.layer_norm_eps as f32;
        let h = cfg.hidden_size;
        let b = &backend;
        let layers = weights
            .layers
            .iter()
            .map(|l| {
                Ok(Layer {
                    query: b.upload_linear(&l.query)?,
                    key: b.upload_linear(&l.key)?,
                    value: b.upload_linear(&l.value)?,
                    attn_out: b.upload_linear(&l.attn_out)?,
                    attn_norm: b.upload_norm(&l.attn_norm, eps)?,
                    intermediate: b.upload_linear(&l.intermediate)?,
                    output: b.upload_linear(&l.output)?,
                    ffn_norm: b.upload_norm(&l.ffn_norm, eps)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let word = if cfg.shelfwise.external_inputs {
            None
        } else {
            Some(b.upload_table(&weights.word, h)?)
        };
        let projection = match &weights.projection {
            Some(p) => Some((b.upload_linear(p)?, p.out_dim)),
            None => None,
        };
        Ok(Bert {
            word,
            projection,
            position: b.upload_table(&weights.position, h)?,
            token_type: b.upload_table(&weights.token_type, h)?,
            embed_norm: b.upload_norm(&weights.embed_norm, eps)?,
            final_norm: match &weights.final_norm {
                Some(n) => Some(b.upload_norm(n, eps)?),
                None => None,
            },
            layers,
            backend,
            cfg,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Token states `[batch * len, hidden]` for a tokenized batch.
    pub fn hidden_states(&self, batch: &Batch) -> Result<B::Tensor> {
        match &self.word {
            Some(word) => {
                self.check(batch, self.cfg.vocab_size)?;
                self.forward(batch, word)
            }
            None => Err(Self::needs_vectors()),
        }
    }

    fn needs_vectors() -> Error {
        Error::ModelInput("this model takes input vectors (embed_vectors), not token ids".into())
    }

    /// One vector per row of `batch`, for a model with external inputs: position `t` of row `r` takes
    /// row `batch.ids[r * len + t]` of `inputs` (`[rows, hidden]`, row-major) as its input vector.
    pub async fn embed_vectors(&self, batch: &Batch, inputs: &[f32]) -> Result<Vec<f32>> {
        let x = self.forward_vectors(batch, inputs)?;
        self.finish(&x, batch).await
    }

    /// As [`Bert::embed_vectors`], left on the backend: the pooled `[batch, hidden]` tensor, for a model
    /// without an output projection. Nothing is read back.
    pub fn embed_vectors_pooled(&self, batch: &Batch, inputs: &[f32]) -> Result<B::Tensor> {
        if self.projection.is_some() {
            return Err(Error::ModelInput(
                "a model with an output projection finishes on the host".into(),
            ));
        }
        let x = self.forward_vectors(batch, inputs)?;
        let o = &self.cfg.shelfwise;
        Ok(self.backend.pool(
            &x,
            &batch.attention_mask,
            batch.batch,
            o.pooling,
            o.normalize,
        ))
    }

    /// Token states for external input vectors, checked.
    fn forward_vectors(&self, batch: &Batch, inputs: &[f32]) -> Result<B::Tensor> {
        if self.word.is_some() {
            return Err(Error::ModelInput(
                "this model embeds token ids (embed); it takes no input vectors".into(),
            ));
        }
        let h = self.cfg.hidden_size;
        if inputs.is_empty() || !inputs.len().is_multiple_of(h) {
            return Err(Error::ModelInput(format!(
                "input vectors hold {} values, not a whole number of {h}-wide rows",
                inputs.len()
            )));
        }
        if let Some(i) = inputs.iter().position(|v| !v.is_finite()) {
            return Err(Error::ModelInput(format!(
                "input vector value {i} is not finite"
            )));
        }
        self.check(batch, inputs.len() / h)?;
        let table = self.backend.upload_table(inputs, h)?;
        self.forward(batch, &table)
    }

    fn forward(&self, batch: &Batch, word: &B::Table) -> Result<B::Tensor> {
        let b = &self.backend;
        let causal = self.cfg.shelfwise.causal;
        let heads = self.cfg.num_attention_heads;
        let mut x = b.embed(
            word,
            &self.position,
            &self.token_type,
            &batch.ids,
            &batch.type_ids,
            batch.len,
        );
        x = b.layer_norm(&x, &self.embed_norm);
        for l in &self.layers {
            if self.cfg.shelfwise.pre_ln {
                let n = b.layer_norm(&x, &l.attn_norm);
                let a = self.attend(&n, l, &batch.attention_mask, batch.batch, heads, causal);
                x = b.add(&x, &a);
                let n = b.layer_norm(&x, &l.ffn_norm);
                x = b.add(&x, &self.feed_forward(&n, l));
            } else {
                let a = self.attend(&x, l, &batch.attention_mask, batch.batch, heads, causal);
                x = b.layer_norm(&b.add(&a, &x), &l.attn_norm);
                let f = self.feed_forward(&x, l);
                x = b.layer_norm(&b.add(&f, &x), &l.ffn_norm);
            }
        }
        if let Some(n) = &self.final_norm {
            x = b.layer_norm(&x, n);
        }
        Ok(x)
    }

    /// One vector per text, `[batch, hidden]`, pooled (and normalised) as the config says. A batch larger
    /// than the backend's tensors allow runs in parts, one forward pass each.
    pub async fn embed(&self, batch: &Batch) -> Result<Vec<f32>> {
        if self.word.is_none() {
            return Err(Self::needs_vectors());
        }
        self.check(batch, self.cfg.vocab_size)?;
        let widest = self.cfg.hidden_size.max(self.cfg.intermediate_size);
        let per_part = (self.backend.max_elements() / (batch.len * widest).max(1)).clamp(1, 65_535);
        if batch.batch <= per_part {
            return self.embed_part(batch).await;
        }
        let mut out = Vec::with_capacity(batch.batch * self.cfg.output_dim());
        for start in (0..batch.batch).step_by(per_part) {
            let part = batch.rows(start..(start + per_part).min(batch.batch));
            out.extend(self.embed_part(&part).await?);
        }
        Ok(out)
    }

    async fn embed_part(&self, batch: &Batch) -> Result<Vec<f32>> {
        let x = self.hidden_states(batch)?;
        self.finish(&x, batch).await
    }

    /// Pools token states, then projects and normalises as the config says.
    async fn finish(&self, x: &B::Tensor, batch: &Batch) -> Result<Vec<f32>> {
        let o = &self.cfg.shelfwise;
        let Some((w, out_dim)) = &self.projection else {
            let pooled = self.backend.pool(
                x,
                &batch.attention_mask,
                batch.batch,
                o.pooling,
                o.normalize,
            );
            return self.backend.read(&pooled).await;
        };
        let pooled = self
            .backend
            .pool(x, &batch.attention_mask, batch.batch, o.pooling, false);
        let mut y = self.backend.read(&self.backend.linear(&pooled, w)).await?;
        if o.normalize {
            for row in y.chunks_mut(*out_dim) {
                let n = row.iter().map(|v| v * v).sum::<f32>().sqrt();
                if n > 0.0 {
                    row.iter_mut().for_each(|v| *v /= n);
                }
            }
        }
        Ok(y)
    }

    fn attend(
        &self,
        x: &B::Tensor,
        l: &Layer<B>,
        mask: &[u32],
        batch: usize,
        heads: usize,
        causal: bool,
    ) -> B::Tensor {
        let b = &self.backend;
        let (q, k, v) = (
            b.linear(x, &l.query),
            b.linear(x, &l.key),
            b.linear(x, &l.value),
        );
        b.linear(
            &b.attention(&q, &k, &v, mask, batch, heads, causal),
            &l.attn_out,
        )
    }

    fn feed_forward(&self, x: &B::Tensor, l: &Layer<B>) -> B::Tensor {
        let b = &self.backend;
        b.linear(&b.gelu(&b.linear(x, &l.intermediate)), &l.output)
    }

    /// Checks `batch`'s shape and ids (below `rows`, the input table's rows).
    fn check(&self, batch: &Batch, rows: usize) -> Result<()> {
        let n = batch
            .batch
            .checked_mul(batch.len)
            .ok_or_else(|| Error::ModelInput("batch * len overflows".into()))?;
        if batch.batch == 0 || batch.len == 0 {
            return Err(Error::ModelInput("the batch is empty".into()));
        }
        if batch.ids.len() != n || batch.attention_mask.len() != n || batch.type_ids.len() != n {
            return Err(Error::ModelInput(format!(
                "ids, mask and type ids must each hold batch * len = {n} values"
            )));
        }
        if batch.len > self.backend.max_len() {
            return Err(Error::ModelInput(format!(
                "{} tokens exceed the {} this backend's attention takes (truncate when tokenizing)",
                batch.len,
                self.backend.max_len()
            )));
        }
        if batch.len > self.cfg.max_position_embeddings {
            return Err(Error::ModelInput(format!(
                "{} tokens exceed the model's {} positions (truncate when tokenizing)",
                batch.len, self.cfg.max_position_embeddings
            )));
        }
        if let Some(&id) = batch.ids.iter().find(|&&id| id as usize >= rows) {
            return Err(Error::ModelInput(format!(
                "token id {id} is outside the {rows} rows of the input table"
            )));
        }
        if let Some(&t) = batch
            .type_ids
            .iter()
            .find(|&&t| t as usize >= self.cfg.type_vocab_size)
        {
            return Err(Error::ModelInput(format!(
                "token type {t} is outside the {} types",
                self.cfg.type_vocab_size
            )));
        }
        for r in 0..batch.batch {
            if batch.attention_mask[r * batch.len..(r + 1) * batch.len]
                .iter()
                .all(|&m| m == 0)
            {
                return Err(Error::ModelInput(format!("row {r} has no unmasked token")));
            }
        }
        Ok(())
    }
}
