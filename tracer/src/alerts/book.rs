//! The alerts' ledger: at most one active alert per (connection, rule, side), escalating at
//! most once, with one timer per slot, the alerts each call produced, and how many fired per
//! connection. It knows nothing of any rule.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::alert::{Alert, AlertKind, Severity};
use super::config::Rule;
use super::facts::Info;
use crate::events::model::Side;
use crate::timeline::fmt::ns_to_ms;
use crate::timeline::ConnKey;

/// Which alert: a connection (its key in the connection table), a rule, and whose window
/// (`None` for rules about the whole connection). At most one alert per id is active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AlertId {
    pub key: ConnKey,
    pub rule: Rule,
    pub side: Option<Side>,
}

/// One alert active now, as the engine keeps it.
#[derive(Clone, Copy, Debug)]
pub struct ActiveAlert<'a> {
    pub id: AlertId,
    /// Its severity now (a warning may have escalated to critical).
    pub severity: Severity,
    /// Its latest alert (the escalation, if any): connection, process, evidence, text.
    pub alert: &'a Alert,
}

/// An alert as it leaves the engine, with the id it fired, escalated or resolved under:
/// `alert.kind` is `AlertResolved` exactly when the alert `id` stopped being active.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub id: AlertId,
    pub alert: Alert,
}

/// Which side an alert slot is about; `Conn` for rules about the whole connection. Ordered, so
/// that a connection's slots are one range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SideTag {
    Conn,
    Local,
    Peer,
}

impl SideTag {
    fn of(side: Option<Side>) -> Self {
        match side {
            None => SideTag::Conn,
            Some(Side::Local) => SideTag::Local,
            Some(Side::Peer) => SideTag::Peer,
        }
    }

    fn side(self) -> Option<Side> {
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
    side: SideTag,
}

impl Slot {
    pub(super) fn new(key: ConnKey, rule: Rule, side: Option<Side>) -> Self {
        Slot { key, rule, side: SideTag::of(side) }
    }

    pub(super) fn side(&self) -> Option<Side> {
        self.side.side()
    }

    fn id(&self) -> AlertId {
        AlertId { key: self.key, rule: self.rule, side: self.side() }
    }

    /// Its bit in a table slot's `held` mask: one per rule, whatever the side.
    fn bit(&self) -> u32 {
        1 << self.rule as u32
    }

    /// The same rule's slots on every side of the same connection.
    fn sides(&self) -> [Slot; 3] {
        [SideTag::Conn, SideTag::Local, SideTag::Peer].map(|side| Slot { side, ..*self })
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
    out: Vec<Change>,
    /// The rules with an alert slot in `active` or `deadlines`, per table slot
    /// (`ConnKey::slot`), one bit each (`Slot::bit`): where a bit is clear there is nothing to
    /// find, so the resolve and cancel that rules call at most observations skip the searches.
    /// The engine ends a connection's alerts and timers before its table slot is watched for
    /// another, so the bits are one connection's.
    held: Vec<u32>,
    /// No timer falls due before this: `schedule` keeps it a lower bound of the first in
    /// `timers`, and `next_due` sets it when it looks, so that most calls (two an event) need no
    /// search of `timers`.
    earliest_due: u64,
}

// Every rule has a bit in a u32.
const _: () = assert!(Rule::ALL.len() <= 32);

impl Book {
    pub(super) fn is_active(&self, slot: &Slot) -> bool {
        self.may_hold(slot) && self.active.contains_key(slot)
    }

    /// Whether an alert is active or a timer set for the connection `key`.
    pub(super) fn holds_any(&self, key: &ConnKey) -> bool {
        self.held.get(key.slot()).is_some_and(|&bits| bits != 0)
    }

    /// Whether `active` or `deadlines` may hold `slot`: false means surely not.
    fn may_hold(&self, slot: &Slot) -> bool {
        self.held.get(slot.key.slot()).is_some_and(|&bits| bits & slot.bit() != 0)
    }

    /// `slot` went into `active` or `deadlines`.
    fn hold(&mut self, slot: &Slot) {
        let at = slot.key.slot();
        if self.held.len() <= at {
            self.held.resize(at + 1, 0);
        }
        self.held[at] |= slot.bit();
    }

    /// `slot` left `active` or `deadlines`: its rule's bit goes once no side of the rule is
    /// in either.
    fn release(&mut self, slot: &Slot) {
        let held = |s: &Slot| self.active.contains_key(s) || self.deadlines.contains_key(s);
        if slot.sides().iter().any(held) {
            return;
        }
        if let Some(bits) = self.held.get_mut(slot.key.slot()) {
            *bits &= !slot.bit();
        }
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
        if self.may_hold(&slot)
            && self.active.get(&slot).is_some_and(|a| a.alert.severity >= severity)
        {
            return;
        }
        let f = finding();
        let alert = Alert {
            ts_ns,
            kind: AlertKind::Alert,
            rule: slot.rule,
            severity,
            side: slot.side(),
            saddr: info.tuple.saddr,
            sport: info.tuple.sport,
            daddr: info.tuple.daddr,
            dport: info.tuple.dport,
            pid: info.pid,
            comm: info.comm.as_deref().map(str::to_owned),
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
                self.hold(&slot);
            }
        }
        self.out.push(Change { id: slot.id(), alert });
    }

