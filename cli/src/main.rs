//! `shelfwise`: the offline half of shelfwise. Commands:
//! - `synth` writes a synthetic catalogue (catalog.jsonl + vectors.safetensors) for tests, benchmarks and
//!   the demo;
//! - `shard` turns item vectors plus a catalogue JSONL into shards and a manifest;
//! - `embed` runs a BERT-family model (config.json, model.safetensors, tokenizer.json) over texts;
//! - `data` converts datasets into shelfwise's input formats (docs/DATA.md) and checks such files;
//! - `eval` measures recommenders on such data (leave-one-out, full ranking, history masked);
//! - `train` trains the interest model (candle), keeping the best epoch on validation NDCG@10.

mod data;
mod distill;
mod eval;
mod export;
mod report;
mod train;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::{Deserialize, Serialize};
use shelfwise::catalog::MANIFEST_FORMAT;
use shelfwise::{Attributes, Dtype, Manifest, ShardEntry, ShardSpec};
use shelfwise_testkit::synth::{self, SynthSpec};

#[derive(Parser)]
#[command(
    name = "shelfwise",
    version,
    about = "Offline tools for shelfwise: catalogues and shards, data, training, evaluation, text embeddings"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes a synthetic catalogue: clustered unit vectors, Zipf popularity, categories, prices.
    Synth {
        /// Number of items.
        #[arg(long, default_value_t = 100_000)]
        items: usize,
        /// Embedding dimension.
        #[arg(long, default_value_t = 64)]
        dim: usize,
        #[arg(long, default_value_t = 24)]
        categories: u32,
        #[arg(long, default_value_t = 64)]
        clusters: usize,
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output folder: catalog.jsonl and vectors.safetensors.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes shards and manifest.json from item vectors and a catalogue.
    Shard {
        /// safetensors file with a `vectors` tensor, F32 [N, D], row i for line i of the catalogue.
        #[arg(long)]
        vectors: PathBuf,
        /// Catalogue JSONL: one object per line with id, title, category, price, in_stock, popularity.
        #[arg(long)]
        catalog: PathBuf,
        /// Embedding storage: f32, f16 or int8.
        #[arg(long, default_value = "int8")]
        dtype: String,
        /// Items per shard file.
        #[arg(long, default_value_t = 262_144)]
        shard_items: usize,
        /// The model the vectors come from (queries must come from the same one).
        #[arg(long, default_value = "unspecified")]
        model_id: String,
        /// Store the vectors as given instead of L2-normalizing them.
        #[arg(long)]
        no_normalize: bool,
        /// Skip malformed catalogue lines (with a count) instead of failing.
        #[arg(long)]
        skip_bad: bool,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Converts or checks interaction data in shelfwise's formats (catalog.jsonl + events.jsonl).
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Evaluates recommenders by leave-one-out on catalog.jsonl + events.jsonl: full ranking with the
    /// history masked (and the 100-sampled-negatives protocol, for comparison with papers only).
    Eval {
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// Which targets: `test` (report once per configuration) or `valid` (for tuning).
        #[arg(long, default_value = "test")]
        split: String,
        /// Also evaluate a trained interest model (a folder `shelfwise train` wrote), run by shelfwise's
        /// own engine (repeatable).
        #[arg(long = "model")]
        models: Vec<PathBuf>,
        /// The text encoder the models were trained with (needed only when the events hold searches).
        #[arg(long)]
        encoder: Option<PathBuf>,
        #[command(flatten)]
        cold: ColdArgs,
        /// Also write a self-contained HTML report (metrics, HR@K curves, training curves, cold start).
        #[arg(long)]
        report: Option<PathBuf>,
        /// Also evaluate each model with its item vectors stored as int8, as an int8 shard stores them.
        #[arg(long)]
        int8: bool,
        /// Also evaluate each model with this added to the score of every item that never occurs in
        /// training (what `newItemBoost` does in the browser to items of popularity 0), repeatable.
        #[arg(long = "new-item-boost")]
        new_item_boosts: Vec<f32>,
        /// Skip malformed lines (with a count) instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Trains the interest model on catalog.jsonl + events.jsonl with candle on the CPU, stops early on
    /// validation NDCG@10, reports the test split once, and writes config.json, model.safetensors and
    /// items.safetensors in the engine's format, with train.json (the settings and per-epoch history).
    Train {
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        config: train::TrainConfig,
        #[command(flatten)]
        cold: ColdArgs,
        /// Skip malformed lines (with a count) instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Distils a compact text encoder (pruned vocabulary, a few MB) from a teacher such as
    /// all-MiniLM-L6-v2 on a catalogue's text, and reports its agreement with the teacher on held-out text.
    Distill {
        /// The teacher's folder (config.json, model.safetensors, tokenizer.json).
        #[arg(long)]
        teacher: PathBuf,
        #[arg(long)]
        catalog: PathBuf,
        /// Output folder: config.json, model.safetensors (F16), tokenizer.json, distill.json.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        config: distill::DistillConfig,
    },
    /// Writes the bundle the browser loads: manifest.json, the item shard(s), the interest model, the text
    /// encoder with its tokenizer, and items.json (display metadata).
    Export {
        #[command(flatten)]
        args: export::ExportArgs,
    },
    /// Recommends for a session from a bundle, natively, through the same pipeline the browser runs.
    Recommend {
        /// A bundle folder (`shelfwise export`).
        #[arg(long)]
        bundle: PathBuf,
        /// An event, oldest first: `TYPE:ITEM_ID` (view, click, add_to_cart, purchase, favorite, rate) or
        /// `search:QUERY` (repeatable).
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// auto, cpu or gpu.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Also recommend items the session already interacted with.
        #[arg(long)]
        keep_seen: bool,
    },
    /// Embeds texts with a BERT-family model and writes them, with their vectors, as JSON.
    Embed {
        /// Folder with config.json, model.safetensors and tokenizer.json.
        #[arg(long)]
        model: PathBuf,
        /// A JSON file holding an array of strings (or an object with a `texts` array).
        #[arg(long)]
        input: Option<PathBuf>,
        /// A text to embed (repeatable; after those of --input).
        #[arg(long = "text")]
        texts: Vec<String>,
        /// auto, cpu or gpu.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Tokens per text, at most (default: the model's positions).
        #[arg(long)]
        max_len: Option<usize>,
        /// Output JSON file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// MovieLens-100k (RecBole's atomic files, fetched by scripts/fetch-data.sh) to catalog.jsonl and
    /// events.jsonl: every rating an event, ordered by timestamp (ties keep the file's order).
    Ml100k {
        /// Folder with ml-100k.item and ml-100k.inter.
        #[arg(long, default_value = "cache/data/ml-100k")]
        source: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
    },
    /// Reads catalog.jsonl and events.jsonl as training does, and prints a summary or the first problem.
    Check {
        #[arg(long)]
        catalog: PathBuf,
        #[arg(long)]
        events: PathBuf,
        /// Skip malformed lines (with a count) instead of failing.
        #[arg(long)]
        skip_bad: bool,
    },
}

/// One line of the catalogue JSONL.
#[derive(Debug, Serialize, Deserialize)]
struct CatalogLine {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    category: Option<String>,
    /// The data format's list (docs/DATA.md); the first one is the shard's category when `category` is
    /// absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    categories: Vec<String>,
    #[serde(default)]
    price: Option<f32>,
    #[serde(default)]
    in_stock: Option<bool>,
    #[serde(default)]
    popularity: Option<f32>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Synth {
            items,
            dim,
            categories,
            clusters,
            seed,
            out,
        } => synth_cmd(
            &SynthSpec {
                items,
                dim,
                categories,
                clusters,
                seed,
            },
            &out,
        ),
        Command::Shard {
            vectors,
            catalog,
            dtype,
            shard_items,
            model_id,
            no_normalize,
            skip_bad,
            out,
        } => shard_cmd(&ShardArgs {
            vectors,
            catalog,
            dtype: Dtype::parse(&dtype)?,
            shard_items,
            model_id,
            normalize: !no_normalize,
            skip_bad,
            out,
        }),
        Command::Data { command } => data_cmd(command),
        Command::Export { args } => {
            let m = export::export(&args)?;
            let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum::<u64>()
                + m.recommender
                    .as_ref()
                    .map_or(0, |r| r.files().iter().map(|f| f.bytes).sum());
            println!(
                "wrote a bundle of {} items ({}, d = {}) to {}: {bytes} bytes in all",
                m.item_count,
                m.dtype.name(),
                m.dim,
                args.out.display()
            );
            // What a storefront pins with the `manifestSha256` load option.
            let manifest = std::fs::read(args.out.join("manifest.json"))?;
            println!(
                "manifest.json SHA-256: {}",
                shelfwise::catalog::sha256_hex(&manifest)
            );
            Ok(())
        }
        Command::Recommend {
            bundle,
            events,
            k,
            device,
            keep_seen,
        } => recommend_cmd(&bundle, &events, k, &device, keep_seen),
        Command::Distill {
            teacher,
            catalog,
            out,
            config,
        } => {
            let items = data::read_catalog(&catalog)?;
            let s = distill::distill(&teacher, &items, &out, &config, |l| eprintln!("{l}"))?;
            println!(
                "wrote {} ({} bytes, {} tokens) in {:.0} s; mean cosine with the teacher on held-out text: \
                 item texts {:.4}, item queries {:.4}, word pairs {:.4} (training strings {:.4})",
                out.display(),
                s.bytes,
                s.vocab,
                s.seconds,
                s.cosine_items,
                s.cosine_queries,
                s.cosine_pairs,
                s.cosine_train
            );
            Ok(())
        }
        Command::Train {
            catalog,
            events,
            out,
            config,
            cold,
            skip_bad,
        } => train_cmd(&catalog, &events, &out, &config, &cold, skip_bad),
        Command::Eval {
            catalog,
            events,
            split,
            models,
            encoder,
            cold,
            report,
            int8,
            new_item_boosts,
            skip_bad,
        } => eval_cmd(EvalArgs {
            catalog: &catalog,
            events: &events,
            which: &split,
            models: &models,
            encoder: encoder.as_deref(),
            cold,
            report: report.as_deref(),
            int8,
            new_item_boosts: &new_item_boosts,
            skip_bad,
        }),
        Command::Embed {
            model,
            input,
            texts,
            device,
            max_len,
            out,
        } => embed_cmd(
            &model,
            input.as_deref(),
            texts,
            &device,
            max_len,
            out.as_deref(),
        ),
    }
}

fn data_cmd(command: DataCommand) -> Result<()> {
    match command {
        DataCommand::Ml100k { source, out } => {
            if !source.join("ml-100k.inter").exists() {
                bail!(
                    "{} has no ml-100k.inter (scripts/fetch-data.sh fetches it)",
                    source.display()
                );
            }
            let (items, events) = data::convert_ml100k(&source, &out)?;
            println!(
                "wrote {items} items and {events} events to {}",
                out.display()
            );
        }
        DataCommand::Check {
            catalog,
            events,
            skip_bad,
        } => {
            let d = data::Dataset::load(&catalog, &events, skip_bad)?;
            let sessions: HashSet<&str> = d.events.iter().map(|e| e.session.as_str()).collect();
            println!(
                "{} items, {} events in {} sessions; skipped {} catalogue and {} event lines",
                d.items.len(),
                d.events.len(),
                sessions.len(),
                d.skipped.0,
                d.skipped.1
            );
        }
    }
    Ok(())
}

/// The cold-start split's flags (shared by `train` and `eval`, which must agree).
#[derive(Clone, Copy, Debug, clap::Args, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ColdArgs {
    /// Withhold this share of the catalogue (seeded) from training entirely: the cold-start split.
    #[arg(long, default_value_t = 0.0)]
    pub cold: f64,
    #[arg(long, default_value_t = 11)]
    pub cold_seed: u64,
}

impl ColdArgs {
    fn apply(&self, split: &mut eval::Split) -> Result<()> {
        if !(0.0..1.0).contains(&self.cold) {
            bail!("--cold must be in [0, 1)");
        }
        if self.cold > 0.0 {
            split.withhold(self.cold, self.cold_seed);
        }
        Ok(())
    }
}

/// What `shelfwise train` records next to the model (`train.json`).
#[derive(serde::Serialize, serde::Deserialize)]
struct TrainRecord {
    config: serde_json::Value,
    cold: ColdArgs,
    history: Vec<(usize, f64, f64, f64)>,
    seconds: f64,
}

fn train_cmd(
    catalog: &Path,
    events: &Path,
    out: &Path,
    c: &train::TrainConfig,
    cold: &ColdArgs,
    skip_bad: bool,
) -> Result<()> {
    c.check()?;
    let d = data::Dataset::load(catalog, events, skip_bad)?;
    let mut split = eval::Split::leave_one_out(&d);
    cold.apply(&mut split)?;
    if split.valid.is_empty() {
        bail!("no session has three item events: nothing to validate on");
    }
    let t0 = std::time::Instant::now();
    let text = match (&c.encoder, c.items) {
        (Some(e), m) if m != train::ItemVectors::Id => {
            let t = train::encode_texts(e, &d.items, &split)?;
            eprintln!(
                "encoded {} item texts and {} queries with {} in {:.1} s",
                d.items.len(),
                t.queries.len() / t.dim,
                e.display(),
                t0.elapsed().as_secs_f64()
            );
            Some(t)
        }
        _ => None,
    };
    eprintln!(
        "training on {} sessions, {} items ({} withheld): items {:?}, d = {}, {} layers, {} heads, last {} events, \
         dropout {}, id-dropout {}, search rate {}, lr {}",
        split.sessions.len(),
        split.items,
        split.cold.iter().filter(|&&c| c).count(),
        c.items,
        c.dim,
        c.layers,
        c.heads,
        c.max_len,
        c.dropout,
        c.id_dropout,
        c.search_rate,
        c.lr
    );
    let (model, history) = train::train(&split, c, text.as_ref(), |e| {
        eprintln!(
            "epoch {:>3}  loss {:.4}  valid NDCG@10 {:.4}  ({:.1} s)",
            e.epoch, e.loss, e.valid_ndcg10, e.seconds
        );
    })?;
    let best = history
        .iter()
        .max_by(|a, b| a.valid_ndcg10.total_cmp(&b.valid_ndcg10))
        .map_or(0.0, |e| e.valid_ndcg10);
    let seconds = t0.elapsed().as_secs_f64();
    let trained = train::Trained {
        model: &model,
        max_len: c.max_len,
        name: "interest".into(),
    };
    let test = trained.evaluate(&split, &split.test)?;
    println!(
        "trained in {seconds:.0} s; best valid NDCG@10 {best:.4}; test: HR@10 {:.4}, HR@20 {:.4}, NDCG@10 {:.4}, NDCG@20 {:.4}, MRR@10 {:.4}",
        test.hr10,
        test.hr20,
        test.ndcg10,
        test.ndcg20,
        test.mrr10
    );
    if cold.cold > 0.0 {
        let (cold_cases, warm_cases) = split.cold_and_warm();
        let (cm, wm) = (
            trained.evaluate(&split, &cold_cases)?,
            trained.evaluate(&split, &warm_cases)?,
        );
        println!(
            "cold targets ({}): HR@10 {:.4}, NDCG@10 {:.4}; warm targets ({}): HR@10 {:.4}, NDCG@10 {:.4}",
            cm.cases, cm.hr10, cm.ndcg10, wm.cases, wm.hr10, wm.ndcg10
        );
    }
    model.save(out)?;
    let ids: Vec<String> = d.items.iter().map(|i| i.id.clone()).collect();
    fs::write(
        out.join("parity.json"),
        serde_json::to_vec(&train::parity_cases(&model, &split, &ids, c.max_len, 100)?)?,
    )?;
    let record = TrainRecord {
        config: serde_json::to_value(c)?,
        cold: *cold,
        history: history
            .iter()
            .map(|e| (e.epoch, e.loss, e.valid_ndcg10, e.seconds))
            .collect(),
        seconds,
    };
    fs::write(out.join("train.json"), serde_json::to_vec_pretty(&record)?)?;
    Ok(())
}

/// `config.json` for an engine config.
pub(crate) fn cfg_json(c: &shelfwise::model::ModelConfig) -> serde_json::Value {
    let mut j = serde_json::json!({
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": c.hidden_act,
        "max_position_embeddings": c.max_position_embeddings,
        "type_vocab_size": c.type_vocab_size,
        "layer_norm_eps": c.layer_norm_eps,
        "shelfwise": {
            "pre_ln": c.shelfwise.pre_ln,
            "causal": c.shelfwise.causal,
            "pooling": match c.shelfwise.pooling {
                shelfwise::model::Pooling::Mean => "mean",
                shelfwise::model::Pooling::Cls => "cls",
                shelfwise::model::Pooling::Last => "last",
            },
            "normalize": c.shelfwise.normalize,
            "external_inputs": c.shelfwise.external_inputs,
        }
    });
    if let Some(o) = c.shelfwise.output_dim {
        j["shelfwise"]["output_dim"] = o.into();
    }
    j
}

struct EvalArgs<'a> {
    catalog: &'a Path,
    events: &'a Path,
    which: &'a str,
    models: &'a [PathBuf],
    encoder: Option<&'a Path>,
    cold: ColdArgs,
    report: Option<&'a Path>,
    int8: bool,
    new_item_boosts: &'a [f32],
    skip_bad: bool,
}

/// `shelfwise eval`: the baselines and each model on the chosen cases, printed as tables (and written as an
/// HTML report with `--report`).
fn eval_cmd(a: EvalArgs<'_>) -> Result<()> {
    let (split, cases) = eval_cases(&a)?;
    let mut scorers: Vec<Box<dyn eval::Scorer>> = vec![
        Box::new(eval::MostPopular::fit(&split)),
        Box::new(eval::Markov::fit(&split, 5)),
    ];
    let mut curves = Vec::new();
    for m in a.models {
        let (scores, curve) = model_scorers(&a, m, &split)?;
        curves.extend(curve);
        scorers.extend(
            scores
                .into_iter()
                .map(|s| Box::new(s) as Box<dyn eval::Scorer>),
        );
    }
    if let Some(b) = a.new_item_boosts.iter().find(|b| !b.is_finite()) {
        bail!("--new-item-boost must be finite, not {b}");
    }
    let new = eval::new_items(&split);
    let boosted = new_item_boosted(&scorers[2..], a.new_item_boosts, &new);
    let scorers: Vec<&dyn eval::Scorer> = scorers
        .iter()
        .map(|s| s.as_ref())
        .chain(boosted.iter().map(|b| b as &dyn eval::Scorer))
        .collect();
    let header = format!(
        "{} items, {} sessions, {} {} cases; full ranking, history masked, ties count against the target",
        split.items,
        split.sessions.len(),
        cases.len(),
        a.which
    );
    println!("{header}\n");
    let rows = metrics_table(&scorers, &split, &cases);
    let cold = if a.cold.cold > 0.0 {
        cold_start_table(&scorers, &split, &cases, &new, a.cold.cold_seed)
    } else {
        Vec::new()
    };
    if let Some(path) = a.report {
        write_eval_report(
            &a,
            path,
            EvalResults {
                header,
                rows,
                curves,
                cold,
            },
        )?;
    }
    Ok(())
}

/// Loads the data, splits it leave-one-out (withholding the cold-start items, if asked) and returns the
/// split with the cases `--split` names; an error when there are none.
fn eval_cases(a: &EvalArgs<'_>) -> Result<(eval::Split, Vec<eval::Case>)> {
    let d = data::Dataset::load(a.catalog, a.events, a.skip_bad)?;
    let mut split = eval::Split::leave_one_out(&d);
    a.cold.apply(&mut split)?;
    let cases = match a.which {
        "test" => split.test.clone(),
        "valid" => split.valid.clone(),
        other => bail!("--split must be test or valid, not `{other}`"),
    };
    if cases.is_empty() {
        bail!("no session has three item events, so there is nothing to evaluate");
    }
    Ok((split, cases))
}

/// The `train.json` in model folder `m`: its training curves and the split it was trained on; `None` for a
/// model folder written another way.
fn read_train_record(m: &Path) -> Result<Option<TrainRecord>> {
    match fs::read(m.join("train.json")) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
            format!("{}: train.json is not shelfwise's", m.display())
        })?)),
        Err(_) => Ok(None),
    }
}

