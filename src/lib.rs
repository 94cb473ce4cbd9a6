//! # shelfwise
//!
//! On-device recommendations for web storefronts. This crate is the engine: it loads item shards
//! (safetensors files of item embeddings and attributes), and ranks them exactly, with filters, boosts,
//! diversity and per-category caps, on WebGPU compute shaders or on a SIMD CPU path that gives the same
//! results.
//!
//! The same crate builds the wasm module (`src/wasm/`, the only place that touches JS) and the native
//! library that the CLI, the tests and the benchmarks link.
//!
//! ```no_run
//! # async fn demo(shard_bytes: Vec<u8>) -> shelfwise::Result<()> {
//! use shelfwise::{Catalog, DeviceChoice, Index, SearchOptions, Shard};
//!
//! let shard = Shard::from_bytes("items.safetensors", &shard_bytes)?;
//! let index = Index::new(Catalog::from_shards(vec![shard])?, DeviceChoice::Auto).await?;
//! let query = vec![0.1f32; index.catalog().dim()];
//! let opts = SearchOptions { k: 5, in_stock_only: true, ..Default::default() };
//! let result = index.search(&query, &opts).await?;
//! for (id, score) in result.ids.iter().zip(&result.scores) {
//!     println!("{id}: {score}");
//! }
//! # Ok(()) }
//! ```

pub mod backend;
pub mod catalog;
pub mod device;
pub mod error;
pub mod events;
pub mod model;
pub mod pipeline;
pub mod profile;
pub mod rank;
pub mod rng;
pub mod shard;
pub mod tokenize;

#[cfg(target_arch = "wasm32")]
pub mod wasm;

pub use catalog::{Catalog, Manifest, ShardEntry};
pub use device::DeviceChoice;
pub use error::{Error, Result};
pub use pipeline::{Embedder, Index, Recommender};
pub use rank::{Backend, SearchOptions, SearchResult, Timings};
pub use shard::{write_shard, Attributes, Dtype, Shard, ShardSpec};
