//! Kernel programs of the TCP flow-control tracer. One file per hook under `probes/`; the agent
//! chooses at start-up which of them to load and attach on the running kernel.
//!
//! Layers, each using only those below it: `read` (kernel memory) and `state` (the per-socket
//! record); `maps` (every map and load-time global); `filter` (the user's filters), `header`
//! (event headers), `emit` (the ring buffer, nothing else) and `totals` (host counters);
//! `socket` (where a socket's state lives and who owns it); `report` (which connections are
//! reported: quiet ones wait for their first flow-control moment); `probes` (the programs).
#![no_std]
#![no_main]
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys and values go by reference, as in aya's examples: by value compiles to \
              different (equivalent) bytecode, and the bytecode is what the kernel tests verified"
)]

mod emit;
mod filter;
mod header;
mod maps;
mod probes;
mod read;
mod report;
mod socket;
mod state;
mod totals;
mod zeroed;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // SAFETY: the verifier rejects any program that could reach a panic, so this is never called.
    unsafe { core::hint::unreachable_unchecked() }
}
