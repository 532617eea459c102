//! Per-connection summaries, worst flow-control state first, with a one-line verdict: what
//! `top`, `report` and the end of a `watch` show.

use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::conn::Conn;
use super::direction::{Direction, WindowState};
use super::fmt::{bytes, duration_ms, endpoint, ns_to_ms, who, who_short};
use super::table::{ConnKey, ConnTable};
use crate::events::model::Limit;

/// One direction of a connection, summarised. In JSON it is the nested `local` object (windows
/// this host advertised) or `peer` object (windows the peer advertised).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SideSummary {
    pub state: WindowState,
    /// Latest window, bytes.
    pub window: Option<u32>,
    pub zero_window_episodes: u64,
    /// Time at zero window, an open episode counted up to the summary's `now`.
    pub zero_window_ms: u64,
    pub longest_zero_window_ms: u64,
    pub min_window: Option<u32>,
    /// Persist probes this host sent (peer side).
    pub probes: u64,
    pub max_backoff: u8,
    /// Segments this host dropped for lack of receive space (local side).
    pub drops: u64,
    pub dropped_bytes: u64,
    /// Peer side: time this host's sender was held back by the peer's window (kernel
    /// rwnd_limited, while watched), and its share of the sender's busy time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rwnd_limited_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rwnd_limited_pct: Option<f64>,
    /// Local side: what held the window, with its share of the time (percent), largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub limited_by: Vec<LimitShare>,
    /// Peer side, this host's sender as the kernel counts it since the open (`ss -ti`): the
    /// share of its busy time it waited for its own send buffer, the cap the peer's latest
    /// window sets (window / smoothed RTT, bytes/s), and what it delivered per second busy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sndbuf_limited_pct: Option<f64>,
    /// The same wait as the tracer samples it (the kernel's count misses waits that begin
    /// after a full segment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer_wait_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_cap_bps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_bps: Option<f64>,
}

/// One limit and the share of the time it held the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitShare {
    pub limit: Limit,
    pub pct: f64,
}

/// A connection's flow-control story in one record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnSummary {
    /// The table's handle, to match alerts counted elsewhere; not serialised.
    #[serde(skip)]
    pub key: ConnKey,
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    pub pid: Option<u32>,
    pub comm: Option<Arc<str>>,
    pub open_ns: Option<u64>,
    pub close_ns: Option<u64>,
    /// From the open (or first sighting) to the close (or `now`).
    pub duration_ms: u64,
    pub wscale_ok: Option<bool>,
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: Option<u8>,
    pub mss: Option<u32>,
    pub rcvbuf: Option<u32>,
    pub rcvbuf_locked: Option<bool>,
    /// The process seen reading the socket, and what it read.
    pub reader: Option<String>,
    pub read_bytes: Option<u64>,
    pub local: SideSummary,
    pub peer: SideSummary,
    /// Alerts fired for this connection (set by whoever ran the alert engine).
    pub alerts: u32,
    /// One line: what limited this connection, and who.
    pub verdict: String,
}

impl ConnTable {
    /// Every connection kept, worst first: longest zero-window time (both sides), then drops,
    /// then the share of sending time limited by the peer's window, then probes.
    pub fn summaries(&self, now_ns: u64) -> Vec<ConnSummary> {
        let mut rows: Vec<ConnSummary> =
            self.iter().map(|(key, conn)| ConnSummary::of(key, conn, now_ns)).collect();
        // Keys are unique, so the order is total and an in-place unstable sort gives the same
        // rows without a stable sort's scratch copy (tens of MB at 100,000 connections).
        rows.sort_unstable_by(worst_first);
        rows
    }
}

fn worst_first(a: &ConnSummary, b: &ConnSummary) -> Ordering {
    let zero = |s: &ConnSummary| s.local.zero_window_ms + s.peer.zero_window_ms;
    let drops = |s: &ConnSummary| s.local.drops + s.peer.drops;
    let share = |s: &ConnSummary| s.peer.rwnd_limited_pct.unwrap_or(0.0);
    let probes = |s: &ConnSummary| s.local.probes + s.peer.probes;
    zero(b)
        .cmp(&zero(a))
        .then(drops(b).cmp(&drops(a)))
        .then(share(b).total_cmp(&share(a)))
        .then(probes(b).cmp(&probes(a)))
        .then(a.key.cmp(&b.key))
}

