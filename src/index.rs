//! [`Index`]: a loaded catalogue plus the backend that ranks it. This is the pipeline the JS `ItemIndex`
//! wraps, and what native code (the CLI, tests, benchmarks) uses directly.

use std::cell::Cell;
use std::future::Future;

use web_time::Instant;

use crate::backend::cpu;
use crate::backend::gpu::{GpuContext, GpuIndex};
use crate::backend::kernels::GPU_MAX_K;
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::rank::select::select;
use crate::rank::{Backend, Plan, SearchOptions, SearchResult, Timings};

/// Which backend to rank on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// WebGPU when an adapter exists and the catalogue has at least [`AUTO_GPU_MIN_ITEMS`] items; otherwise
    /// the CPU.
    #[default]
    Auto,
    /// WebGPU, or [`Error::GpuUnavailable`].
    Gpu,
    /// The CPU.
    Cpu,
}

impl DeviceChoice {
    /// Parses `"auto"`, `"webgpu"` or `"cpu"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "webgpu" | "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => Err(Error::invalid(
                "device",
                format!("`{other}` is not auto, webgpu or cpu"),
            )),
        }
    }
}

/// Below this many items, `auto` stays on the CPU: a scan there takes well under a millisecond, less than
/// one GPU submit-and-read-back round trip.
pub const AUTO_GPU_MIN_ITEMS: usize = 1 << 20;

/// A searchable catalogue.
#[derive(Debug)]
pub struct Index {
    catalog: Catalog,
    gpu: Option<GpuIndex>,
    /// Set when the GPU failed mid-session; every later request runs on the CPU.
    gpu_failed: Cell<bool>,
}

impl Index {
    /// An index that ranks on the CPU.
    pub fn cpu(catalog: Catalog) -> Index {
        Index {
            catalog,
            gpu: None,
            gpu_failed: Cell::new(false),
        }
    }

    /// An index on the chosen backend. With [`DeviceChoice::Auto`], a missing or failing GPU is not an
    /// error: the index runs on the CPU.
    pub async fn new(catalog: Catalog, device: DeviceChoice) -> Result<Index> {
        let want_gpu = match device {
            DeviceChoice::Cpu => false,
            DeviceChoice::Gpu => true,
            DeviceChoice::Auto => catalog.len() >= AUTO_GPU_MIN_ITEMS,
        };
        if !want_gpu {
            return Ok(Index::cpu(catalog));
        }
        let gpu = match GpuContext::new().await {
            Ok(ctx) => {
                if device == DeviceChoice::Auto && ctx.is_software() {
                    // A software adapter is slower than the SIMD CPU path.
                    return Ok(Index::cpu(catalog));
                }
                GpuIndex::new(ctx, &catalog).await
            }
            Err(e) => Err(e),
        };
        match (gpu, device) {
            (Ok(gpu), _) => Ok(Index {
                catalog,
                gpu: Some(gpu),
                gpu_failed: Cell::new(false),
            }),
            (Err(e), DeviceChoice::Gpu) => Err(e),
            (Err(_), _) => Ok(Index::cpu(catalog)),
        }
    }

    /// A GPU index whose buffers are split at `max_binding` bytes at most: for tests of the chunked path.
    #[doc(hidden)]
    pub async fn gpu_with_chunk_limit(catalog: Catalog, max_binding: u64) -> Result<Index> {
        let ctx = GpuContext::new().await?;
        let gpu = GpuIndex::with_chunk_limit(ctx, &catalog, Some(max_binding)).await?;
        Ok(Index {
            catalog,
            gpu: Some(gpu),
            gpu_failed: Cell::new(false),
        })
    }

    /// Number of GPU chunks (0 on the CPU).
    pub fn gpu_chunks(&self) -> usize {
        self.gpu.as_ref().map_or(0, |g| g.chunks())
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The backend requests run on now.
    pub fn backend(&self) -> Backend {
        if self.gpu.is_some() && !self.gpu_failed.get() {
            Backend::WebGpu
        } else {
            Backend::Cpu
        }
    }

    /// The GPU adapter's name, when on the GPU.
    pub fn adapter_name(&self) -> Option<String> {
        self.gpu.as_ref().map(|g| g.context().adapter_name())
    }

    /// Ranks the catalogue for `query` (`m * dim` values, combined with `opts.weights`).
    pub async fn search(&self, query: &[f32], opts: &SearchOptions) -> Result<SearchResult> {
        self.run(query, opts, true).await
    }

    async fn run(
        &self,
        query: &[f32],
        opts: &SearchOptions,
        allow_gpu: bool,
    ) -> Result<SearchResult> {
        let t0 = Instant::now();
        let plan = Plan::new(&self.catalog, query, opts)?;
        let t1 = Instant::now();
        let mut m = plan.m;
        let mut score_ms = 0.0;
        let mut select_ms = 0.0;
        let mut backend;
        loop {
            let ts = Instant::now();
            let (cands, b) = self.candidates(&plan, m, allow_gpu).await?;
            backend = b;
            let tsel = Instant::now();
            score_ms += ms(ts, tsel);
            let exhaustive = cands.len() < m || m >= self.catalog.len();
            let sel = select(&self.catalog, &plan, &cands, exhaustive);
            select_ms += ms(tsel, Instant::now());
            if sel.complete {
                let ids = sel
                    .rows
                    .iter()
                    .map(|&r| self.catalog.id(r as usize).to_string())
                    .collect();
                return Ok(SearchResult {
                    rows: sel.rows,
                    ids,
                    scores: sel.scores,
                    backend,
                    timings: Timings {
                        plan_ms: ms(t0, t1),
                        score_ms,
                        select_ms,
                        total_ms: ms(t0, Instant::now()),
                    },
                });
            }
            // The per-category cap consumed the candidates: widen and select again.
            m = (m * 4).min(self.catalog.len());
        }
    }

    /// Ranks on the CPU whatever the backend, synchronously: the reference the GPU is tested against.
    pub fn search_cpu(&self, query: &[f32], opts: &SearchOptions) -> Result<SearchResult> {
        // With the GPU excluded nothing in `run` waits, so one poll completes it.
        let mut fut = std::pin::pin!(self.run(query, opts, false));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => Err(Error::Gpu("the CPU path unexpectedly waited".into())),
        }
    }

    async fn candidates(
        &self,
        plan: &Plan,
        m: usize,
        allow_gpu: bool,
    ) -> Result<(Vec<u64>, Backend)> {
        if let (Some(gpu), true) = (&self.gpu, allow_gpu) {
            if !self.gpu_failed.get() && m <= GPU_MAX_K {
                match gpu.candidates(plan, m).await {
                    Ok(c) => return Ok((c, Backend::WebGpu)),
                    Err(Error::Gpu(_)) => self.gpu_failed.set(true),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((cpu::scan(&self.catalog, plan, m), Backend::Cpu))
    }
}

fn ms(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64() * 1e3
}
