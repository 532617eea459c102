//! The view model without a terminal: rows from a connection table, sorting, filtering,
//! scrolling bounds, the sparkline's bucketing, and the feed's bookkeeping.

use super::{
    feed::{AlertLog, EventRate},
    history::{buckets, glyphs, Histories, Sample, Series, EMPTY, SPAN_SECS, ZERO},
    model::{Action, Mode, Model, Sort, Stats},
    row::{rows, OtherEnd, Row, Scope, State, CLOSED_LINGER_NS},
};
use crate::{
    alerts::{Alert, AlertKind, Rule, Severity},
    events::model::{Event, Side},
    timeline::{testutil::*, ConnTable},
};

const SEC: u64 = 1_000_000_000;

/// A table and histories fed with `events`.
fn fed(events: &[Event]) -> (ConnTable, Histories) {
    let mut table = ConnTable::new();
    let mut histories = Histories::default();
    for e in events {
        table.apply(e);
        histories.event(e);
    }
    (table, histories)
}

/// Rows as of `now_ms`, everything in scope.
fn rows_at(events: &[Event], now_ms: u64) -> Vec<Row> {
    let (table, _) = fed(events);
    rows(&table, now_ms * MS, &Scope::default())
}

/// A model showing `rows` with room for `viewport` of them.
fn model(rows: Vec<Row>, viewport: usize) -> Model {
    let mut m = Model::new("test");
    m.refresh(rows, Vec::new(), Stats::default());
    m.set_viewport(viewport);
    m
}

/// Local ports of the rows on screen, top to bottom.
fn order(m: &Model) -> Vec<u16> {
    m.visible().map(|(r, _)| r.tuple.sport).collect()
}

/// Six connections, each with one flow-control finding, most severe first (sockets 1..=6).
fn six() -> Vec<Event> {
    vec![
        // 1: zero window now (1 s so far at 10 s).
        at(0, 1, open(true, 1460)),
        at(0, 1, local_window(1000, 0, 8192)),
        at(9000, 1, zero_start_local(4096, 8192)),
        // 2: a 3 s zero-window episode, over.
        at(0, 2, open(true, 1460)),
        at(1000, 2, zero_start(Side::Local)),
        at(4000, 2, window(Side::Local, 5000)),
        // 3: a drop.
        at(0, 3, open(true, 1460)),
        at(2000, 3, drop(100)),
        // 4: the sender limited by the peer's window half its busy time.
        at(0, 4, open(true, 1460)),
        at(1000, 4, peer_window(20000, sender(1000, 0, 0, 0))),
        at(5000, 4, peer_window(30000, sender(1000, 0, 2000, 4000))),
        // 5: a probe.
        at(0, 5, open(true, 1460)),
        at(3000, 5, probe(1, 1, 400.0)),
        // 6: nothing.
        at(0, 6, open(true, 1460)),
    ]
}

#[test]
fn rows_carry_the_flow_control_figures() {
    let rows = rows_at(&six(), 10_000);
    assert_eq!(rows.len(), 6);
    let by_port = |p: u16| rows.iter().find(|r| r.tuple.sport == p).expect("row");
    let zero_now = by_port(port_of(1));
    assert!(zero_now.zero_now);
    assert_eq!(zero_now.state, State::Zero);
    assert_eq!(zero_now.state_side, Some(Side::Local));
    assert_eq!(zero_now.zero_ms, 1000);
    assert_eq!(zero_now.local_window, Some(0));
    let episode = by_port(port_of(2));
    assert!(!episode.zero_now);
    assert_eq!((episode.zero_ms, episode.longest_zero_ms), (3000, 3000));
    assert_eq!(episode.state, State::Reopened);
    assert_eq!(by_port(port_of(3)).drops, 1);
    assert_eq!(by_port(port_of(4)).rwnd_pct, Some(50.0));
    assert_eq!(by_port(port_of(4)).in_flight, Some(1000));
    assert_eq!((by_port(port_of(5)).probes, by_port(port_of(5)).max_backoff), (1, 1));
    assert_eq!(by_port(port_of(6)).state, State::Open);
    assert_eq!(by_port(port_of(6)).state_side, None);
    assert_eq!(zero_now.process, "python3/42");
    assert!(zero_now.search.contains(&format!(":{}", port_of(1))));
}

#[test]
fn default_order_is_worst_first() {
    let mut rows = rows_at(&six(), 10_000);
    // Whatever order they come in.
    rows.reverse();
    let m = model(rows, 10);
    let expected: Vec<u16> = (1..=6).map(port_of).collect();
    assert_eq!(order(&m), expected);
}

