//! The shard and manifest formats: round trips, every kind of broken input, and a shard written by Python's
//! `safetensors` package from the description in docs/FORMAT.md.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::Dtype as St;
use shelfwise::catalog::sha256_hex;
use shelfwise::rng::Rng;
use shelfwise::{Catalog, Dtype, Error, Index, Manifest, SearchOptions, Shard, ShardEntry};
use shelfwise_testkit::synth::{self, SynthSpec};

fn good_shard() -> Vec<u8> {
    let cat = synth::generate(&SynthSpec::new(50, 8));
    synth::shard_bytes(&cat, 8, Dtype::I8, "m").unwrap()
}

fn code(r: Result<impl std::fmt::Debug, Error>) -> &'static str {
    r.expect_err("must fail").code()
}

/// Builds a shard from raw parts, bypassing the writer's checks.
fn raw(tensors: Vec<(&str, St, Vec<usize>, Vec<u8>)>, meta: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(&str, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let md: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, Some(md)).unwrap()
}

fn meta(dim: &str) -> Vec<(&'static str, String)> {
    vec![
        ("format", "shelfwise-shard".into()),
        ("version", "1".into()),
        ("dim", dim.into()),
        ("normalized", "false".into()),
        ("model_id", "m".into()),
    ]
}

fn ids(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut off = vec![0u32];
    let mut bytes = Vec::new();
    for i in 0..n {
        bytes.extend_from_slice(format!("id{i}").as_bytes());
        off.push(bytes.len() as u32);
    }
    (bytemuck::cast_slice(&off).to_vec(), bytes)
}

