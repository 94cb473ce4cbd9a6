//! The ranking engine: a query and the store's rules in, the exact best `k` items out.
//!
//! A request goes through three stages, whichever backend scores it:
//! 1. [`Plan::new`] validates the query and options against the catalogue and turns them into flat tables
//!    (the combined query, an int8 copy of it, row and category bitsets, boosts);
//! 2. a backend streams every row and returns the best `m` candidates as rank keys ([`topk`]);
//! 3. [`select`] applies MMR diversity and the per-category cap to those candidates.
//!
//! Scores are `dot(query, row) * row_scale + popularity_weight * popularity + boost[category]`. For int8
//! shards the query is quantised to int8 too, and the dot product is an exact integer.

pub mod select;
pub mod topk;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::shard::{quantize_i8, Dtype};

/// Default number of results.
pub const DEFAULT_K: usize = 10;
/// Largest MMR candidate pool (MMR costs `k * candidates * dim`).
pub const MAX_MMR_CANDIDATES: usize = 1000;

/// Request flags, mirrored by the `FLAG_*` constants in `shaders/score_topk.wgsl`.
pub(crate) mod flags {
    pub const MASK: u32 = 1;
    pub const CATS: u32 = 2;
    pub const PRICE: u32 = 4;
    pub const STOCK: u32 = 8;
    pub const POP: u32 = 16;
    pub const BOOST: u32 = 32;
    pub const NEW: u32 = 64;
}

/// What to rank and how. Every field is optional in JS (`camelCase`); unknown fields are an error, so a
/// typo never silently does nothing.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct SearchOptions {
    /// Number of results, at least 1. When `k` exceeds the number of eligible items, all of them are
    /// returned.
    pub k: usize,
    /// Weights for several query vectors passed together (`m * dim` values); `None` means one vector,
    /// or equal weights of 1.
    pub weights: Option<Vec<f32>>,
    /// Item ids never to return. Unknown ids are ignored.
    pub exclude: Vec<String>,
    /// When set, only these item ids may be returned. Unknown ids are ignored.
    pub allow: Option<Vec<String>>,
    /// When set, only items in one of these categories may be returned.
    pub categories: Option<Vec<u32>>,
    /// Inclusive `[min, max]` price range.
    pub price_range: Option<[f32; 2]>,
    /// Only items whose `in_stock` flag is set.
    pub in_stock_only: bool,
    /// Added to each score: `popularity_weight * popularity[item]`.
    pub popularity_weight: f32,
    /// Added to the score of every new item: one whose `popularity` is 0, which `shelfwise export` gives
    /// items with no interaction in the events it is given. New items' vectors come from their
    /// text alone, and the model spreads its belief over them thinly, so they rarely reach the top `k`
    /// unaided; a boost trades some relevance for their exposure. 0 (the default) leaves scores as they
    /// are. EVALUATION.md measures both sides on MovieLens-100k.
    pub new_item_boost: f32,
    /// Added to the score of every item of a category: `{ "<category id>": boost }`.
    pub boosts: BTreeMap<String, f32>,
    /// MMR trade-off in `[0, 1]`: 1 ranks by relevance alone, lower values favour items unlike those
    /// already chosen. `None` turns MMR off.
    pub mmr_lambda: Option<f32>,
    /// How many top candidates MMR re-ranks (default `max(4k, 50)`, at most 1000).
    pub mmr_candidates: Option<usize>,
    /// At most this many results per category.
    pub per_category_cap: Option<usize>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            k: DEFAULT_K,
            weights: None,
            exclude: Vec::new(),
            allow: None,
            categories: None,
            price_range: None,
            in_stock_only: false,
            popularity_weight: 0.0,
            new_item_boost: 0.0,
            boosts: BTreeMap::new(),
            mmr_lambda: None,
            mmr_candidates: None,
            per_category_cap: None,
        }
    }
}

/// Which backend scored a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    WebGpu,
}

impl Backend {
    /// `"cpu"` or `"webgpu"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::WebGpu => "webgpu",
        }
    }
}

