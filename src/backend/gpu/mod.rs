//! The GPU backend on wgpu: WebGPU in the browser, Vulkan natively. The only module that names `wgpu`.
//!
//! One [`GpuContext`] (device, queue, pipeline cache, read-back) per loaded recommender is shared by the
//! Transformer ops ([`nn::GpuNn`]) and ranking ([`GpuIndex`]).

mod context;
pub mod nn;
mod params;
mod rank;

pub use context::{GpuContext, Pipeline, MAX_BINDING_BYTES};
pub use rank::GpuIndex;