fn shard_with(
    emb: (St, Vec<usize>, Vec<u8>),
    extra: Vec<(&str, St, Vec<usize>, Vec<u8>)>,
    dim: &str,
) -> Vec<u8> {
    let n = emb.1[0];
    let (off, idb) = ids(n);
    let mut t = vec![
        ("embeddings", emb.0, emb.1, emb.2),
        ("id_offsets", St::U32, vec![n + 1], off),
        ("id_bytes", St::U8, vec![idb.len()], idb),
    ];
    t.extend(extra);
    let m = meta(dim);
    let m: Vec<(&str, &str)> = m.iter().map(|(k, v)| (*k, v.as_str())).collect();
    raw(t, &m)
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

#[test]
fn truncated_and_corrupt_shards() {
    let good = good_shard();
    assert!(Shard::from_bytes("ok", &good).is_ok());
    for cut in [0, 3, 8, 20, good.len() / 2, good.len() - 1] {
        assert_eq!(
            code(Shard::from_bytes("cut", &good[..cut])),
            "CORRUPT_SHARD",
            "cut at {cut}"
        );
    }
    let mut bad_header = good.clone();
    bad_header[10] = b'{';
    assert_eq!(code(Shard::from_bytes("hdr", &bad_header)), "CORRUPT_SHARD");
    let mut huge_len = good.clone();
    huge_len[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(code(Shard::from_bytes("len", &huge_len)), "CORRUPT_SHARD");
}

#[test]
fn random_mutations_never_panic() {
    let good = good_shard();
    let mut rng = Rng::new(4);
    let mut accepted = 0;
    for _ in 0..3000 {
        let mut b = good.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.next_u64() as u8;
        }
        if rng.below(4) == 0 {
            b.truncate(rng.below(b.len() as u64) as usize);
        }
        if let Ok(s) = Shard::from_bytes("fuzz", &b) {
            // Whatever loads must also rank without panicking.
            accepted += 1;
            if let Ok(c) = Catalog::from_shards(vec![s]) {
                let q = vec![0.5; c.dim()];
                let _ = Index::cpu(c).search_cpu(
                    &q,
                    &SearchOptions {
                        k: 5,
                        ..Default::default()
                    },
                );
            }
        }
    }
    assert!(
        accepted > 0,
        "some mutations only touch data bytes and still load"
    );
}

#[test]
fn wrong_dtypes_shapes_and_values() {
    let e4 = |v: Vec<f32>| (St::F32, vec![v.len() / 4, 4], f32_bytes(&v));
    // Embeddings in an unsupported dtype.
    let b = shard_with((St::I32, vec![2, 4], vec![0; 32]), vec![], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "DTYPE_MISMATCH");
    // Metadata dim disagrees with the tensor.
    let b = shard_with(e4(vec![0.0; 8]), vec![], "5");
    assert_eq!(code(Shard::from_bytes("x", &b)), "SHAPE_MISMATCH");
    // Rank-1 embeddings.
    let b = shard_with((St::F32, vec![4], f32_bytes(&[0.0; 4])), vec![], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "SHAPE_MISMATCH");
    // NaN and infinity in the vectors.
    let b = shard_with(e4(vec![0.0, 1.0, f32::NAN, 0.0]), vec![], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "INVALID_TENSOR");
    let b = shard_with(e4(vec![0.0, 1.0, f32::INFINITY, 0.0]), vec![], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "INVALID_TENSOR");
    // int8 without scales.
    let b = shard_with((St::I8, vec![1, 4], vec![1, 2, 3, 4]), vec![], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "MISSING_TENSOR");
    // Attributes of the wrong length or dtype, or out of range.
    let emb = || e4(vec![0.5; 8]);
    let b = shard_with(
        emb(),
        vec![("price", St::F32, vec![3], f32_bytes(&[1.0; 3]))],
        "4",
    );
    assert_eq!(code(Shard::from_bytes("x", &b)), "SHAPE_MISMATCH");
    let b = shard_with(emb(), vec![("price", St::F64, vec![2], vec![0; 16])], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "DTYPE_MISMATCH");
    let b = shard_with(emb(), vec![("in_stock", St::U8, vec![2], vec![1, 7])], "4");
    assert_eq!(code(Shard::from_bytes("x", &b)), "INVALID_TENSOR");
    let b = shard_with(emb(), vec![("category", St::U32, vec![2], vec![0; 8])], "4");
    assert_eq!(
        code(Shard::from_bytes("x", &b)),
        "BAD_METADATA",
        "category without num_categories"
    );
    let b = shard_with(
        emb(),
        vec![("popularity", St::F32, vec![2], f32_bytes(&[1.0, f32::NAN]))],
        "4",
    );
    assert_eq!(code(Shard::from_bytes("x", &b)), "INVALID_TENSOR");
}

#[test]
fn bad_ids_and_metadata() {
    let emb = f32_bytes(&[0.5; 8]);
    let mk = |off: Vec<u32>, idb: Vec<u8>, m: &[(&str, &str)]| {
        raw(
            vec![
                ("embeddings", St::F32, vec![2, 4], emb.clone()),
                (
                    "id_offsets",
                    St::U32,
                    vec![off.len()],
                    bytemuck::cast_slice(&off).to_vec(),
                ),
                ("id_bytes", St::U8, vec![idb.len()], idb),
            ],
            m,
        )
    };
    let m = meta("4");
    let m: Vec<(&str, &str)> = m.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(Shard::from_bytes("ok", &mk(vec![0, 1, 2], b"ab".to_vec(), &m)).is_ok());
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![0, 2, 1], b"ab".to_vec(), &m)
        )),
        "INVALID_TENSOR"
    );
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![0, 1, 5], b"ab".to_vec(), &m)
        )),
        "INVALID_TENSOR"
    );
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![1, 1, 2], b"ab".to_vec(), &m)
        )),
        "INVALID_TENSOR"
    );
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![0, 1, 2], vec![0xff, 0xfe], &m)
        )),
        "INVALID_TENSOR"
    );
    assert_eq!(
        code(Shard::from_bytes("x", &mk(vec![0, 1], b"a".to_vec(), &m))),
        "SHAPE_MISMATCH"
    );
    for (key, value) in [
        ("format", "other"),
        ("version", "2"),
        ("dim", "zero"),
        ("normalized", "yes"),
    ] {
        let m2: Vec<(&str, &str)> = m
            .iter()
            .map(|&(k, v)| if k == key { (k, value) } else { (k, v) })
            .collect();
        assert_eq!(
            code(Shard::from_bytes(
                "x",
                &mk(vec![0, 1, 2], b"ab".to_vec(), &m2)
            )),
            "BAD_METADATA",
            "{key}"
        );
    }
    let mut m4 = m.clone();
    m4.push(("num_categories", "2000000"));
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![0, 1, 2], b"ab".to_vec(), &m4)
        )),
        "BAD_METADATA",
        "more categories than the format allows"
    );
    let m3: Vec<(&str, &str)> = m
        .iter()
        .copied()
        .filter(|(k, _)| *k != "model_id")
        .collect();
    assert_eq!(
        code(Shard::from_bytes(
            "x",
            &mk(vec![0, 1, 2], b"ab".to_vec(), &m3)
        )),
        "BAD_METADATA"
    );
}