    /// Resolve `slot` if it is active: the last alert's details, `why` in the evidence (with
    /// `extra` numbers), a new explanation, and how long it was active. Its timer goes too.
    pub(super) fn resolve(
        &mut self,
        slot: Slot,
        ts_ns: u64,
        why: &str,
        explanation: impl FnOnce() -> String,
        extra: impl FnOnce() -> Map<String, Value>,
    ) {
        self.cancel(slot);
        if !self.may_hold(&slot) {
            return;
        }
        let Some(active) = self.active.remove(&slot) else { return };
        self.release(&slot);
        let mut alert = active.alert;
        let ts_ns = ts_ns.max(active.since_ns);
        alert.ts_ns = ts_ns;
        alert.kind = AlertKind::AlertResolved;
        alert.evidence.extend(extra());
        alert.evidence.insert("resolved_by".into(), why.into());
        alert.explanation = explanation();
        alert.duration_ms = Some(ns_to_ms(ts_ns - active.since_ns));
        self.out.push(Change { id: slot.id(), alert });
    }

    /// (Re)arm `slot`'s single timer.
    pub(super) fn schedule(&mut self, slot: Slot, due_ns: u64) {
        self.cancel(slot);
        self.deadlines.insert(slot, due_ns);
        self.timers.insert((due_ns, slot));
        self.earliest_due = self.earliest_due.min(due_ns);
        self.hold(&slot);
    }

    pub(super) fn cancel(&mut self, slot: Slot) {
        if !self.may_hold(&slot) {
            return;
        }
        if let Some(due) = self.deadlines.remove(&slot) {
            self.timers.remove(&(due, slot));
            self.release(&slot);
        }
    }

    /// The earliest timer due at or before `now_ns`, taken off the queue.
    pub(super) fn next_due(&mut self, now_ns: u64) -> Option<(u64, Slot)> {
        if now_ns < self.earliest_due {
            return None;
        }
        let Some(&(due, slot)) = self.timers.first() else {
            self.earliest_due = u64::MAX;
            return None;
        };
        if due > now_ns {
            self.earliest_due = due;
            return None;
        }
        // The bound stays at or below `due`: the next call looks again.
        self.timers.remove(&(due, slot));
        if self.deadlines.remove(&slot).is_some() {
            self.release(&slot);
        }
        Some((due, slot))
    }

    /// The connection `key` ended: resolve everything active on it, each with the explanation
    /// `explain` gives for its rule, and drop its timers.
    pub(super) fn end_conn(
        &mut self,
        key: ConnKey,
        ts_ns: u64,
        why: &str,
        explain: impl Fn(Rule) -> String,
    ) {
        let range = Slot::first_of(key)..=Slot::last_of(key);
        let slots: Vec<Slot> = self.deadlines.range(range.clone()).map(|(s, _)| *s).collect();
        for slot in slots {
            self.cancel(slot);
        }
        let slots: Vec<Slot> = self.active.range(range).map(|(s, _)| *s).collect();
        for slot in slots {
            self.resolve(slot, ts_ns, why, || explain(slot.rule), Map::new);
        }
    }

    /// The alerts active now, by connection, rule and side.
    pub(super) fn active(&self) -> impl Iterator<Item = ActiveAlert<'_>> {
        self.active.iter().map(|(slot, a)| ActiveAlert {
            id: slot.id(),
            severity: a.alert.severity,
            alert: &a.alert,
        })
    }

    #[cfg(test)]
    pub(super) fn active_count(&self) -> usize {
        self.active.len()
    }

    /// How many alerts fired for `key` (escalations not counted).
    pub(super) fn fired_for(&self, key: &ConnKey) -> u32 {
        self.fired.get(key).copied().unwrap_or(0)
    }

    /// Forget `key`'s fired count.
    pub(super) fn forget_fired(&mut self, key: &ConnKey) {
        self.fired.remove(key);
    }

    /// Keep fired counts only for the connections `keep` accepts.
    pub(super) fn retain_fired(&mut self, keep: impl Fn(&ConnKey) -> bool) {
        self.fired.retain(|k, _| keep(k));
    }

    /// This call's alerts, in time order (stable: same-time alerts keep their order).
    pub(super) fn take(&mut self) -> Vec<Change> {
        let mut out = std::mem::take(&mut self.out);
        out.sort_by_key(|c| c.alert.ts_ns);
        out
    }

    /// Sizes for memory-bound tests: pending timers, connections with fired counts.
    #[cfg(test)]
    pub(super) fn sizes(&self) -> (usize, usize) {
        (self.timers.len(), self.fired.len())
    }
}
