//! One connection's state: identity, process, negotiated options, receive buffer, the reading
//! process, and its two directions.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use super::direction::{Direction, LastProbe, RwndCounters};
use super::names::Names;
use crate::events::model::{Body, Event, Limit, LocalState, SendLimits, SenderState, Side};

/// The 4-tuple as this host sees it: `saddr:sport` is this host's end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct FourTuple {
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
}

impl FourTuple {
    pub fn of(e: &Event) -> Self {
        FourTuple { saddr: e.saddr, sport: e.sport, daddr: e.daddr, dport: e.dport }
    }
}

/// A moment that may be unset, in 8 bytes where `Option<u64>` takes 16: what is kept for every
/// live connection is paid a hundred thousand times over. No event is stamped u64::MAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moment(u64);

impl Moment {
    pub const UNSET: Moment = Moment(u64::MAX);

    pub fn of(ts_ns: Option<u64>) -> Self {
        ts_ns.map_or(Moment::UNSET, Moment)
    }

    pub fn get(self) -> Option<u64> {
        (self != Moment::UNSET).then_some(self.0)
    }
}

impl Serialize for Moment {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.get().serialize(s)
    }
}

/// What identifies a live connection in the kernel's events: its socket address, or the
/// 4-tuple when the kernel did not name the socket (drops before socket lookup).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ConnId {
    Sock(u64),
    Tuple(FourTuple),
}

/// What the process reading this socket consumed (`read` events).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReadStats {
    /// Interned: every connection of a process shares one copy.
    pub comm: Arc<str>,
    pub pid: Option<u32>,
    pub bytes: u64,
    pub reads: u64,
    /// Bytes per second over the latest `read` interval.
    pub rate: f64,
    pub last_ns: u64,
}

/// One connection, from its first event (ideally `open`) to `close`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Conn {
    /// The socket address (0: the kernel named none, the 4-tuple identifies it): see `id`.
    sk: u64,
    pub tuple: FourTuple,
    /// Latest known process (events carry the pid; open/close/rcv_space/read the comm). The
    /// name is interned by the table: every connection of a process shares one copy.
    pub pid: Option<u32>,
    pub comm: Option<Arc<str>>,
    pub first_ns: u64,
    pub last_ns: u64,
    open_ns: Moment,
    close_ns: Moment,
    /// The TCP state it closed from.
    pub close_state: Option<Box<str>>,
    pub snd_wscale: Option<u8>,
    pub rcv_wscale: Option<u8>,
    /// None when the open was not seen.
    pub wscale_ok: Option<bool>,
    pub advmss: Option<u32>,
    pub rcvbuf: Option<u32>,
    /// True when SO_RCVBUF pinned the buffer (autotuning off); None until a rcv_space event.
    pub rcvbuf_locked: Option<bool>,
    /// The sender's MSS when known, else the advertised MSS.
    pub mss: Option<u32>,
    /// This host's latest send-side sample.
    pub sender: Option<Sending>,
    /// This host's receive state at its latest advertisement (the local direction's).
    pub receiver: Option<Receiving>,
    /// This host's sender counters (held back by the peer direction's window), in place:
    /// nearly every connection sends, and a box would cost more than it saves.
    rwnd: RwndCounters,
    /// Boxed: only connections whose reads were reported have one.
    pub reader: Option<Box<ReadStats>>,
    /// How long each limit held this host's window (from the first explained one).
    #[serde(skip)]
    pub limits: Option<LimitTimes>,
    /// Windows this host advertised (this host receives).
    pub local: Direction,
    /// Windows the peer advertised (this host sends).
    pub peer: Direction,
}

