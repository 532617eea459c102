//! Reads a recording through the connection table and the alert engine exactly as the
//! pipeline does, and gathers each connection's chart data, alerts and summary.

use std::{collections::BTreeMap, path::Path};

use anyhow::Result;

use super::series::ConnData;
use crate::{
    alerts::{Alert, AlertKind, Engine, Rule, Thresholds},
    record::{Broken, Header, Item, Reader},
    timeline::{ConnKey, ConnSummary, ConnTable, FourTuple},
};

/// One connection to chart.
pub struct Chart {
    /// Its series, spans, marks and alerts.
    pub data: ConnData,
    /// None when the table no longer kept it at the end (more closed connections than it keeps).
    pub summary: Option<ConnSummary>,
    /// Where its time axis ends, ns since the epoch.
    pub end_ns: u64,
}

/// What a recording holds, ready to draw.
pub struct Recording {
    /// Kernel, start time and hooks of the recording.
    pub header: Header,
    /// Connections with something to plot, worst first as in the summary.
    pub charts: Vec<Chart>,
    /// Events read, and events the kernel could not queue while recording.
    pub events: u64,
    pub lost: u64,
    /// The end-of-recording trailer was read.
    pub ended: bool,
    /// Where the file broke, if it did; everything before it is in `charts`.
    pub broken: Option<Broken>,
}

/// Files alerts under the connection they belong to. Alerts carry a 4-tuple, not a table key:
/// a new alert goes to the connection that has the 4-tuple now, a resolution or escalation to
/// the connection its alert went to (which matters when a socket is reused).
#[derive(Default)]
struct Filing {
    current: BTreeMap<FourTuple, ConnKey>,
    active: BTreeMap<(FourTuple, Rule, Option<&'static str>), ConnKey>,
}

impl Filing {
    fn file(&mut self, alerts: Vec<Alert>, conns: &mut BTreeMap<ConnKey, ConnData>) {
        for a in alerts {
            let tuple =
                FourTuple { saddr: a.saddr, sport: a.sport, daddr: a.daddr, dport: a.dport };
            let id = (tuple, a.rule, a.side.map(|s| s.as_str()));
            let key = match a.kind {
                AlertKind::Alert => {
                    let key = self.active.get(&id).or_else(|| self.current.get(&tuple)).copied();
                    if let Some(k) = key {
                        self.active.insert(id, k);
                    }
                    key
                }
                AlertKind::AlertResolved => {
                    self.active.remove(&id).or_else(|| self.current.get(&tuple).copied())
                }
            };
            if let Some(data) = key.and_then(|k| conns.get_mut(&k)) {
                data.alerts.push(a);
            }
        }
    }
}

/// Reads `path` with alert `thresholds`. Errors opening the file or reading its header are
/// returned; a break later in the file is kept in `Recording::broken`.
pub fn collect(path: &Path, thresholds: Thresholds) -> Result<Recording> {
    let mut reader = Reader::open(path)?;
    let header = reader.header.clone();
    let mut table = ConnTable::new();
    let mut engine = Engine::new(thresholds);
    let mut conns: BTreeMap<ConnKey, ConnData> = BTreeMap::new();
    let mut filing = Filing::default();
    // As in replay: the end is the last thing recorded, so the output depends on the file alone.
    let mut last_ns = header.started_ns;
    let (mut events, mut lost, mut broken) = (0u64, 0u64, None);
    loop {
        match reader.next_item() {
            Ok(Some(Item::Event(e))) => {
                events += 1;
                last_ns = last_ns.max(e.ts_ns);
                // The pipeline's order: due timers, the table, then the event's own alerts.
                let due = engine.advance(&table, e.ts_ns);
                filing.file(due, &mut conns);
                let key = table.apply(&e);
                let tuple = FourTuple::of(&e);
                if let Some(prev) = filing.current.insert(tuple, key).filter(|p| *p != key) {
                    if let Some(old) = conns.get_mut(&prev) {
                        old.superseded(e.ts_ns);
                    }
                }
                conns.entry(key).or_insert_with(|| ConnData::new(&e)).apply(&e);
                let fired = engine.on_event(&table, &key, &e);
                filing.file(fired, &mut conns);
            }
            Ok(Some(Item::Lost { ts_ns, count })) => {
                lost += count;
                last_ns = last_ns.max(ts_ns);
            }
            // The counts are checked by replay; the page shows what was read.
            Ok(Some(Item::End { .. })) => {}
            Ok(None) => break,
            Err(b) => {
                broken = Some(b);
                break;
            }
        }
    }
    let due = engine.finish(&table, last_ns);
    filing.file(due, &mut conns);
    let mut summaries = table.summaries(last_ns);
    engine.count_into(&mut summaries);

    let mut charts = Vec::new();
    for s in summaries {
        if let Some(data) = conns.remove(&s.key) {
            charts.push(chart(data, Some(s), last_ns));
        }
    }
    // Connections the table had to forget still have their data.
    charts.extend(conns.into_values().map(|d| chart(d, None, last_ns)));
    charts.retain(|c| c.data.has_content());
    Ok(Recording { header, charts, events, lost, ended: reader.ended(), broken })
}

fn chart(mut data: ConnData, summary: Option<ConnSummary>, last_ns: u64) -> Chart {
    data.settle();
    let end_ns = data.end_ns(last_ns);
    Chart { data, summary, end_ns }
}
