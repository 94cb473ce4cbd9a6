//! # shelfwise-testkit
//!
//! Test support for shelfwise, kept out of the product crate so that none of it ships in the wasm module.
//! The native tests, the browser tests (`tests/web.rs`, built for wasm32) and the benchmarks use it as a
//! dev-dependency; the CLI uses [`synth`] for its `synth` subcommand.
//!
//! - [`synth`]: seeded synthetic catalogues (and their shards) for scale tests, benchmarks and demos.
//! - [`parity_cases`] and [`check_equivalent`]: named adversarial catalogues and the GPU-against-CPU
//!   ranking parity check.
//! - [`check_tokenizer_golden`], [`max_rel_diff`]: comparisons against golden files and reference outputs.
//! - [`criterion_median_ns`]: criterion's recorded medians, for the benchmarks' closing tables.
//!
//! The seeded generator is the product's [`shelfwise::rng::Rng`], and random model weights are
//! [`shelfwise::model::BertWeights::random`].

pub mod synth;

use shelfwise::rank::SearchResult;
use shelfwise::rng::Rng;
use shelfwise::shard::{Attributes, Dtype};
use shelfwise::{Catalog, SearchOptions, Shard};
use synth::SynthSpec;

/// A named parity case: a catalogue, a query and options.
pub struct Case {
    pub name: String,
    pub catalog_bytes: Vec<u8>,
    pub query: Vec<f32>,
    pub opts: SearchOptions,
}

impl Case {
    /// The size a score's rounding error scales with: `|q| * max |row| + |w| * max popularity + max |boost|`.
    /// Parity tolerances are relative to `max(|score|, magnitude)`, as a dot product's error bound is.
    pub fn magnitude(&self) -> f32 {
        let cat = self.catalog();
        let d = cat.dim();
        let qn = self.query.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut row = vec![0f32; d];
        let mut rmax = 0f32;
        let mut pmax = 0f32;
        for g in 0..cat.len() {
            cat.row_f32(g, &mut row);
            rmax = rmax.max(row.iter().map(|v| v * v).sum::<f32>().sqrt());
            let (s, r) = cat.locate(g);
            pmax = pmax.max(
                cat.shards()[s]
                    .attributes(r)
                    .popularity
                    .unwrap_or(0.0)
                    .abs(),
            );
        }
        let bmax = self.opts.boosts.values().fold(0f32, |m, b| m.max(b.abs()));
        qn * rmax + self.opts.popularity_weight.abs() * pmax + bmax + self.opts.new_item_boost.abs()
    }

    pub fn catalog(&self) -> Catalog {
        let shard = Shard::from_bytes(&self.name, &self.catalog_bytes).expect("case shard");
        Catalog::from_shards(vec![shard]).expect("case catalogue")
    }
}

fn synth_case(
    name: &str,
    items: usize,
    dim: usize,
    dtype: Dtype,
    seed: u64,
    opts: SearchOptions,
) -> Case {
    let mut spec = SynthSpec::new(items, dim);
    spec.seed = seed;
    let mut cat = synth::generate(&spec);
    if opts.new_item_boost != 0.0 {
        // Every eighth item is new: no interactions, popularity 0.
        if let Some(p) = cat.attributes.popularity.as_mut() {
            p.iter_mut().skip(5).step_by(8).for_each(|v| *v = 0.0);
        }
    }
    let bytes = synth::shard_bytes(&cat, dim, dtype, "synthetic").expect("synthetic shard");
    // The query is a perturbed item, so the top of the ranking is a tight race.
    let mut rng = Rng::new(seed + 1);
    let pick = rng.below(items as u64) as usize;
    let query: Vec<f32> = cat.vectors[pick * dim..(pick + 1) * dim]
        .iter()
        .map(|v| v + 0.05 * rng.normal())
        .collect();
    Case {
        name: name.into(),
        catalog_bytes: bytes,
        query,
        opts,
    }
}

/// Every row identical: all scores tie, so the order is decided by row alone.
fn ties_case(dtype: Dtype) -> Case {
    let (n, d) = (2500, 16);
    let ids: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
    let vectors: Vec<f32> = (0..n)
        .flat_map(|_| (0..d).map(|j| (j as f32 * 0.37).sin()))
        .collect();
    let bytes = shelfwise::write_shard(&shelfwise::ShardSpec {
        ids: &ids,
        vectors: &vectors,
        dim: d,
        dtype,
        normalize: false,
        model_id: "ties",
        num_categories: None,
        attributes: &Attributes::default(),
    })
    .expect("ties shard");
    Case {
        name: format!("ties-{}", dtype.name()),
        catalog_bytes: bytes,
        query: (0..d).map(|j| (j as f32 * 0.11).cos()).collect(),
        opts: SearchOptions {
            k: 40,
            ..Default::default()
        },
    }
}