/// Model `m`'s scores on every validation and test case, run by shelfwise's engine (then again with int8
/// rows under `--int8`), and its training curve when it has one. An error when it was trained on another
/// cold-start split.
fn model_scorers(
    a: &EvalArgs<'_>,
    m: &Path,
    split: &eval::Split,
) -> Result<(Vec<train::Precomputed>, Option<report::Curve>)> {
    let record = read_train_record(m)?;
    if let Some(r) = record.as_ref().filter(|r| r.cold != a.cold) {
        bail!(
            "{} was trained with --cold {} --cold-seed {}; evaluate it with the same split",
            m.display(),
            r.cold.cold,
            r.cold.cold_seed
        );
    }
    let name = m.file_name().map_or_else(
        || m.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let all: Vec<eval::Case> = split.valid.iter().chain(&split.test).copied().collect();
    let mut scores = train::engine_scores(m, a.encoder, split, &all, false)?;
    scores.name = format!("shelfwise: {name}");
    let int8 = if a.int8 {
        let mut q = train::engine_scores(m, a.encoder, split, &all, true)?;
        q.name = format!("shelfwise: {name}, int8 rows");
        Some(q)
    } else {
        None
    };
    let curve = record.map(|r| report::Curve {
        name: scores.name.clone(),
        epochs: r.history.iter().map(|h| (h.0, h.1, h.2)).collect(),
    });
    Ok((std::iter::once(scores).chain(int8).collect(), curve))
}

/// Each of `models` again with each of `boosts` added to the scores of the `new` items, boost by boost.
fn new_item_boosted<'a>(
    models: &'a [Box<dyn eval::Scorer>],
    boosts: &[f32],
    new: &'a [bool],
) -> Vec<eval::NewItemBoost<'a>> {
    boosts
        .iter()
        .flat_map(|&boost| models.iter().map(move |s| (boost, s)))
        .map(|(boost, s)| eval::NewItemBoost {
            inner: s.as_ref(),
            boost,
            new,
        })
        .collect()
}

