//! Host totals: what the kernel programs count for every connection, reported to the agent or
//! not. A quiet connection sends no event, so these counters are the only place it shows; the
//! agent sums the per-CPU values when Prometheus scrapes (HOST_TOTALS, PORT_TOTALS).

/// Connections established by connect() (SYN_SENT -> ESTABLISHED).
pub const TOTAL_OPENED_ACTIVE: u32 = 0;
/// Connections established by a listener (SYN_RECV -> ESTABLISHED).
pub const TOTAL_OPENED_PASSIVE: u32 = 1;
/// Established connections that closed (any state after ESTABLISHED -> CLOSE).
pub const TOTAL_CLOSED: u32 = 2;
/// This host advertised a zero window (the kernel's TCPToZeroWindowAdv moments).
pub const TOTAL_ZERO_WINDOW_LOCAL: u32 = 3;
/// A zero window under memory pressure that TCPToZeroWindowAdv does not count (6.6+).
pub const TOTAL_ZERO_WINDOW_UNCOUNTED: u32 = 4;
/// The peer advertised a zero window.
pub const TOTAL_ZERO_WINDOW_PEER: u32 = 5;
/// Zero-window probes this host sent.
pub const TOTAL_PROBES: u32 = 6;
/// Segments dropped for lack of receive space (the reasons the agent asked for).
pub const TOTAL_DROPS: u32 = 7;
/// Connections reported to the agent (from their open, or from their first flow-control moment).
pub const TOTAL_REPORTED: u32 = 8;
pub const TOTAL_SLOTS: u32 = 9;
/// HOST_TOTALS holds the host's totals at TOTAL_*, then at OTHER_PORTS + TOTAL_* what ports
/// that found PORT_TOTALS full counted.
pub const OTHER_PORTS: u32 = TOTAL_SLOTS;
pub const HOST_TOTAL_SLOTS: u32 = 2 * TOTAL_SLOTS;

/// One port's totals in PORT_TOTALS, indexed by TOTAL_*. The port is the service's: the local
/// port of an accepted connection, the remote port of one this host opened; 0 when unknown (a
/// connection opened before the tracer attached, or a drop without a socket).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PortTotals {
    pub counts: [u64; TOTAL_SLOTS as usize],
}

impl PortTotals {
    pub const ZERO: PortTotals = PortTotals { counts: [0; TOTAL_SLOTS as usize] };
}

#[cfg(feature = "user")]
// SAFETY: plain old data, no padding.
unsafe impl aya::Pod for PortTotals {}
