//! What each fuzz target does with one input, written once for the targets (`fuzz_targets/`) and for the
//! root crate's `tests/fuzz_regressions.rs`, which includes this file with `#[path]` to replay the seeds and
//! the saved crashes under a plain `cargo test`.
//!
//! It may use only what the root crate's tests can: `shelfwise` and its dependencies (`pollster`,
//! `serde_json`) and std. Every function takes its input and must return without panicking: an `Err` from
//! the engine is the expected answer to a bad input. The few `assert!`s are properties that hold for every
//! input the engine accepts.

use shelfwise::backend::cpu::CpuNn;
use shelfwise::catalog::{Catalog, Manifest};
use shelfwise::model::{
    BertWeights, EncoderFiles, InterestModel, ModelConfig, ModelFiles, Step, StepInput,
};
use shelfwise::pipeline::recommender::{Profile, SessionEvent};
use shelfwise::pipeline::{Index, Recommender};
use shelfwise::tokenize::Tokenizer;
use shelfwise::{events, profile};
use shelfwise::{DeviceChoice, SearchOptions, Shard};

/// The files of the tiny bundle in `fuzz/bundle/`, by the names its manifest uses.
pub const BUNDLE_FILES: [&str; 7] = [
    "manifest.json",
    "shard-000.safetensors",
    "interest/config.json",
    "interest/model.safetensors",
    "encoder/config.json",
    "encoder/model.safetensors",
    "encoder/tokenizer.json",
];

/// Splits `data` as `[len: u16 LE][len bytes][rest]` (a short input gives what it has).
pub fn split2(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let n = u16::from_le_bytes([data[0], data[1]]) as usize;
    let rest = &data[2..];
    rest.split_at(n.min(rest.len()))
}

/// A few ranking requests that touch every filter.
fn probe_options() -> Vec<SearchOptions> {
    vec![
        SearchOptions {
            k: 3,
            ..Default::default()
        },
        SearchOptions {
            k: 2,
            in_stock_only: true,
            price_range: Some([0.0, 100.0]),
            popularity_weight: 0.5,
            new_item_boost: 0.1,
            ..Default::default()
        },
        SearchOptions {
            k: 4,
            categories: Some(vec![0, 1]),
            per_category_cap: Some(1),
            mmr_lambda: Some(0.5),
            boosts: [("0".to_string(), 0.25)].into_iter().collect(),
            ..Default::default()
        },
    ]
}

/// `shard`: a shard file's bytes. A shard that loads is read back row by row and ranked on the CPU.
pub fn shard(data: &[u8]) {
    let Ok(shard) = Shard::from_bytes("fuzz.safetensors", data) else {
        return;
    };
    let dim = shard.meta().dim;
    let mut row = vec![0f32; dim];
    for r in 0..shard.len() {
        let _ = shard.id(r);
        shard.row_f32(r, &mut row);
        assert!(row.iter().all(|v| v.is_finite()), "row {r} is not finite");
        let _ = shard.attributes(r);
        let _ = shard.int8_row(r);
        let _ = shard.int8_scale(r);
    }
    let Ok(catalog) = Catalog::from_shards(vec![shard]) else {
        return;
    };
    let first = catalog.id(0).to_string();
    assert_eq!(catalog.row_of(&first), Some(0));
    let index = Index::cpu(catalog);
    let query: Vec<f32> = (0..dim).map(|i| ((i % 7) as f32 - 3.0) / 4.0).collect();
    for opts in probe_options() {
        if let Ok(r) = index.search_cpu(&query, &opts) {
            assert!(r.ids.len() <= opts.k);
            assert_eq!(r.ids.len(), r.scores.len());
        }
    }
}

