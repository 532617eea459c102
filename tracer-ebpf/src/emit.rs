//! The only place that reserves ring-buffer space. A full ring is counted per event kind, never
//! dropped silently.

use crate::{
    maps::{EVENTS, LOST},
    zeroed,
};

/// Submit without waking the reader: a wakeup per event costs ~1.4 us on the hot path; the agent
/// drains the ring on a short timer instead.
const BPF_RB_NO_WAKEUP: u64 = 1;

/// Writes `event` to the ring, or counts it as lost under `kind`.
#[inline(always)]
pub fn send<T: 'static>(kind: u16, event: T) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            entry.write(event);
            entry.submit(BPF_RB_NO_WAKEUP);
        }
        None => count_lost(kind),
    }
}

/// Like `send`, for a record too large to build on the BPF stack beside its program's other
/// locals: it is zeroed in the ring, then `fill` writes its fields there.
#[inline(always)]
pub fn fill<T: 'static>(kind: u16, fill: impl FnOnce(&mut T)) {
    match EVENTS.reserve::<T>(0) {
        Some(mut entry) => {
            let record = entry.as_mut_ptr();
            // SAFETY: the reservation is size_of::<T>() bytes, 8-aligned; T is plain old data,
            // valid all-zero, so it is initialised before `fill` sees it.
            unsafe {
                zeroed::zero(record);
                fill(&mut *record);
            }
            entry.submit(BPF_RB_NO_WAKEUP);
        }
        None => count_lost(kind),
    }
}

/// A record of `kind` that did not fit in the ring.
#[inline(always)]
fn count_lost(kind: u16) {
    if let Some(lost) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *lost += 1 };
    }
}