impl ConnSummary {
    /// Summarise `conn` as of `now_ns` (a closed connection as of its close).
    pub fn of(key: ConnKey, conn: &Conn, now_ns: u64) -> Self {
        let until = conn.until(now_ns);
        let reader = conn.reader.as_ref();
        ConnSummary {
            key,
            saddr: conn.tuple.saddr,
            sport: conn.tuple.sport,
            daddr: conn.tuple.daddr,
            dport: conn.tuple.dport,
            pid: conn.pid,
            comm: conn.comm.clone(),
            open_ns: conn.open_ns(),
            close_ns: conn.close_ns(),
            duration_ms: ns_to_ms(until.saturating_sub(conn.open_ns().unwrap_or(conn.first_ns))),
            wscale_ok: conn.wscale_ok,
            snd_wscale: conn.snd_wscale,
            rcv_wscale: conn.rcv_wscale,
            mss: conn.mss,
            rcvbuf: conn.rcvbuf,
            rcvbuf_locked: conn.rcvbuf_locked,
            reader: reader.map(|r| who_short(Some(&r.comm), r.pid)),
            read_bytes: reader.map(|r| r.bytes),
            local: side_summary(&conn.local, None, until, conn.limit_shares(until)),
            peer: side_summary(&conn.peer, Some(conn), until, Vec::new()),
            alerts: 0,
            verdict: verdict(conn, until),
        }
    }

    /// Record how many alerts fired for this connection.
    pub fn set_alerts(&mut self, count: u32) {
        self.alerts = count;
    }

    /// Column titles matching `line`.
    pub fn header() -> String {
        format!(
            "{:<47} {:<16} {:>10} {:>10} {:>6} {:>6} {:>5} {:>6}  {}",
            "connection (local > peer)",
            "process",
            "local zero",
            "peer zero",
            "probes",
            "drops",
            "rwnd",
            "alerts",
            "verdict"
        )
    }

    /// One terminal row: the connection, its process, zero-window time per side (with episode
    /// counts), probes, drops, the rwnd-limited share, alerts and the verdict.
    pub fn line(&self) -> String {
        let conn = format!(
            "{} > {}",
            endpoint(&self.saddr, self.sport),
            endpoint(&self.daddr, self.dport)
        );
        let zero = |s: &SideSummary| {
            if s.zero_window_episodes == 0 {
                "-".to_string()
            } else {
                format!("{}x {}", s.zero_window_episodes, duration_ms(s.zero_window_ms))
            }
        };
        let rwnd = self.peer.rwnd_limited_pct.map_or("-".to_string(), |p| format!("{p:.0}%"));
        format!(
            "{:<47} {:<16} {:>10} {:>10} {:>6} {:>6} {:>5} {:>6}  {}",
            conn,
            who_short(self.comm.as_deref(), self.pid),
            zero(&self.local),
            zero(&self.peer),
            self.local.probes + self.peer.probes,
            self.local.drops + self.peer.drops,
            rwnd,
            self.alerts,
            self.verdict
        )
    }
}

