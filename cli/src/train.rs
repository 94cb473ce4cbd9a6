//! Training the interest model with candle (CPU, autodiff).
//!
//! The network is shelfwise's engine network in its interest-model form ([`shelfwise::model::interest`]:
//! causal, pre-LN, `last` pooling, external inputs), written here a second time in candle ops over the very
//! same tensors (Hugging Face names, `BertWeights` layout). The two are checked against each other in the
//! tests below.
//!
//! Item vectors (one table, used for inputs and outputs alike):
//! - `id`: a learned embedding per item (SASRec's item table);
//! - `text`: the item's text vector from the text encoder, times the learned `query_projection`, so an
//!   item never seen in training still has a vector;
//! - `text-id`: both summed. In every training batch each item's id part is dropped with probability
//!   `id_dropout`, so the text part alone must rank well; items that never occur in training keep only
//!   their text part.
//!
//! A search event's input is its query's text vector times the same projection. The data rarely has
//! searches, so training replaces a share (`search_rate`) of input item events with a search for a string
//! made from that item ([`crate::data::Item::queries`]), typed `search`: the model learns what a query
//! says about the next item.
//!
//! The loss is full-softmax cross-entropy of every next item over the whole catalogue. For catalogues far
//! larger than MovieLens' 1,682 items, the same logits would be computed against the target plus a
//! sampled set of negatives, with the log of each item's sampling probability subtracted (sampled softmax
//! with a log-Q correction); this is documented in EVALUATION.md, not implemented.
//!
//! Reproducible: weights are initialised and dropout masks drawn from shelfwise's seeded generator
//! (candle's CPU generator cannot be seeded), and every step runs in a fixed order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use shelfwise::events::{MODEL_TYPES, MODEL_TYPE_COUNT, SEARCH_TOKEN};
use shelfwise::model::interest::QUERY_PROJECTION;
use shelfwise::model::{BertWeights, ModelConfig};
use shelfwise::rng::Rng;

use crate::data::Item;
use crate::eval::{self, Case, Scorer, SeqEvent, Split};

/// How item vectors are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ItemVectors {
    /// A learned vector per item id only (SASRec-style).
    Id,
    /// The item's text vector, projected; no per-item parameters.
    Text,
    /// Text plus a learned id vector, with id-dropout.
    TextId,
}

/// What `shelfwise train` can set (each field is also its command-line flag).
#[derive(Clone, Debug, clap::Args, serde::Serialize)]
pub struct TrainConfig {
    /// How item vectors are made.
    #[arg(long, value_enum, default_value_t = ItemVectors::TextId)]
    pub items: ItemVectors,
    /// Text encoder folder (config.json, model.safetensors, tokenizer.json), for `text` and `text-id`.
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// Width of item vectors and of the model.
    #[arg(long, default_value_t = 64)]
    pub dim: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 2)]
    pub heads: usize,
    /// Events the model sees (the most recent ones).
    #[arg(long, default_value_t = 50)]
    pub max_len: usize,
    /// Dropout on embeddings and residual branches.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
    /// Probability that an item's id vector is left out of a training batch (`text-id`). Chosen on
    /// validation NDCG@10 (0.1: 0.1111; 0.25: 0.1020).
    #[arg(long, default_value_t = 0.1)]
    pub id_dropout: f32,
    /// Add a learned vector per release year to text item vectors (`text`, `text-id`): catalogue data a
    /// withheld item has too. `--year false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub year: bool,
    /// Share of input item events turned into a search for that item (`text`, `text-id`).
    #[arg(long, default_value_t = 0.05)]
    pub search_rate: f32,
    #[arg(long, default_value_t = 5e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    #[arg(long, default_value_t = 40)]
    pub max_epochs: usize,
    /// Epochs without a better validation NDCG@10 before stopping.
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            c: TrainConfig,
        }
        // The flags' defaults are the one place the defaults live.
        Defaults::parse_from(["train"]).c
    }
}

impl TrainConfig {
    pub fn check(&self) -> Result<()> {
        if self.dim == 0
            || self.heads == 0
            || !self.dim.is_multiple_of(self.heads)
            || self.layers == 0
            || self.max_len < 2
        {
            bail!("--dim must be a positive multiple of --heads, --layers at least 1, --max-len at least 2");
        }
        for (name, p) in [
            ("--dropout", self.dropout),
            ("--id-dropout", self.id_dropout),
            ("--search-rate", self.search_rate),
        ] {
            if !(0.0..1.0).contains(&p) {
                bail!("{name} must be in [0, 1)");
            }
        }
        if self.lr <= 0.0 || self.batch == 0 || self.max_epochs == 0 {
            bail!("--lr must be positive, --batch and --max-epochs at least 1");
        }
        if self.items != ItemVectors::Id && self.encoder.is_none() {
            bail!("--items text and text-id need --encoder (a text encoder folder)");
        }
        Ok(())
    }
}

/// The engine config of an interest model.
pub fn engine_config(c: &TrainConfig) -> Result<ModelConfig> {
    let json = serde_json::json!({
        "vocab_size": 1,
        "hidden_size": c.dim,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": 4 * c.dim,
        "hidden_act": "gelu",
        "max_position_embeddings": c.max_len,
        "type_vocab_size": MODEL_TYPE_COUNT,
        "layer_norm_eps": 1e-12,
        "shelfwise": {"pre_ln": true, "causal": true, "pooling": "last", "normalize": false,
                      "external_inputs": true}
    });
    Ok(ModelConfig::from_json(json.to_string().as_bytes())?)
}

