//! Packet-level fallback for kernels without fentry and kprobes: a cgroup_skb egress program on
//! the cgroup-v2 root sees every segment a full TCP socket sends (data, pure ACKs, probes), with
//! the IP header at offset 0. It serves the signals the agent could not hook better
//! (SWITCHES[SWITCH_EGRESS]).
//!
//! Fidelity: the window is exact (it is the header). A zero-window probe is recognised on the
//! wire as a pure ACK with seq = snd_una - 1 while the peer window is zero and unsent data waits
//! (a keepalive has the same bytes, but goes out only with an empty write queue); its
//! probes_out/backoff are read before the kernel counts this probe (`before_send` = 1). The
//! urgent-mode probe (seq = snd_una) cannot be told from an ACK and is not reported.

use aya_ebpf::{macros::cgroup_skb, programs::SkBuffContext};
use tracer_common::{
    config::{EGRESS_PROBE, EGRESS_WINDOW, SWITCH_EGRESS},
    event::HOOK_CGROUP_SKB,
};

use super::{
    packet::{self, TCP_FLAGS_NO_ECN, TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN},
    probe0, window,
};
use crate::{
    maps::{global, SWITCHES},
    read, socket,
    state::UNSEEN,
};

/// Always lets the packet through: this program only observes.
#[cgroup_skb(egress)]
pub fn egress_skb(ctx: SkBuffContext) -> i32 {
    let _ = observe(&ctx);
    1
}

#[inline(always)]
fn observe(ctx: &SkBuffContext) -> Option<()> {
    let signals = *SWITCHES.get(SWITCH_EGRESS)?;
    if signals == 0 {
        return None;
    }
    let seg = packet::segment(ctx)?;
    // A SYN's window is never scaled.
    if seg.flags & TCP_FLAG_SYN != 0 {
        return None;
    }
    let sk = seg.sk;
    if seg.flags & TCP_FLAG_RST != 0 {
        if signals & EGRESS_WINDOW != 0 {
            window::reset_sent(sk, socket::local_existing(sk)?, seg.raw_window, HOOK_CGROUP_SKB);
            socket::reset_done(sk);
        }
        return None;
    }
    let st = socket::local(sk)?;
    if signals & EGRESS_WINDOW != 0 {
        window::advertised(sk, st, seg.raw_window, HOOK_CGROUP_SKB);
    }
    // A probe needs the peer's window at zero: the ingress program keeps the last one it saw
    // in this same record, so the socket's fields are read only then, not for every pure ACK.
    if signals & EGRESS_PROBE != 0
        && seg.flags & TCP_FLAGS_NO_ECN == TCP_FLAG_ACK
        && seg.payload == 0
        && (st.peer_raw == 0 || st.peer_raw == UNSEEN)
    {
        let snd_wnd = read::u32_field(sk, global!(OFFSETS.snd_wnd));
        let snd_una = read::u32_field(sk, global!(OFFSETS.snd_una));
        if snd_wnd == 0 && seg.seq == snd_una.wrapping_sub(1) && has_unsent(sk) {
            let probes_out = read::field(sk, global!(OFFSETS.icsk_probes_out)).unwrap_or(0);
            let backoff = read::field(sk, global!(OFFSETS.icsk_backoff)).unwrap_or(0);
            probe0::sent(sk, st, HOOK_CGROUP_SKB, probes_out as u8, backoff as u8, 1);
        }
    }
    Some(())
}

/// A persist probe needs a send head; a keepalive goes out only when write_seq == snd_nxt
/// (tcp_write_queue_empty).
#[inline(always)]
fn has_unsent(sk: u64) -> bool {
    read::u32_field(sk, global!(OFFSETS.write_seq)) != read::u32_field(sk, global!(OFFSETS.snd_nxt))
}
