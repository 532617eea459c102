//! The Prometheus exporter: counters, histograms and gauges built from the event stream, the
//! alerts and the connection table, rendered in the text exposition format 0.0.4 and served
//! over HTTP on `/metrics`.
//!
//! - `Metrics` is pure state (no I/O, no clock): the same events give the same exposition;
//! - `SharedMetrics` shares it between the pipeline (as an `Observer`) and the HTTP server, and
//!   names processes from /proc when live;
//! - `http`: `parse_addr`, `bind` and `serve`, a minimal HTTP/1.1 server on tokio;
//! - `labels`: where `port` and `process` come from, and the cap on their combinations.
//!
//! Aggregated series carry `port` (the connection's service port), `process` (comm) and, where
//! it applies, `side` (`local`: windows this host advertised; `peer`: windows the remote end
//! advertised). With more than `DEFAULT_LABEL_SETS` (port, process) pairs, the rest are folded
//! into `port="other", process="other"`. Per-connection series (4-tuple labels) are exported
//! only when asked for.

mod http;
mod labels;
#[cfg(test)]
mod tests;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

pub use http::{bind, parse_addr, serve};

use crate::alerts::{Alert, AlertId, AlertKind, Rule, Severity};
use crate::events::model::{Body, Event, Side};
use crate::pipeline::{Consumer, Drain, State};
use crate::timeline::{Conn, ConnKey, ConnSummary, ConnTable, FourTuple};
use labels::{Conns, LabelSets, PidNames, SetId};
use text::{Histogram, Kind, Text};

/// Distinct (port, process) label sets kept by default before folding into `other`.
pub const DEFAULT_LABEL_SETS: usize = 1000;
/// Connections whose service port and process name are remembered (live, then closed).
const LIVE_CONNS: usize = 65536;
const CLOSED_CONNS: usize = 4096;
/// Process names remembered by pid.
const PID_NAMES: usize = 16384;
/// Connections exported one by one with per-connection series; the rest are counted only.
const PER_CONNECTION_LIMIT: usize = 10_000;
/// Active alerts tracked for the `alerts_active` gauge (they resolve at close at the latest).
const ACTIVE_ALERTS_LIMIT: usize = 100_000;

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

// Metric names: `tcp_flow_` for what the traced connections did, `tracer_` for the agent.
const ZW_EPISODES: &str = "tcp_flow_zero_window_episodes_total";
const ZW_UNCOUNTED: &str = "tcp_flow_zero_window_uncounted_episodes_total";
const ZW_DURATION: &str = "tcp_flow_zero_window_duration_seconds";
const PROBES: &str = "tcp_flow_zero_window_probes_total";
const BACKOFF: &str = "tcp_flow_zero_window_probe_backoff";
const DROPS: &str = "tcp_flow_drops_total";
const DROPPED_BYTES: &str = "tcp_flow_dropped_bytes_total";
const READ_BYTES: &str = "tcp_flow_read_bytes_total";
const OPENED: &str = "tcp_flow_connections_opened_total";
const CLOSED: &str = "tcp_flow_connections_closed_total";
const CONNECTIONS: &str = "tcp_flow_connections";
const ALERTS: &str = "tcp_flow_alerts_total";
const ALERTS_ACTIVE: &str = "tcp_flow_alerts_active";
const CONN_STATE: &str = "tcp_flow_connection_state";
const CONN_WINDOW: &str = "tcp_flow_connection_window_bytes";
const CONN_EPISODES: &str = "tcp_flow_connection_zero_window_episodes_total";
const CONN_ZERO_SECONDS: &str = "tcp_flow_connection_zero_window_seconds_total";
const CONN_PROBES: &str = "tcp_flow_connection_zero_window_probes_total";
const CONN_DROPS: &str = "tcp_flow_connection_drops_total";
const CONN_UNREAD: &str = "tcp_flow_connection_unread_bytes";
const EVENTS: &str = "tracer_events_total";
const LOST: &str = "tracer_events_lost_total";
const FILL: &str = "tracer_ring_buffer_fill_ratio";
const FILL_MAX: &str = "tracer_ring_buffer_fill_ratio_max";
const RING_SIZE: &str = "tracer_ring_buffer_size_bytes";
const DRAINS: &str = "tracer_ring_drains_total";
const DRAINED_BYTES: &str = "tracer_ring_drained_bytes_total";
const DRAIN_EVENTS: &str = "tracer_ring_last_drain_events";
const TRACKED: &str = "tracer_connections_tracked";
const LABEL_SETS: &str = "tracer_metrics_label_sets";
const LABEL_SETS_LIMIT: &str = "tracer_metrics_label_sets_limit";
const FOLDED: &str = "tracer_metrics_folded_updates_total";
const OMITTED: &str = "tracer_metrics_connections_omitted";
const BUILD_INFO: &str = "tracer_build_info";
/// Labels of per-connection series: the socket's own view (saddr:sport is this host's end).
const CONN_LABELS: [&str; 5] = ["saddr", "sport", "daddr", "dport", "process"];

