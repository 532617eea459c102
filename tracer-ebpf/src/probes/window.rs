//! The receive window this host advertises, read from the TCP header of each outgoing segment.
//!
//! `tcp_select_window()` is inlined into `__tcp_transmit_skb()`, and `__tcp_select_window()` also
//! runs for windows that are never sent. The first call after the header is complete is
//! `send_check(sk, skb)` (tcp_v4_send_check / tcp_v6_send_check): there `skb->data` is the TCP
//! header with the window the kernel chose, after the no-shrink rule and scaling.

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use tracer_common::{
    config::NOMEM_PATH,
    event::{
        WindowEvent, HOOK_FENTRY, HOOK_KPROBE, KIND_WINDOW, TRANSITION_FROM_ZERO, TRANSITION_NONE,
        TRANSITION_TO_ZERO, TRANSITION_TO_ZERO_UNCOUNTED,
    },
};

use crate::{emit, maps::global, read, state};

const TCP_FLAG_SYN: u8 = 0x02;

#[fentry(function = "tcp_v4_send_check")]
pub fn window_v4_fentry(ctx: FEntryContext) -> u32 {
    from_skb(ctx.arg::<u64>(0), ctx.arg::<u64>(1), HOOK_FENTRY);
    0
}

#[fentry(function = "tcp_v6_send_check")]
pub fn window_v6_fentry(ctx: FEntryContext) -> u32 {
    from_skb(ctx.arg::<u64>(0), ctx.arg::<u64>(1), HOOK_FENTRY);
    0
}

/// Attached to both tcp_v4_send_check and tcp_v6_send_check.
#[kprobe]
pub fn window_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(sk), Some(skb)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) {
        from_skb(sk, skb, HOOK_KPROBE);
    }
    0
}

#[inline(always)]
fn from_skb(sk: u64, skb: u64, hook: u8) {
    let Some(th) = read::field(skb, global!(OFFSETS.skb_data)) else {
        return;
    };
    // Bytes 12..16 of the TCP header: data offset, flags, window (network order).
    let hdr = read::bytes::<4>(th + 12);
    // SYN and SYN-ACK windows are never scaled and are not chosen by tcp_select_window.
    if hdr[1] & TCP_FLAG_SYN != 0 {
        return;
    }
    advertised(sk, u16::from_be_bytes([hdr[2], hdr[3]]), hook);
}

/// One outgoing segment of socket `sk` carried the raw window `raw`: report it if it changed.
#[inline(always)]
pub fn advertised(sk: u64, raw: u16, hook: u8) {
    let Some(st) = state::get(sk) else {
        return;
    };
    let raw = raw as u32;
    let last = st.last_raw;
    if raw == last {
        return;
    }
    st.last_raw = raw;
    // The kernel's TCPToZeroWindowAdv / TCPFromZeroWindowAdv moments. A socket first seen at zero
    // counts as a transition: the user wants to know it is stalled.
    let transition = if raw == 0 {
        // On 6.6+ a PROTO_MEM drop makes tcp_select_window() send 0 without counting it.
        if st.nomem_pending != 0 && global!(CONFIG.kernel_features) & NOMEM_PATH != 0 {
            TRANSITION_TO_ZERO_UNCOUNTED
        } else {
            TRANSITION_TO_ZERO
        }
    } else if last == 0 {
        TRANSITION_FROM_ZERO
    } else {
        TRANSITION_NONE
    };
    st.nomem_pending = 0;
    if !state::wanted(st) {
        return;
    }
    // The change threshold is a ratio, so raw (unscaled) values do: the scale is read only for
    // a window that will be reported.
    if !state::significant(raw, st.last_reported, transition != TRANSITION_NONE) {
        return;
    }
    st.last_reported = raw;
    let wscale = read::field(sk, global!(OFFSETS.rcv_wscale)).unwrap_or(0) as u8;
    let window = raw << (wscale & 15);
    let rcv_nxt = read::u32_field(sk, global!(OFFSETS.rcv_nxt));
    let copied = read::u32_field(sk, global!(OFFSETS.copied_seq));
    emit::send(
        KIND_WINDOW,
        WindowEvent {
            header: emit::header(KIND_WINDOW, hook, sk, st),
            window,
            raw: raw as u16,
            wscale,
            transition,
            rcv_wnd: read::u32_field(sk, global!(OFFSETS.rcv_wnd)),
            unread: rcv_nxt.wrapping_sub(copied),
            rcvbuf: read::u32_field(sk, global!(OFFSETS.sk_rcvbuf)),
            rmem_alloc: read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc)),
            rcv_ssthresh: read::u32_field(sk, global!(OFFSETS.rcv_ssthresh)),
            window_clamp: read::u32_field(sk, global!(OFFSETS.window_clamp)),
        },
    );
}