/// Evaluates each scorer on `cases` (full ranking, and HR@10 on 100 sampled negatives), prints the table
/// and returns its rows.
fn metrics_table(
    scorers: &[&dyn eval::Scorer],
    split: &eval::Split,
    cases: &[eval::Case],
) -> Vec<report::ModelRow> {
    println!("| model | HR@10 | HR@20 | NDCG@10 | NDCG@20 | MRR@10 | HR@10, 100 sampled negatives (papers only) |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for s in scorers {
        let m = eval::evaluate(*s, split, cases, eval::Protocol::Full);
        let sampled = eval::evaluate(*s, split, cases, eval::Protocol::Sampled(100));
        println!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} |",
            s.name(),
            m.hr10,
            m.hr20,
            m.ndcg10,
            m.ndcg20,
            m.mrr10,
            sampled.hr10
        );
        rows.push(report::ModelRow {
            name: s.name(),
            hr10: m.hr10,
            hr20: m.hr20,
            ndcg10: m.ndcg10,
            ndcg20: m.ndcg20,
            mrr10: m.mrr10,
            cases: m.cases,
            hr_curve: m.hr_curve.clone(),
            sampled_hr10: Some(sampled.hr10),
        });
    }
    rows
}

/// Evaluates each scorer on the cases whose target was withheld from training and on the rest, with the
/// probability it puts on `new` items, prints the cold-start table and returns its rows.
fn cold_start_table(
    scorers: &[&dyn eval::Scorer],
    split: &eval::Split,
    cases: &[eval::Case],
    new: &[bool],
    cold_seed: u64,
) -> Vec<report::ColdRow> {
    let (cold, warm): (Vec<eval::Case>, Vec<eval::Case>) =
        cases.iter().partition(|c| split.cold[c.target as usize]);
    println!(
        "\ncold start: {} of {} items withheld from training (seed {}); {} cases have a withheld target\n\
         (the last column: the mean share of a model's softmax probability on items never in training, over \
         all {} cases, whose targets are such an item in {:.4} of them)\n",
        split.cold.iter().filter(|&&c| c).count(),
        split.items,
        cold_seed,
        cold.len(),
        cases.len(),
        cases.iter().filter(|c| new[c.target as usize]).count() as f64 / cases.len() as f64
    );
    println!(
        "| model | cold HR@10 | cold NDCG@10 | warm HR@10 | warm NDCG@10 | cold / warm HR@10 | probability on new items |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for s in scorers {
        let c = eval::evaluate(*s, split, &cold, eval::Protocol::Full);
        let w = eval::evaluate(*s, split, &warm, eval::Protocol::Full);
        let mass = match s.logits() {
            true => format!("{:.4}", eval::new_item_mass(*s, split, cases, new)),
            false => "-".into(),
        };
        println!(
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.2} | {mass} |",
            s.name(),
            c.hr10,
            c.ndcg10,
            w.hr10,
            w.ndcg10,
            c.hr10 / w.hr10,
        );
        rows.push(report::ColdRow {
            name: s.name(),
            cold_cases: c.cases,
            cold_hr10: c.hr10,
            cold_ndcg10: c.ndcg10,
            warm_cases: w.cases,
            warm_hr10: w.hr10,
            warm_ndcg10: w.ndcg10,
        });
    }
    rows
}