/// Milliseconds spent in each stage of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    pub plan_ms: f64,
    pub score_ms: f64,
    pub select_ms: f64,
    pub total_ms: f64,
}

/// The ranked result, best first.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResult {
    /// Global rows of the results.
    pub rows: Vec<u32>,
    /// Item ids.
    pub ids: Vec<String>,
    /// Relevance scores (before MMR, which only reorders).
    pub scores: Vec<f32>,
    pub backend: Backend,
    pub timings: Timings,
}

/// A backend that scores a whole catalogue for a [`Plan`]: stage 2 of a request. The CPU and the GPU each
/// implement it once (`crate::backend::cpu::CpuRank`, `crate::backend::gpu::GpuIndex`); the pipeline's
/// `Index` picks one per request.
pub(crate) trait RankBackend {
    /// Which backend this is, as results report it.
    fn backend(&self) -> Backend;

    /// Most candidates one request may ask for.
    fn max_candidates(&self) -> usize;

    /// The best `m` (`1..=max_candidates()`) rows of `catalog` that pass `plan`'s filters, as rank keys
    /// ([`topk::rank_key`]), best first.
    fn candidates(
        &self,
        catalog: &Catalog,
        plan: &Plan,
        m: usize,
    ) -> impl std::future::Future<Output = Result<Vec<u64>>>;
}

/// A validated request in the flat form the backends consume.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// Combined query `[dim]`.
    pub q: Vec<f32>,
    /// Int8 query `[dim]` and its scale (int8 catalogues only).
    pub q8: Vec<i8>,
    pub qscale: f32,
    pub k: usize,
    /// Candidates the backend must return before selection.
    pub m: usize,
    pub flags: u32,
    /// Eligible rows, one bit per global row (`flags::MASK`).
    pub mask: Vec<u32>,
    /// Allowed categories, one bit per category (`flags::CATS`).
    pub cat_allow: Vec<u32>,
    /// Boost per category (`flags::BOOST`).
    pub cat_boost: Vec<f32>,
    pub price: [f32; 2],
    pub pop_weight: f32,
    /// Added to the scores of rows whose popularity is 0 (`flags::NEW`).
    pub new_boost: f32,
    pub mmr_lambda: Option<f32>,
    pub cap: Option<usize>,
}

impl Plan {
    /// Validates `query` (`m * dim` values, `m >= 1`) and `opts` against `catalog`.
    pub fn new(catalog: &Catalog, query: &[f32], opts: &SearchOptions) -> Result<Plan> {
        let q = combine(query, opts.weights.as_deref(), catalog.dim())?;
        if opts.k == 0 {
            return Err(Error::invalid("k", "must be at least 1"));
        }
        let n = catalog.len();
        let mask = row_mask(catalog, opts);
        let cat_allow = category_allow(catalog, opts)?;
        let cat_boost = category_boosts(catalog, opts)?;
        let (mut flags, price) = scalar_filters(catalog, opts)?;
        if mask.is_some() {
            flags |= flags::MASK;
        }
        if cat_allow.is_some() {
            flags |= flags::CATS;
        }
        if cat_boost.is_some() {
            flags |= flags::BOOST;
        }
        check_selection(catalog, opts)?;
        let k = opts.k.min(n);
        let m = candidate_count(opts, k, n)?;
        let (q8, qscale) = quantize_query(catalog, &q);
        Ok(Plan {
            q,
            q8,
            qscale,
            k,
            m,
            flags,
            mask: mask.unwrap_or_default(),
            cat_allow: cat_allow.unwrap_or_default(),
            cat_boost: cat_boost.unwrap_or_default(),
            price,
            pop_weight: opts.popularity_weight,
            new_boost: opts.new_item_boost,
            mmr_lambda: opts.mmr_lambda,
            cap: opts.per_category_cap,
        })
    }

    /// Whether the catalogue is int8, so the backends score the quantised query.
    pub fn is_int8(&self) -> bool {
        !self.q8.is_empty()
    }

