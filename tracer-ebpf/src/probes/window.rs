//! The receive window this host advertises, read from the TCP header of each outgoing segment.
//!
//! `tcp_select_window()` is inlined into `__tcp_transmit_skb()`, and `__tcp_select_window()` also
//! runs for windows that are never sent. The first call after the header is complete is
//! `send_check(sk, skb)` (tcp_v4_send_check / tcp_v6_send_check): there `skb->data` is the TCP
//! header with the window the kernel chose, after the no-shrink rule and scaling, and
//! icsk_ack.pending still holds ICSK_ACK_NOMEM if the window was forced to zero for lack of
//! memory (it is cleared afterwards, in tcp_event_ack_sent).

use aya_ebpf::{
    macros::{fentry, kprobe},
    programs::{FEntryContext, ProbeContext},
};
use tracer_common::{
    config::NOMEM_PATH,
    event::{
        WindowEvent, HOOK_CGROUP_SKB, HOOK_FENTRY, HOOK_KPROBE, KIND_WINDOW, TRANSITION_FROM_ZERO,
        TRANSITION_NONE, TRANSITION_TO_ZERO, TRANSITION_TO_ZERO_UNCOUNTED, WINDOW_MEMORY_PRESSURE,
        WINDOW_NETNS, WINDOW_NOMEM, WINDOW_RCVBUF_LOCKED, WINDOW_SHRINK_ALLOWED, WINDOW_WANTED,
    },
    totals::{TOTAL_ZERO_WINDOW_LOCAL, TOTAL_ZERO_WINDOW_UNCOUNTED},
};

use super::{probe0, wanted};
use crate::{emit, filter, header, maps::global, read, report, socket, state::SockState, totals};

const TCP_FLAG_SYN: u8 = 0x02;
const TCP_FLAG_RST: u8 = 0x04;

#[fentry(function = "tcp_v4_send_check")]
pub fn window_v4_fentry(ctx: FEntryContext) -> u32 {
    send_check_fentry(&ctx);
    0
}

#[fentry(function = "tcp_v6_send_check")]
pub fn window_v6_fentry(ctx: FEntryContext) -> u32 {
    send_check_fentry(&ctx);
    0
}

/// send_check(sk, skb) with `sk` a pointer the verifier knows: its state is in sk_storage.
#[inline(always)]
fn send_check_fentry(ctx: &FEntryContext) {
    let sk = ctx.arg::<u64>(0);
    let Some(seg) = header(sk, ctx.arg::<u64>(1)) else { return };
    if seg.reset {
        if let Some(st) = socket::local_existing(sk) {
            reset_sent(sk, st, seg.raw, HOOK_FENTRY);
            socket::reset_done(sk);
        }
    } else if let Some(st) = socket::local(sk) {
        sent(sk, st, seg, HOOK_FENTRY);
    }
}

/// Attached to both tcp_v4_send_check and tcp_v6_send_check. kprobes cannot use sk_storage:
/// their state is in the hash.
#[kprobe]
pub fn window_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(sk), Some(skb)) = (ctx.arg::<u64>(0), ctx.arg::<u64>(1)) {
        if let Some(seg) = header(sk, skb) {
            if seg.reset {
                if let Some(st) = socket::find(sk) {
                    reset_sent(sk, st, seg.raw, HOOK_KPROBE);
                    socket::reset_done(sk);
                }
            } else if let Some(st) = socket::get(sk) {
                sent(sk, st, seg, HOOK_KPROBE);
            }
        }
    }
    0
}

/// What send_check sees of the outgoing segment.
#[derive(Clone, Copy)]
struct Sent {
    skb: u64,
    th: u64,
    raw: u16,
    /// An RST: see `reset_sent`.
    reset: bool,
}

/// The segment's window, unless it is a SYN (never scaled, not chosen by tcp_select_window).
#[inline(always)]
fn header(sk: u64, skb: u64) -> Option<Sent> {
    if sk == 0 {
        return None;
    }
    let th = read::field(skb, global!(OFFSETS.skb_data))?;
    // Bytes 12..16 of the TCP header: data offset, flags, window (network order).
    let hdr = read::bytes::<4>(th + 12);
    if hdr[1] & TCP_FLAG_SYN != 0 {
        return None;
    }
    let reset = hdr[1] & TCP_FLAG_RST != 0;
    Some(Sent { skb, th, raw: u16::from_be_bytes([hdr[2], hdr[3]]), reset })
}

