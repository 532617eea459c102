//! The window the peer advertises, from the header of every segment this host receives: a
//! cgroup_skb ingress program on the cgroup-v2 root, which runs before TCP processes the segment.
//! (tcp:tcp_probe was the first choice, but 6.18 fires it for data segments only, not for the
//! pure ACKs that carry a sender's peer window.) Sent on change (zero / non-zero transitions
//! always), and as a periodic sample of this host's send state while data is in flight.

use aya_ebpf::{
    helpers::{bpf_jiffies64, generated::bpf_ktime_get_coarse_ns},
    macros::cgroup_skb,
    programs::SkBuffContext,
};
use tracer_common::{
    event::{
        PeerEvent, HOOK_CGROUP_SKB, KIND_PEER, PEER_SAMPLE_NS, TRANSITION_FROM_ZERO,
        TRANSITION_NONE, TRANSITION_TO_ZERO,
    },
    offsets::FieldLoc,
    totals::TOTAL_ZERO_WINDOW_PEER,
};

use super::packet::{self, Segment, TCP_FLAG_ACK, TCP_FLAG_RST, TCP_FLAG_SYN};
use crate::{emit, filter, header, maps::global, read, report, socket, state::SockState, totals};

/// enum tcp_chrono: the sender is stalled by the receive window.
const TCP_CHRONO_RWND_LIMITED: u64 = 2;
const TCP_CHRONO_SNDBUF_LIMITED: u64 = 3;
/// include/linux/net.h: the bit of socket.flags set when a sender found no space.
const SOCK_NOSPACE: u64 = 2;

/// Always lets the packet through: this program only observes. Reads the socket by plain loads
/// through the BTF pointer `packet::segment` gets.
#[cgroup_skb(ingress)]
pub fn ingress_skb(ctx: SkBuffContext) -> i32 {
    observe::<true>(&ctx);
    1
}

/// The same program reading the socket through bpf_probe_read_kernel: the agent's fallback for a
/// kernel whose verifier refuses one of `ingress_skb`'s loads.
#[cgroup_skb(ingress)]
pub fn ingress_read(ctx: SkBuffContext) -> i32 {
    observe::<false>(&ctx);
    1
}

#[inline(always)]
fn observe<const DIRECT: bool>(ctx: &SkBuffContext) {
    if let Some(seg) = packet::segment(ctx) {
        // A SYN's window is never scaled; an RST's is not an offer (the RST that refuses a
        // connection carries 0).
        if seg.flags & (TCP_FLAG_SYN | TCP_FLAG_RST) == 0 {
            advertised::<DIRECT>(&seg);
        }
    }
}

/// A field of the segment's socket `sk` (`read::direct` or `read::field`).
#[inline(always)]
fn field<const DIRECT: bool>(sk: u64, loc: FieldLoc) -> Option<u64> {
    if DIRECT {
        read::direct(sk, loc)
    } else {
        read::field(sk, loc)
    }
}

/// A 32-bit field of `sk`, 0 when absent.
#[inline(always)]
fn u32_field<const DIRECT: bool>(sk: u64, loc: FieldLoc) -> u32 {
    field::<DIRECT>(sk, loc).unwrap_or(0) as u32
}

