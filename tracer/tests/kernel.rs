//! Kernel tests: the real tracer binary, attached to the running kernel, watching a real
//! zero-window stall on loopback, checked against the kernel's own counters (nstat).
//!
//! They need root and a live kernel, so they are ignored by plain `cargo test`; `cargo xtask
//! test` runs them on this host and inside a QEMU guest on Debian's 6.1 kernel.
//! Environment: TRACER_BIN (the agent to run; defaults to the one cargo built),
//! TRACER_HOOKS (passed to --hooks), TRACER_EXPECT_HOOK (the hook that must report windows).

mod common;

use std::{
    io::{ErrorKind, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::Command,
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

/// The kernel program that follows state changes (opens and closes).
const STATE_PROGRAM: &str = "set_state_raw_tp";

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn zero_window_stall_matches_kernel_counters_ipv4() {
    zero_window_stall_matches_kernel_counters(IpAddr::V4(Ipv4Addr::LOCALHOST), test_port());
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn zero_window_stall_matches_kernel_counters_ipv6() {
    zero_window_stall_matches_kernel_counters(IpAddr::V6(Ipv6Addr::LOCALHOST), test_port() + 1);
}

fn zero_window_stall_matches_kernel_counters(addr: IpAddr, port: u16) {
    // The persist interval threshold is lowered so that the test needs no 13 s stall (the
    // default of 10 s is reached at the 6th backoff).
    let tracer =
        Tracer::start(&["--port", &port.to_string(), "--alert", "persist_backoff.interval_ms=800"]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        zero_window_transfer(addr, port);
        // Let the closing handshake finish before reading the counters.
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    // The agent drains the ring every 20 ms and once more on exit.
    thread::sleep(Duration::from_millis(200));
    let accept_hook = accept_hook(&tracer.stderr_seen.join("\n"));
    let events = tracer.stop();

    for e in &events {
        for key in ["ts_ns", "kind", "saddr", "sport", "daddr", "dport"] {
            assert!(!e[key].is_null(), "event without {key}: {e}");
        }
        assert!(
            e["sport"] == port || e["dport"] == port,
            "event of another connection leaked through the port filter: {e}"
        );
        assert_eq!(e["saddr"], addr.to_string(), "{e}");
        assert_eq!(e["daddr"], addr.to_string(), "{e}");
    }
    let summary: Vec<String> =
        ["open", "window", "zero_window_start", "zero_window_end", "probe", "rcv_space", "close"]
            .iter()
            .map(|k| format!("{k}={}", count(&events, k)))
            .collect();
    eprintln!("events: {}", summary.join(" "));

    // Both ends open and close.
    assert_eq!(count(&events, "open"), 2, "expected both ends to open");
    assert_eq!(count(&events, "close"), 2, "expected both ends to close");
    // Zero-window episodes are advertised by the receiver (local port = our port) and end.
    let side = |e: &Value, k: &str, s: &str| kind(e) == k && e["side"] == s;
    let starts: Vec<&Value> =
        events.iter().filter(|e| side(e, "zero_window_start", "local")).collect();
    let ends: Vec<&Value> = events.iter().filter(|e| side(e, "zero_window_end", "local")).collect();
    assert!(!starts.is_empty(), "no zero-window episode reported");
    assert!(!ends.is_empty(), "no zero-window episode ended");
    for e in starts.iter().chain(&ends) {
        assert_eq!(e["sport"], port, "the receiver advertises the zero window: {e}");
    }
    // The sender sees the same episodes as the peer's zero window.
    let peer_starts = events.iter().filter(|e| side(e, "zero_window_start", "peer")).count();
    let peer_ends = events.iter().filter(|e| side(e, "zero_window_end", "peer")).count();
    for e in events.iter().filter(|e| e["side"] == "peer" && kind(e).starts_with("zero_window")) {
        assert_eq!(e["dport"], port, "the sender sees the receiver's zero window: {e}");
    }
    assert_eq!(peer_starts, starts.len(), "the sender saw every zero window the receiver sent");
    assert_eq!(peer_ends, ends.len());
    assert!(starts.iter().all(|e| e["counted"] == true), "loopback zero windows are counted ones");
    let first_start = starts[0]["ts_ns"].as_u64().expect("ts_ns");
    assert!(
        ends.iter().any(|e| e["ts_ns"].as_u64() >= Some(first_start)),
        "no episode ends after it starts"
    );
    // Probes go from the sender (remote port = our port) while the window is zero.
    let probes: Vec<&Value> = events.iter().filter(|e| kind(e) == "probe").collect();
    assert!(!probes.is_empty(), "no zero-window probe reported");
    for p in &probes {
        assert_eq!(p["dport"], port, "probes come from the sender: {p}");
        assert!(p["backoff"].as_u64() >= Some(1), "a probe backs off: {p}");
        assert!(p["probes_out"].as_u64() >= Some(1), "{p}");
        assert_eq!(p["snd_wnd"], 0, "probes are sent into a zero window: {p}");
    }
    assert!(count(&events, "rcv_space") >= 1, "no rcv_space event");
    let rcv = events.iter().find(|e| kind(e) == "rcv_space").expect("rcv_space");
    assert_eq!(rcv["rcvbuf_locked"], true, "SO_RCVBUF pins the buffer: {rcv}");

    // The kernel's own counters, over the same interval, in a namespace with no other traffic.
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let win_probe = delta(&before, &after, "TcpExtTCPWinProbe");
    eprintln!("nstat: TCPToZeroWindowAdv +{to_zero}, TCPWinProbe +{win_probe}");
    assert_eq!(starts.len() as u64, to_zero, "zero-window entries vs TCPToZeroWindowAdv");
    assert_eq!(probes.len() as u64, win_probe, "probes vs TCPWinProbe");

    // Alerts, for the right connection and process, each resolved when its condition ended
    // (the episode ended, the window reopened, or the connection closed).
    assert_alert_cycle(&events, "zero_window_stall", Some("local"), port);
    assert_alert_cycle(&events, "rcvbuf_pinned", Some("local"), port);
    let sender_port = probes[0]["sport"].as_u64().expect("sender port") as u16;
    assert_alert_cycle(&events, "zero_window_stall", Some("peer"), sender_port);
    // Both ends are this process: the sender's stall names the reader at the other end.
    let peer_stall = events
        .iter()
        .find(|e| kind(e) == "alert" && e["rule"] == "zero_window_stall" && e["side"] == "peer")
        .expect("a peer zero_window_stall alert");
    assert_eq!(peer_stall["evidence"]["peer_pid"], std::process::id(), "{peer_stall}");
    let named = format!("pid {}", std::process::id());
    assert!(peer_stall["fix"].as_str().is_some_and(|f| f.contains(&named)), "{peer_stall}");
    assert_alert_cycle(&events, "persist_backoff", None, sender_port);
    // 2-4 KiB windows against a 64 KiB loopback MSS, again and again.
    assert_alert_cycle(&events, "silly_window", Some("local"), port);
    // The reader's rate: every byte the application consumed, by our process.
    let reads: Vec<&Value> = events.iter().filter(|e| kind(e) == "read").collect();
    let read_bytes: u64 = reads.iter().filter_map(|r| r["bytes"].as_u64()).sum();
    assert_eq!(read_bytes, 5 * 64 * 1024, "bytes read by the application: {reads:?}");
    for r in &reads {
        assert_eq!(r["sport"], port, "{r}");
        assert_eq!(r["pid"], std::process::id(), "{r}");
        assert!(r["comm"].as_str().is_some_and(|c| !c.is_empty()), "{r}");
    }
    // The receiving process is named before it ever reads: an `owner` event at accept() (or,
    // without the accept hook, at its first read), and the first local stall alert names it.
    let owners: Vec<&Value> =
        events.iter().filter(|e| kind(e) == "owner" && e["sport"] == port).collect();
    assert_eq!(owners.len(), 1, "one owner event for the receiving socket: {owners:?}");
    let owner = owners[0];
    assert_eq!(owner["pid"], std::process::id(), "{owner}");
    assert!(owner["comm"].as_str().is_some_and(|c| !c.is_empty()), "{owner}");
    let first_read = events
        .iter()
        .find(|e| (kind(e) == "read" || kind(e) == "rcv_space") && e["sport"] == port)
        .and_then(|e| e["ts_ns"].as_u64());
    if let Some(hook) = accept_hook {
        assert_eq!(owner["hook"], hook, "named at accept(): {owner}");
        assert!(owner["ts_ns"].as_u64() < first_read, "named only at the first read: {owner}");
    }
    let stall = events
        .iter()
        .find(|e| kind(e) == "alert" && e["rule"] == "zero_window_stall" && e["side"] == "local")
        .expect("a local zero_window_stall alert");
    assert_eq!(stall["comm"], owner["comm"], "the stall alert names the reader: {stall}");

    let summaries: Vec<&Value> = events.iter().filter(|e| kind(e) == "summary").collect();
    assert_eq!(summaries.len(), 2, "one summary per end of the connection");

    if let Ok(hook) = std::env::var("TRACER_EXPECT_HOOK") {
        // Peer windows have one hook everywhere (cgroup_skb ingress): only local windows and
        // probes depend on the hook mode.
        let depends =
            |e: &Value| (kind(e) == "window" && e["side"] == "local") || kind(e) == "probe";
        for e in events.iter().filter(|e| depends(e)) {
            let want = if kind(e) == "probe" { probe_hook(&hook) } else { hook.clone() };
            assert_eq!(e["hook"], want.as_str(), "hook serving {}: {e}", kind(e));
        }
    }
}

/// The probe signal's hook kind when the window is served by `window_hook`.
fn probe_hook(window_hook: &str) -> String {
    match window_hook {
        "fentry" => "fexit".into(),
        "kprobe" => "kretprobe".into(),
        other => other.into(),
    }
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn probes_reports_a_hook_for_every_signal() {
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("probes");
    if let Ok(hooks) = std::env::var("TRACER_HOOKS") {
        cmd.args(["--hooks", &hooks]);
    }
    let out = run(&mut cmd);
    eprintln!("{out}");
    assert!(!out.contains("UNAVAILABLE"), "a signal has no hook on this kernel:\n{out}");
    for signal in ["window", "zero-window probe", "rcv-buffer autotune", "open/close"] {
        assert!(out.contains(signal), "{signal} missing from:\n{out}");
    }
    // The ingress program that reads the socket by plain loads, not its fallback: every kernel
    // we test on verifies it.
    assert!(
        out.lines().any(|l| l.starts_with("  peer window ")
            && l.ends_with("cgroup_skb ingress (packet headers)")),
        "peer windows not served by the direct-load ingress program:\n{out}"
    );
    // Where function hooks serve the window, one serves the accepting process too: the syscall
    // tracepoints, which slow every system call on the host, only where neither kind exists.
    let hook_of = |signal: &str| {
        out.lines().find(|l| l.starts_with(&format!("  {signal} "))).map(str::to_string)
    };
    let (window, owner) = (hook_of("window").unwrap_or_default(), hook_of("accepting process"));
    let owner = owner.unwrap_or_default();
    let expected = if window.contains("fentry") {
        "fexit inet_csk_accept"
    } else if window.contains("kprobe") {
        "kretprobe inet_csk_accept"
    } else {
        "tracepoint syscalls/sys_exit_accept4"
    };
    assert!(owner.contains(expected), "accepting process not served by {expected}:\n{out}");
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn the_peer_window_fallback_program_verifies() {
    // Nothing chooses the fallback on the kernels we test: make it, and see the kernel take it.
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("probes").env("TRACER_AVOID_PROGRAMS", "ingress_skb");
    if let Ok(hooks) = std::env::var("TRACER_HOOKS") {
        cmd.args(["--hooks", &hooks]);
    }
    let out = run(&mut cmd);
    let chosen =
        "cgroup_skb ingress (packet headers; the socket read through bpf_probe_read_kernel)";
    assert!(
        out.lines().any(|l| l.starts_with("  peer window ") && l.ends_with(chosen)),
        "the probe-read ingress program did not serve peer windows:\n{out}"
    );
    assert!(
        out.contains(
            "skipped cgroup_skb ingress (packet headers): not tried (TRACER_AVOID_PROGRAMS"
        ),
        "the avoided program is not named as such:\n{out}"
    );
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn pid_filter_keeps_only_that_process() {
    let port = test_port() + 2;
    let ours = std::process::id();
    let mine = Tracer::start(&["--port", &port.to_string(), "--pid", &ours.to_string()]);
    // PID 1 never touches the test's sockets: its tracer must stay silent for this port.
    let other = Tracer::start(&["--port", &port.to_string(), "--pid", "1"]);
    in_new_netns(move || zero_window_transfer(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    thread::sleep(Duration::from_millis(200));
    let mine_stderr = mine.stderr_seen.join("\n");
    let mine = mine.stop();
    let other = other.stop();
    assert!(other.is_empty(), "--pid 1 reported the test's connection: {:?}", other.first());
    assert!(count(&mine, "probe") >= 1, "the sender's probes are attributed at connect()");
    assert!(count(&mine, "rcv_space") >= 1);
    // The reader sleeps before its first read: a zero window reported before that read shows
    // the socket was attributed at accept().
    let ts = |k: &str| mine.iter().find(|e| kind(e) == k).and_then(|e| e["ts_ns"].as_u64());
    let (first_zero, first_read) = (ts("zero_window_start"), ts("rcv_space"));
    assert!(first_zero.is_some(), "no zero window reported for the reader");
    if accept_hook(&mine_stderr).is_some() {
        assert!(first_zero < first_read, "a zero window before the first read was not attributed");
    }
    for e in &mine {
        assert_eq!(e["pid"], ours, "event of another process: {e}");
    }
}

/// Which hook names an accepted socket's process at accept() ("fexit", "kretprobe" or
/// "tracepoint", as events name their hook), from the tracer's hook table; None where none
/// attached (the first read names it then, and the tracer says so).
fn accept_hook(stderr: &str) -> Option<&'static str> {
    let line = stderr.lines().find(|l| l.contains("accepting process"))?;
    ["fexit", "kretprobe", "tracepoint"].into_iter().find(|hook| line.contains(hook))
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn receiver_limited_sender_alert() {
    let port = test_port() + 3;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    in_new_netns(move || window_limited_transfer(port, 7));
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let sender_port = events
        .iter()
        .find(|e| kind(e) == "open" && e["dport"] == port)
        .and_then(|e| e["sport"].as_u64())
        .expect("the sender's open event") as u16;
    assert_alert_cycle(&events, "receiver_limited", Some("peer"), sender_port);
    // The receiver is on this host (this process): the sender's alert names it.
    let limited = alerts(&events, "receiver_limited");
    let limited = limited.iter().find(|a| a["sport"] == sender_port).expect("receiver_limited");
    assert_eq!(limited["evidence"]["peer_pid"], std::process::id(), "{limited}");
    assert_eq!(limited["evidence"]["peer_local"], true, "{limited}");
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn window_scaling_missing_alert() {
    let port = test_port() + 4;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    in_new_netns(move || unscaled_transfer(port));
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let opens: Vec<&Value> = events.iter().filter(|e| kind(e) == "open").collect();
    assert_eq!(opens.len(), 2);
    assert!(opens.iter().all(|o| o["wscale_ok"] == false), "scaling was off: {opens:?}");
    let fired = alerts(&events, "window_scaling_missing");
    assert!(!fired.is_empty(), "window_scaling_missing did not fire");
    let local_port = fired[0]["sport"].as_u64().expect("sport") as u16;
    assert_alert_cycle(&events, "window_scaling_missing", None, local_port);
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn flow_control_drops_alert_and_counters() {
    let port = test_port() + 5;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        drop_transfer(port);
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(200));
    // Its last line says whether any kernel program run was skipped (nested on one CPU).
    let (events, detached) = tracer.stop_with_detached_line();
    let drops: Vec<&Value> = events.iter().filter(|e| kind(e) == "drop").collect();
    assert!(!drops.is_empty(), "no drop reported");
    for d in &drops {
        assert_eq!(d["sport"], port, "drops happen at the receiver: {d}");
        assert!(d["bytes"].as_u64() > Some(0), "{d}");
    }
    let by_reason = |r: &str| drops.iter().filter(|d| d["reason"] == r).count() as u64;
    let zero = delta(&before, &after, "TcpExtTCPZeroWindowDrop");
    let mem =
        delta(&before, &after, "TcpExtTCPRcvQDrop") + delta(&before, &after, "TcpExtTCPOFODrop");
    eprintln!(
        "drops: PROTO_MEM {} TCP_ZEROWINDOW {}; nstat: TCPRcvQDrop+TCPOFODrop +{mem}, TCPZeroWindowDrop +{zero}",
        by_reason("PROTO_MEM"),
        by_reason("TCP_ZEROWINDOW")
    );
    assert_eq!(by_reason("TCP_ZEROWINDOW"), zero, "TCP_ZEROWINDOW drops vs TCPZeroWindowDrop");
    assert_eq!(by_reason("PROTO_MEM"), mem, "PROTO_MEM drops vs TCPRcvQDrop + TCPOFODrop");
    // Counted zero windows still match the kernel's counter; the 6.6+ out-of-memory ones are
    // reported as uncounted.
    let counted = events
        .iter()
        .filter(|e| kind(e) == "zero_window_start" && e["side"] == "local" && e["counted"] == true)
        .count() as u64;
    assert_eq!(counted, delta(&before, &after, "TcpExtTCPToZeroWindowAdv"));
    assert_alert_cycle(&events, "flow_control_drops", Some("local"), port);
    // 6.17+ counts the segments it drops for lying outside the receive window: the buffer
    // shrunk under the sender makes it refuse retransmits that end past the window's edge.
    if before.contains_key("TcpExtBeyondWindow") {
        let beyond = delta(&before, &after, "TcpExtBeyondWindow");
        let out_of_window =
            by_reason("TCP_INVALID_SEQUENCE") + by_reason("TCP_INVALID_END_SEQUENCE");
        eprintln!("drops: out of window {out_of_window}; nstat: BeyondWindow +{beyond}");
        assert!(beyond > 0, "expected the scenario to make TcpExtBeyondWindow grow, it did not");
        // Every drop by reason, and nstat's drop counters, so that a mismatch says which side
        // missed what (seen once in a fresh-clone run: 4 against 5).
        let mut reasons: Vec<String> = drops.iter().map(|d| d["reason"].to_string()).collect();
        reasons.sort();
        let counters: Vec<String> = after
            .keys()
            .filter(|k| k.contains("Drop") || k.contains("Window") || k.contains("Prune"))
            .map(|k| format!("{k} +{}", delta(&before, &after, k)))
            .collect();
        assert_eq!(
            out_of_window, beyond,
            "TCP_INVALID_SEQUENCE + TCP_INVALID_END_SEQUENCE drops vs TcpExtBeyondWindow; the \
             tracer's drops by reason: {reasons:?}; nstat: {counters:?}; the tracer: {detached}"
        );
    }
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn refused_connection_reports_nothing_ipv4() {
    refused_connection_reports_nothing(IpAddr::V4(Ipv4Addr::LOCALHOST), test_port() + 6);
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn refused_connection_reports_nothing_ipv6() {
    refused_connection_reports_nothing(IpAddr::V6(Ipv6Addr::LOCALHOST), test_port() + 7);
}

/// Nothing listens: each SYN is answered with a RST (window 0) by the kernel's control socket,
/// which is no connection and has no window to report.
fn refused_connection_reports_nothing(addr: IpAddr, port: u16) {
    const ATTEMPTS: usize = 5;
    let metrics_port = free_port();
    let tracer = Tracer::start(&[
        "--port",
        &port.to_string(),
        "--metrics",
        &format!("127.0.0.1:{metrics_port}"),
    ]);
    let (before, after, wire) = in_new_netns(move || {
        let capture = Capture::start(&format!("tcp port {port}"));
        let before = nstat();
        for attempt in 1..=ATTEMPTS {
            match TcpStream::connect((addr, port)) {
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
                other => panic!("attempt {attempt}: expected ECONNREFUSED, got {other:?}"),
            }
        }
        thread::sleep(Duration::from_millis(100));
        let after = nstat();
        let fields = ["tcp.srcport", "tcp.window_size_value"];
        let wire = capture.map(|c| c.stop().rows("tcp.flags.reset == 1", &fields));
        (before, after, wire)
    });
    thread::sleep(Duration::from_millis(200));
    let metrics = scrape_metrics(metrics_port);
    let events = tracer.stop();

    // Nor any metric: no series names the refused port, or port 0.
    assert!(metrics.contains("tracer_events_lost_total"), "not the tracer's metrics: {metrics}");
    let leaked: Vec<&str> = metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.contains(&format!("port=\"{port}\"")) || l.contains("port=\"0\""))
        .collect();
    assert!(leaked.is_empty(), "expected no metric for refused port {port}, saw {leaked:?}");
    let out_rsts = delta(&before, &after, "TcpOutRsts");
    let attempt_fails = delta(&before, &after, "TcpAttemptFails");
    eprintln!("nstat: TcpOutRsts +{out_rsts}, TcpAttemptFails +{attempt_fails}");
    assert!(
        out_rsts >= ATTEMPTS as u64 || attempt_fails >= ATTEMPTS as u64,
        "expected {ATTEMPTS} refusals in nstat, saw TcpOutRsts +{out_rsts} TcpAttemptFails \
         +{attempt_fails}"
    );
    if let Some(rsts) = wire {
        let want: Vec<String> = vec![port.to_string(), "0".into()];
        assert_eq!(rsts.len(), ATTEMPTS, "RSTs on the wire: expected {ATTEMPTS}, saw {rsts:?}");
        for rst in &rsts {
            assert_eq!(rst, &want, "expected RSTs from port {port} with window 0, saw {rsts:?}");
        }
    }
    let ours = of_port(&events, port);
    let kinds: Vec<&str> = ours.iter().map(|e| kind(e)).collect();
    assert!(
        ours.is_empty(),
        "expected no event for refused port {port}, saw {kinds:?}; first: {}",
        ours[0]
    );
    assert_no_phantom_endpoints(&events);
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn reader_closing_with_unread_data_leaves_nothing_behind() {
    let port = test_port() + 8;
    // No port filter: the phantom this guards against was `127.0.0.1:0 > 127.0.0.1:<sender>`,
    // which a filter on the receiver's port would hide.
    let tracer = Tracer::start(&[]);
    let (before, after, wire_rsts) = in_new_netns(move || {
        let capture = Capture::start(&format!("tcp port {port}"));
        let before = nstat();
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        let sender = thread::spawn(move || {
            let mut s = TcpStream::connect((addr, port)).expect("connect");
            let chunk = vec![0x5a_u8; 256 * 1024];
            // The first 256 KiB fill the receiver; the writes go on, blocked, until the reset.
            (0..64).find_map(|_| s.write_all(&chunk).err())
        });
        let (conn, _) = listener.accept().expect("accept");
        // Long enough for the sender to fill the receive buffer and the window to close.
        thread::sleep(Duration::from_millis(500));
        // Unread data: the kernel answers this close with a RST (TCPAbortOnClose).
        drop(conn);
        let failed = sender.join().expect("sender");
        assert!(
            failed.is_some(),
            "expected the sender's writes to fail after the reset, 16 MiB went through"
        );
        thread::sleep(Duration::from_millis(300));
        let after = nstat();
        // The raw window of each RST the receiver sent.
        let wire_rsts = capture.map(|c| {
            let filter = format!("tcp.flags.reset == 1 && tcp.srcport == {port}");
            let rows = c.stop().rows(&filter, &["tcp.window_size_value"]);
            rows.iter().map(|r| r[0].parse::<u32>().expect("a window")).collect::<Vec<_>>()
        });
        (before, after, wire_rsts)
    });
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();

    let aborts = delta(&before, &after, "TcpExtTCPAbortOnClose");
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let from_zero = delta(&before, &after, "TcpExtTCPFromZeroWindowAdv");
    eprintln!(
        "nstat: TCPAbortOnClose +{aborts}, TCPToZeroWindowAdv +{to_zero}, \
         TCPFromZeroWindowAdv +{from_zero}; raw windows of the receiver's RSTs on the wire: \
         {wire_rsts:?}"
    );
    assert!(aborts >= 1, "expected TCPAbortOnClose +1 or more, nstat saw +{aborts}");
    if let Some(rsts) = &wire_rsts {
        assert!(!rsts.is_empty(), "expected a RST from port {port} on the wire, saw none");
    }
    assert_no_phantom_endpoints(&events);
    // The receiving socket's close is nearly its last word. tcp_close() sends its RST after
    // TCP_CLOSE, and that RST's window goes through tcp_select_window: if it leaves zero, the
    // kernel counts TCPFromZeroWindowAdv, and the tracer says so (a local window and
    // zero_window_end). Nothing else, and no later segment belongs to it.
    let from_kernel = |e: &Value| !matches!(kind(e), "alert" | "alert_resolved" | "summary");
    let receiver: Vec<(usize, &Value)> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["sport"] == port && e["dport"] != 0 && from_kernel(e))
        .collect();
    let (close_at, close) = *receiver
        .iter()
        .find(|(_, e)| kind(e) == "close")
        .unwrap_or_else(|| panic!("expected a close event for local port {port}, saw none"));
    let close_ts = close["ts_ns"].as_u64();
    let after_close: Vec<&Value> = receiver
        .iter()
        .filter(|(i, e)| *i > close_at || e["ts_ns"].as_u64() > close_ts)
        .map(|(_, e)| *e)
        .collect();
    let reset_window =
        |e: &&Value| matches!(kind(e), "window" | "zero_window_end") && e["side"] == "local";
    assert!(
        after_close.iter().all(reset_window),
        "expected nothing from local port {port} after its close {close} but the end of its \
         zero window in the RST, saw {after_close:?}"
    );
    let local = |k: &str| {
        receiver.iter().filter(|(_, e)| kind(e) == k && e["side"] == "local").count() as u64
    };
    assert_eq!(
        local("zero_window_start"),
        to_zero,
        "local zero_window_start vs TCPToZeroWindowAdv"
    );
    assert_eq!(
        local("zero_window_end"),
        from_zero,
        "local zero_window_end vs TCPFromZeroWindowAdv"
    );
    let ended_in_reset = after_close.iter().any(|e| kind(e) == "zero_window_end");
    if let (true, Some(rsts)) = (ended_in_reset, &wire_rsts) {
        assert!(
            rsts.iter().any(|&raw| raw > 0),
            "a zero_window_end after the close needs a RST with an open window on the wire, \
             saw raw windows {rsts:?}"
        );
    }
}

/// A keepalive into a zero window leaves the wire exactly like a zero-window probe (a pure ACK
/// with seq snd_una - 1), but the kernel counts it as a keepalive: with nothing left to send,
/// no persist timer runs.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn keepalive_into_a_zero_window_is_not_a_probe() {
    const ATTEMPTS: u32 = 3;
    let port = test_port() + 9;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (before, after, wire) = in_new_netns(move || {
        let capture = Capture::start(&format!("tcp port {port}"));
        let before = nstat();
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        set_rcvbuf(&listener, 4096);
        let mut idle = None;
        for attempt in 1..=ATTEMPTS {
            let sender = TcpStream::connect((addr, port)).expect("connect");
            sender.set_nodelay(true).expect("TCP_NODELAY");
            let (receiver, _) = listener.accept().expect("accept");
            // The last try waits for an ACK after every byte.
            match fill_peer_window_exactly(&sender, attempt == ATTEMPTS) {
                Ok(bytes) => {
                    eprintln!("attempt {attempt}: peer window closed on {bytes} B, nothing queued");
                    idle = Some((sender, receiver));
                    break;
                }
                Err(why) => eprintln!("attempt {attempt}: {why}"),
            }
        }
        let (sender, mut receiver) = idle.unwrap_or_else(|| {
            panic!(
                "expected a zero peer window with an empty write queue within {ATTEMPTS} attempts"
            )
        });
        set_int_opt(&sender, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set_int_opt(&sender, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 1);
        set_int_opt(&sender, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 1);
        set_int_opt(&sender, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 10);
        thread::sleep(Duration::from_secs(4));
        let info = tcp_info(&sender);
        let queued = send_queue_bytes(&sender);
        assert!(
            info.tcpi_snd_wnd == 0 && queued == 0,
            "expected the sender idle at a zero window during the keepalives, saw snd_wnd {} \
             queued {queued}",
            info.tcpi_snd_wnd
        );
        // Drain before closing, so the close is an orderly one.
        receiver.set_nonblocking(true).expect("O_NONBLOCK");
        let mut buf = vec![0u8; 64 * 1024];
        while receiver.read(&mut buf).is_ok_and(|n| n > 0) {}
        drop((sender, receiver));
        thread::sleep(Duration::from_millis(300));
        let after = nstat();
        let wire = capture.map(|c| {
            let filter = format!("tcp.analysis.keep_alive && tcp.dstport == {port}");
            c.stop().rows(&filter, &["frame.number"]).len() as u64
        });
        (before, after, wire)
    });
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();

    let keepalives = delta(&before, &after, "TcpExtTCPKeepAlive");
    let win_probes = delta(&before, &after, "TcpExtTCPWinProbe");
    let probes: Vec<String> =
        events.iter().filter(|e| kind(e) == "probe").map(|e| e.to_string()).collect();
    eprintln!(
        "nstat: TCPKeepAlive +{keepalives}, TCPWinProbe +{win_probes}; wire keep-alives \
         {wire:?}; tracer probes {}",
        probes.len()
    );
    assert!(keepalives >= 2, "expected TCPKeepAlive +2 or more in 4 s, nstat saw +{keepalives}");
    if let Some(seen) = wire {
        // On the wire the two are the same segment.
        assert_eq!(
            seen,
            keepalives + win_probes,
            "keep-alive-shaped segments on the wire vs TCPKeepAlive + TCPWinProbe"
        );
    }
    assert_eq!(
        probes.len() as u64,
        win_probes,
        "probe events vs TCPWinProbe (the keepalives are not probes); probes: {probes:?}"
    );
}

/// Writes exactly what the peer's window takes, again and again, until the peer advertises a
/// zero window with everything acknowledged and nothing left to send. Returns the bytes
/// written; an error says why that state was missed (bytes left unsent behind the zero window
/// arm the persist timer).
fn fill_peer_window_exactly(sender: &TcpStream, byte_at_a_time: bool) -> Result<usize, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let data = vec![0x5a_u8; 64 * 1024];
    let mut written = 0;
    let mut s = sender;
    loop {
        let info = tcp_info(sender);
        let queued = send_queue_bytes(sender) as usize;
        let window = info.tcpi_snd_wnd as usize;
        let state = format!(
            "snd_wnd {window} unacked {} queued {queued} after {written} B",
            info.tcpi_unacked
        );
        if Instant::now() > deadline {
            return Err(format!("not reached in 5 s: {state}"));
        }
        match (window, info.tcpi_unacked, queued) {
            (0, 0, 0) => return Ok(written),
            (0, 0, _) => return Err(format!("bytes left unsent behind a zero window: {state}")),
            // In flight: wait for the ACK and the window it carries.
            (_, _, 1..) => thread::sleep(Duration::from_millis(2)),
            (window, _, 0) => {
                let n = if byte_at_a_time { 1 } else { window.min(data.len()) };
                s.write_all(&data[..n]).map_err(|e| format!("write: {e} ({state})"))?;
                written += n;
            }
        }
    }
}

/// Segments the kernel sends from its per-namespace control socket (RSTs for refused or
/// vanished connections) and from listeners (SYN-ACKs of request sockets) belong to no
/// connection: the tracer must not make one of them.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn control_socket_segments_are_not_connections() {
    // Refused on `port`, connections on `port + 1`, a full backlog on `port + 2`.
    let port = test_port() + 10;
    // No --port: all of this host's traffic, so only what must hold for every event is checked.
    let tracer = Tracer::start(&[]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        for addr in [v4, v6] {
            // Refused: the control socket answers each SYN with a RST.
            for _ in 0..3 {
                let refused = TcpStream::connect((addr, port));
                assert!(refused.is_err(), "expected {addr}:{port} to refuse, it accepted");
            }
            // Connect/close cycles, leaving TIME_WAIT sockets on both ends.
            let listener = TcpListener::bind((addr, port + 1)).expect("bind");
            for i in 0..5 {
                let mut client = TcpStream::connect((addr, port + 1)).expect("connect");
                let (mut server, _) = listener.accept().expect("accept");
                client.write_all(b"ping").expect("client write");
                let mut buf = [0u8; 4];
                server.read_exact(&mut buf).expect("server read");
                // Alternate which end closes first (and so which end keeps the TIME_WAIT).
                if i % 2 == 0 {
                    drop(client);
                    drop(server);
                } else {
                    drop(server);
                    drop(client);
                }
            }
            // A connection whose server vanishes silently (TCP_REPAIR: its close sends
            // nothing): the client's next segment finds no socket and the control socket
            // answers with a RST.
            let mut client = TcpStream::connect((addr, port + 1)).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            set_int_opt(&server, libc::IPPROTO_TCP, libc::TCP_REPAIR, 1);
            drop(server);
            client.write_all(b"anyone there?").expect("write to a vanished peer");
            thread::sleep(Duration::from_millis(100));
            let mut buf = [0u8; 16];
            assert!(
                client.read(&mut buf).is_err(),
                "expected a reset from the control socket after the server vanished"
            );
        }
        // A full accept backlog: listen(1) and more clients than fit, each writing at once;
        // SYNs are dropped and retransmitted, SYN-ACKs come from request sockets.
        let backlog = listen_with_backlog(port + 2, 1);
        let clients: Vec<thread::JoinHandle<()>> = (0..4)
            .map(|_| {
                thread::spawn(move || {
                    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
                    let mut s = TcpStream::connect((addr, port + 2)).expect("connect to backlog");
                    let _ = s.write_all(b"waiting");
                    let mut buf = [0u8; 8];
                    let _ = s.read(&mut buf);
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(1500));
        for _ in 0..clients.len() {
            drop(backlog.accept().expect("accept from the backlog"));
        }
        for c in clients {
            c.join().expect("backlog client");
        }
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    eprintln!(
        "nstat: TcpOutRsts +{}, ListenOverflows +{}, TcpExtTW +{}; {} events",
        delta(&before, &after, "TcpOutRsts"),
        delta(&before, &after, "TcpExtListenOverflows"),
        delta(&before, &after, "TcpExtTW"),
        events.len()
    );
    // 6 refused SYNs and 2 segments to vanished peers at least.
    let resets = delta(&before, &after, "TcpOutRsts");
    assert!(resets >= 8, "expected TcpOutRsts +8 or more, nstat saw +{resets}");
    assert_no_phantom_endpoints(&events);
}

/// A listener with an accept backlog of `backlog` on 127.0.0.1:`port` (std's bind uses 128).
fn listen_with_backlog(port: u16, backlog: libc::c_int) -> TcpListener {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("bind");
    // SAFETY: listen() again on our own listening socket only changes its backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    assert_eq!(rc, 0, "listen({backlog}): {}", std::io::Error::last_os_error());
    listener
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn socket_reuse_keeps_zero_window_counts_exact() {
    let port = test_port() + 13;
    // Thousands of freed sockets hand their memory (and so their kernel address) to new ones.
    let connections = if in_guest() { 300 } else { 3000 };
    let aborted = if in_guest() { 30 } else { 100 };
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (before, after) = in_new_netns(move || {
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let before = nstat();
        // First sockets that die at a zero window with a RST after their close, then many
        // that take their memory, then a stall.
        aborted_at_zero_window(addr, port, aborted);
        short_connections(addr, port, connections);
        zero_window_transfer(addr, port);
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(200));
    let (events, lost) = tracer.stop_counting_losses();
    assert_eq!(lost, 0, "events lost by the tracer (the counts cannot be compared)");
    assert_no_phantom_endpoints(&events);
    assert_zero_window_counts(&events, &before, &after);
    // Each aborted reader reached a zero window, whose end the kernel counts in its RST.
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    assert!(
        in_guest() || to_zero > aborted as u64,
        "expected the {aborted} aborted readers at a zero window, TCPToZeroWindowAdv +{to_zero}"
    );
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn small_socket_map_keeps_transitions_exact() {
    let (idle_port, transfer_port) = (test_port() + 14, test_port() + 15);
    let idle_connections = if in_guest() { 300 } else { 600 };
    // Both ends of each idle connection, in this process.
    raise_nofile(20_000);
    let tracer = Tracer::start(&[
        "--socket-map-entries",
        "128",
        "--port",
        &idle_port.to_string(),
        "--port",
        &transfer_port.to_string(),
    ]);
    let (before, after) = in_new_netns(move || {
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let before = nstat();
        let listener = TcpListener::bind((addr, idle_port)).expect("bind");
        let mut held = Vec::with_capacity(idle_connections);
        for _ in 0..idle_connections {
            let mut client = TcpStream::connect((addr, idle_port)).expect("connect");
            let (mut server, _) = listener.accept().expect("accept");
            // One byte each way: every socket goes through the window path once.
            client.write_all(b"x").expect("client write");
            let mut byte = [0u8; 1];
            server.read_exact(&mut byte).expect("server read");
            server.write_all(b"y").expect("server write");
            client.read_exact(&mut byte).expect("client read");
            held.push((client, server));
        }
        zero_window_transfer(addr, transfer_port);
        drop(held);
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(200));
    let (events, detached) = tracer.stop_with_detached_line();
    let lost = detached_count(&detached, " lost");
    assert_eq!(lost, 0, "events lost by the tracer (the counts cannot be compared)");
    assert_no_phantom_endpoints(&events);
    let count_side =
        |k: &str, side: &str| events.iter().filter(|e| kind(e) == k && e["side"] == side).count();
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    // The packet programs keep a socket that finds the table full in sk_storage: the peer
    // windows (cgroup_skb ingress) stay exact whatever the table.
    assert_eq!(
        count_side("zero_window_start", "peer") as u64,
        to_zero,
        "peer-side zero_window_start events (the sender's view) vs TCPToZeroWindowAdv"
    );
    if std::env::var("TRACER_HOOKS").as_deref() == Ok("kprobe") {
        // kprobes cannot use sk_storage: their window state is in the fixed table, so with it
        // full a new connection goes untracked. That must be said, and nothing doubled.
        let untracked = detached_count(&detached, " connections not tracked");
        let starts = count_side("zero_window_start", "local") as u64;
        let ends = count_side("zero_window_end", "local") as u64;
        let from_zero = delta(&before, &after, "TcpExtTCPFromZeroWindowAdv");
        eprintln!(
            "kprobe: local zero windows {starts} starts, {ends} ends; nstat +{to_zero}, \
             +{from_zero}; {untracked} connections reported untracked"
        );
        assert!(starts <= to_zero && ends <= from_zero, "doubled transitions: {detached}");
        assert!(untracked > 0, "a full table must be reported: {detached}");
    } else {
        assert_zero_window_counts(&events, &before, &after);
    }
}

/// Local zero-window entries and exits match TCPToZeroWindowAdv and TCPFromZeroWindowAdv.
fn assert_zero_window_counts(
    events: &[Value],
    before: &std::collections::HashMap<String, u64>,
    after: &std::collections::HashMap<String, u64>,
) {
    let local =
        |k: &str| events.iter().filter(|e| kind(e) == k && e["side"] == "local").count() as u64;
    let (starts, ends) = (local("zero_window_start"), local("zero_window_end"));
    let to_zero = delta(before, after, "TcpExtTCPToZeroWindowAdv");
    let from_zero = delta(before, after, "TcpExtTCPFromZeroWindowAdv");
    eprintln!(
        "local zero windows: {starts} starts, {ends} ends; nstat: TCPToZeroWindowAdv \
         +{to_zero}, TCPFromZeroWindowAdv +{from_zero}"
    );
    assert!(to_zero > 0, "expected the transfer to close the window, TCPToZeroWindowAdv +0");
    assert_eq!(starts, to_zero, "local zero_window_start events vs TCPToZeroWindowAdv");
    assert_eq!(ends, from_zero, "local zero_window_end events vs TCPFromZeroWindowAdv");
}

/// Restores a sysctl file's value when dropped, also when the test panics.
struct SysctlGuard {
    path: &'static str,
    saved: String,
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(self.path, &self.saved) {
            eprintln!("failed to restore {} to {:?}: {e}", self.path, self.saved);
        }
    }
}

/// Under TCP memory pressure a 6.6+ kernel also sets zero windows it does not count in
/// TCPToZeroWindowAdv: the tracer must mark exactly the counted ones.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn counted_matches_kernel_under_memory_pressure() {
    if !in_guest() {
        eprintln!("skipped: needs a private kernel (tcp_mem is host-wide)");
        return;
    }
    const TCP_MEM: &str = "/proc/sys/net/ipv4/tcp_mem";
    let (port, ballast_port) = (test_port() + 16, test_port() + 17);
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let saved = std::fs::read_to_string(TCP_MEM).expect("read tcp_mem");
    let restore = SysctlGuard { path: TCP_MEM, saved };
    // In pages: a few buffered segments put TCP over the hard limit.
    std::fs::write(TCP_MEM, "10 20 30").expect("lower tcp_mem");
    // The kernel's global count moves in per-CPU steps of 1 MiB (net.core.mem_pcpu_rsv): hold
    // a few MiB that nobody reads, in a namespace of their own so that their zero windows stay
    // out of this test's counters, until the traffic is done.
    let (ready, ballast_ready) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let ballast = thread::spawn(move || {
        in_new_netns(move || {
            let held = unread_ballast(ballast_port);
            let _ = ready.send(held.len());
            let _ = released.recv();
        })
    });
    let ballast_connections = ballast_ready.recv_timeout(Duration::from_secs(60));
    let pressured = tcp_memory_pressure();
    let (done, finished) = mpsc::channel();
    let traffic = thread::spawn(move || {
        let counters = in_new_netns(move || {
            let before = nstat();
            drop_transfer(port);
            thread::sleep(Duration::from_millis(300));
            (before, nstat())
        });
        let _ = done.send(());
        counters
    });
    // Progress over the hard limit rests on the kernel's forced allocations: should it stall,
    // the restored limit lets the transfer finish and the test fails.
    let stalled = finished.recv_timeout(Duration::from_secs(60)).is_err();
    drop(release);
    drop(restore);
    ballast.join().expect("ballast connections");
    let (before, after) = traffic.join().expect("traffic under memory pressure");
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();

    eprintln!("ballast: {ballast_connections:?} connections; TCP memory pressure: {pressured}");
    assert!(
        pressured,
        "expected TCP under memory pressure (/proc/net/protocols) with tcp_mem 10 20 30, it was not"
    );
    assert!(!stalled, "expected the transfer to finish within 60 s under tcp_mem 10 20 30");
    let local_starts: Vec<&Value> =
        events.iter().filter(|e| kind(e) == "zero_window_start" && e["side"] == "local").collect();
    let counted = local_starts.iter().filter(|e| e["counted"] == true).count() as u64;
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let proto_mem =
        events.iter().filter(|e| kind(e) == "drop" && e["reason"] == "PROTO_MEM").count();
    let mem_drops =
        delta(&before, &after, "TcpExtTCPRcvQDrop") + delta(&before, &after, "TcpExtTCPOFODrop");
    eprintln!(
        "nstat: TCPToZeroWindowAdv +{to_zero}, TCPRcvQDrop+TCPOFODrop +{mem_drops}; tracer: local \
         zero windows {} ({counted} counted), PROTO_MEM drops {proto_mem}",
        local_starts.len()
    );
    assert_eq!(
        counted, to_zero,
        "local zero_window_start events with counted=true vs TCPToZeroWindowAdv"
    );
}

/// Connections to `port` whose receivers never read, each filled until its sender would block,
/// added until TCP is under memory pressure (at most 64).
fn unread_ballast(port: u16) -> Vec<(TcpStream, TcpStream)> {
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind the ballast listener");
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut held = Vec::new();
    while held.len() < 64 && !tcp_memory_pressure() {
        let mut client = TcpStream::connect((addr, port)).expect("connect ballast");
        let (server, _) = listener.accept().expect("accept ballast");
        client.set_nonblocking(true).expect("O_NONBLOCK");
        for _ in 0..64 {
            if client.write(&chunk).is_err() {
                break;
            }
        }
        held.push((client, server));
    }
    held
}

/// What the tracer sees as /sys/kernel/btf/vmlinux in `btf_test_view`.
enum BtfView {
    /// Nothing there (an empty tmpfs over /sys/kernel/btf).
    Missing,
    /// This file's bytes in its place (a bind mount).
    File(std::path::PathBuf),
}

/// `tracer probes` in a private mount namespace where the kernel's BTF is missing or replaced;
/// the host's own mounts are untouched.
fn probes_with_btf(view: BtfView) -> std::process::Output {
    use std::{ffi::CString, os::unix::process::CommandExt as _};
    let (source, target, fstype, flags) = match &view {
        BtfView::Missing => ("none".to_string(), "/sys/kernel/btf", "tmpfs", 0),
        BtfView::File(p) => (p.display().to_string(), "/sys/kernel/btf/vmlinux", "", libc::MS_BIND),
    };
    let source = CString::new(source).expect("a path without NUL");
    let target = CString::new(target).expect("a path without NUL");
    let fstype = CString::new(fstype).expect("a name without NUL");
    let root = CString::new("/").expect("a path without NUL");
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("probes");
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let check = |rc: i32| {
                if rc == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            };
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Keep the mounts below in this namespace.
            let private = libc::MS_REC | libc::MS_PRIVATE;
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                private,
                std::ptr::null(),
            ))?;
            let fstype = if flags == 0 { fstype.as_ptr() } else { std::ptr::null() };
            check(libc::mount(source.as_ptr(), target.as_ptr(), fstype, flags, std::ptr::null()))
        });
    }
    cmd.output().expect("run tracer probes in a mount namespace")
}

/// Missing or corrupt kernel BTF: one clear error naming the file and what is wrong, exit 1.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn missing_or_corrupt_btf_is_explained() {
    let check = |out: std::process::Output, needles: &[&str]| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "exit code; stderr:\n{err}");
        for needle in needles {
            assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
        }
        assert!(!err.contains("panicked"), "a panic:\n{err}");
    };
    check(
        probes_with_btf(BtfView::Missing),
        &["no BTF at /sys/kernel/btf/vmlinux", "CONFIG_DEBUG_INFO_BTF=y"],
    );
    let real = std::fs::read("/sys/kernel/btf/vmlinux").expect("this kernel's BTF");
    let dir = std::env::temp_dir();
    let garbage = dir.join(format!("tracer-btf-garbage-{}", std::process::id()));
    std::fs::write(&garbage, vec![0x5au8; 4096]).unwrap();
    check(
        probes_with_btf(BtfView::File(garbage.clone())),
        &["cannot parse kernel BTF in /sys/kernel/btf/vmlinux", "bad btf magic"],
    );
    let cut = dir.join(format!("tracer-btf-cut-{}", std::process::id()));
    std::fs::write(&cut, &real[..real.len().min(100_000)]).unwrap();
    check(
        probes_with_btf(BtfView::File(cut.clone())),
        &["cannot parse kernel BTF in /sys/kernel/btf/vmlinux", "corrupt btf"],
    );
    let _ = std::fs::remove_file(garbage);
    let _ = std::fs::remove_file(cut);
}

/// Without a filter, healthy connections send nothing at all. One whose reader stalls is
/// reported from its first flow-control moment: a late open that names its process, then its
/// events and its close. The kernel's host totals count every connection, as nstat does in the
/// test's own network namespace.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn quiet_connections_send_nothing_and_are_counted() {
    const HEALTHY: u64 = 300;
    let (quiet_port, stall_port) = (test_port() + 18, test_port() + 19);
    let metrics_port = free_port();
    let tracer = Tracer::start(&["--metrics", &metrics_port.to_string()]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        short_connections(addr, quiet_port, HEALTHY as usize);
        zero_window_transfer(addr, stall_port);
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(300));
    let metrics = scrape_metrics(metrics_port);
    let events = tracer.stop();

    let quiet = of_port(&events, quiet_port);
    assert!(quiet.is_empty(), "expected no event of the healthy connections, saw {quiet:?}");

    // Both ends of the stalled connection: a late open first, a close last.
    let stalled = of_port(&events, stall_port);
    let from_kernel = |e: &&&Value| !matches!(kind(e), "alert" | "alert_resolved" | "summary");
    let mut sockets: Vec<&str> = stalled.iter().filter_map(|e| e["sk"].as_str()).collect();
    sockets.sort_unstable();
    sockets.dedup();
    assert_eq!(sockets.len(), 2, "expected both ends of the stalled connection, saw {sockets:?}");
    for sk in &sockets {
        let mine: Vec<&&Value> =
            stalled.iter().filter(|e| e["sk"].as_str() == Some(*sk)).filter(from_kernel).collect();
        let first = mine.first().expect("events of the socket");
        assert_eq!(kind(first), "open", "socket {sk}: expected its late open first: {mine:?}");
        assert_eq!(first["late"], true, "socket {sk}: the open must be marked late: {first}");
        let later = mine.iter().skip(1).filter(|e| e["ts_ns"].as_u64() < first["ts_ns"].as_u64());
        assert_eq!(later.count(), 0, "socket {sk}: an event dated before its open: {mine:?}");
        assert_eq!(kind(mine.last().unwrap()), "close", "socket {sk}: expected its close last");
        assert_eq!(mine.iter().filter(|e| kind(e) == "open").count(), 1, "socket {sk}: one open");
    }
    let client_open = stalled
        .iter()
        .find(|e| kind(e) == "open" && e["active"] == true)
        .expect("the connecting end's open");
    assert_eq!(client_open["pid"], std::process::id(), "the open names the process");
    assert!(client_open["comm"].is_string(), "the open names the command: {client_open}");

    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let starts =
        stalled.iter().filter(|e| kind(e) == "zero_window_start" && e["side"] == "local").count()
            as u64;
    assert_eq!(starts, to_zero, "local zero_window_start events vs TCPToZeroWindowAdv");

    // The host totals, by service port, against nstat in the namespace where all of it ran.
    let value = |family: &str, labels: &str| -> u64 {
        let prefix = format!("{family}{{{labels}}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().expect("a counter value"))
    };
    let opened = |port: u16, direction: &str| {
        value(
            "tcp_flow_host_connections_opened_total",
            &format!("port=\"{port}\",direction=\"{direction}\""),
        )
    };
    let active = delta(&before, &after, "TcpActiveOpens");
    let passive = delta(&before, &after, "TcpPassiveOpens");
    eprintln!(
        "nstat: TcpActiveOpens +{active}, TcpPassiveOpens +{passive}, TCPToZeroWindowAdv \
         +{to_zero}; {} events in all",
        events.len()
    );
    assert_eq!(active, HEALTHY + 1, "nstat's active opens: the test's connections");
    // A state change in a softirq that interrupts the state program on the same CPU is skipped
    // by the kernel (its recursion check) and counted in the program's recursion_misses, which
    // the tracer exports: a count may fall short of nstat's by those, and by no more.
    let skipped_line =
        format!("tcp_flow_host_program_runs_missed_total{{program=\"{STATE_PROGRAM}\"}}");
    assert!(metrics.contains(&skipped_line), "no skipped-run count for {STATE_PROGRAM}: {metrics}");
    let skipped =
        value("tcp_flow_host_program_runs_missed_total", &format!("program=\"{STATE_PROGRAM}\""));
    eprintln!("{STATE_PROGRAM}: {skipped} runs skipped by the kernel");
    let counted = |what: &str, count: u64, oracle: u64| {
        assert!(
            count <= oracle && oracle - count <= skipped,
            "{what}: the tracer counted {count}, the oracle {oracle}, with {skipped} runs skipped"
        );
    };
    counted("active opens", opened(quiet_port, "active") + opened(stall_port, "active"), active);
    // Both ends of every connection are here: its passive end is the other half of an active
    // open. nstat's TcpPassiveOpens can say more: it counts each child socket made for a
    // handshake, also a second one made when two CPUs take an ACK of the same handshake at
    // once (tcp_v4_syn_recv_sock), which the kernel then discards without it ever being
    // established (seen in the 6.1 guest: +302 against +301 active opens).
    assert!(passive >= active, "nstat: fewer passive ({passive}) than active opens ({active})");
    counted("passive opens", opened(quiet_port, "passive") + opened(stall_port, "passive"), active);
    counted("healthy active opens", opened(quiet_port, "active"), HEALTHY);
    let port_label = |port: u16| format!("port=\"{port}\"");
    let closed = value("tcp_flow_host_connections_closed_total", &port_label(quiet_port));
    counted("healthy ends closed", closed, 2 * HEALTHY);
    let reported = |port: u16| value("tcp_flow_host_connections_reported_total", &port_label(port));
    assert_eq!((reported(quiet_port), reported(stall_port)), (0, 2), "connections reported");
    let zero_local =
        value("tcp_flow_host_zero_windows_total", &format!("port=\"{stall_port}\",side=\"local\""));
    assert_eq!(zero_local, to_zero, "host zero windows vs TCPToZeroWindowAdv");
}

/// `--every-connection` keeps the full stream without a filter: every healthy connection is
/// reported from its open (not late) to its close, as nstat counts them.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn every_connection_reports_healthy_ones_from_their_open() {
    const COUNT: u64 = 20;
    let port = test_port() + 20;
    let tracer = Tracer::start(&["--every-connection"]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        short_connections(IpAddr::V4(Ipv4Addr::LOCALHOST), port, COUNT as usize);
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    thread::sleep(Duration::from_millis(300));
    let events = tracer.stop();
    let ours = of_port(&events, port);
    let opens: Vec<&&Value> = ours.iter().filter(|e| kind(e) == "open").collect();
    let closes = ours.iter().filter(|e| kind(e) == "close").count() as u64;
    // Both ends are here: twice the active opens (nstat's passive opens may count a discarded
    // duplicate child too, see quiet_connections_send_nothing_and_are_counted).
    let active = delta(&before, &after, "TcpActiveOpens");
    assert!(delta(&before, &after, "TcpPassiveOpens") >= active, "nstat's passive opens");
    let opened = 2 * active;
    eprintln!("nstat: {active} active opens; tracer: {} opens, {closes} closes", opens.len());
    assert_eq!(opened, 2 * COUNT, "nstat's opens: both ends of the test's connections");
    assert_eq!(opens.len() as u64, opened, "an open for each end");
    assert_eq!(closes, opened, "a close for each end");
    assert!(opens.iter().all(|e| e.get("late").is_none()), "no open is late: {opens:?}");
}

/// What `ss -tinm` says, during the run, of the socket whose local port is `port`.
struct SsView {
    rcv_ssthresh: u64,
    /// skmem's rb: the socket's receive buffer (sk_rcvbuf).
    rcvbuf: u64,
}

fn ss_view(port: u16) -> SsView {
    let out = run(Command::new("ss").args(["-tinmH", "sport", "=", &format!(":{port}")]));
    let number = |prefix: &str| ss_number(&out, prefix);
    SsView { rcv_ssthresh: number("rcv_ssthresh:"), rcvbuf: number(",rb") }
}

/// A receiver set up by `setup` (on the listener before the handshake, `after_accept` on the
/// accepted socket) that reads as fast as it can while a sender writes for `seconds`; `ss` is
/// read halfway, and the wire captured where tshark exists (windows the receiver sent).
fn window_limit_run(
    port: u16,
    seconds: f64,
    setup: fn(&TcpListener),
    after_accept: fn(&TcpStream),
) -> (SsView, Option<Vec<Vec<String>>>) {
    in_new_netns(move || {
        // The receiver's segments and the sender's SYN (tshark needs both scales): not the
        // data, which would outrun the capture.
        let filter = format!("tcp src port {port} or (tcp dst port {port} and tcp[13] & 2 != 0)");
        let capture = Capture::start(&filter);
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        setup(&listener);
        // The receiver is set up before any data flows: data that arrives first grows the
        // window (and, with autotuning, the clamp) before a late setting can hold it.
        let client = TcpStream::connect((addr, port)).expect("connect");
        let (mut conn, _) = listener.accept().expect("accept");
        after_accept(&conn);
        let sender = SteadySender::on(client, 64 * 1024);
        let start = Instant::now();
        let mut ss = None;
        let mut buf = vec![0u8; 256 * 1024];
        while start.elapsed().as_secs_f64() < seconds {
            if conn.read(&mut buf).expect("read") == 0 {
                break;
            }
            if ss.is_none() && start.elapsed().as_secs_f64() > seconds / 2.0 {
                ss = Some(ss_view(port));
            }
        }
        sender.ask_to_stop();
        while conn.read(&mut buf).expect("drain") > 0 {}
        sender.join();
        let fields = ["tcp.window_size"];
        let wire = capture.map(|c| c.stop().rows(&format!("tcp.srcport == {port}"), &fields));
        (ss.expect("ss was read during the run"), wire)
    })
}

/// The receiving end's local window events, its summary, and the checks every limit test
/// makes: each window the tracer reports went out on the wire, rcv_ssthresh and the buffer are
/// what ss read, and on fentry kernels the wanted window is the kernel's own.
fn receiving_end(
    events: &[Value],
    port: u16,
    ss: &SsView,
    wire: Option<Vec<Vec<String>>>,
) -> (Vec<Value>, Value) {
    let windows: Vec<Value> = events
        .iter()
        .filter(|e| kind(e) == "window" && e["side"] == "local" && e["sport"] == port)
        .cloned()
        .collect();
    assert!(!windows.is_empty(), "no local window of the receiving end");
    for w in &windows {
        assert!(w["limited_by"].is_string(), "window without limited_by: {w}");
    }
    if let Some(wire) = wire {
        let sent: std::collections::HashSet<&str> =
            wire.iter().filter_map(|r| r.first().map(String::as_str)).collect();
        for w in &windows {
            let bytes = w["window"].to_string();
            assert!(sent.contains(bytes.as_str()), "window {bytes} is not on the wire: {w}");
        }
    }
    assert!(
        windows.iter().any(|w| w["rcv_ssthresh"] == ss.rcv_ssthresh),
        "ss read rcv_ssthresh {}; the events have {:?}",
        ss.rcv_ssthresh,
        windows.iter().map(|w| w["rcv_ssthresh"].clone()).collect::<Vec<_>>()
    );
    assert!(
        windows.iter().any(|w| w["rcvbuf"] == ss.rcvbuf),
        "ss read rcvbuf {}; the events have {:?}",
        ss.rcvbuf,
        windows.iter().map(|w| w["rcvbuf"].clone()).collect::<Vec<_>>()
    );
    if std::env::var("TRACER_EXPECT_HOOK").as_deref() == Ok("fentry") {
        for w in windows.iter().filter(|w| w["hook"] == "fentry") {
            assert_eq!(w["wanted_exact"], true, "fexit __tcp_select_window gave no result: {w}");
        }
    }
    let summary = events
        .iter()
        .find(|e| kind(e) == "summary" && e["sport"] == port)
        .cloned()
        .expect("a summary of the receiving end");
    (windows, summary)
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn a_pinned_receive_buffer_is_named_with_its_size() {
    let port = test_port() + 30;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (ss, wire) = window_limit_run(port, 2.0, |l| set_rcvbuf(l, 16 * 1024), |_| {});
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let (windows, summary) = receiving_end(&events, port, &ss, wire);
    // The kernel doubles SO_RCVBUF: 32 KiB, as ss says.
    assert_eq!(ss.rcvbuf, 32 * 1024);
    assert!(windows.iter().all(|w| w["rcvbuf_locked"] == true), "{windows:?}");
    let top = &summary["local"]["limited_by"][0];
    assert_eq!(top["limit"], "buffer_max", "{summary}");
    assert!(top["pct"].as_f64() >= Some(50.0), "{summary}");
    let verdict = summary["verdict"].as_str().unwrap_or("");
    assert!(verdict.contains("pinned at 32.0 KiB by SO_RCVBUF"), "{verdict}");
}

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn a_window_clamp_is_named_with_its_size() {
    // On this host's 6.18.44 a clamp does not hold through a fast transfer: receive-buffer
    // autotuning sets window_clamp back to the buffer's window, SO_RCVBUF pinned or not
    // (getsockopt TCP_WINDOW_CLAMP: 16384, then 2064384 within a second), and the tracer reports
    // that window_clamp. 6.1 keeps the clamp.
    if !in_guest() {
        eprintln!("skipped on this host: its kernel's autotuning overrides TCP_WINDOW_CLAMP");
        return;
    }
    const TCP_WINDOW_CLAMP: libc::c_int = 10;
    let port = test_port() + 31;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    // Autotuning moves window_clamp with the buffer: the clamp holds on a pinned one.
    let (ss, wire) = window_limit_run(
        port,
        2.0,
        |l| set_rcvbuf(l, 1 << 20),
        |c| set_int_opt(c, libc::IPPROTO_TCP, TCP_WINDOW_CLAMP, 16 * 1024),
    );
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let (windows, summary) = receiving_end(&events, port, &ss, wire);
    assert!(ss.rcv_ssthresh <= 16 * 1024, "ss: rcv_ssthresh {}", ss.rcv_ssthresh);
    let clamped: Vec<&Value> =
        windows.iter().filter(|w| w["limited_by"] == "window_clamp").collect();
    assert!(!clamped.is_empty(), "no window named window_clamp: {windows:?}");
    assert!(clamped.iter().all(|w| w["window_clamp"] == 16 * 1024), "{clamped:?}");
    let top = &summary["local"]["limited_by"][0];
    assert_eq!(top["limit"], "window_clamp", "{summary}");
    let verdict = summary["verdict"].as_str().unwrap_or("");
    assert!(verdict.contains("window_clamp at 16.0 KiB"), "{verdict}");
}

/// Whether netem could delay `lo` here (the 6.1 guest loads it; this host's kernel has none).
fn netem_delay(ms: u32) -> bool {
    let out = Command::new("tc")
        .args(["qdisc", "add", "dev", "lo", "root", "netem", "delay", &format!("{ms}ms")])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!("netem is not available: {}", String::from_utf8_lossy(&o.stderr).trim());
            false
        }
        Err(e) => {
            eprintln!("tc is not available: {e}");
            false
        }
    }
}

/// The issue's case: a path with a real RTT (netem, 40 ms) and a small tcp_rmem max. The
/// receiving end's window is held by the buffer at its maximum and the transfer runs at
/// window / RTT: window_limits_throughput names tcp_rmem and its value, its cap agrees with the
/// rate the application received, and raising the sysctl resolves it. The 64 KiB max keeps the
/// cap (about 0.7 MB/s) well below what the emulated CPU carries on a busy host: a 256 KiB max
/// (a 2.7 MB/s cap) let the CPU set the rate at 2.3-2.5 MB/s, and a 128 KiB one (1.4 MB/s) did
/// too once, at 1.25-1.3 MB/s, before and after the raise.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn a_buffer_at_tcp_rmem_max_caps_the_transfer_and_is_named() {
    if !in_guest() {
        eprintln!(
            "skipped: needs netem, which only the 6.1 guest has (this host's kernel lacks it)"
        );
        return;
    }
    let port = test_port() + 32;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let received = in_new_netns(move || {
        assert!(netem_delay(20), "the 6.1 guest must have netem (sch_netem.ko, tc)");
        std::fs::write("/proc/sys/net/ipv4/tcp_rmem", "4096 32768 65536").expect("tcp_rmem");
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        let sender = SteadySender::start(addr, port, 64 * 1024);
        let (mut conn, _) = listener.accept().expect("accept");
        // Bytes received in each whole second: the rate the wire carried to the application.
        let mut per_second = Vec::new();
        let mut buf = vec![0u8; 256 * 1024];
        let start = Instant::now();
        let mut second = (0, 0u64);
        while start.elapsed() < Duration::from_secs(12) {
            if start.elapsed() >= Duration::from_secs(7) && second.0 == 6 {
                // Room to grow: the buffer autotunes past the old maximum.
                std::fs::write("/proc/sys/net/ipv4/tcp_rmem", "4096 65536 8388608")
                    .expect("raise tcp_rmem");
            }
            let n = conn.read(&mut buf).expect("read");
            let now = start.elapsed().as_secs();
            if now != second.0 {
                per_second.push(second);
                second = (now, 0);
            }
            second.1 += n as u64;
        }
        sender.ask_to_stop();
        drop(conn);
        sender.join();
        per_second
    });
    thread::sleep(Duration::from_millis(300));
    let events = tracer.stop();
    let fired: Vec<&Value> = alerts(&events, "window_limits_throughput")
        .into_iter()
        .filter(|a| a["sport"] == port && a["side"] == "local")
        .collect();
    assert!(!fired.is_empty(), "window_limits_throughput did not fire for the receiver");
    let a = fired[0];
    assert_eq!(a["evidence"]["limited_by"], "buffer_max", "{a}");
    assert_eq!(a["evidence"]["rmem_max"], 65_536, "{a}");
    let fix = a["fix"].as_str().unwrap_or("");
    assert!(fix.contains("net.ipv4.tcp_rmem max (now 64.0 KiB)"), "{fix}");
    // The cap against what the application received in the last whole seconds before the
    // raise, while the alert stood: the window it names held the rate then. (The rate climbs
    // for the first 3-4 s, about 565 -> 672 KB/s in the guest, as the window grows to what the
    // buffer's maximum allows, and the alert fires at 1-2 s, once the buffer is at it.)
    let cap = a["evidence"]["cap_bps"].as_f64().expect("cap_bps");
    let fired_s = (a["ts_ns"].as_u64().unwrap_or(0)
        - events.iter().find(|e| kind(e) == "open").and_then(|e| e["ts_ns"].as_u64()).unwrap_or(0))
        / 1_000_000_000;
    let wire: Vec<f64> = received
        .iter()
        .filter(|(s, _)| *s > fired_s && *s >= 5 && *s < 7)
        .map(|(_, b)| *b as f64)
        .collect();
    assert!(
        !wire.is_empty(),
        "no whole second between the alert ({fired_s} s) and the raise (7 s): {received:?}"
    );
    let mean = wire.iter().sum::<f64>() / wire.len() as f64;
    eprintln!(
        "cap {cap:.0} B/s, {mean:.0} B/s received after the alert ({fired_s} s): {received:?}"
    );
    assert!(
        (cap - mean).abs() <= 0.10 * mean,
        "cap {cap} B/s vs {mean} B/s received ({received:?})"
    );
    let resolved = events.iter().any(|e| {
        kind(e) == "alert_resolved"
            && e["rule"] == "window_limits_throughput"
            && e["sport"] == port
            && e["side"] == "local"
            && e["ts_ns"].as_u64() > a["ts_ns"].as_u64()
    });
    let after: Vec<String> = events
        .iter()
        .filter(|e| e["sport"] == port && e["ts_ns"].as_u64() > a["ts_ns"].as_u64())
        .filter(|e| matches!(kind(e), "read" | "window" | "rcv_space" | "alert" | "alert_resolved"))
        .map(|e| e.to_string())
        .collect();
    assert!(
        resolved,
        "raising tcp_rmem did not resolve the alert; the receiver's events after it:\n{}",
        after.join("\n")
    );
}

/// A reader in another process that sleeps and then drains its socket in one burst, again and
/// again: the window closes several times a second, each time for less than the 1 s of
/// zero_window_stall. zero_window_duty_cycle fires on both ends and names the reader's pid;
/// its episode count is the zero_window_start events of its interval, and every start is one
/// of nstat's TCPToZeroWindowAdv. The sender's alerts name the reader at the other end.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn bursty_reader_duty_cycle_names_the_reader_at_both_ends() {
    // With loopback's 64 KiB MSS, a small buffer's windows are below one MSS and the sender
    // waits for its persist timer (the reader no longer sets the pace). At an Ethernet MTU, a
    // burst takes all of the 256 KiB buffer, and the sender fills it again in some 85 ms
    // (measured here): the window is then at zero for the rest of each 250 ms nap, about two
    // thirds of the time, four episodes a second. Under QEMU's emulated CPU the refill is slow
    // and uneven (13 episodes in 6.5 s with 500 ms naps, the zero share under half): the timing
    // this scenario needs is this host's, so it runs here only.
    if in_guest() {
        eprintln!("skipped in the guest: its emulated CPU cannot refill the buffer in a nap");
        return;
    }
    let nap_ms: i64 = 250;
    let port = test_port() + 21;
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (reader, before, after) = in_new_netns(move || {
        run(Command::new("ip").args(["link", "set", "lo", "mtu", "1500"]));
        let before = nstat();
        let reader = bursty_transfer(port, Duration::from_millis(6500), nap_ms);
        thread::sleep(Duration::from_millis(300));
        (reader, before, nstat())
    });
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();

    let starts: Vec<u64> = events
        .iter()
        .filter(|e| kind(e) == "zero_window_start" && e["side"] == "local" && e["sport"] == port)
        .filter_map(|e| e["ts_ns"].as_u64())
        .collect();
    let to_zero = delta(&before, &after, "TcpExtTCPToZeroWindowAdv");
    let duty = alerts(&events, "zero_window_duty_cycle");
    let local: Vec<&&Value> =
        duty.iter().filter(|a| a["side"] == "local" && a["sport"] == port).collect();
    let summary: Vec<String> =
        duty.iter().map(|a| format!("{} {}: {}", a["side"], a["ts_ns"], a["evidence"])).collect();
    eprintln!(
        "reader pid {reader}: {} local zero_window_start, nstat TCPToZeroWindowAdv +{to_zero}; \
         duty-cycle alerts: {summary:?}",
        starts.len()
    );
    assert_eq!(starts.len() as u64, to_zero, "zero-window starts vs TCPToZeroWindowAdv");
    assert!(!alerts(&events, "zero_window_stall").iter().any(|a| a["sport"] == port));

    let fired = local.first().expect("zero_window_duty_cycle for the reader's end");
    eprintln!("the reader's alert: {fired}");
    assert_eq!(fired["pid"], reader, "the alert names the reader's process: {fired}");
    assert!(fired["comm"].as_str().is_some_and(|c| !c.is_empty()), "{fired}");
    assert!(fired["explanation"].as_str().is_some_and(|t| t.contains(&format!("pid {reader}"))));
    let ev = &fired["evidence"];
    let episodes = ev["episodes"].as_u64().expect("episodes");
    let interval_ms = ev["interval_ms"].as_u64().expect("interval_ms");
    assert_eq!(interval_ms, 5000, "the default interval");
    assert!(episodes >= 5 && ev["zero_pct"].as_f64() >= Some(50.0), "{fired}");
    assert!(ev["longest_episode_ms"].as_u64() < Some(1000), "short episodes: {fired}");
    // The interval ends at the alert and began interval_ms before: the starts inside it.
    let end = fired["ts_ns"].as_u64().expect("ts_ns");
    let begin = end - interval_ms * 1_000_000;
    let inside = starts.iter().filter(|&&t| t >= begin && t < end).count() as u64;
    assert_eq!(episodes, inside, "episodes vs zero_window_start events in [{begin}, {end})");
    assert_alert_cycle_of(&events, "zero_window_duty_cycle", Some("local"), port, reader);

    // The sender's end: same episodes seen as the peer's, and its alerts name the reader.
    let sender_port = events
        .iter()
        .find(|e| kind(e) == "open" && e["dport"] == port)
        .and_then(|e| e["sport"].as_u64())
        .expect("the sender's open event") as u16;
    let peer = duty
        .iter()
        .find(|a| a["side"] == "peer" && a["sport"] == sender_port)
        .expect("zero_window_duty_cycle on the sender's end");
    assert_eq!(peer["pid"], std::process::id(), "the sender is this process: {peer}");
    assert_eq!(peer["evidence"]["peer_pid"], reader, "the reader at the other end: {peer}");
    for key in ["explanation", "fix"] {
        let text = peer[key].as_str().unwrap_or_default();
        assert!(text.contains(&format!("pid {reader}")), "{key} names the reader: {peer}");
    }
    let limited = alerts(&events, "receiver_limited");
    let limited = limited.iter().find(|a| a["sport"] == sender_port).expect("receiver_limited");
    assert_eq!(limited["evidence"]["peer_pid"], reader, "{limited}");
    assert!(limited["fix"].as_str().is_some_and(|t| t.contains(&format!("pid {reader}"))));
}

/// `assert_alert_cycle` for an alert of another process than the test's.
fn assert_alert_cycle_of(events: &[Value], rule: &str, side: Option<&str>, port: u16, pid: u32) {
    let of_rule = |k: &str| {
        events
            .iter()
            .filter(|e| kind(e) == k && e["rule"] == rule && e["sport"] == port)
            .filter(|e| side.is_none_or(|s| e["side"] == s))
            .collect::<Vec<_>>()
    };
    let fired = of_rule("alert");
    assert!(!fired.is_empty(), "{rule} did not fire for port {port}");
    assert!(fired.iter().all(|a| a["pid"] == pid), "{rule} names pid {pid}: {fired:?}");
    let at = fired[0]["ts_ns"].as_u64();
    let resolved = of_rule("alert_resolved");
    assert!(resolved.iter().any(|a| a["ts_ns"].as_u64() >= at), "{rule} never resolved");
}

/// Listens on `port` with a pinned 256 KiB buffer; a forked child accepts and, for `bursts`,
/// sleeps `nap_ms` then reads whatever is there, then reads to the end. This thread sends as
/// fast as it can meanwhile. Returns the reader's pid once it exited.
fn bursty_transfer(port: u16, bursts: Duration, nap_ms: i64) -> u32 {
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind");
    set_rcvbuf(&listener, 128 * 1024);
    let mut buf = vec![0u8; 1 << 20];
    let deadline = monotonic_ns() + bursts.as_nanos() as i64;
    // SAFETY: fork; the child only makes async-signal-safe system calls on memory allocated
    // before the fork, then _exit()s.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        // SAFETY: as above: the listener's fd and `buf` were made before the fork.
        unsafe { bursty_reader(listener.as_raw_fd(), &mut buf, deadline, nap_ms) }
    }
    drop(listener);
    let sender = SteadySender::start(addr, port, 16 * 1024);
    thread::sleep(bursts + Duration::from_millis(200));
    sender.join();
    let mut status = 0;
    // SAFETY: waits for our own child.
    let waited = unsafe { libc::waitpid(child, &mut status, 0) };
    assert_eq!(waited, child, "waitpid: {}", std::io::Error::last_os_error());
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "reader: {status}");
    child as u32
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime fills a timespec we own; it is async-signal-safe.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The forked reader: accept, then until `deadline` nap and take what is queued, then read to
/// the end and exit. Exit status 1 if accept fails.
///
/// # Safety
/// Only in a forked child: system calls only, and `_exit`.
unsafe fn bursty_reader(listener: i32, buf: &mut [u8], deadline: i64, nap_ms: i64) -> ! {
    // SAFETY: plain system calls on our own fds and buffer, each below.
    unsafe {
        let fd = libc::accept(listener, std::ptr::null_mut(), std::ptr::null_mut());
        if fd < 0 {
            libc::_exit(1);
        }
        let nap = libc::timespec { tv_sec: 0, tv_nsec: nap_ms * 1_000_000 };
        while monotonic_ns() < deadline {
            libc::nanosleep(&nap, std::ptr::null_mut());
            // One call takes all that is queued: the window opens once per burst (reading on
            // until the socket is empty would race the sender refilling it).
            if libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) == 0 {
                libc::_exit(0);
            }
        }
        while libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) > 0 {}
        libc::close(fd);
        libc::_exit(0)
    }
}

/// `ss -tinH` of the socket whose remote port is `port`: tcp_info's bytes_sent, data_segs_out
/// and mss (the kernel's current one).
fn ss_segments(port: u16) -> (u64, u64, u64) {
    let out = run(Command::new("ss").args(["-tinH", "dport", "=", &format!(":{port}")]));
    let number = |prefix: &str| ss_number(&out, prefix);
    (number(" bytes_sent:"), number(" data_segs_out:"), number(" mss:"))
}

/// A chrono time `ss -ti` prints only when it is not zero (`rwnd_limited:`, ...), in ms.
fn ss_time_ms(out: &str, prefix: &str) -> u64 {
    if out.contains(prefix) {
        ss_number(out, prefix)
    } else {
        0
    }
}

/// The number after `prefix` in `ss` output `out`.
fn ss_number(out: &str, prefix: &str) -> u64 {
    let at = out.find(prefix).unwrap_or_else(|| panic!("ss shows no {prefix}: {out}"));
    out[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("ss's {prefix} is not a number: {out}"))
}

/// A receiver pinned to the smallest buffer offers at most 2 KiB: this host's sender cuts its
/// segments to half of that (tcp_bound_to_half_wnd), far below loopback's 64 KiB MSS.
/// `sender_silly_window` names the mean segment, which agrees with `ss` (bytes_sent /
/// data_segs_out) and with the data on the wire, and a tiny largest window of the peer.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn a_sender_held_to_tiny_segments_is_named_with_their_size() {
    let port = test_port() + 34;
    let tracer = Tracer::start(&[
        "--port",
        &port.to_string(),
        "--alert",
        "receiver_limited.interval_ms=1500",
    ]);
    let (ss, wire_segments) = in_new_netns(move || {
        // The sender's segments: their sizes, not their count, are compared (tshark may miss
        // some at this rate without skewing the mean).
        let data = Capture::start(&format!("tcp dst port {port}"));
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        set_rcvbuf(&listener, 2048);
        let client = TcpStream::connect((addr, port)).expect("connect");
        let (mut conn, _) = listener.accept().expect("accept");
        let sender = SteadySender::on(client, 64 * 1024);
        let start = Instant::now();
        let mut ss = None;
        let mut buf = vec![0u8; 64 * 1024];
        while start.elapsed() < Duration::from_millis(2500) {
            if conn.read(&mut buf).expect("read") == 0 {
                break;
            }
            if ss.is_none() && start.elapsed() > Duration::from_millis(2000) {
                ss = Some(ss_segments(port));
            }
        }
        sender.ask_to_stop();
        while conn.read(&mut buf).expect("drain") > 0 {}
        sender.join();
        let segments = data.map(|c| {
            let filter = format!("tcp.dstport == {port} && tcp.len > 0");
            let rows = c.stop().rows(&filter, &["tcp.len"]);
            rows.iter().map(|r| r[0].parse::<u64>().expect("a length")).collect::<Vec<_>>()
        });
        (ss.expect("ss was read during the run"), segments)
    });
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let fired: Vec<&Value> = events
        .iter()
        .filter(|e| kind(e) == "alert" && e["rule"] == "sender_silly_window" && e["dport"] == port)
        .collect();
    assert!(!fired.is_empty(), "sender_silly_window did not fire for the sender to {port}");
    let alert = fired[0];
    assert_eq!(alert["side"], "peer", "{alert}");
    assert_eq!(alert["pid"], std::process::id(), "it names this process: {alert}");
    let evidence = &alert["evidence"];
    let mean = evidence["mean_segment"].as_u64().expect("mean_segment");
    let (bytes_sent, segs, mss_now) = ss;
    let ss_mean = bytes_sent / segs.max(1);
    eprintln!(
        "sender_silly_window: mean {mean} B, MSS {}, peer max window {}; ss: {bytes_sent} B in \
         {segs} data segments = {ss_mean} B",
        evidence["mss"], evidence["peer_max_window"]
    );
    let near = |a: u64, b: u64| a.abs_diff(b) * 10 <= b;
    assert!(near(mean, ss_mean), "mean segment {mean} B vs ss's {ss_mean} B");
    assert!(evidence["mss"].as_u64() >= Some(4 * mean), "far below the MSS: {evidence}");
    assert!(evidence["peer_max_window"].as_u64() <= Some(4096), "a tiny window: {evidence}");
    if let Some(packets) = wire_segments {
        assert!(packets.len() >= 20, "data packets on the wire: {}", packets.len());
        // Loopback carries GSO packets unsplit: each is ceil(len / mss) segments, as a NIC
        // would send it and as the kernel counts it (tcp_skb_pcount).
        let segments: u64 = packets.iter().map(|len| len.div_ceil(mss_now.max(1))).sum();
        let wire_mean = packets.iter().sum::<u64>() / segments;
        eprintln!(
            "wire: {} data packets, {segments} segments of at most {mss_now} B, mean {wire_mean} B",
            packets.len()
        );
        assert!(near(mean, wire_mean), "mean segment {mean} B vs the wire's {wire_mean} B");
    }
}

