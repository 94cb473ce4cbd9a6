//! Writes the tiny bundle (`fuzz/bundle/`) and the seed corpus (`fuzz/seeds/<target>/`), all with the
//! crate's own writers and seeded random weights. Run from the repository root:
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 cargo fuzz build -O && fuzz/target/x86_64-unknown-linux-gnu/release/gen_seeds fuzz
//! ```
//!
//! (`cargo fuzz build` builds this bin along with the targets.) Rerun it, and commit the result, whenever
//! a format changes; `cargo test --test fuzz_regressions` checks that every seed is still accepted.

use std::path::Path;

use safetensors::tensor::TensorView;
use safetensors::Dtype as St;
use shelfwise::catalog::{FileEntry, Manifest, ModelEntry, RecommenderFiles, MANIFEST_FORMAT};
use shelfwise::model::{BertWeights, ModelConfig};
use shelfwise::shard::FORMAT_VERSION;
use shelfwise::{write_shard, Attributes, Dtype, ShardEntry, ShardSpec};

const DIM: usize = 8;
const ITEMS: usize = 16;
const TEXT_DIM: usize = 6;
const MODEL_ID: &str = "fuzz-tiny";

/// A WordPiece `tokenizer.json` of a few dozen tokens, laid out as Hugging Face writes BERT's.
fn tokenizer_json() -> String {
    let words = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "red", "blue", "green", "black", "white",
        "shoe", "shirt", "hat", "dress", "boot", "warm", "cold", "summer", "winter", "sale", "new",
        "the", "a", "for", "and", "with", "##s", "##ing", "##ed", "##er", "r", "e", "d", "s", "h",
        "o", ".", ",",
    ];
    let vocab: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("{w:?}: {i}"))
        .collect();
    let added: Vec<String> = words[..5]
        .iter()
        .enumerate()
        .map(|(i, w)| {
            format!(
                r#"{{"id": {i}, "content": "{w}", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}}"#
            )
        })
        .collect();
    format!(
        r###"{{
  "version": "1.0",
  "truncation": null,
  "padding": null,
  "added_tokens": [{added}],
  "normalizer": {{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true}},
  "pre_tokenizer": {{"type": "BertPreTokenizer"}},
  "post_processor": {{
    "type": "TemplateProcessing",
    "single": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}],
    "pair": [{{"SpecialToken": {{"id": "[CLS]", "type_id": 0}}}}, {{"Sequence": {{"id": "A", "type_id": 0}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 0}}}}, {{"Sequence": {{"id": "B", "type_id": 1}}}}, {{"SpecialToken": {{"id": "[SEP]", "type_id": 1}}}}],
    "special_tokens": {{
      "[CLS]": {{"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]}},
      "[SEP]": {{"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}
    }}
  }},
  "decoder": {{"type": "WordPiece", "prefix": "##", "cleanup": true}},
  "model": {{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {{{vocab}}}}}
}}
"###,
        added = added.join(", "),
        vocab = vocab.join(", "),
    )
}

fn interest_config() -> String {
    format!(
        r#"{{"vocab_size": 1, "hidden_size": {DIM}, "num_hidden_layers": 1, "num_attention_heads": 2,
  "intermediate_size": 16, "hidden_act": "gelu", "max_position_embeddings": 8, "type_vocab_size": {},
  "layer_norm_eps": 1e-12,
  "shelfwise": {{"pre_ln": true, "causal": true, "pooling": "last", "normalize": false, "external_inputs": true}}}}
"#,
        shelfwise::events::MODEL_TYPE_COUNT
    )
}

fn encoder_config() -> String {
    format!(
        r#"{{"vocab_size": 48, "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
  "intermediate_size": 16, "hidden_act": "gelu", "max_position_embeddings": 16, "type_vocab_size": 2,
  "shelfwise": {{"pre_ln": true, "pooling": "mean", "normalize": true, "output_dim": {TEXT_DIM}}}}}
"#
    )
}

