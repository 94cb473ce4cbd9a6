//! A catalogue: the `manifest.json` that lists shards, and the loaded shards seen as one item table.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::shard::{Dtype, Shard};

/// Value of the manifest's `format` field.
pub const MANIFEST_FORMAT: &str = "shelfwise-catalog";

/// `manifest.json`: what a catalogue holds and how to check its files. See `docs/FORMAT.md`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    pub model_id: String,
    pub dim: usize,
    pub dtype: Dtype,
    pub normalized: bool,
    pub item_count: usize,
    /// Category names by id; empty when the catalogue has no categories.
    #[serde(default)]
    pub categories: Vec<String>,
    pub shards: Vec<ShardEntry>,
    /// The models of a recommender bundle (`shelfwise export`); absent in a plain catalogue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommender: Option<RecommenderFiles>,
}

/// A file of a bundle, checked like a shard: relative path, size and SHA-256.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub file: String,
    pub sha256: String,
    pub bytes: u64,
}

impl FileEntry {
    /// The entry for `bytes` stored at `file`.
    pub fn of(file: &str, bytes: &[u8]) -> FileEntry {
        FileEntry {
            file: file.into(),
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
        }
    }

    /// Checks `bytes` against this entry's size and SHA-256.
    pub fn verify(&self, bytes: &[u8]) -> Result<()> {
        Manifest::verify(
            &ShardEntry {
                file: self.file.clone(),
                sha256: self.sha256.clone(),
                bytes: self.bytes,
                items: 0,
                dtype: Dtype::F32,
            },
            bytes,
        )
    }
}

/// A model's files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// `config.json`.
    pub config: FileEntry,
    /// `*.safetensors`.
    pub weights: FileEntry,
    /// `tokenizer.json` (text encoders only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<FileEntry>,
}

/// What a bundle holds beyond the shards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommenderFiles {
    /// Event types by token-type id; must equal [`crate::events::MODEL_TYPES`].
    pub event_types: Vec<String>,
    /// The interest model.
    pub interest: ModelEntry,
    /// The text encoder for search queries (with its tokenizer); absent for an id-only model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoder: Option<ModelEntry>,
    /// Display metadata for the items (`items.json`), for demos.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<FileEntry>,
}

impl RecommenderFiles {
    /// Every file, in a fixed order.
    pub fn files(&self) -> Vec<&FileEntry> {
        let mut out = vec![&self.interest.config, &self.interest.weights];
        if let Some(e) = &self.encoder {
            out.extend([&e.config, &e.weights]);
            out.extend(&e.tokenizer);
        }
        out.extend(&self.items);
        out
    }
}

/// One shard file in a [`Manifest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// Path relative to the manifest.
    pub file: String,
    /// Lower-case hex SHA-256 of the whole file.
    pub sha256: String,
    /// File size in bytes.
    pub bytes: u64,
    pub items: usize,
    pub dtype: Dtype,
}

impl ShardEntry {
    /// The entry for shard file `file` holding `bytes` (`items` rows of `dtype`).
    pub fn describe(file: String, bytes: &[u8], items: usize, dtype: Dtype) -> ShardEntry {
        ShardEntry {
            file,
            sha256: sha256_hex(bytes),
            bytes: bytes.len() as u64,
            items,
            dtype,
        }
    }
}

/// The largest `manifest.json` a bundle may have (16 MiB: thousands of shards and categories fit many
/// times over). Loading stops reading a manifest download at this size; the JS side gets it generated.
pub const MAX_MANIFEST_BYTES: usize = 16 << 20;

