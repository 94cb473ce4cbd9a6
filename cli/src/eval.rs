//! Offline evaluation: the leave-one-out split, full-ranking metrics with the history masked, the
//! sampled-negatives protocol (for comparison with papers only), and the baselines every model is
//! compared with.
//!
//! Protocol (EVALUATION.md):
//! - each session's events are ordered by time with a stable sort (ties keep the file's order);
//! - of a session's item events, the last is the test target and the second-to-last the validation target;
//!   everything before the validation target is training data (sessions with fewer than three item events
//!   are training data only);
//! - a case's input is every event before its target (for test, the validation item is part of it);
//! - every catalogue item is ranked; items in the input are masked, except the target itself;
//! - ties count against the target: its rank is 1 + the number of other unmasked items scoring at least as
//!   high, so a constant scorer earns nothing.

use std::collections::HashMap;

use crate::data::{Dataset, Event};

/// One event of a session: its item as a catalogue row (`None` for a search), its type (the model's
/// token-type id, `shelfwise::events::MODEL_TYPES`) and, for a search, its query (an index into
/// [`Split::queries`]).
#[derive(Clone, Debug)]
pub struct SeqEvent {
    pub item: Option<u32>,
    pub kind: u32,
    pub query: Option<u32>,
}

/// Sessions as time-ordered event lists, and the evaluation cases cut from them.
#[derive(Debug)]
pub struct Split {
    pub items: usize,
    pub sessions: Vec<Vec<SeqEvent>>,
    /// Per session: the events that are training data (a prefix of the session).
    pub train_len: Vec<usize>,
    /// The training sequences: each session's training prefix, less withheld items' events.
    train_seqs: Vec<Vec<SeqEvent>>,
    /// Items withheld from training (the cold-start split); all false normally.
    pub cold: Vec<bool>,
    /// The distinct query texts of search events.
    pub queries: Vec<String>,
    pub valid: Vec<Case>,
    pub test: Vec<Case>,
}

/// Predict the item at `sessions[session][at]` from the events before it.
#[derive(Clone, Copy, Debug)]
pub struct Case {
    pub session: usize,
    pub at: usize,
    pub target: u32,
}

