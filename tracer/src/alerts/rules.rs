//! When each rule fires and resolves.
//!
//! Rules look at the table's connection after each event, and keep what they need between
//! events in a per-connection `Watch`. Their timers (stall thresholds, quiet periods) read only
//! the `Watch`, which changes only with events: an alert's time is the moment its condition was
//! met, whenever the engine gets to run the timer, so replays give identical alerts.

use serde_json::{Map, Value};

use super::config::Thresholds;
use super::engine::{Book, Finding, Slot};
use super::{text, Rule, Severity};
use crate::events::model::{Body, Event, SenderState, Side};
use crate::timeline::fmt::ns_to_ms;
use crate::timeline::{Conn, ConnKey, FourTuple};

const MS: u64 = 1_000_000;

/// The largest window without window scaling.
pub(super) const UNSCALED_MAX: u64 = 65_535;

/// `ms` milliseconds after `t_ns`, saturating: thresholds come from users.
fn after(t_ns: u64, ms: u64) -> u64 {
    t_ns.saturating_add(ms.saturating_mul(MS))
}

/// What alerts say about a connection, as of its latest event.
pub(super) struct Info {
    pub tuple: FourTuple,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    /// The process seen reading the socket.
    pub reader: Option<(String, Option<u32>)>,
    pub mss: Option<u32>,
    pub rcvbuf: Option<u32>,
    pub rcvbuf_locked: Option<bool>,
    /// Bytes received and not yet read, at the latest local advertisement.
    pub unread: Option<u32>,
    pub local_window: Option<u32>,
    pub peer_window: Option<u32>,
    pub srtt_us: Option<u32>,
    pub in_flight: Option<u32>,
    pub unsent: Option<u32>,
    /// Probes into the peer's current zero window.
    pub episode_probes: u32,
    /// False when the local zero window in progress was set under TCP memory pressure (not
    /// counted in TCPToZeroWindowAdv).
    pub local_counted: Option<bool>,
}

impl Info {
    fn of(c: &Conn) -> Self {
        let receiver = c.local.receiver.as_ref();
        let reader = c.reader.as_ref().filter(|r| !r.comm.is_empty());
        Info {
            tuple: c.tuple,
            pid: c.pid,
            comm: c.comm.clone(),
            reader: reader.map(|r| (r.comm.clone(), r.pid)),
            mss: c.mss,
            // The latest of rcv_space and the advertisement's own view of the buffer.
            rcvbuf: receiver.map(|r| r.rcvbuf).or(c.rcvbuf),
            rcvbuf_locked: c.rcvbuf_locked,
            unread: receiver.map(|r| r.unread),
            local_window: c.local.window,
            peer_window: c.peer.window,
            srtt_us: c.sender.as_ref().map(|s| s.srtt_us).filter(|&v| v > 0),
            in_flight: c.sender.as_ref().map(|s| s.in_flight),
            unsent: c.sender.as_ref().map(|s| s.unsent),
            episode_probes: c.peer.open.as_ref().map_or(0, |e| e.probes),
            local_counted: c.local.open.as_ref().and_then(|e| e.counted),
        }
    }
}

/// A rule's per-side memory.
#[derive(Default)]
struct SideWatch {
    /// Start of the zero-window episode in progress, as last seen in the table.
    zero_since: Option<u64>,
    /// Sub-MSS windows in a row.
    small_run: u64,
}

/// A sample of the kernel's cumulative sender counters.
#[derive(Clone, Copy)]
struct Sample {
    ts_ns: u64,
    rwnd_limited_ms: u64,
}

/// What the rules remember about one connection.
pub(super) struct Watch {
    pub info: Info,
    local: SideWatch,
    peer: SideWatch,
    /// Start of the current receiver_limited interval.
    interval_start: Option<Sample>,
    /// The latest complete interval was receiver-limited (window_scaling_missing uses it).
    receiver_limited: bool,
    last_limited_pct: Option<f64>,
    /// Drops since the flow_control_drops alert fired.
    drops: u64,
    dropped_bytes: u64,
}

impl Watch {
    pub(super) fn new(c: &Conn) -> Self {
        Watch {
            info: Info::of(c),
            local: SideWatch::default(),
            peer: SideWatch::default(),
            interval_start: None,
            receiver_limited: false,
            last_limited_pct: None,
            drops: 0,
            dropped_bytes: 0,
        }
    }

