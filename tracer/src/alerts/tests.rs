//! Alert tests: each rule firing and resolving on hand-built events, determinism, the
//! thresholds file and flags, and property tests over random event sequences.

use std::collections::HashMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::events::model::{Body, Event, SenderState, SentSegments, Side};
use crate::timeline::testutil::*;
use crate::timeline::{ConnTable, Limits};

/// A table and an engine driven the way the commands drive them.
struct Run {
    table: ConnTable,
    engine: Engine,
    alerts: Vec<Alert>,
}

impl Run {
    fn new(th: Thresholds) -> Self {
        Self::with_limits(th, Limits::default())
    }

    fn with_limits(th: Thresholds, limits: Limits) -> Self {
        Run { table: ConnTable::with_limits(limits), engine: Engine::new(th), alerts: Vec::new() }
    }

    fn feed(&mut self, e: Event) -> &mut Self {
        self.alerts.extend(self.engine.advance(&self.table, e.ts_ns));
        let key = self.table.apply(&e);
        self.alerts.extend(self.engine.on_event(&self.table, &key, &e));
        self
    }

    fn advance_ms(&mut self, ms: u64) -> &mut Self {
        self.alerts.extend(self.engine.advance(&self.table, ms * MS));
        self
    }

    /// (ms, kind, rule, severity, side) of every alert so far.
    fn brief(&self) -> Vec<(u64, AlertKind, Rule, Severity, Option<Side>)> {
        self.alerts.iter().map(|a| (a.ts_ns / MS, a.kind, a.rule, a.severity, a.side)).collect()
    }

    fn of_rule(&self, rule: Rule) -> Vec<&Alert> {
        self.alerts.iter().filter(|a| a.rule == rule).collect()
    }
}

use AlertKind::{Alert as Fired, AlertResolved as Resolved};
use Severity::{Critical, Warning};

#[test]
fn a_connection_is_kept_as_of_its_latest_event_only_while_an_alert_or_timer_is_held() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(0, 2, open(true, 1460)));
    r.feed(at(10, 2, local_window(65_535, 0, 131_072)));
    assert_eq!(r.engine.kept_infos(), 0, "quiet connections keep nothing");
    // A zero window arms the stall timer: the alert's text will be written from this state.
    r.feed(at(1000, 1, local_window(0, 4096, 8192)));
    assert_eq!(r.engine.kept_infos(), 1);
    r.advance_ms(3000);
    assert_eq!(r.brief(), vec![(2000, Fired, Rule::ZeroWindowStall, Warning, Some(Side::Local))]);
    // The window reopens: the alert resolves, and the next event lets the state go.
    r.feed(at(4000, 1, local_window(65_535, 0, 8192)));
    assert_eq!(r.of_rule(Rule::ZeroWindowStall).last().map(|a| a.kind), Some(Resolved));
    r.feed(at(5000, 1, local_window(65_535, 0, 8192)));
    // zero_window_duty_cycle still measures its interval (1 s to 6 s), then one without an
    // episode (to 11 s): its timer holds the state until then.
    assert_eq!(r.engine.kept_infos(), 1);
    r.advance_ms(11_000);
    r.feed(at(12_000, 1, local_window(65_535, 0, 8192)));
    assert_eq!(r.engine.kept_infos(), 0);
}

#[test]
fn stall_warns_then_escalates_at_crossing_times_even_when_advanced_late() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(1000, 1, local_window(0, 4096, 8192))).feed(at(
        1000,
        1,
        zero_start_local(4096, 8192),
    ));
    assert!(r.alerts.is_empty());
    // Nothing runs the clock until 20 s: the alerts still carry the crossing moments.
    r.advance_ms(20_000).advance_ms(20_000);
    assert_eq!(
        r.brief(),
        vec![
            (2000, Fired, Rule::ZeroWindowStall, Warning, Some(Side::Local)),
            (11_000, Fired, Rule::ZeroWindowStall, Critical, Some(Side::Local)),
        ]
    );
    let warning = &r.alerts[0];
    assert_eq!(
        warning.explanation,
        "python3 (pid 42) on 127.0.0.1:40001 has advertised a zero window for 1.0 s: it is not \
         reading; 4.0 KiB sit unread in a 8.0 KiB buffer, and the sender at 127.0.0.2:7777 (on \
         this host, its socket not seen) is stalled"
    );
    assert!(warning.fix.contains("net.ipv4.tcp_rmem"), "{}", warning.fix);
    assert_eq!(warning.evidence["zero_window_ms"], 1000);
    assert_eq!(warning.evidence["unread"], 4096);
    assert_eq!(r.alerts[1].evidence["zero_window_ms"], 10_000);

    r.feed(at(21_000, 1, local_window(4096, 0, 8192)));
    let resolved = r.alerts.last().unwrap();
    assert_eq!((resolved.kind, resolved.ts_ns), (Resolved, 21_000 * MS));
    assert_eq!(resolved.severity, Critical);
    assert_eq!(resolved.duration_ms, Some(19_000));
    assert_eq!(resolved.evidence["resolved_by"], "window_reopened");
    assert_eq!(resolved.evidence["zero_window_ms"], 20_000);
    assert_eq!(r.alerts.len(), 3);
}

#[test]
fn uncounted_zero_window_blames_memory_pressure() {
    let mut r = Run::new(Thresholds::default());
    let mut start = zero_start_local(0, 8192);
    if let crate::events::model::Body::ZeroWindowStart { counted, .. } = &mut start {
        *counted = false;
    }
    r.feed(at(0, 1, start)).advance_ms(1000);
    assert_eq!(r.alerts.len(), 1);
    assert!(r.alerts[0].explanation.contains("under TCP memory pressure"));
    assert!(r.alerts[0].fix.contains("net.ipv4.tcp_mem"));
    assert_eq!(r.alerts[0].evidence["counted"], false);
}

#[test]
fn short_zero_window_raises_nothing_and_peer_stall_resolves_at_close() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460)))
        .feed(at(100, 1, zero_start(Side::Local)))
        .feed(at(1099, 1, window(Side::Local, 1000)))
        .advance_ms(5000);
    assert!(r.alerts.is_empty());
    r.feed(at(6000, 1, peer_window(0, sender(0, 20_000, 0, 0))))
        .feed(at(6500, 1, probe(1, 1, 400.0)))
        .feed(at(7500, 1, probe(1, 2, 800.0)))
        .feed(at(8000, 1, close()));
    assert_eq!(
        r.brief(),
        vec![
            (7000, Fired, Rule::ZeroWindowStall, Warning, Some(Side::Peer)),
            (8000, Resolved, Rule::ZeroWindowStall, Warning, Some(Side::Peer)),
        ]
    );
    let fired = &r.alerts[0];
    // 127.0.0.2 is a loopback address: on this host, though no socket of it was seen.
    assert!(fired.explanation.starts_with(
        "the peer 127.0.0.2:7777 (on this host, its socket not seen) has advertised a zero window"
    ));
    assert!(fired.explanation.contains("19.5 KiB wait to be sent here; 1 persist probe(s)"));
    assert_eq!(fired.evidence["probes"], 1);
    assert_eq!(r.alerts[1].evidence["resolved_by"], "close");
}

#[test]
fn persist_backoff_by_unanswered_probes_resolves_on_reopen() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(10, 1, peer_window(0, sender(0, 1, 0, 0))));
    for (i, t) in [200, 600, 1400, 3000, 6200, 9000].into_iter().enumerate() {
        r.feed(at(t, 1, probe(i as u8 + 1, i as u8 + 1, 400.0)));
    }
    let persist = r.of_rule(Rule::PersistBackoff);
    assert_eq!(persist.len(), 1, "one alert while active");
    assert_eq!(persist[0].ts_ns, 6200 * MS);
    assert_eq!(persist[0].evidence["probes_out"], 5);
    assert!(persist[0].explanation.contains(
        "5 zero-window probes to 127.0.0.2:7777 (on this host, its socket not seen) unanswered"
    ));
    assert!(persist[0].fix.contains("net.ipv4.tcp_retries2"));
    r.feed(at(9500, 1, peer_window(65535, sender(0, 1, 0, 0))));
    let persist = r.of_rule(Rule::PersistBackoff);
    assert_eq!(persist.len(), 2);
    assert_eq!((persist[1].kind, persist[1].ts_ns), (Resolved, 9500 * MS));
    assert_eq!(persist[1].duration_ms, Some(3300));
}

