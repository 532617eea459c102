//! `tracer top`: the state and drawing of the full-screen connection view. The loop that feeds
//! it (live from the kernel, or from a recording) is cmd/top.rs.
//!
//! - `feed`: what the pipeline hands over besides its table (window histories, alerts, rates);
//! - `history`: per-connection window history and the sparkline's bucketing;
//! - `row`: one row per connection, from the connection table;
//! - `model`: the view state (order, filter, selection, modes), updated by data and keys;
//! - `input`: keys to actions; `render`: the model to a frame; `theme`: colours or not;
//! - `pace`: the replay clock; `terminal`: the terminal guard and the key reader.

pub mod feed;
pub mod history;
pub mod input;
pub mod model;
pub mod pace;
pub mod render;
pub mod row;
pub mod terminal;
#[cfg(test)]
mod tests;
pub mod theme;
