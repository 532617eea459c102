//! The alert engine: feeds events and time to the rules, keeps one active alert per
//! (connection, rule, side) with at most one escalation, runs the rules' timers, and hands back
//! alerts in time order.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::config::Thresholds;
use super::rules::{self, Info, Watch};
use super::{Alert, AlertKind, Rule, Severity};
use crate::events::model::{Body, Event, Side};
use crate::timeline::fmt::ns_to_ms;
use crate::timeline::{ConnKey, ConnSummary, ConnTable, EndReason};

/// Which side an alert slot is about; `Conn` for rules about the whole connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum SideTag {
    Conn,
    Local,
    Peer,
}

impl SideTag {
    pub(super) fn of(side: Option<Side>) -> Self {
        match side {
            None => SideTag::Conn,
            Some(Side::Local) => SideTag::Local,
            Some(Side::Peer) => SideTag::Peer,
        }
    }

    pub(super) fn side(self) -> Option<Side> {
        match self {
            SideTag::Conn => None,
            SideTag::Local => Some(Side::Local),
            SideTag::Peer => Some(Side::Peer),
        }
    }
}

/// Where at most one alert is active at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Slot {
    pub key: ConnKey,
    pub rule: Rule,
    pub side: SideTag,
}

impl Slot {
    pub(super) fn new(key: ConnKey, rule: Rule, side: Option<Side>) -> Self {
        Slot { key, rule, side: SideTag::of(side) }
    }

    /// Every slot of one connection lies between these two.
    fn first_of(key: ConnKey) -> Self {
        Slot { key, rule: Rule::ALL[0], side: SideTag::Conn }
    }

    fn last_of(key: ConnKey) -> Self {
        Slot { key, rule: Rule::ALL[Rule::ALL.len() - 1], side: SideTag::Peer }
    }
}

/// What a rule reports when it fires.
pub(super) struct Finding {
    pub evidence: Map<String, Value>,
    pub explanation: String,
    pub fix: String,
}

struct Active {
    since_ns: u64,
    alert: Alert,
}

/// Active alerts, pending timers, and the alerts produced by the current call.
#[derive(Default)]
pub(super) struct Book {
    active: BTreeMap<Slot, Active>,
    timers: BTreeSet<(u64, Slot)>,
    deadlines: BTreeMap<Slot, u64>,
    fired: BTreeMap<ConnKey, u32>,
    out: Vec<Alert>,
}

impl Book {
    pub(super) fn is_active(&self, slot: &Slot) -> bool {
        self.active.contains_key(slot)
    }

    /// Fire `slot` at `severity`, unless it is already active at that severity or higher (a
    /// warning may escalate to critical once). `finding` is only built when it fires.
    pub(super) fn fire(
        &mut self,
        slot: Slot,
        severity: Severity,
        ts_ns: u64,
        info: &Info,
        finding: impl FnOnce() -> Finding,
    ) {
        if self.active.get(&slot).is_some_and(|a| a.alert.severity >= severity) {
            return;
        }
        let f = finding();
        let alert = Alert {
            ts_ns,
            kind: AlertKind::Alert,
            rule: slot.rule,
            severity,
            side: slot.side.side(),
            saddr: info.tuple.saddr,
            sport: info.tuple.sport,
            daddr: info.tuple.daddr,
            dport: info.tuple.dport,
            pid: info.pid,
            comm: info.comm.clone(),
            evidence: f.evidence,
            explanation: f.explanation,
            fix: f.fix,
            duration_ms: None,
        };
        match self.active.get_mut(&slot) {
            Some(active) => active.alert = alert.clone(),
            None => {
                *self.fired.entry(slot.key).or_default() += 1;
                self.active.insert(slot, Active { since_ns: ts_ns, alert: alert.clone() });
            }
        }
        self.out.push(alert);
    }

    /// Resolve `slot` if it is active: the last alert's details, `why` in the evidence (with
    /// `extra` numbers), a new explanation, and how long it was active. Its timer goes too.
    pub(super) fn resolve(
        &mut self,
        slot: Slot,
        ts_ns: u64,
        why: &str,
        explanation: impl FnOnce() -> String,
        extra: Map<String, Value>,
    ) {
        self.cancel(slot);
        let Some(active) = self.active.remove(&slot) else { return };
        let mut alert = active.alert;
        let ts_ns = ts_ns.max(active.since_ns);
        alert.ts_ns = ts_ns;
        alert.kind = AlertKind::AlertResolved;
        alert.evidence.extend(extra);
        alert.evidence.insert("resolved_by".into(), why.into());
        alert.explanation = explanation();
        alert.duration_ms = Some(ns_to_ms(ts_ns - active.since_ns));
        self.out.push(alert);
    }

    /// (Re)arm `slot`'s single timer.
    pub(super) fn schedule(&mut self, slot: Slot, due_ns: u64) {
        self.cancel(slot);
        self.deadlines.insert(slot, due_ns);
        self.timers.insert((due_ns, slot));
    }

    pub(super) fn cancel(&mut self, slot: Slot) {
        if let Some(due) = self.deadlines.remove(&slot) {
            self.timers.remove(&(due, slot));
        }
    }

    /// The earliest timer due at or before `now_ns`, taken off the queue.
    fn next_due(&mut self, now_ns: u64) -> Option<(u64, Slot)> {
        let &(due, slot) = self.timers.first().filter(|(due, _)| *due <= now_ns)?;
        self.timers.remove(&(due, slot));
        self.deadlines.remove(&slot);
        Some((due, slot))
    }

