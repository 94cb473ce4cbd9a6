//! Ranking on the GPU: [`GpuIndex`], a catalogue resident in GPU memory, scored by `score_topk.wgsl`.
//!
//! At load, the catalogue is uploaded once, in chunks no larger than the adapter's storage-binding limit
//! (and never above 128 MiB), the pipeline is created and one warm-up dispatch runs. A request then writes
//! its small tables (query, category bits and boosts, row mask), records one compute pass over all chunks
//! plus one copy, submits once, and reads back only each tile's best `m` (key, row) pairs, which the CPU
//! merges.

use std::borrow::Cow;
use std::rc::Rc;

use wgpu::util::DeviceExt;

use super::context::{floats, GpuContext, Pipeline};
use super::nn::{GpuNn, GpuTensor};
use super::params::ScoreTopkParams;
use crate::backend::kernels::{Kernel, GPU_MAX_K, TILE};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::rank::topk::rank_key;
use crate::rank::{Backend, Plan, RankBackend};
use crate::shard::{Dtype, Shard, NO_CATEGORY};

struct Chunk {
    start: u32,
    rows: u32,
    tiles: u32,
    out_tile: u32,
    params: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    // Held so the bound buffers live as long as the bind group.
    _rows: wgpu::Buffer,
    _attrs: wgpu::Buffer,
}

/// A catalogue resident on the GPU.
pub struct GpuIndex {
    ctx: Rc<GpuContext>,
    pipeline: Rc<Pipeline>,
    chunks: Vec<Chunk>,
    mask: wgpu::Buffer,
    req: wgpu::Buffer,
    out: wgpu::Buffer,
    total_tiles: u32,
    row_words: u32,
    /// Query values per row word: 1 (f32), 2 (f16) or 4 (int8).
    lanes: u32,
    cat_allow_at: u32,
    cat_boost_at: u32,
    cat_words: usize,
}

impl Drop for GpuIndex {
    /// Frees GPU memory now rather than when the browser collects the JS objects (wgpu's WebGPU buffers do
    /// nothing on drop). The index is dropped only after its last in-flight request, which holds it.
    fn drop(&mut self) {
        for c in &self.chunks {
            c._rows.destroy();
            c._attrs.destroy();
            c.params.destroy();
        }
        for b in [&self.mask, &self.req, &self.out] {
            b.destroy();
        }
    }
}

impl std::fmt::Debug for GpuIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuIndex")
            .field("ctx", &self.ctx)
            .field("chunks", &self.chunks.len())
            .field("tiles", &self.total_tiles)
            .finish()
    }
}

impl GpuIndex {
    /// Uploads `catalog`, creates the pipeline and runs one warm-up dispatch.
    pub async fn new(ctx: Rc<GpuContext>, catalog: &Catalog) -> Result<GpuIndex> {
        Self::with_chunk_limit(ctx, catalog, None).await
    }

