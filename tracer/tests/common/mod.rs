//! Shared by the live tests: the tracer as a child process, network namespaces, nstat, and the
//! traffic scenarios that make the kernel show each flow-control condition.
#![allow(dead_code, reason = "each test binary uses its own subset")]

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
    /// Its stdout, read as it comes: a full pipe would stall the agent and overflow its ring.
    stdout: thread::JoinHandle<String>,
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
        let mut stdout = child.stdout.take().expect("piped stdout");
        let stdout = thread::spawn(move || {
            let mut out = String::new();
            stdout.read_to_string(&mut out).expect("read the tracer's stdout");
            out
        });
        let mut tracer = Tracer { child, stdout, stderr: rx, stderr_seen: Vec::new() };
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
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "tracer exited before it attached ({}); it said:\n{}",
                    tracer.child.wait().map_or_else(|e| e.to_string(), |s| s.to_string()),
                    tracer.stderr_seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "tracer did not attach within {ATTACH_TIMEOUT:?}; it said:\n{}",
                    tracer.stderr_seen.join("\n")
                ),
            }
        }
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the tracer (SIGINT, as Ctrl-C) and returns its NDJSON events.
    pub fn stop(self) -> Vec<Value> {
        self.finish().0
    }

    /// Stops the tracer and returns its events and how many it lost (ring buffer full), as it
    /// says on stderr when it detaches.
    pub fn stop_counting_losses(self) -> (Vec<Value>, u64) {
        let (events, detached) = self.finish();
        (events, detached_count(&detached, " lost"))
    }

    /// Stops the tracer and returns its events and its last word on stderr:
    /// "tracer: detached; 10 events, 0 lost, 0 undecodable[, N connections not tracked ...]".
    pub fn stop_with_detached_line(self) -> (Vec<Value>, String) {
        self.finish()
    }

    fn finish(mut self) -> (Vec<Value>, String) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let out = self.stdout.join().expect("tracer stdout reader");
        let status = self.child.wait().expect("wait for tracer");
        assert!(status.success(), "tracer exited with {status}");
        // The pipe is closed by now.
        let detached = self
            .stderr
            .iter()
            .find(|l| l.contains("tracer: detached"))
            .unwrap_or_else(|| panic!("expected a \"tracer: detached\" line, saw none"));
        let events = out
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}"))
            })
            .collect();
        (events, detached)
    }
}

/// The number before `what` in the tracer's "detached" line (0 when it is not there), e.g.
/// " lost" in "..., 3 lost, ...".
pub fn detached_count(detached: &str, what: &str) -> u64 {
    detached
        .split([';', ','])
        .find_map(|part| part.trim().split_once(what).and_then(|(n, _)| n.trim().parse().ok()))
        .unwrap_or(0)
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

/// A sender thread writing `chunk` bytes at a time to `addr:port` as fast as it can, until
/// asked to stop. A write error before that fails the test; after it (the receiver closed with
/// data unread) it ends the thread.
pub struct SteadySender {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: thread::JoinHandle<()>,
}

impl SteadySender {
    pub fn start(addr: IpAddr, port: u16, chunk: usize) -> SteadySender {
        Self::spawn(move || TcpStream::connect((addr, port)).expect("connect"), chunk)
    }

    /// The same on a stream already connected (to set up the receiver before data flows).
    pub fn on(stream: TcpStream, chunk: usize) -> SteadySender {
        Self::spawn(move || stream, chunk)
    }

    fn spawn(connect: impl FnOnce() -> TcpStream + Send + 'static, chunk: usize) -> SteadySender {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            let mut s = connect();
            let chunk = vec![0x5a_u8; chunk];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if let Err(e) = s.write_all(&chunk) {
                    assert!(flag.load(std::sync::atomic::Ordering::Relaxed), "send: {e}");
                }
            }
        });
        SteadySender { stop, thread }
    }

    /// No write starts after this; one under way finishes when the receiver reads or closes.
    pub fn ask_to_stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn join(self) {
        self.ask_to_stop();
        self.thread.join().expect("sender");
    }
}

