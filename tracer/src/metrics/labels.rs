//! Where the `port` and `process` labels come from, and what keeps their number bounded:
//!
//! - `LabelSets` interns (port, process) pairs up to a limit and folds the rest into one
//!   `port="other", process="other"` set;
//! - `Conns` remembers each connection's service port (from its `open`) and process name, for
//!   a bounded number of connections;
//! - `PidNames` remembers process names by pid, learned from events (or /proc, live);
//! - the label sets of the metric families (`Sided`, `AlertLabels`, `ConnLabels`), as
//!   prometheus-client encodes them.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, LabelSetEncoder, LabelValueEncoder,
};

use crate::timeline::FourTuple;

/// The value of both labels of the set that takes everything past the limit.
pub const OTHER: &str = "other";

/// One (port, process) label set; cloning it shares the strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LabelSet {
    pub port: Arc<str>,
    pub process: Arc<str>,
}

impl EncodeLabelSet for LabelSet {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        [("port", &*self.port), ("process", &*self.process)].encode(encoder)
    }
}

/// A (port, process) set and `N` more labels with values from a fixed list (side, state,
/// drop reason, event kind).
pub type Sided<const N: usize> = (LabelSet, [(&'static str, &'static str); N]);

/// The labels of the alert families: `side` only for rules that have one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AlertLabels {
    pub set: LabelSet,
    pub rule: &'static str,
    pub severity: &'static str,
    pub side: Option<&'static str>,
}

impl EncodeLabelSet for AlertLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        self.set.encode(encoder)?;
        [("rule", self.rule), ("severity", self.severity)].encode(encoder)?;
        match self.side {
            Some(side) => [("side", side)].encode(encoder),
            None => Ok(()),
        }
    }
}

/// The labels of a per-connection series: the socket's own view (saddr:sport is this host's
/// end) and its process.
#[derive(Clone, Copy, Debug)]
pub struct ConnLabels<'a> {
    pub tuple: &'a FourTuple,
    pub process: &'a str,
}

impl EncodeLabelSet for ConnLabels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> std::fmt::Result {
        let t = self.tuple;
        [("saddr", Shown(&t.saddr))].encode(encoder)?;
        [("sport", t.sport)].encode(encoder)?;
        [("daddr", Shown(&t.daddr))].encode(encoder)?;
        [("dport", t.dport)].encode(encoder)?;
        [("process", self.process)].encode(encoder)
    }
}

/// A label value written with its `Display` form.
struct Shown<'a, T>(&'a T);

impl<T: std::fmt::Display> EncodeLabelValue for Shown<'_, T> {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        write!(encoder, "{}", self.0)
    }
}

/// Interned (port, process) label sets, at most `limit` of them plus the `other` set.
#[derive(Debug)]
pub struct LabelSets {
    sets: HashMap<(u16, Arc<str>), LabelSet>,
    limit: usize,
    other: Option<LabelSet>,
    /// Updates that went to the `other` set because the limit was reached.
    pub folded: u64,
}

impl LabelSets {
    pub fn new(limit: usize) -> Self {
        LabelSets { sets: HashMap::new(), limit, other: None, folded: 0 }
    }

    /// The set of (port, process), or the `other` set when the limit is reached.
    pub fn get(&mut self, port: u16, process: &Arc<str>) -> LabelSet {
        if let Some(set) = self.sets.get(&(port, process.clone())) {
            return set.clone();
        }
        if self.sets.len() >= self.limit {
            self.folded += 1;
            let other: Arc<str> = Arc::from(OTHER);
            return self
                .other
                .get_or_insert_with(|| LabelSet { port: other.clone(), process: other })
                .clone();
        }
        let set = LabelSet { port: Arc::from(port.to_string()), process: process.clone() };
        self.sets.insert((port, process.clone()), set.clone());
        set
    }

    /// Distinct label sets in use, `other` included.
    pub fn len(&self) -> usize {
        self.sets.len() + usize::from(self.other.is_some())
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

/// What the exporter knows about one connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The service port: the local port if this host accepted the connection, the remote port
    /// if it connected, the smaller of the two if the open was not seen.
    pub port: u16,
    /// Once known, it stays: the connection's samples keep one label set.
    pub process: Option<Arc<str>>,
    /// Opened, and not counted yet: an accepted socket opens before any process has it, so its
    /// open is counted once the process is named (or at close).
    pub pending_open: bool,
    closed: bool,
    /// Tells this entry apart from a later one on the same 4-tuple in the eviction queues.
    serial: u64,
}

/// Connections by 4-tuple, bounded: live ones up to `live_limit` (oldest first out), closed ones
/// up to `closed_limit` (kept a while for the events and alerts that follow a close).
#[derive(Debug)]
pub struct Conns {
    map: HashMap<FourTuple, ConnInfo>,
    order: VecDeque<(FourTuple, u64)>,
    closed: VecDeque<(FourTuple, u64)>,
    next_serial: u64,
    live_limit: usize,
    closed_limit: usize,
}

impl Conns {
    pub fn new(live_limit: usize, closed_limit: usize) -> Self {
        Conns {
            map: HashMap::new(),
            order: VecDeque::new(),
            closed: VecDeque::new(),
            next_serial: 0,
            live_limit: live_limit.max(1),
            closed_limit,
        }
    }

    /// A connection opened (a new one, if the 4-tuple was in use before).
    pub fn open(&mut self, tuple: FourTuple, port: u16) {
        self.insert(tuple, port);
        if let Some(info) = self.map.get_mut(&tuple) {
            info.pending_open = true;
        }
    }