#[test]
fn persist_backoff_by_interval_resolves_at_close() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, probe(1, 5, 6400.0))).feed(at(6400, 1, probe(1, 6, 12_800.0)));
    let persist = r.of_rule(Rule::PersistBackoff);
    assert_eq!(persist.len(), 1);
    assert_eq!(persist[0].evidence["next_probe_ms"], 12_800.0);
    assert!(persist[0].explanation.contains("only every 12.8 s (backoff 6)"));
    r.feed(at(7000, 1, close()));
    assert_eq!(r.of_rule(Rule::PersistBackoff)[1].evidence["resolved_by"], "close");
}

#[test]
fn receiver_limited_from_rwnd_limited_deltas() {
    let mut r = Run::new(Thresholds::default());
    // 800 ms of every second limited for 5 s, then 100 ms per second.
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(65535, sender(60_000, 500_000, s * 800, s * 1000))));
    }
    assert_eq!(r.brief(), vec![(5000, Fired, Rule::ReceiverLimited, Warning, Some(Side::Peer))]);
    let a = &r.alerts[0];
    assert_eq!(a.evidence["rwnd_limited_pct"], 80.0);
    assert_eq!(a.evidence["rwnd_limited_ms"], 4000);
    assert!(a.explanation.contains("held back by the peer's receive window 80% of the last 5.0 s"));
    for s in 6..=10 {
        r.feed(at(s * 1000, 1, inflight(65535, sender(1000, 0, 4000 + (s - 5) * 100, s * 1000))));
    }
    assert_eq!(r.alerts.len(), 2);
    assert_eq!((r.alerts[1].kind, r.alerts[1].ts_ns), (Resolved, 10_000 * MS));
    assert_eq!(r.alerts[1].evidence["rwnd_limited_pct"], 10.0);
    assert_eq!(r.alerts[1].evidence["resolved_by"], "below_threshold");
}

#[test]
fn receiver_limited_needs_waiting_data() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, inflight(65535, sender(0, 0, 0, 0)))).feed(at(
        5000,
        1,
        inflight(65535, sender(0, 0, 5000, 5000)),
    ));
    assert!(r.alerts.is_empty());
}

#[test]
fn window_scaling_missing_when_the_ceiling_matters() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(false, 1460)))
        .feed(at(10, 1, peer_window(30_000, sender(1000, 1000, 0, 0))))
        .feed(at(20, 1, local_window(40_000, 0, 131_072)));
    assert!(r.alerts.is_empty(), "windows far from 64 KiB");
    r.feed(at(30, 1, peer_window(65_535, sender(60_000, 100_000, 0, 10))));
    r.feed(at(40, 1, peer_window(65_000, sender(60_000, 100_000, 0, 10))));
    assert_eq!(r.brief(), vec![(30, Fired, Rule::WindowScalingMissing, Warning, None)]);
    let a = &r.alerts[0];
    assert_eq!(a.evidence["ceiling_bytes"], 65_535);
    assert_eq!(a.evidence["srtt_us"], 40_000);
    assert_eq!(a.evidence["max_throughput_bytes_per_s"], 1_638_375.0);
    assert!(a.explanation.contains("at srtt 40.0 ms that caps throughput at 1.6 MiB/s"));
    assert!(a.fix.contains("net.ipv4.tcp_window_scaling=1"));
    r.feed(at(50, 1, close()));
    assert_eq!(r.alerts.len(), 2);
    assert_eq!(r.alerts[1].kind, Resolved);

    // With scaling, the same windows say nothing.
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(30, 1, peer_window(65_535, sender(1, 1, 0, 0))));
    assert!(r.alerts.is_empty());
}

#[test]
fn window_scaling_missing_when_receiver_limited() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(false, 1460)))
        .feed(at(0, 1, inflight(20_000, sender(20_000, 1 << 20, 0, 0))))
        .feed(at(5000, 1, inflight(20_000, sender(20_000, 1 << 20, 3000, 5000))));
    let rules: Vec<Rule> = r.alerts.iter().map(|a| a.rule).collect();
    assert_eq!(rules, vec![Rule::ReceiverLimited, Rule::WindowScalingMissing]);
    assert_eq!(r.alerts[1].evidence["rwnd_limited_pct"], 60.0);
}

#[test]
fn silly_window_after_repeated_sub_mss_windows() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460)))
        .feed(at(10, 1, local_window(500, 0, 4096)))
        .feed(at(20, 1, local_window(0, 0, 4096)))
        .feed(at(30, 1, local_window(600, 0, 4096)));
    assert!(r.alerts.is_empty(), "two so far (zeros do not count)");
    r.feed(at(40, 1, local_window(700, 0, 4096)));
    // The peer side has its own count.
    r.feed(at(45, 1, window(Side::Peer, 100)));
    r.feed(at(50, 1, local_window(800, 0, 4096)));
    assert_eq!(r.brief(), vec![(40, Fired, Rule::SillyWindow, Warning, Some(Side::Local))]);
    assert_eq!(r.alerts[0].evidence["repeats"], 3);
    assert_eq!(r.alerts[0].evidence["mss"], 1460);
    assert!(r.alerts[0].explanation.contains("3 in a row, latest 700 B < MSS 1.4 KiB"));
    r.feed(at(60, 1, local_window(2920, 0, 4096)));
    assert_eq!(r.alerts.len(), 2);
    assert_eq!((r.alerts[1].kind, r.alerts[1].ts_ns), (Resolved, 60 * MS));
    assert_eq!(r.alerts[1].evidence["resolved_by"], "window_at_least_mss");
}

#[test]
fn rcvbuf_pinned_fires_when_limiting_and_resolves_after_quiet() {
    let mut r =
        Run::new(Thresholds { zero_window_stall: disabled_stall(), ..Thresholds::default() });
    r.feed(at(0, 1, open(true, 1460))).feed(at(10, 1, rcv_space(8192, true)));
    assert!(r.alerts.is_empty(), "pinned but not limiting");
    r.feed(at(1000, 1, zero_start_local(8192, 8192)));
    assert_eq!(r.brief(), vec![(1000, Fired, Rule::RcvbufPinned, Warning, Some(Side::Local))]);
    assert!(r.alerts[0]
        .explanation
        .contains("pinned its receive buffer at 8.0 KiB with SO_RCVBUF"));
    assert!(r.alerts[0].explanation.contains("the window is zero with 8.0 KiB unread"));
    // No quiet countdown while at zero, however long.
    r.advance_ms(30_000);
    assert_eq!(r.alerts.len(), 1);
    r.feed(at(31_000, 1, local_window(4096, 0, 8192)));
    // A limiting (sub-MSS) window restarts the quiet period.
    r.feed(at(35_000, 1, local_window(1000, 0, 8192)));
    r.advance_ms(44_999);
    assert_eq!(r.alerts.len(), 1);
    r.advance_ms(60_000);
    assert_eq!(r.alerts.len(), 2);
    let resolved = &r.alerts[1];
    assert_eq!((resolved.kind, resolved.ts_ns), (Resolved, 45_000 * MS));
    assert_eq!(resolved.evidence["resolved_by"], "quiet");
    assert_eq!(resolved.duration_ms, Some(44_000));
}