/// A reset socket `sk` sent itself (tcp_send_active_reset; `tcp_close` with unread data sends it
/// just after TCP_CLOSE). Its window went through tcp_select_window like any other, so when it
/// leaves zero the kernel counts TCPFromZeroWindowAdv: that end of an episode is taken from it,
/// and nothing else (a reset is no offer; the control socket's resets, and those of sockets
/// never seen, have no state here).
#[inline(always)]
pub fn reset_sent(sk: u64, st: &mut SockState, raw: u16, hook: u8) {
    if st.last_raw == 0 && raw != 0 && st.reported != 0 {
        advertised(sk, st, raw, hook);
    }
}

#[inline(always)]
fn sent(sk: u64, st: &mut SockState, seg: Sent, hook: u8) {
    probe0::count_segment(sk, seg.skb, seg.th);
    advertised(sk, st, seg.raw, hook);
}

/// One outgoing segment of socket `sk` carried the raw window `raw`: report it if it changed.
#[inline(always)]
pub fn advertised(sk: u64, st: &mut SockState, raw: u16, hook: u8) {
    let raw = raw as u32;
    let last = st.last_raw;
    if raw == last {
        return;
    }
    st.last_raw = raw;
    // The kernel's TCPToZeroWindowAdv / TCPFromZeroWindowAdv moments. A socket first seen at zero
    // counts as a transition: the user wants to know it is stalled.
    let transition = if raw == 0 {
        let uncounted = uncounted_zero(sk, st, hook);
        let total = if uncounted { TOTAL_ZERO_WINDOW_UNCOUNTED } else { TOTAL_ZERO_WINDOW_LOCAL };
        totals::count(total, socket::service_port(sk, st));
        if uncounted {
            TRANSITION_TO_ZERO_UNCOUNTED
        } else {
            TRANSITION_TO_ZERO
        }
    } else if last == 0 {
        forget_nomem(sk, st, hook);
        TRANSITION_FROM_ZERO
    } else {
        TRANSITION_NONE
    };
    // Measured before it grows: a window below a share of the largest one is a shrink.
    let shrunk = raw * 100 < st.max_raw * global!(CONFIG.report_below_pct) as u32;
    if raw > st.max_raw {
        st.max_raw = raw;
    }
    // The change threshold is a ratio, so raw (unscaled) values do: the scale is read only for
    // a window that will be reported.
    if !filter::significant(raw, st.last_reported, transition != TRANSITION_NONE) {
        return;
    }
    // Without window scaling a window at 65,535 bytes cannot grow: a ceiling that can limit.
    // The scale is read for that only at 65,535, not at every change of a quiet connection.
    let unscaled_ceiling =
        raw == u16::MAX as u32 && read::field(sk, global!(OFFSETS.rcv_wscale)).unwrap_or(0) == 0;
    if !report::announce(sk, st, transition != TRANSITION_NONE || shrunk || unscaled_ceiling, hook)
    {
        // A quiet connection moves the threshold as a reported one would, so that it asks
        // `announce` no more often than a reported one sends.
        st.last_reported = raw;
        return;
    }
    socket::adopt_owner(sk, st);
    if !filter::wanted(st) {
        return;
    }
    st.last_reported = raw;
    send_window(sk, st, raw, transition, hook);
}

