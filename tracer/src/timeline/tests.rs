//! Connection-table tests from hand-built event sequences, and property tests.

use proptest::prelude::*;

use super::direction::WindowState;
use super::testutil::*;
use super::*;
use crate::events::model::{Body, Event, Limit, Side, WindowChoice};

fn apply_all(table: &mut ConnTable, events: &[Event]) -> Vec<ConnKey> {
    events.iter().map(|e| table.apply(e)).collect()
}

#[test]
fn episode_bookkeeping_and_min_window() {
    let mut t = ConnTable::new();
    let keys = apply_all(
        &mut t,
        &[
            at(0, 1, open(true, 1460)),
            at(10, 1, local_window(8192, 0, 16384)),
            at(20, 1, local_window(2048, 6144, 16384)),
            at(30, 1, local_window(0, 8192, 16384)),
            at(30, 1, zero_start_local(8192, 16384)),
        ],
    );
    let key = keys[0];
    assert!(keys.iter().all(|k| *k == key), "one connection");
    let c = t.get(&key).unwrap();
    assert_eq!(c.local.state, WindowState::Zero);
    let open = c.local.open().unwrap();
    assert_eq!(open.start_ns, 30 * MS);
    assert_eq!(open.min_window_before, Some(2048));
    assert_eq!(open.counted, Some(true));
    assert_eq!((open.unread, open.rcvbuf), (Some(8192), Some(16384)));
    assert_eq!(c.local.totals().episodes, 1);
    // An open episode counts up to `now`.
    assert_eq!(c.local.zero_ns(530 * MS), 500 * MS);

    t.apply(&at(1530, 1, local_window(4096, 0, 16384)));
    t.apply(&at(1530, 1, zero_end(Side::Local, 4096, Some(1500 * MS))));
    let c = t.get(&key).unwrap();
    assert_eq!(c.local.state, WindowState::Reopened);
    assert!(c.local.open().is_none());
    let ep = &c.local.episodes()[0];
    assert_eq!((ep.start_ns, ep.end_ns), (30 * MS, Some(1530 * MS)));
    assert_eq!(c.local.totals().zero_ns, 1500 * MS);
    assert_eq!(c.local.min_window, Some(0));
    assert_eq!(c.local.episodes().len(), 1, "the zero_window_end closed the same episode");

    // A second episode remembers the low point since the first one ended.
    t.apply(&at(1600, 1, local_window(1024, 0, 16384)));
    assert_eq!(t.get(&key).unwrap().local.state, WindowState::Shrinking);
    t.apply(&at(1700, 1, local_window(0, 0, 16384)));
    t.apply(&at(1900, 1, close()));
    let c = t.get(&key).unwrap();
    assert_eq!(c.local.state, WindowState::Closed);
    assert_eq!(c.local.episodes().len(), 2);
    assert_eq!(c.local.episodes()[1].min_window_before, Some(1024));
    assert_eq!(c.local.episodes()[1].end_ns, Some(1900 * MS), "close ends the episode");
    assert_eq!(c.local.totals().longest_zero_ns, 1500 * MS);
    assert_eq!(c.local.episodes()[1].counted, None, "no zero_window_start for it");
}

#[test]
fn zero_end_without_start_uses_kernel_duration_or_first_sighting() {
    let mut t = ConnTable::new();
    let k = t.apply(&at(1000, 1, local_window(4096, 0, 8192)));
    t.apply(&at(2000, 1, zero_end(Side::Local, 4096, Some(300 * MS))));
    t.apply(&at(3000, 1, zero_end(Side::Local, 4096, None)));
    let c = t.get(&k).unwrap();
    let eps: Vec<_> =
        c.local.episodes().iter().map(|e| (e.start_ns, e.end_ns, e.start_seen)).collect();
    assert_eq!(eps, vec![(1700 * MS, Some(2000 * MS), true), (1000 * MS, Some(3000 * MS), false)]);
}

