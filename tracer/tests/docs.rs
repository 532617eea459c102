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