/// One side; `limits` (the local side's) as `Conn::limit_shares` gives them.
fn side_summary(
    d: &Direction,
    sender_of: Option<&Conn>,
    until: u64,
    limits: Vec<(Limit, f64)>,
) -> SideSummary {
    let share = sender_of.and_then(Conn::rwnd_limited_share);
    let sending = sender_of.and_then(|c| c.sender.as_ref());
    let send = sending.and_then(|s| Some((s, s.limits?)));
    SideSummary {
        state: d.state,
        window: d.window,
        zero_window_episodes: d.totals().episodes,
        zero_window_ms: ns_to_ms(d.zero_ns(until)),
        longest_zero_window_ms: ns_to_ms(d.longest_zero_ns(until)),
        min_window: d.min_window,
        probes: d.totals().probes,
        max_backoff: d.totals().max_backoff,
        drops: d.totals().drops,
        dropped_bytes: d.totals().dropped_bytes,
        rwnd_limited_ms: sender_of.and_then(Conn::rwnd_limited_ms),
        rwnd_limited_pct: share.map(percent),
        limited_by: limits
            .into_iter()
            .map(|(limit, share)| LimitShare { limit, pct: percent(share) })
            // Moments too short to show as a tenth of a percent say nothing here.
            .filter(|s| s.pct > 0.0)
            .collect(),
        sndbuf_limited_pct: sender_of.and_then(Conn::sndbuf_limited_share).map(percent),
        buffer_wait_pct: sender_of.and_then(Conn::buffer_wait_share).map(percent),
        window_cap_bps: sending
            .zip(d.window)
            .filter(|(s, _)| s.srtt_us > 0)
            .map(|(s, w)| (f64::from(w) * 1e6 / f64::from(s.srtt_us)).round()),
        delivered_bps: send
            .filter(|(s, _)| s.busy_ms > 0)
            .map(|(s, l)| (l.bytes_acked as f64 * 1000.0 / s.busy_ms as f64).round()),
    }
}

fn times(n: u64) -> String {
    if n == 1 {
        "once".to_string()
    } else {
        format!("{n} times")
    }
}

/// One line saying what limited the connection and who, most important finding first.
fn verdict(c: &Conn, until: u64) -> String {
    let mut findings = Vec::new();
    let (local, peer) = (&c.local, &c.peer);
    if local.totals().episodes > 0 || local.totals().drops > 0 {
        // The reader is the process seen reading, else the socket's owner.
        let reader = match &c.reader {
            Some(r) if !r.comm.is_empty() => who(Some(&r.comm), r.pid.or(c.pid)),
            _ => who(c.comm.as_deref(), c.pid),
        };
        let mut text = format!("receiver-limited: the local reader {reader} left data unread");
        if local.totals().episodes > 0 {
            text.push_str(&format!(
                "; zero window {} for {}",
                times(local.totals().episodes),
                duration_ms(ns_to_ms(local.zero_ns(until)))
            ));
        }
        if c.rcvbuf_locked == Some(true) {
            let size = c.rcvbuf.map_or(String::new(), |b| format!(" at {}", bytes(b.into())));
            text.push_str(&format!("; receive buffer pinned{size} by SO_RCVBUF"));
        }
        if local.totals().drops > 0 {
            text.push_str(&format!(
                "; {} segment(s) ({}) dropped for lack of receive space",
                local.totals().drops,
                bytes(local.totals().dropped_bytes)
            ));
        }
        findings.push(text);
    }
    if let Some(text) = window_cap(c, until) {
        findings.push(text);
    }
    let peer_end = endpoint(&c.tuple.daddr, c.tuple.dport);
    if peer.totals().episodes > 0 {
        let mut text = format!(
            "receiver-limited by the peer: {peer_end} advertised a zero window {} for {}",
            times(peer.totals().episodes),
            duration_ms(ns_to_ms(peer.zero_ns(until)))
        );
        if peer.totals().probes > 0 {
            text.push_str(&format!(
                "; {} persist probe(s) sent (max backoff {})",
                peer.totals().probes,
                peer.totals().max_backoff
            ));
        }
        findings.push(text);
    } else if peer.totals().probes > 0 {
        findings.push(format!(
            "receiver-limited by the peer: {peer_end} closed its window; {} persist probe(s) \
             sent (max backoff {})",
            peer.totals().probes,
            peer.totals().max_backoff
        ));
    }
    if let (Some(share), Some(ms)) = (c.rwnd_limited_share(), c.rwnd_limited_ms()) {
        if share >= 0.5 && ms > 0 {
            findings.push(format!(
                "sender held back by the peer's window {:.0}% of its busy time ({})",
                share * 100.0,
                duration_ms(ms)
            ));
        }
    }
    if let Some(text) = send_buffer_held(c) {
        findings.push(text);
    }
    if c.wscale_ok == Some(false) {
        findings.push("no window scaling negotiated: windows top out at 64 KiB".to_string());
    }
    if findings.is_empty() {
        "no flow-control limit seen".to_string()
    } else {
        findings.join("; ")
    }
}

