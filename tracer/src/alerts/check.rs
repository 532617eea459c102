//! What a rule is to the engine (`Check`), and what a rule may do (`Cx`): fire, escalate and
//! resolve its own alerts on one connection, and run its own timers there.

use serde_json::{Map, Value};

use super::alert::Severity;
pub(super) use super::book::Finding;
use super::book::{Book, Slot};
use super::config::Rule;
use super::facts::{Facts, Info, Seen, MS};
use super::other_end::OtherEnd;
use crate::events::model::Side;
use crate::timeline::{ConnKey, ConnTable};

/// One alert rule: when its alerts fire and resolve. Rules never see each other; what several
/// need (zero-window episodes, receiver-limited intervals) is in the connection's `Facts`.
pub(super) trait Check {
    /// The rule this is: it names the alerts and routes the timers.
    fn rule(&self) -> Rule;

    /// The kinds of observation `observe` reacts to (`Seen` bits, or-ed): only those reach it,
    /// which spares a call per rule and observation.
    fn sees(&self) -> u16;

    /// React to one observation of a live connection, from its event at `ts_ns`.
    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, ts_ns: u64);

    /// A timer this rule set on the connection (for `side`) fell due at `due_ns`.
    fn on_timer(&mut self, _cx: &mut Cx<'_>, _side: Option<Side>, _due_ns: u64) {}

    /// The connection ended (its alerts are resolved already): drop what was kept for it.
    fn forget(&mut self, _key: ConnKey) {}
}

/// One rule's hands on one connection: its facts (`info`: the connection as of its latest
/// event), and that rule's alerts and timers there.
pub(super) struct Cx<'a> {
    key: ConnKey,
    rule: Rule,
    facts: &'a Facts,
    info: &'a Info,
    book: &'a mut Book,
    /// Read only when an alert fires, to name the other end (`OtherEnd`).
    table: &'a ConnTable,
}

impl<'a> Cx<'a> {
    pub(super) fn new(
        key: ConnKey,
        rule: Rule,
        facts: &'a Facts,
        info: &'a Info,
        book: &'a mut Book,
        table: &'a ConnTable,
    ) -> Self {
        Cx { key, rule, facts, info, book, table }
    }

    pub(super) fn key(&self) -> ConnKey {
        self.key
    }

    pub(super) fn facts(&self) -> &'a Facts {
        self.facts
    }

    pub(super) fn info(&self) -> &'a Info {
        self.info
    }

    /// This rule's alert for `side` is active.
    pub(super) fn is_active(&self, side: Option<Side>) -> bool {
        self.book.is_active(&self.slot(side))
    }

    /// Fire this rule's alert for `side` at `severity`, unless it is active at that severity
    /// or higher already (a warning escalates once). `finding` is only built when it fires,
    /// from the connection's `Info` with its other end looked up (`Info::other_end`); that end
    /// goes into the evidence too.
    pub(super) fn fire(
        &mut self,
        side: Option<Side>,
        severity: Severity,
        ts_ns: u64,
        finding: impl FnOnce(&Info) -> Finding,
    ) {
        let slot = self.slot(side);
        let (info, table) = (self.info, self.table);
        self.book.fire(slot, severity, ts_ns, info, || {
            let joined = Info { other_end: OtherEnd::of(table, &info.tuple), ..info.clone() };
            let mut f = finding(&joined);
            joined.other_end.add_evidence(&mut f.evidence);
            f
        });
    }

    /// Resolve this rule's alert for `side` if active, `why` in its evidence with `extra`
    /// numbers (built only then); its timer goes too.
    pub(super) fn resolve(
        &mut self,
        side: Option<Side>,
        ts_ns: u64,
        why: &str,
        explanation: impl FnOnce() -> String,
        extra: impl FnOnce() -> Map<String, Value>,
    ) {
        let slot = self.slot(side);
        self.book.resolve(slot, ts_ns, why, explanation, extra);
    }

    /// (Re)arm this rule's single timer for `side`.
    pub(super) fn schedule(&mut self, side: Option<Side>, due_ns: u64) {
        let slot = self.slot(side);
        self.book.schedule(slot, due_ns);
    }

    pub(super) fn cancel(&mut self, side: Option<Side>) {
        let slot = self.slot(side);
        self.book.cancel(slot);
    }

    fn slot(&self, side: Option<Side>) -> Slot {
        Slot::new(self.key, self.rule, side)
    }
}

/// `ms` milliseconds after `t_ns`, saturating: thresholds come from users.
pub(super) fn after(t_ns: u64, ms: u64) -> u64 {
    t_ns.saturating_add(ms.saturating_mul(MS))
}

/// Evidence as a JSON object, leaving out what is unknown.
pub(super) struct Evidence(Map<String, Value>);

impl Evidence {
    pub(super) fn new() -> Self {
        Evidence(Map::new())
    }

    pub(super) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.insert(key.to_string(), value.into());
        self
    }

    pub(super) fn maybe<V: Into<Value>>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.with(key, v),
            None => self,
        }
    }

    pub(super) fn done(self) -> Map<String, Value> {
        self.0
    }
}
