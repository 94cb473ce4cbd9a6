//! `shelfwise data`: the MovieLens-100k converter on the real files, and the input formats' checks (file and
//! line in every error, `--skip-bad`, duplicate ids, unknown items, empty catalogues).

mod common;

use std::path::Path;
use std::process::Output;

use common::{shelfwise, text, tmp};

const ITEMS: &str = r#"{"id": "a", "title": "Alpha", "categories": ["x"]}
{"id": "b", "title": "Beta", "categories": ["x", "y"], "year": 1999, "price": 9.5, "in_stock": true}
{"id": "c", "title": "Gamma", "text": "a longer description"}
"#;

const EVENTS: &str = r#"{"session": "u1", "type": "view", "item": "a", "ts": 1}
{"session": "u1", "type": "search", "query": "beta things", "ts": 2}
{"session": "u1", "type": "purchase", "item": "b", "ts": 3.5}
{"session": "u2", "type": "rate", "item": "c", "value": 4, "ts": 4}
"#;

fn check(dir: &Path, items: &str, events: &str, extra: &[&str]) -> Output {
    std::fs::write(dir.join("catalog.jsonl"), items).unwrap();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let c = dir.join("catalog.jsonl");
    let e = dir.join("events.jsonl");
    let mut args = vec![
        "data",
        "check",
        "--catalog",
        c.to_str().unwrap(),
        "--events",
        e.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    shelfwise(&args)
}

#[test]
fn good_files_pass_the_check() {
    let dir = tmp("good");
    let o = check(&dir, ITEMS, EVENTS, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("3 items, 4 events in 2 sessions"),
        "{}",
        text(&o)
    );
}

#[test]
fn bad_lines_name_the_file_and_line_and_can_be_skipped() {
    let dir = tmp("bad");
    let cases: &[(&str, &str, &str)] = &[
        // (catalogue, events, expected message part)
        (
            "{\"id\": \"a\"}\n{not json\n",
            EVENTS,
            "catalog.jsonl:2:",
        ),
        (
            ITEMS,
            "{\"session\": \"u\", \"type\": \"search\", \"ts\": 1}\n",
            "events.jsonl:1: a search event needs a non-empty `query`",
        ),
        (
            ITEMS,
            "{\"session\": \"u\", \"type\": \"view\", \"item\": \"a\", \"ts\": 1}\n{\"session\": \"u\", \"type\": \"teleport\", \"item\": \"a\", \"ts\": 2}\n",
            "events.jsonl:2:",
        ),
        (
            "{\"id\": \"a\", \"price\": \"cheap\"}\n",
            EVENTS,
            "catalog.jsonl:1:",
        ),
    ];
    for (items, events, want) in cases {
        let o = check(&dir, items, events, &[]);
        assert!(!o.status.success(), "{want}: accepted");
        assert!(text(&o).contains(want), "{want}: {}", text(&o));
    }
    // The same malformed event line is skipped, and counted, with --skip-bad.
    let events = format!("{EVENTS}{{\"session\": \"u\", \"type\": \"view\", \"ts\": 9}}\n");
    let o = check(&dir, ITEMS, &events, &["--skip-bad"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("skipped 0 catalogue and 1 event lines"),
        "{}",
        text(&o)
    );
}

#[test]
fn duplicates_unknown_items_and_empty_catalogues_are_errors() {
    let dir = tmp("cross");
    let dup = format!("{ITEMS}{{\"id\": \"b\", \"title\": \"Beta again\"}}\n");
    let o = check(&dir, &dup, EVENTS, &["--skip-bad"]);
    assert!(
        text(&o).contains("catalog.jsonl:4: duplicate item id `b`"),
        "{}",
        text(&o)
    );
    let unknown = format!(
        "{EVENTS}{{\"session\": \"u\", \"type\": \"click\", \"item\": \"zzz\", \"ts\": 9}}\n"
    );
    let o = check(&dir, ITEMS, &unknown, &["--skip-bad"]);
    assert!(
        text(&o).contains("events.jsonl:5: item `zzz` is not in the catalogue"),
        "{}",
        text(&o)
    );
    let o = check(&dir, "\n\n", EVENTS, &[]);
    assert!(
        text(&o).contains("the catalogue has no items"),
        "{}",
        text(&o)
    );
    let o = check(&dir, ITEMS, EVENTS, &["--no-such-flag"]);
    assert!(!o.status.success());
}

#[test]
fn movielens_100k_converts() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache/data/ml-100k");
    if !source.join("ml-100k.inter").exists() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have MovieLens-100k (scripts/fetch-data.sh)"
        );
        eprintln!("skipping: run scripts/fetch-data.sh");
        return;
    }
    let out = tmp("ml100k");
    let o = shelfwise(&[
        "data",
        "ml100k",
        "--source",
        source.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("wrote 1682 items and 100000 events"),
        "{}",
        text(&o)
    );
    let events = std::fs::read_to_string(out.join("events.jsonl")).unwrap();
    let mut last = f64::NEG_INFINITY;
    let mut users = std::collections::HashSet::new();
    for line in events.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["ts"].as_f64().unwrap();
        assert!(ts >= last, "events are ordered by time");
        last = ts;
        assert_eq!(v["type"], "rate");
        users.insert(v["session"].as_str().unwrap().to_string());
    }
    assert_eq!(users.len(), 943);
    let catalog = std::fs::read_to_string(out.join("catalog.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(catalog.lines().next().unwrap()).unwrap();
    assert_eq!(first["title"], "Toy Story");
    assert_eq!(first["year"], 1995);
    assert_eq!(
        first["categories"],
        serde_json::json!(["Animation", "Children's", "Comedy"])
    );
}

#[test]
fn eval_runs_the_baselines_and_rejects_what_it_cannot_evaluate() {
    let dir = tmp("eval");
    std::fs::write(dir.join("catalog.jsonl"), ITEMS).unwrap();
    std::fs::write(dir.join("events.jsonl"), EVENTS).unwrap();
    let (c, e) = (dir.join("catalog.jsonl"), dir.join("events.jsonl"));
    let args = |split: &str| -> Output {
        shelfwise(&[
            "eval",
            "--catalog",
            c.to_str().unwrap(),
            "--events",
            e.to_str().unwrap(),
            "--split",
            split,
        ])
    };
    // u1 has two item events and u2 one: nothing to evaluate.
    let o = args("test");
    assert!(!o.status.success());
    assert!(text(&o).contains("nothing to evaluate"), "{}", text(&o));
    let o = args("everything");
    assert!(!o.status.success());

    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../cache/data/ml-100k");
    if !source.join("ml-100k.inter").exists() {
        return;
    }
    let out = tmp("eval-ml");
    assert!(shelfwise(&[
        "data",
        "ml100k",
        "--source",
        source.to_str().unwrap(),
        "--out",
        out.to_str().unwrap()
    ])
    .status
    .success());
    let o = shelfwise(&[
        "eval",
        "--catalog",
        out.join("catalog.jsonl").to_str().unwrap(),
        "--events",
        out.join("events.jsonl").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("943 test cases"), "{t}");
    let ndcg = |name: &str| -> f64 {
        let line = t
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap();
        line.split('|').nth(4).unwrap().trim().parse().unwrap()
    };
    // Sanity, not targets: popularity is weak and transitions are strong on this data.
    assert!((0.02..0.08).contains(&ndcg("most popular")), "{t}");
    assert!((0.06..0.12).contains(&ndcg("item-to-item")), "{t}");
}

#[test]
fn train_writes_a_model_the_engine_loads() {
    let dir = tmp("train");
    // 40 sessions walking 12 items in order: the next item is always the current one plus one.
    let items: String = (0..12)
        .map(|i| format!("{{\"id\": \"i{i}\", \"title\": \"Item {i}\"}}\n"))
        .collect();
    let mut events = String::new();
    for s in 0..40 {
        for t in 0..8 {
            let item = (s + t) % 12;
            events.push_str(&format!(
                "{{\"session\": \"s{s}\", \"type\": \"view\", \"item\": \"i{item}\", \"ts\": {t}}}\n"
            ));
        }
    }
    std::fs::write(dir.join("catalog.jsonl"), items).unwrap();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let (c, e, out) = (
        dir.join("catalog.jsonl"),
        dir.join("events.jsonl"),
        dir.join("model"),
    );
    let run = |extra: &[&str]| -> Output {
        let mut args = vec![
            "train",
            "--catalog",
            c.to_str().unwrap(),
            "--events",
            e.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--dim",
            "16",
            "--max-len",
            "8",
            "--items",
            "id",
        ];
        args.extend_from_slice(extra);
        shelfwise(&args)
    };
    let o = run(&["--heads", "3"]);
    assert!(
        !o.status.success() && text(&o).contains("multiple of --heads"),
        "{}",
        text(&o)
    );
    let o = run(&["--max-epochs", "30", "--patience", "30"]);
    assert!(o.status.success(), "{}", text(&o));
    // The pattern is deterministic, so the model learns it.
    let t = text(&o);
    let hr10: f64 = t
        .split("test: HR@10 ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!(hr10 > 0.9, "{t}");
    let cfg =
        shelfwise::model::ModelConfig::from_json(&std::fs::read(out.join("config.json")).unwrap())
            .unwrap();
    assert!(cfg.shelfwise.causal && cfg.shelfwise.pre_ln);
    shelfwise::model::BertWeights::from_safetensors(
        "model.safetensors",
        &std::fs::read(out.join("model.safetensors")).unwrap(),
        &cfg,
    )
    .unwrap();
}

#[test]
fn embed_and_eval_model_reject_bad_input_with_messages() {
    let dir = tmp("badmodel");
    std::fs::write(dir.join("config.json"), "{not json").unwrap();
    std::fs::write(dir.join("model.safetensors"), b"\x01\x02").unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    let d = dir.to_str().unwrap();
    let o = shelfwise(&["embed", "--model", d, "--text", "hello"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("config"), "{}", text(&o));
    let o = shelfwise(&["embed", "--model", d]);
    assert!(text(&o).contains("nothing to embed"), "{}", text(&o));
    std::fs::write(dir.join("texts.json"), "{\"texts\": [1, 2]}").unwrap();
    let o = shelfwise(&[
        "embed",
        "--model",
        d,
        "--input",
        dir.join("texts.json").to_str().unwrap(),
    ]);
    assert!(
        text(&o).contains("expected an array of strings"),
        "{}",
        text(&o)
    );

    std::fs::write(dir.join("catalog.jsonl"), ITEMS).unwrap();
    let events: String = (0..4)
        .map(|t| {
            format!(
                "{{\"session\": \"u\", \"type\": \"view\", \"item\": \"{}\", \"ts\": {t}}}\n",
                ["a", "b", "c", "a"][t]
            )
        })
        .collect();
    std::fs::write(dir.join("events.jsonl"), events).unwrap();
    let o = shelfwise(&[
        "eval",
        "--catalog",
        dir.join("catalog.jsonl").to_str().unwrap(),
        "--events",
        dir.join("events.jsonl").to_str().unwrap(),
        "--model",
        d,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("config"), "{}", text(&o));
    assert!(!text(&o).contains("panicked"), "{}", text(&o));
}
