//! The Prometheus exporter: counters, histograms and gauges built from the event stream, the
//! alerts and the connection table, kept in prometheus-client's types and served over HTTP on
//! `/metrics` as OpenMetrics or the text format 0.0.4.
//!
//! - `Metrics` is pure state (no I/O, no clock): the same events give the same samples;
//! - `SharedMetrics` shares it between the pipeline (as a `Consumer`) and the HTTP server, and
//!   names processes from /proc when live;
//! - `families`: every metric family as a row of data (name, help, unit, type, labels);
//! - `scraped`: families whose values are read at scrape time (the agent's health, the
//!   per-connection series), and the hook for more (`Collect`, e.g. kernel-map counters);
//! - `labels`: where `port` and `process` come from, the cap on their combinations, and the
//!   label sets as prometheus-client encodes them;
//! - `format`: OpenMetrics or text 0.0.4, as the scraper's Accept header asks;
//! - `http`: `parse_addr`, `bind` and `serve`, the scrape endpoint on hyper.
//!
//! Aggregated series carry `port` (the connection's service port), `process` (comm) and, where
//! it applies, `side` (`local`: windows this host advertised; `peer`: windows the remote end
//! advertised). With more than `DEFAULT_LABEL_SETS` (port, process) pairs, the rest are folded
//! into `port="other", process="other"`. Per-connection series (4-tuple labels) are exported
//! only when asked for.

mod families;
mod format;
pub mod host;
mod http;
mod labels;
mod scraped;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard};

pub use http::{bind, parse_addr, serve};

use prometheus_client::metrics::{
    counter::Counter, family::Family, gauge::Gauge, histogram::Histogram, info::Info,
};
use prometheus_client::registry::Registry;

use crate::alerts::{ActiveAlert, Alert, AlertId, AlertKind, Severity};
use crate::events::model::{Body, Event, Side};
use crate::pipeline::{Consumer, Drain, State};
use crate::timeline::{Conn, ConnKey, ConnSummary, ConnTable, FourTuple};
use families as f;
use format::Format;
use labels::{AlertLabels, ConnInfo, Conns, LabelSet, LabelSets, PidNames, Sided};
pub use scraped::Scraped;
use scraped::{Collect, ConnRow, ConnRows, Health, SideRow};

/// Distinct (port, process) label sets kept by default before folding into `other`.
pub const DEFAULT_LABEL_SETS: usize = 1000;
/// Connections whose service port and process name are remembered (live, by default as many as
/// the connection table keeps; then closed).
const LIVE_CONNS: usize = crate::timeline::DEFAULT_LIVE_CAPACITY;
const CLOSED_CONNS: usize = 4096;
/// Process names remembered by pid.
const PID_NAMES: usize = 16384;
/// Connections exported one by one with per-connection series; the rest are counted only.
const PER_CONNECTION_LIMIT: usize = 10_000;

/// Zero-window episode durations, seconds: from a blip to the 2-minute stall.
static DURATION_BUCKETS: [f64; 13] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
/// Persist-timer backoff exponents (the kernel stops at tcp_retries2, 15 by default).
static BACKOFF_BUCKETS: [f64; 16] =
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0];
/// Drop reasons the kernel side reports; anything else (a recording from elsewhere) is `other`.
const DROP_REASONS: [&str; 6] = [
    "TCP_ZEROWINDOW",
    "TCP_OVERWINDOW",
    "PROTO_MEM",
    "TCP_OFO_QUEUE_PRUNE",
    "TCP_INVALID_SEQUENCE",
    "TCP_INVALID_END_SEQUENCE",
];
/// Event kinds, so that their counters exist (at 0) from the start.
const KINDS: [&str; 11] = [
    "window",
    "zero_window_start",
    "zero_window_end",
    "inflight",
    "probe",
    "rcv_space",
    "read",
    "drop",
    "open",
    "close",
    "owner",
];
/// Window states of a live connection's direction (`closed` ones are not counted).
const STATES: [&str; 5] = ["open", "shrinking", "zero", "probing", "reopened"];

/// A histogram family; its constructor gives each new series the family's buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

fn backoff_histogram() -> Histogram {
    Histogram::new(BACKOFF_BUCKETS)
}

