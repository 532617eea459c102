//! Scale test: the real tracer, attached to the running kernel, with 30,000 live sockets (15,000
//! loopback connections, both ends on this host) held open at once: it must track every one,
//! evict and lose nothing, and stay small.
//!
//! Needs root and a live kernel (ignored by plain `cargo test`; `cargo xtask test` runs it on
//! this host, not in the QEMU guest). The server ends stay in their listeners' accept queues,
//! so the test process holds only the 15,000 client descriptors, under the usual 20,000
//! open-files limit.

mod common;

use std::{
    net::{IpAddr, Ipv4Addr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::mpsc,
    thread,
    time::Duration,
};

use common::*;

/// Connections held at once (each has two sockets), and listeners sharing them: every
/// listener's accept queue holds its share (the kernel caps a backlog at somaxconn, 4096 here).
const CONNECTIONS: usize = 15_000;
const LISTENERS: usize = 5;
/// The rate they are opened at: issue 9's churn (10,000 new connections a second), every one
/// reported here (the port filter asks for each from its open: four events a socket).
const OPENS_PER_SECOND: f64 = 10_000.0;
/// The agent's RSS allowed with them all live (issue 9: 64 MiB at 100,000 connections).
const RSS_BUDGET_MIB: f64 = 64.0;

#[test]
#[ignore = "needs root and a live kernel: run through `cargo xtask test`"]
fn thirty_thousand_live_sockets_are_all_tracked() {
    let ports: Vec<u16> = (0..LISTENERS as u16).map(|i| test_port() + 40 + i).collect();
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut args = vec!["--metrics".to_string(), metrics];
    for p in &ports {
        args.extend(["--port".to_string(), p.to_string()]);
    }
    let tracer = Tracer::start(&args.iter().map(String::as_str).collect::<Vec<_>>());

    // The connections live in their own network namespace, on a thread that holds them until
    // told to let go.
    let (held_tx, held_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let holder = thread::spawn(move || {
        in_new_netns(move || {
            let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
            let listeners: Vec<TcpListener> =
                ports.iter().map(|&p| listen_with_backlog(addr, p, 4096)).collect();
            let before = nstat();
            let mut clients = Vec::with_capacity(CONNECTIONS);
            let start = std::time::Instant::now();
            for i in 0..CONNECTIONS {
                let port = ports[i % LISTENERS];
                clients.push(TcpStream::connect((addr, port)).expect("connect"));
                // At most OPENS_PER_SECOND: this test is about tracking every socket, not about
                // how large a burst the ring absorbs while other load starves the agent.
                let due = Duration::from_secs_f64((i + 1) as f64 / OPENS_PER_SECOND);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    thread::sleep(wait);
                }
            }
            // The kernel's own count of what was opened, in this namespace only: both ends of
            // each active open (TcpPassiveOpens may also count a duplicate child the kernel
            // made for one handshake on two CPUs and discarded).
            let after = nstat();
            let active = delta(&before, &after, "TcpActiveOpens");
            assert!(delta(&before, &after, "TcpPassiveOpens") >= active, "passive opens");
            let opened = 2 * active;
            held_tx.send((clients.len(), opened)).expect("tell the test");
            let _ = release_rx.recv();
            drop(clients);
            drop(listeners);
        })
    });
    let (held, opened) = held_rx.recv_timeout(Duration::from_secs(300)).expect("connections made");
    assert_eq!(held, CONNECTIONS);
    assert_eq!(opened, 2 * CONNECTIONS as u64, "nstat's opens: both ends of every connection");
    // The agent drains every 20 ms and refreshes its gauges on ticks: let it catch up.
    let started = std::time::Instant::now();
    let mut text = String::new();
    while started.elapsed() < Duration::from_secs(60) {
        thread::sleep(Duration::from_secs(2));
        text = scrape_metrics(metrics_port);
        if metric(&text, "tracer_connections_tracked") >= 2 * CONNECTIONS as u64 {
            break;
        }
    }
    eprintln!("scale: metrics after {:.1} s", started.elapsed().as_secs_f64());
    let rss_mib = rss_kib(tracer.pid()) as f64 / 1024.0;
    release_tx.send(()).expect("release the connections");
    holder.join().expect("connection holder");
    thread::sleep(Duration::from_millis(500));
    let (events, detached) = tracer.stop_with_detached_line();

    let tracked = metric(&text, "tracer_connections_tracked");
    let evicted = metric(&text, "tracer_connections_evicted_total");
    let untracked = metric(&text, "tracer_connections_untracked_total");
    let opens: std::collections::HashSet<&str> =
        events.iter().filter(|e| kind(e) == "open").filter_map(|e| e["sk"].as_str()).collect();
    eprintln!(
        "scale: {} sockets held; tracked {tracked}, evicted {evicted}, untracked {untracked}; \
         {} opens reported; agent RSS {rss_mib:.1} MiB; {detached}",
        2 * CONNECTIONS,
        opens.len()
    );
    assert!(
        tracked >= 2 * CONNECTIONS as u64,
        "the agent's table holds {tracked} live connections"
    );
    assert_eq!(evicted, 0, "the agent's table evicted connections");
    assert_eq!(untracked, 0, "the kernel's per-socket table refused connections");
    assert_eq!(opens.len() as u64, opened, "one open per socket nstat counted");
    assert_eq!(detached_count(&detached, " lost"), 0, "events lost: {detached}");
    assert!(!detached.contains("not tracked") && !detached.contains("evicted"), "{detached}");
    assert!(rss_mib <= RSS_BUDGET_MIB, "agent RSS {rss_mib:.1} MiB with {held} connections");
}

/// A listener with an accept backlog of `backlog` (std's bind uses 128).
fn listen_with_backlog(addr: IpAddr, port: u16, backlog: libc::c_int) -> TcpListener {
    let listener = TcpListener::bind((addr, port)).expect("bind");
    // SAFETY: listen() again on our own listening socket only changes its backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), backlog) };
    assert_eq!(rc, 0, "listen({backlog}): {}", std::io::Error::last_os_error());
    listener
}

/// A process's resident set (KiB), from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("tracer status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}
