//! The TCP segment a cgroup_skb program sees: the full TCP socket it belongs to and the header
//! fields the flow-control signals need. Shared by the egress (windows this host sends) and
//! ingress (windows the peer sends) programs.

use aya_ebpf::{
    bindings::__sk_buff, helpers::generated::bpf_skc_to_tcp_sock, programs::SkBuffContext,
};

const IPPROTO_TCP: u8 = 6;
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_RST: u8 = 0x04;
pub const TCP_FLAG_ACK: u8 = 0x10;
/// FIN, SYN, RST, PSH, ACK, URG: the flags byte without ECE and CWR, which ECN may add to any
/// segment, probes included.
pub const TCP_FLAGS_NO_ECN: u8 = 0x3f;

pub struct Segment {
    /// Address of the socket (struct tcp_sock).
    pub sk: u64,
    pub seq: u32,
    /// The acknowledgment number (meaningful with the ACK flag).
    pub ack_seq: u32,
    pub flags: u8,
    /// The 16-bit window field, unscaled.
    pub raw_window: u16,
    /// TCP payload bytes.
    pub payload: u32,
}

/// The segment in `ctx`, if it is TCP on a full socket.
#[inline(always)]
pub fn segment(ctx: &SkBuffContext) -> Option<Segment> {
    let skb: *mut __sk_buff = ctx.skb.skb;
    // SAFETY: the context pointer is valid for the program's run.
    let sk = unsafe { (*skb).__bindgen_anon_2.sk };
    if sk.is_null() {
        return None;
    }
    // One helper per segment, not two: bpf_skc_to_tcp_sock itself returns NULL unless `sk` is a
    // full socket of protocol TCP, so bpf_sk_fullsock before it would only repeat that check.
    // SAFETY: the helper accepts any socket pointer.
    let tp = unsafe { bpf_skc_to_tcp_sock(sk.cast()) };
    if tp.is_null() {
        return None;
    }

    // Direct packet access: the headers are in the linear part, and this runs per segment, so
    // no helper calls here. Every read is bounds-checked against data_end for the verifier.
    // SAFETY: the context pointer is valid; reads below are checked against data_end.
    let (data, end) = unsafe { ((*skb).data as usize, (*skb).data_end as usize) };
    // Any TCP segment has at least 40 bytes of headers (IPv4 20 + TCP 20, or IPv6 40 + ...):
    // one check covers the IP header fields read here.
    if data + 40 > end {
        return None;
    }
    // SAFETY: data + 40 <= data_end was checked just above.
    let byte = |at: usize| unsafe { *((data + at) as *const u8) };
    let first = byte(0);
    let tcp = match first >> 4 {
        4 => {
            if byte(9) != IPPROTO_TCP {
                return None;
            }
            data + ((first & 0x0f) as usize) * 4
        }
        6 => {
            // Extension headers are not followed: TCP sockets do not send them by default.
            if byte(6) != IPPROTO_TCP {
                return None;
            }
            data + 40
        }
        _ => return None,
    };
    // seq (4..8), ack_seq (8..12), data offset (12), flags (13), window (14..16).
    if tcp + 16 > end {
        return None;
    }
    // SAFETY: tcp + 16 <= data_end was checked just above.
    let (seq, ack_seq, doff, flags, raw) = unsafe {
        (
            u32::from_be(core::ptr::read_unaligned((tcp + 4) as *const u32)),
            u32::from_be(core::ptr::read_unaligned((tcp + 8) as *const u32)),
            ((*((tcp + 12) as *const u8) >> 4) as u32) * 4,
            *((tcp + 13) as *const u8),
            u16::from_be(core::ptr::read_unaligned((tcp + 14) as *const u16)),
        )
    };
    Some(Segment {
        sk: tp as u64,
        seq,
        ack_seq,
        flags,
        raw_window: raw,
        payload: ctx.len().wrapping_sub((tcp - data) as u32 + doff),
    })
}