impl Split {
    pub fn leave_one_out(d: &Dataset) -> Split {
        let row: HashMap<&str, u32> = d
            .items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.id.as_str(), i as u32))
            .collect();
        let mut by_session: HashMap<&str, usize> = HashMap::new();
        let mut raw: Vec<Vec<&Event>> = Vec::new();
        for e in &d.events {
            let s = *by_session.entry(e.session.as_str()).or_insert_with(|| {
                raw.push(Vec::new());
                raw.len() - 1
            });
            raw[s].push(e);
        }
        let mut queries: Vec<String> = Vec::new();
        let mut query_ids: HashMap<&str, u32> = HashMap::new();
        let mut sessions = Vec::with_capacity(raw.len());
        let (mut train_len, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for (s, mut evs) in raw.into_iter().enumerate() {
            // Stable: equal timestamps keep file order.
            evs.sort_by(|a, b| a.ts.total_cmp(&b.ts));
            let seq: Vec<SeqEvent> = evs
                .iter()
                .map(|e| SeqEvent {
                    item: e.item.as_ref().and_then(|i| row.get(i.as_str()).copied()),
                    kind: e.kind.model_type(),
                    query: e.query.as_deref().map(|q| {
                        *query_ids.entry(q).or_insert_with(|| {
                            queries.push(q.to_string());
                            queries.len() as u32 - 1
                        })
                    }),
                })
                .collect();
            let item_at: Vec<usize> = seq
                .iter()
                .enumerate()
                .filter(|(_, e)| e.item.is_some())
                .map(|(i, _)| i)
                .collect();
            if item_at.len() >= 3 {
                let (v, t) = (item_at[item_at.len() - 2], item_at[item_at.len() - 1]);
                valid.push(Case {
                    session: s,
                    at: v,
                    target: seq[v].item.unwrap_or_default(),
                });
                test.push(Case {
                    session: s,
                    at: t,
                    target: seq[t].item.unwrap_or_default(),
                });
                train_len.push(v);
            } else {
                train_len.push(seq.len());
            }
            sessions.push(seq);
        }
        let mut split = Split {
            items: d.items.len(),
            train_seqs: Vec::new(),
            cold: vec![false; d.items.len()],
            sessions,
            train_len,
            queries,
            valid,
            test,
        };
        split.cut_training();
        split
    }

    fn cut_training(&mut self) {
        let cold = &self.cold;
        self.train_seqs = self
            .sessions
            .iter()
            .zip(&self.train_len)
            .map(|(s, &n)| {
                s[..n]
                    .iter()
                    .filter(|e| e.item.is_none_or(|i| !cold[i as usize]))
                    .cloned()
                    .collect()
            })
            .collect();
    }

    /// The cold-start split: withholds a seeded `fraction` of the catalogue from training entirely (their
    /// events leave the training sequences). Evaluation inputs keep them, as a store would see them.
    pub fn withhold(&mut self, fraction: f64, seed: u64) {
        let mut rng = shelfwise::rng::Rng::new(seed);
        let mut rows: Vec<usize> = (0..self.items).collect();
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let n = (self.items as f64 * fraction).round() as usize;
        self.cold = vec![false; self.items];
        for &r in &rows[..n.min(self.items)] {
            self.cold[r] = true;
        }
        self.cut_training();
    }

    /// Test cases whose target was withheld, and the rest.
    pub fn cold_and_warm(&self) -> (Vec<Case>, Vec<Case>) {
        self.test.iter().partition(|c| self.cold[c.target as usize])
    }

    /// The input events of `c`.
    pub fn input(&self, c: &Case) -> &[SeqEvent] {
        &self.sessions[c.session][..c.at]
    }

    /// Training sequences: each session's training prefix, without withheld items.
    pub fn train(&self) -> impl Iterator<Item = &[SeqEvent]> {
        self.train_seqs.iter().map(Vec::as_slice)
    }
}

/// Scores every catalogue item for case `c`, whose input events are `input` (higher is better).
pub trait Scorer {
    fn name(&self) -> String;
    fn score(&self, c: &Case, input: &[SeqEvent], out: &mut [f32]);
    /// Whether the scores are logits (a softmax of them is the model's belief), not counts.
    fn logits(&self) -> bool {
        false
    }
}

/// Training-set popularity.
pub struct MostPopular {
    counts: Vec<f32>,
}

impl MostPopular {
    pub fn fit(split: &Split) -> MostPopular {
        let mut counts = vec![0.0; split.items];
        for seq in split.train() {
            for e in seq {
                if let Some(i) = e.item {
                    counts[i as usize] += 1.0;
                }
            }
        }
        MostPopular { counts }
    }
}

impl Scorer for MostPopular {
    fn name(&self) -> String {
        "most popular".into()
    }

    fn score(&self, _c: &Case, _input: &[SeqEvent], out: &mut [f32]) {
        out.copy_from_slice(&self.counts);
    }
}

/// First-order transitions: the score of a candidate is how often it directly followed each of the last
/// `window` input items in training sequences, summed.
pub struct Markov {
    next: Vec<Vec<(u32, f32)>>,
    window: usize,
}

impl Markov {
    pub fn fit(split: &Split, window: usize) -> Markov {
        let mut counts: Vec<HashMap<u32, f32>> = vec![HashMap::new(); split.items];
        for seq in split.train() {
            let items: Vec<u32> = seq.iter().filter_map(|e| e.item).collect();
            for w in items.windows(2) {
                *counts[w[0] as usize].entry(w[1]).or_default() += 1.0;
            }
        }
        let next = counts
            .into_iter()
            .map(|m| {
                let mut v: Vec<(u32, f32)> = m.into_iter().collect();
                v.sort_unstable_by_key(|p| p.0);
                v
            })
            .collect();
        Markov { next, window }
    }
}

