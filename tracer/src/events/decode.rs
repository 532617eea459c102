//! The single place that turns raw ring-buffer records into events. A window record that crosses
//! zero becomes two events (the window, and the zero-window start or end).

use std::{
    collections::HashMap,
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    sync::Arc,
};

use compact_str::{format_compact, CompactString};

use super::limit;
pub use super::model::{Body, Event, LocalState, SendLimits, SenderState, SentSegments, Side};

use tracer_common::event::{
    DropEvent, EventHeader, LifecycleEvent, OwnerEvent, PeerEvent, ProbeEvent, RcvSpaceEvent,
    ReadEvent, WindowEvent, AF_INET6, KIND_CLOSE, KIND_DROP, KIND_OPEN, KIND_OWNER, KIND_PEER,
    KIND_PROBE, KIND_RCV_SPACE, KIND_READ, KIND_WINDOW, TCP_CLOSE, TCP_CLOSE_WAIT, TCP_CLOSING,
    TCP_ESTABLISHED, TCP_FIN_WAIT1, TCP_FIN_WAIT2, TCP_LAST_ACK, TCP_LISTEN, TCP_NEW_SYN_RECV,
    TCP_SYN_RECV, TCP_SYN_SENT, TCP_TIME_WAIT, TRANSITION_FROM_ZERO, TRANSITION_NONE,
    TRANSITION_TO_ZERO, TRANSITION_TO_ZERO_UNCOUNTED,
};

#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    Short { len: usize, need: usize },
    UnknownKind(u16),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { len, need } => write!(f, "record of {len} bytes, expected {need}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
        }
    }
}

/// What decoding needs to know about the kernel and the clock.
#[derive(Clone, Debug)]
pub struct KernelFacts {
    /// CLOCK_REALTIME - CLOCK_MONOTONIC, nanoseconds.
    pub realtime_offset_ns: i64,
    /// CONFIG_HZ, when known: converts jiffies (icsk_rto).
    pub hz: Option<u32>,
    /// net.ipv4.tcp_retries2: the kernel stops growing the probe backoff there.
    pub retries2: u8,
    /// Names of the kfree_skb drop reasons the kernel side reports, by this kernel's numbers.
    pub drop_reasons: HashMap<u32, String>,
    /// Where the cgroup-v2 hierarchy is mounted, to turn cgroup ids into paths.
    pub cgroup_root: Option<PathBuf>,
    /// Decoding live events on this host (process names can be looked up in /proc).
    pub live: bool,
}

impl KernelFacts {
    /// Jiffies to milliseconds; CONFIG_HZ=250 (Debian's) when the configuration is unknown.
    fn jiffies_ms(&self, jiffies: u32) -> u64 {
        jiffies as u64 * 1000 / self.hz.unwrap_or(250).max(1) as u64
    }
}

pub struct Decoder {
    facts: KernelFacts,
    /// When each socket's window, per side, went to zero (monotonic ns).
    zero_since: foldhash::HashMap<(u64, Side), u64>,
    /// When the local window of a socket that closed at zero went to zero: tcp_close() sends its
    /// RST after the close, and that RST may end the episode (see probes/window.rs).
    closed_at_zero: foldhash::HashMap<u64, u64>,
    /// cgroup id -> path below the cgroup-v2 root (None: not found).
    cgroups: HashMap<u64, Option<Arc<str>>>,
    /// pid -> the process's name (/proc/PID/comm), looked up once.
    processes: HashMap<u32, Option<CompactString>>,
    /// The facts' drop reason names, ready to hand out without copying.
    drop_reasons: HashMap<u32, CompactString>,
}

/// Process names and cgroup paths kept at most, each.
const NAMES_KEPT: usize = 4096;

impl Decoder {
    pub fn new(facts: KernelFacts) -> Self {
        let drop_reasons =
            facts.drop_reasons.iter().map(|(&n, name)| (n, CompactString::from(name))).collect();
        Decoder {
            drop_reasons,
            facts,
            zero_since: Default::default(),
            closed_at_zero: Default::default(),
            cgroups: HashMap::new(),
            processes: HashMap::new(),
        }
    }

    /// Decodes one ring-buffer record into one or two events.
    #[cfg(test)]
    pub fn decode(&mut self, bytes: &[u8]) -> Result<Vec<Event>, DecodeError> {
        let mut events = Vec::new();
        self.decode_into(bytes, &mut events)?;
        Ok(events)
    }

