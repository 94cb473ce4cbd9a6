//! The JS `BundleRecommender`: a whole bundle (`shelfwise export`) in the browser. Given a session's events it
//! runs the text encoder (searches), the interest model and the ranking, on WebGPU or the wasm CPU path.
//! The storefront API (history, persistence, worker) builds on it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Float32Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use super::{object, parse_search_options, LoadOpts, State};
use crate::catalog::Manifest;
use crate::error::Error;
use crate::events::{self, Subject};
use crate::pipeline::{self as recommend, Reason, SessionEvent};
use crate::profile;

/// Recommendations from a bundle: `await BundleRecommender.load(manifestUrl, options)`.
#[wasm_bindgen]
pub struct BundleRecommender {
    state: Rc<RefCell<State<recommend::Recommender>>>,
}

impl Default for BundleRecommender {
    fn default() -> Self {
        BundleRecommender::new()
    }
}

/// Every file loading the bundle reads ([`Manifest::bundle_files`]), taken from `files` (a file name to
/// `Uint8Array` object).
fn bundle_files_from(
    manifest: &Manifest,
    files: &JsValue,
    opts: &LoadOpts,
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let entries = manifest.bundle_files()?;
    opts.total.set(entries.iter().map(|f| f.bytes as f64).sum());
    let mut out = HashMap::new();
    for name in entries.into_iter().map(|f| f.file) {
        let bytes = Reflect::get(files, &name.as_str().into())
            .ok()
            .and_then(|f| f.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec))
            .ok_or_else(|| Error::Manifest(format!("`files` has no Uint8Array for `{name}`")))?;
        out.insert(name, bytes);
    }
    Ok(out)
}

/// What loading a bundle reads, from its `manifest.json`: `{ files: [{ file, bytes, sha256 }], modelId,
/// categories }`. The manifest is checked here with the rules `BundleRecommender.load` applies (a
/// `BAD_MANIFEST` error otherwise), so a page can download and cache the files before loading. `files` are
/// the shards, the interest model and the text encoder with its tokenizer (not `items.json`), each path
/// inside the bundle's folder, each `sha256` in lower-case hex.
#[wasm_bindgen(js_name = bundleFiles, unchecked_return_type = "BundleFiles")]
pub fn bundle_files(manifest: &[u8]) -> Result<JsValue, JsValue> {
    let m = Manifest::from_json(manifest)?;
    let files = Array::new();
    for f in m.bundle_files()? {
        files.push(&object(&[
            ("file", f.file.into()),
            ("bytes", (f.bytes as f64).into()),
            ("sha256", f.sha256.to_ascii_lowercase().into()),
        ]));
    }
    let categories = Array::new();
    for c in &m.categories {
        categories.push(&c.into());
    }
    Ok(object(&[
        ("files", files.into()),
        ("modelId", m.model_id.into()),
        ("categories", categories.into()),
    ])
    .into())
}

/// The SHA-256 of `bytes` in lower-case hex: what a manifest records for each file, and what the
/// `manifestSha256` load option pins the manifest to (the same digest in any context, secure or not).
#[wasm_bindgen(js_name = sha256Hex)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::catalog::sha256_hex(bytes)
}

/// The long-term profile after a session ended with interest vector `session`:
/// `decay * old + (1 - decay) * session`. A missing `old`, or one that does not fit (another width, a value
/// that is not finite), is replaced by `session`. `decay` is in [0, 1].
#[wasm_bindgen(js_name = foldProfile)]
pub fn fold_profile(
    #[wasm_bindgen(unchecked_param_type = "Float32Array | undefined")] old: Option<Vec<f32>>,
    session: Vec<f32>,
    decay: f32,
) -> Result<Float32Array, JsValue> {
    let v = profile::fold(old.as_deref(), &session, decay)?;
    Ok(Float32Array::from(v.as_slice()))
}

/// A stored profile's values (read back from storage) as the vector `recommend` takes for a model of width
/// `dim`, or `undefined` when they cannot be one: another width, or a value that is not finite as a 32-bit
/// float (1e39 is not).
#[wasm_bindgen(js_name = storedProfile)]
pub fn stored_profile(
    #[wasm_bindgen(unchecked_param_type = "Float64Array | number[]")] values: Vec<f64>,
    dim: usize,
) -> Option<Float32Array> {
    profile::from_stored(&values, dim).map(|v| Float32Array::from(v.as_slice()))
}

