//! Reads the host totals the kernel programs keep for every connection, reported or not
//! (tracer-common's `totals`): per-CPU values summed, per service port and in all.

use anyhow::{Context as _, Result};
use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    Ebpf,
};
use tracer_common::totals::{
    PortTotals, HOST_TOTAL_SLOTS, OTHER_PORTS, TOTAL_OPENED_ACTIVE, TOTAL_OPENED_PASSIVE,
    TOTAL_REPORTED, TOTAL_SLOTS,
};

/// Counts indexed by TOTAL_*.
pub type Counts = [u64; TOTAL_SLOTS as usize];

/// The totals at one moment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    pub host: Counts,
    /// By service port (0: unknown), in port order.
    pub ports: Vec<(u16, Counts)>,
    /// Ports that found the kernel's per-port table full, together.
    pub other_ports: Counts,
}

impl Totals {
    /// Sockets that reached ESTABLISHED on this host since attach (each end of a local
    /// connection is one).
    pub fn opened(&self) -> u64 {
        self.host[TOTAL_OPENED_ACTIVE as usize] + self.host[TOTAL_OPENED_PASSIVE as usize]
    }

    /// Of those, the ones reported; the rest stayed quiet.
    pub fn reported(&self) -> u64 {
        self.host[TOTAL_REPORTED as usize]
    }
}

/// The kernel maps behind the totals, taken from the loaded programs.
pub struct KernelTotals {
    host: PerCpuArray<MapData, u64>,
    ports: PerCpuHashMap<MapData, u16, PortTotals>,
}

impl std::fmt::Debug for KernelTotals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KernelTotals")
    }
}

impl KernelTotals {
    pub fn take(ebpf: &mut Ebpf) -> Result<Self> {
        let host = ebpf.take_map("HOST_TOTALS").context("map HOST_TOTALS is missing")?;
        let ports = ebpf.take_map("PORT_TOTALS").context("map PORT_TOTALS is missing")?;
        Ok(KernelTotals {
            host: PerCpuArray::try_from(host).context("HOST_TOTALS is not a per-CPU array")?,
            ports: PerCpuHashMap::try_from(ports)
                .context("PORT_TOTALS is not a per-CPU hash map")?,
        })
    }

    /// Reads every total now. A map that cannot be read counts as zero (the scrape still
    /// answers; the counters catch up at the next one).
    pub fn read(&self) -> Totals {
        let mut slots = [0u64; HOST_TOTAL_SLOTS as usize];
        for (index, slot) in slots.iter_mut().enumerate() {
            if let Ok(per_cpu) = self.host.get(&(index as u32), 0) {
                *slot = per_cpu.iter().sum();
            }
        }
        let mut ports: Vec<(u16, Counts)> = self
            .ports
            .iter()
            .filter_map(Result::ok)
            .map(|(port, per_cpu)| {
                let mut counts = [0u64; TOTAL_SLOTS as usize];
                for cpu in per_cpu.iter() {
                    for (sum, value) in counts.iter_mut().zip(cpu.counts) {
                        *sum += value;
                    }
                }
                (port, counts)
            })
            .collect();
        ports.sort_unstable_by_key(|(port, _)| *port);
        let split = OTHER_PORTS as usize;
        Totals {
            host: slots[..split].try_into().unwrap_or_default(),
            ports,
            other_ports: slots[split..].try_into().unwrap_or_default(),
        }
    }
}