/// `w`'s tensors (and `extra` ones) as an F32 safetensors file.
fn weights_file(w: &BertWeights, extra: &[(&str, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    let named = w.named_tensors();
    let mut views: Vec<(String, TensorView<'_>)> = Vec::new();
    for (name, shape, data) in &named {
        views.push((
            name.clone(),
            TensorView::new(St::F32, shape.clone(), bytemuck::cast_slice(data)).unwrap(),
        ));
    }
    for (name, shape, data) in extra {
        views.push((
            name.to_string(),
            TensorView::new(St::F32, shape.clone(), bytemuck::cast_slice(data)).unwrap(),
        ));
    }
    safetensors::serialize(views, None).unwrap()
}

/// A deterministic pseudo-random value in [-1, 1).
fn noise(i: usize) -> f32 {
    let x = (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    x as f32 / (1u64 << 23) as f32 - 1.0
}

fn shard(dtype: Dtype, attributes: bool, items: usize) -> Vec<u8> {
    let ids: Vec<String> = (0..items).map(|i| format!("i{i}")).collect();
    let vectors: Vec<f32> = (0..items * DIM).map(noise).collect();
    let attrs = if attributes {
        Attributes {
            category: Some((0..items as u32).map(|i| i % 3).collect()),
            price: Some((0..items).map(|i| 5.0 + i as f32 * 2.5).collect()),
            in_stock: Some((0..items).map(|i| i % 4 != 0).collect()),
            // Every fifth item is new (popularity 0).
            popularity: Some(
                (0..items)
                    .map(|i| if i % 5 == 0 { 0.0 } else { i as f32 / 16.0 })
                    .collect(),
            ),
        }
    } else {
        Attributes::default()
    };
    write_shard(&ShardSpec {
        ids: &ids,
        vectors: &vectors,
        dim: DIM,
        dtype,
        normalize: true,
        model_id: MODEL_ID,
        num_categories: attributes.then_some(3),
        attributes: &attrs,
    })
    .unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
}

/// `[len: u16 LE][a][b]`, the layout the `model` and `tokenizer` targets split.
fn join2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = (a.len() as u16).to_le_bytes().to_vec();
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

fn main() {
    let fuzz = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz".to_string());
    let fuzz = Path::new(&fuzz);
    let bundle = fuzz.join("bundle");
    let seeds = fuzz.join("seeds");

    // The bundle.
    let shard_bytes = shard(Dtype::F32, true, ITEMS);
    let icfg = interest_config();
    let iw = BertWeights::random(&ModelConfig::from_json(icfg.as_bytes()).unwrap(), 7);
    let projection: Vec<f32> = (0..DIM * TEXT_DIM).map(|i| noise(i + 999) * 0.5).collect();
    let iweights = weights_file(
        &iw,
        &[(
            shelfwise::model::interest::QUERY_PROJECTION,
            vec![DIM, TEXT_DIM],
            projection,
        )],
    );
    let ecfg = encoder_config();
    let ew = BertWeights::random(&ModelConfig::from_json(ecfg.as_bytes()).unwrap(), 11);
    let eweights = weights_file(&ew, &[]);
    let tok = tokenizer_json();
    let files: [(&str, &[u8]); 6] = [
        ("shard-000.safetensors", &shard_bytes),
        ("interest/config.json", icfg.as_bytes()),
        ("interest/model.safetensors", &iweights),
        ("encoder/config.json", ecfg.as_bytes()),
        ("encoder/model.safetensors", &eweights),
        ("encoder/tokenizer.json", tok.as_bytes()),
    ];
    for (name, bytes) in files {
        write(&bundle, name, bytes);
    }
    let entry = |name: &str| {
        let (_, b) = files.iter().find(|(n, _)| *n == name).unwrap();
        FileEntry::of(name, b)
    };
    let plain = Manifest {
        format: MANIFEST_FORMAT.into(),
        version: FORMAT_VERSION,
        model_id: MODEL_ID.into(),
        dim: DIM,
        dtype: Dtype::F32,
        normalized: true,
        item_count: ITEMS,
        categories: vec!["boots".into(), "shirts".into(), "hats".into()],
        shards: vec![ShardEntry::describe(
            "shard-000.safetensors".into(),
            &shard_bytes,
            ITEMS,
            Dtype::F32,
        )],
        recommender: None,
    };
    let manifest = Manifest {
        recommender: Some(RecommenderFiles {
            event_types: shelfwise::events::MODEL_TYPES.map(String::from).to_vec(),
            interest: ModelEntry {
                config: entry("interest/config.json"),
                weights: entry("interest/model.safetensors"),
                tokenizer: None,
            },
            encoder: Some(ModelEntry {
                config: entry("encoder/config.json"),
                weights: entry("encoder/model.safetensors"),
                tokenizer: Some(entry("encoder/tokenizer.json")),
            }),
            items: None,
        }),
        ..plain.clone()
    };
    let manifest_json = serde_json::to_vec_pretty(&manifest).unwrap();
    write(&bundle, "manifest.json", &manifest_json);

    // Seeds, one folder per target.
    write(&seeds, "shard/f32-attributes.safetensors", &shard_bytes);
    write(
        &seeds,
        "shard/f16.safetensors",
        &shard(Dtype::F16, false, 5),
    );
    write(&seeds, "shard/int8.safetensors", &shard(Dtype::I8, true, 4));
    write(&seeds, "manifest/bundle.json", &manifest_json);
    write(
        &seeds,
        "manifest/catalogue.json",
        &serde_json::to_vec_pretty(&plain).unwrap(),
    );
    write(
        &seeds,
        "model/interest.bin",
        &join2(icfg.as_bytes(), &iweights),
    );
    write(
        &seeds,
        "model/encoder.bin",
        &join2(ecfg.as_bytes(), &eweights),
    );
    for (name, max_len, text) in [
        (
            "tokenizer/winter-boots.bin",
            16u8,
            "Red winter boots, for the cold!",
        ),
        ("tokenizer/short.bin", 3, "a hat"),
    ] {
        let mut b = vec![max_len];
        b.extend(join2(tok.as_bytes(), text.as_bytes()));
        write(&seeds, name, &b);
    }
    // The decoded targets read bytes as choices (checks::Bytes): a few hand-made ones.
    write(
        &seeds,
        "stored_state/same-width.bin",
        &[3, 6, 1, 6, 2, 6, 3, 0, 1, 2, 1, 3, 2, 3, 6, 12],
    );
    write(
        &seeds,
        "stored_state/overflow.bin",
        &[2, 1, 5, 0, 0, 2, 7, 7, 7, 1],
    );
    write(
        &seeds,
        "recommend/views.bin",
        &[0, 3, 0, 0, 1, 0, 0, 2, 2, 0, 1, 5, 0, 0, 0, 0],
    );
    write(
        &seeds,
        "recommend/filters.bin",
        &[
            0, 2, 0, 3, 4, 2, 0, 1, 6, 0xff, 0x1f, 0, 0, 3, 1, 1, 1, 12, 10, 12, 200,
        ],
    );
    write(&seeds, "recommend/search.bin", &[2, 0, 1, 0]);
    write(
        &seeds,
        "recommend/similar.bin",
        &[1, 1, 0, 0, 4, 1, 5, 0, 0, 0, 0],
    );
    println!("wrote {} and {}", bundle.display(), seeds.display());
}
