//! What the rules see of one connection: its latest state (`Info`), its zero-window episodes and
//! receiver-limited intervals as they begin and end, and each event turned into the
//! observations (`Seen`) the rules react to.
//!
//! Rule timers read only these facts, which change only with events: an alert's time is the
//! moment its condition was met, whenever the engine gets to run the timer, so replays give
//! identical alerts.

use std::sync::Arc;

use smallvec::SmallVec;

use super::config::ReceiverLimited;
use super::other_end::OtherEnd;
use crate::events::model::{Body, Event, SenderState, Side};
use crate::timeline::fmt::ns_to_ms;
use crate::timeline::{Conn, FourTuple, Moment, WindowHeld};

pub(super) const MS: u64 = 1_000_000;
/// `last_limited_tenths` before any interval completed (a share is at most 1000 tenths).
const NO_SHARE: u16 = u16::MAX;

/// What alerts say about a connection, as of its latest event.
#[derive(Clone)]
pub(super) struct Info {
    pub tuple: FourTuple,
    pub pid: Option<u32>,
    /// Shared with the connection table (interned).
    pub comm: Option<Arc<str>>,
    /// The process seen reading the socket.
    pub reader: Option<(Arc<str>, Option<u32>)>,
    pub mss: Option<u32>,
    pub rcvbuf: Option<u32>,
    pub rcvbuf_locked: Option<bool>,
    /// Bytes received and not yet read, at the latest local advertisement.
    pub unread: Option<u32>,
    pub local_window: Option<u32>,
    pub peer_window: Option<u32>,
    /// The largest window either side advertised.
    pub max_window: Option<u32>,
    /// Whether window scaling was negotiated, once the handshake was seen.
    pub wscale_ok: Option<bool>,
    pub srtt_us: Option<u32>,
    pub in_flight: Option<u32>,
    pub unsent: Option<u32>,
    /// Probes into the peer's current zero window.
    pub episode_probes: u32,
    /// False when the local zero window in progress was set under TCP memory pressure (not
    /// counted in TCPToZeroWindowAdv).
    pub local_counted: Option<bool>,
    /// Why the latest local window had its size, and the clamp then.
    pub local_choice: Option<WindowHeld>,
    pub window_clamp: Option<u32>,
    /// The sender's congestion window in bytes (cwnd x MSS).
    pub cwnd_bytes: Option<u64>,
    /// Who is at the other end: filled in only when an alert fires (`Cx::fire`).
    pub other_end: OtherEnd,
}

impl Info {
    /// The connection `c` as alerts see it. Every event makes one: the names are shared
    /// (`Arc`), so it copies pointers and allocates nothing.
    pub(super) fn of(c: &Conn) -> Self {
        let reader = c.reader.as_ref().filter(|r| !r.comm.is_empty());
        Info::with_names(c, c.comm.clone(), reader.map(|r| (r.comm.clone(), r.pid)))
    }

    /// Bring this copy up to date with `c`, as `Info::of(c)` would make it, keeping the names
    /// it shares already: no reference count changes while they stay the same.
    fn refresh(&mut self, c: &Conn) {
        let (kept_comm, kept_reader) = (self.comm.take(), self.reader.take());
        let comm = c.comm.as_ref().map(|now| shared(kept_comm, now));
        let reader = c.reader.as_ref().filter(|r| !r.comm.is_empty());
        let reader = reader.map(|r| (shared(kept_reader.map(|(name, _)| name), &r.comm), r.pid));
        *self = Info::with_names(c, comm, reader);
    }

