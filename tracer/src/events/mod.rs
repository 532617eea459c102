//! Events: decoded from the kernel's records (decode.rs), drained from the ring buffer (reader.rs).

pub mod decode;
pub mod kernel_log;
pub mod limit;
pub mod model;
pub mod ndjson;
pub mod reader;
pub mod synthetic;
pub mod totals;

pub use decode::{Body, Decoder, Event};
