//! Packet-level fallback for kernels without fentry and kprobes: a cgroup_skb egress program on
//! the cgroup-v2 root sees every segment a full TCP socket sends (data, pure ACKs, probes), with
//! the IP header at offset 0. It serves the signals the agent could not hook better
//! (the EGRESS map).
//!
//! Fidelity: the window is exact (it is the header). A zero-window probe is recognised on the
//! wire as a pure ACK with seq = snd_una - 1 while the peer window is zero (keepalives look the
//! same but never go out while data waits for a zero window); its probes_out/backoff are read
//! before the kernel counts this probe (`before_send` = 1).

use aya_ebpf::{
    bindings::__sk_buff,
    helpers::generated::{bpf_sk_fullsock, bpf_skc_to_tcp_sock},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use tracer_common::{
    config::{EGRESS_PROBE, EGRESS_WINDOW},
    event::HOOK_CGROUP_SKB,
};

use super::{probe0, window};
use crate::{
    maps::{global, EGRESS},
    read,
};

const IPPROTO_TCP: u8 = 6;
const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_ACK: u8 = 0x10;

/// Always lets the packet through: this program only observes.
#[cgroup_skb(egress)]
pub fn egress_skb(ctx: SkBuffContext) -> i32 {
    let _ = observe(&ctx);
    1
}

#[inline(always)]
fn observe(ctx: &SkBuffContext) -> Option<()> {
    let signals = *EGRESS.get(0)?;
    if signals == 0 {
        return None;
    }
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: the context pointer is valid for the program's run.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    // SAFETY: helpers that accept any socket pointer and return NULL when it is not a full TCP socket.
    let full = unsafe { bpf_sk_fullsock(sk) };
    if full.is_null() {
        return None;
    }
    // SAFETY: as above.
    let tp = unsafe { bpf_skc_to_tcp_sock(full.cast()) };
    if tp.is_null() {
        return None;
    }
    let sk_addr = tp as u64;

    // Direct packet access: the headers are in the linear part, and this runs per segment, so
    // no helper calls here. Every read is bounds-checked against data_end for the verifier.
    // SAFETY: the context pointer is valid; reads below are checked against data_end.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // Any TCP segment has at least 40 bytes of headers (IPv4 20 + TCP 20, or IPv6 40 + ...):
    // one check covers the IP header fields read here.
    if data + 40 > end {
        return None;
    }
    // SAFETY: data + 40 <= data_end was checked just above.
    let byte = |at: usize| unsafe { *((data + at) as *const u8) };
    let first = byte(0);
    let tcp = match first >> 4 {
        4 => {
            if byte(9) != IPPROTO_TCP {
                return None;
            }
            data + ((first & 0x0f) as usize) * 4
        }
        6 => {
            // Extension headers are not followed: TCP sockets do not send them by default.
            if byte(6) != IPPROTO_TCP {
                return None;
            }
            data + 40
        }
        _ => return None,
    };
    // seq (4..8), data offset (12), flags (13), window (14..16).
    if tcp + 16 > end {
        return None;
    }
    // SAFETY: tcp + 16 <= data_end was checked just above.
    let (seq, doff, flags, raw) = unsafe {
        (
            u32::from_be(core::ptr::read_unaligned((tcp + 4) as *const u32)),
            ((*((tcp + 12) as *const u8) >> 4) as u32) * 4,
            *((tcp + 13) as *const u8),
            u16::from_be(core::ptr::read_unaligned((tcp + 14) as *const u16)),
        )
    };
    if flags & TCP_FLAG_SYN != 0 {
        return None;
    }
    if signals & EGRESS_WINDOW != 0 {
        window::advertised(sk_addr, raw, HOOK_CGROUP_SKB);
    }
    if signals & EGRESS_PROBE != 0 && flags == TCP_FLAG_ACK {
        let payload = ctx.len().wrapping_sub((tcp - data) as u32 + doff);
        if payload == 0 {
            let snd_wnd = read::u32_field(sk_addr, global!(OFFSETS.snd_wnd));
            let snd_una = read::u32_field(sk_addr, global!(OFFSETS.snd_una));
            if snd_wnd == 0 && seq == snd_una.wrapping_sub(1) {
                let probes_out =
                    read::field(sk_addr, global!(OFFSETS.icsk_probes_out)).unwrap_or(0);
                let backoff = read::field(sk_addr, global!(OFFSETS.icsk_backoff)).unwrap_or(0);
                probe0::sent(sk_addr, HOOK_CGROUP_SKB, probes_out as u8, backoff as u8, 1);
            }
        }
    }
    Some(())
}
