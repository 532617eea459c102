//! Kernel tests: the real tracer binary, attached to the running kernel, watching a real
//! zero-window stall on loopback, checked against the kernel's own counters (nstat).
//!
//! They need root and a live kernel, so they are ignored by plain `cargo test`; `cargo xtask
//! test` runs them on this host and inside a QEMU guest on Debian's 6.1 kernel.
//! Environment: TRACER_BIN (the agent to run; defaults to the one cargo built),
//! TRACER_HOOKS (passed to --hooks), TRACER_EXPECT_HOOK (the hook that must report windows).

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    process::Command,
    thread,
    time::Duration,
};

use common::*;
use serde_json::Value;

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
    let accept_hooked = tracer_has_accept_hook(&tracer.stderr_seen.join("\n"));
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
    if accept_hooked {
        assert_eq!(owner["hook"], "tracepoint", "named at accept(): {owner}");
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
    if tracer_has_accept_hook(&mine_stderr) {
        assert!(first_zero < first_read, "a zero window before the first read was not attributed");
    }
    for e in &mine {
        assert_eq!(e["pid"], ours, "event of another process: {e}");
    }
}

/// Whether the tracer attached the accept tracepoints (kernels without syscall tracepoints
/// attribute accepted sockets at their first read instead, and say so).
fn tracer_has_accept_hook(stderr: &str) -> bool {
    stderr.lines().any(|l| l.contains("accepting process") && l.contains("tracepoint"))
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
    let events = tracer.stop();
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
    let source = CString::new(source).unwrap();
    let target = CString::new(target).unwrap();
    let fstype = CString::new(fstype).unwrap();
    let root = CString::new("/").unwrap();
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
