//! Exporter tests: the exposition after synthetic events and after a recorded run, promtool's
//! verdict on it, bounded label cardinality, the health gauges, and the HTTP endpoint.

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};

use super::*;
use crate::alerts::Thresholds;
use crate::pipeline::Pipeline;
use crate::record::{Item, Reader};
use crate::timeline::testutil::{self as tu, MS};

fn pipeline(shared: &SharedMetrics) -> Pipeline {
    let mut p = Pipeline::new(Thresholds::default());
    p.add(Box::new(shared.clone()));
    p
}

/// An event on socket `sk` between this host's `sport` and 127.0.0.2:`dport`, by `pid`.
fn ev(ts_ms: u64, sk: u64, (sport, dport): (u16, u16), pid: u32, body: Body) -> Event {
    let mut e = tu::at(ts_ms, sk, body);
    e.sport = sport;
    e.dport = dport;
    e.pid = Some(pid);
    e
}

fn open(active: bool, comm: Option<&str>) -> Body {
    Body::Open {
        active,
        snd_wscale: 7,
        rcv_wscale: 7,
        wscale_ok: true,
        advmss: 1460,
        rcvbuf: 131072,
        comm: comm.map(str::to_string),
    }
}

fn drop_reason(reason: &str, bytes: u32) -> Body {
    Body::Drop { reason: reason.to_string(), bytes }
}

/// A client (connected, to port 7777) that probes a zero window, and a server (accepted on
/// 7777) whose window goes to zero, drops segments, reopens and is read.
fn scenario() -> Vec<Event> {
    let client = (40001, 7777);
    let server = (7777, 40002);
    vec![
        ev(0, 1, client, 42, open(true, Some("client"))),
        ev(1, 2, server, 43, open(false, Some("server"))),
        ev(10, 1, client, 42, tu::zero_start(Side::Peer)),
        ev(10, 2, server, 43, tu::zero_start_local(4096, 8192)),
        ev(200, 1, client, 42, tu::probe(1, 1, 400.0)),
        ev(300, 2, server, 43, drop_reason("TCP_ZEROWINDOW", 1000)),
        ev(301, 2, server, 43, drop_reason("reason 99", 10)),
        ev(600, 1, client, 42, tu::probe(1, 2, 800.0)),
        ev(1400, 1, client, 42, tu::probe(2, 3, 1600.0)),
        ev(2510, 1, client, 42, tu::zero_end(Side::Peer, 2048, Some(2500 * MS))),
        ev(2510, 2, server, 43, tu::zero_end(Side::Local, 2048, Some(2500 * MS))),
        ev(2600, 2, server, 43, tu::read(4096)),
    ]
}

fn run(metrics: Metrics, events: &[Event], now_ms: u64) -> SharedMetrics {
    let shared = SharedMetrics::new(metrics);
    let mut p = pipeline(&shared);
    for e in events {
        p.event(e).unwrap();
    }
    p.tick(now_ms * MS).unwrap();
    shared
}

fn has(text: &str, line: &str) {
    assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
}

