//! The interest model: a causal pre-LN Transformer over a session's recent events, whose output at the last
//! event is the shopper's interest vector. An item's score is the dot product of that vector with the
//! item's row in the shard.
//!
//! Its inputs are vectors, not token ids ([`EngineOptions::external_inputs`]):
//! - an item event's input is the item's own shard row (inputs and outputs are tied);
//! - a search event's input is the query's text vector (from the bundle's text encoder) times
//!   `query_projection.weight` (`[hidden, text_dim]`), which maps text space into item space;
//!
//! plus a learned embedding for the event's type (its token-type id, [`crate::events::MODEL_TYPES`]) and one
//! for its position.
//!
//! [`EngineOptions::external_inputs`]: super::EngineOptions::external_inputs

use safetensors::SafeTensors;

use super::weights::LinearWeights;
use super::{Bert, BertWeights, ModelConfig, NnBackend, Pooling};
use crate::error::{Error, Result};
use crate::events::MODEL_TYPE_COUNT;
use crate::tokenize::Batch;

/// What one event puts into the model.
#[derive(Clone, Debug, PartialEq)]
pub enum StepInput {
    /// A vector in item space (`hidden` wide): an item's shard row, or a query already projected
    /// ([`InterestModel::project_texts`]).
    Item(Vec<f32>),
    /// A query's text vector (`text_dim` wide), projected into item space by the model.
    Text(Vec<f32>),
}

/// One event of a session.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The event's token-type id ([`crate::events::EventType::model_type`]).
    pub kind: u32,
    pub input: StepInput,
}

/// The interest model on backend `B`.
pub struct InterestModel<B: NnBackend> {
    bert: Bert<B>,
    /// `[hidden, text_dim]` and `text_dim`; `None` for an id-only model, which takes no search events.
    query_projection: Option<(B::Linear, usize)>,
}

/// Name of the query projection tensor in the interest model's safetensors file.
pub const QUERY_PROJECTION: &str = "query_projection.weight";

