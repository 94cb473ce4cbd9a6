//! The one error type of the shelfwise core.
//!
//! Every variant maps to a stable, machine-readable [`Error::code`]. The JS shell turns an [`Error`] into a
//! JS `Error` whose `code` property carries that string, so storefront code can branch on it.

/// Everything that can go wrong in shelfwise.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shard file is not valid safetensors (truncated, corrupt header, overlapping tensors).
    #[error("shard `{shard}` is not a valid safetensors file: {reason}")]
    CorruptShard { shard: String, reason: String },

    /// A tensor the format requires is absent.
    #[error("shard `{shard}` has no tensor `{tensor}`")]
    MissingTensor { shard: String, tensor: &'static str },

    /// A tensor has the wrong shape.
    #[error("shard `{shard}`: tensor `{tensor}` has shape {found:?}, expected {expected}")]
    TensorShape {
        shard: String,
        tensor: &'static str,
        expected: String,
        found: Vec<usize>,
    },

    /// A tensor has the wrong element type.
    #[error("shard `{shard}`: tensor `{tensor}` has dtype {found}, expected {expected}")]
    TensorDtype {
        shard: String,
        tensor: &'static str,
        expected: &'static str,
        found: String,
    },

    /// A tensor holds values the format forbids (NaN, infinity, bad offsets, invalid UTF-8, ...).
    #[error("shard `{shard}`: tensor `{tensor}` is invalid at element {index}: {reason}")]
    InvalidTensor {
        shard: String,
        tensor: &'static str,
        index: usize,
        reason: String,
    },

    /// The shard's `__metadata__` is missing a key or has a bad value.
    #[error("shard `{shard}`: metadata `{key}` {reason}")]
    Metadata {
        shard: String,
        key: &'static str,
        reason: String,
    },

    /// `manifest.json` is malformed or inconsistent.
    #[error("manifest: {0}")]
    Manifest(String),

    /// A file's bytes do not match the checksum or size the manifest records.
    #[error("`{file}` does not match the manifest: expected {what} {expected}, found {found}")]
    Integrity {
        file: String,
        what: &'static str,
        expected: String,
        found: String,
    },

    /// Shards (or a query) disagree on the embedding dimension.
    #[error("dimension mismatch in {context}: expected {expected}, found {found}")]
    Dimension {
        context: String,
        expected: usize,
        found: usize,
    },

    /// Shards of one catalogue disagree on their element type or model.
    #[error("shard `{shard}` does not belong with the others: {reason}")]
    ShardMismatch { shard: String, reason: String },

    /// The same item id appears twice in one catalogue.
    #[error("item id `{0}` appears more than once in the catalogue")]
    DuplicateId(String),

    /// The catalogue has no items at all.
    #[error("the catalogue has no items")]
    EmptyIndex,

    /// A query vector contains NaN or infinity, or is otherwise unusable.
    #[error("invalid query: {0}")]
    InvalidQuery(String),

    /// An item id the catalogue does not have, where one is required.
    #[error("no item `{0}` in the catalogue")]
    UnknownItem(String),

    /// An option is out of range or inconsistent.
    #[error("invalid option `{name}`: {reason}")]
    InvalidArgument { name: &'static str, reason: String },

    /// A filter or boost names a category the catalogue does not have.
    #[error("unknown category id {id} (the catalogue has {count} categories)")]
    UnknownCategory { id: u32, count: u32 },

    /// A filter needs a per-item attribute that some shard does not carry.
    #[error(
        "filter `{filter}` needs the `{attribute}` attribute, which shard `{shard}` does not have"
    )]
    MissingAttribute {
        filter: &'static str,
        attribute: &'static str,
        shard: String,
    },

    /// WebGPU (or Vulkan natively) is not available: no adapter or no device.
    #[error("GPU unavailable: {0}")]
    GpuUnavailable(String),

    /// The GPU reported an error while loading or running a kernel.
    #[error("GPU error: {0}")]
    Gpu(String),

    /// The index was used before it finished loading.
    #[error("the index is not loaded yet: await ItemIndex.load(...) first")]
    NotLoaded,

    /// The index was used after `dispose()`.
    #[error("the index has been disposed")]
    Disposed,

    /// `tokenizer.json` is invalid, or the tokenizer failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// `config.json` is malformed or describes an unsupported model.
    #[error("model config: {0}")]
    Config(String),

    /// The weights file does not match the config: a missing tensor, a wrong shape or dtype.
    #[error("weights `{file}`: tensor `{tensor}` {problem}")]
    Weights {
        file: String,
        tensor: String,
        problem: String,
    },

    /// Token ids or inputs the model cannot take (ids past the vocabulary, a batch longer than the
    /// positions).
    #[error("invalid model input: {0}")]
    ModelInput(String),

    /// A download failed.
    #[error("could not fetch `{url}`: {reason}")]
    Fetch { url: String, reason: String },
}

impl Error {
    /// A short, stable identifier for this kind of error. Storefront code may match on it; it never changes
    /// for an existing variant.
    pub fn code(&self) -> &'static str {
        match self {
            Error::CorruptShard { .. } => "CORRUPT_SHARD",
            Error::MissingTensor { .. } => "MISSING_TENSOR",
            Error::TensorShape { .. } => "SHAPE_MISMATCH",
            Error::TensorDtype { .. } => "DTYPE_MISMATCH",
            Error::InvalidTensor { .. } => "INVALID_TENSOR",
            Error::Metadata { .. } => "BAD_METADATA",
            Error::Manifest(_) => "BAD_MANIFEST",
            Error::Integrity { .. } => "INTEGRITY",
            Error::Dimension { .. } => "DIM_MISMATCH",
            Error::ShardMismatch { .. } => "SHARD_MISMATCH",
            Error::DuplicateId(_) => "DUPLICATE_ID",
            Error::EmptyIndex => "EMPTY_INDEX",
            Error::InvalidQuery(_) => "INVALID_QUERY",
            Error::UnknownItem(_) => "UNKNOWN_ITEM",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::UnknownCategory { .. } => "UNKNOWN_CATEGORY",
            Error::MissingAttribute { .. } => "MISSING_ATTRIBUTE",
            Error::GpuUnavailable(_) => "GPU_UNAVAILABLE",
            Error::Gpu(_) => "GPU_ERROR",
            Error::NotLoaded => "NOT_LOADED",
            Error::Disposed => "DISPOSED",
            Error::Fetch { .. } => "FETCH_FAILED",
            Error::Tokenizer(_) => "BAD_TOKENIZER",
            Error::Config(_) => "BAD_CONFIG",
            Error::Weights { .. } => "BAD_WEIGHTS",
            Error::ModelInput(_) => "INVALID_INPUT",
        }
    }

    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            name,
            reason: reason.into(),
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
