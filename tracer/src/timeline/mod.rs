//! The connection timeline: per-connection state built from decoded events, with each
//! direction's window history as a small state machine and its zero-window episodes.
//!
//! Pure: no I/O and no clock. Time comes only from the events' `ts_ns` and from the `now_ns`
//! callers pass, so recorded events replay to exactly the same state.

// Wired into `watch`/`report` by the commands; until then parts are unused in the binary.
#![allow(dead_code, unused_imports)]

mod conn;
mod direction;
pub mod fmt;
mod summary;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

pub use conn::{Conn, ConnId, FourTuple, ReadStats};
pub use direction::{Direction, Episode, LastProbe, RwndCounters, Totals, WindowState};
pub use summary::{ConnSummary, SideSummary};
pub use table::{ConnKey, ConnTable, EndReason, Ended, Limits};
