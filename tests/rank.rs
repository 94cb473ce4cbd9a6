//! Ranking semantics on the CPU backend: named cases for every option, and the exact-answer oracle.

use std::collections::{BTreeMap, HashMap, HashSet};

use shelfwise::{
    Attributes, Catalog, Dtype, Error, Index, SearchOptions, SearchResult, Shard, ShardSpec,
};
use shelfwise_testkit::synth::{self, SynthSpec};

fn synth_index(items: usize, dim: usize, dtype: Dtype) -> (Index, Vec<f32>) {
    let cat = synth::generate(&SynthSpec::new(items, dim));
    let bytes = synth::shard_bytes(&cat, dim, dtype, "test").unwrap();
    let shard = Shard::from_bytes("s", &bytes).unwrap();
    let query = cat.vectors[17 * dim..18 * dim].to_vec();
    (
        Index::cpu(Catalog::from_shards(vec![shard]).unwrap()),
        query,
    )
}

fn search(index: &Index, q: &[f32], o: &SearchOptions) -> SearchResult {
    index.search_cpu(q, o).unwrap()
}

fn err(index: &Index, q: &[f32], o: &SearchOptions) -> Error {
    index.search_cpu(q, o).unwrap_err()
}

/// Every eligible item's score in f64, sorted (score desc, row asc): the exact answer, filters applied.
fn oracle(index: &Index, q: &[f32], o: &SearchOptions) -> Vec<(u32, f64)> {
    let cat = index.catalog();
    let d = cat.dim();
    let mut row = vec![0f32; d];
    let exclude: HashSet<&str> = o.exclude.iter().map(String::as_str).collect();
    let mut v = Vec::new();
    for g in 0..cat.len() {
        let (s, r) = cat.locate(g);
        let a = cat.shards()[s].attributes(r);
        if exclude.contains(cat.id(g))
            || (o.in_stock_only && a.in_stock == Some(false))
            || o.categories
                .as_ref()
                .is_some_and(|c| !c.contains(&a.category.unwrap()))
            || o.price_range
                .is_some_and(|[lo, hi]| !(a.price.unwrap() >= lo && a.price.unwrap() <= hi))
        {
            continue;
        }
        cat.row_f32(g, &mut row);
        let mut s: f64 = row.iter().zip(q).map(|(&x, &y)| x as f64 * y as f64).sum();
        s += o.popularity_weight as f64 * a.popularity.unwrap_or(0.0) as f64;
        if o.new_item_boost != 0.0 && a.popularity == Some(0.0) {
            s += o.new_item_boost as f64;
        }
        if let Some(b) = a.category.and_then(|c| o.boosts.get(&c.to_string())) {
            s += *b as f64;
        }
        v.push((g as u32, s));
    }
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

/// The result is the oracle's top k, except that items within `tol` of each other may swap.
fn assert_exact(res: &SearchResult, want: &[(u32, f64)], k: usize, tol: f64) {
    assert_eq!(res.rows.len(), k.min(want.len()));
    let score: HashMap<u32, f64> = want.iter().copied().collect();
    for (i, &row) in res.rows.iter().enumerate() {
        let s = score[&row];
        assert!(
            (s - want[i].1).abs() <= tol,
            "position {i}: row {row} scores {s}, the oracle's {} scores {}",
            want[i].0,
            want[i].1
        );
        assert!(
            (res.scores[i] as f64 - s).abs() <= tol,
            "row {row}: reported {} vs {s}",
            res.scores[i]
        );
    }
}

#[test]
fn f32_f16_int8_rank_like_the_exact_oracle() {
    for (dtype, tol) in [(Dtype::F32, 1e-5), (Dtype::F16, 1e-5), (Dtype::I8, 0.02)] {
        let (index, q) = synth_index(4000, 48, dtype);
        let o = SearchOptions {
            k: 30,
            ..Default::default()
        };
        let res = search(&index, &q, &o);
        if dtype == Dtype::I8 {
            // Quantised scores approximate the float ones; the exact check for int8 is the integer oracle
            // of the parity tests. Here: the same neighbourhood.
            let want: HashSet<u32> = oracle(&index, &q, &o)
                .iter()
                .take(30)
                .map(|x| x.0)
                .collect();
            let got: HashSet<u32> = res.rows.iter().copied().collect();
            assert!(
                want.intersection(&got).count() >= 25,
                "int8 recall@30 {}",
                want.intersection(&got).count()
            );
        } else {
            assert_exact(&res, &oracle(&index, &q, &o), 30, tol);
        }
        assert_eq!(
            res.rows[0], 17,
            "{dtype:?}: the query's own item ranks first"
        );
    }
}

#[test]
fn every_filter_and_boost_matches_the_oracle() {
    let (index, q) = synth_index(6000, 32, Dtype::F32);
    let mut boosts = BTreeMap::new();
    boosts.insert("2".to_string(), 0.3);
    boosts.insert("5".to_string(), -1.0);
    let o = SearchOptions {
        k: 40,
        exclude: vec![
            "sku-0000017".into(),
            "sku-0000003".into(),
            "no-such-item".into(),
        ],
        categories: Some(vec![1, 2, 3, 5, 8, 13]),
        price_range: Some([20.0, 120.0]),
        in_stock_only: true,
        popularity_weight: 0.5,
        boosts,
        ..Default::default()
    };
    let res = search(&index, &q, &o);
    assert_exact(&res, &oracle(&index, &q, &o), 40, 1e-5);
    assert!(!res.ids.contains(&"sku-0000017".to_string()));
}

#[test]
fn new_item_boost_lifts_exactly_the_items_without_popularity() {
    let mut cat = synth::generate(&SynthSpec::new(4000, 32));
    let pop = cat.attributes.popularity.as_mut().unwrap();
    let new: HashSet<usize> = (0..4000).filter(|i| i % 10 == 3).collect();
    for &i in &new {
        pop[i] = 0.0;
    }
    let bytes = synth::shard_bytes(&cat, 32, Dtype::F32, "test").unwrap();
    let index =
        Index::cpu(Catalog::from_shards(vec![Shard::from_bytes("s", &bytes).unwrap()]).unwrap());
    let q = cat.vectors[17 * 32..18 * 32].to_vec();
    let plain = SearchOptions {
        k: 20,
        ..Default::default()
    };
    let count_new = |r: &SearchResult| {
        r.rows
            .iter()
            .filter(|&&g| new.contains(&(g as usize)))
            .count()
    };
    let before = search(&index, &q, &plain);
    for boost in [0.3f32, 2.0, -0.5] {
        let o = SearchOptions {
            new_item_boost: boost,
            ..plain.clone()
        };
        let res = search(&index, &q, &o);
        assert_exact(&res, &oracle(&index, &q, &o), 20, 1e-5);
        match boost {
            b if b > 1.0 => assert_eq!(count_new(&res), 20, "a large boost puts new items first"),
            b if b > 0.0 => assert!(count_new(&res) > count_new(&before)),
            _ => assert!(count_new(&res) <= count_new(&before)),
        }
    }
}

#[test]
fn allow_list_restricts_to_its_items() {
    let (index, q) = synth_index(3000, 16, Dtype::F16);
    let allow: Vec<String> = (0..50)
        .map(|i| format!("sku-{:07}", i * 31))
        .chain(["ghost".to_string()])
        .collect();
    let o = SearchOptions {
        k: 100,
        allow: Some(allow.clone()),
        ..Default::default()
    };
    let res = search(&index, &q, &o);
    assert_eq!(
        res.ids.len(),
        50,
        "k > eligible returns every eligible item"
    );
    let allowed: HashSet<&String> = allow.iter().collect();
    assert!(res.ids.iter().all(|id| allowed.contains(id)));
}

#[test]
fn k_zero_is_an_error_and_k_over_n_returns_everything() {
    let (index, q) = synth_index(123, 8, Dtype::I8);
    assert_eq!(
        err(
            &index,
            &q,
            &SearchOptions {
                k: 0,
                ..Default::default()
            }
        )
        .code(),
        "INVALID_ARGUMENT"
    );
    let all = search(
        &index,
        &q,
        &SearchOptions {
            k: 10_000,
            ..Default::default()
        },
    );
    assert_eq!(all.rows.len(), 123);
    let distinct: HashSet<u32> = all.rows.iter().copied().collect();
    assert_eq!(distinct.len(), 123);
    assert!(all.scores.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn everything_filtered_out_is_an_empty_result() {
    let (index, q) = synth_index(500, 8, Dtype::F32);
    let res = search(
        &index,
        &q,
        &SearchOptions {
            price_range: Some([-10.0, -1.0]),
            ..Default::default()
        },
    );
    assert!(res.rows.is_empty() && res.ids.is_empty() && res.scores.is_empty());
    let res = search(
        &index,
        &q,
        &SearchOptions {
            categories: Some(vec![]),
            ..Default::default()
        },
    );
    assert!(res.rows.is_empty());
}

#[test]
fn bad_queries_and_options_are_typed_errors() {
    let (index, q) = synth_index(200, 8, Dtype::F32);
    let d = SearchOptions::default();
    let mut nan = q.clone();
    nan[3] = f32::NAN;
    assert_eq!(err(&index, &nan, &d).code(), "INVALID_QUERY");
    let mut inf = q.clone();
    inf[0] = f32::NEG_INFINITY;
    assert_eq!(err(&index, &inf, &d).code(), "INVALID_QUERY");
    assert_eq!(err(&index, &q[..7], &d).code(), "DIM_MISMATCH");
    assert_eq!(err(&index, &[], &d).code(), "DIM_MISMATCH");
    let cases: Vec<(SearchOptions, &str)> = vec![
        (
            SearchOptions {
                categories: Some(vec![24]),
                ..d.clone()
            },
            "UNKNOWN_CATEGORY",
        ),
        (
            SearchOptions {
                boosts: [("99".to_string(), 1.0)].into(),
                ..d.clone()
            },
            "UNKNOWN_CATEGORY",
        ),
        (
            SearchOptions {
                boosts: [("shoes".to_string(), 1.0)].into(),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                boosts: [("1".to_string(), f32::NAN)].into(),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                price_range: Some([5.0, 1.0]),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                price_range: Some([f32::NAN, 1.0]),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                popularity_weight: f32::INFINITY,
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                new_item_boost: f32::NAN,
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                mmr_lambda: Some(1.5),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                mmr_lambda: Some(0.5),
                mmr_candidates: Some(0),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                per_category_cap: Some(0),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                mmr_lambda: Some(0.5),
                mmr_candidates: Some(1001),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
        (
            SearchOptions {
                weights: Some(vec![1.0, 2.0]),
                ..d.clone()
            },
            "INVALID_ARGUMENT",
        ),
    ];
    for (o, code) in cases {
        assert_eq!(err(&index, &q, &o).code(), code, "{o:?}");
    }
}

#[test]
fn filters_on_missing_attributes_name_the_shard() {
    let ids = ["a", "b", "c"];
    let bytes = shelfwise::write_shard(&ShardSpec {
        ids: &ids,
        vectors: &[1.0, 0.0, 0.0, 1.0, 0.5, 0.5],
        dim: 2,
        dtype: Dtype::F32,
        normalize: false,
        model_id: "m",
        num_categories: None,
        attributes: &Attributes::default(),
    })
    .unwrap();
    let index =
        Index::cpu(Catalog::from_shards(vec![Shard::from_bytes("bare", &bytes).unwrap()]).unwrap());
    for o in [
        SearchOptions {
            in_stock_only: true,
            ..Default::default()
        },
        SearchOptions {
            price_range: Some([0.0, 1.0]),
            ..Default::default()
        },
        SearchOptions {
            categories: Some(vec![0]),
            ..Default::default()
        },
        SearchOptions {
            popularity_weight: 1.0,
            ..Default::default()
        },
        SearchOptions {
            new_item_boost: 0.5,
            ..Default::default()
        },
        SearchOptions {
            per_category_cap: Some(1),
            ..Default::default()
        },
    ] {
        let e = err(&index, &[1.0, 0.0], &o);
        assert_eq!(e.code(), "MISSING_ATTRIBUTE");
        assert!(e.to_string().contains("bare"), "{e}");
    }
    // A zero query makes every score 0: the order among equals is by row.
    let res = search(
        &index,
        &[0.0, 0.0],
        &SearchOptions {
            k: 3,
            ..Default::default()
        },
    );
    assert_eq!(
        res.ids,
        vec!["a", "b", "c"],
        "all-zero scores tie and break by row"
    );
}

#[test]
fn weighted_queries_equal_their_sum() {
    let (index, q) = synth_index(1000, 16, Dtype::F32);
    let q2: Vec<f32> = q.iter().rev().copied().collect();
    let both: Vec<f32> = q.iter().chain(&q2).copied().collect();
    let combined: Vec<f32> = q.iter().zip(&q2).map(|(a, b)| 0.7 * a + 0.3 * b).collect();
    let o = SearchOptions {
        k: 20,
        weights: Some(vec![0.7, 0.3]),
        ..Default::default()
    };
    let a = search(&index, &both, &o);
    let b = search(
        &index,
        &combined,
        &SearchOptions {
            k: 20,
            ..Default::default()
        },
    );
    assert_eq!(a.rows, b.rows);
}

#[test]
fn per_category_cap_is_the_greedy_answer_over_the_full_ranking() {
    let (index, q) = synth_index(5000, 32, Dtype::F32);
    let cat = index.catalog();
    for cap in [1usize, 2, 5] {
        let o = SearchOptions {
            k: 30,
            per_category_cap: Some(cap),
            ..Default::default()
        };
        let res = search(&index, &q, &o);
        // Greedy over the full exact ranking.
        let mut counts: HashMap<u32, usize> = HashMap::new();
        let mut want = Vec::new();
        for (row, _) in oracle(&index, &q, &SearchOptions::default()) {
            let c = cat.category(row as usize).unwrap();
            if counts.get(&c).copied().unwrap_or(0) < cap {
                *counts.entry(c).or_insert(0) += 1;
                want.push(row);
                if want.len() == 30 {
                    break;
                }
            }
        }
        assert_eq!(res.rows, want, "cap {cap}");
    }
    // A cap so tight that fewer than k items exist: all of them, no error.
    let o = SearchOptions {
        k: 1000,
        per_category_cap: Some(1),
        ..Default::default()
    };
    assert_eq!(
        search(&index, &q, &o).rows.len(),
        cat.num_categories() as usize
    );
}

#[test]
fn mmr_trades_relevance_for_diversity() {
    let (index, q) = synth_index(5000, 32, Dtype::F32);
    let plain = search(
        &index,
        &q,
        &SearchOptions {
            k: 10,
            ..Default::default()
        },
    );
    let one = search(
        &index,
        &q,
        &SearchOptions {
            k: 10,
            mmr_lambda: Some(1.0),
            ..Default::default()
        },
    );
    assert_eq!(plain.rows, one.rows, "lambda = 1 is plain relevance");
    // The top 50 all sit in the query's cluster; a wider pool lets MMR reach the neighbouring ones.
    let wide = SearchOptions {
        k: 10,
        mmr_lambda: Some(0.3),
        mmr_candidates: Some(400),
        ..Default::default()
    };
    let diverse = search(&index, &q, &wide);
    assert_eq!(
        diverse.rows[0], plain.rows[0],
        "the most relevant item still leads"
    );
    let spread = |r: &SearchResult| {
        let d = index.catalog().dim();
        let vecs: Vec<Vec<f32>> = r
            .rows
            .iter()
            .map(|&row| {
                let mut v = vec![0f32; d];
                index.catalog().row_f32(row as usize, &mut v);
                v
            })
            .collect();
        let mut total = 0f32;
        for i in 0..vecs.len() {
            for j in i + 1..vecs.len() {
                total += vecs[i]
                    .iter()
                    .zip(&vecs[j])
                    .map(|(a, b)| a * b)
                    .sum::<f32>();
            }
        }
        total
    };
    assert!(
        spread(&diverse) < spread(&plain),
        "MMR lowers mutual similarity: {} vs {} ({:?} vs {:?})",
        spread(&diverse),
        spread(&plain),
        diverse.rows,
        plain.rows
    );
    let again = search(&index, &q, &wide);
    assert_eq!(diverse.rows, again.rows, "deterministic");
    // With a cap as well, both hold.
    let capped = search(
        &index,
        &q,
        &SearchOptions {
            k: 10,
            mmr_lambda: Some(0.5),
            per_category_cap: Some(2),
            ..Default::default()
        },
    );
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &r in &capped.rows {
        *counts
            .entry(index.catalog().category(r as usize).unwrap())
            .or_insert(0) += 1;
    }
    assert!(counts.values().all(|&c| c <= 2));
    assert_eq!(capped.rows.len(), 10);
}

#[test]
fn several_shards_form_one_catalogue() {
    let cat = synth::generate(&SynthSpec::new(3000, 16));
    let mk = |range: std::ops::Range<usize>| {
        let a = &cat.attributes;
        let sub = Attributes {
            category: a.category.as_ref().map(|v| v[range.clone()].to_vec()),
            price: a.price.as_ref().map(|v| v[range.clone()].to_vec()),
            in_stock: a.in_stock.as_ref().map(|v| v[range.clone()].to_vec()),
            popularity: a.popularity.as_ref().map(|v| v[range.clone()].to_vec()),
        };
        let bytes = shelfwise::write_shard(&ShardSpec {
            ids: &cat.ids[range.clone()],
            vectors: &cat.vectors[range.start * 16..range.end * 16],
            dim: 16,
            dtype: Dtype::I8,
            normalize: true,
            model_id: "test",
            num_categories: Some(cat.category_names.len() as u32),
            attributes: &sub,
        })
        .unwrap();
        Shard::from_bytes("part", &bytes).unwrap()
    };
    let split = Index::cpu(
        Catalog::from_shards(vec![mk(0..1000), mk(1000..1000), mk(1000..3000)]).unwrap(),
    );
    let whole = Index::cpu(Catalog::from_shards(vec![mk(0..3000)]).unwrap());
    let q = cat.vectors[2500 * 16..2501 * 16].to_vec();
    let o = SearchOptions {
        k: 15,
        in_stock_only: true,
        exclude: vec!["sku-0002500".into()],
        ..Default::default()
    };
    let a = search(&split, &q, &o);
    let b = search(&whole, &q, &o);
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.scores, b.scores);
    assert_eq!(split.catalog().row_of("sku-0001999"), Some(1999));
    assert_eq!(split.catalog().row_of("nope"), None);
}
