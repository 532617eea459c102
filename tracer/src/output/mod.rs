//! Where events go: readable lines for a terminal, or NDJSON for pipes.

pub mod json;
pub mod terminal;

use crate::{alerts::Alert, events::Event, timeline::ConnSummary};

/// Write errors are returned so that a closed pipe (`tracer watch --json | head`) ends the
/// session instead of tracing into nowhere.
pub trait Sink {
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
    /// Ring-buffer loss since the last report (`new`) and in all (`total`).
    fn lost(&mut self, new: u64, total: u64) -> std::io::Result<()>;
    fn alert(&mut self, alert: &Alert) -> std::io::Result<()>;
    /// The per-connection summary when tracing or replay ends, worst first.
    fn summary(&mut self, ts_ns: u64, rows: &[ConnSummary]) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}