/// A TCP connection to 127.0.0.1:`port` whose SO_SNDBUF was set before the connect.
fn connect_with_sndbuf(port: u16, sndbuf: Option<libc::c_int>) -> TcpStream {
    use std::os::fd::FromRawFd as _;
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it over;
    // the address is a valid sockaddr_in of the size passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        if let Some(bytes) = sndbuf {
            let rc = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            );
            assert_eq!(rc, 0, "setsockopt(SO_SNDBUF): {}", std::io::Error::last_os_error());
        }
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

/// What a transfer of `buffer_bound_transfer` left to compare: the share of 1 ms samples in
/// which the kernel had the sending thread asleep in `wait_woken` (inside
/// sk_stream_wait_memory: the only wait of a thread that only writes), `ss -ti` read during
/// the run, and the windows the receiver advertised on the wire (None without tshark).
struct BufferBound {
    asleep: f64,
    ss: String,
    windows: Option<Vec<u64>>,
}

/// A sender writing 1 MiB at a time through `SO_SNDBUF` = `sndbuf` (None: the default) to a
/// reader that keeps up, for 2.5 s.
fn buffer_bound_transfer(port: u16, sndbuf: Option<libc::c_int>) -> BufferBound {
    in_new_netns(move || {
        let capture = Capture::start(&format!("tcp src port {port}"));
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = TcpListener::bind((addr, port)).expect("bind");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let sender = thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).expect("tid");
            let mut stream = connect_with_sndbuf(port, sndbuf);
            let chunk = vec![0x5a_u8; 1 << 20];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                stream.write_all(&chunk).expect("send");
            }
        });
        let tid = tid_rx.recv().expect("the sender's tid");
        let (mut conn, _) = listener.accept().expect("accept");
        let wchan = format!("/proc/self/task/{tid}/wchan");
        let sampling = stop.clone();
        let sampler = thread::spawn(move || {
            let (mut asleep, mut all) = (0u32, 0u32);
            while !sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(w) = std::fs::read_to_string(&wchan) {
                    all += 1;
                    asleep += u32::from(w == "wait_woken");
                }
                thread::sleep(Duration::from_millis(1));
            }
            f64::from(asleep) / f64::from(all.max(1))
        });
        let start = Instant::now();
        let mut ss = None;
        let mut buf = vec![0u8; 1 << 20];
        while start.elapsed() < Duration::from_millis(2500) {
            assert!(conn.read(&mut buf).expect("read") > 0, "the sender closed early");
            if ss.is_none() && start.elapsed() > Duration::from_millis(2000) {
                ss = Some(run(Command::new("ss").args([
                    "-tinH",
                    "dport",
                    "=",
                    &format!(":{port}"),
                ])));
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let asleep = sampler.join().expect("sampler");
        while conn.read(&mut buf).expect("drain") > 0 {}
        sender.join().expect("sender");
        // The receiver's windows after the handshake (tshark scales them from it).
        let windows = capture.map(|c| {
            let filter = format!("tcp.srcport == {port} && tcp.flags.syn == 0");
            let rows = c.stop().rows(&filter, &["tcp.window_size"]);
            rows.iter().filter_map(|r| r[0].parse().ok()).collect()
        });
        BufferBound { asleep, ss: ss.expect("ss was read during the run"), windows }
    })
}

