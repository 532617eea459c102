//! Families whose values are read when Prometheus scrapes, not kept in prometheus-client's
//! metric types: the agent's health and the per-connection series (both taken from state the
//! agent holds anyway). Counters kept in kernel maps fit the same way: a `Collect` source that
//! reads its map in `collect`, registered with `Metrics::add_collector`.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeCounterValue, EncodeGaugeValue, EncodeLabelSet, MetricEncoder,
    NoLabelSet,
};

use super::families::{self as f, Family, Kind};
use super::labels::ConnLabels;
use crate::timeline::FourTuple;

/// A source of families written at scrape time.
pub trait Collect: fmt::Debug + Send + 'static {
    fn collect(&self, out: &mut Out<'_>) -> fmt::Result;
}

/// A `Collect` source shared between whoever updates it and the registry, which reads it on
/// every scrape (under the lock, held only for that).
#[derive(Debug)]
pub struct Scraped<T>(Arc<Mutex<T>>);

impl<T> Scraped<T> {
    pub fn new(source: T) -> Self {
        Scraped(Arc::new(Mutex::new(source)))
    }

    /// The source, also after a panic elsewhere poisoned the lock (its values stay usable).
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> Clone for Scraped<T> {
    fn clone(&self) -> Self {
        Scraped(Arc::clone(&self.0))
    }
}

impl<T: Collect> Collector for Scraped<T> {
    fn encode(&self, encoder: DescriptorEncoder) -> fmt::Result {
        self.lock().collect(&mut Out(encoder))
    }
}

/// Writes families from values in hand, as their `Family` row describes them.
pub struct Out<'a>(DescriptorEncoder<'a>);

impl Out<'_> {
    /// A family of one sample without labels.
    pub fn one<V: Value>(&mut self, family: &Family, value: V) -> fmt::Result {
        let unit = family.unit();
        let mut metric = self.0.encode_descriptor(
            family.stem(),
            family.help,
            unit.as_ref(),
            family.metric_type(),
        )?;
        value.write(family, &mut metric)
    }

    /// A family and its samples; a family without samples is left out, as the registry does.
    pub fn family<L, V>(
        &mut self,
        family: &Family,
        samples: impl IntoIterator<Item = (L, V)>,
    ) -> fmt::Result
    where
        L: EncodeLabelSet,
        V: Value,
    {
        let mut samples = samples.into_iter().peekable();
        if samples.peek().is_none() {
            return Ok(());
        }
        let unit = family.unit();
        let mut metric = self.0.encode_descriptor(
            family.stem(),
            family.help,
            unit.as_ref(),
            family.metric_type(),
        )?;
        for (labels, value) in samples {
            value.write(family, &mut metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// A sample value: an integer or a float, as a counter or a gauge.
pub trait Value: EncodeCounterValue + EncodeGaugeValue + Sized {
    fn write(&self, family: &Family, metric: &mut MetricEncoder<'_>) -> fmt::Result {
        match family.kind {
            Kind::Counter => metric.encode_counter::<NoLabelSet, _, u64>(self, None),
            Kind::Gauge => metric.encode_gauge(self),
            // Written from prometheus-client's own types only.
            Kind::Histogram | Kind::Info => Err(fmt::Error),
        }
    }
}

impl Value for u64 {}
impl Value for f64 {}

/// The tracer's own health: the ring buffer at the latest drain, its connection table at the
/// latest tick, and the label sets in use (refreshed just before each scrape).
#[derive(Debug, Default)]
pub struct Health {
    pub lost: u64,
    pub drains: u64,
    pub drained_bytes: u64,
    pub last_drain_events: u64,
    pub ring_bytes: u64,
    pub fill: f64,
    /// The highest `fill` since the previous scrape.
    pub fill_max: f64,
    pub tracked: u64,
    pub evicted: u64,
    pub untracked: u64,
    pub label_sets: u64,
    pub label_sets_limit: u64,
    pub folded: u64,
}

impl Collect for Health {
    fn collect(&self, out: &mut Out<'_>) -> fmt::Result {
        out.one(&f::LOST, self.lost)?;
        out.one(&f::FILL, self.fill)?;
        out.one(&f::FILL_MAX, self.fill_max)?;
        out.one(&f::RING_SIZE, self.ring_bytes)?;
        out.one(&f::DRAINS, self.drains)?;
        out.one(&f::DRAINED_BYTES, self.drained_bytes)?;
        out.one(&f::DRAIN_EVENTS, self.last_drain_events)?;
        out.one(&f::TRACKED, self.tracked)?;
        out.one(&f::EVICTED, self.evicted)?;
        out.one(&f::UNTRACKED, self.untracked)?;
        out.one(&f::LABEL_SETS, self.label_sets)?;
        out.one(&f::LABEL_SETS_LIMIT, self.label_sets_limit)?;
        out.one(&f::FOLDED, self.folded)
    }
}

/// The per-connection series, from the connection table at the latest tick.
#[derive(Debug, Default)]
pub struct ConnRows {
    pub rows: Vec<ConnRow>,
    /// Live connections past the limit, left out.
    pub omitted: u64,
}

/// One live connection.
#[derive(Debug)]
pub struct ConnRow {
    pub tuple: FourTuple,
    pub process: Arc<str>,
    /// Local, then peer.
    pub sides: [SideRow; 2],
    pub probes: u64,
    pub drops: u64,
    pub unread: Option<u32>,
}

/// One direction of a live connection.
#[derive(Debug)]
pub struct SideRow {
    pub side: &'static str,
    pub state: Option<&'static str>,
    pub window: Option<u32>,
    pub episodes: u64,
    pub zero_ns: u64,
}

/// A connection's labels and its `side`.
type ConnSide<'a> = (ConnLabels<'a>, [(&'static str, &'static str); 1]);

impl ConnRow {
    fn labels(&self) -> ConnLabels<'_> {
        ConnLabels { tuple: &self.tuple, process: &self.process }
    }

    /// The connection's labels and `side`, for each side.
    fn sides(&self) -> impl Iterator<Item = (ConnSide<'_>, &SideRow)> {
        self.sides.iter().map(move |s| ((self.labels(), [("side", s.side)]), s))
    }
}

impl Collect for ConnRows {
    fn collect(&self, out: &mut Out<'_>) -> fmt::Result {
        let rows = &self.rows;
        out.family(
            &f::CONN_STATE,
            rows.iter().flat_map(|r| {
                r.sides.iter().filter_map(|s| {
                    Some(((r.labels(), [("side", s.side), ("state", s.state?)]), 1u64))
                })
            }),
        )?;
        out.family(
            &f::CONN_WINDOW,
            rows.iter()
                .flat_map(|r| r.sides().filter_map(|(l, s)| Some((l, u64::from(s.window?))))),
        )?;
        out.family(
            &f::CONN_EPISODES,
            rows.iter().flat_map(|r| r.sides().map(|(l, s)| (l, s.episodes))),
        )?;
        out.family(
            &f::CONN_ZERO_SECONDS,
            rows.iter().flat_map(|r| r.sides().map(|(l, s)| (l, s.zero_ns as f64 / 1e9))),
        )?;
        out.family(&f::CONN_PROBES, rows.iter().map(|r| (r.labels(), r.probes)))?;
        out.family(&f::CONN_DROPS, rows.iter().map(|r| (r.labels(), r.drops)))?;
        out.family(
            &f::CONN_UNREAD,
            rows.iter().filter_map(|r| Some((r.labels(), u64::from(r.unread?)))),
        )?;
        out.one(&f::OMITTED, self.omitted)
    }
}
