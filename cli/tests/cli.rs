//! The CLI end to end: synth → shard → load and rank; and its errors on bad catalogues.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;

use common::{shelfwise, tmp};
use shelfwise::{Catalog, Index, Manifest, SearchOptions};

fn load(dir: &Path) -> Catalog {
    let m = Manifest::from_json(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let files: HashMap<String, Vec<u8>> = m
        .shards
        .iter()
        .map(|s| (s.file.clone(), std::fs::read(dir.join(&s.file)).unwrap()))
        .collect();
    Catalog::from_manifest(&m, |e| Ok(files[&e.file].as_slice())).unwrap()
}

#[test]
fn synth_then_shard_then_rank() {
    let dir = tmp("ok");
    let data = dir.join("data");
    let out = dir.join("bundle");
    let o = shelfwise(&[
        "synth",
        "--items",
        "2500",
        "--dim",
        "32",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for dtype in ["int8", "f16", "f32"] {
        let o = shelfwise(&[
            "shard",
            "--vectors",
            data.join("vectors.safetensors").to_str().unwrap(),
            "--catalog",
            data.join("catalog.jsonl").to_str().unwrap(),
            "--dtype",
            dtype,
            "--shard-items",
            "1000",
            "--model-id",
            "synthetic",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let catalog = load(&out);
        assert_eq!(catalog.len(), 2500);
        assert_eq!(catalog.shards().len(), 3);
        assert_eq!(catalog.category_names().len(), 24);
        let index = Index::cpu(catalog);
        let mut q = vec![0f32; 32];
        index.catalog().row_f32(1234, &mut q);
        let r = index
            .search_cpu(
                &q,
                &SearchOptions {
                    k: 5,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.ids[0], "sku-0001234", "{dtype}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn shard_from(lines: &str, skip_bad: bool) -> Output {
    let dir = tmp(&format!("bad{}", lines.len()));
    std::fs::write(dir.join("catalog.jsonl"), lines).unwrap();
    let n = lines.lines().filter(|l| !l.trim().is_empty()).count();
    let v: Vec<f32> = (0..n * 4).map(|i| (i % 7) as f32 + 1.0).collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![n, 4],
        bytemuck::cast_slice(&v),
    )
    .unwrap();
    std::fs::write(
        dir.join("v.safetensors"),
        safetensors::serialize([("vectors", view)], None).unwrap(),
    )
    .unwrap();
    let mut args = vec![
        "shard".to_string(),
        "--vectors".into(),
        dir.join("v.safetensors").to_string_lossy().into(),
        "--catalog".into(),
        dir.join("catalog.jsonl").to_string_lossy().into(),
        "--out".into(),
        dir.join("out").to_string_lossy().into(),
    ];
    if skip_bad {
        args.push("--skip-bad".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    shelfwise(&args)
}

#[test]
fn bad_catalogues_name_the_line() {
    let good =
        r#"{"id":"a","title":"A","category":"x","price":1.5,"in_stock":true,"popularity":0.1}"#;
    let bad = r#"{"id":"b","title":"B","price":"cheap"}"#;
    let o = shard_from(&format!("{good}\n{bad}\n"), false);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("catalog.jsonl:2"), "{err}");

    let o = shard_from(&format!("{good}\n{bad}\n"), true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 bad lines skipped"));

    let o = shard_from(&format!("{good}\n{good}\n"), false);
    assert!(String::from_utf8_lossy(&o.stderr).contains("duplicate item id `a`"));

    let o = shard_from("\n\n", false);
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty"));

    let partial = r#"{"id":"c","title":"C"}"#;
    let o = shard_from(&format!("{good}\n{partial}\n"), false);
    assert!(String::from_utf8_lossy(&o.stderr).contains("some catalogue lines but not all"));
}
