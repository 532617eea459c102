//! Reads the host totals the kernel programs keep for every connection, reported or not
//! (tracer-common's `totals`): per-CPU values summed, per service port and in all.

use anyhow::{Context as _, Result};
use std::os::fd::{AsFd as _, AsRawFd as _};

use aya::{
    maps::{MapData, PerCpuArray, PerCpuHashMap},
    programs::ProgramFd,
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
    /// Runs of each loaded program the kernel skipped because the program was already running
    /// on that CPU (a softirq interrupting it): the counts above may be short by as many.
    /// Programs whose kernel does not count them are left out.
    pub missed_runs: Vec<(String, u64)>,
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

    /// Program runs the kernel skipped, all programs together.
    pub fn missed_runs_total(&self) -> u64 {
        self.missed_runs.iter().map(|(_, n)| n).sum()
    }
}

/// The kernel maps behind the totals, taken from the loaded programs.
pub struct KernelTotals {
    host: PerCpuArray<MapData, u64>,
    ports: PerCpuHashMap<MapData, u16, PortTotals>,
    /// Each program's name and a descriptor of it, for its fdinfo.
    programs: Vec<(String, ProgramFd)>,
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
        // Loaded but never attached programs have nothing to miss; their descriptors are
        // kept anyway, so that the list does not depend on the hooks chosen.
        let programs = ebpf
            .programs()
            .filter_map(|(name, prog)| Some((name.to_string(), prog.fd().ok()?.try_clone().ok()?)))
            .collect();
        Ok(KernelTotals {
            host: PerCpuArray::try_from(host).context("HOST_TOTALS is not a per-CPU array")?,
            ports: PerCpuHashMap::try_from(ports)
                .context("PORT_TOTALS is not a per-CPU hash map")?,
            programs,
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
            missed_runs: self.missed_runs(),
        }
    }

    /// Each program's `recursion_misses` from its fdinfo (5.12+; kprobe programs' skipped
    /// runs are counted there only from 6.7 on).
    fn missed_runs(&self) -> Vec<(String, u64)> {
        let mut missed: Vec<(String, u64)> = self
            .programs
            .iter()
            .filter_map(|(name, fd)| {
                let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
                let info = std::fs::read_to_string(path).ok()?;
                Some((name.clone(), fdinfo_field(&info, "recursion_misses")?))
            })
            .collect();
        missed.sort_unstable();
        missed
    }
}

/// The value of `key` in a /proc fdinfo text (`key:\tvalue` lines).
fn fdinfo_field(info: &str, key: &str) -> Option<u64> {
    info.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::fdinfo_field;

    #[test]
    fn fdinfo_fields_are_found_by_their_whole_key() {
        let info = "prog_type:\t26\nrun_cnt:\t7\nrecursion_misses:\t3\nverified_insns:\t40\n";
        assert_eq!(fdinfo_field(info, "recursion_misses"), Some(3));
        assert_eq!(fdinfo_field(info, "run_cnt"), Some(7));
        assert_eq!(fdinfo_field(info, "misses"), None);
        assert_eq!(fdinfo_field("recursion_misses:\tmany\n", "recursion_misses"), None);
    }
}
