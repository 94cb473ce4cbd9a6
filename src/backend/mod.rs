//! Backends: the CPU (always there) and the GPU (wgpu), each implementing the Transformer ops
//! ([`crate::model::NnBackend`]: [`cpu::CpuNn`], [`gpu::nn::GpuNn`]) and ranking
//! ([`crate::rank::RankBackend`]: [`cpu::CpuRank`], [`gpu::GpuIndex`]).
//!
//! The pipeline layer picks a backend once per loaded recommender ([`open_gpu`], [`OnBackend`]); the
//! model and ranking layers are written against the traits and never name a backend.

use std::rc::Rc;

use crate::device::{DeviceChoice, Placement};
use crate::error::Result;

pub mod cpu;
pub mod gpu;
pub mod kernels;

use gpu::GpuContext;

/// The one GPU context for work placed as `placement` under `choice`: `None` when no stage wants the GPU,
/// or when `auto` finds no usable adapter (none, or a software one). Only [`DeviceChoice::Gpu`] turns a
/// missing GPU into an error.
pub async fn open_gpu(
    choice: DeviceChoice,
    placement: Placement,
) -> Result<Option<Rc<GpuContext>>> {
    if !placement.any() {
        return Ok(None);
    }
    match GpuContext::new().await {
        Ok(ctx) if choice.accepts(ctx.is_software()) => Ok(Some(ctx)),
        Ok(_) => Ok(None),
        Err(e) if choice.requires_gpu() => Err(e),
        Err(_) => Ok(None),
    }
}

/// A value built on the CPU backend or on the GPU one. The pipeline keeps its models in this and enters
/// their backend-generic code through [`on_backend!`](crate::on_backend), the one place the two meet.
pub enum OnBackend<C, G> {
    Cpu(C),
    Gpu(G),
}

impl<C, G> OnBackend<C, G> {
    /// Which backend the value lives on.
    pub fn backend(&self) -> crate::rank::Backend {
        match self {
            OnBackend::Cpu(_) => crate::rank::Backend::Cpu,
            OnBackend::Gpu(_) => crate::rank::Backend::WebGpu,
        }
    }
}

/// `on_backend!(value, m => expr)`: `expr` with `m` bound to the CPU or the GPU variant of an
/// [`OnBackend`] (by reference), written once for both.
#[macro_export]
macro_rules! on_backend {
    ($value:expr, $m:ident => $body:expr) => {
        match $value {
            $crate::backend::OnBackend::Cpu($m) => $body,
            $crate::backend::OnBackend::Gpu($m) => $body,
        }
    };
}
