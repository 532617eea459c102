//! What the view needs from the stream besides the pipeline's own state (the connection table,
//! the active alerts): window histories, the event rate, loss and the recent alerts, kept by a
//! pipeline consumer in one `Feed` the loop reads when it refreshes the view.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use anyhow::Result;

use super::history::Histories;
use crate::{
    alerts::{Alert, AlertId},
    events::Event,
    pipeline::{Consumer, State},
    timeline::ConnKey,
};

/// Alerts kept for the pane (it shows the newest that fit).
const RECENT_ALERTS: usize = 100;
/// The event rate is measured over this much event time, in buckets of `RATE_BUCKET_NS`.
const RATE_SPAN_NS: u64 = 2_000_000_000;
const RATE_BUCKET_NS: u64 = 250_000_000;

/// The state shared by the pipeline's consumer and the loop (one thread: `Rc`).
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

/// The most recent alerts (which are active now is the engine's to say).
#[derive(Debug, Default)]
pub struct AlertLog {
    recent: VecDeque<Alert>,
}

impl AlertLog {
    /// An alert fired, escalated or resolved.
    pub fn push(&mut self, a: &Alert) {
        self.recent.push_back(a.clone());
        while self.recent.len() > RECENT_ALERTS {
            self.recent.pop_front();
        }
    }

    /// Recent alerts, newest first.
    pub fn newest_first(&self) -> impl Iterator<Item = &Alert> {
        self.recent.iter().rev()
    }
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

/// The pipeline consumer: window histories, event rate, loss, recent alerts.
impl Consumer for Feed {
    fn event(&mut self, e: &Event, _key: ConnKey, _state: &State<'_>) -> Result<()> {
        self.histories.event(e);
        self.rate.count(e.ts_ns);
        Ok(())
    }

    fn alert(&mut self, a: &Alert, _id: &AlertId, _state: &State<'_>) -> Result<()> {
        self.alerts.push(a);
        Ok(())
    }

    fn lost(&mut self, _ts_ns: u64, new: u64, _total: u64) -> Result<()> {
        self.lost += new;
        Ok(())
    }
}
