//! [`GpuContext`]: one adapter, device and queue, shared by everything a loaded recommender runs on the GPU
//! (the text encoder, the interest model and ranking), with the one pipeline cache and the one read-back
//! path of the GPU backend.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::kernels::Kernel;
use crate::error::{Error, Result};

/// Largest single buffer binding shelfwise creates, whatever the adapter allows.
pub const MAX_BINDING_BYTES: u64 = 128 << 20;

/// Devices created by [`GpuContext::new`] in this process (see [`GpuContext::devices_created`]).
static DEVICES_CREATED: AtomicUsize = AtomicUsize::new(0);
/// Round trips through [`GpuContext::read_back`] in this process (see [`GpuContext::read_backs`]).
static READ_BACKS: AtomicUsize = AtomicUsize::new(0);

/// A compute pipeline and the layout of its bind group 0.
#[derive(Debug)]
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Pipelines by kernel and `override` constants (as bit patterns, so the key is hashable).
type PipelineKey = (Kernel, Vec<(&'static str, u64)>);

/// A device and queue, with what the adapter reported. Shared by reference counting: the device is
/// destroyed when the last user lets go.
pub struct GpuContext {
    pub(super) device: wgpu::Device,
    pub(super) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    pub(super) max_binding: u64,
    /// First uncaptured error, or device loss, reported by wgpu.
    fault: Arc<Mutex<Option<String>>>,
    pipelines: RefCell<HashMap<PipelineKey, Rc<Pipeline>>>,
    /// Idle read-back buffers by size in bytes; overlapping reads each take their own.
    staging: RefCell<HashMap<u64, Vec<wgpu::Buffer>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .finish()
    }
}

impl Drop for GpuContext {
    /// Frees the device now rather than when the browser collects the JS objects (wgpu's WebGPU objects do
    /// nothing on drop).
    fn drop(&mut self) {
        for bufs in self.staging.get_mut().drain() {
            for b in bufs.1 {
                b.destroy();
            }
        }
        self.device.destroy();
    }
}

impl GpuContext {
    /// Requests an adapter and a device. Fails with [`Error::GpuUnavailable`] when there is none.
    pub async fn new() -> Result<Rc<GpuContext>> {
        let instance = wgpu::Instance::default();
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::GpuUnavailable(e.to_string()))?;
        let info = adapter.get_info();
        let alimits = adapter.limits();
        let mut limits = wgpu::Limits::downlevel_defaults();
        limits.max_storage_buffer_binding_size = alimits
            .max_storage_buffer_binding_size
            .min(MAX_BINDING_BYTES);
        limits.max_buffer_size = alimits.max_buffer_size.min(MAX_BINDING_BYTES);
        limits.max_compute_workgroup_storage_size =
            alimits.max_compute_workgroup_storage_size.min(16384);
        limits.max_storage_buffers_per_shader_stage =
            alimits.max_storage_buffers_per_shader_stage.min(8);
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("shelfwise"),
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::GpuUnavailable(format!("{}: {e}", info.name)))?;
        DEVICES_CREATED.fetch_add(1, Ordering::Relaxed);
        let fault: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let mut slot = f.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| format!("device lost ({reason:?}): {msg}"));
        });
        Ok(Rc::new(GpuContext {
            device,
            queue,
            info,
            max_binding: limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size),
            fault,
            pipelines: RefCell::default(),
            staging: RefCell::default(),
        }))
    }

    /// How many GPU devices this process has created so far: a test counts them to check that one loaded
    /// recommender makes exactly one.
    #[doc(hidden)]
    pub fn devices_created() -> usize {
        DEVICES_CREATED.load(Ordering::Relaxed)
    }

    /// How many times this process has waited for GPU results to reach the host: a test counts them to
    /// check that the interest vector reaches ranking without a round trip of its own.
    #[doc(hidden)]
    pub fn read_backs() -> usize {
        READ_BACKS.load(Ordering::Relaxed)
    }

    /// The adapter's name and driver, for display.
    pub fn adapter_name(&self) -> String {
        let name = if self.info.name.is_empty() {
            "unnamed adapter"
        } else {
            &self.info.name
        };
        let kind = match self.info.device_type {
            wgpu::DeviceType::Cpu => "software",
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Other => "other",
        };
        format!("{name} ({kind}, {:?})", self.info.backend)
    }

    /// Whether the adapter is a software rasteriser (SwiftShader, lavapipe): correct, but no speed figure.
    pub fn is_software(&self) -> bool {
        let name = format!("{} {}", self.info.name, self.info.driver).to_lowercase();
        self.info.device_type == wgpu::DeviceType::Cpu
            || ["swiftshader", "llvmpipe", "lavapipe"]
                .iter()
                .any(|s| name.contains(s))
    }

    /// Destroys the device, as a lost GPU would (tests of the fallback path). Later work reports
    /// `GPU_ERROR`.
    #[doc(hidden)]
    pub fn destroy_device(&self) {
        self.record_fault("the device was destroyed".into());
        self.device.destroy();
    }

    /// Keeps `msg` as the context's fault unless one is already there.
    pub(super) fn record_fault(&self, msg: String) {
        let mut slot = self.fault.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(msg);
    }

    pub(super) fn check_fault(&self) -> Result<()> {
        match self
            .fault
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(msg) => Err(Error::Gpu(msg.clone())),
            None => Ok(()),
        }
    }

    /// The pipeline of `kernel` with `constants` (its `override` values), created on first use and cached
    /// for the context's life. Creation errors surface through the caller's error scope.
    pub(super) fn pipeline(
        &self,
        kernel: Kernel,
        constants: &[(&'static str, f64)],
    ) -> Rc<Pipeline> {
        let key = (
            kernel,
            constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        );
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return p.clone();
        }
        let module = self
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.label()),
                source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.label()),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
        let layout = pipeline.get_bind_group_layout(0);
        let p = Rc::new(Pipeline { pipeline, layout });
        self.pipelines.borrow_mut().insert(key, p.clone());
        p
    }

    /// Adds a copy of each `(buffer, bytes)` source's first `bytes` to `encoder`, submits it, waits
    /// (asynchronously) for the copies, and returns `read(parts)` of what arrived, one slice per source. The
    /// one way GPU results reach the host: one submit and one mapping, however many sources.
    pub(super) async fn read_back<T>(
        &self,
        mut encoder: wgpu::CommandEncoder,
        sources: &[(&wgpu::Buffer, u64)],
        what: &str,
        read: impl FnOnce(&[&[u8]]) -> T,
    ) -> Result<T> {
        READ_BACKS.fetch_add(1, Ordering::Relaxed);
        let total: u64 = sources.iter().map(|s| s.1).sum();
        // Sizes round up to a power of two, so a long session keeps few idle buffers.
        let size = total.max(256).next_power_of_two();
        let staging = self
            .staging
            .borrow_mut()
            .get_mut(&size)
            .and_then(Vec::pop)
            .unwrap_or_else(|| {
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
        let mut at = 0;
        for &(src, bytes) in sources {
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(src, 0, &staging, at, bytes);
            }
            at += bytes;
        }
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.poll();
        let mapped = rx.await;
        let out = (|| {
            self.check_fault()?;
            match mapped {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Error::Gpu(format!("reading {what} back: {e}"))),
                Err(_) => return Err(Error::Gpu("the device went away during read-back".into())),
            }
            let view = staging
                .get_mapped_range(..)
                .map_err(|e| Error::Gpu(format!("reading {what} back: {e}")))?;
            let mut parts = Vec::with_capacity(sources.len());
            let mut at = 0;
            for &(_, bytes) in sources {
                parts.push(&view[at as usize..(at + bytes) as usize]);
                at += bytes;
            }
            let out = read(&parts);
            drop(parts);
            drop(view);
            Ok(out)
        })();
        if out.is_ok() {
            staging.unmap();
            let mut idle = self.staging.borrow_mut();
            let same = idle.entry(size).or_default();
            if same.len() < 4 {
                same.push(staging);
            } else {
                staging.destroy();
            }
        } else {
            staging.destroy();
        }
        out
    }

    /// Blocks natively until submitted work is done; a no-op in the browser, whose event loop drives
    /// callbacks.
    fn poll(&self) {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = self.device.poll(wgpu::PollType::wait_indefinitely());
        }
    }
}

/// Read-back bytes as f32 values (copied, so the bytes need no particular alignment).
pub(super) fn floats(bytes: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(bytes)
}
