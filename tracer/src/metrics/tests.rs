//! Exporter tests: the exposition after synthetic events and after a recorded run, in both
//! formats and against the family table, promtool's verdict on it, bounded label cardinality,
//! the health gauges, and the HTTP endpoint (its answers, timeouts and connection policy).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tracer_common::totals::{
    TOTAL_CLOSED, TOTAL_DROPS, TOTAL_OPENED_ACTIVE, TOTAL_OPENED_PASSIVE, TOTAL_PROBES,
    TOTAL_REPORTED, TOTAL_SLOTS, TOTAL_ZERO_WINDOW_LOCAL, TOTAL_ZERO_WINDOW_PEER,
};

use super::host::{HostTotals, ReadTotals};
use super::http::{serve_with, Limits};
use super::*;
use crate::alerts::Thresholds;
use crate::events::totals::Totals;
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
        comm: comm.map(Into::into),
        late: false,
    }
}

fn drop_reason(reason: &str, bytes: u32) -> Body {
    Body::Drop { reason: reason.into(), bytes }
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
    has(&text, &format!("tcp_flow_zero_window_probe_backoff_sum{{{client}}} 6.0"));
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
    assert_formats_valid(&shared.lock());
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
    assert_formats_valid(&shared.lock());
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
    assert_formats_valid(&shared.lock());
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
    assert_formats_valid(&shared.lock());

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
    let first = m.scrape(Format::Text).unwrap();
    has(&first, "tracer_ring_buffer_fill_ratio 0.0");
    has(&first, "tracer_ring_buffer_fill_ratio_max 0.25");
    has(&first, "tracer_ring_drains_total 2");
    has(&first, "tracer_ring_drained_bytes_total 1048576");
    let second = m.scrape(Format::Text).unwrap();
    has(&second, "tracer_ring_buffer_fill_ratio_max 0.0");
    // Drained while the kernel kept writing: more than the ring holds.
    m.on_drain(1, 5 << 20, 4 << 20);
    has(&m.render(), "tracer_ring_buffer_fill_ratio 1.0");
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
    assert_formats_valid(&shared.lock());
}

/// Both formats of `m`'s exposition pass Prometheus's own parsers, and name the same samples.
fn assert_formats_valid(m: &Metrics) {
    let text = m.encode(Format::Text).unwrap();
    let open = m.encode(Format::OpenMetrics).unwrap();
    assert_promtool_accepts(&text);
    assert_openmetrics_parses(&open);
    assert!(open.ends_with("\n# EOF\n"), "{open}");
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"), "{text}");
    assert!(!text.contains("_created") && !open.contains("_created"), "{open}");
    assert_eq!(sample_names(&text), sample_names(&open));
}

/// The names of the samples (histogram series included), without labels.
fn sample_names(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect()
}

/// `promtool check metrics` on text 0.0.4 (its parser and lint); skipped with a note when
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