#[test]
fn probes_belong_to_the_peer_episode() {
    let mut t = ConnTable::new();
    let k = t.apply(&at(0, 1, open(true, 1460)));
    // A probe outside any known zero window still counts in the totals.
    t.apply(&at(5, 1, probe(1, 1, 400.0)));
    t.apply(&at(10, 1, peer_window(0, sender(0, 5000, 0, 0))));
    t.apply(&at(10, 1, zero_start(Side::Peer)));
    t.apply(&at(200, 1, probe(1, 1, 400.0)));
    t.apply(&at(600, 1, probe(2, 3, 1600.0)));
    t.apply(&at(700, 1, probe(2, 2, 800.0)));
    let c = t.get(&k).unwrap();
    assert_eq!(c.peer.state, WindowState::Probing);
    let open = c.peer.open().unwrap();
    assert_eq!((open.probes, open.max_backoff), (3, 3));
    assert_eq!((c.peer.totals().probes, c.peer.totals().max_backoff), (4, 3));
    assert_eq!(c.local.totals().probes, 0);
    assert_eq!(c.peer.last_probe().map(|p| p.probes_out), Some(2));

    t.apply(&at(900, 1, peer_window(65535, sender(0, 5000, 0, 0))));
    let c = t.get(&k).unwrap();
    assert_eq!(c.peer.state, WindowState::Reopened);
    assert_eq!(c.peer.episodes()[0].probes, 3);
    assert_eq!(c.peer.episodes()[0].end_ns, Some(900 * MS));
}

#[test]
fn inflight_and_sender_counters() {
    let mut t = ConnTable::new();
    let k = t.apply(&at(0, 1, inflight(65535, sender(1000, 9000, 100, 1000))));
    t.apply(&at(1000, 1, inflight(65535, sender(1000, 9000, 700, 2000))));
    let c = t.get(&k).unwrap();
    assert_eq!(c.peer.window, Some(65535));
    assert_eq!(c.rwnd_limited_ms(), Some(600));
    assert_eq!(c.rwnd_limited_share(), Some(0.6));
    assert_eq!(c.mss, Some(1448));
}

#[test]
fn drop_without_socket_matches_live_connection_by_tuple() {
    let mut t = ConnTable::new();
    let k = t.apply(&at(0, 7, open(true, 1460)));
    t.apply(&at(10, 7, local_window(0, 8192, 8192)));
    let dk = t.apply(&drop_no_sk(20, 7, 1448));
    assert_eq!(dk, k);
    let c = t.get(&k).unwrap();
    assert_eq!((c.local.totals().drops, c.local.totals().dropped_bytes), (1, 1448));
    assert_eq!(c.local.open().map(|e| e.drops), Some(1));

    // No live connection on that 4-tuple: a connection keyed by the 4-tuple, reused.
    let a = t.apply(&drop_no_sk(30, 8, 100));
    let b = t.apply(&drop_no_sk(40, 8, 100));
    assert_eq!(a, b);
    assert_ne!(a, k);
    assert!(matches!(t.get(&a).unwrap().id(), ConnId::Tuple(_)));
    assert_eq!(t.get(&a).unwrap().local.totals().drops, 2);
}

