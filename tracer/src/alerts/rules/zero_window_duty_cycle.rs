//! zero_window_duty_cycle: a side spends much of an interval at zero window in many short
//! episodes, a reader that drains in bursts. Each episode may be too short for
//! zero_window_stall, yet the sender stands still most of the time.
//!
//! Measured over back-to-back intervals, the first starting at an episode's start: the time at
//! zero inside the interval (episodes cut at its edges) and the episodes that began in it. It
//! fires at the end of an interval at or above both thresholds, and resolves at the end of the
//! first one below them. Intervals stop after one in which no episode began.

use foldhash::HashMap;

use crate::alerts::alert::Severity;
use crate::alerts::check::{after, Check, Cx, Evidence, Finding};
use crate::alerts::config::{self, Rule};
use crate::alerts::facts::{Info, Seen, MS};
use crate::alerts::text::{app, kib, local, owner, peer, peer_app, peer_reader, reader};
use crate::events::model::Side;
use crate::timeline::fmt::{duration_ms, ns_to_ms};
use crate::timeline::ConnKey;

/// One side's interval being measured.
#[derive(Clone, Copy, Debug, Default)]
struct Cycle {
    start_ns: u64,
    /// Time at zero inside the interval, of the episodes ended so far.
    zero_ns: u64,
    /// Episodes that began inside the interval.
    episodes: u64,
    /// The longest of those episodes (or of one carried in), whole.
    longest_ns: u64,
    /// Start of the episode in progress.
    open_since: Option<u64>,
}

/// An interval as measured at its end.
#[derive(Clone, Copy, Debug)]
struct Measured {
    /// Share of the interval at zero, in percent, rounded to 0.1.
    pct: f64,
    zero_ms: u64,
    episodes: u64,
    longest_ms: u64,
    interval_ms: u64,
}

pub(super) struct ZeroWindowDutyCycle {
    cfg: config::ZeroWindowDutyCycle,
    /// Per connection: (local, peer).
    cycles: HashMap<ConnKey, [Option<Cycle>; 2]>,
}

fn index(side: Side) -> usize {
    match side {
        Side::Local => 0,
        Side::Peer => 1,
    }
}

impl ZeroWindowDutyCycle {
    pub(super) fn new(cfg: &config::ZeroWindowDutyCycle) -> Self {
        ZeroWindowDutyCycle { cfg: cfg.clone(), cycles: HashMap::default() }
    }

    fn cycle(&mut self, key: ConnKey, side: Side) -> &mut Option<Cycle> {
        &mut self.cycles.entry(key).or_default()[index(side)]
    }

    fn started(&mut self, cx: &mut Cx<'_>, side: Side, start_ns: u64) {
        let interval_ms = self.cfg.interval_ms;
        let cycle = self.cycle(cx.key(), side);
        let c = match cycle {
            Some(c) => c,
            None => {
                cx.schedule(Some(side), after(start_ns, interval_ms));
                cycle.insert(Cycle { start_ns, ..Cycle::default() })
            }
        };
        c.episodes += 1;
        c.open_since = Some(start_ns);
    }

    fn ended(&mut self, key: ConnKey, side: Side, end_ns: u64) {
        let Some(c) = self.cycle(key, side) else { return };
        let Some(since) = c.open_since.take() else { return };
        let from = since.max(c.start_ns);
        c.zero_ns += end_ns.saturating_sub(from);
        c.longest_ns = c.longest_ns.max(end_ns.saturating_sub(since));
    }
}

impl Check for ZeroWindowDutyCycle {
    fn rule(&self) -> Rule {
        Rule::ZeroWindowDutyCycle
    }

    fn sees(&self) -> u16 {
        Seen::EPISODE_ENDED | Seen::EPISODE_STARTED
    }

    fn observe(&mut self, cx: &mut Cx<'_>, seen: &Seen<'_>, _ts_ns: u64) {
        if !self.cfg.enabled {
            return;
        }
        match *seen {
            Seen::EpisodeStarted { side, start_ns } => self.started(cx, side, start_ns),
            Seen::EpisodeEnded { side, end_ns, .. } => self.ended(cx.key(), side, end_ns),
            _ => {}
        }
    }

