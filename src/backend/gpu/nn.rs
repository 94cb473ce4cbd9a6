//! The GPU twin of the Transformer ops ([`crate::backend::cpu::nn`] is the CPU one), on wgpu.
//!
//! Every op records one compute pass into a command encoder shared by the forward pass; nothing is submitted
//! until [`NnBackend::read`], which adds the copy to a read-back buffer, submits once and awaits the mapping.
//! So a forward pass is one submission and one read-back, whatever the number of layers.
//!
//! Activations live in buffers taken from a pool keyed by size: a [`GpuTensor`] hands its buffer back when it
//! is dropped, and a later op of the same or a later pass reuses it (the queue orders the accesses). A
//! forward pass of a given shape therefore allocates only the first time. Weights are uploaded once, as f32
//! (f16 files are widened on load), so no adapter feature beyond core WebGPU is needed.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use wgpu::util::DeviceExt;

use super::context::{floats, GpuContext, Pipeline};
use super::params::{
    AttentionParams, ElementwiseParams, EmbedParams, KernelParams, LayerNormParams, LinearParams,
    PoolParams,
};
use crate::backend::kernels::{Kernel, ATTENTION_MAX_LEN};
use crate::error::{Error, Result};
use crate::model::weights::{LinearWeights, NormWeights};
use crate::model::{NnBackend, Pooling};

/// Buffers shared by the backend and its tensors.
#[derive(Default)]
struct Pool {
    /// Idle activation buffers by size in bytes.
    free: RefCell<HashMap<u64, Vec<wgpu::Buffer>>>,
    /// Set when the backend is gone: late tensors then destroy their buffers instead of pooling them.
    closed: Cell<bool>,
}

impl Pool {
    fn give_back(&self, buf: wgpu::Buffer) {
        if self.closed.get() {
            buf.destroy();
        } else {
            self.free
                .borrow_mut()
                .entry(buf.size())
                .or_default()
                .push(buf);
        }
    }
}

/// A row-major f32 `[rows, cols]` tensor in GPU memory.
pub struct GpuTensor {
    buf: wgpu::Buffer,
    rows: usize,
    cols: usize,
    pool: Rc<Pool>,
}

impl GpuTensor {
    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn cols(&self) -> usize {
        self.cols
    }

    pub(super) fn buffer(&self) -> &wgpu::Buffer {
        &self.buf
    }
}

impl Drop for GpuTensor {
    fn drop(&mut self) {
        // A handle to the same buffer: the pool's copy keeps it alive.
        self.pool.give_back(self.buf.clone());
    }
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuTensor[{}, {}]", self.rows, self.cols)
    }
}

/// A dense layer on the GPU: `W` `[out, in]` and `b` `[out]`.
#[derive(Debug)]
pub struct GpuLinear {
    w: wgpu::Buffer,
    b: wgpu::Buffer,
    out_dim: usize,
    in_dim: usize,
}

/// LayerNorm parameters on the GPU.
#[derive(Debug)]
pub struct GpuNorm {
    gamma: wgpu::Buffer,
    beta: wgpu::Buffer,
    eps: f32,
}

/// An embedding table on the GPU.
#[derive(Debug)]
pub struct GpuTable {
    buf: wgpu::Buffer,
    rows: usize,
    cols: usize,
}

/// The GPU backend for [`crate::model::Bert`].
pub struct GpuNn {
    ctx: Rc<GpuContext>,
    /// One per [`Kernel::NN`] entry, in that order.
    pipelines: Vec<Rc<Pipeline>>,
    pool: Rc<Pool>,
    /// Commands of the forward pass being recorded.
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    /// Uniform and token buffers used by the recorded commands; destroyed once they have run.
    transient: RefCell<Vec<wgpu::Buffer>>,
}

impl std::fmt::Debug for GpuNn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuNn").field("ctx", &self.ctx).finish()
    }
}

impl Drop for GpuNn {
    fn drop(&mut self) {
        self.pool.closed.set(true);
        for bufs in self.pool.free.borrow_mut().drain() {
            for b in bufs.1 {
                b.destroy();
            }
        }
        for b in self.transient.borrow_mut().drain(..) {
            b.destroy();
        }
    }
}

