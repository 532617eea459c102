//! What one chart plots, built from one connection's events: step series of bytes, zero-window
//! spans per side, probes, drops and (filed by `collect`) alerts.

use crate::{
    alerts::Alert,
    events::{
        model::{LocalState, SenderState, Side},
        Body, Event,
    },
    timeline::FourTuple,
};

/// The lines of a chart, in drawing order (later ones on top).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// `rcvbuf` from the socket's receive-side state and autotuning.
    Rcvbuf,
    /// Bytes received and not yet read by the application.
    Unread,
    /// The window the peer advertised.
    PeerWindow,
    /// This host's bytes in flight (sent, not yet acknowledged).
    InFlight,
    /// The window this host advertised.
    LocalWindow,
}

impl Line {
    /// Every line, in drawing order.
    pub const ALL: [Line; 5] =
        [Line::Rcvbuf, Line::Unread, Line::PeerWindow, Line::InFlight, Line::LocalWindow];

    /// The legend text.
    pub fn label(self) -> &'static str {
        match self {
            Line::LocalWindow => "window advertised by this host",
            Line::PeerWindow => "window advertised by the peer",
            Line::InFlight => "bytes in flight (sent, not acked)",
            Line::Rcvbuf => "receive buffer (rcvbuf)",
            Line::Unread => "unread bytes (received, not read)",
        }
    }

    /// The legend's order: windows first, then what fills them.
    pub const LEGEND: [Line; 5] =
        [Line::LocalWindow, Line::PeerWindow, Line::InFlight, Line::Rcvbuf, Line::Unread];

    fn index(self) -> usize {
        self as usize
    }
}

/// A step series: each (ts_ns, bytes) sample holds until the next one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Series {
    /// Sorted by time once the connection is settled.
    pub points: Vec<(u64, u64)>,
}

impl Series {
    /// Orders by time (events of different CPUs may interleave slightly) and drops samples
    /// that repeat the value before them: they do not change a step line.
    fn settle(&mut self) {
        self.points.sort_by_key(|&(ts, _)| ts);
        self.points.dedup_by(|later, earlier| later.1 == earlier.1);
    }
}

/// A zero-window episode of one side.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// Whose window was zero.
    pub side: Side,
    /// When it went to zero, ns since the epoch.
    pub start_ns: u64,
    /// None while still open at the end of the recording (or at close).
    pub end_ns: Option<u64>,
    /// False: set under memory pressure and not counted by the kernel; None when unknown.
    pub counted: Option<bool>,
    /// False when the start was not recorded (it began before the tracer attached).
    pub start_seen: bool,
}

/// A zero-window probe this host sent.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeMark {
    pub ts_ns: u64,
    /// Unanswered probes and the backoff exponent, as the kernel counts them.
    pub probes_out: u8,
    pub backoff: u8,
    /// When the kernel probes again if this one is not answered.
    pub next_probe_ms: Option<f64>,
}

/// A segment dropped for lack of receive space.
#[derive(Clone, Debug, PartialEq)]
pub struct DropMark {
    pub ts_ns: u64,
    /// The kernel's drop reason (PROTO_MEM, TCP_ZEROWINDOW...).
    pub reason: String,
    /// Size of the dropped segment.
    pub bytes: u32,
}

/// Everything recorded about one connection that a chart shows.
#[derive(Clone, Debug)]
pub struct ConnData {
    /// This host's end first.
    pub tuple: FourTuple,
    /// Its first and latest events: the time axis starts at the first.
    pub first_ns: u64,
    pub last_ns: u64,
    /// Its close, or when a new connection took over its socket.
    pub close_ns: Option<u64>,
    /// The latest process seen on it.
    pub pid: Option<u32>,
    pub comm: Option<String>,
    lines: [Series; 5],
    /// Zero-window episodes of both sides, in order of their start.
    pub spans: Vec<Span>,
    pub probes: Vec<ProbeMark>,
    pub drops: Vec<DropMark>,
    /// Alerts and resolutions for it, in the order the engine raised them.
    pub alerts: Vec<Alert>,
}

