//! The JS surface. This is the only module that touches wasm-bindgen, js-sys and web-sys: it converts
//! arguments, results, errors and callbacks, and fetches files. Everything else lives in the core.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Object, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};

use crate::catalog::{Catalog, Manifest};
use crate::device::DeviceChoice;
use crate::error::Error;
use crate::pipeline::Index;
use crate::rank::{SearchOptions, SearchResult};
use crate::shard::Shard;

mod embedder;
pub use embedder::Embedder;
mod recommender;
pub use recommender::{bundle_files, fold_profile, sha256_hex, stored_profile, BundleRecommender};

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

// The lists (error codes, event types, reason kinds) come from the Rust crate through the generated
// contract.d.ts (tests/contract.rs), which the npm package ships beside this module.
#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
import type { ErrorCode } from "./contract.js";
export type { ErrorCode } from "./contract.js";

/** Where the index comes from: a manifest URL, one shard file's bytes, or a manifest with its files. */
export type CatalogSource =
  | string
  | URL
  | Uint8Array
  | { manifest: Uint8Array | string; files: Record<string, Uint8Array> };

/** A whole bundle's bytes: `manifest.json` and every file `bundleFiles(manifest)` lists, by name. */
export type BundleSource = { manifest: Uint8Array | string; files: Record<string, Uint8Array> };

/** Backend preference. `auto` uses WebGPU for large catalogues on a hardware adapter, else the CPU. */
export type Device = "auto" | "webgpu" | "cpu";

/** Progress while loading: one `download` event per file, then `ready`. */
export type LoadEvent =
  | { type: "download"; file: string; loaded: number; total: number }
  | { type: "ready"; backend: "webgpu" | "cpu"; items: number; loaded: number; total: number };

export interface LoadOptions {
  device?: Device;
  onProgress?: (event: LoadEvent) => void;
}

export interface SearchOptions {
  /** Number of results (default 10). When larger than the eligible items, all of them are returned. */
  k?: number;
  /** Weights when the query holds several vectors back to back. */
  weights?: number[];
  /** Item ids never to return (unknown ids are ignored). */
  exclude?: string[];
  /** Only these item ids may be returned (unknown ids are ignored). */
  allow?: string[];
  /** Only items in one of these category ids. */
  categories?: number[];
  /** Inclusive price range. */
  priceRange?: [number, number];
  inStockOnly?: boolean;
  /** Adds `popularityWeight * popularity` to each score. */
  popularityWeight?: number;
  /** Adds this to the score of every item whose popularity is 0 (a new item). */
  newItemBoost?: number;
  /** Adds a boost to every item of a category: `{ [categoryId]: boost }`. */
  boosts?: Record<number, number>;
  /** MMR trade-off in [0, 1]; 1 is relevance only. Omit to turn MMR off. */
  mmrLambda?: number;
  /** Candidates MMR re-ranks (default max(4k, 50), at most 1000; MMR serves k up to 1000). */
  mmrCandidates?: number;
  /** At most this many results per category. */
  perCategoryCap?: number;
}

export interface SearchTimings { planMs: number; scoreMs: number; selectMs: number; totalMs: number }

export interface SearchResult {
  ids: string[];
  scores: Float32Array;
  /** Row of each result in the catalogue. */
  rows: Uint32Array;
  /** 1-based rank of each result. */
  ranks: Uint32Array;
  backend: "webgpu" | "cpu";
  timings: SearchTimings;
}

/** Every error shelfwise throws or rejects with. `code` is stable: branch on it. */
export interface ShelfwiseError extends Error {
  name: "ShelfwiseError";
  code: ErrorCode;
  /** The file the error is about: a shard, a model file or `manifest.json`. */
  file?: string;
  /** The argument or option the error is about. */
  field?: string;
}

/** A text model: a folder URL holding config.json, model.safetensors and tokenizer.json, or each file as a
 *  URL or its bytes. */
export type ModelSource =
  | string
  | URL
  | { config: string | Uint8Array; weights: string | Uint8Array; tokenizer: string | Uint8Array };

