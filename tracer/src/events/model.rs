//! The decoded event: what the kernel saw, per connection, in the form every later stage uses
//! (connection table, alerts, outputs, recordings). Serialised, it is the NDJSON of
//! `watch --json` and the body of a recording: field names are a contract (add, never rename).

use std::{net::IpAddr, sync::Arc};

use compact_str::CompactString;

use serde::{Deserialize, Serialize};

/// Who advertised the window: this host (`Local`) or the remote end (`Peer`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Local,
    Peer,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Peer => "peer",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Wall-clock time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    #[serde(flatten)]
    pub body: Body,
    /// This host's end of the connection.
    pub saddr: IpAddr,
    pub sport: u16,
    pub daddr: IpAddr,
    pub dport: u16,
    /// Process using the socket, when known.
    pub pid: Option<u32>,
    /// Kernel socket address: tells apart connections that reuse a 4-tuple. 0 when the kernel
    /// did not say which socket (a drop before socket lookup).
    #[serde(with = "hex_u64")]
    pub sk: u64,
    /// Names and other short strings are `CompactString`s: kept inline up to 24 bytes, so an
    /// event costs no allocation (the serialised form is a plain string either way).
    pub hook: CompactString,
}

/// This host's receive-side state when it advertised a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocalState {
    pub rcv_wnd: u32,
    /// Bytes received but not yet read by the application.
    pub unread: u32,
    pub rcvbuf: u32,
    pub rmem_alloc: u32,
    pub rcv_ssthresh: u32,
    pub window_clamp: u32,
    /// Why the window has this size, and the rest of what the kernel's choice depended on.
    /// Absent from recordings made before the tracer read them.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub choice: Option<WindowChoice>,
}

/// The kernel's window choice (`__tcp_select_window`, then tcp_select_window's no-shrink rule):
/// what held the window at its size, with the inputs that say so.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowChoice {
    pub limited_by: Limit,
    /// The window the kernel wanted before the no-shrink rule (bytes).
    pub wanted: u32,
    /// True when `wanted` is the kernel's own result (a hook on __tcp_select_window), false
    /// when the agent recomputed it from the socket's state as the segment left.
    pub wanted_exact: bool,
    /// The receiver's estimate of the peer's segment size (icsk_ack.rcv_mss), and this host's
    /// advertised MSS.
    pub rcv_mss: u32,
    pub advmss: u32,
    /// Bytes queued in the socket's backlog while the application held its lock.
    pub backlog: u32,
    /// SO_RCVBUF pinned the buffer: autotuning does not grow it.
    pub rcvbuf_locked: bool,
    /// TCP memory pressure was on.
    pub memory_pressure: bool,
    /// tcp_rmem[2] of the socket's network namespace, when known.
    pub rmem_max: Option<u32>,
    /// tp->scaling_ratio (6.6+): the share of buffer memory the kernel counts as window, /256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_ratio: Option<u8>,
}

/// What holds this host's advertised window at its size, in the kernel's order of tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// Unread bytes fill the buffer: the application is not reading fast enough.
    AppNotReading,
    /// rcv_ssthresh, which grows as data arrives, has not grown to the buffer yet.
    RcvSsthresh,
    /// window_clamp below what the buffer allows (TCP_WINDOW_CLAMP, SO_RCVLOWAT, a route's
    /// window metric).
    WindowClamp,
    /// The buffer is at its maximum: SO_RCVBUF pinned it, or it reached tcp_rmem[2].
    BufferMax,
    /// The buffer limits and autotuning may still grow it.
    BufferGrowing,
    /// TCP memory pressure (the rcv_ssthresh cut) or the out-of-memory zero window.
    MemoryPressure,
    /// Receiver-side silly-window avoidance: free space below the MSS or 1/16 of the buffer is
    /// advertised as 0.
    SillyWindow,
    /// The kernel wanted a smaller window but may not shrink an offer: an older, larger one is
    /// carried.
    NoShrink,
    /// The application read everything in order; out-of-order data waiting for a retransmission
    /// (or the backlog) holds the buffer.
    OutOfOrder,
    /// The header's 16-bit field at the window scale agreed at the handshake: without scaling,
    /// 64 KiB.
    ScaleCeiling,
}

