//! The offline pipeline end to end on a small catalogue: distil a text encoder from all-MiniLM-L6-v2, train a
//! text + id interest model with searches, export the bundle, and check that shelfwise's engine on the
//! bundle ranks exactly as the trainer did (CPU, and the GPU where there is one).

mod common;

use std::path::Path;

use common::{shelfwise, text, tmp};
use shelfwise::backend::gpu::GpuContext;
use shelfwise::pipeline::{Recommender, SessionEvent};
use shelfwise::{Backend, DeviceChoice, SearchOptions};

const GENRES: [&str; 4] = ["Comedy", "Horror", "Western", "Musical"];

/// 24 items in 4 genres; sessions stay within one genre, and every third session searches for it first.
fn write_data(dir: &Path) {
    let items: String = (0..24)
        .map(|i| {
            format!(
                "{{\"id\": \"m{i}\", \"title\": \"{} story {i} (199{})\", \"categories\": [\"{}\"], \"price\": {}.5, \"in_stock\": {}}}\n",
                GENRES[i % 4].to_lowercase(),
                i % 10,
                GENRES[i % 4],
                5 + i,
                i % 5 != 0
            )
        })
        .collect();
    let mut events = String::new();
    for s in 0..60 {
        let g = s % 4;
        let mut t = 0;
        if s % 3 == 0 {
            events.push_str(&format!(
                "{{\"session\": \"u{s}\", \"type\": \"search\", \"query\": \"{} films\", \"ts\": {t}}}\n",
                GENRES[g].to_lowercase()
            ));
            t += 1;
        }
        for k in 0..6 {
            let item = g + 4 * ((s + k) % 6);
            events.push_str(&format!(
                "{{\"session\": \"u{s}\", \"type\": \"view\", \"item\": \"m{item}\", \"ts\": {t}}}\n"
            ));
            t += 1;
        }
    }
    std::fs::write(dir.join("catalog.jsonl"), items).unwrap();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
}

fn run(args: &[&str]) -> String {
    let o = shelfwise(args);
    assert!(o.status.success(), "shelfwise {args:?}: {}", text(&o));
    text(&o)
}

/// The bundle's recommendations for every parity case, against the trainer's top 10.
async fn check_parity(
    bundle: &Path,
    parity: &serde_json::Value,
    device: DeviceChoice,
    tol: f32,
) -> usize {
    let manifest = std::fs::read(bundle.join("manifest.json")).unwrap();
    let devices = GpuContext::devices_created();
    let rec = match Recommender::load(
        &manifest,
        |f| Ok(std::fs::read(bundle.join(f)).unwrap()),
        device,
    )
    .await
    {
        Ok(r) => r,
        Err(e)
            if device == DeviceChoice::Gpu && std::env::var("SHELFWISE_REQUIRE_GPU").is_err() =>
        {
            eprintln!("skipping the GPU: {e}");
            return 0;
        }
        Err(e) => panic!("{e}"),
    };
    if device == DeviceChoice::Gpu {
        // The text encoder, the interest model and ranking all run on the GPU, on one device.
        assert_eq!(rec.model_backend(), Backend::WebGpu);
        assert_eq!(rec.rank_backend(), Backend::WebGpu);
        assert!(rec.takes_searches());
        assert_eq!(
            GpuContext::devices_created() - devices,
            1,
            "one GPU device per loaded recommender"
        );
        // With f32 rows the interest vector goes from the model to ranking on the GPU: one round trip
        // brings back the candidates and the vector together (int8 rows quantise it on the host: two).
        let reads = GpuContext::read_backs();
        let view = SessionEvent::Item {
            kind: "view".into(),
            id: "m1".into(),
        };
        let out = rec
            .recommend(&[view], &SearchOptions::default(), None)
            .await
            .unwrap();
        assert_eq!(out.interest.map(|v| v.len()), Some(rec.dim()));
        let int8 = rec.catalog().dtype() == shelfwise::Dtype::I8;
        assert_eq!(
            GpuContext::read_backs() - reads,
            if int8 { 2 } else { 1 },
            "read-backs for one recommend() on the GPU"
        );
    }
    let mut exact = 0;
    let cases = parity["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for (n, c) in cases.iter().enumerate() {
        let events: Vec<SessionEvent> = c["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let (kind, what) = (e[0].as_str().unwrap(), e[1].as_str().unwrap());
                if kind == "search" {
                    SessionEvent::Search { query: what.into() }
                } else {
                    SessionEvent::Item {
                        kind: kind.into(),
                        id: what.into(),
                    }
                }
            })
            .collect();
        let exclude: Vec<String> = serde_json::from_value(c["exclude"].clone()).unwrap();
        let out = rec
            .recommend(
                &events,
                &SearchOptions {
                    k: 10,
                    exclude,
                    ..Default::default()
                },
                None,
            )
            .await
            .unwrap()
            .items;
        let theirs: Vec<(String, f32)> = serde_json::from_value(c["top"].clone()).unwrap();
        let ours: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
        let ids: Vec<&str> = theirs.iter().map(|t| t.0.as_str()).collect();
        if ours == ids {
            exact += 1;
        }
        for (r, (id, s)) in out.iter().zip(&theirs) {
            if r.id == *id {
                assert!(
                    (r.score - s).abs() <= tol * (1.0 + s.abs()),
                    "case {n}: {} scored {} and {s}",
                    id,
                    r.score
                );
            }
        }
        assert!(out
            .iter()
            .all(|r| !matches!(r.reason, shelfwise::pipeline::Reason::Popular)));
    }
    exact
}