/// Text vectors for the catalogue and for query strings, from a text encoder.
pub struct TextInputs {
    pub dim: usize,
    /// `[items, dim]`.
    pub items: Vec<f32>,
    /// `[queries, dim]`: the data's search queries ([`Split::queries`], same order), then the strings
    /// training searches for.
    pub queries: Vec<f32>,
    /// Per item, its training search strings (rows of `queries`).
    pub item_queries: Vec<Vec<u32>>,
    /// Per item, its release year's row in the year table (0: unknown).
    pub years: Vec<u32>,
}

/// Rows of the year table: unknown, then 1900 ..= 2027 (years outside clamp to the ends).
const YEAR_ROWS: usize = 129;

fn year_row(year: Option<i32>) -> u32 {
    year.map_or(0, |y| 1 + (y - 1900).clamp(0, YEAR_ROWS as i32 - 2) as u32)
}

/// Encodes every item's text, the data's queries and each item's training search strings with the
/// encoder in `dir`, on the CPU.
pub fn encode_texts(dir: &Path, items: &[Item], split: &Split) -> Result<TextInputs> {
    let enc = load_encoder(dir)?;
    let texts: Vec<String> = items.iter().map(Item::text).collect();
    let mut queries: Vec<String> = split.queries.clone();
    let mut index: HashMap<String, u32> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| (q.clone(), i as u32))
        .collect();
    let item_queries = items
        .iter()
        .map(|it| {
            it.queries()
                .into_iter()
                .map(|q| {
                    *index.entry(q.clone()).or_insert_with(|| {
                        queries.push(q);
                        queries.len() as u32 - 1
                    })
                })
                .collect()
        })
        .collect();
    Ok(TextInputs {
        years: items.iter().map(|i| year_row(i.year)).collect(),
        dim: enc.dim(),
        items: embed_all(&enc, &texts)?,
        queries: embed_all(&enc, &queries)?,
        item_queries,
    })
}

pub fn load_encoder(dir: &Path) -> Result<shelfwise::Embedder> {
    let read = |f: &str| {
        std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
    };
    let files = shelfwise::model::ModelFiles {
        config: &read("config.json")?,
        weights: &read("model.safetensors")?,
        tokenizer: &read("tokenizer.json")?,
    };
    Ok(pollster::block_on(shelfwise::Embedder::load(
        files,
        shelfwise::DeviceChoice::Cpu,
        Some(32),
    ))?)
}

/// Embeds `texts` in batches (an empty list gives no vectors).
pub fn embed_all(enc: &shelfwise::Embedder, texts: &[String]) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(texts.len() * enc.dim());
    for chunk in texts.chunks(64) {
        out.extend(pollster::block_on(enc.embed(chunk))?);
    }
    Ok(out)
}

/// A tensor's shape and values.
pub type ShapedTensor = (Vec<usize>, Vec<f32>);

const ITEM_TABLE: &str = "item_embeddings.weight";
const YEAR_TABLE: &str = "year_embeddings.weight";
const UNKNOWN_ITEM: &str = "unknown_item.weight";

/// The interest model's parameters as candle variables, keyed by their Hugging Face names, with the fixed
/// text vectors they are trained over.
pub struct Model {
    cfg: ModelConfig,
    mode: ItemVectors,
    items: usize,
    vars: Vec<(String, Var)>,
    by_name: HashMap<String, usize>,
    device: Device,
    /// `[items, text_dim]`, `[queries, text_dim]` and each item's year row (text modes).
    text: Option<(Tensor, Tensor, Tensor)>,
    /// `[items, 1]`: 1 for items that occur in training data. Others have no id vector.
    seen: Tensor,
    /// Training events per type (token types the data lacks are filled in at export).
    kind_counts: [usize; MODEL_TYPE_COUNT],
}

impl Model {
    /// Seeded initial weights: the engine's random initialisation, with positions and item vectors scaled
    /// to 1 / sqrt(dim) so first logits are small, and zero type embeddings.
    pub fn init(c: &TrainConfig, split: &Split, text: Option<&TextInputs>) -> Result<Model> {
        let cfg = engine_config(c)?;
        let d = cfg.hidden_size;
        let mut w = BertWeights::random(&cfg, c.seed);
        let s = 1.0 / (d as f32).sqrt();
        w.position.iter_mut().for_each(|v| *v *= s);
        w.token_type.iter_mut().for_each(|v| *v = 0.0);
        let device = Device::Cpu;
        let mut vars = Vec::new();
        let mut rng = Rng::new(c.seed ^ 0x17e3);
        let mut extra = Vec::new();
        if c.items == ItemVectors::TextId {
            extra.push((UNKNOWN_ITEM.to_string(), vec![1, d], vec![0.0; d]));
        }
        if c.items != ItemVectors::Text {
            extra.push((
                ITEM_TABLE.to_string(),
                vec![split.items, d],
                (0..split.items * d)
                    .map(|_| s * rng.normal())
                    .collect::<Vec<f32>>(),
            ));
        }
        let text = match (c.items, text) {
            (ItemVectors::Id, _) => None,
            (_, Some(t)) => {
                extra.push((
                    QUERY_PROJECTION.to_string(),
                    vec![d, t.dim],
                    (0..d * t.dim).map(|_| s * rng.normal()).collect(),
                ));
                if c.year {
                    extra.push((
                        YEAR_TABLE.to_string(),
                        vec![YEAR_ROWS, d],
                        vec![0.0; YEAR_ROWS * d],
                    ));
                }
                Some((
                    Tensor::from_slice(&t.items, (split.items, t.dim), &device)?,
                    Tensor::from_slice(&t.queries, (t.queries.len() / t.dim, t.dim), &device)?,
                    Tensor::from_slice(&t.years, split.items, &device)?,
                ))
            }
            (_, None) => bail!("text item vectors need a text encoder"),
        };
        for (name, shape, data) in w.named_tensors() {
            vars.push((
                name,
                Var::from_tensor(&Tensor::from_slice(data, shape.as_slice(), &device)?)?,
            ));
        }
        for (name, shape, data) in extra {
            vars.push((
                name,
                Var::from_tensor(&Tensor::from_vec(data, shape.as_slice(), &device)?)?,
            ));
        }
        let by_name = vars
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let mut seen = vec![0.0f32; split.items];
        let mut kind_counts = [0; MODEL_TYPE_COUNT];
        for seq in split.train() {
            for e in seq {
                if let Some(i) = e.item {
                    seen[i as usize] = 1.0;
                }
                kind_counts[e.kind as usize] += 1;
            }
        }
        Ok(Model {
            cfg,
            mode: c.items,
            items: split.items,
            vars,
            by_name,
            seen: Tensor::from_vec(seen, (split.items, 1), &device)?,
            device,
            text,
            kind_counts,
        })
    }

