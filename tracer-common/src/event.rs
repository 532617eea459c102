//! The events the kernel programs put in the ring buffer. Each record starts with an
//! [`EventHeader`]; its `kind` says which struct the whole record is. Kind numbers are stable and
//! never reused.

pub const KIND_WINDOW: u16 = 1;
pub const KIND_PROBE: u16 = 2;
pub const KIND_RCV_SPACE: u16 = 3;
pub const KIND_OPEN: u16 = 4;
pub const KIND_CLOSE: u16 = 5;
pub const KIND_PEER: u16 = 6;
pub const KIND_DROP: u16 = 7;
pub const KIND_READ: u16 = 8;
pub const KIND_OWNER: u16 = 9;
/// One past the largest kind: the size of the per-kind loss counters.
pub const KIND_COUNT: u32 = 10;

/// Which kind of hook produced an event.
pub const HOOK_FENTRY: u8 = 1;
pub const HOOK_FEXIT: u8 = 2;
pub const HOOK_KPROBE: u8 = 3;
pub const HOOK_KRETPROBE: u8 = 4;
pub const HOOK_CGROUP_SKB: u8 = 5;
pub const HOOK_RAW_TP: u8 = 6;
pub const HOOK_TRACEPOINT: u8 = 7;

/// `WindowEvent::transition`: the kernel's TCPToZeroWindowAdv / TCPFromZeroWindowAdv moments.
pub const TRANSITION_NONE: u8 = 0;
pub const TRANSITION_TO_ZERO: u8 = 1;
pub const TRANSITION_FROM_ZERO: u8 = 2;
/// To zero on the 6.6+ out-of-memory path (ICSK_ACK_NOMEM), which the kernel does not count in
/// TCPToZeroWindowAdv.
pub const TRANSITION_TO_ZERO_UNCOUNTED: u8 = 3;

pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// `LifecycleEvent::oldstate` / `newstate`: the kernel's TCP states (include/net/tcp_states.h),
/// the same on every kernel.
pub const TCP_ESTABLISHED: u8 = 1;
pub const TCP_SYN_SENT: u8 = 2;
pub const TCP_SYN_RECV: u8 = 3;
pub const TCP_FIN_WAIT1: u8 = 4;
pub const TCP_FIN_WAIT2: u8 = 5;
pub const TCP_TIME_WAIT: u8 = 6;
pub const TCP_CLOSE: u8 = 7;
pub const TCP_CLOSE_WAIT: u8 = 8;
pub const TCP_LAST_ACK: u8 = 9;
pub const TCP_LISTEN: u8 = 10;
pub const TCP_CLOSING: u8 = 11;
pub const TCP_NEW_SYN_RECV: u8 = 12;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EventHeader {
    /// CLOCK_MONOTONIC, nanoseconds (bpf_ktime_get_ns).
    pub ts_ns: u64,
    /// Kernel address of the socket: the connection's identity while it lives.
    pub sk: u64,
    pub kind: u16,
    pub hook: u8,
    pub family: u8,
    /// Host byte order.
    pub sport: u16,
    pub dport: u16,
    /// Process (tgid) seen using the socket; 0 while unknown.
    pub pid: u32,
    pub _pad: u32,
    /// IPv4 addresses use the first 4 bytes (network order).
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
}

/// The receive window this host advertised, as it left in a segment header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WindowEvent {
    pub header: EventHeader,
    /// Bytes after scaling: `raw << wscale`.
    pub window: u32,
    /// The 16-bit value in the TCP header.
    pub raw: u16,
    pub wscale: u8,
    pub transition: u8,
    /// tp->rcv_wnd after selection (bytes, before the 16-bit clamp).
    pub rcv_wnd: u32,
    /// Bytes received but not yet read by the application (rcv_nxt - copied_seq).
    pub unread: u32,
    pub rcvbuf: u32,
    pub rmem_alloc: u32,
    pub rcv_ssthresh: u32,
    pub window_clamp: u32,
    /// The inputs of the kernel's window choice (`__tcp_select_window`) besides those above, so
    /// that the agent can say what limits the window: icsk_ack.rcv_mss and tp->advmss.
    pub rcv_mss: u16,
    pub advmss: u16,
    /// sk_backlog.len: bytes queued while the application held the socket lock.
    pub backlog: u32,
    /// tcp_rmem[2] of the socket's network namespace (0 when unknown).
    pub rmem_max: u32,
    /// `__tcp_select_window()`'s own result before the no-shrink rule and scaling, where a hook
    /// on it runs (WINDOW_WANTED set); else 0.
    pub wanted: u32,
    /// WINDOW_* bits.
    pub flags: u8,
    /// tp->scaling_ratio (6.6+: tcp_win_from_space uses it); 0 where the kernel has none.
    pub scaling_ratio: u8,
    /// net.ipv4.tcp_adv_win_scale of the socket's namespace (tcp_win_from_space before 6.6).
    pub adv_win_scale: i8,
    pub _pad: u8,
    pub _pad2: u32,
}

