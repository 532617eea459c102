//! Types shared by the kernel programs (tracer-ebpf) and the agent (tracer).
//!
//! Everything here crosses the user/kernel boundary: `repr(C)`, explicit padding, no bool, enum or
//! Option on the wire, sizes asserted at compile time.
#![no_std]

pub mod config;
pub mod event;
pub mod offsets;
pub mod totals;