impl Scorer for Markov {
    fn name(&self) -> String {
        format!("item-to-item transitions (last {})", self.window)
    }

    fn score(&self, _c: &Case, input: &[SeqEvent], out: &mut [f32]) {
        out.fill(0.0);
        let items: Vec<u32> = input.iter().filter_map(|e| e.item).collect();
        for &h in items.iter().rev().take(self.window) {
            for &(c, n) in &self.next[h as usize] {
                out[c as usize] += n;
            }
        }
    }
}

/// How candidates are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Every catalogue item, history masked.
    Full,
    /// The target against `n` items sampled (seeded, uniformly) from those outside the input.
    Sampled(usize),
}

/// Ranking metrics over a set of cases.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub cases: usize,
    pub hr10: f64,
    pub hr20: f64,
    pub ndcg10: f64,
    pub ndcg20: f64,
    pub mrr10: f64,
    /// HR@K for K = 1..=50.
    pub hr_curve: Vec<f64>,
}

/// The target's 1-based rank among unmasked candidates; ties count against it. Scores hold no NaN.
fn rank(scores: &[f32], target: u32, masked: &[bool], candidates: Option<&[u32]>) -> usize {
    let t = scores[target as usize];
    let beats = |i: usize| i != target as usize && !masked[i] && scores[i] >= t;
    1 + match candidates {
        None => (0..scores.len()).filter(|&i| beats(i)).count(),
        Some(c) => c.iter().filter(|&&i| beats(i as usize)).count(),
    }
}

/// Evaluates `scorer` on `cases` of `split`.
pub fn evaluate(scorer: &dyn Scorer, split: &Split, cases: &[Case], protocol: Protocol) -> Metrics {
    let n = split.items;
    let mut scores = vec![0.0f32; n];
    let mut masked = vec![false; n];
    let mut rng = shelfwise::rng::Rng::new(2024);
    let mut m = Metrics {
        hr_curve: vec![0.0; 50],
        ..Default::default()
    };
    for c in cases {
        let input = split.input(c);
        scorer.score(c, input, &mut scores);
        // NaN never beats anything and is never beaten: treat it as the lowest score.
        for s in scores.iter_mut() {
            if s.is_nan() {
                *s = f32::NEG_INFINITY;
            }
        }
        masked.fill(false);
        for e in input {
            if let Some(i) = e.item {
                masked[i as usize] = true;
            }
        }
        masked[c.target as usize] = false;
        let r = match protocol {
            Protocol::Full => rank(&scores, c.target, &masked, None),
            Protocol::Sampled(k) => {
                let mut picked: Vec<u32> = Vec::with_capacity(k);
                let free = (0..n)
                    .filter(|&i| !masked[i] && i != c.target as usize)
                    .count();
                let want = k.min(free);
                let mut seen = vec![false; n];
                while picked.len() < want {
                    let i = rng.below(n as u64) as usize;
                    if !masked[i] && i != c.target as usize && !seen[i] {
                        seen[i] = true;
                        picked.push(i as u32);
                    }
                }
                rank(&scores, c.target, &masked, Some(&picked))
            }
        };
        m.cases += 1;
        let gain = 1.0 / ((r as f64) + 1.0).log2();
        if r <= 10 {
            m.hr10 += 1.0;
            m.ndcg10 += gain;
            m.mrr10 += 1.0 / r as f64;
        }
        if r <= 20 {
            m.hr20 += 1.0;
            m.ndcg20 += gain;
        }
        for k in r..=50 {
            m.hr_curve[k - 1] += 1.0;
        }
    }
    let d = m.cases.max(1) as f64;
    for v in [
        &mut m.hr10,
        &mut m.hr20,
        &mut m.ndcg10,
        &mut m.ndcg20,
        &mut m.mrr10,
    ] {
        *v /= d;
    }
    for v in &mut m.hr_curve {
        *v /= d;
    }
    m
}

