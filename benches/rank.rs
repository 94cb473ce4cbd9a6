//! Native ranking benchmarks (criterion). Case: an int8 catalogue of 64 dims, k = 10, 50 excluded ids and
//! in-stock only, at 100k and 1M items. Baselines in the same run:
//! - a plain scalar scan over dequantised f32 rows with an insertion top-k (what one writes by hand);
//! - a memcpy floor: copying the catalogue's int8 rows once;
//! - the GPU path when an adapter exists. On a software adapter (lavapipe, SwiftShader) that row shows the
//!   path works, never how fast a GPU is; the bench prints the adapter's name.
//!
//! After criterion's own report, a table of medians and ratios against shelfwise's CPU median is printed.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use shelfwise::{Catalog, DeviceChoice, Dtype, Index, SearchOptions, Shard};
use shelfwise_testkit::synth::{self, SynthSpec};

const SIZES: &[(&str, usize)] = &[("100k", 100_000), ("1M", 1 << 20)];
const DIM: usize = 64;

struct Setup {
    index: Index,
    shard_bytes: Vec<u8>,
    rows_f32: Vec<f32>,
    rows_i8: Vec<i8>,
    in_stock: Vec<bool>,
    excluded: Vec<usize>,
    queries: Vec<Vec<f32>>,
    opts: SearchOptions,
}

fn setup(n: usize) -> Setup {
    let cat = synth::generate(&SynthSpec::new(n, DIM));
    let bytes = synth::shard_bytes(&cat, DIM, Dtype::I8, "bench").unwrap();
    let shard = Shard::from_bytes("bench", &bytes).unwrap();
    let mut rows_f32 = vec![0f32; n * DIM];
    let mut rows_i8 = Vec::with_capacity(n * DIM);
    for r in 0..n {
        shard.row_f32(r, &mut rows_f32[r * DIM..(r + 1) * DIM]);
        rows_i8.extend_from_slice(shard.int8_row(r).unwrap());
    }
    let in_stock = cat.attributes.in_stock.clone().unwrap();
    let excluded: Vec<usize> = (0..50).map(|i| (i * 104_729 + 13) % n).collect();
    let queries = (0..16)
        .map(|i| rows_f32[(i * 7919 % n) * DIM..(i * 7919 % n + 1) * DIM].to_vec())
        .collect();
    let opts = SearchOptions {
        k: 10,
        exclude: excluded.iter().map(|&r| cat.ids[r].clone()).collect(),
        in_stock_only: true,
        ..Default::default()
    };
    Setup {
        index: Index::cpu(Catalog::from_shards(vec![shard]).unwrap()),
        shard_bytes: bytes,
        rows_f32,
        rows_i8,
        in_stock,
        excluded,
        queries,
        opts,
    }
}

/// The hand-written baseline: dot products in a plain loop, filters, insertion into a sorted top-k.
fn scalar_scan(s: &Setup, q: &[f32], k: usize) -> Vec<usize> {
    let mut best: Vec<(f32, usize)> = Vec::with_capacity(k + 1);
    for (r, row) in s.rows_f32.chunks_exact(DIM).enumerate() {
        let mut score = 0f32;
        for d in 0..DIM {
            score += row[d] * q[d];
        }
        if best.len() == k && score <= best[k - 1].0 {
            continue;
        }
        if !s.in_stock[r] || s.excluded.contains(&r) {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= score);
        best.insert(at, (score, r));
        best.truncate(k);
    }
    best.into_iter().map(|(_, r)| r).collect()
}

fn benches(c: &mut Criterion) {
    for &(name, n) in SIZES {
        let s = setup(n);
        let mut g = c.benchmark_group(format!("rank_{name}"));
        g.sample_size(if n > 200_000 { 20 } else { 60 });
        let mut i = 0;
        g.bench_function("shelfwise_cpu", |b| {
            b.iter(|| {
                i += 1;
                black_box(s.index.search_cpu(&s.queries[i % 16], &s.opts).unwrap())
            })
        });
        g.bench_function("scalar_f32_scan", |b| {
            b.iter(|| {
                i += 1;
                black_box(scalar_scan(&s, &s.queries[i % 16], 10))
            })
        });
        let mut dst = vec![0i8; s.rows_i8.len()];
        g.bench_function("memcpy_floor", |b| {
            b.iter(|| {
                dst.copy_from_slice(black_box(&s.rows_i8));
                black_box(&dst);
            })
        });
        let gpu = pollster::block_on(Index::new(
            Catalog::from_shards(vec![Shard::from_bytes("bench", &s.shard_bytes).unwrap()])
                .unwrap(),
            DeviceChoice::Gpu,
        ));
        match gpu {
            Ok(gpu) => {
                let adapter = gpu.adapter_name().unwrap_or_default();
                if name == SIZES[0].0 {
                    println!("GPU adapter: {adapter}");
                }
                let software = ["llvmpipe", "lavapipe", "SwiftShader"]
                    .iter()
                    .any(|s| adapter.contains(s));
                g.sample_size(if software { 10 } else { 60 });
                g.bench_function("gpu", |b| {
                    b.iter(|| {
                        i += 1;
                        black_box(
                            pollster::block_on(gpu.search(&s.queries[i % 16], &s.opts)).unwrap(),
                        )
                    })
                });
            }
            Err(e) => eprintln!("no GPU row: {e}"),
        }
        g.finish();
    }
}

criterion_group!(rank, benches);

fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/target").into());
    shelfwise_testkit::criterion_median_ns(&target, group, bench)
}

fn main() {
    rank();
    Criterion::default().configure_from_args().final_summary();
    println!(
        "\n{:<10} {:<22} {:>12} {:>22}",
        "catalogue", "case", "median", "x shelfwise_cpu"
    );
    for &(name, _) in SIZES {
        let group = format!("rank_{name}");
        let Some(base) = median_ns(&group, "shelfwise_cpu") else {
            continue;
        };
        for bench in ["shelfwise_cpu", "scalar_f32_scan", "memcpy_floor", "gpu"] {
            if let Some(m) = median_ns(&group, bench) {
                println!(
                    "{name:<10} {bench:<22} {:>9.3} ms {:>22.2}",
                    m / 1e6,
                    m / base
                );
            }
        }
    }
    println!(
        "(the gpu row runs on whatever adapter exists; on a software one it is not a speed figure)"
    );
}