/// Prometheus's OpenMetrics parser on the exposition: `promtool check metrics` reads text
/// 0.0.4 only, so the exposition is read by `promtool tsdb create-blocks-from openmetrics`
/// (which wants a timestamp on every sample: one is added). Skipped without promtool.
fn assert_openmetrics_parses(open: &str) {
    let dir = std::env::temp_dir().join(format!(
        "tracer-openmetrics-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let stamped: String = open
        .lines()
        .map(|l| if l.starts_with('#') { format!("{l}\n") } else { format!("{l} 1700000000\n") })
        .collect();
    std::fs::write(dir.join("exposition.txt"), stamped).unwrap();
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "exposition.txt", "blocks"])
        .current_dir(&dir)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Err(e) => eprintln!(
            "skipping the OpenMetrics parse: promtool not runnable ({e}); apt-get install prometheus"
        ),
        Ok(out) => assert!(
            out.status.success(),
            "promtool's OpenMetrics parser: {}{}\n{open}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every family of the table, from a run that fills each one.
fn every_family() -> Metrics {
    let mut events = scenario();
    // A zero window the kernel does not count, and a connection that closes.
    let mut uncounted = ev(20, 3, (7777, 40003), 43, tu::zero_start(Side::Local));
    if let Body::ZeroWindowStart { counted, .. } = &mut uncounted.body {
        *counted = false;
    }
    events.push(uncounted);
    events.push(ev(2650, 3, (7777, 40003), 43, tu::close()));
    events.sort_by_key(|e| e.ts_ns);
    let shared = run(Metrics::new(true), &events, 2700);
    shared.lock().on_lost(1);
    shared.lock().on_drain(7, 1 << 20, 4 << 20);
    let mut m = std::mem::replace(&mut *shared.lock(), Metrics::new(false));
    m.add_collector(Scraped::new(HostTotals(FixedTotals(host_totals()))));
    m
}

/// Host totals as the kernel maps would give them.
#[derive(Debug)]
struct FixedTotals(Totals);

impl ReadTotals for FixedTotals {
    fn read(&self) -> Totals {
        self.0.clone()
    }
}

/// Port 7777: 3 accepted, 2 closed, 1 reported, a local and a peer zero window, a probe, a
/// drop; port 443: 5 connected, nothing else; ports past the kernel's table: 4 accepted; a
/// connection from before attach: 1 closed; 2 runs of the state program skipped.
fn host_totals() -> Totals {
    let counts = |pairs: &[(u32, u64)]| {
        let mut c = [0u64; TOTAL_SLOTS as usize];
        for &(slot, n) in pairs {
            c[slot as usize] = n;
        }
        c
    };
    let p7777 = counts(&[
        (TOTAL_OPENED_PASSIVE, 3),
        (TOTAL_CLOSED, 2),
        (TOTAL_REPORTED, 1),
        (TOTAL_ZERO_WINDOW_LOCAL, 1),
        (TOTAL_ZERO_WINDOW_PEER, 1),
        (TOTAL_PROBES, 1),
        (TOTAL_DROPS, 1),
    ]);
    let p443 = counts(&[(TOTAL_OPENED_ACTIVE, 5)]);
    let other = counts(&[(TOTAL_OPENED_PASSIVE, 4)]);
    let unknown = counts(&[(TOTAL_CLOSED, 1)]);
    let mut host = [0u64; TOTAL_SLOTS as usize];
    for c in [&p7777, &p443, &other, &unknown] {
        for (sum, n) in host.iter_mut().zip(c) {
            *sum += n;
        }
    }
    Totals {
        host,
        ports: vec![(0, unknown), (443, p443), (7777, p7777)],
        other_ports: other,
        missed_runs: vec![("egress_skb".into(), 0), ("set_state".into(), 2)],
    }
}

#[test]
fn host_totals_by_port_with_unknown_and_other() {
    let mut m = Metrics::new(false);
    m.add_collector(Scraped::new(HostTotals(FixedTotals(host_totals()))));
    let text = m.encode(Format::Text).unwrap();
    let host: Vec<&str> = text.lines().filter(|l| l.starts_with("tcp_flow_host_")).collect();
    assert_eq!(
        host,
        [
            r#"tcp_flow_host_connections_opened_total{port="443",direction="active"} 5"#,
            r#"tcp_flow_host_connections_opened_total{port="7777",direction="passive"} 3"#,
            r#"tcp_flow_host_connections_opened_total{port="other",direction="passive"} 4"#,
            r#"tcp_flow_host_connections_closed_total{port="unknown"} 1"#,
            r#"tcp_flow_host_connections_closed_total{port="7777"} 2"#,
            r#"tcp_flow_host_connections_reported_total{port="7777"} 1"#,
            r#"tcp_flow_host_zero_windows_total{port="7777",side="local"} 1"#,
            r#"tcp_flow_host_zero_windows_total{port="7777",side="peer"} 1"#,
            r#"tcp_flow_host_zero_window_probes_total{port="7777"} 1"#,
            r#"tcp_flow_host_drops_total{port="7777"} 1"#,
            r#"tcp_flow_host_program_runs_missed_total{program="egress_skb"} 0"#,
            r#"tcp_flow_host_program_runs_missed_total{program="set_state"} 2"#,
        ]
    );
}

/// One family as an exposition shows it: TYPE, HELP, UNIT, and its samples' names and label
/// names.
#[derive(Debug, Default)]
struct Shown {
    kind: String,
    help: String,
    unit: Option<String>,
    samples: BTreeSet<(String, Vec<String>)>,
}

/// The families of an exposition by the name of their TYPE line.
fn families_shown(text: &str) -> BTreeMap<String, Shown> {
    let mut shown: BTreeMap<String, Shown> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut f = meta.splitn(3, ' ');
            let (what, name, rest) = (f.next(), f.next(), f.next().unwrap_or(""));
            let Some(name) = name else { continue };
            let family = shown.entry(name.to_string()).or_default();
            match what {
                Some("TYPE") => {
                    family.kind = rest.to_string();
                    current = name.to_string();
                }
                Some("HELP") => family.help = rest.to_string(),
                Some("UNIT") => family.unit = Some(rest.to_string()),
                _ => {}
            }
            continue;
        }
        let (name, labels) = match line.split_once('{') {
            Some((name, rest)) => (name, rest.rsplit_once('}').map_or("", |(l, _)| l)),
            None => (line.split(' ').next().unwrap_or(""), ""),
        };
        // Label names: what precedes each `="` (the values here hold no quotes or commas).
        let keys = labels
            .split("\",")
            .filter_map(|kv| kv.split_once("=\"").map(|(k, _)| k.to_string()))
            .collect();
        let family = shown.get_mut(&current).unwrap();
        family.samples.insert((name.to_string(), keys));
    }
    shown
}

