//! `shelfwise export`: a trained interest model, its text encoder and the catalogue become the bundle the
//! browser loads (docs/FORMAT.md, "Bundles").

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use shelfwise::catalog::{sha256_hex, FileEntry, ModelEntry, RecommenderFiles, MANIFEST_FORMAT};
use shelfwise::events::MODEL_TYPES;
use shelfwise::model::interest::QUERY_PROJECTION;
use shelfwise::{Attributes, Dtype, Manifest, ShardEntry, ShardSpec};

use crate::data::{self, Item};

/// What `shelfwise export` takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// A folder `shelfwise train` wrote.
    #[arg(long)]
    pub model: PathBuf,
    /// The text encoder the model was trained with (required when the model takes searches).
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// The catalogue the model was trained on (same items, same order).
    #[arg(long)]
    pub catalog: PathBuf,
    /// Events whose item counts become the shards' `popularity` (the ranking for an empty session).
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Item vector storage: int8, f16 or f32.
    #[arg(long, default_value = "int8")]
    pub dtype: String,
    /// Items per shard file.
    #[arg(long, default_value_t = 1 << 20)]
    pub shard_items: usize,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// A file copied into the bundle.
fn put(out: &Path, name: &str, bytes: &[u8]) -> Result<FileEntry> {
    let path = out.join(name);
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    Ok(FileEntry::of(name, bytes))
}

fn read(dir: &Path, f: &str) -> Result<Vec<u8>> {
    fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
}

/// Display metadata for demos: one object per item, in catalogue order.
#[derive(serde::Serialize)]
struct ItemMeta<'a> {
    id: &'a str,
    title: &'a str,
    categories: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    year: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    price: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_stock: Option<bool>,
}