#[test]
fn renders_synthetic_events() {
    let shared = run(Metrics::new(false), &scenario(), 2700);
    shared.lock().on_lost(3);
    shared.lock().on_drain(7, 1 << 20, 4 << 20);
    let text = shared.lock().render();
    let server = r#"port="7777",process="server""#;
    let client = r#"port="7777",process="client""#;
    has(&text, "# TYPE tcp_flow_zero_window_episodes_total counter");
    has(&text, &format!("tcp_flow_zero_window_episodes_total{{{server},side=\"local\"}} 1"));
    has(&text, &format!("tcp_flow_zero_window_episodes_total{{{client},side=\"peer\"}} 1"));
    has(&text, &format!("tcp_flow_zero_window_probes_total{{{client}}} 3"));
    has(&text, &format!("tcp_flow_zero_window_probe_backoff_bucket{{{client},le=\"0\"}} 0"));
    has(&text, &format!("tcp_flow_zero_window_probe_backoff_bucket{{{client},le=\"2\"}} 2"));
    has(&text, &format!("tcp_flow_zero_window_probe_backoff_bucket{{{client},le=\"+Inf\"}} 3"));
    has(&text, &format!("tcp_flow_zero_window_probe_backoff_sum{{{client}}} 6"));
    let local = format!("{server},side=\"local\"");
    has(&text, &format!("tcp_flow_zero_window_duration_seconds_bucket{{{local},le=\"1\"}} 0"));
    has(&text, &format!("tcp_flow_zero_window_duration_seconds_bucket{{{local},le=\"2.5\"}} 1"));
    has(&text, &format!("tcp_flow_zero_window_duration_seconds_sum{{{local}}} 2.5"));
    has(&text, &format!("tcp_flow_zero_window_duration_seconds_count{{{local}}} 1"));
    has(&text, &format!("tcp_flow_drops_total{{{server},reason=\"TCP_ZEROWINDOW\"}} 1"));
    has(&text, &format!("tcp_flow_drops_total{{{server},reason=\"other\"}} 1"));
    has(&text, &format!("tcp_flow_dropped_bytes_total{{{server},reason=\"TCP_ZEROWINDOW\"}} 1000"));
    has(&text, &format!("tcp_flow_read_bytes_total{{{server}}} 4096"));
    has(&text, &format!("tcp_flow_connections_opened_total{{{server}}} 1"));
    // Both sides stalled past 1 s: warnings fired, and resolved when the windows reopened.
    let stall = "rule=\"zero_window_stall\",severity=\"warning\"";
    has(&text, &format!("tcp_flow_alerts_total{{{server},{stall},side=\"local\"}} 1"));
    has(&text, &format!("tcp_flow_alerts_total{{{client},{stall},side=\"peer\"}} 1"));
    assert!(!text.contains(
        "tcp_flow_alerts_active{port=\"7777\",process=\"server\",rule=\"zero_window_stall\""
    ));
    // Drops resolve only after 10 s without any.
    has(&text, &format!("tcp_flow_alerts_total{{{server},rule=\"flow_control_drops\",severity=\"warning\",side=\"local\"}} 1"));
    has(&text, &format!("tcp_flow_alerts_active{{{server},rule=\"flow_control_drops\",severity=\"warning\",side=\"local\"}} 1"));
    // The table after the last tick: both sides reopened.
    has(&text, &format!("tcp_flow_connections{{{server},side=\"local\",state=\"reopened\"}} 1"));
    has(&text, &format!("tcp_flow_connections{{{server},side=\"local\",state=\"zero\"}} 0"));
    has(&text, &format!("tcp_flow_connections{{{client},side=\"peer\",state=\"reopened\"}} 1"));
    has(&text, "tracer_connections_tracked 2");
    has(&text, "tracer_events_total{kind=\"probe\"} 3");
    has(&text, "tracer_events_total{kind=\"inflight\"} 0");
    has(&text, "tracer_events_lost_total 3");
    has(&text, "tracer_ring_buffer_fill_ratio 0.25");
    has(&text, "tracer_ring_buffer_size_bytes 4194304");
    has(&text, "tracer_ring_last_drain_events 7");
    // Aggregated only, unless asked.
    assert!(!text.contains("saddr="), "{text}");
    assert_promtool_accepts(&text);
}

