//! [`Embedder`]: a tokenizer and a BERT-family model on the backend the caller picked, turning texts into
//! vectors. This is what the JS `Embedder` wraps and what the CLI's `embed` command runs.

use web_time::Instant;

use super::{Bert, BertWeights, ModelConfig};
use crate::backend::cpu_nn::CpuNn;
use crate::backend::gpu::nn::GpuNn;
use crate::backend::gpu::GpuContext;
use crate::error::{Error, Result};
use crate::index::DeviceChoice;
use crate::rank::Backend;
use crate::tokenize::{Batch, Tokenizer};

/// Texts are cut to this many bytes per allowed token before tokenizing, so a huge string costs no more
/// than a long one. No real token is this long, so the result is that of the whole text (tokens past the
/// model's length are dropped anyway).
pub const BYTES_PER_TOKEN_CAP: usize = 64;

enum Model {
    Cpu(Box<Bert<CpuNn>>),
    Gpu(Box<Bert<GpuNn>>),
}

/// The files of a model: `config.json`, `model.safetensors` and `tokenizer.json`.
#[derive(Clone, Copy, Debug)]
pub struct ModelFiles<'a> {
    pub config: &'a [u8],
    pub weights: &'a [u8],
    pub tokenizer: &'a [u8],
}

/// How long loading took, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadTimings {
    /// Parsing and checking the files (config, weights, tokenizer).
    pub parse_ms: f64,
    /// Device setup, weight upload and pipeline creation (0 on the CPU).
    pub setup_ms: f64,
    /// The warm-up pass that compiles the kernels (GPU) or touches the weights (CPU).
    pub warmup_ms: f64,
}

/// Texts to unit vectors (or whatever pooling the model's config asks for).
pub struct Embedder {
    tokenizer: Tokenizer,
    model: Model,
    adapter: Option<String>,
    timings: LoadTimings,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("backend", &self.backend())
            .field("dim", &self.dim())
            .field("max_len", &self.max_len())
            .finish()
    }
}

impl Embedder {
    /// Loads a model on `device`. `max_len` caps tokens per text (special tokens included); by default the
    /// model's `max_position_embeddings`, and never above it or the backend's limit. `Auto` takes the GPU
    /// when there is a hardware adapter, and the CPU otherwise (software adapters are slower than the CPU
    /// path).
    pub async fn load(
        files: ModelFiles<'_>,
        device: DeviceChoice,
        max_len: Option<usize>,
    ) -> Result<Embedder> {
        let t0 = Instant::now();
        let cfg = ModelConfig::from_json(files.config)?;
        let weights = BertWeights::from_safetensors("model.safetensors", files.weights, &cfg)?;
        let mut len = max_len
            .unwrap_or(cfg.max_position_embeddings)
            .min(cfg.max_position_embeddings);
        let tokenizer_probe = Tokenizer::from_bytes(files.tokenizer, len.max(2))?;
        if tokenizer_probe.vocab_size() > cfg.vocab_size {
            return Err(Error::Tokenizer(format!(
                "the tokenizer knows {} tokens, the model only {}",
                tokenizer_probe.vocab_size(),
                cfg.vocab_size
            )));
        }
        let parse_ms = ms(t0);

        let t1 = Instant::now();
        let gpu = match device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => Some(GpuContext::new().await?),
            DeviceChoice::Auto => GpuContext::new().await.ok().filter(|c| !c.is_software()),
        };
        let (model, adapter) = match gpu {
            Some(ctx) => {
                let adapter = ctx.adapter_name();
                let nn = GpuNn::new(ctx).await?;
                len = len.min(crate::backend::kernels::ATTENTION_MAX_LEN);
                (
                    Model::Gpu(Box::new(Bert::new(cfg, &weights, nn)?)),
                    Some(adapter),
                )
            }
            None => (Model::Cpu(Box::new(Bert::new(cfg, &weights, CpuNn)?)), None),
        };
        drop(weights);
        let tokenizer = if len == tokenizer_probe.max_len() {
            tokenizer_probe
        } else {
            Tokenizer::from_bytes(files.tokenizer, len)?
        };
        let setup_ms = ms(t1);

        let mut e = Embedder {
            tokenizer,
            model,
            adapter,
            timings: LoadTimings {
                parse_ms,
                setup_ms,
                warmup_ms: 0.0,
            },
        };
        let t2 = Instant::now();
        e.embed(&["warm up"]).await?;
        e.timings.warmup_ms = ms(t2);
        Ok(e)
    }

    /// Embeds `texts` (at least one): `[texts.len(), dim]`, row-major.
    pub async fn embed<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<f32>> {
        let batch = self.encode(texts)?;
        match &self.model {
            Model::Cpu(m) => m.embed(&batch).await,
            Model::Gpu(m) => m.embed(&batch).await,
        }
    }

    /// Tokenizes `texts` as [`Embedder::embed`] does.
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
        match &self.model {
            Model::Cpu(m) => m.config(),
            Model::Gpu(m) => m.config(),
        }
    }

    /// Tokens per text, at most.
    pub fn max_len(&self) -> usize {
        self.tokenizer.max_len()
    }

    pub fn backend(&self) -> Backend {
        match self.model {
            Model::Cpu(_) => Backend::Cpu,
            Model::Gpu(_) => Backend::WebGpu,
        }
    }

    /// The GPU adapter's description, when the model runs there.
    pub fn adapter(&self) -> Option<&str> {
        self.adapter.as_deref()
    }

    pub fn load_timings(&self) -> LoadTimings {
        self.timings
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

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