#[test]
fn identity_and_process_details() {
    let mut t = ConnTable::new();
    // Seen mid-stream first, then its open arrives: one connection.
    let k = t.apply(&at(0, 1, local_window(4096, 0, 8192)));
    assert_eq!(t.apply(&at(1, 1, open(false, 1460))), k);
    t.apply(&at(2, 1, rcv_space(8192, true)));
    t.apply(&at(3, 1, read(4096)));
    let c = t.get(&k).unwrap();
    assert_eq!(c.open_ns(), Some(MS));
    assert_eq!(c.wscale_ok, Some(false));
    assert_eq!((c.rcvbuf, c.rcvbuf_locked), (Some(8192), Some(true)));
    assert_eq!(c.mss, Some(1460));
    assert_eq!(c.comm.as_deref(), Some("reader"));
    assert_eq!(c.pid, Some(42));
    let r = c.reader.as_ref().unwrap();
    assert_eq!((&*r.comm, r.bytes, r.reads), ("reader", 4096, 1));

    // Close, then a late event: it lands on the closed connection and changes no window.
    t.apply(&at(10, 1, close()));
    assert_eq!(t.apply(&at(11, 1, local_window(0, 0, 8192))), k);
    let c = t.get(&k).unwrap();
    assert!(c.local.open().is_none());
    assert_eq!(c.local.state, WindowState::Closed);

    // The socket address reused by a new connection: a new entry.
    let k2 = t.apply(&at(20, 1, open(true, 1460)));
    assert_ne!(k2, k);
    assert_eq!(t.lookup(&ConnId::Sock(1)), Some(k2));
    // A new open while the previous one is live: its close was lost; it ends there.
    let k3 = t.apply(&at(30, 1, open(true, 1460)));
    assert_ne!(k3, k2);
    assert_eq!(t.get(&k2).unwrap().close_ns(), Some(30 * MS));
    let (complete, ended) = t.ended_since(0);
    assert!(complete);
    let ended: Vec<_> = ended.map(|e| (e.key, e.reason)).collect();
    assert_eq!(ended, vec![(k2, EndReason::Superseded)]);
}

#[test]
fn closed_connections_are_bounded_oldest_first() {
    let limits = Limits { live_capacity: 100, closed_capacity: 2, episodes_per_side: 16 };
    let mut t = ConnTable::with_limits(limits);
    let mut keys = Vec::new();
    for sk in 1..=4 {
        keys.push(t.apply(&at(sk, sk, open(true, 1460))));
    }
    for sk in 1..=4 {
        t.apply(&at(10 + sk, sk, close()));
    }
    assert_eq!((t.len(), t.live_len(), t.closed_len()), (2, 0, 2));
    assert!(t.get(&keys[0]).is_none() && t.get(&keys[1]).is_none());
    assert!(t.get(&keys[2]).is_some() && t.get(&keys[3]).is_some());
    let forgotten: Vec<_> = t.ended_since(0).1.map(|e| (e.key, e.reason)).collect();
    assert_eq!(forgotten, vec![(keys[0], EndReason::Forgotten), (keys[1], EndReason::Forgotten)]);
    let cursor = t.ended_seq();
    assert_eq!(t.ended_since(cursor).1.count(), 0);
}

#[test]
fn recency_list_holds_each_live_connection_once_least_recent_first() {
    let mut t = ConnTable::new();
    let keys: Vec<_> = (1..=5).map(|sk| t.apply(&at(sk, sk, open(true, 1460)))).collect();
    assert_eq!(t.recency(), keys);
    // Updates move a connection to the newest end; a close takes it out.
    t.apply(&at(6, 2, local_window(1000, 0, 8192)));
    t.apply(&at(7, 1, local_window(1000, 0, 8192)));
    t.apply(&at(8, 1, local_window(2000, 0, 8192)));
    t.apply(&at(9, 4, close()));
    assert_eq!(t.recency(), vec![keys[2], keys[4], keys[1], keys[0]]);
    assert_eq!(t.live_len(), 4);
}

#[test]
fn live_connections_are_capped_least_recently_updated_first() {
    let limits = Limits { live_capacity: 3, closed_capacity: 10, episodes_per_side: 16 };
    let mut t = ConnTable::with_limits(limits);
    let k1 = t.apply(&at(1, 1, open(true, 1460)));
    let k2 = t.apply(&at(2, 2, open(true, 1460)));
    let k3 = t.apply(&at(3, 3, open(true, 1460)));
    // Touch 1: now 2 is the least recently updated.
    t.apply(&at(4, 1, local_window(1000, 0, 8192)));
    assert_eq!(t.evicted(), 0);
    let k4 = t.apply(&at(5, 4, open(true, 1460)));
    assert_eq!(t.live_len(), 3);
    assert_eq!(t.evicted(), 1, "an eviction is counted");
    assert!(t.get(&k2).is_none());
    for k in [k1, k3, k4] {
        assert!(t.get(&k).is_some());
    }
    let ended: Vec<_> = t.ended_since(0).1.map(|e| (e.key, e.reason, e.ts_ns)).collect();
    assert_eq!(ended, vec![(k2, EndReason::Evicted, 5 * MS)]);
}