/// An event of the other end of socket `sk`'s connection (127.0.0.2:7777 > 127.0.0.1:port),
/// on socket `other`.
fn other_end_of(sk: u64, other: u64, mut e: Event) -> Event {
    e.sk = other;
    (e.saddr, e.daddr) = (e.daddr, e.saddr);
    (e.sport, e.dport) = (7777, port_of(sk));
    e
}

#[test]
fn the_two_ends_on_this_host_sit_together_the_second_marked() {
    let mut events = six();
    // The receiver at the other end of socket 6 (healthy, last) is at zero now, so it sorts
    // second (after socket 1, at zero longer) and pulls socket 6 up under it.
    events.push(other_end_of(6, 7, at(0, 7, open(true, 1460))));
    events.push(other_end_of(6, 7, at(9500, 7, zero_start_local(4096, 8192))));
    let mut m = model(rows_at(&events, 10_000), 10);
    let ends = |m: &Model| m.visible().map(|(r, _)| r.other_end).collect::<Vec<_>>();
    let expected: Vec<u16> = [1, 0, 6, 2, 3, 4, 5]
        .into_iter()
        .map(|sk| if sk == 0 { 7777 } else { port_of(sk) })
        .collect();
    assert_eq!(order(&m), expected);
    use OtherEnd::{Above, Below, None as Alone};
    assert_eq!(ends(&m), vec![Alone, Below, Above, Alone, Alone, Alone, Alone]);
    // Sorted by another column, the pair still sits together where its first end sorts.
    m.apply(Action::SortNext);
    assert_eq!(m.sort().0, Sort::Connection);
    let o = order(&m);
    let at = o.iter().position(|&p| p == port_of(6)).expect("socket 6");
    assert_eq!(o.get(at + 1), Some(&7777), "{o:?}");
    assert_eq!(ends(&m)[at + 1], Above);
}

#[test]
fn sort_cycles_and_reverses() {
    let m0 = model(rows_at(&six(), 10_000), 10);
    let mut m = m0;
    m.apply(Action::SortNext);
    assert_eq!(m.sort(), (Sort::Connection, false));
    let ascending: Vec<u16> = (1..=6).map(port_of).collect();
    assert_eq!(order(&m), ascending);
    m.apply(Action::SortReverse);
    assert_eq!(m.sort(), (Sort::Connection, true));
    let descending: Vec<u16> = ascending.iter().rev().copied().collect();
    assert_eq!(order(&m), descending);
    // The next column starts in its natural order again.
    m.apply(Action::SortNext);
    assert_eq!(m.sort(), (Sort::Process, false));
    // Local window: smallest first, connections without one last (ties: worst first).
    m.apply(Action::SortNext);
    assert_eq!(m.sort(), (Sort::LocalWindow, false));
    assert_eq!(order(&m)[..2], [port_of(1), port_of(2)]);
    // What holds the local window: by name, connections without one last.
    m.apply(Action::SortNext);
    assert_eq!(m.sort(), (Sort::Limit, false));
    // Around the cycle back to the default.
    for _ in 0..9 {
        m.apply(Action::SortNext);
    }
    assert_eq!(m.sort(), (Sort::Worst, false));
    assert_eq!(order(&m), ascending);
}

#[test]
fn filter_is_a_case_insensitive_substring_applied_on_enter() {
    let mut m = model(rows_at(&six(), 10_000), 10);
    m.apply(Action::FilterStart);
    assert_eq!(m.mode(), Mode::Filter);
    for c in port_of(3).to_string().chars() {
        m.apply(Action::FilterInput(c));
    }
    // Not applied while typing.
    assert_eq!(m.counts(), (6, 6));
    m.apply(Action::FilterApply);
    assert_eq!(m.mode(), Mode::Normal);
    assert_eq!(order(&m), vec![port_of(3)]);
    assert_eq!(m.counts(), (1, 6));
    // Process names, any case; the peer's address.
    for (text, shown) in [("PYTHON3", 6), ("127.0.0.2:7777", 6), ("nothing", 0)] {
        m.apply(Action::FilterStart);
        text.chars().for_each(|c| m.apply(Action::FilterInput(c)));
        m.apply(Action::FilterApply);
        assert_eq!(m.counts().0, shown, "{text}");
    }
    // Backspace edits the draft; Esc clears the filter altogether.
    m.apply(Action::FilterStart);
    m.apply(Action::FilterInput('x'));
    m.apply(Action::FilterBackspace);
    assert_eq!(m.draft(), Some(""));
    m.apply(Action::FilterClear);
    assert_eq!(m.mode(), Mode::Normal);
    assert_eq!(m.filter(), "");
    assert_eq!(m.counts(), (6, 6));
}

