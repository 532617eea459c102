//! Struct field locations the kernel programs need, from the running kernel's BTF.

use anyhow::{Context as _, Result};
use tracer_common::offsets::{FieldLoc, KernelOffsets};

use super::btf::{Field, KernelBtf};

fn loc(f: Field) -> FieldLoc {
    FieldLoc {
        offset: f.offset,
        size: f.size as u8,
        shift: f.bit_shift,
        width: f.bit_width,
        _pad: 0,
    }
}

/// Resolves every field. Fields every kernel we support has are required (an error names the
/// missing one); the rest are optional and read as absent.
pub fn resolve(btf: &KernelBtf) -> Result<KernelOffsets> {
    // tcp_sock embeds inet_connection_sock embeds inet_sock embeds sock at offset 0, so every
    // path starts at tcp_sock and every offset is from the socket address.
    let req = |path: &str| -> Result<FieldLoc> {
        btf.member("tcp_sock", path).map(loc).with_context(|| {
            format!("this kernel's BTF lacks tcp_sock.{path}, which the tracer reads")
        })
    };
    let opt = |path: &str| -> FieldLoc {
        btf.member("tcp_sock", path).map(loc).unwrap_or(FieldLoc::MISSING)
    };
    const SK: &str = "inet_conn.icsk_inet.sk";
    const SKC: &str = "inet_conn.icsk_inet.sk.__sk_common";
    const ICSK: &str = "inet_conn";
    Ok(KernelOffsets {
        skc_family: req(&format!("{SKC}.skc_family"))?,
        skc_state: req(&format!("{SKC}.skc_state"))?,
        skc_num: req(&format!("{SKC}.skc_num"))?,
        skc_dport: req(&format!("{SKC}.skc_dport"))?,
        skc_rcv_saddr: req(&format!("{SKC}.skc_rcv_saddr"))?,
        skc_daddr: req(&format!("{SKC}.skc_daddr"))?,
        // Absent on kernels built without IPv6.
        skc_v6_rcv_saddr: opt(&format!("{SKC}.skc_v6_rcv_saddr")),
        skc_v6_daddr: opt(&format!("{SKC}.skc_v6_daddr")),
        sk_protocol: req(&format!("{SK}.sk_protocol"))?,
        sk_rcvbuf: req(&format!("{SK}.sk_rcvbuf"))?,
        // `sk_rmem_alloc` is a C macro for sk_backlog.rmem_alloc.
        sk_rmem_alloc: req(&format!("{SK}.sk_backlog.rmem_alloc"))?,
        sk_userlocks: req(&format!("{SK}.sk_userlocks"))?,
        sk_type: req(&format!("{SK}.sk_type"))?,
        icsk_backoff: req(&format!("{ICSK}.icsk_backoff"))?,
        icsk_probes_out: req(&format!("{ICSK}.icsk_probes_out"))?,
        icsk_rto: req(&format!("{ICSK}.icsk_rto"))?,
        icsk_ack_pending: req(&format!("{ICSK}.icsk_ack.pending"))?,
        icsk_ack_rcv_mss: req(&format!("{ICSK}.icsk_ack.rcv_mss"))?,
        sk_backlog_len: req(&format!("{SK}.sk_backlog.len"))?,
        scaling_ratio: opt("scaling_ratio"),
        // Without network namespaces (CONFIG_NET_NS off) skc_net is empty: the namespace's
        // sysctls then stay unknown.
        skc_net: opt(&format!("{SKC}.skc_net.net")),
        skc_prot: req(&format!("{SKC}.skc_prot"))?,
        net_tcp_rmem_max: array_item(btf, "net", "ipv4.sysctl_tcp_rmem", 2, 4),
        net_adv_win_scale: other_opt(btf, "net", "ipv4.sysctl_tcp_adv_win_scale"),
        net_shrink_window: other_opt(btf, "net", "ipv4.sysctl_tcp_shrink_window"),
        proto_memory_pressure: other(btf, "proto", "memory_pressure")?,
        rcv_wnd: req("rcv_wnd")?,
        rcv_nxt: req("rcv_nxt")?,
        copied_seq: req("copied_seq")?,
        rcv_ssthresh: req("rcv_ssthresh")?,
        window_clamp: req("window_clamp")?,
        snd_wnd: req("snd_wnd")?,
        snd_una: req("snd_una")?,
        snd_nxt: req("snd_nxt")?,
        packets_out: req("packets_out")?,
        advmss: req("advmss")?,
        rcv_wscale: req("rx_opt.rcv_wscale")?,
        snd_wscale: req("rx_opt.snd_wscale")?,
        wscale_ok: req("rx_opt.wscale_ok")?,
        rcvq_space: req("rcvq_space.space")?,
        write_seq: req("write_seq")?,
        mss_cache: req("mss_cache")?,
        srtt_us: req("srtt_us")?,
        chrono_start: req("chrono_start")?,
        chrono_stat: req("chrono_stat")?,
        chrono_type: req("chrono_type")?,
        bytes_acked: req("bytes_acked")?,
        bytes_sent: req("bytes_sent")?,
        data_segs_out: req("data_segs_out")?,
        max_window: req("max_window")?,
        mss_clamp: req("rx_opt.mss_clamp")?,
        snd_cwnd: req("snd_cwnd")?,
        sk_sndbuf: req(&format!("{SK}.sk_sndbuf"))?,
        sk_socket: req(&format!("{SK}.sk_socket"))?,
        socket_flags: other(btf, "socket", "flags")?,
        rcv_rtt: req("rcv_rtt_est.rtt_us")?,
        skb_data: other(btf, "sk_buff", "data")?,
        skb_len: other(btf, "sk_buff", "len")?,
        skb_sk: other(btf, "sk_buff", "sk")?,
        skb_head: other(btf, "sk_buff", "head")?,
        skb_network_header: other(btf, "sk_buff", "network_header")?,
        skb_transport_header: other(btf, "sk_buff", "transport_header")?,
        skb_cb: other(btf, "sk_buff", "cb")?,
        task_files: other(btf, "task_struct", "files")?,
        files_fdt: other(btf, "files_struct", "fdt")?,
        fdt_fd: other(btf, "fdtable", "fd")?,
        fdt_max_fds: other(btf, "fdtable", "max_fds")?,
        file_private_data: other(btf, "file", "private_data")?,
        socket_sk: other(btf, "socket", "sk")?,
    })
}

/// A member of some other struct, relative to that struct.
fn other(btf: &KernelBtf, root: &str, path: &str) -> Result<FieldLoc> {
    btf.member(root, path)
        .map(loc)
        .with_context(|| format!("this kernel's BTF lacks {root}.{path}, which the tracer reads"))
}

/// A member of some other struct that not every kernel has.
fn other_opt(btf: &KernelBtf, root: &str, path: &str) -> FieldLoc {
    btf.member(root, path).map(loc).unwrap_or(FieldLoc::MISSING)
}

/// Item `index` of an array member whose items are `item_size` bytes (absent if the array is
/// missing or shorter).
fn array_item(btf: &KernelBtf, root: &str, path: &str, index: u32, item_size: u8) -> FieldLoc {
    match btf.member(root, path) {
        Ok(f) if f.size >= (index + 1) * item_size as u32 => FieldLoc {
            offset: f.offset + index * item_size as u32,
            size: item_size,
            shift: 0,
            width: 0,
            _pad: 0,
        },
        _ => FieldLoc::MISSING,
    }
}
