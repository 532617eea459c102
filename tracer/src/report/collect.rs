//! Plays a recording through the pipeline and gathers, as its consumer, each connection's chart
//! data, alerts and summary.

use std::{cell::RefCell, collections::BTreeMap, path::Path, rc::Rc};

use anyhow::Result;

use super::series::ConnData;
use crate::{
    alerts::{Alert, AlertId, Thresholds},
    events::Event,
    pipeline::{Consumer, Pipeline, State},
    record::{
        player::{Note, Player},
        Broken, Header,
    },
    timeline::{fmt::who, pair_ends, ConnKey, ConnSummary, FourTuple},
};

/// One connection to chart.
pub struct Chart {
    /// Its series, spans, marks and alerts.
    pub data: ConnData,
    /// None when the table no longer kept it at the end (more closed connections than it keeps).
    pub summary: Option<ConnSummary>,
    /// Where its time axis ends, ns since the epoch.
    pub end_ns: u64,
    /// The other end of the connection when it is on this host and charted too.
    pub other_end: Option<OtherEnd>,
}

/// The chart of a connection's other end (both ends on this host).
pub struct OtherEnd {
    /// Its position in `Recording::charts`: next to this one.
    pub index: usize,
    /// Its process, "python3 (pid 7)".
    pub who: String,
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
    /// What was wrong with the recording short of breaking it (no trailer, miscounted).
    pub notes: Vec<Note>,
    /// Where the file broke, if it did; everything before it is in `charts`.
    pub broken: Option<Broken>,
}

/// The pipeline consumer: chart data by connection, alerts filed under theirs, the summary.
#[derive(Default)]
struct Collector {
    conns: BTreeMap<ConnKey, ConnData>,
    /// The connection each 4-tuple belongs to now: a reused one supersedes the earlier.
    current: BTreeMap<FourTuple, ConnKey>,
    summary: Vec<ConnSummary>,
}

impl Consumer for Collector {
    fn event(&mut self, e: &Event, key: ConnKey, _state: &State<'_>) -> Result<()> {
        let tuple = FourTuple::of(e);
        if let Some(prev) = self.current.insert(tuple, key).filter(|p| *p != key) {
            if let Some(old) = self.conns.get_mut(&prev) {
                old.superseded(e.ts_ns);
            }
        }
        self.conns.entry(key).or_insert_with(|| ConnData::new(e)).apply(e);
        Ok(())
    }

    /// Filed under the connection it fired for (which matters when a 4-tuple is reused).
    fn alert(&mut self, a: &Alert, id: &AlertId, _state: &State<'_>) -> Result<()> {
        if let Some(data) = self.conns.get_mut(&id.key) {
            data.alerts.push(a.clone());
        }
        Ok(())
    }

    fn finish(&mut self, _state: &State<'_>, _now_ns: u64, summary: &[ConnSummary]) -> Result<()> {
        self.summary = summary.to_vec();
        Ok(())
    }
}

/// Reads `path` with alert `thresholds`. Errors opening the file or reading its header are
/// returned; a break later in the file is kept in `Recording::broken`.
pub fn collect(path: &Path, thresholds: Thresholds) -> Result<Recording> {
    let mut player = Player::open(path)?;
    let collector = Rc::new(RefCell::new(Collector::default()));
    let mut pipeline = Pipeline::new(thresholds);
    pipeline.add(Box::new(Rc::clone(&collector)));
    // As in replay: the end is the last thing recorded, so the output depends on the file alone.
    player.play_all(&mut pipeline)?;
    drop(pipeline);
    let Collector { mut conns, summary, .. } = collector.take();
    let last_ns = player.last_ns();

    let mut charts = Vec::new();
    for s in summary {
        if let Some(data) = conns.remove(&s.key) {
            charts.push(chart(data, Some(s), last_ns));
        }
    }
    // Connections the table had to forget still have their data.
    charts.extend(conns.into_values().map(|d| chart(d, None, last_ns)));
    charts.retain(|c| c.data.has_content());
    // The two ends of a connection on this host one after the other, worst end first.
    let pairs = pair_ends(&mut charts, |c| c.data.tuple);
    let others: Vec<Option<OtherEnd>> = pairs
        .iter()
        .map(|p| {
            p.map(|index| {
                let d = &charts[index].data;
                OtherEnd { index, who: who(d.comm.as_deref(), d.pid) }
            })
        })
        .collect();
    for (c, other) in charts.iter_mut().zip(others) {
        c.other_end = other;
    }
    Ok(Recording {
        header: player.header().clone(),
        charts,
        events: player.events(),
        lost: player.lost(),
        ended: player.ended_cleanly(),
        notes: player.notes().to_vec(),
        broken: player.take_broken(),
    })
}

fn chart(mut data: ConnData, summary: Option<ConnSummary>, last_ns: u64) -> Chart {
    data.settle();
    let end_ns = data.end_ns(last_ns);
    Chart { data, summary, end_ns, other_end: None }
}
