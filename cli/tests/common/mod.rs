//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)] // each test file uses its own subset

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the built `shelfwise` binary.
pub fn shelfwise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shelfwise"))
        .args(args)
        .output()
        .expect("run the CLI")
}

/// A fresh, empty temporary folder for test `name`.
pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("shelfwise-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Standard output and error, together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// all-MiniLM-L6-v2 from the model cache; `None` (skip) when it is absent outside CI, a panic in CI.
pub fn minilm_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cache/models/all-MiniLM-L6-v2"
    ));
    if dir.join("model.safetensors").exists() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
        panic!(
            "{} is missing: scripts/fetch-models.sh must run first",
            dir.display()
        );
    }
    eprintln!("skipping: run scripts/fetch-models.sh to fetch all-MiniLM-L6-v2");
    None
}
