//! Synthetic ring records for the pipeline bench: exactly the bytes the kernel programs write
//! (tracer-common's structs), for many connections at once, in a realistic mix. Each
//! connection opens, gets an owner, then cycles through window changes both ways, periodic
//! sender samples, reads and buffer autotuning, with zero-window episodes now and then (local
//! ones with drops, peer ones with probes) and a close, after which its slot opens a new one.

use tracer_common::event::{
    DropEvent, EventHeader, LifecycleEvent, OwnerEvent, PeerEvent, ProbeEvent, RcvSpaceEvent,
    ReadEvent, WindowEvent, AF_INET, HOOK_CGROUP_SKB, HOOK_FEXIT, HOOK_RAW_TP, HOOK_TRACEPOINT,
    KIND_CLOSE, KIND_DROP, KIND_OPEN, KIND_OWNER, KIND_PEER, KIND_PROBE, KIND_RCV_SPACE, KIND_READ,
    KIND_WINDOW, TCP_CLOSE_WAIT, TCP_ESTABLISHED, TCP_LAST_ACK, TCP_SYN_RECV, TCP_SYN_SENT,
    TRANSITION_FROM_ZERO, TRANSITION_NONE, TRANSITION_TO_ZERO, WINDOW_NETNS,
};

/// The drop reason number the records use (the bench's `KernelFacts` names it).
pub const DROP_REASON: u32 = 7;
/// Steps of one connection's life before it closes.
const LIFE_STEPS: u32 = 150;
/// Simulated time between two records, ns (about 3 M records a second).
const RECORD_GAP_NS: u64 = 330;
/// Process names the connections' owners take, in turn.
const COMMS: [&[u8]; 4] = [b"nginx", b"postgres", b"curl", b"java-worker-7"];

/// One connection slot: its current connection and where it is in its life.
struct Slot {
    index: u32,
    /// Connections this slot has had: makes each socket address and 4-tuple new.
    generation: u32,
    step: u32,
    window: u32,
    rwnd_limited_jiffies: u32,
    busy_jiffies: u32,
}

/// Writes records for `connections` concurrent connections; `fill` appends the next batch.
pub struct Generator {
    slots: Vec<Slot>,
    /// Zero-window episodes (with their drops and probes) and closes: off for a steady stream.
    trouble: bool,
    ts_ns: u64,
    rng: u64,
}

impl Generator {
    pub fn new(connections: u32) -> Self {
        let slots = (0..connections.max(1))
            .map(|index| Slot {
                index,
                generation: 0,
                step: 0,
                window: 65536,
                rwnd_limited_jiffies: 0,
                busy_jiffies: 0,
            })
            .collect();
        Generator { slots, trouble: true, ts_ns: 1_000_000_000, rng: 0x9e37_79b9_7f4a_7c15 }
    }

    /// Connections that open and then only move data: windows, samples, reads, autotuning.
    #[cfg(test)]
    pub fn steady(connections: u32) -> Self {
        Generator { trouble: false, ..Generator::new(connections) }
    }