/// Uniform and token buffers of a submitted forward pass, destroyed when this is dropped.
pub(super) struct Transient(Vec<wgpu::Buffer>);

impl Drop for Transient {
    fn drop(&mut self) {
        for b in self.0.drain(..) {
            b.destroy();
        }
    }
}

/// Workgroups for `n` invocations of 256, folded into x and y under the 65535-per-dimension limit.
fn spread(groups: usize) -> (u32, u32) {
    let groups = groups.max(1) as u32;
    let x = groups.min(65_535);
    (x, groups.div_ceil(x))
}

impl GpuNn {
    /// Creates the Transformer pipelines on `ctx`'s device.
    pub async fn new(ctx: Rc<GpuContext>) -> Result<GpuNn> {
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipelines = Kernel::NN.iter().map(|&k| ctx.pipeline(k, &[])).collect();
        if let Some(e) = scope.pop().await {
            return Err(Error::Gpu(format!(
                "creating the Transformer pipelines: {e}"
            )));
        }
        Ok(GpuNn {
            ctx,
            pipelines,
            pool: Rc::default(),
            encoder: RefCell::new(None),
            transient: RefCell::new(Vec::new()),
        })
    }

    pub fn context(&self) -> &Rc<GpuContext> {
        &self.ctx
    }

    /// The forward pass recorded so far, not yet submitted, for other GPU work to continue in the same
    /// submission (its outputs stay on the GPU). The [`Transient`] must be dropped only after that
    /// submission has completed.
    pub(super) fn take_pending(&self) -> (Option<wgpu::CommandEncoder>, Transient) {
        let encoder = self.encoder.take();
        (
            encoder,
            Transient(std::mem::take(&mut *self.transient.borrow_mut())),
        )
    }

    fn bytes_for(&self, elements: usize) -> Result<u64> {
        let bytes = (elements as u64 * 4).max(4);
        if bytes > self.ctx.max_binding {
            return Err(Error::Gpu(format!(
                "a tensor of {elements} values exceeds the adapter's binding limit of {} bytes",
                self.ctx.max_binding
            )));
        }
        Ok(bytes)
    }

    fn alloc(&self, rows: usize, cols: usize) -> Result<GpuTensor> {
        let size = self.bytes_for(rows * cols)?;
        Ok(self.alloc_bytes(rows, cols, size))
    }

    fn alloc_bytes(&self, rows: usize, cols: usize, size: u64) -> GpuTensor {
        let reused = self
            .pool
            .free
            .borrow_mut()
            .get_mut(&size)
            .and_then(|v| v.pop());
        let buf = reused.unwrap_or_else(|| {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("activation"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        GpuTensor {
            buf,
            rows,
            cols,
            pool: self.pool.clone(),
        }
    }

    /// An output tensor; on failure (too large for a binding) an empty one, and the fault is recorded for
    /// [`NnBackend::read`] to report.
    fn output(&self, rows: usize, cols: usize) -> GpuTensor {
        match self.alloc(rows, cols) {
            Ok(t) => t,
            Err(e) => {
                self.ctx.record_fault(e.to_string());
                // Zero rows keep later ops of this pass in bounds; the read reports the fault.
                self.alloc_bytes(0, cols, 4)
            }
        }
    }

    fn weights(&self, label: &str, values: &[f32]) -> Result<wgpu::Buffer> {
        self.bytes_for(values.len())?;
        Ok(self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: if values.is_empty() {
                    &[0; 4]
                } else {
                    bytemuck::cast_slice(values)
                },
                usage: wgpu::BufferUsages::STORAGE,
            }))
    }

    fn transient(&self, label: &str, contents: &[u8], usage: wgpu::BufferUsages) -> wgpu::Buffer {
        let buf = self
            .ctx
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: if contents.is_empty() {
                    &[0; 4]
                } else {
                    contents
                },
                usage,
            });
        self.transient.borrow_mut().push(buf.clone());
        buf
    }

    /// Records one dispatch of `kernel` with uniform `params` (binding 0) and `buffers` (bindings 1..).
    fn dispatch<P: KernelParams>(
        &self,
        kernel: Kernel,
        params: &P,
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        debug_assert!(
            P::KERNELS.contains(&kernel),
            "{kernel:?} takes other params"
        );
        self.dispatch_bytes(kernel, bytemuck::bytes_of(params), buffers, groups);
    }

    /// [`GpuNn::dispatch`] with the params as bytes: one copy of the recording code for every kernel.
    fn dispatch_bytes(
        &self,
        kernel: Kernel,
        params: &[u8],
        buffers: &[&wgpu::Buffer],
        groups: (u32, u32, u32),
    ) {
        let device = &self.ctx.device;
        let at = Kernel::NN
            .iter()
            .position(|&k| k == kernel)
            .expect("a Transformer kernel");
        let Pipeline { pipeline, layout } = &*self.pipelines[at];
        let uniform = self.transient("params", params, wgpu::BufferUsages::UNIFORM);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: uniform.as_entire_binding(),
        }];
        entries.extend(
            buffers
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.as_entire_binding(),
                }),
        );
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.label()),
            layout,
            entries: &entries,
        });
        let mut slot = self.encoder.borrow_mut();
        let encoder = slot.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward"),
            })
        });
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(kernel.label()),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
    }

    fn elementwise(&self, kernel: Kernel, inputs: &[&GpuTensor]) -> GpuTensor {
        let (rows, cols) = (inputs[0].rows, inputs[0].cols);
        let out = self.output(rows, cols);
        let n = (out.rows * cols) as u32;
        let mut bufs: Vec<&wgpu::Buffer> = inputs.iter().map(|t| t.buffer()).collect();
        bufs.push(out.buffer());
        let (x, y) = spread((n as usize).div_ceil(256));
        let params = ElementwiseParams {
            n,
            ..Default::default()
        };
        self.dispatch(kernel, &params, &bufs, (x, y, 1));
        out
    }

    fn mask_buffer(&self, mask: &[u32]) -> wgpu::Buffer {
        self.transient(
            "mask",
            bytemuck::cast_slice(mask),
            wgpu::BufferUsages::STORAGE,
        )
    }
}