impl Limit {
    pub const ALL: [Limit; 10] = [
        Limit::AppNotReading,
        Limit::RcvSsthresh,
        Limit::WindowClamp,
        Limit::BufferMax,
        Limit::BufferGrowing,
        Limit::MemoryPressure,
        Limit::SillyWindow,
        Limit::NoShrink,
        Limit::OutOfOrder,
        Limit::ScaleCeiling,
    ];

    /// The name in NDJSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::AppNotReading => "app_not_reading",
            Limit::RcvSsthresh => "rcv_ssthresh",
            Limit::WindowClamp => "window_clamp",
            Limit::BufferMax => "buffer_max",
            Limit::BufferGrowing => "buffer_growing",
            Limit::MemoryPressure => "memory_pressure",
            Limit::SillyWindow => "silly_window",
            Limit::NoShrink => "no_shrink",
            Limit::OutOfOrder => "out_of_order",
            Limit::ScaleCeiling => "scale_ceiling",
        }
    }

    /// A few words for a person.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::AppNotReading => "the application not reading",
            Limit::RcvSsthresh => "rcv_ssthresh, not grown yet",
            Limit::WindowClamp => "window_clamp",
            Limit::BufferMax => "the receive buffer at its maximum",
            Limit::BufferGrowing => "the receive buffer, not grown yet",
            Limit::MemoryPressure => "TCP memory pressure",
            Limit::SillyWindow => "silly-window avoidance (free space below one MSS)",
            Limit::NoShrink => "an older, larger offer (the window may not shrink)",
            Limit::OutOfOrder => "out-of-order data waiting for a retransmission",
            Limit::ScaleCeiling => "the most the header can carry at this window scale",
        }
    }
}

/// This host's send-side state when a segment from the peer arrived.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SenderState {
    /// Bytes sent and not yet acknowledged (snd_nxt - snd_una).
    pub in_flight: u32,
    /// Bytes the application has written that are not sent yet (write_seq - snd_nxt).
    pub unsent: u32,
    pub mss: u32,
    pub srtt_us: u32,
    /// Time this connection's sender spent stalled by the peer's window, and busy sending, since
    /// it opened (the kernel's tcp_info rwnd_limited and busy_time), in ms.
    pub rwnd_limited_ms: u64,
    pub busy_ms: u64,
    /// What else held the sender, and what it delivered. Absent from recordings made before
    /// the tracer read them.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<SendLimits>,
    /// What it sent, segment by segment. Absent from recordings made before the tracer read it.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<SentSegments>,
}

/// The sender's own limits and progress, next to the peer's window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SendLimits {
    /// Time it waited for its own send buffer (tcp_info sndbuf_limited), ms.
    pub sndbuf_limited_ms: u64,
    /// The send buffer (sk_sndbuf), and whether SO_SNDBUF pinned it.
    pub sndbuf: u32,
    pub sndbuf_locked: bool,
    /// The congestion window, in segments.
    pub cwnd: u32,
    /// Bytes the peer acknowledged since the open (tp->bytes_acked).
    pub bytes_acked: u64,
    /// The sender waits for its own send buffer right now (the application found it full,
    /// at least half of it in flight, neither window full), and the time it was found waiting
    /// since the tracer first sampled it, in ms (the tracer's own count: the kernel's
    /// sndbuf_limited misses most such waits). Absent from older recordings.
    #[serde(default)]
    pub buffer_waiting: bool,
    #[serde(default)]
    pub buffer_wait_ms: u32,
}

