//! The JS `BundleRecommender`: a whole bundle (`shelfwise export`) in the browser. Given a session's events it
//! runs the text encoder (searches), the interest model and the ranking, on WebGPU or the wasm CPU path.
//! The storefront API (history, persistence, worker) builds on it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use js_sys::{Array, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use super::{absolute_url, fetch_bytes, object, parse_search_options, LoadOpts, State};
use crate::catalog::Manifest;
use crate::error::Error;
use crate::recommend::{self, Reason, SessionEvent};

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

/// Every file a manifest lists, fetched (relative to `base`) or taken from `files`.
async fn bundle_files(
    manifest: &Manifest,
    base: Option<&str>,
    files: &JsValue,
    opts: &LoadOpts,
) -> Result<HashMap<String, Vec<u8>>, Error> {
    let mut names: Vec<(String, u64)> = manifest
        .shards
        .iter()
        .map(|s| (s.file.clone(), s.bytes))
        .collect();
    if let Some(r) = &manifest.recommender {
        // items.json is display metadata: the page fetches it if it wants it.
        let items = r.items.as_ref().map(|f| f.file.as_str());
        names.extend(
            r.files()
                .into_iter()
                .filter(|f| Some(f.file.as_str()) != items)
                .map(|f| (f.file.clone(), f.bytes)),
        );
    }
    opts.total.set(names.iter().map(|n| n.1 as f64).sum());
    let mut out = HashMap::new();
    let mut loaded = 0.0;
    for (name, _) in names {
        let bytes = match base {
            Some(b) => fetch_bytes(&absolute_url(&name, Some(b))?).await?,
            None => Reflect::get(files, &name.as_str().into())
                .ok()
                .and_then(|f| f.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec))
                .ok_or_else(|| {
                    Error::Manifest(format!("`files` has no Uint8Array for `{name}`"))
                })?,
        };
        loaded += bytes.len() as f64;
        opts.progress(&name, loaded);
        out.insert(name, bytes);
    }
    Ok(out)
}

/// The `kind` of a reason, as the JS API names it.
fn reason_kind(event: &str) -> &'static str {
    match event {
        "view" => "viewed",
        "click" => "clicked",
        "add_to_cart" => "added_to_cart",
        "purchase" => "purchased",
        "favorite" => "favorited",
        "rate" => "rated",
        _ => "interacted",
    }
}

/// Session events from JS: `{ type, itemId }` or `{ type: "search", query }`.
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
            if kind == "search" {
                let query = get("query").ok_or_else(|| {
                    Error::invalid("events", format!("search event {i} has no string `query`"))
                })?;
                return Ok(SessionEvent::Search { query });
            }
            match crate::model::interest::event_type(&kind) {
                Some(_) => {}
                None => {
                    return Err(Error::invalid(
                        "events",
                        format!("event {i} has an unknown type `{kind}`"),
                    ))
                }
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

#[wasm_bindgen]
impl BundleRecommender {
    /// An empty recommender whose methods reject with `NOT_LOADED`. Prefer `BundleRecommender.load`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> BundleRecommender {
        BundleRecommender {
            state: Rc::new(RefCell::new(State::Empty)),
        }
    }

    /// Loads a bundle from its `manifest.json` URL (or `{ manifest, files }`): every file is checked
    /// against the manifest's SHA-256 before use.
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "CatalogSource")] source: JsValue,
        #[wasm_bindgen(unchecked_param_type = "LoadOptions | undefined")] options: JsValue,
    ) -> Result<BundleRecommender, JsValue> {
        let opts = LoadOpts::from_js(&options)?;
        let url = source
            .as_string()
            .or_else(|| source.dyn_ref::<web_sys::Url>().map(|u| u.href()));
        let (manifest_bytes, base, files) = if let Some(url) = url {
            let base = absolute_url(&url, None)?;
            (fetch_bytes(&base).await?, Some(base), JsValue::UNDEFINED)
        } else if source.is_object() {
            let m = Reflect::get(&source, &"manifest".into()).unwrap_or(JsValue::UNDEFINED);
            let bytes = m
                .as_string()
                .map(String::into_bytes)
                .or_else(|| m.dyn_ref::<Uint8Array>().map(Uint8Array::to_vec))
                .ok_or_else(|| {
                    Error::invalid("source", "`manifest` must be a string or a Uint8Array")
                })?;
            let files = Reflect::get(&source, &"files".into()).unwrap_or(JsValue::UNDEFINED);
            (bytes, None, files)
        } else {
            return Err(
                Error::invalid("source", "must be a manifest URL or { manifest, files }").into(),
            );
        };
        let manifest = Manifest::from_json(&manifest_bytes)?;
        let mut fetched = bundle_files(&manifest, base.as_deref(), &files, &opts).await?;
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
                ("status", "ready".into()),
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

    /// Recommends for a session (`events`, oldest first): `{ items: [{ id, score, reason }], backend }`.
    /// Item events whose ids the bundle lacks are skipped; an empty session gets popular items. Safe to
    /// call while other calls are in flight.
    #[wasm_bindgen(unchecked_return_type = "Promise<BundleRecommendations>")]
    pub fn recommend(
        &self,
        #[wasm_bindgen(unchecked_param_type = "SessionEvent[]")] events: JsValue,
        #[wasm_bindgen(unchecked_param_type = "SearchOptions | undefined")] options: JsValue,
    ) -> js_sys::Promise {
        let prepared = self
            .ready()
            .and_then(|r| Ok((r, events_of(&events)?, parse_search_options(&options)?)));
        future_to_promise(async move {
            let (rec, events, opts) = prepared?;
            let t0 = js_sys::Date::now();
            let out = rec.recommend(&events, &opts).await?;
            let items = Array::new();
            for r in &out {
                let reason = match &r.reason {
                    Reason::Item { kind, id } => object(&[
                        ("kind", reason_kind(kind).into()),
                        ("itemId", id.as_str().into()),
                    ]),
                    Reason::Query { query } => object(&[
                        ("kind", "searched".into()),
                        ("query", query.as_str().into()),
                    ]),
                    Reason::Popular => object(&[("kind", "popular".into())]),
                };
                items.push(&object(&[
                    ("id", r.id.as_str().into()),
                    ("score", r.score.into()),
                    ("reason", reason.into()),
                ]));
            }
            Ok(object(&[
                ("items", items.into()),
                ("backend", rec.model_backend().name().into()),
                ("totalMs", (js_sys::Date::now() - t0).into()),
            ])
            .into())
        })
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

#[wasm_bindgen(typescript_custom_section)]
const TS_BUNDLE: &str = r#"
/** One event of a session, oldest first. */
export type SessionEvent =
  | { type: "view" | "click" | "add_to_cart" | "purchase" | "favorite" | "rate"; itemId: string }
  | { type: "search"; query: string };

/** Why an item was recommended. */
export type RecommendationReason =
  | { kind: "viewed" | "clicked" | "added_to_cart" | "purchased" | "favorited" | "rated"; itemId: string }
  | { kind: "searched"; query: string }
  | { kind: "popular" };

export interface BundleRecommendations {
  items: { id: string; score: number; reason: RecommendationReason }[];
  backend: "webgpu" | "cpu";
  totalMs: number;
}
"#;
