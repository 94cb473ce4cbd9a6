//! Browser tests, run twice by `scripts/test.sh`: in headless Chromium without WebGPU (the CPU path) and
//! with `--enable-unsafe-webgpu` (SwiftShader's WebGPU). The build-time variable `SHELFWISE_EXPECT_BACKEND`
//! (`cpu` or `webgpu`) says which run this is, and `the_expected_backend_actually_ran` fails when the
//! browser did not give that backend, so a silently skipped GPU path cannot pass.
#![cfg(target_arch = "wasm32")]

use js_sys::{Float32Array, Object, Promise, Reflect, Uint8Array};
use shelfwise::wasm::ItemIndex;
use shelfwise::{Backend, DeviceChoice, Dtype, Index, SearchOptions};
use shelfwise_testkit::{check_equivalent, parity_cases, synth};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn expected_backend() -> &'static str {
    match option_env!("SHELFWISE_EXPECT_BACKEND") {
        Some(b @ ("cpu" | "webgpu")) => b,
        _ => panic!("build the browser tests with SHELFWISE_EXPECT_BACKEND=cpu or =webgpu (scripts/test.sh does)"),
    }
}

fn shard(items: usize, dim: usize, dtype: Dtype) -> Vec<u8> {
    let mut spec = synth::SynthSpec::new(items, dim);
    spec.seed = 99;
    let cat = synth::generate(&spec);
    synth::shard_bytes(&cat, dim, dtype, "web-test").unwrap()
}

fn opts(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).unwrap();
    }
    o.into()
}

async fn load(bytes: &[u8], device: &str) -> Result<ItemIndex, JsValue> {
    ItemIndex::load(
        Uint8Array::from(bytes).into(),
        opts(&[("device", device.into())]),
    )
    .await
}

async fn search(index: &ItemIndex, q: &[f32], options: JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(index.search(Float32Array::from(q).into(), options)).await
}

fn code(err: &JsValue) -> String {
    Reflect::get(err, &"code".into())
        .unwrap()
        .as_string()
        .unwrap_or_default()
}

fn field(v: &JsValue, name: &str) -> JsValue {
    Reflect::get(v, &name.into()).unwrap()
}

#[wasm_bindgen_test]
async fn the_expected_backend_actually_ran() {
    let bytes = shard(5000, 64, Dtype::I8);
    match expected_backend() {
        "webgpu" => {
            let index = load(&bytes, "webgpu")
                .await
                .expect("WebGPU must load in this run");
            assert_eq!(index.backend().as_string().as_deref(), Some("webgpu"));
            let r = search(&index, &[0.1; 64], JsValue::UNDEFINED)
                .await
                .unwrap();
            assert_eq!(field(&r, "backend").as_string().as_deref(), Some("webgpu"));
            web_sys::console::log_1(&format!("WebGPU adapter: {:?}", index.adapter()).into());
        }
        _ => {
            let err = load(&bytes, "webgpu")
                .await
                .err()
                .expect("no WebGPU adapter in this run");
            assert_eq!(code(&err), "GPU_UNAVAILABLE");
            let index = load(&bytes, "auto").await.unwrap();
            assert_eq!(index.backend().as_string().as_deref(), Some("cpu"));
            let r = search(&index, &[0.1; 64], JsValue::UNDEFINED)
                .await
                .unwrap();
            assert_eq!(field(&r, "backend").as_string().as_deref(), Some("cpu"));
        }
    }
}

