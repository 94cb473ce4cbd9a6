//! [`Recommender`]: a whole bundle (`shelfwise export`) loaded and run: the session's events become an
//! interest vector (the interest model, with searches encoded by the text encoder), which ranks the item
//! shards with the caller's filters, and every result gets a reason.

use crate::backend::cpu_nn::CpuNn;
use crate::backend::gpu::nn::GpuNn;
use crate::backend::gpu::GpuContext;
use crate::catalog::{Catalog, FileEntry, Manifest, RecommenderFiles};
use crate::error::{Error, Result};
use crate::events::{self, Subject, SEARCH_TOKEN};
use crate::index::{DeviceChoice, Index};
use crate::model::{Embedder, InterestModel, ModelFiles, Step, StepInput};
use crate::profile;
pub use crate::profile::Profile;
use crate::rank::{Backend, SearchOptions, SearchResult};
use std::collections::HashMap;
use std::sync::Mutex;
use web_time::Instant;

/// Per-pass work (layers x positions x width^2) from which `DeviceChoice::Auto` runs the interest model on a
/// hardware GPU. Measured natively on an H100 (`cargo bench --bench interest`), an interest-model pass on the
/// GPU takes 1.2 to 1.4 ms up to 1.6M of work, while one CPU thread (what the wasm path has) takes 1.75 ms
/// at 0.4M (the default model, 2 x 50 x 64^2), 4.1 ms at 1.6M and 9.0 ms at 6.6M. The wasm CPU path in
/// Chromium takes 1.2 to 1.6 ms for the default model. So the GPU's lead starts near 1M; below it, a
/// browser's extra cost per GPU round trip (not measured: no browser ran on that GPU) would eat the gain.
/// BENCHMARKS.md has the figures.
pub const AUTO_GPU_MODEL_WORK: usize = 1_000_000;

/// A query's text vector (the encoder's output) and its projection into item space.
type QueryVectors = (Vec<f32>, Vec<f32>);

/// Encoded search queries kept, so that a session's older searches are not encoded again on every call.
const QUERY_CACHE: usize = 256;

enum Interest {
    Cpu(Box<InterestModel<CpuNn>>),
    Gpu(Box<InterestModel<GpuNn>>),
}

/// One event of a session, as the shopper made it.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionEvent {
    /// An item event: `kind` names an [`events::EventType`] that the model reads and whose subject is an
    /// item.
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
    /// It is like this item (item-to-item: [`Recommender::similar`]).
    Similar { id: String },
    /// The session had nothing to go on, but the shopper's long-term profile did.
    Profile,
    /// The session had nothing to go on: a popular item.
    Popular,
}

impl Reason {
    /// The `kind` the API reports: for an event, its type's [`events::EventType::reason`] (`viewed`,
    /// `searched`, ...); else `similar`, `profile` or `popular`.
    pub fn kind(&self) -> &str {
        match self {
            // Item reasons come from types the model reads, which all have a reason kind.
            Reason::Item { kind, .. } => events::get(kind).and_then(|t| t.reason).unwrap_or(kind),
            Reason::Query { .. } => events::SEARCH_REASON,
            Reason::Similar { .. } => "similar",
            Reason::Profile => "profile",
            Reason::Popular => "popular",
        }
    }
}

/// What one call did, in milliseconds: encoding new search queries (tokenizer and text encoder), the
/// interest model, and ranking with filters and MMR.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StageTimings {
    pub tokenize_ms: f64,
    pub model_ms: f64,
    pub rank_ms: f64,
    pub total_ms: f64,
}