/// `WindowEvent::flags`.
/// SO_RCVBUF pinned the buffer (SOCK_RCVBUF_LOCK): autotuning does not grow it.
pub const WINDOW_RCVBUF_LOCKED: u8 = 1 << 0;
/// TCP memory pressure (the protocol's memory_pressure flag) was on.
pub const WINDOW_MEMORY_PRESSURE: u8 = 1 << 1;
/// The 6.6+ out-of-memory zero window (ICSK_ACK_NOMEM): the kernel forced the window to zero.
pub const WINDOW_NOMEM: u8 = 1 << 2;
/// `wanted` holds the kernel's own result.
pub const WINDOW_WANTED: u8 = 1 << 3;
/// net.ipv4.tcp_shrink_window is on in the socket's namespace (6.5+, 6.1.59+).
pub const WINDOW_SHRINK_ALLOWED: u8 = 1 << 4;
/// rmem_max and adv_win_scale were read from the socket's namespace.
pub const WINDOW_NETNS: u8 = 1 << 5;

/// A zero-window probe this host sent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProbeEvent {
    pub header: EventHeader,
    pub probes_out: u8,
    pub backoff: u8,
    /// 1 when probes_out/backoff were read as the probe left, before the kernel counted it
    /// (packet-level fallback); the agent adjusts them so every hook reports the same thing.
    pub before_send: u8,
    pub _pad: u8,
    pub rto_jiffies: u32,
    /// Peer window (bytes after scaling).
    pub snd_wnd: u32,
    pub snd_una: u32,
    pub snd_nxt: u32,
    pub _pad2: u32,
}

/// Receive-buffer autotuning state, sent when any value changes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RcvSpaceEvent {
    pub header: EventHeader,
    /// tp->rcvq_space.space: bytes the application read in the last RTT, as the kernel measures.
    pub space: u32,
    pub rcvbuf: u32,
    pub window_clamp: u32,
    pub rcv_ssthresh: u32,
    pub rmem_alloc: u32,
    /// 1 when SO_RCVBUF pinned the buffer (SOCK_RCVBUF_LOCK): autotuning is off.
    pub locked: u8,
    pub _pad: [u8; 3],
    /// Command name of the reading process.
    pub comm: [u8; 16],
}

/// Connection opened (KIND_OPEN) or closed (KIND_CLOSE).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LifecycleEvent {
    pub header: EventHeader,
    pub oldstate: u8,
    pub newstate: u8,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    pub advmss: u32,
    pub rcvbuf: u32,
    /// 1 when both ends agreed to window scaling.
    pub wscale_ok: u8,
    /// 1 for an open sent late, at the connection's first flow-control moment (a quiet
    /// connection): the header's time is still the open's.
    pub deferred: u8,
    pub _pad: [u8; 2],
    pub comm: [u8; 16],
}