/// A segment from the peer carried the raw window `seg.raw_window`.
#[inline(always)]
fn advertised<const DIRECT: bool>(seg: &Segment) {
    let sk = seg.sk;
    let raw = seg.raw_window as u32;
    let Some(st) = socket::local(sk) else {
        return;
    };
    let last = st.peer_raw;
    // The coarse clock (jiffy resolution) is enough for a 500 ms sample period and is cheaper
    // than reading the clock source on every segment. It only ever meets itself here.
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let changed = raw != last;
    let due = now.wrapping_sub(st.peer_sample_ns) >= PEER_SAMPLE_NS;
    if !changed && !due {
        // A sender watched for send-buffer waits is measured at every segment from the peer.
        if st.buffer_watch != 0 {
            let snd_una = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_una));
            let snd_nxt = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_nxt));
            let unsent = u32_field::<DIRECT>(sk, global!(OFFSETS.write_seq)).wrapping_sub(snd_nxt);
            buffer_wait::<DIRECT>(sk, st, now, snd_nxt.wrapping_sub(snd_una), unsent);
        }
        return;
    }
    st.peer_raw = raw;
    let transition = if !changed {
        TRANSITION_NONE
    } else if raw == 0 {
        totals::count(TOTAL_ZERO_WINDOW_PEER, socket::service_port(sk, st));
        TRANSITION_TO_ZERO
    } else if last == 0 {
        TRANSITION_FROM_ZERO
    } else {
        TRANSITION_NONE
    };
    if st.ports_match == 0 {
        return;
    }
    // A small change is not worth an event unless a periodic sample is due anyway. The
    // threshold is a ratio, so it compares raw (unscaled) windows: no read on this path.
    let significant =
        changed && filter::significant(raw, st.peer_reported, transition != TRANSITION_NONE);
    if !significant && !due {
        return;
    }
    // This program runs before tcp_ack(): snd_una does not yet count what this segment
    // acknowledges, so bytes in flight are measured from the segment's own ack_seq.
    let snd_una = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_una));
    let snd_nxt = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_nxt));
    let acked = seg.flags & TCP_FLAG_ACK != 0
        && (seg.ack_seq.wrapping_sub(snd_una) as i32) > 0
        && (snd_nxt.wrapping_sub(seg.ack_seq) as i32) >= 0;
    let in_flight = snd_nxt.wrapping_sub(if acked { seg.ack_seq } else { snd_una });
    let unsent = u32_field::<DIRECT>(sk, global!(OFFSETS.write_seq)).wrapping_sub(snd_nxt);
    let outstanding = snd_nxt.wrapping_sub(snd_una);
    let buffer_waiting = buffer_wait::<DIRECT>(sk, st, now, outstanding, unsent);
    let sndbuf_pinned = field::<DIRECT>(sk, global!(OFFSETS.sk_userlocks)).unwrap_or(0)
        & socket::SOCK_SNDBUF_LOCK
        != 0;
    // Watched at every segment until a sample finds it neither waiting nor pinned and sending.
    st.buffer_watch = (buffer_waiting || (sndbuf_pinned && outstanding > 0)) as u8;
    st.peer_sample_ns = now;
    // Periodic samples only matter while this host has data to send (in flight, or waiting
    // for the window); a receiver asks again in one sample period rather than on each of the
    // segments it receives meanwhile. A sender that waits for buffer space while this segment
    // acknowledges all it sent has data to send.
    if !significant && in_flight == 0 && unsent == 0 && !buffer_waiting {
        return;
    }
    // A quiet connection is reported when the peer's window stops it: a zero window, or the
    // kernel's own verdict that the sender is window-limited right now.
    // A sender waiting for a buffer pinned by SO_SNDBUF is one too (an autotuned buffer
    // that lags the transfer for a moment is not).
    let trigger = transition == TRANSITION_TO_ZERO
        || (st.reported == 0
            && (rwnd_limited_now::<DIRECT>(sk) || (buffer_waiting && sndbuf_pinned)));
    if !report::announce(sk, st, trigger, HOOK_CGROUP_SKB) {
        if significant {
            st.peer_reported = raw;
        }
        return;
    }
    socket::adopt_owner(sk, st);
    if !filter::wanted(st) {
        return;
    }
    if significant {
        st.peer_reported = raw;
    }
    let wscale = field::<DIRECT>(sk, global!(OFFSETS.snd_wscale)).unwrap_or(0) as u8;
    let window = raw << (wscale & 15);
    emit::fill(KIND_PEER, |e: &mut PeerEvent| {
        header::write_for_socket(&mut e.header, KIND_PEER, HOOK_CGROUP_SKB, sk, st);
        e.window = window;
        e.raw = raw as u16;
        e.wscale = wscale;
        e.transition = transition;
        e.periodic = (!significant) as u8;
        e.in_flight = in_flight;
        e.unsent = unsent;
        e.mss = u32_field::<DIRECT>(sk, global!(OFFSETS.mss_cache));
        e.srtt_us = u32_field::<DIRECT>(sk, global!(OFFSETS.srtt_us)) >> 3;
        chrono::<DIRECT>(sk, e);
        e.sndbuf = u32_field::<DIRECT>(sk, global!(OFFSETS.sk_sndbuf));
        e.snd_cwnd = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_cwnd));
        e.sndbuf_locked = sndbuf_pinned as u8;
        e.buffer_waiting = buffer_waiting as u8;
        e.buffer_wait_ms = (st.buffer_wait_ns / 1_000_000) as u32;
        e.bytes_acked = field::<DIRECT>(sk, global!(OFFSETS.bytes_acked)).unwrap_or(0);
        e.bytes_sent = field::<DIRECT>(sk, global!(OFFSETS.bytes_sent)).unwrap_or(0);
        e.data_segs_out = u32_field::<DIRECT>(sk, global!(OFFSETS.data_segs_out));
        e.max_window = u32_field::<DIRECT>(sk, global!(OFFSETS.max_window));
        e.mss_clamp = field::<DIRECT>(sk, global!(OFFSETS.mss_clamp)).unwrap_or(0) as u16;
    });
}