/// A receiver with a small pinned buffer that keeps reading small pieces: never a long zero
/// window, but the sender waits on the window most of the time.
pub fn window_limited_transfer(port: u16, seconds: u64) {
    let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listener = TcpListener::bind((addr, port)).expect("bind");
    set_rcvbuf(&listener, 8192);
    let sender = SteadySender::start(addr, port, 64 * 1024);
    let (mut conn, _) = listener.accept().expect("accept");
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut buf = vec![0u8; 64 * 1024];
    while Instant::now() < end {
        conn.read_exact(&mut buf[..4096]).expect("read");
        thread::sleep(Duration::from_millis(5));
    }
    sender.ask_to_stop();
    while conn.read(&mut buf).expect("drain") > 0 {}
    sender.join();
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

/// Below the kernel's ephemeral range (32768-60999 by default): a test holding hundreds of
/// client sockets would otherwise now and then hold the port a later listener binds.
pub fn test_port() -> u16 {
    20000 + (std::process::id() % 12000) as u16
}

/// Whether the tests run inside the QEMU guest (xtask sets TRACER_IN_GUEST there): a slow
/// emulated CPU, and a private kernel whose host-wide settings a test may change.
pub fn in_guest() -> bool {
    std::env::var_os("TRACER_IN_GUEST").is_some()
}

/// True when `program` is found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Every event of a connection with this local or remote port.
pub fn of_port(events: &[Value], port: u16) -> Vec<&Value> {
    events.iter().filter(|e| e["sport"] == port || e["dport"] == port).collect()
}

/// Asserts that no event names port 0 or an unspecified address: such an endpoint is not a
/// connection (a segment of the kernel's per-namespace control socket, which answers refused,
/// reset and TIME_WAIT segments on behalf of sockets that do not exist, or of a listener).
pub fn assert_no_phantom_endpoints(events: &[Value]) {
    let phantom = |e: &&Value| {
        [("saddr", "sport"), ("daddr", "dport")].iter().any(|(addr, port)| {
            let unspecified = e[addr].as_str().and_then(|a| a.parse::<IpAddr>().ok());
            e[port] == 0 || unspecified.is_some_and(|a| a.is_unspecified())
        })
    };
    let phantoms: Vec<&Value> = events.iter().filter(phantom).collect();
    if phantoms.is_empty() {
        return;
    }
    let mut by_kind: Vec<String> = phantoms
        .iter()
        .map(|e| format!("{}/{}", kind(e), e["hook"].as_str().unwrap_or("-")))
        .collect();
    by_kind.sort();
    by_kind.dedup();
    let first: Vec<String> = phantoms.iter().take(3).map(|e| e.to_string()).collect();
    panic!(
        "expected no event with port 0 or address 0.0.0.0/:: (not a connection), saw {} of {} \
         ({}); first: {}",
        phantoms.len(),
        events.len(),
        by_kind.join(", "),
        first.join("\n")
    );
}

/// Sets an integer socket option on our own socket.
pub fn set_int_opt(fd: &impl AsRawFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) {
    // SAFETY: setsockopt on a socket we own with a valid int.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    assert_eq!(
        rc,
        0,
        "setsockopt(level {level}, option {name}, {value}): {}",
        std::io::Error::last_os_error()
    );
}

/// TCP_INFO of our own socket.
pub fn tcp_info(fd: &impl AsRawFd) -> libc::tcp_info {
    // SAFETY: tcp_info is plain integers; all zeroes is a valid value. An older kernel fills a
    // prefix of it and leaves the rest zero.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "getsockopt(TCP_INFO): {}", std::io::Error::last_os_error());
    info
}

/// Bytes written to our own socket and not yet acknowledged by the peer, sent or not
/// (SIOCOUTQ, the same ioctl number as TIOCOUTQ).
pub fn send_queue_bytes(fd: &impl AsRawFd) -> libc::c_int {
    let mut bytes: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one int.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut bytes) };
    assert_eq!(rc, 0, "ioctl(SIOCOUTQ): {}", std::io::Error::last_os_error());
    bytes
}

/// Whether TCP is under memory pressure, host-wide ("press" of TCP in /proc/net/protocols).
pub fn tcp_memory_pressure() -> bool {
    let table = std::fs::read_to_string("/proc/net/protocols").expect("read /proc/net/protocols");
    let mut rows = table.lines().map(|l| l.split_whitespace().collect::<Vec<&str>>());
    let header = rows.next().unwrap_or_default();
    let column = header.iter().position(|h| *h == "press").expect("a press column");
    let tcp = rows.find(|r| r.first() == Some(&"TCP")).expect("a TCP row in /proc/net/protocols");
    tcp.get(column) == Some(&"yes")
}

/// Raises this process's open-file limit (soft and hard) to at least `files`.
pub fn raise_nofile(files: libc::rlim_t) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "getrlimit(NOFILE)");
        if limit.rlim_cur >= files {
            return;
        }
        limit.rlim_cur = files;
        limit.rlim_max = limit.rlim_max.max(files);
        let rc = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        assert_eq!(rc, 0, "setrlimit(NOFILE, {files}): {}", std::io::Error::last_os_error());
    }
}