/// Items that never occur in training: what an exported bundle gives popularity 0, and what a new-item
/// boost applies to.
pub fn new_items(split: &Split) -> Vec<bool> {
    let mut new = vec![true; split.items];
    for seq in split.train() {
        for e in seq {
            if let Some(i) = e.item {
                new[i as usize] = false;
            }
        }
    }
    new
}

/// The mean share of softmax probability that `scorer` puts on new items, over `cases` (each case's history
/// masked): what the model expects of new items, to compare with the share of targets that are new.
pub fn new_item_mass(scorer: &dyn Scorer, split: &Split, cases: &[Case], new: &[bool]) -> f64 {
    let mut scores = vec![0.0f32; split.items];
    let mut masked = vec![false; split.items];
    let mut sum = 0.0;
    for c in cases {
        let input = split.input(c);
        scorer.score(c, input, &mut scores);
        masked.fill(false);
        for e in input {
            if let Some(i) = e.item {
                masked[i as usize] = true;
            }
        }
        masked[c.target as usize] = false;
        let top = scores
            .iter()
            .filter(|s| s.is_finite())
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let (mut on_new, mut all) = (0.0, 0.0);
        for i in (0..split.items).filter(|&i| !masked[i] && scores[i].is_finite()) {
            let p = (scores[i] as f64 - top).exp();
            all += p;
            if new[i] {
                on_new += p;
            }
        }
        if all > 0.0 {
            sum += on_new / all;
        }
    }
    sum / cases.len().max(1) as f64
}

/// `inner`'s scores with `boost` added to every new item's ([`new_items`]): what the engine's
/// `SearchOptions::new_item_boost` does to items whose popularity is 0.
pub struct NewItemBoost<'a> {
    pub inner: &'a dyn Scorer,
    pub boost: f32,
    pub new: &'a [bool],
}

