//! Receive-buffer autotuning, from tcp:tcp_rcv_space_adjust. The tracepoint fires at the top of
//! tcp_rcv_space_adjust() on every read, in the reader's process context: it also tells us which
//! process reads the socket. Values are emitted only when they change.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::event::{
    RcvSpaceEvent, ReadEvent, HOOK_RAW_TP, KIND_RCV_SPACE, KIND_READ, READ_REPORT_NS,
};

use crate::{
    emit,
    maps::global,
    read,
    state::{self, SockState},
};

/// sk_userlocks bit set by setsockopt(SO_RCVBUF): autotuning is off for this socket.
const SOCK_RCVBUF_LOCK: u64 = 2;

#[raw_tracepoint(tracepoint = "tcp_rcv_space_adjust")]
pub fn rcv_space_raw_tp(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    let Some(st) = state::get(sk) else {
        return 0;
    };
    state::learn_owner(st);
    count_read(sk, st);
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

/// Adds what the reader consumed since the last call (copied_seq moves by the bytes read) and
/// reports the total about once a second.
#[inline(always)]
fn count_read(sk: u64, st: &mut SockState) {
    let copied = read::u32_field(sk, global!(OFFSETS.copied_seq));
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if st.read_since_ns == 0 {
        st.read_since_ns = now;
    } else {
        st.read_bytes += copied.wrapping_sub(st.copied) as u64;
        st.reads += 1;
    }
    st.copied = copied;
    if now.wrapping_sub(st.read_since_ns) >= READ_REPORT_NS {
        report_reads(sk, st, now);
    }
}

/// Sends what was read since the last report, if anything, and starts a new interval.
#[inline(always)]
pub fn report_reads(sk: u64, st: &mut SockState, now: u64) {
    if st.read_bytes > 0 && state::wanted(st) {
        emit::send(
            KIND_READ,
            ReadEvent {
                header: emit::header(KIND_READ, HOOK_RAW_TP, sk, st),
                bytes: st.read_bytes,
                interval_ns: now.wrapping_sub(st.read_since_ns),
                reads: st.reads,
                _pad: 0,
                comm: st.comm,
            },
        );
    }
    st.read_bytes = 0;
    st.reads = 0;
    st.read_since_ns = now;
}