/** Progress while loading a model: one `download` event per file, then `ready`. */
export type ModelLoadEvent =
  | { type: "download"; file: string; loaded: number }
  | { type: "ready"; backend: "webgpu" | "cpu"; parseMs: number; setupMs: number; warmupMs: number };

export interface EmbedderOptions {
  /** `auto` (the default) uses WebGPU on a hardware adapter and the CPU otherwise. */
  device?: Device;
  /** Tokens per text, at most; longer texts are truncated (default and ceiling: the model's positions). */
  maxLength?: number;
  onProgress?: (event: ModelLoadEvent) => void;
}
"#;

impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        let err = js_sys::Error::new(&e.to_string());
        err.set_name("ShelfwiseError");
        let _ = Reflect::set(&err, &"code".into(), &e.code().into());
        if let Some(file) = e.file() {
            let _ = Reflect::set(&err, &"file".into(), &file.into());
        }
        if let Some(field) = e.field() {
            let _ = Reflect::set(&err, &"field".into(), &field.into());
        }
        err.into()
    }
}

/// What a JS object holds: nothing yet, a loaded engine, or nothing any more.
pub(crate) enum State<T> {
    Empty,
    Ready(Rc<T>),
    Disposed,
}

impl<T> State<T> {
    /// The engine, or the typed error for calling too early or too late.
    pub(crate) fn ready(&self) -> Result<Rc<T>, Error> {
        match self {
            State::Ready(t) => Ok(t.clone()),
            State::Empty => Err(Error::NotLoaded),
            State::Disposed => Err(Error::Disposed),
        }
    }
}

/// A client-side vector index over item shards: exact top-k with filters, boosts, MMR and caps.
///
/// Create one with `await ItemIndex.load(source, options)`. `new ItemIndex()` gives an empty index whose
/// methods reject with `NOT_LOADED`.
#[wasm_bindgen]
pub struct ItemIndex {
    state: Rc<RefCell<State<Index>>>,
}

impl Default for ItemIndex {
    fn default() -> Self {
        ItemIndex::new()
    }
}

