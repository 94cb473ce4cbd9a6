//! Where work runs: the caller's [`DeviceChoice`] and the one `auto` policy that turns it, with the size of
//! the work, into a [`Placement`]. Pure data and rules: opening a GPU is the backend's job
//! ([`crate::backend::open_gpu`]), and one loaded recommender opens at most one.

use crate::error::{Error, Result};

/// Which device to run on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The GPU for the stages whose size makes it pay ([`DeviceChoice::placement`]) on a hardware adapter;
    /// the CPU otherwise, and whenever no adapter or device can be had.
    #[default]
    Auto,
    /// The GPU for every stage, or [`Error::GpuUnavailable`].
    Gpu,
    /// The CPU.
    Cpu,
}

/// Below this many items, `auto` ranks on the CPU: a scan there takes well under a millisecond, less than
/// one GPU submit-and-read-back round trip.
pub const AUTO_GPU_MIN_ITEMS: usize = 1 << 20;

/// Per-pass work (layers x positions x width^2) from which `auto` runs the interest model on a hardware
/// GPU. Measured natively on an H100 (`cargo bench --bench interest`), an interest-model pass on the GPU
/// takes 1.2 to 1.4 ms up to 1.6M of work, while one CPU thread (what the wasm path has) takes 1.75 ms at
/// 0.4M (the default model, 2 x 50 x 64^2), 4.1 ms at 1.6M and 9.0 ms at 6.6M. The wasm CPU path in
/// Chromium takes 1.2 to 1.6 ms for the default model. So the GPU's lead starts near 1M; below it, a
/// browser's extra cost per GPU round trip (not measured: no browser ran on that GPU) would eat the gain.
/// BENCHMARKS.md has the figures.
pub const AUTO_GPU_MODEL_WORK: usize = 1_000_000;

/// The size of what is about to be loaded, which `auto` weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// Items to rank (0: no ranking).
    pub items: usize,
    /// Per-pass work of the interest model, layers x positions x width^2 (0: no interest model).
    pub model_work: usize,
    /// A text encoder loaded on its own (the standalone embedder): its layers are wide enough that any
    /// hardware GPU pays.
    pub text_encoder: bool,
}

/// Which stages run on the GPU. The text encoder of a bundle runs where its interest model runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// The Transformer models (the interest model and the text encoder).
    pub models: bool,
    /// Ranking.
    pub ranking: bool,
}

impl Placement {
    /// Whether any stage wants the GPU.
    pub fn any(self) -> bool {
        self.models || self.ranking
    }
}

impl DeviceChoice {
    /// Parses `"auto"`, `"webgpu"` (or `"gpu"`) or `"cpu"`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "webgpu" | "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => Err(Error::invalid(
                "device",
                format!("`{}` is not auto, webgpu or cpu", prefix(other, 40)),
            )),
        }
    }

    /// Which stages of `work` this choice puts on the GPU, when a usable one exists.
    pub fn placement(self, work: Workload) -> Placement {
        match self {
            DeviceChoice::Cpu => Placement::default(),
            DeviceChoice::Gpu => Placement {
                models: work.model_work > 0 || work.text_encoder,
                ranking: work.items > 0,
            },
            DeviceChoice::Auto => Placement {
                models: work.text_encoder || work.model_work >= AUTO_GPU_MODEL_WORK,
                ranking: work.items >= AUTO_GPU_MIN_ITEMS,
            },
        }
    }

    /// Whether an adapter may be used: `auto` turns down software rasterisers (SwiftShader, lavapipe),
    /// which are slower than the SIMD CPU path.
    pub fn accepts(self, software_adapter: bool) -> bool {
        !(self == DeviceChoice::Auto && software_adapter)
    }

    /// Whether a missing or failing GPU is an error rather than a reason to use the CPU.
    pub fn requires_gpu(self) -> bool {
        self == DeviceChoice::Gpu
    }
}

/// The longest prefix of `s` of at most `max` characters.
fn prefix(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_weighs_each_stage_on_its_own() {
        let small = Workload {
            items: 1682,
            model_work: 2 * 50 * 64 * 64,
            text_encoder: false,
        };
        assert!(!DeviceChoice::Auto.placement(small).any());
        let big_model = Workload {
            model_work: AUTO_GPU_MODEL_WORK,
            ..small
        };
        assert_eq!(
            DeviceChoice::Auto.placement(big_model),
            Placement {
                models: true,
                ranking: false
            }
        );
        let big_catalogue = Workload {
            items: AUTO_GPU_MIN_ITEMS,
            ..small
        };
        assert_eq!(
            DeviceChoice::Auto.placement(big_catalogue),
            Placement {
                models: false,
                ranking: true
            }
        );
        let encoder = Workload {
            text_encoder: true,
            ..Workload::default()
        };
        assert!(DeviceChoice::Auto.placement(encoder).models);
        assert!(!DeviceChoice::Auto.placement(encoder).ranking);
    }

    #[test]
    fn gpu_and_cpu_are_all_or_nothing() {
        let w = Workload {
            items: 10,
            model_work: 10,
            text_encoder: false,
        };
        let all = DeviceChoice::Gpu.placement(w);
        assert!(all.models && all.ranking);
        assert!(!DeviceChoice::Cpu.placement(w).any());
        assert!(DeviceChoice::Gpu.requires_gpu() && !DeviceChoice::Auto.requires_gpu());
        assert!(!DeviceChoice::Auto.accepts(true) && DeviceChoice::Gpu.accepts(true));
    }

    #[test]
    fn parse_names_the_bad_value_briefly() {
        assert_eq!(DeviceChoice::parse("webgpu").unwrap(), DeviceChoice::Gpu);
        let e = DeviceChoice::parse(&"x".repeat(1000))
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{e}");
    }
}