#[test]
fn active_alerts_gauge_follows_fire_and_resolve() {
    // Stops while both windows are still zero: the stall alerts are active.
    let events: Vec<Event> = scenario().into_iter().filter(|e| e.ts_ns < 2000 * MS).collect();
    let shared = run(Metrics::new(false), &events, 1900);
    let text = shared.lock().render();
    let stall = "rule=\"zero_window_stall\",severity=\"warning\"";
    has(
        &text,
        &format!(
            r#"tcp_flow_alerts_active{{port="7777",process="server",{stall},side="local"}} 1"#
        ),
    );
    has(
        &text,
        r#"tcp_flow_connections{port="7777",process="client",side="peer",state="probing"} 1"#,
    );
    has(&text, r#"tcp_flow_connections{port="7777",process="server",side="local",state="zero"} 1"#);
    assert_promtool_accepts(&text);
}

#[test]
fn per_connection_series_only_when_asked() {
    let shared = run(Metrics::new(true), &scenario(), 2700);
    let text = shared.lock().render();
    let conn = r#"saddr="127.0.0.1",sport="7777",daddr="127.0.0.2",dport="40002",process="server""#;
    has(
        &text,
        &format!("tcp_flow_connection_zero_window_episodes_total{{{conn},side=\"local\"}} 1"),
    );
    has(
        &text,
        &format!("tcp_flow_connection_zero_window_seconds_total{{{conn},side=\"local\"}} 2.5"),
    );
    has(&text, &format!("tcp_flow_connection_state{{{conn},side=\"local\",state=\"reopened\"}} 1"));
    has(&text, &format!("tcp_flow_connection_window_bytes{{{conn},side=\"local\"}} 2048"));
    has(&text, &format!("tcp_flow_connection_drops_total{{{conn}}} 2"));
    has(&text, "tracer_metrics_connections_omitted 0");
    assert_promtool_accepts(&text);
}

#[test]
fn process_named_from_the_pid_when_the_connection_has_none() {
    let mut m = Metrics::new(false).with_proc_names(true);
    // An accepted socket opens before any process has it (no pid, no name) ...
    let mut accepted = ev(0, 5, (7777, 40005), 99, open(false, None));
    accepted.pid = None;
    assert_eq!(m.pid_to_name(&accepted), None);
    m.on_event(&accepted);
    assert!(!m.render().contains("tcp_flow_connections_opened_total{"), "not counted yet");
    // ... then its events carry a pid but no name yet.
    let e = ev(1, 5, (7777, 40005), 99, tu::zero_start(Side::Local));
    assert_eq!(m.pid_to_name(&e), Some(99));
    m.learn_pid_name(99, Some("nginx\n"), e.ts_ns);
    assert_eq!(m.pid_to_name(&e), None, "known now");
    m.on_event(&e);
    let text = m.render();
    let nginx = r#"port="7777",process="nginx""#;
    has(&text, &format!("tcp_flow_zero_window_episodes_total{{{nginx},side=\"local\"}} 1"));
    has(&text, &format!("tcp_flow_connections_opened_total{{{nginx}}} 1"));

    // Without the lookup (replay), the name stays unknown until an event says it.
    let mut m = Metrics::new(false);
    m.on_event(&accepted);
    assert_eq!(m.pid_to_name(&e), None);
    m.on_event(&e);
    // Never named: its open counts at its close, with it.
    m.on_event(&ev(2, 5, (7777, 40005), 99, tu::close()));
    let text = m.render();
    let unknown = r#"port="7777",process="unknown""#;
    has(&text, &format!("tcp_flow_zero_window_episodes_total{{{unknown},side=\"local\"}} 1"));
    has(&text, &format!("tcp_flow_connections_opened_total{{{unknown}}} 1"));
    has(&text, &format!("tcp_flow_connections_closed_total{{{unknown}}} 1"));
}

#[test]
fn label_sets_stay_bounded_with_many_short_connections() {
    let limit = 50;
    let shared = SharedMetrics::new(Metrics::new(false).with_label_set_limit(limit));
    let mut p = pipeline(&shared);
    for i in 0..5000u64 {
        let ports = (30000 + i as u16, 1000 + i as u16);
        let comm = format!("proc{i}");
        let t = i * 10;
        p.event(&ev(t, 100 + i, ports, 1000 + i as u32, open(true, Some(&comm)))).unwrap();
        p.event(&ev(t + 1, 100 + i, ports, 1000 + i as u32, tu::zero_start(Side::Peer))).unwrap();
        p.event(&ev(t + 2, 100 + i, ports, 1000 + i as u32, tu::probe(1, 1, 400.0))).unwrap();
        if i % 10 != 0 {
            p.event(&ev(t + 3, 100 + i, ports, 1000 + i as u32, tu::close())).unwrap();
        }
        if i % 100 == 0 {
            p.tick(t * MS).unwrap();
        }
    }
    p.tick(50_000 * MS).unwrap();
    let text = shared.lock().render();
    let ports: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split("port=\"").nth(1)?.split('"').next())
        .collect();
    assert!(ports.len() <= limit + 1, "{} distinct ports", ports.len());
    assert!(ports.contains("other"), "{ports:?}");
    has(&text, &format!("tracer_metrics_label_sets {}", limit + 1));
    has(&text, &format!("tracer_metrics_label_sets_limit {limit}"));
    assert!(!text.contains("tracer_metrics_folded_updates_total 0\n"), "{text}");
    // Every connection still counts: folded, not lost.
    let probes: u64 = text
        .lines()
        .filter(|l| l.starts_with("tcp_flow_zero_window_probes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(probes, 5000);
    let samples = text.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples < 60 * (limit + 1), "{samples} samples");
    assert_promtool_accepts(&text);

    // The default limit holds as well.
    let mut m = Metrics::new(false);
    for i in 0..3000u64 {
        let comm = format!("proc{i}");
        m.on_event(&ev(i, 100 + i, (30000, 1000 + i as u16), 7, open(true, Some(&comm))));
    }
    assert_eq!(m.sets.len(), DEFAULT_LABEL_SETS + 1);
}

#[test]
fn ring_fill_max_covers_the_scrape_interval() {
    let mut m = Metrics::new(false);
    m.on_drain(100, 1 << 20, 4 << 20);
    m.on_drain(1, 0, 4 << 20);
    let first = m.scrape();
    has(&first, "tracer_ring_buffer_fill_ratio 0");
    has(&first, "tracer_ring_buffer_fill_ratio_max 0.25");
    has(&first, "tracer_ring_drains_total 2");
    has(&first, "tracer_ring_drained_bytes_total 1048576");
    let second = m.scrape();
    has(&second, "tracer_ring_buffer_fill_ratio_max 0");
    // Drained while the kernel kept writing: more than the ring holds.
    m.on_drain(1, 5 << 20, 4 << 20);
    has(&m.render(), "tracer_ring_buffer_fill_ratio 1");
}

#[test]
fn recorded_run_matches_its_kernel_counters() {
    // README: on this run nstat counted TCPToZeroWindowAdv 3 and TCPWinProbe 5.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/zero-window-6.18.rec");
    let mut reader = Reader::open(&path).unwrap();
    let shared = SharedMetrics::new(Metrics::new(true));
    let mut p = pipeline(&shared);
    let mut last = 0;
    while let Some(item) = reader.next_item().unwrap() {
        match item {
            Item::Event(e) => {
                last = e.ts_ns;
                p.event(&e).unwrap();
            }
            Item::Lost { ts_ns, count } => p.lost(ts_ns, count).unwrap(),
            Item::End { .. } => {}
        }
    }
    p.finish(last).unwrap();
    let text = shared.lock().render();
    let sum = |prefix: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(
        sum("tcp_flow_zero_window_episodes_total{port=\"7777\",process=\"python3\",side=\"local\""),
        3
    );
    assert_eq!(sum("tcp_flow_zero_window_probes_total{"), 5);
    assert_eq!(sum("tcp_flow_read_bytes_total{"), 5 * 64 * 1024);
    has(&text, "tracer_events_total{kind=\"zero_window_start\"} 6");
    assert_promtool_accepts(&text);
}

/// `promtool check metrics` on the exposition (its parser and lint); skipped with a note when
/// promtool is not installed (Debian: apt-get install prometheus).
fn assert_promtool_accepts(text: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "skipping promtool check: promtool not runnable ({e}); apt-get install prometheus"
            );
            return;
        }
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n{text}"
    );
}