    fn with_names(
        c: &Conn,
        comm: Option<Arc<str>>,
        reader: Option<(Arc<str>, Option<u32>)>,
    ) -> Self {
        let receiver = c.receiver.as_ref();
        Info {
            tuple: c.tuple,
            pid: c.pid,
            comm,
            reader,
            mss: c.mss,
            // The latest of rcv_space and the advertisement's own view of the buffer.
            rcvbuf: receiver.map(|r| r.rcvbuf).or(c.rcvbuf),
            rcvbuf_locked: c.rcvbuf_locked,
            unread: receiver.map(|r| r.unread),
            local_window: c.local.window,
            peer_window: c.peer.window,
            max_window: c.local.max_window.max(c.peer.max_window),
            wscale_ok: c.wscale_ok,
            srtt_us: c.sender.as_ref().map(|s| s.srtt_us).filter(|&v| v > 0),
            in_flight: c.sender.as_ref().map(|s| s.in_flight),
            unsent: c.sender.as_ref().map(|s| s.unsent),
            episode_probes: c.peer.open().map_or(0, |e| e.probes),
            local_counted: c.local.open().and_then(|e| e.counted),
            local_choice: receiver.and_then(|r| r.held),
            window_clamp: receiver.map(|r| r.window_clamp),
            cwnd_bytes: c
                .sender
                .as_ref()
                .and_then(|s| Some(u64::from(s.limits?.cwnd) * u64::from(s.mss)))
                .filter(|&b| b > 0),
            other_end: OtherEnd::Remote,
        }
    }
}

/// The name `now`: `kept` itself when it is the same shared copy.
fn shared(kept: Option<Arc<str>>, now: &Arc<str>) -> Arc<str> {
    match kept {
        Some(kept) if Arc::ptr_eq(&kept, now) => kept,
        _ => Arc::clone(now),
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

/// A completed receiver-limited interval: how much of it the peer's window held the sender.
pub(super) struct Interval {
    /// Share of the interval's wall time, rounded to 0.1.
    pub pct: f64,
    pub limited_ms: u64,
    pub interval_ms: u64,
    pub in_flight: u32,
    pub unsent: u32,
    /// At or above the receiver_limited share, with data waiting to be sent.
    pub limited: bool,
    /// Bytes the peer acknowledged per second over the interval (None where the kernel's
    /// count was not read: older recordings).
    pub delivered_bps: Option<f64>,
    /// The data segments sent in the interval (None in older recordings).
    pub segments: Option<SegmentsSent>,
    /// How long the sender waited for its own send buffer in the interval (None in older
    /// recordings).
    pub buffer_wait: Option<BufferWait>,
}

/// A sender's waits for its own send buffer over an interval, and that buffer.
pub(super) struct BufferWait {
    /// Share of the interval's wall time, rounded to 0.1.
    pub pct: f64,
    pub waited_ms: u64,
    /// sk_sndbuf (twice what SO_SNDBUF asked), and whether SO_SNDBUF pinned it.
    pub sndbuf: u32,
    pub locked: bool,
}

/// The data segments a sender sent over an interval, and the peer's largest window.
pub(super) struct SegmentsSent {
    pub count: u64,
    pub bytes: u64,
    pub max_window: u32,
    /// The MSS the peer announced (0 where unknown).
    pub peer_mss: u32,
}

impl SegmentsSent {
    /// Mean payload per segment, in bytes (0 without segments).
    pub fn mean(&self) -> u64 {
        self.bytes.checked_div(self.count).unwrap_or(0)
    }
}

/// A read report as the rules need it.
pub(super) struct ReadSeen {
    /// Bytes per second the application read.
    pub rate: f64,
    pub rcv_rtt_us: Option<u32>,
    pub rcv_wnd: Option<u32>,
}

/// One thing an event showed about a live connection. An event's observations come in this
/// order: episodes ended and begun (local side, then peer), what the event itself says, then
/// `Settled`.
pub(super) enum Seen<'e> {
    /// The zero-window episode of `side` ended at `end_ns`, after `zero_ms` at zero.
    EpisodeEnded { side: Side, end_ns: u64, zero_ms: u64 },
    /// A zero-window episode of `side` began at `start_ns`.
    EpisodeStarted { side: Side, start_ns: u64 },
    /// `side` advertised `window` bytes.
    Window { side: Side, window: u32 },
    /// The peer's window is open again: a non-zero window, or the end of its zero window.
    PeerReopened,
    /// A receiver-limited interval completed.
    Interval(Interval),
    /// This host sent a zero-window probe.
    Probe(ProbeSeen),
    /// The receive buffer was sampled, pinned by SO_RCVBUF.
    RcvbufLocked,
    /// A segment was dropped for lack of receive space.
    Drop { reason: &'e str, bytes: u32 },
    /// The reading process's report.
    Read(ReadSeen),
    /// Everything the event changed is in.
    Settled,
}

impl Seen<'_> {
    pub(super) const EPISODE_ENDED: u16 = 1 << 0;
    pub(super) const EPISODE_STARTED: u16 = 1 << 1;
    pub(super) const WINDOW: u16 = 1 << 2;
    pub(super) const PEER_REOPENED: u16 = 1 << 3;
    pub(super) const INTERVAL: u16 = 1 << 4;
    pub(super) const PROBE: u16 = 1 << 5;
    pub(super) const RCVBUF_LOCKED: u16 = 1 << 6;
    pub(super) const DROP: u16 = 1 << 7;
    pub(super) const SETTLED: u16 = 1 << 8;
    pub(super) const READ: u16 = 1 << 9;

    /// This observation's kind, as one of the bits a rule's `Check::sees` combines.
    pub(super) fn bit(&self) -> u16 {
        match self {
            Seen::EpisodeEnded { .. } => Self::EPISODE_ENDED,
            Seen::EpisodeStarted { .. } => Self::EPISODE_STARTED,
            Seen::Window { .. } => Self::WINDOW,
            Seen::PeerReopened => Self::PEER_REOPENED,
            Seen::Interval(_) => Self::INTERVAL,
            Seen::Probe(_) => Self::PROBE,
            Seen::RcvbufLocked => Self::RCVBUF_LOCKED,
            Seen::Drop { .. } => Self::DROP,
            Seen::Settled => Self::SETTLED,
            Seen::Read(_) => Self::READ,
        }
    }
}

/// An event's observations, on the stack: at most two per side's episodes, three from the
/// event itself, and `Settled`.
pub(super) type SeenList<'e> = SmallVec<[Seen<'e>; 8]>;

