//! [`Recommender`]: a whole bundle (`shelfwise export`) loaded and run: the session's events become an
//! interest vector (the interest model, with searches encoded by the text encoder), which ranks the item
//! shards with the caller's filters, and every result gets a reason.

use crate::backend::cpu_nn::CpuNn;
use crate::backend::gpu::nn::GpuNn;
use crate::backend::gpu::GpuContext;
use crate::catalog::{Catalog, FileEntry, Manifest, RecommenderFiles};
use crate::error::{Error, Result};
use crate::index::{DeviceChoice, Index};
use crate::model::interest::{event_type, SEARCH};
use crate::model::{Embedder, InterestModel, ModelFiles, Step, StepInput};
use crate::rank::{Backend, SearchOptions};

enum Interest {
    Cpu(Box<InterestModel<CpuNn>>),
    Gpu(Box<InterestModel<GpuNn>>),
}

/// One event of a session, as the shopper made it.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// An item event: `kind` is one of [`crate::model::EVENT_TYPES`] other than `search`.
    Item { kind: String, id: String },
    /// A typed query.
    Search { query: String },
}

/// Why an item was recommended.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// It is most like this item the shopper interacted with (`kind` is the event type).
    Item { kind: String, id: String },
    /// It is most like what the shopper searched for.
    Query { query: String },
    /// The session had nothing to go on: a popular item.
    Popular,
}

/// One recommended item.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommended {
    pub id: String,
    pub score: f32,
    pub reason: Reason,
}

/// A bundle's models and items, ready to recommend.
pub struct Recommender {
    index: Index,
    interest: Interest,
    encoder: Option<Embedder>,
    files: RecommenderFiles,
}

impl std::fmt::Debug for Recommender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recommender")
            .field("items", &self.index.catalog().len())
            .field("dim", &self.dim())
            .field("backend", &self.model_backend())
            .finish()
    }
}

impl Recommender {
    /// Loads a bundle from `manifest.json`'s bytes and `file`, which returns the bytes of a path the
    /// manifest lists. Every file is checked against the manifest's size and SHA-256 before it is parsed.
    pub async fn load(
        manifest: &[u8],
        mut file: impl FnMut(&str) -> Result<Vec<u8>>,
        device: DeviceChoice,
    ) -> Result<Recommender> {
        let m = Manifest::from_json(manifest)?;
        let files = m.recommender.clone().ok_or_else(|| {
            Error::Manifest(
                "this manifest has no `recommender` section: it is a plain catalogue".into(),
            )
        })?;
        let shard_bytes = m
            .shards
            .iter()
            .map(|s| {
                let b = file(&s.file)?;
                Manifest::verify(s, &b)?;
                Ok(b)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut next = shard_bytes.iter();
        let catalog = Catalog::from_manifest(&m, |_| {
            next.next()
                .map(Vec::as_slice)
                .ok_or_else(|| Error::Manifest("shard list changed while loading".into()))
        })?;
        let mut get = |e: &FileEntry| -> Result<Vec<u8>> {
            let bytes = file(&e.file)?;
            e.verify(&bytes)?;
            Ok(bytes)
        };
        let (config, weights) = (get(&files.interest.config)?, get(&files.interest.weights)?);
        let gpu = match device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => Some(GpuContext::new().await?),
            DeviceChoice::Auto => GpuContext::new().await.ok().filter(|c| !c.is_software()),
        };
        let interest = match gpu {
            Some(ctx) => Interest::Gpu(Box::new(InterestModel::load(
                &config,
                &files.interest.weights.file,
                &weights,
                GpuNn::new(ctx).await?,
            )?)),
            None => Interest::Cpu(Box::new(InterestModel::load(
                &config,
                &files.interest.weights.file,
                &weights,
                CpuNn,
            )?)),
        };
        let dim = match &interest {
            Interest::Cpu(i) => i.dim(),
            Interest::Gpu(i) => i.dim(),
        };
        if dim != catalog.dim() {
            return Err(Error::Dimension {
                context: "the interest model's width against the shards'".into(),
                expected: catalog.dim(),
                found: dim,
            });
        }
        let encoder = match &files.encoder {
            Some(e) => {
                let tokenizer = e
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| Error::Manifest("the encoder has no tokenizer".into()))?;
                let (c, w, t) = (get(&e.config)?, get(&e.weights)?, get(tokenizer)?);
                let device = match &interest {
                    Interest::Gpu(_) => DeviceChoice::Gpu,
                    Interest::Cpu(_) => DeviceChoice::Cpu,
                };
                let enc = Embedder::load(
                    ModelFiles {
                        config: &c,
                        weights: &w,
                        tokenizer: &t,
                    },
                    device,
                    None,
                )
                .await?;
                Some(enc)
            }
            None => None,
        };
        let text_dim = match &interest {
            Interest::Cpu(i) => i.text_dim(),
            Interest::Gpu(i) => i.text_dim(),
        };
        if let (Some(e), Some(t)) = (&encoder, text_dim) {
            if e.dim() != t {
                return Err(Error::Dimension {
                    context:
                        "the text encoder's vectors against the interest model's query projection"
                            .into(),
                    expected: t,
                    found: e.dim(),
                });
            }
        }
        let index = Index::new(catalog, device).await?;
        Ok(Recommender {
            index,
            interest,
            encoder,
            files,
        })
    }