impl<B: NnBackend> InterestModel<B> {
    /// Reads `config.json` and `model.safetensors` (named `file` in errors) and uploads them to `backend`.
    pub fn load(config: &[u8], file: &str, weights: &[u8], backend: B) -> Result<Self> {
        let cfg = ModelConfig::from_json(config)?;
        let o = &cfg.shelfwise;
        if !(o.external_inputs && o.causal && o.pooling == Pooling::Last && o.output_dim.is_none())
        {
            return Err(Error::Config(
                "an interest model has external inputs, causal attention, `last` pooling and no \
                 output projection"
                    .into(),
            ));
        }
        if cfg.type_vocab_size != MODEL_TYPE_COUNT {
            return Err(Error::Config(format!(
                "an interest model has {MODEL_TYPE_COUNT} event types (type_vocab_size), not {}",
                cfg.type_vocab_size
            )));
        }
        let w = BertWeights::from_safetensors(file, weights, &cfg)?;
        let bad = |problem: String| Error::Weights {
            file: file.into(),
            tensor: QUERY_PROJECTION.into(),
            problem,
        };
        let st = SafeTensors::deserialize(weights).map_err(|e| bad(e.to_string()))?;
        let Ok(t) = st.tensor(QUERY_PROJECTION) else {
            return Ok(InterestModel {
                bert: Bert::new(cfg, &w, backend)?,
                query_projection: None,
            });
        };
        let h = cfg.hidden_size;
        let (rows, text_dim) = match t.shape() {
            [r, c] => (*r, *c),
            s => return Err(bad(format!("has shape {s:?}, expected [{h}, text_dim]"))),
        };
        if rows != h || text_dim == 0 || t.dtype() != safetensors::Dtype::F32 {
            return Err(bad(format!(
                "is {:?} {:?}, expected F32 [{h}, text_dim]",
                t.dtype(),
                t.shape()
            )));
        }
        let p: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());
        if p.iter().any(|v| !v.is_finite()) {
            return Err(bad("holds a non-finite value".into()));
        }
        if h.checked_mul(text_dim) != Some(p.len()) {
            return Err(bad("has the wrong size".into()));
        }
        let projection = backend.upload_linear(&LinearWeights {
            w: p,
            b: vec![0.0; h],
            out_dim: h,
            in_dim: text_dim,
        })?;
        Ok(InterestModel {
            bert: Bert::new(cfg, &w, backend)?,
            query_projection: Some((projection, text_dim)),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        self.bert.config()
    }

    pub fn backend(&self) -> &B {
        self.bert.backend()
    }

    /// Width of interest and item vectors.
    pub fn dim(&self) -> usize {
        self.bert.config().hidden_size
    }

    /// Width of the text vectors a search event takes (`None`: the model takes no search events).
    pub fn text_dim(&self) -> Option<usize> {
        self.query_projection.as_ref().map(|&(_, d)| d)
    }

    /// Events the model looks at: the most recent ones.
    pub fn max_len(&self) -> usize {
        self.bert.config().max_position_embeddings
    }

    /// Text vectors (`[n, text_dim]`, row-major) mapped into item space (`[n, dim]`): what search events
    /// feed the model. One product on the backend for all of them.
    pub async fn project_texts(&self, texts: &[f32]) -> Result<Vec<f32>> {
        let Some((p, text_dim)) = &self.query_projection else {
            return Err(Error::ModelInput(
                "this interest model is id-only: it takes no search events".into(),
            ));
        };
        if texts.is_empty() || !texts.len().is_multiple_of(*text_dim) {
            return Err(Error::ModelInput(format!(
                "text vectors hold {} values, not a whole number of {text_dim}-wide rows",
                texts.len(),
            )));
        }
        if let Some(i) = texts.iter().position(|v| !v.is_finite()) {
            return Err(Error::ModelInput(format!(
                "text vector value {i} is not finite"
            )));
        }
        let b = self.backend();
        b.read(&b.linear(&b.tensor(texts, *text_dim)?, p)).await
    }

    /// One interest vector (`dim` wide) per session, from its last [`Self::max_len`] steps. Every session
    /// needs at least one step.
    pub async fn interest(&self, sessions: &[Vec<Step>]) -> Result<Vec<f32>> {
        let (batch, table) = self.inputs(sessions).await?;
        self.bert.embed_vectors(&batch, &table).await
    }

    /// As [`InterestModel::interest`], left on the backend: the `[sessions, dim]` tensor, with nothing
    /// read back (searches must already be projected, as [`StepInput::Item`], or projecting them reads
    /// back).
    pub async fn interest_tensor(&self, sessions: &[Vec<Step>]) -> Result<B::Tensor> {
        let (batch, table) = self.inputs(sessions).await?;
        self.bert.embed_vectors_pooled(&batch, &table)
    }

    /// The model's batch and input table for `sessions`.
    async fn inputs(&self, sessions: &[Vec<Step>]) -> Result<(Batch, Vec<f32>)> {
        let (h, max_len) = (self.dim(), self.max_len());
        if sessions.is_empty() {
            return Err(Error::ModelInput("no session to score".into()));
        }
        let len = sessions
            .iter()
            .map(|s| s.len().min(max_len))
            .max()
            .unwrap_or(0);
        if len == 0 || sessions.iter().any(Vec::is_empty) {
            return Err(Error::ModelInput("a session has no events".into()));
        }
        let recent = |s: &'_ [Step]| s.len().saturating_sub(max_len);
        // Every search of every session goes through the query projection in one product.
        let mut texts = Vec::new();
        for step in sessions.iter().flat_map(|s| &s[recent(s)..]) {
            if let StepInput::Text(t) = &step.input {
                match self.text_dim() {
                    Some(d) if t.len() != d => {
                        return Err(Error::ModelInput(format!(
                            "a text vector has {} values, the model takes {d}",
                            t.len()
                        )))
                    }
                    _ => texts.extend_from_slice(t),
                }
            }
        }
        let projected = if texts.is_empty() {
            Vec::new()
        } else {
            self.project_texts(&texts).await?
        };
        let mut projected = projected.chunks_exact(h);
        let mut table = Vec::new();
        let mut batch = Batch {
            batch: sessions.len(),
            len,
            ids: Vec::with_capacity(sessions.len() * len),
            attention_mask: Vec::with_capacity(sessions.len() * len),
            type_ids: Vec::with_capacity(sessions.len() * len),
        };
        for s in sessions {
            let recent = &s[recent(s)..];
            for step in recent {
                if step.kind as usize >= MODEL_TYPE_COUNT {
                    return Err(Error::ModelInput(format!(
                        "event type id {} is not one of the {MODEL_TYPE_COUNT} types",
                        step.kind
                    )));
                }
                batch.ids.push((table.len() / h) as u32);
                batch.type_ids.push(step.kind);
                batch.attention_mask.push(1);
                match &step.input {
                    StepInput::Item(v) if v.len() == h => table.extend_from_slice(v),
                    StepInput::Item(v) => {
                        return Err(Error::ModelInput(format!(
                            "an item vector has {} values, the model takes {h}",
                            v.len()
                        )))
                    }
                    StepInput::Text(_) => table.extend_from_slice(
                        projected
                            .next()
                            .ok_or_else(|| Error::ModelInput("a search went unprojected".into()))?,
                    ),
                }
            }
            // Right padding: masked, and causal attention keeps it out of the real positions anyway.
            let pad = len - recent.len();
            batch.ids.extend(std::iter::repeat_n(0, pad));
            batch.type_ids.extend(std::iter::repeat_n(0, pad));
            batch.attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        Ok((batch, table))
    }
}
