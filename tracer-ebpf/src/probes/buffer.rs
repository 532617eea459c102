//! The receive buffer as autotuning left it (rcvq_space.space, sk_rcvbuf and what follows them),
//! reported when it moved. Shared by the hooks that run at each read.

use tracer_common::event::{RcvSpaceEvent, KIND_RCV_SPACE};

use crate::{
    emit, filter, header,
    maps::global,
    read, report,
    socket::{self, SOCK_RCVBUF_LOCK},
    state::SockState,
};

/// Reports the socket's autotuning values if they moved since the last report. `st` is the
/// hash record.
#[inline(always)]
pub fn changed(sk: u64, st: &mut SockState, hook: u8) {
    // Autotuning at work is healthy: a quiet connection is reported from here only when its
    // buffer is pinned and still half full after a read (one read when it is not pinned).
    if st.reported == 0 && !pinned_and_filling(sk) {
        return;
    }
    if !report::announce(sk, st, true, hook) {
        return;
    }
    // Autotuning moves rcvq_space.space and sk_rcvbuf (window_clamp follows rcvbuf): compare
    // those two on every read, fetch the rest only when something changed.
    let space = read::u32_field(sk, global!(OFFSETS.rcvq_space));
    let rcvbuf = read::u32_field(sk, global!(OFFSETS.sk_rcvbuf));
    if space == st.space && rcvbuf == st.rcvbuf {
        return;
    }
    st.space = space;
    st.rcvbuf = rcvbuf;
    if !filter::wanted(st) {
        return;
    }
    let locks = socket::userlocks(sk);
    emit::send(
        KIND_RCV_SPACE,
        RcvSpaceEvent {
            header: header::for_socket(KIND_RCV_SPACE, hook, sk, st),
            space,
            rcvbuf,
            window_clamp: read::u32_field(sk, global!(OFFSETS.window_clamp)),
            rcv_ssthresh: read::u32_field(sk, global!(OFFSETS.rcv_ssthresh)),
            rmem_alloc: read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc)),
            locked: (locks & SOCK_RCVBUF_LOCK != 0) as u8,
            _pad: [0; 3],
            comm: st.comm,
        },
    );
}

/// SO_RCVBUF pinned the buffer, and it is at least half full after a read: the reader or the
/// pinned size limits the window.
#[inline(always)]
fn pinned_and_filling(sk: u64) -> bool {
    let locks = read::field(sk, global!(OFFSETS.sk_userlocks)).unwrap_or(0);
    if locks & SOCK_RCVBUF_LOCK == 0 {
        return false;
    }
    let rmem_alloc = read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc));
    rmem_alloc >= read::u32_field(sk, global!(OFFSETS.sk_rcvbuf)) / 2
}