    fn t(&self, name: &str) -> Result<&Tensor> {
        match self.by_name.get(name) {
            Some(&i) => Ok(self.vars[i].1.as_tensor()),
            None => bail!("no tensor `{name}`"),
        }
    }

    fn all_vars(&self) -> Vec<Var> {
        self.vars.iter().map(|v| v.1.clone()).collect()
    }

    fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self
            .vars
            .iter()
            .map(|(_, v)| v.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    fn restore(&self, s: &[Tensor]) -> Result<()> {
        for ((_, v), t) in self.vars.iter().zip(s) {
            v.set(t)?;
        }
        Ok(())
    }

    /// Item vectors `[items, d]`. `keep` (`[items, 1]`, 0 or 1) says whose id vector is included;
    /// without it, every item seen in training keeps its id vector.
    fn item_table(&self, keep: Option<&Tensor>) -> Result<Tensor> {
        let ids = || -> Result<Tensor> {
            Ok(self
                .t(ITEM_TABLE)?
                .broadcast_mul(keep.unwrap_or(&self.seen))?)
        };
        let text = || -> Result<Tensor> {
            let (t, _, years) = self.text.as_ref().context("no text vectors")?;
            let v = t.matmul(&self.t(QUERY_PROJECTION)?.t()?)?;
            match self.by_name.contains_key(YEAR_TABLE) {
                true => Ok((v + self.t(YEAR_TABLE)?.index_select(years, 0)?)?),
                false => Ok(v),
            }
        };
        match self.mode {
            ItemVectors::Id => ids(),
            ItemVectors::Text => text(),
            ItemVectors::TextId => {
                // An item without its id vector (dropped, or never seen) takes the learned vector of an
                // unknown item instead: a typical item's share of what ids carry (popularity), so
                // a withheld item competes on text with items the model knows.
                let keep = keep.unwrap_or(&self.seen);
                let unknown = self.t(UNKNOWN_ITEM)?.broadcast_mul(&(1.0 - keep)?)?;
                Ok(((text()? + ids()?)? + unknown)?)
            }
        }
    }

    /// Input rows: the item table, then every query's projected text vector (text modes).
    fn input_table(&self, items: &Tensor) -> Result<Tensor> {
        match &self.text {
            Some((_, q, _)) if q.dim(0)? > 0 => Ok(Tensor::cat(
                &[items, &q.matmul(&self.t(QUERY_PROJECTION)?.t()?)?],
                0,
            )?),
            _ => Ok(items.clone()),
        }
    }

    /// Token states `[B, L, d]` for input rows `ids` of `table` with types `types` (both `[B, L]`,
    /// right-padded with any valid row).
    fn forward(
        &self,
        table: &Tensor,
        ids: &Tensor,
        types: &Tensor,
        dropout: Option<(&mut Rng, f32)>,
    ) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let d = self.cfg.hidden_size;
        let mut drop = dropout;
        let mut dropped = |x: Tensor| -> Result<Tensor> {
            match &mut drop {
                Some((rng, p)) => self::dropout(rng, *p, x),
                None => Ok(x),
            }
        };
        let pos = self
            .t("embeddings.position_embeddings.weight")?
            .narrow(0, 0, l)?;
        let typ = self.t("embeddings.token_type_embeddings.weight")?;
        let x = (table.index_select(&ids.flatten_all()?, 0)?
            + typ.index_select(&types.flatten_all()?, 0)?)?
        .reshape((b, l, d))?
        .broadcast_add(&pos)?;
        let x = dropped(norm(
            &|n| self.t(n),
            &x,
            "embeddings.LayerNorm",
            self.cfg.layer_norm_eps,
        )?)?;
        // Causal mask: 0 on and below the diagonal, -1e9 above.
        let causal: Vec<f32> = (0..l * l)
            .map(|i| if i % l > i / l { -1e9 } else { 0.0 })
            .collect();
        let causal = Tensor::from_vec(causal, (l, l), &self.device)?;
        encoder_layers(&|n| self.t(n), &self.cfg, x, &causal, &mut dropped)
    }

