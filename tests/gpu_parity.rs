//! GPU against CPU on adversarial catalogues, natively (Vulkan; lavapipe in CI).
//!
//! Without an adapter the test prints why and passes, unless `SHELFWISE_REQUIRE_GPU=1` or `CI` is set: then
//! a missing GPU fails, so CI can never skip the GPU path silently.

use shelfwise::backend::cpu::rank::dot_i8;
use shelfwise::shard::quantize_i8;
use shelfwise::{Backend, DeviceChoice, Dtype, Index};
use shelfwise_testkit::{check_equivalent, parity_cases};

fn gpu_required() -> bool {
    std::env::var("SHELFWISE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty())
}

/// Loads on the GPU, or returns `None` (skip) when no adapter exists and none is required.
fn gpu_index(catalog: shelfwise::Catalog) -> Option<Index> {
    match pollster::block_on(Index::new(catalog, DeviceChoice::Gpu)) {
        Ok(i) => Some(i),
        Err(e) if !gpu_required() && e.code() == "GPU_UNAVAILABLE" => {
            eprintln!("skipping GPU parity: {e} (set SHELFWISE_REQUIRE_GPU=1 to fail instead)");
            None
        }
        Err(e) => panic!("GPU index failed: {e}"),
    }
}

#[test]
fn gpu_matches_cpu_on_adversarial_catalogues() {
    for case in parity_cases(true) {
        let catalog = case.catalog();
        let dtype = catalog.dtype();
        let Some(index) = gpu_index(catalog) else {
            return;
        };
        assert_eq!(index.backend(), Backend::WebGpu);
        let gpu = pollster::block_on(index.search(&case.query, &case.opts)).unwrap();
        let cpu = index.search_cpu(&case.query, &case.opts).unwrap();
        assert_eq!(
            gpu.backend,
            Backend::WebGpu,
            "{}: the GPU served the request",
            case.name
        );
        assert_eq!(cpu.backend, Backend::Cpu);
        assert!(
            !cpu.rows.is_empty(),
            "{}: the case ranks something",
            case.name
        );
        if let Err(e) = check_equivalent(&cpu, &gpu, 1e-5, case.magnitude()) {
            panic!("{}: {e}", case.name);
        }
        if dtype == Dtype::I8 && case.opts.popularity_weight == 0.0 && case.opts.boosts.is_empty() {
            // Integer dot products must be identical: recompute each one and compare bit for bit.
            let cat = index.catalog();
            let d = cat.dim();
            let mut q8 = vec![0i8; d];
            let qs = quantize_i8(&case.query, &mut q8);
            for (&row, &score) in gpu.rows.iter().zip(&gpu.scores) {
                let (s, r) = cat.locate(row as usize);
                let shard = &cat.shards()[s];
                let q_row = shard_row_i8(shard, r, d);
                let mut acc = [0i32];
                dot_i8(&q_row, d, &q8, &mut acc);
                let scale = shard.int8_scale(r);
                let expect = acc[0] as f32 * qs * scale;
                assert_eq!(
                    score.to_bits(),
                    expect.to_bits(),
                    "{}: row {row} int8 score",
                    case.name
                );
            }
        }
        if case.name.starts_with("ties") {
            let rows: Vec<u32> = (0..case.opts.k as u32).collect();
            assert_eq!(gpu.rows, rows, "ties break by row on the GPU");
            assert_eq!(cpu.rows, rows, "ties break by row on the CPU");
        }
        eprintln!("{}: {} results, parity ok", case.name, gpu.rows.len());
    }
}

fn shard_row_i8(shard: &shelfwise::Shard, r: usize, d: usize) -> Vec<i8> {
    shard
        .int8_row(r)
        .map(|s| s.to_vec())
        .unwrap_or_else(|| vec![0; d])
}

/// Small binding limits force many chunks (and chunks that end mid-tile), across several shards.
#[test]
fn chunked_uploads_match_the_cpu() {
    for name in ["odd-int8", "filters-f32", "dim7-f16"] {
        let case = parity_cases(false)
            .into_iter()
            .find(|c| c.name == name)
            .unwrap();
        let limit = 16_384; // bytes: tens to a thousand rows per chunk
        let index = match pollster::block_on(Index::gpu_with_chunk_limit(case.catalog(), limit)) {
            Ok(i) => i,
            Err(e) if !gpu_required() && e.code() == "GPU_UNAVAILABLE" => return,
            Err(e) => panic!("{e}"),
        };
        assert!(
            index.gpu_chunks() > 2,
            "{name}: {} chunks",
            index.gpu_chunks()
        );
        let gpu = pollster::block_on(index.search(&case.query, &case.opts)).unwrap();
        let cpu = index.search_cpu(&case.query, &case.opts).unwrap();
        assert_eq!(gpu.backend, Backend::WebGpu);
        check_equivalent(&cpu, &gpu, 1e-5, case.magnitude())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn overlapping_requests_on_one_gpu_index_agree() {
    let case = parity_cases(false)
        .into_iter()
        .find(|c| c.name == "filters-int8")
        .unwrap();
    let Some(index) = gpu_index(case.catalog()) else {
        return;
    };
    let want = index.search_cpu(&case.query, &case.opts).unwrap();
    // Several requests in flight at once, polled together.
    let futs: Vec<_> = (0..6)
        .map(|_| index.search(&case.query, &case.opts))
        .collect();
    let results = pollster::block_on(join_all(futs));
    for r in results {
        let r = r.unwrap();
        check_equivalent(&want, &r, 1e-5, case.magnitude()).unwrap();
    }
}

/// Polls every future until all are done (a tiny `join_all`).
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|o| o.unwrap()).collect()
}