impl Conn {
    pub(super) fn new(id: ConnId, e: &Event, episode_cap: u32) -> Self {
        Conn {
            sk: match id {
                ConnId::Sock(sk) => sk,
                ConnId::Tuple(_) => 0,
            },
            tuple: FourTuple::of(e),
            pid: None,
            comm: None,
            first_ns: e.ts_ns,
            last_ns: e.ts_ns,
            open_ns: Moment::UNSET,
            close_ns: Moment::UNSET,
            close_state: None,
            snd_wscale: None,
            rcv_wscale: None,
            wscale_ok: None,
            advmss: None,
            rcvbuf: None,
            rcvbuf_locked: None,
            mss: None,
            sender: None,
            receiver: None,
            rwnd: RwndCounters::NONE,
            reader: None,
            limits: None,
            local: Direction::new(Side::Local, episode_cap),
            peer: Direction::new(Side::Peer, episode_cap),
        }
    }

    /// Its socket address (0: the kernel named none).
    pub(super) fn sk(&self) -> u64 {
        self.sk
    }

    /// What identifies it in the kernel's events.
    pub fn id(&self) -> ConnId {
        match self.sk {
            0 => ConnId::Tuple(self.tuple),
            sk => ConnId::Sock(sk),
        }
    }

    pub fn side(&self, side: Side) -> &Direction {
        match side {
            Side::Local => &self.local,
            Side::Peer => &self.peer,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Local => &mut self.local,
            Side::Peer => &mut self.peer,
        }
    }

    /// When its open was seen.
    pub fn open_ns(&self) -> Option<u64> {
        self.open_ns.get()
    }

    /// When it closed.
    pub fn close_ns(&self) -> Option<u64> {
        self.close_ns.get()
    }

    pub fn is_closed(&self) -> bool {
        self.close_ns().is_some()
    }

    /// Sender time limited by the peer's window while watched (kernel rwnd_limited delta).
    pub fn rwnd_limited_ms(&self) -> Option<u64> {
        self.rwnd.sampled().map(|c| c.limited_ms())
    }

    /// Share (0..=1) of the sender's busy time limited by the peer's window.
    pub fn rwnd_limited_share(&self) -> Option<f64> {
        self.rwnd.sampled().and_then(|c| c.share())
    }

    /// Share (0..=1) of the sender's busy time it waited for its own send buffer (the kernel's
    /// counts since the open).
    pub fn sndbuf_limited_share(&self) -> Option<f64> {
        self.busy_share(|l| l.sndbuf_limited_ms as f64)
    }

    /// Share (0..=1) of the sender's busy time the tracer found it waiting for its own send
    /// buffer (sampled; counted from the tracer's first sample, busy time from the open).
    pub fn buffer_wait_share(&self) -> Option<f64> {
        self.busy_share(|l| f64::from(l.buffer_wait_ms)).map(|share| share.min(1.0))
    }

    /// `ms(limits)` over the sender's busy time, when it was busy.
    fn busy_share(&self, ms: impl FnOnce(&SendLimits) -> f64) -> Option<f64> {
        let s = self.sender.as_ref()?;
        let limits = s.limits?;
        (s.busy_ms > 0).then(|| ms(&limits) / s.busy_ms as f64)
    }

    /// `now_ns`, or the close time for a closed connection: open episodes end there.
    pub fn until(&self, now_ns: u64) -> u64 {
        self.close_ns().unwrap_or(now_ns)
    }

