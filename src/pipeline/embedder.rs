//! [`Embedder`]: a text encoder loaded on its own, on the device the caller picked. This is what the JS
//! `Embedder` wraps and what the CLI's `embed` command runs; a bundle's encoder lives inside
//! [`super::Recommender`] instead, on the recommender's one device.

use std::rc::Rc;

use web_time::Instant;

use crate::backend::cpu::CpuNn;
use crate::backend::gpu::nn::GpuNn;
use crate::backend::gpu::GpuContext;
use crate::backend::{open_gpu, OnBackend};
use crate::device::{DeviceChoice, Workload};
use crate::error::Result;
use crate::model::{EncoderFiles, ModelConfig, ModelFiles, TextEncoder};
use crate::on_backend;
use crate::rank::Backend;
use crate::tokenize::Batch;

/// A text encoder on the CPU or the GPU backend.
pub(crate) type AnyEncoder = OnBackend<TextEncoder<CpuNn>, TextEncoder<GpuNn>>;

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
    encoder: AnyEncoder,
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
        let parsed = EncoderFiles::parse(files, max_len)?;
        let parse_ms = ms(t0);
        let t1 = Instant::now();
        let placement = device.placement(Workload {
            text_encoder: true,
            ..Workload::default()
        });
        let gpu = open_gpu(device, placement).await?;
        let encoder = upload(parsed, gpu).await?;
        let mut e = Embedder {
            adapter: match &encoder {
                OnBackend::Gpu(m) => Some(m.backend().context().adapter_name()),
                OnBackend::Cpu(_) => None,
            },
            encoder,
            timings: LoadTimings {
                parse_ms,
                setup_ms: ms(t1),
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
        on_backend!(&self.encoder, m => m.embed(texts).await)
    }

    /// Tokenizes `texts` as [`Embedder::embed`] does.
    pub fn encode<S: AsRef<str>>(&self, texts: &[S]) -> Result<Batch> {
        on_backend!(&self.encoder, m => m.encode(texts))
    }

    /// Length of the vectors.
    pub fn dim(&self) -> usize {
        on_backend!(&self.encoder, m => m.dim())
    }

    pub fn config(&self) -> &ModelConfig {
        on_backend!(&self.encoder, m => m.config())
    }

    /// Tokens per text, at most.
    pub fn max_len(&self) -> usize {
        on_backend!(&self.encoder, m => m.max_len())
    }

    pub fn backend(&self) -> Backend {
        self.encoder.backend()
    }

    /// The GPU adapter's description, when the model runs there.
    pub fn adapter(&self) -> Option<&str> {
        self.adapter.as_deref()
    }

    pub fn load_timings(&self) -> LoadTimings {
        self.timings
    }
}

/// `parsed` on the GPU context when there is one, else on the CPU.
pub(crate) async fn upload(
    parsed: EncoderFiles<'_>,
    gpu: Option<Rc<GpuContext>>,
) -> Result<AnyEncoder> {
    Ok(match gpu {
        Some(ctx) => OnBackend::Gpu(parsed.upload(GpuNn::new(ctx).await?)?),
        None => OnBackend::Cpu(parsed.upload(CpuNn)?),
    })
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}