    /// Clears `out` and appends `count` records to it, each as (offset, length) in `bytes`.
    pub fn fill(&mut self, count: usize, bytes: &mut Vec<u8>, out: &mut Vec<(usize, usize)>) {
        bytes.clear();
        out.clear();
        for _ in 0..count {
            // Connections take turns in a random order, as on a busy host.
            let pick = (self.next_random() % self.slots.len() as u64) as usize;
            self.ts_ns += RECORD_GAP_NS;
            let start = bytes.len();
            let ts_ns = self.ts_ns;
            step(&mut self.slots[pick], self.trouble, ts_ns, bytes);
            out.push((start, bytes.len() - start));
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: deterministic, so every run sees the same stream.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Appends the next record of `slot`'s connection.
fn step(slot: &mut Slot, trouble: bool, ts_ns: u64, out: &mut Vec<u8>) {
    let (index, generation) = (slot.index, slot.generation);
    let h = |kind, hook| header(index, generation, ts_ns, kind, hook);
    let n = slot.step;
    slot.step += 1;
    if n == 0 {
        let oldstate = if index % 3 == 0 { TCP_SYN_SENT } else { TCP_SYN_RECV };
        return push(out, &lifecycle(h(KIND_OPEN, HOOK_RAW_TP), oldstate, comm_of(slot)));
    }
    if n == 1 {
        let owner =
            OwnerEvent { header: h(KIND_OWNER, HOOK_TRACEPOINT), comm: comm_of(slot), cgroup: 0 };
        return push(out, &owner);
    }
    if n >= LIFE_STEPS && trouble {
        slot.step = 0;
        slot.generation += 1;
        let from = if index % 2 == 0 { TCP_LAST_ACK } else { TCP_CLOSE_WAIT };
        return push(out, &lifecycle(h(KIND_CLOSE, HOOK_RAW_TP), from, comm_of(slot)));
    }
    // Every 64 steps an episode of 12 steps: even connections' local window goes to zero (with
    // drops), odd connections' peer window does (with probes).
    let cycle = if trouble { n % 64 } else { 0 };
    let local_episode = index % 2 == 0;
    match cycle {
        40 if local_episode => {
            push(out, &window(h(KIND_WINDOW, HOOK_CGROUP_SKB), 0, TRANSITION_TO_ZERO))
        }
        40 => push(out, &peer(slot, h(KIND_PEER, HOOK_TRACEPOINT), 0, TRANSITION_TO_ZERO, 0)),
        41..=50 if local_episode && cycle % 3 == 0 => push(
            out,
            &DropEvent { header: h(KIND_DROP, HOOK_TRACEPOINT), reason: DROP_REASON, bytes: 1448 },
        ),
        41..=50 if !local_episode && cycle % 3 == 0 => {
            push(out, &probe(h(KIND_PROBE, HOOK_FEXIT), cycle))
        }
        51 if local_episode => {
            push(out, &window(h(KIND_WINDOW, HOOK_CGROUP_SKB), 8192, TRANSITION_FROM_ZERO))
        }
        51 => push(out, &peer(slot, h(KIND_PEER, HOOK_TRACEPOINT), 8192, TRANSITION_FROM_ZERO, 0)),
        _ => match n % 8 {
            0 | 4 => {
                slot.window = 32768 + (slot.window + 4096 * (n % 7)) % 65536;
                push(out, &window(h(KIND_WINDOW, HOOK_CGROUP_SKB), slot.window, TRANSITION_NONE));
            }
            1 | 5 => {
                push(out, &peer(slot, h(KIND_PEER, HOOK_TRACEPOINT), 65536, TRANSITION_NONE, 1))
            }
            2 => {
                push(out, &peer(slot, h(KIND_PEER, HOOK_TRACEPOINT), 60000 + n, TRANSITION_NONE, 0))
            }
            3 | 7 => push(
                out,
                &ReadEvent {
                    header: h(KIND_READ, HOOK_TRACEPOINT),
                    bytes: 65536,
                    interval_ns: 20_000_000,
                    reads: 16,
                    rcv_rtt_us: 250,
                    comm: comm_of(slot),
                    cgroup: 0,
                    rcv_wnd: 131072,
                    _pad: 0,
                },
            ),
            _ => push(
                out,
                &RcvSpaceEvent {
                    header: h(KIND_RCV_SPACE, HOOK_TRACEPOINT),
                    space: 65536 + n,
                    rcvbuf: 262144,
                    window_clamp: 131072,
                    rcv_ssthresh: 65536,
                    rmem_alloc: 4096,
                    locked: 0,
                    _pad: [0; 3],
                    comm: comm_of(slot),
                },
            ),
        },
    }
}

fn header(index: u32, generation: u32, ts_ns: u64, kind: u16, hook: u8) -> EventHeader {
    let mut saddr = [0u8; 16];
    saddr[..4].copy_from_slice(&[10, 1, (index >> 8) as u8, index as u8]);
    let mut daddr = [0u8; 16];
    daddr[..4].copy_from_slice(&[10, 2, 0, (index % 250) as u8 + 1]);
    let serial = (generation as u64) << 24 | index as u64;
    EventHeader {
        ts_ns,
        sk: 0xffff_8881_0000_0000 + serial * 0x1000,
        kind,
        hook,
        family: AF_INET,
        sport: 443,
        dport: 1024 + ((index + generation * 7919) % 60000) as u16,
        pid: 1000 + index % 64,
        _pad: 0,
        saddr,
        daddr,
    }
}

fn comm_of(slot: &Slot) -> [u8; 16] {
    let name = COMMS[(slot.index % COMMS.len() as u32) as usize];
    let mut comm = [0u8; 16];
    comm[..name.len()].copy_from_slice(name);
    comm
}

fn lifecycle(header: EventHeader, oldstate: u8, comm: [u8; 16]) -> LifecycleEvent {
    LifecycleEvent {
        header,
        oldstate,
        newstate: TCP_ESTABLISHED,
        snd_wscale: 7,
        rcv_wscale: 7,
        advmss: 1448,
        rcvbuf: 131072,
        wscale_ok: 1,
        deferred: 0,
        _pad: [0; 2],
        comm,
    }
}

fn window(header: EventHeader, window: u32, transition: u8) -> WindowEvent {
    WindowEvent {
        header,
        window,
        raw: (window >> 7) as u16,
        wscale: 7,
        transition,
        rcv_wnd: window,
        unread: 131072 - window.min(131072),
        rcvbuf: 262144,
        rmem_alloc: 200_000,
        rcv_ssthresh: 65536,
        window_clamp: 131072,
        rcv_mss: 1448,
        advmss: 1448,
        backlog: 0,
        rmem_max: 6 << 20,
        wanted: 0,
        flags: WINDOW_NETNS,
        scaling_ratio: 232,
        adv_win_scale: 1,
        _pad: 0,
        _pad2: 0,
    }
}

fn peer(
    slot: &mut Slot,
    header: EventHeader,
    window: u32,
    transition: u8,
    periodic: u8,
) -> PeerEvent {
    slot.busy_jiffies += 5;
    if window == 0 || slot.step.is_multiple_of(5) {
        slot.rwnd_limited_jiffies += 3;
    }
    PeerEvent {
        header,
        window,
        raw: (window >> 7) as u16,
        wscale: 7,
        transition,
        periodic,
        _pad: [0; 3],
        in_flight: 28960,
        unsent: 65536,
        mss: 1448,
        srtt_us: 250,
        rwnd_limited_jiffies: slot.rwnd_limited_jiffies,
        busy_jiffies: slot.busy_jiffies,
        sndbuf_limited_jiffies: 0,
        sndbuf: 87040,
        snd_cwnd: 10,
        sndbuf_locked: 0,
        buffer_waiting: 0,
        _pad2: [0; 2],
        bytes_acked: slot.busy_jiffies as u64 * 1448,
        bytes_sent: slot.busy_jiffies as u64 * 1448,
        data_segs_out: slot.busy_jiffies,
        max_window: 65536,
        mss_clamp: 1460,
        _pad3: [0; 2],
        buffer_wait_ms: 0,
    }
}

fn probe(header: EventHeader, cycle: u32) -> ProbeEvent {
    let nth = ((cycle - 41) / 3) as u8;
    ProbeEvent {
        header,
        probes_out: nth + 1,
        backoff: nth,
        before_send: 0,
        _pad: 0,
        rto_jiffies: 52,
        snd_wnd: 0,
        snd_una: 1000,
        snd_nxt: 1000,
        _pad2: 0,
    }
}

fn push<T: Copy>(out: &mut Vec<u8>, record: &T) {
    // SAFETY: T is a repr(C) plain-old-data record from tracer-common (integers and byte
    // arrays only); its bytes are exactly what the kernel program writes to the ring.
    let bytes = unsafe {
        std::slice::from_raw_parts((record as *const T).cast::<u8>(), std::mem::size_of::<T>())
    };
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{decode::KernelFacts, Decoder};

    #[test]
    fn every_record_decodes_and_the_mix_has_every_kind() {
        let mut decoder = Decoder::new(KernelFacts {
            realtime_offset_ns: 0,
            hz: Some(250),
            retries2: 15,
            drop_reasons: [(DROP_REASON, "TCP_ZEROWINDOW".to_string())].into(),
            cgroup_root: None,
            live: false,
        });
        let mut generator = Generator::new(50);
        let (mut bytes, mut records) = (Vec::new(), Vec::new());
        let mut kinds = std::collections::BTreeSet::new();
        for _ in 0..20 {
            generator.fill(2000, &mut bytes, &mut records);
            for &(start, len) in &records {
                for e in decoder.decode(&bytes[start..start + len]).unwrap() {
                    kinds.insert(e.body.kind());
                }
            }
        }
        let all = [
            "open",
            "owner",
            "window",
            "inflight",
            "read",
            "rcv_space",
            "zero_window_start",
            "zero_window_end",
            "probe",
            "drop",
            "close",
        ];
        assert_eq!(kinds, all.into_iter().collect());
    }
}
