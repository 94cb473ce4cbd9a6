//! Item shards: one safetensors file of item embeddings, ids and per-item attributes.
//!
//! The layout is specified in `docs/FORMAT.md`. [`Shard::from_bytes`] validates everything once, at load,
//! so the ranking code can index without checks: every row is finite, every id is UTF-8, every category is
//! in range. [`write_shard`] is the reference writer, used by the CLI and by tests.

use std::collections::HashMap;

use half::f16;
use safetensors::{tensor::TensorView, Dtype as StDtype, SafeTensors};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Value of the `format` metadata key.
pub const FORMAT_NAME: &str = "shelfwise-shard";
/// The shard format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;
/// Largest category id space a shard may declare (tables of this size are built per request).
pub const MAX_CATEGORIES: u32 = 1 << 20;
/// Sentinel stored in the GPU attribute table for "no category".
pub(crate) const NO_CATEGORY: u32 = 0x7fff_ffff;

/// Element type of a shard's embedding matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dtype {
    /// 4 bytes per value.
    F32,
    /// IEEE half precision, 2 bytes per value.
    F16,
    /// Symmetric int8 with one f32 scale per row: `value = scale[row] * q[row, d]`.
    #[serde(rename = "int8")]
    I8,
}

impl Dtype {
    /// Bytes per embedding value.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 => 2,
            Dtype::I8 => 1,
        }
    }

    /// The name used in manifests and options: `f32`, `f16` or `int8`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "f32",
            Dtype::F16 => "f16",
            Dtype::I8 => "int8",
        }
    }

    /// Parses a manifest or CLI name.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f32" => Ok(Dtype::F32),
            "f16" => Ok(Dtype::F16),
            "int8" | "i8" => Ok(Dtype::I8),
            other => Err(Error::invalid(
                "dtype",
                format!("`{other}` is not one of f32, f16, int8"),
            )),
        }
    }
}

/// The embedding matrix, row-major `[len, dim]`.
#[derive(Clone, Debug)]
pub(crate) enum Rows {
    F32(Vec<f32>),
    /// Raw IEEE half bits.
    F16(Vec<u16>),
    I8(Vec<i8>),
}

impl Rows {
    pub(crate) fn dtype(&self) -> Dtype {
        match self {
            Rows::F32(_) => Dtype::F32,
            Rows::F16(_) => Dtype::F16,
            Rows::I8(_) => Dtype::I8,
        }
    }

    /// The raw bytes of the matrix, as stored in the file.
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Rows::F32(v) => bytemuck::cast_slice(v),
            Rows::F16(v) => bytemuck::cast_slice(v),
            Rows::I8(v) => bytemuck::cast_slice(v),
        }
    }
}

/// Shard-level facts from `__metadata__`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardMeta {
    /// Embedding dimension `D`.
    pub dim: usize,
    /// Whether every row was L2-normalized before quantisation.
    pub normalized: bool,
    /// Which model produced the vectors; queries must come from the same one.
    pub model_id: String,
    /// Size of the category id space, when the shard has categories.
    pub num_categories: Option<u32>,
}

/// One loaded, validated shard.
#[derive(Clone, Debug)]
pub struct Shard {
    pub(crate) name: String,
    pub(crate) meta: ShardMeta,
    pub(crate) len: usize,
    pub(crate) rows: Rows,
    /// `[len]`, int8 only.
    pub(crate) scales: Option<Vec<f32>>,
    /// `[len + 1]`, byte offsets into `id_bytes`.
    pub(crate) id_offsets: Vec<u32>,
    pub(crate) id_bytes: Vec<u8>,
    /// `[len]`, each `< num_categories`.
    pub(crate) category: Option<Vec<u32>>,
    /// `[len]`, finite.
    pub(crate) price: Option<Vec<f32>>,
    /// `[len]`, 0 or 1.
    pub(crate) in_stock: Option<Vec<u8>>,
    /// `[len]`, finite.
    pub(crate) popularity: Option<Vec<f32>>,
}

