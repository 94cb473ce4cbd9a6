//! shelfwise's two input formats (docs/DATA.md), their reader, and the MovieLens-100k converter.
//!
//! - `catalog.jsonl`: one item per line: `id`, `title`, `categories`, and optionally `year`, `price`,
//!   `in_stock`, `popularity` and `text`.
//! - `events.jsonl`: one event per line: `session`, `type`, `ts`, and `item` (or `query` for a search),
//!   optionally `value` (a rating).
//!
//! Reading checks every line: a malformed one is an error naming the file and line, unless `skip_bad` is
//! set, which skips it and counts it. Duplicate item ids, events naming unknown items and an empty
//! catalogue are always errors.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use shelfwise::events::{self, EventType, Subject};

/// One catalogue item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub year: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_stock: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub popularity: Option<f32>,
    /// Free text beyond the title (a description), used by the text encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// What the shopper did: one of the event types the interest model reads (`shelfwise::events`), by its
/// name in `events.jsonl`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventKind(&'static EventType);

impl EventKind {
    /// The type named `name`, when the model reads it.
    pub fn named(name: &str) -> Option<EventKind> {
        events::get(name)
            .filter(|t| t.model_type.is_some())
            .map(EventKind)
    }

    /// The name in events.jsonl (and in `shelfwise::events::MODEL_TYPES`).
    pub fn name(self) -> &'static str {
        self.0.name
    }

    /// The model's token-type id.
    pub fn model_type(self) -> u32 {
        self.0.model_type.unwrap_or_default()
    }

    /// A typed query (the event has `query` instead of `item`).
    pub fn is_search(self) -> bool {
        self.0.subject == Subject::Query
    }
}

impl Serialize for EventKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        EventKind::named(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown event type `{name}`, expected one of {}",
                events::MODEL_TYPES.join(", ")
            ))
        })
    }
}

impl Item {
    /// Strings a shopper looking for this item might type: its title (without a trailing year or a moved
    /// article, lower case) and its categories.
    pub fn queries(&self) -> Vec<String> {
        let mut title = self.title.trim();
        if let Some(open) = title.rfind(" (") {
            if title.ends_with(')') {
                title = &title[..open];
            }
        }
        for article in [
            ", The", ", A", ", An", ", Les", ", La", ", Le", ", Il", ", Das",
        ] {
            if let Some(t) = title.strip_suffix(article) {
                title = t;
            }
        }
        let mut out = Vec::new();
        if !title.is_empty() {
            out.push(title.to_lowercase());
        }
        if !self.categories.is_empty() {
            out.push(self.categories.join(" ").to_lowercase());
        }
        out
    }

    /// What the text encoder reads for this item: title, categories, then any description.
    pub fn text(&self) -> String {
        let mut t = self.title.trim().to_string();
        if !self.categories.is_empty() {
            t.push_str(". ");
            t.push_str(&self.categories.join(", "));
        }
        if let Some(x) = self
            .text
            .as_deref()
            .map(str::trim)
            .filter(|x| !x.is_empty())
        {
            t.push_str(". ");
            t.push_str(x);
        }
        t
    }
}

/// One event of a session (or of a user, when sessions are users).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub session: String,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// Seconds since the Unix epoch (fractions allowed).
    pub ts: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f32>,
}

impl Item {
    fn check(&self) -> Result<()> {
        if self.id.trim().is_empty() {
            bail!("the id is empty");
        }
        for (name, v) in [("price", self.price), ("popularity", self.popularity)] {
            if v.is_some_and(|v| !v.is_finite()) {
                bail!("{name} must be a finite number");
            }
        }
        Ok(())
    }
}

impl Event {
    fn check(&self) -> Result<()> {
        if self.session.trim().is_empty() {
            bail!("the session is empty");
        }
        if !self.ts.is_finite() {
            bail!("ts must be a finite number");
        }
        if self.value.is_some_and(|v| !v.is_finite()) {
            bail!("value must be a finite number");
        }
        match (self.kind.is_search(), &self.item, &self.query) {
            (true, None, Some(q)) if !q.trim().is_empty() => Ok(()),
            (true, _, _) => {
                bail!(
                    "a {} event needs a non-empty `query` and no `item`",
                    self.kind.name()
                )
            }
            (false, Some(i), None) if !i.is_empty() => Ok(()),
            _ => bail!(
                "a {} event needs an `item` and no `query`",
                self.kind.name()
            ),
        }
    }
}

/// A catalogue and its events, checked against each other.
#[derive(Debug)]
pub struct Dataset {
    pub items: Vec<Item>,
    /// In file order.
    pub events: Vec<Event>,
    /// Lines skipped with `skip_bad`: (catalogue, events).
    pub skipped: (usize, usize),
}

