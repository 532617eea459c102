//! Every metric family the exporter serves, as data: name, help, unit, type and label names.
//! The rest of the module refers to these rows; nothing else spells a metric name.
//!
//! Names are written as the text format 0.0.4 shows them (counters end in `_total`, a unit is
//! the last word before it); prometheus-client derives the OpenMetrics family name from the
//! stem and unit, so a sample has the same name in both formats.
//!
//! Every label's values are bounded: `port` and `process` by `DEFAULT_LABEL_SETS` pairs (the
//! rest fold into `other`), `side` (local, peer), `state` (five), `reason` (six and `other`),
//! `rule` and `severity` by the alert rules, `kind` by the event kinds, and the 4-tuple labels
//! of the opt-in per-connection families by their connection limit.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Metric, Registry, Unit};

/// What a family's samples mean to Prometheus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// One sample, always 1, whose labels are the information (0.0.4 shows it as a gauge).
    Info,
}

/// The units the families are measured in (the last word of their name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    Seconds,
    Bytes,
}

/// One metric family.
#[derive(Debug)]
pub struct Family {
    /// The name as text format 0.0.4 shows it.
    pub name: &'static str,
    /// One sentence or more, ending with a period; no quotes or backslashes (OpenMetrics would
    /// need them escaped).
    pub help: &'static str,
    pub unit: Option<Measure>,
    pub kind: Kind,
    /// Label names in the order they are written (`le` of histogram buckets not included).
    #[cfg_attr(not(test), expect(dead_code, reason = "for the reader; the tests check it"))]
    pub labels: &'static [&'static str],
}

impl Family {
    /// The name prometheus-client registers: without the type's suffix and the unit.
    pub fn stem(&self) -> &'static str {
        let name = match self.kind {
            Kind::Counter => self.name.strip_suffix("_total"),
            Kind::Info => self.name.strip_suffix("_info"),
            Kind::Gauge | Kind::Histogram => Some(self.name),
        };
        let name = name.unwrap_or(self.name);
        match self.unit {
            Some(Measure::Seconds) => name.strip_suffix("_seconds").unwrap_or(name),
            Some(Measure::Bytes) => name.strip_suffix("_bytes").unwrap_or(name),
            None => name,
        }
    }

    pub fn unit(&self) -> Option<Unit> {
        self.unit.map(|m| match m {
            Measure::Seconds => Unit::Seconds,
            Measure::Bytes => Unit::Bytes,
        })
    }

    pub fn metric_type(&self) -> MetricType {
        match self.kind {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Histogram => MetricType::Histogram,
            Kind::Info => MetricType::Info,
        }
    }

    /// Registers `metric` as this family.
    pub fn register(&self, registry: &mut Registry, metric: impl Metric) {
        debug_assert_eq!(metric.metric_type(), self.metric_type(), "{}", self.name);
        // The registry adds the final period itself.
        let help = self.help.strip_suffix('.').unwrap_or(self.help);
        match self.unit() {
            Some(unit) => registry.register_with_unit(self.stem(), help, unit, metric),
            None => registry.register(self.stem(), help, metric),
        }
    }
}

const SET: &[&str] = &["port", "process"];
const SET_SIDE: &[&str] = &["port", "process", "side"];
const SET_REASON: &[&str] = &["port", "process", "reason"];
const ALERT: &[&str] = &["port", "process", "rule", "severity", "side"];
const CONN: &[&str] = &["saddr", "sport", "daddr", "dport", "process"];
const CONN_SIDE: &[&str] = &["saddr", "sport", "daddr", "dport", "process", "side"];

const fn family(
    name: &'static str,
    kind: Kind,
    unit: Option<Measure>,
    labels: &'static [&'static str],
    help: &'static str,
) -> Family {
    Family { name, help, unit, kind, labels }
}

use Kind::{Counter, Gauge, Histogram, Info};
use Measure::{Bytes, Seconds};

