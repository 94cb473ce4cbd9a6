//! Loading BERT weights from safetensors, checked against the config: every tensor must be present, with
//! the shape the config implies and a float dtype (F32, or F16 converted to f32 here).

use half::f16;
use safetensors::{Dtype as St, SafeTensors};

use super::config::ModelConfig;
use crate::error::{Error, Result};

/// A dense layer: `y = x W^T + b`, `W` row-major `[out, in]`.
#[derive(Clone, Debug)]
pub struct LinearWeights {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub out_dim: usize,
    pub in_dim: usize,
}

/// LayerNorm gain and bias, `[hidden]` each.
#[derive(Clone, Debug)]
pub struct NormWeights {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

/// One encoder layer.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub query: LinearWeights,
    pub key: LinearWeights,
    pub value: LinearWeights,
    pub attn_out: LinearWeights,
    /// After attention (post-LN) or before it (pre-LN).
    pub attn_norm: NormWeights,
    pub intermediate: LinearWeights,
    pub output: LinearWeights,
    /// After the feed-forward block (post-LN) or before it (pre-LN).
    pub ffn_norm: NormWeights,
}

/// All weights of a BERT-family encoder, on the host, in f32.
#[derive(Clone, Debug)]
pub struct BertWeights {
    /// `[vocab, hidden]`, `[positions, hidden]`, `[types, hidden]`. `word` is empty for a model with
    /// external inputs.
    pub word: Vec<f32>,
    pub position: Vec<f32>,
    pub token_type: Vec<f32>,
    pub embed_norm: NormWeights,
    pub layers: Vec<LayerWeights>,
    /// The final LayerNorm of pre-LN models (`encoder.final_layer_norm`).
    pub final_norm: Option<NormWeights>,
    /// The dense layer after pooling (`projection`), when the config has an `output_dim`.
    pub projection: Option<LinearWeights>,
}

struct Reader<'a> {
    file: &'a str,
    st: SafeTensors<'a>,
    prefix: &'static str,
}

impl Reader<'_> {
    fn err(&self, tensor: &str, problem: impl Into<String>) -> Error {
        Error::Weights {
            file: self.file.into(),
            tensor: tensor.into(),
            problem: problem.into(),
        }
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// Tensor `name` as f32, checked to be `shape`.
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let full = format!("{}{name}", self.prefix);
        let t = self
            .st
            .tensor(&full)
            .map_err(|_| self.err(name, "is missing"))?;
        if t.shape() != shape {
            return Err(self.err(
                name,
                format!("has shape {:?}, the config implies {shape:?}", t.shape()),
            ));
        }
        let v: Vec<f32> = match t.dtype() {
            St::F32 => bytemuck::pod_collect_to_vec(t.data()),
            St::F16 => {
                let h: Vec<u16> = bytemuck::pod_collect_to_vec(t.data());
                h.into_iter().map(|b| f16::from_bits(b).to_f32()).collect()
            }
            other => {
                return Err(self.err(name, format!("has dtype {other:?}, expected F32 or F16")))
            }
        };
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(self.err(name, format!("holds a non-finite value at element {i}")));
        }
        Ok(v)
    }

    fn linear(&self, name: &str, out_dim: usize, in_dim: usize) -> Result<LinearWeights> {
        Ok(LinearWeights {
            w: self.get(&format!("{name}.weight"), &[out_dim, in_dim])?,
            b: self.get(&format!("{name}.bias"), &[out_dim])?,
            out_dim,
            in_dim,
        })
    }

    fn norm(&self, name: &str, h: usize) -> Result<NormWeights> {
        Ok(NormWeights {
            gamma: self.get(&format!("{name}.weight"), &[h])?,
            beta: self.get(&format!("{name}.bias"), &[h])?,
        })
    }
}

