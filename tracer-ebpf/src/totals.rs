//! Host totals: counted for every connection, reported or not, on this CPU (tracer-common's
//! `totals` says what each slot means). The agent sums the CPUs when Prometheus scrapes.

use tracer_common::totals::{PortTotals, OTHER_PORTS, TOTAL_SLOTS};

use crate::maps::{HOST_TOTALS, PORT_TOTALS};

/// BPF_NOEXIST: a concurrent first count on another CPU made the entry; then it is used.
const BPF_NOEXIST: u64 = 1;

/// Adds one to `slot` (a TOTAL_*) for the host and for the service `port` (or for the other
/// ports, when the per-port table is full).
#[inline(always)]
pub fn count(slot: u32, port: u16) {
    if slot >= TOTAL_SLOTS {
        return;
    }
    add(slot);
    let entry = match PORT_TOTALS.get_ptr_mut(&port) {
        Some(entry) => entry,
        None => {
            let _ = PORT_TOTALS.insert(&port, &PortTotals::ZERO, BPF_NOEXIST);
            match PORT_TOTALS.get_ptr_mut(&port) {
                Some(entry) => entry,
                None => {
                    add(OTHER_PORTS + slot);
                    return;
                }
            }
        }
    };
    // SAFETY: this CPU's copy of a live per-CPU map value; `slot` was bounds-checked above.
    unsafe { (*entry).counts[slot as usize] += 1 };
}

#[inline(always)]
fn add(slot: u32) {
    if let Some(total) = HOST_TOTALS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *total += 1 };
    }
}
