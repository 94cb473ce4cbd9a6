//! Seeded random initialisation of BERT-family weights: the starting point for training (the CLI's
//! `distill` and `train`), and weights of a given shape for engine tests and timings.

use super::config::ModelConfig;
use super::weights::{BertWeights, LayerWeights, LinearWeights, NormWeights};
use crate::rng::Rng;

impl BertWeights {
    /// Random weights with the shapes `cfg` implies (seeded): normal(0, 0.3) matrices and biases, LayerNorm
    /// gains near 1. For training from scratch, engine tests, and timing a model shape without its trained
    /// weights.
    pub fn random(cfg: &ModelConfig, seed: u64) -> BertWeights {
        let mut rng = Rng::new(seed);
        let mut vals =
            |n: usize, scale: f32| -> Vec<f32> { (0..n).map(|_| scale * rng.normal()).collect() };
        let mut linear = |out_dim: usize, in_dim: usize| LinearWeights {
            w: vals(out_dim * in_dim, 1.0 / (in_dim as f32).sqrt()),
            b: vals(out_dim, 0.1),
            out_dim,
            in_dim,
        };
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mut layers = Vec::new();
        let mut norms = Vec::new();
        for _ in 0..cfg.num_hidden_layers {
            layers.push((
                linear(h, h),
                linear(h, h),
                linear(h, h),
                linear(h, h),
                linear(i, h),
                linear(h, i),
            ));
        }
        let mut rng = Rng::new(seed ^ 0x5eed);
        let mut norm = || NormWeights {
            gamma: (0..h).map(|_| 1.0 + 0.1 * rng.normal()).collect(),
            beta: (0..h).map(|_| 0.1 * rng.normal()).collect(),
        };
        for _ in 0..cfg.num_hidden_layers {
            norms.push((norm(), norm()));
        }
        let embed_norm = norm();
        let final_norm = cfg.shelfwise.pre_ln.then(&mut norm);
        let projection = cfg.shelfwise.output_dim.map(|o| linear(o, h));
        let mut rng = Rng::new(seed ^ 0xe3be);
        let mut table = |rows: usize| -> Vec<f32> { (0..rows * h).map(|_| rng.normal()).collect() };
        let word = if cfg.shelfwise.external_inputs {
            Vec::new()
        } else {
            table(cfg.vocab_size)
        };
        BertWeights {
            word,
            position: table(cfg.max_position_embeddings),
            token_type: table(cfg.type_vocab_size),
            embed_norm,
            layers: layers
                .into_iter()
                .zip(norms)
                .map(
                    |(
                        (query, key, value, attn_out, intermediate, output),
                        (attn_norm, ffn_norm),
                    )| {
                        LayerWeights {
                            query,
                            key,
                            value,
                            attn_out,
                            attn_norm,
                            intermediate,
                            output,
                            ffn_norm,
                        }
                    },
                )
                .collect(),
            final_norm,
            projection,
        }
    }
}
