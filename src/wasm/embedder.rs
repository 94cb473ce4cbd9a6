//! The JS `Embedder`: texts to vectors with a BERT-family model, on WebGPU or the wasm CPU path.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use super::{absolute_url, device_option, fetch_bytes, object, progress_option, State};
use crate::device::DeviceChoice;
use crate::error::Error;
use crate::model::ModelFiles;
use crate::pipeline;

/// Texts to vectors with a Transformer model (all-MiniLM-L6-v2, or a shelfwise interest model).
///
/// Create one with `await Embedder.load(source, options)`; `new Embedder()` gives an empty one whose
/// methods reject with `NOT_LOADED`.
#[wasm_bindgen]
pub struct Embedder {
    state: Rc<RefCell<State<pipeline::Embedder>>>,
}

impl Default for Embedder {
    fn default() -> Self {
        Embedder::new()
    }
}

struct Opts {
    device: DeviceChoice,
    max_len: Option<usize>,
    on_progress: Option<js_sys::Function>,
}

impl Opts {
    fn from_js(v: &JsValue) -> Result<Opts, Error> {
        let mut o = Opts {
            device: DeviceChoice::Auto,
            max_len: None,
            on_progress: None,
        };
        if v.is_undefined() || v.is_null() {
            return Ok(o);
        }
        if !v.is_object() {
            return Err(Error::invalid("options", "must be an object"));
        }
        for key in Object::keys(v.unchecked_ref::<Object>()).iter() {
            let key = key.as_string().unwrap_or_default();
            let value = Reflect::get(v, &key.as_str().into()).unwrap_or(JsValue::UNDEFINED);
            if value.is_undefined() {
                continue;
            }
            match key.as_str() {
                "device" => o.device = device_option(&value)?,
                "maxLength" => {
                    let n = value
                        .as_f64()
                        .filter(|n| n.fract() == 0.0 && *n >= 2.0 && *n <= 1e6)
                        .ok_or_else(|| {
                            Error::invalid("maxLength", "must be a whole number from 2")
                        })?;
                    o.max_len = Some(n as usize);
                }
                "onProgress" => o.on_progress = Some(progress_option(&value)?),
                other => {
                    return Err(Error::invalid(
                        "options",
                        format!("unknown embedder option `{other}`"),
                    ))
                }
            }
        }
        Ok(o)
    }

    fn progress(&self, event: &Object) {
        if let Some(cb) = &self.on_progress {
            // A throwing callback must not break loading.
            let _ = cb.call1(&JsValue::NULL, event);
        }
    }
}

/// One model file: its bytes, or a URL (resolved against `base` when given) to fetch.
async fn file(v: &JsValue, name: &str, base: Option<&str>, opts: &Opts) -> Result<Vec<u8>, Error> {
    if let Some(b) = v.dyn_ref::<Uint8Array>() {
        return Ok(b.to_vec());
    }
    let url = v
        .as_string()
        .or_else(|| v.dyn_ref::<web_sys::Url>().map(|u| u.href()))
        .ok_or_else(|| {
            Error::invalid("source", format!("`{name}` must be a URL or a Uint8Array"))
        })?;
    let bytes = fetch_bytes(&absolute_url(&url, base)?).await?;
    opts.progress(&object(&[
        ("type", "download".into()),
        ("file", name.into()),
        ("loaded", (bytes.len() as f64).into()),
    ]));
    Ok(bytes)
}

