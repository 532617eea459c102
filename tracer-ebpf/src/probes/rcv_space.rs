//! Receive-buffer autotuning, from tcp:tcp_rcv_space_adjust. The tracepoint fires at the top of
//! tcp_rcv_space_adjust() on every read, in the reader's process context: it also tells us which
//! process reads the socket (and, before 6.3, how much it reads). Values are emitted only when
//! they change.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::event::{RcvSpaceEvent, HOOK_RAW_TP, KIND_RCV_SPACE};

use super::reads;
use crate::{emit, maps::global, read, state};

/// sk_userlocks bit set by setsockopt(SO_RCVBUF): autotuning is off for this socket.
const SOCK_RCVBUF_LOCK: u64 = 2;

#[raw_tracepoint(tracepoint = "tcp_rcv_space_adjust")]
pub fn rcv_space_raw_tp(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    let Some(st) = state::get(sk) else {
        return 0;
    };
    state::learn_and_announce_owner(sk, st, HOOK_RAW_TP);
    // Where sock:sock_recv_length exists it counts reads; otherwise copied_seq does, here.
    if !reads::by_recv_length() {
        reads::count_copied(sk, st);
    }
    // Autotuning moves rcvq_space.space and sk_rcvbuf (window_clamp follows rcvbuf): compare
    // those two on every read, fetch the rest only when something changed.
    let space = read::u32_field(sk, global!(OFFSETS.rcvq_space));
    let rcvbuf = read::u32_field(sk, global!(OFFSETS.sk_rcvbuf));
    if space == st.space && rcvbuf == st.rcvbuf {
        return 0;
    }
    st.space = space;
    st.rcvbuf = rcvbuf;
    if !state::wanted(st) {
        return 0;
    }
    let clamp = read::u32_field(sk, global!(OFFSETS.window_clamp));
    let ssthresh = read::u32_field(sk, global!(OFFSETS.rcv_ssthresh));
    let locks = read::field(sk, global!(OFFSETS.sk_userlocks)).unwrap_or(0);
    emit::send(
        KIND_RCV_SPACE,
        RcvSpaceEvent {
            header: emit::header(KIND_RCV_SPACE, HOOK_RAW_TP, sk, st),
            space,
            rcvbuf,
            window_clamp: clamp,
            rcv_ssthresh: ssthresh,
            rmem_alloc: read::u32_field(sk, global!(OFFSETS.sk_rmem_alloc)),
            locked: (locks & SOCK_RCVBUF_LOCK != 0) as u8,
            _pad: [0; 3],
            comm: st.comm,
        },
    );
    0
}