#[test]
fn episodes_kept_per_side_are_bounded_but_totals_are_not() {
    let limits = Limits { episodes_per_side: 2, ..Limits::default() };
    let mut t = ConnTable::with_limits(limits);
    let mut k = None;
    for i in 0..5 {
        k = Some(t.apply(&at(i * 100, 1, window(Side::Local, 0))));
        t.apply(&at(i * 100 + 10, 1, window(Side::Local, 1000)));
    }
    let c = t.get(&k.unwrap()).unwrap();
    assert_eq!(c.local.episodes().len(), 2);
    assert_eq!(c.local.episodes()[0].start_ns, 300 * MS);
    assert_eq!(c.local.totals().episodes, 5);
    assert_eq!(c.local.totals().zero_ns, 50 * MS);
}

#[test]
fn summaries_worst_first_with_verdicts() {
    let mut t = ConnTable::new();
    // 1: quiet. 2: a local zero window of 3.1 s. 3: peer zero window of 1 s with probes.
    // 4: two drops, no zero window. 5: sender mostly rwnd-limited.
    for sk in 1..=5 {
        t.apply(&at(0, sk, open(true, 1460)));
    }
    t.apply(&at(100, 2, zero_start_local(4096, 8192)));
    t.apply(&at(200, 2, rcv_space(8192, true)));
    t.apply(&at(3200, 2, zero_end(Side::Local, 2048, Some(3100 * MS))));
    t.apply(&at(100, 3, zero_start(Side::Peer)));
    t.apply(&at(500, 3, probe(1, 1, 400.0)));
    t.apply(&at(1100, 3, zero_end(Side::Peer, 2048, Some(1000 * MS))));
    t.apply(&drop_no_sk(100, 4, 1448));
    t.apply(&drop_no_sk(200, 4, 1448));
    t.apply(&at(0, 5, inflight(65535, sender(60000, 100000, 0, 0))));
    t.apply(&at(5000, 5, inflight(65535, sender(60000, 100000, 4000, 5000))));
    let rows = t.summaries(6000 * MS);
    let ports: Vec<u16> = rows.iter().map(|r| r.sport).collect();
    assert_eq!(ports, [2, 3, 4, 5, 1].map(port_of));
    assert_eq!(rows[0].local.zero_window_ms, 3100);
    assert_eq!(rows[0].local.zero_window_episodes, 1);
    assert_eq!(
        rows[0].verdict,
        "receiver-limited: the local reader python3 (pid 42) left data unread; zero window \
         once for 3.1 s; receive buffer pinned at 8.0 KiB by SO_RCVBUF"
    );
    assert!(rows[1].verdict.starts_with(
        "receiver-limited by the peer: 127.0.0.2:7777 advertised a zero window once for 1.0 s; \
         1 persist probe(s) sent"
    ));
    assert!(rows[2].verdict.contains("2 segment(s) (2.8 KiB) dropped"), "{}", rows[2].verdict);
    assert_eq!(rows[3].peer.rwnd_limited_ms, Some(4000));
    assert_eq!(rows[3].peer.rwnd_limited_pct, Some(80.0));
    assert!(rows[3].verdict.contains("80% of its busy time"), "{}", rows[3].verdict);
    assert_eq!(rows[4].verdict, "no flow-control limit seen");
    // The header's columns line up with the rows'.
    assert_eq!(ConnSummary::header().find("verdict"), rows[4].line().find("no flow-control"));
    assert!(rows[0].line().contains("1x 3.1 s"), "{}", rows[0].line());
    let json = serde_json::to_value(&rows[3]).unwrap();
    assert_eq!(json["peer"]["rwnd_limited_ms"], 4000);
    assert!(json["local"].get("rwnd_limited_ms").is_none());
    assert!(json.get("key").is_none());
}