    fn side(&mut self, side: Side) -> &mut SideWatch {
        match side {
            Side::Local => &mut self.local,
            Side::Peer => &mut self.peer,
        }
    }
}

/// Evidence as a JSON object, leaving out what is unknown.
struct Evidence(Map<String, Value>);

impl Evidence {
    fn new() -> Self {
        Evidence(Map::new())
    }

    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    fn maybe<V: Into<Value>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    fn done(self) -> Map<String, Value> {
        self.0
    }
}

/// Run every rule on event `e` of the live connection `conn` (already updated by it).
pub(super) fn on_event(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &mut Watch,
    conn: &Conn,
    e: &Event,
) {
    let ts = e.ts_ns;
    w.info = Info::of(conn);
    for side in [Side::Local, Side::Peer] {
        sync_episode(th, book, key, w, conn, side, ts);
    }
    match &e.body {
        Body::Window { side, window, sender, .. } => {
            silly_window(th, book, key, w, *side, *window, ts);
            if *side == Side::Local && w.info.mss.is_some_and(|mss| *window < mss) {
                rcvbuf_limiting(th, book, key, w, ts);
            }
            if *side == Side::Peer && *window > 0 {
                peer_reopened(book, key, w, ts);
            }
            if let Some(s) = sender {
                receiver_limited(th, book, key, w, s, ts);
            }
        }
        Body::ZeroWindowStart { sender: Some(s), .. } => receiver_limited(th, book, key, w, s, ts),
        Body::ZeroWindowEnd { side: Side::Peer, .. } => peer_reopened(book, key, w, ts),
        Body::Inflight { window, sender } => {
            if *window > 0 {
                peer_reopened(book, key, w, ts);
            }
            receiver_limited(th, book, key, w, sender, ts);
        }
        Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => {
            let p = ProbeSeen {
                probes_out: *probes_out,
                backoff: *backoff,
                rto_ms: *rto_ms,
                next_probe_ms: *next_probe_ms,
                snd_wnd: *snd_wnd,
                unacked: *unacked,
            };
            persist_backoff(th, book, key, w, &p, ts);
        }
        Body::RcvSpace { rcvbuf_locked: true, .. } => {
            // Pinned, and already limiting: a zero window open, or the last window below MSS.
            let small =
                matches!((w.info.local_window, w.info.mss), (Some(win), Some(mss)) if win < mss);
            if w.local.zero_since.is_some() || small {
                rcvbuf_limiting(th, book, key, w, ts);
            }
        }
        Body::Drop { reason, bytes } => flow_control_drop(th, book, key, w, reason, *bytes, ts),
        _ => {}
    }
    window_scaling_missing(th, book, key, w, conn, ts);
}

/// A timer of `slot` fell due.
pub(super) fn on_timer(th: &Thresholds, book: &mut Book, slot: Slot, due: u64, w: &mut Watch) {
    match slot.rule {
        Rule::ZeroWindowStall => stall_threshold(th, book, slot, due, w),
        // No countdown runs while the local window is at zero: a timer then is stale.
        Rule::RcvbufPinned if w.local.zero_since.is_none() => {
            let quiet = th.rcvbuf_pinned.quiet_ms;
            let info = &w.info;
            book.resolve(slot, due, "quiet", || text::pinned_resolved(info, quiet), Map::new());
        }
        Rule::FlowControlDrops => {
            let (drops, bytes) = (w.drops, w.dropped_bytes);
            let quiet = th.flow_control_drops.quiet_ms;
            let info = &w.info;
            let extra = Evidence::new().with("drops", drops).with("dropped_bytes", bytes).done();
            book.resolve(
                slot,
                due,
                "quiet",
                || text::drops_resolved(info, drops, bytes, quiet),
                extra,
            );
        }
        _ => {}
    }
}

