//! The hook table: for each signal, the hooks that can serve it, best first. Attaching walks the
//! table, keeps the first hook that loads and attaches, and records why the others were skipped.
//! That record is what `tracer probes` and the first lines of `watch` print.

mod attach;

pub use attach::{attach_all, attach_floor, Attached};

use tracer_common::config::{
    EGRESS_PROBE, EGRESS_WINDOW, SWITCH_EGRESS, SWITCH_RECV_LENGTH, SWITCH_SEND_CHECK,
};

/// Which hook kinds may be tried: all, best first (fentry, kprobe, tracepoints, packets), or
/// only from kprobes down, or only packet-level and tracepoint hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiers {
    Auto,
    Kprobe,
    Packet,
}

impl Tiers {
    pub fn name(self) -> &'static str {
        match self {
            Tiers::Auto => "auto",
            Tiers::Kprobe => "kprobe",
            Tiers::Packet => "packet",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Window,
    Probe,
    RcvSpace,
    Lifecycle,
    Owner,
    PeerWindow,
    Drops,
    Reader,
}

impl Signal {
    /// In attach order: Reader may piggyback on RcvSpace's program.
    pub const ALL: [Signal; 8] = [
        Signal::Window,
        Signal::PeerWindow,
        Signal::Probe,
        Signal::RcvSpace,
        Signal::Reader,
        Signal::Drops,
        Signal::Lifecycle,
        Signal::Owner,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Signal::Window => "window",
            Signal::Probe => "zero-window probe",
            Signal::RcvSpace => "rcv-buffer autotune",
            Signal::Lifecycle => "open/close",
            Signal::Owner => "accepting process",
            Signal::PeerWindow => "peer window",
            Signal::Drops => "rcv-space drops",
            Signal::Reader => "read rate",
        }
    }
}

