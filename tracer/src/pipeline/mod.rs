//! The one route every event takes after the decoder, the same live and in replay: the
//! connection table, then the alert engine, then every consumer (terminal or NDJSON output, the
//! recorder, `top`'s view, the Prometheus exporter, the report's charts), through one interface.
//!
//! - `live`: the driver that drains the kernel's ring buffer on timers and counts loss (the
//!   other driver, the recording player, is `record::player`).
//!
//! Time comes only from the events (and from the caller's `now` for ticks and the end), so a
//! replay is deterministic. What the pipeline derives (the table, the active alerts) is handed
//! to consumers as `State`; no consumer keeps its own copy.

pub mod live;

#[cfg(test)]
mod alloc_tests;

use std::{cell::RefCell, rc::Rc};

use anyhow::Result;

use crate::{
    alerts::{Alert, AlertId, Change, Engine, Thresholds},
    events::Event,
    timeline::{ConnKey, ConnSummary, ConnTable},
};

/// What the pipeline knows, as of the call it is passed to.
pub struct State<'a> {
    pub table: &'a ConnTable,
    pub alerts: &'a Engine,
}

/// One ring-buffer drain (live only).
#[derive(Clone, Copy, Debug, Default)]
pub struct Drain {
    /// Events decoded from it.
    pub events: u64,
    /// Bytes it held, and the ring's size: how close the agent came to losing events.
    pub bytes: usize,
    pub ring_bytes: usize,
    /// Connections the kernel's per-socket table had no room for, in all, as last read.
    pub untracked: u64,
}

/// Something that follows the stream. Every method has a do-nothing default, so a consumer
/// implements what it uses. Errors end the run (a closed output pipe ends `watch`).
pub trait Consumer {
    /// An event, after the table took it into the connection `key`.
    fn event(&mut self, _e: &Event, _key: ConnKey, _state: &State<'_>) -> Result<()> {
        Ok(())
    }

    /// An alert fired, escalated or resolved (the engine's state already includes it); `id`
    /// names the connection (by its table key), rule and side it is about.
    fn alert(&mut self, _a: &Alert, _id: &AlertId, _state: &State<'_>) -> Result<()> {
        Ok(())
    }

    /// Events the kernel could not queue: `new` since the last report, `total` in all.
    fn lost(&mut self, _ts_ns: u64, _new: u64, _total: u64) -> Result<()> {
        Ok(())
    }

    /// A ring-buffer drain (live only).
    fn drained(&mut self, _drain: &Drain) {}

    /// Time passed without events (live, and a paced replay): after due alerts fired.
    fn tick(&mut self, _state: &State<'_>, _now_ns: u64) -> Result<()> {
        Ok(())
    }

    /// The run ended at `now_ns`; `summary` has one row per connection, worst first.
    fn finish(&mut self, _state: &State<'_>, _now_ns: u64, _summary: &[ConnSummary]) -> Result<()> {
        Ok(())
    }

    /// Written output should reach its reader now (after each drain, tick and at the end).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A consumer the caller also reads (`top`'s view, the report), on this thread.
impl<C: Consumer> Consumer for Rc<RefCell<C>> {
    fn event(&mut self, e: &Event, key: ConnKey, state: &State<'_>) -> Result<()> {
        self.borrow_mut().event(e, key, state)
    }

    fn alert(&mut self, a: &Alert, id: &AlertId, state: &State<'_>) -> Result<()> {
        self.borrow_mut().alert(a, id, state)
    }

    fn lost(&mut self, ts_ns: u64, new: u64, total: u64) -> Result<()> {
        self.borrow_mut().lost(ts_ns, new, total)
    }

    fn drained(&mut self, drain: &Drain) {
        self.borrow_mut().drained(drain);
    }

    fn tick(&mut self, state: &State<'_>, now_ns: u64) -> Result<()> {
        self.borrow_mut().tick(state, now_ns)
    }

    fn finish(&mut self, state: &State<'_>, now_ns: u64, summary: &[ConnSummary]) -> Result<()> {
        self.borrow_mut().finish(state, now_ns, summary)
    }

    fn flush(&mut self) -> Result<()> {
        self.borrow_mut().flush()
    }
}

pub struct Pipeline {
    table: ConnTable,
    engine: Engine,
    consumers: Vec<Box<dyn Consumer>>,
    lost_total: u64,
}

impl Pipeline {
    pub fn new(thresholds: Thresholds) -> Self {
        Pipeline::with_table(thresholds, ConnTable::new())
    }

    pub fn with_table(thresholds: Thresholds, table: ConnTable) -> Self {
        Pipeline { table, engine: Engine::new(thresholds), consumers: Vec::new(), lost_total: 0 }
    }

    /// Adds a consumer; each is called in the order added.
    pub fn add(&mut self, consumer: Box<dyn Consumer>) {
        self.consumers.push(consumer);
    }

    pub fn state(&self) -> State<'_> {
        State { table: &self.table, alerts: &self.engine }
    }

    pub fn event(&mut self, e: &Event) -> Result<()> {
        // Thresholds crossed before this event fire first, stamped when they were crossed.
        let due = self.engine.advance_changes(&self.table, e.ts_ns);
        self.alerts(&due)?;
        let key = self.table.apply(e);
        let state = State { table: &self.table, alerts: &self.engine };
        for c in &mut self.consumers {
            c.event(e, key, &state)?;
        }
        let fired = self.engine.on_event_changes(&self.table, &key, e);
        self.alerts(&fired)
    }

    /// Asks the CPU to bring into cache what `e` will touch, ahead of handing it on (`event`):
    /// its connection and the alert facts kept for it. Changes nothing.
    pub fn prefetch(&self, e: &Event) {
        self.table.prefetch(e.sk, |slot| self.engine.prefetch(slot));
    }

    /// Lets time-based alerts fire while no event arrives.
    pub fn tick(&mut self, now_ns: u64) -> Result<()> {
        let due = self.engine.advance_changes(&self.table, now_ns);
        self.alerts(&due)?;
        let state = State { table: &self.table, alerts: &self.engine };
        for c in &mut self.consumers {
            c.tick(&state, now_ns)?;
        }
        self.flush()
    }

    /// `count` events the kernel could not queue, noticed at `ts_ns`.
    pub fn lost(&mut self, ts_ns: u64, count: u64) -> Result<()> {
        self.lost_total += count;
        for c in &mut self.consumers {
            c.lost(ts_ns, count, self.lost_total)?;
        }
        Ok(())
    }

    pub fn drained(&mut self, drain: &Drain) {
        for c in &mut self.consumers {
            c.drained(drain);
        }
    }

    pub fn flush(&mut self) -> Result<()> {
        for c in &mut self.consumers {
            c.flush()?;
        }
        Ok(())
    }

    /// Fires what is due by `now_ns` and hands every consumer the per-connection summary.
    pub fn finish(&mut self, now_ns: u64) -> Result<()> {
        let due = self.engine.finish_changes(&self.table, now_ns);
        self.alerts(&due)?;
        let mut summary = self.table.summaries(now_ns);
        self.engine.count_into(&mut summary);
        let state = State { table: &self.table, alerts: &self.engine };
        for c in &mut self.consumers {
            c.finish(&state, now_ns, &summary)?;
        }
        self.flush()
    }

    fn alerts(&mut self, changes: &[Change]) -> Result<()> {
        let state = State { table: &self.table, alerts: &self.engine };
        for Change { id, alert } in changes {
            for c in &mut self.consumers {
                c.alert(alert, id, &state)?;
            }
        }
        Ok(())
    }
}