impl BertWeights {
    /// Reads and checks the weights in `bytes` (a safetensors file named `file` in errors). Hugging Face
    /// names are accepted with or without the `bert.` prefix.
    pub fn from_safetensors(file: &str, bytes: &[u8], cfg: &ModelConfig) -> Result<BertWeights> {
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::Weights {
            file: file.into(),
            tensor: "(file)".into(),
            problem: format!("is not a valid safetensors file: {e}"),
        })?;
        let prefix = if st.tensor("bert.embeddings.word_embeddings.weight").is_ok() {
            "bert."
        } else {
            ""
        };
        let r = Reader { file, st, prefix };
        // Before anything is allocated: the tensors the config implies must fit in the file, at two bytes
        // a value (F16, the smallest dtype read). The config's own bounds keep the count from wrapping.
        let values = cfg
            .parameter_count()
            .ok_or_else(|| r.err("(file)", "cannot match a config whose size overflows a u64"))?;
        let need = values.saturating_mul(2);
        if need > bytes.len() as u64 {
            return Err(r.err(
                "(file)",
                format!(
                    "holds {} bytes, and the config implies {values} values: at least {need} bytes",
                    bytes.len()
                ),
            ));
        }
        let (h, i) = (cfg.hidden_size, cfg.intermediate_size);
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            layers.push(LayerWeights {
                query: r.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: r.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: r.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: r.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: r.norm(&format!("{p}.attention.output.LayerNorm"), h)?,
                intermediate: r.linear(&format!("{p}.intermediate.dense"), i, h)?,
                output: r.linear(&format!("{p}.output.dense"), h, i)?,
                ffn_norm: r.norm(&format!("{p}.output.LayerNorm"), h)?,
            });
        }
        let next = format!(
            "encoder.layer.{}.attention.self.query.weight",
            cfg.num_hidden_layers
        );
        if r.has(&next) {
            return Err(r.err(&next, "exists, but the config has fewer layers"));
        }
        let final_norm = if cfg.shelfwise.pre_ln {
            Some(r.norm("encoder.final_layer_norm", h)?)
        } else {
            None
        };
        let word_name = "embeddings.word_embeddings.weight";
        let word = if cfg.shelfwise.external_inputs {
            if r.has(word_name) {
                return Err(r.err(word_name, "exists, but the config says inputs are external"));
            }
            Vec::new()
        } else {
            r.get(word_name, &[cfg.vocab_size, h])?
        };
        let projection = match cfg.shelfwise.output_dim {
            Some(o) => Some(r.linear("projection", o, h)?),
            None => None,
        };
        Ok(BertWeights {
            word,
            projection,
            position: r.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type: r.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            embed_norm: r.norm("embeddings.LayerNorm", h)?,
            layers,
            final_norm,
        })
    }
}