/// Parses every non-blank line of `path` as `T`, checked by `check`.
fn read_jsonl<T: for<'de> Deserialize<'de>>(
    path: &Path,
    skip_bad: bool,
    check: impl Fn(&T) -> Result<()>,
) -> Result<(Vec<(usize, T)>, usize)> {
    let f = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for (n, line) in BufReader::new(f).lines().enumerate() {
        let line =
            line.with_context(|| format!("{}:{}: unreadable line", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<T>(&line)
            .map_err(anyhow::Error::from)
            .and_then(|v| check(&v).map(|_| v));
        match parsed {
            Ok(v) => out.push((n + 1, v)),
            Err(e) if skip_bad => {
                skipped += 1;
                if skipped <= 5 {
                    eprintln!("{}:{}: skipped: {e}", path.display(), n + 1);
                }
            }
            Err(e) => bail!(
                "{}:{}: {e} (--skip-bad skips such lines)",
                path.display(),
                n + 1
            ),
        }
    }
    Ok((out, skipped))
}

/// Reads `catalog.jsonl` alone (no line may be bad), with the same checks as [`Dataset::load`].
pub fn read_catalog(catalog: &Path) -> Result<Vec<Item>> {
    let (items, _, _) = read_items(catalog, false)?;
    Ok(items.into_iter().map(|(_, i)| i).collect())
}

type Items = (Vec<(usize, Item)>, usize, HashMap<String, usize>);

fn read_items(catalog: &Path, skip_bad: bool) -> Result<Items> {
    let (items, skipped) = read_jsonl::<Item>(catalog, skip_bad, Item::check)?;
    if items.is_empty() {
        bail!("{}: the catalogue has no items", catalog.display());
    }
    let mut index = HashMap::with_capacity(items.len());
    for (row, (line, item)) in items.iter().enumerate() {
        if index.insert(item.id.clone(), row).is_some() {
            bail!(
                "{}:{line}: duplicate item id `{}`",
                catalog.display(),
                item.id
            );
        }
    }
    Ok((items, skipped, index))
}

impl Dataset {
    /// Reads and cross-checks `catalog.jsonl` and `events.jsonl`.
    pub fn load(catalog: &Path, events_path: &Path, skip_bad: bool) -> Result<Dataset> {
        let (items, skipped_items, index) = read_items(catalog, skip_bad)?;
        let (events, skipped_events) = read_jsonl::<Event>(events_path, skip_bad, Event::check)?;
        for (line, e) in &events {
            if let Some(id) = &e.item {
                if !index.contains_key(id) {
                    bail!(
                        "{}:{line}: item `{id}` is not in the catalogue {}",
                        events_path.display(),
                        catalog.display()
                    );
                }
            }
        }
        Ok(Dataset {
            items: items.into_iter().map(|(_, i)| i).collect(),
            events: events.into_iter().map(|(_, e)| e).collect(),
            skipped: (skipped_items, skipped_events),
        })
    }
}

/// Writes `rows` as JSON lines.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = BufWriter::new(
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for r in rows {
        serde_json::to_writer(&mut w, r)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}

/// Reads one tab-separated RecBole atomic file (a typed header, then rows) as rows of fields.
fn read_atomic(path: &Path, want: &[&str]) -> Result<Vec<Vec<String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .with_context(|| format!("{} is empty", path.display()))?
        .split('\t')
        .map(|h| h.split(':').next().unwrap_or(h))
        .collect();
    let cols: Vec<usize> = want
        .iter()
        .map(|w| {
            header
                .iter()
                .position(|h| h == w)
                .with_context(|| format!("{}: no `{w}` column in {header:?}", path.display()))
        })
        .collect::<Result<_>>()?;
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let row = cols
            .iter()
            .map(|&c| fields.get(c).map(|s| s.to_string()))
            .collect::<Option<Vec<String>>>()
            .with_context(|| format!("{}:{}: too few fields", path.display(), n + 2))?;
        rows.push(row);
    }
    Ok(rows)
}

/// FNV-1a of an item id: the seed of the storefront attributes MovieLens lacks.
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A price for the demo storefront, derived from the id alone (MovieLens has none): 2.99 to 23.99.
pub fn demo_price(id: &str) -> f32 {
    (3 + (id_hash(id) % 22) as u32) as f32 - 0.01
}

/// Whether the demo storefront shows the item in stock, derived from the id alone: about 9 in 10 are.
pub fn demo_in_stock(id: &str) -> bool {
    !(id_hash(id) >> 8).is_multiple_of(10)
}

/// Converts RecBole's MovieLens-100k (`ml-100k.item`, `ml-100k.inter` in `source`) into `catalog.jsonl` and
/// `events.jsonl` in `out`. Items get a deterministic demo price and stock flag ([`demo_price`],
/// [`demo_in_stock`]), which the model never reads. Every rating becomes a `rate` event; events are ordered by timestamp, ties
/// keeping the source file's order. Returns (items, events).
pub fn convert_ml100k(source: &Path, out: &Path) -> Result<(usize, usize)> {
    let items: Vec<Item> = read_atomic(
        &source.join("ml-100k.item"),
        &["item_id", "movie_title", "release_year", "class"],
    )?
    .into_iter()
    .map(|r| Item {
        id: r[0].clone(),
        title: r[1].trim().to_string(),
        categories: r[3].split_whitespace().map(String::from).collect(),
        year: r[2].trim().parse().ok(),
        price: Some(demo_price(&r[0])),
        in_stock: Some(demo_in_stock(&r[0])),
        popularity: None,
        text: None,
    })
    .collect();
    let mut events: Vec<Event> = Vec::new();
    let inter = source.join("ml-100k.inter");
    for (n, r) in read_atomic(&inter, &["user_id", "item_id", "rating", "timestamp"])?
        .into_iter()
        .enumerate()
    {
        let num = |s: &str, what: &str| -> Result<f64> {
            s.trim()
                .parse::<f64>()
                .with_context(|| format!("{}:{}: bad {what} `{s}`", inter.display(), n + 2))
        };
        events.push(Event {
            session: r[0].clone(),
            kind: EventKind::named("rate").context("the model reads ratings")?,
            ts: num(&r[3], "timestamp")?,
            item: Some(r[1].clone()),
            query: None,
            value: Some(num(&r[2], "rating")? as f32),
        });
    }
    // A stable sort: ties keep the file's order, which carries signal on this dataset.
    events.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_jsonl(&out.join("catalog.jsonl"), &items)?;
    write_jsonl(&out.join("events.jsonl"), &events)?;
    // Read back through the checking reader, so the output is known to be valid input.
    let d = Dataset::load(&out.join("catalog.jsonl"), &out.join("events.jsonl"), false)?;
    Ok((d.items.len(), d.events.len()))
}