/// On SwiftShader: GPU against the wasm CPU path on the adversarial cases (1M rows included).
/// On the CPU run: the SIMD kernels against a scalar oracle of the documented formula.
#[wasm_bindgen_test]
async fn parity_on_adversarial_catalogues() {
    let gpu_run = expected_backend() == "webgpu";
    for case in parity_cases(true) {
        let catalog = case.catalog();
        if gpu_run {
            let index = Index::new(catalog, DeviceChoice::Gpu).await.unwrap();
            let gpu = index.search(&case.query, &case.opts).await.unwrap();
            let cpu = index.search_cpu(&case.query, &case.opts).unwrap();
            assert_eq!(gpu.backend, Backend::WebGpu, "{}", case.name);
            if let Err(e) = check_equivalent(&cpu, &gpu, 1e-5, case.magnitude()) {
                panic!("{}: {e}", case.name);
            }
            if index.catalog().dtype() == Dtype::I8
                && case.opts.popularity_weight == 0.0
                && case.opts.boosts.is_empty()
            {
                // Exact integer dot products: the same rows score the same bits on both backends.
                for (row, score) in gpu.rows.iter().zip(&gpu.scores) {
                    if let Some(j) = cpu.rows.iter().position(|r| r == row) {
                        assert_eq!(
                            score.to_bits(),
                            cpu.scores[j].to_bits(),
                            "{}: row {row}",
                            case.name
                        );
                    }
                }
            }
        } else {
            let oracle = scalar_oracle(&catalog, &case.query, &case.opts);
            let index = Index::cpu(catalog);
            let cpu = index.search_cpu(&case.query, &case.opts).unwrap();
            if let Err(e) = check_equivalent(&oracle, &cpu, 1e-5, case.magnitude()) {
                panic!("{}: {e}", case.name);
            }
        }
    }
}

