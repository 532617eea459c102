//! Run-time settings handed to the kernel programs at load time (read-only globals).

/// Indexes of the SWITCHES map: choices the agent makes after it learns which hooks attached.
/// The signals the cgroup_skb egress program (the packet-level fallback) serves: EGRESS_* bits.
pub const SWITCH_EGRESS: u32 = 0;
/// 1 when a hook at the end of each read (sock:sock_recv_length, or fexit tcp_recvmsg) counts
/// reads and compares the buffer; 0 when tcp_rcv_space_adjust does (copied_seq).
pub const SWITCH_RECV_LENGTH: u32 = 1;
/// 1 when the send_check hook (fentry or kprobe) counts the probe segments tcp_send_probe0
/// sends; 0 when the probe hook must infer one probe from icsk_probes_out.
pub const SWITCH_SEND_CHECK: u32 = 2;
pub const SWITCH_COUNT: u32 = 3;
pub const EGRESS_WINDOW: u32 = 1 << 0;
pub const EGRESS_PROBE: u32 = 1 << 1;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Only sockets owned by this process (tgid); 0 = any.
    pub pid: u32,
    /// 1 when the PORTS map holds a port filter (a socket matches if either port is in it).
    pub port_filter: u8,
    /// Window changes smaller than 1/2^window_shift of the last reported window are not
    /// reported (zero / non-zero transitions always are); 0 reports every change.
    pub window_shift: u8,
    /// Bits: NOMEM_PATH (the kernel has the uncounted out-of-memory zero window, 6.6+).
    pub kernel_features: u8,
    /// Offset of `ret` in the syscalls:sys_exit_accept* tracepoint record (from its format file).
    pub accept_ret_offset: u16,
    /// The kernel's ICSK_ACK_NOMEM bit of icsk_ack.pending (6.6+); 0 where it does not exist.
    pub icsk_ack_nomem: u8,
    /// 1: every connection is reported from its open (a filter is set, or the operator asked
    /// for every connection). 0: a connection is reported from its first flow-control moment.
    pub every_connection: u8,
    /// A quiet connection is reported once the window it advertises falls below this percentage
    /// of the largest it advertised (zero windows always count).
    pub report_below_pct: u8,
    pub _pad2: [u8; 3],
}

impl Config {
    pub const DEFAULT: Config = Config {
        pid: 0,
        port_filter: 0,
        window_shift: 0,
        kernel_features: 0,
        accept_ret_offset: 16,
        icsk_ack_nomem: 0,
        every_connection: 1,
        report_below_pct: DEFAULT_REPORT_BELOW_PCT,
        _pad2: [0; 3],
    };
}

/// Default of `Config::report_below_pct`: a window that fell below half its own maximum.
pub const DEFAULT_REPORT_BELOW_PCT: u8 = 50;

const _: () = assert!(core::mem::size_of::<Config>() == 16);

#[cfg(feature = "user")]
// SAFETY: plain old data with explicit padding.
unsafe impl aya::Pod for Config {}

pub const NOMEM_PATH: u8 = 1 << 0;

/// Sizes of the kernel maps; the agent may override them.
pub const RING_BYTES: u32 = 8 << 20;
/// Entries of the per-socket hash every program keeps its state in (the packet and fentry
/// programs put sockets past it in sk_storage): a ceiling, not a reservation (the map is not
/// preallocated), sized for a million sockets.
pub const MAX_SOCKETS: u32 = 1 << 20;
/// Indexes of the COUNTS map: things the kernel programs could not do, shown to the user.
/// A socket not traced by the tracepoint programs because the per-socket hash was full.
pub const COUNT_TABLE_FULL: u32 = 0;
pub const COUNT_SLOTS: u32 = 1;
/// Entries of the per-port host totals (PORT_TOTALS).
pub const MAX_TOTAL_PORTS: u32 = 1024;
pub const MAX_PORTS: u32 = 64;
pub const MAX_DROP_REASONS: u32 = 16;

/// DROP_REASONS values: what the kernel programs do with a drop of that reason besides
/// reporting it.
pub const DROP_CLASS_OTHER: u8 = 1;
/// PROTO_MEM: on 6.6+ an in-sequence one precedes an uncounted zero window.
pub const DROP_CLASS_PROTO_MEM: u8 = 2;
/// TCP_INVALID_SEQUENCE / TCP_INVALID_END_SEQUENCE on 6.17+: data beyond the advertised window,
/// dropped before the header is pulled; RSTs with these reasons are not reported.
pub const DROP_CLASS_BEYOND_WINDOW: u8 = 3;