    /// As [`GpuIndex::new`], with a smaller per-binding limit than the adapter's, so tests can force a
    /// catalogue into many chunks.
    pub async fn with_chunk_limit(
        ctx: Rc<GpuContext>,
        catalog: &Catalog,
        max_binding: Option<u64>,
    ) -> Result<GpuIndex> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let built = Self::build(ctx, catalog, max_binding);
        // Scopes pop in reverse order of pushing.
        let oom_err = oom.pop().await;
        let val_err = scope.pop().await;
        if let Some(e) = oom_err {
            return Err(Error::Gpu(format!(
                "out of memory while uploading the catalogue: {e}"
            )));
        }
        if let Some(e) = val_err {
            return Err(Error::Gpu(format!("uploading the catalogue: {e}")));
        }
        let index = built?;
        // Warm-up: compile for real and touch every buffer, so the first request pays nothing extra.
        let dim = catalog.dim();
        let warm = Plan::new(catalog, &vec![0.0; dim], &Default::default())?;
        index.candidates(catalog, &warm, 1).await?;
        Ok(index)
    }

    /// Plans the chunks, creates the request-wide buffers and uploads every chunk, inside the caller's
    /// error scopes.
    fn build(ctx: Rc<GpuContext>, catalog: &Catalog, max_binding: Option<u64>) -> Result<GpuIndex> {
        let device = &ctx.device;
        let dtype = catalog.dtype();
        let lanes = lanes(dtype);
        let row_words = (catalog.dim() as u32).div_ceil(lanes);
        let row_bytes = row_words as u64 * 4;
        let max = max_binding.map_or(ctx.max_binding, |m| m.min(ctx.max_binding));
        let per_chunk = rows_per_chunk(row_bytes, max)?;
        let pipeline = ctx.pipeline(Kernel::ScoreTopk, &[("DTYPE", dtype_constant(dtype))]);

        let n = catalog.len();
        let nc = catalog.num_categories() as usize;
        let cat_words = nc.div_ceil(32).max(1);
        let q_words = (row_words * lanes) as usize;
        let cat_allow_at = q_words as u32;
        let cat_boost_at = (q_words + cat_words) as u32;
        let req_words = q_words + cat_words + nc.max(1);
        let dst = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let mask = storage(device, "mask", n.div_ceil(32) as u64 * 4, dst);
        let req = storage(device, "req", req_words as u64 * 4, dst);

        let plan = plan_chunks(catalog, per_chunk);
        let total_tiles: u32 = plan.iter().map(ChunkRows::tiles).sum();
        let out_bytes = total_tiles as u64 * GPU_MAX_K as u64 * 8;
        if out_bytes > ctx.max_binding {
            return Err(Error::Gpu(format!(
                "{n} rows need {out_bytes} bytes of tile results, above the binding limit of {}",
                ctx.max_binding
            )));
        }
        let out = storage(
            device,
            "out",
            out_bytes,
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );

        let target = ChunkTarget {
            device,
            layout: &pipeline.layout,
            mask: &mask,
            req: &req,
            out: &out,
        };
        let mut chunks = Vec::with_capacity(plan.len());
        let mut out_tile = 0u32;
        for &rows in &plan {
            let chunk = Chunk::upload(&target, catalog, rows, row_bytes as usize, out_tile);
            out_tile += chunk.tiles;
            chunks.push(chunk);
        }
        Ok(GpuIndex {
            ctx,
            pipeline,
            chunks,
            mask,
            req,
            out,
            total_tiles,
            row_words,
            lanes,
            cat_allow_at,
            cat_boost_at,
            cat_words,
        })
    }

    /// Number of chunks the catalogue was split into.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }

    pub fn context(&self) -> &Rc<GpuContext> {
        &self.ctx
    }
}

impl RankBackend for GpuIndex {
    fn backend(&self) -> Backend {
        Backend::WebGpu
    }

    fn max_candidates(&self) -> usize {
        GPU_MAX_K
    }

    /// The best `m` candidates (`m <= GPU_MAX_K`) as rank keys, best first. `catalog` is the one the index
    /// was built from (its rows are already on the GPU).
    async fn candidates(&self, _catalog: &Catalog, plan: &Plan, m: usize) -> Result<Vec<u64>> {
        Ok(self.score(plan, m, None, None).await?.0)
    }
}

impl GpuIndex {
    /// As [`RankBackend::candidates`], with the query taken from `query` (`[1, dim]`, the output of `nn`'s
    /// forward pass, not yet submitted) rather than from `plan`: the pass, the copy of the query into
    /// place and the ranking go to the GPU in one submission, and the query's values come back with the
    /// candidates in the same read-back. For f32 and f16 catalogues (int8 ones quantise the query on the
    /// host) on the device `nn` runs on.
    pub(crate) async fn candidates_for(
        &self,
        plan: &Plan,
        m: usize,
        query: &GpuTensor,
        nn: &GpuNn,
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        let dim = (self.row_words * self.lanes) as usize;
        if !Rc::ptr_eq(nn.context(), &self.ctx) {
            return Err(Error::Gpu(
                "the interest model and the index are on different devices".into(),
            ));
        }
        if plan.is_int8() || query.rows() != 1 || query.cols() > dim {
            return Err(Error::invalid(
                "query",
                format!(
                    "a [{}, {}] GPU query does not fit this catalogue",
                    query.rows(),
                    query.cols()
                ),
            ));
        }
        let bytes = query.cols() as u64 * 4;
        let (pending, transient) = nn.take_pending();
        let out = self
            .score(plan, m, Some((query.buffer(), bytes)), pending)
            .await;
        drop(transient);
        out
    }