/// One request over a fresh connection; the whole answer (the server closes).
async fn request(addr: std::net::SocketAddr, raw: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it read everything (an over-long head): what
    // came back until the reset is the answer.
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    out
}

fn split(answer: &[u8]) -> (String, Vec<u8>) {
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (String::from_utf8_lossy(&answer[..end]).into_owned(), answer[end + 4..].to_vec())
}

#[test]
fn http_endpoint_serves_metrics_and_refuses_the_rest() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let shared = run(Metrics::new(false), &scenario(), 2700);
        let listener = bind(parse_addr("0").unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, shared.clone()));

        let (head, body) = split(&request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
        assert!(head.contains(&format!("Content-Length: {}", body.len())), "{head}");
        let text = String::from_utf8(body).unwrap();
        has(&text, "tracer_events_total{kind=\"probe\"} 3");

        let raw = b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n";
        let (head, body) = split(&request(addr, raw).await);
        assert!(head.contains("Content-Encoding: gzip"), "{head}");
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut unzipped).unwrap();
        assert_eq!(unzipped, text);

        let (head, body) = split(&request(addr, b"GET / HTTP/1.0\r\n\r\n").await);
        assert!(head.contains("text/html"), "{head}");
        assert!(String::from_utf8_lossy(&body).contains("href=\"/metrics\""));
        let (head, body) = split(&request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(body.is_empty());

        for (raw, status) in [
            (&b"GET /nope HTTP/1.1\r\n\r\n"[..], "404"),
            (b"POST /metrics HTTP/1.1\r\n\r\n", "405"),
            (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "400"),
            (b"hello\r\n\r\n", "400"),
        ] {
            let (head, _) = split(&request(addr, raw).await);
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{raw:?}: {head}");
        }
        // An over-long head, and a client that leaves at once: answered or dropped, and the
        // server keeps serving.
        let long = vec![b'a'; 64 * 1024];
        let answer = request(addr, &long).await;
        assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"));
        drop(tokio::net::TcpStream::connect(addr).await.unwrap());
        let (head, _) = split(&request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");

        let err = bind(addr).await.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--metrics") && err.contains("already in use"), "{err}");
    });
}

