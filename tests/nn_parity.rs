//! Every Transformer kernel against its CPU twin, natively (Vulkan; lavapipe in CI), on seeded random
//! inputs at awkward sizes: dimensions that are not multiples of the tiles, rows past one workgroup,
//! dispatches folded past 65535 workgroups, padding, causal rows with nothing to attend to. Then whole
//! random models (post-LN and pre-LN, causal, every pooling) on both backends.
//!
//! Without an adapter the tests print why and pass, unless `SHELFWISE_REQUIRE_GPU=1` or `CI` is set.

use ndarray::Array2;
use shelfwise::backend::cpu::CpuNn;
use shelfwise::backend::gpu::nn::{GpuNn, GpuTensor};
use shelfwise::backend::gpu::GpuContext;
use shelfwise::model::weights::{LinearWeights, NormWeights};
use shelfwise::model::{Bert, BertWeights, ModelConfig, NnBackend, Pooling};
use shelfwise::rng::Rng;
use shelfwise::tokenize::Batch;
use shelfwise_testkit::max_rel_diff;

const TOL: f32 = 2e-5;

fn gpu() -> Option<GpuNn> {
    let required = std::env::var("SHELFWISE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty());
    match pollster::block_on(GpuContext::new()) {
        Ok(ctx) => Some(pollster::block_on(GpuNn::new(ctx)).unwrap()),
        Err(e) if !required => {
            eprintln!("skipping: {e} (set SHELFWISE_REQUIRE_GPU=1 to fail instead)");
            None
        }
        Err(e) => panic!("no GPU: {e}"),
    }
}

fn random(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| scale * rng.normal()).collect()
}

fn both(g: &GpuNn, v: &[f32], cols: usize) -> (Array2<f32>, GpuTensor) {
    (
        Array2::from_shape_vec((v.len() / cols, cols), v.to_vec()).unwrap(),
        g.tensor(v, cols).unwrap(),
    )
}

fn read(g: &GpuNn, t: &GpuTensor) -> Vec<f32> {
    pollster::block_on(g.read(t)).unwrap()
}

fn check(what: &str, cpu: &Array2<f32>, gpu: Vec<f32>, tol: f32) {
    let cpu: Vec<f32> = cpu.iter().copied().collect();
    let d = max_rel_diff(&gpu, &cpu);
    assert!(
        d <= tol,
        "{what}: GPU differs from CPU by {d} (tolerance {tol})"
    );
}

#[test]
fn linear_matches() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(1);
    for &(n, k, m) in &[
        (1, 1, 1),
        (3, 7, 5),
        (65, 17, 63),
        (130, 389, 129),
        (64, 64, 64),
        (200, 1536, 384),
    ] {
        let x = random(&mut rng, n * k, 1.0);
        let w = LinearWeights {
            w: random(&mut rng, m * k, 1.0 / (k as f32).sqrt()),
            b: random(&mut rng, m, 0.5),
            out_dim: m,
            in_dim: k,
        };
        let (cx, gx) = both(&g, &x, k);
        let cl = CpuNn.upload_linear(&w).unwrap();
        let gl = g.upload_linear(&w).unwrap();
        let got = read(&g, &g.linear(&gx, &gl));
        check(
            &format!("linear {n}x{k} -> {m}"),
            &CpuNn.linear(&cx, &cl),
            got,
            TOL,
        );
    }
}

