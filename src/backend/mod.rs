//! Backends that score a [`Plan`](crate::rank::Plan): the CPU (always there) and the GPU (wgpu).

pub mod cpu;
pub mod gpu;
pub mod kernels;