#[wasm_bindgen]
impl ItemIndex {
    /// An empty, unloaded index. Prefer `ItemIndex.load`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> ItemIndex {
        ItemIndex {
            state: Rc::new(RefCell::new(State::Empty)),
        }
    }

    /// Loads a catalogue and prepares the backend (upload, pipelines, one warm-up dispatch).
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "CatalogSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions | undefined")] options: JsValue,
    ) -> Result<ItemIndex, JsValue> {
        let opts = LoadOpts::from_js(&options)?;
        let catalog = load_catalog(&source, &opts).await?;
        let index = Index::new(catalog, opts.device).await?;
        if let Some(cb) = &opts.on_progress {
            let ev = object(&[
                ("type", "ready".into()),
                ("backend", index.backend().name().into()),
                ("items", (index.catalog().len() as f64).into()),
                ("loaded", opts.total.get().into()),
                ("total", opts.total.get().into()),
            ]);
            let _ = cb.call1(&JsValue::NULL, &ev);
        }
        Ok(ItemIndex {
            state: Rc::new(RefCell::new(State::Ready(Rc::new(index)))),
        })
    }

    /// Ranks the catalogue for `query` (`dim` values, or several vectors back to back with
    /// `options.weights`). Safe to call while other searches are in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<SearchResult>")]
    pub fn search(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array | number[]")] query: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SearchOptions | undefined")] options: JsValue,
    ) -> js_sys::Promise {
        let prepared = self.ready().and_then(|index| {
            let opts = parse_search_options(&options)?;
            Ok((index, query_vec(&query)?, opts))
        });
        future_to_promise(async move {
            let (index, query, opts) = prepared?;
            let result = index.search(&query, &opts).await?;
            Ok(result_to_js(&result).into())
        })
    }

    /// `"webgpu"` or `"cpu"`; `undefined` before load or after dispose.
    #[wasm_bindgen(getter, unchecked_return_type = "\"webgpu\" | \"cpu\" | undefined")]
    pub fn backend(&self) -> JsValue {
        self.ready()
            .map_or(JsValue::UNDEFINED, |i| i.backend().name().into())
    }

    /// The GPU adapter's description, when on the GPU.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> Option<String> {
        self.ready().ok().and_then(|i| i.adapter_name())
    }

    /// Number of items (0 before load).
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.ready().map_or(0, |i| i.catalog().len())
    }

    /// Embedding dimension (0 before load).
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.ready().map_or(0, |i| i.catalog().dim())
    }

    /// `"f32"`, `"f16"` or `"int8"`.
    #[wasm_bindgen(getter)]
    pub fn dtype(&self) -> Option<String> {
        self.ready()
            .ok()
            .map(|i| i.catalog().dtype().name().to_string())
    }

    /// The model the item vectors belong to.
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> Option<String> {
        self.ready()
            .ok()
            .map(|i| i.catalog().model_id().to_string())
    }

    /// Category names by id, from the manifest (empty when not named).
    #[wasm_bindgen(getter, unchecked_return_type = "string[]")]
    pub fn categories(&self) -> Array {
        let out = Array::new();
        if let Ok(i) = self.ready() {
            for name in i.catalog().category_names() {
                out.push(&name.into());
            }
        }
        out
    }

    /// The id of row `row`.
    #[wasm_bindgen(js_name = itemId)]
    pub fn item_id(&self, row: u32) -> Result<String, JsValue> {
        let index = self.ready()?;
        if row as usize >= index.catalog().len() {
            return Err(Error::invalid("row", format!("{row} is past the last row")).into());
        }
        Ok(index.catalog().id(row as usize).to_string())
    }

    /// The row of item `id`, or `undefined` when the catalogue does not have it.
    #[wasm_bindgen(js_name = rowOf)]
    pub fn row_of(&self, id: &str) -> Result<Option<u32>, JsValue> {
        Ok(self.ready()?.catalog().row_of(id).map(|r| r as u32))
    }

    /// The stored vector of row `row` (dequantised for int8), e.g. to search for similar items.
    #[wasm_bindgen(js_name = itemVector)]
    pub fn item_vector(&self, row: u32) -> Result<Float32Array, JsValue> {
        let index = self.ready()?;
        let cat = index.catalog();
        if row as usize >= cat.len() {
            return Err(Error::invalid("row", format!("{row} is past the last row")).into());
        }
        let mut v = vec![0f32; cat.dim()];
        cat.row_f32(row as usize, &mut v);
        Ok(Float32Array::from(v.as_slice()))
    }

    /// Frees the catalogue and its GPU buffers. Searches already in flight finish; later calls reject
    /// with `DISPOSED`.
    pub fn dispose(&self) {
        *self.state.borrow_mut() = State::Disposed;
    }

    fn ready(&self) -> Result<Rc<Index>, Error> {
        self.state.borrow().ready()
    }
}

struct LoadOpts {
    device: DeviceChoice,
    on_progress: Option<js_sys::Function>,
    total: std::cell::Cell<f64>,
}

impl LoadOpts {
    fn from_js(v: &JsValue) -> Result<LoadOpts, Error> {
        let mut opts = LoadOpts {
            device: DeviceChoice::Auto,
            on_progress: None,
            total: std::cell::Cell::new(0.0),
        };
        if v.is_undefined() || v.is_null() {
            return Ok(opts);
        }
        if !v.is_object() {
            return Err(Error::invalid("options", "must be an object"));
        }
        let keys = Object::keys(v.unchecked_ref::<Object>());
        for key in keys.iter() {
            let key = key.as_string().unwrap_or_default();
            let value = Reflect::get(v, &key.as_str().into()).unwrap_or(JsValue::UNDEFINED);
            match key.as_str() {
                "device" => {
                    if !value.is_undefined() {
                        opts.device = device_option(&value)?;
                    }
                }
                "onProgress" => {
                    if !value.is_undefined() {
                        opts.on_progress = Some(progress_option(&value)?);
                    }
                }
                other => {
                    return Err(Error::invalid(
                        "options",
                        format!("unknown load option `{other}`"),
                    ));
                }
            }
        }
        Ok(opts)
    }

    fn progress(&self, file: &str, loaded: f64) {
        if let Some(cb) = &self.on_progress {
            let ev = object(&[
                ("type", "download".into()),
                ("file", file.into()),
                ("loaded", loaded.into()),
                ("total", self.total.get().into()),
            ]);
            // A throwing callback must not break loading.
            let _ = cb.call1(&JsValue::NULL, &ev);
        }
    }
}

