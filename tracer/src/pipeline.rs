//! Everything after the decoder, the same for live tracing and for replay: the connection
//! table, the alert engine, the outputs and the recording. Time comes only from the events (and
//! from the caller's `now` for ticks and the final summary), so a replay is deterministic.

use anyhow::Result;

use crate::{
    alerts::{Alert, Engine, Thresholds},
    events::Event,
    output::Sink,
    record::Recorder,
    timeline::ConnTable,
};

/// Something else that follows the stream: the Prometheus exporter, the `top` view.
pub trait Observer {
    fn event(&mut self, _e: &Event) {}
    fn alert(&mut self, _a: &Alert) {}
    fn lost(&mut self, _count: u64) {}
    /// The connection table after each tick (live) and at the end.
    fn table(&mut self, _table: &ConnTable, _now_ns: u64) {}
}

pub struct Pipeline {
    table: ConnTable,
    observers: Vec<Box<dyn Observer>>,
    engine: Engine,
    sink: Box<dyn Sink>,
    recorder: Option<Recorder>,
    /// Print every event, or only alerts and the summary (`record`).
    show_events: bool,
    summary: bool,
}

impl Pipeline {
    pub fn new(
        thresholds: Thresholds,
        sink: Box<dyn Sink>,
        recorder: Option<Recorder>,
        show_events: bool,
        summary: bool,
    ) -> Self {
        Pipeline {
            table: ConnTable::new(),
            observers: Vec::new(),
            engine: Engine::new(thresholds),
            sink,
            recorder,
            show_events,
            summary,
        }
    }

    pub fn observe(&mut self, observer: Box<dyn Observer>) {
        self.observers.push(observer);
    }

    pub fn table(&self) -> &ConnTable {
        &self.table
    }

    pub fn event(&mut self, e: &Event) -> Result<()> {
        // Thresholds crossed before this event fire first, stamped when they were crossed.
        let due = self.engine.advance(&self.table, e.ts_ns);
        self.alerts(&due)?;
        let key = self.table.apply(e);
        if let Some(rec) = self.recorder.as_mut() {
            rec.event(e)?;
        }
        if self.show_events {
            self.sink.event(e)?;
        }
        for o in &mut self.observers {
            o.event(e);
        }
        let fired = self.engine.on_event(&self.table, &key, e);
        self.alerts(&fired)
    }

    /// Lets time-based alerts fire while no event arrives (live only).
    pub fn tick(&mut self, now_ns: u64) -> Result<()> {
        let due = self.engine.advance(&self.table, now_ns);
        self.alerts(&due)?;
        for o in &mut self.observers {
            o.table(&self.table, now_ns);
        }
        self.sink.flush()?;
        Ok(())
    }

    pub fn lost(&mut self, ts_ns: u64, new: u64, total: u64) -> Result<()> {
        if let Some(rec) = self.recorder.as_mut() {
            rec.lost(ts_ns, new)?;
        }
        self.sink.lost(new, total)?;
        for o in &mut self.observers {
            o.lost(new);
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<()> {
        self.sink.flush()?;
        Ok(())
    }

    /// Fires what is due by `now_ns`, prints the per-connection summary, closes the recording.
    pub fn finish(mut self, now_ns: u64) -> Result<()> {
        let due = self.engine.finish(&self.table, now_ns);
        self.alerts(&due)?;
        for o in &mut self.observers {
            o.table(&self.table, now_ns);
        }
        if self.summary {
            let mut rows = self.table.summaries(now_ns);
            self.engine.count_into(&mut rows);
            self.sink.summary(now_ns, &rows)?;
        }
        self.sink.flush()?;
        if let Some(rec) = self.recorder.take() {
            rec.finish(now_ns)?;
        }
        Ok(())
    }

    fn alerts(&mut self, alerts: &[Alert]) -> Result<()> {
        for a in alerts {
            self.sink.alert(a)?;
            for o in &mut self.observers {
                o.alert(a);
            }
        }
        Ok(())
    }
}