/// How a hook is attached. Each (program, kernel target) pair is attached as a unit.
#[derive(Clone, Copy, Debug)]
pub enum Attach {
    /// fentry and fexit programs (aya tells them apart by the program's section).
    Fentry(&'static [Target]),
    /// kprobes and kretprobes (aya tells them apart by the program's section).
    Kprobe(&'static [Target]),
    RawTracepoint(Target),
    /// Tracefs tracepoints, `kernel` as "category/name".
    Tracepoint(&'static [Target]),
    /// The cgroup_skb egress program (which signals it serves is the hook's switch).
    Egress,
    /// Served by another signal's program, which must be attached.
    Piggyback(&'static str),
    /// A cgroup_skb ingress program (peer windows), by name.
    Ingress(&'static str),
}

#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub program: &'static str,
    pub kernel: &'static str,
    /// The hook still serves the signal without this target (e.g. IPv6 when the kernel has none).
    pub optional: bool,
}

const fn t(program: &'static str, kernel: &'static str) -> Target {
    Target { program, kernel, optional: false }
}

const fn t_opt(program: &'static str, kernel: &'static str) -> Target {
    Target { program, kernel, optional: true }
}

#[derive(Clone, Copy, Debug)]
pub struct Hook {
    pub attach: Attach,
    /// What the user gets from this hook, in a few words.
    pub fidelity: &'static str,
    /// SWITCHES[index] |= value when this hook is chosen: tells the kernel programs which of
    /// them serves the signal.
    pub switch: Option<(u32, u32)>,
}

impl Hook {
    /// Whether `tiers` allows this hook.
    fn allowed(&self, tiers: Tiers) -> bool {
        match self.attach {
            Attach::Fentry(_) => tiers == Tiers::Auto,
            Attach::Kprobe(_) => tiers != Tiers::Packet,
            Attach::RawTracepoint(_)
            | Attach::Tracepoint(_)
            | Attach::Egress
            | Attach::Piggyback(_)
            | Attach::Ingress(_) => true,
        }
    }

    /// Whether this hook uses one of the programs named in `avoided` (a comma-separated list).
    pub fn uses_any(&self, avoided: &str) -> bool {
        let named = |program: &str| avoided.split(',').any(|a| a.trim() == program);
        match self.attach {
            Attach::Fentry(ts) | Attach::Kprobe(ts) | Attach::Tracepoint(ts) => {
                ts.iter().any(|t| named(t.program))
            }
            Attach::RawTracepoint(t) => named(t.program),
            Attach::Egress => named("egress_skb"),
            Attach::Piggyback(_) => false,
            Attach::Ingress(program) => named(program),
        }
    }

    pub fn label(&self) -> String {
        let join = |kind: &str, targets: &[Target]| {
            let names: Vec<&str> = targets.iter().map(|t| t.kernel).collect();
            format!("{kind} {}", names.join(", "))
        };
        match self.attach {
            Attach::Fentry(ts) => function_label(ts, ("fentry", "fexit")),
            // "kprobe" is not in "kretprobe": each program's name says which it is.
            Attach::Kprobe(ts) => function_label(ts, ("kprobe", "kretprobe")),
            Attach::RawTracepoint(t) => format!("raw tracepoint {}", t.kernel),
            Attach::Tracepoint(ts) => join("tracepoint", ts),
            Attach::Egress => "cgroup_skb egress (packet headers)".to_string(),
            Attach::Piggyback(program) => format!("the {program} program"),
            Attach::Ingress(DIRECT_INGRESS) => "cgroup_skb ingress (packet headers)".to_string(),
            Attach::Ingress(_) => "cgroup_skb ingress (packet headers; the socket read through \
                 bpf_probe_read_kernel)"
                .to_string(),
        }
    }
}

/// "fentry+fexit tcp_send_probe0": the kinds of program among `ts` (as their names say: entry
/// and exit), then the functions they attach to.
fn function_label(ts: &[Target], (entry, exit): (&str, &str)) -> String {
    let has = |kind: &str| ts.iter().any(|t| t.program.contains(kind));
    let kind = match (has(entry), has(exit)) {
        (true, true) => format!("{entry}+{exit}"),
        (false, true) => exit.to_string(),
        _ => entry.to_string(),
    };
    let mut seen: Vec<&str> = ts.iter().map(|t| t.kernel).collect();
    seen.dedup();
    format!("{kind} {}", seen.join(", "))
}

static WINDOW: [Hook; 3] = [
    Hook {
        attach: Attach::Fentry(&[
            t("window_v4_fentry", "tcp_v4_send_check"),
            t_opt("window_v6_fentry", "tcp_v6_send_check"),
            t_opt("wanted_fexit", "__tcp_select_window"),
        ]),
        fidelity: "exact: the header of every segment sent; out-of-memory zero windows (6.6+) \
                   told apart by the kernel's own flag; the window the kernel wanted before \
                   the no-shrink rule read from __tcp_select_window",
        switch: Some((SWITCH_SEND_CHECK, 1)),
    },
    Hook {
        attach: Attach::Kprobe(&[
            t("window_kprobe", "tcp_v4_send_check"),
            t_opt("window_kprobe", "tcp_v6_send_check"),
        ]),
        fidelity: "exact: the header of every segment sent; out-of-memory zero windows (6.6+) \
                   told apart by the kernel's own flag; per-socket state in a fixed-size table \
                   (sockets beyond it are counted and not traced); the window the kernel wanted \
                   is recomputed from the socket's state, not read",
        switch: Some((SWITCH_SEND_CHECK, 1)),
    },
    Hook {
        attach: Attach::Egress,
        fidelity: "exact: the header of every segment that reaches IP output; an out-of-memory \
                   zero window (6.6+) is known only after an in-sequence PROTO_MEM drop, not \
                   when the kernel queued the segment anyway; the window the kernel wanted is \
                   recomputed from the socket's state as the segment left, not read",
        switch: Some((SWITCH_EGRESS, EGRESS_WINDOW)),
    },
];

static PROBE: [Hook; 3] = [
    Hook {
        attach: Attach::Fentry(&[
            t("probe0_fentry", "tcp_send_probe0"),
            t("probe0_fexit", "tcp_send_probe0"),
        ]),
        fidelity: "exact: each probe segment sent (two in urgent mode, none when nothing left), \
                   backoff as the kernel set it",
        switch: None,
    },
    Hook {
        attach: Attach::Kprobe(&[
            t("probe0_kprobe", "tcp_send_probe0"),
            t("probe0_kretprobe", "tcp_send_probe0"),
        ]),
        fidelity: "exact: each probe segment sent (two in urgent mode, none when nothing left), \
                   backoff as the kernel set it",
        switch: None,
    },
    Hook {
        attach: Attach::Egress,
        fidelity: "probes recognised on the wire (pure ACK, seq = snd_una - 1, peer window 0 \
                   in the last segment received and in the socket, unsent data: keepalives \
                   excluded); backoff inferred; urgent-mode probes (seq = snd_una) not seen",
        switch: Some((SWITCH_EGRESS, EGRESS_PROBE)),
    },
];

static RCV_SPACE: [Hook; 1] = [Hook {
    attach: Attach::RawTracepoint(t("rcv_space_raw_tp", "tcp_rcv_space_adjust")),
    fidelity: "sampled at each read: after it where the read-rate hook runs at the end of \
               each read (sock_recv_length, fexit tcp_recvmsg); else before the adjustment, so \
               growth shows one read late",
    switch: None,
}];

static LIFECYCLE: [Hook; 1] = [Hook {
    attach: Attach::RawTracepoint(t("set_state_raw_tp", "inet_sock_set_state")),
    fidelity: "exact: every TCP state change",
    switch: None,
}];

/// Both function hooks on inet_csk_accept see the same.
const ACCEPT_FIDELITY: &str = "accepted sockets belong to their process from accept()";

/// The function hooks first: a syscall tracepoint sends every system call on the host through
/// the kernel's slower path while it is attached (about 15 ns a call, measured on 6.18).
static OWNER: [Hook; 3] = [
    Hook {
        attach: Attach::Fentry(&[t("accept_fexit", "inet_csk_accept")]),
        fidelity: ACCEPT_FIDELITY,
        switch: None,
    },
    Hook {
        attach: Attach::Kprobe(&[t("accept_kretprobe", "inet_csk_accept")]),
        fidelity: ACCEPT_FIDELITY,
        switch: None,
    },
    Hook {
        attach: Attach::Tracepoint(&[
            t("accept_exit", "syscalls/sys_exit_accept4"),
            t_opt("accept_exit", "syscalls/sys_exit_accept"),
        ]),
        fidelity: "accepted sockets belong to their process from accept(); every system call on \
                   the host takes the kernel's slower path while attached (about 15 ns a call)",
        switch: None,
    },
];

/// The ingress program that reads the socket by plain loads; `ingress_read`, the same with
/// bpf_probe_read_kernel (about 50 ns a segment dearer), is for a verifier that refuses them.
pub const DIRECT_INGRESS: &str = "ingress_skb";

/// Both ingress programs see the same: they differ only in how they read the socket.
const PEER_FIDELITY: &str =
    "exact: the header of every segment received, with in-flight bytes and rwnd-limited time";

static PEER_WINDOW: [Hook; 2] = [
    Hook { attach: Attach::Ingress(DIRECT_INGRESS), fidelity: PEER_FIDELITY, switch: None },
    Hook { attach: Attach::Ingress("ingress_read"), fidelity: PEER_FIDELITY, switch: None },
];

static READER: [Hook; 3] = [
    Hook {
        attach: Attach::RawTracepoint(t("recv_length_raw_tp", "sock_recv_length")),
        fidelity: "exact: bytes and calls of every read (6.3+), with pid, comm and cgroup, and \
                   the receive buffer after each read",
        switch: Some((SWITCH_RECV_LENGTH, 1)),
    },
    Hook {
        attach: Attach::Fentry(&[t("recvmsg_fexit", "tcp_recvmsg")]),
        fidelity: "exact: bytes and calls of every read, with pid, comm and cgroup, and the \
                   receive buffer after each read",
        switch: Some((SWITCH_RECV_LENGTH, 1)),
    },
    Hook {
        attach: Attach::Piggyback("rcv_space_raw_tp"),
        fidelity: "bytes read from copied_seq, with pid, comm and cgroup; calls counted per \
                   tcp_rcv_space_adjust (on 6.1 once per skb copied, not per read)",
        switch: None,
    },
];

static DROPS: [Hook; 2] = [
    Hook {
        attach: Attach::RawTracepoint(t("drops_rx_sk_raw_tp", "kfree_skb")),
        fidelity: "exact: drop reason and receiving socket (6.11+)",
        switch: None,
    },
    Hook {
        attach: Attach::RawTracepoint(t("drops_raw_tp", "kfree_skb")),
        fidelity: "drop reason; the socket from skb->sk, else the connection from the packet",
        switch: None,
    },
];

/// The hooks for `signal`, best first.
pub fn hooks(signal: Signal) -> &'static [Hook] {
    match signal {
        Signal::Window => &WINDOW,
        Signal::Probe => &PROBE,
        Signal::RcvSpace => &RCV_SPACE,
        Signal::Lifecycle => &LIFECYCLE,
        Signal::Owner => &OWNER,
        Signal::PeerWindow => &PEER_WINDOW,
        Signal::Drops => &DROPS,
        Signal::Reader => &READER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_kinds_of_program_and_the_functions() {
        let labels = |signal| hooks(signal).iter().map(Hook::label).collect::<Vec<_>>();
        assert_eq!(
            labels(Signal::Owner),
            [
                "fexit inet_csk_accept",
                "kretprobe inet_csk_accept",
                "tracepoint syscalls/sys_exit_accept4, syscalls/sys_exit_accept"
            ]
        );
        assert_eq!(
            labels(Signal::Probe)[..2],
            ["fentry+fexit tcp_send_probe0", "kprobe+kretprobe tcp_send_probe0"]
        );
        assert_eq!(
            labels(Signal::Window)[..2],
            [
                "fentry+fexit tcp_v4_send_check, tcp_v6_send_check, __tcp_select_window",
                "kprobe tcp_v4_send_check, tcp_v6_send_check"
            ]
        );
    }
}