#[test]
fn labels_are_escaped() {
    let mut m = Metrics::new(false);
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut e = ev(0, 9, (80, 50000), 5, open(false, Some("we\"ird\\na\nme")));
    e.saddr = ip;
    m.on_event(&e);
    let text = m.render();
    has(&text, r#"tcp_flow_connections_opened_total{port="80",process="we\"ird\\na\nme"} 1"#);
    assert_promtool_accepts(&text);
}

/// The files of deploy/: promtool accepts the rules (and their unit tests) and the example
/// config, every dashboard query parses, and every metric they name is one this module serves.
#[test]
fn deploy_files_match_the_metrics() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let read = |rel: &str| {
        std::fs::read_to_string(deploy.join(rel))
            .unwrap_or_else(|e| panic!("cannot read deploy/{rel}: {e}"))
    };
    let rules = read("prometheus/tracer-alerts.yml");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("grafana/tracer-dashboard.json")).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");

    // Every family this module can serve, histogram series included.
    let mut m = Metrics::new(true);
    m.on_event(&ev(0, 1, (80, 40000), 1, tu::zero_start(Side::Local)));
    let mut served = std::collections::BTreeSet::new();
    for line in m.render().lines() {
        let mut f = line.split(' ');
        if let (Some("#"), Some("TYPE"), Some(name), Some(kind)) =
            (f.next(), f.next(), f.next(), f.next())
        {
            served.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    served.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    let named = |text: &str| -> Vec<String> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|t| t.starts_with("tcp_flow_") || t.starts_with("tracer_"))
            .map(str::to_string)
            .collect()
    };
    let mut used = named(&rules);
    used.extend(exprs.iter().flat_map(|e| named(e)));
    assert!(used.len() > 20);
    for name in &used {
        assert!(served.contains(name), "deploy/ uses {name}, which the exporter does not serve");
    }

    // promtool: the rules, their unit tests, the example config; the dashboard's queries as
    // recording rules (Grafana's variables replaced).
    let dir = std::env::temp_dir().join(format!("tracer-deploy-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut queries = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let q = e
            .replace("$__rate_interval", "1m")
            .replace("$__range", "1h")
            .replace("$instance", ".*")
            .replace("$port", ".*")
            .replace("$process", ".*");
        // A JSON string is a valid YAML double-quoted scalar.
        queries.push_str(&format!(
            "      - record: dashboard:q{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let queries_path = dir.join("dashboard-queries.yml");
    std::fs::write(&queries_path, queries).unwrap();
    let prom = deploy.join("prometheus");
    let checks: [(&[&str], &Path); 4] = [
        (&["check", "rules", "tracer-alerts.yml"], &prom),
        (&["test", "rules", "tracer-alerts.test.yml"], &prom),
        (&["check", "config", "prometheus.yml"], &prom),
        (&["check", "rules", "dashboard-queries.yml"], &dir),
    ];
    for (args, cwd) in checks {
        match Command::new("promtool").args(args).current_dir(cwd).output() {
            Err(e) => {
                eprintln!("skipping promtool {args:?}: promtool not runnable ({e}); apt-get install prometheus");
            }
            Ok(out) => assert!(
                out.status.success(),
                "promtool {args:?} in {}: {}{}",
                cwd.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every "expr" string in a JSON document (the dashboard's queries).
fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