#[test]
fn exposition_matches_the_family_table() {
    let m = every_family();
    for (format, text) in [
        (Format::Text, m.encode(Format::Text).unwrap()),
        (Format::OpenMetrics, m.encode(Format::OpenMetrics).unwrap()),
    ] {
        let shown = families_shown(&text);
        let open = format == Format::OpenMetrics;
        for family in families::ALL {
            let name = match (open, family.kind) {
                (true, families::Kind::Counter) => family.name.strip_suffix("_total").unwrap(),
                (true, families::Kind::Info) => family.name.strip_suffix("_info").unwrap(),
                _ => family.name,
            };
            let s = shown
                .get(name)
                .unwrap_or_else(|| panic!("{format:?}: {} missing in:\n{text}", family.name));
            let kind = match (open, family.kind) {
                (_, families::Kind::Counter) => "counter",
                (_, families::Kind::Gauge) | (false, families::Kind::Info) => "gauge",
                (true, families::Kind::Info) => "info",
                (_, families::Kind::Histogram) => "histogram",
            };
            assert_eq!(s.kind, kind, "{format:?} {name}");
            assert_eq!(s.help, family.help, "{format:?} {name}");
            let unit = family.unit().map(|u| u.as_str().to_string());
            assert_eq!(s.unit, unit.filter(|_| open), "{format:?} {name}");
            if let Some(unit) = family.unit().filter(|_| open) {
                assert!(name.ends_with(&format!("_{}", unit.as_str())), "{name}");
            }
            for (sample, keys) in &s.samples {
                let suffixes: &[&str] = match family.kind {
                    families::Kind::Histogram => &["_bucket", "_sum", "_count"],
                    _ => &[""],
                };
                assert!(
                    suffixes.iter().any(|x| *sample == format!("{}{x}", family.name)),
                    "{format:?}: sample {sample} in family {name}"
                );
                // In the table's order; `side` is left out by alerts that have none.
                let keys: Vec<&str> =
                    keys.iter().map(String::as_str).filter(|k| *k != "le").collect();
                let declared: Vec<&str> = family
                    .labels
                    .iter()
                    .copied()
                    .filter(|k| keys.contains(k) || *k != "side" || !name.contains("alerts"))
                    .collect();
                assert_eq!(keys, declared, "{format:?}: labels of {sample}");
            }
        }
        let declared = families::ALL.len();
        assert_eq!(shown.len(), declared, "{format:?}: families not in the table: {shown:?}");
    }
    // The help text needs no escaping in either format.
    for family in families::ALL {
        assert!(family.help.ends_with('.'), "{}", family.name);
        assert!(!family.help.contains(['"', '\\', '\n']), "{}", family.name);
    }
    assert_formats_valid(&m);
}

/// Connections the agent's table evicts and those the kernel could not track are counted in
/// the exposition, never silently gone.
#[test]
fn evicted_and_untracked_connections_are_counted() {
    let shared = SharedMetrics::new(Metrics::new(false));
    let limits = crate::timeline::Limits { live_capacity: 2, ..Default::default() };
    let mut p = Pipeline::with_table(Thresholds::default(), ConnTable::with_limits(limits));
    p.add(Box::new(shared.clone()));
    for sk in 1..=5u64 {
        p.event(&ev(sk, sk, (7777, 40000 + sk as u16), 7, open(false, Some("server")))).unwrap();
    }
    p.drained(&crate::pipeline::Drain { untracked: 9, ..Default::default() });
    p.tick(10 * MS).unwrap();
    let text = shared.lock().render();
    has(&text, "tracer_connections_tracked 2");
    has(&text, "tracer_connections_evicted_total 3");
    has(&text, "tracer_connections_untracked_total 9");
    assert_formats_valid(&shared.lock());
}