    /// Replaces the query (one `dim`-wide vector, no weights), as [`Plan::new`] would have taken it.
    pub fn set_query(&mut self, catalog: &Catalog, query: &[f32]) -> Result<()> {
        self.q = combine(query, None, catalog.dim())?;
        if catalog.dtype() == Dtype::I8 {
            self.q8 = vec![0i8; self.q.len()];
            self.qscale = quantize_i8(&self.q, &mut self.q8);
        }
        Ok(())
    }

    /// Whether global row `row` passes the row mask.
    #[inline(always)]
    pub fn mask_ok(&self, row: usize) -> bool {
        self.flags & flags::MASK == 0 || (self.mask[row >> 5] >> (row & 31)) & 1 == 1
    }
}

/// The eligible rows (`flags::MASK`), one bit per global row: `allow` (or every row) less `exclude`; `None`
/// when the request names neither.
fn row_mask(catalog: &Catalog, opts: &SearchOptions) -> Option<Vec<u32>> {
    if opts.allow.is_none() && opts.exclude.is_empty() {
        return None;
    }
    let n = catalog.len();
    let words = n.div_ceil(32);
    let mut mask = match &opts.allow {
        Some(allow) => {
            let mut m = vec![0u32; words];
            for id in allow {
                if let Some(r) = catalog.row_of(id) {
                    m[r >> 5] |= 1 << (r & 31);
                }
            }
            m
        }
        None => {
            let mut m = vec![u32::MAX; words];
            if !n.is_multiple_of(32) {
                m[words - 1] = (1u32 << (n % 32)) - 1;
            }
            m
        }
    };
    for id in &opts.exclude {
        if let Some(r) = catalog.row_of(id) {
            mask[r >> 5] &= !(1 << (r & 31));
        }
    }
    Some(mask)
}

/// Category `c`, when it is below `count` (the catalogue's number of categories).
fn check_category(c: u32, count: u32) -> Result<u32> {
    if c >= count {
        Err(Error::UnknownCategory { id: c, count })
    } else {
        Ok(c)
    }
}

/// The allowed categories (`flags::CATS`), one bit per category; `None` when the request names none.
fn category_allow(catalog: &Catalog, opts: &SearchOptions) -> Result<Option<Vec<u32>>> {
    let Some(cats) = &opts.categories else {
        return Ok(None);
    };
    catalog.require("categories", "category")?;
    let nc = catalog.num_categories();
    let mut allow = vec![0u32; (nc as usize).div_ceil(32).max(1)];
    for &c in cats {
        let c = check_category(c, nc)?;
        allow[(c >> 5) as usize] |= 1 << (c & 31);
    }
    Ok(Some(allow))
}

/// The boost of each category (`flags::BOOST`), 0 where the request gives none; `None` when it gives no
/// boosts at all.
fn category_boosts(catalog: &Catalog, opts: &SearchOptions) -> Result<Option<Vec<f32>>> {
    if opts.boosts.is_empty() {
        return Ok(None);
    }
    catalog.require("boosts", "category")?;
    let nc = catalog.num_categories();
    let mut boosts = vec![0f32; nc as usize];
    for (key, &b) in &opts.boosts {
        let c: u32 = key
            .trim()
            .parse()
            .map_err(|_| Error::invalid("boosts", format!("key `{key}` is not a category id")))?;
        let c = check_category(c, nc)?;
        if !b.is_finite() {
            return Err(Error::invalid(
                "boosts",
                format!("boost for category {c} is not finite"),
            ));
        }
        boosts[c as usize] = b;
    }
    Ok(Some(boosts))
}

/// Checks the per-row filters and score terms (price range, stock, popularity weight, new-item boost)
/// against the catalogue's attributes, and returns their flags and the price range (unbounded when unset).
fn scalar_filters(catalog: &Catalog, opts: &SearchOptions) -> Result<(u32, [f32; 2])> {
    let mut flags = 0;
    let mut price = [f32::NEG_INFINITY, f32::INFINITY];
    if let Some([lo, hi]) = opts.price_range {
        catalog.require("priceRange", "price")?;
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::invalid(
                "priceRange",
                format!("[{lo}, {hi}] is not a range"),
            ));
        }
        flags |= flags::PRICE;
        price = [lo, hi];
    }
    if opts.in_stock_only {
        catalog.require("inStockOnly", "in_stock")?;
        flags |= flags::STOCK;
    }
    if !opts.popularity_weight.is_finite() {
        return Err(Error::invalid("popularityWeight", "must be finite"));
    }
    if opts.popularity_weight != 0.0 {
        catalog.require("popularityWeight", "popularity")?;
        flags |= flags::POP;
    }
    if !opts.new_item_boost.is_finite() {
        return Err(Error::invalid("newItemBoost", "must be finite"));
    }
    if opts.new_item_boost != 0.0 {
        catalog.require("newItemBoost", "popularity")?;
        flags |= flags::NEW;
    }
    Ok((flags, price))
}