    /// Scores of every item after each of `inputs` (steps, oldest first; the last `max_len` count).
    pub fn score_batch(&self, inputs: &[Vec<Step>]) -> Result<Vec<Vec<f32>>> {
        let items = self.item_table(None)?;
        let table = self.input_table(&items)?;
        let l = inputs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let (mut ids, mut types) = (Vec::new(), Vec::new());
        for s in inputs {
            ids.extend(s.iter().map(|x| x.row));
            types.extend(s.iter().map(|x| x.kind));
            ids.extend(std::iter::repeat_n(0, l - s.len()));
            types.extend(std::iter::repeat_n(0, l - s.len()));
        }
        let ids = Tensor::from_vec(ids, (inputs.len(), l), &self.device)?;
        let types = Tensor::from_vec(types, (inputs.len(), l), &self.device)?;
        let h = self.forward(&table, &ids, &types, None)?;
        let last: Vec<u32> = inputs
            .iter()
            .enumerate()
            .map(|(i, s)| (i * l + s.len().max(1) - 1) as u32)
            .collect();
        let d = self.cfg.hidden_size;
        let h = h
            .reshape((inputs.len() * l, d))?
            .index_select(&Tensor::from_vec(last, inputs.len(), &self.device)?, 0)?;
        Ok(h.matmul(&items.t()?)?.to_vec2::<f32>()?)
    }

    /// The shard's item vectors `[items, d]`: id vectors only for items seen in training.
    pub fn item_vectors(&self) -> Result<Vec<f32>> {
        Ok(self.item_table(None)?.flatten_all()?.to_vec1()?)
    }

    /// The engine's weights: the network, with event types the training data lacks given the embedding of
    /// its most common item event type, and the query projection (text modes).
    pub fn interest_weights(&self) -> Result<(BertWeights, Option<ShapedTensor>)> {
        let bytes = vars_to_safetensors(self.vars.iter().filter(|(n, _)| {
            ![ITEM_TABLE, QUERY_PROJECTION, YEAR_TABLE, UNKNOWN_ITEM].contains(&n.as_str())
        }))?;
        let mut w = BertWeights::from_safetensors("interest", &bytes, &self.cfg)?;
        let d = self.cfg.hidden_size;
        let common = (0..MODEL_TYPE_COUNT)
            .filter(|&k| k as u32 != SEARCH_TOKEN)
            .max_by_key(|&k| (self.kind_counts[k], std::cmp::Reverse(k)))
            .unwrap_or(0);
        let row = w.token_type[common * d..(common + 1) * d].to_vec();
        for k in 0..MODEL_TYPE_COUNT {
            let trained =
                self.kind_counts[k] > 0 || (k as u32 == SEARCH_TOKEN && self.text.is_some());
            if !trained {
                w.token_type[k * d..(k + 1) * d].copy_from_slice(&row);
            }
        }
        let projection = match self.text {
            Some(_) => {
                let p = self.t(QUERY_PROJECTION)?;
                Some((p.dims().to_vec(), p.flatten_all()?.to_vec1()?))
            }
            None => None,
        };
        Ok((w, projection))
    }

    /// Writes `config.json`, `model.safetensors` (the network and the query projection) and
    /// `items.safetensors` (the item vectors, tensor `vectors`, `[items, d]`) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(
            dir.join("config.json"),
            serde_json::to_vec_pretty(&crate::cfg_json(&self.cfg))?,
        )?;
        let (w, projection) = self.interest_weights()?;
        let named = w.named_tensors();
        let mut views = Vec::new();
        for (name, shape, data) in &named {
            views.push((
                name.clone(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data),
                )?,
            ));
        }
        if let Some((shape, data)) = &projection {
            views.push((
                QUERY_PROJECTION.to_string(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data),
                )?,
            ));
        }
        std::fs::write(
            dir.join("model.safetensors"),
            safetensors::serialize(views, None)?,
        )?;
        let vectors = self.item_vectors()?;
        let view = safetensors::tensor::TensorView::new(
            safetensors::Dtype::F32,
            vec![self.items, self.cfg.hidden_size],
            bytemuck::cast_slice(&vectors),
        )?;
        std::fs::write(
            dir.join("items.safetensors"),
            safetensors::serialize([("vectors".to_string(), view)], None)?,
        )?;
        Ok(())
    }
}