    pub fn catalog(&self) -> &Catalog {
        self.index.catalog()
    }

    pub fn files(&self) -> &RecommenderFiles {
        &self.files
    }

    /// Width of item and interest vectors.
    pub fn dim(&self) -> usize {
        self.index.catalog().dim()
    }

    /// Where the interest model runs.
    pub fn model_backend(&self) -> Backend {
        match self.interest {
            Interest::Cpu(_) => Backend::Cpu,
            Interest::Gpu(_) => Backend::WebGpu,
        }
    }

    /// Where ranking runs.
    pub fn rank_backend(&self) -> Backend {
        self.index.backend()
    }

    /// Whether search events count (the bundle has a text encoder).
    pub fn takes_searches(&self) -> bool {
        self.encoder.is_some()
    }

    fn item_vector(&self, row: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.dim()];
        self.index.catalog().row_f32(row, &mut v);
        v
    }

    /// The model's steps for `events`, with what each one is (for reasons). Events the bundle cannot use
    /// (unknown items, searches without an encoder) are skipped.
    async fn steps(&self, events: &[SessionEvent]) -> Result<(Vec<Step>, Vec<(Reason, Vec<f32>)>)> {
        let mut steps = Vec::new();
        let mut sources = Vec::new();
        let queries: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Search { query } if !query.trim().is_empty() => Some(query.as_str()),
                _ => None,
            })
            .collect();
        let query_vectors = match (&self.encoder, queries.is_empty()) {
            (Some(enc), false) => enc.embed(&queries).await?,
            _ => Vec::new(),
        };
        let mut q = 0;
        for e in events {
            match e {
                SessionEvent::Item { kind, id } => {
                    let k = event_type(kind).filter(|&k| k != SEARCH).ok_or_else(|| {
                        Error::invalid("event type", format!("`{kind}` is not an item event type"))
                    })?;
                    let Some(row) = self.index.catalog().row_of(id) else {
                        continue;
                    };
                    let v = self.item_vector(row);
                    steps.push(Step {
                        kind: k,
                        input: StepInput::Item(v.clone()),
                    });
                    sources.push((
                        Reason::Item {
                            kind: kind.clone(),
                            id: id.clone(),
                        },
                        v,
                    ));
                }
                SessionEvent::Search { query } => {
                    let Some(enc) = &self.encoder else { continue };
                    if query.trim().is_empty() {
                        continue;
                    }
                    let t = query_vectors[q * enc.dim()..(q + 1) * enc.dim()].to_vec();
                    q += 1;
                    let projected = match &self.interest {
                        Interest::Cpu(i) => i.project_text(&t)?,
                        Interest::Gpu(i) => i.project_text(&t)?,
                    };
                    steps.push(Step {
                        kind: SEARCH,
                        input: StepInput::Text(t),
                    });
                    sources.push((
                        Reason::Query {
                            query: query.clone(),
                        },
                        projected,
                    ));
                }
            }
        }
        Ok((steps, sources))
    }

    /// The session's interest vector, or `None` when no event could be used.
    pub async fn interest(&self, events: &[SessionEvent]) -> Result<Option<Vec<f32>>> {
        let (steps, _) = self.steps(events).await?;
        self.interest_of(steps).await
    }

    async fn interest_of(&self, steps: Vec<Step>) -> Result<Option<Vec<f32>>> {
        if steps.is_empty() {
            return Ok(None);
        }
        let v = match &self.interest {
            Interest::Cpu(i) => i.interest(&[steps]).await?,
            Interest::Gpu(i) => i.interest(&[steps]).await?,
        };
        Ok(Some(v))
    }

    /// Ranks the catalogue for a session. An empty (or unusable) session ranks by the shards'
    /// `popularity`, with reason [`Reason::Popular`].
    pub async fn recommend(
        &self,
        events: &[SessionEvent],
        opts: &SearchOptions,
    ) -> Result<Vec<Recommended>> {
        let (steps, sources) = self.steps(events).await?;
        let Some(v) = self.interest_of(steps).await? else {
            let popular = SearchOptions {
                popularity_weight: 1.0,
                ..opts.clone()
            };
            let r = self.index.search(&vec![0.0; self.dim()], &popular).await?;
            return Ok(r
                .ids
                .into_iter()
                .zip(r.scores)
                .map(|(id, score)| Recommended {
                    id,
                    score,
                    reason: Reason::Popular,
                })
                .collect());
        };
        let r = self.index.search(&v, opts).await?;
        Ok(r.rows
            .iter()
            .zip(r.ids)
            .zip(r.scores)
            .map(|((&row, id), score)| {
                let item = self.item_vector(row as usize);
                let reason = sources
                    .iter()
                    .map(|(reason, s)| {
                        (reason, s.iter().zip(&item).map(|(a, b)| a * b).sum::<f32>())
                    })
                    .fold(None::<(&Reason, f32)>, |best, (reason, sim)| match best {
                        Some((_, b)) if b >= sim => best,
                        _ => Some((reason, sim)),
                    })
                    .map_or(Reason::Popular, |(r, _)| r.clone());
                Recommended { id, score, reason }
            })
            .collect())
    }
}
