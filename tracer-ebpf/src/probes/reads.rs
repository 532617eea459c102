//! How fast the owning process reads each socket: bytes and calls, reported about once a second
//! per socket (and at close). Counted at the end of each read, where the receive buffer is also
//! compared after autotuning: by sock:sock_recv_length where the kernel has it (6.3+), else by
//! fexit tcp_recvmsg; failing both, from copied_seq in tcp_rcv_space_adjust, which runs during
//! every read (on 6.1 once per skb copied).

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{fexit, raw_tracepoint},
    programs::{FExitContext, RawTracePointContext},
};
use tracer_common::{
    config::SWITCH_RECV_LENGTH,
    event::{ReadEvent, HOOK_FEXIT, HOOK_RAW_TP, KIND_READ, READ_REPORT_NS},
};

use crate::{
    emit, filter, header,
    maps::{global, SWITCHES},
    read, socket,
    state::SockState,
};

const IPPROTO_TCP: u64 = 6;
/// recv flag: data is looked at, not consumed.
const MSG_PEEK: u64 = 2;

/// Whether a hook at the end of each read (sock_recv_length or fexit tcp_recvmsg) counts reads
/// on this kernel (the agent sets it after attach).
#[inline(always)]
pub fn at_read_end() -> bool {
    SWITCHES.get(SWITCH_RECV_LENGTH).is_some_and(|v| *v != 0)
}

/// sock:sock_recv_length(sk, ret, flags) fires in sock_recvmsg for every socket type.
#[raw_tracepoint(tracepoint = "sock_recv_length")]
pub fn recv_length_raw_tp(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    let ret = ctx.arg::<u64>(1) as i32;
    let flags = ctx.arg::<u64>(2);
    if read::field(sk, global!(OFFSETS.sk_protocol)) != Some(IPPROTO_TCP) {
        return 0;
    }
    read_done(sk, ret, flags, HOOK_RAW_TP);
    0
}

/// tcp_recvmsg(sk, msg, len, flags, addr_len) returned `ret`: where sock_recv_length is missing
/// (before 6.3), the end of each TCP read.
#[fexit(function = "tcp_recvmsg")]
pub fn recvmsg_fexit(ctx: FExitContext) -> u32 {
    read_done(ctx.arg::<u64>(0), ctx.arg::<u64>(5) as i32, ctx.arg::<u64>(3), HOOK_FEXIT);
    0
}

/// A read of `ret` bytes with `flags` ended on TCP socket `sk`.
#[inline(always)]
fn read_done(sk: u64, ret: i32, flags: u64, hook: u8) {
    if ret <= 0 || flags & MSG_PEEK != 0 {
        return;
    }
    let Some(st) = socket::get(sk) else {
        return;
    };
    socket::learn_and_announce_owner(sk, st, hook);
    if st.reported == 0 {
        // A quiet connection's reads are not reported (`report` restarts the count): only a
        // pinned buffer that stays full matters.
        super::buffer::changed(sk, st, hook);
        return;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if st.read_since_ns == 0 {
        st.read_since_ns = now;
    }
    st.read_bytes += ret as u64;
    st.reads += 1;
    if now.wrapping_sub(st.read_since_ns) >= READ_REPORT_NS {
        report(sk, st, now, hook);
    }
    // The read is over, and with it tcp_rcv_space_adjust(): the buffer as autotuning left it.
    super::buffer::changed(sk, st, hook);
}

/// Starts counting at the connection's open: copied_seq is where reading starts.
#[inline(always)]
pub fn start(sk: u64, st: &mut SockState) {
    st.copied = read::u32_field(sk, global!(OFFSETS.copied_seq));
    // SAFETY: helper without arguments.
    st.read_since_ns = unsafe { bpf_ktime_get_ns() };
}

/// Adds what the reader consumed since the last call: copied_seq moves by the bytes read.
#[inline(always)]
pub fn count_copied(sk: u64, st: &mut SockState) {
    let copied = read::u32_field(sk, global!(OFFSETS.copied_seq));
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_ns() };
    if st.read_since_ns == 0 {
        // Opened before the tracer attached: count from here.
        st.read_since_ns = now;
    } else {
        st.read_bytes += copied.wrapping_sub(st.copied) as u64;
        st.reads += 1;
    }
    st.copied = copied;
    if now.wrapping_sub(st.read_since_ns) >= READ_REPORT_NS {
        report(sk, st, now, HOOK_RAW_TP);
    }
}

/// Sends what was read since the last report, if anything (and the connection is reported:
/// reading is no flow-control moment by itself), and starts a new interval. `st` is the hash
/// record.
#[inline(always)]
pub fn report(sk: u64, st: &mut SockState, now: u64, hook: u8) {
    if st.read_bytes > 0 && st.reported != 0 && filter::wanted(st) {
        emit::fill(KIND_READ, |e: &mut ReadEvent| {
            header::write_for_socket(&mut e.header, KIND_READ, hook, sk, st);
            e.bytes = st.read_bytes;
            e.interval_ns = now.wrapping_sub(st.read_since_ns);
            e.reads = st.reads;
            e.rcv_rtt_us = read::u32_field(sk, global!(OFFSETS.rcv_rtt)) >> 3;
            e.comm = st.comm;
            e.cgroup = st.cgroup;
            e.rcv_wnd = read::u32_field(sk, global!(OFFSETS.rcv_wnd));
        });
    }
    st.read_bytes = 0;
    st.reads = 0;
    st.read_since_ns = now;
}
