//! The user's filters (--port, --pid) and the window-change threshold: which sockets and which
//! changes are worth an event.

use crate::{
    maps::{global, PORTS},
    state::{SockState, UNSEEN},
};

/// The --port filter: no filter, or either port in it.
#[inline(always)]
pub fn ports_match(sport: u16, dport: u16) -> bool {
    if global!(CONFIG.port_filter) == 0 {
        return true;
    }
    // SAFETY: lookups in a hash map of plain integers.
    unsafe { PORTS.get(&sport).is_some() || PORTS.get(&dport).is_some() }
}

/// The window-change filter: report when the window moved by at least 1/2^CONFIG.window_shift
/// of the last report, and always at zero / non-zero transitions. Callers pass raw (unscaled)
/// windows: the ratio is the same, and the scale need not be read for windows not reported.
#[inline(always)]
pub fn significant(window: u32, last_reported: u32, transition: bool) -> bool {
    let shift = global!(CONFIG.window_shift);
    if transition || shift == 0 || last_reported == UNSEEN {
        return true;
    }
    window.abs_diff(last_reported) >= (last_reported >> (shift & 31))
}

/// Whether events of this socket pass the filters (ports now; process once it is known).
#[inline(always)]
pub fn wanted(state: &SockState) -> bool {
    if state.ports_match == 0 {
        return false;
    }
    let pid = global!(CONFIG.pid);
    pid == 0 || state.owner == pid
}
