//! Shared by the live tests: the tracer as a child process, network namespaces, nstat, and the
//! traffic scenarios that make the kernel show each flow-control condition.
#![allow(dead_code)] // each test binary uses its own subset

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

/// Tracer start-up can take a while under QEMU's software emulation.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

pub fn tracer_bin() -> String {
    std::env::var("TRACER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tracer").to_string())
}

/// A running `tracer watch --json`, stopped by SIGINT.
pub struct Tracer {
    child: Child,
    stderr: mpsc::Receiver<String>,
    pub stderr_seen: Vec<String>,
}

impl Tracer {
    pub fn start(args: &[&str]) -> Tracer {
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
    pub fn stop(mut self) -> Vec<Value> {
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
pub fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
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

pub fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("failed to run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// TcpExt counters of the current network namespace, from nstat (absolute values, history untouched).
pub fn nstat() -> HashMap<String, u64> {
    run(Command::new("nstat").args(["-asz"]))
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

pub fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, name: &str) -> u64 {
    let get =
        |m: &HashMap<String, u64>| *m.get(name).unwrap_or_else(|| panic!("nstat has no {name}"));
    get(after) - get(before)
}

/// SO_RCVBUF on our own socket: pins the buffer and turns autotuning off.
pub fn set_rcvbuf(fd: &impl AsRawFd, bytes: libc::c_int) {
    // SAFETY: setsockopt on a socket we own with a valid int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_RCVBUF): {}", std::io::Error::last_os_error());
}

/// A sender thread writing `total` bytes as fast as it can, then closing.
pub fn blast(addr: IpAddr, port: u16, total: usize) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut s = TcpStream::connect((addr, port)).expect("connect");
        let chunk = vec![0x5a_u8; 64 * 1024];
        let mut sent = 0;
        while sent < total {
            let n = chunk.len().min(total - sent);
            s.write_all(&chunk[..n]).expect("send");
            sent += n;
        }
    })
}

/// The scenario of the issue: a receiver with a small SO_RCVBUF that sleeps, then reads small
/// amounts slowly, then drains; a sender that writes as fast as it can.
pub fn zero_window_transfer(addr: IpAddr, port: u16) {
    let listener = TcpListener::bind((addr, port)).expect("bind");
    // Accepted sockets inherit it.
    set_rcvbuf(&listener, 4096);
    let sender = blast(addr, port, 5 * 64 * 1024);
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

/// A receiver whose buffer is shrunk under the sender's feet (SO_RCVBUF 2048 right after
/// accept): segments already on the way find no room and are dropped (PROTO_MEM,
/// TCP_ZEROWINDOW; on 6.6+ the kernel then sets an uncounted zero window).
pub fn drop_transfer(port: u16) {
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind");
    let sender = blast(addr, port, 128 * 1024);
    let (mut conn, _) = listener.accept().expect("accept");
    set_rcvbuf(&conn, 2048);
    thread::sleep(Duration::from_millis(1000));
    let mut buf = vec![0u8; 64 * 1024];
    while conn.read(&mut buf).expect("drain") > 0 {}
    sender.join().expect("sender");
}

/// A receiver with a small pinned buffer that keeps reading small pieces: never a long zero
/// window, but the sender waits on the window most of the time.
pub fn window_limited_transfer(port: u16, seconds: u64) {
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind");
    set_rcvbuf(&listener, 8192);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let sender = thread::spawn(move || {
        let mut s = TcpStream::connect((addr, port)).expect("connect");
        let chunk = vec![0x5a_u8; 64 * 1024];
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            s.write_all(&chunk).expect("send");
        }
    });
    let (mut conn, _) = listener.accept().expect("accept");
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        conn.read_exact(&mut buf[..4096]).expect("read");
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    while conn.read(&mut buf).expect("drain") > 0 {}
    sender.join().expect("sender");
}

/// A bulk transfer in a namespace where net.ipv4.tcp_window_scaling=0: windows top out at 64 KiB.
pub fn unscaled_transfer(port: u16) {
    std::fs::write("/proc/sys/net/ipv4/tcp_window_scaling", "0")
        .expect("set net.ipv4.tcp_window_scaling=0 in the test namespace");
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind");
    let sender = blast(addr, port, 256 << 20);
    let (mut conn, _) = listener.accept().expect("accept");
    let mut buf = vec![0u8; 64 * 1024];
    while conn.read(&mut buf).expect("drain") > 0 {}
    sender.join().expect("sender");
}

/// The alerts (kind "alert") of `rule`.
pub fn alerts<'a>(events: &'a [Value], rule: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| kind(e) == "alert" && e["rule"] == rule).collect()
}

/// Asserts that `rule` fired for the connection whose local port is `local_port` (and `side`,
/// if given), names our process, and was resolved afterwards.
pub fn assert_alert_cycle(events: &[Value], rule: &str, side: Option<&str>, local_port: u16) {
    let fired: Vec<&Value> = alerts(events, rule)
        .into_iter()
        .filter(|a| a["sport"] == local_port && side.is_none_or(|s| a["side"] == s))
        .collect();
    let all: Vec<String> = alerts(events, rule).iter().map(|a| a.to_string()).collect();
    assert!(
        !fired.is_empty(),
        "{rule} did not fire for local port {local_port}; its alerts: {all:?}"
    );
    let first = fired[0];
    assert_eq!(first["pid"], std::process::id(), "{rule} names our process: {first}");
    for key in ["explanation", "fix"] {
        assert!(first[key].as_str().is_some_and(|t| t.len() > 20), "{rule} lacks {key}: {first}");
    }
    assert!(first["evidence"].as_object().is_some_and(|o| !o.is_empty()), "{first}");
    let fired_at = first["ts_ns"].as_u64();
    let resolved = events.iter().any(|e| {
        kind(e) == "alert_resolved"
            && e["rule"] == rule
            && e["sport"] == local_port
            && e["ts_ns"].as_u64() >= fired_at
    });
    assert!(resolved, "{rule} for local port {local_port} never resolved: {first}");
}

pub fn kind(e: &Value) -> &str {
    e["kind"].as_str().unwrap_or("")
}

pub fn count(events: &[Value], k: &str) -> usize {
    events.iter().filter(|e| kind(e) == k).count()
}

pub fn test_port() -> u16 {
    20000 + (std::process::id() % 20000) as u16
}
