//! Where events go: readable lines for a terminal, or NDJSON for pipes.

pub mod json;
pub mod terminal;

use crate::events::Event;

/// Write errors are returned so that a closed pipe (`tracer watch --json | head`) ends the
/// session instead of tracing into nowhere.
pub trait Sink {
    fn event(&mut self, event: &Event) -> std::io::Result<()>;
    /// Ring-buffer loss since the last report (`new`) and in all (`total`).
    fn lost(&mut self, new: u64, total: u64) -> std::io::Result<()>;
    fn flush(&mut self) -> std::io::Result<()>;
}
