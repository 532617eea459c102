//! Zero-window probes this host sends.
//!
//! `tcp_send_probe0()` also runs when it only resets the persist state (data in flight, or an
//! empty write queue) or when `tcp_write_wakeup()` sends new data instead of a probe. In both
//! cases it leaves `icsk_probes_out` at 0; after a real probe it is at least 1. So the exit of
//! the function tells real probes apart, with the backoff the kernel just set.

use aya_ebpf::{
    macros::{fexit, kprobe, kretprobe},
    programs::{FExitContext, ProbeContext, RetProbeContext},
};
use aya_log_ebpf::warn;
use tracer_common::event::{ProbeEvent, HOOK_FEXIT, HOOK_KRETPROBE, KIND_PROBE};

use crate::{
    emit,
    maps::{global, PROBE0_SK},
    read, state,
};

#[fexit(function = "tcp_send_probe0")]
pub fn probe0_fexit(ctx: FExitContext) -> u32 {
    after_send_probe0(ctx.arg::<u64>(0), HOOK_FEXIT);
    0
}

/// Remembers the socket for probe0_kretprobe (a kretprobe has no arguments).
#[kprobe]
pub fn probe0_kprobe(ctx: ProbeContext) -> u32 {
    if let (Some(sk), Some(slot)) = (ctx.arg::<u64>(0), PROBE0_SK.get_ptr_mut(0)) {
        // SAFETY: per-CPU slot; the kretprobe for this call runs on this CPU.
        unsafe { *slot = sk };
    }
    0
}

#[kretprobe]
pub fn probe0_kretprobe(ctx: RetProbeContext) -> u32 {
    if let Some(slot) = PROBE0_SK.get_ptr_mut(0) {
        // SAFETY: as above.
        let sk = unsafe { core::ptr::replace(slot, 0) };
        if sk != 0 {
            after_send_probe0(sk, HOOK_KRETPROBE);
        } else {
            // Rare (a missed kprobe): say so rather than lose the probe silently.
            warn!(
                &ctx,
                "tcp_send_probe0 returned but its entry was not seen: one probe not reported"
            );
        }
    }
    0
}

#[inline(always)]
fn after_send_probe0(sk: u64, hook: u8) {
    let probes_out = read::field(sk, global!(OFFSETS.icsk_probes_out)).unwrap_or(0) as u8;
    if probes_out == 0 {
        return;
    }
    let backoff = read::field(sk, global!(OFFSETS.icsk_backoff)).unwrap_or(0) as u8;
    sent(sk, hook, probes_out, backoff, 0);
}

/// Reports a probe. `before_send` = 1 when probes_out/backoff were read before the kernel
/// updated them for this probe.
#[inline(always)]
pub fn sent(sk: u64, hook: u8, probes_out: u8, backoff: u8, before_send: u8) {
    let Some(st) = state::get(sk) else {
        return;
    };
    if !state::wanted(st) {
        return;
    }
    emit::send(
        KIND_PROBE,
        ProbeEvent {
            header: emit::header(KIND_PROBE, hook, sk, st),
            probes_out,
            backoff,
            before_send,
            _pad: 0,
            rto_jiffies: read::u32_field(sk, global!(OFFSETS.icsk_rto)),
            snd_wnd: read::u32_field(sk, global!(OFFSETS.snd_wnd)),
            snd_una: read::u32_field(sk, global!(OFFSETS.snd_una)),
            snd_nxt: read::u32_field(sk, global!(OFFSETS.snd_nxt)),
            _pad2: 0,
        },
    );
}
