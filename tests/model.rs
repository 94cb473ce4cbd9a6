//! The Transformer engine on a tiny random model: typed errors for bad configs, weights and inputs, and
//! the behaviour of masking, causal attention, pre-LN and pooling.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::Dtype as St;
use shelfwise::backend::cpu::CpuNn;
use shelfwise::model::{Bert, BertWeights, ModelConfig};
use shelfwise::rng::Rng;
use shelfwise::tokenize::Batch;

const H: usize = 8;
const I: usize = 16;
const V: usize = 50;
const P: usize = 16;

fn config(layers: usize, extra: &str) -> String {
    format!(
        r#"{{"vocab_size": {V}, "hidden_size": {H}, "num_hidden_layers": {layers}, "num_attention_heads": 2,
            "intermediate_size": {I}, "hidden_act": "gelu", "max_position_embeddings": {P},
            "type_vocab_size": 2, "layer_norm_eps": 1e-12 {extra}}}"#
    )
}

/// Random weights for `layers` layers with Hugging Face names. `tweak` may change a tensor's shape, return
/// another dtype, or drop the tensor (by clearing its shape); `final_norm` adds `encoder.final_layer_norm`.
fn weights(
    layers: usize,
    final_norm: bool,
    tweak: impl Fn(&str, &mut Vec<usize>) -> Option<St>,
) -> Vec<u8> {
    let mut rng = Rng::new(11);
    let mut tensors: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![V, H]),
        ("embeddings.position_embeddings.weight".into(), vec![P, H]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, H]),
        ("embeddings.LayerNorm.weight".into(), vec![H]),
        ("embeddings.LayerNorm.bias".into(), vec![H]),
    ];
    for l in 0..layers {
        let p = format!("encoder.layer.{l}");
        for (name, out, inp) in [
            ("attention.self.query", H, H),
            ("attention.self.key", H, H),
            ("attention.self.value", H, H),
            ("attention.output.dense", H, H),
            ("intermediate.dense", I, H),
            ("output.dense", H, I),
        ] {
            tensors.push((format!("{p}.{name}.weight"), vec![out, inp]));
            tensors.push((format!("{p}.{name}.bias"), vec![out]));
        }
        for n in ["attention.output.LayerNorm", "output.LayerNorm"] {
            tensors.push((format!("{p}.{n}.weight"), vec![H]));
            tensors.push((format!("{p}.{n}.bias"), vec![H]));
        }
    }
    if final_norm {
        tensors.push(("encoder.final_layer_norm.weight".into(), vec![H]));
        tensors.push(("encoder.final_layer_norm.bias".into(), vec![H]));
    }
    let mut data: Vec<(String, St, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, mut shape) in tensors {
        let dtype = tweak(&name, &mut shape);
        if shape.is_empty() {
            continue; // removed by the tweak
        }
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n)
            .map(|_| {
                if name.ends_with("LayerNorm.weight") || name.contains("final_layer_norm.weight") {
                    1.0 + 0.1 * rng.normal()
                } else {
                    0.3 * rng.normal()
                }
            })
            .collect();
        let bytes = match dtype {
            Some(St::I32) => vals
                .iter()
                .flat_map(|v| (*v as i32).to_le_bytes())
                .collect(),
            Some(St::F16) => vals
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_bits().to_le_bytes())
                .collect(),
            _ => bytemuck::cast_slice(&vals).to_vec(),
        };
        data.push((name, dtype.unwrap_or(St::F32), shape, bytes));
    }
    let views: Vec<(String, TensorView<'_>)> = data
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None::<HashMap<String, String>>).unwrap()
}

fn plain(_: &str, _: &mut Vec<usize>) -> Option<St> {
    None
}

fn model(cfg: &str, w: &[u8]) -> Bert<CpuNn> {
    let cfg = ModelConfig::from_json(cfg.as_bytes()).unwrap();
    let weights = BertWeights::from_safetensors("tiny", w, &cfg).unwrap();
    Bert::new(cfg, &weights, CpuNn).unwrap()
}

fn batch(rows: &[&[u32]]) -> Batch {
    let len = rows.iter().map(|r| r.len()).max().unwrap();
    let mut b = Batch {
        batch: rows.len(),
        len,
        ids: vec![],
        attention_mask: vec![],
        type_ids: vec![],
    };
    for r in rows {
        for t in 0..len {
            b.ids.push(r.get(t).copied().unwrap_or(0));
            b.attention_mask.push((t < r.len()) as u32);
            b.type_ids.push(0);
        }
    }
    b
}

