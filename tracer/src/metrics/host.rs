//! The `tcp_flow_host_` families: counters the kernel programs keep for every connection,
//! quiet ones included, read from their maps when Prometheus scrapes.

use std::fmt;
use std::sync::Arc;

use tracer_common::totals::{
    TOTAL_CLOSED, TOTAL_DROPS, TOTAL_OPENED_ACTIVE, TOTAL_OPENED_PASSIVE, TOTAL_PROBES,
    TOTAL_REPORTED, TOTAL_ZERO_WINDOW_LOCAL, TOTAL_ZERO_WINDOW_PEER, TOTAL_ZERO_WINDOW_UNCOUNTED,
};

use super::families as f;
use super::scraped::{Collect, Out};
use crate::events::totals::{Counts, KernelTotals, Totals};

/// A source of host totals: the kernel's maps live, fixed values in tests.
pub trait ReadTotals: fmt::Debug + Send + 'static {
    fn read(&self) -> Totals;
}

impl ReadTotals for Arc<KernelTotals> {
    fn read(&self) -> Totals {
        KernelTotals::read(self)
    }
}

/// Serves the totals `source` reads at each scrape.
#[derive(Debug)]
pub struct HostTotals<S>(pub S);

/// A port label: its number, `unknown` (0) or `other`.
fn port_label(port: Option<u16>) -> String {
    match port {
        Some(0) => "unknown".to_string(),
        Some(port) => port.to_string(),
        None => "other".to_string(),
    }
}

impl<S: ReadTotals> Collect for HostTotals<S> {
    fn collect(&self, out: &mut Out<'_>) -> fmt::Result {
        let totals = self.0.read();
        // Every port with a count, then the ports that did not fit in the kernel's table.
        let rows: Vec<(String, &Counts)> = totals
            .ports
            .iter()
            .map(|(port, counts)| (port_label(Some(*port)), counts))
            .chain(
                totals
                    .other_ports
                    .iter()
                    .any(|&c| c != 0)
                    .then(|| (port_label(None), &totals.other_ports)),
            )
            .collect();
        let by_port = |value: fn(&Counts) -> u64| -> Vec<_> {
            rows.iter()
                .filter(|(_, counts)| value(counts) != 0)
                .map(|(port, counts)| ([("port", port.as_str())], value(counts)))
                .collect()
        };
        let opened: Vec<_> = rows
            .iter()
            .flat_map(|(port, counts)| {
                [("active", TOTAL_OPENED_ACTIVE), ("passive", TOTAL_OPENED_PASSIVE)]
                    .into_iter()
                    .filter(|(_, slot)| counts[*slot as usize] != 0)
                    .map(move |(direction, slot)| {
                        ([("port", port.as_str()), ("direction", direction)], counts[slot as usize])
                    })
            })
            .collect();
        out.family(&f::HOST_OPENED, opened)?;
        out.family(&f::HOST_CLOSED, by_port(|c| c[TOTAL_CLOSED as usize]))?;
        out.family(&f::HOST_REPORTED, by_port(|c| c[TOTAL_REPORTED as usize]))?;
        let local = |c: &Counts| {
            c[TOTAL_ZERO_WINDOW_LOCAL as usize] + c[TOTAL_ZERO_WINDOW_UNCOUNTED as usize]
        };
        let zero: Vec<_> = rows
            .iter()
            .flat_map(|(port, counts)| {
                [("local", local(counts)), ("peer", counts[TOTAL_ZERO_WINDOW_PEER as usize])]
                    .into_iter()
                    .filter(|(_, n)| *n != 0)
                    .map(move |(side, n)| ([("port", port.as_str()), ("side", side)], n))
            })
            .collect();
        out.family(&f::HOST_ZERO_WINDOWS, zero)?;
        out.family(&f::HOST_PROBES, by_port(|c| c[TOTAL_PROBES as usize]))?;
        out.family(&f::HOST_DROPS, by_port(|c| c[TOTAL_DROPS as usize]))?;
        let missed = totals.missed_runs.iter().map(|(name, n)| ([("program", name.as_str())], *n));
        out.family(&f::HOST_MISSED_RUNS, missed)
    }
}