#[test]
fn window_state_names_are_the_json_ones() {
    let mut p = Pipeline::new(Thresholds::default());
    for e in scenario().iter().filter(|e| e.ts_ns < 1900 * MS) {
        p.event(e).unwrap();
    }
    let mut seen = BTreeSet::new();
    for (_, conn) in p.state().table.iter() {
        for side in [Side::Local, Side::Peer] {
            let state = conn.side(side).state;
            assert_eq!(serde_json::to_value(state).unwrap(), state.name());
            seen.insert(state.name());
        }
    }
    assert!(seen.contains("probing") && seen.contains("zero"), "{seen:?}");
}

/// The endpoint on its own current-thread runtime, as in the agent, in a thread that lasts as
/// long as the test binary.
fn start_endpoint(shared: SharedMetrics, limits: Limits) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = bind(parse_addr("0").unwrap()).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve_with(listener, shared, limits).await
        })
    });
    rx.recv().unwrap()
}

const TEST_LIMITS: Limits = Limits {
    max_connections: 2048,
    header_timeout: Duration::from_secs(5),
    write_timeout: Duration::from_secs(30),
};

/// One exchange over a fresh connection: `raw` sent, then everything until the server closes.
fn exchange(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before it read everything (an over-long head): what
    // came back until the reset is the answer.
    let _ = s.write_all(raw);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

fn split(answer: &[u8]) -> (String, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(answer)));
    (String::from_utf8_lossy(&answer[..end]).to_lowercase(), answer[end + 4..].to_vec())
}

const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn http_endpoint_serves_metrics_and_refuses_the_rest() {
    let shared = run(Metrics::new(false), &scenario(), 2700);
    let addr = start_endpoint(shared.clone(), TEST_LIMITS);

    let (head, body) = split(&exchange(addr, SCRAPE));
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("content-type: text/plain; version=0.0.4; charset=utf-8"), "{head}");
    assert!(head.contains(&format!("content-length: {}", body.len())), "{head}");
    let text = String::from_utf8(body).unwrap();
    has(&text, "tracer_events_total{kind=\"probe\"} 3");
    assert!(!text.contains("# EOF"));

    let raw = b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0,\
                text/plain;version=0.0.4;q=0.5\r\nConnection: close\r\n\r\n";
    let (head, body) = split(&exchange(addr, raw));
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    let open = String::from_utf8(body).unwrap();
    has(&open, "tracer_events_total{kind=\"probe\"} 3");
    assert!(open.ends_with("# EOF\n"), "{open}");

    let raw = b"GET /metrics HTTP/1.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n";
    let (head, body) = split(&exchange(addr, raw));
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut unzipped).unwrap();
    assert_eq!(unzipped, text);

    let (head, body) = split(&exchange(addr, b"GET / HTTP/1.0\r\n\r\n"));
    assert!(head.contains("text/html"), "{head}");
    assert!(String::from_utf8_lossy(&body).contains("href=\"/metrics\""));
    let (head, body) =
        split(&exchange(addr, b"HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n"));
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(body.is_empty());

    // Kept alive: two requests on one connection, the second closing it.
    let raw =
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    let both = String::from_utf8_lossy(&exchange(addr, raw)).into_owned();
    assert_eq!(both.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{both}");

    let big = format!("GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9 * 1024));
    for (raw, status) in [
        (&b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"[..], "404"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "405"),
        (b"DELETE / HTTP/1.1\r\nConnection: close\r\n\r\n", "405"),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", "400"),
        (b"hello\r\n\r\n", "400"),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", "400"),
        (b"GET /metrics\r\n\r\n", "400"),
        (big.as_bytes(), "431"),
    ] {
        let (head, _) = split(&exchange(addr, raw));
        assert!(
            head.starts_with(&format!("http/1.1 {status} ")),
            "{:?}: {head}",
            String::from_utf8_lossy(&raw[..raw.len().min(40)])
        );
        if status == "405" {
            assert!(head.contains("allow: get, head"), "{head}");
        }
    }
    // A head that never ends, and a client that leaves at once: answered or dropped, and the
    // server keeps serving.
    let answer = exchange(addr, &vec![b'a'; 64 * 1024]);
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"), "{answer:?}");
    drop(TcpStream::connect(addr).unwrap());
    let (head, _) = split(&exchange(addr, SCRAPE));
    assert!(head.starts_with("http/1.1 200"), "{head}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let err = rt.block_on(bind(addr)).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("--metrics") && err.contains("already in use"), "{err}");
}

/// True once the server has closed `s` (within `wait`).
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or anything else before the close.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn stalled_and_idle_connections_are_closed_after_the_header_timeout() {
    let limits = Limits { header_timeout: Duration::from_millis(300), ..TEST_LIMITS };
    let addr = start_endpoint(SharedMetrics::new(Metrics::new(false)), limits);
    let started = Instant::now();
    let silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Kept alive after an answer, then idle.
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 4096];
    let n = idle.read(&mut answer).unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    for (what, s) in [("silent", &silent), ("half-sent", &half), ("idle", &idle)] {
        assert!(closed_within(s, Duration::from_secs(3)), "{what} connection still open");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
}

/// `n` connections to `addr` that stall: every other one sends half a request head, the rest
/// nothing.
fn stall(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            if i % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").unwrap();
            }
            s
        })
        .collect()
}