fn manifest_for(files: &[(&str, &[u8], usize)]) -> Manifest {
    Manifest {
        format: "shelfwise-catalog".into(),
        version: 1,
        model_id: "m".into(),
        dim: 8,
        dtype: Dtype::I8,
        normalized: true,
        item_count: files.iter().map(|f| f.2).sum(),
        categories: Vec::new(),
        shards: files
            .iter()
            .map(|(name, bytes, items)| ShardEntry {
                file: name.to_string(),
                sha256: sha256_hex(bytes),
                bytes: bytes.len() as u64,
                items: *items,
                dtype: Dtype::I8,
            })
            .collect(),
        recommender: None,
    }
}

#[test]
fn manifests_are_checked() {
    let good = good_shard();
    let m = manifest_for(&[("a.safetensors", &good, 50)]);
    let load =
        |m: &Manifest, bytes: &[u8]| Catalog::from_manifest(m, |_| Ok(bytes)).map(|c| c.len());
    assert_eq!(load(&m, &good).unwrap(), 50);
    // Round trip through JSON.
    let json = serde_json::to_vec(&m).unwrap();
    assert_eq!(Manifest::from_json(&json).unwrap(), m);

    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(code(load(&m, &tampered)), "INTEGRITY");
    assert_eq!(code(load(&m, &good[..100])), "INTEGRITY");

    let mut bad = m.clone();
    bad.shards[0].file = "../etc/passwd".into();
    assert_eq!(code(load(&bad, &good)), "BAD_MANIFEST");
    let mut bad = m.clone();
    bad.item_count = 51;
    assert_eq!(code(load(&bad, &good)), "BAD_MANIFEST");
    let mut bad = m.clone();
    bad.dim = 9;
    assert_eq!(code(load(&bad, &good)), "DIM_MISMATCH");
    let mut bad = m.clone();
    bad.shards.clear();
    bad.item_count = 0;
    assert_eq!(code(load(&bad, &good)), "BAD_MANIFEST");
    for junk in [&b""[..], b"{", b"[]", b"{\"format\": 3}", b"\xff\xfe"] {
        assert_eq!(code(Manifest::from_json(junk)), "BAD_MANIFEST");
    }
    let mut bad = m.clone();
    bad.shards[0].sha256 = "xyz".into();
    assert_eq!(code(bad.validate()), "BAD_MANIFEST");
    for path in [
        "%2e%2e/x.safetensors",
        "a/../b",
        "https://x/y",
        "a?b",
        "/abs",
    ] {
        let mut bad = m.clone();
        bad.shards[0].file = path.into();
        assert_eq!(code(bad.validate()), "BAD_MANIFEST", "{path}");
    }
    // The manifest's dtype and normalisation must be the files' own.
    let mut bad = m.clone();
    bad.dtype = Dtype::F32;
    bad.shards[0].dtype = Dtype::F32;
    assert_eq!(code(load(&bad, &good)), "BAD_MANIFEST");
    let mut bad = m.clone();
    bad.normalized = false;
    assert_eq!(code(load(&bad, &good)), "BAD_MANIFEST");
    let mut bad = m.clone();
    bad.item_count = usize::MAX;
    bad.shards.push(bad.shards[0].clone());
    bad.shards[1].items = usize::MAX;
    assert_eq!(
        code(bad.validate()),
        "BAD_MANIFEST",
        "an overflowing item count"
    );
}

#[test]
fn catalogue_level_errors() {
    let good = good_shard();
    let s = || Shard::from_bytes("a", &good).unwrap();
    assert_eq!(code(Catalog::from_shards(vec![s(), s()])), "DUPLICATE_ID");
    assert_eq!(code(Catalog::from_shards(vec![])), "EMPTY_INDEX");
    let empty = shelfwise::write_shard(&shelfwise::ShardSpec::<&str> {
        ids: &[],
        vectors: &[],
        dim: 8,
        dtype: Dtype::I8,
        normalize: true,
        model_id: "m",
        num_categories: None,
        attributes: &Default::default(),
    })
    .unwrap();
    let e = Shard::from_bytes("empty", &empty).unwrap();
    assert!(e.is_empty());
    assert_eq!(code(Catalog::from_shards(vec![e.clone()])), "EMPTY_INDEX");
    let other_dim = {
        let cat = synth::generate(&SynthSpec::new(5, 4));
        Shard::from_bytes("b", &synth::shard_bytes(&cat, 4, Dtype::I8, "m").unwrap()).unwrap()
    };
    assert_eq!(
        code(Catalog::from_shards(vec![s(), other_dim])),
        "DIM_MISMATCH"
    );
    let other_dtype = {
        let mut cat = synth::generate(&SynthSpec::new(5, 8));
        cat.ids.iter_mut().for_each(|i| i.push('x'));
        Shard::from_bytes("c", &synth::shard_bytes(&cat, 8, Dtype::F16, "m").unwrap()).unwrap()
    };
    assert_eq!(
        code(Catalog::from_shards(vec![s(), other_dtype])),
        "SHARD_MISMATCH"
    );
    // An empty shard beside a full one is fine.
    assert_eq!(Catalog::from_shards(vec![e, s()]).unwrap().len(), 50);
}