/// The sender's data segments since the open (tcp_info's bytes_sent and data_segs_out,
/// retransmissions included), the largest window the peer offered (tp->max_window), and the
/// MSS it announced.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentSegments {
    pub bytes_sent: u64,
    pub data_segs_out: u32,
    pub max_window: u32,
    /// The MSS the peer announced (tp->rx_opt.mss_clamp): `mss` is cut to half a small window.
    pub peer_mss: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// A window advertised by `side`, on change.
    Window {
        side: Side,
        /// Bytes after scaling.
        window: u32,
        raw_window: u16,
        wscale: u8,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        local: Option<LocalState>,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        sender: Option<SenderState>,
    },
    ZeroWindowStart {
        side: Side,
        /// False for the zero windows a 6.6+ kernel sets under memory pressure without counting
        /// them in TCPToZeroWindowAdv.
        counted: bool,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        local: Option<LocalState>,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        sender: Option<SenderState>,
    },
    ZeroWindowEnd {
        side: Side,
        window: u32,
        /// Null when the episode started before the tracer attached.
        duration_ns: Option<u64>,
    },
    /// Sender-side sample while data is in flight and the peer window did not change.
    Inflight {
        /// The peer's window (bytes after scaling).
        window: u32,
        #[serde(flatten)]
        sender: SenderState,
    },
    /// A zero-window probe this host sent.
    Probe {
        probes_out: u8,
        backoff: u8,
        rto_ms: Option<f64>,
        /// When the kernel probes again if this one is not answered.
        next_probe_ms: Option<f64>,
        snd_wnd: u32,
        unacked: u32,
    },
    RcvSpace {
        space: u32,
        rcvbuf: u32,
        window_clamp: u32,
        rcv_ssthresh: u32,
        rmem_alloc: u32,
        rcvbuf_locked: bool,
        comm: CompactString,
    },
    /// What the reading process consumed since the previous `read` event of this socket.
    Read {
        bytes: u64,
        reads: u32,
        interval_ns: u64,
        /// Bytes per second over the interval.
        rate: f64,
        comm: CompactString,
        /// The reading process's cgroup (v2 path), when it could be resolved; shared with the
        /// decoder's cache of paths.
        #[serde(default)]
        cgroup: Option<Arc<str>>,
        /// The receiver's round-trip estimate (tcp_info rcv_rtt), µs, once the kernel has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rcv_rtt_us: Option<u32>,
        /// The window this host offered at the report (tp->rcv_wnd), bytes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rcv_wnd: Option<u32>,
    },
    /// A segment this host dropped for lack of receive space.
    Drop {
        /// The kernel's drop reason, without the SKB_DROP_REASON_ prefix.
        reason: CompactString,
        bytes: u32,
    },
    Open {
        /// True when this host connected (its end is the client); false when it accepted.
        #[serde(default)]
        active: bool,
        snd_wscale: u8,
        rcv_wscale: u8,
        /// Both ends agreed to window scaling (RFC 7323); false means windows top out at 64 KiB.
        wscale_ok: bool,
        advmss: u32,
        rcvbuf: u32,
        comm: Option<CompactString>,
        /// Sent at the connection's first flow-control moment rather than at its open (a quiet
        /// connection, reported late); the time is still the open's.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        late: bool,
    },
    Close {
        from_state: CompactString,
        comm: Option<CompactString>,
    },
    /// A new process uses the socket (accept, or a read by a process not seen on it before).
    Owner {
        comm: CompactString,
        /// The process's cgroup (v2 path), when it could be resolved.
        #[serde(default)]
        cgroup: Option<Arc<str>>,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Window { .. } => "window",
            Body::ZeroWindowStart { .. } => "zero_window_start",
            Body::ZeroWindowEnd { .. } => "zero_window_end",
            Body::Inflight { .. } => "inflight",
            Body::Probe { .. } => "probe",
            Body::RcvSpace { .. } => "rcv_space",
            Body::Read { .. } => "read",
            Body::Drop { .. } => "drop",
            Body::Open { .. } => "open",
            Body::Close { .. } => "close",
            Body::Owner { .. } => "owner",
        }
    }

    /// The process name the event carries, if any.
    pub fn comm(&self) -> Option<&str> {
        let comm = match self {
            Body::Open { comm, .. } | Body::Close { comm, .. } => comm.as_deref()?,
            Body::RcvSpace { comm, .. } | Body::Read { comm, .. } | Body::Owner { comm, .. } => {
                comm.as_str()
            }
            _ => return None,
        };
        (!comm.is_empty()).then_some(comm)
    }
}

/// Socket addresses as "0x..." strings: JSON numbers lose precision past 2^53.
mod hex_u64 {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        let digits = text.strip_prefix("0x").unwrap_or(&text);
        u64::from_str_radix(digits, 16)
            .map_err(|e| D::Error::custom(format!("bad sk {text:?}: {e}")))
    }
}