/// The documented score formula, one row at a time in plain scalar code, with exact filters. Only for
/// cases without MMR or caps.
fn scalar_oracle(
    cat: &shelfwise::Catalog,
    q: &[f32],
    o: &SearchOptions,
) -> shelfwise::SearchResult {
    let d = cat.dim();
    let mut q8 = vec![0i8; d];
    let qs = shelfwise::shard::quantize_i8(q, &mut q8);
    let excluded: std::collections::HashSet<&str> = o.exclude.iter().map(String::as_str).collect();
    let allowed: Option<std::collections::HashSet<&str>> = o
        .allow
        .as_ref()
        .map(|a| a.iter().map(String::as_str).collect());
    let mut scored: Vec<(f32, u32)> = Vec::new();
    let mut row = vec![0f32; d];
    for g in 0..cat.len() {
        let (s, r) = cat.locate(g);
        let shard = &cat.shards()[s];
        let id = shard.id(r);
        if excluded.contains(id) || allowed.as_ref().is_some_and(|a| !a.contains(id)) {
            continue;
        }
        let a = shard.attributes(r);
        if o.in_stock_only && a.in_stock == Some(false) {
            continue;
        }
        if let Some(cats) = &o.categories {
            if !a.category.is_some_and(|c| cats.contains(&c)) {
                continue;
            }
        }
        if let Some([lo, hi]) = o.price_range {
            if !a.price.is_some_and(|p| p >= lo && p <= hi) {
                continue;
            }
        }
        let mut score = match shard.int8_row(r) {
            Some(qr) => {
                let dot: i32 = qr.iter().zip(&q8).map(|(&x, &y)| x as i32 * y as i32).sum();
                dot as f32 * qs * shard.int8_scale(r)
            }
            None => {
                shard.row_f32(r, &mut row);
                row.iter().zip(q).map(|(x, y)| x * y).sum()
            }
        };
        if o.popularity_weight != 0.0 {
            score += o.popularity_weight * a.popularity.unwrap_or(0.0);
        }
        if o.new_item_boost != 0.0 && a.popularity == Some(0.0) {
            score += o.new_item_boost;
        }
        if let Some(c) = a.category {
            if let Some(b) = o.boosts.get(&c.to_string()) {
                score += b;
            }
        }
        scored.push((score, g as u32));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.truncate(o.k);
    shelfwise::SearchResult {
        rows: scored.iter().map(|s| s.1).collect(),
        ids: scored
            .iter()
            .map(|s| cat.id(s.1 as usize).to_string())
            .collect(),
        scores: scored.iter().map(|s| s.0).collect(),
        backend: Backend::Cpu,
        timings: Default::default(),
    }
}

#[wasm_bindgen_test]
async fn bad_input_gives_typed_errors() {
    let device = expected_backend();
    let bytes = shard(3000, 32, Dtype::I8);

    // Truncated and corrupt shards.
    let err = load(&bytes[..bytes.len() / 2], device).await.err().unwrap();
    assert_eq!(code(&err), "CORRUPT_SHARD");
    let mut corrupt = bytes.clone();
    corrupt[9] = b'!';
    let err = load(&corrupt, device).await.err().unwrap();
    assert_eq!(code(&err), "CORRUPT_SHARD");
    assert_eq!(
        field(&err, "name").as_string().as_deref(),
        Some("ShelfwiseError")
    );

    // A manifest whose checksum does not match the file.
    let manifest = format!(
        r#"{{"format":"shelfwise-catalog","version":1,"model_id":"web-test","dim":32,"dtype":"int8",
            "normalized":true,"item_count":3000,"shards":[{{"file":"a.safetensors","sha256":"{}",
            "bytes":{},"items":3000,"dtype":"int8"}}]}}"#,
        "0".repeat(64),
        bytes.len()
    );
    let files = Object::new();
    Reflect::set(
        &files,
        &"a.safetensors".into(),
        &Uint8Array::from(bytes.as_slice()),
    )
    .unwrap();
    let source = opts(&[("manifest", manifest.into()), ("files", files.into())]);
    let err = ItemIndex::load(source, JsValue::UNDEFINED)
        .await
        .err()
        .unwrap();
    assert_eq!(code(&err), "INTEGRITY");

    let index = load(&bytes, device).await.unwrap();
    let q = vec![0.2f32; 32];
    let bad = |k: &str, v: JsValue| opts(&[(k, v)]);
    for (options, want) in [
        (bad("k", 0.into()), "INVALID_ARGUMENT"),
        (bad("k", (-3).into()), "INVALID_ARGUMENT"),
        (bad("nope", 1.into()), "INVALID_ARGUMENT"),
        (
            bad("categories", js_sys::Array::of1(&999.into()).into()),
            "UNKNOWN_CATEGORY",
        ),
    ] {
        let shown = js_sys::JSON::stringify(&options)
            .unwrap()
            .as_string()
            .unwrap();
        let err = search(&index, &q, options)
            .await
            .err()
            .unwrap_or_else(|| panic!("{shown} was accepted"));
        assert_eq!(code(&err), want, "{shown}");
    }
    for (at, bad) in [(5, f32::NAN), (0, f32::INFINITY)] {
        let mut v = q.clone();
        v[at] = bad;
        let err = search(&index, &v, JsValue::UNDEFINED).await.err().unwrap();
        assert_eq!(code(&err), "INVALID_QUERY", "{bad} at {at}");
    }
    assert_eq!(
        code(
            &search(&index, &q[..31], JsValue::UNDEFINED)
                .await
                .err()
                .unwrap()
        ),
        "DIM_MISMATCH"
    );

    // An option set to undefined is an absent option.
    assert!(search(
        &index,
        &q,
        opts(&[("k", JsValue::UNDEFINED), ("exclude", JsValue::UNDEFINED)])
    )
    .await
    .is_ok());

    // k > N returns everything; every item filtered out is an empty result, not an error.
    let all = search(&index, &q, bad("k", 5000.into())).await.unwrap();
    assert_eq!(
        field(&all, "ids")
            .unchecked_into::<js_sys::Array>()
            .length(),
        3000
    );
    let none = search(
        &index,
        &q,
        bad(
            "priceRange",
            js_sys::Array::of2(&(-5).into(), &(-1).into()).into(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        field(&none, "ids")
            .unchecked_into::<js_sys::Array>()
            .length(),
        0
    );
}

#[wasm_bindgen_test]
async fn calls_before_load_overlapping_and_after_dispose() {
    let q = vec![0.3f32; 64];
    let empty = ItemIndex::new();
    assert_eq!(
        code(&search(&empty, &q, JsValue::UNDEFINED).await.err().unwrap()),
        "NOT_LOADED"
    );
    assert!(empty.backend().is_undefined());

    let index = load(&shard(20_000, 64, Dtype::I8), expected_backend())
        .await
        .unwrap();
    let o = || opts(&[("k", 20.into()), ("inStockOnly", true.into())]);
    // Eight searches in flight at once must all give the same answer.
    let promises = js_sys::Array::new();
    for _ in 0..8 {
        promises.push(&index.search(Float32Array::from(q.as_slice()).into(), o()));
    }
    let all = JsFuture::from(Promise::all(&promises))
        .await
        .unwrap()
        .unchecked_into::<js_sys::Array>();
    let first = field(&all.get(0), "ids")
        .unchecked_into::<js_sys::Array>()
        .join(",");
    for r in all.iter() {
        assert_eq!(
            field(&r, "ids").unchecked_into::<js_sys::Array>().join(","),
            first
        );
        assert_eq!(
            field(&r, "scores")
                .unchecked_into::<Float32Array>()
                .length(),
            20
        );
    }
    // A search in flight when dispose() is called still completes; later calls are rejected.
    let in_flight = index.search(Float32Array::from(q.as_slice()).into(), o());
    index.dispose();
    let done = JsFuture::from(in_flight).await.unwrap();
    assert_eq!(
        field(&done, "ids")
            .unchecked_into::<js_sys::Array>()
            .join(","),
        first
    );
    assert_eq!(
        code(&search(&index, &q, JsValue::UNDEFINED).await.err().unwrap()),
        "DISPOSED"
    );
}

#[wasm_bindgen_test]
async fn progress_events_are_reported() {
    let bytes = shard(100, 16, Dtype::F16);
    let events = js_sys::Array::new();
    let sink = events.clone();
    let cb = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        sink.push(&field(&e, "type"));
    });
    let options = opts(&[
        ("device", "cpu".into()),
        ("onProgress", cb.as_ref().clone()),
    ]);
    let index = ItemIndex::load(Uint8Array::from(bytes.as_slice()).into(), options)
        .await
        .unwrap();
    assert_eq!(index.size(), 100);
    assert_eq!(events.join(",").as_string().unwrap(), "download,ready");
}

