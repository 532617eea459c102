//! NDJSON: one object per event (events/model.rs defines the fields). Every object has ts_ns,
//! kind, saddr, sport, daddr, dport; the rest depends on the kind.

use std::io::{BufWriter, Stdout, Write as _};

use super::Sink;
use crate::events::Event;

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

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