#[test]
fn layer_norm_matches() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(2);
    // 65537 rows fold the dispatch into two dimensions; one column has zero variance.
    for &(rows, cols) in &[(1, 1), (5, 7), (3, 384), (2, 700), (65_537, 3)] {
        let x: Vec<f32> = random(&mut rng, rows * cols, 3.0)
            .into_iter()
            .map(|v| v + 10.0)
            .collect();
        let n = NormWeights {
            gamma: random(&mut rng, cols, 1.0),
            beta: random(&mut rng, cols, 1.0),
        };
        let (cx, gx) = both(&g, &x, cols);
        let got = read(&g, &g.layer_norm(&gx, &g.upload_norm(&n, 1e-12).unwrap()));
        let want = CpuNn.layer_norm(&cx, &CpuNn.upload_norm(&n, 1e-12).unwrap());
        // Summing in another order moves the mean by an ulp or so, which the division by the standard
        // deviation magnifies: each row's tolerance grows with |mean| / std (its condition number).
        for (r, (gr, cr)) in got.chunks(cols).zip(want.rows()).enumerate() {
            let xr = &x[r * cols..(r + 1) * cols];
            let mean = xr.iter().sum::<f32>() / cols as f32;
            let std = (xr.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / cols as f32).sqrt();
            let cond = if std > 0.0 {
                1.0 + mean.abs() / std
            } else {
                1.0
            };
            let d = max_rel_diff(gr, cr.as_slice().unwrap());
            assert!(
                d <= TOL * cond,
                "layer_norm {rows}x{cols}, row {r}: GPU differs by {d} (condition {cond})"
            );
        }
    }
}

#[test]
fn add_and_gelu_match() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(3);
    // 65536 * 256 + 3 values need more than 65535 workgroups in x.
    for &n in &[1usize, 1000, 65_536 * 256 + 3] {
        let a = random(&mut rng, n, 4.0);
        let b = random(&mut rng, n, 4.0);
        let (ca, ga) = both(&g, &a, 1);
        let (cb, gb) = both(&g, &b, 1);
        check(
            &format!("add {n}"),
            &CpuNn.add(&ca, &cb),
            read(&g, &g.add(&ga, &gb)),
            0.0,
        );
        check(
            &format!("gelu {n}"),
            &CpuNn.gelu(&ca),
            read(&g, &g.gelu(&ga)),
            TOL,
        );
    }
}

/// A padding mask with `pad[b]` trailing zeros per row, and optionally `lead` leading zeros.
fn mask(batch: usize, len: usize, pad: &[usize], lead: usize) -> Vec<u32> {
    let mut m = vec![1u32; batch * len];
    for b in 0..batch {
        for t in 0..len {
            if t >= len - pad[b % pad.len()] || t < lead {
                m[b * len + t] = 0;
            }
        }
    }
    m
}

#[test]
fn attention_matches() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(4);
    // (batch, len, heads, head_dim, padding per row, leading zeros): lengths past one workgroup, head
    // dimensions past 64, and (with causal) rows whose only keys are padding.
    for &(batch, len, heads, dh, pad, lead) in &[
        (1, 1, 1, 1, &[0usize][..], 0),
        (3, 5, 3, 5, &[0, 2, 4][..], 0),
        (2, 70, 2, 70, &[3, 60][..], 0),
        (2, 300, 12, 32, &[0, 250][..], 2),
        (4, 16, 12, 32, &[1][..], 0),
    ] {
        let hidden = heads * dh;
        let n = batch * len;
        let m = mask(batch, len, pad, lead);
        let (cq, gq) = both(&g, &random(&mut rng, n * hidden, 1.0), hidden);
        let (ck, gk) = both(&g, &random(&mut rng, n * hidden, 1.0), hidden);
        let (cv, gv) = both(&g, &random(&mut rng, n * hidden, 1.0), hidden);
        for causal in [false, true] {
            let want = CpuNn.attention(&cq, &ck, &cv, &m, batch, heads, causal);
            let got = read(&g, &g.attention(&gq, &gk, &gv, &m, batch, heads, causal));
            check(
                &format!("attention b{batch} len{len} h{heads} dh{dh} causal={causal}"),
                &want,
                got,
                TOL,
            );
        }
    }
}

