//! The event types: the one table every other list is derived from.
//!
//! The interest model's token-type ids ([`MODEL_TYPES`], also the bundle format's
//! `recommender.event_types`), the session events `recommend` takes, the events the JS API's `track` takes
//! and the `kind` of each reason come from [`EVENT_TYPES`]. The JS and TypeScript lists (`js/contract.js`,
//! `js/contract.d.ts`) are generated from it by `tests/contract.rs`.

/// What an event is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// An item of the catalogue (`itemId`).
    Item,
    /// A typed query (`query`).
    Query,
}

/// One event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventType {
    /// The name, in `track` calls, session events, `events.jsonl` and manifests.
    pub name: &'static str,
    /// The interest model's token-type id for it; `None`: the model never sees this type.
    pub model_type: Option<u32>,
    /// Whether the JS API's `track` takes it.
    pub track: bool,
    pub subject: Subject,
    /// The `kind` of a recommendation's reason when an event of this type explains it. Every type the model
    /// reads has one, and only those: a reason is one of the events the interest vector came from.
    pub reason: Option<&'static str>,
}

const fn item(name: &'static str, model_type: u32, reason: &'static str) -> EventType {
    EventType {
        name,
        model_type: Some(model_type),
        track: true,
        subject: Subject::Item,
        reason: Some(reason),
    }
}

/// Every event type. Token-type ids must never change: they are the rows of a trained model's event-type
/// embedding, and a bundle's manifest lists the names in their order.
pub const EVENT_TYPES: [EventType; 8] = [
    item("view", 0, "viewed"),
    item("click", 1, "clicked"),
    item("add_to_cart", 2, "added_to_cart"),
    item("purchase", 3, "purchased"),
    item("favorite", 4, "favorited"),
    item("rate", 5, "rated"),
    EventType {
        name: "search",
        model_type: Some(6),
        track: true,
        subject: Subject::Query,
        reason: Some("searched"),
    },
    // An item the shopper passed over: kept in the history and never recommended; the model does not read it.
    EventType {
        name: "ignore",
        model_type: None,
        track: true,
        subject: Subject::Item,
        reason: None,
    },
];

/// Number of types the interest model reads: its `type_vocab_size`.
pub const MODEL_TYPE_COUNT: usize = model_type_count();

/// The types the interest model reads, by token-type id: what a bundle's `recommender.event_types` holds.
pub const MODEL_TYPES: [&str; MODEL_TYPE_COUNT] = model_types();

/// The search: the one type the model reads whose subject is a query.
pub const SEARCH: EventType = search();

/// The token-type id of a search.
pub const SEARCH_TOKEN: u32 = match SEARCH.model_type {
    Some(id) => id,
    None => panic!("the model reads searches"),
};

/// The reason kind of a search.
pub const SEARCH_REASON: &str = match SEARCH.reason {
    Some(r) => r,
    None => panic!("a search has a reason kind"),
};

/// The event type named `name`.
pub fn get(name: &str) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|t| t.name == name)
}

/// The token-type id of `name`, when the model reads that type.
pub fn model_type(name: &str) -> Option<u32> {
    get(name).and_then(|t| t.model_type)
}

/// The type with token-type id `id`.
pub fn by_model_type(id: u32) -> Option<&'static EventType> {
    EVENT_TYPES.iter().find(|t| t.model_type == Some(id))
}

const fn model_type_count() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < EVENT_TYPES.len() {
        if EVENT_TYPES[i].model_type.is_some() {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The model's names by token-type id; checks at compile time that the ids are `0..n`, each once, and that
/// exactly the model's types have a reason kind.
const fn model_types() -> [&'static str; MODEL_TYPE_COUNT] {
    let mut out = [""; MODEL_TYPE_COUNT];
    let mut i = 0;
    while i < EVENT_TYPES.len() {
        let t = &EVENT_TYPES[i];
        assert!(
            t.model_type.is_some() == t.reason.is_some(),
            "an event type has a reason kind exactly when the model reads it"
        );
        if let Some(id) = t.model_type {
            assert!((id as usize) < MODEL_TYPE_COUNT, "token-type ids are 0..n");
            assert!(out[id as usize].is_empty(), "each token-type id once");
            out[id as usize] = t.name;
        }
        i += 1;
    }
    out
}

const fn search() -> EventType {
    let (mut found, mut i) = (None, 0);
    while i < EVENT_TYPES.len() {
        let t = EVENT_TYPES[i];
        if let (Subject::Query, Some(_)) = (t.subject, t.model_type) {
            assert!(found.is_none(), "the model reads one query type");
            found = Some(t);
        }
        i += 1;
    }
    match found {
        Some(t) => t,
        None => panic!("the model reads a query type"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundle format: trained models and exported manifests depend on this order.
    #[test]
    fn the_model_order_is_frozen() {
        assert_eq!(
            MODEL_TYPES,
            [
                "view",
                "click",
                "add_to_cart",
                "purchase",
                "favorite",
                "rate",
                "search"
            ]
        );
        assert_eq!(
            (SEARCH.name, SEARCH_TOKEN, SEARCH_REASON),
            ("search", 6, "searched")
        );
        assert_eq!(by_model_type(SEARCH_TOKEN).map(|t| t.name), Some("search"));
    }

    #[test]
    fn names_and_reasons_are_unique() {
        for (i, a) in EVENT_TYPES.iter().enumerate() {
            for b in &EVENT_TYPES[i + 1..] {
                assert_ne!(a.name, b.name);
                assert!(a.reason.is_none() || a.reason != b.reason, "{}", a.name);
            }
        }
    }

    #[test]
    fn lookups() {
        assert_eq!(model_type("rate"), Some(5));
        assert_eq!(model_type("ignore"), None);
        assert!(get("ignore").is_some_and(|t| t.track && t.subject == Subject::Item));
        assert_eq!(get("dance"), None);
        for (id, name) in MODEL_TYPES.iter().enumerate() {
            assert_eq!(model_type(name), Some(id as u32));
        }
    }
}