/// A whole scrape on a new connection: its time, and the exposition.
fn timed_scrape(addr: SocketAddr) -> (Duration, String) {
    let started = Instant::now();
    let (head, body) = split(&exchange(addr, SCRAPE));
    let took = started.elapsed();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    (took, String::from_utf8(body).unwrap())
}

/// Lifts this process's soft open-files limit to `files` if the hard limit allows (the stalled
/// connection tests hold both ends of theirs).
fn allow_open_files(files: libc::rlim_t) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < files {
            limit.rlim_cur = files.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[test]
fn a_scrape_gets_through_a_thousand_stalled_connections() {
    allow_open_files(4096);
    let shared = run(Metrics::new(false), &scenario(), 2700);
    let addr = start_endpoint(shared, TEST_LIMITS);
    let stalled = stall(addr, 1000);
    // Let the server accept them all first.
    std::thread::sleep(Duration::from_millis(200));
    let (took, text) = timed_scrape(addr);
    eprintln!("scrape with 1000 stalled connections open: {took:?}");
    assert!(took < Duration::from_secs(1), "the scrape took {took:?}");
    has(&text, "tracer_events_total{kind=\"probe\"} 3");
    drop(stalled);
}

#[test]
fn past_the_connection_limit_the_least_recently_active_are_closed() {
    allow_open_files(4096);
    let limits = Limits { max_connections: 50, ..TEST_LIMITS };
    let addr = start_endpoint(SharedMetrics::new(Metrics::new(false)), limits);
    let stalled = stall(addr, 300);
    let (took, _) = timed_scrape(addr);
    eprintln!("scrape with 300 stalled connections past a limit of 50: {took:?}");
    assert!(took < Duration::from_secs(1), "the scrape took {took:?}");
    // The scrape closed one more; the newest stalled ones are still open.
    let open = stalled.iter().filter(|s| !closed_within(s, Duration::from_millis(50))).count();
    assert!((45..=50).contains(&open), "{open} of 300 stalled connections still open");
    let newest = stalled.last().unwrap();
    assert!(!closed_within(newest, Duration::from_millis(50)), "the newest was closed");
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
    assert_formats_valid(&m);
}

/// The files of deploy/: promtool accepts the rules (and their unit tests) and the example
/// config, every dashboard query parses, every metric they name is a family of the table, and
/// every `le` they match exactly is one both formats serve.
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
    let mut served = BTreeSet::new();
    for family in families::ALL {
        served.insert(family.name.to_string());
        if family.kind == families::Kind::Histogram {
            for suffix in ["_bucket", "_sum", "_count"] {
                served.insert(format!("{}{suffix}", family.name));
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

    // Prometheus stores `le` as the scrape's format writes it (OpenMetrics: "5.0", text 0.0.4:
    // "5"; Prometheus 3 makes both "5.0"), so an exact `le` matcher misses series in one.
    let m = every_family();
    let le_values =
        |text: &str| -> BTreeSet<String> { le_matches(text).map(String::from).collect() };
    let text_le = le_values(&m.encode(Format::Text).unwrap());
    let open_le = le_values(&m.encode(Format::OpenMetrics).unwrap());
    let mut queries = rules.clone();
    queries.extend(exprs.iter().map(|e| format!("{e}\n")));
    for matcher in le_matches(&queries) {
        assert!(
            text_le.contains(matcher) && open_le.contains(matcher),
            "deploy/ matches le=\"{matcher}\", which is not served in both formats \
             (0.0.4: {text_le:?}; OpenMetrics: {open_le:?}): match le=~ both spellings"
        );
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

/// The values in `le="..."` (the label, not a longer name ending in `le`).
fn le_matches(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices("le=\"").filter_map(|(at, m)| {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        text[at + m.len()..].split('"').next()
    })
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
