//! Kernel tests: the real tracer binary, attached to the running kernel, watching a real
//! zero-window stall on loopback, checked against the kernel's own counters (nstat).
//!
//! They need root and a live kernel, so they are ignored by plain `cargo test`; `cargo xtask
//! test` runs them on this host and inside a QEMU guest on Debian's 6.1 kernel.
//! Environment: TRACER_BIN (the agent to run; defaults to the one cargo built),
//! TRACER_HOOKS (passed to --hooks), TRACER_EXPECT_HOOK (the hook that must report windows).

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Tracer start-up can take a while under QEMU's software emulation.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

fn tracer_bin() -> String {
    std::env::var("TRACER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tracer").to_string())
}

/// A running `tracer watch --json`, stopped by SIGINT.
struct Tracer {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stderr_seen: Vec<String>,
}

impl Tracer {
    fn start(args: &[&str]) -> Tracer {
        let mut cmd = Command::new(tracer_bin());
        cmd.args(["watch", "--json", "--duration", "600"]).args(args);
        if let Ok(hooks) = std::env::var("TRACER_HOOKS") {
            cmd.args(["--hooks", &hooks]);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {}: {e}", tracer_bin()));
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("tracer| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut tracer = Tracer { child, stderr: rx, stderr_seen: Vec::new() };
        let deadline = Instant::now() + ATTACH_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tracer.stderr.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains("tracer: attached");
                    tracer.stderr_seen.push(line);
                    if done {
                        return tracer;
                    }
                }
                Err(_) => panic!(
                    "tracer did not attach within {ATTACH_TIMEOUT:?}; it said:\n{}",
                    tracer.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// Stops the tracer (SIGINT, as Ctrl-C) and returns its NDJSON events.
    fn stop(mut self) -> Vec<Value> {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("piped stdout")
            .read_to_string(&mut out)
            .expect("read stdout");
        let status = self.child.wait().expect("wait for tracer");
        assert!(status.success(), "tracer exited with {status}");
        out.lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}"))
            })
            .collect()
    }
}

/// Runs `f` on a thread inside a new network namespace with loopback up: its TCP counters
/// (nstat) count only what `f` does.
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    thread::spawn(move || {
        // SAFETY: unshare affects only this thread's namespaces.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        run(Command::new("ip").args(["link", "set", "lo", "up"]));
        f()
    })
    .join()
    .expect("netns thread panicked")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// TcpExt counters of the current network namespace, from nstat (absolute values, history untouched).
fn nstat() -> HashMap<String, u64> {
    run(Command::new("nstat").args(["-asz"]))
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    let get =
        |m: &HashMap<String, u64>| *m.get(name).unwrap_or_else(|| panic!("nstat has no {name}"));
    get(after) - get(before)
}

/// The scenario of the issue: a receiver with a small SO_RCVBUF that sleeps, then reads small
/// amounts slowly, then drains; a sender that writes as fast as it can.
fn zero_window_transfer(addr: IpAddr, port: u16) {
    let listener = TcpListener::bind((addr, port)).expect("bind");
    let rcvbuf: libc::c_int = 4096;
    // SAFETY: setsockopt on our own socket with a valid int. Accepted sockets inherit it.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF)");
    let sender = thread::spawn(move || {
        let mut s = TcpStream::connect((addr, port)).expect("connect");
        let chunk = vec![0x5a_u8; 64 * 1024];
        for _ in 0..5 {
            s.write_all(&chunk).expect("send");
        }
    });
    let (mut conn, _) = listener.accept().expect("accept");
    thread::sleep(Duration::from_millis(1500));
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..8 {
        conn.read_exact(&mut buf[..1024]).expect("slow read");
        thread::sleep(Duration::from_millis(250));
    }
    while conn.read(&mut buf).expect("drain") > 0 {}
    sender.join().expect("sender");
}

fn kind(e: &Value) -> &str {
    e["kind"].as_str().unwrap_or("")
}

fn count(events: &[Value], k: &str) -> usize {
    events.iter().filter(|e| kind(e) == k).count()
}

fn test_port() -> u16 {
    20000 + (std::process::id() % 20000) as u16
}

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
    let tracer = Tracer::start(&["--port", &port.to_string()]);
    let (before, after) = in_new_netns(move || {
        let before = nstat();
        zero_window_transfer(addr, port);
        // Let the closing handshake finish before reading the counters.
        thread::sleep(Duration::from_millis(300));
        (before, nstat())
    });
    // The agent drains the ring every 20 ms and once more on exit.
    thread::sleep(Duration::from_millis(200));
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

    if let Ok(hook) = std::env::var("TRACER_EXPECT_HOOK") {
        for e in events.iter().filter(|e| kind(e) == "window" || kind(e) == "probe") {
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
    assert!(
        count(&mine, "zero_window_start") >= 1,
        "the reader's zero windows after its first read"
    );
    assert!(count(&mine, "rcv_space") >= 1);
    for e in &mine {
        assert_eq!(e["pid"], ours, "event of another process: {e}");
    }
}

/// Whether the tracer attached the accept tracepoints (kernels without syscall tracepoints
/// attribute accepted sockets at their first read instead, and say so).
fn tracer_has_accept_hook(stderr: &str) -> bool {
    stderr.lines().any(|l| l.contains("accepting process") && l.contains("tracepoint"))
}