/// The `device` load option: `"auto"`, `"webgpu"` or `"cpu"`.
pub(crate) fn device_option(value: &JsValue) -> Result<DeviceChoice, Error> {
    let s = value
        .as_string()
        .ok_or_else(|| Error::invalid("device", "must be a string"))?;
    DeviceChoice::parse(&s)
}

/// The `onProgress` load option: a function.
pub(crate) fn progress_option(value: &JsValue) -> Result<js_sys::Function, Error> {
    value
        .dyn_ref::<js_sys::Function>()
        .cloned()
        .ok_or_else(|| Error::invalid("onProgress", "must be a function"))
}

/// A query from a `Float32Array` (or another typed array) or an array of numbers.
fn query_vec(v: &JsValue) -> Result<Vec<f32>, Error> {
    if let Some(a) = v.dyn_ref::<Float32Array>() {
        return Ok(a.to_vec());
    }
    if js_sys::ArrayBuffer::is_view(v) || Array::is_array(v) {
        // Float64Array, Int8Array, number[], ...: element by element.
        return Ok(Float32Array::new(v).to_vec());
    }
    Err(Error::InvalidQuery(
        "the query must be a Float32Array or an array of numbers".into(),
    ))
}

fn parse_search_options(v: &JsValue) -> Result<SearchOptions, Error> {
    if v.is_undefined() || v.is_null() {
        return Ok(SearchOptions::default());
    }
    // A JSON value has no NaN or infinity: serde would turn `{ popularityWeight: NaN }` into null, which
    // reads as absent below. Refuse non-finite numbers first (nested ones, in arrays, fail as null later).
    if let Some(obj) = v.dyn_ref::<Object>() {
        for entry in Object::entries(obj).iter() {
            let pair = Array::from(&entry);
            if let Some(x) = pair.get(1).as_f64().filter(|x| !x.is_finite()) {
                let key = pair.get(0).as_string().unwrap_or_default();
                return Err(Error::invalid(
                    "options",
                    format!("`{key}` must be a finite number, not {x}"),
                ));
            }
        }
    }
    // Through a JSON value: serde-wasm-bindgen reads only the fields a struct names, so going straight to
    // `SearchOptions` would let a misspelt option pass silently; serde_json enforces `deny_unknown_fields`.
    let mut value: serde_json::Value = serde_wasm_bindgen::from_value(v.clone())
        .map_err(|e| Error::invalid("options", e.to_string()))?;
    // `{ k: undefined }` arrives as null: treat it as absent, like every optional field.
    if let serde_json::Value::Object(m) = &mut value {
        m.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(value).map_err(|e| Error::invalid("options", e.to_string()))
}

async fn load_catalog(source: &JsValue, opts: &LoadOpts) -> Result<Catalog, Error> {
    if let Some(bytes) = source.dyn_ref::<Uint8Array>() {
        let bytes = bytes.to_vec();
        opts.total.set(bytes.len() as f64);
        opts.progress("shard", bytes.len() as f64);
        return Catalog::from_shards(vec![Shard::from_bytes("shard", &bytes)?]);
    }
    let url = source
        .as_string()
        .or_else(|| source.dyn_ref::<web_sys::Url>().map(|u| u.href()));
    if let Some(url) = url {
        let base = absolute_url(&url, None)?;
        let manifest_bytes = fetch_bytes(&base).await?;
        let manifest = Manifest::from_json(&manifest_bytes)?;
        opts.total
            .set(manifest.shards.iter().map(|s| s.bytes as f64).sum());
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        let mut loaded = 0.0;
        for entry in &manifest.shards {
            let file_url = absolute_url(&entry.file, Some(&base))?;
            let bytes = fetch_bytes(&file_url).await?;
            loaded += bytes.len() as f64;
            opts.progress(&entry.file, loaded);
            files.insert(entry.file.clone(), bytes);
        }
        return Catalog::from_manifest(&manifest, |e| Ok(files[&e.file].as_slice()));
    }
    if source.is_object() {
        let manifest_v = Reflect::get(source, &"manifest".into()).unwrap_or(JsValue::UNDEFINED);
        let manifest_bytes = if let Some(s) = manifest_v.as_string() {
            s.into_bytes()
        } else if let Some(b) = manifest_v.dyn_ref::<Uint8Array>() {
            b.to_vec()
        } else {
            return Err(Error::invalid(
                "source",
                "`manifest` must be a string or a Uint8Array",
            ));
        };
        let manifest = Manifest::from_json(&manifest_bytes)?;
        let files_v = Reflect::get(source, &"files".into()).unwrap_or(JsValue::UNDEFINED);
        let mut files: HashMap<String, Vec<u8>> = HashMap::new();
        for entry in &manifest.shards {
            let f =
                Reflect::get(&files_v, &entry.file.as_str().into()).unwrap_or(JsValue::UNDEFINED);
            let bytes = f
                .dyn_ref::<Uint8Array>()
                .ok_or_else(|| {
                    Error::Manifest(format!("`files` has no Uint8Array for `{}`", entry.file))
                })?
                .to_vec();
            files.insert(entry.file.clone(), bytes);
        }
        return Catalog::from_manifest(&manifest, |e| Ok(files[&e.file].as_slice()));
    }
    Err(Error::invalid(
        "source",
        "must be a manifest URL, a Uint8Array shard, or { manifest, files }",
    ))
}

/// Resolves `url` against `base`, or against the page's (or worker's) location.
fn absolute_url(url: &str, base: Option<&str>) -> Result<String, Error> {
    let base = match base {
        Some(b) => b.to_string(),
        None => Reflect::get(&js_sys::global(), &"location".into())
            .and_then(|l| Reflect::get(&l, &"href".into()))
            .ok()
            .and_then(|h| h.as_string())
            .unwrap_or_default(),
    };
    let parsed = if base.is_empty() {
        web_sys::Url::new(url)
    } else {
        web_sys::Url::new_with_base(url, &base)
    };
    parsed.map(|u| u.href()).map_err(|_| Error::Fetch {
        url: url.to_string(),
        reason: "not a valid URL".into(),
    })
}

async fn fetch_bytes(url: &str) -> Result<Vec<u8>, Error> {
    let fail = |reason: String| Error::Fetch {
        url: url.to_string(),
        reason,
    };
    let global = js_sys::global();
    let promise = if let Some(w) = global.dyn_ref::<web_sys::Window>() {
        w.fetch_with_str(url)
    } else if let Some(w) = global.dyn_ref::<web_sys::WorkerGlobalScope>() {
        w.fetch_with_str(url)
    } else {
        return Err(fail("no fetch in this environment".into()));
    };
    let resp: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| fail(js_message(&e)))?
        .dyn_into()
        .map_err(|_| fail("fetch did not return a Response".into()))?;
    if !resp.ok() {
        return Err(fail(format!("HTTP {}", resp.status())));
    }
    let buf = JsFuture::from(resp.array_buffer().map_err(|e| fail(js_message(&e)))?)
        .await
        .map_err(|e| fail(js_message(&e)))?;
    Ok(Uint8Array::new(&buf).to_vec())
}

fn js_message(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "unknown error".into())
}

fn object(fields: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &(*k).into(), v);
    }
    o
}

fn result_to_js(r: &SearchResult) -> Object {
    let ids = Array::new();
    for id in &r.ids {
        ids.push(&id.into());
    }
    let ranks: Vec<u32> = (1..=r.rows.len() as u32).collect();
    let t = &r.timings;
    let timings = object(&[
        ("planMs", t.plan_ms.into()),
        ("scoreMs", t.score_ms.into()),
        ("selectMs", t.select_ms.into()),
        ("totalMs", t.total_ms.into()),
    ]);
    object(&[
        ("ids", ids.into()),
        ("scores", Float32Array::from(r.scores.as_slice()).into()),
        ("rows", Uint32Array::from(r.rows.as_slice()).into()),
        ("ranks", Uint32Array::from(ranks.as_slice()).into()),
        ("backend", r.backend.name().into()),
        ("timings", timings.into()),
    ])
}