/// Variables as an F32 safetensors image (which `BertWeights::from_safetensors` checks against a config).
pub fn vars_to_safetensors<'a>(vars: impl Iterator<Item = &'a (String, Var)>) -> Result<Vec<u8>> {
    let values: Vec<(String, Vec<usize>, Vec<f32>)> = vars
        .map(|(n, v)| {
            Ok((
                n.clone(),
                v.as_tensor().dims().to_vec(),
                v.as_tensor().flatten_all()?.to_vec1()?,
            ))
        })
        .collect::<Result<_>>()?;
    let views = values
        .iter()
        .map(|(n, s, d)| {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::F32,
                s.clone(),
                bytemuck::cast_slice(d),
            )?;
            Ok((n.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(safetensors::serialize(views, None)?)
}

/// Fisher-Yates with the seeded generator.
pub fn shuffle(order: &mut [usize], rng: &mut Rng) {
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// An epoch's progress bar over `batches`: drawn on a terminal, silent when stderr is a file or a pipe
/// (the per-epoch lines remain).
pub fn epoch_bar(epoch: usize, batches: usize) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(batches as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "epoch {prefix:>3} [{bar:30}] {pos}/{len} batches  loss {msg}  {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_prefix(epoch.to_string());
    bar
}

/// A parameter by name.
pub type Lookup<'a> = dyn Fn(&str) -> Result<&'a Tensor> + 'a;

fn linear<'a>(t: &Lookup<'a>, x: &Tensor, name: &str) -> Result<Tensor> {
    let w = t(&format!("{name}.weight"))?;
    let b = t(&format!("{name}.bias"))?;
    Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
}

fn norm<'a>(t: &Lookup<'a>, x: &Tensor, name: &str, eps: f64) -> Result<Tensor> {
    let g = t(&format!("{name}.weight"))?;
    let b = t(&format!("{name}.bias"))?;
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    Ok(y.broadcast_mul(g)?.broadcast_add(b)?)
}

/// The pre-LN encoder layers and final LayerNorm over embedded inputs `x` (`[B, L, d]`), with `mask`
/// added to every head's attention scores (`[L, L]` or `[B, 1, 1, L]`), and `dropped` applied to the
/// residual branches. The engine's `Bert` with `pre_ln: true`, in candle ops.
pub fn encoder_layers<'a>(
    t: &Lookup<'a>,
    cfg: &ModelConfig,
    mut x: Tensor,
    mask: &Tensor,
    dropped: &mut dyn FnMut(Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let (b, l, d) = x.dims3()?;
    let heads = cfg.num_attention_heads;
    let dh = d / heads;
    let eps = cfg.layer_norm_eps;
    let scale = (dh as f64).sqrt();
    for layer in 0..cfg.num_hidden_layers {
        let p = format!("encoder.layer.{layer}");
        let n = norm(t, &x, &format!("{p}.attention.output.LayerNorm"), eps)?;
        let split = |y: Tensor| -> Result<Tensor> {
            Ok(y.reshape((b, l, heads, dh))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = split(linear(t, &n, &format!("{p}.attention.self.query"))?)?;
        let k = split(linear(t, &n, &format!("{p}.attention.self.key"))?)?;
        let v = split(linear(t, &n, &format!("{p}.attention.self.value"))?)?;
        let s = (q.matmul(&k.t()?)? / scale)?.broadcast_add(mask)?;
        let a = candle_nn::ops::softmax_last_dim(&s)?.matmul(&v)?;
        let a = a.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
        let a = linear(t, &a, &format!("{p}.attention.output.dense"))?;
        x = (x + dropped(a)?)?;
        let n = norm(t, &x, &format!("{p}.output.LayerNorm"), eps)?;
        let h = linear(t, &n, &format!("{p}.intermediate.dense"))?.gelu_erf()?;
        let f = linear(t, &h, &format!("{p}.output.dense"))?;
        x = (x + dropped(f)?)?;
    }
    norm(t, &x, "encoder.final_layer_norm", eps)
}

/// Seeded dropout with probability `p` (inverted: kept values are scaled by 1 / (1 - p)).
pub fn dropout(rng: &mut Rng, p: f32, x: Tensor) -> Result<Tensor> {
    if p <= 0.0 {
        return Ok(x);
    }
    let keep = 1.0 - p;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.uniform() < keep {
                1.0 / keep
            } else {
                0.0
            }
        })
        .collect();
    Ok((x.clone() * Tensor::from_vec(mask, x.shape(), x.device())?)?)
}

/// One input event: a row of the input table (an item, or `items + q` for query `q`) and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub row: u32,
    pub kind: u32,
}

/// The last `n` events of `events` as steps (`items` rows precede the queries).
pub fn last_steps(events: &[SeqEvent], items: usize, n: usize) -> Vec<Step> {
    let steps: Vec<Step> = events
        .iter()
        .filter_map(|e| match (e.item, e.query) {
            (Some(i), _) => Some(Step {
                row: i,
                kind: e.kind,
            }),
            (None, Some(q)) => Some(Step {
                row: items as u32 + q,
                kind: e.kind,
            }),
            _ => None,
        })
        .collect();
    steps[steps.len().saturating_sub(n)..].to_vec()
}

/// Training windows: each training sequence cut into runs of at most `max_len + 1` steps, from the end
/// backwards so the most recent run is whole.
fn windows(split: &Split, max_len: usize) -> Vec<Vec<Step>> {
    let mut out = Vec::new();
    for seq in split.train() {
        let steps = last_steps(seq, split.items, usize::MAX);
        let mut end = steps.len();
        while end >= 2 {
            let start = end.saturating_sub(max_len + 1);
            out.push(steps[start..end].to_vec());
            if start == 0 {
                break;
            }
            end = start + 1;
        }
    }
    out
}

/// A trained model scoring evaluation cases.
pub struct Trained<'a> {
    pub model: &'a Model,
    pub max_len: usize,
    pub name: String,
}

impl Trained<'_> {
    /// Metrics on `cases` (full ranking), scoring them in batches.
    pub fn evaluate(&self, split: &Split, cases: &[Case]) -> Result<eval::Metrics> {
        let pre = self.precompute(split, cases)?;
        Ok(eval::evaluate(&pre, split, cases, eval::Protocol::Full))
    }

    /// Every case's scores.
    pub fn precompute(&self, split: &Split, cases: &[Case]) -> Result<Precomputed> {
        let mut by_case = HashMap::new();
        for chunk in cases.chunks(256) {
            let inputs: Vec<Vec<Step>> = chunk
                .iter()
                .map(|c| last_steps(split.input(c), split.items, self.max_len))
                .collect();
            for (c, s) in chunk.iter().zip(self.model.score_batch(&inputs)?) {
                by_case.insert((c.session, c.at), s);
            }
        }
        Ok(Precomputed {
            name: self.name.clone(),
            by_case,
        })
    }
}