    /// Apply one event of this connection; `names` interns process names. A closed connection
    /// only takes late identity details: its windows stay as they were at close.
    pub(super) fn apply(&mut self, e: &Event, names: &mut Names) {
        let ts = e.ts_ns;
        self.last_ns = self.last_ns.max(ts);
        if e.pid.is_some() {
            self.pid = e.pid;
        }
        if let Some(comm) = e.body.comm() {
            if self.comm.as_deref() != Some(comm) {
                self.comm = Some(names.intern(comm));
            }
        }
        if self.is_closed() {
            return;
        }
        match &e.body {
            Body::Window { side, window, local, sender, .. } => {
                self.side_mut(*side).window(ts, *window);
                if let Some(l) = local {
                    self.local.receiver_state(l);
                    self.held_by(ts, l);
                    self.receiver = Some(Receiving::of(l));
                }
                if let Some(s) = sender {
                    self.sender_sample(ts, s);
                }
            }
            Body::ZeroWindowStart { side, counted, local, sender } => {
                self.side_mut(*side).zero_start(ts, *counted);
                if let Some(l) = local {
                    self.local.receiver_state(l);
                    self.held_by(ts, l);
                    self.receiver = Some(Receiving::of(l));
                }
                if let Some(s) = sender {
                    self.sender_sample(ts, s);
                }
            }
            Body::ZeroWindowEnd { side, window, duration_ns } => {
                let first = self.first_ns;
                self.side_mut(*side).zero_end(ts, *window, *duration_ns, first);
            }
            Body::Inflight { window, sender } => {
                // Sent while the peer's window did not change: a no-op unless it is the first.
                self.peer.window(ts, *window);
                self.sender_sample(ts, sender);
            }
            Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, snd_wnd, unacked } => {
                // Persist probes go into the peer's window: they belong to the peer side.
                let probe = LastProbe {
                    ts_ns: ts,
                    probes_out: *probes_out,
                    backoff: *backoff,
                    rto_ms: *rto_ms,
                    next_probe_ms: *next_probe_ms,
                    snd_wnd: *snd_wnd,
                    unacked: *unacked,
                };
                self.peer.probe(ts, probe);
            }
            Body::RcvSpace { rcvbuf, rcvbuf_locked, .. } => {
                self.rcvbuf = Some(*rcvbuf);
                self.rcvbuf_locked = Some(*rcvbuf_locked);
            }
            Body::Read { bytes, reads, rate, comm, .. } => {
                let r = self.reader.get_or_insert_with(|| {
                    Box::new(ReadStats {
                        comm: names.intern(""),
                        pid: None,
                        bytes: 0,
                        reads: 0,
                        rate: 0.0,
                        last_ns: ts,
                    })
                });
                if !comm.is_empty() && *r.comm != **comm {
                    r.comm = names.intern(comm);
                }
                r.pid = e.pid.or(r.pid);
                r.bytes = r.bytes.saturating_add(*bytes);
                r.reads = r.reads.saturating_add(u64::from(*reads));
                r.rate = *rate;
                r.last_ns = ts;
            }
            Body::Drop { bytes, .. } => self.local.dropped(ts, *bytes),
            Body::Open { snd_wscale, rcv_wscale, wscale_ok, advmss, rcvbuf, .. } => {
                if self.open_ns().is_none() {
                    self.open_ns = Moment::of(Some(ts));
                }
                self.snd_wscale = Some(*snd_wscale);
                self.rcv_wscale = Some(*rcv_wscale);
                self.wscale_ok = Some(*wscale_ok);
                self.advmss = Some(*advmss);
                self.rcvbuf = Some(*rcvbuf);
                if self.mss.is_none() && *advmss > 0 {
                    self.mss = Some(*advmss);
                }
            }
            // Its name is taken above, like every event's.
            Body::Owner { .. } => {}
            Body::Close { from_state, .. } => {
                self.close_ns = Moment::of(Some(ts));
                self.close_state = Some(from_state.as_str().into());
                self.local.close(ts);
                self.peer.close(ts);
            }
        }
    }

    /// Closed without a close event (its socket address reappeared in a new open).
    pub(super) fn close_implicitly(&mut self, ts_ns: u64, why: &str) {
        if self.is_closed() {
            return;
        }
        self.close_ns = Moment::of(Some(ts_ns.max(self.first_ns)));
        self.close_state = Some(why.into());
        self.local.close(ts_ns);
        self.peer.close(ts_ns);
    }

    /// The limit of an explained local window holds from `ts` until the next one.
    fn held_by(&mut self, ts: u64, state: &LocalState) {
        let Some(choice) = &state.choice else { return };
        match &mut self.limits {
            Some(times) => times.change(ts, choice.limited_by),
            None => self.limits = Some(LimitTimes::new(ts, choice.limited_by)),
        }
    }

    /// The share of time each limit held this host's window, from the first explained window
    /// to `until_ns`, largest first (ties in the order of `Limit::ALL`).
    pub fn limit_shares(&self, until_ns: u64) -> Vec<(Limit, f64)> {
        self.limits.as_ref().map_or_else(Vec::new, |t| t.shares(until_ns))
    }

    fn sender_sample(&mut self, ts: u64, s: &SenderState) {
        if s.mss > 0 {
            self.mss = Some(s.mss);
        }
        self.rwnd.sample(ts, s);
        self.sender = Some(Sending::of(s));
    }
}

