//! One readable line per event, for a person at a terminal.

use std::io::{BufWriter, Stdout, Write as _};

use super::Sink;
use crate::events::{Body, Event};

pub struct Terminal {
    out: BufWriter<Stdout>,
}

impl Terminal {
    pub fn new() -> Self {
        Terminal { out: BufWriter::new(std::io::stdout()) }
    }
}

/// Bytes in the units `ss` uses.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let f = n as f64;
    if f < KIB {
        format!("{n}B")
    } else if f < KIB * KIB {
        format!("{:.1}KiB", f / KIB)
    } else {
        format!("{:.1}MiB", f / (KIB * KIB))
    }
}

fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else {
        format!("{v:.0}ms")
    }
}

/// Local wall-clock time of day with microseconds.
fn clock(ts_ns: u64) -> String {
    let secs = (ts_ns / 1_000_000_000) as libc::time_t;
    // SAFETY: localtime_r writes into the zeroed struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    unsafe { libc::localtime_r(&secs, &mut tm) };
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        (ts_ns % 1_000_000_000) / 1000
    )
}

pub fn line(e: &Event) -> String {
    let who = match (e.pid, &e.body) {
        (_, Body::RcvSpace { comm, .. }) if !comm.is_empty() => {
            format!("{}/{}", comm, e.pid.map_or("?".into(), |p| p.to_string()))
        }
        (Some(pid), _) => format!("pid {pid}"),
        (None, _) => "-".to_string(),
    };
    let detail = match &e.body {
        Body::Window { side, window, raw, wscale, unread, rcvbuf, .. } => format!(
            "{} window {} (raw {raw}<<{wscale}) unread {} rcvbuf {}",
            side.as_str(),
            bytes(*window as u64),
            bytes(*unread as u64),
            bytes(*rcvbuf as u64)
        ),
        Body::ZeroWindowStart { side, unread, rcvbuf, .. } => format!(
            "{} ZERO WINDOW: {} unread of rcvbuf {} - the receiving application is not keeping up",
            side.as_str(),
            bytes(*unread as u64),
            bytes(*rcvbuf as u64)
        ),
        Body::ZeroWindowEnd { side, window, duration_ns } => format!(
            "{} window reopened to {}{}",
            side.as_str(),
            bytes(*window as u64),
            duration_ns.map_or(String::new(), |d| format!(" after {}", ms(d as f64 / 1e6)))
        ),
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, .. } => format!(
            "zero-window probe sent: probes_out {probes_out} backoff {backoff}{} peer window {}",
            match (next_probe_ms, rto_ms) {
                (Some(next), Some(rto)) => format!(" next in {} (rto {})", ms(*next), ms(*rto)),
                _ => String::new(),
            },
            bytes(*snd_wnd as u64)
        ),
        Body::RcvSpace { space, rcvbuf, window_clamp, rcv_ssthresh, locked, .. } => format!(
            "rcvbuf {} space {} clamp {} ssthresh {}{}",
            bytes(*rcvbuf as u64),
            bytes(*space as u64),
            bytes(*window_clamp as u64),
            bytes(*rcv_ssthresh as u64),
            if *locked { " (pinned by SO_RCVBUF: no autotuning)" } else { "" }
        ),
        Body::Open { snd_wscale, rcv_wscale, advmss, rcvbuf, .. } => format!(
            "open: wscale snd {snd_wscale} rcv {rcv_wscale} advmss {advmss} rcvbuf {}",
            bytes(*rcvbuf as u64)
        ),
        Body::Close { from_state, .. } => format!("close (was {from_state})"),
    };
    let conn = format!("{} > {}", endpoint(&e.saddr, e.sport), endpoint(&e.daddr, e.dport));
    format!("{} {:<17} {:<47} {:<16} {}", clock(e.ts_ns), e.body.kind(), conn, who, detail)
}

fn endpoint(addr: &std::net::IpAddr, port: u16) -> String {
    match addr {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl Sink for Terminal {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        writeln!(self.out, "{}", line(event))
    }

    fn lost(&mut self, new: u64, total: u64) -> std::io::Result<()> {
        writeln!(
            self.out,
            "!! {new} events lost: the ring buffer was full ({total} since start); \
             narrow the filter (--port/--pid) or raise --window-shift"
        )
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
