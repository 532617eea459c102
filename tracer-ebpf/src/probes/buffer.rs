//! The receive buffer as autotuning left it (rcvq_space.space, sk_rcvbuf and what follows them),
//! reported when it moved. Shared by the hooks that run at each read.

use tracer_common::event::{RcvSpaceEvent, KIND_RCV_SPACE};

use crate::{emit, filter, header, maps::global, read, report, state::SockState};

/// sk_userlocks bit set by setsockopt(SO_RCVBUF): autotuning is off for this socket.
const SOCK_RCVBUF_LOCK: u64 = 2;

/// Reports the socket's autotuning values if they moved since the last report.
#[inline(always)]
pub fn changed(sk: u64, st: &mut SockState, hook: u8) {
    // Autotuning moves rcvq_space.space and sk_rcvbuf (window_clamp follows rcvbuf): compare
    // those two on every read, fetch the rest only when something changed.
    let space = read::u32_field(sk, global!(OFFSETS.rcvq_space));
    let rcvbuf = read::u32_field(sk, global!(OFFSETS.sk_rcvbuf));
    if space == st.space && rcvbuf == st.rcvbuf {
        return;
    }
    st.space = space;
    st.rcvbuf = rcvbuf;
    let locks = read::field(sk, global!(OFFSETS.sk_userlocks)).unwrap_or(0);
    let locked = locks & SOCK_RCVBUF_LOCK != 0;
    let rmem_alloc = read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc));
    // Autotuning at work is healthy; a pinned buffer that stays half full after a read is the
    // one that limits, and reports a quiet connection.
    let pinned_and_filling = locked && rmem_alloc >= rcvbuf / 2;
    if !report::announce(sk, st, pinned_and_filling, hook) || !filter::wanted(st) {
        return;
    }
    let clamp = read::u32_field(sk, global!(OFFSETS.window_clamp));
    let ssthresh = read::u32_field(sk, global!(OFFSETS.rcv_ssthresh));
    emit::send(
        KIND_RCV_SPACE,
        RcvSpaceEvent {
            header: header::for_socket(KIND_RCV_SPACE, hook, sk, st),
            space,
            rcvbuf,
            window_clamp: clamp,
            rcv_ssthresh: ssthresh,
            rmem_alloc,
            locked: locked as u8,
            _pad: [0; 3],
            comm: st.comm,
        },
    );
}
