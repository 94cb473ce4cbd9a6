//! Distilling a compact text encoder from a BERT-family teacher (all-MiniLM-L6-v2).
//!
//! The student is a small pre-LN BERT that shelfwise's engine runs like any other: mean pooling, then a
//! dense `projection` into the teacher's space, then L2 normalisation, so its vectors are directly
//! comparable with the teacher's.
//!
//! - **Vocabulary:** the teacher's WordPiece vocabulary pruned to the tokens the catalogue's text and
//!   query-like strings use, every single-character piece of printable ASCII (so any word still
//!   tokenizes), and then the teacher's most frequent whole words (its vocabulary is roughly ordered by
//!   frequency) up to the budget. The tokenizer file is the teacher's with the vocabulary renumbered.
//! - **Initialisation:** token and position embeddings are the teacher's, projected onto their top
//!   principal directions (subspace iteration), and the output projection starts as the way back, so the
//!   untrained student is already a rough bag-of-words version of the teacher.
//! - **Data:** item texts, the strings a shopper might type for each item ([`Item::queries`]), every kept
//!   whole word alone, and random pairs of them. The teacher embeds each once.
//! - **Loss:** one minus the cosine between the student's and the teacher's vectors.
//! - **Held out:** a seeded tenth of the items (their texts and queries) and of the word pairs never train;
//!   the agreement reported is the mean cosine on them, computed by shelfwise's engine on the saved files.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use shelfwise::model::{BertWeights, ModelConfig};
use shelfwise::rng::Rng;
use shelfwise::tokenize::{Batch, Tokenizer};

use crate::data::Item;
use crate::train::{
    dropout, embed_all, encoder_layers, epoch_bar, load_encoder, shuffle, vars_to_safetensors,
};

/// What `shelfwise distill` can set.
#[derive(Clone, Debug, clap::Args, serde::Serialize)]
pub struct DistillConfig {
    /// Tokens kept from the teacher's vocabulary.
    #[arg(long, default_value_t = 7000)]
    pub vocab: usize,
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    #[arg(long, default_value_t = 2)]
    pub layers: usize,
    #[arg(long, default_value_t = 2)]
    pub heads: usize,
    #[arg(long, default_value_t = 256)]
    pub intermediate: usize,
    /// Tokens per text, special tokens included.
    #[arg(long, default_value_t = 48)]
    pub max_len: usize,
    #[arg(long, default_value_t = 20)]
    pub epochs: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f32,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Random pairs of kept words added to the training strings, per kept word.
    #[arg(long, default_value_t = 1.0)]
    pub pairs_per_word: f32,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// What distillation measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub vocab: usize,
    pub bytes: u64,
    pub train_strings: usize,
    pub held_out_items: usize,
    /// Mean cosine with the teacher on held-out item texts, held-out item queries and held-out word pairs,
    /// and on training strings.
    pub cosine_items: f64,
    pub cosine_queries: f64,
    pub cosine_pairs: f64,
    pub cosine_train: f64,
    pub seconds: f64,
    pub epochs: Vec<(usize, f64)>,
}

/// Is `t` a whole word the student should know: lower-case ASCII letters, two or more.
fn is_word(t: &str) -> bool {
    t.len() >= 2 && t.bytes().all(|b| b.is_ascii_lowercase())
}