#[wasm_bindgen]
impl Embedder {
    /// An empty embedder. Prefer `Embedder.load`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> Embedder {
        Embedder {
            state: Rc::new(RefCell::new(State::Empty)),
        }
    }

    /// Loads a model: fetches (or takes) its three files, checks the weights against the config, uploads
    /// them to the backend and runs one warm-up pass.
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "ModelSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "EmbedderOptions | undefined")] options: JsValue,
    ) -> Result<Embedder, JsValue> {
        let opts = Opts::from_js(&options)?;
        let folder = source
            .as_string()
            .or_else(|| source.dyn_ref::<web_sys::Url>().map(|u| u.href()));
        let (config, weights, tokenizer) = if let Some(folder) = folder {
            let mut base = absolute_url(&folder, None)?;
            if !base.ends_with('/') {
                base.push('/');
            }
            let b = Some(base.as_str());
            (
                file(&"config.json".into(), "config.json", b, &opts).await?,
                file(&"model.safetensors".into(), "model.safetensors", b, &opts).await?,
                file(&"tokenizer.json".into(), "tokenizer.json", b, &opts).await?,
            )
        } else if source.is_object() {
            let get = |k: &str| Reflect::get(&source, &k.into()).unwrap_or(JsValue::UNDEFINED);
            (
                file(&get("config"), "config", None, &opts).await?,
                file(&get("weights"), "weights", None, &opts).await?,
                file(&get("tokenizer"), "tokenizer", None, &opts).await?,
            )
        } else {
            return Err(Error::invalid(
                "source",
                "must be a folder URL or { config, weights, tokenizer }",
            )
            .into());
        };
        let files = ModelFiles {
            config: &config,
            weights: &weights,
            tokenizer: &tokenizer,
        };
        let e = pipeline::Embedder::load(files, opts.device, opts.max_len).await?;
        let t = e.load_timings();
        opts.progress(&object(&[
            ("type", "ready".into()),
            ("backend", e.backend().name().into()),
            ("parseMs", t.parse_ms.into()),
            ("setupMs", t.setup_ms.into()),
            ("warmupMs", t.warmup_ms.into()),
        ]));
        Ok(Embedder {
            state: Rc::new(RefCell::new(State::Ready(Rc::new(e)))),
        })
    }

    /// Embeds `texts` (a non-empty array of strings): `texts.length * dim` values, one vector after the
    /// other. Safe to call while other calls are in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array>")]
    pub fn embed(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string[]")] texts: JsValue,
    ) -> js_sys::Promise {
        let prepared = self.ready().and_then(|e| Ok((e, texts_of(&texts)?)));
        future_to_promise(async move {
            let (e, texts) = prepared?;
            let v = e.embed(&texts).await?;
            Ok(Float32Array::from(v.as_slice()).into())
        })
    }

    /// Length of each vector; 0 before load.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.ready().map_or(0, |e| e.dim())
    }

    /// Tokens per text, at most; 0 before load.
    #[wasm_bindgen(getter, js_name = maxLength)]
    pub fn max_length(&self) -> usize {
        self.ready().map_or(0, |e| e.max_len())
    }

    /// `"webgpu"` or `"cpu"`; `undefined` before load or after dispose.
    #[wasm_bindgen(getter, unchecked_return_type = "\"webgpu\" | \"cpu\" | undefined")]
    pub fn backend(&self) -> JsValue {
        self.ready()
            .map_or(JsValue::UNDEFINED, |e| e.backend().name().into())
    }

    /// The WebGPU adapter's description when the model runs there.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> Option<String> {
        self.ready().ok()?.adapter().map(String::from)
    }

    /// Releases the model; later calls reject with `DISPOSED`. Calls in flight finish first.
    pub fn dispose(&self) {
        *self.state.borrow_mut() = State::Disposed;
    }

    fn ready(&self) -> Result<Rc<pipeline::Embedder>, Error> {
        self.state.borrow().ready()
    }
}

fn texts_of(v: &JsValue) -> Result<Vec<String>, Error> {
    if !Array::is_array(v) {
        return Err(Error::invalid("texts", "must be an array of strings"));
    }
    let a: &Array = v.unchecked_ref();
    a.iter()
        .enumerate()
        .map(|(i, t)| {
            t.as_string()
                .ok_or_else(|| Error::invalid("texts", format!("element {i} is not a string")))
        })
        .collect()
}
