//! The one error type of the shelfwise core.
//!
//! Every variant maps to a stable, machine-readable [`Error::code`]. The JS shell turns an [`Error`] into a
//! JS `Error` whose `code` property carries that string, so storefront code can branch on it.
//! [`ERROR_CODES`] lists every code the API can raise, the JS API's own included; the JS and TypeScript
//! lists are generated from it (`tests/contract.rs`).

/// One error code and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub meaning: &'static str,
}

const fn code(code: &'static str, meaning: &'static str) -> ErrorCode {
    ErrorCode { code, meaning }
}

/// Every code the API can raise: those of [`Error::code`], and those only the JS API (`js/`) raises.
#[rustfmt::skip]
pub const ERROR_CODES: &[ErrorCode] = &[
    code("INVALID_ARGUMENT",   "an argument or option is missing, of the wrong type or out of range"),
    code("INVALID_EVENT",      "`track` got a malformed event (JS API)"),
    code("UNKNOWN_EVENT_TYPE", "`track` got an event type it does not take (JS API)"),
    code("QUERY_TOO_LONG",     "a search query is longer than the JS API takes"),
    code("INVALID_QUERY",      "an empty query, or a query vector with NaN, infinity or the wrong length"),
    code("UNKNOWN_ITEM",       "an item id the catalogue does not have, where one is required"),
    code("UNKNOWN_CATEGORY",   "a filter or boost names a category the catalogue does not have"),
    code("MISSING_ATTRIBUTE",  "a filter needs a per-item attribute that a shard does not have"),
    code("NOT_LOADED",         "a call before loading finished, or on something whose load failed"),
    code("DISPOSED",           "a call after `dispose()`"),
    code("BAD_MANIFEST",       "`manifest.json` is malformed, inconsistent, or not the bundle needed"),
    code("MISSING_FILE",       "the server (or `files`) has no such bundle file (JS API)"),
    code("DOWNLOAD_FAILED",    "a bundle file's download failed twice or was cut short (JS API)"),
    code("FETCH_FAILED",       "the wasm module could not fetch a URL"),
    code("INTEGRITY",          "a file's size or SHA-256 does not match the manifest"),
    code("CORRUPT_SHARD",      "a shard is not a valid safetensors file"),
    code("MISSING_TENSOR",     "a shard lacks a tensor the format requires"),
    code("SHAPE_MISMATCH",     "a shard's tensor has the wrong shape"),
    code("DTYPE_MISMATCH",     "a shard's tensor has the wrong element type"),
    code("INVALID_TENSOR",     "a shard's tensor holds values the format forbids (NaN, bad offsets, ...)"),
    code("BAD_METADATA",       "a shard's metadata lacks a key or has a bad value"),
    code("DIM_MISMATCH",       "shards, models, a query or a profile disagree on the vector width"),
    code("SHARD_MISMATCH",     "a catalogue's shards disagree on element type, normalisation or model"),
    code("DUPLICATE_ID",       "an item id appears twice in the catalogue"),
    code("EMPTY_INDEX",        "the catalogue has no items"),
    code("BAD_TOKENIZER",      "`tokenizer.json` is invalid, or tokenizing a text failed"),
    code("BAD_CONFIG",         "a model's `config.json` is malformed or describes an unsupported model"),
    code("BAD_WEIGHTS",        "a model's weights do not match its config"),
    code("INVALID_INPUT",      "inputs a model cannot take (ids past its vocabulary, too long a batch)"),
    code("GPU_UNAVAILABLE",    "WebGPU (Vulkan natively) has no adapter or no device"),
    code("GPU_ERROR",          "the GPU failed while loading or running a kernel"),
    code("WASM_INIT_FAILED",   "the wasm module did not start (JS API)"),
    code("WORKER_FAILED",      "the `shelfwise/worker` worker failed or could not start (JS API)"),
    code("WORKER_TIMEOUT",     "a `shelfwise/worker` call got no answer for `workerTimeoutMs` (JS API)"),
    code("INTERNAL",           "anything else, which is a bug (JS API)"),
];