#[test]
fn writer_rejects_inconsistent_input() {
    let spec = |vectors: &'static [f32]| shelfwise::ShardSpec {
        ids: &["a", "b"],
        vectors,
        dim: 2,
        dtype: Dtype::F32,
        normalize: false,
        model_id: "m",
        num_categories: None,
        attributes: Box::leak(Box::default()),
    };
    assert_eq!(
        code(shelfwise::write_shard(&spec(&[1.0, 2.0, 3.0]))),
        "DIM_MISMATCH"
    );
    assert_eq!(
        code(shelfwise::write_shard(&spec(&[1.0, f32::NAN, 3.0, 4.0]))),
        "INVALID_QUERY"
    );
}

/// docs/FORMAT.md says a shard can be written from Python with `safetensors`; this does exactly that
/// (tests/python/write_shard.py) and checks the engine ranks it as the script expects.
#[test]
fn a_shard_written_by_python_loads_and_ranks() {
    let python = match std::env::var("SHELFWISE_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ if std::env::var("CI").is_ok_and(|v| !v.is_empty()) => {
            panic!("CI must run the Python interoperability test: set SHELFWISE_PYTHON (scripts/test.sh does)")
        }
        _ => {
            eprintln!("skipping: set SHELFWISE_PYTHON to a python with safetensors and numpy");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("shelfwise-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/write_shard.py");
    let status = std::process::Command::new(&python)
        .arg(script)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "the Python writer failed");
    let manifest = Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let files: HashMap<String, Vec<u8>> = manifest
        .shards
        .iter()
        .map(|s| (s.file.clone(), std::fs::read(dir.join(&s.file)).unwrap()))
        .collect();
    let catalog = Catalog::from_manifest(&manifest, |e| Ok(files[&e.file].as_slice())).unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let index = Index::cpu(catalog);
    for case in expected["cases"].as_array().unwrap() {
        let q: Vec<f32> = case["query"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let opts: SearchOptions = serde_json::from_value(case["options"].clone()).unwrap();
        let res = index.search_cpu(&q, &opts).unwrap();
        let want: Vec<String> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(res.ids, want, "case {}", case["name"]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The Python example in docs/FORMAT.md runs, and its output loads.
#[test]
fn the_python_example_in_the_format_doc_works() {
    let Ok(python) = std::env::var("SHELFWISE_PYTHON") else {
        assert!(
            std::env::var("CI").map_or(true, |v| v.is_empty()),
            "CI must run the Python interoperability test: set SHELFWISE_PYTHON"
        );
        eprintln!("skipping: set SHELFWISE_PYTHON to a python with safetensors and numpy");
        return;
    };
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md")).unwrap();
    let start = doc.find("```python\n").expect("a python block") + "```python\n".len();
    let code = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = std::env::temp_dir().join(format!("shelfwise-doc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("example.py"), code).unwrap();
    let status = std::process::Command::new(&python)
        .arg("example.py")
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let manifest = Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("shard-000.safetensors")).unwrap();
    let catalog = Catalog::from_manifest(&manifest, |_| Ok(bytes.as_slice())).unwrap();
    let index = Index::cpu(catalog);
    let mut q = vec![0f32; 8];
    index.catalog().row_f32(2, &mut q);
    let r = index
        .search_cpu(
            &q,
            &SearchOptions {
                k: 3,
                in_stock_only: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.ids[0], "sku-3");
    assert!(
        !r.ids.contains(&"sku-2".to_string()),
        "sku-2 is out of stock"
    );
    std::fs::remove_dir_all(&dir).ok();
}