/// Every metric the exporter serves. Pure state: fed by the pipeline, encoded on scrape.
#[derive(Debug)]
pub struct Metrics {
    proc_names: bool,
    unknown: Arc<str>,
    sets: LabelSets,
    conns: Conns,
    pids: PidNames,
    /// Every family below and the scrape-time sources: the traced connections' families, the
    /// per-connection ones, then the agent's.
    registry: Registry,

    zero_windows: Family<Sided<1>, Counter>,
    uncounted: Family<LabelSet, Counter>,
    zero_duration: Histograms<Sided<1>>,
    probes: Family<LabelSet, Counter>,
    backoff: Histograms<LabelSet>,
    drops: Family<Sided<1>, Counter>,
    dropped_bytes: Family<Sided<1>, Counter>,
    read_bytes: Family<LabelSet, Counter>,
    opened: Family<LabelSet, Counter>,
    closed: Family<LabelSet, Counter>,
    /// From the latest table: live directions by label set, side and window state.
    connections: Family<Sided<2>, Gauge>,
    alerts: Family<AlertLabels, Counter>,
    alerts_active: Family<AlertLabels, Gauge>,
    /// With `per_connection` only.
    rows: Option<Scraped<ConnRows>>,
    events: Family<[(&'static str, &'static str); 1], Counter>,
    health: Scraped<Health>,
}

impl Metrics {
    /// Empty metrics; `per_connection` adds one series per connection (4-tuple labels).
    pub fn new(per_connection: bool) -> Self {
        let mut m = Metrics {
            proc_names: false,
            unknown: Arc::from("unknown"),
            sets: LabelSets::new(DEFAULT_LABEL_SETS),
            conns: Conns::new(LIVE_CONNS, CLOSED_CONNS),
            pids: PidNames::new(PID_NAMES),
            registry: Registry::default(),
            zero_windows: Family::default(),
            uncounted: Family::default(),
            zero_duration: Family::new_with_constructor(duration_histogram),
            probes: Family::default(),
            backoff: Family::new_with_constructor(backoff_histogram),
            drops: Family::default(),
            dropped_bytes: Family::default(),
            read_bytes: Family::default(),
            opened: Family::default(),
            closed: Family::default(),
            connections: Family::default(),
            alerts: Family::default(),
            alerts_active: Family::default(),
            rows: per_connection.then(|| Scraped::new(ConnRows::default())),
            events: Family::default(),
            health: Scraped::new(Health::default()),
        };
        for kind in KINDS {
            // Created at 0; the guard it returns is let go at once.
            let _ = m.events.get_or_create(&[("kind", kind)]);
        }
        let r = &mut m.registry;
        f::ZW_EPISODES.register(r, m.zero_windows.clone());
        f::ZW_UNCOUNTED.register(r, m.uncounted.clone());
        f::ZW_DURATION.register(r, m.zero_duration.clone());
        f::PROBES.register(r, m.probes.clone());
        f::BACKOFF.register(r, m.backoff.clone());
        f::DROPS.register(r, m.drops.clone());
        f::DROPPED_BYTES.register(r, m.dropped_bytes.clone());
        f::READ_BYTES.register(r, m.read_bytes.clone());
        f::OPENED.register(r, m.opened.clone());
        f::CLOSED.register(r, m.closed.clone());
        f::CONNECTIONS.register(r, m.connections.clone());
        f::ALERTS.register(r, m.alerts.clone());
        f::ALERTS_ACTIVE.register(r, m.alerts_active.clone());
        if let Some(rows) = m.rows.clone() {
            m.add_collector(rows);
        }
        // The agent's own families last (a sub-registry is encoded after the collectors).
        let agent = m.registry.sub_registry_with_labels(std::iter::empty());
        f::EVENTS.register(agent, m.events.clone());
        f::BUILD_INFO.register(agent, Info::new([("version", env!("CARGO_PKG_VERSION"))]));
        agent.register_collector(Box::new(m.health.clone()));
        m
    }

    /// Remember the labels of up to `limit` live connections (the connection table's cap).
    pub fn with_live_connections(mut self, limit: usize) -> Self {
        self.conns = Conns::new(limit, CLOSED_CONNS);
        self
    }