/// The tokenizers crate in wasm gives Python's ids and masks (the same golden file as tests/tokenize.rs).
#[wasm_bindgen_test]
fn tokenizer_matches_python_in_the_browser() {
    let golden = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_tokens.json"
    ));
    let tokenizer = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cache/models/all-MiniLM-L6-v2/tokenizer.json"
    ));
    let n = shelfwise_testkit::check_tokenizer_golden(tokenizer, golden)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n >= 200);
    let err = shelfwise::tokenize::Tokenizer::from_bytes(b"{not json", 128).unwrap_err();
    assert_eq!(err.code(), "BAD_TOKENIZER");
}

/// Where `scripts/test.sh` serves the model cache (all-MiniLM-L6-v2 and the native golden vectors).
fn assets() -> &'static str {
    match option_env!("SHELFWISE_ASSETS") {
        Some(url) => url,
        None => panic!(
            "build the browser tests with SHELFWISE_ASSETS=<url of the served cache> (scripts/test.sh does)"
        ),
    }
}

async fn fetch_bytes(url: &str) -> Vec<u8> {
    let window = web_sys::window().unwrap();
    let resp: web_sys::Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .unwrap_or_else(|e| panic!("fetching {url}: {e:?}"))
        .dyn_into()
        .unwrap();
    assert!(resp.ok(), "fetching {url}: HTTP {}", resp.status());
    let buf = JsFuture::from(resp.array_buffer().unwrap()).await.unwrap();
    Uint8Array::new(&buf).to_vec()
}

/// `{ manifest, files }` for the bundle in folder `url`: what the storefront API's engine.js downloads.
async fn fetch_bundle(url: &str) -> JsValue {
    let manifest = fetch_bytes(&format!("{url}/manifest.json")).await;
    let files = js_sys::Object::new();
    let list = shelfwise::Manifest::from_json(&manifest)
        .unwrap()
        .bundle_files()
        .unwrap();
    for f in list {
        let bytes = fetch_bytes(&format!("{url}/{}", f.file)).await;
        js_sys::Reflect::set(&files, &f.file.into(), &Uint8Array::from(bytes.as_slice())).unwrap();
    }
    opts(&[
        ("manifest", Uint8Array::from(manifest.as_slice()).into()),
        ("files", files.into()),
    ])
}

async fn fetch_json(url: &str) -> serde_json::Value {
    serde_json::from_slice(&fetch_bytes(url).await).unwrap()
}

async fn embed(e: &shelfwise::wasm::Embedder, texts: &[&str]) -> Result<Vec<f32>, JsValue> {
    let arr = js_sys::Array::new();
    for t in texts {
        arr.push(&(*t).into());
    }
    let v = JsFuture::from(e.embed(arr.into())).await?;
    Ok(v.unchecked_into::<Float32Array>().to_vec())
}