    /// Decodes one ring-buffer record into `out` (cleared first): one or two events.
    pub fn decode_into(&mut self, bytes: &[u8], out: &mut Vec<Event>) -> Result<(), DecodeError> {
        out.clear();
        let header: EventHeader = read(bytes)?;
        match header.kind {
            KIND_WINDOW => {
                let w: WindowEvent = read(bytes)?;
                let local = LocalState {
                    rcv_wnd: w.rcv_wnd,
                    unread: w.unread,
                    rcvbuf: w.rcvbuf,
                    rmem_alloc: w.rmem_alloc,
                    rcv_ssthresh: w.rcv_ssthresh,
                    window_clamp: w.window_clamp,
                    choice: Some(limit::explain(&w)),
                };
                let window = |local| Body::Window {
                    side: Side::Local,
                    window: w.window,
                    raw_window: w.raw,
                    wscale: w.wscale,
                    local: Some(local),
                    sender: None,
                };
                // Most windows cross no zero: their state is moved into the one event, not
                // copied for a second.
                if w.transition == TRANSITION_NONE {
                    out.push(self.event(&header, window(local)));
                } else {
                    out.push(self.event(&header, window(local.clone())));
                    let zero = self.transition(
                        &header,
                        Side::Local,
                        w.transition,
                        w.window,
                        Some(local),
                        None,
                    );
                    out.extend(zero);
                }
            }
            KIND_PROBE => {
                let p: ProbeEvent = read(bytes)?;
                // The packet-level hook reads the counters before the kernel updates them for
                // this probe: apply the kernel's update so every hook reports the same thing.
                let (probes_out, backoff) = if p.before_send != 0 {
                    let backoff =
                        if p.backoff < self.facts.retries2 { p.backoff + 1 } else { p.backoff };
                    (p.probes_out.saturating_add(1), backoff)
                } else {
                    (p.probes_out, p.backoff)
                };
                let rto_ms = self.facts.hz.map(|hz| p.rto_jiffies as f64 * 1000.0 / hz as f64);
                out.push(self.event(
                    &header,
                    Body::Probe {
                        probes_out,
                        backoff,
                        rto_ms,
                        next_probe_ms: rto_ms.map(|rto| next_probe_ms(rto, backoff)),
                        snd_wnd: p.snd_wnd,
                        unacked: p.snd_nxt.wrapping_sub(p.snd_una),
                    },
                ));
            }
            KIND_RCV_SPACE => {
                let r: RcvSpaceEvent = read(bytes)?;
                let name = self.process_name(header.pid, comm(&r.comm));
                out.push(self.event(
                    &header,
                    Body::RcvSpace {
                        space: r.space,
                        rcvbuf: r.rcvbuf,
                        window_clamp: r.window_clamp,
                        rcv_ssthresh: r.rcv_ssthresh,
                        rmem_alloc: r.rmem_alloc,
                        rcvbuf_locked: r.locked != 0,
                        comm: name,
                    },
                ));
            }
            KIND_OPEN => {
                let l: LifecycleEvent = read(bytes)?;
                self.closed_at_zero.remove(&header.sk);
                let name = opt_comm(&l.comm).map(|c| self.process_name(header.pid, c));
                out.push(self.event(
                    &header,
                    Body::Open {
                        active: l.oldstate == TCP_SYN_SENT,
                        snd_wscale: l.snd_wscale,
                        rcv_wscale: l.rcv_wscale,
                        wscale_ok: l.wscale_ok != 0,
                        advmss: l.advmss,
                        rcvbuf: l.rcvbuf,
                        comm: name,
                        late: l.deferred != 0,
                    },
                ));
            }
            KIND_PEER => {
                let p: PeerEvent = read(bytes)?;
                let sender = SenderState {
                    in_flight: p.in_flight,
                    unsent: p.unsent,
                    mss: p.mss,
                    srtt_us: p.srtt_us,
                    rwnd_limited_ms: self.facts.jiffies_ms(p.rwnd_limited_jiffies),
                    busy_ms: self.facts.jiffies_ms(p.busy_jiffies),
                    limits: Some(SendLimits {
                        sndbuf_limited_ms: self.facts.jiffies_ms(p.sndbuf_limited_jiffies),
                        sndbuf: p.sndbuf,
                        sndbuf_locked: p.sndbuf_locked != 0,
                        cwnd: p.snd_cwnd,
                        bytes_acked: p.bytes_acked,
                        buffer_waiting: p.buffer_waiting != 0,
                        buffer_wait_ms: p.buffer_wait_ms,
                    }),
                    segments: Some(SentSegments {
                        bytes_sent: p.bytes_sent,
                        data_segs_out: p.data_segs_out,
                        max_window: p.max_window,
                        peer_mss: u32::from(p.mss_clamp),
                    }),
                };
                let body = |sender| match p.periodic {
                    0 => Body::Window {
                        side: Side::Peer,
                        window: p.window,
                        raw_window: p.raw,
                        wscale: p.wscale,
                        local: None,
                        sender: Some(sender),
                    },
                    _ => Body::Inflight { window: p.window, sender },
                };
                // As for local windows: a copy of the sender's state only for a second event.
                if p.transition == TRANSITION_NONE {
                    out.push(self.event(&header, body(sender)));
                } else {
                    out.push(self.event(&header, body(sender.clone())));
                    let zero = self.transition(
                        &header,
                        Side::Peer,
                        p.transition,
                        p.window,
                        None,
                        Some(sender),
                    );
                    out.extend(zero);
                }
            }
            KIND_DROP => {
                let d: DropEvent = read(bytes)?;
                let reason = match self.drop_reasons.get(&d.reason) {
                    Some(name) => name.clone(),
                    None => format_compact!("reason {}", d.reason),
                };
                out.push(self.event(&header, Body::Drop { reason, bytes: d.bytes }));
            }
            KIND_READ => {
                let r: ReadEvent = read(bytes)?;
                let secs = r.interval_ns as f64 / 1e9;
                let cgroup = self.cgroup_path(r.cgroup);
                let name = self.process_name(header.pid, comm(&r.comm));
                out.push(self.event(
                    &header,
                    Body::Read {
                        bytes: r.bytes,
                        reads: r.reads,
                        interval_ns: r.interval_ns,
                        rate: if secs > 0.0 { r.bytes as f64 / secs } else { 0.0 },
                        comm: name,
                        cgroup,
                        rcv_rtt_us: (r.rcv_rtt_us != 0).then_some(r.rcv_rtt_us),
                        rcv_wnd: Some(r.rcv_wnd),
                    },
                ));
            }
            KIND_OWNER => {
                let o: OwnerEvent = read(bytes)?;
                let cgroup = self.cgroup_path(o.cgroup);
                let name = self.process_name(header.pid, comm(&o.comm));
                out.push(self.event(&header, Body::Owner { comm: name, cgroup }));
            }
            KIND_CLOSE => {
                let l: LifecycleEvent = read(bytes)?;
                if let Some(since) = self.zero_since.remove(&(header.sk, Side::Local)) {
                    // Bounded: most such sockets send no RST after all.
                    if self.closed_at_zero.len() >= NAMES_KEPT {
                        self.closed_at_zero.clear();
                    }
                    self.closed_at_zero.insert(header.sk, since);
                }
                self.zero_since.remove(&(header.sk, Side::Peer));
                let name = opt_comm(&l.comm).map(|c| self.process_name(header.pid, c));
                let from_state = CompactString::const_new(tcp_state(l.oldstate));
                out.push(self.event(&header, Body::Close { from_state, comm: name }));
            }
            other => return Err(DecodeError::UnknownKind(other)),
        }
        Ok(())
    }