impl ConnData {
    /// A connection first seen in `e` (not applied yet).
    pub fn new(e: &Event) -> Self {
        ConnData {
            tuple: FourTuple::of(e),
            first_ns: e.ts_ns,
            last_ns: e.ts_ns,
            close_ns: None,
            pid: None,
            comm: None,
            lines: Default::default(),
            spans: Vec::new(),
            probes: Vec::new(),
            drops: Vec::new(),
            alerts: Vec::new(),
        }
    }

    /// The samples of one line.
    pub fn series(&self, line: Line) -> &Series {
        &self.lines[line.index()]
    }

    /// True when a chart would show something.
    pub fn has_content(&self) -> bool {
        self.lines.iter().any(|s| !s.points.is_empty())
            || !self.spans.is_empty()
            || !self.probes.is_empty()
            || !self.drops.is_empty()
            || !self.alerts.is_empty()
    }

    fn sample(&mut self, line: Line, ts: u64, bytes: impl Into<u64>) {
        self.lines[line.index()].points.push((ts, bytes.into()));
    }

    fn local_state(&mut self, ts: u64, s: &LocalState) {
        self.sample(Line::Rcvbuf, ts, s.rcvbuf);
        self.sample(Line::Unread, ts, s.unread);
    }

    fn sender_state(&mut self, ts: u64, s: &SenderState) {
        self.sample(Line::InFlight, ts, s.in_flight);
    }

    fn window(&mut self, side: Side, ts: u64, bytes: u32) {
        let line = match side {
            Side::Local => Line::LocalWindow,
            Side::Peer => Line::PeerWindow,
        };
        self.sample(line, ts, bytes);
    }

    /// Takes one event of this connection.
    pub fn apply(&mut self, e: &Event) {
        let ts = e.ts_ns;
        self.last_ns = self.last_ns.max(ts);
        if e.pid.is_some() {
            self.pid = e.pid;
        }
        match &e.body {
            Body::Window { side, window, local, sender, .. } => {
                self.window(*side, ts, *window);
                if let Some(s) = local {
                    self.local_state(ts, s);
                }
                if let Some(s) = sender {
                    self.sender_state(ts, s);
                }
            }
            Body::ZeroWindowStart { side, counted, local, sender } => {
                self.window(*side, ts, 0);
                if let Some(s) = local {
                    self.local_state(ts, s);
                }
                if let Some(s) = sender {
                    self.sender_state(ts, s);
                }
                if self.open_span(*side).is_none() {
                    self.spans.push(Span {
                        side: *side,
                        start_ns: ts,
                        end_ns: None,
                        counted: Some(*counted),
                        start_seen: true,
                    });
                }
            }
            Body::ZeroWindowEnd { side, window, duration_ns } => {
                self.window(*side, ts, *window);
                if let Some(span) = self.open_span(*side) {
                    span.end_ns = Some(ts);
                } else {
                    // The start is not in the recording: it began before the tracer attached
                    // (no duration) or its event was lost.
                    let start = duration_ns.map_or(self.first_ns, |d| ts.saturating_sub(d));
                    self.spans.push(Span {
                        side: *side,
                        start_ns: start.max(self.first_ns),
                        end_ns: Some(ts),
                        counted: None,
                        start_seen: false,
                    });
                }
            }
            Body::Inflight { window, sender } => {
                self.window(Side::Peer, ts, *window);
                self.sender_state(ts, sender);
            }
            Body::Probe { probes_out, backoff, next_probe_ms, .. } => {
                self.probes.push(ProbeMark {
                    ts_ns: ts,
                    probes_out: *probes_out,
                    backoff: *backoff,
                    next_probe_ms: *next_probe_ms,
                });
            }
            Body::RcvSpace { rcvbuf, comm, .. } => {
                self.sample(Line::Rcvbuf, ts, *rcvbuf);
                self.set_comm(Some(comm.as_str()));
            }
            Body::Read { comm, .. } | Body::Owner { comm, .. } => self.set_comm(Some(comm)),
            Body::Drop { reason, bytes } => {
                self.drops.push(DropMark { ts_ns: ts, reason: reason.to_string(), bytes: *bytes });
            }
            Body::Open { rcvbuf, comm, .. } => {
                self.sample(Line::Rcvbuf, ts, *rcvbuf);
                self.set_comm(comm.as_deref());
            }
            Body::Close { comm, .. } => {
                self.close_ns = Some(ts);
                self.set_comm(comm.as_deref());
            }
        }
    }

