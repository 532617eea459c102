//! The alert engine: turns each event into observations of its connection and hands them to
//! every rule, runs the rules' timers, resolves a connection's alerts when it ends, and hands
//! back alerts in time order. It owns the active alerts and publishes them (`active`).

#[cfg(test)]
use super::alert::Alert;
use super::book::{ActiveAlert, Book, Change};
use super::check::{Check, Cx};
use super::config::{ReceiverLimited, Rule, Thresholds};
use super::facts::{Facts, Info, SeenList};
use super::{rules, text};
use crate::events::model::{Body, Event};
use crate::host::prefetch;
use crate::timeline::{ConnKey, ConnSummary, ConnTable, EndReason};

/// Turns connection-table updates into alerts. Feed it every event after `ConnTable::apply`,
/// and call `advance` with non-decreasing times: before each event with the event's time, and
/// periodically with the wall clock when live.
pub struct Engine {
    /// How the facts measure receiver-limited intervals (the rules keep their own thresholds).
    limits: ReceiverLimited,
    /// Every rule, in `Rule` order: an observation reaches them in that order, so alerts of
    /// the same time come out in it.
    checks: Vec<Box<dyn Check>>,
    /// For each kind of observation (by its bit's position), the `checks` that see it
    /// (`Check::sees`), as bits by their index: an observation goes only to those, with no
    /// test per rule.
    listeners: [u16; 16],
    book: Book,
    /// The facts of each watched connection, at its table slot (`ConnKey::slot`): an event
    /// finds them without hashing. Slots are reused, so each holds the serial number of the
    /// key it is for.
    watches: Vec<Option<(u64, Facts)>>,
    /// Connections watched now.
    watched: usize,
    /// How far the timers have run.
    clock_ns: u64,
    /// Position in the table's end log.
    ended_cursor: u64,
}

// `listeners` holds a bit per rule.
const _: () = assert!(Rule::ALL.len() <= 16);

impl Engine {
    pub fn new(th: Thresholds) -> Self {
        let mut checks = rules::all(&th);
        checks.sort_by_key(|c| c.rule());
        let mut listeners = [0u16; 16];
        for (i, check) in checks.iter().enumerate() {
            let sees = check.sees();
            for (kind, rules) in listeners.iter_mut().enumerate() {
                if sees & (1 << kind) != 0 {
                    *rules |= 1 << i;
                }
            }
        }
        Engine {
            limits: th.receiver_limited,
            checks,
            listeners,
            book: Book::default(),
            watches: Vec::new(),
            watched: 0,
            clock_ns: 0,
            ended_cursor: 0,
        }
    }

    /// Alerts for event `e`, which `table.apply` just filed under `key`. Runs the timers up to
    /// the event's time first, so skipping the `advance` before it changes nothing.
    #[cfg(test)]
    pub fn on_event(&mut self, table: &ConnTable, key: &ConnKey, e: &Event) -> Vec<Alert> {
        alerts_of(self.on_event_changes(table, key, e))
    }

    /// `on_event`, each alert with the id it fired or resolved under.
    pub fn on_event_changes(&mut self, table: &ConnTable, key: &ConnKey, e: &Event) -> Vec<Change> {
        self.run_timers(table, e.ts_ns);
        self.collect_ended(table);
        let ts = e.ts_ns;
        if matches!(e.body, Body::Close { .. }) {
            self.end_watch(*key, ts, "close");
            return self.book.take();
        }
        // A late event of a closed connection changes nothing the rules watch.
        let Some(conn) = table.get(key).filter(|c| !c.is_closed()) else {
            return self.book.take();
        };
        self.watch(*key);
        let Some(Some((_, facts))) = self.watches.get_mut(key.slot()) else {
            return self.book.take();
        };
        let mut seen = SeenList::new();
        facts.update(&self.limits, conn, e, &mut seen);
        // The connection as of this event: the kept one brought up to date in place (its names
        // shared already), else a new one.
        facts.refresh_info(conn);
        let fresh = facts.info().is_none().then(|| Info::of(conn));
        let facts = &*facts;
        if let Some(info) = fresh.as_ref().or(facts.info()) {
            for s in &seen {
                let mut rules = self.listeners[s.bit().trailing_zeros() as usize];
                while rules != 0 {
                    let check = &mut self.checks[rules.trailing_zeros() as usize];
                    rules &= rules - 1;
                    let mut cx = Cx::new(*key, check.rule(), facts, info, &mut self.book, table);
                    check.observe(&mut cx, s, ts);
                }
            }
        }
        // What the book holds for it is written from the connection as it is now, later.
        let held = self.book.holds_any(key);
        if let Some(Some((_, facts))) = self.watches.get_mut(key.slot()) {
            match (held, fresh) {
                (true, Some(info)) => facts.keep(Some(info)),
                (true, None) => {}
                (false, _) => facts.keep(None),
            }
        }
        self.book.take()
    }

