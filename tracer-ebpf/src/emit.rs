//! The only place that reserves ring-buffer space. A full ring is counted per event kind, never
//! dropped silently.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::event::{EventHeader, AF_INET6};

use crate::{
    maps::{global, EVENTS, LOST},
    read,
    state::SockState,
};

/// Submit without waking the reader: a wakeup per event costs ~1.4 us on the hot path; the agent
/// drains the ring on a short timer instead.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Header for an event about socket `sk`.
#[inline(always)]
pub fn header(kind: u16, hook: u8, sk: u64, state: &SockState) -> EventHeader {
    let family = read::field(sk, global!(OFFSETS.skc_family)).unwrap_or(0) as u8;
    let mut h = EventHeader {
        // SAFETY: helper without arguments.
        ts_ns: unsafe { bpf_ktime_get_ns() },
        sk,
        kind,
        hook,
        family,
        sport: state.sport,
        dport: state.dport,
        pid: state.owner,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    if family == AF_INET6 {
        let o = global!(OFFSETS.skc_v6_rcv_saddr);
        if o.offset != u32::MAX {
            h.saddr = read::bytes::<16>(sk + o.offset as u64);
        }
        let o = global!(OFFSETS.skc_v6_daddr);
        if o.offset != u32::MAX {
            h.daddr = read::bytes::<16>(sk + o.offset as u64);
        }
    } else {
        let s = read::field(sk, global!(OFFSETS.skc_rcv_saddr)).unwrap_or(0) as u32;
        let d = read::field(sk, global!(OFFSETS.skc_daddr)).unwrap_or(0) as u32;
        // The kernel stores them in network order: keep the bytes as they are.
        h.saddr[..4].copy_from_slice(&s.to_ne_bytes());
        h.daddr[..4].copy_from_slice(&d.to_ne_bytes());
    }
    h
}

/// Writes `event` to the ring, or counts it as lost under `kind`.
#[inline(always)]
pub fn send<T: 'static>(kind: u16, event: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(BPF_RB_NO_WAKEUP);
        }
        None => {
            if let Some(lost) = LOST.get_ptr_mut(kind as u32) {
                // SAFETY: per-CPU slot, no concurrent writer on this CPU.
                unsafe { *lost += 1 };
            }
        }
    }
}