impl Scorer for NewItemBoost<'_> {
    fn name(&self) -> String {
        format!("{}, new-item boost {}", self.inner.name(), self.boost)
    }

    fn logits(&self) -> bool {
        self.inner.logits()
    }

    fn score(&self, c: &Case, input: &[SeqEvent], out: &mut [f32]) {
        self.inner.score(c, input, out);
        for (s, _) in out.iter_mut().zip(self.new).filter(|(_, &n)| n) {
            *s += self.boost;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<f32>);
    impl Scorer for Fixed {
        fn name(&self) -> String {
            "fixed".into()
        }
        fn score(&self, _: &Case, _: &[SeqEvent], out: &mut [f32]) {
            out.copy_from_slice(&self.0);
        }
    }

    fn split(sessions: Vec<Vec<u32>>, items: usize) -> Split {
        let sessions: Vec<Vec<SeqEvent>> = sessions
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|i| SeqEvent {
                        item: Some(i),
                        kind: 0,
                        query: None,
                    })
                    .collect()
            })
            .collect();
        let mut out = Split {
            items,
            train_seqs: Vec::new(),
            cold: vec![false; items],
            queries: Vec::new(),
            train_len: Vec::new(),
            valid: Vec::new(),
            test: Vec::new(),
            sessions: Vec::new(),
        };
        for (s, seq) in sessions.into_iter().enumerate() {
            let n = seq.len();
            out.test.push(Case {
                session: s,
                at: n - 1,
                target: seq[n - 1].item.unwrap(),
            });
            out.train_len.push(n - 2);
            out.sessions.push(seq);
        }
        out.cut_training();
        out
    }

    #[test]
    fn ranks_count_ties_against_the_target_and_skip_masked_items() {
        // Items 0..5; the session saw 1 and 2, target 4.
        let s = split(vec![vec![1, 2, 4]], 5);
        // Item 2 scores highest but is masked; item 3 ties the target: rank 2.
        let m = evaluate(
            &Fixed(vec![0.0, 0.5, 9.0, 1.0, 1.0]),
            &s,
            &s.test,
            Protocol::Full,
        );
        assert_eq!(m.hr_curve[0], 0.0);
        assert_eq!(m.hr_curve[1], 1.0);
        assert!((m.ndcg10 - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert!((m.mrr10 - 0.5).abs() < 1e-12);
        // A constant scorer earns nothing.
        let m = evaluate(&Fixed(vec![1.0; 5]), &s, &s.test, Protocol::Full);
        assert_eq!(m.hr10, 1.0, "5 items: rank 3 is still in the top 10");
        let s = split(vec![vec![1, 2, 4]], 30);
        let m = evaluate(&Fixed(vec![1.0; 30]), &s, &s.test, Protocol::Full);
        assert_eq!((m.hr10, m.hr20), (0.0, 0.0));
    }

    #[test]
    fn a_new_item_boost_lifts_only_items_never_in_training() {
        // Training prefixes [0, 1] and [5, 0]: items 2, 3 and 4 never occur in training.
        let s = split(vec![vec![0, 1, 2, 4], vec![5, 0, 1, 3]], 6);
        let new = new_items(&s);
        assert_eq!(new, vec![false, false, true, true, true, false]);
        let fixed = Fixed(vec![3.0, 0.0, 0.0, 0.5, 1.0, 2.5]);
        // The first test case: input [0, 1, 2] (masked), target 4; unmasked 3 (new), 4 and 5 (known).
        let rank = |boost: f32| {
            let m = evaluate(
                &NewItemBoost {
                    inner: &fixed,
                    boost,
                    new: &new,
                },
                &s,
                &s.test[..1],
                Protocol::Full,
            );
            (1.0 / m.mrr10).round() as usize
        };
        assert_eq!(rank(0.0), 2, "item 5 (2.5) is ahead");
        assert_eq!(rank(1.5), 2, "a tie with item 5 counts against the target");
        assert_eq!(rank(2.0), 1);
        assert_eq!(rank(-0.6), 2, "item 3 moves down with the target");
    }

    #[test]
    fn markov_counts_direct_successors_in_training_only() {
        // Training prefixes: [0, 1] and [0, 1] (the last two of each session are held out).
        let s = split(vec![vec![0, 1, 2, 3], vec![0, 1, 3, 2]], 4);
        let mk = Markov::fit(&s, 5);
        let mut out = vec![0.0; 4];
        mk.score(&s.test[0], &s.sessions[0][..1], &mut out);
        assert_eq!(out, vec![0.0, 2.0, 0.0, 0.0]);
        let pop = MostPopular::fit(&s);
        assert_eq!(pop.counts, vec![2.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn the_cold_split_withholds_a_seeded_share_from_training_only() {
        let sessions: Vec<Vec<u32>> = (0..30)
            .map(|s| (0..8).map(|t| (s * 7 + t * 3) % 50).collect())
            .collect();
        let mut a = split(sessions.clone(), 50);
        a.withhold(0.1, 3);
        let mut b = split(sessions, 50);
        b.withhold(0.1, 3);
        assert_eq!(a.cold, b.cold, "seeded");
        assert_eq!(a.cold.iter().filter(|&&c| c).count(), 5);
        for seq in a.train() {
            assert!(seq.iter().all(|e| !a.cold[e.item.unwrap() as usize]));
        }
        // Evaluation inputs keep withheld items; cold and warm cases cover the test set.
        assert_eq!(a.sessions[0].len(), 8);
        let (cold, warm) = a.cold_and_warm();
        assert_eq!(cold.len() + warm.len(), a.test.len());
        assert!(cold.iter().all(|c| a.cold[c.target as usize]));
        let pop = MostPopular::fit(&a);
        assert!((0..50).filter(|&i| a.cold[i]).all(|i| pop.counts[i] == 0.0));
    }
}