/// Follow the table's zero-window episode of one side: start the stall countdown when one
/// opens, resolve when it ends.
fn sync_episode(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &mut Watch,
    conn: &Conn,
    side: Side,
    ts: u64,
) {
    let dir = conn.side(side);
    let open = dir.open.as_ref().map(|e| e.start_ns);
    if w.side(side).zero_since == open {
        return;
    }
    let slot = Slot::new(key, Rule::ZeroWindowStall, Some(side));
    if let Some(start) = w.side(side).zero_since.take() {
        let end = dir
            .episodes
            .iter()
            .rev()
            .find(|e| e.start_ns == start)
            .and_then(|e| e.end_ns)
            .unwrap_or(ts);
        let zero_ms = ns_to_ms(end.saturating_sub(start));
        let info = &w.info;
        let extra = Evidence::new().with("zero_window_ms", zero_ms).done();
        book.resolve(
            slot,
            end,
            "window_reopened",
            || text::stall_resolved(info, side, zero_ms),
            extra,
        );
        book.cancel(slot);
        if side == Side::Local {
            // The zero window limited the peer until it ended: the quiet period starts there.
            let pinned = Slot::new(key, Rule::RcvbufPinned, Some(Side::Local));
            if book.is_active(&pinned) {
                book.schedule(pinned, after(end, th.rcvbuf_pinned.quiet_ms));
            }
        }
    }
    if let Some(start) = open {
        w.side(side).zero_since = Some(start);
        if th.zero_window_stall.enabled {
            book.schedule(slot, after(start, th.zero_window_stall.warning_ms));
        }
        if side == Side::Local {
            rcvbuf_limiting(th, book, key, w, ts);
        }
    }
}

/// zero_window_stall: the episode reached the warning or the critical threshold.
fn stall_threshold(th: &Thresholds, book: &mut Book, slot: Slot, due: u64, w: &mut Watch) {
    let Some(side) = slot.side.side() else { return };
    let Some(start) = w.side(side).zero_since else { return };
    let cfg = &th.zero_window_stall;
    let zero_ms = ns_to_ms(due.saturating_sub(start));
    let severity = if zero_ms >= cfg.critical_ms { Severity::Critical } else { Severity::Warning };
    let info = &w.info;
    book.fire(slot, severity, due, info, || {
        let evidence = Evidence::new()
            .with("zero_window_ms", zero_ms)
            .with(
                "threshold_ms",
                if severity == Severity::Critical { cfg.critical_ms } else { cfg.warning_ms },
            )
            .maybe("unread", info.unread.filter(|_| side == Side::Local))
            .maybe("rcvbuf", info.rcvbuf.filter(|_| side == Side::Local))
            .maybe("rcvbuf_locked", info.rcvbuf_locked.filter(|_| side == Side::Local))
            .maybe("counted", info.local_counted.filter(|_| side == Side::Local))
            .maybe("probes", (side == Side::Peer).then_some(info.episode_probes))
            .maybe("in_flight", info.in_flight.filter(|_| side == Side::Peer))
            .maybe("unsent", info.unsent.filter(|_| side == Side::Peer))
            .done();
        let (explanation, fix) = text::stall(info, side, zero_ms);
        Finding { evidence, explanation, fix }
    });
    if severity == Severity::Warning && cfg.critical_ms > cfg.warning_ms {
        book.schedule(slot, after(start, cfg.critical_ms));
    }
}

/// A probe as the rules need it.
pub(super) struct ProbeSeen {
    pub probes_out: u8,
    pub backoff: u8,
    pub rto_ms: Option<f64>,
    pub next_probe_ms: Option<f64>,
    pub snd_wnd: u32,
    pub unacked: u32,
}

/// persist_backoff: too many unanswered probes, or the next one too far away.
fn persist_backoff(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &Watch,
    p: &ProbeSeen,
    ts: u64,
) {
    let cfg = &th.persist_backoff;
    if !cfg.enabled {
        return;
    }
    let by_count = u64::from(p.probes_out) >= cfg.probes_out;
    let by_interval = p.next_probe_ms.is_some_and(|ms| ms >= cfg.interval_ms as f64);
    if !(by_count || by_interval) {
        return;
    }
    let slot = Slot::new(key, Rule::PersistBackoff, Some(Side::Peer));
    let info = &w.info;
    book.fire(slot, Severity::Warning, ts, info, || {
        let evidence = Evidence::new()
            .with("probes_out", p.probes_out)
            .with("backoff", p.backoff)
            .maybe("next_probe_ms", p.next_probe_ms)
            .maybe("rto_ms", p.rto_ms)
            .with("snd_wnd", p.snd_wnd)
            .with("unacked", p.unacked)
            .with("probes", info.episode_probes)
            .maybe("unsent", info.unsent)
            .done();
        let (explanation, fix) = text::persist(info, p, by_count);
        Finding { evidence, explanation, fix }
    });
}

