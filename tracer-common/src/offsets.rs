//! Kernel struct field locations, resolved from the running kernel's BTF by the agent and handed to
//! the kernel programs at load time. Nothing here is hard-coded for one kernel.

/// Where one field lives relative to the start of `struct sock` (which is also the start of
/// `struct tcp_sock`): read `size` bytes at `offset`, then `(v >> shift) & mask(width)`.
/// `width == 0` means the whole value; `offset == ABSENT` means this kernel has no such field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLoc {
    pub offset: u32,
    pub size: u8,
    pub shift: u8,
    pub width: u8,
    pub _pad: u8,
}

impl FieldLoc {
    pub const ABSENT: u32 = u32::MAX;
    pub const MISSING: FieldLoc =
        FieldLoc { offset: Self::ABSENT, size: 0, shift: 0, width: 0, _pad: 0 };

    pub const fn is_present(&self) -> bool {
        self.offset != Self::ABSENT
    }
}

/// Every field the kernel programs read. Offsets are from the socket base unless noted.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct KernelOffsets {
    // struct sock_common
    pub skc_family: FieldLoc,
    pub skc_state: FieldLoc,
    pub skc_num: FieldLoc,
    pub skc_dport: FieldLoc,
    pub skc_rcv_saddr: FieldLoc,
    pub skc_daddr: FieldLoc,
    pub skc_v6_rcv_saddr: FieldLoc,
    pub skc_v6_daddr: FieldLoc,
    // struct sock
    pub sk_protocol: FieldLoc,
    pub sk_rcvbuf: FieldLoc,
    pub sk_rmem_alloc: FieldLoc,
    pub sk_userlocks: FieldLoc,
    /// SOCK_STREAM for TCP connections; the per-netns TCP control socket is SOCK_RAW.
    pub sk_type: FieldLoc,
    // struct inet_connection_sock
    pub icsk_backoff: FieldLoc,
    pub icsk_probes_out: FieldLoc,
    pub icsk_rto: FieldLoc,
    /// icsk_ack.pending: ICSK_ACK_NOMEM (6.6+) is set there until the next ACK is sent.
    pub icsk_ack_pending: FieldLoc,
    pub icsk_ack_rcv_mss: FieldLoc,
    pub sk_backlog_len: FieldLoc,
    /// 6.6+: tcp_win_from_space() scales by it.
    pub scaling_ratio: FieldLoc,
    /// sock_common.skc_net.net and .skc_prot: the socket's namespace and protocol.
    pub skc_net: FieldLoc,
    pub skc_prot: FieldLoc,
    /// Relative to struct net: ipv4.sysctl_tcp_rmem[2], ipv4.sysctl_tcp_adv_win_scale,
    /// ipv4.sysctl_tcp_shrink_window (6.5+, 6.1.59+).
    pub net_tcp_rmem_max: FieldLoc,
    pub net_adv_win_scale: FieldLoc,
    pub net_shrink_window: FieldLoc,
    /// Relative to struct proto: memory_pressure (a pointer to the protocol's flag).
    pub proto_memory_pressure: FieldLoc,
    // struct tcp_sock
    pub rcv_wnd: FieldLoc,
    pub rcv_nxt: FieldLoc,
    pub copied_seq: FieldLoc,
    pub rcv_ssthresh: FieldLoc,
    pub window_clamp: FieldLoc,
    pub snd_wnd: FieldLoc,
    pub snd_una: FieldLoc,
    pub snd_nxt: FieldLoc,
    pub packets_out: FieldLoc,
    pub advmss: FieldLoc,
    pub rcv_wscale: FieldLoc,
    pub snd_wscale: FieldLoc,
    pub wscale_ok: FieldLoc,
    pub rcvq_space: FieldLoc,
    pub write_seq: FieldLoc,
    pub mss_cache: FieldLoc,
    pub srtt_us: FieldLoc,
    pub chrono_start: FieldLoc,
    /// u32[3] in jiffies: busy, rwnd-limited, sndbuf-limited.
    pub chrono_stat: FieldLoc,
    pub chrono_type: FieldLoc,
    pub bytes_acked: FieldLoc,
    /// tp->bytes_sent and tp->data_segs_out (tcp_info's): the mean size of the segments sent.
    pub bytes_sent: FieldLoc,
    pub data_segs_out: FieldLoc,
    /// tp->max_window: the largest window the peer offered.
    pub max_window: FieldLoc,
    /// tp->rx_opt.mss_clamp: the MSS the peer announced (capped by TCP_MAXSEG), before the
    /// kernel cuts mss_cache to half a small window.
    pub mss_clamp: FieldLoc,
    pub snd_cwnd: FieldLoc,
    pub sk_sndbuf: FieldLoc,
    /// sock.sk_socket, and socket.flags (relative to the socket): SOCK_NOSPACE says the
    /// application found the send buffer full.
    pub sk_socket: FieldLoc,
    pub socket_flags: FieldLoc,
    /// rcv_rtt_est.rtt_us: the receiver's RTT estimate, in microseconds << 3.
    pub rcv_rtt: FieldLoc,
    /// struct sk_buff fields, relative to the skb, not the socket.
    pub skb_data: FieldLoc,
    pub skb_len: FieldLoc,
    pub skb_sk: FieldLoc,
    pub skb_head: FieldLoc,
    pub skb_network_header: FieldLoc,
    pub skb_transport_header: FieldLoc,
    /// sk_buff.cb, where TCP keeps struct tcp_skb_cb (its first u32 is the segment's seq).
    pub skb_cb: FieldLoc,
    // From a task to the socket behind one of its file descriptors, each relative to its own
    // struct: task_struct.files, files_struct.fdt, fdtable.fd / max_fds, file.private_data,
    // socket.sk.
    pub task_files: FieldLoc,
    pub files_fdt: FieldLoc,
    pub fdt_fd: FieldLoc,
    pub fdt_max_fds: FieldLoc,
    pub file_private_data: FieldLoc,
    pub socket_sk: FieldLoc,
}

