//! What alerts say: one line of explanation naming the process and what is going on, and one
//! actionable fix, in the terms of `ss`, `nstat` and the sysctls an SRE would reach for.

use super::rules::{Info, ProbeSeen};
use super::Rule;
use crate::events::model::Side;
use crate::timeline::fmt::{bytes, duration_ms, endpoint, rate, who};

fn local(i: &Info) -> String {
    endpoint(&i.tuple.saddr, i.tuple.sport)
}

fn peer(i: &Info) -> String {
    endpoint(&i.tuple.daddr, i.tuple.dport)
}

fn peer_host(i: &Info) -> String {
    i.tuple.daddr.to_string()
}

/// The process owning the socket.
fn owner(i: &Info) -> String {
    who(i.comm.as_deref(), i.pid)
}

/// The process reading the socket: the one seen reading, else the owner.
fn reader(i: &Info) -> String {
    match &i.reader {
        Some((comm, pid)) => who(Some(comm), pid.or(i.pid)),
        None => owner(i),
    }
}

/// The reading program's name for a fix ("python3"), or "the application".
fn app(i: &Info) -> String {
    let name = i.reader.as_ref().map(|(c, _)| c.as_str()).or(i.comm.as_deref());
    name.filter(|c| !c.is_empty()).unwrap_or("the application").to_string()
}

fn kib(n: u32) -> String {
    bytes(u64::from(n))
}

/// "; 4.0 KiB sit unread in a 8.0 KiB buffer pinned by SO_RCVBUF", as far as known.
fn buffer_state(i: &Info) -> String {
    let pinned = if i.rcvbuf_locked == Some(true) { " pinned by SO_RCVBUF" } else { "" };
    match (i.unread, i.rcvbuf) {
        (Some(u), Some(b)) => format!("; {} sit unread in a {} buffer{pinned}", kib(u), kib(b)),
        (None, Some(b)) => format!("; its receive buffer is {}{pinned}", kib(b)),
        (Some(u), None) => format!("; {} sit unread", kib(u)),
        (None, None) => String::new(),
    }
}

/// zero_window_stall fired.
pub(super) fn stall(i: &Info, side: Side, zero_ms: u64) -> (String, String) {
    let d = duration_ms(zero_ms);
    match side {
        Side::Local if i.local_counted == Some(false) => {
            let explanation = format!(
                "{} on {} has advertised a zero window for {d} under TCP memory pressure (not \
                 counted in TCPToZeroWindowAdv){}: the host is short of TCP memory, and the \
                 sender at {} is stalled",
                reader(i),
                local(i),
                buffer_state(i),
                peer(i)
            );
            let fix = "TCP memory is exhausted on this host: compare net.ipv4.tcp_mem with the \
                       mem line of /proc/net/sockstat and find the sockets hoarding unread data \
                       (`ss -tm`, large Recv-Q); raising net.ipv4.tcp_mem only buys time"
                .to_string();
            (explanation, fix)
        }
        Side::Local => {
            let explanation = format!(
                "{} on {} has advertised a zero window for {d}: it is not reading{}, and the \
                 sender at {} is stalled",
                reader(i),
                local(i),
                buffer_state(i),
                peer(i)
            );
            let fix = if i.rcvbuf_locked == Some(true) {
                format!(
                    "make {} read faster, or remove its SO_RCVBUF setsockopt: the buffer is \
                     pinned{} and cannot autotune (net.ipv4.tcp_rmem does not apply); the \
                     network is not the problem",
                    app(i),
                    i.rcvbuf.map_or(String::new(), |b| format!(" at {}", kib(b)))
                )
            } else {
                format!(
                    "make {} read faster or in bigger chunks (the network is not the problem); \
                     if it reads in bursts, let the buffer grow: raise the max of \
                     net.ipv4.tcp_rmem and keep net.ipv4.tcp_moderate_rcvbuf=1",
                    app(i)
                )
            };
            (explanation, fix)
        }
        Side::Peer => {
            let waiting = i
                .unsent
                .filter(|&u| u > 0)
                .map_or(String::new(), |u| format!("; {} wait to be sent here", kib(u)));
            let probes = match i.episode_probes {
                0 => String::new(),
                n => format!("; {n} persist probe(s) sent so far"),
            };
            let explanation = format!(
                "the peer {} has advertised a zero window to {} on {} for {d}: the application \
                 reading on {} is not keeping up{waiting}{probes}",
                peer(i),
                owner(i),
                local(i),
                peer_host(i)
            );
            let fix = format!(
                "look at the receiving application on {}, not at the network or this host: \
                 `ss -tm` there shows its Recv-Q growing; make it read faster or give it more \
                 buffer (its net.ipv4.tcp_rmem, no SO_RCVBUF pin)",
                peer_host(i)
            );
            (explanation, fix)
        }
    }
}

