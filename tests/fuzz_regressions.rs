//! The fuzz targets' inputs under a plain `cargo test`: every committed seed (`fuzz/seeds/<target>/`) and
//! every input that once crashed a target (`tests/fixtures/fuzz/<target>/`) goes through the very code the
//! target runs (`fuzz/src/checks.rs`, included here), so the seeds stay valid inputs and a fixed crash
//! stays fixed. See fuzz/README.md.
#![cfg(not(target_arch = "wasm32"))]

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

use checks::{RecommendCase, StoredState};
use shelfwise::catalog::Manifest;
use shelfwise::model::{BertWeights, ModelConfig};
use shelfwise::tokenize::Tokenizer;
use shelfwise::Shard;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The files in `dir` (none if it does not exist), sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.retain(|p| p.is_file());
    out.sort();
    out
}

/// The seeds of `target` (at least one), with their bytes.
fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let out: Vec<_> = files_in(&root().join("fuzz/seeds").join(target))
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    assert!(!out.is_empty(), "no seeds for {target}");
    out
}

/// The saved crashing inputs of `target` (maybe none).
fn crashes(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    files_in(&root().join("tests/fixtures/fuzz").join(target))
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn all_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = seeds(target);
    v.extend(crashes(target));
    v
}

fn bundle_file(name: &str) -> Option<Vec<u8>> {
    std::fs::read(root().join("fuzz/bundle").join(name)).ok()
}

fn tiny_tokenizer() -> Vec<u8> {
    bundle_file("encoder/tokenizer.json").expect("the tiny bundle has a tokenizer")
}

#[test]
fn shard_inputs() {
    for (path, bytes) in seeds("shard") {
        let s = Shard::from_bytes("seed", &bytes);
        assert!(s.is_ok(), "{}: {:?}", path.display(), s.err());
    }
    for (path, bytes) in all_inputs("shard") {
        eprintln!("{}", path.display());
        checks::shard(&bytes);
    }
}

/// Found by the `shard` target: an int8 shard whose row scale is finite (3e38) but overflows f32 once
/// multiplied by a quantised value, so `row_f32` gave infinities. Such a scale is an invalid tensor.
#[test]
fn an_int8_scale_that_overflows_is_an_invalid_tensor() {
    let bytes =
        std::fs::read(root().join("tests/fixtures/fuzz/shard/int8-scale-overflow.safetensors"))
            .unwrap();
    let e = Shard::from_bytes("crash", &bytes).unwrap_err();
    assert_eq!(e.code(), "INVALID_TENSOR", "{e}");
    assert!(e.to_string().contains("`scales`"), "{e}");
}

#[test]
fn manifest_inputs() {
    for (path, bytes) in seeds("manifest") {
        let m = Manifest::from_json(&bytes);
        assert!(m.is_ok(), "{}: {:?}", path.display(), m.err());
    }
    for (path, bytes) in all_inputs("manifest") {
        eprintln!("{}", path.display());
        checks::manifest(&bytes, &bundle_file);
    }
}

#[test]
fn model_inputs() {
    for (path, bytes) in seeds("model") {
        let (config, weights) = checks::split2(&bytes);
        let cfg = ModelConfig::from_json(config).unwrap();
        let w = BertWeights::from_safetensors("seed", weights, &cfg);
        assert!(w.is_ok(), "{}: {:?}", path.display(), w.err());
    }
    let tokenizer = tiny_tokenizer();
    for (path, bytes) in all_inputs("model") {
        eprintln!("{}", path.display());
        checks::model(&bytes, &tokenizer);
    }
}

#[test]
fn tokenizer_inputs() {
    for (path, bytes) in seeds("tokenizer") {
        let (json, _) = checks::split2(&bytes[1..]);
        let t = Tokenizer::from_bytes(json, 16);
        assert!(t.is_ok(), "{}: {:?}", path.display(), t.err());
    }
    let known = tiny_tokenizer();
    for (path, bytes) in all_inputs("tokenizer") {
        eprintln!("{}", path.display());
        checks::tokenizer(&bytes, &known);
    }
}

