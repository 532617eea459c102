//! Tests of what the engine publishes: the active alerts, and each alert with the id it fired
//! or resolved under (which tells a reused 4-tuple's connections apart).

use super::*;
use crate::events::model::{Event, Side};
use crate::timeline::testutil::*;
use crate::timeline::{ConnKey, ConnTable};

/// Feeds `e` the way the pipeline does; returns its key and the changes.
fn feed(table: &mut ConnTable, engine: &mut Engine, e: Event) -> (ConnKey, Vec<Change>) {
    let mut out = engine.advance_changes(table, e.ts_ns);
    let key = table.apply(&e);
    out.extend(engine.on_event_changes(table, &key, &e));
    (key, out)
}

#[test]
fn active_alerts_follow_fire_escalate_and_resolve() {
    let (mut table, mut engine) = (ConnTable::new(), Engine::new(Thresholds::default()));
    feed(&mut table, &mut engine, at(0, 1, open(true, 1460)));
    let (key, _) = feed(&mut table, &mut engine, at(100, 1, zero_start(Side::Local)));
    assert_eq!(engine.active_count(), 0);

    let fired = engine.advance_changes(&table, 2000 * MS);
    let id = AlertId { key, rule: Rule::ZeroWindowStall, side: Some(Side::Local) };
    assert_eq!(fired.len(), 1);
    assert_eq!((fired[0].id, fired[0].alert.kind), (id, AlertKind::Alert));
    let active: Vec<ActiveAlert> = engine.active().collect();
    assert_eq!(active.len(), 1);
    assert_eq!((active[0].id, active[0].severity), (id, Severity::Warning));
    assert_eq!(active[0].alert, &fired[0].alert);
    assert_eq!(active[0].alert.tuple(), table.get(&key).unwrap().tuple);

    let escalated = engine.advance_changes(&table, 20_000 * MS);
    assert_eq!((escalated[0].id, escalated[0].alert.severity), (id, Severity::Critical));
    let active: Vec<ActiveAlert> = engine.active().collect();
    assert_eq!(active[0].severity, Severity::Critical);
    assert_eq!(engine.active_count(), 1, "an escalation replaces its warning");

    let (_, resolved) = feed(&mut table, &mut engine, at(21_000, 1, close()));
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].id, resolved[0].alert.kind), (id, AlertKind::AlertResolved));
    assert_eq!(engine.active_count(), 0);
    assert_eq!(engine.active().count(), 0);
}

#[test]
fn a_reused_socket_keeps_alerts_under_their_own_connection() {
    let (mut table, mut engine) = (ConnTable::new(), Engine::new(Thresholds::default()));
    let (old, fired) = feed(&mut table, &mut engine, at(10, 2, drop(100)));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].id.key, old);
    // The socket is reused by a new connection: the old one's alert resolves under its key.
    feed(&mut table, &mut engine, at(20, 2, open(true, 1460)));
    let (new, resolved) = feed(&mut table, &mut engine, at(30, 2, open(true, 1460)));
    assert_ne!(new, old);
    assert_eq!(resolved.len(), 1);
    assert_eq!((resolved[0].id.key, resolved[0].alert.kind), (old, AlertKind::AlertResolved));
    let (_, fired) = feed(&mut table, &mut engine, at(40, 2, drop(100)));
    assert_eq!(fired[0].id.key, new);
    assert_eq!(fired[0].alert.tuple(), resolved[0].alert.tuple(), "same 4-tuple, told apart");
    let active: Vec<AlertId> = engine.active().map(|a| a.id).collect();
    assert_eq!(active, vec![fired[0].id]);
}
