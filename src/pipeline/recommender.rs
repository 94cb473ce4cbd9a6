//! [`Recommender`]: a whole bundle (`shelfwise export`) loaded and run: the session's events become an
//! interest vector (the interest model, with searches encoded by the text encoder), which ranks the item
//! shards with the caller's filters, and every result gets a reason.
//!
//! One [`DeviceChoice`] is turned into a [`crate::device::Placement`] once, at load; at most one GPU
//! context is opened, and the text encoder, the interest model and ranking share it.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Mutex;

use web_time::Instant;

use super::index::Index;
use crate::backend::cpu::CpuNn;
use crate::backend::gpu::nn::GpuNn;
use crate::backend::gpu::GpuContext;
use crate::backend::{open_gpu, OnBackend};
use crate::catalog::{Catalog, FileEntry, Manifest, RecommenderFiles};
use crate::device::{DeviceChoice, Workload};
use crate::error::{Error, Result};
use crate::events::{self, Subject, SEARCH_TOKEN};
use crate::model::{
    EncoderFiles, InterestModel, ModelConfig, ModelFiles, NnBackend, Step, StepInput, TextEncoder,
};
use crate::on_backend;
use crate::profile;
pub use crate::profile::Profile;
use crate::rank::{Backend, SearchOptions, SearchResult};

/// A query's text vector (the encoder's output) projected into item space: what a search feeds the
/// interest model, and what ranks the shards for [`Recommender::search`].
type QueryVector = Vec<f32>;

/// Encoded search queries kept, so that a session's older searches are not encoded again on every call.
const QUERY_CACHE: usize = 256;

/// The bundle's Transformer models on one backend. What the pipeline does with them is written once, here,
/// generic over the backend; [`Recommender`] enters it through [`on_backend!`].
struct Models<B: NnBackend> {
    interest: InterestModel<B>,
    encoder: Option<TextEncoder<B>>,
}

impl<B: NnBackend> Models<B> {
    /// `queries` encoded and projected into item space.
    async fn encode_queries(&self, queries: &[&str]) -> Result<Vec<QueryVector>> {
        let Some(enc) = &self.encoder else {
            return Ok(Vec::new());
        };
        let text = enc.embed(queries).await?;
        let projected = self.interest.project_texts(&text).await?;
        Ok(projected
            .chunks_exact(self.interest.dim())
            .map(<[f32]>::to_vec)
            .collect())
    }