/// Scores computed ahead of the metric loop, looked up by (session, position).
pub struct Precomputed {
    pub name: String,
    pub by_case: HashMap<(usize, usize), Vec<f32>>,
}

impl Scorer for Precomputed {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn logits(&self) -> bool {
        true
    }

    fn score(&self, c: &Case, _input: &[SeqEvent], out: &mut [f32]) {
        match self.by_case.get(&(c.session, c.at)) {
            Some(s) if s.len() == out.len() => out.copy_from_slice(s),
            // Every evaluated case was scored ahead; a miss can only be a bug, and scores nothing.
            _ => out.fill(f32::NAN),
        }
    }
}

/// A saved interest model (`shelfwise train`'s folder), loaded into shelfwise's engine.
pub struct Saved<B: shelfwise::model::NnBackend> {
    pub model: shelfwise::model::InterestModel<B>,
    /// `[items, d]`.
    pub items: Vec<f32>,
}

impl<B: shelfwise::model::NnBackend> Saved<B> {
    pub fn load(dir: &Path, backend: B) -> Result<Self> {
        let read = |f: &str| {
            std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
        };
        let model = shelfwise::model::InterestModel::load(
            &read("config.json")?,
            "model.safetensors",
            &read("model.safetensors")?,
            backend,
        )?;
        let bytes = read("items.safetensors")?;
        let st = safetensors::SafeTensors::deserialize(&bytes)?;
        let t = st
            .tensor("vectors")
            .context("items.safetensors has no `vectors`")?;
        if t.dtype() != safetensors::Dtype::F32
            || t.shape().len() != 2
            || t.shape()[1] != model.dim()
        {
            bail!(
                "items.safetensors: `vectors` must be F32 [items, {}]",
                model.dim()
            );
        }
        Ok(Saved {
            items: bytemuck::pod_collect_to_vec(t.data()),
            model,
        })
    }

    /// Engine steps for `steps` (query rows take `queries`' text vectors).
    pub fn engine_steps(
        &self,
        steps: &[Step],
        queries: &[f32],
    ) -> Result<Vec<shelfwise::model::Step>> {
        let d = self.model.dim();
        let n = self.items.len() / d;
        steps
            .iter()
            .map(|s| {
                let r = s.row as usize;
                let input = if r < n {
                    shelfwise::model::StepInput::Item(self.items[r * d..(r + 1) * d].to_vec())
                } else {
                    let td = self
                        .model
                        .text_dim()
                        .context("an id-only model takes no searches")?;
                    let q = queries
                        .get((r - n) * td..(r - n + 1) * td)
                        .context("a search's query has no text vector")?;
                    shelfwise::model::StepInput::Text(q.to_vec())
                };
                Ok(shelfwise::model::Step {
                    kind: s.kind,
                    input,
                })
            })
            .collect()
    }

    /// Interest vectors for step sequences.
    pub fn interest(&self, inputs: &[Vec<Step>], queries: &[f32]) -> Result<Vec<f32>> {
        let sessions = inputs
            .iter()
            .map(|s| self.engine_steps(s, queries))
            .collect::<Result<Vec<_>>>()?;
        Ok(pollster::block_on(self.model.interest(&sessions))?)
    }