/// One live connection as exported with `per_connection`.
#[derive(Debug)]
struct ConnRow {
    tuple: FourTuple,
    set: SetId,
    /// Local, then peer.
    sides: [SideRow; 2],
    probes: u64,
    drops: u64,
    unread: Option<u32>,
}

#[derive(Debug)]
struct SideRow {
    side: &'static str,
    state: Option<&'static str>,
    window: Option<u32>,
    episodes: u64,
    zero_ns: u64,
}

/// Every metric the exporter serves. Pure state: fed by the pipeline, rendered on scrape.
#[derive(Debug)]
pub struct Metrics {
    per_connection: bool,
    proc_names: bool,
    unknown: Arc<str>,
    sets: LabelSets,
    conns: Conns,
    pids: PidNames,

    zero_windows: BTreeMap<(SetId, &'static str), u64>,
    uncounted: BTreeMap<SetId, u64>,
    zero_duration: BTreeMap<(SetId, &'static str), Histogram>,
    probes: BTreeMap<SetId, u64>,
    backoff: BTreeMap<SetId, Histogram>,
    drops: BTreeMap<(SetId, &'static str), u64>,
    dropped_bytes: BTreeMap<(SetId, &'static str), u64>,
    read_bytes: BTreeMap<SetId, u64>,
    opened: BTreeMap<SetId, u64>,
    closed: BTreeMap<SetId, u64>,
    alerts: BTreeMap<(SetId, Rule, Severity, Option<&'static str>), u64>,
    /// Active alerts by connection, rule and side: the set and severity they count under.
    active: HashMap<(FourTuple, Rule, Option<&'static str>), (SetId, Severity)>,

    /// From the latest table: live directions by label set, side and window state.
    states: BTreeMap<(SetId, &'static str, &'static str), u64>,
    tracked: u64,
    rows: Vec<ConnRow>,
    omitted: u64,

    events: BTreeMap<&'static str, u64>,
    lost: u64,
    drains: u64,
    drained_bytes: u64,
    last_drain_events: u64,
    ring_bytes: usize,
    fill: f64,
    fill_max: f64,
}

impl Metrics {
    /// Empty metrics; `per_connection` adds one series per connection (4-tuple labels).
    pub fn new(per_connection: bool) -> Self {
        Metrics {
            per_connection,
            proc_names: false,
            unknown: Arc::from("unknown"),
            sets: LabelSets::new(DEFAULT_LABEL_SETS),
            conns: Conns::new(LIVE_CONNS, CLOSED_CONNS),
            pids: PidNames::new(PID_NAMES),
            zero_windows: BTreeMap::new(),
            uncounted: BTreeMap::new(),
            zero_duration: BTreeMap::new(),
            probes: BTreeMap::new(),
            backoff: BTreeMap::new(),
            drops: BTreeMap::new(),
            dropped_bytes: BTreeMap::new(),
            read_bytes: BTreeMap::new(),
            opened: BTreeMap::new(),
            closed: BTreeMap::new(),
            alerts: BTreeMap::new(),
            active: HashMap::new(),
            states: BTreeMap::new(),
            tracked: 0,
            rows: Vec::new(),
            omitted: 0,
            events: KINDS.iter().map(|k| (*k, 0)).collect(),
            lost: 0,
            drains: 0,
            drained_bytes: 0,
            last_drain_events: 0,
            ring_bytes: 0,
            fill: 0.0,
            fill_max: 0.0,
        }
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

    /// Counts one decoded event under its connection's labels.
    pub fn on_event(&mut self, e: &Event) {
        *self.events.entry(e.body.kind()).or_default() += 1;
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
                *self.zero_windows.entry((set, side.as_str())).or_default() += 1;
                if !counted {
                    *self.uncounted.entry(set).or_default() += 1;
                }
            }
            Body::ZeroWindowEnd { side, duration_ns: Some(ns), .. } => {
                self.zero_duration
                    .entry((set, side.as_str()))
                    .or_insert_with(|| Histogram::new(&DURATION_BUCKETS))
                    .observe(*ns as f64 / 1e9);
            }
            Body::Probe { backoff, .. } => {
                *self.probes.entry(set).or_default() += 1;
                self.backoff
                    .entry(set)
                    .or_insert_with(|| Histogram::new(&BACKOFF_BUCKETS))
                    .observe(f64::from(*backoff));
            }
            Body::Drop { reason, bytes } => {
                let reason =
                    DROP_REASONS.iter().find(|r| **r == reason).copied().unwrap_or("other");
                *self.drops.entry((set, reason)).or_default() += 1;
                *self.dropped_bytes.entry((set, reason)).or_default() += u64::from(*bytes);
            }
            Body::Read { bytes, .. } => *self.read_bytes.entry(set).or_default() += bytes,
            Body::Close { .. } => {
                // Never named: its open counts now, where its close does.
                if let Some(info) = self.conns.get_mut(&tuple) {
                    if std::mem::take(&mut info.pending_open) {
                        *self.opened.entry(set).or_default() += 1;
                    }
                }
                *self.closed.entry(set).or_default() += 1;
                self.conns.close(&tuple);
            }
            _ => {}
        }
    }

    /// Counts a fired alert (an escalation too) and keeps track of the active ones.
    pub fn on_alert(&mut self, a: &Alert) {
        let tuple = FourTuple { saddr: a.saddr, sport: a.sport, daddr: a.daddr, dport: a.dport };
        let set = self.set_of(tuple, a.pid, a.comm.as_deref().filter(|c| !c.is_empty()));
        let side = a.side.map(Side::as_str);
        let key = (tuple, a.rule, side);
        match a.kind {
            AlertKind::Alert => {
                *self.alerts.entry((set, a.rule, a.severity, side)).or_default() += 1;
                // An escalation replaces the warning it escalates.
                if self.active.len() < ACTIVE_ALERTS_LIMIT || self.active.contains_key(&key) {
                    self.active.insert(key, (set, a.severity));
                }
            }
            AlertKind::AlertResolved => {
                self.active.remove(&key);
            }
        }
    }

    /// Events the kernel could not queue since the last report (ring buffer full).
    pub fn on_lost(&mut self, count: u64) {
        self.lost += count;
    }

    /// Health of the tracer itself: events decoded and ring-buffer bytes found at a drain.
    pub fn on_drain(&mut self, events: u64, bytes: usize, ring_bytes: usize) {
        self.drains += 1;
        self.drained_bytes += bytes as u64;
        self.last_drain_events = events;
        self.ring_bytes = ring_bytes;
        // More than the ring holds can be drained when the kernel keeps writing meanwhile.
        self.fill = if ring_bytes > 0 { (bytes as f64 / ring_bytes as f64).min(1.0) } else { 0.0 };
        self.fill_max = self.fill_max.max(self.fill);
    }

    /// Gauges of connections per state and side, from the table (called on each tick).
    pub fn on_table(&mut self, table: &ConnTable, now_ns: u64) {
        self.states.clear();
        self.rows.clear();
        self.tracked = 0;
        self.omitted = 0;
        let mut state_buf = String::new();
        for (_, conn) in table.iter() {
            if conn.is_closed() {
                continue;
            }
            self.tracked += 1;
            let set = self.set_of_conn(conn);
            let sides = [
                side_row(conn, Side::Local, &mut state_buf, now_ns),
                side_row(conn, Side::Peer, &mut state_buf, now_ns),
            ];
            for row in &sides {
                for state in STATES {
                    self.states.entry((set, row.side, state)).or_default();
                }
                if let Some(state) = row.state {
                    *self.states.entry((set, row.side, state)).or_default() += 1;
                }
            }
            if !self.per_connection {
                continue;
            }
            if self.rows.len() >= PER_CONNECTION_LIMIT {
                self.omitted += 1;
                continue;
            }
            self.rows.push(ConnRow {
                tuple: conn.tuple,
                set,
                sides,
                probes: conn.peer.totals.probes,
                drops: conn.local.totals.drops,
                unread: conn.local.receiver.as_ref().map(|r| r.unread),
            });
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

    /// The exposition, and the start of a new scrape interval for the `_max` gauges.
    pub fn scrape(&mut self) -> String {
        let text = self.render();
        self.fill_max = self.fill;
        text
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut t = Text::new();
        self.render_flow(&mut t);
        if self.per_connection {
            self.render_connections(&mut t);
        }
        self.render_health(&mut t);
        t.finish()
    }

    fn render_flow(&self, t: &mut Text) {
        t.family(
            ZW_EPISODES,
            Kind::Counter,
            "Zero-window episodes started (zero_window_start events), by the side that \
             advertised the zero window: local = this host's receiver, peer = the remote one.",
        );
        for ((set, side), n) in &self.zero_windows {
            let [p, c] = self.pair(*set);
            t.int(ZW_EPISODES, &[p, c, ("side", side)], *n);
        }
        t.family(
            ZW_UNCOUNTED,
            Kind::Counter,
            "Zero windows set under memory pressure (6.6+ kernels) that TCPToZeroWindowAdv \
             does not count; included in tcp_flow_zero_window_episodes_total.",
        );
        self.per_set(t, ZW_UNCOUNTED, &self.uncounted);
        t.family(
            ZW_DURATION,
            Kind::Histogram,
            "How long zero-window episodes lasted, in seconds (episodes whose start was seen).",
        );
        for ((set, side), h) in &self.zero_duration {
            let [p, c] = self.pair(*set);
            t.histogram(ZW_DURATION, &[p, c, ("side", side)], h);
        }
        t.family(
            PROBES,
            Kind::Counter,
            "Zero-window (persist) probes this host sent into a peer's zero window.",
        );
        self.per_set(t, PROBES, &self.probes);
        t.family(
            BACKOFF,
            Kind::Histogram,
            "Persist-timer backoff exponent at each zero-window probe (the interval doubles \
             with each step).",
        );
        for (set, h) in &self.backoff {
            let [p, c] = self.pair(*set);
            t.histogram(BACKOFF, &[p, c], h);
        }
        t.family(
            DROPS,
            Kind::Counter,
            "Segments this host dropped for lack of receive space, by kernel drop reason.",
        );
        self.per_reason(t, DROPS, &self.drops);
        t.family(
            DROPPED_BYTES,
            Kind::Counter,
            "Bytes in segments this host dropped for lack of receive space, by drop reason.",
        );
        self.per_reason(t, DROPPED_BYTES, &self.dropped_bytes);
        t.family(READ_BYTES, Kind::Counter, "Bytes the applications read from traced sockets.");
        self.per_set(t, READ_BYTES, &self.read_bytes);
        t.family(
            OPENED,
            Kind::Counter,
            "Traced connections opened (each end counts); an accepted one counts once its \
             process is known, or at its close.",
        );
        self.per_set(t, OPENED, &self.opened);
        t.family(CLOSED, Kind::Counter, "Traced connections closed (each end counts).");
        self.per_set(t, CLOSED, &self.closed);
        t.family(
            CONNECTIONS,
            Kind::Gauge,
            "Live connections by the window state of each side: open, shrinking, zero, \
             probing (zero and probed) or reopened (after a zero window).",
        );
        for ((set, side, state), n) in &self.states {
            let [p, c] = self.pair(*set);
            t.int(CONNECTIONS, &[p, c, ("side", side), ("state", state)], *n);
        }
        t.family(
            ALERTS,
            Kind::Counter,
            "Alerts fired (an escalation to critical counts again), by rule and severity.",
        );
        for ((set, rule, severity, side), n) in &self.alerts {
            let [p, c] = self.pair(*set);
            let (r, s) = (rule.as_str(), severity_str(*severity));
            match side {
                Some(side) => {
                    t.int(ALERTS, &[p, c, ("rule", r), ("severity", s), ("side", side)], *n)
                }
                None => t.int(ALERTS, &[p, c, ("rule", r), ("severity", s)], *n),
            }
        }
        t.family(ALERTS_ACTIVE, Kind::Gauge, "Alerts currently active, by rule and severity.");
        let mut active: BTreeMap<(SetId, Rule, Severity, Option<&'static str>), u64> =
            BTreeMap::new();
        for ((_, rule, side), (set, severity)) in &self.active {
            *active.entry((*set, *rule, *severity, *side)).or_default() += 1;
        }
        for ((set, rule, severity, side), n) in &active {
            let [p, c] = self.pair(*set);
            let (r, s) = (rule.as_str(), severity_str(*severity));
            match side {
                Some(side) => {
                    t.int(ALERTS_ACTIVE, &[p, c, ("rule", r), ("severity", s), ("side", side)], *n)
                }
                None => t.int(ALERTS_ACTIVE, &[p, c, ("rule", r), ("severity", s)], *n),
            }
        }
    }

    fn render_connections(&self, t: &mut Text) {
        // Label values rendered once per connection, shared by every family.
        let values: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.tuple.saddr.to_string(),
                    r.tuple.sport.to_string(),
                    r.tuple.daddr.to_string(),
                    r.tuple.dport.to_string(),
                    self.sets.get(r.set).process.to_string(),
                ]
            })
            .collect();

        t.family(
            CONN_STATE,
            Kind::Gauge,
            "Per connection (saddr:sport is this host's end): 1 for the current window state \
             of each side.",
        );
        for (row, base) in self.rows.iter().zip(&values) {
            for s in &row.sides {
                if let Some(state) = s.state {
                    t.int(CONN_STATE, &with(base, &[("side", s.side), ("state", state)]), 1);
                }
            }
        }
        t.family(
            CONN_WINDOW,
            Kind::Gauge,
            "Per connection: the latest window each side advertised, in bytes after scaling.",
        );
        for (row, base) in self.rows.iter().zip(&values) {
            for s in &row.sides {
                if let Some(w) = s.window {
                    t.int(CONN_WINDOW, &with(base, &[("side", s.side)]), u64::from(w));
                }
            }
        }
        t.family(CONN_EPISODES, Kind::Counter, "Per connection: zero-window episodes by side.");
        for (row, base) in self.rows.iter().zip(&values) {
            for s in &row.sides {
                t.int(CONN_EPISODES, &with(base, &[("side", s.side)]), s.episodes);
            }
        }
        t.family(
            CONN_ZERO_SECONDS,
            Kind::Counter,
            "Per connection: time at zero window by side, an episode in progress included.",
        );
        for (row, base) in self.rows.iter().zip(&values) {
            for s in &row.sides {
                t.float(
                    CONN_ZERO_SECONDS,
                    &with(base, &[("side", s.side)]),
                    s.zero_ns as f64 / 1e9,
                );
            }
        }
        t.family(CONN_PROBES, Kind::Counter, "Per connection: zero-window probes this host sent.");
        for (row, base) in self.rows.iter().zip(&values) {
            t.int(CONN_PROBES, &with(base, &[]), row.probes);
        }
        t.family(
            CONN_DROPS,
            Kind::Counter,
            "Per connection: segments dropped for lack of receive space.",
        );
        for (row, base) in self.rows.iter().zip(&values) {
            t.int(CONN_DROPS, &with(base, &[]), row.drops);
        }
        t.family(
            CONN_UNREAD,
            Kind::Gauge,
            "Per connection: bytes received but not yet read by the application, at the latest \
             window this host advertised.",
        );
        for (row, base) in self.rows.iter().zip(&values) {
            if let Some(u) = row.unread {
                t.int(CONN_UNREAD, &with(base, &[]), u64::from(u));
            }
        }
        t.family(
            OMITTED,
            Kind::Gauge,
            "Live connections left out of the per-connection series (over the limit).",
        );
        t.int(OMITTED, &[], self.omitted);
    }

    fn render_health(&self, t: &mut Text) {
        t.family(EVENTS, Kind::Counter, "Events decoded from the kernel, by kind.");
        for (kind, n) in &self.events {
            t.int(EVENTS, &[("kind", kind)], *n);
        }
        t.family(
            LOST,
            Kind::Counter,
            "Events the kernel could not queue because the ring buffer was full.",
        );
        t.int(LOST, &[], self.lost);
        t.family(
            FILL,
            Kind::Gauge,
            "How full the ring buffer was at the latest drain (0 to 1; loss starts at 1).",
        );
        t.float(FILL, &[], self.fill);
        t.family(
            FILL_MAX,
            Kind::Gauge,
            "The highest ring-buffer fill ratio at a drain since the previous scrape.",
        );
        t.float(FILL_MAX, &[], self.fill_max);
        t.family(RING_SIZE, Kind::Gauge, "Size of the ring buffer (0 before the first drain).");
        t.int(RING_SIZE, &[], self.ring_bytes as u64);
        t.family(DRAINS, Kind::Counter, "Times the agent drained the ring buffer.");
        t.int(DRAINS, &[], self.drains);
        t.family(DRAINED_BYTES, Kind::Counter, "Bytes of event records read from the ring buffer.");
        t.int(DRAINED_BYTES, &[], self.drained_bytes);
        t.family(DRAIN_EVENTS, Kind::Gauge, "Events decoded at the latest drain.");
        t.int(DRAIN_EVENTS, &[], self.last_drain_events);
        t.family(TRACKED, Kind::Gauge, "Live connections in the agent's connection table.");
        t.int(TRACKED, &[], self.tracked);
        t.family(
            LABEL_SETS,
            Kind::Gauge,
            "Distinct (port, process) label sets exported, the folded \"other\" one included.",
        );
        t.int(LABEL_SETS, &[], self.sets.len() as u64);
        t.family(
            LABEL_SETS_LIMIT,
            Kind::Gauge,
            "Distinct (port, process) label sets kept before folding into port=\"other\", \
             process=\"other\".",
        );
        t.int(LABEL_SETS_LIMIT, &[], self.sets.limit() as u64);
        t.family(
            FOLDED,
            Kind::Counter,
            "Updates counted under port=\"other\", process=\"other\" because the label-set \
             limit was reached.",
        );
        t.int(FOLDED, &[], self.sets.folded);
        t.family(BUILD_INFO, Kind::Gauge, "Always 1; the tracer's version as a label.");
        t.int(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1);
    }

    /// The `port` and `process` labels of a set.
    fn pair(&self, set: SetId) -> [(&'static str, &str); 2] {
        let s = self.sets.get(set);
        [("port", s.port.as_str()), ("process", &s.process)]
    }

    fn per_set(&self, t: &mut Text, name: &str, map: &BTreeMap<SetId, u64>) {
        for (set, n) in map {
            t.int(name, &self.pair(*set), *n);
        }
    }

    fn per_reason(&self, t: &mut Text, name: &str, map: &BTreeMap<(SetId, &'static str), u64>) {
        for ((set, reason), n) in map {
            let [p, c] = self.pair(*set);
            t.int(name, &[p, c, ("reason", reason)], *n);
        }
    }

    /// The label set of the connection on `tuple`, naming its process the first time a name is
    /// known (from this event, else from the pid).
    fn set_of(&mut self, tuple: FourTuple, pid: Option<u32>, comm: Option<&str>) -> SetId {
        let Metrics { conns, pids, sets, unknown, opened, .. } = self;
        let info = conns.get_or_insert(tuple);
        if info.process.is_none() {
            info.process = comm.map(Arc::from).or_else(|| pid.and_then(|p| pids.get(p)));
        }
        let process = info.process.clone().unwrap_or_else(|| unknown.clone());
        let set = sets.id(info.port, &process);
        if info.pending_open && info.process.is_some() {
            info.pending_open = false;
            *opened.entry(set).or_default() += 1;
        }
        set
    }

    /// The label set of a connection in the table (which does not know which end connected).
    fn set_of_conn(&mut self, conn: &Conn) -> SetId {
        let Metrics { conns, pids, sets, unknown, opened, .. } = self;
        let name = conn.comm.as_deref().filter(|c| !c.is_empty());
        let named = || name.map(Arc::from).or_else(|| conn.pid.and_then(|p| pids.get(p)));
        let Some(info) = conns.get_mut(&conn.tuple) else {
            let process = named().unwrap_or_else(|| unknown.clone());
            return sets.id(conn.tuple.sport.min(conn.tuple.dport), &process);
        };
        if info.process.is_none() {
            info.process = named();
        }
        let process = info.process.clone().unwrap_or_else(|| unknown.clone());
        let set = sets.id(info.port, &process);
        if info.pending_open && info.process.is_some() {
            info.pending_open = false;
            *opened.entry(set).or_default() += 1;
        }
        set
    }
}

/// The labels of a per-connection series: the connection's, then `extra`.
fn with<'a>(
    values: &'a [String; 5],
    extra: &[(&'static str, &'static str)],
) -> Vec<(&'a str, &'a str)> {
    let mut labels: Vec<(&str, &str)> =
        CONN_LABELS.iter().copied().zip(values.iter().map(String::as_str)).collect();
    labels.extend_from_slice(extra);
    labels
}

/// One direction of a table connection, for the gauges.
fn side_row(conn: &Conn, side: Side, buf: &mut String, now_ns: u64) -> SideRow {
    let d = conn.side(side);
    SideRow {
        side: d.side.as_str(),
        state: state_name(&d.state, buf),
        window: d.window,
        episodes: d.totals.episodes,
        zero_ns: d.zero_ns(conn.until(now_ns)),
    }
}

/// The state's name (the timeline does not export its `WindowState` type, so its derived
/// `Debug` names are matched); None for `Closed` and for states added later.
fn state_name(state: &impl std::fmt::Debug, buf: &mut String) -> Option<&'static str> {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{state:?}");
    match buf.as_str() {
        "Open" => Some("open"),
        "Shrinking" => Some("shrinking"),
        "Zero" => Some("zero"),
        "Probing" => Some("probing"),
        "Reopened" => Some("reopened"),
        _ => None,
    }
}

fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}

/// Shares a Metrics between the pipeline (as an Observer) and the HTTP server.
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
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok();
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
        self.lock().on_drain(drain.events, drain.bytes, drain.ring_bytes);
    }

    fn tick(&mut self, state: &State<'_>, now_ns: u64) -> anyhow::Result<()> {
        self.lock().on_table(state.table, now_ns);
        Ok(())
    }

    fn finish(
        &mut self,
        state: &State<'_>,
        now_ns: u64,
        _summary: &[ConnSummary],
    ) -> anyhow::Result<()> {
        self.lock().on_table(state.table, now_ns);
        Ok(())
    }
}
