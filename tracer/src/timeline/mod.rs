//! The connection timeline: per-connection state built from decoded events, with each
//! direction's window history as a small state machine and its zero-window episodes.
//!
//! Pure: no I/O and no clock. Time comes only from the events' `ts_ns` and from the `now_ns`
//! callers pass, so recorded events replay to exactly the same state.

mod conn;
mod direction;
pub mod fmt;
mod index;
mod names;
mod peer;
mod summary;
mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
pub use conn::ConnId;
pub use conn::{Conn, FourTuple, Moment, WindowHeld};
pub use peer::pair_ends;
pub use summary::ConnSummary;
pub use table::{ConnKey, ConnTable, EndReason, Limits, DEFAULT_LIVE_CAPACITY};