/// Writes the bundle; returns its manifest.
pub fn export(a: &ExportArgs) -> Result<Manifest> {
    let dtype = Dtype::parse(&a.dtype)?;
    if a.shard_items == 0 {
        bail!("--shard-items must be at least 1");
    }
    let items: Vec<Item> = data::read_catalog(&a.catalog)?;
    let config = read(&a.model, "config.json")?;
    let weights = read(&a.model, "model.safetensors")?;
    // Loading checks the model as the browser will.
    let model = shelfwise::model::InterestModel::load(
        &config,
        "model.safetensors",
        &weights,
        shelfwise::backend::cpu::CpuNn,
    )
    .with_context(|| format!("{} is not a shelfwise interest model", a.model.display()))?;
    let takes_text = safetensors::SafeTensors::deserialize(&weights)?
        .tensor(QUERY_PROJECTION)
        .is_ok();
    let vectors_file = read(&a.model, "items.safetensors")?;
    let st = safetensors::SafeTensors::deserialize(&vectors_file)?;
    let t = st
        .tensor("vectors")
        .context("items.safetensors has no `vectors` tensor")?;
    let d = model.dim();
    if t.dtype() != safetensors::Dtype::F32 || t.shape() != [items.len(), d] {
        bail!(
            "items.safetensors holds {:?} {:?}; the catalogue needs F32 [{}, {d}]",
            t.dtype(),
            t.shape(),
            items.len()
        );
    }
    let vectors: Vec<f32> = bytemuck::pod_collect_to_vec(t.data());

    fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let interest = ModelEntry {
        config: put(&a.out, "interest/config.json", &config)?,
        weights: put(&a.out, "interest/model.safetensors", &weights)?,
        tokenizer: None,
    };
    let encoder = match (&a.encoder, takes_text) {
        (Some(e), true) => {
            let (c, w, tok) = (
                read(e, "config.json")?,
                read(e, "model.safetensors")?,
                read(e, "tokenizer.json")?,
            );
            let enc = pollster::block_on(shelfwise::Embedder::load(
                shelfwise::model::ModelFiles {
                    config: &c,
                    weights: &w,
                    tokenizer: &tok,
                },
                shelfwise::DeviceChoice::Cpu,
                None,
            ))?;
            if Some(enc.dim()) != model.text_dim() {
                bail!(
                    "the encoder's vectors are {} wide, the model's query projection takes {:?}",
                    enc.dim(),
                    model.text_dim()
                );
            }
            Some(ModelEntry {
                config: put(&a.out, "encoder/config.json", &c)?,
                weights: put(&a.out, "encoder/model.safetensors", &w)?,
                tokenizer: Some(put(&a.out, "encoder/tokenizer.json", &tok)?),
            })
        }
        (None, true) => bail!("the model takes searches: --encoder must name its text encoder"),
        (_, false) => None,
    };
    let meta: Vec<ItemMeta> = items
        .iter()
        .map(|i| ItemMeta {
            id: &i.id,
            title: &i.title,
            categories: &i.categories,
            year: i.year,
            price: i.price,
            in_stock: i.in_stock,
        })
        .collect();
    let items_entry = put(&a.out, "items.json", &serde_json::to_vec(&meta)?)?;

    let popularity = match &a.events {
        Some(p) => {
            let d = data::Dataset::load(&a.catalog, p, false)?;
            let row: HashMap<&str, usize> = items
                .iter()
                .enumerate()
                .map(|(r, i)| (i.id.as_str(), r))
                .collect();
            let mut counts = vec![0.0f32; items.len()];
            for e in &d.events {
                if let Some(r) = e.item.as_deref().and_then(|i| row.get(i)) {
                    counts[*r] += 1.0;
                }
            }
            Some(counts)
        }
        None => None,
    };
    let mut names: HashMap<&str, u32> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    for i in &items {
        if let Some(c) = i.categories.first() {
            if !names.contains_key(c.as_str()) {
                names.insert(c, order.len() as u32);
                order.push(c.clone());
            }
        }
    }
    let model_id = format!("shelfwise-{}", &sha256_hex(&weights)[..16]);
    let mut shards = Vec::new();
    for (s, start) in (0..items.len()).step_by(a.shard_items).enumerate() {
        let end = (start + a.shard_items).min(items.len());
        let chunk = &items[start..end];
        let ids: Vec<&str> = chunk.iter().map(|i| i.id.as_str()).collect();
        let attributes = Attributes {
            category: (!order.is_empty()).then(|| {
                chunk
                    .iter()
                    .map(|i| {
                        i.categories
                            .first()
                            .map_or(order.len() as u32, |c| names[c.as_str()])
                    })
                    .collect()
            }),
            price: chunk.iter().map(|i| i.price).collect(),
            in_stock: chunk.iter().map(|i| i.in_stock).collect(),
            popularity: popularity.as_ref().map(|p| p[start..end].to_vec()),
        };
        // Items without a category get an extra "uncategorised" id.
        let uncategorised = items.iter().any(|i| i.categories.is_empty());
        let bytes = shelfwise::write_shard(&ShardSpec {
            ids: &ids,
            vectors: &vectors[start * d..end * d],
            dim: d,
            dtype,
            normalize: false,
            model_id: &model_id,
            num_categories: (!order.is_empty())
                .then_some(order.len() as u32 + uncategorised as u32),
            attributes: &attributes,
        })?;
        let file = format!("shard-{s:03}.safetensors");
        fs::write(a.out.join(&file), &bytes)?;
        shards.push(ShardEntry::describe(file, &bytes, chunk.len(), dtype));
    }
    if items.iter().any(|i| i.categories.is_empty()) && !order.is_empty() {
        order.push("(none)".into());
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: shelfwise::shard::FORMAT_VERSION,
        model_id,
        dim: d,
        dtype,
        normalized: false,
        item_count: items.len(),
        categories: order,
        shards,
        recommender: Some(RecommenderFiles {
            event_types: MODEL_TYPES.map(String::from).to_vec(),
            interest,
            encoder,
            items: Some(items_entry),
        }),
    };
    manifest.validate()?;
    fs::write(
        a.out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}