#[test]
fn rcvbuf_pinned_when_locked_after_limiting_started() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(10, 1, local_window(512, 0, 2048))).feed(at(
        20,
        1,
        rcv_space(2048, true),
    ));
    assert_eq!(r.brief(), vec![(20, Fired, Rule::RcvbufPinned, Warning, Some(Side::Local))]);
    assert!(r.alerts[0].explanation.contains("down to 512 B, below one MSS (1.4 KiB)"));
}

#[test]
fn drops_fire_once_and_resolve_after_quiet() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460)))
        .feed(at(1000, 1, drop(1448)))
        .feed(drop_no_sk(3000, 1, 1000))
        .advance_ms(12_999);
    assert_eq!(r.brief(), vec![(1000, Fired, Rule::FlowControlDrops, Warning, Some(Side::Local))]);
    assert!(r.alerts[0].explanation.contains("dropped a 1.4 KiB segment from 127.0.0.2:7777"));
    assert!(r.alerts[0]
        .explanation
        .contains("TCP_ZEROWINDOW, it arrived while the window was zero"));
    r.advance_ms(13_000);
    assert_eq!(r.alerts.len(), 2);
    let resolved = &r.alerts[1];
    assert_eq!((resolved.kind, resolved.ts_ns), (Resolved, 13_000 * MS));
    assert_eq!(resolved.evidence["drops"], 2);
    assert_eq!(resolved.evidence["dropped_bytes"], 2448);
    assert_eq!(resolved.duration_ms, Some(12_000));
    // A later drop is a new alert.
    r.feed(at(20_000, 1, drop(100)));
    assert_eq!(r.alerts.len(), 3);
    assert_eq!(r.engine.fired_for(&r.table.lookup(&crate::timeline::ConnId::Sock(1)).unwrap()), 2);
}

#[test]
fn finish_fires_pending_crossings_and_keeps_alerts_active() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460))).feed(at(100, 1, zero_start(Side::Local)));
    let out = r.engine.finish(&r.table, 1500 * MS);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ts_ns, 1100 * MS);
    assert_eq!(r.engine.active().count(), 1);
    let mut rows = r.table.summaries(1500 * MS);
    r.engine.count_into(&mut rows);
    assert_eq!(rows[0].alerts, 1);
}

#[test]
fn disabled_rules_stay_silent() {
    let mut th = Thresholds::default();
    th.flow_control_drops.enabled = false;
    th.zero_window_stall.enabled = false;
    let mut r = Run::new(th);
    r.feed(at(0, 1, zero_start(Side::Local))).feed(at(100, 1, drop(100))).advance_ms(60_000);
    assert!(r.alerts.is_empty());
}

#[test]
fn evicted_and_superseded_connections_resolve_their_alerts() {
    let limits = Limits { live_capacity: 1, ..Limits::default() };
    let mut r = Run::with_limits(Thresholds::default(), limits);
    r.feed(at(0, 1, drop(100))).feed(at(10, 2, drop(100)));
    assert_eq!(
        r.brief(),
        vec![
            (0, Fired, Rule::FlowControlDrops, Warning, Some(Side::Local)),
            (10, Resolved, Rule::FlowControlDrops, Warning, Some(Side::Local)),
            (10, Fired, Rule::FlowControlDrops, Warning, Some(Side::Local)),
        ]
    );
    assert_eq!(r.alerts[1].evidence["resolved_by"], "evicted");
    assert_eq!(r.alerts[1].sport, port_of(1));
    // Socket 2 reused by a new connection whose open arrives: the old one's alert resolves.
    r.feed(at(20, 2, open(true, 1460)));
    assert_eq!(r.alerts.len(), 3, "events before the open belong to the same connection");
    r.feed(at(30, 2, open(true, 1460)));
    assert_eq!(r.alerts.len(), 4);
    assert_eq!(r.alerts[3].evidence["resolved_by"], "superseded");
    assert_eq!(r.engine.active().count(), 0);
}

#[test]
fn alert_ndjson_shape() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, drop(1448))).feed(at(10, 1, close()));
    let fired = serde_json::to_value(&r.alerts[0]).unwrap();
    let keys: Vec<&str> = fired.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "ts_ns",
            "kind",
            "rule",
            "severity",
            "side",
            "saddr",
            "sport",
            "daddr",
            "dport",
            "pid",
            "comm",
            "evidence",
            "explanation",
            "fix"
        ]
    );
    assert_eq!(fired["kind"], "alert");
    assert_eq!(fired["rule"], "flow_control_drops");
    assert_eq!(fired["severity"], "warning");
    assert_eq!(fired["side"], "local");
    assert_eq!(fired["saddr"], "127.0.0.1");
    let resolved = serde_json::to_value(&r.alerts[1]).unwrap();
    assert_eq!(resolved["kind"], "alert_resolved");
    assert_eq!(resolved["duration_ms"], 10);
    for a in &r.alerts {
        let line = serde_json::to_string(a).unwrap();
        assert!(!line.contains('\n'));
        let back: Alert = serde_json::from_str(&line).unwrap();
        assert_eq!(&back, a);
        assert!(a.line().contains("127.0.0.1:40001 > 127.0.0.2:7777"), "{}", a.line());
    }
    assert!(r.alerts[0].line().contains("WARNING flow_control_drops (local): "));
    assert!(r.alerts[1].line().contains("resolved flow_control_drops (local), active 10 ms: "));
}

/// A reader that lets its window close for `zero_ms` of every `period_ms`, from `from_ms`
/// until `to_ms` (episodes starting before it), on socket `sk`'s `side`.
fn bursts(
    r: &mut Run,
    sk: u64,
    side: Side,
    from_ms: u64,
    to_ms: u64,
    period_ms: u64,
    zero_ms: u64,
) {
    let mut t = from_ms;
    while t < to_ms {
        let (closed, open) = match side {
            Side::Local => (zero_start_local(8192, 8192), local_window(4096, 4096, 8192)),
            Side::Peer => (peer_window(0, sender(0, 50_000, 0, 0)), window(Side::Peer, 4096)),
        };
        r.feed(at(t, sk, closed)).feed(at(t + zero_ms, sk, open));
        t += period_ms;
    }
}

#[test]
fn duty_cycle_fires_on_many_short_episodes_and_resolves_when_the_share_falls() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460)));
    // 120 ms of every 200 ms at zero from 100 ms: the first interval is [100, 5100).
    bursts(&mut r, 1, Side::Local, 100, 10_100, 200, 120);
    assert_eq!(
        r.brief(),
        vec![(5100, Fired, Rule::ZeroWindowDutyCycle, Warning, Some(Side::Local))],
        "one alert while active, and no zero_window_stall: every episode is 120 ms"
    );
    let a = &r.alerts[0];
    assert_eq!(a.evidence["episodes"], 25);
    assert_eq!(a.evidence["zero_window_ms"], 3000);
    assert_eq!(a.evidence["zero_pct"], 60.0);
    assert_eq!(a.evidence["interval_ms"], 5000);
    assert_eq!(a.evidence["longest_episode_ms"], 120);
    assert_eq!(a.evidence["rcvbuf"], 8192);
    assert_eq!((a.pid, a.comm.as_deref()), (Some(42), Some("python3")));
    assert_eq!(
        a.explanation,
        "python3 (pid 42) on 127.0.0.1:40001 kept its receive window at zero 60% of the last \
         5.0 s (3.0 s) in 25 episodes, the longest 120 ms: it reads in bursts, and the sender \
         at 127.0.0.2:7777 (on this host, its socket not seen) stands still between them; its \
         receive buffer is 8.0 KiB"
    );
    assert!(a.fix.contains("make python3 read steadily"), "{}", a.fix);
    // Then 60 ms of every 200 ms: 30 % of [10100, 15100) resolves it there.
    bursts(&mut r, 1, Side::Local, 10_100, 15_100, 200, 60);
    r.advance_ms(15_100);
    assert_eq!(r.alerts.len(), 2, "{:?}", r.brief());
    let resolved = r.alerts[1].clone();
    assert_eq!((resolved.kind, resolved.ts_ns), (Resolved, 15_100 * MS));
    assert_eq!(resolved.evidence["zero_pct"], 30.0);
    assert_eq!(resolved.evidence["episodes"], 25);
    assert_eq!(resolved.evidence["resolved_by"], "below_threshold");
    assert_eq!(resolved.duration_ms, Some(10_000));
    // The intervals go on while episodes begin, and stop after one without any.
    r.advance_ms(60_000);
    assert_eq!(r.alerts.len(), 2);
    assert_eq!(r.engine.state_sizes().1, 0, "no timer left");
}