impl Shard {
    /// Parses and validates a shard file. `name` is only used in error messages.
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Shard> {
        let corrupt = |reason: String| Error::CorruptShard {
            shard: name.to_string(),
            reason,
        };
        let tensors = SafeTensors::deserialize(bytes).map_err(|e| corrupt(e.to_string()))?;
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
        let empty = HashMap::new();
        let metadata = header.metadata().as_ref().unwrap_or(&empty);
        let meta = parse_meta(name, metadata)?;
        let reader = Reader { name, tensors };

        let emb = reader.required("embeddings")?;
        let dim = meta.dim;
        let shape = emb.shape();
        if shape.len() != 2 || shape[1] != dim {
            return Err(Error::TensorShape {
                shard: name.into(),
                tensor: "embeddings",
                expected: format!("[N, {dim}]"),
                found: shape.to_vec(),
            });
        }
        let len = shape[0];
        let rows = match emb.dtype() {
            StDtype::F32 => Rows::F32(bytemuck::pod_collect_to_vec(emb.data())),
            StDtype::F16 => Rows::F16(bytemuck::pod_collect_to_vec(emb.data())),
            StDtype::I8 => Rows::I8(bytemuck::pod_collect_to_vec(emb.data())),
            other => {
                return Err(Error::TensorDtype {
                    shard: name.into(),
                    tensor: "embeddings",
                    expected: "F32, F16 or I8",
                    found: format!("{other:?}"),
                })
            }
        };
        let finite_check = |tensor: &'static str, values: &mut dyn Iterator<Item = f32>| {
            finite_or_err(name, tensor, values)
        };
        match &rows {
            Rows::F32(v) => finite_check("embeddings", &mut v.iter().copied())?,
            Rows::F16(v) => finite_check(
                "embeddings",
                &mut v.iter().map(|&b| f16::from_bits(b).to_f32()),
            )?,
            Rows::I8(_) => {}
        }

        let scales = if rows.dtype() == Dtype::I8 {
            let s: Vec<f32> = reader.vector("scales", StDtype::F32, len)?;
            // A row is `q * scale` with `q` in -128..=127: a finite scale can still overflow (3e38 * 127).
            finite_check("scales", &mut s.iter().map(|&v| v * 128.0))?;
            Some(s)
        } else {
            None
        };

        let id_offsets: Vec<u32> = reader.vector("id_offsets", StDtype::U32, len + 1)?;
        let id_bytes = reader.required("id_bytes")?;
        if id_bytes.dtype() != StDtype::U8 || id_bytes.shape().len() != 1 {
            return Err(Error::TensorDtype {
                shard: name.into(),
                tensor: "id_bytes",
                expected: "U8 of rank 1",
                found: format!("{:?} {:?}", id_bytes.dtype(), id_bytes.shape()),
            });
        }
        let id_bytes = id_bytes.data().to_vec();
        validate_ids(name, &id_offsets, &id_bytes)?;

        let category: Option<Vec<u32>> = reader.optional("category", StDtype::U32, len)?;
        if let Some(cats) = &category {
            let count = meta.num_categories.ok_or_else(|| Error::Metadata {
                shard: name.into(),
                key: "num_categories",
                reason: "is required when the shard has a `category` tensor".into(),
            })?;
            if let Some(i) = cats.iter().position(|&c| c >= count) {
                return Err(Error::InvalidTensor {
                    shard: name.into(),
                    tensor: "category",
                    index: i,
                    reason: format!("category {} is not below num_categories = {count}", cats[i]),
                });
            }
        }
        let price: Option<Vec<f32>> = reader.optional("price", StDtype::F32, len)?;
        if let Some(p) = &price {
            finite_check("price", &mut p.iter().copied())?;
        }
        let in_stock: Option<Vec<u8>> = reader.optional("in_stock", StDtype::U8, len)?;
        if let Some(s) = &in_stock {
            if let Some(i) = s.iter().position(|&v| v > 1) {
                return Err(Error::InvalidTensor {
                    shard: name.into(),
                    tensor: "in_stock",
                    index: i,
                    reason: format!("{} is neither 0 nor 1", s[i]),
                });
            }
        }
        let popularity: Option<Vec<f32>> = reader.optional("popularity", StDtype::F32, len)?;
        if let Some(p) = &popularity {
            finite_check("popularity", &mut p.iter().copied())?;
        }

