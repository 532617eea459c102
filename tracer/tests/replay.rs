//! Recordings of real runs (tests/data/*.rec, made with `tracer record` on the kernels named in
//! their headers) replayed through the whole pipeline and compared with golden outputs. No root
//! and no kernel needed. `UPDATE_GOLDEN=1 cargo test --test replay` rewrites the golden files
//! after an intended change; review the diff before committing it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const RECORDINGS: [&str; 2] = ["zero-window-6.18", "drops-6.18"];

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn replay(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
        .arg("replay")
        .arg(file)
        .args(args)
        // Terminal lines show local time.
        .env("TZ", "UTC")
        .output()
        .expect("run tracer replay")
}

fn check_golden(golden: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(golden, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(golden).unwrap_or_else(|e| {
        panic!("{}: {e} (run with UPDATE_GOLDEN=1 to create it)", golden.display())
    });
    if expected != actual {
        let first = expected.lines().zip(actual.lines()).position(|(a, b)| a != b);
        panic!(
            "{} differs from the replay (first different line: {:?}; lines {} vs {})",
            golden.display(),
            first.map(|i| i + 1),
            expected.lines().count(),
            actual.lines().count()
        );
    }
}

#[test]
fn recordings_replay_to_their_golden_ndjson() {
    for name in RECORDINGS {
        let out = replay(&data(&format!("{name}.rec")), &["--json"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        check_golden(&data(&format!("{name}.golden.ndjson")), &text);
    }
}

#[test]
fn recordings_replay_to_their_golden_alerts_and_summary() {
    for name in RECORDINGS {
        let out = replay(&data(&format!("{name}.rec")), &["--no-events"]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf-8");
        check_golden(&data(&format!("{name}.golden.txt")), &text);
    }
}

#[test]
fn replay_is_deterministic() {
    let file = data("zero-window-6.18.rec");
    let a = replay(&file, &["--json"]).stdout;
    let b = replay(&file, &["--json"]).stdout;
    assert_eq!(a, b);
}

#[test]
fn the_zero_window_recording_explains_the_stall() {
    let out = replay(&data("zero-window-6.18.rec"), &["--json", "--no-events"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> =
        text.lines().map(|l| serde_json::from_str(l).expect("ndjson")).collect();
    let fired = |rule: &str| lines.iter().any(|v| v["kind"] == "alert" && v["rule"] == rule);
    for rule in ["zero_window_stall", "rcvbuf_pinned", "silly_window"] {
        assert!(fired(rule), "{rule} missing from the replay");
    }
    let summaries: Vec<&serde_json::Value> =
        lines.iter().filter(|v| v["kind"] == "summary").collect();
    assert_eq!(summaries.len(), 2, "one summary per end of the connection");
}

/// A copy of a recording, cut or damaged, in a temporary file.
fn damaged(name: &str, tag: &str, damage: impl FnOnce(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(data(name)).expect("read recording");
    let path = std::env::temp_dir().join(format!("tracer-{}-{tag}-{name}", std::process::id()));
    std::fs::write(&path, damage(text)).expect("write damaged copy");
    path
}

#[test]
fn a_truncated_recording_is_an_error_after_replaying_what_precedes_it() {
    let path = damaged("zero-window-6.18.rec", "cut", |t| t[..t.len() * 2 / 3].to_string());
    let out = replay(&path, &["--no-events"]);
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line") && err.contains("truncated"), "{err}");
    assert!(err.contains("everything before it was replayed"), "{err}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("flow-control summary"), "the summary is still printed:\n{text}");
    assert!(
        text.contains("zero_window_stall"),
        "alerts before the break are still reported:\n{text}"
    );
}

#[test]
fn a_corrupt_line_names_where_the_recording_broke() {
    let path = damaged("zero-window-6.18.rec", "corrupt", |t| {
        let mut lines: Vec<String> = t.lines().map(String::from).collect();
        lines[10] = "{\"ts_ns\": 12, \"kind\": \"window\", \"side\": \"sideways\"}".into();
        lines.join("\n") + "\n"
    });
    let out = replay(&path, &["--no-events"]);
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 11 (byte"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn not_a_recording_is_refused_clearly() {
    let path = damaged("zero-window-6.18.rec", "other", |_| "GET / HTTP/1.1\n".into());
    let out = replay(&path, &[]);
    let _ = std::fs::remove_file(&path);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not a tracer recording header"), "{err}");
    let missing = replay(Path::new("/nonexistent.rec"), &[]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("failed to open the recording"));
}

/// Events the kernel could not queue are never dropped silently: a recording's `lost` marker
/// shows as a warning line on a terminal and on stderr with --json.
#[test]
fn lost_events_are_shown() {
    let original = std::fs::read_to_string(data("zero-window-6.18.rec")).expect("recording");
    let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
    // After the header and two events; the trailer counts them too.
    lines.insert(3, r#"{"record":"lost","ts_ns":1795296864600000000,"count":7}"#.to_string());
    let last = lines.last_mut().expect("trailer");
    assert!(last.ends_with(r#""lost":0}"#), "{last}");
    *last = last.replace(r#""lost":0}"#, r#""lost":7}"#);
    let file = std::env::temp_dir().join(format!("tracer-lost-{}.rec", std::process::id()));
    std::fs::write(&file, lines.join("\n") + "\n").expect("write recording");

    let text = replay(&file, &["--no-summary"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    assert!(
        stdout.lines().any(|l| l.starts_with("!! 7 events lost: the ring buffer was full")),
        "{stdout}"
    );
    let json = replay(&file, &["--json", "--no-summary"]);
    let stderr = String::from_utf8_lossy(&json.stderr);
    assert!(
        stderr.contains("warning: 7 events lost (ring buffer full; 7 since start)"),
        "{stderr}"
    );
    let _ = std::fs::remove_file(&file);
}

/// Every line of a connection names its process once an event has given the name: a probe
/// (which carries none) shows the sender's process from its open event.
#[test]
fn event_lines_name_the_process_once_known() {
    let out = replay(&data("zero-window-6.18.rec"), &["--no-summary"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let probes: Vec<&str> = text.lines().filter(|l| l.contains(" probe ")).collect();
    assert!(!probes.is_empty(), "{text}");
    for line in probes {
        assert!(line.contains("python3/16334"), "{line}");
    }
}
