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

    let version = ctx.load::<u8>(0).ok()? >> 4;
    let tcp_off = match version {
        4 => {
            if ctx.load::<u8>(9).ok()? != IPPROTO_TCP {
                return None;
            }
            ((ctx.load::<u8>(0).ok()? & 0x0f) as usize) * 4
        }
        6 => {
            // Extension headers are not followed: TCP sockets do not send them by default.
            if ctx.load::<u8>(6).ok()? != IPPROTO_TCP {
                return None;
            }
            40
        }
        _ => return None,
    };
    // seq (4..8), data offset (12), flags (13), window (14..16).
    let seq = u32::from_be(ctx.load::<u32>(tcp_off + 4).ok()?);
    let doff = ((ctx.load::<u8>(tcp_off + 12).ok()? >> 4) as u32) * 4;
    let flags = ctx.load::<u8>(tcp_off + 13).ok()?;
    let raw = u16::from_be(ctx.load::<u16>(tcp_off + 14).ok()?);
    if flags & TCP_FLAG_SYN != 0 {
        return None;
    }
    if signals & EGRESS_WINDOW != 0 {
        window::advertised(sk_addr, raw, HOOK_CGROUP_SKB);
    }
    if signals & EGRESS_PROBE != 0 && flags == TCP_FLAG_ACK {
        let payload = ctx.len().wrapping_sub(tcp_off as u32 + doff);
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