#[test]
fn open_episode_counts_to_now_in_summary_and_duration() {
    let mut t = ConnTable::new();
    t.apply(&at(1000, 1, open(true, 1460)));
    t.apply(&at(2000, 1, window(Side::Peer, 0)));
    let rows = t.summaries(4500 * MS);
    assert_eq!(rows[0].peer.zero_window_ms, 2500);
    assert_eq!(rows[0].peer.longest_zero_window_ms, 2500);
    assert_eq!(rows[0].duration_ms, 3500);
    assert_eq!(rows[0].peer.state, WindowState::Zero);
}

proptest! {
    #[test]
    fn table_stays_consistent(raw in prop::collection::vec(arb_event(), 0..200),
                              live in 1usize..4, closed in 0usize..3) {
        let limits = Limits { live_capacity: live, closed_capacity: closed, episodes_per_side: 3 };
        let mut t = ConnTable::with_limits(limits);
        for e in build_events(&raw, true) {
            let key = t.apply(&e);
            prop_assert!(t.live_len() <= live);
            prop_assert!(t.closed_len() <= closed);
            prop_assert_eq!(t.len(), t.live_len() + t.closed_len());
            if let Some(c) = t.get(&key) {
                prop_assert_eq!(c.tuple, FourTuple::of(&e));
            }
        }
        for (_, c) in t.iter() {
            for d in [&c.local, &c.peer] {
                prop_assert!(d.episodes().len() <= 3);
                for ep in d.all_episodes() {
                    if let Some(end) = ep.end_ns {
                        prop_assert!(ep.start_ns <= end);
                    }
                }
                prop_assert_eq!(d.open().is_some(), matches!(d.state, WindowState::Zero | WindowState::Probing));
                if c.is_closed() {
                    prop_assert!(d.open().is_none());
                }
            }
        }
        let rows = t.summaries(1 << 40);
        prop_assert_eq!(rows.len(), t.len());
    }
}

/// A window this host advertised, explained as held by `limit`.
fn explained_window(window: u32, limit: Limit, locked: bool) -> Body {
    let mut state = local_state(window, 0, 32_768);
    state.choice = Some(WindowChoice {
        limited_by: limit,
        wanted: window,
        wanted_exact: false,
        rcv_mss: 1448,
        advmss: 1448,
        backlog: 0,
        rcvbuf_locked: locked,
        memory_pressure: false,
        rmem_max: Some(6 << 20),
        scaling_ratio: Some(232),
    });
    Body::Window {
        side: Side::Local,
        window,
        raw_window: 0,
        wscale: 0,
        local: Some(state),
        sender: None,
    }
}

#[test]
fn limit_variants_index_their_table() {
    for (i, limit) in Limit::ALL.iter().enumerate() {
        assert_eq!(*limit as usize, i);
    }
}

