//! The record the programs keep per socket: the filter verdict, the owning process, whether the
//! connection was reported, its open-time facts, and the last values sent, so that each hook
//! emits changes rather than one event per segment. Layout only: where it is stored and how it
//! is found is `socket`'s concern.
//!
//! The packet programs and the read hook share one record but run on different CPUs (a
//! segment's softirq, the reader's system call): the fields the read hook writes at every read
//! sit a cache line away from those the packet programs read at every segment, so that
//! neither side's cache line is taken from the other on each read.

/// Nothing advertised yet: the first window seen always counts as a change.
pub const UNSEEN: u32 = u32::MAX;

/// Bytes between the packet programs' fields and the read hook's, taken by the open-time facts:
/// at least a cache line, wherever the record starts in a line.
const SEPARATION: usize = 64;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockState {
    // --- Read at every segment by the packet programs, written when a value changes.
    /// Last raw (16-bit, unscaled) window this host put in a header; UNSEEN before the first.
    pub last_raw: u32,
    /// Last raw window reported, for the change threshold.
    pub last_reported: u32,
    /// Last raw window the peer advertised (UNSEEN before the first), and the last raw one
    /// reported.
    pub peer_raw: u32,
    pub peer_reported: u32,
    /// Largest raw window this host advertised: a quiet connection is reported once its window
    /// falls below CONFIG.report_below_pct of it.
    pub max_raw: u32,
    /// 1 once the connection was reported to the agent: its later events all go out.
    pub reported: u8,
    /// 1 when the port filter lets this socket through.
    pub ports_match: u8,
    /// 1 while the sender's send-buffer waits are measured at every segment from the peer
    /// (it was waiting, or its SO_SNDBUF is pinned and it was sending, at the last sample).
    pub buffer_watch: u8,
    /// An in-sequence PROTO_MEM drop happened: on a 6.6+ kernel the next zero window is the
    /// uncounted kind (used where icsk_ack.pending cannot be read at send time).
    pub nomem_pending: u8,
    pub sport: u16,
    pub dport: u16,
    pub _pad: u32,
    /// When the last peer event was sent (for periodic samples).
    pub peer_sample_ns: u64,
    /// Time the sender was found waiting for its own send buffer, and when that was last
    /// tested (peer_window).
    pub buffer_wait_ns: u64,
    pub buffer_seen_ns: u64,

    // --- Written once or rarely: the owner and the open-time facts.
    /// Open-time facts, kept for a connection reported later than its open: when it reached
    /// ESTABLISHED (0: before the tracer attached), from which state, and its receive buffer
    /// then. (The scales, MSS and scaling flag do not change after the handshake: a late open
    /// reads them when it is sent.)
    pub opened_ns: u64,
    /// cgroup v2 id of the owner, seen with it.
    pub cgroup: u64,
    pub comm: [u8; 16],
    /// Process that used the socket from process context; 0 while unknown.
    pub owner: u32,
    pub open_rcvbuf: u32,
    /// The service's port (the local one of an accepted connection, the remote one of a
    /// connection this host opened) for the host totals; 0 while unknown.
    pub service_port: u16,
    pub open_from: u8,
    pub _separation: [u8; SEPARATION - 43],

    // --- Written at every read by the read hook.
    /// Last rcvq_space.space and sk_rcvbuf reported.
    pub space: u32,
    pub rcvbuf: u32,
    /// Reading: copied_seq at the last read, bytes and calls since the last READ report.
    pub copied: u32,
    pub reads: u32,
    pub read_bytes: u64,
    pub read_since_ns: u64,
}

const _: () = assert!(
    core::mem::offset_of!(SockState, space) - core::mem::offset_of!(SockState, opened_ns)
        == SEPARATION
);