impl NnBackend for GpuNn {
    type Tensor = GpuTensor;
    type Linear = GpuLinear;
    type Norm = GpuNorm;
    type Table = GpuTable;

    fn upload_linear(&self, w: &LinearWeights) -> Result<GpuLinear> {
        Ok(GpuLinear {
            w: self.weights("linear.weight", &w.w)?,
            b: self.weights("linear.bias", &w.b)?,
            out_dim: w.out_dim,
            in_dim: w.in_dim,
        })
    }

    fn upload_norm(&self, n: &NormWeights, eps: f32) -> Result<GpuNorm> {
        Ok(GpuNorm {
            gamma: self.weights("norm.gamma", &n.gamma)?,
            beta: self.weights("norm.beta", &n.beta)?,
            eps,
        })
    }

    fn upload_table(&self, t: &[f32], cols: usize) -> Result<GpuTable> {
        Ok(GpuTable {
            buf: self.weights("table", t)?,
            rows: t.len() / cols.max(1),
            cols,
        })
    }

    /// Copies host values into a new tensor.
    fn tensor(&self, values: &[f32], cols: usize) -> Result<GpuTensor> {
        if cols == 0 || !values.len().is_multiple_of(cols) {
            return Err(Error::invalid(
                "values",
                format!("{} values do not make rows of {cols}", values.len()),
            ));
        }
        let t = self.alloc(values.len() / cols, cols)?;
        if !values.is_empty() {
            self.ctx
                .queue
                .write_buffer(t.buffer(), 0, bytemuck::cast_slice(values));
        }
        Ok(t)
    }

    fn max_len(&self) -> usize {
        ATTENTION_MAX_LEN
    }

    fn max_elements(&self) -> usize {
        (self.ctx.max_binding / 4) as usize
    }

    fn embed(
        &self,
        word: &GpuTable,
        position: &GpuTable,
        token_type: &GpuTable,
        ids: &[u32],
        type_ids: &[u32],
        len: usize,
    ) -> GpuTensor {
        debug_assert!(word.rows > 0 && position.rows >= len && token_type.rows > 0);
        let h = word.cols;
        let n = ids.len();
        let out = self.output(n, h);
        let tokens: Vec<u32> = ids.iter().chain(type_ids).copied().collect();
        let tokens = self.transient(
            "tokens",
            bytemuck::cast_slice(&tokens),
            wgpu::BufferUsages::STORAGE,
        );
        let (x, y) = spread((out.rows * h).div_ceil(256));
        self.dispatch(
            Kernel::Embed,
            &EmbedParams {
                n: out.rows as u32,
                hidden: h as u32,
                len: len as u32,
                _pad: 0,
            },
            &[
                &tokens,
                &word.buf,
                &position.buf,
                &token_type.buf,
                out.buffer(),
            ],
            (x, y, 1),
        );
        out
    }

