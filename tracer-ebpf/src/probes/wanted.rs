//! The window the kernel wanted: `__tcp_select_window()`'s result, before tcp_select_window's
//! no-shrink rule, clamping and scaling.
//!
//! It also runs for candidate windows that are never sent (after a read in __tcp_cleanup_rbuf,
//! in the send-ACK-now test), so only the last result on this CPU is kept. tcp_select_window,
//! inlined in __tcp_transmit_skb, calls it right before the header is complete and send_check
//! runs on the same CPU: the send_check hook takes the result when the socket matches, and only
//! when the window changed (the rare case), so the per-segment cost here is one store.
//! On Debian 12's 6.1.0-57 the transmit path makes a real call to the one global copy (objdump
//! of its vmlinux: `call __tcp_select_window` in __tcp_transmit_skb, no inlined copy), so this
//! hook sees the window that is sent.

use aya_ebpf::{macros::fexit, programs::FExitContext};

use crate::maps::WANTED;

#[fexit(function = "__tcp_select_window")]
pub fn wanted_fexit(ctx: FExitContext) -> u32 {
    let sk = ctx.arg::<u64>(0);
    // fexit sees the arguments, then the return value.
    let window = ctx.arg::<u32>(1);
    if let Some(slot) = WANTED.get_ptr_mut(0) {
        // SAFETY: per-CPU slot; the caller holds the socket and does not migrate mid-call.
        unsafe {
            (*slot).sk = sk;
            (*slot).window = window;
        }
    }
    0
}

/// The last result on this CPU if it was for `sk`.
#[inline(always)]
pub fn take(sk: u64) -> Option<u32> {
    let slot = WANTED.get_ptr_mut(0)?;
    // SAFETY: per-CPU slot, read on the CPU that wrote it.
    unsafe {
        if (*slot).sk != sk {
            return None;
        }
        (*slot).sk = 0;
        Some((*slot).window)
    }
}
