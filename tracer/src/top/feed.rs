//! What the view needs from the stream besides the connection table: window histories, the
//! event rate and loss (an `Observer`), and the recent alerts (a `Sink` that prints nothing).
//! Both write into one `Feed` the loop reads when it refreshes the view.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::Rc,
};

use super::history::Histories;
use crate::{
    alerts::{Alert, AlertKind, Rule},
    events::{model::Side, Event},
    output::Sink,
    pipeline::Observer,
    timeline::{ConnSummary, FourTuple},
};

/// Alerts kept for the pane (it shows the newest that fit).
const RECENT_ALERTS: usize = 100;
/// The event rate is measured over this much event time, in buckets of `RATE_BUCKET_NS`.
const RATE_SPAN_NS: u64 = 2_000_000_000;
const RATE_BUCKET_NS: u64 = 250_000_000;

/// The state shared by the pipeline's observer and sink and the loop (one thread: `Rc`).
pub type SharedFeed = Rc<RefCell<Feed>>;

/// Everything the view takes from the stream apart from the table.
#[derive(Debug, Default)]
pub struct Feed {
    pub histories: Histories,
    pub alerts: AlertLog,
    pub rate: EventRate,
    /// Events the kernel could not queue, in all.
    pub lost: u64,
}

/// The most recent alerts, and which are active now.
#[derive(Debug, Default)]
pub struct AlertLog {
    recent: VecDeque<Alert>,
    /// One active alert per connection, rule and side, as the engine keeps them; with its pid.
    active: HashMap<(FourTuple, Rule, Option<Side>), Option<u32>>,
}

impl AlertLog {
    /// An alert fired, escalated or resolved.
    pub fn push(&mut self, a: &Alert) {
        let key = (alert_tuple(a), a.rule, a.side);
        match a.kind {
            AlertKind::Alert => self.active.insert(key, a.pid),
            AlertKind::AlertResolved => self.active.remove(&key),
        };
        self.recent.push_back(a.clone());
        while self.recent.len() > RECENT_ALERTS {
            self.recent.pop_front();
        }
    }

    /// Alerts active now on connections `admit` accepts (by 4-tuple and pid).
    pub fn active(&self, admit: impl Fn(&FourTuple, Option<u32>) -> bool) -> usize {
        self.active.iter().filter(|((tuple, ..), pid)| admit(tuple, **pid)).count()
    }

    /// Recent alerts, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Alert> {
        self.recent.iter().rev()
    }
}

/// The connection an alert is about.
pub fn alert_tuple(a: &Alert) -> FourTuple {
    FourTuple { saddr: a.saddr, sport: a.sport, daddr: a.daddr, dport: a.dport }
}

/// Events per second, in event time (so a replay shows the recording's rate, not the disk's).
#[derive(Debug, Default)]
pub struct EventRate {
    /// (bucket number, events), oldest first.
    buckets: VecDeque<(u64, u64)>,
}

impl EventRate {
    /// One event at `ts_ns`.
    pub fn count(&mut self, ts_ns: u64) {
        let bucket = ts_ns / RATE_BUCKET_NS;
        match self.buckets.back_mut() {
            Some((b, n)) if *b >= bucket => *n += 1,
            _ => self.buckets.push_back((bucket, 1)),
        }
        let keep = RATE_SPAN_NS / RATE_BUCKET_NS;
        while self.buckets.front().is_some_and(|(b, _)| b + keep < bucket) {
            self.buckets.pop_front();
        }
    }

    /// Events per second over the `RATE_SPAN_NS` before `now_ns`.
    pub fn per_second(&self, now_ns: u64) -> f64 {
        let now = now_ns / RATE_BUCKET_NS;
        let span = RATE_SPAN_NS / RATE_BUCKET_NS;
        let n: u64 =
            self.buckets.iter().filter(|(b, _)| *b + span > now && *b <= now).map(|(_, n)| n).sum();
        n as f64 * 1e9 / RATE_SPAN_NS as f64
    }
}

/// The pipeline observer: window histories, event rate, loss.
pub struct FeedObserver(pub SharedFeed);

impl Observer for FeedObserver {
    fn event(&mut self, e: &Event) {
        let mut feed = self.0.borrow_mut();
        feed.histories.event(e);
        feed.rate.count(e.ts_ns);
    }

    fn lost(&mut self, count: u64) {
        self.0.borrow_mut().lost += count;
    }
}

/// The pipeline sink: nothing reaches the terminal (the view owns it); alerts are kept.
pub struct AlertSink(pub SharedFeed);

impl Sink for AlertSink {
    fn event(&mut self, _event: &Event) -> std::io::Result<()> {
        Ok(())
    }

    fn lost(&mut self, _new: u64, _total: u64) -> std::io::Result<()> {
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> std::io::Result<()> {
        self.0.borrow_mut().alerts.push(alert);
        Ok(())
    }

    fn summary(&mut self, _ts_ns: u64, _rows: &[ConnSummary]) -> std::io::Result<()> {
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
