//! The table of WGSL kernels. Each kernel is one file in `shaders/`, and the file name is its label.
//!
//! This module holds only the sources, so `cargo test` can validate every shader with naga on any machine,
//! GPU or not.

/// A compute kernel of shelfwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Scores a chunk of rows, filters them and keeps each tile's best `k`.
    ScoreTopk,
    /// Word + token type + position embeddings.
    Embed,
    /// `x W^T + b`.
    Linear,
    /// Row-wise LayerNorm.
    LayerNorm,
    /// Element-wise sum.
    Add,
    /// Exact (erf) GELU.
    Gelu,
    /// Multi-head self-attention with padding and causal masks.
    Attention,
    /// Mean, CLS or last-token pooling, optionally L2-normalised.
    Pool,
}

impl Kernel {
    /// Every kernel, for validation and warm-up: ranking's, then the Transformer's.
    pub const ALL: &'static [Kernel] = &{
        let mut all = [Kernel::ScoreTopk; 1 + Kernel::NN.len()];
        let mut i = 0;
        while i < Kernel::NN.len() {
            all[i + 1] = Kernel::NN[i];
            i += 1;
        }
        all
    };

    /// The Transformer kernels, built by the neural-network backend.
    pub const NN: &'static [Kernel] = &[
        Kernel::Embed,
        Kernel::Linear,
        Kernel::LayerNorm,
        Kernel::Add,
        Kernel::Gelu,
        Kernel::Attention,
        Kernel::Pool,
    ];

    /// The pipeline label, which is also the file name in `shaders/` without `.wgsl`.
    pub fn label(self) -> &'static str {
        match self {
            Kernel::ScoreTopk => "score_topk",
            Kernel::Embed => "embed",
            Kernel::Linear => "linear",
            Kernel::LayerNorm => "layer_norm",
            Kernel::Add => "add",
            Kernel::Gelu => "gelu",
            Kernel::Attention => "attention",
            Kernel::Pool => "pool",
        }
    }

    /// WGSL source.
    pub fn source(self) -> &'static str {
        macro_rules! shader {
            ($name:literal) => {
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/shaders/",
                    $name,
                    ".wgsl"
                ))
            };
        }
        match self {
            Kernel::ScoreTopk => shader!("score_topk"),
            Kernel::Embed => shader!("embed"),
            Kernel::Linear => shader!("linear"),
            Kernel::LayerNorm => shader!("layer_norm"),
            Kernel::Add => shader!("add"),
            Kernel::Gelu => shader!("gelu"),
            Kernel::Attention => shader!("attention"),
            Kernel::Pool => shader!("pool"),
        }
    }

    /// Names and allowed values of the kernel's `override` constants.
    pub fn overrides(self) -> &'static [(&'static str, &'static [f64])] {
        match self {
            // DTYPE: 0 = f32, 1 = f16, 2 = int8.
            Kernel::ScoreTopk => &[("DTYPE", &[0.0, 1.0, 2.0])],
            _ => &[],
        }
    }
}

/// Rows per workgroup tile of `score_topk` (`TILE` in the shader).
pub const TILE: u32 = 1024;
/// Largest `k` (candidates per tile) the GPU path serves; larger requests run on the CPU.
pub const GPU_MAX_K: usize = 256;

/// Longest sequence the `attention` kernel takes (`MAX_LEN` in the shader).
pub const ATTENTION_MAX_LEN: usize = 1024;
