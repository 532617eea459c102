//! Flow-control alerts: rules over the connection timeline that fire and resolve as events,
//! each naming the connection and its process, carrying its evidence as numbers, and explaining
//! itself in one line with a suggested fix.
//!
//! From the top; each module uses only those listed after it:
//! - `engine`: hands each event's observations to every rule, runs their timers, ends a
//!   connection's alerts with it, and publishes the active alerts;
//! - `rules/`: one file per rule: when it fires and resolves, and what its alerts say;
//! - `check`: the `Check` trait every rule implements, and what a rule may do (`Cx`);
//! - `book`: active alerts (one per connection, rule and side), timers, the alerts of a call;
//! - `text`: phrases the rules' texts share;
//! - `facts`: what rules see of a connection: its state, zero-window episodes, receiver-limited
//!   intervals, and each event as observations;
//! - `other_end`: who is at the other end when both ends are on this host;
//! - `alert`: the alert record;
//! - `config`: the rules by name, and their thresholds (defaults, a TOML file, overrides).
//!
//! A new rule: its file in `rules/` (and a line in `rules/mod.rs`), its entry in `config`, and
//! its alerting rule and panel in `deploy/`.

#[cfg(test)]
mod active_tests;
mod alert;
mod book;
mod check;
mod config;
mod engine;
mod facts;
mod other_end;
mod rules;
#[cfg(test)]
mod tests;
mod text;

pub use alert::{Alert, AlertKind, Severity};
pub use book::{ActiveAlert, AlertId, Change};
#[cfg(test)]
pub use config::Rule;
pub use config::Thresholds;
#[cfg(test)]
pub use config::ZeroWindowStall;
pub use engine::Engine;
