//! Training the interest model with candle (CPU, autodiff).
//!
//! The network is shelfwise's engine network in its causal pre-LN form (`model::Bert` with
//! `pre_ln: true, causal: true, pooling: "last"`), written here a second time in candle ops over the very
//! same tensors (Hugging Face names, `BertWeights` layout). The word table is the item table: an event's
//! input is its item's vector, and a next-item score is the dot product of the interest vector (the output
//! at the last position) with an item vector, which is what the ranking engine computes from a shard.
//! Training minimises full-softmax cross-entropy of every next item in every training window.
//!
//! Reproducible: weights are initialised and dropout masks drawn from shelfwise's seeded generator
//! (candle's CPU generator cannot be seeded), and every step runs in a fixed order.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use shelfwise::model::{BertWeights, ModelConfig};
use shelfwise::synth::Rng;

use crate::eval::{self, Case, Scorer, SeqEvent, Split};

/// What `shelfwise train` can set (each field is also its command-line flag).
#[derive(Clone, Debug, clap::Args)]
pub struct TrainConfig {
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
    /// Chosen on validation NDCG@10 (0.5: 0.1117; 0.2: 0.1040 on MovieLens-100k).
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f32,
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

/// The engine config for a trained interest model over `items` items.
pub fn engine_config(c: &TrainConfig, items: usize) -> Result<ModelConfig> {
    let json = serde_json::json!({
        "vocab_size": items,
        "hidden_size": c.dim,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "intermediate_size": 4 * c.dim,
        "hidden_act": "gelu",
        "max_position_embeddings": c.max_len,
        "type_vocab_size": 1,
        "layer_norm_eps": 1e-12,
        "shelfwise": {"pre_ln": true, "causal": true, "pooling": "last", "normalize": false}
    });
    Ok(ModelConfig::from_json(json.to_string().as_bytes())?)
}

/// The interest model's parameters as candle variables, keyed by their Hugging Face names.
pub struct Model {
    cfg: ModelConfig,
    vars: Vec<(String, Vec<usize>, Var)>,
    by_name: HashMap<String, usize>,
    device: Device,
}

impl Model {
    /// Seeded initial weights: the engine's random initialisation, with the item table scaled to
    /// 1 / sqrt(dim) so first logits are small.
    pub fn init(cfg: ModelConfig, seed: u64) -> Result<Model> {
        let mut w = shelfwise::testing::random_bert_weights(&cfg, seed);
        let s = 1.0 / (cfg.hidden_size as f32).sqrt();
        w.word.iter_mut().for_each(|v| *v *= s);
        w.position.iter_mut().for_each(|v| *v *= s);
        w.token_type.iter_mut().for_each(|v| *v *= 0.0);
        Self::from_weights(cfg, &w)
    }

    fn from_weights(cfg: ModelConfig, w: &BertWeights) -> Result<Model> {
        let device = Device::Cpu;
        let mut vars = Vec::new();
        let mut by_name = HashMap::new();
        for (name, shape, data) in w.named_tensors() {
            let t = Tensor::from_slice(data, shape.as_slice(), &device)?;
            by_name.insert(name.clone(), vars.len());
            vars.push((name, shape, Var::from_tensor(&t)?));
        }
        Ok(Model {
            cfg,
            vars,
            by_name,
            device,
        })
    }

    fn t(&self, name: &str) -> Result<&Tensor> {
        match self.by_name.get(name) {
            Some(&i) => Ok(self.vars[i].2.as_tensor()),
            None => bail!("no tensor `{name}`"),
        }
    }

