//! NDJSON: one object per event (events/model.rs defines the fields). Every object has ts_ns,
//! kind, saddr, sport, daddr, dport; the rest depends on the kind.

use std::io::{Stdout, Write};

use serde_json::{json, Map, Value};

use anyhow::Result;
use serde::Serialize;

use super::Show;
use crate::{
    alerts::{Alert, AlertId},
    events::{ndjson::Lines, Event},
    pipeline::{Consumer, State},
    timeline::{ConnKey, ConnSummary},
};

/// Output is gathered here and written out this full, or when flushed.
const BUFFER_BYTES: usize = 64 * 1024;

pub struct Json<W: Write = Stdout> {
    out: W,
    /// Lines not yet written to `out`.
    buf: Lines,
    show: Show,
}

impl Json {
    pub fn new(show: Show) -> Self {
        Json::to(std::io::stdout(), show)
    }
}

impl<W: Write> Json<W> {
    /// NDJSON into `out` (the pipeline bench writes into a sink).
    pub fn to(out: W, show: Show) -> Self {
        Json { out, buf: Lines::with_capacity(BUFFER_BYTES), show }
    }

    /// One object and a newline. Errors stay `io::Error`s, so that a closed pipe is recognised
    /// as the end of the output.
    fn line(&mut self, value: &impl Serialize) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.buf, value)?;
        self.end_line()
    }

    fn end_line(&mut self) -> std::io::Result<()> {
        self.buf.write_all(b"\n")?;
        self.full()
    }

    /// Writes out what is gathered once it is `BUFFER_BYTES`.
    fn full(&mut self) -> std::io::Result<()> {
        if self.buf.len() >= BUFFER_BYTES {
            self.write_out()?;
        }
        Ok(())
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        let result = self.out.write_all(self.buf.as_bytes());
        self.buf.clear();
        result
    }
}

impl<W: Write> Consumer for Json<W> {
    fn event(&mut self, event: &Event, _key: ConnKey, _state: &State<'_>) -> Result<()> {
        if self.show.events {
            self.buf.event(event);
            self.full()?;
        }
        Ok(())
    }

    fn lost(&mut self, _ts_ns: u64, new: u64, total: u64) -> Result<()> {
        // Not a connection event: it goes to stderr, where the operator sees it beside the data.
        eprintln!("tracer: warning: {new} events lost (ring buffer full; {total} since start)");
        Ok(())
    }

    fn alert(&mut self, alert: &Alert, _id: &AlertId, _state: &State<'_>) -> Result<()> {
        Ok(self.line(alert)?)
    }

    /// One object per connection: `{"ts_ns":..,"kind":"summary",...}`.
    fn finish(&mut self, _state: &State<'_>, ts_ns: u64, rows: &[ConnSummary]) -> Result<()> {
        if !self.show.summary {
            return Ok(());
        }
        for row in rows {
            let mut object = Map::new();
            object.insert("ts_ns".into(), json!(ts_ns));
            object.insert("kind".into(), json!("summary"));
            if let Value::Object(fields) =
                serde_json::to_value(row).map_err(std::io::Error::from)?
            {
                object.extend(fields);
            }
            self.line(&Value::Object(object))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.write_out()?;
        Ok(self.out.flush()?)
    }
}