/// What held this host's window most of the time, when it is something an operator can change
/// or should know: a pinned or maxed-out buffer, a clamp, memory pressure. (A window held by a
/// buffer autotuning is still growing, or by rcv_ssthresh, is the kernel at work.)
fn window_cap(c: &Conn, until: u64) -> Option<String> {
    // Only where this end received data: a sender's own window holds nothing back.
    if c.reader.as_ref().is_none_or(|r| r.bytes == 0) {
        return None;
    }
    let (limit, share) = *c.limit_shares(until).first()?;
    if share < 0.5 {
        return None;
    }
    let state = c.receiver.as_ref()?;
    let choice = state.held.as_ref()?;
    let why = match limit {
        Limit::BufferMax if choice.rcvbuf_locked => {
            format!("the receive buffer, pinned at {} by SO_RCVBUF", bytes(state.rcvbuf.into()))
        }
        Limit::BufferMax => match choice.rmem_max {
            Some(max) => format!(
                "the receive buffer at its maximum, {} (net.ipv4.tcp_rmem max {})",
                bytes(state.rcvbuf.into()),
                bytes(max.into())
            ),
            None => format!("the receive buffer at its maximum, {}", bytes(state.rcvbuf.into())),
        },
        Limit::WindowClamp => format!("window_clamp at {}", bytes(state.window_clamp.into())),
        Limit::MemoryPressure => "TCP memory pressure".to_string(),
        Limit::ScaleCeiling => match c.rcv_wscale {
            Some(0) | None => "the 64 KiB ceiling of a window without scaling".to_string(),
            Some(scale) => format!("the ceiling of window scale {scale}"),
        },
        // An older offer carried is a moment, not a setting: it holds only until the next
        // segment, and an unchanged window sends no event to say when it stopped.
        Limit::NoShrink
        | Limit::AppNotReading
        | Limit::SillyWindow
        | Limit::OutOfOrder
        | Limit::RcvSsthresh
        | Limit::BufferGrowing => return None,
    };
    Some(format!(
        "local window held by {why} {:.0}% of the time (largest {})",
        share * 100.0,
        c.local.max_window.map_or("-".to_string(), |w| bytes(w.into()))
    ))
}

/// This host's sender waited for its own send buffer most of its busy time: as the tracer
/// sampled it, or as the kernel's sndbuf_limited counted it (since the open), whichever says
/// more. Its application's SO_SNDBUF when it pinned one.
fn send_buffer_held(c: &Conn) -> Option<String> {
    let sampled = c.buffer_wait_share().unwrap_or(0.0);
    let share = sampled.max(c.sndbuf_limited_share().unwrap_or(0.0));
    if share < 0.5 {
        return None;
    }
    let s = c.sender.as_ref()?;
    let l = s.limits?;
    let whose = if l.sndbuf_locked {
        format!("pinned at {} by SO_SNDBUF", bytes(l.sndbuf.into()))
    } else {
        format!("{}, autotuned (net.ipv4.tcp_wmem)", bytes(l.sndbuf.into()))
    };
    Some(format!(
        "sender held back by its own send buffer ({whose}) {:.0}% of its busy time: all it was \
         given in flight, the application waiting for space (`ss -ti` sndbuf_limited: {}; \
         the kernel counts only waits that begin with a partial segment)",
        share * 100.0,
        duration_ms(l.sndbuf_limited_ms)
    ))
}

/// A share (0..=1) as a percentage in whole tenths: that keeps the JSON readable.
fn percent(share: f64) -> f64 {
    (share * 1000.0).round() / 10.0
}