/// A sender whose `SO_SNDBUF` (4 KiB) holds it back is reported without a filter and named
/// in its summary with its share of the time waiting for the buffer, which agrees with how
/// often the kernel had its thread asleep waiting for space (`/proc/<tid>/wchan`). The
/// kernel's own sndbuf_limited (`ss -ti`) is printed beside it: it misses these waits. The
/// same transfer with the default buffer is not named.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn a_sender_held_by_its_pinned_send_buffer_is_named() {
    let (pinned, autotuned) = (test_port() + 35, test_port() + 36);
    // Alert intervals of 1.5 s: the transfers last 2.5 s.
    let tracer = Tracer::start(&["--alert", "receiver_limited.interval_ms=1500"]);
    let held_run = buffer_bound_transfer(pinned, Some(4096));
    let default_run = buffer_bound_transfer(autotuned, None);
    let (asleep, ss, asleep_default) = (held_run.asleep, &held_run.ss, default_run.asleep);
    thread::sleep(Duration::from_millis(200));
    let events = tracer.stop();
    let summary = |port: u16| events.iter().find(|e| kind(e) == "summary" && e["dport"] == port);
    let held = summary(pinned).expect("the pinned sender was reported");
    let pct = held["peer"]["buffer_wait_pct"].as_f64().expect("buffer_wait_pct");
    let verdict = held["verdict"].as_str().unwrap_or_default();
    eprintln!(
        "pinned: tracer {pct}% waiting for the buffer, wchan {:.1}% asleep in wait_woken; ss: \
         busy {} ms, sndbuf_limited {} ms; default buffer: wchan {:.1}%",
        asleep * 100.0,
        ss_number(ss, " busy:"),
        ss_time_ms(ss, " sndbuf_limited:"),
        asleep_default * 100.0
    );
    // Not the receiver: ss counts (almost) no time held by its window, and on the wire its
    // window never came near the 8 KiB the sender could have in flight.
    let rwnd_ms = ss_time_ms(ss, " rwnd_limited:");
    assert!(rwnd_ms * 10 <= ss_number(ss, " busy:"), "ss: rwnd_limited {rwnd_ms} ms: {ss}");
    if let Some(windows) = &held_run.windows {
        let smallest = windows.iter().min().copied().unwrap_or(0);
        eprintln!("wire: {} windows from the receiver, the smallest {smallest}", windows.len());
        assert!(windows.len() >= 10 && smallest >= 64 * 1024, "receiver windows: {windows:?}");
    }
    assert!(
        asleep >= 0.5,
        "the sender's thread waited for space {:.0}% of the time",
        asleep * 100.0
    );
    assert!((pct - asleep * 100.0).abs() <= 25.0, "tracer {pct}% vs wchan {:.1}%", asleep * 100.0);
    assert!(
        verdict.contains("held back by its own send buffer (pinned at 8.0 KiB by SO_SNDBUF)"),
        "{verdict}"
    );
    assert!(asleep_default < 0.5, "the default buffer waited {:.0}%", asleep_default * 100.0);
    if let Some(s) = summary(autotuned) {
        assert!(!s["verdict"].as_str().unwrap_or_default().contains("send buffer"), "{s}");
    }
    // The alert, live: this process, its pinned buffer, a share like the summary's.
    let alerts = |port: u16| {
        events
            .iter()
            .filter(|e| kind(e) == "alert" && e["rule"] == "sndbuf_limited" && e["dport"] == port)
            .collect::<Vec<_>>()
    };
    let fired = alerts(pinned);
    let alert = fired.first().unwrap_or_else(|| panic!("sndbuf_limited did not fire: {held}"));
    assert_eq!(alert["side"], "peer", "{alert}");
    assert_eq!(alert["pid"], std::process::id(), "it names this process: {alert}");
    let evidence = &alert["evidence"];
    assert_eq!(evidence["sndbuf_locked"], true, "{alert}");
    assert!(evidence["buffer_wait_pct"].as_f64() >= Some(50.0), "{alert}");
    assert!(alerts(autotuned).is_empty(), "the default buffer: {:?}", alerts(autotuned));
}