/// This host's send state at its latest sample, as the connection keeps it: what views,
/// summaries and alerts read later (the rwnd_limited counter is kept by `RwndCounters`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Sending {
    pub in_flight: u32,
    pub unsent: u32,
    pub mss: u32,
    pub srtt_us: u32,
    pub busy_ms: u64,
    pub limits: Option<SendLimits>,
}

impl Sending {
    fn of(s: &SenderState) -> Self {
        Sending {
            in_flight: s.in_flight,
            unsent: s.unsent,
            mss: s.mss,
            srtt_us: s.srtt_us,
            busy_ms: s.busy_ms,
            limits: s.limits,
        }
    }
}

/// This host's receive state at its latest advertisement, as the connection keeps it: a third
/// of the event's `LocalState`, as only these are read after the event.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Receiving {
    pub unread: u32,
    pub rcvbuf: u32,
    pub window_clamp: u32,
    /// What held the window, when the event explained it (`WindowChoice`).
    pub held: Option<WindowHeld>,
}

impl Receiving {
    fn of(l: &LocalState) -> Self {
        Receiving {
            unread: l.unread,
            rcvbuf: l.rcvbuf,
            window_clamp: l.window_clamp,
            held: l.choice.map(|c| WindowHeld {
                limited_by: c.limited_by,
                rcvbuf_locked: c.rcvbuf_locked,
                rmem_max: c.rmem_max,
            }),
        }
    }
}

/// Of a window's explanation, what is read after the event: the limit, and the two settings
/// behind a buffer at its maximum.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct WindowHeld {
    pub limited_by: Limit,
    pub rcvbuf_locked: bool,
    pub rmem_max: Option<u32>,
}

/// Time each limit held this host's window: the limit of each explained window holds until the
/// next one. The table of earlier limits is allocated at the first change (a window held by one
/// limit throughout needs none), in milliseconds to stay small.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitTimes {
    current: Limit,
    since_ns: u64,
    held_ms: Option<Box<[u32; Limit::ALL.len()]>>,
}

impl LimitTimes {
    fn new(ts_ns: u64, limit: Limit) -> Self {
        LimitTimes { current: limit, since_ns: ts_ns, held_ms: None }
    }

    fn change(&mut self, ts_ns: u64, limit: Limit) {
        if limit == self.current {
            return;
        }
        let held = self.held_ms.get_or_insert_with(|| Box::new([0; Limit::ALL.len()]));
        let ms = ts_ns.saturating_sub(self.since_ns) / 1_000_000;
        let slot = &mut held[self.current as usize];
        *slot = slot.saturating_add(u32::try_from(ms).unwrap_or(u32::MAX));
        self.current = limit;
        self.since_ns = self.since_ns.max(ts_ns);
    }

    fn shares(&self, until_ns: u64) -> Vec<(Limit, f64)> {
        let mut held: [u64; Limit::ALL.len()] = [0; Limit::ALL.len()];
        if let Some(earlier) = &self.held_ms {
            for (h, ms) in held.iter_mut().zip(earlier.iter()) {
                *h = u64::from(*ms) * 1_000_000;
            }
        }
        held[self.current as usize] += until_ns.saturating_sub(self.since_ns);
        let total: u64 = held.iter().sum();
        if total == 0 {
            return vec![(self.current, 1.0)];
        }
        let mut shares: Vec<(Limit, f64)> = Limit::ALL
            .iter()
            .zip(held)
            .filter(|(_, ns)| *ns > 0)
            .map(|(limit, ns)| (*limit, ns as f64 / total as f64))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        shares
    }
}
