//! The layer rule of docs/ARCHITECTURE.md, checked on the source: each module of `src/` may import only the
//! layers below it, only the GPU backend names `wgpu`, only `src/wasm/` names the JS bindings, and the
//! model and ranking layers name no concrete backend. Comments are not code, so they are skipped.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules (a file `src/x.rs` or a folder `src/x/`) and the crate modules each may name.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("rng", &[]),
    ("device", &["error"]),
    ("events", &["error"]),
    ("profile", &["error"]),
    ("tokenize", &["error"]),
    ("shard", &["error"]),
    ("catalog", &["error", "events", "shard"]),
    ("model", &["error", "events", "rng", "tokenize"]),
    ("rank", &["error", "catalog", "shard"]),
    (
        "backend",
        &[
            "error", "device", "events", "rng", "catalog", "shard", "model", "rank", "backend",
        ],
    ),
    (
        "pipeline",
        &[
            "error",
            "device",
            "events",
            "profile",
            "tokenize",
            "catalog",
            "shard",
            "model",
            "rank",
            "backend",
            "pipeline",
            "on_backend",
        ],
    ),
    (
        "wasm",
        &[
            "error", "device", "events", "profile", "tokenize", "catalog", "shard", "model",
            "rank", "backend", "pipeline", "wasm",
        ],
    ),
    ("lib", &[]),
];

/// Names that only one folder of `src/` may use.
const OWNED_NAMES: &[(&str, &str)] = &[
    ("wgpu", "backend/gpu/"),
    ("wasm_bindgen", "wasm/"),
    ("web_sys", "wasm/"),
    ("js_sys", "wasm/"),
    ("serde_wasm_bindgen", "wasm/"),
];

/// Concrete backends, which the model and ranking layers never name: they are written against
/// `NnBackend` and `RankBackend`.
const CONCRETE_BACKENDS: &[&str] = &[
    "CpuNn",
    "GpuNn",
    "CpuRank",
    "GpuIndex",
    "GpuContext",
    "gemm::",
    "backend::",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The file's code: every line with `//` comments cut off (string literals holding `//` are rare enough
/// in this crate that cutting them too only hides code, never invents it).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |i| &l[..i]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifier-bounded occurrences of `word` in `code`.
fn names(code: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + word.len()..].chars().next();
        let starts_clean = !before.is_some_and(ident);
        let ends_clean = word.ends_with("::") || !after.is_some_and(ident);
        starts_clean && ends_clean
    })
}

/// The crate modules a file's code names as `crate::x`.
fn crate_imports(code: &str) -> BTreeSet<String> {
    code.match_indices("crate::")
        .filter(|(i, _)| !code[..*i].ends_with('$'))
        .map(|(i, m)| {
            code[i + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_lowercase()))
        .collect()
}

struct Source {
    /// Path under `src/`, with `/` separators.
    rel: String,
    module: String,
    code: String,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "found only {} files", files.len());
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let module = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            Source {
                code: code(&std::fs::read_to_string(&p).unwrap()),
                rel,
                module,
            }
        })
        .collect()
}

fn violations() -> Vec<String> {
    let mut bad = Vec::new();
    for s in sources() {
        let Some((_, allowed)) = LAYERS.iter().find(|(m, _)| *m == s.module) else {
            bad.push(format!(
                "src/{}: module `{}` has no place in the layer table",
                s.rel, s.module
            ));
            continue;
        };
        for import in crate_imports(&s.code) {
            if import != s.module && !allowed.contains(&import.as_str()) {
                bad.push(format!(
                    "src/{}: `{}` may not import `crate::{import}`",
                    s.rel, s.module
                ));
            }
        }
        for (name, owner) in OWNED_NAMES {
            if !s.rel.starts_with(owner) && names(&s.code, name) {
                bad.push(format!(
                    "src/{}: names `{name}`, which only src/{owner} may",
                    s.rel
                ));
            }
        }
        if s.module == "model" || s.module == "rank" {
            for name in CONCRETE_BACKENDS {
                if names(&s.code, name) {
                    bad.push(format!(
                        "src/{}: the {} layer names the concrete backend `{name}`",
                        s.rel, s.module
                    ));
                }
            }
        }
    }
    bad
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let bad = violations();
    assert!(bad.is_empty(), "layer rule broken:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_what_it_must() {
    // The checker itself: it must find imports and names in code and ignore them in comments.
    let c = code(
        "use crate::backend::cpu::CpuRank; // crate::wasm\n/// uses wgpu\nlet x = wgpu::Device;",
    );
    assert_eq!(crate_imports(&c), BTreeSet::from(["backend".to_string()]));
    assert!(names(&c, "wgpu") && names(&c, "CpuRank") && names(&c, "backend::"));
    assert!(!names("let wgpu_like = 1;", "wgpu"));
    assert!(!names(&code("// wgpu"), "wgpu"));
}