/// A sample of the kernel's cumulative sender counters (none yet while `ts_ns` is unset).
/// Whether `bytes_acked` was read is kept beside it, in `Facts` (8 bytes a connection).
#[derive(Clone, Copy)]
struct Sample {
    ts_ns: Moment,
    /// Both in ms, u32 to share 8 bytes (a count past 49 days wraps once; the interval it
    /// falls in is taken as a reset).
    rwnd_limited_ms: u32,
    buffer_wait_ms: u32,
    bytes_acked: u64,
    /// tcp_info's bytes_sent (0 where not read: older recordings); its data_segs_out is kept
    /// beside it in `Facts`, where it packs with the flags.
    bytes_sent: u64,
}

/// What the rules share about one connection between its events.
pub(super) struct Facts {
    /// The connection as of its latest event, kept only while the alert book holds an alert or
    /// a timer for it: their texts are written from it later (a timer's, an end's). Most
    /// connections never have one, and this is most of what facts would weigh.
    info: Option<Box<Info>>,
    /// Start of each side's zero-window episode in progress, as last seen in the table.
    local_zero_since: Moment,
    peer_zero_since: Moment,
    /// Start of the current receiver-limited interval.
    interval_start: Sample,
    /// Its `bytes_acked` was read (older recordings lack it).
    start_acked_read: bool,
    /// Its data_segs_out (0 where not read).
    start_segs_out: u32,
    /// The latest complete interval was receiver-limited.
    receiver_limited: bool,
    /// Its limited share in tenths of a percent (the share is rounded to tenths).
    last_limited_tenths: u16,
}

impl Facts {
    pub(super) fn new() -> Self {
        Facts {
            info: None,
            local_zero_since: Moment::UNSET,
            peer_zero_since: Moment::UNSET,
            interval_start: Sample {
                ts_ns: Moment::UNSET,
                rwnd_limited_ms: 0,
                buffer_wait_ms: 0,
                bytes_acked: 0,
                bytes_sent: 0,
            },
            start_acked_read: false,
            start_segs_out: 0,
            receiver_limited: false,
            last_limited_tenths: NO_SHARE,
        }
    }

    /// The connection as of its latest event, if kept (`keep`).
    pub(super) fn info(&self) -> Option<&Info> {
        self.info.as_deref()
    }