/// all-MiniLM-L6-v2 loaded in the browser (fetched, as a storefront would) on this run's backend embeds the
/// fixture texts like the native CLI did (scripts/test.sh wrote its vectors before this run).
#[wasm_bindgen_test]
async fn minilm_in_the_browser_matches_native() {
    let golden = fetch_json(&format!("{}/golden/minilm.json", assets())).await;
    let texts: Vec<&str> = golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    let want: Vec<f32> = golden["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect();
    let device = expected_backend();
    let model = shelfwise::wasm::Embedder::load(
        format!("{}/models/all-MiniLM-L6-v2", assets()).into(),
        opts(&[
            ("device", device.into()),
            ("maxLength", golden["max_len"].as_f64().unwrap().into()),
        ]),
    )
    .await
    .unwrap_or_else(|e| panic!("loading MiniLM on {device}: {}", js_message(&e)));
    assert_eq!(model.backend().as_string().as_deref(), Some(device));
    assert_eq!(model.dim(), 384);
    let t0 = js_sys::Date::now();
    let got = embed(&model, &texts).await.unwrap();
    let ms = js_sys::Date::now() - t0;
    assert_eq!(got.len(), want.len());
    let worst = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    web_sys::console::log_1(
        &format!(
            "MiniLM on {device} ({:?}): {} texts in {ms:.0} ms, max |browser - native| = {worst:.2e}",
            model.adapter(),
            texts.len()
        )
        .into(),
    );
    assert!(
        worst <= 1e-4,
        "browser ({device}) differs from native by {worst}"
    );
    // Overlapping calls each get their own answer.
    let arr = |t: &str| -> JsValue {
        let a = js_sys::Array::new();
        a.push(&t.into());
        a.into()
    };
    let (p1, p2) = (model.embed(arr(texts[0])), model.embed(arr(texts[3])));
    let (r1, r2) = (
        JsFuture::from(p1).await.unwrap(),
        JsFuture::from(p2).await.unwrap(),
    );
    let r1 = r1.unchecked_into::<Float32Array>().to_vec();
    let r2 = r2.unchecked_into::<Float32Array>().to_vec();
    assert!(r1
        .iter()
        .zip(&want[..384])
        .all(|(a, b)| (a - b).abs() <= 1e-4));
    assert!(r2
        .iter()
        .zip(&want[3 * 384..4 * 384])
        .all(|(a, b)| (a - b).abs() <= 1e-4));
}

fn js_message(e: &JsValue) -> String {
    format!(
        "{} {}",
        code(e),
        Reflect::get(e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_default()
    )
}

/// Bad model files and bad calls give typed errors, in the browser too.
#[wasm_bindgen_test]
async fn embedder_bad_input_gives_typed_errors() {
    let empty = shelfwise::wasm::Embedder::new();
    assert_eq!(
        code(&embed(&empty, &["x"]).await.unwrap_err()),
        "NOT_LOADED"
    );

    let tokenizer = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/cache/models/all-MiniLM-L6-v2/tokenizer.json"
    ));
    let config = br#"{"vocab_size": 30522, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "hidden_act": "gelu",
        "max_position_embeddings": 16}"#;
    let source = |config: &[u8], weights: &[u8], tokenizer: &[u8]| -> JsValue {
        let o = Object::new();
        Reflect::set(&o, &"config".into(), &Uint8Array::from(config)).unwrap();
        Reflect::set(&o, &"weights".into(), &Uint8Array::from(weights)).unwrap();
        Reflect::set(&o, &"tokenizer".into(), &Uint8Array::from(tokenizer)).unwrap();
        o.into()
    };
    let load = |s: JsValue| {
        shelfwise::wasm::Embedder::load(s, opts(&[("device", expected_backend().into())]))
    };
    let cfg = shelfwise::model::ModelConfig::from_json(config).unwrap();
    let w = shelfwise::model::BertWeights::random(&cfg, 3);
    let weights = w.to_safetensors();
    // A good tiny model loads and embeds; then each file is broken in turn.
    let good = load(source(config, &weights, tokenizer)).await.unwrap();
    assert_eq!(embed(&good, &["hello"]).await.unwrap().len(), 8);
    assert_eq!(
        code(&embed(&good, &[]).await.unwrap_err()),
        "INVALID_ARGUMENT"
    );
    let huge = "word ".repeat(2_000_000);
    assert_eq!(
        embed(&good, &[&huge]).await.unwrap().len(),
        8,
        "a 10 MB text is truncated"
    );
    for (what, s, want) in [
        (
            "truncated weights",
            source(config, &weights[..weights.len() / 2], tokenizer),
            "BAD_WEIGHTS",
        ),
        (
            "garbage weights",
            source(config, b"\xff\xff\xff\xff\xff\xff\xff\xff", tokenizer),
            "BAD_WEIGHTS",
        ),
        (
            "bad config",
            source(b"{\"hidden_size\": 8}", &weights, tokenizer),
            "BAD_CONFIG",
        ),
        (
            "bad tokenizer",
            source(config, &weights, b"{not json"),
            "BAD_TOKENIZER",
        ),
    ] {
        let err = load(s)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what} loaded"));
        assert_eq!(code(&err), want, "{what}");
    }
    good.dispose();
    assert_eq!(code(&embed(&good, &["x"]).await.unwrap_err()), "DISPOSED");
}