/// `n` plain connections on sockets 1..=n.
fn many(n: u64) -> Vec<Row> {
    let events: Vec<Event> = (1..=n).map(|sk| at(0, sk, open(true, 1460))).collect();
    rows_at(&events, 1000)
}

#[test]
fn scrolling_stays_within_bounds() {
    let mut m = model(many(30), 10);
    m.apply(Action::Up);
    assert_eq!(m.position(), (0, 0));
    for _ in 0..15 {
        m.apply(Action::Down);
    }
    assert_eq!(m.position(), (15, 6), "the selection stays on the last line of the screen");
    m.apply(Action::PageDown);
    assert_eq!(m.position(), (25, 16));
    m.apply(Action::PageDown);
    assert_eq!(m.position(), (29, 20), "clamped to the last row");
    m.apply(Action::Down);
    assert_eq!(m.position(), (29, 20));
    m.apply(Action::PageUp);
    assert_eq!(m.position(), (19, 19));
    m.apply(Action::Bottom);
    assert_eq!(m.position(), (29, 20));
    m.apply(Action::Top);
    assert_eq!(m.position(), (0, 0));
    assert_eq!(m.visible().count(), 10);
    assert!(m.visible().next().is_some_and(|(_, selected)| selected));
    // A taller screen shows everything from the top.
    m.apply(Action::Bottom);
    m.set_viewport(50);
    assert_eq!(m.position(), (29, 0));
    assert_eq!(m.visible().count(), 30);
    // Fewer rows than the selection: clamped.
    m.set_viewport(10);
    m.refresh(many(5), Vec::new(), Stats::default());
    assert!(m.position().0 < 5);
    m.refresh(Vec::new(), Vec::new(), Stats::default());
    assert_eq!(m.position(), (0, 0));
    assert_eq!(m.visible().count(), 0);
}

#[test]
fn selection_follows_its_connection_across_refreshes() {
    let events = six();
    let mut m = model(rows_at(&events, 10_000), 10);
    // Select the second row (socket 2: the finished episode).
    m.apply(Action::Down);
    assert_eq!(m.position().0, 1);
    // Socket 6 goes to zero now: it moves up past socket 2, and the selection moves with
    // socket 2 to the third row.
    let mut more = events.clone();
    more.push(at(10_000, 6, zero_start(Side::Peer)));
    m.refresh(rows_at(&more, 20_000), Vec::new(), Stats::default());
    let selected: Vec<u16> = m.visible().filter(|(_, s)| *s).map(|(r, _)| r.tuple.sport).collect();
    assert_eq!(selected, vec![port_of(2)]);
    assert_eq!(order(&m)[..3], [port_of(1), port_of(6), port_of(2)]);
    assert_eq!(m.position().0, 2);
}

#[test]
fn pause_holds_the_rows() {
    let mut m = model(many(3), 10);
    m.apply(Action::Pause);
    m.refresh(many(7), Vec::new(), Stats::default());
    assert_eq!(m.counts(), (3, 3));
    m.apply(Action::Pause);
    m.refresh(many(7), Vec::new(), Stats::default());
    assert_eq!(m.counts(), (7, 7));
}

#[test]
fn help_and_quit_modes() {
    let mut m = model(many(1), 10);
    m.apply(Action::Help);
    assert_eq!(m.mode(), Mode::Help);
    m.apply(Action::Help);
    assert_eq!(m.mode(), Mode::Normal);
    assert!(!m.quit());
    m.apply(Action::Quit);
    assert!(m.quit());
}

#[test]
fn closed_connections_linger_then_leave_the_view() {
    let events = vec![at(0, 1, open(true, 1460)), at(1000, 1, close()), at(0, 2, open(true, 1460))];
    let soon = rows_at(&events, 2000);
    assert_eq!(soon.len(), 2);
    let closed = soon.iter().find(|r| r.closed).expect("the closed row");
    assert_eq!(closed.state, State::Closed);
    let later = rows_at(&events, 1000 + CLOSED_LINGER_NS / MS + 1);
    assert_eq!(later.len(), 1);
    assert!(!later[0].closed);
}

