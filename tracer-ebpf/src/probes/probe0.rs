//! Zero-window probes this host sends.
//!
//! `tcp_send_probe0()` also runs when it sends nothing (tcp_write_wakeup() returned -1), when it
//! sends new data instead of a probe (a window smaller than one MSS), and in urgent mode it sends
//! two probes. So the probes are counted where they leave: between the entry and the exit of
//! tcp_send_probe0, the send_check hook counts the zero-length segments of that socket on this
//! CPU (tcp_xmit_probe_skb counts TCPWinProbe for exactly those). The exit then reports each,
//! with the backoff the kernel just set. Where the send_check hook is not attached, one probe is
//! inferred from icsk_probes_out (at least 1 after a probe, 0 when the call only reset state).

use aya_ebpf::{
    macros::{fentry, fexit, kprobe, kretprobe},
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext},
};
use aya_log_ebpf::warn;
use tracer_common::{
    config::SWITCH_SEND_CHECK,
    event::{ProbeEvent, HOOK_FEXIT, HOOK_KRETPROBE, KIND_PROBE},
    totals::TOTAL_PROBES,
};

use crate::{
    emit, filter, header,
    maps::{global, PROBE0_CALL, SWITCHES},
    read, report, socket,
    state::SockState,
    totals,
};

#[fentry(function = "tcp_send_probe0")]
pub fn probe0_fentry(ctx: FEntryContext) -> u32 {
    enter(ctx.arg::<u64>(0));
    0
}

#[fexit(function = "tcp_send_probe0")]
pub fn probe0_fexit(ctx: FExitContext) -> u32 {
    let sk = ctx.arg::<u64>(0);
    let segments = leave(sk);
    if let Some(st) = socket::local(sk) {
        report(sk, st, segments, HOOK_FEXIT);
    }
    0
}

#[kprobe]
pub fn probe0_kprobe(ctx: ProbeContext) -> u32 {
    if let Some(sk) = ctx.arg::<u64>(0) {
        enter(sk);
    }
    0
}

/// A kretprobe has no arguments: the socket is the one its kprobe saw on this CPU.
#[kretprobe]
pub fn probe0_kretprobe(ctx: RetProbeContext) -> u32 {
    let Some(call) = PROBE0_CALL.get_ptr_mut(0) else { return 0 };
    // SAFETY: per-CPU slot; tcp_send_probe0 runs in the timer softirq and does not migrate.
    let sk = unsafe { (*call).sk };
    if sk == 0 {
        // Rare (a missed kprobe): say so rather than lose the probe silently.
        warn!(&ctx, "tcp_send_probe0 returned but its entry was not seen: probes not reported");
        return 0;
    }
    let segments = leave(sk);
    if let Some(st) = socket::get(sk) {
        report(sk, st, segments, HOOK_KRETPROBE);
    }
    0
}

#[inline(always)]
fn enter(sk: u64) {
    if let Some(call) = PROBE0_CALL.get_ptr_mut(0) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe {
            (*call).sk = sk;
            (*call).segments = 0;
        }
    }
}

/// How many probes this call of tcp_send_probe0 sent (u32::MAX: not counted, infer one).
#[inline(always)]
fn leave(sk: u64) -> u32 {
    let Some(call) = PROBE0_CALL.get_ptr_mut(0) else { return u32::MAX };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU.
    let (seen, segments) = unsafe { ((*call).sk, (*call).segments) };
    // SAFETY: as above.
    unsafe { (*call).sk = 0 };
    let counting = SWITCHES.get(SWITCH_SEND_CHECK).is_some_and(|v| *v != 0);
    if !counting || seen != sk {
        return u32::MAX;
    }
    segments
}

/// Called by the send_check hook for every outgoing segment: counts the zero-length ones that
/// tcp_send_probe0 sends on this CPU.
#[inline(always)]
pub fn count_segment(sk: u64, skb: u64, th: u64) {
    let Some(call) = PROBE0_CALL.get_ptr_mut(0) else { return };
    // SAFETY: per-CPU slot, no concurrent writer on this CPU.
    if unsafe { (*call).sk } != sk {
        return;
    }
    let len = read::u32_field(skb, global!(OFFSETS.skb_len));
    let header_len = (read::bytes::<1>(th + 12)[0] >> 4) as u32 * 4;
    if len == header_len {
        // SAFETY: as above.
        unsafe { (*call).segments += 1 };
    }
}

#[inline(always)]
fn report(sk: u64, st: &mut SockState, segments: u32, hook: u8) {
    let probes_out = read::field(sk, global!(OFFSETS.icsk_probes_out)).unwrap_or(0) as u8;
    let backoff = read::field(sk, global!(OFFSETS.icsk_backoff)).unwrap_or(0) as u8;
    let segments = if segments == u32::MAX { (probes_out != 0) as u32 } else { segments };
    // Urgent mode sends two probes per call; nothing else sends more.
    if segments >= 1 {
        sent(sk, st, hook, probes_out, backoff, 0);
    }
    if segments >= 2 {
        sent(sk, st, hook, probes_out, backoff, 0);
    }
}

/// Reports a probe. `before_send` = 1 when probes_out/backoff were read before the kernel
/// updated them for this probe.
#[inline(always)]
pub fn sent(sk: u64, st: &mut SockState, hook: u8, probes_out: u8, backoff: u8, before_send: u8) {
    totals::count(TOTAL_PROBES, socket::service_port(sk, st));
    // A probe always matters: a quiet connection is reported from here.
    let _ = report::announce(sk, st, true, hook);
    socket::adopt_owner(sk, st);
    if !filter::wanted(st) {
        return;
    }
    emit::fill(KIND_PROBE, |e: &mut ProbeEvent| {
        header::write_for_socket(&mut e.header, KIND_PROBE, hook, sk, st);
        e.probes_out = probes_out;
        e.backoff = backoff;
        e.before_send = before_send;
        e.rto_jiffies = read::u32_field(sk, global!(OFFSETS.icsk_rto));
        e.snd_wnd = read::u32_field(sk, global!(OFFSETS.snd_wnd));
        e.snd_una = read::u32_field(sk, global!(OFFSETS.snd_una));
        e.snd_nxt = read::u32_field(sk, global!(OFFSETS.snd_nxt));
    });
}
