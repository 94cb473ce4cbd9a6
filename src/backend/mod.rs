//! Backends: the CPU (always there) and the GPU (wgpu), for ranking ([`cpu`], [`gpu`]) and for the
//! Transformer ops ([`cpu_nn`]).

pub mod cpu;
pub mod cpu_nn;
pub mod fastmath;
pub mod gemm;
pub mod gpu;
pub mod kernels;
