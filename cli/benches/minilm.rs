//! all-MiniLM-L6-v2 sentence embedding: shelfwise's CPU engine against candle-transformers' BERT, same
//! weights, same batch, same machine, same run: one sentence of 16, 32 and 128 tokens, and a batch of 32
//! sentences of 32 tokens. Prints criterion's report, then medians and the ratio candle / shelfwise (above 1:
//! shelfwise is faster).
//!
//! With `SHELFWISE_BENCH_GPU=1`, shelfwise's GPU engine (Vulkan) runs too, and the table adds its median
//! and its speed-up over shelfwise's CPU engine. On a software adapter (lavapipe) that row is correctness
//! work, not a speed figure; the table says so.
//!
//! Needs the model files (scripts/fetch-models.sh), or `SHELFWISE_BENCH_MODEL=<folder>` with config.json
//! and model.safetensors (f32 or f16). Run: `cargo bench -p shelfwise-cli --bench minilm`.

use std::hint::black_box;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use criterion::{criterion_group, Criterion};
use shelfwise::backend::cpu::CpuNn;
use shelfwise::backend::gpu::nn::GpuNn;
use shelfwise::backend::gpu::GpuContext;
use shelfwise::model::{Bert, BertWeights, ModelConfig};
use shelfwise::tokenize::Batch;

/// (sentences, tokens each).
const SHAPES: &[(usize, usize)] = &[(1, 16), (1, 32), (1, 128), (32, 32)];

fn dir() -> PathBuf {
    std::env::var_os("SHELFWISE_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../cache/models/all-MiniLM-L6-v2"
            ))
        })
}

fn group(rows: usize, len: usize) -> String {
    if rows == 1 {
        format!("minilm_seq{len}")
    } else {
        format!("minilm_batch{rows}_seq{len}")
    }
}

/// `rows` rows of `len` tokens: [CLS], ordinary word pieces, [SEP].
fn batch(rows: usize, len: usize) -> Batch {
    let mut ids = Vec::with_capacity(rows * len);
    for r in 0..rows as u32 {
        let mut row: Vec<u32> = (0..len as u32)
            .map(|i| 2000 + (i * 37 + r * 101) % 20_000)
            .collect();
        row[0] = 101;
        row[len - 1] = 102;
        ids.extend(row);
    }
    Batch {
        batch: rows,
        len,
        ids,
        attention_mask: vec![1; rows * len],
        type_ids: vec![0; rows * len],
    }
}

fn gpu_wanted() -> bool {
    std::env::var("SHELFWISE_BENCH_GPU").is_ok_and(|v| v == "1")
}

fn benches(c: &mut Criterion) {
    let d = dir();
    let cfg = ModelConfig::from_json(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    let weights = BertWeights::from_safetensors("model.safetensors", &bytes, &cfg).unwrap();
    let ours = Bert::new(cfg.clone(), &weights, CpuNn).unwrap();
    let gpu = gpu_wanted().then(|| {
        let ctx =
            pollster::block_on(GpuContext::new()).expect("SHELFWISE_BENCH_GPU=1 needs an adapter");
        println!("GPU adapter: {}", ctx.adapter_name());
        let nn = pollster::block_on(GpuNn::new(ctx)).unwrap();
        Bert::new(cfg.clone(), &weights, nn).unwrap()
    });
    drop(weights);
    let device = Device::Cpu;
    let ccfg: Config =
        serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).unwrap();
    let theirs = BertModel::load(vb, &ccfg).unwrap();
    for &(rows, len) in SHAPES {
        let b = batch(rows, len);
        let mut g = c.benchmark_group(group(rows, len));
        g.sample_size(20);
        g.bench_function("shelfwise_cpu", |bench| {
            bench.iter(|| black_box(pollster::block_on(ours.embed(&b)).unwrap()))
        });
        if let Some(gm) = &gpu {
            g.bench_function("shelfwise_gpu", |bench| {
                bench.iter(|| black_box(pollster::block_on(gm.embed(&b)).unwrap()))
            });
        }
        let shape = (rows, len);
        let ids = Tensor::from_vec(b.ids.clone(), shape, &device).unwrap();
        let types = Tensor::from_vec(b.type_ids.clone(), shape, &device).unwrap();
        let mask = Tensor::from_vec(b.attention_mask.clone(), shape, &device).unwrap();
        g.bench_function("candle", |bench| {
            bench.iter(|| {
                // The same work as shelfwise's embed: forward, mean pooling, L2 normalisation.
                let s = theirs.forward(&ids, &types, Some(&mask)).unwrap();
                let m = s.mean(1).unwrap();
                let n = m.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
                black_box(m.broadcast_div(&n).unwrap().to_vec2::<f32>().unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(minilm, benches);

fn median_ms(group: &str, bench: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target").into());
    Some(shelfwise_testkit::criterion_median_ns(&target, group, bench)? / 1e6)
}

fn main() {
    if !dir().join("model.safetensors").exists() {
        eprintln!("run scripts/fetch-models.sh first");
        return;
    }
    minilm();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "\n{:<10} {:>7} {:>15} {:>12} {:>19}",
        "sentences", "tokens", "shelfwise (ms)", "candle (ms)", "candle / shelfwise"
    );
    for &(rows, len) in SHAPES {
        let g = group(rows, len);
        if let (Some(a), Some(b)) = (median_ms(&g, "shelfwise_cpu"), median_ms(&g, "candle")) {
            println!("{rows:<10} {len:>7} {a:>15.3} {b:>12.3} {:>19.2}", b / a);
        }
    }
    if gpu_wanted() {
        println!(
            "\n{:<10} {:>7} {:>19} {:>26}",
            "sentences", "tokens", "shelfwise GPU (ms)", "shelfwise CPU / GPU"
        );
        for &(rows, len) in SHAPES {
            let g = group(rows, len);
            if let (Some(cpu), Some(gpu)) = (
                median_ms(&g, "shelfwise_cpu"),
                median_ms(&g, "shelfwise_gpu"),
            ) {
                println!("{rows:<10} {len:>7} {gpu:>19.3} {:>26.2}", cpu / gpu);
            }
        }
    }
}