#[test]
fn duty_cycle_needs_both_the_share_and_the_episodes() {
    // At the thresholds: 5 episodes of 500 ms in 5 s is 50 %.
    let mut r = Run::new(Thresholds::default());
    bursts(&mut r, 1, Side::Local, 0, 5000, 1000, 500);
    r.advance_ms(5000);
    assert_eq!(
        r.brief(),
        vec![(5000, Fired, Rule::ZeroWindowDutyCycle, Warning, Some(Side::Local))]
    );
    assert_eq!(r.alerts[0].evidence["episodes"], 5);
    // Just under the share: 499 ms each.
    let mut r = Run::new(Thresholds::default());
    bursts(&mut r, 1, Side::Local, 0, 5000, 1000, 499);
    r.advance_ms(20_000);
    assert!(r.alerts.is_empty(), "{:?}", r.brief());
    // 54 % in 3 long episodes (900 ms: not a stall either): not a duty cycle.
    let mut r = Run::new(Thresholds::default());
    bursts(&mut r, 1, Side::Local, 0, 4500, 1500, 900);
    r.advance_ms(20_000);
    assert!(r.alerts.is_empty(), "{:?}", r.brief());
    // Many episodes, small share: 25 of 40 ms.
    let mut r = Run::new(Thresholds::default());
    bursts(&mut r, 1, Side::Local, 0, 5000, 200, 40);
    r.advance_ms(20_000);
    assert!(r.alerts.is_empty(), "{:?}", r.brief());
    // Thresholds from flags, and off.
    let mut th = Thresholds::default();
    th.apply_overrides(&[
        "zero_window_duty_cycle.zero_pct=15",
        "zero_window_duty_cycle.episodes=20",
    ])
    .unwrap();
    let mut r = Run::new(th.clone());
    bursts(&mut r, 1, Side::Local, 0, 5000, 200, 40);
    r.advance_ms(20_000);
    assert_eq!(r.of_rule(Rule::ZeroWindowDutyCycle).len(), 2, "fired at 20 %, resolved after");
    th.zero_window_duty_cycle.enabled = false;
    let mut r = Run::new(th);
    bursts(&mut r, 1, Side::Local, 0, 5000, 200, 40);
    r.advance_ms(20_000);
    assert!(r.alerts.is_empty());
}

#[test]
fn duty_cycle_counts_an_episode_across_intervals_once_and_its_time_in_both() {
    let mut th = Thresholds::default();
    th.zero_window_duty_cycle.interval_ms = 1000;
    th.zero_window_duty_cycle.episodes = 2;
    th.zero_window_stall.enabled = false;
    let mut r = Run::new(th);
    // [0, 1000): episodes at 0 (200 ms) and 400 (until 1600: 600 ms inside) = 80 %, 2 episodes.
    r.feed(at(0, 1, zero_start(Side::Local)))
        .feed(at(200, 1, window(Side::Local, 1000)))
        .feed(at(400, 1, zero_start(Side::Local)))
        .feed(at(1600, 1, window(Side::Local, 1000)))
        .advance_ms(3000);
    let duty = r.of_rule(Rule::ZeroWindowDutyCycle);
    assert_eq!(duty.len(), 2, "{:?}", r.brief());
    assert_eq!(duty[0].ts_ns, 1000 * MS);
    assert_eq!(duty[0].evidence["zero_window_ms"], 800);
    assert_eq!(duty[0].evidence["episodes"], 2);
    assert_eq!(duty[0].evidence["longest_episode_ms"], 600, "in progress: as long as so far");
    // [1000, 2000): 600 ms of the carried episode, no new one: resolved.
    assert_eq!(duty[1].ts_ns, 2000 * MS);
    assert_eq!(duty[1].evidence["zero_pct"], 60.0);
    assert_eq!(duty[1].evidence["episodes"], 0);
}

#[test]
fn duty_cycle_on_the_peer_side_names_the_reader_at_the_other_end() {
    let mut r = Run::new(Thresholds::default());
    // This host's sender (socket 1, 127.0.0.1:40001) and the receiver it sends to, also on
    // this host: pid 77, whose 4-tuple is the mirror.
    r.feed(at(0, 1, open(true, 1460)).with_loopback_peer());
    r.feed(receiver_end(at(0, 2, open(true, 1460))));
    r.feed(receiver_end(at(1, 2, read(100))));
    let mut t = 100;
    while t < 5100 {
        r.feed(at(t, 1, peer_window(0, sender(0, 50_000, 0, 0))).with_loopback_peer());
        r.feed(at(t + 150, 1, window(Side::Peer, 4096)).with_loopback_peer());
        t += 200;
    }
    r.advance_ms(5100);
    let duty = r.of_rule(Rule::ZeroWindowDutyCycle);
    assert_eq!(duty.len(), 1, "{:?}", r.brief());
    let a = duty[0];
    assert_eq!(a.side, Some(Side::Peer));
    assert_eq!((a.pid, a.sport, a.dport), (Some(42), 40001, 7777), "the sender's connection");
    assert_eq!(a.evidence["peer_pid"], 77);
    assert_eq!(a.evidence["peer_comm"], "reader");
    assert_eq!(a.evidence["episodes"], 25);
    assert_eq!(a.evidence["zero_pct"], 75.0);
    assert!(
        a.explanation.starts_with(
            "the peer 127.0.0.1:7777 (reader, pid 77, on this host) kept its window to python3 \
             (pid 42) on 127.0.0.1:40001 at zero 75% of the last 5.0 s (3.8 s) in 25 episodes"
        ),
        "{}",
        a.explanation
    );
    assert!(a.explanation.contains(": reader (pid 77) reads in bursts"), "{}", a.explanation);
    assert!(a.fix.starts_with("make reader (pid 77), the reader at 127.0.0.1:7777 on this host"));
}

/// The same event on the other end of socket 1's connection: 127.0.0.1:7777 > 127.0.0.1:40001,
/// owned by pid 77 ("reader").
fn receiver_end(mut e: Event) -> Event {
    e.daddr = e.saddr;
    (e.sport, e.dport) = (7777, port_of(1));
    e.pid = Some(77);
    if let crate::events::model::Body::Read { comm, .. } = &mut e.body {
        *comm = "reader".into();
    }
    e
}

/// Events of socket 1 with the peer at 127.0.0.1:7777.
trait LoopbackPeer {
    fn with_loopback_peer(self) -> Self;
}

impl LoopbackPeer for Event {
    fn with_loopback_peer(mut self) -> Self {
        self.daddr = self.saddr;
        self
    }
}