/// The teacher's `tokenizer.json` with only `keep` (teacher ids, ascending) left, renumbered in order.
fn prune_tokenizer(json: &serde_json::Value, keep: &[u32]) -> Result<serde_json::Value> {
    let mut out = json.clone();
    let vocab = json["model"]["vocab"]
        .as_object()
        .context("the teacher's tokenizer is not WordPiece with a vocab map")?;
    let by_id: HashMap<u32, &str> = vocab
        .iter()
        .filter_map(|(t, id)| Some((id.as_u64()? as u32, t.as_str())))
        .collect();
    let new_id: HashMap<u32, u32> = keep
        .iter()
        .enumerate()
        .map(|(i, &old)| (old, i as u32))
        .collect();
    let mut v = serde_json::Map::new();
    for &old in keep {
        let tok = by_id
            .get(&old)
            .context("a kept id is not in the vocabulary")?;
        v.insert(tok.to_string(), new_id[&old].into());
    }
    out["model"]["vocab"] = v.into();
    let remap = |x: &mut serde_json::Value| -> Result<()> {
        let old = x.as_u64().context("a token id is not a number")? as u32;
        *x = (*new_id
            .get(&old)
            .with_context(|| format!("special token id {old} was pruned"))?)
        .into();
        Ok(())
    };
    if let Some(list) = out["added_tokens"].as_array_mut() {
        for t in list {
            remap(&mut t["id"])?;
        }
    }
    if let Some(specials) = out["post_processor"]["special_tokens"].as_object_mut() {
        for s in specials.values_mut() {
            if let Some(ids) = s["ids"].as_array_mut() {
                for id in ids {
                    remap(id)?;
                }
            }
        }
    }
    if out["padding"].is_object() {
        remap(&mut out["padding"]["pad_id"])?;
    }
    Ok(out)
}

/// Top-`k` principal directions of the rows of `x` (`[n, d]`), as `[d, k]` with orthonormal columns, by
/// seeded subspace iteration on the covariance.
fn principal_directions(x: &[f32], d: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = x.len() / d;
    let mut mean = vec![0.0f64; d];
    for r in x.chunks(d) {
        mean.iter_mut()
            .zip(r)
            .for_each(|(m, &v)| *m += v as f64 / n as f64);
    }
    let mut cov = vec![0.0f64; d * d];
    for r in x.chunks(d) {
        let c: Vec<f64> = r.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += c[i] * c[j];
            }
        }
    }
    let mut rng = Rng::new(seed);
    let mut q: Vec<f64> = (0..d * k).map(|_| rng.normal() as f64).collect();
    for _ in 0..30 {
        let mut z = vec![0.0f64; d * k];
        for i in 0..d {
            for l in 0..d {
                let c = cov[i * d + l];
                for j in 0..k {
                    z[i * k + j] += c * q[l * k + j];
                }
            }
        }
        // Modified Gram-Schmidt on the columns.
        for j in 0..k {
            for p in 0..j {
                let dot: f64 = (0..d).map(|i| z[i * k + j] * z[i * k + p]).sum();
                (0..d).for_each(|i| z[i * k + j] -= dot * z[i * k + p]);
            }
            let norm = (0..d)
                .map(|i| z[i * k + j].powi(2))
                .sum::<f64>()
                .sqrt()
                .max(1e-30);
            (0..d).for_each(|i| z[i * k + j] /= norm);
        }
        q = z;
    }
    q.into_iter().map(|v| v as f32).collect()
}

/// `rows` (`[n, d]`) times `p` (`[d, k]`).
fn project(rows: &[f32], d: usize, p: &[f32], k: usize) -> Vec<f32> {
    rows.chunks(d)
        .flat_map(|r| {
            (0..k).map(move |j| {
                r.iter()
                    .enumerate()
                    .map(|(i, &v)| v * p[i * k + j])
                    .sum::<f32>()
            })
        })
        .collect()
}

fn config_json(c: &DistillConfig, vocab: usize, out_dim: usize) -> serde_json::Value {
    serde_json::json!({
        "vocab_size": vocab,
        "hidden_size": c.dim,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": c.intermediate,
        "hidden_act": "gelu",
        "max_position_embeddings": c.max_len,
        "type_vocab_size": 2,
        "layer_norm_eps": 1e-12,
        "shelfwise": {"pre_ln": true, "causal": false, "pooling": "mean", "normalize": true,
                      "output_dim": out_dim}
    })
}