/// Whether the sender waits for its own send buffer now (`waits_for_send_buffer`); if so, the
/// time since the last such test counts as waiting (capped, so that an idle gap does not).
#[inline(always)]
fn buffer_wait<const DIRECT: bool>(
    sk: u64,
    st: &mut SockState,
    now: u64,
    outstanding: u32,
    unsent: u32,
) -> bool {
    let waiting = waits_for_send_buffer::<DIRECT>(sk, outstanding, unsent);
    if waiting && st.buffer_seen_ns != 0 {
        // Summed in ns: tests a fraction of a millisecond apart must not round to nothing.
        let since = now.wrapping_sub(st.buffer_seen_ns).min(2 * PEER_SAMPLE_NS);
        st.buffer_wait_ns = st.buffer_wait_ns.wrapping_add(since);
    }
    st.buffer_seen_ns = now;
    waiting
}

/// Whether the sender waits for its own send buffer: the application found the buffer full
/// (SOCK_NOSPACE), at least half of what the buffer holds is in flight (`outstanding`, before
/// this segment's acknowledgement, against `unsent`), and neither the congestion window nor
/// the peer's window stops it. The conditions of the kernel's sndbuf_limited
/// (tcp_cwnd_validate), tested at each sample rather than only when a partial segment goes
/// out: the kernel's count misses waits that begin after a full segment, which tcp_push_one
/// sends before the application is marked as waiting. A sender that holds an unsent segment
/// back until the last is acknowledged (autocorking a partial one) still counts; one with
/// more queued than in flight is held by something else (pacing, the network).
#[inline(always)]
fn waits_for_send_buffer<const DIRECT: bool>(sk: u64, outstanding: u32, unsent: u32) -> bool {
    if outstanding == 0 || unsent > outstanding {
        return false;
    }
    let socket = field::<DIRECT>(sk, global!(OFFSETS.sk_socket)).unwrap_or(0);
    if socket == 0 {
        return false;
    }
    let flags = read::field(socket, global!(OFFSETS.socket_flags)).unwrap_or(0);
    if flags & (1 << SOCK_NOSPACE) == 0 {
        return false;
    }
    let packets_out = u32_field::<DIRECT>(sk, global!(OFFSETS.packets_out));
    let cwnd = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_cwnd));
    let snd_wnd = u32_field::<DIRECT>(sk, global!(OFFSETS.snd_wnd));
    let mss = u32_field::<DIRECT>(sk, global!(OFFSETS.mss_cache));
    packets_out < cwnd && outstanding.saturating_add(mss) <= snd_wnd
}

/// Whether the kernel's chrono says the sender is limited by the peer's window at this moment.
#[inline(always)]
fn rwnd_limited_now<const DIRECT: bool>(sk: u64) -> bool {
    field::<DIRECT>(sk, global!(OFFSETS.chrono_type)) == Some(TCP_CHRONO_RWND_LIMITED)
}

/// tcp_info's rwnd_limited, sndbuf_limited and busy_time in jiffies: the kernel's chrono stats
/// plus the running interval (tcp_get_info_chrono_stats).
#[inline(always)]
fn chrono<const DIRECT: bool>(sk: u64, e: &mut PeerEvent) {
    let stat_at = global!(OFFSETS.chrono_stat);
    if stat_at.offset == u32::MAX {
        return;
    }
    // chrono_stat[3], u32 each.
    let stat = |i: u32| {
        let at = FieldLoc { offset: stat_at.offset + i * 4, size: 4, ..FieldLoc::MISSING };
        u32_field::<DIRECT>(sk, at)
    };
    let kind = field::<DIRECT>(sk, global!(OFFSETS.chrono_type)).unwrap_or(0);
    let start = u32_field::<DIRECT>(sk, global!(OFFSETS.chrono_start));
    let running = if kind != 0 {
        // SAFETY: helper without arguments.
        (unsafe { bpf_jiffies64() } as u32).wrapping_sub(start)
    } else {
        0
    };
    let now_if = |which: u64| if kind == which { running } else { 0 };
    e.rwnd_limited_jiffies = stat(1).wrapping_add(now_if(TCP_CHRONO_RWND_LIMITED));
    e.sndbuf_limited_jiffies = stat(2).wrapping_add(now_if(TCP_CHRONO_SNDBUF_LIMITED));
    e.busy_jiffies = stat(0).wrapping_add(stat(1)).wrapping_add(stat(2)).wrapping_add(running);
}