    /// Checks that the parts fit each other, then runs the text encoder once, so the first search pays
    /// no warm-up.
    async fn check_and_warm_up(&self, catalog_dim: usize) -> Result<()> {
        let dim = self.interest.dim();
        if dim != catalog_dim {
            return Err(Error::Dimension {
                context: "the interest model's width against the shards'".into(),
                expected: catalog_dim,
                found: dim,
            });
        }
        if let (Some(e), Some(t)) = (&self.encoder, self.interest.text_dim()) {
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
        if let Some(e) = &self.encoder {
            e.embed(&["warm up"]).await?;
        }
        Ok(())
    }
}

/// The models on the CPU or the GPU backend.
type AnyModels = OnBackend<Models<CpuNn>, Models<GpuNn>>;

/// Per-pass work of an interest model, layers x positions x width^2, which `auto` weighs (saturating: a
/// hostile config cannot overflow it).
fn model_work(cfg: &ModelConfig) -> usize {
    cfg.num_hidden_layers
        .saturating_mul(cfg.max_position_embeddings)
        .saturating_mul(cfg.hidden_size.saturating_mul(cfg.hidden_size))
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
/// interest model, and ranking with filters and MMR. When the interest model and ranking both run on the
/// GPU, they go in one submission: `model_ms` then covers both, and `rank_ms` the selection and reasons.
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
    models: AnyModels,
    /// The one GPU context, when any stage runs on the GPU.
    gpu: Option<Rc<GpuContext>>,
    files: RecommenderFiles,
    /// Projected query vectors by query text, at most [`QUERY_CACHE`].
    queries: Mutex<HashMap<String, QueryVector>>,
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
        let encoder_files = match &files.encoder {
            Some(e) => {
                let tokenizer = e
                    .tokenizer
                    .as_ref()
                    .ok_or_else(|| Error::Manifest("the encoder has no tokenizer".into()))?;
                Some((get(&e.config)?, get(&e.weights)?, get(tokenizer)?))
            }
            None => None,
        };
        let placement = device.placement(Workload {
            items: catalog.len(),
            model_work: model_work(&ModelConfig::from_json(&config)?),
            text_encoder: false,
        });
        let gpu = open_gpu(device, placement).await?;
        let encoder = match &encoder_files {
            Some((c, w, t)) => Some(EncoderFiles::parse(
                ModelFiles {
                    config: c,
                    weights: w,
                    tokenizer: t,
                },
                None,
            )?),
            None => None,
        };
        let interest_file = files.interest.weights.file.as_str();
        let models = match gpu.as_ref().filter(|_| placement.models) {
            Some(ctx) => OnBackend::Gpu(Models {
                interest: InterestModel::load(
                    &config,
                    interest_file,
                    &weights,
                    GpuNn::new(ctx.clone()).await?,
                )?,
                encoder: match encoder {
                    Some(e) => Some(e.upload(GpuNn::new(ctx.clone()).await?)?),
                    None => None,
                },
            }),
            None => OnBackend::Cpu(Models {
                interest: InterestModel::load(&config, interest_file, &weights, CpuNn)?,
                encoder: match encoder {
                    Some(e) => Some(e.upload(CpuNn)?),
                    None => None,
                },
            }),
        };
        on_backend!(&models, m => m.check_and_warm_up(catalog.dim()).await)?;
        let rank_gpu = gpu.clone().filter(|_| placement.ranking);
        let index = Index::on(catalog, rank_gpu, device.requires_gpu()).await?;
        // Under `auto`, a catalogue the GPU could not take ranks on the CPU: keep the context only if a
        // stage uses it.
        let on_gpu = models.backend() == Backend::WebGpu || index.backend() == Backend::WebGpu;
        let gpu = gpu.filter(|_| on_gpu);
        Ok(Recommender {
            index,
            models,
            gpu,
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

    /// Where the interest model and the text encoder run.
    pub fn model_backend(&self) -> Backend {
        self.models.backend()
    }

    /// The GPU adapter's description, when any stage runs on the GPU.
    pub fn adapter(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.adapter_name())
    }

    /// Where ranking runs.
    pub fn rank_backend(&self) -> Backend {
        self.index.backend()
    }

    /// Destroys the recommender's GPU device, as a driver reset or a lost GPU would: later calls fail
    /// with `GPU_ERROR`. For tests of the fallback to the CPU; does nothing on the CPU path.
    #[doc(hidden)]
    pub fn simulate_device_loss(&self) {
        if let Some(ctx) = &self.gpu {
            ctx.destroy_device();
        }
    }

    /// Forgets every cached query vector (the shopper's past searches), as `reset()` needs.
    pub fn forget_queries(&self) {
        self.queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether search events count (the bundle has a text encoder).
    pub fn takes_searches(&self) -> bool {
        on_backend!(&self.models, m => m.encoder.is_some())
    }

    fn item_vector(&self, row: usize) -> Vec<f32> {
        let mut v = vec![0.0; self.dim()];
        self.index.catalog().row_f32(row, &mut v);
        v
    }

    /// Text and projected vectors of `queries`, encoding only those not cached. Returns the time spent
    /// encoding.
    async fn query_vectors(&self, queries: &[&str]) -> Result<(Vec<QueryVector>, f64)> {
        if !self.takes_searches() {
            return Ok((Vec::new(), 0.0));
        }
        // Cached vectors are copied out at once: another call may clear the cache while this one encodes.
        let mut out: Vec<Option<QueryVector>> = {
            let cache = self.queries.lock().unwrap_or_else(|e| e.into_inner());
            queries.iter().map(|q| cache.get(*q).cloned()).collect()
        };
        let mut missing: Vec<&str> = queries
            .iter()
            .zip(&out)
            .filter(|(_, v)| v.is_none())
            .map(|(q, _)| *q)
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let t0 = Instant::now();
        if missing.is_empty() {
            return Ok((out.into_iter().flatten().collect(), 0.0));
        }
        let vectors = on_backend!(&self.models, m => m.encode_queries(&missing).await)?;
        let ms = elapsed_ms(t0);
        for (v, q) in out.iter_mut().zip(queries) {
            if v.is_none() {
                // `missing` is sorted, and `vectors` is in its order.
                *v = missing
                    .binary_search(q)
                    .ok()
                    .and_then(|i| vectors.get(i))
                    .cloned();
            }
        }
        let mut cache = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() + missing.len() > QUERY_CACHE {
            cache.clear();
        }
        let room = QUERY_CACHE - cache.len();
        cache.extend(
            missing
                .iter()
                .map(|q| q.to_string())
                .zip(vectors)
                .take(room),
        );
        let out = out.into_iter().collect::<Option<Vec<_>>>().ok_or_else(|| {
            Error::invalid(
                "query",
                "the text encoder returned fewer vectors than queries",
            )
        })?;
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
                    if !self.takes_searches() || query.trim().is_empty() {
                        continue;
                    }
                    let projected = query_vectors.pop().ok_or_else(|| {
                        Error::invalid("query", "fewer query vectors than searches")
                    })?;
                    // Already in item space: the model does not project it again.
                    steps.push(Step {
                        kind: SEARCH_TOKEN,
                        input: StepInput::Item(projected.clone()),
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
        Ok(self.interest_and_ranking(steps, None).await?.0)
    }

    /// The interest vector of `steps` (`None` without steps) and, when `rank` is given and the model and
    /// ranking both run on the GPU, the ranking for it: the vector goes from the model to ranking on the
    /// device, in one submission, and comes back with the candidates.
    async fn interest_and_ranking(
        &self,
        steps: Vec<Step>,
        rank: Option<&SearchOptions>,
    ) -> Result<(Option<Vec<f32>>, Option<SearchResult>)> {
        if steps.is_empty() {
            return Ok((None, None));
        }
        let sessions = [steps];
        match &self.models {
            OnBackend::Cpu(m) => Ok((Some(m.interest.interest(&sessions).await?), None)),
            OnBackend::Gpu(m) => {
                let nn = m.interest.backend();
                let t = m.interest.interest_tensor(&sessions).await?;
                if let Some(opts) = rank {
                    if let Some((r, v)) = self.index.search_on_gpu(&t, nn, opts).await? {
                        return Ok((Some(v), Some(r)));
                    }
                }
                Ok((Some(nn.read(&t).await?), None))
            }
        }
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
        // Blending with a profile happens on the host, so only an unblended vector can stay on the GPU.
        let blend = profile.as_ref().is_some_and(|p| p.weight > 0.0);
        let (interest, mut ranked) = self
            .interest_and_ranking(steps, (!blend).then_some(opts))
            .await?;
        let model_ms = elapsed_ms(t1);
        let t2 = Instant::now();
        let query = profile::blend(interest.as_deref(), profile);
        if let (None, Some(q)) = (&interest, &query) {
            sources.push((Reason::Profile, q.clone()));
        }
        let items = match query {
            Some(q) => {
                let r = match ranked.take() {
                    Some(r) => r,
                    None => self.index.search(&q, opts).await?,
                };
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
        if !self.takes_searches() {
            return Err(Error::invalid(
                "query",
                "this bundle has no text encoder, so it cannot search",
            ));
        }
        if query.trim().is_empty() {
            return Err(Error::InvalidQuery("the query is empty".into()));
        }
        let (mut v, _) = self.query_vectors(&[query]).await?;
        let projected = v
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