    /// Lets `SharedMetrics` name processes it only has a pid for from /proc/PID/comm. For live
    /// tracing only: the pids of a recording mean nothing on this host.
    pub fn with_proc_names(mut self, on: bool) -> Self {
        self.proc_names = on;
        self
    }

    /// Changes how many (port, process) label sets are kept before folding into `other`.
    #[cfg(test)]
    pub fn with_label_set_limit(mut self, limit: usize) -> Self {
        self.sets = LabelSets::new(limit);
        self
    }

    /// Families read at scrape time from `source` (counters kept in kernel maps, say).
    pub fn add_collector(&mut self, source: Scraped<impl Collect>) {
        self.registry.register_collector(Box::new(source));
    }

    /// Counts one decoded event under its connection's labels.
    pub fn on_event(&mut self, e: &Event) {
        self.events.get_or_create(&[("kind", e.body.kind())]).inc();
        let tuple = FourTuple::of(e);
        let comm = e.body.comm();
        if let (Some(pid), Some(name)) = (e.pid, comm) {
            self.pids.learn(pid, Some(Arc::from(name)), e.ts_ns);
        }
        if let Body::Open { active, .. } = &e.body {
            // Accepted here: this host's port is the service; connected: the remote one.
            self.conns.open(tuple, if *active { e.dport } else { e.sport });
        }
        let set = self.set_of(tuple, e.pid, comm);
        match &e.body {
            Body::ZeroWindowStart { side, counted, .. } => {
                if !counted {
                    self.uncounted.get_or_create(&set).inc();
                }
                self.zero_windows.get_or_create(&(set, [("side", side.as_str())])).inc();
            }
            Body::ZeroWindowEnd { side, duration_ns: Some(ns), .. } => {
                let labels = (set, [("side", side.as_str())]);
                self.zero_duration.get_or_create(&labels).observe(*ns as f64 / 1e9);
            }
            Body::Probe { backoff, .. } => {
                self.probes.get_or_create(&set).inc();
                self.backoff.get_or_create(&set).observe(f64::from(*backoff));
            }
            Body::Drop { reason, bytes } => {
                let reason =
                    DROP_REASONS.iter().find(|r| **r == reason).copied().unwrap_or("other");
                let labels = (set, [("reason", reason)]);
                self.drops.get_or_create(&labels).inc();
                self.dropped_bytes.get_or_create(&labels).inc_by(u64::from(*bytes));
            }
            Body::Read { bytes, .. } => {
                self.read_bytes.get_or_create(&set).inc_by(*bytes);
            }
            Body::Close { .. } => {
                // Never named: its open counts now, where its close does.
                if let Some(info) = self.conns.get_mut(&tuple) {
                    if std::mem::take(&mut info.pending_open) {
                        self.opened.get_or_create(&set).inc();
                    }
                }
                self.closed.get_or_create(&set).inc();
                self.conns.close(&tuple);
            }
            _ => {}
        }
    }

    /// Counts a fired alert (an escalation too); resolutions show in `on_active`.
    pub fn on_alert(&mut self, a: &Alert) {
        if a.kind != AlertKind::Alert {
            return;
        }
        let set = self.set_of(a.tuple(), a.pid, a.comm.as_deref().filter(|c| !c.is_empty()));
        let side = a.side.map(Side::as_str);
        let labels =
            AlertLabels { set, rule: a.rule.as_str(), severity: severity_str(a.severity), side };
        self.alerts.get_or_create(&labels).inc();
    }