/// What `eval` measured, for its HTML report.
struct EvalResults {
    /// The line that opens the printed results (data, cases, protocol).
    header: String,
    rows: Vec<report::ModelRow>,
    curves: Vec<report::Curve>,
    cold: Vec<report::ColdRow>,
}

/// Writes the HTML report of `results` to `path`.
fn write_eval_report(a: &EvalArgs<'_>, path: &Path, results: EvalResults) -> Result<()> {
    let html = report::render(&report::Report {
        title: format!("shelfwise evaluation: {}", a.events.display()),
        notes: vec![
            results.header,
            "Leave-one-out: the last item event of each session is the test target, the one before it \
             the validation target; models were tuned on validation only."
                .into(),
            format!("Command: shelfwise {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")),
        ],
        split: a.which.to_string(),
        rows: results.rows,
        curves: results.curves,
        cold: results.cold,
    })?;
    fs::write(path, html).with_context(|| format!("writing {}", path.display()))?;
    println!("\nwrote {}", path.display());
    Ok(())
}

fn recommend_cmd(
    bundle: &Path,
    events: &[String],
    k: usize,
    device: &str,
    keep_seen: bool,
) -> Result<()> {
    use shelfwise::pipeline::{Reason, Recommender, SessionEvent};
    let session: Vec<SessionEvent> = events
        .iter()
        .map(|e| match e.split_once(':') {
            Some((kind, q)) if kind == shelfwise::events::SEARCH.name => {
                Ok(SessionEvent::Search { query: q.into() })
            }
            Some((kind, id)) => Ok(SessionEvent::Item {
                kind: kind.into(),
                id: id.into(),
            }),
            None => bail!("--event `{e}` is not TYPE:ITEM_ID or search:QUERY"),
        })
        .collect::<Result<_>>()?;
    let manifest = fs::read(bundle.join("manifest.json"))
        .with_context(|| format!("reading {}", bundle.join("manifest.json").display()))?;
    let t0 = std::time::Instant::now();
    let rec = pollster::block_on(Recommender::load(
        &manifest,
        |f| {
            fs::read(bundle.join(f)).map_err(|e| shelfwise::Error::Fetch {
                url: f.to_string(),
                reason: e.to_string(),
            })
        },
        shelfwise::DeviceChoice::parse(device)?,
    ))?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let titles: HashMap<String, String> = match &rec.files().items {
        Some(f) => {
            let v: Vec<serde_json::Value> =
                serde_json::from_slice(&fs::read(bundle.join(&f.file))?)?;
            v.into_iter()
                .filter_map(|i| {
                    Some((
                        i["id"].as_str()?.to_string(),
                        i["title"].as_str()?.to_string(),
                    ))
                })
                .collect()
        }
        None => HashMap::new(),
    };
    let title = |id: &str| titles.get(id).cloned().unwrap_or_else(|| id.to_string());
    let exclude = if keep_seen {
        Vec::new()
    } else {
        session
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Item { id, .. } => Some(id.clone()),
                SessionEvent::Search { .. } => None,
            })
            .collect()
    };
    let t1 = std::time::Instant::now();
    let out = pollster::block_on(rec.recommend(
        &session,
        &shelfwise::SearchOptions {
            k,
            exclude,
            ..Default::default()
        },
        None,
    ))?
    .items;
    println!(
        "{} items; model on {:?}, ranking on {:?}; loaded in {load_ms:.0} ms, recommended in {:.1} ms",
        rec.catalog().len(),
        rec.model_backend(),
        rec.rank_backend(),
        t1.elapsed().as_secs_f64() * 1e3
    );
    for (i, r) in out.iter().enumerate() {
        let why = match &r.reason {
            Reason::Item { kind, id } => format!("because of {kind} of {}", title(id)),
            Reason::Query { query } => format!("because you searched \"{query}\""),
            Reason::Similar { id } => format!("like {}", title(id)),
            Reason::Profile => "from your earlier visits".into(),
            Reason::Popular => "popular".into(),
        };
        println!("{:>3}. {:<50} {:>8.4}  {why}", i + 1, title(&r.id), r.score);
    }
    Ok(())
}

