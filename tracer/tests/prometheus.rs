//! Live tests of the Prometheus exporter: `tracer serve --metrics` on a real kernel, scraped by a
//! real Prometheus server (Debian's `prometheus` package) every second while a zero-window stall
//! runs in a fresh network namespace; the counters Prometheus stored must equal the kernel's own
//! (nstat), the tracer's health metrics must be there, the alerting rules of deploy/ must load and
//! evaluate, and every query of the Grafana dashboard must run. And the agent's scrape endpoint
//! held by 1,000 stalled connections: a scrape still gets through within a second.
//!
//! Environment: TRACER_BIN (the agent), TRACER_HOOKS (passed to --hooks), PROMETHEUS_BIN
//! (default /usr/bin/prometheus).

mod common;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use common::*;
use serde_json::Value;

const JOB: &str = "tcp-flow-tracer";

#[test]
#[ignore = "needs root, a live kernel and Debian's prometheus: run through cargo xtask test"]
fn prometheus_scrapes_zero_window_metrics_matching_kernel_counters() {
    // test_port() and test_port() + 1 are the kernel tests' ports.
    let port = test_port() + 2;
    let metrics_port = free_port();
    let tmp = TempDir::new("tracer-prometheus");

    let tracer = start_tracer(port, metrics_port);
    let prometheus = start_prometheus(&tmp.0, metrics_port);
    let prom = Prom { port: prometheus.port };
    prom.wait_until("Prometheus is ready", Duration::from_secs(60), &prometheus, || {
        get(prom.port, "/-/ready").is_some_and(|(status, _)| status == 200)
    });
    let up = format!("up{{job=\"{JOB}\"}}");
    prom.wait_until("the tracer is scraped", Duration::from_secs(30), &prometheus, || {
        prom.value(&up) == Some(1.0)
    });

    let (before, after) = in_new_netns(move || {
        let before = nstat();
        zero_window_transfer(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        // Let the closing handshake finish before reading the counters.
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let win_probe = delta(&before, &after, "TcpExtTCPWinProbe");
    eprintln!("nstat: TCPToZeroWindowAdv +{to_zero}, TCPWinProbe +{win_probe}");
    assert!(to_zero > 0 && win_probe > 0, "the scenario made no zero window or probe");

    // Two more scrapes (1 s apart) after the agent drained the last events (every 20 ms).
    let done = unix_now() + 0.2;
    let scraped = format!("timestamp(tracer_build_info{{job=\"{JOB}\"}})");
    prom.wait_until("two scrapes after the transfer", Duration::from_secs(30), &prometheus, || {
        prom.value(&scraped).is_some_and(|t| t >= done + 2.0)
    });

    let p = format!("port=\"{port}\"");
    let local_episodes =
        prom.value(&format!("sum(tcp_flow_zero_window_episodes_total{{{p},side=\"local\"}})"));
    let peer_episodes =
        prom.value(&format!("sum(tcp_flow_zero_window_episodes_total{{{p},side=\"peer\"}})"));
    let probes = prom.value(&format!("sum(tcp_flow_zero_window_probes_total{{{p}}})"));
    eprintln!("prometheus: zero-window local {local_episodes:?} peer {peer_episodes:?}, probes {probes:?}");
    assert_eq!(
        local_episodes,
        Some(to_zero as f64),
        "local zero-window episodes vs TCPToZeroWindowAdv"
    );
    assert_eq!(peer_episodes, local_episodes, "the sender saw every zero window the receiver sent");
    assert_eq!(probes, Some(win_probe as f64), "probes vs TCPWinProbe");
    // Every episode ended, with its duration.
    let ended = prom
        .value(&format!("sum(tcp_flow_zero_window_duration_seconds_count{{{p},side=\"local\"}})"));
    assert_eq!(ended, Some(to_zero as f64), "episodes in the duration histogram");
    let backoffs = prom.value(&format!("sum(tcp_flow_zero_window_probe_backoff_count{{{p}}})"));
    assert_eq!(backoffs, probes, "probes in the backoff histogram");
    assert_eq!(
        prom.value(&format!("sum(tcp_flow_read_bytes_total{{{p}}})")),
        Some((5 * 64 * 1024) as f64),
        "bytes read by the application"
    );
    assert_eq!(prom.value(&format!("sum(tcp_flow_connections_opened_total{{{p}}})")), Some(2.0));
    assert_eq!(prom.value(&format!("sum(tcp_flow_connections_closed_total{{{p}}})")), Some(2.0));
    let stalls = prom.value(&format!(
        "sum(tcp_flow_alerts_total{{{p},rule=\"zero_window_stall\",side=\"local\"}})"
    ));
    assert!(stalls.is_some_and(|n| n >= 1.0), "zero_window_stall fired: {stalls:?}");

    // The tracer's own health.
    let events = prom.value("sum(tracer_events_total)");
    assert!(events.is_some_and(|n| n > 0.0), "tracer_events_total: {events:?}");
    let zw_events = prom.value("sum(tracer_events_total{kind=\"zero_window_start\"})");
    assert_eq!(zw_events, Some(2.0 * to_zero as f64), "zero_window_start events, both sides");
    for metric in [
        "tracer_events_lost_total",
        "tracer_ring_buffer_fill_ratio",
        "tracer_ring_buffer_fill_ratio_max",
        "tracer_connections_tracked",
        "tracer_metrics_label_sets",
    ] {
        let v = prom.value(metric);
        assert!(v.is_some_and(f64::is_finite), "{metric} missing: {v:?}");
    }
    // Nothing went past a table's cap on this small run: both counters exist and are 0.
    for metric in ["tracer_connections_evicted_total", "tracer_connections_untracked_total"] {
        assert_eq!(prom.value(metric), Some(0.0), "{metric}");
    }
    let ring = prom.value("tracer_ring_buffer_size_bytes");
    assert!(ring.is_some_and(|n| n > 0.0), "the ring size comes with each drain: {ring:?}");
    let drains = prom.value("tracer_ring_drains_total");
    assert!(drains.is_some_and(|n| n > 0.0), "tracer_ring_drains_total: {drains:?}");
    let fill = prom.value("max_over_time(tracer_ring_buffer_fill_ratio_max[5m])");
    assert!(fill.is_some_and(|f| (0.0..=1.0).contains(&f)), "fill ratio in 0..1: {fill:?}");

    check_rules(&prom, &prometheus);
    check_dashboard_queries(&prom);

    drop(prometheus);
    drop(tracer);
}

/// A local user holds 1,000 connections to the agent's endpoint, half of them sending half a
/// request head and the rest nothing: a scrape on a new connection still gets its answer within
/// a second. Malformed requests, huge heads and other methods get 4xx.
#[test]
#[ignore = "needs root and a live kernel: run through cargo xtask test"]
fn scrape_gets_through_a_thousand_stalled_connections() {
    // This process holds the client ends.
    raise_nofile(4096);
    let metrics_port = free_port();
    let tracer = start_tracer(test_port() + 3, metrics_port);
    let stalled: Vec<TcpStream> = (0..1000)
        .map(|i| {
            let mut s = TcpStream::connect(("127.0.0.1", metrics_port)).expect("connect");
            if i % 2 == 0 {
                s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").expect("half a head");
            }
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(200));

    let started = Instant::now();
    let answer = exchange(metrics_port, SCRAPE);
    let took = started.elapsed();
    eprintln!("scrape with {} stalled connections open: {took:?}", stalled.len());
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\ntracer_build_info{version="), "{text}");
    assert!(took < Duration::from_secs(1), "the scrape took {took:?}");

    let open = exchange(
        metrics_port,
        b"GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text\r\nConnection: close\r\n\r\n",
    );
    let open = String::from_utf8_lossy(&open);
    assert!(open.contains("application/openmetrics-text; version=1.0.0"), "{open}");
    assert!(open.ends_with("\n# EOF\n"), "{open}");

    // Past the 8 KiB limit, yet read whole (a close with unread data would reset the answer).
    let huge = format!("GET /metrics HTTP/1.1\r\nCookie: {}\r\n\r\n", "a".repeat(12 * 1024));
    for (raw, status) in [
        (&b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..], "400"),
        (b"GET /metrics\r\n\r\n", "400"),
        (huge.as_bytes(), "431"),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", "405"),
        (b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n", "404"),
    ] {
        let answer = exchange(metrics_port, raw);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{:?}: {answer}",
            String::from_utf8_lossy(&raw[..raw.len().min(30)])
        );
    }
    drop(stalled);
    drop(tracer);
}

const SCRAPE: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";

/// `raw` sent on a new connection to the endpoint, then everything until the agent closes it.
fn exchange(port: u16, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    // An over-long head may be answered and closed before all of it was read: what came back
    // until the reset is the answer.
    let _ = s.write_all(raw);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

/// The alerting rules of deploy/ loaded (the config names them) and evaluated without error.
fn check_rules(prom: &Prom, prometheus: &Proc) {
    let mut last = Value::Null;
    prom.wait_until("every alerting rule evaluated", Duration::from_secs(30), prometheus, || {
        let Some(v) = prom.api("/api/v1/rules?type=alert") else { return false };
        last = v;
        let rules: Vec<&Value> = last["data"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().into_iter().flatten())
            .collect();
        for r in &rules {
            assert_ne!(r["health"], "err", "rule failed to evaluate: {r}");
        }
        rules.len() >= 10 && rules.iter().all(|r| r["health"] == "ok")
    });
}

/// Every query of the Grafana dashboard runs (with its variables set to match anything).
fn check_dashboard_queries(prom: &Prom) {
    let path = deploy_dir().join("grafana/tracer-dashboard.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let dashboard: Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "dashboard queries: {exprs:?}");
    for expr in exprs {
        let q = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$instance", ".*")
            .replace("$port", ".*")
            .replace("$process", ".*");
        let answer = prom.api(&format!("/api/v1/query?query={}", urlencode(&q)));
        assert!(
            answer.as_ref().is_some_and(|a| a["status"] == "success"),
            "dashboard query failed: {q}\n{answer:?}"
        );
    }
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", Value::String(s)) => out.push(s.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `tracer serve --metrics 127.0.0.1:PORT --port P`, once it says it is attached.
fn start_tracer(port: u16, metrics_port: u16) -> Proc {
    let mut cmd = Command::new(tracer_bin());
    cmd.args(["serve", "--metrics", &format!("127.0.0.1:{metrics_port}")])
        .args(["--port", &port.to_string()]);
    if let Ok(hooks) = std::env::var("TRACER_HOOKS") {
        cmd.args(["--hooks", &hooks]);
    }
    let mut child = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", tracer_bin()));
    let stderr = child.stderr.take().expect("piped stderr");
    let proc = Proc { name: "tracer", child, port: metrics_port, log: None };
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("tracer| {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("tracer: attached") => return proc,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "tracer serve did not attach within {ATTACH_TIMEOUT:?}; it said:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// A Prometheus server scraping the tracer every second, with the deploy/ alerting rules.
fn start_prometheus(dir: &Path, metrics_port: u16) -> Proc {
    let bin = std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "/usr/bin/prometheus".into());
    let port = free_port();
    let rules = deploy_dir().join("prometheus/tracer-alerts.yml");
    // Prometheus takes rule files as globs: a missing one would just load no rules.
    assert!(rules.is_file(), "{} is missing", rules.display());
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"127.0.0.1:{metrics_port}\"]\n",
            rules = rules.display()
        ),
    )
    .expect("write prometheus.yml");
    let log_path = dir.join("prometheus.log");
    let log = std::fs::File::create(&log_path).expect("create prometheus.log");
    let child = Command::new(&bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().expect("log fd"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {bin} (apt-get install prometheus): {e}"));
    Proc { name: "prometheus", child, port, log: Some(log_path) }
}

/// A child process killed (SIGTERM, then SIGKILL) by its pid when dropped, also on panic.
struct Proc {
    name: &'static str,
    child: Child,
    port: u16,
    log: Option<PathBuf>,
}

impl Proc {
    /// The end of its log, for failure messages.
    fn log_tail(&self) -> String {
        let Some(path) = &self.log else { return String::new() };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id() as i32;
        // SAFETY: kill on our own child's pid, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                eprintln!("{} exited: {status}", self.name);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} ignored SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Prometheus's HTTP API.
struct Prom {
    port: u16,
}

impl Prom {
    /// A JSON answer of the API, if it gave one.
    fn api(&self, path: &str) -> Option<Value> {
        let (status, body) = get(self.port, path)?;
        let v: Value = serde_json::from_slice(&body).ok()?;
        (status == 200 || v["status"] == "error").then_some(v)
    }

    /// The value of an instant query with one result (None: no result, or several).
    fn value(&self, query: &str) -> Option<f64> {
        let v = self.api(&format!("/api/v1/query?query={}", urlencode(query)))?;
        assert_eq!(v["status"], "success", "query {query}: {v}");
        let result = v["data"]["result"].as_array()?;
        match result.as_slice() {
            [one] => one["value"][1].as_str()?.parse().ok(),
            _ => None,
        }
    }

    fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        prometheus: &Proc,
        mut ok: impl FnMut() -> bool,
    ) {
        let deadline = Instant::now() + limit;
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting until {what}; prometheus said:\n{}",
                prometheus.log_tail()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

/// A minimal HTTP/1.0 GET on loopback (no chunked answers): status and body.
fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).ok()?;
    let end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, answer[end + 4..].to_vec()))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}