#[test]
fn alerts_name_the_process_at_the_other_end_when_it_is_on_this_host() {
    let mut r = Run::new(Thresholds::default());
    r.feed(at(0, 1, open(true, 1460)).with_loopback_peer());
    r.feed(receiver_end(at(0, 2, open(true, 1460))));
    r.feed(receiver_end(at(5, 2, read(10))));
    // The receiver's window closes; the sender sees it as the peer's.
    r.feed(receiver_end(at(10, 2, zero_start_local(4096, 8192))));
    r.feed(at(10, 1, peer_window(0, sender(0, 9000, 0, 0))).with_loopback_peer());
    r.advance_ms(1010);
    let stalls = r.of_rule(Rule::ZeroWindowStall);
    assert_eq!(stalls.len(), 2, "{:?}", r.brief());
    let side = |s: Side| *stalls.iter().find(|a| a.side == Some(s)).expect("a stall alert");
    let (local, peer) = (side(Side::Local), side(Side::Peer));
    assert_eq!((local.side, local.pid, local.sport), (Some(Side::Local), Some(77), 7777));
    assert_eq!(
        local.explanation,
        "reader (pid 77) on 127.0.0.1:7777 has advertised a zero window for 1.0 s: it is not \
         reading; 4.0 KiB sit unread in a 8.0 KiB buffer, and the sender at 127.0.0.1:40001 \
         (python3, pid 42, on this host) is stalled"
    );
    assert_eq!(local.evidence["peer_pid"], 42);
    assert_eq!(local.evidence["peer_comm"], "python3");
    assert_eq!((peer.side, peer.pid, peer.sport), (Some(Side::Peer), Some(42), 40001));
    assert_eq!(
        peer.explanation,
        "the peer 127.0.0.1:7777 (reader, pid 77, on this host) has advertised a zero window to \
         python3 (pid 42) on 127.0.0.1:40001 for 1.0 s: reader (pid 77) is not keeping up; 8.8 \
         KiB wait to be sent here"
    );
    assert_eq!(
        peer.fix,
        "look at reader (pid 77), the reader at 127.0.0.1:7777 on this host, not at the \
         network: `ss -tm` there shows its Recv-Q growing; make it read faster or give it more \
         buffer (its net.ipv4.tcp_rmem, no SO_RCVBUF pin)"
    );
    assert_eq!(peer.evidence["peer_pid"], 77);
    assert_eq!(peer.evidence["peer_local"], true);
    // The resolved alert keeps what the fired one said of the other end.
    r.feed(receiver_end(at(1500, 2, local_window(4096, 0, 8192))));
    r.feed(at(1500, 1, window(Side::Peer, 4096)).with_loopback_peer());
    let resolved = r.alerts.iter().filter(|a| a.kind == Resolved).count();
    assert_eq!(resolved, 2);
    assert!(r
        .alerts
        .iter()
        .filter(|a| a.kind == Resolved)
        .all(|a| a.evidence["peer_pid"].is_u64()));
}

#[test]
fn a_local_peer_not_seen_is_said_to_be_local_and_a_remote_one_is_not_named() {
    // Receiver-limited toward 127.0.0.1:7777, whose socket the tracer never saw (quiet).
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        r.feed(
            at(s * 1000, 1, inflight(65535, sender(60_000, 500_000, s * 800, s * 1000)))
                .with_loopback_peer(),
        );
    }
    let a = &r.of_rule(Rule::ReceiverLimited)[0];
    assert!(
        a.explanation.contains("sending to 127.0.0.1:7777 (on this host, its socket not seen)"),
        "{}",
        a.explanation
    );
    assert!(
        a.fix.starts_with(
            "make the receiving application at 127.0.0.1:7777 on this host (`ss -tpn src \
             127.0.0.1:7777` names it) read faster"
        ),
        "{}",
        a.fix
    );
    assert_eq!(a.evidence["peer_local"], true);
    assert!(a.evidence.get("peer_pid").is_none());
    // A remote peer: no claim about it.
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        let mut e = at(s * 1000, 1, inflight(65535, sender(60_000, 500_000, s * 800, s * 1000)));
        e.daddr = "10.0.0.2".parse().unwrap();
        r.feed(e);
    }
    let a = &r.of_rule(Rule::ReceiverLimited)[0];
    assert!(a.explanation.contains("sending to 10.0.0.2:7777 was held back"), "{}", a.explanation);
    assert!(
        a.fix.starts_with("make the receiving application on 10.0.0.2 read faster"),
        "{}",
        a.fix
    );
    assert!(a.evidence.get("peer_local").is_none());
}

#[test]
fn the_table_finds_the_other_end_by_the_mirror_tuple_while_it_lives() {
    let mut table = ConnTable::new();
    let sender_key = table.apply(&at(0, 1, open(true, 1460)).with_loopback_peer());
    assert!(table.peer_of(&table.get(&sender_key).unwrap().tuple).is_none());
    let receiver_key = table.apply(&receiver_end(at(0, 2, open(true, 1460))));
    let sender = table.get(&sender_key).unwrap().tuple;
    let (found, conn) = table.peer_of(&sender).expect("the receiver's end");
    assert_eq!((found, conn.pid), (receiver_key, Some(77)));
    assert_eq!(table.peer_of(&conn.tuple).map(|(k, _)| k), Some(sender_key));
    table.apply(&receiver_end(at(10, 2, close())));
    assert!(table.peer_of(&sender).is_none(), "closed: no longer the live other end");
}

fn disabled_stall() -> ZeroWindowStall {
    ZeroWindowStall { enabled: false, ..Thresholds::default().zero_window_stall }
}

/// A scenario touching every rule, for the determinism tests.
fn scenario() -> Vec<Event> {
    let mut v = vec![
        at(0, 1, open(false, 1460)),
        at(0, 2, open(true, 1460)),
        at(5, 1, rcv_space(8192, true)),
        at(100, 1, local_window(0, 8192, 8192)),
        at(100, 1, zero_start_local(8192, 8192)),
        at(200, 1, drop(1448)),
        at(300, 2, peer_window(0, sender(0, 9000, 0, 0))),
    ];
    for i in 0..6u8 {
        v.push(at(400 + 700 * u64::from(i), 2, probe(i + 1, i + 1, 400.0 * f64::from(1 << i))));
    }
    v.extend([
        at(12_500, 1, local_window(500, 0, 8192)),
        at(12_600, 1, local_window(600, 0, 8192)),
        at(12_650, 1, local_window(550, 0, 8192)),
        at(12_700, 1, local_window(61_440, 0, 8192)),
        at(13_000, 2, peer_window(65_535, sender(1000, 1000, 0, 0))),
        at(13_000, 3, inflight(1000, sender(1000, 5000, 0, 0))),
        at(18_000, 3, inflight(1000, sender(1000, 5000, 4000, 5000))),
        at(40_000, 2, close()),
    ]);
    v
}

/// Alerts from `events`, with extra `advance` calls at the given times (each placed before
/// the first event at or after it).
fn replay(events: &[Event], extra: &[u64], skip_advance: bool, end: u64) -> Vec<Alert> {
    replay_with(Thresholds::default(), Limits::default(), events, extra, skip_advance, end)
}

fn replay_with(
    th: Thresholds,
    limits: Limits,
    events: &[Event],
    extra: &[u64],
    skip_advance: bool,
    end: u64,
) -> Vec<Alert> {
    let mut table = ConnTable::with_limits(limits);
    let mut engine = Engine::new(th);
    let mut out = Vec::new();
    let mut extra = extra.to_vec();
    extra.sort_unstable();
    let mut extra = extra.into_iter().peekable();
    for e in events {
        while let Some(t) = extra.next_if(|t| *t <= e.ts_ns) {
            out.extend(engine.advance(&table, t));
        }
        if !skip_advance {
            out.extend(engine.advance(&table, e.ts_ns));
        }
        let key = table.apply(e);
        out.extend(engine.on_event(&table, &key, e));
    }
    for t in extra {
        out.extend(engine.advance(&table, t));
    }
    out.extend(engine.finish(&table, end));
    out
}

#[test]
fn same_events_same_alerts_whenever_advance_runs() {
    let events = scenario();
    let end = 60_000 * MS;
    let plain = replay(&events, &[], false, end);
    let rules: std::collections::BTreeSet<Rule> = plain.iter().map(|a| a.rule).collect();
    assert_eq!(rules.len(), 7, "the scenario exercises every rule: {rules:?}");
    let extra: Vec<u64> = (0..600).map(|i| i * 97 * MS).collect();
    assert_eq!(replay(&events, &extra, false, end), plain);
    assert_eq!(replay(&events, &[], true, end), plain);
    assert_eq!(replay(&events, &[1100 * MS, 1100 * MS, 30_000 * MS], true, end), plain);
    assert!(plain.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns), "in time order");
}