fn embed_cmd(
    model: &Path,
    input: Option<&Path>,
    extra: Vec<String>,
    device: &str,
    max_len: Option<usize>,
    out: Option<&Path>,
) -> Result<()> {
    let mut texts: Vec<String> = match input {
        Some(p) => {
            let v: serde_json::Value = serde_json::from_slice(
                &fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{} is not JSON", p.display()))?;
            let list = v.get("texts").unwrap_or(&v);
            serde_json::from_value(list.clone())
                .with_context(|| format!("{}: expected an array of strings", p.display()))?
        }
        None => Vec::new(),
    };
    texts.extend(extra);
    if texts.is_empty() {
        bail!("nothing to embed: give --input or --text");
    }
    let read = |name: &str| {
        let p = model.join(name);
        fs::read(&p).with_context(|| format!("reading {}", p.display()))
    };
    let (config, weights, tokenizer) = (
        read("config.json")?,
        read("model.safetensors")?,
        read("tokenizer.json")?,
    );
    let files = shelfwise::model::ModelFiles {
        config: &config,
        weights: &weights,
        tokenizer: &tokenizer,
    };
    let device = shelfwise::DeviceChoice::parse(device)?;
    let embedder = pollster::block_on(shelfwise::Embedder::load(files, device, max_len))?;
    let vectors = pollster::block_on(embedder.embed(&texts))?;
    let dim = embedder.dim();
    let json = serde_json::json!({
        "backend": embedder.backend().name(),
        "adapter": embedder.adapter(),
        "dim": dim,
        "max_len": embedder.max_len(),
        "texts": texts,
        "embeddings": vectors.chunks(dim).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string(&json)?;
    match out {
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                fs::create_dir_all(dir)?;
            }
            fs::write(p, text)?;
            eprintln!(
                "embedded {} texts ({dim} dims, {}) into {}",
                texts.len(),
                embedder.backend().name(),
                p.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

fn synth_cmd(spec: &SynthSpec, out: &Path) -> Result<()> {
    if spec.items == 0 || spec.dim == 0 {
        bail!("--items and --dim must be at least 1");
    }
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let cat = synth::generate(spec);
    let a = &cat.attributes;
    let mut w = BufWriter::new(fs::File::create(out.join("catalog.jsonl"))?);
    for i in 0..spec.items {
        let line = CatalogLine {
            id: cat.ids[i].clone(),
            title: cat.titles[i].clone(),
            category: a
                .category
                .as_ref()
                .map(|c| cat.category_names[c[i] as usize].clone()),
            categories: Vec::new(),
            price: a.price.as_ref().map(|p| p[i]),
            in_stock: a.in_stock.as_ref().map(|s| s[i]),
            popularity: a.popularity.as_ref().map(|p| p[i]),
        };
        serde_json::to_writer(&mut w, &line)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![spec.items, spec.dim],
        bytemuck::cast_slice(&cat.vectors),
    )?;
    let bytes = safetensors::serialize([("vectors", view)], None)?;
    fs::write(out.join("vectors.safetensors"), bytes)?;
    println!(
        "wrote {} items ({} dims, {} categories) to {}",
        spec.items,
        spec.dim,
        cat.category_names.len(),
        out.display()
    );
    Ok(())
}

struct ShardArgs {
    vectors: PathBuf,
    catalog: PathBuf,
    dtype: Dtype,
    shard_items: usize,
    model_id: String,
    normalize: bool,
    skip_bad: bool,
    out: PathBuf,
}

fn read_catalog(path: &Path, skip_bad: bool) -> Result<(Vec<Option<CatalogLine>>, usize)> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut lines = Vec::new();
    let mut skipped = 0;
    let mut seen = HashSet::new();
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: unreadable line", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: Result<CatalogLine> = serde_json::from_str::<CatalogLine>(&line)
            .map_err(anyhow::Error::from)
            .and_then(|mut l| {
                if l.category.is_none() {
                    l.category = l.categories.first().cloned();
                }
                if l.id.is_empty() {
                    bail!("empty id");
                }
                if l.price.is_some_and(|p| !p.is_finite())
                    || l.popularity.is_some_and(|p| !p.is_finite())
                {
                    bail!("price and popularity must be finite numbers");
                }
                Ok(l)
            });
        match parsed {
            Ok(l) => {
                if !seen.insert(l.id.clone()) {
                    bail!("{}:{}: duplicate item id `{}`", path.display(), n + 1, l.id);
                }
                lines.push(Some(l));
            }
            Err(e) if skip_bad => {
                skipped += 1;
                eprintln!("{}:{}: skipped: {e}", path.display(), n + 1);
                // Keep the slot so vector rows stay aligned with catalogue lines.
                lines.push(None);
            }
            Err(e) => bail!(
                "{}:{}: {e} (use --skip-bad to skip such lines)",
                path.display(),
                n + 1
            ),
        }
    }
    if lines.iter().all(Option::is_none) {
        bail!("{}: the catalogue is empty", path.display());
    }
    Ok((lines, skipped))
}

fn shard_cmd(args: &ShardArgs) -> Result<()> {
    if args.shard_items == 0 {
        bail!("--shard-items must be at least 1");
    }
    let (lines, skipped) = read_catalog(&args.catalog, args.skip_bad)?;
    let vbytes =
        fs::read(&args.vectors).with_context(|| format!("reading {}", args.vectors.display()))?;
    let st = safetensors::SafeTensors::deserialize(&vbytes)
        .with_context(|| format!("{} is not a safetensors file", args.vectors.display()))?;
    let v = st
        .tensor("vectors")
        .with_context(|| format!("{} has no `vectors` tensor", args.vectors.display()))?;
    if v.dtype() != safetensors::Dtype::F32 || v.shape().len() != 2 {
        bail!(
            "`vectors` must be F32 of rank 2, found {:?} {:?}",
            v.dtype(),
            v.shape()
        );
    }
    let (n, dim) = (v.shape()[0], v.shape()[1]);
    if n != lines.len() {
        bail!("{} vectors for {} catalogue lines", n, lines.len());
    }
    let all: Vec<f32> = bytemuck::pod_collect_to_vec(v.data());

    // Category names in first-seen order become ids 0..C.
    let mut names: BTreeMap<String, u32> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for l in lines.iter().flatten() {
        if let Some(c) = &l.category {
            if !names.contains_key(c) {
                names.insert(c.clone(), order.len() as u32);
                order.push(c.clone());
            }
        }
    }
    let kept: Vec<(usize, &CatalogLine)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| l.as_ref().map(|l| (i, l)))
        .collect();
    let any = |f: fn(&CatalogLine) -> bool| kept.iter().any(|(_, l)| f(l));
    let every = |f: fn(&CatalogLine) -> bool| kept.iter().all(|(_, l)| f(l));
    for (field, has_any, has_all) in [
        (
            "category",
            any(|l| l.category.is_some()),
            every(|l| l.category.is_some()),
        ),
        (
            "price",
            any(|l| l.price.is_some()),
            every(|l| l.price.is_some()),
        ),
        (
            "in_stock",
            any(|l| l.in_stock.is_some()),
            every(|l| l.in_stock.is_some()),
        ),
        (
            "popularity",
            any(|l| l.popularity.is_some()),
            every(|l| l.popularity.is_some()),
        ),
    ] {
        if has_any && !has_all {
            bail!("`{field}` is set on some catalogue lines but not all; set it on every line or none");
        }
    }

    fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let mut entries = Vec::new();
    for (s, chunk) in kept.chunks(args.shard_items).enumerate() {
        let ids: Vec<&str> = chunk.iter().map(|(_, l)| l.id.as_str()).collect();
        let mut vectors = Vec::with_capacity(chunk.len() * dim);
        for (i, _) in chunk {
            vectors.extend_from_slice(&all[i * dim..(i + 1) * dim]);
        }
        let attributes = Attributes {
            category: (!order.is_empty()).then(|| {
                chunk
                    .iter()
                    .map(|(_, l)| names[l.category.as_ref().unwrap()])
                    .collect()
            }),
            price: chunk
                .iter()
                .all(|(_, l)| l.price.is_some())
                .then(|| chunk.iter().map(|(_, l)| l.price.unwrap()).collect()),
            in_stock: chunk
                .iter()
                .all(|(_, l)| l.in_stock.is_some())
                .then(|| chunk.iter().map(|(_, l)| l.in_stock.unwrap()).collect()),
            popularity: chunk
                .iter()
                .all(|(_, l)| l.popularity.is_some())
                .then(|| chunk.iter().map(|(_, l)| l.popularity.unwrap()).collect()),
        };
        let bytes = shelfwise::write_shard(&ShardSpec {
            ids: &ids,
            vectors: &vectors,
            dim,
            dtype: args.dtype,
            normalize: args.normalize,
            model_id: &args.model_id,
            num_categories: (!order.is_empty()).then_some(order.len() as u32),
            attributes: &attributes,
        })?;
        let file = format!("shard-{s:03}.safetensors");
        fs::write(args.out.join(&file), &bytes)?;
        entries.push(ShardEntry::describe(file, &bytes, chunk.len(), args.dtype));
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: shelfwise::shard::FORMAT_VERSION,
        model_id: args.model_id.clone(),
        dim,
        dtype: args.dtype,
        normalized: args.normalize,
        item_count: kept.len(),
        categories: order,
        shards: entries,
        recommender: None,
    };
    manifest.validate()?;
    fs::write(
        args.out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    let total: u64 = manifest.shards.iter().map(|s| s.bytes).sum();
    println!(
        "wrote {} items in {} shard(s), {} bytes, {} to {}{}",
        manifest.item_count,
        manifest.shards.len(),
        total,
        args.dtype.name(),
        args.out.display(),
        if skipped > 0 {
            format!(" ({skipped} bad lines skipped)")
        } else {
            String::new()
        }
    );
    Ok(())
}