/// zero_window_stall resolved: the window reopened.
pub(super) fn stall_resolved(i: &Info, side: Side, zero_ms: u64) -> String {
    let d = duration_ms(zero_ms);
    match side {
        Side::Local => {
            format!("{} on {} reopened its window after {d} at zero", reader(i), local(i))
        }
        Side::Peer => {
            format!("the peer {} reopened its window to {} after {d} at zero", peer(i), owner(i))
        }
    }
}

/// persist_backoff fired, by unanswered probes or by the probe interval.
pub(super) fn persist(i: &Info, p: &ProbeSeen, by_count: bool) -> (String, String) {
    let next = p.next_probe_ms.map(|ms| duration_ms(ms.max(0.0) as u64));
    if by_count {
        let explanation = format!(
            "{} on {} has {} zero-window probes to {} unanswered (backoff {}{}): the peer \
             keeps its window closed and does not even acknowledge the probes; it may be hung, \
             gone, or behind a middlebox that drops them",
            owner(i),
            local(i),
            p.probes_out,
            peer(i),
            p.backoff,
            next.map_or(String::new(), |n| format!(", next in {n}"))
        );
        let fix = format!(
            "check that {} is alive and its application reads (`ss -tm` there); the kernel \
             aborts after net.ipv4.tcp_retries2 unanswered probes: set TCP_USER_TIMEOUT in {} \
             to give up sooner",
            peer_host(i),
            app(i)
        );
        (explanation, fix)
    } else {
        let explanation = format!(
            "{} on {} now probes the zero window of {} only every {} (backoff {}): the window \
             has been closed a long time, and if the peer's window update is lost this host \
             waits that long to notice",
            owner(i),
            local(i),
            peer(i),
            next.unwrap_or_else(|| "?".into()),
            p.backoff
        );
        let fix = format!(
            "find why the application on {} stopped reading (`ss -tm` there: Recv-Q full); the \
             probe interval doubles per backoff up to TCP_RTO_MAX (120 s) and needs no tuning",
            peer_host(i)
        );
        (explanation, fix)
    }
}

pub(super) fn persist_resolved(i: &Info) -> String {
    format!("the peer {} reopened its window; {} stopped probing", peer(i), owner(i))
}

/// receiver_limited fired.
pub(super) fn receiver_limited(
    i: &Info,
    pct: f64,
    interval_ms: u64,
    limited_ms: u64,
) -> (String, String) {
    let data = match (i.in_flight, i.unsent) {
        (Some(f), Some(u)) => format!(" with {} in flight and {} waiting", kib(f), kib(u)),
        _ => String::new(),
    };
    let explanation = format!(
        "{} on {} sending to {} was held back by the peer's receive window {pct:.0}% of the \
         last {} ({}){data}: the receiver, not the network, sets the pace",
        owner(i),
        local(i),
        peer(i),
        duration_ms(interval_ms),
        duration_ms(limited_ms)
    );
    let fix = format!(
        "on {}: make the receiving application read faster or let its buffer grow \
         (net.ipv4.tcp_rmem max, no SO_RCVBUF pin, net.ipv4.tcp_window_scaling=1); `ss -ti` \
         here shows rwnd_limited growing",
        peer_host(i)
    );
    (explanation, fix)
}

