//! Per-socket state shared by all hooks: the filter verdict, the owning process, and the last
//! values sent, so that each hook emits changes rather than one event per segment.

use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
};

use tracer_common::event::{OwnerEvent, KIND_OWNER};

use crate::{
    emit,
    maps::{global, PORTS, SOCKS},
    read,
};

/// Nothing advertised yet: the first window seen always counts as a change.
pub const UNSEEN: u32 = u32::MAX;

#[repr(C)]
#[derive(Clone, Copy)]
pub struct SockState {
    /// Last raw (16-bit, unscaled) window this host put in a header; UNSEEN before the first.
    pub last_raw: u32,
    /// Last raw window reported, for the change threshold.
    pub last_reported: u32,
    /// Process that used the socket from process context; 0 while unknown.
    pub owner: u32,
    /// Last rcvq_space.space and sk_rcvbuf reported.
    pub space: u32,
    pub rcvbuf: u32,
    /// Last raw window the peer advertised (UNSEEN before the first), and the last raw one
    /// reported.
    pub peer_raw: u32,
    pub peer_reported: u32,
    /// When the last peer event was sent (for periodic samples).
    pub peer_sample_ns: u64,
    /// Reading: copied_seq at the last read, bytes and calls since the last READ report.
    pub copied: u32,
    pub reads: u32,
    pub read_bytes: u64,
    pub read_since_ns: u64,
    /// cgroup v2 id of the owner, seen with it.
    pub cgroup: u64,
    /// A PROTO_MEM drop happened: on a 6.6+ kernel the next zero window is the uncounted kind.
    pub nomem_pending: u8,
    pub sport: u16,
    pub dport: u16,
    /// 1 when the port filter lets this socket through.
    pub ports_match: u8,
    pub _pad: [u8; 2],
    pub comm: [u8; 16],
}

/// The state of socket `sk`, created on first sight.
#[inline(always)]
pub fn get(sk: u64) -> Option<&'static mut SockState> {
    if let Some(state) = SOCKS.get_ptr_mut(&sk) {
        // SAFETY: map values stay valid for the program's run; the LRU map never frees under us.
        return Some(unsafe { &mut *state });
    }
    let mut fresh = SockState {
        last_raw: UNSEEN,
        last_reported: UNSEEN,
        owner: 0,
        space: 0,
        rcvbuf: 0,
        peer_raw: UNSEEN,
        peer_reported: UNSEEN,
        peer_sample_ns: 0,
        copied: 0,
        reads: 0,
        read_bytes: 0,
        read_since_ns: 0,
        cgroup: 0,
        nomem_pending: 0,
        sport: 0,
        dport: 0,
        ports_match: 0,
        _pad: [0; 2],
        comm: [0; 16],
    };
    read_ports(sk, &mut fresh);
    SOCKS.insert(&sk, &fresh, 0).ok()?;
    // SAFETY: as above.
    SOCKS.get_ptr_mut(&sk).map(|state| unsafe { &mut *state })
}

/// Reads the socket's ports and applies the port filter. connect() reaches SYN_SENT before the
/// local port is chosen, so the connection's open calls this again.
#[inline(always)]
pub fn read_ports(sk: u64, state: &mut SockState) {
    let sport = read::field(sk, global!(OFFSETS.skc_num)).unwrap_or(0) as u16;
    let dport = u16::from_be(read::field(sk, global!(OFFSETS.skc_dport)).unwrap_or(0) as u16);
    state.sport = sport;
    state.dport = dport;
    state.ports_match = ports_match(sport, dport) as u8;
}

/// The --port filter: no filter, or either port in it.
#[inline(always)]
pub fn ports_match(sport: u16, dport: u16) -> bool {
    if global!(CONFIG.port_filter) == 0 {
        return true;
    }
    // SAFETY: lookups in a hash map of plain integers.
    unsafe { PORTS.get(&sport).is_some() || PORTS.get(&dport).is_some() }
}

/// The window-change filter: report when the window moved by at least 1/2^CONFIG.window_shift
/// of the last report, and always at zero / non-zero transitions. Callers pass raw (unscaled)
/// windows: the ratio is the same, and the scale need not be read for windows not reported.
#[inline(always)]
pub fn significant(window: u32, last_reported: u32, transition: bool) -> bool {
    let shift = global!(CONFIG.window_shift);
    if transition || shift == 0 || last_reported == UNSEEN {
        return true;
    }
    let delta =
        if window > last_reported { window - last_reported } else { last_reported - window };
    delta >= (last_reported >> (shift & 31))
}

/// Whether events of this socket pass the filters (ports now; process once it is known).
#[inline(always)]
pub fn wanted(state: &SockState) -> bool {
    if state.ports_match == 0 {
        return false;
    }
    let pid = global!(CONFIG.pid);
    pid == 0 || state.owner == pid
}

/// Records the current process as the socket's user; true when that is a new owner. Only call
/// from process context (a system call on the socket), where "current" really is the owner.
#[inline(always)]
pub fn learn_owner(state: &mut SockState) -> bool {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if state.owner == tgid {
        return false;
    }
    state.owner = tgid;
    if let Ok(comm) = bpf_get_current_comm() {
        state.comm = comm;
    }
    // SAFETY: helper without arguments.
    state.cgroup = unsafe { bpf_get_current_cgroup_id() };
    true
}

/// Learns the owner of socket `sk` as `learn_owner` does, and says so once per new owner: the
/// process is then named before it ever reads (a stuck reader sends no READ event). Not for
/// connect(), whose local port is not chosen yet: its open event names the process instead.
#[inline(always)]
pub fn learn_and_announce_owner(sk: u64, state: &mut SockState, hook: u8) {
    if learn_owner(state) && wanted(state) {
        emit::send(
            KIND_OWNER,
            OwnerEvent {
                header: emit::header(KIND_OWNER, hook, sk, state),
                comm: state.comm,
                cgroup: state.cgroup,
            },
        );
    }
}

pub fn forget(sk: u64) {
    let _ = SOCKS.remove(&sk);
}