/// The window the peer advertised in a segment this host received, with this host's send state.
/// Sent when the window changes, and every PEER_SAMPLE_NS while data is in flight.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PeerEvent {
    pub header: EventHeader,
    /// Bytes after scaling: `raw << wscale`.
    pub window: u32,
    pub raw: u16,
    pub wscale: u8,
    pub transition: u8,
    /// 1 when the window did not change (a periodic sample).
    pub periodic: u8,
    pub _pad: [u8; 3],
    pub in_flight: u32,
    pub unsent: u32,
    pub mss: u32,
    pub srtt_us: u32,
    /// tcp_info's rwnd_limited and busy_time, in jiffies.
    pub rwnd_limited_jiffies: u32,
    pub busy_jiffies: u32,
    /// tcp_info's sndbuf_limited: time the sender waited for its own send buffer, in jiffies.
    pub sndbuf_limited_jiffies: u32,
    /// sk_sndbuf and the congestion window (segments).
    pub sndbuf: u32,
    pub snd_cwnd: u32,
    /// 1 when SO_SNDBUF pinned the send buffer (SOCK_SNDBUF_LOCK).
    pub sndbuf_locked: u8,
    /// 1 when the sender waits for its own send buffer right now: the application found it
    /// full (SOCK_NOSPACE), at least half of what it holds is in flight, and neither the
    /// congestion window nor the peer's window is full.
    pub buffer_waiting: u8,
    pub _pad2: [u8; 2],
    /// tp->bytes_acked: bytes the peer acknowledged since the open (the delivery rate's count).
    pub bytes_acked: u64,
    /// tp->bytes_sent and tp->data_segs_out: data bytes and segments sent since the open,
    /// retransmissions included (tcp_info's; the mean segment size between two samples).
    pub bytes_sent: u64,
    pub data_segs_out: u32,
    /// tp->max_window: the largest window the peer offered.
    pub max_window: u32,
    /// tp->rx_opt.mss_clamp: the MSS the peer announced (`mss` is mss_cache, which the kernel
    /// cuts to half the largest window when the peer's window is small).
    pub mss_clamp: u16,
    pub _pad3: [u8; 2],
    /// Time the sender waited for its own send buffer since the tracer first tested it, in
    /// ms: each test that finds it waiting counts the time since the previous test.
    pub buffer_wait_ms: u32,
}

/// A segment dropped for lack of receive space (kfree_skb with one of the reasons the agent
/// asked for). The header's addresses are this host's view even when the socket is unknown
/// (sk = 0): they then come from the packet, reversed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct DropEvent {
    pub header: EventHeader,
    /// The kernel's `enum skb_drop_reason` value (numbers differ between kernels).
    pub reason: u32,
    /// Payload bytes of the dropped segment.
    pub bytes: u32,
}

/// What the reading process consumed since the last READ event of this socket.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReadEvent {
    pub header: EventHeader,
    pub bytes: u64,
    pub interval_ns: u64,
    pub reads: u32,
    /// The receiver's round-trip estimate (tcp_info's rcv_rtt, tp->rcv_rtt_est), microseconds;
    /// 0 before the kernel has one.
    pub rcv_rtt_us: u32,
    pub comm: [u8; 16],
    /// cgroup v2 id of the reading process (the inode of its cgroup directory).
    pub cgroup: u64,
    /// tp->rcv_wnd at the report: the window this host offers (bytes).
    pub rcv_wnd: u32,
    pub _pad: u32,
}

/// The socket has a new owner: the process seen using it from a system call (connect, accept,
/// a read). Sent once per owner, so that the process is named before it ever reads: a reader
/// that is stuck never sends a READ event.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OwnerEvent {
    pub header: EventHeader,
    pub comm: [u8; 16],
    /// cgroup v2 id of the process (the inode of its cgroup directory).
    pub cgroup: u64,
}

/// Periodic peer samples while data is in flight, and read-rate reports, at most this often.
pub const PEER_SAMPLE_NS: u64 = 500_000_000;
pub const READ_REPORT_NS: u64 = 1_000_000_000;

const _: () = assert!(core::mem::size_of::<PeerEvent>() == 152);
const _: () = assert!(core::mem::size_of::<DropEvent>() == 72);
const _: () = assert!(core::mem::size_of::<ReadEvent>() == 120);
const _: () = assert!(core::mem::size_of::<EventHeader>() == 64);
const _: () = assert!(core::mem::size_of::<OwnerEvent>() == 88);
const _: () = assert!(core::mem::size_of::<WindowEvent>() == 120);
const _: () = assert!(core::mem::size_of::<ProbeEvent>() == 88);
const _: () = assert!(core::mem::size_of::<RcvSpaceEvent>() == 104);
const _: () = assert!(core::mem::size_of::<LifecycleEvent>() == 96);