/// `manifest`: `manifest.json` bytes, as `bundleFiles` (JS) and [`Recommender::load`] read them. `file`
/// gives the bytes of the files the tiny bundle has, so a manifest that keeps their sizes and hashes goes
/// on to load models.
pub fn manifest(data: &[u8], file: &dyn Fn(&str) -> Option<Vec<u8>>) {
    let Ok(m) = Manifest::from_json(data) else {
        return;
    };
    // What `bundleFiles` returns, and a manifest written back reads the same.
    let _ = m.bundle_files();
    let json = serde_json::to_vec(&m).expect("a parsed manifest serialises");
    let back = Manifest::from_json(&json).expect("a written manifest reads back");
    assert_eq!(back, m);
    let Ok(_) = m.bundle() else {
        return;
    };
    let loaded = pollster::block_on(Recommender::load(
        data,
        |f| {
            file(f)
                .ok_or_else(|| shelfwise::Error::Manifest(format!("no file `{f}` in the bundle")))
        },
        DeviceChoice::Cpu,
    ));
    if let Ok(rec) = loaded {
        let view = SessionEvent::Item {
            kind: "view".into(),
            id: rec.catalog().id(0).to_string(),
        };
        let _ = pollster::block_on(rec.recommend(&[view], &SearchOptions::default(), None));
    }
}

/// `model`: `[config length: u16 LE][config.json][weights.safetensors]`, read as a BERT config and weights,
/// as the interest model, and as a text encoder with `tokenizer` (a valid `tokenizer.json`). Models that
/// load run one forward pass on the CPU.
pub fn model(data: &[u8], tokenizer: &[u8]) {
    let (config, weights) = split2(data);
    let Ok(cfg) = ModelConfig::from_json(config) else {
        return;
    };
    let _ = BertWeights::from_safetensors("model.safetensors", weights, &cfg);
    if let Ok(m) = InterestModel::load(config, "model.safetensors", weights, CpuNn) {
        let h = m.dim();
        let mut steps: Vec<Step> = (0..3)
            .map(|i| Step {
                kind: i,
                input: StepInput::Item(
                    (0..h)
                        .map(|j| ((i as usize + j) % 5) as f32 * 0.1)
                        .collect(),
                ),
            })
            .collect();
        if let Some(t) = m.text_dim() {
            steps.push(Step {
                kind: shelfwise::events::SEARCH_TOKEN,
                input: StepInput::Text(vec![0.25; t]),
            });
        }
        if let Ok(v) = pollster::block_on(m.interest(&[steps])) {
            assert_eq!(v.len(), h);
        }
        // Inputs that do not fit the model are errors.
        let bad = vec![vec![Step {
            kind: 0,
            input: StepInput::Item(vec![1.0; h + 1]),
        }]];
        assert!(pollster::block_on(m.interest(&bad)).is_err());
    }
    let files = ModelFiles {
        config,
        weights,
        tokenizer,
    };
    if let Ok(enc) = EncoderFiles::parse(files, Some(16)) {
        if let Ok(enc) = enc.upload(CpuNn) {
            if let Ok(v) = pollster::block_on(enc.embed(&["red shoes", ""])) {
                assert_eq!(v.len(), 2 * enc.dim());
            }
        }
    }
}

/// `tokenizer`: `[max_len: u8][json length: u16 LE][tokenizer.json][text]`: the text is tokenized by the
/// parsed tokenizer when it loads, and always by `known` (a valid `tokenizer.json`).
pub fn tokenizer(data: &[u8], known: &[u8]) {
    let Some((&max_len, rest)) = data.split_first() else {
        return;
    };
    let (json, text) = split2(rest);
    let text = String::from_utf8_lossy(text);
    let texts = [text.as_ref(), "x"];
    let max_len = max_len as usize;
    let run = |t: &Tokenizer| {
        if let Ok(b) = t.encode_batch(&texts) {
            assert_eq!(b.batch, 2);
            assert!(b.len <= t.max_len(), "{} tokens past max_len", b.len);
            assert_eq!(b.ids.len(), b.batch * b.len);
            assert_eq!(b.attention_mask.len(), b.ids.len());
            assert_eq!(b.type_ids.len(), b.ids.len());
        }
    };
    if let Ok(t) = Tokenizer::from_bytes(json, max_len) {
        let _ = t.vocab_size();
        run(&t);
    }
    if let Ok(t) = Tokenizer::from_bytes(known, max_len.max(2)) {
        run(&t);
    }
}

