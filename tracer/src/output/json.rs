//! NDJSON: one object per event (events/model.rs defines the fields). Every object has ts_ns,
//! kind, saddr, sport, daddr, dport; the rest depends on the kind.

use std::io::{BufWriter, Stdout, Write as _};

use serde_json::{json, Map, Value};

use super::Sink;
use crate::{alerts::Alert, events::Event, timeline::ConnSummary};

pub struct Json {
    out: BufWriter<Stdout>,
}

impl Json {
    pub fn new() -> Self {
        Json { out: BufWriter::new(std::io::stdout()) }
    }
}

impl Sink for Json {
    fn event(&mut self, event: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, event)?;
        self.out.write_all(b"\n")
    }

    fn lost(&mut self, new: u64, total: u64) -> std::io::Result<()> {
        // Not a connection event: it goes to stderr, where the operator sees it beside the data.
        eprintln!("tracer: warning: {new} events lost (ring buffer full; {total} since start)");
        Ok(())
    }

    fn alert(&mut self, alert: &Alert) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, alert)?;
        self.out.write_all(b"\n")
    }

    /// One object per connection: `{"ts_ns":..,"kind":"summary",...}`.
    fn summary(&mut self, ts_ns: u64, rows: &[ConnSummary]) -> std::io::Result<()> {
        for row in rows {
            let mut object = Map::new();
            object.insert("ts_ns".into(), json!(ts_ns));
            object.insert("kind".into(), json!("summary"));
            if let Value::Object(fields) = serde_json::to_value(row)? {
                object.extend(fields);
            }
            serde_json::to_writer(&mut self.out, &Value::Object(object))?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