#[test]
fn scope_limits_rows_by_port_and_pid() {
    let (table, _) = fed(&six());
    let by_port = Scope { ports: vec![port_of(4)], pid: None };
    assert_eq!(rows(&table, 10 * SEC, &by_port).len(), 1);
    let by_peer_port = Scope { ports: vec![7777], pid: None };
    assert_eq!(rows(&table, 10 * SEC, &by_peer_port).len(), 6);
    let other_pid = Scope { ports: Vec::new(), pid: Some(7) };
    assert!(rows(&table, 10 * SEC, &other_pid).is_empty());
}

/// A sample of `covered_ms`, `zero_ms` of them at zero, lowest other window `low`.
fn sample(covered_ms: u64, zero_ms: u64, low: Option<u32>) -> Option<Sample> {
    Some(Sample { zero_ns: zero_ms * MS, covered_ns: covered_ms * MS, low })
}

#[test]
fn seconds_hold_zero_time_and_the_lowest_window() {
    let mut s = Series::default();
    s.record(100 * SEC + 500 * MS, 4000);
    // 300 ms at zero inside second 102, then the window holds at 8000.
    s.record(102 * SEC + 100 * MS, 0);
    s.record(102 * SEC + 400 * MS, 8000);
    // Instantly zero and back: no time at zero.
    s.record(103 * SEC, 0);
    s.record(103 * SEC, 9000);
    let v = s.per_second(105 * SEC + 250 * MS);
    assert_eq!(v.len(), SPAN_SECS);
    let tail = &v[SPAN_SECS - 6..];
    assert_eq!(
        tail,
        [
            sample(500, 0, Some(4000)),
            sample(1000, 0, Some(4000)),
            // 8000 from 102.4 s on is not lower than the 4000 before.
            sample(1000, 300, Some(4000)),
            // 8000 held until 103 s exactly, so not in this second.
            sample(1000, 0, Some(9000)),
            sample(1000, 0, Some(9000)),
            // The second in progress: only up to now.
            sample(250, 0, Some(9000)),
        ]
    );
    assert!(v[..SPAN_SECS - 6].iter().all(Option::is_none), "nothing before the first window");
}

#[test]
fn a_window_at_zero_now_counts_up_to_now_and_stops_at_close() {
    let mut s = Series::default();
    s.record(10 * SEC, 5000);
    s.record(11 * SEC + 500 * MS, 0);
    let v = s.per_second(13 * SEC + 200 * MS);
    assert_eq!(
        &v[SPAN_SECS - 3..],
        [sample(1000, 500, Some(5000)), sample(1000, 1000, None), sample(200, 200, None)]
    );
    s.close(12 * SEC + 600 * MS);
    let v = s.per_second(14 * SEC);
    assert_eq!(
        &v[SPAN_SECS - 4..],
        [sample(1000, 500, Some(5000)), sample(600, 600, None), None, None]
    );
    // Nothing after the close changes it.
    s.record(13 * SEC, 7000);
    assert_eq!(s.per_second(14 * SEC), v);
}

#[test]
fn history_stays_bounded_and_quiet_spells_carry_the_window() {
    let mut s = Series::default();
    for sec in 0..500 {
        s.record(sec * SEC, 1000 + sec as u32);
    }
    // An hour later, still 1499: every second of the span holds it (the one in progress
    // for the 1 ms it has run).
    let v = s.per_second(3600 * SEC + MS);
    assert!(v[..SPAN_SECS - 1].iter().all(|w| *w == sample(1000, 0, Some(1499))));
    assert_eq!(v[SPAN_SECS - 1], sample(1, 0, Some(1499)));
    assert!(format!("{s:?}").len() < 20_000, "bounded: {}", format!("{s:?}").len());
}

#[test]
fn buckets_merge_their_seconds() {
    let mut v = vec![None; 60];
    v[57] = sample(1000, 0, Some(300));
    v[58] = sample(1000, 1000, None);
    v[59] = sample(1000, 0, Some(600));
    // One cell per second when there is room.
    assert_eq!(buckets(&v, 80), v);
    // Twenty cells of three seconds: the last one a third at zero, lowest window 300.
    let cells = buckets(&v, 20);
    assert_eq!(cells.len(), 20);
    assert_eq!(cells[19], sample(3000, 1000, Some(300)));
    assert!(cells[..19].iter().all(Option::is_none));
    assert!(buckets(&v, 0).is_empty());
}