/// One input of `stored_state`: stored profile values, the width they are read for, and a fold and a
/// blend.
#[derive(Clone, Debug, Default)]
pub struct StoredState {
    pub values: Vec<f64>,
    pub dim: usize,
    pub old: Option<Vec<f32>>,
    pub session: Vec<f32>,
    pub decay: f32,
    pub weight: f32,
}

/// `stored_state`: the on-device profile (`storedProfile`, `foldProfile` and the blend at ranking time).
pub fn stored_state(s: &StoredState) {
    let stored = profile::from_stored(&s.values, s.dim);
    if let Some(v) = &stored {
        assert_eq!(v.len(), s.dim);
        assert!(v.iter().all(|x| x.is_finite()));
        let p = Profile {
            vector: v,
            weight: 0.5,
        };
        assert!(p.check(s.dim).is_ok(), "a stored profile fails its check");
    }
    let folded = profile::fold(s.old.as_deref(), &s.session, s.decay);
    if let Ok(f) = &folded {
        assert_eq!(f.len(), s.session.len());
        // What foldProfile returns is stored, then read back with storedProfile.
        let as_stored: Vec<f64> = f.iter().map(|&x| x as f64).collect();
        assert!(
            profile::from_stored(&as_stored, f.len()).is_some(),
            "a folded profile is not a valid stored profile: {f:?}"
        );
    }
    let p = stored.as_deref().map(|v| Profile {
        vector: v,
        weight: s.weight,
    });
    let fits = p.is_some_and(|p| p.check(s.session.len()).is_ok());
    if fits && s.session.iter().all(|x| x.is_finite()) {
        let b = profile::blend(Some(&s.session), p).expect("a session blends");
        assert_eq!(b.len(), s.session.len());
        assert!(
            b.iter().all(|x| x.is_finite()),
            "a blend of finite vectors is not finite: {b:?}"
        );
    }
}

/// What one `recommend` input asks of the tiny bundle.
#[derive(Clone, Debug)]
pub struct RecommendCase {
    pub events: Vec<SessionEvent>,
    pub opts: SearchOptions,
    pub profile: Option<(Vec<f32>, f32)>,
    /// 0: `recommend`, 1: `similar` (to the first item event's id, or `similar_to`), 2: `search`, 3:
    /// `interest`.
    pub call: u8,
    pub similar_to: String,
    pub query: String,
}

/// Loads the tiny bundle (on the CPU) from `file`, which returns the bytes of one of [`BUNDLE_FILES`].
pub fn load_bundle(file: &dyn Fn(&str) -> Option<Vec<u8>>) -> Recommender {
    let manifest = file("manifest.json").expect("the bundle has a manifest");
    pollster::block_on(Recommender::load(
        &manifest,
        |f| file(f).ok_or_else(|| shelfwise::Error::Manifest(format!("no file `{f}`"))),
        DeviceChoice::Cpu,
    ))
    .expect("the tiny bundle loads")
}

/// `recommend`: one request to the loaded bundle.
pub fn recommend(rec: &Recommender, c: &RecommendCase) {
    let profile = c.profile.as_ref().map(|(v, w)| Profile {
        vector: v,
        weight: *w,
    });
    let k = c.opts.k;
    let check = |n: usize| assert!(n <= k, "{n} results for k = {k}");
    match c.call % 4 {
        0 => {
            if let Ok(r) = pollster::block_on(rec.recommend(&c.events, &c.opts, profile)) {
                check(r.items.len());
                if let Some(v) = &r.interest {
                    assert_eq!(v.len(), rec.dim());
                }
                for item in &r.items {
                    let _ = item.reason.kind();
                    assert!(rec.catalog().row_of(&item.id).is_some());
                }
            }
        }
        1 => {
            let id = c
                .events
                .iter()
                .find_map(|e| match e {
                    SessionEvent::Item { id, .. } => Some(id.as_str()),
                    _ => None,
                })
                .unwrap_or(&c.similar_to);
            if let Ok(r) = pollster::block_on(rec.similar(id, &c.opts)) {
                check(r.len());
                assert!(
                    r.iter().all(|x| x.id != id),
                    "similar() returned its own item"
                );
            }
        }
        2 => {
            if let Ok(r) = pollster::block_on(rec.search(&c.query, &c.opts)) {
                check(r.len());
            }
        }
        _ => {
            if let Ok(Some(v)) = pollster::block_on(rec.interest(&c.events)) {
                assert_eq!(v.len(), rec.dim());
            }
        }
    }
}