    /// Bring the kept copy of the connection, if any, up to date with `conn`.
    pub(super) fn refresh_info(&mut self, conn: &Conn) {
        if let Some(info) = &mut self.info {
            info.refresh(conn);
        }
    }

    /// Keep `info`, the connection as of this event, or nothing.
    pub(super) fn keep(&mut self, info: Option<Info>) {
        match (&mut self.info, info) {
            (Some(kept), Some(info)) => **kept = info,
            (kept, info) => *kept = info.map(Box::new),
        }
    }

    /// Start of `side`'s zero-window episode in progress.
    pub(super) fn zero_since(&self, side: Side) -> Option<u64> {
        match side {
            Side::Local => self.local_zero_since.get(),
            Side::Peer => self.peer_zero_since.get(),
        }
    }

    /// The latest complete interval was receiver-limited.
    pub(super) fn receiver_limited(&self) -> bool {
        self.receiver_limited
    }

    /// The limited share of the latest complete interval.
    pub(super) fn last_limited_pct(&self) -> Option<f64> {
        (self.last_limited_tenths != NO_SHARE).then(|| f64::from(self.last_limited_tenths) / 10.0)
    }

    /// Take in event `e` of the live connection `conn` (already updated by it), measuring
    /// receiver-limited intervals as `limits` says; puts what the rules should see, in order,
    /// into `seen` (the caller's, empty: a list returned would be copied out, a few hundred
    /// bytes an event).
    pub(super) fn update<'e>(
        &mut self,
        limits: &ReceiverLimited,
        conn: &Conn,
        e: &'e Event,
        seen: &mut SeenList<'e>,
    ) {
        let ts = e.ts_ns;
        for side in [Side::Local, Side::Peer] {
            self.sync_episode(conn, side, ts, seen);
        }
        match &e.body {
            Body::Window { side, window, sender, .. } => {
                seen.push(Seen::Window { side: *side, window: *window });
                if *side == Side::Peer && *window > 0 {
                    seen.push(Seen::PeerReopened);
                }
                if let Some(s) = sender {
                    self.sample(limits, s, ts, seen);
                }
            }
            Body::ZeroWindowStart { sender: Some(s), .. } => self.sample(limits, s, ts, seen),
            Body::ZeroWindowEnd { side: Side::Peer, .. } => seen.push(Seen::PeerReopened),
            Body::Inflight { window, sender } => {
                if *window > 0 {
                    seen.push(Seen::PeerReopened);
                }
                self.sample(limits, sender, ts, seen);
            }
            Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => {
                seen.push(Seen::Probe(ProbeSeen {
                    probes_out: *probes_out,
                    backoff: *backoff,
                    rto_ms: *rto_ms,
                    next_probe_ms: *next_probe_ms,
                    snd_wnd: *snd_wnd,
                    unacked: *unacked,
                }));
            }
            Body::RcvSpace { rcvbuf_locked: true, .. } => seen.push(Seen::RcvbufLocked),
            Body::Drop { reason, bytes } => seen.push(Seen::Drop { reason, bytes: *bytes }),
            Body::Read { rate, rcv_rtt_us, rcv_wnd, .. } => seen.push(Seen::Read(ReadSeen {
                rate: *rate,
                rcv_rtt_us: *rcv_rtt_us,
                rcv_wnd: *rcv_wnd,
            })),
            _ => {}
        }
        seen.push(Seen::Settled);
    }

    fn zero_since_mut(&mut self, side: Side) -> &mut Moment {
        match side {
            Side::Local => &mut self.local_zero_since,
            Side::Peer => &mut self.peer_zero_since,
        }
    }

    /// Follow the table's zero-window episode of one side: note when one ends and begins.
    fn sync_episode(&mut self, conn: &Conn, side: Side, ts: u64, seen: &mut SeenList<'_>) {
        let dir = conn.side(side);
        let open = dir.open().map(|e| e.start_ns);
        if self.zero_since(side) == open {
            return;
        }
        if let Some(start) = std::mem::replace(self.zero_since_mut(side), Moment::UNSET).get() {
            let end = dir
                .episodes()
                .iter()
                .rev()
                .find(|e| e.start_ns == start)
                .and_then(|e| e.end_ns)
                .unwrap_or(ts);
            let zero_ms = ns_to_ms(end.saturating_sub(start));
            seen.push(Seen::EpisodeEnded { side, end_ns: end, zero_ms });
        }
        if let Some(start) = open {
            *self.zero_since_mut(side) = Moment::of(Some(start));
            seen.push(Seen::EpisodeStarted { side, start_ns: start });
        }
    }

    /// The kernel's rwnd_limited counter over intervals of wall time.
    fn sample(
        &mut self,
        limits: &ReceiverLimited,
        s: &SenderState,
        ts: u64,
        seen: &mut SeenList<'_>,
    ) {
        let bytes_acked = s.limits.map(|l| l.bytes_acked);
        let segments = s.segments;
        let now = Sample {
            ts_ns: Moment::of(Some(ts)),
            rwnd_limited_ms: s.rwnd_limited_ms as u32,
            buffer_wait_ms: s.limits.map_or(0, |l| l.buffer_wait_ms),
            bytes_acked: bytes_acked.unwrap_or(0),
            bytes_sent: segments.map_or(0, |g| g.bytes_sent),
        };
        let start = self.interval_start;
        let start_acked = self.start_acked_read.then_some(start.bytes_acked);
        let start_segs_out = self.start_segs_out;
        let segs_out = segments.map_or(0, |g| g.data_segs_out);
        // A counter going backwards is a reset: start a new interval.
        let started = start
            .ts_ns
            .get()
            .filter(|_| now.rwnd_limited_ms >= start.rwnd_limited_ms)
            .filter(|_| now.buffer_wait_ms >= start.buffer_wait_ms);
        let Some(start_ns) = started else {
            (self.interval_start, self.start_acked_read, self.start_segs_out) =
                (now, bytes_acked.is_some(), segs_out);
            return;
        };
        let wall_ns = ts.saturating_sub(start_ns);
        if wall_ns < limits.interval_ms.saturating_mul(MS) {
            return;
        }
        (self.interval_start, self.start_acked_read, self.start_segs_out) =
            (now, bytes_acked.is_some(), segs_out);
        let limited_ms = u64::from(now.rwnd_limited_ms - start.rwnd_limited_ms);
        // A share of the interval's wall time, in percent rounded to 0.1.
        let share = |ms: u64| {
            let pct = (ms as f64 * MS as f64 * 100.0 / wall_ns as f64).min(100.0);
            (pct * 10.0).round() / 10.0
        };
        let pct = share(limited_ms);
        // Limited only counts while data waits: a sender with nothing to send is not held back.
        let waits = s.in_flight > 0 || s.unsent > 0;
        self.receiver_limited = pct >= limits.limited_pct && waits;
        // 0 to 1000 tenths: the share is at most 100 %, rounded to tenths.
        self.last_limited_tenths = (pct * 10.0).round() as u16;
        let delivered_bps = match (start_acked, bytes_acked) {
            (Some(from), Some(to)) if to > from => Some((to - from) as f64 * 1e9 / wall_ns as f64),
            _ => None,
        };
        // Counters that went backwards (a reused socket address) tell nothing. The interval's
        // start read them too: a recording either has them in every sample or in none.
        let segments = segments
            .filter(|g| g.bytes_sent >= start.bytes_sent && g.data_segs_out >= start_segs_out)
            .map(|g| SegmentsSent {
                count: u64::from(g.data_segs_out - start_segs_out),
                bytes: g.bytes_sent - start.bytes_sent,
                max_window: g.max_window,
                peer_mss: g.peer_mss,
            });
        let buffer_wait = s.limits.map(|l| {
            let waited_ms = u64::from(now.buffer_wait_ms - start.buffer_wait_ms);
            BufferWait {
                pct: share(waited_ms),
                waited_ms,
                sndbuf: l.sndbuf,
                locked: l.sndbuf_locked,
            }
        });
        seen.push(Seen::Interval(Interval {
            pct,
            limited_ms,
            interval_ms: ns_to_ms(wall_ns),
            in_flight: s.in_flight,
            unsent: s.unsent,
            limited: self.receiver_limited,
            delivered_bps,
            segments,
            buffer_wait,
        }));
    }
}
