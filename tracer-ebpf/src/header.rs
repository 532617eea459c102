//! The header every event about a socket starts with: when, which socket, which two ends, and
//! the process the programs know for it.

use aya_ebpf::helpers::bpf_ktime_get_ns;
use tracer_common::event::{EventHeader, AF_INET6};

use crate::{maps::global, read, state::SockState};

/// Header for an event about socket `sk`.
#[inline(always)]
pub fn for_socket(kind: u16, hook: u8, sk: u64, state: &SockState) -> EventHeader {
    let mut h = EventHeader {
        ts_ns: 0,
        sk: 0,
        kind: 0,
        hook: 0,
        family: 0,
        sport: 0,
        dport: 0,
        pid: 0,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    write_for_socket(&mut h, kind, hook, sk, state);
    h
}

/// Fills a zeroed header in place (in a ring-buffer record): no copy on the BPF stack.
#[inline(always)]
pub fn write_for_socket(h: &mut EventHeader, kind: u16, hook: u8, sk: u64, state: &SockState) {
    let family = read::field(sk, global!(OFFSETS.skc_family)).unwrap_or(0) as u8;
    // SAFETY: helper without arguments.
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.sk = sk;
    h.kind = kind;
    h.hook = hook;
    h.family = family;
    h.sport = state.sport;
    h.dport = state.dport;
    h.pid = state.owner;
    if family == AF_INET6 {
        let o = global!(OFFSETS.skc_v6_rcv_saddr);
        if o.offset != u32::MAX {
            read::bytes_into(&mut h.saddr, sk + o.offset as u64);
        }
        let o = global!(OFFSETS.skc_v6_daddr);
        if o.offset != u32::MAX {
            read::bytes_into(&mut h.daddr, sk + o.offset as u64);
        }
    } else {
        // The kernel stores them in network order: keep the bytes as they are.
        if let Some(saddr) = h.saddr.first_chunk_mut::<4>() {
            read::bytes_into(saddr, sk + global!(OFFSETS.skc_rcv_saddr).offset as u64);
        }
        if let Some(daddr) = h.daddr.first_chunk_mut::<4>() {
            read::bytes_into(daddr, sk + global!(OFFSETS.skc_daddr).offset as u64);
        }
    }
}
