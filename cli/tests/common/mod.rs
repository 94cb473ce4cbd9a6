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