/// Session events from JS: `{ type, itemId }`, or `{ type: "search", query }`, for the types the model
/// reads ([`crate::events`]).
fn events_of(v: &JsValue) -> Result<Vec<SessionEvent>, Error> {
    if !Array::is_array(v) {
        return Err(Error::invalid("events", "must be an array of events"));
    }
    let a: &Array = v.unchecked_ref();
    a.iter()
        .enumerate()
        .map(|(i, e)| {
            let get = |k: &str| Reflect::get(&e, &k.into()).ok().and_then(|v| v.as_string());
            if !e.is_object() {
                return Err(Error::invalid(
                    "events",
                    format!("event {i} is not an object"),
                ));
            }
            let kind = get("type").ok_or_else(|| {
                Error::invalid("events", format!("event {i} has no string `type`"))
            })?;
            let Some(t) = events::get(&kind).filter(|t| t.model_type.is_some()) else {
                return Err(Error::invalid(
                    "events",
                    format!("event {i} has an unknown type `{kind}`"),
                ));
            };
            if t.subject == Subject::Query {
                let query = get("query").ok_or_else(|| {
                    Error::invalid("events", format!("{kind} event {i} has no string `query`"))
                })?;
                return Ok(SessionEvent::Search { query });
            }
            let id = get("itemId").ok_or_else(|| {
                Error::invalid(
                    "events",
                    format!("event {i} (`{kind}`) has no string `itemId`"),
                )
            })?;
            Ok(SessionEvent::Item { kind, id })
        })
        .collect()
}

/// `{ vector: Float32Array | number[], weight }`, or nothing.
fn profile_of(v: &JsValue) -> Result<Option<(Vec<f32>, f32)>, Error> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    if !v.is_object() {
        return Err(Error::invalid("profile", "must be { vector, weight }"));
    }
    let vector = Reflect::get(v, &"vector".into()).unwrap_or(JsValue::UNDEFINED);
    let vector: Vec<f32> = if let Some(a) = vector.dyn_ref::<Float32Array>() {
        a.to_vec()
    } else if Array::is_array(&vector) {
        Array::from(&vector)
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::invalid("profile", "`vector` must hold numbers"))?
    } else {
        return Err(Error::invalid(
            "profile",
            "`vector` must be a Float32Array or an array of numbers",
        ));
    };
    let weight = Reflect::get(v, &"weight".into())
        .ok()
        .and_then(|w| w.as_f64())
        .ok_or_else(|| Error::invalid("profile", "`weight` must be a number"))?;
    Ok(Some((vector, weight as f32)))
}

/// `{ kind, itemId?, query? }` for a reason.
fn reason_js(reason: &Reason) -> js_sys::Object {
    let kind = ("kind", reason.kind().into());
    match reason {
        Reason::Item { id, .. } | Reason::Similar { id } => {
            object(&[kind, ("itemId", id.as_str().into())])
        }
        Reason::Query { query } => object(&[kind, ("query", query.as_str().into())]),
        Reason::Profile | Reason::Popular => object(&[kind]),
    }
}

fn items_js(items: &[recommend::Recommended]) -> Array {
    let out = Array::new();
    for r in items {
        out.push(&object(&[
            ("id", r.id.as_str().into()),
            ("score", r.score.into()),
            ("reason", reason_js(&r.reason).into()),
        ]));
    }
    out
}

fn listing(items: &[recommend::Recommended], backend: &str, ms: f64) -> JsValue {
    object(&[
        ("items", items_js(items).into()),
        ("backend", backend.into()),
        ("totalMs", ms.into()),
    ])
    .into()
}