#[test]
fn distil_train_export_and_the_engine_ranks_as_the_trainer() {
    let Some(teacher) = common::minilm_dir() else {
        return;
    };
    let dir = tmp("bundle");
    write_data(&dir);
    let p = |x: &str| dir.join(x).to_str().unwrap().to_string();
    let out = run(&[
        "distill",
        "--teacher",
        teacher.to_str().unwrap(),
        "--catalog",
        &p("catalog.jsonl"),
        "--out",
        &p("encoder"),
        "--vocab",
        "600",
        "--dim",
        "32",
        "--heads",
        "2",
        "--layers",
        "1",
        "--intermediate",
        "64",
        "--epochs",
        "2",
        "--pairs-per-word",
        "0.2",
        "--max-len",
        "16",
    ]);
    assert!(
        out.contains("mean cosine with the teacher on held-out text"),
        "{out}"
    );
    let size: u64 = ["config.json", "model.safetensors", "tokenizer.json"]
        .iter()
        .map(|f| {
            std::fs::metadata(dir.join("encoder").join(f))
                .unwrap()
                .len()
        })
        .sum();
    assert!(size < 3 << 20, "{size} bytes");
    let out = run(&[
        "train",
        "--catalog",
        &p("catalog.jsonl"),
        "--events",
        &p("events.jsonl"),
        "--encoder",
        &p("encoder"),
        "--out",
        &p("model"),
        "--dim",
        "16",
        "--max-len",
        "8",
        "--max-epochs",
        "3",
        "--search-rate",
        "0.2",
    ]);
    assert!(out.contains("test: HR@10"), "{out}");
    let parity: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model/parity.json")).unwrap()).unwrap();
    for dtype in ["f32", "int8"] {
        let bundle = p(&format!("bundle-{dtype}"));
        let out = run(&[
            "export",
            "--model",
            &p("model"),
            "--encoder",
            &p("encoder"),
            "--catalog",
            &p("catalog.jsonl"),
            "--events",
            &p("events.jsonl"),
            "--dtype",
            dtype,
            "--out",
            &bundle,
        ]);
        assert!(out.contains("wrote a bundle of 24 items"), "{out}");
    }
    let cases = parity["cases"].as_array().unwrap().len();
    pollster::block_on(async {
        let f32_bundle = dir.join("bundle-f32");
        assert_eq!(
            check_parity(&f32_bundle, &parity, DeviceChoice::Cpu, 1e-3).await,
            cases
        );
        let gpu = check_parity(&f32_bundle, &parity, DeviceChoice::Gpu, 1e-3).await;
        assert!(gpu == cases || gpu == 0, "{gpu} of {cases} on the GPU");
        // int8 rows move scores by up to the quantisation error; most lists stay identical.
        let int8 = check_parity(&dir.join("bundle-int8"), &parity, DeviceChoice::Cpu, 0.05).await;
        eprintln!("int8: {int8} of {cases} top-10 lists identical");
        let int8_gpu =
            check_parity(&dir.join("bundle-int8"), &parity, DeviceChoice::Gpu, 0.05).await;
        eprintln!("int8 on the GPU: {int8_gpu} of {cases} top-10 lists identical");
    });

    // The CLI runs the same pipeline, with reasons.
    let out = run(&[
        "recommend",
        "--bundle",
        &p("bundle-int8"),
        "--event",
        "view:m1",
        "--event",
        "search:horror films",
        "-k",
        "5",
    ]);
    assert!(out.contains("because"), "{out}");
    let out = run(&["recommend", "--bundle", &p("bundle-int8"), "-k", "3"]);
    assert!(out.contains("popular"), "{out}");
    let o = shelfwise(&[
        "recommend",
        "--bundle",
        &p("bundle-int8"),
        "--event",
        "dance:m1",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("dance"),
        "{}",
        text(&o)
    );
    // A corrupted file is caught by its checksum.
    let shard = dir.join("bundle-int8/interest/model.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let o = shelfwise(&[
        "recommend",
        "--bundle",
        &p("bundle-int8"),
        "--event",
        "view:m1",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("sha256"),
        "{}",
        text(&o)
    );
}