    /// Alerts whose time has come by `now_ns`: thresholds crossed (stamped with the moment of
    /// crossing, not `now_ns`) and quiet periods elapsed. Live callers should pass the wall
    /// clock minus the ring buffer's drain delay, so that a window reopening still in flight
    /// is not overtaken by a stall threshold.
    #[cfg(test)]
    pub fn advance(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Alert> {
        alerts_of(self.advance_changes(table, now_ns))
    }

    /// `advance`, each alert with the id it fired or resolved under.
    pub fn advance_changes(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Change> {
        self.run_timers(table, now_ns);
        self.collect_ended(table);
        self.book.take()
    }

    /// At the end of a run (a replay or a stopped watch): what `advance(now_ns)` fires. Active
    /// alerts stay active; `active()` lists them for the summary.
    #[cfg(test)]
    pub fn finish(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Alert> {
        alerts_of(self.finish_changes(table, now_ns))
    }

    /// `finish`, each alert with the id it fired or resolved under.
    pub fn finish_changes(&mut self, table: &ConnTable, now_ns: u64) -> Vec<Change> {
        self.advance_changes(table, now_ns)
    }

    /// The alerts active now, in (connection, rule, side) order: what has fired (or escalated)
    /// and not yet resolved, as of the last call.
    pub fn active(&self) -> impl Iterator<Item = ActiveAlert<'_>> {
        self.book.active()
    }

    /// How many alerts are active now.
    #[cfg(test)]
    pub fn active_count(&self) -> usize {
        self.book.active_count()
    }

    /// How many alerts fired for a connection the table still keeps (escalations not counted).
    pub fn fired_for(&self, key: &ConnKey) -> u32 {
        self.book.fired_for(key)
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
        let (timers, fired) = self.book.sizes();
        (self.watched, timers, fired)
    }

    /// Watched connections whose latest state is kept (for an alert or a timer held).
    #[cfg(test)]
    pub(super) fn kept_infos(&self) -> usize {
        self.watches.iter().flatten().filter(|(_, f)| f.info().is_some()).count()
    }

    fn run_timers(&mut self, table: &ConnTable, now_ns: u64) {
        self.clock_ns = self.clock_ns.max(now_ns);
        while let Some((due, slot)) = self.book.next_due(self.clock_ns) {
            let Some(facts) = facts_of(&self.watches, &slot.key) else { continue };
            // A timer is held by the book, so the connection as of its latest event is kept.
            let Some(info) = facts.info() else { continue };
            let Some(check) = self.checks.iter_mut().find(|c| c.rule() == slot.rule) else {
                continue;
            };
            let mut cx = Cx::new(slot.key, slot.rule, facts, info, &mut self.book, table);
            check.on_timer(&mut cx, slot.side(), due);
        }
    }

    /// Asks the CPU to bring into cache the facts kept at table slot `slot` (see
    /// `ConnTable::prefetch`). Changes nothing.
    pub fn prefetch(&self, slot: usize) {
        if let Some(place) = self.watches.get(slot) {
            prefetch::read(place);
        }
    }

    /// The connection `key` ended (`why`: close, superseded, evicted): its alerts resolve, and
    /// the rules forget it.
    fn end_watch(&mut self, key: ConnKey, ts_ns: u64, why: &str) {
        let Some(place) = self
            .watches
            .get_mut(key.slot())
            .filter(|w| w.as_ref().is_some_and(|(s, _)| *s == key.serial()))
        else {
            return;
        };
        let Some((_, facts)) = place.take() else { return };
        self.watched -= 1;
        // Only active alerts are explained, and the book holds those, so `info` is kept.
        self.book.end_conn(key, ts_ns, why, |rule| match facts.info() {
            Some(info) => text::ended(info, rule, why),
            None => format!("{} ends: the connection {why}", rule.as_str()),
        });
        for check in &mut self.checks {
            check.forget(key);
        }
    }

    /// Watch the live connection `key` from now on, if it was not watched yet: its facts are
    /// then at `key.slot()`.
    fn watch(&mut self, key: ConnKey) {
        let slot = key.slot();
        if self.watches.len() <= slot {
            self.watches.resize_with(slot + 1, || None);
        }
        // The table reuses a slot only after its connection ended, which `collect_ended` has
        // seen by now: another key here is only a leftover, ended as `collect_ended` would.
        if let Some((other, _)) = &self.watches[slot] {
            if *other != key.serial() {
                let other = ConnKey::of(*other, slot);
                self.end_watch(other, self.clock_ns, "evicted");
            }
        }
        let place = &mut self.watches[slot];
        if place.is_none() {
            self.watched += 1;
            *place = Some((key.serial(), Facts::new()));
        }
    }

    /// Connections that ended without a close event, or left the table.
    fn collect_ended(&mut self, table: &ConnTable) {
        // Most events end nothing.
        if table.ended_seq() == self.ended_cursor {
            return;
        }
        let (complete, ended) = table.ended_since(self.ended_cursor);
        for e in ended {
            let why = match e.reason {
                EndReason::Superseded => "superseded",
                EndReason::Evicted => "evicted",
                // Closed earlier: whatever is still watched ended with that close.
                EndReason::Forgotten => "close",
            };
            self.end_watch(e.key, e.ts_ns, why);
            if e.reason != EndReason::Superseded {
                self.book.forget_fired(&e.key);
            }
        }
        if !complete {
            // The log overflowed past us: check every watched connection directly.
            let mut gone: Vec<ConnKey> = self
                .watches
                .iter()
                .enumerate()
                .filter_map(|(slot, w)| w.as_ref().map(|(serial, _)| ConnKey::of(*serial, slot)))
                .filter(|k| table.get(k).is_none_or(|c| c.is_closed()))
                .collect();
            // In connection order, as alerts of the same time always come out.
            gone.sort_unstable();
            for key in gone {
                self.end_watch(key, self.clock_ns, "evicted");
            }
            self.book.retain_fired(|k| table.get(k).is_some());
        }
        self.ended_cursor = table.ended_seq();
    }
}

/// The facts of the watched connection `key`, in the engine's `watches`.
fn facts_of<'a>(watches: &'a [Option<(u64, Facts)>], key: &ConnKey) -> Option<&'a Facts> {
    match watches.get(key.slot())? {
        Some((serial, facts)) if *serial == key.serial() => Some(facts),
        _ => None,
    }
}

/// The alerts alone, for tests that need no id.
#[cfg(test)]
fn alerts_of(changes: Vec<Change>) -> Vec<Alert> {
    changes.into_iter().map(|c| c.alert).collect()
}