impl BertWeights {
    /// Every tensor with its Hugging Face name (no `bert.` prefix) and shape, in a stable order.
    pub fn named_tensors(&self) -> Vec<(String, Vec<usize>, &[f32])> {
        let h = self.embed_norm.gamma.len();
        let mut out: Vec<(String, Vec<usize>, &[f32])> = Vec::new();
        for (name, t) in [
            ("word_embeddings", &self.word),
            ("position_embeddings", &self.position),
            ("token_type_embeddings", &self.token_type),
        ] {
            if t.is_empty() {
                continue;
            }
            let shape = vec![t.len() / h.max(1), h];
            out.push((format!("embeddings.{name}.weight"), shape, t.as_slice()));
        }
        fn norm<'a>(
            out: &mut Vec<(String, Vec<usize>, &'a [f32])>,
            name: &str,
            n: &'a NormWeights,
        ) {
            out.push((format!("{name}.weight"), vec![n.gamma.len()], &n.gamma));
            out.push((format!("{name}.bias"), vec![n.beta.len()], &n.beta));
        }
        fn linear<'a>(
            out: &mut Vec<(String, Vec<usize>, &'a [f32])>,
            name: &str,
            l: &'a LinearWeights,
        ) {
            out.push((format!("{name}.weight"), vec![l.out_dim, l.in_dim], &l.w));
            out.push((format!("{name}.bias"), vec![l.out_dim], &l.b));
        }
        norm(&mut out, "embeddings.LayerNorm", &self.embed_norm);
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("encoder.layer.{i}");
            linear(&mut out, &format!("{p}.attention.self.query"), &l.query);
            linear(&mut out, &format!("{p}.attention.self.key"), &l.key);
            linear(&mut out, &format!("{p}.attention.self.value"), &l.value);
            linear(
                &mut out,
                &format!("{p}.attention.output.dense"),
                &l.attn_out,
            );
            norm(
                &mut out,
                &format!("{p}.attention.output.LayerNorm"),
                &l.attn_norm,
            );
            linear(
                &mut out,
                &format!("{p}.intermediate.dense"),
                &l.intermediate,
            );
            linear(&mut out, &format!("{p}.output.dense"), &l.output);
            norm(&mut out, &format!("{p}.output.LayerNorm"), &l.ffn_norm);
        }
        if let Some(n) = &self.final_norm {
            norm(&mut out, "encoder.final_layer_norm", n);
        }
        if let Some(p) = &self.projection {
            linear(&mut out, "projection", p);
        }
        out
    }

    /// The weights as an F32 safetensors file that [`BertWeights::from_safetensors`] reads back.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let tensors = self.named_tensors();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
            .iter()
            .filter_map(|(name, shape, data)| {
                safetensors::tensor::TensorView::new(
                    St::F32,
                    shape.clone(),
                    bytemuck::cast_slice(data),
                )
                .ok()
                .map(|v| (name.clone(), v))
            })
            .collect();
        // Serialising views whose sizes match their shapes cannot fail.
        safetensors::serialize(views, None).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(extra: &str) -> ModelConfig {
        ModelConfig::from_json(
            format!(
                r#"{{"vocab_size": 50, "hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2,
                    "intermediate_size": 16, "hidden_act": "gelu", "max_position_embeddings": 16,
                    "type_vocab_size": 2 {extra}}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    /// `ModelConfig::parameter_count` is exactly what the weights hold, in every variant of the model.
    #[test]
    fn the_parameter_count_is_the_tensors_size() {
        for extra in [
            "",
            r#", "shelfwise": {"pre_ln": true}"#,
            r#", "shelfwise": {"output_dim": 5}"#,
            r#", "shelfwise": {"external_inputs": true, "causal": true, "pooling": "last", "pre_ln": true}"#,
        ] {
            let cfg = tiny(extra);
            let w = BertWeights::random(&cfg, 1);
            let total: usize = w.named_tensors().iter().map(|(_, _, v)| v.len()).sum();
            assert_eq!(cfg.parameter_count(), Some(total as u64), "{extra}");
            assert!(BertWeights::from_safetensors("tiny", &w.to_safetensors(), &cfg).is_ok());
        }
    }

    /// A config that asks for far more values than the file holds is BAD_WEIGHTS before anything is
    /// allocated, even one that skipped `ModelConfig`'s own bounds: `1 << 24` layers once made
    /// `Vec::with_capacity` panic with "capacity overflow" on wasm32.
    #[test]
    fn a_config_larger_than_the_file_is_bad_weights() {
        let cfg = tiny("");
        let file = BertWeights::random(&cfg, 1).to_safetensors();
        let check = |what: &str, c: ModelConfig| {
            let e = BertWeights::from_safetensors("tiny", &file, &c).unwrap_err();
            assert_eq!(e.code(), "BAD_WEIGHTS", "{what}: {e}");
            assert!(e.to_string().contains("(file)"), "{what}: {e}");
        };
        // Within ModelConfig's bounds, but not this file's.
        let mut c = cfg.clone();
        c.num_hidden_layers = 200;
        check("200 layers", c);
        let mut c = cfg.clone();
        c.vocab_size = 1 << 20;
        check("a 2^20 vocabulary", c);
        // Past ModelConfig's bounds (a config built by hand, not read).
        let mut c = cfg.clone();
        c.num_hidden_layers = 1 << 24;
        check("1 << 24 layers", c);
        let mut c = cfg.clone();
        c.hidden_size = 1 << 24;
        c.intermediate_size = 1 << 24;
        check("1 << 24 wide", c);
        let mut c = cfg.clone();
        c.hidden_size = usize::MAX;
        c.num_hidden_layers = usize::MAX;
        check("a count that overflows u64", c);
    }
}
