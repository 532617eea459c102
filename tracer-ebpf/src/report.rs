//! Which connections are reported. With a filter, or when the operator asked for every
//! connection, each is reported from its open. Otherwise a connection stays quiet (no event at
//! all) until its first flow-control moment: a shrinking or zero window, a window that limits
//! the sender, a probe, a drop for lack of space, a pinned buffer that is filling. Its open goes
//! out then, late, with the facts kept from the open, and every later event follows as usual.

use tracer_common::{
    event::{LifecycleEvent, OwnerEvent, KIND_OPEN, KIND_OWNER, TCP_ESTABLISHED},
    totals::TOTAL_REPORTED,
};

use crate::{emit, filter, header, maps::global, read, socket, state::SockState, totals};

/// Whether events of `sk` go out: yes once the connection was reported; if not, yes when
/// `trigger` (this moment matters for flow control), after the deferred open. `st` is the
/// caller's record of `sk` (sk_storage or the hash); the hash record is the one that decides, as
/// the open and close programs only see it.
#[inline(always)]
pub fn announce(sk: u64, st: &mut SockState, trigger: bool, hook: u8) -> bool {
    if st.reported != 0 {
        return true;
    }
    let Some(shared) = socket::shared(sk) else {
        // No hash record (its table is full): only the moments that matter go out.
        if trigger {
            st.reported = 1;
        }
        return trigger;
    };
    // SAFETY: a live map value for the program's run; `st` may be this very record, so it is
    // read and written through the pointer only where it must be.
    if unsafe { (*shared).reported } != 0 {
        st.reported = 1;
        return true;
    }
    if !trigger {
        return false;
    }
    // SAFETY: as above. Reading was not counted while quiet: it starts over at the next read.
    unsafe {
        (*shared).reported = 1;
        (*shared).read_since_ns = 0;
        (*shared).read_bytes = 0;
        (*shared).reads = 0;
    }
    st.reported = 1;
    // SAFETY: as above; read only from here on.
    let shared = unsafe { &*shared };
    totals::count(TOTAL_REPORTED, shared.service_port);
    if filter::wanted(shared) {
        opened_late(sk, shared, hook);
    }
    true
}

/// The open of a connection reported after it: the time and buffer kept at the open, the
/// handshake's results (fixed since) and the owner known now. A connection opened before the
/// tracer attached has no open: its owner is named.
#[inline(always)]
fn opened_late(sk: u64, st: &SockState, hook: u8) {
    if st.opened_ns == 0 {
        if st.owner != 0 {
            emit::fill(KIND_OWNER, |e: &mut OwnerEvent| {
                header::write_for_socket(&mut e.header, KIND_OWNER, hook, sk, st);
                e.comm = st.comm;
                e.cgroup = st.cgroup;
            });
        }
        return;
    }
    emit::fill(KIND_OPEN, |e: &mut LifecycleEvent| {
        header::write_for_socket(&mut e.header, KIND_OPEN, hook, sk, st);
        e.header.ts_ns = st.opened_ns;
        e.oldstate = st.open_from;
        e.newstate = TCP_ESTABLISHED;
        e.snd_wscale = read::field(sk, global!(OFFSETS.snd_wscale)).unwrap_or(0) as u8;
        e.rcv_wscale = read::field(sk, global!(OFFSETS.rcv_wscale)).unwrap_or(0) as u8;
        e.advmss = read::u32_field(sk, global!(OFFSETS.advmss));
        e.rcvbuf = st.open_rcvbuf;
        e.wscale_ok = read::field(sk, global!(OFFSETS.wscale_ok)).unwrap_or(0) as u8;
        e.deferred = 1;
        e.comm = st.comm;
    });
}