#[test]
fn thresholds_from_toml() {
    let text = "\
# tighter stalls
[zero_window_stall]
warning_ms = 500
critical_ms = 5000

[receiver_limited]
limited_pct = 75.5

[silly_window]
enabled = false
";
    let th = Thresholds::from_toml_str(text, "t.toml").unwrap();
    assert_eq!((th.zero_window_stall.warning_ms, th.zero_window_stall.critical_ms), (500, 5000));
    assert_eq!(th.receiver_limited.limited_pct, 75.5);
    assert_eq!(th.receiver_limited.interval_ms, 5000, "unset keys keep their defaults");
    assert!(!th.silly_window.enabled);
    assert_eq!(Thresholds::from_toml_str("", "empty").unwrap(), Thresholds::default());

    let full = "\
[zero_window_stall]
warning_ms = 1000
critical_ms = 10000
[persist_backoff]
probes_out = 5
interval_ms = 10000
[receiver_limited]
interval_ms = 5000
limited_pct = 50
[silly_window]
repeats = 3
[rcvbuf_pinned]
quiet_ms = 10000
[flow_control_drops]
quiet_ms = 10000
[window_scaling_missing]
enabled = true
";
    assert_eq!(Thresholds::from_toml_str(full, "full").unwrap(), Thresholds::default());
}

#[test]
fn thresholds_file_errors_name_file_line_and_key() {
    let err =
        |text: &str| Thresholds::from_toml_str(text, "/etc/tracer.toml").unwrap_err().to_string();
    assert_eq!(
        err("[zero_window_stall]\nwarning_ms = 1\nwarnig_ms = 2000\n"),
        "/etc/tracer.toml:3: unknown key \"warnig_ms\" in [zero_window_stall] (known: enabled, \
         warning_ms, critical_ms)"
    );
    assert_eq!(
        err("\n[zero_window_stal]\nwarning_ms = 1\n"),
        "/etc/tracer.toml:2: unknown section [zero_window_stal] (known: zero_window_stall, \
         persist_backoff, receiver_limited, window_scaling_missing, silly_window, \
         rcvbuf_pinned, flow_control_drops, window_limits_throughput, zero_window_duty_cycle, \
         sender_silly_window, sndbuf_limited)"
    );
    assert_eq!(
        err("[zero_window_stall]\nwarning_ms = \"1s\"\n"),
        "/etc/tracer.toml:2: warning_ms in [zero_window_stall] must be a whole number of \
         milliseconds (0 or more), got string \"1s\""
    );
    assert_eq!(
        err("[silly_window]\nenabled = 1\n"),
        "/etc/tracer.toml:2: enabled in [silly_window] must be true or false, got integer 1"
    );
    assert_eq!(
        err("[receiver_limited]\nlimited_pct = 150\n"),
        "/etc/tracer.toml:2: limited_pct in [receiver_limited] must be a percentage from 0 to \
         100, got integer 150"
    );
    assert_eq!(
        err("[silly_window]\nrepeats = -1\n"),
        "/etc/tracer.toml:2: repeats in [silly_window] must be a whole number of windows (1 or \
         more), got integer -1"
    );
    assert_eq!(
        err("zero_window_stall = 3\n"),
        "/etc/tracer.toml:1: zero_window_stall must be a section ([zero_window_stall] and keys \
         under it)"
    );
    assert_eq!(
        err("[zero_window_stall]\nwarning_ms = 5000\ncritical_ms = 100\n"),
        "/etc/tracer.toml: zero_window_stall.critical_ms (100) is below warning_ms (5000): the \
         warning must come first"
    );
    let syntax = err("[zero_window_stall]\nwarning_ms = 1000\ncritical_ms = = 3\n");
    assert!(syntax.starts_with("/etc/tracer.toml:3:15: invalid TOML: "), "{syntax}");
    let syntax = err("[zero_window_stall\n");
    assert!(syntax.starts_with("/etc/tracer.toml:1:"), "{syntax}");
}

