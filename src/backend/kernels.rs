//! The table of WGSL kernels. Each kernel is one file in `shaders/`, and the file name is its label.
//!
//! This module holds only the sources, so `cargo test` can validate every shader with naga on any machine,
//! GPU or not.

/// A compute kernel of shelfwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Scores a chunk of rows, filters them and keeps each tile's best `k`.
    ScoreTopk,
}

impl Kernel {
    /// Every kernel, for validation and warm-up.
    pub const ALL: &'static [Kernel] = &[Kernel::ScoreTopk];

    /// The pipeline label, which is also the file name in `shaders/` without `.wgsl`.
    pub fn label(self) -> &'static str {
        match self {
            Kernel::ScoreTopk => "score_topk",
        }
    }

    /// WGSL source.
    pub fn source(self) -> &'static str {
        match self {
            Kernel::ScoreTopk => include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/shaders/score_topk.wgsl"
            )),
        }
    }

    /// Names and allowed values of the kernel's `override` constants.
    pub fn overrides(self) -> &'static [(&'static str, &'static [f64])] {
        match self {
            // DTYPE: 0 = f32, 1 = f16, 2 = int8.
            Kernel::ScoreTopk => &[("DTYPE", &[0.0, 1.0, 2.0])],
        }
    }
}

/// Rows per workgroup tile of `score_topk` (`TILE` in the shader).
pub const TILE: u32 = 1024;
/// Largest `k` (candidates per tile) the GPU path serves; larger requests run on the CPU.
pub const GPU_MAX_K: usize = 256;
