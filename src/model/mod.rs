//! The Transformer models: BERT-family encoders described once ([`bert::Bert`]), the text encoder
//! ([`TextEncoder`]) and the interest model ([`InterestModel`]), written against [`NnBackend`] and never
//! against a particular backend. The backends (`crate::backend`) implement every op twice, on the CPU and
//! on the GPU, and are tested against each other.

pub mod bert;
pub mod config;
mod init;
pub mod interest;
pub mod text;
pub mod weights;

pub use bert::Bert;
pub use config::{EngineOptions, ModelConfig, Pooling};
pub use interest::{InterestModel, Step, StepInput};
pub use text::{EncoderFiles, ModelFiles, TextEncoder};
pub use weights::BertWeights;

use crate::error::Result;
use weights::{LinearWeights, NormWeights};

/// The operations a BERT forward pass needs. Tensors are row-major f32 `[rows, cols]`.
pub trait NnBackend {
    type Tensor;
    type Linear;
    type Norm;
    type Table;

    fn upload_linear(&self, w: &LinearWeights) -> Result<Self::Linear>;
    fn upload_norm(&self, n: &NormWeights, eps: f32) -> Result<Self::Norm>;
    /// A `[rows, cols]` lookup table.
    fn upload_table(&self, t: &[f32], cols: usize) -> Result<Self::Table>;
    /// Host values as a `[values.len() / cols, cols]` tensor.
    fn tensor(&self, values: &[f32], cols: usize) -> Result<Self::Tensor>;

    /// Longest sequence the backend's attention takes.
    fn max_len(&self) -> usize {
        usize::MAX
    }

    /// Most values one tensor may hold; [`crate::model::Bert::embed`] splits larger batches.
    fn max_elements(&self) -> usize {
        usize::MAX
    }

    /// `word[ids] + position[0..len] + token_type[type_ids]`: `[batch * len, hidden]`.
    fn embed(
        &self,
        word: &Self::Table,
        position: &Self::Table,
        token_type: &Self::Table,
        ids: &[u32],
        type_ids: &[u32],
        len: usize,
    ) -> Self::Tensor;
    /// `x [n, in] -> x W^T + b [n, out]`.
    fn linear(&self, x: &Self::Tensor, l: &Self::Linear) -> Self::Tensor;
    /// Row-wise LayerNorm: `[n, h] -> [n, h]`.
    fn layer_norm(&self, x: &Self::Tensor, n: &Self::Norm) -> Self::Tensor;
    /// Element-wise `a + b`.
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Self::Tensor;
    /// Exact GELU, `0.5 x (1 + erf(x / sqrt 2))`.
    fn gelu(&self, x: &Self::Tensor) -> Self::Tensor;
    /// Multi-head self-attention on projected `q, k, v` (`[batch * len, hidden]` each): softmax of
    /// `q k^T / sqrt(head_dim)` over keys, padding keys (`mask == 0`) and, when `causal`, later keys excluded.
    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        q: &Self::Tensor,
        k: &Self::Tensor,
        v: &Self::Tensor,
        mask: &[u32],
        batch: usize,
        heads: usize,
        causal: bool,
    ) -> Self::Tensor;
    /// `[batch * len, hidden] -> [batch, hidden]`, pooled over real tokens, optionally L2-normalised.
    fn pool(
        &self,
        x: &Self::Tensor,
        mask: &[u32],
        batch: usize,
        pooling: Pooling,
        normalize: bool,
    ) -> Self::Tensor;
    /// The tensor's values, row-major.
    fn read(&self, x: &Self::Tensor) -> impl std::future::Future<Output = Result<Vec<f32>>>;
}