#[test]
fn the_limit_that_held_the_window_longest_is_the_verdict() {
    let mut t = ConnTable::new();
    t.apply(&at(0, 1, open(true, 1460)));
    // Growing for 1 s, then held by the pinned buffer for 3 s, app not reading for 1 s, and the
    // buffer again until the close at 9 s.
    t.apply(&at(0, 1, explained_window(8_192, Limit::BufferGrowing, true)));
    t.apply(&at(1000, 1, explained_window(16_384, Limit::BufferMax, true)));
    t.apply(&at(4000, 1, explained_window(4_096, Limit::AppNotReading, true)));
    t.apply(&at(5000, 1, explained_window(16_384, Limit::BufferMax, true)));
    t.apply(&at(6000, 1, read(100_000)));
    t.apply(&at(9000, 1, close()));
    let rows = t.summaries(20_000 * MS);
    let shares: Vec<(Limit, f64)> =
        rows[0].local.limited_by.iter().map(|s| (s.limit, s.pct)).collect();
    assert_eq!(
        shares,
        // Equal shares keep the order of Limit::ALL.
        [(Limit::BufferMax, 77.8), (Limit::AppNotReading, 11.1), (Limit::BufferGrowing, 11.1)]
    );
    assert_eq!(
        rows[0].verdict,
        "local window held by the receive buffer, pinned at 32.0 KiB by SO_RCVBUF 78% of the \
         time (largest 16.0 KiB)"
    );
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["local"]["limited_by"][0]["limit"], "buffer_max");
    assert!(json["peer"].get("limited_by").is_none());
}

#[test]
fn a_window_on_an_end_that_received_nothing_is_not_a_verdict() {
    // A sender's own window, pinned or not, holds nothing back.
    let mut t = ConnTable::new();
    t.apply(&at(0, 1, open(true, 1460)));
    t.apply(&at(0, 1, explained_window(16_384, Limit::BufferMax, true)));
    let rows = t.summaries(5_000 * MS);
    assert_eq!(rows[0].local.limited_by[0].limit, Limit::BufferMax);
    assert_eq!(rows[0].verdict, "no flow-control limit seen");
}

#[test]
fn a_window_held_by_the_kernel_at_work_is_not_a_verdict() {
    let mut t = ConnTable::new();
    t.apply(&at(0, 1, open(true, 1460)));
    t.apply(&at(0, 1, explained_window(65_536, Limit::BufferGrowing, false)));
    t.apply(&at(1000, 1, explained_window(131_072, Limit::RcvSsthresh, false)));
    let rows = t.summaries(5_000 * MS);
    assert_eq!(rows[0].local.limited_by[0].limit, Limit::RcvSsthresh);
    assert_eq!(rows[0].verdict, "no flow-control limit seen");
}

#[test]
fn a_sender_held_by_its_pinned_send_buffer_is_named_with_its_share() {
    let mut t = ConnTable::new();
    t.apply(&at(0, 1, open(true, 1460)));
    let mut s = sender(16_384, 0, 100, 5000);
    if let Some(l) = &mut s.limits {
        l.sndbuf_limited_ms = 4000;
        l.buffer_wait_ms = 4500;
        l.sndbuf = 16_384;
        l.sndbuf_locked = true;
        l.bytes_acked = 50_000_000;
    }
    t.apply(&at(5000, 1, peer_window(1_048_576, s)));
    let rows = t.summaries(6000 * MS);
    let peer = &rows[0].peer;
    assert_eq!(peer.sndbuf_limited_pct, Some(80.0));
    // 1 MiB / 40 ms; 50 MB over 5 s busy.
    assert_eq!(peer.window_cap_bps, Some(26_214_400.0));
    assert_eq!(peer.delivered_bps, Some(10_000_000.0));
    assert_eq!(peer.buffer_wait_pct, Some(90.0));
    // The larger of the tracer's and the kernel's shares.
    assert_eq!(
        rows[0].verdict,
        "sender held back by its own send buffer (pinned at 16.0 KiB by SO_SNDBUF) 90% of its \
         busy time: all it was given in flight, the application waiting for space (`ss -ti` \
         sndbuf_limited: 4.0 s; the kernel counts only waits that begin with a partial segment)"
    );
    let json = serde_json::to_value(&rows[0]).unwrap();
    assert_eq!(json["peer"]["sndbuf_limited_pct"], 80.0);
    assert_eq!(json["peer"]["buffer_wait_pct"], 90.0);
    assert!(json["local"].get("sndbuf_limited_pct").is_none());
}