/// Checks the selection options: the MMR trade-off and the per-category cap.
fn check_selection(catalog: &Catalog, opts: &SearchOptions) -> Result<()> {
    if let Some(l) = opts.mmr_lambda {
        if !(0.0..=1.0).contains(&l) {
            return Err(Error::invalid("mmrLambda", format!("{l} is not in [0, 1]")));
        }
    }
    if let Some(c) = opts.per_category_cap {
        catalog.require("perCategoryCap", "category")?;
        if c == 0 {
            return Err(Error::invalid("perCategoryCap", "must be at least 1"));
        }
    }
    Ok(())
}

/// How many candidates the backend returns for `k` results out of `n` rows: `k`, or the MMR pool.
fn candidate_count(opts: &SearchOptions, k: usize, n: usize) -> Result<usize> {
    if opts.mmr_lambda.is_some() && k > MAX_MMR_CANDIDATES {
        return Err(Error::invalid(
            "k",
            format!("MMR serves at most {MAX_MMR_CANDIDATES} results"),
        ));
    }
    let m = match (opts.mmr_lambda, opts.mmr_candidates) {
        (Some(_), Some(0)) => return Err(Error::invalid("mmrCandidates", "must be at least 1")),
        (Some(_), Some(c)) if c > MAX_MMR_CANDIDATES => {
            return Err(Error::invalid(
                "mmrCandidates",
                format!("must be at most {MAX_MMR_CANDIDATES}"),
            ))
        }
        (Some(_), Some(c)) => c.max(k),
        (Some(_), None) => (4 * k).clamp(50, MAX_MMR_CANDIDATES),
        (None, _) => k,
    };
    Ok(m.min(n))
}

/// The int8 copy of `q` and its scale for an int8 catalogue; empty and 1 otherwise.
fn quantize_query(catalog: &Catalog, q: &[f32]) -> (Vec<i8>, f32) {
    if catalog.dtype() == Dtype::I8 {
        let mut q8 = vec![0i8; catalog.dim()];
        let s = quantize_i8(q, &mut q8);
        (q8, s)
    } else {
        (Vec::new(), 1.0)
    }
}

/// Sums `m` query vectors of `dim` values with `weights` (all 1 when `None`), and checks that the result
/// is finite.
pub fn combine(query: &[f32], weights: Option<&[f32]>, dim: usize) -> Result<Vec<f32>> {
    if query.is_empty() || !query.len().is_multiple_of(dim) {
        return Err(Error::Dimension {
            context: "query".into(),
            expected: dim,
            found: query.len(),
        });
    }
    let m = query.len() / dim;
    if let Some(w) = weights {
        if w.len() != m {
            return Err(Error::invalid(
                "weights",
                format!("{} weights for {m} query vectors", w.len()),
            ));
        }
        if w.iter().any(|x| !x.is_finite()) {
            return Err(Error::invalid("weights", "must be finite"));
        }
    }
    if let Some(i) = query.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidQuery(format!("value {i} is {}", query[i])));
    }
    let mut q = vec![0f32; dim];
    for (j, v) in query.chunks_exact(dim).enumerate() {
        let w = weights.map_or(1.0, |w| w[j]);
        for (a, b) in q.iter_mut().zip(v) {
            *a += w * b;
        }
    }
    if q.iter().any(|v| !v.is_finite()) {
        return Err(Error::InvalidQuery("the weighted sum overflows".into()));
    }
    Ok(q)
}