#[test]
fn thresholds_file_is_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("tracer-alerts-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("alerts.toml");
    std::fs::write(&path, "[flow_control_drops]\nquiet_ms = 2000\n").unwrap();
    let th = Thresholds::from_toml_file(&path).unwrap();
    assert_eq!(th.flow_control_drops.quiet_ms, 2000);
    std::fs::write(&path, "[flow_control_drops]\nquiet = 2000\n").unwrap();
    let e = Thresholds::from_toml_file(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: unknown key \"quiet\"", path.display())), "{e}");
    let missing = Thresholds::from_toml_file(&dir.join("nope.toml")).unwrap_err();
    assert!(missing.to_string().starts_with("cannot read alert thresholds from "));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn thresholds_from_flags() {
    let mut th = Thresholds::default();
    th.set("zero_window_stall.warning_ms", "2000").unwrap();
    th.set("persist_backoff.enabled", "false").unwrap();
    th.set("receiver_limited.limited_pct", "90").unwrap();
    assert_eq!(th.zero_window_stall.warning_ms, 2000);
    assert!(!th.persist_backoff.enabled);
    assert_eq!(th.receiver_limited.limited_pct, 90.0);
    let e = |k: &str, v: &str| Thresholds::default().set(k, v).unwrap_err().to_string();
    assert_eq!(
        e("zero_window_stall.warnig_ms", "2000"),
        "unknown key \"warnig_ms\" in [zero_window_stall] (known: enabled, warning_ms, \
         critical_ms)"
    );
    assert!(e("zero_window.warning_ms", "1").starts_with("unknown alert section \"zero_window\""));
    assert!(e("warning_ms", "1").starts_with("\"warning_ms\" is not SECTION.KEY"));
    assert_eq!(
        e("silly_window.repeats", "0"),
        "silly_window.repeats must be a whole number of windows (1 or more), got \"0\""
    );
    assert_eq!(
        e("rcvbuf_pinned.enabled", "yes"),
        "rcvbuf_pinned.enabled must be true or false, got \"yes\""
    );

    let mut th = Thresholds::default();
    th.apply_overrides(&[
        "zero_window_stall.critical_ms=20000",
        "zero_window_stall.warning_ms=15000",
    ])
    .unwrap();
    assert_eq!(th.zero_window_stall.warning_ms, 15_000);
    let err = Thresholds::default().apply_overrides(&["zero_window_stall.warning_ms"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "--alert zero_window_stall.warning_ms: expected KEY=VALUE, e.g. \
         zero_window_stall.warning_ms=2000"
    );
    let err = Thresholds::default().apply_overrides(&["silly_window.repeat=2"]).unwrap_err();
    assert!(err.to_string().starts_with("--alert silly_window.repeat=2: unknown key \"repeat\""));
    let err =
        Thresholds::default().apply_overrides(&["zero_window_stall.warning_ms=20000"]).unwrap_err();
    assert!(err.to_string().starts_with("--alert: zero_window_stall.critical_ms (10000) is below"));
}

/// Thresholds small enough for random sequences of a few seconds to cross them.
fn quick_thresholds() -> Thresholds {
    let mut th = Thresholds::default();
    th.zero_window_stall.warning_ms = 50;
    th.zero_window_stall.critical_ms = 300;
    th.persist_backoff.probes_out = 3;
    th.persist_backoff.interval_ms = 800;
    th.receiver_limited.interval_ms = 300;
    th.rcvbuf_pinned.quiet_ms = 200;
    th.flow_control_drops.quiet_ms = 200;
    th.silly_window.repeats = 2;
    th.window_scaling_missing.window_bytes = 30_000;
    th
}

type SlotId = (IpAddr, u16, IpAddr, u16, Rule, Option<Side>);

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn alerts_are_consistent(raw in prop::collection::vec(arb_event(), 0..150),
                             live in 1usize..5, closed in 0usize..3,
                             extra in prop::collection::vec(0u64..60_000, 0..20)) {
        let limits = Limits { live_capacity: live, closed_capacity: closed, episodes_per_side: 4 };
        let mut table = ConnTable::with_limits(limits);
        let mut engine = Engine::new(quick_thresholds());
        let events = build_events(&raw, false);
        let mut all = Vec::new();
        let mut extra: Vec<u64> = extra.into_iter().map(|t| t * MS).collect();
        extra.sort_unstable();
        let mut extra = extra.into_iter().peekable();
        for e in &events {
            while let Some(t) = extra.next_if(|t| *t <= e.ts_ns) {
                let out = engine.advance(&table, t);
                prop_assert!(out.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
                all.extend(out);
            }
            all.extend(engine.advance(&table, e.ts_ns));
            let key = table.apply(e);
            let out = engine.on_event(&table, &key, e);
            prop_assert!(out.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
            all.extend(out);
            prop_assert!(table.live_len() <= live && table.closed_len() <= closed);
            // The engine's own memory follows the table's.
            let (watched, timers, counted) = engine.state_sizes();
            prop_assert!(watched <= table.live_len());
            prop_assert!(timers <= 2 * Rule::ALL.len() * watched);
            prop_assert!(counted <= table.len());
        }
        let end = events.last().map_or(0, |e| e.ts_ns) + 100_000 * MS;
        all.extend(engine.finish(&table, end));

        // Never resolved before fired, never fired twice while active (one escalation).
        let mut active: HashMap<SlotId, (Severity, u64)> = HashMap::new();
        for a in &all {
            let id = (a.saddr, a.sport, a.daddr, a.dport, a.rule, a.side);
            match a.kind {
                AlertKind::Alert => match active.get(&id) {
                    None => { active.insert(id, (a.severity, a.ts_ns)); }
                    Some((Severity::Warning, since)) if a.severity == Severity::Critical => {
                        prop_assert!(a.ts_ns >= *since);
                        active.insert(id, (a.severity, *since));
                    }
                    Some(_) => prop_assert!(false, "duplicate alert while active: {a:?}"),
                },
                AlertKind::AlertResolved => {
                    let fired = active.remove(&id);
                    prop_assert!(fired.is_some(), "resolved before fired: {a:?}");
                    if let Some((severity, since)) = fired {
                        prop_assert_eq!(severity, a.severity);
                        prop_assert!(a.ts_ns >= since);
                        prop_assert_eq!(a.duration_ms, Some((a.ts_ns - since) / MS));
                    }
                }
            }
        }
        prop_assert_eq!(active.len(), engine.active().count());
        // Contract kept (advance before each event): alerts come out in time order overall.
        prop_assert!(all.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }

    #[test]
    fn extra_advances_change_nothing(raw in prop::collection::vec(arb_event(), 0..120),
                                     extra in prop::collection::vec(0u64..50_000, 0..30)) {
        let events = build_events(&raw, true);
        let end = events.last().map_or(0, |e| e.ts_ns) + 100_000 * MS;
        let extra: Vec<u64> = extra.into_iter().map(|t| t * MS).collect();
        let limits = Limits { live_capacity: 3, closed_capacity: 1, episodes_per_side: 4 };
        let run = |extra: &[u64], skip: bool| {
            replay_with(quick_thresholds(), limits, &events, extra, skip, end)
        };
        let plain = run(&[], false);
        prop_assert_eq!(&run(&extra, false), &plain);
        prop_assert_eq!(&run(&extra, true), &plain);
    }

    #[test]
    fn out_of_order_times_never_panic(raw in prop::collection::vec(arb_event(), 0..120),
                                      jitter in prop::collection::vec(0u64..2_000, 120)) {
        // Timestamps that sometimes go backwards (events from different CPUs, a bad recording).
        let mut events = build_events(&raw, true);
        for (e, j) in events.iter_mut().zip(&jitter) {
            e.ts_ns = e.ts_ns.saturating_sub(j * MS);
        }
        let mut table = ConnTable::with_limits(Limits { live_capacity: 2, closed_capacity: 1, episodes_per_side: 2 });
        let mut engine = Engine::new(quick_thresholds());
        for e in &events {
            engine.advance(&table, e.ts_ns);
            let key = table.apply(e);
            engine.on_event(&table, &key, e);
        }
        engine.finish(&table, u64::MAX);
        for (_, c) in table.iter() {
            for ep in c.local.all_episodes().chain(c.peer.all_episodes()) {
                prop_assert!(ep.end_ns.is_none_or(|end| ep.start_ns <= end));
            }
        }
        let _ = table.summaries(0);
    }
}

/// A sender sample `s` seconds in: 800 ms of each second held by the peer's window, `acked_per_s`
/// bytes acknowledged each second, a congestion window of `cwnd` segments.
fn held_sender(s: u64, acked_per_s: u64, cwnd: u32) -> SenderState {
    let mut state = sender(60_000, 500_000, s * 800, s * 1000);
    if let Some(limits) = &mut state.limits {
        limits.cwnd = cwnd;
        limits.bytes_acked = s * acked_per_s;
    }
    state
}

#[test]
fn window_limits_throughput_on_the_sender_names_the_cap_and_the_bdp() {
    let mut r = Run::new(Thresholds::default());
    // 64 KiB window, 40 ms RTT: a cap of 1.6 MB/s; 1.5 MB/s delivered, cwnd 100 x 1448 bytes.
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(65535, held_sender(s, 1_500_000, 100))));
    }
    let fired = r.of_rule(Rule::WindowLimitsThroughput);
    assert_eq!(fired.len(), 1, "{:?}", r.brief());
    let a = fired[0];
    assert_eq!((a.kind, a.side, a.ts_ns), (Fired, Some(Side::Peer), 5000 * MS));
    assert_eq!(a.evidence["cap_bps"], 1_638_375.0);
    assert_eq!(a.evidence["delivered_bps"], 1_500_000.0);
    assert!(a.explanation.contains("caps the transfer at 1.6 MiB/s"), "{}", a.explanation);
    // BDP at the congestion window's rate is the congestion window: 2 x 144,800 bytes.
    assert!(a.fix.contains("2 x BDP = 282.8 KiB"), "{}", a.fix);
    // Delivering a tenth of the cap: not the window's doing any more.
    for s in 6..=10 {
        r.feed(at(s * 1000, 1, inflight(65535, held_sender(s, 150_000, 100))));
    }
    let all = r.of_rule(Rule::WindowLimitsThroughput);
    assert_eq!(all.len(), 2);
    assert_eq!((all[1].kind, all[1].ts_ns), (Resolved, 10_000 * MS));
}

#[test]
fn window_limits_throughput_needs_a_congestion_window_that_would_carry_more() {
    let mut r = Run::new(Thresholds::default());
    // cwnd 10 x 1448 = 14 KiB, below the 64 KiB window: the network, not the window, limits.
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(65535, held_sender(s, 1_500_000, 10))));
    }
    assert!(r.of_rule(Rule::WindowLimitsThroughput).is_empty(), "{:?}", r.brief());
}