    /// Every item's score for interest vector `v`.
    pub fn scores(&self, v: &[f32]) -> Vec<f32> {
        self.items
            .chunks(v.len())
            .map(|item| item.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// Scores of `cases` from a saved interest model, computed by shelfwise's engine on the CPU: the inference
/// path, not the trainer's. Search events need `encoder` for their query vectors.
pub fn engine_scores(
    dir: &Path,
    encoder: Option<&Path>,
    split: &Split,
    cases: &[Case],
    int8: bool,
) -> Result<Precomputed> {
    let mut saved = Saved::load(dir, shelfwise::backend::cpu::CpuNn)?;
    if int8 {
        // What an int8 shard stores: each row quantised symmetrically, then read back as
        // `scale * q` (the model's inputs and the scored rows alike).
        let d = saved.model.dim();
        let mut q = vec![0i8; d];
        for row in saved.items.chunks_mut(d) {
            let scale = shelfwise::shard::quantize_i8(row, &mut q);
            row.iter_mut()
                .zip(&q)
                .for_each(|(v, &x)| *v = scale * x as f32);
        }
    }
    if saved.items.len() / saved.model.dim() != split.items {
        bail!(
            "{}: the model has vectors for {} items, the catalogue has {}",
            dir.display(),
            saved.items.len() / saved.model.dim(),
            split.items
        );
    }
    let queries = match encoder {
        Some(e) if !split.queries.is_empty() => embed_all(&load_encoder(e)?, &split.queries)?,
        _ => Vec::new(),
    };
    let mut by_case = HashMap::new();
    for chunk in cases.chunks(256) {
        let inputs: Vec<Vec<Step>> = chunk
            .iter()
            .map(|c| last_steps(split.input(c), split.items, saved.model.max_len()))
            .collect();
        let interest = saved.interest(&inputs, &queries)?;
        for (c, v) in chunk.iter().zip(interest.chunks(saved.model.dim())) {
            by_case.insert((c.session, c.at), saved.scores(v));
        }
    }
    Ok(Precomputed {
        name: format!("interest model {} (shelfwise engine)", dir.display()),
        by_case,
    })
}

/// Parity cases for the exported bundle: for the first `n` test cases, the session as the engine sees it
/// (its last `max_len` events, as `[type, item id or query]`), the items to exclude (the whole history),
/// and the trainer's top 10 with their scores. `docs/FORMAT.md` describes the file.
pub fn parity_cases(
    model: &Model,
    split: &Split,
    ids: &[String],
    max_len: usize,
    n: usize,
) -> Result<serde_json::Value> {
    let cases: Vec<Case> = split.test.iter().take(n).copied().collect();
    let trained = Trained {
        model,
        max_len,
        name: "parity".into(),
    };
    let scores = trained.precompute(split, &cases)?;
    let mut out = Vec::new();
    for c in &cases {
        let input = split.input(c);
        let s = &scores.by_case[&(c.session, c.at)];
        let mut seen = vec![false; split.items];
        for e in input {
            if let Some(i) = e.item {
                seen[i as usize] = true;
            }
        }
        let mut order: Vec<usize> = (0..split.items).filter(|&i| !seen[i]).collect();
        order.sort_by(|&a, &b| s[b].total_cmp(&s[a]).then(a.cmp(&b)));
        let events: Vec<serde_json::Value> = input
            .iter()
            .filter(|e| e.item.is_some() || e.query.is_some())
            .map(|e| {
                let what = match (e.item, e.query) {
                    (Some(i), _) => ids[i as usize].clone(),
                    (None, Some(q)) => split.queries[q as usize].clone(),
                    _ => String::new(),
                };
                serde_json::json!([MODEL_TYPES[e.kind as usize], what])
            })
            .collect();
        let recent = &events[events.len().saturating_sub(max_len)..];
        let exclude: Vec<&str> = (0..split.items)
            .filter(|&i| seen[i])
            .map(|i| ids[i].as_str())
            .collect();
        out.push(serde_json::json!({
            "events": recent,
            "exclude": exclude,
            "top": order.iter().take(10).map(|&i| serde_json::json!([ids[i], s[i]])).collect::<Vec<_>>(),
        }));
    }
    Ok(serde_json::json!({ "cases": out }))
}

/// One epoch's record.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Epoch {
    pub epoch: usize,
    pub loss: f64,
    pub valid_ndcg10: f64,
    pub seconds: f64,
}

/// Trains on `split`'s training windows, keeps the weights of the best validation NDCG@10, and returns them
/// with the per-epoch history.
pub fn train(
    split: &Split,
    c: &TrainConfig,
    text: Option<&TextInputs>,
    mut progress: impl FnMut(&Epoch),
) -> Result<(Model, Vec<Epoch>)> {
    c.check()?;
    let model = Model::init(c, split, text)?;
    let params = ParamsAdamW {
        lr: c.lr,
        weight_decay: c.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(model.all_vars(), params)?;
    let data = windows(split, c.max_len);
    if data.is_empty() {
        bail!("no training sequence has two events");
    }
    let items = split.items;
    let mut rng = Rng::new(c.seed ^ 0xd20f);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut best: Option<(f64, Vec<Tensor>)> = None;
    let mut since_best = 0;
    let mut history = Vec::new();
    let seen: Vec<f32> = model.seen.flatten_all()?.to_vec1()?;
    let searches = text.filter(|_| c.search_rate > 0.0 && c.items != ItemVectors::Id);
    let unseen_penalty = ((model.seen.t()? - 1.0)? * 1e9)?;
    for epoch in 1..=c.max_epochs {
        let t0 = std::time::Instant::now();
        shuffle(&mut order, &mut rng);
        let (mut total, mut count) = (0.0, 0usize);
        let bar = epoch_bar(epoch, order.len().div_ceil(c.batch));
        for batch in order.chunks(c.batch) {
            let l = batch.iter().map(|&i| data[i].len() - 1).max().unwrap_or(1);
            let (mut ids, mut types) = (Vec::with_capacity(batch.len() * l), Vec::new());
            let mut rows = Vec::new();
            let mut targets = Vec::new();
            for (bi, &i) in batch.iter().enumerate() {
                let w = &data[i];
                let n = w.len() - 1;
                for s in &w[..n] {
                    let query = searches.and_then(|t| {
                        let qs = t.item_queries.get(s.row as usize)?;
                        (!qs.is_empty() && rng.uniform() < c.search_rate)
                            .then(|| qs[rng.below(qs.len() as u64) as usize])
                    });
                    match query {
                        Some(q) => {
                            ids.push(items as u32 + q);
                            types.push(SEARCH_TOKEN);
                        }
                        None => {
                            ids.push(s.row);
                            types.push(s.kind);
                        }
                    }
                }
                ids.extend(std::iter::repeat_n(0, l - n));
                types.extend(std::iter::repeat_n(0, l - n));
                for t in 0..n {
                    if (w[t + 1].row as usize) < items {
                        rows.push((bi * l + t) as u32);
                        targets.push(w[t + 1].row);
                    }
                }
            }
            if targets.is_empty() {
                continue;
            }
            let keep = match c.items {
                ItemVectors::TextId if c.id_dropout > 0.0 => {
                    let k: Vec<f32> = seen
                        .iter()
                        .map(|&s| {
                            if rng.uniform() >= c.id_dropout {
                                s
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    Some(Tensor::from_vec(k, (items, 1), &model.device)?)
                }
                _ => None,
            };
            let item_table = model.item_table(keep.as_ref())?;
            let table = model.input_table(&item_table)?;
            let ids = Tensor::from_vec(ids, (batch.len(), l), &model.device)?;
            let types = Tensor::from_vec(types, (batch.len(), l), &model.device)?;
            let h = model.forward(&table, &ids, &types, Some((&mut rng, c.dropout)))?;
            let h = h
                .reshape((batch.len() * l, c.dim))?
                .index_select(&Tensor::from_vec(rows, targets.len(), &model.device)?, 0)?;
            // Items that never occur in training (the cold-start split's withheld items among them) are
            // not candidates in the training softmax: always a negative, the model would learn to bury
            // exactly the items it must rank from text alone.
            let logits = h.matmul(&item_table.t()?)?.broadcast_add(&unseen_penalty)?;
            let n_targets = targets.len();
            let loss = candle_nn::loss::cross_entropy(
                &logits,
                &Tensor::from_vec(targets, n_targets, &model.device)?,
            )?;
            opt.backward_step(&loss)?;
            total += loss.to_dtype(DType::F64)?.to_scalar::<f64>()? * n_targets as f64;
            count += n_targets;
            bar.set_message(format!("{:.4}", total / count.max(1) as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let trained = Trained {
            model: &model,
            max_len: c.max_len,
            name: "interest".into(),
        };
        let valid = trained.evaluate(split, &split.valid)?;
        let e = Epoch {
            epoch,
            loss: total / count.max(1) as f64,
            valid_ndcg10: valid.ndcg10,
            seconds: t0.elapsed().as_secs_f64(),
        };
        progress(&e);
        history.push(e);
        if best.as_ref().is_none_or(|b| valid.ndcg10 > b.0) {
            best = Some((valid.ndcg10, model.snapshot()?));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= c.patience {
                break;
            }
        }
    }
    let (_, w) = best.ok_or_else(|| anyhow::anyhow!("no epoch ran"))?;
    model.restore(&w)?;
    Ok((model, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, Event, EventKind};
    use shelfwise::backend::cpu::CpuNn;

    fn tiny() -> Dataset {
        let items = (0..40)
            .map(|i| Item {
                id: format!("i{i}"),
                title: format!("Item {i} (1990)"),
                categories: vec!["Drama".into()],
                year: None,
                price: None,
                in_stock: None,
                popularity: None,
                text: None,
            })
            .collect();
        let mut events = Vec::new();
        let mut rng = Rng::new(5);
        for s in 0..6 {
            for t in 0..9 {
                let search = t == 2 && s % 2 == 0;
                events.push(Event {
                    session: format!("s{s}"),
                    kind: EventKind::named(if search { "search" } else { "view" }).unwrap(),
                    ts: t as f64,
                    item: (!search).then(|| format!("i{}", rng.below(40))),
                    query: search.then(|| format!("query {s}")),
                    value: None,
                });
            }
        }
        Dataset {
            items,
            events,
            skipped: (0, 0),
        }
    }

    /// The trainer's candle network and shelfwise's engine are one network: the same weights give the
    /// same next-item scores, for item events and searches, for every way of making item vectors.
    #[test]
    fn the_trainer_and_the_engine_agree() {
        let d = tiny();
        let split = Split::leave_one_out(&d);
        let tdim = 8;
        let mut rng = Rng::new(9);
        let text = TextInputs {
            dim: tdim,
            items: (0..40 * tdim).map(|_| rng.normal()).collect(),
            queries: (0..split.queries.len() * tdim)
                .map(|_| rng.normal())
                .collect(),
            item_queries: vec![Vec::new(); 40],
            years: (0..40).map(|i| i % 5).collect(),
        };
        for mode in [ItemVectors::Id, ItemVectors::Text, ItemVectors::TextId] {
            let c = TrainConfig {
                items: mode,
                dim: 24,
                layers: 2,
                heads: 3,
                max_len: 12,
                ..Default::default()
            };
            let model = Model::init(&c, &split, Some(&text)).unwrap();
            let q = split.items as u32;
            let mut inputs: Vec<Vec<Step>> = vec![
                vec![
                    Step { row: 1, kind: 0 },
                    Step { row: 5, kind: 5 },
                    Step { row: 7, kind: 3 },
                ],
                vec![Step { row: 39, kind: 1 }],
                (0..12).map(|r| Step { row: r, kind: 0 }).collect(),
            ];
            if mode != ItemVectors::Id {
                inputs.push(vec![
                    Step { row: 2, kind: 0 },
                    Step {
                        row: q,
                        kind: SEARCH_TOKEN,
                    },
                ]);
            }
            let theirs = model.score_batch(&inputs).unwrap();
            let dir = std::env::temp_dir()
                .join(format!("shelfwise-agree-{mode:?}-{}", std::process::id()));
            model.save(&dir).unwrap();
            let saved = Saved::load(&dir, CpuNn).unwrap();
            let interest = saved.interest(&inputs, &text.queries).unwrap();
            for (i, scores) in theirs.iter().enumerate() {
                let ours = saved.scores(&interest[i * c.dim..(i + 1) * c.dim]);
                for (item, (&a, &b)) in ours.iter().zip(scores).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{mode:?} input {i}, item {item}: engine {a}, trainer {b}"
                    );
                }
            }
            std::fs::remove_dir_all(&dir).ok();
        }
    }
}
