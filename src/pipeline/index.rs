//! [`Index`]: a loaded catalogue plus the ranking backend ([`RankBackend`]) that scores it, and the one
//! place that widens the candidate set when the per-category cap consumes it. This is the pipeline the JS `ItemIndex`
//! wraps, and what native code (the CLI, tests, benchmarks) uses directly.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use web_time::Instant;

use crate::backend::cpu::CpuRank;
use crate::backend::gpu::nn::{GpuNn, GpuTensor};
use crate::backend::gpu::{GpuContext, GpuIndex};
use crate::backend::open_gpu;
use crate::catalog::Catalog;
use crate::device::{DeviceChoice, Workload};
use crate::error::{Error, Result};
use crate::rank::select::select;
use crate::rank::{Backend, Plan, RankBackend, SearchOptions, SearchResult, Timings};
use crate::shard::Dtype;

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
        let placement = device.placement(Workload {
            items: catalog.len(),
            ..Workload::default()
        });
        let gpu = open_gpu(device, placement).await?;
        Index::on(catalog, gpu, device.requires_gpu()).await
    }

    /// An index on `gpu`'s device when given (shared with whatever else runs there), else on the CPU. A
    /// catalogue the GPU cannot take falls back to the CPU unless the GPU is `required`.
    pub async fn on(
        catalog: Catalog,
        gpu: Option<Rc<GpuContext>>,
        required: bool,
    ) -> Result<Index> {
        let Some(ctx) = gpu else {
            return Ok(Index::cpu(catalog));
        };
        match GpuIndex::new(ctx, &catalog).await {
            Ok(gpu) => Ok(Index {
                catalog,
                gpu: Some(gpu),
                gpu_failed: Cell::new(false),
            }),
            Err(e) if required => Err(e),
            Err(_) => Ok(Index::cpu(catalog)),
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
        self.select_from(plan, (t0, Instant::now()), None, allow_gpu)
            .await
    }

    /// Ranks for an interest vector still on the GPU: `query` (`[1, dim]`) is the output of `nn`'s forward
    /// pass, not yet submitted. The pass, the copy of the vector into the ranking request and the ranking
    /// go to the GPU in one submission, and the vector comes back with the candidates in one read-back:
    /// the result and the vector. `None`, with nothing done, when this index cannot take it that way (no
    /// GPU or a failed one, an int8 catalogue, query weights, or more candidates than the GPU serves): the
    /// caller then reads the vector back and calls [`Index::search`].
    pub async fn search_on_gpu(
        &self,
        query: &GpuTensor,
        nn: &GpuNn,
        opts: &SearchOptions,
    ) -> Result<Option<(SearchResult, Vec<f32>)>> {
        let Some(gpu) = self.gpu.as_ref().filter(|_| !self.gpu_failed.get()) else {
            return Ok(None);
        };
        if opts.weights.is_some() || self.catalog.dtype() == Dtype::I8 {
            return Ok(None);
        }
        let t0 = Instant::now();
        let mut plan = Plan::new(&self.catalog, &vec![0.0; self.catalog.dim()], opts)?;
        if plan.m > gpu.max_candidates() {
            return Ok(None);
        }
        let ts = Instant::now();
        let (keys, q) = match gpu.candidates_for(&plan, plan.m, query, nn).await {
            Ok(got) => got,
            Err(e) => {
                if matches!(e, Error::Gpu(_)) {
                    self.gpu_failed.set(true);
                }
                return Err(e);
            }
        };
        // Later rounds (a widened candidate set) and the result's checks need the vector on the host.
        plan.set_query(&self.catalog, &q)?;
        let first = (keys, gpu.backend(), ms(ts, Instant::now()));
        let r = self.select_from(plan, (t0, ts), Some(first), true).await?;
        Ok(Some((r, q)))
    }

    /// Stages 2 and 3 for `plan` (made between the two instants): candidates (`first`, when the caller already has them,
    /// with their backend and milliseconds), then selection, widening the candidates until the
    /// per-category cap is met.
    async fn select_from(
        &self,
        plan: Plan,
        (t0, t1): (Instant, Instant),
        mut first: Option<(Vec<u64>, Backend, f64)>,
        allow_gpu: bool,
    ) -> Result<SearchResult> {
        let mut m = plan.m;
        let mut score_ms = 0.0;
        let mut select_ms = 0.0;
        let mut backend;
        loop {
            let ts = Instant::now();
            let (cands, b) = match first.take() {
                Some((c, b, first_ms)) => {
                    score_ms += first_ms;
                    (c, b)
                }
                None => self.candidates(&plan, m, allow_gpu).await?,
            };
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

    /// The best `m` candidates, from the GPU when there is one that has not failed and serves `m`; from
    /// the CPU otherwise. A GPU fault moves this request and every later one to the CPU.
    async fn candidates(
        &self,
        plan: &Plan,
        m: usize,
        allow_gpu: bool,
    ) -> Result<(Vec<u64>, Backend)> {
        if let Some(gpu) = self
            .gpu
            .as_ref()
            .filter(|_| allow_gpu && !self.gpu_failed.get())
        {
            if m <= gpu.max_candidates() {
                match gpu.candidates(&self.catalog, plan, m).await {
                    Ok(c) => return Ok((c, gpu.backend())),
                    Err(Error::Gpu(_)) => self.gpu_failed.set(true),
                    Err(e) => return Err(e),
                }
            }
        }
        let c = CpuRank.candidates(&self.catalog, plan, m).await?;
        Ok((c, CpuRank.backend()))
    }
}

fn ms(a: Instant, b: Instant) -> f64 {
    b.duration_since(a).as_secs_f64() * 1e3
}