    /// The active-alerts gauge, from the engine's own list (called on each tick).
    pub fn on_active<'a>(&mut self, active: impl Iterator<Item = ActiveAlert<'a>>) {
        self.alerts_active.clear();
        for a in active {
            let alert = a.alert;
            let comm = alert.comm.as_deref().filter(|c| !c.is_empty());
            let labels = AlertLabels {
                set: self.set_of(alert.tuple(), alert.pid, comm),
                rule: a.id.rule.as_str(),
                severity: severity_str(a.severity),
                side: a.id.side.map(Side::as_str),
            };
            self.alerts_active.get_or_create(&labels).inc();
        }
    }

    /// Events the kernel could not queue since the last report (ring buffer full).
    pub fn on_lost(&mut self, count: u64) {
        self.health.lock().lost += count;
    }

    /// Health of the tracer itself: events decoded and ring-buffer bytes found at a drain.
    pub fn on_drain(&mut self, events: u64, bytes: usize, ring_bytes: usize) {
        let mut h = self.health.lock();
        h.drains += 1;
        h.drained_bytes += bytes as u64;
        h.last_drain_events = events;
        h.ring_bytes = ring_bytes as u64;
        // More than the ring holds can be drained when the kernel keeps writing meanwhile.
        h.fill = if ring_bytes > 0 { (bytes as f64 / ring_bytes as f64).min(1.0) } else { 0.0 };
        h.fill_max = h.fill_max.max(h.fill);
    }

    /// Connections the kernel's per-socket table had no room for, in all.
    pub fn on_untracked(&mut self, total: u64) {
        self.health.lock().untracked = total;
    }

    /// Gauges of connections per state and side, from the table (called on each tick).
    pub fn on_table(&mut self, table: &ConnTable, now_ns: u64) {
        self.connections.clear();
        let mut tracked = 0;
        let mut rows = Vec::new();
        let mut omitted = 0;
        for (_, conn) in table.iter() {
            if conn.is_closed() {
                continue;
            }
            tracked += 1;
            let set = self.set_of_conn(conn);
            let sides = [side_row(conn, Side::Local, now_ns), side_row(conn, Side::Peer, now_ns)];
            for row in &sides {
                for state in STATES {
                    let labels = (set.clone(), [("side", row.side), ("state", state)]);
                    let gauge = self.connections.get_or_create(&labels);
                    if row.state == Some(state) {
                        gauge.inc();
                    }
                }
            }
            if self.rows.is_none() {
                continue;
            }
            if rows.len() >= PER_CONNECTION_LIMIT {
                omitted += 1;
                continue;
            }
            rows.push(ConnRow {
                tuple: conn.tuple,
                process: set.process.clone(),
                sides,
                probes: conn.peer.totals().probes,
                drops: conn.local.totals().drops,
                unread: conn.receiver.as_ref().map(|r| r.unread),
            });
        }
        let mut h = self.health.lock();
        h.tracked = tracked;
        h.evicted = table.evicted();
        drop(h);
        if let Some(shared) = &self.rows {
            *shared.lock() = ConnRows { rows, omitted };
        }
    }

    /// The pid whose name the caller may look up in /proc for `e`: its connection has no
    /// process name yet, and that pid's name is unknown or old. None unless `with_proc_names`.
    pub fn pid_to_name(&self, e: &Event) -> Option<u32> {
        let pid = e.pid?;
        if !self.proc_names || e.body.comm().is_some() {
            return None;
        }
        let named = self.conns.get(&FourTuple::of(e)).is_some_and(|c| c.process.is_some());
        (!named && self.pids.stale(pid, e.ts_ns)).then_some(pid)
    }

    /// A process name for `pid` found outside the events (/proc), or None if it has gone.
    pub fn learn_pid_name(&mut self, pid: u32, name: Option<&str>, ts_ns: u64) {
        let name = name.map(str::trim).filter(|n| !n.is_empty()).map(Arc::from);
        self.pids.learn(pid, name, ts_ns);
    }

    /// The exposition in `format`. Fails only if a scrape-time source does.
    pub fn encode(&self, format: Format) -> Result<String, std::fmt::Error> {
        {
            let mut h = self.health.lock();
            h.label_sets = self.sets.len() as u64;
            h.label_sets_limit = self.sets.limit() as u64;
            h.folded = self.sets.folded;
        }
        format.encode(&self.registry)
    }

    /// The exposition, and the start of a new scrape interval for the `_max` gauges.
    pub fn scrape(&mut self, format: Format) -> Result<String, std::fmt::Error> {
        let text = self.encode(format)?;
        let mut h = self.health.lock();
        h.fill_max = h.fill;
        Ok(text)
    }

    /// Text format 0.0.4, for tests.
    #[cfg(test)]
    pub fn render(&self) -> String {
        self.encode(Format::Text).expect("the exposition")
    }

    /// The label set of the connection on `tuple`, naming its process the first time a name is
    /// known (from this event, else from the pid).
    fn set_of(&mut self, tuple: FourTuple, pid: Option<u32>, comm: Option<&str>) -> LabelSet {
        let Metrics { conns, pids, sets, unknown, opened, .. } = self;
        let info = conns.get_or_insert(tuple);
        let named = || comm.map(Arc::from).or_else(|| pid.and_then(|p| pids.get(p)));
        label_set(info, named, sets, unknown, opened)
    }

    /// The label set of a connection in the table (which does not know which end connected).
    fn set_of_conn(&mut self, conn: &Conn) -> LabelSet {
        let Metrics { conns, pids, sets, unknown, opened, .. } = self;
        let name = conn.comm.as_deref().filter(|c| !c.is_empty());
        let named = || name.map(Arc::from).or_else(|| conn.pid.and_then(|p| pids.get(p)));
        let Some(info) = conns.get_mut(&conn.tuple) else {
            let process = named().unwrap_or_else(|| unknown.clone());
            return sets.get(conn.tuple.sport.min(conn.tuple.dport), &process);
        };
        label_set(info, named, sets, unknown, opened)
    }
}