/// Every code of a `warning` the JS API emits: something went wrong that it repaired or worked around, so
/// no call fails (docs/API.md says when each fires). The JS and TypeScript lists are generated from it.
#[rustfmt::skip]
pub const WARNING_CODES: &[ErrorCode] = &[
    code("CORRUPT_HISTORY",     "the stored history or profile was damaged or did not fit the model; it was repaired"),
    code("STORAGE_UNAVAILABLE", "IndexedDB cannot be used here (a private mode, say): history stays in memory"),
    code("STORAGE_FAILED",      "a write to IndexedDB failed; it is retried with the next change"),
    code("STORAGE_FULL",        "IndexedDB is out of quota: this page keeps the history in memory from now on"),
    code("CACHE_FAILED",        "a verified bundle file could not be kept in the Cache API (quota): the next visit downloads it"),
    code("OUT_OF_ORDER",        "an event older than the last one was placed by its time"),
    code("FUTURE_TIMESTAMP",    "an event's `ts` was more than a minute ahead of this device's clock: it was set to now"),
    code("PROFILE_FAILED",      "an ended session could not be folded into the long-term profile"),
    code("WARNINGS_DROPPED",    "more warnings arrived with no `warning` handler than are kept (50): the oldest were dropped"),
];

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

    /// The file the error is about: a shard, a model file or `manifest.json`.
    pub fn file(&self) -> Option<&str> {
        match self {
            Error::CorruptShard { shard, .. }
            | Error::MissingTensor { shard, .. }
            | Error::TensorShape { shard, .. }
            | Error::TensorDtype { shard, .. }
            | Error::InvalidTensor { shard, .. }
            | Error::Metadata { shard, .. }
            | Error::ShardMismatch { shard, .. } => Some(shard),
            Error::Integrity { file, .. } | Error::Weights { file, .. } => Some(file),
            Error::Manifest(_) => Some("manifest.json"),
            _ => None,
        }
    }

    /// The argument or option the error is about.
    pub fn field(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument { name, .. } => Some(name),
            _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each variant. The `match` has no wildcard, so a new variant fails to compile here until
    /// it is added (and its code is checked below).
    fn one_of_each() -> Vec<Error> {
        let s = || String::from("x");
        let all = vec![
            Error::CorruptShard {
                shard: s(),
                reason: s(),
            },
            Error::MissingTensor {
                shard: s(),
                tensor: "t",
            },
            Error::TensorShape {
                shard: s(),
                tensor: "t",
                expected: s(),
                found: vec![1],
            },
            Error::TensorDtype {
                shard: s(),
                tensor: "t",
                expected: "F32",
                found: s(),
            },
            Error::InvalidTensor {
                shard: s(),
                tensor: "t",
                index: 0,
                reason: s(),
            },
            Error::Metadata {
                shard: s(),
                key: "k",
                reason: s(),
            },
            Error::Manifest(s()),
            Error::Integrity {
                file: s(),
                what: "size",
                expected: s(),
                found: s(),
            },
            Error::Dimension {
                context: s(),
                expected: 1,
                found: 2,
            },
            Error::ShardMismatch {
                shard: s(),
                reason: s(),
            },
            Error::DuplicateId(s()),
            Error::EmptyIndex,
            Error::InvalidQuery(s()),
            Error::UnknownItem(s()),
            Error::InvalidArgument {
                name: "k",
                reason: s(),
            },
            Error::UnknownCategory { id: 1, count: 1 },
            Error::MissingAttribute {
                filter: "f",
                attribute: "price",
                shard: s(),
            },
            Error::GpuUnavailable(s()),
            Error::Gpu(s()),
            Error::NotLoaded,
            Error::Disposed,
            Error::Tokenizer(s()),
            Error::Config(s()),
            Error::Weights {
                file: s(),
                tensor: s(),
                problem: s(),
            },
            Error::ModelInput(s()),
            Error::Fetch {
                url: s(),
                reason: s(),
            },
        ];
        for e in &all {
            match e {
                Error::CorruptShard { .. }
                | Error::MissingTensor { .. }
                | Error::TensorShape { .. }
                | Error::TensorDtype { .. }
                | Error::InvalidTensor { .. }
                | Error::Metadata { .. }
                | Error::Manifest(_)
                | Error::Integrity { .. }
                | Error::Dimension { .. }
                | Error::ShardMismatch { .. }
                | Error::DuplicateId(_)
                | Error::EmptyIndex
                | Error::InvalidQuery(_)
                | Error::UnknownItem(_)
                | Error::InvalidArgument { .. }
                | Error::UnknownCategory { .. }
                | Error::MissingAttribute { .. }
                | Error::GpuUnavailable(_)
                | Error::Gpu(_)
                | Error::NotLoaded
                | Error::Disposed
                | Error::Tokenizer(_)
                | Error::Config(_)
                | Error::Weights { .. }
                | Error::ModelInput(_)
                | Error::Fetch { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_code_is_listed() {
        for e in one_of_each() {
            assert!(
                ERROR_CODES.iter().any(|c| c.code == e.code()),
                "{e:?} has code {}, which ERROR_CODES does not list",
                e.code()
            );
        }
    }

    #[test]
    fn the_lists_are_well_formed() {
        let all: Vec<&ErrorCode> = ERROR_CODES.iter().chain(WARNING_CODES).collect();
        for (i, c) in all.iter().enumerate() {
            assert!(
                !c.code.is_empty() && c.code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{}",
                c.code
            );
            assert!(
                !c.meaning.is_empty() && !c.meaning.contains('\n'),
                "{}",
                c.code
            );
            assert!(
                all[i + 1..].iter().all(|d| d.code != c.code),
                "{} is listed twice (a code is an error or a warning, not both)",
                c.code
            );
        }
    }

    #[test]
    fn errors_name_their_file_and_field() {
        let e = Error::Manifest("bad".into());
        assert_eq!(e.file(), Some("manifest.json"));
        let e = Error::Integrity {
            file: "shard-000.safetensors".into(),
            what: "size",
            expected: "1".into(),
            found: "2".into(),
        };
        assert_eq!(e.file(), Some("shard-000.safetensors"));
        assert_eq!(e.field(), None);
        let e = Error::invalid("k", "must be positive");
        assert_eq!((e.field(), e.file()), (Some("k"), None));
    }
}