    /// The zero-window start or end a window record of `side` marks, if any.
    fn transition(
        &mut self,
        h: &EventHeader,
        side: Side,
        transition: u8,
        window: u32,
        local: Option<LocalState>,
        sender: Option<SenderState>,
    ) -> Option<Event> {
        let key = (h.sk, side);
        let body = match transition {
            TRANSITION_TO_ZERO | TRANSITION_TO_ZERO_UNCOUNTED => {
                self.zero_since.insert(key, h.ts_ns);
                let counted = transition == TRANSITION_TO_ZERO;
                Body::ZeroWindowStart { side, counted, local, sender }
            }
            TRANSITION_FROM_ZERO => {
                let since = self.zero_since.remove(&key).or_else(|| match side {
                    Side::Local => self.closed_at_zero.remove(&h.sk),
                    Side::Peer => None,
                });
                let duration_ns = since.map(|s| h.ts_ns.saturating_sub(s));
                Body::ZeroWindowEnd { side, window, duration_ns }
            }
            _ => return None,
        };
        Some(self.event(h, body))
    }

    /// The kernel names the thread that used the socket; operators look for the process (as
    /// `ss -p` and `ps` show it), so its name replaces the thread's while the process lives.
    /// Each pid's name is read from /proc once (while the cache holds it: it is emptied when
    /// full, so memory stays bounded however many processes come and go).
    fn process_name(&mut self, pid: u32, thread: CompactString) -> CompactString {
        if pid == 0 || !self.facts.live {
            return thread;
        }
        if self.processes.len() >= NAMES_KEPT && !self.processes.contains_key(&pid) {
            self.processes.clear();
        }
        let name = self
            .processes
            .entry(pid)
            .or_insert_with(|| crate::host::procfs::comm(pid).map(CompactString::from));
        name.clone().unwrap_or(thread)
    }