        Ok(Shard {
            name: name.to_string(),
            meta,
            len,
            rows,
            scales,
            id_offsets,
            id_bytes,
            category,
            price,
            in_stock,
            popularity,
        })
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the shard has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The shard's metadata.
    pub fn meta(&self) -> &ShardMeta {
        &self.meta
    }

    /// Element type of the embeddings.
    pub fn dtype(&self) -> Dtype {
        self.rows.dtype()
    }

    /// The id of item `row`.
    pub fn id(&self, row: usize) -> &str {
        let a = self.id_offsets[row] as usize;
        let b = self.id_offsets[row + 1] as usize;
        // Validated as UTF-8 at load.
        std::str::from_utf8(&self.id_bytes[a..b]).unwrap_or_default()
    }

    /// Item `row` as f32 (dequantised for int8).
    pub fn row_f32(&self, row: usize, out: &mut [f32]) {
        let d = self.meta.dim;
        let r = row * d..(row + 1) * d;
        match &self.rows {
            Rows::F32(v) => out.copy_from_slice(&v[r]),
            Rows::F16(v) => {
                for (o, &b) in out.iter_mut().zip(&v[r]) {
                    *o = f16::from_bits(b).to_f32();
                }
            }
            Rows::I8(v) => {
                let s = self.scales.as_ref().map_or(1.0, |s| s[row]);
                for (o, &q) in out.iter_mut().zip(&v[r]) {
                    *o = q as f32 * s;
                }
            }
        }
    }

    /// Row `row` as stored, for int8 shards.
    pub fn int8_row(&self, row: usize) -> Option<&[i8]> {
        let d = self.meta.dim;
        match &self.rows {
            Rows::I8(v) => Some(&v[row * d..(row + 1) * d]),
            _ => None,
        }
    }

    /// The int8 scale of row `row` (1 for float shards).
    pub fn int8_scale(&self, row: usize) -> f32 {
        self.scales.as_ref().map_or(1.0, |s| s[row])
    }

    /// The rule attributes of item `row` (each `None` when the shard lacks it).
    pub fn attributes(&self, row: usize) -> ItemAttributes {
        ItemAttributes {
            category: self.category.as_ref().map(|v| v[row]),
            price: self.price.as_ref().map(|v| v[row]),
            in_stock: self.in_stock.as_ref().map(|v| v[row] == 1),
            popularity: self.popularity.as_ref().map(|v| v[row]),
        }
    }

    /// The category of item `row`, if the shard has categories.
    pub fn category(&self, row: usize) -> Option<u32> {
        self.category.as_ref().map(|c| c[row])
    }
}

fn finite_or_err(
    shard: &str,
    tensor: &'static str,
    values: &mut dyn Iterator<Item = f32>,
) -> Result<()> {
    for (i, v) in values.enumerate() {
        if !v.is_finite() {
            return Err(Error::InvalidTensor {
                shard: shard.into(),
                tensor,
                index: i,
                reason: "not a finite number".into(),
            });
        }
    }
    Ok(())
}

fn parse_meta(name: &str, md: &HashMap<String, String>) -> Result<ShardMeta> {
    let get = |key: &'static str| {
        md.get(key).ok_or_else(|| Error::Metadata {
            shard: name.into(),
            key,
            reason: "is missing".into(),
        })
    };
    let bad = |key: &'static str, value: &str, want: &str| Error::Metadata {
        shard: name.into(),
        key,
        reason: format!("is `{value}`, expected {want}"),
    };
    let format = get("format")?;
    if format != FORMAT_NAME {
        return Err(bad("format", format, FORMAT_NAME));
    }
    let version = get("version")?;
    if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
        return Err(bad("version", version, "1 (the version this build reads)"));
    }
    let dim_s = get("dim")?;
    let dim = dim_s
        .parse::<usize>()
        .ok()
        .filter(|&d| (1..=65_536).contains(&d))
        .ok_or_else(|| bad("dim", dim_s, "an integer in 1..=65536"))?;
    let norm_s = get("normalized")?;
    let normalized = match norm_s.as_str() {
        "true" => true,
        "false" => false,
        other => return Err(bad("normalized", other, "`true` or `false`")),
    };
    let model_id = get("model_id")?.clone();
    let num_categories = match md.get("num_categories") {
        None => None,
        Some(s) => Some(
            s.parse::<u32>()
                .ok()
                .filter(|&c| c <= MAX_CATEGORIES)
                .ok_or_else(|| bad("num_categories", s, "an integer up to 2^20"))?,
        ),
    };
    Ok(ShardMeta {
        dim,
        normalized,
        model_id,
        num_categories,
    })
}