// What the traced connections did (`tcp_flow_`), aggregated by (port, process).
pub static ZW_EPISODES: Family = family(
    "tcp_flow_zero_window_episodes_total",
    Counter,
    None,
    SET_SIDE,
    "Zero-window episodes started (zero_window_start events), by the side that advertised the \
     zero window: local = this host's receiver, peer = the remote one.",
);
pub static ZW_UNCOUNTED: Family = family(
    "tcp_flow_zero_window_uncounted_episodes_total",
    Counter,
    None,
    SET,
    "Zero windows set under memory pressure (6.6+ kernels) that TCPToZeroWindowAdv does not \
     count; included in tcp_flow_zero_window_episodes_total.",
);
pub static ZW_DURATION: Family = family(
    "tcp_flow_zero_window_duration_seconds",
    Histogram,
    Some(Seconds),
    SET_SIDE,
    "How long zero-window episodes lasted, in seconds (episodes whose start was seen).",
);
pub static PROBES: Family = family(
    "tcp_flow_zero_window_probes_total",
    Counter,
    None,
    SET,
    "Zero-window (persist) probes this host sent into a peer's zero window.",
);
pub static BACKOFF: Family = family(
    "tcp_flow_zero_window_probe_backoff",
    Histogram,
    None,
    SET,
    "Persist-timer backoff exponent at each zero-window probe (the interval doubles with each \
     step).",
);
pub static DROPS: Family = family(
    "tcp_flow_drops_total",
    Counter,
    None,
    SET_REASON,
    "Segments this host dropped for lack of receive space, by kernel drop reason.",
);
pub static DROPPED_BYTES: Family = family(
    "tcp_flow_dropped_bytes_total",
    Counter,
    Some(Bytes),
    SET_REASON,
    "Bytes in segments this host dropped for lack of receive space, by drop reason.",
);
pub static READ_BYTES: Family = family(
    "tcp_flow_read_bytes_total",
    Counter,
    Some(Bytes),
    SET,
    "Bytes the applications read from traced sockets.",
);
pub static OPENED: Family = family(
    "tcp_flow_connections_opened_total",
    Counter,
    None,
    SET,
    "Connections reported (each end counts: from their open with a filter or \
     --every-connection, else from their first flow-control moment); an accepted one counts \
     once its process is known, or at its close. Every connection: \
     tcp_flow_host_connections_opened_total.",
);
pub static CLOSED: Family = family(
    "tcp_flow_connections_closed_total",
    Counter,
    None,
    SET,
    "Reported connections closed (each end counts).",
);
// What the kernel programs count for every connection on the host, reported or not
// (`tcp_flow_host_`), by service port: the local port of an accepted connection, the remote
// port of one this host opened; `unknown` for a connection opened before the tracer attached,
// `other` for ports past the kernel's per-port table (1,024).
pub static HOST_OPENED: Family = family(
    "tcp_flow_host_connections_opened_total",
    Counter,
    None,
    &["port", "direction"],
    "Connections established on this host since attach, quiet ones included (direction active = \
     this host connected, passive = it accepted).",
);
pub static HOST_CLOSED: Family = family(
    "tcp_flow_host_connections_closed_total",
    Counter,
    None,
    &["port"],
    "Established connections closed on this host since attach, quiet ones included.",
);
pub static HOST_REPORTED: Family = family(
    "tcp_flow_host_connections_reported_total",
    Counter,
    None,
    &["port"],
    "Connections the tracer reported (from their open with a filter or --every-connection, else \
     from their first flow-control moment); the rest stayed quiet.",
);
pub static HOST_ZERO_WINDOWS: Family = family(
    "tcp_flow_host_zero_windows_total",
    Counter,
    None,
    &["port", "side"],
    "Zero windows advertised on this host's connections, by the side that advertised them (local \
     includes the uncounted memory-pressure kind).",
);
pub static HOST_PROBES: Family = family(
    "tcp_flow_host_zero_window_probes_total",
    Counter,
    None,
    &["port"],
    "Zero-window probes this host sent, on any connection.",
);
pub static HOST_DROPS: Family = family(
    "tcp_flow_host_drops_total",
    Counter,
    None,
    &["port"],
    "Segments this host dropped for lack of receive space, on any connection.",
);
pub static HOST_MISSED_RUNS: Family = family(
    "tcp_flow_host_program_runs_missed_total",
    Counter,
    None,
    &["program"],
    "Runs of a tracer kernel program the kernel skipped because it already ran on that CPU \
     (a softirq interrupted it); the host counts may be short by as many.",
);
pub static CONNECTIONS: Family = family(
    "tcp_flow_connections",
    Gauge,
    None,
    &["port", "process", "side", "state"],
    "Live connections by the window state of each side: open, shrinking, zero, probing (zero \
     and probed) or reopened (after a zero window).",
);
pub static ALERTS: Family = family(
    "tcp_flow_alerts_total",
    Counter,
    None,
    ALERT,
    "Alerts fired (an escalation to critical counts again), by rule and severity.",
);
pub static ALERTS_ACTIVE: Family = family(
    "tcp_flow_alerts_active",
    Gauge,
    None,
    ALERT,
    "Alerts currently active, by rule and severity.",
);

// One series per connection, only with --metrics-per-connection.
pub static CONN_STATE: Family = family(
    "tcp_flow_connection_state",
    Gauge,
    None,
    &["saddr", "sport", "daddr", "dport", "process", "side", "state"],
    "Per connection (saddr:sport is this host's end): 1 for the current window state of each \
     side.",
);
pub static CONN_WINDOW: Family = family(
    "tcp_flow_connection_window_bytes",
    Gauge,
    Some(Bytes),
    CONN_SIDE,
    "Per connection: the latest window each side advertised, in bytes after scaling.",
);
pub static CONN_EPISODES: Family = family(
    "tcp_flow_connection_zero_window_episodes_total",
    Counter,
    None,
    CONN_SIDE,
    "Per connection: zero-window episodes by side.",
);
pub static CONN_ZERO_SECONDS: Family = family(
    "tcp_flow_connection_zero_window_seconds_total",
    Counter,
    Some(Seconds),
    CONN_SIDE,
    "Per connection: time at zero window by side, an episode in progress included.",
);
pub static CONN_PROBES: Family = family(
    "tcp_flow_connection_zero_window_probes_total",
    Counter,
    None,
    CONN,
    "Per connection: zero-window probes this host sent.",
);
pub static CONN_DROPS: Family = family(
    "tcp_flow_connection_drops_total",
    Counter,
    None,
    CONN,
    "Per connection: segments dropped for lack of receive space.",
);
pub static CONN_UNREAD: Family = family(
    "tcp_flow_connection_unread_bytes",
    Gauge,
    Some(Bytes),
    CONN,
    "Per connection: bytes received but not yet read by the application, at the latest window \
     this host advertised.",
);
pub static OMITTED: Family = family(
    "tracer_metrics_connections_omitted",
    Gauge,
    None,
    &[],
    "Live connections left out of the per-connection series (over the limit).",
);