/// `count` short request/response connections to `port`, one after another: connect, write a
/// few bytes, read the echo, close. Their sockets are freed and the kernel hands the same memory
/// to the next ones.
pub fn short_connections(addr: IpAddr, port: u16, count: usize) {
    let listener = TcpListener::bind((addr, port)).expect("bind");
    let server = thread::spawn(move || {
        let mut buf = [0u8; 64];
        for _ in 0..count {
            let (mut conn, _) = listener.accept().expect("accept");
            let n = conn.read(&mut buf).expect("server read");
            conn.write_all(&buf[..n]).expect("echo");
        }
    });
    for i in 0..count {
        let mut s = TcpStream::connect((addr, port)).expect("connect");
        let msg = format!("hello {i}");
        s.write_all(msg.as_bytes()).expect("client write");
        let mut buf = vec![0u8; msg.len()];
        s.read_exact(&mut buf).expect("client read");
    }
    server.join().expect("echo server");
}

/// `count` connections whose reader closes at a zero window with data unread: each close sends
/// a RST after the socket has left the kernel's tables (TCPAbortOnClose), and the next sockets
/// get its memory. A tracer that kept state for such a socket hands it to its successor.
pub fn aborted_at_zero_window(addr: IpAddr, port: u16, count: usize) {
    let listener = TcpListener::bind((addr, port)).expect("bind");
    set_rcvbuf(&listener, 4096);
    for _ in 0..count {
        let mut client = TcpStream::connect((addr, port)).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        client.set_nonblocking(true).expect("non-blocking sender");
        // Far more than the 4 KiB window: the window closes, the rest waits in the sender.
        let _ = client.write(&[0x5a_u8; 64 * 1024]);
        // The zero window goes out with the delayed ACK (at least 40 ms, TCP_ATO_MIN); the RST
        // of the close reopens it, which the kernel counts as TCPFromZeroWindowAdv.
        thread::sleep(Duration::from_millis(60));
        drop(server);
    }
}

/// A packet capture on `lo` with tshark, in the network namespace of the thread that starts
/// it: the wire, as an oracle that owes nothing to the tracer or to the kernel's counters.
pub struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

/// The packets a `Capture` saw, in a pcap file removed on drop.
pub struct Captured {
    file: std::path::PathBuf,
}

impl Capture {
    /// Starts tshark on `lo` with the capture filter `filter` and waits until it captures.
    /// None, saying why, where tshark is not installed (the QEMU guest has none).
    pub fn start(filter: &str) -> Option<Capture> {
        if !on_path("tshark") {
            eprintln!("tshark is not on PATH: skipping the packet-capture oracle ({filter})");
            return None;
        }
        // tshark's dumpcap writes the file: a fresh name, as concurrent test binaries may run.
        let file = std::env::temp_dir().join(format!(
            "tracer-test-{}-{}.pcapng",
            std::process::id(),
            CAPTURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&file);
        let mut child = Command::new("tshark")
            .args(["-q", "-i", "lo", "-f", filter, "-w"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start tshark: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("Capturing on") => break,
                Ok(line) => said.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("tshark did not start capturing on lo; it said:\n{}", said.join("\n"));
                }
            }
        }
        // "Capturing on" comes some 50 ms before dumpcap captures anything; tshark 4.0 then
        // says "Capture started" (older ones say nothing: a second is enough there).
        let started = Instant::now() + Duration::from_secs(1);
        while let Ok(line) = rx.recv_timeout(started.saturating_duration_since(Instant::now())) {
            if line.contains("Capture started") {
                break;
            }
        }
        // Keep draining stderr so that tshark never blocks on a full pipe.
        thread::spawn(move || while rx.recv().is_ok() {});
        Some(Capture { child, file })
    }

    /// Lets the last segments arrive, then stops tshark (SIGINT, so it closes the file).
    pub fn stop(mut self) -> Captured {
        thread::sleep(Duration::from_millis(500));
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let status = self.child.wait().expect("wait for tshark");
        assert!(status.success() || status.code().is_none(), "tshark capture ended with {status}");
        Captured { file: self.file.clone() }
    }
}

impl Drop for Capture {
    /// A test that panics mid-capture leaves no tshark behind (after `stop` this is a no-op).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static CAPTURES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Captured {
    /// One row per packet matching the display filter `filter`, with the values of `fields`
    /// (booleans as "1"/"0" or "True"/"False", depending on the tshark version).
    pub fn rows(&self, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
        let mut cmd = Command::new("tshark");
        cmd.arg("-r").arg(&self.file).args(["-Y", filter, "-T", "fields"]);
        for field in fields {
            cmd.args(["-e", field]);
        }
        run(&mut cmd).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}

/// A port nothing listens on right now, on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0)).and_then(|l| l.local_addr()).expect("a free port").port()
}

/// The tracer's /metrics text (HTTP/1.0 GET on 127.0.0.1:`port`).
pub fn scrape_metrics(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("connect to the metrics endpoint on port {port}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    write!(s, "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").expect("send GET");
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read the metrics");
    let (head, body) =
        answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("bad answer {answer:?}"));
    assert!(head.starts_with("HTTP/1.") && head.contains(" 200 "), "metrics answered {head:?}");
    body.to_string()
}
