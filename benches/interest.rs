//! The interest model and the whole `recommend()` pipeline, CPU engine against GPU engine, in the same run.
//!
//! Two parts:
//! - **The bundle** (when one is found: `SHELFWISE_BENCH_BUNDLE`, else `www/ml100k`, else `data/bundle`):
//!   the interest vector of a 50-event session, and one whole `recommend()` (k = 12, MMR 0.3, in stock only).
//! - **Model shapes** with seeded random weights, from the default interest model (2 layers, d = 64,
//!   50 events) up to a large one, to find where the GPU starts to win. Each shape's *work* is
//!   layers x positions x width^2, the quantity `device: "auto"` compares with `AUTO_GPU_MODEL_WORK`.
//!
//! The GPU rows run on whatever adapter wgpu finds. On a software adapter (lavapipe, SwiftShader) they show
//! that the path works, not how fast a GPU is; the table names the adapter. The CPU engine uses every core
//! the process may run on: `taskset -c 0` gives the one thread the wasm CPU path has.
//!
//! Run: `cargo bench --bench interest`.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{criterion_group, Criterion};
use shelfwise::backend::cpu::CpuNn;
use shelfwise::backend::gpu::nn::GpuNn;
use shelfwise::backend::gpu::GpuContext;
use shelfwise::model::{Bert, ModelConfig};
use shelfwise::pipeline::{Recommender, SessionEvent};
use shelfwise::tokenize::Batch;
use shelfwise::{DeviceChoice, SearchOptions};

/// (layers, width, heads, events).
const SHAPES: &[(usize, usize, usize, usize)] = &[
    (2, 64, 2, 50),
    (2, 128, 2, 50),
    (2, 256, 4, 50),
    (4, 256, 4, 100),
    (4, 512, 8, 100),
    (6, 768, 12, 200),
];

fn bundle_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SHELFWISE_BENCH_BUNDLE") {
        return Some(PathBuf::from(d));
    }
    ["www/ml100k", "data/bundle"]
        .iter()
        .map(|d| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(d))
        .find(|d| d.join("manifest.json").is_file())
}

fn load(dir: &Path, device: DeviceChoice) -> Option<Recommender> {
    let manifest = std::fs::read(dir.join("manifest.json")).ok()?;
    let rec = pollster::block_on(Recommender::load(
        &manifest,
        |f| {
            std::fs::read(dir.join(f)).map_err(|e| shelfwise::Error::Fetch {
                url: f.into(),
                reason: e.to_string(),
            })
        },
        device,
    ));
    match rec {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("bundle on {device:?}: {e}");
            None
        }
    }
}

fn shape_name(&(layers, width, _, events): &(usize, usize, usize, usize)) -> String {
    format!("shape_L{layers}_d{width}_n{events}")
}

fn shape_config(&(layers, width, heads, events): &(usize, usize, usize, usize)) -> ModelConfig {
    let json = serde_json::json!({
        "hidden_act": "gelu",
        "hidden_size": width,
        "intermediate_size": 4 * width,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": events,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "type_vocab_size": 7,
        "vocab_size": 1,
        "shelfwise": {"causal": true, "external_inputs": true, "normalize": false,
                      "pooling": "last", "pre_ln": true}
    });
    ModelConfig::from_json(json.to_string().as_bytes()).unwrap()
}

/// A GPU engine on a new device, or `None` (said once) when there is no adapter.
fn gpu_nn(first: bool) -> Option<GpuNn> {
    match pollster::block_on(GpuContext::new()) {
        Ok(c) => {
            if first {
                println!(
                    "GPU adapter: {}{}",
                    c.adapter_name(),
                    if c.is_software() {
                        " (software: not a speed figure)"
                    } else {
                        ""
                    }
                );
            }
            Some(pollster::block_on(GpuNn::new(c)).unwrap())
        }
        Err(e) => {
            if first {
                eprintln!("no GPU rows: {e}");
            }
            None
        }
    }
}