/// The MovieLens bundle scripts/test.sh exported, loaded in the browser on this run's backend: for 100 test
/// users, the top 10 (history excluded) and their scores match what the trainer computed.
#[wasm_bindgen_test]
async fn bundle_in_the_browser_ranks_as_the_trainer() {
    let parity = fetch_json(&format!("{}/golden/model/parity.json", assets())).await;
    let device = expected_backend();
    let rec = shelfwise::wasm::BundleRecommender::load(
        fetch_bundle(&format!("{}/golden/bundle", assets())).await,
        opts(&[("device", device.into())]),
    )
    .await
    .unwrap_or_else(|e| panic!("loading the bundle on {device}: {}", js_message(&e)));
    assert_eq!(rec.backend().as_string().as_deref(), Some(device));
    let cases = parity["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 100);
    let (mut worst, t0) = (0.0f64, js_sys::Date::now());
    for (n, c) in cases.iter().enumerate() {
        let events = js_sys::Array::new();
        for e in c["events"].as_array().unwrap() {
            let (kind, what) = (e[0].as_str().unwrap(), e[1].as_str().unwrap());
            let key = if kind == "search" { "query" } else { "itemId" };
            events.push(&opts(&[("type", kind.into()), (key, what.into())]));
        }
        let exclude = js_sys::Array::new();
        for id in c["exclude"].as_array().unwrap() {
            exclude.push(&id.as_str().unwrap().into());
        }
        let out = JsFuture::from(rec.recommend(
            events.clone().into(),
            opts(&[("k", 10.into()), ("exclude", exclude.into())]),
            JsValue::UNDEFINED,
        ))
        .await
        .unwrap_or_else(|e| panic!("case {n}: {}", js_message(&e)));
        if n < 3 {
            // `interest` gives the interest vector `recommend` ranked with.
            let alone = JsFuture::from(rec.interest(events.into()))
                .await
                .unwrap_or_else(|e| panic!("case {n}: {}", js_message(&e)));
            let (alone, with) = (
                alone.unchecked_into::<Float32Array>().to_vec(),
                field(&out, "interest")
                    .unchecked_into::<Float32Array>()
                    .to_vec(),
            );
            assert_eq!(alone.len(), with.len(), "case {n}");
            let worst = alone
                .iter()
                .zip(&with)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "case {n}: interest differs by {worst}");
        }
        let items = js_sys::Array::from(&Reflect::get(&out, &"items".into()).unwrap());
        let top = c["top"].as_array().unwrap();
        assert_eq!(items.length() as usize, top.len(), "case {n}");
        for (i, (item, want)) in items.iter().zip(top).enumerate() {
            let id = Reflect::get(&item, &"id".into())
                .unwrap()
                .as_string()
                .unwrap();
            let score = Reflect::get(&item, &"score".into())
                .unwrap()
                .as_f64()
                .unwrap();
            assert_eq!(id, want[0].as_str().unwrap(), "case {n}, rank {i}");
            let want = want[1].as_f64().unwrap();
            worst = worst.max((score - want).abs() / (1.0 + want.abs()));
            let reason = Reflect::get(&item, &"reason".into()).unwrap();
            let kind = Reflect::get(&reason, &"kind".into())
                .unwrap()
                .as_string()
                .unwrap();
            assert_ne!(
                kind, "popular",
                "case {n}: a session with events gets reasons from them"
            );
        }
    }
    web_sys::console::log_1(
        &format!(
            "bundle on {device}: 100 sessions in {:.0} ms, top 10 identical, worst score error {worst:.2e}",
            js_sys::Date::now() - t0
        )
        .into(),
    );
    assert!(worst <= 1e-3, "scores differ from the trainer's by {worst}");

    // Bad sessions are typed errors.
    let bad = |v: JsValue| rec.recommend(v, JsValue::UNDEFINED, JsValue::UNDEFINED);
    for (what, events, code) in [
        ("not an array", JsValue::from("view"), "INVALID_ARGUMENT"),
        (
            "unknown type",
            js_sys::Array::of1(&opts(&[("type", "dance".into()), ("itemId", "1".into())])).into(),
            "INVALID_ARGUMENT",
        ),
        (
            "search without a query",
            js_sys::Array::of1(&opts(&[("type", "search".into())])).into(),
            "INVALID_ARGUMENT",
        ),
    ] {
        let e = JsFuture::from(bad(events)).await.expect_err(what);
        assert_eq!(
            Reflect::get(&e, &"code".into())
                .unwrap()
                .as_string()
                .as_deref(),
            Some(code),
            "{what}"
        );
        assert_eq!(
            field(&e, "field").as_string().as_deref(),
            Some("events"),
            "{what}"
        );
    }
    let none = JsFuture::from(rec.interest(js_sys::Array::new().into()))
        .await
        .unwrap();
    assert!(
        none.is_undefined(),
        "an empty session has no interest vector"
    );
    rec.dispose();
    let e = JsFuture::from(bad(js_sys::Array::new().into()))
        .await
        .unwrap_err();
    assert_eq!(
        Reflect::get(&e, &"code".into())
            .unwrap()
            .as_string()
            .as_deref(),
        Some("DISPOSED")
    );
}