    fn linear(&self, x: &GpuTensor, l: &GpuLinear) -> GpuTensor {
        debug_assert_eq!(x.cols, l.in_dim);
        let out = self.output(x.rows, l.out_dim);
        self.dispatch(
            Kernel::Linear,
            &LinearParams {
                n: out.rows as u32,
                k: l.in_dim as u32,
                m: l.out_dim as u32,
                _pad: 0,
            },
            &[x.buffer(), &l.w, &l.b, out.buffer()],
            (
                l.out_dim.div_ceil(64) as u32,
                out.rows.div_ceil(64).max(1) as u32,
                1,
            ),
        );
        out
    }

    fn layer_norm(&self, x: &GpuTensor, n: &GpuNorm) -> GpuTensor {
        let out = self.output(x.rows, x.cols);
        let (gx, gy) = spread(out.rows);
        self.dispatch(
            Kernel::LayerNorm,
            &LayerNormParams {
                rows: out.rows as u32,
                cols: x.cols as u32,
                eps: n.eps,
                _pad: 0,
            },
            &[x.buffer(), &n.gamma, &n.beta, out.buffer()],
            (gx, gy, 1),
        );
        out
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> GpuTensor {
        debug_assert_eq!((a.rows, a.cols), (b.rows, b.cols));
        self.elementwise(Kernel::Add, &[a, b])
    }

    fn gelu(&self, x: &GpuTensor) -> GpuTensor {
        self.elementwise(Kernel::Gelu, &[x])
    }

    fn attention(
        &self,
        q: &GpuTensor,
        k: &GpuTensor,
        v: &GpuTensor,
        mask: &[u32],
        batch: usize,
        heads: usize,
        causal: bool,
    ) -> GpuTensor {
        let (n, hidden) = (q.rows, q.cols);
        let out = self.output(n, hidden);
        let len = n / batch.max(1);
        let dh = hidden / heads.max(1);
        if out.rows == 0 || len == 0 {
            return out;
        }
        let mask = self.mask_buffer(mask);
        self.dispatch(
            Kernel::Attention,
            &AttentionParams {
                len: len as u32,
                hidden: hidden as u32,
                dh: dh as u32,
                causal: causal as u32,
                scale: (dh as f32).sqrt(),
                ..Default::default()
            },
            &[q.buffer(), k.buffer(), v.buffer(), &mask, out.buffer()],
            (len as u32, heads as u32, batch as u32),
        );
        out
    }

    fn pool(
        &self,
        x: &GpuTensor,
        mask: &[u32],
        batch: usize,
        pooling: Pooling,
        normalize: bool,
    ) -> GpuTensor {
        let out = self.output(batch, x.cols);
        if x.rows == 0 || out.rows == 0 {
            return out;
        }
        let mask = self.mask_buffer(mask);
        let pooling = match pooling {
            Pooling::Mean => 0,
            Pooling::Cls => 1,
            Pooling::Last => 2,
        };
        self.dispatch(
            Kernel::Pool,
            &PoolParams {
                len: (x.rows / batch) as u32,
                hidden: x.cols as u32,
                pooling,
                normalize: normalize as u32,
            },
            &[x.buffer(), &mask, out.buffer()],
            (batch as u32, 1, 1),
        );
        out
    }

    async fn read(&self, x: &GpuTensor) -> Result<Vec<f32>> {
        let encoder = self.encoder.take().unwrap_or_else(|| {
            self.ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("read"),
                })
        });
        let used = std::mem::take(&mut *self.transient.borrow_mut());
        let n = x.rows * x.cols;
        let values = self
            .ctx
            .read_back(encoder, &[(x.buffer(), (n * 4) as u64)], "a tensor", |b| {
                floats(b[0])
            })
            .await;
        for b in used {
            b.destroy();
        }
        values
    }
}
