//! Support for the shelfwise fuzz targets: the per-target checks ([`checks`], shared with the root
//! crate's `tests/fuzz_regressions.rs`) and the tiny bundle they load.

pub mod checks;

/// The bytes of one file of the committed tiny bundle (`fuzz/bundle/`), by the name its manifest uses.
/// A macro so that only the targets that use it embed the bundle (and `gen_seeds`, which writes it, builds
/// without it).
#[macro_export]
macro_rules! bundle_file {
    ($name:expr) => {
        match $name {
            "manifest.json" => Some(
                &include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/bundle/manifest.json"))[..],
            ),
            "shard-000.safetensors" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/shard-000.safetensors"
                ))[..],
            ),
            "interest/config.json" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/interest/config.json"
                ))[..],
            ),
            "interest/model.safetensors" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/interest/model.safetensors"
                ))[..],
            ),
            "encoder/config.json" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/encoder/config.json"
                ))[..],
            ),
            "encoder/model.safetensors" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/encoder/model.safetensors"
                ))[..],
            ),
            "encoder/tokenizer.json" => Some(
                &include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/bundle/encoder/tokenizer.json"
                ))[..],
            ),
            _ => None,
        }
    };
}