/// A small deterministic decoder of fuzz input into structured values, in the spirit of
/// `arbitrary::Unstructured` but written here so that `cargo test` in the root crate (which does not depend
/// on `arbitrary`) replays the very same bytes. Past the end of the input every read is 0.
pub struct Bytes<'a> {
    data: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data }
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn le<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for b in &mut out {
            *b = self.u8();
        }
        out
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.le())
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A length in `0..=max`.
    pub fn len(&mut self, max: usize) -> usize {
        self.u8() as usize % (max + 1)
    }

    /// A count, often an edge value (0, 1, `usize::MAX`, ...).
    pub fn usize(&mut self) -> usize {
        match self.u8() % 8 {
            0 => 0,
            1 => 1,
            2 => self.u8() as usize,
            3 => u16::from_le_bytes(self.le()) as usize,
            4 => usize::MAX,
            5 => u32::MAX as usize,
            6 => 999 + self.u8() as usize % 4,
            _ => u64::from_le_bytes(self.le()) as usize,
        }
    }

    /// An f32, often a special value (NaN, infinities, the largest and smallest, -0, a subnormal).
    pub fn f32(&mut self) -> f32 {
        match self.u8() % 16 {
            0 => 0.0,
            1 => 1.0,
            2 => -1.0,
            3 => 0.5,
            4 => f32::NAN,
            5 => f32::INFINITY,
            6 => f32::NEG_INFINITY,
            7 => f32::MAX,
            8 => f32::MIN,
            9 => f32::MIN_POSITIVE,
            10 => -0.0,
            11 => 1e-40,
            12 => self.u8() as f32 / 64.0 - 2.0,
            _ => f32::from_bits(self.u32()),
        }
    }

    /// An f64, often one that is finite as an f64 and not as an f32.
    pub fn f64(&mut self) -> f64 {
        match self.u8() % 8 {
            0 => 0.0,
            1 => 1e39,
            2 => -1e39,
            3 => f64::NAN,
            4 => f64::MAX,
            5 => f32::MAX as f64 * (1.0 + f64::EPSILON),
            6 => self.u8() as f64 / 32.0 - 4.0,
            _ => f64::from_bits(u64::from_le_bytes(self.le())),
        }
    }

    pub fn f32s(&mut self, max: usize) -> Vec<f32> {
        (0..self.len(max)).map(|_| self.f32()).collect()
    }

    /// Up to `max` bytes, as (lossy) UTF-8.
    pub fn string(&mut self, max: usize) -> String {
        let n = self.len(max).min(self.data.len());
        let (s, rest) = self.data.split_at(n);
        self.data = rest;
        String::from_utf8_lossy(s).into_owned()
    }

    /// One of `names`, or any string.
    pub fn pick(&mut self, names: &[&str]) -> String {
        let i = self.u8() as usize;
        match names.get(i % (names.len() + 1)) {
            Some(s) => s.to_string(),
            None => self.string(24),
        }
    }
}

