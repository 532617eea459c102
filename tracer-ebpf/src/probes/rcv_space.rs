//! Receive-buffer autotuning: rcvq_space.space and sk_rcvbuf, emitted when they change.
//!
//! Where sock:sock_recv_length (6.3+) or fexit tcp_recvmsg exists they are compared there, after
//! each read, when tcp_rcv_space_adjust() has done its work. Elsewhere tcp:tcp_rcv_space_adjust serves: it fires
//! at the top of that function (before the adjustment, so growth shows one read late, and on
//! 6.1 once per skb copied), in the reader's process context, so it also names the reader and
//! counts what it read.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::event::HOOK_RAW_TP;

use super::{buffer, reads};
use crate::socket;

#[raw_tracepoint(tracepoint = "tcp_rcv_space_adjust")]
pub fn rcv_space_raw_tp(ctx: RawTracePointContext) -> i32 {
    // Where a hook at the end of each read exists it does all of this, after the adjustment.
    if reads::at_read_end() {
        return 0;
    }
    let sk = ctx.arg::<u64>(0);
    let Some(st) = socket::get(sk) else {
        return 0;
    };
    socket::learn_and_announce_owner(sk, st, HOOK_RAW_TP);
    // A quiet connection's reads are not reported (`report` restarts the count).
    if st.reported != 0 {
        reads::count_copied(sk, st);
    }
    buffer::changed(sk, st, HOOK_RAW_TP);
    0
}
