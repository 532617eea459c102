//! The NDJSON schema document (docs/ndjson.md) stays true: one section per kind, and every
//! example parses with the fields the contract promises.

use std::path::Path;

const KINDS: [&str; 14] = [
    "open",
    "window",
    "zero_window_start",
    "zero_window_end",
    "inflight",
    "probe",
    "rcv_space",
    "read",
    "owner",
    "drop",
    "close",
    "alert",
    "alert_resolved",
    "summary",
];

#[test]
fn every_kind_has_a_parsing_example() {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/ndjson.md");
    let text = std::fs::read_to_string(&doc).expect("docs/ndjson.md");
    let examples: Vec<serde_json::Value> = text
        .split("```json\n")
        .skip(1)
        .map(|block| block.split("\n```").next().expect("closed block"))
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("bad example {line}: {e}"))
        })
        .collect();
    for kind in KINDS {
        assert!(text.contains(&format!("## `{kind}`")), "{kind} is not documented");
        assert!(examples.iter().any(|e| e["kind"] == kind), "no example of {kind}");
    }
    for e in &examples {
        for key in ["ts_ns", "kind", "saddr", "sport", "daddr", "dport"] {
            assert!(e.get(key).is_some(), "example without {key}: {e}");
        }
    }
    for side in ["local", "peer"] {
        assert!(
            examples.iter().any(|e| e["kind"] == "window" && e["side"] == side),
            "no window example for side {side}"
        );
    }
}

/// The README's layout section names every source file (by its stem) and every folder, so a
/// newcomer who follows it sees every module that exists.
#[test]
fn readme_layout_names_every_module() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let layout = readme
        .split("## Layout")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("a Layout section in README.md");
    let words: std::collections::BTreeSet<&str> =
        layout.split(|c: char| !(c.is_alphanumeric() || c == '_')).collect();
    let mut missing = Vec::new();
    for dir in ["tracer/src", "tracer-ebpf/src", "tracer-common/src", "xtask/src"] {
        let mut stack = vec![root.join(dir)];
        while let Some(path) = stack.pop() {
            for entry in std::fs::read_dir(&path).expect("a source folder") {
                let path = entry.expect("a folder entry").path();
                let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                if path.is_dir() {
                    stack.push(path.clone());
                } else if path.extension().is_none_or(|e| e != "rs") || stem == "mod" {
                    continue;
                }
                if !words.contains(stem) {
                    missing.push(path.strip_prefix(&root).unwrap_or(&path).display().to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "README's Layout section does not name: {missing:?}");
}
