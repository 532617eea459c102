//! The header every event about a socket starts with: when, which socket, which two ends, and
//! the process the programs know for it.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::event::{EventHeader, AF_INET6};

use crate::{maps::global, read, state::SockState};

/// Header for an event about socket `sk`.
#[inline(always)]
pub fn for_socket(kind: u16, hook: u8, sk: u64, state: &SockState) -> EventHeader {
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