/// The peer's window is open again: probing is over.
fn peer_reopened(book: &mut Book, key: ConnKey, w: &Watch, ts: u64) {
    let slot = Slot::new(key, Rule::PersistBackoff, Some(Side::Peer));
    let info = &w.info;
    book.resolve(slot, ts, "window_reopened", || text::persist_resolved(info), Map::new());
}

/// receiver_limited: the kernel's rwnd_limited counter over intervals of wall time.
fn receiver_limited(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &mut Watch,
    s: &SenderState,
    ts: u64,
) {
    let cfg = &th.receiver_limited;
    let now = Sample { ts_ns: ts, rwnd_limited_ms: s.rwnd_limited_ms };
    let start = match w.interval_start {
        // A counter going backwards is a reset: start a new interval.
        Some(start) if s.rwnd_limited_ms >= start.rwnd_limited_ms => start,
        _ => {
            w.interval_start = Some(now);
            return;
        }
    };
    let wall_ns = ts.saturating_sub(start.ts_ns);
    if wall_ns < cfg.interval_ms.saturating_mul(MS) {
        return;
    }
    w.interval_start = Some(now);
    let limited_ms = s.rwnd_limited_ms - start.rwnd_limited_ms;
    let pct = (limited_ms as f64 * MS as f64 * 100.0 / wall_ns as f64).min(100.0);
    let pct = (pct * 10.0).round() / 10.0;
    let interval_ms = ns_to_ms(wall_ns);
    // Limited only counts while data waits: a sender with nothing to send is not held back.
    let waits = s.in_flight > 0 || s.unsent > 0;
    w.receiver_limited = pct >= cfg.limited_pct && waits;
    w.last_limited_pct = Some(pct);
    if !cfg.enabled {
        return;
    }
    let slot = Slot::new(key, Rule::ReceiverLimited, Some(Side::Peer));
    let info = &w.info;
    if w.receiver_limited {
        book.fire(slot, Severity::Warning, ts, info, || {
            let evidence = Evidence::new()
                .with("rwnd_limited_pct", pct)
                .with("rwnd_limited_ms", limited_ms)
                .with("interval_ms", interval_ms)
                .with("in_flight", s.in_flight)
                .with("unsent", s.unsent)
                .maybe("peer_window", info.peer_window)
                .maybe("srtt_us", info.srtt_us)
                .done();
            let (explanation, fix) = text::receiver_limited(info, pct, interval_ms, limited_ms);
            Finding { evidence, explanation, fix }
        });
    } else {
        let extra = Evidence::new().with("rwnd_limited_pct", pct).done();
        book.resolve(
            slot,
            ts,
            "below_threshold",
            || text::receiver_limited_resolved(info, pct, interval_ms),
            extra,
        );
    }
}

/// window_scaling_missing: no scaling negotiated, and the 64 KiB ceiling matters.
fn window_scaling_missing(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &Watch,
    conn: &Conn,
    ts: u64,
) {
    let cfg = &th.window_scaling_missing;
    if !cfg.enabled || conn.wscale_ok != Some(false) {
        return;
    }
    let max_window = conn.local.max_window.max(conn.peer.max_window).map_or(0, u64::from);
    let at_ceiling = max_window >= cfg.window_bytes;
    if !(w.receiver_limited || at_ceiling) {
        return;
    }
    let slot = Slot::new(key, Rule::WindowScalingMissing, None);
    let info = &w.info;
    let pct = w.last_limited_pct;
    book.fire(slot, Severity::Warning, ts, info, || {
        let max_rate = info.srtt_us.map(|us| UNSCALED_MAX as f64 * 1e6 / f64::from(us));
        let evidence = Evidence::new()
            .with("ceiling_bytes", UNSCALED_MAX)
            .with("max_window", max_window)
            .maybe("srtt_us", info.srtt_us)
            .maybe("max_throughput_bytes_per_s", max_rate.map(f64::round))
            .maybe("rwnd_limited_pct", pct)
            .done();
        let (explanation, fix) = text::scaling(info, max_rate, at_ceiling);
        Finding { evidence, explanation, fix }
    });
}