    /// The connection ended: resolve everything active on it and drop its timers.
    fn end_conn(&mut self, key: ConnKey, ts_ns: u64, why: &str, info: &Info) {
        let range = Slot::first_of(key)..=Slot::last_of(key);
        let slots: Vec<Slot> = self.deadlines.range(range.clone()).map(|(s, _)| *s).collect();
        for slot in slots {
            self.cancel(slot);
        }
        let slots: Vec<Slot> = self.active.range(range).map(|(s, _)| *s).collect();
        for slot in slots {
            self.resolve(slot, ts_ns, why, || super::text::ended(info, slot.rule, why), Map::new());
        }
    }
}

/// Turns connection-table updates into alerts. Feed it every event after `ConnTable::apply`,
/// and call `advance` with non-decreasing times: before each event with the event's time, and
/// periodically with the wall clock when live.
pub struct Engine {
    th: Thresholds,
    book: Book,
    /// Rule state per connection with anything to watch.
    watches: BTreeMap<ConnKey, Watch>,
    /// How far the timers have run.
    clock_ns: u64,
    /// Position in the table's end log.
    ended_cursor: u64,
}

impl Engine {
    pub fn new(th: Thresholds) -> Self {
        Engine { th, book: Book::default(), watches: BTreeMap::new(), clock_ns: 0, ended_cursor: 0 }
    }

    /// Alerts for event `e`, which `table.apply` just filed under `key`. Runs the timers up to
    /// the event's time first, so skipping the `advance` before it changes nothing.
    pub fn on_event(&mut self, table: &ConnTable, key: &ConnKey, e: &Event) -> Vec<Alert> {
        self.run_timers(e.ts_ns);
        self.collect_ended(table);
        let ts = e.ts_ns;
        if matches!(e.body, Body::Close { .. }) {
            if let Some(w) = self.watches.remove(key) {
                self.book.end_conn(*key, ts, "close", &w.info);
            }
            return self.take();
        }
        // A late event of a closed connection changes nothing the rules watch.
        let Some(conn) = table.get(key).filter(|c| !c.is_closed()) else { return self.take() };
        let w = self.watches.entry(*key).or_insert_with(|| Watch::new(conn));
        rules::on_event(&self.th, &mut self.book, *key, w, conn, e);
        self.take()
    }

    /// Alerts whose time has come by `now_ns`: thresholds crossed (stamped with the moment of
    /// crossing, not `now_ns`) and quiet periods elapsed. Live callers should pass the wall
    /// clock minus the ring buffer's drain delay, so that a window reopening still in flight
    /// is not overtaken by a stall threshold.
    pub fn advance(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Alert> {
        self.run_timers(now_ns);
        self.collect_ended(table);
        self.take()
    }

    /// At the end of a run (a replay or a stopped watch): what `advance(now_ns)` fires. Active
    /// alerts stay active; `active()` lists them for the summary.
    pub fn finish(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Alert> {
        self.advance(table, now_ns)
    }

    /// The alerts active now, by connection (latest alert of each).
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.book.active.values().map(|a| &a.alert)
    }

    /// How many alerts fired for a connection the table still keeps (escalations not counted).
    pub fn fired_for(&self, key: &ConnKey) -> u32 {
        self.book.fired.get(key).copied().unwrap_or(0)
    }

    /// Fill in `alerts` of each summary.
    pub fn count_into(&self, summaries: &mut [ConnSummary]) {
        for s in summaries {
            s.set_alerts(self.fired_for(&s.key));
        }
    }

    /// Sizes of the per-connection state, for memory-bound tests: watched connections,
    /// pending timers, connections with fired-alert counts.
    #[cfg(test)]
    pub(super) fn state_sizes(&self) -> (usize, usize, usize) {
        (self.watches.len(), self.book.timers.len(), self.book.fired.len())
    }

    fn run_timers(&mut self, now_ns: u64) {
        self.clock_ns = self.clock_ns.max(now_ns);
        while let Some((due, slot)) = self.book.next_due(self.clock_ns) {
            if let Some(w) = self.watches.get_mut(&slot.key) {
                rules::on_timer(&self.th, &mut self.book, slot, due, w);
            }
        }
    }

    /// Connections that ended without a close event, or left the table.
    fn collect_ended(&mut self, table: &ConnTable) {
        let (complete, ended) = table.ended_since(self.ended_cursor);
        for e in ended {
            let why = match e.reason {
                EndReason::Superseded => "superseded",
                EndReason::Evicted => "evicted",
                // Closed earlier: whatever is still watched ended with that close.
                EndReason::Forgotten => "close",
            };
            if let Some(w) = self.watches.remove(&e.key) {
                self.book.end_conn(e.key, e.ts_ns, why, &w.info);
            }
            if e.reason != EndReason::Superseded {
                self.book.fired.remove(&e.key);
            }
        }
        if !complete {
            // The log overflowed past us: check every watched connection directly.
            let gone: Vec<ConnKey> = self
                .watches
                .keys()
                .filter(|k| table.get(k).is_none_or(|c| c.is_closed()))
                .copied()
                .collect();
            for key in gone {
                if let Some(w) = self.watches.remove(&key) {
                    self.book.end_conn(key, self.clock_ns, "evicted", &w.info);
                }
            }
            self.book.fired.retain(|k, _| table.get(k).is_some());
        }
        self.ended_cursor = table.ended_seq();
    }

    /// This call's alerts, in time order (stable: same-time alerts keep their order).
    fn take(&mut self) -> Vec<Alert> {
        let mut out = std::mem::take(&mut self.book.out);
        out.sort_by_key(|a| a.ts_ns);
        out
    }
}