#[test]
fn pool_matches() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(5);
    for &(batch, len, hidden) in &[(1, 1, 1), (3, 7, 300), (5, 33, 384)] {
        let m = mask(batch, len, &[0, len - 1, len / 2], 0);
        let (cx, gx) = both(&g, &random(&mut rng, batch * len * hidden, 2.0), hidden);
        for pooling in [Pooling::Mean, Pooling::Cls, Pooling::Last] {
            for normalize in [false, true] {
                let want = CpuNn.pool(&cx, &m, batch, pooling, normalize);
                let got = read(&g, &g.pool(&gx, &m, batch, pooling, normalize));
                check(
                    &format!("pool b{batch} len{len} h{hidden} {pooling:?} normalize={normalize}"),
                    &want,
                    got,
                    TOL,
                );
            }
        }
    }
}

#[test]
fn embed_matches() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(6);
    let (vocab, positions, types, hidden) = (50, 16, 2, 37);
    let (batch, len) = (3, 9);
    let word = random(&mut rng, vocab * hidden, 1.0);
    let pos = random(&mut rng, positions * hidden, 1.0);
    let typ = random(&mut rng, types * hidden, 1.0);
    let ids: Vec<u32> = (0..batch * len)
        .map(|_| rng.below(vocab as u64) as u32)
        .collect();
    let tids: Vec<u32> = (0..batch * len).map(|i| (i % 2) as u32).collect();
    let c = |t: &[f32]| CpuNn.upload_table(t, hidden).unwrap();
    let u = |t: &[f32]| g.upload_table(t, hidden).unwrap();
    let want = CpuNn.embed(&c(&word), &c(&pos), &c(&typ), &ids, &tids, len);
    let got = g.embed(&u(&word), &u(&pos), &u(&typ), &ids, &tids, len);
    check("embed", &want, read(&g, &got), 0.0);
}

fn config(extra: &str) -> ModelConfig {
    ModelConfig::from_json(
        format!(
            r#"{{"vocab_size": 97, "hidden_size": 60, "num_hidden_layers": 3, "num_attention_heads": 3,
                "intermediate_size": 130, "hidden_act": "gelu", "max_position_embeddings": 80,
                "type_vocab_size": 2, "layer_norm_eps": 1e-12 {extra}}}"#
        )
        .as_bytes(),
    )
    .unwrap()
}

#[test]
fn whole_models_match() {
    let Some(g) = gpu() else { return };
    let mut rng = Rng::new(7);
    let (batch, len) = (5, 70);
    let m = mask(batch, len, &[0, 10, 69, 35, 1], 0);
    let ids: Vec<u32> = (0..batch * len).map(|_| rng.below(97) as u32).collect();
    let b = Batch {
        batch,
        len,
        ids,
        attention_mask: m,
        type_ids: vec![0; batch * len],
    };
    let mut g = Some(g);
    for extra in [
        "",
        r#", "shelfwise": {"pooling": "cls", "normalize": false}"#,
        r#", "shelfwise": {"pre_ln": true, "causal": true, "pooling": "last"}"#,
    ] {
        let cfg = config(extra);
        let w = BertWeights::random(&cfg, 8);
        let cpu = Bert::new(cfg.clone(), &w, CpuNn).unwrap();
        let backend = match g.take() {
            Some(b) => b,
            None => gpu().unwrap(),
        };
        let gpu = Bert::new(cfg, &w, backend).unwrap();
        let want = pollster::block_on(cpu.embed(&b)).unwrap();
        let got = pollster::block_on(gpu.embed(&b)).unwrap();
        let d = max_rel_diff(&got, &want);
        assert!(d <= 1e-4, "model {extra:?}: GPU differs by {d}");
        // Twice: the second pass runs on pooled buffers.
        let again = pollster::block_on(gpu.embed(&b)).unwrap();
        assert_eq!(
            again, got,
            "model {extra:?}: a second pass gives the same result"
        );
        let states = gpu.hidden_states(&b).unwrap();
        let states = pollster::block_on(gpu.backend().read(&states)).unwrap();
        let cstates: Vec<f32> = cpu.hidden_states(&b).unwrap().iter().copied().collect();
        let d = max_rel_diff(&states, &cstates);
        assert!(d <= 1e-4, "model {extra:?}: token states differ by {d}");
    }
}