// The agent itself (`tracer_`).
pub static EVENTS: Family = family(
    "tracer_events_total",
    Counter,
    None,
    &["kind"],
    "Events decoded from the kernel, by kind.",
);
pub static LOST: Family = family(
    "tracer_events_lost_total",
    Counter,
    None,
    &[],
    "Events the kernel could not queue because the ring buffer was full.",
);
pub static FILL: Family = family(
    "tracer_ring_buffer_fill_ratio",
    Gauge,
    None,
    &[],
    "How full the ring buffer was at the latest drain (0 to 1; loss starts at 1).",
);
pub static FILL_MAX: Family = family(
    "tracer_ring_buffer_fill_ratio_max",
    Gauge,
    None,
    &[],
    "The highest ring-buffer fill ratio at a drain since the previous scrape.",
);
pub static RING_SIZE: Family = family(
    "tracer_ring_buffer_size_bytes",
    Gauge,
    Some(Bytes),
    &[],
    "Size of the ring buffer (0 before the first drain).",
);
pub static DRAINS: Family = family(
    "tracer_ring_drains_total",
    Counter,
    None,
    &[],
    "Times the agent drained the ring buffer.",
);
pub static DRAINED_BYTES: Family = family(
    "tracer_ring_drained_bytes_total",
    Counter,
    Some(Bytes),
    &[],
    "Bytes of event records read from the ring buffer.",
);
pub static DRAIN_EVENTS: Family = family(
    "tracer_ring_last_drain_events",
    Gauge,
    None,
    &[],
    "Events decoded at the latest drain.",
);
pub static TRACKED: Family = family(
    "tracer_connections_tracked",
    Gauge,
    None,
    &[],
    "Live connections in the agent's connection table.",
);
pub static EVICTED: Family = family(
    "tracer_connections_evicted_total",
    Counter,
    None,
    &[],
    "Live connections the agent's table dropped to stay within its cap: their alerts ended and their next events start a new timeline.",
);
pub static UNTRACKED: Family = family(
    "tracer_connections_untracked_total",
    Counter,
    None,
    &[],
    "Connections opened since attach that the kernel's per-socket table had no room for: their open, close, reads and buffer changes are not reported.",
);
pub static LABEL_SETS: Family = family(
    "tracer_metrics_label_sets",
    Gauge,
    None,
    &[],
    "Distinct (port, process) label sets exported, the folded other one included.",
);
pub static LABEL_SETS_LIMIT: Family = family(
    "tracer_metrics_label_sets_limit",
    Gauge,
    None,
    &[],
    "Distinct (port, process) label sets kept before folding into port=other, process=other.",
);
pub static FOLDED: Family = family(
    "tracer_metrics_folded_updates_total",
    Counter,
    None,
    &[],
    "Updates counted under port=other, process=other because the label-set limit was reached.",
);
pub static BUILD_INFO: Family = family(
    "tracer_build_info",
    Info,
    None,
    &["version"],
    "Always 1; the tracer's version as a label.",
);

/// Every family (the tests check the exposition against them).
#[cfg(test)]
pub static ALL: [&Family; 43] = [
    &ZW_EPISODES,
    &ZW_UNCOUNTED,
    &ZW_DURATION,
    &PROBES,
    &BACKOFF,
    &DROPS,
    &DROPPED_BYTES,
    &READ_BYTES,
    &OPENED,
    &CLOSED,
    &HOST_OPENED,
    &HOST_CLOSED,
    &HOST_REPORTED,
    &HOST_ZERO_WINDOWS,
    &HOST_PROBES,
    &HOST_DROPS,
    &HOST_MISSED_RUNS,
    &CONNECTIONS,
    &ALERTS,
    &ALERTS_ACTIVE,
    &CONN_STATE,
    &CONN_WINDOW,
    &CONN_EPISODES,
    &CONN_ZERO_SECONDS,
    &CONN_PROBES,
    &CONN_DROPS,
    &CONN_UNREAD,
    &OMITTED,
    &EVENTS,
    &LOST,
    &FILL,
    &FILL_MAX,
    &RING_SIZE,
    &DRAINS,
    &DRAINED_BYTES,
    &DRAIN_EVENTS,
    &TRACKED,
    &EVICTED,
    &UNTRACKED,
    &LABEL_SETS,
    &LABEL_SETS_LIMIT,
    &FOLDED,
    &BUILD_INFO,
];