impl Manifest {
    /// Parses and validates `manifest.json` (at most [`MAX_MANIFEST_BYTES`]).
    pub fn from_json(bytes: &[u8]) -> Result<Manifest> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::Manifest(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may have",
                bytes.len()
            )));
        }
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::Manifest(format!("not valid JSON for a manifest: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Checks the manifest's own consistency (not the files).
    pub fn validate(&self) -> Result<()> {
        let bad = |s: String| Err(Error::Manifest(s));
        if self.format != MANIFEST_FORMAT {
            return bad(format!(
                "format is `{}`, expected `{MANIFEST_FORMAT}`",
                self.format
            ));
        }
        if self.version != crate::shard::FORMAT_VERSION {
            return bad(format!(
                "version {} is not supported (this build reads 1)",
                self.version
            ));
        }
        if self.shards.is_empty() {
            return bad("lists no shards".into());
        }
        let total = self
            .shards
            .iter()
            .try_fold(0usize, |a, s| a.checked_add(s.items));
        if total != Some(self.item_count) {
            return bad(format!(
                "item_count is {} but the shards hold {total:?}",
                self.item_count
            ));
        }
        for s in &self.shards {
            if !is_safe_relative_path(&s.file) {
                return bad(format!(
                    "shard path `{}` must be a plain relative path",
                    s.file
                ));
            }
            if !is_sha256_hex(&s.sha256) {
                return bad(format!("shard `{}` has a malformed sha256", s.file));
            }
            if s.dtype != self.dtype {
                return bad(format!(
                    "shard `{}` is {}, the catalogue is {}",
                    s.file,
                    s.dtype.name(),
                    self.dtype.name()
                ));
            }
        }
        if let Some(r) = &self.recommender {
            let types: Vec<&str> = r.event_types.iter().map(String::as_str).collect();
            if types != crate::events::MODEL_TYPES {
                return bad(format!(
                    "recommender.event_types is {types:?}, this version knows {:?}",
                    crate::events::MODEL_TYPES
                ));
            }
            if let Some(e) = &r.encoder {
                if e.tokenizer.is_none() {
                    return bad("recommender.encoder has no tokenizer".into());
                }
            }
            for f in r.files() {
                if !is_safe_relative_path(&f.file) {
                    return bad(format!("file `{}` is not a plain relative path", f.file));
                }
                if !is_sha256_hex(&f.sha256) {
                    return bad(format!("file `{}` has a malformed sha256", f.file));
                }
            }
        }
        Ok(())
    }

    /// The `recommender` section a bundle has (`BAD_MANIFEST` for a plain catalogue).
    pub fn bundle(&self) -> Result<&RecommenderFiles> {
        self.recommender.as_ref().ok_or_else(|| {
            Error::Manifest(
                "this manifest has no `recommender` section: it is a plain catalogue (load it with \
                 ItemIndex)"
                    .into(),
            )
        })
    }

    /// What loading a bundle reads, in order: the shards, the interest model, then the text encoder and its
    /// tokenizer. Not `items.json`, which is display metadata for the page to fetch if it wants it.
    /// `BAD_MANIFEST` for a plain catalogue.
    pub fn bundle_files(&self) -> Result<Vec<FileEntry>> {
        let r = self.bundle()?;
        let mut out: Vec<FileEntry> = self
            .shards
            .iter()
            .map(|s| FileEntry {
                file: s.file.clone(),
                sha256: s.sha256.clone(),
                bytes: s.bytes,
            })
            .collect();
        let items = r.items.as_ref().map(|f| f.file.as_str());
        out.extend(
            r.files()
                .into_iter()
                .filter(|f| Some(f.file.as_str()) != items)
                .cloned(),
        );
        Ok(out)
    }

    /// Checks one file's size and SHA-256 against its entry.
    pub fn verify(entry: &ShardEntry, bytes: &[u8]) -> Result<()> {
        if bytes.len() as u64 != entry.bytes {
            return Err(Error::Integrity {
                file: entry.file.clone(),
                what: "size",
                expected: entry.bytes.to_string(),
                found: bytes.len().to_string(),
            });
        }
        let found = sha256_hex(bytes);
        if !found.eq_ignore_ascii_case(&entry.sha256) {
            return Err(Error::Integrity {
                file: entry.file.clone(),
                what: "sha256",
                expected: entry.sha256.clone(),
                found,
            });
        }
        Ok(())
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `p` names a file inside the bundle's folder: relative, no scheme, no `..` or `.` or empty
/// segment, no backslash, and no `%`, `?` or `#` that a URL would read differently.
fn is_safe_relative_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains('\\')
        && !p.contains(':')
        && !p.contains('%')
        && !p.contains('?')
        && !p.contains('#')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Loaded shards seen as one table of items with global row numbers `0..len`.
#[derive(Debug)]
pub struct Catalog {
    pub(crate) shards: Vec<Shard>,
    /// `[shards + 1]`: global row of each shard's first item.
    pub(crate) starts: Vec<usize>,
    dim: usize,
    dtype: Dtype,
    model_id: String,
    normalized: bool,
    num_categories: u32,
    category_names: Vec<String>,
    /// `(hash(id), row)` sorted, for id lookups.
    ids: Vec<(u64, u32)>,
}

impl Catalog {
    /// Loads a catalogue from its manifest and its files' bytes. `file` returns the bytes of a path
    /// listed in the manifest. Each file is verified against the manifest before it is parsed.
    pub fn from_manifest<'b>(
        manifest: &Manifest,
        mut file: impl FnMut(&ShardEntry) -> Result<&'b [u8]>,
    ) -> Result<Catalog> {
        manifest.validate()?;
        let mut shards = Vec::with_capacity(manifest.shards.len());
        for entry in &manifest.shards {
            let bytes = file(entry)?;
            Manifest::verify(entry, bytes)?;
            let shard = Shard::from_bytes(&entry.file, bytes)?;
            if shard.dtype() != entry.dtype {
                return Err(Error::Manifest(format!(
                    "shard `{}` is {}, the manifest says {}",
                    entry.file,
                    shard.dtype().name(),
                    entry.dtype.name()
                )));
            }
            if shard.len() != entry.items {
                return Err(Error::Manifest(format!(
                    "shard `{}` holds {} items, the manifest says {}",
                    entry.file,
                    shard.len(),
                    entry.items
                )));
            }
            shards.push(shard);
        }
        let mut catalog = Catalog::from_shards(shards)?;
        if catalog.dim != manifest.dim {
            return Err(Error::Dimension {
                context: "manifest `dim`".into(),
                expected: manifest.dim,
                found: catalog.dim,
            });
        }
        if catalog.normalized != manifest.normalized {
            return Err(Error::Manifest(format!(
                "normalized is {}, the shards say {}",
                manifest.normalized, catalog.normalized
            )));
        }
        if catalog.model_id != manifest.model_id {
            return Err(Error::Manifest(format!(
                "model_id `{}` does not match the shards' `{}`",
                manifest.model_id, catalog.model_id
            )));
        }
        if !manifest.categories.is_empty() {
            if manifest.categories.len() as u32 != catalog.num_categories {
                return Err(Error::Manifest(format!(
                    "names {} categories, the shards have {}",
                    manifest.categories.len(),
                    catalog.num_categories
                )));
            }
            catalog.category_names = manifest.categories.clone();
        }
        Ok(catalog)
    }

    /// Builds a catalogue from already parsed shards, which must agree on dimension, dtype and model.
    pub fn from_shards(shards: Vec<Shard>) -> Result<Catalog> {
        let first = shards.first().ok_or(Error::EmptyIndex)?;
        let dim = first.meta.dim;
        let dtype = first.dtype();
        let model_id = first.meta.model_id.clone();
        let normalized = first.meta.normalized;
        let mut num_categories = 0;
        let mut starts = vec![0usize];
        for s in &shards {
            if s.meta.dim != dim {
                return Err(Error::Dimension {
                    context: format!("shard `{}`", s.name),
                    expected: dim,
                    found: s.meta.dim,
                });
            }
            let mismatch = |reason: String| Error::ShardMismatch {
                shard: s.name.clone(),
                reason,
            };
            if s.dtype() != dtype {
                return Err(mismatch(format!(
                    "dtype {} differs from {}",
                    s.dtype().name(),
                    dtype.name()
                )));
            }
            if s.meta.normalized != normalized {
                return Err(mismatch(format!(
                    "normalized is {}, the first shard's is {normalized}",
                    s.meta.normalized
                )));
            }
            if s.meta.model_id != model_id {
                return Err(mismatch(format!(
                    "model `{}` differs from `{model_id}`",
                    s.meta.model_id
                )));
            }
            num_categories = num_categories.max(s.meta.num_categories.unwrap_or(0));
            starts.push(starts.last().copied().unwrap_or(0) + s.len());
        }
        let total = *starts.last().unwrap_or(&0);
        if total == 0 {
            return Err(Error::EmptyIndex);
        }
        if total > u32::MAX as usize - 1 {
            return Err(Error::invalid("catalogue", "more than 2^32 - 2 items"));
        }
        let mut ids = Vec::with_capacity(total);
        for (si, s) in shards.iter().enumerate() {
            for r in 0..s.len() {
                ids.push((hash_id(s.id(r)), (starts[si] + r) as u32));
            }
        }
        ids.sort_unstable();
        let mut catalog = Catalog {
            shards,
            starts,
            dim,
            dtype,
            model_id,
            normalized,
            num_categories,
            category_names: Vec::new(),
            ids,
        };
        // Equal ids have equal hashes: compare within each run of equal hashes (runs are tiny).
        let mut from = 0;
        while from < catalog.ids.len() {
            let h = catalog.ids[from].0;
            let to = from + catalog.ids[from..].iter().take_while(|x| x.0 == h).count();
            for i in from..to {
                for j in i + 1..to {
                    let (a, b) = (catalog.ids[i].1 as usize, catalog.ids[j].1 as usize);
                    if catalog.id(a) == catalog.id(b) {
                        return Err(Error::DuplicateId(catalog.id(a).to_string()));
                    }
                }
            }
            from = to;
        }
        catalog.ids.shrink_to_fit();
        Ok(catalog)
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        *self.starts.last().unwrap_or(&0)
    }

    /// Always false: an empty catalogue cannot be built.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn normalized(&self) -> bool {
        self.normalized
    }

    /// Size of the category id space (0 when there are no categories).
    pub fn num_categories(&self) -> u32 {
        self.num_categories
    }

    /// Category names from the manifest, by id (may be empty).
    pub fn category_names(&self) -> &[String] {
        &self.category_names
    }

    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// `(shard index, row within shard)` of global row `row`.
    pub fn locate(&self, row: usize) -> (usize, usize) {
        let s = self.starts.partition_point(|&start| start <= row) - 1;
        (s, row - self.starts[s])
    }

    /// The id of global row `row`.
    pub fn id(&self, row: usize) -> &str {
        let (s, r) = self.locate(row);
        self.shards[s].id(r)
    }

    /// The category of global row `row`, if any.
    pub fn category(&self, row: usize) -> Option<u32> {
        let (s, r) = self.locate(row);
        self.shards[s].category(r)
    }

    /// The global row of item `id`, if the catalogue has it.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        let h = hash_id(id);
        let from = self.ids.partition_point(|&(x, _)| x < h);
        self.ids[from..]
            .iter()
            .take_while(|&&(x, _)| x == h)
            .map(|&(_, row)| row as usize)
            .find(|&row| self.id(row) == id)
    }

    /// Row `row` as f32, dequantised.
    pub fn row_f32(&self, row: usize, out: &mut [f32]) {
        let (s, r) = self.locate(row);
        self.shards[s].row_f32(r, out)
    }

    /// Whether every shard carries attribute `name` (`category`, `price`, `in_stock`, `popularity`);
    /// `Err` names the first shard that lacks it.
    pub(crate) fn require(&self, filter: &'static str, attribute: &'static str) -> Result<()> {
        for s in &self.shards {
            let has = match attribute {
                "category" => s.category.is_some(),
                "price" => s.price.is_some(),
                "in_stock" => s.in_stock.is_some(),
                _ => s.popularity.is_some(),
            };
            if !has && !s.is_empty() {
                return Err(Error::MissingAttribute {
                    filter,
                    attribute,
                    shard: s.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// FNV-1a, 64-bit: stable across platforms, so the id table is the same natively and in wasm.
fn hash_id(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_stay_in_the_bundle_folder() {
        for ok in [
            "shard-000.safetensors",
            "interest/config.json",
            "encoder/tokenizer.json",
            "a-b_c.d/e",
        ] {
            assert!(is_safe_relative_path(ok), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/..",
            "./a",
            "a//b",
            "a/",
            "a\\b",
            "..\\x",
            "https://example.com/x",
            "file:x",
            "//example.com/x",
            "%2e%2e/x",
            "a?b",
            "a#b",
        ] {
            assert!(!is_safe_relative_path(bad), "{bad}");
        }
    }

    fn bundle_manifest() -> Manifest {
        let entry = |file: &str| FileEntry::of(file, file.as_bytes());
        Manifest {
            format: MANIFEST_FORMAT.into(),
            version: crate::shard::FORMAT_VERSION,
            model_id: "m".into(),
            dim: 4,
            dtype: Dtype::F32,
            normalized: false,
            item_count: 3,
            categories: vec![],
            shards: vec![ShardEntry {
                file: "shard-000.safetensors".into(),
                sha256: sha256_hex(b"s"),
                bytes: 1,
                items: 3,
                dtype: Dtype::F32,
            }],
            recommender: Some(RecommenderFiles {
                event_types: crate::events::MODEL_TYPES.map(String::from).to_vec(),
                interest: ModelEntry {
                    config: entry("interest/config.json"),
                    weights: entry("interest/model.safetensors"),
                    tokenizer: None,
                },
                encoder: Some(ModelEntry {
                    config: entry("encoder/config.json"),
                    weights: entry("encoder/model.safetensors"),
                    tokenizer: Some(entry("encoder/tokenizer.json")),
                }),
                items: Some(entry("items.json")),
            }),
        }
    }

    #[test]
    fn a_bundle_lists_what_loading_reads() {
        let m = bundle_manifest();
        m.validate().unwrap();
        let files: Vec<String> = m
            .bundle_files()
            .unwrap()
            .into_iter()
            .map(|f| f.file)
            .collect();
        assert_eq!(
            files,
            [
                "shard-000.safetensors",
                "interest/config.json",
                "interest/model.safetensors",
                "encoder/config.json",
                "encoder/model.safetensors",
                "encoder/tokenizer.json"
            ]
        );
        let plain = Manifest {
            recommender: None,
            ..m
        };
        assert_eq!(plain.bundle_files().unwrap_err().code(), "BAD_MANIFEST");
    }

    #[test]
    fn every_bundle_file_is_checked() {
        type Edit = fn(&mut RecommenderFiles);
        let edits: [(&str, Edit); 5] = [
            ("escaping path", |r| {
                r.interest.config.file = "../config.json".into()
            }),
            ("absolute path", |r| {
                r.interest.weights.file = "/model.safetensors".into()
            }),
            ("URL", |r| {
                r.encoder.as_mut().unwrap().config.file = "https://x.test/config.json".into()
            }),
            ("backslash", |r| {
                r.items.as_mut().unwrap().file = "a\\items.json".into()
            }),
            ("malformed sha256", |r| {
                r.encoder
                    .as_mut()
                    .unwrap()
                    .tokenizer
                    .as_mut()
                    .unwrap()
                    .sha256 = "abc".into()
            }),
        ];
        for (what, edit) in edits {
            let mut m = bundle_manifest();
            edit(m.recommender.as_mut().unwrap());
            let e = m.validate().unwrap_err();
            assert_eq!(
                (e.code(), e.file()),
                ("BAD_MANIFEST", Some("manifest.json")),
                "{what}"
            );
            let json = serde_json::to_vec(&m).unwrap();
            assert_eq!(
                Manifest::from_json(&json).unwrap_err().code(),
                "BAD_MANIFEST",
                "{what}"
            );
        }
    }
}