/// The window event itself. A call of its own (a BPF subprogram with its own stack frame): the
/// packet program that inlines `advertised` is near the 512-byte stack limit without it.
#[inline(never)]
fn send_window(sk: u64, st: &SockState, raw: u32, transition: u8, hook: u8) {
    let wscale = read::field(sk, global!(OFFSETS.rcv_wscale)).unwrap_or(0) as u8;
    let window = raw << (wscale & 15);
    let rcv_nxt = read::u32_field(sk, global!(OFFSETS.rcv_nxt));
    let copied = read::u32_field(sk, global!(OFFSETS.copied_seq));
    let rcv_wnd = read::u32_field(sk, global!(OFFSETS.rcv_wnd));
    emit::fill(KIND_WINDOW, |e: &mut WindowEvent| {
        header::write_for_socket(&mut e.header, KIND_WINDOW, hook, sk, st);
        e.window = window;
        e.raw = raw as u16;
        e.wscale = wscale;
        e.transition = transition;
        e.rcv_wnd = rcv_wnd;
        e.unread = rcv_nxt.wrapping_sub(copied);
        e.rcvbuf = read::u32_field(sk, global!(OFFSETS.sk_rcvbuf));
        e.rmem_alloc = read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc));
        e.rcv_ssthresh = read::u32_field(sk, global!(OFFSETS.rcv_ssthresh));
        e.window_clamp = read::u32_field(sk, global!(OFFSETS.window_clamp));
        e.rcv_mss = read::u32_field(sk, global!(OFFSETS.icsk_ack_rcv_mss)) as u16;
        e.advmss = read::u32_field(sk, global!(OFFSETS.advmss)) as u16;
        e.backlog = read::u32_field(sk, global!(OFFSETS.sk_backlog_len));
        e.scaling_ratio = read::u32_field(sk, global!(OFFSETS.scaling_ratio)) as u8;
        decision_inputs(sk, hook, e);
    });
}

/// What else the kernel's window choice depended on: the socket's locks and memory state, its
/// namespace's sysctls, and (where the hook on it runs) the window the kernel wanted. Read only
/// for a window that is reported, never per segment.
#[inline(always)]
fn decision_inputs(sk: u64, hook: u8, event: &mut WindowEvent) {
    let mut flags = 0;
    if socket::userlocks(sk) & socket::SOCK_RCVBUF_LOCK != 0 {
        flags |= WINDOW_RCVBUF_LOCKED;
    }
    if event.transition == TRANSITION_TO_ZERO_UNCOUNTED {
        flags |= WINDOW_NOMEM;
    }
    if hook == HOOK_FENTRY {
        if let Some(wanted) = wanted::take(sk) {
            event.wanted = wanted;
            flags |= WINDOW_WANTED;
        }
    }
    // tcp_under_memory_pressure(): the protocol's global flag, reached through sk_prot.
    let prot = read::field(sk, global!(OFFSETS.skc_prot)).unwrap_or(0);
    if prot != 0 {
        let flag = read::field(prot, global!(OFFSETS.proto_memory_pressure)).unwrap_or(0);
        if flag != 0 && read::bytes::<8>(flag) != [0; 8] {
            flags |= WINDOW_MEMORY_PRESSURE;
        }
    }
    let net = read::field(sk, global!(OFFSETS.skc_net)).unwrap_or(0);
    if net != 0 {
        if let Some(max) = read::field(net, global!(OFFSETS.net_tcp_rmem_max)) {
            event.rmem_max = max as u32;
            // An int on some kernels, a u8 on others: the sign is kept either way.
            let size = global!(OFFSETS.net_adv_win_scale).size;
            let scale = read::field(net, global!(OFFSETS.net_adv_win_scale)).unwrap_or(1);
            event.adv_win_scale =
                if size == 1 { scale as u8 as i8 } else { scale as u32 as i32 as i8 };
            flags |= WINDOW_NETNS;
        }
        if read::field(net, global!(OFFSETS.net_shrink_window)).unwrap_or(0) != 0 {
            flags |= WINDOW_SHRINK_ALLOWED;
        }
    }
    event.flags = flags;
}

/// Whether this zero window is the 6.6+ out-of-memory kind, which TCPToZeroWindowAdv does not
/// count. At send_check the kernel's own flag says so; on the packet path (after the flag is
/// cleared) an in-sequence PROTO_MEM drop seen just before stands for it.
#[inline(always)]
fn uncounted_zero(sk: u64, st: &mut SockState, hook: u8) -> bool {
    if global!(CONFIG.kernel_features) & NOMEM_PATH == 0 {
        return false;
    }
    if hook != HOOK_CGROUP_SKB {
        let pending = read::field(sk, global!(OFFSETS.icsk_ack_pending)).unwrap_or(0);
        return pending & global!(CONFIG.icsk_ack_nomem) as u64 != 0;
    }
    socket::take_nomem_note(sk, st)
}

/// A reopened window ends any out-of-memory episode the drop hook noted.
#[inline(always)]
fn forget_nomem(sk: u64, st: &mut SockState, hook: u8) {
    if hook == HOOK_CGROUP_SKB && global!(CONFIG.kernel_features) & NOMEM_PATH != 0 {
        socket::take_nomem_note(sk, st);
    }
}
