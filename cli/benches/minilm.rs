//! all-MiniLM-L6-v2 sentence embedding on the CPU: shelfwise's engine against candle-transformers' BERT,
//! same weights, same batch, same machine, same run. One sentence per call at 16, 32 and 128 tokens.
//! Prints criterion's report, then medians and the ratio candle / shelfwise (above 1: shelfwise is faster).
//!
//! Needs the model files: scripts/fetch-models.sh. Run: `cargo bench -p shelfwise-cli --bench minilm`.

use std::hint::black_box;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use criterion::{criterion_group, Criterion};
use shelfwise::backend::cpu_nn::CpuNn;
use shelfwise::model::{Bert, BertWeights, ModelConfig};
use shelfwise::tokenize::Batch;

const LENS: &[usize] = &[16, 32, 128];

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cache/models/all-MiniLM-L6-v2"
    ))
}

/// One row of `len` tokens: [CLS], ordinary word pieces, [SEP].
fn batch(len: usize) -> Batch {
    let mut ids: Vec<u32> = (0..len as u32).map(|i| 2000 + (i * 37) % 20_000).collect();
    ids[0] = 101;
    ids[len - 1] = 102;
    Batch {
        batch: 1,
        len,
        ids,
        attention_mask: vec![1; len],
        type_ids: vec![0; len],
    }
}

fn benches(c: &mut Criterion) {
    let d = dir();
    let cfg = ModelConfig::from_json(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    let ours = Bert::new(
        cfg.clone(),
        &BertWeights::from_safetensors("model.safetensors", &bytes, &cfg).unwrap(),
        CpuNn,
    )
    .unwrap();
    let device = Device::Cpu;
    let ccfg: Config =
        serde_json::from_slice(&std::fs::read(d.join("config.json")).unwrap()).unwrap();
    let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device).unwrap();
    let theirs = BertModel::load(vb, &ccfg).unwrap();
    for &len in LENS {
        let b = batch(len);
        let mut g = c.benchmark_group(format!("minilm_seq{len}"));
        g.sample_size(20);
        g.bench_function("shelfwise_cpu", |bench| {
            bench.iter(|| black_box(pollster::block_on(ours.embed(&b)).unwrap()))
        });
        let shape = (1, len);
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
    Some(shelfwise::testing::criterion_median_ns(&target, group, bench)? / 1e6)
}

fn main() {
    if !dir().join("model.safetensors").exists() {
        eprintln!("run scripts/fetch-models.sh first");
        return;
    }
    minilm();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "\n{:<8} {:>16} {:>12} {:>18}",
        "tokens", "shelfwise (ms)", "candle (ms)", "candle / shelfwise"
    );
    for &len in LENS {
        let g = format!("minilm_seq{len}");
        if let (Some(a), Some(b)) = (median_ms(&g, "shelfwise_cpu"), median_ms(&g, "candle")) {
            println!("{len:<8} {a:>16.3} {b:>12.3} {:>18.2}", b / a);
        }
    }
}
