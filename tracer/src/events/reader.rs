//! Drains the kernel's ring buffer and reads the loss counters.
//!
//! The kernel side submits without waking us (a wakeup per event would cost far more than the
//! event on a bulk flow), so the agent drains on a short timer instead of waiting on epoll.

use anyhow::{Context as _, Result};
use aya::{
    maps::{MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use tracer_common::{config::COUNT_TABLE_FULL, event::KIND_COUNT};

pub struct Reader {
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
    counts: PerCpuArray<MapData, u64>,
}

impl Reader {
    pub fn new(ebpf: &mut Ebpf) -> Result<Self> {
        let ring = ebpf.take_map("EVENTS").context("map EVENTS is missing from the eBPF object")?;
        let lost = ebpf.take_map("LOST").context("map LOST is missing from the eBPF object")?;
        let counts =
            ebpf.take_map("COUNTS").context("map COUNTS is missing from the eBPF object")?;
        Ok(Reader {
            ring: RingBuf::try_from(ring).context("EVENTS is not a ring buffer")?,
            lost: PerCpuArray::try_from(lost).context("LOST is not a per-CPU array")?,
            counts: PerCpuArray::try_from(counts).context("COUNTS is not a per-CPU array")?,
        })
    }

    /// Hands every pending record to `f`; returns how many bytes they held (how full the ring
    /// was when drained: the agent's view of its own headroom).
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut bytes = 0;
        while let Some(item) = self.ring.next() {
            bytes += item.len();
            f(&item);
        }
        bytes
    }

    /// Events the kernel could not fit in the ring buffer since attach, over all CPUs and kinds.
    pub fn lost_total(&self) -> u64 {
        (0..KIND_COUNT)
            .filter_map(|kind| self.lost.get(&kind, 0).ok())
            .map(|per_cpu| per_cpu.iter().sum::<u64>())
            .sum()
    }

    /// Connections opened since attach that the tracepoint and kprobe programs could not track
    /// because their per-socket table was full.
    pub fn table_full_total(&self) -> u64 {
        self.counts.get(&COUNT_TABLE_FULL, 0).map_or(0, |per_cpu| per_cpu.iter().sum())
    }
}
