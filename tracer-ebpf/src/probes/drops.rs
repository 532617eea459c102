//! Segments dropped for lack of receive space, from skb:kfree_skb. Drop reasons are resolved by
//! name from the kernel's BTF by the agent (their numbers differ between kernels) and put in
//! DROP_REASONS; every other free returns after one map lookup.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::{
    config::{DROP_CLASS_BEYOND_WINDOW, DROP_CLASS_PROTO_MEM},
    event::{DropEvent, EventHeader, AF_INET, AF_INET6, HOOK_RAW_TP, KIND_DROP},
    totals::TOTAL_DROPS,
};

use crate::{
    emit, filter, header,
    maps::{global, DROP_REASONS},
    read, report, socket, totals,
};

const IPPROTO_TCP: u64 = 6;
/// tcp_sequence() counts RSTs it drops with the beyond-window reasons nowhere (they are not
/// data pushed into a window): not reported either.
const TCP_FLAG_RST: u8 = 0x04;

/// Kernels since 6.11 pass the receiving socket as a fourth argument. A raw tracepoint program
/// may not read past the kernel's argument count (attach fails), hence two programs.
#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn drops_rx_sk_raw_tp(ctx: RawTracePointContext) -> i32 {
    dropped(&ctx, ctx.arg::<u64>(3))
}

#[raw_tracepoint(tracepoint = "kfree_skb")]
pub fn drops_raw_tp(ctx: RawTracePointContext) -> i32 {
    dropped(&ctx, 0)
}

#[inline(always)]
fn dropped(ctx: &RawTracePointContext, rx_sk: u64) -> i32 {
    let reason = ctx.arg::<u64>(2) as u32;
    // SAFETY: lookup in a hash map of plain integers.
    let Some(&class) = (unsafe { DROP_REASONS.get(&reason) }) else {
        return 0;
    };
    let skb = ctx.arg::<u64>(0);
    let mut sk = rx_sk;
    if sk == 0 {
        sk = read::field(skb, global!(OFFSETS.skb_sk)).unwrap_or(0);
    }
    let mut bytes = read::u32_field(skb, global!(OFFSETS.skb_len));
    if class == DROP_CLASS_BEYOND_WINDOW {
        // Dropped in tcp_validate_incoming(), before the TCP header is pulled: skb->data is
        // the header, and skb->len still counts it.
        let th = read::field(skb, global!(OFFSETS.skb_data)).unwrap_or(0);
        let hdr = read::bytes::<2>(th + 12);
        if hdr[1] & TCP_FLAG_RST != 0 {
            return 0;
        }
        bytes = bytes.saturating_sub((hdr[0] >> 4) as u32 * 4);
    }
    let header = if sk != 0 && read::field(sk, global!(OFFSETS.sk_protocol)) == Some(IPPROTO_TCP) {
        let Some(st) = socket::get(sk) else {
            return 0;
        };
        // tcp_data_queue sets ICSK_ACK_NOMEM only for the in-sequence segment it cannot
        // queue (TCPRcvQDrop), not for an out-of-order one (TCPOFODrop).
        if class == DROP_CLASS_PROTO_MEM && in_sequence(sk, skb) {
            st.nomem_pending = 1;
        }
        totals::count(TOTAL_DROPS, st.service_port);
        // A drop for lack of space always matters: a quiet connection is reported from here.
        let _ = report::announce(sk, st, true, HOOK_RAW_TP);
        if !filter::wanted(st) {
            return 0;
        }
        header::for_socket(KIND_DROP, HOOK_RAW_TP, sk, st)
    } else {
        totals::count(TOTAL_DROPS, 0);
        match from_packet(skb) {
            Some(h) => h,
            None => return 0,
        }
    };
    emit::send(KIND_DROP, DropEvent { header, reason, bytes });
    0
}

/// Whether the dropped segment starts at rcv_nxt: TCP_SKB_CB(skb)->seq, the first word of
/// skb->cb on the receive path.
#[inline(always)]
fn in_sequence(sk: u64, skb: u64) -> bool {
    let cb = global!(OFFSETS.skb_cb);
    if !cb.is_present() {
        return false;
    }
    let seq = u32::from_ne_bytes(read::bytes::<4>(skb + cb.offset as u64));
    seq == read::u32_field(sk, global!(OFFSETS.rcv_nxt))
}

/// The header of a drop whose socket the kernel did not name: addresses and ports from the
/// packet, reversed so that saddr:sport is this host's end. Applies the port filter.
#[inline(always)]
fn from_packet(skb: u64) -> Option<EventHeader> {
    let head = read::field(skb, global!(OFFSETS.skb_head))?;
    let nh = read::field(skb, global!(OFFSETS.skb_network_header))?;
    let th = read::field(skb, global!(OFFSETS.skb_transport_header))?;
    let ip = head + nh;
    let first = read::bytes::<1>(ip)[0];
    let mut h = EventHeader {
        // SAFETY: helper without arguments.
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        sk: 0,
        kind: KIND_DROP,
        hook: HOOK_RAW_TP,
        family: AF_INET,
        sport: 0,
        dport: 0,
        pid: 0,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    match first >> 4 {
        4 => {
            if read::bytes::<1>(ip + 9)[0] as u64 != IPPROTO_TCP {
                return None;
            }
            let a = read::bytes::<8>(ip + 12);
            h.daddr[..4].copy_from_slice(&a[..4]);
            h.saddr[..4].copy_from_slice(&a[4..]);
        }
        6 => {
            if read::bytes::<1>(ip + 6)[0] as u64 != IPPROTO_TCP {
                return None;
            }
            h.family = AF_INET6;
            h.daddr = read::bytes::<16>(ip + 8);
            h.saddr = read::bytes::<16>(ip + 24);
        }
        _ => return None,
    }
    let ports = read::bytes::<4>(head + th);
    h.dport = u16::from_be_bytes([ports[0], ports[1]]);
    h.sport = u16::from_be_bytes([ports[2], ports[3]]);
    if !filter::ports_match(h.sport, h.dport) {
        return None;
    }
    // Without a socket there is no owner: a --pid filter cannot pass it.
    if global!(CONFIG.pid) != 0 {
        return None;
    }
    Some(h)
}