/// `tracer bench-floor`, the bench's floor leg: its empty programs sit where the packet and
/// lifecycle hooks attach (cgroup_skb ingress and egress on the cgroup-v2 root,
/// inet_sock_set_state), run for every segment and state change of a connection, and go with
/// Ctrl-C.
#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn bench_floor_attaches_empty_programs_where_the_hooks_attach() {
    let mut floor = std::process::Command::new(tracer_bin())
        .arg("bench-floor")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start tracer bench-floor");
    let mut said = std::io::BufReader::new(floor.stderr.take().expect("piped stderr"));
    let mut line = String::new();
    while !line.contains("tracer: attached") {
        line.clear();
        let read = std::io::BufRead::read_line(&mut said, &mut line).expect("read its stderr");
        assert!(read > 0, "bench-floor exited before it attached ({:?})", floor.wait());
    }
    let infos = fd_infos(floor.id());
    let link = |kind: &str, key: &str, value: &str| {
        infos
            .iter()
            .find(|i| {
                i.get("link_type").is_some_and(|t| t == kind)
                    && i.get(key).is_some_and(|v| v == value)
            })
            .and_then(|i| i.get("prog_id").cloned())
            .unwrap_or_else(|| panic!("no {kind} link with {key} {value} in {infos:?}"))
    };
    // BPF_CGROUP_INET_INGRESS is 0, BPF_CGROUP_INET_EGRESS 1.
    let programs = [
        ("ingress", link("cgroup", "attach_type", "0"), 3),
        ("egress", link("cgroup", "attach_type", "1"), 3),
        ("state changes", link("raw_tracepoint", "tp_name", "inet_sock_set_state"), 4),
    ];

    let stats = RunTimeStats::on();
    let runs = |id: &str| {
        fd_infos(floor.id())
            .iter()
            .find(|i| i.contains_key("prog_type") && i.get("prog_id").is_some_and(|p| p == id))
            .and_then(|i| i.get("run_cnt")?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before: Vec<u64> = programs.iter().map(|(_, id, _)| runs(id)).collect();
    // One connection, both ends local: a handshake and a close, each segment out and back in.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    drop(client);
    drop(server);
    thread::sleep(Duration::from_millis(200));
    for ((what, id, least), before) in programs.iter().zip(before) {
        let ran = runs(id).saturating_sub(before);
        assert!(ran >= *least, "the {what} program ran {ran} times for one connection");
    }
    drop(stats);

    // SAFETY: kill on our own child's pid.
    unsafe { libc::kill(floor.id() as i32, libc::SIGINT) };
    let status = floor.wait().expect("wait for bench-floor");
    assert!(status.success(), "bench-floor exited with {status} on SIGINT");
}

/// The key-value lines of each /proc/PID/fdinfo entry ("prog_id", "link_type", "run_cnt", ...).
fn fd_infos(pid: u32) -> Vec<std::collections::HashMap<String, String>> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fdinfo")).expect("read fdinfo");
    dir.flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|text| {
            text.lines()
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect()
        })
        .collect()
}

/// The kernel's BPF run-time statistics (run_cnt in fdinfo) on while held, through the sysctl;
/// the value before is put back on drop.
struct RunTimeStats(String);

const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

impl RunTimeStats {
    fn on() -> RunTimeStats {
        let was = std::fs::read_to_string(STATS_SYSCTL).expect("read bpf_stats_enabled");
        std::fs::write(STATS_SYSCTL, "1").expect("turn on bpf_stats_enabled");
        RunTimeStats(was.trim().to_string())
    }
}

impl Drop for RunTimeStats {
    fn drop(&mut self) {
        let _ = std::fs::write(STATS_SYSCTL, &self.0);
    }
}