/// The label set of a remembered connection: its process is named by `named` the first time a
/// name is known, and then it stays; its open, pending until then, is counted then.
fn label_set(
    info: &mut ConnInfo,
    named: impl FnOnce() -> Option<Arc<str>>,
    sets: &mut LabelSets,
    unknown: &Arc<str>,
    opened: &Family<LabelSet, Counter>,
) -> LabelSet {
    if info.process.is_none() {
        info.process = named();
    }
    let process = info.process.clone().unwrap_or_else(|| unknown.clone());
    let set = sets.get(info.port, &process);
    if info.pending_open && info.process.is_some() {
        info.pending_open = false;
        opened.get_or_create(&set).inc();
    }
    set
}

/// One direction of a table connection, for the gauges.
fn side_row(conn: &Conn, side: Side, now_ns: u64) -> SideRow {
    let d = conn.side(side);
    SideRow {
        side: d.side.as_str(),
        state: Some(d.state.name()).filter(|s| STATES.contains(s)),
        window: d.window,
        episodes: d.totals().episodes,
        zero_ns: d.zero_ns(conn.until(now_ns)),
    }
}

fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Shares a Metrics between the pipeline (as a `Consumer`) and the HTTP server.
#[derive(Clone)]
pub struct SharedMetrics(pub Arc<Mutex<Metrics>>);

impl SharedMetrics {
    /// Shares `metrics`; clone the result for each user.
    pub fn new(metrics: Metrics) -> Self {
        SharedMetrics(Arc::new(Mutex::new(metrics)))
    }

    /// The metrics, also after a panic elsewhere poisoned the lock (they stay usable: every
    /// update is a few counter increments).
    pub fn lock(&self) -> MutexGuard<'_, Metrics> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Consumer for SharedMetrics {
    fn event(&mut self, e: &Event, _key: ConnKey, _state: &State<'_>) -> anyhow::Result<()> {
        let mut m = self.lock();
        if let Some(pid) = m.pid_to_name(e) {
            let name = crate::host::procfs::comm(pid);
            m.learn_pid_name(pid, name.as_deref(), e.ts_ns);
        }
        m.on_event(e);
        Ok(())
    }

    fn alert(&mut self, a: &Alert, _id: &AlertId, _state: &State<'_>) -> anyhow::Result<()> {
        self.lock().on_alert(a);
        Ok(())
    }

    fn lost(&mut self, _ts_ns: u64, new: u64, _total: u64) -> anyhow::Result<()> {
        self.lock().on_lost(new);
        Ok(())
    }

    fn drained(&mut self, drain: &Drain) {
        let mut m = self.lock();
        m.on_drain(drain.events, drain.bytes, drain.ring_bytes);
        m.on_untracked(drain.untracked);
    }

    fn tick(&mut self, state: &State<'_>, now_ns: u64) -> anyhow::Result<()> {
        let mut m = self.lock();
        m.on_table(state.table, now_ns);
        m.on_active(state.alerts.active());
        Ok(())
    }

    fn finish(
        &mut self,
        state: &State<'_>,
        now_ns: u64,
        _summary: &[ConnSummary],
    ) -> anyhow::Result<()> {
        self.tick(state, now_ns)
    }
}