    /// The trained weights in the engine's layout (through a safetensors image, which checks every shape
    /// against the config).
    pub fn weights(&self) -> Result<BertWeights> {
        let values: Vec<(String, Vec<usize>, Vec<f32>)> = self
            .vars
            .iter()
            .map(|(n, s, v)| {
                Ok((
                    n.clone(),
                    s.clone(),
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
        let bytes = safetensors::serialize(views, None)?;
        Ok(BertWeights::from_safetensors(
            "interest", &bytes, &self.cfg,
        )?)
    }

    fn linear(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let w = self.t(&format!("{name}.weight"))?;
        let b = self.t(&format!("{name}.bias"))?;
        Ok(x.broadcast_matmul(&w.t()?)?.broadcast_add(b)?)
    }

    fn norm(&self, x: &Tensor, name: &str) -> Result<Tensor> {
        let g = self.t(&format!("{name}.weight"))?;
        let b = self.t(&format!("{name}.bias"))?;
        let eps = self.cfg.layer_norm_eps;
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
        Ok(y.broadcast_mul(g)?.broadcast_add(b)?)
    }

    /// Token states `[B, L, d]` for item rows `ids` (`[B, L]`, right-padded with any valid row).
    fn forward(&self, ids: &Tensor, dropout: Option<(&mut Rng, f32)>) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let (d, heads) = (self.cfg.hidden_size, self.cfg.num_attention_heads);
        let dh = d / heads;
        let mut drop = dropout;
        let mut dropped = |x: Tensor| -> Result<Tensor> {
            match &mut drop {
                Some((rng, p)) if *p > 0.0 => {
                    let keep = 1.0 - *p;
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
                _ => Ok(x),
            }
        };
        let word = self.t("embeddings.word_embeddings.weight")?;
        let pos = self
            .t("embeddings.position_embeddings.weight")?
            .narrow(0, 0, l)?;
        let typ = self
            .t("embeddings.token_type_embeddings.weight")?
            .narrow(0, 0, 1)?;
        let x = word
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, d))?
            .broadcast_add(&typ)?
            .broadcast_add(&pos)?;
        let mut x = dropped(self.norm(&x, "embeddings.LayerNorm")?)?;
        // Causal mask: 0 on and below the diagonal, -1e9 above.
        let causal: Vec<f32> = (0..l * l)
            .map(|i| if i % l > i / l { -1e9 } else { 0.0 })
            .collect();
        let causal = Tensor::from_vec(causal, (l, l), &self.device)?;
        let scale = (dh as f64).sqrt();
        for layer in 0..self.cfg.num_hidden_layers {
            let p = format!("encoder.layer.{layer}");
            let n = self.norm(&x, &format!("{p}.attention.output.LayerNorm"))?;
            let split = |t: Tensor| -> Result<Tensor> {
                Ok(t.reshape((b, l, heads, dh))?
                    .transpose(1, 2)?
                    .contiguous()?)
            };
            let q = split(self.linear(&n, &format!("{p}.attention.self.query"))?)?;
            let k = split(self.linear(&n, &format!("{p}.attention.self.key"))?)?;
            let v = split(self.linear(&n, &format!("{p}.attention.self.value"))?)?;
            let s = (q.matmul(&k.t()?)? / scale)?.broadcast_add(&causal)?;
            let a = candle_nn::ops::softmax_last_dim(&s)?.matmul(&v)?;
            let a = a.transpose(1, 2)?.contiguous()?.reshape((b, l, d))?;
            let a = self.linear(&a, &format!("{p}.attention.output.dense"))?;
            x = (x + dropped(a)?)?;
            let n = self.norm(&x, &format!("{p}.output.LayerNorm"))?;
            let h = self
                .linear(&n, &format!("{p}.intermediate.dense"))?
                .gelu_erf()?;
            let f = self.linear(&h, &format!("{p}.output.dense"))?;
            x = (x + dropped(f)?)?;
        }
        self.norm(&x, "encoder.final_layer_norm")
    }

    /// Scores of every item after each of `inputs` (item rows, oldest first; the last `max_len` count).
    pub fn score_batch(&self, inputs: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        let l = inputs.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let mut ids = Vec::with_capacity(inputs.len() * l);
        for s in inputs {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(0, l - s.len()));
        }
        let ids = Tensor::from_vec(ids, (inputs.len(), l), &self.device)?;
        let h = self.forward(&ids, None)?;
        let last: Vec<u32> = inputs
            .iter()
            .enumerate()
            .map(|(i, s)| (i * l + s.len().max(1) - 1) as u32)
            .collect();
        let d = self.cfg.hidden_size;
        let h = h
            .reshape((inputs.len() * l, d))?
            .index_select(&Tensor::from_vec(last, inputs.len(), &self.device)?, 0)?;
        let word = self.t("embeddings.word_embeddings.weight")?;
        Ok(h.matmul(&word.t()?)?.to_vec2::<f32>()?)
    }
}

/// The last `n` item rows of `events`.
fn last_items(events: &[SeqEvent], n: usize) -> Vec<u32> {
    let items: Vec<u32> = events.iter().filter_map(|e| e.item).collect();
    items[items.len().saturating_sub(n)..].to_vec()
}

/// Training windows: each session's training items cut into runs of at most `max_len + 1` (inputs and
/// their next items), from the end backwards so the most recent run is whole.
fn windows(split: &Split, max_len: usize) -> Vec<Vec<u32>> {
    let mut out = Vec::new();
    for seq in split.train() {
        let items: Vec<u32> = seq.iter().filter_map(|e| e.item).collect();
        let mut end = items.len();
        while end >= 2 {
            let start = end.saturating_sub(max_len + 1);
            out.push(items[start..end].to_vec());
            if start == 0 {
                break;
            }
            end = start + 1;
        }
    }
    out
}

/// A trained model scoring evaluation cases (batched, cached per case input).
pub struct Trained<'a> {
    pub model: &'a Model,
    pub max_len: usize,
    pub name: String,
}

impl Trained<'_> {
    /// NDCG@10 etc. on `cases`, scoring them in batches.
    pub fn evaluate(&self, split: &Split, cases: &[Case]) -> Result<eval::Metrics> {
        let inputs: Vec<Vec<u32>> = cases
            .iter()
            .map(|c| last_items(split.input(c), self.max_len))
            .collect();
        let mut table: HashMap<usize, Vec<f32>> = HashMap::new();
        for (chunk_i, chunk) in inputs.chunks(256).enumerate() {
            for (j, s) in self.model.score_batch(chunk)?.into_iter().enumerate() {
                table.insert(chunk_i * 256 + j, s);
            }
        }
        let pre = Precomputed {
            name: self.name.clone(),
            by_case: cases
                .iter()
                .enumerate()
                .map(|(i, c)| ((c.session, c.at), table.remove(&i).unwrap_or_default()))
                .collect(),
        };
        Ok(eval::evaluate(&pre, split, cases, eval::Protocol::Full))
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

    fn score(&self, c: &Case, _input: &[SeqEvent], out: &mut [f32]) {
        match self.by_case.get(&(c.session, c.at)) {
            Some(s) if s.len() == out.len() => out.copy_from_slice(s),
            // Every evaluated case was scored ahead; a miss can only be a bug, and scores nothing.
            _ => out.fill(f32::NAN),
        }
    }
}

/// Item sequences as an engine batch: right-padded to the longest, with the padding masked. An empty
/// sequence keeps one (padding) token so its row is valid; its output carries no signal.
pub fn item_batch(inputs: &[Vec<u32>]) -> shelfwise::tokenize::Batch {
    let len = inputs.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let mut b = shelfwise::tokenize::Batch {
        batch: inputs.len(),
        len,
        ids: Vec::with_capacity(inputs.len() * len),
        attention_mask: Vec::with_capacity(inputs.len() * len),
        type_ids: vec![0; inputs.len() * len],
    };
    for s in inputs {
        b.ids.extend(
            s.iter()
                .copied()
                .chain(std::iter::repeat_n(0, len - s.len())),
        );
        b.attention_mask
            .extend((0..len).map(|t| (t < s.len().max(1)) as u32));
    }
    b
}

/// Scores of `cases` from a saved interest model (`config.json` + `model.safetensors` in `dir`), computed by
/// shelfwise's engine on the CPU: the inference path, not the trainer's.
pub fn engine_scores(dir: &std::path::Path, split: &Split, cases: &[Case]) -> Result<Precomputed> {
    use anyhow::Context;
    use shelfwise::backend::cpu_nn::CpuNn;
    use shelfwise::model::Bert;
    let read = |f: &str| {
        std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))
    };
    let cfg = ModelConfig::from_json(&read("config.json")?)?;
    if cfg.vocab_size != split.items {
        bail!(
            "{}: the model knows {} items, the catalogue has {}",
            dir.display(),
            cfg.vocab_size,
            split.items
        );
    }
    let w = BertWeights::from_safetensors("model.safetensors", &read("model.safetensors")?, &cfg)?;
    let d = cfg.hidden_size;
    let max_len = cfg.max_position_embeddings;
    let engine = Bert::new(cfg, &w, CpuNn)?;
    let mut by_case = HashMap::new();
    for chunk in cases.chunks(256) {
        let inputs: Vec<Vec<u32>> = chunk
            .iter()
            .map(|c| last_items(split.input(c), max_len))
            .collect();
        let interest = pollster::block_on(engine.embed(&item_batch(&inputs)))?;
        for (c, v) in chunk.iter().zip(interest.chunks(d)) {
            let scores: Vec<f32> = w
                .word
                .chunks(d)
                .map(|item| item.iter().zip(v).map(|(a, b)| a * b).sum())
                .collect();
            by_case.insert((c.session, c.at), scores);
        }
    }
    Ok(Precomputed {
        name: format!("interest model {} (shelfwise engine)", dir.display()),
        by_case,
    })
}