/// Found by the `tokenizer` target: a JSON syntax error inside the `decoder` value (here a `)` for a `,`)
/// made the tokenizers crate panic (`expect("Helper")`) instead of returning an error.
#[test]
fn a_broken_decoder_value_is_a_bad_tokenizer() {
    let bytes =
        std::fs::read(root().join("tests/fixtures/fuzz/tokenizer/decoder-syntax-error.bin"))
            .unwrap();
    let (json, _) = checks::split2(&bytes[1..]);
    let e = Tokenizer::from_bytes(json, 16).unwrap_err();
    assert_eq!(e.code(), "BAD_TOKENIZER", "{e}");
    // A file cut short inside `decoder`, as a broken download would be.
    let good = tiny_tokenizer();
    let at = good.windows(9).position(|w| w == b"\"decoder\"").unwrap() + 20;
    let e = Tokenizer::from_bytes(&good[..at], 16).unwrap_err();
    assert_eq!(e.code(), "BAD_TOKENIZER", "{e}");
}

/// Found by the `tokenizer` target: a template piece naming a special token that `special_tokens` lacks
/// (`[SEP]` filed as `[WEP]`) made the tokenizers crate panic while encoding. So did `$B` in the `single`
/// template and a template after a template.
#[test]
fn a_template_the_tokenizers_crate_cannot_run_is_a_bad_tokenizer() {
    let bytes = std::fs::read(
        root().join("tests/fixtures/fuzz/tokenizer/template-missing-special-token.bin"),
    )
    .unwrap();
    let (json, _) = checks::split2(&bytes[1..]);
    let e = Tokenizer::from_bytes(json, 16).unwrap_err();
    assert_eq!(e.code(), "BAD_TOKENIZER", "{e}");
    let good: serde_json::Value = serde_json::from_slice(&tiny_tokenizer()).unwrap();
    let template = good["post_processor"].clone();
    let mut single_b = template.clone();
    single_b["single"] = serde_json::json!([{"Sequence": {"id": "B", "type_id": 0}}]);
    let twice = serde_json::json!({"type": "Sequence", "processors": [template, template]});
    for p in [single_b, twice] {
        let mut t = good.clone();
        t["post_processor"] = p;
        let e = Tokenizer::from_bytes(&serde_json::to_vec(&t).unwrap(), 16).unwrap_err();
        assert_eq!(e.code(), "BAD_TOKENIZER", "{e}");
    }
}

#[test]
fn stored_state_inputs() {
    for (path, bytes) in all_inputs("stored_state") {
        eprintln!("{}", path.display());
        checks::stored_state(&StoredState::decode(&bytes));
    }
    // Edge values by hand: an f32 overflow in storage, extreme but finite folds and blends.
    for s in [
        StoredState {
            values: vec![1e39, 0.0],
            dim: 2,
            ..Default::default()
        },
        StoredState {
            values: vec![f32::MAX as f64, f32::MIN as f64],
            dim: 2,
            old: Some(vec![f32::MAX, f32::MIN]),
            session: vec![f32::MAX, f32::MIN],
            decay: 0.3,
            weight: 0.7,
        },
        StoredState {
            values: vec![],
            dim: usize::MAX,
            old: Some(vec![f32::NAN]),
            session: vec![1.0],
            decay: f32::NAN,
            weight: f32::INFINITY,
        },
    ] {
        checks::stored_state(&s);
    }
}

#[test]
fn recommend_inputs() {
    let rec = checks::load_bundle(&bundle_file);
    let ids: Vec<String> = (0..rec.catalog().len())
        .map(|r| rec.catalog().id(r).to_string())
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    for (path, bytes) in all_inputs("recommend") {
        for call in 0..4u8 {
            eprintln!("{} (call {call})", path.display());
            let mut case = RecommendCase::decode(&bytes, &ids);
            case.call = call;
            checks::recommend(&rec, &case);
        }
    }
}

/// Found by the soak test (scripts/soak.mjs): once the cache of encoded searches was full, a call whose
/// session held cached searches cleared it and then failed (`a cached query vector went missing`). A
/// session of more distinct searches than the cache holds, asked again with new ones, must keep working.
#[test]
fn more_searches_than_the_query_cache_holds() {
    use shelfwise::pipeline::recommender::SessionEvent;
    let rec = checks::load_bundle(&bundle_file);
    let mut events: Vec<SessionEvent> = Vec::new();
    // Each call's session ends with the last round's searches (cached) and 30 new ones: after nine rounds
    // the cache (256) overflows while the session still holds cached searches.
    for round in 0..20 {
        for i in 0..30 {
            events.push(SessionEvent::Search {
                query: format!("winter boots {round} {i}"),
            });
        }
        let r = pollster::block_on(rec.recommend(&events, &Default::default(), None));
        assert!(
            r.is_ok(),
            "round {round}, {} searches: {:?}",
            events.len(),
            r.err()
        );
    }
}