    /// The cgroup-v2 path of `id` (the inode number of its directory), looked up once (while
    /// the cache holds it, as for process names).
    fn cgroup_path(&mut self, id: u64) -> Option<Arc<str>> {
        let root = self.facts.cgroup_root.as_deref()?;
        if id == 0 {
            return None;
        }
        if self.cgroups.len() >= NAMES_KEPT && !self.cgroups.contains_key(&id) {
            self.cgroups.clear();
        }
        self.cgroups.entry(id).or_insert_with(|| find_cgroup(root, root, id).map(Arc::from)).clone()
    }

    fn event(&self, h: &EventHeader, body: Body) -> Event {
        let (saddr, daddr) = if h.family == AF_INET6 {
            (IpAddr::V6(Ipv6Addr::from(h.saddr)), IpAddr::V6(Ipv6Addr::from(h.daddr)))
        } else {
            let v4 = |a: &[u8; 16]| IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3]));
            (v4(&h.saddr), v4(&h.daddr))
        };
        Event {
            ts_ns: (h.ts_ns as i64).saturating_add(self.facts.realtime_offset_ns).max(0) as u64,
            sk: h.sk,
            pid: (h.pid != 0).then_some(h.pid),
            hook: CompactString::const_new(hook_name(h.hook)),
            saddr,
            sport: h.sport,
            daddr,
            dport: h.dport,
            body,
        }
    }
}

/// The kernel's persist interval: max(rto, 200 ms) << min(backoff, 10), capped at 120 s
/// (tcp_probe0_when with TCP_RTO_MIN and the default TCP_RTO_MAX).
pub fn next_probe_ms(rto_ms: f64, backoff: u8) -> f64 {
    let base = rto_ms.max(200.0);
    (base * (1u64 << backoff.min(10)) as f64).min(120_000.0)
}

/// Walks the cgroup tree below `dir` for the directory whose inode is `id`.
fn find_cgroup(root: &Path, dir: &Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    if std::fs::metadata(dir).ok()?.ino() == id {
        let rel = dir.strip_prefix(root).ok()?;
        return Some(format!("/{}", rel.display()));
    }
    std::fs::read_dir(dir).ok()?.flatten().find_map(|entry| {
        let is_dir = entry.file_type().ok()?.is_dir();
        if is_dir {
            find_cgroup(root, &entry.path(), id)
        } else {
            None
        }
    })
}

fn read<T: Copy>(bytes: &[u8]) -> Result<T, DecodeError> {
    let need = std::mem::size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Short { len: bytes.len(), need });
    }
    // SAFETY: T is a repr(C) plain-old-data record from tracer-common (integers and byte
    // arrays only, valid for any bit pattern) and `bytes` holds at least size_of::<T>() bytes.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The kernel's task name: at most 15 bytes, so it is kept inline, without an allocation.
fn comm(raw: &[u8; 16]) -> CompactString {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    match std::str::from_utf8(&raw[..end]) {
        Ok(name) => CompactString::new(name),
        Err(_) => CompactString::from_utf8_lossy(&raw[..end]),
    }
}

fn opt_comm(raw: &[u8; 16]) -> Option<CompactString> {
    Some(comm(raw)).filter(|c| !c.is_empty())
}

fn hook_name(hook: u8) -> &'static str {
    use tracer_common::event::*;
    match hook {
        HOOK_FENTRY => "fentry",
        HOOK_FEXIT => "fexit",
        HOOK_KPROBE => "kprobe",
        HOOK_KRETPROBE => "kretprobe",
        HOOK_CGROUP_SKB => "cgroup_skb",
        HOOK_RAW_TP => "raw_tp",
        HOOK_TRACEPOINT => "tracepoint",
        _ => "unknown",
    }
}

