//! The CPU backend: ranking ([`rank`]: a SIMD scan, [`CpuRank`]) and the Transformer ops ([`nn`]:
//! [`CpuNn`], on packed SIMD matrix products in [`gemm`]). Always there: the runtime path where WebGPU is
//! missing or does not pay, and the oracle every GPU kernel is tested against.

pub mod fastmath;
pub mod gemm;
pub mod nn;
pub mod rank;

pub use nn::CpuNn;
pub use rank::CpuRank;
