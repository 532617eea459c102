//! Where events go: readable lines for a terminal, or NDJSON for pipes.

pub mod json;
pub mod terminal;

use crate::events::Event;

pub trait Sink {
    fn event(&mut self, event: &Event);
    /// Ring-buffer loss since the last report (`new`) and in all (`total`).
    fn lost(&mut self, new: u64, total: u64);
    fn flush(&mut self);
}