#[wasm_bindgen]
impl BundleRecommender {
    /// An empty recommender whose methods reject with `NOT_LOADED`. Prefer `BundleRecommender.load`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> BundleRecommender {
        BundleRecommender {
            state: Rc::new(RefCell::new(State::Empty)),
        }
    }

    /// Loads a bundle from `{ manifest, files }`: the manifest's bytes (or text) and every file
    /// `bundleFiles(manifest)` lists, by name. Fetching and caching them is the caller's (the storefront
    /// API's `engine.js` does it); every file is checked against the manifest's size and SHA-256 here.
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "BundleSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions | undefined")] options: JsValue,
    ) -> Result<BundleRecommender, JsValue> {
        let opts = LoadOpts::from_js(&options)?;
        if !source.is_object() {
            return Err(Error::invalid("source", "must be { manifest, files }").into());
        }
        let m = Reflect::get(&source, &"manifest".into()).unwrap_or(JsValue::UNDEFINED);
        let manifest_bytes = m
            .as_string()
            .map(String::into_bytes)
            .or_else(|| m.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec))
            .ok_or_else(|| {
                Error::invalid("source", "`manifest` must be a string or a Uint8Array")
            })?;
        let files = Reflect::get(&source, &"files".into()).unwrap_or(JsValue::UNDEFINED);
        let manifest = Manifest::from_json(&manifest_bytes)?;
        let mut fetched = bundle_files_from(&manifest, &files, &opts)?;
        let rec = recommend::Recommender::load(
            &manifest_bytes,
            |f| {
                fetched
                    .remove(f)
                    .ok_or_else(|| Error::Manifest(format!("`{f}` was not loaded")))
            },
            opts.device,
        )
        .await?;
        if let Some(cb) = &opts.on_progress {
            let ev = object(&[
                ("type", "ready".into()),
                ("backend", rec.model_backend().name().into()),
                ("items", (rec.catalog().len() as f64).into()),
                ("loaded", opts.total.get().into()),
                ("total", opts.total.get().into()),
            ]);
            let _ = cb.call1(&JsValue::NULL, &ev);
        }
        Ok(BundleRecommender {
            state: Rc::new(RefCell::new(State::Ready(Rc::new(rec)))),
        })
    }

    /// Recommends for a session (`events`, oldest first):
    /// `{ items: [{ id, score, reason }], backend, interest, timings, totalMs }`. `profile`, when given, is
    /// `{ vector: Float32Array, weight }`: a long-term interest vector blended into the session's. Item
    /// events whose ids the bundle lacks are skipped; an empty session gets the profile's or popular
    /// items. Safe to call while other calls are in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<BundleRecommendations>")]
    pub fn recommend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SessionEvent[]")] events: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SearchOptions | undefined")] options: JsValue,
        #[wasm_bindgen(unchecked_param_type = "InterestProfile | undefined")] profile: JsValue,
    ) -> js_sys::Promise {
        let prepared = self.ready().and_then(|r| {
            Ok((
                r,
                events_of(&events)?,
                parse_search_options(&options)?,
                profile_of(&profile)?,
            ))
        });
        future_to_promise(async move {
            let (rec, events, opts, profile) = prepared?;
            let t0 = js_sys::Date::now();
            let out = rec
                .recommend(
                    &events,
                    &opts,
                    profile.as_ref().map(|(v, w)| recommend::Profile {
                        vector: v,
                        weight: *w,
                    }),
                )
                .await?;
            let t = out.timings;
            let timings = object(&[
                ("tokenizeMs", t.tokenize_ms.into()),
                ("modelMs", t.model_ms.into()),
                ("rankMs", t.rank_ms.into()),
                ("totalMs", t.total_ms.into()),
            ]);
            Ok(object(&[
                ("items", items_js(&out.items).into()),
                ("backend", rec.model_backend().name().into()),
                (
                    "interest",
                    out.interest
                        .as_deref()
                        .map_or(JsValue::UNDEFINED, |v| Float32Array::from(v).into()),
                ),
                ("timings", timings.into()),
                ("totalMs", (js_sys::Date::now() - t0).into()),
            ])
            .into())
        })
    }

    /// The session's interest vector (`events` as for `recommend`), or `undefined` when no event could be
    /// used. Safe to call while other calls are in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<Float32Array | undefined>")]
    pub fn interest(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SessionEvent[]")] events: JsValue,
    ) -> js_sys::Promise {
        let prepared = self.ready().and_then(|r| Ok((r, events_of(&events)?)));
        future_to_promise(async move {
            let (rec, events) = prepared?;
            Ok(rec
                .interest(&events)
                .await?
                .map_or(JsValue::UNDEFINED, |v| {
                    Float32Array::from(v.as_slice()).into()
                }))
        })
    }

    /// Items like `itemId` (item-to-item), without it: `{ items, backend, totalMs }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<BundleRecommendations>")]
    pub fn similar(
        &self,
        #[wasm_bindgen(js_name = itemId)] item_id: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SearchOptions | undefined")] options: JsValue,
    ) -> js_sys::Promise {
        self.listing_call(item_id, "itemId", &options, |rec, id, opts| async move {
            let items = rec.similar(&id, &opts).await?;
            Ok((items, rec.rank_backend().name()))
        })
    }

    /// Items for a typed query alone (semantic search over the shards): `{ items, backend, totalMs }`.
    #[wasm_bindgen(unchecked_return_type = "Promise<BundleRecommendations>")]
    pub fn search(
        &self,
        query: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SearchOptions | undefined")] options: JsValue,
    ) -> js_sys::Promise {
        self.listing_call(query, "query", &options, |rec, q, opts| async move {
            let items = rec.search(&q, &opts).await?;
            Ok((items, rec.model_backend().name()))
        })
    }

    /// Destroys the interest model's GPU device, as a lost GPU would; later calls reject with `GPU_ERROR`.
    /// For tests of the fallback to the CPU.
    #[wasm_bindgen(js_name = simulateDeviceLoss, skip_typescript)]
    pub fn simulate_device_loss(&self) {
        if let Ok(r) = self.ready() {
            r.simulate_device_loss();
        }
    }

    /// Forgets the encoded searches it keeps (up to 256), so nothing of a wiped session stays in memory.
    #[wasm_bindgen(js_name = forgetQueries)]
    pub fn forget_queries(&self) {
        if let Ok(r) = self.ready() {
            r.forget_queries();
        }
    }

    /// Whether the bundle has item `itemId`.
    pub fn has(&self, #[wasm_bindgen(js_name = itemId)] item_id: &str) -> bool {
        self.ready()
            .is_ok_and(|r| r.catalog().row_of(item_id).is_some())
    }

    /// Width of item and interest vectors; 0 before load.
    #[wasm_bindgen(getter)]
    pub fn dim(&self) -> usize {
        self.ready().map_or(0, |r| r.dim())
    }

    /// Items in the bundle; 0 before load.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> usize {
        self.ready().map_or(0, |r| r.catalog().len())
    }

    /// `"webgpu"` or `"cpu"` (where the interest model runs); `undefined` before load or after dispose.
    #[wasm_bindgen(getter, unchecked_return_type = "\"webgpu\" | \"cpu\" | undefined")]
    pub fn backend(&self) -> JsValue {
        self.ready()
            .map_or(JsValue::UNDEFINED, |r| r.model_backend().name().into())
    }

    /// Whether search events count (the bundle has a text encoder).
    #[wasm_bindgen(getter, js_name = takesSearches)]
    pub fn takes_searches(&self) -> bool {
        self.ready().is_ok_and(|r| r.takes_searches())
    }

    /// Releases everything; later calls reject with `DISPOSED`. Calls in flight finish first.
    pub fn dispose(&self) {
        *self.state.borrow_mut() = State::Disposed;
    }

    fn ready(&self) -> Result<Rc<recommend::Recommender>, Error> {
        self.state.borrow().ready()
    }
}

