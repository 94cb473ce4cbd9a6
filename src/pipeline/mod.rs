//! The pipelines that compose the stages: [`Index`] (ranking alone), [`Embedder`] (a text encoder alone)
//! and [`Recommender`] (a whole bundle: text encoder, interest model, ranking and reasons). This is the
//! layer that turns a [`crate::device::DeviceChoice`] into backends, once per loaded object.

pub mod embedder;
pub mod index;
pub mod recommender;

pub use embedder::{Embedder, LoadTimings};
pub use index::Index;
pub use recommender::{
    Profile, Reason, Recommendations, Recommended, Recommender, SessionEvent, StageTimings,
};