fn validate_ids(name: &str, offsets: &[u32], bytes: &[u8]) -> Result<()> {
    let bad = |index: usize, reason: String| Error::InvalidTensor {
        shard: name.into(),
        tensor: "id_offsets",
        index,
        reason,
    };
    if offsets.first() != Some(&0) {
        return Err(bad(0, "the first offset must be 0".into()));
    }
    if *offsets.last().unwrap_or(&0) as usize != bytes.len() {
        return Err(bad(
            offsets.len() - 1,
            format!(
                "the last offset must equal the id_bytes length {}",
                bytes.len()
            ),
        ));
    }
    for (i, w) in offsets.windows(2).enumerate() {
        if w[1] < w[0] || w[1] as usize > bytes.len() {
            return Err(bad(
                i + 1,
                "offsets must not decrease nor pass the end of id_bytes".into(),
            ));
        }
        if std::str::from_utf8(&bytes[w[0] as usize..w[1] as usize]).is_err() {
            return Err(Error::InvalidTensor {
                shard: name.into(),
                tensor: "id_bytes",
                index: i,
                reason: "item id is not valid UTF-8".into(),
            });
        }
    }
    Ok(())
}

struct Reader<'a> {
    name: &'a str,
    tensors: SafeTensors<'a>,
}

impl<'a> Reader<'a> {
    fn required(&self, tensor: &'static str) -> Result<TensorView<'a>> {
        self.tensors
            .tensor(tensor)
            .map_err(|_| Error::MissingTensor {
                shard: self.name.into(),
                tensor,
            })
    }

    /// A rank-1 tensor of `len` elements of `dtype`; `Ok(None)` only for optional tensors that are absent.
    fn optional<T: bytemuck::Pod>(
        &self,
        tensor: &'static str,
        dtype: StDtype,
        len: usize,
    ) -> Result<Option<Vec<T>>> {
        match self.tensors.tensor(tensor) {
            Ok(view) => self.check(tensor, &view, dtype, len).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn vector<T: bytemuck::Pod>(
        &self,
        tensor: &'static str,
        dtype: StDtype,
        len: usize,
    ) -> Result<Vec<T>> {
        let view = self.required(tensor)?;
        self.check(tensor, &view, dtype, len)
    }

    fn check<T: bytemuck::Pod>(
        &self,
        tensor: &'static str,
        view: &TensorView<'a>,
        dtype: StDtype,
        len: usize,
    ) -> Result<Vec<T>> {
        if view.dtype() != dtype {
            return Err(Error::TensorDtype {
                shard: self.name.into(),
                tensor,
                expected: dtype_name(dtype),
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != [len] {
            return Err(Error::TensorShape {
                shard: self.name.into(),
                tensor,
                expected: format!("[{len}]"),
                found: view.shape().to_vec(),
            });
        }
        Ok(bytemuck::pod_collect_to_vec(view.data()))
    }
}

fn dtype_name(d: StDtype) -> &'static str {
    match d {
        StDtype::U8 => "U8",
        StDtype::U32 => "U32",
        StDtype::F32 => "F32",
        _ => "?",
    }
}

/// One item's rule attributes, as read from a shard.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ItemAttributes {
    pub category: Option<u32>,
    pub price: Option<f32>,
    pub in_stock: Option<bool>,
    pub popularity: Option<f32>,
}

/// Per-item attributes for [`write_shard`]. Each present vector has one entry per item.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    pub category: Option<Vec<u32>>,
    pub price: Option<Vec<f32>>,
    pub in_stock: Option<Vec<bool>>,
    pub popularity: Option<Vec<f32>>,
}

/// What [`write_shard`] needs.
#[derive(Clone, Debug)]
pub struct ShardSpec<'a, S: AsRef<str>> {
    /// Item ids, one per row.
    pub ids: &'a [S],
    /// Row-major `[ids.len(), dim]` f32 vectors.
    pub vectors: &'a [f32],
    pub dim: usize,
    pub dtype: Dtype,
    /// L2-normalize each row before storing it.
    pub normalize: bool,
    pub model_id: &'a str,
    pub num_categories: Option<u32>,
    pub attributes: &'a Attributes,
}

/// Quantises `row` to symmetric int8: returns the scale, fills `out` with values in `-127..=127`.
pub fn quantize_i8(row: &[f32], out: &mut [i8]) -> f32 {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 {
        out.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (o, v) in out.iter_mut().zip(row) {
        *o = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Writes one shard file. The result can be read back with [`Shard::from_bytes`].
pub fn write_shard<S: AsRef<str>>(spec: &ShardSpec<'_, S>) -> Result<Vec<u8>> {
    check_spec(spec)?;
    let (n, d, a) = (spec.ids.len(), spec.dim, spec.attributes);
    let (emb, scales) = encode_rows(spec);
    let (id_offsets, id_bytes) = encode_ids(spec.ids)?;
    let in_stock: Option<Vec<u8>> = a
        .in_stock
        .as_ref()
        .map(|v| v.iter().map(|&b| b as u8).collect());

    let st = |e: safetensors::SafeTensorError| Error::invalid("shard", e.to_string());
    let mut views: Vec<(&str, TensorView<'_>)> = Vec::new();
    let emb_dtype = match spec.dtype {
        Dtype::F32 => StDtype::F32,
        Dtype::F16 => StDtype::F16,
        Dtype::I8 => StDtype::I8,
    };
    views.push((
        "embeddings",
        TensorView::new(emb_dtype, vec![n, d], &emb).map_err(st)?,
    ));
    if spec.dtype == Dtype::I8 {
        views.push((
            "scales",
            TensorView::new(StDtype::F32, vec![n], bytemuck::cast_slice(&scales)).map_err(st)?,
        ));
    }
    views.push((
        "id_offsets",
        TensorView::new(StDtype::U32, vec![n + 1], bytemuck::cast_slice(&id_offsets))
            .map_err(st)?,
    ));
    views.push((
        "id_bytes",
        TensorView::new(StDtype::U8, vec![id_bytes.len()], &id_bytes).map_err(st)?,
    ));
    if let Some(c) = &a.category {
        views.push((
            "category",
            TensorView::new(StDtype::U32, vec![n], bytemuck::cast_slice(c)).map_err(st)?,
        ));
    }
    if let Some(p) = &a.price {
        views.push((
            "price",
            TensorView::new(StDtype::F32, vec![n], bytemuck::cast_slice(p)).map_err(st)?,
        ));
    }
    if let Some(s) = &in_stock {
        views.push((
            "in_stock",
            TensorView::new(StDtype::U8, vec![n], s).map_err(st)?,
        ));
    }
    if let Some(p) = &a.popularity {
        views.push((
            "popularity",
            TensorView::new(StDtype::F32, vec![n], bytemuck::cast_slice(p)).map_err(st)?,
        ));
    }
    let md = shard_metadata(spec);
    let bytes = safetensors::serialize(views, Some(md)).map_err(st)?;
    // Round-trip through the reader so a writer bug can never produce a file the engine rejects.
    Shard::from_bytes("(written)", &bytes)?;
    Ok(bytes)
}

/// Checks `spec` before anything is written: a positive `dim`, `[ids, dim]` finite vectors, one entry per
/// item in each attribute, and `num_categories` when there are categories.
fn check_spec<S: AsRef<str>>(spec: &ShardSpec<'_, S>) -> Result<()> {
    let n = spec.ids.len();
    let d = spec.dim;
    if d == 0 {
        return Err(Error::invalid("dim", "must be at least 1"));
    }
    if n.checked_mul(d) != Some(spec.vectors.len()) {
        return Err(Error::Dimension {
            context: "write_shard vectors".into(),
            expected: n * d,
            found: spec.vectors.len(),
        });
    }
    if let Some(i) = spec.vectors.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidQuery(format!(
            "vector value {i} (row {}) is not finite",
            i / d
        )));
    }
    let attr_len = |name: &'static str, len: Option<usize>| match len {
        Some(l) if l != n => Err(Error::invalid(
            name,
            format!("has {l} entries for {n} items"),
        )),
        _ => Ok(()),
    };
    let a = spec.attributes;
    attr_len("category", a.category.as_ref().map(Vec::len))?;
    attr_len("price", a.price.as_ref().map(Vec::len))?;
    attr_len("in_stock", a.in_stock.as_ref().map(Vec::len))?;
    attr_len("popularity", a.popularity.as_ref().map(Vec::len))?;
    if a.category.is_some() && spec.num_categories.is_none() {
        return Err(Error::invalid(
            "num_categories",
            "is required with categories",
        ));
    }
    Ok(())
}

/// The `embeddings` tensor's bytes: each row of `spec.vectors` (L2-normalised first when asked) in
/// `spec.dtype`, with the int8 rows' scales (empty for f32 and f16).
fn encode_rows<S: AsRef<str>>(spec: &ShardSpec<'_, S>) -> (Vec<u8>, Vec<f32>) {
    let n = spec.ids.len();
    let d = spec.dim;
    let mut row = vec![0f32; d];
    let mut emb: Vec<u8> = Vec::with_capacity(n * d * spec.dtype.size());
    let mut scales: Vec<f32> = Vec::new();
    let mut q = vec![0i8; d];
    for r in 0..n {
        row.copy_from_slice(&spec.vectors[r * d..(r + 1) * d]);
        if spec.normalize {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|v| *v /= norm);
            }
        }
        match spec.dtype {
            Dtype::F32 => emb.extend_from_slice(bytemuck::cast_slice(&row)),
            Dtype::F16 => {
                for v in &row {
                    emb.extend_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
                }
            }
            Dtype::I8 => {
                scales.push(quantize_i8(&row, &mut q));
                emb.extend_from_slice(bytemuck::cast_slice(&q));
            }
        }
    }
    (emb, scales)
}

/// The `id_offsets` (`[ids + 1]`) and `id_bytes` tensors: the ids' UTF-8 bytes end to end, and where each
/// starts and ends.
fn encode_ids<S: AsRef<str>>(ids: &[S]) -> Result<(Vec<u32>, Vec<u8>)> {
    let mut id_offsets: Vec<u32> = Vec::with_capacity(ids.len() + 1);
    let mut id_bytes: Vec<u8> = Vec::new();
    id_offsets.push(0);
    for id in ids {
        id_bytes.extend_from_slice(id.as_ref().as_bytes());
        let end = u32::try_from(id_bytes.len())
            .map_err(|_| Error::invalid("ids", "more than 4 GiB of id bytes in one shard"))?;
        id_offsets.push(end);
    }
    Ok((id_offsets, id_bytes))
}

/// The shard's `__metadata__`: the format, its version and the shard-level facts of `spec`.
fn shard_metadata<S: AsRef<str>>(spec: &ShardSpec<'_, S>) -> HashMap<String, String> {
    let mut md = HashMap::new();
    md.insert("format".to_string(), FORMAT_NAME.to_string());
    md.insert("version".to_string(), FORMAT_VERSION.to_string());
    md.insert("dim".to_string(), spec.dim.to_string());
    md.insert("normalized".to_string(), spec.normalize.to_string());
    md.insert("model_id".to_string(), spec.model_id.to_string());
    if let Some(c) = spec.num_categories {
        md.insert("num_categories".to_string(), c.to_string());
    }
    md
}