    /// One request: the request tables from `plan` (and the query from `device_query` when given, which is
    /// then read back too), one compute pass over every chunk after whatever `pending` recorded, one
    /// submission and one read-back.
    async fn score(
        &self,
        plan: &Plan,
        m: usize,
        device_query: Option<(&wgpu::Buffer, u64)>,
        pending: Option<wgpu::CommandEncoder>,
    ) -> Result<(Vec<u64>, Vec<f32>)> {
        if m == 0 || m > GPU_MAX_K {
            return Err(Error::invalid(
                "k",
                format!("the GPU path serves 1..={GPU_MAX_K} candidates"),
            ));
        }
        self.ctx.check_fault()?;
        let (device, queue) = (&self.ctx.device, &self.ctx.queue);

        // Request tables. Writes are queue operations, ordered before this request's submit.
        let q_words = (self.row_words * self.lanes) as usize;
        let mut req: Vec<u32> = vec![0; q_words];
        if plan.q8.is_empty() {
            for (w, v) in req.iter_mut().zip(&plan.q) {
                *w = v.to_bits();
            }
        } else {
            for (w, &v) in req.iter_mut().zip(&plan.q8) {
                *w = (v as i32) as u32;
            }
        }
        let mut allow = plan.cat_allow.clone();
        allow.resize(self.cat_words, 0);
        req.extend_from_slice(&allow);
        req.extend(plan.cat_boost.iter().map(|b| b.to_bits()));
        queue.write_buffer(&self.req, 0, bytemuck::cast_slice(&req));
        if !plan.mask.is_empty() {
            queue.write_buffer(&self.mask, 0, bytemuck::cast_slice(&plan.mask));
        }
        for c in &self.chunks {
            let p = ScoreTopkParams {
                chunk_start: c.start,
                chunk_rows: c.rows,
                out_tile: c.out_tile,
                k: m as u32,
                row_words: self.row_words,
                flags: plan.flags,
                cat_allow_at: self.cat_allow_at,
                cat_boost_at: self.cat_boost_at,
                qscale: plan.qscale,
                pop_weight: plan.pop_weight,
                price_min: plan.price[0],
                price_max: plan.price[1],
                new_boost: plan.new_boost,
                ..Default::default()
            };
            queue.write_buffer(&c.params, 0, bytemuck::bytes_of(&p));
        }

        let bytes = self.total_tiles as u64 * m as u64 * 8;
        let mut encoder = pending.unwrap_or_else(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("search"),
            })
        });
        if let Some((q, q_bytes)) = device_query {
            // After the table writes above (queue writes precede this submit's commands).
            encoder.copy_buffer_to_buffer(q, 0, &self.req, 0, q_bytes);
        }
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(Kernel::ScoreTopk.label()),
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline.pipeline);
            for c in &self.chunks {
                if c.tiles > 0 {
                    pass.set_bind_group(0, &c.bind_group, &[]);
                    pass.dispatch_workgroups(c.tiles, 1, 1);
                }
            }
        }
        let mut sources = vec![(&self.out, bytes)];
        sources.extend(device_query);
        let (mut keys, query) = self
            .ctx
            .read_back(encoder, &sources, "ranking results", |parts| {
                let pairs: Vec<[u32; 2]> = bytemuck::pod_collect_to_vec(parts[0]);
                let keys: Vec<u64> = pairs
                    .iter()
                    .filter(|p| p[0] != 0)
                    .map(|p| rank_key(p[0], p[1]))
                    .collect();
                (keys, parts.get(1).map_or_else(Vec::new, |q| floats(q)))
            })
            .await?;
        keys.sort_unstable_by(|a, b| b.cmp(a));
        keys.truncate(m);
        Ok((keys, query))
    }
}

/// Query values per row word for `dtype`: 1 (f32), 2 (f16) or 4 (int8).
fn lanes(dtype: Dtype) -> u32 {
    match dtype {
        Dtype::F32 => 1,
        Dtype::F16 => 2,
        Dtype::I8 => 4,
    }
}

/// The `DTYPE` override constant of `score_topk.wgsl` for `dtype`.
fn dtype_constant(dtype: Dtype) -> f64 {
    match dtype {
        Dtype::F32 => 0.0,
        Dtype::F16 => 1.0,
        Dtype::I8 => 2.0,
    }
}

/// Rows one chunk may hold: as many as fit the binding limit `max` (rows of `row_bytes`, attributes of 16
/// bytes) and one dispatch (65,535 workgroups of `TILE` rows). An error when not even one row fits.
fn rows_per_chunk(row_bytes: u64, max: u64) -> Result<usize> {
    let per_chunk = (max / row_bytes).min(max / 16).min(65_535 * TILE as u64) as usize;
    if per_chunk == 0 {
        return Err(Error::Gpu(format!(
            "one row ({row_bytes} bytes) exceeds the binding limit of {max} bytes"
        )));
    }
    Ok(per_chunk)
}

/// A storage buffer of at least `size` bytes, rounded up to whole words (and never empty).
fn storage(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: size.max(4).next_multiple_of(4),
        usage,
        mapped_at_creation: false,
    })
}

/// The rows one chunk holds: rows `from..to` of shard `shard`.
#[derive(Clone, Copy, Debug)]
struct ChunkRows {
    shard: usize,
    from: usize,
    to: usize,
}

impl ChunkRows {
    /// Number of rows.
    fn len(&self) -> usize {
        self.to - self.from
    }