/// One epoch's record.
#[derive(Clone, Debug)]
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
    mut progress: impl FnMut(&Epoch),
) -> Result<(Model, Vec<Epoch>)> {
    let cfg = engine_config(c, split.items)?;
    let model = Model::init(cfg, c.seed)?;
    let params = ParamsAdamW {
        lr: c.lr,
        weight_decay: c.weight_decay,
        ..Default::default()
    };
    let mut opt = AdamW::new(model.vars.iter().map(|v| v.2.clone()).collect(), params)?;
    let data = windows(split, c.max_len);
    if data.is_empty() {
        bail!("no training sequence has two items");
    }
    let mut rng = Rng::new(c.seed ^ 0xd20f);
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut best: Option<(f64, BertWeights)> = None;
    let mut since_best = 0;
    let mut history = Vec::new();
    for epoch in 1..=c.max_epochs {
        let t0 = std::time::Instant::now();
        // Fisher-Yates with the seeded generator.
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let (mut total, mut count) = (0.0, 0usize);
        // A bar on a terminal; nothing when stderr is a file or a pipe (the epoch lines remain).
        let bar = indicatif::ProgressBar::new(order.len().div_ceil(c.batch) as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "epoch {prefix:>3} [{bar:30}] {pos}/{len} batches  loss {msg}  {elapsed}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(epoch.to_string());
        for batch in order.chunks(c.batch) {
            let l = batch.iter().map(|&i| data[i].len() - 1).max().unwrap_or(1);
            let mut ids = Vec::with_capacity(batch.len() * l);
            let mut rows = Vec::new();
            let mut targets = Vec::new();
            for (bi, &i) in batch.iter().enumerate() {
                let w = &data[i];
                let n = w.len() - 1;
                ids.extend_from_slice(&w[..n]);
                ids.extend(std::iter::repeat_n(0, l - n));
                for t in 0..n {
                    rows.push((bi * l + t) as u32);
                    targets.push(w[t + 1]);
                }
            }
            let ids = Tensor::from_vec(ids, (batch.len(), l), &model.device)?;
            let h = model.forward(&ids, Some((&mut rng, c.dropout)))?;
            let h = h
                .reshape((batch.len() * l, c.dim))?
                .index_select(&Tensor::from_vec(rows, targets.len(), &model.device)?, 0)?;
            let logits = h.matmul(&model.t("embeddings.word_embeddings.weight")?.t()?)?;
            let n_targets = targets.len();
            let loss = candle_nn::loss::cross_entropy(
                &logits,
                &Tensor::from_vec(targets, n_targets, &model.device)?,
            )?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()? as f64 * n_targets as f64;
            count += n_targets;
            bar.set_message(format!("{:.4}", total / count as f64));
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
            best = Some((valid.ndcg10, model.weights()?));
            since_best = 0;
        } else {
            since_best += 1;
            if since_best >= c.patience {
                break;
            }
        }
    }
    let (_, w) = best.ok_or_else(|| anyhow::anyhow!("no epoch ran"))?;
    let cfg = engine_config(c, split.items)?;
    Ok((Model::from_weights(cfg, &w)?, history))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfwise::backend::cpu_nn::CpuNn;
    use shelfwise::model::Bert;

    /// The trainer's candle network and shelfwise's engine are one network: the same weights give the
    /// same next-item scores.
    #[test]
    fn the_trainer_and_the_engine_agree() {
        let c = TrainConfig {
            dim: 24,
            layers: 2,
            heads: 3,
            max_len: 12,
            ..Default::default()
        };
        let items = 40;
        let model = Model::init(engine_config(&c, items).unwrap(), 3).unwrap();
        let inputs: Vec<Vec<u32>> = vec![
            vec![1, 5, 7],
            vec![39],
            (0..12).collect(),
            vec![2, 2, 9, 30, 1],
        ];
        let theirs = model.score_batch(&inputs).unwrap();

        let w = model.weights().unwrap();
        let engine = Bert::new(engine_config(&c, items).unwrap(), &w, CpuNn).unwrap();
        let interest = pollster::block_on(engine.embed(&item_batch(&inputs))).unwrap();
        for (i, scores) in theirs.iter().enumerate() {
            let v = &interest[i * c.dim..(i + 1) * c.dim];
            for (item, &s) in scores.iter().enumerate() {
                let ours: f32 = v
                    .iter()
                    .zip(&w.word[item * c.dim..(item + 1) * c.dim])
                    .map(|(a, b)| a * b)
                    .sum();
                assert!(
                    (ours - s).abs() <= 1e-4 * (1.0 + s.abs()),
                    "input {i}, item {item}: engine {ours}, trainer {s}"
                );
            }
        }
    }
}
