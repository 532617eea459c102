//! Hand-built events for the timeline and alert tests.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use crate::events::model::{Body, Event, LocalState, SendLimits, SenderState, Side};

/// One millisecond in nanoseconds.
pub const MS: u64 = 1_000_000;

/// This host's port for socket `sk` (the peer is 127.0.0.2:7777).
pub fn port_of(sk: u64) -> u16 {
    40000 + (sk % 20000) as u16
}

/// An event at `ts_ms` on socket `sk`, owned by pid 42.
pub fn at(ts_ms: u64, sk: u64, body: Body) -> Event {
    at_ns(ts_ms * MS, sk, body)
}

pub fn at_ns(ts_ns: u64, sk: u64, body: Body) -> Event {
    Event {
        ts_ns,
        body,
        saddr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        sport: port_of(sk),
        daddr: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        dport: 7777,
        pid: Some(42),
        sk,
        hook: "test".into(),
    }
}

/// A drop that names no socket, on the 4-tuple socket `like_sk` has.
pub fn drop_no_sk(ts_ms: u64, like_sk: u64, bytes: u32) -> Event {
    let mut e = at(ts_ms, like_sk, drop(bytes));
    e.sk = 0;
    e
}

pub fn open(wscale_ok: bool, advmss: u32) -> Body {
    Body::Open {
        active: false,
        snd_wscale: if wscale_ok { 7 } else { 0 },
        rcv_wscale: if wscale_ok { 7 } else { 0 },
        wscale_ok,
        advmss,
        rcvbuf: 131072,
        comm: Some("python3".into()),
        late: false,
    }
}

pub fn close() -> Body {
    Body::Close { from_state: "ESTABLISHED".into(), comm: None }
}

pub fn window(side: Side, window: u32) -> Body {
    Body::Window { side, window, raw_window: 0, wscale: 0, local: None, sender: None }
}

/// A window this host advertised, with its receive state.
pub fn local_window(window: u32, unread: u32, rcvbuf: u32) -> Body {
    Body::Window {
        side: Side::Local,
        window,
        raw_window: 0,
        wscale: 0,
        local: Some(local_state(window, unread, rcvbuf)),
        sender: None,
    }
}

/// A window the peer advertised, with this host's sender state.
pub fn peer_window(window: u32, sender: SenderState) -> Body {
    Body::Window {
        side: Side::Peer,
        window,
        raw_window: 0,
        wscale: 0,
        local: None,
        sender: Some(sender),
    }
}

pub fn local_state(window: u32, unread: u32, rcvbuf: u32) -> LocalState {
    LocalState {
        rcv_wnd: window,
        unread,
        rcvbuf,
        rmem_alloc: unread,
        rcv_ssthresh: rcvbuf / 2,
        window_clamp: rcvbuf / 2,
        choice: None,
    }
}

pub fn sender(in_flight: u32, unsent: u32, rwnd_limited_ms: u64, busy_ms: u64) -> SenderState {
    SenderState {
        in_flight,
        unsent,
        mss: 1448,
        srtt_us: 40_000,
        rwnd_limited_ms,
        busy_ms,
        limits: Some(SendLimits {
            sndbuf_limited_ms: 0,
            sndbuf: 87040,
            sndbuf_locked: false,
            cwnd: 10,
            bytes_acked: 0,
            buffer_waiting: false,
            buffer_wait_ms: 0,
        }),
        segments: None,
    }
}

pub fn zero_start(side: Side) -> Body {
    Body::ZeroWindowStart { side, counted: true, local: None, sender: None }
}

pub fn zero_start_local(unread: u32, rcvbuf: u32) -> Body {
    Body::ZeroWindowStart {
        side: Side::Local,
        counted: true,
        local: Some(local_state(0, unread, rcvbuf)),
        sender: None,
    }
}

pub fn zero_end(side: Side, window: u32, duration_ns: Option<u64>) -> Body {
    Body::ZeroWindowEnd { side, window, duration_ns }
}

pub fn inflight(window: u32, sender: SenderState) -> Body {
    Body::Inflight { window, sender }
}

pub fn probe(probes_out: u8, backoff: u8, next_probe_ms: f64) -> Body {
    Body::Probe {
        probes_out,
        backoff,
        rto_ms: Some(200.0),
        next_probe_ms: Some(next_probe_ms),
        snd_wnd: 0,
        unacked: 0,
    }
}

pub fn rcv_space(rcvbuf: u32, locked: bool) -> Body {
    Body::RcvSpace {
        space: rcvbuf / 2,
        rcvbuf,
        window_clamp: rcvbuf / 2,
        rcv_ssthresh: rcvbuf / 2,
        rmem_alloc: 0,
        rcvbuf_locked: locked,
        comm: "python3".into(),
    }
}

pub fn read(bytes: u64) -> Body {
    Body::Read {
        bytes,
        reads: 1,
        interval_ns: 100 * MS,
        rate: bytes as f64 * 10.0,
        comm: "reader".into(),
        cgroup: None,
        rcv_rtt_us: None,
        rcv_wnd: None,
    }
}

pub fn drop(bytes: u32) -> Body {
    Body::Drop { reason: "TCP_ZEROWINDOW".into(), bytes }
}

/// A random event: time step (ms), socket (0 = a drop naming no socket), kind, a flag, a
/// window or size, and a small number.
pub type RawEvent = (u64, u64, u8, bool, u32, u8);

/// A random event on one of a handful of sockets (0 = a drop naming no socket).
pub fn arb_event() -> impl Strategy<Value = RawEvent> {
    (
        0u64..400,
        0u64..6,
        0u8..11,
        any::<bool>(),
        prop_oneof![Just(0u32), 1u32..2000, 1u32..70000],
        0u8..12,
    )
}

/// Events from `arb_event` tuples, at non-decreasing times. Drops naming no socket use this
/// host's ports 40000..40002 (so they match sockets 1 and 2) when `drops_match`, else ports
/// no socket has.
pub fn build_events(raw: &[RawEvent], drops_match: bool) -> Vec<Event> {
    let mut ts = 0;
    raw.iter()
        .map(|&(dt, sk, kind, flag, w, small)| {
            ts += dt;
            let side = if flag { Side::Local } else { Side::Peer };
            let body = match kind {
                0 => open(flag, 1460),
                1 => close(),
                2 | 3 => window(side, w),
                4 => zero_start(side),
                5 => zero_end(side, w, flag.then_some(dt * MS)),
                6 => probe(small, small % 8, 200.0 * f64::from(1u32 << (small % 8))),
                7 => inflight(w, sender(w / 2, w, u64::from(small) * ts / 10, ts / 10 + 1)),
                8 => rcv_space(w, flag),
                9 => read(u64::from(w)),
                _ => drop(w),
            };
            let mut e = at(ts, sk, body);
            if sk == 0 {
                e.sk = 0;
                e.sport = if drops_match { 40000 } else { 39990 } + u16::from(small % 3);
            }
            e
        })
        .collect()
}