fn benches(c: &mut Criterion) {
    if let Some(dir) = bundle_dir() {
        println!("bundle: {}", dir.display());
        let mut cpu_top: Option<Vec<String>> = None;
        for (name, device) in [("cpu", DeviceChoice::Cpu), ("gpu", DeviceChoice::Gpu)] {
            let Some(rec) = load(&dir, device) else {
                continue;
            };
            let cat = rec.catalog();
            let mut events: Vec<SessionEvent> = (0..49)
                .map(|i| SessionEvent::Item {
                    kind: if i % 7 == 3 { "add_to_cart" } else { "view" }.into(),
                    id: cat.id((i * 131 + 7) % cat.len()).into(),
                })
                .collect();
            if rec.takes_searches() {
                events.push(SessionEvent::Search {
                    query: "space adventure".into(),
                });
            }
            let opts = SearchOptions {
                k: 12,
                in_stock_only: true,
                mmr_lambda: Some(0.7),
                ..Default::default()
            };
            let top: Vec<String> = pollster::block_on(rec.recommend(&events, &opts, None))
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.id)
                .collect();
            match &cpu_top {
                None => cpu_top = Some(top),
                Some(want) => assert_eq!(&top, want, "the GPU's top 12 differs from the CPU's"),
            }
            let mut g = c.benchmark_group("bundle");
            g.sample_size(50);
            g.bench_function(format!("interest_{name}"), |b| {
                b.iter(|| black_box(pollster::block_on(rec.interest(&events)).unwrap()))
            });
            g.bench_function(format!("recommend_{name}"), |b| {
                b.iter(|| {
                    black_box(pollster::block_on(rec.recommend(&events, &opts, None)).unwrap())
                })
            });
            g.finish();
        }
    } else {
        eprintln!("no bundle found: set SHELFWISE_BENCH_BUNDLE, or run scripts/demo-bundle.sh");
    }

    for (n, shape) in SHAPES.iter().enumerate() {
        let cfg = shape_config(shape);
        let weights = shelfwise::model::BertWeights::random(&cfg, 7);
        let (width, events) = (shape.1, shape.3);
        let batch = Batch {
            batch: 1,
            len: events,
            ids: (0..events as u32).collect(),
            attention_mask: vec![1; events],
            type_ids: (0..events as u32).map(|i| i % 7).collect(),
        };
        let mut rng = shelfwise::rng::Rng::new(3);
        let inputs: Vec<f32> = (0..events * width).map(|_| rng.normal()).collect();
        let mut g = c.benchmark_group(shape_name(shape));
        g.sample_size(if shape.1 >= 512 { 10 } else { 30 });
        let cpu = Bert::new(cfg.clone(), &weights, CpuNn).unwrap();
        g.bench_function("cpu", |b| {
            b.iter(|| black_box(pollster::block_on(cpu.embed_vectors(&batch, &inputs)).unwrap()))
        });
        if let Some(nn) = gpu_nn(n == 0) {
            let model = Bert::new(cfg.clone(), &weights, nn).unwrap();
            let want = pollster::block_on(cpu.embed_vectors(&batch, &inputs)).unwrap();
            let got = pollster::block_on(model.embed_vectors(&batch, &inputs)).unwrap();
            let diff = shelfwise_testkit::max_rel_diff(&got, &want);
            assert!(
                diff < 1e-3,
                "{}: GPU and CPU differ by {diff}",
                shape_name(shape)
            );
            g.bench_function("gpu", |b| {
                b.iter(|| {
                    black_box(pollster::block_on(model.embed_vectors(&batch, &inputs)).unwrap())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(interest, benches);

fn median_ms(group: &str, bench: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    shelfwise_testkit::criterion_median_ns(&target, group, bench).map(|ns| ns / 1e6)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

fn main() {
    interest();
    Criterion::default().configure_from_args().final_summary();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nCPU engine threads: {threads}");
    println!(
        "{:<24} {:>12} {:>12} {:>10}",
        "bundle", "cpu (ms)", "gpu (ms)", "cpu / gpu"
    );
    for what in ["interest", "recommend"] {
        let (c, g) = (
            median_ms("bundle", &format!("{what}_cpu")),
            median_ms("bundle", &format!("{what}_gpu")),
        );
        if c.is_some() || g.is_some() {
            let ratio = c
                .zip(g)
                .map_or("-".into(), |(c, g)| format!("{:.2}", c / g));
            println!("{what:<24} {:>12} {:>12} {ratio:>10}", cell(c), cell(g));
        }
    }
    println!(
        "\n{:<24} {:>10} {:>12} {:>12} {:>10}",
        "shape", "work (M)", "cpu (ms)", "gpu (ms)", "cpu / gpu"
    );
    for shape in SHAPES {
        let name = shape_name(shape);
        let work = (shape.0 * shape.3 * shape.1 * shape.1) as f64 / 1e6;
        let (c, g) = (median_ms(&name, "cpu"), median_ms(&name, "gpu"));
        let ratio = c
            .zip(g)
            .map_or("-".into(), |(c, g)| format!("{:.2}", c / g));
        println!(
            "{name:<24} {work:>10.1} {:>12} {:>12} {ratio:>10}",
            cell(c),
            cell(g)
        );
    }
}