#[test]
fn glyphs_scale_to_the_largest_and_mark_zero() {
    let cells = [
        None,
        sample(1000, 1000, None),
        // Half the time at zero: drawn as zero.
        sample(1000, 500, Some(800)),
        sample(1000, 0, Some(1)),
        // Some time at zero: a block, marked stalled.
        sample(1000, 100, Some(400)),
        sample(1000, 0, Some(800)),
    ];
    let g = glyphs(&cells);
    let chars: String = g.iter().map(|g| g.ch).collect();
    assert_eq!(chars, format!("{EMPTY}{ZERO}{ZERO}▁▄█"));
    let stalled: Vec<bool> = g.iter().map(|g| g.stalled).collect();
    assert_eq!(stalled, [false, true, true, false, true, false]);
}

#[test]
fn histories_follow_sides_and_reused_tuples() {
    let events = vec![
        at(0, 1, open(true, 1460)),
        at(0, 1, window(Side::Local, 2000)),
        at(0, 1, inflight(5000, sender(100, 0, 0, 0))),
        at(1000, 1, zero_start(Side::Peer)),
        at(2000, 1, close()),
        // The same 4-tuple again, later: a new connection with its own history.
        at(3000, 1, open(true, 1460)),
        at(3000, 1, window(Side::Local, 9000)),
    ];
    let (table, mut histories) = fed(&events);
    let now = 3500 * MS;
    let conns: Vec<_> = table.iter().map(|(_, c)| c).collect();
    assert_eq!(conns.len(), 2);
    let sparks = |closed: bool| {
        let conn = conns.iter().find(|c| c.is_closed() == closed).expect("connection");
        histories.of(conn).expect("history").sparks(now)
    };
    let (old, new) = (sparks(true), sparks(false));
    assert_eq!(
        old.local[SPAN_SECS - 4..],
        [sample(1000, 0, Some(2000)), sample(1000, 0, Some(2000)), None, None]
    );
    assert_eq!(
        old.peer[SPAN_SECS - 4..SPAN_SECS - 2],
        [sample(1000, 0, Some(5000)), sample(1000, 1000, None)]
    );
    assert_eq!(new.local[SPAN_SECS - 1], sample(500, 0, Some(9000)));
    assert!(new.peer.iter().all(Option::is_none));
    // Histories of connections that left the table are forgotten.
    histories.retain(&ConnTable::new());
    assert!(conns.iter().all(|c| histories.of(c).is_none()));
}

#[test]
fn sparks_are_fetched_for_rows_on_screen_only() {
    let mut m = model(many(30), 10);
    let wanted = m.wanting_sparks();
    assert_eq!(wanted.len(), 10);
    let (table, histories) = fed(&[at(0, 1, open(true, 1460)), at(0, 1, window(Side::Local, 1))]);
    let (_, conn) = table.iter().next().expect("a connection");
    let sparks = histories.of(conn).expect("history").sparks(SEC);
    m.add_sparks(wanted.iter().map(|k| (*k, sparks.clone())));
    assert!(m.wanting_sparks().is_empty());
    // Moving the selection a screen down scrolls the view by one row: one more wanted.
    m.apply(Action::PageDown);
    assert_eq!(m.wanting_sparks().len(), 1);
    // A refresh starts over.
    m.refresh(many(30), Vec::new(), Stats::default());
    assert_eq!(m.wanting_sparks().len(), 10);
}

fn alert(kind: AlertKind, rule: Rule, side: Side) -> Alert {
    let e = at(0, 1, close());
    Alert {
        ts_ns: 0,
        kind,
        rule,
        severity: Severity::Warning,
        side: Some(side),
        saddr: e.saddr,
        sport: e.sport,
        daddr: e.daddr,
        dport: e.dport,
        pid: e.pid,
        comm: None,
        evidence: Default::default(),
        explanation: String::new(),
        fix: String::new(),
        duration_ms: None,
    }
}

#[test]
fn alert_log_keeps_the_newest_alerts_first() {
    let mut log = AlertLog::default();
    log.push(&alert(AlertKind::Alert, Rule::ZeroWindowStall, Side::Local));
    log.push(&alert(AlertKind::Alert, Rule::ZeroWindowStall, Side::Peer));
    log.push(&alert(AlertKind::AlertResolved, Rule::ZeroWindowStall, Side::Local));
    let newest = log.newest_first().next().expect("an alert");
    assert_eq!(newest.kind, AlertKind::AlertResolved);
    assert_eq!(log.newest_first().count(), 3);
}

#[test]
fn event_rate_is_over_the_last_two_seconds() {
    let mut rate = EventRate::default();
    for i in 0..40 {
        rate.count(10 * SEC + i * 50 * MS);
    }
    assert_eq!(rate.per_second(12 * SEC - 1), 20.0);
    assert_eq!(rate.per_second(20 * SEC), 0.0);
}