impl KernelOffsets {
    pub const MISSING: KernelOffsets = KernelOffsets {
        skc_family: FieldLoc::MISSING,
        skc_state: FieldLoc::MISSING,
        skc_num: FieldLoc::MISSING,
        skc_dport: FieldLoc::MISSING,
        skc_rcv_saddr: FieldLoc::MISSING,
        skc_daddr: FieldLoc::MISSING,
        skc_v6_rcv_saddr: FieldLoc::MISSING,
        skc_v6_daddr: FieldLoc::MISSING,
        sk_protocol: FieldLoc::MISSING,
        sk_rcvbuf: FieldLoc::MISSING,
        sk_rmem_alloc: FieldLoc::MISSING,
        sk_userlocks: FieldLoc::MISSING,
        sk_type: FieldLoc::MISSING,
        icsk_backoff: FieldLoc::MISSING,
        icsk_probes_out: FieldLoc::MISSING,
        icsk_rto: FieldLoc::MISSING,
        icsk_ack_pending: FieldLoc::MISSING,
        icsk_ack_rcv_mss: FieldLoc::MISSING,
        sk_backlog_len: FieldLoc::MISSING,
        scaling_ratio: FieldLoc::MISSING,
        skc_net: FieldLoc::MISSING,
        skc_prot: FieldLoc::MISSING,
        net_tcp_rmem_max: FieldLoc::MISSING,
        net_adv_win_scale: FieldLoc::MISSING,
        net_shrink_window: FieldLoc::MISSING,
        proto_memory_pressure: FieldLoc::MISSING,
        rcv_wnd: FieldLoc::MISSING,
        rcv_nxt: FieldLoc::MISSING,
        copied_seq: FieldLoc::MISSING,
        rcv_ssthresh: FieldLoc::MISSING,
        window_clamp: FieldLoc::MISSING,
        snd_wnd: FieldLoc::MISSING,
        snd_una: FieldLoc::MISSING,
        snd_nxt: FieldLoc::MISSING,
        packets_out: FieldLoc::MISSING,
        advmss: FieldLoc::MISSING,
        rcv_wscale: FieldLoc::MISSING,
        snd_wscale: FieldLoc::MISSING,
        wscale_ok: FieldLoc::MISSING,
        rcvq_space: FieldLoc::MISSING,
        write_seq: FieldLoc::MISSING,
        mss_cache: FieldLoc::MISSING,
        srtt_us: FieldLoc::MISSING,
        chrono_start: FieldLoc::MISSING,
        chrono_stat: FieldLoc::MISSING,
        chrono_type: FieldLoc::MISSING,
        bytes_acked: FieldLoc::MISSING,
        bytes_sent: FieldLoc::MISSING,
        data_segs_out: FieldLoc::MISSING,
        max_window: FieldLoc::MISSING,
        mss_clamp: FieldLoc::MISSING,
        snd_cwnd: FieldLoc::MISSING,
        sk_sndbuf: FieldLoc::MISSING,
        sk_socket: FieldLoc::MISSING,
        socket_flags: FieldLoc::MISSING,
        rcv_rtt: FieldLoc::MISSING,
        skb_data: FieldLoc::MISSING,
        skb_len: FieldLoc::MISSING,
        skb_sk: FieldLoc::MISSING,
        skb_head: FieldLoc::MISSING,
        skb_network_header: FieldLoc::MISSING,
        skb_transport_header: FieldLoc::MISSING,
        skb_cb: FieldLoc::MISSING,
        task_files: FieldLoc::MISSING,
        files_fdt: FieldLoc::MISSING,
        fdt_fd: FieldLoc::MISSING,
        fdt_max_fds: FieldLoc::MISSING,
        file_private_data: FieldLoc::MISSING,
        socket_sk: FieldLoc::MISSING,
    };
}

const _: () = assert!(core::mem::size_of::<FieldLoc>() == 8);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 69 * 8);

#[cfg(feature = "user")]
// SAFETY: plain old data: integers only, no padding beyond the explicit `_pad` fields.
unsafe impl aya::Pod for KernelOffsets {}