/// Int8 rows over the full range, -128 included (other writers may produce it), written without
/// [`shelfwise::write_shard`].
fn full_range_int8_case() -> Case {
    use safetensors::tensor::TensorView;
    use safetensors::Dtype as St;
    let (n, d) = (3001usize, 64usize);
    let mut rng = Rng::new(77);
    let rows: Vec<i8> = (0..n * d).map(|_| rng.next_u64() as i8).collect();
    let scales: Vec<f32> = (0..n).map(|_| 0.001 + 0.01 * rng.uniform()).collect();
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    for i in 0..n {
        ids.extend_from_slice(format!("r{i}").as_bytes());
        offsets.push(ids.len() as u32);
    }
    let views = vec![
        (
            "embeddings",
            TensorView::new(St::I8, vec![n, d], bytemuck::cast_slice(&rows)).unwrap(),
        ),
        (
            "scales",
            TensorView::new(St::F32, vec![n], bytemuck::cast_slice(&scales)).unwrap(),
        ),
        (
            "id_offsets",
            TensorView::new(St::U32, vec![n + 1], bytemuck::cast_slice(&offsets)).unwrap(),
        ),
        (
            "id_bytes",
            TensorView::new(St::U8, vec![ids.len()], &ids).unwrap(),
        ),
    ];
    let meta: std::collections::HashMap<String, String> = [
        ("format", "shelfwise-shard"),
        ("version", "1"),
        ("dim", "64"),
        ("normalized", "false"),
        ("model_id", "raw"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let mut q = vec![0f32; d];
    q.iter_mut().for_each(|v| *v = rng.normal());
    q[0] = -3.0; // quantises to -127, the extreme of the query range
    Case {
        name: "full-range-int8".into(),
        catalog_bytes: safetensors::serialize(views, Some(meta)).unwrap(),
        query: q,
        opts: SearchOptions {
            k: 64,
            ..Default::default()
        },
    }
}

fn filters() -> SearchOptions {
    let mut boosts = std::collections::BTreeMap::new();
    boosts.insert("3".to_string(), 0.05);
    boosts.insert("7".to_string(), -0.2);
    SearchOptions {
        k: 25,
        exclude: (0..300).map(|i| format!("sku-{:07}", i * 7)).collect(),
        categories: Some((0..24).filter(|c| c % 3 != 1).collect()),
        price_range: Some([15.0, 150.0]),
        in_stock_only: true,
        popularity_weight: 0.3,
        boosts,
        ..Default::default()
    }
}

/// The adversarial parity cases. `big` adds the 1M-row int8 case.
pub fn parity_cases(big: bool) -> Vec<Case> {
    let mut v = vec![
        ties_case(Dtype::F32),
        ties_case(Dtype::I8),
        full_range_int8_case(),
        synth_case(
            "n1-f32",
            1,
            64,
            Dtype::F32,
            1,
            SearchOptions {
                k: 10,
                ..Default::default()
            },
        ),
        synth_case("n1-int8", 1, 64, Dtype::I8, 2, SearchOptions::default()),
        synth_case(
            "odd-f32",
            3 * 1024 + 37,
            64,
            Dtype::F32,
            3,
            SearchOptions {
                k: 50,
                ..Default::default()
            },
        ),
        synth_case(
            "odd-f16",
            3 * 1024 + 37,
            64,
            Dtype::F16,
            4,
            SearchOptions {
                k: 17,
                ..Default::default()
            },
        ),
        synth_case(
            "odd-int8",
            5 * 1024 + 1,
            64,
            Dtype::I8,
            5,
            SearchOptions {
                k: 100,
                ..Default::default()
            },
        ),
        synth_case("dim7-f16", 2049, 7, Dtype::F16, 6, SearchOptions::default()),
        synth_case("dim7-int8", 2049, 7, Dtype::I8, 7, SearchOptions::default()),
        synth_case(
            "dim130-f32",
            999,
            130,
            Dtype::F32,
            8,
            SearchOptions {
                k: 256,
                ..Default::default()
            },
        ),
        synth_case("filters-f32", 20_000, 64, Dtype::F32, 9, filters()),
        synth_case("filters-int8", 20_000, 64, Dtype::I8, 10, filters()),
        synth_case(
            "new-items-f32",
            20_000,
            64,
            Dtype::F32,
            14,
            SearchOptions {
                new_item_boost: 0.4,
                ..filters()
            },
        ),
        synth_case(
            "new-items-int8",
            20_000,
            64,
            Dtype::I8,
            15,
            SearchOptions {
                new_item_boost: -0.3,
                ..filters()
            },
        ),
        synth_case(
            "allow-int8",
            10_000,
            32,
            Dtype::I8,
            11,
            SearchOptions {
                k: 10,
                allow: Some((0..500).map(|i| format!("sku-{:07}", i * 19)).collect()),
                ..Default::default()
            },
        ),
        synth_case(
            "k-over-n-f32",
            200,
            64,
            Dtype::F32,
            12,
            SearchOptions {
                k: 1000,
                ..Default::default()
            },
        ),
    ];
    if big {
        v.push(synth_case(
            "1m-int8",
            1 << 20,
            64,
            Dtype::I8,
            13,
            SearchOptions {
                k: 10,
                in_stock_only: true,
                ..Default::default()
            },
        ));
    }
    v
}

/// Checks that `gpu` is the same ranking as `cpu` up to score tolerance:
/// - both have the same length;
/// - scores at every position agree within `rel_tol` relative to `max(|score|, magnitude)` (see
///   [`Case::magnitude`]);
/// - where ids differ at a position, the two items' scores differ by less than the tolerance (a near-tie
///   may swap), and the id sets differ only in such near-ties at the boundary.
///
/// `Err` describes the mismatches: their count, the largest error and where it is.
pub fn check_equivalent(
    cpu: &SearchResult,
    gpu: &SearchResult,
    rel_tol: f32,
    magnitude: f32,
) -> Result<(), String> {
    if cpu.rows.len() != gpu.rows.len() {
        return Err(format!(
            "lengths differ: cpu {} vs gpu {}",
            cpu.rows.len(),
            gpu.rows.len()
        ));
    }
    let tol = |a: f32, b: f32| rel_tol * a.abs().max(b.abs()).max(magnitude);
    let mut mismatches = 0;
    let mut worst = (0.0f32, 0usize);
    for i in 0..cpu.rows.len() {
        let (a, b) = (cpu.scores[i], gpu.scores[i]);
        let err = (a - b).abs();
        if err > worst.0 {
            worst = (err, i);
        }
        let score_ok = err <= tol(a, b);
        let id_ok = cpu.rows[i] == gpu.rows[i] || {
            // A swap is allowed only between near-equal scores: the GPU's item must score, on the CPU's
            // side, within tolerance of the CPU's item at this position.
            match cpu.rows.iter().position(|&r| r == gpu.rows[i]) {
                Some(j) => (cpu.scores[j] - a).abs() <= tol(cpu.scores[j], a),
                None => {
                    (b - cpu.scores[cpu.scores.len() - 1]).abs()
                        <= tol(b, cpu.scores[cpu.scores.len() - 1])
                }
            }
        };
        if !(score_ok && id_ok) {
            mismatches += 1;
        }
    }
    if mismatches > 0 {
        return Err(format!(
            "{mismatches} mismatching positions of {}; max |score error| {} at position {} (cpu row {} score {}, gpu row {} score {})",
            cpu.rows.len(),
            worst.0,
            worst.1,
            cpu.rows[worst.1],
            cpu.scores[worst.1],
            gpu.rows[worst.1],
            gpu.scores[worst.1]
        ));
    }
    Ok(())
}

/// The median, in nanoseconds, that criterion recorded for `group/bench` under `target_dir` (for the
/// benchmarks' closing tables of medians and ratios).
pub fn criterion_median_ns(target_dir: &str, group: &str, bench: &str) -> Option<f64> {
    let path = format!("{target_dir}/criterion/{group}/{bench}/new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Checks a tokenizer against a golden file written by tests/python/tokenizer_golden.py (Python's
/// `tokenizers` on the same tokenizer.json): every string's ids, attention mask and type ids must be
/// identical. `Err` lists the strings that differ.
pub fn check_tokenizer_golden(tokenizer_json: &[u8], golden_json: &[u8]) -> Result<usize, String> {
    #[derive(serde::Deserialize)]
    struct Golden {
        max_len: usize,
        strings: Vec<String>,
        ids: Vec<Vec<u32>>,
        attention_mask: Vec<Vec<u32>>,
        type_ids: Vec<Vec<u32>>,
    }
    let g: Golden = serde_json::from_slice(golden_json).map_err(|e| e.to_string())?;
    let tok = shelfwise::tokenize::Tokenizer::from_bytes(tokenizer_json, g.max_len)
        .map_err(|e| e.to_string())?;
    let b = tok.encode_batch(&g.strings).map_err(|e| e.to_string())?;
    let wrong: Vec<String> = g
        .strings
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            let row = i * b.len..(i + 1) * b.len;
            b.ids[row.clone()] != g.ids[i][..]
                || b.attention_mask[row.clone()] != g.attention_mask[i][..]
                || b.type_ids[row] != g.type_ids[i][..]
        })
        .map(|(_, s)| format!("{s:?}"))
        .collect();
    if wrong.is_empty() {
        Ok(g.strings.len())
    } else {
        Err(format!(
            "{} of {} strings differ: {}",
            wrong.len(),
            g.strings.len(),
            wrong.join(", ")
        ))
    }
}

/// Largest `|a - b| / max(1, |b|)` over two equally long slices (`INFINITY` when the lengths differ or a
/// value is not finite).
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter().zip(b).fold(0.0, |m, (&x, &y)| {
        let d = (x - y).abs() / y.abs().max(1.0);
        if d.is_nan() {
            f32::INFINITY
        } else {
            m.max(d)
        }
    })
}
