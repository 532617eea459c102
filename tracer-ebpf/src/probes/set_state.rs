//! Connection open and close, from sock:inet_sock_set_state (TCP sockets only). Every open and
//! close is counted in the host totals; the events go out for reported connections only (see
//! `report`): a quiet connection's open-time facts wait in its record.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::{
    event::{
        LifecycleEvent, HOOK_RAW_TP, KIND_CLOSE, KIND_OPEN, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
        TCP_SYN_RECV, TCP_SYN_SENT,
    },
    totals::{TOTAL_CLOSED, TOTAL_OPENED_ACTIVE, TOTAL_OPENED_PASSIVE, TOTAL_REPORTED},
};

use crate::{emit, filter, header, maps::global, read, socket, state::SockState, totals};

const IPPROTO_TCP: u64 = 6;

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn set_state_raw_tp(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    // TCP states fit in a byte (the kernel keeps them in skc_state, an unsigned char).
    let old = ctx.arg::<u64>(1) as u8;
    let new = ctx.arg::<u64>(2) as u8;
    // Half of a connection's transitions (FIN_WAIT1, FIN_WAIT2, CLOSE_WAIT, LAST_ACK, ...) are
    // none of these: they cost no read of the socket.
    if !matches!(new, TCP_SYN_SENT | TCP_SYN_RECV | TCP_ESTABLISHED | TCP_CLOSE) {
        return 0;
    }
    if read::field(sk, global!(OFFSETS.sk_protocol)).unwrap_or(0) != IPPROTO_TCP {
        return 0;
    }
    match new {
        // A connection starts: nothing an earlier socket at this address left may carry over.
        // connect() runs this transition in the caller's process context.
        TCP_SYN_SENT => {
            if let Some(st) = socket::reset(sk) {
                let _ = socket::learn_owner(st);
            }
        }
        TCP_SYN_RECV => {
            let _ = socket::reset(sk);
        }
        TCP_ESTABLISHED => opened(sk, old),
        TCP_CLOSE => {
            let st = socket::find(sk);
            // Listeners and handshakes that never completed are not connections to report.
            let connection = old != TCP_LISTEN && old != TCP_SYN_SENT && old != TCP_SYN_RECV;
            // A window closed at zero may reopen in the reset tcp_close sends next: the window
            // programs (whose state is this record) forget it then.
            let keep = st.as_ref().is_some_and(|st| st.last_raw == 0);
            if connection {
                closed(sk, st, old);
            }
            if !keep {
                socket::forget(sk);
            }
        }
        _ => {}
    }
    0
}

#[inline(always)]
fn opened(sk: u64, old: u8) {
    let total = if old == TCP_SYN_SENT { TOTAL_OPENED_ACTIVE } else { TOTAL_OPENED_PASSIVE };
    let Some(st) = socket::get(sk) else {
        // Untracked (the per-socket table is full): still counted, under its service port.
        let sport = read::field(sk, global!(OFFSETS.skc_num)).unwrap_or(0) as u16;
        let dport = u16::from_be(read::field(sk, global!(OFFSETS.skc_dport)).unwrap_or(0) as u16);
        totals::count(total, if total == TOTAL_OPENED_ACTIVE { dport } else { sport });
        return;
    };
    super::reads::start(sk, st);
    socket::read_ports(sk, st);
    st.service_port = if total == TOTAL_OPENED_ACTIVE { st.dport } else { st.sport };
    totals::count(total, st.service_port);
    // SAFETY: helper without arguments.
    st.opened_ns = unsafe { bpf_ktime_get_ns() };
    st.open_from = old;
    st.open_rcvbuf = read::u32_field(sk, global!(OFFSETS.sk_rcvbuf));
    if st.reported == 0 || !filter::wanted(st) {
        return;
    }
    totals::count(TOTAL_REPORTED, st.service_port);
    lifecycle(sk, st, KIND_OPEN, old, TCP_ESTABLISHED);
}

#[inline(always)]
fn closed(sk: u64, st: Option<&mut SockState>, old: u8) {
    // This tracepoint fires after TCP_CLOSE released the local port (inet_sk_state_store runs
    // last in tcp_set_state): a close is reported only with the ports learned while open.
    let Some(st) = st else {
        totals::count(TOTAL_CLOSED, 0);
        return;
    };
    totals::count(TOTAL_CLOSED, st.service_port);
    if st.reported == 0 {
        return;
    }
    // SAFETY: helper without arguments.
    super::reads::report(sk, st, unsafe { bpf_ktime_get_ns() }, HOOK_RAW_TP);
    if filter::wanted(st) {
        lifecycle(sk, st, KIND_CLOSE, old, TCP_CLOSE);
    }
}

#[inline(always)]
fn lifecycle(sk: u64, st: &SockState, kind: u16, old: u8, new: u8) {
    emit::send(
        kind,
        LifecycleEvent {
            header: header::for_socket(kind, HOOK_RAW_TP, sk, st),
            oldstate: old,
            newstate: new,
            snd_wscale: read::field(sk, global!(OFFSETS.snd_wscale)).unwrap_or(0) as u8,
            rcv_wscale: read::field(sk, global!(OFFSETS.rcv_wscale)).unwrap_or(0) as u8,
            advmss: read::u32_field(sk, global!(OFFSETS.advmss)),
            rcvbuf: read::u32_field(sk, global!(OFFSETS.sk_rcvbuf)),
            wscale_ok: read::field(sk, global!(OFFSETS.wscale_ok)).unwrap_or(0) as u8,
            deferred: 0,
            _pad: [0; 2],
            comm: st.comm,
        },
    );
}