fn embed(m: &Bert<CpuNn>, b: &Batch) -> Vec<f32> {
    pollster::block_on(m.embed(b)).unwrap()
}

fn states(m: &Bert<CpuNn>, b: &Batch) -> Vec<f32> {
    m.hidden_states(b).unwrap().iter().copied().collect()
}

#[test]
fn configs_are_validated() {
    let code = |s: &str| ModelConfig::from_json(s.as_bytes()).unwrap_err().code();
    assert_eq!(code(&config(0, "")), "BAD_CONFIG");
    assert_eq!(
        code(&config(2, "").replace("\"gelu\"", "\"swish\"")),
        "BAD_CONFIG"
    );
    assert_eq!(
        code(&config(2, "").replace("\"num_attention_heads\": 2", "\"num_attention_heads\": 3")),
        "BAD_CONFIG"
    );
    assert_eq!(
        code(&config(2, r#", "shelfwise": {"causal": true, "typo": 1}"#)),
        "BAD_CONFIG"
    );
    assert_eq!(code("{"), "BAD_CONFIG");
    assert_eq!(code("[]"), "BAD_CONFIG");
    assert!(ModelConfig::from_json(
        config(2, r#", "shelfwise": {"causal": true, "pooling": "last"}"#).as_bytes()
    )
    .is_ok());
}

#[test]
fn weights_that_do_not_match_the_config_name_the_tensor() {
    let cfg = ModelConfig::from_json(config(2, "").as_bytes()).unwrap();
    let err =
        |w: &[u8], cfg: &ModelConfig| BertWeights::from_safetensors("tiny", w, cfg).unwrap_err();
    // A layer short, a layer too many.
    let e = err(&weights(1, false, plain), &cfg);
    assert_eq!(e.code(), "BAD_WEIGHTS");
    assert!(
        e.to_string()
            .contains("encoder.layer.1.attention.self.query.weight"),
        "{e}"
    );
    let e = err(&weights(3, false, plain), &cfg);
    assert!(
        e.to_string().contains("encoder.layer.2") && e.to_string().contains("fewer layers"),
        "{e}"
    );
    // A wrong shape, a wrong dtype, a missing tensor.
    let e = err(
        &weights(2, false, |n, s| {
            if n == "encoder.layer.1.intermediate.dense.weight" {
                s[0] = 17;
            }
            None
        }),
        &cfg,
    );
    assert!(
        e.to_string()
            .contains("encoder.layer.1.intermediate.dense.weight")
            && e.to_string().contains("[17, 8]"),
        "{e}"
    );
    let e = err(
        &weights(2, false, |n, _| {
            (n == "embeddings.LayerNorm.bias").then_some(St::I32)
        }),
        &cfg,
    );
    assert!(
        e.to_string().contains("embeddings.LayerNorm.bias") && e.to_string().contains("I32"),
        "{e}"
    );
    let e = err(
        &weights(2, false, |n, s| {
            if n == "encoder.layer.0.output.dense.bias" {
                s.clear();
            }
            None
        }),
        &cfg,
    );
    assert!(
        e.to_string().contains("encoder.layer.0.output.dense.bias")
            && e.to_string().contains("missing"),
        "{e}"
    );
    // Truncated files.
    let w = weights(2, false, plain);
    for cut in [0, 7, 100, w.len() / 2, w.len() - 1] {
        assert_eq!(err(&w[..cut], &cfg).code(), "BAD_WEIGHTS", "cut at {cut}");
    }
    // f16 weights load (converted to f32).
    assert!(
        BertWeights::from_safetensors("tiny", &weights(2, false, |_, _| Some(St::F16)), &cfg)
            .is_ok()
    );
    // pre-LN needs the final LayerNorm.
    let pre =
        ModelConfig::from_json(config(2, r#", "shelfwise": {"pre_ln": true}"#).as_bytes()).unwrap();
    assert!(err(&weights(2, false, plain), &pre)
        .to_string()
        .contains("encoder.final_layer_norm.weight"));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let m = model(&config(2, ""), &weights(2, false, plain));
    let code = |b: &Batch| m.hidden_states(b).map(|_| ()).unwrap_err().code();
    assert_eq!(
        code(&batch(&[&[1, 2, V as u32]])),
        "INVALID_INPUT",
        "id past the vocabulary"
    );
    let long: Vec<u32> = (0..P as u32 + 1).map(|i| i % 10).collect();
    assert_eq!(
        code(&batch(&[&long])),
        "INVALID_INPUT",
        "longer than the positions"
    );
    assert_eq!(
        code(&Batch {
            batch: 0,
            len: 0,
            ids: vec![],
            attention_mask: vec![],
            type_ids: vec![]
        }),
        "INVALID_INPUT"
    );
    let mut b = batch(&[&[1, 2, 3]]);
    b.attention_mask = vec![0, 0, 0];
    assert_eq!(code(&b), "INVALID_INPUT", "a row with no token");
    let mut b = batch(&[&[1, 2, 3]]);
    b.type_ids[1] = 2;
    assert_eq!(code(&b), "INVALID_INPUT", "token type past type_vocab_size");
    let mut b = batch(&[&[1, 2, 3]]);
    b.ids.pop();
    assert_eq!(code(&b), "INVALID_INPUT", "ragged tensors");
}

#[test]
fn padding_does_not_change_a_text_s_embedding() {
    let m = model(&config(2, ""), &weights(2, false, plain));
    let alone = embed(&m, &batch(&[&[2, 7, 9, 3]]));
    let padded = embed(&m, &batch(&[&[2, 7, 9, 3], &[2, 5, 6, 8, 11, 12, 3]]));
    let diff = alone
        .iter()
        .zip(&padded[..H])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "{diff}");
    let norm: f32 = alone.iter().map(|v| v * v).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "normalised");
}

#[test]
fn causal_attention_ignores_later_tokens_and_bidirectional_does_not() {
    let w = weights(2, false, plain);
    let causal = model(&config(2, r#", "shelfwise": {"causal": true}"#), &w);
    let bidi = model(&config(2, ""), &w);
    let a = batch(&[&[2, 7, 9, 3, 4]]);
    let b = batch(&[&[2, 7, 9, 30, 41]]);
    // Positions 0..3 see only tokens 0..3, which the two batches share.
    let (ca, cb) = (states(&causal, &a), states(&causal, &b));
    let d_prefix = ca[..3 * H]
        .iter()
        .zip(&cb[..3 * H])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(d_prefix < 1e-6, "causal prefix moved by {d_prefix}");
    let (ba, bb) = (states(&bidi, &a), states(&bidi, &b));
    let d_bidi = ba[..3 * H]
        .iter()
        .zip(&bb[..3 * H])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(
        d_bidi > 1e-3,
        "bidirectional states must depend on later tokens ({d_bidi})"
    );
    // Last-token pooling of a causal model is the last real token's state, normalised.
    let last = model(
        &config(
            2,
            r#", "shelfwise": {"causal": true, "pooling": "last", "normalize": false}"#,
        ),
        &w,
    );
    let e = embed(&last, &batch(&[&[2, 7, 9], &[2, 7, 9, 3, 4]]));
    let s = states(&last, &batch(&[&[2, 7, 9]]));
    let d = e[..H]
        .iter()
        .zip(&s[2 * H..3 * H])
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-6, "{d}");
}

#[test]
fn pre_ln_runs_and_differs_from_post_ln() {
    let w = weights(2, true, plain);
    let pre = model(
        &config(2, r#", "shelfwise": {"pre_ln": true, "pooling": "cls"}"#),
        &w,
    );
    let post = model(
        &config(2, r#", "shelfwise": {"pooling": "cls"}"#),
        &weights(2, false, plain),
    );
    let b = batch(&[&[2, 7, 9, 3]]);
    let (x, y) = (embed(&pre, &b), embed(&post, &b));
    assert!(x.iter().all(|v| v.is_finite()));
    assert!(x.iter().zip(&y).any(|(a, b)| (a - b).abs() > 1e-3));
    // CLS pooling is the first token's state, normalised.
    let s = states(&pre, &b);
    let n = s[..H].iter().map(|v| v * v).sum::<f32>().sqrt();
    let d = x
        .iter()
        .zip(&s[..H])
        .map(|(a, b)| (a - b / n).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-6, "{d}");
}

#[test]
fn weights_round_trip_through_safetensors() {
    for extra in ["", r#", "shelfwise": {"pre_ln": true}"#] {
        let cfg = ModelConfig::from_json(config(2, extra).as_bytes()).unwrap();
        let w = BertWeights::random(&cfg, 5);
        let back = BertWeights::from_safetensors("w", &w.to_safetensors(), &cfg).unwrap();
        assert_eq!(back.word, w.word);
        assert_eq!(back.layers[1].output.w, w.layers[1].output.w);
        assert_eq!(
            back.final_norm.map(|n| n.beta),
            w.final_norm.as_ref().map(|n| n.beta.clone())
        );
        assert_eq!(
            w.named_tensors().len(),
            5 + 16 * 2 + if extra.is_empty() { 0 } else { 2 }
        );
    }
}
