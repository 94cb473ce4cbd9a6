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

use super::{Bert, BertWeights, ModelConfig, NnBackend, Pooling};
use crate::backend::gemm::{self, PackedMatrix};
use crate::error::{Error, Result};
use crate::events::MODEL_TYPE_COUNT;
use crate::tokenize::Batch;

/// What one event puts into the model.
#[derive(Clone, Debug, PartialEq)]
pub enum StepInput {
    /// An item's vector, as its shard row holds it (`hidden` wide).
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
    /// `None` for an id-only model, which takes no search events.
    query_projection: Option<PackedMatrix>,
    zero_bias: Vec<f32>,
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
                zero_bias: vec![0.0; cfg.hidden_size],
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
        let query_projection = Some(
            PackedMatrix::new(&p, h, text_dim).ok_or_else(|| bad("has the wrong size".into()))?,
        );
        Ok(InterestModel {
            bert: Bert::new(cfg, &w, backend)?,
            query_projection,
            zero_bias: vec![0.0; h],
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
        self.query_projection.as_ref().map(PackedMatrix::k)
    }

    /// Events the model looks at: the most recent ones.
    pub fn max_len(&self) -> usize {
        self.bert.config().max_position_embeddings
    }

    /// A text vector mapped into item space (what a search event feeds the model).
    pub fn project_text(&self, text: &[f32]) -> Result<Vec<f32>> {
        let Some(p) = &self.query_projection else {
            return Err(Error::ModelInput(
                "this interest model is id-only: it takes no search events".into(),
            ));
        };
        if text.len() != p.k() {
            return Err(Error::ModelInput(format!(
                "a text vector has {} values, the model takes {}",
                text.len(),
                p.k()
            )));
        }
        Ok(gemm::linear(text, 1, p, &self.zero_bias))
    }

    /// One interest vector (`dim` wide) per session, from its last [`Self::max_len`] steps. Every session
    /// needs at least one step.
    pub async fn interest(&self, sessions: &[Vec<Step>]) -> Result<Vec<f32>> {
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
        let mut table = Vec::new();
        let mut batch = Batch {
            batch: sessions.len(),
            len,
            ids: Vec::with_capacity(sessions.len() * len),
            attention_mask: Vec::with_capacity(sessions.len() * len),
            type_ids: Vec::with_capacity(sessions.len() * len),
        };
        for s in sessions {
            let recent = &s[s.len().saturating_sub(max_len)..];
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
                    StepInput::Text(t) => table.extend(self.project_text(t)?),
                }
            }
            // Right padding: masked, and causal attention keeps it out of the real positions anyway.
            let pad = len - recent.len();
            batch.ids.extend(std::iter::repeat_n(0, pad));
            batch.type_ids.extend(std::iter::repeat_n(0, pad));
            batch.attention_mask.extend(std::iter::repeat_n(0, pad));
        }
        self.bert.embed_vectors(&batch, &table).await
    }
}
