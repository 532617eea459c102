//! `tracer report` on the recordings of real runs (tests/data/*.rec): one self-contained HTML
//! page or one SVG per connection, with the lines, spans, marks and alerts those runs had, and
//! byte-identical output for the same input. No root and no kernel needed.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A fresh scratch directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tracer-report-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn report(file: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
        .arg("report")
        .arg(file)
        .args(args)
        .output()
        .expect("run tracer report")
}

/// Renders `name` to HTML in `dir` and returns the page.
fn html(name: &str, dir: &Path, extra: &[&str]) -> String {
    let out_path = dir.join(format!("{name}.html"));
    let out_arg = out_path.to_str().expect("utf-8 path");
    let mut args = vec!["--out", out_arg];
    args.extend_from_slice(extra);
    let out = report(&data(&format!("{name}.rec")), &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {err}");
    assert!(err.contains("2 connection(s)") && err.contains(out_arg), "{err}");
    std::fs::read_to_string(&out_path).expect("the report was written")
}

/// Every URL in the page is an XML namespace name, never something to fetch.
fn assert_self_contained(page: &str) {
    for scheme in ["http://", "https://"] {
        for (i, _) in page.match_indices(scheme) {
            let rest = &page[i..];
            assert!(
                rest.starts_with("http://www.w3.org/2000/svg\""),
                "external reference: {}",
                &rest[..rest.len().min(80)]
            );
            assert!(page[..i].ends_with("xmlns=\""), "a URL outside xmlns: {}", &rest[..40]);
        }
    }
    for tag in ["<script", "<link", "<img", "@import", "url("] {
        assert!(!page.contains(tag), "{tag} in a self-contained page");
    }
}

const LEGEND: [&str; 5] = [
    "window advertised by this host",
    "window advertised by the peer",
    "bytes in flight",
    "receive buffer (rcvbuf)",
    "unread bytes",
];

#[test]
fn the_zero_window_run_renders_one_chart_per_connection_with_its_story() {
    let dir = scratch("zw");
    let page = html("zero-window-6.18", &dir, &[]);
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert_self_contained(&page);
    assert_eq!(page.matches("<svg").count(), 2, "one chart per connection");
    for title in ["127.0.0.1:7777 &gt; 127.0.0.1:43386", "127.0.0.1:43386 &gt; 127.0.0.1:7777"] {
        // Both ends are on this host: each chart names the other end's process.
        let heading = format!(
            "<title>{title} · python3 (pid 16334) · other end on this host: python3 (pid \
             16334)</title>"
        );
        assert!(page.contains(&heading), "{title}");
    }
    // The two ends are listed one under the other, the second marked.
    assert_eq!(page.matches("<tr><td>└ <a href=\"#conn-2\">").count(), 1);
    assert_eq!(page.matches("<tr><td><a href=\"#conn-1\">").count(), 1);
    assert!(page.contains("6.18.44-fc-v595"), "the kernel is on the page");
    assert!(page.contains("cgroup_skb egress (packet headers)"), "the hooks are on the page");
    assert!(page.contains("receiver-limited: the local reader python3 (pid 16334)"), "verdict");
    for label in LEGEND {
        assert!(page.contains(label), "legend label {label:?}");
    }
    // Three zero-window episodes on each side of the connection.
    assert_eq!(page.matches("<g class=\"zero-window local\">").count(), 3);
    assert_eq!(page.matches("<g class=\"zero-window peer\">").count(), 3);
    assert_eq!(page.matches("<line class=\"probe\"").count(), 5, "the 5 probes nstat counted");
    for rule in
        ["zero_window_stall (local)", "zero_window_stall (peer)", "rcvbuf_pinned", "silly_window"]
    {
        assert!(page.contains(rule), "alert {rule}");
    }
    assert!(page.contains("<g class=\"alert\">"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_drops_run_shows_drops_and_its_alerts() {
    let dir = scratch("drops");
    let page = html("drops-6.18", &dir, &[]);
    assert_self_contained(&page);
    assert_eq!(page.matches("<svg").count(), 2);
    for title in ["127.0.0.1:7778 &gt; 127.0.0.1:57964", "127.0.0.1:57964 &gt; 127.0.0.1:7778"] {
        assert!(page.contains(&format!("<title>{title} ·")), "{title}");
    }
    for label in LEGEND {
        assert!(page.contains(label), "legend label {label:?}");
    }
    assert!(page.contains("<g class=\"zero-window local\">"));
    assert!(page.contains("<g class=\"zero-window peer\">"));
    assert_eq!(page.matches("<g class=\"drop\">").count(), 1);
    assert!(page.contains("PROTO_MEM (32.0 KiB) for lack of receive space"), "drop tooltip");
    for rule in ["zero_window_stall", "rcvbuf_pinned", "flow_control_drops"] {
        assert!(page.contains(&format!("{rule} (local)")), "alert {rule}");
    }
    assert!(page.contains("set under memory pressure"), "uncounted zero window in a tooltip");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A receiver with SO_RCVBUF pinned (32 KiB) reading as fast as it can while a sender writes
/// for 0.3 s: the index says what held the receiving end's window, and nothing for the sender,
/// whose own window holds nothing back.
#[test]
fn the_index_names_what_held_each_receiving_window() {
    let dir = scratch("pinned");
    let page = html("pinned-rcvbuf-6.18", &dir, &[]);
    assert!(page.contains("<th>window limited by</th>"));
    let rows: Vec<&str> = page.split("<tr><td>").skip(1).collect();
    let receiver = rows.iter().find(|r| r.contains("127.0.0.1:9104 &gt;")).expect("receiver row");
    assert!(receiver.contains("<td>the receive buffer at its maximum (100%)</td>"), "{receiver}");
    let sender = rows.iter().find(|r| r.contains("&gt; 127.0.0.1:9104")).expect("sender row");
    assert!(sender.contains("</td><td></td><td>"), "no limit for the sending end: {sender}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alert_thresholds_from_flags_apply() {
    let dir = scratch("flags");
    let page = html("zero-window-6.18", &dir, &["--alert", "zero_window_stall.enabled=false"]);
    assert!(!page.contains("zero_window_stall"), "a disabled rule draws no marker");
    assert!(page.contains("rcvbuf_pinned"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn svg_format_writes_one_file_per_connection() {
    let dir = scratch("svg");
    let out_dir = dir.join("charts");
    let out = report(
        &data("drops-6.18.rec"),
        &["--format", "svg", "--out", out_dir.to_str().expect("utf-8 path")],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("the directory was made")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["127.0.0.1_57964-127.0.0.1_7778.svg", "127.0.0.1_7778-127.0.0.1_57964.svg"]);
    for name in names {
        let svg = std::fs::read_to_string(out_dir.join(&name)).expect("read svg");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{name}");
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
        assert_self_contained(&svg);
        assert!(svg.contains("6.18.44-fc-v595"), "{name}: the kernel");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_output_paths_sit_next_to_the_recording() {
    let dir = scratch("defaults");
    let rec = dir.join("run.rec");
    std::fs::copy(data("zero-window-6.18.rec"), &rec).expect("copy recording");
    assert!(report(&rec, &[]).status.success());
    assert!(dir.join("run.html").is_file(), "FILE with .html");
    assert!(report(&rec, &["--format", "svg"]).status.success());
    assert_eq!(std::fs::read_dir(dir.join("run-report")).expect("FILE stem + -report").count(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rendering_is_deterministic() {
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    for name in ["zero-window-6.18", "drops-6.18"] {
        assert_eq!(html(name, &a, &[]), html(name, &b, &[]), "{name}: HTML differs");
        for dir in [&a, &b] {
            let out = dir.join(format!("{name}-svg"));
            let out = report(
                &data(&format!("{name}.rec")),
                &["--format", "svg", "--out", out.to_str().expect("utf-8 path")],
            );
            assert!(out.status.success());
        }
        for entry in std::fs::read_dir(a.join(format!("{name}-svg"))).expect("svg dir") {
            let file = entry.expect("entry").file_name();
            let one = std::fs::read(a.join(format!("{name}-svg")).join(&file)).expect("read");
            let two = std::fs::read(b.join(format!("{name}-svg")).join(&file)).expect("read");
            assert!(one == two, "{name}: {file:?} differs");
        }
    }
    let _ = std::fs::remove_dir_all(&a);
    let _ = std::fs::remove_dir_all(&b);
}

#[test]
fn a_cut_recording_is_charted_up_to_the_break_then_an_error() {
    let dir = scratch("cut");
    let text = std::fs::read_to_string(data("zero-window-6.18.rec")).expect("read recording");
    let rec = dir.join("cut.rec");
    std::fs::write(&rec, &text[..text.len() * 2 / 3]).expect("write cut copy");
    let out = report(&rec, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("truncated") && err.contains("line"), "{err}");
    let page = std::fs::read_to_string(dir.join("cut.html")).expect("the part before is charted");
    assert_eq!(page.matches("<svg").count(), 2);
    assert!(page.contains("The recording is damaged"), "the page says so");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_empty_and_connectionless_recordings_are_clear_errors() {
    let dir = scratch("errors");
    let missing = report(&dir.join("nope.rec"), &[]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("failed to open the recording"));

    let header = std::fs::read_to_string(data("zero-window-6.18.rec"))
        .expect("read recording")
        .lines()
        .next()
        .expect("a header")
        .to_string();
    let rec = dir.join("empty.rec");
    std::fs::write(
        &rec,
        format!("{header}\n{{\"record\":\"end\",\"ts_ns\":1,\"events\":0,\"lost\":0}}\n"),
    )
    .expect("write");
    let out = report(&rec, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no connection to chart"), "{err}");
    assert!(!dir.join("empty.html").exists(), "nothing is written");
    let _ = std::fs::remove_dir_all(&dir);
}