impl StoredState {
    /// Decodes one `stored_state` input.
    pub fn decode(data: &[u8]) -> StoredState {
        let mut b = Bytes::new(data);
        let values: Vec<f64> = (0..b.len(40)).map(|_| b.f64()).collect();
        let dim = match b.u8() % 4 {
            0 => values.len(),
            1 => b.len(40),
            2 => b.usize(),
            _ => values.len() + 1,
        };
        let old = b.bool().then(|| b.f32s(40));
        let session = b.f32s(40);
        StoredState {
            values,
            dim,
            old,
            session,
            decay: b.f32(),
            weight: b.f32(),
        }
    }
}

/// Event type names to pick from: every type of [`events::EVENT_TYPES`], in its order, and an empty one.
fn kinds() -> Vec<&'static str> {
    events::EVENT_TYPES
        .iter()
        .map(|t| t.name)
        .chain([""])
        .collect()
}

/// The item event types the model reads.
fn item_kinds() -> Vec<&'static str> {
    events::EVENT_TYPES
        .iter()
        .filter(|t| t.subject == events::Subject::Item && t.model_type.is_some())
        .map(|t| t.name)
        .collect()
}

/// Queries to pick from, so that searches repeat (and hit the query cache).
const QUERIES: [&str; 6] = [
    "red shoes",
    "warm winter boots",
    "   ",
    "",
    "the",
    "ß\u{0}\u{202e}",
];

impl RecommendCase {
    /// Decodes one `recommend` input against a catalogue whose ids are `ids`.
    pub fn decode(data: &[u8], ids: &[&str]) -> RecommendCase {
        let mut b = Bytes::new(data);
        let mut id_names: Vec<&str> = ids.to_vec();
        id_names.extend(["", "unknown-item"]);
        let (kinds, item_kinds) = (kinds(), item_kinds());
        let call = b.u8();
        let events = (0..b.len(12))
            .map(|_| match b.u8() % 4 {
                0 | 1 => SessionEvent::Item {
                    kind: b.pick(&item_kinds),
                    id: b.pick(&id_names),
                },
                2 => SessionEvent::Search {
                    query: b.pick(&QUERIES),
                },
                _ => SessionEvent::Item {
                    kind: b.pick(&kinds),
                    id: b.pick(&id_names),
                },
            })
            .collect();
        let mut o = SearchOptions {
            k: match b.u8() % 4 {
                0 => b.usize(),
                _ => b.len(20),
            },
            ..Default::default()
        };
        let flags = b.u32();
        let on = |bit: u32| flags & (1 << bit) != 0;
        if on(0) {
            o.weights = Some(b.f32s(3));
        }
        if on(1) {
            o.exclude = (0..b.len(6)).map(|_| b.pick(&id_names)).collect();
        }
        if on(2) {
            o.allow = Some((0..b.len(6)).map(|_| b.pick(&id_names)).collect());
        }
        if on(3) {
            o.categories = Some(
                (0..b.len(5))
                    .map(|_| match b.u8() % 3 {
                        0 => b.u32(),
                        _ => b.u8() as u32 % 5,
                    })
                    .collect(),
            );
        }
        if on(4) {
            o.price_range = Some([b.f32(), b.f32()]);
        }
        o.in_stock_only = on(5);
        if on(6) {
            o.popularity_weight = b.f32();
        }
        if on(7) {
            o.new_item_boost = b.f32();
        }
        if on(8) {
            for _ in 0..b.len(4) {
                let key = b.pick(&["0", "1", "2", "3", " 1 ", "-1", "4294967296"]);
                o.boosts.insert(key, b.f32());
            }
        }
        if on(9) {
            o.mmr_lambda = Some(b.f32());
        }
        if on(10) {
            o.mmr_candidates = Some(b.usize());
        }
        if on(11) {
            o.per_category_cap = Some(b.usize());
        }
        let profile = on(12).then(|| {
            let v = if on(13) { vec![0.25; 8] } else { b.f32s(10) };
            (v, b.f32())
        });
        RecommendCase {
            events,
            opts: o,
            profile,
            call,
            similar_to: b.pick(&id_names),
            query: b.pick(&QUERIES),
        }
    }
}