    /// Another connection took over this one's socket at `ts`: its close was lost.
    pub fn superseded(&mut self, ts: u64) {
        self.close_ns.get_or_insert(ts);
    }

    fn set_comm(&mut self, comm: Option<&str>) {
        if let Some(c) = comm.filter(|c| !c.is_empty()) {
            self.comm = Some(c.to_string());
        }
    }

    fn open_span(&mut self, side: Side) -> Option<&mut Span> {
        self.spans.iter_mut().rev().find(|s| s.side == side && s.end_ns.is_none())
    }

    /// Call once all events are in: series in time order without repeated values.
    pub fn settle(&mut self) {
        for s in &mut self.lines {
            s.settle();
        }
    }

    /// Where the chart ends: the close (or the latest thing filed for it after the close), else
    /// the end of the recording.
    pub fn end_ns(&self, recording_end_ns: u64) -> u64 {
        let end = match self.close_ns {
            Some(close) => {
                let last_alert = self.alerts.iter().map(|a| a.ts_ns).max().unwrap_or(0);
                close.max(self.last_ns).max(last_alert)
            }
            None => recording_end_ns.max(self.last_ns),
        };
        end.max(self.first_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::testutil::{
        at, drop, local_window, open, probe, zero_end, zero_start_local,
    };

    #[test]
    fn events_become_step_samples_spans_and_marks() {
        let mut d = ConnData::new(&at(0, 1, open(true, 1460)));
        for e in [
            at(0, 1, open(true, 1460)),
            at(1, 1, local_window(4096, 0, 8192)),
            at(2, 1, local_window(4096, 0, 8192)),
            at(3, 1, zero_start_local(8192, 8192)),
            at(4, 1, probe(1, 1, 200.0)),
            at(5, 1, drop(1000)),
            at(6, 1, zero_end(Side::Local, 2048, Some(3_000_000))),
        ] {
            d.apply(&e);
        }
        d.settle();
        let ms = 1_000_000;
        assert_eq!(
            d.series(Line::LocalWindow).points,
            vec![(ms, 4096), (3 * ms, 0), (6 * ms, 2048)],
            "repeated values are dropped"
        );
        assert_eq!(d.series(Line::Unread).points, vec![(ms, 0), (3 * ms, 8192)]);
        assert_eq!(d.spans.len(), 1);
        assert_eq!((d.spans[0].start_ns, d.spans[0].end_ns), (3 * ms, Some(6 * ms)));
        assert_eq!(d.probes.len(), 1);
        assert_eq!(d.drops[0].bytes, 1000);
        assert!(d.has_content());
    }

    #[test]
    fn an_end_without_its_start_still_makes_a_span() {
        let mut d = ConnData::new(&at(10, 1, local_window(4096, 0, 8192)));
        d.apply(&at(10, 1, local_window(4096, 0, 8192)));
        d.apply(&at(20, 1, zero_end(Side::Peer, 2048, None)));
        assert_eq!(d.spans[0].start_ns, 10_000_000, "from the first sighting");
        assert!(!d.spans[0].start_seen);
    }
}
