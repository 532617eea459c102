//! Connection open and close, from sock:inet_sock_set_state (TCP sockets only).

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::event::{
    LifecycleEvent, HOOK_RAW_TP, KIND_CLOSE, KIND_OPEN, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN,
    TCP_SYN_RECV, TCP_SYN_SENT,
};

use crate::{emit, filter, header, maps::global, read, socket};

const IPPROTO_TCP: u64 = 6;

#[raw_tracepoint(tracepoint = "inet_sock_set_state")]
pub fn set_state_raw_tp(ctx: RawTracePointContext) -> i32 {
    let sk = ctx.arg::<u64>(0);
    // TCP states fit in a byte (the kernel keeps them in skc_state, an unsigned char).
    let old = ctx.arg::<u64>(1) as u8;
    let new = ctx.arg::<u64>(2) as u8;
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
        TCP_ESTABLISHED => {
            if let Some(st) = socket::get(sk) {
                super::reads::start(sk, st);
            }
            lifecycle(sk, KIND_OPEN, old, new);
        }
        TCP_CLOSE => {
            // Listeners and handshakes that never completed are not connections to report.
            if old != TCP_LISTEN && old != TCP_SYN_SENT && old != TCP_SYN_RECV {
                if let Some(st) = socket::find(sk) {
                    // SAFETY: helper without arguments.
                    super::reads::report(sk, st, unsafe { bpf_ktime_get_ns() }, HOOK_RAW_TP);
                }
                lifecycle(sk, KIND_CLOSE, old, new);
            }
            socket::forget(sk);
        }
        _ => {}
    }
    0
}

#[inline(always)]
fn lifecycle(sk: u64, kind: u16, old: u8, new: u8) {
    // This tracepoint fires after TCP_CLOSE released the local port (inet_sk_state_store runs
    // last in tcp_set_state): a close is reported only with the ports learned while open.
    let st = if kind == KIND_OPEN { socket::get(sk) } else { socket::find(sk) };
    let Some(st) = st else {
        return;
    };
    if kind == KIND_OPEN {
        socket::read_ports(sk, st);
    }
    if !filter::wanted(st) {
        return;
    }
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
            _pad: [0; 3],
            comm: st.comm,
        },
    );
}