pub(super) fn receiver_limited_resolved(i: &Info, pct: f64, interval_ms: u64) -> String {
    format!(
        "the peer's window limited {} on {} only {pct:.0}% of the last {}",
        owner(i),
        local(i),
        duration_ms(interval_ms)
    )
}

/// window_scaling_missing fired; `max_rate` is 64 KiB per smoothed RTT, bytes/s.
pub(super) fn scaling(i: &Info, max_rate: Option<f64>, at_ceiling: bool) -> (String, String) {
    let cap = match (i.srtt_us, max_rate) {
        (Some(us), Some(r)) => {
            format!(
                "; at srtt {:.1} ms that caps throughput at {}",
                f64::from(us) / 1000.0,
                rate(r)
            )
        }
        _ => "; that caps throughput at 64 KiB per round trip".to_string(),
    };
    let matters = if at_ceiling {
        "and the window has reached that ceiling"
    } else {
        "and the peer's window holds this sender back"
    };
    let explanation = format!(
        "{} on {} <-> {} negotiated no window scaling (RFC 7323), so neither side can advertise \
         more than 64 KiB, {matters}{cap}",
        owner(i),
        local(i),
        peer(i)
    );
    let fix = format!(
        "set net.ipv4.tcp_window_scaling=1 on both this host and {}, and check that nothing in \
         between strips the wscale option from SYNs (tcpdump the handshake: both SYNs should \
         show wscale); it applies to new connections only",
        peer_host(i)
    );
    (explanation, fix)
}

/// silly_window fired.
pub(super) fn silly(i: &Info, side: Side, window: u32, mss: u32, run: u64) -> (String, String) {
    let latest = format!("{run} in a row, latest {} < MSS {}", kib(window), kib(mss));
    match side {
        Side::Local => {
            let buffer = match (i.rcvbuf, i.rcvbuf_locked) {
                (Some(b), Some(true)) => {
                    format!("; its buffer is pinned at {} by SO_RCVBUF", kib(b))
                }
                (Some(b), _) => format!("; its buffer is {}", kib(b)),
                _ => String::new(),
            };
            let explanation = format!(
                "{} on {} keeps advertising windows smaller than one MSS to {} ({latest}): the \
                 peer can only send tiny segments (silly window syndrome){buffer}",
                reader(i),
                local(i),
                peer(i)
            );
            let fix = format!(
                "give the socket a receive buffer of many MSS (remove SO_RCVBUF or set it well \
                 above {}; net.ipv4.tcp_rmem) and have {} read in larger chunks",
                kib(mss),
                app(i)
            );
            (explanation, fix)
        }
        Side::Peer => {
            let explanation = format!(
                "the peer {} keeps advertising windows smaller than one MSS to {} on {} \
                 ({latest}): this host can only send tiny segments (silly window syndrome)",
                peer(i),
                owner(i),
                local(i)
            );
            let fix = format!(
                "on {}: give the receiving socket a bigger buffer and read in larger chunks; a \
                 stack without receiver-side silly-window avoidance (RFC 1122 4.2.3.3) \
                 advertises such windows",
                peer_host(i)
            );
            (explanation, fix)
        }
    }
}

pub(super) fn silly_resolved(i: &Info, side: Side, window: u32) -> String {
    match side {
        Side::Local => format!(
            "{} on {} advertises at least one MSS again ({})",
            reader(i),
            local(i),
            kib(window)
        ),
        Side::Peer => {
            format!("the peer {} advertises at least one MSS again ({})", peer(i), kib(window))
        }
    }
}