    /// An interval ended at `due`: measure it, fire or resolve, and start the next one while
    /// the window still goes to zero.
    fn on_timer(&mut self, cx: &mut Cx<'_>, side: Option<Side>, due: u64) {
        let Some(side) = side else { return };
        let cfg = self.cfg.clone();
        let slot = self.cycle(cx.key(), side);
        let Some(mut c) = slot.take() else { return };
        if let Some(since) = c.open_since {
            c.zero_ns += due.saturating_sub(since.max(c.start_ns));
            c.longest_ns = c.longest_ns.max(due.saturating_sub(since));
        }
        let interval_ns = due.saturating_sub(c.start_ns).max(1);
        let pct = (c.zero_ns as f64 * 100.0 / interval_ns as f64).min(100.0);
        let m = Measured {
            pct: (pct * 10.0).round() / 10.0,
            zero_ms: ns_to_ms(c.zero_ns),
            episodes: c.episodes,
            longest_ms: ns_to_ms(c.longest_ns),
            interval_ms: ns_to_ms(interval_ns),
        };
        if m.pct >= cfg.zero_pct && m.episodes >= cfg.episodes {
            cx.fire(Some(side), Severity::Warning, due, |info| {
                let local = side == Side::Local;
                let evidence = Evidence::new()
                    .with("zero_pct", m.pct)
                    .with("zero_window_ms", m.zero_ms)
                    .with("interval_ms", m.interval_ms)
                    .with("episodes", m.episodes)
                    .with("longest_episode_ms", m.longest_ms)
                    .maybe("rcvbuf", info.rcvbuf.filter(|_| local))
                    .maybe("rcvbuf_locked", info.rcvbuf_locked.filter(|_| local))
                    .maybe("in_flight", info.in_flight.filter(|_| !local))
                    .maybe("unsent", info.unsent.filter(|_| !local))
                    .done();
                let (explanation, fix) = fired(info, side, &m);
                Finding { evidence, explanation, fix }
            });
        } else {
            let info = cx.info();
            let extra = || {
                Evidence::new()
                    .with("zero_pct", m.pct)
                    .with("episodes", m.episodes)
                    .with("interval_ms", m.interval_ms)
                    .done()
            };
            cx.resolve(Some(side), due, "below_threshold", || resolved(info, side, &m), extra);
        }
        // The next interval, while new episodes come; an episode in progress is carried in
        // (it counts for time, not as a new episode). One that spans a whole interval alone
        // is zero_window_stall's: the intervals stop until the next episode begins.
        if c.episodes > 0 {
            let next = Cycle {
                start_ns: due,
                open_since: c.open_since,
                longest_ns: c.open_since.map_or(0, |s| due.saturating_sub(s)),
                ..Cycle::default()
            };
            *self.cycle(cx.key(), side) = Some(next);
            cx.schedule(Some(side), due.saturating_add(cfg.interval_ms.saturating_mul(MS)));
        }
    }

    fn forget(&mut self, key: ConnKey) {
        self.cycles.remove(&key);
    }
}

/// "; its receive buffer is 256.0 KiB, pinned by SO_RCVBUF", as far as known. Not what is
/// unread: at an interval's end that is wherever the latest burst left it.
fn buffer(i: &Info) -> String {
    let pinned = if i.rcvbuf_locked == Some(true) { ", pinned by SO_RCVBUF" } else { "" };
    i.rcvbuf.map_or(String::new(), |b| format!("; its receive buffer is {}{pinned}", kib(b)))
}

/// What the alert says: (explanation, fix).
fn fired(i: &Info, side: Side, m: &Measured) -> (String, String) {
    let share = format!(
        "{:.0}% of the last {} ({}) in {} episodes, the longest {}",
        m.pct,
        duration_ms(m.interval_ms),
        duration_ms(m.zero_ms),
        m.episodes,
        duration_ms(m.longest_ms)
    );
    match side {
        Side::Local => {
            let explanation = format!(
                "{} on {} kept its receive window at zero {share}: it reads in bursts, and the \
                 sender at {} stands still between them{}",
                reader(i),
                local(i),
                peer(i),
                buffer(i)
            );
            let pinned = i.rcvbuf_locked == Some(true);
            let buffer = match (pinned, i.rcvbuf) {
                (true, Some(b)) => format!("remove its SO_RCVBUF pin ({})", kib(b)),
                (true, None) => "remove its SO_RCVBUF pin".to_string(),
                (false, _) => "raise the max of net.ipv4.tcp_rmem".to_string(),
            };
            let fix = format!(
                "make {} read steadily (a dedicated reader, smaller and more frequent reads) or \
                 let the buffer hold a whole burst: {buffer}; the network is not the problem",
                app(i)
            );
            (explanation, fix)
        }
        Side::Peer => {
            let explanation = format!(
                "the peer {} kept its window to {} on {} at zero {share}: {} reads in bursts, \
                 and this host's sender stands still between them",
                peer(i),
                owner(i),
                local(i),
                peer_reader(i)
            );
            let fix = format!(
                "make {} read steadily or give it a buffer that holds a whole burst (its \
                 net.ipv4.tcp_rmem max, no SO_RCVBUF pin); `ss -tm` there shows Recv-Q filling \
                 and draining",
                peer_app(i)
            );
            (explanation, fix)
        }
    }
}

fn resolved(i: &Info, side: Side, m: &Measured) -> String {
    let whose = match side {
        Side::Local => format!("{} on {}", reader(i), local(i)),
        Side::Peer => format!("the peer {}", peer(i)),
    };
    format!(
        "{whose} was at zero window {:.0}% of the last {} ({} episodes)",
        m.pct,
        duration_ms(m.interval_ms),
        m.episodes
    )
}