/// The kernel's name for a TCP state (the numbers are tracer-common's, shared with the kernel
/// programs).
pub fn tcp_state(state: u8) -> &'static str {
    match state {
        TCP_ESTABLISHED => "ESTABLISHED",
        TCP_SYN_SENT => "SYN_SENT",
        TCP_SYN_RECV => "SYN_RECV",
        TCP_FIN_WAIT1 => "FIN_WAIT1",
        TCP_FIN_WAIT2 => "FIN_WAIT2",
        TCP_TIME_WAIT => "TIME_WAIT",
        TCP_CLOSE => "CLOSE",
        TCP_CLOSE_WAIT => "CLOSE_WAIT",
        TCP_LAST_ACK => "LAST_ACK",
        TCP_LISTEN => "LISTEN",
        TCP_CLOSING => "CLOSING",
        TCP_NEW_SYN_RECV => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::event::{AF_INET, HOOK_CGROUP_SKB, HOOK_FEXIT, TRANSITION_NONE};

    use super::*;

    fn facts() -> KernelFacts {
        KernelFacts {
            realtime_offset_ns: 1_000,
            hz: Some(250),
            retries2: 15,
            drop_reasons: HashMap::new(),
            cgroup_root: None,
            live: false,
        }
    }

    fn header(kind: u16, hook: u8, ts_ns: u64) -> EventHeader {
        let mut saddr = [0u8; 16];
        saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut daddr = [0u8; 16];
        daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        EventHeader {
            ts_ns,
            sk: 0xffff_8881_0000_1000,
            kind,
            hook,
            family: AF_INET,
            sport: 5001,
            dport: 40000,
            pid: 0,
            _pad: 0,
            saddr,
            daddr,
        }
    }

    fn bytes<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain-old-data value we own.
        unsafe {
            std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>())
        }
        .to_vec()
    }

    /// A close record from state `oldstate`.
    fn close(header: EventHeader, oldstate: u8, comm: [u8; 16]) -> Vec<u8> {
        bytes(&LifecycleEvent {
            header,
            oldstate,
            newstate: 7,
            snd_wscale: 7,
            rcv_wscale: 7,
            advmss: 1448,
            rcvbuf: 0,
            wscale_ok: 1,
            deferred: 0,
            _pad: [0; 2],
            comm,
        })
    }

    fn window(ts_ns: u64, raw: u16, transition: u8) -> Vec<u8> {
        bytes(&WindowEvent {
            header: header(KIND_WINDOW, HOOK_CGROUP_SKB, ts_ns),
            window: (raw as u32) << 7,
            raw,
            wscale: 7,
            transition,
            rcv_wnd: 0,
            unread: 4096,
            rcvbuf: 8192,
            rmem_alloc: 8000,
            rcv_ssthresh: 4096,
            window_clamp: 4096,
            rcv_mss: 536,
            advmss: 1460,
            backlog: 0,
            rmem_max: 0,
            wanted: 0,
            flags: 0,
            scaling_ratio: 0,
            adv_win_scale: 0,
            _pad: 0,
            _pad2: 0,
        })
    }

    #[test]
    fn zero_window_transitions_become_start_and_end_with_duration() {
        let mut d = Decoder::new(facts());
        let start = d.decode(&window(5_000, 0, TRANSITION_TO_ZERO)).unwrap();
        assert_eq!(start.len(), 2);
        assert_eq!(start[0].body.kind(), "window");
        assert!(matches!(
            &start[1].body,
            Body::ZeroWindowStart { side: Side::Local, counted: true, local: Some(l), .. } if l.unread == 4096
        ));
        assert_eq!(start[1].ts_ns, 6_000, "monotonic time is shifted to wall-clock time");
        assert_eq!(start[1].saddr.to_string(), "10.0.0.1");
        assert_eq!(start[1].dport, 40000);

        let mid = d.decode(&window(6_000, 3, TRANSITION_NONE)).unwrap();
        assert_eq!(mid.len(), 1);

        let end = d.decode(&window(2_000_005_000, 10, TRANSITION_FROM_ZERO)).unwrap();
        assert_eq!(end.len(), 2);
        match &end[1].body {
            Body::ZeroWindowEnd { window, duration_ns, .. } => {
                assert_eq!(*window, 1280);
                assert_eq!(*duration_ns, Some(2_000_000_000));
            }
            other => panic!("expected zero_window_end, got {other:?}"),
        }
    }

    #[test]
    fn an_episode_ended_by_the_reset_after_close_keeps_its_duration() {
        let mut d = Decoder::new(facts());
        d.decode(&window(5_000, 0, TRANSITION_TO_ZERO)).unwrap();
        let h = header(KIND_CLOSE, tracer_common::event::HOOK_RAW_TP, 7_000);
        d.decode(&close(h, 1, [0; 16])).unwrap();
        let end = d.decode(&window(8_000, 32, TRANSITION_FROM_ZERO)).unwrap();
        assert!(matches!(end[1].body, Body::ZeroWindowEnd { duration_ns: Some(3_000), .. }));
    }

    #[test]
    fn an_end_without_a_seen_start_has_no_duration() {
        let mut d = Decoder::new(facts());
        let end = d.decode(&window(9, 1, TRANSITION_FROM_ZERO)).unwrap();
        assert!(matches!(end[1].body, Body::ZeroWindowEnd { duration_ns: None, .. }));
    }

    fn probe(hook: u8, before_send: u8, probes_out: u8, backoff: u8) -> Vec<u8> {
        bytes(&ProbeEvent {
            header: header(KIND_PROBE, hook, 1),
            probes_out,
            backoff,
            before_send,
            _pad: 0,
            rto_jiffies: 52, // 208 ms at HZ=250
            snd_wnd: 0,
            snd_una: 1000,
            snd_nxt: 1000,
            _pad2: 0,
        })
    }

    #[test]
    fn packet_level_probes_are_reported_as_the_kernel_counts_them() {
        let mut d = Decoder::new(facts());
        let exact = d.decode(&probe(HOOK_FEXIT, 0, 1, 3)).unwrap();
        let inferred = d.decode(&probe(HOOK_CGROUP_SKB, 1, 0, 2)).unwrap();
        let fields = |e: &Event| match e.body {
            Body::Probe { probes_out, backoff, rto_ms, next_probe_ms, .. } => {
                (probes_out, backoff, rto_ms, next_probe_ms)
            }
            _ => panic!("not a probe"),
        };
        assert_eq!(fields(&exact[0]), fields(&inferred[0]));
        assert_eq!(fields(&exact[0]), (1, 3, Some(208.0), Some(1664.0)));
    }

    #[test]
    fn backoff_stops_growing_at_tcp_retries2() {
        let mut d = Decoder::new(KernelFacts { retries2: 3, ..facts() });
        let e = d.decode(&probe(HOOK_CGROUP_SKB, 1, 0, 3)).unwrap();
        assert!(matches!(e[0].body, Body::Probe { backoff: 3, .. }));
    }

    #[test]
    fn persist_interval_follows_tcp_probe0_when() {
        assert_eq!(next_probe_ms(208.0, 0), 208.0);
        assert_eq!(next_probe_ms(50.0, 1), 400.0, "the base is at least TCP_RTO_MIN (200 ms)");
        assert_eq!(next_probe_ms(200.0, 14), 120_000.0, "capped at TCP_RTO_MAX");
        assert_eq!(next_probe_ms(100.0, 10), 120_000.0f64.min(200.0 * 1024.0));
    }

    #[test]
    fn unknown_hz_leaves_times_out() {
        let mut d = Decoder::new(KernelFacts { hz: None, ..facts() });
        let e = d.decode(&probe(HOOK_FEXIT, 0, 1, 1)).unwrap();
        assert!(matches!(e[0].body, Body::Probe { rto_ms: None, next_probe_ms: None, .. }));
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let mut d = Decoder::new(facts());
        let w = window(1, 1, TRANSITION_NONE);
        assert_eq!(d.decode(&w[..70]), Err(DecodeError::Short { len: 70, need: 120 }));
        assert_eq!(d.decode(&w[..10]), Err(DecodeError::Short { len: 10, need: 64 }));
        let mut h = header(99, HOOK_FEXIT, 1);
        h.kind = 99;
        assert_eq!(d.decode(&bytes(&h)), Err(DecodeError::UnknownKind(99)));
    }

    #[test]
    fn ipv6_addresses_and_close_states() {
        let mut d = Decoder::new(facts());
        let mut h = header(KIND_CLOSE, tracer_common::event::HOOK_RAW_TP, 1);
        h.family = AF_INET6;
        h.saddr = std::net::Ipv6Addr::LOCALHOST.octets();
        h.pid = 42;
        let mut comm = [0u8; 16];
        comm[..4].copy_from_slice(b"curl");
        let e = d.decode(&close(h, 4, comm)).unwrap();
        assert_eq!(e[0].saddr.to_string(), "::1");
        assert_eq!(e[0].pid, Some(42));
        assert_eq!(
            e[0].body,
            Body::Close { from_state: "FIN_WAIT1".into(), comm: Some("curl".into()) }
        );
    }
}