/// The storefront API's JS reads the manifest and does the profile's maths through these exports.
#[wasm_bindgen_test]
async fn bundle_manifests_and_profiles_are_read_by_the_wasm_module() {
    use shelfwise::wasm::{bundle_files, fold_profile, stored_profile};
    let manifest = fetch_json(&format!("{}/golden/bundle/manifest.json", assets())).await;
    let plan = bundle_files(&serde_json::to_vec(&manifest).unwrap())
        .unwrap_or_else(|e| panic!("{}", js_message(&e)));
    let files: Vec<String> = js_sys::Array::from(&field(&plan, "files"))
        .iter()
        .map(|f| field(&f, "file").as_string().unwrap())
        .collect();
    let shards = manifest["shards"].as_array().unwrap();
    assert_eq!(files[0], shards[0]["file"].as_str().unwrap());
    assert_eq!(
        files.len(),
        shards.len() + 5,
        "shards, interest model, encoder and tokenizer: {files:?}"
    );
    assert!(
        !files.iter().any(|f| f.ends_with("items.json")),
        "{files:?}"
    );
    assert_eq!(
        field(&plan, "modelId").as_string().as_deref(),
        manifest["model_id"].as_str()
    );
    for (what, bytes) in [
        ("not JSON", b"{ not json".to_vec()),
        ("a plain catalogue", {
            let mut m = manifest.clone();
            m.as_object_mut().unwrap().remove("recommender");
            serde_json::to_vec(&m).unwrap()
        }),
        ("a path outside the folder", {
            let mut m = manifest.clone();
            m["recommender"]["interest"]["config"]["file"] = "../config.json".into();
            serde_json::to_vec(&m).unwrap()
        }),
    ] {
        let e = bundle_files(&bytes).expect_err(what);
        assert_eq!(code(&e), "BAD_MANIFEST", "{what}");
        assert_eq!(
            field(&e, "file").as_string().as_deref(),
            Some("manifest.json"),
            "{what}"
        );
    }
    let folded = fold_profile(Some(vec![1.0, 0.0]), vec![0.0, 1.0], 0.75).unwrap();
    assert_eq!(folded.to_vec(), [0.75, 0.25]);
    assert_eq!(
        fold_profile(None, vec![0.5, 0.5], 0.7).unwrap().to_vec(),
        [0.5, 0.5]
    );
    assert_eq!(
        code(&fold_profile(None, vec![1.0], 2.0).unwrap_err()),
        "INVALID_ARGUMENT"
    );
    assert_eq!(
        stored_profile(vec![0.5, -1.0], 2).map(|v| v.to_vec()),
        Some(vec![0.5, -1.0])
    );
    assert!(
        stored_profile(vec![1e39, 0.0], 2).is_none(),
        "1e39 is infinite as an f32"
    );
    assert!(stored_profile(vec![0.5], 2).is_none(), "another width");
}