    /// The connection on `tuple`, made up from the 4-tuple if it was never seen opening.
    pub fn get_or_insert(&mut self, tuple: FourTuple) -> &mut ConnInfo {
        if !self.map.contains_key(&tuple) {
            self.insert(tuple, tuple.sport.min(tuple.dport));
        }
        // Just inserted if it was missing, and insert never evicts the newest entry.
        self.map.entry(tuple).or_insert_with(|| ConnInfo {
            port: tuple.sport.min(tuple.dport),
            process: None,
            pending_open: false,
            closed: false,
            serial: u64::MAX,
        })
    }

    pub fn get(&self, tuple: &FourTuple) -> Option<&ConnInfo> {
        self.map.get(tuple)
    }

    pub fn get_mut(&mut self, tuple: &FourTuple) -> Option<&mut ConnInfo> {
        self.map.get_mut(tuple)
    }

    /// The connection closed: it is kept among the closed ones for late events.
    pub fn close(&mut self, tuple: &FourTuple) {
        let Some(info) = self.map.get_mut(tuple) else { return };
        if info.closed {
            return;
        }
        info.closed = true;
        self.closed.push_back((*tuple, info.serial));
        while self.closed.len() > self.closed_limit {
            let Some((t, serial)) = self.closed.pop_front() else { break };
            if self.map.get(&t).is_some_and(|i| i.serial == serial) {
                self.map.remove(&t);
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    fn insert(&mut self, tuple: FourTuple, port: u16) {
        let serial = self.next_serial;
        self.next_serial += 1;
        let info = ConnInfo { port, process: None, pending_open: false, closed: false, serial };
        self.map.insert(tuple, info);
        self.order.push_back((tuple, serial));
        // Past the limit the oldest entries go, closed or not: the map stays bounded even when
        // closes are lost.
        while self.map.len() > self.live_limit + self.closed_limit {
            let Some((t, s)) = self.order.pop_front() else { break };
            if self.map.get(&t).is_some_and(|i| i.serial == s) {
                self.map.remove(&t);
            }
        }
        // Entries of connections already gone stay in `order` until they reach its front;
        // compact it when they are the majority.
        if self.order.len() > 2 * (self.live_limit + self.closed_limit) {
            let map = &self.map;
            self.order.retain(|(t, s)| map.get(t).is_some_and(|i| i.serial == *s));
        }
    }
}

/// How long a process name learned for a pid is trusted before /proc is asked again (pids are
/// reused).
const PID_NAME_TTL_NS: u64 = 60_000_000_000;

/// Process names by pid: from events that carry both, or from /proc (live only).
#[derive(Debug)]
pub struct PidNames {
    /// None: /proc had no name for it (the process is gone).
    map: HashMap<u32, (Option<Arc<str>>, u64)>,
    limit: usize,
}

impl PidNames {
    pub fn new(limit: usize) -> Self {
        PidNames { map: HashMap::new(), limit }
    }

    pub fn learn(&mut self, pid: u32, name: Option<Arc<str>>, ts_ns: u64) {
        if self.map.len() >= self.limit && !self.map.contains_key(&pid) {
            // Crude but bounded: the names are cheap to learn again.
            self.map.clear();
        }
        self.map.insert(pid, (name, ts_ns));
    }

    pub fn get(&self, pid: u32) -> Option<Arc<str>> {
        self.map.get(&pid).and_then(|(name, _)| name.clone())
    }

    /// True when the name of `pid` is unknown, or was learned too long before `ts_ns`.
    pub fn stale(&self, pid: u32, ts_ns: u64) -> bool {
        self.map.get(&pid).is_none_or(|(_, at)| ts_ns.saturating_sub(*at) > PID_NAME_TTL_NS)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;

    fn tuple(sport: u16, dport: u16) -> FourTuple {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        FourTuple { saddr: ip, sport, daddr: ip, dport }
    }

    #[test]
    fn label_sets_fold_past_the_limit() {
        let mut sets = LabelSets::new(2);
        let a: Arc<str> = Arc::from("a");
        let first = sets.get(1, &a);
        assert_eq!((&*first.port, &*first.process), ("1", "a"));
        assert_eq!(&*sets.get(2, &a).port, "2");
        assert!(Arc::ptr_eq(&sets.get(1, &a).port, &first.port), "interned");
        let other = sets.get(3, &a);
        assert_eq!((&*other.port, &*other.process), (OTHER, OTHER));
        assert_eq!(sets.get(4, &a), other);
        assert_eq!(sets.len(), 3);
        assert_eq!(sets.folded, 2);
    }

    #[test]
    fn conns_stay_bounded_and_keep_the_newest() {
        let mut conns = Conns::new(10, 5);
        for p in 0..1000 {
            conns.open(tuple(1000 + p, 80), 80);
            if p % 2 == 0 {
                conns.close(&tuple(1000 + p, 80));
            }
            assert!(conns.len() <= 15);
            assert!(conns.order.len() <= 31);
        }
        assert_eq!(conns.get_mut(&tuple(1999, 80)).map(|i| i.port), Some(80));
        // Never seen opening: the smaller port.
        assert_eq!(conns.get_or_insert(tuple(50000, 8080)).port, 8080);
    }

    #[test]
    fn pid_names_expire() {
        let mut pids = PidNames::new(2);
        assert!(pids.stale(1, 0));
        pids.learn(1, Some(Arc::from("a")), 0);
        assert!(!pids.stale(1, 1));
        assert!(pids.stale(1, PID_NAME_TTL_NS + 1));
        pids.learn(2, None, 0);
        pids.learn(3, None, 0);
        assert!(pids.map.len() <= 2);
    }
}