/// silly_window: non-zero windows below one MSS, several in a row.
fn silly_window(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &mut Watch,
    side: Side,
    window: u32,
    ts: u64,
) {
    let cfg = &th.silly_window;
    let Some(mss) = w.info.mss else { return };
    // A zero window neither continues nor breaks a run: silly windows alternate with zeros.
    if !cfg.enabled || window == 0 {
        return;
    }
    let slot = Slot::new(key, Rule::SillyWindow, Some(side));
    if window >= mss {
        w.side(side).small_run = 0;
        let info = &w.info;
        let extra = Evidence::new().with("window", window).done();
        book.resolve(
            slot,
            ts,
            "window_at_least_mss",
            || text::silly_resolved(info, side, window),
            extra,
        );
        return;
    }
    let run = {
        let s = w.side(side);
        s.small_run += 1;
        s.small_run
    };
    if run < cfg.repeats {
        return;
    }
    let info = &w.info;
    book.fire(slot, Severity::Warning, ts, info, || {
        let evidence = Evidence::new()
            .with("window", window)
            .with("mss", mss)
            .with("repeats", run)
            .maybe("rcvbuf", info.rcvbuf.filter(|_| side == Side::Local))
            .maybe("rcvbuf_locked", info.rcvbuf_locked.filter(|_| side == Side::Local))
            .done();
        let (explanation, fix) = text::silly(info, side, window, mss, run);
        Finding { evidence, explanation, fix }
    });
}

/// rcvbuf_pinned: the local window limits the peer (zero, or below one MSS) right now. Fires
/// if SO_RCVBUF pinned the buffer; the quiet countdown restarts (and pauses while at zero).
fn rcvbuf_limiting(th: &Thresholds, book: &mut Book, key: ConnKey, w: &Watch, ts: u64) {
    let cfg = &th.rcvbuf_pinned;
    if !cfg.enabled || w.info.rcvbuf_locked != Some(true) {
        return;
    }
    let slot = Slot::new(key, Rule::RcvbufPinned, Some(Side::Local));
    let info = &w.info;
    let at_zero = w.local.zero_since.is_some();
    book.fire(slot, Severity::Warning, ts, info, || {
        let evidence = Evidence::new()
            .maybe("rcvbuf", info.rcvbuf)
            .maybe("unread", info.unread)
            .maybe("window", info.local_window)
            .maybe("mss", info.mss)
            .done();
        let (explanation, fix) = text::pinned(info, at_zero);
        Finding { evidence, explanation, fix }
    });
    if at_zero {
        book.cancel(slot);
    } else {
        book.schedule(slot, after(ts, cfg.quiet_ms));
    }
}

/// flow_control_drops: a segment dropped for lack of receive space.
fn flow_control_drop(
    th: &Thresholds,
    book: &mut Book,
    key: ConnKey,
    w: &mut Watch,
    reason: &str,
    bytes: u32,
    ts: u64,
) {
    let cfg = &th.flow_control_drops;
    if !cfg.enabled {
        return;
    }
    let slot = Slot::new(key, Rule::FlowControlDrops, Some(Side::Local));
    if !book.is_active(&slot) {
        w.drops = 0;
        w.dropped_bytes = 0;
    }
    w.drops += 1;
    w.dropped_bytes += u64::from(bytes);
    let info = &w.info;
    book.fire(slot, Severity::Warning, ts, info, || {
        let evidence = Evidence::new()
            .with("drops", 1u64)
            .with("dropped_bytes", bytes)
            .with("reason", reason)
            .maybe("unread", info.unread)
            .maybe("rcvbuf", info.rcvbuf)
            .maybe("rcvbuf_locked", info.rcvbuf_locked)
            .done();
        let (explanation, fix) = text::drops(info, reason, bytes);
        Finding { evidence, explanation, fix }
    });
    book.schedule(slot, after(ts, cfg.quiet_ms));
}