/// Writes `weights` as an F16 safetensors file.
fn write_f16(path: &Path, weights: &BertWeights) -> Result<()> {
    let named = weights.named_tensors();
    let halves: Vec<Vec<u16>> = named
        .iter()
        .map(|(_, _, d)| {
            d.iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect()
        })
        .collect();
    let views = named
        .iter()
        .zip(&halves)
        .map(|((n, s, _), h)| {
            Ok((
                n.clone(),
                safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F16,
                    s.clone(),
                    bytemuck::cast_slice(h),
                )?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::write(path, safetensors::serialize(views, None)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn mean_cosine(a: &[f32], b: &[f32], d: usize) -> f64 {
    let n = a.len() / d;
    if n == 0 {
        return f64::NAN;
    }
    a.chunks(d)
        .zip(b.chunks(d))
        .map(|(x, y)| {
            let dot: f32 = x.iter().zip(y).map(|(p, q)| p * q).sum();
            let nx = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            let ny = y.iter().map(|v| v * v).sum::<f32>().sqrt();
            (dot / (nx * ny).max(1e-12)) as f64
        })
        .sum::<f64>()
        / n as f64
}

/// Distils the teacher in `teacher` on `items`' text into `out` (config.json, model.safetensors in F16,
/// tokenizer.json, distill.json).
pub fn distill(
    teacher: &Path,
    items: &[Item],
    out: &Path,
    c: &DistillConfig,
    mut log: impl FnMut(&str),
) -> Result<Summary> {
    check_config(c)?;
    let t0 = std::time::Instant::now();
    let t = Teacher::load(teacher, c.max_len)?;
    let th = t.cfg.hidden_size;

    let mut rng = Rng::new(c.seed);
    let (item_texts, query_texts) = hold_out_items(items, &mut rng);
    let catalogue: Vec<&String> = item_texts
        .0
        .iter()
        .chain(&item_texts.1)
        .chain(&query_texts.0)
        .chain(&query_texts.1)
        .collect();
    let vocab = choose_vocabulary(&t, &catalogue, c.vocab)?;
    log(&format!(
        "vocabulary: {} tokens ({} from the catalogue, specials and characters, {} more words)",
        vocab.keep.len(),
        vocab.from_catalogue,
        vocab.keep.len() - vocab.from_catalogue
    ));
    let pruned_bytes = serde_json::to_vec(&prune_tokenizer(&t.tok_json, &vocab.keep)?)?;
    let student_tok = Tokenizer::from_bytes(&pruned_bytes, c.max_len)?;

    let pairs = word_pairs(&vocab.words, c.pairs_per_word, &mut rng);
    let train_strings = training_strings(&item_texts.0, &query_texts.0, &vocab.words, &pairs.0);
    let held_out: Vec<&Vec<String>> = vec![&item_texts.1, &query_texts.1, &pairs.1];

    // Teacher vectors.
    let teacher_enc = load_encoder(teacher)?;
    let train = Embedded {
        strings: &train_strings,
        vectors: embed_all(&teacher_enc, &train_strings)?,
    };
    let held = held_out
        .iter()
        .map(|t| {
            Ok(Embedded {
                strings: t,
                vectors: embed_all(&teacher_enc, t)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    log(&format!(
        "teacher embedded {} training and {} held-out strings ({:.0} s)",
        train_strings.len(),
        held_out.iter().map(|h| h.len()).sum::<usize>(),
        t0.elapsed().as_secs_f64()
    ));

    let config = config_json(c, vocab.keep.len(), th);
    let cfg = ModelConfig::from_json(config.to_string().as_bytes())?;
    let weights = init_student(c, &t, &vocab.keep, &cfg);
    let student = Student {
        cfg,
        weights,
        tokenizer: student_tok,
    };
    let (vars, history) = train_student(c, &student, &train, th, &mut rng, &mut log)?;

    // Save, then measure through the engine on the saved files.
    let trained = BertWeights::from_safetensors(
        "student",
        &vars_to_safetensors(vars.vars.iter())?,
        &student.cfg,
    )?;
    let bytes = save_student(out, &config, &trained, &pruned_bytes)?;
    let (cosines, cosine_train) = measure(out, &held, &train, th)?;
    let summary = Summary {
        vocab: vocab.keep.len(),
        bytes,
        train_strings: train_strings.len(),
        held_out_items: item_texts.1.len(),
        cosine_items: cosines[0],
        cosine_queries: cosines[1],
        cosine_pairs: cosines[2],
        cosine_train,
        seconds: t0.elapsed().as_secs_f64(),
        epochs: history,
    };
    std::fs::write(
        out.join("distill.json"),
        serde_json::to_vec_pretty(&serde_json::json!({"config": c, "summary": summary}))?,
    )?;
    Ok(summary)
}

/// Rejects settings the student cannot be built or trained with.
fn check_config(c: &DistillConfig) -> Result<()> {
    if c.dim == 0 || c.heads == 0 || !c.dim.is_multiple_of(c.heads) || c.layers == 0 {
        bail!("--dim must be a positive multiple of --heads, and --layers at least 1");
    }
    if c.vocab < 200 || c.max_len < 4 || c.epochs == 0 || c.batch == 0 {
        bail!(
            "--vocab must be at least 200, --max-len at least 4, --epochs and --batch at least 1"
        );
    }
    Ok(())
}

/// The teacher's files, parsed.
struct Teacher {
    /// `tokenizer.json`, to prune.
    tok_json: serde_json::Value,
    tok: Tokenizer,
    cfg: ModelConfig,
    weights: BertWeights,
}

impl Teacher {
    /// Reads and parses the teacher's tokenizer (cut to `max_len` tokens), config and weights in `dir`.
    fn load(dir: &Path, max_len: usize) -> Result<Teacher> {
        let read = |f: &str| {
            std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
        };
        let tok_bytes = read("tokenizer.json")?;
        let tok_json: serde_json::Value = serde_json::from_slice(&tok_bytes)?;
        let tok = Tokenizer::from_bytes(&tok_bytes, max_len)?;
        let cfg = ModelConfig::from_json(&read("config.json")?)?;
        let weights =
            BertWeights::from_safetensors("model.safetensors", &read("model.safetensors")?, &cfg)?;
        Ok(Teacher {
            tok_json,
            tok,
            cfg,
            weights,
        })
    }
}

/// Strings split into (training, held-out).
type Halves = (Vec<String>, Vec<String>);

/// The item texts and the item queries, each split into (training, held-out): a seeded tenth of the items
/// is held out.
fn hold_out_items(items: &[Item], rng: &mut Rng) -> (Halves, Halves) {
    let held: Vec<bool> = items.iter().map(|_| rng.uniform() < 0.1).collect();
    let mut item_texts = (Vec::new(), Vec::new());
    let mut query_texts = (Vec::new(), Vec::new());
    for (it, &h) in items.iter().zip(&held) {
        let (t, q) = if h {
            (&mut item_texts.1, &mut query_texts.1)
        } else {
            (&mut item_texts.0, &mut query_texts.0)
        };
        t.push(it.text());
        q.extend(it.queries());
    }
    (item_texts, query_texts)
}

/// The student's vocabulary.
struct Vocabulary {
    /// Teacher ids kept, ascending.
    keep: Vec<u32>,
    /// The kept whole words ([`is_word`]).
    words: Vec<String>,
    /// How many of `keep` are specials, catalogue tokens and single characters (the rest are words).
    from_catalogue: usize,
}

/// The vocabulary, at most `budget` tokens unless the first three groups need more: the specials, what
/// the `catalogue` strings use, printable ASCII pieces, then the teacher's most frequent words.
fn choose_vocabulary(
    teacher: &Teacher,
    catalogue: &[&String],
    budget: usize,
) -> Result<Vocabulary> {
    let vocab = teacher.tok_json["model"]["vocab"]
        .as_object()
        .context("the teacher's tokenizer is not WordPiece with a vocab map")?;
    let mut by_id: Vec<(u32, &str)> = vocab
        .iter()
        .filter_map(|(t, id)| Some((id.as_u64()? as u32, t.as_str())))
        .collect();
    by_id.sort_unstable();
    let mut keep: BTreeSet<u32> = BTreeSet::new();
    for t in teacher.tok_json["added_tokens"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(id) = t["id"].as_u64() {
            keep.insert(id as u32);
        }
    }
    for chunk in catalogue.chunks(256) {
        let b = teacher.tok.encode_batch(chunk)?;
        keep.extend(
            b.ids
                .iter()
                .zip(&b.attention_mask)
                .filter(|p| *p.1 == 1)
                .map(|p| *p.0),
        );
    }
    for &(id, t) in &by_id {
        let piece = t.strip_prefix("##").unwrap_or(t);
        if piece.chars().count() == 1 && piece.chars().all(|ch| ch.is_ascii_graphic()) {
            keep.insert(id);
        }
    }
    let from_catalogue = keep.len();
    let mut words = Vec::new();
    for &(id, t) in &by_id {
        if keep.len() >= budget {
            break;
        }
        if is_word(t) && keep.insert(id) {
            words.push(t.to_string());
        }
    }
    for &(id, t) in &by_id {
        if is_word(t) && keep.contains(&id) && !words.iter().any(|w| w == t) {
            words.push(t.to_string());
        }
    }
    Ok(Vocabulary {
        keep: keep.into_iter().collect(),
        words,
        from_catalogue,
    })
}

/// Random pairs of `words`, `pairs_per_word` per word, split into (training, held-out): a seeded tenth of
/// the pairs is held out.
fn word_pairs(words: &[String], pairs_per_word: f32, rng: &mut Rng) -> Halves {
    let mut pairs = (Vec::new(), Vec::new());
    let n_pairs = (words.len() as f32 * pairs_per_word) as usize;
    for _ in 0..n_pairs {
        let a = &words[rng.below(words.len() as u64) as usize];
        let b = &words[rng.below(words.len() as u64) as usize];
        let p = format!("{a} {b}");
        if rng.uniform() < 0.1 {
            pairs.1.push(p);
        } else {
            pairs.0.push(p);
        }
    }
    pairs
}

/// The training strings: the training item texts and queries, each kept word alone and the training word
/// pairs, sorted, without duplicates.
fn training_strings(
    item_texts: &[String],
    queries: &[String],
    words: &[String],
    pairs: &[String],
) -> Vec<String> {
    let mut strings: Vec<String> = item_texts.to_vec();
    strings.extend(queries.iter().cloned());
    strings.extend(words.iter().cloned());
    strings.extend(pairs.iter().cloned());
    strings.sort();
    strings.dedup();
    strings
}

/// Strings and the teacher's vectors for them (`[strings, teacher width]`).
struct Embedded<'a> {
    strings: &'a [String],
    vectors: Vec<f32>,
}

/// The untrained student: random weights of `cfg`, with the teacher's token, position and token-type
/// embeddings projected onto their top `c.dim` principal directions (only the `keep` tokens), unit
/// norms, and an output projection that maps back into the teacher's space.
fn init_student(c: &DistillConfig, t: &Teacher, keep: &[u32], cfg: &ModelConfig) -> BertWeights {
    let (tw, th) = (&t.weights, t.cfg.hidden_size);
    let mut w = BertWeights::random(cfg, c.seed);
    let rows: Vec<f32> = keep
        .iter()
        .flat_map(|&id| {
            tw.word[id as usize * th..(id as usize + 1) * th]
                .iter()
                .copied()
        })
        .collect();
    let p = principal_directions(&rows, th, c.dim, c.seed ^ 0x9ca);
    w.word = project(&rows, th, &p, c.dim);
    let npos = c.max_len.min(t.cfg.max_position_embeddings);
    w.position = vec![0.0; c.max_len * c.dim];
    w.position[..npos * c.dim].copy_from_slice(&project(&tw.position[..npos * th], th, &p, c.dim));
    w.token_type = project(&tw.token_type[..2 * th], th, &p, c.dim);
    for n in std::iter::once(&mut w.embed_norm).chain(&mut w.final_norm) {
        n.gamma.iter_mut().for_each(|g| *g = 1.0);
        n.beta.iter_mut().for_each(|b| *b = 0.0);
    }
    if let Some(proj) = &mut w.projection {
        // [th, dim] = P^T's transpose: row i of the projection is row i of P.
        proj.w = p.clone();
        proj.b.iter_mut().for_each(|b| *b = 0.0);
    }
    w
}

/// The student before training: its config, its initial weights and its (pruned) tokenizer.
struct Student {
    cfg: ModelConfig,
    weights: BertWeights,
    tokenizer: Tokenizer,
}

/// The student's parameters as candle variables, found by name.
struct StudentVars {
    vars: Vec<(String, Var)>,
    by_name: HashMap<String, usize>,
}

impl StudentVars {
    /// `w`'s tensors as variables on `device`.
    fn new(w: &BertWeights, device: &Device) -> Result<StudentVars> {
        let vars: Vec<(String, Var)> = w
            .named_tensors()
            .into_iter()
            .map(|(n, s, d)| {
                Ok((
                    n,
                    Var::from_tensor(&Tensor::from_slice(d, s.as_slice(), device)?)?,
                ))
            })
            .collect::<Result<_>>()?;
        let by_name = vars
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        Ok(StudentVars { vars, by_name })
    }

    /// The tensor named `n`.
    fn get(&self, n: &str) -> Result<&Tensor> {
        match self.by_name.get(n) {
            Some(&i) => Ok(self.vars[i].1.as_tensor()),
            None => bail!("no tensor `{n}`"),
        }
    }
}

/// Trains `student` for `c.epochs` epochs on `train` (of teacher width `th`) with AdamW, logging each
/// epoch, and returns its trained parameters and each epoch's mean loss.
fn train_student(
    c: &DistillConfig,
    student: &Student,
    train: &Embedded<'_>,
    th: usize,
    rng: &mut Rng,
    mut log: impl FnMut(&str),
) -> Result<(StudentVars, Vec<(usize, f64)>)> {
    let device = Device::Cpu;
    let vars = StudentVars::new(&student.weights, &device)?;
    let mut opt = AdamW::new(
        vars.vars.iter().map(|v| v.1.clone()).collect(),
        ParamsAdamW {
            lr: c.lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )?;
    let tokenized = student.tokenizer.encode_batch(train.strings)?;
    let step = Step {
        c,
        cfg: &student.cfg,
        vars: &vars,
        tokenized: &tokenized,
        targets: &train.vectors,
        th,
        device: &device,
    };
    let mut order: Vec<usize> = (0..train.strings.len()).collect();
    let mut history = Vec::new();
    for epoch in 1..=c.epochs {
        let te = std::time::Instant::now();
        shuffle(&mut order, rng);
        let bar = epoch_bar(epoch, order.len().div_ceil(c.batch));
        let (mut total, mut count) = (0.0f64, 0usize);
        for batch in order.chunks(c.batch) {
            let loss = step.loss(batch, rng)?;
            opt.backward_step(&loss)?;
            let b = batch.len();
            total += loss.to_scalar::<f32>()? as f64 * b as f64;
            count += b;
            bar.set_message(format!("{:.4}", total / count as f64));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let l = total / count.max(1) as f64;
        log(&format!(
            "epoch {epoch:>3}  1 - cosine {l:.4}  ({:.1} s)",
            te.elapsed().as_secs_f64()
        ));
        history.push((epoch, l));
    }
    Ok((vars, history))
}

/// What a training step reads: the settings, the student's config and parameters, the tokenized training
/// strings and the teacher's vectors for them (`[strings, th]`).
struct Step<'a> {
    c: &'a DistillConfig,
    cfg: &'a ModelConfig,
    vars: &'a StudentVars,
    tokenized: &'a Batch,
    targets: &'a [f32],
    th: usize,
    device: &'a Device,
}

impl Step<'_> {
    /// One minus the mean cosine between the student's vectors for training rows `batch` (cut to their
    /// longest) and the teacher's, with dropout drawn from `rng`.
    fn loss(&self, batch: &[usize], rng: &mut Rng) -> Result<Tensor> {
        let (c, cfg, th, device) = (self.c, self.cfg, self.th, self.device);
        let get = |n: &str| self.vars.get(n);
        let tokenized = self.tokenized;
        let width = tokenized.len;
        let real = |r: usize| {
            tokenized.attention_mask[r * width..(r + 1) * width]
                .iter()
                .sum::<u32>() as usize
        };
        let l = batch.iter().map(|&r| real(r)).max().unwrap_or(1).max(1);
        let (mut ids, mut mask, mut tgt) = (Vec::new(), Vec::new(), Vec::new());
        for &r in batch {
            ids.extend_from_slice(&tokenized.ids[r * width..r * width + l]);
            mask.extend(
                tokenized.attention_mask[r * width..r * width + l]
                    .iter()
                    .map(|&m| m as f32),
            );
            tgt.extend_from_slice(&self.targets[r * th..(r + 1) * th]);
        }
        let b = batch.len();
        let ids = Tensor::from_vec(ids, (b, l), device)?;
        let m = Tensor::from_vec(mask, (b, l), device)?;
        let x = get("embeddings.word_embeddings.weight")?
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, c.dim))?
            .broadcast_add(&get("embeddings.position_embeddings.weight")?.narrow(0, 0, l)?)?
            .broadcast_add(&get("embeddings.token_type_embeddings.weight")?.narrow(0, 0, 1)?)?;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let x = xc
            .broadcast_div(&(var + cfg.layer_norm_eps)?.sqrt()?)?
            .broadcast_mul(get("embeddings.LayerNorm.weight")?)?
            .broadcast_add(get("embeddings.LayerNorm.bias")?)?;
        let x = dropout(rng, c.dropout, x)?;
        let additive = ((m.clone() - 1.0)? * 1e9)?.reshape((b, 1, 1, l))?;
        let mut drop = |t: Tensor| dropout(rng, c.dropout, t);
        let h = encoder_layers(&get, cfg, x, &additive, &mut drop)?;
        let mm = m.unsqueeze(2)?;
        let pooled = h.broadcast_mul(&mm)?.sum(1)?.broadcast_div(&mm.sum(1)?)?;
        let y = pooled
            .matmul(&get("projection.weight")?.t()?)?
            .broadcast_add(get("projection.bias")?)?;
        let t = Tensor::from_vec(tgt, (b, th), device)?;
        let dot = (&y * &t)?.sum(1)?;
        let cos = dot.broadcast_div(&(y.sqr()?.sum(1)?.sqrt()? + 1e-9)?)?;
        Ok((1.0 - cos.mean_all()?)?)
    }
}

/// Writes the trained student into `out` (`config`, the weights in F16, the pruned tokenizer) and returns
/// the three files' total size in bytes.
fn save_student(
    out: &Path,
    config: &serde_json::Value,
    weights: &BertWeights,
    tokenizer: &[u8],
) -> Result<u64> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(config)?)?;
    write_f16(&out.join("model.safetensors"), weights)?;
    std::fs::write(out.join("tokenizer.json"), tokenizer)?;
    Ok(["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| std::fs::metadata(out.join(f)).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()?)
}

/// The saved student's mean cosine with the teacher (width `th`) on each `held` set and on every tenth
/// `train` string, computed by shelfwise's engine on the files in `out`.
fn measure(
    out: &Path,
    held: &[Embedded<'_>],
    train: &Embedded<'_>,
    th: usize,
) -> Result<(Vec<f64>, f64)> {
    let student = load_encoder(out)?;
    let cosines = held
        .iter()
        .map(|h| {
            Ok(mean_cosine(
                &embed_all(&student, h.strings)?,
                &h.vectors,
                th,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let sample: Vec<String> = train.strings.iter().step_by(10).cloned().collect();
    let sample_targets: Vec<f32> = (0..train.strings.len())
        .step_by(10)
        .flat_map(|r| train.vectors[r * th..(r + 1) * th].iter().copied())
        .collect();
    let cosine_train = mean_cosine(&embed_all(&student, &sample)?, &sample_targets, th);
    Ok((cosines, cosine_train))
}