impl BundleRecommender {
    /// A call that takes one string argument (`name`) and search options, and answers with a listing.
    fn listing_call<F, Fut>(
        &self,
        arg: JsValue,
        name: &'static str,
        options: &JsValue,
        run: F,
    ) -> js_sys::Promise
    where
        F: FnOnce(Rc<recommend::Recommender>, String, crate::rank::SearchOptions) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<(Vec<recommend::Recommended>, &'static str), Error>>
            + 'static,
    {
        let prepared = self.ready().and_then(|r| {
            let a = arg
                .as_string()
                .ok_or_else(|| Error::invalid(name, "must be a string"))?;
            Ok((r, a, parse_search_options(options)?))
        });
        future_to_promise(async move {
            let (rec, a, opts) = prepared?;
            let t0 = js_sys::Date::now();
            let (items, backend) = run(rec, a, opts).await?;
            Ok(listing(&items, backend, js_sys::Date::now() - t0))
        })
    }
}

// `SessionEvent` and `Reason` are generated from the Rust crate (src/events.rs) into contract.d.ts.
#[wasm_bindgen(typescript_custom_section)]
const TS_BUNDLE: &str = r#"
import type { SessionEvent, Reason } from "./contract.js";
export type { SessionEvent } from "./contract.js";

/** Why an item was recommended. */
export type RecommendationReason = Reason;

/** What loading a bundle reads (`bundleFiles`). */
export interface BundleFiles {
  files: { file: string; bytes: number; sha256: string }[];
  modelId: string;
  categories: string[];
}

/** A long-term interest vector and the share, in [0, 1], it takes of the ranking vector. */
export interface InterestProfile {
  vector: Float32Array | number[];
  weight: number;
}

/** Milliseconds per stage: encoding new queries, the interest model, ranking (filters, MMR). */
export interface StageTimings {
  tokenizeMs: number;
  modelMs: number;
  rankMs: number;
  totalMs: number;
}

export interface BundleRecommendations {
  items: { id: string; score: number; reason: RecommendationReason }[];
  backend: "webgpu" | "cpu";
  /** The session's interest vector (recommend only; absent when no event could be used). */
  interest?: Float32Array;
  /** Per stage (recommend only). */
  timings?: StageTimings;
  totalMs: number;
}
"#;