    /// Number of `TILE`-row workgroups that score them.
    fn tiles(&self) -> u32 {
        (self.len() as u32).div_ceil(TILE)
    }
}

/// Splits every shard of `catalog` into chunks of at most `per_chunk` rows, in order. Chunks never straddle
/// shards.
fn plan_chunks(catalog: &Catalog, per_chunk: usize) -> Vec<ChunkRows> {
    let mut plan = Vec::new();
    for (shard, s) in catalog.shards.iter().enumerate() {
        let mut from = 0;
        while from < s.len {
            let to = (from + per_chunk).min(s.len);
            plan.push(ChunkRows { shard, from, to });
            from = to;
        }
    }
    plan
}

/// The vector bytes of `rows` (`[rows, dim]` values of `elem` bytes), each row padded with zeros to
/// `row_bytes` (whole words) when it is not already that wide.
fn pack_rows(
    shard: &Shard,
    rows: ChunkRows,
    dim: usize,
    elem: usize,
    row_bytes: usize,
) -> Cow<'_, [u8]> {
    let src = &shard.rows.bytes()[rows.from * dim * elem..rows.to * dim * elem];
    if (dim * elem).is_multiple_of(4) {
        return Cow::Borrowed(src);
    }
    let mut padded = vec![0u8; rows.len() * row_bytes];
    for (r, row) in src.chunks_exact(dim * elem).enumerate() {
        padded[r * row_bytes..r * row_bytes + dim * elem].copy_from_slice(row);
    }
    Cow::Owned(padded)
}

/// The attributes of `rows`, one `[scale bits, category, price bits, popularity bits]` per row; bit 31 of
/// the category marks a row out of stock.
fn pack_attrs(shard: &Shard, rows: ChunkRows) -> Vec<[u32; 4]> {
    (rows.from..rows.to)
        .map(|r| {
            let scale = shard.scales.as_ref().map_or(1.0, |s| s[r]);
            let mut cat = shard.category.as_ref().map_or(NO_CATEGORY, |c| c[r]);
            if shard.in_stock.as_ref().is_some_and(|s| s[r] == 0) {
                cat |= 0x8000_0000;
            }
            let price = shard.price.as_ref().map_or(0.0, |p| p[r]);
            let pop = shard.popularity.as_ref().map_or(0.0, |p| p[r]);
            [scale.to_bits(), cat, price.to_bits(), pop.to_bits()]
        })
        .collect()
}

/// What every chunk's bind group shares: the device, the pipeline's layout and the request-wide buffers.
struct ChunkTarget<'a> {
    device: &'a wgpu::Device,
    layout: &'a wgpu::BindGroupLayout,
    mask: &'a wgpu::Buffer,
    req: &'a wgpu::Buffer,
    out: &'a wgpu::Buffer,
}

impl Chunk {
    /// Uploads `rows` of `catalog` (vectors padded to `row_bytes`, and attributes), and creates the chunk's
    /// params uniform and its bind group; the chunk writes its tile results from tile `out_tile` on.
    fn upload(
        target: &ChunkTarget<'_>,
        catalog: &Catalog,
        rows: ChunkRows,
        row_bytes: usize,
        out_tile: u32,
    ) -> Chunk {
        let device = target.device;
        let shard = &catalog.shards[rows.shard];
        let contents = pack_rows(
            shard,
            rows,
            catalog.dim(),
            catalog.dtype().size(),
            row_bytes,
        );
        let rows_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("rows"),
            contents: if contents.is_empty() {
                &[0; 4]
            } else {
                &contents
            },
            usage: wgpu::BufferUsages::STORAGE,
        });
        let attrs = pack_attrs(shard, rows);
        let attrs_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("attrs"),
            contents: if attrs.is_empty() {
                &[0; 16]
            } else {
                bytemuck::cast_slice(&attrs)
            },
            usage: wgpu::BufferUsages::STORAGE,
        });
        let params = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: std::mem::size_of::<ScoreTopkParams>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let bound = [
            &params,
            &rows_buf,
            &attrs_buf,
            target.mask,
            target.req,
            target.out,
        ];
        let entries: Vec<wgpu::BindGroupEntry<'_>> = bound
            .iter()
            .enumerate()
            .map(|(binding, b)| wgpu::BindGroupEntry {
                binding: binding as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(Kernel::ScoreTopk.label()),
            layout: target.layout,
            entries: &entries,
        });
        Chunk {
            start: (catalog.starts[rows.shard] + rows.from) as u32,
            rows: rows.len() as u32,
            tiles: rows.tiles(),
            out_tile,
            params,
            bind_group,
            _rows: rows_buf,
            _attrs: attrs_buf,
        }
    }
}