/// The result of [`Recommender::recommend`].
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendations {
    pub items: Vec<Recommended>,
    /// The session's interest vector (before any profile blend); `None` when no event could be used.
    pub interest: Option<Vec<f32>>,
    pub timings: StageTimings,
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
    /// Projected query vectors by query text, at most [`QUERY_CACHE`].
    queries: Mutex<HashMap<String, QueryVectors>>,
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
        let files = m.bundle()?.clone();
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
        let cfg = crate::model::ModelConfig::from_json(&config)?;
        let work = cfg.num_hidden_layers * cfg.max_position_embeddings * cfg.hidden_size.pow(2);
        let gpu = match device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => Some(GpuContext::new().await?),
            DeviceChoice::Auto if work < AUTO_GPU_MODEL_WORK => None,
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
            queries: Mutex::new(HashMap::new()),
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

    /// Destroys the interest model's GPU device, as a driver reset or a lost GPU would: later calls fail
    /// with `GPU_ERROR`. For tests of the fallback to the CPU; does nothing on the CPU path.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        if let Interest::Gpu(m) = &self.interest {
            m.backend().context().destroy_device();
        }
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

    /// Text and projected vectors of `queries`, encoding only those not cached. Returns the time spent
    /// encoding.
    async fn query_vectors(&self, queries: &[&str]) -> Result<(Vec<QueryVectors>, f64)> {
        let Some(enc) = &self.encoder else {
            return Ok((Vec::new(), 0.0));
        };
        let missing: Vec<&str> = {
            let cache = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            let mut m: Vec<&str> = queries
                .iter()
                .copied()
                .filter(|q| !cache.contains_key(*q))
                .collect();
            m.sort_unstable();
            m.dedup();
            m
        };
        let t0 = Instant::now();
        let mut fresh = Vec::new();
        if !missing.is_empty() {
            let v = enc.embed(&missing).await?;
            for (q, t) in missing.iter().zip(v.chunks_exact(enc.dim())) {
                let projected = match &self.interest {
                    Interest::Cpu(i) => i.project_text(t)?,
                    Interest::Gpu(i) => i.project_text(t)?,
                };
                fresh.push((q.to_string(), (t.to_vec(), projected)));
            }
        }
        let ms = elapsed_ms(t0);
        let mut cache = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + fresh.len() > QUERY_CACHE {
            cache.clear();
        }
        let mut out = Vec::with_capacity(queries.len());
        for q in queries {
            match fresh.iter().find(|(f, _)| f == q) {
                Some((_, v)) => out.push(v.clone()),
                None => out.push(cache.get(*q).cloned().ok_or_else(|| {
                    Error::invalid("query", "a cached query vector went missing")
                })?),
            }
        }
        cache.extend(fresh);
        Ok((out, ms))
    }

    /// The model's steps for `events`, with what each one is (for reasons), and the time spent encoding
    /// queries. Events the bundle cannot use (unknown items, searches without an encoder) are skipped.
    async fn steps(
        &self,
        events: &[SessionEvent],
    ) -> Result<(Vec<Step>, Vec<(Reason, Vec<f32>)>, f64)> {
        let mut steps = Vec::new();
        let mut sources = Vec::new();
        let queries: Vec<&str> = events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Search { query } if !query.trim().is_empty() => Some(query.as_str()),
                _ => None,
            })
            .collect();
        let (mut query_vectors, tokenize_ms) = self.query_vectors(&queries).await?;
        query_vectors.reverse();
        for e in events {
            match e {
                SessionEvent::Item { kind, id } => {
                    let k = events::get(kind)
                        .filter(|t| t.subject == Subject::Item)
                        .and_then(|t| t.model_type)
                        .ok_or_else(|| {
                            Error::invalid(
                                "event type",
                                format!("`{kind}` is not an item event type the model reads"),
                            )
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
                    if self.encoder.is_none() || query.trim().is_empty() {
                        continue;
                    }
                    let (t, projected) = query_vectors.pop().ok_or_else(|| {
                        Error::invalid("query", "fewer query vectors than searches")
                    })?;
                    steps.push(Step {
                        kind: SEARCH_TOKEN,
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
        Ok((steps, sources, tokenize_ms))
    }

    /// The session's interest vector, or `None` when no event could be used.
    pub async fn interest(&self, events: &[SessionEvent]) -> Result<Option<Vec<f32>>> {
        let (steps, _, _) = self.steps(events).await?;
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

    /// Ranks the catalogue for a session, blended with a long-term `profile` when one is given. A
    /// session with no usable event ranks by the profile alone ([`Reason::Profile`]) or, without one, by
    /// the shards' `popularity` ([`Reason::Popular`]).
    pub async fn recommend(
        &self,
        events: &[SessionEvent],
        opts: &SearchOptions,
        profile: Option<Profile<'_>>,
    ) -> Result<Recommendations> {
        let t0 = Instant::now();
        if let Some(p) = &profile {
            p.check(self.dim())?;
        }
        let (steps, mut sources, tokenize_ms) = self.steps(events).await?;
        let t1 = Instant::now();
        let interest = self.interest_of(steps).await?;
        let model_ms = elapsed_ms(t1);
        let t2 = Instant::now();
        let query = profile::blend(interest.as_deref(), profile);
        if let (None, Some(q)) = (&interest, &query) {
            sources.push((Reason::Profile, q.clone()));
        }
        let items = match query {
            Some(q) => {
                let r = self.index.search(&q, opts).await?;
                self.explained(r.rows, r.ids, r.scores, &sources)
            }
            None => self.popular(opts).await?,
        };
        Ok(Recommendations {
            items,
            interest,
            timings: StageTimings {
                tokenize_ms,
                model_ms,
                rank_ms: elapsed_ms(t2),
                total_ms: elapsed_ms(t0),
            },
        })
    }

    /// The most popular items that pass `opts`' filters.
    async fn popular(&self, opts: &SearchOptions) -> Result<Vec<Recommended>> {
        let popular = SearchOptions {
            popularity_weight: 1.0,
            ..opts.clone()
        };
        let r = self.index.search(&vec![0.0; self.dim()], &popular).await?;
        Ok(all_because(r, Reason::Popular))
    }

    /// Results with, for each, the source most like it as its reason.
    fn explained(
        &self,
        rows: Vec<u32>,
        ids: Vec<String>,
        scores: Vec<f32>,
        sources: &[(Reason, Vec<f32>)],
    ) -> Vec<Recommended> {
        rows.iter()
            .zip(ids)
            .zip(scores)
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
            .collect()
    }

    /// Items like item `id` (by the dot product of item vectors), without `id` itself.
    pub async fn similar(&self, id: &str, opts: &SearchOptions) -> Result<Vec<Recommended>> {
        let row = self
            .index
            .catalog()
            .row_of(id)
            .ok_or_else(|| Error::UnknownItem(id.chars().take(200).collect()))?;
        let mut opts = opts.clone();
        opts.exclude.push(id.to_string());
        let r = self.index.search(&self.item_vector(row), &opts).await?;
        Ok(all_because(r, Reason::Similar { id: id.to_string() }))
    }

    /// Items for a typed query alone: the encoded query, through the interest model's query projection,
    /// ranks the shards directly.
    pub async fn search(&self, query: &str, opts: &SearchOptions) -> Result<Vec<Recommended>> {
        if self.encoder.is_none() {
            return Err(Error::invalid(
                "query",
                "this bundle has no text encoder, so it cannot search",
            ));
        }
        if query.trim().is_empty() {
            return Err(Error::InvalidQuery("the query is empty".into()));
        }
        let (mut v, _) = self.query_vectors(&[query]).await?;
        let (_, projected) = v
            .pop()
            .ok_or_else(|| Error::InvalidQuery("the query could not be encoded".into()))?;
        let r = self.index.search(&projected, opts).await?;
        Ok(all_because(
            r,
            Reason::Query {
                query: query.to_string(),
            },
        ))
    }
}

/// Every result of `r`, each with the same reason.
fn all_because(r: SearchResult, reason: Reason) -> Vec<Recommended> {
    r.ids
        .into_iter()
        .zip(r.scores)
        .map(|(id, score)| Recommended {
            id,
            score,
            reason: reason.clone(),
        })
        .collect()
}

fn elapsed_ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