#[test]
fn window_limits_throughput_on_the_receiver_names_the_setting() {
    use crate::events::model::{Limit, WindowChoice};
    let mut r = Run::new(Thresholds::default());
    let mut state = local_state(32_768, 0, 32_768);
    state.choice = Some(WindowChoice {
        limited_by: Limit::BufferMax,
        wanted: 32_768,
        wanted_exact: false,
        rcv_mss: 1448,
        advmss: 1448,
        backlog: 0,
        rcvbuf_locked: true,
        memory_pressure: false,
        rmem_max: Some(6 << 20),
        scaling_ratio: None,
    });
    r.feed(at(0, 1, open(true, 1448)));
    r.feed(at(
        10,
        1,
        Body::Window {
            side: Side::Local,
            window: 32_768,
            raw_window: 256,
            wscale: 7,
            local: Some(state),
            sender: None,
        },
    ));
    // 32 KiB per 40 ms is 819 KB/s; the reader takes 800 KB/s, then 100 KB/s.
    let mut report = |ms: u64, bytes: u64| {
        let mut body = read(bytes);
        if let Body::Read { rate, rcv_rtt_us, rcv_wnd, .. } = &mut body {
            *rate = bytes as f64;
            *rcv_rtt_us = Some(40_000);
            *rcv_wnd = Some(32_768);
        }
        r.feed(at(ms, 1, body));
    };
    report(1000, 800_000);
    report(2000, 100_000);
    let all = r.of_rule(Rule::WindowLimitsThroughput);
    assert_eq!(all.len(), 2, "{:?}", r.brief());
    let a = all[0];
    assert_eq!((a.kind, a.side), (Fired, Some(Side::Local)));
    assert_eq!(a.evidence["limited_by"], "buffer_max");
    assert_eq!(
        a.fix,
        "remove SO_RCVBUF=16.0 KiB from reader (pid 42): a pinned buffer cannot autotune"
    );
    assert_eq!((all[1].kind, all[1].ts_ns), (Resolved, 2000 * MS));
}

/// The `--alert` help (and so the man pages) lists every threshold with its default.
#[test]
fn the_alert_flag_help_lists_every_threshold_and_its_default() {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let watch = cli.find_subcommand("watch").expect("watch");
    let arg = watch.get_arguments().find(|a| a.get_id() == "alerts").expect("--alert");
    let help = arg.get_long_help().expect("long help").to_string();
    let listed = help.split("defaults:").nth(1).expect("a list of defaults");
    let mut th = Thresholds::default();
    let mut section = "";
    let mut keys = 0;
    for item in listed.split([';', ',', ' ']).filter(|w| w.contains('=')) {
        let (key, value) = item.split_once('=').unwrap();
        let key = match key.split_once('.') {
            Some(("", k)) => format!("{section}.{k}"),
            Some((s, _)) => {
                section = s;
                key.to_string()
            }
            None => panic!("{key} is not RULE.KEY"),
        };
        th.set(&key, value).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        keys += 1;
    }
    assert_eq!(th, Thresholds::default(), "every listed value is the default");
    // Every rule's section is there.
    for rule in Rule::ALL {
        assert!(listed.contains(&format!("{}.", rule.as_str())), "{} not listed", rule.as_str());
    }
    assert_eq!(keys, 17, "every key but `enabled`");
}

/// A sender sample `s` seconds in, held by the peer's window 800 ms of each second, that has
/// sent `segs_per_s` data segments of `segment` bytes each second into a peer window of at
/// most `max_window`.
fn segment_sender(s: u64, segs_per_s: u32, segment: u64, max_window: u32) -> SenderState {
    let mut state = held_sender(s, segment * u64::from(segs_per_s), 100);
    state.segments = Some(SentSegments {
        bytes_sent: s * u64::from(segs_per_s) * segment,
        data_segs_out: s as u32 * segs_per_s,
        max_window,
        peer_mss: 1448,
    });
    state
}

#[test]
fn sender_silly_window_names_the_segment_sizes_and_the_window() {
    let mut r = Run::new(Thresholds::default());
    // 100 segments a second of 300 bytes (MSS 1448) into a window never above 2,000 bytes.
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(2000, segment_sender(s, 100, 300, 2000))));
    }
    let fired = r.of_rule(Rule::SenderSillyWindow);
    assert_eq!(fired.len(), 1, "{:?}", r.brief());
    let a = fired[0];
    assert_eq!((a.kind, a.side, a.ts_ns), (Fired, Some(Side::Peer), 5000 * MS));
    assert_eq!(a.evidence["mean_segment"], 300);
    assert_eq!(a.evidence["segments"], 500);
    assert_eq!(a.evidence["peer_max_window"], 2000);
    assert!(a.explanation.contains("500 data segments"), "{}", a.explanation);
    assert!(a.explanation.contains("averaged 300 B (MSS 1.4 KiB)"), "{}", a.explanation);
    assert!(a.fix.contains("at least 2 x MSS = 2.8 KiB"), "{}", a.fix);
    // Full segments again: resolved at the next interval's end.
    for s in 6..=10 {
        let mut state = segment_sender(s, 100, 300, 2000);
        if let Some(g) = state.segments.as_mut() {
            g.bytes_sent = 5 * 100 * 300 + (s - 5) * 100 * 1448;
        }
        r.feed(at(s * 1000, 1, inflight(2000, state)));
    }
    let all = r.of_rule(Rule::SenderSillyWindow);
    assert_eq!(all.len(), 2, "{:?}", r.brief());
    assert_eq!((all[1].kind, all[1].ts_ns), (Resolved, 10_000 * MS));
}

#[test]
fn sender_silly_window_leaves_half_window_segments_and_few_segments_alone() {
    // 700-byte segments of a 1,448-byte MSS: half the MSS, Linux's own choice in a small window.
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(1400, segment_sender(s, 100, 700, 1400))));
    }
    assert!(r.of_rule(Rule::SenderSillyWindow).is_empty(), "{:?}", r.brief());
    // Tiny segments, but 2 a second: under 20 in the interval.
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(2000, segment_sender(s, 2, 100, 2000))));
    }
    assert!(r.of_rule(Rule::SenderSillyWindow).is_empty(), "{:?}", r.brief());
}

/// A sender sample `s` seconds in that has waited for its own send buffer `wait_per_s` ms of
/// each second, the buffer pinned at 8 KiB, nothing held by the peer's window.
fn buffer_sender(s: u64, wait_per_s: u32) -> SenderState {
    let mut state = sender(8192, 0, 0, s * 1000);
    if let Some(limits) = &mut state.limits {
        limits.sndbuf = 8192;
        limits.sndbuf_locked = true;
        limits.bytes_acked = s * 200_000;
        limits.buffer_waiting = wait_per_s > 0;
        limits.buffer_wait_ms = s as u32 * wait_per_s;
    }
    state
}

#[test]
fn sndbuf_limited_names_the_pinned_buffer_and_resolves() {
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(1 << 20, buffer_sender(s, 900))));
    }
    let fired = r.of_rule(Rule::SndbufLimited);
    assert_eq!(fired.len(), 1, "{:?}", r.brief());
    let a = fired[0];
    assert_eq!((a.kind, a.side, a.ts_ns), (Fired, Some(Side::Peer), 5000 * MS));
    assert_eq!(a.evidence["buffer_wait_pct"], 90.0);
    assert_eq!(a.evidence["buffer_wait_ms"], 4500);
    assert_eq!(a.evidence["sndbuf_locked"], true);
    assert!(a.explanation.contains("(pinned at 8.0 KiB by SO_SNDBUF) 90%"), "{}", a.explanation);
    assert!(a.fix.starts_with("remove the SO_SNDBUF setting from"), "{}", a.fix);
    // Not the receiver: receiver_limited stays quiet.
    assert!(r.of_rule(Rule::ReceiverLimited).is_empty(), "{:?}", r.brief());
    // It stops waiting: resolved at the next interval's end.
    for s in 6..=10 {
        let mut state = buffer_sender(s, 0);
        if let Some(limits) = &mut state.limits {
            limits.buffer_wait_ms = 4500;
        }
        r.feed(at(s * 1000, 1, inflight(1 << 20, state)));
    }
    let all = r.of_rule(Rule::SndbufLimited);
    assert_eq!(all.len(), 2, "{:?}", r.brief());
    assert_eq!((all[1].kind, all[1].ts_ns), (Resolved, 10_000 * MS));
}

#[test]
fn sndbuf_limited_needs_the_share() {
    // 400 ms of each second: under half.
    let mut r = Run::new(Thresholds::default());
    for s in 0..=5 {
        r.feed(at(s * 1000, 1, inflight(1 << 20, buffer_sender(s, 400))));
    }
    assert!(r.of_rule(Rule::SndbufLimited).is_empty(), "{:?}", r.brief());
}