/// rcvbuf_pinned fired.
pub(super) fn pinned(i: &Info, at_zero: bool) -> (String, String) {
    let limit = if at_zero {
        "the window is zero".to_string()
    } else {
        match (i.local_window, i.mss) {
            (Some(w), Some(m)) => {
                format!("the window is down to {}, below one MSS ({})", kib(w), kib(m))
            }
            _ => "the window is below one MSS".to_string(),
        }
    };
    let unread = i.unread.map_or(String::new(), |u| format!(" with {} unread", kib(u)));
    let explanation = format!(
        "{} on {} pinned its receive buffer{} with SO_RCVBUF (autotuning off), and it now \
         limits the sender at {}: {limit}{unread}",
        reader(i),
        local(i),
        i.rcvbuf.map_or(String::new(), |b| format!(" at {}", kib(b))),
        peer(i)
    );
    let fix = format!(
        "remove the SO_RCVBUF setsockopt from {} (or raise it well above bandwidth x RTT) so \
         the kernel can autotune the buffer up to the max of net.ipv4.tcp_rmem \
         (net.ipv4.tcp_moderate_rcvbuf=1)",
        app(i)
    );
    (explanation, fix)
}

pub(super) fn pinned_resolved(i: &Info, quiet_ms: u64) -> String {
    format!(
        "the pinned buffer of {} on {} has not limited the window for {}",
        reader(i),
        local(i),
        duration_ms(quiet_ms)
    )
}

/// flow_control_drops fired on a drop of `size` bytes for `reason`.
pub(super) fn drops(i: &Info, reason: &str, size: u32) -> (String, String) {
    let why = match reason {
        "TCP_ZEROWINDOW" => ", it arrived while the window was zero",
        "TCP_OVERWINDOW" => ", it went beyond the advertised window",
        "PROTO_MEM" => ", TCP is short of memory host-wide",
        "TCP_OFO_QUEUE_PRUNE" => ", out-of-order data was pruned to free memory",
        "TCP_INVALID_SEQUENCE" | "TCP_INVALID_END_SEQUENCE" => {
            ", it went beyond the advertised window (TcpExtBeyondWindow)"
        }
        _ => "",
    };
    let explanation = format!(
        "{} on {} dropped a {} segment from {} for lack of receive space ({reason}{why}){}: \
         the peer has to retransmit it",
        reader(i),
        local(i),
        kib(size),
        peer(i),
        buffer_state(i)
    );
    let fix = if reason == "PROTO_MEM" {
        "TCP memory is exhausted on this host: compare net.ipv4.tcp_mem with the mem line of \
         /proc/net/sockstat and find sockets hoarding unread data (`ss -tm`, large Recv-Q)"
            .to_string()
    } else {
        format!(
            "make {} read faster or give it more buffer (remove SO_RCVBUF; raise the max of \
             net.ipv4.tcp_rmem); nstat TcpExtTCPZeroWindowDrop, TcpExtTCPRcvQDrop and \
             TcpExtPruneCalled count these host-wide",
            app(i)
        )
    };
    (explanation, fix)
}

pub(super) fn drops_resolved(i: &Info, drops: u64, dropped: u64, quiet_ms: u64) -> String {
    format!(
        "no drops on {} for {}; {drops} segment(s) ({}) were dropped while it lasted",
        local(i),
        duration_ms(quiet_ms),
        bytes(dropped)
    )
}

/// Any rule, resolved because the connection ended (`why`: close, superseded, evicted).
pub(super) fn ended(i: &Info, rule: Rule, why: &str) -> String {
    let how = match why {
        "close" => "closed".to_string(),
        "superseded" => {
            "ended (its socket was reused by a new connection; the close was not seen)".to_string()
        }
        "evicted" => {
            "is no longer tracked (evicted from the connection table at its live capacity)"
                .to_string()
        }
        other => other.to_string(),
    };
    format!(
        "{} ends: the connection {} > {} of {} {how}",
        rule.as_str(),
        local(i),
        peer(i),
        owner(i)
    )
}
